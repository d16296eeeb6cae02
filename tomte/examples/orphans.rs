//! A daemon whose worker leaves orphans behind, to watch the reaper (and for the container
//! tests).
//!
//! * `orphans.leave(seconds: int) -> int` asks worker `parent` to run `sh -c 'sleep SECONDS &'`:
//!   the shell exits at once and its `sleep` is orphaned. The answer is the sleep's pid.
//!
//! The daemon has a worker, so it is a child subreaper: the orphan is reparented to it (as a
//! container's PID 1 it would be anyway) and, when the sleep ends, reaped: `-v` logs
//! `reaped orphan pid N: exited 0`, and no zombie is left.
//!
//! ```text
//! cargo run --example orphans -- run -v --socket unix:///tmp/orphans.sock
//! tomtectl --socket unix:///tmp/orphans.sock call orphans.leave seconds=1
//! ```

use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tomte::worker::{Worker, WorkerCtx, WorkerSpec};
use tomte::{Daemon, Fault, Method, Type, Value};

/// Leaves orphans on request.
struct Parent;

impl Worker for Parent {
    fn r#loop(&mut self, _ctx: &mut WorkerCtx) {}
    fn on_message(&mut self, request: Value, _ctx: &mut WorkerCtx) -> Result<Value, Fault> {
        let seconds = request.as_i64().ok_or_else(|| Fault::invalid_params("expected a number of seconds"))?;
        // The shell prints its background job's pid and exits; the sleep keeps no descriptor
        // of ours, so `output` returns at once.
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("sleep {seconds} </dev/null >/dev/null 2>&1 & echo $!"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Fault::internal(format!("cannot run sh: {e}")))?;
        let pid = String::from_utf8_lossy(&out.stdout).trim().parse::<i64>();
        pid.map(Value::from).map_err(|_| Fault::internal("sh printed no pid"))
    }
}

/// The parameters of `orphans.leave`.
#[derive(Deserialize)]
struct Leave {
    seconds: u32,
}

fn main() {
    let mut daemon = Daemon::new("orphans");
    daemon.worker(WorkerSpec::new("parent", Duration::from_millis(100), || Parent)).method(
        Method::typed_async("orphans.leave", |Leave { seconds }, ctx| ctx.ask("parent", i64::from(seconds)))
            .description("Leaves an orphan that sleeps SECONDS; answers its pid")
            .returns(Type::Int),
    );
    std::process::exit(tomte::cli::main(daemon));
}
