//! tomtectl: control a tomte daemon over its socket.
//!
//! Exit codes: 0 success, 1 the daemon answered with an RPC error, 2 it could not be reached
//! (or the command line is wrong, or the unix socket is served by a user not trusted: root and
//! the user running tomtectl are, `--trust-uid UID` adds another). Two commands differ, for
//! scripts: `health` exits 1 whenever the daemon is not known to be ready (not ready, or not
//! reached); `events` and `logs -f` exit 0 when the daemon ends the stream (it stops), 1 when
//! it drops this subscriber for not keeping up.
//!
//! Observing: `events` and `logs -f` subscribe on an NDJSON connection and print what the
//! daemon pushes; `health` calls `daemon.health`; `metrics` sends `GET /metrics` over the same
//! socket (a native listener serves HTTP too) and shows the main figures as a table.
//! `completions SHELL` and `man [COMMAND]` print a completion script and a man page.
//!
//! Replacing: `upgrade` calls `daemon.upgrade` and prints both pids (`--wait`: the old one's
//! drain and end too; exit 1 with the new process's message when it failed); `worker restart
//! --rolling all|NAME...` replaces workers one at a time, and `--wait` prints each as it comes
//! back (exit 1 when one does not).
//!
//! Protocols: NDJSON JSON-RPC by default; `--xml` speaks XML-RPC over HTTP; `--comodojo` speaks
//! comodojo/daemon's framing (JSON-RPC inside, or XML-RPC with `--xml` too), which a
//! `comodojo+unix://` or `comodojo+tcp://` address implies.

mod exposition;
mod follow;
mod health;
mod metrics;
mod restart;
mod upgrade;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{CommandFactory as _, Parser, Subcommand};
use tomte::client::{Client, ClientError, ClientFiles, Protocol, Trust};
use tomte::net::{Address, Dialect};
use tomte_rpc::{Args, Fault, Value};

#[derive(Parser)]
#[command(
    name = "tomtectl",
    version,
    disable_help_subcommand = true,
    about = "Control a tomte daemon: call methods, list them, read status, shut it down.",
    long_about = "Control a tomte daemon: call methods, list them, read status, shut it down; \
                  follow its events and logs, check its health, show its metrics.",
    after_long_help = EXIT_STATUS
)]
struct Cli {
    /// The daemon's socket: unix:///path, tcp://host:port, tls://host:port, or comodojo+ before one
    /// [default: $TOMTE_SOCKET, else the echo daemon's default socket]
    #[arg(long, short = 's', global = true)]
    socket: Option<String>,
    /// Print results as raw JSON on one line
    #[arg(long, global = true)]
    json: bool,
    /// Speak XML-RPC (over HTTP; inside comodojo frames with --comodojo)
    #[arg(long, global = true)]
    xml: bool,
    /// Speak comodojo/daemon's framing (implied by a comodojo+ address)
    #[arg(long, global = true)]
    comodojo: bool,
    /// Also talk to a unix socket served by user UID (repeatable); by default only root's and
    /// your own are trusted
    #[arg(long = "trust-uid", value_name = "UID", global = true)]
    trust_uid: Vec<u32>,
    /// tls:// addresses: the CA (PEM) that signed the daemon's certificate
    #[arg(long = "tls-ca", value_name = "PATH", global = true)]
    tls_ca: Option<std::path::PathBuf>,
    /// Mutual TLS: this client's certificate (PEM), shown when the daemon asks for one
    #[arg(long = "tls-cert", value_name = "PATH", global = true, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// Mutual TLS: the key (PEM) of --tls-cert, readable by its owner only
    #[arg(long = "tls-key", value_name = "PATH", global = true, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// A token for the daemon (its --token-file: the first token's secret is used; or a file
    /// holding the bare secret), presented as the connection's first call (daemon.auth)
    #[arg(long = "token-file", value_name = "PATH", global = true)]
    token_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Call METHOD with parameters: one JSON array or object, or key=value pairs, or values
    Call { method: String, params: Vec<String> },
    /// List the daemon's methods with their descriptions
    Methods,
    /// Show a method's signatures and description
    Help { method: String },
    /// Show the daemon's pid, uptime, version, connections and workers
    Status,
    /// Ask the daemon to stop
    Shutdown,
    /// Show the daemon's workers: name, state, pid, restarts, iterations, asks, in flight, uptime
    ///
    /// A pool is one line (its state is its liveliest instance's; restarts, iterations, asks
    /// and in flight are its instances' sums; `pool: N instances, Q queued`) with its instances
    /// indented under it. --json prints worker.list's answer as sent.
    Workers,
    /// Act on workers: pause, resume, start, stop or restart NAME..., or `all`; scale a pool
    ///
    /// A NAME is a worker, a pool (every instance of it) or one instance of a pool (`hasher.2`);
    /// `all` is every worker. `restart --rolling` replaces the workers one at a time, each new
    /// one looping before the next old one is stopped (worker.restart with rolling: true); the
    /// daemon answers at once. `restart --wait` follows the daemon.worker.state events (on an
    /// NDJSON connection) and prints each worker as it comes back, `NAME back: pid NEW (was
    /// OLD)` (for a pool, each of its instances); it exits 1 when one does not (failed,
    /// stopped, or passed over by the rolling restart), naming it on stderr.
    ///
    /// `worker scale NAME N` grows or shrinks pool NAME to N instances (worker.scale) and
    /// prints `NAME: FROM -> TO instances`; new instances start at once, idle ones stop first
    /// and busy ones finish their asks before they stop.
    Worker {
        #[arg(value_parser = ["pause", "resume", "start", "stop", "restart", "scale"])]
        action: String,
        /// Worker, pool or instance names, or `all`; scale: the pool and its number of instances
        #[arg(required = true, value_name = "NAME", allow_negative_numbers = true)]
        names: Vec<String>,
        /// restart: one worker at a time, each looping again before the next is stopped
        #[arg(long)]
        rolling: bool,
        /// restart: wait for every worker to be back, printing each as it comes
        #[arg(long)]
        wait: bool,
    },
    /// Replace the daemon by a new process of its binary, without refusing a connection
    ///
    /// Calls daemon.upgrade: the new process takes over the listening sockets and the pid
    /// file, and once it is ready the old one finishes what it started and exits. Prints `old
    /// pid X -> new pid Y ready in N ms (BINARY)` (the arrow a Unicode one, U+2192). When the new process fails (it exits, its
    /// configuration is refused, it is not ready in time), its message goes to stderr, the old
    /// one serves on unchanged, and the exit code is 1. --wait also prints `old pid X drained
    /// in N ms` (its daemon.drained event, subscribed to first on the NDJSON connection) and,
    /// for a daemon on a unix socket, `old pid X gone` once the process has ended.
    Upgrade {
        /// The new binary (an absolute path on the daemon's machine; a relative one is made
        /// absolute here for a unix socket) [default: the daemon's own]
        #[arg(long, value_name = "PATH")]
        binary: Option<String>,
        /// Wait for the old process to drain (and, on a unix socket, to end)
        #[arg(long)]
        wait: bool,
    },
    /// Show the daemon's log level, or set it (for its workers too) and show the previous one
    Loglevel {
        #[arg(value_parser = ["error", "warn", "info", "debug", "trace"])]
        level: Option<String>,
    },
    /// Follow the daemon's events as they happen, one line each
    ///
    /// Subscribes to PATTERNS (daemon.subscribe) and prints each event as `TIME NAME DATA`, the
    /// data as compact JSON (--json: the notification's params object as sent), until
    /// interrupted or the daemon ends the stream: exit 0 when it hangs up (it stopped), 1 when
    /// it drops this subscriber (daemon.dropped; the reason goes to stderr).
    Events {
        /// Event names: exact, or a prefix ending in `*` (daemon.worker.*, app.*)
        #[arg(default_value = "*")]
        patterns: Vec<String>,
    },
    /// Follow the daemon's log records and its workers' output (-f)
    ///
    /// Subscribes to daemon.log events and prints each as `TIME LEVEL [worker] target:
    /// message` (the daemon's own records name no worker), filtered by --worker and --level.
    /// The daemon keeps no history: without -f this is an error that says so (read the
    /// daemon's --log file or its journal for earlier records). Exit codes as for `events`.
    Logs {
        /// Follow: print each record as the daemon logs it (required: there is no history)
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the records of worker NAME (repeatable); a pool's name: each of its instances
        #[arg(long, value_name = "NAME")]
        worker: Vec<String>,
        /// Only records at level L or more severe (the daemon sends only what its own level lets
        /// through: see `loglevel`)
        #[arg(long, value_name = "L", value_parser = follow::LEVELS)]
        level: Option<String>,
    },
    /// Whether the daemon is ready: exit 0 when it is, 1 when not or unreachable
    ///
    /// Calls daemon.health and prints `ready` or `not ready`, then each failing check as
    /// `FAIL  NAME: DETAIL` (--verbose: every check). Exits 1 whenever the daemon is not known
    /// to be ready, unreachable included (the reason on stderr), for scripts and probes.
    Health {
        /// List every check, passing ones too
        #[arg(long, short = 'v')]
        verbose: bool,
    },
    /// Show the daemon's main figures from its /metrics
    ///
    /// Sends `GET /metrics` over the same socket (a native listener serves HTTP too) and shows
    /// calls per method and outcome with p50/p99 latency estimated from the histogram buckets,
    /// connections per listener, each worker's up/state/restarts/iterations, and the process's
    /// resident memory, CPU seconds, open fds and uptime. --raw prints the exposition as sent.
    Metrics {
        /// Print the exposition text as the daemon sent it
        #[arg(long)]
        raw: bool,
    },
    /// Print a shell completion script
    ///
    /// bash: `source <(tomtectl completions bash)`; zsh: `tomtectl completions zsh >
    /// ~/.zfunc/_tomtectl`; fish: `tomtectl completions fish | source`.
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of tomtectl or of one of its commands
    ///
    /// `tomtectl man | man -l -` reads it; `tomtectl man health` is the page tomtectl-health(1).
    Man {
        /// A command, for its own page (tomtectl-COMMAND)
        command: Option<String>,
    },
}

/// The exit codes, for `--help` and the man page.
const EXIT_STATUS: &str = "Exit status: 0 success; 1 the daemon answered with an RPC error; 2 the daemon \
could not be reached, the socket is served by an untrusted user, or the command line is wrong. \
`health` exits 1 whenever the daemon is not known to be ready (not ready, or not reached). \
`events` and `logs -f` exit 0 when the daemon ends the stream, 1 when it drops the subscriber.\n\n\
Environment: TOMTE_SOCKET is the socket used when --socket is not given.";

/// Prints a line; a closed stdout (`| head`) ends the program quietly instead of panicking.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli
        .socket
        .clone()
        .or_else(|| std::env::var("TOMTE_SOCKET").ok())
        .unwrap_or_else(|| format!("unix://{}", tomte::daemon::runtime_path("echo", "sock").display()));
    // `health` answers scripts and probes: anything but a ready daemon is 1.
    let unreachable = if matches!(cli.command, Command::Health { .. }) { 1 } else { 2 };
    match run(&cli, &socket) {
        Ok(code) => code,
        Err(e) => {
            if let Some(fault) = e.downcast_ref::<Fault>() {
                eprintln!("tomtectl: error {}: {}", fault.code, fault.full_message());
                return ExitCode::from(1);
            }
            if let Some(ClientError::Connect { .. }) = e.downcast_ref::<ClientError>() {
                eprintln!("tomtectl: {e}. Is the daemon running? Pass --socket ADDR or set TOMTE_SOCKET to reach another one.");
            } else if let Some(ClientError::Untrusted { uid, .. }) = e.downcast_ref::<ClientError>() {
                eprintln!(
                    "tomtectl: {e}. Nothing was sent; pass --trust-uid {uid} if that user really runs the daemon."
                );
            } else {
                eprintln!("tomtectl: {e:#}");
            }
            ExitCode::from(unreachable)
        }
    }
}

fn run(cli: &Cli, socket: &str) -> anyhow::Result<ExitCode> {
    // What needs no daemon.
    match &cli.command {
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "tomtectl", &mut out);
            write_out(&out);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man { command } => {
            write_out(&man_page(command.as_deref())?);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Logs { follow: false, .. } => bail!(
            "the daemon keeps no log history: `tomtectl logs -f` follows its records from now on \
             (for earlier ones, read its log file, --log PATH, or its journal)"
        ),
        _ => {}
    }
    let address: Address = socket.parse()?;
    let protocol = match (cli.comodojo || address.dialect == Dialect::Comodojo, cli.xml) {
        (false, false) => Protocol::Json,
        (false, true) => Protocol::Xml,
        (true, false) => Protocol::ComodojoJson,
        (true, true) => Protocol::ComodojoXml,
    };
    let trust = cli.trust_uid.iter().fold(Trust::own(), |t, &uid| t.allow(uid));
    let mut client = match &cli.tls_ca {
        Some(ca) => {
            let files = ClientFiles { ca: ca.clone(), cert: cli.tls_cert.clone(), key: cli.tls_key.clone() };
            Client::connect_tls(&address, protocol, &trust, &files)?
        }
        None if cli.tls_cert.is_some() => {
            bail!("--tls-cert needs --tls-ca (the CA that signed the daemon's certificate)")
        }
        None => Client::connect_checked(&address, protocol, &trust)?,
    };
    let secret = cli.token_file.as_deref().map(tomte::tokens::client_secret).transpose()?;
    if let Command::Metrics { raw } = &cli.command {
        // HTTP from the first byte: the token goes in a header, not in a daemon.auth call.
        return metrics(&mut client, secret.as_deref(), *raw);
    }
    if let Some(secret) = secret {
        client.call("daemon.auth", &Args::Positional(vec![Value::String(secret)]))??;
    }
    match &cli.command {
        Command::Events { patterns } => {
            let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
            let end = follow::follow(&mut client, &patterns, |n| {
                if cli.json {
                    print_value(&n.params, true);
                } else if let follow::Pushed::Event { name, data, time } = follow::classify(n) {
                    say!("{}", follow::event_line(time, name, data));
                }
            })?;
            return Ok(stream_end(end));
        }
        Command::Logs { worker, level, .. } => {
            let filter = follow::LogFilter { workers: worker.clone(), level: level.clone() };
            let end = follow::follow(&mut client, &["daemon.log"], |n| {
                let follow::Pushed::Event { data, time, .. } = follow::classify(n) else { return };
                if let Some(line) = filter.line(time, data) {
                    if cli.json {
                        print_value(&n.params, true);
                    } else {
                        say!("{line}");
                    }
                }
            })?;
            return Ok(stream_end(end));
        }
        Command::Upgrade { binary, wait } => {
            let local = matches!(address.transport, tomte::net::Transport::Unix(_));
            let binary = match binary {
                Some(b) if local && std::path::Path::new(b).is_relative() => {
                    Some(std::path::absolute(b)?.display().to_string())
                }
                other => other.clone(),
            };
            let ask = upgrade::Ask { binary: binary.as_deref(), wait: *wait, local, json: cli.json };
            return upgrade::run(&mut client, &ask);
        }
        Command::Worker { action, names, rolling, wait } => {
            return worker(&mut client, action, names, *rolling, *wait, cli.json);
        }
        Command::Health { verbose } => {
            let answer = client.call("daemon.health", &Args::default())??;
            let (ready, lines) = health::report(&answer, *verbose);
            if cli.json {
                print_value(&answer, true);
            } else {
                for line in lines {
                    say!("{line}");
                }
            }
            return Ok(if ready { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        _ => {}
    }
    let mut call = |method: &str, args: Args| -> anyhow::Result<Value> { Ok(client.call(method, &args)??) };
    match &cli.command {
        Command::Call { method, params } => {
            let v = call(method, parse_params(params)?)?;
            print_value(&v, cli.json);
        }
        Command::Methods => {
            let Value::Array(names) = call("system.listMethods", Args::default())? else {
                bail!("system.listMethods did not return an array");
            };
            let names: Vec<String> = names.into_iter().filter_map(|n| n.as_str().map(str::to_owned)).collect();
            let width = names.iter().map(String::len).max().unwrap_or(0);
            for name in names {
                let help = call("system.methodHelp", Args::Positional(vec![Value::from(name.as_str())]))?;
                say!("{name:width$}  {}", help.as_str().unwrap_or(""));
            }
        }
        Command::Help { method } => {
            let arg = || Args::Positional(vec![Value::from(method.as_str())]);
            let help = call("system.methodHelp", arg())?;
            let sigs = call("system.methodSignature", arg())?;
            match sigs {
                Value::Array(sigs) => {
                    for sig in sigs {
                        let types: Vec<&str> = match &sig {
                            Value::Array(t) => t.iter().filter_map(Value::as_str).collect(),
                            _ => Vec::new(),
                        };
                        let (ret, params) =
                            types.split_first().map(|(r, p)| (*r, p.join(", "))).unwrap_or(("?", String::new()));
                        say!("{method}({params}) -> {ret}");
                    }
                }
                _ => say!("{method}(...)"),
            }
            if let Some(text) = help.as_str().filter(|t| !t.is_empty()) {
                say!("  {text}");
            }
        }
        Command::Status => print_value(&call("daemon.status", Args::default())?, cli.json),
        Command::Workers => {
            let Value::Array(list) = call("worker.list", Args::default())? else {
                bail!("worker.list did not return an array");
            };
            if cli.json {
                print_value(&Value::Array(list), true);
                return Ok(ExitCode::SUCCESS);
            }
            print_workers(&list);
        }
        Command::Loglevel { level } => {
            let args = Args::Positional(level.iter().map(|l| Value::from(l.as_str())).collect());
            let answer = call("daemon.loglevel", args)?;
            let was = answer.as_str().unwrap_or("?");
            match level {
                _ if cli.json => print_value(&answer, true),
                Some(level) => say!("{level} (was {was})"),
                None => say!("{was}"),
            }
        }
        Command::Shutdown => {
            call("daemon.shutdown", Args::default())?;
            say!("shutting down");
        }
        Command::Events { .. }
        | Command::Upgrade { .. }
        | Command::Worker { .. }
        | Command::Logs { .. }
        | Command::Health { .. }
        | Command::Metrics { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// How long `worker restart --wait` waits without any progress of the workers it follows: a
/// rolling restart moves on from a worker after 30 s at most, plus its old process's stop.
const NO_PROGRESS: Duration = Duration::from_secs(60);

/// `worker ACTION NAME...|all [--rolling] [--wait]`.
fn worker(
    client: &mut Client,
    action: &str,
    names: &[String],
    rolling: bool,
    wait: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if action != "restart" && (rolling || wait) {
        bail!("--rolling and --wait go with `worker restart` only");
    }
    if action == "scale" {
        return scale(client, names, json);
    }
    let all = names.iter().any(|n| n == "all");
    if all && names.len() > 1 {
        bail!("`all` is every worker: name workers, or say all, not both");
    }
    let method = format!("worker.{action}");
    if action != "restart" {
        // One call a name (a single name is what comodojo's daemons take), or one for all.
        let calls: Vec<Option<&String>> = if all { vec![None] } else { names.iter().map(Some).collect() };
        for name in calls {
            let args = Args::Positional(name.iter().map(|n| Value::from(n.as_str())).collect());
            let answer = client.call(&method, &args)??;
            print_done(action, name.map(String::as_str), &answer, json);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if wait && client.protocol() != Protocol::Json {
        bail!("worker restart --wait follows daemon.worker.state events: it needs an NDJSON connection (not --xml or comodojo)");
    }
    // Before the restart: the pids to tell the new processes by (a pool's are its instances'),
    // and the events from now on.
    let mut before: Vec<(String, Option<i64>)> = Vec::new();
    let mut pools: Vec<(String, Vec<String>)> = Vec::new();
    if wait {
        let Value::Array(list) = client.call("worker.list", &Args::default())?? else {
            bail!("worker.list did not return an array");
        };
        let entry = |w: &Value| Some((w.member("name")?.as_str()?.to_owned(), w.member("pid").and_then(Value::as_i64)));
        for w in &list {
            match w.member("instances") {
                Some(Value::Array(instances)) => {
                    let instances: Vec<_> = instances.iter().filter_map(entry).collect();
                    if let Some(name) = w.member("name").and_then(Value::as_str) {
                        pools.push((name.to_owned(), instances.iter().map(|(n, _)| n.clone()).collect()));
                    }
                    before.extend(instances);
                }
                _ => before.extend(entry(w)),
            }
        }
    }
    if wait {
        client.subscribe(&["daemon.worker.state"])??;
    }
    let mut params = Vec::new();
    match names {
        _ if all => {}
        [one] => params.push(Value::from(one.as_str())),
        many => params.push(Value::Array(many.iter().map(|n| Value::from(n.as_str())).collect())),
    }
    if rolling {
        params.push(Value::Bool(true));
    }
    let answer = client.call(&method, &Args::Positional(params))??;
    let single = (!all && names.len() == 1).then(|| names[0].as_str());
    print_done(action, single, &answer, json);
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    let restarted: Vec<String> = match (&answer, single) {
        (Value::Bool(true), Some(name)) => vec![name.to_owned()],
        (Value::Struct(members), _) => {
            members.iter().filter(|(_, v)| *v == Value::Bool(true)).map(|(n, _)| n.clone()).collect()
        }
        _ => Vec::new(),
    };
    // A pool restarted is each of its instances, in order.
    let restarted = restarted.into_iter().flat_map(|n| match pools.iter().find(|(p, _)| *p == n) {
        Some((_, instances)) => instances.clone(),
        None => vec![n],
    });
    let followed = restarted
        .map(|n| {
            let pid = before.iter().find(|(b, _)| *b == n).and_then(|(_, p)| *p);
            (n, pid)
        })
        .collect();
    let mut tracker = restart::Tracker::new(followed, rolling);
    client.set_timeout(Some(NO_PROGRESS))?;
    let mut progress = Instant::now();
    while !tracker.done() {
        if progress.elapsed() > NO_PROGRESS {
            break;
        }
        let n = match client.next_notification() {
            Ok(Some(n)) => n,
            Ok(None) => bail!("the daemon closed the connection before the workers were back"),
            // Nothing for NO_PROGRESS: said below.
            Err(ClientError::Io { source, .. })
                if matches!(source.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                break
            }
            Err(e) => return Err(e.into()),
        };
        let follow::Pushed::Event { name: "daemon.worker.state", data, .. } = follow::classify(&n) else { continue };
        for change in tracker.event(data) {
            progress = Instant::now();
            match change {
                restart::Change::Back { name, pid, was: Some(was) } => say!("{name} back: pid {pid} (was {was})"),
                restart::Change::Back { name, pid, was: None } => say!("{name} back: pid {pid}"),
                restart::Change::Lost { name, state } => {
                    eprintln!("tomtectl: worker {name} did not come back (state {state})");
                }
            }
        }
    }
    for (name, state) in tracker.pending() {
        eprintln!("tomtectl: worker {name} not back after {NO_PROGRESS:?} without progress (state {state})");
    }
    Ok(if tracker.all_back() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `worker scale NAME N`: worker.scale, printed as `NAME: FROM -> TO instances`.
fn scale(client: &mut Client, names: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let [name, n] = names else {
        bail!("worker scale takes a pool and a number of instances: `worker scale NAME N`");
    };
    let Some(n) = n.parse::<u32>().ok() else {
        bail!("worker scale {name} {n}: the number of instances is a whole number (0 or more)");
    };
    let args = Args::Positional(vec![Value::from(name.as_str()), Value::from(i64::from(n))]);
    let answer = client.call("worker.scale", &args)??;
    if json {
        print_value(&answer, true);
        return Ok(ExitCode::SUCCESS);
    }
    let count = |k: &str| answer.member(k).and_then(Value::as_i64).map_or_else(|| "?".to_owned(), |n| n.to_string());
    let said = answer.member("name").and_then(Value::as_str).unwrap_or(name);
    say!("{said}: {} -> {} instances", count("from"), count("to"));
    Ok(ExitCode::SUCCESS)
}

/// A worker command's answer: `ACTION: NAME` per worker it acted on, `ACTION: NAME: nothing to
/// do` per other (`--json`: the answer as sent).
fn print_done(action: &str, name: Option<&str>, answer: &Value, json: bool) {
    if json {
        return print_value(answer, true);
    }
    match (answer, name) {
        (Value::Struct(members), _) => {
            for (n, done) in members {
                print_done(action, Some(n), done, false);
            }
            if members.is_empty() {
                say!("{action}: (no workers)");
            }
        }
        (Value::Bool(true), Some(name)) => say!("{action}: {name}"),
        (_, Some(name)) => say!("{action}: {name}: nothing to do"),
        (_, None) => say!("{action}: nothing to do"),
    }
}

/// The exit code for a followed stream's end; a dropped subscriber is told why on stderr.
fn stream_end(end: follow::End) -> ExitCode {
    match end {
        follow::End::Closed => ExitCode::SUCCESS,
        follow::End::Dropped(reason) => {
            eprintln!("tomtectl: the daemon dropped this subscriber: {reason}");
            ExitCode::from(1)
        }
    }
}

/// `metrics`: GET /metrics, shown as a table (or as sent, `raw`).
fn metrics(client: &mut Client, secret: Option<&str>, raw: bool) -> anyhow::Result<ExitCode> {
    let bearer = secret.map(|s| format!("Bearer {s}"));
    let mut headers = vec![("Accept", "text/plain; version=0.0.4")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    let resp = client.get("/metrics", &headers)?;
    let text = String::from_utf8_lossy(&resp.body);
    if resp.status != 200 {
        let body: String = text.trim().chars().take(200).collect();
        bail!("{} answered GET /metrics with HTTP {} {} {body}", client.address(), resp.status, resp.reason);
    }
    if raw {
        write_out(text.as_bytes());
        return Ok(ExitCode::SUCCESS);
    }
    let exposition = exposition::Exposition::parse(&text)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    write_out(metrics::render(&exposition, now).as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// The man page of tomtectl, or of its subcommand `command` (`tomtectl-COMMAND`).
fn man_page(command: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let mut cmd = Cli::command();
    cmd.build();
    let cmd = match command {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                bail!("no command '{name}' (commands: {})", names.join(", "))
            }
        },
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    Ok(out)
}

/// Writes `bytes` to stdout; a closed stdout ends the program quietly.
fn write_out(bytes: &[u8]) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// `[..]`/`{..}` as given; otherwise `key=value` pairs (named) or bare values (positional).
/// Each value is read as JSON when it is JSON, as a string otherwise.
fn parse_params(params: &[String]) -> anyhow::Result<Args> {
    let json_or_string = |s: &str| serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::from(s));
    if let [only] = params {
        let t = only.trim_start();
        if t.starts_with('[') || t.starts_with('{') {
            return match serde_json::from_str::<Value>(only).context("parameters are not valid JSON")? {
                Value::Array(a) => Ok(Args::Positional(a)),
                Value::Struct(m) => Ok(Args::Named(m)),
                _ => unreachable!("starts with [ or {{"),
            };
        }
    }
    let is_key = |k: &str| !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || "_.-".contains(c));
    let mut named = Vec::new();
    let mut positional = Vec::new();
    for p in params {
        match p.split_once('=') {
            Some((k, v)) if is_key(k) => named.push((k.to_owned(), json_or_string(v))),
            _ => positional.push(json_or_string(p)),
        }
    }
    match (named.is_empty(), positional.is_empty()) {
        (true, _) => Ok(Args::Positional(positional)),
        (false, true) => Ok(Args::Named(named)),
        (false, false) => bail!("mix of key=value and bare parameters: use one form"),
    }
}

/// The `workers` table: a worker a line; a pool's line, then its instances indented under it.
fn print_workers(list: &[Value]) {
    for line in workers_table(list) {
        say!("{line}");
    }
}

/// The lines of the `workers` table.
fn workers_table(list: &[Value]) -> Vec<String> {
    let field = |w: &Value, k: &str| -> String {
        match w.member(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Int(i)) => i.to_string(),
            Some(Value::Double(d)) => format!("{d:.1}s"),
            _ => "-".to_owned(),
        }
    };
    let instances = |w: &Value| match w.member("instances") {
        Some(Value::Array(i)) if w.member("pool") == Some(&Value::Bool(true)) => Some(i.clone()),
        _ => None,
    };
    let name_len = |w: &Value| w.member("name").and_then(Value::as_str).map_or(1, |n| n.chars().count());
    let mut width = 16;
    for w in list {
        width = width.max(name_len(w));
        for i in instances(w).unwrap_or_default() {
            width = width.max(name_len(&i) + 2);
        }
    }
    let mut lines = vec![format!(
        "{:<width$} {:<9} {:>8} {:>8} {:>10} {:>8} {:>9} {:>10}  LAST EXIT",
        "NAME", "STATE", "PID", "RESTARTS", "ITERATIONS", "ASKS", "IN FLIGHT", "UPTIME"
    )];
    let line = |indent: &str, w: &Value, last: String| {
        let name = format!("{indent}{}", field(w, "name"));
        format!(
            "{name:<width$} {:<9} {:>8} {:>8} {:>10} {:>8} {:>9} {:>10}  {last}",
            field(w, "state"),
            field(w, "pid"),
            field(w, "restarts"),
            field(w, "iterations"),
            field(w, "asks"),
            field(w, "in_flight"),
            field(w, "uptime"),
        )
    };
    for w in list {
        match instances(w) {
            Some(members) => {
                let size = field(w, "size");
                let plural = if size == "1" { "" } else { "s" };
                lines.push(line("", w, format!("pool: {size} instance{plural}, {} queued", field(w, "queued"))));
                for i in &members {
                    lines.push(line("  ", i, field(i, "last_exit")));
                }
            }
            None => lines.push(line("", w, field(w, "last_exit"))),
        }
    }
    if list.is_empty() {
        lines.push("(no workers)".to_owned());
    }
    lines
}

pub(crate) fn print_value(v: &Value, raw: bool) {
    let text = if raw { serde_json::to_string(v) } else { serde_json::to_string_pretty(v) };
    say!("{}", text.expect("a Value always serializes"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(members: &[(&str, Value)]) -> Value {
        Value::Struct(members.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
    }

    fn instance(name: &str, pid: i64, asks: i64) -> Value {
        entry(&[
            ("name", Value::from(name)),
            ("pid", Value::from(pid)),
            ("state", Value::from("looping")),
            ("restarts", Value::from(0)),
            ("iterations", Value::from(7)),
            ("last_exit", Value::Nil),
            ("uptime", Value::Double(1.5)),
            ("asks", Value::from(asks)),
            ("in_flight", Value::from(1)),
            ("pool", Value::from("hasher")),
        ])
    }

    #[test]
    fn a_pool_is_a_line_with_its_instances_indented_under_it() {
        let plain = entry(&[
            ("name", Value::from("alpha")),
            ("pid", Value::from(10)),
            ("state", Value::from("paused")),
            ("restarts", Value::from(2)),
            ("iterations", Value::from(5)),
            ("last_exit", Value::from("signal 9")),
            ("uptime", Value::Double(3.0)),
            ("asks", Value::from(0)),
            ("in_flight", Value::from(0)),
        ]);
        let pool = entry(&[
            ("name", Value::from("hasher")),
            ("pool", Value::Bool(true)),
            ("size", Value::from(2)),
            ("queued", Value::from(3)),
            ("state", Value::from("looping")),
            ("pid", Value::Nil),
            ("restarts", Value::from(0)),
            ("iterations", Value::from(14)),
            ("asks", Value::from(9)),
            ("in_flight", Value::from(2)),
            ("uptime", Value::Nil),
            ("instances", Value::Array(vec![instance("hasher.0", 11, 4), instance("hasher.1", 12, 5)])),
        ]);
        let lines = workers_table(&[plain, pool]);
        let words: Vec<Vec<&str>> = lines.iter().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            words[0],
            ["NAME", "STATE", "PID", "RESTARTS", "ITERATIONS", "ASKS", "IN", "FLIGHT", "UPTIME", "LAST", "EXIT"]
        );
        assert_eq!(words[1], ["alpha", "paused", "10", "2", "5", "0", "0", "3.0s", "signal", "9"]);
        assert_eq!(
            words[2],
            ["hasher", "looping", "-", "0", "14", "9", "2", "-", "pool:", "2", "instances,", "3", "queued"]
        );
        assert!(lines[3].starts_with("  hasher.0 "), "{}", lines[3]);
        assert_eq!(words[3], ["hasher.0", "looping", "11", "0", "7", "4", "1", "1.5s", "-"]);
        assert_eq!(words[4][..3], ["hasher.1", "looping", "12"]);
        assert_eq!(lines.len(), 5);
        // The columns line up: every STATE starts where the header's does.
        let at = lines[0].find("STATE").unwrap();
        for l in &lines[1..] {
            assert!(l[..at].ends_with(' ') && !l[at..].starts_with(' '), "{l}");
        }
        assert_eq!(workers_table(&[]), [lines[0].clone(), "(no workers)".to_owned()]);
    }
}
