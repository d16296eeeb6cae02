//! The daemon's own families: calls per method and outcome, their latency, unknown names,
//! build information.

use tomte_rpc::stats::Outcome;
use tomte_rpc::Registry;

use super::text::{Encoder, Kind};

/// Writes `tomte_build_info`, `tomte_up` and `tomte_uptime_seconds`.
pub(crate) fn render_basics(e: &mut Encoder<'_>, name: &str, version: &str, uptime: f64) {
    e.family("tomte_build", Kind::Info, "The daemon's name and version, and tomte's.");
    let labels = [("daemon", name), ("version", version), ("tomte", env!("CARGO_PKG_VERSION"))];
    e.sample("tomte_build", "_info", &labels, 1u64);
    e.family("tomte_up", Kind::Gauge, "1: the daemon's loop answers.");
    e.sample("tomte_up", "", &[], 1u64);
    e.family("tomte_uptime_seconds", Kind::Gauge, "Seconds since the daemon's loop was set up.");
    e.sample("tomte_uptime_seconds", "", &[], uptime);
}

/// Writes the `tomte_rpc_*` families of `registry`. Only methods called at least once have
/// series (a daemon with many methods scrapes what is used), each with all four outcomes.
pub(crate) fn render_calls<C>(registry: &Registry<C>, e: &mut Encoder<'_>) {
    let stats = registry.stats();
    e.family("tomte_rpc_calls", Kind::Counter, "Calls by method and outcome (ok, error, invalid, denied).");
    stats.with_methods(|methods| {
        for (name, m) in registry.names().zip(methods).filter(|(_, m)| m.count() > 0) {
            for o in Outcome::ALL {
                e.sample("tomte_rpc_calls", "_total", &[("method", name), ("outcome", o.as_str())], m.calls(o));
            }
        }
        e.family(
            "tomte_rpc_call_duration_seconds",
            Kind::Histogram,
            "How long calls took, by method (of a fast method, one call in 16 is timed and the others count as it).",
        );
        for (name, m) in registry.names().zip(methods).filter(|(_, m)| m.count() > 0) {
            e.histogram("tomte_rpc_call_duration_seconds", &[("method", name)], m.cumulative(), m.sum(), m.count());
        }
    });
    e.family(
        "tomte_rpc_unknown_method_calls",
        Kind::Counter,
        "Calls of names no method has (one number: clients choose the names).",
    );
    e.sample("tomte_rpc_unknown_method_calls", "_total", &[], stats.unknown());
}
