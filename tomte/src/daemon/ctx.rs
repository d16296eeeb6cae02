//! The context every RPC handler, event listener and timer receives: what the daemon knows
//! about itself, and the requests they may make of it (stop, reload, emit an event).

use std::time::{Duration, Instant};

use tomte_rpc::Value;

use crate::event::Event;

/// The daemon's state as handlers see it.
#[derive(Debug)]
pub struct Ctx {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) started: Instant,
    pub(crate) stop: bool,
    pub(crate) reload: bool,
    pub(crate) connections: usize,
    pub(crate) queued: Vec<Event>,
}

impl Ctx {
    pub(crate) fn new(name: &str, version: &str) -> Ctx {
        Ctx {
            name: name.to_owned(),
            version: version.to_owned(),
            started: Instant::now(),
            stop: false,
            reload: false,
            connections: 0,
            queued: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn detached_for_tests() -> Ctx {
        Ctx::new("test", "0")
    }

    /// Asks for a graceful stop: answers already computed are still sent.
    pub fn stop(&mut self) {
        self.stop = true;
    }

    /// Whether a stop has been asked for.
    pub fn stopping(&self) -> bool {
        self.stop
    }

    /// Asks for a reload: the log is reopened and `daemon.reload` is emitted.
    pub fn reload(&mut self) {
        self.reload = true;
    }

    /// Queues an event; its listeners run once the current handler or listener returns.
    pub fn emit(&mut self, name: impl Into<String>, data: impl Into<Value>) {
        self.queued.push(Event::new(name, data.into()));
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
    /// Client connections open now.
    pub fn connections(&self) -> usize {
        self.connections
    }
}
