//! The AVX2 + FMA body of the low-rank gap kernel (x86-64 CPUs without
//! AVX-512): blocked like the portable loop, with vector minima and
//! gathered hazards.

use std::arch::x86_64::*;

use super::tile::{GapOut, GapTile, GAP_ROWS, GAP_SUB, GAP_TILE};
use crate::kernels::tails::{tails, K, SCALE, T0};

/// The AVX2 body of [`lowrank_gaps`](super::lowrank_gaps) (for CPUs without
/// AVX-512): one 16-feature sub-block at a time, its 4 × 2 accumulators
/// in registers across the rank loop (per rank, two column loads and one
/// broadcast per row feed 8 fused multiply-adds: the same operation per
/// lane as the portable kernel); then the sub-block's gaps, the four
/// rows' minima by one transposing tree, and at the end the 16 hazards
/// by four 4-lane gathers.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `tile.eps.len() >= GAP_ROWS *
/// rank`, `tile.ft.len() >= (rank - 1) * tile.stride + GAP_TILE` when
/// `rank > 0`, and `out.gaps.len() >= (GAP_ROWS - 1) * out.stride +
/// GAP_TILE`.
#[target_feature(enable = "avx2,fma")]
// `j` indexes the sub-blocks of `tau`, `inv_s`, `out` and every row of
// `mins` (the second index), which no single iterator covers.
#[allow(clippy::needless_range_loop)]
pub(super) unsafe fn gaps(tile: &GapTile<'_>, out: &mut GapOut<'_>) {
    let (eps, rank, ft, stride, tau, inv_s) = tile.parts();
    let (out, out_stride, mins, hz) = out.parts();
    let (fp, op) = (ft.as_ptr(), out.as_mut_ptr());
    let rows: [*const f32; GAP_ROWS] = std::array::from_fn(|g| eps.as_ptr().add(g * rank));
    for j in 0..GAP_TILE / GAP_SUB {
        let first = j * GAP_SUB;
        let z = _mm256_setzero_ps();
        let mut acc = [[z; 2]; GAP_ROWS];
        for r in 0..rank {
            let col = fp.add(r * stride + first);
            let c = [_mm256_loadu_ps(col), _mm256_loadu_ps(col.add(8))];
            for (a, &row) in acc.iter_mut().zip(&rows) {
                let e = _mm256_broadcast_ss(&*row.add(r));
                a[0] = _mm256_fmadd_ps(e, c[0], a[0]);
                a[1] = _mm256_fmadd_ps(e, c[1], a[1]);
            }
        }
        let t = [
            _mm256_loadu_ps(tau.as_ptr().add(first)),
            _mm256_loadu_ps(tau.as_ptr().add(first + 8)),
        ];
        let is = [
            _mm256_loadu_ps(inv_s.as_ptr().add(first)),
            _mm256_loadu_ps(inv_s.as_ptr().add(first + 8)),
        ];
        // Per row, the elementwise minimum of its two gap vectors.
        let mut m = [z; GAP_ROWS];
        for (g, (a, m)) in acc.iter().zip(m.iter_mut()).enumerate() {
            let lo = _mm256_mul_ps(_mm256_sub_ps(t[0], a[0]), is[0]);
            let hi = _mm256_mul_ps(_mm256_sub_ps(t[1], a[1]), is[1]);
            let at = op.add(g * out_stride + first);
            _mm256_storeu_ps(at, lo);
            _mm256_storeu_ps(at.add(8), hi);
            *m = _mm256_min_ps(lo, hi);
        }
        // Halves of rows 0|1 and 2|3 side by side, then the 128-bit
        // lanes' pairs, then neighbours: lane 0 / 1 of the low half hold
        // rows 0 / 2, of the high half rows 1 / 3.
        let u01 = _mm256_min_ps(
            _mm256_permute2f128_ps::<0x20>(m[0], m[1]),
            _mm256_permute2f128_ps::<0x31>(m[0], m[1]),
        );
        let u23 = _mm256_min_ps(
            _mm256_permute2f128_ps::<0x20>(m[2], m[3]),
            _mm256_permute2f128_ps::<0x31>(m[2], m[3]),
        );
        let v = _mm256_min_ps(
            _mm256_shuffle_ps::<0x44>(u01, u23),
            _mm256_shuffle_ps::<0xEE>(u01, u23),
        );
        let w = _mm256_min_ps(
            _mm256_shuffle_ps::<0x88>(v, v),
            _mm256_shuffle_ps::<0xDD>(v, v),
        );
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), w);
        mins[0][j] = lanes[0];
        mins[2][j] = lanes[1];
        mins[1][j] = lanes[4];
        mins[3][j] = lanes[5];
    }
    // The bounds' hazards, four lanes (one row) at a time in f64: the
    // same operations as `TailTables::bound` (`pos = (t − T0)·SCALE`;
    // below 0 or NaN → ∞; else the entry at `min(pos, K)` truncated).
    let table = tails().hazard.as_ptr();
    for (m, h) in mins.iter().zip(hz.iter_mut()) {
        let t = _mm256_cvtps_pd(_mm_loadu_ps(m.as_ptr()));
        let pos = _mm256_mul_pd(_mm256_sub_pd(t, _mm256_set1_pd(T0)), _mm256_set1_pd(SCALE));
        let valid = _mm256_cmp_pd::<_CMP_GE_OQ>(pos, _mm256_setzero_pd());
        let k = _mm256_cvttpd_epi32(_mm256_min_pd(pos, _mm256_set1_pd(K as f64)));
        // SAFETY (of the gather): every index of a `valid` lane is in
        // `0..=K`, inside the `K + 1` table entries; other lanes load
        // nothing.
        let v = _mm256_mask_i32gather_pd::<8>(_mm256_set1_pd(f64::INFINITY), table, k, valid);
        _mm256_storeu_pd(h.as_mut_ptr(), v);
    }
}
