//! The `metrics` table: the main figures of a daemon's `/metrics`, for a person to read.
//!
//! Sections (each left out when the daemon exports none of its figures): calls per method and
//! outcome with p50/p99 latency estimated from the histogram buckets; connections per
//! listener (open now, accepted) and traffic (bytes in and out, refused connections, limit
//! hits); workers (up, state, restarts, iterations, asks answered and in flight) and pools
//! (instances, queued asks); the process
//! (resident memory, CPU seconds, open fds, uptime).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::exposition::{quantile, Estimate, Exposition};

/// Calls served, by method and outcome.
const CALLS: &str = "tomte_rpc_calls_total";
/// Call latency histogram, by method.
const DURATION: &str = "tomte_rpc_call_duration_seconds";
/// Calls of names no method has.
const UNKNOWN: &str = "tomte_rpc_unknown_method_calls_total";
/// Connections open now, by listener.
const OPEN: &str = "tomte_connections";
/// Connections accepted, by listener (and dialect: summed here).
const ACCEPTED: &str = "tomte_connections_accepted_total";

/// Renders the table of `e`; `now` (seconds since the epoch) gives the uptime from
/// `process_start_time_seconds`.
pub fn render(e: &Exposition, now: f64) -> String {
    let mut out = String::new();
    calls(e, &mut out);
    connections(e, &mut out);
    traffic(e, &mut out);
    workers(e, &mut out);
    pools(e, &mut out);
    process(e, now, &mut out);
    if out.is_empty() {
        out.push_str("(no tomte or process figures in this exposition: see --raw)\n");
    }
    out
}

fn calls(e: &Exposition, out: &mut String) {
    // method -> outcome -> count
    let mut by_method: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
    let mut outcomes: Vec<&str> = Vec::new();
    for s in e.named(CALLS) {
        let (Some(method), Some(outcome)) = (s.label("method"), s.label("outcome")) else { continue };
        *by_method.entry(method).or_default().entry(outcome).or_default() += s.value;
        if !outcomes.contains(&outcome) {
            outcomes.push(outcome);
        }
    }
    // Methods timed but never counted still show their latency.
    for s in e.named(&format!("{DURATION}_count")) {
        if let Some(method) = s.label("method") {
            by_method.entry(method).or_default();
        }
    }
    if by_method.is_empty() {
        return;
    }
    // "ok" first, the others as they came.
    outcomes.sort_by_key(|o| *o != "ok");
    let width = by_method.keys().map(|m| m.len()).max().unwrap_or(0).max("METHOD".len());
    let _ = write!(out, "{:<width$}", "METHOD");
    for o in &outcomes {
        let _ = write!(out, " {:>9}", o.to_uppercase());
    }
    let _ = writeln!(out, " {:>9} {:>9} {:>9}", "TOTAL", "P50", "P99");
    let mut totals = vec![0.0; outcomes.len()];
    for (method, counts) in &by_method {
        let _ = write!(out, "{method:<width$}");
        for (i, o) in outcomes.iter().enumerate() {
            let n = counts.get(o).copied().unwrap_or(0.0);
            totals[i] += n;
            let _ = write!(out, " {:>9}", count(n));
        }
        let buckets = e.buckets(DURATION, "method", method);
        let _ = writeln!(
            out,
            " {:>9} {:>9} {:>9}",
            count(counts.values().sum()),
            latency(quantile(0.5, &buckets)),
            latency(quantile(0.99, &buckets))
        );
    }
    if by_method.len() > 1 {
        let _ = write!(out, "{:<width$}", "(all)");
        for n in &totals {
            let _ = write!(out, " {:>9}", count(*n));
        }
        let _ = writeln!(out, " {:>9}", count(totals.iter().sum()));
    }
    if let Some(n) = e.value(UNKNOWN).filter(|&n| n > 0.0) {
        let _ = writeln!(out, "(and {} calls of methods the daemon does not have)", count(n));
    }
    out.push('\n');
}

fn connections(e: &Exposition, out: &mut String) {
    // listener -> (open, accepted)
    let mut by_listener: BTreeMap<&str, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for s in e.named(OPEN) {
        let entry = by_listener.entry(s.label("listener").unwrap_or("-")).or_default();
        *entry.0.get_or_insert(0.0) += s.value;
    }
    for s in e.named(ACCEPTED) {
        let entry = by_listener.entry(s.label("listener").unwrap_or("-")).or_default();
        *entry.1.get_or_insert(0.0) += s.value;
    }
    if by_listener.is_empty() {
        return;
    }
    let width = by_listener.keys().map(|l| l.len()).max().unwrap_or(0).max("LISTENER".len());
    let _ = writeln!(out, "{:<width$} {:>9} {:>9}", "LISTENER", "OPEN", "ACCEPTED");
    let or_dash = |v: Option<f64>| v.map_or("-".to_owned(), count);
    for (listener, (open, accepted)) in &by_listener {
        let _ = writeln!(out, "{listener:<width$} {:>9} {:>9}", or_dash(*open), or_dash(*accepted));
    }
    out.push('\n');
}

/// One line: bytes in and out, refused connections and limit hits, each summed over its labels.
fn traffic(e: &Exposition, out: &mut String) {
    let sum = |name: &str| -> Option<f64> {
        let mut samples = e.named(name).peekable();
        samples.peek()?;
        Some(samples.map(|s| s.value).sum())
    };
    let mut parts = Vec::new();
    if let Some(n) = sum("tomte_connection_bytes_received_total") {
        parts.push(format!("in {}", bytes(n)));
    }
    if let Some(n) = sum("tomte_connection_bytes_sent_total") {
        parts.push(format!("out {}", bytes(n)));
    }
    if let Some(n) = sum("tomte_connections_refused_total") {
        parts.push(format!("refused {}", count(n)));
    }
    if let Some(n) = sum("tomte_limit_hits_total") {
        parts.push(format!("limit hits {}", count(n)));
    }
    if !parts.is_empty() {
        let _ = writeln!(out, "TRAFFIC  {}\n", parts.join("   "));
    }
}

fn workers(e: &Exposition, out: &mut String) {
    #[derive(Default)]
    struct Row {
        up: Option<f64>,
        state: Option<String>,
        restarts: Option<f64>,
        iterations: Option<f64>,
        asks: Option<f64>,
        in_flight: Option<f64>,
    }
    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    for s in &e.samples {
        const NAMES: [&str; 6] = [
            "tomte_worker_up",
            "tomte_worker_state",
            "tomte_worker_restarts_total",
            "tomte_worker_iterations_total",
            "tomte_worker_asks_total",
            "tomte_worker_asks_in_flight",
        ];
        let Some(worker) = s.label("worker").filter(|_| NAMES.contains(&s.name.as_str())) else { continue };
        let row = rows.entry(worker).or_default();
        match s.name.as_str() {
            "tomte_worker_up" => row.up = Some(s.value),
            // A state set (one series per state, 1 for the current one), or a bare number.
            "tomte_worker_state" => match s.label("state") {
                Some(state) if s.value == 1.0 => row.state = Some(state.to_owned()),
                Some(_) => {}
                None => row.state = Some(count(s.value)),
            },
            "tomte_worker_restarts_total" => row.restarts = Some(s.value),
            "tomte_worker_asks_total" => row.asks = Some(s.value),
            "tomte_worker_asks_in_flight" => row.in_flight = Some(s.value),
            _ => row.iterations = Some(s.value),
        }
    }
    if rows.is_empty() {
        return;
    }
    let width = rows.keys().map(|w| w.len()).max().unwrap_or(0).max("WORKER".len());
    let _ = writeln!(
        out,
        "{:<width$} {:>3}  {:<9} {:>9} {:>11} {:>9} {:>9}",
        "WORKER", "UP", "STATE", "RESTARTS", "ITERATIONS", "ASKS", "IN FLIGHT"
    );
    let or_dash = |v: Option<f64>| v.map_or("-".to_owned(), count);
    for (worker, r) in &rows {
        let up = match r.up {
            Some(v) if v >= 1.0 => "yes".to_owned(),
            Some(_) => "no".to_owned(),
            None => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{worker:<width$} {up:>3}  {:<9} {:>9} {:>11} {:>9} {:>9}",
            r.state.as_deref().unwrap_or("-"),
            or_dash(r.restarts),
            or_dash(r.iterations),
            or_dash(r.asks),
            or_dash(r.in_flight)
        );
    }
    out.push('\n');
}

/// `POOL NAME  N instances, Q queued`, a line per pool.
fn pools(e: &Exposition, out: &mut String) {
    let mut pools: BTreeMap<&str, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for s in &e.samples {
        let Some(pool) = s.label("pool") else { continue };
        match s.name.as_str() {
            "tomte_pool_instances" => pools.entry(pool).or_default().0 = Some(s.value),
            "tomte_pool_queued" => pools.entry(pool).or_default().1 = Some(s.value),
            _ => {}
        }
    }
    let or_dash = |v: Option<f64>| v.map_or("-".to_owned(), count);
    for (pool, (instances, queued)) in &pools {
        let plural = if *instances == Some(1.0) { "" } else { "s" };
        let _ = writeln!(out, "POOL {pool}  {} instance{plural}, {} queued", or_dash(*instances), or_dash(*queued));
    }
    if !pools.is_empty() {
        out.push('\n');
    }
}

fn process(e: &Exposition, now: f64, out: &mut String) {
    let mut parts = Vec::new();
    if let Some(rss) = e.value("process_resident_memory_bytes") {
        parts.push(format!("RSS {}", bytes(rss)));
    }
    if let Some(cpu) = e.value("process_cpu_seconds_total") {
        parts.push(format!("CPU {cpu:.2} s"));
    }
    if let Some(fds) = e.value("process_open_fds") {
        parts.push(format!("open fds {}", count(fds)));
    }
    if let Some(start) = e.value("process_start_time_seconds") {
        if now >= start {
            parts.push(format!("up {}", duration(now - start)));
        }
    }
    if !parts.is_empty() {
        let _ = writeln!(out, "PROCESS  {}", parts.join("   "));
    }
}

/// A count: whole numbers as such, others with two decimals.
fn count(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n:.2}")
    }
}

/// A latency estimate in the unit that suits it; `>` when past the largest bucket.
fn latency(q: Option<Estimate>) -> String {
    let seconds = |s: f64| {
        if s < 1e-3 {
            format!("{:.0}µs", s * 1e6)
        } else if s < 1.0 {
            format!("{:.2}ms", s * 1e3)
        } else {
            format!("{s:.2}s")
        }
    };
    match q {
        None => "-".to_owned(),
        Some(Estimate::Within(s)) => seconds(s),
        Some(Estimate::Above(s)) => format!(">{}", seconds(s)),
    }
}

fn bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut n = n;
    let mut unit = 0;
    while n >= 1024.0 && unit + 1 < UNITS.len() {
        n /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n:.0} B")
    } else {
        format!("{n:.1} {}", UNITS[unit])
    }
}

fn duration(s: f64) -> String {
    let s = s as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE tomte_rpc_calls_total counter
tomte_rpc_calls_total{method="daemon.status",outcome="ok"} 40
tomte_rpc_calls_total{method="daemon.status",outcome="fault"} 2
tomte_rpc_calls_total{method="worker.list",outcome="ok"} 7
tomte_rpc_calls_total{method="worker.pause",outcome="refused"} 1
# TYPE tomte_rpc_call_duration_seconds histogram
tomte_rpc_call_duration_seconds_bucket{method="daemon.status",le="0.0001"} 21
tomte_rpc_call_duration_seconds_bucket{method="daemon.status",le="0.001"} 41
tomte_rpc_call_duration_seconds_bucket{method="daemon.status",le="+Inf"} 42
tomte_rpc_call_duration_seconds_count{method="daemon.status"} 42
tomte_rpc_call_duration_seconds_bucket{method="worker.list",le="0.0001"} 0
tomte_rpc_call_duration_seconds_bucket{method="worker.list",le="+Inf"} 7
tomte_rpc_call_duration_seconds_count{method="worker.list"} 7
tomte_rpc_unknown_method_calls_total 5
tomte_connections{listener="unix:///run/pool.sock"} 3
tomte_connections_accepted_total{listener="unix:///run/pool.sock",dialect="ndjson"} 50
tomte_connections_accepted_total{listener="unix:///run/pool.sock",dialect="http"} 4
tomte_connection_bytes_received_total 1536
tomte_connection_bytes_sent_total 10
tomte_connections_refused_total{reason="limit"} 2
tomte_connections_refused_total{reason="untrusted"} 1
tomte_limit_hits_total{limit="message"} 0
tomte_worker_up{worker="alpha"} 1
tomte_worker_up{worker="beta"} 0
tomte_worker_state{worker="alpha",state="looping"} 1
tomte_worker_state{worker="alpha",state="failed"} 0
tomte_worker_state{worker="beta",state="looping"} 0
tomte_worker_state{worker="beta",state="failed"} 1
tomte_worker_restarts_total{worker="alpha"} 0
tomte_worker_restarts_total{worker="beta"} 4
tomte_worker_iterations_total{worker="alpha"} 1234
tomte_worker_asks_total{worker="alpha"} 17
tomte_worker_asks_in_flight{worker="alpha"} 2
tomte_pool_instances{pool="hasher"} 4
tomte_pool_queued{pool="hasher"} 3
process_resident_memory_bytes 2202009
process_cpu_seconds_total 0.37
process_open_fds 11
process_start_time_seconds 1000
"#;

    fn line<'a>(table: &'a str, start: &str) -> Vec<&'a str> {
        let l = table.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no {start} in\n{table}"));
        l.split_whitespace().collect()
    }

    #[test]
    fn the_table_shows_calls_latencies_connections_workers_and_the_process() {
        let table = render(&Exposition::parse(TEXT).unwrap(), 1000.0 + 3725.0);
        assert_eq!(line(&table, "METHOD"), ["METHOD", "OK", "FAULT", "REFUSED", "TOTAL", "P50", "P99"], "{table}");
        // p50: rank 21 of 42, the top of the first bucket; p99: rank 41.58, in (1ms, +Inf).
        assert_eq!(line(&table, "daemon.status"), ["daemon.status", "40", "2", "0", "42", "100µs", ">1.00ms"]);
        // p50: rank 3.5 of 7, all above 100µs.
        assert_eq!(line(&table, "worker.list"), ["worker.list", "7", "0", "0", "7", ">100µs", ">100µs"]);
        assert_eq!(line(&table, "worker.pause"), ["worker.pause", "0", "0", "1", "1", "-", "-"]);
        assert_eq!(line(&table, "(all)"), ["(all)", "47", "2", "1", "50"]);
        assert!(table.contains("(and 5 calls of methods the daemon does not have)"), "{table}");
        assert_eq!(line(&table, "LISTENER"), ["LISTENER", "OPEN", "ACCEPTED"]);
        assert_eq!(line(&table, "unix://"), ["unix:///run/pool.sock", "3", "54"]);
        assert_eq!(
            line(&table, "TRAFFIC"),
            ["TRAFFIC", "in", "1.5", "KiB", "out", "10", "B", "refused", "3", "limit", "hits", "0"]
        );
        assert_eq!(line(&table, "WORKER"), ["WORKER", "UP", "STATE", "RESTARTS", "ITERATIONS", "ASKS", "IN", "FLIGHT"]);
        assert_eq!(line(&table, "alpha"), ["alpha", "yes", "looping", "0", "1234", "17", "2"]);
        assert_eq!(line(&table, "beta"), ["beta", "no", "failed", "4", "-", "-", "-"]);
        assert_eq!(line(&table, "POOL"), ["POOL", "hasher", "4", "instances,", "3", "queued"]);
        assert_eq!(
            line(&table, "PROCESS"),
            ["PROCESS", "RSS", "2.1", "MiB", "CPU", "0.37", "s", "open", "fds", "11", "up", "1h02m"]
        );
    }

    #[test]
    fn sections_without_figures_are_left_out() {
        let table = render(&Exposition::parse("process_open_fds 4\n").unwrap(), 0.0);
        assert_eq!(table, "PROCESS  open fds 4\n");
        let table = render(&Exposition::parse("other_metric 1\n").unwrap(), 0.0);
        assert!(table.contains("see --raw"), "{table}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(3.0), "3");
        assert_eq!(count(0.5), "0.50");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(300.0 * 1024.0), "300.0 KiB");
        assert_eq!(latency(Some(Estimate::Within(0.25))), "250.00ms");
        assert_eq!(latency(Some(Estimate::Within(2.5))), "2.50s");
        assert_eq!(latency(Some(Estimate::Within(0.000_012))), "12µs");
        assert_eq!(duration(59.0), "59s");
        assert_eq!(duration(61.0), "1m01s");
        assert_eq!(duration(90061.0), "1d01h");
    }
}
