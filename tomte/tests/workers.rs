//! Workers for real: forks, signals, restarts, the shared-memory channel, on the pool and chaos
//! example daemons.

mod common;

use std::io::BufReader;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn workers_are_forked_named_listed_and_hold_nothing_of_the_daemon() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    let daemon_pid = d.pid().unwrap();
    until("two looping workers", Duration::from_secs(20), || {
        let ws = workers(&d);
        ws.len() == 2 && ws.iter().all(|w| w["state"] == "looping" && w["iterations"].as_i64() > Some(0))
    });
    for w in workers(&d) {
        let pid = w["pid"].as_i64().unwrap();
        let name = w["name"].as_str().unwrap();
        assert_eq!(w["policy"], "always");
        assert_eq!(w["interval_ms"], 100);
        assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim(), name, "ps shows the name");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let ppid: i32 = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert_eq!(ppid, daemon_pid);
        // Only stdio and the two eventfds of its channel: no listener, no pid file.
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|p| p.display().to_string())
            .collect();
        assert!(fds.iter().all(|f| !f.contains("socket:") && !f.ends_with(".pid")), "{name} holds {fds:?}");
        assert_eq!(fds.iter().filter(|f| f.contains("eventfd")).count(), 2, "{name} holds {fds:?}");
    }
    let status = call(&d, "daemon.status", "[]");
    assert_eq!(status["result"]["workers"], 2);
    assert_eq!(call(&d, "worker.status", r#"["beta"]"#)["result"], "looping");
}

#[test]
fn kill_9_of_a_worker_brings_a_new_one() {
    let d = Daemon::new("pool", &[]).start();
    let mut reaper = pids(&d);
    until("alpha running", Duration::from_secs(20), || worker(&d, "alpha")["pid"].is_i64());
    let old = worker(&d, "alpha")["pid"].as_i64().unwrap() as i32;
    kill(old, libc::SIGKILL);
    until("a new alpha", Duration::from_secs(20), || {
        let w = worker(&d, "alpha");
        w["pid"].as_i64().is_some_and(|p| p as i32 != old) && w["state"] == "looping"
    });
    let w = worker(&d, "alpha");
    reaper.0.push(w["pid"].as_i64().unwrap() as i32);
    assert_eq!(w["restarts"], 1);
    assert_eq!(w["last_exit"], "killed by SIGKILL");
    assert!(!alive(old));
    assert!(d.log_text().contains("worker alpha killed by SIGKILL; restarting in 100ms"), "{}", d.log_text());
}

#[test]
fn pause_stops_the_count_and_resume_starts_it_again() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    let count = || call(&d, "pool.count", r#"{"name":"alpha"}"#)["result"].as_i64().expect("a count");
    until("alpha counting", Duration::from_secs(20), || count() > 0);
    assert_eq!(call(&d, "worker.pause", r#"["alpha"]"#)["result"], true);
    until("alpha paused", Duration::from_secs(20), || worker(&d, "alpha")["state"] == "paused");
    let paused = count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(count(), paused, "a paused worker does not iterate");
    assert_eq!(worker(&d, "beta")["state"], "looping", "only alpha is paused");
    let all = call(&d, "worker.resume", "[]");
    assert_eq!(all["result"], json(r#"{"alpha":true,"beta":true}"#));
    until("alpha counting again", Duration::from_secs(20), || count() > paused);
}

#[test]
fn pool_count_asks_the_worker_and_matches_its_own_count() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    until("beta counting", Duration::from_secs(20), || worker(&d, "beta")["iterations"].as_i64() > Some(2));
    call(&d, "worker.pause", r#"["beta"]"#);
    until("beta paused", Duration::from_secs(20), || worker(&d, "beta")["state"] == "paused");
    // Paused, the count stands still: what the worker answers is what it published.
    let asked = call(&d, "pool.count", r#"["beta"]"#)["result"].as_i64().unwrap();
    assert_eq!(Some(asked), worker(&d, "beta")["iterations"].as_i64());
    // Many clients asking at once all get answers, each on its own connection.
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let sock = d.sock.clone();
            std::thread::spawn(move || {
                let s = std::os::unix::net::UnixStream::connect(sock).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut r = BufReader::new(s);
                for i in 0..20 {
                    let line = format!(r#"{{"jsonrpc":"2.0","method":"pool.count","params":["alpha"],"id":{i}}}"#);
                    let v = json(&ndjson(&mut r, &line));
                    assert!(v["result"].is_i64(), "{v}");
                    assert_eq!(v["id"], i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let unknown = call(&d, "pool.count", r#"["gamma"]"#);
    assert_eq!(unknown["error"]["code"], -32010, "{unknown}");
    assert_eq!(unknown["error"]["message"], "Unknown worker");
    assert!(unknown["error"]["data"].as_str().unwrap().contains("unknown worker 'gamma'"));
}

#[test]
fn the_daemon_killed_with_9_leaves_no_worker_behind() {
    let d = Daemon::new("pool", &[]).start();
    let reaper = pids(&d);
    assert_eq!(reaper.0.len(), 2);
    kill(d.pid().unwrap(), libc::SIGKILL);
    let t = Instant::now();
    until("workers gone", Duration::from_secs(10), || reaper.0.iter().all(|&p| !alive(p)));
    assert!(t.elapsed() < Duration::from_secs(1), "workers outlived the daemon by {:?}", t.elapsed());
}

#[test]
fn stop_makes_every_worker_spin_down() {
    let d = Daemon::new("pool", &[]).start();
    let reaper = pids(&d);
    until("both spun up", Duration::from_secs(20), || {
        let log = d.log_text();
        log.contains("spinup alpha") && log.contains("spinup beta")
    });
    let out = d.cmd("stop");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = d.log_text();
    assert!(log.contains("spindown alpha") && log.contains("spindown beta"), "{log}");
    assert!(reaper.0.iter().all(|&p| !alive(p)), "a worker outlived stop");
}

#[test]
fn stop_start_restart_over_rpc() {
    let d = Daemon::new("pool", &[]).start();
    let mut reaper = pids(&d);
    let first = worker(&d, "alpha")["pid"].as_i64().unwrap();
    assert_eq!(call(&d, "worker.stop", r#"["alpha"]"#)["result"], true);
    until("alpha exited", Duration::from_secs(20), || worker(&d, "alpha")["state"] == "exited");
    let w = worker(&d, "alpha");
    assert!(w["pid"].is_null());
    assert_eq!(w["last_exit"], "exited 0");
    assert!(d.log_text().contains("spindown alpha"));
    let asked = call(&d, "pool.count", r#"["alpha"]"#);
    assert!(asked["error"]["data"].as_str().unwrap().contains("not running"), "{asked}");
    assert_eq!(call(&d, "worker.start", r#"["alpha"]"#)["result"], true);
    let second = worker(&d, "alpha")["pid"].as_i64().unwrap();
    reaper.0.push(second as i32);
    assert_ne!(first, second);
    assert_eq!(call(&d, "worker.restart", r#"["alpha"]"#)["result"], true);
    until("alpha restarted", Duration::from_secs(20), || {
        let w = worker(&d, "alpha");
        w["pid"].as_i64().is_some_and(|p| p != second) && w["state"] == "looping"
    });
    reaper.0.push(worker(&d, "alpha")["pid"].as_i64().unwrap() as i32);
    assert_eq!(call(&d, "worker.pause", r#"["nobody"]"#)["error"]["code"], -32010);
}

#[test]
fn a_panic_is_logged_with_its_message_and_the_worker_restarted() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    until("panicky restarted twice", Duration::from_secs(30), || worker(&d, "panicky")["restarts"].as_i64() >= Some(2));
    let log = d.log_text();
    assert!(log.contains("worker panicky panicked: boom at iteration 3"), "{log}");
    assert!(log.contains("worker panicky exited 70; restarting"), "{log}");
    assert_eq!(worker(&d, "panicky")["last_exit"], "exited 70");
}

#[test]
fn a_crash_loop_ends_in_failed_and_the_daemon_keeps_answering() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    until("crasher failed", Duration::from_secs(30), || worker(&d, "crasher")["state"] == "failed");
    let w = worker(&d, "crasher");
    assert_eq!(w["restarts"], 3);
    assert!(d.log_text().contains("worker crasher exited 70: more than 3 restarts"), "{}", d.log_text());
    assert_eq!(call(&d, "daemon.status", "[]")["result"]["workers"], 4);
    assert_eq!(worker(&d, "steady")["state"], "looping", "the others are untouched");
    // A failed worker stays down until asked to start again.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(worker(&d, "crasher")["restarts"], 3);
}

#[test]
fn a_hung_worker_is_killed_and_restarted() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    until("sleeper killed as hung", Duration::from_secs(30), || {
        worker(&d, "sleeper")["last_exit"].as_str().is_some_and(|e| e.starts_with("killed: hung"))
    });
    until("sleeper back", Duration::from_secs(30), || worker(&d, "sleeper")["pid"].is_i64());
    assert!(d.log_text().contains("worker sleeper hung: no heartbeat"));
}

#[test]
fn a_worker_dying_before_it_answers_is_an_error_not_a_hang() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    until("steady looping", Duration::from_secs(20), || worker(&d, "steady")["state"] == "looping");
    let v = call(&d, "chaos.ask", r#"["steady","die"]"#);
    assert_eq!(v["error"]["code"], -32011, "{v}");
    assert!(v["error"]["data"].as_str().unwrap().contains("ended before answering (exited 9)"), "{v}");
    // Either the worker answers with a fault, or it dies first: both are errors, not hangs.
    let v = call(&d, "chaos.ask", r#"["steady","panic"]"#);
    // A fault from the worker (−32603) or the worker gone or restarting (−32011).
    let code = v["error"]["code"].as_i64();
    assert!(matches!(code, Some(-32603 | -32011)), "a panicking handler must answer an error: {v}");
    until("steady back", Duration::from_secs(20), || worker(&d, "steady")["state"] == "looping");
    let v = call(&d, "chaos.ask", r#"["steady","count"]"#);
    assert!(v["result"].is_i64(), "{v}");
}

#[test]
fn tomtectl_shows_and_drives_workers() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    let sock = format!("unix://{}", d.sock.display());
    let ctl = |args: &[&str]| {
        std::process::Command::new(binary("tomtectl")).arg("--socket").arg(&sock).args(args).output().unwrap()
    };
    until("both looping", Duration::from_secs(20), || workers(&d).iter().all(|w| w["state"] == "looping"));
    let out = ctl(&["workers"]);
    let table = text(&out.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    for name in ["alpha", "beta"] {
        let line = table.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {table}"));
        let pid = worker(&d, name)["pid"].as_i64().unwrap().to_string();
        assert!(line.contains(&pid) && line.contains("looping"), "{line}");
    }
    let out = ctl(&["worker", "pause", "beta"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), "pause: beta");
    until("beta paused", Duration::from_secs(20), || worker(&d, "beta")["state"] == "paused");
    let out = ctl(&["worker", "stop", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown worker 'nobody'"));
}

#[test]
fn the_factory_runs_in_the_worker_and_its_files_stay_open() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    until("steady looping", Duration::from_secs(20), || worker(&d, "steady")["state"] == "looping");
    let v = call(&d, "chaos.ask", r#"["steady","whoami"]"#);
    assert_eq!(v["result"], "steady", "{v}");
}

#[test]
fn a_call_waiting_for_a_slow_worker_is_neither_idle_nor_holding_a_slot_once_its_client_left() {
    let d = Daemon::new("chaos", &["--idle-timeout", "1", "--max-connections", "3"]).start();
    let _reaper = pids(&d);
    until("steady looping", Duration::from_secs(20), || worker(&d, "steady")["state"] == "looping");
    // One waits for its slow answer (4 s) past the idle timeout (1 s).
    let slow = std::thread::spawn({
        let sock = d.sock.clone();
        move || {
            let s = std::os::unix::net::UnixStream::connect(sock).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut r = BufReader::new(s);
            json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"chaos.ask","params":["steady","slow"],"id":2}"#))
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    // Two clients ask something slow and leave: with three slots, their slots must come back
    // before the answers do, or nobody else gets in.
    for _ in 0..2 {
        let mut s = d.connect();
        std::io::Write::write_all(
            &mut s,
            b"{\"jsonrpc\":\"2.0\",\"method\":\"chaos.ask\",\"params\":[\"steady\",\"slow\"],\"id\":3}\n",
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    until("a free slot", Duration::from_secs(3), || {
        call(&d, "daemon.status", "[]")["result"]["connections"].as_i64().is_some()
    });
    let v = slow.join().unwrap();
    assert_eq!(v["result"], "slept", "{v}");
}

#[test]
fn asking_a_worker_inside_a_batch_is_refused_before_anything_is_sent() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    until("steady looping", Duration::from_secs(20), || worker(&d, "steady")["state"] == "looping");
    let mut r = BufReader::new(d.connect());
    // `die` would kill the worker if it were sent: it must not be.
    let batch = r#"[{"jsonrpc":"2.0","method":"chaos.ask","params":["steady","die"],"id":1},{"jsonrpc":"2.0","method":"daemon.status","id":2}]"#;
    let v = json(&ndjson(&mut r, batch));
    assert_eq!(v[0]["error"]["code"], -32603, "{v}");
    assert!(v[0]["error"]["data"].as_str().unwrap().contains("a batch or a system.multicall cannot wait for"), "{v}");
    assert!(v[1]["result"]["pid"].is_i64(), "{v}");
    std::thread::sleep(Duration::from_millis(200));
    let w = worker(&d, "steady");
    assert_eq!(w["restarts"], 0, "the worker was asked anyway: {w}");
    // Alone, a call is asked.
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"chaos.ask","params":["steady","count"],"id":3}"#));
    assert!(v["result"].is_i64(), "{v}");
}
