//! fork, `_exit`, signal-disposition resets, and the forking of worker processes.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use rustix::process::Pid;

use crate::process::privileges::WorkerPrivileges;
use crate::worker::channel::Channel;
use crate::worker::output::WorkerEnds;
use crate::worker::Factory;

/// Which side of a `fork` the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forked {
    /// The parent, with the child's pid.
    Parent(Pid),
    /// The new child process.
    Child,
}

/// Forks the calling process.
///
/// # Safety
/// The process must be single-threaded (tomte's daemon is, by design): after `fork` only the
/// calling thread exists in the child, so a lock held by another thread would stay locked.
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: `fork` has no memory-safety preconditions of its own; the single-thread
    // requirement that makes the child's state coherent is the caller's, stated above.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid).expect("fork returns a positive pid"))),
    }
}

/// Ends the process at once, without running destructors or `atexit` handlers: what a forked
/// intermediate process must do so that it does not flush or drop its parent's state.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe, takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// Puts every catchable signal but SIGPIPE back to its default disposition, leaving the mask
/// alone.
pub(crate) fn default_dispositions() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || sig == libc::SIGPIPE {
            continue;
        }
        // SAFETY: SIG_DFL is a valid disposition for every catchable signal; `signal` with it
        // touches no memory of ours. Errors (for numbers the kernel reserves) are harmless.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// Unblocks every signal.
pub(crate) fn unblock_all() {
    // SAFETY: a zeroed sigset_t is a valid buffer for sigemptyset, which initializes it; the
    // pointers are to a local that outlives both calls.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Ignores SIGPIPE, so that a write to a vanished peer is an EPIPE error, not a death.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; no memory is involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Forks, after checking that the process has a single thread, which makes `fork` sound.
pub(crate) fn fork_alone() -> io::Result<Forked> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "refusing to fork: the process has {threads} threads, and fork is only sound with one"
        )));
    }
    // SAFETY: the process has one thread (checked just above, and nothing in between starts one).
    unsafe { fork() }
}

/// The number of threads of this process, from `/proc/self/stat`.
pub(crate) fn thread_count() -> io::Result<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .nth(17)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other("cannot read the thread count from /proc/self/stat"))
}

/// Closes every descriptor above stderr except those in `keep`: a daemon or a worker must not
/// hold on to descriptors it inherited (a terminal's, a parent's sockets, another's lock).
///
/// # Safety
/// No live Rust object may own one of the descriptors closed (it would close it again, or use
/// a descriptor number reused by then): call it right after a fork, before opening anything
/// that is not in `keep`.
pub(crate) unsafe fn close_fds_except(keep: &[i32]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: per this function's contract nothing owns `fd`; closing a number that is
            // no longer open (the directory's own, already closed) only returns EBADF.
            unsafe {
                libc::close(fd);
            }
        }
    }
}

/// Forks a child process for `body`. In the child: every signal back to its default, then the
/// worker's own dispositions (the `signals` module beside this one: TERM and INT ask it to
/// stop, job control and the daemon's signals cannot freeze or kill it), then unblocked (every
/// signal is blocked across the fork, so none meets the child before that); a SIGKILL when the
/// parent dies (and an exit if it already has), every descriptor closed but stdio and `keep`,
/// the process named `name` (as `ps -o comm` shows it); then `body(value)` runs and the process
/// `_exit`s with its result (70 if it panics). The parent gets the child's pid and `value` back.
///
/// Inside the crate only the supervisor forks with it, through `spawn_worker`; it is `pub`
/// (not `pub(crate)`) only so that `crate::_bench` can re-export it.
///
/// # Safety
///
/// In the child, every descriptor above stderr that is not in `keep` is closed before `body`
/// runs. So `body`, everything it captures, and `value` must own no descriptor outside `keep`
/// (no file, socket, mapping's fd, `OwnedFd`…), nor refer to one by number: such an object
/// would use, or close again on drop, a closed descriptor, whose number the child may by then
/// have reused for something else. What the body needs beyond `keep` it opens itself, in the
/// child.
///
/// Nothing else of the caller's can be affected: the child never returns into the caller's
/// frames (it `_exit`s when `body` returns or panics), so the objects there that own the
/// descriptors it closed are never used or dropped in it; and `body` is `'static`, so it cannot
/// borrow them either.
pub unsafe fn spawn_child<T>(
    name: &str,
    keep: &[i32],
    value: T,
    body: impl FnOnce(T) -> i32 + 'static,
) -> io::Result<(Pid, T)> {
    let daemon = rustix::process::getpid();
    let mask = super::signals::block_all();
    let forked = fork_alone();
    if !matches!(forked, Ok(Forked::Child)) {
        super::signals::restore(&mask);
    }
    match forked? {
        Forked::Parent(pid) => Ok((pid, value)),
        Forked::Child => {
            default_dispositions();
            super::signals::install_worker_dispositions();
            unblock_all();
            let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
            // The parent may have died between fork and prctl: then nobody would kill us.
            if rustix::process::getppid() != Some(daemon) {
                exit_now(0);
            }
            // SAFETY: by this function's contract, `body` and `value` own no descriptor outside
            // `keep`, and the child never returns to the caller's frames (it `_exit`s below), so
            // no live object that owns a closed descriptor is touched again.
            unsafe { close_fds_except(keep) };
            let comm = std::ffi::CString::new(
                name.as_bytes().iter().copied().filter(|&b| b != 0).take(15).collect::<Vec<u8>>(),
            );
            if let Ok(comm) = comm {
                let _ = rustix::thread::set_name(&comm);
            }
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(value))).unwrap_or(70);
            exit_now(code)
        }
    }
}

/// Forks the worker process of the daemon's supervisor: [`spawn_child`] with `channel`'s
/// descriptors and the worker's ends of its output pipes (`stdio`) kept; in the child, the
/// pipes become its stdout and stderr, the worker's own `privileges` are applied (a failure
/// ends it with [`WORKER_PRIVILEGES_FAILED`](crate::process::privileges::WORKER_PRIVILEGES_FAILED)
/// before the factory runs), then [`crate::worker::child::main`] runs on the worker's end of
/// the channel with a worker built by `factory`. Returns the worker's pid and the channel
/// (whose daemon end the supervisor keeps); the parent's copies of the pipes' worker ends are
/// closed.
pub(crate) fn spawn_worker(
    name: &str,
    interval: Duration,
    beat: Duration,
    factory: Factory,
    privileges: WorkerPrivileges,
    channel: Channel,
    stdio: WorkerEnds,
) -> io::Result<(Pid, Channel)> {
    let daemon = rustix::process::getpid();
    let mut keep: Vec<i32> = channel.fds().iter().map(|fd| fd.as_raw_fd()).collect();
    keep.extend(stdio.fds());
    let owned_name = name.to_owned();
    // SAFETY: `spawn_child`'s contract holds. The body is the crate's worker loop; `value` is
    // the channel, whose only descriptors (its two eventfds; the mapping keeps none) are in
    // `keep`, and the pipes' worker ends, both in `keep`; the body captures the worker's name,
    // interval, beat and privileges (plain data) and the worker's factory, which by
    // `WorkerSpec::new`'s documented rule ("# Descriptors") owns no descriptor: it opens what
    // the worker needs itself, and it runs in the child, after the close. The worker loop
    // (`child::main`) holds nothing else from before the fork; applying the privileges opens
    // only files of its own (/etc/passwd, /etc/group); the logger's state, inherited from the
    // daemon, may own its syslog socket, which the worker never uses nor drops (a worker's
    // records go to its stderr pipe; see `crate::logging`).
    let (pid, (channel, _stdio)) = unsafe {
        spawn_child(name, &keep, (channel, stdio), move |(channel, stdio)| {
            // Before any of the worker's code: what it prints goes to the daemon.
            if stdio.install().is_err() {
                return 71;
            }
            if !privileges.is_empty() {
                match privileges.apply() {
                    Err(why) => {
                        log::error!("worker {owned_name}: {why}: not running it");
                        return crate::process::privileges::WORKER_PRIVILEGES_FAILED;
                    }
                    // A change of ids clears the parent-death signal: set it again (and leave
                    // if the daemon died meanwhile, as spawn_child does).
                    Ok(true) if !super::privileges::rearm_parent_death_signal(daemon) => return 0,
                    Ok(_) => {}
                }
            }
            // Built here, in the child, after the inherited descriptors are closed (and as the
            // worker's user).
            crate::worker::child::main(owned_name, interval, beat, factory(), channel.worker_end())
        })
    }?;
    Ok((pid, channel))
}

/// Starts `program` as a child that inherits `fds`, at descriptors 3, 4, … in that order
/// (close-on-exec cleared on those alone; every other descriptor above stderr is closed), with
/// `env` added to (and `unset` removed from) this process's environment, `LISTEN_PID` set to
/// the child's own pid, and `cwd` as its working directory; `argv` is its whole argument list,
/// the program's name first. Signals are back at their defaults and unblocked in the child
/// before the exec. When the exec fails, the child writes `ERROR cannot execute PROGRAM: why`
/// to descriptor `report` (a number among 3, 4, …, as the child sees it) and exits 127.
///
/// The process must have one thread (checked: an error otherwise), as for every fork here.
pub(crate) fn spawn_exec(
    program: &std::path::Path,
    argv: &[std::ffi::OsString],
    cwd: &std::path::Path,
    env: &[(String, String)],
    unset: &[&str],
    fds: &[std::os::fd::BorrowedFd<'_>],
    report: Option<i32>,
) -> io::Result<Pid> {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let first = 3 + fds.len() as i32;
    // Copies above the range the child fills, so that no dup2 there overwrites a source.
    let high: Vec<OwnedFd> = fds
        .iter()
        .map(|fd| rustix::io::fcntl_dupfd_cloexec(fd, first + 16).map_err(io::Error::from))
        .collect::<io::Result<_>>()?;
    let mut cmd = std::process::Command::new(program);
    if let Some((name, rest)) = argv.split_first() {
        cmd.arg0(name).args(rest);
    }
    cmd.current_dir(cwd);
    for key in unset {
        cmd.env_remove(key);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mask = super::signals::block_all();
    let forked = fork_alone();
    if !matches!(forked, Ok(Forked::Child)) {
        super::signals::restore(&mask);
    }
    match forked? {
        Forked::Parent(pid) => Ok(pid),
        Forked::Child => {
            default_dispositions();
            unblock_all();
            for (i, fd) in high.iter().enumerate() {
                // SAFETY: dup2 onto 3 + i: those numbers belong to nothing the child still uses
                // (it only execs from here; the caller's objects are never dropped in it, as it
                // leaves by exec or _exit), and the copy it makes has close-on-exec cleared.
                if unsafe { libc::dup2(fd.as_fd().as_raw_fd(), 3 + i as i32) } < 0 {
                    exit_now(127);
                }
            }
            // SAFETY: the child only execs or _exits from here: no object of the caller's that
            // owns a descriptor at or above `first` is used or dropped again in it.
            unsafe { close_fds_except(&(3..first).collect::<Vec<_>>()) };
            cmd.env("LISTEN_PID", std::process::id().to_string());
            let why = cmd.exec();
            if let Some(fd) = report.filter(|fd| (3..first).contains(fd)) {
                // SAFETY: `fd` is one of the descriptors placed above, owned by nothing else in
                // the child, which exits right after this write.
                let mut pipe = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                let _ = io::Write::write_all(
                    &mut pipe,
                    format!("ERROR cannot execute {}: {why}", program.display()).as_bytes(),
                );
            }
            exit_now(127)
        }
    }
}

/// Takes ownership of the listening sockets systemd (or an upgrading daemon) passed
/// (`LISTEN_PID` is this process, `LISTEN_FDS` counts them from descriptor 3), with their names
/// from `LISTEN_FDNAMES` (`unknown` where none is given, as systemd says), once: the variables
/// are removed, so a second call, or a child, finds none.
pub(crate) fn take_activated_sockets() -> Vec<(std::os::fd::OwnedFd, String)> {
    let ours = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<i32>().ok()).unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if !ours {
        return Vec::new();
    }
    let mut names = names.split(':');
    (3..3 + count.clamp(0, 1024))
        .map(|fd| (fd, names.next().filter(|n| !n.is_empty()).unwrap_or("unknown").to_owned()))
        .filter(|&(fd, _)| {
            // SAFETY: F_GETFD only reads the descriptor's flags; an unused number gives EBADF.
            unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
        })
        .map(|(fd, name)| {
            // SAFETY: the socket-activation protocol hands these descriptors to this process
            // (LISTEN_PID checked above), nothing else in it owns them, and the variables are
            // gone, so each is taken once.
            let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            // Ours alone from now on: not inherited by what the daemon runs (as sd_listen_fds
            // does).
            let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
            (fd, name)
        })
        .collect()
}

/// Takes ownership of descriptor `fd` that a parent placed for this process (an upgrading
/// daemon's hand-over, see `process::upgrade`); `None` when it is not open or is stdio.
/// The caller takes each number once, and only one it was told about.
pub(crate) fn take_inherited_fd(fd: i32) -> Option<std::os::fd::OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags; an unused number gives EBADF.
    let open = fd > 2 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
    // SAFETY: the descriptor is open, and by this function's contract it was placed for this
    // process and nothing else in it owns it.
    let fd = open.then(|| unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })?;
    // Not inherited by what the daemon runs: a child that outlived it would hold the pid
    // file's lock, or a listening socket.
    let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
    Some(fd)
}
