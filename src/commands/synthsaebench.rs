//! `synthsae synthsaebench`: the published SynthSAEBench-16k recipe as one
//! command (model, SAE width 4096, batch 1024, lr 3e-4, the architecture's
//! published settings), printing a row comparable with the paper's table and
//! appending it to a results JSONL file.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use synthsae::train::recipe::{published, SynthSaeBenchRecipe};
use synthsae::train::{ModelSpec, TrainError};

use super::train::{print_report, train, RunFlags};
use super::{CliError, GlobalOpts};

/// Arguments of `synthsae synthsaebench`.
#[derive(Debug, Args)]
pub struct SynthSaeBenchArgs {
    /// batchtopk, matryoshka_batchtopk, matching_pursuit, standard, jumprelu, topk.
    #[arg(long, default_value = "batchtopk")]
    pub architecture: String,
    /// Target L0 (k for the TopK family, the auto-tuner's target for
    /// standard and jumprelu, max iterations for matching pursuit).
    #[arg(long, default_value_t = 25)]
    pub l0: u32,
    /// Training samples (published: 200M).
    #[arg(long, default_value_t = 200_000_000)]
    pub training_samples: u64,
    /// Seed of SAE initialisation and data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The model: a saved SynthSAEBench-16k (path or hub id, e.g.
    /// `decoderesearch/synth-sae-bench-16k-v2`); default: rebuilt from the
    /// embedded `synthsaebench-16k` config.
    #[arg(long)]
    pub model: Option<String>,
    /// Samples of each evaluation, periodic and final (published: 1M).
    #[arg(long, default_value_t = 1_000_000)]
    pub eval_samples: usize,
    /// Steps between periodic evaluations (published: 10,000; 0: none).
    #[arg(long, default_value_t = 10_000)]
    pub eval_frequency: u64,
    /// SAE width.
    #[arg(long, default_value_t = 4096)]
    pub width: usize,
    /// Output folder; default `synthsaebench-runs/<architecture>-l0<L0>-seed<seed>`.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Results file the row is appended to.
    #[arg(long, default_value = "synthsaebench-results.jsonl")]
    pub results: PathBuf,
    /// Print the runner config the recipe builds (sae-lens's
    /// `runner_config.json` and synthsae's own keys) as JSON and exit.
    #[arg(long)]
    pub print_config: bool,
    #[command(flatten)]
    pub run: RunFlags,
}

/// The recipe the arguments describe, for a model of hidden dimension `d_in`.
pub fn recipe(args: &SynthSaeBenchArgs, d_in: usize) -> SynthSaeBenchRecipe {
    SynthSaeBenchRecipe {
        architecture: args.architecture.clone(),
        l0: args.l0,
        d_in,
        width: args.width,
        training_samples: args.training_samples,
        seed: args.seed,
        eval_samples: args.eval_samples,
        eval_frequency: args.eval_frequency,
    }
}

/// A recipe error as the error of the flag that set the field.
fn as_usage(e: TrainError) -> CliError {
    if let TrainError::Config { field, reason } = &e {
        let flag = match field.as_str() {
            "architecture" => Some("architecture"),
            "l0" => Some("l0"),
            "width" => Some("width"),
            "training_samples" => Some("training-samples"),
            _ => None,
        };
        if let Some(flag) = flag {
            return CliError::Usage {
                flag,
                reason: reason.clone(),
            };
        }
    }
    e.into()
}

/// Runs the recipe.
pub fn run(args: SynthSaeBenchArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    // d_in follows the model's hidden dimension (the runner sets it from
    // the model it loads); 768 is SynthSAEBench-16k's.
    let recipe = recipe(&args, 768);
    recipe.check().map_err(as_usage)?;
    let (model, model_label) = match &args.model {
        Some(src) => (ModelSpec::Source(src.clone()), src.clone()),
        None => (
            ModelSpec::Config(Box::new(synthsae::data::preset("synthsaebench-16k")?)),
            "synthsaebench-16k preset (v2 settings, parent scaling)".to_string(),
        ),
    };
    let out = args.output.clone().unwrap_or_else(|| {
        PathBuf::from("synthsaebench-runs").join(format!(
            "{}-l0{}-seed{}",
            args.architecture, args.l0, args.seed
        ))
    });
    let mut cfg = recipe.runner_config(&model, Some(&out))?;
    args.run.apply(&mut cfg);
    if args.print_config {
        let v = json!({"runner_config": cfg.to_saelens_json(), "synthsae": cfg.synthsae_json()});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let backend = super::train::pick_backend(&cfg, opts)?;
    let report = train(cfg, None, false, opts)?;
    let e = report
        .run
        .final_eval
        .as_ref()
        .ok_or_else(|| CliError::Output("no final evaluation ran".into()))?;
    let published = published(&args.architecture, args.l0).filter(|_| args.width == 4096);
    let row = json!({
        "architecture": args.architecture,
        "l0_target": args.l0,
        "width": args.width,
        "training_samples": report.run.n_training_samples,
        "seed": args.seed,
        "model": model_label,
        "backend": backend.name(),
        "train_seconds": report.run.train_seconds,
        "samples_per_second": report.run.samples_per_second(),
        "sae_l0": e.sae_l0,
        "f1": e.classification.f1_score,
        "mcc": e.mcc,
        "uniqueness": e.uniqueness,
        "explained_variance": e.explained_variance,
        "dead_latents": e.dead_latents,
        "hidden_path": report.hidden_path.name(),
        "published": published.map(|p| json!({
            "f1": p.f1, "mcc": p.mcc, "uniqueness": p.uniqueness,
            "explained_variance": p.explained_variance, "model": p.model,
        })),
        "output_path": out.display().to_string(),
        "timings": report.to_json()["timings"],
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.results)
        .map_err(|e| CliError::Output(format!("{}: {e}", args.results.display())))?;
    writeln!(f, "{row}")
        .map_err(|e| CliError::Output(format!("{}: {e}", args.results.display())))?;
    if opts.json {
        println!("{row}");
        return Ok(());
    }
    print_report(&report, opts);
    println!("\n| L0 | SAE | model | F1 | MCC | uniqueness | explained variance |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} (synthsae, {} samples) | {} | {:.4} | {:.4} | {:.4} | {:.4} |",
        args.l0,
        args.architecture,
        report.run.n_training_samples,
        model_label,
        e.classification.f1_score,
        e.mcc,
        e.uniqueness,
        e.explained_variance
    );
    if let Some(p) = published {
        println!(
            "| {} | {} (published, 200M samples) | {} | {:.4} | {:.4} | {:.4} | {:.4} |",
            p.l0, p.architecture, p.model, p.f1, p.mcc, p.uniqueness, p.explained_variance
        );
    }
    println!("row appended to {}", args.results.display());
    Ok(())
}
