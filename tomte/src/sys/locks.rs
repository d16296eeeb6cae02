//! A POSIX record lock on one byte of a file: rustix locks whole files only.
//!
//! The pid file's holder marks itself with one (see `process::pidfile`): `/proc/locks`, which
//! every user may read, lists it under the holder's own pid, which only that process can make
//! it say, while the `flock` it also holds is listed under the pid of whoever took it first
//! (the first daemon, after an upgrade handed the open file on).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Takes a write lock on the byte at `offset` of `fd`'s file for this process, without
/// waiting: `WouldBlock` when another process holds it. Released when the process closes any
/// descriptor of the file, or exits.
pub(crate) fn lock_byte(fd: BorrowedFd<'_>, offset: i64) -> io::Result<()> {
    // SAFETY: a zeroed `flock` is a valid value of the plain-data struct, every field of which
    // is then set; `fcntl(F_SETLK)` only reads it, for the duration of the call, from a local
    // that outlives it, on a descriptor the caller borrows.
    let r = unsafe {
        let mut lock: libc::flock = std::mem::zeroed();
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        lock.l_start = offset;
        lock.l_len = 1;
        libc::fcntl(fd.as_raw_fd(), libc::F_SETLK, &lock)
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
