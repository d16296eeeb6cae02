//! The daemon's `log` backend: one line per record, in the format and to the place the operator
//! chose, with the daemon's workers' lines among them.
//!
//! # Where lines go
//!
//! | configuration | lines go to |
//! | --- | --- |
//! | `start` (detached) | stderr, which is the `--log` file, or `/dev/null` without one |
//! | `run` (foreground) | stderr: the terminal, a pipe, journald's stream |
//! | `--log syslog` | the local syslog socket, `/dev/log` (`--log syslog:/path` for another) |
//!
//! A log file is reopened on SIGHUP (with the reload) and on SIGUSR1 (only that: logrotate's
//! `postrotate`): stderr is pointed at the file at its path again, so lines written after the
//! signal go to a new file when the old one was moved away ([`reopen`]).
//!
//! # Formats
//!
//! * **text** (the default): `2026-11-25T10:00:00.123Z INFO  echo[4242] echo ready…` — UTC
//!   time, level, the process's name and pid, the message, then ` key=value` for each field of
//!   a record that has some (`log::info!(user = "ann"; "…")`).
//! * **journald**: under `run`, when `JOURNAL_STREAM` is set *and* stderr is that stream (its
//!   device and inode match the variable's, as sd-daemon(3) says: a child of the service whose
//!   stderr went elsewhere keeps the variable), each line starts with its syslog priority,
//!   `<3>` error, `<4>` warn, `<6>` info, `<7>` debug and trace, and has no time (the journal
//!   keeps its own), so `journalctl -p warning` filters by level. A line of a worker is
//!   `<6>alpha[4243]: …`; each line of a message of several lines gets the prefix.
//! * **json** (`--log-format json`): one object per line for container log shippers:
//!   `time` (RFC 3339, UTC), `level` (`error`, `warn`, `info`, `debug`, `trace`), `target` (the
//!   record's module path; `stdout` or `stderr` for a worker's raw output), `worker` (only on
//!   a worker's lines), `pid`, `message`, and `fields` (an object; only when the record has
//!   some). Under journald the priority prefix comes first.
//! * **syslog**: the local form of RFC 3164, `<PRI>TAG[PID]: MESSAGE`, one datagram per
//!   record, facility `daemon`; TAG is the daemon's name, or the worker's. Not RFC 5424:
//!   what listens on `/dev/log` (journald, rsyslog's imuxsock, busybox syslogd) parses the
//!   3164 form, and journald would keep a 5424 header as part of the message. No timestamp
//!   either: the local receivers stamp a record when it arrives (imuxsock ignores a sent one by
//!   default), and a 3164 time is local time without a zone, which a daemon cannot compute
//!   without the time-zone database. A record is cut at 8 KiB (rsyslog's default limit). The
//!   socket is non-blocking: when the receiver is gone or too slow, a record is dropped, not
//!   waited for, and the count is sent once it takes records again.
//!
//! # Levels
//!
//! `info` by default, `-v` debug, `-vv` trace; [`set_level`] at run time (the `daemon.loglevel`
//! method, `tomtectl loglevel LEVEL`), which reaches the running workers too; a worker forked
//! later starts with the daemon's level.
//!
//! # Workers
//!
//! A worker's stdout and stderr are pipes the daemon reads (see
//! [`crate::worker`](crate::worker#output)): what it prints is logged by the daemon, tagged with
//! the worker's name and pid, stdout at info, stderr at warn. A worker's own `log` records go
//! the same way, with their level, target and fields kept (the worker's logger writes them
//! into its stderr pipe marked as records), so every line reaches the log, syslog or the
//! journal through the daemon, in its format, and follows its log file when it is reopened.

pub(crate) mod format;
mod record;
mod syslog;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use log::{Level, LevelFilter, Log, Metadata, Record};

pub(crate) use format::{timestamp, Fields};
use format::{Entry, Style};
pub(crate) use record::MAX_RECORD;

/// The syslog socket `--log syslog` writes to.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// How each line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// Time, level, name and pid, message (or the journal's priority prefix instead of the time).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("not a log format: text or json".to_owned()),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the daemon logs, beyond the level (`Config::verbose`) and the file (`Config::log`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogSettings {
    /// The format of each line (`--log-format`).
    pub format: LogFormat,
    /// Log to the syslog socket at this path instead of stderr (`--log syslog[:PATH]`).
    pub syslog: Option<PathBuf>,
}

impl LogSettings {
    /// The syslog socket a `--log` value names: `syslog` is [`SYSLOG_SOCKET`], `syslog:PATH`
    /// is PATH; `None` for a file.
    pub fn syslog_target(log: &Path) -> Option<PathBuf> {
        let s = log.to_str()?;
        if s == "syslog" {
            return Some(PathBuf::from(SYSLOG_SOCKET));
        }
        s.strip_prefix("syslog:").filter(|p| !p.is_empty()).map(PathBuf::from)
    }
}

/// The level of `-v` given `count` times: info, debug, then trace.
pub fn verbosity(count: u8) -> LevelFilter {
    match count {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// A level by its name: `error`, `warn`, `info`, `debug` or `trace` (case does not matter).
pub fn parse_level(name: &str) -> Option<LevelFilter> {
    let level: LevelFilter = name.parse().ok()?;
    (level != LevelFilter::Off).then_some(level)
}

/// The name of a level, lower-case.
pub fn level_name(level: LevelFilter) -> &'static str {
    match level {
        LevelFilter::Off => "off",
        LevelFilter::Error => "error",
        LevelFilter::Warn => "warn",
        LevelFilter::Info => "info",
        LevelFilter::Debug => "debug",
        LevelFilter::Trace => "trace",
    }
}

/// The most verbose level logged now.
pub fn level() -> LevelFilter {
    log::max_level()
}

/// Changes the level of this process; returns the previous one. (The `daemon.loglevel`
/// method also tells the running workers.)
pub fn set_level(level: LevelFilter) -> LevelFilter {
    let previous = log::max_level();
    log::set_max_level(level);
    previous
}

/// Where the process's lines go.
enum Sink {
    Stderr,
    Syslog(syslog::Syslog),
}

/// The logger's state: set by [`init`] in the daemon. A forked worker inherits it, sees that
/// it is not the process it was made for (`pid`), and writes records into its stderr pipe.
struct State {
    tag: String,
    pid: u32,
    style: Style,
    sink: Sink,
    /// The log file stderr points at, reopened by [`reopen`].
    file: Option<PathBuf>,
    /// Records kept for the clients subscribed to `daemon.log` (see [`capture`]), while some are.
    captured: Option<Captured>,
}

/// Log records waiting to become `daemon.log` events, and how many were dropped.
#[derive(Default)]
struct Captured {
    records: Vec<tomte_rpc::Value>,
    dropped: u64,
}

/// At most this many records wait between two turns of the loop; older ones are kept, newer
/// ones counted and dropped (a flood of logs cannot grow the daemon).
const MAX_CAPTURED: usize = 4096;

/// Starts (or stops) keeping each record the daemon writes as an event's data, for
/// [`take_captured`]: on only while a client subscribes to `daemon.log`.
pub(crate) fn capture(on: bool) {
    if let Some(state) = state().as_mut() {
        match (on, state.captured.is_some()) {
            (true, false) => state.captured = Some(Captured::default()),
            (false, true) => state.captured = None,
            _ => {}
        }
    }
}

/// The records kept since the last call (see [`capture`]), and how many did not fit.
pub(crate) fn take_captured() -> (Vec<tomte_rpc::Value>, u64) {
    match state().as_mut().and_then(|s| s.captured.as_mut()) {
        Some(c) if !c.records.is_empty() || c.dropped > 0 => {
            (std::mem::take(&mut c.records), std::mem::take(&mut c.dropped))
        }
        _ => (Vec::new(), 0),
    }
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = match record.args().as_str() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(record.args().to_string()),
        };
        let fields = Fields::of(record.key_values());
        let pid = std::process::id();
        let mut guard = state();
        match guard.as_mut() {
            Some(state) if state.pid == pid => {
                let entry = Entry {
                    level: record.level(),
                    target: record.target(),
                    worker: None,
                    pid,
                    message: &message,
                    fields,
                };
                state.write(&entry);
            }
            // A worker (forked from the daemon): a record for the daemon to log, into the
            // stderr pipe. Never the daemon's syslog socket, whose descriptor the worker closed.
            _ => {
                drop(guard);
                let mut line = Vec::with_capacity(64 + message.len());
                record::encode(&mut line, record.level(), record.target(), &message, &fields);
                let _ = io::stderr().lock().write_all(&line);
            }
        }
    }

    fn flush(&self) {}
}

impl State {
    fn write(&mut self, entry: &Entry<'_>) {
        if let Some(c) = &mut self.captured {
            if c.records.len() < MAX_CAPTURED {
                use tomte_rpc::Value;
                c.records.push(Value::structure([
                    ("level", Value::from(entry.level.as_str().to_ascii_lowercase())),
                    ("target", Value::from(entry.target)),
                    ("worker", entry.worker.map_or(Value::Nil, Value::from)),
                    ("message", Value::from(entry.message)),
                ]));
            } else {
                c.dropped += 1;
            }
        }
        let tag = entry.worker.unwrap_or(&self.tag);
        match &mut self.sink {
            Sink::Stderr => {
                let mut line = Vec::with_capacity(96 + entry.message.len());
                self.style.render(&mut line, entry, tag);
                // One write per line: lines never interleave.
                let _ = io::stderr().lock().write_all(&line);
            }
            Sink::Syslog(s) => s.send(entry, tag),
        }
    }
}

/// Installs the logger of daemon `tag` at `level` (once per process; a second call replaces the
/// settings). `file` is the log file stderr points at (reopened by [`reopen`]); `foreground`
/// says that stderr may be journald's stream. Fails only when the syslog socket cannot be
/// reached.
pub fn init(
    tag: &str,
    settings: &LogSettings,
    level: LevelFilter,
    file: Option<&Path>,
    foreground: bool,
) -> io::Result<()> {
    let sink = match &settings.syslog {
        Some(path) => Sink::Syslog(syslog::Syslog::connect(path)?),
        None => Sink::Stderr,
    };
    let journal = foreground && settings.syslog.is_none() && format::stderr_is_journal();
    let style = Style { format: settings.format, journal };
    *state() = Some(State {
        tag: tag.to_owned(),
        pid: std::process::id(),
        style,
        sink,
        file: file.map(Path::to_owned),
        captured: None,
    });
    let _ = log::set_logger(&Logger);
    log::set_max_level(level);
    Ok(())
}

/// Changes the name lines are tagged with.
pub fn set_tag(tag: &str) {
    if let Some(state) = state().as_mut() {
        tag.clone_into(&mut state.tag);
    }
}

/// Reopens the log: points stderr at the log file's path again (after it was moved away), or
/// reconnects to the syslog socket. SIGUSR1 calls it; errors are logged.
pub fn reopen() {
    let (file, syslog) = match state().as_mut() {
        Some(state) => match &mut state.sink {
            Sink::Syslog(s) => (None, Some(s.reconnect())),
            Sink::Stderr => (state.file.clone(), None),
        },
        None => (None, None),
    };
    if let Some(Err(e)) = syslog {
        log::error!("{e}");
    }
    if let Some(path) = file {
        match crate::process::redirect_stderr(&path) {
            Ok(()) => log::info!("log reopened: {}", path.display()),
            Err(e) => log::error!("{e}"),
        }
    }
}

/// stderr now points at the log file `path` ([`crate::process::redirect_stderr`] says so).
pub(crate) fn remember_file(path: &Path) {
    if let Some(state) = state().as_mut() {
        if state.file.as_deref() != Some(path) {
            state.file = Some(path.to_owned());
        }
    }
}

/// Where a worker's line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// Logs one line of worker `name` (pid `pid`) read from its `stream`: a record its logger wrote
/// (with its own level, target and fields), or raw output, at info (stdout) or warn (stderr).
pub(crate) fn worker_line(name: &str, pid: i32, stream: Stream, line: &[u8]) {
    if let Some((at, _)) = record::find(line) {
        worker_line(name, pid, stream, &line[..at]);
        return worker_line(name, pid, stream, &line[at..]);
    }
    let pid = u32::try_from(pid).unwrap_or(0);
    let decoded;
    let (level, target, message, fields) = match record::decode(line) {
        Some(r) => {
            decoded = r;
            (
                decoded.level,
                decoded.target.as_str(),
                std::borrow::Cow::Borrowed(decoded.message.as_str()),
                decoded.fields,
            )
        }
        None => {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match stream {
                Stream::Stdout => (Level::Info, "stdout", String::from_utf8_lossy(line), Fields::default()),
                Stream::Stderr => (Level::Warn, "stderr", String::from_utf8_lossy(line), Fields::default()),
            }
        }
    };
    if level > log::max_level() {
        return;
    }
    if let Some(state) = state().as_mut() {
        state.write(&Entry { level, target, worker: Some(name), pid, message: &message, fields });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_targets_and_levels() {
        assert_eq!(LogSettings::syslog_target(Path::new("syslog")), Some(PathBuf::from("/dev/log")));
        assert_eq!(LogSettings::syslog_target(Path::new("syslog:/tmp/s")), Some(PathBuf::from("/tmp/s")));
        assert_eq!(LogSettings::syslog_target(Path::new("/var/log/x.log")), None);
        assert_eq!(LogSettings::syslog_target(Path::new("./syslog")), None);
        assert_eq!(LogSettings::syslog_target(Path::new("syslog:")), None);
        assert_eq!(verbosity(0), LevelFilter::Info);
        assert_eq!(verbosity(1), LevelFilter::Debug);
        assert_eq!(verbosity(7), LevelFilter::Trace);
        assert_eq!(parse_level("DEBUG"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("off"), None);
        assert_eq!(parse_level("loud"), None);
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
