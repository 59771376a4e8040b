//! The activation generator (sae-lens `ActivationGenerator`), sparse-first.
//!
//! A batch is drawn in three steps, each parallel over fixed blocks of work
//! with its own derived random stream (so results do not depend on the
//! number of threads):
//!
//! 1. **Which features fire.** Independent firing walks each feature's column
//!    with geometric skips: `O(N + nnz)` per batch, no dense `[B, N]` draw.
//!    With a correlation, a Gaussian copula: feature `j` fires in a row iff
//!    `z_j > τ_j = Φ⁻¹(1 − p_j)`, where `z` is drawn with the low-rank factor
//!    (`z = F ε + sqrt(d) ⊙ η`, `O(N·R)` per row) or the dense Cholesky factor
//!    computed once at construction (`O(N²)` per row).
//! 2. **Magnitudes.** `relu(mean_j + std_j · n)` per firing entry; no draw
//!    when `std_j = 0`.
//! 3. **Modifiers** (e.g. a hierarchy), then entries that are not `> 0` are
//!    removed.

use std::sync::Arc;

use burn::tensor::{backend::Backend, Tensor};
use multiversion::multiversion;
use rand::{Rng, RngCore};
use rand_distr::{Distribution, Exp1};
use rayon::prelude::*;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::correlation::{CorrelationMatrix, LowRankCorrelation};
use crate::error::{bad_shape, invalid, Result};
use crate::modifier::ActivationModifier;
use crate::rng::{block_rng, normal, SampleRng};
use synthsae_host::kernels::{
    lowrank_dot, lowrank_dots, lowrank_gaps, tails, GapOut, GapTile, TailTables, DOT_LANES,
    GAP_ROWS, GAP_SUB, GAP_TILE,
};
use synthsae_host::Csr;

/// Features handled by one task of independent firing.
const FEATURE_BLOCK: usize = 1024;
/// Rows handled by one task of copula firing.
const ROW_BLOCK: usize = 16;
/// Entries handled by one task of magnitude drawing.
const ENTRY_BLOCK: usize = 8192;

/// Stream-separation constants for the per-batch key.
const MAGNITUDE_STREAM: u64 = 0x9E37_79B9_7F4A_7C15;
const MODIFIER_STREAM: u64 = 0xD1B5_4A32_D192_ED03;
const CHILD_STREAM: u64 = 0x94D0_49BB_1331_11EB;

/// A per-feature parameter: one value for all features, or one per feature.
#[derive(Debug, Clone, PartialEq)]
pub enum PerFeature {
    /// Broadcast to every feature.
    Scalar(f32),
    /// `[N]` values.
    Vector(Vec<f32>),
}

impl From<f32> for PerFeature {
    fn from(v: f32) -> Self {
        Self::Scalar(v)
    }
}

impl From<Vec<f32>> for PerFeature {
    fn from(v: Vec<f32>) -> Self {
        Self::Vector(v)
    }
}

impl From<&[f32]> for PerFeature {
    fn from(v: &[f32]) -> Self {
        Self::Vector(v.to_vec())
    }
}

impl PerFeature {
    fn resolve(self, n: usize, field: &str) -> Result<Vec<f32>> {
        match self {
            Self::Scalar(v) => Ok(vec![v; n]),
            Self::Vector(v) if v.len() == n => Ok(v),
            Self::Vector(v) => Err(bad_shape(
                field,
                format!("[N] = [{n}] or a scalar"),
                &[v.len()],
            )),
        }
    }
}

/// The correlation structure of the firing events.
#[derive(Debug, Clone, PartialEq)]
pub enum Correlation {
    /// A dense `[N, N]` correlation matrix.
    Dense(CorrelationMatrix),
    /// A low-rank factor plus diagonal.
    LowRank(LowRankCorrelation),
}

#[derive(Debug, Clone)]
enum Copula {
    Independent,
    /// Lower Cholesky factor, row-major `[N, N]`.
    Dense {
        cholesky: Vec<f32>,
    },
    /// Factor `[N, R]` and `1 / sqrt(diag)` `[N]`.
    LowRank {
        factor: Vec<f32>,
        inv_sqrt_diag: Vec<f32>,
        rank: usize,
    },
}

/// Gaussian threshold `τ = Φ⁻¹(1 − p)` of a firing probability:
/// `p = 1 → −∞` (always fires), `p = 0 → +∞` (never fires).
pub fn correlation_threshold(p: f32) -> f32 {
    if p >= 1.0 {
        f32::NEG_INFINITY
    } else if p <= 0.0 {
        f32::INFINITY
    } else {
        // Φ⁻¹(1 − p) = −Φ⁻¹(p), accurate for small p.
        let normal = Normal::standard();
        (-normal.inverse_cdf(p as f64)) as f32
    }
}

/// Samples sparse, non-negative ground-truth feature activations.
#[derive(Debug, Clone)]
pub struct ActivationGenerator {
    num_features: usize,
    firing_probabilities: Vec<f32>,
    std_firing_magnitudes: Vec<f32>,
    mean_firing_magnitudes: Vec<f32>,
    /// `ln(1 − p_j)`, for geometric skips.
    log_q: Vec<f64>,
    thresholds: Option<Vec<f32>>,
    correlation: Option<Correlation>,
    copula: Copula,
    modifiers: Vec<Arc<dyn ActivationModifier>>,
    /// Parent rule of the first modifier (children are drawn only where
    /// their parent fired).
    gating: Option<Gating>,
    /// Thinning plan of the low-rank copula (rebuilt when the correlation or
    /// the gating changes).
    plan: Option<Arc<LowRankPlan>>,
}

/// Features that can only survive when their parent fires.
#[derive(Debug, Clone)]
struct Gating {
    /// Features without a parent, ascending.
    free: Vec<u32>,
    /// Children of feature `f`: `children[child_offsets[f]..child_offsets[f + 1]]`.
    child_offsets: Vec<u32>,
    children: Vec<u32>,
    /// Whether at most one (uniformly chosen) active child of `f` survives
    /// the modifier (mutual exclusion); `[N]`, or empty for none.
    exclusive: Vec<bool>,
}

impl Gating {
    /// `None` when `parent` has an index out of range or a cycle.
    fn new(parent: &[u32]) -> Option<Self> {
        let n = parent.len();
        let mut depth = vec![u32::MAX; n];
        for f in 0..n {
            // Walk up to a feature of known depth (bounded: a cycle is rejected).
            let mut chain = Vec::new();
            let mut g = f;
            while depth[g] == u32::MAX {
                chain.push(g);
                match parent[g] {
                    u32::MAX => break,
                    p if (p as usize) < n && chain.len() <= n => g = p as usize,
                    _ => return None,
                }
            }
            let mut d = if depth[g] == u32::MAX {
                0
            } else {
                depth[g] + 1
            };
            for &c in chain.iter().rev() {
                if depth[c] == u32::MAX {
                    depth[c] = d;
                    d += 1;
                }
            }
        }
        let mut child_offsets = vec![0u32; n + 1];
        for &p in parent {
            if p != u32::MAX {
                child_offsets[p as usize + 1] += 1;
            }
        }
        for f in 0..n {
            child_offsets[f + 1] += child_offsets[f];
        }
        let mut cursor = child_offsets.clone();
        let mut children = vec![0u32; child_offsets[n] as usize];
        for (c, &p) in parent.iter().enumerate() {
            if p != u32::MAX {
                children[cursor[p as usize] as usize] = c as u32;
                cursor[p as usize] += 1;
            }
        }
        Some(Self {
            free: (0..n as u32)
                .filter(|&f| parent[f as usize] == u32::MAX)
                .collect(),
            child_offsets,
            children,
            exclusive: Vec::new(),
        })
    }

    /// No feature has a parent.
    fn all_free(n: usize) -> Self {
        Self {
            free: (0..n as u32).collect(),
            child_offsets: vec![0; n + 1],
            children: Vec::new(),
            exclusive: Vec::new(),
        }
    }
}

/// The low-rank copula's parent-free features, prepared for thinning
/// (see `docs/sampling.md`): sorted by standardised threshold `τ/√d`, padded
/// to whole tiles of `GAP_TILE` with features that never fire.
#[derive(Debug, Clone)]
struct LowRankPlan {
    rank: usize,
    /// Feature of each position (`u32::MAX`: padding), `[n_pad]`.
    order: Vec<u32>,
    /// Factor columns in position order, tile by tile: `[n_pad / GAP_TILE, R,
    /// GAP_TILE]` (a tile's columns are contiguous for the gap kernel).
    ft: Vec<f32>,
    /// Factor rows in position order, `[n_pad, R]`.
    rows: Vec<f32>,
    /// `τ` and `1/√d` in position order, `[n_pad]` (padding: `+∞`, 1).
    tau: Vec<f32>,
    inv_s: Vec<f32>,
    /// Per tile: `min τ/√d` and `max ‖F_i‖/√d_i` (Cauchy–Schwarz bound).
    tile_a: Vec<f64>,
    tile_c: Vec<f64>,
    /// Per tile: the largest `‖ε‖` for which the Cauchy–Schwarz bound
    /// predicts at most `CS_MAX_CANDIDATES` candidates (the bound loosens
    /// as `‖ε‖` grows, so the choice is one comparison per row).
    tile_cs_norm: Vec<f64>,
    /// Gated children in the gating's child order (`children[k]`): factor
    /// rows `[C, R']` (`R` rounded up to a multiple of `DOT_LANES`, zero
    /// padded, for [`lowrank_dots`]), `τ` and `1/√d` `[C]` (empty without
    /// gating).
    child_rows: Vec<f32>,
    child_tau: Vec<f32>,
    child_inv_s: Vec<f32>,
}

impl LowRankPlan {
    fn new(
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

impl ActivationGenerator {
    /// A generator with independent firing.
    ///
    /// * `firing_probabilities`: each in `(0, 1]`;
    /// * `std_firing_magnitudes`: each `>= 0` (0: every firing has exactly the mean);
    /// * `mean_firing_magnitudes`: each `> 0`.
    ///
    /// Each may be a scalar or a vector `[N]`.
    pub fn new(
        num_features: usize,
        firing_probabilities: impl Into<PerFeature>,
        std_firing_magnitudes: impl Into<PerFeature>,
        mean_firing_magnitudes: impl Into<PerFeature>,
    ) -> Result<Self> {
        let n = num_features;
        if n == 0 {
            return Err(invalid("num_features", "must be at least 1"));
        }
        let p = firing_probabilities
            .into()
            .resolve(n, "firing_probabilities")?;
        let std = std_firing_magnitudes
            .into()
            .resolve(n, "std_firing_magnitudes")?;
        let mean = mean_firing_magnitudes
            .into()
            .resolve(n, "mean_firing_magnitudes")?;
        if let Some((i, v)) = p.iter().enumerate().find(|(_, &v)| !(v > 0.0 && v <= 1.0)) {
            return Err(invalid(
                format!("firing_probabilities[{i}]"),
                format!("{v} is outside (0, 1]"),
            ));
        }
        if let Some((i, v)) = std
            .iter()
            .enumerate()
            .find(|(_, &v)| !(v >= 0.0 && v.is_finite()))
        {
            return Err(invalid(
                format!("std_firing_magnitudes[{i}]"),
                format!("{v} must be finite and >= 0"),
            ));
        }
        if let Some((i, v)) = mean
            .iter()
            .enumerate()
            .find(|(_, &v)| !(v > 0.0 && v.is_finite()))
        {
            return Err(invalid(
                format!("mean_firing_magnitudes[{i}]"),
                format!("{v} must be finite and > 0"),
            ));
        }
        let log_q = p.iter().map(|&x| (-(x as f64)).ln_1p()).collect();
        Ok(Self {
            num_features: n,
            firing_probabilities: p,
            std_firing_magnitudes: std,
            mean_firing_magnitudes: mean,
            log_q,
            thresholds: None,
            correlation: None,
            copula: Copula::Independent,
            modifiers: Vec::new(),
            gating: None,
            plan: None,
        })
    }

    /// Correlates firing through a Gaussian copula with this correlation.
    /// A dense matrix is factorised here, once.
    pub fn with_correlation(mut self, correlation: Correlation) -> Result<Self> {
        let n = self.num_features;
        self.copula = match &correlation {
            Correlation::Dense(m) => {
                if m.num_features() != n {
                    return Err(bad_shape(
                        "correlation_matrix",
                        format!("[N, N] = [{n}, {n}]"),
                        &[m.num_features(), m.num_features()],
                    ));
                }
                Copula::Dense {
                    cholesky: m.cholesky()?,
                }
            }
            Correlation::LowRank(lr) => {
                if lr.num_features() != n {
                    return Err(bad_shape(
                        "correlation_factor",
                        format!("[N, rank] = [{n}, {}]", lr.rank()),
                        &[lr.num_features(), lr.rank()],
                    ));
                }
                Copula::LowRank {
                    factor: lr.factor().to_vec(),
                    inv_sqrt_diag: lr.diag().iter().map(|d| 1.0 / d.sqrt()).collect(),
                    rank: lr.rank(),
                }
            }
        };
        self.thresholds = Some(
            self.firing_probabilities
                .iter()
                .map(|&p| correlation_threshold(p))
                .collect(),
        );
        self.correlation = Some(correlation);
        self.rebuild_plan();
        Ok(self)
    }

    fn rebuild_plan(&mut self) {
        self.plan = match (&self.copula, &self.thresholds) {
            (
                Copula::LowRank {
                    factor,
                    inv_sqrt_diag,
                    rank,
                    ..
                },
                Some(tau),
            ) => {
                let all;
                let gating = match &self.gating {
                    Some(g) => g,
                    None => {
                        all = Gating::all_free(self.num_features);
                        &all
                    }
                };
                Some(Arc::new(LowRankPlan::new(
                    &gating.free,
                    &gating.children,
                    factor,
                    *rank,
                    tau,
                    inv_sqrt_diag,
                )))
            }
            _ => None,
        };
    }

    /// Appends a modifier to the chain (applied left to right).
    pub fn with_modifier(mut self, modifier: Arc<dyn ActivationModifier>) -> Result<Self> {
        modifier.check(&self)?;
        if self.modifiers.is_empty() {
            self.gating = modifier
                .required_parents()
                .filter(|p| p.len() == self.num_features)
                .and_then(Gating::new);
            if let (Some(g), Some(x)) = (&mut self.gating, modifier.exclusive_children()) {
                if x.len() == self.num_features {
                    g.exclusive = x.to_vec();
                }
            }
            self.rebuild_plan();
        }
        self.modifiers.push(modifier);
        Ok(self)
    }

    /// `N`.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Firing probabilities `[N]`.
    pub fn firing_probabilities(&self) -> &[f32] {
        &self.firing_probabilities
    }

    /// Standard deviations of the firing magnitudes `[N]`.
    pub fn std_firing_magnitudes(&self) -> &[f32] {
        &self.std_firing_magnitudes
    }

    /// Means of the firing magnitudes `[N]`.
    pub fn mean_firing_magnitudes(&self) -> &[f32] {
        &self.mean_firing_magnitudes
    }

    /// Gaussian thresholds `[N]` when a correlation is set.
    pub fn correlation_thresholds(&self) -> Option<&[f32]> {
        self.thresholds.as_deref()
    }

    /// The correlation, if any.
    pub fn correlation(&self) -> Option<&Correlation> {
        self.correlation.as_ref()
    }

    /// The modifier chain.
    pub fn modifiers(&self) -> &[Arc<dyn ActivationModifier>] {
        &self.modifiers
    }

    /// Expected number of firing features per sample before modifiers (`Σ p_j`).
    pub fn expected_l0(&self) -> f64 {
        self.firing_probabilities.iter().map(|&p| p as f64).sum()
    }

    /// Draws a batch of `batch_size` rows `[batch_size, N]` in sparse form.
    ///
    /// Consumes exactly one `u64` from `rng`; everything else is derived from
    /// it, so the result is the same for any number of threads.
    pub fn sample(&self, batch_size: usize, rng: &mut SampleRng) -> Csr {
        let key = rng.next_u64();
        let mut batch = match &self.copula {
            Copula::Independent => self.fire_independent(batch_size, key),
            _ => self.fire_copula(batch_size, key),
        };
        // Gated sampling (independent or low-rank) draws magnitudes while it
        // expands the tree.
        let has_values = self.gating.is_some()
            && matches!(self.copula, Copula::Independent | Copula::LowRank { .. });
        if !has_values {
            self.draw_magnitudes(&mut batch, key ^ MAGNITUDE_STREAM);
        }
        batch.retain_positive();
        if !self.modifiers.is_empty() {
            let mut mrng = block_rng(key ^ MODIFIER_STREAM, 0);
            self.apply_modifiers(&mut batch, &mut mrng);
        }
        batch
    }

    /// Draws a batch as a dense tensor `[batch_size, N]` on `device`.
    pub fn sample_dense<B: Backend>(
        &self,
        batch_size: usize,
        rng: &mut SampleRng,
        device: &B::Device,
    ) -> Tensor<B, 2> {
        self.sample(batch_size, rng).to_tensor(device)
    }

    /// Runs the modifier chain on `batch`, then drops entries that are not `> 0`.
    pub fn apply_modifiers(&self, batch: &mut Csr, rng: &mut SampleRng) {
        for m in &self.modifiers {
            m.modify(batch, self, rng);
        }
        batch.retain_positive();
    }

    /// Runs the modifier chain on a dense batch `[B, N]` (same semantics as
    /// the sparse path: it is converted, modified and converted back).
    pub fn apply_modifiers_dense<B: Backend>(
        &self,
        acts: Tensor<B, 2>,
        rng: &mut SampleRng,
    ) -> Result<Tensor<B, 2>> {
        let device = acts.device();
        let [_, n] = acts.dims();
        if n != self.num_features {
            return Err(bad_shape(
                "activations",
                format!("[batch, {}]", self.num_features),
                &acts.dims(),
            ));
        }
        let mut batch = Csr::from_tensor(acts)?;
        batch.retain_positive();
        self.apply_modifiers(&mut batch, rng);
        Ok(batch.to_tensor(&device))
    }

    /// Independent firing. Features without a required parent walk their
    /// column of the batch with geometric skips (`⌊E / h_j⌋`, `E ~ Exp(1)`,
    /// `h_j = −ln(1 − p_j)`); with a gating hierarchy, each child is then
    /// drawn (one Bernoulli) only in rows where its parent fired.
    fn fire_independent(&self, batch_size: usize, key: u64) -> Csr {
        let n = self.num_features;
        let all;
        let gating = match &self.gating {
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
                    &self.log_q,
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
        if self.gating.is_none() {
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
                    self,
                    gating,
                    &indices,
                    &row_offsets[r0..=r1],
                    &mut block_rng(child_key, blk as u64),
                )
            })
            .collect();
        assemble_parts(n, batch_size, parts)
    }

    /// A firing magnitude of feature `f`: `relu(mean_f + std_f · n)`.
    #[inline(always)]
    fn magnitude(&self, f: u32, rng: &mut SampleRng) -> f32 {
        let (m, s) = (
            self.mean_firing_magnitudes[f as usize],
            self.std_firing_magnitudes[f as usize],
        );
        if s == 0.0 {
            m
        } else {
            (m + s * normal(rng)).max(0.0)
        }
    }

    /// Completes one row of a gated sampler: `row` holds the fired parent-free
    /// features; gives every entry its magnitude, then walks the tree from
    /// the active entries (value `> 0`). For each child slot `k` of an active
    /// parent, `fires(k, rng)` decides the child's firing (its conditional
    /// law given the row's shared randomness). Children of an inactive
    /// parent are not drawn (the modifier would zero them). When the
    /// modifier keeps one uniformly chosen active child (`exclusive`), the
    /// survivor is chosen here by reservoir sampling and only it is kept and
    /// expanded (the others, and their subtrees, would be zeroed). Sorts the
    /// row by feature.
    #[inline(always)]
    fn expand_row(
        &self,
        gating: &Gating,
        row: &mut Vec<(u32, f32)>,
        rng: &mut SampleRng,
        law: &mut impl ChildLaw,
    ) {
        for e in row.iter_mut() {
            e.1 = self.magnitude(e.0, rng);
        }
        // Wave by wave: the entries drawn so far, then the children they
        // added, and so on (one `prepare` per wave; the draws are taken in
        // the same order as entry by entry).
        let (mut q, mut wave_end) = (0, 0);
        while q < row.len() {
            if q == wave_end {
                wave_end = row.len();
                law.prepare(gating, &row[q..wave_end]);
            }
            let (f, v) = row[q];
            q += 1;
            // NaN magnitudes are not active either.
            if v.is_nan() || v <= 0.0 {
                continue;
            }
            let (c0, c1) = (
                gating.child_offsets[f as usize] as usize,
                gating.child_offsets[f as usize + 1] as usize,
            );
            if c0 == c1 {
                continue;
            }
            if gating.exclusive.get(f as usize).copied().unwrap_or(false) {
                let (mut count, mut winner) = (0u32, (0u32, 0.0f32));
                for k in c0..c1 {
                    if law.fires(k, rng) {
                        let c = gating.children[k];
                        let m = self.magnitude(c, rng);
                        if m > 0.0 {
                            count += 1;
                            if rng.random_range(0..count) == 0 {
                                winner = (c, m);
                            }
                        }
                    }
                }
                if count > 0 {
                    row.push(winner);
                }
            } else {
                for k in c0..c1 {
                    if law.fires(k, rng) {
                        let c = gating.children[k];
                        let m = self.magnitude(c, rng);
                        if m > 0.0 {
                            row.push((c, m));
                        }
                    }
                }
            }
        }
        row.sort_unstable_by_key(|e| e.0);
    }

    fn fire_copula(&self, batch_size: usize, key: u64) -> Csr {
        let n = self.num_features;
        let tau = self.thresholds.as_deref().unwrap_or(&[]);
        let parts: Vec<RowsPart> = (0..batch_size.div_ceil(ROW_BLOCK))
            .into_par_iter()
            .map_init(ThinScratch::default, |scratch, blk| {
                let mut rng = block_rng(key, blk as u64);
                let rows = ((blk + 1) * ROW_BLOCK).min(batch_size) - blk * ROW_BLOCK;
                let mut part = RowsPart::default();
                match (&self.copula, &self.plan) {
                    (Copula::LowRank { .. }, Some(plan)) => {
                        low_rank_block(self, plan, rows, &mut rng, scratch, &mut part)
                    }
                    (Copula::Dense { cholesky }, _) => {
                        let mut z = vec![0.0f32; n];
                        for _ in 0..rows {
                            let before = part.idx.len();
                            for e in z.iter_mut() {
                                *e = normal(&mut rng);
                            }
                            for j in 0..n {
                                let row = &cholesky[j * n..j * n + j + 1];
                                let zj: f32 = row.iter().zip(&z[..=j]).map(|(l, e)| l * e).sum();
                                if zj > tau[j] {
                                    part.idx.push(j as u32);
                                }
                            }
                            part.counts.push(part.idx.len() - before);
                        }
                    }
                    _ => unreachable!("fire_copula needs a correlation"),
                }
                part
            })
            .collect();
        assemble_parts(n, batch_size, parts)
    }

    /// `rows` rows of a low-rank copula: every row's `ε` first, then the
    /// parent-free features of all rows by thinning ([`thin_low_rank_rows`]),
    /// then (with a gating hierarchy) each row's magnitudes and children
    /// conditional on its `ε`.
    #[inline(always)]
    fn fire_low_rank_rows(
        &self,
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
            match &self.gating {
                Some(g) => {
                    row.clear();
                    row.extend(fired.iter().map(|&f| (f, 0.0f32)));
                    // Children conditional on the same ε (given ε the
                    // features are independent).
                    children.eps.clear();
                    children.eps.extend_from_slice(e);
                    children.eps.resize(rank.next_multiple_of(DOT_LANES), 0.0);
                    self.expand_row(g, &mut row, rng, &mut children);
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

    fn draw_magnitudes(&self, batch: &mut Csr, key: u64) {
        let (mean, std) = (&self.mean_firing_magnitudes, &self.std_firing_magnitudes);
        let (indices, values) = batch.indices_and_values_mut();
        values
            .par_chunks_mut(ENTRY_BLOCK)
            .zip(indices.par_chunks(ENTRY_BLOCK))
            .enumerate()
            .for_each(|(blk, (vals, idx))| {
                let mut rng = block_rng(key, blk as u64);
                for (v, &f) in vals.iter_mut().zip(idx) {
                    let (m, s) = (mean[f as usize], std[f as usize]);
                    *v = if s == 0.0 {
                        m
                    } else {
                        (m + s * normal(&mut rng)).max(0.0)
                    };
                }
            });
    }

    /// The dense reference sampler: sae-lens's algorithm, entry by entry.
    ///
    /// Every feature is decided in every row (`O(B·N)`, `O(B·N·R)` with a
    /// low-rank copula, `O(B·N²)` with a dense one): independent firing draws
    /// one uniform per entry (fires iff `u < p_j`); a low-rank copula draws
    /// `ε ~ N(0, I_R)` and `η ~ N(0, I_N)` and fires iff
    /// `F_j·ε + √d_j η_j > τ_j`; a dense copula fires iff `(L ε)_j > τ_j`.
    /// Then magnitudes and the whole modifier chain on all fired entries (no
    /// parent-first shortcut, no thinning). Slow; [`sample`](Self::sample)
    /// draws from the same distribution, and the tests check that it does.
    pub fn sample_reference(&self, batch_size: usize, rng: &mut SampleRng) -> Csr {
        let n = self.num_features;
        let tau = self.thresholds.as_deref().unwrap_or(&[]);
        let mut row_offsets = Vec::with_capacity(batch_size + 1);
        row_offsets.push(0);
        let mut indices = Vec::new();
        let mut z = vec![0.0f32; n];
        for _ in 0..batch_size {
            match &self.copula {
                Copula::Independent => {
                    for (j, &p) in self.firing_probabilities.iter().enumerate() {
                        if rng.random::<f32>() < p {
                            indices.push(j as u32);
                        }
                    }
                }
                Copula::LowRank {
                    factor,
                    inv_sqrt_diag,
                    rank,
                    ..
                } => {
                    let eps: Vec<f32> = (0..*rank).map(|_| normal(rng)).collect();
                    for j in 0..n {
                        let zj = dot(&factor[j * rank..(j + 1) * rank], &eps)
                            + normal(rng) / inv_sqrt_diag[j];
                        if zj > tau[j] {
                            indices.push(j as u32);
                        }
                    }
                }
                Copula::Dense { cholesky } => {
                    for e in z.iter_mut() {
                        *e = normal(rng);
                    }
                    for j in 0..n {
                        let row = &cholesky[j * n..j * n + j + 1];
                        let zj: f32 = row.iter().zip(&z[..=j]).map(|(l, e)| l * e).sum();
                        if zj > tau[j] {
                            indices.push(j as u32);
                        }
                    }
                }
            }
            row_offsets.push(indices.len());
        }
        let values = indices
            .iter()
            .map(|&f| {
                let (m, s) = (
                    self.mean_firing_magnitudes[f as usize],
                    self.std_firing_magnitudes[f as usize],
                );
                (m + s * normal(rng)).max(0.0)
            })
            .collect();
        let mut batch = Csr::from_parts_unchecked(n, row_offsets, indices, values);
        batch.retain_positive();
        self.apply_modifiers(&mut batch, rng);
        batch
    }
}

/// How the children of an active parent fire in a gated sampler
/// ([`ActivationGenerator::expand_row`]); `k` indexes `Gating::children`.
trait ChildLaw {
    /// Called before the children of the entries of `wave` are decided
    /// (a chance to compute their laws together): every child slot of an
    /// active entry of `wave` (value `> 0`) may then be asked about.
    fn prepare(&mut self, _gating: &Gating, _wave: &[(u32, f32)]) {}
    /// Whether child slot `k` fires.
    fn fires(&mut self, k: usize, rng: &mut SampleRng) -> bool;
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

/// Rows drawn by one task: entries per row, indices and (when the task drew
/// them) values.
#[derive(Default)]
struct RowsPart {
    counts: Vec<usize>,
    idx: Vec<u32>,
    vals: Vec<f32>,
}

impl RowsPart {
    fn push_row(&mut self, row: &[(u32, f32)]) {
        self.counts.push(row.len());
        self.idx.extend(row.iter().map(|e| e.0));
        self.vals.extend(row.iter().map(|e| e.1));
    }
}

/// Concatenates the tasks' rows into a CSR batch (values 0 where a task drew
/// none).
fn assemble_parts(n: usize, batch_size: usize, parts: Vec<RowsPart>) -> Csr {
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

/// `Σ_r a_r b_r`, accumulated from 0 in order (the dense reference path).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (&x, &y) in a.iter().zip(b) {
        acc += y * x;
    }
    acc
}

/// A uniform in `[0, 1)` with 53 random bits.
#[inline(always)]
fn unit_uniform(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// An `Exp(1)` draw (ziggurat).
#[inline(always)]
fn exp1(rng: &mut impl RngCore) -> f64 {
    Exp1.sample(rng)
}

/// `⌊E / h⌋` with `E ~ Exp(1)`: the number of failures before the first
/// success of Bernoulli(`1 − e^{−h}`) trials, saturating for tiny `h`.
#[inline(always)]
fn exp_skip(rng: &mut impl RngCore, h: f64) -> u64 {
    let k = exp1(rng) / h;
    if k >= u64::MAX as f64 {
        u64::MAX
    } else {
        k as u64
    }
}

/// Largest expected number of Cauchy–Schwarz candidates per tile for which
/// thinning at that bound beats computing the tile's gaps exactly.
const CS_MAX_CANDIDATES: f64 = 2.0;

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
    tails.bound(plan.tile_a[tile] - norm * plan.tile_c[tile] - 1e-4 * (1.0 + norm))
}

/// Whether the Cauchy–Schwarz bound of a tile `(a, c)` at `‖ε‖ = norm`
/// predicts at most `CS_MAX_CANDIDATES` candidates.
fn cs_pays(a: f64, c: f64, norm: f64) -> bool {
    let (h, _) = tails().bound(a - norm * c - 1e-4 * (1.0 + norm));
    h * GAP_TILE as f64 <= CS_MAX_CANDIDATES
}

/// The largest `‖ε‖` (to 10⁻⁹) for which [`cs_pays`] holds (it holds on an
/// interval `[0, limit]`: the bound only loosens as `‖ε‖` grows); `-1`
/// when it never does.
fn cs_norm_limit(a: f64, c: f64) -> f64 {
    if !cs_pays(a, c, 0.0) {
        return -1.0;
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while cs_pays(a, c, hi) {
        lo = hi;
        hi *= 2.0;
        if hi > 1e6 {
            return f64::INFINITY;
        }
    }
    while hi - lo > 1e-9 {
        let mid = 0.5 * (lo + hi);
        if cs_pays(a, c, mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// One task of independent firing: walks the batch column of each feature
/// in `features` with geometric skips (`⌊E / h_j⌋`, `E ~ Exp(1)`,
/// `h_j = −ln(1 − p_j) = −log_q[j]`) and returns the `(row, feature)`
/// entries, feature by feature. Multiversioned like [`low_rank_block`]
/// (its `f64 → u64` conversions are one instruction with AVX-512).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
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

/// One task of gated independent firing: the rows whose fired parent-free
/// features are `indices[offsets[0]..offsets[last]]` (CSR offsets of those
/// rows) get their magnitudes and children (one Bernoulli(`p_c`) per child
/// of an active parent; see [`ActivationGenerator::expand_row`]).
/// Multiversioned like [`low_rank_block`].
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn independent_rows(
    generator: &ActivationGenerator,
    gating: &Gating,
    indices: &[u32],
    offsets: &[usize],
    rng: &mut SampleRng,
) -> RowsPart {
    let p = &generator.firing_probabilities;
    let mut part = RowsPart::default();
    let mut row = Vec::new();
    for w in offsets.windows(2) {
        row.clear();
        row.extend(indices[w[0]..w[1]].iter().map(|&f| (f, 0.0f32)));
        generator.expand_row(
            gating,
            &mut row,
            rng,
            &mut IndependentChildren { p, gating },
        );
        part.push_row(&row);
    }
    part
}

/// One task of low-rank copula firing ([`ActivationGenerator::fire_low_rank_rows`]),
/// compiled for several instruction sets and chosen at run time: the
/// thinning's index arithmetic and `f64`/integer conversions take single
/// instructions with AVX-512 / AVX2 and several on baseline x86-64. The
/// arithmetic is IEEE in every version (no contraction), so the draws are
/// the same on every target.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn low_rank_block(
    generator: &ActivationGenerator,
    plan: &LowRankPlan,
    rows: usize,
    rng: &mut SampleRng,
    scratch: &mut ThinScratch,
    part: &mut RowsPart,
) {
    generator.fire_low_rank_rows(plan, rows, rng, scratch, part)
}

/// Reusable buffers of [`thin_low_rank_rows`].
#[derive(Default)]
struct ThinScratch {
    /// The fired features of each row, in plan order.
    fired: Vec<Vec<u32>>,
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
fn thin_low_rank_rows(
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
    use crate::correlation::CorrelationMatrix;
    use crate::rng::sample_rng;

    #[test]
    #[allow(clippy::excessive_precision)] // golden values verbatim from the reference
    fn threshold_golden() {
        let want = [0.0, 0.52440047, 2.3263483, f32::NEG_INFINITY, f32::INFINITY];
        for (p, w) in [0.5f32, 0.3, 0.01, 1.0, 0.0].iter().zip(want) {
            let t = correlation_threshold(*p);
            if w.is_infinite() {
                assert_eq!(t, w);
            } else {
                assert!((t - w).abs() < 1e-6, "p={p}: {t} vs {w}");
            }
        }
    }

    #[test]
    fn exp_skip_is_geometric() {
        // Mean failures before success = (1 - p) / p = 9 for p = 0.1.
        // Variance (1 - p)/p^2 = 90; with n = 200_000 the standard error of the
        // mean is sqrt(90 / 2e5) = 0.0212; 5 sigma = 0.106.
        let h = -(-0.1f64).ln_1p();
        let mut rng = sample_rng(Some(11));
        let n = 200_000;
        let mean = (0..n).map(|_| exp_skip(&mut rng, h) as f64).sum::<f64>() / n as f64;
        assert!((mean - 9.0).abs() < 0.106, "mean {mean}");
    }

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

    #[test]
    fn default_magnitudes_are_exactly_one() {
        let g = ActivationGenerator::new(50, 0.2f32, 0.0f32, 1.0f32).unwrap();
        let b = g.sample(100, &mut sample_rng(Some(0)));
        assert!(b.values().iter().all(|&v| v == 1.0));
        assert!(b.nnz() > 0);
    }

    #[test]
    fn probability_one_always_fires() {
        let mut p = vec![0.1f32; 40];
        p[7] = 1.0;
        let g = ActivationGenerator::new(40, p, 0.0f32, 1.0f32).unwrap();
        let b = g.sample(64, &mut sample_rng(Some(1)));
        assert!(b.rows().all(|(idx, _)| idx.contains(&7)));
        let g = g
            .with_correlation(Correlation::Dense(
                CorrelationMatrix::new(
                    (0..1600)
                        .map(|k| if k / 40 == k % 40 { 1.0 } else { 0.0 })
                        .collect(),
                    40,
                )
                .unwrap(),
            ))
            .unwrap();
        let b = g.sample(64, &mut sample_rng(Some(1)));
        assert!(b.rows().all(|(idx, _)| idx.contains(&7)));
    }

    #[test]
    fn same_seed_same_batch_any_thread_count() {
        let g = ActivationGenerator::new(5000, 0.01f32, 0.3f32, 2.0f32).unwrap();
        let a = g.sample(300, &mut sample_rng(Some(9)));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| g.sample(300, &mut sample_rng(Some(9))));
        assert_eq!(a, b);
        assert_ne!(a, g.sample(300, &mut sample_rng(Some(10))));
    }

    #[test]
    fn invalid_parameters_are_named() {
        let cases: Vec<(Result<ActivationGenerator>, &str)> = vec![
            (
                ActivationGenerator::new(0, 0.1f32, 0.0f32, 1.0f32),
                "num_features",
            ),
            (
                ActivationGenerator::new(3, 0.0f32, 0.0f32, 1.0f32),
                "firing_probabilities[0]",
            ),
            (
                ActivationGenerator::new(3, vec![0.1, 1.5, 0.1], 0.0f32, 1.0f32),
                "firing_probabilities[1]",
            ),
            (
                ActivationGenerator::new(3, f32::NAN, 0.0f32, 1.0f32),
                "firing_probabilities",
            ),
            (
                ActivationGenerator::new(3, 0.1f32, -1.0f32, 1.0f32),
                "std_firing_magnitudes[0]",
            ),
            (
                ActivationGenerator::new(3, 0.1f32, 0.0f32, 0.0f32),
                "mean_firing_magnitudes[0]",
            ),
            (
                ActivationGenerator::new(3, vec![0.1; 4], 0.0f32, 1.0f32),
                "firing_probabilities",
            ),
        ];
        for (r, needle) in cases {
            let e = r.unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let g = ActivationGenerator::new(3, 0.1f32, 0.0f32, 1.0f32).unwrap();
        let lr = LowRankCorrelation::new(vec![0.1; 8], vec![0.9; 4], 4, 2).unwrap();
        let e = g
            .clone()
            .with_correlation(Correlation::LowRank(lr))
            .unwrap_err()
            .to_string();
        assert!(e.contains("correlation_factor"), "{e}");
        let m = CorrelationMatrix::new(vec![1.0, 0.0, 0.0, 1.0], 2).unwrap();
        let e = g
            .clone()
            .with_correlation(Correlation::Dense(m))
            .unwrap_err()
            .to_string();
        assert!(e.contains("correlation_matrix"), "{e}");
        let m = CorrelationMatrix::new(vec![1., 1., 0., 1., 1., 0., 0., 0., 1.], 3).unwrap();
        let e = g
            .with_correlation(Correlation::Dense(m))
            .unwrap_err()
            .to_string();
        assert!(e.contains("positive definite"), "{e}");
    }

    #[test]
    fn modifiers_run_in_order_and_zeros_are_dropped() {
        use crate::modifier::FnModifier;
        let g = ActivationGenerator::new(10, 0.5f32, 0.0f32, 1.0f32)
            .unwrap()
            .with_modifier(Arc::new(FnModifier::new("double", |b, _, _| {
                b.values_mut().iter_mut().for_each(|v| *v *= 2.0)
            })))
            .unwrap()
            .with_modifier(Arc::new(FnModifier::new("drop-even", |b, g, _| {
                assert_eq!(g.num_features(), 10);
                let idx = b.indices().to_vec();
                for (v, f) in b.values_mut().iter_mut().zip(idx) {
                    if f % 2 == 0 {
                        *v = -1.0;
                    }
                }
            })))
            .unwrap();
        let b = g.sample(200, &mut sample_rng(Some(3)));
        assert!(b.nnz() > 0);
        assert!(b.indices().iter().all(|f| f % 2 == 1));
        assert!(b.values().iter().all(|&v| v == 2.0));
    }
}
