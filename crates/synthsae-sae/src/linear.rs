//! [`LinearCore`]: the weights of every linear-encoder architecture
//! (standard, TopK family, JumpReLU), and the input processing of spec
//! §10.1 that every architecture applies before encoding.

use burn::module::Param;
use burn::prelude::*;
use synthsae_host::inference::{host_path_ok, sparse_decode_host};
use synthsae_host::sparse_forward::{sparse_forward_host, HostSelect, LinearWeights};
use synthsae_host::Precision;

use crate::config::base::{NormalizeActivations, SaeBase};
use crate::error::Result;
use crate::io::{HostTensor, TensorFile};
use crate::normalize::{normalize_in, normalize_out, NormState};
use crate::ops::{map_param, param, row, row_norms};
use crate::sparse::SparseForward;

/// Encoder, decoder and their biases: the weights of every linear-encoder
/// architecture (standard, TopK family, JumpReLU).
#[derive(Module, Debug)]
pub struct LinearCore<B: Backend> {
    /// Encoder `W_enc`: `[D, S]`.
    pub w_enc: Param<Tensor<B, 2>>,
    /// Decoder `W_dec`: `[S, D]`.
    pub w_dec: Param<Tensor<B, 2>>,
    /// Encoder bias `b_enc`: `[S]`.
    pub b_enc: Param<Tensor<B, 1>>,
    /// Decoder bias `b_dec`: `[D]`.
    pub b_dec: Param<Tensor<B, 1>>,
}

impl<B: Backend> LinearCore<B> {
    /// Weights from a host decoder `[S, D]` (row-major): `W_enc = W_decᵀ`,
    /// zero biases (spec §10.1).
    pub fn from_decoder(w_dec: &[f32], d_in: usize, d_sae: usize, device: &B::Device) -> Self {
        let w_dec =
            Tensor::<B, 2>::from_data(TensorData::new(w_dec.to_vec(), [d_sae, d_in]), device);
        Self {
            w_enc: param(w_dec.clone().transpose()),
            w_dec: param(w_dec),
            b_enc: param(Tensor::zeros([d_sae], device)),
            b_dec: param(Tensor::zeros([d_in], device)),
        }
    }

    /// Reads `W_enc`, `W_dec`, `b_enc`, `b_dec` from a weights file.
    pub fn load(file: &TensorFile, d_in: usize, d_sae: usize, device: &B::Device) -> Result<Self> {
        Ok(Self {
            w_enc: param(file.tensor2(device, "W_enc", [d_in, d_sae])?),
            w_dec: param(file.tensor2(device, "W_dec", [d_sae, d_in])?),
            b_enc: param(file.tensor1(device, "b_enc", d_sae)?),
            b_dec: param(file.tensor1(device, "b_dec", d_in)?),
        })
    }

    /// The four tensors under sae-lens's names.
    pub fn tensors(&self) -> Vec<(String, HostTensor)> {
        vec![
            ("W_enc".into(), HostTensor::from_tensor(self.w_enc.val())),
            ("W_dec".into(), HostTensor::from_tensor(self.w_dec.val())),
            ("b_enc".into(), HostTensor::from_tensor(self.b_enc.val())),
            ("b_dec".into(), HostTensor::from_tensor(self.b_dec.val())),
        ]
    }

    /// Input processing of spec §10.1 on `[B, D]`: per-sample normalisation,
    /// then `− b_dec` if `apply_b_dec`.
    pub fn process_in(
        &self,
        x: Tensor<B, 2>,
        mode: NormalizeActivations,
        apply_b_dec: bool,
    ) -> (Tensor<B, 2>, NormState<B>) {
        process_in(x, mode, apply_b_dec, &self.b_dec)
    }

    /// Pre-activations `x' W_enc + b_enc`: `[B, D]` → `[B, S]`.
    pub fn pre(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.pre_at(x, Precision::F32)
    }

    /// [`LinearCore::pre`] with the product in `precision`.
    pub fn pre_at(&self, x: Tensor<B, 2>, precision: Precision) -> Tensor<B, 2> {
        precision.matmul(x, self.w_enc.val()) + row(self.b_enc.val())
    }

    /// `z W_dec + b_dec`: `[B, S]` → `[B, D]` (sparse `z` on CPU backends
    /// without gradients: gathered on the host, [`sparse_decode_host`]).
    pub fn decode_linear(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let w = self.w_dec.val();
        let lin = sparse_decode_host(&z, &w).unwrap_or_else(|| z.matmul(w));
        lin + row(self.b_dec.val())
    }

    /// [`LinearCore::decode_linear`] with the product in `precision` (a
    /// dense matmul at bf16, as sae-lens's autocast decode).
    pub fn decode_linear_at(&self, z: Tensor<B, 2>, precision: Precision) -> Tensor<B, 2> {
        match precision {
            Precision::F32 => self.decode_linear(z),
            Precision::Bf16 => precision.matmul(z, self.w_dec.val()) + row(self.b_dec.val()),
        }
    }

    /// [`crate::Sae::forward_sparse`] of a linear-encoder SAE whose latents
    /// `select` picks from the pre-activations (times the decoder norms with
    /// `rescale`): input processing, the host encode and sparse decode
    /// ([`sparse_forward_host`]), `+ b_dec`, and the undoing of the
    /// per-sample normalisation. `None` off host backends.
    pub(crate) fn forward_sparse(
        &self,
        x: Tensor<B, 2>,
        base: &SaeBase,
        select: HostSelect<'_>,
        rescale: bool,
    ) -> Option<SparseForward<B>> {
        let w_enc = self.w_enc.val();
        if !host_path_ok(&x) || !host_path_ok(&w_enc) {
            return None;
        }
        let (xp, st) = self.process_in(x, base.normalize_activations, base.apply_b_dec_to_input);
        let weights = LinearWeights {
            w_enc,
            b_enc: self.b_enc.val(),
            w_dec: self.w_dec.val(),
            norms: rescale.then(|| self.norms()),
        };
        let (latents, lin) = sparse_forward_host(weights, xp, select)?;
        let output = normalize_out(lin + row(self.b_dec.val()), &st);
        Some(SparseForward { latents, output })
    }

    /// Decoder row norms `[S]` (differentiable).
    pub fn norms(&self) -> Tensor<B, 1> {
        row_norms(self.w_dec.val())
    }

    /// `fold_W_dec_norm`: `n = max(‖W_dec_s‖, 1e-8)`, `W_dec_s /= n`,
    /// `W_enc[:, s] *= n`, `b_enc_s *= n`. Returns the norms `[S]`.
    pub fn fold_w_dec_norm(self) -> (Self, Tensor<B, 1>) {
        let n = row_norms(self.w_dec.val().detach()).clamp_min(1e-8);
        let nc = n.clone();
        let w_dec = map_param(self.w_dec, |w| w / nc.clone().unsqueeze_dim(1));
        let nc = n.clone();
        let w_enc = map_param(self.w_enc, |w| w * row(nc));
        let nc = n.clone();
        let b_enc = map_param(self.b_enc, |b| b * nc);
        (
            Self {
                w_enc,
                w_dec,
                b_enc,
                b_dec: self.b_dec,
            },
            n,
        )
    }

    /// Folds an input scaling factor `c`: `W_enc *= c`, `W_dec /= c`, `b_dec /= c`.
    pub fn fold_scaling(self, c: f64) -> Self {
        Self {
            w_enc: map_param(self.w_enc, |w| w.mul_scalar(c)),
            w_dec: map_param(self.w_dec, |w| w.div_scalar(c)),
            b_enc: self.b_enc,
            b_dec: map_param(self.b_dec, |b| b.div_scalar(c)),
        }
    }

    /// A copy with decoder norms folded the TopK way (`b_enc ⊙ n`, `W_dec / n`,
    /// `W_enc ⊙ n`, `n` clamped at 1e-8), without gradients: what sae-lens
    /// saves for inference when `rescale_acts_by_decoder_norm` is on.
    pub fn folded_copy(&self) -> Self {
        let (core, _) = self.clone().fold_w_dec_norm();
        core
    }
}

/// Input processing on `[B, D]` with an explicit `b_dec` `[D]`.
pub fn process_in<B: Backend>(
    x: Tensor<B, 2>,
    mode: NormalizeActivations,
    apply_b_dec: bool,
    b_dec: &Param<Tensor<B, 1>>,
) -> (Tensor<B, 2>, NormState<B>) {
    let (x, st) = normalize_in(x, mode);
    if apply_b_dec {
        (x - row(b_dec.val()), st)
    } else {
        (x, st)
    }
}
