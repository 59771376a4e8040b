//! The *training* config (sae-lens `TrainingSAEConfig` and its subclasses):
//! `cfg.json` of a training checkpoint, or the runner's `sae` object.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::base::NormalizeActivations;
use super::base::SaeBase;
use super::fields::{read, read_field, to_map};
use super::inference::{InferenceArch, SaeConfig};
use crate::arch::batchtopk::config::BatchTopKConfig;
use crate::arch::gated::config::GatedConfig;
use crate::arch::jumprelu::config::JumpReluConfig;
use crate::arch::matching_pursuit::config::MatchingPursuitConfig;
use crate::arch::matryoshka::config::MatryoshkaConfig;
use crate::arch::standard::config::StandardConfig;
use crate::arch::topk::config::TopKConfig;
use crate::error::{invalid, Result, SaeError};

/// Training architectures synthsae knows (sae-lens names).
pub const TRAINING_ARCHITECTURES: [&str; 8] = [
    "standard",
    "topk",
    "batchtopk",
    "matryoshka_batchtopk",
    "jumprelu",
    "gated",
    "matching_pursuit",
    "abstopk",
];

/// The architecture-specific part of a [`TrainingSaeConfig`].
#[derive(Debug, Clone, PartialEq)]
pub enum TrainingArch {
    /// `standard`.
    Standard(StandardConfig),
    /// `topk`.
    TopK(TopKConfig),
    /// `batchtopk`.
    BatchTopK(BatchTopKConfig),
    /// `matryoshka_batchtopk`.
    MatryoshkaBatchTopK(MatryoshkaConfig),
    /// `jumprelu`.
    JumpRelu(JumpReluConfig),
    /// `gated`.
    Gated(GatedConfig),
    /// `matching_pursuit`.
    MatchingPursuit(MatchingPursuitConfig),
    /// `abstopk`.
    AbsTopK(TopKConfig),
}

impl TrainingArch {
    /// sae-lens training architecture name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Standard(_) => "standard",
            Self::TopK(_) => "topk",
            Self::BatchTopK(_) => "batchtopk",
            Self::MatryoshkaBatchTopK(_) => "matryoshka_batchtopk",
            Self::JumpRelu(_) => "jumprelu",
            Self::Gated(_) => "gated",
            Self::MatchingPursuit(_) => "matching_pursuit",
            Self::AbsTopK(_) => "abstopk",
        }
    }

    /// The architecture with sae-lens's defaults.
    pub fn default_for(name: &str) -> Result<Self> {
        Self::from_map(name, &Map::new())
    }

    /// Field names that the inference config of this architecture also has.
    fn inference_field_names(&self) -> &'static [&'static str] {
        match self {
            Self::TopK(_) | Self::AbsTopK(_) => &["k", "rescale_acts_by_decoder_norm"],
            Self::MatchingPursuit(_) => &[
                "residual_threshold",
                "max_iterations",
                "stop_on_duplicate_support",
            ],
            _ => &[],
        }
    }

    /// Architecture fields in declaration order.
    fn fields(&self) -> Map<String, Value> {
        match self {
            Self::Standard(c) => to_map(c),
            Self::TopK(c) | Self::AbsTopK(c) => to_map(c),
            Self::BatchTopK(c) => to_map(c),
            Self::MatryoshkaBatchTopK(c) => to_map(c),
            Self::JumpRelu(c) => to_map(c),
            Self::Gated(c) => to_map(c),
            Self::MatchingPursuit(c) => to_map(c),
        }
    }

    /// Reads the fields of architecture `name` from a `cfg.json` object
    /// (other keys ignored).
    fn from_map(name: &str, m: &Map<String, Value>) -> Result<Self> {
        Ok(match name {
            "standard" => Self::Standard(read(m)?),
            "topk" => Self::TopK(read(m)?),
            "abstopk" => Self::AbsTopK(read(m)?),
            "batchtopk" => Self::BatchTopK(read(m)?),
            "matryoshka_batchtopk" => Self::MatryoshkaBatchTopK(MatryoshkaConfig::from_map(m)?),
            "jumprelu" => Self::JumpRelu(JumpReluConfig::from_map(m)?),
            "gated" => Self::Gated(read(m)?),
            "matching_pursuit" => Self::MatchingPursuit(read(m)?),
            other => {
                return Err(SaeError::UnknownArchitecture {
                    name: other.into(),
                    available: TRAINING_ARCHITECTURES.to_vec(),
                })
            }
        })
    }
}

/// A sae-lens *training* SAE config (`TrainingSAEConfig` and its subclasses).
///
/// JSON: `d_in, d_sae, dtype, device, apply_b_dec_to_input,
/// normalize_activations, reshape_activations, metadata, decoder_init_norm,
/// <architecture fields>, architecture` (spec §10.11).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSaeConfig {
    /// Shared fields.
    pub base: SaeBase,
    /// Norm every decoder row is initialised to (`None` = Kaiming rows as drawn).
    pub decoder_init_norm: Option<f64>,
    /// Architecture and its fields.
    pub arch: TrainingArch,
}

impl TrainingSaeConfig {
    /// A config with sae-lens's defaults for `architecture`.
    pub fn new(architecture: &str, d_in: usize, d_sae: usize) -> Result<Self> {
        Self::from_parts(
            SaeBase::new(d_in, d_sae),
            Some(0.1),
            TrainingArch::default_for(architecture)?,
        )
    }

    /// Builds and validates a config (matryoshka widths completed, matching
    /// pursuit's `decoder_init_norm` forced to 1.0, as sae-lens does).
    pub fn from_parts(
        base: SaeBase,
        decoder_init_norm: Option<f64>,
        arch: TrainingArch,
    ) -> Result<Self> {
        let mut cfg = Self {
            base,
            decoder_init_norm,
            arch,
        };
        cfg.validate()?;
        cfg.refresh_metadata();
        Ok(cfg)
    }

    /// Parses sae-lens's training JSON (a `cfg.json` or the runner's `sae` object).
    pub fn from_json(value: &Value) -> Result<Self> {
        let m = value
            .as_object()
            .ok_or_else(|| invalid("cfg", "must be a JSON object"))?;
        let name = read_field::<String>(m, "architecture")?.unwrap_or_else(|| "standard".into());
        let arch = TrainingArch::from_map(&name, m)?;
        let base = SaeBase::from_map(m)?;
        let decoder_init_norm = match m.get("decoder_init_norm") {
            None => Some(0.1),
            Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .ok_or_else(|| invalid("decoder_init_norm", "must be a number or null"))?,
            ),
        };
        Self::from_parts(base, decoder_init_norm, arch)
    }

    /// The training JSON, fields in sae-lens's order.
    pub fn to_json(&self) -> Value {
        // The shared fields, metadata last (replaced in place).
        let mut out = to_map(&self.base);
        out.insert(
            "metadata".into(),
            Value::Object(self.metadata_with_training_info()),
        );
        out.insert("decoder_init_norm".into(), self.decoder_init_norm.into());
        out.extend(self.arch.fields());
        out.insert("architecture".into(), self.arch.name().into());
        Value::Object(out)
    }

    /// The inference config sae-lens's `save_inference_model` writes.
    pub fn inference_config(&self) -> SaeConfig {
        let arch = match &self.arch {
            TrainingArch::Standard(_) => InferenceArch::Standard,
            TrainingArch::TopK(c) => InferenceArch::TopK {
                k: c.k,
                rescale_acts_by_decoder_norm: c.rescale_acts_by_decoder_norm,
            },
            TrainingArch::AbsTopK(c) => InferenceArch::AbsTopK {
                k: c.k,
                rescale_acts_by_decoder_norm: c.rescale_acts_by_decoder_norm,
            },
            TrainingArch::BatchTopK(_)
            | TrainingArch::MatryoshkaBatchTopK(_)
            | TrainingArch::JumpRelu(_) => InferenceArch::JumpRelu,
            TrainingArch::Gated(_) => InferenceArch::Gated,
            TrainingArch::MatchingPursuit(c) => InferenceArch::MatchingPursuit(c.clone()),
        };
        let mut base = self.base.clone();
        base.metadata = self.metadata_with_training_info();
        SaeConfig { base, arch }
    }

    /// Input dimension `D`.
    pub fn d_in(&self) -> usize {
        self.base.d_in
    }

    /// Sets the input dimension (the runner fills it from the synthetic model).
    pub fn set_d_in(&mut self, d_in: usize) -> Result<()> {
        if d_in == 0 {
            return Err(invalid("d_in", "must be positive"));
        }
        self.base.d_in = d_in;
        Ok(())
    }

    /// Number of latents `S`.
    pub fn d_sae(&self) -> usize {
        self.base.d_sae
    }

    /// Training architecture name.
    pub fn architecture(&self) -> &'static str {
        self.arch.name()
    }

    /// Input normalisation mode.
    pub fn normalize_activations(&self) -> NormalizeActivations {
        self.base.normalize_activations
    }

    /// The free-form metadata (the trainer sets `l0`, `num_dead_features`).
    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.base.metadata
    }

    /// `training_architecture_details`: the training fields the inference
    /// config lacks (spec §10.1).
    pub fn training_architecture_details(&self) -> Map<String, Value> {
        let skip = self.arch.inference_field_names();
        let mut out = Map::new();
        out.insert("decoder_init_norm".into(), self.decoder_init_norm.into());
        for (k, v) in self.arch.fields() {
            if !skip.contains(&k.as_str()) {
                out.insert(k, v);
            }
        }
        out
    }

    fn metadata_with_training_info(&self) -> Map<String, Value> {
        let mut md = self.base.metadata.clone();
        md.insert("training_architecture".into(), self.arch.name().into());
        md.insert(
            "training_architecture_details".into(),
            Value::Object(self.training_architecture_details()),
        );
        md
    }

    /// Stores `training_architecture(_details)` in the metadata now, so keys
    /// the trainer adds later follow them (as in sae-lens's files).
    fn refresh_metadata(&mut self) {
        self.base.metadata = self.metadata_with_training_info();
    }

    fn validate(&mut self) -> Result<()> {
        self.base.validate()?;
        if let Some(n) = self.decoder_init_norm {
            if !(n.is_finite() && n > 0.0) {
                return Err(invalid("decoder_init_norm", "must be positive and finite"));
            }
        }
        let d_sae = self.base.d_sae;
        let topk_family = matches!(
            self.arch,
            TrainingArch::TopK(_)
                | TrainingArch::AbsTopK(_)
                | TrainingArch::BatchTopK(_)
                | TrainingArch::MatryoshkaBatchTopK(_)
        );
        if topk_family && self.base.normalize_activations.is_per_sample() {
            // sae-lens raises this from the aux loss once dead latents appear;
            // synthsae refuses the config up front.
            return Err(invalid(
                "normalize_activations",
                format!(
                    "{} is not supported by the TopK-family aux loss",
                    self.base.normalize_activations.as_str()
                ),
            ));
        }
        match &mut self.arch {
            TrainingArch::Standard(c) => c.validate()?,
            TrainingArch::TopK(c) | TrainingArch::AbsTopK(c) => c.validate(d_sae)?,
            TrainingArch::BatchTopK(c) => c.validate()?,
            TrainingArch::MatryoshkaBatchTopK(c) => c.validate(d_sae)?,
            TrainingArch::JumpRelu(c) => c.validate(d_sae)?,
            TrainingArch::Gated(_) => {}
            TrainingArch::MatchingPursuit(_) => {
                if self.base.normalize_activations == NormalizeActivations::CovarianceWhitening {
                    return Err(invalid(
                        "normalize_activations",
                        "covariance_whitening is not supported by matching_pursuit \
                         (its encoder is tied to the decoder)",
                    ));
                }
                if self.decoder_init_norm != Some(1.0) {
                    log::warn!("decoder_init_norm must be 1.0 for matching_pursuit; setting it");
                    self.decoder_init_norm = Some(1.0);
                }
            }
        }
        Ok(())
    }
}

impl Serialize for TrainingSaeConfig {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for TrainingSaeConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Self::from_json(&Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_training_json_matches_sae_lens_example() {
        let cfg = TrainingSaeConfig::new("standard", 8, 12).unwrap();
        let expected = r#"{"d_in":8,"d_sae":12,"dtype":"float32","device":"cpu","apply_b_dec_to_input":true,"normalize_activations":"none","reshape_activations":"none","metadata":{"sae_lens_version":"6.54.12","sae_lens_training_version":"6.54.12","training_architecture":"standard","training_architecture_details":{"decoder_init_norm":0.1,"l1_coefficient":1.0,"lp_norm":1.0,"l1_warm_up_steps":0}},"decoder_init_norm":0.1,"l1_coefficient":1.0,"lp_norm":1.0,"l1_warm_up_steps":0,"architecture":"standard"}"#;
        assert_eq!(serde_json::to_string(&cfg).unwrap(), expected);
    }

    #[test]
    fn unknown_architecture_and_bad_fields_are_errors() {
        let v = serde_json::json!({"d_in": 4, "d_sae": 8, "architecture": "nope"});
        assert!(matches!(
            TrainingSaeConfig::from_json(&v),
            Err(SaeError::UnknownArchitecture { .. })
        ));
        let v = serde_json::json!({"d_in": 4, "d_sae": 8, "architecture": "topk", "k": "x"});
        assert!(matches!(
            TrainingSaeConfig::from_json(&v),
            Err(SaeError::InvalidConfig { field, .. }) if field == "k"
        ));
        let v = serde_json::json!({"d_in": 4, "d_sae": 8, "architecture": "jumprelu",
            "jumprelu_sparsity_loss_mode": "quadratic"});
        assert!(TrainingSaeConfig::from_json(&v).is_err());
        let v = serde_json::json!({"d_in": 4, "d_sae": 8, "normalize_activations": "zzz",
            "architecture": "standard"});
        assert!(TrainingSaeConfig::from_json(&v).is_err());
    }

    #[test]
    fn matryoshka_widths_completed_and_validated() {
        let v = serde_json::json!({"d_in": 4, "d_sae": 8, "architecture": "matryoshka_batchtopk",
            "matryoshka_widths": [2, 4]});
        let cfg = TrainingSaeConfig::from_json(&v).unwrap();
        match &cfg.arch {
            TrainingArch::MatryoshkaBatchTopK(c) => assert_eq!(c.matryoshka_widths, vec![2, 4, 8]),
            _ => unreachable!(),
        }
        let v = serde_json::json!({"d_in": 4, "d_sae": 8, "architecture": "matryoshka_batchtopk",
            "matryoshka_widths": [4, 2, 8]});
        assert!(TrainingSaeConfig::from_json(&v).is_err());
        let v = serde_json::json!({"d_in": 4, "d_sae": 8, "architecture": "matryoshka_batchtopk"});
        assert!(TrainingSaeConfig::from_json(&v).is_err());
    }

    #[test]
    fn matching_pursuit_forces_unit_decoder_init() {
        let cfg = TrainingSaeConfig::new("matching_pursuit", 4, 8).unwrap();
        assert_eq!(cfg.decoder_init_norm, Some(1.0));
    }

    #[test]
    fn batchtopk_inference_config_is_jumprelu_with_details() {
        let cfg = TrainingSaeConfig::new("batchtopk", 4, 8).unwrap();
        let inf = cfg.inference_config().to_json();
        assert_eq!(inf["architecture"], "jumprelu");
        let details = &inf["metadata"]["training_architecture_details"];
        let keys: Vec<&String> = details.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "decoder_init_norm",
                "k",
                "use_sparse_activations",
                "aux_loss_coefficient",
                "rescale_acts_by_decoder_norm",
                "topk_threshold_lr"
            ]
        );
        assert_eq!(details["k"], 100);
    }

    #[test]
    fn metadata_keys_added_later_follow_training_info() {
        let mut cfg = TrainingSaeConfig::new("topk", 4, 128).unwrap();
        cfg.metadata_mut().insert("l0".into(), 3.5.into());
        let json = cfg.to_json();
        let keys: Vec<&String> = json["metadata"].as_object().unwrap().keys().collect();
        assert_eq!(keys.last().unwrap().as_str(), "l0");
        // Round trip.
        let back = TrainingSaeConfig::from_json(&json).unwrap();
        assert_eq!(back, cfg);
    }
}
