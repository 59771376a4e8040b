//! The tiled low-rank plan: the low-rank copula's parent-free features
//! sorted by standardised threshold and laid out tile by tile for the gap
//! kernel, with each tile's Cauchy–Schwarz bound; and the gated children's
//! factor rows for the gathered dot products.

use super::bound::cs_norm_limit;
use synthsae_host::kernels::{DOT_LANES, GAP_TILE};

/// The low-rank copula's parent-free features, prepared for thinning
/// (see `docs/sampling.md`): sorted by standardised threshold `τ/√d`, padded
/// to whole tiles of `GAP_TILE` with features that never fire.
#[derive(Debug, Clone)]
pub(super) struct LowRankPlan {
    pub(super) rank: usize,
    /// Feature of each position (`u32::MAX`: padding), `[n_pad]`.
    pub(super) order: Vec<u32>,
    /// Factor columns in position order, tile by tile: `[n_pad / GAP_TILE, R,
    /// GAP_TILE]` (a tile's columns are contiguous for the gap kernel).
    pub(super) ft: Vec<f32>,
    /// Factor rows in position order, `[n_pad, R]`.
    pub(super) rows: Vec<f32>,
    /// `τ` and `1/√d` in position order, `[n_pad]` (padding: `+∞`, 1).
    pub(super) tau: Vec<f32>,
    pub(super) inv_s: Vec<f32>,
    /// Per tile: `min τ/√d` and `max ‖F_i‖/√d_i` (Cauchy–Schwarz bound).
    pub(super) tile_a: Vec<f64>,
    pub(super) tile_c: Vec<f64>,
    /// Per tile: the largest `‖ε‖` for which the Cauchy–Schwarz bound
    /// predicts at most two candidates (`bound::cs_norm_limit`; the bound loosens
    /// as `‖ε‖` grows, so the choice is one comparison per row).
    pub(super) tile_cs_norm: Vec<f64>,
    /// Gated children in the gating's child order (`children[k]`): factor
    /// rows `[C, R']` (`R` rounded up to a multiple of `DOT_LANES`, zero
    /// padded, for `lowrank_dots`), `τ` and `1/√d` `[C]` (empty without
    /// gating).
    pub(super) child_rows: Vec<f32>,
    pub(super) child_tau: Vec<f32>,
    pub(super) child_inv_s: Vec<f32>,
}

impl LowRankPlan {
    /// The plan of a low-rank copula (factor `[N, R]`, `τ` and `1/√d` `[N]`)
    /// for the parent-free features `free` and the gated children
    /// `children` (in the gating's child order).
    pub(super) fn new(
        free: &[u32],
        children: &[u32],
        factor: &[f32],
        rank: usize,
        tau: &[f32],
        inv_sqrt_diag: &[f32],
    ) -> Self {
        let child_stride = rank.next_multiple_of(DOT_LANES);
        let mut child_rows = Vec::with_capacity(children.len() * child_stride);
        for &c in children {
            child_rows.extend_from_slice(&factor[c as usize * rank..(c as usize + 1) * rank]);
            child_rows.resize(child_rows.len() + child_stride - rank, 0.0);
        }
        let child_tau = children.iter().map(|&c| tau[c as usize]).collect();
        let child_inv_s = children
            .iter()
            .map(|&c| inv_sqrt_diag[c as usize])
            .collect();
        let mut order: Vec<u32> = free.to_vec();
        let std_tau = |f: u32| tau[f as usize] as f64 * inv_sqrt_diag[f as usize] as f64;
        order.sort_by(|&a, &b| std_tau(a).total_cmp(&std_tau(b)).then(a.cmp(&b)));
        let n_pad = order.len().div_ceil(GAP_TILE) * GAP_TILE;
        order.resize(n_pad, u32::MAX);
        let mut ft = vec![0.0f32; rank * n_pad];
        let mut rows = vec![0.0f32; n_pad * rank];
        let mut ptau = vec![f32::INFINITY; n_pad];
        let mut pinv = vec![1.0f32; n_pad];
        for (k, &f) in order.iter().enumerate() {
            if f == u32::MAX {
                continue;
            }
            let f = f as usize;
            let row = &factor[f * rank..(f + 1) * rank];
            rows[k * rank..(k + 1) * rank].copy_from_slice(row);
            for (r, &v) in row.iter().enumerate() {
                ft[((k / GAP_TILE) * rank + r) * GAP_TILE + k % GAP_TILE] = v;
            }
            ptau[k] = tau[f];
            pinv[k] = inv_sqrt_diag[f];
        }
        let (mut tile_a, mut tile_c) = (Vec::new(), Vec::new());
        for t in 0..n_pad / GAP_TILE {
            let (mut a, mut c) = (f64::INFINITY, 0.0f64);
            for k in t * GAP_TILE..(t + 1) * GAP_TILE {
                if order[k] == u32::MAX {
                    continue;
                }
                let norm = rows[k * rank..(k + 1) * rank]
                    .iter()
                    .map(|&v| v as f64 * v as f64)
                    .sum::<f64>()
                    .sqrt();
                a = a.min(ptau[k] as f64 * pinv[k] as f64);
                c = c.max(norm * pinv[k] as f64);
            }
            tile_a.push(a);
            tile_c.push(c);
        }
        let tile_cs_norm = (0..tile_a.len())
            .map(|t| cs_norm_limit(tile_a[t], tile_c[t]))
            .collect();
        Self {
            rank,
            order,
            ft,
            rows,
            tau: ptau,
            inv_s: pinv,
            tile_a,
            tile_c,
            tile_cs_norm,
            child_rows,
            child_tau,
            child_inv_s,
        }
    }
}
