//! The AVX-512 body of the low-rank gap kernel (x86-64): the tile's
//! `GAP_ROWS × 4` sixteen-lane accumulators stay in registers across the
//! rank loop, which the auto-vectorised loop over the whole tile did not
//! achieve.

use std::arch::x86_64::*;

use super::tile::{GapOut, GapTile, GAP_ROWS, GAP_SUB, GAP_TILE};
use crate::kernels::tails::{tails, K, SCALE, T0};

// The kernel holds a tile as four 16-lane vectors, one per sub-block.
const _: () = assert!(GAP_TILE == 64 && GAP_SUB == 16);

/// The AVX-512 body of [`lowrank_gaps`](super::lowrank_gaps): per rank, four 16-lane
/// column loads and one broadcast per row feed 16 fused multiply-adds
/// (the same operation per lane as the portable kernel).
///
/// # Safety
/// The CPU must support AVX-512F; `tile.eps.len() >= GAP_ROWS * rank`,
/// `tile.ft.len() >= (rank - 1) * tile.stride + GAP_TILE` when
/// `rank > 0`, and `out.gaps.len() >= (GAP_ROWS - 1) * out.stride +
/// GAP_TILE`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gaps(tile: &GapTile<'_>, out: &mut GapOut<'_>) {
    let (eps, rank, ft, stride, tau, inv_s) = tile.parts();
    let (out, out_stride, mins, hz) = out.parts();
    let z = _mm512_setzero_ps();
    let mut acc = [[z; 4]; GAP_ROWS];
    let (ep, fp) = (eps.as_ptr(), ft.as_ptr());
    for r in 0..rank {
        let col = fp.add(r * stride);
        let c = [
            _mm512_loadu_ps(col),
            _mm512_loadu_ps(col.add(16)),
            _mm512_loadu_ps(col.add(32)),
            _mm512_loadu_ps(col.add(48)),
        ];
        for (g, a) in acc.iter_mut().enumerate() {
            let e = _mm512_set1_ps(*ep.add(g * rank + r));
            for (a, &c) in a.iter_mut().zip(&c) {
                *a = _mm512_fmadd_ps(e, c, *a);
            }
        }
    }
    // The 16 gap vectors, vector `4 j + g` for row `g`, sub-block `j`.
    let mut v = [z; 16];
    for j in 0..4 {
        let t = _mm512_loadu_ps(tau.as_ptr().add(16 * j));
        let is = _mm512_loadu_ps(inv_s.as_ptr().add(16 * j));
        for g in 0..GAP_ROWS {
            let gap = _mm512_mul_ps(_mm512_sub_ps(t, acc[g][j]), is);
            _mm512_storeu_ps(out.as_mut_ptr().add(g * out_stride + 16 * j), gap);
            v[4 * j + g] = gap;
        }
    }
    let m = min_of_each(v);
    _mm512_storeu_ps(mins.as_mut_ptr().cast::<f32>(), m);
    // The bounds' hazards, eight lanes at a time in f64: the same
    // operations as `TailTables::bound` (`pos = (t − T0)·SCALE`; below 0
    // or NaN → ∞; else the entry at `min(pos, K)` truncated).
    let table = tails().hazard.as_ptr();
    let out = hz.as_mut_ptr().cast::<f64>();
    let halves = [
        _mm512_castps512_ps256(m),
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(m))),
    ];
    for (half, &lanes) in halves.iter().enumerate() {
        let t = _mm512_cvtps_pd(lanes);
        let pos = _mm512_mul_pd(_mm512_sub_pd(t, _mm512_set1_pd(T0)), _mm512_set1_pd(SCALE));
        let valid = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(pos, _mm512_setzero_pd());
        let k = _mm512_cvttpd_epi32(_mm512_min_pd(pos, _mm512_set1_pd(K as f64)));
        // SAFETY (of the gather): every index of a `valid` lane is in
        // `0..=K`, inside the `K + 1` table entries; other lanes load
        // nothing.
        let h = _mm512_mask_i32gather_pd::<8>(_mm512_set1_pd(f64::INFINITY), valid, k, table);
        _mm512_storeu_pd(out.add(8 * half), h);
    }
}

/// The 16 horizontal minima of `v` at once: lane `4 g + j` of the result
/// is the smallest lane of `v[4 j + g]` (a transposing tree of 45
/// shuffles and minima instead of 16 separate reductions; the minima
/// are exact, so the order does not matter).
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn min_of_each(v: [__m512; 16]) -> __m512 {
    // Each 128-bit quarter with the one two places on (8 lanes left per
    // vector, two vectors per register), then adjacent quarters (4
    // lanes, four vectors per register); then within each quarter,
    // lanes two apart, then adjacent lanes.
    let a: [__m512; 8] =
        std::array::from_fn(|i| min_quarters::<0x44, 0xEE>(v[2 * i], v[2 * i + 1]));
    let b: [__m512; 4] =
        std::array::from_fn(|i| min_quarters::<0x88, 0xDD>(a[2 * i], a[2 * i + 1]));
    let c: [__m512; 2] = std::array::from_fn(|i| min_lanes::<0x44, 0xEE>(b[2 * i], b[2 * i + 1]));
    min_lanes::<0x88, 0xDD>(c[0], c[1])
}

/// `min(shuffle_f32x4::<LO>(a, b), shuffle_f32x4::<HI>(a, b))`: one
/// step of [`min_of_each`] across 128-bit quarters.
#[target_feature(enable = "avx512f")]
fn min_quarters<const LO: i32, const HI: i32>(a: __m512, b: __m512) -> __m512 {
    _mm512_min_ps(
        _mm512_shuffle_f32x4::<LO>(a, b),
        _mm512_shuffle_f32x4::<HI>(a, b),
    )
}

/// `min(shuffle_ps::<LO>(a, b), shuffle_ps::<HI>(a, b))`: one step of
/// [`min_of_each`] within 128-bit quarters.
#[target_feature(enable = "avx512f")]
fn min_lanes<const LO: i32, const HI: i32>(a: __m512, b: __m512) -> __m512 {
    _mm512_min_ps(_mm512_shuffle_ps::<LO>(a, b), _mm512_shuffle_ps::<HI>(a, b))
}
