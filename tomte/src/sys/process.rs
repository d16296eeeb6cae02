//! fork, `_exit` and signal-disposition resets.

use std::io;

use rustix::process::Pid;

/// Which side of a `fork` the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(Pid),
    /// The new child process.
    Child,
}

/// Forks the calling process.
///
/// # Safety
/// The process must be single-threaded (tomte's daemon is, by design): after `fork` only the
/// calling thread exists in the child, so a lock held by another thread would stay locked.
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: `fork` has no memory-safety preconditions of its own; the single-thread
    // requirement that makes the child's state coherent is the caller's, stated above.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid).expect("fork returns a positive pid"))),
    }
}

/// Ends the process at once, without running destructors or `atexit` handlers: what a forked
/// intermediate process must do so that it does not flush or drop its parent's state.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe, takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// Puts every signal back to its default disposition and unblocks them all: a forked child must
/// not keep the daemon's handlers (they write to the daemon's self-pipe).
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is a valid disposition for every catchable signal; `signal` with it
        // touches no memory of ours. Errors (for numbers the kernel reserves) are harmless.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    // SAFETY: a zeroed sigset_t is a valid buffer for sigemptyset, which initializes it; the
    // pointers are to a local that outlives both calls.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Ignores SIGPIPE, so that a write to a vanished peer is an EPIPE error, not a death.
pub fn ignore_sigpipe() {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; no memory is involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
