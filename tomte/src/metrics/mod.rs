//! Metrics: what `GET /metrics` serves, and the application's own counters, gauges and
//! histograms.
//!
//! # Anatomy
//!
//! * Counting happens where things happen, as plain numbers in `Cell`s (the daemon is one
//!   thread: no atomics, no locks): calls in the registry ([`tomte_rpc::stats`]),
//!   connections in [`NetStats`], workers in the supervisor (state it keeps anyway), the
//!   application's in [`Metrics`].
//! * A scrape reads them and writes the exposition straight into the answer's buffer
//!   ([`Format::Prometheus`] text 0.0.4 or [`Format::OpenMetrics`] 1.0.0, chosen by
//!   [`format_for`] from the request's `Accept`): no family objects are built per scrape.
//! * Call latency reads the clock for one call in 16 of a fast method (every call of a slow
//!   one), so counting costs a few nanoseconds a call; counts stay exact (see
//!   [`tomte_rpc::stats`], *Timing*). `--no-metrics` turns call statistics off; the other
//!   figures cost nothing until scraped.
//!
//! # The families
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `tomte_build_info` | info (a gauge in 0.0.4) | `daemon`, `version`, `tomte` |
//! | `tomte_up`, `tomte_uptime_seconds` | gauge | |
//! | `tomte_rpc_calls_total` | counter | `method`, `outcome` (`ok`, `error`, `invalid`, `denied`) |
//! | `tomte_rpc_call_duration_seconds` | histogram | `method` |
//! | `tomte_rpc_unknown_method_calls_total` | counter | |
//! | `tomte_connections` | gauge | `listener` |
//! | `tomte_connections_open` | gauge | `listener`, `dialect` (`ndjson`, `http`, `comodojo`) |
//! | `tomte_connections_accepted_total` | counter | `listener`, `dialect` (or `none`) |
//! | `tomte_connection_bytes_received_total`, `tomte_connection_bytes_sent_total` | counter | |
//! | `tomte_connections_refused_total` | counter | `reason` |
//! | `tomte_limit_hits_total` | counter | `limit` |
//! | `tomte_worker_up`, `tomte_worker_asks_in_flight` | gauge | `worker` |
//! | `tomte_worker_state` | gauge (1 for the current state) | `worker`, `state` |
//! | `tomte_worker_restarts_total`, `tomte_worker_iterations_total` | counter | `worker` |
//! | `tomte_worker_channel_used_bytes` | gauge | `worker`, `direction` (`to_worker`, `to_daemon`) |
//! | `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_start_time_seconds` | gauge | |
//! | `process_cpu_seconds_total` | counter | |
//!
//! Methods get series once called (all four outcomes then); a name no method has is counted
//! in `tomte_rpc_unknown_method_calls_total` only, so clients cannot add labels. The
//! application's families ([`Metrics`]) follow the daemon's; their names may not start with
//! `tomte_` or `process_`. Then come the workers' own
//! ([`WorkerCtx::metrics`](crate::worker::WorkerCtx::metrics)), with a `worker` label.

mod app;
mod daemon;
mod net;
pub(crate) mod process;
pub(crate) mod text;
pub(crate) mod workers;

pub use app::{Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramVec, Metrics, MetricsError, DEFAULT_BUCKETS};
pub use net::{NetDialect, NetStats};
pub use text::{format_for, Format, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};

use crate::daemon::Ctx;
use tomte_rpc::Registry;

/// Writes the whole exposition of a daemon into `out` (appended): its basics, calls,
/// connections, workers, process, then the application's families.
pub(crate) fn scrape<S>(registry: &Registry<Ctx<S>>, ctx: &Ctx<S>, format: Format, out: &mut Vec<u8>) {
    let mut e = text::Encoder::new(out, format);
    daemon::render_basics(&mut e, &ctx.name, &ctx.version, ctx.started.elapsed().as_secs_f64());
    daemon::render_calls(registry, &mut e);
    ctx.net.render(&mut e);
    crate::worker::supervisor::metrics::render(&ctx.workers, &mut e);
    process::render(&mut e, &mut String::with_capacity(2048));
    ctx.metrics.render(&mut e);
    crate::worker::supervisor::metrics::render_own(&ctx.workers, &mut e, ctx.metrics.sample_names());
    e.finish();
}

/// The exposition of a daemon, for benchmarks of the renderer (not an API).
#[doc(hidden)]
pub mod _bench {
    /// Renders a daemon with `workers` idle (never started) workers and `methods` methods
    /// called once each, `scrapes` times; returns the last exposition.
    pub fn scrape_detached(methods: usize, scrapes: usize, format: super::Format) -> Vec<u8> {
        let mut d = crate::Daemon::new("bench");
        for i in 0..methods {
            d.method(tomte_rpc::Method::new(format!("bench.m{i}"), |_, _| Ok(tomte_rpc::Value::Nil)));
        }
        let mut ctx = crate::Ctx::new("bench", "0", crate::worker::supervisor::Supervisor::default(), ());
        for i in 0..methods {
            let _ = d.registry.call(
                &format!("bench.m{i}"),
                tomte_rpc::Args::default(),
                &mut ctx,
                tomte_rpc::Protocol::Json,
            );
        }
        ctx.net = super::NetStats::new(vec!["unix:///run/bench.sock".into(), "tcp://127.0.0.1:10042".into()]);
        let mut out = Vec::new();
        for _ in 0..scrapes {
            out.clear();
            super::scrape(&d.registry, &ctx, format, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_daemon_renders_every_family_in_both_formats() {
        let text = String::from_utf8(_bench::scrape_detached(3, 1, Format::Prometheus)).unwrap();
        for line in [
            "# TYPE tomte_build_info gauge\n",
            "tomte_rpc_calls_total{method=\"bench.m2\",outcome=\"ok\"} 1\n",
            "tomte_rpc_call_duration_seconds_count{method=\"bench.m0\"} 1\n",
            "tomte_rpc_unknown_method_calls_total 0\n",
            "tomte_connections{listener=\"tcp://127.0.0.1:10042\"} 0\n",
            "process_resident_memory_bytes ",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(!text.contains("method=\"daemon.status\""), "methods never called have no series");
        let om = String::from_utf8(_bench::scrape_detached(3, 1, Format::OpenMetrics)).unwrap();
        assert!(om.ends_with("\n# EOF\n"));
        assert!(om.contains("# TYPE tomte_rpc_calls counter\n"));
        assert!(om.contains("# TYPE tomte_build info\n"));
    }

    /// promtool's linter on the exposition, when Debian's `prometheus` package is installed
    /// (the integration tests check a live daemon's).
    #[test]
    fn promtool_accepts_the_exposition() {
        use std::io::Write;
        let Ok(mut child) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
            return;
        };
        let text = _bench::scrape_detached(5, 1, Format::Prometheus);
        child.stdin.take().unwrap().write_all(&text).unwrap();
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{}", String::from_utf8_lossy(&text));
    }
}
