//! Times MCC between random unit vectors: `cargo run --release -p
//! synthsae-eval --example mcc_timing -- S N [D]` (defaults 16384 16384 768).
//! Wrap in `/usr/bin/time -v` for peak memory.

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::Distribution;
use std::time::Instant;
use synthsae_eval::{mcc_from_similarity, SimilarityMatrix};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let s = args.first().copied().unwrap_or(16384);
    let n = args.get(1).copied().unwrap_or(16384);
    let d = args.get(2).copied().unwrap_or(768);
    let device = Default::default();
    Flex::seed(&device, 0);
    let a = Tensor::<Flex, 2>::random([s, d], Distribution::Normal(0.0, 1.0), &device);
    let b = Tensor::<Flex, 2>::random([n, d], Distribution::Normal(0.0, 1.0), &device);
    let t = Instant::now();
    let sim = SimilarityMatrix::compute(a, b)?.into_abs();
    let t_cos = t.elapsed().as_secs_f64();
    let mcc = mcc_from_similarity(&sim)?;
    let total = t.elapsed().as_secs_f64();
    println!(
        "{s}x{n} d={d}: mcc {mcc:.6}  cosine {t_cos:.2}s  assignment {:.2}s  total {total:.2}s",
        total - t_cos
    );
    Ok(())
}
