//! Host fast paths for inference on CPU backends (flex, ndarray).
//!
//! Evaluating a 16384-latent SAE on 100k samples spends most of its time on
//! two things a dense device formulation does badly on a CPU: the per-row
//! TopK (a selection plus four `[B, S]` temporaries on the device) and the
//! decode `z · W_dec` of latents that are > 99 % zeros. On backends that
//! compute in host memory, when no gradient is tracked, both run here on
//! row-major host buffers with rayon instead; results equal the device path
//! (same selection rule, and every kept product is accumulated in the same
//! order as a dot product over the row's active latents).

use burn::prelude::*;
use burn::tensor::TensorData;
use multiversion::multiversion;
use rayon::prelude::*;

use crate::ops::{nth_largest_host, row_kth_largest, to_vec};

/// Largest fraction of non-zero latents for which [`sparse_decode_host`]
/// gathers rows instead of leaving the dense matmul to the backend
/// (a gathered row costs about as much as ~20 dense multiply-adds per entry).
pub const HOST_SPARSE_MAX_DENSITY: f64 = 0.05;

/// Whether a host fast path may replace the device ops for `t`: the backend
/// computes in host memory and `t` carries no autodiff graph.
pub fn host_path_ok<B: Backend, const D: usize>(t: &Tensor<B, D>) -> bool {
    if t.is_require_grad() {
        return false;
    }
    synthsae_host::is_cpu::<B>()
}

/// Per-row TopK on the host, `[B, S]` → `[B, S]`: entries whose key (`x`, or
/// `|x|` with `abs`) is at least the row's `k`-th largest key are kept
/// (ties keep every tied entry, as [`crate::ops::row_topk_mask`]), with relu
/// unless `abs`; all others become 0.
pub fn topk_host<B: Backend>(x: Tensor<B, 2>, k: usize, abs: bool) -> Tensor<B, 2> {
    let [b, s] = x.dims();
    let device = x.device();
    let mut data = to_vec(x);
    if s > 0 {
        data.par_chunks_mut(s)
            .for_each_init(Vec::new, |scratch, row| {
                let key = |v: f32| if abs { v.abs() } else { v };
                let cut = if k == 0 {
                    f32::INFINITY
                } else if k >= s {
                    f32::NEG_INFINITY
                } else {
                    row_kth_largest(row, k, key, scratch).unwrap_or(f32::NEG_INFINITY)
                };
                for v in row.iter_mut() {
                    let keep = if k == 0 { false } else { key(*v) >= cut };
                    if !keep || (!abs && *v < 0.0) {
                        *v = 0.0;
                    }
                }
            });
    }
    Tensor::from_data(TensorData::new(data, [b, s]), &device)
}

/// `z · w` for a mostly-zero `z` (`[B, S]`, `w`: `[S, D]`) by gathering the
/// rows of `w` at each row's non-zero latents: `[B, D]`. `None` (nothing
/// computed) when the host path does not apply or more than
/// [`HOST_SPARSE_MAX_DENSITY`] of `z` is non-zero.
pub fn sparse_decode_host<B: Backend>(z: &Tensor<B, 2>, w: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    if !host_path_ok(z) || !host_path_ok(w) {
        return None;
    }
    let [b, s] = z.dims();
    let [s_w, d] = w.dims();
    if s != s_w || b == 0 || s == 0 || d == 0 {
        return None;
    }
    // Borrowed, not copied, on Flex (`z` is 268 MB at 4096 × 16384).
    let zh = crate::fused::host_values(z.clone());
    let nnz = zh.par_iter().filter(|v| **v != 0.0).count();
    if nnz as f64 > HOST_SPARSE_MAX_DENSITY * zh.len() as f64 {
        return None;
    }
    let wh = crate::fused::host_values(w.clone());
    let mut out = vec![0.0f32; b * d];
    out.par_chunks_mut(d)
        .zip(zh.par_chunks(s))
        .for_each(|(o, zr)| {
            for (c, &v) in zr.iter().enumerate() {
                if v != 0.0 {
                    let wr = &wh[c * d..(c + 1) * d];
                    for (o, &w) in o.iter_mut().zip(wr) {
                        *o += v * w;
                    }
                }
            }
        });
    Some(Tensor::from_data(TensorData::new(out, [b, d]), &z.device()))
}

/// How [`sparse_forward_host`] picks each row's active latents from its
/// pre-activations.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HostSelect<'a> {
    /// The rule of [`topk_host`].
    TopK {
        /// Latents kept per row.
        k: usize,
        /// Rank by `|x|` and keep the sign (AbsTopK) instead of relu.
        abs: bool,
    },
    /// JumpReLU: `x` where `x > θ_s` and `x > 0` (`θ`: `[S]`).
    Threshold(&'a [f32]),
}

/// Rows of pre-activations computed per gemm: large enough that the packing
/// of `W_enc` (once per call) is a few percent of the multiply, small enough
/// that the block (64 MB at S = 16384) is read back once, right after.
const FORWARD_BLOCK_ROWS: usize = 1024;

/// Encode and decode of a linear-encoder SAE without the dense latents, on
/// host backends: for each block of rows, `pre = xp · W_enc + b_enc` (times
/// the decoder norms `n` with `rescale`) by the backend's gemm, then per row
/// (rayon) the active latents by `select`, and the row's reconstruction
/// `Σ z_s / n_s · W_dec[s]` (`/ n_s` only with `rescale`), accumulated in
/// increasing latent order as [`sparse_decode_host`] does. Every value equals
/// the dense path's (`encode`, then `decode` through [`sparse_decode_host`]).
///
/// `xp`: processed input `[B, D]`. Returns the latents and `z · W_dec`
/// (`[B, D]`, without `b_dec`), or `None` when the host path does not apply
/// or the first block has more than [`HOST_SPARSE_MAX_DENSITY`] of its
/// latents active.
pub(crate) fn sparse_forward_host<B: Backend>(
    core: &crate::arch::LinearCore<B>,
    xp: Tensor<B, 2>,
    select: HostSelect<'_>,
    rescale: bool,
) -> Option<(synthsae_host::Csr, Tensor<B, 2>)> {
    let w_enc = core.w_enc.val();
    if !host_path_ok(&xp) || !host_path_ok(&w_enc) {
        return None;
    }
    let [b, d] = xp.dims();
    let [d_w, s] = w_enc.dims();
    if d != d_w || s == 0 || d == 0 {
        return None;
    }
    if let HostSelect::Threshold(t) = select {
        if t.len() != s {
            return None;
        }
    }
    let device = xp.device();
    let bias = to_vec(core.b_enc.val());
    let norms = rescale.then(|| to_vec(core.norms()));
    let w_dec = crate::fused::host_values(core.w_dec.val());
    let mut latents = synthsae_host::Csr::empty(s);
    let mut out = vec![0.0f32; b * d];
    let mut start = 0;
    while start < b {
        let rows = FORWARD_BLOCK_ROWS.min(b - start);
        // Borrowed on Flex: the block is read once, row by row, into a
        // per-thread buffer that stays in cache.
        let pre =
            crate::fused::host_values(xp.clone().narrow(0, start, rows).matmul(w_enc.clone()));
        let picked: Vec<Vec<(u32, f32)>> = pre
            .par_chunks(s)
            .zip(out[start * d..(start + rows) * d].par_chunks_mut(d))
            .map_init(RowScratch::default, |scratch, (pre_row, o)| {
                let mut row = std::mem::take(&mut scratch.row);
                row.resize(s, 0.0);
                add_into(&mut row, pre_row, &bias);
                if let Some(n) = &norms {
                    mul_assign(&mut row, n);
                }
                let kept = select_row(&row, select, scratch);
                scratch.row = row;
                debug_assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
                for &(c, v) in &kept {
                    let c = c as usize;
                    let v = match &norms {
                        Some(n) => v / n[c],
                        None => v,
                    };
                    axpy(o, v, &w_dec[c * d..(c + 1) * d]);
                }
                kept
            })
            .collect();
        for kept in picked {
            latents.push_row(kept);
        }
        if start == 0 && latents.nnz() as f64 > HOST_SPARSE_MAX_DENSITY * (rows * s) as f64 {
            // Dense latents: the gemm decode of the dense path is cheaper
            // than gathering (one block of work is discarded).
            return None;
        }
        start += rows;
    }
    Some((
        latents,
        Tensor::from_data(TensorData::new(out, [b, d]), &device),
    ))
}

// Element-wise kernels of the sparse forward, compiled for several
// instruction sets (`multiversion`, as in synthsae-data): a portable binary
// still runs them with AVX-512 or AVX2. Multiplies and adds stay separate
// (Rust never contracts them into FMAs), so every target gives the same
// bits as the plain loops of the dense path.

/// `out = a + b` (element-wise).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2",
    "aarch64+neon"
))]
fn add_into(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = a + b;
    }
}

/// `row *= scale` (element-wise).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2",
    "aarch64+neon"
))]
fn mul_assign(row: &mut [f32], scale: &[f32]) {
    for (v, &s) in row.iter_mut().zip(scale) {
        *v *= s;
    }
}

/// `y += a · x`.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2",
    "aarch64+neon"
))]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Appends to `out` the indices `c` with `row[c] ≥ lo` (`|row[c]| ≥ lo`
/// with `abs`), in increasing order; NaN never passes. Compares 64 entries
/// at a time into byte flags (vectorised), then visits only the set flags
/// eight at a time: a scalar compare-and-push loop was the slowest part of
/// a 16k-latent TopK eval after the gemm.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2",
    "aarch64+neon"
))]
pub(crate) fn indices_at_least(row: &[f32], lo: f32, abs: bool, out: &mut Vec<u32>) {
    const BLOCK: usize = 64;
    let passes = |v: f32| if abs { v.abs() >= lo } else { v >= lo };
    let mut flags = [0u8; BLOCK];
    let chunks = row.chunks_exact(BLOCK);
    let tail = chunks.remainder();
    for (i, chunk) in chunks.enumerate() {
        for (f, &v) in flags.iter_mut().zip(chunk) {
            *f = passes(v) as u8;
        }
        for g in 0..BLOCK / 8 {
            let bytes: [u8; 8] = flags[g * 8..g * 8 + 8].try_into().expect("8 bytes");
            // Each flag byte is 0 or 1: one set bit per passing entry.
            let mut word = u64::from_le_bytes(bytes);
            while word != 0 {
                out.push((i * BLOCK + g * 8) as u32 + word.trailing_zeros() / 8);
                word &= word - 1;
            }
        }
    }
    let start = row.len() - tail.len();
    for (j, &v) in tail.iter().enumerate() {
        if passes(v) {
            out.push((start + j) as u32);
        }
    }
}

/// Working memory of [`select_row`], reused across the rows of a thread.
#[derive(Default)]
struct RowScratch {
    keys: Vec<f32>,
    cols: Vec<u32>,
    /// The row's pre-activations (bias added, rescaled).
    row: Vec<f32>,
}

/// One row's non-zero latents under `select`, in increasing latent order.
fn select_row(row: &[f32], select: HostSelect<'_>, scratch: &mut RowScratch) -> Vec<(u32, f32)> {
    match select {
        HostSelect::TopK { k, abs: false } => topk_row::<false>(row, k, scratch),
        HostSelect::TopK { k, abs: true } => topk_row::<true>(row, k, scratch),
        HostSelect::Threshold(theta) => {
            let mut kept = Vec::new();
            for (c, (&v, &t)) in row.iter().zip(theta).enumerate() {
                if v > t && v > 0.0 {
                    kept.push((c as u32, v));
                }
            }
            kept
        }
    }
}

#[inline(always)]
fn topk_key<const ABS: bool>(v: f32) -> f32 {
    if ABS {
        v.abs()
    } else {
        v
    }
}

/// [`topk_host`]'s rule for one row, returning the kept non-zero entries:
/// the cut-off is the `k`-th largest key found as [`row_kth_largest`] finds
/// it (the `k`-th largest of the first `16k` keys bounds it from below, and
/// only keys at or above the bound are selected among), and the entries kept
/// are the candidates at or above the cut-off, so the row is scanned once.
/// Same cut-off and entries as `topk_host` (NaN keys included: they are
/// never kept).
fn topk_row<const ABS: bool>(row: &[f32], k: usize, scratch: &mut RowScratch) -> Vec<(u32, f32)> {
    let s = row.len();
    let keep = |v: f32| v != 0.0 && (ABS || v > 0.0);
    let mut kept = Vec::with_capacity(k.min(s));
    if k == 0 {
        return kept;
    }
    if k >= s {
        for (c, &v) in row.iter().enumerate() {
            if keep(v) && !v.is_nan() {
                kept.push((c as u32, v));
            }
        }
        return kept;
    }
    let RowScratch { keys, cols, .. } = scratch;
    let head = 16 * k;
    cols.clear();
    if head < s / 2 {
        keys.clear();
        keys.extend(row[..head].iter().map(|&v| topk_key::<ABS>(v)));
        let lo = nth_largest_host(keys, k).unwrap_or(f32::NAN);
        indices_at_least(row, lo, ABS, cols);
    }
    if cols.len() < k {
        // Short rows, or NaN keys in the head: all entries are candidates.
        cols.clear();
        cols.extend(0..s as u32);
    }
    keys.clear();
    keys.extend(cols.iter().map(|&c| topk_key::<ABS>(row[c as usize])));
    let cut = nth_largest_host(keys, k).unwrap_or(f32::NEG_INFINITY);
    for &c in cols.iter() {
        let v = row[c as usize];
        if topk_key::<ABS>(v) >= cut && keep(v) {
            kept.push((c, v));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex, NdArray};
    use burn::tensor::Distribution;

    fn close(a: Vec<f32>, b: Vec<f32>, tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{i}: {x} vs {y}");
        }
    }

    #[test]
    fn topk_host_equals_device_masks() {
        let device = Default::default();
        Flex::seed(&device, 1);
        let x = Tensor::<Flex, 2>::random([7, 50], Distribution::Normal(0.0, 1.0), &device);
        for k in [0, 1, 5, 49, 50, 80] {
            for abs in [false, true] {
                let host = to_vec(topk_host(x.clone(), k, abs));
                let dev = to_vec(crate::arch::topk::topk_activation_device(x.clone(), k, abs));
                assert_eq!(host, dev, "k {k} abs {abs}");
            }
        }
    }

    #[test]
    fn sparse_decode_equals_dense_matmul() {
        let device = Default::default();
        <NdArray as Backend>::seed(&device, 2);
        let w = Tensor::<NdArray, 2>::random([300, 9], Distribution::Normal(0.0, 1.0), &device);
        let x = Tensor::<NdArray, 2>::random([6, 300], Distribution::Normal(0.0, 1.0), &device);
        let z = topk_host(x, 3, false);
        let sparse = sparse_decode_host(&z, &w).expect("1 % dense on a host backend");
        close(to_vec(sparse), to_vec(z.clone().matmul(w.clone())), 1e-5);
        // Too dense: left to the backend.
        let dense = Tensor::<NdArray, 2>::ones([6, 300], &device);
        assert!(sparse_decode_host(&dense, &w).is_none());
    }

    /// A random linear core (`D` 12, `S` 300) with the encoder bias shifted
    /// by `shift` (a negative shift keeps relu / JumpReLU latents sparse).
    fn random_core<Bk: Backend>(shift: f32) -> crate::arch::LinearCore<Bk> {
        use crate::ops::param;
        let device = Default::default();
        Bk::seed(&device, 3);
        let n = Distribution::Normal(0.0, 1.0);
        crate::arch::LinearCore {
            w_enc: param(Tensor::random([12, 300], n, &device)),
            w_dec: param(Tensor::random([300, 12], n, &device)),
            b_enc: param(Tensor::random([300], n, &device) + shift),
            b_dec: param(Tensor::random([12], n, &device)),
        }
    }

    fn sae_cfg(arch: crate::config::InferenceArch, norm: &str) -> crate::config::SaeConfig {
        let mut base = crate::config::SaeBase::new(12, 300);
        base.normalize_activations = crate::config::NormalizeActivations::parse(norm).unwrap();
        crate::config::SaeConfig { base, arch }
    }

    /// `forward_sparse` against `encode` + `decode` on the same input:
    /// identical latents and reconstruction (the decode takes the sparse
    /// gather on both paths at these densities).
    fn check_sparse_forward<Bk: Backend>(sae: &dyn crate::Sae<Bk>, rows: usize) {
        let device = Default::default();
        let x = Tensor::<Bk, 2>::random([rows, 12], Distribution::Normal(0.0, 1.0), &device);
        let f = sae
            .forward_sparse(x.clone())
            .expect("host backend, sparse latents");
        let z = sae.encode(x);
        let out = sae.decode(z.clone());
        assert_eq!(f.latents.n_rows(), rows);
        assert_eq!(f.latents.n_cols(), 300);
        let dense = to_vec(z);
        assert!(dense.iter().any(|&v| v != 0.0));
        assert_eq!(f.latents.to_dense_vec(), dense);
        assert_eq!(f.latents.nnz(), dense.iter().filter(|&&v| v != 0.0).count());
        assert_eq!(to_vec(f.output), to_vec(out));
    }

    #[test]
    fn sparse_forward_equals_encode_decode() {
        use crate::arch::{jumprelu::JumpReluSae, standard::StandardSae, topk::TopKSae};
        use crate::config::InferenceArch;
        use crate::Sae;
        // 2500 rows: three gemm blocks, the last one partial.
        for norm in ["none", "constant_norm_rescale", "layer_norm"] {
            for rescale in [false, true] {
                for (k, abs) in [(3, false), (3, true), (0, false), (1, true)] {
                    let arch = if abs {
                        InferenceArch::AbsTopK {
                            k,
                            rescale_acts_by_decoder_norm: rescale,
                        }
                    } else {
                        InferenceArch::TopK {
                            k,
                            rescale_acts_by_decoder_norm: rescale,
                        }
                    };
                    let sae = TopKSae::<Flex>::new(random_core(0.0), sae_cfg(arch, norm));
                    if k == 0 {
                        let x = Tensor::<Flex, 2>::ones([4, 12], &Default::default());
                        let f = sae.forward_sparse(x).expect("k 0: no latents");
                        assert_eq!((f.latents.nnz(), f.latents.n_rows()), (0, 4));
                        continue;
                    }
                    check_sparse_forward::<Flex>(&sae, 2500);
                }
            }
            let standard =
                StandardSae::<Flex>::new(random_core(-8.0), sae_cfg(InferenceArch::Standard, norm));
            check_sparse_forward::<Flex>(&standard, 2500);
            // Pre-activations have a standard deviation of about √12 ≈ 3.5:
            // a shift or threshold of 8 leaves about 1 % active.
            let theta = Tensor::<NdArray, 1>::full([300], 8.0, &Default::default());
            let jumprelu = JumpReluSae::<NdArray>::new(
                random_core(0.0),
                crate::ops::param(theta),
                sae_cfg(InferenceArch::JumpRelu, norm),
            );
            check_sparse_forward::<NdArray>(&jumprelu, 300);
        }
    }

    #[test]
    fn dense_latents_and_tracked_inputs_have_no_sparse_forward() {
        use crate::arch::standard::StandardSae;
        use crate::config::InferenceArch;
        use crate::Sae;
        let device = Default::default();
        // relu with a zero-mean bias: about half the latents are active.
        let sae =
            StandardSae::<Flex>::new(random_core(0.0), sae_cfg(InferenceArch::Standard, "none"));
        let x = Tensor::<Flex, 2>::random([64, 12], Distribution::Normal(0.0, 1.0), &device);
        assert!(sae.forward_sparse(x).is_none());
        type A = Autodiff<NdArray>;
        let sae =
            StandardSae::<A>::new(random_core(-8.0), sae_cfg(InferenceArch::Standard, "none"));
        let x = Tensor::<A, 2>::ones([3, 12], &Default::default()).require_grad();
        assert!(sae.forward_sparse(x).is_none());
    }

    #[test]
    fn indices_at_least_equals_a_scalar_scan() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        };
        for len in [0, 1, 7, 63, 64, 65, 200, 1000] {
            let mut row: Vec<f32> = (0..len).map(|_| next()).collect();
            if len > 3 {
                row[3] = f32::NAN;
            }
            for lo in [-3.0, -1.5, 0.0, 1.2, 5.0] {
                for abs in [false, true] {
                    let mut got = vec![7u32];
                    indices_at_least(&row, lo, abs, &mut got);
                    let want: Vec<u32> = std::iter::once(7)
                        .chain((0..len as u32).filter(|&c| {
                            let v = row[c as usize];
                            (if abs { v.abs() } else { v }) >= lo
                        }))
                        .collect();
                    assert_eq!(got, want, "len {len} lo {lo} abs {abs}");
                }
            }
        }
    }

    #[test]
    fn tracked_tensors_keep_the_device_path() {
        type A = Autodiff<NdArray>;
        let device = Default::default();
        let w = Tensor::<A, 2>::ones([4, 2], &device).require_grad();
        let z = Tensor::<A, 2>::zeros([3, 4], &device);
        assert!(sparse_decode_host(&z, &w).is_none());
        assert!(host_path_ok(&z));
    }
}
