//! `synthsae eval`: evaluates a saved SAE against a synthetic model's ground
//! truth (MCC, uniqueness, classification, L0, explained variance, ...).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use clap::Args;
use synthsae::data::{sample_rng, SyntheticModel};
use synthsae::eval::{
    eval_sae_on_synthetic_data_with_progress, EvalOptions, SyntheticDataEvalResult,
};
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
    type Output = Result<SyntheticDataEvalResult, CliError>;

    fn run<B: Backend>(self, device: B::Device, _kind: BackendKind) -> Self::Output {
        let sae = AnySae::<B>::load(&self.sae, &device)?;
        let model = SyntheticModel::<B>::load(&self.model, &device)?;
        let pb = progress(self.options.num_samples as u64, "evaluate", self.quiet);
        let mut rng = sample_rng(Some(self.seed));
        let r = eval_sae_on_synthetic_data_with_progress(
            &sae,
            &model,
            &self.options,
            &mut rng,
            |done| pb.set_position(done as u64),
        )?;
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
    let (sae, model) = resolve_sae_and_model(&args.sae, args.model.as_deref())?;
    let mut options = EvalOptions::new(args.samples).with_batch_size(args.batch_size);
    options.activation_scaling_factor = args.scaling_factor;
    let r = opts.backend.run(EvalJob {
        sae,
        model,
        options,
        seed: args.seed,
        quiet: opts.quiet,
    })??;
    if opts.json {
        println!("{}", r.to_json_pretty());
    } else {
        let table = super::train::eval_table(&r);
        print!(
            "{}",
            table.replacen(
                "final evaluation",
                &format!("evaluation ({} samples, seed {})", args.samples, args.seed),
                1
            )
        );
    }
    Ok(())
}
