//! Row assembly: the rows each parallel task draws, and their
//! concatenation into one CSR batch.

use synthsae_host::Csr;

/// Rows handled by one task of row-wise firing (copula rows, gated rows).
pub(super) const ROW_BLOCK: usize = 16;

/// Rows drawn by one task: entries per row, indices and (when the task drew
/// them) values.
#[derive(Default)]
pub(super) struct RowsPart {
    pub(super) counts: Vec<usize>,
    pub(super) idx: Vec<u32>,
    pub(super) vals: Vec<f32>,
}

impl RowsPart {
    /// Appends one row of `(feature, value)` entries.
    pub(super) fn push_row(&mut self, row: &[(u32, f32)]) {
        self.counts.push(row.len());
        self.idx.extend(row.iter().map(|e| e.0));
        self.vals.extend(row.iter().map(|e| e.1));
    }
}

/// Concatenates the tasks' rows into a CSR batch `[batch_size, n]` (values
/// 0 where a task drew none).
pub(super) fn assemble_parts(n: usize, batch_size: usize, parts: Vec<RowsPart>) -> Csr {
    let mut row_offsets = Vec::with_capacity(batch_size + 1);
    row_offsets.push(0);
    let nnz = parts.iter().map(|p| p.idx.len()).sum();
    let mut indices = Vec::with_capacity(nnz);
    let mut values = Vec::with_capacity(nnz);
    for part in parts {
        for c in part.counts {
            row_offsets.push(row_offsets.last().copied().unwrap_or(0) + c);
        }
        if part.vals.len() == part.idx.len() {
            values.extend(part.vals);
        } else {
            values.resize(values.len() + part.idx.len(), 0.0);
        }
        indices.extend(part.idx);
    }
    Csr::from_parts_unchecked(n, row_offsets, indices, values)
}
