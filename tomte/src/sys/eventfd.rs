//! Event file descriptors: a counter in the kernel that one process bumps to wake another one
//! sleeping in `poll`/`epoll` on the same (inherited) descriptor.
//!
//! Everything here is safe rustix; the module lives in `sys` because it owns an OS object.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// A non-blocking, close-on-exec eventfd.
///
/// Created before `fork`, it is shared by parent and child: [`EventFd::signal`] in one makes
/// it readable in the other. It can be registered with mio through
/// `mio::unix::SourceFd(&fd.as_raw_fd())`.
#[derive(Debug)]
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    /// Creates an eventfd with a zero counter.
    pub(crate) fn new() -> io::Result<EventFd> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(EventFd(fd))
    }

    /// Adds one to the counter, making the descriptor readable.
    pub(crate) fn signal(&self) -> io::Result<()> {
        loop {
            match rustix::io::write(&self.0, &1u64.to_ne_bytes()) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => continue,
                // The counter is at its maximum: it is readable already, which is the point.
                Err(Errno::AGAIN) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Resets the counter to zero, returning what it was (0 when nothing was signalled).
    pub(crate) fn drain(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        loop {
            match rustix::io::read(&self.0, &mut buf) {
                Ok(_) => return Ok(u64::from_ne_bytes(buf)),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sleeps until the descriptor is readable or `timeout` passes (`None`: no limit).
    ///
    /// Returns whether it is readable. Does not reset the counter (see [`EventFd::drain`]).
    /// An interrupted sleep (a signal) returns `Ok(false)` early, like a timeout.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let timeout = timeout
            .map(|t| Timespec { tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX), tv_nsec: t.subsec_nanos().into() });
        let mut fds = [PollFd::new(&self.0, PollFlags::IN)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(n) => Ok(n > 0 && fds[0].revents().contains(PollFlags::IN)),
            Err(Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_wait_drain() {
        let fd = EventFd::new().unwrap();
        assert!(!fd.wait(Some(Duration::ZERO)).unwrap());
        assert_eq!(fd.drain().unwrap(), 0);
        fd.signal().unwrap();
        fd.signal().unwrap();
        assert!(fd.wait(Some(Duration::from_millis(100))).unwrap());
        assert_eq!(fd.drain().unwrap(), 2);
        assert!(!fd.wait(Some(Duration::from_millis(1))).unwrap());
    }
}
