//! In containers: a daemon in `run` mode as PID 1 of its own PID namespace (`unshare --pid
//! --fork --mount-proc`, as root) reaps every orphan reparented to it and exits 0 on SIGTERM
//! within its drain time, 1 when it cannot start; one that is not PID 1 but has workers is a
//! child subreaper and reaps its workers' orphans.
//!
//! The orphans: the `orphans` example's worker runs `sh -c 'sleep N &'` (the shell exits, its
//! sleep is orphaned); and, as `docker exec` or an exec probe would, a process entered into the
//! namespace from outside (`nsenter`) leaves one behind.

mod common;

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{binary, json, kill, ndjson, wait_for, Foreground, TempDir};

/// `(pid, ppid, state)` of every process, from `/proc/*/stat`.
fn processes() -> Vec<(i32, i32, char)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
        let state = rest.next()?.chars().next()?;
        let ppid = rest.next()?.parse().ok()?;
        Some((pid, ppid, state))
    })
    .collect()
}

/// The zombies whose parent is `parent`.
fn zombies_of(parent: i32) -> Vec<i32> {
    processes().into_iter().filter(|&(_, ppid, state)| ppid == parent && state == 'Z').map(|(pid, _, _)| pid).collect()
}

fn ppid_of(pid: i32) -> Option<i32> {
    processes().into_iter().find(|&(p, _, _)| p == pid).map(|(_, ppid, _)| ppid)
}

/// One JSON-RPC call on a fresh connection to `sock`; the response.
fn call(sock: &Path, method: &str, params: &str) -> serde_json::Value {
    let s = UnixStream::connect(sock).expect("connect to the daemon");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s);
    json(&ndjson(&mut r, &format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":1}}"#)))
}

/// How many orphans the daemon's log says it reaped.
fn reaped(log: &str) -> usize {
    log.lines().filter(|l| l.contains("reaped orphan pid")).count()
}

/// The daemon, or `unshare --kill-child` running it: killing `unshare` kills the daemon
/// (`--kill-child`), and with it, PID 1, the whole namespace; the daemon's own pid, not this
/// process's child, is never signalled on drop.
type Spawned = Foreground;

/// Whether this test can make PID namespaces: root, with util-linux's `unshare` and `nsenter`.
fn can_unshare() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: PID namespaces need root (CI runs the tests as root)");
        return false;
    }
    for tool in ["unshare", "nsenter"] {
        if Command::new(tool).arg("--version").stdout(Stdio::null()).status().map_or(true, |s| !s.success()) {
            eprintln!("SKIPPED: {tool} (util-linux) is not installed");
            return false;
        }
    }
    true
}

/// `unshare --pid --fork --mount-proc EXAMPLE run ARGS…`: the daemon is PID 1 of a new PID
/// namespace; `unshare` waits for it and exits with its status.
fn pid1(example: &str, dir: TempDir, args: &[&str]) -> Spawned {
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(binary(example))
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn unshare");
    Foreground { child, dir }
}

#[test]
fn as_pid_1_every_orphan_is_reaped_and_sigterm_exits_0_within_the_drain_time() {
    if !can_unshare() {
        return;
    }
    let dir = TempDir::new("pid1");
    let sock = dir.path("d.sock");
    let socket = format!("unix://{}", sock.display());
    let pidfile = dir.path("d.pid").display().to_string();
    let mut d = pid1("orphans", dir, &["--socket", &socket, "--pidfile", &pidfile, "-v"]);
    let unshare = d.child.id() as i32;
    // The daemon, as this namespace sees it: unshare's child.
    let mut found = None;
    assert!(
        wait_for(Duration::from_secs(20), || {
            found = processes().into_iter().find(|&(_, ppid, _)| ppid == unshare).map(|(pid, _, _)| pid);
            found.is_some()
        }),
        "unshare started nothing: {}",
        d.log()
    );
    let daemon = found.unwrap();
    assert!(wait_for(Duration::from_secs(30), || UnixStream::connect(&sock).is_ok()), "not ready: {}", d.log());
    let status = call(&sock, "daemon.status", "[]");
    assert_eq!(status["result"]["pid"], 1, "the daemon is not PID 1 in its namespace: {status}");
    // The exec probe of the container snippets, run inside the namespaces as a runtime runs it;
    // and the same from outside (a socket bind-mounted to the host): the peers' pids are not
    // visible across the namespaces, their credentials still are.
    let probe = |inside: bool| {
        let ctl = binary("tomtectl");
        let mut c = if inside {
            let mut c = Command::new("nsenter");
            c.args(["--target", &daemon.to_string(), "--pid", "--mount", "--"]).arg(ctl);
            c
        } else {
            Command::new(ctl)
        };
        c.arg("--socket").arg(&socket).arg("status").output().unwrap()
    };
    for inside in [true, false] {
        let out = probe(inside);
        let said = format!("{}{}", common::text(&out.stdout), common::text(&out.stderr));
        assert!(out.status.success(), "tomtectl status (inside: {inside}) failed: {said}");
    }

    // A worker's helper leaves an orphan (pid as the namespace sees it)...
    let answer = call(&sock, "orphans.leave", r#"{"seconds":1}"#);
    assert!(answer["result"].is_i64(), "{answer}");
    // ...and so does a process entered from outside, as `docker exec` or an exec probe would.
    let exec = Command::new("nsenter")
        .args(["--target", &daemon.to_string(), "--pid", "--", "sh", "-c", "sleep 1 </dev/null >/dev/null 2>&1 &"])
        .status()
        .expect("nsenter");
    assert!(exec.success());
    // Both orphans are the daemon's children now (not yet zombies, for a second).
    let sleeps = || {
        processes()
            .into_iter()
            .filter(|&(pid, ppid, _)| {
                ppid == daemon
                    && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
            })
            .count()
    };
    assert!(wait_for(Duration::from_secs(5), || sleeps() == 2), "the orphans were not reparented to PID 1");

    // They exit; both are reaped: logged, and no zombie is left under the daemon.
    assert!(wait_for(Duration::from_secs(30), || reaped(&d.log()) >= 2), "orphans not reaped; log:\n{}", d.log());
    assert!(
        wait_for(Duration::from_secs(10), || sleeps() == 0 && zombies_of(daemon).is_empty()),
        "zombies: {:?}",
        zombies_of(daemon)
    );
    // The worker itself is alive and still the supervisor's.
    let workers = call(&sock, "worker.list", "[]");
    assert_eq!(workers["result"][0]["state"], "looping", "{workers}");

    // SIGTERM to PID 1: a clean stop, exit 0, within the drain time (2 s + the workers' grace;
    // with a slow machine's margin).
    kill(daemon, libc::SIGTERM);
    let (code, took) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "log:\n{}", d.log());
    assert!(took < Duration::from_secs(12), "the stop took {took:?}");
    assert!(!sock.exists(), "the socket file is left behind");
}

#[test]
fn as_pid_1_a_start_failure_exits_1() {
    if !can_unshare() {
        return;
    }
    // A TCP listener other hosts can reach, with no way for its clients to prove who they are.
    let port = common::free_port();
    let dir = TempDir::new("pid1fail");
    let pidfile = dir.path("d.pid").display().to_string();
    let mut d = pid1("echo", dir, &["--socket", &format!("tcp://0.0.0.0:{port}"), "--pidfile", &pidfile]);
    let (code, _) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1), "log:\n{}", d.log());
    assert!(d.log().contains("reachable from other hosts"), "{}", d.log());
}

#[test]
fn with_workers_the_daemon_is_a_subreaper_and_reaps_their_orphans() {
    let dir = TempDir::new("subr");
    let sock = dir.path("d.sock");
    let stderr = std::fs::File::create(dir.path("stderr")).unwrap();
    let child = Command::new(binary("orphans"))
        .arg("run")
        .arg("-v")
        .arg("--socket")
        .arg(format!("unix://{}", sock.display()))
        .arg("--pidfile")
        .arg(dir.path("d.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let daemon = child.id() as i32;
    let mut d = Foreground { child, dir };
    assert!(wait_for(Duration::from_secs(30), || UnixStream::connect(&sock).is_ok()), "not ready: {}", d.log());

    let answer = call(&sock, "orphans.leave", r#"{"seconds":2}"#);
    let orphan = answer["result"].as_i64().unwrap_or_else(|| panic!("{answer}")) as i32;
    assert_eq!(ppid_of(orphan), Some(daemon), "the worker's orphan was not reparented to the daemon");
    assert!(wait_for(Duration::from_secs(30), || reaped(&d.log()) >= 1), "not reaped; log:\n{}", d.log());
    assert!(d.log().contains(&format!("reaped orphan pid {orphan}: exited 0")), "{}", d.log());
    assert!(zombies_of(daemon).is_empty(), "zombies: {:?}", zombies_of(daemon));

    kill(daemon, libc::SIGTERM);
    let (code, _) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "log:\n{}", d.log());
}
