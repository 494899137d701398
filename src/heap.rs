//! The system allocator's thresholds, set once at start.
//!
//! Body chunks arrive from children in buffers of 64 KiB and more that live only until
//! the client has them. With glibc's defaults such buffers are mapped fresh from the
//! kernel (or the heap's top is handed back and taken again), and every new page is a
//! fault: a quarter of the supervisor's CPU while streaming a large response. Keeping
//! blocks under 1 MiB on the heap, and up to 4 MiB of free heap before giving it back,
//! lets freed chunk buffers be reused instead; the cost is at most a few MiB of RSS
//! kept after a burst.

/// Applies the thresholds; a no-op where the allocator is not glibc's.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Largest block served from the heap rather than its own mapping.
        const MMAP_THRESHOLD: i32 = 1 << 20;
        /// Free space at the heap's top kept before it is returned to the kernel.
        const TRIM_THRESHOLD: i32 = 4 << 20;
        // SAFETY: mallopt only sets allocator parameters; it is called before the
        // runtime starts its threads, and a refused value leaves the defaults in place.
        unsafe {
            nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
