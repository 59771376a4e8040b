//! Small numeric kernels for the sampling hot paths.
//!
//! Compiled for several instruction sets and chosen at run time
//! (`multiversion`), so a portable binary still uses AVX-512 / AVX2 where the
//! CPU has them. No fused multiply-add is used, so results are identical on
//! every target.

use std::sync::LazyLock;

use multiversion::multiversion;
use statrs::function::erf::erfc;

/// `y += a · x` (elementwise, `x` and `y` of equal length).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2",
    "aarch64+neon"
))]
pub(crate) fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `t_j = (tau_j − z_j) · inv_s_j`, in place over `z`.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2",
    "aarch64+neon"
))]
pub(crate) fn standardized_gap(z: &mut [f32], tau: &[f32], inv_s: &[f32]) {
    for ((zj, &t), &is) in z.iter_mut().zip(tau).zip(inv_s) {
        *zj = (t - *zj) * is;
    }
}

/// Grid of the upper-tail table: `t_k = T0 + k / SCALE`, `k = 0..=K`.
const T0: f64 = -8.0;
const SCALE: f64 = 128.0;
const K: usize = 16 * 128;
const TWO32: f64 = 4_294_967_296.0;

/// `Φ̄(t) = P(η > t)` for a standard normal `η`.
pub(crate) fn upper_tail(t: f64) -> f64 {
    0.5 * erfc(t / std::f64::consts::SQRT_2)
}

/// Integer bounds of `Φ̄(t_k) · 2³²` that make the uniform comparison safe:
/// `below[k] ≤ Φ̄(t_k)·2³² − 1` and `above[k] ≥ Φ̄(t_k)·2³² + 1`.
struct TailTable {
    below: Vec<u64>,
    above: Vec<u64>,
}

static TABLE: LazyLock<TailTable> = LazyLock::new(|| {
    let (mut below, mut above) = (Vec::with_capacity(K + 1), Vec::with_capacity(K + 1));
    for k in 0..=K {
        let x = upper_tail(T0 + k as f64 / SCALE) * TWO32;
        below.push((x - 1.0).floor().clamp(0.0, TWO32) as u64);
        above.push((x + 1.0).ceil().clamp(0.0, TWO32 + 1.0) as u64);
    }
    TailTable { below, above }
});

/// Whether `η > t` for a standard normal `η`, decided from one 32-bit
/// uniform `u` (`U = (u + ½)/2³²`, fire iff `U < Φ̄(t)`).
///
/// A table of `Φ̄` on a grid of step 1/128 settles all but ~0.3 % of the
/// cases with two integer comparisons; the rest are decided exactly with
/// `erfc`. The only approximation is the 32-bit resolution of `U`
/// (a bias of at most 2⁻³² in each firing probability).
#[inline]
pub(crate) fn exceeds(t: f32, u: u32) -> bool {
    let table = &*TABLE;
    let pos = (t as f64 - T0) * SCALE;
    // NaN and −∞ land in the first cell, +∞ in the last; both stay correct
    // because the exact fallback handles any t.
    let k = if pos >= 0.0 {
        (pos as usize).min(K - 1)
    } else {
        0
    };
    let u = u as u64;
    if u < table.below[k + 1] {
        return true;
    }
    if u >= table.above[k] {
        return false;
    }
    (u as f64 + 0.5) / TWO32 < upper_tail(t as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axpy_and_gap() {
        let mut y = vec![1.0f32; 37];
        let x: Vec<f32> = (0..37).map(|i| i as f32).collect();
        axpy(&mut y, 2.0, &x);
        assert!(y
            .iter()
            .enumerate()
            .all(|(i, &v)| v == 1.0 + 2.0 * i as f32));
        let mut z = vec![1.0f32; 3];
        standardized_gap(&mut z, &[3.0, 1.0, -1.0], &[0.5, 2.0, 1.0]);
        assert_eq!(z, vec![1.0, 0.0, -2.0]);
    }

    #[test]
    fn exceeds_agrees_with_exact_comparison() {
        // Every u on a fine lattice, many t, including grid points, the
        // ambiguous band and values outside the table.
        let ts = [
            -9.0f32,
            -8.0,
            -3.3,
            -0.01,
            0.0,
            0.3,
            1.0 / 128.0,
            2.326,
            5.0,
            7.99,
            8.0,
            12.0,
        ];
        for &t in &ts {
            let p = upper_tail(t as f64);
            for i in 0..20_000u64 {
                let u = ((i * 214_748) % (1u64 << 32)) as u32;
                let exact = (u as f64 + 0.5) / TWO32 < p;
                assert_eq!(exceeds(t, u), exact, "t={t} u={u}");
            }
            // Right at the decision boundary.
            let b = (p * TWO32 - 0.5).floor().clamp(0.0, TWO32 - 1.0) as u32;
            for u in b.saturating_sub(2)..=b.saturating_add(2) {
                assert_eq!(exceeds(t, u), (u as f64 + 0.5) / TWO32 < p, "t={t} u={u}");
            }
        }
        assert!(exceeds(f32::NEG_INFINITY, u32::MAX));
        assert!(!exceeds(f32::INFINITY, 0));
    }
}
