//! The BatchTopK cut-off on the host at the SynthSAEBench training shape
//! (1024 rows × 4096 latents, relu'd pre-activations, n = k · B with k = 25),
//! as the generic (GPU-backend) path computes it each step: a copy and an
//! in-place partition against the sampled-bound selection, and the host
//! minimum-positive scan the threshold update no longer needs.
//!
//!     cargo bench -p synthsae-host --bench select

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use synthsae_host::select::{nth_largest_of, quickselect};

fn batchtopk_cut(c: &mut Criterion) {
    let (b, s, k) = (1024usize, 4096usize, 25usize);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    // About 40 % of pre-activations positive, as early in training.
    let values: Vec<f32> = (0..b * s)
        .map(|_| (rng.random_range(-1.0f32..1.0) - 0.2).max(0.0))
        .collect();
    let n = k * b;
    let mut g = c.benchmark_group("batchtopk_cut_1024x4096");
    g.bench_function("copy_and_partition", |bench| {
        bench.iter(|| quickselect(&mut values.clone(), n))
    });
    g.bench_function("sampled_bound", |bench| {
        bench.iter(|| nth_largest_of(&values, n))
    });
    // The host scan the BatchTopK threshold update ran over read-back
    // latents before it took the minimum on the device.
    g.bench_function("min_positive_scan", |bench| {
        bench.iter(|| {
            values
                .iter()
                .copied()
                .filter(|&v| v > 0.0)
                .fold(f32::INFINITY, f32::min)
        })
    });
    g.finish();
}

criterion_group!(benches, batchtopk_cut);
criterion_main!(benches);
