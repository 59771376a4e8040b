//! The kept entries of a TopK-family training step, selected on a host copy
//! of the pre-activations `[batch, d_sae]` and held as a [`Csr`] whose
//! values are the pre-activations at the kept entries.
//!
//! * [`Selection`]: per-row TopK (by value or by magnitude) or BatchTopK;
//! * [`aux_entries`]: the aux-k entries among the dead latents;
//! * [`restrict`]: the entries of one Matryoshka level;
//! * [`latents`]: the dense latents and their [`Firing`] summary.
//!
//! Each selection keeps exactly the entries the generic tensor formulation
//! keeps (same cut-off rule, ties keep every tied entry).

use burn::prelude::*;
use rayon::prelude::*;

use crate::csr::Csr;
use crate::firing::Firing;
use crate::select::{indices_at_least, nth_largest, row_kth_largest};

/// The activation applied to a kept pre-activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptActivation {
    /// `relu(p)` (TopK, BatchTopK).
    Relu,
    /// `p` as is (AbsTopK, the aux-k loss).
    Identity,
}

impl KeptActivation {
    /// `f(p)`.
    pub fn value(self, p: f32) -> f32 {
        match self {
            Self::Relu => p.max(0.0),
            Self::Identity => p,
        }
    }

    /// `f'(p)`.
    pub fn slope(self, p: f32) -> f32 {
        match self {
            Self::Relu => {
                if p > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Identity => 1.0,
        }
    }
}

/// Which entries a TopK-family step keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Selection {
    /// Per row, the `k` largest values (`abs`: largest `|value|`, signed).
    TopK {
        /// Latents kept per row.
        k: usize,
        /// Rank by `|value|` and keep the sign (AbsTopK).
        abs: bool,
    },
    /// The `floor(k · batch)` largest relu'd values of the batch.
    BatchTopK {
        /// Mean latents kept per row.
        k: f64,
        /// A value near the cut (the threshold EMA, 0 for none) used to
        /// narrow the search; the result does not depend on it.
        hint: f64,
    },
}

impl Selection {
    /// Whether entries are ranked by magnitude (AbsTopK).
    pub fn is_abs(self) -> bool {
        matches!(self, Self::TopK { abs: true, .. })
    }

    /// `f` of the kept entries: the identity for AbsTopK, else relu.
    pub fn activation(self) -> KeptActivation {
        if self.is_abs() {
            KeptActivation::Identity
        } else {
            KeptActivation::Relu
        }
    }

    /// The kept entries of the row-major `[b, s]` pre-activations `host`.
    pub fn select(self, host: &[f32], b: usize, s: usize) -> Csr {
        match self {
            Self::TopK { k, abs } => topk_entries(host, b, s, k, abs),
            Self::BatchTopK { k, hint } => batch_topk_entries(host, b, s, k, hint),
        }
    }
}

/// Per row, the entries whose key (`v`, or `|v|` with `abs`) is at least the
/// row's `k`-th largest key (ties keep every tied entry, as the generic
/// `row_topk_mask`); without `abs`, entries `≤ 0` are left out (relu makes
/// them contribute nothing, forward or backward).
fn topk_entries(host: &[f32], b: usize, s: usize, k: usize, abs: bool) -> Csr {
    let key = |v: f32| if abs { v.abs() } else { v };
    let mut scratch = Vec::with_capacity(s);
    let mut offsets = Vec::with_capacity(b + 1);
    offsets.push(0);
    let mut cols = Vec::with_capacity(b * k.min(s));
    let mut values = Vec::with_capacity(b * k.min(s));
    for row in host.chunks_exact(s.max(1)).take(b) {
        let cut = if k == 0 {
            f32::INFINITY
        } else if k >= s {
            f32::NEG_INFINITY
        } else {
            row_kth_largest(row, k, key, &mut scratch).unwrap_or(f32::NEG_INFINITY)
        };
        for (c, &v) in row.iter().enumerate() {
            if k > 0 && key(v) >= cut && (abs || v > 0.0) {
                cols.push(c as u32);
                values.push(v);
            }
        }
        offsets.push(cols.len());
    }
    Csr::from_parts_unchecked(s, offsets, cols, values)
}

/// The entries of row-major `[b, s]` `host` whose value passes `keep`.
fn entries_where(host: &[f32], b: usize, s: usize, keep: impl Fn(f32) -> bool) -> Csr {
    let mut offsets = Vec::with_capacity(b + 1);
    offsets.push(0);
    let (mut cols, mut values) = (Vec::new(), Vec::new());
    for row in host.chunks_exact(s.max(1)).take(b) {
        for (c, &v) in row.iter().enumerate() {
            if keep(v) {
                cols.push(c as u32);
                values.push(v);
            }
        }
        offsets.push(cols.len());
    }
    Csr::from_parts_unchecked(s, offsets, cols, values)
}

/// BatchTopK: the positive entries at or above the `floor(k · B)`-th largest
/// relu'd value of the batch (ties keep every tied entry).
///
/// Exact for any guess: the cut is the `n`-th largest of the candidates at or
/// above a lower bound `lo` whenever at least `n` values reach `lo`. `lo` is
/// read off a fixed strided sample (the quantile at twice the kept
/// fraction), else the threshold hint halved, else 0; one parallel pass
/// collects the candidates' indices (ascending), the selection runs on them
/// only, and the entries are the candidates at or above the cut.
fn batch_topk_entries(host: &[f32], b: usize, s: usize, k: f64, hint: f64) -> Csr {
    let n = (k * b as f64).floor();
    if n <= 0.0 {
        return entries_where(host, b, s, |_| false);
    }
    let n = n as usize;
    let total = b * s;
    if n >= total {
        return entries_where(host, b, s, |v| v > 0.0);
    }
    let mut bounds = Vec::with_capacity(3);
    // A stride coprime with the row width, so that the sample visits every
    // column (a stride dividing `s` would sample the same few latents in
    // every row, and a bound read off them can be far off).
    let mut stride = (total / 8192).max(1);
    while stride > 1 && gcd(stride, s) != 1 {
        stride += 1;
    }
    let mut sample: Vec<f32> = host.iter().step_by(stride).copied().collect();
    let m = ((2.0 * n as f64 / total as f64) * sample.len() as f64).ceil() as usize + 8;
    if m < sample.len() {
        if let Some(v) = nth_largest(&mut sample, m) {
            bounds.push(v);
        }
    }
    if hint > 0.0 {
        bounds.push((hint / 2.0) as f32);
    }
    bounds.push(0.0);
    let mut cand: Vec<(Vec<u32>, Vec<f32>)> = Vec::new();
    let mut found = 0;
    for lo in bounds {
        // Strictly positive values only (relu'd zeros are never kept).
        let lo = if lo > 0.0 { lo } else { f32::MIN_POSITIVE };
        cand = candidates_at_least(host, s, lo);
        found = cand.iter().map(|(c, _)| c.len()).sum::<usize>();
        if found >= n || lo == f32::MIN_POSITIVE {
            break;
        }
    }
    // Fewer than n positive values: the n-th largest relu'd value is 0, and
    // every positive entry is kept.
    let cut = if found >= n {
        let mut vals = Vec::with_capacity(found);
        for (_, v) in &cand {
            vals.extend_from_slice(v);
        }
        nth_largest(&mut vals, n).unwrap_or(f32::MIN_POSITIVE)
    } else {
        f32::MIN_POSITIVE
    };
    let mut offsets = Vec::with_capacity(b + 1);
    let mut cols = Vec::with_capacity(n + n / 8);
    let mut values = Vec::with_capacity(n + n / 8);
    offsets.push(0);
    for (c, v) in &cand {
        for (&c, &v) in c.iter().zip(v) {
            if v >= cut {
                cols.push(c);
                values.push(v);
            }
        }
        offsets.push(cols.len());
    }
    Csr::from_parts_unchecked(s, offsets, cols, values)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Per row of a row-major `[_, s]` array, the columns (ascending) of the
/// values `≥ lo` and those values; rows in parallel, each with the
/// vectorised scan (the values are read while the row is in cache).
fn candidates_at_least(host: &[f32], s: usize, lo: f32) -> Vec<(Vec<u32>, Vec<f32>)> {
    host.par_chunks(s.max(1))
        .with_min_len(8)
        .map(|row| {
            let mut cols = Vec::new();
            indices_at_least(row, lo, false, &mut cols);
            let vals = cols.iter().map(|&c| row[c as usize]).collect();
            (cols, vals)
        })
        .collect()
}

/// Aux-k entries of the row-major `[b, s]` pre-activations `host`: per row,
/// among the dead latents (`dead`: `[s]`) in `range`, those whose key (`v`,
/// or `|v|` with `abs`) is at least the row's `k`-th largest (`k ≤` the
/// number of dead latents in the range); values signed, no relu.
pub fn aux_entries(
    host: &[f32],
    b: usize,
    s: usize,
    dead: &[bool],
    range: (usize, usize),
    k: usize,
    abs: bool,
) -> Csr {
    let key = |v: f32| if abs { v.abs() } else { v };
    let dead_cols: Vec<usize> = (range.0..range.1).filter(|&c| dead[c]).collect();
    let mut scratch = Vec::with_capacity(dead_cols.len());
    let mut offsets = Vec::with_capacity(b + 1);
    offsets.push(0);
    let mut cols = Vec::with_capacity(b * k);
    let mut values = Vec::with_capacity(b * k);
    for row in host.chunks_exact(s.max(1)).take(b) {
        if k > 0 && !dead_cols.is_empty() {
            scratch.clear();
            scratch.extend(dead_cols.iter().map(|&c| key(row[c])));
            let cut =
                nth_largest(&mut scratch, k.min(dead_cols.len())).unwrap_or(f32::NEG_INFINITY);
            for &c in &dead_cols {
                if key(row[c]) >= cut {
                    cols.push(c as u32);
                    values.push(row[c]);
                }
            }
        }
        offsets.push(cols.len());
    }
    Csr::from_parts_unchecked(s, offsets, cols, values)
}

/// The entries of `m` whose column lies in `[lo, hi)`.
pub fn restrict(m: &Csr, lo: usize, hi: usize) -> Csr {
    let mut offsets = Vec::with_capacity(m.n_rows() + 1);
    offsets.push(0);
    let (mut cols, mut values) = (Vec::new(), Vec::new());
    for (idx, val) in m.rows() {
        for (&c, &v) in idx.iter().zip(val) {
            if (c as usize) >= lo && (c as usize) < hi {
                cols.push(c);
                values.push(v);
            }
        }
        offsets.push(cols.len());
    }
    Csr::from_parts_unchecked(m.n_cols(), offsets, cols, values)
}

/// The latents `[B, S]` (untracked) of kept entries `kept` (values: the
/// pre-activations): `activation` of the kept values, zeros elsewhere; and
/// their firing summary.
pub fn latents<B: Backend>(
    kept: &Csr,
    activation: KeptActivation,
    device: &B::Device,
) -> (Tensor<B, 2>, Firing) {
    let (b, s) = (kept.n_rows(), kept.n_cols());
    let mut z = vec![0.0f32; b * s];
    let mut counts = vec![0u32; s];
    let mut min_pos = f32::INFINITY;
    for ((r, c), &v) in kept.positions().zip(kept.values()) {
        let a = activation.value(v);
        z[r * s + c] = a;
        counts[c] += u32::from(a != 0.0);
        if a > 0.0 {
            min_pos = min_pos.min(a);
        }
    }
    let firing = Firing {
        counts,
        min_positive: min_pos.is_finite().then_some(min_pos),
    };
    (
        Tensor::from_data(TensorData::new(z, [b, s]), device),
        firing,
    )
}
