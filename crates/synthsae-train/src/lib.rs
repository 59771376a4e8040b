//! # synthsae-train
//!
//! Trains synthsae SAEs on activations drawn fresh from a synthetic model, as
//! sae-lens's `SAETrainer` / `train_toy_sae` / `SyntheticSAERunner` do
//! (spec §7, §8), with exact resume.
//!
//! * [`schedule`]: learning-rate schedules (§8.5);
//! * [`optim`]: Adam with global gradient-norm clipping and a saveable state;
//! * [`data`]: addressable, prefetched batches from the sparse sampler;
//! * [`tuner`]: the optional L0 auto-tuners (the published rate-damped one
//!   and a log-integral one);
//! * [`trainer`]: the training loop, statistics and checkpoints;
//! * [`checkpoint`]: checkpoint files, written atomically;
//! * [`recipe`]: the SynthSAEBench recipes and published rows;
//! * [`runner_config`], [`runner`]: sae-lens's `SyntheticSAERunnerConfig` and
//!   the runner that writes sae-lens's output layout.
//!
//! Shapes: input dimension `D`, latents `S`, batch `B`.

pub mod autocast;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod group;
pub mod optim;
pub mod recipe;
pub mod runner;
pub mod runner_config;
pub mod schedule;
pub mod trainer;
pub mod tuner;

pub use autocast::Autocast;
pub use config::TrainerConfig;
pub use data::{Batch, BatchSampler};
pub use error::{Result, TrainError};
pub use group::{run_group, run_group_in_order, GroupMember, GroupObserver};
pub use optim::{Adam, AdamSettings, AdamState};
pub use recipe::SynthSaeBenchRecipe;
pub use runner::{
    build_model, run, sampler_for, RunObserver, RunSummary, RunnerResult, Silent, StartedRun,
};
pub use runner_config::{LoggingConfig, ModelSpec, RunnerConfig};
pub use schedule::{LrSchedule, ScheduleKind};
pub use trainer::{CheckpointSae, Fitting, NoHooks, Progress, TrainOutcome, Trainer, TrainerHooks};
pub use tuner::{
    ControllerSettings, L0Tuner, L0TunerConfig, LogIntegralSettings, RateDampedSettings,
};
