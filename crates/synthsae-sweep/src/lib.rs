//! # synthsae-sweep
//!
//! Sweeps: many SAEs over a grid of settings, trained so that runs sharing
//! a sampled stream share it, in a folder that survives `kill -9`, locally or
//! as a Slurm job array, with the benchmark's tables and figures.
//!
//! * [`spec`]: the sweep spec (a base runner config or recipe, axes over key
//!   paths, explicit runs) and its expansion into named runs and groups;
//! * [`presets`]: the published SynthSAEBench sweeps as specs;
//! * [`folder`]: the sweep folder (expanded spec, outputs, statuses, locks);
//! * [`execute`]: training a group, or every group `jobs` at a time;
//! * [`slurm`]: the sbatch job array and its submission;
//! * [`report`]: mean ± std over seeds, markdown / CSV / JSON and plots;
//! * [`keypath`]: dotted key paths into JSON.

pub mod error;
pub mod execute;
pub mod folder;
pub mod keypath;
pub mod presets;
pub mod report;
pub mod slurm;
pub mod spec;

pub use error::{Result, SweepError};
pub use execute::{
    run_group_task, run_local, GroupOutcome, Quiet, ResolveModel, SweepObserver, SweepSummary,
};
pub use folder::{RunStatus, SweepFolder};
pub use presets::{preset_spec, PresetOptions, PRESETS};
pub use report::Report;
pub use slurm::{SlurmOptions, SlurmScript};
pub use spec::{Plan, PlannedRun, SweepSpec};
