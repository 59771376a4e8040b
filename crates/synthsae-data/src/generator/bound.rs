//! The Cauchy–Schwarz candidate bound of a tile of the low-rank plan, and
//! the bisection that finds, per tile, up to which `‖ε‖` thinning at that
//! bound beats computing the tile's gaps.

use synthsae_host::kernels::{tails, GAP_TILE};

/// Largest expected number of Cauchy–Schwarz candidates per tile for which
/// thinning at that bound beats computing the tile's gaps exactly.
const CS_MAX_CANDIDATES: f64 = 2.0;

/// The Cauchy–Schwarz lower bound of the standardised gaps of a tile
/// `(a, c)` (`a = min τ/√d`, `c = max ‖F_i‖/√d_i`) for a row with
/// `‖ε‖ ≤ norm`: `t_i ≥ a − ‖ε‖ c − 10⁻⁴ (1 + ‖ε‖)` (the margin covers the
/// f32 rounding of the gaps).
#[inline(always)]
pub(super) fn cs_lower_gap(a: f64, c: f64, norm: f64) -> f64 {
    a - norm * c - 1e-4 * (1.0 + norm)
}

/// Whether the Cauchy–Schwarz bound of a tile `(a, c)` at `‖ε‖ = norm`
/// predicts at most `CS_MAX_CANDIDATES` candidates.
fn cs_pays(a: f64, c: f64, norm: f64) -> bool {
    let (h, _) = tails().bound(cs_lower_gap(a, c, norm));
    h * GAP_TILE as f64 <= CS_MAX_CANDIDATES
}

/// The largest `‖ε‖` (to 10⁻⁹) for which [`cs_pays`] holds (it holds on an
/// interval `[0, limit]`: the bound only loosens as `‖ε‖` grows); `-1`
/// when it never does.
pub(super) fn cs_norm_limit(a: f64, c: f64) -> f64 {
    if !cs_pays(a, c, 0.0) {
        return -1.0;
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while cs_pays(a, c, hi) {
        lo = hi;
        hi *= 2.0;
        if hi > 1e6 {
            return f64::INFINITY;
        }
    }
    while hi - lo > 1e-9 {
        let mid = 0.5 * (lo + hi);
        if cs_pays(a, c, mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}
