//! Events: named occurrences (a signal, a client connecting, the daemon starting) and the
//! listeners hooked on them, run in priority order on the daemon's loop thread.

use std::collections::HashMap;

use tomte_rpc::Value;

use crate::daemon::Ctx;

/// The daemon's lifecycle event names.
pub mod names {
    /// The daemon is set up (its pid file, if any, held and its listeners bound); its workers
    /// start next.
    pub const START: &str = "daemon.start";
    /// The daemon has said it is ready (to the command that started it, or to systemd) and
    /// its loop begins.
    pub const READY: &str = "daemon.ready";
    /// A graceful stop begins, before the daemon answers what clients already sent and ends.
    pub const STOP: &str = "daemon.stop";
    /// A reload (`SIGHUP`, [`Ctx::reload`](crate::Ctx::reload)), once the log is reopened and
    /// a TLS certificate read again.
    pub const RELOAD: &str = "daemon.reload";
    /// A client connected (a TLS client once its handshake is done); the data is its
    /// [`Peer::to_value`](crate::net::Peer::to_value).
    pub const CLIENT_CONNECT: &str = "daemon.socket.client.connect";
    /// A client's connection closed; the data is as for [`CLIENT_CONNECT`]. Not emitted for a
    /// TLS client whose handshake never finished.
    pub const CLIENT_HANGUP: &str = "daemon.socket.client.hangup";
    /// A worker's state changed; the data is `{worker, state, pid, last_exit}`, `state` one of
    /// `spinup`, `looping`, `paused`, `spindown`, `exited`, `backoff`, `failed` (as
    /// `worker.list` names them), `pid` nil while no process runs.
    pub const WORKER_STATE: &str = "daemon.worker.state";
    /// A log record of the daemon or of a worker (its captured output too), given only to
    /// clients subscribed to it (`daemon.subscribe`, `GET /events`), never to listeners (a
    /// listener that logs would feed itself); the data is `{level, target, worker, message}`.
    pub const LOG: &str = "daemon.log";
    /// An upgrade's progress (`NAME upgrade`, SIGUSR2, `daemon.upgrade`): the data is
    /// `{phase, old_pid, new_pid, binary, ms}`, `phase` one of `started` (the new binary runs),
    /// `ready` (it serves; this daemon drains next) and `failed` (with `error`, its message:
    /// this daemon serves on); `ms` since the start.
    pub const UPGRADE: &str = "daemon.upgrade";
    /// A stopping (or upgraded) daemon has finished what it had started; the data is `{ms}`,
    /// how long that took. Not emitted when the drain timeout cut it short.
    pub const DRAINED: &str = "daemon.drained";
}

/// One event as listeners see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its name: one of [`names`], a signal's (`daemon.posix.SIGTERM`), a worker's
    /// (`daemon.worker.failed`), or the application's own.
    pub name: String,
    /// What the event is about: the signal number, the peer address, …; `Nil` when nothing.
    pub data: Value,
}

impl Event {
    /// An event named `name`, about `data`.
    pub fn new(name: impl Into<String>, data: Value) -> Event {
        Event { name: name.into(), data }
    }
}

/// A listener: a closure, or any type implementing this trait. `S` is the application's
/// state (see [`Ctx::state`]).
pub trait Listener<S = ()> {
    /// Runs when `event` is emitted.
    fn on_event(&mut self, event: &Event, ctx: &mut Ctx<S>);
}

impl<S, F: FnMut(&Event, &mut Ctx<S>)> Listener<S> for F {
    fn on_event(&mut self, event: &Event, ctx: &mut Ctx<S>) {
        self(event, ctx)
    }
}

struct Entry<S> {
    priority: i32,
    once: bool,
    seq: u64,
    listener: Box<dyn Listener<S>>,
}

/// Listeners by event name. Higher priority runs first; equal priorities run in the order
/// they were added.
pub struct EventBus<S = ()> {
    listeners: HashMap<String, Vec<Entry<S>>>,
    seq: u64,
}

impl<S> Default for EventBus<S> {
    fn default() -> Self {
        EventBus { listeners: HashMap::new(), seq: 0 }
    }
}

impl<S> EventBus<S> {
    /// No listeners.
    pub fn new() -> EventBus<S> {
        EventBus::default()
    }

    /// Hooks `listener` on `event`. A `once` listener is removed after it first runs.
    pub fn on(&mut self, event: &str, priority: i32, once: bool, listener: impl Listener<S> + 'static) {
        self.seq += 1;
        let list = self.listeners.entry(event.to_owned()).or_default();
        list.push(Entry { priority, once, seq: self.seq, listener: Box::new(listener) });
        list.sort_by_key(|e| (std::cmp::Reverse(e.priority), e.seq));
    }

    /// Whether anything listens on `event` (so callers can skip building an event's data).
    pub fn has(&self, event: &str) -> bool {
        self.listeners.get(event).is_some_and(|l| !l.is_empty())
    }

    /// Runs the listeners of `event.name`; returns how many ran. A listener that panics is
    /// logged with its message and skipped: the others still run, the daemon keeps going.
    pub fn emit(&mut self, event: &Event, ctx: &mut Ctx<S>) -> usize {
        let Some(list) = self.listeners.get_mut(&event.name) else { return 0 };
        let n = list.len();
        for entry in list.iter_mut() {
            let run = std::panic::AssertUnwindSafe(|| entry.listener.on_event(event, ctx));
            if let Err(panic) = std::panic::catch_unwind(run) {
                log::error!("a listener of {} panicked: {}", event.name, tomte_rpc::fault::panic_text(&*panic));
            }
        }
        list.retain(|e| !e.once);
        n
    }

    /// Removes every listener of `event`.
    pub fn clear(&mut self, event: &str) {
        self.listeners.remove(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn priority_order_and_once() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let mut bus = EventBus::new();
        for (name, prio, once) in [("low", 0, false), ("high", 10, false), ("once", 5, true)] {
            let seen = seen.clone();
            bus.on("x", prio, once, move |_: &Event, _: &mut Ctx| seen.borrow_mut().push(name));
        }
        let mut ctx = Ctx::detached_for_tests();
        let ev = Event::new("x", Value::Nil);
        assert_eq!(bus.emit(&ev, &mut ctx), 3);
        assert_eq!(bus.emit(&ev, &mut ctx), 2);
        assert_eq!(*seen.borrow(), ["high", "once", "low", "high", "low"]);
        assert_eq!(bus.emit(&Event::new("y", Value::Nil), &mut ctx), 0);
    }
}
