//! Worker pools, driven through the `crew` example: dispatch over every instance, an instance
//! killed under load, back-pressure, deadlines, scaling under load, recycling on memory and on
//! requests, commands to a pool or one instance, automatic scaling.

mod common;

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value as Json;

fn crew(env: &[(&str, &str)]) -> Daemon {
    let mut d = Daemon::new("crew", &[]);
    for (k, v) in env {
        d = d.with_env(k, v);
    }
    d.start()
}

/// The pool's entry in `worker.list`.
fn pool(d: &Daemon) -> Json {
    worker(d, "crew")
}

fn instances(d: &Daemon) -> Vec<Json> {
    pool(d)["instances"].as_array().expect("a pool lists its instances").clone()
}

fn looping(d: &Daemon, n: usize) -> bool {
    let all = instances(d);
    all.len() == n && all.iter().all(|i| i["state"] == "looping")
}

/// A client on its own connection making `crew.work` calls until told to stop: its answers.
fn client(d: &Daemon, ms: u64, calls: Option<usize>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Json>> {
    let stream = d.connect();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut answers = Vec::new();
        let mut id = 0;
        while calls.is_none_or(|n| answers.len() < n) && !stop.load(Ordering::Relaxed) {
            id += 1;
            let line = format!(r#"{{"jsonrpc":"2.0","method":"crew.work","params":{{"ms":{ms}}},"id":{id}}}"#);
            let answer = json(&ndjson(&mut r, &line));
            assert_eq!(answer["id"], id, "answers in order: {answer}");
            answers.push(answer);
        }
        answers
    })
}

#[test]
fn a_pool_of_4_answers_10_000_asks_from_32_clients_spread_over_every_instance() {
    let d = crew(&[("CREW_INSTANCES", "4")]);
    let _reaper = pids(&d);
    until("4 instances looping", Duration::from_secs(20), || looping(&d, 4));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..32).map(|c| client(&d, 0, Some(312 + usize::from(c < 16)), stop.clone())).collect();
    let mut by_worker: HashMap<String, u64> = HashMap::new();
    let mut total = 0;
    for c in clients {
        for answer in c.join().expect("a client") {
            let r = &answer["result"];
            let name = r["worker"].as_str().unwrap_or_else(|| panic!("an answer: {answer}"));
            assert!(["crew.0", "crew.1", "crew.2", "crew.3"].contains(&name), "{answer}");
            assert!(r["n"].as_u64().unwrap() >= 1 && r["pid"].as_i64().unwrap() > 1);
            *by_worker.entry(name.to_owned()).or_default() += 1;
            total += 1;
        }
    }
    assert_eq!(total, 10_000);
    assert_eq!(by_worker.len(), 4, "every instance worked: {by_worker:?}");
    // The pool's own counts agree with what the clients saw, instance by instance.
    let entry = pool(&d);
    assert_eq!(entry["pool"], true);
    assert_eq!(entry["size"], 4);
    assert_eq!(entry["asks"], 10_000, "{entry}");
    assert_eq!(entry["in_flight"], 0);
    for i in entry["instances"].as_array().unwrap() {
        let name = i["name"].as_str().unwrap();
        assert_eq!(i["pool"], "crew");
        assert_eq!(i["asks"].as_u64(), by_worker.get(name).copied(), "{name}: {i}");
        // Least busy first with 32 clients on 4 instances: none is starved.
        assert!(i["asks"].as_u64().unwrap() > 500, "{name} did little: {by_worker:?}");
    }
    // The same counts in /metrics, with the pool's size.
    let mut s = d.connect();
    std::io::Write::write_all(&mut s, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let (status, _, body) = http_response(&mut BufReader::new(s));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("tomte_pool_instances{pool=\"crew\"} 4\n"), "{body}");
    assert!(body.contains("tomte_pool_queued{pool=\"crew\"} 0\n"), "{body}");
    let asks = format!("tomte_worker_asks_total{{worker=\"crew.0\"}} {}\n", by_worker["crew.0"]);
    assert!(body.contains(&asks), "{asks} in {body}");
    // An instance answers by its own name too.
    let one = call(&d, "worker.status", r#"{"name":"crew.2"}"#);
    assert_eq!(one["result"], "looping", "{one}");
    assert_eq!(call(&d, "worker.status", r#"{"name":"crew"}"#)["result"], "looping");
}

#[test]
fn kill_9_of_one_instance_under_load_fails_only_its_in_flight_ask_and_the_pool_refills() {
    let d = crew(&[("CREW_INSTANCES", "4")]);
    let _reaper = pids(&d);
    until("4 instances looping", Duration::from_secs(20), || looping(&d, 4));
    let victim = instances(&d)[1].clone();
    let victim_pid = victim["pid"].as_i64().unwrap() as i32;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..16).map(|_| client(&d, 20, None, stop.clone())).collect();
    std::thread::sleep(Duration::from_millis(500));
    kill(victim_pid, libc::SIGKILL);
    until("crew.1 back with a new process", Duration::from_secs(20), || {
        let i = &instances(&d)[1];
        i["state"] == "looping" && i["pid"].as_i64().is_some_and(|p| p as i32 != victim_pid)
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for c in clients {
        for a in c.join().unwrap() {
            if a["result"].is_object() {
                ok += 1;
            } else {
                failed.push(a);
            }
        }
    }
    // One ask at a time per instance: the killed one held one ask at most.
    assert!(failed.len() <= 1, "only the dead instance's ask fails: {failed:?}");
    for f in &failed {
        assert_eq!(f["error"]["code"], -32011, "{f}");
        assert!(f["error"]["data"].as_str().unwrap().contains("crew.1"), "{f}");
    }
    assert!(ok > 100, "the pool kept serving: {ok} answers");
    assert_eq!(instances(&d)[1]["restarts"], 1);
}

#[test]
fn a_full_pool_queue_answers_pool_busy_at_once() {
    let d = crew(&[("CREW_INSTANCES", "1"), ("CREW_QUEUE", "2")]);
    let _reaper = pids(&d);
    until("1 instance looping", Duration::from_secs(20), || looping(&d, 1));
    // One ask in flight, two waiting: the queue is full.
    let slow: Vec<_> = (0..3)
        .map(|i| {
            let mut s = d.connect();
            let line =
                format!("{{\"jsonrpc\":\"2.0\",\"method\":\"crew.work\",\"params\":{{\"ms\":30000}},\"id\":{i}}}\n");
            std::io::Write::write_all(&mut s, line.as_bytes()).unwrap();
            s
        })
        .collect();
    until("one in flight and two queued", Duration::from_secs(10), || {
        let p = pool(&d);
        p["in_flight"] == 1 && p["queued"] == 2
    });
    let busy = call(&d, "crew.work", r#"{"ms":0}"#);
    assert_eq!(busy["error"]["code"], -32000, "{busy}");
    assert_eq!(busy["error"]["message"], "Pool busy");
    assert!(busy["error"]["data"].as_str().unwrap().contains("pool 'crew' is busy"), "{busy}");
    // It came at once: the three others still wait.
    let p = pool(&d);
    assert_eq!((p["in_flight"].as_u64(), p["queued"].as_u64()), (Some(1), Some(2)), "{p}");
    // A caller that hangs up takes its ask out of the queue.
    drop(slow);
    until("the queue emptied by the callers' leaving", Duration::from_secs(10), || pool(&d)["queued"] == 0);
}

#[test]
fn an_ask_whose_worker_hangs_times_out_at_its_deadline_and_hang_detection_recycles_it() {
    let d = crew(&[("CREW_INSTANCES", "1"), ("CREW_ASK_TIMEOUT_MS", "500"), ("CREW_HANG_TIMEOUT_MS", "2000")]);
    let _reaper = pids(&d);
    until("1 instance looping", Duration::from_secs(20), || looping(&d, 1));
    let pid = instances(&d)[0]["pid"].as_i64().unwrap();
    let asked = Instant::now();
    let answer = call(&d, "crew.hang", "[]");
    let waited = asked.elapsed();
    assert_eq!(answer["error"]["code"], -32003, "{answer}");
    assert!(answer["error"]["data"].as_str().unwrap().contains("did not answer within 500ms"), "{answer}");
    assert!(waited >= Duration::from_millis(500), "not before its deadline: {waited:?}");
    until("the hung instance killed and restarted", Duration::from_secs(20), || {
        let i = &instances(&d)[0];
        i["state"] == "looping"
            && i["pid"].as_i64() != Some(pid)
            && i["last_exit"].as_str().is_some_and(|e| e.contains("hung"))
    });
    let again = call(&d, "crew.work", r#"{"ms":0}"#);
    assert_eq!(again["result"]["worker"], "crew.0", "{again}");
}

#[test]
fn scale_2_to_8_to_1_under_load_loses_nothing() {
    let d = crew(&[("CREW_INSTANCES", "2")]);
    let reaper = pids(&d);
    until("2 instances looping", Duration::from_secs(20), || looping(&d, 2));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8).map(|_| client(&d, 5, None, stop.clone())).collect();
    let up = call(&d, "worker.scale", r#"{"name":"crew","instances":8}"#);
    assert_eq!(up["result"], serde_json::json!({"name": "crew", "from": 2, "to": 8}), "{up}");
    until("8 instances looping", Duration::from_secs(30), || looping(&d, 8));
    let grown = pids(&d);
    std::thread::sleep(Duration::from_millis(300));
    let down = call(&d, "worker.scale", r#"{"name":"crew","instances":1}"#);
    assert_eq!(down["result"]["to"], 1, "{down}");
    until("1 instance left", Duration::from_secs(30), || instances(&d).len() == 1 && pool(&d)["size"] == 1);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for c in clients {
        for a in c.join().unwrap() {
            let name = a["result"]["worker"].as_str().unwrap_or_else(|| panic!("a call failed: {a}"));
            seen.insert(name.to_owned());
            total += 1;
        }
    }
    assert!(seen.len() >= 3, "the new instances worked: {seen:?} in {total} calls");
    // The processes scaled away are gone.
    let left: Vec<i32> = grown.0.iter().copied().filter(|&p| alive(p) && !reaper.0.contains(&p)).collect();
    let kept = instances(&d)[0]["pid"].as_i64().unwrap() as i32;
    until("the scaled-away processes ended", Duration::from_secs(20), || left.iter().all(|&p| p == kept || !alive(p)));
    // Clear errors for what cannot be scaled.
    let left = instances(&d)[0]["name"].as_str().unwrap().to_owned();
    let params = serde_json::json!({ "name": left, "instances": 3 }).to_string();
    let plain = call(&d, "worker.scale", &params);
    assert!(plain["error"]["data"].as_str().unwrap().contains(&format!("'{left}' is not a pool")), "{plain}");
    let unknown = call(&d, "worker.scale", r#"{"name":"nosuch","instances":3}"#);
    assert_eq!(unknown["error"]["code"], -32010, "{unknown}");
    let negative = call(&d, "worker.scale", r#"{"name":"crew","instances":-1}"#);
    assert_eq!(negative["error"]["code"], -32602, "{negative}");
}

#[test]
fn max_memory_restarts_a_worker_that_allocates_past_it() {
    let d = crew(&[("CREW_INSTANCES", "1"), ("CREW_MAX_MEMORY_MB", "64")]);
    let _reaper = pids(&d);
    until("1 instance looping", Duration::from_secs(20), || looping(&d, 1));
    let pid = instances(&d)[0]["pid"].as_i64().unwrap();
    let grew = call(&d, "crew.grow", r#"{"mib":100}"#);
    assert!(grew["result"].as_i64().unwrap() > 64 * 1024, "{grew}");
    until("the instance restarted for its memory", Duration::from_secs(20), || {
        let i = &instances(&d)[0];
        i["restarts"] == 1 && i["pid"].as_i64() != Some(pid) && i["state"] == "looping"
    });
    assert!(d.log_text().contains("over its max_memory of 65536 KiB: restarting it"), "{}", d.log_text());
    // The new process is small again, and serves.
    assert_eq!(call(&d, "crew.work", r#"{"ms":0}"#)["result"]["n"], 1);
}

#[test]
fn max_requests_recycles_a_process_after_n_asks_and_no_call_fails() {
    let d = crew(&[("CREW_INSTANCES", "1"), ("CREW_MAX_REQUESTS", "5")]);
    let _reaper = pids(&d);
    until("1 instance looping", Duration::from_secs(20), || looping(&d, 1));
    let stop = Arc::new(AtomicBool::new(false));
    let answers = client(&d, 0, Some(12), stop).join().unwrap();
    let ns: Vec<u64> = answers.iter().map(|a| a["result"]["n"].as_u64().unwrap_or(0)).collect();
    assert_eq!(ns, [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2], "{answers:?}");
    let pids: std::collections::HashSet<i64> = answers.iter().map(|a| a["result"]["pid"].as_i64().unwrap()).collect();
    assert_eq!(pids.len(), 3, "a new process every 5 asks");
    assert_eq!(pool(&d)["asks"], 12);
}

#[test]
fn worker_commands_act_on_a_whole_pool_or_one_instance() {
    let d = crew(&[("CREW_INSTANCES", "3")]);
    let _reaper = pids(&d);
    until("3 instances looping", Duration::from_secs(20), || looping(&d, 3));
    assert_eq!(call(&d, "worker.pause", r#"{"name":"crew.2"}"#)["result"], true);
    until("crew.2 paused alone", Duration::from_secs(10), || {
        let states: Vec<Json> = instances(&d).iter().map(|i| i["state"].clone()).collect();
        states == ["looping", "looping", "paused"]
    });
    assert_eq!(call(&d, "worker.resume", r#"{"name":"crew"}"#)["result"], true);
    until("all looping", Duration::from_secs(10), || looping(&d, 3));
    assert_eq!(call(&d, "worker.stop", r#"{"name":"crew"}"#)["result"], true);
    until("every instance exited", Duration::from_secs(20), || {
        instances(&d).iter().all(|i| i["state"] == "exited") && pool(&d)["state"] == "exited"
    });
    let refused = call(&d, "crew.work", r#"{"ms":0}"#);
    assert_eq!(refused["error"]["code"], -32011, "{refused}");
    assert!(refused["error"]["data"].as_str().unwrap().contains("no instance running"), "{refused}");
    // Not ready with no instance serving; ready again once one does.
    let health = call(&d, "daemon.health", "[]")["result"].clone();
    assert_eq!(health["ready"], false, "{health}");
    let check = health["checks"].as_array().unwrap().iter().find(|c| c["name"] == "pool:crew").cloned();
    assert_eq!(check.map(|c| c["ok"].clone()), Some(Json::Bool(false)), "{health}");
    assert_eq!(call(&d, "worker.start", r#"{"name":"crew"}"#)["result"], true);
    until("ready again", Duration::from_secs(20), || call(&d, "daemon.health", "[]")["result"]["ready"] == true);
    until("all looping again", Duration::from_secs(20), || looping(&d, 3));
    let restarted = call(&d, "worker.restart", r#"{"name":["crew.0","crew"]}"#);
    assert!(restarted["result"].is_object(), "a pool and an instance in one restart: {restarted}");
    // Events name the instance and its pool.
    let events = call(&d, "worker.list", "[]");
    assert!(events["result"].as_array().unwrap().iter().any(|w| w["name"] == "crew" && w["pool"] == true));
}

#[test]
fn an_autoscaled_pool_grows_while_asks_wait_and_shrinks_when_idle() {
    let d = crew(&[("CREW_INSTANCES", "1"), ("CREW_AUTOSCALE", "1-4")]);
    let _reaper = pids(&d);
    until("1 instance looping", Duration::from_secs(20), || looping(&d, 1));
    assert_eq!((pool(&d)["min"].as_u64(), pool(&d)["max"].as_u64()), (Some(1), Some(4)));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8).map(|_| client(&d, 200, Some(10), stop.clone())).collect();
    until("the pool grown to its max", Duration::from_secs(30), || pool(&d)["size"] == 4);
    let _grown = pids(&d);
    for c in clients {
        assert!(c.join().unwrap().iter().all(|a| a["result"].is_object()));
    }
    let outside = call(&d, "worker.scale", r#"{"name":"crew","instances":9}"#);
    assert!(outside["error"]["data"].as_str().unwrap().contains("between 1 and 4"), "{outside}");
    assert_eq!(outside["error"]["code"], -32602, "{outside}");
    // Idle: one instance fewer every 10 s, down to the minimum.
    until("the pool shrunk back", Duration::from_secs(60), || pool(&d)["size"] == 1 && instances(&d).len() == 1);
}

#[test]
fn a_pool_is_sized_by_its_configuration_file_and_resized_by_a_reload() {
    let base = Daemon::new("crew", &[]);
    let file = base.dir.path("crew.toml");
    std::fs::write(&file, "[workers.crew]\ninstances = 3\n").unwrap();
    let d = base.add_args(&["--config", file.to_str().unwrap()]).start();
    let _reaper = pids(&d);
    until("3 instances looping", Duration::from_secs(20), || looping(&d, 3));
    let shown = d.cmd("config");
    let shown = text(&shown.stdout);
    let line = shown.lines().find(|l| l.starts_with("instances = ")).unwrap_or_default();
    assert!(line.starts_with("instances = 3 ") && line.ends_with(&format!("# file {}:2", file.display())), "{shown}");
    std::fs::write(&file, "[workers.crew]\ninstances = 5\n").unwrap();
    let report = call(&d, "daemon.reload", "[]");
    let applied = report["result"]["applied"].as_array().cloned().unwrap_or_default();
    assert!(applied.contains(&Json::from("workers.crew.instances")), "{report}");
    until("5 instances looping", Duration::from_secs(20), || looping(&d, 5));
    let _grown = pids(&d);
    // Only a pool has instances: said with the file's line, and the running daemon keeps its 5.
    std::fs::write(&file, "[workers.solo]\ninterval = 1\ninstances = 2\n").unwrap();
    let refused = call(&d, "daemon.reload", "[]");
    let why = refused["error"]["data"].to_string();
    assert!(why.contains("crew.toml:3") && why.contains("'solo' is not a pool"), "{refused}");
    assert_eq!(pool(&d)["size"], 5);
}
