//! The application's own metrics: counters, gauges and histograms, with or without labels,
//! registered by name and rendered after the daemon's families.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use tomte_rpc::Value;

use super::text::{Encoder, Kind};

/// Why a metric could not be registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The name is not a Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
    #[error("'{0}' is not a metric name: use ASCII letters, digits, '_' and ':', not starting with a digit")]
    BadName(String),
    /// The name starts with a prefix the daemon's own families use (`tomte_`, `process_`).
    #[error("'{0}' is reserved: the names tomte_* and process_* are the daemon's own")]
    Reserved(String),
    /// A label name is not one (`[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`; `le` is a
    /// histogram's own), or is given twice.
    #[error("'{label}' is not a label name of metric '{metric}'")]
    BadLabel {
        /// The metric's name.
        metric: String,
        /// The label's name.
        label: String,
    },
    /// A metric of that name is registered already, of another kind or with other labels or
    /// buckets.
    #[error("metric '{0}' is registered already, as something else")]
    Conflict(String),
    /// Histogram buckets must be finite and increasing, and at least one.
    #[error("the buckets of histogram '{0}' are not finite increasing numbers")]
    BadBuckets(String),
}

/// A histogram's figures: per bucket (not cumulative; the last is `+Inf`), sum.
#[derive(Debug)]
struct HistogramCore {
    bounds: Rc<[f64]>,
    counts: Box<[Cell<u64>]>,
    sum: Cell<f64>,
}

impl HistogramCore {
    fn new(bounds: Rc<[f64]>) -> HistogramCore {
        let counts = (0..=bounds.len()).map(|_| Cell::new(0)).collect();
        HistogramCore { bounds, counts, sum: Cell::new(0.0) }
    }
}

/// A counter: a number that only goes up. Cheap to clone (an `Rc`); clones count together.
#[derive(Clone, Debug, Default)]
pub struct Counter(Rc<Cell<u64>>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }
    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.set(self.0.get().wrapping_add(n));
    }
    /// Its value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A gauge: a number that goes up and down. Cheap to clone (an `Rc`).
#[derive(Clone, Debug, Default)]
pub struct Gauge(Rc<Cell<f64>>);

impl Gauge {
    /// Sets it.
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }
    /// Adds `v` (negative: subtracts).
    pub fn add(&self, v: f64) {
        self.0.set(self.0.get() + v);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.add(1.0);
    }
    /// Subtracts one.
    pub fn dec(&self) {
        self.add(-1.0);
    }
    /// Its value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A histogram: observations counted in buckets, with their sum. Cheap to clone (an `Rc`).
#[derive(Clone, Debug)]
pub struct Histogram(Rc<HistogramCore>);

impl Histogram {
    /// Records one observation (seconds, bytes…).
    pub fn observe(&self, v: f64) {
        // A NaN is below no bound: it counts in +Inf, as other clients count it.
        let bucket = if v.is_nan() { self.0.bounds.len() } else { self.0.bounds.partition_point(|&le| le < v) };
        let c = &self.0.counts[bucket];
        c.set(c.get() + 1);
        self.0.sum.set(self.0.sum.get() + v);
    }
    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0.counts.iter().map(Cell::get).sum()
    }
    /// Their sum.
    pub fn sum(&self) -> f64 {
        self.0.sum.get()
    }
}

/// The values of one series.
#[derive(Clone, Debug)]
enum Series {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum FamilyKind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug)]
struct Family {
    /// The family's name: a counter's without `_total`.
    name: String,
    help: String,
    kind: FamilyKind,
    labels: Vec<String>,
    bounds: Rc<[f64]>,
    /// Label values and series, in creation order.
    series: RefCell<Vec<(Box<[String]>, Series)>>,
}

impl Family {
    fn series(&self, values: &[&str]) -> Series {
        assert_eq!(
            values.len(),
            self.labels.len(),
            "metric '{}' has labels {:?}: give one value for each",
            self.name,
            self.labels
        );
        let mut series = self.series.borrow_mut();
        if let Some((_, s)) = series.iter().find(|(v, _)| v.iter().map(String::as_str).eq(values.iter().copied())) {
            return s.clone();
        }
        let s = match self.kind {
            FamilyKind::Counter => Series::Counter(Counter::default()),
            FamilyKind::Gauge => Series::Gauge(Gauge::default()),
            FamilyKind::Histogram => Series::Histogram(Histogram(Rc::new(HistogramCore::new(Rc::clone(&self.bounds))))),
        };
        series.push((values.iter().map(|v| (*v).to_owned()).collect(), s.clone()));
        s
    }
}

/// A family of counters told apart by labels: `.with(&["a"])` is the counter of label value
/// `a` (made at its first use). Cheap to clone.
#[derive(Clone, Debug)]
pub struct CounterVec(Rc<Family>);

/// A family of gauges told apart by labels (see [`CounterVec`]).
#[derive(Clone, Debug)]
pub struct GaugeVec(Rc<Family>);

/// A family of histograms told apart by labels (see [`CounterVec`]).
#[derive(Clone, Debug)]
pub struct HistogramVec(Rc<Family>);

macro_rules! with {
    ($vec:ident, $handle:ident) => {
        impl $vec {
            #[doc = concat!("The ", stringify!($handle), " of these label values, in the order the labels were named.")]
            ///
            /// Each distinct set of values is a series kept for the daemon's life: use labels
            /// whose values are few and known (a queue's name, not a client's input).
            ///
            /// # Panics
            /// When the number of values is not the number of labels: a programming error.
            pub fn with(&self, values: &[&str]) -> $handle {
                match self.0.series(values) {
                    Series::$handle(h) => h,
                    _ => unreachable!("a family holds one kind"),
                }
            }
        }
    };
}
with!(CounterVec, Counter);
with!(GaugeVec, Gauge);
with!(HistogramVec, Histogram);

/// Whether `s` is a metric name (`colon`: `:` allowed) or a label name.
pub(super) fn valid(s: &str, colon: bool) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || (colon && c == b':'))
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || (colon && c == b':'))
}

/// The names the samples of a family of `kind` called `name` carry.
fn sample_names(kind: FamilyKind, name: &str) -> Vec<String> {
    match kind {
        FamilyKind::Counter => vec![format!("{name}_total")],
        FamilyKind::Gauge => vec![name.to_owned()],
        FamilyKind::Histogram => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{name}{s}")).collect(),
    }
}

/// Whether two families of different names would write a sample name both.
fn clash(a: FamilyKind, a_name: &str, b: FamilyKind, b_name: &str) -> bool {
    let (a, b) = (sample_names(a, a_name), sample_names(b, b_name));
    a.iter().any(|n| b.contains(n))
}

/// The application's metrics registry: [`Ctx::metrics`](crate::Ctx::metrics) gives the
/// daemon's, which `GET /metrics` renders after the daemon's own families.
///
/// Registering a name a second time with the same kind, labels and buckets gives back the
/// same metric (its help text stays the first one's), so a handler may simply ask for it each time; keeping the
/// handle (it is an `Rc`, cheap to clone) saves the lookup. Everything is plain numbers in
/// `Cell`s: the daemon is one thread.
///
/// ```
/// use tomte::metrics::Metrics;
/// # fn main() -> Result<(), tomte::metrics::MetricsError> {
/// let metrics = Metrics::default();
/// let jobs = metrics.counter_vec("jobs_total", "Jobs done, by queue.", &["queue"])?;
/// jobs.with(&["mail"]).inc();
/// let depth = metrics.gauge("queue_depth", "Jobs waiting.")?;
/// depth.set(3.0);
/// let took = metrics.histogram("job_seconds", "How long a job took.", &[0.01, 0.1, 1.0])?;
/// took.observe(0.05);
/// assert_eq!(metrics.counter_vec("jobs_total", "", &["queue"])?.with(&["mail"]).get(), 1);
/// assert!(metrics.gauge("jobs_total", "").is_err(), "a counter already");
/// # Ok(()) }
/// ```
///
/// In a handler:
///
/// ```
/// use tomte::{Ctx, Method, Value};
/// let m: Method<Ctx> = Method::new("app.work", |_, ctx| {
///     ctx.metrics().counter("app_work_total", "Work done.").map_err(|e| tomte::Fault::internal(e.to_string()))?.inc();
///     Ok(Value::Nil)
/// });
/// ```
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    families: Rc<RefCell<Vec<Rc<Family>>>>,
}

/// The buckets of [`Metrics::histogram`] when none are given: those of the daemon's call
/// latency (seconds).
pub const DEFAULT_BUCKETS: &[f64] = &tomte_rpc::stats::BUCKETS;

impl Metrics {
    /// A counter without labels. `name` may end in `_total` or not: its samples do.
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, MetricsError> {
        Ok(CounterVec(self.family(name, help, FamilyKind::Counter, &[], &[])?).with(&[]))
    }

    /// Counters with labels.
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<CounterVec, MetricsError> {
        Ok(CounterVec(self.family(name, help, FamilyKind::Counter, labels, &[])?))
    }

    /// A gauge without labels.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, MetricsError> {
        Ok(GaugeVec(self.family(name, help, FamilyKind::Gauge, &[], &[])?).with(&[]))
    }

    /// Gauges with labels.
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, MetricsError> {
        Ok(GaugeVec(self.family(name, help, FamilyKind::Gauge, labels, &[])?))
    }

    /// A histogram without labels, with these bucket bounds (increasing; `+Inf` is added;
    /// empty: [`DEFAULT_BUCKETS`]).
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Histogram, MetricsError> {
        Ok(HistogramVec(self.family(name, help, FamilyKind::Histogram, &[], buckets)?).with(&[]))
    }

    /// Histograms with labels.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, MetricsError> {
        Ok(HistogramVec(self.family(name, help, FamilyKind::Histogram, labels, buckets)?))
    }

    fn family(
        &self,
        name: &str,
        help: &str,
        kind: FamilyKind,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<Rc<Family>, MetricsError> {
        if !valid(name, true) {
            return Err(MetricsError::BadName(name.to_owned()));
        }
        if name.starts_with("tomte_") || name.starts_with("process_") {
            return Err(MetricsError::Reserved(name.to_owned()));
        }
        let base = match kind {
            FamilyKind::Counter => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        for (i, l) in labels.iter().enumerate() {
            if !valid(l, false)
                || l.starts_with("__")
                || (kind == FamilyKind::Histogram && *l == "le")
                || labels[..i].contains(l)
            {
                return Err(MetricsError::BadLabel { metric: name.to_owned(), label: (*l).to_owned() });
            }
        }
        let buckets = if kind == FamilyKind::Histogram && buckets.is_empty() { DEFAULT_BUCKETS } else { buckets };
        if !buckets.iter().all(|b| b.is_finite()) || !buckets.windows(2).all(|w| w[0] < w[1]) {
            return Err(MetricsError::BadBuckets(name.to_owned()));
        }
        let mut families = self.families.borrow_mut();
        if let Some(f) = families.iter().find(|f| f.name == base) {
            return if f.kind == kind
                && f.labels.iter().map(String::as_str).eq(labels.iter().copied())
                && *f.bounds == *buckets
            {
                Ok(Rc::clone(f))
            } else {
                Err(MetricsError::Conflict(name.to_owned()))
            };
        }
        // Another family whose samples would carry the same names (a gauge `x_total` beside a
        // counter `x`, a gauge `h_sum` beside a histogram `h`) would be one series twice.
        if families.iter().any(|f| f.name != base && clash(f.kind, &f.name, kind, base)) {
            return Err(MetricsError::Conflict(name.to_owned()));
        }
        let f = Rc::new(Family {
            name: base.to_owned(),
            help: help.to_owned(),
            kind,
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            bounds: buckets.into(),
            series: RefCell::default(),
        });
        families.push(Rc::clone(&f));
        Ok(f)
    }

    /// Whether no family is registered.
    pub fn is_empty(&self) -> bool {
        self.families.borrow().is_empty()
    }

    /// Every family as a value, for a worker to send to the daemon (see
    /// [`super::workers`] for its shape).
    pub(crate) fn snapshot(&self) -> Value {
        let strings = |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
        let families = self.families.borrow();
        Value::Array(
            families
                .iter()
                .map(|f| {
                    let series = f.series.borrow();
                    let series = series.iter().map(|(values, s)| {
                        let v = match s {
                            Series::Counter(c) => Value::Int(i64::try_from(c.get()).unwrap_or(i64::MAX)),
                            Series::Gauge(g) => Value::Double(g.get()),
                            Series::Histogram(h) => Value::Array(vec![
                                Value::Array(
                                    h.0.counts
                                        .iter()
                                        .map(|c| Value::Int(i64::try_from(c.get()).unwrap_or(i64::MAX)))
                                        .collect(),
                                ),
                                Value::Double(h.0.sum.get()),
                            ]),
                        };
                        Value::Array(vec![strings(values), v])
                    });
                    Value::Array(vec![
                        Value::from(f.name.as_str()),
                        Value::from(f.help.as_str()),
                        Value::from(match f.kind {
                            FamilyKind::Counter => "counter",
                            FamilyKind::Gauge => "gauge",
                            FamilyKind::Histogram => "histogram",
                        }),
                        strings(&f.labels),
                        Value::Array(f.bounds.iter().map(|b| Value::Double(*b)).collect()),
                        Value::Array(series.collect()),
                    ])
                })
                .collect(),
        )
    }

    /// The sample names its families write (`x_total`, `h_bucket`…): the workers' families may
    /// not write them again.
    pub(crate) fn sample_names(&self) -> Vec<String> {
        self.families.borrow().iter().flat_map(|f| sample_names(f.kind, &f.name)).collect()
    }

    /// Writes every family, in registration order.
    pub(crate) fn render(&self, e: &mut Encoder<'_>) {
        for f in self.families.borrow().iter() {
            let kind = match f.kind {
                FamilyKind::Counter => Kind::Counter,
                FamilyKind::Gauge => Kind::Gauge,
                FamilyKind::Histogram => Kind::Histogram,
            };
            e.family(&f.name, kind, &f.help);
            let all = f.series.borrow();
            let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(f.labels.len());
            for (values, series) in all.iter() {
                pairs.clear();
                pairs.extend(f.labels.iter().map(String::as_str).zip(values.iter().map(String::as_str)));
                match series {
                    Series::Counter(c) => e.sample(&f.name, "_total", &pairs, c.get()),
                    Series::Gauge(g) => e.sample(&f.name, "", &pairs, g.get()),
                    Series::Histogram(h) => {
                        let h = &h.0;
                        let bounds = h.bounds.iter().copied().chain([f64::INFINITY]);
                        let cumulative = bounds.zip(h.counts.iter()).scan(0u64, |acc, (le, n)| {
                            *acc += n.get();
                            Some((le, *acc))
                        });
                        let count = h.counts.iter().map(Cell::get).sum();
                        e.histogram(&f.name, &pairs, cumulative, h.sum.get(), count);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Format;

    #[test]
    fn names_and_labels_are_checked() {
        let m = Metrics::default();
        assert_eq!(m.counter("9x", "").unwrap_err(), MetricsError::BadName("9x".into()));
        assert_eq!(m.counter("a-b", "").unwrap_err(), MetricsError::BadName("a-b".into()));
        assert_eq!(m.gauge("tomte_x", "").unwrap_err(), MetricsError::Reserved("tomte_x".into()));
        assert!(matches!(m.counter_vec("x", "", &["__a"]), Err(MetricsError::BadLabel { .. })));
        assert!(matches!(m.counter_vec("x", "", &["a", "a"]), Err(MetricsError::BadLabel { .. })));
        assert!(matches!(m.histogram_vec("h", "", &["le"], &[]), Err(MetricsError::BadLabel { .. })));
        assert_eq!(m.histogram("h", "", &[2.0, 1.0]).unwrap_err(), MetricsError::BadBuckets("h".into()));
        m.counter("jobs_total", "").unwrap();
        assert!(m.counter("jobs", "").is_ok(), "the same counter");
        assert_eq!(m.gauge("jobs_total", "").unwrap_err(), MetricsError::Conflict("jobs_total".into()));
        m.histogram("h2", "", &[]).unwrap();
        assert_eq!(m.gauge("h2_sum", "").unwrap_err(), MetricsError::Conflict("h2_sum".into()));
        assert_eq!(m.counter_vec("jobs", "", &["q"]).unwrap_err(), MetricsError::Conflict("jobs".into()));
    }

    #[test]
    fn renders_after_registration_order_with_labels() {
        let m = Metrics::default();
        let jobs = m.counter_vec("jobs_total", "Jobs.", &["queue", "kind"]).unwrap();
        jobs.with(&["a", "x"]).inc();
        jobs.with(&["a", "x"]).inc_by(2);
        jobs.with(&["b", "y"]).inc();
        m.gauge("depth", "Depth.").unwrap().set(-1.5);
        let h = m.histogram_vec("took_seconds", "Took.", &["q"], &[0.5, 1.0]).unwrap();
        h.with(&["a"]).observe(0.7);
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out, Format::OpenMetrics);
        m.render(&mut e);
        e.finish();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP jobs Jobs.\n# TYPE jobs counter\n\
             jobs_total{queue=\"a\",kind=\"x\"} 3\njobs_total{queue=\"b\",kind=\"y\"} 1\n\
             # HELP depth Depth.\n# TYPE depth gauge\ndepth -1.5\n\
             # HELP took_seconds Took.\n# TYPE took_seconds histogram\n\
             took_seconds_bucket{q=\"a\",le=\"0.5\"} 0\ntook_seconds_bucket{q=\"a\",le=\"1.0\"} 1\n\
             took_seconds_bucket{q=\"a\",le=\"+Inf\"} 1\ntook_seconds_sum{q=\"a\"} 0.7\ntook_seconds_count{q=\"a\"} 1\n\
             # EOF\n"
        );
    }

    #[test]
    #[should_panic(expected = "give one value for each")]
    fn a_wrong_number_of_label_values_is_a_programming_error() {
        Metrics::default().counter_vec("x", "", &["a"]).unwrap().with(&[]);
    }
}
