//! Writing one record as a line: text, journald's priority prefix, JSON, and the time stamp.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::Level;
use serde_json::{Map, Value};

use super::LogFormat;

/// A record's key-value pairs (`log::info!(user = "ann"; "…")`), as JSON values.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Fields(pub(crate) Map<String, Value>);

impl Fields {
    /// The pairs of a record: numbers and booleans as such, anything else as its text.
    pub(crate) fn of(source: &dyn log::kv::Source) -> Fields {
        struct Collect(Map<String, Value>);
        impl<'kvs> log::kv::VisitSource<'kvs> for Collect {
            fn visit_pair(
                &mut self,
                key: log::kv::Key<'kvs>,
                value: log::kv::Value<'kvs>,
            ) -> Result<(), log::kv::Error> {
                let v = if let Some(b) = value.to_bool() {
                    Value::Bool(b)
                } else if let Some(i) = value.to_i64() {
                    Value::from(i)
                } else if let Some(u) = value.to_u64() {
                    Value::from(u)
                } else if let Some(f) = value.to_f64().filter(|f| f.is_finite()) {
                    Value::from(f)
                } else {
                    Value::String(value.to_string())
                };
                self.0.insert(key.as_str().to_owned(), v);
                Ok(())
            }
        }
        if source.count() == 0 {
            return Fields::default();
        }
        let mut c = Collect(Map::new());
        let _ = source.visit(&mut c);
        Fields(c.0)
    }
}

/// One line to write.
pub(super) struct Entry<'a> {
    pub(super) level: Level,
    pub(super) target: &'a str,
    /// The worker it comes from; `None` for the daemon's own.
    pub(super) worker: Option<&'a str>,
    pub(super) pid: u32,
    pub(super) message: &'a str,
    pub(super) fields: Fields,
}

/// How lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Style {
    pub(super) format: LogFormat,
    /// stderr is journald's stream: priority prefixes, no time.
    pub(super) journal: bool,
}

/// The syslog severity of a level (RFC 5424's numbers, which journald and syslog share).
pub(super) fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

impl Style {
    /// Writes `entry` as one line (ending in `\n`) into `out`; `tag` names the process (the
    /// daemon's name, or the worker's).
    pub(super) fn render(&self, out: &mut Vec<u8>, entry: &Entry<'_>, tag: &str) {
        let prefix = self.journal.then(|| format!("<{}>", severity(entry.level)));
        if let Some(p) = &prefix {
            out.extend_from_slice(p.as_bytes());
        }
        match self.format {
            LogFormat::Json => json(out, entry),
            LogFormat::Text if self.journal => {
                // The journal knows the daemon's name and pid; a worker's line says whose it is.
                if let Some(worker) = entry.worker {
                    let _ = write!(out, "{worker}[{}]: ", entry.pid);
                }
                let start = out.len();
                out.extend_from_slice(entry.message.as_bytes());
                fields(out, &entry.fields);
                // Each line of the message is an entry of the journal: each gets the priority.
                if let Some(p) = &prefix {
                    if out[start..].contains(&b'\n') {
                        let tail = out.split_off(start);
                        let with = String::from_utf8_lossy(&tail).replace('\n', &format!("\n{p}"));
                        out.extend_from_slice(with.as_bytes());
                    }
                }
            }
            LogFormat::Text => {
                let _ = write!(out, "{} {:<5} {tag}[{}] {}", timestamp(), entry.level, entry.pid, entry.message);
                fields(out, &entry.fields);
            }
        }
        out.push(b'\n');
    }
}

/// ` key=value` for each field: a string as it is unless it has spaces (then quoted, as JSON).
fn fields(out: &mut Vec<u8>, fields: &Fields) {
    for (k, v) in &fields.0 {
        match v {
            Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) && !s.contains('"') => {
                let _ = write!(out, " {k}={s}");
            }
            v => {
                let _ = write!(out, " {k}={v}");
            }
        }
    }
}

/// One JSON object, without the newline.
fn json(out: &mut Vec<u8>, entry: &Entry<'_>) {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        time: &'a str,
        level: &'a str,
        target: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        worker: Option<&'a str>,
        pid: u32,
        message: &'a str,
        #[serde(skip_serializing_if = "Map::is_empty")]
        fields: &'a Map<String, Value>,
    }
    let time = timestamp();
    let line = Line {
        time: &time,
        level: level_name(entry.level),
        target: entry.target,
        worker: entry.worker,
        pid: entry.pid,
        message: entry.message,
        fields: &entry.fields.0,
    };
    let _ = serde_json::to_writer(out, &line);
}

/// Whether stderr is journald's stream: `JOURNAL_STREAM` is `DEVICE:INODE` (decimal) of it.
/// A process whose stderr was redirected elsewhere may still have the variable from its
/// service, so the descriptor is compared, not only the variable's presence checked.
pub(super) fn stderr_is_journal() -> bool {
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else { return false };
    match rustix::fs::fstat(std::io::stderr()) {
        #[allow(clippy::unnecessary_cast)] // st_dev and st_ino are not u64 on every target
        Ok(st) => names(var.to_str(), st.st_dev as u64, st.st_ino as u64),
        Err(_) => false,
    }
}

/// Whether `JOURNAL_STREAM`'s value `var` names device `dev`, inode `ino`.
fn names(var: Option<&str>, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = var.and_then(|v| v.split_once(':')) else { return false };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// Days since 1970-01-01 as a civil date (year, month 1..=12, day 1..=31), by Howard
/// Hinnant's algorithm (public domain).
pub(crate) fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// UTC time as `2026-11-25T10:00:00.123Z` (RFC 3339).
pub(crate) fn timestamp() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(message: &'a str, worker: Option<&'a str>, fields: Fields) -> Entry<'a> {
        Entry { level: Level::Warn, target: "app::part", worker, pid: 42, message, fields }
    }

    fn render(style: Style, e: &Entry<'_>) -> String {
        let mut out = Vec::new();
        style.render(&mut out, e, e.worker.unwrap_or("echo"));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamp_shape() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }

    #[test]
    fn text_journal_and_json_lines() {
        let mut f = Map::new();
        f.insert("user".into(), Value::from("ann"));
        f.insert("n".into(), Value::from(3));
        let text = Style { format: LogFormat::Text, journal: false };
        let line = render(text, &entry("hello", None, Fields(f.clone())));
        assert!(line.ends_with(" WARN  echo[42] hello n=3 user=ann\n"), "{line:?}");
        assert_eq!(line.len(), 24 + " WARN  echo[42] hello n=3 user=ann\n".len());

        let journal = Style { format: LogFormat::Text, journal: true };
        assert_eq!(render(journal, &entry("two\nlines", None, Fields::default())), "<4>two\n<4>lines\n");
        assert_eq!(render(journal, &entry("hi", Some("alpha"), Fields::default())), "<4>alpha[42]: hi\n");

        let json = Style { format: LogFormat::Json, journal: false };
        let line = render(json, &entry("a \"quoted\"\nline", Some("alpha"), Fields(f)));
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "{line:?}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["target"], "app::part");
        assert_eq!(v["worker"], "alpha");
        assert_eq!(v["message"], "a \"quoted\"\nline");
        assert_eq!(v["fields"]["n"], 3);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        let line = render(json, &entry("x", None, Fields::default()));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(v.get("worker").is_none() && v.get("fields").is_none(), "{v}");
        let journal_json = Style { format: LogFormat::Json, journal: true };
        assert!(render(journal_json, &entry("x", None, Fields::default())).starts_with("<4>{\"time\":"));
    }

    #[test]
    fn journal_stream_must_name_the_descriptor() {
        assert!(names(Some("64769:123456"), 64769, 123456));
        assert!(!names(Some("64769:123457"), 64769, 123456));
        assert!(!names(Some("garbage"), 64769, 123456));
        assert!(!names(None, 64769, 123456));
    }
}
