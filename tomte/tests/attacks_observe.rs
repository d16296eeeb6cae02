//! Attacks on what the daemon shows of itself: event subscribers that read too slowly, too
//! steadily or not at all, subscribers by the hundred, subscription churn, hostile GETs on the
//! HTTP path, log floods with a `daemon.log` subscriber, idle timeouts and shutdown with
//! subscribers attached. Real daemons, real sockets; memory is read from /proc.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// An event name of about 8 kB: each event is one frame of that size.
fn big_name() -> String {
    format!("app.{}", "x".repeat(8000))
}

/// A JSON-RPC batch of `n` `chaos.emit NAME` calls, as one line.
fn emit_batch(name: &str, n: usize) -> String {
    let calls: Vec<String> =
        (0..n).map(|i| format!(r#"{{"jsonrpc":"2.0","method":"chaos.emit","params":["{name}"],"id":{i}}}"#)).collect();
    format!("[{}]\n", calls.join(","))
}

/// Sends `n` emits on `emitter` and reads the batch's answer.
fn emit<S: Read + Write>(emitter: &mut BufReader<S>, name: &str, n: usize) {
    emitter.get_mut().write_all(emit_batch(name, n).as_bytes()).unwrap();
    let mut answer = String::new();
    emitter.read_line(&mut answer).unwrap();
    assert!(answer.starts_with('['), "the batch is answered: {}", &answer[..answer.len().min(200)]);
}

/// A unix connection that subscribed to `patterns` (its answer read).
fn subscribe(d: &Daemon, patterns: &[&str]) -> BufReader<UnixStream> {
    let mut r = BufReader::new(d.connect());
    let params = serde_json::to_string(&[patterns]).unwrap();
    let a =
        json(&ndjson(&mut r, &format!(r#"{{"jsonrpc":"2.0","method":"daemon.subscribe","params":{params},"id":1}}"#)));
    assert_eq!(a["result"]["subscribed"], serde_json::json!(patterns), "{a}");
    r
}

/// A connection that sent the subscription and reads nothing at all (not even the answer).
fn deaf_subscriber(d: &Daemon, pattern: &str) -> UnixStream {
    let mut s = d.connect();
    let line = format!(r#"{{"jsonrpc":"2.0","method":"daemon.subscribe","params":[["{pattern}"]],"id":1}}"#);
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    s
}

fn rss_anon(pid: i32) -> u64 {
    status_kb(pid, "RssAnon")
}

fn tcp_daemon(example: &str, extra: &[&str]) -> (Daemon, u16) {
    let port = free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let mut args = vec!["--socket", &addr];
    args.extend_from_slice(extra);
    (Daemon::new(example, &args).start(), port)
}

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Everything `s` sends until it closes or stays quiet for `quiet`.
fn read_all_quiet<S: Read>(s: &mut S, quiet: Duration, set: impl Fn(&S, Duration)) -> (Vec<u8>, bool) {
    set(s, quiet);
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (all, true),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return (all, false)
            }
            Err(_) => return (all, true),
        }
    }
}

fn tcp_quiet(s: &mut TcpStream, quiet: Duration) -> (Vec<u8>, bool) {
    read_all_quiet(s, quiet, |s, d| s.set_read_timeout(Some(d)).unwrap())
}

/// Bug found (fixed in `Conn::flush`/`Conn::compact_out`): the output buffer was only cleared
/// once all of it had been written, so a subscriber that reads steadily but stays a little
/// behind grew it by everything it ever received — one subscriber with a 1 MiB queue limit
/// made the daemon hold its whole output budget (256 MiB), then was closed.
#[test]
fn a_subscriber_that_reads_steadily_but_behind_does_not_grow_the_daemon() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    let pid = d.pid().unwrap();
    let mut sub = subscribe(&d, &["app.*"]);
    let mut emitter = BufReader::new(d.connect());
    let name = big_name();
    // A lead of about 650 kB: more than the socket buffers take, less than the 1 MiB limit.
    emit(&mut emitter, &name, 80);
    std::thread::sleep(Duration::from_millis(300));
    let base = rss_anon(pid);
    let mut peak = base;
    // Then as much read as emitted, turn by turn: about 80 MB through, never caught up.
    for turn in 0..500 {
        emit(&mut emitter, &name, 20);
        for _ in 0..20 {
            let mut line = String::new();
            sub.read_line(&mut line).unwrap();
            assert!(line.contains("daemon.event"), "turn {turn}: {}", &line[..line.len().min(200)]);
        }
        peak = peak.max(rss_anon(pid));
        assert!(
            peak < base + 48 * 1024,
            "turn {turn}: RssAnon went from {base} kB to {peak} kB for one subscriber 650 kB behind"
        );
    }
    assert_eq!(call(&d, "daemon.health", "[]")["result"]["live"], true);
}

/// Bug found (fixed in `Conn::push`, `Conn::drop_subscriber`): subscribers that do not read
/// each held up to 1 MiB of events (2 MiB of buffer), whatever the output budget: a hundred of
/// them held ~200 MB for a second or more before the budget's relief closed any. Now a
/// subscriber with events unread is dropped once the budget is spent, and a dropped one gives
/// its buffer back at once.
#[test]
fn subscribers_that_do_not_read_stay_within_the_output_budget() {
    let d = Daemon::new("chaos", &["--max-buffered", "16777216"]).start();
    let _reaper = pids(&d);
    let pid = d.pid().unwrap();
    let mut subs: Vec<UnixStream> = (0..100).map(|_| deaf_subscriber(&d, "*")).collect();
    until("100 subscribers", Duration::from_secs(20), || {
        call(&d, "daemon.status", "[]")["result"]["connections"].as_u64() >= Some(101)
    });
    std::thread::sleep(Duration::from_millis(500));
    let base = rss_anon(pid);
    let mut peak = base;
    let mut emitter = BufReader::new(d.connect());
    let name = big_name();
    for _ in 0..40 {
        emit(&mut emitter, &name, 20);
        peak = peak.max(rss_anon(pid));
    }
    assert!(
        peak < base + 48 * 1024,
        "RssAnon went from {base} kB to {peak} kB with 100 subscribers that do not read (budget 16 MiB)"
    );
    // Each was told why, in whole frames, and closed.
    for (i, s) in subs.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let text = text(&all);
        let lines: Vec<&str> = text.lines().collect();
        for l in &lines {
            json(l);
        }
        assert!(lines.last().unwrap().contains("daemon.dropped"), "subscriber {i}: {:?}", lines.last());
    }
    assert_eq!(call(&d, "daemon.health", "[]")["result"]["live"], true);
}

/// Bug found (fixed in `Running::admit`/`subscriber_victim`): a subscriber is never idle, so
/// connections holding event streams were never closed to make room: an anonymous TCP client
/// holding `max_connections` streams of `GET /events` locked every other client out for good.
#[test]
fn event_streams_cannot_hold_every_connection_slot() {
    let (_d, port) = tcp_daemon("echo", &["--max-connections", "16", "--max-per-peer", "64"]);
    // With its unix socket, the TCP listener's own share is 16 - 4 (the unix socket's reserve).
    let mut streams = Vec::new();
    for _ in 0..12 {
        let mut s = tcp(port);
        s.write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut head = [0u8; 15];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK");
        streams.push(s);
    }
    std::thread::sleep(Duration::from_millis(1500));
    // A newcomer is served: one of the streams (the newest of the peer holding the most) goes.
    let mut r = BufReader::new(tcp(port));
    let a = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"my.echo","params":["in"],"id":1}"#));
    assert_eq!(a["result"], "in", "{a}");
    // The stream closed for it was told why, as a last event, and closed.
    let closed = streams.iter_mut().filter_map(|s| {
        let (bytes, eof) = tcp_quiet(s, Duration::from_millis(300));
        eof.then(|| text(&bytes))
    });
    let closed: Vec<String> = closed.collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(closed[0].contains("event: closed\ndata: {\"reason\":"), "{:?}", closed[0]);
    assert!(!closed[0].contains("HTTP/1.1 503"), "no HTTP response in the middle of a stream: {:?}", closed[0]);
}

/// Held: pipelined GETs answer in order; a GET's body is consumed, not served as a request;
/// Transfer-Encoding on a GET is refused and the connection closed; CR/LF, NUL and broken
/// percent-escapes in a pattern are a 400 whose only header lines are the daemon's; a stream
/// serves nothing pipelined behind it; `daemon.lo%67` is `daemon.log` (403 without control).
#[test]
fn hostile_gets_neither_split_responses_nor_smuggle_requests() {
    let (d, port) = tcp_daemon("echo", &[]);
    let h = "Host: 127.0.0.1\r\n";
    let ask = |req: &str| {
        let mut s = tcp(port);
        s.write_all(req.as_bytes()).unwrap();
        let (bytes, eof) = tcp_quiet(&mut s, Duration::from_millis(700));
        (text(&bytes), eof)
    };
    // Pipelined: both answered, in order, the connection kept.
    let (out, eof) = ask(&format!("GET /livez HTTP/1.1\r\n{h}\r\nGET /nothing HTTP/1.1\r\n{h}\r\n"));
    assert!(!eof);
    let first = out.find("HTTP/1.1 200").expect("livez answered");
    let second = out.find("HTTP/1.1 404").expect("the second answered");
    assert!(first < second && out.matches("HTTP/1.1 ").count() == 2, "{out}");
    // A request hidden in a GET's body is not served.
    let inner = format!("GET /nothing HTTP/1.1\r\n{h}\r\n");
    let (out, _) = ask(&format!("GET /livez HTTP/1.1\r\n{h}Content-Length: {}\r\n\r\n{inner}", inner.len()));
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // Transfer-Encoding on a GET: refused, closed, what follows not served.
    let (out, eof) = ask(&format!(
        "GET /livez HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /livez HTTP/1.1\r\n{h}\r\n"
    ));
    assert!(eof && out.starts_with("HTTP/1.1 501") && out.matches("HTTP/1.1 ").count() == 1, "{out}");
    // Junk in patterns: a 400, and nothing of the pattern among the header lines.
    for q in ["a%0d%0aX-Evil:%201", "a%00b", "%0aevent:%20x", "a%0d%0a%0d%0aHTTP/1.1%20200%20OK"] {
        let (out, _) = ask(&format!("GET /events?pattern={q} HTTP/1.1\r\n{h}\r\n"));
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400"), "{q}: {out}");
        assert!(!head.contains("Evil") && !head.contains("event:"), "{q}: {head}");
        let len: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
        assert_eq!(len, body.len(), "{q}: the body is exactly what Content-Length says");
    }
    for q in ["%zz%%%", "%e9%ff*", ""] {
        let (out, _) = ask(&format!("GET /events?pattern={q}&pattern={q}x HTTP/1.1\r\n{h}\r\n"));
        assert!(out.starts_with("HTTP/1.1 400") || out.starts_with("HTTP/1.1 200"), "{q}: {out}");
    }
    let long = "a".repeat(257);
    assert!(ask(&format!("GET /events?pattern={long} HTTP/1.1\r\n{h}\r\n")).0.starts_with("HTTP/1.1 400"));
    let many = vec!["pattern=a"; 65].join("&");
    assert!(ask(&format!("GET /events?{many} HTTP/1.1\r\n{h}\r\n")).0.starts_with("HTTP/1.1 400"));
    // A stream serves nothing pipelined behind it (a POST, another GET).
    let body = r#"{"jsonrpc":"2.0","method":"my.echo","params":["smuggled"],"id":1}"#;
    let (out, _) = ask(&format!(
        "GET /events?pattern=nothing.ever HTTP/1.1\r\n{h}\r\nPOST / HTTP/1.1\r\n{h}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}GET /livez HTTP/1.1\r\n{h}\r\n",
        body.len()
    ));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\nServer: tomte\r\nContent-Type: text/event-stream"), "{out}");
    assert!(!out.contains("smuggled") && out.matches("HTTP/1.1 ").count() == 1, "{out}");
    // Another site's page (DNS rebinding, a cross-site EventSource) gets no stream.
    for extra in ["Host: evil.example\r\n", "Host: 127.0.0.1\r\nSec-Fetch-Site: cross-site\r\n"] {
        let (out, _) = ask(&format!("GET /events HTTP/1.1\r\n{extra}\r\n"));
        assert!(out.starts_with("HTTP/1.1 403"), "{extra}: {out}");
    }
    let (out, _) = ask(&format!("GET /events HTTP/1.1\r\n{h}Origin: http://evil.example\r\n\r\n"));
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    // daemon.log spelled with an escape is still daemon.log: an anonymous TCP client lacks control.
    assert!(ask(&format!("GET /events?pattern=daemon.lo%67 HTTP/1.1\r\n{h}\r\n")).0.starts_with("HTTP/1.1 403"));
    drop(d);
}

/// Held: another local user on a 0666 unix socket holds nothing: no subscription over NDJSON,
/// no stream over HTTP (whatever the pattern), no health.
#[test]
fn another_local_user_cannot_subscribe_on_a_world_writable_socket() {
    let d = Daemon::new("echo", &["--socket-mode", "0666"]).start();
    let sock = d.sock.display().to_string();
    let script = r#"
import socket, sys, json
out = []
for line in ['{"jsonrpc":"2.0","method":"daemon.subscribe","params":[["*"]],"id":1}',
             '{"jsonrpc":"2.0","method":"daemon.subscribe","params":[["daemon.log"]],"id":2}',
             '{"jsonrpc":"2.0","method":"daemon.health","id":3}']:
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
    s.sendall(line.encode() + b"\n")
    out.append(json.loads(s.makefile("rb").readline()))
for q in ["/events", "/events?pattern=daemon.log", "/events?pattern=daemon.lo%67", "/livez"]:
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % q).encode())
    out.append(s.recv(100).decode().split("\r\n")[0])
print(json.dumps(out))
"#;
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "/usr/bin/python3", "-c", script, &sock])
        .output()
        .expect("setpriv and python3");
    let all = json(text(&out.stdout).lines().last().unwrap_or_else(|| panic!("{}", text(&out.stderr))));
    for i in 0..3 {
        assert!(all[i]["error"].is_object() && all[i].get("result").is_none(), "call {i}: {all}");
    }
    for i in 3..7 {
        assert_eq!(all[i], "HTTP/1.1 403 Forbidden", "GET {i}: {all}");
    }
}

/// Held: thousands of subscribe/unsubscribe pairs with 64 patterns of 256 bytes each,
/// from several connections, leave no subscriber and no memory behind; the daemon keeps
/// answering meanwhile.
#[test]
fn subscription_churn_leaves_nothing_behind() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    let pid = d.pid().unwrap();
    let patterns: Vec<String> = (0..64).map(|i| format!("p{i:02}.{}*", "y".repeat(251))).collect();
    assert!(patterns.iter().all(|p| p.len() == 256));
    let sub = serde_json::json!({"jsonrpc":"2.0","method":"daemon.subscribe","params":[patterns],"id":1}).to_string();
    let uns = r#"{"jsonrpc":"2.0","method":"daemon.unsubscribe","id":2}"#;
    let mut conns: Vec<BufReader<UnixStream>> = (0..4).map(|_| BufReader::new(d.connect())).collect();
    let mut base = 0;
    for round in 0..6 {
        for c in &mut conns {
            // Lines, not a batch: each subscription is applied before the next is asked for.
            for _ in 0..50 {
                let a = json(&ndjson(c, &sub));
                assert!(a["result"]["subscribed"].is_array(), "{a}");
                let a = json(&ndjson(c, uns));
                assert_eq!(a["result"]["subscribed"], serde_json::json!([]), "{a}");
            }
        }
        let t = Instant::now();
        assert_eq!(call(&d, "daemon.health", "[]")["result"]["live"], true);
        assert!(t.elapsed() < Duration::from_secs(5));
        if round == 1 {
            base = rss_anon(pid);
        }
    }
    let now = rss_anon(pid);
    assert!(now < base + 8 * 1024, "RssAnon {base} kB after two rounds, {now} kB after six");
    // A million patterns are refused, counted before any is parsed. (What decoding such a
    // request costs, and how soon the allocator gives it back, is the RPC layer's, not
    // measured here: any method's params cost the same.)
    let mut c = BufReader::new(d.connect());
    let huge = format!(
        r#"{{"jsonrpc":"2.0","method":"daemon.subscribe","params":[[{}]],"id":3}}"#,
        vec!["\"a\""; 1_000_000].join(",")
    );
    let a = json(&ndjson(&mut c, &huge));
    assert_eq!(a["error"]["code"], -32602, "{a}");
    assert!(a["error"]["data"].as_str().unwrap().contains("1000000 patterns"), "{a}");
    assert_eq!(call(&d, "daemon.health", "[]")["result"]["live"], true);
}

/// Held: an event storm with one subscriber that does not read and one that reads: the deaf one
/// is dropped with a notice, the reader gets every event in order, and a third client stays
/// served meanwhile.
#[test]
fn an_event_storm_drops_the_deaf_subscriber_only() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    let mut deaf = deaf_subscriber(&d, "storm.*");
    let mut reader = subscribe(&d, &["storm.*"]);
    let mut emitter = BufReader::new(d.connect());
    let name = format!("storm.{}", "z".repeat(2000));
    let mut seen = 0;
    let mut worst = Duration::ZERO;
    for _ in 0..100 {
        emit(&mut emitter, &name, 50);
        for _ in 0..50 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.contains(&name), "{}", &line[..line.len().min(200)]);
            seen += 1;
        }
        let t = Instant::now();
        assert_eq!(call(&d, "daemon.health", "[]")["result"]["live"], true);
        worst = worst.max(t.elapsed());
    }
    assert_eq!(seen, 5000);
    assert!(worst < Duration::from_secs(3), "a call took {worst:?} during the storm");
    deaf.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut all = Vec::new();
    deaf.read_to_end(&mut all).unwrap();
    let text = text(&all);
    assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "whole lines only");
    assert!(text.lines().last().unwrap().contains("daemon.dropped"), "{:?}", text.lines().last());
}

/// Held: a worker flooding its stdout with a `daemon.log` subscriber attached (one that reads,
/// then one that does not): the daemon stays responsive and its memory bounded.
#[test]
fn a_log_flood_with_log_subscribers_stays_bounded() {
    let d = Daemon::new("chaos", &[]).with_env("CHAOS_FLOOD", "1").start();
    let _reaper = pids(&d);
    let pid = d.pid().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let base = rss_anon(pid);
    let mut reader = subscribe(&d, &["daemon.log"]);
    let _deaf = deaf_subscriber(&d, "daemon.log");
    let start = Instant::now();
    let mut lines = 0;
    let mut worst = Duration::ZERO;
    let mut peak = base;
    while start.elapsed() < Duration::from_secs(6) {
        for _ in 0..100 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let v = json(&line);
            assert!(v["method"] == "daemon.event" || v["method"] == "daemon.dropped", "{v}");
            lines += 1;
        }
        let t = Instant::now();
        assert_eq!(call(&d, "daemon.health", "[]")["result"]["live"], true);
        worst = worst.max(t.elapsed());
        peak = peak.max(rss_anon(pid));
    }
    assert!(lines > 100);
    assert!(worst < Duration::from_secs(3), "a call took {worst:?} during the flood");
    assert!(peak < base + 64 * 1024, "RssAnon {base} kB before, {peak} kB during the flood");
}

/// Held: subscribers are not idle (an NDJSON one and an event stream outlive a 1 s idle
/// timeout and still get events); once unsubscribed, the NDJSON one is idle again and closed.
#[test]
fn idle_timeouts_spare_subscribers_until_they_unsubscribe() {
    let port = free_port();
    let tcp_addr = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::new("chaos", &["--idle-timeout", "1", "--socket", &tcp_addr]).start();
    let _reaper = pids(&d);
    let mut sub = subscribe(&d, &["late.*"]);
    let mut stream = tcp(port);
    stream.write_all(b"GET /events?pattern=late.* HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    call(&d, "chaos.emit", r#"["late.one"]"#);
    let mut line = String::new();
    sub.read_line(&mut line).unwrap();
    assert!(line.contains("late.one"), "{line}");
    let (bytes, eof) = tcp_quiet(&mut stream, Duration::from_secs(2));
    assert!(!eof && text(&bytes).contains("data: {\"name\":\"late.one\""), "{}", text(&bytes));
    // Unsubscribed: idle again, closed after the timeout.
    let a = json(&ndjson(&mut sub, r#"{"jsonrpc":"2.0","method":"daemon.unsubscribe","id":2}"#));
    assert_eq!(a["id"], 2, "{a}");
    sub.get_mut().set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = sub.read_to_end(&mut rest);
    assert!(t.elapsed() < Duration::from_secs(15), "closed after {:?}", t.elapsed());
}

/// Held: SIGTERM with a hundred subscribers that do not read (events queued for each), an event
/// stream, and a client trickling bytes into its subscription: the daemon is gone within seconds.
#[test]
fn sigterm_stops_the_daemon_with_subscribers_attached() {
    let port = free_port();
    let tcp_addr = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::new("chaos", &["--socket", &tcp_addr]).start();
    let _reaper = pids(&d);
    let pid = d.pid().unwrap();
    // The sleeper hangs on purpose, and a hung worker takes its stop grace (5 s) and more to
    // go: stopped first, so that what is timed is the daemon with its subscribers.
    call(&d, "worker.stop", r#"["sleeper"]"#);
    until("the sleeper stopped", Duration::from_secs(30), || worker(&d, "sleeper")["pid"].is_null());
    let _deaf: Vec<UnixStream> = (0..100).map(|_| deaf_subscriber(&d, "*")).collect();
    let mut stream = tcp(port);
    stream.write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut trickler = d.connect();
    trickler
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.subscribe\",\"params\":[[\"*\"]],\"id\":1}\n")
        .unwrap();
    let mut emitter = BufReader::new(d.connect());
    emit(&mut emitter, &big_name(), 60);
    kill(pid, libc::SIGTERM);
    let t = Instant::now();
    while alive(pid) && t.elapsed() < Duration::from_secs(20) {
        let _ = trickler.write_all(b" ");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "still running 20 s after SIGTERM");
    assert!(t.elapsed() < Duration::from_secs(10), "stopped after {:?}", t.elapsed());
}

/// Bug found (fixed in `Conn::push`, with `Conn::answers_end`): a subscriber's queue limit
/// counted the answers to its own calls as unread events: one call answered with 3 MB got it
/// dropped ("more than 1048576 bytes of events unread") at the next event, with no event unread.
#[test]
fn a_subscribers_own_big_answer_is_not_counted_as_unread_events() {
    let d = Daemon::new("echo", &[]).start();
    let mut sub = subscribe(&d, &["daemon.socket.*"]);
    let big = "x".repeat(3_000_000);
    let call = format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":["{big}"],"id":2}}"#);
    sub.get_mut().write_all(format!("{call}\n").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Clients come and go (an event each time) while the answer waits to be read.
    for _ in 0..3 {
        let c = d.connect();
        std::thread::sleep(Duration::from_millis(200));
        drop(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut answer = String::new();
    sub.read_line(&mut answer).unwrap();
    assert_eq!(json(&answer)["result"].as_str().map(str::len), Some(3_000_000));
    let mut names = Vec::new();
    while names.len() < 6 {
        let mut line = String::new();
        sub.read_line(&mut line).unwrap();
        let v = json(&line);
        assert_eq!(v["method"], "daemon.event", "not dropped: {v}");
        names.push(v["params"]["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(names.iter().filter(|n| n.ends_with(".connect")).count(), 3, "{names:?}");
    assert_eq!(names.iter().filter(|n| n.ends_with(".hangup")).count(), 3, "{names:?}");
}

/// The same bug as a subscriber's (fixed by `Conn::compact_out`), for plain RPC: a client that
/// pipelines calls and reads their answers steadily, a few hundred kB behind, grew the output
/// buffer by every answer it ever got.
#[test]
fn a_pipelining_client_that_reads_behind_does_not_grow_the_daemon() {
    let d = Daemon::new("echo", &[]).start();
    let pid = d.pid().unwrap();
    let mut c = BufReader::new(d.connect());
    let payload = "p".repeat(8000);
    let calls = |n: usize| {
        (0..n)
            .map(|i| format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":["{payload}"],"id":{i}}}"#) + "\n")
            .collect::<String>()
    };
    c.get_mut().write_all(calls(80).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let base = rss_anon(pid);
    let twenty = calls(20);
    for turn in 0..500 {
        c.get_mut().write_all(twenty.as_bytes()).unwrap();
        for _ in 0..20 {
            let mut line = String::new();
            c.read_line(&mut line).unwrap();
            assert!(line.contains("\"result\""), "turn {turn}: {}", &line[..line.len().min(200)]);
        }
        let now = rss_anon(pid);
        assert!(now < base + 48 * 1024, "turn {turn}: RssAnon went from {base} kB to {now} kB");
    }
}
