//! A daemon with N idle workers (`--workers N`, 20 by default): each one a loop that does
//! nothing, every `--interval-ms` (a minute by default), restarted whatever happens to it. It
//! has no methods of its own unless `--methods N` adds N trivial ones (`fleet.m01`…, each
//! answering nil and counting itself in the application metric `fleet_method_calls_total`:
//! the metrics benchmark scrapes a daemon of 20 workers and 50 methods): the
//! built-in `worker.list`, `worker.restart`, `daemon.status`… are the point. The supervisord comparison (`tomte-bench supervisord`) runs it next to
//! supervisord running as many `sleep infinity` programs.
//!
//! ```text
//! cargo run --example fleet -- start --workers 5 --log /tmp/fleet.log
//! tomtectl --socket unix://$XDG_RUNTIME_DIR/fleet.sock workers
//! cargo run --example fleet -- stop
//! ```
//!
//! `--backoff-ms 0` restarts a killed worker at once (the default back-off is tomte's: 100 ms,
//! doubling); `--crash-limit N` allows N restarts a minute before a worker is `failed`.

use std::time::Duration;

// Through tomte's re-export: the benchmark crate builds this file with no clap of its own.
use tomte::cli::{self, clap, Action, Cli};
use tomte::worker::{Policy, WorkerCtx, WorkerSpec};
use tomte::{Ctx, Daemon, Fault, Method, Value};

/// Runs N idle workers, supervised.
#[derive(clap::Args)]
struct Flags {
    /// How many workers to run
    #[arg(long, value_name = "N", default_value_t = 20)]
    workers: usize,
    /// Each worker's loop interval, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    interval_ms: u64,
    /// Restart back-off in milliseconds, 0 for none [default: 100, doubling to 30 s]
    #[arg(long, value_name = "MS")]
    backoff_ms: Option<u64>,
    /// Restarts within a minute before a worker is failed [default: 5]
    #[arg(long, value_name = "N")]
    crash_limit: Option<u32>,
    /// Trivial methods to add (fleet.m01…), each answering nil
    #[arg(long, value_name = "N", default_value_t = 0)]
    methods: usize,
}

fn main() {
    let cli = Cli::<Flags>::parse_for("fleet");
    let Action::Daemon(command) = cli.command;
    let flags = &cli.app;
    let mut daemon = Daemon::new("fleet");
    let width = flags.workers.to_string().len().max(2);
    for i in 1..=flags.workers {
        let idle = || |_: &mut WorkerCtx| {};
        let mut spec = WorkerSpec::new(&format!("w{i:0width$}"), Duration::from_millis(flags.interval_ms), idle)
            .policy(Policy::Always);
        if let Some(ms) = flags.backoff_ms {
            let backoff = Duration::from_millis(ms);
            spec = spec.backoff(backoff, backoff, Duration::from_secs(10));
        }
        if let Some(n) = flags.crash_limit {
            spec = spec.crash_limit(n, Duration::from_secs(60));
        }
        daemon.worker(spec);
    }
    let width = flags.methods.to_string().len().max(2);
    for i in 1..=flags.methods {
        let method = Method::new(format!("fleet.m{i:0width$}"), |_, ctx: &mut Ctx| {
            let calls = ctx.metrics().counter("fleet_method_calls_total", "Calls of the fleet.m* methods.");
            calls.map_err(|e| Fault::internal(e.to_string()))?.inc();
            Ok(Value::Nil)
        });
        daemon.method(method.description("Answers nil"));
    }
    std::process::exit(cli::run_command(daemon, &command, &cli.daemon));
}
