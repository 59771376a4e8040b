//! `synthsae model new|info` and the quickstart: build or load a synthetic
//! model and report what it is and what sampling from it gives.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::Backend;
use clap::{Args, Subcommand};
use serde::Serialize;
use synthsae::data::{
    compute_superposition_stats, preset, sample_rng, CorrelationStats, OrthogonalizationReport,
    SyntheticModel, SyntheticModelConfig,
};
use synthsae::{BackendJob, BackendKind};

use super::{progress, CliError, GlobalOpts};

/// `synthsae model ...`.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Builds a model from a config file or a preset and saves it in sae-lens's layout.
    ///
    /// Examples:
    ///   synthsae model new --preset synthsaebench-16k --out models/bench16k
    ///   synthsae model new --config my_config.json --out models/mine --seed 7
    #[command(verbatim_doc_comment)]
    New(NewArgs),
    /// Describes a saved model: sizes, firing, superposition, correlation,
    /// hierarchy, and the true L0 estimated from samples.
    ///
    /// Example: synthsae model info models/bench16k --samples 20000 --json
    Info(InfoArgs),
}

/// Arguments of `model new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// A `synthetic_model_config.json` (sae-lens format).
    #[arg(long, required_unless_present = "preset", conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// A preset: tutorial, quickstart, synthsaebench-16k.
    #[arg(long)]
    pub preset: Option<String>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Overrides the config's seed.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Arguments of `model info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Model directory, or a hub reference `namespace/name[:folder]`.
    pub source: PathBuf,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// How many samples the report draws.
#[derive(Debug, Clone, Args, Serialize)]
pub struct SamplingArgs {
    /// Samples drawn to estimate the true L0 and firing rates.
    #[arg(long, default_value_t = 10_000)]
    pub samples: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Summary of a vector of firing probabilities.
#[derive(Debug, Serialize)]
pub struct ProbabilitySummary {
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Sum (the expected L0 before hierarchy effects).
    pub sum: f64,
}

/// Shape of the hierarchy.
#[derive(Debug, Serialize)]
pub struct HierarchySummary {
    /// Trees.
    pub roots: usize,
    /// Nodes in all trees.
    pub nodes: usize,
    /// Depth of the deepest tree.
    pub max_depth: usize,
    /// Mutually exclusive groups.
    pub me_groups: usize,
}

/// Off-diagonal interference of the feature vectors.
#[derive(Debug, Serialize)]
pub struct SuperpositionSummary {
    /// Mean over features of the max |cos| with another feature.
    pub mean_max_abs_cos_sim: f64,
    /// Mean over features of the 95th / 99th percentile |cos|.
    pub mean_percentile_abs_cos_sim: BTreeMap<String, f64>,
    /// Mean |cos| over pairs.
    pub mean_abs_cos_sim: f64,
}

/// Low-rank correlation summary.
#[derive(Debug, Serialize)]
pub struct CorrelationSummary {
    /// Rank of the factor.
    pub rank: usize,
    /// Off-diagonal statistics.
    #[serde(flatten)]
    pub stats: CorrelationStats,
}

/// The report of `model new`, `model info` and the quickstart (`--json`).
#[derive(Debug, Serialize)]
pub struct ModelReport {
    /// Where the model came from (path or preset).
    pub source: String,
    /// Backend used.
    pub backend: String,
    /// Where it was saved, if it was.
    pub saved_to: Option<PathBuf>,
    /// The model's config.
    pub config: SyntheticModelConfig,
    /// Seconds to build or load it.
    pub build_seconds: f64,
    /// Orthogonalisation outcome, when the model was built here.
    pub orthogonalization: Option<OrthogonalizationReport>,
    /// Firing probabilities.
    pub firing_probabilities: ProbabilitySummary,
    /// Interference of the feature vectors.
    pub superposition: SuperpositionSummary,
    /// Firing correlation, if any.
    pub correlation: Option<CorrelationSummary>,
    /// Hierarchy, if any.
    pub hierarchy: Option<HierarchySummary>,
    /// Sampling parameters.
    pub sampling: SamplingArgs,
    /// Mean number of active features per sample (hierarchy applied).
    pub true_l0: f64,
    /// Mean ‖hidden activation‖.
    pub mean_hidden_norm: f64,
    /// Sampling throughput, hidden activations included.
    pub samples_per_second: f64,
}

/// Where the model comes from.
pub enum ModelSource {
    /// Build from a config (a preset or a file); optionally save.
    Build {
        label: String,
        config: Box<SyntheticModelConfig>,
        save_to: Option<PathBuf>,
    },
    /// Load a saved model directory.
    Load(PathBuf),
}

struct ModelJob {
    source: ModelSource,
    sampling: SamplingArgs,
    quiet: bool,
}

impl BackendJob for ModelJob {
    type Output = Result<ModelReport, CliError>;

    fn run<B: Backend>(self, device: B::Device, kind: BackendKind) -> Self::Output {
        let start = Instant::now();
        let (label, model, saved_to) = match self.source {
            ModelSource::Build {
                label,
                config,
                save_to,
            } => {
                let steps = config.orthogonalization.map_or(0, |o| o.num_steps) as u64;
                let pb = progress(steps, "orthogonalize", self.quiet || steps == 0);
                let mut on_step = |s: usize, _l: f64| pb.set_position(s as u64);
                let m =
                    SyntheticModel::<B>::new_with_progress(*config, &device, Some(&mut on_step))?;
                pb.finish_and_clear();
                if let Some(dir) = &save_to {
                    m.save(dir)?;
                }
                (label, m, save_to)
            }
            ModelSource::Load(dir) => (
                dir.display().to_string(),
                SyntheticModel::<B>::load(&dir, &device)?,
                None,
            ),
        };
        let build_seconds = start.elapsed().as_secs_f64();
        report(
            &model,
            label,
            kind,
            saved_to,
            build_seconds,
            self.sampling,
            self.quiet,
        )
    }
}

fn report<B: Backend>(
    model: &SyntheticModel<B>,
    source: String,
    kind: BackendKind,
    saved_to: Option<PathBuf>,
    build_seconds: f64,
    sampling: SamplingArgs,
    quiet: bool,
) -> Result<ModelReport, CliError> {
    let cfg = model.config();
    let p = model.generator().firing_probabilities();
    let sum: f64 = p.iter().map(|&x| x as f64).sum();
    let firing_probabilities = ProbabilitySummary {
        min: p.iter().copied().fold(f32::INFINITY, f32::min) as f64,
        max: p.iter().copied().fold(0.0f32, f32::max) as f64,
        mean: sum / p.len() as f64,
        sum,
    };
    let superposition = if cfg.num_features >= 2 {
        let s = compute_superposition_stats(
            model.feature_dictionary().feature_vectors.val(),
            1024,
            &[95.0, 99.0],
        )?;
        SuperpositionSummary {
            mean_max_abs_cos_sim: s.mean_max_abs_cos_sim,
            mean_percentile_abs_cos_sim: s.mean_percentile_abs_cos_sim,
            mean_abs_cos_sim: s.mean_abs_cos_sim,
        }
    } else {
        SuperpositionSummary {
            mean_max_abs_cos_sim: 0.0,
            mean_percentile_abs_cos_sim: BTreeMap::new(),
            mean_abs_cos_sim: 0.0,
        }
    };
    let correlation = model.correlation().map(|c| CorrelationSummary {
        rank: c.rank(),
        stats: c.stats(),
    });
    let hierarchy = model.hierarchy().map(|h| {
        let me = |n: &synthsae::data::HierarchyNode| -> usize {
            fn count(n: &synthsae::data::HierarchyNode) -> usize {
                usize::from(n.mutually_exclusive_children)
                    + n.children.iter().map(count).sum::<usize>()
            }
            count(n)
        };
        HierarchySummary {
            roots: h.roots.len(),
            nodes: h.roots.iter().map(|r| r.node_count()).sum(),
            max_depth: h.roots.iter().map(|r| r.depth()).max().unwrap_or(0),
            me_groups: h.roots.iter().map(me).sum(),
        }
    });
    if sampling.samples == 0 || sampling.batch_size == 0 {
        return Err(CliError::Usage {
            flag: "samples",
            reason: "--samples and --batch-size must be at least 1".into(),
        });
    }
    let mut rng = sample_rng(Some(sampling.seed));
    let (mut nnz, mut norm_sum, mut done) = (0usize, 0.0f64, 0usize);
    let pb = progress(sampling.samples as u64, "sample", quiet);
    let t = Instant::now();
    while done < sampling.samples {
        let b = sampling.batch_size.min(sampling.samples - done);
        let feats = model.sample_features(b, &mut rng);
        let hidden = model.host_dictionary().forward_sparse(&feats)?;
        nnz += feats.nnz();
        norm_sum += hidden
            .chunks_exact(cfg.hidden_dim)
            .map(|h| h.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt())
            .sum::<f64>();
        done += b;
        pb.set_position(done as u64);
    }
    let secs = t.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let n = sampling.samples as f64;
    Ok(ModelReport {
        source,
        backend: kind.to_string(),
        saved_to,
        config: cfg.clone(),
        build_seconds,
        orthogonalization: model.orthogonalization_report().copied(),
        firing_probabilities,
        superposition,
        correlation,
        hierarchy,
        sampling,
        true_l0: nnz as f64 / n,
        mean_hidden_norm: norm_sum / n,
        samples_per_second: n / secs,
    })
}

/// Builds or loads a model, then prints its report.
pub fn run_report(
    source: ModelSource,
    sampling: SamplingArgs,
    opts: &GlobalOpts,
) -> Result<(), CliError> {
    let r = opts.backend.run(ModelJob {
        source,
        sampling,
        quiet: opts.quiet,
    })??;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_report(&r);
    }
    Ok(())
}

/// `model new` / `model info`.
pub fn run(cmd: ModelCommand, opts: &GlobalOpts) -> Result<(), CliError> {
    match cmd {
        ModelCommand::New(a) => {
            let (label, mut config) = match (&a.config, &a.preset) {
                (Some(path), _) => {
                    let text = std::fs::read_to_string(path).map_err(|e| CliError::Input {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                    let cfg =
                        SyntheticModelConfig::from_json(&text).map_err(|e| CliError::Input {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                    (path.display().to_string(), cfg)
                }
                (None, Some(name)) => (format!("preset:{name}"), preset(name)?),
                (None, None) => {
                    return Err(CliError::Usage {
                        flag: "config",
                        reason: "give --config FILE or --preset NAME".into(),
                    })
                }
            };
            if a.seed.is_some() {
                config.seed = a.seed;
            }
            let sampling = SamplingArgs {
                samples: 10_000,
                batch_size: 1024,
                seed: 0,
            };
            run_report(
                ModelSource::Build {
                    label,
                    config: Box::new(config),
                    save_to: Some(a.out),
                },
                sampling,
                opts,
            )
        }
        ModelCommand::Info(a) => run_report(
            ModelSource::Load(super::hub::resolve_model_source(&a.source)?),
            a.sampling,
            opts,
        ),
    }
}

fn print_report(r: &ModelReport) {
    let c = &r.config;
    println!("synthsae model `{}` (backend {})", r.source, r.backend);
    if let Some(p) = &r.saved_to {
        println!("  saved to     {}", p.display());
    }
    println!(
        "  model        N = {} features in D = {} dimensions, seed {}, built/loaded in {:.1} s",
        c.num_features,
        c.hidden_dim,
        c.seed.map_or("none".to_string(), |s| s.to_string()),
        r.build_seconds
    );
    let p = &r.firing_probabilities;
    println!(
        "  firing       p in [{:.2e}, {:.3}], mean {:.4}, Σp = {:.2}",
        p.min, p.max, p.mean, p.sum
    );
    if let Some(o) = &r.orthogonalization {
        println!(
            "  orthogonal.  {} steps: final loss {:.4e}, mean |cos| {:.4}, max |cos| {:.4}",
            o.num_steps, o.final_loss, o.mean_abs_cos, o.max_abs_cos
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
        "  superpos.    mean |cos| {:.4}; per feature (means): max {:.4}, p99 {:.4}, p95 {:.4}",
        s.mean_abs_cos_sim,
        s.mean_max_abs_cos_sim,
        pct("99"),
        pct("95")
    );
    if let Some(k) = &r.correlation {
        println!(
            "  correlation  low rank {}: off-diagonal rms {:.4}, mean {:.5}",
            k.rank, k.stats.rms_correlation, k.stats.mean_correlation
        );
    }
    if let Some(h) = &r.hierarchy {
        println!(
            "  hierarchy    {} trees, {} nodes, depth {}, {} mutually exclusive groups",
            h.roots, h.nodes, h.max_depth, h.me_groups
        );
    }
    println!(
        "  sampled      {} samples: true L0 {:.3}, mean ‖h‖ {:.4}, {:.0} samples/s (hidden included)",
        r.sampling.samples, r.true_l0, r.mean_hidden_norm, r.samples_per_second
    );
}
