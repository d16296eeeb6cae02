//! Seeing which child has exited without reaping it: `waitid(P_ALL, WEXITED | WNOHANG |
//! WNOWAIT)`, whose pid rustix's `waitid` does not tell.

use std::io;

use rustix::process::Pid;

/// A child of this process that has exited and is not reaped yet (a zombie), left as it is:
/// its status is still there for whoever reaps it. `None` when no child has exited (or there
/// are no children).
pub(crate) fn exited_child() -> io::Result<Option<Pid>> {
    loop {
        // SAFETY: siginfo_t is plain integers and a union of them, for which all-zero bytes
        // are a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t that outlives the call; P_ALL ignores
        // the id; with WNOWAIT the child stays waitable.
        let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
        if r == -1 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(None),
                _ => return Err(e),
            }
        }
        // SAFETY: waitid succeeded with WEXITED: the kernel filled `info` for a child that
        // exited (si_pid is that child), or, with WNOHANG and none, left si_pid zero, as it was.
        let pid = unsafe { info.si_pid() };
        return Ok(Pid::from_raw(pid));
    }
}
