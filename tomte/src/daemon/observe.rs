//! What the daemon shows of itself to its clients: readiness checks, and the subscriptions
//! through which events reach them (`daemon.subscribe` on NDJSON, `GET /events` as SSE).
//!
//! A subscriber's events are queued on its own connection, at most [`MAX_QUEUE`] bytes of them
//! unread: past that it is dropped with a last notice, so one that does not read never holds
//! the loop or the daemon's memory, and the others do not notice it.

use std::fmt;
use std::rc::Rc;

use tomte_rpc::Value;

use super::Ctx;
use crate::event::Event;
use crate::worker::{Policy, State};

/// The unread events a subscriber may have queued before it is dropped.
pub(crate) const MAX_QUEUE: usize = 1 << 20;
/// How many patterns one subscription may hold, and how long one may be.
const MAX_PATTERNS: usize = 64;
const MAX_PATTERN_LEN: usize = 256;

/// An event name pattern: a name, or a prefix followed by `*` (`daemon.worker.*`, `*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    text: String,
    prefix: bool,
}

impl Pattern {
    /// Reads one pattern; the reason when it is not one.
    pub(crate) fn parse(text: &str) -> Result<Pattern, String> {
        if text.is_empty() || text.len() > MAX_PATTERN_LEN {
            return Err(format!("an event pattern has 1 to {MAX_PATTERN_LEN} bytes"));
        }
        let (stem, prefix) = match text.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (text, false),
        };
        if stem.contains('*') || text.chars().any(char::is_control) {
            return Err(format!("event pattern '{text}': '*' may only end it, and no control characters"));
        }
        Ok(Pattern { text: stem.to_owned(), prefix })
    }

    /// Reads a subscription's patterns.
    /// Too many is refused before any is parsed (a million of them would be parsed, and held,
    /// only to be refused).
    pub(crate) fn parse_all<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Vec<Pattern>, String> {
        let mut texts = texts.into_iter();
        let first: Vec<&str> = texts.by_ref().take(MAX_PATTERNS + 1).collect();
        if first.len() > MAX_PATTERNS {
            let n = first.len() + texts.count();
            return Err(format!("{n} patterns: at most {MAX_PATTERNS} per subscription"));
        }
        first.into_iter().map(Pattern::parse).collect()
    }

    fn matches(&self, name: &str) -> bool {
        if self.prefix {
            name.starts_with(&self.text)
        } else {
            name == self.text
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.text, if self.prefix { "*" } else { "" })
    }
}

/// What a handler or a route asked of the connection it serves.
#[derive(Debug)]
pub(crate) enum SubRequest {
    /// From now on, push the events matching these patterns (as SSE frames or NDJSON lines).
    Subscribe { patterns: Vec<Pattern>, sse: bool, logs: bool },
    /// Stop pushing events.
    Unsubscribe,
}

struct Subscriber {
    key: usize,
    patterns: Vec<Pattern>,
    sse: bool,
    /// Whether it may receive `daemon.log` events (its caller holds `control`).
    logs: bool,
}

impl Subscriber {
    fn wants(&self, name: &str) -> bool {
        (self.logs || name != crate::event::names::LOG) && self.patterns.iter().any(|p| p.matches(name))
    }
}

/// Whether a subscription of `caller` to `patterns` may receive `daemon.log` events: only with
/// the `control` permission, since records tell what the daemon logs about every client (who
/// called what). Without it, a pattern naming `daemon.log` itself is refused (the reason is
/// given) and wider ones (`*`, `daemon.*`) receive every other event.
pub(crate) fn log_access(patterns: &[Pattern], caller: Option<&crate::access::Caller>) -> Result<bool, String> {
    let allowed = caller.is_some_and(|c| c.grants.allows(&tomte_rpc::Permission::Control));
    let named = patterns.iter().any(|p| !p.prefix && p.text == crate::event::names::LOG);
    if named && !allowed {
        let who = caller.map_or_else(|| "an unknown caller".to_owned(), |c| c.peer.to_string());
        return Err(format!(
            "daemon.log events require the 'control' permission (they tell what the daemon logs about every \
             client), which {who} does not have"
        ));
    }
    Ok(allowed)
}

/// The connections that subscribed, by connection key.
#[derive(Default)]
pub(crate) struct Subscribers {
    list: Vec<Subscriber>,
}

/// An event as subscribers receive it, encoded once for each framing.
pub(crate) struct Encoded {
    params: Vec<u8>,
    line: Option<Vec<u8>>,
    frame: Option<Vec<u8>>,
}

impl Encoded {
    /// `{"name":…,"data":…,"time":…}`.
    pub(crate) fn new(event: &Event, time: &str) -> Encoded {
        let value = Value::structure([
            ("name", Value::from(event.name.as_str())),
            ("data", event.data.clone()),
            ("time", Value::from(time)),
        ]);
        let params = serde_json::to_vec(&value).expect("serializing a Value into memory cannot fail");
        Encoded { params, line: None, frame: None }
    }

    /// The NDJSON notification line, or the SSE frame.
    pub(crate) fn bytes(&mut self, sse: bool) -> &[u8] {
        let params = &self.params;
        if sse {
            self.frame.get_or_insert_with(|| [b"data: ", &params[..], b"\n\n"].concat())
        } else {
            self.line.get_or_insert_with(|| {
                [&b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.event\",\"params\":"[..], params, b"}\n"].concat()
            })
        }
    }
}

/// Why a subscriber is dropped: more than [`MAX_QUEUE`] bytes of events unread, or (`budget`)
/// events unread while the daemon's output budget (`--max-buffered`) is spent.
pub(crate) fn drop_reason(budget: bool) -> String {
    if budget {
        "events unread while the daemon's output budget is spent: subscription dropped".to_owned()
    } else {
        format!("more than {MAX_QUEUE} bytes of events unread: subscription dropped")
    }
}

/// The last words to a subscriber dropped for not reading, and what ends each of its frames.
pub(crate) fn dropped_notice(sse: bool, budget: bool) -> (Vec<u8>, &'static [u8]) {
    let reason = drop_reason(budget);
    let params = serde_json::to_string(&Value::structure([("reason", Value::from(reason))])).expect("in memory");
    if sse {
        (format!("event: dropped\ndata: {params}\n\n").into_bytes(), b"\n\n")
    } else {
        (format!("{{\"jsonrpc\":\"2.0\",\"method\":\"daemon.dropped\",\"params\":{params}}}\n").into_bytes(), b"\n")
    }
}

impl Subscribers {
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Connection `key` subscribes (replacing what it subscribed to before).
    pub(crate) fn set(&mut self, key: usize, patterns: Vec<Pattern>, sse: bool, logs: bool) {
        self.remove(key);
        self.list.push(Subscriber { key, patterns, sse, logs });
    }

    /// Connection `key` no longer subscribes; true if it did.
    pub(crate) fn remove(&mut self, key: usize) -> bool {
        let before = self.list.len();
        self.list.retain(|s| s.key != key);
        self.list.len() != before
    }

    /// Whether some subscriber wants events named `name`.
    pub(crate) fn wants(&self, name: &str) -> bool {
        self.list.iter().any(|s| s.wants(name))
    }

    /// The subscribers that want events named `name`: (connection key, SSE or not).
    pub(crate) fn matching<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (usize, bool)> + 'a {
        self.list.iter().filter(move |s| s.wants(name)).map(|s| (s.key, s.sse))
    }
}

/// A readiness check of the application's (see [`Daemon::ready_check`](crate::Daemon::ready_check)).
pub(crate) type ReadyFn<S> = Box<dyn Fn(&Ctx<S>) -> Result<(), String>>;

/// The application's readiness checks, by name.
pub(crate) type ReadyChecks<S> = Rc<Vec<(String, ReadyFn<S>)>>;

/// One check of `/readyz` and `daemon.health`.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

/// Whether the daemon is ready, and each check: started (the loop answers), not stopping,
/// every worker whose policy is `always` running its loop (looping, or paused by an
/// operator), and the application's own checks. A check that panics fails.
pub(crate) fn readiness<S>(ctx: &Ctx<S>) -> (bool, Vec<Check>) {
    let mut checks = vec![Check {
        name: "started".to_owned(),
        ok: true,
        detail: format!("up {} s", ctx.started.elapsed().as_secs()),
    }];
    checks.push(Check {
        name: "stopping".to_owned(),
        ok: !ctx.stop,
        detail: if ctx.stop { "the daemon is stopping" } else { "not stopping" }.to_owned(),
    });
    let serving = |s: State| matches!(s, State::Looping | State::Paused);
    for info in ctx.workers.plain_infos() {
        if info.policy != Policy::Always {
            continue;
        }
        let ok = serving(info.state);
        checks.push(Check { name: format!("worker:{}", info.name), ok, detail: info.state.as_str().to_owned() });
    }
    // A pool is ready while one of its instances serves (one restarting, or a new one spinning
    // up, does not make the daemon unready); a pool scaled to 0 has nothing to wait for.
    for name in ctx.workers.pools() {
        let Ok(pool) = ctx.workers.pool_info(&name) else { continue };
        if pool.instances.first().is_some_and(|i| i.policy != Policy::Always) {
            continue;
        }
        let up = pool.instances.iter().filter(|i| serving(i.state)).count();
        let ok = up > 0 || pool.size == 0;
        let detail = format!("{up} of {} instances looping", pool.instances.len());
        checks.push(Check { name: format!("pool:{name}"), ok, detail });
    }
    for (name, check) in ctx.ready_checks.iter() {
        let run = std::panic::AssertUnwindSafe(|| check(ctx));
        let (ok, detail) = match std::panic::catch_unwind(run) {
            Ok(Ok(())) => (true, "ok".to_owned()),
            Ok(Err(why)) => (false, why),
            Err(panic) => (false, format!("the check panicked: {}", tomte_rpc::fault::panic_text(&*panic))),
        };
        checks.push(Check { name: name.clone(), ok, detail });
    }
    (checks.iter().all(|c| c.ok), checks)
}

/// `daemon.health`'s answer: `{status, live, ready, checks}`.
pub(crate) fn health<S>(ctx: &Ctx<S>) -> Value {
    let (ready, checks) = readiness(ctx);
    Value::structure([
        ("status", Value::from(if ready { "ok" } else { "fail" })),
        ("live", Value::Bool(true)),
        ("ready", Value::Bool(ready)),
        ("checks", checks_value(&checks)),
    ])
}

/// The checks as `[{name, ok, detail}]`.
pub(crate) fn checks_value(checks: &[Check]) -> Value {
    Value::Array(
        checks
            .iter()
            .map(|c| {
                Value::structure([
                    ("name", Value::from(c.name.as_str())),
                    ("ok", Value::Bool(c.ok)),
                    ("detail", Value::from(c.detail.as_str())),
                ])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_and_prefixes() {
        let p = Pattern::parse_all(["daemon.worker.*", "app.tick"]).unwrap();
        let any = |name: &str| p.iter().any(|p| p.matches(name));
        assert!(any("daemon.worker.state") && any("app.tick") && !any("app.tock") && !any("daemon.log"));
        assert!(Pattern::parse("*").unwrap().matches("anything"));
        assert!(Pattern::parse("a*b").is_err() && Pattern::parse("").is_err() && Pattern::parse("a\nb").is_err());
        assert!(Pattern::parse_all(vec!["x"; 65]).is_err());
        assert_eq!(Pattern::parse("app.*").unwrap().to_string(), "app.*");
    }

    #[test]
    fn an_event_is_encoded_once_per_framing() {
        let mut e = Encoded::new(&Event::new("app.x", Value::Int(3)), "2026-12-02T00:00:00.000Z");
        let line = String::from_utf8(e.bytes(false).to_vec()).unwrap();
        assert_eq!(
            line,
            "{\"jsonrpc\":\"2.0\",\"method\":\"daemon.event\",\"params\":{\"name\":\"app.x\",\"data\":3,\"time\":\"2026-12-02T00:00:00.000Z\"}}\n"
        );
        let frame = String::from_utf8(e.bytes(true).to_vec()).unwrap();
        assert!(frame.starts_with("data: {\"name\":\"app.x\"") && frame.ends_with("}\n\n"));
    }
}
