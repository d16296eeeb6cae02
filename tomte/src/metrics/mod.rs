//! Metrics (placeholder: the full module lands with the metrics work).

use crate::daemon::Ctx;
use tomte_rpc::Registry;

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Prometheus text 0.0.4.
    Text,
    /// OpenMetrics 1.0.0.
    OpenMetrics,
}

impl Format {
    /// Its content type.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The format an `Accept` header asks for.
pub(crate) fn format_for(accept: Option<&str>) -> Format {
    match accept {
        Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
        _ => Format::Text,
    }
}

/// Writes the daemon's metrics.
pub(crate) fn scrape<S>(_registry: &Registry<Ctx<S>>, _ctx: &Ctx<S>, format: Format, out: &mut Vec<u8>) {
    out.extend_from_slice(b"# TYPE tomte_up gauge\ntomte_up 1\n");
    if format == Format::OpenMetrics {
        out.extend_from_slice(b"# EOF\n");
    }
}
