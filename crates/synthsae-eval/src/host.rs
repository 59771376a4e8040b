//! Reading tensors back to the host.

use burn::prelude::*;

use crate::error::{EvalError, Result};

/// A float tensor as row-major `f32` on the host.
pub fn to_f32<B: Backend, const D: usize>(t: Tensor<B, D>, field: &str) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| EvalError::Device {
            field: field.to_string(),
            reason: format!("{e:?}"),
        })
}

/// An int tensor as row-major `i64` on the host.
pub fn to_i64<B: Backend, const D: usize>(t: Tensor<B, D, Int>, field: &str) -> Result<Vec<i64>> {
    t.into_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .map_err(|e| EvalError::Device {
            field: field.to_string(),
            reason: format!("{e:?}"),
        })
}

/// Per-column count of non-zero entries of a `[batch, n]` tensor: `[n]`.
/// (`≠ 0`, so negative AbsTopK latents count as active.)
pub fn nonzero_counts_per_column<B: Backend>(t: Tensor<B, 2>, field: &str) -> Result<Vec<u64>> {
    let [_, n] = t.dims();
    let counts = t.not_equal_elem(0.0).int().sum_dim(0).reshape([n]);
    Ok(to_i64(counts, field)?
        .into_iter()
        .map(|c| c.max(0) as u64)
        .collect())
}
