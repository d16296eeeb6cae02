//! The worker benchmark: the shared-memory channel against the hand-written floor, and a real
//! pool example (back-off zero) for crash → replacement, memory per worker and `pool.count` over a
//! unix socket, all in one run, each figure printed with its target.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::compare::{median, spread};
use crate::procfs::{rollup_kb, status_kb, Known};
use anyhow::{bail, Context, Result};
use rustix::process::{kill_process, Pid, Signal};
use tomte::_bench::spawn_child;
use tomte::client::Client;
use tomte::net::Address;
use tomte::worker::channel::{Channel, Endpoint, SendError};
use tomte::{Args, Value};

use crate::shm_floor::{self, Child, PATIENCE, WARM_UP};

/// Ring size of every channel here: the default of `WorkerSpec`.
const RING: usize = 64 << 10;
/// Alternating rounds of the round-trip duel, and round trips per round.
const RT_ROUNDS: usize = 7;
const RT_TRIPS: u64 = 100_000;
/// Rounds per direction of the throughput test, frames per round, frames per notify.
const TP_ROUNDS: usize = 3;
const TP_FRAMES: u64 = 4_000_000;
const BATCH: u64 = 64;
/// `kill -9` → looping measurements.
const CRASHES: usize = 10;
/// Alternating rounds of the end-to-end duel.
const E2E_ROUNDS: usize = 5;
/// The workers of the pool example.
const POOL_WORKERS: [&str; 2] = ["alpha", "beta"];
/// `pool.count` of worker alpha, as an NDJSON line (the same in every version of the example).
pub(crate) const COUNT_REQUEST: &[u8] =
    b"{\"jsonrpc\":\"2.0\",\"method\":\"pool.count\",\"params\":{\"name\":\"alpha\"},\"id\":1}\n";
/// Exit codes of the channel children (0: done).
const CHILD_STARVED: i32 = 3;
const CHILD_RECV: i32 = 4;
const CHILD_SEND: i32 = 5;
const CHILD_NOTIFY: i32 = 6;
const CHILD_BLOCKED: i32 = 7;

/// One figure against its target.
struct Line {
    what: &'static str,
    measured: String,
    target: &'static str,
    met: Option<bool>,
}

/// Runs everything and prints a report; returns whether every target was met. `e2e_round` is
/// the length of one round of the end-to-end duel.
pub fn run(pool: &Path, e2e_round: Duration) -> Result<bool> {
    println!("tomte worker benchmark (load average, running/total tasks before: {})", loadavg());
    let mut report = Report::default();
    channel_figures(&mut report)?;
    let dir = TempDir::new("tomte-wb")?;
    daemon_figures(pool, &dir.0, e2e_round, &mut report)?;

    println!("\n  {:<36} {:>34}  {:<12} result", "figure", "measured", "target");
    for l in &report.lines {
        let result = match l.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "(info)",
        };
        println!("  {:<36} {:>34}  {:<12} {result}", l.what, l.measured, l.target);
    }
    println!("  (load average, running/total tasks after: {})", loadavg());
    if !report.noisy.is_empty() {
        println!(
            "  NOISY: rounds of {} differ by more than half their median (another process on the cores, or \
             the processes placed differently from one fork to the next): re-run on an idle machine",
            report.noisy.join(", ")
        );
    }
    Ok(report.lines.iter().all(|l| l.met != Some(false)))
}

/// The first four fields of `/proc/loadavg`.
pub(crate) fn loadavg() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().take(4).collect::<Vec<_>>().join(" ")
}

/// The figures, and which measurements looked noisy.
#[derive(Default)]
struct Report {
    lines: Vec<Line>,
    noisy: Vec<&'static str>,
}

impl Report {
    /// Median and spread of `rounds`, noting `what` as noisy when the spread exceeds half the median.
    fn summary(&mut self, what: &'static str, rounds: &[f64]) -> (f64, f64, f64) {
        let (lo, hi) = spread(rounds);
        let mid = median(rounds.to_vec());
        if (hi - lo) > mid / 2.0 && !self.noisy.contains(&what) {
            self.noisy.push(what);
        }
        (mid, lo, hi)
    }
}

/// Round trip against the floor, and one-way throughput, between this process and a forked child.
fn channel_figures(report: &mut Report) -> Result<()> {
    let spin = Endpoint::DEFAULT_SPIN;
    let (mut floor, mut chan) = (Vec::new(), Vec::new());
    for _ in 0..RT_ROUNDS {
        floor.push(shm_floor::round_trip(RT_TRIPS)?.as_secs_f64() * 1e9);
        chan.push(channel_round_trip(RT_TRIPS, spin)?.as_secs_f64() * 1e9);
    }
    let (fl, flo, fhi) = report.summary("the round trip", &floor);
    let (ch, clo, chi) = report.summary("the round trip", &chan);
    println!(
        "  round trip, 8-byte frame ({RT_ROUNDS} alternating rounds of {RT_TRIPS}): floor {fl:.0} ns \
         [{flo:.0}..{fhi:.0}], channel {ch:.0} ns [{clo:.0}..{chi:.0}] (spin {spin:?} before sleeping)"
    );
    report.lines.push(Line {
        what: "channel round trip / shm floor",
        measured: format!("{ch:.0} ns / {fl:.0} ns = {:.2}x", ch / fl),
        target: "<= 2.00x",
        met: Some(ch / fl <= 2.0),
    });
    let sleeping = channel_round_trip(RT_TRIPS / 10, Duration::ZERO)?;
    report.lines.push(Line {
        what: "channel round trip, no spinning",
        measured: format!("{:.2} us", sleeping.as_secs_f64() * 1e6),
        target: "-",
        met: None,
    });

    for (what, up) in [("64 B messages, worker -> daemon", true), ("64 B messages, daemon -> worker", false)] {
        let mut rates = Vec::new();
        for _ in 0..TP_ROUNDS {
            rates.push(if up { throughput_up(TP_FRAMES)? } else { throughput_down(TP_FRAMES)? } / 1e6);
        }
        let (rate, lo, hi) = report.summary("the throughput", &rates);
        println!("  {what}, notify every {BATCH}: {rate:.1} M/s [{lo:.1}..{hi:.1}]");
        report.lines.push(Line {
            what,
            measured: format!("{rate:.1} M msgs/s"),
            target: ">= 10 M/s",
            met: Some(rate >= 10.0),
        });
    }
    Ok(())
}

/// Forks a child that runs `body` on the worker's end of a fresh channel; returns the child and
/// the daemon's end.
///
/// `body` must own no file descriptor (the child closes all but the channel's before it runs):
/// every caller here passes a closure over numbers alone.
fn fork_with_channel(name: &str, body: impl FnOnce(Endpoint) -> i32 + 'static) -> Result<(Child, Endpoint)> {
    let channel = Channel::new(RING)?;
    let keep: Vec<i32> = channel.fds().iter().map(|fd| fd.as_raw_fd()).collect();
    // SAFETY: `spawn_child`'s contract: the value is the channel, whose descriptors (its two
    // eventfds) are `keep`; the body captures `body`, which owns no descriptor (this private
    // function's rule above, kept by each of its callers: their closures capture counts and
    // durations only).
    #[allow(unsafe_code)]
    let (pid, channel) = unsafe { spawn_child(name, &keep, channel, move |channel| body(channel.worker_end()))? };
    Ok((Child::new(pid), channel.daemon_end()))
}

fn check_exit(child: Child, what: &str) -> Result<()> {
    match child.wait(PATIENCE)? {
        0 => Ok(()),
        code => bail!("{what}: the child exited {code}"),
    }
}

/// Mean time of `rounds` round trips of an 8-byte frame to an echoing child through the real
/// channel API (send, notify, wait, receive), both sides spinning for `spin` before they sleep.
fn channel_round_trip(rounds: u64, spin: Duration) -> Result<Duration> {
    let total = WARM_UP + rounds;
    let (child, mut end) = fork_with_channel("chan-echo", move |mut end| {
        end.set_spin(spin);
        let mut buf = [0u8; 64];
        for _ in 0..total {
            if !matches!(end.wait(PATIENCE), Ok(true)) {
                return CHILD_STARVED;
            }
            let Ok(Some(len)) = end.recv_into(&mut buf) else { return CHILD_RECV };
            if end.send(&buf[..len]).is_err() {
                return CHILD_SEND;
            }
            if end.notify().is_err() {
                return CHILD_NOTIFY;
            }
        }
        0
    })?;
    end.set_spin(spin);
    let mut buf = [0u8; 64];
    let mut start = Instant::now();
    for i in 1..=total {
        if i == WARM_UP + 1 {
            start = Instant::now();
        }
        end.send(&i.to_le_bytes())?;
        end.notify()?;
        if !end.wait(PATIENCE)? {
            bail!("round trip {i}: no echo within {PATIENCE:?}");
        }
        match end.recv_into(&mut buf)? {
            Some(8) if buf[..8] == i.to_le_bytes() => {}
            other => bail!("round trip {i}: wrong echo {other:?}"),
        }
    }
    let mean = start.elapsed() / rounds as u32;
    check_exit(child, "round trip")?;
    Ok(mean)
}

/// Sends `frames` 64-byte frames numbered from 0, notifying every [`BATCH`], waiting for room
/// when the ring is full. Returns 0 or a child exit code.
fn send_frames(end: &mut Endpoint, frames: u64) -> i32 {
    let mut frame = [0u8; 64];
    let mut seq = 0;
    while seq < frames {
        frame[..8].copy_from_slice(&seq.to_le_bytes());
        match end.send(&frame) {
            Ok(()) => {
                seq += 1;
                if seq % BATCH == 0 && end.notify().is_err() {
                    return CHILD_NOTIFY;
                }
            }
            Err(SendError::Full) => {
                if !matches!(end.wait_writable(frame.len(), PATIENCE), Ok(true)) {
                    return CHILD_BLOCKED;
                }
            }
            Err(_) => return CHILD_SEND,
        }
    }
    if end.notify().is_err() {
        return CHILD_NOTIFY;
    }
    0
}

/// Receives `frames` 64-byte frames numbered from 0, notifying every [`BATCH`] (room freed).
/// Returns 0 or a child exit code; `first` is called on the first frame.
fn recv_frames(end: &mut Endpoint, frames: u64, mut first: impl FnMut()) -> i32 {
    let mut buf = [0u8; 64];
    let mut seq = 0;
    while seq < frames {
        match end.recv_into(&mut buf) {
            Ok(Some(64)) if buf[..8] == seq.to_le_bytes() => {
                if seq == 0 {
                    first();
                }
                seq += 1;
                if seq % BATCH == 0 && end.notify().is_err() {
                    return CHILD_NOTIFY;
                }
            }
            Ok(Some(_)) | Err(_) => return CHILD_RECV,
            Ok(None) => {
                if !matches!(end.wait(PATIENCE), Ok(true)) {
                    return CHILD_STARVED;
                }
            }
        }
    }
    match end.notify() {
        Ok(_) => 0,
        Err(_) => CHILD_NOTIFY,
    }
}

/// Frames per second from a child (worker → daemon), timed from the first frame received.
fn throughput_up(frames: u64) -> Result<f64> {
    let (child, mut end) = fork_with_channel("chan-up", move |mut end| send_frames(&mut end, frames))?;
    let mut start = None;
    let code = recv_frames(&mut end, frames, || start = Some(Instant::now()));
    let elapsed = start.map(|s| s.elapsed());
    if code != 0 {
        bail!("worker -> daemon: receiving failed (code {code})");
    }
    check_exit(child, "worker -> daemon")?;
    Ok(frames as f64 / elapsed.context("no frame")?.as_secs_f64())
}

/// Frames per second to a child (daemon → worker): the child says when it is ready, receives
/// every frame, and answers once it has them all; timed from the first send to that answer.
fn throughput_down(frames: u64) -> Result<f64> {
    let (child, mut end) = fork_with_channel("chan-down", move |mut end| {
        if end.send(b"ready").is_err() || end.notify().is_err() {
            return CHILD_SEND;
        }
        match recv_frames(&mut end, frames, || {}) {
            0 => {}
            code => return code,
        }
        if end.send(b"done").is_err() || end.notify().is_err() {
            return CHILD_SEND;
        }
        0
    })?;
    let mut buf = [0u8; 64];
    let mut expect = |end: &mut Endpoint, word: &[u8]| -> Result<()> {
        if !end.wait(PATIENCE)? {
            bail!("daemon -> worker: no '{}' from the child", String::from_utf8_lossy(word));
        }
        match end.recv_into(&mut buf)? {
            Some(n) if &buf[..n] == word => Ok(()),
            other => bail!("daemon -> worker: unexpected frame {other:?}"),
        }
    };
    expect(&mut end, b"ready")?;
    let start = Instant::now();
    match send_frames(&mut end, frames) {
        0 => {}
        code => bail!("daemon -> worker: sending failed (code {code})"),
    }
    expect(&mut end, b"done")?;
    let elapsed = start.elapsed();
    check_exit(child, "daemon -> worker")?;
    Ok(frames as f64 / elapsed.as_secs_f64())
}

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// `PREFIX-PID` in the temporary directory.
    pub(crate) fn new(prefix: &str) -> Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A detached pool daemon, stopped by its pid (SIGTERM, then SIGKILL) on drop, and any worker it
/// ever showed killed by its pid if it outlived the daemon.
pub(crate) struct PoolDaemon {
    daemon: Known,
    sock: PathBuf,
    workers: Vec<Known>,
}

impl PoolDaemon {
    /// Starts `pool` (`start`, detached) with its socket, pid file and log in `dir`.
    pub(crate) fn start(pool: &Path, dir: &Path) -> Result<PoolDaemon> {
        let sock = dir.join("pool.sock");
        let pidfile = dir.join("pool.pid");
        // The pool example with restart back-off zero and no crash-loop limit in practice, so
        // repeated `kill -9` measures restarts instead of ending in state `failed`.
        let out = Command::new(pool)
            .env("POOL_BACKOFF_MS", "0")
            .env("POOL_CRASH_LIMIT", "10000")
            .arg("start")
            .arg("--socket")
            .arg(format!("unix://{}", sock.display()))
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("--log")
            .arg(dir.join("pool.log"))
            .output()
            .with_context(|| format!("run {} start", pool.display()))?;
        if !out.status.success() {
            bail!("{} start failed: {}", pool.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .context("read the pool daemon's pid file")?
            .trim()
            .parse()
            .context("parse the pool daemon's pid file")?;
        let daemon = Known::of(pid).with_context(|| format!("pool daemon pid {pid} is not running"))?;
        Ok(PoolDaemon { daemon, sock, workers: Vec::new() })
    }

    pub(crate) fn connect(&self) -> Result<Client> {
        let mut client = Client::connect(&Address::unix(&self.sock))?;
        client.set_timeout(Some(Duration::from_secs(5)))?;
        Ok(client)
    }

    /// A raw connection for NDJSON lines.
    pub(crate) fn line_conn(&self) -> Result<BufReader<UnixStream>> {
        Ok(BufReader::new(UnixStream::connect(&self.sock)?))
    }

    /// Waits until both workers loop, and remembers their pids; returns them.
    pub(crate) fn wait_workers(&mut self, client: &mut Client) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        for name in POOL_WORKERS {
            let pid = wait_looping(client, name)?;
            self.saw(pid);
            pids.push(pid);
        }
        Ok(pids)
    }

    /// Remembers a worker's pid, to make sure it is gone at the end.
    fn saw(&mut self, pid: i32) {
        if !self.workers.iter().any(|w| w.pid == pid) {
            self.workers.extend(Known::of(pid));
        }
    }
}

impl Drop for PoolDaemon {
    fn drop(&mut self) {
        self.daemon.signal(Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.daemon.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.daemon.alive() {
            eprintln!("pool daemon {} ignored SIGTERM: SIGKILL", self.daemon.pid);
            self.daemon.signal(Signal::KILL);
        }
        // Its workers die with it (PR_SET_PDEATHSIG); make sure of it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.workers.iter().any(Known::alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for w in self.workers.iter().filter(|w| w.alive()) {
            eprintln!("worker {} outlived the pool daemon: SIGKILL", w.pid);
            w.signal(Signal::KILL);
        }
    }
}

/// One worker as `worker.list` shows it.
struct Seen {
    pid: Option<i32>,
    state: String,
    restarts: i64,
}

fn worker_list(client: &mut Client) -> Result<Vec<(String, Seen)>> {
    let list = client.call("worker.list", &Args::default())?.map_err(|f| anyhow::anyhow!("worker.list: {f:?}"))?;
    let Value::Array(items) = list else { bail!("worker.list answered {list:?}") };
    let int = |v: Option<&Value>| match v {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    };
    Ok(items
        .iter()
        .map(|w| {
            let name = w.member("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let seen = Seen {
                pid: int(w.member("pid")).and_then(|p| i32::try_from(p).ok()),
                state: w.member("state").and_then(Value::as_str).unwrap_or_default().to_owned(),
                restarts: int(w.member("restarts")).unwrap_or(-1),
            };
            (name, seen)
        })
        .collect())
}

fn worker(client: &mut Client, name: &str) -> Result<Seen> {
    worker_list(client)?
        .into_iter()
        .find_map(|(n, s)| (n == name).then_some(s))
        .with_context(|| format!("worker.list has no '{name}'"))
}

/// Polls `worker.list` until `name` is looping; returns its pid.
fn wait_looping(client: &mut Client, name: &str) -> Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let w = worker(client, name)?;
        match w.pid {
            Some(pid) if w.state == "looping" => return Ok(pid),
            _ if Instant::now() > deadline => bail!("worker {name} not looping after 5 s (state {})", w.state),
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Private_Clean + Private_Dirty from `/proc/PID/smaps_rollup` in kB: the memory no other
/// process shares (copy-on-write pages still shared with the daemon are not counted).
fn private_kb(pid: i32) -> Option<u64> {
    Some(rollup_kb(pid, "Private_Clean")? + rollup_kb(pid, "Private_Dirty")?)
}

/// One call at a time on one connection for `time`: calls per second. Every answer must be a
/// result (an error reply would be a cheap, wrong figure).
pub(crate) fn calls_per_sec(conn: &mut BufReader<UnixStream>, request: &[u8], time: Duration) -> Result<f64> {
    let mut line = Vec::with_capacity(512);
    let (start, mut calls) = (Instant::now(), 0u64);
    while start.elapsed() < time {
        for _ in 0..50 {
            conn.get_mut().write_all(request)?;
            line.clear();
            conn.read_until(b'\n', &mut line)?;
            if memchr::memmem::find(&line, b"\"result\"").is_none() {
                bail!("not a result: {}", String::from_utf8_lossy(&line).trim());
            }
        }
        calls += 50;
    }
    Ok(calls as f64 / start.elapsed().as_secs_f64())
}

/// The figures of a running pool daemon: memory, end to end, crash → replacement.
fn daemon_figures(pool: &Path, dir: &Path, e2e_round: Duration, report: &mut Report) -> Result<()> {
    let mut daemon = PoolDaemon::start(pool, dir)?;
    let mut client = daemon.connect()?;
    let pids = daemon.wait_workers(&mut client)?;

    // Memory, once both workers have idled a little.
    std::thread::sleep(Duration::from_millis(300));
    let mut anon = Vec::new();
    for &pid in &pids {
        anon.push(status_kb(pid, "RssAnon")?);
    }
    let private: Vec<String> =
        pids.iter().map(|&p| private_kb(p).map_or_else(|| "?".to_owned(), |kb| kb.to_string())).collect();
    let worst = anon.iter().copied().max().unwrap_or(0);
    let d = daemon.daemon.pid;
    println!(
        "  idle workers: RssAnon {anon:?} kB, private (smaps) [{}] kB, VmRSS [{}, {}] kB",
        private.join(", "),
        status_kb(pids[0], "VmRSS")?,
        status_kb(pids[1], "VmRSS")?
    );
    report.lines.push(Line {
        what: "RssAnon per idle worker (worst)",
        measured: format!("{worst} kB"),
        target: "<= 300 kB",
        met: Some(worst <= 300),
    });
    report.lines.push(Line {
        what: "private memory per worker (smaps)",
        measured: format!("{} kB", private.join(" / ")),
        target: "-",
        met: None,
    });
    report.lines.push(Line {
        what: "daemon with 2 workers: VmRSS / RssAnon",
        measured: format!("{} / {} kB", status_kb(d, "VmRSS")?, status_kb(d, "RssAnon")?),
        target: "-",
        met: None,
    });

    // End to end: pool.count (asks a worker) against daemon.status (the daemon alone).
    let (mut status_conn, mut count_conn) = (daemon.line_conn()?, daemon.line_conn()?);
    let status_req = b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.status\",\"id\":1}\n";
    let (mut status, mut count) = (Vec::new(), Vec::new());
    for _ in 0..E2E_ROUNDS {
        status.push(calls_per_sec(&mut status_conn, status_req, e2e_round)?);
        count.push(calls_per_sec(&mut count_conn, COUNT_REQUEST, e2e_round)?);
    }
    let (s, slo, shi) = report.summary("the end-to-end calls", &status);
    let (c, clo, chi) = report.summary("the end-to-end calls", &count);
    println!(
        "  one call in flight, unix socket ({E2E_ROUNDS} alternating rounds of {e2e_round:?}): daemon.status \
         {s:.0}/s [{slo:.0}..{shi:.0}], pool.count {c:.0}/s [{clo:.0}..{chi:.0}]"
    );
    report.lines.push(Line {
        what: "pool.count / daemon.status calls/s",
        measured: format!("{c:.0} / {s:.0} = {:.2}", c / s),
        target: ">= 0.50",
        met: Some(c / s >= 0.5),
    });
    drop((status_conn, count_conn));

    // Crash → replacement looping, back-off zero.
    let restarts_before: i64 = worker_list(&mut client)?.iter().map(|(_, s)| s.restarts).sum();
    let (mut looping, mut respawned) = (Vec::new(), Vec::new());
    for k in 0..CRASHES {
        let name = POOL_WORKERS[k % 2];
        let old = wait_looping(&mut client, name)?;
        daemon.saw(old);
        let target = Pid::from_raw(old).context("worker pid")?;
        let t0 = Instant::now();
        kill_process(target, Signal::KILL).with_context(|| format!("kill -9 {old}"))?;
        let mut new_pid_at = None;
        loop {
            let w = worker(&mut client, name)?;
            let elapsed = t0.elapsed();
            if let Some(pid) = w.pid.filter(|&p| p != old) {
                daemon.saw(pid);
                new_pid_at.get_or_insert(elapsed);
                if w.state == "looping" {
                    looping.push(elapsed.as_secs_f64() * 1e3);
                    break;
                }
            }
            if elapsed > Duration::from_secs(5) {
                bail!("worker {name} not replaced 5 s after kill -9 of pid {old} (state {})", w.state);
            }
        }
        respawned.push(new_pid_at.expect("set before looping").as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(20));
    }
    let restarts_after: i64 = worker_list(&mut client)?.iter().map(|(_, s)| s.restarts).sum();
    let (lo, hi) = spread(&looping);
    let (loop_ms, pid_ms) = (median(looping), median(respawned));
    // Single restarts vary by nature (a kill lands anywhere in a scheduling slice): only a
    // median far from the best one says the machine was busy.
    if loop_ms > 3.0 * lo {
        report.noisy.push("the restarts");
    }
    println!(
        "  kill -9 of a worker x{CRASHES}: new pid in worker.list after {pid_ms:.2} ms, looping after {loop_ms:.2} ms \
         [{lo:.2}..{hi:.2}] (medians); restarts counted {}",
        restarts_after - restarts_before
    );
    if restarts_after - restarts_before != CRASHES as i64 {
        bail!("{CRASHES} kills but restarts went from {restarts_before} to {restarts_after}");
    }
    report.lines.push(Line {
        what: "kill -9 -> replacement looping",
        measured: format!("{loop_ms:.2} ms (median of {CRASHES})"),
        target: "<= 5 ms",
        met: Some(loop_ms <= 5.0),
    });
    drop(client);
    drop(daemon);
    Ok(())
}
