//! What one encoder product over a group's concatenated encoders would buy:
//! for 5 same-shape SAEs fed the same batch `x` (`[1024, d_in]`), the 5
//! encoder products `x · W_i` (`W_i`: `[d_in, d_sae]`) against one product
//! `x · [W_1 … W_5]` (`[d_in, 5·d_sae]`), on the default CPU backend (Flex),
//! at the two shapes of `benches/sweep_group.rs`:
//!
//! * `quickstart`: d_in 32, d_sae 16 (the standard SAE, whose encoder
//!   backward is dense, so the weight gradient `xᵀ · G` is timed too);
//! * `bench16k_batchtopk4096`: d_in 768, d_sae 4096 (BatchTopK, whose encoder
//!   backward on the CPU uses only the kept entries: no second product).
//!
//! Each shape also times one training step of one member (a `StartedRun` fed
//! the same batch), so the product's share `g` of a member's step is known.
//! If the concatenated product takes `r` times the 5 separate ones, merging
//! them can speed a group's training up by at most `1 / (1 − g·(1 − r))`
//! (everything else unchanged), printed as `bound`; it takes the split of the
//! wide result into the members' blocks as free. `cat+split` times that split
//! too, as Flex does it (a slice of each member's `[1024, d_sae]` block, made
//! contiguous), which the members' own forward passes would need.
//!
//! Each figure is the best of `--rounds` (default 5) rounds of `--reps`
//! (default 20) products; milliseconds per group of 5.
//!
//! Run: `cargo bench --bench group_gemm [-- --rounds R --reps N]`
//! (also part of `cargo xtask bench`).

mod common;

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::Distribution;
use serde_json::{json, Value};
use synthsae::train::{build_model, sampler_for, Silent, StartedRun};

const GROUP: usize = 5;
const BATCH: usize = common::STEP_BATCH;

/// A value read from `t`, so that the product is really computed.
fn touch(t: Tensor<Flex, 2>) -> f32 {
    t.slice([0..1, 0..1]).into_scalar()
}

/// One member's training step, in milliseconds (best round).
fn step_ms(model: &Value, sae: &Value, lr: f64, rounds: usize, reps: usize) -> f64 {
    let device = Default::default();
    let cfg = common::step_config(model, sae, lr, rounds * reps);
    let synthetic = build_model::<Flex>(&cfg.synthetic_model, &device).expect("model");
    let batch = sampler_for(&cfg, &synthetic).train_batch(0).expect("batch");
    let mut run =
        StartedRun::<Autodiff<Flex>>::start(cfg, &synthetic, &device, None).expect("start");
    common::best_ms(rounds, reps, || {
        run.step(batch.clone(), &mut Silent).expect("step");
    })
}

#[allow(clippy::too_many_arguments)]
fn shape(
    name: &str,
    d_in: usize,
    d_sae: usize,
    weight_grad: bool,
    step: f64,
    rounds: usize,
    reps: usize,
) {
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<Flex, 2>::random([BATCH, d_in], normal, &device);
    let ws: Vec<_> = (0..GROUP)
        .map(|_| Tensor::<Flex, 2>::random([d_in, d_sae], normal, &device))
        .collect();
    let gs: Vec<_> = (0..GROUP)
        .map(|_| Tensor::<Flex, 2>::random([BATCH, d_sae], normal, &device))
        .collect();
    let w_cat = Tensor::cat(ws.clone(), 1);
    let g_cat = Tensor::cat(gs.clone(), 1);
    let xt = x.clone().transpose();
    let sep = common::best_ms(rounds, reps, || {
        for (w, g) in ws.iter().zip(&gs) {
            std::hint::black_box(touch(x.clone().matmul(w.clone())));
            if weight_grad {
                std::hint::black_box(touch(xt.clone().matmul(g.clone())));
            }
        }
    });
    let cat = common::best_ms(rounds, reps, || {
        std::hint::black_box(touch(x.clone().matmul(w_cat.clone())));
        if weight_grad {
            std::hint::black_box(touch(xt.clone().matmul(g_cat.clone())));
        }
    });
    let cat_split = common::best_ms(rounds, reps, || {
        let wide = x.clone().matmul(w_cat.clone());
        for i in 0..GROUP {
            let block = wide.clone().slice([0..BATCH, i * d_sae..(i + 1) * d_sae]);
            // A member's forward reads its block as its own contiguous tensor.
            std::hint::black_box(touch(block + 0.0));
        }
        if weight_grad {
            std::hint::black_box(touch(xt.clone().matmul(g_cat.clone())));
        }
    });
    let flops = (if weight_grad { 4.0 } else { 2.0 }) * (GROUP * BATCH * d_in * d_sae) as f64;
    let gflops = |ms: f64| flops / (ms * 1e-3) / 1e9;
    let g = sep / (GROUP as f64 * step);
    let r = cat / sep;
    let bound = 1.0 / (1.0 - g * (1.0 - r));
    println!(
        "{name:<24} {sep:>9.3} {cat:>9.3} {cat_split:>9.3} {:>8.1} {:>8.1} {step:>9.3} {g:>6.3} \
         {r:>6.3} {bound:>6.3}",
        gflops(sep),
        gflops(cat),
    );
    println!("RESULT\t{name}\t{sep}\t{cat}\t{cat_split}\t{step}\t{g}\t{r}\t{bound}");
}

fn main() {
    synthsae::alloc_tuning::keep_large_buffers();
    let args = common::Args::from_env();
    let rounds = args.count("--rounds", 5);
    let reps = args.count("--reps", 20);
    println!(
        "{GROUP} encoder products against one over the concatenated encoders (batch {BATCH}; \
         ms per group, best of {rounds} × {reps})\n\
         {:<24} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>6} {:>6} {:>6}",
        "shape",
        "5 × sep",
        "cat",
        "cat+split",
        "GF/s sep",
        "GF/s cat",
        "step (1)",
        "g",
        "r",
        "bound"
    );
    let tutorial =
        serde_json::to_value(synthsae::data::preset("tutorial").expect("preset")).expect("json");
    let sae = json!({"architecture": "standard", "d_in": 32, "d_sae": 16, "l1_coefficient": 5e-2});
    let step = step_ms(&tutorial, &sae, 3e-3, rounds, reps);
    shape("quickstart", 32, 16, true, step, rounds, reps);

    let mut big =
        serde_json::to_value(synthsae::data::preset("synthsaebench-16k").expect("preset"))
            .expect("json");
    big["orthogonalization"] = Value::Null;
    let sae = json!({"architecture": "batchtopk", "d_in": 768, "d_sae": 4096, "k": 25});
    let (rounds16, reps16) = (rounds.min(3), reps.min(5));
    let step = step_ms(&big, &sae, 3e-4, rounds16, reps16);
    shape(
        "bench16k_batchtopk4096",
        768,
        4096,
        false,
        step,
        rounds16,
        reps16,
    );
}
