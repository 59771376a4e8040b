//! Order statistics on host rows: the `n`-th largest value, a row's `k`-th
//! largest key, and the indices at or above a bound. The TopK selections of
//! the generic tensor path and of the CPU fast paths share them, so both
//! find the same cut-off.

/// The `k`-th largest of `key(v)` over `row` (`1 ≤ k ≤ row.len()`), exact,
/// using `scratch` as working memory.
///
/// For `k` much smaller than the row, the `k`-th largest key of the first
/// `16k` entries is a lower bound of the row's (a subset's `k`-th largest
/// never exceeds the whole set's), so only the entries at or above it are
/// selected among: one linear scan instead of a partition of the whole row.
pub fn row_kth_largest(
    row: &[f32],
    k: usize,
    key: impl Fn(f32) -> f32,
    scratch: &mut Vec<f32>,
) -> Option<f32> {
    let head = 16 * k;
    scratch.clear();
    if k == 0 || k > row.len() {
        return None;
    }
    if head >= row.len() / 2 {
        scratch.extend(row.iter().map(|&v| key(v)));
        return nth_largest(scratch, k);
    }
    scratch.extend(row[..head].iter().map(|&v| key(v)));
    let lo = nth_largest(scratch, k)?;
    scratch.clear();
    scratch.extend(row.iter().map(|&v| key(v)).filter(|&v| v >= lo));
    // At least the head's k entries pass (NaN keys excepted: then select
    // over the whole row, as without the bound).
    if scratch.len() < k {
        scratch.clear();
        scratch.extend(row.iter().map(|&v| key(v)));
    }
    nth_largest(scratch, k)
}

/// Value of the `n`-th largest entry of `values` (1-based), found on the host
/// in O(len) (`select_nth_unstable`); `None` if `n` is 0 or exceeds the length.
pub fn nth_largest(values: &mut [f32], n: usize) -> Option<f32> {
    if n == 0 || n > values.len() {
        return None;
    }
    let (_, nth, _) = values.select_nth_unstable_by(n - 1, |a, b| b.total_cmp(a));
    Some(*nth)
}

crate::multiversioned! {
    /// Appends to `out` the indices `c` with `row[c] ≥ lo` (`|row[c]| ≥ lo`
    /// with `abs`), in increasing order; NaN never passes. Compares 64 entries
    /// at a time into byte flags (vectorised), then visits only the set flags
    /// eight at a time (a scalar compare-and-push loop does not vectorise, and
    /// it runs over every pre-activation of a TopK row).
    pub fn indices_at_least(row: &[f32], lo: f32, abs: bool, out: &mut Vec<u32>) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_kth_largest_equals_a_full_selection() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut scratch = Vec::new();
        for len in [1usize, 7, 100, 1000, 5000] {
            // Continuous values, and heavy ties (a few distinct values).
            for ties in [false, true] {
                let row: Vec<f32> = (0..len)
                    .map(|_| {
                        let v: f32 = rng.random_range(-1.0..1.0);
                        if ties {
                            (v * 3.0).round()
                        } else {
                            v
                        }
                    })
                    .collect();
                for k in [1usize, 2, 5, 25, 60, len] {
                    if k > len {
                        continue;
                    }
                    for abs in [false, true] {
                        let key = |v: f32| if abs { v.abs() } else { v };
                        let mut full: Vec<f32> = row.iter().map(|&v| key(v)).collect();
                        let want = nth_largest(&mut full, k);
                        let got = row_kth_largest(&row, k, key, &mut scratch);
                        assert_eq!(got, want, "len {len} k {k} abs {abs} ties {ties}");
                    }
                }
            }
        }
        assert_eq!(row_kth_largest(&[1.0], 0, |v| v, &mut scratch), None);
        assert_eq!(row_kth_largest(&[1.0], 2, |v| v, &mut scratch), None);
    }

    #[test]
    fn nth_largest_of_a_few() {
        let mut v = vec![3.0, 1.0, 4.0, 1.5, 9.0];
        assert_eq!(nth_largest(&mut v, 2), Some(4.0));
        assert_eq!(nth_largest(&mut v, 0), None);
        assert_eq!(nth_largest(&mut v, 6), None);
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
}
