//! The pid file: created and `flock`ed for the daemon's whole life, so that "is it running?"
//! has a true answer (the lock) even after a `kill -9` left the file behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use rustix::process::Pid;

/// Why the pid file could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PidFileError {
    #[error("already running with pid {pid} (pid file {path} is locked)")]
    Running { path: PathBuf, pid: i32 },
    #[error("cannot use pid file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// A held pid file. Dropping it removes the file and releases the lock.
#[derive(Debug)]
pub struct PidFile {
    file: File,
    path: PathBuf,
}

impl PidFile {
    /// Creates (or takes over a stale) pid file, locks it and writes this process's pid.
    /// A file locked by a live instance is left untouched.
    pub fn acquire(path: &Path) -> Result<PidFile, PidFileError> {
        // A stopping instance unlinks its file while we may hold it open: then our lock is on
        // a file no one else sees; start over on the path's new file.
        for _ in 0..16 {
            let held = Self::try_acquire(path)?;
            if same_file(&held.file, path) {
                return held.write_pid();
            }
            drop(held);
        }
        Err(PidFileError::Io { path: path.to_owned(), source: io::Error::other("the pid file keeps being replaced") })
    }

    fn write_pid(mut self) -> Result<PidFile, PidFileError> {
        let path = self.path.clone();
        let io_err = |source| PidFileError::Io { path: path.clone(), source };
        self.file.set_len(0).map_err(io_err)?;
        self.file.rewind().map_err(io_err)?;
        writeln!(self.file, "{}", std::process::id()).map_err(io_err)?;
        self.file.sync_data().ok();
        Ok(self)
    }

    fn try_acquire(path: &Path) -> Result<PidFile, PidFileError> {
        let io_err = |source| PidFileError::Io { path: path.to_owned(), source };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(io_err)?;
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let pid = read_pid(&mut file).unwrap_or(0);
                return Err(PidFileError::Running { path: path.to_owned(), pid });
            }
            return Err(io_err(e.into()));
        }
        Ok(PidFile { file, path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `path` still names the open `file` (same device and inode).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Remove while still holding the lock, so no second instance can take the path between;
        // and only our own file, never one another instance made since.
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
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

/// The pid of the live instance that holds the pid file at `path`, if any: the file exists and
/// its lock is held. A stale file (lock free) answers `None`.
pub fn running(path: &Path) -> Option<Pid> {
    let mut file = File::open(path).ok()?;
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = flock(&file, FlockOperation::Unlock);
            None
        }
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => read_pid(&mut file).and_then(Pid::from_raw),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_fails_and_leaves_the_first_alone() {
        let dir = std::env::temp_dir().join(format!("tomte-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.pid");
        let held = PidFile::acquire(&path).unwrap();
        assert_eq!(running(&path).map(|p| p.as_raw_nonzero().get() as u32), Some(std::process::id()));
        match PidFile::acquire(&path) {
            Err(PidFileError::Running { pid, .. }) => assert_eq!(pid as u32, std::process::id()),
            other => panic!("expected Running, got {other:?}"),
        }
        assert!(path.exists());
        drop(held);
        assert!(!path.exists());
        assert!(running(&path).is_none());
        // A stale file (no lock) is taken over.
        std::fs::write(&path, "999999\n").unwrap();
        assert!(running(&path).is_none());
        let again = PidFile::acquire(&path).unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).ok();
    }
}
