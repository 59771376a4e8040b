//! `synthsae quickstart` (what `synthsae` does with no arguments): the seed
//! document's tutorial end to end — build the 16-feature tutorial model,
//! train a standard (L1) SAE with 16 latents on it, evaluate it against the
//! ground truth, and plot decoder/feature cosine similarity.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use synthsae::train::{ModelSpec, RunnerConfig};

use super::train::{print_report, train};
use super::{CliError, GlobalOpts};

/// Arguments of `synthsae quickstart`.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Output folder (sae-lens runner layout plus `similarity.png`).
    #[arg(long, default_value = "synthsae-quickstart")]
    pub out: PathBuf,
    /// Training samples (the tutorial uses 10M).
    #[arg(long, default_value_t = 10_000_000)]
    pub training_samples: u64,
    /// Seed of SAE initialisation and data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl Default for QuickstartArgs {
    fn default() -> Self {
        Self {
            out: PathBuf::from("synthsae-quickstart"),
            training_samples: 10_000_000,
            seed: 42,
        }
    }
}

/// The tutorial's runner config: standard SAE, d_sae 16, l1 5e-2, lr 3e-4,
/// batch 1024.
pub fn tutorial_config(args: &QuickstartArgs) -> Result<RunnerConfig, CliError> {
    let model = synthsae::data::preset("tutorial")?;
    let cfg = RunnerConfig::from_value(json!({
        "synthetic_model": serde_json::to_value(&model)?,
        "sae": {
            "architecture": "standard",
            "d_in": model.hidden_dim,
            "d_sae": 16,
            "l1_coefficient": 5e-2,
        },
        "training_samples": args.training_samples,
        "batch_size": 1024,
        "lr": 3e-4,
        "eval_samples": 100_000,
        "output_path": args.out.display().to_string(),
        "checkpoint_path": null,
        "seed": args.seed,
    }))?;
    debug_assert!(matches!(cfg.synthetic_model, ModelSpec::Config(_)));
    Ok(cfg)
}

/// Runs the quickstart.
pub fn run(args: QuickstartArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    let cfg = tutorial_config(&args)?;
    if !opts.quiet && !opts.json {
        eprintln!(
            "quickstart: tutorial model (16 features, 32 dims), standard SAE with 16 latents, \
             {} samples",
            args.training_samples
        );
    }
    let report = train(cfg, None, true, opts)?;
    let plot = args.out.join("similarity.png");
    let sim = report.similarity.as_ref().expect("requested above");
    synthsae::eval::plot::plot_feature_similarity(sim, &plot, &Default::default())?;
    if opts.json {
        let mut v = report.to_json();
        v["similarity_plot"] = plot.display().to_string().into();
        println!("{v}");
    } else {
        print_report(&report, opts);
        println!("similarity heatmap: {}", plot.display());
    }
    Ok(())
}
