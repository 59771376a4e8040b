//! Cosine similarity between two sets of vectors (spec §9.1), on a Burn
//! device or as a host matrix computed in row blocks.

use burn::prelude::*;
use rayon::prelude::*;

use crate::error::{shape_err, Result};
use crate::host::to_f32;

/// Rows divided by `max(‖row‖, 1e-8)`: `[n, d]` → `[n, d]` (zero rows stay zero).
pub fn normalize_rows<B: Backend>(m: Tensor<B, 2>) -> Tensor<B, 2> {
    let norms = m.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-8);
    m / norms
}

/// Signed cosine similarity of every row of `a` (`[n_a, d]`) with every row
/// of `b` (`[n_b, d]`): `[n_a, n_b]`, on the device. Zero rows give 0.
pub fn cosine_similarities<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> Result<Tensor<B, 2>> {
    check_pair(&a, &b)?;
    Ok(normalize_rows(a).matmul(normalize_rows(b).transpose()))
}

fn check_pair<B: Backend>(a: &Tensor<B, 2>, b: &Tensor<B, 2>) -> Result<()> {
    let [_, da] = a.dims();
    let [_, db] = b.dims();
    if da != db {
        return Err(shape_err(
            "features_b",
            format!("[n_b, {da}] (same width as features_a)"),
            &b.dims(),
        ));
    }
    Ok(())
}

/// A dense `[rows, cols]` host matrix of cosine similarities (row-major
/// `f32`), signed or absolute. At 16384 × 16384 it takes 1 GiB.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityMatrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
    absolute: bool,
}

/// Bytes of output computed per device matmul block.
const BLOCK_BYTES: usize = 64 << 20;

impl SimilarityMatrix {
    /// Signed cosine similarities of the rows of `a` (`[n_a, d]`) with the
    /// rows of `b` (`[n_b, d]`), computed on their device in row blocks of
    /// `a` (so the device never holds more than ~64 MiB of output) and
    /// gathered on the host.
    pub fn compute<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> Result<Self> {
        check_pair(&a, &b)?;
        let [rows, _] = a.dims();
        let [cols, _] = b.dims();
        let mut data = Vec::new();
        data.try_reserve_exact(rows * cols).map_err(|_| {
            crate::error::invalid(
                "similarity matrix",
                format!("cannot allocate {rows} × {cols} f32 on the host"),
            )
        })?;
        let an = normalize_rows(a);
        let bt = normalize_rows(b).transpose();
        let block = (BLOCK_BYTES / (4 * cols.max(1))).clamp(1, rows.max(1));
        let mut start = 0;
        while start < rows {
            let end = (start + block).min(rows);
            let part = an.clone().slice(start..end).matmul(bt.clone());
            data.extend_from_slice(&to_f32(part, "cosine similarities")?);
            start = end;
        }
        Ok(Self {
            rows,
            cols,
            data,
            absolute: false,
        })
    }

    /// Wraps a row-major `[rows, cols]` matrix of (signed) similarities.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(shape_err(
                "similarity matrix",
                format!("{rows} × {cols} entries"),
                &[data.len()],
            ));
        }
        Ok(Self {
            rows,
            cols,
            data,
            absolute: false,
        })
    }

    /// Replaces every entry by its absolute value (in place).
    pub fn into_abs(mut self) -> Self {
        if !self.absolute {
            self.data.par_iter_mut().for_each(|x| *x = x.abs());
            self.absolute = true;
        }
        self
    }

    /// Whether the entries are absolute values.
    pub fn is_absolute(&self) -> bool {
        self.absolute
    }

    /// Number of rows (`n_a`).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (`n_b`).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row-major entries.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Entry `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.cols + j]
    }

    /// For every row, the column with the largest `|entry|` (first one on
    /// ties, as torch's `argmax`): `[rows]`. Empty when there are no columns.
    pub fn row_argmax_abs(&self) -> Vec<u32> {
        if self.cols == 0 {
            return Vec::new();
        }
        self.data
            .par_chunks(self.cols)
            .map(|row| {
                let mut best = 0usize;
                let mut best_v = f32::NEG_INFINITY;
                for (j, &x) in row.iter().enumerate() {
                    let a = x.abs();
                    if a > best_v {
                        best_v = a;
                        best = j;
                    }
                }
                best as u32
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    #[test]
    fn blocked_host_matrix_equals_device_matrix() {
        let device = Default::default();
        let a = Tensor::<B, 2>::from_data([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]], &device);
        let b = Tensor::<B, 2>::from_data([[1.0, 0.0], [0.0, 2.0]], &device);
        let dense = to_f32(cosine_similarities(a.clone(), b.clone()).unwrap(), "t").unwrap();
        let host = SimilarityMatrix::compute(a, b).unwrap();
        assert_eq!(host.data(), &dense[..]);
        let expected = [0.6, 0.8, 0.0, 0.0, -1.0, 0.0];
        for (x, e) in dense.iter().zip(expected) {
            assert!((x - e).abs() < 1e-6);
        }
        assert_eq!(host.row_argmax_abs(), vec![1, 0, 0]);
        assert_eq!(host.into_abs().get(2, 0), 1.0);
    }

    #[test]
    fn width_mismatch_is_an_error() {
        let device = Default::default();
        let a = Tensor::<B, 2>::zeros([2, 3], &device);
        let b = Tensor::<B, 2>::zeros([2, 4], &device);
        assert!(SimilarityMatrix::compute(a, b).is_err());
    }
}
