//! A worker's own stdout and stderr, read by the daemon's loop and logged line by line.
//!
//! Two pipes per worker process, made at spawn: the worker's ends become its descriptors 1 and
//! 2 before any of its code runs ([`WorkerEnds::install`]), the daemon keeps the read ends,
//! non-blocking, registered on its poll. What arrives is split into lines and logged with the
//! worker's name and pid (see [`crate::logging`]): stdout at info, stderr at warn, the worker's
//! own `log` records at their level.
//!
//! Limits, so that a worker printing without end can neither stall the loop nor grow the
//! daemon's memory:
//!
//! * at most [`READ_PER_TURN`] bytes per pipe in one turn of the loop: then the loop serves
//!   everything else and comes back at its next turn (without sleeping);
//! * a line longer than [`MAX_LINE`] bytes is cut there (and marked ` [cut]`), the rest of
//!   it up to its newline dropped; what is held of a line not ended yet is never more (a
//!   record of the worker's logger may take [`MAX_RECORD`](crate::logging::MAX_RECORD));
//! * at most [`LINES_PER_SECOND`] lines of a worker are logged in each second; the others are
//!   read and dropped, and `N lines dropped from worker NAME` logged once the second is over.
//!
//! Nothing is lost when the worker dies: once it is reaped its pipes are read to their end,
//! and a last line without its newline (a `print!`, a crash mid-line) is logged too.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::io::Errno;

use crate::logging::{self, Stream};

/// The most read from one pipe in one turn of the loop.
pub const READ_PER_TURN: usize = 64 << 10;
/// Lines are cut past this many bytes.
pub const MAX_LINE: usize = 4 << 10;
/// The most lines of one worker logged in a second; more are dropped, and counted.
pub const LINES_PER_SECOND: u32 = 1000;
/// What is read from a pipe once its worker has been reaped, at most (more means another
/// process still writes into it: a child the worker left behind).
const DRAIN_MAX: usize = 1 << 20;
/// What a read takes at once.
const CHUNK: usize = 8 << 10;
const SECOND: Duration = Duration::from_secs(1);
/// The first byte of a record of the worker's logger.
const RECORD: u8 = 0x1e;
const CUT: &[u8] = b" [cut]";

/// The worker's ends of its pipes, which become its stdout and stderr.
#[derive(Debug)]
pub(crate) struct WorkerEnds {
    out: OwnedFd,
    err: OwnedFd,
}

impl WorkerEnds {
    /// Their descriptors, to keep open across the fork.
    pub(crate) fn fds(&self) -> [RawFd; 2] {
        [self.out.as_raw_fd(), self.err.as_raw_fd()]
    }

    /// In the worker's process, before its code runs: its stdout and stderr become the pipes
    /// (`dup2` leaves the copies without close-on-exec, so a program it executes writes there
    /// too), and the original descriptors are closed.
    pub(crate) fn install(self) -> io::Result<()> {
        rustix::stdio::dup2_stdout(&self.out)?;
        rustix::stdio::dup2_stderr(&self.err)?;
        Ok(())
    }
}

/// Makes the pipes of a new worker: the daemon's side, and the worker's ends.
pub(crate) fn pipes() -> io::Result<(Output, WorkerEnds)> {
    let flags = rustix::pipe::PipeFlags::CLOEXEC;
    let (out_r, out_w) = rustix::pipe::pipe_with(flags)?;
    let (err_r, err_w) = rustix::pipe::pipe_with(flags)?;
    // Only the daemon's ends are non-blocking: the flag belongs to the open pipe end, and a
    // worker's `println!` must wait for room, not fail.
    rustix::io::ioctl_fionbio(&out_r, true)?;
    rustix::io::ioctl_fionbio(&err_r, true)?;
    let output = Output {
        streams: [Reader::new(out_r, Stream::Stdout), Reader::new(err_r, Stream::Stderr)],
        rate: Rate { since: Instant::now(), lines: 0, dropped: 0 },
    };
    Ok((output, WorkerEnds { out: out_w, err: err_w }))
}

/// One pipe's read end, and the line it is in the middle of.
struct Reader {
    fd: OwnedFd,
    stream: Stream,
    /// The start of a line whose newline has not come yet.
    partial: Vec<u8>,
    /// The line being read was cut: the rest of it, up to its newline, is dropped.
    skipping: bool,
    /// Left unread at the end of a turn (the per-turn cap): read again next turn.
    more: bool,
    /// The worker closed its end.
    eof: bool,
}

impl Reader {
    fn new(fd: OwnedFd, stream: Stream) -> Reader {
        Reader { fd, stream, partial: Vec::new(), skipping: false, more: false, eof: false }
    }
}

/// How many lines a worker logged in the current second, and dropped.
struct Rate {
    since: Instant,
    lines: u32,
    dropped: u64,
}

impl Rate {
    /// Whether one more line may be logged now.
    fn admit(&mut self, now: Instant, name: &str) -> bool {
        if now.duration_since(self.since) >= SECOND {
            self.report(name);
            self.since = now;
            self.lines = 0;
        }
        if self.lines >= LINES_PER_SECOND {
            self.dropped += 1;
            return false;
        }
        self.lines += 1;
        true
    }

    fn report(&mut self, name: &str) {
        match std::mem::take(&mut self.dropped) {
            0 => {}
            n => log::warn!("{n} lines dropped from worker {name} (more than {LINES_PER_SECOND} lines in a second)"),
        }
    }
}

/// Who the lines are from.
#[derive(Clone, Copy)]
pub(crate) struct Who<'a> {
    pub(crate) name: &'a str,
    pub(crate) pid: i32,
}

/// The daemon's side of a worker's stdout and stderr.
pub(crate) struct Output {
    streams: [Reader; 2],
    rate: Rate,
}

impl Output {
    /// Watches both pipes on the loop's poll, with tokens `first` (stdout) and `first + 1`.
    pub(crate) fn register(&self, registry: &Registry, first: usize) -> io::Result<()> {
        for (k, r) in self.streams.iter().enumerate() {
            registry.register(&mut SourceFd(&r.fd.as_raw_fd()), Token(first + k), Interest::READABLE)?;
        }
        Ok(())
    }

    pub(crate) fn deregister(&self, registry: &Registry) {
        for r in &self.streams {
            let _ = registry.deregister(&mut SourceFd(&r.fd.as_raw_fd()));
        }
    }

    /// Reads what the poll reported (`woken`: stdout, stderr) and what was left last turn, up
    /// to [`READ_PER_TURN`] per pipe, and logs the lines.
    pub(crate) fn read(&mut self, woken: [bool; 2], who: Who<'_>) {
        for (k, woken) in woken.into_iter().enumerate() {
            if woken || self.streams[k].more {
                self.read_pipe(k, READ_PER_TURN, who);
            }
        }
    }

    /// Whether a pipe has more to read at once (the loop must not sleep).
    pub(crate) fn pending(&self) -> bool {
        self.streams.iter().any(|r| r.more)
    }

    /// When the count of dropped lines is due to be logged.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        (self.rate.dropped > 0).then(|| self.rate.since + SECOND)
    }

    /// Logs the count of dropped lines once its second is over.
    pub(crate) fn tick(&mut self, now: Instant, who: Who<'_>) {
        if self.deadline().is_some_and(|t| t <= now) {
            self.rate.report(who.name);
        }
    }

    /// The worker was reaped: reads both pipes to their end (at most [`DRAIN_MAX`] each), logs
    /// a last line that has no newline, and the count of dropped lines.
    pub(crate) fn drain(&mut self, who: Who<'_>) {
        for k in 0..2 {
            self.read_pipe(k, DRAIN_MAX, who);
            let r = &mut self.streams[k];
            if !r.partial.is_empty() && !r.skipping {
                let last = std::mem::take(&mut r.partial);
                let stream = r.stream;
                self.emit(stream, &last, Instant::now(), who);
            }
        }
        self.rate.report(who.name);
    }

    fn read_pipe(&mut self, k: usize, budget: usize, who: Who<'_>) {
        let mut buf = [0u8; CHUNK];
        let mut total = 0;
        self.streams[k].more = false;
        while !self.streams[k].eof {
            if total >= budget {
                self.streams[k].more = true;
                return;
            }
            match rustix::io::read(&self.streams[k].fd, &mut buf) {
                Ok(0) => self.streams[k].eof = true,
                Ok(n) => {
                    total += n;
                    self.take(k, &buf[..n], who);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(e) => {
                    log::warn!("cannot read the output of worker {}: {e}", who.name);
                    self.streams[k].eof = true;
                }
            }
        }
    }

    /// Splits `bytes` read from pipe `k` into lines.
    fn take(&mut self, k: usize, mut bytes: &[u8], who: Who<'_>) {
        let now = Instant::now();
        while let Some(i) = memchr::memchr(b'\n', bytes) {
            self.complete(k, &bytes[..i], now, who);
            bytes = &bytes[i + 1..];
        }
        if bytes.is_empty() {
            return;
        }
        let r = &mut self.streams[k];
        if r.skipping {
            return;
        }
        let room = (crate::logging::MAX_RECORD + 1).saturating_sub(r.partial.len());
        r.partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
        let limit = limit(&r.partial);
        if r.partial.len() > limit {
            let mut line = std::mem::take(&mut r.partial);
            r.skipping = true;
            let stream = r.stream;
            line.truncate(limit);
            line.extend_from_slice(CUT);
            self.emit(stream, &line, now, who);
        }
    }

    /// The end of a line of pipe `k`: `tail` is what came before its newline in this read.
    fn complete(&mut self, k: usize, tail: &[u8], now: Instant, who: Who<'_>) {
        let r = &mut self.streams[k];
        let stream = r.stream;
        if std::mem::take(&mut r.skipping) {
            return;
        }
        if r.partial.is_empty() {
            let limit = limit(tail);
            if tail.len() <= limit {
                self.emit(stream, tail, now, who);
            } else {
                let mut line = tail[..limit].to_vec();
                line.extend_from_slice(CUT);
                self.emit(stream, &line, now, who);
            }
            return;
        }
        let room = (crate::logging::MAX_RECORD + 1).saturating_sub(r.partial.len());
        r.partial.extend_from_slice(&tail[..tail.len().min(room)]);
        let mut line = std::mem::take(&mut r.partial);
        let limit = limit(&line);
        if line.len() > limit {
            line.truncate(limit);
            line.extend_from_slice(CUT);
        }
        self.emit(stream, &line, now, who);
        // Keep the buffer for the next partial line, unless a long line made it big.
        line.clear();
        if line.capacity() <= MAX_LINE {
            self.streams[k].partial = line;
        }
    }

    fn emit(&mut self, stream: Stream, line: &[u8], now: Instant, who: Who<'_>) {
        if self.rate.admit(now, who.name) {
            logging::worker_line(who.name, who.pid, stream, line);
        }
    }
}

/// The longest a line may be: a record of the worker's logger may be longer than raw output.
fn limit(line: &[u8]) -> usize {
    if line.first() == Some(&RECORD) {
        crate::logging::MAX_RECORD
    } else {
        MAX_LINE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn who() -> Who<'static> {
        Who { name: "w", pid: 1 }
    }

    /// Lines logged through an output whose worker end is written by the test.
    fn read_all(chunks: &[&[u8]]) -> (Output, usize) {
        let (mut out, ends) = pipes().unwrap();
        let mut w = std::fs::File::from(ends.out);
        for c in chunks {
            w.write_all(c).unwrap();
            out.read([true, false], who());
        }
        drop(w);
        drop(ends.err);
        out.drain(who());
        let lines = out.rate.lines as usize;
        (out, lines)
    }

    #[test]
    fn lines_split_across_reads_and_a_last_partial_line() {
        let (out, lines) = read_all(&[b"one\ntw", b"o\nthr", b"ee"]);
        assert_eq!(lines, 3, "one, two, and the unfinished three");
        assert!(out.streams[0].partial.is_empty() && out.streams[0].eof);
    }

    #[test]
    fn long_lines_are_cut_and_their_rest_skipped() {
        let long = vec![b'x'; MAX_LINE * 3];
        let (out, lines) = read_all(&[&long, b"yyy\nnext\n"]);
        assert_eq!(lines, 2, "the cut line, then next");
        assert!(!out.streams[0].skipping);
        let (_, lines) = read_all(&[&long, b"\n", &long[..10], b"\n"]);
        assert_eq!(lines, 2);
    }

    #[test]
    fn a_flood_is_read_at_most_a_turns_worth_at_once_and_rate_capped() {
        let (mut out, ends) = pipes().unwrap();
        let mut w = std::fs::File::from(ends.out);
        let line = b"flood flood flood flood flood\n";
        // The pipe holds 64 KiB by default: fill it.
        let mut written = 0;
        rustix::io::ioctl_fionbio(&w, true).unwrap();
        while written < (1 << 20) {
            match w.write(line) {
                Ok(n) => written += n,
                Err(_) => break,
            }
        }
        out.read([true, false], who());
        assert!(out.rate.lines <= LINES_PER_SECOND);
        assert!(out.rate.dropped > 0, "more than a second's worth");
        assert!(out.deadline().is_some());
        out.tick(out.rate.since + SECOND, who());
        assert_eq!(out.rate.dropped, 0, "reported");
        assert!(out.deadline().is_none());
    }
}
