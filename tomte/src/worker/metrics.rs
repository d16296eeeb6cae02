//! The workers' families of `/metrics`: up, state, restarts, iterations, asks in flight and
//! channel occupancy, read from the supervisor's slots without copying them.

use super::{Slot, State, Supervisor};
use crate::metrics::text::{Encoder, Kind};

const STATES: [State; 7] =
    [State::Spinup, State::Looping, State::Paused, State::Spindown, State::Exited, State::Backoff, State::Failed];

fn name(s: &Slot) -> &str {
    &s.spec.name
}

/// Writes the `tomte_worker_*` families (nothing for a daemon without workers).
pub(crate) fn render(sup: &Supervisor, e: &mut Encoder<'_>) {
    if sup.slots.is_empty() {
        return;
    }
    e.family("tomte_worker_up", Kind::Gauge, "Whether the worker's process runs (1) or not (0).");
    // Instances scaled away whose process ended are no longer workers.
    for s in sup.slots.iter().filter(|s| s.visible()) {
        e.sample("tomte_worker_up", "", &[("worker", name(s))], u64::from(s.run.is_some()));
    }
    e.family("tomte_worker_state", Kind::Gauge, "The worker's state: 1 for the one it is in, 0 for the others.");
    for s in sup.slots.iter().filter(|s| s.visible()) {
        let now = s.state();
        for st in STATES {
            e.sample("tomte_worker_state", "", &[("worker", name(s)), ("state", st.as_str())], u64::from(st == now));
        }
    }
    e.family("tomte_worker_restarts", Kind::Counter, "Times the worker's process was started again.");
    for s in sup.slots.iter().filter(|s| s.visible()) {
        e.sample("tomte_worker_restarts", "_total", &[("worker", name(s))], u64::from(s.restarts));
    }
    e.family(
        "tomte_worker_iterations",
        Kind::Counter,
        "Loop iterations of the worker's current process (of its last one when none runs).",
    );
    for s in sup.slots.iter().filter(|s| s.visible()) {
        let n = s.run.as_ref().map_or(s.iterations, |r| r.end.counter());
        e.sample("tomte_worker_iterations", "_total", &[("worker", name(s))], n);
    }
    e.family("tomte_worker_asks_in_flight", Kind::Gauge, "Requests sent to the worker and not answered yet.");
    for s in sup.slots.iter().filter(|s| s.visible()) {
        e.sample("tomte_worker_asks_in_flight", "", &[("worker", name(s))], s.run.as_ref().map_or(0, |r| r.asks.len()));
    }
    e.family("tomte_worker_asks", Kind::Counter, "Requests the worker answered, all its processes together.");
    for s in sup.slots.iter().filter(|s| s.visible()) {
        e.sample("tomte_worker_asks", "_total", &[("worker", name(s))], s.answered);
    }
    if !sup.pools.is_empty() {
        e.family("tomte_pool_instances", Kind::Gauge, "The pool's instances (those being scaled away not counted).");
        for (p, pool) in sup.pools.iter().enumerate() {
            e.sample("tomte_pool_instances", "", &[("pool", &pool.name)], sup.size(p));
        }
        e.family("tomte_pool_queued", Kind::Gauge, "Asks waiting in the pool's queue for a free instance.");
        for pool in &sup.pools {
            e.sample("tomte_pool_queued", "", &[("pool", &pool.name)], pool.queued());
        }
    }
    e.family(
        "tomte_worker_channel_used_bytes",
        Kind::Gauge,
        "Bytes waiting in the worker's channel rings, by direction (to_worker, to_daemon).",
    );
    for s in sup.slots.iter().filter(|s| s.visible()) {
        let [to_worker, to_daemon] = s.run.as_ref().map_or([0, 0], |r| r.end.ring_used());
        let w = name(s);
        e.sample("tomte_worker_channel_used_bytes", "", &[("worker", w), ("direction", "to_worker")], to_worker);
        e.sample("tomte_worker_channel_used_bytes", "", &[("worker", w), ("direction", "to_daemon")], to_daemon);
    }
}

/// Writes the workers' own metrics, from the snapshots their processes sent last.
pub(crate) fn render_own(sup: &Supervisor, e: &mut Encoder<'_>, taken: Vec<String>) {
    let snapshots: Vec<(&str, &tomte_rpc::Value)> =
        sup.slots.iter().filter_map(|s| Some((name(s), s.run.as_ref()?.metrics.as_ref()?))).collect();
    crate::metrics::workers::render(e, &snapshots, taken);
}
