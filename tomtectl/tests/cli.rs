//! tomtectl's own command line, without a daemon. (Having integration tests here also makes
//! `cargo test --workspace` build the real `tomtectl` binary, which the daemon tests in
//! `tomte/tests/` drive.)

use std::process::Command;

fn tomtectl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tomtectl")).args(args).env_remove("TOMTE_SOCKET").output().unwrap()
}

#[test]
fn says_where_it_tried_when_nothing_listens() {
    let out = tomtectl(&["--socket", "unix:///nonexistent-dir/d.sock", "status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to unix:///nonexistent-dir/d.sock"), "{err}");
    assert!(err.contains("Is the daemon running?"), "{err}");
}

#[test]
fn bad_addresses_and_arguments_exit_2_with_a_reason() {
    let out = tomtectl(&["--socket", "http://x", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad socket address 'http://x'"));
    let out = tomtectl(&["worker", "explode", "alpha"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("possible values: pause, resume, start, stop, restart, scale")
    );
}

#[test]
fn help_lists_every_command() {
    let out = tomtectl(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["call", "methods", "help", "status", "shutdown", "workers", "worker", "loglevel"] {
        assert!(help.contains(cmd), "{cmd} missing from:\n{help}");
    }
}
