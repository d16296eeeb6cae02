//! One call, two workers asked at once: `gather.both() -> struct` asks workers `alpha` and
//! `beta` for their iteration counts together and answers `{"alpha": N, "beta": M}`. A worker
//! that fails, or does not answer within 2 s, appears as `{"error": MESSAGE}` in its member,
//! so the call never waits longer than that. The loop serves every other client meanwhile.
//!
//! ```text
//! cargo run --example gather -- run --socket tcp://127.0.0.1:10044
//! curl -s localhost:10044 -d '{"jsonrpc":"2.0","method":"gather.both","id":1}'
//! ```

use std::time::Duration;

use tomte::worker::{Policy, Worker, WorkerCtx, WorkerSpec};
use tomte::{Daemon, Fault, Method, Type, Value};

/// How long `gather.both` waits for each worker.
const PATIENCE: Duration = Duration::from_secs(2);

/// A worker whose iterations are its work; it answers `count` with how many it ran.
struct Counter;

impl Worker for Counter {
    fn r#loop(&mut self, _ctx: &mut WorkerCtx) {}
    fn on_message(&mut self, request: Value, ctx: &mut WorkerCtx) -> Result<Value, Fault> {
        match request.as_str() {
            Some("count") => Ok(Value::from(ctx.iterations())),
            _ => Err(Fault::invalid_params(format!("unknown request {request:?}"))),
        }
    }
}

/// A worker's answer, or what went wrong, as the member of the result.
fn member(answer: Result<Value, Fault>) -> Value {
    answer.unwrap_or_else(|fault| Value::structure([("error", fault.full_message())]))
}

fn main() {
    let mut daemon = Daemon::new("gather");
    for name in ["alpha", "beta"] {
        daemon.worker(WorkerSpec::new(name, Duration::from_millis(100), || Counter).policy(Policy::Always));
    }
    daemon.method(
        Method::new_async("gather.both", |_, ctx| {
            // Both asks go out together when the future is first polled, each with its limit.
            let alpha = ctx.ask("alpha", "count").within(PATIENCE);
            let beta = ctx.ask("beta", "count").within(PATIENCE);
            async move {
                let (alpha, beta) = tomte::future::join(alpha, beta).await;
                Ok(Value::structure([("alpha", member(alpha)), ("beta", member(beta))]))
            }
        })
        .description("Asks workers alpha and beta for their counts at once; a worker that fails or takes more than 2 s shows {error: MESSAGE}")
        .returns(Type::Struct),
    );
    std::process::exit(tomte::cli::main(daemon));
}
