//! The entries of a [`Csr`] grouped by column, for backward passes that
//! accumulate per column (weight and bias gradients).

use crate::csr::Csr;

/// Entries of `m` grouped by column: `(column offsets [n_cols + 1], entry
/// index of each slot [nnz])`, rows ascending within a column.
pub(crate) fn by_column(m: &Csr) -> (Vec<u32>, Vec<u32>) {
    let width = m.n_cols();
    let cols = m.indices();
    let mut offsets = vec![0u32; width + 1];
    for &c in cols {
        offsets[c as usize + 1] += 1;
    }
    for c in 0..width {
        offsets[c + 1] += offsets[c];
    }
    let mut cursor = offsets.clone();
    let mut slots = vec![0u32; cols.len()];
    for (e, &c) in cols.iter().enumerate() {
        let k = &mut cursor[c as usize];
        slots[*k as usize] = e as u32;
        *k += 1;
    }
    (offsets, slots)
}

/// Row of every entry of `m`, `[nnz]`.
pub(crate) fn entry_rows(m: &Csr) -> Vec<u32> {
    let mut rows = Vec::with_capacity(m.nnz());
    for (r, w) in m.offsets().windows(2).enumerate() {
        rows.extend(std::iter::repeat_n(r as u32, w[1] - w[0]));
    }
    rows
}
