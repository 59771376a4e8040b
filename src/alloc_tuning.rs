//! Keeps large buffers in the process heap (glibc only). The `synthsae`
//! binary calls [`keep_large_buffers`] first thing; the benchmarks do too,
//! so they measure what the binary does.
//!
//! An eval or training step allocates and frees several `[batch, d_sae]`
//! buffers (64 MiB each at 1024 × 16384). glibc serves allocations above its
//! mmap threshold with fresh `mmap`s and unmaps them on free, so every batch
//! pays for page faults on hundreds of MiB: a 100k-sample eval of a
//! 16384-latent SAE spent 25 s of 73 s in the kernel. Raising the mmap and
//! trim thresholds keeps freed blocks for reuse (measured: 0.8 s in the
//! kernel, 47 s wall). Memory peaks are unchanged; freed memory is kept
//! until exit instead of returned. Written by hand because it is three
//! calls to glibc's `mallopt`, which no maintained crate wraps on its own.

/// Raises glibc's mmap and trim thresholds (see the module docs). Call it
/// before other threads start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_large_buffers() {
    // Parameter numbers from glibc's <malloc.h>.
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_TOP_PAD: i32 = -2;
    const M_MMAP_THRESHOLD: i32 = -3;
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: `mallopt` only changes allocator tuning parameters; it is
    // called before any other thread exists.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 1 << 30);
        mallopt(M_TRIM_THRESHOLD, i32::MAX);
        mallopt(M_TOP_PAD, 256 << 20);
    }
}

/// No-op off glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_large_buffers() {}
