//! Mean number of active entries per row.

use burn::prelude::*;
use synthsae_host::Csr;

use crate::error::Result;
use crate::readback::to_i64;

/// Mean L0: the number of entries `≠ 0` per row, averaged over all rows seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct L0Calculator {
    active: u64,
    rows: u64,
}

impl L0Calculator {
    /// An empty calculator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a dense `[batch, n]` batch (counted on its device).
    pub fn add_batch<B: Backend>(&mut self, acts: Tensor<B, 2>) -> Result<()> {
        let [rows, _] = acts.dims();
        let n = to_i64(
            acts.not_equal_elem(0.0).int().sum().reshape([1]),
            "activations",
        )?[0];
        self.add_counts(n.max(0) as u64, rows);
        Ok(())
    }

    /// Adds a sparse batch (entries stored but equal to 0 do not count).
    pub fn add_sparse(&mut self, batch: &Csr) {
        let active = batch.values().iter().filter(|&&v| v != 0.0).count();
        self.add_counts(active as u64, batch.n_rows());
    }

    /// Adds `active` non-zero entries spread over `rows` rows.
    pub fn add_counts(&mut self, active: u64, rows: usize) {
        self.active += active;
        self.rows += rows as u64;
    }

    /// Mean active entries per row; 0.0 before any row.
    pub fn compute(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.active as f64 / self.rows as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn counts_negative_entries_and_averages_rows() {
        let mut c = L0Calculator::new();
        assert_eq!(c.compute(), 0.0);
        let t = Tensor::<NdArray, 2>::from_data(
            [[1.0, -2.0, 0.0], [0.0, 0.0, 0.0]],
            &Default::default(),
        );
        c.add_batch(t).unwrap();
        let s = Csr::from_parts(3, vec![0, 3], vec![0, 1, 2], vec![1.0, 0.0, 2.0]).unwrap();
        c.add_sparse(&s);
        assert_eq!(c.compute(), 4.0 / 3.0);
    }
}
