//! Sampling throughput table: samples/s (batch 1024, hidden activations
//! included unless a case says `features_only`) for three fixed
//! configurations at N = 16384 (independent firing, a rank-25 copula, the
//! SynthSAEBench-16k preset) and the SynthSAEBench generation shape swept
//! over N = 128·2^i. `docs/benchmarks.md` describes each case and holds the
//! current figures.
//!
//! Run: `cargo bench --bench sampling_scale [-- --max-n N --secs S
//! --batches B --only CASE]` (or
//! `cargo xtask bench`, which adds sae-lens's figures). Each figure is the
//! best of three timed windows of at least `--secs` seconds (default 1).
//! Besides the human table, every figure is printed as a line
//! `RESULT\t<case>\t<N>\t<samples/s>\t<mean L0>\t<peak RSS MiB>` for tools.
//!
//! Scale shape (hidden 768): a hierarchy of `max(1, N/128)` roots, branching 4,
//! `max_depth` 3, mutual exclusion everywhere, compensated probabilities,
//! children scaled by their parent; Zipfian firing (exponent 0.5,
//! `max_prob = min(0.4, 0.4·√(16384/N))`, `min_prob = 5e-4 · 16384 / N`: the
//! SynthSAEBench-16k probabilities at N = 16384, and the same total firing
//! mass, hence mean L0 ≈ 35, for every larger N);
//! magnitudes mean 4.5, std 0.5; random unit feature vectors, bias norm 0.5.
//! Orthogonalisation is skipped: sampling reads the feature vectors only
//! through the gather-sum, whose cost does not depend on their values.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use synthsae::data::{
    generate_hierarchy, generate_random_low_rank_correlation_matrix, preset, sample_rng,
    zipfian_firing_probabilities, ActivationGenerator, BranchingFactor, ChaChaSource, Correlation,
    HierarchyConfig, HierarchyModifier, HostFeatureDictionary, RandomSource, SyntheticModel,
};

const D: usize = 768;
const BATCH: usize = 1024;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Best samples/s over three windows of at least `secs` (or of exactly
/// `fixed` batches each), and the mean L0.
fn measure(
    generator: &ActivationGenerator,
    dict: Option<&HostFeatureDictionary>,
    secs: f64,
    fixed: Option<usize>,
) -> (f64, f64) {
    let mut rng = sample_rng(Some(0));
    let mut hidden = vec![0.0f32; BATCH * D];
    let mut step = |nnz: &mut usize| {
        let batch = generator.sample(BATCH, &mut rng);
        *nnz += batch.nnz();
        if let Some(d) = dict {
            d.forward_sparse_into(&batch, &mut hidden).expect("shapes");
        }
    };
    let mut nnz = 0;
    for _ in 0..2 {
        step(&mut nnz);
    }
    let (mut best, mut entries, mut rows) = (0.0f64, 0usize, 0usize);
    for _ in 0..3 {
        let start = Instant::now();
        let mut batches = 0;
        let mut nnz = 0;
        while match fixed {
            Some(n) => batches < n,
            None => batches < 3 || start.elapsed() < Duration::from_secs_f64(secs),
        } {
            step(&mut nnz);
            batches += 1;
        }
        let rate = (batches * BATCH) as f64 / start.elapsed().as_secs_f64();
        best = best.max(rate);
        entries += nnz;
        rows += batches * BATCH;
    }
    (best, entries as f64 / rows as f64)
}

fn report(case: &str, n: usize, rate: f64, l0: f64) {
    let rss = peak_rss_mib();
    println!("| {case:<34} | {n:>9} | {rate:>12.0} | {l0:>7.1} | {rss:>9.0} |");
    println!("RESULT\t{case}\t{n}\t{rate:.0}\t{l0:.2}\t{rss:.0}");
}

/// Random unit feature vectors `[N, D]` and a bias of norm 0.5, drawn in
/// parallel from ChaCha streams (fast enough for N = 2^20).
fn random_dictionary(n: usize, seed: u64) -> HostFeatureDictionary {
    let mut f = vec![0.0f32; n * D];
    f.par_chunks_mut(D * 1024)
        .enumerate()
        .for_each(|(blk, chunk)| {
            ChaChaSource::new(Some(seed ^ ((blk as u64) << 20))).fill_normal(chunk);
            for row in chunk.chunks_exact_mut(D) {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                row.iter_mut().for_each(|v| *v /= norm);
            }
        });
    let mut bias: Vec<f32> = (0..D).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
    let norm = bias.iter().map(|v| v * v).sum::<f32>().sqrt();
    bias.iter_mut().for_each(|v| *v *= 0.5 / norm);
    HostFeatureDictionary::new(f, bias, n, D).expect("shapes")
}

/// The SynthSAEBench generation shape at `n` features (see the module docs).
fn scale_generator(n: usize) -> ActivationGenerator {
    let hcfg = HierarchyConfig {
        total_root_nodes: (n / 128).max(1),
        branching_factor: BranchingFactor::Exact(4),
        max_depth: 3,
        mutually_exclusive_portion: 1.0,
        compensate_probabilities: true,
        scale_children_by_parent: true,
        ..Default::default()
    };
    let h = generate_hierarchy(n, &hcfg, Some(45)).expect("hierarchy");
    // Zipf mass is ≈ N·min + max·√N: scaling min by 16384/N and max by
    // √(16384/N) (capped at SynthSAEBench's 0.4) keeps it, and so the mean
    // L0, at the SynthSAEBench-16k value for every N ≥ 16384.
    let ratio = 16384.0 / n as f64;
    let max_prob = (0.4 * ratio.sqrt()).min(0.4);
    let min_prob = (5e-4 * ratio).min(0.2);
    let base = zipfian_firing_probabilities(n, 0.5, max_prob, min_prob).expect("zipf");
    let (p, _, _) = h.compensate(&base).expect("compensation");
    ActivationGenerator::new(n, p, 0.5f32, 4.5f32)
        .expect("generator")
        .with_hierarchy(Arc::new(HierarchyModifier::new(h, n).expect("modifier")))
        .expect("modifier")
}

/// The `synthsaebench-16k` preset without orthogonalisation (faster to
/// build; sampling does not depend on it).
fn synthsaebench_16k() -> SyntheticModel<burn::backend::Flex> {
    let mut cfg = preset("synthsaebench-16k").expect("preset");
    cfg.orthogonalization = None;
    SyntheticModel::new(cfg, &Default::default()).expect("model")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let max_n = arg("--max-n").map_or(1 << 20, |v| v as usize);
    let secs = arg("--secs").unwrap_or(1.0);
    // Fixed work per window, so that `perf stat` counts the same work in
    // every run whatever the wall clock does.
    let fixed = arg("--batches").map(|v| v as usize);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let wanted = |case: &str| only.as_deref().is_none_or(|o| case.contains(o));
    println!(
        "threads: {}, batch {BATCH}, D {D}, best of 3 windows ≥ {secs} s",
        rayon::current_num_threads()
    );
    println!("| case                               |         N |    samples/s | mean L0 | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|");

    let n = 16_384;
    if wanted("independent") || wanted("low_rank_25") {
        let dict = random_dictionary(n, 42);
        let probs = zipfian_firing_probabilities(n, 0.5, 0.4, 5e-4).expect("zipf");
        let independent = ActivationGenerator::new(n, probs, 0.5f32, 4.5f32).expect("gen");
        if wanted("independent") {
            let (r, l0) = measure(&independent, None, secs, fixed);
            report("independent/features_only", n, r, l0);
            let (r, l0) = measure(&independent, Some(&dict), secs, fixed);
            report("independent/with_hidden", n, r, l0);
        }
        if wanted("low_rank_25") {
            let low_rank = independent
                .with_correlation(Correlation::LowRank(
                    generate_random_low_rank_correlation_matrix(n, 25, 0.1, Some(46))
                        .expect("corr"),
                ))
                .expect("corr");
            let (r, l0) = measure(&low_rank, Some(&dict), secs, fixed);
            report("low_rank_25/with_hidden", n, r, l0);
        }
    }
    if only.as_deref() == Some("gather") {
        // Diagnostic: the gather-sum alone on a batch of the independent
        // case, and on a batch with the same L0 whose features all lie in
        // the first 1024 rows of the dictionary (cache-resident).
        let dict = random_dictionary(n, 42);
        let full = zipfian_firing_probabilities(n, 0.5, 0.4, 5e-4).expect("zipf");
        let mut hot = vec![1e-9f32; n];
        let l0: f64 = full.iter().map(|&p| p as f64).sum();
        for (j, p) in hot.iter_mut().take(1024).enumerate() {
            *p = (l0 / 1024.0) as f32 * (1.0 + (j % 7) as f32 * 0.01);
        }
        for (name, p) in [("gather/full", full), ("gather/hot1024", hot)] {
            let g = ActivationGenerator::new(n, p, 0.5f32, 4.5f32).expect("gen");
            let batch = g.sample(BATCH, &mut sample_rng(Some(1)));
            let mut hidden = vec![0.0f32; BATCH * D];
            let mut best = 0.0f64;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..50 {
                    dict.forward_sparse_into(&batch, &mut hidden)
                        .expect("shapes");
                }
                best = best.max(50.0 * BATCH as f64 / t.elapsed().as_secs_f64());
            }
            report(name, n, best, batch.nnz() as f64 / BATCH as f64);
        }
        // The gather alone on eight SynthSAEBench-16k batches, in turn.
        let model = synthsaebench_16k();
        let mut rng = sample_rng(Some(1));
        let batches: Vec<_> = (0..8)
            .map(|_| model.generator().sample(BATCH, &mut rng))
            .collect();
        let dict = model.host_dictionary();
        let mut hidden = vec![0.0f32; BATCH * D];
        let mut best = 0.0f64;
        for _ in 0..5 {
            let t = Instant::now();
            for batch in batches.iter().cycle().take(48) {
                dict.forward_sparse_into(batch, &mut hidden)
                    .expect("shapes");
            }
            best = best.max(48.0 * BATCH as f64 / t.elapsed().as_secs_f64());
        }
        let l0 = batches.iter().map(|b| b.nnz()).sum::<usize>() as f64 / (8 * BATCH) as f64;
        report("gather/synthsaebench_16k", n, best, l0);
    }
    if wanted("synthsaebench_16k") {
        let model = synthsaebench_16k();
        let (r, l0) = measure(
            model.generator(),
            Some(model.host_dictionary()),
            secs,
            fixed,
        );
        report("synthsaebench_16k/with_hidden", n, r, l0);
        let (r, l0) = measure(model.generator(), None, secs, fixed);
        report("synthsaebench_16k/features_only", n, r, l0);
    }
    if wanted("scale") {
        let mut n = 128;
        while n <= max_n {
            let generator = scale_generator(n);
            let dict = random_dictionary(n, 7);
            let (r, l0) = measure(&generator, Some(&dict), secs, fixed);
            report("scale/with_hidden", n, r, l0);
            drop(dict);
            n *= 2;
        }
    }
}
