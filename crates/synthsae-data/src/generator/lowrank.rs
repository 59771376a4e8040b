//! Low-rank copula firing: per block of rows, every row's `ε` first, then
//! the parent-free features of all rows by thinning
//! ([`thin_low_rank_rows`]), then (with a gating hierarchy) each row's
//! magnitudes and children, conditional on its `ε`.

use rand::RngCore;
use rayon::prelude::*;

use super::gating::{expand_row, ChildLaw, Gating};
use super::plan::LowRankPlan;
use super::rows::{assemble_parts, RowsPart, ROW_BLOCK};
use super::thinning::{thin_low_rank_rows, ThinScratch};
use crate::per_feature::FeatureParams;
use crate::rng::{block_rng, normal, SampleRng};
use synthsae_host::kernels::{lowrank_dots, tails, TailTables, DOT_LANES};
use synthsae_host::Csr;

/// Low-rank copula firing of a batch `[batch_size, N]`: row blocks of
/// `ROW_BLOCK` in parallel, each with its own stream derived from `key`
/// ([`low_rank_block`]). With a gating hierarchy the rows come with their
/// magnitudes; without, with zeros (drawn afterwards).
pub(super) fn fire_low_rank(
    features: &FeatureParams,
    gating: &Option<Gating>,
    plan: &LowRankPlan,
    batch_size: usize,
    key: u64,
) -> Csr {
    let parts: Vec<RowsPart> = (0..batch_size.div_ceil(ROW_BLOCK))
        .into_par_iter()
        .map_init(ThinScratch::default, |scratch, blk| {
            let mut rng = block_rng(key, blk as u64);
            let rows = ((blk + 1) * ROW_BLOCK).min(batch_size) - blk * ROW_BLOCK;
            let mut part = RowsPart::default();
            low_rank_block(features, gating, plan, rows, &mut rng, scratch, &mut part);
            part
        })
        .collect();
    assemble_parts(features.num_features(), batch_size, parts)
}

synthsae_host::multiversioned! {
    fma:
    /// One task of low-rank copula firing ([`fire_low_rank_rows`]),
    /// compiled for several instruction sets and chosen at run time: the
    /// thinning's index arithmetic and `f64`/integer conversions take single
    /// instructions with AVX-512 / AVX2 and several on baseline x86-64. The
    /// arithmetic is IEEE in every version (no contraction), so the draws are
    /// the same on every target.
    fn low_rank_block(
        features: &FeatureParams,
        gating: &Option<Gating>,
        plan: &LowRankPlan,
        rows: usize,
        rng: &mut SampleRng,
        scratch: &mut ThinScratch,
        part: &mut RowsPart,
    ) {
        fire_low_rank_rows(features, gating, plan, rows, rng, scratch, part)
    }
}

/// `rows` rows of a low-rank copula: every row's `ε` first, then the
/// parent-free features of all rows by thinning ([`thin_low_rank_rows`]),
/// then (with a gating hierarchy) each row's magnitudes and children
/// conditional on its `ε`. Always inlined into [`low_rank_block`], which
/// gives it its instruction set.
#[inline(always)]
fn fire_low_rank_rows(
    features: &FeatureParams,
    gating: &Option<Gating>,
    plan: &LowRankPlan,
    rows: usize,
    rng: &mut SampleRng,
    scratch: &mut ThinScratch,
    part: &mut RowsPart,
) {
    let rank = plan.rank;
    let eps: Vec<f32> = (0..rows * rank).map(|_| normal(rng)).collect();
    thin_low_rank_rows(plan, &eps, rng, scratch);
    let mut row: Vec<(u32, f32)> = Vec::new();
    let mut children = CopulaChildren {
        plan,
        tails: tails(),
        eps: Vec::with_capacity(rank),
        slots: Vec::new(),
        dots: Vec::new(),
        gaps: Vec::new(),
    };
    for (r, fired) in scratch.fired[..rows].iter_mut().enumerate() {
        let e = &eps[r * rank..(r + 1) * rank];
        match gating {
            Some(g) => {
                row.clear();
                row.extend(fired.iter().map(|&f| (f, 0.0f32)));
                // Children conditional on the same ε (given ε the
                // features are independent).
                children.eps.clear();
                children.eps.extend_from_slice(e);
                children.eps.resize(rank.next_multiple_of(DOT_LANES), 0.0);
                expand_row(features, g, &mut row, rng, &mut children);
                part.push_row(&row);
            }
            None => {
                fired.sort_unstable();
                part.counts.push(fired.len());
                part.idx.extend_from_slice(fired);
            }
        }
    }
}

/// Low-rank copula: given the row's `ε`, child `c` fires iff `η > t_c`,
/// `t_c = (τ_c − F_c·ε)/√d_c`; the gaps of all children of a wave's active
/// parents are computed together in [`ChildLaw::prepare`] (independent dot
/// products, so their latencies overlap).
struct CopulaChildren<'a> {
    plan: &'a LowRankPlan,
    tails: &'static TailTables,
    /// The row's `ε` `[R']`, zero-padded like `LowRankPlan::child_rows`.
    eps: Vec<f32>,
    /// The child slots of the current wave, and their dot products.
    slots: Vec<u32>,
    dots: Vec<f32>,
    /// Standardised gap of each child slot (valid for the current wave's).
    gaps: Vec<f32>,
}

impl ChildLaw for CopulaChildren<'_> {
    fn prepare(&mut self, gating: &Gating, wave: &[(u32, f32)]) {
        let plan = self.plan;
        self.slots.clear();
        for &(f, v) in wave {
            // The same activity test as `expand_row` (NaN is inactive).
            if v > 0.0 {
                let (c0, c1) = (
                    gating.child_offsets[f as usize],
                    gating.child_offsets[f as usize + 1],
                );
                self.slots.extend(c0..c1);
            }
        }
        self.dots.resize(self.slots.len(), 0.0);
        lowrank_dots(&plan.child_rows, &self.eps, &self.slots, &mut self.dots);
        self.gaps.resize(plan.child_tau.len(), 0.0);
        for (&k, &dot) in self.slots.iter().zip(&self.dots) {
            let k = k as usize;
            self.gaps[k] = (plan.child_tau[k] - dot) * plan.child_inv_s[k];
        }
    }

    fn fires(&mut self, k: usize, rng: &mut SampleRng) -> bool {
        self.tails.exceeds(self.gaps[k], rng.next_u32())
    }
}
