//! The pid file: created and `flock`ed for the daemon's whole life, so that "is it running?"
//! has a true answer (the lock) even after a `kill -9` left the file behind.
//!
//! The file is made and checked as [`files`] says: never through a symbolic
//! link, never one another user made. And a pid read from it is trusted only when that process
//! really holds the file's lock (it has the very file open, and its descriptor carries the
//! `flock`, as `/proc/PID/fdinfo` shows): a pid file is never a way to make us signal a
//! stranger.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use rustix::process::Pid;

use super::files::{self, Access, Owner, Parent, PathError};

/// Why the pid file could not be taken, or its pid not trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PidFileError {
    /// Another process holds the file's lock: an instance is running.
    #[error("already running with pid {pid} (pid file {path} is locked)")]
    Running {
        /// The pid file's path.
        path: PathBuf,
        /// The pid written in the file, unchecked (0 when none could be read).
        pid: i32,
    },
    /// The file, or a directory on its way, breaks a rule of [`files`].
    #[error("refusing pid file {path}: {source}")]
    Refused {
        /// The pid file's path.
        path: PathBuf,
        /// The rule it breaks.
        source: PathError,
    },
    /// The file is locked, but not by the process whose pid it holds.
    #[error("pid file {path} is locked, but not by pid {pid} written in it: refusing to trust it")]
    NotHolder {
        /// The pid file's path.
        path: PathBuf,
        /// The pid written in the file (0 when none could be read).
        pid: i32,
    },
    /// Whether the process named in the file holds its lock could not be read from `/proc`.
    #[error("cannot tell whether pid {pid} holds the lock of {path}: {source}")]
    Unverified {
        /// The pid file's path.
        path: PathBuf,
        /// The pid written in the file.
        pid: i32,
        /// The error reading `/proc`.
        source: io::Error,
    },
    /// The file or its directory could not be opened, examined, locked or written, or the
    /// file kept being replaced while it was taken.
    #[error("cannot use pid file {path}: {source}")]
    Io {
        /// The pid file's path.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
}

fn refused(path: &Path) -> impl Fn(PathError) -> PidFileError + '_ {
    move |source| match source {
        PathError::Io { source, .. } => PidFileError::Io { path: path.to_owned(), source },
        source => PidFileError::Refused { path: path.to_owned(), source },
    }
}

/// A held pid file. Dropping it removes the file and releases the lock (unless it was handed
/// to a new binary, see [`PidFile::hand_over`]).
#[derive(Debug)]
pub struct PidFile {
    file: File,
    at: Parent,
    path: PathBuf,
    /// Whether dropping it leaves the file and its lock alone: it is shared with another
    /// process (the old daemon's until this one is ready, or the new one's once handed over).
    shared: bool,
}

impl PidFile {
    /// Creates (or takes over a stale) pid file, locks it and writes this process's pid.
    /// A file locked by a live instance is left untouched; one that is not ours (see
    /// [`files`]) is refused.
    pub fn acquire(path: &Path) -> Result<PidFile, PidFileError> {
        // A stopping instance unlinks its file while we may hold it open: then our lock is on
        // a file no one else sees; start over on the path's new file.
        for _ in 0..16 {
            let held = Self::try_acquire(path)?;
            if held.still_named() {
                return held.write_pid();
            }
            drop(held);
        }
        Err(PidFileError::Io { path: path.to_owned(), source: io::Error::other("the pid file keeps being replaced") })
    }

    fn write_pid(mut self) -> Result<PidFile, PidFileError> {
        self.rewrite_pid()?;
        Ok(self)
    }

    /// Writes this process's pid into the file, over what it held, so that a reader never sees
    /// it empty or garbled: the new text, padded with blanks to the old length, then the file
    /// cut to the new text (both states read as the new pid once trimmed).
    pub fn rewrite_pid(&mut self) -> Result<(), PidFileError> {
        use std::os::unix::fs::FileExt;
        let io_err = |source| PidFileError::Io { path: self.path.clone(), source };
        let text = format!("{}\n", std::process::id());
        let old = self.file.metadata().map_err(io_err)?.len() as usize;
        let mut padded = text.clone().into_bytes();
        padded.resize(old.max(text.len()), b' ');
        self.file.write_all_at(&padded, 0).map_err(io_err)?;
        self.file.set_len(text.len() as u64).map_err(io_err)?;
        self.file.sync_data().ok();
        self.mark();
        Ok(())
    }

    /// Marks the file as this process's in `/proc/locks` (see `holds_flock`): a byte lock at
    /// the offset of our pid, which no other holder's can overlap. Closing any descriptor of
    /// the file drops it (POSIX locks are so): mark again after that.
    pub fn mark(&self) {
        use std::os::fd::AsFd;
        if let Err(e) = crate::sys::locks::lock_byte(self.file.as_fd(), i64::from(std::process::id())) {
            log::debug!("cannot mark pid file {} with this pid's lock: {e}", self.path.display());
        }
    }

    /// The pid file whose locked descriptor the old daemon handed this process (an upgrade):
    /// checked to be the file at `path`. It stays the old daemon's (dropping it changes
    /// nothing) until [`PidFile::confirm`] writes this process's pid into it.
    pub fn adopt(fd: std::os::fd::OwnedFd, path: &Path) -> Result<PidFile, PidFileError> {
        let at = files::parent(path).map_err(refused(path))?;
        let mut held = PidFile { file: File::from(fd), at, path: path.to_owned(), shared: true };
        // The descriptor must carry the lock: locking it again is then a no-op, while a
        // descriptor of another open file of the same path (a forged hand-over) is refused,
        // since the real daemon's lock holds it off.
        if let Err(e) = flock(&held.file, FlockOperation::NonBlockingLockExclusive) {
            return Err(match e {
                rustix::io::Errno::WOULDBLOCK => {
                    PidFileError::Running { path: path.to_owned(), pid: read_pid(&mut held.file).unwrap_or(0) }
                }
                e => PidFileError::Io { path: path.to_owned(), source: e.into() },
            });
        }
        if !held.still_named() {
            return Err(PidFileError::Io {
                path: path.to_owned(),
                source: io::Error::other("the pid file handed over by the old daemon is no longer at this path"),
            });
        }
        Ok(held)
    }

    /// Makes an adopted pid file this process's: its pid written in, removed when dropped.
    pub fn confirm(&mut self) -> Result<(), PidFileError> {
        self.rewrite_pid()?;
        self.shared = false;
        Ok(())
    }

    /// The descriptor that carries the lock, to hand to a new binary.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.file.as_fd()
    }

    /// Gives the file to the new binary that has its descriptor: dropping it from now on
    /// neither removes the file nor releases the lock (which the new process's descriptor of
    /// the same open file carries on).
    pub fn hand_over(&mut self) {
        self.shared = true;
    }

    /// Takes the file back after a new binary failed: this process's pid written in again.
    pub fn take_back(&mut self) -> Result<(), PidFileError> {
        self.shared = false;
        self.rewrite_pid()
    }

    fn try_acquire(path: &Path) -> Result<PidFile, PidFileError> {
        let at = files::parent(path).map_err(refused(path))?;
        let (mut file, _) = at.create_or_open(path, Access::ReadWrite, 0o644).map_err(refused(path))?;
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let pid = read_pid(&mut file).unwrap_or(0);
                return Err(PidFileError::Running { path: path.to_owned(), pid });
            }
            return Err(PidFileError::Io { path: path.to_owned(), source: e.into() });
        }
        Ok(PidFile { file, at, path: path.to_owned(), shared: false })
    }

    /// Whether the path still names the open file (same device and inode).
    fn still_named(&self) -> bool {
        rustix::fs::fstat(&self.file).is_ok_and(|st| self.at.names(&st))
    }

    /// The path the file was acquired at.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if self.shared {
            // Another process holds the same open file: its lock, and the file, are its own.
            return;
        }
        // Remove while still holding the lock, so no second instance can take the path between;
        // and only our own file, never one another instance made since.
        if self.still_named() {
            if let Err(e) = self.at.remove() {
                // A daemon that dropped privileges may not write the directory any more (see
                // `privileges`, "Files after the drop"): an empty, unlocked file is stale, and
                // the next start takes it over.
                let _ = self.file.set_len(0);
                log::warn!("cannot remove pid file {} ({e}): emptied it instead", self.path.display());
            }
        }
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

fn read_pid(file: &mut File) -> Option<i32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// The pid of the live instance that holds the pid file at `path`: `Ok(None)` when there is no
/// file or its lock is free (a stale file). The pid is answered only once checked: the file is
/// the daemon's user's or root's (and not writable by others, in a directory only they
/// control), and the process it names holds the file's lock. Otherwise the reason is the error.
pub fn running(path: &Path) -> Result<Option<Pid>, PidFileError> {
    let at = match files::parent(path) {
        Ok(at) => at,
        // No directory, so no pid file (a daemon that drops privileges makes its directory at
        // start: see `privileges`).
        Err(PathError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refused(path)(e)),
    };
    let Some(mut file) = at.open_existing(path, Owner::EuidOrRoot).map_err(refused(path))? else {
        return Ok(None);
    };
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = flock(&file, FlockOperation::Unlock);
            return Ok(None);
        }
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {}
        Err(e) => return Err(PidFileError::Io { path: path.to_owned(), source: e.into() }),
    }
    let raw = read_pid(&mut file).unwrap_or(0);
    let pid = Pid::from_raw(raw).ok_or(PidFileError::NotHolder { path: path.to_owned(), pid: raw })?;
    let st = rustix::fs::fstat(&file).map_err(|e| PidFileError::Io { path: path.to_owned(), source: e.into() })?;
    match holds_flock(raw, &st) {
        Ok(true) => Ok(Some(pid)),
        Ok(false) => Err(PidFileError::NotHolder { path: path.to_owned(), pid: raw }),
        Err(source) => Err(PidFileError::Unverified { path: path.to_owned(), pid: raw, source }),
    }
}

/// Whether process `pid` has the file `st` describes open with an exclusive `flock` on that
/// descriptor: one of `/proc/PID/fd/*` is that file (device and inode) and its
/// `/proc/PID/fdinfo/N` lists a `FLOCK … WRITE` lock. Another user's process (a user asking
/// about root's daemon) cannot be looked into: then `/proc/locks`, which everyone may read,
/// says whether that pid holds the flock on that device and inode.
fn holds_flock(pid: i32, st: &rustix::fs::Stat) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let fds = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(d) => d,
        // No such process: it cannot hold anything.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            // /proc/locks names the process that took the flock: after an upgrade that is the
            // first daemon, whose open file lives on in its successor. So the holder also marks
            // itself with a byte lock, listed under its own pid (see `rewrite_pid`): a flock on
            // the file, and that mark by the pid in it, say it holds the lock.
            let locks = std::fs::read_to_string("/proc/locks")?;
            return Ok(listed_in_proc_locks(&locks, pid, st)
                || listed(&locks, "POSIX", Some(pid), st) && listed(&locks, "FLOCK", None, st));
        }
        Err(e) => return Err(e),
    };
    for entry in fds {
        let entry = entry?;
        let Ok(meta) = std::fs::metadata(entry.path()) else { continue };
        if meta.dev() != st.st_dev || meta.ino() != st.st_ino {
            continue;
        }
        let info = match std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy()))
        {
            Ok(i) => i,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let locked = info.lines().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.first() == Some(&"lock:") && words.contains(&"FLOCK") && words.contains(&"WRITE")
        });
        if locked {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `locks` (the text of `/proc/locks`) has `pid` holding an exclusive flock on the file
/// `st` describes. A line: `1: FLOCK  ADVISORY  WRITE 9030 fe:00:10011042 0 EOF` (device
/// numbers in hex); waiters (`1: -> FLOCK …`) do not count.
fn listed_in_proc_locks(locks: &str, pid: i32, st: &rustix::fs::Stat) -> bool {
    listed(locks, "FLOCK", Some(pid), st)
}

/// Whether `locks` lists a write lock of `kind` (`FLOCK`, `POSIX`) on the file `st` describes,
/// held by `pid` (any holder when `None`).
fn listed(locks: &str, kind: &str, pid: Option<i32>, st: &rustix::fs::Stat) -> bool {
    let (major, minor) = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
    let ino = st.st_ino.to_string();
    locks.lines().any(|line| {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 6 || w[1] != kind || w[3] != "WRITE" {
            return false;
        }
        let mut id = w[5].split(':');
        let (Some(maj), Some(min), Some(i)) = (id.next(), id.next(), id.next()) else { return false };
        let hex = |t: &str| u32::from_str_radix(t, 16).ok();
        pid.is_none_or(|p| w[4] == p.to_string()) && hex(maj) == Some(major) && hex(min) == Some(minor) && i == ino
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn second_acquire_fails_and_leaves_the_first_alone() {
        let dir = std::env::temp_dir().join(format!("tomte-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.pid");
        let held = PidFile::acquire(&path).unwrap();
        let me = running(&path).unwrap().map(|p| p.as_raw_nonzero().get() as u32);
        assert_eq!(me, Some(std::process::id()));
        match PidFile::acquire(&path) {
            Err(PidFileError::Running { pid, .. }) => assert_eq!(pid as u32, std::process::id()),
            other => panic!("expected Running, got {other:?}"),
        }
        assert!(path.exists());
        drop(held);
        assert!(!path.exists());
        assert!(running(&path).unwrap().is_none());
        // A stale file (no lock) is taken over.
        std::fs::write(&path, "999999\n").unwrap();
        assert!(running(&path).unwrap().is_none());
        let again = PidFile::acquire(&path).unwrap();
        // A pid that does not hold the lock is not trusted.
        {
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(0).unwrap();
            writeln!(f, "1").unwrap();
        }
        assert!(matches!(running(&path), Err(PidFileError::NotHolder { pid: 1, .. })));
        // What /proc/locks says of our lock agrees.
        let st = rustix::fs::stat(&path).unwrap();
        let locks = std::fs::read_to_string("/proc/locks").unwrap();
        assert!(listed_in_proc_locks(&locks, std::process::id() as i32, &st), "{locks}");
        assert!(!listed_in_proc_locks(&locks, 1, &st));
        drop(again);
        std::fs::remove_dir_all(&dir).ok();
    }
}
