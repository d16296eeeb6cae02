//! supervisorctl, from pip's `supervisor` package, drives a tomte daemon started with
//! `--supervisor-api` through the daemon's own unix socket: `status`, `stop`, `start`,
//! `restart all`, `signal`, `pid`, `tail`, `maintail`, on the pool example's plain workers and on
//! the crew example's pool; without the flag the `supervisor.*` methods do not exist.
//!
//! What it needs, as `.ci/run` installs it:
//!
//! ```text
//! /usr/bin/python3 -m venv target/ci-venv && target/ci-venv/bin/pip install supervisor
//! cargo build -p tomte --examples
//! ```
//!
//! supervisorctl is `$TOMTE_TEST_SUPERVISORCTL`, else the one beside `$TOMTE_TEST_PYTHON`, else
//! `target/ci-venv/bin/supervisorctl`; without it the tests fail saying how to install it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const HOW: &str = "the supervisorctl tests need pip's supervisor package: \
     `/usr/bin/python3 -m venv target/ci-venv && target/ci-venv/bin/pip install supervisor` \
     (or TOMTE_TEST_SUPERVISORCTL=/path/to/supervisorctl)";

fn supervisorctl() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf();
    let beside_python = std::env::var_os("TOMTE_TEST_PYTHON")
        .map(PathBuf::from)
        .and_then(|p| p.parent().map(|dir| dir.join("supervisorctl")));
    let found = std::env::var_os("TOMTE_TEST_SUPERVISORCTL")
        .map(PathBuf::from)
        .into_iter()
        .chain(beside_python)
        .chain([workspace.join("target/ci-venv/bin/supervisorctl")])
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("no supervisorctl: {HOW}"))
}

/// What one supervisorctl command printed, and its exit code.
struct Said {
    out: String,
    code: i32,
}

/// Runs `supervisorctl -c CONF -s unix://SOCK ARGS…` (the configuration file has nothing but
/// its section: no /etc/supervisord.conf of the machine's is read).
fn ctl(d: &Daemon, args: &[&str]) -> Said {
    ctl_as(d, None, args)
}

fn ctl_as(d: &Daemon, user: Option<&str>, args: &[&str]) -> Said {
    let conf = d.dir.path("supervisorctl.conf");
    std::fs::write(&conf, "[supervisorctl]\n").unwrap();
    let server = format!("unix://{}", d.sock.display());
    let mut cmd = match user {
        Some(user) => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid", user, "--regid", "nogroup", "--clear-groups"]).arg(supervisorctl());
            c
        }
        None => Command::new(supervisorctl()),
    };
    let out = cmd.arg("-c").arg(&conf).args(["-s", &server]).args(args).output().expect("run supervisorctl");
    Said { out: text(&out.stdout) + &text(&out.stderr), code: out.status.code().unwrap_or(-1) }
}

/// The lines of `status`: (namespec, state, description).
fn status(d: &Daemon) -> Vec<(String, String, String)> {
    ctl(d, &["status"])
        .out
        .lines()
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().unwrap_or_default().to_owned();
            let state = words.next().unwrap_or_default().to_owned();
            (name, state, words.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// The pid of a RUNNING description (`pid 123, uptime 0:01:02`), checking its shape.
fn running_pid(description: &str) -> i64 {
    let rest = description.strip_prefix("pid ").unwrap_or_else(|| panic!("not a running description: {description}"));
    let (pid, uptime) = rest.split_once(", uptime ").unwrap_or_else(|| panic!("no uptime in {description}"));
    let clock: Vec<&str> = uptime.rsplit(", ").next().unwrap().split(':').collect();
    assert!(
        clock.len() == 3
            && clock[1].len() == 2
            && clock[2].len() == 2
            && clock.iter().all(|c| c.parse::<u32>().is_ok()),
        "uptime {uptime} is not H:MM:SS"
    );
    pid.parse().unwrap()
}

fn state(d: &Daemon, name: &str) -> String {
    worker(d, name)["state"].as_str().unwrap().to_owned()
}

fn pid_of(d: &Daemon, name: &str) -> i64 {
    worker(d, name)["pid"].as_i64().unwrap_or_else(|| panic!("{name} has no pid"))
}

fn looping(d: &Daemon, names: &[&str]) {
    until("the workers to loop", Duration::from_secs(20), || names.iter().all(|n| state(d, n) == "looping"));
}

#[test]
fn supervisorctl_drives_plain_workers() {
    let d = Daemon::new("pool", &["--supervisor-api"]).start();
    let _reaper = pids(&d);
    looping(&d, &["alpha", "beta"]);

    // status: each worker RUNNING with its pid and uptime, exit code 0.
    let lines = status(&d);
    assert_eq!(
        lines.iter().map(|l| (l.0.as_str(), l.1.as_str())).collect::<Vec<_>>(),
        [("alpha", "RUNNING"), ("beta", "RUNNING")]
    );
    assert_eq!(running_pid(&lines[0].2), pid_of(&d, "alpha"));
    assert_eq!(running_pid(&lines[1].2), pid_of(&d, "beta"));
    assert_eq!(ctl(&d, &["status"]).code, 0);
    assert_eq!(ctl(&d, &["pid"]).out.trim(), d.pid().unwrap().to_string());
    assert_eq!(ctl(&d, &["pid", "alpha"]).out.trim(), pid_of(&d, "alpha").to_string());

    // stop answers once the process is gone: worker.list says so at once.
    let old_alpha = pid_of(&d, "alpha") as i32;
    let said = ctl(&d, &["stop", "alpha"]);
    assert_eq!((said.out.as_str(), said.code), ("alpha: stopped\n", 0));
    let alpha = worker(&d, "alpha");
    assert_eq!((alpha["state"].as_str(), alpha["pid"].is_null()), (Some("exited"), true), "{alpha}");
    assert!(!alive(old_alpha), "alpha's process is gone");
    let lines = status(&d);
    assert_eq!(lines[0].1, "STOPPED", "{lines:?}");
    assert_eq!(ctl(&d, &["status"]).code, 3, "a stopped process: LSB 3");
    assert_eq!(ctl(&d, &["stop", "alpha"]).out, "alpha: ERROR (not running)\n");

    // start answers once the worker loops.
    let said = ctl(&d, &["start", "alpha"]);
    assert_eq!((said.out.as_str(), said.code), ("alpha: started\n", 0));
    assert_eq!(state(&d, "alpha"), "looping");
    assert_ne!(pid_of(&d, "alpha") as i32, old_alpha);
    assert_eq!(ctl(&d, &["start", "alpha"]).out, "alpha: ERROR (already started)\n");

    // Names that are not there.
    let said = ctl(&d, &["status", "nosuch"]);
    assert_eq!(said.out, "nosuch: ERROR (no such process)\n");
    assert_eq!(ctl(&d, &["stop", "nosuch"]).out, "nosuch: ERROR (no such process)\n");
    assert_eq!(ctl(&d, &["start", "nosuch:*"]).out, "nosuch: ERROR (no such group)\n");

    // restart all: every worker stopped, then started: new processes, all looping.
    let before = [pid_of(&d, "alpha"), pid_of(&d, "beta")];
    let said = ctl(&d, &["restart", "all"]);
    assert_eq!(said.out, "alpha: stopped\nbeta: stopped\nalpha: started\nbeta: started\n");
    assert_eq!((state(&d, "alpha"), state(&d, "beta")), ("looping".to_owned(), "looping".to_owned()));
    let after = [pid_of(&d, "alpha"), pid_of(&d, "beta")];
    assert!(before.iter().all(|p| !after.contains(p)), "new processes: {before:?} -> {after:?}");
    for p in before {
        assert!(!alive(p as i32), "old process {p} is gone");
    }

    // signal: a harmless one (SIGWINCH); a name that is no signal.
    assert_eq!(ctl(&d, &["signal", "WINCH", "beta"]).out, "beta: signalled\n");
    assert_eq!(ctl(&d, &["signal", "NOSUCH", "beta"]).out, "beta: ERROR (bad signal name)\n");
    assert_eq!(pid_of(&d, "beta"), after[1], "SIGWINCH left beta alone");

    // Logs: a worker's output is in the daemon's log, which maintail reads.
    assert_eq!(ctl(&d, &["tail", "alpha"]).out, "alpha: ERROR (no log file)\n");
    let said = ctl(&d, &["maintail", "-4000"]);
    assert!(said.out.contains("hello from alpha"), "{}", said.out);

    let said = ctl(&d, &["avail"]);
    assert!(said.out.lines().any(|l| l.starts_with("alpha ") && l.contains("in use")), "{}", said.out);

    // shutdown stops the daemon.
    let daemon_pid = d.pid().unwrap();
    assert!(ctl(&d, &["shutdown"]).out.contains("Shut down"));
    until("the daemon to stop", Duration::from_secs(20), || !alive(daemon_pid));
}

#[test]
fn supervisorctl_drives_a_pool_as_a_group() {
    let d = Daemon::new("crew", &["--supervisor-api"]).with_env("CREW_INSTANCES", "2").start();
    let _reaper = pids(&d);
    looping(&d, &["solo"]);
    until("the pool to loop", Duration::from_secs(20), || {
        worker(&d, "crew")["instances"].as_array().unwrap().iter().all(|i| i["state"] == "looping")
    });
    let instance = |n: usize| worker(&d, "crew")["instances"][n].clone();

    let lines = status(&d);
    let names: Vec<(&str, &str)> = lines.iter().map(|l| (l.0.as_str(), l.1.as_str())).collect();
    assert_eq!(names, [("crew:crew.0", "RUNNING"), ("crew:crew.1", "RUNNING"), ("solo", "RUNNING")]);
    assert_eq!(running_pid(&lines[1].2), instance(1)["pid"].as_i64().unwrap());
    let said = ctl(&d, &["status", "crew:*"]);
    assert_eq!(said.out.lines().count(), 2, "{}", said.out);

    // One instance.
    assert_eq!(ctl(&d, &["stop", "crew:crew.1"]).out, "crew:crew.1: stopped\n");
    assert_eq!(instance(1)["state"], "exited");
    assert_eq!(instance(0)["state"], "looping");
    assert_eq!(ctl(&d, &["start", "crew:crew.1"]).out, "crew:crew.1: started\n");
    assert_eq!(instance(1)["state"], "looping");

    // The whole pool: GROUP:*.
    let said = ctl(&d, &["stop", "crew:*"]);
    assert_eq!(said.out, "crew:crew.0: stopped\ncrew:crew.1: stopped\n");
    assert_eq!(worker(&d, "crew")["state"], "exited");
    assert_eq!(state(&d, "solo"), "looping", "solo is not in the group");
    let said = ctl(&d, &["start", "crew:*"]);
    assert_eq!(said.out, "crew:crew.0: started\ncrew:crew.1: started\n");
    let said = ctl(&d, &["restart", "crew:*"]);
    assert_eq!(said.out, "crew:crew.0: stopped\ncrew:crew.1: stopped\ncrew:crew.0: started\ncrew:crew.1: started\n");
    assert!(worker(&d, "crew")["instances"].as_array().unwrap().iter().all(|i| i["state"] == "looping"));

    // The pool serves again.
    let r = call(&d, "crew.work", r#"{"ms":1}"#);
    assert!(r["result"]["worker"].as_str().is_some_and(|w| w.starts_with("crew.")), "{r}");
    assert_eq!(ctl(&d, &["stop", "crew:crew.9"]).out, "crew:crew.9: ERROR (no such process)\n");
}

#[test]
fn reads_need_read_and_actions_control() {
    if !is_root() {
        eprintln!("skipped: run as root to try another user's grants");
        return;
    }
    let d = Daemon::new("pool", &["--supervisor-api", "--socket-mode", "0666", "--allow", "user:nobody=read"]).start();
    let _reaper = pids(&d);
    looping(&d, &["alpha", "beta"]);
    let said = ctl_as(&d, Some("nobody"), &["status"]);
    assert_eq!(said.code, 0, "{}", said.out);
    assert!(said.out.contains("alpha") && said.out.contains("RUNNING"), "{}", said.out);
    let said = ctl_as(&d, Some("nobody"), &["stop", "alpha"]);
    assert!(said.out.contains("Permission denied") || said.out.contains("-32001"), "{}", said.out);
    assert_eq!(state(&d, "alpha"), "looping", "nobody could not stop alpha");
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn without_the_flag_there_is_no_supervisor_interface() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    let methods = call(&d, "system.listMethods", "[]");
    let methods = methods["result"].as_array().unwrap();
    assert!(!methods.iter().any(|m| m.as_str().unwrap().starts_with("supervisor.")), "{methods:?}");
    let r = call(&d, "supervisor.getState", "[]");
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let said = ctl(&d, &["status"]);
    assert_ne!(said.code, 0);
    assert!(said.out.contains("Method not found"), "{}", said.out);

    // With it, the methods are there, and answer XML-RPC at /RPC2 as supervisord's do.
    let d = Daemon::new("pool", &["--supervisor-api"]).start();
    let _reaper = pids(&d);
    let r = call(&d, "supervisor.getState", "[]");
    assert_eq!(r["result"], serde_json::json!({"statecode": 1, "statename": "RUNNING"}));
    assert_eq!(call(&d, "supervisor.getAPIVersion", "[]")["result"], "3.0");
    let r = call(&d, "supervisor.getProcessInfo", r#"["nosuch"]"#);
    assert_eq!((r["error"]["code"].as_i64(), r["error"]["message"].as_str()), (Some(10), Some("BAD_NAME: nosuch")));
    looping(&d, &["alpha"]);
    let info = call(&d, "supervisor.getProcessInfo", r#"["alpha"]"#)["result"].clone();
    let keys: Vec<&str> = info.as_object().unwrap().keys().map(String::as_str).collect();
    for key in [
        "name",
        "group",
        "description",
        "start",
        "stop",
        "now",
        "state",
        "statename",
        "spawnerr",
        "exitstatus",
        "logfile",
        "stdout_logfile",
        "stderr_logfile",
        "pid",
    ] {
        assert!(keys.contains(&key), "no {key} in {info}");
    }
    assert_eq!((info["state"].as_i64(), info["statename"].as_str()), (Some(20), Some("RUNNING")));
    assert_eq!(info["group"], "alpha");
}

#[test]
fn supervisorctl_drives_the_hash_pool() {
    let d = Daemon::new("hash", &["--supervisor-api"]).with_env("HASH_WORKERS", "2").start();
    let _reaper = pids(&d);
    let instances = || worker(&d, "hasher")["instances"].as_array().unwrap().clone();
    until("the pool to loop", Duration::from_secs(20), || instances().iter().all(|i| i["state"] == "looping"));
    let sha = |rounds: i64| call(&d, "hash.sha256", &format!(r#"{{"data":"abc","rounds":{rounds}}}"#));
    // SHA-256("abc").
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    let lines = status(&d);
    let names: Vec<(&str, &str)> = lines.iter().map(|l| (l.0.as_str(), l.1.as_str())).collect();
    assert_eq!(names, [("hasher:hasher.0", "RUNNING"), ("hasher:hasher.1", "RUNNING")]);
    for (line, instance) in lines.iter().zip(instances()) {
        assert_eq!(running_pid(&line.2), instance["pid"].as_i64().unwrap());
    }

    // One instance down: the pool still answers, from the other.
    assert_eq!(ctl(&d, &["stop", "hasher:hasher.1"]).out, "hasher:hasher.1: stopped\n");
    assert_eq!(instances()[1]["state"], "exited");
    for _ in 0..4 {
        assert_eq!(sha(1)["result"], abc);
    }
    assert_eq!(ctl(&d, &["start", "hasher:hasher.1"]).out, "hasher:hasher.1: started\n");
    assert_eq!(ctl(&d, &["start", "hasher:hasher.1"]).out, "hasher:hasher.1: ERROR (already started)\n");

    // restart all: both instances replaced, the pool answers again.
    let before: Vec<i64> = instances().iter().map(|i| i["pid"].as_i64().unwrap()).collect();
    let said = ctl(&d, &["restart", "all"]);
    assert_eq!(
        said.out,
        "hasher:hasher.0: stopped\nhasher:hasher.1: stopped\nhasher:hasher.0: started\nhasher:hasher.1: started\n"
    );
    let after: Vec<i64> = instances().iter().map(|i| i["pid"].as_i64().unwrap()).collect();
    assert!(before.iter().all(|p| !after.contains(p)), "{before:?} -> {after:?}");
    assert!(instances().iter().all(|i| i["state"] == "looping"));
    assert_eq!(sha(1)["result"], abc);
}
