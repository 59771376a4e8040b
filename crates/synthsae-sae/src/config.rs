//! SAE configs in sae-lens's JSON form (spec §10.1–§10.11).
//!
//! * [`TrainingSaeConfig`]: the *training* config (`cfg.json` of a training
//!   checkpoint, or the runner's `sae` object): shared fields, then
//!   `decoder_init_norm`, then the architecture's fields, then `architecture`.
//! * [`SaeConfig`]: the *inference* config (`cfg.json` written by
//!   `save_inference_model`): shared fields, the inference architecture's
//!   fields and `architecture` (BatchTopK and Matryoshka BatchTopK become
//!   `"jumprelu"`).
//!
//! Both are read field by field with sae-lens's defaults, so any key sae-lens
//! does not know is ignored, and a wrong type or value names the field.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use crate::error::{Result, SaeError};

/// The sae-lens version synthsae's files claim compatibility with.
pub const SAE_LENS_VERSION: &str = "6.54.12";

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

/// Inference architectures synthsae knows (sae-lens names).
pub const INFERENCE_ARCHITECTURES: [&str; 6] = [
    "standard",
    "topk",
    "jumprelu",
    "gated",
    "matching_pursuit",
    "abstopk",
];

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
    /// sae-lens name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ExpectedAverageOnlyIn => "expected_average_only_in",
            Self::ConstantNormRescale => "constant_norm_rescale",
            Self::LayerNorm => "layer_norm",
            Self::CovarianceWhitening => "covariance_whitening",
        }
    }

    /// Parses a sae-lens name.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "none" => Self::None,
            "expected_average_only_in" => Self::ExpectedAverageOnlyIn,
            "constant_norm_rescale" => Self::ConstantNormRescale,
            "layer_norm" => Self::LayerNorm,
            "covariance_whitening" => Self::CovarianceWhitening,
            other => {
                return Err(SaeError::InvalidConfig {
                    field: "normalize_activations".into(),
                    reason: format!(
                        "`{other}` is not one of none, expected_average_only_in, \
                         constant_norm_rescale, layer_norm, covariance_whitening"
                    ),
                })
            }
        })
    }

    /// Whether the SAE itself normalises each sample (and undoes it on output).
    pub fn is_per_sample(self) -> bool {
        matches!(self, Self::ConstantNormRescale | Self::LayerNorm)
    }
}

/// Fields shared by every SAE config (sae-lens `SAEConfig`), in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct SaeBase {
    /// Input dimension `D`.
    pub d_in: usize,
    /// Number of latents `S`.
    pub d_sae: usize,
    /// sae-lens dtype name (`"float32"`); synthsae computes in the backend's float type.
    pub dtype: String,
    /// sae-lens device name, kept for the file (`"cpu"`).
    pub device: String,
    /// Subtract `b_dec` from the input before encoding.
    pub apply_b_dec_to_input: bool,
    /// Input normalisation mode.
    pub normalize_activations: NormalizeActivations,
    /// `"none"` or `"hook_z"` (only meaningful for attention-head inputs; kept for the file).
    pub reshape_activations: String,
    /// Free-form metadata (`sae_lens_version`, `l0`, `num_dead_features`, ...).
    pub metadata: Map<String, Value>,
}

impl SaeBase {
    /// Defaults of sae-lens for the given sizes.
    pub fn new(d_in: usize, d_sae: usize) -> Self {
        let mut metadata = Map::new();
        metadata.insert("sae_lens_version".into(), SAE_LENS_VERSION.into());
        metadata.insert("sae_lens_training_version".into(), SAE_LENS_VERSION.into());
        Self {
            d_in,
            d_sae,
            dtype: "float32".into(),
            device: "cpu".into(),
            apply_b_dec_to_input: true,
            normalize_activations: NormalizeActivations::None,
            reshape_activations: "none".into(),
            metadata,
        }
    }

    fn from_map(m: &Map<String, Value>) -> Result<Self> {
        let d_in = req_usize(m, "d_in")?;
        let d_sae = req_usize(m, "d_sae")?;
        let mut base = Self::new(d_in, d_sae);
        base.dtype = opt_str(m, "dtype")?.unwrap_or(base.dtype);
        match base.dtype.as_str() {
            "float32" | "float64" | "float16" | "bfloat16" | "torch.float32" => {}
            other => return Err(invalid("dtype", format!("unsupported dtype `{other}`"))),
        }
        base.device = opt_str(m, "device")?.unwrap_or(base.device);
        base.apply_b_dec_to_input =
            opt_bool(m, "apply_b_dec_to_input")?.unwrap_or(base.apply_b_dec_to_input);
        if let Some(n) = opt_str(m, "normalize_activations")? {
            base.normalize_activations = NormalizeActivations::parse(&n)?;
        }
        base.reshape_activations =
            opt_str(m, "reshape_activations")?.unwrap_or(base.reshape_activations);
        match m.get("metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(md)) => {
                // sae-lens fills in the two version fields when absent.
                let mut metadata = Map::new();
                for key in ["sae_lens_version", "sae_lens_training_version"] {
                    metadata.insert(
                        key.into(),
                        md.get(key).cloned().unwrap_or(SAE_LENS_VERSION.into()),
                    );
                }
                for (k, v) in md {
                    metadata.insert(k.clone(), v.clone());
                }
                base.metadata = metadata;
            }
            Some(_) => return Err(invalid("metadata", "must be an object")),
        }
        base.validate()?;
        Ok(base)
    }

    fn validate(&self) -> Result<()> {
        if self.d_in == 0 {
            return Err(invalid("d_in", "must be positive"));
        }
        if self.d_sae == 0 {
            return Err(invalid("d_sae", "must be positive"));
        }
        Ok(())
    }

    fn write_head(&self, out: &mut Map<String, Value>) {
        out.insert("d_in".into(), self.d_in.into());
        out.insert("d_sae".into(), self.d_sae.into());
        out.insert("dtype".into(), self.dtype.clone().into());
        out.insert("device".into(), self.device.clone().into());
        out.insert(
            "apply_b_dec_to_input".into(),
            self.apply_b_dec_to_input.into(),
        );
        out.insert(
            "normalize_activations".into(),
            self.normalize_activations.as_str().into(),
        );
        out.insert(
            "reshape_activations".into(),
            self.reshape_activations.clone().into(),
        );
    }
}

/// `standard` training fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StandardConfig {
    /// L1 coefficient λ.
    pub l1_coefficient: f64,
    /// `p` of the Lp sparsity penalty.
    pub lp_norm: f64,
    /// Linear warm-up of λ, in steps.
    pub l1_warm_up_steps: u64,
}

impl Default for StandardConfig {
    fn default() -> Self {
        Self {
            l1_coefficient: 1.0,
            lp_norm: 1.0,
            l1_warm_up_steps: 0,
        }
    }
}

/// `topk` / `abstopk` training fields.
#[derive(Debug, Clone, PartialEq)]
pub struct TopKConfig {
    /// Latents kept per row.
    pub k: usize,
    /// sae-lens's sparse-tensor switch (kept for the file; synthsae's result is the same).
    pub use_sparse_activations: bool,
    /// Coefficient of the aux-k loss.
    pub aux_loss_coefficient: f64,
    /// Select and decode as if decoder rows had unit norm.
    pub rescale_acts_by_decoder_norm: bool,
}

impl Default for TopKConfig {
    fn default() -> Self {
        Self {
            k: 100,
            use_sparse_activations: false,
            aux_loss_coefficient: 1.0,
            rescale_acts_by_decoder_norm: true,
        }
    }
}

/// `batchtopk` training fields.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchTopKConfig {
    /// Mean latents kept per row; `floor(k · batch)` are kept per batch.
    pub k: f64,
    /// Kept for the file.
    pub use_sparse_activations: bool,
    /// Coefficient of the aux-k loss.
    pub aux_loss_coefficient: f64,
    /// Select and decode as if decoder rows had unit norm.
    pub rescale_acts_by_decoder_norm: bool,
    /// EMA rate of the inference threshold.
    pub topk_threshold_lr: f64,
}

impl Default for BatchTopKConfig {
    fn default() -> Self {
        Self {
            k: 100.0,
            use_sparse_activations: false,
            aux_loss_coefficient: 1.0,
            rescale_acts_by_decoder_norm: true,
            topk_threshold_lr: 0.01,
        }
    }
}

/// `matryoshka_batchtopk` training fields (BatchTopK's plus the nesting).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatryoshkaConfig {
    /// The BatchTopK fields.
    pub batch_topk: BatchTopKConfig,
    /// Strictly increasing prefix widths, the last one `d_sae` (appended if missing).
    pub matryoshka_widths: Vec<usize>,
    /// Per-level aux-k loss instead of the plain one.
    pub use_matryoshka_aux_loss: bool,
}

/// JumpReLU sparsity-loss mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SparsityLossMode {
    /// `λ · L0` with the step pseudo-gradient.
    #[default]
    Step,
    /// `λ · Σ tanh(c · z · ‖W_dec‖)`.
    Tanh,
    /// `λ · 2/target · (L0 − target)²`.
    Quadratic,
}

impl SparsityLossMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Step => "step",
            Self::Tanh => "tanh",
            Self::Quadratic => "quadratic",
        }
    }
}

/// `jumprelu` training fields.
#[derive(Debug, Clone, PartialEq)]
pub struct JumpReluConfig {
    /// Initial threshold θ of every latent.
    pub jumprelu_init_threshold: f64,
    /// Bandwidth ε of the rectangle kernel.
    pub jumprelu_bandwidth: f64,
    /// Sparsity loss mode.
    pub jumprelu_sparsity_loss_mode: SparsityLossMode,
    /// λ of the sparsity loss.
    pub l0_coefficient: f64,
    /// Linear warm-up of λ, in steps.
    pub l0_warm_up_steps: u64,
    /// Coefficient of the pre-activation loss (`None` = off).
    pub pre_act_loss_coefficient: Option<f64>,
    /// `c` of the tanh loss.
    pub jumprelu_tanh_scale: f64,
    /// Straight-through gradient also to the pre-activations.
    pub jumprelu_ste_to_input: bool,
    /// Target L0 of the quadratic loss.
    pub target_l0: Option<f64>,
}

impl Default for JumpReluConfig {
    fn default() -> Self {
        Self {
            jumprelu_init_threshold: 0.01,
            jumprelu_bandwidth: 0.05,
            jumprelu_sparsity_loss_mode: SparsityLossMode::Step,
            l0_coefficient: 1.0,
            l0_warm_up_steps: 0,
            pre_act_loss_coefficient: None,
            jumprelu_tanh_scale: 4.0,
            jumprelu_ste_to_input: false,
            target_l0: None,
        }
    }
}

/// `gated` training fields.
#[derive(Debug, Clone, PartialEq)]
pub struct GatedConfig {
    /// L1 coefficient λ.
    pub l1_coefficient: f64,
    /// Linear warm-up of λ, in steps.
    pub l1_warm_up_steps: u64,
}

impl Default for GatedConfig {
    fn default() -> Self {
        Self {
            l1_coefficient: 1.0,
            l1_warm_up_steps: 0,
        }
    }
}

/// `matching_pursuit` fields (training and inference).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchingPursuitConfig {
    /// A row is done when its residual norm falls below this (if > 0).
    pub residual_threshold: f64,
    /// Iteration cap (`None` = `d_in`).
    pub max_iterations: Option<usize>,
    /// A row is done when an iteration leaves its support unchanged.
    pub stop_on_duplicate_support: bool,
}

impl Default for MatchingPursuitConfig {
    fn default() -> Self {
        Self {
            residual_threshold: 1e-2,
            max_iterations: None,
            stop_on_duplicate_support: true,
        }
    }
}

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
    fn fields(&self) -> Vec<(&'static str, Value)> {
        fn topk(c: &TopKConfig) -> Vec<(&'static str, Value)> {
            vec![
                ("k", c.k.into()),
                ("use_sparse_activations", c.use_sparse_activations.into()),
                ("aux_loss_coefficient", c.aux_loss_coefficient.into()),
                (
                    "rescale_acts_by_decoder_norm",
                    c.rescale_acts_by_decoder_norm.into(),
                ),
            ]
        }
        fn btk(c: &BatchTopKConfig) -> Vec<(&'static str, Value)> {
            vec![
                ("k", number(c.k)),
                ("use_sparse_activations", c.use_sparse_activations.into()),
                ("aux_loss_coefficient", c.aux_loss_coefficient.into()),
                (
                    "rescale_acts_by_decoder_norm",
                    c.rescale_acts_by_decoder_norm.into(),
                ),
                ("topk_threshold_lr", c.topk_threshold_lr.into()),
            ]
        }
        match self {
            Self::Standard(c) => vec![
                ("l1_coefficient", c.l1_coefficient.into()),
                ("lp_norm", c.lp_norm.into()),
                ("l1_warm_up_steps", c.l1_warm_up_steps.into()),
            ],
            Self::TopK(c) | Self::AbsTopK(c) => topk(c),
            Self::BatchTopK(c) => btk(c),
            Self::MatryoshkaBatchTopK(c) => {
                let mut f = btk(&c.batch_topk);
                f.push(("matryoshka_widths", c.matryoshka_widths.clone().into()));
                f.push(("use_matryoshka_aux_loss", c.use_matryoshka_aux_loss.into()));
                f
            }
            Self::JumpRelu(c) => vec![
                ("jumprelu_init_threshold", c.jumprelu_init_threshold.into()),
                ("jumprelu_bandwidth", c.jumprelu_bandwidth.into()),
                (
                    "jumprelu_sparsity_loss_mode",
                    c.jumprelu_sparsity_loss_mode.as_str().into(),
                ),
                ("l0_coefficient", c.l0_coefficient.into()),
                ("l0_warm_up_steps", c.l0_warm_up_steps.into()),
                (
                    "pre_act_loss_coefficient",
                    c.pre_act_loss_coefficient.into(),
                ),
                ("jumprelu_tanh_scale", c.jumprelu_tanh_scale.into()),
                ("jumprelu_ste_to_input", c.jumprelu_ste_to_input.into()),
                ("target_l0", c.target_l0.into()),
            ],
            Self::Gated(c) => vec![
                ("l1_coefficient", c.l1_coefficient.into()),
                ("l1_warm_up_steps", c.l1_warm_up_steps.into()),
            ],
            Self::MatchingPursuit(c) => mp_fields(c),
        }
    }

    fn from_map(name: &str, m: &Map<String, Value>) -> Result<Self> {
        let topk = |m: &Map<String, Value>| -> Result<TopKConfig> {
            let d = TopKConfig::default();
            Ok(TopKConfig {
                k: opt_usize(m, "k")?.unwrap_or(d.k),
                use_sparse_activations: opt_bool(m, "use_sparse_activations")?
                    .unwrap_or(d.use_sparse_activations),
                aux_loss_coefficient: opt_f64(m, "aux_loss_coefficient")?
                    .unwrap_or(d.aux_loss_coefficient),
                rescale_acts_by_decoder_norm: opt_bool(m, "rescale_acts_by_decoder_norm")?
                    .unwrap_or(d.rescale_acts_by_decoder_norm),
            })
        };
        let btk = |m: &Map<String, Value>| -> Result<BatchTopKConfig> {
            let d = BatchTopKConfig::default();
            Ok(BatchTopKConfig {
                k: opt_f64(m, "k")?.unwrap_or(d.k),
                use_sparse_activations: opt_bool(m, "use_sparse_activations")?
                    .unwrap_or(d.use_sparse_activations),
                aux_loss_coefficient: opt_f64(m, "aux_loss_coefficient")?
                    .unwrap_or(d.aux_loss_coefficient),
                rescale_acts_by_decoder_norm: opt_bool(m, "rescale_acts_by_decoder_norm")?
                    .unwrap_or(d.rescale_acts_by_decoder_norm),
                topk_threshold_lr: opt_f64(m, "topk_threshold_lr")?.unwrap_or(d.topk_threshold_lr),
            })
        };
        Ok(match name {
            "standard" => {
                let d = StandardConfig::default();
                Self::Standard(StandardConfig {
                    l1_coefficient: opt_f64(m, "l1_coefficient")?.unwrap_or(d.l1_coefficient),
                    lp_norm: opt_f64(m, "lp_norm")?.unwrap_or(d.lp_norm),
                    l1_warm_up_steps: opt_u64(m, "l1_warm_up_steps")?.unwrap_or(d.l1_warm_up_steps),
                })
            }
            "topk" => Self::TopK(topk(m)?),
            "abstopk" => Self::AbsTopK(topk(m)?),
            "batchtopk" => Self::BatchTopK(btk(m)?),
            "matryoshka_batchtopk" => {
                let widths = match m.get("matryoshka_widths") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| {
                            v.as_u64().map(|w| w as usize).ok_or_else(|| {
                                invalid("matryoshka_widths", "must contain only positive widths")
                            })
                        })
                        .collect::<Result<_>>()?,
                    Some(_) => return Err(invalid("matryoshka_widths", "must be a list")),
                };
                Self::MatryoshkaBatchTopK(MatryoshkaConfig {
                    batch_topk: btk(m)?,
                    matryoshka_widths: widths,
                    use_matryoshka_aux_loss: opt_bool(m, "use_matryoshka_aux_loss")?
                        .unwrap_or(false),
                })
            }
            "jumprelu" => {
                let d = JumpReluConfig::default();
                let mode = match opt_str(m, "jumprelu_sparsity_loss_mode")?.as_deref() {
                    None | Some("step") => SparsityLossMode::Step,
                    Some("tanh") => SparsityLossMode::Tanh,
                    Some("quadratic") => SparsityLossMode::Quadratic,
                    Some(other) => {
                        return Err(invalid(
                            "jumprelu_sparsity_loss_mode",
                            format!("`{other}` is not one of step, tanh, quadratic"),
                        ))
                    }
                };
                Self::JumpRelu(JumpReluConfig {
                    jumprelu_init_threshold: opt_f64(m, "jumprelu_init_threshold")?
                        .unwrap_or(d.jumprelu_init_threshold),
                    jumprelu_bandwidth: opt_f64(m, "jumprelu_bandwidth")?
                        .unwrap_or(d.jumprelu_bandwidth),
                    jumprelu_sparsity_loss_mode: mode,
                    l0_coefficient: opt_f64(m, "l0_coefficient")?.unwrap_or(d.l0_coefficient),
                    l0_warm_up_steps: opt_u64(m, "l0_warm_up_steps")?.unwrap_or(d.l0_warm_up_steps),
                    pre_act_loss_coefficient: opt_f64(m, "pre_act_loss_coefficient")?,
                    jumprelu_tanh_scale: opt_f64(m, "jumprelu_tanh_scale")?
                        .unwrap_or(d.jumprelu_tanh_scale),
                    jumprelu_ste_to_input: opt_bool(m, "jumprelu_ste_to_input")?
                        .unwrap_or(d.jumprelu_ste_to_input),
                    target_l0: opt_f64(m, "target_l0")?,
                })
            }
            "gated" => {
                let d = GatedConfig::default();
                Self::Gated(GatedConfig {
                    l1_coefficient: opt_f64(m, "l1_coefficient")?.unwrap_or(d.l1_coefficient),
                    l1_warm_up_steps: opt_u64(m, "l1_warm_up_steps")?.unwrap_or(d.l1_warm_up_steps),
                })
            }
            "matching_pursuit" => Self::MatchingPursuit(mp_from_map(m)?),
            other => {
                return Err(SaeError::UnknownArchitecture {
                    name: other.into(),
                    available: TRAINING_ARCHITECTURES.to_vec(),
                })
            }
        })
    }
}

fn mp_fields(c: &MatchingPursuitConfig) -> Vec<(&'static str, Value)> {
    vec![
        ("residual_threshold", c.residual_threshold.into()),
        ("max_iterations", c.max_iterations.into()),
        (
            "stop_on_duplicate_support",
            c.stop_on_duplicate_support.into(),
        ),
    ]
}

fn mp_from_map(m: &Map<String, Value>) -> Result<MatchingPursuitConfig> {
    let d = MatchingPursuitConfig::default();
    Ok(MatchingPursuitConfig {
        residual_threshold: opt_f64(m, "residual_threshold")?.unwrap_or(d.residual_threshold),
        max_iterations: opt_usize(m, "max_iterations")?,
        stop_on_duplicate_support: opt_bool(m, "stop_on_duplicate_support")?
            .unwrap_or(d.stop_on_duplicate_support),
    })
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
        let name = opt_str(m, "architecture")?.unwrap_or_else(|| "standard".into());
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
        let mut out = Map::new();
        self.base.write_head(&mut out);
        out.insert(
            "metadata".into(),
            Value::Object(self.metadata_with_training_info()),
        );
        out.insert("decoder_init_norm".into(), self.decoder_init_norm.into());
        for (k, v) in self.arch.fields() {
            out.insert(k.into(), v);
        }
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
            if !skip.contains(&k) {
                out.insert(k.into(), v);
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
            TrainingArch::Standard(c) => {
                if !(c.lp_norm.is_finite() && c.lp_norm > 0.0) {
                    return Err(invalid("lp_norm", "must be positive and finite"));
                }
            }
            TrainingArch::TopK(c) | TrainingArch::AbsTopK(c) => {
                if c.k == 0 || c.k > d_sae {
                    return Err(invalid("k", format!("must be in 1..={d_sae} (d_sae)")));
                }
            }
            TrainingArch::BatchTopK(c) => check_batch_k(c)?,
            TrainingArch::MatryoshkaBatchTopK(c) => {
                check_batch_k(&c.batch_topk)?;
                let w = &mut c.matryoshka_widths;
                if w.is_empty() {
                    return Err(invalid("matryoshka_widths", "must not be empty"));
                }
                if w.contains(&0) {
                    return Err(invalid(
                        "matryoshka_widths",
                        "must contain only positive widths",
                    ));
                }
                if *w.last().unwrap_or(&0) != d_sae {
                    log::warn!("the final matryoshka width is not d_sae = {d_sae}; appending it");
                    w.push(d_sae);
                }
                if w.windows(2).any(|p| p[0] >= p[1]) {
                    return Err(invalid("matryoshka_widths", "must be strictly increasing"));
                }
                if w.len() == 1 {
                    log::warn!("only one matryoshka level: equivalent to BatchTopK");
                }
            }
            TrainingArch::JumpRelu(c) => {
                if !(c.jumprelu_bandwidth.is_finite() && c.jumprelu_bandwidth > 0.0) {
                    return Err(invalid("jumprelu_bandwidth", "must be positive and finite"));
                }
                if c.jumprelu_sparsity_loss_mode == SparsityLossMode::Quadratic {
                    match c.target_l0 {
                        None => {
                            return Err(invalid(
                                "target_l0",
                                "must be set for quadratic sparsity loss mode",
                            ))
                        }
                        Some(t) if t.is_nan() || t <= 0.0 => {
                            return Err(invalid("target_l0", "must be greater than 0"))
                        }
                        Some(t) if t > d_sae as f64 => {
                            return Err(invalid(
                                "target_l0",
                                format!("must be at most d_sae ({d_sae}), got {t}"),
                            ))
                        }
                        Some(_) => {}
                    }
                }
            }
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

fn check_batch_k(c: &BatchTopKConfig) -> Result<()> {
    if !(c.k.is_finite() && c.k > 0.0) {
        return Err(invalid("k", "must be positive and finite"));
    }
    Ok(())
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
        let name = opt_str(m, "architecture")?.unwrap_or_else(|| "standard".into());
        let base = SaeBase::from_map(m)?;
        let topk = || -> Result<(usize, bool)> {
            let k = opt_usize(m, "k")?.unwrap_or(100);
            if k == 0 || k > base.d_sae {
                return Err(invalid("k", format!("must be in 1..={}", base.d_sae)));
            }
            Ok((
                k,
                opt_bool(m, "rescale_acts_by_decoder_norm")?.unwrap_or(false),
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
            "matching_pursuit" => InferenceArch::MatchingPursuit(mp_from_map(m)?),
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
        let mut out = Map::new();
        self.base.write_head(&mut out);
        out.insert("metadata".into(), Value::Object(self.base.metadata.clone()));
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
            InferenceArch::MatchingPursuit(c) => {
                for (k, v) in mp_fields(c) {
                    out.insert(k.into(), v);
                }
            }
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

/// A float written as an integer when it is one (sae-lens writes `k: 6` for `k=6`).
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::Number(Number::from(x as i64))
    } else {
        x.into()
    }
}

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> SaeError {
    SaeError::InvalidConfig {
        field: field.into(),
        reason: reason.into(),
    }
}

fn req_usize(m: &Map<String, Value>, key: &str) -> Result<usize> {
    opt_usize(m, key)?.ok_or_else(|| invalid(key, "is required"))
}

fn opt_usize(m: &Map<String, Value>, key: &str) -> Result<Option<usize>> {
    Ok(opt_u64(m, key)?.map(|v| v as usize))
}

fn opt_u64(m: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            if let Some(u) = v.as_u64() {
                return Ok(Some(u));
            }
            // Python may write an integral float (`100.0`).
            match v.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => Ok(Some(f as u64)),
                _ => Err(invalid(
                    key,
                    format!("must be a non-negative integer, got {v}"),
                )),
            }
        }
    }
}

fn opt_f64(m: &Map<String, Value>, key: &str) -> Result<Option<f64>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(key, format!("must be a number, got {v}"))),
    }
}

fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(invalid(key, format!("must be true or false, got {v}"))),
    }
}

fn opt_str(m: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(invalid(key, format!("must be a string, got {v}"))),
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
