//! `upgrade`: `daemon.upgrade` on the socket tomtectl talks to, and with `--wait` the old
//! process followed to its end: its `daemon.drained` event (subscribed to first, on the same
//! NDJSON connection, which the old process serves to the last), then — when the daemon is
//! local (a unix socket) — its pid gone from `/proc` (or a zombie).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use tomte::client::Client;
use tomte_rpc::{Args, Value};

/// How long the new process may take to be ready (the daemon's own bound is shorter; this only
/// keeps tomtectl from waiting for ever on a daemon that never answers).
const READY_LIMIT: Duration = Duration::from_secs(120);
/// How long the old process may take to drain and exit once the new one is ready.
const GONE_LIMIT: Duration = Duration::from_secs(300);

/// What `upgrade` was asked.
pub struct Ask<'a> {
    /// `--binary`, as the daemon is to read it.
    pub binary: Option<&'a str>,
    /// `--wait`.
    pub wait: bool,
    /// Whether the daemon is on this machine (a unix socket): its pid can be watched.
    pub local: bool,
    /// `--json`: the answer printed as sent, progress lines after it.
    pub json: bool,
}

/// The answer's line: `old pid X → new pid Y ready in N ms (BINARY)`.
pub fn ready_line(answer: &Value) -> String {
    let int = |k: &str| answer.member(k).and_then(Value::as_i64).map_or("?".to_owned(), |v| v.to_string());
    let binary = answer.member("binary").and_then(Value::as_str).unwrap_or("?");
    format!("old pid {} → new pid {} ready in {} ms ({binary})", int("old_pid"), int("new_pid"), int("ms"))
}

/// Runs `upgrade` on `client`: 0 once the new process serves (and, with `wait`, the old one
/// drained and went), 1 when the upgrade failed (the new process's message on stderr).
pub fn run(client: &mut Client, ask: &Ask<'_>) -> anyhow::Result<ExitCode> {
    if ask.wait {
        if client.protocol() != tomte::client::Protocol::Json {
            bail!("upgrade --wait follows the old process's daemon.drained event: it needs an NDJSON connection (not --xml or comodojo)");
        }
        client.subscribe(&["daemon.drained"])??;
    }
    client.set_timeout(Some(READY_LIMIT))?;
    let args = match ask.binary {
        Some(b) => Args::Positional(vec![Value::from(b)]),
        None => Args::default(),
    };
    let answer = match client.call("daemon.upgrade", &args)? {
        Ok(answer) => answer,
        Err(fault) if fault.code == tomte::faults::UPGRADE_FAILED => {
            let why = fault.data.as_ref().and_then(Value::as_str).unwrap_or(&fault.message);
            eprintln!("tomtectl: upgrade failed, the daemon serves on unchanged: {why}");
            return Ok(ExitCode::from(1));
        }
        Err(fault) => return Err(fault.into()),
    };
    if ask.json {
        crate::print_value(&answer, true);
    } else {
        crate::say!("{}", ready_line(&answer));
    }
    if !ask.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let old = answer.member("old_pid").and_then(Value::as_i64).unwrap_or(0);
    let started = Instant::now();
    client.set_timeout(Some(GONE_LIMIT))?;
    loop {
        match client.next_notification() {
            Ok(Some(n)) => {
                let name = n.params.member("name").and_then(Value::as_str);
                if n.method == "daemon.event" && name == Some("daemon.drained") {
                    let data = n.params.member("data");
                    let ms = data.and_then(|d| d.member("ms")).and_then(Value::as_i64).unwrap_or(0);
                    crate::say!("old pid {old} drained in {ms} ms");
                    break;
                }
            }
            // Closed without a word: the old process is gone (or going) all the same.
            Ok(None) | Err(tomte::client::ClientError::Closed { .. }) => {
                eprintln!("tomtectl: old pid {old} closed the connection before it said drained");
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !ask.local {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = started + GONE_LIMIT;
    while alive(old) {
        if Instant::now() > deadline {
            bail!("old pid {old} still runs {GONE_LIMIT:?} after the new one was ready");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    crate::say!("old pid {old} gone");
    Ok(ExitCode::SUCCESS)
}

/// Whether `pid` runs: `/proc/PID` exists and is not a zombie.
fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses (which may hold anything).
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_names_both_pids_the_time_and_the_binary() {
        let answer = Value::structure([
            ("old_pid", Value::from(10)),
            ("new_pid", Value::from(11)),
            ("binary", Value::from("/usr/bin/echo-daemon")),
            ("ms", Value::from(23)),
        ]);
        assert_eq!(ready_line(&answer), "old pid 10 → new pid 11 ready in 23 ms (/usr/bin/echo-daemon)");
        assert_eq!(ready_line(&Value::Nil), "old pid ? → new pid ? ready in ? ms (?)");
    }

    #[test]
    fn this_process_is_alive_and_a_pid_past_the_maximum_is_not() {
        assert!(alive(i64::from(std::process::id())));
        assert!(!alive(i64::from(i32::MAX)));
    }
}
