//! `synthsae sample` (and the quickstart): build a synthetic feature model,
//! sample from it, report what was built and what came out.

use std::time::Instant;

use burn::tensor::backend::Backend;
use clap::Args;
use serde::Serialize;
use synthsae::data::firing::ZipfianFiringProbabilityConfig;
use synthsae::data::{
    compute_superposition_stats, generate_random_low_rank_correlation_matrix, sample_rng,
    sparse::tensor_to_vec, ActivationGenerator, Bias, Correlation, CorrelationStats,
    FeatureDictionaryConfig, FiringProbabilityConfig, OrthogonalizationConfig,
    OrthogonalizationReport,
};
use synthsae::{BackendJob, BackendKind};

use super::{progress, CliError, GlobalOpts};

/// Parameters of the synthetic feature model and of the sampling run.
#[derive(Debug, Clone, Args, Serialize)]
pub struct SampleArgs {
    /// Number of ground-truth features N.
    #[arg(long, default_value_t = 4096)]
    pub num_features: usize,
    /// Hidden (activation) dimension D.
    #[arg(long, default_value_t = 256)]
    pub hidden_dim: usize,
    /// Zipf exponent of the firing probabilities.
    #[arg(long, default_value_t = 0.5)]
    pub zipf_exponent: f64,
    /// Firing probability of the most frequent feature.
    #[arg(long, default_value_t = 0.4)]
    pub max_prob: f64,
    /// Firing probability of the least frequent feature.
    #[arg(long, default_value_t = 5e-4)]
    pub min_prob: f64,
    /// Mean firing magnitude.
    #[arg(long, default_value_t = 1.0)]
    pub mean_magnitude: f64,
    /// Standard deviation of the firing magnitude.
    #[arg(long, default_value_t = 0.0)]
    pub std_magnitude: f64,
    /// Rank of the low-rank firing correlation (0: independent firing).
    #[arg(long, default_value_t = 0)]
    pub correlation_rank: usize,
    /// Scale of the low-rank correlation factor.
    #[arg(long, default_value_t = 0.1)]
    pub correlation_scale: f64,
    /// Norm of the random bias (0: no bias).
    #[arg(long, default_value_t = 0.0)]
    pub bias: f64,
    /// Orthogonalisation steps for the feature vectors (0: none).
    #[arg(long, default_value_t = 0)]
    pub orthogonalize_steps: usize,
    /// Orthogonalisation learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub orthogonalize_lr: f64,
    /// Samples to draw.
    #[arg(long, default_value_t = 100_000)]
    pub samples: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// Seed of every random draw (model construction and sampling).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl SampleArgs {
    /// The embedded default the quickstart runs: 4096 features in 256
    /// dimensions (superposition), Zipf firing, a rank-16 firing correlation,
    /// noisy magnitudes, a bias and 100 orthogonalisation steps.
    pub fn quickstart() -> Self {
        Self {
            num_features: 4096,
            hidden_dim: 256,
            zipf_exponent: 0.5,
            max_prob: 0.4,
            min_prob: 5e-4,
            mean_magnitude: 1.0,
            std_magnitude: 0.2,
            correlation_rank: 16,
            correlation_scale: 0.1,
            bias: 0.5,
            orthogonalize_steps: 100,
            orthogonalize_lr: 0.01,
            samples: 100_000,
            batch_size: 1024,
            seed: 42,
        }
    }

    fn validate(&self) -> Result<(), CliError> {
        if self.samples == 0 {
            return Err(CliError::Usage {
                flag: "samples",
                reason: "must be at least 1".into(),
            });
        }
        if self.batch_size == 0 {
            return Err(CliError::Usage {
                flag: "batch-size",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// Off-diagonal interference of the feature vectors.
#[derive(Debug, Serialize)]
pub struct SuperpositionSummary {
    /// Mean over features of the max |cos| with another feature.
    pub mean_max_abs_cos_sim: f64,
    /// Mean over features of the 95th / 99th percentile |cos|.
    pub mean_percentile_abs_cos_sim: std::collections::BTreeMap<String, f64>,
    /// Mean |cos| over pairs.
    pub mean_abs_cos_sim: f64,
}

/// What `sample` reports (the `--json` object).
#[derive(Debug, Serialize)]
pub struct SampleReport {
    /// Backend used.
    pub backend: String,
    /// The parameters.
    pub parameters: SampleArgs,
    /// Orthogonalisation outcome, if it ran.
    pub orthogonalization: Option<OrthogonalizationReport>,
    /// Seconds spent building the feature dictionary (orthogonalisation included).
    pub dictionary_seconds: f64,
    /// Interference of the final feature vectors.
    pub superposition: SuperpositionSummary,
    /// Off-diagonal statistics of the firing correlation, if any.
    pub correlation: Option<CorrelationStats>,
    /// Expected features per sample (Σ p).
    pub expected_l0: f64,
    /// Measured features per sample.
    pub mean_l0: f64,
    /// Largest |observed − expected| firing rate over features, in binomial
    /// standard errors.
    pub max_firing_rate_deviation_sigma: f64,
    /// Mean ‖hidden activation‖.
    pub mean_hidden_norm: f64,
    /// Seconds spent sampling (features and hidden activations).
    pub sampling_seconds: f64,
    /// Samples per second, hidden activations included.
    pub samples_per_second: f64,
}

struct SampleJob {
    args: SampleArgs,
    quiet: bool,
}

impl BackendJob for SampleJob {
    type Output = Result<SampleReport, CliError>;

    fn run<B: Backend>(self, device: B::Device, kind: BackendKind) -> Self::Output {
        let a = &self.args;
        let seed = a.seed;
        let ortho = (a.orthogonalize_steps > 0).then_some(OrthogonalizationConfig {
            num_steps: a.orthogonalize_steps,
            lr: a.orthogonalize_lr,
            chunk_size: 1024,
        });
        let dict_cfg = FeatureDictionaryConfig::new(a.num_features, a.hidden_dim)
            .with_bias(Bias::Norm(a.bias))
            .with_seed(Some(seed))
            .with_orthogonalization(ortho);
        let pb = progress(
            a.orthogonalize_steps as u64,
            "orthogonalize",
            self.quiet || ortho.is_none(),
        );
        let mut on_step = |step: usize, _loss: f64| pb.set_position(step as u64);
        let built = Instant::now();
        let (dict, ortho_report) = dict_cfg.init_with_report::<B>(&device, Some(&mut on_step))?;
        let dictionary_seconds = built.elapsed().as_secs_f64();
        pb.finish_and_clear();

        // Seed offsets follow sae-lens: probabilities `seed`, std `seed+1`,
        // mean `seed+2`, correlation `seed+4`.
        let probs = FiringProbabilityConfig::Zipfian(ZipfianFiringProbabilityConfig {
            exponent: a.zipf_exponent,
            max_prob: a.max_prob,
            min_prob: a.min_prob,
        })
        .generate(a.num_features, Some(seed))?;
        let mut generator = ActivationGenerator::new(
            a.num_features,
            probs.clone(),
            a.std_magnitude as f32,
            a.mean_magnitude as f32,
        )?;
        let mut correlation = None;
        if a.correlation_rank > 0 {
            let lr = generate_random_low_rank_correlation_matrix(
                a.num_features,
                a.correlation_rank,
                a.correlation_scale,
                Some(seed + 4),
            )?;
            if lr.capped_rows() > 0 && !self.quiet {
                eprintln!(
                    "warning: {} / {} rows of the correlation factor were capped; reduce --correlation-rank or --correlation-scale to avoid rescaling",
                    lr.capped_rows(),
                    a.num_features
                );
            }
            correlation = Some(lr.stats());
            generator = generator.with_correlation(Correlation::LowRank(lr))?;
        }

        let host = if kind.is_cpu() {
            Some(dict.to_host()?)
        } else {
            None
        };
        let mut rng = sample_rng(Some(seed.wrapping_add(1000)));
        let mut counts = vec![0u64; a.num_features];
        let (mut nnz, mut norm_sum) = (0usize, 0.0f64);
        let pb = progress(a.samples as u64, "sample", self.quiet);
        let start = Instant::now();
        let mut done = 0;
        while done < a.samples {
            let b = a.batch_size.min(a.samples - done);
            let batch = generator.sample(b, &mut rng);
            let hidden = match &host {
                Some(h) => h.forward_sparse(&batch)?,
                None => tensor_to_vec(dict.forward_sparse(&batch)?, "hidden activations")?,
            };
            nnz += batch.nnz();
            for &f in batch.feature_indices() {
                counts[f as usize] += 1;
            }
            norm_sum += hidden
                .chunks_exact(a.hidden_dim)
                .map(|h| h.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt())
                .sum::<f64>();
            done += b;
            pb.set_position(done as u64);
        }
        let secs = start.elapsed().as_secs_f64();
        pb.finish_and_clear();

        let n = a.samples as f64;
        let max_dev = counts
            .iter()
            .zip(&probs)
            .map(|(&k, &p)| {
                let p = p as f64;
                (k as f64 / n - p).abs() / (p * (1.0 - p) / n).sqrt().max(f64::MIN_POSITIVE)
            })
            .fold(0.0, f64::max);
        let sup = compute_superposition_stats(dict.feature_vectors.val(), 1024, &[95.0, 99.0])?;
        Ok(SampleReport {
            backend: kind.to_string(),
            parameters: self.args.clone(),
            orthogonalization: ortho_report,
            dictionary_seconds,
            superposition: SuperpositionSummary {
                mean_max_abs_cos_sim: sup.mean_max_abs_cos_sim,
                mean_percentile_abs_cos_sim: sup.mean_percentile_abs_cos_sim,
                mean_abs_cos_sim: sup.mean_abs_cos_sim,
            },
            correlation,
            expected_l0: generator.expected_l0(),
            mean_l0: nnz as f64 / n,
            max_firing_rate_deviation_sigma: max_dev,
            mean_hidden_norm: norm_sum / n,
            sampling_seconds: secs,
            samples_per_second: n / secs,
        })
    }
}

/// Runs the command and prints the report.
pub fn run(args: SampleArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    args.validate()?;
    let report = opts.backend.run(SampleJob {
        args,
        quiet: opts.quiet,
    })??;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &SampleReport) {
    let a = &r.parameters;
    println!(
        "synthsae: synthetic feature model on backend `{}`",
        r.backend
    );
    println!(
        "  model        N = {} features in D = {} dimensions, Zipf({}) firing in [{}, {}], bias norm {}, seed {}",
        a.num_features, a.hidden_dim, a.zipf_exponent, a.min_prob, a.max_prob, a.bias, a.seed
    );
    if let Some(o) = &r.orthogonalization {
        println!(
            "  orthogonal.  {} steps in {:.1} s: loss {:.4e}, mean |cos| {:.4}, max |cos| {:.4}",
            o.num_steps, r.dictionary_seconds, o.final_loss, o.mean_abs_cos, o.max_abs_cos
        );
    }
    let s = &r.superposition;
    let pct = |k: &str| {
        s.mean_percentile_abs_cos_sim
            .get(k)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "  superpos.    mean |cos| {:.4}; per feature: max {:.4}, p99 {:.4}, p95 {:.4} (means)",
        s.mean_abs_cos_sim,
        s.mean_max_abs_cos_sim,
        pct("99"),
        pct("95")
    );
    if let Some(c) = &r.correlation {
        println!(
            "  correlation  rank {} scale {}: off-diagonal rms {:.4}, mean {:.5}",
            a.correlation_rank, a.correlation_scale, c.rms_correlation, c.mean_correlation
        );
    }
    println!(
        "  sampled      {} samples in {:.2} s: {:.0} samples/s (hidden activations included)",
        a.samples, r.sampling_seconds, r.samples_per_second
    );
    println!(
        "  L0           {:.3} per sample (expected {:.3}); worst firing-rate deviation {:.2} σ over {} features",
        r.mean_l0, r.expected_l0, r.max_firing_rate_deviation_sigma, a.num_features
    );
    println!("  hidden       mean ‖h‖ = {:.4}", r.mean_hidden_norm);
}
