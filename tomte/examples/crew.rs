//! A pool `crew` whose instances work, hang or grow on request: the pool tests drive it.
//!
//! * `crew.work(ms: int) -> struct`: the instance that took the ask sleeps `ms` (at most 60 s),
//!   then answers `{worker, pid, n}` (`n`: the asks its process answered, this one included);
//! * `crew.hang() -> nil`: the instance never answers (a loop without end, no heartbeat);
//! * `crew.grow(mib: int) -> int`: the instance allocates and keeps `mib` MiB more (at most 256
//!   at once), and answers its resident memory in KiB;
//! * `crew.solo(ms: int) -> struct`: as `crew.work`, asked of `solo`, a worker of the same kind
//!   that is not a pool (the benchmark compares the two);
//! * `crew.echo(value) -> value`: an instance sends `value` back, whatever its size (one too
//!   big for the worker channel is refused).
//!
//! Its settings come from the environment, so one binary serves every test:
//! `CREW_INSTANCES` (default 4), `CREW_MAX_IN_FLIGHT`, `CREW_QUEUE`, `CREW_ASK_TIMEOUT_MS`,
//! `CREW_HANG_TIMEOUT_MS`, `CREW_MAX_REQUESTS`, `CREW_MAX_MEMORY_MB`, `CREW_AUTOSCALE=MIN-MAX`.
//!
//! ```text
//! cargo run --example crew -- start
//! tomtectl --socket unix://$XDG_RUNTIME_DIR/crew.sock call crew.work ms=10
//! tomtectl --socket unix://$XDG_RUNTIME_DIR/crew.sock worker scale crew 8
//! ```

use std::time::Duration;

use serde::Deserialize;
use tomte::worker::{Worker, WorkerCtx, WorkerSpec};
use tomte::{Daemon, Fault, Method, Type, Value};

#[derive(Default)]
struct Hand {
    answered: u64,
    kept: Vec<Vec<u8>>,
}

impl Worker for Hand {
    fn r#loop(&mut self, _ctx: &mut WorkerCtx) {}

    fn on_message(&mut self, request: Value, ctx: &mut WorkerCtx) -> Result<Value, Fault> {
        let (what, n) = match &request {
            Value::Array(items) if items.len() == 2 => (items[0].as_str(), items[1].as_i64().unwrap_or(0)),
            _ => (None, 0),
        };
        self.answered += 1;
        match what {
            Some("echo") => match request {
                Value::Array(mut items) => Ok(items.pop().unwrap_or(Value::Nil)),
                _ => unreachable!("matched as an array of two"),
            },
            Some("work") => {
                std::thread::sleep(Duration::from_millis(n.clamp(0, 60_000) as u64));
                Ok(Value::structure([
                    ("worker", Value::from(ctx.name())),
                    ("pid", Value::from(std::process::id())),
                    ("n", Value::from(self.answered)),
                ]))
            }
            Some("hang") => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            Some("grow") => {
                let mib = n.clamp(0, 256) as usize;
                // Touched, so the pages are resident.
                self.kept.push(vec![1u8; mib << 20]);
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let kb = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
                    .unwrap_or(0);
                Ok(Value::Int(kb))
            }
            _ => Err(Fault::invalid_params(format!("unknown request {request:?}"))),
        }
    }
}

/// What a method asks of an instance: `[WHAT, ARG]`, as `Hand::on_message` reads it.
fn order(what: &str, arg: impl Into<Value>) -> Value {
    Value::Array(vec![what.into(), arg.into()])
}

fn env(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a whole number"),
    }
}

#[derive(Deserialize)]
struct Ms {
    ms: i64,
}

#[derive(Deserialize)]
struct Mib {
    mib: i64,
}

fn main() {
    let mut spec = WorkerSpec::new("crew", Duration::from_millis(200), Hand::default)
        .instances(env("CREW_INSTANCES").unwrap_or(4) as usize)
        .backoff(Duration::from_millis(50), Duration::from_millis(500), Duration::from_secs(10))
        .crash_limit(1000, Duration::from_secs(60));
    if let Some(n) = env("CREW_MAX_IN_FLIGHT") {
        spec = spec.max_in_flight(n as usize);
    }
    if let Some(n) = env("CREW_QUEUE") {
        spec = spec.queue_limit(n as usize);
    }
    if let Some(ms) = env("CREW_ASK_TIMEOUT_MS") {
        spec = spec.ask_timeout(Some(Duration::from_millis(ms)));
    }
    if let Some(ms) = env("CREW_HANG_TIMEOUT_MS") {
        spec = spec.hang_timeout(Some(Duration::from_millis(ms)));
    }
    if let Some(n) = env("CREW_MAX_REQUESTS") {
        spec = spec.max_requests(Some(n));
    }
    if let Some(mb) = env("CREW_MAX_MEMORY_MB") {
        spec = spec.max_memory(Some(mb << 20));
    }
    if let Ok(bounds) = std::env::var("CREW_AUTOSCALE") {
        let (min, max) = bounds.split_once('-').expect("CREW_AUTOSCALE=MIN-MAX");
        spec = spec.autoscale(min.parse().expect("a number"), max.parse().expect("a number"));
    }
    let mut daemon = Daemon::new("crew");
    daemon.worker(spec);
    daemon.worker(WorkerSpec::new("solo", Duration::from_millis(200), Hand::default));
    daemon
        .method(
            Method::typed_async("crew.work", |Ms { ms }, ctx| ctx.ask("crew", order("work", ms)))
                .description("An instance sleeps MS, then answers {worker, pid, n}")
                .returns(Type::Struct),
        )
        .method(
            Method::typed_async("crew.solo", |Ms { ms }, ctx| ctx.ask("solo", order("work", ms)))
                .description("Worker solo (not a pool) sleeps MS, then answers {worker, pid, n}")
                .returns(Type::Struct),
        )
        .method(
            Method::new_async("crew.hang", |_, ctx| ctx.ask("crew", order("hang", 0)))
                .description("An instance never answers")
                .returns(Type::Nil),
        )
        .method(
            Method::new_async("crew.echo", |mut p, ctx| {
                let value: Value = p.take("value").unwrap_or(Value::Nil);
                ctx.ask("crew", order("echo", value))
            })
            .description("An instance sends VALUE back")
            .returns(Type::Any)
            .param(Type::Any, "value"),
        )
        .method(
            Method::typed_async("crew.grow", |Mib { mib }, ctx| ctx.ask("crew", order("grow", mib)))
                .description("An instance keeps MIB more MiB and answers its VmRSS in KiB")
                .returns(Type::Int),
        );
    std::process::exit(tomte::cli::main(daemon));
}
