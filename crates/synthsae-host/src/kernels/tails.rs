//! The tables of the standard normal upper tail `Φ̄(t) = P(η > t)` that
//! the copula sampler decides firings with: exact decisions from a 32-bit
//! uniform ([`TailTables::exceeds`], [`TailTables::tail_exceeds`]) and the
//! hazards of thinning bounds ([`TailTables::bound`]).
//!
//! They are sampling statistics, but they live beside the kernels: the
//! low-rank gap kernels ([`crate::kernels::lowrank`]) gather the thinning
//! hazards from [`TailTables`]'s hazard table inside their vector loops, and
//! this crate sits below the data crate.

use std::sync::LazyLock;

use statrs::function::erf::erfc;

/// Grid of the upper-tail table: `t_k = T0 + k / SCALE`, `k = 0..=K`.
pub(crate) const T0: f64 = -8.0;
pub(crate) const SCALE: f64 = 128.0;
pub(crate) const K: usize = 16 * 128;
const TWO32: f64 = 4_294_967_296.0;

/// `Φ̄(t) = P(η > t)` for a standard normal `η`.
pub fn upper_tail(t: f64) -> f64 {
    0.5 * erfc(t / std::f64::consts::SQRT_2)
}

/// The tables of `Φ̄` on the grid `t_k`, built once (on first use) and
/// handed to the hot loops by reference ([`tails`]), so that a lookup is an
/// index computation and a load. All entries are `f64`: the integer bounds
/// are exact in `f64`, and comparing in `f64` avoids `u64 → f64` conversions
/// (several instructions on baseline x86-64). The values one scalar lookup
/// reads together sit side by side (one cache line instead of two: the
/// tables exceed L1).
pub struct TailTables {
    /// `brackets[k] = [below_{k+1}, above_k]` for the cell `[t_k, t_{k+1})`,
    /// with the integers `below_k ≤ Φ̄(t_k)·2³² − 1` and
    /// `above_k ≥ Φ̄(t_k)·2³² + 1`.
    brackets: Box<[[f64; 2]; K]>,
    /// `h_k = −ln(1 − Φ̄(t_k) − 2⁻⁴⁰)` (∞ where that is ≥ 1), read by the
    /// vector kernels' gathers.
    pub(crate) hazard: Box<[f64; K + 1]>,
    /// `[h_k, p̄_k]` with `p̄_k = 1 − e^{−h_k}`.
    bounds: Box<[[f64; 2]; K + 1]>,
}

static TAILS: LazyLock<TailTables> = LazyLock::new(|| {
    let table = |f: &dyn Fn(usize) -> f64| -> Box<[f64; K + 1]> {
        let v: Vec<f64> = (0..=K).map(f).collect();
        v.into_boxed_slice().try_into().expect("K + 1 entries")
    };
    fn pairs<const N: usize>(f: impl Fn(usize) -> [f64; 2]) -> Box<[[f64; 2]; N]> {
        let v: Vec<[f64; 2]> = (0..N).map(f).collect();
        v.into_boxed_slice().try_into().expect("N entries")
    }
    let x = |k: usize| upper_tail(T0 + k as f64 / SCALE) * TWO32;
    // Margin 2⁻⁴⁰ covers the error of erfc and of the f64 arithmetic.
    let hazard = table(&|k| {
        let p = (upper_tail(T0 + k as f64 / SCALE) + (2f64).powi(-40)).min(1.0);
        if p >= 1.0 {
            f64::INFINITY
        } else {
            -(-p).ln_1p()
        }
    });
    // The probability the candidate process really uses (≥ p up to 1 ulp,
    // which the margin dwarfs).
    let pbar = table(&|k| {
        if hazard[k].is_infinite() {
            1.0
        } else {
            -(-hazard[k]).exp_m1()
        }
    });
    let below = |k: usize| (x(k) - 1.0).floor().clamp(0.0, TWO32);
    let above = |k: usize| (x(k) + 1.0).ceil().clamp(0.0, TWO32 + 1.0);
    TailTables {
        brackets: pairs(|k| [below(k + 1), above(k)]),
        bounds: pairs(|k| [hazard[k], pbar[k]]),
        hazard,
    }
});

/// The shared tables (built on first use).
#[inline]
pub fn tails() -> &'static TailTables {
    &TAILS
}

/// The grid cell `k ∈ [0, K)` with `t_k ≤ t < t_{k+1}` (clamped; NaN and
/// `−∞` give 0, `+∞` gives `K − 1`).
#[inline(always)]
fn cell(t: f64) -> usize {
    // `clamp` keeps NaN, which the saturating cast maps to 0.
    ((t - T0) * SCALE).clamp(0.0, (K - 1) as f64) as i32 as usize
}

impl TailTables {
    /// Whether `η > t` for a standard normal `η`, decided from one 32-bit
    /// uniform `u` (`U = (u + ½)/2³²`, fire iff `U < Φ̄(t)`).
    ///
    /// The table of `Φ̄` on a grid of step 1/128 settles all but ~0.3 % of
    /// the cases with two comparisons; the rest are decided exactly with
    /// `erfc`. The only approximation is the 32-bit resolution of `U` (a
    /// bias of at most 2⁻³² in each firing probability).
    #[inline(always)]
    pub fn exceeds(&self, t: f32, u: u32) -> bool {
        // NaN and −∞ land in the first cell, +∞ in the last; both stay
        // correct because the exact fallback handles any t.
        let [below, above] = self.brackets[cell(t as f64).min(K - 1)];
        let u = u as f64;
        if u < below {
            return true;
        }
        if u >= above {
            return false;
        }
        (u + 0.5) / TWO32 < upper_tail(t as f64)
    }

    /// Whether `Φ̄(t) > w` for `w ∈ [0, 1)`: the acceptance test of thinning
    /// (a candidate drawn at bound `p̄` carries `w = V · p̄`, `V ~ U[0, 1)`).
    /// The table settles almost every case; the rest is decided with `erfc`.
    #[inline(always)]
    pub fn tail_exceeds(&self, t: f32, w: f64) -> bool {
        let [below, above] = self.brackets[cell(t as f64).min(K - 1)];
        let x = w * TWO32;
        // below_{k+1} / 2³² < Φ̄(t_{k+1}) ≤ Φ̄(t) (t < t_{k+1} or in the last
        // cell, where below is 0); Φ̄(t) ≤ Φ̄(t_k) < above_k / 2³² for
        // t ≥ t_k (and above_0 > 2³² covers t < t_0).
        if x < below {
            return true;
        }
        if x >= above {
            return false;
        }
        upper_tail(t as f64) > w
    }

    /// `(h, p̄)` for a block whose standardised gaps are all `≥ t_lo`:
    /// `p̄ = 1 − e^{−h} ≥ Φ̄(t)` for every `t ≥ t_lo`. `t_lo` below the table
    /// (or NaN) gives `(∞, 1)`: every position is a candidate.
    #[inline(always)]
    pub fn bound(&self, t_lo: f64) -> (f64, f64) {
        let pos = (t_lo - T0) * SCALE;
        if pos.is_nan() || pos < 0.0 {
            return (f64::INFINITY, 1.0);
        }
        // Grid point t_k ≤ t_lo, so Φ̄(t) ≤ Φ̄(t_lo) ≤ Φ̄(t_k) ≤ p̄_k.
        let k = (pos.min(K as f64) as i32 as usize).min(K);
        let [h, pbar] = self.bounds[k];
        (h, pbar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_bound_dominates_and_tail_exceeds_is_exact() {
        for i in 0..4000 {
            let t = -9.0 + i as f64 * 0.0047;
            let (h, pbar) = tails().bound(t);
            assert!(pbar >= upper_tail(t), "t={t}");
            assert!(h.is_infinite() || (pbar - (-(-h).exp_m1())).abs() < 1e-15);
            // Tight: never more than the next grid cell's worth above Φ̄.
            assert!(pbar <= upper_tail(t - 1.0 / SCALE) + 1e-11, "t={t}");
            for w in [
                0.0,
                1e-9,
                0.3 * upper_tail(t),
                upper_tail(t),
                0.999 * upper_tail(t),
            ] {
                let tf = t as f32;
                assert_eq!(
                    tails().tail_exceeds(tf, w),
                    upper_tail(tf as f64) > w,
                    "t={t} w={w}"
                );
            }
        }
        assert_eq!(tails().bound(f64::NAN).1, 1.0);
        assert!(tails().tail_exceeds(f32::NEG_INFINITY, 0.999_999));
        assert!(!tails().tail_exceeds(f32::INFINITY, 0.0));
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
                assert_eq!(tails().exceeds(t, u), exact, "t={t} u={u}");
            }
            // Right at the decision boundary.
            let b = (p * TWO32 - 0.5).floor().clamp(0.0, TWO32 - 1.0) as u32;
            for u in b.saturating_sub(2)..=b.saturating_add(2) {
                assert_eq!(
                    tails().exceeds(t, u),
                    (u as f64 + 0.5) / TWO32 < p,
                    "t={t} u={u}"
                );
            }
        }
        assert!(tails().exceeds(f32::NEG_INFINITY, u32::MAX));
        assert!(!tails().exceeds(f32::INFINITY, 0));
    }
}
