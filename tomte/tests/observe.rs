//! What the daemon shows of itself, for real: health probes with curl, events pushed to NDJSON
//! subscribers and streamed as server-sent events, a subscriber that does not read dropped, the
//! GET routes refused to a local user without `read`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value as J;

/// `curl -s -o BODY -w STATUS URL` (extra arguments first): the status and the body.
fn curl(args: &[&str], url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed");
    let all = text(&out.stdout);
    let (body, status) = all.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

fn tcp_daemon(example: &str, extra: &[&str], env: &[(&str, &str)]) -> (Daemon, u16) {
    let port = free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let mut args = vec!["--socket", &addr];
    args.extend_from_slice(extra);
    let mut d = Daemon::new(example, &args);
    for (k, v) in env {
        d = d.with_env(k, v);
    }
    (d.start(), port)
}

/// A connection subscribed to `patterns`, its answer read.
fn subscribe(d: &Daemon, patterns: &[&str]) -> BufReader<UnixStream> {
    let mut r = BufReader::new(d.connect());
    let params = serde_json::to_string(&[patterns]).unwrap();
    let answer =
        json(&ndjson(&mut r, &format!(r#"{{"jsonrpc":"2.0","method":"daemon.subscribe","params":{params},"id":1}}"#)));
    assert_eq!(answer["result"]["subscribed"], serde_json::json!(patterns), "{answer}");
    r
}

/// The next `daemon.event` notification's params.
fn next_event(r: &mut BufReader<UnixStream>) -> J {
    let mut line = String::new();
    r.read_line(&mut line).expect("an event before the read timeout");
    let n = json(&line);
    assert_eq!(n["method"], "daemon.event", "{n}");
    assert!(n.get("id").is_none(), "a notification has no id: {n}");
    n["params"].clone()
}

/// Events of worker `name` until one in state `last`: their states, in order.
fn states_until(r: &mut BufReader<UnixStream>, name: &str, last: &str) -> Vec<J> {
    let mut seen = Vec::new();
    while seen.last().is_none_or(|e: &J| e["state"] != last) {
        let e = next_event(r);
        assert_eq!(e["name"], "daemon.worker.state", "{e}");
        if e["data"]["worker"] == name {
            seen.push(e["data"].clone());
        }
        assert!(seen.len() < 20, "no {last} among {seen:?}");
    }
    seen
}

#[test]
fn livez_readyz_and_daemon_health_answer_and_readiness_follows_a_failed_worker() {
    let (d, port) = tcp_daemon("pool", &[], &[("POOL_CRASH_LIMIT", "1"), ("POOL_BACKOFF_MS", "50")]);
    let _reaper = pids(&d);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    assert_eq!(curl(&[], &url("/livez")), (200, "{\"status\":\"ok\"}\n".to_owned()));
    until("ready", Duration::from_secs(20), || curl(&[], &url("/readyz")).0 == 200);
    let (_, verbose) = curl(&[], &url("/readyz?verbose"));
    let checks = json(&verbose)["checks"].clone();
    let names: Vec<&str> = checks.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["started", "stopping", "worker:alpha", "worker:beta"], "{verbose}");
    let health = call(&d, "daemon.health", "[]")["result"].clone();
    assert_eq!(
        (health["status"].clone(), health["live"].clone(), health["ready"].clone()),
        ("ok".into(), true.into(), true.into())
    );

    // Killed until its crash-loop limit gives up on it: failed, and the daemon not ready.
    until("alpha failed", Duration::from_secs(60), || {
        let w = worker(&d, "alpha");
        if let Some(pid) = w["pid"].as_i64() {
            kill(pid as i32, libc::SIGKILL);
        }
        w["state"] == "failed"
    });
    let (status, body) = curl(&[], &url("/readyz?verbose"));
    assert_eq!(status, 503, "{body}");
    let alpha =
        json(&body)["checks"].as_array().unwrap().iter().find(|c| c["name"] == "worker:alpha").cloned().unwrap();
    assert_eq!((alpha["ok"].clone(), alpha["detail"].clone()), (false.into(), "failed".into()), "{body}");
    assert_eq!(json(&body)["status"], "fail");
    assert_eq!(call(&d, "daemon.health", "[]")["result"]["ready"], false);
    assert_eq!(curl(&[], &url("/livez")).0, 200, "still live");

    assert_eq!(call(&d, "worker.start", r#"["alpha"]"#)["result"], true);
    until("ready again", Duration::from_secs(20), || curl(&[], &url("/readyz")).0 == 200);
    let _reaper2 = pids(&d);
}

#[test]
fn a_subscriber_sees_a_killed_workers_states_in_order_and_unsubscribes() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    until("alpha looping", Duration::from_secs(20), || worker(&d, "alpha")["state"] == "looping");
    let mut sub = subscribe(&d, &["daemon.worker.*"]);
    let pid = worker(&d, "alpha")["pid"].as_i64().unwrap();
    kill(pid as i32, libc::SIGKILL);
    // A late report of the old process's start (its status frame can trail the word that
    // `worker.list` read) may come first: what counts begins with the kill's backoff.
    let mut seen = states_until(&mut sub, "alpha", "looping");
    while seen.len() > 1 && seen[0]["pid"] == pid && seen[0]["state"] != "backoff" {
        seen.remove(0);
    }
    if seen.len() == 1 && seen[0]["pid"] == pid {
        seen = states_until(&mut sub, "alpha", "looping");
    }
    let states: Vec<&str> = seen.iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["backoff", "spinup", "looping"], "{seen:?}");
    assert_eq!(seen[0]["last_exit"], "killed by SIGKILL");
    assert!(seen[0]["pid"].is_null());
    let new_pid = seen[1]["pid"].as_i64().unwrap();
    assert_ne!(new_pid, pid);
    assert_eq!(seen[2]["pid"], new_pid);
    let _reaper2 = pids(&d);

    // Pause and resume through another connection: both pushed, then nothing after unsubscribing.
    call(&d, "worker.pause", r#"["beta"]"#);
    assert_eq!(states_until(&mut sub, "beta", "paused").last().unwrap()["state"], "paused");
    sub.get_mut().write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.unsubscribe\",\"id\":2}\n").unwrap();
    loop {
        // Events pushed before the answer may come first.
        let mut line = String::new();
        sub.read_line(&mut line).unwrap();
        let v = json(&line);
        if v["id"] == 2 {
            assert_eq!(v["result"]["subscribed"], serde_json::json!([]), "{v}");
            break;
        }
        assert_eq!(v["method"], "daemon.event", "{v}");
    }
    call(&d, "worker.resume", r#"["beta"]"#);
    until("beta looping", Duration::from_secs(20), || worker(&d, "beta")["state"] == "looping");
    sub.get_mut().set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut rest = String::new();
    let _ = sub.read_line(&mut rest);
    assert_eq!(rest, "", "nothing is pushed after daemon.unsubscribe");
    assert_eq!(call(&d, "daemon.status", "[]")["result"]["name"], "pool");
}

#[test]
fn a_followed_log_shows_a_restarted_workers_spinup_line() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    let mut sub = subscribe(&d, &["daemon.log"]);
    call(&d, "worker.restart", r#"["alpha"]"#);
    let mut seen = Vec::new();
    loop {
        let e = next_event(&mut sub);
        assert_eq!(e["name"], "daemon.log");
        let data = e["data"].clone();
        assert!(data["level"].is_string() && data["target"].is_string() && data["message"].is_string(), "{data}");
        if data["worker"] == "alpha" && data["message"] == "hello from alpha" {
            assert_eq!(data["level"], "info");
            break;
        }
        seen.push(data);
        assert!(seen.len() < 200, "no spinup line among {seen:?}");
    }
    let _reaper2 = pids(&d);
}

#[test]
fn server_sent_events_stream_worker_states_over_http() {
    let (d, port) = tcp_daemon("pool", &["--allow", "anonymous=all"], &[]);
    let _reaper = pids(&d);
    until("beta looping", Duration::from_secs(20), || worker(&d, "beta")["state"] == "looping");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /events?pattern=daemon.worker.%2A HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        r.read_line(&mut head).unwrap();
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
    // curl, a client nobody here wrote, does the pause.
    let (status, body) = curl(
        &[
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"jsonrpc":"2.0","method":"worker.pause","params":["beta"],"id":1}"#,
        ],
        &format!("http://127.0.0.1:{port}/"),
    );
    assert_eq!((status, json(&body)["result"].clone()), (200, J::Bool(true)), "{body}");
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let frame = json(line.strip_prefix("data: ").unwrap_or_else(|| panic!("an SSE data line: {line:?}")));
    assert_eq!(frame["name"], "daemon.worker.state");
    assert_eq!((frame["data"]["worker"].clone(), frame["data"]["state"].clone()), ("beta".into(), "paused".into()));
    assert!(frame["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')), "{frame}");
    let mut blank = String::new();
    r.read_line(&mut blank).unwrap();
    assert_eq!(blank, "\n", "each frame ends with an empty line");

    // curl -N follows the stream the same way.
    let (status, body) =
        curl(&["-N", "--max-time", "2"], &format!("http://127.0.0.1:{port}/events?pattern=daemon.worker.state"));
    assert_eq!(status, 200, "{body}");
    call(&d, "worker.resume", r#"["beta"]"#);
}

#[test]
fn a_subscriber_that_never_reads_is_dropped_and_the_others_are_served() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    let mut stuck = subscribe(&d, &["*"]);
    let mut reader = subscribe(&d, &["app.flood"]);
    // Another client emits events as fast as it is answered: well past the 1 MiB the stuck
    // subscriber may leave unread, and its socket's buffers.
    let mut c = BufReader::new(d.connect());
    let mut batch = String::new();
    for i in 0..200 {
        batch.push_str(&format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"chaos.emit\",\"params\":[\"app.flood\"],\"id\":{i}}}\n"
        ));
    }
    let mut answered = 0;
    let mut got = 0;
    for _ in 0..100 {
        c.get_mut().write_all(batch.as_bytes()).unwrap();
        for _ in 0..200 {
            let mut line = String::new();
            c.read_line(&mut line).unwrap();
            assert!(line.contains("\"result\""), "{line}");
            answered += 1;
        }
        // The subscriber that reads gets every one of them, in order.
        for _ in 0..200 {
            assert_eq!(next_event(&mut reader)["name"], "app.flood");
            got += 1;
        }
    }
    assert_eq!((answered, got), (20_000, 20_000));
    // The stuck one: what it reads now ends with the notice, then its connection closes.
    let mut all = Vec::new();
    stuck.read_to_end(&mut all).expect("the stuck subscriber's connection ends");
    let all = text(&all);
    let last = all.lines().last().unwrap_or_default();
    let notice = json(last);
    assert_eq!(notice["method"], "daemon.dropped", "{last}");
    assert!(notice["params"]["reason"].as_str().unwrap().contains("unread"), "{notice}");
    assert!(all.lines().count() < 20_000, "dropped well before the flood ended");
    for l in all.lines() {
        json(l); // every line whole: the cut falls between two events
    }
    assert!(d.log_text().contains("dropping the subscriber"), "{}", d.log_text());
    assert_eq!(call(&d, "daemon.status", "[]")["result"]["name"], "chaos");
}

#[test]
fn subscribing_needs_ndjson_and_the_get_routes_need_read() {
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::new("echo", &["--socket", &tcp, "--socket-mode", "0666"]).start();
    // Over HTTP POST there is no way to push: refused with the way that works.
    let (status, body) = curl(
        &[
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"jsonrpc":"2.0","method":"daemon.subscribe","params":[["*"]],"id":1}"#,
        ],
        &format!("http://127.0.0.1:{port}/"),
    );
    assert_eq!(status, 200);
    let e = json(&body)["error"].clone();
    assert_eq!(e["code"], -32600, "{body}");
    assert!(e["data"].as_str().unwrap().contains("GET /events"), "{body}");
    // Bad patterns are refused naming the fault.
    let mut r = BufReader::new(d.connect());
    let a = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.subscribe","params":[["a*b"]],"id":1}"#));
    assert_eq!(a["error"]["code"], -32602, "{a}");
    assert_eq!(curl(&[], &format!("http://127.0.0.1:{port}/events?pattern=a*b")).0, 400);
    // Unknown pages are 404, the dashboard without --dashboard too, other methods 405.
    let (status, body) = curl(&[], &format!("http://127.0.0.1:{port}/nothing"));
    assert_eq!(status, 404, "{body}");
    let (status, body) = curl(&[], &format!("http://127.0.0.1:{port}/"));
    assert_eq!(status, 404);
    assert!(body.contains("--dashboard"), "{body}");
    assert_eq!(curl(&["-X", "DELETE"], &format!("http://127.0.0.1:{port}/metrics")).0, 405);

    // Another local user may connect (mode 0666) but holds no permission: every route is 403.
    let sock = d.sock.display().to_string();
    for path in ["/metrics", "/readyz", "/livez", "/events"] {
        let out = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "curl", "-s", "--max-time", "10"])
            .args(["-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", &sock])
            .arg(format!("http://localhost{path}"))
            .output()
            .expect("setpriv and curl");
        assert_eq!(text(&out.stdout), "403", "{path} as nobody: {}", text(&out.stderr));
    }
    // The daemon's own user holds read on its socket.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", &sock])
        .arg("http://localhost/livez")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "200");
}

#[test]
fn log_events_need_control_and_wider_patterns_skip_them_without_it() {
    let (d, port) = tcp_daemon("pool", &[], &[]);
    let _reaper = pids(&d);
    let tcp = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        BufReader::new(s)
    };
    // An anonymous TCP client holds read and call: not control.
    let mut r = tcp();
    let a = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.subscribe","params":[["daemon.log"]],"id":1}"#));
    assert_eq!(a["error"]["code"], -32001, "{a}");
    assert!(a["error"]["data"].as_str().unwrap().contains("'control'"), "{a}");
    assert_eq!(curl(&[], &format!("http://127.0.0.1:{port}/events?pattern=daemon.log")).0, 403);
    let a = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.subscribe","params":[["*"]],"id":2}"#));
    assert_eq!(a["result"]["subscribed"], serde_json::json!(["*"]), "{a}");
    call(&d, "worker.restart", r#"["beta"]"#);
    let mut names = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let e = json(&line)["params"].clone();
        names.push(e["name"].as_str().unwrap().to_owned());
        if e["data"]["worker"] == "beta" && e["data"]["state"] == "looping" {
            break;
        }
        assert!(names.len() < 50, "{names:?}");
    }
    assert!(!names.iter().any(|n| n == "daemon.log"), "{names:?}");
    // The daemon's own user (the unix socket) gets them.
    let mut own = subscribe(&d, &["*"]);
    call(&d, "worker.restart", r#"["beta"]"#);
    until("a log event", Duration::from_secs(20), || next_event(&mut own)["name"] == "daemon.log");
    let _reaper2 = pids(&d);
}

#[test]
fn a_subscriber_hears_clients_connect_and_hang_up_without_any_listener() {
    let d = Daemon::new("echo", &[]).start();
    let mut sub = subscribe(&d, &["daemon.socket.*"]);
    drop(d.connect());
    let connect = next_event(&mut sub);
    assert_eq!(connect["name"], "daemon.socket.client.connect", "{connect}");
    let hangup = next_event(&mut sub);
    assert_eq!(hangup["name"], "daemon.socket.client.hangup", "{hangup}");
    assert_eq!(connect["data"], hangup["data"], "the same peer");
}

#[test]
fn a_link_from_another_site_opens_the_dashboard_but_nothing_else_crosses() {
    let port = free_port();
    let _d = Daemon::new("echo", &["--socket", &format!("tcp://127.0.0.1:{port}"), "--dashboard"]).start();
    let url = format!("http://127.0.0.1:{port}/");
    let nav = ["-H", "Sec-Fetch-Site: cross-site", "-H", "Sec-Fetch-Mode: navigate", "-H", "Sec-Fetch-Dest: document"];
    // A followed link: the browser says navigate/document, and sends no Origin on a GET.
    let (status, body) = curl(&nav, &url);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<html") || body.contains("<!doctype"), "{body:.200}");
    // A script's fetch from that site, an embedded document, and a form posted from it stay refused.
    let fetch = ["-H", "Sec-Fetch-Site: cross-site", "-H", "Sec-Fetch-Mode: cors", "-H", "Sec-Fetch-Dest: empty"];
    assert_eq!(curl(&fetch, &format!("{url}metrics")).0, 403);
    let frame = ["-H", "Sec-Fetch-Site: cross-site", "-H", "Sec-Fetch-Mode: navigate", "-H", "Sec-Fetch-Dest: iframe"];
    assert_eq!(curl(&frame, &url).0, 403);
    let mut post = nav.to_vec();
    post.extend(["-H", "Origin: http://evil.example", "-H", "Content-Type: text/plain"]);
    post.extend(["-d", r#"{"jsonrpc":"2.0","method":"daemon.shutdown","id":1}"#]);
    assert_eq!(curl(&post, &url).0, 403);
    let mut with_origin = nav.to_vec();
    with_origin.extend(["-H", "Origin: http://evil.example"]);
    assert_eq!(curl(&with_origin, &url).0, 403, "a GET that carries another Origin is a script's");
}
