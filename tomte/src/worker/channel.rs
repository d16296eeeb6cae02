//! The shared-memory channel between the daemon and one forked worker process.
//!
//! # Anatomy
//!
//! A [`Channel`] is made by the daemon *before* it forks the worker: one shared anonymous
//! mapping ([`SharedRegion`]) and two eventfds. After the fork each side turns its copy into an
//! [`Endpoint`] ([`Channel::daemon_end`] in the parent, [`Channel::worker_end`] in the child).
//! The mapping holds:
//!
//! * a header: a status word and a heartbeat timestamp (both written by whoever wants, usually
//!   the worker), frame counters, and one sleep counter per ring and side;
//! * two single-producer single-consumer rings of length-prefixed frames, daemon→worker and
//!   worker→daemon.
//!
//! [`Endpoint::send`] copies a frame into the outgoing ring and publishes it; it never blocks
//! and never drops: a ring without room is [`SendError::Full`] (back-pressure for the caller to
//! act on), a frame the ring could never hold is [`SendError::TooLarge`].
//! [`Endpoint::try_recv`] takes the next frame out of the incoming ring, in order and intact.
//!
//! # Wake-ups
//!
//! Frames cross without any system call. A receiver that finds its ring empty spins for a few
//! microseconds ([`Endpoint::set_spin`]) and then sleeps on its incoming eventfd
//! ([`Endpoint::wait`]), after declaring so in its sleep counter. A sender calls
//! [`Endpoint::notify`] once per *batch* of sends (and receives: a receiver's notify tells a
//! sender blocked in [`Endpoint::wait_writable`] that room was freed): it costs one fence and
//! two loads, and makes the `write` to the peer's eventfd only when the peer declared a sleep
//! that this side has not woken yet, so at most once per sleep. `wait` and
//! `wait_writable` notify first themselves, so a batch is never left unannounced by a side that
//! goes to sleep.
//!
//! The daemon does not call `wait`: it registers each endpoint's incoming eventfd with mio
//! (`mio::unix::SourceFd(&endpoint.as_raw_fd())`, readable interest), calls
//! [`Endpoint::prepare_sleep`] before it polls, and [`Endpoint::finish_sleep`] when it wakes.
//!
//! # Protocol and memory ordering
//!
//! Ring positions are word counts that only grow (`tail` written by the producer, `head` by the
//! consumer; the slot is `position % capacity`). The producer writes a record's words, then
//! stores `tail` with `Release`; the consumer loads `tail` with `Acquire`, reads the record, and
//! stores `head` with `Release`; the producer loads `head` with `Acquire` before it reuses
//! space. Each side caches the other's index and reloads it only when the cached value says
//! "empty" or "full", so the two cache lines do not bounce on every frame.
//!
//! No wake-up is lost. Each side counts its sleeps on each ring in a word only it writes (odd:
//! asleep or about to be). A side about to sleep makes its count odd, issues a `SeqCst` fence
//! and checks the ring again; a side that published stores its index, issues a `SeqCst` fence
//! (in `notify`) and loads the peer's count. Of the two fences one comes first, so either the
//! sleeper sees the data or the notifier sees the odd count, and then writes the eventfd, whose
//! counter keeps the wake-up until it is read. The notifier remembers which count it woke, so a
//! sleep costs it one `write`; no word is written by both sides, so no read-modify-write is
//! needed. (The first design let the waker clear a flag with `swap`; loom could not model a
//! read-modify-write combined with `SeqCst` fences soundly — it reports an outcome that C++20
//! forbids, on a 3-line litmus test — so the single-writer counter also keeps the model
//! check meaningful.)
//!
//! The ring logic is written once over a small `Word` trait, implemented for the std atomics
//! (which the mapping is made of) and, under `--cfg loom`, for loom's: the `loom` tests below
//! model-check a producer and a consumer thread, with the same sleep/notify protocol over loom's
//! `Notify` (standing in for the eventfds), over a 4-word ring in heap memory: every
//! interleaving with up to 3 preemptions (`LOOM_MAX_PREEMPTIONS` changes that), checking each
//! frame's content and that no wake-up is lost (loom reports a deadlock). About 90 s:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p tomte --lib --release loom
//! ```
//!
//! Removing the fence on either side of the sleep protocol, or weakening the `tail` store to
//! `Relaxed`, makes the model fail. Weakening the consumer's `head` store does not: the
//! hazard there (the producer overwriting words the consumer has not read yet) needs a load to
//! read from a later store, which loom does not model. The `Release` store stays, by argument.
//!
//! # Memory layout
//!
//! All offsets are in 64-bit words; the mapping is nothing but `AtomicU64`s (see
//! [`crate::sys::shm`] for why). Each group below sits on its own 128-byte line, so the
//! producer's and consumer's hot words never share a cache line (or an adjacent-line pair).
//!
//! | words  | content                                                         | written by |
//! |--------|-----------------------------------------------------------------|------------|
//! | 0, 1   | magic `"tomtech1"`, ring capacity in words                      | creator    |
//! | 16, 17 | status (a `u32` in a word), heartbeat (ms since creation, +1)   | either     |
//! | 32, 33 | daemon→worker `tail`, frames sent                               | daemon     |
//! | 48, 49 | daemon→worker `head`, frames received                           | worker     |
//! | 64     | daemon→worker: worker's sleeps waiting for frames (odd: asleep) | worker     |
//! | 65     | daemon→worker: daemon's sleeps waiting for room                 | daemon     |
//! | 80, 81 | worker→daemon `tail`, frames sent                               | worker     |
//! | 96, 97 | worker→daemon `head`, frames received                           | daemon     |
//! | 112    | worker→daemon: daemon's sleeps waiting for frames               | daemon     |
//! | 113    | worker→daemon: worker's sleeps waiting for room                 | worker     |
//! | 128 .. | daemon→worker ring data (`capacity` words, a power of two)      | daemon     |
//! | .. end | worker→daemon ring data (`capacity` words)                      | worker     |
//!
//! A frame is one header word — payload length in the low 32 bits, the low 32 bits of the
//! frame's own position in the high ones (a cheap check that both sides agree) — followed by
//! the payload in `ceil(len / 8)` words, zero-padded; a frame may wrap around the end of the
//! ring. A ring of `capacity` words therefore carries frames of at most `(capacity - 1) * 8`
//! bytes, and a 64-byte frame takes 72 bytes.
//!
//! The peer is another process and may be buggy or half-dead: every index and header read from
//! the mapping is checked, and nonsense is reported as [`RecvError::Corrupt`] /
//! [`SendError::Corrupt`], never a panic or an out-of-bounds access.
//!
//! # Performance
//!
//! Measured on the 2-core development machine (otherwise idle) by the ignored tests at the
//! bottom of this file, between two real processes:
//!
//! ```text
//! cargo test -p tomte --release --lib channel::tests::perf -- --ignored --nocapture --test-threads 1
//! ```
//!
//! * round trip of an 8-byte frame, both sides spinning: 120–125 ns, against 82–110 ns for a
//!   hand-written ping-pong on two bare shared atomics in the same test; without spinning
//!   (every wait may sleep on the eventfd) about 3.4 µs;
//! * one way, 64-byte frames, a notify every 64 frames: 61–67 M frames/s (15–16 ns a frame,
//!   about 4 GB/s of payload).
//!
//! With another process busy on one of the two cores, both sides of a ping-pong share the
//! other and every figure collapses (10 µs for the bare atomics): measure on an idle machine.
//!
//! # Example
//!
//! In one process (two threads) through [`Channel::split`]; a daemon does the same across
//! `fork` with [`Channel::daemon_end`] and [`Channel::worker_end`].
//!
//! ```
//! use std::time::Duration;
//! use tomte::worker::channel::Channel;
//!
//! let (mut daemon, mut worker) = Channel::new(4096)?.split();
//! let echo = std::thread::spawn(move || {
//!     let mut buf = Vec::with_capacity(64);
//!     while worker.wait(Duration::from_secs(5)).unwrap() {
//!         let Some(_len) = worker.try_recv(&mut buf).unwrap() else { continue };
//!         if buf == b"bye" {
//!             break;
//!         }
//!         worker.send(&buf).unwrap();
//!         worker.notify().unwrap();
//!     }
//! });
//! daemon.send(b"hello")?;
//! daemon.notify()?;
//! let mut reply = Vec::new();
//! assert!(daemon.wait(Duration::from_secs(5))?);
//! assert_eq!(daemon.try_recv(&mut reply)?, Some(5));
//! assert_eq!(reply, b"hello");
//! daemon.send(b"bye")?;
//! daemon.notify()?;
//! echo.join().unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sys::eventfd::EventFd;
use crate::sys::shm::SharedRegion;

use ring::{Consumer, Producer, RingLayout, RingRef};

/// Why a frame was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The outgoing ring has no room for the frame now: the peer has not consumed enough.
    /// Back-pressure: keep the frame, and retry once the peer has caught up
    /// ([`Endpoint::wait_writable`]), or give up on the peer.
    #[error("worker channel ring full: the peer has not consumed enough frames yet")]
    Full,
    /// The frame is larger than the ring could ever hold.
    #[error(
        "frame of {len} bytes can never be sent: a worker channel ring of {ring} bytes carries \
         frames of at most {max} bytes"
    )]
    TooLarge {
        /// The frame's length in bytes.
        len: usize,
        /// The largest frame this ring carries, in bytes.
        max: usize,
        /// The ring's size in bytes.
        ring: usize,
    },
    /// The peer wrote an impossible index into the shared header.
    #[error("worker channel corrupted by the peer: {0}")]
    Corrupt(&'static str),
}

/// Why a frame could not be received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// [`Endpoint::recv_into`] was given a buffer smaller than the next frame, which stays in
    /// the ring.
    #[error("frame of {len} bytes does not fit a buffer of {capacity} bytes")]
    BufferTooSmall {
        /// The next frame's length.
        len: usize,
        /// The buffer's length.
        capacity: usize,
    },
    /// The peer wrote an impossible index or frame header into the shared mapping.
    #[error("worker channel corrupted by the peer: {0}")]
    Corrupt(&'static str),
}

/// Which process an [`Endpoint`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The supervising daemon: sends on daemon→worker, receives on worker→daemon.
    Daemon,
    /// The forked worker: sends on worker→daemon, receives on daemon→worker.
    Worker,
}

/// Frame counters of one endpoint, read from the shared header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Frames this end has sent.
    pub sent: u64,
    /// Frames this end has received.
    pub received: u64,
    /// Frames the peer has sent to this end (`peer_sent - received` are waiting here).
    pub peer_sent: u64,
    /// Frames of this end's the peer has received (`sent - peer_received` are in flight).
    pub peer_received: u64,
}

/// Words per 128-byte group in the header.
const LINE: usize = 16;
/// Header size in words: eight groups.
const HEADER_WORDS: usize = 8 * LINE;
const MAGIC: usize = 0;
const CAPACITY: usize = 1;
const STATUS: usize = LINE;
const HEARTBEAT: usize = LINE + 1;
const COUNTER: usize = LINE + 2;
/// `"tomtech1"`: marks a channel mapping in a memory dump.
const MAGIC_VALUE: u64 = u64::from_be_bytes(*b"tomtech1");
/// Smallest ring: 8 words (64 bytes).
const MIN_RING_WORDS: usize = 8;

/// Layout of ring `index` (0: daemon→worker, 1: worker→daemon) in a mapping whose rings have
/// `cap` words each.
fn ring_layout(index: usize, cap: usize) -> RingLayout {
    let base = 2 * LINE + index * 3 * LINE;
    RingLayout {
        tail: base,
        sent: base + 1,
        head: base + LINE,
        received: base + LINE + 1,
        rx_sleeps: base + 2 * LINE,
        tx_sleeps: base + 2 * LINE + 1,
        data: HEADER_WORDS + index * cap,
        cap,
    }
}

/// What both ends hold: the mapping, both eventfds and the time origin of heartbeats.
#[derive(Debug)]
struct Shared {
    region: SharedRegion,
    /// Signalled by the daemon, polled by the worker. Shared, so that a worker's stop-signal
    /// handler can keep it open for as long as it may write to it.
    to_worker: Arc<EventFd>,
    /// Signalled by the worker, polled by the daemon.
    to_daemon: Arc<EventFd>,
    /// Heartbeats are milliseconds since this instant. `Instant` is `CLOCK_MONOTONIC`, one clock
    /// for the whole system, and the value is copied into the child by `fork`, so both
    /// processes measure from the same origin.
    epoch: Instant,
    /// Capacity of each ring in words.
    cap: usize,
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
        let cap = ring_bytes.div_ceil(8).next_power_of_two().max(MIN_RING_WORDS);
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
    shared: Arc<Shared>,
    side: Side,
    out: RingLayout,
    inc: RingLayout,
    producer: Producer,
    consumer: Consumer,
    /// Frames were sent or received since the last [`Endpoint::notify`].
    unflushed: bool,
    spin: Duration,
}

/// How many polls of the ring between two looks at the clock while spinning.
const SPIN_BATCH: u32 = 32;

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
        ring::fence::<AtomicU64>();
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

/// Polls `ready(state)` until it holds (true) or `spin` has passed since `start` (false).
fn spin_until<S>(state: &mut S, mut ready: impl FnMut(&mut S) -> bool, start: Instant, spin: Duration) -> bool {
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
fn sleep_until<S>(
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

/// The single-producer single-consumer ring, written over [`ring::Word`] so that the same code
/// runs on the shared mapping (std atomics) and under loom (loom atomics).
mod ring {
    // `cfg(loom)` is set by hand (`RUSTFLAGS="--cfg loom"`) for the model checks. The crate
    // takes its lints from the workspace, where the cfg is not declared, so it is allowed here.
    #![allow(unexpected_cfgs)]

    use std::sync::atomic::Ordering::{self, Acquire, Relaxed, Release};

    use super::{RecvError, SendError};

    /// A 64-bit atomic word: std's, or loom's in model checks.
    pub(super) trait Word {
        fn load(&self, order: Ordering) -> u64;
        fn store(&self, value: u64, order: Ordering);
        /// A `SeqCst` fence of the same memory model.
        fn fence_seqcst();
    }

    impl Word for std::sync::atomic::AtomicU64 {
        #[inline(always)]
        fn load(&self, order: Ordering) -> u64 {
            self.load(order)
        }
        #[inline(always)]
        fn store(&self, value: u64, order: Ordering) {
            self.store(value, order);
        }
        #[inline(always)]
        fn fence_seqcst() {
            std::sync::atomic::fence(Ordering::SeqCst);
        }
    }

    #[cfg(all(test, loom))]
    impl Word for loom::sync::atomic::AtomicU64 {
        fn load(&self, order: Ordering) -> u64 {
            self.load(order)
        }
        fn store(&self, value: u64, order: Ordering) {
            self.store(value, order);
        }
        fn fence_seqcst() {
            loom::sync::atomic::fence(Ordering::SeqCst);
        }
    }

    /// Where a ring's words are, as indices into the word array.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct RingLayout {
        pub tail: usize,
        pub sent: usize,
        pub head: usize,
        pub received: usize,
        /// The consumer's sleeps waiting for frames (odd: asleep).
        pub rx_sleeps: usize,
        /// The producer's sleeps waiting for room (odd: asleep).
        pub tx_sleeps: usize,
        pub data: usize,
        /// Data words: a power of two.
        pub cap: usize,
    }

    /// A ring's words, borrowed.
    pub(super) struct RingRef<'a, W> {
        pub tail: &'a W,
        pub sent: &'a W,
        pub head: &'a W,
        pub received: &'a W,
        pub rx_sleeps: &'a W,
        pub tx_sleeps: &'a W,
        data: &'a [W],
    }

    impl<'a, W: Word> RingRef<'a, W> {
        /// Panics when `layout` does not fit in `words` (a bug in the layout, not in the peer).
        #[inline]
        pub fn new(words: &'a [W], layout: &RingLayout) -> Self {
            debug_assert!(layout.cap.is_power_of_two());
            RingRef {
                tail: &words[layout.tail],
                sent: &words[layout.sent],
                head: &words[layout.head],
                received: &words[layout.received],
                rx_sleeps: &words[layout.rx_sleeps],
                tx_sleeps: &words[layout.tx_sleeps],
                data: &words[layout.data..layout.data + layout.cap],
            }
        }

        /// Capacity in words.
        #[inline]
        pub fn cap(&self) -> u64 {
            self.data.len() as u64
        }

        /// The `n` words from position `pos` on, as the part before the end of the ring and the
        /// part wrapped to its start. `n` must not exceed the capacity.
        #[inline]
        fn span(&self, pos: u64, n: usize) -> (&'a [W], &'a [W]) {
            let data = self.data;
            let start = (pos & (self.cap() - 1)) as usize;
            let first = n.min(data.len() - start);
            (&data[start..start + first], &data[..n - first])
        }
    }

    /// Words taken by a frame of `len` bytes: the header and the padded payload.
    #[inline]
    pub(super) fn record_words(len: usize) -> u64 {
        1 + (len as u64).div_ceil(8)
    }

    /// Largest payload of a ring of `cap` words.
    pub(super) fn max_frame(cap: usize) -> usize {
        (cap - 1) * 8
    }

    pub(super) fn too_large(len: usize, cap: usize) -> SendError {
        SendError::TooLarge { len, max: max_frame(cap), ring: cap * 8 }
    }

    /// A frame's header word: its length, and the low half of its position as a check.
    #[inline]
    fn header(pos: u64, len: usize) -> u64 {
        (pos << 32) | len as u64
    }

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
    struct Sleeps {
        count: u64,
    }

    impl Sleeps {
        /// Marks the side as about to sleep; the caller then checks the ring again.
        fn announce<W: Word>(&mut self, word: &W) {
            if self.count % 2 == 0 {
                self.count += 1;
            }
            word.store(self.count, Relaxed);
            W::fence_seqcst();
        }

        /// Marks the side as awake (again).
        fn withdraw<W: Word>(&mut self, word: &W) {
            if self.count % 2 == 1 {
                self.count += 1;
                word.store(self.count, Relaxed);
            }
        }
    }

    /// The waker's memory of the peer's last sleep it woke, so that a sleep costs the waker
    /// one eventfd write however many batches it sends before the peer is up.
    #[derive(Debug, Default)]
    struct Woken {
        last: u64,
    }

    impl Woken {
        /// After a [`fence`]: whether the peer is in a sleep not woken yet (now it is).
        #[inline]
        fn check<W: Word>(&mut self, word: &W) -> bool {
            let count = word.load(Relaxed);
            if count % 2 == 1 && count != self.last {
                self.last = count;
                return true;
            }
            false
        }
    }

    /// The producer's private cursor.
    #[derive(Debug, Default)]
    pub(super) struct Producer {
        tail: u64,
        /// The consumer's `head` as last loaded: the room is at least `cap - (tail - head)`.
        head_cache: u64,
        sent: u64,
        /// This side's sleeps waiting for room.
        sleeps: Sleeps,
        /// The consumer's sleeps waiting for frames that this side woke.
        woken: Woken,
    }

    impl Producer {
        pub fn send<W: Word>(&mut self, r: &RingRef<'_, W>, frame: &[u8]) -> Result<(), SendError> {
            let need = record_words(frame.len());
            if need > r.cap() {
                return Err(too_large(frame.len(), r.data.len()));
            }
            if !self.has_room(r, need)? {
                return Err(SendError::Full);
            }
            let (first, wrapped) = r.span(self.tail, need as usize);
            let mut slots = first.iter().chain(wrapped);
            let mut chunks = frame.chunks_exact(8);
            if let Some(slot) = slots.next() {
                slot.store(header(self.tail, frame.len()), Relaxed);
            }
            // `chunks` first: `zip` must not pull a slot it then has no chunk for.
            for (chunk, slot) in chunks.by_ref().zip(slots.by_ref()) {
                let word = u64::from_ne_bytes(chunk.try_into().expect("chunks of 8 bytes"));
                slot.store(word, Relaxed);
            }
            let rest = chunks.remainder();
            if !rest.is_empty() {
                let mut last = [0u8; 8];
                last[..rest.len()].copy_from_slice(rest);
                if let Some(slot) = slots.next() {
                    slot.store(u64::from_ne_bytes(last), Relaxed);
                }
            }
            self.tail += need;
            r.tail.store(self.tail, Release);
            self.sent += 1;
            r.sent.store(self.sent, Relaxed);
            Ok(())
        }

        /// Whether `need` words are free, reloading the consumer's `head` only when the cached
        /// one says they are not.
        #[inline]
        pub fn has_room<W: Word>(&mut self, r: &RingRef<'_, W>, need: u64) -> Result<bool, SendError> {
            let cap = r.cap();
            if cap - (self.tail - self.head_cache) >= need {
                return Ok(true);
            }
            let head = r.head.load(Acquire);
            let used = self.tail.wrapping_sub(head);
            if used > cap || head < self.head_cache {
                return Err(SendError::Corrupt("consumer index out of range"));
            }
            self.head_cache = head;
            Ok(cap - used >= need)
        }

        /// Declares the producer about to sleep until `need` words are free; returns false
        /// (declaration withdrawn) when they already are.
        pub fn announce_wait<W: Word>(&mut self, r: &RingRef<'_, W>, need: u64) -> Result<bool, SendError> {
            self.sleeps.announce(r.tx_sleeps);
            match self.has_room(r, need) {
                Ok(false) => Ok(true),
                other => {
                    self.sleeps.withdraw(r.tx_sleeps);
                    other.map(|_| false)
                }
            }
        }

        /// Ends a sleep declared by [`Producer::announce_wait`] (no-op without one).
        pub fn withdraw_wait<W: Word>(&mut self, r: &RingRef<'_, W>) {
            self.sleeps.withdraw(r.tx_sleeps);
        }

        /// After a [`fence`] that follows this side's latest `send`: whether the consumer is
        /// asleep waiting for frames and not woken yet (the caller wakes it).
        #[inline]
        pub fn peer_asleep<W: Word>(&mut self, r: &RingRef<'_, W>) -> bool {
            self.woken.check(r.rx_sleeps)
        }
    }

    /// The consumer's private cursor.
    #[derive(Debug, Default)]
    pub(super) struct Consumer {
        head: u64,
        /// The producer's `tail` as last loaded: frames up to it are readable.
        tail_cache: u64,
        received: u64,
        /// This side's sleeps waiting for frames.
        sleeps: Sleeps,
        /// The producer's sleeps waiting for room that this side woke.
        woken: Woken,
    }

    impl Consumer {
        /// The length of the next frame, if one is published; checks what the peer wrote.
        #[inline]
        pub fn peek<W: Word>(&mut self, r: &RingRef<'_, W>) -> Result<Option<usize>, RecvError> {
            if self.head == self.tail_cache {
                let tail = r.tail.load(Acquire);
                if tail.wrapping_sub(self.head) > r.cap() || tail < self.tail_cache {
                    return Err(RecvError::Corrupt("producer index out of range"));
                }
                self.tail_cache = tail;
                if tail == self.head {
                    return Ok(None);
                }
            }
            let (first, _) = r.span(self.head, 1);
            let header = first[0].load(Relaxed);
            let len = (header & u64::from(u32::MAX)) as usize;
            if header >> 32 != self.head & u64::from(u32::MAX) {
                return Err(RecvError::Corrupt("frame header out of place"));
            }
            if record_words(len) > self.tail_cache - self.head {
                return Err(RecvError::Corrupt("frame longer than the published data"));
            }
            Ok(Some(len))
        }

        /// Copies the frame [`Consumer::peek`] found (`out.len()` is its length) and frees its
        /// words.
        #[inline]
        pub fn take<W: Word>(&mut self, r: &RingRef<'_, W>, out: &mut [u8]) {
            let need = record_words(out.len());
            let (first, wrapped) = r.span(self.head + 1, need as usize - 1);
            let mut slots = first.iter().chain(wrapped);
            let mut chunks = out.chunks_exact_mut(8);
            for (chunk, slot) in chunks.by_ref().zip(slots.by_ref()) {
                chunk.copy_from_slice(&slot.load(Relaxed).to_ne_bytes());
            }
            let rest = chunks.into_remainder();
            if !rest.is_empty() {
                if let Some(slot) = slots.next() {
                    let last = slot.load(Relaxed).to_ne_bytes();
                    rest.copy_from_slice(&last[..rest.len()]);
                }
            }
            self.head += need;
            r.head.store(self.head, Release);
            self.received += 1;
            r.received.store(self.received, Relaxed);
        }

        /// Declares the consumer about to sleep until a frame arrives; returns false
        /// (declaration withdrawn) when one is already there or the ring is corrupted.
        pub fn announce_wait<W: Word>(&mut self, r: &RingRef<'_, W>) -> bool {
            self.sleeps.announce(r.rx_sleeps);
            if let Ok(None) = self.peek(r) {
                return true;
            }
            self.sleeps.withdraw(r.rx_sleeps);
            false
        }

        /// Ends a sleep declared by [`Consumer::announce_wait`] (no-op without one).
        pub fn withdraw_wait<W: Word>(&mut self, r: &RingRef<'_, W>) {
            self.sleeps.withdraw(r.rx_sleeps);
        }

        /// After a [`fence`] that follows this side's latest `take`: whether the producer is
        /// asleep waiting for room and not woken yet (the caller wakes it).
        #[inline]
        pub fn peer_asleep<W: Word>(&mut self, r: &RingRef<'_, W>) -> bool {
            self.woken.check(r.tx_sleeps)
        }
    }
}

#[cfg(test)]
// `cfg(loom)`: see the `ring` module.
#[allow(unexpected_cfgs)]
mod tests {
    use super::*;
    use crate::sys::shm::fork_test::fork_child;

    use std::sync::atomic::AtomicU64;

    /// Long enough for any healthy exchange here; a hang fails instead of blocking the run.
    const PATIENCE: Duration = Duration::from_secs(20);

    /// Length of test frame `seq`: empty, tiny, word-sized, odd, a kilobyte, and now and then
    /// `max` (a frame that fills the ring alone), so that frames wrap at every offset.
    fn frame_len(seq: u32, max: usize) -> usize {
        let len = match seq % 8 {
            0 => 0,
            1 => 1,
            2 => 7,
            3 => 8,
            4 => 64,
            5 => (seq as usize * 7919) % 600,
            6 => 9,
            _ if seq % 64 == 7 => max,
            _ => 1000 + seq as usize % 100,
        };
        len.min(max)
    }

    /// Fills `buf` with the content of test frame `seq` (its number first, then a pattern that
    /// differs at every offset and from frame to frame).
    fn fill(seq: u32, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seq as usize).wrapping_mul(31).wrapping_add(i * 7) as u8 ^ (i >> 8) as u8;
        }
        let n = buf.len().min(4);
        buf[..n].copy_from_slice(&seq.to_le_bytes()[..n]);
    }

    /// Whether `got` is test frame `seq` (`scratch` is a buffer of at least `max` bytes).
    fn is_frame(seq: u32, max: usize, got: &[u8], scratch: &mut [u8]) -> bool {
        let expected = &mut scratch[..frame_len(seq, max)];
        fill(seq, expected);
        got == expected
    }

    #[test]
    fn sizes_are_checked_and_rounded() {
        for bad in [0, Channel::MAX_RING_BYTES + 1] {
            let err = Channel::new(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        }
        let channel = Channel::new(100).unwrap();
        assert_eq!(channel.ring_bytes(), 128);
        assert_eq!(channel.max_frame(), 120);
        assert_eq!(Channel::new(1).unwrap().ring_bytes(), 64);
    }

    #[test]
    fn a_full_ring_is_reported_to_the_sender() {
        // 256 bytes = 32 words; a 64-byte frame takes 9, so three fit and a fourth does not.
        let (mut daemon, mut worker) = Channel::new(256).unwrap().split();
        let frame = [0xab; 64];
        for _ in 0..3 {
            daemon.send(&frame).unwrap();
        }
        assert_eq!(daemon.send(&frame), Err(SendError::Full));
        // Still full when asked again, and nothing was dropped or half-written.
        assert_eq!(daemon.send(&frame), Err(SendError::Full));
        assert!(!daemon.wait_writable(64, Duration::from_millis(1)).unwrap());
        let stats = daemon.stats();
        assert_eq!((stats.sent, stats.peer_received), (3, 0));
        // A smaller frame still fits in the remaining 5 words.
        daemon.send(&[1; 32]).unwrap();

        let mut buf = Vec::new();
        assert_eq!(worker.try_recv(&mut buf), Ok(Some(64)));
        assert_eq!(buf, frame);
        assert!(daemon.wait_writable(64, Duration::ZERO).unwrap());
        daemon.send(&frame).unwrap();
        for expected in [&frame[..], &frame[..], &[1; 32][..], &frame[..]] {
            assert_eq!(worker.try_recv(&mut buf), Ok(Some(expected.len())));
            assert_eq!(buf, expected);
        }
        assert_eq!(worker.try_recv(&mut buf), Ok(None));
        assert_eq!(worker.stats().received, 5);
        assert_eq!(daemon.stats().peer_received, 5);
    }

    #[test]
    fn a_frame_larger_than_the_ring_is_refused() {
        let (mut daemon, mut worker) = Channel::new(64).unwrap().split();
        assert_eq!(daemon.max_frame(), 56);
        let err = daemon.send(&[0; 57]).unwrap_err();
        assert_eq!(err, SendError::TooLarge { len: 57, max: 56, ring: 64 });
        let message = err.to_string();
        assert!(message.contains("57 bytes") && message.contains("at most 56 bytes"), "{message}");
        let err = daemon.wait_writable(57, Duration::ZERO).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // The largest frame fills the ring exactly.
        daemon.send(&[5; 56]).unwrap();
        assert_eq!(daemon.send(&[]), Err(SendError::Full));
        let mut buf = Vec::new();
        assert_eq!(worker.try_recv(&mut buf), Ok(Some(56)));
        assert_eq!(buf, [5; 56]);
    }

    #[test]
    fn frames_wrap_around_the_ring_intact_and_in_order() {
        let (mut daemon, mut worker) = Channel::new(128).unwrap().split();
        let max = daemon.max_frame();
        let mut out = vec![0; max];
        let mut scratch = vec![0; max];
        let mut buf = vec![0; max];
        let (mut sent, mut received) = (0u32, 0u32);
        while received < 5000 {
            // Send until full, then drain: the ring's start moves by every frame size.
            loop {
                let frame = &mut out[..frame_len(sent, max)];
                fill(sent, frame);
                match daemon.send(frame) {
                    Ok(()) => sent += 1,
                    Err(SendError::Full) => break,
                    Err(e) => panic!("send {sent}: {e}"),
                }
            }
            while let Some(len) = worker.recv_into(&mut buf).unwrap() {
                assert!(is_frame(received, max, &buf[..len], &mut scratch), "frame {received}");
                received += 1;
            }
        }
        assert_eq!(sent, received);
    }

    #[test]
    fn recv_into_a_short_buffer_keeps_the_frame() {
        let (mut daemon, mut worker) = Channel::new(128).unwrap().split();
        daemon.send(b"twelve bytes").unwrap();
        let mut small = [0; 4];
        assert_eq!(worker.recv_into(&mut small), Err(RecvError::BufferTooSmall { len: 12, capacity: 4 }));
        assert_eq!(worker.next_len(), Ok(Some(12)));
        let mut big = [0; 16];
        assert_eq!(worker.recv_into(&mut big), Ok(Some(12)));
        assert_eq!(&big[..12], b"twelve bytes");
    }

    #[test]
    fn a_corrupted_ring_is_an_error_not_a_panic() {
        let d2w = ring_layout(0, 16);
        let mut buf = Vec::new();
        let corrupt =
            |worker: &mut Endpoint, buf: &mut Vec<u8>| matches!(worker.try_recv(buf), Err(RecvError::Corrupt(_)));

        // A producer index beyond the ring's capacity.
        let (_, mut worker) = Channel::new(128).unwrap().split();
        let shared = Arc::clone(&worker.shared);
        let words = shared.region.words();
        words[d2w.tail].store(1 << 40, Ordering::Release);
        assert!(corrupt(&mut worker, &mut buf));
        assert!(worker.wait(Duration::ZERO).unwrap(), "corruption wakes the receiver");

        // A published frame whose header does not carry its position.
        let (_, mut worker) = Channel::new(128).unwrap().split();
        let shared = Arc::clone(&worker.shared);
        let words = shared.region.words();
        words[d2w.data].store(7 << 32 | 8, Ordering::Relaxed);
        words[d2w.tail].store(2, Ordering::Release);
        assert!(corrupt(&mut worker, &mut buf));

        // A header announcing more than was published.
        words[d2w.data].store(200, Ordering::Relaxed);
        assert!(corrupt(&mut worker, &mut buf));

        // A consumer index beyond the producer's: seen when the producer needs room.
        let (mut daemon, _) = Channel::new(128).unwrap().split();
        daemon.shared.region.words()[d2w.head].store(1 << 40, Ordering::Release);
        daemon.send(&[0; 64]).unwrap();
        assert!(matches!(daemon.send(&[0; 64]), Err(SendError::Corrupt(_))));
    }

    #[test]
    fn wait_unless_gives_up_on_a_raised_flag_before_or_during_the_sleep() {
        use std::sync::atomic::AtomicBool;
        let (mut daemon, mut worker) = Channel::new(1024).unwrap().split();
        let flag = Arc::new(AtomicBool::new(true));
        let raised = || flag.load(Ordering::SeqCst);
        // Raised before the wait (a signal just before the sleep): no sleep at all.
        let t = Instant::now();
        assert!(!worker.wait_unless(Duration::from_secs(30), raised).unwrap());
        assert!(t.elapsed() < Duration::from_secs(10), "slept {:?}", t.elapsed());
        // Raised during the sleep, then the eventfd signalled, as the stop handler does: the
        // wake-up brings no frame, and the wait ends anyway.
        flag.store(false, Ordering::SeqCst);
        let (fd, f) = (worker.wake_eventfd(), Arc::clone(&flag));
        let handler = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            f.store(true, Ordering::SeqCst);
            fd.signal().unwrap();
        });
        let t = Instant::now();
        assert!(!worker.wait_unless(Duration::from_secs(30), raised).unwrap());
        assert!(t.elapsed() < Duration::from_secs(10), "slept {:?}", t.elapsed());
        handler.join().unwrap();
        // A frame waiting still counts, flag or not.
        daemon.send(b"x").unwrap();
        assert!(worker.wait_unless(Duration::from_secs(30), raised).unwrap());
        // And a plain `wait` ignores such wake-ups: it waits for frames only.
        let mut buf = Vec::new();
        worker.try_recv(&mut buf).unwrap();
        worker.wake_eventfd().signal().unwrap();
        assert!(!worker.wait(Duration::from_millis(20)).unwrap());
    }

    #[test]
    fn notify_writes_the_eventfd_only_for_a_sleeping_peer() {
        let (mut daemon, mut worker) = Channel::new(1024).unwrap().split();
        // Nothing sent: nothing to tell.
        assert!(!daemon.notify().unwrap());
        daemon.send(b"a").unwrap();
        // The worker is not waiting: no system call.
        assert!(!daemon.notify().unwrap());
        // A frame is there: the worker must not sleep.
        assert!(!worker.prepare_sleep().unwrap());
        let mut buf = Vec::new();
        assert_eq!(worker.try_recv(&mut buf), Ok(Some(1)));
        assert!(worker.prepare_sleep().unwrap());
        daemon.send(b"b").unwrap();
        daemon.send(b"c").unwrap();
        assert!(daemon.notify().unwrap(), "the worker declared it sleeps");
        // One write per sleep: the daemon remembers it woke this one.
        daemon.send(b"d").unwrap();
        assert!(!daemon.notify().unwrap());
        assert!(worker.shared.to_worker.wait(Some(Duration::ZERO)).unwrap());
        worker.finish_sleep().unwrap();
        assert!(!worker.shared.to_worker.wait(Some(Duration::ZERO)).unwrap());
        for expected in [b"b", b"c", b"d"] {
            assert_eq!(worker.try_recv(&mut buf), Ok(Some(1)));
            assert_eq!(buf, expected);
        }
    }

    #[test]
    fn the_daemon_end_wakes_mio() {
        use mio::unix::SourceFd;
        use mio::{Events, Interest, Poll, Token};

        let (mut daemon, mut worker) = Channel::new(1024).unwrap().split();
        let mut poll = Poll::new().unwrap();
        let fd = daemon.as_raw_fd();
        poll.registry().register(&mut SourceFd(&fd), Token(7), Interest::READABLE).unwrap();
        let mut events = Events::with_capacity(4);
        let mut buf = Vec::new();
        for round in 0..3u8 {
            assert!(daemon.prepare_sleep().unwrap());
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                worker.send(&[round; 3]).unwrap();
                assert!(worker.notify().unwrap());
                worker
            });
            poll.poll(&mut events, Some(PATIENCE)).unwrap();
            assert!(events.iter().any(|e| e.token() == Token(7) && e.is_readable()));
            daemon.finish_sleep().unwrap();
            assert_eq!(daemon.try_recv(&mut buf), Ok(Some(3)));
            assert_eq!(buf, [round; 3]);
            worker = sender.join().unwrap();
        }

        // Back-pressure: the daemon fills the ring, sleeps until the worker frees room.
        let frame = [9u8; 100];
        while daemon.send(&frame).is_ok() {}
        assert!(daemon.prepare_sleep_for_room(frame.len()).unwrap());
        let receiver = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let mut buf = Vec::new();
            assert_eq!(worker.try_recv(&mut buf), Ok(Some(100)));
            assert!(worker.notify().unwrap(), "the daemon declared it waits for room");
            worker
        });
        poll.poll(&mut events, Some(PATIENCE)).unwrap();
        assert!(events.iter().any(|e| e.token() == Token(7) && e.is_readable()));
        daemon.finish_sleep().unwrap();
        daemon.send(&frame).unwrap();
        let mut worker = receiver.join().unwrap();
        // Room already there: no sleep.
        assert_eq!(worker.try_recv(&mut buf), Ok(Some(100)));
        assert!(!daemon.prepare_sleep_for_room(frame.len()).unwrap());
        assert!(daemon.prepare_sleep_for_room(daemon.max_frame() + 1).is_err());
    }

    #[test]
    fn heartbeat_and_status_are_shared() {
        let (daemon, worker) = Channel::new(64).unwrap().split();
        assert_eq!(daemon.heartbeat(), None);
        assert_eq!(daemon.heartbeat_age(), None);
        worker.beat();
        let age = daemon.heartbeat_age().unwrap();
        assert!(age < Duration::from_secs(1), "{age:?}");
        std::thread::sleep(Duration::from_millis(30));
        assert!(daemon.heartbeat_age().unwrap() >= Duration::from_millis(25));
        assert_eq!(daemon.status(), 0);
        worker.set_status(3);
        assert_eq!(daemon.status(), 3);
        daemon.set_status(u32::MAX);
        assert_eq!(worker.status(), u32::MAX);
    }

    /// Two threads over the bare ring in heap memory, no eventfd: a tiny ring (8 words) so that
    /// the cursors lap each other constantly, frames of 0 to 56 bytes at every offset. (The
    /// exhaustive check of the same code is the loom model below.)
    #[test]
    fn threads_hammer_a_tiny_ring_in_heap_memory() {
        const FRAMES: u32 = 200_000;
        let cap = 8;
        let layout = RingLayout { tail: 0, sent: 1, head: 2, received: 3, rx_sleeps: 4, tx_sleeps: 5, data: 8, cap };
        let words: Arc<Vec<AtomicU64>> = Arc::new((0..16).map(|_| AtomicU64::new(0)).collect());
        let max = ring::max_frame(cap);
        let producer = {
            let words = Arc::clone(&words);
            std::thread::spawn(move || {
                let ring = RingRef::new(&words[..], &layout);
                let mut p = Producer::default();
                let mut out = vec![0; max];
                for seq in 0..FRAMES {
                    let frame = &mut out[..seq as usize * 7 % (max + 1)];
                    fill(seq, frame);
                    loop {
                        match p.send(&ring, frame) {
                            Ok(()) => break,
                            Err(SendError::Full) => std::hint::spin_loop(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        };
        let ring = RingRef::new(&words[..], &layout);
        let mut c = Consumer::default();
        let mut buf = vec![0; max];
        let mut expected = vec![0; max];
        for seq in 0..FRAMES {
            let len = loop {
                match c.peek(&ring).unwrap() {
                    Some(len) => break len,
                    None => std::hint::spin_loop(),
                }
            };
            c.take(&ring, &mut buf[..len]);
            let want = &mut expected[..seq as usize * 7 % (max + 1)];
            fill(seq, want);
            assert_eq!(&buf[..len], want, "frame {seq}");
        }
        producer.join().unwrap();
        assert_eq!(words[layout.sent].load(Ordering::Relaxed), u64::from(FRAMES));
    }

    /// Both directions between two threads through real endpoints that never spin, so every
    /// empty or full ring goes through the announce-fence-sleep protocol: a lost wake-up would
    /// show as a timeout.
    #[test]
    fn sleeping_threads_lose_no_wakeup() {
        const FRAMES: u32 = 20_000;
        let (mut daemon, mut worker) = Channel::new(256).unwrap().split();
        daemon.set_spin(Duration::ZERO);
        worker.set_spin(Duration::ZERO);
        let echo = std::thread::spawn(move || {
            let mut buf = Vec::with_capacity(256);
            for seq in 0..FRAMES {
                assert!(worker.wait(PATIENCE).unwrap(), "worker starved at {seq}");
                worker.try_recv(&mut buf).unwrap().unwrap();
                loop {
                    match worker.send(&buf) {
                        Ok(()) => break,
                        Err(SendError::Full) => {
                            assert!(worker.wait_writable(buf.len(), PATIENCE).unwrap())
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                if seq % 3 == 0 {
                    worker.notify().unwrap();
                }
            }
            worker.notify().unwrap();
        });
        let max = 100;
        let mut out = vec![0; max];
        let mut buf = Vec::with_capacity(max);
        let mut scratch = vec![0; max];
        let (mut sent, mut received) = (0, 0);
        while received < FRAMES {
            while sent < FRAMES {
                let frame = &mut out[..frame_len(sent, max)];
                fill(sent, frame);
                match daemon.send(frame) {
                    Ok(()) => sent += 1,
                    Err(SendError::Full) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(daemon.wait(PATIENCE).unwrap(), "daemon starved at {received}");
            while let Some(_len) = daemon.try_recv(&mut buf).unwrap() {
                assert!(is_frame(received, max, &buf, &mut scratch), "frame {received}");
                received += 1;
            }
        }
        echo.join().unwrap();
    }

    /// Exit codes of the forked children below (0: all good).
    mod exit {
        pub const RECV_FAILED: i32 = 3;
        pub const SEND_FAILED: i32 = 4;
        pub const STARVED: i32 = 5;
        pub const BLOCKED: i32 = 6;
        pub const WRONG_FRAME: i32 = 7;
        pub const NOTIFY_FAILED: i32 = 8;
    }

    /// In a forked child: sends `frame` (on `Full`, waits for room), or returns an exit code.
    fn child_send(end: &mut Endpoint, frame: &[u8]) -> Result<(), i32> {
        loop {
            match end.send(frame) {
                Ok(()) => return Ok(()),
                Err(SendError::Full) => match end.wait_writable(frame.len(), PATIENCE) {
                    Ok(true) => {}
                    _ => return Err(exit::BLOCKED),
                },
                Err(_) => return Err(exit::SEND_FAILED),
            }
        }
    }

    /// In a forked child: receives the next frame into `buf` (waiting for it), or returns an
    /// exit code.
    fn child_recv(end: &mut Endpoint, buf: &mut Vec<u8>) -> Result<usize, i32> {
        loop {
            match end.try_recv(buf) {
                Ok(Some(len)) => return Ok(len),
                Ok(None) => match end.wait(PATIENCE) {
                    Ok(true) => {}
                    _ => return Err(exit::STARVED),
                },
                Err(_) => return Err(exit::RECV_FAILED),
            }
        }
    }

    /// Parent side of the cross-process tests: sends frames `0..count` to the child while
    /// receiving what it sends back, checking each received frame with `check(seq, frame)`.
    fn exchange(daemon: &mut Endpoint, count: u32, max: usize, mut check: impl FnMut(u32, &[u8])) {
        let mut out = vec![0; max];
        let mut buf = Vec::with_capacity(max);
        let (mut sent, mut received) = (0, 0);
        let deadline = Instant::now() + PATIENCE;
        while received < count || sent < count {
            while sent < count {
                let frame = &mut out[..frame_len(sent, max)];
                fill(sent, frame);
                match daemon.send(frame) {
                    Ok(()) => sent += 1,
                    Err(SendError::Full) => break,
                    Err(e) => panic!("send {sent}: {e}"),
                }
            }
            let mut got = 0;
            while let Some(_len) = daemon.try_recv(&mut buf).unwrap() {
                check(received, &buf);
                received += 1;
                got += 1;
            }
            daemon.notify().unwrap();
            if got == 0 && received < count {
                daemon.wait(Duration::from_millis(100)).unwrap();
            } else if got == 0 {
                // Only sending is left: wait for room.
                daemon.wait_writable(frame_len(sent, max), Duration::from_millis(100)).unwrap();
            }
            assert!(Instant::now() < deadline, "stuck: sent {sent}, received {received}");
        }
    }

    /// 10 000 frames each way between two processes: the child echoes every frame; the
    /// parent checks order and content. Frame sizes vary from 0 bytes to the whole ring, so
    /// they wrap at every offset; the ring is small enough to be full often.
    #[test]
    fn ten_thousand_frames_each_way_echoed_by_a_child_process() {
        const FRAMES: u32 = 10_000;
        let channel = Channel::new(4096).unwrap();
        let max = channel.max_frame();
        // Allocated before the fork: the child must not allocate.
        let buf = Vec::with_capacity(max);
        let (child, channel) = fork_child(channel, move |channel| {
            let mut worker = channel.worker_end();
            let mut buf = buf;
            for _ in 0..FRAMES {
                let len = match child_recv(&mut worker, &mut buf) {
                    Ok(len) => len,
                    Err(code) => return code,
                };
                if let Err(code) = child_send(&mut worker, &buf[..len]) {
                    return code;
                }
            }
            worker.beat();
            worker.set_status(42);
            match worker.notify() {
                Ok(_) => 0,
                Err(_) => exit::NOTIFY_FAILED,
            }
        });
        let mut daemon = channel.daemon_end();
        let mut scratch = vec![0; max];
        exchange(&mut daemon, FRAMES, max, |seq, frame| {
            assert!(is_frame(seq, max, frame, &mut scratch), "echo of frame {seq}");
        });
        assert_eq!(child.wait(PATIENCE), 0);
        let stats = daemon.stats();
        let n = u64::from(FRAMES);
        assert_eq!(stats, Stats { sent: n, received: n, peer_sent: n, peer_received: n });
        assert_eq!(daemon.status(), 42);
        assert!(daemon.heartbeat_age().unwrap() < PATIENCE);
    }

    /// 10 000 frames each way, two independent sequences: each process checks what it
    /// receives (the child reports through its exit code).
    #[test]
    fn ten_thousand_frames_each_way_in_both_directions_at_once() {
        const FRAMES: u32 = 10_000;
        let channel = Channel::new(8192).unwrap();
        let max = 3000;
        let buffers = (vec![0u8; max], Vec::with_capacity(max), vec![0u8; max]);
        let (child, channel) = fork_child(channel, move |channel| {
            let mut worker = channel.worker_end();
            let (mut out, mut buf, mut scratch) = buffers;
            let (mut sent, mut received) = (0, 0);
            while sent < FRAMES || received < FRAMES {
                // The child's own sequence runs backwards from FRAMES - 1.
                while sent < FRAMES {
                    let seq = FRAMES - 1 - sent;
                    let frame = &mut out[..frame_len(seq, max)];
                    fill(seq, frame);
                    match worker.send(frame) {
                        Ok(()) => sent += 1,
                        Err(SendError::Full) => break,
                        Err(_) => return exit::SEND_FAILED,
                    }
                }
                let mut got = 0;
                loop {
                    match worker.try_recv(&mut buf) {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => return exit::RECV_FAILED,
                    }
                    if !is_frame(received, max, &buf, &mut scratch) {
                        return exit::WRONG_FRAME;
                    }
                    received += 1;
                    got += 1;
                }
                if worker.notify().is_err() {
                    return exit::NOTIFY_FAILED;
                }
                if got == 0 && received < FRAMES {
                    if worker.wait(Duration::from_millis(100)).is_err() {
                        return exit::STARVED;
                    }
                } else if got == 0 && sent < FRAMES {
                    let len = frame_len(FRAMES - 1 - sent, max);
                    if worker.wait_writable(len, Duration::from_millis(100)).is_err() {
                        return exit::BLOCKED;
                    }
                }
            }
            0
        });
        let mut daemon = channel.daemon_end();
        let mut scratch = vec![0; max];
        exchange(&mut daemon, FRAMES, max, |seq, frame| {
            let seq = FRAMES - 1 - seq;
            assert!(is_frame(seq, max, frame, &mut scratch), "child frame {seq}");
        });
        assert_eq!(child.wait(PATIENCE), 0);
    }

    /// A child sleeping in `wait` (no spinning) is woken by `send` + `notify`, well within its
    /// timeout, and `notify` reports that it made the wake-up call.
    #[test]
    fn a_sleeping_child_is_woken_by_notify() {
        let channel = Channel::new(1024).unwrap();
        let buf = Vec::with_capacity(64);
        let (child, channel) = fork_child(channel, move |channel| {
            let mut worker = channel.worker_end();
            worker.set_spin(Duration::ZERO);
            let mut buf = buf;
            let start = Instant::now();
            match worker.wait(PATIENCE) {
                Ok(true) => {}
                _ => return exit::STARVED,
            }
            let slept = start.elapsed().as_micros() as u64;
            if !matches!(worker.try_recv(&mut buf), Ok(Some(4))) || buf != b"wake" {
                return exit::WRONG_FRAME;
            }
            if let Err(code) = child_send(&mut worker, &slept.to_le_bytes()) {
                return code;
            }
            match worker.notify() {
                Ok(_) => 0,
                Err(_) => exit::NOTIFY_FAILED,
            }
        });
        let mut daemon = channel.daemon_end();
        // Wait until the child has declared it sleeps, then give it time to be in `poll`.
        let d2w = ring_layout(0, daemon.shared.cap);
        let flag = &daemon.shared.region.words()[d2w.rx_sleeps];
        let deadline = Instant::now() + PATIENCE;
        while flag.load(Ordering::SeqCst) % 2 == 0 {
            assert!(Instant::now() < deadline, "the child never went to sleep");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        daemon.send(b"wake").unwrap();
        assert!(daemon.notify().unwrap(), "a sleeping peer needs the eventfd");
        assert!(daemon.wait(PATIENCE).unwrap());
        let mut buf = Vec::new();
        assert_eq!(daemon.try_recv(&mut buf), Ok(Some(8)));
        let slept = Duration::from_micros(u64::from_le_bytes(buf[..8].try_into().unwrap()));
        assert!(slept >= Duration::from_millis(50) && slept < PATIENCE, "{slept:?}");
        assert_eq!(child.wait(PATIENCE), 0);
    }

    /// Round trips of an 8-byte frame between two processes, both sides spinning, next to a
    /// hand-written ping-pong on two bare shared atomics.
    /// `cargo test -p tomte --release --lib channel::tests::perf -- --ignored --nocapture`
    #[test]
    #[ignore = "measurement: run with --release -- --ignored --nocapture"]
    fn perf_round_trip() {
        const ROUNDS: u64 = 200_000;

        // Baseline: word 0 is the ping, word 16 (another cache line pair) the pong.
        let region = SharedRegion::new(4096).unwrap();
        let (child, region) = fork_child(region, |region| {
            let words = region.words();
            for i in 1..=ROUNDS {
                while words[0].load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                words[16].store(i, Ordering::Release);
            }
            0
        });
        let words = region.words();
        let start = Instant::now();
        for i in 1..=ROUNDS {
            words[0].store(i, Ordering::Release);
            while words[16].load(Ordering::Acquire) != i {
                std::hint::spin_loop();
            }
        }
        let bare = start.elapsed() / ROUNDS as u32;
        assert_eq!(child.wait(PATIENCE), 0);

        let spinning = channel_round_trip(ROUNDS, Duration::from_millis(1));
        let sleeping = channel_round_trip(ROUNDS / 10, Duration::ZERO);
        println!(
            "round trip: channel {spinning:?} spinning, {sleeping:?} sleeping on the eventfd; \
             bare atomics {bare:?}"
        );
    }

    /// Mean time of `rounds` round trips of an 8-byte frame to an echoing child, both sides
    /// spinning for `spin` before they sleep.
    fn channel_round_trip(rounds: u64, spin: Duration) -> Duration {
        let channel = Channel::new(4096).unwrap();
        let buf = Vec::with_capacity(64);
        let (child, channel) = fork_child(channel, move |channel| {
            let mut worker = channel.worker_end();
            worker.set_spin(spin);
            let mut buf = buf;
            for _ in 0..rounds {
                let len = match child_recv(&mut worker, &mut buf) {
                    Ok(len) => len,
                    Err(code) => return code,
                };
                if let Err(code) = child_send(&mut worker, &buf[..len]) {
                    return code;
                }
                if worker.notify().is_err() {
                    return exit::NOTIFY_FAILED;
                }
            }
            0
        });
        let mut daemon = channel.daemon_end();
        daemon.set_spin(spin);
        let mut buf = Vec::with_capacity(64);
        let start = Instant::now();
        for i in 0..rounds {
            daemon.send(&i.to_le_bytes()).unwrap();
            daemon.notify().unwrap();
            assert!(daemon.wait(PATIENCE).unwrap());
            assert_eq!(daemon.try_recv(&mut buf), Ok(Some(8)));
        }
        let mean = start.elapsed() / rounds as u32;
        assert_eq!(child.wait(PATIENCE), 0);
        mean
    }

    /// One-way throughput of 64-byte frames from a child process, notify per batch.
    #[test]
    #[ignore = "measurement: run with --release -- --ignored --nocapture"]
    fn perf_throughput_64_byte_frames() {
        const FRAMES: u64 = 20_000_000;
        const BATCH: u64 = 64;
        let channel = Channel::new(256 * 1024).unwrap();
        let (child, channel) = fork_child(channel, |channel| {
            let mut worker = channel.worker_end();
            let mut frame = [0u8; 64];
            for seq in 0..FRAMES {
                frame[..8].copy_from_slice(&seq.to_le_bytes());
                if let Err(code) = child_send(&mut worker, &frame) {
                    return code;
                }
                if seq % BATCH == BATCH - 1 && worker.notify().is_err() {
                    return exit::NOTIFY_FAILED;
                }
            }
            match worker.notify() {
                Ok(_) => 0,
                Err(_) => exit::NOTIFY_FAILED,
            }
        });
        let mut daemon = channel.daemon_end();
        let mut buf = Vec::with_capacity(64);
        let mut start = None;
        let mut seq = 0;
        while seq < FRAMES {
            match daemon.try_recv(&mut buf).unwrap() {
                Some(64) => {
                    start.get_or_insert_with(Instant::now);
                    assert_eq!(buf[..8], seq.to_le_bytes());
                    seq += 1;
                }
                Some(len) => panic!("frame {seq} of {len} bytes"),
                None => assert!(daemon.wait(PATIENCE).unwrap(), "starved at {seq}"),
            }
        }
        let elapsed = start.unwrap().elapsed();
        assert_eq!(child.wait(PATIENCE), 0);
        let rate = FRAMES as f64 / elapsed.as_secs_f64();
        println!(
            "one way, 64-byte frames: {:.1} M frames/s ({:.1} ns/frame, {:.2} GB/s payload)",
            rate / 1e6,
            1e9 / rate,
            rate * 64.0 / 1e9
        );
    }

    /// Model checks of the ring and of the sleep/notify protocol with loom:
    /// `RUSTFLAGS="--cfg loom" cargo test -p tomte --lib --release loom`.
    #[cfg(loom)]
    mod loom_model {
        use super::fill;
        use crate::worker::channel::ring::{self, Consumer, Producer, RingLayout, RingRef};
        use crate::worker::channel::SendError;
        use loom::sync::atomic::AtomicU64;
        use loom::sync::{Arc, Notify};

        /// A ring of 4 data words (max frame 24 bytes) with its 6 control words before it.
        const LAYOUT: RingLayout =
            RingLayout { tail: 0, sent: 1, head: 2, received: 3, rx_sleeps: 4, tx_sleeps: 5, data: 6, cap: 4 };

        /// Frames of 1, 2, 1 and 3 words' payload: the second waits for room, and later
        /// ones wrap around the end of the ring.
        const LENS: [usize; 3] = [5, 16, 20];

        struct World {
            words: Vec<AtomicU64>,
            /// Stand-ins for the two eventfds: the consumer's and the producer's.
            wake_consumer: Notify,
            wake_producer: Notify,
        }

        fn run(lens: &'static [usize]) {
            let mut builder = loom::model::Builder::new();
            if builder.preemption_bound.is_none() {
                builder.preemption_bound = Some(3);
            }
            builder.check(move || {
                let world = Arc::new(World {
                    words: (0..10).map(|_| AtomicU64::new(0)).collect(),
                    wake_consumer: Notify::new(),
                    wake_producer: Notify::new(),
                });
                let producer = {
                    let world = Arc::clone(&world);
                    loom::thread::spawn(move || {
                        let r = RingRef::new(&world.words[..], &LAYOUT);
                        let mut p = Producer::default();
                        let mut frame = [0u8; 24];
                        for (seq, &len) in lens.iter().enumerate() {
                            let frame = &mut frame[..len];
                            fill(seq as u32, frame);
                            loop {
                                match p.send(&r, frame) {
                                    Ok(()) => break,
                                    Err(SendError::Full) => {
                                        // Flush the batch, then sleep until room is freed.
                                        ring::fence::<AtomicU64>();
                                        if p.peer_asleep(&r) {
                                            world.wake_consumer.notify();
                                        }
                                        let need = ring::record_words(len);
                                        if p.announce_wait(&r, need).unwrap() {
                                            world.wake_producer.wait();
                                        }
                                        p.withdraw_wait(&r);
                                    }
                                    Err(e) => panic!("{e}"),
                                }
                            }
                        }
                        ring::fence::<AtomicU64>();
                        if p.peer_asleep(&r) {
                            world.wake_consumer.notify();
                        }
                    })
                };
                let r = RingRef::new(&world.words[..], &LAYOUT);
                let mut c = Consumer::default();
                let mut unflushed = false;
                let mut buf = [0u8; 24];
                let mut expected = [0u8; 24];
                let mut seq = 0;
                while seq < lens.len() {
                    match c.peek(&r).unwrap() {
                        Some(len) => {
                            assert_eq!(len, lens[seq]);
                            c.take(&r, &mut buf[..len]);
                            fill(seq as u32, &mut expected[..len]);
                            assert_eq!(buf[..len], expected[..len], "frame {seq}");
                            seq += 1;
                            unflushed = true;
                        }
                        None => {
                            // Tell the producer about freed room, then sleep until a frame.
                            if unflushed {
                                ring::fence::<AtomicU64>();
                                if c.peer_asleep(&r) {
                                    world.wake_producer.notify();
                                }
                            }
                            unflushed = false;
                            if c.announce_wait(&r) {
                                world.wake_consumer.wait();
                            }
                            c.withdraw_wait(&r);
                        }
                    }
                }
                producer.join().unwrap();
            });
        }

        #[test]
        fn loom_ring_keeps_frames_and_wakeups() {
            run(&LENS);
        }

        #[test]
        fn loom_ring_wraps_with_small_frames() {
            run(&[0, 8, 9, 0, 1]);
        }
    }
}
