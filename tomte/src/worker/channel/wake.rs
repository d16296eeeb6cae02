//! Wake-ups (see "Wake-ups" and "Protocol and memory ordering" in the module docs): the sleep
//! counters each side keeps in the mapping, the fence between publishing and looking at the
//! peer's counter, and the spin-then-sleep waits on an eventfd that [`super::Endpoint`] makes.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::ring::Word;
use crate::sys::eventfd::EventFd;

/// A `SeqCst` fence of `W`'s memory model: what a side issues between publishing its index
/// and looking at the peer's sleep counter (`peer_asleep`), and what `Sleeps::announce`
/// issues between raising the counter and looking at the ring again.
#[inline]
pub(super) fn fence<W: Word>() {
    W::fence_seqcst();
}

/// One side's sleeps on one ring, counted in a word that only this side writes: odd while
/// the side may be asleep, even once it is awake. (A counter rather than a flag that the
/// waker clears: a word with a single writer needs no read-modify-write, and the waker can
/// tell one sleep from the next.)
#[derive(Debug, Default)]
pub(super) struct Sleeps {
    count: u64,
}

impl Sleeps {
    /// Marks the side as about to sleep; the caller then checks the ring again.
    pub(super) fn announce<W: Word>(&mut self, word: &W) {
        if self.count % 2 == 0 {
            self.count += 1;
        }
        word.store(self.count, Relaxed);
        W::fence_seqcst();
    }

    /// Marks the side as awake (again).
    pub(super) fn withdraw<W: Word>(&mut self, word: &W) {
        if self.count % 2 == 1 {
            self.count += 1;
            word.store(self.count, Relaxed);
        }
    }
}

/// The waker's memory of the peer's last sleep it woke, so that a sleep costs the waker
/// one eventfd write however many batches it sends before the peer is up.
#[derive(Debug, Default)]
pub(super) struct Woken {
    last: u64,
}

impl Woken {
    /// After a [`fence`]: whether the peer is in a sleep not woken yet (now it is).
    #[inline]
    pub(super) fn check<W: Word>(&mut self, word: &W) -> bool {
        let count = word.load(Relaxed);
        if count % 2 == 1 && count != self.last {
            self.last = count;
            return true;
        }
        false
    }
}

/// How many polls of the ring between two looks at the clock while spinning.
const SPIN_BATCH: u32 = 32;

/// Polls `ready(state)` until it holds (true) or `spin` has passed since `start` (false).
pub(super) fn spin_until<S>(
    state: &mut S,
    mut ready: impl FnMut(&mut S) -> bool,
    start: Instant,
    spin: Duration,
) -> bool {
    loop {
        for _ in 0..SPIN_BATCH {
            if ready(state) {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= spin {
            return ready(state);
        }
    }
}

/// Sleeps on `fd` until `ready(state)` or `deadline` (`None`: never), following the sleep
/// protocol: `announce` declares the sleep and re-checks (false: no need to sleep), `withdraw`
/// ends it.
pub(super) fn sleep_until<S>(
    state: &mut S,
    mut ready: impl FnMut(&mut S) -> bool,
    mut announce: impl FnMut(&mut S) -> bool,
    mut withdraw: impl FnMut(&mut S),
    stop: impl Fn() -> bool,
    fd: &EventFd,
    deadline: Option<Instant>,
) -> io::Result<bool> {
    loop {
        if !announce(state) {
            return Ok(true);
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // `stop` is asked after the announcement: whatever raises it before this point is seen
        // here; whatever raises it later also signals `fd`, which ends the sleep below.
        if left == Some(Duration::ZERO) || stop() {
            withdraw(state);
            return Ok(ready(state));
        }
        let slept = fd.wait(left);
        withdraw(state);
        slept?;
        fd.drain()?;
        if ready(state) {
            return Ok(true);
        }
        if stop() {
            return Ok(false);
        }
    }
}
