//! Training throughput (samples/s) on the default CPU backend,
//! `Autodiff<Flex>`, through `synthsae::train::run` with every output off
//! (no output folder, no checkpoint, no final evaluation):
//!
//! * `tutorial_standard_32x16`: the quickstart's tutorial run (tutorial
//!   model, 16 features × 32 dims; standard SAE, d_sae 16, l1 5e-2, batch 1024);
//! * `zipf_1024x256_batchtopk`: `configs/zipf-1024x256-batchtopk.json`
//!   (1024 features × 256 dims, Zipf firing; BatchTopK SAE, d_sae 1024,
//!   k 12, batch 1024).
//!
//! Criterion reports the throughput in samples (elements) per second. The
//! allocator is tuned as in the `synthsae` binary
//! (`synthsae::alloc_tuning::keep_large_buffers`).
//! Run: `cargo bench --bench training`.

use burn::backend::{Autodiff, Flex};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use synthsae::train::{build_model, run, RunnerConfig, Silent};

type B = Autodiff<Flex>;

fn config(model: Value, sae: Value, samples: u64) -> RunnerConfig {
    RunnerConfig::from_value(json!({
        "synthetic_model": model,
        "sae": sae,
        "training_samples": samples,
        "batch_size": 1024,
        "lr": 3e-4,
        "eval_samples": 0,
        "run_final_eval": false,
        "output_path": null,
        "checkpoint_path": null,
        "seed": 42,
    }))
    .expect("valid runner config")
}

fn bench_run(c: &mut Criterion, name: &str, cfg: RunnerConfig) {
    let device = Default::default();
    let model = build_model::<Flex>(&cfg.synthetic_model, &device).expect("model");
    let samples = cfg.training_samples;
    let mut group = c.benchmark_group("training");
    group.sample_size(10);
    group.throughput(Throughput::Elements(samples));
    group.bench_function(name, |b| {
        b.iter(|| {
            let r = run::<B>(cfg.clone(), &model, &device, None, &mut Silent).expect("training");
            r.n_training_samples
        })
    });
    group.finish();
}

fn training(c: &mut Criterion) {
    // As the `synthsae` binary does (glibc keeps freed large buffers).
    synthsae::alloc_tuning::keep_large_buffers();
    let tutorial = synthsae::data::preset("tutorial").expect("tutorial preset");
    let tutorial = config(
        serde_json::to_value(&tutorial).expect("json"),
        json!({"architecture": "standard", "d_in": tutorial.hidden_dim, "d_sae": 16,
               "l1_coefficient": 5e-2}),
        // 1000 steps.
        1000 * 1024,
    );
    bench_run(c, "tutorial_standard_32x16", tutorial);

    let zipf = config(
        json!({
            "num_features": 1024,
            "hidden_dim": 256,
            "firing_probability": {"generator_name": "zipfian", "exponent": 1.0,
                                   "max_prob": 0.3, "min_prob": 0.01},
            "seed": 42
        }),
        json!({"architecture": "batchtopk", "d_in": 256, "d_sae": 1024, "k": 12}),
        // 50 steps.
        50 * 1024,
    );
    bench_run(c, "zipf_1024x256_batchtopk", zipf);
}

criterion_group!(benches, training);
criterion_main!(benches);
