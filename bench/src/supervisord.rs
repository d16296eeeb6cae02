//! `tomte-bench supervisord`: supervisord and a tomte daemon side by side, each managing 20
//! idle children, in alternating rounds of one run.
//!
//! supervisord (from PyPI, installed into a throwaway virtualenv) runs 20 programs
//! `sleep infinity`; tomte runs the `fleet` example with 20 idle workers. Both are started in the
//! foreground by this process, both serve XML-RPC on a unix socket, and both are driven by the
//! same Python client (`supervisord/driver.py`: `xmlrpc.client` with one `http.client`
//! connection class for unix sockets), so that the client costs the same on both sides. Each
//! round, per side: launch → 20 children running (the driver polls `supervisor.getAllProcessInfo`
//! or `worker.list` every millisecond until 20 are `RUNNING` or `looping`), idle memory of the
//! manager and of each child from `/proc`, control calls/s (`supervisor.getState` or
//! `daemon.status`, one at a time; then `supervisor.getState` on both, which the fleet answers
//! with `--supervisor-api`: the same call and answer for the client to handle), calls/s of each side's own CLI (`supervisorctl status`,
//! `tomtectl workers`: both list the 20 children), `kill -9` of a child → a replacement running,
//! and SIGTERM to the manager → manager and children gone. A second kind of round launches with
//! a driver hammering the control call the whole time.
//!
//! ```text
//! cargo run --release -p tomte-bench -- supervisord [--out PATH] [--keep-venv DIR]
//!                                                    [--rounds N] [--seconds S]
//! ```
//!
//! Every process started here is stopped by its pid, on error too: the managers by SIGTERM and
//! then SIGKILL, their children (found by parent pid in `/proc`, known by start time) by SIGKILL
//! if they outlive them, the drivers by SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::process::Signal;

use crate::compare::{median, Proc};
use crate::load::xml_http_calls;
use crate::procfs::{children, cpu_ns, rollup_kb, status_kb, Known};
use crate::workers::{loadavg, TempDir};

/// Children per manager.
const CHILDREN: usize = 20;
/// How long the children idle before their memory is read.
const SETTLE: Duration = Duration::from_secs(1);
/// How long a stop may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// The client, the same for both sides.
const DRIVER: &str = include_str!("supervisord/driver.py");

/// The command line of `tomte-bench supervisord`.
struct Options {
    out: Option<PathBuf>,
    keep_venv: Option<PathBuf>,
    rounds: usize,
    seconds: f64,
    kills: usize,
}

const USAGE: &str = "usage: tomte-bench supervisord [--out PATH] [--keep-venv DIR] [--rounds N] [--seconds S]";

impl Options {
    fn parse(args: &[&str]) -> Result<Options> {
        let mut o = Options { out: None, keep_venv: None, rounds: 5, seconds: 2.0, kills: 5 };
        let mut args = args.iter();
        while let Some(&flag) = args.next() {
            let mut value = || args.next().copied().with_context(|| format!("{flag} needs a value; {USAGE}"));
            match flag {
                "--out" => o.out = Some(value()?.into()),
                "--keep-venv" => o.keep_venv = Some(value()?.into()),
                "--rounds" => o.rounds = value()?.parse().context("--rounds")?,
                "--seconds" => o.seconds = value()?.parse().context("--seconds")?,
                "--kills" => o.kills = value()?.parse().context("--kills")?,
                _ => bail!("unknown argument {flag:?}; {USAGE}"),
            }
        }
        if o.rounds == 0 || o.kills == 0 || o.seconds.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            bail!("--rounds, --kills and --seconds must be above zero");
        }
        Ok(o)
    }
}

/// `tomte-bench supervisord ARGS`: runs the comparison, prints the table, writes it to `--out`.
pub fn main(args: &[&str]) -> Result<()> {
    let options = Options::parse(args)?;
    let exe = std::env::current_exe()?;
    let dir = TempDir::new("tomte-supd")?;
    let fleet = exe.with_file_name("fleet");
    if !fleet.exists() {
        bail!("no {}: build it with cargo build --release -p tomte-bench", fleet.display());
    }
    let tomtectl = tomtectl(&exe)?;
    let venv = match &options.keep_venv {
        Some(keep) => std::path::absolute(keep)?,
        None => dir.0.join("venv"),
    };
    install_supervisor(&venv)?;
    let driver = dir.0.join("driver.py");
    std::fs::write(&driver, DRIVER)?;
    let sleep = find_on_path("sleep")?;
    let bench = Bench { dir: dir.0.clone(), venv, driver, fleet, tomtectl, sleep, options };
    let table = bench.run()?;
    println!("\n{table}");
    if let Some(out) = &bench.options.out {
        std::fs::write(out, &table).with_context(|| format!("write {}", out.display()))?;
        println!("(written to {})", out.display());
    }
    Ok(())
}

/// tomtectl next to this binary, built first when run by cargo (it is another package).
fn tomtectl(exe: &Path) -> Result<PathBuf> {
    let ctl = exe.with_file_name("tomtectl");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tomtectl/Cargo.toml");
        let mut build = Command::new(cargo);
        build.arg("build").arg("--quiet").arg("--manifest-path").arg(manifest);
        match exe.parent().and_then(Path::file_name).and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                build.arg("--release");
            }
            Some(profile) => {
                build.args(["--profile", profile]);
            }
            None => {}
        }
        println!("building tomtectl ({build:?})");
        if !build.status().context("run cargo")?.success() {
            bail!("building tomtectl failed");
        }
    }
    if !ctl.exists() {
        bail!("no {}: build it with cargo build --release -p tomtectl", ctl.display());
    }
    Ok(ctl)
}

/// `python3 -m venv VENV && VENV/bin/pip install supervisor`, unless VENV has it already.
fn install_supervisor(venv: &Path) -> Result<()> {
    if venv.join("bin/supervisord").exists() {
        println!("using supervisor in {}", venv.display());
        return Ok(());
    }
    println!("installing supervisor from PyPI into {}", venv.display());
    let ok = Command::new("python3").arg("-m").arg("venv").arg(venv).status().context("run python3 -m venv")?;
    if !ok.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let ok = Command::new(venv.join("bin/pip")).args(["install", "--quiet", "supervisor"]).status()?;
    if !ok.success() {
        bail!("pip install supervisor failed");
    }
    Ok(())
}

fn find_on_path(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("no {name} on PATH"))
}

/// The first line a command prints, trimmed.
fn first_line(cmd: &mut Command) -> String {
    let out = cmd.output().map(|o| [o.stdout, o.stderr].concat()).unwrap_or_default();
    String::from_utf8_lossy(&out).lines().next().unwrap_or("?").trim().to_owned()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Tomte,
    Supervisord,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Tomte => "tomte",
            Side::Supervisord => "supervisord",
        }
    }
    /// The control call of the calls/s figure.
    fn status_method(self) -> &'static str {
        match self {
            Side::Tomte => "daemon.status",
            Side::Supervisord => "supervisor.getState",
        }
    }
    /// Something its answer contains.
    fn status_answer(self) -> &'static [u8] {
        match self {
            Side::Tomte => b"<name>pid</name>",
            Side::Supervisord => b"<string>RUNNING</string>",
        }
    }
}

/// Where everything is.
struct Bench {
    dir: PathBuf,
    venv: PathBuf,
    driver: PathBuf,
    fleet: PathBuf,
    tomtectl: PathBuf,
    sleep: PathBuf,
    options: Options,
}

/// A manager started in the foreground by this process, with its children.
struct Manager {
    side: Side,
    child: Child,
    me: Known,
    sock: PathBuf,
    conf: PathBuf,
    /// Every child it was seen with, to be sure they are gone at the end.
    kids: Vec<Known>,
}

impl Manager {
    /// Starts `side`'s manager; files are named after `tag`.
    fn spawn(bench: &Bench, side: Side, tag: &str) -> Result<Manager> {
        let sock = bench.dir.join(format!("{tag}.sock"));
        let conf = bench.dir.join(format!("{tag}.conf"));
        let log = std::fs::File::create(bench.dir.join(format!("{tag}.out")))?;
        let mut cmd = match side {
            Side::Tomte => {
                let mut cmd = Command::new(&bench.fleet);
                cmd.arg("run")
                    .arg("--socket")
                    .arg(format!("unix://{}", sock.display()))
                    .arg("--pidfile")
                    .arg(bench.dir.join(format!("{tag}.pid")))
                    .args(["--workers", &CHILDREN.to_string(), "--backoff-ms", "0", "--crash-limit", "1000000"])
                    // supervisord's own interface too, for the same-method row (its memory counted).
                    .arg("--supervisor-api");
                cmd
            }
            Side::Supervisord => {
                std::fs::write(&conf, supervisord_conf(bench, tag, &sock))?;
                let mut cmd = Command::new(bench.venv.join("bin/supervisord"));
                cmd.arg("--nodaemon").arg("--configuration").arg(&conf);
                cmd
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {cmd:?}"))?;
        let pid = i32::try_from(child.id())?;
        // Its /proc entry lasts until it is waited for, so this finds it even if it exited.
        let me = Known::of(pid).with_context(|| format!("{} (pid {pid}) died at once", side.name()))?;
        Ok(Manager { side, child, me, sock, conf, kids: Vec::new() })
    }

    /// Its live children now, remembered.
    fn scan(&mut self) -> Vec<Known> {
        let now = children(self.me.pid);
        for k in &now {
            if !self.kids.contains(k) {
                self.kids.push(*k);
            }
        }
        now
    }

    /// SIGTERM, then the time until the manager and all its children are gone.
    fn stop(&mut self) -> Result<Duration> {
        let kids = self.scan();
        if kids.len() != CHILDREN {
            bail!("{} has {} children before the stop, not {CHILDREN}", self.side.name(), kids.len());
        }
        let start = Instant::now();
        self.me.signal(Signal::TERM);
        while self.me.alive() || kids.iter().any(Known::alive) {
            if start.elapsed() > PATIENCE {
                bail!("{} not gone {PATIENCE:?} after SIGTERM", self.side.name());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let took = start.elapsed();
        let status = self.child.wait()?;
        if !status.success() {
            println!("    ({} exited with {status} after SIGTERM)", self.side.name());
        }
        Ok(took)
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if self.me.alive() {
            self.scan();
            self.me.signal(Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.me.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if self.me.alive() {
                eprintln!("{} (pid {}) ignored SIGTERM: SIGKILL", self.side.name(), self.me.pid);
                self.me.signal(Signal::KILL);
            }
        }
        let _ = self.child.wait();
        // supervisord's children outlive a killed supervisord; tomte's die with it, but check.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.kids.iter().any(Known::alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for k in self.kids.iter().filter(|k| k.alive()) {
            eprintln!("child {} outlived {}: SIGKILL", k.pid, self.side.name());
            k.signal(Signal::KILL);
        }
    }
}

/// supervisord's configuration: its unix socket, and one program `sleep infinity` run 20 times
/// (`numprocs`), running as soon as started (`startsecs=0`), restarted whatever their exit. One
/// program rather than 20: supervisord stops groups one after the other, so 20 programs of one
/// process each take seconds to stop, where one group of 20 stops them all at once.
fn supervisord_conf(bench: &Bench, tag: &str, sock: &Path) -> String {
    let dir = bench.dir.display();
    let mut conf = format!(
        "[unix_http_server]\nfile={sock}\nchmod=0700\n\n\
         [supervisord]\nnodaemon=true\nlogfile={dir}/{tag}.log\npidfile={dir}/{tag}.pid\nchildlogdir={dir}\n\n\
         [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
         [supervisorctl]\nserverurl=unix://{sock}\n",
        sock = sock.display()
    );
    conf.push_str(&format!(
        "\n[program:c]\ncommand={} infinity\nprocess_name=c%(process_num)02d\nnumprocs={CHILDREN}\n\
         numprocs_start=1\nstartsecs=0\nautorestart=true\nstdout_logfile=NONE\nstderr_logfile=NONE\n",
        bench.sleep.display()
    ));
    conf
}

/// The driver waiting for a launch: started first, told nothing; it says `done` once the
/// children run.
struct LaunchWait {
    _proc: Proc,
    out: BufReader<ChildStdout>,
}

impl LaunchWait {
    fn start(bench: &Bench, side: Side, sock: &Path) -> Result<LaunchWait> {
        let mut child = bench
            .python(["launch", &sock.display().to_string(), side.name(), &CHILDREN.to_string()])
            .stdout(Stdio::piped())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().context("driver stdout")?);
        let mut wait = LaunchWait { _proc: Proc(child), out };
        wait.expect("ready")?;
        Ok(wait)
    }
    fn expect(&mut self, word: &str) -> Result<()> {
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        if line.trim() != word {
            bail!("the launch driver said {:?}, not {word:?} (its error is above)", line.trim());
        }
        Ok(())
    }
}

/// Idle memory of a manager and its children, in kB.
struct Memory {
    rss: f64,
    anon: f64,
    child_rss: f64,
    child_anon: f64,
    child_private: f64,
    total_anon: f64,
    total_pss: f64,
}

/// What one full round measured of one side.
struct Round {
    launch: f64,
    /// CPU time of the manager and its children while idle, in microseconds per second.
    idle_cpu: f64,
    memory: Memory,
    calls: f64,
    /// Calls/s of python's client making the same call on both sides: `supervisor.getState`.
    same_calls: f64,
    /// The manager's CPU time per call of `calls`, in microseconds.
    cpu_per_call: f64,
    /// Calls/s of a Rust client.
    raw_calls: f64,
    cli: f64,
    kills: Vec<f64>,
    stop: f64,
}

impl Bench {
    fn python<const N: usize>(&self, args: [&str; N]) -> Command {
        let mut cmd = Command::new(self.venv.join("bin/python"));
        cmd.arg(&self.driver).args(args).stdin(Stdio::null()).stderr(Stdio::inherit());
        cmd
    }

    /// The output of a driver run to its end.
    fn python_output<const N: usize>(&self, args: [&str; N]) -> Result<String> {
        let out = self.python(args).output()?;
        if !out.status.success() {
            bail!("driver {args:?} failed ({})", out.status);
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// Spawns `side`'s manager and waits for its children to run: the manager and the time.
    fn launch(&self, side: Side, tag: &str) -> Result<(Manager, f64)> {
        let mut wait = LaunchWait::start(self, side, &self.dir.join(format!("{tag}.sock")))?;
        let start = Instant::now();
        let manager = Manager::spawn(self, side, tag)?;
        wait.expect("done")?;
        Ok((manager, start.elapsed().as_secs_f64() * 1e3))
    }

    fn full_round(&self, side: Side, r: usize) -> Result<Round> {
        let (mut m, launch) = self.launch(side, &format!("r{r}-{}", side.name()))?;
        let everyone: Vec<Known> = std::iter::once(m.me).chain(m.scan()).collect();
        let cpu = |who: &[Known]| who.iter().map(|k| cpu_ns(k.pid)).sum::<Result<u64>>();
        let (cpu_before, settle) = (cpu(&everyone)?, Instant::now());
        std::thread::sleep(SETTLE);
        let idle_cpu = (cpu(&everyone)? - cpu_before) as f64 / 1e3 / settle.elapsed().as_secs_f64();
        let memory = memory(&mut m)?;
        let sock = m.sock.display().to_string();
        let cpu_before = cpu_ns(m.me.pid)?;
        let calls = self.python_output(["calls", &sock, side.status_method(), &self.options.seconds.to_string()])?;
        let cpu = cpu_ns(m.me.pid)? - cpu_before;
        let (rate, count) = calls.split_once(' ').with_context(|| format!("calls/s {calls:?}"))?;
        let (calls, count): (f64, f64) = (rate.parse()?, count.parse()?);
        let cpu_per_call = cpu as f64 / 1e3 / count;
        let same = self.python_output(["calls", &sock, "supervisor.getState", &self.options.seconds.to_string()])?;
        let same_calls: f64 = same.split_once(' ').with_context(|| format!("calls/s {same:?}"))?.0.parse()?;
        let method_call = format!(
            "<?xml version=\"1.0\"?><methodCall><methodName>{}</methodName><params></params></methodCall>",
            side.status_method()
        );
        let time = Duration::from_secs_f64(self.options.seconds);
        let raw_calls = xml_http_calls(&m.sock, &method_call, side.status_answer(), time)
            .with_context(|| format!("{} over raw HTTP", side.status_method()))?;
        let cli = self.cli_rate(&m)?;
        let first = (r * self.options.kills).to_string();
        let kills = self.python_output(["kills", &sock, side.name(), &self.options.kills.to_string(), &first])?;
        let kills: Vec<f64> = serde_json::from_str(&kills).with_context(|| format!("kill times {kills:?}"))?;
        let stop = m.stop()?.as_secs_f64() * 1e3;
        Ok(Round { launch, idle_cpu, memory, calls, same_calls, cpu_per_call, raw_calls, cli, kills, stop })
    }

    /// Launch time with a driver calling the control method all along.
    fn traffic_round(&self, side: Side, r: usize) -> Result<f64> {
        let tag = format!("t{r}-{}", side.name());
        let sock = self.dir.join(format!("{tag}.sock"));
        let hammer = Proc(self.python(["hammer", &sock.display().to_string(), side.status_method()]).spawn()?);
        // Let it get going: it retries the socket until the manager binds it.
        std::thread::sleep(Duration::from_millis(300));
        let (mut m, launch) = self.launch(side, &tag)?;
        drop(hammer);
        m.stop()?;
        Ok(launch)
    }

    /// Runs of the side's own CLI listing the children, for the round's seconds: runs per second.
    fn cli_rate(&self, m: &Manager) -> Result<f64> {
        let mut cmd = match m.side {
            Side::Tomte => {
                let mut cmd = Command::new(&self.tomtectl);
                cmd.arg("--socket").arg(format!("unix://{}", m.sock.display())).arg("workers");
                cmd
            }
            Side::Supervisord => {
                let mut cmd = Command::new(self.venv.join("bin/supervisorctl"));
                cmd.arg("-c").arg(&m.conf).arg("status");
                cmd
            }
        };
        let time = Duration::from_secs_f64(self.options.seconds);
        let (start, mut runs) = (Instant::now(), 0u32);
        while start.elapsed() < time {
            let out = cmd.output()?;
            // Both list one line per child (and exit 0 when all run).
            let lines = out.stdout.iter().filter(|&&b| b == b'\n').count();
            if !out.status.success() || lines < CHILDREN {
                bail!("{cmd:?}: {} {}", out.status, String::from_utf8_lossy(&[out.stdout, out.stderr].concat()));
            }
            runs += 1;
        }
        Ok(f64::from(runs) / start.elapsed().as_secs_f64())
    }

    fn run(&self) -> Result<String> {
        let o = &self.options;
        let load_before = loadavg();
        println!(
            "supervisord vs tomte: {} rounds per side, alternating; {} s per calls/s figure; {} kills per round; \
             load average before: {load_before}",
            o.rounds, o.seconds, o.kills
        );
        let sides = [Side::Tomte, Side::Supervisord];
        let mut rounds: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
        let mut traffic: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for r in 0..o.rounds {
            for (i, &side) in sides.iter().enumerate() {
                let round =
                    self.full_round(side, r).map_err(|e| self.with_output(e, &format!("r{r}-{}", side.name())))?;
                println!(
                    "  round {r} {:<11}  launch {:7.1} ms  idle CPU {:5.0} µs/s  manager {:6.0}/{:6.0} kB  child {:5.0}/{:4.0} kB  \
                     {:6.0} calls/s ({:4.0} µs CPU each), Rust {:6.0}/s  CLI {:5.1}/s  kill -9 {:6.1} ms  stop {:6.1} ms",
                    side.name(),
                    round.launch,
                    round.idle_cpu,
                    round.memory.rss,
                    round.memory.anon,
                    round.memory.child_rss,
                    round.memory.child_anon,
                    round.calls,
                    round.cpu_per_call,
                    round.raw_calls,
                    round.cli,
                    median(round.kills.clone()),
                    round.stop
                );
                rounds[i].push(round);
            }
            for (i, &side) in sides.iter().enumerate() {
                let launch =
                    self.traffic_round(side, r).map_err(|e| self.with_output(e, &format!("t{r}-{}", side.name())))?;
                println!("  round {r} {:<11}  launch with RPC traffic {launch:7.1} ms", side.name());
                traffic[i].push(launch);
            }
        }
        let load_after = loadavg();
        println!("load average after: {load_after}");
        Ok(self.table(&rounds, &traffic, &load_before, &load_after))
    }

    /// `e`, with the end of the manager's output (and supervisord's log) for round `tag`.
    fn with_output(&self, e: anyhow::Error, tag: &str) -> anyhow::Error {
        let read = |ext: &str| std::fs::read_to_string(self.dir.join(format!("{tag}.{ext}"))).unwrap_or_default();
        let out = read("out") + &read("log");
        let lines: Vec<&str> = out.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        e.context(format!("round {tag}; the manager's output ended with:\n{tail}"))
    }

    fn table(&self, rounds: &[Vec<Round>; 2], traffic: &[Vec<f64>; 2], before: &str, after: &str) -> String {
        let med = |side: usize, f: &dyn Fn(&Round) -> f64| median(rounds[side].iter().map(f).collect());
        let kills = |side: usize| median(rounds[side].iter().flat_map(|r| r.kills.iter().copied()).collect());
        // (metric, tomte, supervisord, unit, lower is better)
        let mut rows: Vec<(String, f64, f64, &str, bool)> = Vec::new();
        let mut mem = |what: &str, f: &dyn Fn(&Memory) -> f64| {
            rows.push((what.to_owned(), med(0, &|r| f(&r.memory)), med(1, &|r| f(&r.memory)), "kB", true));
        };
        mem("manager VmRSS, idle", &|m| m.rss);
        mem("manager RssAnon, idle", &|m| m.anon);
        mem("child VmRSS, idle (median of 20)", &|m| m.child_rss);
        mem("child RssAnon, idle (median of 20)", &|m| m.child_anon);
        mem("child private memory, idle (smaps Private_*, median of 20)", &|m| m.child_private);
        mem("manager + 20 children RssAnon", &|m| m.total_anon);
        mem("manager + 20 children Pss", &|m| m.total_pss);
        rows.push((
            "idle CPU time, manager + 20 children, per second".to_owned(),
            med(0, &|r| r.idle_cpu),
            med(1, &|r| r.idle_cpu),
            "µs",
            true,
        ));
        rows.push((
            "control calls/s, python xmlrpc.client, unix socket (daemon.status / supervisor.getState)".to_owned(),
            med(0, &|r| r.calls),
            med(1, &|r| r.calls),
            "/s",
            false,
        ));
        rows.push((
            "control calls/s, python xmlrpc.client, the same call on both (supervisor.getState)".to_owned(),
            med(0, &|r| r.same_calls),
            med(1, &|r| r.same_calls),
            "/s",
            false,
        ));
        rows.push((
            "manager CPU time per control call (python client)".to_owned(),
            med(0, &|r| r.cpu_per_call),
            med(1, &|r| r.cpu_per_call),
            "µs",
            true,
        ));
        rows.push((
            "control calls/s, Rust client (raw XML-RPC over HTTP), unix socket".to_owned(),
            med(0, &|r| r.raw_calls),
            med(1, &|r| r.raw_calls),
            "/s",
            false,
        ));
        rows.push((
            "CLI runs/s (tomtectl workers / supervisorctl status)".to_owned(),
            med(0, &|r| r.cli),
            med(1, &|r| r.cli),
            "/s",
            false,
        ));
        rows.push((
            "launch → 20 children running".to_owned(),
            med(0, &|r| r.launch),
            med(1, &|r| r.launch),
            "ms",
            true,
        ));
        rows.push((
            "launch → 20 children running, with RPC traffic".to_owned(),
            median(traffic[0].clone()),
            median(traffic[1].clone()),
            "ms",
            true,
        ));
        rows.push((
            format!("kill -9 of a child → replacement running (median of {})", rounds[0].len() * self.options.kills),
            kills(0),
            kills(1),
            "ms",
            true,
        ));
        rows.push((
            "SIGTERM → manager and 20 children gone".to_owned(),
            med(0, &|r| r.stop),
            med(1, &|r| r.stop),
            "ms",
            true,
        ));

        let date = first_line(Command::new("date").arg("+%Y-%m-%d"));
        let uname = rustix::system::uname();
        let kernel = uname.release().to_string_lossy();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines().find_map(|l| Some(l.strip_prefix("model name")?.split_once(':')?.1.trim().to_owned()))
            })
            .unwrap_or_else(|| "?".to_owned());
        let supervisor = first_line(Command::new(self.venv.join("bin/supervisord")).arg("--version"));
        let python = first_line(Command::new(self.venv.join("bin/python")).arg("--version"));
        let mut t = format!(
            "tomte-bench supervisord, {date}: Linux {kernel}, {cpus} CPUs ({model}); supervisor {supervisor} on \
             {python}, tomte {} (fleet example); medians of {} alternating rounds per side; load average {before} \
             before, {after} after.\n\n\
             | metric | tomte | supervisord | ratio |\n| --- | ---: | ---: | ---: |\n",
            env!("CARGO_PKG_VERSION"),
            rounds[0].len()
        );
        for (what, tomte, sup, unit, lower) in rows {
            let ratio = if lower { sup / tomte } else { tomte / sup };
            let digits = |v: f64| {
                if v < 10.0 {
                    2
                } else if v < 100.0 {
                    1
                } else {
                    0
                }
            };
            let unit = if unit.starts_with('/') { unit.to_owned() } else { format!(" {unit}") };
            t.push_str(&format!(
                "| {what} | {tomte:.*}{unit} | {sup:.*}{unit} | {ratio:.2}x |\n",
                digits(tomte),
                digits(sup)
            ));
        }
        t.push_str(
            "\nratio: how many times better tomte does (supervisord / tomte for memory and times, tomte / \
             supervisord for calls/s); above 1, tomte is ahead.\n",
        );
        t
    }
}

/// Idle memory of `m` and of each of its children.
fn memory(m: &mut Manager) -> Result<Memory> {
    let kids = m.scan();
    if kids.len() != CHILDREN {
        bail!("{} has {} children, not {CHILDREN}", m.side.name(), kids.len());
    }
    let me = m.me.pid;
    let rollup = |pid: i32, field: &str| rollup_kb(pid, field).with_context(|| format!("no {field} in smaps_rollup"));
    let (mut rss, mut anon, mut private, mut pss) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for k in &kids {
        rss.push(status_kb(k.pid, "VmRSS")? as f64);
        anon.push(status_kb(k.pid, "RssAnon")? as f64);
        private.push((rollup(k.pid, "Private_Clean")? + rollup(k.pid, "Private_Dirty")?) as f64);
        pss.push(rollup(k.pid, "Pss")? as f64);
    }
    let manager_anon = status_kb(me, "RssAnon")? as f64;
    let manager_pss = rollup(me, "Pss")? as f64;
    Ok(Memory {
        rss: status_kb(me, "VmRSS")? as f64,
        anon: manager_anon,
        total_anon: manager_anon + anon.iter().sum::<f64>(),
        total_pss: manager_pss + pss.iter().sum::<f64>(),
        child_rss: median(rss),
        child_anon: median(anon),
        child_private: median(private),
    })
}
