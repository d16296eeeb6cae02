//! The floor of a cross-process round trip: two processes ping-ponging on two atomic words of a
//! shared mapping, both spinning, nothing else. The worker channel is measured against it.

use std::io;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions};
use tomte::_bench::{spawn_child, SharedRegion};

/// The ping (parent → child) and pong (child → parent) words, 128 bytes apart, so that they never
/// share a cache line or an adjacent-line pair.
const PING: usize = 0;
const PONG: usize = 16;

/// Round trips made before the clock starts: the child has just been forked and is still
/// settling (signals reset, descriptors closed, caches cold).
pub const WARM_UP: u64 = 2_000;

/// How long either side spins for the other before it gives up (a dead or stuck peer).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Exit code of a child that gave up waiting for the parent.
const GAVE_UP: i32 = 3;

/// A child forked by [`spawn_child`]: reaped by [`Child::wait`], or killed (by its pid) and
/// reaped on drop, so an error in the parent leaves no process behind.
#[derive(Debug)]
pub struct Child {
    pid: Option<Pid>,
}

impl Child {
    pub fn new(pid: Pid) -> Child {
        Child { pid: Some(pid) }
    }

    /// Waits up to `timeout` for the child to exit and returns its exit code; a child still
    /// running then is killed, and one killed by a signal is an error.
    pub fn wait(mut self, timeout: Duration) -> io::Result<i32> {
        let pid = self.pid.take().expect("a child is reaped once");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = reap(pid, WaitOptions::NOHANG)? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = kill_process(pid, Signal::KILL);
                reap(pid, WaitOptions::empty())?;
                return Err(io::Error::other(format!("child {pid:?} still running after {timeout:?}: killed")));
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        status.exit_status().ok_or_else(|| io::Error::other(format!("child {pid:?} did not exit: {status:?}")))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = kill_process(pid, Signal::KILL);
            let _ = reap(pid, WaitOptions::empty());
        }
    }
}

fn reap(pid: Pid, options: WaitOptions) -> io::Result<Option<rustix::process::WaitStatus>> {
    loop {
        match waitpid(Some(pid), options) {
            Ok(found) => return Ok(found.map(|(_, status)| status)),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Spins until `ready()` or [`PATIENCE`] has passed (false then).
#[inline(always)]
fn spin(mut ready: impl FnMut() -> bool) -> bool {
    let mut start = None;
    loop {
        for _ in 0..1024 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.get_or_insert_with(Instant::now).elapsed() > PATIENCE {
            return false;
        }
    }
}

/// Mean time of `rounds` round trips between this process and a forked child: the parent stores
/// `i` in the ping word and spins until the pong word says `i`; the child spins on the ping word
/// and answers in the pong word. The mean is taken after [`WARM_UP`] round trips.
pub fn round_trip(rounds: u64) -> io::Result<Duration> {
    let region = SharedRegion::new(4096)?;
    let total = WARM_UP + rounds;
    // SAFETY: `spawn_child`'s contract: nothing is kept and nothing needs to be. The value is
    // the shared mapping, which holds no descriptor (it is anonymous, made without a file), and
    // the body captures a count.
    #[allow(unsafe_code)]
    let (pid, region) = unsafe {
        spawn_child("shm-floor", &[], region, move |region| {
            let words = region.words();
            for i in 1..=total {
                if !spin(|| words[PING].load(Acquire) == i) {
                    return GAVE_UP;
                }
                words[PONG].store(i, Release);
            }
            0
        })?
    };
    let child = Child::new(pid);
    let words = region.words();
    let mut start = Instant::now();
    for i in 1..=total {
        if i == WARM_UP + 1 {
            start = Instant::now();
        }
        words[PING].store(i, Release);
        if !spin(|| words[PONG].load(Acquire) == i) {
            return Err(io::Error::other(format!("the floor's child never answered ping {i}")));
        }
    }
    let mean = start.elapsed() / rounds as u32;
    match child.wait(PATIENCE)? {
        0 => Ok(mean),
        code => Err(io::Error::other(format!("the floor's child exited {code}"))),
    }
}
