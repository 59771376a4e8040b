//! Empirical firing rates of true features and SAE latents.

use burn::prelude::*;
use synthsae_data::{SampleRng, SyntheticModel};
use synthsae_sae::Sae;

use crate::error::{invalid, Result};
use crate::evaluate::EvalOptions;
use crate::readback::nonzero_counts_per_column;

/// Fraction of samples in which each true feature was `> 0` (`[N]`) and each
/// SAE latent `≠ 0` (`[S]`).
#[derive(Debug, Clone, PartialEq)]
pub struct FiringRates {
    /// Per true feature, `[N]`.
    pub true_rates: Vec<f64>,
    /// Per SAE latent, `[S]`.
    pub sae_rates: Vec<f64>,
}

/// Measures firing rates on `options.num_samples` samples of `model` (the
/// same sampling, batching and scaling as the evaluation).
pub fn measure_firing_rates<B: Backend, S: Sae<B> + ?Sized>(
    sae: &S,
    model: &SyntheticModel<B>,
    options: &EvalOptions,
    rng: &mut SampleRng,
) -> Result<FiringRates> {
    let dict = model.host_dictionary();
    let (n, d) = (dict.num_features(), dict.hidden_dim());
    if sae.d_in() != d {
        return Err(invalid(
            "sae.d_in",
            format!(
                "the SAE takes {} inputs, the model has hidden_dim {d}",
                sae.d_in()
            ),
        ));
    }
    if options.num_samples == 0 || options.batch_size == Some(0) {
        return Err(invalid(
            "num_samples",
            "need at least one sample and a batch size ≥ 1",
        ));
    }
    let device = sae.decoder_weights().device();
    let mut true_counts = vec![0u64; n];
    let mut sae_counts = vec![0u64; sae.d_sae()];
    let batch = options.batch_size.unwrap_or(options.num_samples);
    let mut done = 0;
    while done < options.num_samples {
        let rows = batch.min(options.num_samples - done);
        let features = model.sample_features(rows, rng);
        for (&j, &v) in features.indices().iter().zip(features.values()) {
            true_counts[j as usize] += (v > 0.0) as u64;
        }
        let x = model
            .hidden_by(&features, options.hidden_path)?
            .to_device(&device);
        let x = match options.activation_scaling_factor {
            Some(c) => x * c,
            None => x,
        };
        for (a, b) in sae_counts
            .iter_mut()
            .zip(nonzero_counts_per_column(sae.encode(x), "sae_latents")?)
        {
            *a += b;
        }
        done += rows;
    }
    let total = options.num_samples as f64;
    Ok(FiringRates {
        true_rates: true_counts.iter().map(|&c| c as f64 / total).collect(),
        sae_rates: sae_counts.iter().map(|&c| c as f64 / total).collect(),
    })
}
