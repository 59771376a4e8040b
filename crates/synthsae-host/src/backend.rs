//! The one test of "is this a CPU backend", used by every host fast path in
//! the workspace (sae, train, eval, CLI).
//!
//! The test is by type: `B` is one of the CPU backends this crate was built
//! with (`Flex`, `NdArray`), or `Autodiff` of one of them. Code that takes a
//! host fast path asks [`is_cpu`] (tensors live in host memory) or
//! [`is_cpu_autodiff`] (the custom autodiff nodes of [`crate::autodiff`] can
//! run); every other backend takes the generic tensor formulation.

use std::any::{Any, TypeId};

use burn::prelude::Backend;

/// A CPU backend whose tensors live in host memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuBackend {
    /// `burn::backend::Flex`.
    Flex,
    /// `burn::backend::NdArray` (f32).
    NdArray,
}

/// Backend `B` as the host fast paths see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuKind {
    /// The backend that holds the buffers.
    pub backend: CpuBackend,
    /// Whether `B` is `Autodiff` of it.
    pub autodiff: bool,
}

/// `Some` when `B` is a CPU backend (or `Autodiff` of one) this crate knows.
pub fn cpu_kind<B: Backend>() -> Option<CpuKind> {
    let id = TypeId::of::<B>();
    #[cfg(feature = "flex")]
    {
        use burn::backend::{Autodiff, Flex};
        if id == TypeId::of::<Flex>() {
            return Some(CpuKind {
                backend: CpuBackend::Flex,
                autodiff: false,
            });
        }
        if id == TypeId::of::<Autodiff<Flex>>() {
            return Some(CpuKind {
                backend: CpuBackend::Flex,
                autodiff: true,
            });
        }
    }
    #[cfg(feature = "ndarray")]
    {
        use burn::backend::{Autodiff, NdArray};
        if id == TypeId::of::<NdArray>() {
            return Some(CpuKind {
                backend: CpuBackend::NdArray,
                autodiff: false,
            });
        }
        if id == TypeId::of::<Autodiff<NdArray>>() {
            return Some(CpuKind {
                backend: CpuBackend::NdArray,
                autodiff: true,
            });
        }
    }
    let _ = id;
    None
}

/// Whether `B`'s tensors live in host memory (a CPU backend, with or without
/// `Autodiff`).
pub fn is_cpu<B: Backend>() -> bool {
    cpu_kind::<B>().is_some()
}

/// Whether `B` is `Autodiff` of a CPU backend, so that the custom autodiff
/// nodes run.
pub fn is_cpu_autodiff<B: Backend>() -> bool {
    cpu_kind::<B>().is_some_and(|k| k.autodiff)
}

/// Moves a value of type `T` into type `U` when they are the same type (the
/// caller has compared their `TypeId`s).
pub(crate) fn cast<T: 'static, U: 'static>(value: T) -> U {
    let boxed: Box<dyn Any> = Box::new(value);
    match boxed.downcast::<U>() {
        Ok(u) => *u,
        Err(_) => unreachable!("cast between different types (checked by the caller)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex, NdArray};

    #[test]
    fn recognises_the_cpu_backends_and_their_autodiff_forms() {
        assert_eq!(
            cpu_kind::<Flex>(),
            Some(CpuKind {
                backend: CpuBackend::Flex,
                autodiff: false
            })
        );
        assert!(is_cpu_autodiff::<Autodiff<Flex>>());
        assert!(is_cpu::<NdArray>() && !is_cpu_autodiff::<NdArray>());
        assert!(is_cpu_autodiff::<Autodiff<NdArray>>());
        // f64 NdArray is another type: the fast paths are f32-only.
        assert!(!is_cpu::<NdArray<f64>>());
    }
}
