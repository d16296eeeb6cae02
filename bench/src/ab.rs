//! `tomte-bench ab OLD_DIR NEW_DIR [SECONDS]`: two builds of tomte side by side, in one run, to
//! show that a change costs nothing. Each directory holds the release examples `echo` and `pool`
//! of one build. Every scenario runs interleaved rounds (old, new, then new, old, and so on) of
//! SECONDS each (1 by default) against a long-lived daemon of each build, so that both builds
//! see the same drift of a shared machine; it prints the medians, the ratio new/old with the
//! spread of the per-round ratios, and PASS or FAIL against the target of the scenario:
//!
//! * `echo sequential`, `echo 64 in flight`, `echo HTTP 64 connections` (the loads of
//!   `tomte-bench compare`, on an echo daemon run in the foreground): new/old >= 0.97;
//! * `pool.count (asks a worker)` (one call at a time, as `tomte-bench workers` measures it, on a
//!   pool daemon started detached): new/old >= 0.95;
//! * `pool.echo`, for the new build alone (worker alpha sends the value back): its calls/s and
//!   its ratio to the new build's `pool.count`, interleaved with it, for information.
//!
//! The exit status is 1 when a target is missed. The daemons live in a temporary directory and
//! are killed by their pids at the end or on an error.
//!
//! To build the old binaries from a commit and run it from the workspace root:
//!
//! ```text
//! git worktree add /tmp/tomte-old <COMMIT> && (cd /tmp/tomte-old && cargo build --release -p tomte --examples)
//! cargo build --release -p tomte --examples && cargo build --release -p tomte-bench \
//!     && target/release/tomte-bench ab /tmp/tomte-old/target/release/examples target/release/examples
//! ```
//!
//! (Two builds: with `--examples`, `cargo build -p tomte --examples -p tomte-bench` would build
//! only examples, not the `tomte-bench` binary.)
//!
//! Old builds whose `pool.count` takes `{"name": NAME}` work; `pool.echo` is only asked of the
//! new build.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::compare::{spread, Echo, EchoLoad, Pairs};
use crate::workers::{calls_per_sec, loadavg, PoolDaemon, TempDir, COUNT_REQUEST};

/// Rounds per build and scenario (odd, so the median is a measured round).
const ROUNDS: usize = 7;
/// A run of each side before the rounds of a scenario, not counted.
const WARM_UP: Duration = Duration::from_millis(100);
/// A spread of the per-round ratios wider than this is flagged as noisy.
const NOISY: f64 = 0.10;
/// `pool.echo` of a string, as an NDJSON line, and the answer it must get.
const ECHO_REQUEST: &[u8] =
    b"{\"jsonrpc\":\"2.0\",\"method\":\"pool.echo\",\"params\":{\"value\":\"hello\"},\"id\":1}\n";
const ECHO_ANSWER: &str = r#""result":"hello""#;

/// One build: the directory of its examples.
struct Build {
    name: &'static str,
    dir: PathBuf,
}

impl Build {
    fn new(name: &'static str, dir: &Path) -> Result<Build> {
        for exe in ["echo", "pool"] {
            let path = dir.join(exe);
            if !path.is_file() {
                bail!(
                    "{name} build: no {} (build it with `cargo build --release -p tomte --examples`)",
                    path.display()
                );
            }
        }
        Ok(Build { name, dir: dir.to_owned() })
    }

    fn exe(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// One line of the report.
struct Row {
    what: &'static str,
    /// The median of the old build, if it has the scenario.
    old: Option<f64>,
    new: f64,
    /// The ratio of the medians.
    ratio: f64,
    /// The smallest and the largest per-round ratio.
    spread: (f64, f64),
    /// The smallest ratio that passes, if there is a target.
    target: Option<f64>,
}

impl Row {
    fn of(what: &'static str, pairs: &Pairs, target: Option<f64>) -> Row {
        let (a, b) = pairs.medians();
        Row { what, old: target.map(|_| a), new: b, ratio: b / a, spread: spread(&pairs.ratios()), target }
    }

    fn passed(&self) -> Option<bool> {
        self.target.map(|t| self.ratio >= t)
    }

    fn print(&self) {
        let old = self.old.map_or_else(|| "-".to_owned(), |o| format!("{o:.0}"));
        let (lo, hi) = self.spread;
        let target = self.target.map_or_else(|| "-".to_owned(), |t| format!(">= {t:.2}"));
        let result = match self.passed() {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "(info)",
        };
        let noisy = if hi - lo > NOISY { "  noisy" } else { "" };
        let spread = format!("[{lo:.3} .. {hi:.3}]");
        println!(
            "  {:<34} {old:>11} {:>11.0} {:>8.3}   {spread:<18}   {target:<8} {result}{noisy}",
            self.what, self.new, self.ratio
        );
    }
}

/// Warms both sides up, then runs the interleaved rounds of `time`, alternating which goes first.
fn rounds(time: Duration, mut f: impl FnMut(bool, Duration) -> Result<f64>) -> Result<Pairs> {
    f(false, WARM_UP)?;
    f(true, WARM_UP)?;
    Pairs::run(ROUNDS, true, |side| f(side, time))
}

/// Runs every scenario and prints the report; returns whether every target was met.
pub fn run(old: &Path, new: &Path, seconds: f64) -> Result<bool> {
    if !(seconds > 0.0 && seconds.is_finite()) {
        bail!("seconds per round: {seconds} is not a positive number");
    }
    let builds = [Build::new("old", old)?, Build::new("new", new)?];
    let time = Duration::from_secs_f64(seconds);
    let tmp = TempDir::new("tomte-ab")?;
    let dirs = builds.each_ref().map(|b| tmp.0.join(b.name));
    for dir in &dirs {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }

    println!("tomte A/B benchmark: old {}, new {}", old.display(), new.display());
    println!(
        "  {ROUNDS} rounds of {time:?} per build and scenario, interleaved, the first alternating; medians \
         (load average, running/total tasks before: {})",
        loadavg()
    );
    println!(
        "\n  {:<34} {:>11} {:>11} {:>8}   {:<18}   {:<8} result",
        "scenario", "old calls/s", "new calls/s", "new/old", "per-round new/old", "target"
    );
    let mut rows = Vec::new();
    let mut add = |row: Row| {
        row.print();
        rows.push(row);
    };

    {
        let echo = [Echo::run(&builds[0].exe("echo"), &dirs[0])?, Echo::run(&builds[1].exe("echo"), &dirs[1])?];
        for load in EchoLoad::ALL {
            let pairs = rounds(time, |new, t| load.drive(&echo[usize::from(new)].at, t))?;
            add(Row::of(load.name(), &pairs, Some(0.97)));
        }
    }

    let mut pools = Vec::new();
    for (build, dir) in builds.iter().zip(&dirs) {
        let mut daemon = PoolDaemon::start(&build.exe("pool"), dir)?;
        daemon.wait_workers(&mut daemon.connect()?)?;
        pools.push(daemon);
    }
    let mut count = [pools[0].line_conn()?, pools[1].line_conn()?];
    let pairs = rounds(time, |new, t| calls_per_sec(&mut count[usize::from(new)], COUNT_REQUEST, t))?;
    add(Row::of("pool.count (asks a worker)", &pairs, Some(0.95)));

    let mut echo = pools[1].line_conn()?;
    echo.get_mut().write_all(ECHO_REQUEST)?;
    let mut answer = String::new();
    echo.read_line(&mut answer)?;
    if !answer.contains(ECHO_ANSWER) {
        bail!("new pool.echo answered {}", answer.trim());
    }
    let [_, new_count] = &mut count;
    let pairs = rounds(time, |is_echo, t| {
        if is_echo {
            calls_per_sec(&mut echo, ECHO_REQUEST, t)
        } else {
            calls_per_sec(new_count, COUNT_REQUEST, t)
        }
    })?;
    add(Row::of("pool.echo (new; vs new pool.count)", &pairs, None));
    drop((count, echo, pools));

    println!("  (load average, running/total tasks after: {})", loadavg());
    if rows.iter().any(|r| r.spread.1 - r.spread.0 > NOISY) {
        println!(
            "  noisy: the per-round ratios of a scenario differ by more than {NOISY:.2} (another process on the \
             cores): re-run on an idle machine, or with longer rounds"
        );
    }
    let passed = rows.iter().all(|r| r.passed() != Some(false));
    println!("\n{}", if passed { "all targets PASS" } else { "some targets FAIL (see above)" });
    Ok(passed)
}
