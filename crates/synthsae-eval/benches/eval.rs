//! Full evaluations (`eval_sae_on_synthetic_data`: sampling, hidden
//! activations, encode, decode, streaming metrics, MCC and uniqueness) on the
//! SynthSAEBench-16k model (16 384 features, D 768), Flex backend as the CLI,
//! batch 4096 as `synthsae eval`:
//!
//! * `eval/16k_model/topk16384_k25/100k_samples`: the target case, a
//!   16 384-wide TopK SAE (random init, k 25) on 100 000 samples. Slow
//!   (≈ 30–60 s an iteration on 2 cores); criterion's minimum of 10 samples.
//! * `eval/16k_model/topk4096_k25/10k_samples`: cheaper, the benchmark's SAE
//!   width (4096) on 10 000 samples.
//!
//! The model is built once (≈ 75 s) outside the timed loop.
//! `cargo bench -p synthsae-eval --bench eval` (filter: `-- 4096`).

use std::time::Duration;

use burn::backend::Flex;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use synthsae_data::{preset, sample_rng, SyntheticModel};
use synthsae_eval::{eval_sae_on_synthetic_data, EvalOptions};
use synthsae_sae::any::AnySae;
use synthsae_sae::TrainingSaeConfig;

type B = Flex;

fn random_topk(d_in: usize, d_sae: usize, k: usize) -> AnySae<B> {
    let cfg = TrainingSaeConfig::from_json(&serde_json::json!({
        "architecture": "topk", "d_in": d_in, "d_sae": d_sae, "k": k,
    }))
    .expect("topk config");
    cfg.init::<B>(&Default::default(), 7)
        .expect("init")
        .to_inference_sae()
}

fn bench(c: &mut Criterion) {
    // Only build the 16k model when a case is selected by the filter.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let cases = [(16_384usize, 100_000usize), (4096, 10_000)];
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let names: Vec<String> = cases
        .iter()
        .map(|(s, n)| format!("16k_model/topk{s}_k25/{}k_samples", n / 1000))
        .collect();
    if !names.iter().any(|n| wanted(&format!("eval/{n}"))) {
        return;
    }
    let device = Default::default();
    let model = SyntheticModel::<B>::new(preset("synthsaebench-16k").expect("preset"), &device)
        .expect("synthsaebench-16k");
    let d = model.host_dictionary().hidden_dim();

    let mut group = c.benchmark_group("eval");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1));
    for ((s, n), name) in cases.iter().zip(&names) {
        let sae = random_topk(d, *s, 25);
        let options = EvalOptions::new(*n).with_batch_size(4096);
        // One iteration per sample: criterion's estimate is what it asks for.
        group.measurement_time(Duration::from_secs(if *s >= 16_384 { 300 } else { 20 }));
        group.bench_function(name.as_str(), |bench| {
            let mut seed = 0;
            bench.iter(|| {
                seed += 1;
                eval_sae_on_synthetic_data(&sae, &model, &options, &mut sample_rng(Some(seed)))
                    .expect("eval")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
