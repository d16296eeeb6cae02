//! `tomtectl worker scale` and `tomtectl workers` against a real pool: the hash example
//! (`hasher`, `HASH_WORKERS` instances) started with `start`. Scaled 2 → 4, `workers` lists
//! hasher.0..3 looping under the pool's line; commands reach one instance or the whole pool;
//! scaled back to 1, the others' processes end; `metrics` shows the pool; an unknown pool or a bad count is refused with
//! a reason and a non-zero exit code.
//!
//! Needs the hash example built: `cargo build -p tomte --examples`.

mod common;

use std::time::{Duration, Instant};

use common::{alive, text, Started};

/// Long enough for a loaded machine; only reached when something is broken.
const LIMIT: Duration = Duration::from_secs(60);

/// The hash example with `instances` in its pool `hasher`.
fn hash(tag: &str, instances: usize) -> Started {
    Started::start("hash", tag, &[], &[("HASH_WORKERS", &instances.to_string())])
}

/// The `workers` table of a pool daemon.
trait Workers {
    /// The table, read back; the instance pids it names are killed on drop too.
    fn workers(&mut self) -> Vec<Row>;
    /// Polls `workers` until `ok` holds for it (bounded by LIMIT, a hang only); the last table.
    fn until(&mut self, what: &str, ok: impl Fn(&[Row]) -> bool) -> Vec<Row>;
}

impl Workers for Started {
    fn workers(&mut self) -> Vec<Row> {
        let rows = parse(&self.ok(&["workers"]));
        for r in &rows {
            if let Ok(pid) = r.pid.parse::<i32>() {
                if !self.pids.contains(&pid) {
                    self.pids.push(pid);
                }
            }
        }
        rows
    }

    fn until(&mut self, what: &str, ok: impl Fn(&[Row]) -> bool) -> Vec<Row> {
        let t = Instant::now();
        loop {
            let rows = self.workers();
            if ok(&rows) {
                return rows;
            }
            assert!(t.elapsed() < LIMIT, "waited {LIMIT:?} for {what}; workers:\n{rows:#?}\nlog:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One line of the `workers` table.
#[derive(Debug, Clone)]
struct Row {
    /// Indented: an instance under its pool's line.
    instance: bool,
    name: String,
    state: String,
    pid: String,
    /// What follows UPTIME (LAST EXIT, or the pool's size and queue).
    rest: String,
}

fn parse(table: &str) -> Vec<Row> {
    let mut lines = table.lines();
    let header = lines.next().expect("a header");
    assert!(header.starts_with("NAME") && header.contains("ASKS") && header.contains("IN FLIGHT"), "{table}");
    lines
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert!(w.len() >= 9, "a short line: {l}");
            Row {
                instance: l.starts_with("  "),
                name: w[0].to_owned(),
                state: w[1].to_owned(),
                pid: w[2].to_owned(),
                rest: w[8..].join(" "),
            }
        })
        .collect()
}

/// The pool's line and its instances' lines, which must follow it.
fn pool<'a>(rows: &'a [Row], name: &str) -> (&'a Row, Vec<&'a Row>) {
    let at = rows.iter().position(|r| r.name == name && !r.instance).unwrap_or_else(|| panic!("no {name}: {rows:#?}"));
    let instances = rows[at + 1..].iter().take_while(|r| r.instance).collect();
    (&rows[at], instances)
}

fn names(instances: &[&Row]) -> Vec<String> {
    instances.iter().map(|r| r.name.clone()).collect()
}

fn looping(rows: &[Row], n: usize) -> bool {
    let (line, instances) = pool(rows, "hasher");
    let want: Vec<String> = (0..n).map(|i| format!("hasher.{i}")).collect();
    names(&instances) == want
        && instances.iter().all(|r| r.state == "looping" && r.pid.parse::<i32>().is_ok())
        && line.state == "looping"
        && line.rest.starts_with(&format!("pool: {n} instance"))
}

#[test]
fn scale_grows_and_shrinks_the_pool_and_workers_lists_its_instances_under_it() {
    let mut d = hash("scale", 2);
    d.until("hasher.0 and hasher.1 looping", |r| looping(r, 2));

    assert_eq!(d.ok(&["worker", "scale", "hasher", "4"]), "hasher: 2 -> 4 instances\n");
    let rows = d.until("hasher.0..3 looping", |r| looping(r, 4));
    let (line, instances) = pool(&rows, "hasher");
    assert_eq!(line.pid, "-", "a pool has no pid of its own: {line:?}");
    assert_eq!(line.rest, "pool: 4 instances, 0 queued");
    let mut pids: Vec<&str> = instances.iter().map(|r| r.pid.as_str()).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 4, "four processes: {instances:#?}");
    // The pool answers, and --json passes worker.list through.
    let answer = d.ok(&["call", "hash.sha256", "data=abc", "rounds=1"]);
    assert_eq!(answer.trim(), "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
    let list: serde_json::Value = serde_json::from_str(&d.ok(&["--json", "workers"])).expect("JSON");
    let entry = &list.as_array().expect("an array")[0];
    assert_eq!(entry["pool"], true, "{list}");
    assert_eq!(entry["size"], 4, "{list}");
    assert_eq!(entry["instances"].as_array().map(Vec::len), Some(4), "{list}");
    assert_eq!(entry["asks"], 1, "{list}");
    // `metrics` has the pool and its instances.
    let metrics = d.ok(&["metrics"]);
    assert!(metrics.contains("POOL hasher  4 instances, 0 queued"), "{metrics}");
    for k in 0..4 {
        assert!(metrics.lines().any(|l| l.starts_with(&format!("hasher.{k} ")) && l.contains("looping")), "{metrics}");
    }

    // One instance, then the whole pool.
    assert_eq!(d.ok(&["worker", "pause", "hasher.2"]), "pause: hasher.2\n");
    d.until("hasher.2 alone paused", |rows| {
        let (line, instances) = pool(rows, "hasher");
        line.state == "looping" && instances.iter().all(|r| (r.state == "paused") == (r.name == "hasher.2"))
    });
    assert_eq!(d.ok(&["worker", "pause", "hasher"]), "pause: hasher\n");
    d.until("every instance paused, so the pool", |rows| {
        let (line, instances) = pool(rows, "hasher");
        line.state == "paused" && instances.len() == 4 && instances.iter().all(|r| r.state == "paused")
    });
    assert_eq!(d.ok(&["worker", "resume", "hasher"]), "resume: hasher\n");
    d.until("hasher.0..3 looping again", |r| looping(r, 4));

    // Back to one: the others' processes end.
    assert_eq!(d.ok(&["worker", "scale", "hasher", "1"]), "hasher: 4 -> 1 instances\n");
    let rows = d.until("hasher.0 alone", |r| looping(r, 1));
    let kept = pool(&rows, "hasher").1[0].pid.clone();
    let t = Instant::now();
    for r in &instances {
        let pid: i32 = r.pid.parse().unwrap();
        if r.pid == kept {
            assert!(alive(pid), "{} kept", r.name);
            continue;
        }
        while alive(pid) {
            assert!(t.elapsed() < LIMIT, "{} (pid {pid}) still runs after the scale to 1", r.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(d.ok(&["--json", "worker", "scale", "hasher", "1"]).trim(), r#"{"name":"hasher","from":1,"to":1}"#);
}

#[test]
fn an_unknown_pool_or_a_bad_count_is_refused_and_restart_wait_follows_the_instances() {
    let mut d = hash("refused", 2);
    let rows = d.until("hasher.0 and hasher.1 looping", |r| looping(r, 2));

    let out = d.ctl(&["worker", "scale", "nothere", "3"]);
    assert_eq!(out.status.code(), Some(1), "the daemon's fault: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("unknown worker 'nothere'"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let out = d.ctl(&["worker", "scale", "hasher.1", "3"]);
    assert_eq!(out.status.code(), Some(1), "an instance is not a pool: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not a pool"), "{}", text(&out.stderr));
    for (args, says) in [
        (&["worker", "scale", "hasher", "x"][..], "whole number"),
        (&["worker", "scale", "hasher", "-1"][..], "whole number"),
        (&["worker", "scale", "hasher"][..], "worker scale NAME N"),
        (&["worker", "scale", "hasher", "2", "3"][..], "worker scale NAME N"),
        (&["worker", "scale", "--wait", "hasher", "2"][..], "--rolling and --wait go with `worker restart` only"),
    ] {
        let out = d.ctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(says), "{args:?}: {}", text(&out.stderr));
    }
    // Nothing changed.
    let (_, instances) = pool(&rows, "hasher");
    assert_eq!(names(&instances), ["hasher.0", "hasher.1"]);
    assert!(looping(&d.workers(), 2));

    // A pool restarted and waited for: each instance comes back with a new pid.
    let before: Vec<(String, String)> = instances.iter().map(|r| (r.name.clone(), r.pid.clone())).collect();
    let out = d.ok(&["worker", "restart", "--rolling", "--wait", "hasher"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "restart: hasher");
    for (name, pid) in &before {
        let line =
            lines.iter().find(|l| l.starts_with(&format!("{name} back: pid "))).unwrap_or_else(|| panic!("{out}"));
        assert!(line.ends_with(&format!(" (was {pid})")), "{out}");
    }
    d.until("both looping after the restart", |r| looping(r, 2));
}
