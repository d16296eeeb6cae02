//! Binary upgrades (`NAME upgrade`, SIGUSR2) and the drain, with real daemons under real load:
//! clients over unix and TCP, NDJSON and HTTP, kept-alive and one connection per call, every
//! answer checked while the daemon is replaced ten times.
//!
//! The clients follow the rule a draining daemon gives them (see the crate docs, *Upgrades*):
//! a connection the daemon closes without answering a request it had been sent was closed
//! before the daemon read that request, so the request is sent again on a new connection
//! (counted as `resent`). Anything else — a refused connection, a wrong or missing answer on a
//! new connection, an error answer — is a failure.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;

/// One test at a time: each runs load that would slow the others' daemons.
fn alone() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a client connects.
#[derive(Clone)]
enum To {
    Unix(std::path::PathBuf),
    Tcp(u16),
}

trait Stream: Read + Write + Send {}
impl Stream for UnixStream {}
impl Stream for TcpStream {}

impl To {
    fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        let s: Box<dyn Stream> = match self {
            To::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_read_timeout(Some(Duration::from_secs(20)))?;
                Box::new(s)
            }
            To::Tcp(port) => {
                let s = TcpStream::connect(("127.0.0.1", *port))?;
                s.set_read_timeout(Some(Duration::from_secs(20)))?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
        };
        Ok(s)
    }
}

/// How a client talks.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// NDJSON lines on one connection, kept.
    Ndjson,
    /// HTTP/1.1 keep-alive on one connection, kept while the daemon keeps it.
    Http,
    /// NDJSON, a new connection per call.
    NdjsonOnce,
    /// HTTP, a new connection per call (`Connection: close`).
    HttpOnce,
}

#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    resent: AtomicU64,
    /// Connections a kept-alive client had to open again.
    reconnects: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    /// The worst latency of a call (with its resend), in microseconds.
    worst_us: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Counts {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap();
        if e.len() < 20 {
            e.push(why);
        }
    }
}

/// What one exchange on a connection gave.
enum Got {
    /// The answer's text, and whether the daemon closes the connection after it (HTTP's
    /// `Connection: close`).
    Answer(String, bool),
    /// The connection was closed (or reset) before any byte of the answer.
    Closed,
}

fn exchange(s: &mut BufReader<Box<dyn Stream>>, style: Style, message: &str) -> std::io::Result<Got> {
    let body = format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":["{message}"],"id":7}}"#);
    let request = match style {
        Style::Ndjson | Style::NdjsonOnce => format!("{body}\n"),
        Style::Http => http_post("application/json", &body),
        Style::HttpOnce => http_post("application/json", &body).replacen(
            "Host: localhost\r\n",
            "Host: localhost\r\nConnection: close\r\n",
            1,
        ),
    };
    if s.get_mut().write_all(request.as_bytes()).is_err() {
        return Ok(Got::Closed);
    }
    let mut first = String::new();
    match s.read_line(&mut first) {
        Ok(0) => return Ok(Got::Closed),
        Ok(_) => {}
        Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) => {
            return Ok(Got::Closed)
        }
        Err(e) => return Err(e),
    }
    match style {
        Style::Ndjson | Style::NdjsonOnce => Ok(Got::Answer(first, false)),
        Style::Http | Style::HttpOnce => {
            let (mut len, mut close) = (0, false);
            loop {
                let mut h = String::new();
                s.read_line(&mut h)?;
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    close |= k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close");
                }
            }
            let mut body = vec![0; len];
            s.read_exact(&mut body)?;
            Ok(Got::Answer(format!("{} {}", first.trim_end(), text(&body)), close))
        }
    }
}

/// A client calling `my.echo` in a loop until `stop`, every answer checked.
fn client(to: To, style: Style, id: usize, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let mut conn: Option<BufReader<Box<dyn Stream>>> = None;
    let mut used = false;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let message = format!("c{id}-{n}");
        let started = Instant::now();
        let mut tries = 0;
        let answer = loop {
            tries += 1;
            if conn.is_none() {
                match to.connect() {
                    Ok(s) => {
                        if n > 1 && matches!(style, Style::Ndjson | Style::Http) {
                            counts.reconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        conn = Some(BufReader::new(s));
                        used = false;
                    }
                    Err(e) => {
                        counts.refused.fetch_add(1, Ordering::Relaxed);
                        counts.fail(format!("client {id} ({style:?}): connect: {e}"));
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                }
            }
            let got = exchange(conn.as_mut().unwrap(), style, &message);
            let reused = used;
            used = true;
            match got {
                Ok(Got::Answer(a, close)) => {
                    if close {
                        conn = None;
                    }
                    break Some(a);
                }
                // Closed unread on a connection that had served a call: resend (the rule).
                Ok(Got::Closed) if reused && tries < 3 => {
                    counts.resent.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                }
                Ok(Got::Closed) => {
                    counts
                        .fail(format!("client {id} ({style:?}): call {n} closed without an answer (fresh connection)"));
                    conn = None;
                    break None;
                }
                Err(e) => {
                    counts.fail(format!("client {id} ({style:?}): call {n}: {e}"));
                    conn = None;
                    break None;
                }
            }
        };
        let us = started.elapsed().as_micros() as u64;
        counts.worst_us.fetch_max(us, Ordering::Relaxed);
        if let Some(a) = answer {
            let want = format!(r#"{{"jsonrpc":"2.0","result":"{message}","id":7}}"#);
            let ok = match style {
                Style::Ndjson | Style::NdjsonOnce => a.trim_end() == want,
                Style::Http | Style::HttpOnce => a.starts_with("HTTP/1.1 200") && a.ends_with(&want),
            };
            if ok {
                counts.calls.fetch_add(1, Ordering::Relaxed);
            } else {
                counts.fail(format!("client {id} ({style:?}): call {n} answered {a:?}"));
            }
        }
        // A connection the daemon is closing (Connection: close) is not used again.
        if matches!(style, Style::NdjsonOnce | Style::HttpOnce) {
            conn = None;
        }
    }
}

/// Whether `pid` has exited (gone, or a zombie waiting for init).
fn gone(pid: i32) -> bool {
    !alive(pid)
}

/// `NAME upgrade`, checked; the new pid from its output.
fn upgrade(d: &Daemon, extra: &[&str]) -> i32 {
    let out = Command::new(&d.bin).arg("upgrade").args(&d.args).args(extra).output().unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "upgrade failed: {said}\nlog:\n{}", d.log_text());
    said.split("new pid ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no new pid in {said:?}"))
}

use std::process::Command;

#[test]
fn ten_upgrades_under_load_refuse_nothing_and_lose_no_call() {
    let _alone = alone();
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let mut d = Daemon::new("echo", &["--socket", &tcp]).start();
    let unix = To::Unix(d.sock.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let plan = [
        (unix.clone(), Style::Ndjson),
        (unix.clone(), Style::Ndjson),
        (To::Tcp(port), Style::Ndjson),
        (To::Tcp(port), Style::Http),
        (To::Tcp(port), Style::Http),
        (unix.clone(), Style::Http),
        (unix.clone(), Style::NdjsonOnce),
        (To::Tcp(port), Style::HttpOnce),
    ];
    let clients: Vec<_> = plan
        .into_iter()
        .enumerate()
        .map(|(id, (to, style))| {
            let (stop, counts) = (stop.clone(), counts.clone());
            std::thread::spawn(move || client(to, style, id, stop, counts))
        })
        .collect();
    // `status` at every poll: the pid file always names a live daemon that holds its lock.
    let polling = Arc::new(AtomicBool::new(true));
    let poller = {
        let (bin, args, polling) = (d.bin.clone(), d.args.clone(), polling.clone());
        std::thread::spawn(move || {
            let (mut polls, mut bad) = (0, Vec::new());
            while polling.load(Ordering::Relaxed) {
                let out = Command::new(&bin).arg("status").args(&args).output().unwrap();
                polls += 1;
                if !out.status.success() {
                    bad.push(format!("{:?}: {}{}", out.status.code(), text(&out.stdout), text(&out.stderr)));
                }
                std::thread::sleep(Duration::from_millis(3));
            }
            (polls, bad)
        })
    };
    assert!(wait_for(Duration::from_secs(10), || counts.calls.load(Ordering::Relaxed) > 200));
    let mut pids = vec![d.pid().unwrap()];
    for round in 0..10 {
        let old = *pids.last().unwrap();
        let before = counts.calls.load(Ordering::Relaxed);
        let new = upgrade(&d, &[]);
        d.pids.push(new);
        assert_ne!(new, old);
        assert_eq!(d.pid(), Some(new), "round {round}: the pid file names the new daemon");
        until(&format!("round {round}: old pid {old} gone"), Duration::from_secs(20), || gone(old));
        // The new one serves the load.
        until(&format!("round {round}: calls served after the upgrade"), Duration::from_secs(10), || {
            counts.calls.load(Ordering::Relaxed) > before + 100
        });
        pids.push(new);
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    polling.store(false, Ordering::Relaxed);
    let (polls, bad) = poller.join().unwrap();
    let (calls, resent) = (counts.calls.load(Ordering::Relaxed), counts.resent.load(Ordering::Relaxed));
    let (failed, refused) = (counts.failed.load(Ordering::Relaxed), counts.refused.load(Ordering::Relaxed));
    let reconnects = counts.reconnects.load(Ordering::Relaxed);
    eprintln!(
        "10 upgrades under load: {calls} calls answered and checked, {resent} resent on a new connection after \
         an idle close, {reconnects} kept-alive connections opened again, {failed} failed, {refused} refused \
         connections; worst call {} ms; `status` polled {polls} times",
        counts.worst_us.load(Ordering::Relaxed) / 1000
    );
    assert_eq!(failed, 0, "failures: {:#?}", counts.errors.lock().unwrap());
    assert_eq!(refused, 0);
    // Kept-alive connections went over to each new process: none was closed on its client.
    assert_eq!((resent, reconnects), (0, 0));
    assert!(bad.is_empty(), "status failed {} of {polls} times: {:?}", bad.len(), &bad[..bad.len().min(5)]);
    assert!(polls > 20, "status polled only {polls} times");
    for &pid in &pids[..pids.len() - 1] {
        assert!(gone(pid), "old pid {pid} still alive");
    }
    let log = d.log_text();
    assert_eq!(log.matches("taking over from pid").count(), 10, "{log}");
    // The last one stops as any daemon does, and leaves nothing behind.
    let out = d.cmd("stop");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!d.pidfile.exists() && !d.sock.exists(), "files left behind");
}

#[test]
fn the_old_workers_are_gone_and_the_new_ones_serve() {
    let _alone = alone();
    let mut d = Daemon::new("pool", &[]).start();
    let _old_workers = pids(&d);
    let before: Vec<i64> = workers(&d).iter().map(|w| w["pid"].as_i64().unwrap()).collect();
    until("both workers looping", Duration::from_secs(20), || workers(&d).iter().all(|w| w["state"] == "looping"));
    let old = d.pid().unwrap();
    let new = upgrade(&d, &["--wait"]);
    d.pids.push(new);
    let _new_workers = pids(&d);
    assert!(gone(old));
    for pid in &before {
        until(&format!("the old daemon's worker {pid} gone"), Duration::from_secs(10), || gone(*pid as i32));
    }
    until("the new daemon's workers looping", Duration::from_secs(20), || {
        workers(&d).iter().all(|w| w["state"] == "looping" && !before.contains(&w["pid"].as_i64().unwrap_or(0)))
    });
    let v = call(&d, "pool.echo", r#"{"value":"still here"}"#);
    assert_eq!(v["result"], "still here", "{v}");
    assert_eq!(call(&d, "daemon.status", "[]")["result"]["pid"], new);
    let log = d.log_text();
    assert!(log.contains("hello from alpha"), "{log}");
}

#[test]
fn a_new_binary_that_fails_leaves_the_old_one_serving() {
    let _alone = alone();
    let dir = TempDir::new("upfail");
    let conf = dir.path("echo.toml");
    std::fs::write(&conf, "idle-timeout = 60\n").unwrap();
    let conf_arg = conf.display().to_string();
    let mut d = Daemon::new("echo", &["--config", &conf_arg]).start();
    let pid = d.pid().unwrap();
    let crash = dir.path("crash.sh");
    std::fs::write(&crash, "#!/bin/sh\nkill -SEGV $$\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&crash, std::fs::Permissions::from_mode(0o755)).unwrap();
    let crash_arg = crash.display().to_string();
    let cases: [(&[&str], &str); 4] = [
        (&["--binary", "/bin/false"], "exited 1 before it was ready"),
        (&["--binary", &crash_arg], "killed by SIGSEGV"),
        (&["--binary", "/nonexistent/echo"], "No such file"),
        (&[], "unknown key"),
    ];
    for (extra, said) in cases {
        if extra.is_empty() {
            // The configuration the new process would read is refused by it.
            std::fs::write(&conf, "idle-timeout = 60\nno-such-key = 1\n").unwrap();
        }
        // The command itself is not given --config: only the new process reads the file.
        let args: Vec<&String> = d.args.iter().filter(|a| !a.ends_with("echo.toml") && *a != "--config").collect();
        let out = Command::new(&d.bin).arg("upgrade").args(args).args(extra).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}{err}", text(&out.stdout));
        assert!(err.contains(said) && err.contains(&format!("pid {pid} serves on")), "{extra:?}: {err}");
        assert_eq!(d.pid(), Some(pid), "{extra:?}: the pid file still names the old daemon");
        let status = Command::new(&d.bin).arg("status").args(&d.args[..6]).output().unwrap();
        assert!(status.status.success(), "{}", text(&status.stdout));
        assert!(served(&d) < Duration::from_secs(5));
    }
    // Still the same daemon, with its connections' counts and calls: nothing restarted.
    let status = call(&d, "daemon.status", "[]");
    assert_eq!(status["result"]["pid"], pid);
    assert!(d.log_text().contains("still serving"), "{}", d.log_text());
    // Fixed, it upgrades.
    std::fs::write(&conf, "idle-timeout = 60\n").unwrap();
    let new = upgrade(&d, &[]);
    d.pids.push(new);
    until("the old pid gone", Duration::from_secs(10), || gone(pid));
}

#[test]
fn calls_in_flight_are_answered_by_the_old_daemon() {
    let _alone = alone();
    let mut d = Daemon::new("chaos", &[]).start();
    let _w = pids(&d);
    // `crasher` ends in `failed` and `sleeper` cycles: neither holds an upgrade.
    until("crasher failed", Duration::from_secs(20), || worker(&d, "crasher")["state"] == "failed");
    let old = d.pid().unwrap();
    // A worker's answer 4 s away, and a future's 1.5 s away, both asked before the upgrade.
    let mut slow = BufReader::new(d.connect());
    slow.get_mut()
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"chaos.ask\",\"params\":[\"steady\",\"slow\"],\"id\":1}\n")
        .unwrap();
    let mut nap = BufReader::new(d.connect());
    nap.get_mut().write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"chaos.sleep\",\"params\":[1500],\"id\":2}\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let new = upgrade(&d, &[]);
    d.pids.push(new);
    let _w2 = pids(&d);
    assert!(t.elapsed() < Duration::from_secs(3), "upgrade waited for the old one's calls: {:?}", t.elapsed());
    assert!(alive(old), "the old daemon left before answering");
    let mut line = String::new();
    nap.read_line(&mut line).unwrap();
    assert_eq!(json(&line)["result"], "slept", "{line}");
    line.clear();
    slow.read_line(&mut line).unwrap();
    assert!(json(&line)["result"].is_string(), "{line}");
    // Answered, the old one goes; its connections, idle now, went to the new one.
    until("old pid gone", Duration::from_secs(10), || gone(old));
    let v = json(&ndjson(&mut slow, r#"{"jsonrpc":"2.0","method":"daemon.status","id":3}"#));
    assert_eq!(v["result"]["pid"], new, "{v}");
    assert_eq!(call(&d, "daemon.status", "[]")["result"]["pid"], new);
}

#[test]
fn kept_connections_go_over_to_the_new_process_in_every_dialect() {
    let _alone = alone();
    let dir = TempDir::new("upkeep");
    let como = format!("comodojo+unix://{}", dir.path("c.sock").display());
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let mut d = Daemon::new("echo", &["--socket", &como, "--socket", &tcp]).start();
    let old = d.pid().unwrap();
    let addr: tomte::net::Address = como.parse().unwrap();
    let mut comodojo = tomte::client::Client::connect(&addr).unwrap();
    let status = |c: &mut tomte::client::Client| {
        let v = c.call("daemon.status", &tomte::rpc::Args::default()).unwrap().unwrap();
        v.get("pid").and_then(|p| p.as_i64()).unwrap()
    };
    assert_eq!(status(&mut comodojo), i64::from(old));
    let mut ndjson_tcp = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
    ndjson_tcp.get_mut().set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let pid_of = |r: &mut BufReader<TcpStream>| {
        json(&ndjson(r, r#"{"jsonrpc":"2.0","method":"daemon.status","id":1}"#))["result"]["pid"].as_i64().unwrap()
    };
    assert_eq!(pid_of(&mut ndjson_tcp), i64::from(old));
    let mut http = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
    http.get_mut().set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let http_pid = |r: &mut BufReader<TcpStream>| {
        let body = r#"{"jsonrpc":"2.0","method":"daemon.status","id":1}"#;
        r.get_mut().write_all(http_post("application/json", body).as_bytes()).unwrap();
        let (status, headers, body) = http_response(r);
        assert_eq!(status, 200);
        assert!(!headers.iter().any(|(k, v)| k == "connection" && v == "close"), "{headers:?}");
        json(&body)["result"]["pid"].as_i64().unwrap()
    };
    assert_eq!(http_pid(&mut http), i64::from(old));
    // A connection that has said nothing yet goes over too.
    let mut quiet = BufReader::new(d.connect());
    for _ in 0..3 {
        let old = d.pid().unwrap();
        let new = upgrade(&d, &[]);
        d.pids.push(new);
        until("old pid gone", Duration::from_secs(10), || gone(old));
        assert_eq!(status(&mut comodojo), i64::from(new), "the comodojo connection, greeted once");
        assert_eq!(pid_of(&mut ndjson_tcp), i64::from(new));
        assert_eq!(http_pid(&mut http), i64::from(new));
    }
    let v = json(&ndjson(&mut quiet, r#"{"jsonrpc":"2.0","method":"my.echo","params":["late"],"id":9}"#));
    assert_eq!(v["result"], "late");
}

#[test]
fn sigusr2_upgrades_and_the_drain_is_logged() {
    let _alone = alone();
    let mut d = Daemon::new("echo", &[]).start();
    let old = d.pid().unwrap();
    kill(old, libc::SIGUSR2);
    until("a new pid in the pid file", Duration::from_secs(20), || d.pid().is_some_and(|p| p != old));
    let new = d.pid().unwrap();
    d.pids.push(new);
    until("old pid gone", Duration::from_secs(10), || gone(old));
    assert!(served(&d) < Duration::from_secs(5));
    let log = d.log_text();
    assert!(log.contains("SIGUSR2 received: upgrading") && log.contains("drained in"), "{log}");
}

#[test]
fn stop_finishes_what_it_started_within_the_drain_timeout() {
    let _alone = alone();
    let d = Daemon::new("chaos", &["--drain-timeout", "3"]).start();
    let _w = pids(&d);
    let mut nap = BufReader::new(d.connect());
    nap.get_mut().write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"chaos.sleep\",\"params\":[800],\"id\":1}\n").unwrap();
    let mut late = BufReader::new(d.connect());
    late.get_mut()
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"chaos.sleep\",\"params\":[20000],\"id\":2}\n")
        .unwrap();
    // A kept-alive HTTP call in flight is answered, with `Connection: close`.
    let mut http = BufReader::new(d.connect());
    let body = r#"{"jsonrpc":"2.0","method":"chaos.sleep","params":[800],"id":3}"#;
    http.get_mut().write_all(http_post("application/json", body).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let stopper = {
        let (bin, args) = (d.bin.clone(), d.args.clone());
        std::thread::spawn(move || Command::new(bin).arg("stop").args(args).output().unwrap())
    };
    std::thread::sleep(Duration::from_millis(200));
    // Stopping: nothing new is accepted.
    assert!(UnixStream::connect(&d.sock).is_err(), "a stopping daemon accepted a connection");
    let (status, headers, body) = http_response(&mut http);
    assert_eq!((status, json(&body)["result"].clone()), (200, serde_json::json!("slept")), "{body}");
    assert!(headers.iter().any(|(k, v)| k == "connection" && v == "close"), "{headers:?}");
    let mut line = String::new();
    nap.read_line(&mut line).unwrap();
    assert_eq!(json(&line)["result"], "slept", "{line}");
    let out = stopper.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(3), "stopped before the drain timeout: {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    let log = d.log_text();
    assert!(log.contains("drain timeout") && log.contains("1 waiting for an answer"), "{log}");
}

/// A datagram socket standing in for systemd's notify socket; its messages with the
/// descriptors they carry.
struct Notify {
    sock: std::os::unix::net::UnixDatagram,
    path: std::path::PathBuf,
}

impl Notify {
    fn new(dir: &TempDir) -> Notify {
        let path = dir.path("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Notify { sock, path }
    }

    /// The next message, and the descriptors it carried.
    fn recv(&self) -> (String, Vec<std::os::fd::OwnedFd>) {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let mut buf = [0u8; 4096];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let got =
            rustix::net::recvmsg(&self.sock, &mut iov, &mut control, RecvFlags::empty()).expect("a notify message");
        let mut fds = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = m {
                fds.extend(rights);
            }
        }
        (text(&buf[..got.bytes]), fds)
    }

    /// The messages already sent, without waiting for more.
    fn drain(&self) -> Vec<String> {
        self.sock.set_nonblocking(true).unwrap();
        let mut rest = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.sock.recv(&mut buf) {
            rest.push(text(&buf[..n]));
        }
        self.sock.set_nonblocking(false).unwrap();
        rest
    }

    /// Messages until one contains `what` (each other one is kept in `seen`).
    fn until(&self, what: &str, seen: &mut Vec<String>) -> (String, Vec<std::os::fd::OwnedFd>) {
        loop {
            let (m, fds) = self.recv();
            if m.contains(what) {
                return (m, fds);
            }
            seen.push(m);
        }
    }
}

#[test]
fn under_systemd_the_new_process_is_the_main_pid_and_the_sockets_are_stored() {
    let _alone = alone();
    let dir = TempDir::new("upsd");
    let notify = Notify::new(&dir);
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let mut d = Daemon::new("echo", &["--socket", &tcp]);
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    let env = [("NOTIFY_SOCKET", notify.path.to_str().unwrap())];
    let mut child = d.run_foreground(stderr, &env);
    let first = child.id() as i32;
    let mut seen = Vec::new();
    let (ready, _) = notify.until("READY=1", &mut seen);
    assert!(!ready.contains("MAINPID"), "{ready}");
    // Each socket it bound goes to the store, named after its address.
    let mut stored = Vec::new();
    for _ in 0..2 {
        let (m, fds) = notify.until("FDSTORE=1", &mut seen);
        assert_eq!(fds.len(), 1, "{m}");
        stored.push((m, fds.into_iter().next().unwrap()));
    }
    let tcp_name = format!("FDNAME=tomte-tcp%3A//127.0.0.1%3A{port}");
    let (_, fd) = stored.iter().find(|(m, _)| m.contains(&tcp_name)).unwrap_or_else(|| panic!("{stored:?}"));
    let addr = rustix::net::getsockname(fd).unwrap();
    let addr: std::net::SocketAddr = addr.try_into().unwrap();
    assert_eq!(addr.port(), port, "the stored socket is the listener");
    assert!(stored.iter().any(|(m, _)| m.contains("FDNAME=tomte-unix%3A//")), "{stored:?}");
    // An upgrade: the new process says it is the main one.
    let new = upgrade(&d, &[]);
    d.pids.push(new);
    // From the old process, the main one (what NotifyAccess=main accepts), and from the new one
    // with its READY=1 (for NotifyAccess=all), in either order.
    let (a, _) = notify.until("MAINPID=", &mut seen);
    let (b, _) = notify.until("MAINPID=", &mut seen);
    let said = [a, b];
    assert!(said.iter().all(|m| m.contains(&format!("MAINPID={new}"))), "{said:?}");
    assert!(said.iter().any(|m| m.contains("READY=1")), "{said:?}");
    assert_eq!(child.wait().unwrap().code(), Some(0), "the old process exits 0");
    // The old one said nothing that systemd would take as the service's stop, to its end.
    seen.extend(notify.drain());
    assert!(!seen.iter().any(|m| m.contains("STOPPING=1")), "{seen:?}");
    assert_ne!(first, new);
    let mut r = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"my.echo","params":["ok"],"id":1}"#));
    assert_eq!(v["result"], "ok");
}

#[test]
fn a_restart_with_the_stored_socket_refuses_no_connection() {
    let _alone = alone();
    let dir = TempDir::new("upstore");
    let notify = Notify::new(&dir);
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::new("echo", &["--socket", &tcp]);
    let run = |fd: Option<&std::os::fd::OwnedFd>| {
        use std::os::fd::AsRawFd;
        // As systemd starts a unit with its store: the socket at descriptor 3, LISTEN_PID the
        // service's own pid (the shell's, which execs the daemon).
        let place = match fd {
            Some(fd) => {
                // Inherited by the shell, which moves it to 3.
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).unwrap();
                format!("exec 3<&{n} {n}<&-; ", n = fd.as_raw_fd())
            }
            None => String::new(),
        };
        let script = format!(
            "{place}LISTEN_PID=$$ exec {} run --socket {tcp} --pidfile {}",
            d.bin.display(),
            dir.path("d.pid").display()
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(script).env("NOTIFY_SOCKET", &notify.path);
        cmd.stderr(std::fs::File::create(dir.path("stderr")).unwrap());
        if fd.is_some() {
            cmd.env("LISTEN_FDS", "1").env("LISTEN_FDNAMES", format!("tomte-tcp%3A//127.0.0.1%3A{port}"));
        }
        cmd.spawn().unwrap()
    };
    let mut first = run(None);
    let mut seen = Vec::new();
    notify.until("READY=1", &mut seen);
    let (_, fds) = notify.until("FDSTORE=1", &mut seen);
    let stored = fds.into_iter().next().unwrap();
    kill(first.id() as i32, libc::SIGTERM);
    assert_eq!(first.wait().unwrap().code(), Some(0));
    // Nothing runs: the stored socket still listens, so a client connects and waits.
    let mut waiting = BufReader::new(TcpStream::connect(("127.0.0.1", port)).expect("refused while between runs"));
    waiting.get_mut().set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    waiting
        .get_mut()
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"my.echo\",\"params\":[\"queued\"],\"id\":1}\n")
        .unwrap();
    let mut second = run(Some(&stored));
    let mut line = String::new();
    waiting.read_line(&mut line).unwrap();
    kill(second.id() as i32, libc::SIGTERM);
    let _ = second.wait();
    assert_eq!(json(&line)["result"], "queued", "{line}");
    let log = std::fs::read_to_string(dir.path("stderr")).unwrap_or_default();
    assert!(!log.contains("cannot"), "{log}");
}

#[test]
fn as_a_containers_pid_1_an_upgrade_is_refused_and_the_daemon_serves_on() {
    let _alone = alone();
    if !rustix::process::geteuid().is_root()
        || Command::new("unshare").arg("--version").output().map_or(true, |o| !o.status.success())
    {
        eprintln!("SKIPPED: PID namespaces need root and util-linux's unshare (CI has both)");
        return;
    }
    let dir = TempDir::new("uppid1");
    let sock = dir.path("d.sock");
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(binary("echo"))
        .args(["run", "--socket", &format!("unix://{}", sock.display())])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut d = Foreground { child, dir };
    until("the socket", Duration::from_secs(20), || UnixStream::connect(&sock).is_ok());
    let mut r = BufReader::new(UnixStream::connect(&sock).unwrap());
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.upgrade","id":1}"#));
    assert_eq!(v["error"]["code"], -32021, "{v}");
    assert!(v["error"]["data"].as_str().unwrap_or("").contains("PID 1"), "{v}");
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.status","id":2}"#));
    assert_eq!(v["result"]["pid"], 1, "{v}");
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.shutdown","id":3}"#));
    assert_eq!(v["result"], 0, "{v}");
    assert_eq!(d.wait_exit(Duration::from_secs(20)).0, Some(0), "{}", d.log());
}

#[test]
fn under_systemd_socket_activate_the_passed_socket_goes_to_the_new_process() {
    let _alone = alone();
    let Some(activate) = ["/usr/bin/systemd-socket-activate", "/bin/systemd-socket-activate"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("SKIPPED: systemd-socket-activate is not installed (Debian's `systemd` package has it; .ci/run installs it)");
        return;
    };
    let dir = TempDir::new("upsda");
    let notify = Notify::new(&dir);
    let port = free_port();
    let pidfile = dir.path("d.pid");
    let mut cmd = Command::new(activate);
    for var in ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        cmd.env_remove(var);
    }
    let child = cmd
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg(format!("--setenv=NOTIFY_SOCKET={}", notify.path.display()))
        .arg(binary("echo"))
        .args(["run", "--pidfile"])
        .arg(&pidfile)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut d = Foreground { child, dir };
    // The first connection starts the daemon, in the activator's process.
    let mut first = None;
    until("the activator's listener", Duration::from_secs(20), || {
        first = TcpStream::connect(("127.0.0.1", port)).ok();
        first.is_some()
    });
    let mut kept = BufReader::new(first.unwrap());
    kept.get_mut().set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let pid_on = |r: &mut BufReader<TcpStream>| {
        json(&ndjson(r, r#"{"jsonrpc":"2.0","method":"daemon.status","id":1}"#))["result"]["pid"].as_i64().unwrap()
    };
    assert_eq!(pid_on(&mut kept), i64::from(d.pid()));
    let mut seen = Vec::new();
    notify.until("READY=1", &mut seen);
    // No unix socket to ask on: `upgrade` sends SIGUSR2 and watches the pid file.
    let out = Command::new(binary("echo")).args(["upgrade", "--pidfile"]).arg(&pidfile).output().unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}\n{}", d.log());
    assert!(said.contains("SIGUSR2"), "{said}");
    let new: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert_ne!(new, d.pid());
    let _new = Reaper(vec![new]);
    let (m, _) = notify.until("MAINPID=", &mut seen);
    assert!(m.contains(&format!("MAINPID={new}")), "{m}");
    // The old process (the activator's) exits 0; the passed socket and the kept connection are
    // the new one's.
    assert_eq!(d.wait_exit(Duration::from_secs(20)).0, Some(0), "{}", d.log());
    assert_eq!(pid_on(&mut kept), i64::from(new));
    let mut fresh = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
    fresh.get_mut().set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    assert_eq!(pid_on(&mut fresh), i64::from(new));
    assert!(d.log().contains("using 1 socket(s) passed by systemd"), "{}", d.log());
    kill(new, libc::SIGTERM);
    until("the new daemon gone", Duration::from_secs(20), || gone(new));
}

#[test]
fn a_daemon_that_dropped_root_upgrades_as_its_user() {
    let _alone = alone();
    let dir = TempDir::new("upuser");
    let run = dir.path("run");
    let sock = format!("unix://{}", run.join("d.sock").display());
    let pidfile = run.join("d.pid").display().to_string();
    let log = dir.path("d.log").display().to_string();
    let args = ["--socket", &sock, "--pidfile", &pidfile, "--log", &log, "--user", "nobody"];
    let echo = binary("echo");
    let out = Command::new(&echo).arg("start").args(args).output().unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let read_pid = || std::fs::read_to_string(&pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok());
    let old = read_pid().unwrap();
    let _old = Reaper(vec![old]);
    let out = Command::new(&echo).arg("upgrade").args(args).output().unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let new = read_pid().unwrap();
    let _new = Reaper(vec![new]);
    assert_ne!(new, old);
    until("old pid gone", Duration::from_secs(10), || gone(old));
    let mut r = BufReader::new(UnixStream::connect(run.join("d.sock")).unwrap());
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.status","id":1}"#));
    assert_eq!(v["result"]["pid"], new, "{v}");
    assert_eq!(v["result"]["user"]["name"], "nobody", "{v}");
    let out = Command::new(&echo).arg("stop").args(args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!run.join("d.sock").exists() && !run.join("d.pid").exists(), "files left behind");
}

#[test]
fn another_users_status_names_the_new_daemon() {
    let _alone = alone();
    if !rustix::process::geteuid().is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPED: needs root and util-linux's setpriv (CI has both)");
        return;
    }
    // A pid file others may read: they ask /proc/locks, not the daemon's descriptors.
    let mut d = Daemon::new("echo", &["--umask", "022"]).start();
    let as_nobody = |d: &Daemon| {
        let out = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(&d.bin)
            .arg("status")
            .args(&d.args)
            .output()
            .unwrap();
        (out.status.code(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
    };
    let old = d.pid().unwrap();
    assert_eq!(as_nobody(&d), (Some(0), format!("echo is running (pid {old})\n")));
    let new = upgrade(&d, &["--wait"]);
    d.pids.push(new);
    assert_eq!(as_nobody(&d), (Some(0), format!("echo is running (pid {new})\n")));
}

#[test]
fn a_half_sent_request_and_a_pipelining_client_go_over_whole() {
    let _alone = alone();
    let mut d = Daemon::new("echo", &[]).start();
    let old = d.pid().unwrap();
    // Half a request: its first bytes read by the old process, the rest sent to the new one.
    let mut half = BufReader::new(d.connect());
    half.get_mut().write_all(br#"{"jsonrpc":"2.0","method":"daemon.st"#).unwrap();
    // HTTP too: a head without its body yet.
    let mut http = BufReader::new(d.connect());
    let body = r#"{"jsonrpc":"2.0","method":"daemon.status","id":5}"#;
    let request = http_post("application/json", body);
    let (head, rest) = request.split_at(request.len() - body.len() + 10);
    http.get_mut().write_all(head.as_bytes()).unwrap();
    // A client that sends 3000 requests at once and reads the answers as they come.
    let mut pipe = d.connect();
    let reader = pipe.try_clone().unwrap();
    // Every 50th asks daemon.status: the pids the answers come from, in order.
    let writer = std::thread::spawn(move || {
        for i in 0..3000 {
            let line = match i % 50 {
                0 => format!("{{\"jsonrpc\":\"2.0\",\"method\":\"daemon.status\",\"id\":{i}}}\n"),
                _ => format!("{{\"jsonrpc\":\"2.0\",\"method\":\"my.echo\",\"params\":[\"p{i}\"],\"id\":{i}}}\n"),
            };
            pipe.write_all(line.as_bytes()).unwrap();
            if i % 100 == 99 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        pipe
    });
    std::thread::sleep(Duration::from_millis(60));
    let new = upgrade(&d, &[]);
    d.pids.push(new);
    half.get_mut().write_all(b"atus\",\"id\":1}\n").unwrap();
    let v = json(&ndjson_answer(&mut half));
    assert_eq!(v["result"]["pid"], new, "{v}");
    http.get_mut().write_all(rest.as_bytes()).unwrap();
    let (status, _, answer) = http_response(&mut http);
    assert_eq!((status, json(&answer)["result"]["pid"].clone()), (200, serde_json::json!(new)), "{answer}");
    let mut answers = BufReader::new(reader);
    let mut pids = Vec::new();
    for i in 0..3000 {
        let v = json(&ndjson_answer(&mut answers));
        assert_eq!(v["id"], i, "{v}");
        match i % 50 {
            0 => pids.push(v["result"]["pid"].as_i64().unwrap()),
            _ => assert_eq!(v["result"], format!("p{i}"), "{v}"),
        }
    }
    // Answered by the old process, then by the new one, on the same connection.
    let switch = pids.iter().position(|&p| p == i64::from(new)).expect("no answer from the new process");
    assert!(switch > 0 && pids[..switch].iter().all(|&p| p == i64::from(old)), "{pids:?}");
    assert!(pids[switch..].iter().all(|&p| p == i64::from(new)), "{pids:?}");
    drop(writer.join().unwrap());
    until("old pid gone", Duration::from_secs(10), || gone(old));
}

/// The next answer line.
fn ndjson_answer<R: Read>(r: &mut BufReader<R>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("an answer");
    line
}
