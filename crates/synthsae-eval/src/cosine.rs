//! Cosine similarity between two sets of vectors (spec §9.1), on a Burn
//! device or as a host matrix computed in row blocks (the gemm itself is
//! `synthsae_host::cosine`).

use burn::prelude::*;
use rayon::prelude::*;

use crate::error::{shape_err, Result};
use crate::readback::to_f32;

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

/// An empty host buffer with room for `rows · cols` entries, or a clear error.
fn alloc_matrix(rows: usize, cols: usize) -> Result<Vec<f32>> {
    let mut data = Vec::new();
    rows.checked_mul(cols)
        .and_then(|n| data.try_reserve_exact(n).ok())
        .ok_or_else(|| {
            crate::error::invalid(
                "similarity matrix",
                format!("cannot allocate {rows} × {cols} f32 on the host"),
            )
        })?;
    Ok(data)
}

impl SimilarityMatrix {
    /// Signed cosine similarities of the rows of `a` (`[n_a, d]`) with the
    /// rows of `b` (`[n_b, d]`), gathered on the host. On a CPU backend the
    /// matrix, which ends on the host anyway, is one direct gemm into its
    /// buffer ([`SimilarityMatrix::compute_host`]); on other backends it is
    /// computed on the device in row blocks of `a`, so that the device never
    /// holds more than ~64 MiB of output.
    pub fn compute<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> Result<Self> {
        check_pair(&a, &b)?;
        let [rows, d] = a.dims();
        let [cols, _] = b.dims();
        if d > 0 && synthsae_host::is_cpu::<B>() {
            let a = to_f32(a, "features_a")?;
            let b = to_f32(b, "features_b")?;
            return Self::compute_host(&a, &b, d);
        }
        let mut data = alloc_matrix(rows, cols)?;
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
        Ok(Self::signed(rows, cols, data))
    }

    /// Signed cosine similarities of the rows of the row-major host matrices
    /// `a` (`[n_a, d]`) and `b` (`[n_b, d]`), by a direct multithreaded gemm
    /// into the result buffer (no intermediate copies). Zero rows give 0.
    pub fn compute_host(a: &[f32], b: &[f32], d: usize) -> Result<Self> {
        if d == 0 {
            return Err(crate::error::invalid(
                "d",
                "vectors must have at least one dimension",
            ));
        }
        let rows_of = |m: &[f32], field: &str| {
            if !m.len().is_multiple_of(d) {
                return Err(shape_err(field, format!("[n, {d}]"), &[m.len()]));
            }
            Ok(m.len() / d)
        };
        let (rows, cols) = (rows_of(a, "features_a")?, rows_of(b, "features_b")?);
        let mut data = alloc_matrix(rows, cols)?;
        data.resize(rows * cols, 0.0);
        synthsae_host::cosine::cosine_similarities_into(a, b, d, &mut data);
        Ok(Self::signed(rows, cols, data))
    }

    /// A matrix of signed similarities; `data` holds `rows · cols` entries.
    fn signed(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        Self {
            rows,
            cols,
            data,
            absolute: false,
        }
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
        Ok(Self::signed(rows, cols, data))
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
        assert_eq!(host.data().len(), dense.len());
        for (h, x) in host.data().iter().zip(&dense) {
            assert!((h - x).abs() < 1e-6, "{h} vs {x}");
        }
        let expected = [0.6, 0.8, 0.0, 0.0, -1.0, 0.0];
        for (x, e) in dense.iter().zip(expected) {
            assert!((x - e).abs() < 1e-6);
        }
        assert_eq!(host.row_argmax_abs(), vec![1, 0, 0]);
        assert_eq!(host.into_abs().get(2, 0), 1.0);
    }

    #[test]
    fn host_gemm_matches_direct_dot_products() {
        // 37 × 1100 output (not a multiple of any block), d 5.
        let (n_a, n_b, d) = (37, 1100, 5);
        let a: Vec<f32> = (0..n_a * d)
            .map(|i| ((i * 7919) % 13) as f32 - 6.0)
            .collect();
        let b: Vec<f32> = (0..n_b * d)
            .map(|i| ((i * 104729) % 11) as f32 - 5.0)
            .collect();
        let sim = SimilarityMatrix::compute_host(&a, &b, d).unwrap();
        assert_eq!((sim.rows(), sim.cols()), (n_a, n_b));
        for i in 0..n_a {
            for j in 0..n_b {
                let (x, y) = (&a[i * d..(i + 1) * d], &b[j * d..(j + 1) * d]);
                let dot: f64 = x.iter().zip(y).map(|(p, q)| (p * q) as f64).sum();
                let nx = x
                    .iter()
                    .map(|p| (p * p) as f64)
                    .sum::<f64>()
                    .sqrt()
                    .max(1e-8);
                let ny = y
                    .iter()
                    .map(|p| (p * p) as f64)
                    .sum::<f64>()
                    .sqrt()
                    .max(1e-8);
                let want = dot / (nx * ny);
                assert!((sim.get(i, j) as f64 - want).abs() < 1e-6, "({i}, {j})");
            }
        }
        assert!(SimilarityMatrix::compute_host(&a, &b, 0).is_err());
        assert!(SimilarityMatrix::compute_host(&a[1..], &b, d).is_err());
    }

    #[test]
    fn width_mismatch_is_an_error() {
        let device = Default::default();
        let a = Tensor::<B, 2>::zeros([2, 3], &device);
        let b = Tensor::<B, 2>::zeros([2, 4], &device);
        assert!(SimilarityMatrix::compute(a, b).is_err());
    }
}
