//! Every training architecture: init, a training step with backward,
//! bit-exact checkpoint round trip, inference export and reload.

use burn::backend::{Autodiff, NdArray};
use burn::prelude::*;
use synthsae_sae::config::TRAINING_ARCHITECTURES;
use synthsae_sae::{AnySae, AnyTrainingSae, Sae, TrainStepInput, TrainingSae, TrainingSaeConfig};

type AD = Autodiff<NdArray>;

fn config(arch: &str) -> TrainingSaeConfig {
    let mut v = serde_json::json!({"d_in": 8, "d_sae": 32, "architecture": arch, "k": 4});
    if arch == "matryoshka_batchtopk" {
        v["matryoshka_widths"] = serde_json::json!([8, 16, 32]);
        v["use_matryoshka_aux_loss"] = true.into();
    }
    if arch == "jumprelu" {
        v["pre_act_loss_coefficient"] = 0.1.into();
    }
    TrainingSaeConfig::from_json(&v).unwrap()
}

#[test]
fn every_architecture_trains_saves_and_reloads() {
    let device = Default::default();
    for arch in TRAINING_ARCHITECTURES {
        let cfg = config(arch);
        let mut sae = cfg.init::<AD>(&device, 7).unwrap();
        assert_eq!(TrainingSae::architecture(&sae), arch);
        let x = Tensor::<AD, 2>::random(
            [16, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let dead = Tensor::<AD, 1>::from_data(
            TensorData::new(
                (0..32)
                    .map(|i| (i % 3 == 0) as i32 as f32)
                    .collect::<Vec<_>>(),
                [32],
            ),
            &device,
        )
        .greater_elem(0.5);
        let coefficients = sae
            .coefficients()
            .iter()
            .map(|c| (c.name.clone(), c.at_step(1)))
            .collect();
        let input = TrainStepInput {
            x: x.clone(),
            dead_mask: Some(dead),
            coefficients,
            step: 1,
            precision: Default::default(),
        };
        sae = sae.project();
        let out = sae.training_forward(&input);
        let loss = out.loss.clone().into_data().to_vec::<f32>().unwrap()[0];
        assert!(loss.is_finite() && loss > 0.0, "{arch}: loss {loss}");
        let sum: f32 = out
            .losses
            .iter()
            .map(|(_, t)| t.clone().into_data().to_vec::<f32>().unwrap()[0])
            .sum();
        assert!(
            (sum - loss).abs() <= 1e-5 * loss.abs().max(1.0),
            "{arch}: terms do not add up"
        );
        let grads = out.loss.backward();
        let _ = grads;
        let metrics = sae.after_forward(&out);
        if arch.contains("batchtopk") {
            assert!(metrics[0].1 > 0.0, "{arch}: threshold EMA did not move");
        }
        sae.metadata_mut().insert("l0".into(), 4.0.into());

        // Bit-exact checkpoint round trip.
        let dir =
            std::env::temp_dir().join(format!("synthsae-sae-ckpt-{arch}-{}", std::process::id()));
        sae.save_checkpoint(&dir).unwrap();
        let back = AnyTrainingSae::<AD>::load_checkpoint(&dir, &device).unwrap();
        assert_eq!(
            back.checkpoint_tensors(),
            sae.checkpoint_tensors(),
            "{arch}"
        );
        assert_eq!(back.config(), sae.config(), "{arch}");
        assert_eq!(back.topk_threshold(), sae.topk_threshold(), "{arch}");
        let cfg_text = std::fs::read_to_string(dir.join("cfg.json")).unwrap();
        assert!(
            cfg_text.contains(&format!("\"architecture\":\"{arch}\"")),
            "{arch}: {cfg_text}"
        );

        // Inference export: the exported SAE encodes like the in-memory inference form.
        let inf_dir = dir.join("inference");
        sae.save_inference(&inf_dir).unwrap();
        let loaded = AnySae::<NdArray>::load(&inf_dir, &device).unwrap();
        let mem = sae.to_inference();
        let xi = x.inner();
        let a = loaded
            .encode(xi.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let b = mem.encode(xi.clone()).into_data().to_vec::<f32>().unwrap();
        assert_eq!(a, b, "{arch}: export differs from to_inference");
        // Loading the checkpoint directory as an inference SAE works too.
        let from_ckpt = AnySae::<NdArray>::load(&dir, &device).unwrap();
        let c = from_ckpt.encode(xi).into_data().to_vec::<f32>().unwrap();
        let worst = a
            .iter()
            .zip(&c)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-5,
            "{arch}: checkpoint-as-inference differs by {worst}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn folding_a_scaling_factor_preserves_the_function() {
    let device = Default::default();
    // Matching pursuit is left out: sae-lens's fold (W_dec /= c on a tied
    // encoder) does not preserve its function, and synthsae does the same.
    for arch in ["standard", "topk", "batchtopk", "jumprelu", "gated"] {
        let cfg = config(arch);
        let mut sae = cfg.init::<AD>(&device, 3).unwrap();
        let x = Tensor::<AD, 2>::random(
            [32, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let c = 2.5;
        if arch == "batchtopk" {
            let out = sae.training_forward(&TrainStepInput {
                x: x.clone().mul_scalar(c),
                dead_mask: None,
                coefficients: vec![],
                step: 0,
                precision: Default::default(),
            });
            sae.after_forward(&out);
        }
        // Before folding the SAE sees c·x; after, raw x.
        let before = sae.to_inference();
        let folded = sae
            .clone()
            .fold_activation_norm_scaling_factor(c)
            .to_inference();
        let xi = x.inner();
        let z1 = before.encode(xi.clone().mul_scalar(c));
        let z2 = folded.encode(xi.clone());
        let r1 = before
            .decode(z1.clone())
            .div_scalar(c)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let r2 = folded
            .decode(z2.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // With decoder-norm rescaling latents are in units of pre · ‖W_dec‖,
        // and ‖W_dec‖ shrinks by c (as in sae-lens).
        let unit = if matches!(arch, "topk" | "batchtopk") {
            c
        } else {
            1.0
        };
        let z1 = z1.div_scalar(unit).into_data().to_vec::<f32>().unwrap();
        let z2 = z2.into_data().to_vec::<f32>().unwrap();
        let dz = z1
            .iter()
            .zip(&z2)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let dr = r1
            .iter()
            .zip(&r2)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(dz < 1e-4 && dr < 1e-4, "{arch}: dz {dz} dr {dr}");
    }
}
