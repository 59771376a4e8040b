//! Sampling throughput at SynthSAEBench scale: N = 16384 features, D = 768,
//! batches of 1024, hidden activations included (host gather-sum, the CPU
//! path). Throughput is reported in samples/s (criterion "elem/s").
//!
//! Run: `cargo xtask bench` or `cargo bench --bench sampling`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use synthsae::data::{
    generate_random_low_rank_correlation_matrix, preset, sample_rng, zipfian_firing_probabilities,
    ActivationGenerator, Bias, Correlation, FeatureDictionaryConfig, SyntheticModel,
};

const N: usize = 16_384;
const D: usize = 768;
const BATCH: usize = 1024;

fn bench(c: &mut Criterion) {
    let device = Default::default();
    let dict = FeatureDictionaryConfig::new(N, D)
        .with_bias(Bias::Norm(0.5))
        .with_seed(Some(42))
        .init::<burn::backend::Flex>(&device)
        .unwrap()
        .to_host()
        .unwrap();
    let probs = zipfian_firing_probabilities(N, 0.5, 0.4, 5e-4).unwrap();
    let independent = ActivationGenerator::new(N, probs.clone(), 0.5f32, 4.5f32).unwrap();
    let low_rank = independent
        .clone()
        .with_correlation(Correlation::LowRank(
            generate_random_low_rank_correlation_matrix(N, 25, 0.1, Some(46)).unwrap(),
        ))
        .unwrap();

    let mut group = c.benchmark_group("sampling_16384x768_batch1024");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    for (name, generator) in [("independent", &independent), ("low_rank_25", &low_rank)] {
        let mut rng = sample_rng(Some(0));
        let mut hidden = vec![0.0f32; BATCH * D];
        group.bench_function(format!("{name}/features_only"), |b| {
            b.iter(|| generator.sample(BATCH, &mut rng))
        });
        group.bench_function(format!("{name}/with_hidden"), |b| {
            b.iter(|| {
                let batch = generator.sample(BATCH, &mut rng);
                dict.forward_sparse_into(&batch, &mut hidden).unwrap();
            })
        });
    }
    // The SynthSAEBench-16k model (hierarchy + rank-25 copula), without the
    // orthogonalisation (sampling cost does not depend on it).
    let mut cfg = preset("synthsaebench-16k").unwrap();
    cfg.orthogonalization = None;
    let model = SyntheticModel::<burn::backend::Flex>::new(cfg, &device).unwrap();
    let mut rng = sample_rng(Some(0));
    let mut hidden = vec![0.0f32; BATCH * D];
    group.bench_function("synthsaebench_16k/with_hidden", |b| {
        b.iter(|| {
            let batch = model.sample_features(BATCH, &mut rng);
            model
                .host_dictionary()
                .forward_sparse_into(&batch, &mut hidden)
                .unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
