//! The standard commands ([`Command`]) and what they do ([`run_command`]).

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use super::DaemonArgs;
use crate::daemon::{Config, Daemon, Mode};
use crate::net::{Listener, Transport};
use crate::process::{self, files, pidfile, Detached, PidFileError};

/// How long `start` waits for readiness and `stop` for the exit before SIGKILL.
const START_TIMEOUT: Duration = Duration::from_secs(30);
pub(super) const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// tomte's commands, the subcommands of every daemon binary. comodojo's flags name two of
/// them: `-d` is `start`, `-f` is `run`, and `-s` is `start --hard`.
#[derive(clap::Subcommand, Clone, Debug, PartialEq, Eq)]
#[command(about = None, long_about = None)]
pub enum Command {
    /// Detach and run in the background; return once ready (comodojo: -d)
    Start {
        /// Hard start: clear a dead daemon's pid and socket files first (comodojo: -s)
        #[arg(long)]
        hard: bool,
    },
    /// Run in the foreground, logging to stderr (comodojo: -f)
    Run,
    /// Stop the running daemon (SIGTERM, then SIGKILL after 10s)
    Stop,
    /// Exit 0 if running, 3 if not, 4 if unknown
    Status,
    /// Stop, then start
    Restart,
    /// Reload the configuration file, reopen the log, emit daemon.reload (SIGHUP)
    Reload,
    /// Print the effective configuration as TOML, each value's source in a comment
    Config,
    /// Replace the running daemon by a new process of its binary without refusing a
    /// connection (as SIGUSR2 does); exit 0 once the new one serves, 1 if it failed (the old
    /// one serves on)
    Upgrade {
        /// The new binary [default: the path the running daemon was started from]
        #[arg(long, value_name = "PATH")]
        binary: Option<std::path::PathBuf>,
        /// Also wait for the old process to finish what it started and exit, showing each step
        #[arg(long)]
        wait: bool,
    },
}

/// Does what `command` says with `daemon`, configured by `args` (see [`DaemonArgs::config`]),
/// and returns the process exit code: what [`main`](super::main) does once it has parsed the
/// command line.
///
/// `status` exits 0 when running, 3 when not and 4 when it cannot tell (LSB); `reload` 3 when
/// not running; the others 0 on success and 1 on failure (with the reason on stderr); 2 when a
/// path cannot be resolved.
pub fn run_command<S: 'static>(daemon: Daemon<S>, command: &Command, args: &DaemonArgs) -> i32 {
    // Before a detach moves the daemon to `/`: an upgrade starts the new binary from here.
    process::upgrade::remember_origin();
    match args.config(daemon.name()) {
        Ok(config) => run_with_config(daemon, command, &config),
        Err(why) => {
            process::upgrade::report_failure(&why);
            eprintln!("{}: {why}", daemon.name());
            2
        }
    }
}

/// As [`run_command`], with the daemon's [`Config`] already made (from [`DaemonArgs::apply`],
/// or by hand).
pub fn run_with_config<S: 'static>(daemon: Daemon<S>, command: &Command, config: &Config) -> i32 {
    process::upgrade::remember_origin();
    let name = daemon.name().to_owned();
    // The files of a daemon that drops to --user may be that user's (see process::privileges).
    config.privileges.trust_files();
    if std::env::var_os(process::upgrade::ENV).is_some() && matches!(command, Command::Start { .. } | Command::Restart)
    {
        // Started by an upgrading daemon: take over from it, in place (no detach, no check
        // for a running instance: the pid file's lock is the old one's, shared).
        return take_over(daemon, config);
    }
    match command {
        Command::Upgrade { binary, wait } => upgrade(&name, config, binary.as_deref(), *wait),
        &Command::Start { hard } => {
            if hard {
                hard_clean(&name, config);
            }
            start(daemon, config)
        }
        Command::Run => match daemon.run(config, Mode::Foreground) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{name}: {e}");
                1
            }
        },
        Command::Stop => stop(&name, config),
        Command::Status => match running(config) {
            Ok(Some(pid)) => {
                println!("{name} is running (pid {pid})");
                0
            }
            Ok(None) => {
                println!("{name} is not running");
                3
            }
            // LSB: 4 is "status unknown".
            Err(e) => {
                eprintln!("{name}: status unknown: {e}");
                4
            }
        },
        Command::Restart => match stop(&name, config) {
            0 => start(daemon, config),
            code => code,
        },
        Command::Config => match show(&daemon, config) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                1
            }
        },
        // A file the daemon would refuse is said here, and nothing is signalled.
        Command::Reload if config.sources.is_some() && show(&daemon, config).is_err() => {
            if let Err(e) = show(&daemon, config) {
                eprintln!("{name}: not reloading: {e}");
            }
            1
        }
        Command::Reload => match running(config) {
            Err(e) => {
                eprintln!("{name}: not reloading: {e}");
                1
            }
            Ok(Some(pid)) => match ask_reload(&name, pid, config) {
                Some(code) => code,
                None => signal_reload(&name, pid),
            },
            Ok(None) => {
                eprintln!("{name} is not running");
                3
            }
        },
    }
}

/// Asks the daemon over its own unix socket (served by root or this user) to reload, and
/// prints what it applied and what needs a restart: the exit code, or `None` when it cannot
/// be asked (no unix socket, not reachable, not allowed), for SIGHUP to do it.
fn ask_reload(name: &str, pid: Pid, config: &Config) -> Option<i32> {
    let mut client = own_socket(config, START_TIMEOUT)?;
    let list = |v: &tomte_rpc::Value, key: &str| -> String {
        let items: Vec<&str> =
            v.get(key).and_then(|l| l.as_array()).unwrap_or(&[]).iter().filter_map(|k| k.as_str()).collect();
        if items.is_empty() {
            "nothing".to_owned()
        } else {
            items.join(", ")
        }
    };
    match client.call("daemon.reload", &tomte_rpc::Args::default()).ok()? {
        Ok(report) => {
            let from = report.get("file").and_then(|f| f.as_str()).map(|f| format!(" from {f}")).unwrap_or_default();
            println!("{name} (pid {pid}) reloaded{from}: applied {}", list(&report, "applied"));
            if report.get("restart_needed").and_then(|l| l.as_array()).is_some_and(|l| !l.is_empty()) {
                println!("  restart needed for: {}", list(&report, "restart_needed"));
            }
            Some(0)
        }
        Err(fault) if fault.code == crate::faults::RELOAD_REFUSED => {
            let why = fault.data.as_ref().and_then(|d| d.as_str()).unwrap_or(&fault.message);
            eprintln!("{name}: reload refused, the running configuration is kept: {why}");
            Some(1)
        }
        Err(_) => None,
    }
}

/// A client of the daemon's own unix socket, served by root or this user, calls bounded by
/// `timeout`; `None` when there is no such socket or it cannot be reached.
fn own_socket(config: &Config, timeout: Duration) -> Option<crate::client::Client> {
    use crate::client::{Client, Protocol, Trust};
    let addr = config.sockets.iter().find(|a| matches!(a.transport, Transport::Unix(_)))?;
    let mut client = Client::connect_checked(addr, Protocol::for_address(addr), &Trust::own()).ok()?;
    client.set_timeout(Some(timeout)).ok()?;
    Some(client)
}

/// SIGHUP: the daemon reloads (and logs what it did).
fn signal_reload(name: &str, pid: Pid) -> i32 {
    match kill_process(pid, Signal::HUP) {
        Ok(()) => {
            println!("{name} (pid {pid}) asked to reload");
            0
        }
        Err(e) => {
            eprintln!("{name}: cannot signal pid {pid}: {e}");
            1
        }
    }
}

/// The effective configuration as TOML (see [`crate::config`]), once the file's worker and
/// application sections are checked as the daemon checks them.
fn show<S: 'static>(daemon: &Daemon<S>, config: &Config) -> Result<String, crate::config::ConfigError> {
    use crate::config::print::{render, WorkerView};
    let sources = config.sources.as_deref();
    let file = sources.and_then(|s| s.file());
    for check in &daemon.app_config {
        drop(check(file)?);
    }
    let names = daemon.workers.units();
    let sections = file
        .map(|f| crate::config::workers::sections(f, &names, &daemon.workers.pools()))
        .transpose()?
        .unwrap_or_default();
    let workers: Vec<WorkerView> = names
        .iter()
        .filter_map(|n| {
            let base = daemon.workers.tuning(n)?;
            let section = sections.iter().find(|(w, ..)| w == n).map(|(_, s, line)| (s.clone(), *line));
            Some(WorkerView { name: n.clone(), base, section })
        })
        .collect();
    let cmd = match sources {
        Some(s) => s.command(),
        None => <DaemonArgs as clap::Args>::augment_args(clap::Command::new(daemon.name().to_owned())),
    };
    let keys = crate::config::keys(&cmd);
    Ok(render(daemon.name(), &keys, sources, &|k| super::args::current(config, k), &workers))
}

/// The running daemon's pid, once checked (see [`pidfile::running`]): `Ok(None)` when it is not
/// running, an error when the pid file cannot be trusted — then nothing may be signalled.
fn running(config: &Config) -> Result<Option<Pid>, PidFileError> {
    match config.pidfile.as_deref() {
        Some(path) => pidfile::running(path),
        None => Ok(None),
    }
}

fn start<S: 'static>(daemon: Daemon<S>, config: &Config) -> i32 {
    let name = daemon.name().to_owned();
    match running(config) {
        Ok(None) => {}
        Ok(Some(pid)) => {
            let path = config.pidfile.as_deref().unwrap_or(Path::new("")).display();
            eprintln!("{name}: already running with pid {pid} (pid file {path} is locked)");
            return 1;
        }
        Err(e) => {
            eprintln!("{name}: cannot start: {e}");
            return 1;
        }
    }
    match process::detach(config.umask, config.log.as_deref()) {
        Err(e) => {
            eprintln!("{name}: cannot start: {e}");
            1
        }
        Ok(Detached::Daemon(pipe)) => match daemon.run(config, Mode::Detached(pipe)) {
            Ok(()) => 0,
            Err(_) => 1,
        },
        Ok(Detached::Parent(wait)) => match wait.wait(START_TIMEOUT) {
            Ok(pid) => {
                println!("{name} started (pid {pid})");
                for s in &config.sockets {
                    println!("  socket:   {s}");
                }
                if let Some(p) = &config.pidfile {
                    println!("  pid file: {}", p.display());
                }
                if let Some(l) = &config.log {
                    println!("  log:      {}", l.display());
                }
                0
            }
            Err(why) => {
                eprintln!("{name}: cannot start: {why}");
                1
            }
        },
    }
}

/// The new process of an upgrade, started as `start` or `restart`: runs as the detached daemon
/// it replaces (in `/`, its standard streams already the old one's), reporting to it.
fn take_over<S: 'static>(daemon: Daemon<S>, config: &Config) -> i32 {
    let _ = std::env::set_current_dir("/");
    match daemon.run(config, Mode::Detached(process::ReadyPipe::unused())) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// `upgrade`: asks the running daemon over its unix socket (or with SIGUSR2 when it cannot be
/// asked) to start `binary` in its place; with `wait`, follows the old process to its end.
fn upgrade(name: &str, config: &Config, binary: Option<&Path>, wait: bool) -> i32 {
    let old = match running(config) {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            eprintln!("{name} is not running");
            return 3;
        }
        Err(e) => {
            eprintln!("{name}: not upgrading: {e}");
            return 1;
        }
    };
    let binary = match binary.map(std::path::absolute).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{name}: --binary: {e}");
            return 2;
        }
    };
    let shown = binary.as_ref().map(|b| format!(" to {}", b.display())).unwrap_or_default();
    println!("{name}: upgrading pid {old}{shown}");
    let started = Instant::now();
    let code = match ask_upgrade(name, old, config, binary.as_deref(), wait) {
        Some(code) => code,
        None if binary.is_some() => {
            eprintln!("{name}: cannot reach pid {old} over a unix socket to hand it --binary");
            return 1;
        }
        None => signal_upgrade(name, old, config),
    };
    if code != 0 || !wait {
        return code;
    }
    let patience = config.limits.drain_timeout + STOP_TIMEOUT;
    let deadline = Instant::now() + patience;
    while !exited(old) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !exited(old) {
        eprintln!("{name}: old pid {old} still running after {patience:?}");
        return 1;
    }
    println!("  old pid {old} gone ({:.0?} in all)", started.elapsed());
    0
}

/// `daemon.upgrade` over the daemon's own unix socket: the exit code, or `None` when it cannot
/// be asked. With `wait`, the old process's drain is followed through its `daemon.drained`.
fn ask_upgrade(name: &str, old: Pid, config: &Config, binary: Option<&Path>, wait: bool) -> Option<i32> {
    let mut client = own_socket(config, START_TIMEOUT + Duration::from_secs(5))?;
    let followed = wait && matches!(client.subscribe(&["daemon.drained"]), Ok(Ok(_)));
    let args = match binary {
        Some(b) => tomte_rpc::Args::Named(vec![("binary".to_owned(), tomte_rpc::Value::from(b.display().to_string()))]),
        None => tomte_rpc::Args::default(),
    };
    let report = match client.call("daemon.upgrade", &args).ok()? {
        Ok(report) => report,
        Err(fault) if fault.code == crate::faults::UPGRADE_FAILED => {
            let why = fault.data.as_ref().and_then(|d| d.as_str()).unwrap_or(&fault.message);
            eprintln!("{name}: upgrade failed, pid {old} serves on: {why}");
            return Some(1);
        }
        Err(fault) if fault.code == crate::faults::PERMISSION_DENIED => return None,
        Err(fault) => {
            eprintln!("{name}: upgrade refused: {}", fault.message);
            return Some(1);
        }
    };
    let field = |k: &str| report.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
    let bin = report.get("binary").and_then(|v| v.as_str()).unwrap_or("?");
    println!("  new pid {} ready in {} ms ({bin}); old pid {old} draining", field("new_pid"), field("ms"));
    if followed {
        client.set_timeout(Some(config.limits.drain_timeout + STOP_TIMEOUT)).ok()?;
        while let Ok(Some(n)) = client.next_notification() {
            let data = n.params.get("data");
            if n.params.get("name").and_then(|v| v.as_str()) == Some("daemon.drained") {
                let ms = data.and_then(|d| d.get("ms")).and_then(|v| v.as_i64()).unwrap_or(0);
                println!("  old pid {old} drained in {ms} ms");
                break;
            }
        }
    }
    Some(0)
}

/// SIGUSR2, for a daemon that cannot be asked over a socket: the new process is ready once the
/// pid file names it.
fn signal_upgrade(name: &str, old: Pid, config: &Config) -> i32 {
    if let Err(e) = kill_process(old, Signal::USR2) {
        eprintln!("{name}: cannot signal pid {old}: {e}");
        return 1;
    }
    let deadline = Instant::now() + START_TIMEOUT + Duration::from_secs(5);
    while Instant::now() < deadline {
        match running(config) {
            Ok(Some(pid)) if pid != old => {
                println!("  new pid {pid} ready (asked with SIGUSR2); old pid {old} draining");
                return 0;
            }
            Ok(None) => {
                eprintln!("{name}: no daemon is running any more (see its log)");
                return 1;
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    eprintln!("{name}: pid {old} did not upgrade (asked with SIGUSR2): see its log for why; it serves on");
    1
}

fn stop(name: &str, config: &Config) -> i32 {
    let pid = match running(config) {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            println!("{name} is not running");
            return 0;
        }
        Err(e) => {
            eprintln!("{name}: not stopping anything: {e}");
            return 1;
        }
    };
    if let Err(e) = kill_process(pid, Signal::TERM) {
        eprintln!("{name}: cannot signal pid {pid}: {e}");
        return 1;
    }
    // The drain, then the workers' stop, have their own bounds: SIGKILL only past both.
    let patience = STOP_TIMEOUT.max(config.limits.drain_timeout + STOP_TIMEOUT);
    if wait_gone(config, pid, patience) {
        println!("{name} stopped (pid {pid})");
        return 0;
    }
    eprintln!("{name}: pid {pid} still running after {patience:?}: killing it");
    let _ = kill_process(pid, Signal::KILL);
    if !wait_gone(config, pid, Duration::from_secs(5)) {
        eprintln!("{name}: pid {pid} survived SIGKILL");
        return 1;
    }
    hard_clean(name, config);
    0
}

/// Waits until nothing holds the pid file and process `pid` has exited.
fn wait_gone(config: &Config, pid: Pid, timeout: Duration) -> bool {
    // Gone: exited, and no live instance holds the pid file any more.
    let gone = || exited(pid) && !matches!(running(config), Ok(Some(_)));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if gone() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    gone()
}

/// Whether `pid` is gone or a zombie (it has exited; init reaps it).
fn exited(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// Removes the files a dead daemon left behind; never those of a live one, nor files that are
/// not the daemon's user's.
fn hard_clean(name: &str, config: &Config) {
    match running(config) {
        Ok(None) => {}
        Ok(Some(_)) => return,
        Err(e) => {
            eprintln!("{name}: not clearing stale files: {e}");
            return;
        }
    }
    if let Some(p) = &config.pidfile {
        let ours = files::parent(p).and_then(|at| Ok(at.open_existing(p, files::Owner::Euid)?.map(|_| at)));
        match ours {
            Ok(Some(at)) if at.remove().is_ok() => eprintln!("{name}: removed stale pid file {}", p.display()),
            Ok(_) => {}
            Err(e) => eprintln!("{name}: not removing the pid file: {e}"),
        }
    }
    for s in &config.sockets {
        if let Transport::Unix(path) = &s.transport {
            match Listener::remove_stale(path, &s.to_string()) {
                Ok(true) => eprintln!("{name}: removed stale socket {}", path.display()),
                Ok(false) => {}
                Err(e) => eprintln!("{name}: not removing the socket: {e}"),
            }
        }
    }
}
