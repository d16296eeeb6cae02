//! Process-level set-up: detaching (double fork with a readiness pipe), the pid file,
//! niceness, privileges and limits, systemd's notify socket, the reaping of orphans (PID 1,
//! subreaper), and the hand-over to a new binary (upgrade).

mod detach;
pub mod files;
pub(crate) mod notify;
pub mod pidfile;
pub mod privileges;
pub(crate) mod reaper;
pub mod upgrade;

pub use detach::{detach, redirect_stderr, DetachError, Detached, LogError, ReadyPipe, ReadyWait};
pub use files::PathError;
pub use notify::sd_notify;
pub use pidfile::{PidFile, PidFileError};
pub use privileges::{PrivilegeError, Privileges, Rlim};

use std::io;

/// Sets the niceness of this process to `nice` (absolute, not an increment).
pub fn set_niceness(nice: i32) -> io::Result<()> {
    rustix::process::setpriority_process(None, nice).map_err(io::Error::from)
}
