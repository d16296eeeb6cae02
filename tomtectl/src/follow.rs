//! `events` and `logs -f`: a subscription followed until the daemon ends it, each
//! notification turned into one line.
//!
//! The daemon pushes `daemon.event` notifications (`{name, data, time}`) on the connection that
//! called `daemon.subscribe`; it ends the stream by closing the connection (it stops), or by a
//! last `daemon.dropped` notification (`{reason}`) when this subscriber did not keep up.

use tomte::client::{Client, Notification};
use tomte_rpc::Value;

/// How a followed stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The daemon closed the connection between two notifications.
    Closed,
    /// The daemon dropped this subscriber, for this reason.
    Dropped(String),
}

/// What one notification is, for the printers.
#[derive(Debug, PartialEq)]
pub enum Pushed<'a> {
    /// An event: its name, data and time (as the daemon wrote it, `-` if missing).
    Event { name: &'a str, data: &'a Value, time: &'a str },
    /// The last word of a dropped subscription.
    Dropped(String),
    /// A notification of another method: skipped.
    Other,
}

/// Reads `n`.
pub fn classify(n: &Notification) -> Pushed<'_> {
    match n.method.as_str() {
        "daemon.event" => {
            const NIL: &Value = &Value::Nil;
            let name = n.params.member("name").and_then(Value::as_str).unwrap_or("-");
            let data = n.params.member("data").unwrap_or(NIL);
            let time = n.params.member("time").and_then(Value::as_str).unwrap_or("-");
            Pushed::Event { name, data, time }
        }
        "daemon.dropped" => {
            let reason = n.params.member("reason").and_then(Value::as_str).unwrap_or("no reason given");
            Pushed::Dropped(reason.to_owned())
        }
        _ => Pushed::Other,
    }
}

/// Subscribes to `patterns` and hands each event notification to `each` until the stream ends.
pub fn follow(client: &mut Client, patterns: &[&str], mut each: impl FnMut(&Notification)) -> anyhow::Result<End> {
    client.subscribe(patterns)??;
    while let Some(n) = client.next_notification()? {
        match classify(&n) {
            Pushed::Event { .. } => each(&n),
            Pushed::Dropped(reason) => return Ok(End::Dropped(reason)),
            Pushed::Other => {}
        }
    }
    Ok(End::Closed)
}

/// An event as `events` prints it: `TIME NAME DATA` (data as compact JSON).
pub fn event_line(time: &str, name: &str, data: &Value) -> String {
    let data = serde_json::to_string(data).expect("a Value always serializes");
    format!("{time} {name} {data}")
}

/// Log levels, most severe first (the order of `log::Level`).
pub const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// What `logs -f` shows: records of these workers (any when empty), at least this severe.
#[derive(Debug, Default)]
pub struct LogFilter {
    /// Only records of these workers (`--worker`, repeatable; a pool's name takes in each of its
    /// instances, `NAME.0`, `NAME.1`…); all when empty.
    pub workers: Vec<String>,
    /// Only records at this level or more severe (`--level`); all when `None`.
    pub level: Option<String>,
}

impl LogFilter {
    /// The line for a `daemon.log` event's data, `None` when the filter hides it:
    /// `TIME LEVEL [worker] target: message` (no `[worker]` for the daemon's own records).
    pub fn line(&self, time: &str, data: &Value) -> Option<String> {
        let get = |k: &str| data.member(k).and_then(Value::as_str);
        let level = get("level").unwrap_or("?");
        let worker = get("worker");
        let instance_of = |w: &str, pool: &str| {
            let k = w.strip_prefix(pool).and_then(|k| k.strip_prefix('.'));
            k.is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
        };
        let named = |w: &str| self.workers.iter().any(|x| x == w || instance_of(w, x));
        if !self.workers.is_empty() && !worker.is_some_and(named) {
            return None;
        }
        if let Some(min) = &self.level {
            let rank = |l: &str| LEVELS.iter().position(|x| x.eq_ignore_ascii_case(l));
            // An unknown level is shown: the daemon knows better.
            if rank(level).zip(rank(min)).is_some_and(|(have, want)| have > want) {
                return None;
            }
        }
        let target = get("target").unwrap_or("-");
        let message = get("message").unwrap_or("");
        let level = level.to_uppercase();
        Some(match worker {
            Some(w) => format!("{time} {level:<5} [{w}] {target}: {message}"),
            None => format!("{time} {level:<5} {target}: {message}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(members: &[(&str, Value)]) -> Value {
        Value::Struct(members.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn record(level: &str, worker: Option<&str>, message: &str) -> Value {
        obj(&[
            ("level", Value::from(level)),
            ("target", Value::from("pool")),
            ("worker", worker.map_or(Value::Nil, Value::from)),
            ("message", Value::from(message)),
        ])
    }

    #[test]
    fn notifications_are_told_apart() {
        let data = obj(&[("worker", Value::from("alpha")), ("state", Value::from("spinup")), ("pid", Value::Nil)]);
        let event = Notification {
            method: "daemon.event".into(),
            params: obj(&[
                ("name", Value::from("daemon.worker.state")),
                ("data", data.clone()),
                ("time", Value::from("2026-12-02T03:15:00.123Z")),
            ]),
        };
        assert_eq!(
            classify(&event),
            Pushed::Event { name: "daemon.worker.state", data: &data, time: "2026-12-02T03:15:00.123Z" }
        );
        let dropped = Notification { method: "daemon.dropped".into(), params: obj(&[("reason", Value::from("slow"))]) };
        assert_eq!(classify(&dropped), Pushed::Dropped("slow".into()));
        let bare = Notification { method: "daemon.dropped".into(), params: Value::Nil };
        assert_eq!(classify(&bare), Pushed::Dropped("no reason given".into()));
        let other = Notification { method: "app.tick".into(), params: Value::Nil };
        assert_eq!(classify(&other), Pushed::Other);
    }

    #[test]
    fn an_event_is_one_line_of_compact_json() {
        let data = obj(&[("worker", Value::from("alpha")), ("pid", Value::Int(42)), ("last_exit", Value::Nil)]);
        assert_eq!(
            event_line("T", "daemon.worker.state", &data),
            r#"T daemon.worker.state {"worker":"alpha","pid":42,"last_exit":null}"#
        );
        let multi = Value::from("two\nlines");
        assert_eq!(event_line("T", "app.note", &multi), r#"T app.note "two\nlines""#);
    }

    #[test]
    fn log_lines_name_the_worker_and_filter_by_worker_and_level() {
        let all = LogFilter::default();
        assert_eq!(
            all.line("T", &record("info", Some("alpha"), "hello from alpha")).unwrap(),
            "T INFO  [alpha] pool: hello from alpha"
        );
        assert_eq!(all.line("T", &record("warn", None, "reloaded")).unwrap(), "T WARN  pool: reloaded");

        let alpha = LogFilter { workers: vec!["alpha".into()], level: None };
        assert!(alpha.line("T", &record("info", Some("alpha"), "x")).is_some());
        assert!(alpha.line("T", &record("info", Some("beta"), "x")).is_none());
        assert!(alpha.line("T", &record("info", None, "x")).is_none(), "the daemon's own records are not alpha's");
        // A pool's name: each of its instances, and only them.
        let pool = LogFilter { workers: vec!["hasher".into()], level: None };
        assert!(pool.line("T", &record("info", Some("hasher.0"), "x")).is_some());
        assert!(pool.line("T", &record("info", Some("hasher.12"), "x")).is_some());
        for other in ["hasher2", "hasher.", "hasher.x", "hash.0", "alpha"] {
            assert!(pool.line("T", &record("info", Some(other), "x")).is_none(), "{other}");
        }
        let one = LogFilter { workers: vec!["hasher.1".into()], level: None };
        assert!(one.line("T", &record("info", Some("hasher.1"), "x")).is_some());
        assert!(one.line("T", &record("info", Some("hasher.0"), "x")).is_none());

        let warn = LogFilter { workers: Vec::new(), level: Some("warn".into()) };
        assert!(warn.line("T", &record("error", None, "x")).is_some());
        assert!(warn.line("T", &record("warn", None, "x")).is_some());
        assert!(warn.line("T", &record("info", None, "x")).is_none());
        assert!(warn.line("T", &record("trace", None, "x")).is_none());
        assert!(warn.line("T", &record("loud", None, "x")).is_some(), "an unknown level is shown");
    }
}
