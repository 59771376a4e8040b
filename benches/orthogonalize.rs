//! Orthogonalisation at the SynthSAEBench shape (16384 × 768) on each
//! compiled CPU backend: one optimiser step (two 16384×768×768 products,
//! ≈ 39 GFLOP, thanks to the re-associated closed-form gradient), and the
//! final pairwise |cos| report (half of a 16384×16384×768 product).
//!
//! Run: `cargo xtask bench` or `cargo bench --bench orthogonalize`.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use criterion::{criterion_group, criterion_main, Criterion};
use synthsae::data::orthogonalize::{optimize, pairwise_abs_cos};
use synthsae::data::{ChaChaSource, OrthogonalizationConfig, RandomSource};

const N: usize = 16_384;
const D: usize = 768;

fn input<B: Backend>() -> Tensor<B, 2> {
    let mut v = vec![0.0f32; N * D];
    ChaChaSource::new(Some(1)).fill_normal(&mut v);
    Tensor::from_data(TensorData::new(v, [N, D]), &Default::default())
}

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str) {
    let e = input::<B>();
    // One step; reading the loss back forces the work to complete.
    let cfg = OrthogonalizationConfig {
        num_steps: 1,
        lr: 3e-4,
        chunk_size: 1024,
    };
    let mut group = c.benchmark_group(format!("orthogonalize_{N}x{D}"));
    group.sample_size(10);
    group.bench_function(format!("{name}/step"), |b| {
        b.iter(|| optimize(e.clone(), &cfg, None).unwrap().1)
    });
    group.bench_function(format!("{name}/pairwise_report"), |b| {
        b.iter(|| pairwise_abs_cos(e.clone(), 1024).unwrap())
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    bench_backend::<burn::backend::Flex>(c, "flex");
    bench_backend::<burn::backend::NdArray>(c, "ndarray");
}

criterion_group!(benches, bench);
criterion_main!(benches);
