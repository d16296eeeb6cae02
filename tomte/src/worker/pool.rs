//! Pools: identical workers behind one name, and what every worker's asks share with them —
//! deadlines, cancellation, recycling — and the waits for a worker to settle.
//!
//! # Dispatch
//!
//! An ask of a pool goes to the live instance (a process running and not stopping, not being
//! recycled, not scaled away) with the fewest asks in flight, below its `max_in_flight`; ties go
//! round-robin, from the instance after the one chosen last. With none below its limit, the ask
//! waits in the pool's queue, in order, and is sent as soon as an instance has room; past the
//! queue's limit it fails at once with −32000 "Pool busy". When no instance can come back (all
//! stopped, failed, or the pool scaled to 0 without automatic scaling), asks fail at once with
//! −32011, and so do those waiting.
//!
//! # Deadlines
//!
//! Every ask has one (`ask_timeout`, 30 s by default), counted from the ask, queue included.
//! Past it the caller is answered with −32003 and the worker's late answer is dropped; the
//! worker keeps counting it as in flight until it answers (it is still busy), and a worker stuck
//! on it is killed by hang detection. A caller that goes away (its client hung up, its own
//! timeout fired) takes its ask out of the queue, or leaves it to be dropped when answered.
//!
//! # Scaling
//!
//! `scale(NAME, n)` starts instances (reusing the names of those scaled away, lowest first) or
//! stops some: those not running first, then idle ones, then the least busy, the highest-numbered
//! first among equals. A stopped instance answers the asks it holds before it ends (they come
//! before the stop command in its channel), so a scale-down fails no call.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tomte_rpc::{Fault, Value};

use super::{Settle, Slot, State, Supervisor, Unit};
use crate::worker::channel::Channel;
use crate::worker::wire::Frame;
use crate::worker::{PoolSpec, WorkerSpec, MAX_INSTANCES};

/// How often an autoscaled pool may grow while asks wait.
const GROW_EVERY: Duration = Duration::from_millis(200);
/// How long an autoscaled pool must be idle before it shrinks by one (and between shrinks).
const SHRINK_AFTER: Duration = Duration::from_secs(10);
/// How often a worker's memory is checked against its `max_memory`.
const MEMORY_EVERY: Duration = Duration::from_secs(1);

/// A pool: its instances' spec, its members, its queue.
pub(super) struct Pool {
    pub(super) name: String,
    /// The spec each instance is made from (named `NAME.k` when made).
    template: WorkerSpec,
    /// Its instances' slots, by instance number: member `k` is `NAME.k`.
    pub(super) members: Vec<usize>,
    queue: VecDeque<Waiting>,
    queue_limit: usize,
    /// Where the round-robin goes on from (a position in `members`).
    cursor: usize,
    autoscale: Option<(usize, usize)>,
    /// When it was last resized by its autoscaling.
    scaled_at: Instant,
    /// When an instance last held an ask, or one waited.
    busy_at: Instant,
}

/// An ask waiting in a pool's queue.
struct Waiting {
    ticket: u64,
    /// The ask, encoded as it goes down the channel: the queue holds at most `queue_limit`
    /// frames no larger than the channel carries, never a client's request of any size.
    frame: Vec<u8>,
    deadline: Option<Instant>,
}

impl Pool {
    pub(super) fn new(template: WorkerSpec, spec: &PoolSpec) -> Pool {
        let now = Instant::now();
        Pool {
            name: template.name.clone(),
            template,
            members: Vec::new(),
            queue: VecDeque::new(),
            queue_limit: spec.queue_limit,
            cursor: 0,
            autoscale: spec.autoscale,
            scaled_at: now,
            busy_at: now,
        }
    }

    fn max_in_flight(&self) -> usize {
        self.template.max_in_flight.unwrap_or(1)
    }

    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn tuning(&self) -> super::Tuning {
        super::Tuning::of(&self.template)
    }

    /// New instances are made with `t`; the size it sets, when it changed.
    pub(super) fn retune(&mut self, t: &super::Tuning) -> Option<usize> {
        t.set(&mut self.template);
        let spec = self.template.pool.as_mut()?;
        let n = t.instances.filter(|&n| n != spec.instances)?;
        spec.instances = n;
        Some(self.autoscale.map_or(n, |(min, max)| n.clamp(min, max)))
    }
}

/// `NAME.k` split into the pool's name and the instance's number.
pub(super) fn instance_name(name: &str) -> Option<(&str, usize)> {
    let (pool, k) = name.rsplit_once('.')?;
    let digits = !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) && (k == "0" || !k.starts_with('0'));
    Some((pool, k.parse().ok().filter(|_| digits && !pool.is_empty())?))
}

/// How a pool is described in `worker.list`.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolInfo {
    /// The pool's name.
    pub name: String,
    /// Its instances now (those being scaled away not counted).
    pub size: usize,
    /// Asks waiting in its queue.
    pub queued: usize,
    /// The bounds of its automatic scaling, if it has some.
    pub autoscale: Option<(usize, usize)>,
    /// Its instances, as each is listed.
    pub instances: Vec<super::WorkerInfo>,
}

impl PoolInfo {
    /// The pool's state: the liveliest of its instances' (looping, paused, spinup, spindown,
    /// backoff, exited, failed in that order), so `failed` only when every instance failed;
    /// `exited` for a pool of none.
    pub fn state(&self) -> State {
        const ORDER: [State; 7] = [
            State::Looping,
            State::Paused,
            State::Spinup,
            State::Spindown,
            State::Backoff,
            State::Exited,
            State::Failed,
        ];
        let rank = |s: State| ORDER.iter().position(|o| *o == s).unwrap_or(ORDER.len());
        self.instances.iter().map(|i| i.state).min_by_key(|s| rank(*s)).unwrap_or(State::Exited)
    }

    /// The pool as one entry of `worker.list`: the members of a worker's entry summed over its
    /// instances (`pid`, `last_exit`, `uptime` nil), `pool: true`, `size`, `queued`, the
    /// autoscaling bounds `min`/`max` (nil without), and `instances`.
    pub fn to_value(&self) -> Value {
        let first = self.instances.first();
        let sum = |f: fn(&super::WorkerInfo) -> u64| self.instances.iter().map(f).sum::<u64>();
        let interval = first.map_or(Value::Nil, |i| i.to_value().get("interval_ms").cloned().unwrap_or_default());
        Value::structure([
            ("name", Value::from(self.name.as_str())),
            ("pool", Value::Bool(true)),
            ("size", Value::from(self.size)),
            ("queued", Value::from(self.queued)),
            ("state", Value::from(self.state().as_str())),
            ("pid", Value::Nil),
            ("interval_ms", interval),
            ("policy", first.map_or(Value::Nil, |i| Value::from(i.policy.as_str()))),
            ("restarts", Value::from(sum(|i| u64::from(i.restarts)))),
            ("iterations", Value::from(sum(|i| i.iterations))),
            ("last_exit", Value::Nil),
            ("uptime", Value::Nil),
            ("asks", Value::from(sum(|i| i.asks))),
            ("in_flight", Value::from(sum(|i| i.in_flight as u64))),
            ("min", Value::from(self.autoscale.map(|a| a.0))),
            ("max", Value::from(self.autoscale.map(|a| a.1))),
            ("instances", Value::Array(self.instances.iter().map(super::WorkerInfo::to_value).collect())),
        ])
    }
}

impl Supervisor {
    pub(super) fn pool_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }

    /// The pools' names, in installation order.
    pub fn pools(&self) -> Vec<String> {
        self.pools.iter().map(|p| p.name.clone()).collect()
    }

    /// The pool instance `name` belongs to, if it is an instance.
    pub fn pool_of(&self, name: &str) -> Option<String> {
        let i = self.find(name).ok()?;
        self.slots[i].pool.map(|p| self.pools[p].name.clone())
    }

    /// Pool `name` as `worker.list` shows it.
    pub fn pool_info(&self, name: &str) -> Result<PoolInfo, Fault> {
        let p = self.pool_index(name).ok_or_else(|| crate::faults::unknown_worker(name))?;
        let pool = &self.pools[p];
        let instances = pool.members.iter().filter(|&&i| self.slots[i].visible()).map(|&i| self.info_at(i)).collect();
        Ok(PoolInfo {
            name: pool.name.clone(),
            size: self.size(p),
            queued: pool.queue.len(),
            autoscale: pool.autoscale,
            instances,
        })
    }

    /// `worker.list`'s answer: each worker, and each pool with its instances, in installation
    /// order.
    pub(crate) fn list(&self) -> Result<Value, Fault> {
        let mut all = Vec::with_capacity(self.units.len());
        for unit in &self.units {
            all.push(match *unit {
                Unit::Worker(i) => self.info_at(i).to_value(),
                Unit::Pool(p) => self.pool_info(&self.pools[p].name)?.to_value(),
            });
        }
        Ok(Value::Array(all))
    }

    /// The state of a worker, an instance or a pool (see [`PoolInfo::state`]).
    pub(crate) fn state_of(&self, name: &str) -> Result<State, Fault> {
        match self.pool_index(name) {
            Some(_) => Ok(self.pool_info(name)?.state()),
            None => Ok(self.info(name)?.state),
        }
    }

    /// How many instances pool `p` has (those being scaled away not counted).
    pub(super) fn size(&self, p: usize) -> usize {
        self.pools[p].members.iter().filter(|&&i| !self.slots[i].retired).count()
    }

    /// Adds one instance to pool `p` — the lowest-numbered one scaled away whose process has
    /// ended, else a new one — and starts it once the daemon runs.
    pub(super) fn add_instance(&mut self, p: usize) -> Result<usize, Fault> {
        let pool = &self.pools[p];
        let reuse = pool.members.iter().copied().find(|&i| self.slots[i].retired && self.slots[i].run.is_none());
        let i = match reuse {
            Some(i) => {
                let slot = &mut self.slots[i];
                slot.retired = false;
                slot.wanted = true;
                slot.down = State::Exited;
                slot.recent.clear();
                slot.backoff = slot.spec.backoff_min;
                i
            }
            None => {
                let name = format!("{}.{}", pool.name, pool.members.len());
                if self.slots.iter().any(|s| s.spec.name == name) {
                    return Err(Fault::invalid_params(format!("a worker is named '{name}' already")));
                }
                if self.slots.len() >= super::MAX_WORKERS {
                    return Err(Fault::invalid_params(format!("a daemon has at most {} workers", super::MAX_WORKERS)));
                }
                let mut spec = pool.template.clone();
                spec.name = name;
                spec.pool = None;
                let i = self.add_slot(spec, Some(p));
                self.pools[p].members.push(i);
                i
            }
        };
        if self.registry.is_some() && !self.halting {
            if let Err(e) = self.spawn(i) {
                // Not counted in the pool (its name is free for the next try).
                let slot = &mut self.slots[i];
                slot.retired = true;
                slot.wanted = false;
                return Err(Fault::internal(format!("cannot start worker '{}': {e}", slot.spec.name)));
            }
        }
        Ok(i)
    }

    /// Grows or shrinks pool `name` to `n` instances (see the module's "Scaling"); answers the
    /// size before and after.
    pub fn scale(&mut self, name: &str, n: usize) -> Result<(usize, usize), Fault> {
        let Some(p) = self.pool_index(name) else {
            return Err(match self.find(name) {
                Ok(_) => Fault::invalid_params(format!("worker '{name}' is not a pool")),
                Err(unknown) => unknown,
            });
        };
        if n > MAX_INSTANCES {
            return Err(Fault::invalid_params(format!("a pool has at most {MAX_INSTANCES} instances, not {n}")));
        }
        if let Some((min, max)) = self.pools[p].autoscale {
            if n < min || n > max {
                return Err(Fault::invalid_params(format!(
                    "pool '{name}' scales itself between {min} and {max} instances: {n} is outside"
                )));
            }
        }
        let from = self.size(p);
        self.resize(p, n)?;
        let to = self.size(p);
        if to != from {
            log::info!("pool {name}: {from} -> {to} instances");
        }
        Ok((from, to))
    }

    fn resize(&mut self, p: usize, n: usize) -> Result<(), Fault> {
        while self.size(p) < n {
            self.add_instance(p)?;
        }
        let mut active: Vec<usize> =
            self.pools[p].members.iter().copied().filter(|&i| !self.slots[i].retired).collect();
        if active.len() <= n {
            return Ok(());
        }
        // Those not running, then the least busy, the highest-numbered first among equals.
        active.sort_by_key(|&i| (self.slots[i].run.is_some(), self.slots[i].busy(), std::cmp::Reverse(i)));
        for &i in &active[..active.len() - n] {
            let slot = &mut self.slots[i];
            slot.retired = true;
            slot.wanted = false;
            slot.restart_at = None;
            if slot.run.is_none() && slot.down == State::Backoff {
                slot.down = State::Exited;
            }
        }
        // Each is stopped once it holds no ask (see `retire_idle`): a stop's grace periods
        // would cut an ask longer than they are.
        self.retire_idle();
        self.pump(p);
        Ok(())
    }

    /// Stops the instances scaled away that hold no ask any more.
    fn retire_idle(&mut self) {
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.retired && slot.busy() == 0 && slot.run.as_ref().is_some_and(|r| r.stopping.is_none()) {
                let _ = self.stop_slot(i, false);
            }
        }
    }

    /// Sends an ask to pool `p`, queues it, or fails it at once.
    pub(super) fn ask_pool(&mut self, p: usize, ticket: u64, request: Value) -> Result<(), Fault> {
        let deadline = self.pools[p].template.ask_timeout.map(|d| Instant::now() + d);
        self.pools[p].busy_at = Instant::now();
        if self.pools[p].queue.is_empty() {
            if let Some(i) = self.pick(p) {
                return self.send_ask(i, ticket, request, deadline);
            }
        }
        if let Some(why) = self.hopeless(p) {
            return Err(crate::faults::worker_unavailable(why));
        }
        let pool = &mut self.pools[p];
        if pool.queue.len() >= pool.queue_limit {
            return Err(crate::faults::busy(
                "Pool busy",
                format!(
                    "pool '{}' is busy: every instance holds {} asks and {} wait (its queue limit)",
                    pool.name,
                    pool.max_in_flight(),
                    pool.queue.len()
                ),
            ));
        }
        let mut frame = Vec::new();
        Frame::Request(ticket, request).encode(&mut frame);
        if let Err(too_large) = Channel::fits(frame.len(), pool.template.ring_bytes) {
            return Err(super::send_fault(too_large, &pool.name));
        }
        frame.shrink_to_fit();
        pool.queue.push_back(Waiting { ticket, frame, deadline });
        Ok(())
    }

    /// The live instance of pool `p` to send an ask to: the fewest asks in flight below its
    /// limit, round-robin among equals.
    fn pick(&mut self, p: usize) -> Option<usize> {
        let pool = &self.pools[p];
        let limit = pool.max_in_flight();
        let n = pool.members.len();
        let mut best: Option<(usize, usize)> = None;
        for k in 0..n {
            let at = (pool.cursor + k) % n;
            let slot = &self.slots[pool.members[at]];
            if !taking(slot) {
                continue;
            }
            let busy = slot.busy();
            if busy < limit && best.is_none_or(|(_, b)| busy < b) {
                best = Some((at, busy));
            }
        }
        let (at, _) = best?;
        self.pools[p].cursor = (at + 1) % n;
        Some(self.pools[p].members[at])
    }

    /// Why no ask of pool `p` can be answered, if none can: no instance runs nor will.
    fn hopeless(&self, p: usize) -> Option<String> {
        let pool = &self.pools[p];
        // While the daemon stops (and drains its connections), the instances still running
        // serve what waits; nothing is restarted or grown any more.
        let halting = self.halting;
        let coming = |s: &Slot| {
            !s.retired
                && match &s.run {
                    Some(run) => !halting || run.stopping.is_none(),
                    None => !halting && s.wanted && s.down == State::Backoff,
                }
        };
        let grows = !halting && pool.autoscale.is_some_and(|(_, max)| max > 0);
        if pool.members.iter().any(|&i| coming(&self.slots[i])) || grows {
            return None;
        }
        if halting {
            return Some(format!("pool '{}' is stopping with the daemon", pool.name));
        }
        Some(match self.size(p) {
            0 => format!("pool '{}' has no instances (scaled to 0)", pool.name),
            _ => format!("pool '{}' has no instance running", pool.name),
        })
    }

    /// Sends pool `p`'s waiting asks to instances with room, or fails them when none will come.
    fn pump(&mut self, p: usize) {
        if let Some(why) = self.hopeless(p).filter(|_| !self.pools[p].queue.is_empty()) {
            for w in std::mem::take(&mut self.pools[p].queue) {
                self.answers.push((w.ticket, Err(crate::faults::worker_unavailable(why.clone()))));
            }
            return;
        }
        while !self.pools[p].queue.is_empty() {
            let Some(i) = self.pick(p) else { return };
            let w = self.pools[p].queue.pop_front().expect("not empty");
            if let Err(fault) = self.send_frame(i, w.ticket, &w.frame, w.deadline) {
                self.answers.push((w.ticket, Err(fault)));
            }
        }
    }

    /// Forgets the ask of `ticket`, whose caller went away: out of a queue, or its answer
    /// dropped when it comes.
    pub(crate) fn cancel(&mut self, ticket: u64) {
        for pool in &mut self.pools {
            if let Some(at) = pool.queue.iter().position(|w| w.ticket == ticket) {
                pool.queue.remove(at);
                return;
            }
        }
        for run in self.slots.iter_mut().filter_map(|s| s.run.as_mut()) {
            if let Some(at) = run.asks.iter().position(|&(t, _)| t == ticket) {
                run.asks.remove(at);
                run.late.push(ticket);
                return;
            }
        }
    }

    /// Calls `done(true)` once `name` (a worker, an instance, or every instance of a pool) is
    /// running — a process past its spinup and not stopping — when `running`, or has no process
    /// when not; `done(false)` at `deadline`.
    pub(crate) fn when_settled(&mut self, name: &str, running: bool, deadline: Instant, done: Box<dyn FnOnce(bool)>) {
        match self.targets(name) {
            Ok(slots) => self.settles.push(Settle { slots, running, deadline, done }),
            Err(_) => done(false),
        }
    }

    /// Whether a wait for running can only fail: one of its workers has no process and none is
    /// coming (not in back-off, not restarting).
    fn never_runs(&self, s: &Settle) -> bool {
        s.running
            && s.slots.iter().any(|&i| {
                let slot = &self.slots[i];
                slot.run.is_none() && slot.restart_at.is_none() && slot.down != State::Backoff
            })
    }

    fn settled(&self, s: &Settle) -> bool {
        s.slots.iter().all(|&i| {
            let slot = &self.slots[i];
            match (&slot.run, s.running) {
                (Some(run), true) => run.stopping.is_none() && matches!(slot.state(), State::Looping | State::Paused),
                (None, false) => true,
                _ => false,
            }
        })
    }

    /// Every turn: deadlines of asks, memory limits, recycling, autoscaling, queues, settles.
    pub(super) fn tend_pools(&mut self, now: Instant) {
        self.expire(now);
        self.recycle(now);
        self.retire_idle();
        for p in 0..self.pools.len() {
            self.autoscale(p, now);
            self.pump(p);
        }
        if !self.settles.is_empty() {
            for s in std::mem::take(&mut self.settles) {
                let verdict = match self.settled(&s) {
                    true => Some(true),
                    false if now >= s.deadline || self.never_runs(&s) => Some(false),
                    false => None,
                };
                match verdict {
                    // A callback that panics is logged; the supervisor goes on.
                    Some(ok) => {
                        let done = s.done;
                        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || done(ok))) {
                            log::error!("a wait for a worker panicked: {}", tomte_rpc::fault::panic_text(&*panic));
                        }
                    }
                    None => self.settles.push(s),
                }
            }
        }
    }

    /// Answers the asks past their deadline with −32003.
    fn expire(&mut self, now: Instant) {
        let due = |d: &Option<Instant>| d.is_some_and(|d| d <= now);
        for pool in &mut self.pools {
            while let Some(w) = pool.queue.front().filter(|w| due(&w.deadline)) {
                let why = format!("no instance of pool '{}' was free within its ask timeout", pool.name);
                self.answers.push((w.ticket, Err(crate::faults::timed_out(why))));
                pool.queue.pop_front();
            }
        }
        for slot in &mut self.slots {
            let Some(run) = slot.run.as_mut() else { continue };
            if !run.asks.iter().any(|(_, d)| due(d)) {
                continue;
            }
            let name = &slot.spec.name;
            let limit = slot.spec.ask_timeout.unwrap_or_default();
            let answers = &mut self.answers;
            run.asks.retain(|(ticket, d)| {
                if !due(d) {
                    return true;
                }
                log::warn!("worker {name}: no answer to an ask within {limit:?}; its caller is told it timed out");
                let why = format!("worker '{name}' did not answer within {limit:?}");
                answers.push((*ticket, Err(crate::faults::timed_out(why))));
                run.late.push(*ticket);
                false
            });
        }
    }

    /// Restarts the processes past their `max_requests` or `max_memory`: they take no more asks
    /// and answer those they hold first.
    fn recycle(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            // One instance of a pool at a time: instances that took their asks in turn reach
            // `max_requests` together, and the pool would have none serving.
            if let Some(p) = self.slots[i].pool {
                let recycling = |j: &usize| {
                    let s = &self.slots[*j];
                    *j != i && !s.retired && s.wanted && s.run.as_ref().is_none_or(|r| r.stopping.is_some())
                };
                if self.pools[p].members.iter().any(recycling) {
                    continue;
                }
            }
            let slot = &mut self.slots[i];
            let Some(run) = slot.run.as_mut().filter(|r| r.stopping.is_none() && !slot.retired) else { continue };
            let mut why = None;
            if slot.spec.max_requests.is_some_and(|n| run.served >= n) {
                why = Some(format!("answered {} asks, its max_requests", run.served));
            }
            if let Some(limit) = slot.spec.max_memory.filter(|_| now.duration_since(run.memory_checked) >= MEMORY_EVERY)
            {
                run.memory_checked = now;
                if let Some(rss) = resident_bytes(run.pid).filter(|&rss| rss > limit) {
                    why = Some(format!("uses {} KiB of memory, over its max_memory of {} KiB", rss >> 10, limit >> 10));
                }
            }
            if let Some(why) = why {
                log::info!("worker {} {why}: restarting it", slot.spec.name);
                let _ = self.stop_slot(i, true);
            }
        }
    }

    /// Grows an autoscaled pool while asks wait, shrinks it when idle.
    fn autoscale(&mut self, p: usize, now: Instant) {
        let Some((min, max)) = self.pools[p].autoscale else { return };
        if self.halting {
            return;
        }
        let busy = !self.pools[p].queue.is_empty() || self.pools[p].members.iter().any(|&i| self.slots[i].busy() > 0);
        if busy {
            self.pools[p].busy_at = now;
        }
        let size = self.size(p);
        let pool = &self.pools[p];
        let target = if !pool.queue.is_empty() && size < max && now.duration_since(pool.scaled_at) >= GROW_EVERY {
            size + 1
        } else if !busy && size > min && now.duration_since(pool.busy_at.max(pool.scaled_at)) >= SHRINK_AFTER {
            size - 1
        } else {
            return;
        };
        self.pools[p].scaled_at = now;
        log::info!("pool {}: {size} -> {target} instances (autoscale {min}..{max})", self.pools[p].name);
        if let Err(f) = self.resize(p, target) {
            log::error!("pool {}: cannot scale to {target}: {}", self.pools[p].name, f.message);
        }
    }

    /// The nearest moment the pools need the loop: a deadline of an ask, a memory check, an
    /// autoscaling step, a settle.
    pub(super) fn pools_deadline(&self, earliest: &mut impl FnMut(Instant)) {
        for (p, pool) in self.pools.iter().enumerate() {
            if let Some(d) = pool.queue.front().and_then(|w| w.deadline) {
                earliest(d);
            }
            // Only a step that can be taken: a pool at its bound has none to wait for.
            if let (Some((min, max)), false) = (pool.autoscale, self.halting) {
                let size = self.size(p);
                if !pool.queue.is_empty() && size < max {
                    earliest(pool.scaled_at + GROW_EVERY);
                } else if pool.queue.is_empty() && size > min {
                    earliest(pool.busy_at.max(pool.scaled_at) + SHRINK_AFTER);
                }
            }
        }
        for slot in &self.slots {
            let Some(run) = &slot.run else { continue };
            if let Some(d) = run.asks.iter().filter_map(|(_, d)| *d).min() {
                earliest(d);
            }
            // As `recycle` checks: a process being stopped is not.
            if slot.spec.max_memory.is_some() && run.stopping.is_none() && !slot.retired {
                earliest(run.memory_checked + MEMORY_EVERY);
            }
        }
        if let Some(d) = self.settles.iter().map(|s| s.deadline).min() {
            // A worker's state is in the shared mapping: look often while someone waits for it.
            earliest(d.min(Instant::now() + Duration::from_millis(10)));
        }
    }
}

/// Whether a pool instance takes asks now: its process runs, is not stopping (nor recycled),
/// and it was not scaled away.
fn taking(slot: &Slot) -> bool {
    !slot.retired && slot.run.as_ref().is_some_and(|r| r.stopping.is_none())
}

/// A process's resident memory (`VmRSS` of `/proc/PID/status`).
fn resident_bytes(pid: rustix::process::Pid) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.as_raw_nonzero())).ok()?;
    crate::metrics::process::parse_rss(&status)
}
