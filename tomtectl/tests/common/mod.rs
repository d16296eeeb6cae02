//! What the tomtectl tests that drive an example daemon share: the daemon, started with
//! `start` in a fresh directory and killed by every pid it had on drop (pass or fail), and
//! tomtectl run against its socket.
//!
//! Needs the examples built: `cargo build -p tomte --examples` (they are found next to
//! tomtectl, in the same target directory).

// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The example `name`, built in the same target directory as tomtectl.
pub fn example(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_tomtectl")).parent().expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "{} is not built: run `cargo build -p tomte --examples` first", path.display());
    path
}

/// An example daemon started with `start`; it and every pid in `pids` are killed on drop, and
/// its directory removed.
pub struct Started {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub pidfile: PathBuf,
    /// Every pid it had (the pid file's, an upgrade's new one, its workers'): killed on drop.
    pub pids: Vec<i32>,
}

impl Started {
    /// `EXAMPLE start --socket … --pidfile … --log … EXTRA…` with `env`, in `/tmp/tc-EXAMPLE-PID-TAG`.
    pub fn start(example_name: &str, tag: &str, extra: &[&str], env: &[(&str, &str)]) -> Started {
        let dir = PathBuf::from(format!("/tmp/tc-{example_name}-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Started { sock: dir.join("d.sock"), pidfile: dir.join("d.pid"), dir, pids: Vec::new() };
        let out = Command::new(example(example_name))
            .arg("start")
            .arg("--socket")
            .arg(format!("unix://{}", d.sock.display()))
            .arg("--pidfile")
            .arg(&d.pidfile)
            .arg("--log")
            .arg(d.dir.join("d.log"))
            .args(extra)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "start: {}{}", text(&out.stdout), text(&out.stderr));
        let pid = d.pid();
        d.pids.push(pid);
        d
    }

    /// The pid its pid file names.
    pub fn pid(&self) -> i32 {
        let text = std::fs::read_to_string(&self.pidfile).expect("the pid file");
        text.trim().parse().expect("a pid in the pid file")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("d.log")).unwrap_or_default()
    }

    /// `tomtectl --socket ADDR args…`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tomtectl"))
            .arg("--socket")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .env_remove("TOMTE_SOCKET")
            .output()
            .unwrap()
    }

    /// `tomtectl args…`, which must succeed: its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}{}\nlog:\n{}",
            text(&out.stdout),
            text(&out.stderr),
            self.log()
        );
        text(&out.stdout)
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pidfile).map(|t| t.trim().parse::<i32>().unwrap_or(0)) {
            self.pids.push(pid);
        }
        for &pid in &self.pids {
            if pid > 0 {
                let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether `pid` runs (a zombie does not).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
