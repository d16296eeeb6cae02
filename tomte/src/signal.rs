//! The signal-to-event bridge: every catchable signal becomes the events
//! `daemon.posix.SIGNAME` and `daemon.posix.NUMBER`.
//!
//! Nothing runs inside the signal handler: it marks the signal pending and writes to an
//! eventfd that the loop polls, so a signal that arrives while the loop is busy is acted on at
//! the next turn, never lost (several of one kind meanwhile are one, as the kernel has them). The fault signals (SEGV, BUS, FPE, ILL) keep their default
//! action (a handler that returns would re-run the faulting instruction), SIGKILL and SIGSTOP
//! cannot be caught, and SIGPIPE stays ignored so that a vanished client is an I/O error.
//!
//! Job control is bridged like everything else: SIGTSTP (Ctrl-Z), SIGTTIN and SIGTTOU are
//! caught, so they never stop the daemon, and no default listener acts on them, so Ctrl-Z on
//! `run` does nothing unless a listener of the daemon's own does something with
//! `daemon.posix.SIGTSTP`. Workers ignore the three (see [`crate::worker`](crate::worker#signals)), so the job
//! is never half-stopped either. One consequence to know: by the kernel's terminal rules, a
//! process that *catches* SIGTTOU and writes to its terminal from a background job (with
//! `stty tostop`) is sent SIGTTOU again for each retry of the write, where one that ignored it
//! would just write; so do not run the daemon as a background job of a `tostop` terminal it
//! logs to: run it in the foreground, detached (`start`), or with stderr elsewhere.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use signal_hook::consts::signal::*;

use crate::sys::eventfd::EventFd;

/// The signals the bridge turns into events.
pub fn bridged() -> Vec<i32> {
    let mut list = vec![
        SIGHUP,
        SIGINT,
        SIGQUIT,
        SIGTRAP,
        SIGABRT,
        SIGUSR1,
        SIGUSR2,
        SIGALRM,
        SIGTERM,
        SIGCHLD,
        SIGCONT,
        SIGTSTP,
        SIGTTIN,
        SIGTTOU,
        SIGURG,
        SIGXCPU,
        SIGXFSZ,
        SIGVTALRM,
        SIGPROF,
        SIGWINCH,
        SIGIO,
        SIGSYS,
        libc::SIGSTKFLT,
        libc::SIGPWR,
    ];
    list.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    list
}

/// The conventional name of `signal` (`SIGTERM`, `SIGRTMIN+3`).
pub fn name(signal: i32) -> String {
    if let Some(n) = signal_hook::low_level::signal_name(signal) {
        return n.to_owned();
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if (min..=max).contains(&signal) {
        return if signal == min { "SIGRTMIN".to_owned() } else { format!("SIGRTMIN+{}", signal - min) };
    }
    format!("SIG{signal}")
}

/// The two event names of `signal`: by name and by number.
pub fn event_names(signal: i32) -> [String; 2] {
    [format!("daemon.posix.{}", name(signal)), format!("daemon.posix.{signal}")]
}

/// The bridge's source of signals, to register with the loop's poll: readable when a signal
/// came.
pub(crate) struct Bridge(Arc<EventFd>);

impl Bridge {
    /// The signals that came since the last call, in increasing number.
    pub(crate) fn pending(&self) -> impl Iterator<Item = i32> {
        // Drained first: a signal that comes after the drain is either taken now or makes
        // the eventfd readable again, never neither.
        let _ = self.0.drain();
        crate::sys::signals::take_bridged()
    }
}

impl mio::event::Source for Bridge {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).deregister(registry)
    }
}

/// Catches every bridged signal (SIGPIPE ignored): the bridge to register with the loop's poll.
/// One per process (signals are process-wide); a second daemon run in the same process takes
/// it over, with nothing left pending from the first.
///
/// The handlers replace whatever the application set for these signals before the daemon
/// runs (use the `daemon.posix.*` events instead); one installed afterwards, by
/// `signal_hook::low_level::register` say, runs before the bridge's, which it calls on.
pub(crate) fn open() -> io::Result<Bridge> {
    crate::sys::process::ignore_sigpipe();
    crate::sys::signals::install_bridge(&bridged()).map(Bridge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(event_names(SIGTERM), ["daemon.posix.SIGTERM".to_owned(), "daemon.posix.15".to_owned()]);
        assert_eq!(name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
        assert!(!bridged().contains(&SIGSEGV));
        assert!(!bridged().contains(&SIGPIPE));
    }
}
