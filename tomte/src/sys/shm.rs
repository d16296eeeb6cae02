//! Anonymous shared mappings: memory that a process and the children it forks afterwards all see.
//!
//! A [`SharedRegion`] is created before `fork`; parent and child then hold their own
//! `SharedRegion` value over the same physical pages, and each unmaps its view on drop.
//!
//! # Why the region is an array of atomic words
//!
//! Another process writes this memory while we read it, and Rust's memory model only allows
//! that for atomic accesses: a plain `memcpy` racing with a store in the peer would be a data
//! race (undefined behaviour), even if the protocol on top makes it "impossible" in practice,
//! because a buggy or crashed peer can break the protocol. So the mapping is exposed only as
//! `&[AtomicU64]`: every access is atomic, all accesses have the same size (mixed-size racing
//! atomics are not allowed either), and nothing the peer does can make a read produce an
//! invalid value. Relaxed `u64` loads and stores compile to plain moves on the usual targets, so
//! this costs nothing over raw bytes for the word-sized copies the worker channel does.

use std::ffi::c_void;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use rustix::mm::{mmap_anonymous, munmap, MapFlags, ProtFlags};

/// An anonymous `MAP_SHARED` read-write mapping, zero-filled, seen as `u64` atomic words.
///
/// Children forked after [`SharedRegion::new`] share it with the parent. The only access to
/// the memory is through [`SharedRegion::words`], a bounds-checked slice borrowed from `self`,
/// so no reference can outlive the mapping.
pub struct SharedRegion {
    /// Start of the mapping (page-aligned, so aligned for `AtomicU64`).
    ptr: NonNull<AtomicU64>,
    /// Length of the mapping in bytes, as passed to `mmap` (a non-zero multiple of 8).
    len: usize,
}

// SAFETY: the region is plain memory plus a length; every access goes through `&AtomicU64`,
// which is `Sync`, so moving the owner to another thread or sharing it is as safe as sharing a
// slice of atomics. `munmap` in `Drop` may run on any thread.
unsafe impl Send for SharedRegion {}
// SAFETY: see `Send`: all access is through atomics, so concurrent `&self` use cannot race.
unsafe impl Sync for SharedRegion {}

impl std::fmt::Debug for SharedRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegion").field("ptr", &self.ptr).field("len", &self.len).finish()
    }
}

impl SharedRegion {
    /// Maps `len` bytes (rounded up to a multiple of 8) of zeroed memory shared with the
    /// children this process forks afterwards.
    ///
    /// Fails with `InvalidInput` for a zero length, or with the `mmap` error.
    pub fn new(len: usize) -> io::Result<SharedRegion> {
        let len = len.checked_next_multiple_of(8).filter(|&len| len > 0).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("shared region of {len} bytes: length must be between 1 and usize::MAX - 7"),
            )
        })?;
        // SAFETY: a null address hint lets the kernel pick a fresh range, so no existing memory
        // (and no Rust reference to it) is replaced; the result is owned by the returned value
        // and unmapped exactly once, in `Drop`.
        let ptr =
            unsafe { mmap_anonymous(std::ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::SHARED)? };
        let ptr =
            NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(SharedRegion { ptr, len })
    }

    /// Length of the region in bytes (a multiple of 8).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region has at least one word. (Present for `clippy::len_without_is_empty`.)
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole region as atomic words. Index it (bounds-checked) to reach a word.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` is the page-aligned start of a live read-write mapping of `len` bytes
        // (`len` a multiple of 8), so it is valid and aligned for `len / 8` `AtomicU64`s, which
        // have the size and alignment of `u64` and for which any bit pattern (the kernel
        // zero-fills) is a valid value. The mapping stays until `Drop`, which needs `&mut self`,
        // so it outlives the borrow. Only shared references are ever made, and `AtomicU64`
        // allows mutation through them, by us or by another process.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len / 8) }
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping made in `new`, which nothing else
        // unmaps; every reference into it borrowed `self`, so none is alive during `drop`.
        let result = unsafe { munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
        // munmap of a range we mapped cannot fail short of a kernel bug; nothing to recover.
        debug_assert!(result.is_ok(), "munmap of a shared region failed: {result:?}");
    }
}

/// Test support: running a closure in a forked child, for the tests of this mapping and of the
/// worker channel built on it (code outside `sys` may not call the `unsafe fn fork`).
#[cfg(test)]
pub(crate) mod fork_test {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::{Mutex, MutexGuard, PoisonError};
    use std::time::{Duration, Instant};

    use rustix::io::Errno;
    use rustix::process::{
        getpid, getppid, kill_process, set_parent_process_death_signal, waitpid, Pid, Signal, WaitOptions, WaitStatus,
    };

    use crate::sys::process::{exit_now, fork, Forked};

    /// Held by every test that forks (through [`fork_child`]), so that no two of them run at
    /// once inside the test binary.
    pub(crate) static FORK_LOCK: Mutex<()> = Mutex::new(());

    /// A forked child: reaped by [`Child::wait`], or killed and reaped on drop (a failed
    /// assertion in the parent leaks no process).
    pub(crate) struct Child {
        pid: Option<Pid>,
        _lock: MutexGuard<'static, ()>,
    }

    /// Forks while holding [`FORK_LOCK`]. The child runs `body(value)` and exits with the code
    /// it returns (`_exit`, so no destructor and no stdio flush); the parent gets `value` back.
    ///
    /// The test binary is multi-threaded (the harness runs tests in parallel), so the child
    /// starts with a copy of whatever locks other threads held at the fork — the allocator's,
    /// stdout's. `body` must therefore take none: only channel operations on memory allocated
    /// before the fork, no printing, no panics (return a distinct exit code instead; a panic
    /// still ends the child, with code 102, but its message may deadlock it). The child gets
    /// SIGKILL when the parent dies (`PR_SET_PDEATHSIG`), so an aborted test run leaks nothing.
    pub(crate) fn fork_child<T>(value: T, body: impl FnOnce(T) -> i32) -> (Child, T) {
        let lock = FORK_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let parent = getpid();
        // SAFETY: `fork` asks for a single-threaded process because the child may find a lock
        // held forever by a thread that does not exist there. This child takes no lock: it runs
        // only `body`, whose contract above rules that out, then leaves with `_exit`. The
        // child's memory is a copy, so nothing it does can touch the parent's.
        match unsafe { fork() }.expect("fork a test child") {
            Forked::Child => {
                let armed = set_parent_process_death_signal(Some(Signal::KILL)).is_ok();
                // The parent may have died before the death signal was armed.
                if !armed || getppid() != Some(parent) {
                    exit_now(101);
                }
                let code = catch_unwind(AssertUnwindSafe(|| body(value))).unwrap_or(102);
                exit_now(code)
            }
            Forked::Parent(pid) => (Child { pid: Some(pid), _lock: lock }, value),
        }
    }

    fn reap(pid: Pid, options: WaitOptions) -> Option<WaitStatus> {
        loop {
            match waitpid(Some(pid), options) {
                Ok(found) => return found.map(|(_, status)| status),
                Err(Errno::INTR) => continue,
                Err(e) => panic!("waitpid({pid:?}): {e}"),
            }
        }
    }

    impl Child {
        /// Waits up to `timeout` for the child to exit and returns its exit code. A child that
        /// is still running then is killed, reaped, and reported by a panic, as is one killed
        /// by a signal.
        pub(crate) fn wait(mut self, timeout: Duration) -> i32 {
            let pid = self.pid.take().expect("a child is reaped once");
            let deadline = Instant::now() + timeout;
            let status = loop {
                if let Some(status) = reap(pid, WaitOptions::NOHANG) {
                    break status;
                }
                if Instant::now() >= deadline {
                    let _ = kill_process(pid, Signal::KILL);
                    reap(pid, WaitOptions::empty());
                    panic!("test child {pid:?} still running after {timeout:?}: killed");
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            match status.exit_status() {
                Some(code) => code,
                None => panic!("test child {pid:?} did not exit normally: {status:?}"),
            }
        }
    }

    impl Drop for Child {
        fn drop(&mut self) {
            if let Some(pid) = self.pid.take() {
                let _ = kill_process(pid, Signal::KILL);
                reap(pid, WaitOptions::empty());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fork_test::fork_child;
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    #[test]
    fn child_writes_are_seen_by_the_parent() {
        let region = SharedRegion::new(4096).unwrap();
        let (child, region) = fork_child(region, |region| {
            region.words()[3].store(0xfeed, Ordering::Release);
            0
        });
        assert_eq!(child.wait(Duration::from_secs(10)), 0);
        assert_eq!(region.words()[3].load(Ordering::Acquire), 0xfeed);
    }

    #[test]
    fn rounds_up_and_starts_zeroed() {
        let region = SharedRegion::new(13).unwrap();
        assert_eq!(region.len(), 16);
        assert_eq!(region.words().len(), 2);
        assert!(region.words().iter().all(|w| w.load(Ordering::Relaxed) == 0));
        region.words()[1].store(7, Ordering::Relaxed);
        assert_eq!(region.words()[1].load(Ordering::Relaxed), 7);
    }

    #[test]
    fn zero_length_is_refused() {
        let err = SharedRegion::new(0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn access_is_bounds_checked() {
        let region = SharedRegion::new(8).unwrap();
        let _ = region.words()[1].load(Ordering::Relaxed);
    }
}
