//! The built-in methods, with comodojo's names and shapes: `daemon.shutdown`, `worker.*`
//! (registered even before any worker exists), plus `daemon.status` and `daemon.reload`.

use tomte_rpc::{Fault, Method, Registry, Type, Value};

use super::Ctx;

fn unknown_worker(name: &str) -> Fault {
    Fault::internal(format!("unknown worker '{name}'"))
}

pub(super) fn install(r: &mut Registry<Ctx>) {
    let methods = [
        Method::new("daemon.shutdown", |_, ctx: &mut Ctx| {
            ctx.stop();
            Ok(Value::Int(0))
        })
        .description("Stop daemon closing workers")
        .returns(Type::Int),
        Method::new("worker.list", |_, _: &mut Ctx| Ok(Value::Array(Vec::new())))
            .description("List the installed workers")
            .returns(Type::Array),
        Method::new("worker.status", |p, _: &mut Ctx| match p.value("name") {
            None => Ok(Value::Struct(Vec::new())),
            Some(_) => Err(unknown_worker(&p.get::<String>("name")?)),
        })
        .description("The state of one worker, or of every worker by name")
        .returns(Type::Struct)
        .signature()
        .returns(Type::String)
        .param(Type::String, "name"),
        worker_command("worker.pause", "Pause a worker's loop, or every worker's"),
        worker_command("worker.resume", "Resume a paused worker, or every worker"),
        worker_command("worker.start", "Start a stopped worker, or every worker"),
        worker_command("worker.stop", "Stop a worker, or every worker"),
        worker_command("worker.restart", "Restart a worker, or every worker"),
        Method::new("daemon.status", |_, ctx: &mut Ctx| {
            Ok(Value::structure([
                ("name", Value::from(ctx.name())),
                ("pid", Value::from(std::process::id())),
                ("uptime", Value::Double((ctx.uptime().as_secs_f64() * 1000.0).round() / 1000.0)),
                ("version", Value::from(ctx.version())),
                ("connections", Value::from(ctx.connections())),
                ("workers", Value::Int(0)),
            ]))
        })
        .description("The daemon's pid, uptime in seconds, version, open connections and workers")
        .returns(Type::Struct),
        Method::new("daemon.reload", |_, ctx: &mut Ctx| {
            ctx.reload();
            Ok(Value::Bool(true))
        })
        .description("Reopen the log and emit daemon.reload, as SIGHUP does")
        .returns(Type::Boolean),
    ];
    for m in methods {
        r.add(m).expect("built-in names are distinct");
    }
}

/// A worker command method: with a name, one worker (a bool); without, all of them (a struct).
fn worker_command(name: &str, help: &str) -> Method<Ctx> {
    Method::new(name, |p, _: &mut Ctx| match p.value("name") {
        None => Ok(Value::Struct(Vec::new())),
        Some(_) => Err(unknown_worker(&p.get::<String>("name")?)),
    })
    .description(help)
    .returns(Type::Struct)
    .signature()
    .returns(Type::Boolean)
    .param(Type::String, "name")
}
