//! The daemon's life: start, detach, pid lock, signals, stop — on the real echo binary.

mod common;

use std::io::BufReader;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const ECHO: &str = r#"{"jsonrpc":"2.0","method":"my.echo","params":["hello"],"id":1}"#;

#[test]
fn start_returns_once_ready_and_the_daemon_is_detached() {
    let d = Daemon::new("echo", &[]).start();
    // No retry: `start` returned, so the socket must answer now.
    let mut r = BufReader::new(d.connect());
    assert_eq!(json(&ndjson(&mut r, ECHO))["result"], "hello");

    let pid = d.pid().unwrap();
    assert!(alive(pid));
    // The pid file holds the pid and is locked.
    let f = std::fs::File::open(&d.pidfile).unwrap();
    let locked = rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockShared);
    assert_eq!(locked, Err(rustix::io::Errno::WOULDBLOCK), "pid file must be locked");

    // No controlling terminal, not a session leader, cwd /, stdio on /dev/null.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let (session, tty) = (fields[3].parse::<i32>().unwrap(), fields[4].parse::<i32>().unwrap());
    assert_eq!(tty, 0, "has a controlling terminal");
    assert_ne!(session, pid, "is a session leader");
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap().to_str(), Some("/"));
    for fd in 0..2 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert_eq!(target.to_str(), Some("/dev/null"), "fd {fd}");
    }
    // stderr is the log file here (--log); without --log it is /dev/null too (next test).
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/fd/2")).unwrap(), d.log);
    // The unix socket is private to the daemon's user.
    let mode =
        std::fs::metadata(&d.sock).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777).unwrap();
    assert_eq!(mode, 0o600);
}

#[test]
fn without_a_log_stderr_goes_to_dev_null() {
    let dir = TempDir::new("nolog");
    let sock = dir.path("s.sock");
    let pidfile = dir.path("p.pid");
    let out = Command::new(binary("echo"))
        .args(["start", "--socket", &format!("unix://{}", sock.display()), "--pidfile", pidfile.to_str().unwrap()])
        .output()
        .unwrap();
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let _guard = Killer(pid);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("pid {pid}")) && stdout.contains(sock.to_str().unwrap()),
        "start must say where: {stdout}"
    );
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/fd/2")).unwrap().to_str(), Some("/dev/null"));
}

struct Killer(i32);
impl Drop for Killer {
    fn drop(&mut self) {
        kill(self.0, libc::SIGKILL);
    }
}

#[test]
fn a_second_start_fails_clearly_and_leaves_the_first_alone() {
    let d = Daemon::new("echo", &[]).start();
    let first = d.pid().unwrap();
    let out = d.cmd("start");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("already running") && err.contains(&first.to_string()), "unclear message: {err}");
    assert_eq!(d.pid(), Some(first));
    let mut r = BufReader::new(d.connect());
    assert_eq!(json(&ndjson(&mut r, ECHO))["result"], "hello");
    // A second daemon on another pid file but the same socket also refuses, naming the socket.
    let other = d.dir.path("other.pid");
    let out = Command::new(&d.bin)
        .args(["start", "--socket", &format!("unix://{}", d.sock.display()), "--pidfile", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("already listening") && err.contains(d.sock.to_str().unwrap()), "{err}");
    assert!(!other.exists(), "a failed start must not leave its pid file");
    assert_eq!(json(&ndjson(&mut r, ECHO))["result"], "hello");
}

#[test]
fn after_kill_9_a_new_start_recovers_the_stale_files() {
    let mut d = Daemon::new("echo", &[]).start();
    let pid = d.pid().unwrap();
    kill(pid, libc::SIGKILL);
    assert!(wait_for(Duration::from_secs(10), || !alive(pid)));
    assert!(d.pidfile.exists() && d.sock.exists(), "kill -9 leaves the files behind");
    let out = d.cmd("status");
    assert_eq!(out.status.code(), Some(3), "a stale pid file is not a running daemon");
    d = d.start();
    assert_ne!(d.pid(), Some(pid));
    let mut r = BufReader::new(d.connect());
    assert_eq!(json(&ndjson(&mut r, ECHO))["result"], "hello");
}

#[test]
fn sigterm_stops_promptly_and_removes_the_files() {
    let d = Daemon::new("echo", &[]).start();
    let pid = d.pid().unwrap();
    // A connected client must not hold the daemon up.
    let _client = d.connect();
    let t = std::time::Instant::now();
    kill(pid, libc::SIGTERM);
    assert!(wait_for(Duration::from_secs(10), || !alive(pid)), "still alive after SIGTERM");
    // Generous against a busy machine: the loop acts on the signal at its next turn.
    assert!(t.elapsed() < Duration::from_secs(1), "SIGTERM to exit took {:?}", t.elapsed());
    assert!(!d.pidfile.exists(), "pid file left behind");
    assert!(!d.sock.exists(), "socket file left behind");
    let log = d.log_text();
    assert!(log.contains("SIGTERM received") && log.contains("stopped"), "{log}");
}

#[test]
fn a_signal_arriving_while_busy_is_not_lost() {
    // comodojo loses SIGTERM sent right after a client closes; tomte must not.
    for _ in 0..5 {
        let d = Daemon::new("echo", &[]).start();
        let pid = d.pid().unwrap();
        {
            let mut r = BufReader::new(d.connect());
            ndjson(&mut r, ECHO);
        }
        kill(pid, libc::SIGTERM);
        assert!(wait_for(Duration::from_secs(10), || !alive(pid)), "SIGTERM lost");
    }
}

#[test]
fn sighup_reloads_and_reopens_the_log() {
    let d = Daemon::new("echo", &["-v"]).start();
    let pid = d.pid().unwrap();
    // Rotate: move the log away, then SIGHUP must make the daemon write to a new file.
    let rotated = d.dir.path("d.log.1");
    std::fs::rename(&d.log, &rotated).unwrap();
    kill(pid, libc::SIGHUP);
    assert!(wait_for(Duration::from_secs(10), || d.log_text().contains("reloading")), "no reload line in the new log");
    // The signal itself was logged before the reopen, in the rotated file.
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("ready") && old.contains("signal SIGHUP (1)"), "{old}");
    // daemon.reload over RPC does the same.
    let mut r = BufReader::new(d.connect());
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.reload","id":1}"#));
    assert!(v["result"]["applied"].is_array(), "{v}");
    assert!(wait_for(Duration::from_secs(10), || d.log_text().matches("reloading").count() == 2));
}

#[test]
fn stop_status_restart_commands() {
    let d = Daemon::new("echo", &[]).start();
    let pid = d.pid().unwrap();
    let st = d.cmd("status");
    assert_eq!(st.status.code(), Some(0));
    assert!(text(&st.stdout).contains(&pid.to_string()));
    let out = d.cmd("restart");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let new_pid = d.pid().unwrap();
    let mut d = d;
    d.pids.push(new_pid);
    assert_ne!(new_pid, pid);
    assert!(!alive(pid));
    let out = d.cmd("stop");
    assert!(out.status.success());
    assert!(!alive(new_pid));
    assert_eq!(d.cmd("status").status.code(), Some(3));
    // Stopping what is not running is not an error.
    assert_eq!(d.cmd("stop").status.code(), Some(0));
}

#[test]
fn start_reports_the_daemons_own_error() {
    let dir = TempDir::new("bad");
    let out = Command::new(binary("echo"))
        .args(["start", "--socket", "unix:///nonexistent-dir/x.sock", "--pidfile", dir.path("p.pid").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("unix:///nonexistent-dir/x.sock") && err.contains("No such file"), "{err}");
    assert!(!dir.path("p.pid").exists());
    let out = Command::new(binary("echo")).args(["start", "--socket", "tcp://127.0.0.1:notaport"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("notaport"));
}

#[test]
fn run_stays_in_the_foreground_and_stops_on_sigint() {
    let dir = TempDir::new("run");
    let sock = dir.path("s.sock");
    let mut child = Command::new(binary("echo"))
        .args([
            "run",
            "--socket",
            &format!("unix://{}", sock.display()),
            "--pidfile",
            dir.path("p.pid").to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let _guard = Killer(pid);
    assert!(wait_for(Duration::from_secs(20), || std::os::unix::net::UnixStream::connect(&sock).is_ok()));
    kill(pid, libc::SIGINT);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("ready") && err.contains("SIGINT received"), "logs go to stderr: {err}");
    assert!(!sock.exists());
}

#[test]
fn daemon_shutdown_replies_first_then_stops() {
    let d = Daemon::new("echo", &[]).start();
    let pid = d.pid().unwrap();
    let mut r = BufReader::new(d.connect());
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.shutdown","id":9}"#));
    assert_eq!(v["result"], 0);
    assert!(wait_for(Duration::from_secs(10), || !alive(pid)));
    assert!(!d.pidfile.exists());
}

#[test]
fn timers_run_and_any_signal_reaches_its_listeners_by_name_and_number() {
    let d = Daemon::new("spec", &[]).start();
    let pid = d.pid().unwrap();
    let counters = || {
        let mut r = BufReader::new(d.connect());
        json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"spec.counters","id":1}"#))["result"].clone()
    };
    assert!(wait_for(Duration::from_secs(20), || counters()["ticks"].as_i64() > Some(3)), "the timer does not run");
    kill(pid, libc::SIGUSR1);
    assert!(wait_for(Duration::from_secs(20), || counters()["usr1"] == 1), "SIGUSR1 by name");
    // SIGUSR2 (12) is heard by number; its listener emits an event of its own.
    kill(pid, libc::SIGUSR2);
    assert!(wait_for(Duration::from_secs(20), || counters()["usr2"] == 1), "SIGUSR2 by number");
    assert!(alive(pid), "a handled signal must not kill the daemon");
}
