//! Small numeric kernels for the sampling hot paths.
//!
//! Compiled for several instruction sets and chosen at run time
//! (`multiversion`), so a portable binary still uses AVX-512 / AVX2 where the
//! CPU has them. Results are identical on every target: the gather-sum uses
//! no fused multiply-add, and the copula's gaps use IEEE `fma` (`mul_add`,
//! computed in software where the CPU lacks it) in a fixed order.

use std::sync::LazyLock;

use multiversion::multiversion;
use statrs::function::erf::erfc;

/// `y += a · x` (elementwise, `x` and `y` of equal length).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2",
    "aarch64+neon"
))]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Feature rows [`gather_sum`] adds in one pass over the output row.
const GATHER_GROUP: usize = 4;

/// Asks the cache for the whole feature rows `rows` of `table` (`[N, D]`
/// row-major, `d = D`): a hint, with no effect on results, and nothing on
/// targets without a prefetch instruction.
#[inline(always)]
fn prefetch_rows(table: &[f32], d: usize, rows: &[u32]) {
    #[cfg(target_arch = "x86_64")]
    for &f in rows {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = table.as_ptr().wrapping_add(f as usize * d) as *const i8;
        for line in 0..(d * 4).div_ceil(64) {
            // SAFETY: `prefetch` needs SSE, which every x86-64 CPU has; it
            // reads no memory the program can observe and never faults, so
            // any address (here one derived with `wrapping_add`) is sound.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(line * 64)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (table, d, rows);
}

/// One hidden row `h [D] = bias [D] + Σ_k vals_k · table[idx_k, :]`, with
/// `table` row-major `[N, D]`.
///
/// Feature rows are read whole and in order, [`GATHER_GROUP`] at a time: one
/// pass over `h` (which stays in L1) adds a group's rows, while the whole
/// rows of the next group are requested from memory ([`prefetch_rows`]);
/// during the last group, the first rows of the next sample (`next`, the
/// caller's next `idx`; may be empty) are requested. A row is 3 KB of
/// contiguous memory at D = 768, so the requests run far ahead of the sum.
/// On SynthSAEBench-16k-sized dictionaries (48 MiB, larger than the last-level
/// cache) this is faster than keeping a 64-column tile of `h` in registers
/// across all rows and reading each row 256 bytes at a time (see
/// `docs/benchmarks.md`, 2026-12-02, third session).
///
/// The additions happen in the same order as `h = bias; h += v_k · F_k`
/// (no fused multiply-add), so the result is bit-identical to that loop on
/// every target.
///
/// `idx` and `next` must hold valid row indices (`< table.len() / D`),
/// `h.len() == bias.len() == D`.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2",
    "aarch64+neon"
))]
pub fn gather_sum(
    h: &mut [f32],
    bias: &[f32],
    idx: &[u32],
    vals: &[f32],
    next: &[u32],
    table: &[f32],
) {
    let d = h.len();
    let row = |f: u32| &table[f as usize * d..(f as usize + 1) * d];
    h.copy_from_slice(bias);
    let n = idx.len().min(vals.len());
    prefetch_rows(table, d, &idx[..n.min(GATHER_GROUP)]);
    let mut g = 0;
    while g + GATHER_GROUP <= n {
        let ahead = g + GATHER_GROUP;
        if ahead < n {
            prefetch_rows(table, d, &idx[ahead..n.min(ahead + GATHER_GROUP)]);
        } else {
            prefetch_rows(table, d, &next[..next.len().min(GATHER_GROUP)]);
        }
        let [f0, f1, f2, f3] = [
            row(idx[g]),
            row(idx[g + 1]),
            row(idx[g + 2]),
            row(idx[g + 3]),
        ];
        let [v0, v1, v2, v3] = [vals[g], vals[g + 1], vals[g + 2], vals[g + 3]];
        for ((((y, &x0), &x1), &x2), &x3) in h.iter_mut().zip(f0).zip(f1).zip(f2).zip(f3) {
            let mut a = *y;
            a += v0 * x0;
            a += v1 * x1;
            a += v2 * x2;
            a += v3 * x3;
            *y = a;
        }
        g = ahead;
    }
    if g < n {
        prefetch_rows(table, d, &next[..next.len().min(GATHER_GROUP)]);
    }
    for k in g..n {
        let v = vals[k];
        for (y, &x) in h.iter_mut().zip(row(idx[k])) {
            *y += v * x;
        }
    }
}

/// `t_j = (tau_j − z_j) · inv_s_j`, in place over `z`.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2",
    "aarch64+neon"
))]
pub fn standardized_gap(z: &mut [f32], tau: &[f32], inv_s: &[f32]) {
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
    hazard: Box<[f64; K + 1]>,
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

/// Features whose standardised gaps one call of [`lowrank_gaps`] computes.
pub const GAP_TILE: usize = 64;
/// Rows whose gaps one call of [`lowrank_gaps`] computes (each factor column
/// loaded once serves all of them: 16 AVX-512 accumulators).
pub const GAP_ROWS: usize = 4;
/// Features sharing one thinning bound: [`lowrank_gaps`] returns the
/// minimum gap of each run of `GAP_SUB` features.
pub const GAP_SUB: usize = 16;

/// `Σ_r eps_r · f_r` accumulated from 0 in rank order with fused
/// multiply-adds: the same operations, in the same order, as one lane of
/// [`lowrank_gaps`], so a feature's gap is the same number on every path.
/// (`mul_add` is IEEE fma: targets without the instruction compute it in
/// software, with the same result.)
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub fn lowrank_dot(f: &[f32], eps: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (&x, &e) in f.iter().zip(eps) {
        acc = e.mul_add(x, acc);
    }
    acc
}

/// Lanes of the partial sums of [`lowrank_dots`]; its rows and `ε` are
/// zero-padded to a multiple of this.
pub const DOT_LANES: usize = 8;

/// `out[j] = Σ_r eps_r · rows[s·P + r]` with `s = slots[j]`, where
/// `P = eps.len()` is a multiple of [`DOT_LANES`] (`rows`: `[_, P]`
/// row-major; the caller pads ranks `R < P` with zeros in both).
///
/// Fixed order, vectorised along `r`: lane `l` accumulates the terms
/// `r ≡ l (mod DOT_LANES)` from 0 in rank order with fused multiply-adds,
/// then the lanes are added in a fixed tree. Rust never reassociates
/// floating-point operations, so every target returns the same bits (the
/// zero padding only adds `0·0` terms). Used for the children of a
/// hierarchy, whose gaps come from this one function only.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub fn lowrank_dots(rows: &[f32], eps: &[f32], slots: &[u32], out: &mut [f32]) {
    let p = eps.len();
    // `chunks_exact` below would drop a remainder.
    assert_eq!(p % DOT_LANES, 0, "lowrank_dots: unpadded rank {p}");
    for (o, &s) in out.iter_mut().zip(slots) {
        let row = &rows[s as usize * p..(s as usize + 1) * p];
        let mut acc = [0.0f32; DOT_LANES];
        for (f, e) in row.chunks_exact(DOT_LANES).zip(eps.chunks_exact(DOT_LANES)) {
            for ((a, &x), &e) in acc.iter_mut().zip(f).zip(e) {
                *a = e.mul_add(x, *a);
            }
        }
        let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
        *o = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7));
    }
}

/// Standardised gaps of one tile of `GAP_TILE` features for `GAP_ROWS` rows
/// of a low-rank copula: `out[g][k] = (tau_k − Σ_r eps[g][r] · ft[r · stride + k]) · inv_s_k`,
/// `mins[g][j]` = the smallest gap of features `j·GAP_SUB..(j+1)·GAP_SUB`,
/// and `hz[g][j]` = the hazard of that sub-block's thinning bound,
/// `tails().bound(mins[g][j] as f64).0` (the same number, computed alongside
/// the minima: the per-tile bookkeeping then needs no table lookups).
///
/// * `eps`: `[GAP_ROWS, rank]` row-major shared factors of the rows;
/// * `ft`: the factor columns of the tile, `ft[r * stride + k]` for rank `r`
///   (so `ft` starts at the tile's first column of a `[R, stride]` array);
/// * `tau`, `inv_s`: `[GAP_TILE]` thresholds and `1/√d`.
///
/// The dot products accumulate from 0 in rank order with fused
/// multiply-adds, bit for bit as [`lowrank_dot`]. Gaps are never NaN for
/// finite `eps` (padding has `tau = +∞`), so the minima use plain `<`.
///
/// On x86-64 CPUs with AVX-512 this runs a hand-written kernel (the
/// 16 accumulators stay in registers, which the auto-vectorised loop over
/// the whole tile did not achieve: 4× slower, `docs/benchmarks.md`,
/// 2026-12-02); on x86-64 with AVX2 and FMA only, a hand-written kernel
/// blocked like the portable loop, with vector minima and gathered
/// hazards (1.5–1.8× faster than the portable loop plus scalar hazard
/// lookups on a Zen 3, 2026-12-03, third session); elsewhere the
/// register-blocked portable loop (with it, sampling the SynthSAEBench-16k
/// preset ran 1.5–1.7× faster than with the whole-tile loop on that Zen 3).
#[allow(clippy::too_many_arguments)]
pub fn lowrank_gaps(
    out: &mut [f32],
    out_stride: usize,
    mins: &mut [[f32; GAP_TILE / GAP_SUB]; GAP_ROWS],
    hz: &mut [[f64; GAP_TILE / GAP_SUB]; GAP_ROWS],
    eps: &[f32],
    rank: usize,
    ft: &[f32],
    stride: usize,
    tau: &[f32; GAP_TILE],
    inv_s: &[f32; GAP_TILE],
) {
    let eps = &eps[..GAP_ROWS * rank];
    // Every row's output lies inside `out`.
    let out = &mut out[..(GAP_ROWS - 1) * out_stride + GAP_TILE];
    if rank > 0 {
        // Every column read below lies inside `ft`.
        let _ = &ft[..(rank - 1) * stride + GAP_TILE];
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above), `eps` holds
            // `GAP_ROWS * rank` values, `ft` every column
            // `r * stride .. r * stride + GAP_TILE` for `r < rank` and `out`
            // every row `g * out_stride .. g * out_stride + GAP_TILE` (all
            // checked above); all loads and stores are unaligned accesses
            // inside them.
            unsafe {
                x86::lowrank_gaps_avx512(
                    out, out_stride, mins, hz, eps, rank, ft, stride, tau, inv_s,
                )
            };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked above); the slices'
            // lengths are checked above, as for the AVX-512 kernel.
            unsafe {
                x86::lowrank_gaps_avx2(out, out_stride, mins, hz, eps, rank, ft, stride, tau, inv_s)
            };
            return;
        }
    }
    lowrank_gaps_portable(out, out_stride, mins, eps, rank, ft, stride, tau, inv_s);
    let tails = tails();
    for (h, m) in hz.iter_mut().zip(mins.iter()) {
        *h = m.map(|lo| tails.bound(lo as f64).0);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{tails, GAP_ROWS, GAP_SUB, GAP_TILE, K, SCALE, T0};
    use std::arch::x86_64::*;

    // The kernel holds a tile as four 16-lane vectors, one per sub-block.
    const _: () = assert!(GAP_TILE == 64 && GAP_SUB == 16);

    /// The AVX-512 body of [`super::lowrank_gaps`]: per rank, four 16-lane
    /// column loads and one broadcast per row feed 16 fused multiply-adds
    /// (the same operation per lane as the portable kernel).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `eps.len() >= GAP_ROWS * rank`,
    /// `ft.len() >= (rank - 1) * stride + GAP_TILE` when `rank > 0`, and
    /// `out.len() >= (GAP_ROWS - 1) * out_stride + GAP_TILE`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn lowrank_gaps_avx512(
        out: &mut [f32],
        out_stride: usize,
        mins: &mut [[f32; GAP_TILE / GAP_SUB]; GAP_ROWS],
        hz: &mut [[f64; GAP_TILE / GAP_SUB]; GAP_ROWS],
        eps: &[f32],
        rank: usize,
        ft: &[f32],
        stride: usize,
        tau: &[f32; GAP_TILE],
        inv_s: &[f32; GAP_TILE],
    ) {
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

    /// The AVX2 body of [`super::lowrank_gaps`] (for CPUs without
    /// AVX-512): one 16-feature sub-block at a time, its 4 × 2 accumulators
    /// in registers across the rank loop (per rank, two column loads and one
    /// broadcast per row feed 8 fused multiply-adds: the same operation per
    /// lane as the portable kernel); then the sub-block's gaps, the four
    /// rows' minima by one transposing tree, and at the end the 16 hazards
    /// by four 4-lane gathers.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `eps.len() >= GAP_ROWS * rank`,
    /// `ft.len() >= (rank - 1) * stride + GAP_TILE` when `rank > 0`, and
    /// `out.len() >= (GAP_ROWS - 1) * out_stride + GAP_TILE`.
    #[target_feature(enable = "avx2,fma")]
    // `j` indexes the sub-blocks of `tau`, `inv_s`, `out` and every row of
    // `mins` (the second index), which no single iterator covers.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    pub(super) unsafe fn lowrank_gaps_avx2(
        out: &mut [f32],
        out_stride: usize,
        mins: &mut [[f32; GAP_TILE / GAP_SUB]; GAP_ROWS],
        hz: &mut [[f64; GAP_TILE / GAP_SUB]; GAP_ROWS],
        eps: &[f32],
        rank: usize,
        ft: &[f32],
        stride: usize,
        tau: &[f32; GAP_TILE],
        inv_s: &[f32; GAP_TILE],
    ) {
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
        let c: [__m512; 2] =
            std::array::from_fn(|i| min_lanes::<0x44, 0xEE>(b[2 * i], b[2 * i + 1]));
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
}

/// [`lowrank_gaps`] for any target (auto-vectorised; bit for bit the same).
///
/// Register-blocked: the tile is computed one sub-block of [`GAP_SUB`]
/// features at a time, so the `GAP_ROWS × GAP_SUB` accumulators fit in the
/// vector registers (8 of AVX2's 16, 16 of NEON's 32) across the whole rank
/// loop; accumulating the whole tile at once (256 values) spilled them to
/// the stack on every step. Each lane still accumulates from 0 in rank order
/// with fused multiply-adds, so the gaps are those of [`lowrank_dot`].
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
#[allow(clippy::too_many_arguments)]
fn lowrank_gaps_portable(
    out: &mut [f32],
    out_stride: usize,
    mins: &mut [[f32; GAP_TILE / GAP_SUB]; GAP_ROWS],
    eps: &[f32],
    rank: usize,
    ft: &[f32],
    stride: usize,
    tau: &[f32; GAP_TILE],
    inv_s: &[f32; GAP_TILE],
) {
    let [e0, e1, e2, e3]: [&[f32]; GAP_ROWS] =
        std::array::from_fn(|g| &eps[g * rank..(g + 1) * rank]);
    for j in 0..GAP_TILE / GAP_SUB {
        let first = j * GAP_SUB;
        let mut acc = [[0.0f32; GAP_SUB]; GAP_ROWS];
        for r in 0..rank {
            let at = r * stride + first;
            let col: &[f32; GAP_SUB] = ft[at..at + GAP_SUB].try_into().expect("sub-block");
            let e = [e0[r], e1[r], e2[r], e3[r]];
            for (a, &e) in acc.iter_mut().zip(&e) {
                for (a, &c) in a.iter_mut().zip(col) {
                    *a = e.mul_add(c, *a);
                }
            }
        }
        let tau = &tau[first..first + GAP_SUB];
        let inv_s = &inv_s[first..first + GAP_SUB];
        for (g, (a, m)) in acc.iter().zip(mins.iter_mut()).enumerate() {
            let mut v = [0.0f32; GAP_SUB];
            for (((v, &a), &t), &is) in v.iter_mut().zip(a).zip(tau).zip(inv_s) {
                *v = (t - a) * is;
            }
            let at = g * out_stride + first;
            out[at..at + GAP_SUB].copy_from_slice(&v);
            // Pairwise tree of elementwise minima (vectorises).
            let mut w = GAP_SUB / 2;
            while w > 0 {
                for i in 0..w {
                    if v[i + w] < v[i] {
                        v[i] = v[i + w];
                    }
                }
                w /= 2;
            }
            m[j] = v[0];
        }
    }
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

    /// Whether this CPU can run `x86::lowrank_gaps_avx2`.
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
            if variant == 2 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 and FMA were detected; `eps` holds
                // `GAP_ROWS * r` values, `ft[3..]` every column
                // `q * stride .. q * stride + GAP_TILE` for `q < r`, and
                // `flat` the `GAP_ROWS` rows of `out_stride`.
                unsafe {
                    x86::lowrank_gaps_avx2(
                        &mut flat,
                        out_stride,
                        &mut mins,
                        &mut hz,
                        &eps,
                        r,
                        &ft[3..],
                        stride,
                        &tau,
                        &inv_s,
                    )
                };
            } else if portable {
                lowrank_gaps_portable(
                    &mut flat,
                    out_stride,
                    &mut mins,
                    &eps,
                    r,
                    &ft[3..],
                    stride,
                    &tau,
                    &inv_s,
                );
            } else {
                lowrank_gaps(
                    &mut flat,
                    out_stride,
                    &mut mins,
                    &mut hz,
                    &eps,
                    r,
                    &ft[3..],
                    stride,
                    &tau,
                    &inv_s,
                );
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
            if direct_avx2 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 and FMA were detected; rank 1, and every
                // slice holds a whole tile of `GAP_ROWS` rows.
                unsafe {
                    x86::lowrank_gaps_avx2(
                        &mut out, GAP_TILE, &mut mins, &mut hz, &eps, 1, &ft, GAP_TILE, &tau,
                        &inv_s,
                    )
                };
            } else {
                lowrank_gaps(
                    &mut out, GAP_TILE, &mut mins, &mut hz, &eps, 1, &ft, GAP_TILE, &tau, &inv_s,
                );
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

    #[test]
    fn gather_sum_equals_axpy_loop_bitwise() {
        for d in [1usize, 63, 64, 130, 768] {
            let n = 9;
            let table: Vec<f32> = (0..n * d)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let bias: Vec<f32> = (0..d).map(|i| i as f32 * 0.01).collect();
            let idx = [0u32, 3, 4, 8, 1, 3, 7, 2, 6, 5, 0];
            let vals = [
                0.5f32, 1.25, -2.0, 3.3, 0.7, -1.1, 2.5, 0.01, 9.0, -0.3, 4.4,
            ];
            // Every count of rows: whole groups of four and each remainder.
            for k in 0..=idx.len() {
                let mut want = bias.clone();
                for (&f, &v) in idx[..k].iter().zip(&vals[..k]) {
                    axpy(&mut want, v, &table[f as usize * d..(f as usize + 1) * d]);
                }
                let mut got = vec![f32::NAN; d];
                gather_sum(&mut got, &bias, &idx[..k], &vals[..k], &idx[..2], &table);
                assert_eq!(got, want, "d={d}, {k} rows");
            }
        }
    }

    #[test]
    fn lowrank_dots_use_the_fixed_lane_order() {
        // Rank 25 padded to 32: three full lane chunks and a padded one.
        let (r, p) = (25, 32);
        let eps: Vec<f32> = (0..p)
            .map(|i| {
                if i < r {
                    ((i * 11 % 23) as f32 - 11.0) / 7.0
                } else {
                    0.0
                }
            })
            .collect();
        let rows: Vec<f32> = (0..13 * p)
            .map(|i| {
                if i % p < r {
                    ((i * 5 % 17) as f32 - 8.0) / 9.0
                } else {
                    0.0
                }
            })
            .collect();
        let slots: Vec<u32> = (0..11).map(|j| (j * 7 % 13) as u32).collect();
        let mut many = vec![0.0f32; slots.len()];
        lowrank_dots(&rows, &eps, &slots, &mut many);
        for (m, &s) in many.iter().zip(&slots) {
            let s = s as usize;
            // The fixed lane order, written out term by term (unpadded).
            let f = &rows[s * p..s * p + r];
            let mut lanes = [0.0f32; DOT_LANES];
            for k in 0..r {
                lanes[k % DOT_LANES] = eps[k].mul_add(f[k], lanes[k % DOT_LANES]);
            }
            let want = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
                + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
            // Equal (the padding can only turn a −0 into +0).
            assert_eq!(*m, want);
            // And the rank-order dot's value, to rounding.
            let exact = lowrank_dot(f, &eps[..r]);
            assert!((m - exact).abs() <= 1e-5 * (1.0 + exact.abs()));
        }
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
