//! What the hierarchy metrics add to an evaluation at the 16k scale: the
//! SynthSAEBench-16k model (16 384 features, D 768, 3-level hierarchy), a
//! random 16 384-wide TopK SAE (k 25), 100 000 samples in batches of 4096,
//! Flex (as `synthsae eval`).
//!
//! Times (seconds, best of `--rounds`, default 2) `evaluate_sae` (everything:
//! sampling, encode, decode, sae-lens's metrics, MCC, absorption, splitting)
//! and, on the same batches and sparse latents replayed, the hierarchy part
//! alone: the absorption calculator's construction from the similarity
//! matrix and its passes over the batches, plus splitting. Prints both and
//! `hierarchy / (evaluation − hierarchy)`, the share the hierarchy metrics
//! add to an evaluation without them.
//!
//! `cargo bench -p synthsae-eval --bench absorption [-- --rounds R]`
//! (the model is built once, about a minute, outside the timings).

use std::time::Instant;

use burn::backend::Flex;
use burn::prelude::*;
use synthsae_data::{preset, sample_rng, HierarchyModifier, SyntheticModel};
use synthsae_eval::{
    evaluate_sae, splitting, AbsorptionCalculator, EvalOptions, HierarchyOptions, SimilarityMatrix,
};
use synthsae_sae::any::AnySae;
use synthsae_sae::{Sae, TrainingSaeConfig};

type B = Flex;

const SAMPLES: usize = 100_000;
const BATCH: usize = 4096;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(2);
    let device = Default::default();
    let model = SyntheticModel::<B>::new(preset("synthsaebench-16k").expect("preset"), &device)
        .expect("synthsaebench-16k");
    let dict = model.host_dictionary();
    let (n, d) = (dict.num_features(), dict.hidden_dim());
    let sae: AnySae<B> = TrainingSaeConfig::from_json(&serde_json::json!({
        "architecture": "topk", "d_in": d, "d_sae": 16_384, "k": 25,
    }))
    .expect("topk config")
    .init::<B>(&device, 7)
    .expect("init")
    .to_inference_sae();
    let options = EvalOptions::new(SAMPLES).with_batch_size(BATCH);

    // The batches and sparse latents of one evaluation, kept for replays.
    let mut rng = sample_rng(Some(1));
    let mut batches = Vec::new();
    let mut done = 0;
    while done < SAMPLES {
        let rows = BATCH.min(SAMPLES - done);
        let features = model.sample_features(rows, &mut rng);
        let hidden = Tensor::<B, 2>::from_data(
            TensorData::new(dict.forward_sparse(&features).expect("hidden"), [rows, d]),
            &device,
        );
        let latents = sae.forward_sparse(hidden).expect("TopK is sparse").latents;
        batches.push((features, latents));
        done += rows;
    }
    let sim = SimilarityMatrix::compute(
        sae.decoder_weights(),
        model.feature_dictionary().feature_vectors.val(),
    )
    .expect("similarity");
    let best = sim.row_argmax_abs();
    let parents = HierarchyModifier::new(model.hierarchy().expect("hierarchy").clone(), n)
        .expect("hierarchy")
        .parents()
        .to_vec();
    let probabilities = model.generator().firing_probabilities();
    let h = HierarchyOptions::default();

    let (mut eval_s, mut hier_s) = (f64::INFINITY, f64::INFINITY);
    let mut parents_measured = 0;
    for round in 0..rounds {
        let t = Instant::now();
        let r = evaluate_sae(
            &sae,
            &model,
            &options,
            &mut sample_rng(Some(round as u64)),
            |_| {},
        )
        .expect("eval");
        eval_s = eval_s.min(t.elapsed().as_secs_f64());
        parents_measured = r.hierarchy.absorption.map_or(0, |a| a.parents_measured);

        let t = Instant::now();
        let mut calc = AbsorptionCalculator::new(&sim, &best, parents.clone(), probabilities, &h)
            .expect("calculator");
        for (features, latents) in &batches {
            calc.add_sparse(features, latents).expect("batch");
        }
        std::hint::black_box((calc.compute(), splitting(&sim, &best, h.split_cosine)));
        hier_s = hier_s.min(t.elapsed().as_secs_f64());
    }
    println!(
        "16k model, TopK 16384 k 25, {SAMPLES} samples (best of {rounds}): evaluation {eval_s:.2} s, \
         hierarchy metrics {hier_s:.3} s ({parents_measured} parents measured), \
         adding {:.2} % to the evaluation without them",
        100.0 * hier_s / (eval_s - hier_s)
    );
    println!("RESULT\t{eval_s}\t{hier_s}\t{}", hier_s / (eval_s - hier_s));
}
