//! The fields every SAE config shares (sae-lens `SAEConfig`): sizes, dtype
//! and device names, input processing, and the free-form metadata.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::fields::{read, read_field};
use crate::error::{invalid, Result};

/// The sae-lens version synthsae's files claim compatibility with.
pub const SAE_LENS_VERSION: &str = "6.54.12";

/// `normalize_activations`: how inputs are normalised (spec §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NormalizeActivations {
    /// No normalisation.
    #[default]
    None,
    /// A constant scaling factor estimated by the trainer (folded after training).
    ExpectedAverageOnlyIn,
    /// Per sample: `x · sqrt(d_in) / ‖x‖`, undone on output.
    ConstantNormRescale,
    /// Per sample: subtract the row mean, divide by (unbiased row std + 1e-5), undone on output.
    LayerNorm,
    /// Whitening estimated by the trainer (folded after training).
    CovarianceWhitening,
}

impl NormalizeActivations {
    /// Every mode with its sae-lens name.
    const NAMES: [(Self, &'static str); 5] = [
        (Self::None, "none"),
        (Self::ExpectedAverageOnlyIn, "expected_average_only_in"),
        (Self::ConstantNormRescale, "constant_norm_rescale"),
        (Self::LayerNorm, "layer_norm"),
        (Self::CovarianceWhitening, "covariance_whitening"),
    ];

    /// sae-lens name.
    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(mode, _)| *mode == self)
            .map_or("none", |(_, name)| name)
    }

    /// Parses a sae-lens name.
    pub fn parse(name: &str) -> Result<Self> {
        Self::from_name(name).map_err(|reason| invalid("normalize_activations", reason))
    }

    fn from_name(name: &str) -> std::result::Result<Self, String> {
        match Self::NAMES.iter().find(|(_, n)| *n == name) {
            Some((mode, _)) => Ok(*mode),
            None => {
                let names: Vec<&str> = Self::NAMES.iter().map(|(_, n)| *n).collect();
                Err(format!("`{name}` is not one of {}", names.join(", ")))
            }
        }
    }

    /// Whether the SAE itself normalises each sample (and undoes it on output).
    pub fn is_per_sample(self) -> bool {
        matches!(self, Self::ConstantNormRescale | Self::LayerNorm)
    }
}

impl Serialize for NormalizeActivations {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NormalizeActivations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Self::from_name(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// Fields shared by every SAE config (sae-lens `SAEConfig`), in file order;
/// serde's defaults are sae-lens's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaeBase {
    /// Input dimension `D`.
    pub d_in: usize,
    /// Number of latents `S`.
    pub d_sae: usize,
    /// sae-lens dtype name (`"float32"`); synthsae computes in the backend's float type.
    #[serde(default = "float32", deserialize_with = "dtype")]
    pub dtype: String,
    /// sae-lens device name, kept for the file (`"cpu"`).
    #[serde(default = "cpu")]
    pub device: String,
    /// Subtract `b_dec` from the input before encoding.
    #[serde(default = "yes")]
    pub apply_b_dec_to_input: bool,
    /// Input normalisation mode.
    #[serde(default)]
    pub normalize_activations: NormalizeActivations,
    /// `"none"` or `"hook_z"` (only meaningful for attention-head inputs; kept for the file).
    #[serde(default = "none")]
    pub reshape_activations: String,
    /// Free-form metadata (`sae_lens_version`, `l0`, `num_dead_features`, ...).
    #[serde(default = "versions", deserialize_with = "metadata")]
    pub metadata: Map<String, Value>,
}

fn float32() -> String {
    "float32".into()
}

fn cpu() -> String {
    "cpu".into()
}

fn yes() -> bool {
    true
}

fn none() -> String {
    "none".into()
}

/// The two version fields sae-lens fills in.
fn versions() -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("sae_lens_version".into(), SAE_LENS_VERSION.into());
    metadata.insert("sae_lens_training_version".into(), SAE_LENS_VERSION.into());
    metadata
}

fn dtype<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let name = String::deserialize(d)?;
    match name.as_str() {
        "float32" | "float64" | "float16" | "bfloat16" | "torch.float32" => Ok(name),
        other => Err(D::Error::custom(format!("unsupported dtype `{other}`"))),
    }
}

/// A file's metadata, with the two version fields first (sae-lens fills
/// them in when absent).
fn metadata<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Map<String, Value>, D::Error> {
    let md = Map::<String, Value>::deserialize(d)?;
    let mut metadata = Map::new();
    for (key, default) in versions() {
        metadata.insert(key.clone(), md.get(&key).cloned().unwrap_or(default));
    }
    for (k, v) in md {
        metadata.insert(k, v);
    }
    Ok(metadata)
}

impl SaeBase {
    /// Defaults of sae-lens for the given sizes.
    pub fn new(d_in: usize, d_sae: usize) -> Self {
        let mut m = Map::new();
        m.insert("d_in".into(), d_in.into());
        m.insert("d_sae".into(), d_sae.into());
        read(&m).expect("sizes and defaults are valid fields")
    }

    /// Reads the shared fields of a `cfg.json` object (other keys ignored)
    /// and checks them.
    pub(crate) fn from_map(m: &Map<String, Value>) -> Result<Self> {
        // The sizes first: a missing one is reported before any other field.
        for key in ["d_in", "d_sae"] {
            read_field::<usize>(m, key)?.ok_or_else(|| invalid(key, "is required"))?;
        }
        let base: Self = read(m)?;
        base.validate()?;
        Ok(base)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.d_in == 0 {
            return Err(invalid("d_in", "must be positive"));
        }
        if self.d_sae == 0 {
            return Err(invalid("d_sae", "must be positive"));
        }
        Ok(())
    }
}
