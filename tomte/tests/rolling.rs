//! Rolling restarts of workers, for real: the pool daemon's workers replaced one at a time
//! (recorded from `daemon.worker.state` events pushed to an NDJSON subscriber: never two down
//! at once, every one with a new pid), the plain restart as before, the forms of
//! `worker.restart`'s names, and a worker that cannot come back (the chaos daemon's `crasher`)
//! not stalling the queue, whether it fails or only stays in back-off.
//!
//! Needs the examples built: `cargo build -p tomte --examples`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value as J;

const LIMIT: Duration = Duration::from_secs(30);

/// The `daemon.worker.state` events pushed to a subscriber, in order, as a thread reads them.
struct States(Arc<Mutex<Vec<J>>>);

impl States {
    fn follow(d: &Daemon) -> States {
        let mut r = BufReader::new(d.connect());
        let answer = json(&ndjson(
            &mut r,
            r#"{"jsonrpc":"2.0","method":"daemon.subscribe","params":[["daemon.worker.state"]],"id":1}"#,
        ));
        assert_eq!(answer["result"]["subscribed"], serde_json::json!(["daemon.worker.state"]), "{answer}");
        r.get_ref().set_read_timeout(None).unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        std::thread::spawn(move || {
            let mut r: BufReader<UnixStream> = r;
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                let n = json(&line);
                if n["method"] == "daemon.event" {
                    sink.lock().unwrap().push(n["params"]["data"].clone());
                }
                line.clear();
            }
        });
        States(events)
    }

    fn all(&self) -> Vec<J> {
        self.0.lock().unwrap().clone()
    }

    /// Whether worker `name` was told `state` with pid `pid`.
    fn saw(&self, name: &str, state: &str, pid: i64) -> bool {
        self.all().iter().any(|e| e["worker"] == name && e["state"] == state && e["pid"] == pid)
    }
}

fn pid_of(d: &Daemon, name: &str) -> i64 {
    worker(d, name)["pid"].as_i64().unwrap_or(0)
}

fn all_looping(d: &Daemon) -> bool {
    workers(d).iter().all(|w| w["state"] == "looping")
}

/// The pool daemon with its two workers looping.
fn pool() -> Daemon {
    let d = Daemon::new("pool", &[]).start();
    until("two looping workers", LIMIT, || all_looping(&d));
    d
}

#[test]
fn a_rolling_restart_replaces_every_worker_one_at_a_time() {
    let d = pool();
    let _reaper = pids(&d);
    let before: BTreeMap<String, i64> = ["alpha", "beta"].iter().map(|n| (n.to_string(), pid_of(&d, n))).collect();
    let states = States::follow(&d);

    let t = Instant::now();
    let answer = call(&d, "worker.restart", r#"{"rolling":true}"#);
    assert_eq!(answer["result"], serde_json::json!({"alpha": true, "beta": true}), "{answer}");
    // At once: not after the restarts (bounded loosely, for a loaded machine).
    assert!(t.elapsed() < Duration::from_secs(10), "answered at once, not after the restarts: {:?}", t.elapsed());

    until("both workers looping with new pids", LIMIT, || {
        let ws = workers(&d);
        ws.iter()
            .all(|w| w["state"] == "looping" && w["pid"].as_i64().is_some_and(|p| !before.values().any(|b| *b == p)))
    });
    let _reaper = pids(&d);
    let after: BTreeMap<String, i64> = ["alpha", "beta"].iter().map(|n| (n.to_string(), pid_of(&d, n))).collect();
    until("each new pid told looping", LIMIT, || after.iter().all(|(n, p)| states.saw(n, "looping", *p)));

    // Replay the events: at no moment were both workers down.
    let events = states.all();
    let mut state: BTreeMap<String, String> = before.keys().map(|n| (n.clone(), "looping".to_owned())).collect();
    let mut went_down = Vec::new();
    for e in &events {
        let name = e["worker"].as_str().unwrap().to_owned();
        let s = e["state"].as_str().unwrap().to_owned();
        if e["pid"] == before[&name] && s != "spindown" {
            // The old process's start, told late (the daemon reports what it notices): it was
            // looping already.
            continue;
        }
        if s != "looping" && state[&name] == "looping" {
            went_down.push(name.clone());
        }
        state.insert(name, s);
        let down: Vec<&String> =
            state.iter().filter(|(_, s)| *s != "looping" && *s != "paused").map(|(n, _)| n).collect();
        assert!(down.len() <= 1, "{down:?} down at once; the events:\n{events:#?}\n{}", d.log_text());
    }
    assert_eq!(went_down, ["alpha", "beta"], "each went down once, in order: {events:#?}");
    for (name, old) in &before {
        assert!(states.saw(name, "spindown", *old), "{name}'s old pid {old} told spindown: {events:#?}");
        assert_ne!(after[name], *old, "{name} has a new pid");
        assert!(!alive(*old as i32), "{name}'s old pid {old} is gone");
    }
    let log = d.log_text();
    let at = |what: &str| log.find(what).unwrap_or_else(|| panic!("no '{what}' in:\n{log}"));
    assert!(at("rolling restart: restarting worker alpha (1 more after it)") < at("worker alpha is looping again"));
    assert!(at("worker alpha is looping again") < at("rolling restart: restarting worker beta (0 more after it)"));
    assert_eq!(worker(&d, "alpha")["restarts"], 1);
    assert_eq!(worker(&d, "beta")["restarts"], 1);
}

#[test]
fn a_plain_restart_still_restarts_at_once_and_names_take_every_form() {
    let d = pool();
    let _reaper = pids(&d);
    // comodojo's form: one name, positional, a bool back.
    let alpha = pid_of(&d, "alpha");
    assert_eq!(call(&d, "worker.restart", r#"["alpha"]"#)["result"], true);
    until("alpha back with a new pid", LIMIT, || {
        let w = worker(&d, "alpha");
        w["state"] == "looping" && w["pid"].as_i64().is_some_and(|p| p != alpha)
    });
    let _reaper = pids(&d);

    // Every worker, no queue: both asked to stop in the same turn.
    let before = [pid_of(&d, "alpha"), pid_of(&d, "beta")];
    let answer = call(&d, "worker.restart", "[]");
    assert_eq!(answer["result"], serde_json::json!({"alpha": true, "beta": true}), "{answer}");
    until("both back with new pids", LIMIT, || {
        all_looping(&d) && ["alpha", "beta"].iter().all(|n| !before.contains(&pid_of(&d, n)))
    });
    let _reaper = pids(&d);
    assert!(!d.log_text().contains("rolling restart"), "no queue for a plain restart:\n{}", d.log_text());

    // An array of names, by position or by name with rolling; one name with rolling: a bool.
    let answer = call(&d, "worker.restart", r#"[["beta"]]"#);
    assert_eq!(answer["result"], serde_json::json!({"beta": true}), "{answer}");
    until("beta back", LIMIT, || all_looping(&d));
    let answer = call(&d, "worker.restart", r#"{"name":["beta","alpha"],"rolling":true}"#);
    assert_eq!(answer["result"], serde_json::json!({"beta": true, "alpha": true}), "{answer}");
    until("the array's rolling restart done, beta first", LIMIT, || {
        d.log_text().contains("worker alpha is looping again")
    });
    let log = d.log_text();
    assert!(log.find("restarting worker beta (1 more").unwrap() < log.find("restarting worker alpha (0 more").unwrap());
    let _reaper = pids(&d);
    let answer = call(&d, "worker.restart", r#"{"name":"alpha","rolling":true}"#);
    assert_eq!(answer["result"], true, "{answer}");

    // An unknown name in the array: refused, and nobody restarted.
    until("alpha's second rolling restart done", LIMIT, || {
        d.log_text().matches("worker alpha is looping again").count() == 2
    });
    let _reaper = pids(&d);
    let restarts: Vec<J> = workers(&d).iter().map(|w| w["restarts"].clone()).collect();
    let answer = call(&d, "worker.restart", r#"{"name":["alpha","nope"],"rolling":true}"#);
    assert_eq!(answer["error"]["data"], "unknown worker 'nope'", "{answer}");
    let answer = call(&d, "worker.restart", r#"{"rolling":"yes"}"#);
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(workers(&d).iter().map(|w| w["restarts"].clone()).collect::<Vec<_>>(), restarts);
}

/// The chaos daemon, with `file` as its configuration when given.
fn chaos(file: Option<&str>) -> Daemon {
    let mut d = Daemon::new("chaos", &[]);
    if let Some(text) = file {
        let path = d.dir.path("d.toml");
        std::fs::write(&path, text).unwrap();
        d = d.add_args(&["--config", &path.display().to_string()]);
    }
    let d = d.start();
    until("steady looping", LIMIT, || worker(&d, "steady")["state"] == "looping");
    d
}

#[test]
fn a_worker_that_fails_does_not_stall_the_queue() {
    // crasher panics in its spinup every time: started again, it is failed within ~100 ms.
    let d = chaos(None);
    let _reaper = pids(&d);
    until("crasher failed", LIMIT, || worker(&d, "crasher")["state"] == "failed");
    let steady = pid_of(&d, "steady");
    let answer = call(&d, "worker.restart", r#"{"name":["crasher","steady"],"rolling":true}"#);
    assert_eq!(answer["result"], serde_json::json!({"crasher": true, "steady": true}), "{answer}");
    let t = Instant::now();
    until("steady restarted after crasher", LIMIT, || {
        let w = worker(&d, "steady");
        w["state"] == "looping" && w["pid"].as_i64().is_some_and(|p| p != steady)
    });
    let _reaper = pids(&d);
    assert!(t.elapsed() < Duration::from_secs(10), "the queue waited {:?} for a failed worker", t.elapsed());
    assert_eq!(worker(&d, "crasher")["state"], "failed");
    let log = d.log_text();
    assert!(
        log.contains("rolling restart: worker crasher did not come back (state failed); moving on to worker steady"),
        "{log}"
    );
}

#[test]
fn a_worker_stuck_in_back_off_is_waited_for_its_hang_timeout_only() {
    // crasher with a 4 s back-off and a 1 s hang timeout: restarted, it crashes and waits 4 s,
    // failed only after its fourth crash (12 s); the queue moves on after 1 s.
    let d = chaos(Some("[workers.crasher]\nbackoff-min = 4\nbackoff-max = 4\nhang-timeout = 1\n"));
    let _reaper = pids(&d);
    let steady = pid_of(&d, "steady");
    let t = Instant::now();
    let answer = call(&d, "worker.restart", r#"{"name":["crasher","steady"],"rolling":true}"#);
    assert_eq!(answer["result"], serde_json::json!({"crasher": true, "steady": true}), "{answer}");
    until("steady restarted after crasher", LIMIT, || {
        let w = worker(&d, "steady");
        w["state"] == "looping" && w["pid"].as_i64().is_some_and(|p| p != steady)
    });
    let _reaper = pids(&d);
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(900), "moved on after {waited:?}, before crasher's hang timeout");
    assert!(waited < Duration::from_secs(6), "the queue waited {waited:?}");
    assert_ne!(
        worker(&d, "crasher")["state"],
        "failed",
        "moved on while crasher was still in back-off\n{}",
        d.log_text()
    );
    let log = d.log_text();
    // Its state then: spinup still (printing its panic's backtrace), or back-off.
    let said = log.lines().find(|l| l.contains("rolling restart: worker crasher has not looped within 1s (state "));
    assert!(said.is_some_and(|l| l.ends_with("); moving on to worker steady")), "{log}");
}

fn ctl(d: &Daemon, args: &[&str]) -> std::process::Output {
    let sock = format!("unix://{}", d.sock.display());
    std::process::Command::new(binary("tomtectl")).arg("--socket").arg(&sock).args(args).output().expect("run tomtectl")
}

#[test]
fn tomtectl_restarts_all_workers_rolling_and_prints_each_as_it_comes_back() {
    let d = pool();
    let _reaper = pids(&d);
    let (alpha, beta) = (pid_of(&d, "alpha"), pid_of(&d, "beta"));
    let out = ctl(&d, &["worker", "restart", "--rolling", "all", "--wait"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}\n{}", text(&out.stderr), d.log_text());
    let _reaper = pids(&d);
    let (alpha2, beta2) = (pid_of(&d, "alpha"), pid_of(&d, "beta"));
    assert_eq!(
        stdout,
        format!(
            "restart: alpha\nrestart: beta\nalpha back: pid {alpha2} (was {alpha})\nbeta back: pid {beta2} (was {beta})\n"
        )
    );
    assert!(d.log_text().contains("rolling restart: restarting worker beta (0 more after it)"));

    // Names, without --wait: the answer only.
    let out = ctl(&d, &["worker", "restart", "--rolling", "beta", "alpha"]);
    assert_eq!(text(&out.stdout), "restart: beta\nrestart: alpha\n", "{}", text(&out.stderr));
    until("both rolled again", LIMIT, || d.log_text().matches("worker alpha is looping again").count() == 2);
    let _reaper = pids(&d);
    // `all` with names, or --rolling on another action: refused before anything is sent.
    let out = ctl(&d, &["worker", "restart", "all", "alpha"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = ctl(&d, &["worker", "stop", "--rolling", "alpha"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(worker(&d, "alpha")["state"], "looping");
}

#[test]
fn tomtectl_names_a_worker_that_does_not_come_back_and_exits_1() {
    let d = chaos(None);
    let _reaper = pids(&d);
    until("crasher failed", LIMIT, || worker(&d, "crasher")["state"] == "failed");
    let out = ctl(&d, &["worker", "restart", "--rolling", "crasher", "steady", "--wait"]);
    let _reaper = pids(&d);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stderr, "tomtectl: worker crasher did not come back (state failed)\n");
    let steady = pid_of(&d, "steady");
    assert!(stdout.starts_with("restart: crasher\nrestart: steady\n"), "{stdout}");
    assert!(stdout.contains(&format!("steady back: pid {steady} (was ")), "{stdout}");
}
