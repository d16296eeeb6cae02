//! `stress [SECONDS] [WORKER_KILLS] [DAEMON_KILLS]`: the fault scenarios of `tomte/tests/faults.rs`
//! for long runs by hand, against the release-built example daemons (`echo`, `pool`) next to this
//! binary. Build them first: `cargo build --release -p tomte --examples -p tomte-bench`.
//! Defaults: 10 s per attack, 2000 worker kills, 20 daemon kills.

use anyhow::{Context, Result};
use tomte_bench::stress::{self, Plan};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: f64| -> Result<f64> {
        args.get(i)
            .map(|s| s.parse().with_context(|| format!("argument {} is not a number: {s}", i + 1)))
            .unwrap_or(Ok(default))
    };
    let exe = std::env::current_exe()?;
    let plan = Plan {
        bins: exe.parent().context("the binary's directory")?.to_owned(),
        time: std::time::Duration::from_secs_f64(arg(0, 10.0)?),
        kills: arg(1, 2000.0)? as usize,
        daemon_kills: arg(2, 20.0)? as usize,
    };
    stress::run(&plan)
}
