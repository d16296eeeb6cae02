//! The command line on real binaries: an application's own flag and subcommand (the greeter
//! example), usage errors, and comodojo's command flags (the echo example).

mod common;

use std::io::BufReader;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

fn greeter(args: &[&str]) -> Output {
    Command::new(binary("greeter")).args(args).output().expect("run greeter")
}

/// In the foreground the daemon logs to stderr: into its log file here.
fn log(d: &Daemon) -> std::fs::File {
    std::fs::OpenOptions::new().create(true).append(true).open(&d.log).unwrap()
}

#[test]
fn help_lists_the_applications_flags_and_subcommands_with_tomtes() {
    let out = greeter(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for word in ["--greeting", "check-config", "--socket", "start", "--max-connections", "Defaults: socket"] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    // The subcommand's own help has the flags too, tomte's and the application's.
    let help = text(&greeter(&["check-config", "--help"]).stdout);
    assert!(help.contains("--greeting") && help.contains("--socket"), "{help}");
}

#[test]
fn an_application_subcommand_runs_without_starting_anything() {
    let dir = TempDir::new("gcheck");
    let sock = format!("unix://{}", dir.path("g.sock").display());
    let pidfile = dir.path("g.pid");
    let out = greeter(&["check-config", "--greeting", "hi", "--socket", &sock, "--pidfile", pidfile.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("greeting: hi") && stdout.contains(&sock), "{stdout}");
    assert!(!dir.path("g.sock").exists() && !pidfile.exists(), "check-config started something");
    // Flags before the subcommand work as well; without --greeting, the default.
    let stdout = text(&greeter(&["--socket", &sock, "check-config"]).stdout);
    assert!(stdout.contains("greeting: hello"), "{stdout}");
}

#[test]
fn an_application_flag_reaches_its_methods() {
    let mut d = Daemon::new("greeter", &["--greeting", "hey"]);
    let mut child = Command::new(&d.bin).arg("run").args(&d.args).stdin(Stdio::null()).stderr(log(&d)).spawn().unwrap();
    let pid = child.id() as i32;
    d.pids.push(pid); // killed on drop, pass or fail
    assert!(
        wait_for(Duration::from_secs(20), || std::os::unix::net::UnixStream::connect(&d.sock).is_ok()),
        "greeter run never listened: {}",
        d.log_text()
    );
    let mut r = BufReader::new(d.connect());
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"greeter.greet","params":["bob"],"id":1}"#));
    assert_eq!(v["result"], "hey, bob", "{v}");
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"greeter.greet","params":{"name":"ann"},"id":2}"#));
    assert_eq!(v["result"], "hey, ann", "{v}");
    kill(pid, libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(0), "{}", d.log_text());
}

#[test]
fn a_bad_value_is_a_usage_error_naming_the_flag_and_the_value() {
    for (bin, command) in [("echo", "start"), ("greeter", "run"), ("greeter", "check-config")] {
        let d = Daemon::new(bin, &["--max-connections", "abc"]);
        let out = d.cmd(command);
        assert_eq!(out.status.code(), Some(2), "{bin} {command}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains("--max-connections") && err.contains("'abc'"), "{err}");
        assert!(d.pid().is_none() && !d.sock.exists(), "{bin} {command} started");
    }
    // No command: the help, on stderr, exit 2; an unknown one or an unknown flag: exit 2.
    let out = Command::new(binary("echo")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Usage: echo") && out.stdout.is_empty(), "{}", text(&out.stderr));
    for args in [&["explode"][..], &["start", "--bogus"], &["start", "stop"]] {
        let out = Command::new(binary("echo")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains(args[args.len() - 1]), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn comodojo_command_flags_still_work() {
    // -d: start (detached), then status and stop as usual.
    let mut d = Daemon::new("echo", &[]);
    let out = d.cmd("-d");
    assert!(out.status.success(), "-d: {}{}", text(&out.stdout), text(&out.stderr));
    let pid = d.pid().expect("pid file of a started daemon");
    d.pids.push(pid);
    assert!(text(&out.stdout).contains(&format!("started (pid {pid})")), "{}", text(&out.stdout));
    served(&d);
    assert_eq!(d.cmd("status").status.code(), Some(0));
    // -s: a hard start clears what a killed daemon left behind, and says so.
    kill(pid, libc::SIGKILL);
    assert!(wait_for(Duration::from_secs(10), || !alive(pid)));
    let out = d.cmd("-s");
    assert!(out.status.success(), "-s: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains("removed stale pid file"), "{}", text(&out.stderr));
    let pid = d.pid().expect("pid file of a started daemon");
    d.pids.push(pid);
    served(&d);
    assert!(d.cmd("stop").status.success());
    assert!(!alive(pid));

    // -f: the foreground.
    let mut child = Command::new(&d.bin).arg("-f").args(&d.args).stdin(Stdio::null()).stderr(log(&d)).spawn().unwrap();
    let pid = child.id() as i32;
    d.pids.push(pid);
    assert!(wait_for(Duration::from_secs(20), || std::os::unix::net::UnixStream::connect(&d.sock).is_ok()));
    served(&d);
    assert_eq!(d.pid(), Some(pid), "-f runs in the process started");
    kill(pid, libc::SIGINT);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
