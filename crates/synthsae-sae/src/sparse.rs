//! Latents kept sparse: what [`crate::Sae::forward_sparse`] returns.
//!
//! A TopK SAE with 16384 latents and k 25 has 0.15 % of its `[batch, S]`
//! latents non-zero; an evaluator that only counts firings, gathers a few
//! values and reconstructs never needs the dense matrix (268 MB per 4096
//! rows), so the SAE can hand the non-zero entries over directly.

use burn::prelude::*;

/// The non-zero entries of a `[rows, d_sae]` latent matrix, row by row
/// (compressed sparse rows): row `r` holds `cols[offsets[r]..offsets[r + 1]]`
/// (strictly increasing latent indices) with `values` at the same positions,
/// every value `≠ 0`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseLatents {
    /// Number of rows (samples).
    pub rows: usize,
    /// Number of latents `S`.
    pub d_sae: usize,
    /// Row starts into `cols` / `values`: `[rows + 1]`, `offsets[0] = 0`.
    pub offsets: Vec<usize>,
    /// Latent index of each entry: `[nnz]`.
    pub cols: Vec<u32>,
    /// Activation of each entry: `[nnz]`.
    pub values: Vec<f32>,
}

impl SparseLatents {
    /// No rows.
    pub fn empty(d_sae: usize) -> Self {
        Self {
            rows: 0,
            d_sae,
            offsets: vec![0],
            cols: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Appends one row from its non-zero `(latent, value)` entries in
    /// increasing latent order (entries with value 0 are skipped).
    pub fn push_row(&mut self, entries: impl IntoIterator<Item = (u32, f32)>) {
        for (c, v) in entries {
            if v != 0.0 {
                debug_assert!((c as usize) < self.d_sae);
                self.cols.push(c);
                self.values.push(v);
            }
        }
        self.rows += 1;
        self.offsets.push(self.cols.len());
    }

    /// Number of non-zero entries.
    pub fn nnz(&self) -> usize {
        self.cols.len()
    }

    /// Row `r`: its latent indices and values.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.offsets[r], self.offsets[r + 1]);
        (&self.cols[a..b], &self.values[a..b])
    }

    /// Per-latent number of rows where it is non-zero: `[d_sae]`.
    pub fn fire_counts(&self) -> Vec<u64> {
        let mut counts = vec![0u64; self.d_sae];
        for &c in &self.cols {
            counts[c as usize] += 1;
        }
        counts
    }

    /// Row-major dense values `[rows · d_sae]`.
    pub fn to_dense_vec(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.rows * self.d_sae];
        for r in 0..self.rows {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                out[r * self.d_sae + c as usize] = v;
            }
        }
        out
    }

    /// The dense `[rows, d_sae]` tensor.
    pub fn to_dense<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(self.to_dense_vec(), [self.rows, self.d_sae]),
            device,
        )
    }
}

/// One batch through an SAE with sparse latents.
#[derive(Debug, Clone)]
pub struct SparseForward<B: Backend> {
    /// The latents `encode` would return, sparse: `[batch, d_sae]`.
    pub latents: SparseLatents,
    /// The reconstruction `decode` would return: `[batch, d_in]`.
    pub output: Tensor<B, 2>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn rows_counts_and_dense_form() {
        let mut z = SparseLatents::empty(4);
        z.push_row([(0, 1.5), (2, 0.0), (3, -2.0)]);
        z.push_row([]);
        z.push_row([(2, 4.0)]);
        assert_eq!(z.rows, 3);
        assert_eq!(z.nnz(), 3);
        assert_eq!(z.offsets, vec![0, 2, 2, 3]);
        assert_eq!(z.row(0), (&[0u32, 3][..], &[1.5f32, -2.0][..]));
        assert_eq!(z.fire_counts(), vec![1, 0, 1, 1]);
        assert_eq!(
            z.to_dense_vec(),
            vec![1.5, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0]
        );
        let t = z.to_dense::<NdArray>(&Default::default());
        assert_eq!(t.dims(), [3, 4]);
    }
}
