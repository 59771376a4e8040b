//! The instruction sets of every multiversioned kernel, stated once.
//!
//! The workspace builds for the baseline target (SSE2 on x86-64), so plain
//! loops run four lanes wide. [`multiversioned!`](crate::multiversioned)
//! compiles a function for AVX-512, AVX2 and NEON as well (`multiversion`)
//! and picks one version at run time, the first the CPU supports.
//!
//! Two lists, differing only in FMA on the AVX2 target:
//!
//! * `multiversioned! { fn … }`: AVX-512 (F, VL, BW, DQ), AVX2, NEON. For
//!   kernels without `mul_add`: Rust never fuses a multiply and an add on
//!   its own, so they give the same bits on every target.
//! * `multiversioned! { fma: fn … }`: the same with AVX2 + FMA. For kernels
//!   that call `mul_add` (IEEE fma: one instruction where the CPU has it,
//!   the same result computed in software where it has not) and the
//!   sampler's loops around them.
//!
//! A crate that uses the macro needs `multiversion` among its own
//! dependencies (the expansion names it).

/// Compiles the function it wraps for the workspace's SIMD targets (see
/// [`kernels::targets`](crate::kernels::targets)) and dispatches at run
/// time: `multiversioned! { /// docs \n pub fn f(..) { .. } }`, or with
/// `fma:` before the function for the AVX2 + FMA list.
#[macro_export]
macro_rules! multiversioned {
    (@targets $avx2:tt; $($item:tt)*) => {
        #[multiversion::multiversion(targets(
            "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
            $avx2,
            "aarch64+neon"
        ))]
        $($item)*
    };
    (fma: $($item:tt)*) => {
        $crate::multiversioned! { @targets "x86_64+avx2+fma"; $($item)* }
    };
    ($($item:tt)*) => {
        $crate::multiversioned! { @targets "x86_64+avx2"; $($item)* }
    };
}
