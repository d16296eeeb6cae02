//! The side-by-side run: tomte's echo daemon and the floors, driven by the same load generator
//! in alternating rounds, in one run, so the ratios hold on a machine whose speed drifts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::load;

/// Where the binaries are.
pub struct Bins {
    pub bench: PathBuf,
    pub echo: PathBuf,
}

/// A child process killed by pid when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command) -> Result<Proc> {
    Ok(Proc(cmd.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().with_context(|| format!("spawn {cmd:?}"))?))
}

fn wait_unix(path: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        if Instant::now() > deadline {
            bail!("{} never answered", path.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn wait_tcp(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("port {port} never answered");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The smallest and largest of `v`.
pub(crate) fn spread(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// The figures of `rounds` rounds of a pair of runs, `f(false)` and `f(true)`.
pub(crate) struct Pairs {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

impl Pairs {
    /// Runs `rounds` rounds of `f(false)` then `f(true)`; with `alternate`, every other round
    /// runs `f(true)` first, so that neither side always follows the other.
    pub(crate) fn run(rounds: usize, alternate: bool, mut f: impl FnMut(bool) -> Result<f64>) -> Result<Pairs> {
        let mut pairs = Pairs { a: Vec::with_capacity(rounds), b: Vec::with_capacity(rounds) };
        for round in 0..rounds {
            if alternate && round % 2 == 1 {
                pairs.b.push(f(true)?);
                pairs.a.push(f(false)?);
            } else {
                pairs.a.push(f(false)?);
                pairs.b.push(f(true)?);
            }
        }
        Ok(pairs)
    }

    /// The medians of the `a` and the `b` runs.
    pub(crate) fn medians(&self) -> (f64, f64) {
        (median(self.a.clone()), median(self.b.clone()))
    }

    /// `b / a` of every round.
    pub(crate) fn ratios(&self) -> Vec<f64> {
        self.a.iter().zip(&self.b).map(|(a, b)| b / a).collect()
    }
}

/// One comparison: `rounds` alternating runs of `f` against the floor and tomte.
fn duel(name: &str, rounds: usize, f: impl FnMut(bool) -> Result<f64>) -> Result<(f64, f64)> {
    let (fl, to) = Pairs::run(rounds, false, f)?.medians();
    println!("  {name:<44} floor {:>10.0}/s   tomte {:>10.0}/s   ratio {:.2}", fl, to, to / fl);
    Ok((fl, to))
}

/// Where a server answers: a unix socket (NDJSON) and a TCP port (HTTP).
pub(crate) struct Target {
    pub sock: PathBuf,
    pub port: u16,
}

impl Target {
    /// Waits for both to accept connections.
    fn wait(&self) -> Result<()> {
        wait_unix(&self.sock)?;
        wait_tcp(self.port)
    }
}

/// An echo daemon run in the foreground (`run`) in `dir`, on a unix socket and a TCP port;
/// killed by its pid when dropped.
pub(crate) struct Echo {
    _proc: Proc,
    pub at: Target,
}

impl Echo {
    /// Starts `echo` and waits until both its listeners accept connections.
    pub(crate) fn run(echo: &Path, dir: &Path) -> Result<Echo> {
        let at = Target { sock: dir.join("echo.sock"), port: free_port()? };
        let proc = spawn(Command::new(echo).args([
            "run",
            "--socket",
            &format!("unix://{}", at.sock.display()),
            "--socket",
            &format!("tcp://127.0.0.1:{}", at.port),
            "--pidfile",
            &dir.join("echo.pid").display().to_string(),
            "--log",
            &dir.join("daemon.log").display().to_string(),
        ]))?;
        let echo = Echo { _proc: proc, at };
        echo.at.wait()?;
        Ok(echo)
    }
}

/// The loads of the floor comparisons, the same for the floors and for tomte.
#[derive(Clone, Copy)]
pub(crate) enum EchoLoad {
    Sequential,
    InFlight64,
    Http64,
}

impl EchoLoad {
    pub(crate) const ALL: [EchoLoad; 3] = [EchoLoad::Sequential, EchoLoad::InFlight64, EchoLoad::Http64];

    /// What it is, in full.
    fn title(self) -> &'static str {
        match self {
            EchoLoad::Sequential => "sequential my.echo, unix socket, NDJSON",
            EchoLoad::InFlight64 => "64 in flight, one connection, unix, NDJSON",
            EchoLoad::Http64 => "HTTP, 64 keep-alive connections, TCP",
        }
    }

    /// What it is, in short.
    pub(crate) fn name(self) -> &'static str {
        match self {
            EchoLoad::Sequential => "echo sequential",
            EchoLoad::InFlight64 => "echo 64 in flight",
            EchoLoad::Http64 => "echo HTTP 64 connections",
        }
    }

    /// Drives `at` for `time`: calls per second.
    pub(crate) fn drive(self, at: &Target, time: Duration) -> Result<f64> {
        Ok(match self {
            EchoLoad::Sequential => load::sequential(&at.sock, time)?,
            EchoLoad::InFlight64 => load::pipelined(&at.sock, 64, time)?,
            EchoLoad::Http64 => load::http(std::net::SocketAddr::from(([127, 0, 0, 1], at.port)), 64, time)?,
        })
    }
}

/// One figure of a report, against its target.
pub(crate) struct Line {
    pub what: &'static str,
    pub measured: String,
    pub target: &'static str,
    pub met: bool,
}

/// Prints the figures as a table of targets; whether every one was met.
pub(crate) fn report(lines: &[Line]) -> bool {
    println!("\n  {:<26} {:>12}  {:<12} result", "target", "measured", "wanted");
    for l in lines {
        println!("  {:<26} {:>12}  {:<12} {}", l.what, l.measured, l.target, if l.met { "met" } else { "NOT MET" });
    }
    lines.iter().all(|l| l.met)
}

/// Runs everything and prints a report; returns whether every target was met.
pub fn run(bins: &Bins, seconds: f64, rounds: usize) -> Result<bool> {
    let dir = PathBuf::from(format!("/tmp/tomte-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(bins, &dir, Duration::from_secs_f64(seconds), rounds);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(bins: &Bins, dir: &Path, time: Duration, rounds: usize) -> Result<bool> {
    let floor = Target { sock: dir.join("floor.sock"), port: free_port()? };
    let _floor = spawn(Command::new(&bins.bench).arg("floor-ndjson").arg(&floor.sock))?;
    let _floor_http = spawn(Command::new(&bins.bench).arg("floor-http").arg(format!("127.0.0.1:{}", floor.port)))?;
    let echo = Echo::run(&bins.echo, dir)?;
    floor.wait()?;
    let echo_sock = &echo.at.sock;

    println!("tomte side-by-side benchmark ({rounds} alternating rounds of {time:?}, medians)");
    let mut medians = Vec::new();
    for load in EchoLoad::ALL {
        medians.push(duel(load.title(), rounds, |t| load.drive(if t { &echo.at } else { &floor }, time))?);
    }
    let [(sf, st), (pf, pt), (hf, ht)] = medians[..] else { unreachable!("three loads") };

    // Two protocols on the same daemon: XML-RPC over HTTP against NDJSON JSON-RPC.
    let (mut nd, mut xml) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        nd.push(load::sequential(echo_sock, time)?);
        xml.push(load::xml_http_sequential(echo_sock, time)?);
    }
    let (nd, xml) = (median(nd), median(xml));
    println!(
        "  {:<44} ndjson {:>9.0}/s   xml-rpc {:>9.0}/s   ratio {:.2}",
        "XML-RPC/HTTP vs NDJSON, same daemon, unix",
        nd,
        xml,
        xml / nd
    );

    let (rss, anon) = idle_memory(bins, dir)?;
    let ready = start_to_ready(bins, dir, 15)?;

    let lines = [
        Line {
            what: "sequential / floor",
            measured: format!("{:.2}", st / sf),
            target: ">= 0.85",
            met: st / sf >= 0.85,
        },
        Line {
            what: "64 in flight / floor",
            measured: format!("{:.2}", pt / pf),
            target: ">= 0.70",
            met: pt / pf >= 0.7,
        },
        Line {
            what: "HTTP 64 conns / floor",
            measured: format!("{:.2}", ht / hf),
            target: ">= 0.85",
            met: ht / hf >= 0.85,
        },
        Line {
            what: "XML-RPC HTTP / NDJSON",
            measured: format!("{:.2}", xml / nd),
            target: ">= 0.50",
            met: xml / nd >= 0.5,
        },
        Line { what: "idle RSS", measured: format!("{rss} kB"), target: "<= 2500 kB", met: rss <= 2500 },
        Line { what: "idle RssAnon", measured: format!("{anon} kB"), target: "<= 400 kB", met: anon <= 400 },
        Line {
            what: "start to ready (median)",
            measured: format!("{:.1} ms", ready.as_secs_f64() * 1e3),
            target: "<= 10 ms",
            met: ready <= Duration::from_millis(10),
        },
    ];
    Ok(report(&lines))
}

/// VmRSS and RssAnon of a detached, idle echo daemon, in kB.
fn idle_memory(bins: &Bins, dir: &Path) -> Result<(u64, u64)> {
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
    std::thread::sleep(Duration::from_millis(500));
    let figures = (crate::procfs::status_kb(&pid, "VmRSS")?, crate::procfs::status_kb(&pid, "RssAnon")?);
    Command::new(&bins.echo).arg("stop").args(&args).output()?;
    Ok(figures)
}

/// Median wall time of `echo start` (fork, detach, lock, bind, readiness) over `runs` runs.
fn start_to_ready(bins: &Bins, dir: &Path, runs: usize) -> Result<Duration> {
    let sock = dir.join("start.sock");
    let pidfile = dir.join("start.pid");
    let args = [
        "--socket".to_owned(),
        format!("unix://{}", sock.display()),
        "--pidfile".to_owned(),
        pidfile.display().to_string(),
    ];
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new(&bins.echo).arg("start").args(&args).output()?;
        times.push(t.elapsed().as_secs_f64());
        if !out.status.success() {
            bail!("echo start failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        // Ready means answering: check it before stopping.
        std::os::unix::net::UnixStream::connect(&sock).context("not answering after start")?;
        Command::new(&bins.echo).arg("stop").args(&args).output()?;
    }
    Ok(Duration::from_secs_f64(median(times)))
}
