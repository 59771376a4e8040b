//! One training step: input, dead-latent mask, projection, training forward
//! pass, firing statistics, backward pass and the Adam update, ending in
//! the step's one read-back ([`ScalarTensors::read_back`]).

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use synthsae_host::profile::{self, Phase};
use synthsae_sae::{Precision, TrainStepInput, TrainStepOutput, TrainingSae};

use super::scalars::{ScalarTensors, StepScalars};
use super::state::RunState;

/// What a step is told: its index, learning rate and coefficients, and
/// whether it reports the explained variance (a log step).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StepPlan {
    /// 0-based step.
    pub(super) step: u64,
    /// Learning rate of the step.
    pub(super) lr: f64,
    /// Coefficient values by name (after warm-up and L0 tuning).
    pub(super) coefficients: Vec<(String, f64)>,
    /// A latent is dead after more than this many steps without firing.
    pub(super) dead_after: f32,
    /// Whether the step's metrics are recorded (adds the explained
    /// variance to the read-back).
    pub(super) log: bool,
    /// The arithmetic of the SAE's products (`autocast_sae`).
    pub(super) precision: Precision,
}

/// What a step produced.
#[derive(Debug)]
pub(super) struct StepOutput<M> {
    /// The SAE after the update.
    pub(super) sae: M,
    /// The step's scalars, on the host.
    pub(super) scalars: StepScalars,
    /// The architecture's own metrics (`metrics/{name}`).
    pub(super) arch_metrics: Vec<(String, f64)>,
}

/// Trains `sae` one step on `x` (`[batch, d_in]`, already scaled), updating
/// the firing statistics, counters and optimizer in `state`.
pub(super) fn train_step<B: AutodiffBackend, M: TrainingSae<B>>(
    sae: M,
    state: &mut RunState<B>,
    x: Tensor<B, 2>,
    plan: &StepPlan,
) -> StepOutput<M> {
    let [rows, _] = x.dims();
    let step_span = profile::synced_span::<B>(Phase::Step, &x.device());
    let dead = state.n_since_fired.clone().greater_elem(plan.dead_after);
    let input = TrainStepInput {
        x,
        dead_mask: Some(Tensor::from_inner(dead)),
        coefficients: plan.coefficients.clone(),
        step: plan.step,
        precision: plan.precision,
    };
    let mut sae = sae.project();
    let out = sae.training_forward(&input);
    let arch_metrics = sae.after_forward(&out);

    let fired = fired_per_latent(&out, sae.d_sae(), &state.n_since_fired.device());
    state.count_firing(fired.clone(), rows);
    let batch_l0 = fired.sum().div_scalar(rows as f64);
    let variance = plan.log.then(|| variance_parts(&input, &out));

    let grads = out.loss.backward();
    let (sae, grad_norm) = state.adam.step(plan.lr, sae, grads);
    drop(step_span);
    let _read_back = profile::span(Phase::ReadBack);
    let scalars = ScalarTensors {
        overall_loss: out.loss.inner(),
        terms: out
            .losses
            .into_iter()
            .map(|(name, t)| (name, t.inner()))
            .collect(),
        grad_norm,
        batch_l0,
        variance,
    }
    .read_back();
    StepOutput {
        sae,
        scalars,
        arch_metrics,
    }
}

/// `[S]` rows of the batch in which each latent fired (no gradient): the
/// forward pass's host counts when it has them, else counted from the
/// latents.
fn fired_per_latent<B: AutodiffBackend>(
    out: &TrainStepOutput<B>,
    d_sae: usize,
    device: &burn::tensor::Device<B::InnerBackend>,
) -> Tensor<B::InnerBackend, 1> {
    match &out.firing {
        // Counts ≤ batch size < 2^24: exact in f32.
        Some(f) => Tensor::from_data(
            TensorData::new(
                f.counts.iter().map(|&n| n as f32).collect::<Vec<_>>(),
                [d_sae],
            ),
            device,
        ),
        None => out
            .feature_acts
            .to_dense()
            .inner()
            .not_equal_elem(0.0)
            .float()
            .sum_dim(0)
            .reshape([d_sae]),
    }
}

/// The explained-variance parts of the batch (`[1]` each, untracked): mean
/// squared reconstruction error and mean squared distance from the batch
/// mean, both summed over the input dimension.
fn variance_parts<B: AutodiffBackend>(
    input: &TrainStepInput<B>,
    out: &TrainStepOutput<B>,
) -> (Tensor<B::InnerBackend, 1>, Tensor<B::InnerBackend, 1>) {
    let x = input.x.clone().inner();
    let xh = out.sae_out.clone().inner();
    let err = (xh - x.clone()).powi_scalar(2).sum_dim(1).mean();
    let centred = x.clone() - x.mean_dim(0);
    let var = centred.powi_scalar(2).sum_dim(1).mean();
    (err.reshape([1]), var.reshape([1]))
}
