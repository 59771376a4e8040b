//! Reading tensors back to the host, with failures as [`EvalError`]s that
//! name the tensor (built on [`synthsae_host::try_to_vec`] and
//! [`synthsae_host::try_to_i64`]).

use burn::prelude::*;
use synthsae_host::HostError;

use crate::error::{EvalError, Result};

/// A host read-back error as the evaluator reports it: a failed read-back
/// names the tensor as `field`.
fn eval_error(e: HostError) -> EvalError {
    match e {
        HostError::Device { what, reason } => EvalError::Device {
            field: what,
            reason,
        },
        other => EvalError::Host(other),
    }
}

/// A float tensor as row-major `f32` on the host.
pub fn to_f32<B: Backend, const D: usize>(t: Tensor<B, D>, field: &str) -> Result<Vec<f32>> {
    synthsae_host::try_to_vec(t, field).map_err(eval_error)
}

/// An int tensor as row-major `i64` on the host.
pub fn to_i64<B: Backend, const D: usize>(t: Tensor<B, D, Int>, field: &str) -> Result<Vec<i64>> {
    synthsae_host::try_to_i64(t, field).map_err(eval_error)
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

/// The entries of a `[rows, s]` tensor at flat positions `row · s + col`, in
/// order. Few positions are gathered on the device; when they are more than
/// an eighth of the tensor, reading it back whole is cheaper.
pub fn gather_flat<B: Backend>(
    t: Tensor<B, 2>,
    positions: &[i64],
    field: &str,
) -> Result<Vec<f32>> {
    let [rows, s] = t.dims();
    if positions.is_empty() {
        return Ok(Vec::new());
    }
    if positions.len() > rows * s / 8 {
        let all = to_f32(t, field)?;
        return Ok(positions.iter().map(|&p| all[p as usize]).collect());
    }
    let device = t.device();
    let idx = Tensor::<B, 1, Int>::from_data(
        TensorData::new(positions.to_vec(), [positions.len()]),
        &device,
    );
    to_f32(t.reshape([rows * s]).select(0, idx), field)
}
