//! `SO_PEERCRED` as the kernel writes it. rustix's `UCred` holds the pid as a non-zero `Pid`,
//! but the kernel reports pid 0 for a peer outside this process's PID namespace (a client on
//! the host talking to a daemon in a container through a bind-mounted socket, or to a daemon
//! that is PID 1 of its own namespace), and a zero there is not a value that type can hold.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A unix socket peer's credentials, as recorded when it connected.
pub(crate) struct PeerCred {
    /// `None` when the peer's process is not visible in this PID namespace.
    pub(crate) pid: Option<u32>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The credentials of the peer of unix socket `fd`.
pub(crate) fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<PeerCred> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes and outlive the call; `len` holds the size
    // of `cred`, so the kernel writes at most that many bytes; ucred is three integers, for
    // which any bytes are a valid value.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    let pid = u32::try_from(cred.pid).ok().filter(|&p| p != 0);
    Ok(PeerCred { pid, uid: cred.uid, gid: cred.gid })
}
