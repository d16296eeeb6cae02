//! The context every RPC handler, event listener and timer receives: what the daemon knows
//! about itself, and the requests they may make of it (stop, reload, emit an event).

use std::time::{Duration, Instant};

use tomte_rpc::{Fault, Value};

use std::rc::Rc;

use crate::access::{Caller, Grants};
use crate::event::Event;
use crate::net::Peer;
use crate::worker::supervisor::Supervisor;

/// The daemon's state as handlers see it.
#[derive(Debug)]
pub struct Ctx {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) started: Instant,
    pub(crate) stop: bool,
    pub(crate) reload: bool,
    pub(crate) connections: usize,
    pub(crate) limits: crate::net::Limits,
    pub(crate) queued: Vec<Event>,
    pub(crate) workers: Supervisor,
    /// The ticket of the answer the running handler deferred (see [`Ctx::ask`]).
    pub(crate) deferred: Option<u64>,
    /// The registry's flag: false inside a batch or a multicall, where no answer can wait.
    pub(crate) may_defer: std::rc::Rc<std::cell::Cell<bool>>,
    /// The connection being served: its identity and grants (none outside a call).
    pub(crate) caller: Option<Rc<Caller>>,
    /// Refused calls, logged at most once per interval.
    pub(crate) refusals: crate::logging::Throttle,
    /// Tokens, when the daemon has a token file.
    pub(crate) auth: Option<Rc<crate::access::Auth>>,
    /// A token presented on the connection being served was wrong: it is closed.
    pub(crate) auth_failed: bool,
}

impl Ctx {
    pub(crate) fn new(name: &str, version: &str, workers: Supervisor) -> Ctx {
        Ctx {
            name: name.to_owned(),
            version: version.to_owned(),
            started: Instant::now(),
            stop: false,
            reload: false,
            connections: 0,
            limits: crate::net::Limits::default(),
            queued: Vec::new(),
            workers,
            deferred: None,
            may_defer: std::rc::Rc::new(std::cell::Cell::new(true)),
            caller: None,
            refusals: crate::logging::Throttle::new(Duration::from_secs(10)),
            auth: None,
            auth_failed: false,
        }
    }

    #[cfg(test)]
    pub(crate) fn detached_for_tests() -> Ctx {
        Ctx::new("test", "0", Supervisor::default())
    }

    /// Authenticates the connection being served by a token's secret: on success its
    /// identity is the token's from now on (grants from `token:NAME` rules, or all); a wrong
    /// secret closes the connection once the answer is written. False when the daemon has no
    /// tokens.
    pub(crate) fn authenticate(&mut self, secret: &[u8]) -> bool {
        let (Some(auth), Some(caller)) = (self.auth.clone(), self.caller.clone()) else { return false };
        match auth.tokens.check(secret) {
            Some(name) => {
                let mut peer = caller.peer.clone();
                peer.token = Some(name.to_owned());
                let grants = auth.policy.grants(&peer, auth.owner);
                self.caller = Some(Rc::new(crate::access::Caller { peer, grants }));
                true
            }
            None => {
                self.auth_failed = true;
                false
            }
        }
    }

    /// Asks for a graceful stop: answers already computed are still sent.
    pub fn stop(&mut self) {
        self.stop = true;
        // From now on a worker that ends (it may have had the same Ctrl-C) is not restarted.
        self.workers.halt();
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

    /// Sends `request` to worker `worker` and answers the current call with the worker's answer,
    /// when it comes, without blocking the loop or other clients. Return what it returns from
    /// the handler: `return ctx.ask("alpha", Value::from("count"));`. A worker that ends before
    /// answering makes the answer an error.
    pub fn ask(&mut self, worker: &str, request: Value) -> Result<Value, Fault> {
        if !self.may_defer.get() {
            return Err(Fault::internal(format!(
                "asking worker '{worker}' cannot be done inside a batch or a system.multicall: call it alone"
            )));
        }
        let ticket = self.workers.ask(worker, request)?;
        self.deferred = Some(ticket);
        Err(Fault::deferred())
    }

    /// The daemon's workers: their state, and commands to them.
    pub fn workers(&mut self) -> &mut Supervisor {
        &mut self.workers
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
    /// The limits the daemon enforces on clients.
    pub fn limits(&self) -> &crate::net::Limits {
        &self.limits
    }

    /// Who made the call being served: the identity of its connection, decided when the
    /// connection was accepted (see [`crate::net::Peer`]). `None` outside a call: in timers
    /// and in event listeners (`daemon.socket.client.connect` carries the identity itself).
    pub fn peer(&self) -> Option<&Peer> {
        self.caller.as_deref().map(|c| &c.peer)
    }

    /// What the caller may do (see [`crate::access`]); `None` outside a call.
    pub fn grants(&self) -> Option<&Grants> {
        self.caller.as_deref().map(|c| &c.grants)
    }

    /// Client connections open now.
    pub fn connections(&self) -> usize {
        self.connections
    }
}
