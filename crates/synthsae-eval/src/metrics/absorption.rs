//! Feature absorption and hierarchy-conditioned recall, measured against the
//! model's known hierarchy (definitions and choices: `docs/metrics.md`).
//!
//! Each parent feature `p` (a feature that is the effective parent of at
//! least one other) gets one latent `ℓ_p`: among the latents matched to `p` by
//! the classification matching (`g(s) = argmax_j |cos(W_dec_s, F_j)|`), the
//! one that fires most often when `p` fires with no child active (ties: the
//! larger `|cos|` with `p`), so that a dead latent close to `p` does not
//! stand in for a live one. A latent `s` *carries* an ancestor
//! `a` of its matched feature when `cos(W_dec_s, F_a) > τ` (the absorption
//! cosine threshold). Per row where `p` fires:
//!
//! * with a child of `p` active: the row counts for recall with children; it
//!   is *absorbed* when a latent matched to an active descendant of `p`
//!   fires and carries `p`, *fully* when `ℓ_p` is silent (`= 0`), *partially*
//!   when `ℓ_p` fires below `ρ · μ_p` (`ρ` the partial fraction, `μ_p` the
//!   mean of `ℓ_p` over the rows where `p` fires with no child active);
//! * with no child active: the row counts for recall without children and
//!   for `μ_p`.
//!
//! Streaming and sparse: per batch the work is proportional to the truth's
//! non-zeros (and the latents each active feature has), never `[B, N]` or
//! `[B, S]`.

use serde::{Deserialize, Serialize};
use synthsae_host::Csr;

use crate::cosine::SimilarityMatrix;
use crate::error::{invalid, Result};

const NONE: u32 = u32::MAX;

/// Thresholds of the hierarchy metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HierarchyOptions {
    /// A latent carries a feature's direction when the cosine of its decoder
    /// row with the feature vector is above this (signed; default 0.1, about
    /// 2.8 standard deviations of the cosine of two random directions in 768
    /// dimensions).
    pub absorption_cosine: f64,
    /// Partial absorption: `ℓ_p` fires below this fraction of its mean
    /// activation when `p` fires without children (default 0.5).
    pub partial_fraction: f64,
    /// Splitting: a feature is split when two or more latents matched to it
    /// have `|cos|` at least this with it (default 0.5).
    pub split_cosine: f64,
}

impl Default for HierarchyOptions {
    fn default() -> Self {
        Self {
            absorption_cosine: 0.1,
            partial_fraction: 0.5,
            split_cosine: 0.5,
        }
    }
}

impl HierarchyOptions {
    /// Checks every threshold; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let check = |name: &str, v: f64, lo: f64| {
            if v.is_finite() && v >= lo && v <= 1.0 {
                Ok(())
            } else {
                Err(invalid(name, format!("must be in [{lo}, 1], got {v}")))
            }
        };
        check("absorption_cosine", self.absorption_cosine, -1.0)?;
        check("partial_fraction", self.partial_fraction, 0.0)?;
        check("split_cosine", self.split_cosine, 0.0)
    }
}

/// Absorption and recall of one parent feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParentAbsorption {
    /// The parent feature.
    pub feature: u32,
    /// Its latent `ℓ_p` (`None`: no latent is matched to it).
    pub latent: Option<u32>,
    /// The model's firing probability of the feature.
    pub firing_probability: f64,
    /// Share of the evaluated rows where the feature fired.
    pub firing_rate: f64,
    /// Rows where it fired with at least one child active.
    pub rows_with_children: u64,
    /// Rows where it fired with no child active.
    pub rows_without_children: u64,
    /// Share of `rows_with_children` that are absorbed, fully or partially.
    pub absorption: Option<f64>,
    /// Share of `rows_with_children` absorbed with `ℓ_p` silent.
    pub full_absorption: Option<f64>,
    /// Share of `rows_with_children` absorbed with `ℓ_p` below
    /// `partial_fraction · μ_p` (0 when `μ_p` is unknown or 0).
    pub partial_absorption: Option<f64>,
    /// Share of `rows_with_children` where `ℓ_p` fires.
    pub recall_with_children: Option<f64>,
    /// Share of `rows_without_children` where `ℓ_p` fires.
    pub recall_without_children: Option<f64>,
    /// `μ_p`: mean of `ℓ_p` over `rows_without_children`.
    pub mean_activation_without_children: Option<f64>,
}

/// Absorption over all parents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbsorptionMetrics {
    /// Parent features in the hierarchy.
    pub parents: usize,
    /// Parents with a latent that fired with a child at least once in the
    /// evaluation: the ones the means are over.
    pub parents_measured: usize,
    /// Parents no latent is matched to.
    pub parents_without_latent: usize,
    /// Mean over measured parents of their absorption (full + partial).
    pub absorption: f64,
    /// Mean over measured parents of their full absorption.
    pub full_absorption: f64,
    /// Mean over measured parents of their partial absorption.
    pub partial_absorption: f64,
    /// [`Self::absorption`] weighted by each parent's firing rate.
    pub absorption_weighted: f64,
    /// [`Self::full_absorption`] weighted by each parent's firing rate.
    pub full_absorption_weighted: f64,
    /// [`Self::partial_absorption`] weighted by each parent's firing rate.
    pub partial_absorption_weighted: f64,
    /// Mean over measured parents of the recall of `ℓ_p` with a child active.
    pub recall_with_children: f64,
    /// Mean over parents with a latent and rows without children of the
    /// recall of `ℓ_p` with no child active.
    pub recall_without_children: f64,
    /// Every parent, by feature index.
    pub per_parent: Vec<ParentAbsorption>,
}

/// Features matched by several latents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SplittingMetrics {
    /// Features with two or more matched latents at `|cos| ≥ split_cosine`.
    pub split_features: usize,
    /// Mean number of such latents per split feature (0 when none).
    pub mean_latents_per_split_feature: f64,
}

/// The hierarchy section of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HierarchyMetrics {
    /// The thresholds used.
    pub options: HierarchyOptions,
    /// Absorption and recall; `None` when the model has no hierarchy.
    pub absorption: Option<AbsorptionMetrics>,
    /// Splitting (any model).
    pub splitting: SplittingMetrics,
}

impl HierarchyMetrics {
    /// Flat `(key, value)` pairs for a metrics log: `prefix + name` for the
    /// summary scalars (per-parent values are left out).
    pub fn to_log_dict(&self, prefix: &str) -> Vec<(String, f64)> {
        let mut out = vec![
            (
                "split_features".to_string(),
                self.splitting.split_features as f64,
            ),
            (
                "mean_latents_per_split_feature".to_string(),
                self.splitting.mean_latents_per_split_feature,
            ),
        ];
        if let Some(a) = &self.absorption {
            out.extend(
                [
                    ("absorption", a.absorption),
                    ("full_absorption", a.full_absorption),
                    ("partial_absorption", a.partial_absorption),
                    ("absorption_weighted", a.absorption_weighted),
                    ("full_absorption_weighted", a.full_absorption_weighted),
                    ("partial_absorption_weighted", a.partial_absorption_weighted),
                    ("recall_with_children", a.recall_with_children),
                    ("recall_without_children", a.recall_without_children),
                ]
                .map(|(k, v)| (k.to_string(), v)),
            );
        }
        out.into_iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v))
            .collect()
    }
}

/// Splitting from the `[S, N]` cosine matrix and each latent's match.
pub fn splitting(sim: &SimilarityMatrix, best: &[u32], split_cosine: f64) -> SplittingMetrics {
    let mut count = vec![0u32; sim.cols()];
    for (s, &g) in best.iter().enumerate() {
        if f64::from(sim.get(s, g as usize).abs()) >= split_cosine {
            count[g as usize] += 1;
        }
    }
    let split: Vec<u32> = count.into_iter().filter(|&c| c >= 2).collect();
    SplittingMetrics {
        split_features: split.len(),
        mean_latents_per_split_feature: if split.is_empty() {
            0.0
        } else {
            split.iter().map(|&c| f64::from(c)).sum::<f64>() / split.len() as f64
        },
    }
}

/// Streaming absorption counts (see the module docs).
#[derive(Debug, Clone)]
pub struct AbsorptionCalculator {
    num_latents: usize,
    /// Effective parent of each feature (`NONE`: none), `[N]`.
    parent: Vec<u32>,
    /// The parent features, increasing.
    parents: Vec<u32>,
    /// Index into `parents` of each feature (`NONE`: not a parent), `[N]`.
    parent_slot: Vec<u32>,
    /// Candidates for `ℓ_p` per parent slot (CSR over slots): the latents
    /// matched to `p`, by decreasing `|cos|` with it.
    candidate_offsets: Vec<usize>,
    candidates: Vec<u32>,
    firing_probability: Vec<f64>,
    /// Latents whose values a row needs, per feature (CSR over features):
    /// `f`'s candidates first when `f` is a parent, then the latents matched
    /// to `f` that carry an ancestor of `f`.
    needed_offsets: Vec<usize>,
    needed: Vec<u32>,
    /// Ancestor parent slots each latent carries (CSR over latents).
    carries_offsets: Vec<usize>,
    carries: Vec<u32>,
    partial_fraction: f64,
    // Counts per parent slot.
    fired: Vec<u64>,
    with_children: Vec<u64>,
    without_children: Vec<u64>,
    // Counts per candidate.
    with_children_fired: Vec<u64>,
    full: Vec<u64>,
    without_children_fired: Vec<u64>,
    without_children_sum: Vec<f64>,
    /// `(candidate, its value)` of absorbed rows where the candidate fired:
    /// partial absorption once `μ_p` is known.
    absorbed_firing: Vec<(u32, f32)>,
    rows: u64,
    // Per-row scratch, stamped by row so that nothing is cleared.
    stamp: u64,
    active: Vec<u64>,
    slot_of_feature: Vec<u32>,
    has_child: Vec<u64>,
    absorbed: Vec<u64>,
    row_values: Vec<f32>,
}

impl AbsorptionCalculator {
    /// From the signed `[S, N]` cosine matrix, each latent's matched feature
    /// `[S]`, each feature's effective parent `[N]` (`u32::MAX`: none; e.g.
    /// [`synthsae_data::HierarchyModifier::parents`]) and its firing
    /// probability `[N]`.
    pub fn new(
        sim: &SimilarityMatrix,
        best: &[u32],
        parent: Vec<u32>,
        firing_probability: &[f32],
        options: &HierarchyOptions,
    ) -> Result<Self> {
        options.validate()?;
        let (s, n) = (sim.rows(), sim.cols());
        if best.len() != s || parent.len() != n || firing_probability.len() != n {
            return Err(invalid(
                "hierarchy",
                format!(
                    "{} matches, {} parents and {} probabilities for a [{s}, {n}] similarity",
                    best.len(),
                    parent.len(),
                    firing_probability.len()
                ),
            ));
        }
        if let Some(&bad) = parent.iter().find(|&&p| p != NONE && p as usize >= n) {
            return Err(invalid(
                "hierarchy",
                format!("parent {bad} out of range for {n} features"),
            ));
        }
        let mut parent_slot = vec![NONE; n];
        for &p in &parent {
            if p != NONE {
                parent_slot[p as usize] = 0;
            }
        }
        let parents: Vec<u32> = (0..n as u32)
            .filter(|&f| parent_slot[f as usize] != NONE)
            .collect();
        for (i, &p) in parents.iter().enumerate() {
            parent_slot[p as usize] = i as u32;
        }
        // Candidates for ℓ_p: the latents matched to p, closest first.
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); parents.len()];
        for (latent, &g) in best.iter().enumerate() {
            let slot = parent_slot[g as usize];
            if slot != NONE {
                lists[slot as usize].push(latent as u32);
            }
        }
        let mut candidate_offsets = vec![0usize];
        let mut candidates = Vec::new();
        for (slot, mut list) in lists.into_iter().enumerate() {
            let p = parents[slot] as usize;
            list.sort_by(|&a, &b| {
                let (ca, cb) = (sim.get(a as usize, p).abs(), sim.get(b as usize, p).abs());
                cb.total_cmp(&ca).then(a.cmp(&b))
            });
            candidates.extend(list);
            candidate_offsets.push(candidates.len());
        }
        // Which ancestors each latent carries.
        let mut carries_offsets = Vec::with_capacity(s + 1);
        carries_offsets.push(0);
        let mut carries = Vec::new();
        for (latent, &g) in best.iter().enumerate() {
            let mut a = parent[g as usize];
            let mut depth = 0;
            while a != NONE && depth < n {
                if f64::from(sim.get(latent, a as usize)) > options.absorption_cosine {
                    carries.push(parent_slot[a as usize]);
                }
                a = parent[a as usize];
                depth += 1;
            }
            carries_offsets.push(carries.len());
        }
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (slot, &p) in parents.iter().enumerate() {
            lists[p as usize].extend_from_slice(
                &candidates[candidate_offsets[slot]..candidate_offsets[slot + 1]],
            );
        }
        for (latent, &g) in best.iter().enumerate() {
            if carries_offsets[latent + 1] > carries_offsets[latent] {
                lists[g as usize].push(latent as u32);
            }
        }
        let mut needed_offsets = vec![0usize; n + 1];
        let mut needed = Vec::new();
        for (f, list) in lists.into_iter().enumerate() {
            needed.extend(list);
            needed_offsets[f + 1] = needed.len();
        }
        let (k, c) = (parents.len(), candidates.len());
        Ok(Self {
            num_latents: s,
            firing_probability: parents
                .iter()
                .map(|&p| f64::from(firing_probability[p as usize]))
                .collect(),
            parent,
            parents,
            parent_slot,
            candidate_offsets,
            candidates,
            needed_offsets,
            needed,
            carries_offsets,
            carries,
            partial_fraction: options.partial_fraction,
            fired: vec![0; k],
            with_children: vec![0; k],
            without_children: vec![0; k],
            with_children_fired: vec![0; c],
            full: vec![0; c],
            without_children_fired: vec![0; c],
            without_children_sum: vec![0.0; c],
            absorbed_firing: Vec::new(),
            rows: 0,
            stamp: 0,
            active: vec![0; n],
            slot_of_feature: vec![0; n],
            has_child: vec![0; k],
            absorbed: vec![0; k],
            row_values: Vec::new(),
        })
    }

    /// The `row · S + latent` positions whose latent values
    /// [`Self::add_gathered`] takes for the batch `gt`, in its order.
    pub fn positions(&self, gt: &Csr) -> Vec<i64> {
        let s = self.num_latents as i64;
        let mut out = Vec::new();
        for (r, (idx, val)) in gt.rows().enumerate() {
            for (&f, &v) in idx.iter().zip(val) {
                if v > 0.0 {
                    out.extend(
                        self.needed_of(f as usize)
                            .iter()
                            .map(|&l| r as i64 * s + l as i64),
                    );
                }
            }
        }
        out
    }

    fn needed_of(&self, f: usize) -> &[u32] {
        &self.needed[self.needed_offsets[f]..self.needed_offsets[f + 1]]
    }

    /// Adds a batch from the latent values at [`Self::positions`] (same
    /// order, same length).
    pub fn add_gathered(&mut self, gt: &Csr, values: &[f32]) -> Result<()> {
        let mut next = values.iter().copied();
        let mut missing = false;
        self.add_with(gt, |_, _| {
            next.next().unwrap_or_else(|| {
                missing = true;
                0.0
            })
        });
        if missing || next.next().is_some() {
            return Err(invalid(
                "latent values",
                "not one value per position of this batch",
            ));
        }
        Ok(())
    }

    /// Adds a batch of sparse latents (`[batch, S]`, columns increasing in
    /// each row) with the true features of the same rows.
    pub fn add_sparse(&mut self, gt: &Csr, latents: &Csr) -> Result<()> {
        if latents.n_rows() != gt.n_rows() || latents.n_cols() != self.num_latents {
            return Err(invalid(
                "sae_latents",
                format!(
                    "expected [{}, {}], got [{}, {}]",
                    gt.n_rows(),
                    self.num_latents,
                    latents.n_rows(),
                    latents.n_cols()
                ),
            ));
        }
        self.add_with(gt, |r, latent| {
            let (cols, vals) = latents.row(r);
            cols.binary_search(&latent).map_or(0.0, |i| vals[i])
        });
        Ok(())
    }

    /// The per-row pass; `value(row, latent)` is called once per position,
    /// in the order of [`Self::positions`].
    fn add_with(&mut self, gt: &Csr, mut value: impl FnMut(usize, u32) -> f32) {
        for (r, (idx, val)) in gt.rows().enumerate() {
            self.stamp += 1;
            let stamp = self.stamp;
            self.row_values.clear();
            for (&f, &v) in idx.iter().zip(val) {
                if v > 0.0 {
                    let f = f as usize;
                    self.active[f] = stamp;
                    self.slot_of_feature[f] = self.row_values.len() as u32;
                    let (lo, hi) = (self.needed_offsets[f], self.needed_offsets[f + 1]);
                    for k in lo..hi {
                        let latent = self.needed[k];
                        self.row_values.push(value(r, latent));
                    }
                }
            }
            // Parents with an active child, and parents an active
            // descendant's firing latent carries.
            for (&f, &v) in idx.iter().zip(val) {
                if v <= 0.0 {
                    continue;
                }
                let f = f as usize;
                let p = self.parent[f];
                if p != NONE && self.active[p as usize] == stamp {
                    self.has_child[self.parent_slot[p as usize] as usize] = stamp;
                }
                let start = self.slot_of_feature[f] as usize;
                let (lo, hi) = (self.needed_offsets[f], self.needed_offsets[f + 1]);
                for k in lo..hi {
                    if self.row_values[start + k - lo] == 0.0 {
                        continue;
                    }
                    let l = self.needed[k] as usize;
                    for &slot in &self.carries[self.carries_offsets[l]..self.carries_offsets[l + 1]]
                    {
                        if self.active[self.parents[slot as usize] as usize] == stamp {
                            self.absorbed[slot as usize] = stamp;
                        }
                    }
                }
            }
            for (&f, &v) in idx.iter().zip(val) {
                let slot = self.parent_slot[f as usize];
                if v <= 0.0 || slot == NONE {
                    continue;
                }
                let slot = slot as usize;
                self.fired[slot] += 1;
                let with = self.has_child[slot] == stamp;
                let absorbed = self.absorbed[slot] == stamp;
                if with {
                    self.with_children[slot] += 1;
                } else {
                    self.without_children[slot] += 1;
                }
                // The candidates come first among the parent's needed latents.
                let start = self.slot_of_feature[f as usize] as usize;
                for c in self.candidate_offsets[slot]..self.candidate_offsets[slot + 1] {
                    let z = self.row_values[start + c - self.candidate_offsets[slot]];
                    if with {
                        self.with_children_fired[c] += u64::from(z != 0.0);
                        if absorbed {
                            if z == 0.0 {
                                self.full[c] += 1;
                            } else {
                                self.absorbed_firing.push((c as u32, z));
                            }
                        }
                    } else {
                        self.without_children_fired[c] += u64::from(z != 0.0);
                        self.without_children_sum[c] += f64::from(z);
                    }
                }
            }
        }
        self.rows += gt.n_rows() as u64;
    }

    /// `ℓ_p` of a parent slot: the candidate that fired most often when `p`
    /// fired with no child active (ties: the closer one); `None` when no
    /// latent is matched to `p`.
    fn chosen(&self, slot: usize) -> Option<usize> {
        (self.candidate_offsets[slot]..self.candidate_offsets[slot + 1])
            .rev()
            .max_by_key(|&c| self.without_children_fired[c])
    }

    /// The metrics so far.
    pub fn compute(&self) -> AbsorptionMetrics {
        let k = self.parents.len();
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        let mean = |slot: usize, c: usize| {
            let n = self.without_children[slot];
            (n > 0).then(|| self.without_children_sum[c] / n as f64)
        };
        let chosen: Vec<Option<usize>> = (0..k).map(|slot| self.chosen(slot)).collect();
        let slot_of_candidate = |c: usize| self.candidate_offsets.partition_point(|&o| o <= c) - 1;
        let mut partial = vec![0u64; k];
        for &(c, z) in &self.absorbed_firing {
            let (c, slot) = (c as usize, slot_of_candidate(c as usize));
            if chosen[slot] != Some(c) {
                continue;
            }
            if let Some(mu) = mean(slot, c) {
                if f64::from(z) < self.partial_fraction * mu {
                    partial[slot] += 1;
                }
            }
        }
        let per_parent: Vec<ParentAbsorption> = (0..k)
            .map(|slot| {
                let with = self.with_children[slot];
                let without = self.without_children[slot];
                let of = |get: &dyn Fn(usize) -> u64, n: u64| {
                    chosen[slot].and_then(|c| ratio(get(c), n))
                };
                ParentAbsorption {
                    feature: self.parents[slot],
                    latent: chosen[slot].map(|c| self.candidates[c]),
                    firing_probability: self.firing_probability[slot],
                    firing_rate: ratio(self.fired[slot], self.rows).unwrap_or(0.0),
                    rows_with_children: with,
                    rows_without_children: without,
                    absorption: of(&|c| self.full[c] + partial[slot], with),
                    full_absorption: of(&|c| self.full[c], with),
                    partial_absorption: of(&|_| partial[slot], with),
                    recall_with_children: of(&|c| self.with_children_fired[c], with),
                    recall_without_children: of(&|c| self.without_children_fired[c], without),
                    mean_activation_without_children: chosen[slot].and_then(|c| mean(slot, c)),
                }
            })
            .collect();
        let avg = |get: &dyn Fn(&ParentAbsorption) -> Option<f64>, weighted: bool| {
            let (mut sum, mut weight) = (0.0, 0.0);
            for p in &per_parent {
                if let Some(v) = get(p) {
                    let w = if weighted { p.firing_rate } else { 1.0 };
                    sum += w * v;
                    weight += w;
                }
            }
            if weight > 0.0 {
                sum / weight
            } else {
                0.0
            }
        };
        AbsorptionMetrics {
            parents: k,
            parents_measured: per_parent.iter().filter(|p| p.absorption.is_some()).count(),
            parents_without_latent: per_parent.iter().filter(|p| p.latent.is_none()).count(),
            absorption: avg(&|p| p.absorption, false),
            full_absorption: avg(&|p| p.full_absorption, false),
            partial_absorption: avg(&|p| p.partial_absorption, false),
            absorption_weighted: avg(&|p| p.absorption, true),
            full_absorption_weighted: avg(&|p| p.full_absorption, true),
            partial_absorption_weighted: avg(&|p| p.partial_absorption, true),
            recall_with_children: avg(&|p| p.recall_with_children, false),
            recall_without_children: avg(&|p| p.recall_without_children, false),
            per_parent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Features 0 (parent) and 1, 2 (its children) and 3 (no hierarchy),
    /// in 4 orthogonal dimensions; latents given as decoder rows.
    fn calculator(decoder: &[f32], options: &HierarchyOptions) -> AbsorptionCalculator {
        let features: Vec<f32> = (0..16)
            .map(|i| if i % 5 == 0 { 1.0 } else { 0.0 })
            .collect();
        let sim = SimilarityMatrix::compute_host(decoder, &features, 4).unwrap();
        let best = sim.row_argmax_abs();
        AbsorptionCalculator::new(
            &sim,
            &best,
            vec![NONE, 0, 0, NONE],
            &[0.5, 0.1, 0.1, 0.2],
            options,
        )
        .unwrap()
    }

    fn rows(rows: &[&[(u32, f32)]], n: usize) -> Csr {
        let mut c = Csr::empty(n);
        for r in rows {
            c.push_row(r.iter().copied());
        }
        c
    }

    #[test]
    fn counts_full_and_partial_absorption_and_recall() {
        // Latent 0 = parent, latent 1 = child 1 + 0.5 parent (carries it),
        // latent 2 = child 2 (does not), latent 3 = feature 3.
        #[rustfmt::skip]
        let decoder = [
            1.0, 0.0, 0.0, 0.0,
            0.5, 1.0, 0.0, 0.0,
            0.0, 0.0, 1.0, 0.0,
            0.0, 0.0, 0.0, 1.0,
        ];
        let mut c = calculator(&decoder, &HierarchyOptions::default());
        let gt = rows(
            &[
                &[(0, 1.0)],           // parent alone
                &[(0, 1.0), (3, 1.0)], // parent alone
                &[(0, 1.0), (1, 1.0)], // with child 1
                &[(0, 1.0), (1, 1.0)], // with child 1
                &[(0, 1.0), (2, 1.0)], // with child 2
                &[(3, 1.0)],           // parent silent
            ],
            4,
        );
        let latents = rows(
            &[
                &[(0, 2.0)],
                &[(0, 4.0), (3, 1.0)],
                &[(1, 1.0)],           // ℓ_0 silent, absorbing latent fires: full
                &[(0, 0.5), (1, 1.0)], // ℓ_0 at 0.5 < 0.5 · 3: partial
                &[(2, 1.0)],           // ℓ_0 silent but latent 2 does not carry 0
                &[(3, 1.0)],
            ],
            4,
        );
        c.add_sparse(&gt, &latents).unwrap();
        let m = c.compute();
        assert_eq!((m.parents, m.parents_measured), (1, 1));
        let p = &m.per_parent[0];
        assert_eq!((p.feature, p.latent), (0, Some(0)));
        assert_eq!((p.rows_with_children, p.rows_without_children), (3, 2));
        assert_eq!(p.full_absorption, Some(1.0 / 3.0));
        assert_eq!(p.partial_absorption, Some(1.0 / 3.0));
        assert_eq!(p.absorption, Some(2.0 / 3.0));
        assert_eq!(p.recall_with_children, Some(1.0 / 3.0));
        assert_eq!(p.recall_without_children, Some(1.0));
        assert_eq!(p.mean_activation_without_children, Some(3.0));
        assert!((p.firing_rate - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(m.absorption, 2.0 / 3.0);

        // The gathered path gives the same counts.
        let mut g = calculator(&decoder, &HierarchyOptions::default());
        let pos = g.positions(&gt);
        let dense = latents.to_dense_vec();
        let values: Vec<f32> = pos.iter().map(|&q| dense[q as usize]).collect();
        g.add_gathered(&gt, &values).unwrap();
        assert_eq!(g.compute(), m);
        assert!(g.add_gathered(&gt, &values[1..]).is_err());

        // A threshold above the absorbing latent's cosine (0.447) finds none.
        let strict = HierarchyOptions {
            absorption_cosine: 0.5,
            ..Default::default()
        };
        let mut c = calculator(&decoder, &strict);
        c.add_sparse(&gt, &latents).unwrap();
        assert_eq!(c.compute().absorption, 0.0);
    }

    #[test]
    fn a_dead_latent_closer_to_the_parent_does_not_stand_in_for_the_live_one() {
        // Latent 1 is exactly the parent but never fires; latent 0 is the
        // parent with a little of feature 3 and fires whenever it does.
        #[rustfmt::skip]
        let decoder = [
            1.0, 0.0, 0.0, 0.3,
            1.0, 0.0, 0.0, 0.0,
        ];
        let mut c = calculator(&decoder, &HierarchyOptions::default());
        let gt = rows(&[&[(0, 1.0)], &[(0, 1.0), (1, 1.0)]], 4);
        c.add_sparse(&gt, &rows(&[&[(0, 1.0)], &[(0, 1.0)]], 2))
            .unwrap();
        let p = &c.compute().per_parent[0];
        assert_eq!(p.latent, Some(0));
        assert_eq!(p.recall_with_children, Some(1.0));
        // With no firing at all, the closer latent is the one reported.
        let mut c = calculator(&decoder, &HierarchyOptions::default());
        c.add_sparse(&gt, &Csr::zeros(2, 2)).unwrap();
        assert_eq!(c.compute().per_parent[0].latent, Some(1));
    }

    #[test]
    fn parents_without_latents_and_bad_options() {
        // Nothing is matched to the parent: its absorption is not measured.
        #[rustfmt::skip]
        let decoder = [
            0.0, 1.0, 0.0, 0.0,
            0.0, 0.0, 1.0, 0.0,
        ];
        let mut c = calculator(&decoder, &HierarchyOptions::default());
        let gt = rows(&[&[(0, 1.0), (1, 1.0)]], 4);
        c.add_sparse(&gt, &rows(&[&[(0, 1.0)]], 2)).unwrap();
        let m = c.compute();
        assert_eq!((m.parents_measured, m.parents_without_latent), (0, 1));
        assert_eq!(m.per_parent[0].absorption, None);
        assert!(c.add_sparse(&gt, &rows(&[&[(0, 1.0)]], 3)).is_err());
        for bad in [
            HierarchyOptions {
                absorption_cosine: 1.5,
                ..Default::default()
            },
            HierarchyOptions {
                partial_fraction: -0.1,
                ..Default::default()
            },
            HierarchyOptions {
                split_cosine: f64::NAN,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }

    #[test]
    fn splitting_counts_features_with_several_close_latents() {
        #[rustfmt::skip]
        let decoder = [
            1.0, 0.0, 0.0, 0.0,
            1.0, 0.2, 0.0, 0.0,
            1.0, 0.0, 0.3, 0.0,
            0.0, 1.0, 0.0, 0.0,
            0.1, 0.0, 0.0, 0.01, // matched to 0 but |cos| 0.995: counts
            0.0, 0.0, 0.0, -1.0,
        ];
        let features: Vec<f32> = (0..16)
            .map(|i| if i % 5 == 0 { 1.0 } else { 0.0 })
            .collect();
        let sim = SimilarityMatrix::compute_host(&decoder, &features, 4).unwrap();
        let best = sim.row_argmax_abs();
        let m = splitting(&sim, &best, 0.5);
        assert_eq!(m.split_features, 1);
        assert_eq!(m.mean_latents_per_split_feature, 4.0);
        assert_eq!(splitting(&sim, &best, 0.999).split_features, 0);
    }
}
