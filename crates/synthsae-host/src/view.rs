//! Tensor values on the host: read-backs and zero-copy views.

use burn::prelude::*;
use burn::tensor::TensorPrimitive;

use crate::backend::{cast, cpu_kind, CpuBackend};
use crate::error::{HostError, Result};

/// A float tensor's values as row-major `f32` (converted when its dtype
/// differs; the f32 buffer is taken over, not copied, when it can be).
/// Reports the backend's message, naming `what`, when the read-back fails.
pub fn try_to_vec<B: Backend, const D: usize>(t: Tensor<B, D>, what: &str) -> Result<Vec<f32>> {
    let data = t.into_data();
    let data = if data.dtype == burn::tensor::DType::F32 {
        data
    } else {
        data.convert::<f32>()
    };
    data.into_vec::<f32>().map_err(|e| HostError::Device {
        what: what.to_string(),
        reason: format!("{e:?}"),
    })
}

/// [`try_to_vec`] for tensors that are f32 on a backend whose read-back
/// cannot fail (the training and inference internals); empty on failure.
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    try_to_vec(t, "tensor").unwrap_or_default()
}

/// An int tensor as row-major `i64` on the host.
pub fn try_to_i64<B: Backend, const D: usize>(
    t: Tensor<B, D, Int>,
    what: &str,
) -> Result<Vec<i64>> {
    t.into_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .map_err(|e| HostError::Device {
            what: what.to_string(),
            reason: format!("{e:?}"),
        })
}

/// An `f32` tensor's values on the host, row-major: Flex's own buffer when
/// it is contiguous f32 (no copy: on a CPU backend "the host" is where the
/// tensor already lives), else a copy.
pub enum HostF32 {
    /// Borrowed from a Flex tensor (kept alive by holding it).
    #[cfg(feature = "flex")]
    Flex(burn::backend::flex::FlexTensor),
    /// A copy.
    Owned(Vec<f32>),
}

impl std::ops::Deref for HostF32 {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex(t) => t
                .as_slice::<f32>()
                .expect("checked contiguous f32 on creation"),
            Self::Owned(v) => v,
        }
    }
}

/// The values of `t` (untracked) on the host, without a copy on `Flex` and
/// `Autodiff<Flex>` (see [`HostF32`]); a copy on every other backend.
pub fn host_values<B: Backend, const N: usize>(t: Tensor<B, N>) -> HostF32 {
    #[cfg(feature = "flex")]
    if let Some(kind) = cpu_kind::<B>() {
        use burn::backend::{Autodiff, Flex};
        if kind.backend == CpuBackend::Flex {
            let prim = if kind.autodiff {
                let t: Tensor<Autodiff<Flex>, N> = cast(t);
                t.inner().into_primitive().tensor()
            } else {
                let t: Tensor<Flex, N> = cast(t);
                t.into_primitive().tensor()
            };
            return flex_view::<N>(prim);
        }
    }
    HostF32::Owned(to_vec(t.detach()))
}

/// [`HostF32`] of an inner-backend primitive.
pub fn host_view<I: Backend, const N: usize>(
    p: <I as burn::tensor::backend::BackendTypes>::FloatTensorPrimitive,
) -> HostF32 {
    #[cfg(feature = "flex")]
    if cpu_kind::<I>().is_some_and(|k| k.backend == CpuBackend::Flex && !k.autodiff) {
        return flex_view::<N>(cast(p));
    }
    HostF32::Owned(to_vec(Tensor::<I, N>::from_primitive(
        TensorPrimitive::Float(p),
    )))
}

#[cfg(feature = "flex")]
fn flex_view<const N: usize>(t: burn::backend::flex::FlexTensor) -> HostF32 {
    if t.as_slice::<f32>().is_some() {
        return HostF32::Flex(t);
    }
    HostF32::Owned(to_vec(Tensor::<burn::backend::Flex, N>::from_primitive(
        TensorPrimitive::Float(t),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex, NdArray};

    #[test]
    fn views_equal_copies_on_every_backend() {
        let data = vec![1.0f32, -2.0, 3.5, 0.0, 5.0, 6.25];
        fn check<B: Backend>(data: &[f32]) {
            let t = Tensor::<B, 2>::from_data(
                TensorData::new(data.to_vec(), [2, 3]),
                &Default::default(),
            );
            assert_eq!(&*host_values(t.clone()), data);
            assert_eq!(
                to_vec(t.clone().transpose()),
                vec![1.0, 0.0, -2.0, 5.0, 3.5, 6.25]
            );
            assert_eq!(
                &*host_values(t.transpose()),
                &[1.0, 0.0, -2.0, 5.0, 3.5, 6.25]
            );
        }
        check::<Flex>(&data);
        check::<Autodiff<Flex>>(&data);
        check::<NdArray>(&data);
    }
}
