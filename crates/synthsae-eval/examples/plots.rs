//! Renders every plot kind into a directory (default `target/plots`):
//! `cargo run --release -p synthsae-eval --example plots -- DIR`.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::Distribution;
use synthsae_eval::plot::{
    plot_feature_similarity, plot_firing_rate_histogram, plot_training_curves, CurvesOptions,
    FiringOptions, HeatmapOptions, MetricsLog,
};
use synthsae_eval::SimilarityMatrix;

type B = Flex;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/plots".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let device = Default::default();
    B::seed(&device, 0);
    for (s, n, name) in [
        (16usize, 16usize, "similarity_16"),
        (4096, 4096, "similarity_4096"),
    ] {
        // Half the latents are noisy copies of shuffled features, the rest random.
        let f = Tensor::<B, 2>::random([n, 64], Distribution::Normal(0.0, 1.0), &device);
        let noise = Tensor::<B, 2>::random([s, 64], Distribution::Normal(0.0, 0.3), &device);
        let perm: Vec<i64> = (0..s as i64).map(|i| (i * 7919) % n as i64).collect();
        let mut dec = f
            .clone()
            .select(0, Tensor::from_data(TensorData::new(perm, [s]), &device))
            + noise;
        let random = Tensor::<B, 2>::random([s / 2, 64], Distribution::Normal(0.0, 1.0), &device);
        dec = dec.slice_assign([s / 2..s, 0..64], random);
        let sim = SimilarityMatrix::compute(dec, f)?;
        plot_feature_similarity(
            &sim,
            &dir.join(format!("{name}.png")),
            &HeatmapOptions::default(),
        )?;
        plot_feature_similarity(
            &sim,
            &dir.join(format!("{name}.svg")),
            &HeatmapOptions::default(),
        )?;
        let abs = HeatmapOptions {
            absolute: true,
            ..Default::default()
        };
        plot_feature_similarity(&sim, &dir.join(format!("{name}_abs.png")), &abs)?;
    }
    let mut log = String::new();
    for step in (0..=5000).step_by(100) {
        let t = step as f64 / 5000.0;
        log.push_str(&format!(
            "{{\"step\": {step}, \"metrics/l0\": {}, \"metrics/explained_variance\": {}, \"losses/mse_loss\": {}, \"synthetic/mcc\": {}, \"synthetic/classification/f1_score\": {}}}\n",
            40.0 * (-3.0 * t).exp() + 12.0, 1.0 - 0.8 * (-4.0 * t).exp(), 2.0 * (-5.0 * t).exp() + 0.05,
            0.2 + 0.7 * (1.0 - (-3.0 * t).exp()), 0.1 + 0.6 * t
        ));
    }
    let log = MetricsLog::parse(&log)?;
    plot_training_curves(
        &log,
        &[],
        &dir.join("curves.png"),
        &CurvesOptions::default(),
    )?;
    plot_training_curves(
        &log,
        &["synthetic/mcc".into()],
        &dir.join("curves_one.svg"),
        &CurvesOptions::default(),
    )?;
    let true_rates: Vec<f64> = (1..=4096).map(|i| 0.3 * (i as f64).powf(-0.8)).collect();
    let sae_rates: Vec<f64> = (1..=4096)
        .map(|i| {
            if i % 17 == 0 {
                0.0
            } else {
                0.2 * (i as f64).powf(-0.6)
            }
        })
        .collect();
    plot_firing_rate_histogram(
        &true_rates,
        &sae_rates,
        &dir.join("firing.png"),
        &FiringOptions::default(),
    )?;
    plot_firing_rate_histogram(
        &true_rates,
        &sae_rates,
        &dir.join("firing.svg"),
        &FiringOptions::default(),
    )?;
    println!("plots in {}", dir.display());
    Ok(())
}
