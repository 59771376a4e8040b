//! Statistical tests of the sampler. Fixed seeds; every tolerance is a
//! multiple (≥ 5) of the standard error of the estimate it bounds, stated
//! next to the assertion, so a failure means a real bias, not noise.

use statrs::distribution::{Continuous, ContinuousCDF, Normal};
use synthsae_data::{
    correlation_threshold, create_correlation_matrix_from_correlations,
    generate_random_low_rank_correlation_matrix, sample_rng, zipfian_firing_probabilities,
    ActivationGenerator, Correlation, Csr,
};

/// Draws `rows` samples in batches of 1024.
fn draw(g: &ActivationGenerator, rows: usize, seed: u64) -> Vec<Csr> {
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

fn firing_counts(batches: &[Csr], n: usize) -> Vec<u64> {
    let mut c = vec![0u64; n];
    for b in batches {
        for &f in b.indices() {
            c[f as usize] += 1;
        }
    }
    c
}

fn co_firing(batches: &[Csr], i: u32, j: u32) -> u64 {
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
                b.indices()
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
    // With a hierarchy as the first step of the chain (`with_hierarchy`) the
    // copula sampler skips children of parents that did not fire. Placing a
    // no-op modifier first disables that shortcut; both must give the same distribution: per-feature rates
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
        g.with_hierarchy(Arc::new(HierarchyModifier::new(h.clone(), n).unwrap()))
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

// ---------------------------------------------------------------------------
// Sparse sampler vs the dense reference path (`sample_reference`): the two
// must draw from the same distribution. Each check is a two-sample test with
// a tolerance derived from the sampling error of both samples.

fn draw_reference(g: &ActivationGenerator, rows: usize, seed: u64) -> Vec<Csr> {
    let mut rng = sample_rng(Some(seed));
    let mut out = Vec::new();
    let mut left = rows;
    while left > 0 {
        let b = left.min(1024);
        out.push(g.sample_reference(b, &mut rng));
        left -= b;
    }
    out
}

/// Two-sample chi-square threshold: for `df` degrees of freedom the
/// statistic has mean `df` and standard deviation `sqrt(2 df)`; we allow
/// 6 standard deviations (a false alarm is then far below 1e-6 per test).
fn chi2_limit(df: usize) -> f64 {
    df as f64 + 6.0 * (2.0 * df as f64).sqrt()
}

/// Per-feature firing counts, co-firing of the most frequent pairs,
/// magnitude moments of the most frequent features and the L0 histogram.
fn assert_same_distribution(g: &ActivationGenerator, rows: usize, seed: u64, what: &str) {
    let n = g.num_features();
    let fast = draw(g, rows, seed);
    let slow = draw_reference(g, rows, seed + 1000);
    let nr = rows as f64;
    // 1. Firing counts: Σ_j z_j², z_j the two-sample z of feature j's rate,
    //    over features with ≥ 20 pooled firings; ≈ χ²(k).
    let (ca, cb) = (firing_counts(&fast, n), firing_counts(&slow, n));
    let (mut stat, mut k) = (0.0, 0);
    for j in 0..n {
        let pooled = (ca[j] + cb[j]) as f64;
        if pooled < 20.0 {
            continue;
        }
        let q = pooled / (2.0 * nr);
        let var = q * (1.0 - q) * 2.0 / nr;
        let d = (ca[j] as f64 - cb[j] as f64) / nr;
        stat += if var > 0.0 { d * d / var } else { 0.0 };
        k += 1;
    }
    assert!(k > 0, "{what}: nothing fired");
    assert!(
        stat <= chi2_limit(k),
        "{what}: firing counts χ² {stat:.1} > {:.1} (k = {k})",
        chi2_limit(k)
    );
    // 2. Co-firing of the 8 most frequent pairs among the 16 most frequent
    //    features: |z| ≤ 5 each.
    let mut top: Vec<usize> = (0..n).collect();
    top.sort_by_key(|&j| std::cmp::Reverse(ca[j] + cb[j]));
    top.truncate(16);
    let mut pairs = Vec::new();
    for (a, &i) in top.iter().enumerate() {
        for &j in &top[a + 1..] {
            let (x, y) = (
                co_firing(&fast, i as u32, j as u32),
                co_firing(&slow, i as u32, j as u32),
            );
            pairs.push((x + y, i, j, x, y));
        }
    }
    pairs.sort_by_key(|p| std::cmp::Reverse(p.0));
    for &(sum, i, j, x, y) in pairs.iter().take(8) {
        let q = sum as f64 / (2.0 * nr);
        let se = (q * (1.0 - q) * 2.0 / nr).sqrt().max(1.0 / nr);
        let d = (x as f64 - y as f64) / nr;
        assert!(
            d.abs() <= 5.0 * se,
            "{what}: co-firing ({i}, {j}) {x} vs {y} (5σ = {:.0})",
            5.0 * se * nr
        );
    }
    // 3. Magnitudes of the 8 most frequent features: mean and second moment,
    //    |Δ| ≤ 5 · sqrt(var_a/n_a + var_b/n_b).
    let values = |bs: &[Csr], f: u32| -> Vec<f64> {
        bs.iter()
            .flat_map(|b| {
                b.indices()
                    .iter()
                    .zip(b.values())
                    .filter(move |(&g, _)| g == f)
                    .map(|(_, &v)| v as f64)
            })
            .collect()
    };
    for &f in top.iter().take(8) {
        let (va, vb) = (values(&fast, f as u32), values(&slow, f as u32));
        for power in [1, 2] {
            let m = |v: &[f64]| {
                let xs: Vec<f64> = v.iter().map(|x| x.powi(power)).collect();
                let mean = xs.iter().sum::<f64>() / xs.len() as f64;
                let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
                (mean, var / xs.len() as f64)
            };
            let ((ma, sa), (mb, sb)) = (m(&va), m(&vb));
            let tol = 5.0 * (sa + sb).sqrt() + 1e-12;
            assert!(
                (ma - mb).abs() <= tol,
                "{what}: feature {f} moment {power}: {ma:.4} vs {mb:.4} (5σ = {tol:.4})"
            );
        }
    }
    // 4. L0 histogram: bins merged so that every pooled bin has ≥ 20 rows;
    //    Σ (a − b)² / (a + b) ≈ χ²(bins − 1) for equal totals.
    let hist = |bs: &[Csr]| {
        let mut h = vec![0u64; n + 1];
        for b in bs {
            for l in b.row_l0() {
                h[l] += 1;
            }
        }
        h
    };
    let (ha, hb) = (hist(&fast), hist(&slow));
    let mut bins: Vec<(u64, u64)> = Vec::new();
    let (mut a, mut b) = (0, 0);
    for l in 0..=n {
        a += ha[l];
        b += hb[l];
        if a + b >= 20 {
            bins.push((a, b));
            (a, b) = (0, 0);
        }
    }
    if let Some(last) = bins.last_mut() {
        last.0 += a;
        last.1 += b;
    }
    let stat: f64 = bins
        .iter()
        .map(|&(a, b)| (a as f64 - b as f64).powi(2) / (a + b) as f64)
        .sum();
    let df = bins.len().saturating_sub(1).max(1);
    assert!(
        stat <= chi2_limit(df),
        "{what}: L0 histogram χ² {stat:.1} > {:.1} (df = {df})",
        chi2_limit(df)
    );
}

#[test]
fn sparse_matches_reference_independent() {
    let n = 300;
    let p = zipfian_firing_probabilities(n, 0.7, 0.4, 0.005).unwrap();
    let g = ActivationGenerator::new(n, p, 0.4f32, 2.0f32).unwrap();
    assert_same_distribution(&g, 60_000, 21, "independent");
}

#[test]
fn sparse_matches_reference_dense_copula() {
    let n = 12;
    let pairs = [
        ((0, 1), 0.7),
        ((2, 3), -0.6),
        ((1, 4), 0.5),
        ((5, 6), 0.8),
        ((0, 7), -0.4),
        ((9, 11), 0.6),
    ];
    let m = create_correlation_matrix_from_correlations(n, &pairs, 0.0).unwrap();
    let p: Vec<f32> = (0..n).map(|j| 0.05 + 0.03 * j as f32).collect();
    let g = ActivationGenerator::new(n, p, 0.3f32, 1.5f32)
        .unwrap()
        .with_correlation(Correlation::Dense(m))
        .unwrap();
    assert_same_distribution(&g, 60_000, 22, "dense copula");
}

#[test]
fn sparse_matches_reference_low_rank_strong() {
    // Strong correlation: the Cauchy–Schwarz bound is loose, tiles take the
    // exact-gap path.
    let n = 400;
    let lr = generate_random_low_rank_correlation_matrix(n, 6, 0.3, Some(8)).unwrap();
    let p = zipfian_firing_probabilities(n, 0.6, 0.4, 0.01).unwrap();
    let g = ActivationGenerator::new(n, p, 0.5f32, 3.0f32)
        .unwrap()
        .with_correlation(Correlation::LowRank(lr))
        .unwrap();
    assert_same_distribution(&g, 60_000, 23, "low-rank strong");
}

#[test]
fn sparse_matches_reference_low_rank_weak() {
    // Weak correlation and rare features: most tiles are thinned at the
    // Cauchy–Schwarz bound (no gap computed for them).
    let n = 1024;
    let lr = generate_random_low_rank_correlation_matrix(n, 2, 0.05, Some(9)).unwrap();
    let p = zipfian_firing_probabilities(n, 1.0, 0.3, 0.002).unwrap();
    let g = ActivationGenerator::new(n, p, 0.2f32, 1.0f32)
        .unwrap()
        .with_correlation(Correlation::LowRank(lr))
        .unwrap();
    assert_same_distribution(&g, 60_000, 24, "low-rank weak");
}

fn hierarchy_generator(low_rank: bool) -> ActivationGenerator {
    use std::sync::Arc;
    use synthsae_data::{generate_hierarchy, BranchingFactor, HierarchyConfig, HierarchyModifier};
    let n = 200;
    let hcfg = HierarchyConfig {
        total_root_nodes: 8,
        branching_factor: BranchingFactor::Range(2, 4),
        max_depth: 3,
        mutually_exclusive_portion: 0.6,
        compensate_probabilities: true,
        scale_children_by_parent: true,
        ..Default::default()
    };
    let h = generate_hierarchy(n, &hcfg, Some(17)).unwrap();
    let base = zipfian_firing_probabilities(n, 0.5, 0.4, 0.02).unwrap();
    let (p, _, _) = h.compensate(&base).unwrap();
    let mean: Vec<f32> = (0..n).map(|j| 1.0 + j as f32 / n as f32).collect();
    let mut g = ActivationGenerator::new(n, p, 0.3f32, mean).unwrap();
    if low_rank {
        let lr = generate_random_low_rank_correlation_matrix(n, 4, 0.25, Some(3)).unwrap();
        g = g.with_correlation(Correlation::LowRank(lr)).unwrap();
    }
    g.with_hierarchy(Arc::new(HierarchyModifier::new(h, n).unwrap()))
        .unwrap()
}

#[test]
fn sparse_matches_reference_hierarchy_independent() {
    assert_same_distribution(&hierarchy_generator(false), 60_000, 25, "hierarchy");
}

#[test]
fn sparse_matches_reference_hierarchy_low_rank() {
    assert_same_distribution(
        &hierarchy_generator(true),
        60_000,
        26,
        "hierarchy + low rank",
    );
}
