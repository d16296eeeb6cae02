//! Detaching from the terminal: fork, setsid, fork, chdir `/`, umask, stdio to `/dev/null`,
//! with a pipe that tells the command which started the daemon when it is ready, or why not.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::Mode;
use rustix::process::{Pid, WaitOptions};

use super::files::{self, Access, PathError};
use crate::sys::process::{exit_now, fork_alone, Forked};

/// Which side of the detach the caller is on.
#[derive(Debug)]
pub enum Detached {
    /// The command that asked for the daemon: wait on it to learn whether it started.
    Parent(ReadyWait),
    /// The daemon itself: report readiness (or failure) through the pipe.
    Daemon(ReadyPipe),
}

/// Detaches the process. Must be called while the process has one thread only.
///
/// `umask` is applied in the daemon; `log` (if any) receives the daemon's stderr, otherwise all
/// three standard streams go to `/dev/null`.
pub fn detach(umask: u32, log: Option<&Path>) -> Result<Detached, DetachError> {
    // Open the log first, in the caller's working directory, so a bad path fails here, loudly.
    let log_file = match log {
        Some(p) => Some(open_log(p)?),
        None => None,
    };
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)?;
    match fork_alone()? {
        Forked::Parent(child) => {
            drop(write);
            Ok(Detached::Parent(ReadyWait { pipe: File::from(read), first_child: child }))
        }
        Forked::Child => {
            drop(read);
            if rustix::process::setsid().is_err() {
                exit_now(1);
            }
            match fork_alone() {
                Ok(Forked::Parent(_)) => exit_now(0),
                Ok(Forked::Child) => {}
                Err(_) => exit_now(1),
            }
            let mut pipe = ReadyPipe { pipe: Some(File::from(write)) };
            if let Err(e) = become_daemon(umask, log_file) {
                pipe.fail(&format!("cannot detach: {e}"));
                exit_now(1);
            }
            Ok(Detached::Daemon(pipe))
        }
    }
}

/// Why detaching failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetachError {
    /// The log file could not be opened (before any fork).
    #[error(transparent)]
    Log(#[from] LogError),
    /// The readiness pipe or the first fork failed. What fails after the fork, in the child,
    /// ends it instead, and shows in [`ReadyWait::wait`].
    #[error("cannot detach: {0}")]
    Io(#[from] io::Error),
}

/// Why the log file could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The file, or a directory on its way, breaks a rule of [`files`].
    #[error("refusing log file {path}: {source}")]
    Refused {
        /// The log file's path.
        path: PathBuf,
        /// The rule it breaks.
        source: PathError,
    },
    /// The file could not be opened or created, or put in place of stderr.
    #[error("cannot open log file {path}: {source}")]
    Io {
        /// The log file's path.
        path: PathBuf,
        /// The system call's error.
        source: io::Error,
    },
}

/// Opens a log file for appending: created (mode 0640) when there is none, else opened
/// without following a link and only when it is the daemon's own (see
/// [`files`]).
pub(crate) fn open_log(path: &Path) -> Result<File, LogError> {
    let refused = |source| match source {
        PathError::Io { source, .. } => LogError::Io { path: path.to_owned(), source },
        source => LogError::Refused { path: path.to_owned(), source },
    };
    let at = files::parent(path).map_err(refused)?;
    let (file, _) = at.create_or_open(path, Access::Append, 0o640).map_err(refused)?;
    Ok(file)
}

fn become_daemon(umask: u32, log: Option<File>) -> io::Result<()> {
    std::env::set_current_dir("/")?;
    rustix::process::umask(Mode::from_bits_truncate(umask));
    let null = OpenOptions::new().read(true).write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    match &log {
        Some(file) => rustix::stdio::dup2_stderr(file)?,
        None => rustix::stdio::dup2_stderr(&null)?,
    }
    Ok(())
}

/// Points stderr (where tomte logs) at `path` again: after log rotation, on reload.
pub fn redirect_stderr(path: &Path) -> Result<(), LogError> {
    let file = open_log(path)?;
    rustix::stdio::dup2_stderr(&file).map_err(|e| LogError::Io { path: path.to_owned(), source: e.into() })?;
    // The file that SIGUSR1 reopens from now on.
    crate::logging::remember_file(path);
    Ok(())
}

/// The daemon's end of the readiness pipe.
#[derive(Debug)]
pub struct ReadyPipe {
    pipe: Option<File>,
}

impl ReadyPipe {
    /// The pipe at `fd`: where an upgraded daemon reports to the old one (see
    /// [`upgrade`](super::upgrade)).
    pub(crate) fn from_fd(fd: OwnedFd) -> ReadyPipe {
        ReadyPipe { pipe: Some(File::from(fd)) }
    }

    /// A pipe to nobody: for a daemon whose readiness goes elsewhere (an upgrade's new process
    /// reports on the pipe it inherited).
    pub(crate) fn unused() -> ReadyPipe {
        ReadyPipe { pipe: None }
    }

    /// Tells the waiting command that the daemon is ready; the pipe is closed.
    pub fn ready(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = writeln!(p, "READY {}", std::process::id());
        }
    }

    /// Tells the waiting command why the daemon could not start; the pipe is closed.
    pub fn fail(&mut self, why: &str) {
        if let Some(mut p) = self.pipe.take() {
            let _ = write!(p, "ERROR {why}");
        }
    }
}

/// The starting command's end of the readiness pipe.
#[derive(Debug)]
pub struct ReadyWait {
    pipe: File,
    first_child: Pid,
}

impl ReadyWait {
    /// Waits until the daemon says it is ready (its pid) or why it failed (the daemon's own
    /// message). The wait is bounded by `timeout`.
    pub fn wait(self, timeout: Duration) -> Result<u32, String> {
        // The intermediate child exits at once; reap it so it is no zombie.
        let _ = rustix::process::waitpid(Some(self.first_child), WaitOptions::empty());
        let fd: OwnedFd = self.pipe.into();
        let mut pipe = File::from(fd);
        let mut text = Vec::new();
        let deadline = std::time::Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(format!("the daemon did not report ready within {timeout:?}"));
            }
            let mut fds = [rustix::event::PollFd::new(&pipe, rustix::event::PollFlags::IN)];
            let ts =
                rustix::event::Timespec::try_from(left).unwrap_or(rustix::event::Timespec { tv_sec: 1, tv_nsec: 0 });
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(format!("cannot wait for the daemon: {e}")),
            }
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read the daemon's readiness: {e}")),
            }
        }
        let text = String::from_utf8_lossy(&text);
        if let Some(pid) = text.strip_prefix("READY ") {
            return pid.trim().parse().map_err(|_| format!("garbled readiness message: {text}"));
        }
        if let Some(why) = text.strip_prefix("ERROR ") {
            return Err(why.to_owned());
        }
        Err("the daemon exited before it was ready (see its log)".to_owned())
    }
}
