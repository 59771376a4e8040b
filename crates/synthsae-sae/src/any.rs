//! [`AnySae`] and [`AnyTrainingSae`]: every architecture behind one type,
//! plus construction from configs and files.

use std::path::Path;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde_json::{Map, Value};

use crate::arch::batchtopk::BatchTopKTrainingSae;
use crate::arch::gated::{GatedSae, GatedTrainingSae, GatedWeights};
use crate::arch::jumprelu::{JumpReluSae, JumpReluTrainingSae};
use crate::arch::matching_pursuit::{MatchingPursuitSae, MatchingPursuitTrainingSae};
use crate::arch::standard::{StandardSae, StandardTrainingSae};
use crate::arch::topk::{TopKSae, TopKTrainingSae};
use crate::config::{
    InferenceArch, NormalizeActivations, SaeConfig, TrainingArch, TrainingSaeConfig,
};
use crate::error::{Result, SaeError};
use crate::init::init_decoder;
use crate::io::{
    create_dir, read_json, write_json, write_tensors, HostTensor, TensorFile, SAE_CFG_FILENAME,
    SAE_WEIGHTS_FILENAME,
};
use crate::linear::LinearCore;
use crate::ops::{map_param, param};
use crate::sae::{Coefficient, Sae, TrainStepInput, TrainStepOutput, TrainingSae};

/// Any inference SAE.
#[derive(Module, Debug)]
pub enum AnySae<B: Backend> {
    /// `standard`.
    Standard(StandardSae<B>),
    /// `topk` and `abstopk`.
    TopK(TopKSae<B>),
    /// `jumprelu` (also BatchTopK exports).
    JumpRelu(JumpReluSae<B>),
    /// `gated`.
    Gated(GatedSae<B>),
    /// `matching_pursuit`.
    MatchingPursuit(MatchingPursuitSae<B>),
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            AnySae::Standard($s) => $e,
            AnySae::TopK($s) => $e,
            AnySae::JumpRelu($s) => $e,
            AnySae::Gated($s) => $e,
            AnySae::MatchingPursuit($s) => $e,
        }
    };
}

impl<B: Backend> Sae<B> for AnySae<B> {
    fn d_in(&self) -> usize {
        each!(self, s => s.d_in())
    }
    fn d_sae(&self) -> usize {
        each!(self, s => s.d_sae())
    }
    fn encode(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        each!(self, s => s.encode(x))
    }
    fn decode(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        each!(self, s => s.decode(z))
    }
    fn forward_sparse(&self, x: Tensor<B, 2>) -> Option<crate::SparseForward<B>> {
        each!(self, s => s.forward_sparse(x))
    }
    fn decoder_weights(&self) -> Tensor<B, 2> {
        each!(self, s => s.decoder_weights())
    }
    fn encoder_weights(&self) -> Tensor<B, 2> {
        each!(self, s => s.encoder_weights())
    }
}

impl<B: Backend> AnySae<B> {
    /// The inference config.
    pub fn config(&self) -> &SaeConfig {
        each!(self, s => &s.cfg)
    }

    /// The inference config, mutable (metadata).
    pub fn config_mut(&mut self) -> &mut SaeConfig {
        each!(self, s => &mut s.cfg)
    }

    /// sae-lens inference architecture name.
    pub fn architecture(&self) -> &'static str {
        self.config().arch.name()
    }

    /// Builds an inference SAE from a config and a weights file.
    pub fn from_file(cfg: SaeConfig, file: &TensorFile, device: &B::Device) -> Result<Self> {
        let (d_in, d_sae) = (cfg.base.d_in, cfg.base.d_sae);
        Ok(match &cfg.arch {
            InferenceArch::Standard => Self::Standard(StandardSae::new(
                LinearCore::load(file, d_in, d_sae, device)?,
                cfg,
            )),
            InferenceArch::TopK { .. } | InferenceArch::AbsTopK { .. } => Self::TopK(TopKSae::new(
                LinearCore::load(file, d_in, d_sae, device)?,
                cfg,
            )),
            InferenceArch::JumpRelu => {
                let core = LinearCore::load(file, d_in, d_sae, device)?;
                let threshold = load_threshold(file, d_sae, device)?;
                Self::JumpRelu(JumpReluSae::new(core, param(threshold), cfg))
            }
            InferenceArch::Gated => Self::Gated(GatedSae::new(
                GatedWeights::load(file, d_in, d_sae, device)?,
                cfg,
            )),
            InferenceArch::MatchingPursuit(_) => Self::MatchingPursuit(MatchingPursuitSae::new(
                param(file.tensor2(device, "W_dec", [d_sae, d_in])?),
                param(file.tensor1(device, "b_dec", d_in)?),
                cfg,
            )),
        })
    }

    /// Loads `cfg.json` + `sae_weights.safetensors` from `dir`, in inference
    /// form or in training-checkpoint form (training-only architectures are
    /// exported to their inference form as sae-lens would save them).
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        let json = read_json(&dir.join(SAE_CFG_FILENAME))?;
        let arch = json
            .get("architecture")
            .and_then(Value::as_str)
            .unwrap_or("standard");
        if matches!(arch, "batchtopk" | "matryoshka_batchtopk") {
            return Ok(AnyTrainingSae::<B>::load_checkpoint(dir, device)?.to_inference_sae());
        }
        let cfg =
            SaeConfig::from_json(&json).map_err(|e| with_path(e, &dir.join(SAE_CFG_FILENAME)))?;
        let file = TensorFile::read(&dir.join(SAE_WEIGHTS_FILENAME))?;
        Self::from_file(cfg, &file, device)
    }

    /// The tensors of the weights file, by sae-lens name.
    pub fn tensors(&self) -> Vec<(String, HostTensor)> {
        match self {
            Self::Standard(s) => s.core.tensors(),
            Self::TopK(s) => s.core.tensors(),
            Self::JumpRelu(s) => {
                let mut t = s.core.tensors();
                t.push((
                    "threshold".into(),
                    HostTensor::from_tensor(s.threshold.val()),
                ));
                t
            }
            Self::Gated(s) => s.weights.tensors(),
            Self::MatchingPursuit(s) => vec![
                ("W_dec".into(), HostTensor::from_tensor(s.w_dec.val())),
                ("b_dec".into(), HostTensor::from_tensor(s.b_dec.val())),
            ],
        }
    }

    /// Saves in sae-lens's inference layout (atomic writes).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        create_dir(dir)?;
        write_tensors(&dir.join(SAE_WEIGHTS_FILENAME), &self.tensors())?;
        write_json(&dir.join(SAE_CFG_FILENAME), &self.config().to_json())
    }

    /// `fold_W_dec_norm`: unit-norm decoder rows, encoder side scaled to
    /// match (JumpReLU thresholds and gated biases too). Unsupported for
    /// matching pursuit and for TopK without decoder-norm rescaling.
    pub fn fold_w_dec_norm(self) -> Result<Self> {
        Ok(match self {
            Self::Standard(s) => {
                Self::Standard(StandardSae::new(s.core.fold_w_dec_norm().0, s.cfg))
            }
            Self::TopK(s) => {
                let rescale = matches!(
                    s.cfg.arch,
                    InferenceArch::TopK {
                        rescale_acts_by_decoder_norm: true,
                        ..
                    } | InferenceArch::AbsTopK {
                        rescale_acts_by_decoder_norm: true,
                        ..
                    }
                );
                if !rescale {
                    return Err(unsupported(
                        s.cfg.arch.name(),
                        "fold_W_dec_norm without rescale_acts_by_decoder_norm",
                    ));
                }
                Self::TopK(TopKSae::new(s.core.fold_w_dec_norm().0, s.cfg))
            }
            Self::JumpRelu(s) => {
                let (core, n) = s.core.fold_w_dec_norm();
                Self::JumpRelu(JumpReluSae::new(
                    core,
                    map_param(s.threshold, |t| t * n),
                    s.cfg,
                ))
            }
            Self::Gated(s) => Self::Gated(GatedSae::new(s.weights.fold_w_dec_norm(), s.cfg)),
            Self::MatchingPursuit(_) => {
                return Err(unsupported("matching_pursuit", "fold_W_dec_norm"))
            }
        })
    }
}

fn load_threshold<B: Backend>(
    file: &TensorFile,
    d_sae: usize,
    device: &B::Device,
) -> Result<Tensor<B, 1>> {
    if !file.contains("threshold") && file.contains("log_threshold") {
        return Ok(file.tensor1::<B>(device, "log_threshold", d_sae)?.exp());
    }
    file.tensor1(device, "threshold", d_sae)
}

fn unsupported(arch: &str, op: &str) -> SaeError {
    SaeError::Unsupported {
        architecture: arch.into(),
        operation: op.into(),
    }
}

fn with_path(e: SaeError, path: &Path) -> SaeError {
    match e {
        SaeError::InvalidConfig { field, reason } => SaeError::File {
            path: path.to_path_buf(),
            reason: format!("invalid `{field}`: {reason}"),
        },
        other => other,
    }
}

/// Any training SAE.
#[derive(Module, Debug)]
pub enum AnyTrainingSae<B: Backend> {
    /// `standard`.
    Standard(StandardTrainingSae<B>),
    /// `topk` and `abstopk`.
    TopK(TopKTrainingSae<B>),
    /// `batchtopk` and `matryoshka_batchtopk`.
    BatchTopK(BatchTopKTrainingSae<B>),
    /// `jumprelu`.
    JumpRelu(JumpReluTrainingSae<B>),
    /// `gated`.
    Gated(GatedTrainingSae<B>),
    /// `matching_pursuit`.
    MatchingPursuit(MatchingPursuitTrainingSae<B>),
}

macro_rules! each_t {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            AnyTrainingSae::Standard($s) => $e,
            AnyTrainingSae::TopK($s) => $e,
            AnyTrainingSae::BatchTopK($s) => $e,
            AnyTrainingSae::JumpRelu($s) => $e,
            AnyTrainingSae::Gated($s) => $e,
            AnyTrainingSae::MatchingPursuit($s) => $e,
        }
    };
}

impl TrainingSaeConfig {
    /// A freshly initialised training SAE (spec §10.1), weights drawn from a
    /// ChaCha8 stream seeded with `seed`.
    pub fn init<B: Backend>(&self, device: &B::Device, seed: u64) -> Result<AnyTrainingSae<B>> {
        let (d_in, d_sae) = (self.d_in(), self.d_sae());
        let w_dec = init_decoder(d_in, d_sae, self.decoder_init_norm, seed);
        let cfg = self.clone();
        let core = || LinearCore::from_decoder(&w_dec, d_in, d_sae, device);
        Ok(match &self.arch {
            TrainingArch::Standard(_) => {
                AnyTrainingSae::Standard(StandardTrainingSae { core: core(), cfg })
            }
            TrainingArch::TopK(_) | TrainingArch::AbsTopK(_) => {
                AnyTrainingSae::TopK(TopKTrainingSae { core: core(), cfg })
            }
            TrainingArch::BatchTopK(_) | TrainingArch::MatryoshkaBatchTopK(_) => {
                AnyTrainingSae::BatchTopK(BatchTopKTrainingSae {
                    core: core(),
                    topk_threshold: 0.0,
                    cfg,
                })
            }
            TrainingArch::JumpRelu(c) => AnyTrainingSae::JumpRelu(JumpReluTrainingSae {
                core: core(),
                threshold: param(Tensor::full(
                    [d_sae],
                    c.jumprelu_init_threshold as f32,
                    device,
                )),
                cfg,
            }),
            TrainingArch::Gated(_) => AnyTrainingSae::Gated(GatedTrainingSae {
                weights: GatedWeights::from_decoder(&w_dec, d_in, d_sae, device),
                cfg,
            }),
            TrainingArch::MatchingPursuit(_) => {
                let w = Tensor::<B, 2>::from_data(
                    TensorData::new(w_dec.clone(), [d_sae, d_in]),
                    device,
                );
                AnyTrainingSae::MatchingPursuit(MatchingPursuitTrainingSae {
                    w_dec: param(w),
                    b_dec: param(Tensor::zeros([d_in], device)),
                    cfg,
                })
            }
        })
    }
}

impl<B: Backend> AnyTrainingSae<B> {
    /// The training config.
    pub fn config(&self) -> &TrainingSaeConfig {
        each_t!(self, s => &s.cfg)
    }

    /// The training config, mutable.
    pub fn config_mut(&mut self) -> &mut TrainingSaeConfig {
        each_t!(self, s => &mut s.cfg)
    }

    /// The config's metadata (the trainer sets `l0`, `num_dead_features`).
    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        self.config_mut().metadata_mut()
    }

    /// Training forward pass on any backend (see [`TrainingSae::training_forward`]).
    pub fn forward_train(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        each_t!(self, s => s.forward_train(input))
    }

    /// Per-step state update (see [`TrainingSae::after_forward`]).
    pub fn update_state(&mut self, output: &TrainStepOutput<B>) -> Vec<(String, f64)> {
        match self {
            Self::BatchTopK(s) => match &output.firing {
                Some(f) => s.update_threshold_with(f.min_positive),
                None => s.update_threshold(&output.feature_acts.to_dense()),
            },
            _ => Vec::new(),
        }
    }

    /// BatchTopK's threshold EMA, `None` for other architectures.
    pub fn topk_threshold(&self) -> Option<f64> {
        match self {
            Self::BatchTopK(s) => Some(s.topk_threshold),
            _ => None,
        }
    }

    /// The inference form on the same backend (with sae-lens's export folds).
    pub fn to_inference_sae(&self) -> AnySae<B> {
        match self {
            Self::Standard(s) => AnySae::Standard(s.to_inference()),
            Self::TopK(s) => AnySae::TopK(s.to_inference()),
            Self::BatchTopK(s) => AnySae::JumpRelu(s.to_inference()),
            Self::JumpRelu(s) => AnySae::JumpRelu(s.to_inference()),
            Self::Gated(s) => AnySae::Gated(s.to_inference()),
            Self::MatchingPursuit(s) => AnySae::MatchingPursuit(s.to_inference()),
        }
    }

    /// Folds an input scaling factor `c` (spec §10.1; BatchTopK also divides
    /// its threshold when rescaling, matching pursuit its residual threshold)
    /// and sets `normalize_activations = "none"`.
    pub fn fold_scaling_factor(self, c: f64) -> Self {
        let mut out = match self {
            Self::Standard(s) => Self::Standard(StandardTrainingSae {
                core: s.core.fold_scaling(c),
                cfg: s.cfg,
            }),
            Self::TopK(s) => Self::TopK(TopKTrainingSae {
                core: s.core.fold_scaling(c),
                cfg: s.cfg,
            }),
            Self::BatchTopK(s) => {
                let rescale = s.arch().0.rescale_acts_by_decoder_norm;
                let topk_threshold = if rescale {
                    s.topk_threshold / c
                } else {
                    s.topk_threshold
                };
                Self::BatchTopK(BatchTopKTrainingSae {
                    core: s.core.fold_scaling(c),
                    topk_threshold,
                    cfg: s.cfg,
                })
            }
            Self::JumpRelu(s) => Self::JumpRelu(JumpReluTrainingSae {
                core: s.core.fold_scaling(c),
                threshold: s.threshold,
                cfg: s.cfg,
            }),
            Self::Gated(s) => Self::Gated(GatedTrainingSae {
                weights: s.weights.fold_scaling(c),
                cfg: s.cfg,
            }),
            Self::MatchingPursuit(mut s) => {
                if let TrainingArch::MatchingPursuit(m) = &mut s.cfg.arch {
                    m.residual_threshold /= c;
                }
                Self::MatchingPursuit(MatchingPursuitTrainingSae {
                    w_dec: map_param(s.w_dec, |w| w.div_scalar(c)),
                    b_dec: map_param(s.b_dec, |b| b.div_scalar(c)),
                    cfg: s.cfg,
                })
            }
        };
        out.config_mut().base.normalize_activations = NormalizeActivations::None;
        out
    }

    /// The full training state by sae-lens tensor name (BatchTopK adds the
    /// float64 scalar `topk_threshold`, JumpReLU its `threshold`).
    pub fn checkpoint_tensors(&self) -> Vec<(String, HostTensor)> {
        match self {
            Self::Standard(s) => s.core.tensors(),
            Self::TopK(s) => s.core.tensors(),
            Self::BatchTopK(s) => {
                let mut t = s.core.tensors();
                t.push((
                    "topk_threshold".into(),
                    HostTensor::f64_scalar(s.topk_threshold),
                ));
                t
            }
            Self::JumpRelu(s) => {
                let mut t = s.core.tensors();
                t.push((
                    "threshold".into(),
                    HostTensor::from_tensor(s.threshold.val()),
                ));
                t
            }
            Self::Gated(s) => s.weights.tensors(),
            Self::MatchingPursuit(s) => vec![
                ("W_dec".into(), HostTensor::from_tensor(s.w_dec.val())),
                ("b_dec".into(), HostTensor::from_tensor(s.b_dec.val())),
            ],
        }
    }

    /// Saves a training checkpoint: training `cfg.json` + every tensor of the
    /// training state (bit-exact on reload).
    pub fn save_checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        create_dir(dir)?;
        write_tensors(&dir.join(SAE_WEIGHTS_FILENAME), &self.checkpoint_tensors())?;
        write_json(&dir.join(SAE_CFG_FILENAME), &self.config().to_json())
    }

    /// Saves the inference form exactly as sae-lens's `save_inference_model`.
    pub fn save_inference(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.to_inference_sae().save(dir)
    }

    /// Loads a training checkpoint (or an inference directory whose
    /// architecture is also a training architecture: `standard`, `topk`,
    /// `abstopk`, `jumprelu`, `gated`, `matching_pursuit`; training-only
    /// fields then take sae-lens's defaults).
    pub fn load_checkpoint(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join(SAE_CFG_FILENAME);
        let cfg = TrainingSaeConfig::from_json(&read_json(&cfg_path)?)
            .map_err(|e| with_path(e, &cfg_path))?;
        let file = TensorFile::read(&dir.join(SAE_WEIGHTS_FILENAME))?;
        Self::from_file(cfg, &file, device)
    }

    /// Builds a training SAE from a config and a weights file.
    pub fn from_file(
        cfg: TrainingSaeConfig,
        file: &TensorFile,
        device: &B::Device,
    ) -> Result<Self> {
        let (d_in, d_sae) = (cfg.d_in(), cfg.d_sae());
        let core = || LinearCore::load(file, d_in, d_sae, device);
        Ok(match &cfg.arch {
            TrainingArch::Standard(_) => Self::Standard(StandardTrainingSae { core: core()?, cfg }),
            TrainingArch::TopK(_) | TrainingArch::AbsTopK(_) => {
                Self::TopK(TopKTrainingSae { core: core()?, cfg })
            }
            TrainingArch::BatchTopK(_) | TrainingArch::MatryoshkaBatchTopK(_) => {
                let topk_threshold = file.scalar_f64("topk_threshold")?;
                Self::BatchTopK(BatchTopKTrainingSae {
                    core: core()?,
                    topk_threshold,
                    cfg,
                })
            }
            TrainingArch::JumpRelu(_) => Self::JumpRelu(JumpReluTrainingSae {
                core: core()?,
                threshold: param(load_threshold(file, d_sae, device)?),
                cfg,
            }),
            TrainingArch::Gated(_) => Self::Gated(GatedTrainingSae {
                weights: GatedWeights::load(file, d_in, d_sae, device)?,
                cfg,
            }),
            TrainingArch::MatchingPursuit(_) => Self::MatchingPursuit(MatchingPursuitTrainingSae {
                w_dec: param(file.tensor2(device, "W_dec", [d_sae, d_in])?),
                b_dec: param(file.tensor1(device, "b_dec", d_in)?),
                cfg,
            }),
        })
    }

    /// `fold_W_dec_norm` on the training form (see [`AnySae::fold_w_dec_norm`]).
    pub fn fold_w_dec_norm(self) -> Result<Self> {
        Ok(match self {
            Self::Standard(s) => Self::Standard(StandardTrainingSae {
                core: s.core.fold_w_dec_norm().0,
                cfg: s.cfg,
            }),
            Self::TopK(s) => match &s.cfg.arch {
                TrainingArch::TopK(c) | TrainingArch::AbsTopK(c)
                    if c.rescale_acts_by_decoder_norm =>
                {
                    Self::TopK(TopKTrainingSae {
                        core: s.core.fold_w_dec_norm().0,
                        cfg: s.cfg,
                    })
                }
                _ => {
                    return Err(unsupported(
                        s.cfg.architecture(),
                        "fold_W_dec_norm without rescale_acts_by_decoder_norm",
                    ))
                }
            },
            Self::BatchTopK(s) => {
                if !s.arch().0.rescale_acts_by_decoder_norm {
                    return Err(unsupported(
                        s.cfg.architecture(),
                        "fold_W_dec_norm without rescale_acts_by_decoder_norm",
                    ));
                }
                Self::BatchTopK(BatchTopKTrainingSae {
                    core: s.core.fold_w_dec_norm().0,
                    ..s
                })
            }
            Self::JumpRelu(s) => {
                let (core, n) = s.core.fold_w_dec_norm();
                Self::JumpRelu(JumpReluTrainingSae {
                    core,
                    threshold: map_param(s.threshold, |t| t * n),
                    cfg: s.cfg,
                })
            }
            Self::Gated(s) => Self::Gated(GatedTrainingSae {
                weights: s.weights.fold_w_dec_norm(),
                cfg: s.cfg,
            }),
            Self::MatchingPursuit(_) => {
                return Err(unsupported("matching_pursuit", "fold_W_dec_norm"))
            }
        })
    }
}

impl<B: AutodiffBackend> TrainingSae<B> for AnyTrainingSae<B> {
    type Inference = AnySae<B::InnerBackend>;

    fn d_in(&self) -> usize {
        self.config().d_in()
    }

    fn d_sae(&self) -> usize {
        self.config().d_sae()
    }

    fn architecture(&self) -> &'static str {
        self.config().architecture()
    }

    fn coefficients(&self) -> Vec<Coefficient> {
        let coef = |name: &str, value: f64, warm_up_steps: u64| {
            vec![Coefficient {
                name: name.into(),
                value,
                warm_up_steps,
            }]
        };
        match &self.config().arch {
            TrainingArch::Standard(c) => coef("l1", c.l1_coefficient, c.l1_warm_up_steps),
            TrainingArch::Gated(c) => coef("l1", c.l1_coefficient, c.l1_warm_up_steps),
            TrainingArch::JumpRelu(c) => coef("l0", c.l0_coefficient, c.l0_warm_up_steps),
            _ => Vec::new(),
        }
    }

    fn project(self) -> Self {
        match self {
            Self::JumpRelu(s) => Self::JumpRelu(s.project()),
            other => other,
        }
    }

    fn training_forward(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        self.forward_train(input)
    }

    fn after_forward(&mut self, output: &TrainStepOutput<B>) -> Vec<(String, f64)> {
        self.update_state(output)
    }

    fn fold_activation_norm_scaling_factor(self, c: f64) -> Self {
        self.fold_scaling_factor(c)
    }

    fn to_inference(&self) -> Self::Inference {
        self.valid().to_inference_sae()
    }
}
