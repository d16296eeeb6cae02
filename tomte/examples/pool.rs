//! Two workers, `alpha` and `beta`, each counting its iterations every 100 ms, restarted
//! whatever happens to them. Two async methods ask them over the channel:
//!
//! * `pool.count(name: string) -> int`: worker NAME's iteration count, asked to the worker;
//! * `pool.echo(value: any) -> any`: sends VALUE to worker `alpha`, which sends it back; every
//!   type survives the trip (bytes stay bytes, dates stay dates, NaN stays NaN).
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

use serde::Deserialize;
use tomte::worker::{Policy, Worker, WorkerCtx, WorkerSpec};
use tomte::{Daemon, Fault, Method, Type, Value};

struct Counter;

impl Worker for Counter {
    fn spinup(&mut self, ctx: &mut WorkerCtx) {
        println!("hello from {}", ctx.name()); // the worker's stdout: logged by the daemon
        log::info!("spinup {}", ctx.name());
    }
    fn r#loop(&mut self, _ctx: &mut WorkerCtx) {
        // The iteration is the work: the context counts it.
    }
    fn spindown(&mut self, ctx: &mut WorkerCtx) {
        log::info!("spindown {}", ctx.name());
    }
    fn on_message(&mut self, request: Value, ctx: &mut WorkerCtx) -> Result<Value, Fault> {
        if let Value::Array(mut items) = request {
            return match items.first().and_then(Value::as_str) {
                Some("echo") if items.len() == 2 => Ok(items.swap_remove(1)),
                _ => Err(Fault::invalid_params("expected [\"echo\", VALUE]")),
            };
        }
        match request.as_str() {
            Some("count") => Ok(Value::from(ctx.iterations())),
            Some("panic") => panic!("asked to panic"),
            _ => Err(Fault::invalid_params(format!("unknown request {request:?}"))),
        }
    }
}

/// The parameters of `pool.count`.
#[derive(Deserialize)]
struct Name {
    name: String,
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
    daemon
        .method(
            Method::typed_async("pool.count", |Name { name }, ctx| ctx.ask(&name, "count"))
                .description("How many iterations worker NAME has run, asked to the worker itself")
                .returns(Type::Int),
        )
        .method(
            Method::new_async("pool.echo", |mut p, ctx| {
                let value = p.take::<Value>("value").unwrap_or_default();
                ctx.ask("alpha", Value::Array(vec![Value::from("echo"), value]))
            })
            .description("Sends VALUE to worker alpha and answers with what it sends back")
            .returns(Type::Any)
            .param(Type::Any, "value"),
        );
    std::process::exit(tomte::cli::main(daemon));
}
