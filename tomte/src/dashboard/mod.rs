//! The web dashboard (`--dashboard`): one page, its script and its style sheet, embedded in the
//! binary and served by the native listeners' GET routes.
//!
//! The page reads the daemon with the same JSON-RPC any client uses (`daemon.status` every
//! second, whose `calls` draw the calls/s sparkline — or, without that member, the sum of
//! `tomte_rpc_calls_total` in `GET /metrics`; `worker.list` every three seconds;
//! `system.listMethods` and one batch of `system.methodHelp`) and follows
//! `GET /events?pattern=daemon.worker.*` for the workers' states. A pool is a row (its size and
//! queue, its instances' sums, the liveliest of their states) with a row per instance under it.
//! Its buttons call `worker.pause|resume|restart(name)` — a worker, a pool or one instance — with
//! the browser's own identity, so what the access policy refuses is refused, and shown as such.
//!
//! Safe by construction:
//! * every action is a `POST /` with `Content-Type: application/json`, a request no
//!   cross-site form can make (and the HTTP layer refuses cross-site `Origin`s anyway);
//! * the page has no inline script or style, so [`CSP`] can forbid both, and every string from
//!   the daemon goes into the page as text (`textContent`), never as HTML;
//! * nothing is fetched from elsewhere: no CDN, no fonts, no build step.

/// One file of the dashboard.
pub(crate) struct Asset {
    /// Its `Content-Type`.
    pub ctype: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The `Content-Security-Policy` sent with every dashboard response, besides
/// `X-Content-Type-Options: nosniff`, `Cache-Control: no-store`, `Referrer-Policy: no-referrer`
/// and `X-Frame-Options: DENY`.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                              img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("dashboard.js");
const STYLE: &str = include_str!("dashboard.css");

/// The asset at `path`: `/` (also `/index.html`), `/dashboard.js`, `/dashboard.css`; `None`
/// for anything else (a query string is ignored).
pub(crate) fn asset(path: &str) -> Option<Asset> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let (ctype, body) = match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX),
        "/dashboard.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/dashboard.css" => ("text/css; charset=utf-8", STYLE),
        _ => return None,
    };
    Some(Asset { ctype, body: body.as_bytes() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_files_and_nothing_else() {
        for (path, ctype, start) in [
            ("/", "text/html", "<!doctype html>"),
            ("/index.html", "text/html", "<!doctype html>"),
            ("/?x=1", "text/html", "<!doctype html>"),
            ("/dashboard.js", "text/javascript", "//"),
            ("/dashboard.css", "text/css", ":root"),
        ] {
            let a = asset(path).unwrap_or_else(|| panic!("{path}"));
            assert!(a.ctype.starts_with(ctype) && a.ctype.ends_with("charset=utf-8"), "{path}: {}", a.ctype);
            assert!(a.body.starts_with(start.as_bytes()), "{path}");
        }
        for path in ["", "/index.htm", "/dashboard.js/", "//", "/../Cargo.toml", "/DASHBOARD.JS", "/events"] {
            assert!(asset(path).is_none(), "{path}");
        }
    }

    #[test]
    fn the_page_needs_nothing_the_policy_forbids() {
        // No inline script or style: every <script> has a src, no element a style or on* attribute.
        let lower = INDEX.to_ascii_lowercase();
        assert_eq!(lower.matches("<script").count(), 1);
        assert!(lower.contains(r#"<script src="/dashboard.js" defer></script>"#));
        assert!(lower.contains(r#"<link rel="stylesheet" href="/dashboard.css">"#));
        assert!(!lower.contains("<style") && !lower.contains(" style="), "inline style");
        let handler = lower.match_indices(" on").any(|(i, _)| {
            let name: String = lower[i + 3..].chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && lower[i + 3 + name.len()..].starts_with('=')
        });
        assert!(!handler, "an inline event handler");
        for needle in ["http://", "https://", "//cdn", "@import"] {
            assert!(!INDEX.contains(needle) && !STYLE.contains(needle) && !SCRIPT.contains(needle), "{needle}");
        }
        // What the daemon says is text: no HTML sinks, no eval.
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            assert!(!SCRIPT.contains(sink), "{sink} in dashboard.js");
        }
        assert!(CSP.contains("script-src 'self';") && !CSP.contains("unsafe"), "{CSP}");
    }

    #[test]
    fn a_few_kilobytes() {
        let total = INDEX.len() + SCRIPT.len() + STYLE.len();
        assert!(total < 32 * 1024, "{total} bytes");
    }
}
