//! The shared-memory channel between the daemon and one forked worker process.
//!
//! # Anatomy
//!
//! A [`Channel`] is made by the daemon *before* it forks the worker: one shared anonymous
//! mapping (the system layer's shared region: `MAP_SHARED | MAP_ANONYMOUS`) and two eventfds. After the fork
//! each side turns its copy into an [`Endpoint`] ([`Channel::daemon_end`] in the parent,
//! [`Channel::worker_end`] in the child).
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
//! (which the mapping is made of) and, under `--cfg loom`, for loom's: the `loom` tests (`loom.rs`)
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
//! All offsets are in 64-bit words; the mapping is nothing but `AtomicU64`s (both processes
//! write it at once, so every access is atomic: no reference to plain memory that the other
//! side may change). Each group below sits on its own 128-byte line, so the
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
//! Measured on the 2-core development machine (otherwise idle) by the ignored `perf_` tests
//! of `tests.rs`, between two real processes:
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
//! # Code
//!
//! One job per file: `layout.rs`, where everything sits in the mapping; `ring.rs`, the
//! single-producer single-consumer ring over the `Word` trait; `wake.rs`, the sleep counters
//! and the spin-then-sleep waits on an eventfd; `ends.rs`, [`Channel`] and [`Endpoint`], which
//! put them together over the shared mapping; `tests.rs`, and `loom.rs` for the model checks.
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

// `cfg(loom)` is set by hand (`RUSTFLAGS="--cfg loom"`) for the model checks. The crate takes
// its lints from the workspace, where the cfg is not declared, so it is allowed here (for the
// `loom` module and the loom atomics' `Word` implementation in `ring`).
#![allow(unexpected_cfgs)]

mod ends;
mod layout;
#[cfg(all(test, loom))]
mod loom;
mod ring;
#[cfg(test)]
mod tests;
mod wake;

pub use ends::{Channel, Endpoint};

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
