//! [`Csr`]: the one compressed-sparse-row type of the workspace.
//!
//! Sampled feature activations (the data crate's batches), an SAE's sparse
//! latents and the kept entries of a TopK step are all rows of a few
//! non-zero entries over many columns; they share this type. Row `r` owns
//! entries `offsets[r]..offsets[r + 1]` of `indices` and `values`; within a
//! row, column indices strictly increase. Dense tensors on a Burn device are
//! a conversion of it ([`Csr::to_tensor`]).

use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::error::{bad_shape, invalid, Result};
use crate::view::try_to_vec;

/// `n_rows` rows over `n_cols` columns, compressed by rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    n_cols: usize,
    offsets: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Csr {
    /// Builds from parts, checking every invariant.
    ///
    /// * `offsets`: `[n_rows + 1]`, starting at 0, non-decreasing, ending at
    ///   `indices.len()`;
    /// * `indices`: `[nnz]`, `< n_cols`, strictly increasing within each row;
    /// * `values`: `[nnz]`.
    pub fn from_parts(
        n_cols: usize,
        offsets: Vec<usize>,
        indices: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Self> {
        if offsets.is_empty() || offsets[0] != 0 {
            return Err(invalid("offsets", "must start with 0"));
        }
        if indices.len() != values.len() {
            return Err(bad_shape(
                "values",
                format!("[nnz] = [{}]", indices.len()),
                &[values.len()],
            ));
        }
        if *offsets.last().unwrap_or(&0) != indices.len() {
            return Err(invalid(
                "offsets",
                format!(
                    "last offset {} differs from the number of entries {}",
                    offsets.last().copied().unwrap_or(0),
                    indices.len()
                ),
            ));
        }
        for (r, w) in offsets.windows(2).enumerate() {
            if w[1] < w[0] {
                return Err(invalid("offsets", format!("decreases at row {r}")));
            }
            let row = &indices[w[0]..w[1]];
            for (k, &c) in row.iter().enumerate() {
                if c as usize >= n_cols {
                    return Err(invalid(
                        "indices",
                        format!("index {c} in row {r} is >= the number of columns {n_cols}"),
                    ));
                }
                if k > 0 && row[k - 1] >= c {
                    return Err(invalid(
                        "indices",
                        format!("row {r} is not strictly increasing"),
                    ));
                }
            }
        }
        Ok(Self {
            n_cols,
            offsets,
            indices,
            values,
        })
    }

    /// Builds from parts the caller guarantees valid (the invariants of
    /// [`Csr::from_parts`]; checked in debug builds only).
    pub fn from_parts_unchecked(
        n_cols: usize,
        offsets: Vec<usize>,
        indices: Vec<u32>,
        values: Vec<f32>,
    ) -> Self {
        debug_assert!(
            Self::from_parts(n_cols, offsets.clone(), indices.clone(), values.clone()).is_ok()
        );
        Self {
            n_cols,
            offsets,
            indices,
            values,
        }
    }

    /// No rows, `n_cols` columns; rows are added with [`Csr::push_row`].
    pub fn empty(n_cols: usize) -> Self {
        Self::zeros(0, n_cols)
    }

    /// `n_rows` rows without entries.
    pub fn zeros(n_rows: usize, n_cols: usize) -> Self {
        Self {
            n_cols,
            offsets: vec![0; n_rows + 1],
            indices: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The non-zero entries of a dense row-major `[n_rows, n_cols]` slice.
    pub fn from_dense(data: &[f32], n_rows: usize, n_cols: usize) -> Result<Self> {
        if data.len() != n_rows * n_cols {
            return Err(bad_shape(
                "activations",
                format!("[{n_rows}, {n_cols}]"),
                &[data.len()],
            ));
        }
        let mut out = Self::empty(n_cols);
        out.offsets.reserve(n_rows);
        for r in 0..n_rows {
            let row = &data[r * n_cols..(r + 1) * n_cols];
            out.push_row(row.iter().enumerate().map(|(c, &v)| (c as u32, v)));
        }
        Ok(out)
    }

    /// The non-zero entries of a dense `[n_rows, n_cols]` tensor, read back
    /// from its device.
    pub fn from_tensor<B: Backend>(tensor: Tensor<B, 2>) -> Result<Self> {
        let [b, n] = tensor.dims();
        let data = try_to_vec(tensor, "activations")?;
        Self::from_dense(&data, b, n)
    }

    /// Appends one row from its `(column, value)` entries in increasing
    /// column order; entries with value 0 are skipped.
    pub fn push_row(&mut self, entries: impl IntoIterator<Item = (u32, f32)>) {
        for (c, v) in entries {
            if v != 0.0 {
                debug_assert!((c as usize) < self.n_cols);
                debug_assert!(self.row_is_open_after(c));
                self.indices.push(c);
                self.values.push(v);
            }
        }
        self.offsets.push(self.indices.len());
    }

    /// Whether column `c` may follow the entries pushed so far into the
    /// open row (debug check of the increasing order).
    fn row_is_open_after(&self, c: u32) -> bool {
        let start = *self.offsets.last().unwrap_or(&0);
        self.indices.len() == start || self.indices[self.indices.len() - 1] < c
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Row offsets, `[n_rows + 1]`.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Column of every stored entry, `[nnz]`.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Value of every stored entry, `[nnz]`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Mutable values (the sparsity pattern stays fixed).
    pub fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// Column indices (read-only) and values (mutable) at once.
    pub fn indices_and_values_mut(&mut self) -> (&[u32], &mut [f32]) {
        (&self.indices, &mut self.values)
    }

    /// The columns and values of row `r`.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (s, e) = (self.offsets[r], self.offsets[r + 1]);
        (&self.indices[s..e], &self.values[s..e])
    }

    /// Rows as `(columns, values)`.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = (&[u32], &[f32])> + '_ {
        (0..self.n_rows()).map(move |r| self.row(r))
    }

    /// `(row, column)` of every entry, in storage order.
    pub fn positions(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.n_rows()).flat_map(move |r| {
            self.indices[self.offsets[r]..self.offsets[r + 1]]
                .iter()
                .map(move |&c| (r, c as usize))
        })
    }

    /// Number of stored entries with a value `> 0` in each row (the L0 of a
    /// batch whose active entries are the positive ones).
    pub fn row_l0(&self) -> Vec<usize> {
        self.rows()
            .map(|(_, v)| v.iter().filter(|&&x| x > 0.0).count())
            .collect()
    }

    /// Number of stored entries in each column, `[n_cols]` (how often each
    /// latent fired, when every stored value is non-zero).
    pub fn column_counts(&self) -> Vec<u64> {
        let mut counts = vec![0u64; self.n_cols];
        for &c in &self.indices {
            counts[c as usize] += 1;
        }
        counts
    }

    /// Removes every entry that is not `> 0`.
    ///
    /// "Active" in synthsae's batches always means value `> 0`, in sparse and
    /// dense form alike (unlike the reference's COO path, which keeps
    /// explicit zeros).
    pub fn retain_positive(&mut self) {
        if self.values.iter().all(|&v| v > 0.0) {
            return;
        }
        let mut write = 0;
        let mut start = 0;
        for r in 0..self.n_rows() {
            let end = self.offsets[r + 1];
            for k in start..end {
                if self.values[k] > 0.0 {
                    self.indices[write] = self.indices[k];
                    self.values[write] = self.values[k];
                    write += 1;
                }
            }
            start = end;
            self.offsets[r + 1] = write;
        }
        self.indices.truncate(write);
        self.values.truncate(write);
    }

    /// Dense row-major copy, `[n_rows * n_cols]`.
    pub fn to_dense_vec(&self) -> Vec<f32> {
        let n = self.n_cols;
        let mut out = vec![0.0f32; self.n_rows() * n];
        for (r, (idx, val)) in self.rows().enumerate() {
            let row = &mut out[r * n..(r + 1) * n];
            for (&c, &v) in idx.iter().zip(val) {
                row[c as usize] = v;
            }
        }
        out
    }

    /// Dense tensor `[n_rows, n_cols]` on `device`.
    pub fn to_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(self.to_dense_vec(), [self.n_rows(), self.n_cols]),
            device,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn example() -> Csr {
        Csr::from_parts(5, vec![0, 2, 2, 3], vec![1, 4, 0], vec![0.5, 2.0, -1.0]).unwrap()
    }

    #[test]
    fn dense_round_trip() {
        let b = example();
        let dense = b.to_dense_vec();
        assert_eq!(
            dense,
            vec![0., 0.5, 0., 0., 2., 0., 0., 0., 0., 0., -1., 0., 0., 0., 0.]
        );
        assert_eq!(Csr::from_dense(&dense, 3, 5).unwrap(), b);
        let t = b.to_tensor::<NdArray>(&Default::default());
        assert_eq!(Csr::from_tensor(t).unwrap(), b);
    }

    #[test]
    fn rows_counts_and_positions() {
        let mut z = Csr::empty(4);
        z.push_row([(0, 1.5), (2, 0.0), (3, -2.0)]);
        z.push_row([]);
        z.push_row([(2, 4.0)]);
        assert_eq!(z.n_rows(), 3);
        assert_eq!(z.nnz(), 3);
        assert_eq!(z.offsets(), &[0, 2, 2, 3]);
        assert_eq!(z.row(0), (&[0u32, 3][..], &[1.5f32, -2.0][..]));
        assert_eq!(z.column_counts(), vec![1, 0, 1, 1]);
        assert_eq!(
            z.positions().collect::<Vec<_>>(),
            vec![(0, 0), (0, 3), (2, 2)]
        );
        assert_eq!(z.row_l0(), vec![1, 0, 1]);
    }

    #[test]
    fn retain_positive_drops_non_positive() {
        let mut b = example();
        b.values_mut()[0] = 0.0;
        b.retain_positive();
        assert_eq!(b.offsets(), &[0, 1, 1, 1]);
        assert_eq!(b.indices(), &[4]);
        assert_eq!(b.row_l0(), vec![1, 0, 0]);
    }

    #[test]
    fn invalid_parts_are_rejected() {
        let e = Csr::from_parts(3, vec![0, 2], vec![2, 1], vec![1., 1.]).unwrap_err();
        assert!(e.to_string().contains("strictly increasing"), "{e}");
        let e = Csr::from_parts(3, vec![0, 1], vec![3], vec![1.]).unwrap_err();
        assert!(e.to_string().contains(">= the number of columns"), "{e}");
        let e = Csr::from_parts(3, vec![0, 2], vec![0], vec![1.]).unwrap_err();
        assert!(e.to_string().contains("offsets"), "{e}");
        let e = Csr::from_dense(&[1.0; 5], 2, 3).unwrap_err();
        assert!(e.to_string().contains("activations"), "{e}");
    }
}
