//! The single-producer single-consumer ring, written over [`Word`] so that the same code runs
//! on the shared mapping (std atomics) and under loom (loom atomics). See "Protocol and memory
//! ordering" in the module docs.

use std::sync::atomic::Ordering::{self, Acquire, Relaxed, Release};

use super::wake::{Sleeps, Woken};
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

    /// After a [`fence`](super::wake::fence) that follows this side's latest `send`: whether
    /// the consumer is asleep waiting for frames and not woken yet (the caller wakes it).
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

    /// After a [`fence`](super::wake::fence) that follows this side's latest `take`: whether
    /// the producer is asleep waiting for room and not woken yet (the caller wakes it).
    #[inline]
    pub fn peer_asleep<W: Word>(&mut self, r: &RingRef<'_, W>) -> bool {
        self.woken.check(r.tx_sleeps)
    }
}
