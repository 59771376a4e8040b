//! `gated` (spec §10.7): a binary gate `1[x' W_enc + b_gate > 0]` times a
//! magnitude `relu(x' (W_enc ⊙ exp(r_mag)) + b_mag)`.

pub mod config;

pub use config::GatedConfig;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::relu;
use synthsae_host::Precision;

use crate::config::base::NormalizeActivations;
use crate::config::inference::SaeConfig;
use crate::config::training::{TrainingArch, TrainingSaeConfig};
use crate::error::Result;
use crate::io::{HostTensor, TensorFile};
use crate::linear::process_in;
use crate::normalize::{cached_state, normalize_out, NormCache, NormState};
use crate::ops::{map_param, param, row, row_norms, sum_sq_mean};
use crate::sae::{Sae, TrainStepInput, TrainStepOutput};

/// Weights of a gated SAE.
#[derive(Module, Debug)]
pub struct GatedWeights<B: Backend> {
    /// `W_enc`: `[D, S]`.
    pub w_enc: Param<Tensor<B, 2>>,
    /// `W_dec`: `[S, D]`.
    pub w_dec: Param<Tensor<B, 2>>,
    /// `b_dec`: `[D]`.
    pub b_dec: Param<Tensor<B, 1>>,
    /// `b_gate`: `[S]`.
    pub b_gate: Param<Tensor<B, 1>>,
    /// `r_mag`: `[S]`.
    pub r_mag: Param<Tensor<B, 1>>,
    /// `b_mag`: `[S]`.
    pub b_mag: Param<Tensor<B, 1>>,
}

impl<B: Backend> GatedWeights<B> {
    /// From a host decoder `[S, D]`: `W_enc = W_decᵀ`, zero biases and `r_mag`.
    pub fn from_decoder(w_dec: &[f32], d_in: usize, d_sae: usize, device: &B::Device) -> Self {
        let w = Tensor::<B, 2>::from_data(TensorData::new(w_dec.to_vec(), [d_sae, d_in]), device);
        Self {
            w_enc: param(w.clone().transpose()),
            w_dec: param(w),
            b_dec: param(Tensor::zeros([d_in], device)),
            b_gate: param(Tensor::zeros([d_sae], device)),
            r_mag: param(Tensor::zeros([d_sae], device)),
            b_mag: param(Tensor::zeros([d_sae], device)),
        }
    }

    /// Reads the six tensors.
    pub fn load(file: &TensorFile, d_in: usize, d_sae: usize, device: &B::Device) -> Result<Self> {
        Ok(Self {
            w_enc: param(file.tensor2(device, "W_enc", [d_in, d_sae])?),
            w_dec: param(file.tensor2(device, "W_dec", [d_sae, d_in])?),
            b_dec: param(file.tensor1(device, "b_dec", d_in)?),
            b_gate: param(file.tensor1(device, "b_gate", d_sae)?),
            r_mag: param(file.tensor1(device, "r_mag", d_sae)?),
            b_mag: param(file.tensor1(device, "b_mag", d_sae)?),
        })
    }

    /// The tensors under sae-lens's names.
    pub fn tensors(&self) -> Vec<(String, HostTensor)> {
        vec![
            ("W_enc".into(), HostTensor::from_tensor(self.w_enc.val())),
            ("W_dec".into(), HostTensor::from_tensor(self.w_dec.val())),
            ("b_dec".into(), HostTensor::from_tensor(self.b_dec.val())),
            ("b_gate".into(), HostTensor::from_tensor(self.b_gate.val())),
            ("r_mag".into(), HostTensor::from_tensor(self.r_mag.val())),
            ("b_mag".into(), HostTensor::from_tensor(self.b_mag.val())),
        ]
    }

    /// `(feature_acts, π_mag)` for processed inputs `[B, D]` → `[B, S]` each.
    pub fn encode_processed(&self, xp: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        self.encode_processed_at(xp, Precision::F32)
    }

    /// [`GatedWeights::encode_processed`] with the products in `precision`.
    pub fn encode_processed_at(
        &self,
        xp: Tensor<B, 2>,
        precision: Precision,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let w_enc = self.w_enc.val();
        let gate = (precision.matmul(xp.clone(), w_enc.clone()) + row(self.b_gate.val()))
            .detach()
            .greater_elem(0.0)
            .float();
        let w_mag = w_enc * row(self.r_mag.val().exp());
        let pi_mag = precision.matmul(xp, w_mag) + row(self.b_mag.val());
        (gate * relu(pi_mag.clone()), pi_mag)
    }

    /// `z W_dec + b_dec`: `[B, S]` → `[B, D]`.
    pub fn decode_linear(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        self.decode_linear_at(z, Precision::F32)
    }

    /// [`GatedWeights::decode_linear`] with the product in `precision`.
    pub fn decode_linear_at(&self, z: Tensor<B, 2>, precision: Precision) -> Tensor<B, 2> {
        precision.matmul(z, self.w_dec.val()) + row(self.b_dec.val())
    }

    fn process(
        &self,
        x: Tensor<B, 2>,
        mode: NormalizeActivations,
        apply: bool,
    ) -> (Tensor<B, 2>, NormState<B>) {
        process_in(x, mode, apply, &self.b_dec)
    }

    /// `fold_W_dec_norm`: also scales `b_gate` and `b_mag` by the norms.
    pub fn fold_w_dec_norm(self) -> Self {
        let n = row_norms(self.w_dec.val().detach()).clamp_min(1e-8);
        let m = n.clone();
        Self {
            w_dec: map_param(self.w_dec, |w| w / m.unsqueeze_dim(1)),
            w_enc: map_param(self.w_enc, |w| w * row(n.clone())),
            b_gate: map_param(self.b_gate, |b| b * n.clone()),
            b_mag: map_param(self.b_mag, |b| b * n.clone()),
            b_dec: self.b_dec,
            r_mag: self.r_mag,
        }
    }

    /// Folds an input scaling factor `c`.
    pub fn fold_scaling(self, c: f64) -> Self {
        Self {
            w_enc: map_param(self.w_enc, |w| w.mul_scalar(c)),
            w_dec: map_param(self.w_dec, |w| w.div_scalar(c)),
            b_dec: map_param(self.b_dec, |b| b.div_scalar(c)),
            ..self
        }
    }
}

/// Inference `gated` SAE.
#[derive(Module, Debug)]
pub struct GatedSae<B: Backend> {
    /// Weights.
    pub weights: GatedWeights<B>,
    /// Inference config.
    #[module(skip)]
    pub cfg: SaeConfig,
    #[module(skip)]
    pub(crate) cache: NormCache,
}

impl<B: Backend> GatedSae<B> {
    /// From weights and config.
    pub fn new(weights: GatedWeights<B>, cfg: SaeConfig) -> Self {
        Self {
            weights,
            cfg,
            cache: NormCache::default(),
        }
    }
}

impl<B: Backend> Sae<B> for GatedSae<B> {
    fn d_in(&self) -> usize {
        self.cfg.base.d_in
    }
    fn d_sae(&self) -> usize {
        self.cfg.base.d_sae
    }
    fn encode(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let b = &self.cfg.base;
        let (xp, st) = self
            .weights
            .process(x, b.normalize_activations, b.apply_b_dec_to_input);
        self.cache.store(st);
        self.weights.encode_processed(xp).0
    }
    fn decode(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let st = cached_state(&self.cache, self.cfg.base.normalize_activations);
        normalize_out(self.weights.decode_linear(z), &st)
    }
    fn decoder_weights(&self) -> Tensor<B, 2> {
        self.weights.w_dec.val()
    }
    fn encoder_weights(&self) -> Tensor<B, 2> {
        self.weights.w_enc.val()
    }
}

/// Training `gated` SAE.
#[derive(Module, Debug)]
pub struct GatedTrainingSae<B: Backend> {
    /// Weights.
    pub weights: GatedWeights<B>,
    /// Training config (architecture `gated`).
    #[module(skip)]
    pub cfg: TrainingSaeConfig,
}

impl<B: Backend> GatedTrainingSae<B> {
    fn arch(&self) -> GatedConfig {
        match &self.cfg.arch {
            TrainingArch::Gated(c) => c.clone(),
            _ => GatedConfig::default(),
        }
    }

    /// Training forward: `mse_loss`, `l1_loss = λ · mean_rows(Σ relu(π_gate') ‖W_dec‖)`
    /// and `auxiliary_reconstruction_loss = mean_rows(Σ (relu(π_gate') W_dec + b_dec − x)²)`,
    /// `π_gate'` computed from the raw input minus `b_dec`.
    pub fn forward_train(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        let c = self.arch();
        let b = &self.cfg.base;
        let w = &self.weights;
        let x = input.x.clone();
        let (xp, st) = w.process(x.clone(), b.normalize_activations, b.apply_b_dec_to_input);
        let p = input.precision;
        let (z, hidden_pre) = w.encode_processed_at(xp, p);
        let sae_out = normalize_out(w.decode_linear_at(z.clone(), p), &st);
        let mse = sum_sq_mean(sae_out.clone() - x.clone());
        let centered = if b.apply_b_dec_to_input {
            x.clone() - row(w.b_dec.val())
        } else {
            x.clone()
        };
        let pi_gate_act = relu(p.matmul(centered, w.w_enc.val()) + row(w.b_gate.val()));
        let lambda = input.coefficient("l1").unwrap_or(c.l1_coefficient);
        let l1 = (pi_gate_act.clone() * row(row_norms(w.w_dec.val())))
            .sum_dim(1)
            .mean()
            .mul_scalar(lambda);
        let aux = sum_sq_mean(w.decode_linear_at(pi_gate_act, p) - x);
        TrainStepOutput {
            sae_out,
            feature_acts: z.into(),
            hidden_pre,
            loss: mse.clone() + l1.clone() + aux.clone(),
            losses: vec![
                ("mse_loss".into(), mse),
                ("l1_loss".into(), l1),
                ("auxiliary_reconstruction_loss".into(), aux),
            ],
            firing: None,
        }
    }

    /// Inference form (same weights).
    pub fn to_inference(&self) -> GatedSae<B> {
        GatedSae::new(self.weights.clone(), self.cfg.inference_config())
    }
}
