//! The daemon's flags ([`DaemonArgs`]) and how they become a [`Config`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::access::Rule;
use crate::config::{ConfigError, Sources};
use crate::daemon::Config;
use crate::net::Address;
use crate::Permission;

/// Every flag of a tomte daemon, as [`Cli`](super::Cli) parses them (flatten it into a clap
/// parser of your own to use it elsewhere). [`DaemonArgs::config`] turns them into the
/// daemon's [`Config`].
///
/// Its groups mirror [`Config`]'s: [`access`](DaemonArgs::access),
/// [`tls`](DaemonArgs::tls), [`limits`](DaemonArgs::limits). Each field is `None` (or empty,
/// or `false`) when its flag was not given: the default is then [`Config::defaults`]'s. Values
/// are checked as they are parsed, so a bad one is a usage error naming the flag and the value
/// (exit code 2), before anything starts.
#[derive(clap::Args, Clone, Debug, Default)]
#[command(about = None, long_about = None)]
#[non_exhaustive]
pub struct DaemonArgs {
    /// Configuration file (TOML): each flag's long name is a key [default: none]
    ///
    /// Or NAME_CONFIG=PATH. Precedence: defaults < file < environment (NAME_KEY, e.g.
    /// ECHO_IDLE_TIMEOUT=5) < command line. Refused when others than its owner may write it
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Listen on ADDR (repeatable)
    ///
    /// unix:///path, tcp://host:port (an IPv6 host in brackets), tls://host:port, or
    /// comodojo+ before one of them [default: NAME.sock in /run for root, else in the user's
    /// runtime directory]
    #[arg(long = "socket", value_name = "ADDR", value_parser = address)]
    pub sockets: Vec<Address>,
    /// Pid file, locked while the daemon runs
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,
    /// Log file of the detached daemon, or syslog [default: none]
    ///
    /// PATH is reopened on SIGHUP and SIGUSR1 (logrotate); `syslog` logs to /dev/log,
    /// `syslog:SOCKET` to another datagram socket
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Debug logging (-vv: trace)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Set niceness N (absolute)
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = number::<i32>)]
    pub nice: Option<i32>,
    /// Umask of the detached daemon [default: 027]
    #[arg(long, value_name = "OCTAL", value_parser = umask)]
    pub umask: Option<u32>,
    /// Who may connect and call what.
    #[command(flatten)]
    pub access: AccessArgs,
    /// The files of `tls://` listeners.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The limits on clients ([`Limits`](crate::net::Limits)).
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The log's format.
    #[command(flatten)]
    pub logging: LogArgs,
    /// Where these values came from — the file, the environment, the command line — and how
    /// to read them again on reload; set by [`Cli`](super::Cli).
    #[arg(skip)]
    pub sources: Option<Arc<Sources>>,
    /// The user and group to run as, the working directory and the resource limits.
    #[command(flatten)]
    pub privileges: PrivilegeArgs,
    /// Do not record call statistics for /metrics (no clock read per call)
    #[arg(long)]
    pub no_metrics: bool,
    /// Serve supervisord's XML-RPC interface, for supervisorctl -s unix:///path/to/daemon.sock
    #[arg(long)]
    pub supervisor_api: bool,
}

/// The access flags of [`DaemonArgs`] (see [`crate::access`]).
#[derive(clap::Args, Clone, Debug, Default)]
#[command(about = None, long_about = None)]
#[non_exhaustive]
pub struct AccessArgs {
    /// Grant permissions (repeatable; rules add up)
    ///
    /// WHO: user:NAME, uid:N, group:NAME, gid:N, cert:CN, token:NAME, anonymous; PERMS: read,
    /// call, control, a custom name, or all, comma-separated; WHO=PERMS@ADDR holds on listener
    /// ADDR only. Defaults: on unix sockets the daemon's user and root hold all, others
    /// nothing; anonymous TCP clients hold read,call
    #[arg(long, value_name = "WHO=PERMS", value_parser = rule, help_heading = "Access")]
    pub allow: Vec<Rule>,
    /// Make METHOD need permission PERM (repeatable)
    ///
    /// E.g. worker.restart=restart, to grant it apart from control. A method the daemon does
    /// not have makes start fail
    #[arg(long, value_name = "METHOD=PERM", value_parser = requirement, help_heading = "Access")]
    pub require: Vec<(String, Permission)>,
    /// Mode of the unix socket files [default: 0600]
    #[arg(long, value_name = "OCTAL", value_parser = socket_mode, help_heading = "Access")]
    pub socket_mode: Option<u32>,
    /// Group (name or gid) of the unix socket files [default: the daemon's]
    #[arg(long, value_name = "GROUP", value_parser = group, help_heading = "Access")]
    pub socket_group: Option<u32>,
    /// Tokens TCP clients must present
    ///
    /// A file of NAME SECRET lines, mode 0600; clients send HTTP Authorization: Bearer SECRET,
    /// or call daemon.auth first
    #[arg(long, value_name = "PATH", help_heading = "Access")]
    pub token_file: Option<PathBuf>,
    /// Serve a TCP address other hosts reach, with no client authentication
    #[arg(long, help_heading = "Access")]
    pub insecure: bool,
    /// Serve the web dashboard at GET / on every native listener (to callers holding read)
    #[arg(long, help_heading = "Access")]
    pub dashboard: bool,
}

/// The TLS flags of [`DaemonArgs`]: certificate, key and client CA of `tls://` listeners.
#[derive(clap::Args, Clone, Debug, Default)]
#[command(about = None, long_about = None)]
#[non_exhaustive]
pub struct TlsArgs {
    /// Certificate chain (PEM) of tls:// listeners, reloaded on reload
    #[arg(id = "tls_cert", long = "tls-cert", value_name = "PATH", help_heading = "TLS")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM), readable by its owner only
    #[arg(id = "tls_key", long = "tls-key", value_name = "PATH", help_heading = "TLS")]
    pub key: Option<PathBuf>,
    /// Mutual TLS: clients must show a certificate signed by this CA
    ///
    /// The certificate's common name becomes the client's identity
    #[arg(id = "tls_client_ca", long = "tls-client-ca", value_name = "PATH", help_heading = "TLS")]
    pub client_ca: Option<PathBuf>,
}

/// The limit flags of [`DaemonArgs`]: each sets one field of [`Limits`](crate::net::Limits).
#[derive(clap::Args, Clone, Debug, Default)]
#[command(about = None, long_about = None)]
#[non_exhaustive]
pub struct LimitArgs {
    /// Connections open at once [default: 1024]
    #[arg(long, value_name = "N", value_parser = positive, help_heading = "Limits")]
    pub max_connections: Option<usize>,
    /// Connections from one IP address or one uid [default: 256]
    #[arg(long, value_name = "N", value_parser = positive, help_heading = "Limits")]
    pub max_per_peer: Option<usize>,
    /// Connections kept for each listener [default: 64]
    #[arg(long, value_name = "N", value_parser = number::<usize>, help_heading = "Limits")]
    pub listener_reserve: Option<usize>,
    /// Largest request accepted [default: 16777216]
    #[arg(long, value_name = "BYTES", value_parser = number::<usize>, help_heading = "Limits")]
    pub max_message: Option<usize>,
    /// Unfinished requests, and unsent answers, of all connections [default: 268435456 each]
    #[arg(long, value_name = "BYTES", value_parser = positive, help_heading = "Limits")]
    pub max_buffered: Option<usize>,
    /// Unread answers past which a client is served no more [default: 4194304]
    #[arg(long, value_name = "BYTES", value_parser = positive, help_heading = "Limits")]
    pub max_unsent: Option<usize>,
    /// Close connections with no request answered this long [default: 300]
    #[arg(long, value_name = "SECS", value_parser = seconds, help_heading = "Limits")]
    pub idle_timeout: Option<Duration>,
    /// A message must arrive within this [default: 10] ...
    #[arg(long, value_name = "SECS", value_parser = seconds, help_heading = "Limits")]
    pub request_timeout: Option<Duration>,
    /// ... plus its size at this many bytes/s [default: 65536]
    #[arg(long, value_name = "BYTES", value_parser = positive, help_heading = "Limits")]
    pub min_rate: Option<usize>,
    /// On stop or upgrade, finish what was started within this [default: 5]
    #[arg(long, value_name = "SECS", value_parser = seconds, help_heading = "Limits")]
    pub drain_timeout: Option<Duration>,
}

impl DaemonArgs {
    /// The daemon's configuration: [`Config::defaults`] for `name`, with these flags applied.
    ///
    /// Relative paths are resolved against the current directory (the daemon itself runs in
    /// `/`); that is the only way this fails, naming the flag.
    pub fn config(&self, name: &str) -> Result<Config, String> {
        let mut config = Config::defaults(name);
        self.apply(&mut config)?;
        Ok(config)
    }

    /// Applies the flags given to `config`, which keeps its values for the others: a daemon
    /// whose defaults are not [`Config::defaults`]'s starts from its own.
    pub fn apply(&self, config: &mut Config) -> Result<(), String> {
        if !self.sockets.is_empty() {
            config.sockets.clone_from(&self.sockets);
        }
        if self.sources.is_some() {
            config.sources.clone_from(&self.sources);
        }
        let cwd = self.sources.as_ref().and_then(|s| s.cwd());
        let path = |flag: &str, p: &Option<PathBuf>| p.as_deref().map(|p| absolute(flag, p, cwd)).transpose();
        let paths = [
            (&mut config.pidfile, "--pidfile", &self.pidfile),
            (&mut config.log, "--log", &self.logging.file(&self.log)),
            (&mut config.tls.cert, "--tls-cert", &self.tls.cert),
            (&mut config.tls.key, "--tls-key", &self.tls.key),
            (&mut config.tls.client_ca, "--tls-client-ca", &self.tls.client_ca),
            (&mut config.token_file, "--token-file", &self.access.token_file),
        ];
        for (field, flag, given) in paths {
            if let Some(p) = path(flag, given)? {
                *field = Some(p);
            }
        }
        config.verbose = config.verbose.max(self.verbose);
        self.logging.apply(&self.log, config);
        config.insecure |= self.access.insecure;
        config.metrics &= !self.no_metrics;
        config.dashboard |= self.access.dashboard;
        config.supervisor_api |= self.supervisor_api;
        set(&mut config.nice, self.nice.map(Some));
        set(&mut config.umask, self.umask);
        for rule in &self.access.allow {
            config.policy.add(rule.clone());
        }
        config.requires.extend(self.access.require.iter().cloned());
        set(&mut config.socket_mode, self.access.socket_mode);
        set(&mut config.socket_group, self.access.socket_group.map(Some));
        let limits = &mut config.limits;
        set(&mut limits.max_connections, self.limits.max_connections);
        set(&mut limits.max_per_peer, self.limits.max_per_peer);
        set(&mut limits.listener_reserve, self.limits.listener_reserve);
        set(&mut limits.max_message, self.limits.max_message);
        set(&mut limits.max_buffered, self.limits.max_buffered);
        set(&mut limits.max_unsent, self.limits.max_unsent);
        set(&mut limits.idle_timeout, self.limits.idle_timeout);
        set(&mut limits.request_timeout, self.limits.request_timeout);
        set(&mut limits.min_rate, self.limits.min_rate);
        set(&mut limits.drain_timeout, self.limits.drain_timeout);
        self.privileges.apply(config, cwd)
    }
}

fn set<T>(field: &mut T, given: Option<T>) {
    if let Some(v) = given {
        *field = v;
    }
}

// The value parsers. clap puts the flag and the value before their message:
// "invalid value 'abc' for '--max-connections <N>': not a valid number".

fn address(v: &str) -> Result<Address, String> {
    v.parse::<Address>().map_err(|e| e.why)
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| "not a valid number".to_owned())
}

/// A count or size that must be at least 1.
fn positive(v: &str) -> Result<usize, String> {
    match number(v)? {
        0 => Err("must be at least 1".to_owned()),
        n => Ok(n),
    }
}

/// Seconds, fractions allowed (`0.5`); more than zero and at most a year.
fn seconds(v: &str) -> Result<Duration, String> {
    let secs: f64 = number(v)?;
    if !(secs > 0.0 && secs <= 366.0 * 86400.0) {
        return Err("must be more than 0 and at most a year of seconds".to_owned());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn umask(v: &str) -> Result<u32, String> {
    u32::from_str_radix(v, 8).map_err(|_| "not an octal mask".to_owned())
}

fn socket_mode(v: &str) -> Result<u32, String> {
    match u32::from_str_radix(v, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err("not an octal mode (0600, 0660…)".to_owned()),
    }
}

fn group(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(gid) => Ok(gid),
        Err(_) => crate::net::gid_of(v).ok_or_else(|| format!("no group '{v}' in /etc/group")),
    }
}

fn rule(v: &str) -> Result<Rule, String> {
    v.parse().map_err(|e: crate::access::RuleError| e.to_string())
}

fn requirement(v: &str) -> Result<(String, Permission), String> {
    let (method, perm) = v.split_once('=').ok_or("not METHOD=PERM")?;
    let perm = perm.parse().map_err(|e: tomte_rpc::PermissionError| e.to_string())?;
    Ok((method.to_owned(), perm))
}

/// The daemon changes directory to `/`, so relative paths are resolved now: against `cwd`
/// (the directory it was started from, on reload), else the current directory.
fn absolute(flag: &str, path: &Path, cwd: Option<&Path>) -> Result<PathBuf, String> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    if let Some(dir) = cwd {
        return Ok(dir.join(path));
    }
    std::env::current_dir().map(|d| d.join(path)).map_err(|e| format!("{flag}: cannot resolve {}: {e}", path.display()))
}

/// The log flags of [`DaemonArgs`] beside `--log` and `-v` (see [`crate::logging`]).
#[derive(clap::Args, Clone, Debug, Default)]
#[command(about = None, long_about = None)]
#[non_exhaustive]
pub struct LogArgs {
    /// Log lines as text or json [default: text]
    ///
    /// json: one object per line with time, level, target, worker, pid, message and fields.
    /// Under journald (run with JOURNAL_STREAM) lines start with their priority, <3>..<7>
    #[arg(long, value_name = "FORMAT", value_parser = log_format, help_heading = "Logs")]
    pub log_format: Option<crate::logging::LogFormat>,
}

impl LogArgs {
    /// The log file `--log` names: none when it names syslog.
    fn file(&self, log: &Option<PathBuf>) -> Option<PathBuf> {
        log.clone().filter(|p| crate::logging::LogSettings::syslog_target(p).is_none())
    }

    /// Applies `--log` (when it is syslog, or a file instead of syslog) and `--log-format`.
    fn apply(&self, log: &Option<PathBuf>, config: &mut Config) {
        if let Some(log) = log {
            config.logging.syslog = crate::logging::LogSettings::syslog_target(log);
            if config.logging.syslog.is_some() {
                config.log = None;
            }
        }
        set(&mut config.logging.format, self.log_format);
    }
}

fn log_format(v: &str) -> Result<crate::logging::LogFormat, String> {
    v.parse()
}

impl DaemonArgs {
    /// The flags again from `sources`: the file read anew, the environment and the command
    /// line as they were at start (what a reload does).
    pub fn reread(sources: &Sources) -> Result<DaemonArgs, ConfigError> {
        use clap::FromArgMatches;
        let (sources, mut matches) = sources.reread()?;
        let mut args = DaemonArgs::from_arg_matches_mut(&mut matches).map_err(|e| ConfigError::Flag(e.to_string()))?;
        args.sources = Some(Arc::new(sources));
        Ok(args)
    }
}

/// tomte's keys (its flags' long names), each with the value it has in `config`, written as
/// its flag takes it; `None` for a key that is not tomte's. An empty list: not set.
pub(crate) fn current(config: &Config, key: &str) -> Option<Vec<String>> {
    fn path(p: &Option<PathBuf>) -> Vec<String> {
        p.iter().map(|p| p.display().to_string()).collect()
    }
    let one = |s: String| vec![s];
    let secs = |d: Duration| one(crate::config::print::seconds(d));
    let l = &config.limits;
    Some(match key {
        "socket" => config.sockets.iter().map(ToString::to_string).collect(),
        "pidfile" => path(&config.pidfile),
        "log" => match &config.logging.syslog {
            Some(socket) if socket.as_os_str() == crate::logging::SYSLOG_SOCKET => one("syslog".to_owned()),
            Some(socket) => one(format!("syslog:{}", socket.display())),
            None => path(&config.log),
        },
        "log-format" => one(config.logging.format.to_string()),
        "verbose" => one(config.verbose.to_string()),
        "nice" => config.nice.iter().map(ToString::to_string).collect(),
        "umask" => one(format!("{:03o}", config.umask)),
        "allow" => config.policy.rules().iter().map(ToString::to_string).collect(),
        "require" => config.requires.iter().map(|(m, p)| format!("{m}={p}")).collect(),
        "socket-mode" => one(format!("{:04o}", config.socket_mode)),
        "socket-group" => config.socket_group.iter().map(ToString::to_string).collect(),
        "token-file" => path(&config.token_file),
        "insecure" => one(config.insecure.to_string()),
        "no-metrics" => one((!config.metrics).to_string()),
        "dashboard" => one(config.dashboard.to_string()),
        "tls-cert" => path(&config.tls.cert),
        "tls-key" => path(&config.tls.key),
        "tls-client-ca" => path(&config.tls.client_ca),
        "max-connections" => one(l.max_connections.to_string()),
        "max-per-peer" => one(l.max_per_peer.to_string()),
        "listener-reserve" => one(l.listener_reserve.to_string()),
        "max-message" => one(l.max_message.to_string()),
        "max-buffered" => one(l.max_buffered.to_string()),
        "max-unsent" => one(l.max_unsent.to_string()),
        "idle-timeout" => secs(l.idle_timeout),
        "request-timeout" => secs(l.request_timeout),
        "min-rate" => one(l.min_rate.to_string()),
        "drain-timeout" => secs(l.drain_timeout),
        _ => return None,
    })
}

/// The privilege flags of [`DaemonArgs`]: each sets one field of
/// [`Privileges`](crate::process::Privileges) (see [`crate::process::privileges`] for the order
/// in which start applies them).
#[derive(clap::Args, Clone, Debug, Default)]
#[command(about = None, long_about = None)]
#[non_exhaustive]
pub struct PrivilegeArgs {
    /// Run as USER (name or uid) once the sockets are bound and the pid file locked
    ///
    /// Supplementary groups from /etc/group; real, effective and saved ids; checked, or start
    /// fails. The pid file and unix sockets are removed at stop only from a directory USER can
    /// write (a missing one is created for it)
    #[arg(long, value_name = "USER", help_heading = "Privileges")]
    pub user: Option<String>,
    /// Run as GROUP (name or gid) [default: USER's primary group]
    #[arg(long, value_name = "GROUP", help_heading = "Privileges")]
    pub group: Option<String>,
    /// Working directory, entered as USER [default: / when detached, unchanged for run]
    #[arg(long, value_name = "DIR", help_heading = "Privileges")]
    pub chdir: Option<PathBuf>,
    /// Soft limit of open files [default: the hard limit]
    #[arg(long, value_name = "N", value_parser = positive_u64, help_heading = "Privileges")]
    pub limit_nofile: Option<u64>,
    /// Core file size limit in bytes, or unlimited [default: unchanged]
    #[arg(long, value_name = "N|unlimited", value_parser = rlim, help_heading = "Privileges")]
    pub limit_core: Option<crate::process::Rlim>,
    /// Set no_new_privs: the daemon and its workers can never gain privileges (setuid programs)
    #[arg(long, help_heading = "Privileges")]
    pub no_new_privs: bool,
}

impl PrivilegeArgs {
    /// Applies the flags given to `config.privileges`; a relative `--chdir` is resolved now,
    /// against `cwd` when given (the directory the daemon was started from, on reload).
    pub fn apply(&self, config: &mut Config, cwd: Option<&Path>) -> Result<(), String> {
        let p = &mut config.privileges;
        set(&mut p.user, self.user.clone().map(Some));
        set(&mut p.group, self.group.clone().map(Some));
        if let Some(dir) = &self.chdir {
            p.chdir = Some(absolute("--chdir", dir, cwd)?);
        }
        set(&mut p.limit_nofile, self.limit_nofile.map(Some));
        set(&mut p.limit_core, self.limit_core.map(Some));
        p.no_new_privs |= self.no_new_privs;
        Ok(())
    }
}

fn positive_u64(v: &str) -> Result<u64, String> {
    match number(v)? {
        0 => Err("must be at least 1".to_owned()),
        n => Ok(n),
    }
}

fn rlim(v: &str) -> Result<crate::process::Rlim, String> {
    v.parse()
}
