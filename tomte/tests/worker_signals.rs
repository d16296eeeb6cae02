//! Signals that reach the workers of the pool example, as they do in real life: to the whole
//! process group (Ctrl-C on `run`, a group SIGTERM on a detached daemon), or to one worker.
//! Every daemon and worker started here is killed by pid when a test ends, pass or fail.

mod common;

use std::fs::OpenOptions;
use std::io::BufReader;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rustix::process::{Pid, Signal};

/// One JSON-RPC call on a fresh connection (answer within `limit`); the whole response.
fn call_within(d: &Daemon, limit: Duration, method: &str, params: &str) -> serde_json::Value {
    let s = d.connect();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut r = BufReader::new(s);
    json(&ndjson(&mut r, &format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":1}}"#)))
}

fn call(d: &Daemon, method: &str, params: &str) -> serde_json::Value {
    call_within(d, Duration::from_secs(20), method, params)
}

fn workers(d: &Daemon) -> Vec<serde_json::Value> {
    call(d, "worker.list", "[]")["result"].as_array().expect("worker.list answers an array").clone()
}

fn worker(d: &Daemon, name: &str) -> serde_json::Value {
    workers(d).into_iter().find(|w| w["name"] == name).unwrap_or_else(|| panic!("no worker {name}"))
}

fn pid_of(d: &Daemon, name: &str) -> i32 {
    worker(d, name)["pid"].as_i64().unwrap_or_else(|| panic!("{name} has no pid")) as i32
}

fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    assert!(wait_for(limit, &mut cond), "timed out waiting for {what}");
}

/// Pids killed (SIGKILL, after a SIGCONT for stopped ones) when dropped: the workers a test
/// saw, which die with their daemon unless the test failed before that.
struct Reaper(Vec<i32>);
impl Drop for Reaper {
    fn drop(&mut self) {
        for &pid in &self.0 {
            kill(pid, libc::SIGCONT);
            kill(pid, libc::SIGKILL);
        }
    }
}

fn send(pid: i32, signal: Signal) {
    rustix::process::kill_process(Pid::from_raw(pid).unwrap(), signal).unwrap();
}

fn kill_group(pgid: i32, signal: Signal) {
    rustix::process::kill_process_group(Pid::from_raw(pgid).unwrap(), signal).unwrap();
}

/// Field `n` (1-based, as in proc(5)) of /proc/PID/stat; 3 is the state, 5 the group.
fn stat_field(pid: i32, n: usize) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace().nth(n - 3).unwrap_or("").to_owned()
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.ends_with(needle)).count()
}

/// Both workers logged their spinup and have iterated.
fn wait_looping(d: &Daemon) {
    until("both workers looping", Duration::from_secs(20), || {
        let log = d.log_text();
        let ws = workers(d);
        count(&log, "spinup alpha") == 1
            && count(&log, "spinup beta") == 1
            && ws.len() == 2
            && ws.iter().all(|w| w["state"] == "looping" && w["iterations"].as_i64() > Some(0))
    });
}

/// The daemon's socket answers.
fn wait_ready(d: &Daemon) {
    until("the socket", Duration::from_secs(20), || std::os::unix::net::UnixStream::connect(&d.sock).is_ok());
}

/// `pool run` in the foreground, as its own process group (as a shell runs a job), its stderr
/// (the log under `run`) into `d.log`. Killed by pid on drop.
struct Foreground {
    child: Child,
}

impl Foreground {
    fn start(d: &Daemon, env: &[(&str, &str)]) -> Foreground {
        let log = OpenOptions::new().create(true).append(true).open(&d.log).unwrap();
        let child = Command::new(&d.bin)
            .arg("run")
            .args(&d.args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn pool run");
        Foreground { child }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Its exit code, waiting up to `limit`.
    fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        let mut status = None;
        wait_for(limit, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.map(|s| s.code().unwrap_or_else(|| panic!("pool run ended by a signal: {s:?}")))
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pool start` with `env`, asserting success; the daemon's pid recorded for cleanup.
fn start_with(mut d: Daemon, env: &[(&str, &str)]) -> Daemon {
    let out = Command::new(&d.bin).arg("start").args(&d.args).envs(env.iter().copied()).output().unwrap();
    assert!(out.status.success(), "start failed: {}{}", text(&out.stdout), text(&out.stderr));
    let pid = d.pid().expect("pid file written by a ready daemon");
    d.pids.push(pid);
    d
}

/// Restarts at once: a worker that ended by the group's signal and were restarted while the
/// daemon stops would show a second spinup.
const NO_BACKOFF: [(&str, &str); 1] = [("POOL_BACKOFF_MS", "0")];

#[test]
fn ctrl_c_on_run_stops_the_daemon_and_every_worker_spins_down_once() {
    for round in 0..5 {
        let d = Daemon::new("pool", &[]);
        let mut run = Foreground::start(&d, &NO_BACKOFF);
        wait_ready(&d);
        wait_looping(&d);
        let reaper = Reaper(workers(&d).iter().filter_map(|w| w["pid"].as_i64()).map(|p| p as i32).collect());
        assert_eq!(reaper.0.len(), 2);
        // What the terminal does on Ctrl-C: SIGINT to every process of the foreground job.
        kill_group(run.pid(), Signal::INT);
        let code = run.exit_code(Duration::from_secs(20));
        let log = d.log_text();
        assert_eq!(code, Some(0), "round {round}: pool run did not exit 0:\n{log}");
        for name in ["alpha", "beta"] {
            assert_eq!(count(&log, &format!("spindown {name}")), 1, "round {round}: {name}'s spindowns:\n{log}");
            assert_eq!(
                count(&log, &format!("spinup {name}")),
                1,
                "round {round}: {name} restarted while stopping:\n{log}"
            );
        }
        until("no worker left", Duration::from_secs(5), || reaper.0.iter().all(|&p| !alive(p)));
    }
}

#[test]
fn a_group_sigterm_to_a_detached_daemon_spins_every_worker_down() {
    for round in 0..5 {
        let d = start_with(Daemon::new("pool", &[]), &NO_BACKOFF);
        let daemon = d.pid().unwrap();
        wait_looping(&d);
        let reaper = Reaper(workers(&d).iter().filter_map(|w| w["pid"].as_i64()).map(|p| p as i32).collect());
        assert_eq!(reaper.0.len(), 2);
        // Detached: the daemon's group is the one its setsid made (the intermediate's pid), and
        // its workers are in it; what systemd's control-group kill or `kill -TERM -PGID` hits.
        let pgid: i32 = stat_field(daemon, 5).parse().unwrap();
        for &w in &reaper.0 {
            assert_eq!(stat_field(w, 5), pgid.to_string(), "a worker outside the daemon's group");
        }
        kill_group(pgid, Signal::TERM);
        until("the daemon gone", Duration::from_secs(20), || !alive(daemon));
        until("no worker left", Duration::from_secs(5), || reaper.0.iter().all(|&p| !alive(p)));
        let log = d.log_text();
        assert!(log.contains("pool stopped"), "round {round}: no clean stop:\n{log}");
        for name in ["alpha", "beta"] {
            assert_eq!(count(&log, &format!("spindown {name}")), 1, "round {round}: {name}'s spindowns:\n{log}");
            assert_eq!(
                count(&log, &format!("spinup {name}")),
                1,
                "round {round}: {name} restarted while stopping:\n{log}"
            );
        }
    }
}

#[test]
fn job_control_signals_never_freeze_a_worker() {
    // Under `run`, as a job of the test's session: the kernel discards these signals for an
    // orphaned group such as a detached daemon's, so only a job can be frozen by them.
    let d = Daemon::new("pool", &[]);
    let _run = Foreground::start(&d, &[]);
    wait_ready(&d);
    let _reaper = Reaper(workers(&d).iter().filter_map(|w| w["pid"].as_i64()).map(|p| p as i32).collect());
    wait_looping(&d);
    let pid = pid_of(&d, "alpha");
    for signal in [Signal::TSTP, Signal::TTIN, Signal::TTOU] {
        let before = worker(&d, "alpha")["iterations"].as_i64().unwrap();
        send(pid, signal);
        // An answer from the worker itself, within a generous bound: a stopped worker would
        // leave it waiting for the 30 s hang timeout.
        let v = call_within(&d, Duration::from_secs(2), "pool.count", r#"["alpha"]"#);
        assert!(v["result"].is_i64(), "after {signal:?}: {v}");
        assert_ne!(stat_field(pid, 3), "T", "alpha is stopped after {signal:?}");
        until("alpha iterating on", Duration::from_secs(5), || {
            worker(&d, "alpha")["iterations"].as_i64().is_some_and(|n| n > before)
        });
    }
    let w = worker(&d, "alpha");
    assert_eq!(w["pid"], pid);
    assert_eq!(w["restarts"], 0);
}

#[test]
fn the_daemons_own_signals_do_not_kill_a_worker() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = Reaper(workers(&d).iter().filter_map(|w| w["pid"].as_i64()).map(|p| p as i32).collect());
    wait_looping(&d);
    let pid = pid_of(&d, "beta");
    // rustix names no real-time signal (and `unsafe` is not for tests): the shell's `kill`
    // sends that one, by pid.
    let rt = libc::SIGRTMIN() + 1;
    for signal in [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGALRM, rt] {
        let sent = Command::new("sh").arg("-c").arg(format!("kill -{signal} {pid}")).status().unwrap();
        assert!(sent.success(), "kill -{signal} {pid}");
        // The worker answers after it has run again, so the signal has been delivered by then.
        let v = call(&d, "pool.count", r#"["beta"]"#);
        assert!(v["result"].is_i64(), "after signal {signal}: {v}");
        assert!(alive(pid), "beta died of signal {signal}");
    }
    let w = worker(&d, "beta");
    assert_eq!(w["pid"], pid);
    assert_eq!(w["restarts"], 0, "{w}");
    assert!(w["last_exit"].is_null(), "{w}");
}

#[test]
fn sigterm_to_one_worker_is_a_clean_exit_restarted_and_never_a_crash() {
    // Restarts at once, and a crash limit of 2: four SIGTERMs would end in `failed` if clean
    // exits counted.
    let d = start_with(Daemon::new("pool", &[]), &[("POOL_BACKOFF_MS", "0"), ("POOL_CRASH_LIMIT", "2")]);
    let mut reaper = Reaper(workers(&d).iter().filter_map(|w| w["pid"].as_i64()).map(|p| p as i32).collect());
    wait_looping(&d);
    for n in 1..=4 {
        let old = pid_of(&d, "alpha");
        send(old, Signal::TERM);
        until("a new alpha", Duration::from_secs(20), || {
            let w = worker(&d, "alpha");
            w["pid"].as_i64().is_some_and(|p| p as i32 != old) && w["state"] == "looping"
        });
        reaper.0.push(pid_of(&d, "alpha"));
        assert!(!alive(old), "the old alpha is still there");
        let w = worker(&d, "alpha");
        assert_eq!(w["last_exit"], "exited 0", "{w}");
        assert_eq!(w["restarts"], n, "{w}");
        let log = d.log_text();
        assert_eq!(count(&log, "spindown alpha"), n as usize, "{log}");
        assert_eq!(count(&log, "worker alpha: SIGTERM received; spinning down"), n as usize, "{log}");
    }
    assert_eq!(worker(&d, "beta")["restarts"], 0, "only alpha was signalled");
    assert!(!d.log_text().contains("giving up"), "{}", d.log_text());
}
