//! The hidden-activation gather-sum of the sampler: one hidden row
//! `h [D] = bias [D] + Σ_k v_k · F[f_k, :]` from a sparse row of feature
//! activations and the row-major feature table `F [N, D]`.

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

crate::multiversioned! {
    /// One hidden row `h [D] = bias [D] + Σ_k vals_k · table[idx_k, :]`, with
    /// `table` row-major `[N, D]`.
    ///
    /// Feature rows are read whole and in order, [`GATHER_GROUP`] at a time: one
    /// pass over `h` (which stays in L1) adds a group's rows, while the whole
    /// rows of the next group are requested from memory ([`prefetch_rows`]);
    /// during the last group, the first rows of the next sample (`next`, the
    /// caller's next `idx`; may be empty) are requested. A row is 3 KB of
    /// contiguous memory at D = 768, so the requests run far ahead of the sum.
    /// On dictionaries larger than the last-level cache (SynthSAEBench-16k's is
    /// 48 MiB) this is faster than keeping a 64-column tile of `h` in registers
    /// across all rows and reading each row 256 bytes at a time
    /// (`cargo bench --bench sampling_scale -- --only gather`).
    ///
    /// The additions happen in the same order as `h = bias; h += v_k · F_k`
    /// (no fused multiply-add), so the result is bit-identical to that loop on
    /// every target.
    ///
    /// `idx` and `next` must hold valid row indices (`< table.len() / D`),
    /// `h.len() == bias.len() == D`.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::dense::axpy;

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
}
