//! tomte: solid Unix daemons.
//!
//! A tomte daemon detaches from the terminal and tells the command that started it when it is
//! ready (or why it is not), holds a locked pid file for its whole life, turns POSIX signals
//! into events, and answers JSON-RPC 2.0 and XML-RPC on unix and TCP sockets — many clients at
//! once, from one thread. It does what the PHP library comodojo/daemon does, speaks its wire
//! protocol, and fixes its bugs (the README lists them). This page is the design: how the parts
//! fit, what happens from `start` to `stop`, where the limits are, and why the unsafe parts are
//! sound.
//!
//! ```no_run
//! // The seed's echo daemon (`tomte/examples/echo.rs`): one method, and the standard command
//! // line (`echo start|run|stop|status|restart|reload`, see `cli`).
//! use serde::Deserialize;
//! use tomte::{Daemon, Method, Type};
//!
//! #[derive(Deserialize)]
//! struct Echo {
//!     message: String,
//! }
//!
//! fn main() {
//!     let mut daemon = Daemon::new("echo");
//!     daemon.method(
//!         Method::typed("my.echo", |Echo { message }, _| Ok(message))
//!             .description("I'm here to reply your data")
//!             .returns(Type::String),
//!     );
//!     std::process::exit(tomte::cli::main(daemon));
//! }
//! ```
//!
//! # Writing a daemon
//!
//! A walk from the echo daemon to one with state, timers and workers; each step is a complete
//! example in `tomte/examples/`.
//!
//! **1. A method.** A daemon is a [`Daemon`] builder with [`Method`]s, handed to
//! [`cli::main`], which gives the binary its command line (`start` detaches and waits for
//! readiness, `run` stays in the foreground, `stop`, `status`, `reload`…). A method's
//! parameters are best one typed struct: [`Method::typed`] deserializes them with serde —
//! each field is a parameter, named once — and answers with any `T: Serialize`. The signature
//! that `system.methodSignature` shows is derived from the struct (the result type from
//! [`Method::returns`]). Over JSON-RPC the parameters may come by name (`{"message": "hi"}`) or
//! by position (`["hi"]`, in field order); over XML-RPC by position. A missing, extra or
//! mistyped parameter is answered −32602 naming it, before the handler runs.
//!
//! **2. Types, as each protocol has them.** XML-RPC has every type: a `double` parameter takes
//! a `<double>`, a date ([`DateTime`]) a `<dateTime.iso8601>`, bytes ([`Bytes`]) a `<base64>`,
//! and nothing else. JSON has no such distinctions, so there an int passes for a double (and
//! the handler gets a double), a date or bytes arrive as strings (ISO 8601, base64) and are
//! converted or refused. `examples/types.rs` has `test.date`, `test.bytes` and `test.double`;
//! `examples/validator.rs` the whole XML-RPC validator1 suite. For methods that take anything,
//! [`Method::new`] hands the handler the raw [`Params`] (`params.take::<String>("message")`,
//! [`Params::parse`] into a struct, or the [`Value`]s themselves, with [`Value::as_i64`],
//! [`Value::as_struct`] and conversions to and from `Vec`, `HashMap` and `BTreeMap`).
//!
//! **3. State.** [`Daemon::with_state`] gives the application's own state; every handler,
//! listener and timer reaches it with [`Ctx::state`]. There is one thread, so it needs no lock
//! and no `Rc<RefCell>`: `ctx.state().total += n` (`examples/counter.rs`). Annotate the
//! context's type where the state is used: `|p: Add, ctx: &mut Ctx<Counter>|`.
//!
//! **4. Events and timers.** [`Daemon::on`] hooks a listener on an event — a signal
//! (`daemon.posix.SIGUSR1`), the lifecycle (`daemon.start`, `daemon.stop`, `daemon.reload`), a
//! client connecting, or the application's own ([`Ctx::emit`]); [`Daemon::every`] runs a
//! timer. Both run on the loop between calls. A listener, timer or handler that panics is
//! logged with its message and the daemon goes on.
//!
//! **5. Workers, asked without blocking.** Long or risky work belongs in a worker: a forked
//! process with its own loop ([`worker::Worker`], installed with [`Daemon::worker`]),
//! supervised and restarted per its policy. A method made with [`Method::new_async`] (or
//! [`Method::typed_async`]) returns a future: [`Ctx::ask`] sends a value to a worker and is
//! the future of its answer; asks awaited together ([`future::join`]) run at once;
//! [`task::Ask::within`] or [`Ctx::timeout`] bounds the wait; [`Ctx::sleep`] waits without
//! blocking. The loop polls the future only when a worker answers or a timer fires, and serves
//! every other client meanwhile; a client that hangs up drops its future, and a worker that
//! dies fails its asks (−32011). `examples/gather.rs` asks two workers at once and answers
//! both counts, or each one's error, within 2 s; `examples/pool.rs` sends any value to a
//! worker and back: the channel keeps every type (bytes, dates, NaN).
//!
//! **5b. Pools.** [`WorkerSpec::instances`](worker::WorkerSpec::instances) makes `n` identical
//! workers behind one name: an ask goes to the least busy instance, waits in a bounded queue
//! when all are busy, has a deadline, and the pool is scaled at run time (`worker.scale`,
//! automatic scaling) and recycled against leaks (`max_requests`, `max_memory`); see
//! [`worker`'s Pools](worker#pools). `examples/hash.rs` spreads CPU-bound hashing over two
//! processes; `examples/fetch.rs` answers many slow asks at once from each process.
//!
//! **6. Who may call what.** Methods require [`Permission::Call`] unless
//! [`Method::requires`] says otherwise; the daemon's own user holds everything on its unix
//! socket; [`Daemon::allow`] and `--allow` grant more (see [`access`]).
//!
//! **7. The command line.** [`cli::main`] parses the standard commands and flags; see [`cli`]
//! for adding the application's own.
//!
//! # Anatomy of the crate
//!
//! ```text
//!    clients: tomtectl, curl, socat, python xmlrpc.client, comodojo PHP clients
//!            │ unix://  tcp://  tls://  comodojo+unix://  comodojo+tcp://  comodojo+tls://
//! ┌────────────────▼───────────────────────────────────────────────────────┐
//! │ the daemon process: one thread, one mio::Poll                          │
//! │  net      listeners → connections (state machines) → complete messages │
//! │  rpc      tomte-rpc: decode → registry (validate, dispatch) → encode   │
//! │  signals  a bit per signal + an eventfd → events → listeners           │
//! │  timers   deadlines → the poll's timeout                               │
//! │  workers  forked children; shared-memory rings + eventfds              │
//! └────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! **The loop** ([`daemon`]). [`Daemon`] is a builder: methods, event listeners, timers. Its
//! [`run`](Daemon::run) owns one `mio::Poll` on the calling thread and every source of work
//! joins it: the listening sockets, the client connections, the signal pipe, and the timers
//! (whose nearest deadline is the poll's timeout). There is no second thread, on purpose:
//! workers are `fork`ed from the daemon, and fork is only sound in a single-threaded process;
//! one thread also keeps an idle daemon near the size of a bare process and its latency
//! predictable. So a handler's own code must be short; what waits (for a worker, a timer) is
//! a future the loop polls when its wake-up arrives ([`task`]), and long work belongs in
//! workers. Handlers, listeners and timers all receive the [`Ctx`]: the application's state
//! ([`Ctx::state`]) and the daemon's as they may see and change it ([`Ctx::stop`],
//! [`Ctx::reload`], [`Ctx::emit`], [`Ctx::ask`], uptime, connections).
//!
//! **Events** ([`event`]) are named occurrences with a [`Value`] attached. Listeners are
//! closures or types implementing [`event::Listener`], hooked by name with a priority (higher
//! runs first) and an optional once flag ([`Daemon::on`], [`Daemon::on_with`],
//! [`Daemon::clear`]). They run on the loop thread; an event emitted from a handler or listener
//! runs its listeners as soon as that handler returns. The daemon emits the names in
//! [`event::names`]: `daemon.start`, `daemon.ready`, `daemon.stop`, `daemon.reload`,
//! `daemon.socket.client.connect`, `daemon.socket.client.hangup`; and for workers
//! `daemon.worker.message` (a message a worker sent up) and `daemon.worker.failed` (a crash
//! loop ended).
//!
//! **The signal bridge** ([`signal`]) turns every catchable signal into two events, one by name
//! and one by number (`daemon.posix.SIGTERM` and `daemon.posix.15`). [`Daemon::new`] hooks the
//! defaults: SIGTERM and SIGINT stop gracefully, SIGHUP reloads, SIGUSR1 reopens the log
//! (logrotate), SIGUSR2 [upgrades](#upgrades) to a new process of the binary, SIGCHLD reaps and restarts
//! workers (the watchdog). The fault signals (SEGV, BUS, FPE, ILL) keep their default action,
//! and SIGPIPE is ignored, so a vanished client is an I/O error on its connection and nothing
//! more. Job control is an event like any other: Ctrl-Z (SIGTSTP), SIGTTIN and SIGTTOU have no
//! default listener, so they do nothing to the daemon unless a listener of yours acts on them.
//!
//! **Signals and workers.** Workers share the daemon's process group, so a signal sent to the
//! group — Ctrl-C or Ctrl-Z on `run`, `kill -TERM -PGID`, systemd's `KillMode=control-group`,
//! `timeout(1)` — reaches them too. They are set up so that it never kills or freezes them
//! behind the daemon's back (the full table is in [`worker`'s docs](worker#signals)):
//!
//! | signal reaching a worker | what it does |
//! | --- | --- |
//! | TERM, INT | a clean stop, as the `stop` command: `spindown`, exit 0 |
//! | TSTP, TTIN, TTOU | ignored: the group is never half-stopped |
//! | HUP, USR1, USR2, ALRM, VTALRM, PROF, IO, PWR, STKFLT, real-time | caught and dropped (they are the daemon's) |
//! | SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT, QUIT, XCPU, XFSZ | default: the worker dies (with a core) and is restarted per policy |
//!
//! So Ctrl-C on `run` stops the daemon, which stops its workers, each running its `spindown`
//! once; a worker that had the same SIGINT and ended first is reaped and not restarted. A
//! worker sent SIGTERM alone while the daemon runs exits 0 and is restarted per its policy; a
//! clean exit never counts towards the crash-loop limit.
//!
//! **RPC** lives in the `tomte-rpc` crate, which is pure: bytes in, bytes out, no I/O, no
//! `unsafe`. It holds the value model ([`Value`]), methods with signatures ([`Method`],
//! [`Type`], [`Params`]), the [`Registry`](tomte_rpc::Registry) that validates parameters
//! against the signatures before a handler runs and answers `system.*`, and the codecs
//! (JSON-RPC 2.0, XML-RPC, PHP-serialize subset, comodojo frames). The built-in `daemon.*` and
//! `worker.*` methods are registered by [`Daemon::new`].
//!
//! **The network** ([`net`]) moves bytes and finds message boundaries; it knows nothing of
//! methods. An [`Address`](net::Address) names a listener. Each accepted socket becomes a
//! [`Conn`](net::Conn): a non-blocking state machine with its own read and write buffers. On a
//! native listener, the first byte a client sends picks the framing — `{` or `[` is
//! newline-delimited JSON-RPC, anything else HTTP/1.1 (JSON-RPC or XML-RPC by the body's type);
//! a `comodojo+` listener speaks comodojo's frames. Complete messages go to a
//! [`Service`](net::Service), which the loop implements by calling the codecs with its
//! registry: that trait is the seam between transport and protocol.
//!
//! **The process layer** ([`process`]) does what happens once per daemon:
//! [`detach`](process::detach) (fork, setsid, fork, chdir `/`, umask, stdio to `/dev/null` or
//! the log), the [`PidFile`](process::PidFile), niceness, and `sd_notify` for systemd.
//!
//! **Workers** ([`worker`]) are child processes forked from the daemon, each running its own
//! loop: a [`Worker`](worker::Worker) (`spinup`, one `loop` iteration per interval, `spindown`,
//! `on_command`, `on_message`), installed with a [`WorkerSpec`](worker::WorkerSpec) (interval,
//! restart [`Policy`](worker::Policy), back-off, crash-loop limit, hang timeout, stop grace).
//! The daemon's supervisor forks them, reaps them on SIGCHLD, restarts them per policy after an
//! exponential back-off, kills the ones whose heartbeat is too old, and stops them all with the
//! daemon. Each talks to the daemon through a [`worker::channel`]: one shared mapping made
//! before the fork holding two single-producer single-consumer rings, a status word and a
//! heartbeat, with an eventfd per direction for wake-ups, so frames cross without a system call
//! and the daemon's side is one more source on its poll. Values cross in a binary encoding that
//! keeps every type. A handler that needs a worker's answer returns a future that awaits
//! [`Ctx::ask`]: its client's answer waits until the worker answers (or dies, which makes it an
//! error), and the loop serves everyone else meanwhile.
//!
//! **Access control** ([`access`]). Every connection's identity ([`net::Peer`]: uid, gid, pid
//! and names on unix sockets, the address on TCP) is decided once at accept, and the
//! [`access::Policy`] turns it into [`access::Grants`] kept with the connection. Every method
//! requires a [`Permission`] (`read`, `call` — the default —, `control`, or a custom name,
//! [`Method::requires`]); the registry's gate checks it before the parameters are validated and
//! refuses with −32001 "Permission denied". While a connection is served, the loop puts its
//! caller (an `Rc`, no copy) in the [`Ctx`]: handlers read [`Ctx::peer`] and [`Ctx::grants`].
//! Defaults: the daemon's own user and root hold everything on unix sockets, other users
//! nothing; anonymous TCP clients `read` and `call`. [`Daemon::allow`] and `--allow` add rules;
//! [`Daemon::require`] and `--require` change what a method needs. Calls needing `control` are
//! logged (the caller and the method, never the parameters).
//!
//! **The system layer** (`sys`, private to the crate) is the only module with `unsafe` code: fork, `_exit`, signal
//! dispositions, shared mappings, eventfd. The workspace denies `unsafe_code` everywhere else,
//! and every unsafe block carries a `SAFETY` comment (clippy's `undocumented_unsafe_blocks` is
//! denied too).
//!
//! Around them: [`cli`] is the command line every daemon binary gets from [`cli::main`];
//! [`client`] is a blocking client (for `tomtectl`, tests and benchmarks); [`logging`] writes one
//! line per record — text, journald's priority prefixes, or JSON — to stderr (the terminal,
//! journald, the log file or `/dev/null`) or to syslog, the workers' own output among them.
//!
//! # Lifecycle
//!
//! * **start.** [`cli::main`] checks the pid file first (a live instance is reported, not
//!   disturbed), then calls [`process::detach`], which returns which side of the fork the
//!   caller is on ([`process::Detached`]); the library never calls `exit` for you. The starting
//!   side waits on a **readiness pipe**. The daemon side runs [`Daemon::run`] with
//!   [`Mode::Detached`]: it sets the niceness, takes the pid file (created, `flock`ed, pid
//!   written; a stale file whose lock is free is taken over), binds every listener (a stale unix
//!   socket file that refuses connections is replaced, a live one is left alone), installs the
//!   signal bridge, drops to `--user` ([`process::privileges`]), emits `daemon.start`, and forks
//!   the workers.
//! * **ready.** Then, and only then, the daemon writes `READY <pid>` into the pipe and the
//!   starting command prints where the sockets and pid file are and exits 0. When anything
//!   before that fails, the daemon writes `ERROR <its own message>` instead, and `start` prints
//!   that message and exits 1. `daemon.ready` is emitted and the loop begins. In the foreground
//!   ([`Mode::Foreground`], the `run` command) there is no pipe: logs go to stderr, and
//!   `READY=1` goes to systemd when `NOTIFY_SOCKET` is set (see [Under
//!   systemd](#under-systemd)).
//! * **reload.** SIGHUP, `daemon.reload` or `NAME reload`: the log file is reopened (after
//!   rotation) and `daemon.reload` emitted for the daemon's own hooks.
//! * **stop.** SIGTERM, SIGINT, `daemon.shutdown` or [`Ctx::stop`] start the **drain** at the
//!   end of the loop's turn: the listeners close at once (nothing new is accepted),
//!   `daemon.stop` is emitted, and the loop goes on serving what it had started — requests
//!   already received, answers owed by workers and async handlers, answers unsent — for at most
//!   `--drain-timeout` (5 s by default); each connection closes as soon as it is owed nothing,
//!   HTTP answers say `Connection: close`, and what the timeout cuts short is logged. Then
//!   `daemon.drained` is emitted, every worker is sent `stop` at once (then, after its grace period, SIGTERM, and
//!   after another, SIGKILL) and reaped — from the moment the stop is asked for, no worker is
//!   restarted and no exit counts as a crash — the listeners close and remove their socket files, and
//!   the pid file is removed while its lock is still held, so no second instance can slip in
//!   between.
//!
//! ```
//! // A daemon that runs its whole life here: a client thread calls it and shuts it down.
//! use std::time::Duration;
//! use tomte::client::Client;
//! use tomte::net::Address;
//! use tomte::{Args, Config, Ctx, Daemon, Event, Method, Mode, Type, Value};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("tomte-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let mut config = Config::defaults("life");
//! config.sockets = vec![Address::unix(dir.join("life.sock"))];
//! config.pidfile = Some(dir.join("life.pid"));
//!
//! let mut daemon = Daemon::new("life");
//! daemon
//!     .method(
//!         Method::new("my.echo", |mut p, _| Ok(Value::String(p.take("message")?)))
//!             .returns(Type::String)
//!             .param(Type::String, "message"),
//!     )
//!     .on("daemon.stop", |_: &Event, ctx: &mut Ctx| assert!(ctx.stopping()));
//!
//! // The client runs on a second thread. That is fine in the foreground, where nothing forks;
//! // `start` must detach while the process still has one thread.
//! let address = config.sockets[0].clone();
//! let client = std::thread::spawn(move || {
//!     let mut client = loop {
//!         match Client::connect(&address) {
//!             Ok(c) => break c,
//!             Err(_) => std::thread::sleep(Duration::from_millis(5)),
//!         }
//!     };
//!     let hello = client.call("my.echo", &Args::Positional(vec![Value::from("hello")]));
//!     assert_eq!(hello.unwrap().unwrap(), Value::from("hello"));
//!     let no_param = client.call("my.echo", &Args::Positional(vec![])).unwrap();
//!     assert_eq!(no_param.unwrap_err().code, -32602);
//!     client.call("daemon.shutdown", &Args::default()).unwrap().unwrap();
//! });
//!
//! daemon.run(&config, Mode::Foreground)?;
//! client.join().unwrap();
//! // Stopped: the socket file and the pid file are gone.
//! assert!(!dir.join("life.sock").exists() && !dir.join("life.pid").exists());
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Upgrades
//!
//! `NAME upgrade [--binary PATH] [--wait]`, SIGUSR2 (as nginx) or `daemon.upgrade` (permission
//! `control`) replace a running daemon by a new process of its binary — the path it was started
//! from, which a package or a build may have replaced, or `--binary` (an absolute path to an
//! executable only root or the daemon's user may change) — without refusing a connection or
//! losing a call ([`process::upgrade`] has the mechanics):
//!
//! 1. The old daemon starts the binary with its own command line, environment and working
//!    directory, handing it the listening sockets (as socket activation does: `LISTEN_FDS`,
//!    `LISTEN_FDNAMES`, each named after its address, so that a changed configuration keeps
//!    the sockets it still names and binds only new ones) and the pid file's locked descriptor:
//!    the lock never lapses, so `status` always answers 0 and a second `start` never wins.
//! 2. The new process reads its configuration, binds nothing it was handed, starts its own
//!    workers and says ready (as `start` means it; a worker in back-off or `failed` does not
//!    hold it), its pid now in the pid file. Both processes accept on the shared sockets.
//! 3. The old one then stops accepting and drains: every call it had started is answered by it
//!    (workers' and async ones included), and each connection, once it is owed nothing,
//!    **goes over to the new process** (its descriptor passed on a socket pair, with what was
//!    read of a request not yet complete): the client
//!    keeps its connection, kept-alive HTTP, NDJSON and comodojo alike, and never sees the
//!    change. TLS sessions, whose state cannot travel, and connections holding a token or a
//!    subscription close instead once idle; HTTP ones get a second for their next request,
//!    answered with `Connection: close`. Then its workers stop and it exits.
//!
//! If the new binary fails before it is ready — it cannot be executed, its command line or
//! configuration is refused, it crashes, or it is not ready within 30 s (then it is killed) —
//! the old one serves on as if nothing happened, and `upgrade` exits 1 with the new process's
//! own message (`daemon.upgrade`: fault −32021 with it as data). `upgrade` prints both pids and
//! exits 0 once the new one serves; with `--wait` it also follows the old one to its drain and
//! its exit. Progress is the `daemon.upgrade` event (`started`, `ready`, `failed`), then
//! `daemon.drained`. Under systemd the old process sends `MAINPID=` of the new one and the new
//! one `MAINPID=` with `READY=1` (`NotifyAccess=all` in the unit), so systemd follows it. A
//! container's PID 1 refuses to upgrade: its exit would end the container.
//!
//! # Under systemd
//!
//! In `run` mode ([`Mode::Foreground`]) with `NOTIFY_SOCKET` set (a path, or `@name` for an
//! abstract socket), the daemon tells the service manager, from its loop:
//!
//! | when | datagram |
//! | --- | --- |
//! | before the `daemon.start` listeners run (if any), and before forking the workers (if any) | `EXTEND_TIMEOUT_USEC=10000000` and `STATUS=starting: …`: each slow stage may take 10 s more (this never shortens `TimeoutStartSec=`) |
//! | sockets bound, workers forked | `READY=1` |
//! | every half `WATCHDOG_USEC`, if set and `WATCHDOG_PID` is unset or this process | `WATCHDOG=1`, a deadline of the loop: a loop stuck in a handler stops pinging |
//! | the connection count or the workers up change | `STATUS=12 connections, 2/2 workers up`, at most once a second |
//! | SIGHUP, `daemon.reload` | `RELOADING=1` and `MONOTONIC_USEC=…` before, `READY=1` after (`Type=notify-reload`) |
//! | the daemon binds its own sockets (no socket activation) | `FDSTORE=1` with `FDNAME=` (the socket's address) for each listening socket: with `FileDescriptorStoreMax=` in the unit, systemd keeps them across `systemctl restart`, and the next start gets them back (`LISTEN_FDS`), so clients connecting in between wait in the backlog instead of being refused; unix socket files then stay in place at the stop |
//! | an upgrade's new process is ready | from the old (main) process `MAINPID=` of the new one; from the new one `MAINPID=` and `READY=1` |
//! | the stop begins | `STOPPING=1` (not from the old process of an upgrade) |
//! | the start fails | `STATUS=cannot start: …`, then the exit (1) |
//!
//! Reading certificates and binding take milliseconds and are not announced; a `daemon.start`
//! listener of yours that takes long can ask for more itself with
//! [`process::sd_notify`]`("EXTEND_TIMEOUT_USEC=…")` as it makes progress. Sockets passed by
//! socket activation (`LISTEN_FDS`, `LISTEN_PID`) replace `--socket`. `contrib/systemd/` has
//! service, socket and hardened units.
//!
//! # In containers
//!
//! As a container's **PID 1** (`NAME run` as the entry point, no `--init`), the daemon reaps
//! every process reparented to it, not only its workers; a daemon that is not PID 1 but has
//! workers makes itself a **child subreaper** (`PR_SET_CHILD_SUBREAPER`; opt out with
//! [`Daemon::subreaper`]), so its workers' orphans come back to it too. On SIGCHLD the
//! supervisor reaps its workers by pid (it needs their statuses), then every other exited child
//! is reaped by its pid, after a look that leaves statuses in place (`waitid` with `WNOWAIT`),
//! and logged at debug level. A child your own code spawns and keeps to `wait` for later may be
//! reaped first then: wait at once (`Command::output`), or spawn it from a worker.
//!
//! Nothing is forwarded: SIGTERM and SIGINT stop the daemon, which stops its workers itself
//! (`stop`, grace, SIGTERM, grace, SIGKILL); SIGHUP reloads; any other signal is an event only;
//! orphans are never signalled, and end with the namespace. A stop takes at most the drain
//! timeout (`--drain-timeout`, 5 s by default) plus twice the longest worker stop grace (5 s by
//! default), 15 s in all — usually milliseconds: give the runtime's stop timeout more than
//! that. As PID 1 the daemon refuses to [upgrade](#upgrades) (replace the container instead). Exit status of `run`:
//!
//! | status | meaning |
//! | --- | --- |
//! | 0 | stopped cleanly (SIGTERM, SIGINT, `daemon.shutdown`) |
//! | 1 | could not start (socket, pid file, TLS files, an unauthenticated public listener…), or the loop failed |
//! | 2 | a usage error or a path that cannot be resolved, before anything started |
//! | 101 | a panic outside handlers, listeners and timers (a bug; theirs are caught and logged) |
//! | 128 + N | killed by signal N, as the runtime reports it (137: SIGKILL after its stop timeout) |
//!
//! # Seeing inside
//!
//! Every native listener (unix or TCP, plain or TLS) answers HTTP `GET` besides RPC, to callers
//! holding the `read` permission (see [`access`]; an anonymous TCP client holds it by default, a
//! local user other than the daemon's on a unix socket does not):
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /metrics` | Prometheus text format 0.0.4; OpenMetrics 1.0.0 when `Accept` asks for `application/openmetrics-text` (see [`metrics`]) |
//! | `GET /livez` | 200 `{"status":"ok"}` while the loop answers |
//! | `GET /readyz` | 200 or 503 `{"status":"ok"\|"fail"}`; `?verbose` adds `checks: [{name, ok, detail}]` |
//! | `GET /events?pattern=P` | server-sent events: `data: {"name":…,"data":…,"time":…}` per event matching a pattern (`*` by default) |
//! | `GET /` | the dashboard, with `--dashboard` (404 otherwise) |
//!
//! **Readiness** holds while the daemon has started and is not stopping, every worker whose
//! policy is `always` loops (or was paused by an operator), and every check of the
//! application's ([`Daemon::ready_check`]) answers `Ok`; `daemon.health` answers the same over
//! RPC, and `tomtectl health` exits 0 or 1 on it.
//!
//! **Events to clients.** On an NDJSON connection, `daemon.subscribe(["daemon.worker.*",
//! "app.*"])` makes the daemon push every matching event (patterns are names, or prefixes ending
//! in `*`) as a JSON-RPC notification `{"jsonrpc":"2.0","method":"daemon.event","params":{"name",
//! "data","time"}}`, until `daemon.unsubscribe` or hang-up; the connection still answers calls.
//! Besides the application's own events, a worker's state changes are
//! [`event::names::WORKER_STATE`] (`{worker, state, pid, last_exit}`), and every log record of
//! the daemon and its workers (their captured output too) is [`event::names::LOG`]
//! (`{level, target, worker, message}`) — given only to callers holding `control`, since it
//! tells what the daemon logs about every client. Each subscriber may leave at most 1 MiB of
//! events unread: past that it gets a last `daemon.dropped` notification and is closed, so a
//! subscriber that does not read never slows the loop or the other clients.
//!
//! # Limits
//!
//! * **Connections** ([`net::Limits`], all configurable, reported by `daemon.status`): messages
//!   up to 16 MiB, 1024 connections at once, 256 per peer (an IP address, or a uid on unix
//!   sockets), 64 kept for each listener when there are several, a message must arrive within
//!   10 s (plus its size at 64 KiB/s), 300 s with no request answered, 256 MiB of unfinished
//!   requests over all connections. Past one, the client at fault gets an error (a JSON-RPC
//!   error, an HTTP status, a comodojo `status: false`) and its connection is closed; at the
//!   connection limit, the connection idle (or stuck) the longest makes room for the new one.
//!   The daemon and every other client are unaffected. A client that does not read its answers
//!   is served nothing more once 4 MiB of answers wait for it (checked before each message), and
//!   a connection serves at most 16 reads before the others get their turn. Every scan resumes
//!   where it stopped, so a connection's cost is linear in what it sends, however it is cut.
//! * **One thread.** A slow handler delays every client for as long as it runs: long work
//!   belongs in a worker, asked with [`Ctx::ask`] from an async handler. A connection waits
//!   for one async answer at a time, so its answers keep their order; inside a batch or a
//!   `system.multicall`, which are answered whole, a method that answers later is one error. A storm of listeners emitting events for
//!   each other is cut off after 1024 rounds, with a warning.
//! * **Worker channels** hold 64 KiB each way by default
//!   ([`WorkerSpec::ring_bytes`](worker::WorkerSpec::ring_bytes)); a full ring is an error to
//!   the sender (back-pressure), never a silent drop.
//! * **HTTP** is the part of HTTP/1.1 RPC needs: `POST` with `Content-Length` (no chunked
//!   bodies, no compressed ones), and `GET` for the pages of [Seeing inside](#seeing-inside), heads up to 64 KiB, parsed strictly (no bare LF, no signs or
//!   leading zeros in `Content-Length`, `Host` required). Requests a browser sends for another
//!   site (`Origin`, `Sec-Fetch-Site`) get 403, but for a `GET` the user navigates to (a
//!   followed link: `Sec-Fetch-Mode: navigate`, `Sec-Fetch-Dest: document`, no `Origin`), and so do `Host`s that are not loopback on a
//!   loopback listener (DNS rebinding). **XML-RPC** has no named parameters, and arrays and
//!   structs nest at most 64 deep.
//! * **Access.** Unix sockets are created mode 0600; the pid file, the log and the socket are
//!   never opened through a symbolic link nor taken over from another user
//!   ([`process::files`]). TCP listeners bind where they are told; one other hosts can reach is
//!   refused at start unless its clients prove who they are (TLS with `--tls-client-ca`, or
//!   [`tokens`] from `--token-file`) or `--insecure` is given.
//! * **TLS** ([`net::tls`]): `tls://` and `comodojo+tls://` listeners speak TLS 1.2/1.3 with
//!   rustls (the ring provider; no OpenSSL), with the certificate and key of `--tls-cert` and
//!   `--tls-key` (a key others may read is refused), reloaded on SIGHUP. A TLS connection is
//!   the same state machine as a TCP one with a rustls session between the socket and the
//!   framing; its handshake is under the request deadline, like a message arriving. With
//!   `--tls-client-ca`, clients must show a certificate that CA signed, and its common name is
//!   the connection's [`net::Peer::cert`]. TLS alone authenticates the daemon to its clients,
//!   not clients to the daemon.
//! * **Linux only**: eventfd, Linux signal numbers, abstract `NOTIFY_SOCKET` addresses.
//!
//! # Safety
//!
//! * **Fork only while single-threaded.** After `fork`, only the forking thread exists in the
//!   child: a lock another thread held (the allocator's, stdout's) would stay locked forever.
//!   Every fork in tomte goes through one function (`sys::process::fork_alone`), which counts the process's
//!   threads first and refuses (an error, not a fork) when there is more than one. So
//!   [`process::detach`] must run before any thread is started, as [`cli::main`] does; a program
//!   that needs threads before it daemonizes runs in the foreground under a supervisor instead,
//!   and a daemon with workers must not start threads at all. The daemon itself never starts
//!   one. Processes that exist only to fork again or to report a failure leave through `_exit`,
//!   and a worker's process `_exit`s when its loop ends, so no child runs its parent's
//!   destructors.
//! * **Nothing happens inside a signal handler.** The daemon's handler marks the signal pending
//!   and writes to an eventfd; the loop drains it and runs the listeners on its own
//!   thread. A signal that arrives while the loop is busy is acted on at its next turn, never
//!   lost. A forked worker puts every disposition back to its default, then sets its own
//!   ([`worker`](worker#signals); the stop handler only stores a flag and writes to the worker's eventfd),
//!   and only then unblocks the signals, which the daemon blocks across the fork; so it never
//!   writes into the daemon's pipe, and no signal meets it in between; it asks to be
//!   killed when the daemon dies (`PR_SET_PDEATHSIG`, with a check for a daemon that died before
//!   the request), and closes every descriptor that is not its own.
//! * **Shared memory is not trusted.** Every index and length a worker channel reads from the
//!   mapping is checked: a buggy or dying peer yields an error, never an out-of-bounds access.
//!   The rings' memory ordering is model-checked with loom.
//! * **Untrusted bytes are bounded.** Every message is held to the size limit and every decoder
//!   to a nesting limit (serde_json's 128 levels for JSON, 64 for XML-RPC and PHP arrays); an
//!   XML document with a `<!DOCTYPE` is refused, so no declared entity is ever expanded; the
//!   PHP-serialize reader accepts arrays and scalars only, never objects.

#![warn(missing_docs)]

pub mod access;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub(crate) mod dashboard;
pub mod event;
pub mod faults;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod process;
pub mod signal;
pub(crate) mod sys;
pub mod task;
pub mod tokens;
pub mod worker;

/// Doors for the fuzz targets (`fuzz/`) and the test replaying their corpus: re-exports of
/// internals, not an API.
#[doc(hidden)]
pub mod _fuzz {
    pub use crate::net::http::{parse_head, Parsed};
    pub use crate::worker::wire::Frame;
}

/// Doors for the benchmarks (`bench/`), which fork children and map shared memory the way the
/// worker channel does, to measure it against its floor: re-exports of internals, not an API.
/// [`spawn_child`](_bench::spawn_child) is `unsafe`: read its `# Safety` section.
#[doc(hidden)]
pub mod _bench {
    pub use crate::sys::process::spawn_child;
    pub use crate::sys::shm::SharedRegion;
}

pub use daemon::{Config, Ctx, Daemon, DaemonError, Mode};
pub use event::Event;
pub use tomte_rpc::{
    from_value, from_value_strict, to_value, Args, Bytes, DateTime, Fault, FromValue, Params, Permission, Reply, Rules,
    Type, Value,
};

/// The protocols crate itself (codecs, the registry, signature tracing), for what the names
/// above do not cover: a daemon's code never needs to depend on `tomte-rpc` directly.
pub use tomte_rpc as rpc;

/// Combinators for the futures of async handlers (`join`, `join_all`, `select`…), from
/// `futures-util`: they need no runtime, so they run on the daemon's loop as they are.
pub use futures_util::future;

/// A method of a tomte daemon: its handlers receive the daemon's [`Ctx`] (with the
/// application's state `S`; `()` unless the daemon has one).
pub type Method<S = ()> = tomte_rpc::Method<Ctx<S>>;
