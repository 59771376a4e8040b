//! The evaluation result and its `eval_stats.json` form (spec §7.4, §9.6).

use serde::{Deserialize, Serialize};

use crate::metrics::ClassificationMetrics;

/// What [`crate::eval_sae_on_synthetic_data`] returns. Serialises (serde) to
/// sae-lens's `eval_stats.json`: the same keys, order and nesting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SyntheticDataEvalResult {
    /// Mean number of firing true features per sample.
    pub true_l0: f64,
    /// Mean number of active (`≠ 0`) SAE latents per sample.
    pub sae_l0: f64,
    /// Latents that never fired during the evaluation.
    pub dead_latents: u64,
    /// Mean `‖x̂‖ / ‖x‖` (1.0 = no shrinkage).
    pub shrinkage: f64,
    /// `1 − MSE / Var(x)`.
    pub explained_variance: f64,
    /// Mean `|cos|` over the optimal one-to-one matching of decoder rows and
    /// true features.
    pub mcc: f64,
    /// Distinct best-matching features / number of latents.
    pub uniqueness: f64,
    /// Latents as detectors of their best-matching feature.
    pub classification: ClassificationMetrics,
}

impl SyntheticDataEvalResult {
    /// Flat `(key, value)` pairs for a metrics log: `prefix + field` for the
    /// scalars, `prefix + "classification/" + name` for the four
    /// classification values (sae-lens `to_log_dict`).
    pub fn to_log_dict(&self, prefix: &str) -> Vec<(String, f64)> {
        let c = &self.classification;
        let scalars = [
            ("true_l0", self.true_l0),
            ("sae_l0", self.sae_l0),
            ("dead_latents", self.dead_latents as f64),
            ("shrinkage", self.shrinkage),
            ("explained_variance", self.explained_variance),
            ("mcc", self.mcc),
            ("uniqueness", self.uniqueness),
        ];
        let classification = [
            ("precision", c.precision),
            ("recall", c.recall),
            ("f1_score", c.f1_score),
            ("accuracy", c.accuracy),
        ];
        scalars
            .into_iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v))
            .chain(
                classification
                    .into_iter()
                    .map(|(k, v)| (format!("{prefix}classification/{k}"), v)),
            )
            .collect()
    }

    /// `eval_stats.json` text (indent 2, as sae-lens writes it).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain numbers always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_and_log_dict() {
        let r = SyntheticDataEvalResult {
            true_l0: 4.0,
            dead_latents: 3,
            classification: ClassificationMetrics {
                f1_score: 0.5,
                ..Default::default()
            },
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json_pretty()).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "true_l0",
                "sae_l0",
                "dead_latents",
                "shrinkage",
                "explained_variance",
                "mcc",
                "uniqueness",
                "classification"
            ]
        );
        assert_eq!(v["dead_latents"], serde_json::json!(3));
        let c: Vec<&String> = v["classification"].as_object().unwrap().keys().collect();
        assert_eq!(c, ["precision", "recall", "f1_score", "accuracy"]);
        let log = r.to_log_dict("eval/");
        assert_eq!(log[0], ("eval/true_l0".to_string(), 4.0));
        assert_eq!(log[9], ("eval/classification/f1_score".to_string(), 0.5));
        assert_eq!(log.len(), 11);
        let back: SyntheticDataEvalResult = serde_json::from_str(&r.to_json_pretty()).unwrap();
        assert_eq!(back, r);
    }
}
