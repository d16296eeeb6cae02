//! Async handlers on the real loop: asks joined, timeouts, workers failing mid-ask, clients
//! leaving mid-ask, and panics in futures, listeners and timers — on the gather, chaos and
//! counter example daemons.

mod common;

use std::io::{BufReader, Write};
use std::time::{Duration, Instant};

use common::*;

/// `daemon.status`'s count of answers owed by async handlers.
fn tasks(d: &Daemon) -> i64 {
    call(d, "daemon.status", "[]")["result"]["tasks"].as_i64().expect("daemon.status reports tasks")
}

fn looping(d: &Daemon, names: &[&str]) {
    until("workers looping", Duration::from_secs(20), || names.iter().all(|n| worker(d, n)["state"] == "looping"));
}

#[test]
fn gather_asks_both_workers_at_once_and_answers_each_count() {
    let d = Daemon::new("gather", &[]).start();
    let _reaper = pids(&d);
    looping(&d, &["alpha", "beta"]);
    let v = call(&d, "gather.both", "[]");
    let r = &v["result"];
    assert!(r["alpha"].as_i64().is_some_and(|n| n >= 0), "{v}");
    assert!(r["beta"].as_i64().is_some_and(|n| n >= 0), "{v}");
    // The counts are the workers' own: they only grow.
    until("counts grow", Duration::from_secs(20), || {
        let again = call(&d, "gather.both", "[]");
        again["result"]["alpha"].as_i64() > r["alpha"].as_i64() && again["result"]["beta"].as_i64() > r["beta"].as_i64()
    });
    assert_eq!(tasks(&d), 0, "every answered call leaves no task behind");
}

#[test]
fn a_stopped_worker_is_an_error_member_and_a_frozen_one_times_out_while_others_are_served() {
    let d = Daemon::new("gather", &[]).start();
    let mut reaper = pids(&d);
    looping(&d, &["alpha", "beta"]);

    assert_eq!(call(&d, "worker.stop", r#"["beta"]"#)["result"], true);
    // Stopped for good (not just asked to stop: a worker in its spindown cannot be started).
    until("beta stopped", Duration::from_secs(20), || worker(&d, "beta")["state"] == "exited");
    let v = call(&d, "gather.both", "[]");
    assert!(v["result"]["alpha"].is_i64(), "{v}");
    let why = v["result"]["beta"]["error"].as_str().unwrap_or_else(|| panic!("beta is an error member: {v}"));
    assert!(why.contains("beta") && why.contains("not running"), "{v}");

    assert_eq!(call(&d, "worker.start", r#"["beta"]"#)["result"], true);
    looping(&d, &["beta"]);
    let beta = worker(&d, "beta")["pid"].as_i64().unwrap() as i32;
    reaper.0.push(beta);
    // Frozen: it cannot answer. The call waits 2 s for it, no more, and other clients are
    // served meanwhile (one thread, but nothing blocks it).
    kill(beta, libc::SIGSTOP);
    let started = Instant::now();
    let slow = {
        let sock = d.sock.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(std::os::unix::net::UnixStream::connect(sock).unwrap());
            json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"gather.both","id":7}"#))
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let status = call(&d, "daemon.status", "[]");
    assert!(status["result"]["pid"].is_i64(), "served while gather.both waits: {status}");
    assert!(!slow.is_finished(), "gather.both answered before its 2 s limit without beta");
    assert!(status["result"]["tasks"].as_i64() >= Some(1), "the waiting call is a task: {status}");
    let v = slow.join().unwrap();
    let waited = started.elapsed();
    kill(beta, libc::SIGCONT);
    assert!(v["result"]["alpha"].is_i64(), "{v}");
    let why = v["result"]["beta"]["error"].as_str().unwrap_or_else(|| panic!("beta timed out: {v}"));
    assert!(why.contains("Timed out") && why.contains("2s"), "{v}");
    assert!(waited >= Duration::from_secs(2), "answered after {waited:?}, before the limit");
    until("no task left", Duration::from_secs(10), || tasks(&d) == 0);
    // beta's late answer is discarded, and the next call has both.
    until("beta answers again", Duration::from_secs(20), || call(&d, "gather.both", "[]")["result"]["beta"].is_i64());
}

#[test]
fn a_worker_killed_mid_ask_fails_the_ask_and_the_next_call_is_served() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    looping(&d, &["steady"]);
    let steady = worker(&d, "steady")["pid"].as_i64().unwrap() as i32;
    let slow = {
        let sock = d.sock.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(std::os::unix::net::UnixStream::connect(sock).unwrap());
            json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"chaos.ask","params":["steady","slow"],"id":1}"#))
        })
    };
    until("the ask is waiting", Duration::from_secs(10), || tasks(&d) == 1);
    kill(steady, libc::SIGKILL);
    let v = slow.join().unwrap();
    assert_eq!(v["error"]["code"], -32011, "{v}");
    assert!(v["error"]["data"].as_str().unwrap().contains("ended before answering"), "{v}");
    assert_eq!(tasks(&d), 0);
    looping(&d, &["steady"]);
    assert!(call(&d, "chaos.ask", r#"["steady","count"]"#)["result"].is_i64());
}

#[test]
fn a_client_that_hangs_up_mid_call_leaves_no_task_behind() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    for _ in 0..3 {
        let mut s = d.connect();
        s.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"chaos.sleep\",\"params\":[600000],\"id\":1}\n").unwrap();
        until("the call is a task", Duration::from_secs(10), || tasks(&d) == 1);
        drop(s);
        until("its task dropped with its client", Duration::from_secs(10), || tasks(&d) == 0);
    }
    // A sleep that ends answers.
    assert_eq!(call(&d, "chaos.sleep", "[30]")["result"], "slept");
    assert_eq!(d.cmd("status").status.code(), Some(0));
}

#[test]
fn panics_in_a_future_a_listener_and_a_timer_are_logged_and_the_daemon_goes_on() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);

    let v = call(&d, "chaos.panic_later", "[]");
    assert_eq!(v["error"]["code"], -32603, "{v}");
    assert!(v["error"]["data"].as_str().unwrap().contains("a future gave up"), "{v}");
    assert_eq!(tasks(&d), 0);

    assert_eq!(call(&d, "chaos.emit", r#"["chaos.boom"]"#)["result"], true);
    until("the listener's panic logged", Duration::from_secs(10), || {
        d.log_text().contains("a listener of chaos.boom panicked: a listener gave up")
    });

    let before = call(&d, "chaos.arm_timer", "[]")["result"].as_i64().unwrap();
    until("the timer's panic logged", Duration::from_secs(10), || {
        d.log_text().contains("a timer panicked: a timer gave up")
    });
    // The timer keeps ticking after its panic.
    until("the timer ticks on", Duration::from_secs(10), || {
        call(&d, "chaos.arm_timer", "[]")["result"].as_i64().is_some_and(|n| n > before + 2)
    });
    assert_eq!(call(&d, "daemon.status", "[]")["result"]["pid"].as_i64(), d.pid().map(i64::from));
}

#[test]
fn an_async_call_inside_a_batch_is_one_clear_error_and_a_notification_runs_silently() {
    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    let mut r = BufReader::new(d.connect());
    let batch = r#"[{"jsonrpc":"2.0","method":"chaos.sleep","params":[1],"id":1},{"jsonrpc":"2.0","method":"daemon.status","id":2}]"#;
    let v = json(&ndjson(&mut r, batch));
    assert_eq!(v[0]["error"]["code"], -32603, "{v}");
    assert!(v[0]["error"]["data"].as_str().unwrap().contains("chaos.sleep answers later"), "{v}");
    assert!(v[1]["result"]["pid"].is_i64(), "{v}");
    // A notification of an async method answers nothing, and the next call's answer is the
    // next line: order is kept.
    r.get_mut().write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"chaos.sleep\",\"params\":[50]}\n").unwrap();
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"chaos.sleep","params":[1],"id":9}"#));
    assert_eq!(v["id"], 9, "{v}");
    assert_eq!(v["result"], "slept");
}

#[test]
fn the_counter_keeps_its_total_in_the_application_state() {
    let d = Daemon::new("counter", &[]).start();
    assert_eq!(call(&d, "counter.get", "[]")["result"], 0);
    assert_eq!(call(&d, "counter.add", "[5]")["result"], 5);
    assert_eq!(call(&d, "counter.add", r#"{"n":-2}"#)["result"], 3);
    let bad = call(&d, "counter.add", r#"["x"]"#);
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert!(bad["error"]["data"].as_str().unwrap().contains("'n'"), "names the parameter: {bad}");
    let extra = call(&d, "counter.add", r#"{"n":1,"m":2}"#);
    assert_eq!(extra["error"]["code"], -32602, "{extra}");
    assert!(extra["error"]["data"].as_str().unwrap().contains("'m'"), "{extra}");
    assert_eq!(call(&d, "counter.get", "[]")["result"], 3);
    let sig = call(&d, "system.methodSignature", r#"["counter.add"]"#);
    assert_eq!(sig["result"], serde_json::json!([["int", "int"]]), "{sig}");
}
