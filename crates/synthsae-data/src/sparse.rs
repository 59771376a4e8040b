//! Sparse batches of feature activations in compressed-row (CSR) form.
//!
//! This is the native representation of a batch: row `r` owns entries
//! `row_offsets[r]..row_offsets[r + 1]` of `feature_indices` and `values`.
//! Within a row, feature indices are strictly increasing. Dense tensors on a
//! Burn device are a conversion of it ([`SparseBatch::to_tensor`]).

use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::error::{bad_shape, invalid, DataError, Result};

/// A batch of `batch_size` activation rows over `num_features` features, CSR.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseBatch {
    num_features: usize,
    row_offsets: Vec<usize>,
    feature_indices: Vec<u32>,
    values: Vec<f32>,
}

impl SparseBatch {
    /// Builds a batch from CSR parts, checking every invariant.
    ///
    /// * `row_offsets`: `[batch_size + 1]`, starting at 0, non-decreasing,
    ///   ending at `feature_indices.len()`;
    /// * `feature_indices`: `[nnz]`, `< num_features`, strictly increasing
    ///   within each row;
    /// * `values`: `[nnz]`.
    pub fn from_parts(
        num_features: usize,
        row_offsets: Vec<usize>,
        feature_indices: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Self> {
        if row_offsets.is_empty() || row_offsets[0] != 0 {
            return Err(invalid("row_offsets", "must start with 0"));
        }
        if feature_indices.len() != values.len() {
            return Err(bad_shape(
                "values",
                format!("[nnz] = [{}]", feature_indices.len()),
                &[values.len()],
            ));
        }
        if *row_offsets.last().unwrap_or(&0) != feature_indices.len() {
            return Err(invalid(
                "row_offsets",
                format!(
                    "last offset {} differs from the number of entries {}",
                    row_offsets.last().copied().unwrap_or(0),
                    feature_indices.len()
                ),
            ));
        }
        for (r, w) in row_offsets.windows(2).enumerate() {
            if w[1] < w[0] {
                return Err(invalid("row_offsets", format!("decreases at row {r}")));
            }
            let row = &feature_indices[w[0]..w[1]];
            for (k, &f) in row.iter().enumerate() {
                if f as usize >= num_features {
                    return Err(invalid(
                        "feature_indices",
                        format!("index {f} in row {r} is >= num_features {num_features}"),
                    ));
                }
                if k > 0 && row[k - 1] >= f {
                    return Err(invalid(
                        "feature_indices",
                        format!("row {r} is not strictly increasing"),
                    ));
                }
            }
        }
        Ok(Self {
            num_features,
            row_offsets,
            feature_indices,
            values,
        })
    }

    /// Builds from parts the caller guarantees valid (internal fast path).
    pub(crate) fn from_parts_unchecked(
        num_features: usize,
        row_offsets: Vec<usize>,
        feature_indices: Vec<u32>,
        values: Vec<f32>,
    ) -> Self {
        debug_assert!(Self::from_parts(
            num_features,
            row_offsets.clone(),
            feature_indices.clone(),
            values.clone()
        )
        .is_ok());
        Self {
            num_features,
            row_offsets,
            feature_indices,
            values,
        }
    }

    /// An all-zero batch.
    pub fn zeros(batch_size: usize, num_features: usize) -> Self {
        Self {
            num_features,
            row_offsets: vec![0; batch_size + 1],
            feature_indices: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Converts a dense row-major `[batch_size, num_features]` slice, keeping
    /// the non-zero entries.
    pub fn from_dense(data: &[f32], batch_size: usize, num_features: usize) -> Result<Self> {
        if data.len() != batch_size * num_features {
            return Err(bad_shape(
                "activations",
                format!("[{batch_size}, {num_features}]"),
                &[data.len()],
            ));
        }
        let mut row_offsets = Vec::with_capacity(batch_size + 1);
        let mut feature_indices = Vec::new();
        let mut values = Vec::new();
        row_offsets.push(0);
        for row in data.chunks_exact(num_features.max(1)).take(batch_size) {
            for (f, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    feature_indices.push(f as u32);
                    values.push(v);
                }
            }
            row_offsets.push(feature_indices.len());
        }
        while row_offsets.len() < batch_size + 1 {
            row_offsets.push(feature_indices.len());
        }
        Ok(Self {
            num_features,
            row_offsets,
            feature_indices,
            values,
        })
    }

    /// Reads a dense `[batch, num_features]` tensor back from its device.
    pub fn from_tensor<B: Backend>(tensor: Tensor<B, 2>) -> Result<Self> {
        let [b, n] = tensor.dims();
        let data = tensor_to_vec(tensor, "activations")?;
        Self::from_dense(&data, b, n)
    }

    /// Number of rows.
    pub fn batch_size(&self) -> usize {
        self.row_offsets.len() - 1
    }

    /// Number of features (columns).
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.feature_indices.len()
    }

    /// Row offsets, `[batch_size + 1]`.
    pub fn row_offsets(&self) -> &[usize] {
        &self.row_offsets
    }

    /// Feature index of every stored entry, `[nnz]`.
    pub fn feature_indices(&self) -> &[u32] {
        &self.feature_indices
    }

    /// Value of every stored entry, `[nnz]`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Mutable values (the sparsity pattern stays fixed).
    pub fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// Feature indices (read-only) and values (mutable) at once.
    pub(crate) fn indices_and_values_mut(&mut self) -> (&[u32], &mut [f32]) {
        (&self.feature_indices, &mut self.values)
    }

    /// The feature indices and values of row `r`.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (s, e) = (self.row_offsets[r], self.row_offsets[r + 1]);
        (&self.feature_indices[s..e], &self.values[s..e])
    }

    /// Iterates over rows as `(feature_indices, values)`.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = (&[u32], &[f32])> + '_ {
        (0..self.batch_size()).map(move |r| self.row(r))
    }

    /// Number of stored entries with a value `> 0` in each row (the L0).
    pub fn row_l0(&self) -> Vec<usize> {
        self.rows()
            .map(|(_, v)| v.iter().filter(|&&x| x > 0.0).count())
            .collect()
    }

    /// Applies `relu` and removes every entry that is not `> 0`.
    ///
    /// "Active" in synthsae always means value `> 0`, in sparse and dense form
    /// alike (unlike the reference's COO path, which keeps explicit zeros).
    pub fn retain_positive(&mut self) {
        if self.values.iter().all(|&v| v > 0.0) {
            return;
        }
        let mut write = 0;
        let mut start = 0;
        for r in 0..self.batch_size() {
            let end = self.row_offsets[r + 1];
            for k in start..end {
                if self.values[k] > 0.0 {
                    self.feature_indices[write] = self.feature_indices[k];
                    self.values[write] = self.values[k];
                    write += 1;
                }
            }
            start = end;
            self.row_offsets[r + 1] = write;
        }
        self.feature_indices.truncate(write);
        self.values.truncate(write);
    }

    /// Dense row-major copy, `[batch_size * num_features]`.
    pub fn to_dense_vec(&self) -> Vec<f32> {
        let n = self.num_features;
        let mut out = vec![0.0f32; self.batch_size() * n];
        for (r, (idx, val)) in self.rows().enumerate() {
            let row = &mut out[r * n..(r + 1) * n];
            for (&f, &v) in idx.iter().zip(val) {
                row[f as usize] = v;
            }
        }
        out
    }

    /// Dense tensor `[batch_size, num_features]` on `device`.
    pub fn to_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(self.to_dense_vec(), [self.batch_size(), self.num_features]),
            device,
        )
    }
}

/// Reads any float tensor back to the host as `f32`, row-major.
pub fn tensor_to_vec<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    what: &str,
) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| DataError::Device {
            what: what.to_string(),
            reason: format!("{e:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn example() -> SparseBatch {
        SparseBatch::from_parts(5, vec![0, 2, 2, 3], vec![1, 4, 0], vec![0.5, 2.0, -1.0]).unwrap()
    }

    #[test]
    fn dense_round_trip() {
        let b = example();
        let dense = b.to_dense_vec();
        assert_eq!(
            dense,
            vec![0., 0.5, 0., 0., 2., 0., 0., 0., 0., 0., -1., 0., 0., 0., 0.]
        );
        assert_eq!(SparseBatch::from_dense(&dense, 3, 5).unwrap(), b);
        let t = b.to_tensor::<NdArray>(&Default::default());
        assert_eq!(SparseBatch::from_tensor(t).unwrap(), b);
    }

    #[test]
    fn retain_positive_drops_non_positive() {
        let mut b = example();
        b.values_mut()[0] = 0.0;
        b.retain_positive();
        assert_eq!(b.row_offsets(), &[0, 1, 1, 1]);
        assert_eq!(b.feature_indices(), &[4]);
        assert_eq!(b.row_l0(), vec![1, 0, 0]);
    }

    #[test]
    fn invalid_parts_are_rejected() {
        let e = SparseBatch::from_parts(3, vec![0, 2], vec![2, 1], vec![1., 1.]).unwrap_err();
        assert!(e.to_string().contains("strictly increasing"), "{e}");
        let e = SparseBatch::from_parts(3, vec![0, 1], vec![3], vec![1.]).unwrap_err();
        assert!(e.to_string().contains(">= num_features"), "{e}");
        let e = SparseBatch::from_parts(3, vec![0, 2], vec![0], vec![1.]).unwrap_err();
        assert!(e.to_string().contains("row_offsets"), "{e}");
        let e = SparseBatch::from_dense(&[1.0; 5], 2, 3).unwrap_err();
        assert!(e.to_string().contains("activations"), "{e}");
    }
}
