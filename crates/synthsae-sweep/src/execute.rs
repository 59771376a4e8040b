//! Running a sweep folder's groups: one group per call of
//! [`run_group_task`] (what a Slurm array task does), or all of them,
//! `jobs` at a time, with [`run_local`].
//!
//! A group task takes the group's lock (a group another process is training
//! is skipped), trains the runs that are not done on one stream
//! ([`synthsae_train::run_group_in_order`]: each batch is sampled once and
//! the members step one after another, measured faster on CPU than stepping
//! them on threads; `docs/benchmarks.md`), each resumed from its latest checkpoint
//! when it has one, and records each run's status as soon as its outputs are
//! written. Only each run's latest checkpoint is kept while it trains; once
//! it is done its checkpoints are removed unless the spec keeps them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use synthsae_train::checkpoint::find_resumable;
use synthsae_train::{
    build_model, run_group_in_order, GroupMember, GroupObserver, ModelSpec, Progress, RunnerResult,
};

use crate::error::{Result, SweepError};
use crate::folder::{RunStatus, SweepFolder};

/// Turns a model source string (a path or a hub reference) into a local
/// folder; the CLI resolves hub references with `synthsae-hub`.
pub type ResolveModel = dyn Fn(&str) -> std::result::Result<PathBuf, String> + Sync;

/// Observes a sweep; called from the threads that train its groups.
pub trait SweepObserver: Sync {
    /// Group `g` starts: `runs` runs to train, its stream `steps` long.
    fn group_started(&self, _g: usize, _runs: usize, _steps: u64) {}
    /// Group `g`'s stream is at step `step`.
    fn group_progress(&self, _g: usize, _step: u64) {}
    /// Run `name` resumes from `checkpoint`.
    fn run_resumed(&self, _name: &str, _checkpoint: &Path) {}
    /// Run `name` has ended (`error`: `None` when done).
    fn run_finished(&self, _name: &str, _error: Option<&str>) {}
    /// Group `g` has ended.
    fn group_finished(&self, _g: usize) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl SweepObserver for Quiet {}

/// What a group task did.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupOutcome {
    /// Its pending runs were trained: the names done and the failures.
    Trained {
        /// Runs done now.
        done: Vec<String>,
        /// `(run, error)` of the runs that failed.
        failed: Vec<(String, String)>,
    },
    /// Every run of the group was already done.
    AlreadyDone,
    /// Another process holds the group's lock.
    Busy,
}

/// Trains group `g` of `folder` (see the module docs).
pub fn run_group_task<B: AutodiffBackend>(
    folder: &SweepFolder,
    g: usize,
    device: &B::Device,
    resolve: &ResolveModel,
    observer: &dyn SweepObserver,
) -> Result<GroupOutcome> {
    let Some(_lock) = folder.try_lock_group(g)? else {
        return Ok(GroupOutcome::Busy);
    };
    let pending = folder.pending(g);
    if pending.is_empty() {
        return Ok(GroupOutcome::AlreadyDone);
    }
    let plan = folder.plan();
    let mut members = Vec::new();
    for &i in &pending {
        let run = &plan.runs[i];
        let cfg = run.runner_config(folder.root())?;
        let ckpt = folder.checkpoint_dir(&run.name);
        let resume = find_resumable(&ckpt).ok();
        if let Some(r) = &resume {
            observer.run_resumed(&run.name, r);
        }
        members.push(GroupMember { cfg, resume });
    }
    let spec = match &members[0].cfg.synthetic_model {
        ModelSpec::Source(s) => ModelSpec::Source(
            resolve(s)
                .map_err(|e| SweepError::run(&plan.runs[pending[0]].name, e))?
                .display()
                .to_string(),
        ),
        other => other.clone(),
    };
    let model = build_model::<B::InnerBackend>(&spec, device)?;
    let steps = members
        .iter()
        .map(|m| m.cfg.total_training_steps())
        .max()
        .unwrap_or(0);
    observer.group_started(g, members.len(), steps);
    let mut watch = Watch {
        folder,
        g,
        names: pending.iter().map(|&i| plan.runs[i].name.clone()).collect(),
        observer,
        done: Vec::new(),
        failed: Vec::new(),
        status_error: None,
    };
    let results = run_group_in_order::<B>(members, &model, device, &mut watch);
    observer.group_finished(g);
    results?;
    if let Some(e) = watch.status_error {
        return Err(e);
    }
    Ok(GroupOutcome::Trained {
        done: watch.done,
        failed: watch.failed,
    })
}

/// Records each member's end in the folder as it happens.
struct Watch<'a> {
    folder: &'a SweepFolder,
    g: usize,
    names: Vec<String>,
    observer: &'a dyn SweepObserver,
    done: Vec<String>,
    failed: Vec<(String, String)>,
    status_error: Option<SweepError>,
}

impl<B: AutodiffBackend> GroupObserver<B> for Watch<'_> {
    fn on_progress(&mut self, _member: usize, progress: &Progress) {
        self.observer.group_progress(self.g, progress.step);
    }

    fn on_checkpoint(&mut self, member: usize, dir: &Path) {
        self.folder.prune_checkpoints(&self.names[member], dir);
    }

    fn on_done(&mut self, member: usize, result: &synthsae_train::Result<RunnerResult<B>>) {
        let name = &self.names[member];
        let status = match result {
            Ok(r) => RunStatus::Done {
                n_training_samples: r.n_training_samples,
                train_seconds: r.train_seconds,
            },
            Err(e) => RunStatus::Failed {
                error: e.to_string(),
            },
        };
        if let Err(e) = self.folder.write_status(name, &status) {
            self.status_error.get_or_insert(e);
            return;
        }
        match status {
            RunStatus::Done { .. } => {
                if !self.folder.plan().keep_checkpoints {
                    self.folder.remove_checkpoints(name);
                }
                self.observer.run_finished(name, None);
                self.done.push(name.clone());
            }
            RunStatus::Failed { error } => {
                self.observer.run_finished(name, Some(&error));
                self.failed.push((name.clone(), error));
            }
        }
    }
}

/// What [`run_local`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepSummary {
    /// Runs in the sweep.
    pub runs: usize,
    /// Runs done before this call.
    pub already_done: usize,
    /// Runs done by this call.
    pub trained: usize,
    /// `(run, error)` of the runs that failed.
    pub failed: Vec<(String, String)>,
    /// Groups skipped because another process holds them.
    pub busy_groups: Vec<usize>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl SweepSummary {
    /// The summary as JSON (`--json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "runs": self.runs,
            "already_done": self.already_done,
            "trained": self.trained,
            "failed": self.failed.iter().map(|(r, e)| serde_json::json!({"run": r, "error": e})).collect::<Vec<_>>(),
            "busy_groups": self.busy_groups,
            "seconds": self.seconds,
        })
    }

    /// Whether every run is done now.
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
            && self.busy_groups.is_empty()
            && self.already_done + self.trained == self.runs
    }
}

/// Trains every group of `folder` with pending runs, `jobs` groups at a time
/// (each on its own thread; the backend's own parallelism is shared).
pub fn run_local<B: AutodiffBackend>(
    folder: &SweepFolder,
    jobs: usize,
    device: &B::Device,
    resolve: &ResolveModel,
    observer: &dyn SweepObserver,
) -> Result<SweepSummary>
where
    B::Device: Sync,
{
    let started = Instant::now();
    let plan = folder.plan();
    let already_done = plan.runs.iter().filter(|r| folder.is_done(&r.name)).count();
    let todo: Vec<usize> = (0..plan.groups.len())
        .filter(|&g| !folder.pending(g).is_empty())
        .collect();
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(SweepSummary {
        runs: plan.runs.len(),
        already_done,
        ..Default::default()
    });
    let first_error: Mutex<Option<SweepError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(todo.len().max(1)) {
            scope.spawn(|| loop {
                if first_error.lock().expect("not poisoned").is_some() {
                    return;
                }
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&g) = todo.get(k) else {
                    return;
                };
                match run_group_task::<B>(folder, g, device, resolve, observer) {
                    Ok(GroupOutcome::Trained { done, failed }) => {
                        let mut s = summary.lock().expect("not poisoned");
                        s.trained += done.len();
                        s.failed.extend(failed);
                    }
                    Ok(GroupOutcome::AlreadyDone) => {}
                    Ok(GroupOutcome::Busy) => {
                        summary.lock().expect("not poisoned").busy_groups.push(g)
                    }
                    Err(e) => {
                        first_error.lock().expect("not poisoned").get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("not poisoned") {
        return Err(e);
    }
    let mut s = summary.into_inner().expect("not poisoned");
    s.busy_groups.sort_unstable();
    s.seconds = started.elapsed().as_secs_f64();
    Ok(s)
}
