//! Privileges and limits with real processes: `--user`/`--group` (as root), per-worker users and
//! niceness, rlimits, `--no-new-privs`, `--chdir`, `--umask`, and what happens to the pid file and
//! the sockets. The unprivileged user is `nobody` (65534). What needs root is checked to be run
//! as root (CI and this machine are).

mod common;

use std::io::BufReader;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{alive, binary, call, json, ndjson, pids, text, until, wait_for, Daemon, Reaper, TempDir};

const NOBODY: u32 = 65534;

fn assert_root() {
    assert!(rustix::process::geteuid().is_root(), "these tests drop privileges: run them as root");
}

/// A daemon of example `name` whose socket and pid file live in `dir/sub` (which the daemon
/// creates when it drops to a user), its log in `dir`.
fn daemon_in(name: &str, sub: &str, extra: &[&str]) -> Daemon {
    let dir = TempDir::new(name);
    let run = dir.path(sub);
    let (sock, pidfile, log) = (run.join("d.sock"), run.join("d.pid"), dir.path("d.log"));
    let mut args: Vec<String> = vec![
        "--socket".into(),
        format!("unix://{}", sock.display()),
        "--pidfile".into(),
        pidfile.display().to_string(),
        "--log".into(),
        log.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Daemon { bin: binary(name), dir, sock, pidfile, log, args, pids: Vec::new(), env: Vec::new() }
}

/// The value of `field` in /proc/PID/status (`Uid`, `Groups`, `NoNewPrivs`…).
fn status_field(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The numbers of a /proc/PID/status line: the four uids of `Uid`, the groups of `Groups`.
fn numbers(pid: i32, field: &str) -> Vec<u32> {
    status_field(pid, field).split_whitespace().map(|n| n.parse().unwrap()).collect()
}

/// Asserts that process `pid` runs as nobody: real, effective, saved and filesystem ids, and
/// supplementary groups that are none or nobody's.
fn assert_nobody(pid: i32, what: &str) {
    assert_eq!(numbers(pid, "Uid"), [NOBODY; 4], "{what} (pid {pid}): uids");
    assert_eq!(numbers(pid, "Gid"), [NOBODY; 4], "{what} (pid {pid}): gids");
    let groups = numbers(pid, "Groups");
    assert!(groups.iter().all(|&g| g == NOBODY), "{what} (pid {pid}): groups {groups:?}");
}

/// The niceness of `pid` (field 19 of /proc/PID/stat).
fn nice(pid: i32) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(16).unwrap().parse().unwrap()
}

/// The soft and hard values of a /proc/PID/limits line ("Max open files").
fn limits(pid: i32, name: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}: {limits}"));
    let mut v = line[name.len()..].split_whitespace();
    (v.next().unwrap().to_owned(), v.next().unwrap().to_owned())
}

/// A port below 1024 that loopback has free (tried from 600 up).
fn low_port() -> u16 {
    (600..1000)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below 1024 on 127.0.0.1")
}

/// The processes whose command line mentions `dir` (a test's temp dir): what a test left.
fn processes_of(dir: &Path) -> Vec<i32> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if cmdline.windows(needle.len()).any(|w| w == needle) && alive(pid) {
            found.push(pid);
        }
    }
    found
}

fn stop(d: &Daemon) -> Output {
    let out = d.cmd("stop");
    assert!(out.status.success(), "stop failed: {}{}", text(&out.stdout), text(&out.stderr));
    out
}

fn status(d: &Daemon) -> serde_json::Value {
    let v = call(d, "daemon.status", "[]");
    v["result"].clone()
}

#[test]
fn user_nobody_runs_the_daemon_and_its_workers_as_nobody_after_binding_a_low_port() {
    assert_root();
    let port = low_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = daemon_in("pool", "run", &["--user", "nobody", "--socket", &tcp]).start();
    let pid = d.pids[0];
    let workers = pids(&d);
    assert_eq!(workers.0.len(), 2, "two workers");
    assert_nobody(pid, "the daemon");
    for &w in &workers.0 {
        until("the worker to drop (it is forked after the daemon has)", Duration::from_secs(5), || {
            numbers(w, "Uid") == [NOBODY; 4]
        });
        assert_nobody(w, "a worker");
    }
    // The run directory was made for nobody; the files in it are root's, made before the drop.
    let run = d.dir.path("run");
    let meta = std::fs::metadata(&run).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (NOBODY, NOBODY, 0o755));
    assert_eq!(std::fs::metadata(&d.sock).unwrap().uid(), 0, "the socket keeps the starting user");
    // The unix socket serves root, who started the daemon, with every permission.
    let s = status(&d);
    assert_eq!(s["user"], json(r#"{"name":"nobody","uid":65534}"#), "{s}");
    assert_eq!(s["group"]["gid"], NOBODY, "{s}");
    assert_eq!(s["you"]["uid"], 0, "{s}");
    assert_eq!(s["you"]["grants"], json(r#"["all"]"#), "{s}");
    // The port below 1024, bound before the drop, serves too.
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the low port");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(stream);
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"daemon.status","id":1}"#));
    assert_eq!(v["result"]["user"]["uid"], NOBODY, "{v}");
    // Workers serve as nobody.
    let v = call(&d, "pool.count", r#"{"name":"alpha"}"#);
    assert!(v["result"].is_i64(), "{v}");
    // Stop (given the same --user, so root trusts nobody's directory): the pid file and the
    // socket are gone, and so are the processes.
    stop(&d);
    assert!(!d.pidfile.exists(), "the pid file is removed at stop");
    assert!(!d.sock.exists(), "the socket is removed at stop");
    assert!(run.is_dir(), "the run directory stays");
    until("the daemon and its workers to exit", Duration::from_secs(5), || {
        !alive(pid) && workers.0.iter().all(|&w| !alive(w))
    });
}

#[test]
fn an_unknown_user_fails_start_naming_it_and_leaves_no_process() {
    let d = daemon_in("pool", "run", &["--user", "nosuchuser"]);
    let out = d.cmd("start");
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("nosuchuser"), "the error names the user: {err}");
    assert!(!d.pidfile.exists(), "no pid file");
    let gone = wait_for(Duration::from_secs(5), || processes_of(&d.dir.0).is_empty());
    assert!(gone, "processes left: {:?}", processes_of(&d.dir.0));
}

#[test]
fn a_worker_runs_as_its_own_user_and_niceness_while_the_daemon_stays_root() {
    assert_root();
    let d = daemon_in("privdrop", "", &[]).start();
    let pid = d.pids[0];
    let workers = pids(&d);
    let worker = *workers.0.first().expect("worker low");
    assert_eq!(numbers(pid, "Uid"), [0; 4], "the daemon stays root");
    assert_eq!(status(&d)["user"]["uid"], 0);
    until("the worker to drop", Duration::from_secs(5), || numbers(worker, "Uid") == [NOBODY; 4]);
    assert_nobody(worker, "worker low");
    assert_eq!(nice(worker), 5);
    assert_eq!(limits(worker, "Max open files").0, "256");
    // And the worker answers as what it is (its factory ran after the drop).
    let v = call(&d, "privdrop.whoami", "[]");
    assert_eq!(v["result"], json(r#"{"uid":65534,"gid":65534,"nice":5,"nofile":256}"#), "{v}");
    stop(&d);
    until("the worker to exit", Duration::from_secs(5), || !alive(worker));
}

#[test]
fn a_worker_that_cannot_take_its_user_exits_77_and_never_runs() {
    assert_root();
    let mut d = daemon_in("privdrop", "", &[]);
    let out =
        Command::new(&d.bin).arg("start").args(&d.args).env("PRIVDROP_WORKER_USER", "nosuchuser").output().unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    d.pids.push(d.pid().expect("pid file"));
    until("the worker's exit 77", Duration::from_secs(10), || {
        common::worker(&d, "low")["last_exit"].as_str() == Some("exited 77")
    });
    let log = d.log_text();
    assert!(log.contains("worker low: no user 'nosuchuser' in /etc/passwd: not running it"), "{log}");
    let v = call(&d, "privdrop.whoami", "[]");
    assert!(v["error"].is_object(), "nobody answers as the worker: {v}");
    stop(&d);
}

#[test]
fn limit_nofile_and_limit_core_show_in_proc_and_in_status() {
    assert_root();
    let d = daemon_in("pool", "", &["--limit-nofile", "2048", "--limit-core", "1048576"]).start();
    let pid = d.pids[0];
    let _workers = pids(&d);
    assert_eq!(limits(pid, "Max open files").0, "2048");
    assert_eq!(limits(pid, "Max core file size").0, "1048576");
    let s = status(&d);
    assert_eq!(s["rlimits"]["nofile"]["soft"], 2048, "{s}");
    assert_eq!(s["rlimits"]["core"]["soft"], 1048576, "{s}");
    let hard = limits(pid, "Max open files").1;
    assert_eq!(s["rlimits"]["nofile"]["hard"].to_string(), hard, "{s}");
    stop(&d);
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_limit_by_default() {
    let d = daemon_in("pool", "", &["-v"]);
    // Started from a shell whose soft limit is 512.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -S -n 512 && exec "$0" "$@""#)
        .arg(&d.bin)
        .arg("start")
        .args(&d.args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let mut d = d;
    let pid = d.pid().expect("pid file");
    d.pids.push(pid);
    let _workers = pids(&d);
    let (soft, hard) = limits(pid, "Max open files");
    assert_ne!(hard, "512", "the hard limit must be above 512 for this test");
    assert_eq!(soft, hard, "the soft limit is the hard one");
    let s = status(&d);
    assert_eq!(s["rlimits"]["nofile"]["soft"], s["rlimits"]["nofile"]["hard"], "{s}");
    let log = d.log_text();
    assert!(log.contains(&format!("open files: soft limit raised from 512 to the hard limit, {hard}")), "{log}");
    stop(&d);
}

/// `NAME start ARGS…` as nobody (from root: std's `uid` also clears the supplementary groups),
/// in a temp dir of nobody's.
fn start_as_nobody(d: &Daemon) -> Output {
    std::os::unix::fs::chown(&d.dir.0, Some(NOBODY), Some(NOBODY)).unwrap();
    Command::new(&d.bin).arg("start").args(&d.args).uid(NOBODY).gid(NOBODY).output().unwrap()
}

#[test]
fn an_unprivileged_daemon_refuses_a_limit_above_the_hard_one_naming_both() {
    assert_root();
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum.expect("a finite hard limit");
    let above = (hard + 1).to_string();
    let d = daemon_in("pool", "", &["--limit-nofile", &above]);
    let out = start_as_nobody(&d);
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let err = text(&out.stderr);
    let want = format!("--limit-nofile {above} is above the hard limit {hard}");
    assert!(err.contains(&want), "{want:?} in {err}");
    assert!(wait_for(Duration::from_secs(5), || processes_of(&d.dir.0).is_empty()), "a process is left");
}

#[test]
fn a_drop_that_fails_fails_the_start() {
    assert_root();
    // nobody cannot become root: setgroups fails, and the start with it.
    let d = daemon_in("pool", "", &["--user", "root"]);
    let out = start_as_nobody(&d);
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("cannot run as user root (uid 0)"), "{err}");
    assert!(err.contains("cannot set the supplementary groups"), "{err}");
    assert!(wait_for(Duration::from_secs(5), || processes_of(&d.dir.0).is_empty()), "a process is left");
    assert!(!d.pidfile.exists(), "the pid file is removed with the failed daemon");
}

#[test]
fn no_new_privs_holds_for_the_daemon_and_its_workers() {
    let d = daemon_in("pool", "", &["--no-new-privs"]).start();
    let workers = pids(&d);
    assert_eq!(status_field(d.pids[0], "NoNewPrivs"), "1");
    for &w in &workers.0 {
        assert_eq!(status_field(w, "NoNewPrivs"), "1", "worker {w}");
    }
    stop(&d);
}

#[test]
fn chdir_is_entered_and_umask_applies_under_run_too() {
    let d = daemon_in("pool", "", &["--chdir", "/tmp"]).start();
    let _workers = pids(&d);
    assert_eq!(std::fs::read_link(format!("/proc/{}/cwd", d.pids[0])).unwrap(), PathBuf::from("/tmp"));
    assert_eq!(status_field(d.pids[0], "Umask"), "0027", "start's default");
    stop(&d);
    // In the foreground: the umask given applies (and the directory stays where it was).
    let f = daemon_in("pool", "", &["--umask", "077"]);
    let mut child = Command::new(&f.bin)
        .arg("run")
        .args(&f.args)
        .current_dir(&f.dir.0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let guard = Reaper(vec![pid]);
    until("the foreground daemon to be ready", Duration::from_secs(10), || f.sock.exists() && f.pid().is_some());
    assert_eq!(status_field(pid, "Umask"), "0077");
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), f.dir.0);
    common::kill(pid, libc::SIGTERM);
    let _ = child.wait();
    drop(guard);
}

#[test]
fn a_pid_file_in_a_directory_the_user_cannot_write_is_emptied_at_stop() {
    assert_root();
    // The temp dir is root's (0755): nobody cannot remove what is in it.
    let d = daemon_in("pool", "", &["--user", "nobody"]).start();
    let pid = d.pids[0];
    let _workers = pids(&d);
    assert!(d.log_text().contains("it will be emptied and unlocked at stop instead of removed"), "{}", d.log_text());
    stop(&d);
    until("the daemon to exit", Duration::from_secs(5), || !alive(pid));
    assert_eq!(std::fs::read_to_string(&d.pidfile).unwrap(), "", "an empty pid file is left");
    let status = d.cmd("status");
    assert_eq!(status.status.code(), Some(3), "a stale pid file is not a running daemon");
    // The next start takes the stale pid file and socket over.
    let mut d = d;
    d.pids.clear();
    let d = d.start();
    let _workers = pids(&d);
    stop(&d);
}

#[test]
fn socket_mode_and_group_reach_the_socket_in_the_users_directory() {
    assert_root();
    use std::os::unix::fs::MetadataExt;
    let d =
        daemon_in("pool", "run", &["--user", "nobody", "--socket-mode", "0660", "--socket-group", "nogroup"]).start();
    let _workers = pids(&d);
    let meta = std::fs::metadata(&d.sock).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (0, NOBODY, 0o660));
    assert_eq!(status(&d)["user"]["uid"], NOBODY);
    stop(&d);
    assert!(!d.sock.exists() && !d.pidfile.exists());
}
