//! The synthetic model users pass around (sae-lens `SyntheticModel`): a
//! feature dictionary, an activation generator, an optional hierarchy and
//! low-rank correlation, built from a [`SyntheticModelConfig`] and stored in
//! sae-lens's own file layout.
//!
//! **Seed-compatible construction.** With `seed: Some(s)` every construction
//! draw uses the stream sae-lens uses: torch's MT19937 for feature vectors
//! and bias (`s`), random firing probabilities (`s`), std magnitudes
//! (`s + 1`), mean magnitudes (`s + 2`) and the correlation factor (`s + 4`),
//! CPython's `random` for the hierarchy (`s + 3`). The result equals the
//! sae-lens model built from the same JSON (normals to float rounding).
//! With `seed: None` every component draws from OS entropy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{backend::Backend, Tensor, TensorData};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::correlation::{generate_random_low_rank_correlation_matrix_with, LowRankCorrelation};
use crate::error::{invalid, DataError, Result};
use crate::feature_dictionary::{
    Bias, FeatureDictionary, FeatureDictionaryConfig, HostFeatureDictionary,
};
use crate::firing::FiringProbabilityConfig;
use crate::generator::{ActivationGenerator, Correlation};
use crate::hidden_path::HiddenPath;
use crate::hierarchy::{generate_hierarchy, Hierarchy, HierarchyConfig};
use crate::hierarchy_modifier::HierarchyModifier;
use crate::magnitude::Magnitude;
use crate::orthogonalize::{OrthogonalizationConfig, OrthogonalizationReport};
use crate::rng::{ChaChaSource, RandomSource, SampleRng};
use crate::torch_rng::TorchGenerator;
use synthsae_host::{try_to_vec, Csr};

/// `synthetic_model_config.json`.
pub const CONFIG_FILENAME: &str = "synthetic_model_config.json";
/// `synthetic_model.safetensors`.
pub const WEIGHTS_FILENAME: &str = "synthetic_model.safetensors";
/// `hierarchy.json`.
pub const HIERARCHY_FILENAME: &str = "hierarchy.json";

/// Low-rank firing correlation settings (sae-lens `LowRankCorrelationConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LowRankCorrelationConfig {
    /// Rank of the factor.
    pub rank: usize,
    /// Scale of the factor entries.
    pub correlation_scale: f64,
    /// Seed of the factor. sae-lens writes but ignores it (it uses the model
    /// seed + 4); synthsae uses it when set and the model seed + 4 otherwise.
    pub seed: Option<u64>,
}

impl Default for LowRankCorrelationConfig {
    fn default() -> Self {
        Self {
            rank: 32,
            correlation_scale: 0.1,
            seed: None,
        }
    }
}

fn default_std() -> Magnitude {
    Magnitude::Value(0.0)
}
fn default_mean() -> Magnitude {
    Magnitude::Value(1.0)
}
fn default_bias() -> Bias {
    Bias::Norm(1.0)
}
fn default_dtype() -> String {
    "float32".to_string()
}

/// sae-lens `SyntheticModelConfig`; the JSON keys, order and nesting of
/// `synthetic_model_config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticModelConfig {
    /// `N`.
    pub num_features: usize,
    /// `D`.
    pub hidden_dim: usize,
    /// Firing probabilities (required in JSON, as in sae-lens).
    pub firing_probability: FiringProbabilityConfig,
    /// Hierarchy generation, if any.
    #[serde(default)]
    pub hierarchy: Option<HierarchyConfig>,
    /// Orthogonalisation of the feature vectors, if any.
    #[serde(default)]
    pub orthogonalization: Option<OrthogonalizationConfig>,
    /// Low-rank firing correlation, if any.
    #[serde(default)]
    pub correlation: Option<LowRankCorrelationConfig>,
    /// Std of firing magnitudes: a number or a magnitude config.
    #[serde(default = "default_std")]
    pub std_firing_magnitudes: Magnitude,
    /// Mean of firing magnitudes: a number or a magnitude config.
    #[serde(default = "default_mean")]
    pub mean_firing_magnitudes: Magnitude,
    /// Bias: bool or norm (default a bias of norm 1).
    #[serde(default = "default_bias")]
    pub bias: Bias,
    /// `"float32"` or `"float64"`: the dtype of saved probabilities and
    /// correlation tensors (computation is float32).
    #[serde(default = "default_dtype")]
    pub dtype: String,
    /// Construction seed (`None`: OS entropy).
    #[serde(default)]
    pub seed: Option<u64>,
}

impl SyntheticModelConfig {
    /// The sae-lens defaults for `N` features in `D` dimensions.
    pub fn new(num_features: usize, hidden_dim: usize) -> Self {
        Self {
            num_features,
            hidden_dim,
            firing_probability: FiringProbabilityConfig::default(),
            hierarchy: None,
            orthogonalization: None,
            correlation: None,
            std_firing_magnitudes: default_std(),
            mean_firing_magnitudes: default_mean(),
            bias: default_bias(),
            dtype: default_dtype(),
            seed: None,
        }
    }

    /// Checks every field that can be checked without building.
    pub fn validate(&self) -> Result<()> {
        if self.num_features < 1 {
            return Err(invalid("num_features", "must be at least 1"));
        }
        if self.hidden_dim < 1 {
            return Err(invalid("hidden_dim", "must be at least 1"));
        }
        if let Some(h) = &self.hierarchy {
            h.validate()?;
        }
        if let Some(o) = &self.orthogonalization {
            o.validate()?;
        }
        if let Some(c) = &self.correlation {
            if c.rank == 0 {
                return Err(invalid("correlation.rank", "must be positive"));
            }
            if !(c.correlation_scale >= 0.0 && c.correlation_scale.is_finite()) {
                return Err(invalid(
                    "correlation.correlation_scale",
                    "must be finite and non-negative",
                ));
            }
        }
        self.bias.validate()?;
        for (field, m) in [
            ("std_firing_magnitudes", &self.std_firing_magnitudes),
            ("mean_firing_magnitudes", &self.mean_firing_magnitudes),
        ] {
            if let Magnitude::Config(c) = m {
                c.validate().map_err(|e| invalid(field, e.to_string()))?;
            }
        }
        match self.dtype.trim_start_matches("torch.") {
            "float32" | "float64" => Ok(()),
            other => Err(invalid(
                "dtype",
                format!("`{other}` is not supported; use float32 or float64 (synthsae computes in float32)"),
            )),
        }
    }

    /// Reads `synthetic_model_config.json`-style JSON.
    pub fn from_json(json: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(json).map_err(|source| DataError::Json {
            what: "synthetic model config".into(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// JSON with 2-space indentation, as sae-lens writes it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    fn is_f64(&self) -> bool {
        self.dtype.trim_start_matches("torch.") == "float64"
    }
}

/// A synthetic model: ground-truth features and the distribution over them.
#[derive(Debug)]
pub struct SyntheticModel<B: Backend> {
    cfg: SyntheticModelConfig,
    feature_dictionary: FeatureDictionary<B>,
    host_dictionary: HostFeatureDictionary,
    generator: ActivationGenerator,
    hierarchy: Option<Hierarchy>,
    correlation: Option<LowRankCorrelation>,
    orthogonalization_report: Option<OrthogonalizationReport>,
    hidden_path: HiddenPath,
}

fn source(seed: Option<u64>, offset: u64) -> Box<dyn RandomSource> {
    match seed {
        Some(s) => Box::new(TorchGenerator::manual_seed(s.wrapping_add(offset))),
        None => Box::new(ChaChaSource::new(None)),
    }
}

impl<B: Backend> SyntheticModel<B> {
    /// Builds a model from its config on `device` (sae-lens's construction
    /// order and seed offsets).
    pub fn new(cfg: SyntheticModelConfig, device: &B::Device) -> Result<Self> {
        Self::new_with_progress(cfg, device, None)
    }

    /// Like [`new`](Self::new); `progress(step, loss)` follows orthogonalisation.
    pub fn new_with_progress(
        cfg: SyntheticModelConfig,
        device: &B::Device,
        progress: Option<&mut dyn FnMut(usize, f64)>,
    ) -> Result<Self> {
        cfg.validate()?;
        let (n, seed) = (cfg.num_features, cfg.seed);
        let hierarchy = match &cfg.hierarchy {
            Some(h) => Some(generate_hierarchy(n, h, seed.map(|s| s.wrapping_add(3)))?),
            None => None,
        };
        let correlation = match &cfg.correlation {
            Some(c) => {
                let mut rng = match c.seed {
                    Some(s) => Box::new(TorchGenerator::manual_seed(s)) as Box<dyn RandomSource>,
                    None => source(seed, 4),
                };
                Some(generate_random_low_rank_correlation_matrix_with(
                    n,
                    c.rank,
                    c.correlation_scale,
                    rng.as_mut(),
                )?)
            }
            None => None,
        };
        let dict_cfg = FeatureDictionaryConfig::new(n, cfg.hidden_dim)
            .with_bias(cfg.bias)
            .with_orthogonalization(cfg.orthogonalization);
        let (feature_dictionary, report) =
            dict_cfg.init_with_source::<B>(source(seed, 0).as_mut(), device, progress)?;
        let probs = cfg
            .firing_probability
            .generate_with(n, source(seed, 0).as_mut())?;
        let probs = match (&hierarchy, &cfg.hierarchy) {
            (Some(h), Some(hc)) if hc.compensate_probabilities => {
                let (p, clamped, max) = h.compensate(&probs)?;
                if clamped > 0 {
                    log::warn!(
                        "Hierarchy probability compensation clamped {clamped} features (max before clamp: {max:.3}). Consider using lower base probabilities."
                    );
                }
                p
            }
            _ => probs,
        };
        Self::assemble(
            cfg,
            feature_dictionary,
            probs,
            hierarchy,
            correlation,
            report,
        )
    }

    /// Builds the generator around given parts (magnitudes from the config).
    fn assemble(
        cfg: SyntheticModelConfig,
        feature_dictionary: FeatureDictionary<B>,
        probs: Vec<f32>,
        hierarchy: Option<Hierarchy>,
        correlation: Option<LowRankCorrelation>,
        orthogonalization_report: Option<OrthogonalizationReport>,
    ) -> Result<Self> {
        let (n, seed) = (cfg.num_features, cfg.seed);
        let std = cfg
            .std_firing_magnitudes
            .generate_with(n, source(seed, 1).as_mut())
            .map_err(|e| invalid("std_firing_magnitudes", e.to_string()))?;
        let mean = cfg
            .mean_firing_magnitudes
            .generate_with(n, source(seed, 2).as_mut())
            .map_err(|e| invalid("mean_firing_magnitudes", e.to_string()))?;
        let mut generator = ActivationGenerator::new(n, probs, std, mean)?;
        if let Some(c) = &correlation {
            generator = generator.with_correlation(Correlation::LowRank(c.clone()))?;
        }
        if let Some(h) = &hierarchy {
            if !h.roots.is_empty() {
                generator = generator
                    .with_hierarchy(std::sync::Arc::new(HierarchyModifier::new(h.clone(), n)?))?;
            }
        }
        let host_dictionary = feature_dictionary.to_host()?;
        Ok(Self {
            cfg,
            feature_dictionary,
            host_dictionary,
            generator,
            hierarchy,
            correlation,
            orthogonalization_report,
            hidden_path: HiddenPath::Auto,
        })
    }

    /// The config.
    pub fn config(&self) -> &SyntheticModelConfig {
        &self.cfg
    }

    /// The feature dictionary on the device.
    pub fn feature_dictionary(&self) -> &FeatureDictionary<B> {
        &self.feature_dictionary
    }

    /// The feature dictionary in host memory.
    pub fn host_dictionary(&self) -> &HostFeatureDictionary {
        &self.host_dictionary
    }

    /// The activation generator.
    pub fn generator(&self) -> &ActivationGenerator {
        &self.generator
    }

    /// The hierarchy, if any.
    pub fn hierarchy(&self) -> Option<&Hierarchy> {
        self.hierarchy.as_ref()
    }

    /// The low-rank correlation, if any.
    pub fn correlation(&self) -> Option<&LowRankCorrelation> {
        self.correlation.as_ref()
    }

    /// The orthogonalisation report, when this model ran it.
    pub fn orthogonalization_report(&self) -> Option<&OrthogonalizationReport> {
        self.orthogonalization_report.as_ref()
    }

    /// Chooses where hidden activations are computed.
    pub fn with_hidden_path(mut self, path: HiddenPath) -> Self {
        self.hidden_path = path;
        self
    }

    /// Ground-truth feature activations `[batch, N]`, sparse.
    pub fn sample_features(&self, batch_size: usize, rng: &mut SampleRng) -> Csr {
        self.generator.sample(batch_size, rng)
    }

    /// Hidden activations `[batch, D]` of a sparse batch, on the model's
    /// device, by the path [`with_hidden_path`](Self::with_hidden_path)
    /// chose (default [`HiddenPath::Auto`]).
    pub fn hidden(&self, features: &Csr) -> Result<Tensor<B, 2>> {
        self.hidden_by(features, self.hidden_path)
    }

    /// Hidden activations `[batch, D]` of a sparse batch by `path` (resolved
    /// for `B`), on the model's device.
    pub fn hidden_by(&self, features: &Csr, path: HiddenPath) -> Result<Tensor<B, 2>> {
        match path.resolve::<B>() {
            HiddenPath::Device => self.feature_dictionary.forward_sparse(features),
            _ => {
                let h = self.host_dictionary.forward_sparse(features)?;
                Ok(Tensor::from_data(
                    TensorData::new(h, [features.n_rows(), self.cfg.hidden_dim]),
                    &self.feature_dictionary.feature_vectors.device(),
                ))
            }
        }
    }

    /// Hidden activations `[batch, D]` (sae-lens `sample`).
    pub fn sample(&self, batch_size: usize, rng: &mut SampleRng) -> Result<Tensor<B, 2>> {
        self.hidden(&self.sample_features(batch_size, rng))
    }

    /// Hidden activations `[batch, D]` and the sparse features that made them.
    pub fn sample_with_features(
        &self,
        batch_size: usize,
        rng: &mut SampleRng,
    ) -> Result<(Tensor<B, 2>, Csr)> {
        let f = self.sample_features(batch_size, rng);
        Ok((self.hidden(&f)?, f))
    }

    /// Hidden `[batch, D]` and dense features `[batch, N]` on the device.
    pub fn sample_with_features_dense(
        &self,
        batch_size: usize,
        rng: &mut SampleRng,
    ) -> Result<(Tensor<B, 2>, Tensor<B, 2>)> {
        let (h, f) = self.sample_with_features(batch_size, rng)?;
        let device = h.device();
        Ok((h, f.to_tensor(&device)))
    }

    /// Writes the sae-lens layout into `dir` (created if needed); each file
    /// is written to a temporary name and renamed, so no half-written file
    /// is ever visible.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let (n, d) = (self.cfg.num_features, self.cfg.hidden_dim);
        let f64_out = self.cfg.is_f64();
        let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let cfg_bytes = |v: &[f32]| {
            if f64_out {
                v.iter()
                    .flat_map(|&x| (x as f64).to_le_bytes())
                    .collect::<Vec<u8>>()
            } else {
                f32_bytes(v)
            }
        };
        let cfg_dtype = if f64_out { Dtype::F64 } else { Dtype::F32 };
        let mut tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
            (
                "feature_vectors",
                Dtype::F32,
                vec![n, d],
                f32_bytes(self.host_dictionary.feature_vectors()),
            ),
            (
                "bias",
                Dtype::F32,
                vec![d],
                f32_bytes(self.host_dictionary.bias()),
            ),
            (
                "firing_probabilities",
                cfg_dtype,
                vec![n],
                cfg_bytes(self.generator.firing_probabilities()),
            ),
        ];
        if let Some(c) = &self.correlation {
            tensors.push((
                "correlation_factor",
                cfg_dtype,
                vec![n, c.rank()],
                cfg_bytes(c.factor()),
            ));
            tensors.push(("correlation_diag", cfg_dtype, vec![n], cfg_bytes(c.diag())));
        }
        let views: Vec<(&str, TensorView<'_>)> = tensors
            .iter()
            .map(|(name, dt, shape, bytes)| {
                TensorView::new(*dt, shape.clone(), bytes)
                    .map(|v| (*name, v))
                    .map_err(|e| DataError::File {
                        path: dir.join(WEIGHTS_FILENAME),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<_>>()?;
        let weights = safetensors::serialize(views, None).map_err(|e| DataError::File {
            path: dir.join(WEIGHTS_FILENAME),
            reason: e.to_string(),
        })?;
        write_atomic(&dir.join(CONFIG_FILENAME), self.cfg.to_json().as_bytes())?;
        write_atomic(&dir.join(WEIGHTS_FILENAME), &weights)?;
        let hpath = dir.join(HIERARCHY_FILENAME);
        match &self.hierarchy {
            Some(h) => {
                let json = serde_json::to_string_pretty(h).map_err(|source| DataError::Json {
                    what: "hierarchy".into(),
                    source,
                })?;
                write_atomic(&hpath, json.as_bytes())?;
            }
            None => {
                if hpath.exists() {
                    std::fs::remove_file(&hpath).map_err(|source| DataError::Io {
                        path: hpath,
                        source,
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Reads a model saved by sae-lens or by [`save`](Self::save). Saved
    /// tensors win over regenerated ones (probabilities, and the Gaussian
    /// thresholds derived from them); magnitudes are regenerated from the
    /// config; a missing `hierarchy.json` is regenerated from the config.
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join(CONFIG_FILENAME);
        let json = std::fs::read_to_string(&cfg_path).map_err(|source| DataError::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let cfg = SyntheticModelConfig::from_json(&json).map_err(|e| DataError::File {
            path: cfg_path,
            reason: e.to_string(),
        })?;
        let (n, d) = (cfg.num_features, cfg.hidden_dim);
        let wpath = dir.join(WEIGHTS_FILENAME);
        let bytes = std::fs::read(&wpath).map_err(|source| DataError::Io {
            path: wpath.clone(),
            source,
        })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| DataError::File {
            path: wpath.clone(),
            reason: format!("not a valid safetensors file ({e})"),
        })?;
        let tensors: HashMap<String, _> = st.tensors().into_iter().collect();
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            read_tensor(&tensors, name, shape, &wpath)
        };
        let vectors = read("feature_vectors", &[n, d])?;
        let bias = read("bias", &[d])?;
        let probs = read("firing_probabilities", &[n])?;
        let correlation = match (
            tensors.get("correlation_factor"),
            tensors.contains_key("correlation_diag"),
        ) {
            (Some(f), true) => {
                let r = f.shape().get(1).copied().unwrap_or(0);
                let factor = read("correlation_factor", &[n, r])?;
                let diag = read("correlation_diag", &[n])?;
                Some(
                    LowRankCorrelation::new(factor, diag, n, r).map_err(|e| DataError::File {
                        path: wpath.clone(),
                        reason: e.to_string(),
                    })?,
                )
            }
            (None, false) => None,
            _ => {
                return Err(DataError::File {
                    path: wpath,
                    reason: "correlation_factor and correlation_diag must be present together"
                        .into(),
                })
            }
        };
        let hpath = dir.join(HIERARCHY_FILENAME);
        let hierarchy = if hpath.exists() {
            let text = std::fs::read_to_string(&hpath).map_err(|source| DataError::Io {
                path: hpath.clone(),
                source,
            })?;
            let h: Hierarchy = serde_json::from_str(&text).map_err(|e| DataError::File {
                path: hpath.clone(),
                reason: e.to_string(),
            })?;
            crate::hierarchy::validate_hierarchy(&h.roots, Some(n)).map_err(|e| {
                DataError::File {
                    path: hpath.clone(),
                    reason: e.to_string(),
                }
            })?;
            Some(h)
        } else {
            match &cfg.hierarchy {
                Some(hc) => Some(generate_hierarchy(
                    n,
                    hc,
                    cfg.seed.map(|s| s.wrapping_add(3)),
                )?),
                None => None,
            }
        };
        let trainable_bias = cfg.bias.norm() != 0.0;
        let host = HostFeatureDictionary::new(vectors, bias, n, d)?;
        let dict = host.to_device::<B>(device, trainable_bias)?;
        Self::assemble(cfg, dict, probs, hierarchy, correlation, None).map_err(|e| {
            DataError::File {
                path: wpath,
                reason: e.to_string(),
            }
        })
    }
}

/// Reads a float tensor of the expected shape (F32 or F64) as `f32`.
fn read_tensor(
    tensors: &HashMap<String, TensorView<'_>>,
    name: &str,
    shape: &[usize],
    path: &Path,
) -> Result<Vec<f32>> {
    let err = |reason: String| DataError::File {
        path: path.to_path_buf(),
        reason,
    };
    let t = tensors
        .get(name)
        .ok_or_else(|| err(format!("missing tensor `{name}`")))?;
    if t.shape() != shape {
        return Err(err(format!(
            "tensor `{name}` has shape {:?}, expected {shape:?}",
            t.shape()
        )));
    }
    match t.dtype() {
        Dtype::F32 => Ok(t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        Dtype::F64 => Ok(t
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect()),
        other => Err(err(format!(
            "tensor `{name}` has dtype {other:?}, expected F32 or F64"
        ))),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp: PathBuf = path.with_extension(format!(
        "{}.tmp-{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).map_err(|source| DataError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Reads hidden activations back (test and CLI helper).
pub fn hidden_to_vec<B: Backend>(hidden: Tensor<B, 2>) -> Result<Vec<f32>> {
    Ok(try_to_vec(hidden, "hidden activations")?)
}
