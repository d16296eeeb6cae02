//! Model checks of the ring and of the sleep/notify protocol with loom:
//! `RUSTFLAGS="--cfg loom" cargo test -p tomte --lib --release loom`.

use super::ring::{self, Consumer, Producer, RingLayout, RingRef};
use super::tests::fill;
use super::wake::fence;
use super::SendError;
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
                                fence::<AtomicU64>();
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
                fence::<AtomicU64>();
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
                        fence::<AtomicU64>();
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
