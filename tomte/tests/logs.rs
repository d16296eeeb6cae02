//! Logs an operator can use, on real daemons: journald's priority prefixes, JSON lines,
//! syslog datagrams, the level changed at run time, SIGUSR1 reopening the file, and the
//! workers' own stdout and stderr captured, a crash's last words included, a flood capped.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

fn tomtectl(d: &Daemon, args: &[&str]) -> Output {
    let sock = format!("unix://{}", d.sock.display());
    Command::new(binary("tomtectl")).arg("--socket").arg(&sock).args(args).output().expect("run tomtectl")
}

/// The pid of worker `name` once it runs.
fn worker_pid(d: &Daemon, name: &str) -> i64 {
    until(&format!("worker {name} running"), Duration::from_secs(20), || worker(d, name)["pid"].is_i64());
    worker(d, name)["pid"].as_i64().unwrap()
}

#[test]
fn under_journald_lines_carry_priorities_and_no_time() {
    let mut d = Daemon::new("pool", &["-v"]);
    let out = d.dir.path("journal");
    let stderr = std::fs::File::create(&out).unwrap();
    let meta = std::fs::metadata(&out).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let mut child = d.run_foreground(stderr, &[("JOURNAL_STREAM", stream.as_str())]);
    let _reaper = pids(&d);
    let alpha = worker_pid(&d, "alpha");
    let text = || std::fs::read_to_string(&out).unwrap_or_default();
    until("alpha's hello", Duration::from_secs(20), || text().contains("hello from alpha"));
    kill(child.id() as i32, libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let text = text();
    assert!(text.lines().any(|l| l.starts_with("<6>pool ready (pid ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("<7>signal SIGTERM (15)")), "-v: debug is <7>: {text}");
    assert!(text.contains(&format!("\n<6>alpha[{alpha}]: hello from alpha\n")), "a worker's line: {text}");
    for line in text.lines() {
        let level = line.strip_prefix('<').and_then(|l| l.split_once('>')).map(|(n, _)| n);
        assert!(matches!(level, Some("3" | "4" | "6" | "7")), "no priority: {line:?}");
        assert!(!line.contains("Z INFO") && !line.contains("Z DEBUG"), "a time stamp: {line:?}");
    }

    // The variable alone is not enough: stderr must be the stream it names.
    let mut d = Daemon::new("echo", &[]);
    let other = d.dir.path("other");
    let mut child = d.run_foreground(std::fs::File::create(&other).unwrap(), &[("JOURNAL_STREAM", stream.as_str())]);
    kill(child.id() as i32, libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let text = std::fs::read_to_string(&other).unwrap();
    assert!(text.lines().all(|l| l.starts_with("20") && l.contains("Z INFO  echo[")), "{text}");
}

#[test]
fn json_lines_parse_and_carry_time_level_target_worker_message_fields() {
    let d = Daemon::new("chaos", &["--log-format", "json"]).start();
    let _reaper = pids(&d);
    until("panicky's panic", Duration::from_secs(30), || d.log_text().contains("boom at iteration 3"));
    until("panicky reaped", Duration::from_secs(30), || d.log_text().contains("worker panicky exited 70"));
    let lines: Vec<serde_json::Value> = d.log_text().lines().map(json).collect();
    assert!(lines.len() > 5);
    for v in &lines {
        let time = v["time"].as_str().unwrap_or_else(|| panic!("no time: {v}"));
        assert!(time.len() == 24 && time.ends_with('Z') && &time[10..11] == "T", "RFC 3339 UTC: {v}");
        assert!(matches!(v["level"].as_str(), Some("error" | "warn" | "info" | "debug" | "trace")), "{v}");
        assert!(v["target"].is_string() && v["message"].is_string() && v["pid"].is_u64(), "{v}");
    }
    let find = |what: &dyn Fn(&serde_json::Value) -> bool| lines.iter().find(|v| what(v)).cloned();
    let ready = find(&|v| v["message"].as_str().is_some_and(|m| m.starts_with("chaos ready"))).expect("ready line");
    assert!(ready.get("worker").is_none() && ready.get("fields").is_none(), "the daemon's own: {ready}");
    assert_eq!(ready["pid"].as_i64(), d.pid().map(i64::from));
    // The worker's log record, with its fields, through its stderr pipe.
    let record = find(&|v| v["message"] == "panicking on purpose").expect("the record");
    assert_eq!(
        (&record["worker"], &record["level"], &record["target"]),
        (&"panicky".into(), &"warn".into(), &"chaos".into())
    );
    assert_eq!(record["fields"]["iteration"], 3, "{record}");
    // The panic hook's own message: raw stderr, at warn.
    let hook = find(&|v| v["message"] == "boom at iteration 3").expect("the panic hook's line");
    assert_eq!(
        (&hook["worker"], &hook["level"], &hook["target"]),
        (&"panicky".into(), &"warn".into(), &"stderr".into())
    );
}

#[test]
fn syslog_records_reach_the_socket_with_their_priority() {
    let dir = TempDir::new("syslog");
    let path = dir.path("log.sock");
    let server = UnixDatagram::bind(&path).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let target = format!("syslog:{}", path.display());
    // --log given twice: the last wins, syslog instead of the file.
    let d = Daemon::new("pool", &["--log", &target, "--socket-mode", "0666"]).start();
    let _reaper = pids(&d);
    let pid = d.pid().unwrap();
    let alpha = worker_pid(&d, "alpha");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = [
        format!("<28>pool[{pid}]: --socket-mode 0666: every local user may connect"),
        format!("<30>pool[{pid}]: pool ready (pid {pid})"),
        format!("<30>alpha[{alpha}]: hello from alpha"),
    ];
    while Instant::now() < deadline && !want.iter().all(|w| got.iter().any(|g: &String| g.starts_with(w.as_str()))) {
        let n = server.recv(&mut buf).expect("a datagram within 20 s");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    for w in &want {
        assert!(got.iter().any(|g| g.starts_with(w.as_str())), "{w} not among {got:#?}");
    }
    assert!(!d.log.exists(), "no log file with syslog");

    // No socket there: start fails, saying where it tried.
    let gone = format!("syslog:{}", dir.path("none.sock").display());
    let e = Daemon::new("echo", &["--log", &gone]);
    let out = e.cmd("start");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot log to syslog at") && text(&out.stderr).contains("none.sock"),
        "{}",
        text(&out.stderr)
    );
    assert!(e.pid().is_none() && !e.sock.exists());
}

#[test]
fn the_level_changes_at_run_time_for_the_daemon_and_its_workers() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    let alpha = worker_pid(&d, "alpha");
    let out = tomtectl(&d, &["loglevel"]);
    assert_eq!((out.status.code(), text(&out.stdout).trim()), (Some(0), "info"), "{}", text(&out.stderr));
    // Debug lines are not written at info: the daemon's (a signal) nor a worker's (a command).
    kill(d.pid().unwrap(), libc::SIGWINCH);
    assert_eq!(call(&d, "worker.pause", r#"["alpha"]"#)["result"], true);
    until("alpha paused", Duration::from_secs(20), || worker(&d, "alpha")["state"] == "paused");
    let log = d.log_text();
    assert!(!log.contains("signal SIGWINCH") && !log.contains("command pause"), "{log}");

    let v = call(&d, "daemon.loglevel", r#"["debug"]"#);
    assert_eq!(v["result"], "info", "answers the previous level: {v}");
    kill(d.pid().unwrap(), libc::SIGWINCH);
    assert_eq!(call(&d, "worker.resume", r#"["alpha"]"#)["result"], true);
    until("debug lines, the daemon's and alpha's", Duration::from_secs(20), || {
        let log = d.log_text();
        log.contains("DEBUG pool[")
            && log.contains("signal SIGWINCH (28)")
            && log.contains(&format!("DEBUG alpha[{alpha}] worker alpha: command resume"))
    });
    let out = tomtectl(&d, &["loglevel"]);
    assert_eq!(text(&out.stdout).trim(), "debug");
    let out = tomtectl(&d, &["loglevel", "warn"]);
    assert_eq!(text(&out.stdout).trim(), "warn (was debug)");
    assert_eq!(call(&d, "daemon.loglevel", "[]")["result"], "warn");
    let v = call(&d, "daemon.loglevel", r#"["loud"]"#);
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert_eq!(call(&d, "daemon.loglevel", "[]")["result"], "warn", "unchanged by a bad level");
    // A usage error from tomtectl, before anything is sent.
    assert_eq!(tomtectl(&d, &["loglevel", "loud"]).status.code(), Some(2));
}

#[test]
fn sigusr1_reopens_the_log_file_at_its_path() {
    let d = Daemon::new("echo", &["-vv"]).start();
    assert_eq!(call(&d, "daemon.loglevel", "[]")["result"], "trace", "-vv is trace");
    let rotated = d.dir.path("d.log.1");
    std::fs::rename(&d.log, &rotated).unwrap();
    kill(d.pid().unwrap(), libc::SIGUSR1);
    until("a new log file", Duration::from_secs(20), || d.log_text().contains("log reopened"));
    call(&d, "daemon.loglevel", r#"["info"]"#);
    until("a line after the reopen", Duration::from_secs(20), || d.log_text().contains("log level info (was trace)"));
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("echo ready") && old.contains("signal SIGUSR1 (10)"), "{old}");
    assert!(!old.contains("log level info"), "the old file gets nothing new: {old}");
    assert!(!d.log_text().contains("echo ready"));
    // logrotate's sample configuration says so.
    let sample = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../contrib/logrotate/tomte")).unwrap();
    assert!(sample.contains("postrotate") && sample.contains("-USR1"), "{sample}");
}

#[test]
fn a_workers_stdout_and_a_crashing_workers_last_stderr_lines_are_logged_tagged() {
    let d = Daemon::new("pool", &[]).start();
    let _reaper = pids(&d);
    let (alpha, beta) = (worker_pid(&d, "alpha"), worker_pid(&d, "beta"));
    until("hello from alpha and beta", Duration::from_secs(20), || {
        let log = d.log_text();
        log.contains(&format!(" INFO  alpha[{alpha}] hello from alpha\n"))
            && log.contains(&format!(" INFO  beta[{beta}] hello from beta\n"))
    });

    let d = Daemon::new("chaos", &[]).start();
    let _reaper = pids(&d);
    until("panicky's panic and exit", Duration::from_secs(30), || d.log_text().contains("worker panicky exited 70"));
    let log = d.log_text();
    let lines: Vec<&str> = log.lines().collect();
    // The panic hook's message (stderr, at warn), before the daemon saw the worker exit.
    let hook = lines.iter().position(|l| l.contains(" WARN  panicky[") && l.ends_with("] boom at iteration 3"));
    let exit = lines.iter().position(|l| l.contains("worker panicky exited 70"));
    assert!(hook.is_some() && hook < exit, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(" WARN  panicky[") && l.contains("] thread 'main'") && l.contains(" panicked at ")),
        "{log}"
    );
    // A last line without its newline, written just before the process exits.
    let steady = worker_pid(&d, "steady");
    call(&d, "chaos.ask", r#"["steady","die"]"#);
    until("steady's last words", Duration::from_secs(20), || d.log_text().contains("worker steady exited 9"));
    let log = d.log_text();
    let words = log.find(&format!(" WARN  steady[{steady}] steady dies mid-line\n"));
    assert!(words.is_some() && words < log.find("worker steady exited 9"), "{log}");
}

#[test]
fn a_flooding_worker_neither_stalls_the_daemon_nor_grows_it_and_its_drops_are_counted() {
    let d = Daemon::new("chaos", &[]).with_env("CHAOS_FLOOD", "1").start();
    let _reaper = pids(&d);
    let pid = d.pid().unwrap();
    until("flood lines", Duration::from_secs(20), || d.log_text().contains("] flood "));
    until("a drop count", Duration::from_secs(20), || d.log_text().contains("lines dropped from worker flood"));
    let before = vm_rss_kb(pid);
    let mut slowest = Duration::ZERO;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(4) {
        let asked = Instant::now();
        let v = call(&d, "daemon.status", "[]");
        assert_eq!(v["result"]["workers"], 5, "{v}");
        slowest = slowest.max(asked.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = vm_rss_kb(pid);
    eprintln!("flood: slowest daemon.status {slowest:?}; daemon VmRSS {before} kB, 4 s later {after} kB");
    assert!(slowest < Duration::from_secs(1), "daemon.status took {slowest:?} during the flood");
    assert!(after < before + 2048, "the daemon grew from {before} to {after} kB during the flood");
    assert_eq!(worker(&d, "flood")["state"], "looping", "the flood goes on");
    // The count is logged once a second at most: far fewer lines than the flood printed.
    let log = d.log_text();
    let logged = log.lines().filter(|l| l.contains("] flood ")).count();
    let dropped: u64 = log
        .lines()
        .filter_map(|l| l.split_once(" lines dropped from worker flood")?.0.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(dropped > logged as u64, "dropped {dropped}, logged {logged}");
    // It stops with the daemon at once, though it prints as it stops.
    let t = Instant::now();
    let out = d.cmd("stop");
    assert!(
        out.status.success() && t.elapsed() < Duration::from_secs(5),
        "stop took {:?}: {}",
        t.elapsed(),
        text(&out.stderr)
    );
    assert!(d.log_text().contains("worker flood exited 0"), "spun down on the stop command");
}
