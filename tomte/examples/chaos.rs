//! Workers that misbehave, for the supervision tests (and for trying the supervisor by hand):
//!
//! * `steady` counts, and answers `count`, `die` (says so on stderr without a newline, then
//!   exits 9 before answering), `panic`, `slow`
//!   (answers after 4 s), `whoami` (reads its name from a file its factory opened);
//! * `panicky` panics in its third iteration, and is restarted;
//! * `crasher` panics in spinup every time: its crash loop ends in state `failed`;
//! * `sleeper` hangs in its second iteration: the hang timeout (1 s) kills and restarts it;
//! * `flood`, only with `CHAOS_FLOOD=1`, prints lines on its stdout as fast as it can.
//!
//! `chaos.ask NAME REQUEST` sends REQUEST (a string) to worker NAME and returns its answer.
//!
//! And the daemon's own code misbehaving, for the containment tests: `chaos.sleep MS` answers
//! `"slept"` after MS milliseconds (a future waiting on a timer), `chaos.panic_later` answers
//! from a future that panics, `chaos.emit NAME` emits event NAME (`chaos.boom` has a listener
//! that panics), `chaos.arm_timer` makes the next tick of a 50 ms timer panic.

use std::time::Duration;

use tomte::worker::{Policy, Worker, WorkerCtx, WorkerSpec};
use tomte::{Ctx, Daemon, Event, Fault, Method, Type, Value};

/// The daemon's state: whether the timer should panic at its next tick, and how often it ran.
#[derive(Default)]
struct Armed {
    armed: bool,
    ticks: u64,
}

#[derive(Default)]
struct Chaos {
    panic_at: Option<u64>,
    hang_at: Option<u64>,
    crash_in_spinup: bool,
    /// Opened by the factory, which runs in the worker's process.
    comm: Option<std::fs::File>,
    flood: bool,
}

impl Worker for Chaos {
    fn spinup(&mut self, ctx: &mut WorkerCtx) {
        if self.crash_in_spinup {
            panic!("{} cannot start", ctx.name());
        }
    }
    fn r#loop(&mut self, ctx: &mut WorkerCtx) {
        let n = ctx.iterations() + 1;
        if self.panic_at == Some(n) {
            log::warn!(iteration = n; "panicking on purpose");
            panic!("boom at iteration {n}");
        }
        if self.hang_at == Some(n) {
            std::thread::sleep(Duration::from_secs(3600));
        }
        if self.flood {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for i in 0..10_000 {
                let _ = writeln!(out, "flood {n}.{i}: a line the daemon may drop");
            }
        }
    }
    fn on_message(&mut self, request: Value, ctx: &mut WorkerCtx) -> Result<Value, Fault> {
        match request.as_str() {
            Some("count") => Ok(Value::from(ctx.iterations())),
            Some("die") => {
                eprint!("{} dies mid-line", ctx.name());
                std::process::exit(9)
            }
            Some("slow") => {
                std::thread::sleep(Duration::from_secs(4));
                Ok(Value::from("slept"))
            }
            Some("whoami") => {
                use std::io::{Read, Seek};
                let mut name = String::new();
                let file = self.comm.as_mut().ok_or_else(|| Fault::internal("no file"))?;
                file.rewind()
                    .and_then(|_| file.read_to_string(&mut name))
                    .map_err(|e| Fault::internal(e.to_string()))?;
                Ok(Value::from(name.trim()))
            }
            Some("panic") => panic!("asked to panic"),
            _ => Err(Fault::invalid_params(format!("unknown request {request:?}"))),
        }
    }
}

fn main() {
    let mut d = Daemon::with_state("chaos", Armed::default());
    let fast = Duration::from_millis(50);
    d.worker(WorkerSpec::new("steady", fast, || Chaos {
        comm: std::fs::File::open("/proc/self/comm").ok(),
        ..Chaos::default()
    }))
    .worker(
        WorkerSpec::new("panicky", fast, || Chaos { panic_at: Some(3), ..Chaos::default() })
            .backoff(Duration::from_millis(50), Duration::from_millis(200), Duration::from_secs(10))
            .crash_limit(1000, Duration::from_secs(60)),
    )
    .worker(
        WorkerSpec::new("crasher", fast, || Chaos { crash_in_spinup: true, ..Chaos::default() })
            .backoff(Duration::from_millis(10), Duration::from_millis(40), Duration::from_secs(10))
            .crash_limit(3, Duration::from_secs(60)),
    )
    .worker(
        WorkerSpec::new("sleeper", fast, || Chaos { hang_at: Some(2), ..Chaos::default() })
            .policy(Policy::OnFailure)
            .hang_timeout(Some(Duration::from_secs(1)))
            .backoff(Duration::from_millis(500), Duration::from_secs(5), Duration::from_secs(10)),
    );
    if std::env::var_os("CHAOS_FLOOD").is_some_and(|v| v == "1") {
        d.worker(WorkerSpec::new("flood", Duration::from_millis(1), || Chaos { flood: true, ..Chaos::default() }));
    }
    d.method(
        Method::new_async("chaos.ask", |p, ctx| {
            let asked = p.get::<String>("name").and_then(|name| Ok(ctx.ask(&name, p.get::<String>("request")?)));
            async move { asked?.await }
        })
        .description("Sends REQUEST to worker NAME; answers with its answer")
        .returns(Type::Any)
        .param(Type::String, "name")
        .param(Type::String, "request"),
    );
    d.method(
        Method::new_async("chaos.sleep", |p, ctx| {
            let ms = p.get::<u64>("ms");
            let nap = ms.as_ref().map(|&ms| ctx.sleep(Duration::from_millis(ms))).ok();
            async move {
                if let Some(nap) = nap {
                    nap.await;
                }
                ms.map(|_| Value::from("slept"))
            }
        })
        .description("Answers \"slept\" after MS milliseconds")
        .returns(Type::String)
        .param(Type::Int, "ms"),
    )
    .method(
        Method::new_async("chaos.panic_later", |_, ctx| {
            let nap = ctx.sleep(Duration::from_millis(20));
            async move {
                nap.await;
                panic!("a future gave up");
            }
        })
        .description("Answers from a future that panics"),
    )
    .method(
        Method::new("chaos.emit", |p, ctx: &mut Ctx<Armed>| {
            ctx.emit(p.get::<String>("name")?, Value::Nil);
            Ok(Value::Bool(true))
        })
        .description("Emits event NAME")
        .returns(Type::Boolean)
        .param(Type::String, "name"),
    )
    .method(
        Method::new("chaos.arm_timer", |_, ctx: &mut Ctx<Armed>| {
            ctx.state().armed = true;
            Ok(Value::from(ctx.state().ticks))
        })
        .description("Makes the next tick of the 50 ms timer panic; answers the ticks so far")
        .returns(Type::Int),
    )
    .on("chaos.boom", |_: &Event, _: &mut Ctx<Armed>| panic!("a listener gave up"))
    .every(Duration::from_millis(50), |ctx: &mut Ctx<Armed>| {
        let state = ctx.state();
        state.ticks += 1;
        if std::mem::take(&mut state.armed) {
            panic!("a timer gave up");
        }
    });
    std::process::exit(tomte::cli::main(d));
}
