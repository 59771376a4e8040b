//! The activation generator (sae-lens `ActivationGenerator`), sparse-first.
//!
//! A batch `[B, N]` is drawn in three steps, each parallel over fixed blocks
//! of work with its own derived random stream (so results do not depend on
//! the number of threads). [`ActivationGenerator::sample`] takes one `u64`
//! key from the caller's generator and passes it through these files:
//!
//! 1. **Which features fire** (values still 0).
//!    * No correlation: `independent` walks each parent-free feature's
//!      column with geometric skips (`draws`), `O(N + nnz)` per batch.
//!    * Low-rank copula (`z = F ε + sqrt(d) ⊙ η`): `lowrank` draws each
//!      row's `ε`, then `thinning` fires the parent-free features of the
//!      `plan` (sorted, tiled; per tile a Cauchy–Schwarz bound from
//!      `bound`) by walking an exponential budget, with the gap kernel
//!      of `synthsae_host::kernels` where the bound is loose.
//!    * Dense copula (`z = L ε`, Cholesky factor computed once in
//!      `copula`): `dense`, `O(N²)` per row.
//!
//!    Feature `j` fires in a copula row iff `z_j > τ_j = Φ⁻¹(1 − p_j)`.
//!    Each task's rows are joined into one CSR batch by `rows`.
//! 2. **Magnitudes** `relu(mean_j + std_j · n)` per fired entry, no draw when
//!    `std_j = 0` (`FeatureParams::magnitude`). With a hierarchy given by
//!    [`ActivationGenerator::with_hierarchy`], `gating` draws them inside
//!    step 1 instead, row by row, together with the children of active
//!    parents only (their conditional law given the row's `ε`), and
//!    resolves the hierarchy's mutual exclusions while drawing.
//! 3. **Modifiers** ([`ActivationModifier`], the hierarchy first when it
//!    gates), then entries that are not `> 0` are removed.
//!
//! `reference` is the dense, entry-by-entry sampler the tests compare
//! the sparse one with.

mod bound;
mod copula;
mod dense;
mod draws;
mod gating;
mod independent;
mod lowrank;
mod plan;
mod reference;
mod rows;
mod thinning;

use std::sync::Arc;

use burn::tensor::{backend::Backend, Tensor};
use rand::RngCore;

use crate::error::{bad_shape, Result};
use crate::hierarchy_modifier::HierarchyModifier;
use crate::modifier::ActivationModifier;
use crate::per_feature::{FeatureParams, PerFeature};
use crate::rng::{block_rng, SampleRng};
use copula::Copula;
use gating::Gating;
use plan::LowRankPlan;
use synthsae_host::Csr;

pub use copula::{correlation_threshold, Correlation};

/// Stream-separation constants for the per-batch key.
const MAGNITUDE_STREAM: u64 = 0x9E37_79B9_7F4A_7C15;
const MODIFIER_STREAM: u64 = 0xD1B5_4A32_D192_ED03;

/// Samples sparse, non-negative ground-truth feature activations.
#[derive(Debug, Clone)]
pub struct ActivationGenerator {
    features: FeatureParams,
    /// `τ_j` `[N]` when a correlation is set.
    thresholds: Option<Vec<f32>>,
    correlation: Option<Correlation>,
    copula: Copula,
    modifiers: Vec<Arc<dyn ActivationModifier>>,
    /// The hierarchy's gating, when the hierarchy is the first modifier
    /// (children are drawn only where their parent fired).
    gating: Option<Gating>,
    /// Thinning plan of the low-rank copula (rebuilt when the correlation or
    /// the gating changes).
    plan: Option<Arc<LowRankPlan>>,
}

impl ActivationGenerator {
    /// A generator with independent firing of `num_features` features with
    /// these parameters (ranges as in [`FeatureParams::new`]).
    pub fn new(
        num_features: usize,
        firing_probabilities: impl Into<PerFeature>,
        std_firing_magnitudes: impl Into<PerFeature>,
        mean_firing_magnitudes: impl Into<PerFeature>,
    ) -> Result<Self> {
        Ok(Self {
            features: FeatureParams::new(
                num_features,
                firing_probabilities,
                std_firing_magnitudes,
                mean_firing_magnitudes,
            )?,
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
        self.copula = Copula::new(&correlation, self.num_features())?;
        self.thresholds = Some(
            self.features
                .firing_probabilities()
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
                        all = Gating::all_free(self.num_features());
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

    /// Appends a modifier to the chain (applied left to right). It is a
    /// plain batch transform: sampling draws every feature it may zero.
    pub fn with_modifier(mut self, modifier: Arc<dyn ActivationModifier>) -> Result<Self> {
        modifier.check(&self.features)?;
        self.modifiers.push(modifier);
        Ok(self)
    }

    /// Appends a hierarchy to the modifier chain and, when it is the first
    /// step of the chain, gates sampling by it: features whose parent did
    /// not fire are not drawn, and a mutually exclusive group's survivor is
    /// chosen while drawing. They would be zeroed by the hierarchy anyway,
    /// so the distribution is that of [`with_modifier`](Self::with_modifier)
    /// with the same hierarchy; the work drops (and the random stream
    /// differs). After another modifier, which may change what is active,
    /// the hierarchy is appended without gating.
    pub fn with_hierarchy(mut self, hierarchy: Arc<HierarchyModifier>) -> Result<Self> {
        hierarchy.check(&self.features)?;
        if self.modifiers.is_empty() {
            self.gating = Gating::new(hierarchy.parents(), hierarchy.exclusive_children());
            self.rebuild_plan();
        }
        self.modifiers.push(hierarchy);
        Ok(self)
    }

    /// `N`.
    pub fn num_features(&self) -> usize {
        self.features.num_features()
    }

    /// The per-feature parameters (what modifiers read).
    pub fn features(&self) -> &FeatureParams {
        &self.features
    }

    /// Firing probabilities `[N]`.
    pub fn firing_probabilities(&self) -> &[f32] {
        self.features.firing_probabilities()
    }

    /// Standard deviations of the firing magnitudes `[N]`.
    pub fn std_firing_magnitudes(&self) -> &[f32] {
        self.features.std_firing_magnitudes()
    }

    /// Means of the firing magnitudes `[N]`.
    pub fn mean_firing_magnitudes(&self) -> &[f32] {
        self.features.mean_firing_magnitudes()
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
        self.firing_probabilities().iter().map(|&p| p as f64).sum()
    }

    /// Draws a batch of `batch_size` rows `[batch_size, N]` in sparse form.
    ///
    /// Consumes exactly one `u64` from `rng`; everything else is derived from
    /// it, so the result is the same for any number of threads.
    pub fn sample(&self, batch_size: usize, rng: &mut SampleRng) -> Csr {
        let key = rng.next_u64();
        let gating = self.gating.as_ref();
        let mut batch = match (&self.copula, &self.plan) {
            (Copula::Independent, _) => {
                independent::fire_independent(&self.features, gating, batch_size, key)
            }
            (Copula::LowRank { .. }, Some(plan)) => {
                lowrank::fire_low_rank(&self.features, &self.gating, plan, batch_size, key)
            }
            (Copula::Dense { cholesky }, _) => dense::fire_dense(
                cholesky,
                self.thresholds.as_deref().unwrap_or(&[]),
                self.num_features(),
                batch_size,
                key,
            ),
            (Copula::LowRank { .. }, None) => unreachable!("a low-rank copula has a plan"),
        };
        // Gated sampling (independent or low-rank) draws magnitudes while it
        // expands the tree.
        let has_values = self.gating.is_some()
            && matches!(self.copula, Copula::Independent | Copula::LowRank { .. });
        if !has_values {
            self.features
                .draw_magnitudes(&mut batch, key ^ MAGNITUDE_STREAM);
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
            m.modify(batch, &self.features, rng);
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
        if n != self.num_features() {
            return Err(bad_shape(
                "activations",
                format!("[batch, {}]", self.num_features()),
                &acts.dims(),
            ));
        }
        let mut batch = Csr::from_tensor(acts)?;
        batch.retain_positive();
        self.apply_modifiers(&mut batch, rng);
        Ok(batch.to_tensor(&device))
    }

    /// The dense reference sampler: sae-lens's algorithm, entry by entry
    /// (see `reference`), then the whole modifier chain on all fired
    /// entries. Slow; [`sample`](Self::sample) draws from the same
    /// distribution, and the tests check that it does.
    pub fn sample_reference(&self, batch_size: usize, rng: &mut SampleRng) -> Csr {
        let tau = self.thresholds.as_deref().unwrap_or(&[]);
        let mut batch =
            reference::sample_reference(&self.features, &self.copula, tau, batch_size, rng);
        batch.retain_positive();
        self.apply_modifiers(&mut batch, rng);
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlation::{CorrelationMatrix, LowRankCorrelation};
    use crate::hierarchy::{Hierarchy, HierarchyNode};
    use crate::rng::sample_rng;

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

    #[test]
    fn mutual_exclusion_keeps_one_uniform_winner() {
        // Root 0 (ME) with children 1, 2, 3; all always fire.
        let h = Hierarchy::new(vec![node(
            0,
            vec![
                HierarchyNode::leaf(1),
                HierarchyNode::leaf(2),
                HierarchyNode::leaf(3),
            ],
            true,
            false,
        )])
        .unwrap();
        let g = ActivationGenerator::new(4, 1.0f32, 0.0f32, 1.0f32).unwrap();
        let g = g
            .clone()
            .with_hierarchy(Arc::new(HierarchyModifier::new(h, 4).unwrap()))
            .unwrap();
        let rows = 30_000;
        let b = g.sample(rows, &mut sample_rng(Some(2)));
        let mut wins = [0usize; 4];
        for (idx, _) in b.rows() {
            assert_eq!(idx.len(), 2, "root plus exactly one child");
            assert_eq!(idx[0], 0);
            wins[idx[1] as usize] += 1;
        }
        // Each child wins with probability 1/3: 5σ = 5·sqrt(n·(1/3)(2/3)) ≈ 408.
        for w in &wins[1..] {
            assert!((*w as f64 - rows as f64 / 3.0).abs() < 408.0, "{wins:?}");
        }
    }

    #[test]
    fn dense_and_sparse_paths_agree() {
        use burn::backend::NdArray;
        let cfg = crate::hierarchy::HierarchyConfig {
            total_root_nodes: 3,
            branching_factor: crate::hierarchy::BranchingFactor::Exact(3),
            max_depth: 2,
            mutually_exclusive_portion: 0.5,
            scale_children_by_parent: true,
            ..Default::default()
        };
        let h = crate::hierarchy::generate_hierarchy(40, &cfg, Some(1)).unwrap();
        let g = ActivationGenerator::new(40, 0.4f32, 0.3f32, 1.5f32)
            .unwrap()
            .with_hierarchy(Arc::new(HierarchyModifier::new(h, 40).unwrap()))
            .unwrap();
        // An unmodified batch: same generator without the modifier.
        let plain = ActivationGenerator::new(40, 0.4f32, 0.3f32, 1.5f32).unwrap();
        let raw = plain.sample(200, &mut sample_rng(Some(4)));
        let mut sparse = raw.clone();
        g.apply_modifiers(&mut sparse, &mut sample_rng(Some(9)));
        let dense = g
            .apply_modifiers_dense::<NdArray>(
                raw.to_tensor(&Default::default()),
                &mut sample_rng(Some(9)),
            )
            .unwrap();
        assert_eq!(Csr::from_tensor(dense).unwrap(), sparse);
        assert!(sparse.nnz() < raw.nnz(), "the hierarchy removed entries");
    }

    #[test]
    fn hierarchies_for_other_sizes_are_rejected() {
        let h = Hierarchy::new(vec![node(0, vec![HierarchyNode::leaf(7)], false, false)]).unwrap();
        let g = ActivationGenerator::new(9, 0.1f32, 0.0f32, 1.0f32).unwrap();
        let m = HierarchyModifier::new(h, 8).unwrap();
        let e = g.with_hierarchy(Arc::new(m)).unwrap_err().to_string();
        assert!(e.contains("built for 8 features"), "{e}");
    }

    fn node(f: usize, children: Vec<HierarchyNode>, me: bool, scale: bool) -> HierarchyNode {
        HierarchyNode::new(Some(f), children, me, scale).unwrap()
    }
}
