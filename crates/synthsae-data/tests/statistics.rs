//! Statistical tests of the sampler. Fixed seeds; every tolerance is a
//! multiple (≥ 5) of the standard error of the estimate it bounds, stated
//! next to the assertion, so a failure means a real bias, not noise.

use statrs::distribution::{Continuous, ContinuousCDF, Normal};
use synthsae_data::{
    correlation_threshold, create_correlation_matrix_from_correlations,
    generate_random_low_rank_correlation_matrix, sample_rng, zipfian_firing_probabilities,
    ActivationGenerator, Correlation, SparseBatch,
};

/// Draws `rows` samples in batches of 1024.
fn draw(g: &ActivationGenerator, rows: usize, seed: u64) -> Vec<SparseBatch> {
    let mut rng = sample_rng(Some(seed));
    let mut out = Vec::new();
    let mut left = rows;
    while left > 0 {
        let b = left.min(1024);
        out.push(g.sample(b, &mut rng));
        left -= b;
    }
    out
}

fn firing_counts(batches: &[SparseBatch], n: usize) -> Vec<u64> {
    let mut c = vec![0u64; n];
    for b in batches {
        for &f in b.feature_indices() {
            c[f as usize] += 1;
        }
    }
    c
}

fn co_firing(batches: &[SparseBatch], i: u32, j: u32) -> u64 {
    batches
        .iter()
        .flat_map(|b| b.rows())
        .filter(|(idx, _)| idx.binary_search(&i).is_ok() && idx.binary_search(&j).is_ok())
        .count() as u64
}

/// Binomial rate check: |k/n − p| ≤ 5 · sqrt(p(1 − p)/n).
fn assert_rate(k: u64, n: usize, p: f64, what: &str) {
    let se = (p * (1.0 - p) / n as f64).sqrt();
    let got = k as f64 / n as f64;
    assert!(
        (got - p).abs() <= 5.0 * se,
        "{what}: rate {got:.5} vs expected {p:.5} (5σ = {:.5})",
        5.0 * se
    );
}

/// P(X > a, Y > b) for standard bivariate normal with correlation ρ:
/// ∫_a^∞ φ(x) Φ̄((b − ρx)/√(1 − ρ²)) dx by composite Simpson on [a, a + 12].
fn orthant(a: f64, b: f64, rho: f64) -> f64 {
    let nrm = Normal::standard();
    let s = (1.0 - rho * rho).sqrt();
    let f = |x: f64| nrm.pdf(x) * (1.0 - nrm.cdf((b - rho * x) / s));
    let (lo, hi, m) = (a, a + 12.0, 20_000);
    let h = (hi - lo) / m as f64;
    let mut acc = f(lo) + f(hi);
    for k in 1..m {
        acc += f(lo + k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
    }
    acc * h / 3.0
}

#[test]
fn orthant_probability_sanity() {
    // Independent: product of marginals; ρ = 0.5 at 0: 1/4 + asin(0.5)/(2π) = 1/3.
    assert!((orthant(1.0, 0.5, 0.0) - 0.158655 * 0.308538).abs() < 1e-6);
    assert!((orthant(0.0, 0.0, 0.5) - 1.0 / 3.0).abs() < 1e-6);
}

#[test]
fn independent_firing_rates_match_probabilities() {
    let n = 200;
    let p = zipfian_firing_probabilities(n, 1.0, 0.3, 0.01).unwrap();
    let g = ActivationGenerator::new(n, p.clone(), 0.0f32, 1.0f32).unwrap();
    let rows = 200_000;
    let batches = draw(&g, rows, 1);
    let counts = firing_counts(&batches, n);
    for (j, (&k, &pj)) in counts.iter().zip(&p).enumerate() {
        assert_rate(k, rows, pj as f64, &format!("feature {j}"));
    }
    // Co-firing of two independent features is the product of their rates.
    let q = p[0] as f64 * p[1] as f64;
    assert_rate(
        co_firing(&batches, 0, 1),
        rows,
        q,
        "independent pair (0, 1)",
    );
    // Mean L0 = Σ p; its standard error is sqrt(Σ p(1−p) / rows).
    let l0: usize = batches.iter().map(|b| b.nnz()).sum();
    let want: f64 = p.iter().map(|&x| x as f64).sum();
    let se = (p.iter().map(|&x| x as f64 * (1.0 - x as f64)).sum::<f64>() / rows as f64).sqrt();
    let got = l0 as f64 / rows as f64;
    assert!((got - want).abs() < 5.0 * se, "L0 {got} vs {want}");
}

#[test]
fn magnitude_moments_match() {
    // mean 2, std 0.5: relu clips at 4σ below the mean (probability 3e-5),
    // which shifts the mean by < 1e-6, far inside the tolerance.
    let n = 4;
    let g = ActivationGenerator::new(
        n,
        0.5f32,
        vec![0.5, 0.1, 0.5, 0.0],
        vec![2.0, 1.0, 3.0, 1.5],
    )
    .unwrap();
    let batches = draw(&g, 100_000, 2);
    for (j, (m, s)) in [(2.0, 0.5), (1.0, 0.1), (3.0, 0.5), (1.5, 0.0)]
        .into_iter()
        .enumerate()
    {
        let vals: Vec<f64> = batches
            .iter()
            .flat_map(|b| {
                b.feature_indices()
                    .iter()
                    .zip(b.values())
                    .filter(move |(&f, _)| f as usize == j)
            })
            .map(|(_, &v)| v as f64)
            .collect();
        let k = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / k;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
        if s == 0.0 {
            assert!(
                vals.iter().all(|&v| v == m),
                "std 0 must give exactly the mean"
            );
            continue;
        }
        // SE of the mean: s/√k; SE of the sample std (normal data): s/√(2k).
        assert!(
            (mean - m).abs() < 5.0 * s / k.sqrt(),
            "feature {j}: mean {mean} vs {m}"
        );
        assert!(
            (sd - s).abs() < 5.0 * s / (2.0 * k).sqrt(),
            "feature {j}: std {sd} vs {s}"
        );
    }
}

/// Checks marginal rates and the co-firing rate of the most correlated pairs
/// against the bivariate-normal orthant probability.
fn check_copula(
    g: &ActivationGenerator,
    corr: impl Fn(usize, usize) -> f64,
    rows: usize,
    seed: u64,
) {
    let n = g.num_features();
    let p = g.firing_probabilities().to_vec();
    let batches = draw(g, rows, seed);
    let counts = firing_counts(&batches, n);
    for j in 0..n {
        assert_rate(
            counts[j],
            rows,
            p[j] as f64,
            &format!("copula marginal {j}"),
        );
    }
    let mut pairs: Vec<(usize, usize, f64)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .map(|(i, j)| (i, j, corr(i, j)))
        .collect();
    pairs.sort_by(|a, b| b.2.abs().total_cmp(&a.2.abs()));
    for &(i, j, rho) in pairs.iter().take(6) {
        let (ti, tj) = (
            correlation_threshold(p[i]) as f64,
            correlation_threshold(p[j]) as f64,
        );
        let q = orthant(ti, tj, rho);
        let indep = p[i] as f64 * p[j] as f64;
        // The pair must actually be correlated enough to be distinguishable.
        assert!(
            (q - indep).abs() > 10.0 * (q * (1.0 - q) / rows as f64).sqrt(),
            "weak pair ρ={rho}"
        );
        assert_rate(
            co_firing(&batches, i as u32, j as u32),
            rows,
            q,
            &format!("pair ({i}, {j}) ρ={rho:.3}"),
        );
    }
}

#[test]
fn low_rank_copula_co_firing_matches_orthant_probability() {
    let n = 24;
    let lr = generate_random_low_rank_correlation_matrix(n, 2, 0.6, Some(5)).unwrap();
    let p = zipfian_firing_probabilities(n, 0.5, 0.4, 0.05).unwrap();
    let g = ActivationGenerator::new(n, p, 0.0f32, 1.0f32)
        .unwrap()
        .with_correlation(Correlation::LowRank(lr.clone()))
        .unwrap();
    check_copula(&g, |i, j| lr.correlation(i, j) as f64, 150_000, 3);
}

#[test]
fn dense_copula_co_firing_matches_orthant_probability() {
    let n = 8;
    let pairs = [
        ((0, 1), 0.7),
        ((2, 3), -0.6),
        ((1, 4), 0.5),
        ((5, 6), 0.8),
        ((0, 7), -0.4),
        ((3, 6), 0.3),
    ];
    let m = create_correlation_matrix_from_correlations(n, &pairs, 0.0).unwrap();
    let g = ActivationGenerator::new(
        n,
        vec![0.3, 0.2, 0.25, 0.15, 0.1, 0.35, 0.2, 0.3],
        0.0f32,
        1.0f32,
    )
    .unwrap()
    .with_correlation(Correlation::Dense(m.clone()))
    .unwrap();
    check_copula(&g, |i, j| m.get(i, j) as f64, 150_000, 4);
}

#[test]
fn parent_first_copula_sampling_matches_fire_then_filter() {
    // With a hierarchy as the first modifier the copula sampler skips children
    // of parents that did not fire. Placing a no-op modifier first disables
    // that shortcut; both must give the same distribution: per-feature rates
    // and parent/child co-firing agree within 5σ of the two-sample error.
    use std::sync::Arc;
    use synthsae_data::{
        generate_hierarchy, BranchingFactor, FnModifier, HierarchyConfig, HierarchyModifier,
    };
    let n = 120;
    let hcfg = HierarchyConfig {
        total_root_nodes: 6,
        branching_factor: BranchingFactor::Range(2, 4),
        max_depth: 3,
        mutually_exclusive_portion: 0.5,
        compensate_probabilities: true,
        scale_children_by_parent: true,
        ..Default::default()
    };
    let h = generate_hierarchy(n, &hcfg, Some(7)).unwrap();
    let base = zipfian_firing_probabilities(n, 0.5, 0.4, 0.02).unwrap();
    let (p, _, _) = h.compensate(&base).unwrap();
    let lr = generate_random_low_rank_correlation_matrix(n, 4, 0.3, Some(2)).unwrap();
    let make = |noop_first: bool| {
        let mut g = ActivationGenerator::new(n, p.clone(), 0.2f32, vec![1.5f32; n])
            .unwrap()
            .with_correlation(Correlation::LowRank(lr.clone()))
            .unwrap();
        if noop_first {
            g = g
                .with_modifier(Arc::new(FnModifier::new("noop", |_, _, _| {})))
                .unwrap();
        }
        g.with_modifier(Arc::new(HierarchyModifier::new(h.clone(), n).unwrap()))
            .unwrap()
    };
    let rows = 100_000;
    let (fast, slow) = (draw(&make(false), rows, 11), draw(&make(true), rows, 12));
    let (cf, cs) = (firing_counts(&fast, n), firing_counts(&slow, n));
    for f in 0..n {
        let (a, b) = (cf[f] as f64 / rows as f64, cs[f] as f64 / rows as f64);
        let q = (a + b) / 2.0;
        let se = (q * (1.0 - q) * 2.0 / rows as f64)
            .sqrt()
            .max(1.0 / rows as f64);
        assert!((a - b).abs() <= 5.0 * se, "feature {f}: {a:.4} vs {b:.4}");
    }
    let root = h.roots[0].feature_index.unwrap() as u32;
    let child = h.roots[0].children[0].feature_index.unwrap() as u32;
    let (a, b) = (
        co_firing(&fast, root, child) as f64 / rows as f64,
        co_firing(&slow, root, child) as f64 / rows as f64,
    );
    let se = ((a + b) / 2.0 * (1.0 - (a + b) / 2.0) * 2.0 / rows as f64).sqrt();
    assert!((a - b).abs() <= 5.0 * se, "co-firing {a} vs {b}");
}
