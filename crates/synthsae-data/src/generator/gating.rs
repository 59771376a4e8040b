//! Hierarchy gating: the features that can only survive when their parent
//! fires, and the completion of one gated row (magnitudes, then children
//! drawn only under active parents, by a [`ChildLaw`]).
//!
//! The gating is built from the hierarchy the generator is given
//! ([`crate::HierarchyModifier`]); the hierarchy still runs as a modifier
//! afterwards (its rescaling, and its zeros for any rows drawn otherwise),
//! and the distribution is the one of drawing everything and then applying
//! it: children of inactive parents, and losers of a mutual exclusion,
//! would be zeroed anyway.

use rand::Rng;

use crate::per_feature::FeatureParams;
use crate::rng::SampleRng;

/// Features that can only survive when their parent fires.
#[derive(Debug, Clone)]
pub(super) struct Gating {
    /// Features without a parent, ascending.
    pub(super) free: Vec<u32>,
    /// Children of feature `f`: `children[child_offsets[f]..child_offsets[f + 1]]`.
    pub(super) child_offsets: Vec<u32>,
    pub(super) children: Vec<u32>,
    /// Whether at most one (uniformly chosen) active child of `f` survives
    /// the modifier (mutual exclusion); `[N]`, or empty for none.
    pub(super) exclusive: Vec<bool>,
}

impl Gating {
    /// The gating of `parent` (`[N]`, the parent feature of each feature,
    /// `u32::MAX` for none) with the mutual exclusion `exclusive` (`[N]`;
    /// any other length: none); `None` when `parent` has an index out of
    /// range or a cycle.
    pub(super) fn new(parent: &[u32], exclusive: &[bool]) -> Option<Self> {
        let n = parent.len();
        let mut depth = vec![u32::MAX; n];
        for f in 0..n {
            // Walk up to a feature of known depth (bounded: a cycle is rejected).
            let mut chain = Vec::new();
            let mut g = f;
            while depth[g] == u32::MAX {
                chain.push(g);
                match parent[g] {
                    u32::MAX => break,
                    p if (p as usize) < n && chain.len() <= n => g = p as usize,
                    _ => return None,
                }
            }
            let mut d = if depth[g] == u32::MAX {
                0
            } else {
                depth[g] + 1
            };
            for &c in chain.iter().rev() {
                if depth[c] == u32::MAX {
                    depth[c] = d;
                    d += 1;
                }
            }
        }
        let mut child_offsets = vec![0u32; n + 1];
        for &p in parent {
            if p != u32::MAX {
                child_offsets[p as usize + 1] += 1;
            }
        }
        for f in 0..n {
            child_offsets[f + 1] += child_offsets[f];
        }
        let mut cursor = child_offsets.clone();
        let mut children = vec![0u32; child_offsets[n] as usize];
        for (c, &p) in parent.iter().enumerate() {
            if p != u32::MAX {
                children[cursor[p as usize] as usize] = c as u32;
                cursor[p as usize] += 1;
            }
        }
        Some(Self {
            free: (0..n as u32)
                .filter(|&f| parent[f as usize] == u32::MAX)
                .collect(),
            child_offsets,
            children,
            exclusive: if exclusive.len() == n {
                exclusive.to_vec()
            } else {
                Vec::new()
            },
        })
    }

    /// No feature has a parent.
    pub(super) fn all_free(n: usize) -> Self {
        Self {
            free: (0..n as u32).collect(),
            child_offsets: vec![0; n + 1],
            children: Vec::new(),
            exclusive: Vec::new(),
        }
    }
}

/// How the children of an active parent fire in a gated sampler
/// ([`expand_row`]); `k` indexes `Gating::children`.
pub(super) trait ChildLaw {
    /// Called before the children of the entries of `wave` are decided
    /// (a chance to compute their laws together): every child slot of an
    /// active entry of `wave` (value `> 0`) may then be asked about.
    fn prepare(&mut self, _gating: &Gating, _wave: &[(u32, f32)]) {}
    /// Whether child slot `k` fires.
    fn fires(&mut self, k: usize, rng: &mut SampleRng) -> bool;
}

/// Completes one row of a gated sampler: `row` holds the fired parent-free
/// features; gives every entry its magnitude, then walks the tree from
/// the active entries (value `> 0`). For each child slot `k` of an active
/// parent, `fires(k, rng)` decides the child's firing (its conditional
/// law given the row's shared randomness). Children of an inactive
/// parent are not drawn (the modifier would zero them). When the
/// modifier keeps one uniformly chosen active child (`exclusive`), the
/// survivor is chosen here by reservoir sampling and only it is kept and
/// expanded (the others, and their subtrees, would be zeroed). Sorts the
/// row by feature.
#[inline(always)]
pub(super) fn expand_row(
    features: &FeatureParams,
    gating: &Gating,
    row: &mut Vec<(u32, f32)>,
    rng: &mut SampleRng,
    law: &mut impl ChildLaw,
) {
    for e in row.iter_mut() {
        e.1 = features.magnitude(e.0, rng);
    }
    // Wave by wave: the entries drawn so far, then the children they
    // added, and so on (one `prepare` per wave; the draws are taken in
    // the same order as entry by entry).
    let (mut q, mut wave_end) = (0, 0);
    while q < row.len() {
        if q == wave_end {
            wave_end = row.len();
            law.prepare(gating, &row[q..wave_end]);
        }
        let (f, v) = row[q];
        q += 1;
        // NaN magnitudes are not active either.
        if v.is_nan() || v <= 0.0 {
            continue;
        }
        let (c0, c1) = (
            gating.child_offsets[f as usize] as usize,
            gating.child_offsets[f as usize + 1] as usize,
        );
        if c0 == c1 {
            continue;
        }
        if gating.exclusive.get(f as usize).copied().unwrap_or(false) {
            let (mut count, mut winner) = (0u32, (0u32, 0.0f32));
            for k in c0..c1 {
                if law.fires(k, rng) {
                    let c = gating.children[k];
                    let m = features.magnitude(c, rng);
                    if m > 0.0 {
                        count += 1;
                        if rng.random_range(0..count) == 0 {
                            winner = (c, m);
                        }
                    }
                }
            }
            if count > 0 {
                row.push(winner);
            }
        } else {
            for k in c0..c1 {
                if law.fires(k, rng) {
                    let c = gating.children[k];
                    let m = features.magnitude(c, rng);
                    if m > 0.0 {
                        row.push((c, m));
                    }
                }
            }
        }
    }
    row.sort_unstable_by_key(|e| e.0);
}
