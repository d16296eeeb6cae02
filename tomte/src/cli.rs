//! The command line every daemon binary gets for free:
//!
//! ```text
//! NAME start|run|stop|status|restart|reload [--socket ADDR]... [--pidfile PATH] [--log PATH] [-v]
//!      [--allow WHO=PERM[,PERM…]]... [--require METHOD=PERM]... [--socket-mode OCTAL]
//!      [--socket-group GROUP]
//! ```
//!
//! `--allow` adds a rule to the access policy (see [`crate::access`]).
//!
//! comodojo's flags work too: `-d` (= start), `-f` (= run), `-s` (hard start: clear stale
//! files first), `-v`, `-h`. `status` exits 0 when running and 3 when not, as LSB says.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::access::Rule;
use crate::daemon::{Config, Daemon, Mode};
use crate::net::{Address, Listener, Transport};
use crate::process::{self, files, pidfile, Detached, PidFileError};

/// How long `start` waits for readiness and `stop` for the exit before SIGKILL.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Start,
    Run,
    Stop,
    Status,
    Restart,
    Reload,
}

#[derive(Debug)]
struct Parsed {
    command: Option<Command>,
    hard: bool,
    help: bool,
    config: Config,
}

/// Parses `std::env::args()`, acts, and returns the process exit code.
pub fn main<S: 'static>(daemon: Daemon<S>) -> i32 {
    main_with(daemon, std::env::args().skip(1).collect())
}

/// As [`main`], with the arguments given (without the program name).
pub fn main_with<S: 'static>(daemon: Daemon<S>, args: Vec<String>) -> i32 {
    let name = daemon.name().to_owned();
    let parsed = match parse(&name, args) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("{name}: {why}\n\n{}", usage(&name));
            return 2;
        }
    };
    if parsed.help {
        println!("{}", usage(&name));
        return 0;
    }
    let Some(command) = parsed.command else {
        eprintln!("{}", usage(&name));
        return 2;
    };
    let config = parsed.config;
    match command {
        Command::Start => {
            if parsed.hard {
                hard_clean(&name, &config);
            }
            start(daemon, &config)
        }
        Command::Run => match daemon.run(&config, Mode::Foreground) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{name}: {e}");
                1
            }
        },
        Command::Stop => stop(&name, &config),
        Command::Status => match running(&config) {
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
        Command::Restart => match stop(&name, &config) {
            0 => start(daemon, &config),
            code => code,
        },
        Command::Reload => match running(&config) {
            Err(e) => {
                eprintln!("{name}: not reloading: {e}");
                1
            }
            Ok(Some(pid)) => match kill_process(pid, Signal::HUP) {
                Ok(()) => {
                    println!("{name} (pid {pid}) asked to reload");
                    0
                }
                Err(e) => {
                    eprintln!("{name}: cannot signal pid {pid}: {e}");
                    1
                }
            },
            Ok(None) => {
                eprintln!("{name} is not running");
                3
            }
        },
    }
}

fn usage(name: &str) -> String {
    format!(
        "Usage: {name} start|run|stop|status|restart|reload [options]

Commands:
  start      detach and run in the background; returns once ready (comodojo: -d)
  run        run in the foreground, logging to stderr (comodojo: -f)
  stop       stop the running daemon (SIGTERM, then SIGKILL after {}s)
  status     exit 0 if running, 3 if not
  restart    stop, then start
  reload     reopen the log and emit daemon.reload (SIGHUP)

Options:
  --socket ADDR         listen on ADDR (repeatable): unix:///path, tcp://host:port,
                        tls://host:port, or comodojo+ before one of them
  --pidfile PATH        pid file, locked while the daemon runs
  --log PATH            log file of the detached daemon (default: none)
  --nice N              set niceness N (absolute)
  --umask OCTAL         umask of the detached daemon (default 027)
  --allow WHO=PERMS     grant permissions (repeatable; rules add up). WHO: user:NAME,
                        uid:N, group:NAME, gid:N, cert:CN, token:NAME, anonymous;
                        PERMS: read, call, control, a custom name, or all, comma-separated;
                        WHO=PERMS@ADDR holds on listener ADDR only.
                        Defaults: on unix sockets the daemon's user and root hold all,
                        others nothing; anonymous TCP clients hold read,call
  --require METHOD=PERM make METHOD need permission PERM (repeatable), e.g.
                        worker.restart=restart, to grant it apart from control
  --socket-mode OCTAL   mode of the unix socket files (default 0600)
  --socket-group GROUP  group (name or gid) of the unix socket files (default: the daemon's)
  --max-connections N   connections open at once (default 1024)
  --max-per-peer N      connections from one IP address or one uid (default 256)
  --listener-reserve N  connections kept for each listener (default 64)
  --max-message BYTES   largest request accepted (default 16777216)
  --max-buffered BYTES  unfinished requests, and unsent answers, held by all
                        connections together (default 268435456 each)
  --max-unsent BYTES    unread answers past which a client is served no more (default 4194304)
  --idle-timeout SECS   close connections with no request answered this long (default 300)
  --request-timeout SECS  a message must arrive within this (default 10) ...
  --min-rate BYTES      ... plus its size at this many bytes/s (default 65536)
  --tls-cert PATH       certificate chain (PEM) of tls:// listeners, reloaded on reload
  --tls-key PATH        its private key (PEM), readable by its owner only
  --tls-client-ca PATH  mutual TLS: clients must show a certificate signed by this CA;
                        its common name becomes the client's identity
  --token-file PATH     tokens (NAME SECRET lines, mode 0600) TCP clients must present:
                        HTTP Authorization: Bearer SECRET, or daemon.auth first
  --insecure            serve a TCP address other hosts reach with no client authentication
  -s                    hard start: clear stale pid and socket files first
  -v, --verbose         debug logging
  -h, --help            this help

Defaults: socket {}, pid file {}",
        STOP_TIMEOUT.as_secs(),
        Config::defaults(name).sockets[0],
        Config::defaults(name).pidfile.unwrap_or_default().display(),
    )
}

fn parse(name: &str, args: Vec<String>) -> Result<Parsed, String> {
    let mut p = Parsed { command: None, hard: false, help: false, config: Config::defaults(name) };
    let mut sockets = Vec::new();
    let mut args = args.into_iter();
    let set = |p: &mut Parsed, c: Command| match p.command {
        Some(old) if old != c => Err(format!("two commands given: {old:?} and {c:?}").to_lowercase()),
        _ => {
            p.command = Some(c);
            Ok(())
        }
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{flag} needs {what}"))
        };
        match flag.as_str() {
            "start" | "-d" => set(&mut p, Command::Start)?,
            "run" | "-f" => set(&mut p, Command::Run)?,
            "stop" => set(&mut p, Command::Stop)?,
            "status" => set(&mut p, Command::Status)?,
            "restart" => set(&mut p, Command::Restart)?,
            "reload" => set(&mut p, Command::Reload)?,
            "-s" => {
                p.hard = true;
                set(&mut p, Command::Start)?;
            }
            "-v" | "--verbose" => p.config.verbose = true,
            "-h" | "--help" => p.help = true,
            "--socket" => sockets.push(value("an address")?.parse::<Address>().map_err(|e| e.to_string())?),
            "--pidfile" => p.config.pidfile = Some(absolute(&value("a path")?)?),
            "--log" => p.config.log = Some(absolute(&value("a path")?)?),
            "--nice" => p.config.nice = Some(number(&flag, &value("a number")?)?),
            "--umask" => {
                let v = value("an octal mask")?;
                p.config.umask =
                    u32::from_str_radix(&v, 8).map_err(|_| format!("--umask: '{v}' is not an octal mask"))?;
            }
            "--allow" => {
                let v = value("WHO=PERM[,PERM...]")?;
                let rule: Rule = v.parse().map_err(|e| format!("--allow {v}: {e}"))?;
                p.config.policy.add(rule);
            }
            "--require" => {
                let v = value("METHOD=PERM")?;
                let (method, perm) = v.split_once('=').ok_or_else(|| format!("--require {v}: not METHOD=PERM"))?;
                let perm = perm.parse().map_err(|e| format!("--require {v}: {e}"))?;
                p.config.requires.push((method.to_owned(), perm));
            }
            "--socket-mode" => {
                let v = value("an octal mode")?;
                p.config.socket_mode = match u32::from_str_radix(&v, 8) {
                    Ok(m) if m <= 0o777 => m,
                    _ => return Err(format!("--socket-mode: '{v}' is not an octal mode (0600, 0660…)")),
                };
            }
            "--socket-group" => {
                let v = value("a group name or gid")?;
                let gid = match v.parse::<u32>() {
                    Ok(gid) => gid,
                    Err(_) => {
                        crate::net::gid_of(&v).ok_or_else(|| format!("--socket-group: no group '{v}' in /etc/group"))?
                    }
                };
                p.config.socket_group = Some(gid);
            }
            "--max-connections" => p.config.limits.max_connections = positive(&flag, &value("a number")?)?,
            "--max-message" => p.config.limits.max_message = number(&flag, &value("a number")?)?,
            "--max-per-peer" => p.config.limits.max_per_peer = positive(&flag, &value("a number")?)?,
            "--listener-reserve" => p.config.limits.listener_reserve = number(&flag, &value("a number")?)?,
            "--max-buffered" => p.config.limits.max_buffered = positive(&flag, &value("bytes")?)?,
            "--max-unsent" => p.config.limits.max_unsent = positive(&flag, &value("bytes")?)?,
            "--min-rate" => p.config.limits.min_rate = positive(&flag, &value("bytes per second")?)?,
            "--idle-timeout" => p.config.limits.idle_timeout = seconds(&flag, &value("seconds")?)?,
            "--request-timeout" => p.config.limits.request_timeout = seconds(&flag, &value("seconds")?)?,
            // TLS listeners (tls://, comodojo+tls://): files read at start and on reload.
            "--tls-cert" => p.config.tls.cert = Some(absolute(&value("a path")?)?),
            "--tls-key" => p.config.tls.key = Some(absolute(&value("a path")?)?),
            "--tls-client-ca" => p.config.tls.client_ca = Some(absolute(&value("a path")?)?),
            "--insecure" => p.config.insecure = true,
            "--token-file" => p.config.token_file = Some(absolute(&value("a path")?)?),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if !sockets.is_empty() {
        p.config.sockets = sockets;
    }
    Ok(p)
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{flag}: '{v}' is not a valid number"))
}

/// A count or size that must be at least 1.
fn positive(flag: &str, v: &str) -> Result<usize, String> {
    match number(flag, v)? {
        0 => Err(format!("{flag}: must be at least 1")),
        n => Ok(n),
    }
}

/// Seconds, fractions allowed (`0.5`); more than zero and at most a year.
fn seconds(flag: &str, v: &str) -> Result<Duration, String> {
    let secs: f64 = number(flag, v)?;
    if !(secs > 0.0 && secs <= 366.0 * 86400.0) {
        return Err(format!("{flag}: '{v}' must be more than 0 and at most a year of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The daemon changes directory to `/`, so relative paths are resolved now.
fn absolute(p: &str) -> Result<PathBuf, String> {
    let path = Path::new(p);
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    std::env::current_dir().map(|d| d.join(path)).map_err(|e| format!("cannot resolve {p}: {e}"))
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
    if wait_gone(config, pid, STOP_TIMEOUT) {
        println!("{name} stopped (pid {pid})");
        return 0;
    }
    eprintln!("{name}: pid {pid} still running after {}s: killing it", STOP_TIMEOUT.as_secs());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comodojo_flags_and_options() {
        let p = parse("echo", vec!["-d".into(), "--socket".into(), "tcp://127.0.0.1:1".into(), "-v".into()]).unwrap();
        assert_eq!(p.command, Some(Command::Start));
        assert!(p.config.verbose);
        assert_eq!(p.config.sockets.len(), 1);
        let p = parse("echo", vec!["--pidfile=rel.pid".into(), "-f".into()]).unwrap();
        assert_eq!(p.command, Some(Command::Run));
        assert!(p.config.pidfile.unwrap().is_absolute());
        assert!(parse("echo", vec!["start".into(), "stop".into()]).is_err());
        assert!(parse("echo", vec!["--bogus".into()]).unwrap_err().contains("--bogus"));
        assert!(parse("echo", vec!["--socket".into()]).unwrap_err().contains("needs"));
    }

    #[test]
    fn access_options() {
        let args = ["--allow", "group:ops=read,control", "--allow=uid:7=all", "--socket-mode", "0660"];
        let p = parse("echo", args.iter().map(|s| s.to_string()).collect()).unwrap();
        let rules: Vec<String> = p.config.policy.rules().iter().map(|r| r.to_string()).collect();
        assert_eq!(rules, ["group:ops=read,control", "uid:7=all"]);
        assert_eq!(p.config.socket_mode, 0o660);
        let p = parse("echo", vec!["--require".into(), "worker.restart=restart".into()]).unwrap();
        assert_eq!(p.config.requires, [("worker.restart".to_owned(), tomte_rpc::Permission::custom("restart"))]);
        let p = parse("echo", vec!["--socket-group".into(), "root".into()]).unwrap();
        assert_eq!(p.config.socket_group, Some(0));
        for bad in [
            ["--allow", "ops=read"],
            ["--socket-mode", "888"],
            ["--socket-mode", "01777"],
            ["--socket-group", "no such"],
        ] {
            assert!(parse("echo", bad.iter().map(|s| s.to_string()).collect()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tls_flags() {
        let args = [
            "run",
            "--socket",
            "tls://127.0.0.1:1",
            "--tls-cert=c.pem",
            "--tls-key",
            "/k.pem",
            "--tls-client-ca",
            "ca.pem",
        ];
        let p = parse("echo", args.map(String::from).to_vec()).unwrap();
        assert!(matches!(p.config.sockets[0].transport, Transport::Tls { .. }));
        assert!(p.config.tls.cert.unwrap().is_absolute());
        assert_eq!(p.config.tls.key.unwrap(), Path::new("/k.pem"));
        assert!(p.config.tls.client_ca.unwrap().ends_with("ca.pem"));
        assert!(parse("echo", vec!["--tls-key".into()]).unwrap_err().contains("needs"));
    }
}
