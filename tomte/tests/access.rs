//! Access control on real daemons: who may call what over unix sockets (root, the daemon's
//! own user, and nobody through `setpriv`), over TCP (anonymous clients), in XML-RPC and
//! comodojo; the identity events carry; the audit log.
//!
//! Run as root (the tests need a second user: nobody, uid 65534, through `setpriv`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value as J;

const NOBODY: &str = "65534";

/// Sends each NDJSON line over one connection to the unix socket `sock` as nobody (python
/// through setpriv) and returns the answers; `Err` with python's error when it cannot connect.
fn as_nobody(sock: &std::path::Path, lines: &[&str]) -> Result<Vec<J>, String> {
    let script = r#"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
f = s.makefile("rwb")
out = []
for line in sys.argv[2:]:
    f.write(line.encode() + b"\n"); f.flush()
    out.append(json.loads(f.readline()))
print(json.dumps(out))
"#;
    let out = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "/usr/bin/python3", "-c", script])
        .arg(sock)
        .args(lines)
        .output()
        .expect("setpriv and python3");
    if !out.status.success() {
        return Err(text(&out.stderr));
    }
    match json(text(&out.stdout).trim()) {
        J::Array(items) => Ok(items),
        other => Err(format!("not a list: {other}")),
    }
}

fn req(method: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"{method}","id":1}}"#)
}

/// Asserts `answer` is a −32001 refusal of `method` for want of `permission`, naming `who`.
fn refused(answer: &J, method: &str, permission: &str, who: &str) {
    assert_eq!(answer["error"]["code"], -32001, "{method}: {answer}");
    assert_eq!(answer["error"]["message"], "Permission denied", "{answer}");
    let data = answer["error"]["data"].as_str().unwrap_or_default();
    assert!(
        data.contains(method) && data.contains(&format!("'{permission}'")) && data.contains(who),
        "the refusal names the method, the permission and the caller: {data}"
    );
}

fn alive_after(d: &Daemon) {
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(d.pids[0]), "the daemon must keep running");
    served(d);
}

fn names(list: &J) -> Vec<String> {
    list["result"].as_array().expect("a list").iter().map(|n| n.as_str().unwrap().to_owned()).collect()
}

#[test]
fn the_socket_is_0600_by_default_and_socket_mode_opens_it() {
    let d = Daemon::new("echo", &[]).start();
    assert_eq!(std::fs::metadata(&d.sock).unwrap().mode() & 0o777, 0o600);
    let err = as_nobody(&d.sock, &[&req("daemon.status")]).unwrap_err();
    assert!(err.contains("Permission denied") || err.contains("PermissionError"), "{err}");
    let d = Daemon::new("echo", &["--socket-mode", "0660", "--socket-group", NOBODY]).start();
    let meta = std::fs::metadata(&d.sock).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, 65534));
    as_nobody(&d.sock, &[&req("daemon.status")]).expect("nobody is in the socket's group");
}

#[test]
fn nobody_without_a_rule_is_refused_every_call_even_through_an_open_socket() {
    let d = Daemon::new("echo", &["--socket-mode", "0666"]).start();
    assert!(d.log_text().contains("every local user may connect"), "{}", d.log_text());
    let echo = r#"{"jsonrpc":"2.0","method":"my.echo","params":["hi"],"id":1}"#;
    let bad_params = r#"{"jsonrpc":"2.0","method":"my.echo","params":[1,2,3],"id":1}"#;
    let batch = r#"[{"jsonrpc":"2.0","method":"daemon.shutdown","id":1},{"jsonrpc":"2.0","method":"nope","id":2}]"#;
    let lines = [
        echo,
        bad_params,
        &req("daemon.status"),
        &req("system.listMethods"),
        &req("daemon.shutdown"),
        &req("worker.stop"),
        &req("nope"),
        batch,
    ];
    let answers = as_nobody(&d.sock, &lines).unwrap();
    let who = "uid 65534 (nobody)";
    refused(&answers[0], "my.echo", "call", who);
    // Refused before its parameters are looked at.
    refused(&answers[1], "my.echo", "call", who);
    refused(&answers[2], "daemon.status", "read", who);
    refused(&answers[3], "system.listMethods", "read", who);
    refused(&answers[4], "daemon.shutdown", "control", who);
    refused(&answers[5], "worker.stop", "control", who);
    assert_eq!(answers[6]["error"]["code"], -32601, "unknown stays unknown: {}", answers[6]);
    refused(&answers[7][0], "daemon.shutdown", "control", who);
    assert_eq!(answers[7][1]["error"]["code"], -32601);
    alive_after(&d);
    let log = d.log_text();
    assert!(log.contains("refused my.echo to unix uid 65534 (nobody)"), "the refusal is logged with who: {log}");
}

#[test]
fn a_read_rule_by_uid_group_or_gid_lets_nobody_read_and_nothing_more() {
    for rule in ["uid:65534=read", "group:nogroup=read", "gid:65534=read"] {
        let args = ["--socket-mode", "0660", "--socket-group", NOBODY, "--allow", rule];
        let d = Daemon::new("echo", &args).start();
        let echo = r#"{"jsonrpc":"2.0","method":"my.echo","params":["hi"],"id":1}"#;
        let lines = [&req("daemon.status"), &req("system.listMethods"), &req("daemon.shutdown"), echo];
        let answers = as_nobody(&d.sock, &lines).unwrap();
        let you = &answers[0]["result"]["you"];
        assert_eq!(you["uid"], 65534, "{rule}: {}", answers[0]);
        assert_eq!(you["user"], "nobody");
        assert_eq!(you["gid"], 65534);
        assert_eq!(you["grants"], serde_json::json!(["read"]), "{rule}");
        let listed = names(&answers[1]);
        assert!(listed.contains(&"daemon.status".to_owned()) && listed.contains(&"worker.list".to_owned()));
        assert!(!listed.iter().any(|n| n == "daemon.shutdown" || n == "my.echo" || n == "worker.stop"), "{listed:?}");
        refused(&answers[2], "daemon.shutdown", "control", "uid 65534");
        refused(&answers[3], "my.echo", "call", "uid 65534");
        alive_after(&d);
    }
}

#[test]
fn root_and_the_daemons_own_user_get_everything() {
    // A daemon run by nobody: nobody is its owner, root is root.
    let mut d = Daemon::new("echo", &[]);
    std::os::unix::fs::chown(&d.dir.0, Some(65534), Some(65534)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg(&d.bin)
        .arg("start")
        .args(&d.args)
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    d.pids.push(d.pid().expect("pid file"));
    let mut r = BufReader::new(d.connect());
    let status = json(&ndjson(&mut r, &req("daemon.status")));
    assert_eq!(status["result"]["you"]["uid"], 0);
    assert_eq!(status["result"]["you"]["grants"], serde_json::json!(["all"]), "{status}");
    let all = names(&json(&ndjson(&mut r, &req("system.listMethods"))));
    assert!(all.contains(&"daemon.shutdown".to_owned()) && all.contains(&"my.echo".to_owned()));
    let answers = as_nobody(&d.sock, &[&req("daemon.status"), &req("daemon.shutdown")]).unwrap();
    assert_eq!(answers[0]["result"]["you"]["grants"], serde_json::json!(["all"]), "{}", answers[0]);
    assert_eq!(answers[1]["result"], 0, "the owner may shut it down: {}", answers[1]);
    assert!(wait_for(Duration::from_secs(10), || !alive(d.pids[0])), "the daemon stopped");
}

fn tcp_lines(port: u16, lines: &[&str]) -> Vec<J> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s);
    lines.iter().map(|l| json(&ndjson(&mut r, l))).collect()
}

#[test]
fn anonymous_tcp_clients_may_read_and_call_but_not_control() {
    let port = free_port();
    let d = Daemon::new("echo", &["--socket", &format!("tcp://127.0.0.1:{port}")]).start();
    let echo = r#"{"jsonrpc":"2.0","method":"my.echo","params":["hi"],"id":1}"#;
    let answers = tcp_lines(port, &[echo, &req("daemon.status"), &req("daemon.shutdown"), &req("worker.stop")]);
    assert_eq!(answers[0]["result"], "hi");
    assert_eq!(answers[1]["result"]["you"]["address"].as_str().map(|a| a.starts_with("127.0.0.1:")), Some(true));
    assert_eq!(answers[1]["result"]["you"]["grants"], serde_json::json!(["read", "call"]));
    refused(&answers[2], "daemon.shutdown", "control", "127.0.0.1:");
    refused(&answers[3], "worker.stop", "control", "127.0.0.1:");
    // XML-RPC, from python's standard client: the fault is −32001 too.
    let script = r#"
import json, sys, xmlrpc.client
p = xmlrpc.client.ServerProxy(sys.argv[1])
r = {"echo": p.my.echo("hi")}
try:
    p.daemon.shutdown(); r["shutdown"] = "ran"
except xmlrpc.client.Fault as f:
    r["code"] = f.faultCode; r["text"] = f.faultString
print(json.dumps(r))
"#;
    let r = python(script, &[&format!("http://127.0.0.1:{port}/")]);
    assert_eq!(r["echo"], "hi");
    assert_eq!(r["code"], -32001, "{r}");
    assert!(r["text"].as_str().unwrap().starts_with("Permission denied: daemon.shutdown requires the 'control'"));
    alive_after(&d);
}

#[test]
fn anonymous_all_gives_tcp_control_back_with_a_warning() {
    let port = free_port();
    let d = Daemon::new("echo", &["--socket", &format!("tcp://127.0.0.1:{port}"), "--allow", "anonymous=all"]).start();
    assert!(d.log_text().contains("anonymous=all"), "the start log warns: {}", d.log_text());
    let answers = tcp_lines(port, &[&req("daemon.shutdown")]);
    assert_eq!(answers[0]["result"], 0, "{}", answers[0]);
    assert!(wait_for(Duration::from_secs(10), || !alive(d.pids[0])), "the daemon stopped");
}

#[test]
fn comodojo_answers_a_refused_call_with_status_false() {
    use tomte_rpc::comodojo;
    let port = free_port();
    let d = Daemon::new("echo", &["--socket", &format!("comodojo+tcp://127.0.0.1:{port}")]).start();
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap(); // the greeter
    let mut exchange = |content_type: &str, message: &str| {
        let mut frame = Vec::new();
        comodojo::encode_request(content_type, message.as_bytes(), &mut frame);
        r.get_mut().write_all(&frame).unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let (status, message) = comodojo::decode_response(line.trim_end().as_bytes()).unwrap();
        (status, text(&message.unwrap_or_default()))
    };
    let (ok, message) = exchange("application/json", &req("daemon.shutdown"));
    assert!(!ok, "status false: {message}");
    assert!(message.starts_with("Permission denied: daemon.shutdown requires the 'control' permission"), "{message}");
    let xml = "<?xml version=\"1.0\"?><methodCall><methodName>worker.stop</methodName><params/></methodCall>";
    let (ok, message) = exchange("text/xml", xml);
    assert!(!ok && message.contains("worker.stop"), "{message}");
    let (ok, message) = exchange("application/json", r#"{"jsonrpc":"2.0","method":"my.echo","params":["hi"],"id":1}"#);
    assert!(ok && message.contains("\"hi\""), "{message}");
    alive_after(&d);
}

#[test]
fn connect_listeners_see_the_identity() {
    let d = Daemon::new("spec", &["--socket-mode", "0666", "--allow", "uid:65534=read"]).start();
    let answers = as_nobody(&d.sock, &[&req("spec.lastClient")]).unwrap();
    let who = &answers[0]["result"];
    assert_eq!(who["uid"], 65534, "{}", answers[0]);
    assert_eq!(who["user"], "nobody");
    assert!(who["pid"].as_u64().is_some_and(|p| p > 1), "{who}");
}

#[test]
fn control_calls_are_audited_without_their_params() {
    let d = Daemon::new("echo", &[]).start();
    let mut r = BufReader::new(d.connect());
    let call = r#"{"jsonrpc":"2.0","method":"worker.restart","params":["secret-param-value-7"],"id":1}"#;
    let answer = json(&ndjson(&mut r, call));
    assert!(answer.get("error").is_some(), "no such worker: {answer}");
    json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"my.echo","params":["another-secret-9"],"id":2}"#));
    assert!(wait_for(Duration::from_secs(5), || d.log_text().contains("worker.restart")));
    let log = d.log_text();
    let line = log.lines().find(|l| l.contains("audit") && l.contains("worker.restart")).expect("an audit line");
    assert!(line.contains("unix uid 0 (root) pid"), "the line names the caller: {line}");
    assert!(!log.contains("secret-param-value-7") && !log.contains("another-secret-9"), "params stay out: {log}");
    assert!(!log.lines().any(|l| l.contains("audit") && l.contains("my.echo")), "only control calls: {log}");
}

#[test]
fn the_ops_example_lets_a_group_read_and_restart_workers_and_nothing_else() {
    let args = [
        "--socket-mode",
        "0660",
        "--socket-group",
        NOBODY,
        "--require",
        "worker.restart=restart",
        "--allow",
        "group:nogroup=read,restart",
    ];
    let d = Daemon::new("echo", &args).start();
    let lines = [req("daemon.status"), req("worker.restart"), req("worker.stop"), req("daemon.shutdown")];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let answers = as_nobody(&d.sock, &lines).unwrap();
    assert_eq!(answers[0]["result"]["you"]["grants"], serde_json::json!(["read", "restart"]), "{}", answers[0]);
    assert_eq!(answers[1]["result"], serde_json::json!({}), "no workers to restart, but allowed: {}", answers[1]);
    refused(&answers[2], "worker.stop", "control", "uid 65534");
    refused(&answers[3], "daemon.shutdown", "control", "uid 65534");
    alive_after(&d);
    let log = d.log_text();
    // Moved off control, still audited: a custom permission is an operator's action too.
    assert!(log.lines().any(|l| l.contains("audit") && l.contains("worker.restart")), "{log}");
    // A method the daemon does not have: start fails and says so.
    let out = Daemon::new("echo", &["--require", "no.such=read"]).cmd("start");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no.such"), "{}", text(&out.stderr));
}

#[test]
fn a_rule_can_be_scoped_to_one_listener() {
    let (a, b) = (free_port(), free_port());
    let (on_a, on_b) = (format!("tcp://127.0.0.1:{a}"), format!("tcp://127.0.0.1:{b}"));
    let rule = format!("anonymous=control@{on_a}");
    let d = Daemon::new("echo", &["--socket", &on_a, "--socket", &on_b, "--allow", &rule]).start();
    // daemon.reload needs control: granted on A only.
    let on = |port| tcp_lines(port, &[&req("daemon.reload")]).remove(0);
    assert!(on(a)["result"]["applied"].is_array(), "{}", on(a));
    refused(&on(b), "daemon.reload", "control", "127.0.0.1");
    alive_after(&d);
    // A scope that is not an address is refused at start, naming it.
    let bad = Daemon::new("echo", &["--allow", "anonymous=all@nowhere"]);
    let out = bad.cmd("start");
    assert!(!out.status.success() && text(&out.stderr).contains("nowhere"), "{}", text(&out.stderr));
}
