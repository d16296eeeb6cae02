//! Where everything sits in the channel's mapping (see "Memory layout" in the module docs):
//! the header's words and the two rings'.

use super::ring::RingLayout;

/// Words per 128-byte group in the header.
const LINE: usize = 16;
/// Header size in words: eight groups.
pub(super) const HEADER_WORDS: usize = 8 * LINE;
pub(super) const MAGIC: usize = 0;
pub(super) const CAPACITY: usize = 1;
pub(super) const STATUS: usize = LINE;
pub(super) const HEARTBEAT: usize = LINE + 1;
pub(super) const COUNTER: usize = LINE + 2;
/// `"tomtech1"`: marks a channel mapping in a memory dump.
pub(super) const MAGIC_VALUE: u64 = u64::from_be_bytes(*b"tomtech1");
/// Smallest ring: 8 words (64 bytes).
pub(super) const MIN_RING_WORDS: usize = 8;

/// Layout of ring `index` (0: daemon→worker, 1: worker→daemon) in a mapping whose rings have
/// `cap` words each.
pub(super) fn ring_layout(index: usize, cap: usize) -> RingLayout {
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
