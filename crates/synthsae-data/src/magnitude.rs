//! Per-feature firing magnitudes (sae-lens `firing_magnitudes.py`).
//!
//! Used for both the mean and the standard deviation of the value a feature
//! takes when it fires. In JSON a magnitude is either a plain number
//! (broadcast to every feature) or a config object tagged `generator_name`.

use std::fmt::Debug;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{bad_shape, invalid, Result};
use crate::firing::linspace_f32;
use crate::registry::{parse_params, split_tagged, tagged_value, Registry};
use crate::rng::{ChaChaSource, RandomSource};

/// A user-defined magnitude distribution (see [`register_magnitude`]).
pub trait MagnitudeGenerator: Debug + Send + Sync {
    /// The `generator_name` written to JSON.
    fn generator_name(&self) -> &str;
    /// The parameters written to JSON (without `generator_name`).
    fn params(&self) -> Map<String, Value>;
    /// Magnitudes `[num_features]`.
    fn generate(&self, num_features: usize, rng: &mut dyn RandomSource) -> Result<Vec<f32>>;
}

static REGISTRY: Registry<dyn MagnitudeGenerator> = Registry::new(
    "magnitude",
    &["constant", "linear", "exponential", "folded_normal"],
);

/// Registers a user-defined magnitude distribution under `name`.
pub fn register_magnitude(
    name: &str,
    factory: crate::registry::Factory<dyn MagnitudeGenerator>,
) -> Result<()> {
    REGISTRY.register(name, factory)
}

/// Every known magnitude `generator_name`.
pub fn magnitude_names() -> Vec<String> {
    REGISTRY.names()
}

/// The same value for every feature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConstantMagnitudeConfig {
    /// The value.
    pub value: f64,
}

impl Default for ConstantMagnitudeConfig {
    fn default() -> Self {
        Self { value: 1.0 }
    }
}

/// `linspace(start, end, N)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearMagnitudeConfig {
    /// Value of feature 0 (> 0).
    pub start: f64,
    /// Value of the last feature (> 0).
    pub end: f64,
}

/// `start * (end / start)^t`, `t = linspace(0, 1, N)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExponentialMagnitudeConfig {
    /// Value of feature 0 (> 0).
    pub start: f64,
    /// Value of the last feature (> 0).
    pub end: f64,
}

/// `|mean + std * n|`, `n` standard normal, optionally clamped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FoldedNormalMagnitudeConfig {
    /// Mean of the underlying normal.
    pub mean: f64,
    /// Standard deviation of the underlying normal (> 0).
    pub std: f64,
    /// Lower clamp (>= 0), if any.
    pub min_value: Option<f64>,
    /// Upper clamp (> 0), if any.
    pub max_value: Option<f64>,
}

impl Default for FoldedNormalMagnitudeConfig {
    fn default() -> Self {
        Self {
            mean: 0.0,
            std: 0.1,
            min_value: None,
            max_value: None,
        }
    }
}

/// A magnitude distribution, tagged by `generator_name` in JSON.
#[derive(Debug, Clone)]
pub enum MagnitudeConfig {
    /// `"constant"`.
    Constant(ConstantMagnitudeConfig),
    /// `"linear"`.
    Linear(LinearMagnitudeConfig),
    /// `"exponential"`.
    Exponential(ExponentialMagnitudeConfig),
    /// `"folded_normal"`.
    FoldedNormal(FoldedNormalMagnitudeConfig),
    /// A registered user-defined distribution.
    Custom(Arc<dyn MagnitudeGenerator>),
}

impl MagnitudeConfig {
    /// The `generator_name` of this distribution.
    pub fn generator_name(&self) -> &str {
        match self {
            Self::Constant(_) => "constant",
            Self::Linear(_) => "linear",
            Self::Exponential(_) => "exponential",
            Self::FoldedNormal(_) => "folded_normal",
            Self::Custom(c) => c.generator_name(),
        }
    }

    /// Checks the parameters (the reference checks them at construction).
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Linear(c) => check_positive_ends("linear", c.start, c.end, "")?,
            Self::Exponential(c) => {
                check_positive_ends("exponential", c.start, c.end, " for exponential scale")?
            }
            Self::FoldedNormal(c) => {
                if c.std.is_nan() || c.std <= 0.0 {
                    return Err(invalid(
                        "folded_normal.std",
                        format!("must be positive, got {}", c.std),
                    ));
                }
                if let Some(m) = c.min_value {
                    if m.is_nan() || m < 0.0 {
                        return Err(invalid(
                            "folded_normal.min_value",
                            format!("must be non-negative, got {m}"),
                        ));
                    }
                }
                if let Some(m) = c.max_value {
                    if m.is_nan() || m <= 0.0 {
                        return Err(invalid(
                            "folded_normal.max_value",
                            format!("must be positive, got {m}"),
                        ));
                    }
                }
                if let (Some(lo), Some(hi)) = (c.min_value, c.max_value) {
                    if lo > hi {
                        return Err(invalid(
                            "folded_normal.min_value",
                            format!("min_value must be <= max_value, got {lo} > {hi}"),
                        ));
                    }
                }
            }
            Self::Constant(_) | Self::Custom(_) => {}
        }
        Ok(())
    }

    /// Magnitudes `[num_features]`; `seed` is used by `folded_normal` only.
    pub fn generate(&self, num_features: usize, seed: Option<u64>) -> Result<Vec<f32>> {
        self.generate_with(num_features, &mut ChaChaSource::new(seed))
    }

    /// Like [`generate`](Self::generate), drawing from the given source.
    pub fn generate_with(
        &self,
        num_features: usize,
        rng: &mut dyn RandomSource,
    ) -> Result<Vec<f32>> {
        self.validate()?;
        let out = match self {
            Self::Constant(c) => vec![c.value as f32; num_features],
            Self::Linear(c) => linspace_f32(c.start, c.end, num_features),
            Self::Exponential(c) => {
                if num_features == 1 {
                    vec![c.start as f32]
                } else {
                    let ratio = (c.end / c.start) as f32;
                    let start = c.start as f32;
                    linspace_f32(0.0, 1.0, num_features)
                        .into_iter()
                        .map(|t| start * ratio.powf(t))
                        .collect()
                }
            }
            Self::FoldedNormal(c) => {
                let mut n = vec![0.0f32; num_features];
                rng.fill_normal(&mut n);
                let (mean, std) = (c.mean as f32, c.std as f32);
                n.into_iter()
                    .map(|z| {
                        let mut v = (mean + z * std).abs();
                        if let Some(lo) = c.min_value {
                            v = v.max(lo as f32);
                        }
                        if let Some(hi) = c.max_value {
                            v = v.min(hi as f32);
                        }
                        v
                    })
                    .collect()
            }
            Self::Custom(c) => c.generate(num_features, rng)?,
        };
        if out.len() != num_features {
            return Err(bad_shape(
                self.generator_name(),
                format!("[{num_features}]"),
                &[out.len()],
            ));
        }
        Ok(out)
    }

    fn to_value(&self) -> Value {
        let name = self.generator_name();
        match self {
            Self::Constant(c) => tagged_value(c, name),
            Self::Linear(c) => tagged_value(c, name),
            Self::Exponential(c) => tagged_value(c, name),
            Self::FoldedNormal(c) => tagged_value(c, name),
            Self::Custom(c) => tagged_value(&c.params(), name),
        }
    }

    /// Parses the sae-lens JSON form, validating the parameters.
    pub fn from_value(value: Value) -> Result<Self> {
        let what = "magnitude";
        let (name, params) = split_tagged(value, what)?;
        let cfg = match name.as_str() {
            "constant" => Self::Constant(parse_params(params, what)?),
            "linear" => Self::Linear(parse_params(params, what)?),
            "exponential" => Self::Exponential(parse_params(params, what)?),
            "folded_normal" => Self::FoldedNormal(parse_params(params, what)?),
            other => Self::Custom(REGISTRY.build(other, params)?),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

crate::registry::tagged_config_serde!(MagnitudeConfig);

fn check_positive_ends(kind: &str, start: f64, end: f64, context: &str) -> Result<()> {
    if start > 0.0 && end > 0.0 {
        return Ok(());
    }
    Err(invalid(
        format!("{kind}.start/end"),
        format!("start and end must be positive{context}, got start={start}, end={end}"),
    ))
}

/// A magnitude as written in a sae-lens config: a number or a config object.
#[derive(Debug, Clone, PartialEq)]
pub enum Magnitude {
    /// The same value for every feature.
    Value(f64),
    /// A per-feature distribution.
    Config(MagnitudeConfig),
}

impl From<f64> for Magnitude {
    fn from(v: f64) -> Self {
        Self::Value(v)
    }
}

impl From<MagnitudeConfig> for Magnitude {
    fn from(c: MagnitudeConfig) -> Self {
        Self::Config(c)
    }
}

impl Magnitude {
    /// Magnitudes `[num_features]` (`generate_magnitudes` in sae-lens).
    pub fn generate(&self, num_features: usize, seed: Option<u64>) -> Result<Vec<f32>> {
        self.generate_with(num_features, &mut ChaChaSource::new(seed))
    }

    /// Like [`generate`](Self::generate), drawing from the given source.
    pub fn generate_with(
        &self,
        num_features: usize,
        rng: &mut dyn RandomSource,
    ) -> Result<Vec<f32>> {
        match self {
            Self::Value(v) => Ok(vec![*v as f32; num_features]),
            Self::Config(c) => c.generate_with(num_features, rng),
        }
    }
}

impl Serialize for Magnitude {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Value(v) => s.serialize_f64(*v),
            Self::Config(c) => c.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Magnitude {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_f64()
                .map(Self::Value)
                .ok_or_else(|| serde::de::Error::custom("magnitude is not a finite number")),
            v @ Value::Object(_) => MagnitudeConfig::from_value(v)
                .map(Self::Config)
                .map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "magnitude must be a number or a config object, got {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_values() {
        let e = MagnitudeConfig::Exponential(ExponentialMagnitudeConfig {
            start: 1.0,
            end: 10.0,
        })
        .generate(5, None)
        .unwrap();
        for (x, y) in e.iter().zip([1.0, 1.7782794, 3.1622777, 5.623413, 10.0]) {
            assert!((x - y).abs() < 1e-6, "{e:?}");
        }
        let l = MagnitudeConfig::Linear(LinearMagnitudeConfig {
            start: 1.0,
            end: 2.0,
        })
        .generate(5, None)
        .unwrap();
        assert_eq!(l, vec![1.0, 1.25, 1.5, 1.75, 2.0]);
        assert_eq!(
            Magnitude::Value(0.5).generate(3, None).unwrap(),
            vec![0.5; 3]
        );
    }

    #[test]
    fn folded_normal_is_seeded_non_negative_and_clamped() {
        let cfg = MagnitudeConfig::FoldedNormal(FoldedNormalMagnitudeConfig {
            mean: 0.5,
            std: 0.5,
            min_value: Some(0.1),
            max_value: Some(1.2),
        });
        let a = cfg.generate(2000, Some(3)).unwrap();
        assert_eq!(a, cfg.generate(2000, Some(3)).unwrap());
        assert!(a.iter().all(|&v| (0.1..=1.2).contains(&v)));
        assert!(a.contains(&0.1) && a.contains(&1.2));
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let bad = [
            (
                r#"{"start":0.0,"end":1.0,"generator_name":"linear"}"#,
                "linear.start",
            ),
            (
                r#"{"start":1.0,"end":-1.0,"generator_name":"exponential"}"#,
                "exponential",
            ),
            (
                r#"{"std":0.0,"generator_name":"folded_normal"}"#,
                "folded_normal.std",
            ),
            (
                r#"{"min_value":-1.0,"generator_name":"folded_normal"}"#,
                "min_value",
            ),
            (
                r#"{"max_value":0.0,"generator_name":"folded_normal"}"#,
                "max_value",
            ),
            (
                r#"{"min_value":2.0,"max_value":1.0,"generator_name":"folded_normal"}"#,
                "<= max_value",
            ),
            (r#"{"start":1.0,"generator_name":"linear"}"#, "end"),
            (r#""abc""#, "number or a config"),
        ];
        for (json, needle) in bad {
            let e = serde_json::from_str::<Magnitude>(json)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }

    #[test]
    fn json_forms() {
        let m: Magnitude = serde_json::from_str("1").unwrap();
        assert_eq!(m, Magnitude::Value(1.0));
        assert_eq!(serde_json::to_string(&m).unwrap(), "1.0");
        let s = r#"{"mean":0.0,"std":0.1,"min_value":null,"max_value":null,"generator_name":"folded_normal"}"#;
        let m: Magnitude = serde_json::from_str(s).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), s);
        let s = r#"{"start":5.0,"end":4.0,"generator_name":"linear"}"#;
        let m: Magnitude = serde_json::from_str(s).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), s);
    }
}
