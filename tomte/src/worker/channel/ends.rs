//! The two ends of a channel over the shared mapping: [`Channel`], made before the fork, and
//! each side's [`Endpoint`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::{
    ring_layout, CAPACITY, COUNTER, HEADER_WORDS, HEARTBEAT, MAGIC, MAGIC_VALUE, MIN_RING_WORDS, STATUS,
};
use super::ring::{self, Consumer, Producer, RingLayout, RingRef};
use super::wake::{self, sleep_until, spin_until};
use super::{RecvError, SendError, Side, Stats};
use crate::sys::eventfd::EventFd;
use crate::sys::shm::SharedRegion;

/// What both ends hold: the mapping, both eventfds and the time origin of heartbeats. (Parts
/// are `pub(super)` for the tests, which reach into the mapping.)
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) region: SharedRegion,
    /// Signalled by the daemon, polled by the worker. Shared, so that a worker's stop-signal
    /// handler can keep it open for as long as it may write to it.
    pub(super) to_worker: Arc<EventFd>,
    /// Signalled by the worker, polled by the daemon.
    to_daemon: Arc<EventFd>,
    /// Heartbeats are milliseconds since this instant. `Instant` is `CLOCK_MONOTONIC`, one clock
    /// for the whole system, and the value is copied into the child by `fork`, so both
    /// processes measure from the same origin.
    epoch: Instant,
    /// Capacity of each ring in words.
    pub(super) cap: usize,
}

/// A channel between the daemon and one worker, before it is split into its two ends.
///
/// Create it before `fork`; after the fork, the parent calls [`Channel::daemon_end`] and the
/// child [`Channel::worker_end`]. Neither call allocates or makes a system call, so the child
/// may make its end right after `fork`. One channel serves one worker process: a restarted
/// worker gets a new channel.
#[derive(Debug)]
pub struct Channel {
    shared: Arc<Shared>,
}

impl Channel {
    /// The largest ring size [`Channel::new`] accepts: 1 GiB.
    pub const MAX_RING_BYTES: usize = 1 << 30;

    /// Maps a channel whose two rings hold `ring_bytes` each (rounded up to a power of two, at
    /// least 64 bytes), and creates its two eventfds.
    ///
    /// Fails with `InvalidInput` when `ring_bytes` is 0 or above [`Channel::MAX_RING_BYTES`],
    /// or with the error of `mmap` or `eventfd`.
    pub fn new(ring_bytes: usize) -> io::Result<Channel> {
        if ring_bytes == 0 || ring_bytes > Self::MAX_RING_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "worker channel ring of {ring_bytes} bytes: the size must be between 1 and {} bytes",
                    Self::MAX_RING_BYTES
                ),
            ));
        }
        let cap = ring_words(ring_bytes);
        let region = SharedRegion::new((HEADER_WORDS + 2 * cap) * 8)?;
        let words = region.words();
        words[MAGIC].store(MAGIC_VALUE, Ordering::Relaxed);
        words[CAPACITY].store(cap as u64, Ordering::Relaxed);
        let shared = Shared {
            region,
            to_worker: Arc::new(EventFd::new()?),
            to_daemon: Arc::new(EventFd::new()?),
            epoch: Instant::now(),
            cap,
        };
        Ok(Channel { shared: Arc::new(shared) })
    }

    /// Size of each ring in bytes.
    pub fn ring_bytes(&self) -> usize {
        self.shared.cap * 8
    }

    /// The largest frame either ring carries, in bytes.
    pub fn max_frame(&self) -> usize {
        ring::max_frame(self.shared.cap)
    }

    /// Whether a channel made with `ring_bytes` (a valid size, as [`Channel::new`] takes it)
    /// could ever carry a frame of `len` bytes: the error its `send` would give, if not.
    pub fn fits(len: usize, ring_bytes: usize) -> Result<(), SendError> {
        let cap = ring_words(ring_bytes);
        if len > ring::max_frame(cap) {
            return Err(ring::too_large(len, cap));
        }
        Ok(())
    }

    /// The channel's two eventfds: a forked worker that closes every descriptor that is not its
    /// own must keep these. (The mapping itself has no descriptor.)
    pub fn fds(&self) -> [BorrowedFd<'_>; 2] {
        [self.shared.to_worker.as_fd(), self.shared.to_daemon.as_fd()]
    }

    /// The daemon's end: call it in the parent after `fork`.
    pub fn daemon_end(self) -> Endpoint {
        Endpoint::new(self.shared, Side::Daemon)
    }

    /// The worker's end: call it in the child after `fork`.
    pub fn worker_end(self) -> Endpoint {
        Endpoint::new(self.shared, Side::Worker)
    }

    /// Both ends in this process, `(daemon, worker)`: for threads and tests.
    pub fn split(self) -> (Endpoint, Endpoint) {
        let daemon = Endpoint::new(Arc::clone(&self.shared), Side::Daemon);
        (daemon, Endpoint::new(self.shared, Side::Worker))
    }
}

/// One side of a [`Channel`]: sends on one ring, receives on the other.
///
/// Methods that move frames take `&mut self`: each ring has exactly one producer and one
/// consumer, and the endpoint keeps that side's private cursor.
#[derive(Debug)]
pub struct Endpoint {
    pub(super) shared: Arc<Shared>,
    side: Side,
    out: RingLayout,
    inc: RingLayout,
    producer: Producer,
    consumer: Consumer,
    /// Frames were sent or received since the last [`Endpoint::notify`].
    unflushed: bool,
    spin: Duration,
}

impl Endpoint {
    /// How long [`Endpoint::wait`] spins before it sleeps, unless [`Endpoint::set_spin`] says
    /// otherwise.
    pub const DEFAULT_SPIN: Duration = Duration::from_micros(5);

    fn new(shared: Arc<Shared>, side: Side) -> Endpoint {
        let (out, inc) = match side {
            Side::Daemon => (0, 1),
            Side::Worker => (1, 0),
        };
        let cap = shared.cap;
        Endpoint {
            shared,
            side,
            out: ring_layout(out, cap),
            inc: ring_layout(inc, cap),
            producer: Producer::default(),
            consumer: Consumer::default(),
            unflushed: false,
            spin: Self::DEFAULT_SPIN,
        }
    }

    /// Which side this end is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The largest frame [`Endpoint::send`] accepts, in bytes.
    pub fn max_frame(&self) -> usize {
        ring::max_frame(self.shared.cap)
    }

    /// Sets how long [`Endpoint::wait`] and [`Endpoint::wait_writable`] spin before they sleep
    /// (zero: sleep at once).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Copies `frame` into the outgoing ring and publishes it to the peer.
    ///
    /// Never blocks and never makes a system call: call [`Endpoint::notify`] after a batch.
    /// Fails with [`SendError::Full`] when the ring lacks room now (the frame is not sent; retry
    /// later) and [`SendError::TooLarge`] when it never will have.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        let out = RingRef::new(self.shared.region.words(), &self.out);
        self.producer.send(&out, frame)?;
        self.unflushed = true;
        Ok(())
    }

    /// Length of the next incoming frame, if there is one, without taking it.
    pub fn next_len(&mut self) -> Result<Option<usize>, RecvError> {
        let inc = RingRef::new(self.shared.region.words(), &self.inc);
        self.consumer.peek(&inc)
    }

    /// Takes the next incoming frame into `buf` (cleared first), returning its length, or
    /// `None` when the ring is empty.
    ///
    /// `buf` grows when the frame needs it; reuse one buffer so that receiving allocates only
    /// until it has reached the largest frame's size.
    pub fn try_recv(&mut self, buf: &mut Vec<u8>) -> Result<Option<usize>, RecvError> {
        let inc = RingRef::new(self.shared.region.words(), &self.inc);
        let Some(len) = self.consumer.peek(&inc)? else {
            return Ok(None);
        };
        buf.clear();
        buf.resize(len, 0);
        self.consumer.take(&inc, buf);
        self.unflushed = true;
        Ok(Some(len))
    }

    /// Takes the next incoming frame into the front of `buf`, returning its length, or `None`
    /// when the ring is empty. A frame longer than `buf` stays in the ring
    /// ([`RecvError::BufferTooSmall`]; see [`Endpoint::next_len`]).
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<Option<usize>, RecvError> {
        let inc = RingRef::new(self.shared.region.words(), &self.inc);
        let Some(len) = self.consumer.peek(&inc)? else {
            return Ok(None);
        };
        let Some(dst) = buf.get_mut(..len) else {
            return Err(RecvError::BufferTooSmall { len, capacity: buf.len() });
        };
        self.consumer.take(&inc, dst);
        self.unflushed = true;
        Ok(Some(len))
    }

    /// Tells the peer about the frames sent and the room freed since the last call: wakes it if
    /// it is sleeping for either. Call it once per batch.
    ///
    /// Costs a fence and two loads; the `write` to the peer's eventfd is made only when the peer
    /// declared it was about to sleep. Returns whether it was made.
    pub fn notify(&mut self) -> io::Result<bool> {
        if !self.unflushed {
            return Ok(false);
        }
        self.unflushed = false;
        let words = self.shared.region.words();
        let out = RingRef::new(words, &self.out);
        let inc = RingRef::new(words, &self.inc);
        wake::fence::<AtomicU64>();
        // `|`, not `||`: both sides record the sleep they are waking.
        if self.producer.peer_asleep(&out) | self.consumer.peer_asleep(&inc) {
            self.wake_out().signal()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Waits until a frame can be received or `timeout` has passed; returns whether one can.
    ///
    /// Notifies the peer first if frames moved since the last [`Endpoint::notify`]. Then spins
    /// for up to [`Endpoint::set_spin`] (a few microseconds: an answer that is on its way
    /// arrives without the cost of sleeping), then sleeps on the incoming eventfd. A corrupted
    /// ring counts as ready, so that the next receive reports it.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        self.wait_unless(timeout, || false)
    }

    /// Like [`Endpoint::wait`], but gives up early, returning `false`, once `stop()` holds:
    /// `stop` is asked before each sleep and after each wake-up that brought no frame. For
    /// wake-ups that are not frames: a signal handler that raises a flag (what `stop` reads)
    /// and then signals this end's incoming eventfd ([`Endpoint::wake_fd`]) ends the wait
    /// at once, whether it ran during the sleep or just before it.
    pub fn wait_unless(&mut self, timeout: Duration, stop: impl Fn() -> bool) -> io::Result<bool> {
        self.notify()?;
        let start = Instant::now();
        let words = self.shared.region.words();
        let inc = RingRef::new(words, &self.inc);
        let consumer = &mut self.consumer;
        let ready = |c: &mut Consumer| !matches!(c.peek(&inc), Ok(None));
        if spin_until(consumer, ready, start, self.spin.min(timeout)) {
            return Ok(true);
        }
        sleep_until(
            consumer,
            ready,
            |c: &mut Consumer| c.announce_wait(&inc),
            |c: &mut Consumer| c.withdraw_wait(&inc),
            stop,
            wake_in(&self.shared, self.side),
            start.checked_add(timeout),
        )
    }

    /// Waits until a frame of `len` bytes can be sent or `timeout` has passed; returns whether
    /// it can. Spins, then sleeps, like [`Endpoint::wait`] (and notifies first, like it); the
    /// peer's [`Endpoint::notify`] after it freed room wakes it. A corrupted ring counts as
    /// writable, so that the next send reports it.
    ///
    /// Fails with `InvalidInput`, wrapping [`SendError::TooLarge`], for a frame larger than
    /// [`Endpoint::max_frame`].
    pub fn wait_writable(&mut self, len: usize, timeout: Duration) -> io::Result<bool> {
        self.notify()?;
        let start = Instant::now();
        let words = self.shared.region.words();
        let out = RingRef::new(words, &self.out);
        let need = ring::record_words(len);
        if need > out.cap() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, ring::too_large(len, self.shared.cap)));
        }
        let producer = &mut self.producer;
        let ready = |p: &mut Producer| p.has_room(&out, need).unwrap_or(true);
        if spin_until(producer, ready, start, self.spin.min(timeout)) {
            return Ok(true);
        }
        sleep_until(
            producer,
            ready,
            |p: &mut Producer| p.announce_wait(&out, need).unwrap_or(false),
            |p: &mut Producer| p.withdraw_wait(&out),
            || false,
            wake_in(&self.shared, self.side),
            start.checked_add(timeout),
        )
    }

    /// For a daemon that sleeps in mio instead of [`Endpoint::wait`]: notifies the peer if
    /// needed, then declares this end about to sleep on its incoming eventfd. Returns `false`
    /// (and withdraws the declaration) when a frame is already waiting, in which case the
    /// caller must not block before receiving it.
    ///
    /// Call [`Endpoint::finish_sleep`] after the poll returns.
    pub fn prepare_sleep(&mut self) -> io::Result<bool> {
        self.notify()?;
        let inc = RingRef::new(self.shared.region.words(), &self.inc);
        Ok(self.consumer.announce_wait(&inc))
    }

    /// Like [`Endpoint::prepare_sleep`], for a daemon whose send met [`SendError::Full`]: also
    /// declares that this end waits for room for a frame of `len` bytes, so that the peer's
    /// [`Endpoint::notify`] after it consumed frames wakes the poll. Returns `false` (nothing
    /// declared) when room or a frame is already there: do not block then.
    ///
    /// Fails with `InvalidInput`, wrapping [`SendError::TooLarge`], for a frame larger than
    /// [`Endpoint::max_frame`].
    pub fn prepare_sleep_for_room(&mut self, len: usize) -> io::Result<bool> {
        let need = ring::record_words(len);
        if need > self.shared.cap as u64 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, ring::too_large(len, self.shared.cap)));
        }
        if !self.prepare_sleep()? {
            return Ok(false);
        }
        let out = RingRef::new(self.shared.region.words(), &self.out);
        if self.producer.announce_wait(&out, need).unwrap_or(false) {
            return Ok(true);
        }
        self.finish_sleep()?;
        Ok(false)
    }

    /// Ends a sleep begun with [`Endpoint::prepare_sleep`] or
    /// [`Endpoint::prepare_sleep_for_room`]: withdraws the declarations and resets the incoming
    /// eventfd (so that an edge-triggered poller sees the next wake-up). Receive until `None`
    /// (and retry a refused send) afterwards.
    pub fn finish_sleep(&mut self) -> io::Result<()> {
        self.finish_sleep_drain(true)
    }

    /// As [`Endpoint::finish_sleep`], reading the eventfd only when `woken` (the poll reported
    /// it): a wake-up that lands after the poll is then reported by the next poll, once.
    pub fn finish_sleep_drain(&mut self, woken: bool) -> io::Result<()> {
        let words = self.shared.region.words();
        let inc = RingRef::new(words, &self.inc);
        let out = RingRef::new(words, &self.out);
        self.consumer.withdraw_wait(&inc);
        self.producer.withdraw_wait(&out);
        if woken {
            wake_in(&self.shared, self.side).drain()?;
        }
        Ok(())
    }

    /// The incoming eventfd, readable when the peer has woken this end: register it with mio
    /// for readable interest.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        wake_in(&self.shared, self.side).as_fd()
    }

    /// The incoming eventfd itself, shared: signalling it wakes this end's
    /// [`Endpoint::wait_unless`] (which then asks its `stop`).
    pub(crate) fn wake_eventfd(&self) -> Arc<EventFd> {
        Arc::clone(match self.side {
            Side::Daemon => &self.shared.to_daemon,
            Side::Worker => &self.shared.to_worker,
        })
    }

    /// Both eventfds of the channel (see [`Channel::fds`]).
    pub fn fds(&self) -> [BorrowedFd<'_>; 2] {
        [self.shared.to_worker.as_fd(), self.shared.to_daemon.as_fd()]
    }

    /// Stores the status word (its meaning is the caller's, e.g. the worker's state).
    pub fn set_status(&self, status: u32) {
        self.shared.region.words()[STATUS].store(status.into(), Ordering::Release);
    }

    /// The status word last stored by either side (0 before any).
    pub fn status(&self) -> u32 {
        let word = self.shared.region.words()[STATUS].load(Ordering::Acquire);
        // Only `set_status` writes it, with a u32; a peer that wrote more is truncated.
        word as u32
    }

    /// Stores the counter word (the worker's iteration count, for the daemon to read).
    pub fn set_counter(&self, value: u64) {
        self.shared.region.words()[COUNTER].store(value, Ordering::Relaxed);
    }

    /// The counter word last stored (0 before any).
    pub fn counter(&self) -> u64 {
        self.shared.region.words()[COUNTER].load(Ordering::Relaxed)
    }

    /// Records a heartbeat now.
    pub fn beat(&self) {
        let ms = self.shared.epoch.elapsed().as_millis();
        let ms = u64::try_from(ms).unwrap_or(u64::MAX - 1);
        self.shared.region.words()[HEARTBEAT].store(ms + 1, Ordering::Relaxed);
    }

    /// When the last heartbeat was recorded, as time since the channel was created; `None`
    /// before the first [`Endpoint::beat`]. Millisecond resolution.
    pub fn heartbeat(&self) -> Option<Duration> {
        match self.shared.region.words()[HEARTBEAT].load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms - 1)),
        }
    }

    /// How long ago the last heartbeat was recorded; `None` before the first one.
    pub fn heartbeat_age(&self) -> Option<Duration> {
        let at = self.heartbeat()?;
        Some(self.shared.epoch.elapsed().saturating_sub(at))
    }

    /// Frame counters of both directions.
    pub fn stats(&self) -> Stats {
        let words = self.shared.region.words();
        let out = RingRef::new(words, &self.out);
        let inc = RingRef::new(words, &self.inc);
        Stats {
            sent: out.sent.load(Ordering::Relaxed),
            received: inc.received.load(Ordering::Relaxed),
            peer_sent: inc.sent.load(Ordering::Relaxed),
            peer_received: out.received.load(Ordering::Relaxed),
        }
    }

    /// Bytes the two rings hold now, `[outgoing, incoming]` (frames written and not yet
    /// taken, their headers and padding included): a read of four words, for `/metrics`.
    pub fn ring_used(&self) -> [u64; 2] {
        let words = self.shared.region.words();
        let used = |layout| {
            let r = RingRef::new(words, layout);
            r.tail.load(Ordering::Relaxed).saturating_sub(r.head.load(Ordering::Relaxed)).min(r.cap()) * 8
        };
        [used(&self.out), used(&self.inc)]
    }

    /// The eventfd this end signals to wake the peer.
    fn wake_out(&self) -> &EventFd {
        match self.side {
            Side::Daemon => &self.shared.to_worker,
            Side::Worker => &self.shared.to_daemon,
        }
    }
}

/// The eventfd `side` sleeps on.
fn wake_in(shared: &Shared, side: Side) -> &EventFd {
    match side {
        Side::Daemon => &shared.to_daemon,
        Side::Worker => &shared.to_worker,
    }
}

impl AsFd for Endpoint {
    /// The incoming eventfd (see [`Endpoint::wake_fd`]).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.wake_fd()
    }
}

impl AsRawFd for Endpoint {
    /// The incoming eventfd, for `mio::unix::SourceFd`.
    fn as_raw_fd(&self) -> RawFd {
        wake_in(&self.shared, self.side).as_raw_fd()
    }
}

/// The words of each ring of a channel asked for with `ring_bytes`: a power of two, at least
/// `MIN_RING_WORDS`.
fn ring_words(ring_bytes: usize) -> usize {
    ring_bytes.div_ceil(8).next_power_of_two().max(MIN_RING_WORDS)
}
