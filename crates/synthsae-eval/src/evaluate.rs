//! Evaluating an SAE against a synthetic model's ground truth (spec §9.5).

use burn::prelude::*;
use synthsae_data::{HiddenPath, HierarchyModifier, SampleRng, SyntheticModel};
use synthsae_host::Csr;
use synthsae_sae::Sae;

use crate::cosine::SimilarityMatrix;
use crate::error::{invalid, shape_err, Result};
use crate::mcc::{mcc_from_similarity, uniqueness_from_best_matches};
use crate::metrics::{
    splitting, AbsorptionCalculator, ClassificationCalculator, DeadLatentsCalculator,
    ExplainedVarianceCalculator, HierarchyMetrics, HierarchyOptions, L0Calculator,
    ShrinkageCalculator, SplittingMetrics,
};
use crate::readback::{gather_flat, nonzero_counts_per_column, to_f32};
use crate::result::SyntheticDataEvalResult;

/// How to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Samples drawn from the model (sae-lens default 100 000).
    pub num_samples: usize,
    /// Rows per batch; `None` = one batch of `num_samples` (as sae-lens).
    pub batch_size: Option<usize>,
    /// Activation scaling factor `c`: the SAE sees `c · x` and its output is
    /// divided by `c` before comparison with `x`. `None` = no scaling.
    pub activation_scaling_factor: Option<f64>,
    /// Thresholds of the hierarchy metrics (absorption, splitting).
    pub hierarchy: HierarchyOptions,
    /// Where hidden activations are computed (default `auto`: host gather-sum
    /// on CPU backends, on the device elsewhere).
    pub hidden_path: HiddenPath,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            num_samples: 100_000,
            batch_size: None,
            activation_scaling_factor: None,
            hierarchy: HierarchyOptions::default(),
            hidden_path: HiddenPath::Auto,
        }
    }
}

impl EvalOptions {
    /// Defaults with `num_samples` samples.
    pub fn new(num_samples: usize) -> Self {
        Self {
            num_samples,
            ..Self::default()
        }
    }

    /// Sets the batch size.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = Some(batch_size);
        self
    }

    /// Sets where hidden activations are computed.
    pub fn with_hidden_path(mut self, path: HiddenPath) -> Self {
        self.hidden_path = path;
        self
    }

    /// Sets the activation scaling factor.
    pub fn with_activation_scaling_factor(mut self, factor: f64) -> Self {
        self.activation_scaling_factor = Some(factor);
        self
    }

    fn validate(&self) -> Result<()> {
        if self.batch_size == Some(0) {
            return Err(invalid("batch_size", "must be at least 1"));
        }
        if let Some(c) = self.activation_scaling_factor {
            if !c.is_finite() || c == 0.0 {
                return Err(invalid(
                    "activation_scaling_factor",
                    format!("must be finite and non-zero, got {c}"),
                ));
            }
        }
        self.hierarchy.validate()
    }
}

/// All calculators of one evaluation, for callers that sample and run the
/// SAE themselves (e.g. a trainer's periodic eval): build it from the
/// decoder and the true features, feed batches, read [`Evaluator::result`].
///
/// The weight-only metrics (MCC, uniqueness, each latent's matched feature)
/// are computed once at construction from one `[S, N]` cosine matrix, which
/// is dropped afterwards.
#[derive(Debug, Clone)]
pub struct Evaluator {
    true_l0: L0Calculator,
    sae_l0: L0Calculator,
    dead: DeadLatentsCalculator,
    shrinkage: ShrinkageCalculator,
    explained_variance: ExplainedVarianceCalculator,
    classification: ClassificationCalculator,
    absorption: Option<AbsorptionCalculator>,
    hierarchy_options: HierarchyOptions,
    splitting: SplittingMetrics,
    mcc: f64,
    uniqueness: f64,
    d_in: usize,
}

impl Evaluator {
    /// From the SAE's decoder rows `[S, D]` and the true features `[N, D]`;
    /// no hierarchy, default thresholds.
    pub fn new<B: Backend>(sae_decoder: Tensor<B, 2>, gt_features: Tensor<B, 2>) -> Result<Self> {
        Self::with_hierarchy(sae_decoder, gt_features, None, &HierarchyOptions::default())
    }

    /// [`Evaluator::new`] with the model's hierarchy, as each feature's
    /// effective parent (`[N]`, `u32::MAX`: none;
    /// [`synthsae_data::HierarchyModifier::parents`]) and firing probability
    /// (`[N]`), for the absorption metrics; `None`: no hierarchy.
    pub fn with_hierarchy<B: Backend>(
        sae_decoder: Tensor<B, 2>,
        gt_features: Tensor<B, 2>,
        hierarchy: Option<(Vec<u32>, &[f32])>,
        options: &HierarchyOptions,
    ) -> Result<Self> {
        options.validate()?;
        let [s, d] = sae_decoder.dims();
        let [n, _] = gt_features.dims();
        let sim = SimilarityMatrix::compute(sae_decoder, gt_features)?;
        let best = sim.row_argmax_abs();
        let absorption = match hierarchy {
            Some((parents, probabilities)) => Some(AbsorptionCalculator::new(
                &sim,
                &best,
                parents,
                probabilities,
                options,
            )?),
            None => None,
        };
        let splitting = splitting(&sim, &best, options.split_cosine);
        let uniqueness = uniqueness_from_best_matches(&best, s);
        let mcc = mcc_from_similarity(&sim.into_abs())?;
        Ok(Self {
            true_l0: L0Calculator::new(),
            sae_l0: L0Calculator::new(),
            dead: DeadLatentsCalculator::new(s),
            shrinkage: ShrinkageCalculator::default(),
            explained_variance: ExplainedVarianceCalculator::new(),
            classification: ClassificationCalculator::new(best, n)?,
            absorption,
            hierarchy_options: *options,
            splitting,
            mcc,
            uniqueness,
            d_in: d,
        })
    }

    /// Adds one batch: the true features (sparse `[batch, N]`), the input
    /// `x` (`[batch, D]`, unscaled, including the dictionary bias), the SAE
    /// latents `[batch, S]` and the SAE output `x̂` (`[batch, D]`, unscaled).
    pub fn add_batch<B: Backend>(
        &mut self,
        features: &Csr,
        hidden: Tensor<B, 2>,
        sae_latents: Tensor<B, 2>,
        sae_output: Tensor<B, 2>,
    ) -> Result<()> {
        let rows = self.check_rows(&hidden, &sae_latents.dims())?;
        let fired = fire_counts(sae_latents.clone())?;
        if let Some(a) = &mut self.absorption {
            let positions = a.positions(features);
            let values = gather_flat(sae_latents.clone(), &positions, "sae_latents")?;
            a.add_gathered(features, &values)?;
        }
        self.classification
            .add_batch_counted(sae_latents, &fired, features)?;
        self.add_rest(features, hidden, &fired, sae_output, rows)
    }

    /// [`Evaluator::add_batch`] with the SAE latents sparse (`[batch, S]`,
    /// from [`Sae::forward_sparse`]): same counts, in `O(nnz)`.
    pub fn add_batch_sparse<B: Backend>(
        &mut self,
        features: &Csr,
        hidden: Tensor<B, 2>,
        sae_latents: &Csr,
        sae_output: Tensor<B, 2>,
    ) -> Result<()> {
        let rows = self.check_rows(&hidden, &[sae_latents.n_rows(), sae_latents.n_cols()])?;
        let fired = sae_latents.column_counts();
        self.classification
            .add_sparse(sae_latents, &fired, features)?;
        if let Some(a) = &mut self.absorption {
            a.add_sparse(features, sae_latents)?;
        }
        self.add_rest(features, hidden, &fired, sae_output, rows)
    }

    /// Checks `hidden` (`[batch, D]`) and the latents' shape against it;
    /// the batch size.
    fn check_rows<B: Backend>(&self, hidden: &Tensor<B, 2>, latents: &[usize]) -> Result<usize> {
        let [rows, d] = hidden.dims();
        if d != self.d_in {
            return Err(shape_err(
                "hidden",
                format!("[batch, {}]", self.d_in),
                &hidden.dims(),
            ));
        }
        if latents[0] != rows {
            return Err(shape_err(
                "sae_latents",
                format!("[{rows}, d_sae]"),
                latents,
            ));
        }
        Ok(rows)
    }

    /// Everything but classification, from the batch's per-latent firing
    /// counts.
    fn add_rest<B: Backend>(
        &mut self,
        features: &Csr,
        hidden: Tensor<B, 2>,
        fired: &[u64],
        sae_output: Tensor<B, 2>,
        rows: usize,
    ) -> Result<()> {
        self.dead.add_fire_counts(fired)?;
        self.sae_l0.add_counts(fired.iter().sum(), rows);
        self.true_l0.add_sparse(features);
        self.shrinkage
            .add_batch(sae_output.clone(), hidden.clone())?;
        self.explained_variance.add_batch(sae_output, hidden)?;
        Ok(())
    }

    /// The metrics so far.
    pub fn result(&self) -> SyntheticDataEvalResult {
        SyntheticDataEvalResult {
            true_l0: self.true_l0.compute(),
            sae_l0: self.sae_l0.compute(),
            dead_latents: self.dead.compute(),
            shrinkage: self.shrinkage.compute(),
            explained_variance: self.explained_variance.compute(),
            mcc: self.mcc,
            uniqueness: self.uniqueness,
            classification: self.classification.compute(),
        }
    }

    /// The hierarchy metrics so far (absorption `None` without a hierarchy).
    pub fn hierarchy(&self) -> HierarchyMetrics {
        HierarchyMetrics {
            options: self.hierarchy_options,
            absorption: self.absorption.as_ref().map(AbsorptionCalculator::compute),
            splitting: self.splitting,
        }
    }
}

/// An evaluation: sae-lens's `eval_stats.json` metrics and the hierarchy
/// section.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// What sae-lens computes (`eval_stats.json`).
    pub stats: SyntheticDataEvalResult,
    /// Absorption, hierarchy-conditioned recall and splitting.
    pub hierarchy: HierarchyMetrics,
}

impl EvalReport {
    /// The stats' `eval_stats.json` keys with the hierarchy section under
    /// `"hierarchy"`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.stats).expect("stats serialise");
        v["hierarchy"] = serde_json::to_value(&self.hierarchy).expect("hierarchy serialises");
        v
    }
}

/// Per-latent number of rows where the latent is `≠ 0` in a `[rows, S]`
/// batch. The column sum runs on a float mask: exact (every partial sum is
/// an integer ≤ rows ≤ 2^24 with an f32 or wider float; else the int
/// reduction is used) and, on Flex, several times faster than the int
/// reduction of [`nonzero_counts_per_column`].
fn fire_counts<B: Backend>(sae_latents: Tensor<B, 2>) -> Result<Vec<u64>> {
    let [rows, s] = sae_latents.dims();
    if rows > 1 << 24 || std::mem::size_of::<B::FloatElem>() < 4 {
        return nonzero_counts_per_column(sae_latents, "sae_latents");
    }
    let counts = sae_latents
        .not_equal_elem(0.0)
        .float()
        .sum_dim(0)
        .reshape([s]);
    Ok(to_f32(counts, "sae_latents")?
        .into_iter()
        .map(|c| c.max(0.0) as u64)
        .collect())
}

/// Evaluates `sae` on `options.num_samples` fresh samples of `model`, drawn
/// from `rng` (seed it with `synthsae_data::sample_rng(Some(seed))` for a
/// reproducible evaluation). Gradient-free; works with any [`Sae`] through
/// the trait. Features stay sparse: hidden activations are computed from the
/// sparse batch by [`EvalOptions::hidden_path`] (a host gather-sum uploaded
/// to the SAE's device, or a gather-sum on the device), and classification
/// gathers only the latent values where a matched feature fired. The hierarchy metrics are in
/// [`evaluate_sae`].
pub fn eval_sae_on_synthetic_data<B: Backend, S: Sae<B> + ?Sized>(
    sae: &S,
    model: &SyntheticModel<B>,
    options: &EvalOptions,
    rng: &mut SampleRng,
) -> Result<SyntheticDataEvalResult> {
    eval_sae_on_synthetic_data_with_progress(sae, model, options, rng, |_| {})
}

/// [`eval_sae_on_synthetic_data`], calling `progress(rows_done)` after each batch.
pub fn eval_sae_on_synthetic_data_with_progress<B: Backend, S: Sae<B> + ?Sized>(
    sae: &S,
    model: &SyntheticModel<B>,
    options: &EvalOptions,
    rng: &mut SampleRng,
    progress: impl FnMut(usize),
) -> Result<SyntheticDataEvalResult> {
    Ok(evaluate_sae(sae, model, options, rng, progress)?.stats)
}

/// The whole evaluation: [`eval_sae_on_synthetic_data`]'s metrics and, from
/// the model's hierarchy (if any), absorption, hierarchy-conditioned recall
/// and splitting, on the same samples; `progress(rows_done)` after each
/// batch.
pub fn evaluate_sae<B: Backend, S: Sae<B> + ?Sized>(
    sae: &S,
    model: &SyntheticModel<B>,
    options: &EvalOptions,
    rng: &mut SampleRng,
    mut progress: impl FnMut(usize),
) -> Result<EvalReport> {
    options.validate()?;
    let dict = model.host_dictionary();
    let d = dict.hidden_dim();
    if sae.d_in() != d {
        return Err(invalid(
            "sae.d_in",
            format!(
                "the SAE takes {} inputs, the model has hidden_dim {d}",
                sae.d_in()
            ),
        ));
    }
    let decoder = sae.decoder_weights();
    if decoder.dims() != [sae.d_sae(), d] {
        return Err(shape_err(
            "sae.decoder_weights",
            format!("[{}, {d}]", sae.d_sae()),
            &decoder.dims(),
        ));
    }
    let device = decoder.device();
    let gt_features = model
        .feature_dictionary()
        .feature_vectors
        .val()
        .to_device(&device);
    let parents = match model.hierarchy() {
        Some(h) => Some(
            HierarchyModifier::new(h.clone(), dict.num_features())?
                .parents()
                .to_vec(),
        ),
        None => None,
    };
    let probabilities = model.generator().firing_probabilities();
    let mut evaluator = Evaluator::with_hierarchy(
        decoder,
        gt_features,
        parents.map(|p| (p, probabilities)),
        &options.hierarchy,
    )?;
    let batch_size = options.batch_size.unwrap_or(options.num_samples).max(1);
    let mut done = 0;
    while done < options.num_samples {
        let rows = batch_size.min(options.num_samples - done);
        let features = model.sample_features(rows, rng);
        let hidden = model
            .hidden_by(&features, options.hidden_path)?
            .to_device(&device);
        let input = match options.activation_scaling_factor {
            None => hidden.clone(),
            Some(c) => hidden.clone() * c,
        };
        // The latents stay sparse where the SAE can hand them over so.
        if let Some(f) = sae.forward_sparse(input) {
            let output = match options.activation_scaling_factor {
                None => f.output,
                Some(c) => f.output / c,
            };
            evaluator.add_batch_sparse(&features, hidden, &f.latents, output)?;
            done += rows;
            progress(done);
            continue;
        }
        let (latents, output) = match options.activation_scaling_factor {
            None => {
                let z = sae.encode(hidden.clone());
                let out = sae.decode(z.clone());
                (z, out)
            }
            Some(c) => {
                let z = sae.encode(hidden.clone() * c);
                let out = sae.decode(z.clone()) / c;
                (z, out)
            }
        };
        evaluator.add_batch(&features, hidden, latents, output)?;
        done += rows;
        progress(done);
    }
    Ok(EvalReport {
        stats: evaluator.result(),
        hierarchy: evaluator.hierarchy(),
    })
}
