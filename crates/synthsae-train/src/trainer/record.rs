//! The metrics record of a log step (sae-lens's wandb keys, in its order).

use serde_json::{Map, Value};

use super::scalars::StepScalars;
use super::step::StepPlan;

/// Where the run stands after the step, for the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct RecordCounts {
    /// Samples trained on, this step included.
    pub(super) n_training_samples: u64,
    /// Mean over latents of the steps since each last fired.
    pub(super) mean_passes_since_fired: f64,
    /// Latents dead after the step.
    pub(super) dead_features: usize,
}

/// Sets the record's position keys (`step`, `n_training_samples`).
pub(super) fn insert_position(record: &mut Map<String, Value>, step: u64, n_training_samples: u64) {
    record.insert("step".into(), step.into());
    record.insert("n_training_samples".into(), n_training_samples.into());
}

/// The record of log step `plan.step`: losses, metrics, sparsity and the
/// step's learning rate and coefficients, then the architecture's metrics.
pub(super) fn log_record(
    plan: &StepPlan,
    scalars: &StepScalars,
    arch_metrics: &[(String, f64)],
    counts: RecordCounts,
) -> Map<String, Value> {
    let mut record = Map::new();
    insert_position(&mut record, plan.step, counts.n_training_samples);
    record.insert(
        "losses/overall_loss".into(),
        (scalars.overall_loss as f64).into(),
    );
    for (name, v) in &scalars.terms {
        record.insert(format!("losses/{name}"), (*v as f64).into());
    }
    let ev = scalars
        .variance
        .map_or(0.0, |parts| parts.explained_variance());
    record.insert("metrics/explained_variance".into(), ev.into());
    record.insert("metrics/l0".into(), (scalars.batch_l0 as f64).into());
    record.insert(
        "metrics/grad_norm".into(),
        (scalars.grad_norm as f64).into(),
    );
    record.insert(
        "sparsity/mean_passes_since_fired".into(),
        counts.mean_passes_since_fired.into(),
    );
    record.insert("sparsity/dead_features".into(), counts.dead_features.into());
    record.insert("details/current_learning_rate".into(), plan.lr.into());
    for (name, v) in &plan.coefficients {
        record.insert(format!("details/{name}_coefficient"), (*v).into());
    }
    for (name, v) in arch_metrics {
        record.insert(format!("metrics/{name}"), (*v).into());
    }
    record
}
