//! Feature hierarchies (sae-lens `hierarchy/`): trees in which a child can
//! only fire when its parent fires, optionally with mutually exclusive
//! siblings and children scaled by their parent's value.
//!
//! Longer than most files (about 750 lines) because its tests, a quarter of
//! it, sit beside the code; the code is one concept, the tree and its
//! generation.
//!
//! This module holds the tree ([`HierarchyNode`]), its JSON forms, validation,
//! the random generator ([`HierarchyConfig`], [`generate_hierarchy`], drawing
//! with CPython's `random` as sae-lens does) and probability compensation.
//! Applying a hierarchy to batches is [`crate::hierarchy_modifier`].

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{invalid, Result};
use crate::py_random::PyRandom;

/// One node of a hierarchy tree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HierarchyNode {
    /// Column this node controls, or `None` for an organisational node.
    pub feature_index: Option<usize>,
    /// Child nodes, in order.
    pub children: Vec<HierarchyNode>,
    /// At most one child (with a feature) stays active per sample.
    pub mutually_exclusive_children: bool,
    /// Children are scaled by `parent_value / parent_mean` instead of gated 0/1.
    pub scale_children_by_parent: bool,
    /// Free-text label.
    pub feature_id: Option<String>,
}

impl HierarchyNode {
    /// A leaf for `feature_index`.
    pub fn leaf(feature_index: usize) -> Self {
        Self {
            feature_index: Some(feature_index),
            ..Self::default()
        }
    }

    /// A node with children; mutual exclusion needs at least 2 children.
    pub fn new(
        feature_index: Option<usize>,
        children: Vec<HierarchyNode>,
        mutually_exclusive_children: bool,
        scale_children_by_parent: bool,
    ) -> Result<Self> {
        let node = Self {
            feature_index,
            children,
            mutually_exclusive_children,
            scale_children_by_parent,
            feature_id: None,
        };
        node.check_me()?;
        Ok(node)
    }

    fn check_me(&self) -> Result<()> {
        if self.mutually_exclusive_children && self.children.len() < 2 {
            return Err(invalid(
                "mutually_exclusive_children",
                format!(
                    "need at least 2 children for mutual exclusion ({})",
                    self.describe()
                ),
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match (&self.feature_index, &self.feature_id) {
            (Some(i), _) => format!("feature_index={i}"),
            (None, Some(id)) => format!("id={id}"),
            (None, None) => "unnamed node".to_string(),
        }
    }

    /// Every feature index in the subtree, pre-order.
    pub fn get_all_feature_indices(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<usize>) {
        if let Some(i) = self.feature_index {
            out.push(i);
        }
        for c in &self.children {
            c.collect(out);
        }
    }

    /// Depth of the subtree (a leaf has depth 0).
    pub fn depth(&self) -> usize {
        self.children
            .iter()
            .map(|c| c.depth() + 1)
            .max()
            .unwrap_or(0)
    }

    /// Number of nodes in the subtree.
    pub fn node_count(&self) -> usize {
        1 + self.children.iter().map(Self::node_count).sum::<usize>()
    }

    fn fmt_indented(&self, f: &mut fmt::Formatter<'_>, level: usize) -> fmt::Result {
        write!(f, "{}", " ".repeat(level * 4))?;
        match self.feature_index {
            Some(i) => write!(f, "{i}")?,
            None => write!(f, "-")?,
        }
        write!(
            f,
            "{}",
            if self.mutually_exclusive_children {
                "x"
            } else {
                " "
            }
        )?;
        write!(
            f,
            "{}",
            if self.scale_children_by_parent {
                "R"
            } else {
                " "
            }
        )?;
        if let Some(id) = &self.feature_id {
            write!(f, " ({id})")?;
        }
        for c in &self.children {
            writeln!(f)?;
            c.fmt_indented(f, level + 1)?;
        }
        Ok(())
    }
}

/// One line per node, 4 spaces per level: index (or `-`), `x` if mutually
/// exclusive, `R` if rescaling, then ` (feature_id)` (sae-lens's `repr`).
impl fmt::Display for HierarchyNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_indented(f, 0)
    }
}

/// JSON form: `feature_index`, `mutually_exclusive_children`,
/// `scale_children_by_parent`, `feature_id`, `children` (sae-lens's
/// `Hierarchy.to_dict` node). Reading also accepts `id` for `feature_id`
/// (the form `HierarchyNode.from_dict` reads); missing keys take defaults.
#[derive(Serialize, Deserialize)]
struct NodeJson {
    #[serde(default)]
    feature_index: Option<usize>,
    #[serde(default)]
    mutually_exclusive_children: bool,
    #[serde(default)]
    scale_children_by_parent: bool,
    #[serde(default, alias = "id")]
    feature_id: Option<String>,
    #[serde(default)]
    children: Vec<NodeJson>,
}

impl NodeJson {
    fn from_node(n: &HierarchyNode) -> Self {
        Self {
            feature_index: n.feature_index,
            mutually_exclusive_children: n.mutually_exclusive_children,
            scale_children_by_parent: n.scale_children_by_parent,
            feature_id: n.feature_id.clone(),
            children: n.children.iter().map(Self::from_node).collect(),
        }
    }

    fn into_node(self) -> Result<HierarchyNode> {
        let node = HierarchyNode {
            feature_index: self.feature_index,
            mutually_exclusive_children: self.mutually_exclusive_children,
            scale_children_by_parent: self.scale_children_by_parent,
            feature_id: self.feature_id,
            children: self
                .children
                .into_iter()
                .map(Self::into_node)
                .collect::<Result<_>>()?,
        };
        node.check_me()?;
        Ok(node)
    }
}

impl Serialize for HierarchyNode {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        NodeJson::from_node(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for HierarchyNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        NodeJson::deserialize(d)?
            .into_node()
            .map_err(serde::de::Error::custom)
    }
}

/// Checks a forest: every feature index appears at most once (within a tree
/// and across trees — the reference misses the first) and, when
/// `num_features` is given, is `< num_features` (the reference does not
/// check). Loops and shared nodes cannot be expressed with owned trees.
pub fn validate_hierarchy(roots: &[HierarchyNode], num_features: Option<usize>) -> Result<()> {
    let mut seen = HashSet::new();
    for (t, root) in roots.iter().enumerate() {
        root.check_me()?;
        for i in root.get_all_feature_indices() {
            if let Some(n) = num_features {
                if i >= n {
                    return Err(invalid(
                        "hierarchy",
                        format!("feature index {i} in tree {t} is out of range for {n} features"),
                    ));
                }
            }
            if !seen.insert(i) {
                return Err(invalid(
                    "hierarchy",
                    format!("feature index {i} appears more than once (tree {t}); each feature belongs to at most one node"),
                ));
            }
        }
    }
    fn check_tree(n: &HierarchyNode) -> Result<()> {
        n.check_me()?;
        n.children.iter().try_for_each(check_tree)
    }
    roots.iter().try_for_each(check_tree)
}

/// A forest of hierarchy trees (sae-lens `Hierarchy`, without the modifier,
/// which is built by [`crate::hierarchy_modifier::HierarchyModifier::new`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Hierarchy {
    /// The trees.
    pub roots: Vec<HierarchyNode>,
}

impl Hierarchy {
    /// Wraps and validates a forest.
    pub fn new(roots: Vec<HierarchyNode>) -> Result<Self> {
        validate_hierarchy(&roots, None)?;
        Ok(Self { roots })
    }

    /// Every feature index used by the forest.
    pub fn feature_indices_used(&self) -> HashSet<usize> {
        self.roots
            .iter()
            .flat_map(|r| r.get_all_feature_indices())
            .collect()
    }

    /// Per-feature factors that undo the thinning caused by the hierarchy
    /// (`[N]`, float32, 1 outside the forest and for roots): a feature under
    /// an effective parent of base probability `q > 0` gets `1 / q`; members
    /// of a mutually exclusive group under a node of probability `q_node`
    /// are multiplied by `1 + max(0, T − p_c) / q_node`, `T` the sum of the
    /// members' base probabilities.
    pub fn compute_probability_correction_factors(&self, base: &[f32]) -> Result<Vec<f32>> {
        validate_hierarchy(&self.roots, Some(base.len()))?;
        let mut factors = vec![1.0f32; base.len()];
        fn walk(node: &HierarchyNode, parent_prob: f64, base: &[f32], factors: &mut [f32]) {
            let node_prob = match node.feature_index {
                Some(i) => {
                    if parent_prob > 0.0 {
                        factors[i] = (1.0 / parent_prob) as f32;
                    }
                    base[i] as f64
                }
                None => parent_prob,
            };
            for c in &node.children {
                walk(c, node_prob, base, factors);
            }
            if node.mutually_exclusive_children && node.children.len() >= 2 {
                let members: Vec<usize> = node
                    .children
                    .iter()
                    .filter_map(|c| c.feature_index)
                    .collect();
                if members.len() >= 2 && node_prob > 0.0 {
                    let total: f64 = members.iter().map(|&m| base[m] as f64).sum();
                    for &m in &members {
                        let others = (total - base[m] as f64).max(0.0);
                        factors[m] *= (1.0 + others / node_prob) as f32;
                    }
                }
            }
        }
        for r in &self.roots {
            walk(r, 1.0, base, &mut factors);
        }
        Ok(factors)
    }

    /// Applies compensation: `min(p · factor, 1)` per feature. Returns the
    /// probabilities and how many were clamped (with the largest value before
    /// clamping), so callers can warn as sae-lens does.
    pub fn compensate(&self, base: &[f32]) -> Result<(Vec<f32>, usize, f32)> {
        let factors = self.compute_probability_correction_factors(base)?;
        let mut clamped = 0;
        let mut max_before = 0.0f32;
        let out = base
            .iter()
            .zip(&factors)
            .map(|(&p, &f)| {
                let q = p * f;
                if q >= 1.0 && p < 1.0 {
                    clamped += 1;
                    max_before = max_before.max(q);
                }
                q.min(1.0)
            })
            .collect();
        Ok((out, clamped, max_before))
    }
}

/// How to generate a random hierarchy (sae-lens `HierarchyConfig`; keys and
/// order of its JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HierarchyConfig {
    /// Number of trees.
    pub total_root_nodes: usize,
    /// Children per parent: exact, or an inclusive `[min, max]` range drawn per parent.
    pub branching_factor: BranchingFactor,
    /// Depth of the deepest children (roots are depth 0).
    pub max_depth: usize,
    /// Fraction of eligible parents whose children are mutually exclusive.
    pub mutually_exclusive_portion: f64,
    /// Minimum depth of a parent eligible for mutual exclusion.
    pub mutually_exclusive_min_depth: usize,
    /// Maximum depth of an eligible parent (`None`: unlimited).
    pub mutually_exclusive_max_depth: Option<usize>,
    /// Raise base probabilities to undo hierarchy thinning.
    pub compensate_probabilities: bool,
    /// Set the rescale flag on every generated parent.
    pub scale_children_by_parent: bool,
}

impl Default for HierarchyConfig {
    fn default() -> Self {
        Self {
            total_root_nodes: 100,
            branching_factor: BranchingFactor::Exact(100),
            max_depth: 2,
            mutually_exclusive_portion: 0.0,
            mutually_exclusive_min_depth: 0,
            mutually_exclusive_max_depth: None,
            compensate_probabilities: false,
            scale_children_by_parent: false,
        }
    }
}

/// `branching_factor`: an int, or a 2-element list `[min, max]` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BranchingFactor {
    /// Exactly this many children.
    Exact(usize),
    /// Uniform in `[min, max]`, drawn per parent.
    Range(usize, usize),
}

impl HierarchyConfig {
    /// Checks the ranges sae-lens checks.
    pub fn validate(&self) -> Result<()> {
        if self.total_root_nodes == 0 {
            return Err(invalid("hierarchy.total_root_nodes", "must be positive"));
        }
        match self.branching_factor {
            BranchingFactor::Exact(b) if b < 2 => {
                return Err(invalid(
                    "hierarchy.branching_factor",
                    format!("must be at least 2, got {b}"),
                ))
            }
            BranchingFactor::Range(lo, _) if lo < 2 => {
                return Err(invalid(
                    "hierarchy.branching_factor",
                    format!("minimum must be at least 2, got {lo}"),
                ))
            }
            BranchingFactor::Exact(b) | BranchingFactor::Range(_, b) if b > u32::MAX as usize => {
                return Err(invalid(
                    "hierarchy.branching_factor",
                    format!("must be at most {}, got {b}", u32::MAX),
                ))
            }
            BranchingFactor::Range(lo, hi) if lo > hi => {
                return Err(invalid(
                    "hierarchy.branching_factor",
                    format!("[0] must be <= [1], got [{lo}, {hi}]"),
                ))
            }
            _ => {}
        }
        if self.max_depth < 1 {
            return Err(invalid("hierarchy.max_depth", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.mutually_exclusive_portion) {
            return Err(invalid(
                "hierarchy.mutually_exclusive_portion",
                format!(
                    "must be between 0.0 and 1.0, got {}",
                    self.mutually_exclusive_portion
                ),
            ));
        }
        if let Some(hi) = self.mutually_exclusive_max_depth {
            if hi < self.mutually_exclusive_min_depth {
                return Err(invalid(
                    "hierarchy.mutually_exclusive_max_depth",
                    format!(
                        "must be >= mutually_exclusive_min_depth ({} < {})",
                        hi, self.mutually_exclusive_min_depth
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Generates a random forest over features `0..num_features` breadth-first
/// across the whole forest, drawing with CPython's `random.Random(seed)`
/// exactly as sae-lens does (so a seed gives sae-lens's hierarchy).
pub fn generate_hierarchy(
    num_features: usize,
    config: &HierarchyConfig,
    seed: Option<u64>,
) -> Result<Hierarchy> {
    config.validate()?;
    let mut rng = PyRandom::from_seed(seed);
    struct ArenaNode {
        feature: usize,
        children: Vec<usize>,
        me: bool,
        scale: bool,
    }
    let mut arena: Vec<ArenaNode> = Vec::new();
    let mut next_feature = 0usize;
    let mut new_node = |arena: &mut Vec<ArenaNode>| -> Option<usize> {
        if next_feature >= num_features {
            return None;
        }
        arena.push(ArenaNode {
            feature: next_feature,
            children: Vec::new(),
            me: false,
            scale: false,
        });
        next_feature += 1;
        Some(arena.len() - 1)
    };
    let mut roots = Vec::new();
    for _ in 0..config.total_root_nodes {
        match new_node(&mut arena) {
            Some(id) => roots.push(id),
            None => break,
        }
    }
    let mut parents: Vec<(usize, usize)> = roots.iter().map(|&r| (r, 0)).collect();
    let mut level = parents.clone();
    while !level.is_empty() {
        let mut next_level = Vec::new();
        for &(node, depth) in &level {
            if depth >= config.max_depth {
                continue;
            }
            let branching = match config.branching_factor {
                BranchingFactor::Exact(b) => b,
                BranchingFactor::Range(lo, hi) => rng.randint(lo as u64, hi as u64) as usize,
            };
            for _ in 0..branching {
                let Some(child) = new_node(&mut arena) else {
                    break;
                };
                arena[node].children.push(child);
                if depth + 1 < config.max_depth {
                    next_level.push((child, depth + 1));
                    parents.push((child, depth + 1));
                }
            }
        }
        level = next_level;
    }
    let eligible: Vec<usize> = parents
        .iter()
        .filter(|&&(id, depth)| {
            depth >= config.mutually_exclusive_min_depth
                && config
                    .mutually_exclusive_max_depth
                    .is_none_or(|hi| depth <= hi)
                && arena[id].children.len() >= 2
        })
        .map(|&(id, _)| id)
        .collect();
    let k = (eligible.len() as f64 * config.mutually_exclusive_portion) as usize;
    if k > 0 {
        for i in rng.sample_indices(eligible.len(), k) {
            arena[eligible[i]].me = true;
        }
    }
    if config.scale_children_by_parent {
        for &(id, _) in &parents {
            arena[id].scale = true;
        }
    }
    fn build(arena: &[ArenaNode], id: usize) -> HierarchyNode {
        let a = &arena[id];
        HierarchyNode {
            feature_index: Some(a.feature),
            children: a.children.iter().map(|&c| build(arena, c)).collect(),
            mutually_exclusive_children: a.me,
            scale_children_by_parent: a.scale,
            feature_id: None,
        }
    }
    Ok(Hierarchy {
        roots: roots.iter().map(|&r| build(&arena, r)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden() -> Hierarchy {
        let cfg = HierarchyConfig {
            total_root_nodes: 2,
            branching_factor: BranchingFactor::Range(2, 4),
            max_depth: 2,
            mutually_exclusive_portion: 0.5,
            ..Default::default()
        };
        generate_hierarchy(30, &cfg, Some(3)).unwrap()
    }

    #[test]
    fn generation_matches_saelens_golden() {
        let h = golden();
        type Shape = Vec<(usize, bool, Vec<(usize, bool, Vec<usize>)>)>;
        let shape: Shape = h
            .roots
            .iter()
            .map(|r| {
                (
                    r.feature_index.unwrap(),
                    r.mutually_exclusive_children,
                    r.children
                        .iter()
                        .map(|c| {
                            (
                                c.feature_index.unwrap(),
                                c.mutually_exclusive_children,
                                c.children
                                    .iter()
                                    .map(|g| g.feature_index.unwrap())
                                    .collect(),
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        let want = vec![
            (
                0,
                true,
                vec![(2, false, vec![8, 9, 10, 11]), (3, true, vec![12, 13])],
            ),
            (
                1,
                true,
                vec![
                    (4, true, vec![14, 15, 16]),
                    (5, false, vec![17, 18, 19, 20]),
                    (6, false, vec![21, 22, 23]),
                    (7, false, vec![24, 25, 26, 27]),
                ],
            ),
        ];
        assert_eq!(shape, want);
        assert!(!h.feature_indices_used().contains(&28));
    }

    #[test]
    fn compensation_matches_saelens_golden() {
        let f = golden()
            .compute_probability_correction_factors(&[0.2; 30])
            .unwrap();
        let want = [
            1., 1., 10., 10., 20., 20., 20., 20., 5., 5., 5., 5., 10., 10., 15., 15., 15., 5., 5.,
            5., 5., 5., 5., 5., 5., 5., 5., 5., 1., 1.,
        ];
        for (a, b) in f.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{f:?}");
        }
        let (p, clamped, max) = golden().compensate(&[0.2; 30]).unwrap();
        assert!(p.iter().all(|&x| x <= 1.0));
        assert!(clamped > 0 && max >= 3.9);
    }

    #[test]
    fn breadth_first_example() {
        // 10 features, 2 roots, branching 2, depth 2 → 0→{2,3}, 1→{4,5}, 2→{6,7}, 3→{8,9}.
        let cfg = HierarchyConfig {
            total_root_nodes: 2,
            branching_factor: BranchingFactor::Exact(2),
            ..Default::default()
        };
        let h = generate_hierarchy(10, &cfg, Some(0)).unwrap();
        assert_eq!(
            h.roots[0].get_all_feature_indices(),
            vec![0, 2, 6, 7, 3, 8, 9]
        );
        assert_eq!(h.roots[1].get_all_feature_indices(), vec![1, 4, 5]);
    }

    #[test]
    fn display_and_json_forms() {
        let n = HierarchyNode::new(
            Some(0),
            vec![
                HierarchyNode::new(Some(3), vec![HierarchyNode::leaf(12)], false, false).unwrap(),
                HierarchyNode::leaf(4),
            ],
            true,
            false,
        )
        .unwrap();
        assert_eq!(n.to_string(), "0x \n    3  \n        12  \n    4  ");
        let json = serde_json::to_string(&n).unwrap();
        assert!(json.starts_with(r#"{"feature_index":0,"mutually_exclusive_children":true,"scale_children_by_parent":false,"feature_id":null,"children":["#));
        let back: HierarchyNode = serde_json::from_str(&json).unwrap();
        assert_eq!(back, n);
        let with_id: HierarchyNode =
            serde_json::from_str(r#"{"id":"animal","children":[{"feature_index":2}]}"#).unwrap();
        assert_eq!(with_id.feature_id.as_deref(), Some("animal"));
        assert_eq!(with_id.children[0].feature_index, Some(2));
        let e = serde_json::from_str::<HierarchyNode>(r#"{"feature_index":0,"mutually_exclusive_children":true,"children":[{"feature_index":1}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 2 children"), "{e}");
    }

    #[test]
    fn validation_catches_duplicates_and_range() {
        let dup = HierarchyNode::new(
            Some(0),
            vec![HierarchyNode::leaf(1), HierarchyNode::leaf(1)],
            false,
            false,
        )
        .unwrap();
        let e = validate_hierarchy(&[dup], None).unwrap_err().to_string();
        assert!(e.contains("more than once"), "{e}");
        let two = [
            HierarchyNode::leaf(0),
            HierarchyNode::new(Some(1), vec![HierarchyNode::leaf(0)], false, false).unwrap(),
        ];
        assert!(validate_hierarchy(&two, None).is_err());
        let e = validate_hierarchy(&[HierarchyNode::leaf(5)], Some(5))
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{e}");
    }

    #[test]
    fn config_validation_and_json() {
        let bad = [
            (
                HierarchyConfig {
                    total_root_nodes: 0,
                    ..Default::default()
                },
                "total_root_nodes",
            ),
            (
                HierarchyConfig {
                    branching_factor: BranchingFactor::Exact(1),
                    ..Default::default()
                },
                "branching_factor",
            ),
            (
                HierarchyConfig {
                    branching_factor: BranchingFactor::Range(3, 2),
                    ..Default::default()
                },
                "branching_factor",
            ),
            (
                HierarchyConfig {
                    max_depth: 0,
                    ..Default::default()
                },
                "max_depth",
            ),
            (
                HierarchyConfig {
                    mutually_exclusive_portion: 1.5,
                    ..Default::default()
                },
                "portion",
            ),
            (
                HierarchyConfig {
                    mutually_exclusive_min_depth: 2,
                    mutually_exclusive_max_depth: Some(1),
                    ..Default::default()
                },
                "max_depth",
            ),
        ];
        for (cfg, needle) in bad {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        let json = r#"{"total_root_nodes":3,"branching_factor":[2,3],"max_depth":2,"mutually_exclusive_portion":0.5,"mutually_exclusive_min_depth":0,"mutually_exclusive_max_depth":null,"compensate_probabilities":false,"scale_children_by_parent":false}"#;
        let cfg: HierarchyConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.branching_factor, BranchingFactor::Range(2, 3));
        assert_eq!(serde_json::to_string(&cfg).unwrap(), json);
        assert!(serde_json::from_str::<HierarchyConfig>(r#"{"depth":2}"#).is_err());
    }
}
