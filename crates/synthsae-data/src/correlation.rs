//! Correlation structures for the Gaussian copula (sae-lens `correlation.py`
//! and the correlation half of `stats.py`).
//!
//! Longer than most files (about 850 lines) because its tests, a quarter of
//! it, sit beside the code, and because the dense and low-rank forms share
//! their validation, repair and random generators, which would otherwise
//! import each other across files.
//!
//! Two forms exist: a dense `[N, N]` matrix ([`CorrelationMatrix`]) for small
//! `N`, and a low-rank factor ([`LowRankCorrelation`], `C = F Fᵀ + diag(d)`)
//! that never materialises `N × N` and scales to hundreds of thousands of
//! features.

use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

use crate::error::{bad_shape, invalid, Result};
use crate::py_random::PyRandom;
use crate::rng::{ChaChaSource, RandomSource};

/// Smallest eigenvalue kept by the positive-definiteness repair.
pub const MIN_EIGENVALUE: f64 = 1e-6;
/// Smallest diagonal term a low-rank correlation keeps (rows are capped).
pub const MIN_LOW_RANK_DIAG: f32 = 0.01;

/// A dense correlation matrix `[N, N]`: symmetric with a unit diagonal.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationMatrix {
    num_features: usize,
    data: Vec<f32>,
}

impl CorrelationMatrix {
    /// Wraps a row-major `[N, N]` matrix after checking its shape, unit
    /// diagonal (|c_ii − 1| ≤ 1e-8 + 1e-5, torch's `allclose`) and symmetry.
    /// Positive definiteness is checked when a generator factorises it.
    pub fn new(data: Vec<f32>, num_features: usize) -> Result<Self> {
        let n = num_features;
        if n == 0 {
            return Err(invalid(
                "correlation_matrix",
                "must have at least one feature",
            ));
        }
        if data.len() != n * n {
            return Err(bad_shape(
                "correlation_matrix",
                format!("[N, N] = [{n}, {n}] ({} values)", n * n),
                &[data.len()],
            ));
        }
        for i in 0..n {
            let d = data[i * n + i];
            if d.is_nan() || (d - 1.0).abs() > 1e-8 + 1e-5 {
                return Err(invalid(
                    "correlation_matrix",
                    format!("diagonal must be all 1s, entry ({i}, {i}) is {d}"),
                ));
            }
            for j in 0..i {
                let (a, b) = (data[i * n + j], data[j * n + i]);
                if !a.is_finite() || (a - b).abs() > 1e-6 {
                    return Err(invalid(
                        "correlation_matrix",
                        format!("must be symmetric and finite, entries ({i}, {j}) = {a} and ({j}, {i}) = {b}"),
                    ));
                }
            }
        }
        Ok(Self {
            num_features: n,
            data,
        })
    }

    /// `N`.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Row-major values `[N * N]`.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Entry `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.num_features + j]
    }

    /// Lower Cholesky factor `L` (`C = L Lᵀ`), row-major `[N, N]`.
    pub fn cholesky(&self) -> Result<Vec<f32>> {
        let n = self.num_features;
        let m = DMatrix::<f64>::from_fn(n, n, |i, j| self.data[i * n + j] as f64);
        let chol = m.cholesky().ok_or_else(|| {
            invalid(
                "correlation_matrix",
                "must be positive definite (Cholesky factorisation failed)",
            )
        })?;
        let l = chol.l();
        Ok((0..n * n).map(|k| l[(k / n, k % n)] as f32).collect())
    }

    /// Off-diagonal statistics.
    pub fn stats(&self) -> CorrelationStats {
        let n = self.num_features;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let c = self.data[i * n + j] as f64;
                    s += c;
                    s2 += c * c;
                }
            }
        }
        CorrelationStats::from_sums(s, s2, n)
    }
}

/// A low-rank correlation `C = F Fᵀ + diag(d)`, with `d_i = 1 − ‖F_i‖²` so
/// that the diagonal of `C` is 1.
#[derive(Debug, Clone, PartialEq)]
pub struct LowRankCorrelation {
    num_features: usize,
    rank: usize,
    factor: Vec<f32>,
    diag: Vec<f32>,
    capped_rows: usize,
}

impl LowRankCorrelation {
    /// Wraps a factor `[N, R]` (row-major) and diagonal `[N]`; every diagonal
    /// entry must be `> 0`.
    pub fn new(factor: Vec<f32>, diag: Vec<f32>, num_features: usize, rank: usize) -> Result<Self> {
        if num_features == 0 {
            return Err(invalid("correlation_factor", "must have at least one row"));
        }
        if rank == 0 {
            return Err(invalid("rank", "must be positive"));
        }
        if factor.len() != num_features * rank {
            return Err(bad_shape(
                "correlation_factor",
                format!("[N, rank] = [{num_features}, {rank}]"),
                &[factor.len()],
            ));
        }
        if diag.len() != num_features {
            return Err(bad_shape(
                "correlation_diag",
                format!("[N] = [{num_features}]"),
                &[diag.len()],
            ));
        }
        if let Some((i, d)) = diag
            .iter()
            .enumerate()
            .find(|(_, &d)| !(d > 0.0 && d.is_finite()))
        {
            return Err(invalid(
                "correlation_diag",
                format!("must have all positive values, entry {i} is {d}"),
            ));
        }
        if let Some(i) = factor.iter().position(|v| !v.is_finite()) {
            return Err(invalid(
                "correlation_factor",
                format!("entry {i} is not finite"),
            ));
        }
        Ok(Self {
            num_features,
            rank,
            factor,
            diag,
            capped_rows: 0,
        })
    }

    /// Rows the random generator rescaled so that `d_i ≥ 0.01` (0 for a
    /// correlation built with [`new`](Self::new)).
    pub fn capped_rows(&self) -> usize {
        self.capped_rows
    }

    /// `N`.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// `R`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The factor `F`, row-major `[N, R]`.
    pub fn factor(&self) -> &[f32] {
        &self.factor
    }

    /// The diagonal `d`, `[N]` (not its square root).
    pub fn diag(&self) -> &[f32] {
        &self.diag
    }

    /// Implied correlation between features `i` and `j` (`F_i · F_j`, 1 on the diagonal).
    pub fn correlation(&self, i: usize, j: usize) -> f32 {
        if i == j {
            return 1.0;
        }
        let r = self.rank;
        self.factor[i * r..(i + 1) * r]
            .iter()
            .zip(&self.factor[j * r..(j + 1) * r])
            .map(|(a, b)| a * b)
            .sum()
    }

    /// Off-diagonal statistics of `C` in `O(N·R²)` time and `O(R²)` memory.
    pub fn stats(&self) -> CorrelationStats {
        let (n, r) = (self.num_features, self.rank);
        let mut gram = vec![0.0f64; r * r];
        let mut colsum = vec![0.0f64; r];
        let (mut sum_r, mut sum_r2) = (0.0f64, 0.0f64);
        for row in self.factor.chunks_exact(r) {
            let mut norm2 = 0.0f64;
            for a in 0..r {
                let fa = row[a] as f64;
                colsum[a] += fa;
                norm2 += fa * fa;
                for b in 0..r {
                    gram[a * r + b] += fa * row[b] as f64;
                }
            }
            sum_r += norm2;
            sum_r2 += norm2 * norm2;
        }
        let frob2: f64 = gram.iter().map(|g| g * g).sum();
        let total2: f64 = colsum.iter().map(|c| c * c).sum();
        CorrelationStats::from_sums(total2 - sum_r, frob2 - sum_r2, n)
    }

    /// The dense matrix (tests and small `N` only: `O(N²)` memory).
    pub fn to_dense(&self) -> CorrelationMatrix {
        let n = self.num_features;
        let data = (0..n * n).map(|k| self.correlation(k / n, k % n)).collect();
        CorrelationMatrix {
            num_features: n,
            data,
        }
    }
}

/// Off-diagonal statistics of a correlation matrix (sae-lens `CorrelationMatrixStats`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CorrelationStats {
    /// `sqrt(mean(c_ij²))` over the `N(N−1)` off-diagonal entries.
    pub rms_correlation: f64,
    /// `mean(c_ij)` over the off-diagonal entries (signed).
    pub mean_correlation: f64,
    /// `N`.
    pub num_features: usize,
}

impl CorrelationStats {
    fn from_sums(sum: f64, sum_sq: f64, n: usize) -> Self {
        // N = 1 has no off-diagonal entries: both statistics are 0 (the
        // reference divides by zero here).
        let pairs = (n * n.saturating_sub(1)) as f64;
        let (rms, mean) = if pairs > 0.0 {
            ((sum_sq.max(0.0) / pairs).sqrt(), sum / pairs)
        } else {
            (0.0, 0.0)
        };
        Self {
            rms_correlation: rms,
            mean_correlation: mean,
            num_features: n,
        }
    }
}

/// Builds `I + default_correlation · (1 − I)`, sets the given pairs
/// symmetrically, and repairs the result if it is not positive definite.
///
/// Unlike the reference, a matrix whose smallest eigenvalue is in
/// `[−1e-6, 1e-6)` is repaired too, so the result always factorises.
pub fn create_correlation_matrix_from_correlations(
    num_features: usize,
    correlations: &[((usize, usize), f64)],
    default_correlation: f64,
) -> Result<CorrelationMatrix> {
    let n = num_features;
    if n == 0 {
        return Err(invalid("num_features", "must be at least 1"));
    }
    if !(-1.0..=1.0).contains(&default_correlation) {
        return Err(invalid(
            "default_correlation",
            format!("must be in [-1, 1], got {default_correlation}"),
        ));
    }
    let mut m = vec![default_correlation; n * n];
    for i in 0..n {
        m[i * n + i] = 1.0;
    }
    for &((i, j), c) in correlations {
        if i >= n || j >= n {
            return Err(invalid(
                "correlations",
                format!("pair ({i}, {j}) is out of range for {n} features"),
            ));
        }
        if i == j {
            return Err(invalid(
                "correlations",
                format!("pair ({i}, {j}) is on the diagonal"),
            ));
        }
        if !(-1.0..=1.0).contains(&c) {
            return Err(invalid(
                "correlations",
                format!("value {c} for pair ({i}, {j}) is outside [-1, 1]"),
            ));
        }
        m[i * n + j] = c;
        m[j * n + i] = c;
    }
    Ok(repair_if_needed(m, n))
}

/// Clamps eigenvalues to `min_eigenvalue`, rebuilds, and rescales to a unit
/// diagonal (sae-lens `_fix_correlation_matrix`). Row-major `[N, N]`, f64.
pub fn fix_correlation_matrix(
    matrix: &[f64],
    num_features: usize,
    min_eigenvalue: f64,
) -> Vec<f64> {
    let n = num_features;
    let m = DMatrix::<f64>::from_fn(n, n, |i, j| 0.5 * (matrix[i * n + j] + matrix[j * n + i]));
    let eig = SymmetricEigen::new(m);
    let clamped = eig.eigenvalues.map(|l| l.max(min_eigenvalue));
    let v = &eig.eigenvectors;
    let rebuilt = v * DMatrix::from_diagonal(&clamped) * v.transpose();
    let d: Vec<f64> = (0..n).map(|i| rebuilt[(i, i)].max(1e-8)).collect();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = if i == j {
                1.0
            } else {
                rebuilt[(i, j)] / (d[i] * d[j]).sqrt()
            };
        }
    }
    out
}

fn repair_if_needed(m: Vec<f64>, n: usize) -> CorrelationMatrix {
    let sym = DMatrix::<f64>::from_fn(n, n, |i, j| 0.5 * (m[i * n + j] + m[j * n + i]));
    let min_eig = SymmetricEigen::new(sym.clone()).eigenvalues.min();
    let fixed = if min_eig < MIN_EIGENVALUE {
        fix_correlation_matrix(&m, n, MIN_EIGENVALUE)
    } else {
        (0..n * n).map(|k| sym[(k / n, k % n)]).collect()
    };
    CorrelationMatrix {
        num_features: n,
        data: fixed.into_iter().map(|x| x as f32).collect(),
    }
}

/// Parameters shared by the random correlation generators.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomCorrelationParams {
    /// Fraction of correlated pairs that are positive.
    pub positive_ratio: f64,
    /// Fraction of pairs left uncorrelated.
    pub uncorrelated_ratio: f64,
    /// Smallest |correlation| of a correlated pair.
    pub min_correlation_strength: f64,
    /// Largest |correlation| of a correlated pair.
    pub max_correlation_strength: f64,
}

impl Default for RandomCorrelationParams {
    fn default() -> Self {
        Self {
            positive_ratio: 0.5,
            uncorrelated_ratio: 0.3,
            min_correlation_strength: 0.1,
            max_correlation_strength: 0.8,
        }
    }
}

impl RandomCorrelationParams {
    /// Checks the ranges the reference checks.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.positive_ratio) {
            return Err(invalid(
                "positive_ratio",
                format!("must be between 0.0 and 1.0, got {}", self.positive_ratio),
            ));
        }
        if !(0.0..=1.0).contains(&self.uncorrelated_ratio) {
            return Err(invalid(
                "uncorrelated_ratio",
                format!(
                    "must be between 0.0 and 1.0, got {}",
                    self.uncorrelated_ratio
                ),
            ));
        }
        if self.min_correlation_strength.is_nan() || self.min_correlation_strength < 0.0 {
            return Err(invalid(
                "min_correlation_strength",
                format!(
                    "must be non-negative, got {}",
                    self.min_correlation_strength
                ),
            ));
        }
        if self.max_correlation_strength.is_nan() || self.max_correlation_strength > 1.0 {
            return Err(invalid(
                "max_correlation_strength",
                format!("must be <= 1.0, got {}", self.max_correlation_strength),
            ));
        }
        if self.min_correlation_strength > self.max_correlation_strength {
            return Err(invalid(
                "min_correlation_strength",
                format!(
                    "must be <= max_correlation_strength, got {} > {}",
                    self.min_correlation_strength, self.max_correlation_strength
                ),
            ));
        }
        Ok(())
    }
}

/// The pair `(i, j)`, `i < j`, at position `k` of the row-major upper triangle.
fn pair_at(k: usize, n: usize) -> (usize, usize) {
    // Row i starts at offset start(i) = i (2n − i − 1) / 2: guess i from the
    // quadratic formula, then correct the float rounding.
    let nn = n as f64;
    let kf = k as f64;
    let disc = ((2.0 * nn - 1.0).powi(2) - 8.0 * kf).max(0.0);
    let mut i = (((2.0 * nn - 1.0) - disc.sqrt()) / 2.0) as usize;
    let start = |i: usize| i * (2 * n - i - 1) / 2;
    while i > 0 && start(i) > k {
        i -= 1;
    }
    while start(i + 1) <= k {
        i += 1;
    }
    (i, i + 1 + (k - start(i)))
}

/// Random pairwise correlations with *exact* counts: `floor(P · uncorrelated_ratio)`
/// of the `P = N(N−1)/2` pairs are left out, `floor(n_cor · positive_ratio)`
/// of the rest are positive; strengths are uniform in `[min, max]`.
/// Returns `((i, j), value)` with `i < j`, in sampled order.
///
/// Draws with CPython's `random.Random(seed)` exactly as sae-lens does
/// (`sample`, `shuffle`, one `uniform` per pair), so a seed gives sae-lens's
/// values; pairs are addressed by index, never listed.
pub fn generate_random_correlations(
    num_features: usize,
    params: &RandomCorrelationParams,
    seed: Option<u64>,
) -> Result<Vec<((usize, usize), f64)>> {
    params.validate()?;
    let n = num_features;
    let total = n * n.saturating_sub(1) / 2;
    if total == 0 {
        return Ok(Vec::new());
    }
    let mut rng = PyRandom::from_seed(seed);
    let n_unc = (total as f64 * params.uncorrelated_ratio).floor() as usize;
    let n_cor = total - n_unc;
    let chosen = rng.sample_indices(total, n_cor);
    let n_pos = (n_cor as f64 * params.positive_ratio).floor() as usize;
    let mut signs: Vec<f64> = (0..n_cor)
        .map(|k| if k < n_pos { 1.0 } else { -1.0 })
        .collect();
    rng.shuffle(&mut signs);
    let (lo, hi) = (
        params.min_correlation_strength,
        params.max_correlation_strength,
    );
    Ok(chosen
        .into_iter()
        .zip(signs)
        .map(|(k, sign)| (pair_at(k, n), sign * rng.uniform(lo, hi)))
        .collect())
}

/// A random dense correlation matrix with *probabilistic* counts: each pair
/// is correlated with probability `1 − uncorrelated_ratio`, positive with
/// probability `positive_ratio`, strength uniform in `[min, max)`; then
/// repaired to be positive definite. `O(N²)` memory, `O(N³)` time.
pub fn generate_random_correlation_matrix(
    num_features: usize,
    params: &RandomCorrelationParams,
    seed: Option<u64>,
) -> Result<CorrelationMatrix> {
    generate_random_correlation_matrix_with(num_features, params, &mut ChaChaSource::new(seed))
}

/// [`generate_random_correlation_matrix`] drawing from the given source.
pub fn generate_random_correlation_matrix_with(
    num_features: usize,
    params: &RandomCorrelationParams,
    rng: &mut dyn RandomSource,
) -> Result<CorrelationMatrix> {
    params.validate()?;
    let n = num_features;
    if n == 0 {
        return Err(invalid("num_features", "must be at least 1"));
    }
    let total = n * (n - 1) / 2;
    let mut u1 = vec![0.0f32; total];
    let mut u2 = vec![0.0f32; total];
    let mut u3 = vec![0.0f32; total];
    rng.fill_uniform(&mut u1);
    rng.fill_uniform(&mut u2);
    rng.fill_uniform(&mut u3);
    let mut m = vec![0.0f64; n * n];
    for i in 0..n {
        m[i * n + i] = 1.0;
    }
    let (lo, hi) = (
        params.min_correlation_strength,
        params.max_correlation_strength,
    );
    let mut k = 0;
    for i in 0..n {
        for j in i + 1..n {
            let correlated = (u1[k] as f64) >= params.uncorrelated_ratio;
            let sign = if (u2[k] as f64) < params.positive_ratio {
                1.0
            } else {
                -1.0
            };
            let strength = (u3[k] as f64) * (hi - lo) + lo;
            let v = if correlated { sign * strength } else { 0.0 };
            m[i * n + j] = v;
            m[j * n + i] = v;
            k += 1;
        }
    }
    Ok(repair_if_needed(m, n))
}

/// A random low-rank correlation: `F = correlation_scale · randn(N, R)`,
/// `d = 1 − ‖F_i‖²`; rows with `d_i < 0.01` are rescaled so `‖F_i‖² = 0.99`
/// (a warning says how many).
pub fn generate_random_low_rank_correlation_matrix(
    num_features: usize,
    rank: usize,
    correlation_scale: f64,
    seed: Option<u64>,
) -> Result<LowRankCorrelation> {
    generate_random_low_rank_correlation_matrix_with(
        num_features,
        rank,
        correlation_scale,
        &mut ChaChaSource::new(seed),
    )
}

/// [`generate_random_low_rank_correlation_matrix`] drawing from the given source.
pub fn generate_random_low_rank_correlation_matrix_with(
    num_features: usize,
    rank: usize,
    correlation_scale: f64,
    rng: &mut dyn RandomSource,
) -> Result<LowRankCorrelation> {
    if rank == 0 {
        return Err(invalid("rank", "must be positive"));
    }
    if correlation_scale.is_nan() || correlation_scale < 0.0 {
        return Err(invalid(
            "correlation_scale",
            format!("must be non-negative, got {correlation_scale}"),
        ));
    }
    if num_features == 0 {
        return Err(invalid("num_features", "must be at least 1"));
    }
    let mut factor = vec![0.0f32; num_features * rank];
    rng.fill_normal(&mut factor);
    let scale = correlation_scale as f32;
    factor.iter_mut().for_each(|v| *v *= scale);
    let mut diag = Vec::with_capacity(num_features);
    let mut capped = 0usize;
    for row in factor.chunks_exact_mut(rank) {
        let s: f32 = row.iter().map(|v| v * v).sum();
        let mut d = 1.0 - s;
        if d < MIN_LOW_RANK_DIAG {
            let f = (0.99 / s).sqrt();
            row.iter_mut().for_each(|v| *v *= f);
            d = 1.0 - row.iter().map(|v| v * v).sum::<f32>();
            capped += 1;
        }
        diag.push(d);
    }
    if capped > 0 {
        log::warn!(
            "{capped} / {num_features} rows were capped. Either reduce the rank or reduce the correlation_scale to avoid rescaling."
        );
    }
    let mut lr = LowRankCorrelation::new(factor, diag, num_features, rank)?;
    lr.capped_rows = capped;
    Ok(lr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_index_matches_row_major_order() {
        for n in [2usize, 3, 7, 40] {
            let mut k = 0;
            for i in 0..n {
                for j in i + 1..n {
                    assert_eq!(pair_at(k, n), (i, j), "n={n} k={k}");
                    k += 1;
                }
            }
        }
    }

    #[test]
    fn from_pairs_sets_values_and_repairs() {
        let m = create_correlation_matrix_from_correlations(3, &[((0, 1), 0.5)], 0.0).unwrap();
        assert_eq!(m.get(0, 1), 0.5);
        assert_eq!(m.get(1, 0), 0.5);
        assert_eq!(m.get(0, 2), 0.0);
        assert!(m.cholesky().is_ok());
        // Three features pairwise −0.9 cannot be a correlation matrix: repaired.
        let bad = [((0, 1), -0.9), ((0, 2), -0.9), ((1, 2), -0.9)];
        let m = create_correlation_matrix_from_correlations(3, &bad, 0.0).unwrap();
        assert!(m.cholesky().is_ok());
        for i in 0..3 {
            assert_eq!(m.get(i, i), 1.0);
        }
        assert!(m.get(0, 1) > -0.9 + 1e-3);
        let e = create_correlation_matrix_from_correlations(3, &[((0, 3), 0.1)], 0.0).unwrap_err();
        assert!(e.to_string().contains("correlations"), "{e}");
    }

    #[test]
    fn dense_validation_names_the_problem() {
        let e = CorrelationMatrix::new(vec![1.0; 3], 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("correlation_matrix") && e.contains("[2, 2]"),
            "{e}"
        );
        let e = CorrelationMatrix::new(vec![1.0, 0.0, 0.0, 2.0], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("diagonal"), "{e}");
        let m = CorrelationMatrix::new(vec![1.0, 2.0, 2.0, 1.0], 2).unwrap();
        let e = m.cholesky().unwrap_err().to_string();
        assert!(e.contains("positive definite"), "{e}");
    }

    #[test]
    fn low_rank_validation() {
        let e = LowRankCorrelation::new(vec![0.1; 6], vec![0.9; 3], 3, 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("correlation_factor"), "{e}");
        let e = LowRankCorrelation::new(vec![0.1; 6], vec![0.9; 2], 3, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("correlation_diag"), "{e}");
        let e = LowRankCorrelation::new(vec![0.1; 6], vec![0.9, -0.1, 0.9], 3, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("positive"), "{e}");
        let e = generate_random_low_rank_correlation_matrix(4, 0, 0.1, Some(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank"), "{e}");
        let e = generate_random_low_rank_correlation_matrix(4, 2, -0.1, Some(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("correlation_scale"), "{e}");
    }

    #[test]
    fn low_rank_capping_keeps_diag_at_least_min() {
        // Row energy R·scale² = 2 · 0.25 = 0.5 on average: some rows exceed 0.99.
        let lr = generate_random_low_rank_correlation_matrix(200, 2, 0.5, Some(0)).unwrap();
        assert!(lr.diag().iter().all(|&d| d >= MIN_LOW_RANK_DIAG - 1e-6));
        assert!(
            lr.diag().iter().any(|&d| (d - 0.01).abs() < 1e-5),
            "expected a capped row"
        );
        for (row, d) in lr.factor().chunks(2).zip(lr.diag()) {
            let s: f32 = row.iter().map(|v| v * v).sum();
            assert!((s + d - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)] // golden values verbatim from the reference
    fn low_rank_golden_with_torch_stream() {
        // sae-lens: generate_random_low_rank_correlation_matrix(5, rank=2,
        // correlation_scale=0.5, seed=0); row 1 is capped.
        let mut g = crate::torch_rng::TorchGenerator::manual_seed(0);
        let lr = generate_random_low_rank_correlation_matrix_with(5, 2, 0.5, &mut g).unwrap();
        for (a, b) in lr
            .diag()
            .iter()
            .zip([0.3848076, 0.0099999, 0.2169355, 0.7837558, 0.8299956])
        {
            assert!((a - b).abs() < 1e-6, "{:?}", lr.diag());
        }
        assert_eq!(lr.capped_rows(), 1);
        let st = lr.stats();
        assert!((st.rms_correlation - 0.35923737).abs() < 1e-6, "{st:?}");
        assert!((st.mean_correlation + 0.09177421).abs() < 1e-6, "{st:?}");
    }

    #[test]
    fn low_rank_stats_match_dense() {
        let lr = generate_random_low_rank_correlation_matrix(60, 5, 0.3, Some(4)).unwrap();
        let (a, b) = (lr.stats(), lr.to_dense().stats());
        assert!(
            (a.rms_correlation - b.rms_correlation).abs() < 1e-6,
            "{a:?} {b:?}"
        );
        assert!(
            (a.mean_correlation - b.mean_correlation).abs() < 1e-6,
            "{a:?} {b:?}"
        );
        let one = LowRankCorrelation::new(vec![0.5], vec![0.75], 1, 1).unwrap();
        assert_eq!(one.stats().rms_correlation, 0.0);
    }

    #[test]
    fn random_correlations_golden() {
        // sae-lens: generate_random_correlations(4, seed=0), in this order.
        let c =
            generate_random_correlations(4, &RandomCorrelationParams::default(), Some(0)).unwrap();
        let want = [
            ((1, 2), 0.5083674276185219),
            ((2, 3), -0.7356790196367347),
            ((0, 1), 0.4532807990721732),
            ((0, 2), -0.2972864910797927),
            ((0, 3), -0.6290629429100568),
        ];
        assert_eq!(c.len(), want.len());
        for (got, want) in c.iter().zip(want) {
            assert_eq!(got.0, want.0);
            assert!((got.1 - want.1).abs() < 1e-15, "{c:?}");
        }
    }

    #[test]
    fn random_correlations_exact_counts() {
        let p = RandomCorrelationParams::default();
        let c = generate_random_correlations(20, &p, Some(1)).unwrap();
        let total = 190;
        let n_cor = total - (total as f64 * 0.3).floor() as usize;
        assert_eq!(c.len(), n_cor);
        let pos = c.iter().filter(|(_, v)| *v > 0.0).count();
        assert_eq!(pos, n_cor / 2);
        let mut seen = std::collections::HashSet::new();
        for ((i, j), v) in &c {
            assert!(i < j && *j < 20);
            assert!(seen.insert((*i, *j)));
            assert!((0.1..=0.8).contains(&v.abs()));
        }
        assert_eq!(c, generate_random_correlations(20, &p, Some(1)).unwrap());
        assert!(generate_random_correlations(1, &p, None)
            .unwrap()
            .is_empty());
        let bad = RandomCorrelationParams {
            positive_ratio: 1.5,
            ..p
        };
        let e = generate_random_correlations(5, &bad, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("positive_ratio"), "{e}");
        let bad = RandomCorrelationParams {
            min_correlation_strength: 0.9,
            ..p
        };
        let e = generate_random_correlations(5, &bad, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_correlation_strength"), "{e}");
    }

    #[test]
    #[allow(clippy::excessive_precision)] // golden values verbatim from the reference
    fn random_matrix_golden_with_torch_stream() {
        // sae-lens: generate_random_correlation_matrix(4, seed=0), upper triangle.
        let mut g = crate::torch_rng::TorchGenerator::manual_seed(0);
        let m =
            generate_random_correlation_matrix_with(4, &RandomCorrelationParams::default(), &mut g)
                .unwrap();
        let want = [
            0.115628026,
            -0.218201265,
            0.0,
            -0.0,
            0.588367343,
            0.660008013,
        ];
        let got = [
            m.get(0, 1),
            m.get(0, 2),
            m.get(0, 3),
            m.get(1, 2),
            m.get(1, 3),
            m.get(2, 3),
        ];
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{got:?}");
        }
    }

    #[test]
    fn random_matrix_is_valid_correlation() {
        let p = RandomCorrelationParams::default();
        let m = generate_random_correlation_matrix(30, &p, Some(2)).unwrap();
        assert!(m.cholesky().is_ok());
        assert!(CorrelationMatrix::new(m.as_slice().to_vec(), 30).is_ok());
        assert_eq!(
            generate_random_correlation_matrix(1, &p, Some(2))
                .unwrap()
                .as_slice(),
            &[1.0]
        );
    }
}
