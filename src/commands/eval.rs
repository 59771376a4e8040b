//! `synthsae eval`: evaluates a saved SAE against a synthetic model's ground
//! truth (MCC, uniqueness, classification, L0, explained variance, ...).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use clap::Args;
use synthsae::data::{sample_rng, SyntheticModel};
use synthsae::eval::{evaluate_sae, EvalError, EvalOptions, EvalReport, HierarchyOptions};
use synthsae::sae::any::AnySae;
use synthsae::{BackendJob, BackendKind};

use super::hub::{resolve_model_source, resolve_source, Kind};
use super::{progress, CliError, GlobalOpts};

/// Arguments of `eval`.
///
/// Example: synthsae eval --sae runs/a --model models/bench16k --samples 100000 --json
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// SAE directory in sae-lens's layout (`cfg.json`, `sae_weights.safetensors`),
    /// or a hub reference.
    #[arg(long)]
    pub sae: PathBuf,
    /// Synthetic model directory or hub reference (default: `<SAE>/synthetic_model`,
    /// where a training run saves it).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Number of evaluation samples.
    #[arg(long, default_value_t = 100_000)]
    pub samples: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 4096)]
    pub batch_size: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Activation scaling factor applied to the SAE's input (its output is
    /// divided by it).
    #[arg(long)]
    pub scaling_factor: Option<f64>,
    /// Thresholds of the hierarchy section.
    #[command(flatten)]
    pub hierarchy: HierarchyArgs,
}

/// The hierarchy metrics' thresholds (`eval`, `plot absorption`).
#[derive(Debug, Clone, Args)]
pub struct HierarchyArgs {
    /// Absorption: a latent carries a parent's direction when its decoder
    /// row's cosine with the parent's feature vector is above this.
    #[arg(long, default_value_t = HierarchyOptions::default().absorption_cosine)]
    pub absorption_cosine: f64,
    /// Partial absorption: the parent's latent fires below this fraction of
    /// its mean activation when the parent fires without children.
    #[arg(long, default_value_t = HierarchyOptions::default().partial_fraction)]
    pub partial_fraction: f64,
    /// Splitting: a feature is split when two or more of its matched latents
    /// have |cos| at least this with it.
    #[arg(long, default_value_t = HierarchyOptions::default().split_cosine)]
    pub split_cosine: f64,
}

impl HierarchyArgs {
    /// The options, checked; an error names the flag that is out of range.
    pub fn options(&self) -> Result<HierarchyOptions, CliError> {
        let h = HierarchyOptions {
            absorption_cosine: self.absorption_cosine,
            partial_fraction: self.partial_fraction,
            split_cosine: self.split_cosine,
        };
        h.validate().map_err(|e| match e {
            EvalError::InvalidArgument { field, reason } => CliError::Usage {
                flag: match field.as_str() {
                    "absorption_cosine" => "absorption-cosine",
                    "partial_fraction" => "partial-fraction",
                    _ => "split-cosine",
                },
                reason,
            },
            other => other.into(),
        })?;
        Ok(h)
    }
}

/// Resolves `--sae` and `--model` (defaulting to `<sae>/synthetic_model`).
pub fn resolve_sae_and_model(
    sae: &Path,
    model: Option<&Path>,
) -> Result<(PathBuf, PathBuf), CliError> {
    let sae = resolve_source(sae, Kind::Sae)?;
    let model = match model {
        Some(m) => resolve_model_source(m)?,
        None => {
            let m = sae.join("synthetic_model");
            if !m.is_dir() {
                return Err(CliError::Usage {
                    flag: "model",
                    reason: format!("not given and {} does not exist", m.display()),
                });
            }
            m
        }
    };
    Ok((sae, model))
}

struct EvalJob {
    sae: PathBuf,
    model: PathBuf,
    options: EvalOptions,
    seed: u64,
    quiet: bool,
}

impl BackendJob for EvalJob {
    type Output = Result<EvalReport, CliError>;

    fn run<B: Backend>(self, device: B::Device, _kind: BackendKind) -> Self::Output {
        let sae = AnySae::<B>::load(&self.sae, &device)?;
        let model = SyntheticModel::<B>::load(&self.model, &device)?;
        let pb = progress(self.options.num_samples as u64, "evaluate", self.quiet);
        let mut rng = sample_rng(Some(self.seed));
        let r = evaluate_sae(&sae, &model, &self.options, &mut rng, |done| {
            pb.set_position(done as u64)
        })?;
        pb.finish_and_clear();
        Ok(r)
    }
}

/// Runs `eval`.
pub fn run(args: EvalArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    super::at_least_one("samples", args.samples)?;
    super::at_least_one("batch-size", args.batch_size)?;
    if let Some(c) = args.scaling_factor {
        if !c.is_finite() || c == 0.0 {
            return Err(CliError::Usage {
                flag: "scaling-factor",
                reason: format!("must be finite and non-zero, got {c}"),
            });
        }
    }
    let hierarchy = args.hierarchy.options()?;
    let (sae, model) = resolve_sae_and_model(&args.sae, args.model.as_deref())?;
    let mut options = EvalOptions::new(args.samples).with_batch_size(args.batch_size);
    options.activation_scaling_factor = args.scaling_factor;
    options.hierarchy = hierarchy;
    let r = opts.backend.run(EvalJob {
        sae,
        model,
        options,
        seed: args.seed,
        quiet: opts.quiet,
    })??;
    if opts.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r.to_json()).expect("JSON serialises")
        );
    } else {
        let table = super::train::eval_table(&r.stats);
        print!(
            "{}",
            table.replacen(
                "final evaluation",
                &format!("evaluation ({} samples, seed {})", args.samples, args.seed),
                1
            )
        );
        print!("{}", super::train::hierarchy_table(&r.hierarchy));
    }
    Ok(())
}
