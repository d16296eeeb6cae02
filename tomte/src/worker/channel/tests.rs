//! Tests of the channel: sizes, back-pressure, wrapping, corruption, wake-ups, between threads
//! and between processes, and the ignored measurements quoted in the module docs.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::ring_layout;
use super::ring::{self, Consumer, Producer, RingLayout, RingRef};
use super::*;
use crate::sys::shm::fork_test::fork_child;
use crate::sys::shm::SharedRegion;

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
pub(super) fn fill(seq: u32, buf: &mut [u8]) {
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
    let corrupt = |worker: &mut Endpoint, buf: &mut Vec<u8>| matches!(worker.try_recv(buf), Err(RecvError::Corrupt(_)));

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
