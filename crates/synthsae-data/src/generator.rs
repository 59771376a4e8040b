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
use rand::{Rng, RngCore};
use rayon::prelude::*;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::correlation::{CorrelationMatrix, LowRankCorrelation};
use crate::error::{bad_shape, invalid, Result};
use crate::kernels::{axpy, exceeds, standardized_gap};
use crate::modifier::ActivationModifier;
use crate::rng::{block_rng, geometric_skip, normal, SampleRng};
use crate::sparse::SparseBatch;

/// Features handled by one task of independent firing.
const FEATURE_BLOCK: usize = 1024;
/// Rows handled by one task of copula firing.
const ROW_BLOCK: usize = 16;
/// Entries handled by one task of magnitude drawing.
const ENTRY_BLOCK: usize = 8192;

/// Stream-separation constants for the per-batch key.
const MAGNITUDE_STREAM: u64 = 0x9E37_79B9_7F4A_7C15;
const MODIFIER_STREAM: u64 = 0xD1B5_4A32_D192_ED03;

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
    /// Factor `[N, R]`, transposed factor `[R, N]` and `1 / sqrt(diag)` `[N]`.
    LowRank {
        factor: Vec<f32>,
        factor_t: Vec<f32>,
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
    /// Parent rule of the first modifier, with features in parent-first order.
    gating: Option<Gating>,
}

/// Low-rank factor columns, thresholds and `1/√d` of the parent-free features.
struct FreeFeatures {
    factor_t: Vec<f32>,
    tau: Vec<f32>,
    inv_s: Vec<f32>,
}

/// Features that can only survive when their parent fires.
#[derive(Debug, Clone)]
struct Gating {
    /// Parent of each feature (`u32::MAX`: none).
    parent: Vec<u32>,
    /// All features, every parent before its children; the first `n_free`
    /// have no parent (ascending).
    order: Vec<u32>,
    n_free: usize,
}

impl Gating {
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
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&f| depth[f as usize]);
        let n_free = order
            .iter()
            .take_while(|&&f| parent[f as usize] == u32::MAX)
            .count();
        Some(Self {
            parent: parent.to_vec(),
            order,
            n_free,
        })
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
                let r = lr.rank();
                let mut factor_t = vec![0.0f32; r * n];
                for (i, row) in lr.factor().chunks_exact(r).enumerate() {
                    for (k, &v) in row.iter().enumerate() {
                        factor_t[k * n + i] = v;
                    }
                }
                Copula::LowRank {
                    factor: lr.factor().to_vec(),
                    factor_t,
                    inv_sqrt_diag: lr.diag().iter().map(|d| 1.0 / d.sqrt()).collect(),
                    rank: r,
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
        Ok(self)
    }

    /// Appends a modifier to the chain (applied left to right).
    pub fn with_modifier(mut self, modifier: Arc<dyn ActivationModifier>) -> Result<Self> {
        modifier.check(&self)?;
        if self.modifiers.is_empty() {
            self.gating = modifier
                .required_parents()
                .filter(|p| p.len() == self.num_features)
                .and_then(Gating::new);
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
    pub fn sample(&self, batch_size: usize, rng: &mut SampleRng) -> SparseBatch {
        let key = rng.next_u64();
        let mut batch = match &self.copula {
            Copula::Independent => self.fire_independent(batch_size, key),
            _ => self.fire_copula(batch_size, key),
        };
        self.draw_magnitudes(&mut batch, key ^ MAGNITUDE_STREAM);
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
    pub fn apply_modifiers(&self, batch: &mut SparseBatch, rng: &mut SampleRng) {
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
        let mut batch = SparseBatch::from_tensor(acts)?;
        batch.retain_positive();
        self.apply_modifiers(&mut batch, rng);
        Ok(batch.to_tensor(&device))
    }

    fn fire_independent(&self, batch_size: usize, key: u64) -> SparseBatch {
        let b = batch_size as u64;
        let n = self.num_features;
        let blocks: Vec<Vec<(u32, u32)>> = (0..n.div_ceil(FEATURE_BLOCK))
            .into_par_iter()
            .map(|blk| {
                let mut rng = block_rng(key, blk as u64);
                let mut out = Vec::new();
                let end = ((blk + 1) * FEATURE_BLOCK).min(n);
                for j in blk * FEATURE_BLOCK..end {
                    let lq = self.log_q[j];
                    if lq == f64::NEG_INFINITY {
                        out.extend((0..batch_size as u32).map(|r| (r, j as u32)));
                        continue;
                    }
                    let mut pos = geometric_skip(&mut rng, lq);
                    while pos < b {
                        out.push((pos as u32, j as u32));
                        pos = pos
                            .saturating_add(1)
                            .saturating_add(geometric_skip(&mut rng, lq));
                    }
                }
                out
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
        SparseBatch::from_parts_unchecked(n, row_offsets, indices, vec![0.0; nnz])
    }

    fn fire_copula(&self, batch_size: usize, key: u64) -> SparseBatch {
        let n = self.num_features;
        let tau = self.thresholds.as_deref().unwrap_or(&[]);
        // Compact copies for the parent-free features of a gated low-rank copula.
        let free = match (&self.gating, &self.copula) {
            (
                Some(g),
                Copula::LowRank {
                    factor_t,
                    inv_sqrt_diag,
                    rank,
                    ..
                },
            ) => {
                let cols = &g.order[..g.n_free];
                let mut ft = Vec::with_capacity(rank * cols.len());
                for r in 0..*rank {
                    ft.extend(cols.iter().map(|&f| factor_t[r * n + f as usize]));
                }
                Some(FreeFeatures {
                    factor_t: ft,
                    tau: cols.iter().map(|&f| tau[f as usize]).collect(),
                    inv_s: cols.iter().map(|&f| inv_sqrt_diag[f as usize]).collect(),
                })
            }
            _ => None,
        };
        let blocks: Vec<(Vec<usize>, Vec<u32>)> = (0..batch_size.div_ceil(ROW_BLOCK))
            .into_par_iter()
            .map(|blk| {
                let mut rng = block_rng(key, blk as u64);
                let rows = ((blk + 1) * ROW_BLOCK).min(batch_size) - blk * ROW_BLOCK;
                let mut counts = Vec::with_capacity(rows);
                let mut idx = Vec::new();
                let mut z = vec![0.0f32; n];
                let mut uniforms = vec![0u32; n];
                let mut fired = vec![false; if self.gating.is_some() { n } else { 0 }];
                let mut eps: Vec<f32> = Vec::new();
                for _ in 0..rows {
                    let before = idx.len();
                    match &self.copula {
                        Copula::LowRank {
                            factor,
                            inv_sqrt_diag,
                            rank,
                            ..
                        } if self.gating.is_some() => {
                            // Parent-first: a feature is drawn only if its
                            // parent fired (otherwise the modifier zeroes it).
                            // Features without a parent are decided in one
                            // vectorised pass, the others one by one.
                            let gating = self.gating.as_ref().expect("checked");
                            let free = free.as_ref().expect("built with gating");
                            let n0 = gating.n_free;
                            eps.clear();
                            eps.extend((0..*rank).map(|_| normal(&mut rng)));
                            let start = idx.len();
                            let z0 = &mut z[..n0];
                            z0.fill(0.0);
                            for (r, col) in free
                                .factor_t
                                .chunks_exact(n0.max(1))
                                .take(*rank)
                                .enumerate()
                            {
                                axpy(z0, eps[r], col);
                            }
                            standardized_gap(z0, &free.tau, &free.inv_s);
                            rng.fill(&mut uniforms[..n0]);
                            for (k, (&t, &u)) in z0.iter().zip(&uniforms[..n0]).enumerate() {
                                if exceeds(t, u) {
                                    let f = gating.order[k] as usize;
                                    fired[f] = true;
                                    idx.push(f as u32);
                                }
                            }
                            for &f in &gating.order[n0..] {
                                let f = f as usize;
                                if !fired[gating.parent[f] as usize] {
                                    continue;
                                }
                                let row = &factor[f * rank..(f + 1) * rank];
                                let zf: f32 = row.iter().zip(&eps).map(|(a, b)| a * b).sum();
                                if exceeds((tau[f] - zf) * inv_sqrt_diag[f], rng.next_u32()) {
                                    fired[f] = true;
                                    idx.push(f as u32);
                                }
                            }
                            idx[start..].sort_unstable();
                            for &f in &idx[start..] {
                                fired[f as usize] = false;
                            }
                        }
                        Copula::LowRank {
                            factor_t,
                            inv_sqrt_diag,
                            rank,
                            ..
                        } => {
                            // z = F ε; feature j fires iff F_j·ε + √d_j η_j > τ_j,
                            // i.e. iff η_j > (τ_j − z_j)/√d_j, decided from one
                            // uniform per feature (no normal draw).
                            z.fill(0.0);
                            for col in factor_t.chunks_exact(n).take(*rank) {
                                axpy(&mut z, normal(&mut rng), col);
                            }
                            standardized_gap(&mut z, tau, inv_sqrt_diag);
                            rng.fill(&mut uniforms[..]);
                            for (j, (&t, &u)) in z.iter().zip(&uniforms).enumerate() {
                                if exceeds(t, u) {
                                    idx.push(j as u32);
                                }
                            }
                        }
                        Copula::Dense { cholesky } => {
                            for e in z.iter_mut() {
                                *e = normal(&mut rng);
                            }
                            for j in 0..n {
                                let row = &cholesky[j * n..j * n + j + 1];
                                let zj: f32 = row.iter().zip(&z[..=j]).map(|(l, e)| l * e).sum();
                                if zj > tau[j] {
                                    idx.push(j as u32);
                                }
                            }
                        }
                        Copula::Independent => unreachable!("fire_copula needs a correlation"),
                    }
                    counts.push(idx.len() - before);
                }
                (counts, idx)
            })
            .collect();
        let mut row_offsets = Vec::with_capacity(batch_size + 1);
        row_offsets.push(0);
        let mut indices = Vec::new();
        for (counts, idx) in blocks {
            for c in counts {
                row_offsets.push(row_offsets.last().copied().unwrap_or(0) + c);
            }
            indices.extend(idx);
        }
        let nnz = indices.len();
        SparseBatch::from_parts_unchecked(n, row_offsets, indices, vec![0.0; nnz])
    }

    fn draw_magnitudes(&self, batch: &mut SparseBatch, key: u64) {
        let indices = batch.feature_indices().to_vec();
        let (mean, std) = (&self.mean_firing_magnitudes, &self.std_firing_magnitudes);
        batch
            .values_mut()
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
                let idx = b.feature_indices().to_vec();
                for (v, f) in b.values_mut().iter_mut().zip(idx) {
                    if f % 2 == 0 {
                        *v = -1.0;
                    }
                }
            })))
            .unwrap();
        let b = g.sample(200, &mut sample_rng(Some(3)));
        assert!(b.nnz() > 0);
        assert!(b.feature_indices().iter().all(|f| f % 2 == 1));
        assert!(b.values().iter().all(|&v| v == 2.0));
    }
}
