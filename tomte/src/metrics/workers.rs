//! Workers' own metrics: each worker's [`Metrics`](super::Metrics) travels to the daemon as a
//! value (at most once a second, see [`WorkerCtx::metrics`](crate::worker::WorkerCtx::metrics)),
//! and `/metrics` merges them, family by family, with a `worker` label first.
//!
//! A snapshot is an array of families, each
//! `[name, help, kind ("counter" | "gauge" | "histogram"), [label names], [bucket bounds], [series]]`,
//! a series `[[label values], value]`, the value an int (counter), a double (gauge) or
//! `[[count per bucket, +Inf last], sum]` (histogram). What does not have this shape — or
//! names a label `worker`, or is not the same family as another worker's of that name — is left
//! out, never written half.

use tomte_rpc::Value;

use super::app::valid;
use super::text::{Encoder, Kind};

/// One family of a snapshot, checked.
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    kind: Kind,
    labels: &'a [Value],
    bounds: &'a [Value],
    series: &'a [Value],
}

impl<'a> Family<'a> {
    fn read(v: &'a Value) -> Option<Family<'a>> {
        let [name, help, kind, labels, bounds, series] = v.as_array()? else { return None };
        let name =
            name.as_str().filter(|n| valid(n, true) && !n.starts_with("tomte_") && !n.starts_with("process_"))?;
        let kind = match kind.as_str()? {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            _ => return None,
        };
        let labels = labels.as_array()?;
        let label_ok = |l: &Value| {
            l.as_str().is_some_and(|l| valid(l, false) && l != "worker" && l != "le" && !l.starts_with("__"))
        };
        let unique = labels.iter().enumerate().all(|(i, l)| !labels[..i].contains(l));
        let bounds = bounds.as_array()?;
        let finite = bounds.iter().all(|b| b.as_f64().is_some_and(f64::is_finite));
        let rising = bounds.windows(2).all(|w| w[0].as_f64() < w[1].as_f64());
        if !labels.iter().all(label_ok) || !unique || !finite || !rising {
            return None;
        }
        Some(Family { name, help: help.as_str()?, kind, labels, bounds, series: series.as_array()? })
    }

    fn same_as(&self, other: &Family<'_>) -> bool {
        self.kind == other.kind && self.labels == other.labels && self.bounds == other.bounds
    }
}

/// The sample names a family writes.
fn samples(kind: Kind, name: &str) -> Vec<String> {
    match kind {
        Kind::Counter => vec![format!("{name}_total")],
        Kind::Histogram => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{name}{s}")).collect(),
        _ => vec![name.to_owned()],
    }
}

/// Writes the families of every worker's snapshot, merged by name, in the order they first
/// appear. `taken`: the sample names already written (the application's); a family that would
/// write one again, or one another worker's family of another name writes, is left out (a
/// family must appear once, whole).
pub(crate) fn render(e: &mut Encoder<'_>, snapshots: &[(&str, &Value)], mut taken: Vec<String>) {
    let families: Vec<(&str, Vec<Family<'_>>)> = snapshots
        .iter()
        .map(|(w, v)| (*w, v.as_array().unwrap_or_default().iter().filter_map(Family::read).collect()))
        .collect();
    let mut done: Vec<&str> = Vec::new();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (_, fams) in &families {
        for first in fams {
            if done.contains(&first.name) {
                continue;
            }
            done.push(first.name);
            let names = samples(first.kind, first.name);
            if names.iter().any(|n| taken.contains(n)) {
                continue;
            }
            taken.extend(names);
            e.family(first.name, first.kind, first.help);
            for (worker, fams) in &families {
                let Some(f) = fams.iter().find(|f| f.name == first.name).filter(|f| f.same_as(first)) else { continue };
                for s in f.series {
                    let Some([values, value]) = s.as_array() else { continue };
                    let Some(values) = values.as_array().filter(|v| v.len() == f.labels.len()) else { continue };
                    pairs.clear();
                    pairs.push(("worker", worker));
                    let names = f.labels.iter().filter_map(Value::as_str);
                    pairs.extend(names.zip(values.iter().map(|v| v.as_str().unwrap_or(""))));
                    write_series(e, f, &pairs, value);
                }
            }
        }
    }
}

fn write_series(e: &mut Encoder<'_>, f: &Family<'_>, labels: &[(&str, &str)], value: &Value) {
    match (f.kind, value) {
        (Kind::Counter, Value::Int(n)) => e.sample(f.name, "_total", labels, u64::try_from(*n).unwrap_or(0)),
        (Kind::Gauge, Value::Double(g)) => e.sample(f.name, "", labels, *g),
        (Kind::Histogram, Value::Array(h)) => {
            let [Value::Array(counts), Value::Double(sum)] = h.as_slice() else { return };
            if counts.len() != f.bounds.len() + 1 || !counts.iter().all(|c| c.as_i64().is_some_and(|c| c >= 0)) {
                return;
            }
            let bounds = f.bounds.iter().filter_map(Value::as_f64).chain([f64::INFINITY]);
            // Saturating: a worker's counts are its own word, and must not overflow here.
            let cumulative: Vec<(f64, u64)> = bounds
                .zip(counts)
                .scan(0u64, |acc, (le, c)| {
                    *acc = acc.saturating_add(c.as_i64().unwrap_or(0).unsigned_abs());
                    Some((le, *acc))
                })
                .collect();
            let count = cumulative.last().map_or(0, |(_, n)| *n);
            e.histogram(f.name, labels, cumulative.into_iter(), *sum, count);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Format, Metrics};

    #[test]
    fn snapshots_of_several_workers_merge_by_family_with_a_worker_label() {
        let a = Metrics::default();
        a.counter("jobs_total", "Jobs.").unwrap().inc_by(3);
        a.histogram("took_seconds", "Took.", &[1.0]).unwrap().observe(0.5);
        a.counter_vec("bad", "A label the daemon adds.", &["worker"]).unwrap().with(&["x"]).inc();
        let b = Metrics::default();
        b.gauge("depth", "Depth.").unwrap().set(2.0);
        b.counter("jobs", "Jobs.").unwrap().inc();
        let c = Metrics::default();
        c.gauge("jobs", "Not the same family.").unwrap().set(1.0);
        let (sa, sb, sc) = (a.snapshot(), b.snapshot(), c.snapshot());
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out, Format::Prometheus);
        render(&mut e, &[("alpha", &sa), ("beta", &sb), ("gamma", &sc), ("junk", &Value::from("x"))], Vec::new());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\n\
             jobs_total{worker=\"alpha\"} 3\njobs_total{worker=\"beta\"} 1\n\
             # HELP took_seconds Took.\n# TYPE took_seconds histogram\n\
             took_seconds_bucket{worker=\"alpha\",le=\"1.0\"} 1\ntook_seconds_bucket{worker=\"alpha\",le=\"+Inf\"} 1\n\
             took_seconds_sum{worker=\"alpha\"} 0.5\ntook_seconds_count{worker=\"alpha\"} 1\n\
             # HELP depth Depth.\n# TYPE depth gauge\ndepth{worker=\"beta\"} 2\n"
        );
    }

    #[test]
    fn a_family_that_would_repeat_a_sample_name_is_left_out_and_counts_never_overflow() {
        let a = Metrics::default();
        a.counter("jobs", "Jobs.").unwrap().inc();
        a.gauge("dup", "Duplicated labels.").unwrap().set(1.0);
        let b = Metrics::default();
        b.gauge("jobs_total", "A gauge writing the counter's sample name.").unwrap().set(1.0);
        let bad = Value::Array(vec![
            Value::Array(vec![
                "lat".into(),
                "Counts a worker made up.".into(),
                "histogram".into(),
                Value::Array(vec![]),
                Value::Array(vec![Value::Double(1.0), Value::Double(2.0)]),
                Value::Array(vec![Value::Array(vec![
                    Value::Array(vec![]),
                    Value::Array(vec![
                        Value::Array(vec![Value::Int(i64::MAX), Value::Int(i64::MAX), Value::Int(i64::MAX)]),
                        Value::Double(1.0),
                    ]),
                ])]),
            ]),
            Value::Array(vec![
                "twice".into(),
                "Two labels of one name.".into(),
                "gauge".into(),
                Value::Array(vec!["x".into(), "x".into()]),
                Value::Array(vec![]),
                Value::Array(vec![]),
            ]),
        ]);
        let (sa, sb) = (a.snapshot(), b.snapshot());
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out, Format::Prometheus);
        // The application already writes `dup`.
        render(&mut e, &[("alpha", &sa), ("beta", &sb), ("gamma", &bad)], vec!["dup".to_owned()]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("jobs_total{worker=\"alpha\"} 1"), "{text}");
        assert!(!text.contains("worker=\"beta\""), "beta's jobs_total gauge clashes: {text}");
        assert!(!text.contains("dup"), "the application's family is not repeated: {text}");
        assert!(!text.contains("twice"), "{text}");
        // Three times i64::MAX saturates: the +Inf bucket and the count agree.
        assert!(text.contains(&format!("lat_bucket{{worker=\"gamma\",le=\"+Inf\"}} {}", u64::MAX)), "{text}");
        assert!(text.contains(&format!("lat_count{{worker=\"gamma\"}} {}", u64::MAX)), "{text}");
    }
}
