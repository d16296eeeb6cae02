//! The daemon's side: forks workers, reaps them, restarts them per policy after back-off,
//! kills hung ones, relays commands and requests, and stops them all with the daemon.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Token};
use rustix::process::{Pid, Signal, WaitOptions};
use tomte_rpc::{Fault, Value};

use super::channel::{Channel, Endpoint, SendError};
use super::child;
use super::output::{self, Output, Who};
use super::wire::Frame;
use super::WorkerSpec;
use crate::event::Event;

/// The first token of workers' channels in the daemon's poll: worker `i` has three from
/// `TOKEN_BASE + 3 * i` on, its channel's eventfd, its stdout and its stderr (see [`token`]).
pub(crate) const TOKEN_BASE: usize = 1 << 15;
/// The most workers a daemon may have: their tokens stay below the connections' (`1 << 16`,
/// whose last but one is the loop's own).
const MAX_WORKERS: usize = ((1 << 15) - 1) / 3;
const CHANNEL: usize = 0;
const STDOUT: usize = 1;
const STDERR: usize = 2;

/// The token, counted from [`TOKEN_BASE`], of worker `i`'s eventfd, stdout or stderr.
fn token(i: usize, which: usize) -> usize {
    3 * i + which
}

/// What happens when a worker's process ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Restart it whatever the exit (comodojo's `forever`).
    Always,
    /// Restart it when it failed (non-zero exit, killed by a signal, hung).
    OnFailure,
    /// Leave it exited.
    Never,
}

impl Policy {
    /// The policy's name, as `worker.list` shows it: `always`, `on-failure` or `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Always => "always",
            Policy::OnFailure => "on-failure",
            Policy::Never => "never",
        }
    }
}

/// A worker's state as the daemon reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Its process runs [`Worker::spinup`](super::Worker::spinup), before the first iteration.
    Spinup,
    /// Its process runs the loop: an iteration, or the wait for the next one.
    Looping,
    /// Its process is paused (the `pause` command): alive, but no iteration runs until `resume`.
    Paused,
    /// Its process was asked to stop, or runs [`Worker::spindown`](super::Worker::spindown).
    Spindown,
    /// No process runs, and none is started unless asked: it exited and its policy does not
    /// restart it, it was stopped, or the daemon is stopping.
    Exited,
    /// No process runs: it exited, and is restarted once its back-off has passed.
    Backoff,
    /// No process runs: it failed more often than its crash-loop limit allows, and is not
    /// restarted any more (`worker.start` starts it again).
    Failed,
}

impl State {
    /// The state's name, as `worker.list` shows it (`spinup`, `looping`, `backoff`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Spinup => "spinup",
            State::Looping => "looping",
            State::Paused => "paused",
            State::Spindown => "spindown",
            State::Exited => "exited",
            State::Backoff => "backoff",
            State::Failed => "failed",
        }
    }
}

/// One worker as `worker.list` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerInfo {
    /// The worker's name.
    pub name: String,
    /// Its process's pid, while one runs.
    pub pid: Option<i32>,
    /// Its state.
    pub state: State,
    /// Its interval between iterations.
    pub interval: Duration,
    /// Its restart policy.
    pub policy: Policy,
    /// How many times its process was started again after an exit (per policy, or a restart
    /// asked for).
    pub restarts: u32,
    /// The iterations its running process completed, or its last one when none runs.
    pub iterations: u64,
    /// How its last process ended (`exited 1`, `killed by SIGKILL`, `killed: hung …`), once one
    /// has.
    pub last_exit: Option<String>,
    /// How long its process has run, while one runs.
    pub uptime: Option<Duration>,
    /// The asks it answered, all its processes together.
    pub asks: u64,
    /// The asks sent to its process and not answered yet (those past their deadline too, while
    /// it still works on them).
    pub in_flight: usize,
    /// The pool it is an instance of, if it is one.
    pub pool: Option<String>,
}

impl WorkerInfo {
    /// The worker as one entry of `worker.list`'s answer: a struct of these fields, the
    /// interval as `interval_ms` and the uptime in seconds (to the millisecond).
    pub fn to_value(&self) -> Value {
        Value::structure([
            ("name", Value::from(self.name.as_str())),
            ("pid", Value::from(self.pid)),
            ("state", Value::from(self.state.as_str())),
            // Whole milliseconds as an int; a sub-millisecond interval as a double.
            (
                "interval_ms",
                match self.interval.subsec_nanos() % 1_000_000 {
                    0 => Value::from(self.interval.as_millis() as u64),
                    _ => Value::Double(self.interval.as_secs_f64() * 1000.0),
                },
            ),
            ("policy", Value::from(self.policy.as_str())),
            ("restarts", Value::from(self.restarts)),
            ("iterations", Value::from(self.iterations)),
            ("last_exit", Value::from(self.last_exit.clone())),
            ("uptime", Value::from(self.uptime.map(|u| (u.as_secs_f64() * 1000.0).round() / 1000.0))),
            ("asks", Value::from(self.asks)),
            ("in_flight", Value::from(self.in_flight)),
            ("pool", Value::from(self.pool.clone())),
        ])
    }
}

/// A live worker process.
struct Run {
    pid: Pid,
    end: Endpoint,
    started: Instant,
    /// Since when it has been asked to stop, and whether SIGTERM went already.
    stopping: Option<(Instant, bool)>,
    /// Requests it has not answered yet: their tickets and deadlines.
    asks: Vec<(u64, Option<Instant>)>,
    /// Tickets of requests it holds past their deadline (answered as timed out already): their
    /// late answers are dropped.
    late: Vec<u64>,
    /// The asks this process answered.
    served: u64,
    /// When its memory was last checked against `max_memory`.
    memory_checked: Instant,
    /// Why the daemon killed it, if it did (a hang).
    killed_for: Option<String>,
    /// Its stdout and stderr.
    output: Output,
    /// The last snapshot of its own metrics it sent.
    metrics: Option<Value>,
}

struct Slot {
    spec: WorkerSpec,
    run: Option<Run>,
    /// The state when no process runs: exited, backoff or failed.
    down: State,
    /// False once stopped on request: it is not restarted then.
    wanted: bool,
    restart_now: bool,
    restarts: u32,
    recent: VecDeque<Instant>,
    backoff: Duration,
    restart_at: Option<Instant>,
    last_exit: Option<String>,
    iterations: u64,
    /// The state last told in a `daemon.worker.state` event.
    reported: Option<State>,
    /// The pool it belongs to (an index in `Supervisor::pools`).
    pool: Option<usize>,
    /// Scaled away: it takes no asks, is not restarted, and is left out once its process ended.
    retired: bool,
    /// The asks it answered, all its processes together.
    answered: u64,
}

impl Slot {
    /// Whether it is listed: not scaled away, or still ending.
    fn visible(&self) -> bool {
        !self.retired || self.run.is_some()
    }

    /// Asks its process holds, late ones included (it still works on them).
    fn busy(&self) -> usize {
        self.run.as_ref().map_or(0, |r| r.asks.len() + r.late.len())
    }

    /// Its state now: from its process's status word while one runs.
    fn state(&self) -> State {
        match &self.run {
            Some(run) => match (run.stopping, run.end.status()) {
                (Some(_), _) | (_, child::SPINDOWN) => State::Spindown,
                (_, child::SPINUP) => State::Spinup,
                (_, child::PAUSED) => State::Paused,
                _ => State::Looping,
            },
            None => self.down,
        }
    }
}

/// How long a rolling restart waits, at most, for a restarted worker to loop again once its old
/// process has ended, before it moves on to the next: the worker's hang timeout, or this
/// without one (and never more than this).
pub(crate) const ROLL_WAIT: Duration = Duration::from_secs(30);

/// The worker a rolling restart is replacing now.
#[derive(Clone, Copy, Debug)]
struct Roll {
    /// Its slot.
    i: usize,
    /// When it was asked to stop: a process started since is its new one.
    since: Instant,
    /// When its old process was seen gone: the wait for the new one counts from then.
    old_gone: Option<Instant>,
    /// Whether it restarts for new settings (a reload) rather than on request.
    retuned: bool,
}

/// The settings of a worker that a configuration file may change (`[workers.NAME]`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tuning {
    pub(crate) interval: Duration,
    pub(crate) policy: Policy,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) hang_timeout: Option<Duration>,
    pub(crate) stop_grace: Duration,
    /// A pool's size (`None`: not a pool).
    pub(crate) instances: Option<usize>,
}

impl Tuning {
    fn of(spec: &WorkerSpec) -> Tuning {
        Tuning {
            instances: spec.pool.as_ref().map(|p| p.instances),
            interval: spec.interval,
            policy: spec.policy,
            backoff_min: spec.backoff_min,
            backoff_max: spec.backoff_max,
            hang_timeout: spec.hang_timeout,
            stop_grace: spec.stop_grace,
        }
    }

    fn set(&self, spec: &mut WorkerSpec) {
        self.set_daemon_side(spec);
        spec.interval = self.interval;
        spec.hang_timeout = self.hang_timeout;
    }

    /// What only the daemon uses: applied to a running worker at once.
    fn set_daemon_side(&self, spec: &mut WorkerSpec) {
        spec.policy = self.policy;
        spec.backoff_min = self.backoff_min;
        spec.backoff_max = self.backoff_max;
        spec.stop_grace = self.stop_grace;
    }

    /// Whether a worker's process must be restarted to go from `other` to `self`: its interval
    /// and its heartbeat period are set when it is forked.
    pub(crate) fn needs_restart(&self, other: &Tuning) -> bool {
        self.interval != other.interval || self.hang_timeout != other.hang_timeout
    }

    /// The keys (`[workers.NAME]`'s) of the settings that differ.
    pub(crate) fn changes(&self, other: &Tuning) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut differ = |yes: bool, key| {
            if yes {
                keys.push(key);
            }
        };
        differ(self.interval != other.interval, "interval");
        differ(self.policy != other.policy, "policy");
        differ(self.backoff_min != other.backoff_min, "backoff-min");
        differ(self.backoff_max != other.backoff_max, "backoff-max");
        differ(self.hang_timeout != other.hang_timeout, "hang-timeout");
        differ(self.stop_grace != other.stop_grace, "stop-grace");
        differ(self.instances != other.instances, "instances");
        keys
    }
}

/// All the workers of a daemon, as handlers, listeners and timers reach them through
/// [`Ctx::workers`](crate::Ctx::workers): their names and state, and the commands the
/// `worker.*` methods give (start, stop, restart, command words). Requests to a worker go
/// through [`Ctx::ask`](crate::Ctx::ask).
#[derive(Default)]
pub struct Supervisor {
    slots: Vec<Slot>,
    /// The pools, and what was installed in order: plain workers and pools.
    pools: Vec<pool::Pool>,
    units: Vec<Unit>,
    /// Those waiting for a worker to be running, or down ([`Supervisor::when_settled`]).
    settles: Vec<Settle>,
    registry: Option<mio::Registry>,
    answers: Vec<(u64, Result<Value, Fault>)>,
    events: Vec<Event>,
    buf: Vec<u8>,
    frame: Vec<u8>,
    /// The daemon is stopping: nothing is restarted any more, and exits are not judged.
    halting: bool,
    /// Workers to restart one at a time — with new settings (a reload), or without (a rolling
    /// `worker.restart`) — and the one restarting now: the next is stopped once it loops again.
    rolling: VecDeque<(usize, Option<Tuning>)>,
    rolling_now: Option<Roll>,
}

/// One thing installed: a plain worker (its slot) or a pool.
#[derive(Clone, Copy, Debug)]
enum Unit {
    Worker(usize),
    Pool(usize),
}

/// A wait for workers to be running, or down.
struct Settle {
    slots: Vec<usize>,
    running: bool,
    deadline: Instant,
    done: Box<dyn FnOnce(bool)>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("workers", &self.names()).finish()
    }
}

impl Supervisor {
    pub(crate) fn install(&mut self, spec: WorkerSpec) {
        let name = spec.name.clone();
        let taken = self.slots.iter().any(|s| s.spec.name == name) || self.pools.iter().any(|p| p.name == name);
        assert!(!taken, "worker '{name}' is already installed");
        match spec.pool.clone() {
            None => {
                if let Some((pool, _)) = pool::instance_name(&name) {
                    assert!(self.pool_index(pool).is_none(), "worker '{name}' would be an instance of pool '{pool}'");
                }
                let i = self.add_slot(spec, None);
                self.units.push(Unit::Worker(i));
            }
            Some(p) => {
                if let Some((pool, _)) = pool::instance_name(&name) {
                    assert!(self.pool_index(pool).is_none(), "pool '{name}' would be an instance of pool '{pool}'");
                }
                let inner = self.pools.iter().find(|q| pool::instance_name(&q.name).is_some_and(|(o, _)| o == name));
                let inner = inner.map_or("", |q| q.name.as_str());
                assert!(inner.is_empty(), "pool '{name}' would have an instance named as pool '{inner}'");
                let clash =
                    self.slots.iter().find(|s| pool::instance_name(&s.spec.name).is_some_and(|(q, _)| q == name));
                assert!(
                    clash.is_none(),
                    "pool '{name}' would have an instance named as worker '{}'",
                    clash.map_or("", |s| &s.spec.name)
                );
                let at = self.pools.len();
                self.pools.push(pool::Pool::new(spec, &p));
                self.units.push(Unit::Pool(at));
                for _ in 0..p.instances {
                    self.add_instance(at).expect("checked: within the limits");
                }
            }
        }
    }

    /// Adds a slot for `spec`; its process starts with the others, or at `spawn`.
    fn add_slot(&mut self, spec: WorkerSpec, pool: Option<usize>) -> usize {
        assert!(self.slots.len() < MAX_WORKERS, "more than {MAX_WORKERS} workers");
        let backoff = spec.backoff_min;
        self.slots.push(Slot {
            spec,
            run: None,
            down: State::Exited,
            wanted: true,
            restart_now: false,
            restarts: 0,
            recent: VecDeque::new(),
            backoff,
            restart_at: None,
            last_exit: None,
            iterations: 0,
            reported: None,
            pool,
            retired: false,
            answered: 0,
        });
        self.slots.len() - 1
    }

    /// How many workers are installed (running or not), each instance of a pool counted.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.visible()).count()
    }
    /// Whether the daemon has no worker and no pool.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Starts every worker; the daemon calls it before it reports ready.
    pub(crate) fn start_all(&mut self, registry: mio::Registry) -> std::io::Result<()> {
        self.registry = Some(registry);
        for i in 0..self.slots.len() {
            if !self.slots[i].retired {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// The slot of worker or instance `name`.
    fn find(&self, name: &str) -> Result<usize, Fault> {
        self.slots
            .iter()
            .position(|s| s.visible() && s.spec.name == name)
            .ok_or_else(|| crate::faults::unknown_worker(name))
    }

    /// The slots `name` stands for: a worker or instance, or every instance of a pool.
    fn targets(&self, name: &str) -> Result<Vec<usize>, Fault> {
        match self.pool_index(name) {
            Some(p) => Ok(self.pools[p].members.iter().copied().filter(|&i| !self.slots[i].retired).collect()),
            None => self.find(name).map(|i| vec![i]),
        }
    }

    fn spawn(&mut self, i: usize) -> std::io::Result<()> {
        let slot = &mut self.slots[i];
        let channel = Channel::new(slot.spec.ring_bytes)?;
        // Beat often enough that a healthy worker never looks hung, and no more: an idle worker
        // wakes three times per hang timeout (every 10 s by default), or once a minute without.
        let beat = slot.spec.hang_timeout.map_or(Duration::from_secs(60), |h| (h / 3).max(Duration::from_millis(10)));
        let (output, stdio) = output::pipes()?;
        let (pid, channel) = crate::sys::process::spawn_worker(
            &slot.spec.name,
            slot.spec.interval,
            beat,
            slot.spec.factory.clone(),
            slot.spec.privileges.clone(),
            channel,
            stdio,
        )?;
        let end = channel.daemon_end();
        if let Some(reg) = &self.registry {
            let at = |which| Token(TOKEN_BASE + token(i, which));
            reg.register(&mut SourceFd(&end.wake_fd().as_raw_fd()), at(CHANNEL), Interest::READABLE)?;
            output.register(reg, TOKEN_BASE + token(i, STDOUT))?;
        }
        log::info!("worker {} started (pid {pid})", slot.spec.name);
        let run = Run {
            pid,
            end,
            started: Instant::now(),
            stopping: None,
            asks: Vec::new(),
            late: Vec::new(),
            served: 0,
            memory_checked: Instant::now(),
            killed_for: None,
            output,
            metrics: None,
        };
        slot.run = Some(run);
        slot.restart_at = None;
        slot.restart_now = false;
        slot.iterations = 0;
        // Its process may be past its spinup already: it began there all the same.
        self.report(i, State::Spinup);
        Ok(())
    }

    /// Emits `daemon.worker.state` when worker `i`'s state differs from the one last told.
    fn note_state(&mut self, i: usize) {
        let state = self.slots[i].state();
        self.report(i, state);
    }

    fn report(&mut self, i: usize, state: State) {
        let slot = &mut self.slots[i];
        if slot.reported == Some(state) {
            return;
        }
        slot.reported = Some(state);
        let pid = slot.run.as_ref().map(|r| r.pid.as_raw_nonzero().get());
        let pool = slot.pool.map_or(Value::Nil, |p| Value::from(self.pools[p].name.as_str()));
        self.events.push(Event::new(
            crate::event::names::WORKER_STATE,
            Value::structure([
                ("worker", Value::from(slot.spec.name.as_str())),
                ("pool", pool),
                ("state", Value::from(state.as_str())),
                ("pid", pid.map_or(Value::Nil, Value::from)),
                ("last_exit", slot.last_exit.as_deref().map_or(Value::Nil, Value::from)),
            ]),
        ));
    }

    /// Declares the daemon about to sleep on every worker's channel; false when a frame is
    /// already waiting, or output is left to read (then the poll must not block).
    pub(crate) fn prepare_sleep(&mut self) -> bool {
        let mut idle = true;
        for run in self.slots.iter_mut().filter_map(|s| s.run.as_mut()) {
            idle &= run.end.prepare_sleep().unwrap_or(false) && !run.output.pending();
        }
        idle
    }

    /// After the poll: ends the sleep, takes in every frame, reads the workers' output.
    /// `woken(t)` says whether token `TOKEN_BASE + t` was reported.
    pub(crate) fn after_poll(&mut self, woken: impl Fn(usize) -> bool) {
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let Some(run) = slot.run.as_mut() else { continue };
            let _ = run.end.finish_sleep_drain(woken(token(i, CHANNEL)));
            let who = Who { name: &slot.spec.name, pid: run.pid.as_raw_nonzero().get() };
            run.output.read([woken(token(i, STDOUT)), woken(token(i, STDERR))], who);
            self.receive(i);
        }
    }

    fn receive(&mut self, i: usize) {
        let mut status = false;
        self.take_frames(i, &mut status);
        if status {
            self.note_state(i);
        }
    }

    /// Takes in every frame worker `i` sent; `status` is set when one reported a new status.
    fn take_frames(&mut self, i: usize, status: &mut bool) {
        let slot = &mut self.slots[i];
        let Some(run) = slot.run.as_mut() else { return };
        loop {
            match run.end.try_recv(&mut self.buf) {
                Ok(None) => return,
                Ok(Some(_)) => {}
                Err(e) => {
                    log::error!("worker {}: broken channel ({e}); killing it", slot.spec.name);
                    kill(run, "broken channel");
                    return;
                }
            }
            match Frame::decode(&self.buf) {
                Some(Frame::Answer(ticket, result)) if claim_ask(&mut run.asks, ticket) => {
                    self.answers.push((ticket, result));
                    run.served += 1;
                    slot.answered += 1;
                }
                Some(Frame::Answer(ticket, _)) if claim_late(&mut run.late, ticket) => {
                    // Answered as timed out already: the caller has had its answer.
                    log::debug!("worker {}: late answer to ticket {ticket} dropped", slot.spec.name);
                    run.served += 1;
                    slot.answered += 1;
                }
                Some(Frame::Answer(ticket, _)) => {
                    // Tickets are sequential: a worker that answered this one could answer the
                    // asks of another worker, to their clients.
                    log::error!(
                        "worker {}: answer to ticket {ticket}, which it was not asked; killing it",
                        slot.spec.name
                    );
                    kill(run, "answered a request it was not asked");
                    return;
                }
                Some(Frame::Up(message)) => self.events.push(Event::new(
                    "daemon.worker.message",
                    Value::structure([("worker", Value::from(slot.spec.name.as_str())), ("message", message)]),
                )),
                Some(Frame::Status) => *status = true,
                Some(Frame::Metrics(snapshot)) => run.metrics = Some(snapshot),
                _ => {
                    log::error!("worker {}: malformed frame; killing it", slot.spec.name);
                    kill(run, "malformed frame");
                    return;
                }
            }
        }
    }

    /// Marks the daemon as stopping: from now on no worker is restarted, and how one exits does
    /// not count towards its crash-loop limit. A signal sent to the whole process group (Ctrl-C,
    /// a group SIGTERM) reaches the workers with the daemon, and they may end before the
    /// daemon's stop command: [`Ctx::stop`](crate::Ctx::stop) calls this at once, so such an
    /// exit, reaped in the same loop turn, is not restarted.
    pub(crate) fn halt(&mut self) {
        self.halting = true;
    }

    /// Reaps every worker that exited, and schedules restarts (SIGCHLD calls this). The
    /// restarts happen in [`Supervisor::tick`], at the end of the loop turn, once every event of
    /// the turn — a stop among them — has been seen.
    pub(crate) fn reap(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let Some(pid) = self.slots[i].run.as_ref().map(|r| r.pid) else { continue };
            let status = match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
                Ok(Some((_, status))) => status,
                Ok(None) => continue,
                Err(e) => {
                    log::error!("cannot wait for worker pid {pid}: {e}");
                    continue;
                }
            };
            self.receive(i);
            let slot = &mut self.slots[i];
            let mut run = slot.run.take().expect("checked above");
            // What it wrote before it ended, to the last line.
            run.output.drain(Who { name: &slot.spec.name, pid: pid.as_raw_nonzero().get() });
            if let Some(reg) = &self.registry {
                let _ = reg.deregister(&mut SourceFd(&run.end.wake_fd().as_raw_fd()));
                run.output.deregister(reg);
            }
            slot.iterations = run.end.counter();
            let failed = status.exit_status() != Some(0) || run.killed_for.is_some();
            let how = match (status.exit_status(), status.terminating_signal(), run.killed_for.take()) {
                (_, _, Some(why)) => format!("killed: {why}"),
                (Some(code), _, _) => format!("exited {code}"),
                (_, Some(sig), _) => format!("killed by {}", crate::signal::name(sig)),
                _ => "ended".to_owned(),
            };
            for (ticket, _) in run.asks.drain(..) {
                let why = format!("worker '{}' ended before answering ({how})", slot.spec.name);
                self.answers.push((ticket, Err(crate::faults::worker_unavailable(why))));
            }
            let ran = now.duration_since(run.started);
            slot.last_exit = Some(how.clone());
            if self.halting {
                slot.down = State::Exited;
                slot.restart_at = None;
                log::info!("worker {} {how}", slot.spec.name);
                continue;
            }
            let restart = slot.wanted
                && match slot.spec.policy {
                    Policy::Always => true,
                    Policy::OnFailure => failed,
                    Policy::Never => false,
                };
            if slot.restart_now {
                slot.wanted = true;
                slot.down = State::Backoff;
                slot.restart_at = Some(now);
                log::info!("worker {} {how}; restarting", slot.spec.name);
                continue;
            }
            if !restart {
                slot.down = State::Exited;
                let level = if failed && slot.wanted { log::Level::Warn } else { log::Level::Info };
                log::log!(level, "worker {} {how}", slot.spec.name);
                continue;
            }
            if ran >= slot.spec.stable_after {
                slot.backoff = slot.spec.backoff_min;
                slot.recent.clear();
            }
            // Only failures count towards the crash-loop limit: a clean exit (its own `stop`, a
            // SIGTERM or SIGINT it received) is restarted per policy, after the back-off.
            let (limit, window) = slot.spec.crash_limit;
            if failed {
                slot.recent.push_back(now);
            }
            while slot.recent.front().is_some_and(|t| now.duration_since(*t) > window) {
                slot.recent.pop_front();
            }
            if failed && slot.recent.len() as u32 > limit {
                slot.down = State::Failed;
                log::error!(
                    "worker {} {how}: more than {limit} restarts in {window:?}; giving up (state failed)",
                    slot.spec.name
                );
                self.events.push(Event::new("daemon.worker.failed", Value::from(slot.spec.name.as_str())));
                continue;
            }
            let delay = slot.backoff;
            slot.backoff = slot.backoff.saturating_mul(2).min(slot.spec.backoff_max);
            slot.down = State::Backoff;
            slot.restart_at = Some(now + delay);
            let level = if failed { log::Level::Warn } else { log::Level::Info };
            log::log!(level, "worker {} {how}; restarting in {delay:?}", slot.spec.name);
        }
        for i in 0..self.slots.len() {
            self.note_state(i);
        }
    }

    /// Restarts what is due, kills hung workers, escalates stops. Runs every loop turn.
    pub(crate) fn tick(&mut self, now: Instant) {
        for slot in &mut self.slots {
            let Some(run) = slot.run.as_mut() else { continue };
            run.output.tick(now, Who { name: &slot.spec.name, pid: run.pid.as_raw_nonzero().get() });
            match run.stopping {
                Some((since, false)) if now.duration_since(since) >= slot.spec.stop_grace => {
                    log::warn!("worker {} did not stop within {:?}: SIGTERM", slot.spec.name, slot.spec.stop_grace);
                    let _ = rustix::process::kill_process(run.pid, Signal::TERM);
                    run.stopping = Some((now, true));
                }
                Some((since, true)) if now.duration_since(since) >= slot.spec.stop_grace => {
                    log::warn!("worker {} ignored SIGTERM: SIGKILL", slot.spec.name);
                    let _ = rustix::process::kill_process(run.pid, Signal::KILL);
                    run.stopping = Some((now + Duration::from_secs(3600), true));
                }
                Some(_) => {}
                None => {
                    if let (Some(limit), Some(age)) = (slot.spec.hang_timeout, run.end.heartbeat_age()) {
                        if age > limit && run.killed_for.is_none() {
                            log::error!("worker {} hung: no heartbeat for {age:?}; killing it", slot.spec.name);
                            kill(run, &format!("hung (no heartbeat for {}s)", age.as_secs()));
                        }
                    }
                }
            }
        }
        self.restart_due(now);
        self.roll_on(now);
        self.tend_pools(now);
        for i in 0..self.slots.len() {
            self.note_state(i);
        }
    }

    /// Worker `name`'s settings (those it will have once restarted, when it waits for it).
    pub(crate) fn tuning(&self, name: &str) -> Option<Tuning> {
        if let Some(p) = self.pool_index(name) {
            return Some(self.pools[p].tuning());
        }
        let i = self.find(name).ok()?;
        match self.rolling.iter().find_map(|(j, t)| t.as_ref().filter(|_| *j == i)) {
            Some(t) => Some(t.clone()),
            None => Some(Tuning::of(&self.slots[i].spec)),
        }
    }

    /// Gives worker `name` settings `t`. What the daemon uses (policy, back-off, stop grace)
    /// applies at once; a running worker whose interval or hang timeout changes is restarted
    /// for them, in the rolling restart's queue (see [`Supervisor::restart_rolling`]): one
    /// worker at a time, the next stopped only once the one before loops again. True when a
    /// restart was queued.
    /// A pool's settings are its instances': each is retuned (new ones are made with them).
    pub(crate) fn retune(&mut self, name: &str, t: Tuning) -> bool {
        if let Some(p) = self.pool_index(name) {
            if let Some(n) = self.pools[p].retune(&t) {
                if let Err(f) = self.scale(name, n) {
                    log::error!("pool {name}: cannot scale to {n} instances: {}", f.message);
                }
            }
            let members = self.pools[p].members.clone();
            return members.into_iter().fold(false, |queued, i| self.retune_slot(i, t.clone()) | queued);
        }
        let Ok(i) = self.find(name) else { return false };
        self.retune_slot(i, t)
    }

    fn retune_slot(&mut self, i: usize, t: Tuning) -> bool {
        let slot = &mut self.slots[i];
        t.set_daemon_side(&mut slot.spec);
        // The next back-off within the new bounds (it starts from the minimum).
        slot.backoff = slot.backoff.min(t.backoff_max).max(t.backoff_min);
        if let Some(queued) = self.rolling.iter_mut().find(|(j, t)| *j == i && t.is_none()) {
            // Restarted on request anyway: it restarts with them.
            queued.1 = Some(t);
            return true;
        }
        self.rolling.retain(|(j, _)| *j != i);
        if slot.run.is_none() || !t.needs_restart(&Tuning::of(&slot.spec)) {
            // Not running: it starts with them.
            t.set(&mut slot.spec);
            return false;
        }
        self.rolling.push_back((i, Some(t)));
        true
    }

    /// Queues worker `name` for a rolling restart: workers queued so are restarted one at a
    /// time, in order, each stopped only once the one before it loops again (or is paused) with
    /// its new process. A worker that does not come back — it fails, is stopped meanwhile, or
    /// has not looped within its hang timeout (30 s without one, and at most) of its old
    /// process's end — is logged and the queue moves on. A worker that is not running is
    /// started in its turn. `Ok(true)`: queued (or queued already); reload's restarts for new
    /// settings share the queue.
    /// `name` may be a pool: its instances, one after the other.
    pub fn restart_rolling(&mut self, name: &str) -> Result<bool, Fault> {
        for i in self.targets(name)? {
            if !self.rolling.iter().any(|(j, _)| *j == i) {
                self.rolling.push_back((i, None));
            }
        }
        Ok(true)
    }

    /// Moves the rolling restart on: once the worker restarting has looped again (or did not
    /// come back in time), the next is stopped, and restarted at once (with its new settings,
    /// for a reload).
    fn roll_on(&mut self, now: Instant) {
        if self.halting {
            self.rolling.clear();
            self.rolling_now = None;
            return;
        }
        if let Some(roll) = self.rolling_now.as_mut() {
            let slot = &self.slots[roll.i];
            let new = slot.run.as_ref().filter(|r| r.started >= roll.since);
            if roll.old_gone.is_none() && (slot.run.is_none() || new.is_some()) {
                roll.old_gone = Some(now);
            }
            let looping =
                new.is_some_and(|r| r.stopping.is_none() && matches!(r.end.status(), child::LOOPING | child::PAUSED));
            let given_up = slot.run.is_none() && (!slot.wanted || slot.down == State::Failed);
            let wait = slot.spec.hang_timeout.unwrap_or(ROLL_WAIT).min(ROLL_WAIT);
            let late = roll.old_gone.is_some_and(|t| now.duration_since(t) > wait);
            let roll = *roll;
            let name = &slot.spec.name;
            if looping {
                if roll.retuned {
                    log::info!("worker {name} is looping with its new settings");
                } else {
                    log::info!("worker {name} is looping again (rolling restart)");
                }
                self.rolling_now = None;
                // Said before the next one is said to go down.
                self.note_state(roll.i);
            } else if given_up || late {
                let state = slot.state().as_str();
                let why = if late { format!("has not looped within {wait:?}") } else { "did not come back".to_owned() };
                let next = self.rolling.front().map(|(j, _)| self.slots[*j].spec.name.clone());
                log::error!(
                    "rolling restart: worker {name} {why} (state {state}); moving on{}",
                    next.map(|n| format!(" to worker {n}")).unwrap_or_default()
                );
                self.rolling_now = None;
            } else {
                return;
            }
        }
        while let Some((i, t)) = self.rolling.pop_front() {
            let retuned = t.is_some();
            if let Some(t) = t {
                t.set(&mut self.slots[i].spec);
                if self.slots[i].run.is_none() {
                    // Ended meanwhile: it starts with its new settings.
                    continue;
                }
            }
            let name = self.slots[i].spec.name.clone();
            let more = self.rolling.len();
            if retuned {
                log::info!("restarting worker {name} for its new settings ({more} more after it)");
            } else {
                log::info!("rolling restart: restarting worker {name} ({more} more after it)");
            }
            self.rolling_now = Some(Roll { i, since: now, old_gone: None, retuned });
            if let Err(f) = self.stop(&name, true) {
                log::error!("rolling restart: cannot restart worker {name}: {}", f.message);
            }
            return;
        }
    }

    fn restart_due(&mut self, now: Instant) {
        if self.halting {
            return;
        }
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if slot.run.is_none() && slot.restart_at.is_some_and(|t| t <= now) {
                slot.restarts += 1;
                if let Err(e) = self.spawn(i) {
                    let slot = &mut self.slots[i];
                    log::error!("cannot restart worker {}: {e}", slot.spec.name);
                    slot.restart_at = Some(now + slot.backoff);
                }
            }
        }
    }

    /// When the loop must wake for the supervisor next.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut next = None::<Instant>;
        let mut earliest = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.rolling_now.is_some() || !self.rolling.is_empty() {
            // A restarted worker's state is in the shared mapping: look often while rolling.
            earliest(Instant::now() + Duration::from_millis(10));
        }
        self.pools_deadline(&mut earliest);
        for slot in &self.slots {
            if let Some(t) = slot.restart_at {
                earliest(t);
            }
            if let Some(run) = &slot.run {
                if let Some(t) = run.output.deadline() {
                    earliest(t);
                }
                match run.stopping {
                    Some((since, _)) => earliest(since + slot.spec.stop_grace),
                    // Hang checks three times per timeout: a hung worker is killed within the
                    // timeout and a third of it.
                    None => {
                        if let Some(h) = slot.spec.hang_timeout {
                            earliest(
                                Instant::now() + (h / 3).clamp(Duration::from_millis(10), Duration::from_secs(10)),
                            );
                        }
                    }
                }
            }
        }
        next
    }

    /// Completed requests, for the loop to answer their clients.
    pub(crate) fn take_answers(&mut self) -> Vec<(u64, Result<Value, Fault>)> {
        std::mem::take(&mut self.answers)
    }
    /// Events for the loop to emit.
    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
    pub(crate) fn has_output(&self) -> bool {
        !self.answers.is_empty() || !self.events.is_empty()
    }

    /// Sends `request` to worker `name` — to the least busy instance of a pool, or into its
    /// queue — or fails at once; the answer will carry `ticket`.
    pub(crate) fn ask(&mut self, ticket: u64, name: &str, request: Value) -> Result<(), Fault> {
        if let Some(p) = self.pool_index(name) {
            return self.ask_pool(p, ticket, request);
        }
        let i = self.find(name)?;
        let deadline = self.slots[i].spec.ask_timeout.map(|d| Instant::now() + d);
        let slot = &self.slots[i];
        match slot.run.as_ref().filter(|r| r.stopping.is_none()) {
            None => Err(crate::faults::worker_unavailable(format!(
                "worker '{name}' is not running ({})",
                slot.down.as_str()
            ))),
            Some(_) if slot.spec.max_in_flight.is_some_and(|m| slot.busy() >= m) => Err(crate::faults::busy(
                "Worker busy",
                format!("worker '{name}' is busy: it holds {} asks, its max_in_flight", slot.busy()),
            )),
            Some(_) => self.send_ask(i, ticket, request, deadline),
        }
    }

    /// Sends an ask to slot `i`'s process, which must run.
    fn send_ask(&mut self, i: usize, ticket: u64, request: Value, deadline: Option<Instant>) -> Result<(), Fault> {
        let mut frame = std::mem::take(&mut self.frame);
        Frame::Request(ticket, request).encode(&mut frame);
        let sent = self.send_frame(i, ticket, &frame, deadline);
        // A client's big request (too big for the channel, say) does not keep its memory.
        if frame.capacity() <= 64 << 10 {
            self.frame = frame;
        }
        sent
    }

    /// Sends the ask `frame` (of `ticket`, encoded) to slot `i`'s process, which must run.
    fn send_frame(&mut self, i: usize, ticket: u64, frame: &[u8], deadline: Option<Instant>) -> Result<(), Fault> {
        let slot = &mut self.slots[i];
        let run = slot.run.as_mut().expect("a running worker");
        send(&mut run.end, frame, &slot.spec.name).map(|()| run.asks.push((ticket, deadline)))
    }

    /// Sends a command word to worker `name` (`pause`, `resume`, `stop`, or a word of its own,
    /// for [`Worker::on_command`](super::Worker::on_command)): `Ok(false)` when it is not
    /// running.
    /// `name` may be a pool: the word goes to each of its instances (`Ok(true)` when one ran).
    pub fn command(&mut self, name: &str, word: &str) -> Result<bool, Fault> {
        Frame::Command(word.to_owned()).encode(&mut self.frame);
        let mut any = false;
        for i in self.targets(name)? {
            let slot = &mut self.slots[i];
            if let Some(run) = slot.run.as_mut() {
                send(&mut run.end, &self.frame, &slot.spec.name)?;
                any = true;
            }
        }
        Ok(any)
    }

    /// Sets the log level of every running worker to `level` (those started later inherit the
    /// daemon's).
    pub(crate) fn set_log_level(&mut self, level: log::LevelFilter) {
        Frame::Command(format!("{}{}", child::LOG_LEVEL, crate::logging::level_name(level))).encode(&mut self.frame);
        for slot in &mut self.slots {
            if let Some(run) = slot.run.as_mut() {
                if let Err(f) = send(&mut run.end, &self.frame, &slot.spec.name) {
                    log::warn!("worker {} keeps its log level: {}", slot.spec.name, f.message);
                }
            }
        }
    }

    /// Asks worker `name` to stop (stop command, then SIGTERM, then SIGKILL after the grace
    /// periods); it is not restarted. With `restart`, it is started again once it has exited.
    /// `name` may be a pool: each of its instances. The asks a worker holds are answered
    /// before it stops (they come before the stop command in its channel).
    pub fn stop(&mut self, name: &str, restart: bool) -> Result<bool, Fault> {
        let mut any = false;
        for i in self.targets(name)? {
            any |= self.stop_slot(i, restart)?;
        }
        Ok(any)
    }

    fn stop_slot(&mut self, i: usize, restart: bool) -> Result<bool, Fault> {
        let slot = &mut self.slots[i];
        // An instance scaled away is never started again (its name comes back with a scale-up).
        let restart = restart && !slot.retired;
        let name = &slot.spec.name;
        slot.wanted = restart;
        slot.restart_now = restart;
        slot.restart_at = None;
        let Some(run) = slot.run.as_mut() else {
            if restart {
                self.start_slot(i)?;
            } else if slot.down == State::Backoff {
                slot.down = State::Exited;
            }
            return Ok(restart);
        };
        if run.stopping.is_none() {
            run.stopping = Some((Instant::now(), false));
            Frame::Command("stop".to_owned()).encode(&mut self.frame);
            if send(&mut run.end, &self.frame, name).is_err() {
                let _ = rustix::process::kill_process(run.pid, Signal::TERM);
                run.stopping = Some((Instant::now(), true));
            }
        }
        Ok(true)
    }

    /// Starts worker `name` if it is not running (a failed worker too): `Ok(false)` when it
    /// already runs.
    /// `name` may be a pool: each of its instances (`Ok(true)` when one was started).
    pub fn start(&mut self, name: &str) -> Result<bool, Fault> {
        let mut any = false;
        for i in self.targets(name)? {
            any |= self.start_slot(i)?;
        }
        Ok(any)
    }

    fn start_slot(&mut self, i: usize) -> Result<bool, Fault> {
        let slot = &mut self.slots[i];
        if slot.retired {
            return Err(crate::faults::worker_unavailable(format!("instance '{}' was scaled away", slot.spec.name)));
        }
        slot.wanted = true;
        if slot.run.is_some() {
            return Ok(false);
        }
        slot.recent.clear();
        slot.backoff = slot.spec.backoff_min;
        self.spawn(i)
            .map_err(|e| Fault::internal(format!("cannot start worker '{}': {e}", self.slots[i].spec.name)))?;
        Ok(true)
    }

    /// Whether `pid` is one of the workers' processes: the orphan reaper leaves those to
    /// [`Supervisor::reap`], which needs their exit status.
    pub(crate) fn owns(&self, pid: Pid) -> bool {
        self.slots.iter().any(|s| s.run.as_ref().is_some_and(|r| r.pid == pid))
    }

    /// How many workers have a process that is not being stopped (systemd's status line).
    pub(crate) fn running(&self) -> usize {
        self.slots.iter().filter(|s| s.run.as_ref().is_some_and(|r| r.stopping.is_none())).count()
    }

    /// Every worker's name, in installation order, a pool's instances (`NAME.0`, …) in its
    /// place.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.slots.len());
        for unit in &self.units {
            match *unit {
                Unit::Worker(i) => names.push(self.slots[i].spec.name.clone()),
                Unit::Pool(p) => names.extend(
                    self.pools[p]
                        .members
                        .iter()
                        .map(|&i| &self.slots[i])
                        .filter(|s| s.visible())
                        .map(|s| s.spec.name.clone()),
                ),
            }
        }
        names
    }

    /// What `worker.list` shows of each worker that is not in a pool, in the order they were added.
    pub(crate) fn plain_infos(&self) -> Vec<WorkerInfo> {
        let plain = self.units.iter().filter_map(|unit| match *unit {
            Unit::Worker(i) => Some(i),
            Unit::Pool(_) => None,
        });
        plain.map(|i| self.info_at(i)).collect()
    }

    /// What a configuration file's `[workers.NAME]` sections name: each worker that is not in a
    /// pool, and each pool (its settings are its instances').
    pub(crate) fn units(&self) -> Vec<String> {
        self.units
            .iter()
            .map(|u| match *u {
                Unit::Worker(i) => self.slots[i].spec.name.clone(),
                Unit::Pool(p) => self.pools[p].name.clone(),
            })
            .collect()
    }

    /// Worker `name` as `worker.list` shows it.
    pub fn info(&self, name: &str) -> Result<WorkerInfo, Fault> {
        Ok(self.info_at(self.find(name)?))
    }

    /// What `worker.list` shows of slot `i`.
    pub(super) fn info_at(&self, i: usize) -> WorkerInfo {
        let slot = &self.slots[i];
        let state = slot.state();
        let (pid, iterations, uptime) = match &slot.run {
            Some(run) => (Some(run.pid.as_raw_nonzero().get()), run.end.counter(), Some(run.started.elapsed())),
            None => (None, slot.iterations, None),
        };
        WorkerInfo {
            name: slot.spec.name.clone(),
            pid,
            state,
            interval: slot.spec.interval,
            policy: slot.spec.policy,
            restarts: slot.restarts,
            iterations,
            last_exit: slot.last_exit.clone(),
            uptime,
            asks: slot.answered,
            in_flight: slot.busy(),
            pool: slot.pool.map(|p| self.pools[p].name.clone()),
        }
    }

    /// Stops every worker at once, as the daemon stops: `stop` to all, the grace period, SIGTERM
    /// to those left, the grace period, SIGKILL. Returns when all are reaped.
    pub(crate) fn stop_all(&mut self) {
        self.halt();
        for name in self.names() {
            let _ = self.stop(&name, false);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.slots.iter().any(|s| s.run.is_some()) && Instant::now() < deadline {
            self.reap();
            self.tick(Instant::now());
            // A worker printing as it stops would wait for room in its pipe, and never stop.
            for slot in &mut self.slots {
                if let Some(run) = slot.run.as_mut() {
                    run.output.read([true, true], Who { name: &slot.spec.name, pid: run.pid.as_raw_nonzero().get() });
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn send(end: &mut Endpoint, frame: &[u8], name: &str) -> Result<(), Fault> {
    let sent = end.send(frame).map_err(|e| send_fault(e, name));
    let _ = end.notify();
    sent
}

/// The fault of a frame that did not go down worker (or pool) `name`'s channel.
pub(super) fn send_fault(e: SendError, name: &str) -> Fault {
    match e {
        SendError::Full => {
            crate::faults::worker_unavailable(format!("worker '{name}' is not keeping up: its channel is full"))
        }
        other => Fault::internal(format!("cannot send to worker '{name}': {other}")),
    }
}

/// Whether `ticket` is one of `asks` — sent to this worker and not answered yet — which it
/// then no longer is.
fn claim_ask(asks: &mut Vec<(u64, Option<Instant>)>, ticket: u64) -> bool {
    let Some(i) = asks.iter().position(|&(t, _)| t == ticket) else { return false };
    asks.remove(i);
    true
}

/// Whether `ticket` is one of `late` — timed out, still held by the worker — which it then no
/// longer is.
fn claim_late(late: &mut Vec<u64>, ticket: u64) -> bool {
    let Some(i) = late.iter().position(|&t| t == ticket) else { return false };
    late.swap_remove(i);
    true
}

fn kill(run: &mut Run, why: &str) {
    run.killed_for = Some(why.to_owned());
    let _ = rustix::process::kill_process(run.pid, Signal::KILL);
}

#[cfg(test)]
mod tests {
    use super::claim_ask;

    #[test]
    fn only_an_ask_made_of_this_worker_and_not_answered_yet_takes_an_answer() {
        let mut asks = vec![(3, None), (7, None), (9, None)];
        // Another worker's ticket (or one never issued): not this worker's to answer.
        assert!(!claim_ask(&mut asks, 8));
        assert!(claim_ask(&mut asks, 7));
        // Answered already: a second answer is refused.
        assert!(!claim_ask(&mut asks, 7));
        assert_eq!(asks, [(3, None), (9, None)]);
    }
}

#[path = "metrics.rs"]
pub(crate) mod metrics;
#[path = "pool.rs"]
mod pool;
pub use pool::PoolInfo;
