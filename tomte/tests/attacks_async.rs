//! Hostile clients against async handlers and typed methods, on real daemons: what they sent
//! before hanging up half-way is still answered, and nothing they do leaves tasks behind.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use common::*;

/// `daemon.status`'s count of answers owed by async handlers.
fn tasks(d: &Daemon) -> i64 {
    call(d, "daemon.status", "[]")["result"]["tasks"].as_i64().expect("daemon.status reports tasks")
}

/// Everything the daemon sends until it closes the connection.
fn read_to_end(mut s: std::os::unix::net::UnixStream) -> String {
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read until the daemon closes");
    text(&all)
}

/// `printf 'call\ncall\n' | nc -U sock`: the client sends its calls, shuts its sending half
/// (as nc does at the end of its input) and reads. Every call is answered, in order — those
/// behind an async one too, and a last line without its newline.
#[test]
fn calls_pipelined_behind_an_async_one_are_answered_when_the_client_half_closes() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    let mut s = d.connect();
    let calls = [
        r#"{"jsonrpc":"2.0","method":"chaos.sleep","params":[50],"id":1}"#,
        r#"{"jsonrpc":"2.0","method":"daemon.status","id":2}"#,
        r#"{"jsonrpc":"2.0","method":"chaos.sleep","params":[20],"id":3}"#,
        r#"{"jsonrpc":"2.0","method":"chaos.sleep","params":[10]}"#,
        r#"{"jsonrpc":"2.0","method":"daemon.status","id":4}"#,
    ];
    s.write_all(calls.join("\n").as_bytes()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let answers = read_to_end(s);
    let ids: Vec<i64> = answers.lines().map(|l| json(l)["id"].as_i64().unwrap_or(-1)).collect();
    assert_eq!(ids, [1, 2, 3, 4], "{answers}");
    assert_eq!(tasks(&d), 0);
}

/// The same over HTTP keep-alive: two requests, the first async, then the half-close.
#[test]
fn http_requests_pipelined_behind_an_async_one_are_answered_when_the_client_half_closes() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    let mut s = d.connect();
    let first = http_post("application/json", r#"{"jsonrpc":"2.0","method":"chaos.sleep","params":[50],"id":1}"#);
    let second = http_post("application/json", r#"{"jsonrpc":"2.0","method":"daemon.status","id":2}"#);
    s.write_all(format!("{first}{second}").as_bytes()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let answers = read_to_end(s);
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 2, "{answers}");
    let first_at = answers.find(r#""id":1"#).expect("the async answer");
    let second_at = answers.find(r#""id":2"#).expect("the answer behind it");
    assert!(first_at < second_at, "{answers}");
}

/// A client pipelines hundreds of async calls and hangs up: the one running is dropped, the
/// rest never start.
#[test]
fn hundreds_of_pipelined_async_calls_then_a_hang_up_leave_no_task() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    let mut s = d.connect();
    let mut calls = String::new();
    for i in 0..500 {
        calls.push_str(&format!("{{\"jsonrpc\":\"2.0\",\"method\":\"chaos.sleep\",\"params\":[600000],\"id\":{i}}}\n"));
    }
    s.write_all(calls.as_bytes()).unwrap();
    until("one call runs", Duration::from_secs(10), || tasks(&d) == 1);
    drop(s);
    until("no task left", Duration::from_secs(10), || tasks(&d) == 0);
    assert_eq!(call(&d, "chaos.sleep", "[1]")["result"], "slept");
}

/// A token presented in a call served right after an async answer (pipelined behind it) is
/// the connection's identity from then on, as it is anywhere else: not only for the calls
/// that came with it.
#[test]
fn a_token_presented_behind_an_async_call_holds_for_the_later_calls() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("atk-tokens");
    let tokens = dir.path("tokens");
    std::fs::write(&tokens, "ops 0p5-s3cret-0f-the-0ps-team\nadmin r00t-t0ken-with-every-permission\n").unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = free_port();
    let tokens = tokens.display().to_string();
    let d = Daemon::new(
        "chaos",
        &["--socket", &format!("tcp://127.0.0.1:{port}"), "--token-file", &tokens, "--allow", "token:ops=read,call"],
    )
    .start();
    let _reaper = pids(&d);
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s);
    let calls = [
        r#"{"jsonrpc":"2.0","method":"daemon.auth","params":["0p5-s3cret-0f-the-0ps-team"],"id":0}"#,
        r#"{"jsonrpc":"2.0","method":"chaos.sleep","params":[30],"id":1}"#,
        r#"{"jsonrpc":"2.0","method":"daemon.auth","params":["r00t-t0ken-with-every-permission"],"id":2}"#,
    ];
    r.get_mut().write_all(format!("{}\n", calls.join("\n")).as_bytes()).unwrap();
    for id in 0..3 {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let v = json(&line);
        assert_eq!(v["id"], id, "{v}");
        assert!(v["result"].is_boolean() || v["result"] == "slept", "{v}");
    }
    // Sent after those answers: admin's call.
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.reload","id":3}"#));
    assert!(v["result"]["applied"].is_array(), "admin may reload: {v}");
}

/// A request too big for a worker's channel is refused; the memory of encoding it does not
/// stay with the daemon (one client call would otherwise pin up to `--max-message` for good).
#[test]
fn a_request_too_big_for_a_worker_leaves_no_memory_behind() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    let pid = d.pid().unwrap();
    until("alpha running", Duration::from_secs(20), || worker(&d, "alpha")["state"] == "looping");
    let before = status_kb(pid, "RssAnon");
    let big = "x".repeat(12 << 20);
    let mut r = std::io::BufReader::new(d.connect());
    let v = json(&ndjson(&mut r, &format!(r#"{{"jsonrpc":"2.0","method":"pool.echo","params":["{big}"],"id":1}}"#)));
    assert!(v["error"]["data"].as_str().is_some_and(|d| d.contains("can never be sent")), "{}", &v.to_string()[..200]);
    drop(r);
    // Freed memory goes back to the system once the loop has been quiet a second.
    let settled = wait_for(Duration::from_secs(15), || status_kb(pid, "RssAnon") < before + (4 << 10));
    assert!(settled, "RssAnon {} kB before, {} kB after", before, status_kb(pid, "RssAnon"));
}
