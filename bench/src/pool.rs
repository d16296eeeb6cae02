//! `tomte-bench pool [SECONDS]`: what worker pools cost and give (issue 13, "Speed"), in one run.
//!
//! * **CPU-bound asks, pool of 2 / pool of 1**: two `hash` daemons (`tomte/examples/hash.rs`,
//!   pool `hasher`, `HASH_WORKERS=1` and `=2`) run side by side; in alternating rounds of SECONDS
//!   each is driven by 8 unix connections, each with one `hash.sha256` call in flight
//!   (raw NDJSON, the request bytes built once, every answer checked to be a result). `rounds` is
//!   calibrated first so that one ask is about 1 ms of hashing. Target: calls/s ratio
//!   ≥ 1.8 on this 2-core machine. Without a built `hash` example the `crew` example stands in
//!   (`crew.work {"ms":1}`, `CREW_INSTANCES=1` and `=2`): its asks sleep, so the figure is shown
//!   for information only.
//! * **pool dispatch / direct ask**: one `crew` daemon (`CREW_INSTANCES=1`): `crew.work {"ms":0}`
//!   (through the pool `crew`) against `crew.solo {"ms":0}` (the plain worker `solo`), one call at
//!   a time on one connection each, in alternating rounds of SECONDS. Target: ratio ≥ 0.9
//!   (dispatch costs at most 10 %).
//! * **scale 0 → 20 instances looping**: one `crew` daemon (`CREW_INSTANCES=0`) with a connection
//!   subscribed to `daemon.worker.state`; `worker.scale {"name":"crew","instances":20}` is sent
//!   on another and timed until events told all 20 instances `looping`; `worker.list` then
//!   confirms it (the pool's size is 20, each instance looping). Then scaled back to 0, waited for
//!   (every instance told without a process, and gone from `worker.list`), 10 times: median
//!   and max. Target: ≤ 30 ms. For comparison, supervisord's own figures: 113 ms for 20 programs
//!   when polled, about 1.1 s when not.
//!
//! The examples are found in `examples/` beside this binary: build them with
//! `cargo build --release -p tomte --examples`. The daemons run in the foreground in a temporary
//! directory and are stopped by their pids at the end (SIGTERM, then SIGKILL, their workers too),
//! on errors as well.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mio::{Events, Interest, Poll, Token};
use rustix::process::Signal;
use serde_json::Value as Json;

use crate::compare::{median, report, spread, Line, Pairs};
use crate::procfs::{children, Known};
use crate::workers::{calls_per_sec, loadavg, TempDir};

/// Where the example daemons are: `crew`, and `hash` when built.
pub struct Bins {
    pub crew: PathBuf,
    pub hash: Option<PathBuf>,
}

impl Bins {
    /// The examples in `DIR/examples/`, `DIR` being this binary's directory.
    pub fn beside(exe: &Path) -> Result<Bins> {
        let dir = exe.with_file_name("examples");
        let crew = dir.join("crew");
        if !crew.is_file() {
            bail!("{} is not built: run `cargo build --release -p tomte --examples`", crew.display());
        }
        let hash = Some(dir.join("hash")).filter(|h| h.is_file());
        Ok(Bins { crew, hash })
    }
}

/// Connections driving a pool in the CPU-bound duel, one call in flight on each.
const CLIENTS: usize = 8;
/// The hashing one CPU-bound ask should cost.
const ASK_CPU: Duration = Duration::from_millis(1);
/// Alternating rounds per side of the duels (odd: the median is a measured round).
const ROUNDS: usize = 7;
/// Scale-ups timed.
const SCALES: usize = 10;
/// Instances the pool is scaled to.
const SCALE_TO: usize = 20;
/// How long a daemon may take to answer, scale or stop before the run gives up.
const PATIENCE: Duration = Duration::from_secs(15);

const LIST: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"worker.list\",\"id\":1}\n";

/// Runs the three measurements and prints a report; returns whether every target was met.
pub fn run(bins: &Bins, round: Duration) -> Result<bool> {
    println!("tomte pool benchmark (load average, running/total tasks before: {})", loadavg());
    let dir = TempDir::new("tomte-pool-bench")?;
    let mut lines = Vec::new();
    cpu_bound(bins, &dir.0, round, &mut lines)?;
    dispatch(bins, &dir.0, round, &mut lines)?;
    scaling(bins, &dir.0, &mut lines)?;
    let met = report(&lines);
    println!("  (load average, running/total tasks after: {})", loadavg());
    Ok(met)
}

/// A daemon run in the foreground (`run`) by this benchmark, stopped by its pid on drop.
struct Daemon {
    tag: &'static str,
    child: Child,
    sock: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// `bin run` with `env`, its socket, pid file and log in `dir` named after `tag`; once its
    /// socket accepts connections.
    fn run(bin: &Path, dir: &Path, tag: &'static str, env: &[(&str, String)]) -> Result<Daemon> {
        let sock = dir.join(format!("{tag}.sock"));
        let log = dir.join(format!("{tag}.log"));
        let child = Command::new(bin)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("run")
            .arg("--socket")
            .arg(format!("unix://{}", sock.display()))
            .arg("--pidfile")
            .arg(dir.join(format!("{tag}.pid")))
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // It logs to its --log file too (shown on errors): its stderr would drown the figures.
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let mut d = Daemon { tag, child, sock, log };
        let deadline = Instant::now() + PATIENCE;
        while UnixStream::connect(&d.sock).is_err() {
            if let Some(status) = d.child.try_wait()? {
                bail!("{tag} exited ({status}) before it answered{}", d.log_tail());
            }
            if Instant::now() > deadline {
                bail!("{tag} did not answer on {} within {PATIENCE:?}{}", d.sock.display(), d.log_tail());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(d)
    }

    fn connect(&self) -> Result<BufReader<UnixStream>> {
        let s = UnixStream::connect(&self.sock).with_context(|| format!("connect to {}", self.tag))?;
        s.set_read_timeout(Some(PATIENCE))?;
        Ok(BufReader::new(s))
    }

    /// Its workers (children) now, to make sure they end with it.
    fn workers(&self) -> Vec<Known> {
        i32::try_from(self.child.id()).map(children).unwrap_or_default()
    }

    /// The last lines of its log, for an error message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            return String::new();
        }
        format!("\n  {} ends with:\n    {}", self.log.display(), lines[lines.len().saturating_sub(8)..].join("\n    "))
    }

    /// Waits until every instance of `list` has the state wanted, polling `worker.list`.
    fn wait_workers(&self, want: impl Fn(&[(String, String)]) -> bool) -> Result<()> {
        let mut conn = self.connect()?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let list = instances(&call(&mut conn, LIST)?);
            if want(&list) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{}: workers not as wanted {PATIENCE:?} later: {list:?}{}", self.tag, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let workers = self.workers();
        if let Some(d) = i32::try_from(self.child.id()).ok().and_then(Known::of) {
            d.signal(Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            eprintln!("{}: pid {} ignored SIGTERM: SIGKILL", self.tag, self.child.id());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Its workers die with it (PR_SET_PDEATHSIG); make sure of it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while workers.iter().any(Known::alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for w in workers.iter().filter(|w| w.alive()) {
            eprintln!("{}: worker {} outlived the daemon: SIGKILL", self.tag, w.pid);
            w.signal(Signal::KILL);
        }
    }
}

/// Writes the JSON-RPC line `request` on `conn` and reads the next line: its `result`.
/// (Notifications in between, on a subscribed connection, are not expected here.)
fn call(conn: &mut BufReader<UnixStream>, request: &[u8]) -> Result<Json> {
    conn.get_mut().write_all(request)?;
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        bail!("closed without an answer to {}", String::from_utf8_lossy(request).trim());
    }
    let mut answer: Json = serde_json::from_str(&line).with_context(|| format!("answer {line:?}"))?;
    match answer.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => bail!("{} answered {}", String::from_utf8_lossy(request).trim(), line.trim()),
    }
}

/// The instances of `worker.list`'s answer (a pool's and the plain workers), as (name, state).
fn instances(list: &Json) -> Vec<(String, String)> {
    let field = |w: &Json, k: &str| w.get(k).and_then(Json::as_str).unwrap_or_default().to_owned();
    let mut out = Vec::new();
    for w in list.as_array().into_iter().flatten() {
        match w.get("instances").and_then(Json::as_array) {
            Some(members) => out.extend(members.iter().map(|m| (field(m, "name"), field(m, "state")))),
            None => out.push((field(w, "name"), field(w, "state"))),
        }
    }
    out
}

/// `conns` connections to `sock`, one call of `request` in flight on each, for `time`: calls
/// per second. Every answer must be a result.
fn concurrent(sock: &Path, request: &[u8], conns: usize, time: Duration) -> Result<f64> {
    let mut poll = Poll::new()?;
    let mut streams = Vec::with_capacity(conns);
    for i in 0..conns {
        let s = UnixStream::connect(sock)?;
        s.set_nonblocking(true)?;
        let mut s = mio::net::UnixStream::from_std(s);
        poll.registry().register(&mut s, Token(i), Interest::READABLE)?;
        streams.push((s, Vec::<u8>::with_capacity(4096)));
    }
    let send = |s: &mut mio::net::UnixStream| -> io::Result<()> {
        // One short line on a connection with nothing else unread: it fits the socket buffer.
        match s.write(request)? {
            n if n == request.len() => Ok(()),
            n => Err(io::Error::other(format!("short write: {n} of {} bytes", request.len()))),
        }
    };
    let start = Instant::now();
    for (s, _) in &mut streams {
        send(s)?;
    }
    let mut events = Events::with_capacity(conns);
    let mut tmp = vec![0u8; 64 << 10];
    let (mut done, mut in_flight) = (0u64, conns);
    while in_flight > 0 {
        poll.poll(&mut events, Some(PATIENCE))?;
        if events.is_empty() {
            bail!("no answer for {PATIENCE:?} with {in_flight} calls in flight");
        }
        let more = start.elapsed() < time;
        for ev in events.iter() {
            let (s, buf) = &mut streams[ev.token().0];
            loop {
                match s.read(&mut tmp) {
                    Ok(0) => bail!("the daemon closed a connection"),
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            while let Some(end) = memchr::memchr(b'\n', buf) {
                if memchr::memmem::find(&buf[..end], b"\"result\"").is_none() {
                    bail!("not a result: {}", String::from_utf8_lossy(&buf[..end]));
                }
                buf.drain(..=end);
                done += 1;
                in_flight -= 1;
                if more {
                    send(s)?;
                    in_flight += 1;
                }
            }
        }
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// Mean time of one call of `request`, one at a time on one connection, over `calls` calls.
fn mean_call(sock: &Path, request: &[u8], calls: u32) -> Result<Duration> {
    let mut conn = BufReader::new(UnixStream::connect(sock)?);
    conn.get_mut().set_read_timeout(Some(PATIENCE))?;
    let mut line = Vec::new();
    let start = Instant::now();
    for _ in 0..calls {
        conn.get_mut().write_all(request)?;
        line.clear();
        conn.read_until(b'\n', &mut line)?;
        if memchr::memmem::find(&line, b"\"result\"").is_none() {
            bail!("not a result: {}", String::from_utf8_lossy(&line).trim());
        }
    }
    Ok(start.elapsed() / calls)
}

/// `hash.sha256` of 32 bytes, `rounds` times over, as an NDJSON line.
fn hash_request(rounds: u64) -> Vec<u8> {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"hash.sha256\",\"params\":{{\"data\":\"{}\",\"rounds\":{rounds}}},\"id\":1}}\n",
        "tomte pool benchmark 32 bytes..."
    )
    .into_bytes()
}

fn crew_request(method: &str, ms: u64) -> Vec<u8> {
    format!("{{\"jsonrpc\":\"2.0\",\"method\":\"{method}\",\"params\":{{\"ms\":{ms}}},\"id\":1}}\n").into_bytes()
}

/// The `rounds` for which one ask hashes for about [`ASK_CPU`], measured on the pool of one:
/// the time of a call of many rounds less that of one round, per round.
fn calibrate(sock: &Path) -> Result<u64> {
    const PROBE: u64 = 20_000;
    let (one, many) = (hash_request(1), hash_request(PROBE));
    mean_call(sock, &one, 200)?; // warm up
    let mut per_round = Vec::new();
    for _ in 0..3 {
        let base = mean_call(sock, &one, 500)?;
        let long = mean_call(sock, &many, 50)?;
        per_round.push(long.saturating_sub(base).as_secs_f64() / (PROBE - 1) as f64);
    }
    let per_round = median(per_round);
    if per_round <= 0.0 {
        bail!("hash.sha256: {PROBE} rounds took no longer than one");
    }
    let rounds = (ASK_CPU.as_secs_f64() / per_round).round().max(1.0) as u64;
    println!(
        "  calibration: one SHA-256 round {:.2} us, so rounds = {rounds} for {ASK_CPU:?} of hashing per ask",
        per_round * 1e6
    );
    Ok(rounds)
}

/// Measurement 1: calls/s of CPU-bound asks through a pool of 2 against a pool of 1.
fn cpu_bound(bins: &Bins, dir: &Path, round: Duration, lines: &mut Vec<Line>) -> Result<()> {
    let (one, two, request, what) = match &bins.hash {
        Some(hash) => {
            let env = |n: usize| [("HASH_WORKERS", n.to_string())];
            let one = Daemon::run(hash, dir, "hash1", &env(1))?;
            let two = Daemon::run(hash, dir, "hash2", &env(2))?;
            let rounds = calibrate(&one.sock)?;
            (one, two, hash_request(rounds), "hash.sha256 (~1 ms of hashing)")
        }
        None => {
            println!("  no hash example built: the crew example stands in (its asks sleep 1 ms: not CPU-bound)");
            let env = |n: usize| [("CREW_INSTANCES", n.to_string())];
            let one = Daemon::run(&bins.crew, dir, "crew1", &env(1))?;
            let two = Daemon::run(&bins.crew, dir, "crew2", &env(2))?;
            (one, two, crew_request("crew.work", 1), "crew.work {ms:1} (stand-in)")
        }
    };
    let cpu = bins.hash.is_some();
    for d in [&one, &two] {
        d.wait_workers(|list| list.iter().all(|(_, s)| s == "looping"))?;
        concurrent(&d.sock, &request, CLIENTS, Duration::from_millis(300))?;
    }
    let pairs = Pairs::run(ROUNDS, true, |second| {
        concurrent(if second { &two.sock } else { &one.sock }, &request, CLIENTS, round)
    })?;
    let (a, b) = pairs.medians();
    let (lo, hi) = spread(&pairs.ratios());
    println!(
        "  {what}, {CLIENTS} connections x 1 in flight ({ROUNDS} alternating rounds of {round:?}): pool of 1 \
         {a:.0}/s, pool of 2 {b:.0}/s, ratio {:.2} (per round {lo:.2}..{hi:.2})",
        b / a
    );
    lines.push(Line {
        what: if cpu { "CPU asks: pool 2 / pool 1" } else { "sleep asks: pool 2 / pool 1" },
        measured: format!("{:.2}x", b / a),
        target: if cpu { ">= 1.80x" } else { "(info)" },
        met: !cpu || b / a >= 1.8,
    });
    Ok(())
}

/// Measurement 2: an ask through a pool of one against a direct ask of a plain worker.
fn dispatch(bins: &Bins, dir: &Path, round: Duration, lines: &mut Vec<Line>) -> Result<()> {
    let d = Daemon::run(&bins.crew, dir, "crew-dispatch", &[("CREW_INSTANCES", "1".to_owned())])?;
    d.wait_workers(|list| list.len() == 2 && list.iter().all(|(_, s)| s == "looping"))?;
    let (pool_req, solo_req) = (crew_request("crew.work", 0), crew_request("crew.solo", 0));
    let (mut pool_conn, mut solo_conn) = (d.connect()?, d.connect()?);
    calls_per_sec(&mut pool_conn, &pool_req, Duration::from_millis(300))?;
    calls_per_sec(&mut solo_conn, &solo_req, Duration::from_millis(300))?;
    let pairs = Pairs::run(ROUNDS, true, |pool| {
        if pool {
            calls_per_sec(&mut pool_conn, &pool_req, round)
        } else {
            calls_per_sec(&mut solo_conn, &solo_req, round)
        }
    })?;
    let (solo, pool) = pairs.medians();
    let (lo, hi) = spread(&pairs.ratios());
    println!(
        "  one call in flight, one connection ({ROUNDS} alternating rounds of {round:?}): crew.solo (plain worker) \
         {solo:.0}/s, crew.work (pool of 1) {pool:.0}/s, ratio {:.3} (per round {lo:.3}..{hi:.3})",
        pool / solo
    );
    lines.push(Line {
        what: "pool dispatch / direct ask",
        measured: format!("{:.3}", pool / solo),
        target: ">= 0.90",
        met: pool / solo >= 0.9,
    });
    Ok(())
}

/// The subscribed connection's next `daemon.worker.state` event of pool `crew`: (instance, state, has a pid).
fn next_state(sub: &mut BufReader<UnixStream>, line: &mut String) -> Result<(String, String, bool)> {
    loop {
        line.clear();
        if sub.read_line(line)? == 0 {
            bail!("the subscribed connection closed");
        }
        let msg: Json = serde_json::from_str(line).with_context(|| format!("event {line:?}"))?;
        if msg.get("method").and_then(Json::as_str) != Some("daemon.event") {
            continue;
        }
        let Some(data) = msg.pointer("/params/data") else { continue };
        if msg.pointer("/params/name").and_then(Json::as_str) != Some("daemon.worker.state")
            || data.get("pool").and_then(Json::as_str) != Some("crew")
        {
            continue;
        }
        let text = |k: &str| data.get(k).and_then(Json::as_str).unwrap_or_default().to_owned();
        return Ok((text("worker"), text("state"), data.get("pid").is_some_and(|p| !p.is_null())));
    }
}

/// Scales pool `crew` to `n` on `ctl`; answers after the answer came.
fn scale(ctl: &mut BufReader<UnixStream>, n: usize) -> Result<()> {
    let req = format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"worker.scale\",\"params\":{{\"name\":\"crew\",\"instances\":{n}}},\"id\":1}}\n"
    );
    let answer = call(ctl, req.as_bytes())?;
    if answer.get("to").and_then(Json::as_u64) != Some(n as u64) {
        bail!("worker.scale to {n} answered {answer}");
    }
    Ok(())
}

/// Measurement 3: `worker.scale` 0 → 20, timed until every instance is looping, by events.
fn scaling(bins: &Bins, dir: &Path, lines: &mut Vec<Line>) -> Result<()> {
    let d = Daemon::run(&bins.crew, dir, "crew-scale", &[("CREW_INSTANCES", "0".to_owned())])?;
    let mut sub = d.connect()?;
    let subscribed = call(
        &mut sub,
        b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.subscribe\",\"params\":[[\"daemon.worker.state\"]],\"id\":1}\n",
    )?;
    if subscribed.get("subscribed").is_none() {
        bail!("daemon.subscribe answered {subscribed}");
    }
    let mut ctl = d.connect()?;
    let mut line = String::new();
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for k in 0..SCALES {
        // Up: from the send of worker.scale to the event telling the 20th instance looping.
        let mut looping: HashMap<String, bool> = HashMap::new();
        let sent = Instant::now();
        scale(&mut ctl, SCALE_TO)?;
        while looping.values().filter(|&&l| l).count() < SCALE_TO {
            let (name, state, _) = next_state(&mut sub, &mut line)?;
            looping.insert(name, state == "looping");
            if sent.elapsed() > PATIENCE {
                bail!("scale {k}: not {SCALE_TO} instances looping {PATIENCE:?} later: {looping:?}{}", d.log_tail());
            }
        }
        up.push(sent.elapsed().as_secs_f64() * 1e3);
        let list = instances(&call(&mut ctl, LIST)?);
        let crew: Vec<_> = list.iter().filter(|(n, _)| n.starts_with("crew.")).collect();
        if crew.len() != SCALE_TO || crew.iter().any(|(_, s)| s != "looping") {
            bail!("scale {k}: events told {SCALE_TO} instances looping, but worker.list shows {crew:?}");
        }
        // Down: until every instance was told without a process, and worker.list lists none.
        let sent = Instant::now();
        scale(&mut ctl, 0)?;
        let mut running: HashMap<String, bool> = looping.keys().map(|n| (n.clone(), true)).collect();
        while running.values().any(|&r| r) {
            let (name, _, pid) = next_state(&mut sub, &mut line)?;
            running.insert(name, pid);
            if sent.elapsed() > PATIENCE {
                bail!("scale {k}: instances still running {PATIENCE:?} after scaling to 0: {running:?}");
            }
        }
        d.wait_workers(|list| !list.iter().any(|(n, _)| n.starts_with("crew.")))?;
        down.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    let (lo, hi) = spread(&up);
    let mid = median(up);
    let (dlo, dhi) = spread(&down);
    println!(
        "  worker.scale crew 0 -> {SCALE_TO}, until events told all {SCALE_TO} looping (x{SCALES}): median {mid:.2} ms \
         [{lo:.2}..{hi:.2}]; back to 0 until all gone from worker.list: median {:.2} ms [{dlo:.2}..{dhi:.2}]",
        median(down)
    );
    println!("  (supervisord, its own figures: 113 ms for 20 programs when polled, about 1.1 s when not)");
    lines.push(Line {
        what: "scale 0->20, median",
        measured: format!("{mid:.2} ms"),
        target: "<= 30 ms",
        met: mid <= 30.0,
    });
    lines.push(Line { what: "scale 0->20, max", measured: format!("{hi:.2} ms"), target: "(info)", met: true });
    Ok(())
}
