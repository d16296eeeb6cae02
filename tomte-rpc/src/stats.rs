//! Call statistics: per registered method, calls by [`Outcome`] and a latency histogram.
//!
//! The registry keeps one [`MethodStats`] per method, at the method's index, so recording a
//! call costs the lookup dispatch already makes and a few `Cell` additions: the daemon is one
//! thread, so there is no atomic and no lock.
//!
//! # Timing
//!
//! Reading the clock twice costs 50–100 ns on a virtual machine — nearly a tenth of a call
//! answered from memory on a pipelined connection. So a method's calls are timed one in
//! [`SAMPLE`] (the first always), and every call while the last one timed took
//! [`ALWAYS_TIMED`] or more (the clock is then noise: async calls waiting for a worker, slow
//! handlers). A call that is not timed counts as the last timed one did: in its bucket, and
//! its duration in the sum. The counts are exact — `_count` is the number of calls, each in
//! one bucket — and the distribution is that of one call in 16 for fast methods, which is
//! what a latency histogram of calls arriving by the thousand a second needs.
//!
//! A name that is not
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

/// One call in this many of a fast method is timed (see [Timing](self#timing)).
pub const SAMPLE: u32 = 16;

/// A method whose last timed call took this long or longer (seconds) has every call timed.
pub const ALWAYS_TIMED: f64 = 50e-6;

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
    /// Calls since the last timed one.
    untimed: Cell<u32>,
    /// The bucket and duration of the last timed call (what untimed calls count as).
    last_bucket: Cell<usize>,
    last_seconds: Cell<f64>,
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

    /// Whether the next call is to be timed.
    #[inline]
    fn time_next(&self) -> bool {
        let n = self.untimed.get();
        if n == 0 || n >= SAMPLE || self.last_seconds.get() >= ALWAYS_TIMED {
            return true;
        }
        self.untimed.set(n + 1);
        false
    }

    /// A call that took `seconds` (none: not timed; it counts as the last timed one did).
    #[inline]
    fn record(&self, outcome: Outcome, seconds: Option<f64>) {
        let c = &self.calls[outcome as usize];
        c.set(c.get() + 1);
        let (bucket, seconds) = match seconds {
            // A refused call (denied, bad parameters) is booked as it took, but says nothing of
            // how long the method's calls take: the sampling goes on from the last one that ran,
            // so a caller that is refused cannot make a slow method's calls look fast.
            Some(s) if matches!(outcome, Outcome::Denied | Outcome::Invalid) => {
                (BUCKETS.partition_point(|&le| le < s), s)
            }
            Some(s) => {
                let bucket = BUCKETS.partition_point(|&le| le < s);
                self.last_bucket.set(bucket);
                self.last_seconds.set(s);
                // Counts from 1: 0 means never timed (the next call is).
                self.untimed.set(1);
                (bucket, s)
            }
            None => (self.last_bucket.get(), self.last_seconds.get()),
        };
        let b = &self.buckets[bucket];
        b.set(b.get() + 1);
        self.sum.set(self.sum.get() + seconds);
    }
}

/// When a call started, as far as its statistics need to know.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Start {
    /// Statistics are off: nothing is recorded.
    Off,
    /// Recorded, not timed (see [Timing](self#timing)).
    Untimed,
    /// Recorded and timed from this instant.
    At(Instant),
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

    /// The start of a call of method `index`: counts it, and reads the clock when this call
    /// is timed.
    #[inline]
    pub(crate) fn start(&self, index: usize) -> Start {
        self.total.set(self.total.get() + 1);
        if !self.on.get() {
            return Start::Off;
        }
        match self.methods.borrow().get(index) {
            Some(m) if m.time_next() => Start::At(Instant::now()),
            _ => Start::Untimed,
        }
    }

    /// The end of a call of method `index` that started at `start`.
    #[inline]
    pub(crate) fn finish(&self, index: usize, outcome: Outcome, start: Start) {
        let seconds = match start {
            Start::Off => return,
            Start::Untimed => None,
            Start::At(at) => Some(at.elapsed().as_secs_f64()),
        };
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
        m.record(Outcome::Ok, Some(0.0001));
        m.record(Outcome::Ok, Some(0.0002));
        m.record(Outcome::Error, Some(11.0));
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

    #[test]
    fn fast_methods_are_timed_one_call_in_sixteen_slow_ones_always_and_every_call_counts() {
        let s = Stats::default();
        s.push();
        let timed = |s: &Stats| matches!(s.start(0), Start::At(_));
        // The first call is timed; say it took 1 µs.
        assert!(timed(&s));
        s.methods.borrow()[0].record(Outcome::Ok, Some(1e-6));
        let mut pattern = Vec::new();
        for _ in 0..32 {
            let t = timed(&s);
            pattern.push(t);
            s.methods.borrow()[0].record(Outcome::Ok, t.then_some(1e-6));
        }
        assert_eq!(pattern.iter().filter(|t| **t).count(), 2, "{pattern:?}");
        assert!(pattern[15] && pattern[31], "one in 16: {pattern:?}");
        let m = &s.methods.borrow()[0];
        assert_eq!(m.count(), 33);
        assert_eq!(m.cumulative().next(), Some((0.0001, 33)), "untimed calls count as the last timed one");
        assert!((m.sum() - 33e-6).abs() < 1e-12);
        // A slow call: every call from then on is timed, until one is fast again.
        m.record(Outcome::Ok, Some(0.2));
        assert!(timed(&s) && timed(&s));
        s.set_enabled(false);
        assert!(matches!(s.start(0), Start::Off));
        assert_eq!(s.total(), 36);
    }

    #[test]
    fn a_refused_call_does_not_make_a_slow_method_look_fast() {
        let s = Stats::default();
        s.push();
        let m = |s: &Stats| s.methods.borrow()[0].count();
        // A slow method: every call is timed.
        assert!(matches!(s.start(0), Start::At(_)));
        s.methods.borrow()[0].record(Outcome::Ok, Some(0.02));
        // A caller refused in a microsecond…
        assert!(matches!(s.start(0), Start::At(_)));
        s.methods.borrow()[0].record(Outcome::Denied, Some(1e-6));
        s.methods.borrow()[0].record(Outcome::Invalid, Some(1e-6));
        // …leaves the next calls timed, booked at what they take.
        for _ in 0..5 {
            assert!(matches!(s.start(0), Start::At(_)), "still timed after a refusal");
            s.methods.borrow()[0].record(Outcome::Ok, Some(0.02));
        }
        assert_eq!(m(&s), 8);
        let fast = s.methods.borrow()[0].cumulative().next().unwrap().1;
        assert_eq!(fast, 2, "only the two refusals in the lowest bucket");
    }
}
