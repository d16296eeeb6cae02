//! `tomte-bench upgrade [SECONDS]`: what a zero-downtime binary upgrade costs, side by side with
//! a plain `restart` (stop + start), in one run.
//!
//! * **upgrade → new process serving**: `daemon.upgrade` sent over the unix socket, then fresh
//!   connections call `daemon.status` every 0.2 ms until one is answered by another pid: the
//!   time from the send to that answer, for the echo daemon (target ≤ 50 ms) and for the pool
//!   example (≤ 100 ms; its two workers are checked to run under the new pid), `UPGRADES`
//!   upgrades of each, interleaved: median and max. Each waits for the old process (and its
//!   workers) to be gone.
//! * **under load**: 64 clients, each calling `my.echo` in a closed loop on its own connection
//!   (48 NDJSON over the unix socket, 16 HTTP/1.1 keep-alive over TCP), every answer checked
//!   against its own request; after a warm-up and SECONDS of steady load, the echo daemon is
//!   upgraded (`daemon.upgrade`) or restarted (`echo restart`, which stops it — draining — and
//!   starts a new one), in alternating rounds. Per round: calls/s over the second centred on the
//!   event against the steady rate before it (target ≥ 0.8 for the upgrade), the highest latency
//!   of the calls in flight during the event (≤ 20 ms), the longest time no answer came,
//!   and the counts of failed calls and refused connections (0 for the upgrade) and of resent
//!   requests. A client whose connection is closed with its request unanswered (a drained
//!   daemon closes idle NDJSON connections; the request was never read) resends it on a new
//!   connection: "resent", not a failure; its latency runs from the first send. An HTTP answer
//!   with `Connection: close` makes the client connect anew for its next call. A refused
//!   connection is retried every millisecond, each refusal counted.
//!
//! The daemons are started detached (`start`) in a temporary directory, on unix sockets and
//! loopback TCP; every pid they ever had (the pid file's, each upgrade's old and new ones, and
//! their workers) is remembered and killed at the end, on errors too.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mio::{Events, Interest, Poll, Token};
use rustix::process::Signal;
use serde_json::Value as Json;

use crate::compare::{free_port, median, report, spread, Line};
use crate::procfs::{children, Known};
use crate::workers::{loadavg, TempDir};

/// Where the binaries are: `echo` and `pool` beside the benchmark.
pub struct Bins {
    pub echo: PathBuf,
    pub pool: PathBuf,
}

/// Upgrades timed per daemon (interleaved echo, pool).
const UPGRADES: usize = 10;
/// Load rounds per side (upgrade, restart), alternating.
const ROUNDS: usize = 5;
/// The clients of the load: NDJSON over the unix socket, HTTP keep-alive over TCP.
const NDJSON_CLIENTS: usize = 48;
const HTTP_CLIENTS: usize = 16;
/// Load before the steady part of a round, and after the event.
const WARM_UP: Duration = Duration::from_millis(500);
const AFTER: Duration = Duration::from_millis(1500);
/// A refused connection is tried again after this.
const RETRY: Duration = Duration::from_millis(1);
/// How long an upgrade, a restart or an old process's exit may take before the run gives up.
const PATIENCE: Duration = Duration::from_secs(15);
/// How often the upgrade probe asks `daemon.status`.
const PROBE_EVERY: Duration = Duration::from_micros(200);
/// The workers of the pool example.
const POOL_WORKERS: [&str; 2] = ["alpha", "beta"];

const STATUS: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.status\",\"id\":1}\n";
const UPGRADE: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.upgrade\",\"id\":1}\n";
const WORKERS: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"worker.list\",\"id\":1}\n";

/// A daemon started detached by this benchmark, with every process it has been.
struct Daemon {
    bin: PathBuf,
    tag: &'static str,
    sock: PathBuf,
    port: Option<u16>,
    pidfile: PathBuf,
    log: PathBuf,
    /// Every pid the daemon had (old and new), and every worker seen, to kill at the end.
    seen: Vec<Known>,
}

impl Daemon {
    /// `bin start` in `dir`, on a unix socket and, with `tcp`, a loopback port; once it is ready.
    fn start(bin: &Path, dir: &Path, tag: &'static str, tcp: bool) -> Result<Daemon> {
        let mut d = Daemon {
            bin: bin.to_owned(),
            tag,
            sock: dir.join(format!("{tag}.sock")),
            port: tcp.then(free_port).transpose()?,
            pidfile: dir.join(format!("{tag}.pid")),
            log: dir.join(format!("{tag}.log")),
            seen: Vec::new(),
        };
        d.command("start")?;
        d.pid()?;
        Ok(d)
    }

    /// Runs `bin COMMAND ARGS…` (start, restart), which must succeed.
    fn command(&mut self, command: &str) -> Result<()> {
        let mut args = vec!["--socket".to_owned(), format!("unix://{}", self.sock.display())];
        if let Some(port) = self.port {
            args.extend(["--socket".to_owned(), format!("tcp://127.0.0.1:{port}")]);
        }
        args.extend([
            "--pidfile".to_owned(),
            self.pidfile.display().to_string(),
            "--log".to_owned(),
            self.log.display().to_string(),
        ]);
        let out = Command::new(&self.bin).arg(command).args(&args).stdin(Stdio::null()).output()?;
        // Whatever happened, the pid file may name a process to kill at the end.
        let _ = self.pid();
        if !out.status.success() {
            bail!("{} {command} failed: {}{}", self.tag, String::from_utf8_lossy(&out.stderr), self.log_tail());
        }
        Ok(())
    }

    /// The pid its pid file names now, remembered.
    fn pid(&mut self) -> Result<i32> {
        let text = std::fs::read_to_string(&self.pidfile).with_context(|| format!("{}'s pid file", self.tag))?;
        let pid = text.trim().parse().with_context(|| format!("{}'s pid file says {text:?}", self.tag))?;
        self.remember(pid);
        Ok(pid)
    }

    /// Remembers `pid` (and its children) to be killed at the end.
    fn remember(&mut self, pid: i32) {
        for k in Known::of(pid).into_iter().chain(children(pid)) {
            if !self.seen.contains(&k) {
                self.seen.push(k);
            }
        }
    }

    /// The last lines of its log, for an error message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if text.trim().is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n    ");
        format!("\n  {} ({}) ends with:\n    {tail}", self.log.display(), self.tag)
    }

    /// Waits until `old` and the workers it had are gone.
    fn wait_gone(&self, old: &[Known]) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        while old.iter().any(Known::alive) {
            if Instant::now() > deadline {
                bail!("{}: the old process or its workers still run {PATIENCE:?} later{}", self.tag, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.pid();
        let pids: Vec<i32> = self.seen.iter().map(|k| k.pid).collect();
        for pid in pids {
            self.remember(pid);
        }
        for k in self.seen.iter().filter(|k| k.alive()) {
            k.signal(Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(8);
        while self.seen.iter().any(Known::alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for k in self.seen.iter().filter(|k| k.alive()) {
            eprintln!("{}: pid {} outlived SIGTERM: SIGKILL", self.tag, k.pid);
            k.signal(Signal::KILL);
        }
    }
}

/// One JSON-RPC line `request` on a new connection to `sock`: the answer's `result`.
fn ask(sock: &Path, request: &[u8]) -> Result<Json> {
    let mut r = BufReader::new(UnixStream::connect(sock).context("connect")?);
    r.get_mut().set_read_timeout(Some(PATIENCE))?;
    r.get_mut().write_all(request)?;
    result(&mut r)
}

/// The `result` of the next answer on `r`.
fn result(r: &mut impl BufRead) -> Result<Json> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        bail!("closed without an answer");
    }
    let mut answer: Json = serde_json::from_str(&line).with_context(|| format!("answer {line:?}"))?;
    match answer.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => bail!("answered {}", line.trim()),
    }
}

fn pid_of(status: &Json) -> Result<i32> {
    status.get("pid").and_then(Json::as_i64).and_then(|p| i32::try_from(p).ok()).context("daemon.status without pid")
}

/// The figures of one timed upgrade.
struct Timed {
    /// Send → first `daemon.status` answered by the new pid.
    served: f64,
    /// Send → `daemon.upgrade`'s answer.
    answered: f64,
    /// The `ms` the daemon reports.
    reported: f64,
    /// Probes that could not connect or got no answer (must be 0).
    probe_errors: usize,
}

/// Upgrades `d` by `daemon.upgrade` and times it; checks the new process (and, for the pool, its
/// workers) and waits for the old one to be gone.
fn timed_upgrade(d: &mut Daemon, workers: &[&str]) -> Result<Timed> {
    let old = pid_of(&ask(&d.sock, STATUS)?)?;
    d.remember(old);
    let old_procs: Vec<Known> = Known::of(old).into_iter().chain(children(old)).collect();
    if old_procs.len() != 1 + workers.len() {
        bail!("{}: pid {old} has {} workers, not {}", d.tag, old_procs.len() - 1, workers.len());
    }
    let mut ctl = BufReader::new(UnixStream::connect(&d.sock)?);
    ctl.get_mut().set_read_timeout(Some(PATIENCE))?;
    let sent = Instant::now();
    ctl.get_mut().write_all(UPGRADE)?;
    let answer = std::thread::spawn(move || result(&mut ctl).map(|r| (r, sent.elapsed())));
    let mut probe_errors = 0;
    let (new, served) = loop {
        match ask(&d.sock, STATUS).and_then(|s| pid_of(&s)) {
            Ok(pid) if pid != old => break (pid, sent.elapsed()),
            Ok(_) => {}
            Err(_) => probe_errors += 1,
        }
        if sent.elapsed() > PATIENCE {
            bail!("{}: no answer from a new pid {PATIENCE:?} after daemon.upgrade{}", d.tag, d.log_tail());
        }
        std::thread::sleep(PROBE_EVERY);
    };
    d.remember(new);
    let (report, answered) = answer.join().map_err(|_| anyhow::anyhow!("the upgrade caller panicked"))??;
    if report.get("new_pid").and_then(Json::as_i64) != Some(i64::from(new)) {
        bail!("{}: daemon.upgrade answered {report}, but pid {new} serves", d.tag);
    }
    let reported = report.get("ms").and_then(Json::as_f64).unwrap_or(f64::NAN);
    if !workers.is_empty() {
        check_workers(d, new, workers)?;
    }
    d.wait_gone(&old_procs)?;
    Ok(Timed { served: served.as_secs_f64() * 1e3, answered: answered.as_secs_f64() * 1e3, reported, probe_errors })
}

/// Every one of `workers` runs, as a child of `pid`, as `worker.list` says.
fn check_workers(d: &mut Daemon, pid: i32, workers: &[&str]) -> Result<()> {
    let list = ask(&d.sock, WORKERS)?;
    d.remember(pid);
    let kids: Vec<i32> = children(pid).iter().map(|k| k.pid).collect();
    for name in workers {
        let w = list
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w.get("name").and_then(Json::as_str) == Some(name)))
            .with_context(|| format!("worker.list has no {name}: {list}"))?;
        let wpid = w.get("pid").and_then(Json::as_i64).unwrap_or(0);
        let state = w.get("state").and_then(Json::as_str).unwrap_or("?");
        if !kids.iter().any(|&k| i64::from(k) == wpid) || !matches!(state, "spinup" | "looping") {
            bail!("{}: worker {name} is {state}, pid {wpid}, not a running child of {pid}: {w}", d.tag);
        }
    }
    Ok(())
}

/// Either end of a client's connection.
enum Stream {
    Unix(mio::net::UnixStream),
    Tcp(mio::net::TcpStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = match self {
                Stream::Unix(s) => s.write(bytes),
                Stream::Tcp(s) => s.write(bytes),
            };
            match n {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// One client of the load: one connection, one call at a time.
struct Client {
    http: bool,
    stream: Option<Stream>,
    buf: Vec<u8>,
    seq: u64,
    request: Vec<u8>,
    expect: Vec<u8>,
    /// When the call in flight was first sent.
    started: Option<Instant>,
    /// When to try connecting again, after a refusal.
    retry_at: Option<Instant>,
    /// Sends of the call in flight, to give up on a daemon that closes every connection.
    sends: u32,
    /// Whether a connection was refused to the call in flight.
    refused: bool,
}

/// What the load counted.
#[derive(Default, Clone, Copy)]
struct Counts {
    failed: u64,
    refused: u64,
    /// Calls that met at least one refused connection.
    refused_calls: u64,
    resent: u64,
    /// New connections after an HTTP answer said `Connection: close`.
    reconnects: u64,
}

/// The load generator: [`NDJSON_CLIENTS`] + [`HTTP_CLIENTS`] clients on one thread.
struct Load {
    poll: Poll,
    sock: PathBuf,
    addr: SocketAddr,
    t0: Instant,
    end: Instant,
    clients: Vec<Client>,
    /// Each answered call: its first send and its answer, in µs since `t0`.
    calls: Vec<(u32, u32)>,
    counts: Counts,
    first_failure: Option<String>,
}

impl Load {
    fn new(sock: &Path, port: u16, time: Duration) -> Result<Load> {
        let clients = (0..NDJSON_CLIENTS + HTTP_CLIENTS)
            .map(|i| Client {
                http: i >= NDJSON_CLIENTS,
                stream: None,
                buf: Vec::with_capacity(4096),
                seq: 0,
                request: Vec::new(),
                expect: Vec::new(),
                started: None,
                retry_at: None,
                sends: 0,
                refused: false,
            })
            .collect();
        let now = Instant::now();
        Ok(Load {
            poll: Poll::new()?,
            sock: sock.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            t0: now,
            end: now + time,
            clients,
            calls: Vec::with_capacity(1 << 20),
            counts: Counts::default(),
            first_failure: None,
        })
    }

    fn us(&self, t: Instant) -> u32 {
        u32::try_from(t.saturating_duration_since(self.t0).as_micros()).unwrap_or(u32::MAX)
    }

    fn connect(&self, http: bool) -> io::Result<Stream> {
        if http {
            let s = std::net::TcpStream::connect(self.addr)?;
            s.set_nodelay(true)?;
            s.set_nonblocking(true)?;
            Ok(Stream::Tcp(mio::net::TcpStream::from_std(s)))
        } else {
            let s = UnixStream::connect(&self.sock)?;
            s.set_nonblocking(true)?;
            Ok(Stream::Unix(mio::net::UnixStream::from_std(s)))
        }
    }

    fn drop_stream(&mut self, i: usize) {
        if let Some(mut s) = self.clients[i].stream.take() {
            let _ = self.poll.registry().deregister(s.source());
        }
    }

    /// Client `i`'s next call, unless the load is over.
    fn begin(&mut self, i: usize, now: Instant) {
        let c = &mut self.clients[i];
        c.started = None;
        if now >= self.end {
            return;
        }
        c.seq += 1;
        let tag = format!("c{i}-{}", c.seq);
        let body = format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":["{tag}"],"id":{}}}"#, c.seq);
        c.expect = format!(r#"{{"jsonrpc":"2.0","result":"{tag}","id":{}}}"#, c.seq).into_bytes();
        c.request = if c.http {
            format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            body + "\n"
        }
        .into_bytes();
        c.started = Some(now);
        c.sends = 0;
        c.refused = false;
        self.send(i, now);
    }

    /// Sends client `i`'s call, on a new connection if it has none.
    fn send(&mut self, i: usize, now: Instant) {
        loop {
            if self.clients[i].sends >= 100 {
                return self.fail(i, now, "100 connections closed before the request was read".to_owned());
            }
            if self.clients[i].stream.is_none() {
                match self.connect(self.clients[i].http) {
                    Ok(mut s) => {
                        if let Err(e) = self.poll.registry().register(s.source(), Token(i), Interest::READABLE) {
                            return self.fail(i, now, format!("register: {e}"));
                        }
                        self.clients[i].stream = Some(s);
                    }
                    Err(_) => {
                        self.counts.refused += 1;
                        self.clients[i].refused = true;
                        self.clients[i].retry_at = Some(now + RETRY);
                        return;
                    }
                }
            }
            let c = &mut self.clients[i];
            c.buf.clear();
            c.sends += 1;
            let sent = c.stream.as_mut().map(|s| s.write_all(&c.request));
            match sent {
                Some(Ok(())) => return,
                // Closed by the daemon: the request was never read.
                _ => {
                    self.drop_stream(i);
                    self.counts.resent += 1;
                }
            }
        }
    }

    /// Client `i`'s call failed: counted, and the next one begins on a new connection.
    fn fail(&mut self, i: usize, now: Instant, why: String) {
        self.counts.failed += 1;
        self.first_failure.get_or_insert_with(|| format!("client {i}, call {}: {why}", self.clients[i].seq));
        self.drop_stream(i);
        self.clients[i].buf.clear();
        self.begin(i, now);
    }

    /// What came on client `i`'s connection.
    fn readable(&mut self, i: usize, tmp: &mut [u8]) {
        let mut ended = None;
        while let Some(s) = self.clients[i].stream.as_mut() {
            match s.read(tmp) {
                Ok(0) => {
                    ended = Some("closed".to_owned());
                    break;
                }
                Ok(n) => self.clients[i].buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    ended = Some(e.to_string());
                    break;
                }
            }
        }
        let now = Instant::now();
        if ended.is_some() {
            self.drop_stream(i);
        }
        let seq = self.clients[i].seq;
        if !self.clients[i].buf.is_empty() {
            self.answer(i, now);
        }
        let c = &self.clients[i];
        if let (Some(why), true, true) = (ended, c.seq == seq, c.started.is_some()) {
            if c.buf.is_empty() {
                // Closed before the daemon read the request: sent again on a new connection.
                self.counts.resent += 1;
                self.send(i, now);
            } else {
                self.fail(i, now, format!("{why} in the middle of an answer"));
            }
        }
    }

    /// Checks the answer in client `i`'s buffer, if it is whole; then the next call.
    fn answer(&mut self, i: usize, now: Instant) {
        let c = &mut self.clients[i];
        let Some(started) = c.started else {
            let text = String::from_utf8_lossy(&c.buf).into_owned();
            return self.fail(i, now, format!("an answer to nothing: {text}"));
        };
        let close = if c.http {
            match http_answer(&c.buf) {
                Ok(None) => return,
                Ok(Some((len, close, body))) if len == c.buf.len() && c.buf[body..len] == c.expect[..] => close,
                Ok(Some(_)) => {
                    let text = String::from_utf8_lossy(&c.buf).into_owned();
                    return self.fail(i, now, format!("wrong answer: {text}"));
                }
                Err(e) => return self.fail(i, now, e),
            }
        } else {
            let Some(nl) = memchr::memchr(b'\n', &c.buf) else { return };
            if nl + 1 != c.buf.len() || c.buf[..nl] != c.expect[..] {
                let text = String::from_utf8_lossy(&c.buf).into_owned();
                return self.fail(i, now, format!("wrong answer: {text}"));
            }
            false
        };
        c.buf.clear();
        self.counts.refused_calls += u64::from(c.refused);
        let call = (self.us(started), self.us(now));
        self.calls.push(call);
        if close {
            self.counts.reconnects += 1;
            self.drop_stream(i);
        }
        self.begin(i, now);
    }

    /// Runs until the end, then until every call in flight is answered.
    fn run(&mut self) -> Result<()> {
        for i in 0..self.clients.len() {
            self.begin(i, self.t0);
        }
        let mut events = Events::with_capacity(self.clients.len());
        let mut tmp = vec![0u8; 64 << 10];
        loop {
            let now = Instant::now();
            for i in 0..self.clients.len() {
                if self.clients[i].retry_at.is_some_and(|t| t <= now) {
                    self.clients[i].retry_at = None;
                    self.send(i, now);
                }
            }
            let busy = self.clients.iter().filter(|c| c.started.is_some()).count();
            if busy == 0 && now >= self.end {
                return Ok(());
            }
            if now >= self.end + PATIENCE {
                self.counts.failed += busy as u64;
                self.first_failure.get_or_insert_with(|| format!("{busy} calls unanswered {PATIENCE:?} after the end"));
                return Ok(());
            }
            let next_retry = self.clients.iter().filter_map(|c| c.retry_at).min();
            let timeout = next_retry.map_or(Duration::from_millis(10), |t| t.saturating_duration_since(now));
            self.poll.poll(&mut events, Some(timeout.min(Duration::from_millis(10))))?;
            for ev in events.iter() {
                self.readable(ev.token().0, &mut tmp);
            }
        }
    }
}

/// The first HTTP response in `buf`, if whole: its length, whether it says `Connection:
/// close`, and where its body starts.
fn http_answer(buf: &[u8]) -> Result<Option<(usize, bool, usize)>, String> {
    let Some(head) = memchr::memmem::find(buf, b"\r\n\r\n") else { return Ok(None) };
    let text = std::str::from_utf8(&buf[..head]).map_err(|e| e.to_string())?;
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!("answered {text:?}"));
    }
    let (mut len, mut close) = (None, false);
    for line in text.lines().skip(1) {
        let Some((k, v)) = line.split_once(':') else { continue };
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse::<usize>().ok();
        } else if k.eq_ignore_ascii_case("connection") {
            close = v.trim().eq_ignore_ascii_case("close");
        }
    }
    let len = len.ok_or_else(|| format!("no Content-Length: {text:?}"))?;
    Ok((buf.len() >= head + 4 + len).then_some((head + 4 + len, close, head + 4)))
}

/// Upgrade or restart.
#[derive(Clone, Copy, PartialEq)]
enum Event {
    Upgrade,
    Restart,
}

/// When the event began and ended (the new process serving), and when the old one was gone,
/// since the load's start.
struct Span {
    sent: Duration,
    ready: Duration,
    gone: Duration,
}

/// The figures of one load round.
struct Round {
    steady: f64,
    window: f64,
    max_latency: f64,
    steady_max_latency: f64,
    gap: f64,
    steady_gap: f64,
    span: f64,
    counts: Counts,
}

/// One round: the load against the echo daemon, with `event` after `WARM_UP` + `steady`.
fn load_round(d: &mut Daemon, event: Event, steady: Duration) -> Result<Round> {
    let old = pid_of(&ask(&d.sock, STATUS)?)?;
    d.remember(old);
    let old_proc = Known::of(old).context("the old daemon is gone")?;
    let port = d.port.context("the echo daemon has no TCP port")?;
    let at = WARM_UP + steady;
    let mut load = Load::new(&d.sock, port, at + AFTER)?;
    let t0 = load.t0;
    // The upgrade's caller connects now, to the old process.
    let ctl = match event {
        Event::Upgrade => Some(BufReader::new(UnixStream::connect(&d.sock)?)),
        Event::Restart => None,
    };
    let mut restart = Command::new(&d.bin);
    restart.arg("restart").args(["--socket", &format!("unix://{}", d.sock.display())]).args([
        "--socket",
        &format!("tcp://127.0.0.1:{port}"),
        "--pidfile",
        &d.pidfile.display().to_string(),
        "--log",
        &d.log.display().to_string(),
    ]);
    restart.stdin(Stdio::null()).stdout(Stdio::null());
    let what = if event == Event::Upgrade { "upgrade" } else { "restart" };
    let trigger = std::thread::spawn(move || -> Result<Span> {
        std::thread::sleep((t0 + at).saturating_duration_since(Instant::now()));
        let sent = t0.elapsed();
        let ready = match ctl {
            Some(mut ctl) => {
                ctl.get_mut().set_read_timeout(Some(PATIENCE))?;
                ctl.get_mut().write_all(UPGRADE)?;
                result(&mut ctl)?;
                t0.elapsed()
            }
            None => {
                let out = restart.output()?;
                if !out.status.success() {
                    bail!("restart failed: {}", String::from_utf8_lossy(&out.stderr));
                }
                t0.elapsed()
            }
        };
        let deadline = Instant::now() + PATIENCE;
        while old_proc.alive() {
            if Instant::now() > deadline {
                bail!("the old daemon still runs {PATIENCE:?} after the {what}");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(Span { sent, ready, gone: t0.elapsed() })
    });
    let ran = load.run();
    let span = trigger.join().map_err(|_| anyhow::anyhow!("the trigger panicked"))?;
    let new = d.pid()?;
    let span = span.map_err(|e| anyhow::anyhow!("{e}{}", d.log_tail()))?;
    ran?;
    if new == old {
        bail!("{}: still pid {old} after the event", d.tag);
    }
    if let Some(why) = &load.first_failure {
        println!("    first failure: {why}");
    }
    Ok(figures(&load, &span, WARM_UP))
}

/// The figures of a round from its calls.
fn figures(load: &Load, span: &Span, warm: Duration) -> Round {
    let us = |d: Duration| d.as_micros() as u32;
    let (warm, sent, ready) = (us(warm), us(span.sent), us(span.ready));
    // The event lasts until the new process serves and the old one is gone.
    let gone = ready.max(us(span.gone));
    let calls = &load.calls;
    let steady = calls.iter().filter(|c| c.1 >= warm && c.1 < sent).count() as f64 / ((sent - warm) as f64 / 1e6);
    let mid = sent / 2 + ready / 2;
    let (lo, hi) = (mid.saturating_sub(500_000), mid + 500_000);
    let window = calls.iter().filter(|c| c.1 >= lo && c.1 < hi).count() as f64;
    let latency = |c: &(u32, u32)| f64::from(c.1 - c.0) / 1e3;
    let max_latency = calls.iter().filter(|c| c.0 <= gone && c.1 >= sent).map(latency).fold(0.0, f64::max);
    let steady_max_latency = calls.iter().filter(|c| c.0 >= warm && c.1 < sent).map(latency).fold(0.0, f64::max);
    // The answers' times are in order: the longest time between two of them.
    let gap = |from: u32, to: u32| {
        calls
            .windows(2)
            .filter(|w| w[1].1 >= from && w[0].1 <= to)
            .map(|w| f64::from(w[1].1.saturating_sub(w[0].1)) / 1e3)
            .fold(0.0, f64::max)
    };
    Round {
        steady,
        window,
        max_latency,
        steady_max_latency,
        gap: gap(sent, gone),
        steady_gap: gap(warm, sent),
        span: f64::from(ready - sent) / 1e3,
        counts: load.counts,
    }
}

/// Runs everything and prints a report; returns whether every target was met.
pub fn run(bins: &Bins, seconds: f64) -> Result<bool> {
    let steady = Duration::from_secs_f64(seconds);
    let tmp = TempDir::new("tomte-upgrade")?;
    println!(
        "tomte upgrade benchmark (load average, running/total tasks before: {}); {} CPUs",
        loadavg(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let mut echo = Daemon::start(&bins.echo, &tmp.0, "echo", true)?;
    let mut pool = Daemon::start(&bins.pool, &tmp.0, "pool", false)?;
    std::thread::sleep(Duration::from_millis(200));

    // 1. Upgrade → new process serving.
    let (mut e, mut p) = (Vec::new(), Vec::new());
    for _ in 0..UPGRADES {
        e.push(timed_upgrade(&mut echo, &[])?);
        p.push(timed_upgrade(&mut pool, &POOL_WORKERS)?);
    }
    // The pool's old workers are gone; no need to keep it.
    drop(pool);
    println!("\n  upgrade → first call answered by the new pid ({UPGRADES} upgrades each, interleaved)");
    println!("  {:<34} {:>9} {:>9} {:>9}  {:>18}", "daemon", "median", "min", "max", "answer / its ms");
    let stats = |v: &[Timed], f: fn(&Timed) -> f64| {
        let xs: Vec<f64> = v.iter().map(f).collect();
        (median(xs.clone()), xs.iter().copied().fold(f64::INFINITY, f64::min), xs.iter().copied().fold(0.0, f64::max))
    };
    for (what, v) in [("echo", &e), ("pool (2 workers)", &p)] {
        let (med, lo, hi) = stats(v, |t| t.served);
        let (ans, _, _) = stats(v, |t| t.answered);
        let (rep, _, _) = stats(v, |t| t.reported);
        println!("  {what:<34} {med:>6.1} ms {lo:>6.1} ms {hi:>6.1} ms  {ans:>7.1} / {rep:>4.0} ms");
    }
    let probe_errors: usize = e.iter().chain(&p).map(|t| t.probe_errors).sum();

    // 2 and 3. Under load, upgrade and restart in alternating rounds.
    println!(
        "\n  under load: {NDJSON_CLIENTS} NDJSON clients (unix) + {HTTP_CLIENTS} HTTP keep-alive clients (TCP), one \
         call in flight each; {ROUNDS} alternating rounds per side of {WARM_UP:?} + {steady:?} steady + the event + \
         {AFTER:?}"
    );
    let mut rounds: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for r in 0..2 * ROUNDS {
        let event = if (r % 2 == 0) == (r / 2 % 2 == 0) { Event::Upgrade } else { Event::Restart };
        let round = load_round(&mut echo, event, steady)?;
        println!(
            "    {:<8} steady {:>6.0}/s  window {:>6.0}/s  max latency {:>6.1} ms (steady {:>5.1})  gap {:>6.1} ms  \
             event {:>6.1} ms  failed {} refused {} ({} calls) resent {} reconnects {}",
            if event == Event::Upgrade { "upgrade" } else { "restart" },
            round.steady,
            round.window,
            round.max_latency,
            round.steady_max_latency,
            round.gap,
            round.span,
            round.counts.failed,
            round.counts.refused,
            round.counts.refused_calls,
            round.counts.resent,
            round.counts.reconnects,
        );
        rounds[usize::from(event == Event::Restart)].push(round);
    }
    let [up, re] = &rounds;
    let med = |v: &[Round], f: fn(&Round) -> f64| median(v.iter().map(f).collect());
    let worst = |v: &[Round], f: fn(&Round) -> f64| v.iter().map(f).fold(0.0, f64::max);
    let total = |v: &[Round], f: fn(&Counts) -> u64| v.iter().map(|r| f(&r.counts)).sum::<u64>();
    println!("\n  {:<52} {:>12} {:>12}", "under load (medians of rounds; counts: all rounds)", "upgrade", "restart");
    let row = |what: &str, a: String, b: String| println!("  {what:<52} {a:>12} {b:>12}");
    let both = |f: fn(&Round) -> f64, unit: &str, digits: usize| {
        (format!("{:.digits$}{unit}", med(up, f)), format!("{:.digits$}{unit}", med(re, f)))
    };
    let (a, b) = both(|r| r.steady, "/s", 0);
    row("steady calls/s before the event", a, b);
    let (a, b) = both(|r| r.window / r.steady, "", 2);
    row("calls/s, the second around the event / steady", a, b);
    let (a, b) = both(|r| r.max_latency, " ms", 1);
    row("highest latency of a call in flight during it", a, b);
    row(
        "  the same, worst round",
        format!("{:.1} ms", worst(up, |r| r.max_latency)),
        format!("{:.1} ms", worst(re, |r| r.max_latency)),
    );
    let (a, b) = both(|r| r.steady_max_latency, " ms", 1);
    row("highest latency before it (steady)", a, b);
    let (a, b) = both(|r| r.gap, " ms", 1);
    row("longest time without an answer, during it", a, b);
    let (a, b) = both(|r| r.steady_gap, " ms", 1);
    row("longest time without an answer, before it", a, b);
    let (a, b) = both(|r| r.span, " ms", 1);
    row("event: sent → done (new process ready)", a, b);
    for (what, f) in [
        ("failed calls", (|c: &Counts| c.failed) as fn(&Counts) -> u64),
        ("refused connections (retried every 1 ms)", |c| c.refused),
        ("calls that met a refused connection", |c| c.refused_calls),
        ("resent requests (closed unread)", |c| c.resent),
        ("reconnects after Connection: close", |c| c.reconnects),
    ] {
        row(what, total(up, f).to_string(), total(re, f).to_string());
    }
    println!("  (load average, running/total tasks after: {})", loadavg());
    let rates: Vec<f64> = up.iter().chain(re).map(|r| r.steady).collect();
    let (lo, hi) = spread(&rates);
    if hi - lo > median(rates) / 2.0 {
        println!(
            "  NOISY: the rounds' steady rates range {lo:.0}..{hi:.0}/s (other processes on the cores): re-run on an \
             idle machine"
        );
    }

    let (e_med, _, e_max) = stats(&e, |t| t.served);
    let (p_med, _, p_max) = stats(&p, |t| t.served);
    let ratio = med(up, |r| r.window / r.steady);
    let latency = med(up, |r| r.max_latency);
    let (failed, refused) = (total(up, |c| c.failed), total(up, |c| c.refused) + probe_errors as u64);
    let ms = |x: f64| format!("{x:.1} ms");
    let lines = [
        Line { what: "echo upgrade, median", measured: ms(e_med), target: "<= 50 ms", met: e_med <= 50.0 },
        Line { what: "echo upgrade, max", measured: ms(e_max), target: "<= 50 ms", met: e_max <= 50.0 },
        Line { what: "pool upgrade, median", measured: ms(p_med), target: "<= 100 ms", met: p_med <= 100.0 },
        Line { what: "pool upgrade, max", measured: ms(p_max), target: "<= 100 ms", met: p_max <= 100.0 },
        Line { what: "max latency, median round", measured: ms(latency), target: "<= 20 ms", met: latency <= 20.0 },
        Line {
            what: "calls/s upgrade / steady",
            measured: format!("{ratio:.2}"),
            target: ">= 0.80",
            met: ratio >= 0.8,
        },
        Line { what: "failed calls (upgrade)", measured: failed.to_string(), target: "0", met: failed == 0 },
        Line { what: "refused conns (upgrade)", measured: refused.to_string(), target: "0", met: refused == 0 },
    ];
    Ok(report(&lines))
}
