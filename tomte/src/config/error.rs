//! Why a configuration was refused: each error names where the bad setting is.

use std::path::PathBuf;

/// Why the configuration (file, environment, or what they give a flag) was refused. Each
/// variant names where: the file with its line, column and key, or the environment variable.
///
/// ```text
/// /etc/echo.toml:3:16: key 'idle-timeout': invalid value '0': must be more than 0 and at most a year of seconds
/// ECHO_MAX_CONNECTIONS: invalid value 'many': not a valid number
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `--config` (or `NAME_CONFIG`) named a file that is not there.
    #[error("configuration file {} does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file, or a directory on its way, may be changed by someone else than its owner and
    /// root (see [`crate::process::files`]); a symbolic link is refused too.
    #[error("refusing configuration file {}: {source}", path.display())]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// Why it was refused, naming the file, or the directory or link on its way, at fault.
        source: crate::process::PathError,
    },
    /// Something at a place in the file: bad TOML, an unknown key, a bad value.
    #[error("{}:{line}:{column}: {}{why}", path.display(), key.as_ref().map(|k| format!("key '{k}': ")).unwrap_or_default())]
    File {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// 1-based, in characters.
        column: usize,
        /// The key, dotted from the top (`limits.idle-timeout`, `app.greetings.alice`).
        key: Option<String>,
        /// What is wrong there.
        why: String,
    },
    /// A section that is not in the file at all, yet is needed (`[app]` with a required
    /// field): no line to name.
    #[error("{}: section [{section}]: {why}", path.as_ref().map_or("no configuration file".to_owned(), |p| p.display().to_string()))]
    Section {
        /// The file, or `None` when no configuration file is read.
        path: Option<PathBuf>,
        /// The section's name.
        section: String,
        /// Why an empty section does not do (`missing field ...`).
        why: String,
    },
    /// An environment variable's value.
    #[error("{var}: {why}")]
    Env {
        /// The variable's name (`ECHO_MAX_CONNECTIONS`).
        var: String,
        /// What is wrong with its value.
        why: String,
    },
    /// A value the command line gave (only when a reload reads it again and the daemon's
    /// directory changed under it, say).
    #[error("{0}")]
    Flag(String),
}

impl ConfigError {
    /// The file the error is in, when it is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ConfigError::Missing { path }
            | ConfigError::Read { path, .. }
            | ConfigError::Unsafe { path, .. }
            | ConfigError::File { path, .. } => Some(path),
            ConfigError::Section { path, .. } => path.as_deref(),
            ConfigError::Env { .. } | ConfigError::Flag(_) => None,
        }
    }

    /// The line in the file, when the error is at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::File { line, .. } => Some(*line),
            _ => None,
        }
    }
}
