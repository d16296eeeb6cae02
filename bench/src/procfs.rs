//! Reading a process's figures from `/proc`.

use anyhow::{Context, Result};

/// A `/proc/PID/status` field in kB (`VmRSS`, `RssAnon`).
pub fn status_kb(pid: impl std::fmt::Display, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}
