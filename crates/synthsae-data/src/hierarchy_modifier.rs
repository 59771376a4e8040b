//! Applying a hierarchy to sampled batches (sae-lens `hierarchy_modifier`),
//! on the native sparse rows.
//!
//! Semantics (spec §5.2), level by level in breadth-first order; "active"
//! means value `> 0` in every representation:
//!
//! 1. **Gating**: a feature at level `L` with an effective parent `P` (nearest
//!    ancestor with a feature) is zeroed when `P` is inactive; if the flag it
//!    inherited from its direct parent node says "rescale", it is instead
//!    multiplied by `P / mean_P` (`mean_P` = the generator's mean magnitude).
//! 2. **Mutual exclusion** for groups owned by nodes at level `L`: when the
//!    owner is active (or organisational) and more than one member is active,
//!    one active member chosen uniformly at random stays, the others are
//!    zeroed (before level `L + 1` is gated, so their descendants follow).
//!
//! Work per row is proportional to the row's active features, not to `N`.

use rand::{Rng, RngCore};
use rayon::prelude::*;

use crate::error::{invalid, Result};
use crate::hierarchy::{validate_hierarchy, Hierarchy, HierarchyNode};
use crate::modifier::ActivationModifier;
use crate::per_feature::FeatureParams;
use crate::rng::{block_rng, SampleRng};
use synthsae_host::Csr;

const NONE: u32 = u32::MAX;
/// Rows handled by one rayon task.
const ROW_BLOCK: usize = 64;

/// Reusable per-thread buffers of [`HierarchyModifier::apply_row`].
#[derive(Default)]
struct RowBuffers {
    /// Values by feature index (all zeros between rows).
    values: Vec<f32>,
    /// `(level, entry)` of the row's entries in the forest.
    order: Vec<(u16, usize)>,
    /// `(group, feature)` of active ME members.
    members: Vec<(u32, u32)>,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<RowBuffers> = std::cell::RefCell::new(RowBuffers::default());
}

/// A hierarchy compiled into per-feature tables.
#[derive(Debug, Clone)]
pub struct HierarchyModifier {
    hierarchy: Hierarchy,
    num_features: usize,
    /// Breadth-first level of each feature node (`u16::MAX` outside the forest).
    level: Vec<u16>,
    /// Effective parent feature (`NONE` if none).
    parent: Vec<u32>,
    /// Whether the child is rescaled by its parent instead of gated.
    rescale: Vec<bool>,
    /// ME group of which the feature is a member (`NONE` if none).
    group: Vec<u32>,
    /// Owner feature of each ME group (`NONE` for organisational owners).
    group_owner: Vec<u32>,
    /// Whether the children of a feature (by effective parent) are exactly
    /// the members of one ME group it owns.
    exclusive: Vec<bool>,
    max_level: u16,
}

impl HierarchyModifier {
    /// Compiles `hierarchy` for generators of `num_features` features;
    /// rejects indices `>= num_features` and duplicate indices.
    pub fn new(hierarchy: Hierarchy, num_features: usize) -> Result<Self> {
        validate_hierarchy(&hierarchy.roots, Some(num_features))?;
        let mut m = Self {
            hierarchy,
            num_features,
            level: vec![u16::MAX; num_features],
            parent: vec![NONE; num_features],
            rescale: vec![false; num_features],
            group: vec![NONE; num_features],
            group_owner: Vec::new(),
            exclusive: vec![false; num_features],
            max_level: 0,
        };
        // Breadth-first: (node, effective parent, level, inherited rescale flag).
        let mut queue: std::collections::VecDeque<(&HierarchyNode, u32, u16, bool)> = m
            .hierarchy
            .roots
            .iter()
            .map(|r| (r, NONE, 0u16, false))
            .collect();
        let mut level = std::mem::take(&mut m.level);
        let mut parent = std::mem::take(&mut m.parent);
        let mut rescale = std::mem::take(&mut m.rescale);
        let mut group = std::mem::take(&mut m.group);
        let mut owners = Vec::new();
        let mut max_level = 0u16;
        while let Some((node, eff_parent, lvl, flag)) = queue.pop_front() {
            if let Some(f) = node.feature_index {
                level[f] = lvl;
                parent[f] = eff_parent;
                rescale[f] = flag && eff_parent != NONE;
                max_level = max_level.max(lvl);
            }
            let members: Vec<usize> = node
                .children
                .iter()
                .filter_map(|c| c.feature_index)
                .collect();
            if node.mutually_exclusive_children && members.len() >= 2 {
                let g = owners.len() as u32;
                owners.push(node.feature_index.map_or(NONE, |f| f as u32));
                for f in members {
                    group[f] = g;
                }
            }
            let child_parent = node.feature_index.map_or(eff_parent, |f| f as u32);
            for c in &node.children {
                queue.push_back((
                    c,
                    child_parent,
                    lvl.saturating_add(1),
                    node.scale_children_by_parent,
                ));
            }
        }
        m.level = level;
        m.parent = parent;
        m.rescale = rescale;
        m.group = group;
        let mut children = vec![0usize; num_features];
        for &p in &m.parent {
            if p != NONE {
                children[p as usize] += 1;
            }
        }
        let mut members = vec![0usize; owners.len()];
        for &g in &m.group {
            if g != NONE {
                members[g as usize] += 1;
            }
        }
        for (g, &owner) in owners.iter().enumerate() {
            if owner != NONE && members[g] == children[owner as usize] {
                m.exclusive[owner as usize] = true;
            }
        }
        m.group_owner = owners;
        m.max_level = max_level;
        Ok(m)
    }

    /// The hierarchy this modifier applies.
    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// Number of mutually exclusive groups.
    pub fn num_me_groups(&self) -> usize {
        self.group_owner.len()
    }

    /// For each feature, the parent feature that must be active for it to
    /// survive (`u32::MAX`: none), `[N]`: what the generator gates
    /// sampling by ([`ActivationGenerator::with_hierarchy`](crate::ActivationGenerator::with_hierarchy)).
    /// This is the nearest ancestor node that has a feature (organisational
    /// nodes without one are skipped).
    pub fn parents(&self) -> &[u32] {
        &self.parent
    }

    /// For each feature `f`, whether at most one of its children survives
    /// (its children are exactly the members of one mutually exclusive
    /// group it owns): when `f` is active and several of its children are,
    /// one of them, chosen uniformly at random, survives and the others
    /// become zero (and so do their own children). `[N]`.
    pub(crate) fn exclusive_children(&self) -> &[bool] {
        &self.exclusive
    }

    /// Applies the hierarchy to one row given as parallel slices (values are
    /// modified in place), with a scratch vector of `N` zeros (left zeroed).
    fn apply_row(
        &self,
        idx: &[u32],
        vals: &mut [f32],
        mean: &[f32],
        buffers: &mut RowBuffers,
        rng: &mut SampleRng,
    ) {
        let RowBuffers {
            values: scratch,
            order,
            members,
        } = buffers;
        // Entries in the forest, ordered by level (stable: by feature within a level).
        order.clear();
        order.extend(
            idx.iter()
                .enumerate()
                .filter(|(k, &f)| self.level[f as usize] != u16::MAX && vals[*k] > 0.0)
                .map(|(k, &f)| (self.level[f as usize], k)),
        );
        if order.is_empty() {
            return;
        }
        order.sort_by_key(|&(l, _)| l);
        if scratch.len() < self.num_features {
            scratch.resize(self.num_features, 0.0);
        }
        for (&f, &v) in idx.iter().zip(vals.iter()) {
            scratch[f as usize] = v.max(0.0);
        }
        let mut start = 0;
        for lvl in 0..=self.max_level {
            let end = start
                + order[start..]
                    .iter()
                    .take_while(|&&(l, _)| l == lvl)
                    .count();
            for &(_, k) in &order[start..end] {
                let f = idx[k] as usize;
                let p = self.parent[f];
                if p == NONE {
                    continue;
                }
                let pv = scratch[p as usize];
                let v = &mut scratch[f];
                *v = if pv <= 0.0 {
                    0.0
                } else if self.rescale[f] {
                    *v * pv / mean[p as usize]
                } else {
                    *v
                };
            }
            // ME groups owned at this level: their members sit at lvl + 1.
            let next_end = end
                + order[end..]
                    .iter()
                    .take_while(|&&(l, _)| l == lvl + 1)
                    .count();
            members.clear();
            for &(_, k) in &order[end..next_end] {
                let f = idx[k];
                let g = self.group[f as usize];
                if g != NONE && scratch[f as usize] > 0.0 {
                    let owner = self.group_owner[g as usize];
                    if owner == NONE || scratch[owner as usize] > 0.0 {
                        members.push((g, f));
                    }
                }
            }
            if members.len() >= 2 {
                members.sort_by_key(|&(g, _)| g);
                for same in members.chunk_by(|a, b| a.0 == b.0) {
                    if same.len() >= 2 {
                        let winner = rng.random_range(0..same.len());
                        for (i, &(_, f)) in same.iter().enumerate() {
                            if i != winner {
                                scratch[f as usize] = 0.0;
                            }
                        }
                    }
                }
            }
            start = end;
            if start >= order.len() {
                break;
            }
        }
        for (&f, v) in idx.iter().zip(vals.iter_mut()) {
            *v = scratch[f as usize];
            scratch[f as usize] = 0.0;
        }
    }
}

impl ActivationModifier for HierarchyModifier {
    fn check(&self, features: &FeatureParams) -> Result<()> {
        if features.num_features() != self.num_features {
            return Err(invalid(
                "hierarchy",
                format!(
                    "built for {} features, generator has {}",
                    self.num_features,
                    features.num_features()
                ),
            ));
        }
        let mean = features.mean_firing_magnitudes();
        for (f, (&p, &r)) in self.parent.iter().zip(&self.rescale).enumerate() {
            if r && mean[p as usize] <= 0.0 {
                return Err(invalid(
                    "mean_firing_magnitudes",
                    format!("must be > 0 for parents with scale_children_by_parent=True (parent {p} of feature {f})"),
                ));
            }
        }
        Ok(())
    }

    fn modify(&self, batch: &mut Csr, features: &FeatureParams, rng: &mut SampleRng) {
        let key = rng.next_u64();
        let mean = features.mean_firing_magnitudes();
        let offsets = batch.offsets().to_vec();
        let indices = batch.indices().to_vec();
        let bsz = batch.n_rows();
        // Split the values into disjoint per-block slices.
        let mut blocks: Vec<(usize, &mut [f32])> = Vec::new();
        let mut rest = batch.values_mut();
        let mut consumed = 0;
        for b in 0..bsz.div_ceil(ROW_BLOCK) {
            let end = offsets[((b + 1) * ROW_BLOCK).min(bsz)];
            let (head, tail) = rest.split_at_mut(end - consumed);
            blocks.push((b, head));
            rest = tail;
            consumed = end;
        }
        blocks.into_par_iter().for_each(|(b, vals)| {
            let mut rng = block_rng(key, b as u64);
            // Per-thread buffers: the `N`-long value scratch is allocated once
            // per thread and left zeroed by every row, so a batch costs
            // O(nnz), not O(N) per block.
            BUFFERS.with_borrow_mut(|buffers| {
                let base = offsets[b * ROW_BLOCK];
                for r in b * ROW_BLOCK..((b + 1) * ROW_BLOCK).min(bsz) {
                    let (s, e) = (offsets[r], offsets[r + 1]);
                    self.apply_row(
                        &indices[s..e],
                        &mut vals[s - base..e - base],
                        mean,
                        buffers,
                        &mut rng,
                    );
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::sample_rng;

    fn node(f: usize, children: Vec<HierarchyNode>, me: bool, scale: bool) -> HierarchyNode {
        HierarchyNode::new(Some(f), children, me, scale).unwrap()
    }

    #[test]
    fn gating_cascades_and_rescaling_uses_parent_mean() {
        // 0 → 1 → 2 (binary), 3 →R 4.
        let h = Hierarchy::new(vec![
            node(
                0,
                vec![node(1, vec![HierarchyNode::leaf(2)], false, false)],
                false,
                false,
            ),
            node(3, vec![HierarchyNode::leaf(4)], false, true),
        ])
        .unwrap();
        let g = FeatureParams::new(5, 0.5f32, 0.0f32, vec![1.0, 1.0, 1.0, 2.0, 1.0]).unwrap();
        let m = HierarchyModifier::new(h, 5).unwrap();
        // Row 0: parent 0 inactive → 1 and 2 zeroed; 3 = 1.831 → 4 scaled by 1.831 / 2.
        // Row 1: 0 active, 1 inactive → 2 zeroed; 3 inactive → 4 zeroed.
        let mut b = Csr::from_parts(
            5,
            vec![0, 4, 7],
            vec![1, 2, 3, 4, 0, 2, 4],
            vec![1.0, 1.0, 1.831, 1.0, 1.0, 1.0, 1.0],
        )
        .unwrap();
        m.modify(&mut b, &g, &mut sample_rng(Some(0)));
        assert_eq!(b.to_dense_vec()[..5], [0.0, 0.0, 0.0, 1.831, 0.9155]);
        assert_eq!(b.to_dense_vec()[5..], [1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn organisational_nodes_pass_through() {
        // Org node (no feature) with ME children 1, 2 under root 0:
        // children are gated by 0 and mutually exclusive (an org owner is always live).
        let org = HierarchyNode::new(
            None,
            vec![HierarchyNode::leaf(1), HierarchyNode::leaf(2)],
            true,
            false,
        )
        .unwrap();
        let h = Hierarchy::new(vec![node(0, vec![org], false, false)]).unwrap();
        let m = HierarchyModifier::new(h, 3).unwrap();
        let g = FeatureParams::new(3, 1.0f32, 0.0f32, 1.0f32).unwrap();
        let mut b = Csr::from_parts(3, vec![0, 3, 5], vec![0, 1, 2, 1, 2], vec![1.0; 5]).unwrap();
        m.modify(&mut b, &g, &mut sample_rng(Some(1)));
        b.retain_positive();
        assert_eq!(b.row(0).0.len(), 2);
        assert_eq!(b.row(1).0.len(), 0);
    }

    #[test]
    fn invalid_hierarchies_are_rejected() {
        let h = Hierarchy::new(vec![node(0, vec![HierarchyNode::leaf(7)], false, false)]).unwrap();
        let e = HierarchyModifier::new(h.clone(), 5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{e}");
        let m = HierarchyModifier::new(h, 8).unwrap();
        let e = m
            .check(&FeatureParams::new(9, 0.1f32, 0.0f32, 1.0f32).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("built for 8 features"), "{e}");
    }
}
