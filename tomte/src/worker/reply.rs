//! Answers given later: a worker that returns `None` from [`Worker::on_ask`](super::Worker::on_ask)
//! answers with [`WorkerCtx::reply`](super::WorkerCtx::reply) from its own thread, or with a
//! [`Replier`] from any thread (a tokio runtime the worker runs, a thread pool).
//!
//! A [`Replier`] queues the answer and signals the eventfd the worker's loop sleeps on, so the
//! loop wakes and sends it at once; the loop alone touches the channel. Each ask is answered
//! once: a second answer, or one to an ask the worker was not given, is dropped with a debug
//! line (the daemon kills a worker that answers a ticket it was not asked).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tomte_rpc::{Fault, Value};

use crate::sys::eventfd::EventFd;

/// Which ask an answer is for: given to [`Worker::on_ask`](super::Worker::on_ask), handed back
/// with the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AskId(pub(crate) u64);

/// Answers queued by repliers, and how to wake the worker's loop for them.
pub(crate) struct Replies {
    answers: Mutex<Vec<(AskId, Result<Value, Fault>)>>,
    /// Whether `answers` may hold some: the loop's sleep asks this cheaply.
    waiting: AtomicBool,
    /// The eventfd the worker's loop sleeps on (absent in unit tests).
    wake: Option<Arc<EventFd>>,
}

impl Replies {
    pub(crate) fn new(wake: Option<Arc<EventFd>>) -> Arc<Replies> {
        Arc::new(Replies { answers: Mutex::new(Vec::new()), waiting: AtomicBool::new(false), wake })
    }

    /// Whether answers wait to be sent.
    pub(crate) fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire)
    }

    /// The answers queued so far.
    pub(crate) fn take(&self) -> Vec<(AskId, Result<Value, Fault>)> {
        if !self.waiting.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        // A replier that panicked while holding the lock left a usable vector behind.
        std::mem::take(&mut *self.answers.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, ask: AskId, answer: Result<Value, Fault>) {
        self.answers.lock().unwrap_or_else(|e| e.into_inner()).push((ask, answer));
        self.waiting.store(true, Ordering::Release);
        if let Some(wake) = &self.wake {
            if let Err(e) = wake.signal() {
                log::warn!("cannot wake the worker's loop for an answer: {e}");
            }
        }
    }
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies").field("waiting", &self.waiting()).finish()
    }
}

/// Answers asks from any thread of the worker's process: from [`WorkerCtx::replier`](super::WorkerCtx::replier).
#[derive(Clone, Debug)]
pub struct Replier(pub(crate) Arc<Replies>);

impl Replier {
    /// Answers ask `ask`: the worker's loop sends the answer as soon as it wakes, at once if it
    /// sleeps.
    pub fn reply(&self, ask: AskId, answer: Result<Value, Fault>) {
        self.0.push(ask, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_from_other_threads_are_queued_in_order_and_taken_once() {
        let replies = Replies::new(None);
        let replier = Replier(Arc::clone(&replies));
        assert!(!replies.waiting());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let r = replier.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        r.reply(AskId(t * 1000 + i), Ok(Value::from(i)));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(replies.waiting());
        let all = replies.take();
        assert_eq!(all.len(), 400);
        for t in 0..4 {
            let mine: Vec<u64> = all.iter().map(|(a, _)| a.0).filter(|a| a / 1000 == t).collect();
            assert_eq!(mine, (0..100).map(|i| t * 1000 + i).collect::<Vec<_>>(), "each thread's in order");
        }
        assert!(!replies.waiting());
        assert!(replies.take().is_empty());
    }
}
