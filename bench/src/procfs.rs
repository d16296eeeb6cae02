//! Reading a process's figures from `/proc`, and signalling processes known by pid.

use anyhow::{Context, Result};
use rustix::process::{kill_process, Pid, Signal};

/// A `/proc/PID/status` field in kB (`VmRSS`, `RssAnon`).
pub fn status_kb(pid: impl std::fmt::Display, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// A `/proc/PID/smaps_rollup` field in kB (`Pss`, `Private_Dirty`…).
pub fn rollup_kb(pid: impl std::fmt::Display, field: &str) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
}

/// CPU time a process has used so far, all its threads, in nanoseconds (`/proc/PID/task/*/schedstat`).
pub fn cpu_ns(pid: i32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        total += stat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).context("schedstat")?;
    }
    Ok(total)
}

/// State (`R`, `S`, `Z`…), parent pid and start time (clock ticks since boot) of a process,
/// from `/proc/PID/stat`; `None` when there is no such process.
pub fn proc_stat(pid: i32) -> Option<(char, i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let start = rest.nth(17)?.parse().ok()?;
    Some((state, ppid, start))
}

/// The live (not zombie) children of `parent`, found by scanning `/proc`.
pub fn children(parent: i32) -> Vec<Known> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| match proc_stat(pid)? {
            (state, ppid, start) if ppid == parent && state != 'Z' && state != 'X' => Some(Known { pid, start }),
            _ => None,
        })
        .collect()
}

/// A process known by pid and start time, so that a recycled pid is never signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    pub pid: i32,
    pub start: u64,
}

impl Known {
    pub fn of(pid: i32) -> Option<Known> {
        proc_stat(pid).map(|(_, _, start)| Known { pid, start })
    }
    /// Still running (a zombie is not).
    pub fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, _, start)) if start == self.start && state != 'Z' && state != 'X')
    }
    pub fn signal(&self, sig: Signal) {
        if let (true, Some(pid)) = (self.alive(), Pid::from_raw(self.pid)) {
            let _ = kill_process(pid, sig);
        }
    }
}
