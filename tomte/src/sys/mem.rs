//! Giving memory back to the system once a load has passed.

/// Returns the heap's free memory to the kernel (glibc's `malloc_trim`). glibc keeps memory
/// freed in small pieces for reuse, so after a burst of large requests or many clients the
/// daemon would idle at many times its fresh footprint. Elsewhere than glibc it does nothing.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only walks the allocator's own state under its
    // own locks; any pad value is valid (0: keep nothing beyond what is in use).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Gives back what the process holds but does not use: the deep end of the stack, then the
/// heap's free memory (the stack's trim may free a little heap of its own). The loop calls it
/// once it goes quiet, the daemon before it forks its workers, a worker as it starts.
pub(crate) fn give_back() {
    trim_stack();
    trim_heap();
}

/// How much of the stack below the caller's frame [`trim_stack`] keeps: room for the frames
/// the loop's next turn makes without a page fault, and far more than the x86-64 red zone
/// (128 bytes below the stack pointer that a leaf function may use without moving it).
const STACK_KEPT: usize = 8 << 10;

/// Gives back the main thread's stack pages below the caller's frame (less [`STACK_KEPT`]):
/// the deep calls of the start (parsing the command line and the configuration file, say)
/// leave pages that stay resident for the process's life, and a forked worker inherits them.
/// Memory below the stack pointer holds nothing live, so a page given back is simply a zero
/// page the next time a call reaches that deep. Does nothing off the main thread's stack.
#[inline(never)]
fn trim_stack() {
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Some((low, high)) = main_stack() else { return };
    if !(low..high).contains(&sp) {
        return;
    }
    let page = rustix::param::page_size();
    let end = sp.saturating_sub(STACK_KEPT) & !(page - 1);
    if end <= low {
        return;
    }
    // SAFETY: [low, end) lies inside this process's own stack mapping, and entirely below the
    // current frame by at least STACK_KEPT, so it holds no live frame of this thread (the only
    // one whose stack this is: `sp` was checked to be in it) and nothing refers into it. A
    // signal handler runs after the call returns, on frames it writes afresh. MADV_DONTNEED on
    // private anonymous memory only makes the next touch of each page a fresh zero page.
    unsafe {
        libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED);
    }
}

/// The bounds of the main thread's stack mapping, read from `/proc/self/maps` once per process
/// (a forked worker inherits them with the rest of the memory): generating that file costs the
/// kernel about 100 µs. The mapping only grows downwards, so the bounds read first are within
/// it for the process's life; what it grew beyond them is simply not trimmed.
fn main_stack() -> Option<(usize, usize)> {
    static BOUNDS: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    *BOUNDS.get_or_init(read_main_stack)
}

fn read_main_stack() -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let line = maps.lines().find(|l| l.ends_with("[stack]"))?;
    let (low, high) = line.split_whitespace().next()?.split_once('-')?;
    Some((usize::from_str_radix(low, 16).ok()?, usize::from_str_radix(high, 16).ok()?))
}
