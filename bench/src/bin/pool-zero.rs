//! The pool example's daemon with restart back-off set to zero, for the worker benchmark: two
//! workers, `alpha` and `beta`, counting iterations every 100 ms and restarted at once whatever
//! happens to them; `pool.count NAME` asks a worker for its count over the channel.
//!
//! The crash-loop limit is raised too, so that the benchmark's repeated `kill -9` measures
//! restarts instead of ending in state `failed`.

use std::time::Duration;

use tomte::worker::{Policy, Worker, WorkerCtx, WorkerSpec};
use tomte::{Daemon, Fault, Method, Type, Value};

struct Counter;

impl Worker for Counter {
    fn spinup(&mut self, ctx: &mut WorkerCtx) {
        log::info!("spinup {}", ctx.name());
    }
    fn r#loop(&mut self, _ctx: &mut WorkerCtx) {
        // The iteration is the work: the context counts it.
    }
    fn spindown(&mut self, ctx: &mut WorkerCtx) {
        log::info!("spindown {}", ctx.name());
    }
    fn on_message(&mut self, request: Value, ctx: &mut WorkerCtx) -> Result<Value, Fault> {
        match request.as_str() {
            Some("count") => Ok(Value::from(ctx.iterations())),
            _ => Err(Fault::invalid_params(format!("unknown request {request:?}"))),
        }
    }
}

fn main() {
    let mut daemon = Daemon::new("pool-zero");
    for name in ["alpha", "beta"] {
        daemon.worker(
            WorkerSpec::new(name, Duration::from_millis(100), || Counter)
                .policy(Policy::Always)
                .backoff(Duration::ZERO, Duration::ZERO, Duration::from_secs(10))
                .crash_limit(10_000, Duration::from_secs(60)),
        );
    }
    daemon.method(
        Method::new("pool.count", |p, ctx| ctx.ask(&p.get::<String>("name")?, Value::from("count")))
            .description("How many iterations worker NAME has run, asked to the worker itself")
            .returns(Type::Int)
            .param(Type::String, "name"),
    );
    std::process::exit(tomte::cli::main(daemon));
}
