//! One sampled stream, many SAEs: runs that read the same training batches
//! (same model, `data_seed` and batch size) train together, each batch
//! sampled once and handed to every run that needs it.
//!
//! Each member is a [`StartedRun`] with its own SAE, optimizer, schedule,
//! L0 tuner, evaluations, checkpoints and output folder; the group only
//! owns the stream. A member gets batch `i` exactly when it is at step `i`,
//! so members may start at different steps (resumed from checkpoints
//! written at different times) and end at different steps (other sample
//! counts): the stream runs from the earliest member's step to the latest
//! member's end. The members at a step train on the batch in parallel (scoped
//! threads, at most one per core; each member's own computation is unchanged, and it reports through
//! the caller's observer in member order afterwards), so each ends
//! bit-identical to [`crate::runner::run`] on its config.
//!
//! A member that fails (invalid config, non-finite loss, a file error) ends
//! with its error; the others go on.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use synthsae_data::SyntheticModel;

use crate::error::{Result, TrainError};
use crate::runner::{sampler_for, RunObserver, RunnerResult, StartedRun};
use crate::runner_config::RunnerConfig;
use crate::trainer::Progress;

/// One run of a group: its config and the checkpoint to resume from.
#[derive(Debug, Clone)]
pub struct GroupMember {
    /// The run's config.
    pub cfg: RunnerConfig,
    /// A checkpoint (or directory of checkpoints) to continue from.
    pub resume: Option<PathBuf>,
}

/// Observes a group's members, by their index in the group.
pub trait GroupObserver<B: AutodiffBackend> {
    /// After member `member`'s step.
    fn on_progress(&mut self, _member: usize, _progress: &Progress) {}
    /// Member `member` enters a phase (`"final evaluation"`, `"saving"`).
    fn on_phase(&mut self, _member: usize, _phase: &str) {}
    /// A periodic checkpoint of member `member` is complete at `dir`.
    fn on_checkpoint(&mut self, _member: usize, _dir: &std::path::Path) {}
    /// Member `member` has ended: its outputs are written (or it failed).
    fn on_done(&mut self, _member: usize, _result: &Result<RunnerResult<B>>) {}
}

/// A group observer that ignores everything.
impl<B: AutodiffBackend> GroupObserver<B> for crate::runner::Silent {}

/// Why `a` and `b` cannot share a stream, if they cannot.
pub fn stream_mismatch(a: &RunnerConfig, b: &RunnerConfig) -> Option<String> {
    if a.synthetic_model != b.synthetic_model {
        return Some("another synthetic_model".into());
    }
    if a.data_seed() != b.data_seed() {
        return Some(format!(
            "data seed {} instead of {}",
            b.data_seed(),
            a.data_seed()
        ));
    }
    if a.batch_size != b.batch_size {
        return Some(format!(
            "batch_size {} instead of {}",
            b.batch_size, a.batch_size
        ));
    }
    None
}

/// Trains `members` on one stream of `model`, the members of a step on
/// scoped threads, and returns each member's result, in order. On the CPU
/// backend this is measured slower than [`run_group_in_order`] (the
/// backend's kernels already use every core; `docs/benchmarks.md`), so
/// sweeps use that. Fails as a whole only when the members cannot share a
/// stream (see [`stream_mismatch`]) or the stream itself fails.
pub fn run_group<B: AutodiffBackend>(
    members: Vec<GroupMember>,
    model: &SyntheticModel<B::InnerBackend>,
    device: &B::Device,
    observer: &mut dyn GroupObserver<B>,
) -> Result<Vec<Result<RunnerResult<B>>>> {
    group_loop(members, model, device, observer, true)
}

/// [`run_group`] with the members of a step trained one after another on
/// the calling thread: the same results; sharing the stream is the
/// saving. What sweeps use.
pub fn run_group_in_order<B: AutodiffBackend>(
    members: Vec<GroupMember>,
    model: &SyntheticModel<B::InnerBackend>,
    device: &B::Device,
    observer: &mut dyn GroupObserver<B>,
) -> Result<Vec<Result<RunnerResult<B>>>> {
    group_loop(members, model, device, observer, false)
}

fn group_loop<B: AutodiffBackend>(
    members: Vec<GroupMember>,
    model: &SyntheticModel<B::InnerBackend>,
    device: &B::Device,
    observer: &mut dyn GroupObserver<B>,
    parallel: bool,
) -> Result<Vec<Result<RunnerResult<B>>>> {
    let Some(first) = members.first() else {
        return Ok(Vec::new());
    };
    for (i, m) in members.iter().enumerate().skip(1) {
        if let Some(why) = stream_mismatch(&first.cfg, &m.cfg) {
            return Err(TrainError::config(
                "group",
                format!("member {i} cannot share the stream of member 0: {why}"),
            ));
        }
    }
    let sampler = sampler_for(&first.cfg, model);
    let mut results: Vec<Option<Result<RunnerResult<B>>>> = Vec::new();
    let mut live: Vec<(usize, StartedRun<'_, B>)> = Vec::new();
    for (i, m) in members.into_iter().enumerate() {
        match StartedRun::start(m.cfg, model, device, m.resume.as_deref()) {
            Ok(run) => {
                live.push((i, run));
                results.push(None);
            }
            Err(e) => {
                let r = Err(e);
                observer.on_done(i, &r);
                results.push(Some(r));
            }
        }
    }
    finish_done(&mut live, &mut results, observer);
    let from = live.iter().map(|(_, r)| r.next_step()).min();
    let to = live.iter().map(|(_, r)| r.total_steps()).max();
    if let (Some(from), Some(to)) = (from, to) {
        let mut prefetch = sampler.prefetch(from, to, 2);
        while !live.is_empty() {
            let index = prefetch.next_index();
            let batch = match prefetch.next_batch() {
                Some(b) => b?,
                None => {
                    return Err(TrainError::config(
                        "training_samples",
                        "data stream ended early",
                    ))
                }
            };
            // The members at this step train on it in parallel, each on its
            // own copy; what they report is replayed in member order.
            let step = |(k, (_, run)): (usize, &mut (usize, StartedRun<'_, B>))| {
                let mut rec = Recorder::default();
                let r = run.step(batch.clone(), &mut rec);
                (k, rec, r)
            };
            let at_index =
                |(_, (_, run)): &(usize, &mut (usize, StartedRun<'_, B>))| run.next_step() == index;
            let stepped: Vec<(usize, Recorder, Result<()>)> = if parallel {
                step_on_threads(live.iter_mut().enumerate().filter(at_index).collect(), step)
            } else {
                live.iter_mut()
                    .enumerate()
                    .filter(at_index)
                    .map(step)
                    .collect()
            };
            drop(batch);
            let mut failed = Vec::new();
            for (k, rec, r) in stepped {
                rec.replay(live[k].0, observer);
                if let Err(e) = r {
                    failed.push((k, e));
                }
            }
            for (k, e) in failed.into_iter().rev() {
                let (i, _) = live.remove(k);
                let r = Err(e);
                observer.on_done(i, &r);
                results[i] = Some(r);
            }
            finish_done(&mut live, &mut results, observer);
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every member has ended"))
        .collect())
}

/// Runs `step` on each of `jobs` on scoped threads (at most one per core),
/// returning the results sorted by their first field (the member's place).
///
/// Plain threads, not rayon tasks: the backend runs its kernels on the rayon
/// pool, and a pool thread that waits for a kernel inside a backward pass
/// (holding that graph's lock in burn-autodiff) may steal another member's
/// step; that step's graph cleanup then waits for the lock its own thread
/// holds. A plain thread that calls into rayon waits without stealing.
fn step_on_threads<J: Send, R: Send>(
    jobs: Vec<J>,
    step: impl Fn(J) -> (usize, Recorder, R) + Sync,
) -> Vec<(usize, Recorder, R)> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    if workers <= 1 {
        return jobs.into_iter().map(step).collect();
    }
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let next = || {
        queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .next()
    };
    let mut out: Vec<(usize, Recorder, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some(job) = next() {
                        done.push(step(job));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    out.sort_by_key(|(k, _, _)| *k);
    out
}

/// Finishes (final evaluation, outputs) the live members that are done.
fn finish_done<B: AutodiffBackend>(
    live: &mut Vec<(usize, StartedRun<'_, B>)>,
    results: &mut [Option<Result<RunnerResult<B>>>],
    observer: &mut dyn GroupObserver<B>,
) {
    let mut k = 0;
    while k < live.len() {
        if !live[k].1.is_done() {
            k += 1;
            continue;
        }
        let (i, run) = live.remove(k);
        let mut forward = Forward {
            member: i,
            observer: &mut *observer,
        };
        let r = run.finish(&mut forward);
        observer.on_done(i, &r);
        results[i] = Some(r);
    }
}

/// What a member reported during a step, kept to be replayed on the
/// group's thread.
#[derive(Default)]
struct Recorder {
    events: Vec<Event>,
}

enum Event {
    Progress(Progress),
    Phase(String),
    Checkpoint(PathBuf),
}

impl Recorder {
    fn replay<B: AutodiffBackend>(self, member: usize, observer: &mut dyn GroupObserver<B>) {
        for e in self.events {
            match e {
                Event::Progress(p) => observer.on_progress(member, &p),
                Event::Phase(p) => observer.on_phase(member, &p),
                Event::Checkpoint(d) => observer.on_checkpoint(member, &d),
            }
        }
    }
}

impl RunObserver for Recorder {
    fn on_progress(&mut self, progress: &Progress) {
        self.events.push(Event::Progress(progress.clone()));
    }

    fn on_phase(&mut self, phase: &str) {
        self.events.push(Event::Phase(phase.to_string()));
    }

    fn on_checkpoint(&mut self, dir: &std::path::Path) {
        self.events.push(Event::Checkpoint(dir.to_path_buf()));
    }
}

/// A member's [`RunObserver`]: forwards to the group's observer with the
/// member's index.
struct Forward<'a, B: AutodiffBackend> {
    member: usize,
    observer: &'a mut dyn GroupObserver<B>,
}

impl<B: AutodiffBackend> RunObserver for Forward<'_, B> {
    fn on_progress(&mut self, progress: &Progress) {
        self.observer.on_progress(self.member, progress);
    }

    fn on_phase(&mut self, phase: &str) {
        self.observer.on_phase(self.member, phase);
    }

    fn on_checkpoint(&mut self, dir: &std::path::Path) {
        self.observer.on_checkpoint(self.member, dir);
    }
}
