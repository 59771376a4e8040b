//! Primitive conversions shared by the custom autodiff nodes: `Autodiff<I>`
//! and the inner backend's float primitive, host buffers to inner tensors.

use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;

/// The autodiff backend over the inner CPU backend `I`.
pub(crate) type Ad<I> = Autodiff<I>;

/// The inner backend's float tensor primitive.
pub(crate) type Prim<I> = <I as burn::tensor::backend::BackendTypes>::FloatTensorPrimitive;

/// A row-major host buffer of shape `shape` as an inner-backend primitive.
pub(crate) fn prim<I: Backend, const N: usize>(
    data: Vec<f32>,
    shape: [usize; N],
    device: &I::Device,
) -> Prim<I> {
    Tensor::<I, N>::from_data(TensorData::new(data, shape), device)
        .into_primitive()
        .tensor()
}

/// An inner-backend primitive as a tensor of rank `N`.
pub(crate) fn inner<I: Backend, const N: usize>(p: Prim<I>) -> Tensor<I, N> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}
