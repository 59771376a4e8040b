//! The two interfaces every architecture implements.
//!
//! * [`Sae`]: the inference view (encode, decode, weights). The evaluator and the
//!   plots use only this.
//! * [`TrainingSae`]: the training view (a forward pass that returns named loss
//!   terms, the coefficients the trainer warms up, per-step state such as
//!   BatchTopK's threshold EMA, and folding of an activation scaling factor).
//!   The trainer uses only this.
//!
//! Conventions shared by all implementations:
//! * inputs are `[batch, d_in]`, latents `[batch, d_sae]`, decoder rows
//!   `[d_sae, d_in]` (sae-lens's `W_dec`), encoder `[d_in, d_sae]` (`W_enc`);
//! * a latent is *active* when it is `≠ 0` (AbsTopK latents may be negative);
//! * loss terms are scalars of shape `[1]`, named as in sae-lens
//!   (`mse_loss`, `l1_loss`, `l0_loss`, `auxiliary_reconstruction_loss`,
//!   `pre_act_loss`, `inner_mse_loss_<width>`).

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// Firing summary of one batch's latents (computed by the host paths).
pub use synthsae_host::Firing;
use synthsae_host::{Csr, Precision};

use crate::sparse::SparseForward;

/// An SAE in inference form: what an evaluator needs, nothing more.
pub trait Sae<B: Backend> {
    /// Input dimension `D`.
    fn d_in(&self) -> usize;

    /// Number of latents `S`.
    fn d_sae(&self) -> usize;

    /// Latent activations for a batch of inputs: `[batch, d_in]` →
    /// `[batch, d_sae]`. Applies the configured input processing
    /// (per-sample normalisation, `b_dec` subtraction).
    fn encode(&self, x: Tensor<B, 2>) -> Tensor<B, 2>;

    /// Reconstruction from latents: `[batch, d_sae]` → `[batch, d_in]`,
    /// including `b_dec` and undoing any per-sample normalisation applied by
    /// the matching [`Sae::encode`] call.
    ///
    /// Per-sample normalisations (`constant_norm_rescale`, `layer_norm`) need
    /// the input's norm/mean; implementations that support them take it from
    /// the last `encode` call on the same batch, as sae-lens does.
    fn decode(&self, z: Tensor<B, 2>) -> Tensor<B, 2>;

    /// `encode` followed by `decode`: `[batch, d_in]` → `[batch, d_in]`.
    fn reconstruct(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let z = self.encode(x);
        self.decode(z)
    }

    /// `encode` and `decode` of one batch with the latents returned sparse
    /// ([`crate::Csr`]), for implementations that can skip the
    /// dense `[batch, d_sae]` latents: the linear-encoder architectures
    /// (standard, TopK family, JumpReLU) on the CPU backends, when at most
    /// 5 % of the latents are active. The latents equal `encode`'s; the
    /// reconstruction equals `decode`'s (bit for bit where `decode` gathers
    /// sparsely too, to rounding where it uses a dense matmul). `None` (the
    /// default) when no such path applies; callers then use `encode` and
    /// `decode`.
    fn forward_sparse(&self, x: Tensor<B, 2>) -> Option<SparseForward<B>> {
        let _ = x;
        None
    }

    /// Raw decoder rows, sae-lens's `W_dec`: `[d_sae, d_in]`. Used for MCC,
    /// uniqueness and classification matching (norms and signs do not
    /// matter to those).
    fn decoder_weights(&self) -> Tensor<B, 2>;

    /// Encoder matrix, sae-lens's `W_enc`: `[d_in, d_sae]` (for tied
    /// architectures, the transposed decoder).
    fn encoder_weights(&self) -> Tensor<B, 2>;
}

/// A coefficient the trainer warms up linearly (sae-lens `get_coefficients`):
/// at training step `t` its value is `value · min(t, warm_up_steps) /
/// warm_up_steps`, or `value` when `warm_up_steps == 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Coefficient {
    /// Name, e.g. `"l1"` or `"l0"`; logged as `details/<name>_coefficient`.
    pub name: String,
    /// Final value.
    pub value: f64,
    /// Linear warm-up length in steps (0 = none).
    pub warm_up_steps: u64,
}

impl Coefficient {
    /// Value at 0-based training step `step` (spec §8.6).
    pub fn at_step(&self, step: u64) -> f64 {
        if self.warm_up_steps == 0 {
            self.value
        } else {
            self.value * step.min(self.warm_up_steps) as f64 / self.warm_up_steps as f64
        }
    }
}

/// What the trainer passes to one training forward pass.
#[derive(Debug, Clone)]
pub struct TrainStepInput<B: Backend> {
    /// The SAE input after the trainer's scaler: `[batch, d_in]`.
    pub x: Tensor<B, 2>,
    /// Latents that have not fired for more than `dead_feature_window` steps:
    /// `[d_sae]`, `true` = dead. `None` when the trainer tracks no dead latents.
    pub dead_mask: Option<Tensor<B, 1, Bool>>,
    /// Current coefficient values by name (after warm-up).
    pub coefficients: Vec<(String, f64)>,
    /// 0-based training step.
    pub step: u64,
    /// The arithmetic of the forward pass's matrix products (bf16 under
    /// sae-lens's `autocast_sae`); float32 everywhere else.
    pub precision: Precision,
}

impl<B: Backend> TrainStepInput<B> {
    /// Current value of the named coefficient, `None` if absent.
    pub fn coefficient(&self, name: &str) -> Option<f64> {
        self.coefficients
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// A training step's latent activations, `[batch, d_sae]`: a dense tensor,
/// or only the non-zero entries (the fused CPU path selects them on the
/// host), made dense when asked for.
#[derive(Debug, Clone)]
pub enum StepLatents<B: Backend> {
    /// Dense latents (tracked when the forward pass tracks them).
    Dense(Tensor<B, 2>),
    /// The non-zero entries (untracked) and the device of the dense form.
    Sparse(std::sync::Arc<Csr>, B::Device),
}

impl<B: Backend> StepLatents<B> {
    /// The latents as a dense tensor `[batch, d_sae]`.
    pub fn to_dense(&self) -> Tensor<B, 2> {
        match self {
            Self::Dense(t) => t.clone(),
            Self::Sparse(l, device) => l.to_tensor::<B>(device),
        }
    }
}

impl<B: Backend> From<Tensor<B, 2>> for StepLatents<B> {
    fn from(t: Tensor<B, 2>) -> Self {
        Self::Dense(t)
    }
}

/// What one training forward pass returns.
#[derive(Debug, Clone)]
pub struct TrainStepOutput<B: Backend> {
    /// Reconstruction: `[batch, d_in]`.
    pub sae_out: Tensor<B, 2>,
    /// Latent activations: `[batch, d_sae]`.
    pub feature_acts: StepLatents<B>,
    /// Pre-activations as sae-lens returns them (`hidden_pre`): `[batch, d_sae]`.
    pub hidden_pre: Tensor<B, 2>,
    /// Sum of all loss terms: `[1]`.
    pub loss: Tensor<B, 1>,
    /// Every loss term by its sae-lens name, each `[1]`.
    pub losses: Vec<(String, Tensor<B, 1>)>,
    /// Host summary of `feature_acts` when the forward pass has it for free
    /// (the fused CPU path selects on the host); `None` otherwise, and then
    /// consumers compute the same numbers from `feature_acts`.
    pub firing: Option<Firing>,
}

/// An SAE in training form.
///
/// The trainer owns the value and threads it through Burn's optimizer
/// (`optim.step(lr, sae, grads)` consumes and returns it), so per-step state
/// that is not a parameter (BatchTopK's threshold) lives in the module as a
/// non-trainable field and is updated by [`TrainingSae::after_forward`].
pub trait TrainingSae<B: AutodiffBackend>: AutodiffModule<B> + Clone + Send + Sized {
    /// The inference form this SAE exports to (BatchTopK → JumpReLU, ...).
    type Inference: Sae<B::InnerBackend>;

    /// Input dimension `D`.
    fn d_in(&self) -> usize;

    /// Number of latents `S`.
    fn d_sae(&self) -> usize;

    /// sae-lens training architecture name (`"standard"`, `"batchtopk"`, ...).
    fn architecture(&self) -> &'static str;

    /// Coefficients with warm-up (spec §8.6); empty for architectures without.
    fn coefficients(&self) -> Vec<Coefficient>;

    /// Projection applied to the parameters before each training forward pass
    /// (JumpReLU: `θ ← max(θ, 0)`). Default: none.
    fn project(self) -> Self {
        self
    }

    /// Training forward pass: reconstruction, latents and named loss terms.
    fn training_forward(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B>;

    /// Updates non-parameter state after a training forward pass (BatchTopK:
    /// threshold EMA from the smallest positive activation). Returns
    /// architecture metrics to log (e.g. `("topk_threshold", θ)`). Default:
    /// nothing.
    fn after_forward(&mut self, _output: &TrainStepOutput<B>) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// Folds an input scaling factor `c` into the weights (`W_enc *= c`,
    /// `W_dec /= c`, `b_dec /= c`, plus architecture extras) and sets
    /// `normalize_activations` to `"none"`.
    fn fold_activation_norm_scaling_factor(self, c: f64) -> Self;

    /// The inference form of this SAE (with the folds sae-lens applies when
    /// saving it for inference), without gradients.
    fn to_inference(&self) -> Self::Inference;
}
