//! supervisord's XML-RPC interface (API 3.0): the `supervisor.*` methods supervisorctl calls,
//! over the daemon's workers, so that `supervisorctl -s unix:///path/to/daemon.sock status`
//! drives them unchanged. Opt-in: `--supervisor-api`, or [`Daemon::supervisor_api`] in code.
//!
//! Each method keeps supervisord's name, parameters, answer fields, process state codes and
//! fault codes (supervisor/rpcinterface.py, states.py, xmlrpc.py), so supervisorctl prints its
//! usual lines (`alpha: stopped`, `nosuch: ERROR (no such process)`). The mapping:
//!
//! * names: a plain worker NAME is group NAME, process NAME (supervisorctl shows `NAME`); an
//!   instance `hasher.2` of pool `hasher` is group `hasher`, process `hasher.2` (shown
//!   `hasher:hasher.2`; `hasher:*` is the whole pool). Also accepted, where supervisord would say
//!   BAD_NAME: `hasher.2` alone, and `hasher` alone for the whole pool.
//! * states: spinup → STARTING, looping and paused → RUNNING, spindown → STOPPING, backoff →
//!   BACKOFF, failed → FATAL; exited → STOPPED when it was stopped through this interface or
//!   its policy is `always` (only a stop leaves such a worker down), EXITED otherwise.
//! * `startProcess(name, wait)` answers once the worker loops (past its spinup), or
//!   ABNORMAL_TERMINATION if its process ends first; `stopProcess(name, wait)` once its process
//!   has ended (supervisorctl's `restart` is a stop then a start). Both wait at most
//!   [`START_WAIT`], or twice the worker's stop grace and [`STOP_MARGIN`], then answer FAILED.
//! * logs: `readLog` reads the daemon's log file (`--log`); a worker's output is logged there,
//!   line by line, so `readProcessStdoutLog`, `readProcessStderrLog`, `tailProcessStdoutLog`
//!   and `tailProcessStderrLog` answer NO_FILE (supervisorctl: `NAME: ERROR (no log file)`).
//!
//! What the methods require: the answers about the daemon and its workers `read`; starting,
//! stopping, signalling, shutting down, and reading the log (as `daemon.log` events) `control`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tomte_rpc::{Fault, Method, Params, Permission, Type, Value};

use super::{Config, Ctx, Daemon};
use crate::event::Event;
use crate::worker::supervisor::{Policy, State, Supervisor, WorkerInfo};

/// The API version supervisorctl checks (`supervisor.getVersion`) before anything else.
const API_VERSION: &str = "3.0";

/// How long `startProcess` waits, at most, for a worker to loop.
pub(crate) const START_WAIT: Duration = Duration::from_secs(30);

/// What `stopProcess` waits beyond twice the worker's stop grace (stop command, grace, SIGTERM,
/// grace, SIGKILL) for its process to be reaped.
pub(crate) const STOP_MARGIN: Duration = Duration::from_secs(5);

/// supervisord's fault codes (supervisor/xmlrpc.py, `Faults`): the whole table, as clients
/// match on it, though some name what tomte never does (a missing executable, say).
#[allow(dead_code)]
pub(crate) mod faults {
    pub const UNKNOWN_METHOD: i32 = 1;
    pub const INCORRECT_PARAMETERS: i32 = 2;
    pub const BAD_ARGUMENTS: i32 = 3;
    pub const SIGNATURE_UNSUPPORTED: i32 = 4;
    pub const SHUTDOWN_STATE: i32 = 6;
    pub const BAD_NAME: i32 = 10;
    pub const BAD_SIGNAL: i32 = 11;
    pub const NO_FILE: i32 = 20;
    pub const NOT_EXECUTABLE: i32 = 21;
    pub const FAILED: i32 = 30;
    pub const ABNORMAL_TERMINATION: i32 = 40;
    pub const SPAWN_ERROR: i32 = 50;
    pub const ALREADY_STARTED: i32 = 60;
    pub const NOT_RUNNING: i32 = 70;
    pub const SUCCESS: i32 = 80;
    pub const ALREADY_ADDED: i32 = 90;
    pub const STILL_RUNNING: i32 = 91;
    pub const CANT_REREAD: i32 = 92;

    /// The code's name, which begins supervisord's fault strings (`BAD_NAME: nosuch`).
    pub fn name(code: i32) -> &'static str {
        match code {
            UNKNOWN_METHOD => "UNKNOWN_METHOD",
            INCORRECT_PARAMETERS => "INCORRECT_PARAMETERS",
            BAD_ARGUMENTS => "BAD_ARGUMENTS",
            SIGNATURE_UNSUPPORTED => "SIGNATURE_UNSUPPORTED",
            SHUTDOWN_STATE => "SHUTDOWN_STATE",
            BAD_NAME => "BAD_NAME",
            BAD_SIGNAL => "BAD_SIGNAL",
            NO_FILE => "NO_FILE",
            NOT_EXECUTABLE => "NOT_EXECUTABLE",
            FAILED => "FAILED",
            ABNORMAL_TERMINATION => "ABNORMAL_TERMINATION",
            SPAWN_ERROR => "SPAWN_ERROR",
            ALREADY_STARTED => "ALREADY_STARTED",
            NOT_RUNNING => "NOT_RUNNING",
            SUCCESS => "SUCCESS",
            ALREADY_ADDED => "ALREADY_ADDED",
            STILL_RUNNING => "STILL_RUNNING",
            CANT_REREAD => "CANT_REREAD",
            _ => "UNKNOWN",
        }
    }
}

use faults::*;

/// supervisord's process states (supervisor/states.py, `ProcessStates`); UNKNOWN (1000) is
/// never given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProcessState {
    Stopped = 0,
    Starting = 10,
    Running = 20,
    Backoff = 30,
    Stopping = 40,
    Exited = 100,
    Fatal = 200,
}

impl ProcessState {
    fn name(self) -> &'static str {
        match self {
            ProcessState::Stopped => "STOPPED",
            ProcessState::Starting => "STARTING",
            ProcessState::Running => "RUNNING",
            ProcessState::Backoff => "BACKOFF",
            ProcessState::Stopping => "STOPPING",
            ProcessState::Exited => "EXITED",
            ProcessState::Fatal => "FATAL",
        }
    }

    /// supervisord's RUNNING_STATES: what `start` refuses and `stop` stops.
    fn running(self) -> bool {
        matches!(self, ProcessState::Starting | ProcessState::Running | ProcessState::Backoff)
    }

    /// supervisord's SIGNALLABLE_STATES.
    fn signallable(self) -> bool {
        matches!(self, ProcessState::Starting | ProcessState::Running | ProcessState::Stopping)
    }
}

/// A fault as supervisord words it: `CODE_NAME: extra`.
fn fault(code: i32, extra: &str) -> Fault {
    Fault::new(code, format!("{}: {extra}", faults::name(code)))
}

/// What supervisord's answers say that tomte's supervisor does not keep: when each worker last
/// started and stopped, how it ended, and whether it was stopped through this interface. Kept
/// from `daemon.worker.state` events, and shared by the listener and the methods (a captured
/// cell: the application's state is the one `Ctx` holds, and this is not the application's).
#[derive(Default)]
struct Book {
    workers: HashMap<String, Times>,
}

#[derive(Clone, Copy, Default)]
struct Times {
    /// Unix seconds of its last spinup, 0 if none was seen.
    start: i64,
    /// Unix seconds of its last process's end, 0 if none was seen.
    stop: i64,
    /// The exit code of its last process (−1 when a signal ended it), as supervisord's.
    exitstatus: i64,
    /// Stopped through this interface since its last start: STOPPED rather than EXITED.
    asked_stop: bool,
}

type Shared = Rc<RefCell<Book>>;

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Book {
    /// Takes in one `daemon.worker.state` event.
    fn note(&mut self, ev: &Event) {
        let Some(worker) = ev.data.get("worker").and_then(Value::as_str) else { return };
        let times = self.workers.entry(worker.to_owned()).or_default();
        match ev.data.get("state").and_then(Value::as_str) {
            Some("spinup") => {
                times.start = unix_now();
                times.asked_stop = false;
            }
            Some("exited" | "backoff" | "failed") => {
                times.stop = unix_now();
                let last_exit = ev.data.get("last_exit").and_then(Value::as_str).unwrap_or("");
                times.exitstatus = match last_exit.strip_prefix("exited ") {
                    Some(code) => code.trim().parse().unwrap_or(0),
                    None if last_exit.is_empty() => 0,
                    None => -1,
                };
            }
            _ => {}
        }
    }

    fn times(&self, worker: &str) -> Times {
        self.workers.get(worker).copied().unwrap_or_default()
    }
}

/// The `supervisor.*` methods and the listener that keeps their book (the daemon's run
/// installs them once, when the code's [`Daemon::supervisor_api`] or the flag asks).
pub(super) fn install<S: 'static>(d: &mut Daemon<S>, config: &Config) {
    let book: Shared = Rc::default();
    let b = Rc::clone(&book);
    d.events.on(crate::event::names::WORKER_STATE, 0, false, move |ev: &Event, _: &mut Ctx<S>| b.borrow_mut().note(ev));
    let log = config.log.clone();
    for m in methods(&book, log) {
        d.registry.add(m).expect("the supervisor.* names are distinct");
    }
}

fn methods<S: 'static>(book: &Shared, log: Option<PathBuf>) -> Vec<Method<Ctx<S>>> {
    let read = |name: &str, help: &str, returns: Type, f: fn(&mut Ctx<S>) -> Result<Value, Fault>| {
        Method::new(format!("supervisor.{name}"), move |_, ctx: &mut Ctx<S>| f(ctx))
            .description(help)
            .returns(returns)
            .requires(Permission::Read)
    };
    let b = Rc::clone(book);
    let all_info = Method::new("supervisor.getAllProcessInfo", move |_, ctx: &mut Ctx<S>| {
        let book = b.borrow();
        let all = ctx.workers.names().iter().map(|p| process_info(&ctx.workers, &book, p)).collect();
        Ok(Value::Array(all))
    })
    .description("Every worker and pool instance as supervisord describes a process (see getProcessInfo)")
    .returns(Type::Array)
    .requires(Permission::Read);
    let b = Rc::clone(book);
    let info = Method::new("supervisor.getProcessInfo", move |p, ctx: &mut Ctx<S>| {
        let spec: String = p.get("name")?;
        match lookup(&ctx.workers, &spec)? {
            Found::Process(p) => Ok(process_info(&ctx.workers, &b.borrow(), &p)),
            Found::Group(_) => Err(fault(BAD_NAME, &spec)),
        }
    })
    .description(
        "Worker NAME (or GROUP:NAME) as supervisord describes a process: {name, group, description, start, stop, \
         now, state, statename, spawnerr, exitstatus, logfile, stdout_logfile, stderr_logfile, pid}",
    )
    .returns(Type::Struct)
    .param(Type::String, "name")
    .requires(Permission::Read);

    let mut all = vec![
        read("getAPIVersion", "The version of supervisord's API this interface follows: 3.0", Type::String, |_| {
            Ok(Value::from(API_VERSION))
        }),
        read(
            "getVersion",
            "As getAPIVersion (supervisord's deprecated name, which supervisorctl calls)",
            Type::String,
            |_| Ok(Value::from(API_VERSION)),
        ),
        read("getSupervisorVersion", "The daemon's version (what daemon.status reports)", Type::String, |ctx| {
            Ok(Value::from(ctx.version()))
        }),
        read("getIdentification", "The daemon's name", Type::String, |ctx| Ok(Value::from(ctx.name()))),
        read(
            "getState",
            "The daemon's state as supervisord's: {statecode: 1, statename: RUNNING}, or -1 SHUTDOWN once stopping",
            Type::Struct,
            |ctx| {
                let (code, name) = if ctx.stopping() { (-1, "SHUTDOWN") } else { (1, "RUNNING") };
                Ok(Value::structure([("statecode", Value::Int(code)), ("statename", Value::from(name))]))
            },
        ),
        read("getPID", "The daemon's pid", Type::Int, |_| Ok(Value::from(std::process::id()))),
        read(
            "getAllConfigInfo",
            "Each worker and pool instance as supervisorctl's avail shows it: {name, group, inuse, autostart, \
             group_prio, process_prio, stopwaitsecs}",
            Type::Array,
            |ctx| Ok(config_info(&ctx.workers)),
        ),
        all_info,
        info,
        Method::new("supervisor.shutdown", |_, ctx: &mut Ctx<S>| {
            ctx.stop();
            Ok(Value::Bool(true))
        })
        .description("Stop the daemon, as daemon.shutdown does")
        .returns(Type::Boolean)
        .requires(Permission::Control),
        read_log(log),
    ];
    for (name, channel) in [
        ("readProcessStdoutLog", "stdout"),
        ("readProcessStderrLog", "stderr"),
        ("tailProcessStdoutLog", "stdout"),
        ("tailProcessStderrLog", "stderr"),
    ] {
        all.push(
            Method::new(format!("supervisor.{name}"), move |p, ctx: &mut Ctx<S>| {
                let spec: String = p.get("name")?;
                match lookup(&ctx.workers, &spec)? {
                    Found::Process(p) => Err(fault(
                        NO_FILE,
                        &format!("the {channel} of {p} is logged in the daemon's log, line by line (maintail, tomtectl logs)"),
                    )),
                    Found::Group(_) => Err(fault(BAD_NAME, &spec)),
                }
            })
            .description(format!(
                "NO_FILE for any worker: its {channel} is logged in the daemon's log (supervisor.readLog); BAD_NAME for \
                 an unknown name"
            ))
            .returns(Type::Any)
            .param(Type::String, "name")
            .param(Type::Int, "offset")
            .param(Type::Int, "length")
            .requires(Permission::Read),
        );
    }
    all.extend(actions(book));
    all
}

/// `supervisor.readLog(offset, length)`, supervisord's `readFile` on the daemon's log file.
fn read_log<S: 'static>(log: Option<PathBuf>) -> Method<Ctx<S>> {
    Method::new("supervisor.readLog", move |p, _: &mut Ctx<S>| {
        let offset: i64 = p.get("offset")?;
        let length: i64 = p.get("length")?;
        let Some(path) = log.as_deref() else {
            return Err(fault(NO_FILE, "the daemon logs to stderr or syslog, not to a file (--log PATH)"));
        };
        read_file(path, offset, length).map(|bytes| Value::from(String::from_utf8_lossy(&bytes).into_owned()))
    })
    .description(
        "LENGTH bytes of the daemon's log file from OFFSET; a negative OFFSET with LENGTH 0: the last -OFFSET bytes; \
         LENGTH 0: to the end. NO_FILE when the daemon does not log to a file",
    )
    .returns(Type::String)
    .param(Type::Int, "offset")
    .param(Type::Int, "length")
    .requires(Permission::Control)
}

/// The most `readLog` answers at once: a read of the whole log (length 0) would otherwise load
/// a log of any size into the daemon's memory, three times over (bytes, text, XML), on its
/// only thread. supervisorctl reads in chunks far smaller, and asks again from where it got.
const MAX_READ: u64 = 1 << 20;

/// supervisord's `readFile` (supervisor/options.py), with its faults; at most [`MAX_READ`]
/// bytes.
fn read_file(path: &std::path::Path, offset: i64, length: i64) -> Result<Vec<u8>, Fault> {
    use std::io::{Read, Seek, SeekFrom};
    let failed = |e: std::io::Error| fault(FAILED, &format!("{}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => fault(NO_FILE, &path.display().to_string()),
        _ => failed(e),
    })?;
    let mut data = Vec::new();
    if offset < 0 {
        if length != 0 {
            return Err(fault(BAD_ARGUMENTS, "a negative offset reads the end of the log: its length must be 0"));
        }
        let size = f.seek(SeekFrom::End(0)).map_err(failed)?;
        let back = offset.unsigned_abs();
        f.seek(SeekFrom::Start(size.saturating_sub(back.min(MAX_READ)))).map_err(failed)?;
        f.take(MAX_READ).read_to_end(&mut data).map_err(failed)?;
    } else {
        if length < 0 {
            return Err(fault(BAD_ARGUMENTS, "a negative length"));
        }
        f.seek(SeekFrom::Start(offset.unsigned_abs())).map_err(failed)?;
        let length = match length {
            0 => MAX_READ,
            n => n.unsigned_abs().min(MAX_READ),
        };
        f.take(length).read_to_end(&mut data).map_err(failed)?;
    }
    Ok(data)
}

// ---- Names ----

/// What a supervisord name (`NAME`, `GROUP:NAME`, `GROUP:*`) names.
enum Found {
    /// One worker or instance.
    Process(String),
    /// A group's processes: a plain worker's, or a pool's instances.
    Group(Vec<String>),
}

/// The group of worker or instance `name`: its pool, or itself.
fn group_of(w: &Supervisor, name: &str) -> String {
    w.pool_of(name).unwrap_or_else(|| name.to_owned())
}

/// The processes of group `group`: a pool's instances, or a plain worker alone.
fn members(w: &Supervisor, group: &str) -> Option<Vec<String>> {
    if let Ok(pool) = w.pool_info(group) {
        return Some(pool.instances.into_iter().map(|i| i.name).collect());
    }
    let plain = w.names().iter().any(|n| n == group) && w.pool_of(group).is_none();
    plain.then(|| vec![group.to_owned()])
}

/// supervisord's `split_namespec` and `_getGroupAndProcess`, with two names more: a pool
/// instance alone (`hasher.2`) and a pool alone (`hasher`, as `hasher:*`).
fn lookup(w: &Supervisor, spec: &str) -> Result<Found, Fault> {
    let (group, process) = match spec.split_once(':') {
        Some((g, "" | "*")) => (g, None),
        Some((g, p)) => (g, Some(p)),
        None => (spec, Some(spec)),
    };
    let bad = || fault(BAD_NAME, spec);
    match (members(w, group), process) {
        (Some(m), None) => Ok(Found::Group(m)),
        (Some(m), Some(p)) if m.iter().any(|n| n == p) => Ok(Found::Process(p.to_owned())),
        // `hasher` alone: the pool.
        (Some(m), Some(p)) if p == group && w.pools().iter().any(|n| n == group) => Ok(Found::Group(m)),
        // `hasher.2` alone: the instance.
        (None, Some(p)) if p == group && w.pool_of(p).is_some() => Ok(Found::Process(p.to_owned())),
        _ => Err(bad()),
    }
}

/// supervisord's `make_namespec`: `NAME` when group and name are one, else `GROUP:NAME`.
fn namespec(group: &str, name: &str) -> String {
    if group == name {
        name.to_owned()
    } else {
        format!("{group}:{name}")
    }
}

// ---- What supervisord says of a process ----

fn process_state(info: &WorkerInfo, times: &Times) -> ProcessState {
    match info.state {
        State::Spinup => ProcessState::Starting,
        State::Looping | State::Paused => ProcessState::Running,
        State::Spindown => ProcessState::Stopping,
        State::Backoff => ProcessState::Backoff,
        State::Failed => ProcessState::Fatal,
        State::Exited if times.asked_stop || info.policy == Policy::Always || info.last_exit.is_none() => {
            ProcessState::Stopped
        }
        State::Exited => ProcessState::Exited,
    }
}

fn state_of(w: &Supervisor, book: &Book, name: &str) -> Result<ProcessState, Fault> {
    let info = w.info(name).map_err(|_| fault(BAD_NAME, name))?;
    Ok(process_state(&info, &book.times(name)))
}

/// `getProcessInfo`'s struct for worker or instance `name`, which exists.
fn process_info(w: &Supervisor, book: &Book, name: &str) -> Value {
    let Ok(info) = w.info(name) else { return Value::Nil };
    let times = book.times(name);
    let state = process_state(&info, &times);
    let now = unix_now();
    let start = match info.uptime {
        Some(up) => now - i64::try_from(up.as_secs()).unwrap_or(0),
        None => times.start,
    };
    let pid = info.pid.map_or(0, i64::from);
    let spawnerr = match state {
        ProcessState::Backoff | ProcessState::Fatal => info.last_exit.clone().unwrap_or_default(),
        _ => String::new(),
    };
    let description = match state {
        ProcessState::Running => format!("pid {pid}, uptime {}", timedelta(now - start)),
        ProcessState::Backoff | ProcessState::Fatal if !spawnerr.is_empty() => spawnerr.clone(),
        ProcessState::Backoff | ProcessState::Fatal => format!("unknown error (try \"tail {name}\")"),
        ProcessState::Stopped | ProcessState::Exited if start != 0 => stopped_at(times.stop),
        ProcessState::Stopped | ProcessState::Exited => "Not started".to_owned(),
        _ => String::new(),
    };
    Value::structure([
        ("name", Value::from(name)),
        ("group", Value::from(group_of(w, name))),
        ("start", Value::Int(start)),
        ("stop", Value::Int(times.stop)),
        ("now", Value::Int(now)),
        ("state", Value::Int(state as i64)),
        ("statename", Value::from(state.name())),
        ("spawnerr", Value::from(spawnerr)),
        ("exitstatus", Value::Int(times.exitstatus)),
        ("logfile", Value::from("")),
        ("stdout_logfile", Value::from("")),
        ("stderr_logfile", Value::from("")),
        ("pid", Value::Int(pid)),
        ("description", Value::from(description)),
    ])
}

/// Seconds as Python's `str(timedelta)`: `0:01:02`, `1 day, 2:03:04`, `3 days, 0:00:00`.
fn timedelta(secs: i64) -> String {
    let secs = secs.max(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let clock = format!("{}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    match days {
        0 => clock,
        1 => format!("1 day, {clock}"),
        d => format!("{d} days, {clock}"),
    }
}

/// Unix seconds as supervisord's `%b %d %I:%M %p` (`Dec 02 01:05 PM`), in UTC as the daemon's
/// log is (supervisord uses local time).
fn stopped_at(secs: i64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (_, month, day) = crate::logging::format::civil(days);
    let (hour, minute) = (rem / 3600, rem % 3600 / 60);
    let (h12, ampm) = (if hour % 12 == 0 { 12 } else { hour % 12 }, if hour < 12 { "AM" } else { "PM" });
    format!("{} {day:02} {h12:02}:{minute:02} {ampm}", MONTHS[usize::try_from(month - 1).unwrap_or(0)])
}

fn config_info(w: &Supervisor) -> Value {
    let all = w
        .names()
        .into_iter()
        .map(|name| {
            let grace = w.tuning(&name).map_or(0, |t| t.stop_grace.as_secs());
            Value::structure([
                ("name", Value::from(name.as_str())),
                ("group", Value::from(group_of(w, &name))),
                ("inuse", Value::Bool(true)),
                ("autostart", Value::Bool(true)),
                ("group_prio", Value::Int(999)),
                ("process_prio", Value::Int(999)),
                ("stopwaitsecs", Value::from(grace)),
            ])
        })
        .collect();
    Value::Array(all)
}

// ---- Actions: start, stop, signal ----

/// What became of one process an action was asked of.
type Outcome = Result<(), Fault>;

/// The outcomes of an action, filled as its processes settle; the answer once all are in.
#[derive(Default)]
struct Board {
    outcomes: Vec<Option<Outcome>>,
    waker: Option<Waker>,
}

#[derive(Clone, Default)]
struct Tally(Rc<RefCell<Board>>);

impl Tally {
    fn slot(&self) -> usize {
        let mut b = self.0.borrow_mut();
        b.outcomes.push(None);
        b.outcomes.len() - 1
    }

    /// Sets outcome `i`, unless it is set already (the first word wins) or the answer has gone.
    fn set(&self, i: usize, outcome: Outcome) {
        let mut b = self.0.borrow_mut();
        let Some(slot @ None) = b.outcomes.get_mut(i) else { return };
        *slot = Some(outcome);
        if b.outcomes.iter().all(Option::is_some) {
            if let Some(w) = b.waker.take() {
                w.wake();
            }
        }
    }

    /// A callback for [`Supervisor::when_settled`].
    fn on_settled(&self, i: usize, settled: Outcome, unsettled: Option<Outcome>) -> Box<dyn FnOnce(bool)> {
        let tally = self.clone();
        Box::new(move |ok| match (ok, unsettled) {
            (true, _) => tally.set(i, settled),
            (false, Some(outcome)) => tally.set(i, outcome),
            (false, None) => {}
        })
    }
}

/// How the outcomes become the answer: one process's (`true` or its fault), or a group's (an
/// array of `{name, group, status, description}`).
enum Shape {
    One,
    Many(Vec<(String, String)>),
}

/// The answer of an action, once every process it was asked of has settled.
struct Answer {
    tally: Tally,
    shape: Option<Shape>,
}

impl Future for Answer {
    type Output = Result<Value, Fault>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut b = self.tally.0.borrow_mut();
        if !b.outcomes.iter().all(Option::is_some) {
            b.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let outcomes: Vec<Outcome> = b.outcomes.drain(..).flatten().collect();
        drop(b);
        Poll::Ready(match self.shape.take().expect("polled after it answered") {
            Shape::One => outcomes.into_iter().next().unwrap_or(Ok(())).map(|()| Value::Bool(true)),
            Shape::Many(names) => Ok(Value::Array(
                names
                    .into_iter()
                    .zip(outcomes)
                    .map(|((name, group), outcome)| {
                        let (status, description) = match outcome {
                            Ok(()) => (SUCCESS, "OK".to_owned()),
                            Err(f) => (f.code, f.message),
                        };
                        Value::structure([
                            ("name", Value::from(name)),
                            ("group", Value::from(group)),
                            ("status", Value::from(status)),
                            ("description", Value::from(description)),
                        ])
                    })
                    .collect(),
            )),
        })
    }
}

impl Answer {
    /// The answer of a call refused before any process was touched.
    fn refused(fault: Fault) -> Answer {
        let tally = Tally::default();
        let i = tally.slot();
        tally.set(i, Err(fault));
        Answer { tally, shape: Some(Shape::One) }
    }
}

/// The actions: `start`, `stop` and `signal`, of one process, a group or all.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    Start,
    Stop,
    Signal,
}

impl Act {
    /// supervisord's predicates of `make_allfunc`: the processes of a group the action is for.
    fn applies(self, state: ProcessState) -> bool {
        match self {
            Act::Start => !state.running(),
            Act::Stop => state.running(),
            Act::Signal => state.signallable(),
        }
    }
}

/// Does `act` on process `name` (of group `group`) and records its outcome in `tally`: now, or
/// once the supervisor sees it settled.
fn act_on<S>(
    ctx: &mut Ctx<S>,
    book: &Shared,
    act: Act,
    (group, name): (&str, &str),
    wait: bool,
    signal: &Result<i32, String>,
    tally: &Tally,
) {
    let i = tally.slot();
    let spec = namespec(group, name);
    let state = match state_of(&ctx.workers, &book.borrow(), name) {
        Ok(s) => s,
        Err(f) => return tally.set(i, Err(f)),
    };
    let w = &mut ctx.workers;
    match act {
        Act::Start => {
            if state.running() {
                return tally.set(i, Err(fault(ALREADY_STARTED, &spec)));
            }
            if state == ProcessState::Stopping {
                return tally.set(i, Err(fault(FAILED, &format!("{spec} is stopping: start it once it has stopped"))));
            }
            if let Err(f) = w.start(name) {
                log::warn!("supervisor.startProcess {spec}: {}", f.full_message());
                return tally.set(i, Err(fault(SPAWN_ERROR, &spec)));
            }
            if let Some(t) = book.borrow_mut().workers.get_mut(name) {
                t.asked_stop = false;
            }
            if !wait {
                return tally.set(i, Ok(()));
            }
            let deadline = Instant::now() + START_WAIT;
            let late = fault(FAILED, &format!("{spec} was still in its spinup after {}s", START_WAIT.as_secs()));
            w.when_settled(name, true, deadline, tally.on_settled(i, Ok(()), Some(Err(late))));
            w.when_settled(name, false, deadline, tally.on_settled(i, Err(fault(ABNORMAL_TERMINATION, &spec)), None));
        }
        Act::Stop => {
            if !state.running() {
                return tally.set(i, Err(fault(NOT_RUNNING, &spec)));
            }
            if let Err(f) = w.stop(name, false) {
                return tally.set(i, Err(fault(FAILED, &format!("{spec}: {}", f.full_message()))));
            }
            book.borrow_mut().workers.entry(name.to_owned()).or_default().asked_stop = true;
            if !wait || state == ProcessState::Backoff {
                // A worker in back-off has no process: it is stopped already.
                return tally.set(i, Ok(()));
            }
            let grace = w.tuning(name).map_or(Duration::from_secs(5), |t| t.stop_grace);
            let limit = grace * 2 + STOP_MARGIN;
            let late = fault(FAILED, &format!("{spec} had not stopped after {}s", limit.as_secs()));
            w.when_settled(name, false, Instant::now() + limit, tally.on_settled(i, Ok(()), Some(Err(late))));
        }
        Act::Signal => {
            let sig = match signal {
                Ok(n) => rustix::process::Signal::from_named_raw(*n).ok_or_else(|| n.to_string()),
                Err(text) => Err(text.clone()),
            };
            let sig = match sig {
                Ok(sig) => sig,
                Err(text) => return tally.set(i, Err(fault(BAD_SIGNAL, &text))),
            };
            let pid = w.info(name).ok().and_then(|info| info.pid);
            let (Some(pid), true) = (pid, state.signallable()) else {
                return tally.set(i, Err(fault(NOT_RUNNING, &spec)));
            };
            let sent = match rustix::process::Pid::from_raw(pid) {
                Some(pid) => rustix::process::kill_process(pid, sig).map_err(|e| e.to_string()),
                None => Err(format!("no pid {pid}")),
            };
            tally.set(i, sent.map_err(|e| fault(FAILED, &format!("{spec}: {e}"))));
        }
    }
}

/// The signal supervisord's `signal_number` reads: a number, or a name with or without `SIG`.
fn signal_number(text: &str) -> Option<i32> {
    if let Ok(n) = text.trim().parse::<i32>() {
        return Some(n);
    }
    let upper = text.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    let all = crate::signal::bridged().into_iter().chain([libc::SIGKILL, libc::SIGSTOP]);
    all.into_iter().find(|&n| crate::signal::name(n) == name)
}

/// The wait parameter: true unless given false.
fn wait_of(p: &Params<'_>) -> Result<bool, Fault> {
    p.value("wait").map(|_| p.get::<bool>("wait")).transpose().map(|w| w.unwrap_or(true))
}

/// `startProcess`, `stopProcess`, `signalProcess` (one process, or a group named `GROUP:*`);
/// their group and all variants.
fn actions<S: 'static>(book: &Shared) -> Vec<Method<Ctx<S>>> {
    #[derive(Clone, Copy)]
    enum Scope {
        One,
        Group,
        All,
    }
    let make = |act: Act, scope: Scope| {
        let b = Rc::clone(book);
        let verb = match act {
            Act::Start => "start",
            Act::Stop => "stop",
            Act::Signal => "signal",
        };
        let name = match scope {
            Scope::One => format!("supervisor.{verb}Process"),
            Scope::Group => format!("supervisor.{verb}ProcessGroup"),
            Scope::All => format!("supervisor.{verb}AllProcesses"),
        };
        let m = Method::new_async(name, move |p, ctx: &mut Ctx<S>| {
            let args = (|| {
                let spec = match scope {
                    Scope::All => None,
                    _ => Some(p.get::<String>("name")?),
                };
                let wait = if act == Act::Signal { false } else { wait_of(&p)? };
                // A signal of no name is each process's BAD_SIGNAL, as supervisord answers.
                let signal = match act {
                    Act::Signal => {
                        let text: String = p.get("signal")?;
                        signal_number(&text).ok_or(text)
                    }
                    _ => Err(String::new()),
                };
                Ok((spec, wait, signal))
            })();
            let (spec, wait, signal) = match args {
                Ok(a) => a,
                Err(f) => return Answer::refused(f),
            };
            let found = match (scope, spec) {
                (Scope::All, _) | (_, None) => Found::Group(ctx.workers.names()),
                (Scope::Group, Some(g)) => match members(&ctx.workers, &g) {
                    Some(m) => Found::Group(m),
                    None => return Answer::refused(fault(BAD_NAME, &g)),
                },
                (Scope::One, Some(spec)) => match lookup(&ctx.workers, &spec) {
                    Ok(f) => f,
                    Err(f) => return Answer::refused(f),
                },
            };
            let tally = Tally::default();
            match found {
                Found::Process(name) => {
                    let group = group_of(&ctx.workers, &name);
                    act_on(ctx, &b, act, (&group, &name), wait, &signal, &tally);
                    Answer { tally, shape: Some(Shape::One) }
                }
                Found::Group(names) => {
                    let mut done = Vec::new();
                    for name in names {
                        let applies = state_of(&ctx.workers, &b.borrow(), &name).is_ok_and(|s| act.applies(s));
                        if applies {
                            let group = group_of(&ctx.workers, &name);
                            act_on(ctx, &b, act, (&group, &name), wait, &signal, &tally);
                            done.push((name, group));
                        }
                    }
                    Answer { tally, shape: Some(Shape::Many(done)) }
                }
            }
        })
        .requires(Permission::Control);
        let what = match scope {
            Scope::One => "worker NAME (GROUP:NAME; GROUP:* for a whole pool): true, or supervisord's fault",
            Scope::Group => "every worker of group NAME (a pool, or a plain worker)",
            Scope::All => "every worker",
        };
        let help = match act {
            Act::Start => format!(
                "Start {what}; with wait (the default), answer once it loops, or ABNORMAL_TERMINATION if its \
                 process ends first. A group's answer: [{{name, group, status, description}}] of those not running"
            ),
            Act::Stop => format!(
                "Stop {what}; with wait (the default), answer once its process has ended. A group's answer: \
                 [{{name, group, status, description}}] of those running"
            ),
            Act::Signal => format!(
                "Send SIGNAL (a name: HUP, SIGHUP; or a number) to {what}. A group's answer: [{{name, group, \
                 status, description}}] of those running"
            ),
        };
        let m = m.description(help);
        match (act, scope) {
            (Act::Signal, Scope::All) => m.returns(Type::Array).param(Type::String, "signal"),
            (Act::Signal, _) => m.returns(Type::Any).param(Type::String, "name").param(Type::String, "signal"),
            (_, Scope::All) => m.returns(Type::Array).signature().returns(Type::Array).param(Type::Boolean, "wait"),
            (_, _) => m
                .returns(Type::Any)
                .param(Type::String, "name")
                .signature()
                .returns(Type::Any)
                .param(Type::String, "name")
                .param(Type::Boolean, "wait"),
        }
    };
    let mut all = Vec::new();
    for act in [Act::Start, Act::Stop, Act::Signal] {
        for scope in [Scope::One, Scope::Group, Scope::All] {
            all.push(make(act, scope));
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_as_pythons_timedelta() {
        assert_eq!(timedelta(62), "0:01:02");
        assert_eq!(timedelta(3 * 3600 + 5), "3:00:05");
        assert_eq!(timedelta(86_400 + 7384), "1 day, 2:03:04");
        assert_eq!(timedelta(3 * 86_400), "3 days, 0:00:00");
        assert_eq!(timedelta(-5), "0:00:00");
    }

    #[test]
    fn a_log_read_answers_at_most_max_read_bytes() {
        let path = std::env::temp_dir().join(format!("tomte-readlog-{}", std::process::id()));
        let size = MAX_READ as usize + 100;
        std::fs::write(&path, vec![b'x'; size]).unwrap();
        let read = |offset, length| read_file(&path, offset, length).map(|d| d.len()).map_err(|f| f.message.clone());
        // The whole log, a length past the cap, the end past the cap: capped.
        assert_eq!(read(0, 0), Ok(MAX_READ as usize));
        assert_eq!(read(50, i64::MAX), Ok(MAX_READ as usize));
        assert_eq!(read(-(size as i64), 0), Ok(MAX_READ as usize));
        // Within it: as asked.
        assert_eq!(read(size as i64 - 10, 0), Ok(10));
        assert_eq!(read(-10, 0), Ok(10));
        assert_eq!(read(0, 7), Ok(7));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_stop_time_reads_as_supervisords() {
        // 2026-12-02 13:05:00 UTC.
        assert_eq!(stopped_at(1_796_216_700), "Dec 02 01:05 PM");
        assert_eq!(stopped_at(0), "Jan 01 12:00 AM");
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal_number("HUP"), Some(libc::SIGHUP));
        assert_eq!(signal_number("sigwinch"), Some(libc::SIGWINCH));
        assert_eq!(signal_number("KILL"), Some(libc::SIGKILL));
        assert_eq!(signal_number("15"), Some(15));
        assert_eq!(signal_number("NOSUCH"), None);
    }

    #[test]
    fn faults_are_worded_as_supervisords() {
        let f = fault(BAD_NAME, "nosuch");
        assert_eq!((f.code, f.message.as_str()), (10, "BAD_NAME: nosuch"));
        assert_eq!(namespec("hasher", "hasher.2"), "hasher:hasher.2");
        assert_eq!(namespec("alpha", "alpha"), "alpha");
    }
}
