//! Two workers, `alpha` and `beta`, each counting its iterations every 100 ms, restarted
//! whatever happens to them; `pool.count NAME` asks a worker for its count over the channel,
//! and `pool.echo VALUE` has `alpha` send any value back unchanged.
//!
//! ```text
//! cargo run --example pool -- start --log /tmp/pool.log
//! tomtectl --socket unix://$XDG_RUNTIME_DIR/pool.sock workers
//! tomtectl --socket unix://$XDG_RUNTIME_DIR/pool.sock call pool.count name=alpha
//! ```
//!
//! To try restart timing by hand (the worker benchmark does): `POOL_BACKOFF_MS=0` restarts a
//! killed worker at once, `POOL_CRASH_LIMIT=N` allows N restarts a minute before `failed`.

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
        match request {
            // `["echo", X]` is answered with X, as it crossed the channel.
            Value::Array(mut items) if items.len() == 2 && items[0] == Value::from("echo") => {
                Ok(items.pop().unwrap_or_default())
            }
            request => match request.as_str() {
                Some("count") => Ok(Value::from(ctx.iterations())),
                Some("panic") => panic!("asked to panic"),
                _ => Err(Fault::invalid_params(format!("unknown request {request:?}"))),
            },
        }
    }
}

/// A number from the environment, when set.
fn env(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a whole number"),
    }
}

fn main() {
    let mut daemon = Daemon::new("pool");
    for name in ["alpha", "beta"] {
        let mut spec = WorkerSpec::new(name, Duration::from_millis(100), || Counter).policy(Policy::Always);
        if let Some(ms) = env("POOL_BACKOFF_MS") {
            let backoff = Duration::from_millis(ms);
            spec = spec.backoff(backoff, backoff, Duration::from_secs(10));
        }
        if let Some(n) = env("POOL_CRASH_LIMIT") {
            spec = spec.crash_limit(u32::try_from(n).unwrap_or(u32::MAX), Duration::from_secs(60));
        }
        daemon.worker(spec);
    }
    daemon.method(
        Method::new("pool.count", |p, ctx| ctx.ask(&p.get::<String>("name")?, Value::from("count")))
            .description("How many iterations worker NAME has run, asked to the worker itself")
            .returns(Type::Int)
            .param(Type::String, "name"),
    );
    daemon.method(
        Method::new("pool.echo", |mut p, ctx| {
            let value = p.take::<Value>("value")?;
            ctx.ask("alpha", Value::Array(vec![Value::from("echo"), value]))
        })
        .description("VALUE, sent to worker alpha and back: what crosses the worker channel unchanged")
        .returns(Type::Any)
        .param(Type::Any, "value"),
    );
    std::process::exit(tomte::cli::main(daemon));
}
