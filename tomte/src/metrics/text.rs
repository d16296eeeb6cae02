//! The text encoder: Prometheus exposition format 0.0.4 and OpenMetrics 1.0.0, written straight
//! into the answer's buffer.
//!
//! Hand-written rather than `prometheus-client`'s: that crate keeps every value behind an
//! atomic in an `Arc` and locks each family to encode it, which a one-thread daemon pays for
//! and never needs; here values are plain numbers read as they are written, no family is
//! built per scrape, and the code is the few rules of the two formats below.
//!
//! Where the formats differ:
//!
//! | | 0.0.4 | OpenMetrics 1.0.0 |
//! | --- | --- | --- |
//! | counter `x_total` | `# TYPE x_total counter` | `# TYPE x counter` |
//! | `# HELP` text escapes | `\\`, newline | `\\`, newline, `"` |
//! | info `x_info` | a gauge `x_info` | `# TYPE x info` |
//! | end | — | `# EOF` |
//!
//! Label values escape `\\`, `"` and newline in both; floats are written as Rust's shortest
//! round-trip form, with `+Inf`, `-Inf` and `NaN`; bucket bounds (`le`) in the canonical form
//! OpenMetrics asks for (`1.0`, not `1`).

use std::io::Write;

/// The two text formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text exposition format 0.0.4 (`text/plain; version=0.0.4`).
    Prometheus,
    /// OpenMetrics 1.0.0 (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// The `Content-Type` of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The `Content-Type` of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The format a request's `Accept` header asks for: OpenMetrics when it lists
/// `application/openmetrics-text` (with a version of 1.x or none, and a quality above zero),
/// as Prometheus does when it scrapes; the Prometheus text format otherwise (no header, `*/*`,
/// `text/plain`, anything else).
///
/// ```
/// use tomte::metrics::{format_for, Format};
/// let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// assert_eq!(format_for(Some(prometheus)), Format::OpenMetrics);
/// assert_eq!(format_for(Some("text/plain")), Format::Prometheus);
/// assert_eq!(format_for(None), Format::Prometheus);
/// ```
pub fn format_for(accept: Option<&str>) -> Format {
    let Some(accept) = accept else { return Format::Prometheus };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        if !parts.next().is_some_and(|t| t.eq_ignore_ascii_case("application/openmetrics-text")) {
            continue;
        }
        let mut ok = true;
        for p in parts {
            let Some((k, v)) = p.split_once('=') else { continue };
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if k.eq_ignore_ascii_case("q") && v.parse::<f32>().is_ok_and(|q| q <= 0.0) {
                ok = false;
            }
            if k.eq_ignore_ascii_case("version") && !v.starts_with("1.") {
                ok = false;
            }
        }
        if ok {
            return Format::OpenMetrics;
        }
    }
    Format::Prometheus
}

/// What a family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
    /// A gauge of value 1 whose labels carry the information (`tomte_build_info`).
    Info,
}

/// A number as the formats write it.
pub(crate) trait Number {
    fn write_to(self, out: &mut Vec<u8>);
}

impl Number for u64 {
    fn write_to(self, out: &mut Vec<u8>) {
        let _ = write!(out, "{self}");
    }
}

impl Number for usize {
    fn write_to(self, out: &mut Vec<u8>) {
        let _ = write!(out, "{self}");
    }
}

impl Number for i64 {
    fn write_to(self, out: &mut Vec<u8>) {
        let _ = write!(out, "{self}");
    }
}

impl Number for f64 {
    fn write_to(self, out: &mut Vec<u8>) {
        if self.is_nan() {
            out.extend_from_slice(b"NaN");
        } else if self.is_infinite() {
            out.extend_from_slice(if self > 0.0 { b"+Inf" } else { b"-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// Writes families and their samples into a buffer, in one format.
pub(crate) struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    format: Format,
}

impl<'a> Encoder<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, format: Format) -> Encoder<'a> {
        Encoder { out, format }
    }

    /// The `# HELP` and `# TYPE` lines of a family. `name` is the family's: for a counter
    /// without `_total`, for an info without `_info` (the samples add them).
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let om = self.format == Format::OpenMetrics;
        let (suffix, kind_name) = match (kind, om) {
            (Kind::Counter, true) => ("", "counter"),
            (Kind::Counter, false) => ("_total", "counter"),
            (Kind::Gauge, _) => ("", "gauge"),
            (Kind::Histogram, _) => ("", "histogram"),
            (Kind::Info, true) => ("", "info"),
            (Kind::Info, false) => ("_info", "gauge"),
        };
        self.out.extend_from_slice(b"# HELP ");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(suffix.as_bytes());
        self.out.push(b' ');
        escape(self.out, help, om);
        self.out.extend_from_slice(b"\n# TYPE ");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(suffix.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(kind_name.as_bytes());
        self.out.push(b'\n');
    }

    /// One sample: `name` + `suffix` (`_total`, `_bucket`…), labels, value.
    pub(crate) fn sample(&mut self, name: &str, suffix: &str, labels: &[(&str, &str)], value: impl Number) {
        self.start(name, suffix, labels);
        self.end_labels(!labels.is_empty());
        value.write_to(self.out);
        self.out.push(b'\n');
    }

    /// The samples of one histogram: a bucket per bound (cumulative counts, the last bound
    /// `+Inf`), then `_sum` and `_count`.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: impl Iterator<Item = (f64, u64)>,
        sum: f64,
        count: u64,
    ) {
        for (le, n) in buckets {
            self.start(name, "_bucket", labels);
            if !labels.is_empty() {
                self.out.push(b',');
            }
            self.out.extend_from_slice(b"le=\"");
            if le.is_infinite() {
                self.out.extend_from_slice(b"+Inf");
            } else {
                // `{:?}` is the canonical form: `1.0`, `0.25`.
                let _ = write!(self.out, "{le:?}");
            }
            self.out.extend_from_slice(b"\"} ");
            n.write_to(self.out);
            self.out.push(b'\n');
        }
        self.sample(name, "_sum", labels, sum);
        self.sample(name, "_count", labels, count);
    }

    /// The end of the exposition (`# EOF` in OpenMetrics).
    pub(crate) fn finish(self) {
        if self.format == Format::OpenMetrics {
            self.out.extend_from_slice(b"# EOF\n");
        }
    }

    /// The name and the labels, without the closing brace.
    fn start(&mut self, name: &str, suffix: &str, labels: &[(&str, &str)]) {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(suffix.as_bytes());
        if labels.is_empty() && suffix != "_bucket" {
            return;
        }
        self.out.push(b'{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(k.as_bytes());
            self.out.extend_from_slice(b"=\"");
            escape(self.out, v, true);
            self.out.push(b'"');
        }
    }

    fn end_labels(&mut self, any: bool) {
        self.out.extend_from_slice(if any { b"} " } else { b" " });
    }
}

/// Escapes a label value (`quotes`: `"` too, as label values and OpenMetrics help text want)
/// or a 0.0.4 help text.
fn escape(out: &mut Vec<u8>, s: &str, quotes: bool) {
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'"' if quotes => b"\\\"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(esc);
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(format: Format, f: impl FnOnce(&mut Encoder<'_>)) -> String {
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out, format);
        f(&mut e);
        e.finish();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn counters_are_named_as_each_format_wants_and_values_escaped() {
        let body = |e: &mut Encoder<'_>| {
            e.family("calls", Kind::Counter, "Calls \"served\"\\\nby method");
            e.sample("calls", "_total", &[("method", "a\"b\\c\nd")], 3u64);
        };
        assert_eq!(
            render(Format::Prometheus, body),
            "# HELP calls_total Calls \"served\"\\\\\\nby method\n# TYPE calls_total counter\n\
             calls_total{method=\"a\\\"b\\\\c\\nd\"} 3\n"
        );
        assert_eq!(
            render(Format::OpenMetrics, body),
            "# HELP calls Calls \\\"served\\\"\\\\\\nby method\n# TYPE calls counter\n\
             calls_total{method=\"a\\\"b\\\\c\\nd\"} 3\n# EOF\n"
        );
    }

    #[test]
    fn floats_infinities_and_histograms() {
        let text = render(Format::Prometheus, |e| {
            e.family("g", Kind::Gauge, "a gauge");
            e.sample("g", "", &[], f64::NAN);
            e.sample("g", "", &[("x", "1")], f64::NEG_INFINITY);
            e.sample("g", "", &[("x", "2")], 0.5);
            e.family("h", Kind::Histogram, "a histogram");
            e.histogram("h", &[], [(1.0, 1), (2.5, 2), (f64::INFINITY, 3)].into_iter(), 4.5, 3);
            e.histogram("h", &[("m", "x")], [(f64::INFINITY, 0)].into_iter(), 0.0, 0);
        });
        assert_eq!(
            text,
            "# HELP g a gauge\n# TYPE g gauge\ng NaN\ng{x=\"1\"} -Inf\ng{x=\"2\"} 0.5\n\
             # HELP h a histogram\n# TYPE h histogram\n\
             h_bucket{le=\"1.0\"} 1\nh_bucket{le=\"2.5\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4.5\nh_count 3\n\
             h_bucket{m=\"x\",le=\"+Inf\"} 0\nh_sum{m=\"x\"} 0\nh_count{m=\"x\"} 0\n"
        );
    }

    #[test]
    fn info_is_a_gauge_in_0_0_4_and_an_info_in_openmetrics() {
        let body = |e: &mut Encoder<'_>| {
            e.family("build", Kind::Info, "b");
            e.sample("build", "_info", &[("version", "1")], 1u64);
        };
        assert!(render(Format::Prometheus, body).starts_with("# HELP build_info b\n# TYPE build_info gauge\n"));
        assert!(render(Format::OpenMetrics, body).starts_with("# HELP build b\n# TYPE build info\n"));
    }

    #[test]
    fn accept_headers() {
        assert_eq!(format_for(Some("application/openmetrics-text")), Format::OpenMetrics);
        assert_eq!(format_for(Some("text/plain, application/openmetrics-text; q=0")), Format::Prometheus);
        assert_eq!(format_for(Some("application/openmetrics-text;version=0.0.1")), Format::Prometheus);
        assert_eq!(format_for(Some("*/*")), Format::Prometheus);
    }
}
