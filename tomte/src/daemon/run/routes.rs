//! The HTTP `GET` routes of native listeners: `/metrics`, `/livez`, `/readyz`, `/events` and,
//! with `--dashboard`, the dashboard at `/`. Each needs the caller's `read` permission (an
//! anonymous TCP client holds it by default, another local user on a unix socket does not).

use tomte_rpc::{Permission, Value};

use super::Rpc;
use crate::daemon::observe::{self, Pattern, SubRequest};
use crate::net::{http, Get};

const JSON: &str = "application/json";

impl<S> Rpc<'_, S> {
    /// Serves one `GET`; true when the answer is an event stream that stays open.
    pub(super) fn route(&mut self, get: &Get<'_>, out: &mut Vec<u8>) -> bool {
        let path = http::path_of(get.target);
        let page = |out: &mut Vec<u8>, status: u16, ctype: &str, body: &[u8]| {
            http::write_page(out, status, ctype, "", body, get.keep_alive)
        };
        let known = matches!(path, "/metrics" | "/livez" | "/readyz" | "/events")
            || (self.ctx.dashboard && crate::dashboard::asset(path).is_some());
        if !known {
            let why = match path {
                "/" | "/index.html" | "/dashboard.js" | "/dashboard.css" => {
                    "the dashboard is off (start the daemon with --dashboard)\n".to_owned()
                }
                _ => format!("no such page: {path} (try /metrics, /livez, /readyz, /events)\n"),
            };
            page(out, 404, "text/plain; charset=utf-8", why.as_bytes());
            return false;
        }
        if !self.ctx.caller.as_ref().is_some_and(|c| c.grants.allows(&Permission::Read)) {
            let who = self.ctx.caller.as_ref().map_or_else(|| "an unknown caller".to_owned(), |c| c.peer.to_string());
            let why = format!("permission denied: GET {path} needs the read permission, which {who} does not hold\n");
            page(out, 403, "text/plain; charset=utf-8", why.as_bytes());
            return false;
        }
        match path {
            "/livez" => page(out, 200, JSON, b"{\"status\":\"ok\"}\n"),
            "/readyz" => {
                let (ready, checks) = observe::readiness(self.ctx);
                let status = if ready { "ok" } else { "fail" };
                let verbose = http::query_values(get.target, "verbose").next().is_some();
                let body = if verbose {
                    Value::structure([("status", Value::from(status)), ("checks", observe::checks_value(&checks))])
                } else {
                    Value::structure([("status", Value::from(status))])
                };
                let mut json = serde_json::to_vec(&body).expect("in memory");
                json.push(b'\n');
                page(out, if ready { 200 } else { 503 }, JSON, &json);
            }
            "/metrics" => {
                let format = crate::metrics::format_for(get.accept);
                let mut body = Vec::with_capacity(16 << 10);
                crate::metrics::scrape(self.registry, self.ctx, format, &mut body);
                page(out, 200, format.content_type(), &body);
            }
            "/events" => {
                let texts: Vec<String> = http::query_values(get.target, "pattern").collect();
                let texts = if texts.is_empty() { vec!["*".to_owned()] } else { texts };
                let patterns = match Pattern::parse_all(texts.iter().map(String::as_str)) {
                    Ok(patterns) => patterns,
                    Err(why) => {
                        page(out, 400, "text/plain; charset=utf-8", format!("{why}\n").as_bytes());
                        return false;
                    }
                };
                match observe::log_access(&patterns, self.ctx.caller.as_deref()) {
                    Ok(logs) => {
                        http::write_stream_head(out);
                        self.ctx.sub_request = Some(SubRequest::Subscribe { patterns, sse: true, logs });
                        return true;
                    }
                    Err(why) => page(out, 403, "text/plain; charset=utf-8", format!("{why}\n").as_bytes()),
                }
            }
            _ => {
                let asset = crate::dashboard::asset(path).expect("checked above");
                let headers = format!(
                    "Content-Security-Policy: {}\r\nReferrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n",
                    crate::dashboard::CSP
                );
                http::write_page(out, 200, asset.ctype, &headers, asset.body, get.keep_alive);
            }
        }
        false
    }
}
