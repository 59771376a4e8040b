//! `synthsae plot similarity|curves|firing|absorption`: PNG or SVG plots (by the
//! `--out` extension).

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use clap::{Args, Subcommand};
use serde_json::json;
use synthsae::data::{sample_rng, SyntheticModel};
use synthsae::eval::plot::{
    plot_absorption, plot_feature_similarity, plot_firing_rate_histogram, plot_training_curves,
    read_metrics_log, AbsorptionPlotOptions, CurvesOptions, FiringOptions, HeatmapOptions,
    PlotFormat,
};
use synthsae::eval::{
    evaluate_sae, mcc_from_similarity, measure_firing_rates, EvalOptions, HierarchyMetrics,
    SimilarityMatrix,
};
use synthsae::sae::any::AnySae;
use synthsae::sae::Sae;
use synthsae::{BackendJob, BackendKind};

use super::eval::{resolve_sae_and_model, HierarchyArgs};
use super::{CliError, GlobalOpts};

/// `plot` subcommands.
#[derive(Debug, Subcommand)]
pub enum PlotCommand {
    /// Heatmap of cosine similarity between SAE decoder rows and true
    /// features, rows sorted by best-matching feature; large matrices are
    /// max-|cos| pooled.
    ///
    /// Example: synthsae plot similarity --sae runs/a --out similarity.png
    Similarity(SimilarityArgs),
    /// Training curves from a `metrics.jsonl` log, one panel per key.
    ///
    /// Example: synthsae plot curves --log runs/a --keys synthetic/mcc,metrics/l0 --out curves.svg
    Curves(CurvesArgs),
    /// Histogram of firing rates, true features vs SAE latents (log10 axis).
    ///
    /// Example: synthsae plot firing --sae runs/a --samples 50000 --out firing.png
    Firing(FiringArgs),
    /// Per-parent absorption against the parent's firing probability (log10
    /// axis), from an evaluation run here or a saved `hierarchy_stats.json`.
    ///
    /// Example: synthsae plot absorption --sae runs/a --samples 50000 --out absorption.png
    Absorption(AbsorptionArgs),
}

/// Arguments of `plot absorption`.
#[derive(Debug, Clone, Args)]
pub struct AbsorptionArgs {
    /// SAE directory (sae-lens layout) or hub reference, evaluated here.
    #[arg(long, required_unless_present = "stats", conflicts_with = "stats")]
    pub sae: Option<PathBuf>,
    /// A `hierarchy_stats.json` (or a run folder containing it) to plot
    /// instead of evaluating.
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// Synthetic model (default `<SAE>/synthetic_model`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output file, `.png` or `.svg`.
    #[arg(long)]
    pub out: PathBuf,
    /// Evaluation samples.
    #[arg(long, default_value_t = 100_000)]
    pub samples: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 4096)]
    pub batch_size: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Thresholds of the hierarchy metrics.
    #[command(flatten)]
    pub hierarchy: HierarchyArgs,
}

/// Arguments of `plot similarity`.
#[derive(Debug, Clone, Args)]
pub struct SimilarityArgs {
    /// SAE directory (sae-lens layout) or hub reference.
    #[arg(long)]
    pub sae: PathBuf,
    /// Synthetic model (default `<SAE>/synthetic_model`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output file, `.png` or `.svg`.
    #[arg(long)]
    pub out: PathBuf,
    /// Plot |cos| instead of the signed cosine.
    #[arg(long)]
    pub abs: bool,
    /// Keep the SAE's latent order instead of sorting by best match.
    #[arg(long)]
    pub no_reorder: bool,
    /// Most cells per axis after pooling.
    #[arg(long)]
    pub max_cells: Option<usize>,
}

/// Arguments of `plot curves`.
#[derive(Debug, Clone, Args)]
pub struct CurvesArgs {
    /// `metrics.jsonl`, or a run directory containing it.
    #[arg(long)]
    pub log: PathBuf,
    /// Comma-separated keys to plot (default: the first 12 in the log).
    #[arg(long, value_delimiter = ',')]
    pub keys: Vec<String>,
    /// Output file, `.png` or `.svg`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `plot firing`.
#[derive(Debug, Clone, Args)]
pub struct FiringArgs {
    /// SAE directory (sae-lens layout) or hub reference.
    #[arg(long)]
    pub sae: PathBuf,
    /// Synthetic model (default `<SAE>/synthetic_model`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output file, `.png` or `.svg`.
    #[arg(long)]
    pub out: PathBuf,
    /// Samples used to measure firing rates.
    #[arg(long, default_value_t = 100_000)]
    pub samples: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 4096)]
    pub batch_size: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

struct SimilarityJob(SimilarityArgs, PathBuf, PathBuf);

impl BackendJob for SimilarityJob {
    type Output = Result<serde_json::Value, CliError>;

    fn run<B: Backend>(self, device: B::Device, _kind: BackendKind) -> Self::Output {
        let SimilarityJob(a, sae_dir, model_dir) = self;
        let sae = AnySae::<B>::load(&sae_dir, &device)?;
        let model = SyntheticModel::<B>::load(&model_dir, &device)?;
        let features = model.feature_dictionary().feature_vectors.val();
        let sim = SimilarityMatrix::compute(sae.decoder_weights(), features)?;
        let options = HeatmapOptions {
            absolute: a.abs,
            reorder: !a.no_reorder,
            max_cells: a.max_cells,
            ..Default::default()
        };
        plot_feature_similarity(&sim, &a.out, &options)?;
        let (rows, cols) = (sim.rows(), sim.cols());
        let mcc = mcc_from_similarity(&sim.into_abs())?;
        Ok(json!({"out": a.out, "latents": rows, "features": cols, "mcc": mcc}))
    }
}

struct FiringJob(FiringArgs, PathBuf, PathBuf);

impl BackendJob for FiringJob {
    type Output = Result<serde_json::Value, CliError>;

    fn run<B: Backend>(self, device: B::Device, _kind: BackendKind) -> Self::Output {
        let FiringJob(a, sae_dir, model_dir) = self;
        let sae = AnySae::<B>::load(&sae_dir, &device)?;
        let model = SyntheticModel::<B>::load(&model_dir, &device)?;
        let options = EvalOptions::new(a.samples).with_batch_size(a.batch_size);
        let rates = measure_firing_rates(&sae, &model, &options, &mut sample_rng(Some(a.seed)))?;
        plot_firing_rate_histogram(
            &rates.true_rates,
            &rates.sae_rates,
            &a.out,
            &FiringOptions::default(),
        )?;
        let never = |r: &[f64]| r.iter().filter(|&&x| x == 0.0).count();
        Ok(json!({
            "out": a.out,
            "samples": a.samples,
            "features_never_fired": never(&rates.true_rates),
            "latents_never_fired": never(&rates.sae_rates),
        }))
    }
}

struct AbsorptionJob(EvalOptions, u64, PathBuf, PathBuf);

impl BackendJob for AbsorptionJob {
    type Output = Result<HierarchyMetrics, CliError>;

    fn run<B: Backend>(self, device: B::Device, _kind: BackendKind) -> Self::Output {
        let AbsorptionJob(options, seed, sae_dir, model_dir) = self;
        let sae = AnySae::<B>::load(&sae_dir, &device)?;
        let model = SyntheticModel::<B>::load(&model_dir, &device)?;
        let r = evaluate_sae(&sae, &model, &options, &mut sample_rng(Some(seed)), |_| {})?;
        Ok(r.hierarchy)
    }
}

/// Reads a `hierarchy_stats.json` (or the one in a run folder).
fn read_hierarchy_stats(path: &std::path::Path) -> Result<HierarchyMetrics, CliError> {
    let file = if path.is_dir() {
        path.join("hierarchy_stats.json")
    } else {
        path.to_path_buf()
    };
    let input = |reason: String| CliError::Input {
        path: file.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&file).map_err(|e| input(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| input(format!("not a hierarchy_stats.json: {e}")))
}

fn check_out(out: &std::path::Path) -> Result<(), CliError> {
    PlotFormat::from_path(out)
        .map(|_| ())
        .map_err(|_| CliError::Usage {
            flag: "out",
            reason: format!("{}: must end in .png or .svg", out.display()),
        })
}

/// Runs `plot`.
pub fn run(cmd: PlotCommand, opts: &GlobalOpts) -> Result<(), CliError> {
    let report = match cmd {
        PlotCommand::Similarity(a) => {
            check_out(&a.out)?;
            let (sae, model) = resolve_sae_and_model(&a.sae, a.model.as_deref())?;
            opts.backend.run(SimilarityJob(a, sae, model))??
        }
        PlotCommand::Curves(a) => {
            check_out(&a.out)?;
            let path = if a.log.is_dir() {
                a.log.join("metrics.jsonl")
            } else {
                a.log.clone()
            };
            let log = read_metrics_log(&path)?;
            plot_training_curves(&log, &a.keys, &a.out, &CurvesOptions::default())?;
            json!({"out": a.out, "log": path})
        }
        PlotCommand::Firing(a) => {
            check_out(&a.out)?;
            if a.samples == 0 || a.batch_size == 0 {
                return Err(CliError::Usage {
                    flag: "samples",
                    reason: "samples and batch size must be at least 1".into(),
                });
            }
            let (sae, model) = resolve_sae_and_model(&a.sae, a.model.as_deref())?;
            opts.backend.run(FiringJob(a, sae, model))??
        }
        PlotCommand::Absorption(a) => {
            check_out(&a.out)?;
            let hierarchy = match (&a.stats, &a.sae) {
                (Some(stats), _) => read_hierarchy_stats(stats)?,
                (None, Some(sae)) => {
                    super::at_least_one("samples", a.samples)?;
                    super::at_least_one("batch-size", a.batch_size)?;
                    let mut options = EvalOptions::new(a.samples).with_batch_size(a.batch_size);
                    options.hierarchy = a.hierarchy.options()?;
                    let (sae, model) = resolve_sae_and_model(sae, a.model.as_deref())?;
                    opts.backend
                        .run(AbsorptionJob(options, a.seed, sae, model))??
                }
                (None, None) => {
                    return Err(CliError::Usage {
                        flag: "sae",
                        reason: "give --sae (to evaluate) or --stats".into(),
                    })
                }
            };
            let absorption = hierarchy.absorption.as_ref().ok_or(CliError::Usage {
                flag: "sae",
                reason: "the model has no hierarchy, so there is no absorption to plot".into(),
            })?;
            plot_absorption(absorption, &a.out, &AbsorptionPlotOptions::default())?;
            json!({
                "out": a.out,
                "parents": absorption.parents,
                "parents_measured": absorption.parents_measured,
                "absorption": absorption.absorption,
                "full_absorption": absorption.full_absorption,
            })
        }
    };
    if opts.json {
        println!("{report}");
    } else {
        println!("wrote {}", report["out"].as_str().unwrap_or_default());
    }
    Ok(())
}
