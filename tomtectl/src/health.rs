//! `health`: the answer of `daemon.health` as `ready`/`not ready` and its checks.

use tomte_rpc::Value;

/// Whether `health` (the answer of `daemon.health`) says ready, and the lines to print: the
/// verdict, then each failing check (every check when `verbose`) as `  ok|FAIL  NAME: DETAIL`.
pub fn report(health: &Value, verbose: bool) -> (bool, Vec<String>) {
    let ready = health.member("ready").and_then(Value::as_bool).unwrap_or(false);
    let mut lines = vec![if ready { "ready" } else { "not ready" }.to_owned()];
    let checks = health.member("checks").and_then(Value::as_array).unwrap_or_default();
    for check in checks {
        let ok = check.member("ok").and_then(Value::as_bool).unwrap_or(false);
        if ok && !verbose {
            continue;
        }
        let name = check.member("name").and_then(Value::as_str).unwrap_or("?");
        let detail = match check.member("detail") {
            Some(Value::String(s)) if !s.is_empty() => format!(": {s}"),
            _ => String::new(),
        };
        lines.push(format!("  {:<4}  {name}{detail}", if ok { "ok" } else { "FAIL" }));
    }
    if !ready && lines.len() == 1 {
        // Not ready, and no check says why: say what the daemon said.
        let status = health.member("status").and_then(Value::as_str).unwrap_or("?");
        lines.push(format!("  (no failing check reported; status {status})"));
    }
    (ready, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(ready: bool, checks: &[(&str, bool, &str)]) -> Value {
        let checks = checks
            .iter()
            .map(|(name, ok, detail)| {
                Value::Struct(vec![
                    ("name".into(), Value::from(*name)),
                    ("ok".into(), Value::Bool(*ok)),
                    ("detail".into(), Value::from(*detail)),
                ])
            })
            .collect();
        Value::Struct(vec![
            ("status".into(), Value::from(if ready { "ok" } else { "fail" })),
            ("live".into(), Value::Bool(true)),
            ("ready".into(), Value::Bool(ready)),
            ("checks".into(), Value::Array(checks)),
        ])
    }

    #[test]
    fn ready_shows_only_the_verdict_unless_verbose() {
        let h = health(true, &[("started", true, "since 03:00"), ("worker:alpha", true, "looping")]);
        assert_eq!(report(&h, false), (true, vec!["ready".to_owned()]));
        let (ready, lines) = report(&h, true);
        assert!(ready);
        assert_eq!(lines, ["ready", "  ok    started: since 03:00", "  ok    worker:alpha: looping"]);
    }

    #[test]
    fn not_ready_names_each_failing_check() {
        let h = health(false, &[("started", true, ""), ("worker:alpha", false, "failed"), ("worker:beta", true, "")]);
        assert_eq!(report(&h, false), (false, vec!["not ready".to_owned(), "  FAIL  worker:alpha: failed".to_owned()]));
        let (_, lines) = report(&h, true);
        assert_eq!(lines, ["not ready", "  ok    started", "  FAIL  worker:alpha: failed", "  ok    worker:beta"]);
        // An answer without checks (or without `ready`) is not ready, and says so.
        let (ready, lines) = report(&Value::Struct(vec![("status".into(), Value::from("fail"))]), false);
        assert!(!ready);
        assert_eq!(lines, ["not ready", "  (no failing check reported; status fail)"]);
    }
}
