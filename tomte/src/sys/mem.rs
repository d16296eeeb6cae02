//! Giving memory back to the system once a load has passed.

/// Returns the heap's free memory to the kernel (glibc's `malloc_trim`). glibc keeps memory
/// freed in small pieces for reuse, so after a burst of large requests or many clients the
/// daemon would idle at many times its fresh footprint; the loop calls this once it goes quiet.
/// Elsewhere than glibc it does nothing.
pub(crate) fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only walks the allocator's own state under its
    // own locks; any pad value is valid (0: keep nothing beyond what is in use).
    unsafe {
        libc::malloc_trim(0);
    }
}
