//! tomtectl: control a tomte daemon over its socket.
//!
//! Exit codes: 0 success, 1 the daemon answered with an RPC error, 2 it could not be reached
//! (or the command line is wrong, or the unix socket is served by a user not trusted: root and
//! the user running tomtectl are, `--trust-uid UID` adds another).
//!
//! Protocols: NDJSON JSON-RPC by default; `--xml` speaks XML-RPC over HTTP; `--comodojo` speaks
//! comodojo/daemon's framing (JSON-RPC inside, or XML-RPC with `--xml` too), which a
//! `comodojo+unix://` or `comodojo+tcp://` address implies.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use tomte::client::{Client, ClientError, ClientFiles, Protocol, Trust};
use tomte::net::{Address, Dialect};
use tomte_rpc::{Args, Fault, Value};

#[derive(Parser)]
#[command(
    name = "tomtectl",
    version,
    disable_help_subcommand = true,
    about = "Control a tomte daemon: call methods, list them, read status, shut it down."
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
    /// Show the daemon's workers: name, pid, state, restarts, iterations, uptime
    Workers,
    /// Act on worker NAME: pause, resume, start, stop or restart
    Worker {
        #[arg(value_parser = ["pause", "resume", "start", "stop", "restart"])]
        action: String,
        name: String,
    },
    /// Show the daemon's log level, or set it (for its workers too) and show the previous one
    Loglevel {
        #[arg(value_parser = ["error", "warn", "info", "debug", "trace"])]
        level: Option<String>,
    },
}

/// Prints a line; a closed stdout (`| head`) ends the program quietly instead of panicking.
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
    match run(&cli, &socket) {
        Ok(()) => ExitCode::SUCCESS,
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
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli, socket: &str) -> anyhow::Result<()> {
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
    if let Some(path) = &cli.token_file {
        let secret = tomte::tokens::client_secret(path)?;
        client.call("daemon.auth", &Args::Positional(vec![Value::String(secret)]))??;
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
                return Ok(());
            }
            print_workers(&list);
        }
        Command::Worker { action, name } => {
            let done = call(&format!("worker.{action}"), Args::Positional(vec![Value::from(name.as_str())]))?;
            match done {
                Value::Bool(true) => say!("{action}: {name}"),
                _ => say!("{action}: {name}: nothing to do"),
            }
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
    }
    Ok(())
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

/// The `workers` table.
fn print_workers(list: &[Value]) {
    let field = |w: &Value, k: &str| -> String {
        match w.member(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Int(i)) => i.to_string(),
            Some(Value::Double(d)) => format!("{d:.1}s"),
            _ => "-".to_owned(),
        }
    };
    say!(
        "{:<16} {:>8} {:<9} {:>8} {:>10} {:>10}  LAST EXIT",
        "NAME",
        "PID",
        "STATE",
        "RESTARTS",
        "ITERATIONS",
        "UPTIME"
    );
    for w in list {
        say!(
            "{:<16} {:>8} {:<9} {:>8} {:>10} {:>10}  {}",
            field(w, "name"),
            field(w, "pid"),
            field(w, "state"),
            field(w, "restarts"),
            field(w, "iterations"),
            field(w, "uptime"),
            field(w, "last_exit")
        );
    }
    if list.is_empty() {
        say!("(no workers)");
    }
}

fn print_value(v: &Value, raw: bool) {
    let text = if raw { serde_json::to_string(v) } else { serde_json::to_string_pretty(v) };
    say!("{}", text.expect("a Value always serializes"));
}
