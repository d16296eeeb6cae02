//! Workers: child processes forked from the daemon, each with its own loop, supervised by the
//! daemon and talking to it over a shared-memory [`channel`].
//!
//! A worker implements [`Worker`] (or is a closure run once per iteration). The daemon installs
//! it with a [`WorkerSpec`] — name, interval, restart policy, back-off, crash-loop limit, hang
//! timeout, stop grace — and from then on forks it, watches it (SIGCHLD, heartbeat), restarts
//! it per policy, sends it commands (`pause`, `resume`, `stop`, custom words) and requests,
//! and stops it with the daemon.
//!
//! # Signals
//!
//! A worker is in the daemon's process group, so signals sent to the group (Ctrl-C, Ctrl-Z,
//! `kill -TERM -PGID`, systemd stopping the unit's cgroup) reach it as well as the daemon. In a
//! worker:
//!
//! | signals | effect |
//! | --- | --- |
//! | SIGTERM, SIGINT | a clean stop, exactly like the daemon's `stop` command: the loop ends before its next sleep or iteration (a running `loop` finishes first), `spindown` runs, the process exits 0 |
//! | SIGTSTP, SIGTTIN, SIGTTOU | ignored: a worker is never frozen, so whoever asks it is never left waiting |
//! | SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT, SIGRTMIN..=SIGRTMAX | caught by a handler that does nothing: they are the daemon's signals; a program the worker executes gets them back at their defaults |
//! | SIGPIPE | ignored (an `EPIPE` error) |
//! | SIGCHLD, SIGCONT, SIGURG, SIGWINCH | default, which does nothing |
//! | SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT, SIGQUIT, SIGXCPU, SIGXFSZ | default: the worker dies (a core dump); it is restarted per policy and the death counts towards its crash-loop limit |
//! | SIGKILL, SIGSTOP | cannot be caught |
//!
//! A worker's own code may still install handlers of its own in `spinup` (they replace these).
//! The daemon's stop escalation is unchanged: `stop`, the grace period, SIGTERM (which a worker
//! now treats as one more stop request), the grace period, SIGKILL, which ends a worker stuck in
//! its own code.
//!
//! How an exit is judged: exit 0 (its own `stop`, or SIGTERM/SIGINT) is a clean exit, restarted
//! only under [`Policy::Always`] and never counted as a crash; anything else is a failure. While
//! the daemon stops, nothing is restarted and exits are not judged at all.
//!
//! # Output
//!
//! A worker's stdout and stderr are pipes to the daemon, in place before its code runs (the
//! factory's included): what it prints — a `println!`, a C library writing to descriptor 2,
//! the standard panic hook's message — is read by the daemon's loop, split into lines and
//! logged with the worker's name and pid, stdout at info and stderr at warn; its `log` records
//! keep their own level (see [`crate::logging`]). A program the worker executes inherits the
//! pipes. So that a worker printing without end can neither stall the daemon nor grow it:
//!
//! * at most 64 KiB are read from each pipe in one turn of the loop (the rest at the next
//!   turn, after everything else has been served);
//! * a line is cut at 4 KiB (marked ` [cut]`, the rest of it dropped);
//! * at most 1000 lines of a worker are logged each second; the others are read and dropped,
//!   and `N lines dropped from worker NAME` is logged when the second is over.
//!
//! Nothing is lost when a worker crashes: once it is reaped, its pipes are read to their end and
//! a last line without a newline is logged too. A worker blocks in its write while the daemon
//! cannot keep up (a full pipe), as it would on a slow terminal.
//!
//! # Pools
//!
//! [`WorkerSpec::instances`] makes a spec a pool: `n` identical workers `NAME.0` … `NAME.{n-1}`,
//! each supervised as a worker is. [`Ctx::ask`](crate::Ctx::ask) of `NAME` goes to the least
//! busy live instance; of `NAME.2`, to that one. How asks are dispatched, queued, timed out and
//! spread over a pool that grows or shrinks:
//!
//! | setting | default | what it does |
//! | --- | --- | --- |
//! | [`instances`](WorkerSpec::instances) | not a pool | the pool's size; `worker.scale NAME N` and `[workers.NAME] instances` change it at run time |
//! | [`max_in_flight`](WorkerSpec::max_in_flight) | 1 in a pool, none otherwise | the asks one process holds at once; the instance with the fewest gets the next ask, ties round-robin |
//! | [`queue_limit`](WorkerSpec::queue_limit) | 64 | asks waiting while every instance is at its limit; one more fails at once with −32000 "Pool busy" |
//! | [`ask_timeout`](WorkerSpec::ask_timeout) | 30 s, every worker | the deadline of an ask, queue included: −32003, the late answer dropped |
//! | [`max_requests`](WorkerSpec::max_requests), [`max_memory`](WorkerSpec::max_memory) | none | recycle a process after N asks, or above an RSS (checked every second) |
//! | [`autoscale`](WorkerSpec::autoscale) | none | grow while asks wait (one instance per 200 ms), shrink after 10 s idle (one per 10 s) |
//!
//! An instance that dies fails the asks it held (−32011 naming it) and no other; the rest of the
//! pool serves meanwhile, and its replacement takes asks once started. A pool is `failed` only
//! when every instance is; it is ready (`/readyz`) while one instance serves. Shrinking stops
//! instances not running first, then idle ones, then the least busy; a stopped instance answers
//! the asks it holds before it ends, so a scale-down fails no call. `worker.pause`, `resume`,
//! `start`, `stop` and `restart` act on a pool's every instance, or on one (`NAME.2`);
//! `worker.list` shows a pool as one entry with its instances, each with its `asks` answered and
//! `in_flight`. A plain worker (not a pool) keeps its asks in its channel, in order, and refuses
//! them while it is not running; to restart or recycle without refusing a call, make it a pool.
//! Per-process limits ([`nice`](WorkerSpec::nice), [`limit_nofile`](WorkerSpec::limit_nofile),
//! [`user`](WorkerSpec::user), …) apply to each instance.
//!
//! ```no_run
//! use std::time::Duration;
//! use tomte::worker::{WorkerCtx, WorkerSpec};
//! use tomte::{Daemon, Fault, Method, Value};
//!
//! struct Hasher;
//! impl tomte::worker::Worker for Hasher {
//!     fn r#loop(&mut self, _ctx: &mut WorkerCtx) {}
//!     fn on_message(&mut self, request: Value, _ctx: &mut WorkerCtx) -> Result<Value, Fault> {
//!         Ok(request) // the work, in its own process
//!     }
//! }
//!
//! let mut daemon = Daemon::new("hash");
//! daemon.worker(WorkerSpec::new("hasher", Duration::from_secs(1), || Hasher).instances(2).max_requests(Some(10_000)));
//! daemon.method(Method::new_async("hash.echo", |mut p, ctx| ctx.ask("hasher", p.take::<Value>("v").unwrap_or_default())));
//! ```
//!
//! The command words that start with `tomte.` are the daemon's (`tomte.loglevel=debug` sets a
//! worker's log level, as `daemon.loglevel` does); [`Worker::on_command`] does not see them.

pub mod channel;
pub(crate) mod child;
pub(crate) mod output;
mod reply;
pub(crate) mod supervisor;
pub(crate) mod wire;

use std::time::Duration;

use tomte_rpc::{Fault, Value};

pub use reply::{AskId, Replier};
pub use supervisor::{Policy, PoolInfo, State, Supervisor, WorkerInfo};

/// A worker's behaviour. Only `loop` (one iteration) is required.
///
/// `loop` is a keyword in Rust, so the method is written `r#loop` where it is defined or called.
pub trait Worker {
    /// Runs once in the new process, before the first iteration.
    fn spinup(&mut self, _ctx: &mut WorkerCtx) {}
    /// One iteration; called every interval (fixed rate, no catch-up) unless paused.
    fn r#loop(&mut self, ctx: &mut WorkerCtx);
    /// Runs once when the worker is asked to stop, before the process exits.
    fn spindown(&mut self, _ctx: &mut WorkerCtx) {}
    /// A command word from the daemon: the event `daemon.worker.WORD` inside the worker.
    /// `pause`, `resume` and `stop` have already acted when this runs.
    fn on_command(&mut self, _word: &str, _ctx: &mut WorkerCtx) {}
    /// A request from the daemon (`Ctx::ask`), answered with a value or a fault.
    fn on_message(&mut self, _request: Value, ctx: &mut WorkerCtx) -> Result<Value, Fault> {
        Err(Fault::internal(format!("worker '{}' takes no messages", ctx.name())))
    }
    /// A request from the daemon, answered now (`Some`, by default what
    /// [`on_message`](Worker::on_message) answers) or later (`None`): then the worker answers
    /// it with [`WorkerCtx::reply`], or from another thread with a [`Replier`], and meanwhile
    /// takes the next asks — as many at once as the spec's
    /// [`max_in_flight`](WorkerSpec::max_in_flight) lets the daemon send it.
    ///
    /// Asks not answered yet when the worker is asked to stop get up to 5 s more (the
    /// iterations stop, the answers are still sent), or until the daemon's SIGTERM at the end
    /// of the stop grace, before `spindown` runs; those left then fail with −32011 once the
    /// process ends.
    fn on_ask(&mut self, ask: AskId, request: Value, ctx: &mut WorkerCtx) -> Option<Result<Value, Fault>> {
        let _ = ask;
        Some(self.on_message(request, ctx))
    }
}

/// A closure is a worker whose iteration is the closure.
impl<F: FnMut(&mut WorkerCtx)> Worker for F {
    fn r#loop(&mut self, ctx: &mut WorkerCtx) {
        self(ctx)
    }
}

/// What a worker knows and can do from inside its process.
#[derive(Debug)]
pub struct WorkerCtx {
    pub(crate) name: String,
    pub(crate) iterations: u64,
    pub(crate) up: Vec<Value>,
    pub(crate) stop: bool,
    pub(crate) metrics: crate::metrics::Metrics,
    /// Answers given with [`WorkerCtx::reply`], and those from repliers.
    pub(crate) replies: Vec<(AskId, Result<Value, Fault>)>,
    pub(crate) queue: std::sync::Arc<reply::Replies>,
}

impl WorkerCtx {
    /// The worker's own metrics registry: what it registers there reaches the daemon's
    /// `/metrics` with a label `worker="NAME"` added first (a snapshot goes up at most once a
    /// second while the worker runs, and as it spins down). Families of the same name from
    /// several workers are one family, so give them the same kind and labels in every worker; a
    /// label of its own named `worker` leaves the family out.
    ///
    /// ```no_run
    /// use tomte::worker::WorkerCtx;
    /// fn a_loop(ctx: &mut WorkerCtx) {
    ///     if let Ok(done) = ctx.metrics().counter("jobs_done_total", "Jobs this worker did.") {
    ///         done.inc();
    ///     }
    /// }
    /// ```
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The worker's name, as its [`WorkerSpec`] gave it.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Iterations completed so far in this process.
    pub fn iterations(&self) -> u64 {
        self.iterations
    }
    /// Sends a message up to the daemon, where it becomes the event `daemon.worker.message`
    /// with `{worker, message}` as data.
    pub fn send(&mut self, message: impl Into<Value>) {
        self.up.push(message.into());
    }
    /// Asks the worker's own loop to end (spindown runs, then the process exits 0).
    pub fn stop(&mut self) {
        self.stop = true;
    }
    /// Answers an ask that [`Worker::on_ask`] left for later; sent when the current callback
    /// returns. Once per ask: a second answer is dropped.
    pub fn reply(&mut self, ask: AskId, answer: Result<Value, Fault>) {
        self.replies.push((ask, answer));
    }
    /// A handle that answers asks from any thread of this process (see [`Replier`]).
    pub fn replier(&self) -> Replier {
        Replier(std::sync::Arc::clone(&self.queue))
    }
}

/// Builds a fresh worker for each (re)start, in the worker's process: what the worker opens
/// (files, sockets) it opens there, after the daemon's descriptors are closed. It owns no
/// descriptor itself (see [`WorkerSpec::new`], "Descriptors").
pub type Factory = std::rc::Rc<dyn Fn() -> Box<dyn Worker>>;

/// How a worker is installed on the daemon: one process, or a pool of identical ones
/// ([`WorkerSpec::instances`]).
#[derive(Clone)]
pub struct WorkerSpec {
    pub(crate) name: String,
    pub(crate) interval: Duration,
    pub(crate) factory: Factory,
    pub(crate) policy: Policy,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) stable_after: Duration,
    pub(crate) crash_limit: (u32, Duration),
    pub(crate) hang_timeout: Option<Duration>,
    pub(crate) stop_grace: Duration,
    pub(crate) ring_bytes: usize,
    pub(crate) privileges: crate::process::privileges::WorkerPrivileges,
    pub(crate) pool: Option<PoolSpec>,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) ask_timeout: Option<Duration>,
    pub(crate) max_requests: Option<u64>,
    pub(crate) max_memory: Option<u64>,
}

/// What makes a spec a pool: its size and how its queue behaves.
#[derive(Clone, Debug)]
pub(crate) struct PoolSpec {
    pub(crate) instances: usize,
    pub(crate) queue_limit: usize,
    /// Automatic scaling between these bounds (see [`WorkerSpec::autoscale`]).
    pub(crate) autoscale: Option<(usize, usize)>,
}

/// The most instances a pool may have.
pub const MAX_INSTANCES: usize = 1024;
/// How long an ask waits for its answer, by default (see [`WorkerSpec::ask_timeout`]).
pub const ASK_TIMEOUT: Duration = Duration::from_secs(30);
/// How many asks may wait in a pool's queue, by default (see [`WorkerSpec::queue_limit`]).
pub const QUEUE_LIMIT: usize = 64;

impl WorkerSpec {
    /// A worker called `name`, iterating every `interval` (sub-second allowed), built by
    /// `factory` at each start, inside the new process. Defaults: policy `Always`, back-off
    /// 100 ms doubling to 30 s (reset after 10 s of stable running), at most 5 restarts in 60 s
    /// before `failed`, hang timeout 30 s, stop grace 5 s, 64 KiB rings.
    ///
    /// # Descriptors
    ///
    /// The factory must own no file descriptor: no open file, socket, pipe or anything holding
    /// one (an `OwnedFd`, a `File`, a `TcpStream`, a client…), moved or cloned into it. A new
    /// worker process closes every descriptor it inherits but its channel's before the factory
    /// runs, so such an object would be left with a closed descriptor, or one whose number the
    /// worker has reused for another file. Open what the worker needs in the factory's body or
    /// in [`Worker::spinup`]: both run in the worker, after the close. (The daemon relies on
    /// this rule to fork workers soundly.)
    pub fn new<W: Worker + 'static>(name: &str, interval: Duration, factory: impl Fn() -> W + 'static) -> WorkerSpec {
        WorkerSpec {
            name: name.to_owned(),
            interval: interval.max(Duration::from_micros(100)),
            factory: std::rc::Rc::new(move || Box::new(factory())),
            policy: Policy::Always,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(10),
            crash_limit: (5, Duration::from_secs(60)),
            hang_timeout: Some(Duration::from_secs(30)),
            stop_grace: Duration::from_secs(5),
            ring_bytes: 64 << 10,
            privileges: Default::default(),
            pool: None,
            max_in_flight: None,
            ask_timeout: Some(ASK_TIMEOUT),
            max_requests: None,
            max_memory: None,
        }
    }

    // Pools.

    /// Makes the spec a pool of `n` identical workers, `NAME.0` … `NAME.{n-1}`, each supervised
    /// as a worker is (restart, back-off, crash-loop limit and hang detection per instance).
    /// [`Ctx::ask`](crate::Ctx::ask) of `NAME` sends the request to the live instance with the
    /// fewest asks in flight (ties: round-robin); when every one holds
    /// [`max_in_flight`](Self::max_in_flight) asks, requests wait in the pool's queue
    /// ([`queue_limit`](Self::queue_limit)), past which an ask fails at once with −32000 "pool
    /// busy". An ask of `NAME.2` goes to that instance. `n` may be 0 (a pool grown later with
    /// `worker.scale`), at most [`MAX_INSTANCES`].
    pub fn instances(mut self, n: usize) -> Self {
        let n = n.min(MAX_INSTANCES);
        match &mut self.pool {
            Some(pool) => pool.instances = n,
            None => self.pool = Some(PoolSpec { instances: n, queue_limit: QUEUE_LIMIT, autoscale: None }),
        }
        self
    }
    /// How many asks one process holds at once (default: 1 in a pool, for CPU-bound work; a
    /// worker that answers later may take more). A worker that is not a
    /// pool has no limit by default: its asks wait in its channel, in order; given one, it
    /// refuses an ask past it at once with −32000 "Worker busy" (it has no queue).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = Some(n.max(1));
        self
    }
    /// How many asks may wait in the pool's queue while every instance is at its limit (default
    /// [`QUEUE_LIMIT`]); one more fails at once with −32000 "pool busy": back-pressure, not memory.
    /// An ask waits as the frame it becomes in the channel, and one larger than the channel
    /// carries ([`WorkerSpec::ring_bytes`]) is refused at once, so a queue holds at most
    /// `queue_limit` × that size.
    pub fn queue_limit(mut self, n: usize) -> Self {
        self = if self.pool.is_none() { self.instances(1) } else { self };
        if let Some(pool) = &mut self.pool {
            pool.queue_limit = n;
        }
        self
    }
    /// The deadline of every ask to this worker, counted from the ask, queue included (default
    /// [`ASK_TIMEOUT`]; `None`: none). Past it the call fails with −32003 "Timed out" and a late
    /// answer is dropped; a worker stuck on it is killed by hang detection later.
    pub fn ask_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.ask_timeout = timeout;
        self
    }
    /// Recycles a process after it answered `n` asks (as gunicorn's and PHP-FPM's `max_requests`
    /// do against leaks): it takes no more, answers those it holds, stops and is started again.
    pub fn max_requests(mut self, n: Option<u64>) -> Self {
        self.max_requests = n.map(|n| n.max(1));
        self
    }
    /// Recycles a process whose resident memory (`VmRSS`, pages shared with the daemon
    /// included) is above `bytes`, checked every second (PM2's `max_memory_restart`): it takes no
    /// more asks, answers those it holds, stops and is started again.
    pub fn max_memory(mut self, bytes: Option<u64>) -> Self {
        self.max_memory = bytes;
        self
    }
    /// Lets the pool size itself between `min` and `max` instances (PHP-FPM's dynamic mode):
    /// while asks wait in its queue it grows by one instance every 200 ms (up to `max`); once no
    /// instance has held an ask and none has waited for 10 s, it shrinks by one (down to `min`),
    /// then again every 10 s. It starts with [`instances`](Self::instances) clamped to the
    /// bounds (`min` without it); `worker.scale` moves it within them.
    pub fn autoscale(mut self, min: usize, max: usize) -> Self {
        let max = max.clamp(min.max(1), MAX_INSTANCES);
        let min = min.min(max);
        let pool = self.pool.get_or_insert(PoolSpec { instances: min, queue_limit: QUEUE_LIMIT, autoscale: None });
        pool.instances = pool.instances.clamp(min, max);
        pool.autoscale = Some((min, max));
        self
    }

    /// What happens when the worker's process ends (default [`Policy::Always`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
    /// Exponential back-off between restarts: from `min`, doubling, capped at `max`; reset once
    /// a worker has run for `stable_after`. Zero `min` restarts at once.
    pub fn backoff(mut self, min: Duration, max: Duration, stable_after: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self.stable_after = stable_after;
        self
    }
    /// More than `restarts` restarts within `window` puts the worker in state `failed`.
    pub fn crash_limit(mut self, restarts: u32, window: Duration) -> Self {
        self.crash_limit = (restarts, window);
        self
    }
    /// A worker whose heartbeat is older than this is killed and restarted; `None` disables.
    pub fn hang_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.hang_timeout = timeout;
        self
    }
    /// How long a stopping worker gets after `stop`, then again after SIGTERM, before SIGKILL.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }
    /// The size of each of the two rings of the worker's channel.
    pub fn ring_bytes(mut self, bytes: usize) -> Self {
        self.ring_bytes = bytes;
        self
    }

    // Privileges and limits: applied in the worker's process, after the fork and before the
    // factory runs; a failure ends the worker with exit code 77 and a log line, never a worker
    // with the wrong identity (see `crate::process::privileges`, "Workers").

    /// Runs the worker as `user` (a name, or a uid): supplementary groups from `/etc/group`,
    /// then real, effective and saved gids and uids, checked. The daemon must be root (or that
    /// user already).
    pub fn user(mut self, user: &str) -> Self {
        self.privileges.user = Some(user.to_owned());
        self
    }
    /// Runs the worker as `group` (a name, or a gid) instead of its user's primary group; alone,
    /// only the group changes (the supplementary groups become just this one).
    pub fn group(mut self, group: &str) -> Self {
        self.privileges.group = Some(group.to_owned());
        self
    }
    /// The worker's niceness (absolute: `setpriority`, as `--nice` is for the daemon; going below
    /// the daemon's takes root).
    pub fn nice(mut self, nice: i32) -> Self {
        self.privileges.nice = Some(nice);
        self
    }
    /// The worker's soft limit of open descriptors (`RLIMIT_NOFILE`); above the hard limit, the
    /// hard one too (root only). Default: the daemon's, which it inherits.
    pub fn limit_nofile(mut self, n: u64) -> Self {
        self.privileges.limit_nofile = Some(n);
        self
    }
    /// The worker's soft limit of a core file's size in bytes (`RLIMIT_CORE`): a number, or
    /// [`Rlim::Unlimited`](crate::process::Rlim::Unlimited). Above 0, a worker whose ids changed
    /// is made dumpable again, so it leaves a core.
    pub fn limit_core(mut self, n: impl Into<crate::process::Rlim>) -> Self {
        self.privileges.limit_core = Some(n.into());
        self
    }
}
