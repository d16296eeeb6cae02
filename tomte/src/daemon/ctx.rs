//! The context every RPC handler, event listener and timer receives: the application's state,
//! what the daemon knows about itself, and the requests they may make of it (stop, reload,
//! emit an event, ask a worker).

use std::time::{Duration, Instant};

use tomte_rpc::Value;

use std::rc::Rc;

use crate::access::{Caller, Grants};
use crate::event::Event;
use crate::net::Peer;
use crate::task::{Ask, Reactor, Sleep, Timeout};
use crate::worker::supervisor::Supervisor;

/// The daemon as handlers, listeners and timers see it: the application's state `S` (see
/// [`Daemon::with_state`](crate::Daemon::with_state); `()` by default) and the daemon's own.
pub struct Ctx<S = ()> {
    /// The application's state.
    pub(crate) state: S,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) started: Instant,
    pub(crate) stop: bool,
    pub(crate) reload: bool,
    pub(crate) connections: usize,
    pub(crate) limits: crate::net::Limits,
    pub(crate) queued: Vec<Event>,
    pub(crate) workers: Supervisor,
    /// Where workers' answers and deadlines reach the futures waiting for them.
    pub(crate) reactor: Rc<Reactor>,
    /// Answers owed by async handlers now (for `daemon.status`).
    pub(crate) tasks: usize,
    /// The connection being served: its identity and grants (none outside a call).
    pub(crate) caller: Option<Rc<Caller>>,
    /// Refused calls, logged at most once per interval.
    pub(crate) refusals: crate::logging::Throttle,
    /// Tokens, when the daemon has a token file.
    pub(crate) auth: Option<Rc<crate::access::Auth>>,
    /// A token presented on the connection being served was wrong: it is closed.
    pub(crate) auth_failed: bool,
    /// `daemon.reload` calls waiting for the reload's report.
    pub(crate) reload_waits: Vec<super::builtins::ReloadWait>,
    /// An upgrade asked for, with the binary when it is not the default one.
    pub(crate) upgrade: Option<Option<std::path::PathBuf>>,
    /// `daemon.upgrade` calls waiting for the new process to be ready, or to fail, with the
    /// binary each asked for.
    pub(crate) upgrade_waits: Vec<(Option<std::path::PathBuf>, super::builtins::ReloadWait)>,
    /// The application's metrics (see [`Ctx::metrics`]).
    pub(crate) metrics: crate::metrics::Metrics,
    /// Connection figures, counted by the loop.
    pub(crate) net: crate::metrics::NetStats,
    /// The registry's call statistics (`calls` of `daemon.status`).
    pub(crate) calls: Rc<tomte_rpc::Stats>,
    /// The message being served came on a connection events can be pushed on (NDJSON).
    pub(crate) pushable: bool,
    /// A subscription the message being served asked for, for the loop to set up.
    pub(crate) sub_request: Option<super::observe::SubRequest>,
    /// Connections holding a subscription now.
    pub(crate) subscribers: usize,
    /// Whether `GET /` serves the dashboard (`--dashboard`).
    pub(crate) dashboard: bool,
    /// The application's readiness checks.
    pub(crate) ready_checks: super::observe::ReadyChecks<S>,
}

impl<S> std::fmt::Debug for Ctx<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("name", &self.name).field("connections", &self.connections).finish_non_exhaustive()
    }
}

impl Ctx {
    #[cfg(test)]
    pub(crate) fn detached_for_tests() -> Ctx {
        Ctx::new("test", "0", Supervisor::default(), ())
    }
}

impl<S> Ctx<S> {
    pub(crate) fn new(name: &str, version: &str, workers: Supervisor, state: S) -> Ctx<S> {
        Ctx {
            state,
            name: name.to_owned(),
            version: version.to_owned(),
            started: Instant::now(),
            stop: false,
            reload: false,
            connections: 0,
            limits: crate::net::Limits::default(),
            queued: Vec::new(),
            workers,
            reactor: Rc::default(),
            tasks: 0,
            caller: None,
            refusals: crate::logging::Throttle::new(Duration::from_secs(10)),
            auth: None,
            auth_failed: false,
            reload_waits: Vec::new(),
            upgrade: None,
            upgrade_waits: Vec::new(),
            metrics: crate::metrics::Metrics::default(),
            net: crate::metrics::NetStats::default(),
            calls: Rc::default(),
            pushable: false,
            sub_request: None,
            subscribers: 0,
            dashboard: false,
            ready_checks: Rc::default(),
        }
    }

    /// The application's state, to read and change: `ctx.state().count += 1`.
    pub fn state(&mut self) -> &mut S {
        &mut self.state
    }

    /// The application's state, shared.
    pub fn state_ref(&self) -> &S {
        &self.state
    }

    /// Gives the connection being served its own identity back, without the token a request
    /// presented before (an HTTP request without `Authorization`).
    pub(crate) fn unauthenticate(&mut self) {
        let (Some(auth), Some(caller)) = (self.auth.clone(), self.caller.clone()) else { return };
        if caller.peer.token.is_none() {
            return;
        }
        let mut peer = caller.peer.clone();
        peer.token = None;
        let grants = auth.policy.grants(&peer, auth.owner);
        self.caller = Some(Rc::new(crate::access::Caller { peer, grants }));
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

    /// Asks for a reload, at the end of the loop's turn: the configuration file is read again
    /// and applied, the log reopened, and `daemon.reload` emitted.
    pub fn reload(&mut self) {
        self.reload = true;
    }

    /// Asks for a binary upgrade, at the end of the loop's turn: `binary` (the one the daemon
    /// was started from when `None`) is started with the listening sockets and the pid file,
    /// and once it reports ready this daemon drains and exits; if it fails, nothing changes
    /// (see [Upgrades](crate#upgrades)). What SIGUSR2 does.
    pub fn upgrade(&mut self, binary: Option<std::path::PathBuf>) {
        if self.upgrade.is_none() {
            self.upgrade = Some(binary);
        }
    }

    /// Queues an event; its listeners run once the current handler or listener returns.
    pub fn emit(&mut self, name: impl Into<String>, data: impl Into<Value>) {
        self.queued.push(Event::new(name, data.into()));
    }

    /// The future of worker `worker`'s answer to `request`, for a method made with
    /// [`Method::new_async`](crate::Method::new_async): the loop serves every other client
    /// while the worker works. The request goes out when the future is first polled; asks
    /// awaited together (`tomte::future::join`) run at once.
    ///
    /// The answer is an error when the worker is unknown (−32010), not running, or ends
    /// before answering (−32011); limit the wait with [`Ctx::timeout`].
    ///
    /// ```no_run
    /// # use tomte::{Method, Value};
    /// let m: Method<tomte::Ctx> = Method::new_async("pool.count", |_, ctx| {
    ///     let count = ctx.ask("alpha", Value::from("count"));
    ///     async move { Ok(Value::structure([("alpha", count.await?)])) }
    /// });
    /// ```
    pub fn ask(&self, worker: &str, request: impl Into<Value>) -> Ask {
        Ask::new(worker, request.into(), &self.reactor)
    }

    /// A future ready once `duration` has passed (a timer of the loop; nothing blocks).
    pub fn sleep(&self, duration: Duration) -> Sleep {
        let deadline =
            Instant::now().checked_add(duration).unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 32));
        Sleep::new(deadline, &self.reactor)
    }

    /// `future` with a time limit: its output, or [`Elapsed`](crate::task::Elapsed) when
    /// `limit` passes first (then `future` is dropped, and an ask in it forgotten).
    /// `Elapsed` converts into a −32003 fault, so `ctx.timeout(d, ask).await??` reads well.
    pub fn timeout<F: std::future::Future>(&self, limit: Duration, future: F) -> Timeout<F> {
        Timeout::new(future, limit, &self.reactor)
    }

    /// Answers owed by async handlers now (their futures wait for workers or timers).
    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// The daemon's workers: their state, and commands to them.
    pub fn workers(&mut self) -> &mut Supervisor {
        &mut self.workers
    }

    /// The daemon's name (`echo`), given when its [`Daemon`](crate::Daemon) was made.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The version `daemon.status` reports (see [`Daemon::version`](crate::Daemon::version)).
    pub fn version(&self) -> &str {
        &self.version
    }
    /// How long the daemon has run: the time since its loop was set up.
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

    /// The application's metrics registry, which `GET /metrics` renders after the daemon's
    /// own families (see [`crate::metrics::Metrics`]; its handles are cheap to keep in the
    /// state).
    ///
    /// ```
    /// use tomte::{Ctx, Method, Value};
    /// let m: Method<Ctx> = Method::new("jobs.add", |mut p, ctx| {
    ///     let queue: String = p.take("queue")?;
    ///     let jobs = ctx.metrics().counter_vec("jobs_total", "Jobs queued.", &["queue"]);
    ///     jobs.map_err(|e| tomte::Fault::internal(e.to_string()))?.with(&[&queue]).inc();
    ///     Ok(Value::Nil)
    /// });
    /// ```
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }
}
