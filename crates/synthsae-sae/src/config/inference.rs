//! The *inference* config (sae-lens `SAEConfig` and its subclasses): the
//! `cfg.json` that `save_inference_model` writes. BatchTopK and Matryoshka
//! BatchTopK export as `"jumprelu"`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::base::SaeBase;
use super::fields::{read_field, to_map};
use crate::arch::matching_pursuit::config::MatchingPursuitConfig;
use crate::arch::topk::config::TopKConfig;
use crate::error::{invalid, Result, SaeError};

/// Inference architectures synthsae knows (sae-lens names).
pub const INFERENCE_ARCHITECTURES: [&str; 6] = [
    "standard",
    "topk",
    "jumprelu",
    "gated",
    "matching_pursuit",
    "abstopk",
];

/// The architecture-specific part of an inference [`SaeConfig`].
#[derive(Debug, Clone, PartialEq)]
pub enum InferenceArch {
    /// `standard`: `relu(x W_enc + b_enc)`.
    Standard,
    /// `topk`.
    TopK {
        /// Latents kept per row.
        k: usize,
        /// Select by `pre · ‖W_dec_s‖`, decode with `z / ‖W_dec_s‖`.
        rescale_acts_by_decoder_norm: bool,
    },
    /// `jumprelu`: `relu(pre) · 1[pre > θ]`.
    JumpRelu,
    /// `gated`.
    Gated,
    /// `matching_pursuit`.
    MatchingPursuit(MatchingPursuitConfig),
    /// `abstopk`: the k largest `|pre|` keep their signed values.
    AbsTopK {
        /// Latents kept per row.
        k: usize,
        /// As for `topk`.
        rescale_acts_by_decoder_norm: bool,
    },
}

impl InferenceArch {
    /// sae-lens inference architecture name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::TopK { .. } => "topk",
            Self::JumpRelu => "jumprelu",
            Self::Gated => "gated",
            Self::MatchingPursuit(_) => "matching_pursuit",
            Self::AbsTopK { .. } => "abstopk",
        }
    }
}

/// A sae-lens *inference* SAE config (`SAEConfig` and its subclasses).
#[derive(Debug, Clone, PartialEq)]
pub struct SaeConfig {
    /// Shared fields.
    pub base: SaeBase,
    /// Architecture and its fields.
    pub arch: InferenceArch,
}

impl SaeConfig {
    /// Parses an inference `cfg.json` (`architecture` absent = `"standard"`).
    pub fn from_json(value: &Value) -> Result<Self> {
        let m = value
            .as_object()
            .ok_or_else(|| invalid("cfg", "must be a JSON object"))?;
        let name = read_field::<String>(m, "architecture")?.unwrap_or_else(|| "standard".into());
        let base = SaeBase::from_map(m)?;
        let topk = || -> Result<(usize, bool)> {
            let k = read_field(m, "k")?.unwrap_or(TopKConfig::default().k);
            if k == 0 || k > base.d_sae {
                return Err(invalid("k", format!("must be in 1..={}", base.d_sae)));
            }
            // sae-lens's inference TopK config does not rescale by default
            // (its training config does).
            Ok((
                k,
                read_field(m, "rescale_acts_by_decoder_norm")?.unwrap_or(false),
            ))
        };
        let arch = match name.as_str() {
            "standard" => InferenceArch::Standard,
            "topk" => {
                let (k, r) = topk()?;
                InferenceArch::TopK {
                    k,
                    rescale_acts_by_decoder_norm: r,
                }
            }
            "abstopk" => {
                let (k, r) = topk()?;
                InferenceArch::AbsTopK {
                    k,
                    rescale_acts_by_decoder_norm: r,
                }
            }
            "jumprelu" => InferenceArch::JumpRelu,
            "gated" => InferenceArch::Gated,
            "matching_pursuit" => InferenceArch::MatchingPursuit(super::fields::read(m)?),
            other => {
                return Err(SaeError::UnknownArchitecture {
                    name: other.into(),
                    available: INFERENCE_ARCHITECTURES.to_vec(),
                })
            }
        };
        Ok(Self { base, arch })
    }

    /// The inference JSON.
    pub fn to_json(&self) -> Value {
        let mut out = to_map(&self.base);
        match &self.arch {
            InferenceArch::TopK {
                k,
                rescale_acts_by_decoder_norm,
            }
            | InferenceArch::AbsTopK {
                k,
                rescale_acts_by_decoder_norm,
            } => {
                out.insert("k".into(), (*k).into());
                out.insert(
                    "rescale_acts_by_decoder_norm".into(),
                    (*rescale_acts_by_decoder_norm).into(),
                );
            }
            InferenceArch::MatchingPursuit(c) => out.extend(to_map(c)),
            _ => {}
        }
        out.insert("architecture".into(), self.arch.name().into());
        Value::Object(out)
    }

    /// The free-form metadata.
    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.base.metadata
    }
}

impl Serialize for SaeConfig {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for SaeConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Self::from_json(&Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
