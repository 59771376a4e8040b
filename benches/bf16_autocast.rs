//! Whether bf16 autocast pays on the CPU: the products of the 16k
//! benchmark's width-4096 SAE and one whole BatchTopK training step, in
//! float32 and in bf16 ([`Precision::Bf16`]: operands and result rounded to
//! bf16, float32 accumulation) on the default CPU backend (Flex).
//!
//! * `encoder`: `x · W_enc`, `[1024, 768] × [768, 4096]`;
//! * `decoder`: `f · W_dec`, `[1024, 4096] × [4096, 768]` (dense: at bf16 the
//!   decode is a dense product);
//! * `train step`: one step of BatchTopK (k 25, width 4096) on the
//!   SynthSAEBench-16k model, forward, backward and Adam, on the same batch
//!   (float32 takes the fused CPU path with the sparse decode; bf16 the
//!   generic path with dense bf16 products).
//!
//! The runner honours `autocast_sae` / `autocast_data` only on backends with
//! accelerated bf16 and runs float32 on the CPU with a warning; the
//! `ratio` column (bf16 time / float32 time) is the measurement behind that.
//! Each figure is the best of `--rounds` (default 5) rounds of `--reps`
//! (default 10) calls, in milliseconds.
//!
//! Run: `cargo bench --bench bf16_autocast [-- --rounds R --reps N]` (also
//! part of `cargo xtask bench`).

mod common;

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::Distribution;
use serde_json::{json, Value};
use synthsae::host::Precision;
use synthsae::train::{build_model, sampler_for, Autocast, NoHooks, Trainer};

const BATCH: usize = common::STEP_BATCH;
const D_IN: usize = 768;
const D_SAE: usize = 4096;

/// `a · b` at `p`, read back (one value) so that it is really computed.
fn product_ms(a: &Tensor<Flex, 2>, b: &Tensor<Flex, 2>, p: Precision, r: usize, n: usize) -> f64 {
    common::best_ms(r, n, || {
        let y = p.matmul(a.clone(), b.clone());
        std::hint::black_box(y.slice([0..1, 0..1]).into_scalar());
    })
}

/// One BatchTopK training step at `p` on a fixed batch.
fn step_ms(p: Precision, rounds: usize, reps: usize) -> f64 {
    type A = Autodiff<Flex>;
    let device = Default::default();
    let mut model =
        serde_json::to_value(synthsae::data::preset("synthsaebench-16k").expect("preset"))
            .expect("json");
    model["orthogonalization"] = Value::Null;
    let sae = json!({"architecture": "batchtopk", "d_in": D_IN, "d_sae": D_SAE, "k": 25});
    let cfg = common::step_config(&model, &sae, 3e-4, rounds * reps);
    let synthetic = build_model::<Flex>(&cfg.synthetic_model, &device).expect("model");
    let sampler = sampler_for(&cfg, &synthetic);
    let batch = sampler.train_batch(0).expect("batch");
    let sae = cfg.sae.init::<A>(&device, cfg.seed).expect("SAE");
    let mut fitting = Trainer::new(cfg.trainer_config(), sae, sampler, device)
        .expect("trainer")
        .with_device_dictionary(synthetic.feature_dictionary().clone())
        .with_autocast(Autocast { sae: p, data: p })
        .start()
        .expect("start");
    common::best_ms(rounds, reps, || {
        fitting.step(batch.clone(), &mut NoHooks).expect("step");
    })
}

fn row(name: &str, f32_ms: f64, bf16_ms: f64) {
    let ratio = bf16_ms / f32_ms;
    println!("{name:<12} {f32_ms:>10.3} {bf16_ms:>10.3} {ratio:>7.2}");
    println!("RESULT\t{name}\t{f32_ms}\t{bf16_ms}\t{ratio}");
}

fn main() {
    synthsae::alloc_tuning::keep_large_buffers();
    let args = common::Args::from_env();
    let rounds = args.count("--rounds", 5);
    let reps = args.count("--reps", 10);
    println!(
        "float32 against bf16 autocast on Flex (ms, best of {rounds} × {reps})\n\
         {:<12} {:>10} {:>10} {:>7}",
        "case", "float32", "bf16", "ratio"
    );
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<Flex, 2>::random([BATCH, D_IN], normal, &device);
    let w_enc = Tensor::<Flex, 2>::random([D_IN, D_SAE], normal, &device);
    let f = Tensor::<Flex, 2>::random([BATCH, D_SAE], normal, &device);
    let w_dec = Tensor::<Flex, 2>::random([D_SAE, D_IN], normal, &device);
    for (name, a, b) in [("encoder", &x, &w_enc), ("decoder", &f, &w_dec)] {
        row(
            name,
            product_ms(a, b, Precision::F32, rounds, reps),
            product_ms(a, b, Precision::Bf16, rounds, reps),
        );
    }
    let (r, n) = (rounds.min(3), reps.min(5));
    row(
        "train step",
        step_ms(Precision::F32, r, n),
        step_ms(Precision::Bf16, r, n),
    );
}
