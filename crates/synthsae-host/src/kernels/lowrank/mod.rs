//! The low-rank copula's gap kernel: standardised gaps
//! `t_i = (τ_i − F_i·ε)/√d_i` of one tile of features for a block of rows,
//! with each sub-block's minimum and thinning hazard, plus the scalar and
//! gathered dot products whose operation order the kernel reproduces.
//!
//! * `tile`: the tile shape ([`GAP_TILE`], [`GAP_ROWS`], [`GAP_SUB`]) and
//!   the kernel's argument structs [`GapTile`] and [`GapOut`];
//! * `dots`: [`lowrank_dot`] (the scalar reference of every gap) and
//!   [`lowrank_dots`] (gathered rows);
//! * `portable`, `x86_avx512`, `x86_avx2`: the kernel's bodies (private);
//!   [`lowrank_gaps`] picks one at run time.

mod dots;
mod portable;
mod tile;
#[cfg(target_arch = "x86_64")]
mod x86_avx2;
#[cfg(target_arch = "x86_64")]
mod x86_avx512;

pub use dots::{lowrank_dot, lowrank_dots, DOT_LANES};
pub use tile::{GapOut, GapTile, SubHazards, SubMins, GAP_ROWS, GAP_SUB, GAP_TILE};

use crate::kernels::tails::tails;

/// Standardised gaps of one tile of `GAP_TILE` features for `GAP_ROWS` rows
/// of a low-rank copula ([`GapTile`] → [`GapOut`]): row `g`'s gap of feature
/// `k` is `(tau_k − Σ_r eps[g][r] · ft[r · stride + k]) · inv_s_k`;
/// `out.mins[g][j]` is the smallest gap of features `j·GAP_SUB..(j+1)·GAP_SUB`
/// and `out.hz[g][j]` the hazard of that sub-block's thinning bound,
/// `tails().bound(mins[g][j] as f64).0` (the same number, computed alongside
/// the minima: the per-tile bookkeeping then needs no table lookups).
///
/// The dot products accumulate from 0 in rank order with fused
/// multiply-adds, bit for bit as [`lowrank_dot`]. Gaps are never NaN for
/// finite `eps` (padding has `tau = +∞`), so the minima use plain `<`.
///
/// Runs, chosen at run time: on x86-64 CPUs with AVX-512 the hand-written
/// AVX-512 kernel (its 16 accumulators stay in registers, which the
/// auto-vectorised loop over the whole tile did not achieve); on x86-64
/// with AVX2 and FMA only, the hand-written AVX2 kernel (blocked like the
/// portable loop, with vector minima and gathered hazards); elsewhere the
/// register-blocked portable loop, then the hazards by table lookups.
/// Compare them with `cargo bench --bench sampling_scale -- --only
/// synthsaebench_16k` on CPUs of each kind.
///
/// Panics when a slice is shorter than the shapes above.
pub fn lowrank_gaps(tile: &GapTile<'_>, out: &mut GapOut<'_>) {
    let tile = &GapTile {
        eps: &tile.eps[..GAP_ROWS * tile.rank],
        ..*tile
    };
    // Every row's output lies inside `out.gaps`.
    let out_stride = out.stride;
    let out = &mut GapOut {
        gaps: &mut out.gaps[..(GAP_ROWS - 1) * out_stride + GAP_TILE],
        stride: out_stride,
        mins: &mut *out.mins,
        hz: &mut *out.hz,
    };
    if tile.rank > 0 {
        // Every column read below lies inside `ft`.
        let _ = &tile.ft[..(tile.rank - 1) * tile.stride + GAP_TILE];
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above), `eps` holds
            // `GAP_ROWS * rank` values, `ft` every column
            // `r * stride .. r * stride + GAP_TILE` for `r < rank` and
            // `out.gaps` every row `g * out.stride .. g * out.stride +
            // GAP_TILE` (all checked above); all loads and stores are
            // unaligned accesses inside them.
            unsafe { x86_avx512::gaps(tile, out) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked above); the slices'
            // lengths are checked above, as for the AVX-512 kernel.
            unsafe { x86_avx2::gaps(tile, out) };
            return;
        }
    }
    portable::gaps_and_mins(tile, out);
    let tails = tails();
    for (h, m) in out.hz.iter_mut().zip(out.mins.iter()) {
        *h = m.map(|lo| tails.bound(lo as f64).0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this CPU can run `x86_avx2::gaps`.
    fn has_avx2_fma() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    #[test]
    fn lowrank_gaps_match_the_scalar_dot_bitwise() {
        let (r, stride) = (5, 70);
        let ft: Vec<f32> = (0..r * stride)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) / 30.0)
            .collect();
        let eps: Vec<f32> = (0..GAP_ROWS * r)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let mut tau: [f32; GAP_TILE] = std::array::from_fn(|k| k as f32 * 0.05);
        tau[GAP_TILE - 1] = f32::INFINITY;
        let inv_s: [f32; GAP_TILE] = std::array::from_fn(|k| 1.0 + k as f32 * 0.01);
        let out_stride = GAP_TILE + 5;
        let mut flat = vec![0.0f32; GAP_ROWS * out_stride];
        // 0: the dispatched kernel; 1: the portable loop; 2: the AVX2 kernel
        // directly (on CPUs that have it, so AVX-512 machines check it too).
        for variant in 0..if has_avx2_fma() { 3 } else { 2 } {
            let portable = variant == 1;
            // Fresh NaN outputs, so no variant passes on another's results.
            flat.fill(f32::NAN);
            let mut mins = [[f32::NAN; GAP_TILE / GAP_SUB]; GAP_ROWS];
            let mut hz = [[f64::NAN; GAP_TILE / GAP_SUB]; GAP_ROWS];
            let tile = GapTile {
                eps: &eps,
                rank: r,
                ft: &ft[3..],
                stride,
                tau: &tau,
                inv_s: &inv_s,
            };
            let mut out = GapOut {
                gaps: &mut flat,
                stride: out_stride,
                mins: &mut mins,
                hz: &mut hz,
            };
            if variant == 2 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 and FMA were detected; `eps` holds
                // `GAP_ROWS * r` values, `ft[3..]` every column
                // `q * stride .. q * stride + GAP_TILE` for `q < r`, and
                // `flat` the `GAP_ROWS` rows of `out_stride`.
                unsafe {
                    x86_avx2::gaps(&tile, &mut out)
                };
            } else if portable {
                portable::gaps_and_mins(&tile, &mut out);
            } else {
                lowrank_gaps(&tile, &mut out);
            }
            if !portable {
                for (h, m) in hz.iter().zip(&mins) {
                    for (&h, &m) in h.iter().zip(m) {
                        assert_eq!(h.to_bits(), tails().bound(m as f64).0.to_bits());
                    }
                }
            }
            let got: Vec<&[f32]> = (0..GAP_ROWS)
                .map(|g| &flat[g * out_stride..g * out_stride + GAP_TILE])
                .collect();
            for g in 0..GAP_ROWS {
                for k in 0..GAP_TILE {
                    let f: Vec<f32> = (0..r).map(|q| ft[q * stride + 3 + k]).collect();
                    let want = (tau[k] - lowrank_dot(&f, &eps[g * r..(g + 1) * r])) * inv_s[k];
                    assert_eq!(got[g][k].to_bits(), want.to_bits(), "row {g} feature {k}");
                }
                for (j, m) in mins[g].iter().enumerate() {
                    let want = got[g][j * GAP_SUB..(j + 1) * GAP_SUB]
                        .iter()
                        .copied()
                        .fold(f32::INFINITY, f32::min);
                    assert_eq!(*m, want);
                }
            }
            assert_eq!(got[0][GAP_TILE - 1], f32::INFINITY);
        }
    }

    #[test]
    fn lowrank_gaps_hazards_match_bound_at_the_table_edges() {
        // Rank 1 with unit factors: gap = tau − eps_g, so sub-block j of row
        // g has the minimum subs[j] − eps_g: −∞ (every row), the table's
        // first grid point (row 0) and below it (rows 1, 3), grid points and
        // between them inside the table, and above its end (16 > t_K = 8).
        let ft = [1.0f32; GAP_TILE];
        let eps = [0.0f32, 1.0, -0.5, 20.0];
        let subs = [f32::NEG_INFINITY, -8.0, 0.3, 16.0];
        let tau: [f32; GAP_TILE] = std::array::from_fn(|k| {
            // The sub-block's minimum sits on its last feature.
            subs[k / GAP_SUB] + (GAP_SUB - 1 - k % GAP_SUB) as f32 * 0.25
        });
        let inv_s = [1.0f32; GAP_TILE];
        let mut out = [0.0f32; GAP_ROWS * GAP_TILE];
        // The dispatched kernel, then (where the CPU has it) the AVX2 one.
        for direct_avx2 in [false, true].into_iter().take(1 + has_avx2_fma() as usize) {
            // Fresh NaN outputs, so the second call cannot pass on the first's.
            out.fill(f32::NAN);
            let mut mins = [[f32::NAN; GAP_TILE / GAP_SUB]; GAP_ROWS];
            let mut hz = [[f64::NAN; GAP_TILE / GAP_SUB]; GAP_ROWS];
            let tile = GapTile {
                eps: &eps,
                rank: 1,
                ft: &ft,
                stride: GAP_TILE,
                tau: &tau,
                inv_s: &inv_s,
            };
            let mut gaps = GapOut {
                gaps: &mut out,
                stride: GAP_TILE,
                mins: &mut mins,
                hz: &mut hz,
            };
            if direct_avx2 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 and FMA were detected; rank 1, and every
                // slice holds a whole tile of `GAP_ROWS` rows.
                unsafe {
                    x86_avx2::gaps(&tile, &mut gaps)
                };
            } else {
                lowrank_gaps(&tile, &mut gaps);
            }
            for g in 0..GAP_ROWS {
                for j in 0..GAP_TILE / GAP_SUB {
                    assert_eq!(mins[g][j], subs[j] - eps[g], "row {g} sub-block {j}");
                    let want = tails().bound(mins[g][j] as f64).0;
                    assert_eq!(hz[g][j].to_bits(), want.to_bits(), "row {g} sub-block {j}");
                }
            }
            assert!(hz[0][0].is_infinite() && hz[1][1].is_infinite());
            // Above the table the bound is the last entry, at most 2⁻³²
            // above Φ̄(8).
            assert!(hz[0][3] < 1e-9 && hz[3][2].is_infinite());
        }
    }
}
