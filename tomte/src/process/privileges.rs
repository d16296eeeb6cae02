//! Privileges and limits: the user and group a daemon (or one of its workers) runs as, its
//! working directory, its resource limits and `PR_SET_NO_NEW_PRIVS`.
//!
//! [`Privileges`] holds the daemon's settings (the `Privileges` flags of [`crate::cli`], the
//! field [`Config::privileges`](crate::Config::privileges)); a worker's own are set on its
//! [`WorkerSpec`](crate::worker::WorkerSpec) (`.user()`, `.group()`, `.nice()`,
//! `.limit_nofile()`, `.limit_core()`).
//!
//! # The daemon's start, in order
//!
//! 1. The umask (`--umask`, default 027) is set, under `run` as under `start`.
//! 2. `--user` and `--group` are looked up in `/etc/passwd` and `/etc/group` (a name or a
//!    number; `--group` defaults to the user's primary group). An unknown one fails the start,
//!    naming it.
//! 3. Limits: the soft `RLIMIT_NOFILE` becomes `--limit-nofile`, or by default the hard limit
//!    (so that 1024 connections and more fit; logged at debug level); `RLIMIT_CORE` becomes
//!    `--limit-core` when given. A value above the hard limit raises the hard limit too, which
//!    takes a privileged daemon (root, `CAP_SYS_RESOURCE`); otherwise the start fails with the
//!    flag and both values named.
//! 4. With `--user`, started as root: the directory of the pid file and of each unix socket is
//!    created when it is missing (that last component only; mode 0755, owned by the user and
//!    the group), so the daemon can remove them at stop — the way systemd's
//!    `RuntimeDirectory=` makes `/run/NAME`. An existing directory the user cannot write is
//!    warned about (see *Files* below).
//! 5. The pid file is created and locked, every listener bound (ports below 1024 included),
//!    `--socket-mode`/`--socket-group` applied, the TLS and token files read: all as the
//!    user that started the daemon.
//! 6. The drop, with `--user` or `--group`: the process must have a single thread; then
//!    `setgroups` (the group, plus every group `/etc/group` lists the user as a member of: what
//!    `initgroups` gives a login; only the group with `--group` alone), `setresgid(g, g, g)`,
//!    `setresuid(u, u, u)` — real, effective and saved ids, so there is no way back. Then it is
//!    verified: `getresgid` and `getresuid` answer the new ids three times, `getgroups` the
//!    list, no capability is left (any left is cleared), and `setuid(0)` (and `setgid(0)`)
//!    now fail. Any step that fails or any check that does not hold fails the start, with the
//!    step and the reason through the readiness pipe (`start` exits 1): a daemon never goes on
//!    with an identity it was not asked for.
//! 7. With `--limit-core` above 0 and ids changed, `PR_SET_DUMPABLE 1` (the kernel makes a
//!    process whose ids changed undumpable: no core file). The price: processes of the user it
//!    runs as may then trace it (as they could any process of theirs).
//! 8. `--no-new-privs`: `PR_SET_NO_NEW_PRIVS`, which the workers inherit; no program the daemon
//!    or a worker executes can gain privileges (set-user-id bits, file capabilities).
//! 9. `--chdir DIR` (checked as the new user: it must be able to enter it). Without it a
//!    detached daemon stays in `/`, and `run` where it was started.
//!
//! Then the `daemon.start` event, and the workers are forked: they run as the new user.
//!
//! # Files after the drop
//!
//! * **The pid file** was created by the starting user (root) and stays open and locked. To
//!   remove it at stop, the daemon needs write access to its *directory*, checked at `unlink`
//!   time with the new user's rights — an open descriptor of the directory does not carry the
//!   old ones. So: put it in a directory of the user's (`--pidfile /run/NAME/NAME.pid`: step 4
//!   creates `/run/NAME`), and it is removed as always. In a directory the user cannot write
//!   (`/run` itself, the default), it is emptied and unlocked at stop instead, and a warning at
//!   start says so: a stale file, which `status` reports as not running and the next `start`
//!   takes over.
//! * **Unix sockets** likewise: removed at stop from a directory the user can write; left
//!   behind otherwise (the next start replaces a socket nobody listens on). The socket file
//!   keeps the starting user as owner and its mode (0600 by default), so that user — root —
//!   is who can connect. The access rules' "daemon's own user", who holds every permission on
//!   unix sockets, is the user that *started* the daemon, not the one it runs as: the drop
//!   gives the new user (often a shared one, like `nobody`) no say over the daemon. To let it
//!   in: `--socket-group`, `--socket-mode 0660`, `--allow user:NAME=all`.
//! * **The log** opened before the drop stays open and writable. Reopening it (`reload`, after
//!   rotation) happens with the new user's rights: it works when the log file and its directory
//!   are the user's (logrotate's `create 0640 USER GROUP`); otherwise the reopen fails with a
//!   logged error, and the daemon keeps writing to the file it has open.
//! * **TLS files** are reread on reload with the new user's rights too: a key only root may
//!   read fails the reload of the certificate, and the old one is kept (logged).
//! * For the checks of [`files`], the user the daemon drops to counts as the
//!   daemon's own user, beside the effective one: its directories and files are trusted at
//!   start (as root) and by `stop`, `status` and `reload` — when they are given the same
//!   `--user` (or the same configuration).
//!
//! # Workers
//!
//! A worker's settings are applied in its process, after the fork and before its factory runs
//! (so the worker is never built as root when a user is set), in this order: niceness
//! (absolute), limits, then the same drop and checks as the daemon's. A failure logs the reason
//! and ends the worker with exit code [`WORKER_PRIVILEGES_FAILED`] (77, `EX_NOPERM`) — it never
//! runs with the wrong identity; the supervisor restarts it per its policy, and the crash-loop
//! limit puts it in state `failed`. A worker of a daemon that already dropped to some user can
//! only be that user (or fail).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tomte_rpc::Value;

use super::files;
use crate::sys::privileges::{self as sys, Limit};

/// The exit code of a worker that could not take its user, group, niceness or limits
/// (`EX_NOPERM` of `sysexits.h`).
pub const WORKER_PRIVILEGES_FAILED: i32 = 77;

/// A resource limit's value: a number, or unlimited (`RLIM_INFINITY`).
///
/// Parses from a whole number or `unlimited` (`infinity` too), and shows as the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rlim {
    /// At most this many (descriptors; bytes for a core file).
    Finite(u64),
    /// No limit.
    Unlimited,
}

impl Rlim {
    fn from_raw(v: Option<u64>) -> Rlim {
        v.map_or(Rlim::Unlimited, Rlim::Finite)
    }
    fn raw(self) -> Option<u64> {
        match self {
            Rlim::Finite(n) => Some(n),
            Rlim::Unlimited => None,
        }
    }
    fn to_value(self) -> Value {
        match self {
            Rlim::Finite(n) => Value::from(n),
            Rlim::Unlimited => Value::from("unlimited"),
        }
    }
}

impl From<u64> for Rlim {
    fn from(n: u64) -> Rlim {
        Rlim::Finite(n)
    }
}

impl fmt::Display for Rlim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rlim::Finite(n) => write!(f, "{n}"),
            Rlim::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl FromStr for Rlim {
    type Err = String;
    fn from_str(s: &str) -> Result<Rlim, String> {
        match s {
            "unlimited" | "infinity" => Ok(Rlim::Unlimited),
            n => n.parse().map(Rlim::Finite).map_err(|_| "not a whole number, nor unlimited".to_owned()),
        }
    }
}

/// The daemon's user, group, working directory and limits (see the [module](self) for what
/// start does with them, in which order). The default changes nothing but the soft limit of
/// open files, raised to the hard limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Privileges {
    /// Run as this user (a name, or a uid) once the sockets are bound and the pid file locked
    /// (`--user`).
    pub user: Option<String>,
    /// Run as this group (a name, or a gid; `--group`). Default: the user's primary group.
    pub group: Option<String>,
    /// The working directory (`--chdir`). Default: `/` once detached, unchanged under `run`.
    pub chdir: Option<PathBuf>,
    /// The soft limit of open descriptors (`--limit-nofile`). Default: the hard limit.
    pub limit_nofile: Option<u64>,
    /// The soft limit of a core file's size, in bytes (`--limit-core`). Default: unchanged.
    pub limit_core: Option<Rlim>,
    /// Set `PR_SET_NO_NEW_PRIVS` (`--no-new-privs`), for the daemon and all its workers.
    pub no_new_privs: bool,
}

/// Why the daemon or a worker could not take the user, group, directory or limits it was given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivilegeError {
    /// A user name that `/etc/passwd` does not list, and that is not a number either.
    #[error("no user '{user}' in /etc/passwd")]
    NoUser {
        /// The user as given.
        user: String,
    },
    /// A group name that `/etc/group` does not list, and that is not a number either.
    #[error("no group '{group}' in /etc/group")]
    NoGroup {
        /// The group as given.
        group: String,
    },
    /// A numeric user that `/etc/passwd` does not list: it has no primary group to default to.
    #[error("user {uid} is not in /etc/passwd, so it has no primary group: name the group too")]
    NoPrimaryGroup {
        /// The uid as given.
        uid: u32,
    },
    /// A step of the drop failed (the system call's error).
    #[error("cannot run as {who}: cannot {step}: {source}")]
    Step {
        /// The user and group to become, with their ids.
        who: String,
        /// What was being done (`set the supplementary groups to [1000]`, …).
        step: String,
        /// The system call's error.
        source: io::Error,
    },
    /// The drop's system calls succeeded but the process is not what was asked for.
    #[error("cannot run as {who}: {what}")]
    Unverified {
        /// The user and group to become, with their ids.
        who: String,
        /// What the check found.
        what: String,
    },
    /// A limit above the hard limit, which this process may not raise.
    #[error(
        "{flag} {value} is above the hard limit {hard}, and raising that was refused ({source}): it takes \
         a privileged process (and open files stop at fs.nr_open)"
    )]
    AboveHard {
        /// The setting, as named to the user (`--limit-nofile`, or `limit_nofile` for a worker).
        flag: &'static str,
        /// The value asked for.
        value: Rlim,
        /// The hard limit in force.
        hard: Rlim,
        /// The system call's error.
        source: io::Error,
    },
    /// A limit could not be set for another reason than the hard limit.
    #[error("cannot set {flag} {value}: {source}")]
    Limit {
        /// The setting, as named to the user (`--limit-nofile`, or `limit_nofile` for a worker).
        flag: &'static str,
        /// The value asked for.
        value: Rlim,
        /// The system call's error.
        source: io::Error,
    },
    /// A worker's niceness could not be set.
    #[error("cannot set niceness {nice}: {source}")]
    Nice {
        /// The niceness asked for.
        nice: i32,
        /// The system call's error.
        source: io::Error,
    },
    /// The working directory (`--chdir`) could not be entered.
    #[error("cannot change directory to {}: {source}", dir.display())]
    Chdir {
        /// The directory.
        dir: PathBuf,
        /// Why it could not be entered.
        source: io::Error,
    },
    /// `PR_SET_NO_NEW_PRIVS` (`--no-new-privs`) could not be set.
    #[error("cannot set no_new_privs: {source}")]
    NoNewPrivs {
        /// The system call's error.
        source: io::Error,
    },
    /// The missing directory of the pid file or of a unix socket could not be created, or
    /// given to the user and group (step 4 of the [module](self)'s start).
    #[error("cannot create {} for {who}: {source}", dir.display())]
    RunDir {
        /// The directory.
        dir: PathBuf,
        /// The user and group it was for, with their ids.
        who: String,
        /// Why it failed.
        source: io::Error,
    },
}

/// A user and group to become, looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `None`: only the group changes.
    uid: Option<u32>,
    gid: u32,
    /// The supplementary groups, sorted.
    groups: Vec<u32>,
    /// "user nobody (65534), group nogroup (65534)", for messages.
    who: String,
}

impl Identity {
    /// Looks `user` and `group` up; `None` when neither is given.
    pub(crate) fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Identity>, PrivilegeError> {
        let account = match user {
            None => None,
            Some(u) => match crate::net::account(u) {
                Some(a) => Some(Ok(a)),
                None => match u.parse::<u32>() {
                    Ok(uid) => Some(Err(uid)),
                    Err(_) => return Err(PrivilegeError::NoUser { user: u.to_owned() }),
                },
            },
        };
        let gid = match group {
            Some(g) => Some(match crate::net::gid_of(g).or_else(|| g.parse().ok()) {
                Some(gid) => gid,
                None => return Err(PrivilegeError::NoGroup { group: g.to_owned() }),
            }),
            None => None,
        };
        let (uid, name, gid, mut groups) = match (account, gid) {
            (None, None) => return Ok(None),
            (None, Some(gid)) => (None, String::new(), gid, vec![gid]),
            (Some(Ok(a)), gid) => {
                let gid = gid.unwrap_or(a.gid);
                let mut groups = a.groups;
                groups.push(gid);
                (Some(a.uid), a.name, gid, groups)
            }
            (Some(Err(uid)), Some(gid)) => (Some(uid), uid.to_string(), gid, vec![gid]),
            (Some(Err(uid)), None) => return Err(PrivilegeError::NoPrimaryGroup { uid }),
        };
        groups.sort_unstable();
        groups.dedup();
        let group_name = crate::net::group_name(gid).unwrap_or_else(|| gid.to_string());
        let who = match uid {
            Some(uid) => format!("user {name} (uid {uid}), group {group_name} (gid {gid})"),
            None => format!("group {group_name} (gid {gid})"),
        };
        Ok(Some(Identity { uid, gid, groups, who }))
    }

    /// Whether the process already is this identity (then nothing is changed, only checked:
    /// an unprivileged process may "become" itself).
    fn is_current(&self) -> bool {
        self.uid.is_none_or(|u| sys::uids().all(u))
            && sys::gids().all(self.gid)
            && sys::groups().ok().as_ref() == Some(&self.groups)
    }

    /// The drop: supplementary groups, group ids, user ids; then the checks (see the module).
    fn become_it(&self) -> Result<(), PrivilegeError> {
        let step = |what: String| move |source| PrivilegeError::Step { who: self.who.clone(), step: what, source };
        if !self.is_current() {
            sys::one_thread().map_err(step("change identity".to_owned()))?;
            let list = self.groups.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            sys::set_groups(&self.groups).map_err(step(format!("set the supplementary groups to [{list}]")))?;
            sys::set_all_gids(self.gid)
                .map_err(step(format!("set the real, effective and saved gids to {}", self.gid)))?;
            if let Some(uid) = self.uid {
                sys::set_all_uids(uid).map_err(step(format!("set the real, effective and saved uids to {uid}")))?;
            }
        }
        self.verify()
    }

    fn verify(&self) -> Result<(), PrivilegeError> {
        let wrong = |what: String| PrivilegeError::Unverified { who: self.who.clone(), what };
        let gids = sys::gids();
        if !gids.all(self.gid) {
            return Err(wrong(format!("the group ids are {gids} after setresgid")));
        }
        let groups = sys::groups().map_err(|e| wrong(format!("cannot read the supplementary groups: {e}")))?;
        if groups != self.groups {
            return Err(wrong(format!("the supplementary groups are {groups:?}, not {:?}", self.groups)));
        }
        let Some(uid) = self.uid else { return Ok(()) };
        let uids = sys::uids();
        if !uids.all(uid) {
            return Err(wrong(format!("the user ids are {uids} after setresuid")));
        }
        if uid == 0 {
            return Ok(());
        }
        // Leaving uid 0 clears the capabilities (the kernel's rule) unless something asked to
        // keep them (SECBIT_KEEP_CAPS, or a start as another user with capabilities): clear
        // what is left, and make sure.
        let held = |what: &str| sys::holds_capabilities().map_err(|e| wrong(format!("cannot read the {what}: {e}")));
        if held("capabilities")? {
            sys::clear_capabilities().map_err(|e| wrong(format!("cannot drop the capabilities left: {e}")))?;
            if held("capabilities left")? {
                return Err(wrong("capabilities are left after dropping them".to_owned()));
            }
        }
        if sys::can_become_root() {
            return Err(wrong("setuid(0) succeeds after the drop: it could become root again".to_owned()));
        }
        if self.gid != 0 && sys::can_become_root_group() {
            return Err(wrong("setgid(0) succeeds after the drop".to_owned()));
        }
        Ok(())
    }

    /// Whether this identity may create and remove entries in a directory of this status
    /// (its mode bits; ACLs are not read).
    fn can_write(&self, st: &rustix::fs::Stat) -> bool {
        let Some(uid) = self.uid else { return true };
        let mode = st.st_mode;
        uid == 0
            || if st.st_uid == uid {
                mode & 0o300 == 0o300
            } else if self.groups.contains(&st.st_gid) {
                mode & 0o030 == 0o030
            } else {
                mode & 0o003 == 0o003
            }
    }
}

/// What [`prepare`] leaves for [`Prepared::finish`], once the files are open and the sockets
/// bound.
#[derive(Debug)]
pub(crate) struct Prepared {
    identity: Option<Identity>,
    chdir: Option<PathBuf>,
    no_new_privs: bool,
    dumpable: bool,
}

impl Privileges {
    /// Makes the file checks ([`files`]) count the user the daemon runs as (`user`) as its own,
    /// besides the effective user: for the commands (`stop`, `status`…) that look at the files
    /// of a daemon that dropped to it. Nothing when there is no user, or it is unknown.
    pub(crate) fn trust_files(&self) {
        if let Some(account) = self.user.as_deref().and_then(crate::net::account) {
            files::trust_run_as(account.uid);
        } else if let Some(uid) = self.user.as_deref().and_then(|u| u.parse().ok()) {
            files::trust_run_as(uid);
        }
    }
}

/// Steps 1 to 4 of the daemon's start (see the module): umask, lookups, limits, directories.
pub(crate) fn prepare(config: &crate::Config) -> Result<Prepared, PrivilegeError> {
    let p = &config.privileges;
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(config.umask & 0o777));
    let identity = Identity::resolve(p.user.as_deref(), p.group.as_deref())?;
    if let Some(uid) = identity.as_ref().and_then(|i| i.uid) {
        files::trust_run_as(uid);
    }
    set_limits(p.limit_nofile, p.limit_core, true, ("--limit-nofile", "--limit-core"))?;
    if let Some(identity) = identity.as_ref().filter(|i| i.uid.is_some()) {
        run_dirs(config, identity)?;
    }
    let dumpable = identity.is_some() && p.limit_core.is_some_and(|c| c > Rlim::Finite(0));
    Ok(Prepared { identity, chdir: p.chdir.clone(), no_new_privs: p.no_new_privs, dumpable })
}

impl Prepared {
    /// Steps 6 to 9 of the daemon's start: the drop and its checks, dumpable, no_new_privs,
    /// chdir.
    pub(crate) fn finish(self) -> Result<(), PrivilegeError> {
        if let Some(identity) = &self.identity {
            identity.become_it()?;
            log::info!("running as {}", identity.who);
        }
        if self.dumpable {
            if let Err(e) = sys::set_dumpable() {
                log::warn!("cannot make the daemon dumpable again (no core file): {e}");
            }
        }
        if self.no_new_privs {
            sys::set_no_new_privs().map_err(|source| PrivilegeError::NoNewPrivs { source })?;
        }
        if let Some(dir) = &self.chdir {
            std::env::set_current_dir(dir).map_err(|source| PrivilegeError::Chdir { dir: dir.clone(), source })?;
        }
        Ok(())
    }
}

/// Step 4: the pid file's and unix sockets' directories, for a daemon that will drop to
/// `identity` — created when missing (by root), warned about when the user cannot write them.
fn run_dirs(config: &crate::Config, identity: &Identity) -> Result<(), PrivilegeError> {
    let sockets = config.sockets.iter().filter_map(|a| match &a.transport {
        crate::net::Transport::Unix(path) => Some(path.as_path()),
        _ => None,
    });
    let files: Vec<(&Path, bool)> =
        config.pidfile.as_deref().map(|p| (p, true)).into_iter().chain(sockets.map(|s| (s, false))).collect();
    let root = rustix::process::geteuid().is_root();
    for (file, is_pidfile) in files {
        let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) else { continue };
        let st = match rustix::fs::stat(dir) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) if root => {
                make_run_dir(dir, identity)?;
                continue;
            }
            // Anything else is for the pid file or the bind to report, naming the path.
            Err(_) => continue,
        };
        if !identity.can_write(&st) {
            let (what, then) = if is_pidfile {
                ("pid file", "it will be emptied and unlocked at stop instead of removed")
            } else {
                ("socket", "it will be left behind at stop (the next start replaces it)")
            };
            log::warn!(
                "the {what} {} is in {}, which {} cannot write: {then}; a directory of the user's \
                 (a missing one is created) avoids that",
                file.display(),
                dir.display(),
                identity.who
            );
        }
    }
    Ok(())
}

/// Creates `dir` (its last component; mode 0755) and gives it to `identity`.
fn make_run_dir(dir: &Path, identity: &Identity) -> Result<(), PrivilegeError> {
    use std::os::unix::fs::DirBuilderExt;
    let failed = |source| PrivilegeError::RunDir { dir: dir.to_owned(), who: identity.who.clone(), source };
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        // Made meanwhile (another instance): the file checks judge it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        // No parent: the pid file or the bind reports the path.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(failed(e)),
    }
    // The directory just made, not whatever its name may lead to by now.
    use rustix::fs::{Mode, OFlags};
    let fd =
        rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| failed(e.into()))?;
    let uid = identity.uid.map(rustix::fs::Uid::from_raw);
    rustix::fs::fchown(&fd, uid, Some(rustix::fs::Gid::from_raw(identity.gid))).map_err(|e| failed(e.into()))?;
    // The umask may have narrowed the mode.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755)).map_err(|e| failed(e.into()))?;
    log::info!("created {} for {}", dir.display(), identity.who);
    Ok(())
}

/// Sets the open-files and core limits: each given one as its soft limit (raising the hard
/// limit when it is above it); without an open-files value and with `raise_nofile`, the soft
/// open-files limit is raised to the hard one. `flags` name the settings in messages.
fn set_limits(
    nofile: Option<u64>,
    core: Option<Rlim>,
    raise_nofile: bool,
    flags: (&'static str, &'static str),
) -> Result<(), PrivilegeError> {
    match nofile {
        Some(n) => set_limit(Limit::OpenFiles, Rlim::Finite(n), flags.0)?,
        None if raise_nofile => {
            let (soft, hard) = sys::rlimit(Limit::OpenFiles);
            let (soft, hard) = (Rlim::from_raw(soft), Rlim::from_raw(hard));
            if soft < hard {
                match sys::set_rlimit(Limit::OpenFiles, (hard.raw(), hard.raw())) {
                    Ok(()) => log::debug!("open files: soft limit raised from {soft} to the hard limit, {hard}"),
                    Err(e) => log::warn!("cannot raise the soft limit of open files from {soft} to {hard}: {e}"),
                }
            } else {
                log::debug!("open files: soft limit {soft}, the hard limit already");
            }
        }
        None => {}
    }
    if let Some(value) = core {
        set_limit(Limit::Core, value, flags.1)?;
    }
    Ok(())
}

/// Sets `limit`'s soft value to `value`, and its hard one too when `value` is above it.
fn set_limit(limit: Limit, value: Rlim, flag: &'static str) -> Result<(), PrivilegeError> {
    let (soft, hard) = sys::rlimit(limit);
    let (soft, hard) = (Rlim::from_raw(soft), Rlim::from_raw(hard));
    let new_hard = hard.max(value);
    match sys::set_rlimit(limit, (value.raw(), new_hard.raw())) {
        Ok(()) => {
            log::debug!("{flag}: soft limit {soft} -> {value}, hard limit {hard} -> {new_hard}");
            Ok(())
        }
        Err(source) if value > hard && source.kind() == io::ErrorKind::PermissionDenied => {
            Err(PrivilegeError::AboveHard { flag, value, hard, source })
        }
        Err(source) => Err(PrivilegeError::Limit { flag, value, source }),
    }
}

/// A worker's own user, group, niceness and limits (set on its `WorkerSpec`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WorkerPrivileges {
    pub(crate) user: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) nice: Option<i32>,
    pub(crate) limit_nofile: Option<u64>,
    pub(crate) limit_core: Option<Rlim>,
}

impl WorkerPrivileges {
    /// Whether nothing is to be set.
    pub(crate) fn is_empty(&self) -> bool {
        *self == WorkerPrivileges::default()
    }

    /// Applies them in the worker's process, before its factory runs: niceness, limits, then the
    /// drop and its checks. Answers whether the ids changed (the parent-death signal must then
    /// be set again).
    pub(crate) fn apply(&self) -> Result<bool, PrivilegeError> {
        if let Some(nice) = self.nice {
            super::set_niceness(nice).map_err(|source| PrivilegeError::Nice { nice, source })?;
        }
        set_limits(self.limit_nofile, self.limit_core, false, ("limit_nofile", "limit_core"))?;
        let Some(identity) = Identity::resolve(self.user.as_deref(), self.group.as_deref())? else {
            return Ok(false);
        };
        let changed = !identity.is_current();
        identity.become_it()?;
        if changed && self.limit_core.is_some_and(|c| c > Rlim::Finite(0)) {
            let _ = sys::set_dumpable();
        }
        Ok(changed)
    }
}

/// `daemon.status`'s members about the process: `user` (name, uid), `group` (name, gid, the
/// supplementary `groups`) and `rlimits` (`nofile` and `core`, each `soft` and `hard`: a number,
/// or `"unlimited"`).
pub(crate) fn status() -> [(&'static str, Value); 3] {
    // `daemon.status` is a monitoring call, made often: the identity is read once (a daemon's
    // ids change only at start, before it serves anyone), the limits at most once a second
    // (another process may change them with prlimit). Seven system calls a call otherwise.
    thread_local! {
        static IDENTITY: std::cell::OnceCell<[(&'static str, Value); 2]> = const { std::cell::OnceCell::new() };
        static LIMITS: std::cell::RefCell<Option<(std::time::Instant, Value)>> = const { std::cell::RefCell::new(None) };
    }
    let [user, group] = IDENTITY.with(|cell| cell.get_or_init(identity).clone());
    let rlimits = LIMITS.with(|cache| {
        let mut cache = cache.borrow_mut();
        match &*cache {
            Some((at, v)) if at.elapsed() < std::time::Duration::from_secs(1) => v.clone(),
            _ => {
                let v = rlimits();
                *cache = Some((std::time::Instant::now(), v.clone()));
                v
            }
        }
    });
    [user, group, ("rlimits", rlimits)]
}

/// The user and group the process runs as, with names, as `daemon.status` shows them.
fn identity() -> [(&'static str, Value); 2] {
    let (uid, gid) = (sys::uids().effective, sys::gids().effective);
    let names = crate::net::names(uid, Some(gid));
    let groups = sys::groups().unwrap_or_default();
    [
        ("user", Value::structure([("name", Value::from(names.user)), ("uid", Value::from(uid))])),
        (
            "group",
            Value::structure([
                ("name", Value::from(names.group)),
                ("gid", Value::from(gid)),
                ("groups", Value::from(groups)),
            ]),
        ),
    ]
}

/// The open-files and core limits, soft and hard.
fn rlimits() -> Value {
    let limit = |limit: Limit| {
        let (soft, hard) = sys::rlimit(limit);
        Value::structure([("soft", Rlim::from_raw(soft).to_value()), ("hard", Rlim::from_raw(hard).to_value())])
    };
    Value::structure([("nofile", limit(Limit::OpenFiles)), ("core", limit(Limit::Core))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlim_parses_and_orders() {
        assert_eq!("unlimited".parse(), Ok(Rlim::Unlimited));
        assert_eq!("4096".parse(), Ok(Rlim::Finite(4096)));
        assert!("-1".parse::<Rlim>().is_err());
        assert!(Rlim::Finite(u64::MAX) < Rlim::Unlimited);
        assert_eq!(Rlim::Unlimited.to_string(), "unlimited");
        assert_eq!(Rlim::from_raw(None), Rlim::Unlimited);
    }

    #[test]
    fn identities_are_looked_up() {
        assert!(Identity::resolve(None, None).unwrap().is_none());
        let root = Identity::resolve(Some("root"), None).unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (Some(0), 0));
        assert!(root.groups.contains(&0));
        assert!(root.who.contains("user root (uid 0)"), "{}", root.who);
        let by_number = Identity::resolve(Some("0"), Some("0")).unwrap().unwrap();
        assert_eq!((by_number.uid, by_number.gid), (Some(0), 0));
        assert!(matches!(Identity::resolve(Some("no-such-user-x"), None), Err(PrivilegeError::NoUser { .. })));
        assert!(matches!(
            Identity::resolve(Some("root"), Some("no-such-group-x")),
            Err(PrivilegeError::NoGroup { .. })
        ));
        assert!(matches!(Identity::resolve(Some("4000000"), None), Err(PrivilegeError::NoPrimaryGroup { .. })));
        let group_only = Identity::resolve(None, Some("0")).unwrap().unwrap();
        assert_eq!((group_only.uid, group_only.groups.as_slice()), (None, &[0][..]));
    }

    #[test]
    fn becoming_who_one_is_changes_nothing() {
        // Whoever runs the tests: the current ids and groups, as an identity, are "current".
        let (uid, gid) = (sys::uids().effective, sys::gids().effective);
        let identity = Identity { uid: Some(uid), gid, groups: sys::groups().unwrap(), who: "me".to_owned() };
        if sys::uids().all(uid) && sys::gids().all(gid) {
            assert!(identity.is_current());
        }
    }
}
