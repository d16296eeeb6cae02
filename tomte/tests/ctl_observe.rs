//! `tomtectl events`, `logs -f`, `health` and `metrics` against the real pool daemon: worker
//! state events during a restart, a worker's spinup line followed (and another worker's
//! filtered out), health exit codes as a worker fails and is started again, and the metrics
//! table of a daemon that has served calls.
//!
//! Needs the pool example and tomtectl built: `cargo build -p tomte --examples -p tomtectl`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(30);

fn ctl(d: &Daemon, args: &[&str]) -> Output {
    let sock = format!("unix://{}", d.sock.display());
    Command::new(binary("tomtectl")).arg("--socket").arg(&sock).args(args).output().expect("run tomtectl")
}

/// A `tomtectl` that follows a stream (`events`, `logs -f`): its stdout lines collected as they
/// come. Killed by pid on drop while not reaped.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    fn new(d: &Daemon, args: &[&str]) -> Follower {
        let sock = format!("unix://{}", d.sock.display());
        let mut child = Command::new(binary("tomtectl"))
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tomtectl");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = BufReader::new(child.stdout.take().unwrap());
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Follower { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits for its exit: the code and stderr.
    fn exit(&mut self) -> (Option<i32>, String) {
        until("tomtectl to exit", LIMIT, || self.child.try_wait().unwrap().is_some());
        let code = self.child.wait().unwrap().code();
        let mut err = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (code, err)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill(self.child.id() as i32, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Restarts worker `name` until `seen` holds: a follower subscribes just after it connects, so
/// a restart may come before its subscription does (then another restart is seen). Each try
/// waits a while for a first sign, `begun`, of the restart (a slow machine only makes more
/// tries); once it shows, `seen` is waited for without restarting again.
fn restart_until(d: &Daemon, name: &str, what: &str, mut begun: impl FnMut() -> bool, seen: impl FnMut() -> bool) {
    for _ in 0..10 {
        let out = ctl(d, &["worker", "restart", name]);
        assert!(out.status.success(), "worker restart {name}: {}", text(&out.stderr));
        if wait_for(Duration::from_secs(5), &mut begun) {
            until(what, LIMIT, seen);
            return;
        }
    }
    panic!("never saw {what}");
}

/// The daemon's open connections (the one asking included).
fn connections(d: &Daemon) -> i64 {
    call(d, "daemon.status", "[]")["result"]["connections"].as_i64().expect("daemon.status has connections")
}

/// Starts `followers` and waits until the daemon holds their connections (their subscriptions
/// follow at once): the test's own are closed by then, so that is the followers' and the one
/// asking. (A closed one the daemon has not yet seen close may pass for a follower's: the
/// restarts that follow are retried.)
fn followers(d: &Daemon, followers: &[&[&str]]) -> Vec<Follower> {
    let started: Vec<Follower> = followers.iter().map(|args| Follower::new(d, args)).collect();
    let want = 1 + started.len() as i64;
    until("the followers connected", LIMIT, || connections(d) >= want);
    started
}

fn looping(d: &Daemon) -> bool {
    workers(d).iter().all(|w| w["state"] == "looping")
}

#[test]
fn events_show_worker_state_changes_during_a_restart_and_end_with_the_daemon() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    until("both workers looping", LIMIT, || looping(&d));
    let old_pid = worker(&d, "alpha")["pid"].as_i64().unwrap();
    let mut events = followers(&d, &[&["events", "daemon.worker.*"]]).remove(0);
    let alpha = |f: &Follower| -> Vec<serde_json::Value> {
        // TIME NAME DATA; other daemon.worker.* events (daemon.worker.failed) are not states.
        f.lines()
            .iter()
            .filter_map(|l| {
                let mut words = l.splitn(3, ' ');
                let (time, name, data) = (words.next()?, words.next()?, words.next()?);
                assert!(time.starts_with("20") && time.contains('T'), "a timestamp first: {l}");
                assert!(name.starts_with("daemon.worker."), "{l}");
                (name == "daemon.worker.state").then(|| json(data))
            })
            .filter(|data| data["worker"] == "alpha")
            .collect()
    };
    // The events of alpha's new process: a spinup, then looping. (Events of the old one may
    // come first, even its own start when the subscription was quick: states travel from the
    // worker in frames, a loop turn behind what worker.list reads.)
    let new_pid = |s: &serde_json::Value| s["pid"].as_i64().filter(|&p| p != old_pid);
    restart_until(
        &d,
        "alpha",
        "alpha looping in a new process",
        || alpha(&events).iter().any(|s| new_pid(s).is_some()),
        || alpha(&events).iter().any(|s| s["state"] == "looping" && new_pid(s).is_some()),
    );
    let states = alpha(&events);
    let first_new = states.iter().position(|s| new_pid(s).is_some()).unwrap();
    let pid = new_pid(&states[first_new]).unwrap();
    let names = |from: &[serde_json::Value]| -> Vec<String> {
        from.iter().filter_map(|s| s["state"].as_str().map(str::to_owned)).collect()
    };
    let new: Vec<&serde_json::Value> = states[first_new..].iter().filter(|s| s["pid"] == pid).collect();
    let new_names: Vec<&str> = new.iter().filter_map(|s| s["state"].as_str()).collect();
    assert_eq!(new_names[..2], ["spinup", "looping"], "the new process {pid}: {:?}", names(&states));
    assert!(new.iter().all(|s| s["last_exit"].is_string()), "it tells how the old one ended: {new:?}");
    // Before it, alpha going down: its old process, or none.
    for s in &states[..first_new] {
        assert!(s["pid"] == old_pid || s["pid"].is_null(), "{:?}", names(&states));
        assert!(["spinup", "looping", "spindown", "exited", "backoff"].contains(&s["state"].as_str().unwrap()), "{s}");
    }
    // The daemon stops: the stream ends, cleanly.
    let out = d.cmd("stop");
    assert!(out.status.success(), "stop: {}", text(&out.stderr));
    let (code, err) = events.exit();
    assert_eq!(code, Some(0), "stderr: {err}");
}

#[test]
fn logs_follow_shows_alpha_spinup_line_and_not_betas() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    until("both workers looping", LIMIT, || looping(&d));
    let mut both = followers(&d, &[&["logs", "-f", "--worker", "alpha"], &["logs", "-f"]]).into_iter();
    let (only_alpha, all) = (both.next().unwrap(), both.next().unwrap());
    let both_hello = || only_alpha.count("hello from alpha") > 0 && all.count("hello from alpha") > 0;
    restart_until(&d, "alpha", "hello from alpha in both followers", both_hello, both_hello);
    // Both follow now. Beta says hello (the unfiltered follower sees it), then alpha again:
    // records come in order, so once the filtered one shows alpha's second hello it has had
    // beta's too, and left it out.
    let before = only_alpha.count("hello from alpha");
    // Both are subscribed now: one restart each.
    let out = ctl(&d, &["worker", "restart", "beta"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    until("hello from beta", LIMIT, || all.count("hello from beta") > 0);
    let out = ctl(&d, &["worker", "restart", "alpha"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    until("alpha's next hello", LIMIT, || only_alpha.count("hello from alpha") > before);
    let lines = only_alpha.lines();
    assert!(lines.iter().all(|l| l.contains(" [alpha] ")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("beta")), "{lines:#?}");
    let hello = lines.iter().find(|l| l.contains("hello from alpha")).unwrap();
    // TIME LEVEL [worker] target: message
    let words: Vec<&str> = hello.split_whitespace().collect();
    assert!(words[0].starts_with("20") && words[0].contains('T'), "a timestamp first: {hello}");
    assert!(["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&words[1]), "{hello}");
    assert_eq!(words[2], "[alpha]", "{hello}");
    assert!(hello.ends_with(": hello from alpha"), "{hello}");
    let all_lines = all.lines();
    assert!(all_lines.iter().any(|l| l.contains("[beta]") && l.contains("hello from beta")), "{all_lines:#?}");
}

#[test]
fn health_exits_0_when_ready_1_with_a_failed_worker_and_1_when_nothing_listens() {
    // No restart after a crash: a worker killed stays failed.
    let d = Daemon::new("pool", &[]).with_env("POOL_CRASH_LIMIT", "0").start();
    let _reaper = pids(&d);
    until("health 0", LIMIT, || ctl(&d, &["health"]).status.code() == Some(0));
    let out = ctl(&d, &["health"]);
    assert_eq!(text(&out.stdout), "ready\n");
    let out = ctl(&d, &["health", "--verbose"]);
    assert_eq!(out.status.code(), Some(0));
    let verbose = text(&out.stdout);
    for check in ["worker:alpha", "worker:beta"] {
        assert!(verbose.lines().any(|l| l.trim_start().starts_with("ok") && l.contains(check)), "{verbose}");
    }

    let alpha = worker(&d, "alpha")["pid"].as_i64().unwrap() as i32;
    kill(alpha, libc::SIGKILL);
    until("alpha failed", LIMIT, || worker(&d, "alpha")["state"] == "failed");
    let out = ctl(&d, &["health"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.starts_with("not ready\n"), "{said}");
    assert!(said.lines().any(|l| l.contains("FAIL") && l.contains("worker:alpha")), "{said}");
    assert!(!said.contains("worker:beta"), "only the failing checks: {said}");

    let out = ctl(&d, &["worker", "start", "alpha"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    until("health 0 again", LIMIT, || ctl(&d, &["health"]).status.code() == Some(0));

    let out = d.cmd("stop");
    assert!(out.status.success(), "stop: {}", text(&out.stderr));
    let out = ctl(&d, &["health"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot connect"), "{}", text(&out.stderr));
}

#[test]
fn metrics_prints_the_table_of_a_daemon_that_served_calls() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    until("both workers looping", LIMIT, || looping(&d));
    for _ in 0..3 {
        assert!(ctl(&d, &["status"]).status.success());
    }
    let out = ctl(&d, &["metrics"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let words = |start: &str| -> Vec<String> {
        let line = table.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no {start} in:\n{table}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    let head = words("METHOD");
    let total = head.iter().position(|h| h == "TOTAL").expect("a TOTAL column");
    let status = words("daemon.status");
    assert!(status[total].parse::<u64>().unwrap() >= 3, "{table}");
    assert_ne!(status[total + 1], "-", "a p50 from the buckets: {table}");
    assert_ne!(status[total + 2], "-", "a p99: {table}");
    let raw = text(&ctl(&d, &["metrics", "--raw"]).stdout);
    // Connections per listener, when the daemon counts them.
    if raw.contains("tomte_connections{") {
        assert_eq!(words("LISTENER")[..2], ["LISTENER", "OPEN"]);
        assert!(table.contains(&format!("unix://{}", d.sock.display())), "{table}");
    }
    if raw.contains("tomte_connection_bytes_received_total") {
        assert_eq!(words("TRAFFIC")[1], "in", "{table}");
    }
    for w in ["alpha", "beta"] {
        assert_eq!(words(w)[1], "yes", "{w} up: {table}");
    }
    let process = words("PROCESS");
    assert!(process.contains(&"RSS".to_owned()) && process.contains(&"CPU".to_owned()), "{table}");
    assert!(table.contains("open fds"), "{table}");

    let out = ctl(&d, &["metrics", "--raw"]);
    assert_eq!(out.status.code(), Some(0));
    let raw = text(&out.stdout);
    assert!(raw.contains("# TYPE tomte_rpc_calls_total counter"), "{raw}");
    assert!(raw.contains("process_resident_memory_bytes "), "{raw}");
}

#[test]
fn logs_follow_without_control_is_refused_and_says_why() {
    // An anonymous TCP client on loopback holds read and call, not control: log records tell
    // what the daemon logs about every client.
    let tcp = format!("tcp://127.0.0.1:{}", free_port());
    let d = Daemon::new("pool", &["--socket", &tcp]).start();
    let _reaper = pids(&d);
    let out = Command::new(binary("tomtectl")).args(["--socket", &tcp, "logs", "-f"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "an RPC error");
    let err = text(&out.stderr);
    assert!(err.contains("control"), "{err}");
    // Its health is readable all the same.
    until("health 0 over TCP", LIMIT, || {
        Command::new(binary("tomtectl")).args(["--socket", &tcp, "health"]).output().unwrap().status.code() == Some(0)
    });
}
