//! A worker process's signal dispositions, and the flag its stop signals raise; the daemon's
//! own handler, which marks a signal pending for the bridge ([`crate::signal`]) to turn into
//! events.
//!
//! A worker shares its process group with the daemon (and, under `run`, with the terminal's
//! foreground job), so a signal meant for the daemon or sent to the whole group reaches it too:
//! systemd's `KillMode=control-group`, `timeout(1)`, `kill -TERM -PGID`, Ctrl-C, Ctrl-Z. Left at
//! their defaults, most of those would kill or freeze the worker behind the daemon's back.
//! [`install_worker_dispositions`] sets, in the forked child:
//!
//! | signals | in a worker | why |
//! | --- | --- | --- |
//! | TERM, INT | [`stop_signal`] is set and the worker's channel woken: spindown, exit 0 | a stop request, for the worker as for the daemon |
//! | TSTP, TTIN, TTOU | ignored (`SIG_IGN`) | a worker is never frozen: its askers would hang |
//! | HUP, USR1, USR2, ALRM, VTALRM, PROF, IO (POLL), PWR, STKFLT, SIGRTMIN..=SIGRTMAX | caught and dropped | the daemon's signals (reload, user hooks) reaching the worker through its group |
//! | PIPE | ignored | a vanished peer is an `EPIPE` error, as everywhere in Rust |
//! | CHLD, CONT, URG, WINCH | default (nothing happens) | already harmless; CHLD must stay default for the worker's own children |
//! | SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT | default (core dump) | a fault in the worker's own code: returning from a handler would re-run it |
//! | QUIT | default (core dump) | a user's explicit request for a core |
//! | XCPU, XFSZ | default (core dump) | resource limits set to end the process |
//! | KILL, STOP | cannot be caught | the daemon's last resort, and a debugger's |
//!
//! "Caught and dropped" is a handler that does nothing, rather than `SIG_IGN`: a handler goes
//! back to its default across `exec`, so a program the worker runs gets ordinary signals,
//! while an ignored signal would stay ignored in it. TSTP, TTIN and TTOU must be `SIG_IGN`
//! proper: the kernel gives a background process that ignores TTIN an `EIO` and lets its
//! writes through when it ignores TTOU, but sends a process that catches them the signal again
//! and again on each restarted read or write.
//!
//! Handlers are installed with `SA_RESTART`, so the worker's own code sees as few `EINTR`s as
//! the kernel allows. In the daemon every bridged signal has [`install_bridge`]'s handler; the
//! fork keeps that disposition until the child's own are set, while every signal is blocked.
//!
//! Between `fork` and these dispositions every signal is blocked ([`block_all`] in the daemon
//! before the fork), so a signal sent to the group at that moment waits and meets the worker's
//! handlers, never the defaults.

use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rustix::process::Signal;

use super::eventfd::EventFd;

/// The last stop signal received (0: none).
static STOP: AtomicI32 = AtomicI32::new(0);
/// The eventfd the stop handler writes, to wake the worker's sleep (-1: none yet).
static WAKE: AtomicI32 = AtomicI32::new(-1);
/// Keeps that eventfd open for the rest of the process, so the number in `WAKE` never names
/// another file (a handler may be running on another thread of the worker at any time).
static WAKE_KEEP: OnceLock<Arc<EventFd>> = OnceLock::new();

/// The signals that stop a worker cleanly (spindown, exit 0).
pub(crate) const STOP_SIGNALS: [i32; 2] = [libc::SIGTERM, libc::SIGINT];

/// The job-control signals a worker ignores.
pub(crate) const IGNORED: [i32; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

/// The signals a worker catches and drops, besides the real-time ones (SIGRTMIN..=SIGRTMAX):
/// the daemon's, reaching it through the group.
pub(crate) const DROPPED: [i32; 9] = [
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGSTKFLT,
];

/// A signal mask saved by [`block_all`], to put back with [`restore`].
pub(crate) struct SavedMask(libc::sigset_t);

/// Blocks every signal in the calling thread and returns the mask it had: the daemon calls it
/// just before it forks a worker, so that nothing is delivered to the child before its own
/// dispositions are set; the parent restores its mask right after the fork.
pub(crate) fn block_all() -> SavedMask {
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `all` is initialized by sigfillset before sigprocmask reads it; sigprocmask writes
    // the previous mask into `old` (a valid buffer of the right type) and can only fail for an
    // invalid `how`, which SIG_BLOCK is not, so `old` is initialized when it is read.
    unsafe {
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigfillset(all.as_mut_ptr());
        libc::sigprocmask(libc::SIG_BLOCK, all.as_ptr(), old.as_mut_ptr());
        SavedMask(old.assume_init())
    }
}

/// Puts back a mask saved by [`block_all`].
pub(crate) fn restore(mask: &SavedMask) {
    // SAFETY: `mask.0` is a mask the kernel filled in; no memory of ours is written.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut());
    }
}

/// The stop handler: records the signal, then wakes the worker's channel sleep. Only an atomic
/// store, an atomic load and `write(2)`, all async-signal-safe; `errno` is kept for the code
/// the signal interrupted.
extern "C" fn on_stop(signal: libc::c_int) {
    STOP.store(signal, Ordering::SeqCst);
    wake_from_handler(&WAKE);
}

/// Adds one to the eventfd whose number `wake` holds (nothing while it holds -1), from a
/// signal handler: only an atomic load and `write(2)`, both async-signal-safe, and `errno` is
/// kept for the code the signal interrupted. Each number stored in a `wake` static names an
/// eventfd kept open for the rest of the process (`WAKE_KEEP`, `BRIDGE_KEEP`).
fn wake_from_handler(wake: &AtomicI32) {
    let fd = wake.load(Ordering::SeqCst);
    if fd >= 0 {
        let one = 1u64.to_ne_bytes();
        // SAFETY: `fd` is an eventfd kept open for the process's life (see above); `one` is a
        // live 8-byte buffer; `__errno_location` points at this thread's errno, which is saved
        // before the write and put back after it.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, one.as_ptr().cast(), one.len());
            *libc::__errno_location() = errno;
        }
    }
}

/// The handler of the dropped signals: nothing at all.
extern "C" fn on_dropped(_signal: libc::c_int) {}

/// Sets `signal`'s action to `handler` (one of the handlers here, SIG_IGN or SIG_DFL), with
/// `SA_RESTART`. An error (a number the kernel reserves) leaves the disposition as it was.
fn set_action(signal: i32, handler: libc::sighandler_t) -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid value (empty flags, null restorer), its mask is
    // initialized by sigemptyset, and `handler` is SIG_IGN, SIG_DFL or one of the `extern "C"`
    // functions of this module, which only do async-signal-safe work.
    let done = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut())
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sets a worker's dispositions, as the table in this module's doc says; every other signal
/// keeps the disposition it has (call [`super::process::default_dispositions`] first). Meant
/// for the forked child while every signal is blocked.
pub(crate) fn install_worker_dispositions() {
    for signal in STOP_SIGNALS {
        let _ = set_action(signal, on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
    for signal in IGNORED {
        let _ = set_action(signal, libc::SIG_IGN);
    }
    // No allocation: this runs right after fork.
    for signal in DROPPED.into_iter().chain(libc::SIGRTMIN()..=libc::SIGRTMAX()) {
        let _ = set_action(signal, on_dropped as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
}

/// The stop signal (TERM or INT) this process received, if any.
pub(crate) fn stop_signal() -> Option<Signal> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        raw => Signal::from_named_raw(raw),
    }
}

/// Makes the stop handler also signal `wake` (the eventfd the worker sleeps on), so that a
/// stop signal ends the sleep at once. Once per process: later calls change nothing. The
/// descriptor stays open until the process exits.
pub(crate) fn wake_on_stop(wake: Arc<EventFd>) {
    let fd = wake.as_raw_fd();
    if WAKE_KEEP.set(wake).is_ok() {
        WAKE.store(fd, Ordering::SeqCst);
    }
}

/// The signals the daemon's bridge received and the loop has not taken yet: bit `n - 1` for
/// signal `n` (Linux numbers signals 1 to 64).
static BRIDGED: AtomicU64 = AtomicU64::new(0);
/// The eventfd the bridge's handler writes, to wake the loop's poll (-1: none yet).
static BRIDGE_WAKE: AtomicI32 = AtomicI32::new(-1);
/// Keeps that eventfd open for the rest of the process (see `WAKE_KEEP`).
static BRIDGE_KEEP: OnceLock<Arc<EventFd>> = OnceLock::new();

/// The daemon's bridge handler: marks the signal pending (a lock-free atomic, async-signal-safe),
/// then wakes the loop.
extern "C" fn on_bridged(signal: libc::c_int) {
    if (1..=64).contains(&signal) {
        BRIDGED.fetch_or(1 << (signal - 1), Ordering::SeqCst);
    }
    wake_from_handler(&BRIDGE_WAKE);
}

/// Catches each of `signals` in the daemon's bridge: the handler only marks the signal pending
/// (read with [`take_bridged`]) and makes the returned eventfd readable, for the loop to poll.
/// Numbers outside 1..=64 are skipped (no Linux signal on x86 or ARM has one). The eventfd is
/// made once per process, and a call clears what an earlier one left pending. On an error no
/// signal is left caught by it.
///
/// Written here rather than through signal-hook's registry, which keeps an action table and
/// the previous action per signal (about 25 kB of heap for the 55 signals the bridge takes,
/// a twelfth of an idle daemon's anonymous memory, and copied into every worker by `fork`):
/// the bridge needs no more than a bit per signal and a wake-up.
pub(crate) fn install_bridge(signals: &[i32]) -> std::io::Result<Arc<EventFd>> {
    if BRIDGE_KEEP.get().is_none() {
        let _ = BRIDGE_KEEP.set(Arc::new(EventFd::new()?));
    }
    let wake = Arc::clone(BRIDGE_KEEP.get().expect("made above"));
    // Published once kept, so the number never names another file.
    BRIDGE_WAKE.store(wake.as_raw_fd(), Ordering::SeqCst);
    BRIDGED.store(0, Ordering::SeqCst);
    wake.drain()?;
    let signals: Vec<i32> = signals.iter().copied().filter(|s| (1..=64).contains(s)).collect();
    for (done, &signal) in signals.iter().enumerate() {
        let handler = on_bridged as extern "C" fn(libc::c_int) as libc::sighandler_t;
        if let Err(why) = set_action(signal, handler) {
            for &earlier in &signals[..done] {
                let _ = set_action(earlier, libc::SIG_DFL);
            }
            return Err(std::io::Error::new(why.kind(), format!("cannot catch signal {signal}: {why}")));
        }
    }
    Ok(wake)
}

/// The signals the bridge caught since the last call, in increasing number (each once, however
/// often it arrived meanwhile, as the kernel does for a pending signal).
pub(crate) fn take_bridged() -> impl Iterator<Item = i32> {
    let bits = BRIDGED.swap(0, Ordering::SeqCst);
    (1..=64).filter(move |n| bits & (1u64 << (n - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridged_signal_wakes_the_eventfd_and_is_taken_once() {
        // 200 is no signal: skipped, not an error.
        let wake = install_bridge(&[libc::SIGWINCH, 200]).expect("install the bridge");
        // SAFETY: raise only delivers SIGWINCH to this thread, whose action is the bridge's.
        unsafe {
            libc::raise(libc::SIGWINCH);
            libc::raise(libc::SIGWINCH);
        }
        assert!(wake.wait(Some(std::time::Duration::from_secs(10))).expect("wait"));
        assert!(wake.drain().expect("drain") >= 1);
        assert_eq!(take_bridged().collect::<Vec<_>>(), [libc::SIGWINCH]);
        assert_eq!(take_bridged().count(), 0);
        // A second install clears what the first left pending.
        // SAFETY: as above.
        unsafe { libc::raise(libc::SIGWINCH) };
        let again = install_bridge(&[libc::SIGWINCH]).expect("install again");
        assert_eq!(again.as_raw_fd(), wake.as_raw_fd());
        assert_eq!(take_bridged().count(), 0);
        set_action(libc::SIGWINCH, libc::SIG_DFL).expect("reset SIGWINCH");
    }
}
