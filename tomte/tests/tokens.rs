//! Tokens (`--token-file`): with them every TCP client must present one, by HTTP
//! `Authorization: Bearer` or as its first call (`daemon.auth`); a wrong one closes the
//! connection; the token's name is the identity that `token:` rules give permissions to.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;

const ECHO: &str = r#"{"jsonrpc":"2.0","method":"my.echo","params":["ok"],"id":1}"#;
const OPS: &str = "0p5-s3cret-0f-the-0ps-team";
const ROOT: &str = "r00t-t0ken-with-every-permission";

/// A token file in `dir`: `ops` (named by a rule) and `admin` (named by none), mode 0600.
fn token_file(dir: &TempDir) -> String {
    let path = dir.path("tokens");
    std::fs::write(&path, format!("# name secret\nops {OPS}\n\nadmin {ROOT}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

fn curl(port: u16, secret: Option<&str>, body: &str) -> String {
    let mut c = Command::new("curl");
    c.args(["-s", "-H", "Content-Type: application/json", "-d", body, &format!("http://127.0.0.1:{port}/")]);
    if let Some(s) = secret {
        c.args(["-H", &format!("Authorization: Bearer {s}")]);
    }
    text(&c.output().expect("curl is installed").stdout)
}

fn ndjson_tcp(port: u16) -> BufReader<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    BufReader::new(s)
}

fn auth(secret: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"daemon.auth","params":["{secret}"],"id":0}}"#)
}

#[test]
fn every_tcp_client_needs_a_token_and_gets_its_permissions() {
    let dir = TempDir::new("tokens");
    let tokens = token_file(&dir);
    let port = free_port();
    let d = Daemon::new(
        "echo",
        &["--socket", &format!("tcp://127.0.0.1:{port}"), "--token-file", &tokens, "--allow", "token:ops=read"],
    )
    .start();
    let pid = d.pid().unwrap();
    // Without a token, a TCP client may do nothing (even on loopback)…
    let v = json(&curl(port, None, ECHO));
    assert_eq!(v["error"]["code"], -32001, "{v}");
    // …a wrong one is 401, and the connection is closed;
    let wrong = curl(port, Some("not-a-token-at-all-really"), ECHO);
    assert!(wrong.contains("authentication failed"), "{wrong}");
    // a token no rule names holds everything; one a rule names, what the rule says.
    assert_eq!(json(&curl(port, Some(ROOT), ECHO))["result"], "ok");
    let status = r#"{"jsonrpc":"2.0","method":"daemon.status","id":2}"#;
    let v = json(&curl(port, Some(OPS), status));
    assert_eq!(v["result"]["you"]["token"], "ops", "{v}");
    assert_eq!(json(&curl(port, Some(OPS), ECHO))["error"]["code"], -32001);
    // The owner's unix socket needs no token.
    let mut unix = BufReader::new(d.connect());
    assert_eq!(json(&ndjson(&mut unix, ECHO))["result"], "ok");
    // NDJSON: daemon.auth first.
    let mut c = ndjson_tcp(port);
    assert_eq!(json(&ndjson(&mut c, ECHO))["error"]["code"], -32001);
    assert_eq!(json(&ndjson(&mut c, &auth(ROOT)))["result"], true);
    assert_eq!(json(&ndjson(&mut c, ECHO))["result"], "ok");
    // A wrong secret: an error, then the connection closes.
    let mut c = ndjson_tcp(port);
    let t = std::time::Instant::now();
    let v = json(&ndjson(&mut c, &auth("guess-guess-guess-guess")));
    assert_eq!(v["error"]["code"], -32002, "{v}");
    // Answered after a fixed delay, so guessing is slow; meanwhile others are served.
    assert!(t.elapsed() >= Duration::from_millis(200), "a wrong token answered in {:?}", t.elapsed());
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "served after a wrong token: {}", text(&rest));
    // The secrets never reach the log.
    let log = d.log_text();
    assert!(!log.contains(OPS) && !log.contains(ROOT) && !log.contains("guess-guess"), "{log}");
    assert!(log.contains("authentication failed"), "{log}");
    assert!(alive(pid));
}

#[test]
fn python_and_tomtectl_present_tokens() {
    let dir = TempDir::new("tokens-clients");
    let tokens = token_file(&dir);
    let port = free_port();
    let _d = Daemon::new("echo", &["--socket", &format!("tcp://127.0.0.1:{port}"), "--token-file", &tokens]).start();
    let script = r#"
import json, sys, xmlrpc.client as x
url, secret = sys.argv[1], sys.argv[2]
out = {}
out["with"] = x.ServerProxy(url, headers=[("Authorization", "Bearer " + secret)]).my.echo("hi")
try:
    x.ServerProxy(url).my.echo("hi")
    out["without"] = "served"
except x.Fault as f:
    out["without"] = f.faultCode
print(json.dumps(out))
"#;
    let out = python(script, &[&format!("http://127.0.0.1:{port}/RPC2"), ROOT]);
    assert_eq!(out["with"], "hi", "{out}");
    assert_eq!(out["without"], -32001, "{out}");
    let ctl = |extra: &[&str]| {
        Command::new(binary("tomtectl"))
            .args(["--socket", &format!("tcp://127.0.0.1:{port}")])
            .args(extra)
            .args(["call", "my.echo", "hi"])
            .output()
            .unwrap()
    };
    // The daemon's own file (its first token), or a file with the bare secret.
    let out = ctl(&["--token-file", &tokens]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bare = dir.path("bare");
    std::fs::write(&bare, format!("{ROOT}\n")).unwrap();
    let out = ctl(&["--token-file", &bare.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!ctl(&[]).status.success(), "tomtectl without a token was served");
}

#[test]
fn a_token_file_others_may_read_or_a_weak_token_is_refused_at_start() {
    let dir = TempDir::new("tokens-bad");
    let tokens = token_file(&dir);
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let d = Daemon::new("echo", &["--socket", &format!("tcp://127.0.0.1:{port}"), "--token-file", &tokens]);
    let out = d.cmd("start");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("chmod 600") && text(&out.stderr).contains(&tokens), "{}", text(&out.stderr));
    std::fs::write(&tokens, "short abc\n").unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = d.cmd("start");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("line 1"), "{}", text(&out.stderr));
    assert!(d.pid().is_none());
}

#[test]
fn a_token_file_lets_a_listener_other_hosts_reach_start() {
    let dir = TempDir::new("tokens-wide");
    let tokens = token_file(&dir);
    let port = free_port();
    let d = Daemon::new("echo", &["--socket", &format!("tcp://0.0.0.0:{port}"), "--token-file", &tokens]).start();
    // Reached through loopback only: without a token nothing, with one everything.
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(json(&ndjson(&mut r, ECHO))["error"]["code"], -32001);
    assert_eq!(json(&ndjson(&mut r, &auth(ROOT)))["result"], true);
    let mut line = String::new();
    r.get_mut().write_all(format!("{ECHO}\n").as_bytes()).unwrap();
    r.read_line(&mut line).unwrap();
    assert_eq!(json(&line)["result"], "ok");
    drop(d);
}

#[test]
fn a_bearer_token_holds_for_its_own_http_request_only() {
    let dir = TempDir::new("tokens-keepalive");
    let tokens = token_file(&dir);
    let port = free_port();
    let _d = Daemon::new(
        "echo",
        &[
            "--socket",
            &format!("tcp://127.0.0.1:{port}"),
            "--token-file",
            &tokens,
            "--allow",
            "anonymous=read",
            "--allow",
            "token:ops=all",
        ],
    )
    .start();
    // Three requests on one kept-alive connection: with the token, without, with again.
    let status = r#"{"jsonrpc":"2.0","method":"daemon.status","id":1}"#;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut you = |bearer: Option<&str>| {
        let auth = bearer.map(|b| format!("Authorization: Bearer {b}\r\n")).unwrap_or_default();
        let req = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{status}",
            status.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let (code, _, body) = http_response(&mut r);
        assert_eq!(code, 200, "{body}");
        json(&body)["result"]["you"].clone()
    };
    let first = you(Some(OPS));
    assert_eq!(
        (first["token"].clone(), first["grants"].clone()),
        ("ops".into(), serde_json::json!(["all"])),
        "{first}"
    );
    let second = you(None);
    assert!(second["token"].is_null(), "the token of the request before must not carry over: {second}");
    assert_eq!(second["grants"], serde_json::json!(["read"]), "{second}");
    assert_eq!(you(Some(OPS))["token"], "ops");
}
