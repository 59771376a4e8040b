//! One stream, many SAEs: a group of 5 SAEs trained on one sampled stream
//! (`synthsae::train::run_group`) against the same 5 configs trained one
//! after another (`synthsae::train::run`), on the default CPU backend
//! (`Autodiff<Flex>`), outputs and evaluations off, at two shapes:
//!
//! * `quickstart`: the tutorial model (16 features × 32 dims) with the
//!   quickstart's SAE (standard, 16 latents, l1 5e-2), 1M samples per run;
//! * `bench16k_batchtopk4096`: the SynthSAEBench-16k preset (orthogonalisation
//!   skipped: it does not change the cost of sampling or training) with a
//!   width-4096 BatchTopK SAE, k 25, 60 batches per run.
//!
//! The 5 configs differ in their initialisation seed and share the data
//! seed. `s` is the share of a solo run's wall time that its sampling costs:
//! `1 − t_train / t_solo`, where `t_train` is the same 5 runs fed batches
//! sampled beforehand (`StartedRun` steps on batches in memory). A solo run
//! samples on a prefetch thread while it trains, so on 2 cores much of the
//! sampling is hidden and `s` is below the serial share `s_serial` (sampling
//! alone, on the calling thread, over the solo time; printed too). Sharing
//! the stream can at best remove 4 of every 5 samplings, so the aggregate
//! gain is bounded by `1 / (1 − s·(1 − 1/5))` when the members train one
//! after another (`run_group_in_order`). `run_group` also trains the members
//! of a step in parallel, which goes past that bound. Printed per shape
//! (seconds): solo (sum of 5), train-only, the group in order, the group;
//! then `s_serial`, `s`, the bound, the in-order gain and its share of the
//! bound, and the group's gain. Each round times the five in turn; each figure
//! is its best of `--rounds` (default 2).
//!
//! Run: `cargo bench --bench sweep_group [-- --rounds R --only SHAPE]`, SHAPE
//! one of `quickstart`, `bench16k_batchtopk4096`.
//! (also part of `cargo xtask bench`).

use std::time::Instant;

mod common;

use burn::backend::{Autodiff, Flex};
use serde_json::{json, Value};
use synthsae::train::{
    build_model, run, run_group, run_group_in_order, sampler_for, GroupMember, RunnerConfig,
    Silent, StartedRun,
};

type B = Autodiff<Flex>;

const GROUP: usize = 5;

fn configs(model: &Value, sae: &Value, samples: u64, lr: f64) -> Vec<RunnerConfig> {
    (0..GROUP as u64)
        .map(|seed| {
            RunnerConfig::from_value(json!({
                "synthetic_model": model,
                "sae": sae,
                "training_samples": samples,
                "batch_size": 1024,
                "lr": lr,
                "eval_samples": 0,
                "run_final_eval": false,
                "output_path": null,
                "checkpoint_path": null,
                "seed": seed,
                "data_seed": 42,
            }))
            .expect("valid runner config")
        })
        .collect()
}

/// Seconds `f` takes.
fn timed<T>(f: impl FnOnce() -> T) -> f64 {
    let t = Instant::now();
    std::hint::black_box(f());
    t.elapsed().as_secs_f64()
}

fn shape(name: &str, cfgs: Vec<RunnerConfig>, rounds: usize) {
    let device = Default::default();
    let model = build_model::<Flex>(&cfgs[0].synthetic_model, &device).expect("model");
    let steps = cfgs[0].training_samples.div_ceil(cfgs[0].batch_size as u64);
    let sampler = sampler_for(&cfgs[0], &model);
    let batches: Vec<_> = (0..steps)
        .map(|i| sampler.train_batch(i).expect("batch"))
        .collect();
    let members = || -> Vec<GroupMember> {
        cfgs.iter()
            .map(|c| GroupMember {
                cfg: c.clone(),
                resume: None,
            })
            .collect()
    };
    let total = |rs: Vec<synthsae::train::Result<synthsae::train::RunnerResult<B>>>| {
        rs.into_iter()
            .map(|r| r.expect("member").n_training_samples)
            .sum::<u64>()
    };
    // Rounds interleave the five measurements, so that a slow phase of a
    // shared machine touches all of them; each figure is its best round.
    let mut best = [f64::INFINITY; 5];
    for _ in 0..rounds {
        let times = [
            timed(|| {
                (0..steps)
                    .map(|i| sampler.train_batch(i).expect("batch").features.nnz())
                    .sum::<usize>()
            }),
            timed(|| {
                cfgs.iter()
                    .map(|c| {
                        run::<B>(c.clone(), &model, &device, None, &mut Silent)
                            .expect("training")
                            .n_training_samples
                    })
                    .sum::<u64>()
            }),
            timed(|| {
                cfgs.iter()
                    .map(|c| {
                        let mut r = StartedRun::<B>::start(c.clone(), &model, &device, None)
                            .expect("start");
                        for b in &batches {
                            r.step(b.clone(), &mut Silent).expect("step");
                        }
                        r.finish(&mut Silent).expect("finish").n_training_samples
                    })
                    .sum::<u64>()
            }),
            timed(|| {
                total(
                    run_group_in_order::<B>(members(), &model, &device, &mut Silent)
                        .expect("group"),
                )
            }),
            timed(|| {
                total(run_group::<B>(members(), &model, &device, &mut Silent).expect("group"))
            }),
        ];
        for (b, t) in best.iter_mut().zip(times) {
            *b = b.min(t);
        }
    }
    let [sampling, solo, train_only, in_order, group] = best;
    let s_serial = sampling / (solo / GROUP as f64);
    let s = (1.0 - train_only / solo).max(0.0);
    let bound = 1.0 / (1.0 - s * (1.0 - 1.0 / GROUP as f64));
    let gain_in_order = solo / in_order;
    let gain = solo / group;
    println!(
        "{name:<24} {steps:>5} {solo:>7.2} {train_only:>7.2} {in_order:>8.2} {group:>7.2} \
         {s_serial:>8.3} {s:>6.3} {bound:>6.3} {gain_in_order:>8.3} {:>7.1}% {gain:>7.3}",
        100.0 * gain_in_order / bound
    );
    println!(
        "RESULT\t{name}\t{solo}\t{train_only}\t{in_order}\t{group}\t{s_serial}\t{s}\t{bound}\t\
         {gain_in_order}\t{gain}"
    );
}

fn main() {
    synthsae::alloc_tuning::keep_large_buffers();
    let args = common::Args::from_env();
    let rounds = args.count("--rounds", 2);
    let only = args.value("--only");
    const SHAPES: [&str; 2] = ["quickstart", "bench16k_batchtopk4096"];
    if let Some(o) = only.as_deref().filter(|o| !SHAPES.contains(o)) {
        common::fail(&format!(
            "--only: unknown shape `{o}` (shapes: {})",
            SHAPES.join(", ")
        ));
    }
    println!(
        "{GROUP} SAEs on one stream against {GROUP} solo runs (best of {rounds}; seconds)\n\
         {:<24} {:>5} {:>7} {:>7} {:>8} {:>7} {:>8} {:>6} {:>6} {:>8} {:>8} {:>7}",
        "shape",
        "steps",
        "solo×5",
        "train×5",
        "in order",
        "group",
        "s_serial",
        "s",
        "bound",
        "gain (in order)",
        "of bound",
        "gain"
    );
    let want = |n: &str| only.as_deref().is_none_or(|o| o == n);
    if want("quickstart") {
        let model = serde_json::to_value(synthsae::data::preset("tutorial").expect("preset"))
            .expect("json");
        let sae =
            json!({"architecture": "standard", "d_in": 32, "d_sae": 16, "l1_coefficient": 5e-2});
        shape("quickstart", configs(&model, &sae, 1_048_576, 3e-3), rounds);
    }
    if want("bench16k_batchtopk4096") {
        let mut model =
            serde_json::to_value(synthsae::data::preset("synthsaebench-16k").expect("preset"))
                .expect("json");
        model["orthogonalization"] = Value::Null;
        let sae = json!({"architecture": "batchtopk", "d_in": 768, "d_sae": 4096, "k": 25});
        shape(
            "bench16k_batchtopk4096",
            configs(&model, &sae, 60 * 1024, 3e-4),
            rounds,
        );
    }
}
