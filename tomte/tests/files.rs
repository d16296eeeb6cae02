//! Files nobody else can hijack: a link planted at the pid file, the log or the socket, a pid
//! file made by another user, a pid file whose pid is not the lock's holder, a directory open
//! to everyone — each is refused, and nothing is written, removed or signalled.
//!
//! Run as root (the tests need a second user: nobody, uid 65534, through `setpriv`).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

const NOBODY: u32 = 65534;

/// Processes this test started, killed by pid (and reaped) when it ends, pass or fail.
#[derive(Default)]
struct Procs(Vec<Child>);

impl Procs {
    fn add(&mut self, child: Child) -> i32 {
        let pid = child.id() as i32;
        self.0.push(child);
        pid
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A process that is not a daemon: the pid a forged pid file names.
fn decoy(procs: &mut Procs) -> i32 {
    procs.add(Command::new("sleep").arg("60").spawn().expect("sleep"))
}

/// Writes `pid` into `file` and holds an flock on it (in a `sleep`, whose pid is returned), as
/// uid `uid` (root: directly; another: through setpriv).
fn lock_as(procs: &mut Procs, uid: u32, file: &Path, pid: i32) -> i32 {
    let script = r#"echo "$1" > "$2" && exec 9<"$2" && flock -x 9 && echo ready && exec sleep 30"#;
    let mut cmd = if uid == 0 {
        Command::new("sh")
    } else {
        let mut c = Command::new("setpriv");
        let id = uid.to_string();
        c.args(["--reuid", &id, "--regid", &id, "--clear-groups", "sh"]);
        c
    };
    let mut child = cmd
        .args(["-c", script, "sh", &pid.to_string(), file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let holder = procs.add(child);
    assert_eq!(line.trim(), "ready", "the locker did not start");
    holder
}

/// `start`, expected to be refused. Should a daemon start anyway, its pid is recorded so that
/// it is killed when the test ends.
fn start_refused(d: &mut Daemon) -> String {
    let out = d.cmd("start");
    if out.status.success() {
        if let Some(pid) = d.pid() {
            d.pids.push(pid);
        }
    }
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "start was not refused: {}{err}", text(&out.stdout));
    err
}

/// A victim file: what an attacker would have root overwrite.
fn victim(d: &Daemon) -> PathBuf {
    let v = d.dir.path("victim");
    std::fs::write(&v, "precious\n").unwrap();
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o600)).unwrap();
    v
}

fn assert_untouched(v: &Path) {
    assert_eq!(std::fs::read_to_string(v).unwrap(), "precious\n", "the victim was written");
    assert_eq!(std::fs::metadata(v).unwrap().mode() & 0o7777, 0o600, "the victim's mode changed");
}

/// Moves the daemon's pid file to `to` (before `start`).
fn move_pidfile(d: &mut Daemon, to: &Path) {
    let (from, new) = (d.pidfile.display().to_string(), to.display().to_string());
    for a in &mut d.args {
        if *a == from {
            a.clone_from(&new);
        }
    }
    d.pidfile = to.to_owned();
}

#[test]
fn a_link_at_the_pid_file_is_refused_and_its_target_untouched() {
    let mut d = Daemon::new("echo", &[]);
    let v = victim(&d);
    std::os::unix::fs::symlink(&v, &d.pidfile).unwrap();
    let err = start_refused(&mut d);
    assert!(err.contains(&d.pidfile.display().to_string()) && err.contains("symbolic link"), "{err}");
    assert_untouched(&v);
}

#[test]
fn a_link_at_the_log_is_refused_and_its_target_untouched() {
    let mut d = Daemon::new("echo", &[]);
    let v = victim(&d);
    std::os::unix::fs::symlink(&v, &d.log).unwrap();
    let err = start_refused(&mut d);
    assert!(err.contains(&d.log.display().to_string()) && err.contains("symbolic link"), "{err}");
    assert_untouched(&v);
    assert!(!d.pidfile.exists() && !d.sock.exists(), "files left behind");
}

#[test]
fn a_link_at_the_socket_is_refused_and_its_target_untouched() {
    let mut d = Daemon::new("echo", &[]);
    let v = victim(&d);
    std::os::unix::fs::symlink(&v, &d.sock).unwrap();
    let err = start_refused(&mut d);
    assert!(err.contains(&d.sock.display().to_string()) && err.contains("symbolic link"), "{err}");
    assert_untouched(&v);
    assert!(std::fs::symlink_metadata(&d.sock).unwrap().file_type().is_symlink(), "the link was removed");
}

#[test]
fn a_stale_socket_of_another_user_is_neither_removed_nor_replaced() {
    let mut d = Daemon::new("echo", &[]);
    drop(std::os::unix::net::UnixListener::bind(&d.sock).unwrap());
    std::os::unix::fs::chown(&d.sock, Some(NOBODY), Some(NOBODY)).unwrap();
    let before = std::fs::symlink_metadata(&d.sock).unwrap().ino();
    let err = start_refused(&mut d);
    assert!(err.contains(&d.sock.display().to_string()) && err.contains("owned by uid 65534"), "{err}");
    let after = std::fs::symlink_metadata(&d.sock).unwrap();
    assert_eq!((after.ino(), after.uid()), (before, NOBODY), "another user's socket was replaced");
}

#[test]
fn a_pid_file_made_and_locked_by_another_user_is_refused_and_stop_kills_nothing() {
    let mut procs = Procs::default();
    let mut d = Daemon::new("echo", &[]);
    // A directory like /tmp: everyone may create files, only their owner may remove them.
    let shared = d.dir.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let pidfile = shared.join("d.pid");
    move_pidfile(&mut d, &pidfile);
    let target = decoy(&mut procs);
    lock_as(&mut procs, NOBODY, &pidfile, target);
    assert_eq!(std::fs::metadata(&pidfile).unwrap().uid(), NOBODY);

    let err = start_refused(&mut d);
    assert!(err.contains(&pidfile.display().to_string()) && err.contains("owned by uid 65534"), "{err}");
    let out = d.cmd("stop");
    assert!(!out.status.success(), "stop succeeded: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains("owned by uid 65534"), "{}", text(&out.stderr));
    let out = d.cmd("status");
    assert_eq!(out.status.code(), Some(4), "{}{}", text(&out.stdout), text(&out.stderr));
    let out = d.cmd("reload");
    assert!(!out.status.success());
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(alive(target), "the decoy was signalled");
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap().trim(), target.to_string());
}

#[test]
fn a_locked_pid_file_whose_pid_does_not_hold_the_lock_is_not_trusted() {
    let mut procs = Procs::default();
    let d = Daemon::new("echo", &[]);
    let target = decoy(&mut procs);
    let holder = lock_as(&mut procs, 0, &d.pidfile, target);
    let out = d.cmd("stop");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}{err}", text(&out.stdout));
    assert!(err.contains(&format!("not by pid {target}")), "{err}");
    assert_eq!(d.cmd("status").status.code(), Some(4));
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(alive(target) && alive(holder), "a process was signalled");
}

#[test]
fn a_pid_file_in_a_directory_open_to_everyone_is_refused() {
    let mut d = Daemon::new("echo", &[]);
    let open = d.dir.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let pidfile = open.join("d.pid");
    move_pidfile(&mut d, &pidfile);
    let err = start_refused(&mut d);
    assert!(
        err.contains(&open.display().to_string()) && err.contains("writable by other users without the sticky bit"),
        "{err}"
    );
    assert!(!pidfile.exists(), "a pid file was created");
}
