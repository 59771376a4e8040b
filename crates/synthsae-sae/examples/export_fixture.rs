//! Writes one seeded SAE per architecture in sae-lens's inference layout,
//! plus `io.safetensors` (`input`, synthsae's `feature_acts = encode(input)`),
//! for `xtask/interop/check_sae.py` to load in sae-lens and compare.
//!
//! usage: `cargo run --release -p synthsae-sae --example export_fixture -- OUTDIR`

use std::path::PathBuf;

use burn::backend::{Autodiff, NdArray};
use burn::prelude::*;
use burn::tensor::Distribution;
use synthsae_sae::config::TRAINING_ARCHITECTURES;
use synthsae_sae::io::{write_tensors, HostTensor};
use synthsae_sae::{Sae, TrainStepInput, TrainingSae, TrainingSaeConfig};

type AD = Autodiff<NdArray>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out: PathBuf = std::env::args()
        .nth(1)
        .ok_or("usage: export_fixture OUTDIR")?
        .into();
    let device = Default::default();
    <NdArray as Backend>::seed(&device, 11);
    for (i, arch) in TRAINING_ARCHITECTURES.iter().enumerate() {
        let mut v = serde_json::json!({"d_in": 24, "d_sae": 64, "architecture": arch, "k": 5,
            "residual_threshold": 0.0, "max_iterations": 8});
        if *arch == "matryoshka_batchtopk" {
            v["matryoshka_widths"] = serde_json::json!([8, 24, 64]);
        }
        let cfg = TrainingSaeConfig::from_json(&v)?;
        let mut sae = cfg.init::<AD>(&device, i as u64)?;
        // Non-trivial biases and decoder norms: fold a scaling factor, then one
        // forward pass (BatchTopK's threshold EMA moves).
        sae = sae.fold_activation_norm_scaling_factor(1.7);
        let x = Tensor::<AD, 2>::random([128, 24], Distribution::Normal(0.0, 1.0), &device);
        let out_step = sae.training_forward(&TrainStepInput {
            x: x.clone(),
            dead_mask: None,
            coefficients: vec![],
            step: 0,
            precision: Default::default(),
        });
        sae.after_forward(&out_step);
        let dir = out.join(arch);
        sae.save_inference(&dir)?;
        let inference = sae.to_inference();
        let input = x.inner().slice([0..64, 0..24]);
        let acts = inference.encode(input.clone());
        write_tensors(
            &dir.join("io.safetensors"),
            &[
                ("input".into(), HostTensor::from_tensor(input)),
                ("feature_acts".into(), HostTensor::from_tensor(acts)),
            ],
        )?;
        println!("{arch}: {}", dir.display());
    }
    Ok(())
}
