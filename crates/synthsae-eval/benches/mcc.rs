//! MCC between random unit vectors in 768 dimensions (what a random SAE on
//! SynthSAEBench-16k looks like): cosine matrix (Burn, Flex backend) plus the
//! exact assignment. `cargo bench -p synthsae-eval --bench mcc`.

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::Distribution;
use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use synthsae_eval::mean_correlation_coefficient;

type B = Flex;

fn random(n: usize, d: usize, seed: u64) -> Tensor<B, 2> {
    B::seed(&Default::default(), seed);
    Tensor::random([n, d], Distribution::Normal(0.0, 1.0), &Default::default())
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("mcc");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    for &(s, n) in &[(4096usize, 4096usize), (4096, 16384), (16384, 16384)] {
        let a = random(s, 768, 1);
        let b = random(n, 768, 2);
        group.bench_function(format!("{s}x{n}_d768"), |bench| {
            bench.iter(|| mean_correlation_coefficient(a.clone(), b.clone()).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
