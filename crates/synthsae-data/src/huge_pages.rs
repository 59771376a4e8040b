//! Transparent huge pages for the host dictionary.
//!
//! The gather-sum reads ~35 scattered feature rows (3 KiB each at D = 768)
//! per sample. With 4 KiB pages, a dictionary much larger than the TLB's
//! reach (a few MiB) costs a page walk for nearly every row it reads, and at
//! a million features (3 GiB) the page tables themselves no longer stay in
//! cache. Backing the dictionary with 2 MiB pages removes most of those
//! walks. Hand-written because it is two `madvise` calls: no crate wraps
//! just this.

/// Buffers below this size are left alone: their 4 KiB pages fit the TLB's
/// reach closely enough, and a collapse would cost more than it saves.
pub(crate) const MIN_BYTES: usize = 32 << 20;

/// Asks the kernel to back the 2 MiB-aligned interior of `buf` with huge
/// pages: `MADV_HUGEPAGE` (for pages faulted later) and `MADV_COLLAPSE`
/// (Linux ≥ 6.1; the pages already there, synchronously, copying at most
/// 2 MiB at a time). Advice only: the contents are unchanged, and when the
/// kernel refuses (THP disabled, an older kernel, another OS) nothing
/// happens. Returns whether the kernel accepted the collapse.
pub(crate) fn advise_huge_pages(buf: &[f32]) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const HUGE: usize = 2 << 20;
        let bytes = std::mem::size_of_val(buf);
        if bytes < MIN_BYTES {
            return false;
        }
        let start = buf.as_ptr() as usize;
        let lo = start.next_multiple_of(HUGE);
        let hi = (start + bytes) / HUGE * HUGE;
        if hi <= lo {
            return false;
        }
        let addr = lo as *mut libc::c_void;
        // SAFETY: `[lo, hi)` lies inside `buf`'s allocation, which outlives
        // the calls. Both advices keep the memory's contents (the collapse
        // copies pages into huge pages under the kernel's locks), so no
        // value the program can observe changes; a refused advice returns
        // an error code and has no effect.
        unsafe {
            libc::madvise(addr, hi - lo, libc::MADV_HUGEPAGE);
            libc::madvise(addr, hi - lo, libc::MADV_COLLAPSE) == 0
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = buf;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_keeps_the_contents() {
        // Twice the threshold, so an aligned interior exists whatever the
        // allocator's alignment; the pattern is not periodic in 2 MiB.
        let n = 2 * MIN_BYTES / 4;
        let v: Vec<f32> = (0..n).map(|i| (i % 1_000_003) as f32 * 0.5).collect();
        advise_huge_pages(&v);
        assert!(v
            .iter()
            .enumerate()
            .all(|(i, &x)| x == (i % 1_000_003) as f32 * 0.5));
    }

    #[test]
    fn small_buffers_are_left_alone() {
        assert!(!advise_huge_pages(&vec![1.0f32; 1024]));
    }
}
