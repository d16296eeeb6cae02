//! The built-in methods, with comodojo's names and shapes: `daemon.shutdown`, `worker.*`
//! (registered even before any worker exists), plus `daemon.status` and `daemon.reload`.
//!
//! What they require: `daemon.status`, `worker.list` and `worker.status` `read`;
//! `daemon.shutdown`, `daemon.reload`, `daemon.upgrade`, `daemon.loglevel` and
//! `worker.{pause,resume,start,stop,restart}` `control`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use tomte_rpc::{Fault, Method, Permission, Registry, Type, Value};

use super::Ctx;

/// Runs `f` on the named worker (a bool back), or on every worker (a name → bool struct).
fn each_worker<S>(
    p: &tomte_rpc::Params<'_>,
    ctx: &mut Ctx<S>,
    f: fn(&mut crate::worker::supervisor::Supervisor, &str) -> Result<bool, Fault>,
) -> Result<Value, Fault> {
    match p.value("name") {
        Some(_) => f(&mut ctx.workers, &p.get::<String>("name")?).map(Value::Bool),
        None => {
            let mut all = Vec::new();
            for name in ctx.workers.names() {
                let done = f(&mut ctx.workers, &name).unwrap_or(false);
                all.push((name, Value::Bool(done)));
            }
            Ok(Value::Struct(all))
        }
    }
}

use crate::faults::AUTH_FAILED;

pub(super) fn install<S: 'static>(r: &mut Registry<Ctx<S>>) {
    let methods = [
        Method::new("daemon.shutdown", |_, ctx: &mut Ctx<S>| {
            ctx.stop();
            Ok(Value::Int(0))
        })
        .description("Stop daemon closing workers")
        .returns(Type::Int)
        .requires(Permission::Control),
        Method::new("worker.list", |_, ctx: &mut Ctx<S>| ctx.workers.list())
        .description(
            "The installed workers: name, pid, state, interval_ms, policy, restarts, iterations, last_exit, uptime, \
             asks (answered), in_flight; a pool as one entry with pool: true, size, queued, min, max, the sums of \
             its instances and the instances themselves",
        )
        .returns(Type::Array)
        .requires(Permission::Read),
        Method::new("worker.status", |p, ctx: &mut Ctx<S>| match p.value("name") {
            Some(_) => Ok(Value::from(ctx.workers.state_of(&p.get::<String>("name")?)?.as_str())),
            None => {
                let names = ctx.workers.names();
                let mut all = Vec::new();
                for n in names {
                    let state = ctx.workers.info(&n)?.state.as_str();
                    all.push((n, Value::from(state)));
                }
                Ok(Value::Struct(all))
            }
        })
        .description("The state of one worker, instance or pool (its liveliest instance's), or of every worker by name")
        .returns(Type::Struct)
        .signature()
        .returns(Type::String)
        .param(Type::String, "name")
        .requires(Permission::Read),
        worker_command("worker.pause", "Pause a worker's loop, or every worker's", |w, n| w.command(n, "pause")),
        worker_command("worker.resume", "Resume a paused worker, or every worker", |w, n| w.command(n, "resume")),
        worker_command("worker.start", "Start a stopped or failed worker, or every worker", |w, n| w.start(n)),
        worker_command("worker.stop", "Stop a worker (it is not restarted), or every worker", |w, n| w.stop(n, false)),
        worker_restart(),
        Method::new("worker.scale", |p, ctx: &mut Ctx<S>| {
            let name: String = p.get("name")?;
            let n: i64 = p.get("instances")?;
            let n = usize::try_from(n)
                .map_err(|_| Fault::invalid_params(format!("parameter 'instances': {n} is not a number of instances")))?;
            let (from, to) = ctx.workers.scale(&name, n)?;
            Ok(Value::structure([("name", Value::from(name)), ("from", Value::from(from)), ("to", Value::from(to))]))
        })
        .description(
            "Grow or shrink pool NAME to INSTANCES workers: new ones start at once; idle ones stop first, busy ones \
             answer what they hold before they stop. Answers {name, from, to}",
        )
        .returns(Type::Struct)
        .param(Type::String, "name")
        .param(Type::Int, "instances")
        .requires(Permission::Control),
        Method::new("daemon.status", |_, ctx: &mut Ctx<S>| {
            let [user, group, rlimits] = crate::process::privileges::status();
            Ok(Value::structure([
                ("name", Value::from(ctx.name())),
                ("pid", Value::from(std::process::id())),
                ("uptime", Value::Double((ctx.uptime().as_secs_f64() * 1000.0).round() / 1000.0)),
                ("version", Value::from(ctx.version())),
                ("connections", Value::from(ctx.connections())),
                ("calls", Value::Int(i64::try_from(ctx.calls.total()).unwrap_or(i64::MAX))),
                ("workers", Value::from(ctx.workers.len())),
                ("tasks", Value::from(ctx.tasks())),
                ("limits", ctx.limits().to_value()),
                ("you", you(ctx)),
                user,
                group,
                rlimits,
            ]))
        })
        .description(
            "The daemon's pid, uptime in seconds, version, open connections, calls served, workers and limits, and \
             who you are to it: your identity and your grants; the user, group and rlimits it runs with",
        )
        .returns(Type::Struct)
        .requires(Permission::Read),
        Method::new_async("daemon.reload", |_, ctx: &mut Ctx<S>| {
            ctx.reload();
            let wait = ReloadWait::default();
            ctx.reload_waits.push(wait.clone());
            wait
        })
        .description(
            "Read the configuration file again and apply it, reopen the log, emit daemon.reload, as SIGHUP \
             does. Answers {file, applied: [keys], restart_needed: [keys]}, or fault -32020 (the data names \
             file:line) when the file is refused: then nothing changed",
        )
        .returns(Type::Struct)
        .requires(Permission::Control),
        Method::new_async("daemon.upgrade", |p, ctx: &mut Ctx<S>| {
            let binary = p.value("binary").map(|_| p.get::<String>("binary")).transpose();
            let wait = ReloadWait::default();
            match binary {
                Ok(binary) => {
                    let binary = binary.map(std::path::PathBuf::from);
                    ctx.upgrade(binary.clone());
                    ctx.upgrade_waits.push((binary, wait.clone()));
                }
                Err(fault) => wait.deliver(Err(fault)),
            }
            wait
        })
        .description(
            "Replace this daemon by a new process of its binary (or of binary, an absolute path), as SIGUSR2 \
             does: it takes over the listening sockets and the pid file; once it is ready this daemon finishes \
             what it started and exits. Answers {old_pid, new_pid, binary, ms} once the new process serves, or \
             fault -32021 with the new process's own error: then nothing changed",
        )
        .returns(Type::Struct)
        .signature()
        .returns(Type::Struct)
        .param(Type::String, "binary")
        .requires(Permission::Control),
        Method::new("daemon.loglevel", |p, ctx: &mut Ctx<S>| {
            let current = crate::logging::level();
            if p.value("level").is_none() {
                return Ok(Value::from(crate::logging::level_name(current)));
            }
            let name: String = p.get("level")?;
            let level = crate::logging::parse_level(&name).ok_or_else(|| {
                Fault::invalid_params(format!("no log level '{name}': error, warn, info, debug or trace"))
            })?;
            let said = || {
                let (new, old) = (crate::logging::level_name(level), crate::logging::level_name(current));
                log::info!("log level {new} (was {old})");
            };
            // Said at whichever of the two levels is the more verbose.
            if level < current {
                said();
            }
            crate::logging::set_level(level);
            if level > current {
                said();
            }
            ctx.workers.set_log_level(level);
            Ok(Value::from(crate::logging::level_name(current)))
        })
        .description(
            "The log level (error, warn, info, debug or trace); with LEVEL, sets it, for the daemon and its \
             workers, and answers the previous one",
        )
        .returns(Type::String)
        .signature()
        .returns(Type::String)
        .param(Type::String, "level")
        .requires(Permission::Control),
        Method::new("daemon.health", |_, ctx: &mut Ctx<S>| Ok(super::observe::health(ctx)))
            .description(
                "Whether the daemon is live and ready, and each check: {status: ok|fail, live, ready, \
                 checks: [{name, ok, detail}]} (started, not stopping, every worker with policy always \
                 looping or paused, the application's own checks); GET /readyz says the same",
            )
            .returns(Type::Struct)
            .requires(Permission::Read),
        Method::new("daemon.subscribe", |p, ctx: &mut Ctx<S>| {
            if !ctx.pushable {
                return Err(Fault::invalid_request(
                    "daemon.subscribe needs a connection the daemon can push on (NDJSON: one JSON-RPC message \
                     per line); over HTTP, GET /events?pattern=... streams the same events",
                ));
            }
            let texts: Vec<String> = p.get("patterns")?;
            let patterns = super::observe::Pattern::parse_all(texts.iter().map(String::as_str))
                .map_err(|why| Fault::invalid_params(format!("parameter 'patterns': {why}")))?;
            let logs = super::observe::log_access(&patterns, ctx.caller.as_deref())
                .map_err(|why| Fault::new(crate::faults::PERMISSION_DENIED, "Permission denied").with_data(why))?;
            let names = patterns.iter().map(|p| Value::from(p.to_string())).collect();
            ctx.sub_request = Some(super::observe::SubRequest::Subscribe { patterns, sse: false, logs });
            Ok(Value::structure([("subscribed", Value::Array(names))]))
        })
        .description(
            "Push every event whose name matches one of the patterns (a name, or a prefix ending in *: \
             daemon.worker.*, app.*, *) on this connection, as notifications {method: daemon.event, params: \
             {name, data, time}}, until daemon.unsubscribe or hang-up. daemon.log events need the control \
             permission. A subscriber that leaves more than 1 MiB of events unread gets a daemon.dropped \
             notification and is closed",
        )
        .returns(Type::Struct)
        .param(Type::Array, "patterns")
        .requires(Permission::Read),
        Method::new("daemon.unsubscribe", |_, ctx: &mut Ctx<S>| {
            ctx.sub_request = Some(super::observe::SubRequest::Unsubscribe);
            Ok(Value::structure([("subscribed", Value::Array(Vec::new()))]))
        })
        .description("Stop the events daemon.subscribe pushes on this connection")
        .returns(Type::Struct)
        .requires(Permission::Read),
        Method::new("daemon.auth", |mut p, ctx: &mut Ctx<S>| {
            let token: String = p.take("token")?;
            if ctx.authenticate(token.as_bytes()) {
                Ok(Value::Bool(true))
            } else {
                Err(Fault::new(AUTH_FAILED, "Authentication failed")
                    .with_data("no such token (the connection is closed)".to_owned()))
            }
        })
        .description("Present a token (--token-file) for this connection: its identity becomes the token's")
        .returns(Type::Boolean)
        .param(Type::String, "token")
        .requires(Permission::custom(crate::access::AUTH)),
    ];
    for m in methods {
        r.add(m).expect("built-in names are distinct");
    }
}

/// The answer a `daemon.reload` call waits for: the loop reloads at the end of its turn and
/// hands every waiting call the report, or the reason it refused.
#[derive(Clone, Default)]
pub(crate) struct ReloadWait(Rc<RefCell<Slot>>);

/// The answer once there is one, and who to wake then.
#[derive(Default)]
struct Slot {
    answer: Option<Result<Value, Fault>>,
    waker: Option<Waker>,
}

impl ReloadWait {
    pub(crate) fn deliver(&self, answer: Result<Value, Fault>) {
        let mut slot = self.0.borrow_mut();
        slot.answer = Some(answer);
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }
}

impl Future for ReloadWait {
    type Output = Result<Value, Fault>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.0.borrow_mut();
        match slot.answer.take() {
            Some(answer) => Poll::Ready(answer),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A worker command method: with a name, one worker (a bool); without, all of them (a struct).
fn worker_command<S: 'static>(
    name: &str,
    help: &str,
    f: fn(&mut crate::worker::supervisor::Supervisor, &str) -> Result<bool, Fault>,
) -> Method<Ctx<S>> {
    Method::new(name, move |p, ctx: &mut Ctx<S>| each_worker(&p, ctx, f))
        .description(help)
        .returns(Type::Struct)
        .signature()
        .returns(Type::Boolean)
        .param(Type::String, "name")
        .requires(Permission::Control)
}

/// `worker.restart`: one worker (a bool), every worker or an array of names (a struct name →
/// bool); with `rolling: true`, through the supervisor's rolling queue, one at a time.
fn worker_restart<S: 'static>() -> Method<Ctx<S>> {
    Method::new("worker.restart", |p, ctx: &mut Ctx<S>| {
        let rolling = p.value("rolling").map(|_| p.get::<bool>("rolling")).transpose()?.unwrap_or(false);
        let f: fn(&mut crate::worker::supervisor::Supervisor, &str) -> Result<bool, Fault> =
            if rolling { |w, n| w.restart_rolling(n) } else { |w, n| w.stop(n, true) };
        match p.value("name") {
            Some(Value::Array(_)) => {
                let names: Vec<String> = p.get("name")?;
                let known = ctx.workers.names();
                let pools = ctx.workers.pools();
                // Every name checked before any worker is touched.
                if let Some(unknown) = names.iter().find(|n| !known.contains(n) && !pools.contains(n)) {
                    return Err(crate::faults::unknown_worker(unknown));
                }
                let mut all = Vec::new();
                for name in names {
                    if all.iter().any(|(n, _)| *n == name) {
                        continue;
                    }
                    let done = f(&mut ctx.workers, &name).unwrap_or(false);
                    all.push((name, Value::Bool(done)));
                }
                Ok(Value::Struct(all))
            }
            _ => each_worker(&p, ctx, f),
        }
    })
    .description(
        "Restart a worker, the workers named in an array, or every worker (a bool for one name, else a struct \
         name -> bool). With rolling: true they are replaced one at a time, each new one looping before the \
         next old one is stopped; the answer comes at once, progress as daemon.worker.state events. A worker \
         that does not come back (failed, or not looping within its hang timeout, 30 s at most) is logged and \
         the next one goes on",
    )
    .returns(Type::Struct)
    .signature()
    .returns(Type::Boolean)
    .param(Type::String, "name")
    .signature()
    .returns(Type::Struct)
    .param(Type::Array, "name")
    .signature()
    .returns(Type::Boolean)
    .param(Type::String, "name")
    .param(Type::Boolean, "rolling")
    .signature()
    .returns(Type::Struct)
    .param(Type::Array, "name")
    .param(Type::Boolean, "rolling")
    .signature()
    .returns(Type::Struct)
    .param(Type::Boolean, "rolling")
    .requires(Permission::Control)
}

/// The caller as `daemon.status` shows it: its identity and its grants.
fn you<S>(ctx: &Ctx<S>) -> Value {
    let Some(peer) = ctx.peer() else { return Value::Nil };
    let mut v = match peer.to_value() {
        Value::Struct(members) => members,
        other => vec![("peer".to_owned(), other)],
    };
    let grants = ctx.grants().map(|g| g.names()).unwrap_or_default();
    v.push(("grants".to_owned(), Value::Array(grants.into_iter().map(Value::from).collect())));
    Value::Struct(v)
}
