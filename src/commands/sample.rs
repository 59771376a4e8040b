//! `synthsae sample SOURCE`: draws samples from a saved model and writes them
//! to a safetensors file.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use clap::Args;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde::Serialize;
use synthsae::data::{sample_rng, SyntheticModel};
use synthsae::{BackendJob, BackendKind};

use super::{progress, write_atomic, CliError, GlobalOpts};

/// Arguments of `sample`.
///
/// Example: synthsae sample models/bench16k --samples 100000 --out acts.safetensors --with-features
#[derive(Debug, Clone, Args)]
pub struct SampleArgs {
    /// Model directory, or a hub reference `namespace/name[:folder]`.
    pub source: PathBuf,
    /// Number of samples.
    #[arg(long)]
    pub samples: usize,
    /// Output file (`.safetensors`).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the ground-truth features as CSR (`feature_row_offsets`,
    /// `feature_indices`, `feature_values`).
    #[arg(long)]
    pub with_features: bool,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rows per batch.
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
}

/// What `sample` reports.
#[derive(Debug, Serialize)]
pub struct SampleReport {
    /// The output file.
    pub out: PathBuf,
    /// Samples written.
    pub samples: usize,
    /// Hidden dimension.
    pub hidden_dim: usize,
    /// Stored feature entries (with `--with-features`).
    pub nnz: Option<usize>,
    /// Mean active features per sample.
    pub true_l0: f64,
}

struct SampleJob {
    args: SampleArgs,
    quiet: bool,
}

impl BackendJob for SampleJob {
    type Output = Result<SampleReport, CliError>;

    fn run<B: Backend>(self, device: B::Device, _kind: BackendKind) -> Self::Output {
        let a = self.args;
        let model = SyntheticModel::<B>::load(&a.source, &device)?;
        let d = model.config().hidden_dim;
        let mut rng = sample_rng(Some(a.seed));
        let total = a
            .samples
            .checked_mul(d)
            .filter(|&t| t <= isize::MAX as usize / 4)
            .ok_or(CliError::Usage {
                flag: "samples",
                reason: format!(
                    "{} samples × {d} dimensions does not fit in memory",
                    a.samples
                ),
            })?;
        let mut hidden: Vec<f32> = Vec::new();
        hidden
            .try_reserve_exact(total)
            .map_err(|_| CliError::Usage {
                flag: "samples",
                reason: format!(
                    "cannot allocate {} samples × {d} dimensions ({} GiB)",
                    a.samples,
                    (total * 4) >> 30
                ),
            })?;
        let (mut offsets, mut indices, mut values) = (vec![0i64], Vec::new(), Vec::new());
        let mut nnz = 0usize;
        let pb = progress(a.samples as u64, "sample", self.quiet);
        let mut done = 0;
        while done < a.samples {
            let b = a.batch_size.min(a.samples - done);
            let feats = model.sample_features(b, &mut rng);
            hidden.extend(model.host_dictionary().forward_sparse(&feats)?);
            nnz += feats.nnz();
            if a.with_features {
                let base = *offsets.last().unwrap_or(&0);
                offsets.extend(feats.offsets()[1..].iter().map(|&o| base + o as i64));
                indices.extend(feats.indices().iter().map(|&f| f as i64));
                values.extend_from_slice(feats.values());
            }
            done += b;
            pb.set_position(done as u64);
        }
        pb.finish_and_clear();
        let bytes_f32 = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let bytes_i64 = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut tensors = vec![(
            "hidden_activations",
            Dtype::F32,
            vec![a.samples, d],
            bytes_f32(&hidden),
        )];
        drop(hidden);
        if a.with_features {
            tensors.push((
                "feature_row_offsets",
                Dtype::I64,
                vec![a.samples + 1],
                bytes_i64(&offsets),
            ));
            tensors.push((
                "feature_indices",
                Dtype::I64,
                vec![indices.len()],
                bytes_i64(&indices),
            ));
            tensors.push((
                "feature_values",
                Dtype::F32,
                vec![values.len()],
                bytes_f32(&values),
            ));
        }
        let views: Vec<(&str, TensorView<'_>)> = tensors
            .iter()
            .map(|(n, dt, s, b)| TensorView::new(*dt, s.clone(), b).map(|v| (*n, v)))
            .collect::<Result<_, _>>()
            .map_err(|e| CliError::Output(e.to_string()))?;
        let data =
            safetensors::serialize(views, None).map_err(|e| CliError::Output(e.to_string()))?;
        write_atomic(&a.out, &data)?;
        Ok(SampleReport {
            out: a.out,
            samples: a.samples,
            hidden_dim: d,
            nnz: a.with_features.then_some(nnz),
            true_l0: nnz as f64 / a.samples as f64,
        })
    }
}

/// Runs `sample`.
pub fn run(mut args: SampleArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    super::at_least_one("samples", args.samples)?;
    super::at_least_one("batch-size", args.batch_size)?;
    args.source = super::hub::resolve_model_source(&args.source)?;
    let r = opts.backend.run(SampleJob {
        args,
        quiet: opts.quiet,
    })??;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "wrote {} samples × {} dims to {} (true L0 {:.3})",
            r.samples,
            r.hidden_dim,
            r.out.display(),
            r.true_l0
        );
    }
    Ok(())
}
