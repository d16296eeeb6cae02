//! Under systemd: a faked notify socket (a datagram socket of the test's, its path in
//! `NOTIFY_SOCKET`) receives what a daemon in `run` mode tells the service manager; and
//! `systemd-socket-activate` hands a daemon its listener.
//!
//! Timings are never asserted tightly (the machine is slow and shared): counts of pings over a
//! window, with generous bounds.

mod common;

use std::io::BufReader;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{binary, json, ndjson, text, wait_for, Foreground, TempDir};

/// The test's side of `NOTIFY_SOCKET`: every datagram received, split into its lines.
struct Notify {
    sock: UnixDatagram,
    /// `NOTIFY_SOCKET`'s value.
    address: String,
    lines: Vec<(Instant, String)>,
}

impl Notify {
    fn at(path: &Path) -> Notify {
        let sock = UnixDatagram::bind(path).expect("bind the notify socket");
        Notify::of(sock, path.display().to_string())
    }

    fn of(sock: UnixDatagram, address: String) -> Notify {
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        Notify { sock, address, lines: Vec::new() }
    }

    /// Receives for `limit`, or until `stop` holds for a line received; whether it did.
    fn until(&mut self, limit: Duration, mut stop: impl FnMut(&str) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = self.sock.recv(&mut buf) else { continue };
            let now = Instant::now();
            let mut hit = false;
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                hit |= stop(line);
                self.lines.push((now, line.to_owned()));
            }
            if hit {
                return true;
            }
        }
        false
    }

    /// Waits for line `want` (exactly), asserting it comes within 30 s.
    fn expect(&mut self, want: &str) {
        let got = self.until(Duration::from_secs(30), |l| l == want);
        assert!(got, "no {want:?} from the daemon; received {:?}", self.texts());
    }

    /// Receives for `window`, whatever comes.
    fn collect(&mut self, window: Duration) {
        self.until(window, |_| false);
    }

    fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|(_, l)| l.as_str()).collect()
    }

    fn count_since(&self, since: Instant, want: &str) -> usize {
        self.lines.iter().filter(|(t, l)| *t >= since && l == want).count()
    }
}

/// A daemon in `run` mode, killed by pid on drop (pass or fail).
type Run = Foreground;

/// `example run` with a unix socket and a pid file in `dir`, stderr to `dir/stderr`, and `env`
/// (the systemd variables of this test only: inherited ones are removed). `wrap` runs it
/// through `sh -c` first, as the daemon's own pid (for `WATCHDOG_PID=$$`).
fn run(example: &str, dir: TempDir, env: &[(&str, &str)], wrap: Option<&str>) -> Run {
    let mut cmd = match wrap {
        Some(script) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script).arg("sh").arg(binary(example));
            c
        }
        None => Command::new(binary(example)),
    };
    cmd.arg("run")
        .arg("--socket")
        .arg(format!("unix://{}", dir.path("d.sock").display()))
        .arg("--pidfile")
        .arg(dir.path("d.pid"));
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).spawn().expect("spawn the daemon");
    Foreground { child, dir }
}

#[test]
fn ready_status_watchdog_reload_and_stopping_reach_the_notify_socket() {
    let dir = TempDir::new("sdn");
    let mut notify = Notify::at(&dir.path("notify"));
    let address = notify.address.clone();
    let mut d = run("echo", dir, &[("NOTIFY_SOCKET", &address), ("WATCHDOG_USEC", "400000")], None);

    notify.expect("READY=1");
    let ready = Instant::now();
    notify.collect(Duration::from_secs(2));
    // A ping every 200 ms: about ten in two seconds; at least three even on a slow machine.
    let pings = notify.count_since(ready, "WATCHDOG=1");
    assert!((3..=40).contains(&pings), "{pings} pings in 2 s at WATCHDOG_USEC=400000: {:?}", notify.texts());
    assert!(notify.texts().contains(&"STATUS=0 connections"), "{:?}", notify.texts());

    // A reload is announced with the monotonic clock of this very machine, then readiness.
    let clock = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1000
    };
    let before = clock();
    d.signal(libc::SIGHUP);
    notify.expect("RELOADING=1");
    let after = clock();
    let stamp = notify
        .texts()
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 came without MONOTONIC_USEC: {:?}", notify.texts()))
        .parse::<u64>()
        .expect("MONOTONIC_USEC is a number");
    assert!((before..=after).contains(&stamp), "MONOTONIC_USEC={stamp} is not between {before} and {after}");
    let reloading = notify.lines.iter().rposition(|(_, l)| l == "RELOADING=1").unwrap();
    notify.expect("READY=1");
    assert!(notify.lines[reloading..].iter().any(|(_, l)| l == "READY=1"));

    d.signal(libc::SIGTERM);
    notify.expect("STOPPING=1");
    assert_eq!(d.wait_exit(Duration::from_secs(30)).0, Some(0), "{}", d.log());
    let stopping = notify.lines.iter().rposition(|(_, l)| l == "STOPPING=1").unwrap();
    notify.collect(Duration::from_millis(300));
    assert_eq!(notify.lines[stopping..].iter().filter(|(_, l)| l == "WATCHDOG=1").count(), 0, "a ping after STOPPING");
}

#[test]
fn no_pings_when_the_watchdog_is_another_process_s() {
    let dir = TempDir::new("sdo");
    let mut notify = Notify::at(&dir.path("notify"));
    let address = notify.address.clone();
    // This test's own pid: a live process that is not the daemon (its parent's variables,
    // inherited).
    let other = std::process::id().to_string();
    let env = [("NOTIFY_SOCKET", address.as_str()), ("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", &other)];
    let mut d = run("echo", dir, &env, None);
    notify.expect("READY=1");
    notify.collect(Duration::from_millis(1500));
    assert!(!notify.texts().contains(&"WATCHDOG=1"), "pinged another process's watchdog: {:?}", notify.texts());
    d.signal(libc::SIGTERM);
    notify.expect("STOPPING=1");
    assert_eq!(d.wait_exit(Duration::from_secs(30)).0, Some(0));
}

#[test]
fn pings_when_the_watchdog_pid_is_the_daemon_s_and_over_an_abstract_socket() {
    let dir = TempDir::new("sdp");
    use std::os::linux::net::SocketAddrExt;
    let name = format!("tomte-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let mut notify = Notify::of(UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"));
    let address = notify.address.clone();
    // `exec` keeps the pid: WATCHDOG_PID is the daemon's own, as systemd sets it.
    let wrap = r#"WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@""#;
    let mut d = run("echo", dir, &[("NOTIFY_SOCKET", &address), ("WATCHDOG_USEC", "300000")], Some(wrap));
    notify.expect("READY=1");
    let ready = Instant::now();
    notify.collect(Duration::from_secs(2));
    let pings = notify.count_since(ready, "WATCHDOG=1");
    assert!(pings >= 3, "{pings} pings in 2 s at WATCHDOG_USEC=300000 with WATCHDOG_PID=$$: {:?}", notify.texts());
    d.signal(libc::SIGTERM);
    notify.expect("STOPPING=1");
    assert_eq!(d.wait_exit(Duration::from_secs(30)).0, Some(0));
}

#[test]
fn a_start_with_workers_is_extended_and_the_status_counts_connections_and_workers() {
    let dir = TempDir::new("sds");
    let mut notify = Notify::at(&dir.path("notify"));
    let address = notify.address.clone();
    let mut d = run("pool", dir, &[("NOTIFY_SOCKET", &address)], None);
    notify.expect("READY=1");
    let texts = notify.texts();
    let extend = texts.iter().position(|l| l.starts_with("EXTEND_TIMEOUT_USEC="));
    assert!(extend.is_some(), "no EXTEND_TIMEOUT_USEC before READY=1: {texts:?}");
    assert!(texts.contains(&"STATUS=starting: forking 2 workers"), "{texts:?}");
    notify.expect("STATUS=0 connections, 2/2 workers up");

    // A client connects and stays: the line follows (within its once-a-second limit).
    let sock = d.dir.path("d.sock");
    let client = UnixStream::connect(&sock).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut client = BufReader::new(client);
    let answer = json(&ndjson(&mut client, r#"{"jsonrpc":"2.0","method":"daemon.status","id":1}"#));
    assert!(answer["result"].is_object(), "{answer}");
    notify.expect("STATUS=1 connection, 2/2 workers up");
    drop(client);
    notify.expect("STATUS=0 connections, 2/2 workers up");

    d.signal(libc::SIGTERM);
    notify.expect("STOPPING=1");
    assert_eq!(d.wait_exit(Duration::from_secs(30)).0, Some(0), "{}", d.log());
}

#[test]
fn systemd_socket_activate_passes_a_listener_the_daemon_serves_without_binding() {
    let Some(activate) = ["/usr/bin/systemd-socket-activate", "/bin/systemd-socket-activate"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        eprintln!("SKIPPED: systemd-socket-activate is not installed (Debian's `systemd` package has it; .ci/run installs it)");
        return;
    };
    let dir = TempDir::new("sda");
    let passed = dir.path("passed.sock");
    let configured = dir.path("d.sock");
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    let mut cmd = Command::new(activate);
    for var in ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        cmd.env_remove(var);
    }
    let child = cmd
        .arg("-l")
        .arg(&passed)
        .arg(binary("echo"))
        .arg("run")
        .arg("--socket")
        .arg(format!("unix://{}", configured.display()))
        .arg("--pidfile")
        .arg(dir.path("d.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn systemd-socket-activate");
    // It execs the daemon in its own process: the same pid, killed on drop.
    let mut d = Foreground { child, dir };
    assert!(wait_for(Duration::from_secs(20), || passed.exists()), "no listener at {}", passed.display());

    // The first connection is what makes systemd-socket-activate start the daemon.
    let stream = UnixStream::connect(&passed).expect("connect to the passed listener");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(stream);
    let answer = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"my.echo","params":["activated"],"id":1}"#));
    assert_eq!(answer["result"], "activated", "{answer}; log:\n{}", d.log());
    assert!(d.log().contains("using 1 socket(s) passed by systemd"), "{}", d.log());
    assert!(!configured.exists(), "the daemon bound --socket too");
    let pid: i32 = text(&std::fs::read(d.dir.path("d.pid")).unwrap()).trim().parse().unwrap();
    assert_eq!(pid, d.pid(), "the daemon runs in the activator's process");

    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(30)).0, Some(0), "{}", d.log());
}
