//! `tomtectl upgrade` against a real echo daemon started with `start`: `--wait` prints both
//! pids, the old one's drain and its end, after which `status` names the new pid; an upgrade to
//! `/bin/false` exits 1 with the daemon's message and the old pid serves on.
//!
//! Needs the echo example built: `cargo build -p tomte --examples`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{alive, text, Started};

/// An echo daemon started with `start` and `extra`.
fn echo(tag: &str, extra: &[&str]) -> Started {
    Started::start("echo", tag, extra, &[])
}

/// One my.echo on a fresh connection to `d`: the pid of the process that answered, from
/// daemon.status on the same connection.
fn served_by(d: &Started) -> i64 {
    let s = UnixStream::connect(&d.sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s);
    let mut ask = |line: &str| {
        r.get_mut().write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        r.read_line(&mut answer).unwrap();
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()
    };
    let v = ask(r#"{"jsonrpc":"2.0","method":"my.echo","params":["ok"],"id":1}"#);
    assert_eq!(v["result"], "ok", "{v}");
    let v = ask(r#"{"jsonrpc":"2.0","method":"daemon.status","id":2}"#);
    v["result"]["pid"].as_i64().expect("daemon.status names its pid")
}

#[test]
fn upgrade_wait_prints_both_pids_the_drain_and_the_end_of_the_old_one() {
    let mut d = echo("wait", &[]);
    let old = d.pid();
    let t = Instant::now();
    let out = d.ctl(&["upgrade", "--wait"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}\nlog:\n{}", text(&out.stderr), d.log());
    let new = d.pid();
    d.pids.push(new);
    assert_ne!(new, old, "the pid file names the new process");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let prefix = format!("old pid {old} → new pid {new} ready in ");
    assert!(lines[0].starts_with(&prefix) && lines[0].contains(" ms ("), "{stdout}");
    let binary = common::example("echo");
    assert!(lines[0].ends_with(&format!("({})", binary.display())), "the binary is named: {stdout}");
    assert!(lines[1].starts_with(&format!("old pid {old} drained in ")) && lines[1].ends_with(" ms"), "{stdout}");
    assert_eq!(lines[2], format!("old pid {old} gone"));
    assert!(!alive(old), "old pid {old} still runs after `gone`");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());

    // The new process serves, and says so.
    assert_eq!(served_by(&d), i64::from(new));
    let status = d.ctl(&["--json", "status"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["pid"], new, "{v}");

    // Without --wait: the answer only, and the new one can be upgraded again.
    let out = d.ctl(&["upgrade"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let newer = d.pid();
    d.pids.push(newer);
    assert_eq!(text(&out.stdout).lines().count(), 1, "{}", text(&out.stdout));
    assert!(text(&out.stdout).starts_with(&format!("old pid {new} → new pid {newer} ready in ")));
}

#[test]
fn an_upgrade_to_a_binary_that_fails_exits_1_with_the_message_and_the_old_pid_serves_on() {
    let d = echo("false", &[]);
    let old = d.pid();
    let out = d.ctl(&["upgrade", "--binary", "/bin/false"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}{stderr}\nlog:\n{}", text(&out.stdout), d.log());
    assert_eq!(text(&out.stdout), "", "nothing on stdout for a failed upgrade");
    let message = stderr.strip_prefix("tomtectl: upgrade failed, the daemon serves on unchanged: ").unwrap_or("");
    assert!(!message.trim().is_empty(), "the new process's message on stderr: {stderr}");
    assert_eq!(d.pid(), old, "the pid file is unchanged");
    assert!(alive(old));
    assert_eq!(served_by(&d), i64::from(old), "the old pid serves on");
    // --wait too: the same failure, the same exit.
    let out = d.ctl(&["upgrade", "--wait", "--binary", "/bin/false"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(served_by(&d), i64::from(old));
}

#[test]
fn a_client_holding_a_token_calls_on_after_an_upgrade_through_a_new_connection() {
    use std::os::unix::fs::PermissionsExt;
    use tomte::client::{Client, Protocol, Trust};
    use tomte_rpc::{Args, Value};
    // A connection holding a token is not handed to the new process: the old one closes it
    // once idle, and the client's next call goes on a new connection, the token presented again.
    let dir = PathBuf::from(format!("/tmp/tcu-{}-tokens", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "ops 0123456789abcdef0123\n").unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut d = echo("token", &["--token-file", &tokens.display().to_string()]);
    let old = d.pid();
    let address = format!("unix://{}", d.sock.display()).parse().unwrap();
    let mut c = Client::connect_checked(&address, Protocol::Json, &Trust::own()).unwrap();
    c.set_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = c.call("daemon.auth", &Args::Positional(vec![Value::from("0123456789abcdef0123")])).unwrap();
    assert_eq!(auth, Ok(Value::Bool(true)));
    let status = |c: &mut Client| c.call("daemon.status", &Args::default()).unwrap().unwrap();
    let identity = |v: &Value| v.member("you").and_then(|y| y.member("identity")).cloned();
    let before = status(&mut c);
    assert_eq!(before.member("pid").and_then(Value::as_i64), Some(i64::from(old)));

    let out = d.ctl(&["upgrade", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let new = d.pid();
    d.pids.push(new);
    assert!(!alive(old));
    let after = status(&mut c);
    assert_eq!(after.member("pid").and_then(Value::as_i64), Some(i64::from(new)), "{after:?}");
    assert_eq!(identity(&after), identity(&before), "the token's identity on the new connection: {after:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
