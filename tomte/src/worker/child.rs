//! The worker's side: its loop, in the forked process.
//!
//! Between iterations the worker sleeps on its channel, so a command or a request acts at once,
//! not after the interval. It beats the heartbeat three times per hang timeout, also while paused, so
//! only a worker stuck inside its own code looks hung.
//!
//! SIGTERM and SIGINT sent to the worker itself (a group kill, Ctrl-C in the terminal) end it
//! as the daemon's `stop` command does: the handler ([`crate::sys::signals`]) raises a flag and
//! signals the eventfd the worker sleeps on; the loop sees the flag before its next sleep or
//! iteration, runs `spindown`, and the process exits 0. A worker busy in its own `loop` sees
//! it when the iteration returns.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tomte_rpc::Fault;

use super::channel::Endpoint;
use super::wire::Frame;
use super::{Worker, WorkerCtx};

/// The status word's values, as comodojo numbered them.
pub(crate) const SPINUP: u32 = 0;
pub(crate) const LOOPING: u32 = 1;
pub(crate) const PAUSED: u32 = 2;
pub(crate) const SPINDOWN: u32 = 3;

/// The command word that sets a worker's log level: `tomte.loglevel=debug`. The `tomte.`
/// words are the daemon's own; a worker's `on_command` does not see them.
pub(crate) const LOG_LEVEL: &str = "tomte.loglevel=";

/// Runs a worker to its end; the result is the process's exit code.
/// `beat`: the longest sleep between heartbeats.
pub(crate) fn main(name: String, interval: Duration, beat: Duration, worker: Box<dyn Worker>, end: Endpoint) -> i32 {
    crate::logging::set_tag(&name);
    // The daemon's free heap and the deep end of its stack came along with the fork: give them
    // back, so that a worker holds only what it uses (and what it still shares with the daemon).
    crate::sys::mem::give_back();
    let queue = super::reply::Replies::new(Some(end.wake_eventfd()));
    let mut ctx = WorkerCtx {
        name,
        iterations: 0,
        up: Vec::new(),
        stop: false,
        metrics: Default::default(),
        replies: Vec::new(),
        queue: std::sync::Arc::clone(&queue),
    };
    let mut run = Run {
        pending: HashSet::new(),
        queue,
        worker,
        end,
        paused: false,
        status: u32::MAX,
        beat,
        buf: Vec::new(),
        frame: Vec::new(),
        metrics_sent: None,
    };
    match catch_unwind(AssertUnwindSafe(|| run.run(interval, &mut ctx))) {
        Ok(code) => code,
        Err(panic) => {
            log::error!("worker {} panicked: {}", ctx.name, tomte_rpc::fault::panic_text(&*panic));
            70
        }
    }
}

/// How long asks still pending when the worker stops may take to be answered.
const PENDING_GRACE: Duration = Duration::from_secs(5);

struct Run {
    /// Asks left for later (`on_ask` answered `None`), not answered yet.
    pending: HashSet<u64>,
    /// Answers from repliers on other threads.
    queue: Arc<super::reply::Replies>,
    worker: Box<dyn Worker>,
    end: Endpoint,
    paused: bool,
    /// The status word as last set (and reported).
    status: u32,
    beat: Duration,
    buf: Vec<u8>,
    frame: Vec<u8>,
    /// When the last snapshot of the worker's metrics went up.
    metrics_sent: Option<Instant>,
}

/// How often at most a worker sends its metrics up.
const METRICS_EVERY: Duration = Duration::from_secs(1);

impl Run {
    fn run(&mut self, interval: Duration, ctx: &mut WorkerCtx) -> i32 {
        let daemon = rustix::process::getppid();
        crate::sys::signals::wake_on_stop(self.end.wake_eventfd());
        self.set_status(SPINUP);
        self.end.beat();
        self.worker.spinup(ctx);
        let mut next = Instant::now();
        loop {
            if let Err(why) = self.messages(ctx) {
                log::error!("worker {}: {why}; exiting", ctx.name);
                return 2;
            }
            if ctx.stop {
                break;
            }
            if let Some(signal) = crate::sys::signals::stop_signal() {
                log::info!("worker {}: {} received; spinning down", ctx.name, crate::signal::name(signal.as_raw()));
                ctx.stop = true;
                break;
            }
            if rustix::process::getppid() != daemon {
                // The daemon is gone (PR_SET_PDEATHSIG normally kills us first).
                return 0;
            }
            let now = Instant::now();
            if !self.paused && now >= next {
                self.set_status(LOOPING);
                self.worker.r#loop(ctx);
                ctx.iterations += 1;
                self.end.set_counter(ctx.iterations);
                self.end.beat();
                // Fixed rate without catch-up: an overrun starts the next iteration at once,
                // and the schedule restarts from there.
                next += interval;
                let after = Instant::now();
                if next < after {
                    next = after;
                }
                continue;
            }
            self.set_status(if self.paused { PAUSED } else { LOOPING });
            self.end.beat();
            let wait = if self.paused { self.beat } else { (next - now).min(self.beat) };
            let queue = &self.queue;
            if let Err(e) =
                self.end.wait_unless(wait, || crate::sys::signals::stop_signal().is_some() || queue.waiting())
            {
                log::error!("worker {}: cannot wait on its channel: {e}", ctx.name);
                return 2;
            }
        }
        self.set_status(SPINDOWN);
        self.end.beat();
        self.finish_pending(ctx);
        self.worker.spindown(ctx);
        self.send_metrics(ctx, true);
        let _ = self.flush_up(ctx);
        let _ = self.end.notify();
        0
    }

    /// Acts on every frame waiting, then sends what the worker has to say.
    fn messages(&mut self, ctx: &mut WorkerCtx) -> Result<(), String> {
        while self.end.try_recv(&mut self.buf).map_err(|e| e.to_string())?.is_some() {
            match Frame::decode(&self.buf) {
                Some(Frame::Command(word)) => {
                    // The daemon's log level changed (`daemon.loglevel`): the worker's follows.
                    if let Some(level) = word.strip_prefix(LOG_LEVEL).and_then(crate::logging::parse_level) {
                        crate::logging::set_level(level);
                        continue;
                    }
                    match word.as_str() {
                        "stop" => ctx.stop = true,
                        "pause" => {
                            self.paused = true;
                            self.set_status(PAUSED);
                        }
                        "resume" => {
                            self.paused = false;
                            self.set_status(LOOPING);
                        }
                        _ => {}
                    }
                    log::debug!("worker {}: command {word}", ctx.name);
                    self.worker.on_command(&word, ctx);
                }
                Some(Frame::Request(ticket, request)) => {
                    let ask = super::AskId(ticket);
                    let answer = catch_unwind(AssertUnwindSafe(|| self.worker.on_ask(ask, request, ctx)))
                        .unwrap_or_else(|_| {
                            Some(Err(Fault::internal(format!("worker {} panicked answering", ctx.name))))
                        });
                    match answer {
                        Some(answer) => self.answer(ticket, answer, ctx)?,
                        None => {
                            self.pending.insert(ticket);
                        }
                    }
                }
                _ => return Err("malformed frame from the daemon".to_owned()),
            }
        }
        self.flush_replies(ctx)?;
        self.flush_up(ctx)?;
        self.send_metrics(ctx, false);
        self.end.notify().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Sends one answer.
    fn answer(&mut self, ticket: u64, answer: Result<tomte_rpc::Value, Fault>, ctx: &WorkerCtx) -> Result<(), String> {
        if let Err(why) = self.send(&Frame::Answer(ticket, answer)) {
            // An answer the channel cannot carry is an error answer, not a dead worker.
            let fault = Fault::internal(format!("worker {}: cannot send its answer: {why}", ctx.name));
            self.send(&Frame::Answer(ticket, Err(fault)))?;
        }
        Ok(())
    }

    /// Sends the answers given later, each to an ask still pending.
    fn flush_replies(&mut self, ctx: &mut WorkerCtx) -> Result<(), String> {
        let mut replies = std::mem::take(&mut ctx.replies);
        replies.extend(self.queue.take());
        for (ask, answer) in replies {
            if self.pending.remove(&ask.0) {
                self.answer(ask.0, answer, ctx)?;
            } else {
                log::debug!(
                    "worker {}: a second answer, or one to an ask it was not given ({ask:?}): dropped",
                    ctx.name
                );
            }
        }
        Ok(())
    }

    /// At stop: serves what comes in (answers given later among it) until no ask is pending,
    /// for at most [`PENDING_GRACE`].
    fn finish_pending(&mut self, ctx: &mut WorkerCtx) {
        let until = Instant::now() + PENDING_GRACE;
        // The daemon's SIGTERM (its stop grace is over) ends the wait, so spindown still runs
        // before its SIGKILL; a stop that began with the signal waits the 5 s at most.
        let signalled = crate::sys::signals::stop_signal().is_some();
        let signal_now = || !signalled && crate::sys::signals::stop_signal().is_some();
        while !self.pending.is_empty() && Instant::now() < until && !signal_now() {
            if let Err(why) = self.messages(ctx) {
                log::error!("worker {}: {why}", ctx.name);
                return;
            }
            if self.pending.is_empty() {
                break;
            }
            self.end.beat();
            let wait = until.saturating_duration_since(Instant::now()).min(self.beat);
            let queue = &self.queue;
            if self.end.wait_unless(wait, || queue.waiting() || signal_now()).is_err() {
                return;
            }
        }
        if !self.pending.is_empty() {
            log::warn!("worker {}: {} asks still unanswered as it stops", ctx.name, self.pending.len());
        }
    }

    /// Sends a snapshot of the worker's metrics, when it has some and the last went a second
    /// ago or more (`now`: whatever the time). Best effort: with the ring full, the next turn
    /// sends it.
    fn send_metrics(&mut self, ctx: &WorkerCtx, now: bool) {
        if ctx.metrics.is_empty() || (!now && self.metrics_sent.is_some_and(|t| t.elapsed() < METRICS_EVERY)) {
            return;
        }
        Frame::Metrics(ctx.metrics.snapshot()).encode(&mut self.frame);
        match self.end.send(&self.frame) {
            Ok(()) => self.metrics_sent = Some(Instant::now()),
            // Never fits: said once a second (not rebuilt every turn), the daemon keeps the last.
            Err(super::channel::SendError::TooLarge { .. }) => {
                log::warn!(
                    "worker {}: its metrics ({} bytes) do not fit its channel's ring; raise WorkerSpec::ring_bytes",
                    ctx.name,
                    self.frame.len()
                );
                self.metrics_sent = Some(Instant::now());
            }
            Err(_) => {}
        }
    }

    fn flush_up(&mut self, ctx: &mut WorkerCtx) -> Result<(), String> {
        for v in std::mem::take(&mut ctx.up) {
            self.send(&Frame::Up(v))?;
        }
        Ok(())
    }

    /// Sets the status word the daemon reads; a change is also reported with a
    /// [`Frame::Status`], so that the daemon sees it (and tells its subscribers) at once rather
    /// than at its next look. Best effort: with the ring full the daemon reads the word later.
    fn set_status(&mut self, status: u32) {
        if status == self.status {
            return;
        }
        self.status = status;
        self.end.set_status(status);
        Frame::Status.encode(&mut self.frame);
        if self.end.send(&self.frame).is_ok() {
            let _ = self.end.notify();
        }
    }

    /// Sends a frame, waiting for room while the daemon catches up (never dropping it).
    fn send(&mut self, frame: &Frame) -> Result<(), String> {
        frame.encode(&mut self.frame);
        loop {
            match self.end.send(&self.frame) {
                Ok(()) => return Ok(()),
                Err(super::channel::SendError::Full) => {
                    self.end.wait_writable(self.frame.len(), self.beat).map_err(|e| e.to_string())?;
                    self.end.beat();
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}
