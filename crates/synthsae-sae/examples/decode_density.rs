//! Measures the TopK-family decode, forward + backward, dense (`z · W_dec`
//! through the dense `hidden_pre`) against sparse (`sparse_pre` +
//! `sparse_decode`) at several densities, on `Autodiff<Flex>`:
//!
//! ```text
//! cargo run --release -p synthsae-sae --example decode_density
//! ```
//!
//! The cross-over sets `arch::topk::SPARSE_MAX_DENSITY`.

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::activation::relu;
use synthsae_sae::arch::topk::{sparse_decode, sparse_pre, topk_activation_sparse};
use synthsae_sae::linear::LinearCore;

type B = Autodiff<Flex>;

fn main() {
    let (b, d, s) = (1024usize, 256usize, 1024usize);
    let device = Default::default();
    let w: Vec<f32> = (0..s * d)
        .map(|i| (((i * 7919) % 1000) as f32 / 1000.0 - 0.5) * 0.1)
        .collect();
    let core = LinearCore::<B>::from_decoder(&w, d, s, &device);
    let x = Tensor::<B, 2>::random(
        [b, d],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &device,
    );
    let reps = 10;
    let ks: Vec<usize> = match std::env::args().nth(1) {
        Some(a) => vec![a.parse().expect("k")],
        None => vec![4, 12, 32, 64, 128],
    };
    for k in ks {
        let mut best = [f64::INFINITY; 2];
        for _ in 0..reps {
            for (which, slot) in best.iter_mut().enumerate() {
                let t = Instant::now();
                let pre = core.pre(x.clone());
                let pre_t = pre.clone();
                let (z, act) = topk_activation_sparse(pre, k, false);
                let out = if which == 0 {
                    core.decode_linear(z)
                } else {
                    let act = act.unwrap_or_else(|| {
                        // Force the sparse path even above the threshold.
                        let host = synthsae_sae::ops::to_vec(z.clone().detach());
                        let mut a = synthsae_sae::arch::topk::Active::default();
                        for (i, v) in host.iter().enumerate() {
                            if *v > 0.0 {
                                a.rows.push((i / s) as i64);
                                a.cols.push((i % s) as i64);
                            }
                        }
                        a
                    });
                    let p = relu(sparse_pre(pre_t.clone(), &act));
                    sparse_decode(core.w_dec.val(), p, None, &act, b)
                        + core.b_dec.val().unsqueeze_dim(0)
                };
                let loss = (out - x.clone()).powi_scalar(2).sum_dim(1).mean();
                let tf = t.elapsed().as_secs_f64();
                let grads = loss.backward();
                if std::env::var_os("SPLIT").is_some() {
                    eprintln!(
                        "{which}: fwd {:.2} ms total {:.2} ms",
                        tf * 1e3,
                        t.elapsed().as_secs_f64() * 1e3
                    );
                }
                let g = core.w_dec.val().grad(&grads).map(|g| g.sum().into_scalar());
                std::hint::black_box(g);
                *slot = slot.min(t.elapsed().as_secs_f64());
            }
        }
        println!(
            "k {k:4} density {:6.3} %: dense {:7.2} ms, sparse {:7.2} ms",
            100.0 * k as f64 / s as f64,
            best[0] * 1e3,
            best[1] * 1e3
        );
    }
}
