//! The configuration: built-in defaults, a TOML file, the environment and the command line,
//! in that order of precedence — and how it is read again on reload.
//!
//! # Keys
//!
//! Every flag of the command line is a key, under its long name: `--idle-timeout 5` is
//! `idle-timeout = 5` in the file and `ECHO_IDLE_TIMEOUT=5` in the environment of daemon
//! `echo` (the daemon's name and the key upper-cased, `-` as `_`). The keys are read from
//! clap's definition of the command line, so a flag added to [`DaemonArgs`](crate::cli::DaemonArgs)
//! — or to the application's own flags — is a key at once, and a value from the file or the
//! environment goes through the flag's own value parser: the same checks, the same reasons.
//!
//! | flag | file | environment |
//! | --- | --- | --- |
//! | `--log PATH` | `log = "/var/log/echo.log"` | `ECHO_LOG=/var/log/echo.log` |
//! | `--socket A --socket B` | `socket = ["A", "B"]` | `ECHO_SOCKET="A B"` (white space between) |
//! | `-v` | `verbose = true` | `ECHO_VERBOSE=1` (`true`, `yes`, `on`; `0`, `false`…) |
//!
//! An empty variable counts as not set. Flags shown under a help heading (`Access`, `TLS`,
//! `Limits`) may also be written in the section of that name, lower-cased:
//! `[limits]` `idle-timeout = 5`. Two more sections are not flags:
//!
//! * `[workers.NAME]`: a worker's `interval`, `policy` (`always`, `on-failure`, `never`),
//!   `backoff-min`, `backoff-max`, `hang-timeout` (0: none) and `stop-grace`, in seconds
//!   (fractions allowed), over what the code installed it with;
//! * `[app]`: the application's own, deserialized with serde into its type — with
//!   [`Daemon::app_config`](crate::Daemon::app_config) (read at start and at each reload) or
//!   [`Cli::app_config`](crate::cli::Cli::app_config) (read once, in `main`).
//!
//! A key the command line does not have, a value of the wrong kind, a worker the daemon does
//! not have are errors naming the place: `FILE:LINE:COL: key 'x': why`.
//!
//! # The file
//!
//! None by default: `--config PATH` or `NAME_CONFIG=PATH` names it, and a file so named must
//! exist. It is refused, naming it, when someone else than its owner — root or the daemon's
//! user — could have written it: writable by group or others, a symbolic link, a second hard
//! link, or in a directory others may change (see [`crate::process::files`]). Relative paths
//! in it are resolved, like those of flags, against the directory the daemon is started from.
//!
//! # Reload
//!
//! On SIGHUP, `NAME reload` or `daemon.reload`, the file is read again; the environment and
//! the command line are the ones the daemon started with (a process's environment does not
//! change from outside). What can change live does; what needs a restart is reported. A file
//! that no longer parses changes nothing. See [`Daemon::run`](crate::Daemon::run).

mod error;
mod file;
mod layers;
pub(crate) mod print;
pub(crate) mod workers;

pub use error::ConfigError;
pub use file::File;
pub use layers::{env_var, Setting, Source, Sources};

pub(crate) use file::empty_section;
pub(crate) use layers::{environment, keys, Build};

/// The section of the application's own settings.
pub const APP: &str = "app";
/// The section of the workers' settings, `[workers.NAME]`.
pub const WORKERS: &str = "workers";
/// The flag that names the file (not a key of the file itself).
pub(crate) const CONFIG_KEY: &str = "config";
/// Its clap id.
pub(crate) const CONFIG_ID: &str = "config";
