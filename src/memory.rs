//! The process allocator is mimalloc; the binary sets it (`src/main.rs`), and the benches
//! measuring the library in-process do too. This module only gives freed memory back.
//!
//! Why mimalloc: the proxy allocates and frees small buffers per request on every thread; glibc's
//! malloc/free took ~12 % of the header path's CPU in the profile (docs/performance.md).
//! Built without transparent huge pages (`no_thp`): with THP every touched arena page costs
//! 2 MiB of RSS (a 1-account `serve` sat at 57 MB instead of 17 MB).

/// Give memory this thread freed back to the system now rather than after mimalloc's purge
/// delay. For the rare, very large allocations (argon2's 19 MiB work area, once per account)
/// that would otherwise stay resident on the blocking-pool thread that ran them.
/// Nothing to do (and harmless) when mimalloc is not the process allocator.
pub fn return_freed_memory() {
    // SAFETY: mi_collect only walks this thread's heap; no pointers are passed.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
