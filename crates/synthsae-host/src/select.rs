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

/// Value of the `n`-th largest entry of `values` (1-based) in the order of
/// `f32::total_cmp`, found on the host in O(len); `None` if `n` is 0 or
/// exceeds the length. Long inputs (a BatchTopK batch: `B · S` values) take
/// [`nth_largest_of`]'s sampled bound and leave `values` untouched; short
/// ones are partitioned in place ([`quickselect`]).
pub fn nth_largest(values: &mut [f32], n: usize) -> Option<f32> {
    if values.len() >= SAMPLED_MIN_LEN {
        return nth_largest_of(values, n);
    }
    quickselect(values, n)
}

/// Inputs at least this long are selected through a sampled bound: one
/// parallel, branch-predictable filtering pass over the values instead of a
/// partition that moves them all (4.2M values, a BatchTopK batch of
/// 1024 × 4096: `cargo bench -p synthsae-host --bench select`).
pub const SAMPLED_MIN_LEN: usize = 1 << 18;

/// Every this many values, one goes into the sample (one per four cache
/// lines: the sample costs little next to the filtering pass).
const SAMPLE_STRIDE: usize = 64;

/// [`nth_largest`] without changing `values` (same value, bit for bit).
///
/// The values are compared as `u32` keys whose unsigned order is
/// `f32::total_cmp`'s. Every 64th key forms a sample; its `m`-th largest
/// key, with `m` a few standard deviations above `n / 64`, is very likely
/// at or below the `n`-th largest of all. The keys at or above that bound
/// are collected in parallel; when there are at least `n` of them, the
/// `n`-th largest among them is the answer (exact: every key above the
/// answer is collected). Otherwise, or for short inputs, the values are
/// copied and partitioned.
pub fn nth_largest_of(values: &[f32], n: usize) -> Option<f32> {
    use rayon::prelude::*;
    if n == 0 || n > values.len() {
        return None;
    }
    if values.len() < SAMPLED_MIN_LEN {
        return quickselect(&mut values.to_vec(), n);
    }
    let mut sample: Vec<u32> = values
        .iter()
        .step_by(SAMPLE_STRIDE)
        .map(|&v| order_key(v))
        .collect();
    let expected = n as f64 / SAMPLE_STRIDE as f64;
    let m = ((expected + 4.0 * expected.sqrt() + 16.0) as usize).clamp(1, sample.len());
    let (_, &mut bound, _) = sample.select_nth_unstable_by(m - 1, |a, b| b.cmp(a));
    const CHUNK: usize = 1 << 16;
    let mut keys: Vec<u32> = values
        .par_chunks(CHUNK)
        .flat_map_iter(|chunk| {
            // Few keys pass: a block's maximum (a vectorised reduction)
            // decides whether the block is visited entry by entry.
            let mut kept = Vec::new();
            for block in chunk.chunks(16) {
                if block.iter().map(|&v| order_key(v)).max().unwrap_or(0) < bound {
                    continue;
                }
                kept.extend(block.iter().map(|&v| order_key(v)).filter(|&k| k >= bound));
            }
            kept
        })
        .collect();
    if keys.len() < n {
        return quickselect(&mut values.to_vec(), n);
    }
    let (_, key, _) = keys.select_nth_unstable_by(n - 1, |a, b| b.cmp(a));
    Some(from_order_key(*key))
}

/// The `n`-th largest by partitioning `values` in place, at every length
/// (the twin [`nth_largest_of`] is tested and benchmarked against).
pub fn quickselect(values: &mut [f32], n: usize) -> Option<f32> {
    if n == 0 || n > values.len() {
        return None;
    }
    let (_, nth, _) = values.select_nth_unstable_by(n - 1, |a, b| b.total_cmp(a));
    Some(*nth)
}

/// A `u32` whose unsigned order is `f32::total_cmp`'s: negative values
/// (sign bit set) have all bits flipped, the others only the sign bit.
fn order_key(v: f32) -> u32 {
    let b = v.to_bits();
    // Branch-free: the arithmetic shift spreads the sign bit over the mask.
    b ^ (((b as i32 >> 31) as u32) | 0x8000_0000)
}

/// The inverse of [`order_key`].
fn from_order_key(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
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
    fn sampled_selection_equals_the_partition_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let len = SAMPLED_MIN_LEN + 12_345;
        // Relu'd pre-activations (many exact zeros), signed values with
        // both zeros and infinities, heavy ties, and NaNs of both signs.
        let cases: Vec<Vec<f32>> = vec![
            (0..len)
                .map(|_| rng.random_range(-1.0f32..1.0).max(0.0))
                .collect(),
            (0..len)
                .map(|i| match i % 1000 {
                    0 => f32::INFINITY,
                    1 => f32::NEG_INFINITY,
                    2 => -0.0,
                    3 => 0.0,
                    _ => rng.random_range(-3.0f32..3.0),
                })
                .collect(),
            (0..len).map(|_| rng.random_range(0u8..4) as f32).collect(),
            (0..len)
                .map(|i| match i % 997 {
                    0 => f32::NAN,
                    1 => -f32::NAN,
                    _ => rng.random_range(-1.0f32..1.0),
                })
                .collect(),
        ];
        for values in &cases {
            for n in [1, 2, 25 * 1024, len / 3, len / 2, len - 1, len] {
                let want = quickselect(&mut values.clone(), n).unwrap();
                let got = nth_largest_of(values, n).unwrap();
                assert_eq!(got.to_bits(), want.to_bits(), "n {n}");
                let mut copy = values.clone();
                assert_eq!(nth_largest(&mut copy, n).unwrap().to_bits(), want.to_bits());
                assert!(copy
                    .iter()
                    .zip(values)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
            }
            assert_eq!(nth_largest_of(values, 0), None);
            assert_eq!(nth_largest_of(values, len + 1), None);
        }
        for v in [0.0f32, -0.0, 1.5, -2.25, f32::INFINITY, f32::MIN_POSITIVE] {
            assert_eq!(from_order_key(order_key(v)).to_bits(), v.to_bits());
        }
        assert!(order_key(-1.0) < order_key(-0.0) && order_key(-0.0) < order_key(0.0));
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
