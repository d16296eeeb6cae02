//! Attacks on the worker pools, found by a review of issue 13: each test is a way a pool broke
//! a promise of its documentation — a call lost to a scale-down, a process nobody asks, calls
//! failed by a graceful stop, a loop spinning — each comment says how it broke; all are fixed,
//! and these keep them fixed. Driven through the `crew` example.

mod common;

use std::io::BufReader;
use std::time::Duration;

use common::*;
use serde_json::Value as Json;

/// A `crew` daemon with `env` and, when given, a configuration file of `config`.
fn crew(env: &[(&str, &str)], config: Option<&str>) -> Daemon {
    let mut d = Daemon::new("crew", &[]);
    if let Some(text) = config {
        let path = d.dir.path("crew.toml");
        std::fs::write(&path, text).unwrap();
        d = d.add_args(&["--config", path.to_str().unwrap()]);
    }
    for (k, v) in env {
        d = d.with_env(k, v);
    }
    d.start()
}

fn instances(d: &Daemon) -> Vec<Json> {
    worker(d, "crew")["instances"].as_array().expect("a pool lists its instances").clone()
}

fn looping(d: &Daemon, n: usize) -> bool {
    let all = instances(d);
    all.len() == n && all.iter().all(|i| i["state"] == "looping")
}

/// One `crew.work(ms)` on its own connection, in a thread: its answer.
fn work(d: &Daemon, ms: u64) -> std::thread::JoinHandle<Json> {
    let stream = d.connect();
    stream.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let line = format!(r#"{{"jsonrpc":"2.0","method":"crew.work","params":{{"ms":{ms}}},"id":1}}"#);
        let mut answer = String::new();
        std::io::Write::write_all(r.get_mut(), format!("{line}\n").as_bytes()).unwrap();
        match std::io::BufRead::read_line(&mut r, &mut answer) {
            Ok(n) if n > 0 => json(&answer),
            _ => Json::String("connection closed without an answer".to_owned()),
        }
    })
}

/// With the pool's 2 instances looping, a `crew.work(ms)` in flight on each, then the pool
/// scaled to 1: the two calls.
fn both_busy_then_scaled_to_one(d: &Daemon, ms: u64) -> Vec<std::thread::JoinHandle<Json>> {
    until("2 instances looping", Duration::from_secs(20), || looping(d, 2));
    let calls: Vec<_> = (0..2).map(|_| work(d, ms)).collect();
    until("both asks in flight", Duration::from_secs(10), || in_flight(d) == 2);
    let scaled = call(d, "worker.scale", r#"{"name":"crew","instances":1}"#);
    assert_eq!(scaled["result"]["to"], 1, "{scaled}");
    calls
}

fn in_flight(d: &Daemon) -> u64 {
    worker(d, "crew")["in_flight"].as_u64().unwrap_or(0)
}

/// The docs: "A stopped instance answers the asks it holds before it ends ..., so a scale-down
/// fails no call." But the stop of a scaled-away instance escalates on the stop grace as any
/// stop does (SIGTERM after it, SIGKILL after it again): an ask longer than twice the grace —
/// well within its own deadline — is killed with its instance, and its call fails.
#[test]
fn a_scale_down_waits_for_an_ask_longer_than_twice_the_stop_grace() {
    let d = crew(&[("CREW_INSTANCES", "2")], Some("[workers.crew]\nstop-grace = 0.5\n"));
    let _reaper = pids(&d);
    // Both instances busy for 3 s (the ask deadline is 30 s).
    let calls = both_busy_then_scaled_to_one(&d, 3000);
    let answers: Vec<Json> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    for a in &answers {
        assert!(a["result"]["worker"].is_string(), "a call failed because of a scale-down: {a}");
    }
}

/// An instance being scaled away is still found by its name while its process ends, and
/// `worker.restart NAME.k` (or `worker.restart` of every worker, or a rolling restart or reload
/// that reaches it) stops it *with restart*: the retired instance comes back, runs for ever
/// (restarted per policy), takes no asks (it is retired), is never reused by a scale-up (its
/// process runs), and is not counted in the pool's size.
#[test]
fn restarting_an_instance_being_scaled_away_does_not_bring_it_back() {
    let d = crew(&[("CREW_INSTANCES", "2")], None);
    let _reaper = pids(&d);
    let calls = both_busy_then_scaled_to_one(&d, 1500);
    // crew.1 is retired, finishing its ask: restart it by name.
    let restarted = call(&d, "worker.restart", r#"{"name":"crew.1"}"#);
    for c in calls {
        let a = c.join().unwrap();
        assert!(a["result"]["worker"].is_string(), "{a}");
    }
    std::thread::sleep(Duration::from_secs(2));
    let pool = worker(&d, "crew");
    let names: Vec<&str> = pool["instances"].as_array().unwrap().iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(pool["size"], 1, "{pool}");
    assert_eq!(
        names,
        ["crew.0"],
        "a pool of 1 lists only its instance once the scaled-away one ended (worker.restart said \
         {restarted}): {pool}"
    );
}

/// A graceful stop (SIGTERM, `daemon.shutdown`, and the old process of an upgrade, which all
/// go through `Ctx::stop`) drains the connections for up to 5 s so that calls in progress are
/// answered; a plain worker keeps answering then. A pool fails at once every ask waiting in its
/// queue (−32011 "pool is stopping with the daemon") although its instances still run.
#[test]
fn a_graceful_stop_serves_the_asks_waiting_in_a_pool_queue() {
    let d = crew(&[("CREW_INSTANCES", "1")], None);
    let _reaper = pids(&d);
    until("1 instance looping", Duration::from_secs(20), || looping(&d, 1));
    let calls: Vec<_> = (0..3).map(|_| work(&d, 500)).collect();
    until("two asks queued", Duration::from_secs(10), || worker(&d, "crew")["queued"] == 2);
    kill(d.pid().unwrap(), libc::SIGTERM);
    let answers: Vec<Json> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    // 3 × 500 ms of work fits well in the 5 s drain.
    let failed: Vec<&Json> = answers.iter().filter(|a| !a["result"]["worker"].is_string()).collect();
    assert!(failed.is_empty(), "calls failed by a graceful stop with the pool still running: {failed:?}");
}

/// CPU time (user + system, in clock ticks: 100 a second) the process has used.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// An autoscaled pool asks the loop to wake at its next shrink (`busy_at + 10 s`) even when it
/// cannot shrink (at its `min`), and at its next growth (`scaled_at + 200 ms`) even when it
/// cannot grow (at its `max`): once those moments are past the poll timeout is zero, and the
/// daemon spins on a core — for ever when idle at its minimum, and while asks wait at its
/// maximum.
#[test]
fn an_autoscaled_pool_at_its_bounds_leaves_the_loop_asleep() {
    let d = crew(&[("CREW_AUTOSCALE", "1-1")], None);
    let _reaper = pids(&d);
    let pid = d.pid().unwrap();
    until("1 instance looping", Duration::from_secs(20), || looping(&d, 1));
    // At its max with an ask waiting: nothing can grow, yet the loop never sleeps.
    let calls: Vec<_> = (0..2).map(|_| work(&d, 2500)).collect();
    until("one ask queued", Duration::from_secs(10), || worker(&d, "crew")["queued"] == 1);
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let queued_spin = cpu_ticks(pid) - before;
    for c in calls {
        assert!(c.join().unwrap()["result"]["worker"].is_string());
    }
    // Idle at its min, past the 10 s shrink moment (counted from the last busy moment).
    std::thread::sleep(Duration::from_secs(11));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let idle_spin = cpu_ticks(pid) - before;
    // A sleeping daemon uses ~0 ticks; 10 ticks a second is a tenth of a core.
    assert!(
        queued_spin <= 10 && idle_spin <= 20,
        "the daemon burnt {queued_spin} ticks in 1 s with an ask queued at the pool's max, {idle_spin} in 2 s idle at its min"
    );
}

/// `max_memory` asks the loop to wake a second after each instance's last memory check, but
/// the check skips a process that is stopping (a stop, a recycle, a scale-down): while one
/// stops, that moment is past and the loop spins.
#[test]
fn a_stopping_instance_with_max_memory_leaves_the_loop_asleep() {
    let d = crew(&[("CREW_INSTANCES", "1"), ("CREW_MAX_MEMORY_MB", "512")], None);
    let _reaper = pids(&d);
    let pid = d.pid().unwrap();
    until("1 instance looping", Duration::from_secs(20), || looping(&d, 1));
    let call_ = work(&d, 3000);
    until("its ask in flight", Duration::from_secs(10), || in_flight(&d) == 1);
    // Stopped while it works: it answers first, so it stays stopping for about 3 s.
    assert_eq!(call(&d, "worker.stop", r#"{"name":"crew.0"}"#)["result"], true);
    std::thread::sleep(Duration::from_millis(1200));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let spin = cpu_ticks(pid) - before;
    assert!(call_.join().unwrap()["result"]["worker"].is_string());
    assert!(spin <= 10, "the daemon burnt {spin} ticks in 1 s while an instance with max_memory stopped");
}

/// A pool's queue held each waiting ask as the client's request, whatever its size: with every
/// instance busy, 64 callers (the default queue limit) of an application method that forwards
/// its argument could each park a request of the 16 MiB message limit, 1 GiB in all, only to
/// be refused when an instance freed up ("can never be sent" down a 64 KiB channel). The queue
/// now holds the encoded frame, refused at once when the channel could never carry it.
#[test]
fn an_ask_too_big_for_the_channel_is_refused_at_once_even_when_it_would_wait() {
    let d = crew(&[("CREW_INSTANCES", "1")], None);
    let _reaper = pids(&d);
    until("the instance looping", Duration::from_secs(20), || looping(&d, 1));
    let busy = work(&d, 5000);
    until("the instance busy", Duration::from_secs(10), || in_flight(&d) == 1);
    let big = "x".repeat(256 << 10);
    let refused = call(&d, "crew.echo", &format!(r#"["{big}"]"#));
    let why = refused["error"]["data"].as_str().unwrap_or_default();
    assert!(why.contains("can never be sent"), "not refused for its size: {:.300}", refused.to_string());
    assert!(!busy.is_finished(), "the refusal waited for the busy instance");
    // A small ask behind the busy one waits in the queue and is answered.
    let small = call(&d, "crew.echo", r#"["small"]"#);
    assert_eq!(small["result"], "small", "{small}");
    let done = busy.join().unwrap();
    assert!(done["result"]["worker"].is_string(), "{done}");
}
