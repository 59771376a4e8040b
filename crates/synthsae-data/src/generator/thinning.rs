//! Budget thinning: firing of the low-rank copula's parent-free features
//! (see `docs/sampling.md`). Each row walks the plan's positions with one
//! exponential budget at a per-block bound `p̄` on the firing probability;
//! only candidates of the walk get an exact test, `Φ̄(t_i) / p̄`.

use super::bound::cs_lower_gap;
use super::draws::{exp1, unit_uniform};
use super::plan::LowRankPlan;
use crate::rng::SampleRng;
use synthsae_host::kernels::{
    lowrank_dot, lowrank_gaps, tails, GapOut, GapTile, TailTables, GAP_ROWS, GAP_SUB, GAP_TILE,
};

/// Reusable buffers of [`thin_low_rank_rows`].
#[derive(Default)]
pub(super) struct ThinScratch {
    /// The fired features of each row, in plan order.
    pub(super) fired: Vec<Vec<u32>>,
    /// `ε` of the rows `[rows rounded up to GAP_ROWS, R]` (zero-padded).
    eps: Vec<f32>,
    /// Each row's unspent exponential budget (see [`spend`]).
    budget: Vec<f64>,
}

impl ThinScratch {
    fn reset(&mut self, rows: usize) {
        self.fired.resize_with(rows, Vec::new);
        for fired in &mut self.fired[..rows] {
            fired.clear();
        }
    }
}

/// Spends a row's exponential budget `e` along `len` consecutive plan
/// positions from `start` that are candidates at hazard `h` (candidate
/// probability `pbar = 1 − e^{−h}`); a candidate `i`, whose gap is
/// `gap(i)`, fires w.p. `Φ̄(gap) / pbar`, and is then appended to `fired`.
/// A candidate-free stretch (the common case) costs one subtraction.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn spend(
    tails: &TailTables,
    plan: &LowRankPlan,
    e: &mut f64,
    (h, pbar): (f64, f64),
    start: usize,
    len: usize,
    rng: &mut SampleRng,
    fired: &mut Vec<u32>,
    gap: impl Fn(usize) -> f32,
) {
    let total = len as f64 * h;
    if *e >= total {
        *e -= total;
        return;
    }
    walk(e, h, len, rng, |k, rng| {
        let i = start + k;
        if tails.tail_exceeds(gap(i), unit_uniform(rng) * pbar) {
            fired.push(plan.order[i]);
        }
    });
}

/// Walks `len` positions that each become a candidate with probability
/// `1 − e^{−h}`, independently, by spending the exponential budget `e`
/// (`e ~ Exp(1)`, carried across calls: memorylessness makes this exact);
/// calls `on_candidate(position)` in increasing order.
#[inline(always)]
fn walk(
    e: &mut f64,
    h: f64,
    len: usize,
    rng: &mut SampleRng,
    mut on_candidate: impl FnMut(usize, &mut SampleRng),
) {
    if h <= 0.0 {
        // p̄ = 0: no position can fire.
        return;
    }
    // Positions are counted in `u32`: conversions between `u32` and `f64`
    // are single instructions on every target (`usize` ones are not).
    let len = u32::try_from(len).expect("a walk covers at most 2³² positions");
    let mut pos = 0u32;
    loop {
        let left = (len - pos) as f64;
        let skip = *e / h;
        if skip >= left {
            *e = (*e - left * h).max(0.0);
            return;
        }
        // skip < left ≤ 2³², so the cast is exact truncation.
        let j = pos + skip as u32;
        on_candidate(j as usize, rng);
        *e = exp1(rng);
        pos = j + 1;
        if pos >= len {
            return;
        }
    }
}

/// The Cauchy–Schwarz candidate bound `(h, p̄)` of `tile` for a row with
/// `‖ε‖ ≤ norm`: `t_i ≥ a − ‖ε‖ c − 10⁻⁴ (1 + ‖ε‖)` (the margin covers the
/// f32 rounding of the gaps).
#[inline(always)]
fn cs_bound(tails: &TailTables, plan: &LowRankPlan, tile: usize, norm: f64) -> (f64, f64) {
    tails.bound(cs_lower_gap(plan.tile_a[tile], plan.tile_c[tile], norm))
}

/// Firing of the parent-free features of a low-rank copula in a block of
/// rows (`eps`: `[rows, R]`), given their `ε`, by thinning (proof:
/// `docs/sampling.md`). Feature `i` fires w.p. `p_i = Φ̄(t_i)`,
/// `t_i = (τ_i − F_i·ε)/√d_i`.
///
/// Tile by tile (`GAP_TILE` features), for each group of `GAP_ROWS` rows:
/// when, for every row of the group, the Cauchy–Schwarz bound
/// `t_i ≥ min τ/√d − ‖ε‖ · max ‖F‖/√d` already makes candidates rare, each
/// row walks the tile at that bound and only candidates get a dot product;
/// otherwise the group's gaps are computed in one pass ([`lowrank_gaps`])
/// and each row walks each `GAP_SUB`-feature sub-block at the bound of its
/// smallest gap. Each row carries one exponential budget along its walk
/// (memorylessness makes the pieces one exact walk, [`spend`]); a candidate
/// at bound `p̄` fires w.p. `p_i / p̄`. Leaves the fired features (in plan
/// order) in `scratch.fired[..rows]`.
#[inline(always)]
pub(super) fn thin_low_rank_rows(
    plan: &LowRankPlan,
    eps: &[f32],
    rng: &mut SampleRng,
    scratch: &mut ThinScratch,
) {
    let rank = plan.rank;
    let tails = tails();
    let rows = eps.len() / rank;
    let groups = rows.div_ceil(GAP_ROWS);
    let n_pad = plan.order.len();
    scratch.reset(rows);
    scratch.eps.clear();
    scratch.eps.extend_from_slice(eps);
    scratch.eps.resize(groups * GAP_ROWS * rank, 0.0);
    scratch.budget.clear();
    scratch.budget.extend((0..rows).map(|_| exp1(rng)));
    let ThinScratch {
        fired,
        eps: eps_rows,
        budget,
    } = scratch;
    // ‖ε‖ per row, rounded up, and a margin for the f32 rounding of the gaps.
    let norms: Vec<f64> = eps_rows
        .chunks_exact(rank)
        .map(|e| e.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() * (1.0 + 1e-6))
        .collect();
    let mut mins = [[0.0f32; GAP_TILE / GAP_SUB]; GAP_ROWS];
    let mut hz = [[0.0f64; GAP_TILE / GAP_SUB]; GAP_ROWS];
    let mut gaps = [0.0f32; GAP_ROWS * GAP_TILE];
    for tile in 0..n_pad / GAP_TILE {
        let base = tile * GAP_TILE;
        for grp in 0..groups {
            let (r0, r1) = (grp * GAP_ROWS, ((grp + 1) * GAP_ROWS).min(rows));
            if norms[r0..r1].iter().all(|&n| n <= plan.tile_cs_norm[tile]) {
                for r in r0..r1 {
                    let e_row = &eps_rows[r * rank..(r + 1) * rank];
                    let gap = |i: usize| {
                        (plan.tau[i] - lowrank_dot(&plan.rows[i * rank..(i + 1) * rank], e_row))
                            * plan.inv_s[i]
                    };
                    let bound = cs_bound(tails, plan, tile, norms[r]);
                    spend(
                        tails,
                        plan,
                        &mut budget[r],
                        bound,
                        base,
                        GAP_TILE,
                        rng,
                        &mut fired[r],
                        gap,
                    );
                }
                continue;
            }
            lowrank_gaps(
                &GapTile {
                    eps: &eps_rows[r0 * rank..(r0 + GAP_ROWS) * rank],
                    rank,
                    ft: &plan.ft[base * rank..(base + GAP_TILE) * rank],
                    stride: GAP_TILE,
                    tau: plan.tau[base..base + GAP_TILE].try_into().expect("tile"),
                    inv_s: plan.inv_s[base..base + GAP_TILE].try_into().expect("tile"),
                },
                &mut GapOut {
                    gaps: &mut gaps,
                    stride: GAP_TILE,
                    mins: &mut mins,
                    hz: &mut hz,
                },
            );
            for r in r0..r1 {
                let row_gaps = &gaps[(r - r0) * GAP_TILE..(r - r0 + 1) * GAP_TILE];
                // The whole tile first: no candidate in any sub-block iff the
                // budget covers their summed hazards (then the leftover is
                // the same as after spending sub-block by sub-block).
                let [h0, h1, h2, h3] = hz[r - r0];
                let total = (((h0 + h1) + h2) + h3) * GAP_SUB as f64;
                if budget[r] >= total {
                    budget[r] -= total;
                    continue;
                }
                for (j, &lo) in mins[r - r0].iter().enumerate() {
                    let bound = tails.bound(lo as f64);
                    let start = base + j * GAP_SUB;
                    let gap = |i: usize| row_gaps[i - base];
                    spend(
                        tails,
                        plan,
                        &mut budget[r],
                        bound,
                        start,
                        GAP_SUB,
                        rng,
                        &mut fired[r],
                        gap,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    #[test]
    fn walk_candidate_rate_is_one_minus_exp_minus_h() {
        // 64 positions at h = 0.05 per call, 20 000 calls: candidates per
        // position ~ Bernoulli(1 − e^{−0.05}) = 0.04877; n = 1.28e6,
        // se = sqrt(q(1−q)/n) = 1.9e-4, 5σ = 9.5e-4.
        let mut rng = sample_rng(Some(5));
        let (mut e, mut count) = (exp1(&mut rng), 0usize);
        let mut in_order = true;
        for _ in 0..20_000 {
            let mut next = 0usize;
            walk(&mut e, 0.05, 64, &mut rng, |j, _| {
                in_order &= j >= next && j < 64;
                next = j + 1;
                count += 1;
            });
        }
        assert!(in_order);
        let q = count as f64 / (20_000.0 * 64.0);
        assert!((q - (1.0 - (-0.05f64).exp())).abs() < 9.5e-4, "{q}");
    }
}
