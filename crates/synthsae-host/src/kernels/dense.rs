//! Dense `f32` kernels of the SAE fast paths and host Adam: dot products,
//! `axpy`, gathered axpy / dot over the rows of a `[_, d]` matrix, row
//! norms, a tiled transpose and `f64` sums of squares.
//!
//! Each loop is compiled for the host's vector width
//! ([`multiversioned!`](crate::multiversioned), the list without FMA). The
//! kernels contain no fused multiply-adds and fix their summation order, so
//! every target gives the same bits.

use rayon::prelude::*;

/// `Σ a_i b_i` in sixteen partial sums (fixed order). Always inlined, so that
/// it is compiled with the calling kernel's vector width.
#[inline(always)]
pub fn dot16(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a · x` (always inlined, like [`dot16`]).
#[inline(always)]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

crate::multiversioned! {
    /// `out += Σ_k coef[k] · src[idx[k]]` over rows of a row-major `[_, d]`
    /// matrix `src` (`out`: `[d]`), in the order of `idx`.
    pub fn axpy_gather(out: &mut [f32], coef: &[f32], idx: &[u32], src: &[f32], d: usize) {
        for (&a, &i) in coef.iter().zip(idx) {
            let i = i as usize;
            axpy(out, a, &src[i * d..(i + 1) * d]);
        }
    }
}

crate::multiversioned! {
    /// `out[k] = scale · (x · src[idx[k]])` over rows of a row-major `[_, d]`
    /// matrix `src` (`x`: `[d]`).
    pub fn dot_gather(out: &mut [f32], scale: f32, x: &[f32], idx: &[u32], src: &[f32], d: usize) {
        for (o, &i) in out.iter_mut().zip(idx) {
            let i = i as usize;
            *o = scale * dot16(x, &src[i * d..(i + 1) * d]);
        }
    }
}

crate::multiversioned! {
    /// `‖row‖` of every row of a row-major `[_, d]` matrix (sixteen partial
    /// sums per row).
    pub fn row_norms(m: &[f32], d: usize) -> Vec<f32> {
        m.chunks_exact(d.max(1))
            .map(|r| dot16(r, r).sqrt())
            .collect()
    }
}

crate::multiversioned! {
    /// Output rows `c0..c0 + out.len() / rows` of [`transpose`], in 32 × 32
    /// tiles copied through a local buffer: the source rows are read
    /// contiguously (reading a column of a row-major matrix directly strides by
    /// whole pages, which maps every read to the same few L1 sets).
    fn transpose_band(m: &[f32], rows: usize, cols: usize, c0: usize, out: &mut [f32]) {
        const T: usize = 32;
        let band = out.len() / rows.max(1);
        let mut tile = [[0.0f32; T]; T];
        for r0 in (0..rows).step_by(T) {
            let nr = (rows - r0).min(T);
            for (k, t) in tile.iter_mut().enumerate().take(nr) {
                let src = &m[(r0 + k) * cols + c0..(r0 + k) * cols + c0 + band];
                t[..band].copy_from_slice(src);
            }
            for c in 0..band {
                let o = &mut out[c * rows + r0..c * rows + r0 + nr];
                for (k, v) in o.iter_mut().enumerate() {
                    *v = tile[k][c];
                }
            }
        }
    }
}

/// Row-major `[rows, cols]` → `[cols, rows]`, in 32-column bands (the
/// reads of a band stay in cache), bands in parallel.
pub fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const BAND: usize = 32;
    let mut t = vec![0.0f32; rows * cols];
    if rows == 0 || cols == 0 {
        return t;
    }
    t.par_chunks_mut(BAND * rows)
        .enumerate()
        .for_each(|(b, out)| transpose_band(m, rows, cols, b * BAND, out));
    t
}

/// `Σ v²` in f64 (sixteen f64 partial sums per block of 4096, blocks in
/// parallel, summed in order).
pub fn sum_squares(v: &[f32]) -> f64 {
    v.par_chunks(4096)
        .map(sum_squares_block)
        .collect::<Vec<f64>>()
        .iter()
        .sum()
}

crate::multiversioned! {
    /// `Σ v²` of one block in f64, in sixteen partial sums (fixed order);
    /// [`sum_squares`] adds the blocks.
    pub fn sum_squares_block(v: &[f32]) -> f64 {
        let mut acc = [0.0f64; 16];
        let chunks = v.chunks_exact(16);
        let tail: f64 = chunks
            .remainder()
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum();
        for c in chunks {
            for k in 0..16 {
                let x = c[k] as f64;
                acc[k] += x * x;
            }
        }
        acc.iter().sum::<f64>() + tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axpy_adds_a_scaled_row() {
        let mut y = vec![1.0f32; 37];
        let x: Vec<f32> = (0..37).map(|i| i as f32).collect();
        axpy(&mut y, 2.0, &x);
        assert!(y
            .iter()
            .enumerate()
            .all(|(i, &v)| v == 1.0 + 2.0 * i as f32));
    }

    #[test]
    fn kernels_equal_scalar_loops() {
        let d = 37;
        let src: Vec<f32> = (0..10 * d)
            .map(|i| ((i * 7919) % 113) as f32 / 17.0 - 3.0)
            .collect();
        let idx = [3u32, 0, 9, 3];
        let coef = [0.5f32, -1.25, 2.0, 0.75];
        let mut out = vec![1.0f32; d];
        axpy_gather(&mut out, &coef, &idx, &src, d);
        for j in 0..d {
            let mut want = 1.0f32;
            for (&a, &i) in coef.iter().zip(&idx) {
                want += a * src[i as usize * d + j];
            }
            assert_eq!(out[j], want, "axpy {j}");
        }
        let x: Vec<f32> = (0..d).map(|j| j as f32 * 0.1 - 1.0).collect();
        let mut dots = vec![0.0f32; idx.len()];
        dot_gather(&mut dots, 2.0, &x, &idx, &src, d);
        for (k, &i) in idx.iter().enumerate() {
            let want: f32 = (0..d).map(|j| x[j] * src[i as usize * d + j]).sum::<f32>() * 2.0;
            assert!(
                (dots[k] - want).abs() <= 1e-4 * want.abs().max(1.0),
                "dot {k}"
            );
        }
        let norms = row_norms(&src, d);
        for (r, n) in norms.iter().enumerate() {
            let want = src[r * d..(r + 1) * d]
                .iter()
                .map(|v| v * v)
                .sum::<f32>()
                .sqrt();
            assert!((n - want).abs() <= 1e-5 * want, "norm {r}");
        }
        for (rows, cols) in [(10, d), (70, 33), (1, 5), (64, 64)] {
            let m: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = transpose(&m, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], m[r * cols + c]);
                }
            }
        }
        let want: f64 = src.iter().map(|&v| (v as f64) * (v as f64)).sum();
        assert!((sum_squares(&src) - want).abs() <= 1e-9 * want);
    }
}
