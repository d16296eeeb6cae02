//! Reaping the orphans reparented to the daemon, when it is a container's PID 1 or a child
//! subreaper, without taking the workers' exit statuses from the supervisor.
//!
//! As PID 1 every orphan of the PID namespace becomes the daemon's child (a process started by
//! `docker exec` or an exec probe whose parent exits, a worker's helper left behind); as a
//! subreaper (`PR_SET_CHILD_SUBREAPER`, which the daemon sets when it has workers) every orphan
//! of its own tree does. Unreaped, each stays a zombie for good.
//!
//! `waitpid(-1)` would reap them, but it would also reap a worker that exited in the same
//! moment and lose its status, which the supervisor needs (restart policy, `last_exit`). So on
//! SIGCHLD the supervisor reaps its workers first, by pid, as it always has; then the reaper
//! *looks* at the exited children without reaping them (`waitid` with `WNOWAIT`): one that is
//! a worker (it exited after the supervisor looked) is left to the supervisor, asked to reap
//! again; any other is reaped by its pid and logged at debug level. Nothing is forwarded to
//! the orphans: no signal, no stop; as PID 1, the kernel ends them with the namespace when the
//! daemon exits.
//!
//! The one cost: with the reaper on, a child the daemon's own code spawns and waits for later
//! (a `std::process::Child` kept across loop turns) may be reaped first, and its `wait` fail
//! with `ECHILD`. Wait for such children at once (`Command::output`, `Command::status`: the
//! loop is blocked meanwhile, so the reaper cannot run), spawn them from a worker, or turn the
//! subreaper off with [`Daemon::subreaper`](crate::Daemon::subreaper) (PID 1 cannot be).

use std::io;

use rustix::process::{Pid, WaitOptions, WaitStatus};

use crate::worker::supervisor::Supervisor;

/// The children of the process, as the reaper sees them (a seam: the tests fake it).
pub(crate) trait Children {
    /// A child that has exited, not reaped yet; `None` when there is none.
    fn exited(&mut self) -> io::Result<Option<Pid>>;
    /// Reaps child `pid` if it has exited: how it ended (`exited 0`, `killed by SIGKILL`).
    fn reap(&mut self, pid: Pid) -> io::Result<Option<String>>;
}

/// Who must reap some children itself: the supervisor, its workers.
pub(crate) trait Workers {
    fn owns(&self, pid: Pid) -> bool;
    /// Reaps every worker that exited.
    fn reap(&mut self);
}

impl Workers for Supervisor {
    fn owns(&self, pid: Pid) -> bool {
        Supervisor::owns(self, pid)
    }
    fn reap(&mut self) {
        Supervisor::reap(self);
    }
}

/// The process's real children.
struct System;

impl Children for System {
    fn exited(&mut self) -> io::Result<Option<Pid>> {
        crate::sys::reap::exited_child()
    }
    fn reap(&mut self, pid: Pid) -> io::Result<Option<String>> {
        Ok(rustix::process::waitpid(Some(pid), WaitOptions::NOHANG)?.map(|(_, status)| describe(status)))
    }
}

/// Whether orphans are reparented to this process: it is PID 1 (of its namespace) or a child
/// subreaper.
pub(crate) fn active() -> bool {
    rustix::process::getpid().is_init() || rustix::process::child_subreaper().is_ok_and(|s| s.is_some())
}

/// At start: as PID 1, says that orphans are reaped; otherwise, with `subreaper`, makes the
/// process a child subreaper, so that its workers' orphans come back to it.
pub(crate) fn setup(subreaper: bool) {
    if rustix::process::getpid().is_init() {
        log::info!("running as PID 1: every orphan reparented to it is reaped");
    } else if subreaper {
        match rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
            Ok(()) => log::debug!("child subreaper: the workers' orphans are reparented to the daemon and reaped"),
            Err(e) => log::warn!("cannot become a child subreaper ({e}): the workers' orphans go to init"),
        }
    }
}

/// What SIGCHLD does by default: the supervisor reaps its workers, then, when orphans come to
/// this process ([`active`]), the reaper reaps the others.
pub(crate) fn on_sigchld(workers: &mut Supervisor) {
    workers.reap();
    if active() {
        reap_orphans(&mut System, workers);
    }
}

thread_local! {
    /// A child that is not an orphan nor a worker, and that its owner reaps (the new binary of
    /// an upgrade, until it is ready).
    static SPARED: std::cell::Cell<Option<Pid>> = const { std::cell::Cell::new(None) };
}

/// Leaves child `pid` (none: no child) to the code that started it: the reaper never reaps it.
pub(crate) fn spare(pid: Option<Pid>) {
    SPARED.with(|s| s.set(pid));
}

/// Reaps every exited child that is not a worker, leaving the workers to `workers` (and the
/// child [`spare`]d to its owner); returns how many it reaped.
pub(crate) fn reap_orphans(children: &mut impl Children, workers: &mut impl Workers) -> usize {
    let mut reaped = 0;
    let mut last_worker = None;
    loop {
        let pid = match children.exited() {
            Ok(Some(pid)) => pid,
            Ok(None) => return reaped,
            Err(e) => {
                log::warn!("cannot look for exited children: {e}");
                return reaped;
            }
        };
        if SPARED.with(|s| s.get()) == Some(pid) {
            // Its owner reaps it (and looks at it before any other child is seen again).
            return reaped;
        }
        if workers.owns(pid) {
            // A worker that exited after the supervisor looked: its status is the supervisor's.
            if last_worker == Some(pid) {
                // Reaped already yet still seen: leave it for the next SIGCHLD, do not spin.
                return reaped;
            }
            last_worker = Some(pid);
            workers.reap();
            continue;
        }
        match children.reap(pid) {
            Ok(Some(how)) => {
                reaped += 1;
                log::debug!("reaped orphan pid {pid}: {how}");
            }
            // Seen as exited, so reaped by someone else meanwhile (a `wait` of the daemon's own).
            Ok(None) => {}
            Err(e) => {
                log::warn!("cannot reap pid {pid}: {e}");
                return reaped;
            }
        }
    }
}

pub(crate) fn describe(status: WaitStatus) -> String {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => format!("exited {code}"),
        (_, Some(sig)) => format!("killed by {}", crate::signal::name(sig)),
        _ => "ended".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exited children, in the order the kernel would show them; what was reaped by whom.
    #[derive(Default)]
    struct Fake {
        zombies: Vec<i32>,
        reaped: Vec<i32>,
    }

    impl Children for Fake {
        fn exited(&mut self) -> io::Result<Option<Pid>> {
            Ok(self.zombies.first().and_then(|&p| Pid::from_raw(p)))
        }
        fn reap(&mut self, pid: Pid) -> io::Result<Option<String>> {
            let raw = pid.as_raw_nonzero().get();
            let Some(i) = self.zombies.iter().position(|&p| p == raw) else { return Ok(None) };
            self.zombies.remove(i);
            self.reaped.push(raw);
            Ok(Some("exited 0".to_owned()))
        }
    }

    /// Workers whose supervisor reaps them from the same fake children.
    struct FakeWorkers<'a> {
        pids: Vec<i32>,
        children: &'a std::cell::RefCell<Fake>,
        reaped: Vec<i32>,
    }

    impl Workers for FakeWorkers<'_> {
        fn owns(&self, pid: Pid) -> bool {
            self.pids.contains(&pid.as_raw_nonzero().get())
        }
        fn reap(&mut self) {
            let mut c = self.children.borrow_mut();
            for &p in &self.pids {
                if let Some(i) = c.zombies.iter().position(|&z| z == p) {
                    c.zombies.remove(i);
                    self.reaped.push(p);
                }
            }
        }
    }

    /// `Children` through the shared cell, so the fake supervisor can reap the same zombies.
    struct Shared<'a>(&'a std::cell::RefCell<Fake>);
    impl Children for Shared<'_> {
        fn exited(&mut self) -> io::Result<Option<Pid>> {
            self.0.borrow_mut().exited()
        }
        fn reap(&mut self, pid: Pid) -> io::Result<Option<String>> {
            self.0.borrow_mut().reap(pid)
        }
    }

    #[test]
    fn orphans_are_reaped_and_workers_left_to_the_supervisor() {
        // Worker 10 exited after the supervisor looked, between two orphans.
        let cell = std::cell::RefCell::new(Fake { zombies: vec![20, 10, 21], reaped: Vec::new() });
        let mut workers = FakeWorkers { pids: vec![10, 11], children: &cell, reaped: Vec::new() };
        let n = reap_orphans(&mut Shared(&cell), &mut workers);
        assert_eq!(n, 2);
        assert_eq!(cell.borrow().reaped, [20, 21], "the reaper reaped the orphans only");
        assert_eq!(workers.reaped, [10], "the supervisor reaped its worker, and learnt its status");
        assert!(cell.borrow().zombies.is_empty());
    }

    #[test]
    fn a_worker_the_supervisor_does_not_take_stops_the_round() {
        struct Stubborn;
        impl Workers for Stubborn {
            fn owns(&self, pid: Pid) -> bool {
                pid.as_raw_nonzero().get() == 10
            }
            fn reap(&mut self) {}
        }
        let mut children = Fake { zombies: vec![10, 20], reaped: Vec::new() };
        assert_eq!(reap_orphans(&mut children, &mut Stubborn), 0);
        assert_eq!(children.zombies, [10, 20], "nothing of a worker's is taken");
    }

    #[test]
    fn no_children_no_work() {
        let mut children = Fake::default();
        let cell = std::cell::RefCell::new(Fake::default());
        let mut workers = FakeWorkers { pids: vec![], children: &cell, reaped: Vec::new() };
        assert_eq!(reap_orphans(&mut children, &mut workers), 0);
    }
}
