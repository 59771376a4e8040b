//! [`with_cpu_autodiff!`]: runs code with the inner backend named as a type
//! when `B` is `Autodiff` of a CPU backend (the test of
//! [`crate::backend::cpu_kind`]), so that a custom autodiff node can be built
//! for it.

/// `Some($body)` with `$I` bound to the inner backend when `$B` is
/// `Autodiff<$I>` for a CPU backend `$I`; `None` for every other backend.
///
/// `$body` moves values between `$B` and `Autodiff<$I>` with
/// [`crate::backend::cast`] (they are the same type there).
macro_rules! with_cpu_autodiff {
    ($B:ty, |$I:ident| $body:expr) => {{
        match $crate::backend::cpu_kind::<$B>() {
            #[cfg(feature = "flex")]
            Some($crate::backend::CpuKind {
                backend: $crate::backend::CpuBackend::Flex,
                autodiff: true,
            }) => {
                type $I = burn::backend::Flex;
                Some($body)
            }
            #[cfg(feature = "ndarray")]
            Some($crate::backend::CpuKind {
                backend: $crate::backend::CpuBackend::NdArray,
                autodiff: true,
            }) => {
                type $I = burn::backend::NdArray;
                Some($body)
            }
            _ => None,
        }
    }};
}

pub(crate) use with_cpu_autodiff;
