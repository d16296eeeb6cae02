//! `events`, `logs -f`, `health` and `metrics` against a scripted daemon: a unix socket this
//! test serves, saying exactly what the contract says a daemon says (and some things it might:
//! an event before the answer to `daemon.subscribe`, a chunked HTTP body), so that each output
//! and exit code is checked to the byte. The same commands against a real daemon are in
//! `tomte/tests/ctl_observe.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Long enough for a loaded machine; only reached when something is broken.
const LIMIT: Duration = Duration::from_secs(60);

/// A socket served by `script` (one connection) in a fresh directory, removed on drop.
struct Fake {
    dir: PathBuf,
    addr: String,
    server: Option<JoinHandle<()>>,
}

impl Fake {
    fn new(tag: &str, script: impl FnOnce(BufReader<UnixStream>) + Send + 'static) -> Fake {
        let dir = PathBuf::from(format!("/tmp/tc-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("d.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        listener.set_nonblocking(true).unwrap();
        let server = std::thread::spawn(move || {
            let deadline = Instant::now() + LIMIT;
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => panic!("no client came: {e}"),
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(LIMIT)).unwrap();
            script(BufReader::new(stream));
        });
        Fake { addr: format!("unix://{}", sock.display()), dir, server: Some(server) }
    }

    /// `tomtectl --socket ADDR args…`, killed (and the test failed) if it runs past LIMIT;
    /// then the server's own checks.
    fn run(mut self, args: &[&str]) -> Output {
        let out = tomtectl(&[&["--socket", self.addr.as_str()], args].concat());
        if let Some(server) = self.server.take() {
            if let Err(panic) = server.join() {
                std::panic::resume_unwind(panic);
            }
        }
        out
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tomtectl(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tomtectl"))
        .args(args)
        .env_remove("TOMTE_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tomtectl {args:?} still running after {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads one JSON-RPC request line.
fn request(r: &mut BufReader<UnixStream>) -> serde_json::Value {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"))
}

fn send(r: &mut BufReader<UnixStream>, v: serde_json::Value) {
    let mut line = v.to_string();
    line.push('\n');
    r.get_mut().write_all(line.as_bytes()).unwrap();
}

fn answer(r: &mut BufReader<UnixStream>, req: &serde_json::Value, result: serde_json::Value) {
    send(r, serde_json::json!({"jsonrpc": "2.0", "id": req["id"], "result": result}));
}

fn event(name: &str, time: &str, data: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"jsonrpc": "2.0", "method": "daemon.event", "params": {"name": name, "data": data, "time": time}})
}

fn state(worker: &str, state: &str, pid: Option<i64>) -> serde_json::Value {
    serde_json::json!({"worker": worker, "state": state, "pid": pid, "last_exit": null})
}

/// Reads what the client sends until it hangs up.
fn drain(r: &mut BufReader<UnixStream>) {
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
}

#[test]
fn events_prints_each_event_in_order_and_exits_0_when_the_daemon_hangs_up() {
    let fake = Fake::new("events", |mut r| {
        let req = request(&mut r);
        assert_eq!(req["method"], "daemon.subscribe");
        assert_eq!(req["params"], serde_json::json!([["daemon.worker.*", "app.*"]]));
        // An event may come before the answer: it is kept, and printed first. Members are
        // printed in the order the daemon wrote them.
        let raw = |time: &str, data: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","method":"daemon.event","params":{{"name":"daemon.worker.state","data":{data},"time":"{time}"}}}}"#
            )
        };
        let spindown = r#"{"worker":"alpha","state":"spindown","pid":41,"last_exit":null}"#;
        writeln!(r.get_mut(), "{}", raw("T1", spindown)).unwrap();
        answer(&mut r, &req, serde_json::json!({"subscribed": ["daemon.worker.*", "app.*"]}));
        let spinup = r#"{"worker":"alpha","state":"spinup","pid":null,"last_exit":"killed by SIGKILL"}"#;
        writeln!(r.get_mut(), "{}", raw("T2", spinup)).unwrap();
        send(&mut r, serde_json::json!({"jsonrpc": "2.0", "method": "daemon.other", "params": {}}));
        send(&mut r, event("app.note", "T3", serde_json::json!("two\nlines")));
        // Then the daemon stops: the connection closes.
    });
    let out = fake.run(&["events", "daemon.worker.*", "app.*"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "T1 daemon.worker.state {\"worker\":\"alpha\",\"state\":\"spindown\",\"pid\":41,\"last_exit\":null}\n\
         T2 daemon.worker.state {\"worker\":\"alpha\",\"state\":\"spinup\",\"pid\":null,\"last_exit\":\"killed by SIGKILL\"}\n\
         T3 app.note \"two\\nlines\"\n"
    );
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn events_subscribes_to_everything_by_default_and_json_prints_the_params() {
    let fake = Fake::new("events-json", |mut r| {
        let req = request(&mut r);
        assert_eq!(req["params"], serde_json::json!([["*"]]), "the default pattern");
        answer(&mut r, &req, serde_json::json!({"subscribed": ["*"]}));
        send(&mut r, event("daemon.worker.state", "T1", state("beta", "looping", Some(7))));
    });
    let out = fake.run(&["--json", "events"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        lines,
        [serde_json::json!({"name": "daemon.worker.state", "data": state("beta", "looping", Some(7)), "time": "T1"})]
    );
}

#[test]
fn a_dropped_subscriber_exits_1_naming_the_reason() {
    let fake = Fake::new("dropped", |mut r| {
        let req = request(&mut r);
        answer(&mut r, &req, serde_json::json!({"subscribed": ["*"]}));
        send(&mut r, event("daemon.worker.state", "T1", state("alpha", "paused", Some(9))));
        let dropped = serde_json::json!({"jsonrpc": "2.0", "method": "daemon.dropped",
            "params": {"reason": "more than 1 MiB of events unsent"}});
        send(&mut r, dropped);
        // tomtectl leaves on the notice, without waiting for the close.
        drain(&mut r);
    });
    let out = fake.run(&["events"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).starts_with("T1 daemon.worker.state "), "{}", text(&out.stdout));
    assert_eq!(text(&out.stderr), "tomtectl: the daemon dropped this subscriber: more than 1 MiB of events unsent\n");
}

#[test]
fn a_refused_subscription_is_an_rpc_error() {
    let fake = Fake::new("refused", |mut r| {
        let req = request(&mut r);
        let fault = serde_json::json!({"code": -32601, "message": "Method not found", "data": "daemon.subscribe"});
        send(&mut r, serde_json::json!({"jsonrpc": "2.0", "id": req["id"], "error": fault}));
    });
    let out = fake.run(&["events"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error -32601: Method not found"), "{}", text(&out.stderr));
}

fn log(level: &str, worker: Option<&str>, message: &str) -> serde_json::Value {
    serde_json::json!({"level": level, "target": "pool", "worker": worker, "message": message})
}

#[test]
fn logs_follow_prints_the_records_of_one_worker_at_a_level_or_above() {
    let fake = Fake::new("logs", |mut r| {
        let req = request(&mut r);
        assert_eq!(req["params"], serde_json::json!([["daemon.log"]]));
        answer(&mut r, &req, serde_json::json!({"subscribed": ["daemon.log"]}));
        for (t, record) in [
            ("T1", log("info", Some("alpha"), "hello from alpha")),
            ("T2", log("info", Some("beta"), "hello from beta")),
            ("T3", log("info", None, "pool ready")),
            ("T4", log("debug", Some("alpha"), "noise")),
            ("T5", log("error", Some("alpha"), "worker alpha panicked: boom")),
        ] {
            send(&mut r, event("daemon.log", t, record));
        }
    });
    let out = fake.run(&["logs", "-f", "--worker", "alpha", "--level", "info"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "T1 INFO  [alpha] pool: hello from alpha\nT5 ERROR [alpha] pool: worker alpha panicked: boom\n"
    );
}

#[test]
fn logs_without_follow_says_there_is_no_history_and_sends_nothing() {
    let out = tomtectl(&["--socket", "unix:///nonexistent-dir/d.sock", "logs", "--worker", "alpha"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("keeps no log history") && err.contains("logs -f"), "{err}");
    assert!(!err.contains("cannot connect"), "nothing was tried: {err}");
}

fn health(ready: bool, failing: &[&str]) -> serde_json::Value {
    let mut checks = vec![serde_json::json!({"name": "started", "ok": true, "detail": "since T0"})];
    for name in ["worker:alpha", "worker:beta"] {
        let ok = !failing.contains(&name);
        checks.push(serde_json::json!({"name": name, "ok": ok, "detail": if ok { "looping" } else { "failed" }}));
    }
    serde_json::json!({"status": if ready { "ok" } else { "fail" }, "live": true, "ready": ready, "checks": checks})
}

fn health_of(tag: &str, answer_with: serde_json::Value, args: &[&str]) -> Output {
    let fake = Fake::new(tag, move |mut r| {
        let req = request(&mut r);
        assert_eq!(req["method"], "daemon.health");
        answer(&mut r, &req, answer_with);
        drain(&mut r);
    });
    fake.run(args)
}

#[test]
fn health_exits_0_when_ready_and_1_when_not_naming_the_failing_checks() {
    let out = health_of("health-ok", health(true, &[]), &["health"]);
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "ready\n".to_owned()));

    let out = health_of("health-v", health(true, &[]), &["health", "--verbose"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        "ready\n  ok    started: since T0\n  ok    worker:alpha: looping\n  ok    worker:beta: looping\n"
    );

    let out = health_of("health-fail", health(false, &["worker:alpha"]), &["health"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "not ready\n  FAIL  worker:alpha: failed\n");

    let out = health_of("health-json", health(false, &["worker:beta"]), &["--json", "health"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v, health(false, &["worker:beta"]));
}

#[test]
fn health_exits_1_when_nothing_listens_or_the_daemon_has_no_health() {
    let out = tomtectl(&["--socket", "unix:///nonexistent-dir/d.sock", "health"]);
    assert_eq!(out.status.code(), Some(1), "1, not 2: a probe asks one question");
    assert!(text(&out.stderr).contains("cannot connect to unix:///nonexistent-dir/d.sock"), "{}", text(&out.stderr));

    let fake = Fake::new("health-old", |mut r| {
        let req = request(&mut r);
        let fault = serde_json::json!({"code": -32601, "message": "Method not found"});
        send(&mut r, serde_json::json!({"jsonrpc": "2.0", "id": req["id"], "error": fault}));
    });
    let out = fake.run(&["health"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("-32601"), "{}", text(&out.stderr));
}

const EXPOSITION: &str = "# HELP tomte_rpc_calls_total Calls served.\n\
# TYPE tomte_rpc_calls_total counter\n\
tomte_rpc_calls_total{method=\"daemon.status\",outcome=\"ok\"} 12\n\
tomte_rpc_calls_total{method=\"daemon.status\",outcome=\"fault\"} 1\n\
# TYPE tomte_rpc_call_duration_seconds histogram\n\
tomte_rpc_call_duration_seconds_bucket{method=\"daemon.status\",le=\"0.0001\"} 13\n\
tomte_rpc_call_duration_seconds_bucket{method=\"daemon.status\",le=\"+Inf\"} 13\n\
tomte_connections{listener=\"unix:///run/d.sock\"} 2\n\
tomte_worker_up{worker=\"alpha\"} 1\n\
tomte_worker_restarts_total{worker=\"alpha\"} 3\n\
process_open_fds 9\n";

/// Reads an HTTP request head; its lines.
fn http_head(r: &mut BufReader<UnixStream>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            return lines;
        }
        lines.push(line);
    }
}

/// Serves one GET /metrics: checks the head with `check`, answers `status` with EXPOSITION
/// in two chunks.
fn metrics_fake(tag: &str, status: &'static str, check: fn(&[String])) -> Fake {
    Fake::new(tag, move |mut r| {
        let head = http_head(&mut r);
        assert_eq!(head[0], "GET /metrics HTTP/1.1");
        check(&head);
        let (a, b) = EXPOSITION.split_at(100);
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        );
        r.get_mut().write_all(reply.as_bytes()).unwrap();
        drain(&mut r);
    })
}

#[test]
fn metrics_shows_a_table_from_get_metrics() {
    let fake = metrics_fake("metrics", "200 OK", |head| {
        assert!(!head.iter().any(|h| h.to_ascii_lowercase().starts_with("authorization")), "{head:?}");
    });
    let out = fake.run(&["metrics"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let table = text(&out.stdout);
    let words = |start: &str| -> Vec<String> {
        let line = table.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no {start}:\n{table}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(words("METHOD"), ["METHOD", "OK", "FAULT", "TOTAL", "P50", "P99"]);
    assert_eq!(words("daemon.status"), ["daemon.status", "12", "1", "13", "50µs", "99µs"]);
    assert_eq!(words("unix://"), ["unix:///run/d.sock", "2", "-"]);
    assert_eq!(words("alpha"), ["alpha", "yes", "-", "3", "-", "-", "-"]);
    assert_eq!(words("PROCESS"), ["PROCESS", "open", "fds", "9"]);
}

#[test]
fn metrics_raw_prints_the_exposition_and_a_token_goes_in_a_header() {
    let fake = metrics_fake("metrics-raw", "200 OK", |head| {
        assert!(head.contains(&"Authorization: Bearer s3cret".to_owned()), "{head:?}");
    });
    let token = fake.dir.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let out = fake.run(&["--token-file", token.to_str().unwrap(), "metrics", "--raw"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), EXPOSITION);
}

#[test]
fn a_refused_scrape_exits_2_with_the_status() {
    let out = metrics_fake("metrics-403", "403 Forbidden", |_| {}).run(&["metrics"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("HTTP 403 Forbidden"), "{}", text(&out.stderr));
}
