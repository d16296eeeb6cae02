//! The system calls that change who the process is and what it may use: supplementary groups,
//! real/effective/saved ids, capabilities, `PR_SET_NO_NEW_PRIVS`, `PR_SET_DUMPABLE`, the
//! parent-death signal, and resource limits. The policy (what to set, in which order, what a
//! failure means) lives in `crate::process::privileges`.
//!
//! rustix's id setters (`set_thread_res_uid`…) are the kernel's calls, which change the calling
//! *thread* only, where glibc's `setresuid` signals every thread to change too. tomte's daemon and
//! its workers are single-threaded, so the two are the same; [`one_thread`] checks it before an
//! identity changes, so that no thread is ever left behind with the old one.

use std::io;

use rustix::process::{Gid, Pid, Resource, Rlimit, Signal, Uid};

/// A process's real, effective and saved ids (user or group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ids {
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
}

impl Ids {
    /// All three are `id`.
    pub(crate) fn all(self, id: u32) -> bool {
        self.real == id && self.effective == id && self.saved == id
    }
}

impl std::fmt::Display for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "real {}, effective {}, saved {}", self.real, self.effective, self.saved)
    }
}

/// Fails unless the process has exactly one thread: an identity change made on one thread of
/// several would leave the others with the old one.
pub(crate) fn one_thread() -> io::Result<()> {
    match super::process::thread_count()? {
        1 => Ok(()),
        n => Err(io::Error::other(format!("the process has {n} threads, and the change would reach only one of them"))),
    }
}

/// `setgroups(gids)`: the supplementary groups (needs `CAP_SETGID`).
pub(crate) fn set_groups(gids: &[u32]) -> io::Result<()> {
    let gids: Vec<Gid> = gids.iter().map(|&g| Gid::from_raw(g)).collect();
    rustix::thread::set_thread_groups(&gids).map_err(io::Error::from)
}

/// `setresgid(gid, gid, gid)`.
pub(crate) fn set_all_gids(gid: u32) -> io::Result<()> {
    let g = Gid::from_raw(gid);
    rustix::thread::set_thread_res_gid(g, g, g).map_err(io::Error::from)
}

/// `setresuid(uid, uid, uid)`.
pub(crate) fn set_all_uids(uid: u32) -> io::Result<()> {
    let u = Uid::from_raw(uid);
    rustix::thread::set_thread_res_uid(u, u, u).map_err(io::Error::from)
}

/// `getresuid`.
pub(crate) fn uids() -> Ids {
    let (mut real, mut effective, mut saved) = (0, 0, 0);
    // SAFETY: the three pointers are to distinct locals that outlive the call, which only writes
    // a uid_t through each; getresuid cannot fail with valid pointers.
    unsafe {
        libc::getresuid(&mut real, &mut effective, &mut saved);
    }
    Ids { real, effective, saved }
}

/// `getresgid`.
pub(crate) fn gids() -> Ids {
    let (mut real, mut effective, mut saved) = (0, 0, 0);
    // SAFETY: as in `uids`: three distinct live locals, each written once as a gid_t.
    unsafe {
        libc::getresgid(&mut real, &mut effective, &mut saved);
    }
    Ids { real, effective, saved }
}

/// `getgroups`, sorted, without repeats.
pub(crate) fn groups() -> io::Result<Vec<u32>> {
    let mut gids: Vec<u32> = rustix::process::getgroups()?.into_iter().map(Gid::as_raw).collect();
    gids.sort_unstable();
    gids.dedup();
    Ok(gids)
}

/// Whether `setuid(0)` succeeds — it must not, once root was left. (If it does, the process
/// *is* root again; the caller refuses to go on.)
pub(crate) fn can_become_root() -> bool {
    rustix::thread::set_thread_uid(Uid::ROOT).is_ok()
}

/// Whether `setgid(0)` succeeds.
pub(crate) fn can_become_root_group() -> bool {
    rustix::thread::set_thread_gid(Gid::ROOT).is_ok()
}

/// Whether the process holds any capability (permitted, effective or inheritable).
pub(crate) fn holds_capabilities() -> io::Result<bool> {
    let sets = rustix::thread::capabilities(None)?;
    Ok(!(sets.permitted.is_empty() && sets.effective.is_empty() && sets.inheritable.is_empty()))
}

/// Drops every capability: the three sets emptied, the ambient set cleared. (Dropping is always
/// allowed.)
pub(crate) fn clear_capabilities() -> io::Result<()> {
    let none = rustix::thread::CapabilitySet::empty();
    let sets = rustix::thread::CapabilitySets { effective: none, permitted: none, inheritable: none };
    rustix::thread::set_capabilities(None, sets)?;
    // Kernels without ambient capabilities (before 4.3) answer EINVAL: nothing to clear there.
    match rustix::thread::clear_ambient_capability_set() {
        Ok(()) | Err(rustix::io::Errno::INVAL) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `PR_SET_NO_NEW_PRIVS`, then checks it holds: neither this process nor its children (which
/// inherit it, across `fork` and `execve`) can gain privileges by executing a program
/// (set-user-id bits and file capabilities are ignored).
pub(crate) fn set_no_new_privs() -> io::Result<()> {
    rustix::thread::set_no_new_privs(true)?;
    match rustix::thread::no_new_privs()? {
        true => Ok(()),
        false => Err(io::Error::other("PR_GET_NO_NEW_PRIVS still answers 0")),
    }
}

/// `PR_SET_DUMPABLE 1`: a process whose ids changed is made undumpable by the kernel (no core
/// file; its `/proc` files root's); this makes it dumpable again.
pub(crate) fn set_dumpable() -> io::Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable).map_err(io::Error::from)
}

/// SIGKILL when the parent dies, set again: a change of ids clears it (the kernel's rule). False
/// when `parent` has already died, so nobody would send it.
pub(crate) fn rearm_parent_death_signal(parent: Pid) -> bool {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    rustix::process::getppid() == Some(parent)
}

/// Which resource limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// `RLIMIT_NOFILE`: open descriptors.
    OpenFiles,
    /// `RLIMIT_CORE`: the size of a core file, in bytes.
    Core,
}

impl Limit {
    fn resource(self) -> Resource {
        match self {
            Limit::OpenFiles => Resource::Nofile,
            Limit::Core => Resource::Core,
        }
    }
}

/// A limit's soft and hard values; `None` is unlimited (`RLIM_INFINITY`).
pub(crate) type SoftHard = (Option<u64>, Option<u64>);

/// `getrlimit`.
pub(crate) fn rlimit(limit: Limit) -> SoftHard {
    let r = rustix::process::getrlimit(limit.resource());
    (r.current, r.maximum)
}

/// `setrlimit`. Raising the hard limit needs `CAP_SYS_RESOURCE` (EPERM otherwise), and
/// `RLIMIT_NOFILE` cannot pass `fs.nr_open` (EPERM too).
pub(crate) fn set_rlimit(limit: Limit, (soft, hard): SoftHard) -> io::Result<()> {
    rustix::process::setrlimit(limit.resource(), Rlimit { current: soft, maximum: hard }).map_err(io::Error::from)
}
