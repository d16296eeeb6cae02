//! What the loop tells systemd, and when: readiness, watchdog pings, reloads, status lines,
//! slow-start extensions and the stop (the crate docs' *Under systemd* has the table).
//!
//! Everything is sent from the loop's thread, at points of the loop itself: the watchdog ping
//! is a deadline in the loop's wake-up list, so a loop stuck in a handler stops pinging and
//! systemd's watchdog fires, which is the point of it.

use std::time::{Duration, Instant};

use crate::logging::Throttle;
use crate::process::notify::{self, Notifier};

/// How long systemd should wait for the next message, from each start stage announced with
/// `EXTEND_TIMEOUT_USEC` (it only ever lengthens `TimeoutStartSec=`, never shortens it).
const EXTEND_BY: Duration = Duration::from_secs(10);
/// At most one `STATUS=` line per interval.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// What the status line counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) connections: usize,
    /// Workers with a process that is not being stopped.
    pub(crate) workers_up: usize,
    pub(crate) workers: usize,
}

impl Counts {
    /// `12 connections, 2/2 workers up` (no workers: `12 connections`).
    pub(crate) fn line(&self) -> String {
        let s = if self.connections == 1 { "" } else { "s" };
        match self.workers {
            0 => format!("{} connection{s}", self.connections),
            n => format!("{} connection{s}, {}/{n} workers up", self.connections, self.workers_up),
        }
    }
}

/// The loop's side of the notify protocol; inert when the daemon is not under systemd.
pub(crate) struct Systemd {
    notifier: Option<Notifier>,
    /// Half the watchdog's timeout.
    ping_every: Option<Duration>,
    /// The next ping, once ready.
    next_ping: Option<Instant>,
    /// The counts of the last status line, and when a status line went out.
    shown: Option<Counts>,
    status_at: Option<Instant>,
    /// A status line that changed but waits for its interval.
    status_due: Option<Instant>,
    failures: Throttle,
}

impl Systemd {
    /// Not under systemd: sends nothing (a detached daemon, or no `NOTIFY_SOCKET`).
    pub(crate) fn off() -> Systemd {
        Systemd {
            notifier: None,
            ping_every: None,
            next_ping: None,
            shown: None,
            status_at: None,
            status_due: None,
            failures: Throttle::new(Duration::from_secs(60)),
        }
    }

    /// From the environment systemd gives a service: `NOTIFY_SOCKET`, `WATCHDOG_USEC`,
    /// `WATCHDOG_PID`.
    pub(crate) fn from_env() -> Systemd {
        let mut s = Systemd::off();
        s.notifier = Notifier::from_env();
        if s.notifier.is_some() {
            s.ping_every = notify::watchdog_from_env().map(|t| (t / 2).max(Duration::from_millis(1)));
            if let Some(every) = s.ping_every {
                log::debug!("systemd watchdog: pinging every {every:?}");
            }
        }
        s
    }

    fn send(&mut self, state: &str) {
        let Some(n) = &self.notifier else { return };
        if let Err(e) = n.send(state) {
            let at = n.address().to_owned();
            self.failures.warn(|| format!("cannot notify systemd at {at}: {e}"));
        }
    }

    /// A start stage that may take a while begins: systemd is asked to wait [`EXTEND_BY`] more,
    /// and shown what the daemon is doing.
    pub(crate) fn extend(&mut self, stage: &str) {
        if self.notifier.is_none() {
            return;
        }
        self.send(&format!("EXTEND_TIMEOUT_USEC={}\nSTATUS=starting: {stage}", EXTEND_BY.as_micros()));
        self.status_at = Some(Instant::now());
    }

    /// The daemon is ready: `READY=1`, and the watchdog's pings start. A daemon that took
    /// over from an old one (an upgrade) says `MAINPID=` too, so that systemd follows it
    /// (which needs `NotifyAccess=all`: it is not the main process until then).
    pub(crate) fn ready(&mut self, took_over: bool) {
        match took_over {
            true => self.send(&format!("MAINPID={}\nREADY=1", std::process::id())),
            false => self.send("READY=1"),
        }
        self.next_ping = self.ping_every.map(|every| Instant::now() + every);
    }

    /// Whether the daemon is under systemd (it has a notify socket).
    pub(crate) fn is_on(&self) -> bool {
        self.notifier.is_some()
    }

    /// Keeps the listening sockets in systemd's descriptor store (`FDSTORE=1`, one message per
    /// socket with its `FDNAME=`), so that the next start of the unit gets them back (with
    /// `FileDescriptorStoreMax=` in the unit; otherwise systemd refuses them, which is said
    /// once in the log). Sockets already stored are not stored twice (systemd compares them).
    pub(crate) fn store(&mut self, sockets: &[(std::os::fd::BorrowedFd<'_>, String)]) {
        let Some(n) = &self.notifier else { return };
        for (fd, name) in sockets {
            if let Err(e) = n.send_fds(&format!("FDSTORE=1\nFDNAME={name}"), &[*fd]) {
                let at = n.address().to_owned();
                self.failures.warn(|| format!("cannot store a socket in systemd's store at {at}: {e}"));
            }
        }
    }

    /// The new process of an upgrade is ready: systemd is told from this, the main process,
    /// that `pid` is the main one now (which `NotifyAccess=main`, the default, accepts; the new
    /// process says it too, for `NotifyAccess=all`).
    pub(crate) fn main_pid(&mut self, pid: u32) {
        self.send(&format!("MAINPID={pid}"));
    }

    /// The daemon handed over to a new process, which systemd follows now: nothing more is
    /// sent (no `STOPPING=1`, which would be taken as the service's).
    pub(crate) fn hand_over(&mut self) {
        self.notifier = None;
        self.next_ping = None;
        self.status_due = None;
    }

    /// A reload begins: `RELOADING=1` with the monotonic clock, as `Type=notify-reload` needs.
    pub(crate) fn reloading(&mut self) {
        if self.notifier.is_some() {
            self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", notify::monotonic_usec()));
        }
    }

    /// The reload is done: `READY=1` again.
    pub(crate) fn reloaded(&mut self) {
        self.send("READY=1");
    }

    /// The daemon stops: `STOPPING=1`; no more pings.
    pub(crate) fn stopping(&mut self) {
        self.send("STOPPING=1\nSTATUS=stopping");
        self.next_ping = None;
        self.status_due = None;
    }

    /// When the loop must wake for systemd next: a ping, or a status line that waits.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match (self.next_ping, self.status_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Once per loop turn: pings when a ping is due, and sends the status line when `counts`
    /// (read only under systemd) changed and the last line is old enough.
    pub(crate) fn tick(&mut self, now: Instant, counts: impl FnOnce() -> Counts) {
        if self.notifier.is_none() {
            return;
        }
        if let (Some(at), Some(every)) = (self.next_ping, self.ping_every) {
            if at <= now {
                self.send("WATCHDOG=1");
                // No catch-up after a stall: one ping, then the period again from now.
                self.next_ping = Some(now + every);
            }
        }
        let counts = counts();
        if self.shown == Some(counts) {
            self.status_due = None;
            return;
        }
        let due = self.status_at.map_or(now, |t| t + STATUS_EVERY);
        if due <= now {
            self.send(&format!("STATUS={}", counts.line()));
            self.shown = Some(counts);
            self.status_at = Some(now);
            self.status_due = None;
        } else {
            self.status_due = Some(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn status_lines() {
        let c = |connections, workers_up, workers| Counts { connections, workers_up, workers }.line();
        assert_eq!(c(0, 0, 0), "0 connections");
        assert_eq!(c(1, 0, 0), "1 connection");
        assert_eq!(c(12, 2, 2), "12 connections, 2/2 workers up");
        assert_eq!(c(1, 1, 3), "1 connection, 1/3 workers up");
    }

    /// A `Systemd` sending to a socket of the test's; its receiving end.
    fn pair(tag: &str) -> (Systemd, UnixDatagram) {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("tomte-sd-{tag}-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        server.set_nonblocking(true).unwrap();
        let mut s = Systemd::off();
        s.notifier = Some(Notifier::new(std::ffi::OsStr::new(&format!("@{name}"))).unwrap());
        (s, server)
    }

    fn received(server: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0; 256];
        while let Ok(n) = server.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    #[test]
    fn pings_come_from_ticks_only_once_ready() {
        let (mut s, server) = pair("ping");
        s.ping_every = Some(Duration::from_millis(100));
        let counts = || Counts { connections: 0, workers_up: 0, workers: 0 };
        let t0 = Instant::now();
        s.tick(t0 + Duration::from_secs(5), counts);
        assert!(!received(&server).iter().any(|m| m == "WATCHDOG=1"), "no ping before ready");
        s.ready(false);
        let first = s.next_deadline().expect("a ping is due");
        s.tick(first - Duration::from_millis(1), counts);
        s.tick(first, counts);
        // A stalled loop pings once when it comes back, not once per missed period.
        s.tick(first + Duration::from_secs(3), counts);
        let got = received(&server);
        assert_eq!(got.iter().filter(|m| *m == "WATCHDOG=1").count(), 2, "{got:?}");
        assert_eq!(got[0], "READY=1");
        s.stopping();
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn status_lines_change_at_most_once_a_second() {
        let (mut s, server) = pair("status");
        let t0 = Instant::now();
        let n = |connections| move || Counts { connections, workers_up: 1, workers: 1 };
        s.tick(t0, n(0));
        s.tick(t0 + Duration::from_millis(10), n(1));
        assert_eq!(s.next_deadline(), Some(t0 + STATUS_EVERY), "the change waits");
        // Back to what was shown: nothing to send, nothing to wake for.
        s.tick(t0 + Duration::from_millis(20), n(0));
        assert_eq!(s.next_deadline(), None);
        s.tick(t0 + Duration::from_millis(30), n(2));
        s.tick(t0 + STATUS_EVERY, n(2));
        assert_eq!(received(&server), ["STATUS=0 connections, 1/1 workers up", "STATUS=2 connections, 1/1 workers up"]);
    }

    #[test]
    fn a_reload_is_announced_with_the_monotonic_clock() {
        let (mut s, server) = pair("reload");
        let before = notify::monotonic_usec();
        s.reloading();
        s.reloaded();
        let got = received(&server);
        let usec: u64 = got[0].strip_prefix("RELOADING=1\nMONOTONIC_USEC=").expect("RELOADING first").parse().unwrap();
        assert!(usec >= before);
        assert_eq!(got[1], "READY=1");
    }

    #[test]
    fn off_sends_nothing_and_never_wakes_the_loop() {
        let mut s = Systemd::off();
        s.ready(false);
        s.extend("x");
        s.tick(Instant::now(), || panic!("counts are not read when off"));
        assert_eq!(s.next_deadline(), None);
    }
}
