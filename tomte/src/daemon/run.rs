//! The loop: one thread, one `mio::Poll` for listeners, connections, signals and timers.

mod reload;
mod routes;

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use tomte_rpc::{comodojo, jsonrpc, xmlrpc, Registry, Served, Value};

use super::observe::{self, Encoded, SubRequest, Subscribers};
use super::systemd::{Counts, Systemd};
use super::{Config, Ctx, Daemon, DaemonError, TimerFn};
use crate::access::{Auth, Caller, DaemonGate, Policy};
use crate::event::{names, Event, EventBus};
use crate::logging::Throttle;
use crate::net::{Budget, Conn, Drive, Limits, Listener, PeerKey, Service};
use crate::process::upgrade::{self, Heir, Outcome, Successor};
use crate::process::{self, PidFile, ReadyPipe};
use crate::task::Tasks;
use crate::worker::supervisor::TOKEN_BASE as WORKER_BASE;

const SIGNALS: Token = Token(0);
/// A future woken from another thread.
const TASKS: Token = Token(CONN_BASE - 1);
/// The readiness pipe of the new binary an upgrade starts.
const SUCCESSOR: Token = Token(CONN_BASE - 2);
/// The connections an old daemon hands over (an upgrade).
const HANDED: Token = Token(CONN_BASE - 3);
const LISTENER_BASE: usize = 1;
const CONN_BASE: usize = 1 << 16;

/// How the daemon runs.
#[derive(Debug)]
pub enum Mode {
    /// In the foreground: logs on stderr; under systemd (`NOTIFY_SOCKET` set) readiness, the
    /// watchdog, reloads, status and the stop are notified (see the crate docs, [Under
    /// systemd](crate#under-systemd)).
    Foreground,
    /// Detached: readiness (or the reason for failing) goes back through this pipe.
    Detached(ReadyPipe),
}

/// The RPC side of the loop, as connection `owner` (key, serial) sees it.
struct Rpc<'a, S> {
    registry: &'a Registry<Ctx<S>>,
    ctx: &'a mut Ctx<S>,
    tasks: &'a mut Tasks,
    owner: (usize, u64),
}

impl<S> Service for Rpc<'_, S> {
    fn json(&mut self, request: &[u8], out: &mut Vec<u8>) -> Served {
        jsonrpc::serve(self.registry, self.ctx, request, out)
    }
    fn xml(&mut self, request: &[u8], out: &mut Vec<u8>) -> Served {
        xmlrpc::serve(self.registry, self.ctx, request, out)
    }
    fn comodojo(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Served {
        comodojo::serve(self.registry, self.ctx, frame, out)
    }
    fn comodojo_greeter(&mut self, out: &mut Vec<u8>) {
        comodojo::greeter(out)
    }
    fn authenticate(&mut self, secret: &[u8]) -> bool {
        self.ctx.authenticate(secret)
    }
    fn unauthenticate(&mut self) {
        self.ctx.unauthenticate();
    }
    fn take_auth_failure(&mut self) -> bool {
        std::mem::take(&mut self.ctx.auth_failed)
    }
    fn spawn(&mut self, future: tomte_rpc::Later) -> usize {
        let key = self.tasks.spawn(future, self.owner);
        self.ctx.tasks = self.tasks.len();
        key
    }
    fn get(&mut self, request: &crate::net::Get<'_>, out: &mut Vec<u8>) -> bool {
        self.route(request, out)
    }
    fn pushable(&mut self, yes: bool) {
        self.ctx.pushable = yes;
    }
}

/// The service of connection `key` (a macro: the fields it borrows are disjoint).
macro_rules! rpc {
    ($self:ident, $key:expr) => {
        Rpc {
            registry: &$self.registry,
            ctx: &mut $self.ctx,
            tasks: &mut $self.tasks,
            owner: ($key, $self.serials.get($key).copied().unwrap_or(0)),
        }
    };
}

struct Timer<S> {
    period: Duration,
    next: Instant,
    f: TimerFn<S>,
}

impl<S: 'static> Daemon<S> {
    /// Runs the daemon until it is asked to stop. In [`Mode::Detached`], readiness or the
    /// reason for failing is reported to the command that started it.
    pub fn run(mut self, config: &Config, mode: Mode) -> Result<(), DaemonError> {
        if self.supervisor_api || config.supervisor_api {
            super::supervisord::install(&mut self, config);
        }
        crate::process::upgrade::remember_origin();
        let (mut pipe, foreground) = match mode {
            Mode::Foreground => (None, true),
            Mode::Detached(p) => (Some(p), false),
        };
        let level = crate::logging::verbosity(config.verbose);
        let logged = crate::logging::init(&self.name, &config.logging, level, config.log.as_deref(), foreground)
            .map_err(|source| {
                let at = config.logging.syslog.as_deref().unwrap_or(std::path::Path::new("")).display();
                DaemonError::Io { what: format!("cannot log to syslog at {at}"), source }
            });
        // A new binary taking over from an old daemon reports to it, not to a `start`.
        let inherited = crate::process::upgrade::inherited();
        let took_over = inherited.as_ref().map(|i| i.old);
        let mut handed_conns = None;
        let handed_pidfile = inherited.and_then(|i| {
            pipe = Some(i.ready);
            handed_conns = i.conns;
            i.pidfile
        });
        crate::process::reaper::setup(self.subreaper && !self.workers.is_empty());
        let systemd = if foreground { Systemd::from_env() } else { Systemd::off() };
        let started = logged
            .and_then(|()| Running::start(self, config, systemd, handed_pidfile))
            .and_then(|mut r| r.take_over(took_over).map(|()| r));
        let mut running = match started {
            Ok(r) => r,
            Err(e) => {
                log::error!("{e}");
                if foreground {
                    process::sd_notify(&format!("STATUS=cannot start: {e}"));
                }
                if let Some(p) = &mut pipe {
                    p.fail(&e.to_string());
                }
                return Err(e);
            }
        };
        let where_ = running.listeners.iter().map(|l| l.address().to_string()).collect::<Vec<_>>().join(", ");
        match took_over {
            Some(old) => log::info!(
                "{} ready (pid {}) on {where_}, taking over from pid {old}",
                running.ctx.name,
                std::process::id()
            ),
            None => log::info!("{} ready (pid {}) on {where_}", running.ctx.name, std::process::id()),
        }
        if let Some(p) = &mut pipe {
            p.ready();
        }
        running.systemd.ready(took_over.is_some());
        running.store_sockets();
        running.inherit_connections(handed_conns);
        running.emit(Event::new(names::READY, Value::Nil));
        let result = running.run_loop();
        if !running.handed_over {
            running.systemd.stopping();
        }
        running.shutdown();
        result
    }
}

/// A started daemon: files held, sockets bound.
struct Running<S> {
    registry: Registry<Ctx<S>>,
    events: EventBus<S>,
    ctx: Ctx<S>,
    timers: Vec<Timer<S>>,
    /// The futures of answers that come later.
    tasks: Tasks,
    poll: Poll,
    signals: crate::signal::Bridge,
    listeners: Vec<Listener>,
    conns: Slab<Conn>,
    /// Each connection's identity and grants, by the same key: set in the context while the
    /// connection is served.
    callers: Slab<Rc<Caller>>,
    policy: Policy,
    /// The daemon's euid: its own user holds every permission on unix sockets.
    owner: u32,
    /// Serial numbers of connections (slab keys are reused).
    serials: Slab<u64>,
    next_serial: u64,
    /// When to try accepting again after accept failed (EMFILE…): its readiness edge is spent.
    accept_retry: Option<Instant>,
    /// Connections whose answer to a wrong token waits: when, and which (key, serial).
    penalties: Vec<(Instant, usize, u64)>,
    /// Connections that yielded with work left.
    again: Vec<usize>,
    limits: Limits,
    /// Input buffered by all connections together.
    budget: Budget,
    /// Connections open per peer (address or uid) and per listener.
    per_peer: std::collections::HashMap<PeerKey, usize>,
    per_listener: Vec<usize>,
    /// Warnings a client can cause at will, rate-limited.
    refusals: Throttle,
    timeouts: Throttle,
    auth_failures: Throttle,
    /// When to give freed memory back to the system, once the loop has been quiet a moment.
    trim_at: Option<Instant>,
    log: Option<std::path::PathBuf>,
    /// The TLS files, and the server configuration read from them (reloaded with the daemon).
    tls: Option<(crate::net::TlsFiles, std::sync::Arc<rustls::ServerConfig>)>,
    /// The configuration as applied, and what a reload needs besides.
    settings: reload::Settings<S>,
    /// What systemd is told (nothing when not under it).
    systemd: Systemd,
    /// The connections events are pushed to.
    subscribers: Subscribers,
    /// Subscribers dropped for not reading, logged at most once per interval.
    drops: Throttle,
    pidfile: Option<PidFile>,
    /// Each listener's name when handed to a new binary or stored by systemd
    /// ([`upgrade::fd_name`] of its configured address, or the name systemd gave it).
    listener_names: Vec<String>,
    /// The new binary being started (an upgrade), until it is ready or has failed.
    successor: Option<Successor>,
    /// Since when, and until when, the daemon drains (it is stopping, or upgraded).
    drain: Option<Drain>,
    /// The daemon handed its sockets and pid file to a new process, which serves now.
    handed_over: bool,
    /// Where idle connections go once the new process of an upgrade serves.
    heir: Option<Heir>,
    /// Where the old daemon's connections come from, in the new process of an upgrade.
    inheritance: Option<Heir>,
    /// A connection waits to be handed over: the channel was full.
    retry_handover: bool,
}

/// Whether a connection went to the new process of an upgrade.
enum Moved {
    Yes,
    /// Not now: the channel is full.
    Later,
    /// It cannot (TLS, a token), or not yet (something is under way on it).
    No,
}

/// A daemon that drains: it accepts nothing more and finishes what it started.
struct Drain {
    since: Instant,
    deadline: Instant,
}

/// The listening sockets: those systemd passed (socket activation), which replace the
/// configured ones; or for each configured address the socket an old daemon handed over (an
/// upgrade) or systemd kept in its store under that address's name, else a new one bound.
/// With each, the name it is handed on under.
fn listen(config: &Config) -> Result<(Vec<Listener>, Vec<String>), DaemonError> {
    let io_err = |what: &str| {
        let what = what.to_owned();
        move |source| DaemonError::Io { what, source }
    };
    let (mut handed, activated): (Vec<_>, Vec<_>) =
        crate::sys::process::take_activated_sockets().into_iter().partition(|(_, name)| upgrade::is_tomte_name(name));
    let mut listeners = Vec::with_capacity(config.sockets.len());
    let mut names = Vec::with_capacity(config.sockets.len());
    if !activated.is_empty() {
        log::info!("using {} socket(s) passed by systemd instead of --socket", activated.len());
        for (fd, name) in activated {
            listeners.push(Listener::from_activated(fd).map_err(io_err("cannot use a socket passed by systemd"))?);
            names.push(name);
        }
        return Ok((listeners, names));
    }
    for addr in &config.sockets {
        let name = upgrade::fd_name(&addr.to_string());
        let listener = match handed.iter().position(|(_, n)| *n == name) {
            Some(i) => {
                let (fd, _) = handed.swap_remove(i);
                Listener::from_handed(fd, addr)
                    .map_err(io_err(&format!("cannot use the socket handed over for {addr}")))?
            }
            None => {
                let listener = Listener::bind(addr)?;
                if config.socket_mode != 0o600 || config.socket_group.is_some() {
                    listener.set_access(config.socket_mode, config.socket_group)?;
                }
                listener
            }
        };
        listeners.push(listener);
        names.push(name);
    }
    for (_, name) in handed {
        log::info!("closing the socket handed over as {name}: no longer configured");
    }
    if config.socket_mode & 0o002 != 0
        && config.sockets.iter().any(|a| matches!(a.transport, crate::net::Transport::Unix(_)))
    {
        log::warn!(
            "--socket-mode {:04o}: every local user may connect (and hold connections); only the rules decide what \
             they may call",
            config.socket_mode
        );
    }
    Ok((listeners, names))
}

/// Why `addr` may not be served as configured: other hosts can reach it (a non-loopback TCP
/// address, a wildcard one included) and its clients have no way to prove who they are (plain
/// TCP, or TLS without client certificates).
fn unauthenticated(addr: &crate::net::Address, config: &Config) -> Option<DaemonError> {
    use crate::net::Transport;
    let open = match &addr.transport {
        Transport::Tcp(a) => !a.ip().is_loopback() && config.token_file.is_none(),
        Transport::Tls { addr: a, .. } => {
            !a.ip().is_loopback() && config.tls.client_ca.is_none() && config.token_file.is_none()
        }
        Transport::Unix(_) => false,
    };
    open.then(|| DaemonError::Unauthenticated { addr: addr.to_string() })
}

/// How long the loop must be quiet before freed memory is given back.
const TRIM_AFTER: Duration = Duration::from_secs(1);
/// A connection idle (or stuck mid-message) this long may be closed to make room for a new one.
const EVICTABLE_AFTER: Duration = Duration::from_secs(1);
/// How long a new binary has to report ready before the upgrade is given up (and it killed).
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a draining daemon keeps an idle HTTP keep-alive connection, so that the client's
/// next request is answered (with `Connection: close`) rather than met by a closed socket.
const HTTP_IDLE_GRACE: Duration = Duration::from_secs(1);
/// How long a drained daemon gives its subscribers to take their last events.
const LAST_EVENTS: Duration = Duration::from_millis(200);
/// At most one line per interval for warnings that clients can trigger.
const WARN_EVERY: Duration = Duration::from_secs(10);

impl<S: 'static> Running<S> {
    fn start(
        mut d: Daemon<S>,
        config: &Config,
        systemd: Systemd,
        handed_pidfile: Option<std::os::fd::OwnedFd>,
    ) -> Result<Running<S>, DaemonError> {
        // The file's worker and application sections, checked before anything is started.
        let (settings, app_sections) = reload::Settings::prepare(&mut d, config)?;
        let io_err = |what: &str| {
            let what = what.to_owned();
            move |source| DaemonError::Io { what, source }
        };
        if let Some(nice) = config.nice {
            process::set_niceness(nice).map_err(io_err(&format!("cannot set niceness {nice}")))?;
        }
        // umask, --user/--group looked up, rlimits, the run directories; the drop comes later.
        let privileges = process::privileges::prepare(config)?;
        for addr in &config.sockets {
            if let Some(why) = unauthenticated(addr, config) {
                if !config.insecure {
                    return Err(why);
                }
                log::warn!("{why}: served anyway (--insecure)");
            }
        }
        // An upgrade's new process shares the old one's pid file (and its lock); one whose
        // configuration names another pid file takes that one.
        let pidfile = match (config.pidfile.as_deref(), handed_pidfile) {
            (Some(path), Some(fd)) => match PidFile::adopt(fd, path) {
                Ok(p) => Some(p),
                Err(_) => Some(PidFile::acquire(path)?),
            },
            (path, _) => path.map(PidFile::acquire).transpose()?,
        };
        let poll = Poll::new().map_err(io_err("cannot create the poll"))?;
        // Caught before any socket is bound: a SIGTERM that comes once a client could connect
        // (a supervisor's, say) is a graceful stop at the loop's first turn, never the default
        // death that would leave the socket and pid files behind.
        let mut signals = crate::signal::open().map_err(io_err("cannot install signal handlers"))?;
        poll.registry().register(&mut signals, SIGNALS, Interest::READABLE).map_err(io_err("cannot watch signals"))?;
        let (mut listeners, listener_names) = listen(config)?;
        // Read before any client can come: a missing or bad file fails the start, naming it.
        let tls = match listeners.iter().find(|l| l.is_tls()) {
            None => None,
            Some(l) if config.tls.cert.is_none() || config.tls.key.is_none() => {
                return Err(crate::net::TlsError::Missing { addr: l.address().to_string() }.into());
            }
            Some(_) => Some((config.tls.clone(), crate::net::tls::server_config(&config.tls)?)),
        };
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(l.source(), Token(LISTENER_BASE + i), Interest::READABLE)
                .map_err(io_err("cannot watch a listener"))?;
        }
        let now = Instant::now();
        let timers = d.timers.into_iter().map(|(period, f)| Timer { period, next: now + period, f }).collect();
        let mut ctx = Ctx::new(&d.name, &d.version, d.workers, d.state);
        // Wakes the poll when a future is woken from another thread (the loop's own wake-ups
        // need no system call).
        let tasks = Tasks::new(mio::Waker::new(poll.registry(), TASKS).ok());
        ctx.limits = config.limits.clone();
        ctx.dashboard = config.dashboard;
        ctx.net = crate::metrics::NetStats::new(listeners.iter().map(|l| l.address().to_string()).collect());
        ctx.ready_checks = Rc::new(d.ready_checks);
        for apply in app_sections {
            apply(&mut ctx);
        }
        let per_listener = vec![0; listeners.len()];
        let mut registry = d.registry;
        for (method, permission) in &config.requires {
            registry
                .set_permission(method, permission.clone())
                .map_err(|_| DaemonError::UnknownMethod { method: method.clone() })?;
        }
        registry.set_gate(DaemonGate);
        registry.set_stats(config.metrics);
        ctx.calls = registry.shared_stats();
        let mut policy = d.policy;
        for rule in config.policy.rules() {
            policy.add(rule.clone());
        }
        let tokens = config.token_file.as_deref().map(crate::tokens::Tokens::load).transpose()?;
        if tokens.is_some() {
            policy.require_tokens();
        }
        if policy.anonymous_all() {
            log::warn!("anonymous=all: any client that reaches a TCP listener may call anything, control included");
        }
        for rule in policy.rules() {
            log::debug!("access rule: {rule}");
        }
        let owner = rustix::process::geteuid().as_raw();
        // Every file and socket is open: drop to --user/--group now (after `owner` is taken, so
        // the user who started the daemon keeps holding its unix sockets), before any listener
        // or worker runs.
        privileges.finish()?;
        if let Some(tokens) = tokens {
            ctx.auth = Some(Rc::new(Auth { tokens, policy: policy.clone(), owner }));
        }
        let mut running = Running {
            registry,
            events: d.events,
            ctx,
            timers,
            poll,
            signals,
            listeners,
            conns: Slab::new(),
            callers: Slab::new(),
            policy,
            owner,
            serials: Slab::new(),
            next_serial: 0,
            tasks,
            again: Vec::new(),
            accept_retry: None,
            penalties: Vec::new(),
            limits: config.limits.clone(),
            budget: Budget::default(),
            per_peer: std::collections::HashMap::new(),
            per_listener,
            refusals: Throttle::new(WARN_EVERY),
            timeouts: Throttle::new(WARN_EVERY),
            auth_failures: Throttle::new(WARN_EVERY),
            trim_at: None,
            log: config.log.clone(),
            tls,
            settings,
            systemd,
            subscribers: Subscribers::default(),
            drops: Throttle::new(WARN_EVERY),
            pidfile,
            listener_names,
            successor: None,
            drain: None,
            handed_over: false,
            heir: None,
            inheritance: None,
            retry_handover: false,
        };
        if running.events.has(names::START) {
            running.systemd.extend("daemon.start listeners");
        }
        running.emit(Event::new(names::START, Value::Nil));
        if !running.ctx.workers.is_empty() {
            running.systemd.extend(&format!("forking {} workers", running.ctx.workers.len()));
            let registry = running.poll.registry().try_clone().map_err(io_err("cannot share the poll"))?;
            // What the start freed, and the deep end of its stack, are given back first, so
            // that no worker's fork copies them.
            crate::sys::mem::give_back();
            running.ctx.workers.start_all(registry).map_err(io_err("cannot start the workers"))?;
        }
        Ok(running)
    }

    fn run_loop(&mut self) -> Result<(), DaemonError> {
        let mut events = Events::with_capacity(256);
        let mut next_sweep = Instant::now() + self.sweep_every();
        // What the start allocated and freed (the command line, the configuration file, the
        // workers' forks) goes back once the loop is quiet, even if no client ever comes.
        self.trim_at = Some(Instant::now() + TRIM_AFTER);
        while !self.drained() {
            // What was logged in the last turn goes to its subscribers before the loop sleeps.
            self.publish_logs();
            let now = Instant::now();
            let workers = !self.ctx.workers.is_empty();
            // Declared before the poll, so a worker's frame sent meanwhile wakes it.
            let idle = !workers || self.ctx.workers.prepare_sleep();
            // With nothing to sweep, no timer and no worker, an idle daemon sleeps for good.
            let sweep = (!self.conns.is_empty()).then_some(next_sweep);
            let wake = [
                self.timers.iter().map(|t| t.next).min(),
                sweep,
                self.ctx.workers.next_deadline(),
                self.ctx.reactor.next_deadline(),
                self.accept_retry,
                self.penalties.iter().map(|p| p.0).min(),
                self.trim_at,
                self.systemd.next_deadline(),
                self.successor.as_ref().map(|s| s.deadline),
                self.retry_handover.then(|| now + Duration::from_millis(2)),
                self.drain.as_ref().map(|d| {
                    Some(d.since + HTTP_IDLE_GRACE).filter(|&t| t > now).map_or(d.deadline, |t| t.min(d.deadline))
                }),
            ]
            .into_iter()
            .flatten()
            .min();
            let busy = !self.again.is_empty() || !idle || self.ctx.workers.has_output() || self.tasks.has_ready();
            let timeout = if busy { Some(Duration::ZERO) } else { wake.map(|w| w.saturating_duration_since(now)) };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DaemonError::Io { what: "poll failed".to_owned(), source: e }),
            }
            let mut woken: Vec<usize> = Vec::new();
            if !events.is_empty() {
                self.trim_at = Some(now + TRIM_AFTER);
            }
            for ev in events.iter() {
                match ev.token() {
                    SIGNALS => self.signals(),
                    TASKS => {}
                    SUCCESSOR => self.successor_said(),
                    HANDED => self.adopt_connections(),
                    Token(t) if t >= CONN_BASE => {
                        let key = t - CONN_BASE;
                        // A client gone for good (hang-up both ways) while its call waits for a
                        // worker: nobody will read the answer, free the slot now.
                        if ev.is_read_closed()
                            && ev.is_write_closed()
                            && self.conns.get(key).is_some_and(Conn::is_waiting)
                        {
                            self.close(key);
                        } else {
                            self.drive(key);
                        }
                    }
                    Token(t) if t >= WORKER_BASE => woken.push(t - WORKER_BASE),
                    Token(t) => self.accept(t - LISTENER_BASE),
                }
            }
            for key in std::mem::take(&mut self.again) {
                if self.conns.contains(key) {
                    self.drive(key);
                }
            }
            if workers {
                self.ctx.workers.after_poll(|i| woken.contains(&i));
                self.ctx.workers.tick(Instant::now());
            }
            if self.ctx.workers.has_output() {
                self.deliver();
            }
            let now = Instant::now();
            self.ctx.reactor.fire(now);
            if self.tasks.has_ready() {
                self.run_tasks();
            }
            // Asks whose caller went away: out of a pool's queue, or their answer dropped.
            for ticket in self.ctx.reactor.take_cancelled() {
                self.ctx.workers.cancel(ticket);
            }
            if !self.penalties.is_empty() {
                let (due, later): (Vec<_>, Vec<_>) = self.penalties.drain(..).partition(|p| p.0 <= now);
                self.penalties = later;
                for (_, key, serial) in due {
                    if self.serials.get(key) == Some(&serial) {
                        self.drive(key);
                    }
                }
            }
            if self.accept_retry.is_some_and(|t| t <= now) {
                self.accept_retry = None;
                for i in 0..self.listeners.len() {
                    self.accept(i);
                }
            }
            self.run_timers(now);
            if now >= next_sweep || self.conns.is_empty() {
                self.sweep(now);
                next_sweep = now + self.sweep_every();
            }
            if self.trim_at.is_some_and(|t| t <= now) {
                self.trim_at = None;
                crate::sys::mem::give_back();
            }
            if self.ctx.reload {
                self.systemd.reloading();
                self.reload();
                self.systemd.reloaded();
            }
            if self.ctx.upgrade.is_some() {
                self.start_upgrade();
            }
            if self.successor.as_ref().is_some_and(|s| s.deadline <= now) {
                self.successor_said();
            }
            let (ctx, now) = (&self.ctx, Instant::now());
            self.systemd.tick(now, || Counts {
                connections: ctx.connections,
                workers_up: ctx.workers.running(),
                workers: ctx.workers.len(),
            });
        }
        Ok(())
    }

    /// How often connections are checked against the timeouts (which a reload may change).
    fn sweep_every(&self) -> Duration {
        (self.limits.idle_timeout.min(self.limits.request_timeout) / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// Whether a listener or a subscriber wants events named `name` (so that building the
    /// event's data can be skipped when none does).
    fn heard(&self, name: &str) -> bool {
        self.events.has(name) || self.subscribers.wants(name)
    }

    /// Runs the listeners of `event`, then those of the events they queued.
    fn emit(&mut self, event: Event) {
        self.events.emit(&event, &mut self.ctx);
        self.publish(&event);
        self.drain_queued();
    }

    /// Queues `event` on the connections subscribed to it; a subscriber whose unread events
    /// would pass [`observe::MAX_QUEUE`], or that is behind while the output budget is spent,
    /// is dropped (a last notice, then its connection closes).
    fn publish(&mut self, event: &Event) {
        if self.subscribers.is_empty() || !self.subscribers.wants(&event.name) {
            return;
        }
        let mut encoded = Encoded::new(event, &crate::logging::timestamp());
        let mut over = Vec::new();
        for (key, sse) in self.subscribers.matching(&event.name) {
            let Some(conn) = self.conns.get_mut(key) else { continue };
            match conn.push(encoded.bytes(sse), observe::MAX_QUEUE, self.limits.max_buffered) {
                crate::net::Pushed::First => self.again.push(key),
                crate::net::Pushed::Queued => {}
                crate::net::Pushed::Over => over.push((key, sse, false)),
                crate::net::Pushed::OverBudget => over.push((key, sse, true)),
            }
        }
        for (key, sse, budget) in over {
            let (notice, sep) = observe::dropped_notice(sse, budget);
            let conn = &mut self.conns[key];
            conn.drop_subscriber(&notice, sep);
            self.ctx.net.limit_hit("subscriber_queue");
            let peer = conn.peer();
            self.drops.warn(|| format!("dropping the subscriber {peer}: {}", observe::drop_reason(budget)));
            self.unsubscribe(key);
            self.again.push(key);
        }
        if self.budget.output() > self.limits.max_buffered {
            self.relieve_output();
        }
    }

    /// Hands the log records of the last turn to the subscribers of `daemon.log`.
    fn publish_logs(&mut self) {
        if self.subscribers.is_empty() {
            return;
        }
        let (records, dropped) = crate::logging::take_captured();
        for data in records {
            self.publish(&Event::new(names::LOG, data));
        }
        if dropped > 0 {
            let message = format!("{dropped} log records were not sent to subscribers: too many in one turn");
            let data = Value::structure([
                ("level", Value::from("warn")),
                ("target", Value::from("tomte")),
                ("worker", Value::Nil),
                ("message", Value::from(message)),
            ]);
            self.publish(&Event::new(names::LOG, data));
        }
    }

    /// Sets up what connection `key` asked for while it was served (`daemon.subscribe`,
    /// `GET /events`, `daemon.unsubscribe`).
    fn subscription(&mut self, key: usize, request: SubRequest) {
        match request {
            SubRequest::Subscribe { patterns, sse, logs } => {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.set_subscribed(true);
                    self.subscribers.set(key, patterns, sse, logs);
                }
            }
            SubRequest::Unsubscribe => {
                if let Some(conn) = self.conns.get_mut(key) {
                    if !conn.is_streaming() {
                        conn.set_subscribed(false);
                    }
                }
                self.unsubscribe(key);
            }
        }
        self.subscribers_changed();
    }

    fn unsubscribe(&mut self, key: usize) {
        if self.subscribers.remove(key) {
            self.subscribers_changed();
        }
    }

    fn subscribers_changed(&mut self) {
        self.ctx.subscribers = self.subscribers.len();
        crate::logging::capture(self.subscribers.wants(names::LOG));
    }

    fn drain_queued(&mut self) {
        // Bounded, so listeners that emit each other forever cannot hang the loop.
        for _ in 0..1024 {
            if self.ctx.queued.is_empty() {
                return;
            }
            for ev in std::mem::take(&mut self.ctx.queued) {
                self.events.emit(&ev, &mut self.ctx);
                self.publish(&ev);
            }
        }
        log::warn!("event storm: dropping {} queued events", self.ctx.queued.len());
        self.ctx.queued.clear();
    }

    fn signals(&mut self) {
        let pending: Vec<i32> = self.signals.pending().collect();
        for sig in pending {
            log::debug!("signal {} ({sig})", crate::signal::name(sig));
            for name in crate::signal::event_names(sig) {
                self.emit(Event::new(name, Value::Int(i64::from(sig))));
            }
        }
    }

    fn accept(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index) else { return };
            let (stream, peer) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the pending clients stay queued, and no new edge may
                    // come for them, so try again shortly.
                    log::warn!("cannot accept on {}: {e}; retrying in 100 ms", listener.address());
                    self.accept_retry = Some(Instant::now() + Duration::from_millis(100));
                    return;
                }
            };
            let stream = match (&self.tls, listener.is_tls()) {
                (Some((_, config)), true) => match stream.into_tls(config) {
                    Ok(s) => s,
                    Err(e) => {
                        log::warn!("cannot start a TLS session: {e}");
                        continue;
                    }
                },
                _ => stream,
            };
            self.open(index, stream, peer, (false, &[]));
        }
    }

    /// Serves connection `stream` from `peer`, accepted by listener `index` (or handed over by
    /// the old daemon of an upgrade: `greeted` when that one sent the comodojo greeter, with
    /// the input it had read and not served), if the limits admit it; refused otherwise, with
    /// an error.
    fn open(
        &mut self,
        index: usize,
        stream: crate::net::Stream,
        mut peer: crate::net::Peer,
        (greeted, unread): (bool, &[u8]),
    ) {
        let Some(listener) = self.listeners.get(index) else { return };
        let (dialect, host_rule) = (listener.dialect(), listener.host_rule());
        peer.listener = Some(listener.address().to_string());
        let refusal = self.admit(index, peer.key);
        let mut rpc = Rpc {
            registry: &self.registry,
            ctx: &mut self.ctx,
            tasks: &mut self.tasks,
            owner: (self.conns.vacant_key(), self.next_serial + 1),
        };
        let net = rpc.ctx.net.clone();
        let mut conn = Conn::new(stream, peer, (index, dialect, host_rule), self.budget.clone(), net, &mut rpc);
        if greeted {
            conn.greeted_already();
        }
        conn.preload(unread);
        if let Some((reason, why)) = refusal {
            rpc.ctx.net.refused(reason);
            let peer = conn.peer();
            self.refusals.warn(|| format!("refusing a connection from {peer}: {why}"));
            let fault = tomte_rpc::Fault::new(-32000, "Server busy").with_data(why);
            let mut line = Vec::new();
            jsonrpc::write_error(&mut line, "null", &fault);
            line.push(b'\n');
            conn.refuse(&line);
            // Best effort, without registering: the socket is fresh, so the write fits.
            let _ = conn.drive(&mut rpc, &self.limits);
            return;
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            conn.source(),
            Token(CONN_BASE + key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("cannot watch a connection: {e}");
            return;
        }
        let grants = self.policy.grants(conn.peer(), self.owner);
        let caller = Rc::new(Caller { peer: conn.peer().clone(), grants });
        // A TLS connection is announced once its handshake is done (with its certificate).
        let heard = self.events.has(names::CLIENT_CONNECT) || self.subscribers.wants(names::CLIENT_CONNECT);
        let peer = (heard && !conn.is_tls()).then(|| caller.peer.to_value());
        *self.per_peer.entry(conn.peer().key).or_default() += 1;
        self.per_listener[index] += 1;
        entry.insert(conn);
        self.ctx.net.opened(index);
        self.callers.insert(caller);
        self.next_serial += 1;
        self.serials.insert(self.next_serial);
        self.ctx.connections = self.conns.len();
        if let Some(peer) = peer {
            self.emit(Event::new(names::CLIENT_CONNECT, peer));
        }
        // Data may already be there, and a comodojo greeter waits to go out.
        self.drive(key);
    }

    fn drive(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let mut rpc = rpc!(self, key);
        rpc.ctx.caller = self.callers.get(key).cloned();
        // Asked while its deferred answer was written (`poll_tasks`), or now.
        let earlier = rpc.ctx.sub_request.take();
        let drive = conn.drive(&mut rpc, &self.limits);
        let asked = rpc.ctx.sub_request.take().or(earlier);
        // A token presented meanwhile changed who the caller is.
        if let (Some(caller), Some(slot)) = (rpc.ctx.caller.take(), self.callers.get_mut(key)) {
            *slot = caller;
        }
        if let Some(until) = conn.take_penalty() {
            let peer = conn.peer();
            self.auth_failures.warn(|| format!("authentication failed from {peer}: closing its connection"));
            self.ctx.net.limit_hit("auth_failure");
            self.penalties.push((until, key, self.serials[key]));
        }
        if conn.take_secured() {
            // The handshake named the client (its certificate): its grants follow from that,
            // before anything it sent is served (the connection served nothing in this drive).
            log::debug!("TLS connection from {}", conn.peer());
            let grants = self.policy.grants(conn.peer(), self.owner);
            let caller = Rc::new(Caller { peer: conn.peer().clone(), grants });
            if let Some(slot) = self.callers.get_mut(key) {
                *slot = Rc::clone(&caller);
            }
            if self.heard(names::CLIENT_CONNECT) {
                self.emit(Event::new(names::CLIENT_CONNECT, caller.peer.to_value()));
            }
        }
        if let Some(request) = asked {
            self.subscription(key, request);
        }
        match drive {
            Drive::Open => {}
            Drive::MoreWork => self.again.push(key),
            Drive::Closed => self.close(key),
            Drive::Starved => self.relieve_input(key),
        }
        if self.budget.output() > self.limits.max_buffered {
            self.relieve_output();
        }
        if !self.ctx.queued.is_empty() {
            self.drain_queued();
        }
    }

    /// Connection `key` needs more input memory than the budget has left: the connections whose
    /// unfinished requests have not moved for a second are closed, the biggest first, until it
    /// fits; if none has stalled, its own message is the one refused.
    fn relieve_input(&mut self, key: usize) {
        let need = self.conns[key].starved_for();
        let now = Instant::now();
        while self.budget.input().saturating_add(need) > self.limits.max_buffered {
            let victim = self
                .conns
                .iter()
                .filter(|(k, c)| *k != key && c.buffered() > 0)
                .filter_map(|(k, c)| c.input_stalled_since().map(|t| (c.buffered(), t, k)))
                .filter(|(_, t, _)| now.saturating_duration_since(*t) >= EVICTABLE_AFTER)
                .max_by_key(|(held, t, _)| (*held, std::cmp::Reverse(*t)));
            let Some((held, _, victim)) = victim else {
                let peer = self.conns[key].peer();
                let max = self.limits.max_buffered;
                self.refusals.warn(|| format!("refusing a request from {peer}: the daemon holds {max} bytes of unfinished requests (--max-buffered) and none has stalled"));
                self.conns[key].refuse_budget(&self.limits);
                self.drive(key);
                return;
            };
            let peer = self.conns[victim].peer();
            self.refusals.warn(|| format!("closing connection from {peer}: its unfinished request of {held} bytes has stalled and the input budget is spent"));
            self.evict(victim, "closed: your unfinished request stalled while the daemon needed its memory");
            self.ctx.net.limit_hit("max_buffered");
        }
        self.again.push(key);
    }

    /// The unsent answers of all connections pass the budget: the connections whose clients
    /// have read nothing for a second are closed, the biggest holder first, until they fit.
    fn relieve_output(&mut self) {
        let now = Instant::now();
        while self.budget.output() > self.limits.max_buffered {
            let victim = self
                .conns
                .iter()
                .filter_map(|(k, c)| c.output_stalled_since().map(|t| (c.output_held(), t, k)))
                .filter(|(_, t, _)| now.saturating_duration_since(*t) >= EVICTABLE_AFTER)
                .max_by_key(|(held, t, _)| (*held, std::cmp::Reverse(*t)));
            let Some((held, _, victim)) = victim else { return };
            let peer = self.conns[victim].peer();
            self.refusals.warn(|| format!("closing connection from {peer}: it reads none of its {held} bytes of answers and the output budget is spent"));
            self.close(victim);
            self.ctx.net.limit_hit("max_buffered");
        }
    }

    /// Closes connection `key`, telling its client why first (as far as its socket takes it).
    fn evict(&mut self, key: usize, why: &str) {
        let conn = &mut self.conns[key];
        conn.evict(why);
        let mut rpc = rpc!(self, key);
        let _ = conn.drive(&mut rpc, &self.limits);
        self.close(key);
    }

    /// Hands workers' answers to the futures waiting for them, and emits the workers' events.
    fn deliver(&mut self) {
        for (ticket, result) in self.ctx.workers.take_answers() {
            // Nobody waits any more when the future was dropped (its client left, a timeout).
            self.ctx.reactor.deliver(ticket, result);
        }
        for event in self.ctx.workers.take_events() {
            self.emit(event);
        }
    }

    /// Polls the tasks that were woken, sends the requests of the asks they made, and answers
    /// the connections whose task finished.
    fn run_tasks(&mut self) {
        // A few rounds: a request refused at once (unknown worker) wakes its task again.
        for _ in 0..4 {
            self.poll_tasks();
            let outbox = self.ctx.reactor.take_outbox();
            if outbox.is_empty() {
                break;
            }
            for (ticket, worker, request) in outbox {
                if let Err(fault) = self.ctx.workers.ask(ticket, &worker, request) {
                    self.ctx.reactor.deliver(ticket, Err(fault));
                }
            }
            if !self.tasks.has_ready() {
                break;
            }
        }
    }

    fn poll_tasks(&mut self) {
        for crate::task::Finished { task, owner: (key, serial), result } in self.tasks.run() {
            self.ctx.tasks = self.tasks.len();
            let waits = self.serials.get(key) == Some(&serial) && self.conns[key].waiting_task() == Some(task);
            if !waits {
                continue;
            }
            let mut rpc = rpc!(self, key);
            rpc.ctx.caller = self.callers.get(key).cloned();
            self.conns[key].complete(&result, &mut rpc, &self.limits);
            // The calls served behind the answer may have presented a token (as in `drive`).
            if let (Some(caller), Some(slot)) = (rpc.ctx.caller.take(), self.callers.get_mut(key)) {
                *slot = caller;
            }
            self.drive(key);
        }
        self.ctx.tasks = self.tasks.len();
    }

    fn close(&mut self, key: usize) {
        self.remove(key, true);
    }

    /// Forgets connection `key`, closing its socket (a hang-up, when `hangup`; not so for one
    /// handed to a new process, whose descriptor keeps the connection open).
    fn remove(&mut self, key: usize, hangup: bool) {
        let mut conn = self.conns.remove(key);
        if let Some(task) = conn.waiting_task() {
            // Nobody will read the answer: drop the future, and what it waits for with it.
            self.tasks.cancel(task);
            self.ctx.tasks = self.tasks.len();
        }
        let caller = self.callers.remove(key);
        self.serials.remove(key);
        self.unsubscribe(key);
        let _ = self.poll.registry().deregister(conn.source());
        self.ctx.connections = self.conns.len();
        if let Some(n) = self.per_peer.get_mut(&conn.peer().key) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&conn.peer().key);
            }
        }
        self.per_listener[conn.listener()] -= 1;
        self.ctx.net.closed(conn.listener(), conn.dialect());
        // A TLS client whose handshake never finished was never announced either.
        if hangup && self.heard(names::CLIENT_HANGUP) && !conn.is_handshaking() {
            self.emit(Event::new(names::CLIENT_HANGUP, caller.peer.to_value()));
        }
    }

    /// Whether a new connection from `peer` on listener `index` may be served, making room for
    /// it if needed; the reason when it may not.
    ///
    /// A peer may hold `max_per_peer` connections. With several listeners, each keeps
    /// `listener_reserve` of `max_connections` that the others cannot take. When the new one
    /// would pass a limit, the connection that has been idle (or stuck in the middle of a
    /// message) the longest, for at least a second, is closed to make room for it.
    fn admit(&mut self, index: usize, peer: PeerKey) -> Option<(&'static str, String)> {
        let l = &self.limits;
        let from_peer = self.per_peer.get(&peer).copied().unwrap_or(0);
        if from_peer >= l.max_per_peer {
            return Some(("max_per_peer", format!("too many connections from this peer (limit {})", l.max_per_peer)));
        }
        let n = self.listeners.len();
        let reserve = if n > 1 { l.listener_reserve.min(l.max_connections / (2 * n)) } else { 0 };
        let own_cap = l.max_connections - reserve * (n - 1);
        let own_full = self.per_listener[index] >= own_cap;
        if !own_full && self.conns.len() < l.max_connections {
            return None;
        }
        // The victim comes from this listener if it is at its own cap, otherwise from any
        // listener holding more than its reserve.
        let now = Instant::now();
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| if own_full { c.listener() == index } else { self.per_listener[c.listener()] > reserve })
            // Idle ones go first (the longest idle), then those stuck mid-message the longest.
            .filter_map(|(k, c)| match (c.idle_since(), c.arriving_since()) {
                (Some(t), _) => Some((false, t, k)),
                (None, Some(t)) => Some((true, t, k)),
                (None, None) => None,
            })
            .filter(|(_, t, _)| now.saturating_duration_since(*t) >= EVICTABLE_AFTER)
            .min()
            .map(|(_, _, key)| key)
            .or_else(|| self.subscriber_victim(index, own_full, reserve, now));
        match victim {
            Some(key) => {
                log::debug!("closing connection from {} to make room for a new one", self.conns[key].peer());
                self.evict(key, "closed to make room for a new connection: the daemon is at its connection limit");
                self.ctx.net.limit_hit("max_connections");
                None
            }
            None => Some((
                "max_connections",
                format!(
                    "too many connections (limit {}): {} open, {} on this listener, none idle to close",
                    l.max_connections,
                    self.conns.len(),
                    self.per_listener[index]
                ),
            )),
        }
    }

    /// The subscriber to close for a new connection when nothing idle or stuck can go (from the
    /// same listeners as in [`Running::admit`]): one of the peer holding the most connections,
    /// its newest subscription first, so that a client opening streams by the hundred closes
    /// its own, not the dashboard that has been watching for hours.
    fn subscriber_victim(&self, index: usize, own_full: bool, reserve: usize, now: Instant) -> Option<usize> {
        self.conns
            .iter()
            .filter(|(_, c)| if own_full { c.listener() == index } else { self.per_listener[c.listener()] > reserve })
            .filter_map(|(k, c)| c.subscriber_since().map(|t| (k, c, t)))
            .filter(|(_, _, t)| now.saturating_duration_since(*t) >= EVICTABLE_AFTER)
            .max_by_key(|(_, c, t)| (self.per_peer.get(&c.peer().key).copied().unwrap_or(0), *t))
            .map(|(k, _, _)| k)
    }

    /// Closes connections past their deadlines (idle, or a message arriving too slowly) and
    /// gives back the buffers of idle ones.
    fn sweep(&mut self, now: Instant) {
        let mut idle = Vec::new();
        let mut late = Vec::new();
        for (key, c) in self.conns.iter_mut() {
            let idle_for = |t: Instant| now.saturating_duration_since(t) > self.limits.idle_timeout;
            if c.idle_since().is_some_and(idle_for) {
                self.ctx.net.limit_hit("idle_timeout");
                idle.push(key);
            } else if c.stalled(now, &self.limits) {
                self.ctx.net.limit_hit("unread_answers");
                idle.push(key);
            } else if c.lingered(now) {
                idle.push(key);
            } else if c.overdue(now, &self.limits) {
                late.push(key);
            } else {
                c.shrink();
            }
        }
        for key in idle {
            log::debug!("closing idle connection from {}", self.conns[key].peer());
            self.close(key);
        }
        for key in late {
            let conn = &mut self.conns[key];
            let peer = conn.peer();
            self.timeouts.warn(|| format!("closing connection from {peer}: its request came too slowly"));
            conn.time_out(&self.limits);
            let mut rpc = rpc!(self, key);
            rpc.ctx.caller = self.callers.get(key).cloned();
            let drive = conn.drive(&mut rpc, &self.limits);
            rpc.ctx.caller = None;
            if drive == Drive::Closed {
                self.close(key);
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        for t in &mut self.timers {
            if t.next <= now {
                let run = std::panic::AssertUnwindSafe(|| (t.f)(&mut self.ctx));
                if let Err(panic) = std::panic::catch_unwind(run) {
                    log::error!("a timer panicked: {}", tomte_rpc::fault::panic_text(&*panic));
                }
                // Fixed rate without catch-up: the next tick is the next period boundary ahead.
                t.next += t.period;
                if t.next <= now {
                    t.next = now + t.period;
                }
            }
        }
        if !self.ctx.queued.is_empty() {
            self.drain_queued();
        }
    }

    /// Reopens the log (rotation), reads the configuration again and applies what it can (see
    /// `reload`), answers the `daemon.reload` calls waiting, and emits `daemon.reload` with
    /// the report; a configuration refused changes nothing, and is logged with the reason.
    fn reload(&mut self) {
        self.ctx.reload = false;
        if let Some(path) = &self.log {
            if let Err(e) = process::redirect_stderr(path) {
                log::error!("{e}");
            }
        }
        log::info!("reloading");
        let answer = match self.reconfigure() {
            Ok(report) => {
                report.log();
                Ok(report.to_value())
            }
            Err(e) => {
                log::error!("reload refused, the running configuration is kept: {e}");
                let fault = tomte_rpc::Fault::new(crate::faults::RELOAD_REFUSED, "Reload refused");
                Err(fault.with_data(e.to_string()))
            }
        };
        for wait in std::mem::take(&mut self.ctx.reload_waits) {
            wait.deliver(answer.clone());
        }
        if let Ok(report) = answer {
            self.emit(Event::new(names::RELOAD, report));
        }
    }

    /// The end, once drained: the subscribers get their last events, the workers stop (all at
    /// once, each with its grace), then the listeners and the pid file go as they drop (left in
    /// place for the new process after an upgrade).
    fn shutdown(&mut self) {
        let until = Instant::now() + LAST_EVENTS;
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        let mut open = keys.clone();
        while !open.is_empty() && Instant::now() < until {
            open.retain(|&key| self.conns.get_mut(key).is_some_and(|c| c.flush_events()));
            if !open.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for key in keys {
            self.close(key);
        }
        // The new process sees the end of what is handed over.
        self.heir = None;
        self.ctx.workers.stop_all();
        self.listeners.clear();
        if let Some(s) = self.successor.take() {
            // Stopped while a new binary was starting: it must not take over a stopped daemon.
            s.kill();
        }
        log::info!("{} stopped", self.ctx.name);
    }

    /// Whether the loop is done: drained, or past the drain's deadline (what was cut short is
    /// logged). A stop asked for starts the drain.
    fn drained(&mut self) -> bool {
        if self.ctx.stop && self.drain.is_none() {
            self.begin_drain();
        }
        let Some((since, deadline)) = self.drain.as_ref().map(|d| (d.since, d.deadline)) else { return false };
        let now = Instant::now();
        let grace_over = now >= since + HTTP_IDLE_GRACE;
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        self.retry_handover = false;
        for key in keys {
            if self.heir.is_some() {
                match self.hand_over(key) {
                    Moved::Yes => continue,
                    Moved::Later => {
                        self.retry_handover = true;
                        continue;
                    }
                    Moved::No => {}
                }
            }
            // After an upgrade, an HTTP connection that cannot go over (TLS) gets a moment for
            // its next request, answered with `Connection: close`; a stopping daemon has
            // nothing to offer it.
            // What a client has sent is served before its connection closes: closing with input
            // unread would reset it, its last answers lost.
            let conn = &self.conns[key];
            let idle = conn.idle_since().is_some() && !conn.input_waiting();
            if idle && (grace_over || !self.handed_over || !conn.speaks_http()) {
                self.close(key);
            }
        }
        if self.conns.iter().all(|(_, c)| c.only_listening()) {
            let took = now.saturating_duration_since(since);
            log::info!("{} drained in {took:.0?}", self.ctx.name);
            self.emit(Event::new(names::DRAINED, Value::structure([("ms", Value::from(took.as_millis() as u64))])));
            return true;
        }
        if now >= deadline {
            let cut: Vec<&Conn> = self.conns.iter().map(|(_, c)| c).filter(|c| !c.only_listening()).collect();
            let waiting = cut.iter().filter(|c| c.is_waiting()).count();
            let unsent = cut.iter().filter(|c| c.owes_output()).count();
            log::warn!(
                "drain timeout ({:?}): cutting short {} connections ({waiting} waiting for an answer, {unsent} with \
                 answers unsent, the others with a request arriving)",
                self.limits.drain_timeout,
                cut.len()
            );
            return true;
        }
        false
    }

    /// Stops accepting (the listeners close: their sockets stay open for the new process after
    /// an upgrade, and in systemd's store), and has every connection closed once it is owed
    /// nothing: HTTP answers say `Connection: close` from now on.
    fn begin_drain(&mut self) {
        log::info!(
            "{} stopping: draining {} connections (at most {:?})",
            self.ctx.name,
            self.conns.len(),
            self.limits.drain_timeout
        );
        let now = Instant::now();
        self.drain = Some(Drain { since: now, deadline: now + self.limits.drain_timeout });
        for l in &mut self.listeners {
            let _ = self.poll.registry().deregister(l.source());
            if self.handed_over || self.systemd.is_on() {
                // The socket lives on (the new process's, or in systemd's store for the next
                // start): its file must stay where clients find it.
                l.disown();
            }
        }
        self.listeners.clear();
        self.accept_retry = None;
        if self.heir.is_none() {
            // Nobody to hand connections to: each HTTP answer closes its connection.
            for (_, c) in self.conns.iter_mut() {
                c.set_draining();
            }
        }
        if let Some(s) = self.successor.take() {
            log::warn!("stopping while upgrading: killing the new process (pid {})", s.pid());
            let _ =
                self.poll.registry().deregister(&mut mio::unix::SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&s.pipe())));
            s.kill();
            crate::process::reaper::spare(None);
            self.upgrade_failed(&s, "the daemon is stopping".to_owned());
        }
        self.emit(Event::new(names::STOP, Value::Nil));
    }

    /// Hands connection `key` to the new process if it can go now (see [`Conn::movable`]) and
    /// may travel at all: not one holding a token (HTTP's are per request).
    fn hand_over(&mut self, key: usize) -> Moved {
        let (Some(heir), Some(conn)) = (&self.heir, self.conns.get(key)) else { return Moved::No };
        let token = self.callers.get(key).is_some_and(|c| c.peer.token.is_some());
        if token && !conn.speaks_http() {
            return Moved::No;
        }
        let (Some(unread), Some(fd)) = (conn.movable(), conn.plain_fd()) else { return Moved::No };
        let name = &self.listener_names[conn.listener()];
        match heir.send(fd, name, conn.speaks_comodojo(), unread) {
            Ok(()) => {
                self.remove(key, false);
                Moved::Yes
            }
            // The new process has not read the ones before yet.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Moved::Later,
            Err(e) => {
                // The new process is gone or refuses: nothing more goes over, and the
                // connections close as a stopping daemon's do.
                log::warn!("cannot hand connections to the new process any more ({e}): closing them once idle");
                self.heir = None;
                for (_, c) in self.conns.iter_mut() {
                    c.set_draining();
                }
                Moved::No
            }
        }
    }

    /// Watches the channel on which the old daemon of an upgrade hands over its connections.
    fn inherit_connections(&mut self, heir: Option<Heir>) {
        let Some(heir) = heir else { return };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&heir.fd());
        match self.poll.registry().register(&mut mio::unix::SourceFd(&fd), HANDED, Interest::READABLE) {
            Ok(()) => self.inheritance = Some(heir),
            Err(e) => log::warn!("cannot take the old daemon's connections ({e}): it closes them instead"),
        }
    }

    /// Serves the connections the old daemon handed over, as if this one had accepted them.
    fn adopt_connections(&mut self) {
        loop {
            let Some(heir) = &self.inheritance else { return };
            let migrant = match heir.recv() {
                Ok(Some(m)) => m,
                Ok(None) => return,
                Err(e) => {
                    if e.kind() != io::ErrorKind::UnexpectedEof {
                        log::warn!("the old daemon's connections: {e}");
                    }
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&heir.fd());
                    let _ = self.poll.registry().deregister(&mut mio::unix::SourceFd(&fd));
                    self.inheritance = None;
                    return;
                }
            };
            let Some(index) = self.listener_names.iter().position(|n| *n == migrant.listener) else {
                log::debug!(
                    "a connection handed over from {}, which this daemon no longer serves: closed",
                    migrant.listener
                );
                continue;
            };
            match crate::net::Stream::from_handed(migrant.fd) {
                Ok((stream, peer)) => self.open(index, stream, peer, (migrant.greeted, &migrant.unread)),
                Err(e) => log::debug!("a connection handed over is unusable ({e}): closed"),
            }
        }
    }

    /// An adopted pid file and handed-over sockets become this process's, once it is ready to
    /// take over from daemon `old` (an upgrade), before it says so.
    fn take_over(&mut self, old: Option<u32>) -> Result<(), DaemonError> {
        if old.is_none() {
            return Ok(());
        }
        if let Some(p) = &mut self.pidfile {
            p.confirm()?;
        }
        for l in &mut self.listeners {
            l.own();
        }
        Ok(())
    }

    /// Under systemd, keeps the sockets the daemon bound in systemd's descriptor store.
    fn store_sockets(&mut self) {
        if !self.systemd.is_on() {
            return;
        }
        let ours: Vec<(std::os::fd::BorrowedFd<'_>, String)> = self
            .listeners
            .iter()
            .zip(&self.listener_names)
            .filter(|(_, n)| upgrade::is_tomte_name(n))
            .map(|(l, n)| (l.fd(), n.clone()))
            .collect();
        if !ours.is_empty() {
            self.systemd.store(&ours);
        }
    }

    /// Starts the new binary an upgrade asked for, handing it the listeners and the pid file;
    /// one already starting takes the new callers too.
    fn start_upgrade(&mut self) {
        let Some(binary) = self.ctx.upgrade.take() else { return };
        if self.successor.is_some() || self.drain.is_some() {
            if self.drain.is_some() {
                let fault = tomte_rpc::Fault::new(crate::faults::UPGRADE_FAILED, "Upgrade failed")
                    .with_data("the daemon is stopping".to_owned());
                for (_, wait) in std::mem::take(&mut self.ctx.upgrade_waits) {
                    wait.deliver(Err(fault.clone()));
                }
            }
            return;
        }
        let binary = match binary.or_else(upgrade::default_binary) {
            Some(b) => b,
            None => return self.refuse_upgrade("cannot tell which binary this daemon runs: give one".to_owned()),
        };
        // The resolved path is what runs: no link to swap after the check.
        let binary = match upgrade::check_binary(&binary) {
            Ok(b) => b,
            Err(why) => return self.refuse_upgrade(why),
        };
        if rustix::process::getpid().is_init() {
            return self.refuse_upgrade(
                "this daemon is PID 1 of its namespace (a container's entry point): its exit would end the \
                 container and the new process with it; replace the container instead, or run the daemon \
                 under an init (docker run --init)"
                    .to_owned(),
            );
        }
        let sockets: Vec<(std::os::fd::BorrowedFd<'_>, String)> =
            self.listeners.iter().zip(&self.listener_names).map(|(l, n)| (l.fd(), n.clone())).collect();
        let pidfile = self.pidfile.as_ref().map(PidFile::fd);
        let timeout = UPGRADE_TIMEOUT;
        match Successor::spawn(&binary, &sockets, pidfile, timeout) {
            Ok(s) => {
                // The copy of its descriptor made for the new process is closed: that dropped
                // this process's mark on the pid file.
                if let Some(p) = &self.pidfile {
                    p.mark();
                }
                log::info!("upgrading: started {} as pid {}", binary.display(), s.pid());
                crate::process::reaper::spare(rustix::process::Pid::from_raw(s.pid() as i32));
                let fd = std::os::fd::AsRawFd::as_raw_fd(&s.pipe());
                if let Err(e) =
                    self.poll.registry().register(&mut mio::unix::SourceFd(&fd), SUCCESSOR, Interest::READABLE)
                {
                    log::warn!("cannot watch the new process's readiness ({e}): looking every turn");
                }
                let data = self.upgrade_data(&s, "started", None);
                self.successor = Some(s);
                self.emit(Event::new(names::UPGRADE, data));
            }
            Err(e) => self.refuse_upgrade(format!("cannot start {}: {e}", binary.display())),
        }
    }

    /// The event data of an upgrade's `phase`.
    fn upgrade_data(&self, s: &Successor, phase: &str, error: Option<String>) -> Value {
        let mut fields = vec![
            ("phase", Value::from(phase)),
            ("old_pid", Value::from(std::process::id())),
            ("new_pid", Value::from(s.pid())),
            ("binary", Value::from(s.binary.display().to_string())),
            ("ms", Value::from(s.started.elapsed().as_millis() as u64)),
        ];
        if let Some(e) = error {
            fields.push(("error", Value::from(e)));
        }
        Value::structure(fields)
    }

    /// An upgrade that could not even start: said to its callers and in the log.
    fn refuse_upgrade(&mut self, why: String) {
        log::error!("upgrade failed, still serving: {why}");
        let fault = tomte_rpc::Fault::new(crate::faults::UPGRADE_FAILED, "Upgrade failed").with_data(why);
        for (_, wait) in std::mem::take(&mut self.ctx.upgrade_waits) {
            wait.deliver(Err(fault.clone()));
        }
    }

    /// What the new binary said, if anything yet: ready (this daemon drains and exits), or
    /// failed (this daemon serves on as before).
    fn successor_said(&mut self) {
        let Some(s) = &mut self.successor else { return };
        let outcome = s.poll(Instant::now());
        if outcome == Outcome::Pending {
            return;
        }
        let mut s = self.successor.take().expect("checked above");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&s.pipe());
        let _ = self.poll.registry().deregister(&mut mio::unix::SourceFd(&fd));
        crate::process::reaper::spare(None);
        match outcome {
            Outcome::Ready(pid) => {
                log::info!(
                    "upgraded: pid {pid} ({}) serves now, ready in {:.0?}; this daemon drains and exits",
                    s.binary.display(),
                    s.started.elapsed()
                );
                let data = self.upgrade_data(&s, "ready", None);
                for (asked, wait) in std::mem::take(&mut self.ctx.upgrade_waits) {
                    // A caller who asked for another binary than the one started learns so.
                    let other = asked.filter(|b| std::fs::canonicalize(b).ok().as_ref() != Some(&s.binary));
                    if let Some(b) = other {
                        let why = format!(
                            "not {}: an upgrade to {} was under way, and it is done",
                            b.display(),
                            s.binary.display()
                        );
                        wait.deliver(Err(
                            tomte_rpc::Fault::new(crate::faults::UPGRADE_FAILED, "Upgrade failed").with_data(why)
                        ));
                        continue;
                    }
                    wait.deliver(Ok(Value::structure([
                        ("old_pid", Value::from(std::process::id())),
                        ("new_pid", Value::from(pid)),
                        ("binary", Value::from(s.binary.display().to_string())),
                        ("ms", Value::from(s.started.elapsed().as_millis() as u64)),
                    ])));
                }
                if let Some(p) = &mut self.pidfile {
                    p.hand_over();
                }
                self.heir = s.take_heir();
                self.handed_over = true;
                self.systemd.main_pid(pid);
                self.systemd.hand_over();
                self.emit(Event::new(names::UPGRADE, data));
                self.ctx.stop();
            }
            Outcome::Failed(why) => self.upgrade_failed(&s, why),
            Outcome::Pending => unreachable!("returned above"),
        }
    }

    /// The new binary failed before it was ready: this daemon keeps everything.
    fn upgrade_failed(&mut self, s: &Successor, why: String) {
        match self.drain {
            Some(_) => log::warn!("upgrade to {} abandoned: {why}", s.binary.display()),
            None => log::error!("upgrade to {} failed, still serving: {why}", s.binary.display()),
        }
        if let Some(p) = &mut self.pidfile {
            // It may have written its pid before it failed.
            if let Err(e) = p.take_back() {
                log::error!("{e}");
            }
        }
        let data = self.upgrade_data(s, "failed", Some(why.clone()));
        let fault = tomte_rpc::Fault::new(crate::faults::UPGRADE_FAILED, "Upgrade failed").with_data(why);
        for (_, wait) in std::mem::take(&mut self.ctx.upgrade_waits) {
            wait.deliver(Err(fault.clone()));
        }
        self.emit(Event::new(names::UPGRADE, data));
    }
}
