//! Call statistics: per registered method, calls by [`Outcome`] and a latency histogram.
//!
//! The registry keeps one [`MethodStats`] per method, at the method's index, so recording a
//! call costs the lookup dispatch already makes, a clock read at each end and a few `Cell`
//! additions: the daemon is one thread, so there is no atomic and no lock. A name that is not
//! registered never gets a slot of its own (clients choose those names: a label per name
//! would let them grow the daemon's memory and every scrape): such calls are counted in one
//! number, [`Stats::unknown`].
//!
//! A method answering later is recorded when its future completes — or, dropped unfinished
//! (the client went away, a batch refused it), as an [`Outcome::Error`].
//!
//! With statistics off ([`crate::Registry::set_stats`]) nothing is recorded and the clock is
//! not read; the total of calls ([`Stats::total`]) is counted either way.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use crate::fault::{self, Fault};
use crate::value::Value;

/// The upper bounds, in seconds, of the latency histogram's buckets (the last, `+Inf`, is
/// implicit): from 100 µs, a call answered from memory, to 10 s, a slow worker.
pub const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The handler answered.
    Ok,
    /// The handler returned a fault (other than −32602) or panicked; or its future was
    /// dropped before it answered.
    Error,
    /// The parameters were refused (−32602), by the signatures or by the handler's own reading.
    Invalid,
    /// The gate refused the caller.
    Denied,
}

impl Outcome {
    /// Every outcome, in the order [`MethodStats::calls`] indexes them.
    pub const ALL: [Outcome; 4] = [Outcome::Ok, Outcome::Error, Outcome::Invalid, Outcome::Denied];

    /// Its label value: `ok`, `error`, `invalid`, `denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Invalid => "invalid",
            Outcome::Denied => "denied",
        }
    }

    /// The outcome of a handler's answer.
    pub fn of(result: &Result<Value, Fault>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(f) => Outcome::of_fault(f),
        }
    }

    /// The outcome of a fault a method's own code (signatures or handler) gave.
    pub fn of_fault(f: &Fault) -> Outcome {
        if f.code == fault::INVALID_PARAMS {
            Outcome::Invalid
        } else {
            Outcome::Error
        }
    }
}

/// One method's figures.
#[derive(Debug, Default)]
pub struct MethodStats {
    calls: [Cell<u64>; 4],
    /// Per bucket, not cumulative (the renderer adds them up); the last one is `+Inf`.
    buckets: [Cell<u64>; BUCKETS.len() + 1],
    sum: Cell<f64>,
}

impl MethodStats {
    /// Calls that ended in `outcome`.
    pub fn calls(&self, outcome: Outcome) -> u64 {
        self.calls[outcome as usize].get()
    }

    /// Calls of every outcome.
    pub fn count(&self) -> u64 {
        self.calls.iter().map(Cell::get).sum()
    }

    /// The seconds all recorded calls took together.
    pub fn sum(&self) -> f64 {
        self.sum.get()
    }

    /// The histogram, cumulative as Prometheus writes it: for each bound of [`BUCKETS`] then
    /// `+Inf` (`f64::INFINITY`), the calls that took at most that long.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = BUCKETS.iter().copied().chain(std::iter::once(f64::INFINITY));
        bounds.zip(&self.buckets).scan(0u64, |acc, (le, n)| {
            *acc += n.get();
            Some((le, *acc))
        })
    }

    fn record(&self, outcome: Outcome, seconds: f64) {
        let c = &self.calls[outcome as usize];
        c.set(c.get() + 1);
        let b = &self.buckets[BUCKETS.partition_point(|&le| le < seconds)];
        b.set(b.get() + 1);
        self.sum.set(self.sum.get() + seconds);
    }
}

/// The statistics of one registry, shared (an `Rc`) with the futures of its methods that
/// answer later.
#[derive(Debug)]
pub struct Stats {
    on: Cell<bool>,
    methods: RefCell<Vec<MethodStats>>,
    unknown: Cell<u64>,
    total: Cell<u64>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats { on: Cell::new(true), methods: RefCell::default(), unknown: Cell::new(0), total: Cell::new(0) }
    }
}

impl Stats {
    /// Whether calls are recorded.
    pub fn enabled(&self) -> bool {
        self.on.get()
    }

    /// Calls of names no method has (not counted per name: clients choose them).
    pub fn unknown(&self) -> u64 {
        self.unknown.get()
    }

    /// Every call the registry ran or refused, unknown names included; counted even with
    /// statistics off.
    pub fn total(&self) -> u64 {
        self.total.get()
    }

    /// Runs `f` on the figures of each method, by index in registration order.
    pub fn with_methods<R>(&self, f: impl FnOnce(&[MethodStats]) -> R) -> R {
        f(&self.methods.borrow())
    }

    pub(crate) fn set_enabled(&self, on: bool) {
        self.on.set(on);
    }

    /// A slot for the method just registered.
    pub(crate) fn push(&self) {
        self.methods.borrow_mut().push(MethodStats::default());
    }

    pub(crate) fn count_unknown(&self) {
        self.total.set(self.total.get() + 1);
        if self.on.get() {
            self.unknown.set(self.unknown.get() + 1);
        }
    }

    /// The start of a call: counts it, and reads the clock when recording.
    #[inline]
    pub(crate) fn start(&self) -> Option<Instant> {
        self.total.set(self.total.get() + 1);
        self.on.get().then(Instant::now)
    }

    /// The end of a call of method `index` that started at `start` (none: not recorded).
    #[inline]
    pub(crate) fn finish(&self, index: usize, outcome: Outcome, start: Option<Instant>) {
        let Some(start) = start else { return };
        let seconds = start.elapsed().as_secs_f64();
        if let Some(m) = self.methods.borrow().get(index) {
            m.record(outcome, seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_bounds_inclusive_and_cumulative() {
        let m = MethodStats::default();
        m.record(Outcome::Ok, 0.0001);
        m.record(Outcome::Ok, 0.0002);
        m.record(Outcome::Error, 11.0);
        let c: Vec<(f64, u64)> = m.cumulative().collect();
        assert_eq!(c.len(), 17);
        assert_eq!(c[0], (0.0001, 1), "le is inclusive");
        assert_eq!(c[1], (0.00025, 2));
        assert_eq!(c[15], (10.0, 2));
        assert_eq!(c[16], (f64::INFINITY, 3));
        assert_eq!(m.count(), 3);
        assert_eq!(m.calls(Outcome::Error), 1);
        assert!((m.sum() - 11.0003).abs() < 1e-9);
    }
}
