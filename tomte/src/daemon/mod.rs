//! The `Daemon` builder and its configuration; the loop itself lives in `run`.

mod builtins;
mod ctx;
pub(crate) mod observe;
mod run;
mod supervisord;
mod systemd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tomte_rpc::{Method, Permission, Registry};

pub use ctx::Ctx;
pub use run::Mode;

use crate::access::{Grants, Policy, Who};
use crate::event::{Event, EventBus, Listener};
use crate::net::{Address, BindError, Limits, TlsError, TlsFiles};
use crate::process::{PidFileError, PrivilegeError, Privileges};
use crate::worker::supervisor::Supervisor;
use crate::worker::WorkerSpec;

/// How a daemon is set up at start: sockets, files, process settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listeners; several at once.
    pub sockets: Vec<Address>,
    /// The pid file, locked for the daemon's life.
    pub pidfile: Option<PathBuf>,
    /// Where logs go when detached (stderr in the foreground unless set).
    pub log: Option<PathBuf>,
    /// How verbose the log is: 0 info, 1 debug (`-v`), 2 or more trace (`-vv`).
    pub verbose: u8,
    /// The umask of the daemon (`start` and `run`).
    pub umask: u32,
    /// Absolute niceness to set at start.
    pub nice: Option<i32>,
    /// What clients may hold of the daemon: message size, connections, timeouts, memory (see
    /// [`Limits`]).
    pub limits: Limits,
    /// The mode of the unix socket files the daemon creates (default 0600: only its user may
    /// connect). Connecting is not being allowed: see [`Config::policy`].
    pub socket_mode: u32,
    /// The group of the unix socket files (default: the daemon's).
    pub socket_group: Option<u32>,
    /// Who may call what, beyond the defaults (see [`crate::access`]).
    pub policy: Policy,
    /// Methods whose permission changes at start (`--require METHOD=PERM`), as
    /// [`Daemon::require`] changes it in code.
    pub requires: Vec<(String, Permission)>,
    /// Certificate and key of `tls://` listeners, and the CA of client certificates.
    pub tls: TlsFiles,
    /// Serve a listener that other hosts can reach without a way for its clients to prove who
    /// they are (`--insecure`): refused at start otherwise.
    pub insecure: bool,
    /// Serve the web dashboard (`GET /`) on native listeners.
    pub dashboard: bool,
    /// Tokens TCP clients may present (`--token-file`): with them, every TCP client must
    /// present one or a client certificate.
    pub token_file: Option<PathBuf>,
    /// The log's format, and syslog instead of stderr (see [`crate::logging`]).
    pub logging: crate::logging::LogSettings,
    /// Where this configuration came from — file, environment, command line — when
    /// [`Cli`](crate::cli::Cli) made it: for `NAME config`, for the file's `[workers.NAME]`
    /// and `[app]` sections, and to read it all again on reload (see [`crate::config`]).
    pub sources: Option<std::sync::Arc<crate::config::Sources>>,
    /// The user and group to run as, the working directory, resource limits, no_new_privs
    /// (see [`crate::process::privileges`]).
    pub privileges: Privileges,
    /// Record call statistics for `/metrics` (default true; `--no-metrics` turns it off: no
    /// clock read per call).
    pub metrics: bool,
    /// Serve supervisord's XML-RPC interface (`supervisor.*`), so that supervisorctl drives
    /// the workers (`--supervisor-api`; [`Daemon::supervisor_api`] in code).
    pub supervisor_api: bool,
}

impl Config {
    /// Defaults that work with no flags: socket and pid file in [`runtime_dir`] (for root
    /// `/run`; for another user `$XDG_RUNTIME_DIR`, or a private `/tmp/tomte-UID`, which is
    /// created here when it is missing).
    pub fn defaults(name: &str) -> Config {
        let dir = runtime_dir();
        if dir == private_dir() {
            make_private_dir(&dir);
        }
        let socket = dir.join(format!("{name}.sock"));
        Config {
            sockets: vec![Address::unix(socket)],
            pidfile: Some(dir.join(format!("{name}.pid"))),
            log: None,
            verbose: 0,
            umask: 0o027,
            nice: None,
            limits: Limits::default(),
            socket_mode: 0o600,
            socket_group: None,
            policy: Policy::default(),
            requires: Vec::new(),
            tls: TlsFiles::default(),
            insecure: false,
            dashboard: false,
            token_file: None,
            logging: crate::logging::LogSettings::default(),
            sources: None,
            privileges: Privileges::default(),
            metrics: true,
            supervisor_api: false,
        }
    }
}

/// Where a daemon's socket and pid file go by default: never a directory others can write.
///
/// * root: `/run`;
/// * another user: `$XDG_RUNTIME_DIR` when it is set, absolute, and a directory of that user's
///   with mode 0700 (as systemd makes it);
/// * otherwise (and for root without `/run`): `/tmp/tomte-UID`, the user's private directory
///   ([`Config::defaults`] creates it, mode 0700; one that belongs to someone else is refused
///   when the daemon starts).
///
/// This only computes the path; nothing is created.
pub fn runtime_dir() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let uid = rustix::process::getuid().as_raw();
    if uid == 0 {
        if Path::new("/run").is_dir() {
            return PathBuf::from("/run");
        }
        return private_dir();
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir)
            if dir.is_absolute()
                && std::fs::metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o777 == 0o700) =>
        {
            dir
        }
        _ => private_dir(),
    }
}

/// `runtime_dir()/NAME.EXT`: the default socket (`sock`) or pid file (`pid`) of daemon `name`.
pub fn runtime_path(name: &str, ext: &str) -> PathBuf {
    runtime_dir().join(format!("{name}.{ext}"))
}

/// `/tmp/tomte-UID`.
fn private_dir() -> PathBuf {
    PathBuf::from(format!("/tmp/tomte-{}", rustix::process::getuid().as_raw()))
}

/// Creates the private directory, mode 0700 (mkdir fails on anything already there, a link
/// included). An existing directory of the user's is made 0700 again; anything else is left as
/// it is, and the daemon's checks refuse it at start (see [`crate::process::files`]).
fn make_private_dir(dir: &Path) {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if std::fs::DirBuilder::new().mode(0o700).create(dir).is_ok() {
        return;
    }
    let uid = rustix::process::getuid().as_raw();
    if let Ok(m) = std::fs::symlink_metadata(dir) {
        if m.is_dir() && m.uid() == uid && m.mode() & 0o777 != 0o700 {
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
}

/// Why a daemon could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The pid file could not be taken (another instance holds it, say).
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// `--require` named a method the daemon does not have.
    #[error("cannot change what {method} requires: the daemon has no such method")]
    UnknownMethod {
        /// The method's name.
        method: String,
    },
    /// A system call the daemon needs failed (the poll, the niceness, a socket passed by
    /// systemd, syslog…).
    #[error("{what}: {source}")]
    Io {
        /// What the daemon could not do (`cannot create the poll`).
        what: String,
        /// The system call's error.
        source: std::io::Error,
    },
    /// The TLS files could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener other hosts can reach, whose clients could not prove who they are.
    #[error(
        "{addr} is reachable from other hosts, and its clients could not prove who they are: \
         listen on tls://… with --tls-client-ca CA.pem (clients show certificates), or give \
         --token-file, or keep it on loopback; --insecure serves it anyway"
    )]
    Unauthenticated {
        /// The listener's address.
        addr: String,
    },
    /// The token file (`--token-file`) could not be used.
    #[error(transparent)]
    Tokens(#[from] crate::tokens::TokenError),
    /// The configuration file (its `[workers.NAME]` or `[app]` section at start; anything in
    /// it on reload).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A reload that would leave a listener open to other hosts with no way for its clients
    /// to prove who they are; the reason says which.
    #[error("not reloading: {0}")]
    Refused(String),
    /// The user, group, directory or limits it was given could not be taken.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
}

pub(crate) type TimerFn<S> = Box<dyn FnMut(&mut Ctx<S>)>;

/// Reads the application's section from the file (`None`: no file) and gives back what applies
/// it, or why it is refused.
pub(crate) type AppHook<S> =
    Box<dyn Fn(Option<&crate::config::File>) -> Result<Box<dyn FnOnce(&mut Ctx<S>)>, crate::config::ConfigError>>;

/// A daemon under construction: methods, listeners and timers, then [`Daemon::run`].
///
/// ```no_run
/// use tomte::{Daemon, Method, Type, Value};
/// let mut daemon = Daemon::new("echo");
/// daemon.method(
///     Method::new("my.echo", |mut p, _| Ok(Value::String(p.take("message")?)))
///         .description("I'm here to reply your data")
///         .returns(Type::String)
///         .param(Type::String, "message"),
/// );
/// std::process::exit(tomte::cli::main(daemon));
/// ```
///
/// The application's state `S` (`()` unless [`Daemon::with_state`] gives one) is handed to
/// every handler, listener and timer through [`Ctx::state`]: one thread, so no lock.
pub struct Daemon<S = ()> {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) registry: Registry<Ctx<S>>,
    pub(crate) events: EventBus<S>,
    pub(crate) timers: Vec<(Duration, TimerFn<S>)>,
    pub(crate) workers: Supervisor,
    pub(crate) policy: Policy,
    pub(crate) state: S,
    pub(crate) app_config: Vec<AppHook<S>>,
    /// Become a child subreaper when there are workers (see [`Daemon::subreaper`]).
    pub(crate) subreaper: bool,
    /// The application's readiness checks (see [`Daemon::ready_check`]).
    pub(crate) ready_checks: Vec<(String, observe::ReadyFn<S>)>,
    /// Serve supervisord's interface whatever the configuration says (see
    /// [`Daemon::supervisor_api`]).
    pub(crate) supervisor_api: bool,
}

impl Daemon {
    /// A daemon called `name` (used for default paths and log lines), with the built-in
    /// `daemon.*` and `worker.*` methods and the default signal listeners: SIGTERM and SIGINT
    /// stop it gracefully, SIGHUP reloads it, SIGUSR1 reopens the log.
    pub fn new(name: &str) -> Daemon {
        Daemon::with_state(name, ())
    }
}

impl<S: 'static> Daemon<S> {
    /// As [`Daemon::new`], with the application's state: handlers, listeners and timers reach
    /// it with [`Ctx::state`].
    ///
    /// ```
    /// use tomte::{Ctx, Daemon, Method, Type, Value};
    /// #[derive(Default)]
    /// struct Counter { total: i64 }
    /// let mut daemon = Daemon::with_state("counter", Counter::default());
    /// daemon.method(
    ///     Method::new("counter.add", |mut p, ctx: &mut Ctx<Counter>| {
    ///         ctx.state().total += p.take::<i64>("n")?;
    ///         Ok(Value::Int(ctx.state().total))
    ///     })
    ///     .returns(Type::Int)
    ///     .param(Type::Int, "n"),
    /// );
    /// ```
    pub fn with_state(name: &str, state: S) -> Daemon<S> {
        let mut d = Daemon {
            name: name.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            registry: Registry::new(),
            events: EventBus::new(),
            timers: Vec::new(),
            workers: Supervisor::default(),
            policy: Policy::default(),
            state,
            app_config: Vec::new(),
            subreaper: true,
            ready_checks: Vec::new(),
            supervisor_api: false,
        };
        builtins::install(&mut d.registry);
        for sig in ["daemon.posix.SIGTERM", "daemon.posix.SIGINT"] {
            d.events.on(sig, 0, false, |ev: &Event, ctx: &mut Ctx<S>| {
                log::info!("{} received: stopping", ev.name.trim_start_matches("daemon.posix."));
                ctx.stop();
            });
        }
        d.events.on("daemon.posix.SIGHUP", 0, false, |_: &Event, ctx: &mut Ctx<S>| ctx.reload());
        d.events.on("daemon.posix.SIGUSR1", 0, false, |_: &Event, _: &mut Ctx<S>| crate::logging::reopen());
        d.events.on("daemon.posix.SIGUSR2", 0, false, |_: &Event, ctx: &mut Ctx<S>| {
            log::info!("SIGUSR2 received: upgrading");
            ctx.upgrade(None);
        });
        d.events.on("daemon.posix.SIGCHLD", 0, false, |_: &Event, ctx: &mut Ctx<S>| {
            crate::process::reaper::on_sigchld(&mut ctx.workers)
        });
        d
    }

    /// The version `daemon.status` reports (the tomte version by default).
    pub fn version(&mut self, version: &str) -> &mut Self {
        version.clone_into(&mut self.version);
        self
    }

    /// The daemon's name, as given to [`Daemon::new`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Registers a method.
    ///
    /// # Panics
    /// When a method of that name is already registered: a programming error, found at once.
    pub fn method(&mut self, method: Method<Ctx<S>>) -> &mut Self {
        if let Err(e) = self.registry.add(method) {
            panic!("{e}");
        }
        self
    }

    /// Grants `grants` to the peers `who` names, on top of the defaults and of the
    /// configuration's rules (`--allow`); see [`crate::access`].
    ///
    /// ```no_run
    /// use tomte::access::{Grants, Who};
    /// use tomte::Permission;
    /// let mut daemon = tomte::Daemon::new("echo");
    /// daemon.allow(Who::Group("ops".into()), Grants::of([Permission::Read, Permission::Control]));
    /// ```
    pub fn allow(&mut self, who: Who, grants: Grants) -> &mut Self {
        self.policy.allow(who, grants);
        self
    }

    /// Makes method `name` require `permission` instead of what it was registered with — a
    /// built-in's included: `daemon.require("worker.restart", Permission::custom("restart"))`
    /// lets a rule grant restarting workers without the rest of `control`.
    ///
    /// # Panics
    /// When no method of that name is registered (yet): a programming error, found at once.
    pub fn require(&mut self, name: &str, permission: Permission) -> &mut Self {
        if let Err(e) = self.registry.set_permission(name, permission) {
            panic!("{e}");
        }
        self
    }

    /// The method registry, for what the builder methods do not cover (capabilities).
    pub fn registry(&mut self) -> &mut Registry<Ctx<S>> {
        &mut self.registry
    }

    /// Hooks a listener on `event` with priority 0.
    pub fn on(&mut self, event: &str, listener: impl Listener<S> + 'static) -> &mut Self {
        self.events.on(event, 0, false, listener);
        self
    }

    /// Hooks a listener with a priority (higher runs first) and an optional once flag.
    pub fn on_with(
        &mut self,
        event: &str,
        priority: i32,
        once: bool,
        listener: impl Listener<S> + 'static,
    ) -> &mut Self {
        self.events.on(event, priority, once, listener);
        self
    }

    /// Removes every listener of `event`, the default ones included (to replace SIGTERM's).
    pub fn clear(&mut self, event: &str) -> &mut Self {
        self.events.clear(event);
        self
    }

    /// Installs a worker: forked when the daemon starts, supervised until it stops.
    ///
    /// # Panics
    /// When a worker of that name is already installed.
    pub fn worker(&mut self, spec: WorkerSpec) -> &mut Self {
        self.workers.install(spec);
        self
    }

    /// Reads the application's section of the configuration file, `[app]`, into a `T` (serde)
    /// and hands it to `apply`: once as the daemon starts — before it is ready: a bad section
    /// fails `start` (exit 1) with `FILE:LINE:COL: key 'app.x': why` — and again at each
    /// reload, where a bad section leaves everything as it was. With no file, or no `[app]`
    /// in it, `T` comes from an empty table (`#[serde(default)]` fields).
    ///
    /// ```no_run
    /// # use tomte::{Ctx, Daemon};
    /// #[derive(serde::Deserialize, Default)]
    /// #[serde(deny_unknown_fields, default)]
    /// struct App { greeting: String }
    /// let mut daemon = Daemon::with_state("greeter", App::default());
    /// daemon.app_config(|app: App, ctx: &mut Ctx<App>| *ctx.state() = app);
    /// ```
    pub fn app_config<T: serde::de::DeserializeOwned + 'static>(
        &mut self,
        apply: impl FnMut(T, &mut Ctx<S>) + 'static,
    ) -> &mut Self {
        let apply = std::rc::Rc::new(std::cell::RefCell::new(apply));
        self.app_config.push(Box::new(move |file| {
            let value: T = match file {
                Some(f) => f.section(crate::config::APP)?,
                None => crate::config::empty_section(None, crate::config::APP)?,
            };
            let apply = std::rc::Rc::clone(&apply);
            Ok(Box::new(move |ctx: &mut Ctx<S>| (apply.borrow_mut())(value, ctx)))
        }));
        self
    }

    /// Whether a daemon with workers makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`;
    /// on by default): the orphans its workers leave (a helper process whose parent exited) are
    /// reparented to it and reaped, instead of going to init. Off, they go to init, and only
    /// as a container's PID 1 (where it cannot be off) does the daemon reap children that are
    /// not its workers. Turn it off when the daemon's own code spawns children and waits for
    /// them later (the crate docs, [In containers](crate#in-containers)).
    pub fn subreaper(&mut self, on: bool) -> &mut Self {
        self.subreaper = on;
        self
    }

    /// Adds a readiness check named `name`: `GET /readyz`, `daemon.health` and `tomtectl health`
    /// report the daemon ready only while every check answers `Ok` (and the daemon's own hold:
    /// started, not stopping, every worker with policy `always` looping or paused). The check
    /// runs on the loop at each probe, so it must be quick: read what the application keeps,
    /// never block.
    ///
    /// ```
    /// use tomte::{Ctx, Daemon};
    /// struct App { db_up: bool }
    /// let mut d = Daemon::with_state("app", App { db_up: false });
    /// d.ready_check("database", |ctx: &Ctx<App>| {
    ///     if ctx.state_ref().db_up { Ok(()) } else { Err("no connection to the database yet".into()) }
    /// });
    /// ```
    pub fn ready_check(&mut self, name: &str, check: impl Fn(&Ctx<S>) -> Result<(), String> + 'static) -> &mut Self {
        self.ready_checks.push((name.to_owned(), Box::new(check)));
        self
    }

    /// Serves supervisord's XML-RPC interface (API 3.0) beside the daemon's own methods, as
    /// `--supervisor-api` does: `supervisor.getState`, `getAllProcessInfo`, `startProcess`,
    /// `stopProcess`, `signalProcess`… with supervisord's names, state codes and fault codes,
    /// so that `supervisorctl -s unix:///path/to/daemon.sock status|start|stop|restart NAME`
    /// drives the workers. A pool instance `hasher.2` is process `hasher:hasher.2`. What is and
    /// is not supported: `docs/supervisorctl.md`.
    ///
    /// ```no_run
    /// let mut daemon = tomte::Daemon::new("app");
    /// daemon.supervisor_api();
    /// ```
    pub fn supervisor_api(&mut self) -> &mut Self {
        self.supervisor_api = true;
        self
    }

    /// Runs `f` every `period` on the loop (fixed rate; missed ticks are not caught up). A
    /// timer that panics is logged and runs again at its next tick.
    pub fn every(&mut self, period: Duration, f: impl FnMut(&mut Ctx<S>) + 'static) -> &mut Self {
        self.timers.push((period.max(Duration::from_millis(1)), Box::new(f)));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paths_are_in_the_runtime_dir_and_roots_is_run() {
        let c = Config::defaults("x");
        let dir = runtime_dir();
        assert_eq!(c.pidfile, Some(dir.join("x.pid")));
        assert_eq!(c.sockets, vec![Address::unix(dir.join("x.sock"))]);
        if rustix::process::getuid().is_root() && Path::new("/run").is_dir() {
            assert_eq!(dir, Path::new("/run"));
        }
    }
}
