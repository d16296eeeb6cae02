//! JSON-RPC over NDJSON and HTTP on real sockets: the specification's examples, many clients at
//! once, stuck clients, limits, and clients nobody here wrote (curl, socat).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The specification's examples (jsonrpc.org/specification §7): request, expected response.
/// The `data` member of errors is ours (details) and is ignored in the comparison.
const SPEC: &[(&str, Option<&str>)] = &[
    (
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}"#,
        Some(r#"{"jsonrpc": "2.0", "result": 19, "id": 1}"#),
    ),
    (
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}"#,
        Some(r#"{"jsonrpc": "2.0", "result": -19, "id": 2}"#),
    ),
    (
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}"#,
        Some(r#"{"jsonrpc": "2.0", "result": 19, "id": 3}"#),
    ),
    (
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}"#,
        Some(r#"{"jsonrpc": "2.0", "result": 19, "id": 4}"#),
    ),
    (r#"{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}"#, None),
    (r#"{"jsonrpc": "2.0", "method": "foobar"}"#, None),
    (
        r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#,
        Some(r#"{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}"#),
    ),
    (
        r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
        Some(r#"{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}"#),
    ),
    (
        r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#,
        Some(r#"{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}"#),
    ),
    (
        r#"[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method"]"#,
        Some(r#"{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}"#),
    ),
    ("[]", Some(r#"{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}"#)),
    ("[1]", Some(r#"[{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}]"#)),
    (
        "[1,2,3]",
        Some(
            r#"[{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}]"#,
        ),
    ),
    (
        r#"[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},{"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},{"foo": "boo"},{"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},{"jsonrpc": "2.0", "method": "get_data", "id": "9"}]"#,
        Some(
            r#"[{"jsonrpc": "2.0", "result": 7, "id": "1"},{"jsonrpc": "2.0", "result": 19, "id": "2"},{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},{"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}]"#,
        ),
    ),
    (
        r#"[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]"#,
        None,
    ),
];

fn without_data(mut v: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            serde_json::Value::Object(o) => {
                if let Some(serde_json::Value::Object(e)) = o.get_mut("error") {
                    e.remove("data");
                }
            }
            _ => {}
        }
    }
    strip(&mut v);
    v
}

#[test]
fn specification_examples_over_ndjson() {
    let d = Daemon::new("spec", &[]).start();
    let mut r = BufReader::new(d.connect());
    for (request, expected) in SPEC {
        // Requests that answer nothing: a following ping's answer must come first.
        let line = request.replace('\n', " ");
        r.get_mut().write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        match expected {
            Some(e) => {
                r.read_line(&mut answer).unwrap();
                assert_eq!(without_data(json(&answer)), json(e), "for {request}");
            }
            None => {
                let ping = ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"get_data","id":"ping"}"#);
                assert_eq!(json(&ping)["id"], "ping", "{request} must get no answer");
            }
        }
    }
}

#[test]
fn specification_examples_over_http_with_keep_alive() {
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::new("spec", &["--socket", &tcp]).start();
    // Both listeners at once: unix (the fixture's) and TCP.
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(stream);
    for (request, expected) in SPEC {
        r.get_mut().write_all(http_post("application/json", request).as_bytes()).unwrap();
        let (status, headers, body) = http_response(&mut r);
        match expected {
            Some(e) => {
                assert_eq!(status, 200, "for {request}");
                assert!(headers.iter().any(|(k, v)| k == "content-type" && v == "application/json"));
                assert_eq!(without_data(json(&body)), json(e), "for {request}");
            }
            None => assert_eq!((status, body.as_str()), (204, ""), "for {request}"),
        }
    }
    drop(d);
}

#[test]
fn http_pipelining_and_connection_close() {
    let d = Daemon::new("echo", &[]).start();
    let mut s = d.connect();
    let one = http_post("application/json", r#"{"jsonrpc":"2.0","method":"my.echo","params":["a"],"id":1}"#);
    let two = http_post("application/json", r#"{"jsonrpc":"2.0","method":"my.echo","params":["b"],"id":2}"#);
    // Two requests in one write, the second asking to close.
    let two = two.replacen("Host: localhost\r\n", "Host: localhost\r\nConnection: close\r\n", 1);
    s.write_all(format!("{one}{two}").as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let (st1, _, b1) = http_response(&mut r);
    let (st2, h2, b2) = http_response(&mut r);
    assert_eq!((st1, st2), (200, 200));
    assert_eq!(json(&b1)["result"], "a");
    assert_eq!(json(&b2)["result"], "b");
    assert!(h2.iter().any(|(k, v)| k == "connection" && v == "close"));
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "connection must close after Connection: close");
}

#[test]
fn http_errors_close_only_the_faulty_connection() {
    let d = Daemon::new("echo", &["--max-message", "1024"]).start();
    let cases: &[(&str, u16)] = &[
        ("DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n", 413),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 2\r\n\r\n{}", 415),
        ("PO ST / HTTP/1.1\r\n\r\n", 400),
    ];
    let mut keeper = BufReader::new(d.connect());
    for (req, code) in cases {
        let mut s = d.connect();
        s.write_all(req.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let (status, _, body) = http_response(&mut r);
        assert_eq!(status, *code, "for {req:?}: {body}");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        // Everyone else is unaffected.
        let v = json(&ndjson(&mut keeper, r#"{"jsonrpc":"2.0","method":"my.echo","params":["still"],"id":1}"#));
        assert_eq!(v["result"], "still");
    }
}

#[test]
fn a_message_over_the_limit_gets_an_error_and_its_connection_closed() {
    let d = Daemon::new("echo", &["--max-message", "1024"]).start();
    let mut other = BufReader::new(d.connect());
    let mut s = d.connect();
    let big = format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":["{}"],"id":1}}"#, "x".repeat(4096));
    let _ = s.write_all(big.as_bytes());
    let _ = s.write_all(b"\n");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let v = json(&line);
    assert_eq!(v["error"]["code"], -32600);
    assert!(v["error"]["data"].as_str().unwrap().contains("1024"), "{line}");
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    let ok = json(&ndjson(&mut other, r#"{"jsonrpc":"2.0","method":"my.echo","params":["fine"],"id":2}"#));
    assert_eq!(ok["result"], "fine");
}

#[test]
fn a_hundred_clients_making_a_hundred_calls_each() {
    let d = Daemon::new("echo", &[]).start();
    let threads: Vec<_> = (0..100)
        .map(|c| {
            let sock = d.sock.clone();
            std::thread::spawn(move || {
                let s = UnixStream::connect(&sock).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut r = BufReader::new(s);
                for i in 0..100 {
                    let msg = format!("client {c} call {i}");
                    let req =
                        format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":{{"message":"{msg}"}},"id":{i}}}"#);
                    let v = json(&ndjson(&mut r, &req));
                    assert_eq!(v["result"], msg.as_str());
                    assert_eq!(v["id"], i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client failed");
    }
}

#[test]
fn a_stuck_client_does_not_delay_another() {
    let d = Daemon::new("echo", &[]).start();
    // A sends half a message and never finishes; B2 sends requests and never reads answers.
    let mut a = d.connect();
    a.write_all(br#"{"jsonrpc":"2.0","method":"my.ec"#).unwrap();
    let mut a_http = d.connect();
    a_http.write_all(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"").unwrap();
    let mut hog = d.connect();
    let req = format!("{}\n", r#"{"jsonrpc":"2.0","method":"my.echo","params":["flood"],"id":1}"#).repeat(2000);
    hog.write_all(req.as_bytes()).unwrap();
    // B is answered at once, every time.
    let mut b = BufReader::new(d.connect());
    b.get_ref().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 0..50 {
        let v = json(&ndjson(&mut b, &format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":["b{i}"],"id":{i}}}"#)));
        assert_eq!(v["result"], format!("b{i}"));
    }
    // A finishing its message is then answered too.
    a.write_all(b"ho\",\"params\":[\"late\"],\"id\":7}\n").unwrap();
    let mut ra = BufReader::new(a);
    let mut line = String::new();
    ra.read_line(&mut line).unwrap();
    assert_eq!(json(&line)["result"], "late");
}

#[test]
fn curl_and_socat_work_unchanged() {
    let port = free_port();
    let d = Daemon::new("echo", &["--socket", &format!("tcp://127.0.0.1:{port}")]).start();
    let body = r#"{"jsonrpc":"2.0","method":"my.echo","params":{"message":"via curl"},"id":1}"#;
    let unix = Command::new("curl")
        .args([
            "-sS",
            "--unix-socket",
            d.sock.to_str().unwrap(),
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            "http://localhost/",
        ])
        .output()
        .expect("curl is installed");
    assert!(unix.status.success(), "{}", text(&unix.stderr));
    assert_eq!(json(&text(&unix.stdout))["result"], "via curl");
    // A large body makes curl send `Expect: 100-continue`.
    let big = "y".repeat(200_000);
    let body = format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":["{big}"],"id":2}}"#);
    let file = d.dir.path("big.json");
    std::fs::write(&file, body).unwrap();
    let data = format!("@{}", file.display());
    let tcp = Command::new("curl")
        .args(["-sS", "--data-binary", &data, &format!("http://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    assert!(tcp.status.success(), "{}", text(&tcp.stderr));
    assert_eq!(json(&text(&tcp.stdout))["result"].as_str().map(str::len), Some(200_000));

    match Command::new("socat").arg("-V").output() {
        Ok(_) => {
            let mut socat = Command::new("socat")
                .args(["-t5", "-", &format!("UNIX-CONNECT:{}", d.sock.display())])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            socat
                .stdin
                .take()
                .unwrap()
                .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"my.echo\",\"params\":[\"via socat\"],\"id\":3}\n")
                .unwrap();
            let out = socat.wait_with_output().unwrap();
            assert_eq!(json(&text(&out.stdout))["result"], "via socat");
        }
        Err(_) => eprintln!("SKIPPED socat part: socat is not installed (.ci/run installs it)"),
    }
}

#[test]
fn tomtectl_prints_results_and_maps_errors_to_exit_codes() {
    let d = Daemon::new("echo", &[]).start();
    let sock = format!("unix://{}", d.sock.display());
    let ctl = |args: &[&str]| Command::new(binary("tomtectl")).arg("--socket").arg(&sock).args(args).output().unwrap();
    let out = ctl(&["call", "my.echo", "message=hi there"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "\"hi there\"");
    let out = ctl(&["call", "my.echo", r#"["json"]"#]);
    assert_eq!(text(&out.stdout).trim(), "\"json\"");
    let out = ctl(&["call", "no.such"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("-32601") && text(&out.stderr).contains("Method not found"));
    let out = ctl(&["--json", "status"]);
    let status = json(&text(&out.stdout));
    assert_eq!(status["pid"], d.pid().unwrap());
    assert_eq!(status["name"], "echo");
    let out = ctl(&["methods"]);
    assert!(text(&out.stdout).contains("my.echo") && text(&out.stdout).contains("I'm here to reply your data"));
    let out = ctl(&["help", "my.echo"]);
    assert!(text(&out.stdout).contains("my.echo(string) -> string"), "{}", text(&out.stdout));
    let out =
        Command::new(binary("tomtectl")).args(["--socket", "unix:///nonexistent/x.sock", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unix:///nonexistent/x.sock"), "must say where it tried");
    let pid = d.pid().unwrap();
    let out = ctl(&["shutdown"]);
    assert!(out.status.success());
    assert!(wait_for(Duration::from_secs(10), || !alive(pid)));
}

#[test]
fn introspection_over_the_wire() {
    let d = Daemon::new("echo", &[]).start();
    let mut r = BufReader::new(d.connect());
    let list = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"system.listMethods","id":1}"#));
    let names: Vec<&str> = list["result"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(
        &names[..6],
        [
            "system.getCapabilities",
            "system.listMethods",
            "system.methodHelp",
            "system.methodSignature",
            "system.multicall",
            "daemon.shutdown"
        ]
    );
    assert_eq!(names.last(), Some(&"my.echo"));
    let sig =
        json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"system.methodSignature","params":["my.echo"],"id":2}"#));
    assert_eq!(sig["result"], json(r#"[["string","string"]]"#));
    let help = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"system.methodHelp","params":["my.echo"],"id":3}"#));
    assert_eq!(help["result"], "I'm here to reply your data");
    let caps = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"system.getCapabilities","id":4}"#));
    assert_eq!(caps["result"]["json-rpc"]["specVersion"], 2);
    let multi = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"system.multicall","params":[[]],"id":5}"#));
    assert_eq!(multi["error"]["code"], -31000);
    let status = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.status","id":6}"#));
    assert_eq!(status["result"]["connections"], 1);
    assert_eq!(json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"worker.list","id":7}"#))["result"], json("[]"));
}

#[test]
fn connections_past_the_limit_are_refused_and_idle_ones_closed() {
    let d = Daemon::new("echo", &["--max-connections", "2", "--idle-timeout", "1"]).start();
    let mut a = BufReader::new(d.connect());
    let mut b = BufReader::new(d.connect());
    assert_eq!(json(&ndjson(&mut a, r#"{"jsonrpc":"2.0","method":"my.echo","params":["a"],"id":1}"#))["result"], "a");
    let mut third = BufReader::new(d.connect());
    let mut line = String::new();
    third.read_line(&mut line).unwrap();
    assert_eq!(json(&line)["error"]["code"], -32000, "{line}");
    assert!(line.contains("too many connections (limit 2)"));
    let mut rest = Vec::new();
    third.read_to_end(&mut rest).unwrap();
    assert_eq!(json(&ndjson(&mut b, r#"{"jsonrpc":"2.0","method":"my.echo","params":["b"],"id":2}"#))["result"], "b");
    // Both go quiet: the idle timeout closes them.
    let t = std::time::Instant::now();
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(500), "closed too early");
    drop(b);
}

#[test]
fn a_last_line_without_its_newline_is_still_answered() {
    let d = Daemon::new("echo", &[]).start();
    let mut s = d.connect();
    s.write_all(br#"{"jsonrpc":"2.0","method":"my.echo","params":["end"],"id":1}"#).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert_eq!(json(&answer)["result"], "end");
}

#[test]
fn clients_queued_while_descriptors_ran_out_are_served_once_some_free_up() {
    // The daemon runs with 24 descriptors at most: about 15 clients fit.
    let mut d = Daemon::new("echo", &[]);
    let cmd = format!(
        "ulimit -n 24 && exec '{}' start {}",
        d.bin.display(),
        d.args.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ")
    );
    let out = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    d.pids.push(d.pid().unwrap());
    let line = r#"{"jsonrpc":"2.0","method":"my.echo","params":["q"],"id":1}"#;
    let mut first: Vec<UnixStream> = Vec::new();
    for _ in 0..30 {
        let mut s = UnixStream::connect(&d.sock).unwrap();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        first.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.log_text().contains("retrying in 100 ms"), "descriptors never ran out: {}", d.log_text());
    // Closing the first ten frees descriptors: every other client is then answered.
    let rest = first.split_off(10);
    drop(first);
    for s in rest {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(s);
        let mut answer = String::new();
        r.read_line(&mut answer).unwrap();
        assert_eq!(json(&answer)["result"], "q");
    }
}
