//! The fault scenarios of `tests/faults.rs`, for long runs by hand against release builds: each
//! attack runs for a chosen time (or count) while a victim client makes one call at a time on
//! its own connection, and prints the victim's latency during the attack against the same
//! client unloaded just before, the daemon's RSS and fd count before and after, and for the
//! worker attacks the restarts, zombies and orphans.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::procfs::status_kb;
use anyhow::{bail, ensure, Context, Result};
use rustix::process::{kill_process, Pid, Signal};

/// What to run, and for how long.
pub struct Plan {
    /// Directory holding the `echo` and `pool` daemons.
    pub bins: PathBuf,
    /// Length of each timed attack (and of the unloaded measurement before it).
    pub time: Duration,
    /// Worker kills in a row.
    pub kills: usize,
    /// `kill -9` of the daemon in a row.
    pub daemon_kills: usize,
}

const ECHO: &str = r#"{"jsonrpc":"2.0","method":"my.echo","params":["victim"],"id":1}"#;
const STATUS: &str = r#"{"jsonrpc":"2.0","method":"daemon.status","id":1}"#;

/// Runs every scenario; prints one block per attack.
pub fn run(plan: &Plan) -> Result<()> {
    println!("tomte stress ({:?} per attack; load average before: {})", plan.time, loadavg());
    thousand(plan)?;
    slow(plan)?;
    storm(plan)?;
    worker_kills(plan)?;
    daemon_kills(plan)?;
    memory(plan)?;
    println!("(load average after: {})", loadavg());
    Ok(())
}

fn loadavg() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// A detached example daemon in its own temp dir, killed by pid on drop (its workers too).
struct Daemon {
    bin: PathBuf,
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    pids: Vec<i32>,
}

impl Daemon {
    fn new(plan: &Plan, name: &str, extra: &[&str], env: &[(&'static str, &str)]) -> Result<Daemon> {
        let examples = plan.bins.join("examples").join(name);
        let bin = if examples.exists() { examples } else { plan.bins.join(name) };
        ensure!(bin.exists(), "no {name} daemon in {}: cargo build --release -p tomte --examples", plan.bins.display());
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir =
            PathBuf::from(format!("/tmp/tomte-stress-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir)?;
        let mut args: Vec<String> = ["--socket", &format!("unix://{}", dir.join("d.sock").display())]
            .into_iter()
            .chain(["--pidfile", &dir.join("d.pid").display().to_string()])
            .chain(["--log", &dir.join("d.log").display().to_string()])
            .map(str::to_owned)
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let env = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        Ok(Daemon { bin, dir, args, env, pids: Vec::new() })
    }

    fn start(&mut self) -> Result<i32> {
        let out = Command::new(&self.bin)
            .arg("start")
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()?;
        ensure!(out.status.success(), "start failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        let pid = self.pid()?;
        self.pids.push(pid);
        Ok(pid)
    }

    fn pid(&self) -> Result<i32> {
        Ok(std::fs::read_to_string(self.dir.join("d.pid"))?.trim().parse()?)
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("d.sock")
    }

    fn connect(&self) -> Result<BufReader<UnixStream>> {
        let s = UnixStream::connect(self.sock())?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        Ok(BufReader::new(s))
    }

    fn call(&self, line: &str) -> Result<serde_json::Value> {
        call(&mut self.connect()?, line)
    }

    /// Its fd count and VmRSS (kB) once it has been quiet a moment (its heap trimmed).
    fn footprint(&self) -> Result<(usize, u64)> {
        std::thread::sleep(Duration::from_millis(1500));
        let pid = self.pid()?;
        Ok((fd_count(pid), status_kb(pid, "VmRSS")?))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Only the last one can still run (the others were killed and waited for).
        if let Some(&pid) = self.pids.last() {
            signal(pid, Signal::KILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signal(pid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, sig);
    }
}

fn call<S: Read + Write>(conn: &mut BufReader<S>, line: &str) -> Result<serde_json::Value> {
    conn.get_mut().write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    ensure!(conn.read_line(&mut answer)? > 0, "the daemon closed the connection");
    Ok(serde_json::from_str(&answer)?)
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0)
}

/// (pid, name, state, parent) of every process.
fn processes() -> Vec<(i32, String, char, i32)> {
    let stat = |pid: i32| -> Option<(i32, String, char, i32)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (head, rest) = stat.rsplit_once(')')?;
        let mut rest = rest.split_whitespace();
        let state = rest.next()?.chars().next()?;
        Some((pid, head.split_once('(')?.1.to_owned(), state, rest.next()?.parse().ok()?))
    };
    let pids = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    pids.filter_map(|e| e.file_name().to_str()?.parse().ok()).filter_map(stat).collect()
}

/// Zombie children of `daemon`, and workers (alpha, beta) whose parent is no pool daemon.
fn zombies_and_orphans(daemon: i32) -> (usize, usize) {
    let all = processes();
    let pool = |pid: i32| all.iter().any(|p| p.0 == pid && p.1 == "pool");
    let zombies = all.iter().filter(|p| p.3 == daemon && p.2 == 'Z').count();
    let orphans = all.iter().filter(|p| (p.1 == "alpha" || p.1 == "beta") && p.2 != 'Z' && !pool(p.3)).count();
    (zombies, orphans)
}

/// Latencies of one client making one call at a time, median and p99.
struct Latency(Vec<Duration>);

impl Latency {
    fn at(&self, q: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or_default()
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        write!(f, "median {:.0} us, p99 {:.0} us ({} calls)", us(self.at(0.5)), us(self.at(0.99)), self.0.len())
    }
}

/// Runs `attack` while a victim calls `request` on its own connection (reconnecting when the
/// daemon goes away); returns the attack's result and the victim's latencies.
fn beside<T>(sock: &Path, request: &'static str, attack: impl FnOnce() -> Result<T>) -> Result<(T, Latency)> {
    let stop = Arc::new(AtomicBool::new(false));
    let victim = {
        let (sock, stop) = (sock.to_owned(), stop.clone());
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(s) = UnixStream::connect(&sock) else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut conn = BufReader::new(s);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match call(&mut conn, request) {
                        Ok(v) if v.get("result").is_some() => lat.push(t.elapsed()),
                        _ => break,
                    }
                }
            }
            Latency(lat)
        })
    };
    let result = attack();
    stop.store(true, Ordering::Relaxed);
    let lat = victim.join().map_err(|_| anyhow::anyhow!("the victim client panicked"))?;
    Ok((result?, lat))
}

/// The victim unloaded for `time`, then beside `attack`; prints both.
fn attacked<T>(name: &str, d: &Daemon, time: Duration, attack: impl FnOnce() -> Result<T>) -> Result<T> {
    attacked_with(name, d, ECHO, time, attack)
}

/// [`attacked`] with the victim calling `request`.
fn attacked_with<T>(
    name: &str,
    d: &Daemon,
    request: &'static str,
    time: Duration,
    attack: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let ((), calm) = beside(&d.sock(), request, || {
        std::thread::sleep(time);
        Ok(())
    })?;
    println!("\n== {name}\n  victim unloaded: {calm}");
    let (result, during) = beside(&d.sock(), request, attack)?;
    println!("  victim during:   {during}");
    Ok(result)
}

fn footprint_line(before: (usize, u64), after: (usize, u64)) {
    println!("  fds {} -> {}, VmRSS {} -> {} kB", before.0, after.0, before.1, after.1);
}

/// 1000 connections (half unix, half TCP), every one calling with its own token, round after
/// round, in 8 threads of 125 in lockstep.
fn thousand(plan: &Plan) -> Result<()> {
    let port = free_port()?;
    let tcp = format!("tcp://127.0.0.1:{port}");
    let mut d =
        Daemon::new(plan, "echo", &["--socket", &tcp, "--max-per-peer", "2000", "--max-connections", "2048"], &[])?;
    d.start()?;
    let before = d.footprint()?;
    let sock = d.sock();
    let rounds = attacked("1000 clients at once, each checking its own token", &d, plan.time, || {
        let time = plan.time;
        let ready = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (sock, ready) = (sock.clone(), ready.clone());
                std::thread::spawn(move || -> Result<u64> {
                    let conns: Result<Vec<(usize, Box<dyn ReadWrite>)>> = (0..125)
                        .map(|i| {
                            let n = t * 125 + i;
                            let s: Box<dyn ReadWrite> = if n % 2 == 0 {
                                Box::new(UnixStream::connect(&sock)?)
                            } else {
                                Box::new(TcpStream::connect(("127.0.0.1", port))?)
                            };
                            Ok((n, s))
                        })
                        .collect();
                    ready.wait();
                    let mut conns: Vec<(usize, BufReader<Box<dyn ReadWrite>>)> =
                        conns?.into_iter().map(|(n, s)| (n, BufReader::new(s))).collect();
                    let (start, mut round) = (Instant::now(), 0u64);
                    let mut line = String::new();
                    while start.elapsed() < time {
                        for (n, c) in &mut conns {
                            let req =
                                format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":["c{n}-{round}"],"id":{n}}}"#);
                            c.get_mut().write_all(format!("{req}\n").as_bytes())?;
                        }
                        for (n, c) in &mut conns {
                            line.clear();
                            c.read_line(&mut line)?;
                            let want = format!(r#"{{"jsonrpc":"2.0","result":"c{n}-{round}","id":{n}}}"#);
                            ensure!(line.trim_end() == want, "client {n} got {line:?}, wanted {want}");
                        }
                        round += 1;
                    }
                    Ok(round)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().map_err(|_| anyhow::anyhow!("client thread panicked"))?)
            .sum::<Result<u64>>()
    })?;
    println!("  {} calls answered, every one with its own token", rounds * 125);
    footprint_line(before, d.footprint()?);
    Ok(())
}

/// Read + Write for boxed unix and TCP streams.
trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// 100 slow clients: 50 dripping a request one byte every 100 ms, 50 idle.
fn slow(plan: &Plan) -> Result<()> {
    let mut d = Daemon::new(plan, "echo", &["--request-timeout", "3600"], &[])?;
    d.start()?;
    let before = d.footprint()?;
    attacked("100 slow clients (50 dripping a byte every 100 ms, 50 idle)", &d, plan.time, || {
        let idle: Vec<UnixStream> = (0..50).map(|_| UnixStream::connect(d.sock())).collect::<Result<_, _>>()?;
        let mut drip: Vec<UnixStream> = (0..50).map(|_| UnixStream::connect(d.sock())).collect::<Result<_, _>>()?;
        let start = Instant::now();
        while start.elapsed() < plan.time {
            for s in &mut drip {
                s.write_all(b" ")?;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(idle);
        Ok(())
    })?;
    footprint_line(before, d.footprint()?);
    Ok(())
}

/// Storms of 500 TCP connections past `--max-connections 64`, one after the other.
fn storm(plan: &Plan) -> Result<()> {
    let port = free_port()?;
    let tcp = format!("tcp://127.0.0.1:{port}");
    let mut d =
        Daemon::new(plan, "echo", &["--socket", &tcp, "--max-connections", "64", "--max-per-peer", "1000"], &[])?;
    d.start()?;
    let before = d.footprint()?;
    let (storms, busy, other) = attacked("storms of 500 connections past --max-connections 64", &d, plan.time, || {
        let (start, mut storms, mut busy, mut other) = (Instant::now(), 0, 0, 0);
        while start.elapsed() < plan.time {
            let mut conns: Vec<(TcpStream, Vec<u8>, bool)> = (0..500)
                .map(|_| {
                    let s = TcpStream::connect(("127.0.0.1", port))?;
                    s.set_nonblocking(true)?;
                    Ok((s, Vec::new(), false))
                })
                .collect::<Result<_>>()?;
            // Each refused one is told so and closed; the rest are held (at most the limit).
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut buf = [0u8; 1024];
            loop {
                for (s, got, closed) in conns.iter_mut().filter(|c| !c.2) {
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) => break *closed = true,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => bail!("a storm connection failed: {e}"),
                        }
                    }
                }
                let held = conns.iter().filter(|c| !c.2).count();
                if held <= 64 {
                    break;
                }
                ensure!(Instant::now() < deadline, "{held} connections past the limit neither refused nor closed");
                std::thread::sleep(Duration::from_millis(1));
            }
            for (_, got, _) in conns.iter().filter(|c| c.2) {
                if String::from_utf8_lossy(got).contains("Server busy") {
                    busy += 1;
                } else {
                    other += 1;
                }
            }
            storms += 1;
        }
        Ok((storms, busy, other))
    })?;
    println!("  {storms} storms: {busy} refused \"Server busy\", {other} closed to make room or plainly");
    let after = d.footprint()?;
    let open = d.call(STATUS)?["result"]["connections"].clone();
    footprint_line(before, after);
    println!("  connections open afterwards: {open} (the status call itself)");
    Ok(())
}

/// `worker.list`'s alpha: pid and restarts.
fn alpha(conn: &mut BufReader<UnixStream>) -> Result<(Option<i32>, i64)> {
    let list = call(conn, r#"{"jsonrpc":"2.0","method":"worker.list","id":1}"#)?;
    let w = list["result"].as_array().and_then(|ws| ws.iter().find(|w| w["name"] == "alpha")).context("no alpha")?;
    Ok((w["pid"].as_i64().map(|p| p as i32), w["restarts"].as_i64().unwrap_or(-1)))
}

/// Kills alpha `plan.kills` times in a row (back-off zero), each once its replacement is listed.
fn worker_kills(plan: &Plan) -> Result<()> {
    let mut d = Daemon::new(plan, "pool", &[], &[("POOL_BACKOFF_MS", "0"), ("POOL_CRASH_LIMIT", "100000000")])?;
    let pid = d.start()?;
    let mut conn = d.connect()?;
    let kill_one = |conn: &mut BufReader<UnixStream>| -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let old = loop {
            match alpha(conn)?.0 {
                Some(p) => break p,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
                None => bail!("alpha never came back"),
            }
        };
        signal(old, Signal::KILL);
        while alpha(conn)?.0.is_none_or(|p| p == old) {
            ensure!(Instant::now() < deadline, "alpha (pid {old}) not replaced within 10 s");
        }
        Ok(())
    };
    for _ in 0..10 {
        kill_one(&mut conn)?;
    }
    let before = d.footprint()?;
    let name = format!("{} kills of worker alpha, back-off zero (victim: daemon.status)", plan.kills);
    let took = attacked_with(&name, &d, STATUS, plan.time, || {
        let t = Instant::now();
        for _ in 10..plan.kills {
            kill_one(&mut conn)?;
        }
        Ok(t.elapsed())
    })?;
    let after = d.footprint()?;
    let restarts = alpha(&mut conn)?.1;
    let (zombies, orphans) = zombies_and_orphans(pid);
    println!(
        "  {} kills in {took:?} ({:.2} ms each): restarts counted {restarts}, zombies {zombies}, orphans {orphans}",
        plan.kills - 10,
        took.as_secs_f64() * 1e3 / (plan.kills - 10).max(1) as f64
    );
    footprint_line(before, after);
    Ok(())
}

/// `kill -9` of the pool daemon under load, `plan.daemon_kills` times; each time `start` again.
fn daemon_kills(plan: &Plan) -> Result<()> {
    let mut d = Daemon::new(plan, "pool", &[], &[])?;
    let kill_9 = |pid: i32| -> Result<()> {
        signal(pid, Signal::KILL);
        let dead = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z")) {
            ensure!(Instant::now() < dead, "the daemon survived SIGKILL");
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    };
    // The victim unloaded, on a first start that is not counted.
    let pid = d.start()?;
    let ((), calm) = beside(&d.sock(), STATUS, || {
        std::thread::sleep(plan.time);
        Ok(())
    })?;
    kill_9(pid)?;
    let mut first_answer = Vec::new();
    let mut pids = Vec::new();
    let ((), lat) = beside(&d.sock(), STATUS, || {
        for _ in 0..plan.daemon_kills {
            let t = Instant::now();
            let pid = d.start()?;
            first_answer.push(t.elapsed());
            let list = d.call(r#"{"jsonrpc":"2.0","method":"worker.list","id":1}"#)?;
            pids.extend(list["result"].as_array().into_iter().flatten().filter_map(|w| w["pid"].as_i64()));
            std::thread::sleep(Duration::from_millis(200));
            kill_9(pid)?;
        }
        Ok(())
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let left = pids.iter().filter(|&&p| processes().iter().any(|q| i64::from(q.0) == p && q.2 != 'Z')).count();
    let (_, orphans) = zombies_and_orphans(0);
    let first = Latency(first_answer);
    println!(
        "\n== {} kill -9 of the pool daemon under load, each followed by start\n  victim (daemon.status) unloaded: \
         {calm}\n  victim during (reconnecting): {lat}\n  start -> ready (stale pid file and socket recovered): {first}\n  workers \
         left alive: {left} of {}, orphans {orphans}",
        plan.daemon_kills,
        pids.len()
    );
    Ok(())
}

/// 64 clients echoing 1-4 KiB strings for `plan.time`, one 8 MiB echo, one 200 000-member
/// XML-RPC struct; RssAnon fresh, loaded and after.
fn memory(plan: &Plan) -> Result<()> {
    let mut d = Daemon::new(plan, "echo", &[], &[])?;
    let pid = d.start()?;
    let before = d.footprint()?;
    let fresh = status_kb(pid, "RssAnon")?;
    let loaded = attacked(
        "load: 64 clients x 1-4 KiB echoes, an 8 MiB echo, a 200 000-member struct",
        &d,
        plan.time,
        || {
            let threads: Vec<_> = (0..8)
                .map(|k| {
                    let (sock, time) = (d.sock(), plan.time);
                    std::thread::spawn(move || -> Result<u64> {
                        let mut conns: Vec<BufReader<UnixStream>> =
                            (0..8).map(|_| Ok(BufReader::new(UnixStream::connect(&sock)?))).collect::<Result<_>>()?;
                        let (start, mut calls, mut line) = (Instant::now(), 0u64, String::new());
                        while start.elapsed() < time {
                            let size = 1024 + (calls as usize * 397 + k * 131) % 3072;
                            let req = format!(
                                "{{\"jsonrpc\":\"2.0\",\"method\":\"my.echo\",\"params\":[\"{}\"],\"id\":1}}\n",
                                "m".repeat(size)
                            );
                            for c in &mut conns {
                                c.get_mut().write_all(req.as_bytes())?;
                            }
                            for c in &mut conns {
                                line.clear();
                                c.read_line(&mut line)?;
                                ensure!(line.len() == size + 37, "a short answer");
                            }
                            calls += 8;
                        }
                        Ok(calls)
                    })
                })
                .collect();
            let big = d.call(&format!(
                r#"{{"jsonrpc":"2.0","method":"my.echo","params":["{}"],"id":1}}"#,
                "b".repeat(8 << 20)
            ))?;
            ensure!(big["result"].as_str().map(str::len) == Some(8 << 20), "the 8 MiB echo failed");
            let members: String = (0..200_000)
                .map(|i| format!("<member><name>k{i}</name><value><i4>{i}</i4></value></member>"))
                .collect();
            let xml = format!("<?xml version=\"1.0\"?><methodCall><methodName>my.echo</methodName><params><param><value><struct>{members}</struct></value></param></params></methodCall>");
            let mut s = UnixStream::connect(d.sock())?;
            s.write_all(
                format!(
                    "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                    xml.len()
                )
                .as_bytes(),
            )?;
            let mut head = [0u8; 12];
            s.read_exact(&mut head)?;
            ensure!(&head == b"HTTP/1.1 200", "the struct call got {}", String::from_utf8_lossy(&head));
            let calls = threads
                .into_iter()
                .map(|t| t.join().map_err(|_| anyhow::anyhow!("client thread panicked"))?)
                .sum::<Result<u64>>()?;
            let loaded = status_kb(pid, "RssAnon")?;
            println!("  {calls} echoes of 1-4 KiB");
            Ok(loaded)
        },
    )?;
    let t = Instant::now();
    while status_kb(pid, "RssAnon")? > 2 * fresh + 200 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let back = t.elapsed();
    let after = status_kb(pid, "RssAnon")?;
    println!("  RssAnon fresh {fresh} kB, loaded {loaded} kB, {after} kB {back:?} after the clients left");
    footprint_line(before, d.footprint()?);
    Ok(())
}
