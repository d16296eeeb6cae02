//! systemd's notify protocol: datagrams of `KEY=VALUE` lines sent to `$NOTIFY_SOCKET`, and the
//! watchdog's environment (`WATCHDOG_USEC`, `WATCHDOG_PID`). What the daemon sends and when is
//! decided in `daemon::systemd`; this only knows how.
//!
//! A small writer of our own rather than the `sd-notify` crate, on purpose: the protocol is one
//! datagram to a unix socket, and the daemon sends one every half watchdog period for its whole
//! life, from its only thread. So the writer keeps one socket, made non-blocking — a service
//! manager slow to read costs a dropped (and logged) message, never a stalled loop —, resolves
//! the address once, and takes abstract (`@name`) addresses with what std already has; the
//! watchdog variables are two numbers to parse. That is less code than the crate's glue would
//! be, with no dependency to track.

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A socket to systemd's notify address: where [`Notifier::send`] sends.
pub(crate) struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    /// The address as `NOTIFY_SOCKET` gave it, for messages.
    shown: String,
    /// The same, as given, for sending descriptors.
    raw: std::ffi::OsString,
}

impl Notifier {
    /// The notifier of `$NOTIFY_SOCKET`; `None` when it is unset or empty (not under systemd),
    /// or when no socket could be made (said in the log).
    pub(crate) fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty())?;
        match Notifier::new(&path) {
            Ok(n) => Some(n),
            Err(e) => {
                log::warn!("cannot notify systemd at {}: {e}", path.to_string_lossy());
                None
            }
        }
    }

    /// A notifier of address `path`: a file system path, or `@name` for an abstract socket.
    pub(crate) fn new(path: &OsStr) -> io::Result<Notifier> {
        let bytes = path.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            None => SocketAddr::from_pathname(path)?,
        };
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        Ok(Notifier { sock, addr, shown: path.to_string_lossy().into_owned(), raw: path.to_owned() })
    }

    /// Sends `state`: one or more `KEY=VALUE` lines (`READY=1`, `STATUS=…`), in one datagram.
    pub(crate) fn send(&self, state: &str) -> io::Result<()> {
        self.sock.send_to_addr(state.as_bytes(), &self.addr).map(drop)
    }

    /// Sends `state` with descriptors `fds` attached (`SCM_RIGHTS`), as `FDSTORE=1` needs.
    pub(crate) fn send_fds(&self, state: &str, fds: &[std::os::fd::BorrowedFd<'_>]) -> io::Result<()> {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix};
        let bytes = self.raw.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddrUnix::new_abstract_name(name)?,
            None => SocketAddrUnix::new(std::path::Path::new(&self.raw))?,
        };
        let mut space = vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::other("too many descriptors for one message"));
        }
        let iov = [io::IoSlice::new(state.as_bytes())];
        rustix::net::sendmsg_addr(&self.sock, &addr, &iov, &mut control, SendFlags::empty())?;
        Ok(())
    }

    /// The address, as `NOTIFY_SOCKET` gave it.
    pub(crate) fn address(&self) -> &str {
        &self.shown
    }
}

/// Sends `state` (e.g. `READY=1`, or `EXTEND_TIMEOUT_USEC=20000000` from a slow `daemon.start`
/// listener) to systemd when `NOTIFY_SOCKET` is set; does nothing otherwise. Abstract sockets
/// (`@name`) are supported. The daemon sends readiness, the watchdog, reloads, status and the
/// stop by itself in `run` mode (see [Under systemd](crate#under-systemd)): this is for what
/// only the application knows.
pub fn sd_notify(state: &str) {
    let Some(n) = Notifier::from_env() else { return };
    if let Err(e) = n.send(state) {
        log::warn!("cannot notify systemd at {}: {e}", n.address());
    }
}

/// The watchdog's timeout as systemd sets it for this process: `WATCHDOG_USEC`, when it is a
/// positive number and `WATCHDOG_PID` is unset or names this process.
pub(crate) fn watchdog_from_env() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_timeout(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// The watchdog's timeout given the two variables' values and this process's pid `own`: `None`
/// when there is no watchdog, or when it is another process's (a parent's variables, inherited).
pub(crate) fn watchdog_timeout(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// `CLOCK_MONOTONIC` now, in microseconds: what `MONOTONIC_USEC=` carries (systemd compares it
/// with its own clock to tell this reload from an older one).
pub(crate) fn monotonic_usec() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nanos / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_ours_only_when_its_pid_is_unset_or_ours() {
        let t = |usec, pid| watchdog_timeout(usec, pid, 42);
        assert_eq!(t(Some("400000"), None), Some(Duration::from_millis(400)));
        assert_eq!(t(Some("400000"), Some("42")), Some(Duration::from_millis(400)));
        assert_eq!(t(Some("400000"), Some("41")), None);
        assert_eq!(t(Some("400000"), Some("nope")), None);
        assert_eq!(t(Some("0"), None), None);
        assert_eq!(t(Some("-1"), None), None);
        assert_eq!(t(None, Some("42")), None);
    }

    #[test]
    fn a_datagram_reaches_a_path_and_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("tomte-notify-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        let path = dir.join("n.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        Notifier::new(path.as_os_str()).unwrap().send("READY=1").unwrap();
        let mut buf = [0; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("tomte-notify-test-{}", std::process::id());
        let server = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        Notifier::new(OsStr::new(&format!("@{name}"))).unwrap().send("STOPPING=1").unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_usec();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_usec() > a);
    }
}
