//! The Prometheus text exposition format (0.0.4), read: samples with their labels, and
//! quantiles estimated from histogram buckets as Prometheus's `histogram_quantile` does.
//!
//! Only what `tomtectl metrics` needs: `# TYPE` is kept, `# HELP` and other comments skipped,
//! timestamps ignored. A line that cannot be read is an error naming its number, so a daemon
//! that writes a bad exposition is told, not shown half.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",…} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric name, suffixes (`_total`, `_bucket`) included.
    pub name: String,
    /// The labels, in the order written.
    pub labels: Labels,
    /// The value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if it has one.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A parsed exposition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// Each family's `# TYPE` (`counter`, `gauge`, `histogram`, …) by family name.
    pub types: BTreeMap<String, String>,
}

/// Why an exposition could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line} of the exposition: {why}")]
pub struct ParseError {
    /// The line's number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub why: String,
}

impl Exposition {
    /// Reads `text`.
    pub fn parse(text: &str) -> Result<Exposition, ParseError> {
        let mut out = Exposition::default();
        for (i, line) in text.lines().enumerate() {
            let err = |why: String| ParseError { line: i + 1, why };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                if words.next() == Some("TYPE") {
                    let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                        return Err(err("a TYPE line without a name and a type".into()));
                    };
                    out.types.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            out.samples.push(sample(line).map_err(err)?);
        }
        Ok(out)
    }

    /// The samples of metric `name` (the exact sample name: `…_total`, `…_bucket`).
    pub fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Sample> + 'a {
        let name = name.to_owned();
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the one sample of `name` without labels (or the first), if any.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.named(name).next().map(|s| s.value)
    }

    /// The buckets of histogram `family` for the series whose label `key` is `value`: (upper
    /// bound, cumulative count) sorted by bound, `+Inf` last.
    pub fn buckets(&self, family: &str, key: &str, value: &str) -> Vec<(f64, f64)> {
        let name = format!("{family}_bucket");
        let mut buckets: Vec<(f64, f64)> = self
            .named(&name)
            .filter(|s| s.label(key) == Some(value))
            .filter_map(|s| Some((parse_value(s.label("le")?).ok()?, s.value)))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

/// A quantile estimated from histogram buckets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Estimate {
    /// Within the finite buckets, interpolated linearly in the bucket it falls in.
    Within(f64),
    /// Past the largest finite bound (in the `+Inf` bucket): at least this.
    Above(f64),
}

/// Quantile `q` (0..=1) of the observations counted by `buckets` (upper bound, cumulative
/// count, sorted, `+Inf` last), as Prometheus's `histogram_quantile` estimates it: `None`
/// when nothing was observed (or the buckets have no `+Inf`).
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<Estimate> {
    let &(last_bound, total) = buckets.last()?;
    if last_bound != f64::INFINITY || total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (i, &(bound, count)) in buckets.iter().enumerate() {
        if count >= rank && count > below {
            if bound == f64::INFINITY {
                return Some(match i {
                    0 => Estimate::Above(0.0),
                    _ => Estimate::Above(buckets[i - 1].0),
                });
            }
            // The first bucket's lower bound is 0 (latencies are not negative), unless its
            // upper bound is itself below 0.
            let lower = if i == 0 && bound <= 0.0 { bound } else { lower };
            return Some(Estimate::Within(lower + (bound - lower) * (rank - below) / (count - below)));
        }
        lower = bound;
        below = count;
    }
    None
}

/// One sample line, comments and blanks already skipped.
fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).ok_or("a name without a value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad metric name '{name}'"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = label_set(after)?;
        labels = parsed;
        rest = tail;
    }
    let mut words = rest.split_whitespace();
    let value = words.next().ok_or_else(|| format!("{name} has no value"))?;
    let value = parse_value(value).map_err(|()| format!("{name} has a bad value '{value}'"))?;
    if let Some(ts) = words.next() {
        ts.parse::<i64>().map_err(|_| format!("{name} has a bad timestamp '{ts}'"))?;
    }
    if let Some(extra) = words.next() {
        return Err(format!("{name} has more after its value: '{extra}'"));
    }
    Ok(Sample { name: name.to_owned(), labels, value })
}

/// Label names and values, in order.
type Labels = Vec<(String, String)>;

/// `k="v",…}` (the opening brace eaten): the labels and what follows the closing brace.
fn label_set(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("a label without '='")?;
        let key = s[..eq].trim();
        if !valid_name(key) || key.contains(':') {
            return Err(format!("bad label name '{key}'"));
        }
        let rest = s[eq + 1..].trim_start();
        let rest = rest.strip_prefix('"').ok_or_else(|| format!("label {key}'s value is not quoted"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    Some((_, c)) => return Err(format!("label {key}: unknown escape '\\{c}'")),
                    None => return Err(format!("label {key}'s value is not closed")),
                },
                Some((_, c)) => value.push(c),
                None => return Err(format!("label {key}'s value is not closed")),
            }
        };
        labels.push((key.to_owned(), value));
        s = rest[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err(format!("after label {key}: expected ',' or '}}'"));
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A sample value: a Go float, `+Inf`, `-Inf`, `NaN`.
fn parse_value(s: &str) -> Result<f64, ()> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP tomte_rpc_calls_total Calls served, by method and outcome.
# TYPE tomte_rpc_calls_total counter
tomte_rpc_calls_total{method="daemon.status",outcome="ok"} 3
tomte_rpc_calls_total{method="my.echo",outcome="fault"} 1 1700000000000
# TYPE tomte_rpc_call_duration_seconds histogram
tomte_rpc_call_duration_seconds_bucket{method="daemon.status",le="0.001"} 2
tomte_rpc_call_duration_seconds_bucket{method="daemon.status",le="+Inf"} 3
tomte_rpc_call_duration_seconds_bucket{method="daemon.status",le="0.01"} 3
tomte_rpc_call_duration_seconds_sum{method="daemon.status"} 0.0031
tomte_rpc_call_duration_seconds_count{method="daemon.status"} 3
tomte_connections{listener="unix:///tmp/a \"b\"\\c\nd"} 2
process_resident_memory_bytes 2.1e+06
odd_value NaN
"#;

    #[test]
    fn reads_samples_labels_types_and_escapes() {
        let e = Exposition::parse(TEXT).unwrap();
        assert_eq!(e.samples.len(), 10);
        assert_eq!(e.types["tomte_rpc_calls_total"], "counter");
        assert_eq!(e.types["tomte_rpc_call_duration_seconds"], "histogram");
        let calls: Vec<_> = e.named("tomte_rpc_calls_total").collect();
        assert_eq!(calls[0].label("method"), Some("daemon.status"));
        assert_eq!(calls[0].label("outcome"), Some("ok"));
        assert_eq!(calls[0].value, 3.0);
        assert_eq!(calls[1].value, 1.0, "the timestamp is not the value");
        let conn = e.named("tomte_connections").next().unwrap();
        assert_eq!(conn.label("listener"), Some("unix:///tmp/a \"b\"\\c\nd"));
        assert_eq!(e.value("process_resident_memory_bytes"), Some(2.1e6));
        assert!(e.value("odd_value").unwrap().is_nan());
        assert_eq!(e.value("missing"), None);
        let b = e.buckets("tomte_rpc_call_duration_seconds", "method", "daemon.status");
        assert_eq!(b, vec![(0.001, 2.0), (0.01, 3.0), (f64::INFINITY, 3.0)], "sorted by bound");
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        for (text, why) in [
            ("a 1\nb{x=\"1} 2\n", "not closed"),
            ("9lives 1", "bad metric name"),
            ("x{le=1} 2", "not quoted"),
            ("x{a=\"1\" b=\"2\"} 3", "expected ','"),
            ("x", "without a value"),
            ("x one", "bad value"),
            ("x 1 2 3", "more after"),
            ("x{a=\"\\t\"} 1", "unknown escape"),
        ] {
            let e = Exposition::parse(text).unwrap_err();
            assert!(e.why.contains(why), "{text:?}: {e}");
        }
        assert_eq!(Exposition::parse("a 1\nb{x=\"1} 2\n").unwrap_err().line, 2);
        // A trailing comma and spaces inside the braces are allowed.
        let e = Exposition::parse("x{ a = \"1\", } 3").unwrap();
        assert_eq!(e.samples[0].labels, vec![("a".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let b = [(0.001, 50.0), (0.01, 90.0), (0.1, 100.0), (f64::INFINITY, 100.0)];
        // p50: rank 50, all in the first bucket [0, 0.001].
        assert_eq!(quantile(0.5, &b), Some(Estimate::Within(0.001)));
        // p25: half way into the first bucket.
        assert_eq!(quantile(0.25, &b), Some(Estimate::Within(0.0005)));
        // p70: rank 70, half way through (0.001, 0.01].
        let Some(Estimate::Within(p70)) = quantile(0.7, &b) else { panic!() };
        assert!((p70 - 0.0055).abs() < 1e-12, "{p70}");
        // p99: rank 99, 9/10 of (0.01, 0.1].
        let Some(Estimate::Within(p99)) = quantile(0.99, &b) else { panic!() };
        assert!((p99 - 0.091).abs() < 1e-12, "{p99}");
    }

    #[test]
    fn quantiles_past_the_last_bound_or_of_nothing() {
        let b = [(0.001, 1.0), (0.01, 2.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(0.99, &b), Some(Estimate::Above(0.01)));
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None, "nothing observed");
        assert_eq!(quantile(0.5, &[(0.1, 3.0)]), None, "no +Inf bucket");
        assert_eq!(quantile(0.5, &[]), None);
        assert_eq!(quantile(1.5, &b), None);
        // Empty buckets before the rank are skipped: the rank falls where counts rise.
        let b = [(0.001, 0.0), (0.01, 0.0), (0.1, 4.0), (f64::INFINITY, 4.0)];
        let Some(Estimate::Within(p50)) = quantile(0.5, &b) else { panic!() };
        assert!((p50 - 0.055).abs() < 1e-12, "{p50}");
    }
}
