//! Named model configurations shipped with synthsae.

use crate::error::{invalid, Result};
use crate::synthetic_model::SyntheticModelConfig;

/// `(name, description, sae-lens config JSON)`.
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "tutorial",
        "16 orthogonal features in 32 dimensions, each firing with probability 0.25 (the sae-lens tutorial model)",
        include_str!("../presets/tutorial.json"),
    ),
    (
        "quickstart",
        "4096 features in 256 dimensions: Zipf firing, 2-level hierarchy with mutual exclusion, rank-16 correlation, noisy magnitudes",
        include_str!("../presets/quickstart.json"),
    ),
    (
        "synthsaebench-16k",
        "SynthSAEBench-16k: 16384 features in 768 dimensions, 3-level hierarchy, rank-25 correlation, seed 42 (rebuilds decoderesearch/synth-sae-bench-16k-v2)",
        include_str!("../presets/synthsaebench-16k.json"),
    ),
];

/// The config of preset `name`.
pub fn preset(name: &str) -> Result<SyntheticModelConfig> {
    let (_, _, json) = PRESETS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|(n, _, _)| *n).collect();
        invalid(
            "preset",
            format!("unknown preset `{name}`; available: {}", names.join(", ")),
        )
    })?;
    SyntheticModelConfig::from_json(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_unknown_names_fail() {
        for (name, _, _) in PRESETS {
            let cfg = preset(name).unwrap();
            assert_eq!(cfg.seed, Some(42), "{name}");
        }
        let b = preset("synthsaebench-16k").unwrap();
        assert_eq!((b.num_features, b.hidden_dim), (16384, 768));
        let e = preset("nope").unwrap_err().to_string();
        assert!(
            e.contains("tutorial") && e.contains("synthsaebench-16k"),
            "{e}"
        );
    }

    #[test]
    fn synthsaebench_hierarchy_covers_10880_features() {
        // Published: features 0–127 are roots, 10 880 features are in trees.
        let cfg = preset("synthsaebench-16k").unwrap();
        let h = crate::hierarchy::generate_hierarchy(
            cfg.num_features,
            cfg.hierarchy.as_ref().unwrap(),
            Some(45),
        )
        .unwrap();
        assert_eq!(h.roots.len(), 128);
        assert_eq!(h.feature_indices_used().len(), 10_880);
    }
}
