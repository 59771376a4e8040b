//! Independent firing. Each parent-free feature walks its column of the
//! batch with geometric skips (`O(N + nnz)` per batch, no dense `[B, N]`
//! draw); with a gating hierarchy, each row's magnitudes and children
//! follow (one Bernoulli per child of an active parent).

use rayon::prelude::*;

use super::draws::{exp_skip, unit_uniform};
use super::gating::{expand_row, ChildLaw, Gating};
use super::rows::{assemble_parts, RowsPart, ROW_BLOCK};
use crate::per_feature::FeatureParams;
use crate::rng::{block_rng, SampleRng};
use synthsae_host::Csr;

/// Features handled by one task of independent firing.
const FEATURE_BLOCK: usize = 1024;
/// Stream-separation constant of the gated rows' children.
const CHILD_STREAM: u64 = 0x94D0_49BB_1331_11EB;

/// Independent firing. Features without a required parent walk their
/// column of the batch with geometric skips (`⌊E / h_j⌋`, `E ~ Exp(1)`,
/// `h_j = −ln(1 − p_j)`); with a gating hierarchy, each child is then
/// drawn (one Bernoulli) only in rows where its parent fired.
pub(super) fn fire_independent(
    features: &FeatureParams,
    gated: Option<&Gating>,
    batch_size: usize,
    key: u64,
) -> Csr {
    let n = features.num_features();
    let all;
    let gating = match gated {
        Some(g) => g,
        None => {
            all = Gating::all_free(n);
            &all
        }
    };
    let free = &gating.free;
    let blocks: Vec<Vec<(u32, u32)>> = (0..free.len().div_ceil(FEATURE_BLOCK))
        .into_par_iter()
        .map(|blk| {
            let end = ((blk + 1) * FEATURE_BLOCK).min(free.len());
            independent_columns(
                features.log_q(),
                &free[blk * FEATURE_BLOCK..end],
                batch_size,
                &mut block_rng(key, blk as u64),
            )
        })
        .collect();
    // Counting sort into CSR; blocks and features within a block are in
    // increasing feature order, so each row comes out sorted.
    let mut row_offsets = vec![0usize; batch_size + 1];
    for &(r, _) in blocks.iter().flatten() {
        row_offsets[r as usize + 1] += 1;
    }
    for r in 0..batch_size {
        row_offsets[r + 1] += row_offsets[r];
    }
    let nnz = row_offsets[batch_size];
    let mut cursor = row_offsets.clone();
    let mut indices = vec![0u32; nnz];
    for &(r, f) in blocks.iter().flatten() {
        let c = &mut cursor[r as usize];
        indices[*c] = f;
        *c += 1;
    }
    if gated.is_none() {
        return Csr::from_parts_unchecked(n, row_offsets, indices, vec![0.0; nnz]);
    }
    // Gated: magnitudes and children, row block by row block (one
    // Bernoulli(p_c) per child of an active parent; see `expand_row`).
    let child_key = key ^ CHILD_STREAM;
    let parts: Vec<RowsPart> = (0..batch_size.div_ceil(ROW_BLOCK))
        .into_par_iter()
        .map(|blk| {
            let (r0, r1) = (blk * ROW_BLOCK, ((blk + 1) * ROW_BLOCK).min(batch_size));
            independent_rows(
                features,
                gating,
                &indices,
                &row_offsets[r0..=r1],
                &mut block_rng(child_key, blk as u64),
            )
        })
        .collect();
    assemble_parts(n, batch_size, parts)
}

synthsae_host::multiversioned! {
    fma:
    /// One task of independent firing: walks the batch column of each feature
    /// in `features` with geometric skips (`⌊E / h_j⌋`, `E ~ Exp(1)`,
    /// `h_j = −ln(1 − p_j) = −log_q[j]`) and returns the `(row, feature)`
    /// entries, feature by feature. Multiversioned like the low-rank block
    /// (its `f64 → u64` conversions are one instruction with AVX-512).
    fn independent_columns(
        log_q: &[f64],
        features: &[u32],
        batch_size: usize,
        rng: &mut SampleRng,
    ) -> Vec<(u32, u32)> {
        let b = batch_size as u64;
        let mut out = Vec::new();
        for &j in features {
            let lq = log_q[j as usize];
            if lq == f64::NEG_INFINITY {
                out.extend((0..batch_size as u32).map(|r| (r, j)));
                continue;
            }
            let h = -lq;
            let mut pos = exp_skip(rng, h);
            while pos < b {
                out.push((pos as u32, j));
                pos = pos.saturating_add(1).saturating_add(exp_skip(rng, h));
            }
        }
        out
    }
}

synthsae_host::multiversioned! {
    fma:
    /// One task of gated independent firing: the rows whose fired parent-free
    /// features are `indices[offsets[0]..offsets[last]]` (CSR offsets of those
    /// rows) get their magnitudes and children (one Bernoulli(`p_c`) per child
    /// of an active parent; see [`expand_row`]).
    /// Multiversioned like the low-rank block.
    fn independent_rows(
        features: &FeatureParams,
        gating: &Gating,
        indices: &[u32],
        offsets: &[usize],
        rng: &mut SampleRng,
    ) -> RowsPart {
        let p = features.firing_probabilities();
        let mut part = RowsPart::default();
        let mut row = Vec::new();
        for w in offsets.windows(2) {
            row.clear();
            row.extend(indices[w[0]..w[1]].iter().map(|&f| (f, 0.0f32)));
            expand_row(
                features,
                gating,
                &mut row,
                rng,
                &mut IndependentChildren { p, gating },
            );
            part.push_row(&row);
        }
        part
    }
}

/// Independent firing: one Bernoulli(`p_c`) per child.
struct IndependentChildren<'a> {
    p: &'a [f32],
    gating: &'a Gating,
}

impl ChildLaw for IndependentChildren<'_> {
    fn fires(&mut self, k: usize, rng: &mut SampleRng) -> bool {
        unit_uniform(rng) < self.p[self.gating.children[k] as usize] as f64
    }
}
