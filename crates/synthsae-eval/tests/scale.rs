//! A randomly initialised SAE on SynthSAEBench-16k (16 384 features in 768
//! dimensions) scores MCC ≈ 0.15: the chance level every trained SAE in the
//! benchmark is compared with.
//!
//! Slow (builds the 16k model, ≈ 75 s in release, then a 16 384² MCC), hence
//! ignored: `cargo test --release -p synthsae-eval --test scale -- --ignored`.

use burn::backend::Flex;
use synthsae_data::{preset, sample_rng, SyntheticModel};
use synthsae_eval::{eval_sae_on_synthetic_data, EvalOptions};
use synthsae_sae::{Sae, TrainingSaeConfig};

type B = Flex;

/// Why 0.15 ± 0.01. A random decoder row is a uniformly random direction, so
/// its cosine with a (near-orthogonal, unit) true feature is ≈ N(0, 1/768):
/// σ = 0.036. MCC is the mean |cos| of the best one-to-one matching of
/// 16 384 rows to 16 384 features, which sits just below the mean row maximum
/// of 16 384 such |cos| values (≈ σ·√(2 ln 32768) ≈ 0.165 from extreme-value
/// statistics, a little less in practice): 0.15 to two decimals. The mean over
/// 16 384 matched pairs fluctuates by ~1e-4 between seeds, so ± 0.01 is the
/// rounding of "≈ 0.15", not noise; a broken cosine or assignment (a greedy or
/// wrong-sign matching, unnormalised rows, a transposed matrix) lands well
/// outside it (mean |cos| of an arbitrary pairing is σ·√(2/π) ≈ 0.029).
const EXPECTED_MCC: f64 = 0.15;
const MCC_TOLERANCE: f64 = 0.01;

#[test]
#[ignore = "slow: builds SynthSAEBench-16k (run with --release -- --ignored)"]
fn random_sae_on_synthsaebench_16k_scores_chance_mcc() {
    let device = Default::default();
    let model = SyntheticModel::<B>::new(preset("synthsaebench-16k").unwrap(), &device).unwrap();
    let d = model.host_dictionary().hidden_dim();
    assert_eq!(d, 768);
    let k = 25;
    let cfg = TrainingSaeConfig::from_json(&serde_json::json!({
        "architecture": "topk", "d_in": d, "d_sae": 16_384, "k": k,
    }))
    .unwrap();
    let sae = cfg.init::<B>(&device, 2024).unwrap().to_inference_sae();
    assert_eq!(sae.d_sae(), 16_384);

    let options = EvalOptions::new(4096).with_batch_size(2048);
    let start = std::time::Instant::now();
    let r = eval_sae_on_synthetic_data(&sae, &model, &options, &mut sample_rng(Some(0))).unwrap();
    eprintln!(
        "random topk SAE (16384 latents, k {k}) on synthsaebench-16k: {:?} ({:.1} s)",
        r,
        start.elapsed().as_secs_f64()
    );
    assert!(
        (r.mcc - EXPECTED_MCC).abs() < MCC_TOLERANCE,
        "MCC {} not within {MCC_TOLERANCE} of {EXPECTED_MCC}",
        r.mcc
    );
    // Sampled metrics are sane for a random TopK SAE: at most k latents per
    // row, the SynthSAEBench true L0 (≈ 35), and no detection skill.
    assert!(r.sae_l0 <= k as f64 && r.sae_l0 > 0.0, "{}", r.sae_l0);
    assert!((r.true_l0 - 35.0).abs() < 3.0, "{}", r.true_l0);
    assert!(r.classification.f1_score < 0.2, "{:?}", r.classification);
    assert!(r.uniqueness > 0.0 && r.uniqueness <= 1.0);
}
