//! A daemon that stays root with one worker, `low`, that does not: it runs as `nobody`, with
//! niceness 5 and at most 256 open files, set in its process before the worker is built.
//!
//! * `privdrop.whoami() -> struct`: the worker's own uid, gid, niceness and open-files limit,
//!   asked to the worker (so they are the worker process's, not the daemon's).
//!
//! ```text
//! sudo cargo run --example privdrop -- start --log /tmp/privdrop.log
//! sudo tomtectl --socket unix:///run/privdrop.sock call privdrop.whoami
//! grep -E '^(Uid|Gid)' /proc/$(pgrep -x low)/status
//! ```
//!
//! `PRIVDROP_WORKER_USER=NAME` runs the worker as NAME instead: an unknown user makes the worker exit
//! with code 77 and a log line, rather than run as root.

use std::time::Duration;

use tomte::worker::{Worker, WorkerCtx, WorkerSpec};
use tomte::{Daemon, Fault, Method, Type, Value};

struct Low;

impl Worker for Low {
    fn r#loop(&mut self, _ctx: &mut WorkerCtx) {}

    fn on_message(&mut self, request: Value, _ctx: &mut WorkerCtx) -> Result<Value, Fault> {
        if request.as_str() != Some("whoami") {
            return Err(Fault::invalid_params(format!("unknown request {request:?}")));
        }
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        Ok(Value::structure([
            ("uid", Value::from(rustix::process::geteuid().as_raw())),
            ("gid", Value::from(rustix::process::getegid().as_raw())),
            ("nice", Value::from(rustix::process::getpriority_process(None).unwrap_or(i32::MIN))),
            ("nofile", Value::from(nofile)),
        ]))
    }
}

fn main() {
    let user = std::env::var("PRIVDROP_WORKER_USER").unwrap_or_else(|_| "nobody".to_owned());
    let mut daemon = Daemon::new("privdrop");
    daemon.worker(
        WorkerSpec::new("low", Duration::from_millis(100), || Low).user(&user).nice(5).limit_nofile(256).backoff(
            Duration::from_millis(200),
            Duration::from_secs(2),
            Duration::from_secs(10),
        ),
    );
    daemon.method(
        Method::new_async("privdrop.whoami", |_, ctx| ctx.ask("low", "whoami"))
            .description("The worker's uid, gid, niceness and soft open-files limit, as the worker sees them")
            .returns(Type::Struct),
    );
    std::process::exit(tomte::cli::main(daemon));
}
