//! `synthsae synthsaebench`: the published SynthSAEBench-16k recipe as one
//! command (model, SAE width 4096, batch 1024, lr 3e-4, the architecture's
//! published settings), printing a row comparable with the paper's table and
//! appending it to a results JSONL file.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};
use synthsae::train::{L0TunerConfig, ModelSpec, RunnerConfig};

use super::train::{print_report, train};
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
    /// Samples of the final evaluation.
    #[arg(long, default_value_t = 500_000)]
    pub eval_samples: usize,
    /// SAE width.
    #[arg(long, default_value_t = 4096)]
    pub width: usize,
    /// Output folder; default `synthsaebench-runs/<architecture>-l0<L0>-seed<seed>`.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Results file the row is appended to.
    #[arg(long, default_value = "synthsaebench-results.jsonl")]
    pub results: PathBuf,
}

/// Published means over 5 seeds (width 4096, 200M samples):
/// `(L0, architecture, F1, MCC, uniqueness, explained variance)`.
const PUBLISHED: &[(u32, &str, f64, f64, f64, f64)] = &[
    (25, "batchtopk", 0.7316, 0.7574, 0.9837, 0.7923),
    (25, "matryoshka_batchtopk", 0.8793, 0.7927, 0.9987, 0.7792),
    (25, "matching_pursuit", 0.4464, 0.6930, 0.8281, 0.8351),
    (25, "standard", 0.5562, 0.6039, 0.8976, 0.7654),
    (25, "jumprelu", 0.7317, 0.7527, 0.9885, 0.7951),
    (20, "batchtopk", 0.8183, 0.7526, 0.9760, 0.7889),
    (20, "matryoshka_batchtopk", 0.8601, 0.7455, 0.9874, 0.7699),
    (20, "jumprelu", 0.8241, 0.7434, 0.9781, 0.7906),
];

/// The SAE config of the recipe for `architecture` at `l0`.
pub fn sae_config(
    architecture: &str,
    l0: u32,
    width: usize,
) -> Result<(Value, Option<L0TunerConfig>), CliError> {
    let base = json!({"architecture": architecture, "d_in": 768, "d_sae": width});
    let mut sae = base.as_object().cloned().expect("object");
    let mut tuner = None;
    match architecture {
        "batchtopk" | "topk" => {
            sae.insert("k".into(), l0.into());
        }
        "matryoshka_batchtopk" => {
            sae.insert("k".into(), l0.into());
            let widths: Vec<usize> = [128, 512, 2048]
                .into_iter()
                .filter(|w| *w < width)
                .chain([width])
                .collect();
            sae.insert("matryoshka_widths".into(), json!(widths));
            sae.insert("use_matryoshka_aux_loss".into(), true.into());
        }
        "matching_pursuit" => {
            sae.insert("residual_threshold".into(), 0.0.into());
            sae.insert("max_iterations".into(), l0.into());
            sae.insert("decoder_init_norm".into(), 1.0.into());
            sae.insert("stop_on_duplicate_support".into(), false.into());
        }
        "standard" => {
            sae.insert("l1_coefficient".into(), 1.0.into());
            tuner = Some(L0TunerConfig::new(l0 as f64));
        }
        "jumprelu" => {
            sae.insert(
                "normalize_activations".into(),
                "expected_average_only_in".into(),
            );
            sae.insert("l0_coefficient".into(), 1.0.into());
            tuner = Some(L0TunerConfig::new(l0 as f64));
        }
        other => {
            return Err(CliError::Usage {
                flag: "architecture",
                reason: format!(
                    "`{other}` has no SynthSAEBench recipe; use batchtopk, matryoshka_batchtopk, \
                     matching_pursuit, standard, jumprelu or topk"
                ),
            })
        }
    }
    Ok((Value::Object(sae), tuner))
}

/// Runs the recipe.
pub fn run(args: SynthSaeBenchArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    if args.l0 == 0 {
        return Err(CliError::Usage {
            flag: "l0",
            reason: "must be at least 1".into(),
        });
    }
    let (sae, tuner) = sae_config(&args.architecture, args.l0, args.width)?;
    let model = match &args.model {
        Some(src) => Value::String(src.clone()),
        None => serde_json::to_value(synthsae::data::preset("synthsaebench-16k")?)?,
    };
    let out = args.output.clone().unwrap_or_else(|| {
        PathBuf::from("synthsaebench-runs").join(format!(
            "{}-l0{}-seed{}",
            args.architecture, args.l0, args.seed
        ))
    });
    let mut v = json!({
        "synthetic_model": model,
        "sae": sae,
        "training_samples": args.training_samples,
        "batch_size": 1024,
        "lr": 3e-4,
        "eval_samples": args.eval_samples,
        "output_path": out.display().to_string(),
        "checkpoint_path": out.join("checkpoints").display().to_string(),
        "n_checkpoints": 0,
        "seed": args.seed,
        "log_every": 100,
    });
    if let Some(t) = tuner {
        v["l0_tuner"] = serde_json::to_value(t)?;
    }
    let cfg = RunnerConfig::from_value(v)?;
    debug_assert!(matches!(
        cfg.synthetic_model,
        ModelSpec::Config(_) | ModelSpec::Source(_)
    ));
    let backend = super::train::pick_backend(&cfg, opts)?;
    let report = train(cfg, None, false, opts)?;
    let e = report
        .final_eval
        .as_ref()
        .ok_or_else(|| CliError::Output("no final evaluation ran".into()))?;
    let published = PUBLISHED
        .iter()
        .find(|(l, a, ..)| *l == args.l0 && *a == args.architecture && args.width == 4096);
    let row = json!({
        "architecture": args.architecture,
        "l0_target": args.l0,
        "width": args.width,
        "training_samples": report.n_training_samples,
        "seed": args.seed,
        "backend": backend.name(),
        "train_seconds": report.train_seconds,
        "samples_per_second": report.n_training_samples as f64 / report.train_seconds.max(1e-9),
        "sae_l0": e.sae_l0,
        "f1": e.classification.f1_score,
        "mcc": e.mcc,
        "uniqueness": e.uniqueness,
        "explained_variance": e.explained_variance,
        "dead_latents": e.dead_latents,
        "published": published.map(|p| json!({"f1": p.2, "mcc": p.3, "uniqueness": p.4, "explained_variance": p.5})),
        "output_path": out.display().to_string(),
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
    println!("\n| L0 | SAE | F1 | MCC | uniqueness | explained variance |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} (synthsae) | {:.4} | {:.4} | {:.4} | {:.4} |",
        args.l0,
        args.architecture,
        e.classification.f1_score,
        e.mcc,
        e.uniqueness,
        e.explained_variance
    );
    if let Some(p) = published {
        println!(
            "| {} | {} (published) | {:.4} | {:.4} | {:.4} | {:.4} |",
            p.0, p.1, p.2, p.3, p.4, p.5
        );
    }
    println!("row appended to {}", args.results.display());
    Ok(())
}
