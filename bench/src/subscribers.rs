//! `tomte-bench subscribers [SECONDS]`: what event subscribers cost the daemon's calls.
//!
//! * `echo 64 in flight, 100 subscribers attached` — the load of `tomte-bench compare`'s
//!   `echo 64 in flight` on one echo daemon, in interleaved rounds with and without 100
//!   connections subscribed to `*` (each read by its own thread): attached/none ≥ 0.95, the
//!   issue's target (subscribers cost at most 5 % of calls/s). Echo calls emit no event, so this
//!   is the cost of being attached: what the loop does per call for subscribers that want none of it.
//! * `chaos.emit 64 in flight, 100 subscribers` — every call emits an event that each of the 100
//!   subscribers receives (100 notifications written per call): for information, no target.
//!
//! The daemons run in a temporary directory and are killed by their pids at the end.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::compare::{spread, Echo, Pairs};
use crate::workers::TempDir;

/// Rounds per side (odd: the median is a measured round).
const ROUNDS: usize = 7;
const SUBSCRIBERS: usize = 100;
const EMIT: &str = r#"{"jsonrpc":"2.0","method":"chaos.emit","params":["app.bench"],"id":1}"#;

/// 100 connections subscribed to every event, each drained by a thread until it is dropped.
struct Attached {
    conns: Vec<UnixStream>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Attached {
    fn attach(sock: &Path) -> Result<Attached> {
        let mut conns = Vec::with_capacity(SUBSCRIBERS);
        let mut readers = Vec::with_capacity(SUBSCRIBERS);
        for _ in 0..SUBSCRIBERS {
            let mut r = BufReader::new(UnixStream::connect(sock).context("connect a subscriber")?);
            r.get_mut()
                .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.subscribe\",\"params\":[[\"*\"]],\"id\":1}\n")?;
            let mut answer = String::new();
            r.read_line(&mut answer)?;
            if !answer.contains("\"subscribed\"") {
                bail!("daemon.subscribe answered {}", answer.trim());
            }
            conns.push(r.get_ref().try_clone()?);
            readers.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
            }));
        }
        Ok(Attached { conns, readers })
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        for c in &self.conns {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

fn answered(line: &[u8]) -> io::Result<()> {
    if line.windows(9).any(|w| w == b"\"result\":") {
        Ok(())
    } else {
        Err(io::Error::other(format!("unexpected answer: {}", String::from_utf8_lossy(line))))
    }
}

/// Runs daemon `exe` in `dir` and `load` against it, in interleaved rounds without subscribers
/// and with 100 attached (attached anew for each round, gone before the next).
fn rounds(exe: &Path, dir: &Path, load: impl Fn(&Path) -> io::Result<f64>) -> Result<Pairs> {
    std::fs::create_dir_all(dir)?;
    let daemon = Echo::run(exe, dir)?;
    let sock = daemon.at.sock.clone();
    Pairs::run(ROUNDS, true, |attached| {
        let _held = attached.then(|| Attached::attach(&sock)).transpose()?;
        Ok(load(&sock)?)
    })
}

/// Runs both scenarios and prints them; returns whether the target was met.
pub fn run(echo_exe: &Path, chaos_exe: &Path, seconds: f64) -> Result<bool> {
    let time = Duration::from_secs_f64(seconds);
    let tmp = TempDir::new("tomte-subscribers")?;
    println!("event subscribers: {ROUNDS} rounds of {time:?} per side, interleaved; medians");
    println!("  {:<46} {:>11} {:>11} {:>8}   {:<18} target", "scenario", "none", "attached", "ratio", "per-round");
    let row = |what: &str, pairs: &Pairs, target: Option<f64>| {
        let (none, with) = pairs.medians();
        let (lo, hi) = spread(&pairs.ratios());
        let ratio = with / none;
        let verdict = match target {
            Some(t) if ratio >= t => format!(">= {t:.2} PASS"),
            Some(t) => format!(">= {t:.2} FAIL"),
            None => "(info)".to_owned(),
        };
        println!("  {what:<46} {none:>11.0} {with:>11.0} {ratio:>8.3}   [{lo:.3} .. {hi:.3}]   {verdict}");
        target.is_none_or(|t| ratio >= t)
    };

    let pairs = rounds(echo_exe, &tmp.0.join("echo"), |sock| crate::load::pipelined(sock, 64, time))?;
    let passed = row("echo 64 in flight, 100 subscribers attached", &pairs, Some(0.95));
    let pairs =
        rounds(chaos_exe, &tmp.0.join("chaos"), |sock| crate::load::pipelined_calls(sock, EMIT, answered, 64, time))?;
    row("chaos.emit 64 in flight, each event to all 100", &pairs, None);
    Ok(passed)
}
