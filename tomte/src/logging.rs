//! A small `log` backend that writes one line per record to stderr, which is the terminal under
//! `run`, the `--log` file (or `/dev/null`) once detached. Reopening a log after rotation is
//! pointing stderr at the file again, so every process that shares it (workers too) follows.

use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

/// The name each line is tagged with: the daemon's, or a worker's in a worker process.
static TAG: Mutex<String> = Mutex::new(String::new());

struct StderrLog;

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let tag = TAG.lock().map(|t| t.clone()).unwrap_or_default();
        let mut line = Vec::with_capacity(128);
        let _ =
            writeln!(line, "{} {:<5} {}[{}] {}", timestamp(), record.level(), tag, std::process::id(), record.args());
        // One write per line, so lines from the daemon and its workers never interleave.
        let _ = std::io::stderr().lock().write_all(&line);
    }

    fn flush(&self) {}
}

/// Installs the logger (once per process; later calls only change the level and tag).
pub fn init(tag: &str, verbose: bool) {
    set_tag(tag);
    let _ = log::set_logger(&StderrLog);
    log::set_max_level(if verbose { LevelFilter::Debug } else { LevelFilter::Info });
}

/// Changes the name lines are tagged with (a worker sets its own after fork).
pub fn set_tag(tag: &str) {
    if let Ok(mut t) = TAG.lock() {
        tag.clone_into(&mut t);
    }
}

/// UTC time as `2026-11-25T10:00:00.123Z`.
fn timestamp() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm, public domain).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
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
    #[test]
    fn timestamp_shape() {
        let t = super::timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}

/// Warnings that a client can trigger at will (refused connections, timeouts), at most one line
/// per interval: the first is written, the rest counted and summed up in the next line.
#[derive(Debug)]
pub(crate) struct Throttle {
    interval: std::time::Duration,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl Throttle {
    pub(crate) fn new(interval: std::time::Duration) -> Throttle {
        Throttle { interval, last: None, suppressed: 0 }
    }

    /// Logs `line` (built only when it is written) unless one was written within the interval.
    pub(crate) fn warn(&mut self, line: impl FnOnce() -> String) {
        let now = std::time::Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < self.interval) {
            self.suppressed += 1;
            return;
        }
        match std::mem::take(&mut self.suppressed) {
            0 => log::warn!("{}", line()),
            n => log::warn!("{} ({n} more like it in the last {:?})", line(), self.interval),
        }
        self.last = Some(now);
    }
}
