//! `tomte-bench metrics`: what metrics cost.
//!
//! * calls/s at 64 in flight (one unix connection, NDJSON `my.echo`) of an echo daemon with
//!   metrics on against one started with `--no-metrics`, both running, in alternating rounds
//!   of one run: the ratio must be at least 0.97;
//! * the time of `GET /metrics` on a fleet daemon of 20 workers and 50 methods (each called
//!   once, so each has its series), 200 scrapes over one kept-alive connection, from the
//!   request's first byte to the answer's last: median and p99 at most 2 ms; and the renderer
//!   alone, in this process;
//! * the idle RssAnon of the detached echo daemon (at most 300 kB), and after 50 scrapes.
//!
//! Run it on a quiet machine, release build:
//!
//! ```text
//! cargo build --release -p tomte-bench --bins && target/release/tomte-bench metrics [SECONDS]
//! ```

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::compare::{median, report, Line, Pairs, Proc};
use crate::load;

/// Where the binaries are: `echo` and `fleet` beside the benchmark.
pub struct Bins {
    pub echo: PathBuf,
    pub fleet: PathBuf,
}

fn wait_unix(path: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(path).is_err() {
        if Instant::now() > deadline {
            bail!("{} never answered", path.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// `bin run --socket unix://DIR/TAG.sock --pidfile DIR/TAG.pid EXTRA…` in the foreground,
/// killed by pid when dropped, once its socket answers.
fn run_daemon(bin: &Path, dir: &Path, tag: &str, extra: &[&str]) -> Result<(Proc, PathBuf)> {
    let sock = dir.join(format!("{tag}.sock"));
    let child = Command::new(bin)
        .arg("run")
        .arg("--socket")
        .arg(format!("unix://{}", sock.display()))
        .arg("--pidfile")
        .arg(dir.join(format!("{tag}.pid")))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))?;
    let proc = Proc(child);
    wait_unix(&sock)?;
    Ok((proc, sock))
}

/// One HTTP response on `s`: its body's length; `buf` keeps what came after it.
fn read_response(s: &mut UnixStream, buf: &mut Vec<u8>) -> Result<usize> {
    let mut chunk = [0u8; 64 << 10];
    loop {
        if let Some(head) = memchr::memmem::find(buf, b"\r\n\r\n") {
            let text = std::str::from_utf8(&buf[..head]).context("response head")?;
            if !text.starts_with("HTTP/1.1 200") {
                bail!("not 200: {text}");
            }
            let len: usize = text
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
                })
                .context("no Content-Length")?;
            let total = head + 4 + len;
            while buf.len() < total {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    bail!("closed mid-answer");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Ok(len);
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("closed before an answer");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `n` scrapes over one kept-alive connection: each one's time, and the body's size.
fn scrapes(sock: &Path, n: usize) -> Result<(Vec<f64>, usize)> {
    let mut s = UnixStream::connect(sock)?;
    let mut buf = Vec::new();
    let mut times = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        size = read_response(&mut s, &mut buf)?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok((times, size))
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

/// Calls each of `methods` once on `sock` (NDJSON).
fn call_all(sock: &Path, methods: &[String]) -> Result<()> {
    let mut s = std::io::BufReader::new(UnixStream::connect(sock)?);
    for m in methods {
        s.get_mut().write_all(format!("{{\"jsonrpc\":\"2.0\",\"method\":\"{m}\",\"id\":1}}\n").as_bytes())?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut s, &mut line)?;
        if !line.contains("\"result\"") {
            bail!("{m}: {line}");
        }
    }
    Ok(())
}

/// Runs the three measures and prints them; returns whether every target was met.
pub fn run(bins: &Bins, seconds: f64, rounds: usize) -> Result<bool> {
    let dir = PathBuf::from(format!("/tmp/tomte-bench-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(bins, &dir, Duration::from_secs_f64(seconds), rounds);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(bins: &Bins, dir: &Path, time: Duration, rounds: usize) -> Result<bool> {
    let mut lines = Vec::new();

    // (a) Metrics on against off, both daemons up, alternating rounds.
    let (on_proc, on_sock) = run_daemon(&bins.echo, dir, "on", &[])?;
    let (off_proc, off_sock) = run_daemon(&bins.echo, dir, "off", &["--no-metrics"])?;
    let pids = [off_proc.0.id() as i32, on_proc.0.id() as i32];
    // The daemon's own CPU time per call too: on a machine others load, throughput swings
    // with the scheduler far more than the few nanoseconds measured here.
    let mut cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let pairs = Pairs::run(rounds, true, |on| {
        let pid = pids[usize::from(on)];
        let before = crate::procfs::cpu_ns(pid)?;
        let t = Instant::now();
        let rate = load::pipelined(if on { &on_sock } else { &off_sock }, 64, time)?;
        let calls = rate * t.elapsed().as_secs_f64();
        cpu[usize::from(on)].push((crate::procfs::cpu_ns(pid)? - before) as f64 / calls);
        Ok(rate)
    })?;
    let (off, on) = pairs.medians();
    let ratio = median(pairs.ratios());
    let (cpu_off, cpu_on) = (median(cpu[0].clone()), median(cpu[1].clone()));
    let cpu_ratio = median(cpu[0].iter().zip(&cpu[1]).map(|(off, on)| off / on).collect());
    println!("  echo 64 in flight, unix NDJSON       --no-metrics {off:>10.0}/s   metrics {on:>10.0}/s   ratio {ratio:.3} (median of {rounds} rounds)");
    println!("  daemon CPU per call                  --no-metrics {cpu_off:>8.0} ns   metrics {cpu_on:>8.0} ns   off/on {cpu_ratio:.3}");
    lines.push(Line {
        what: "calls/s metrics on / off",
        measured: format!("{ratio:.3}"),
        target: ">= 0.97",
        met: ratio >= 0.97,
    });
    lines.push(Line {
        what: "CPU per call off / on",
        measured: format!("{cpu_ratio:.3}"),
        target: ">= 0.97",
        met: cpu_ratio >= 0.97,
    });

    // (b) The scrape of 20 workers and 50 methods.
    let (_fleet, fleet_sock) = run_daemon(&bins.fleet, dir, "fleet", &["--workers", "20", "--methods", "50"])?;
    let methods: Vec<String> = (1..=50)
        .map(|i| format!("fleet.m{i:02}"))
        .chain(["daemon.status".to_owned(), "worker.list".to_owned()])
        .collect();
    call_all(&fleet_sock, &methods)?;
    // Until all 20 are up, the state families are still changing.
    std::thread::sleep(Duration::from_secs(1));
    scrapes(&fleet_sock, 20)?;
    let (times, size) = scrapes(&fleet_sock, 200)?;
    let (med, p99) = (median(times.clone()) * 1e3, percentile(times, 0.99) * 1e3);
    println!("  GET /metrics, 20 workers, 52 methods called: median {med:.3} ms, p99 {p99:.3} ms, {size} bytes (200 scrapes, one connection)");
    lines.push(Line { what: "scrape median", measured: format!("{med:.3} ms"), target: "<= 2 ms", met: med <= 2.0 });
    lines.push(Line { what: "scrape p99", measured: format!("{p99:.3} ms"), target: "<= 2 ms", met: p99 <= 2.0 });
    let t = Instant::now();
    let n = 200;
    let text = tomte::metrics::_bench::scrape_detached(50, n, tomte::metrics::Format::Prometheus);
    println!(
        "  the renderer alone (50 methods, no workers, /proc read included): {:.1} µs per scrape, {} bytes",
        t.elapsed().as_secs_f64() * 1e6 / n as f64,
        text.len()
    );

    // (c) Idle memory of the detached echo daemon.
    let sock = dir.join("idle.sock");
    let pidfile = dir.join("idle.pid");
    let args = [
        "--socket".to_owned(),
        format!("unix://{}", sock.display()),
        "--pidfile".to_owned(),
        pidfile.display().to_string(),
    ];
    let out = Command::new(&bins.echo).arg("start").args(&args).output()?;
    if !out.status.success() {
        bail!("echo start failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let pid = std::fs::read_to_string(&pidfile)?.trim().to_owned();
    // The daemon gives freed memory back once it has been quiet for a second: idle is after that.
    std::thread::sleep(Duration::from_millis(1500));
    let idle = crate::procfs::status_kb(&pid, "RssAnon");
    let scraped = scrapes(&sock, 50).and_then(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        crate::procfs::status_kb(&pid, "RssAnon")
    });
    Command::new(&bins.echo).arg("stop").args(&args).output()?;
    let (idle, scraped) = (idle?, scraped?);
    println!("  idle echo daemon: RssAnon {idle} kB; after 50 scrapes {scraped} kB");
    lines.push(Line { what: "idle RssAnon", measured: format!("{idle} kB"), target: "<= 300 kB", met: idle <= 300 });

    Ok(report(&lines))
}
