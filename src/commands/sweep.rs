//! `synthsae sweep`: many SAEs from one spec, in a resumable sweep folder,
//! locally (`run`) or as a Slurm job array (`submit`, whose tasks call
//! `run-task`), and the benchmark's tables and figures (`report`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use synthsae::{BackendJob, BackendKind};
use synthsae_sweep::slurm::{self, SlurmOptions};
use synthsae_sweep::{
    preset_spec, run_group_task, run_local, GroupOutcome, PresetOptions, Report, SweepError,
    SweepFolder, SweepObserver, SweepSpec, PRESETS,
};

use super::{CliError, GlobalOpts};

/// `synthsae sweep` subcommands.
#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Trains every run of a spec into a sweep folder, groups sharing a
    /// stream trained together; run it again after a kill to finish.
    ///
    /// Example: synthsae sweep run docs/examples/sweep-tutorial.json --out sweeps/tutorial --jobs 2
    Run(RunArgs),
    /// Writes an sbatch job array for a spec (one task per group) and submits it.
    ///
    /// Example: synthsae sweep submit synthsaebench-l0 --out /scratch/l0 --slurm --gres gpu:1 --max-parallel 8
    Submit(SubmitArgs),
    /// Trains one group of a sweep folder (what each Slurm array task runs).
    RunTask(RunTaskArgs),
    /// Tables (markdown, CSV, JSON) and figures of a sweep folder's results.
    Report(ReportArgs),
    /// Expands a spec and lists its runs and groups, training nothing.
    Plan(PlanArgs),
}

/// The spec argument and the preset overrides.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// A sweep spec file (JSON), or a preset: synthsaebench-l0,
    /// synthsaebench-superposition.
    pub spec: String,
    /// Preset only: training samples of each run (published: 200M; the
    /// superposition preset scales them by hidden dimension).
    #[arg(long)]
    pub training_samples: Option<u64>,
    /// Preset only: the model, a saved model (path or hub id) or a model
    /// config file (`.json`); default: the embedded synthsaebench-16k config.
    #[arg(long)]
    pub model: Option<String>,
    /// Preset only: samples of each evaluation (published: 1M).
    #[arg(long)]
    pub eval_samples: Option<u64>,
    /// Preset only: steps between periodic evaluations (published: 10,000; 0: none).
    #[arg(long)]
    pub eval_frequency: Option<u64>,
    /// Preset only: SAE width (published: 4096).
    #[arg(long)]
    pub width: Option<u64>,
}

/// Arguments of `sweep run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The sweep folder (created, or resumed when made from the same spec).
    #[arg(long)]
    pub out: PathBuf,
    /// Groups trained at once.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
}

/// Arguments of `sweep submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The sweep folder, on a file system the cluster's nodes share.
    #[arg(long)]
    pub out: PathBuf,
    /// Submit to Slurm (the one scheduler supported; required).
    #[arg(long)]
    pub slurm: bool,
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit per task (Slurm format, e.g. 2:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// Generic resources per task (e.g. gpu:1).
    #[arg(long)]
    pub gres: Option<String>,
    /// At most this many tasks at once.
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// CPUs per task.
    #[arg(long)]
    pub cpus_per_task: Option<usize>,
    /// Write the script and print it; submit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `sweep run-task`.
#[derive(Debug, Args)]
pub struct RunTaskArgs {
    /// The sweep folder.
    pub dir: PathBuf,
    /// The group to train (the array task id).
    #[arg(long)]
    pub task: usize,
}

/// Arguments of `sweep report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The sweep folder.
    pub dir: PathBuf,
    /// Folder for report.md, report.csv, report.json, metrics.png/svg
    /// (default: DIR/report).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The swept key plotted on the x axis (default: the L0 axis).
    #[arg(long)]
    pub x: Option<String>,
}

/// Arguments of `sweep plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// Runs a `sweep` subcommand.
pub fn run(cmd: SweepCommand, opts: &GlobalOpts) -> Result<(), CliError> {
    match cmd {
        SweepCommand::Run(a) => run_sweep(a, opts),
        SweepCommand::Submit(a) => submit(a, opts),
        SweepCommand::RunTask(a) => run_task(a, opts),
        SweepCommand::Report(a) => report(a, opts),
        SweepCommand::Plan(a) => plan(a, opts),
    }
}

/// The spec a `SPEC` argument names: a file, else a preset.
fn load_spec(a: &SpecArgs) -> Result<SweepSpec, CliError> {
    let path = Path::new(&a.spec);
    let overrides = [
        ("training-samples", a.training_samples.is_some()),
        ("model", a.model.is_some()),
        ("eval-samples", a.eval_samples.is_some()),
        ("eval-frequency", a.eval_frequency.is_some()),
        ("width", a.width.is_some()),
    ];
    if path.is_file() {
        if let Some((flag, _)) = overrides.iter().find(|(_, set)| *set) {
            return Err(CliError::Usage {
                flag,
                reason: "applies to presets only; set it in the spec file".into(),
            });
        }
        return Ok(SweepSpec::read(path)?);
    }
    if !PRESETS.contains(&a.spec.as_str()) {
        return Err(CliError::Input {
            path: path.to_path_buf(),
            reason: format!(
                "no such spec file, and not a preset ({})",
                PRESETS.join(", ")
            ),
        });
    }
    let model = match &a.model {
        None => None,
        Some(m) if m.ends_with(".json") => {
            let text = std::fs::read_to_string(m).map_err(|e| CliError::Input {
                path: m.into(),
                reason: e.to_string(),
            })?;
            Some(
                serde_json::from_str::<Value>(&text).map_err(|e| CliError::Input {
                    path: m.into(),
                    reason: format!("not valid JSON: {e}"),
                })?,
            )
        }
        Some(m) => Some(Value::String(m.clone())),
    };
    let opts = PresetOptions {
        training_samples: a.training_samples,
        model,
        eval_samples: a.eval_samples,
        eval_frequency: a.eval_frequency,
        width: a.width,
    };
    Ok(SweepSpec::from_value(preset_spec(&a.spec, &opts)?)?)
}

/// Expands the spec and opens (or makes) its folder.
fn prepare(spec: &SpecArgs, out: &Path) -> Result<SweepFolder, CliError> {
    let plan = load_spec(spec)?.expand()?;
    Ok(SweepFolder::create_or_open(out, plan)?)
}

/// The backend of a sweep: `--backend`, else the first run's config.
fn backend(folder: &SweepFolder, opts: &GlobalOpts) -> Result<BackendKind, CliError> {
    let first = folder
        .plan()
        .runs
        .first()
        .ok_or_else(|| CliError::Output("the sweep has no runs".into()))?;
    let cfg = first.runner_config(folder.root())?;
    super::train::pick_backend(&cfg, opts)
}

fn resolve(source: &str) -> Result<PathBuf, String> {
    super::hub::resolve_model_source(Path::new(source)).map_err(|e| e.to_string())
}

fn run_sweep(a: RunArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    super::at_least_one("jobs", a.jobs)?;
    let folder = prepare(&a.spec, &a.out)?;
    let kind = backend(&folder, opts)?;
    let summary = kind.run(LocalJob {
        folder: &folder,
        jobs: a.jobs,
        quiet: opts.quiet,
    })??;
    if opts.json {
        let mut v = summary.to_json();
        v["sweep"] = folder.root().display().to_string().into();
        println!("{v}");
    } else {
        println!(
            "sweep {}: {} runs, {} trained now, {} done before, {} failed, {} groups busy elsewhere \
             ({:.1} s)",
            folder.plan().name,
            summary.runs,
            summary.trained,
            summary.already_done,
            summary.failed.len(),
            summary.busy_groups.len(),
            summary.seconds
        );
        for (run, e) in &summary.failed {
            println!("  failed: {run}: {e}");
        }
        println!("report: synthsae sweep report {}", folder.root().display());
    }
    if !summary.failed.is_empty() {
        return Err(CliError::Output(format!(
            "{} of {} runs failed (statuses in {}/status; run the command again to retry them)",
            summary.failed.len(),
            summary.runs,
            folder.root().display()
        )));
    }
    Ok(())
}

fn run_task(a: RunTaskArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    let folder = SweepFolder::open(&a.dir)?;
    if a.task >= folder.plan().groups.len() {
        return Err(CliError::Usage {
            flag: "task",
            reason: format!(
                "the sweep has groups 0..{}, not {}",
                folder.plan().groups.len().saturating_sub(1),
                a.task
            ),
        });
    }
    let kind = backend(&folder, opts)?;
    let outcome = kind.run(TaskJob {
        folder: &folder,
        group: a.task,
        quiet: opts.quiet,
    })??;
    let (line, failed) = match &outcome {
        GroupOutcome::Trained { done, failed } => (
            json!({"group": a.task, "outcome": "trained", "done": done,
                   "failed": failed.iter().map(|(r, e)| json!({"run": r, "error": e})).collect::<Vec<_>>()}),
            failed.len(),
        ),
        GroupOutcome::AlreadyDone => (json!({"group": a.task, "outcome": "already done"}), 0),
        GroupOutcome::Busy => (
            json!({"group": a.task, "outcome": "busy: another process holds its lock"}),
            0,
        ),
    };
    if opts.json {
        println!("{line}");
    } else {
        println!(
            "group {}: {}",
            a.task,
            line["outcome"].as_str().unwrap_or("")
        );
    }
    if failed > 0 {
        return Err(CliError::Output(format!(
            "{failed} runs of group {} failed (see {}/status)",
            a.task,
            folder.root().display()
        )));
    }
    Ok(())
}

fn submit(a: SubmitArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    if !a.slurm {
        return Err(CliError::Usage {
            flag: "slurm",
            reason: "is required: Slurm is the scheduler sweeps submit to".into(),
        });
    }
    let folder = prepare(&a.spec, &a.out)?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Output(format!("cannot find this binary's path: {e}")))?;
    // Progress bars draw only on a terminal, so a task's log gets the
    // plain lines (resumes, failures, the outcome).
    let mut command = vec![exe.display().to_string()];
    if opts.backend_explicit {
        command.extend(["--backend".to_string(), opts.backend.name().to_string()]);
    }
    let slurm_opts = SlurmOptions {
        partition: a.partition,
        time: a.time,
        gres: a.gres,
        max_parallel: a.max_parallel,
        cpus_per_task: a.cpus_per_task,
    };
    let script = slurm::write_script(&folder, &command, &slurm_opts).map_err(|e| match e {
        SweepError::Spec { field, reason } => CliError::Usage {
            flag: match field.as_str() {
                "partition" => "partition",
                "time" => "time",
                "gres" => "gres",
                _ => "max-parallel",
            },
            reason,
        },
        other => other.into(),
    })?;
    let Some(script) = script else {
        if opts.json {
            println!("{}", json!({"script": null, "groups": [], "job_id": null}));
        } else {
            println!(
                "every run of {} is done; nothing to submit",
                folder.root().display()
            );
        }
        return Ok(());
    };
    let job_id = if a.dry_run {
        None
    } else {
        Some(slurm::submit(&script.path)?)
    };
    if opts.json {
        println!(
            "{}",
            json!({"script": script.path.display().to_string(), "groups": script.groups,
                   "job_id": job_id, "dry_run": a.dry_run})
        );
    } else if let Some(id) = job_id {
        println!(
            "submitted job {id}: {} array tasks ({}); logs in {}",
            script.groups.len(),
            script.path.display(),
            script
                .path
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    } else {
        print!("{}", script.text);
        println!("# dry run: submit with `sbatch {}`", script.path.display());
    }
    Ok(())
}

fn report(a: ReportArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    let folder = SweepFolder::open(&a.dir)?;
    let report = Report::build(&folder)?;
    let out = a.out.unwrap_or_else(|| a.dir.join("report"));
    let written = report.write(&out, a.x.as_deref()).map_err(|e| match e {
        SweepError::Spec { field, reason } if field == "x" => CliError::Usage { flag: "x", reason },
        other => other.into(),
    })?;
    if opts.json {
        let mut v = report.to_json();
        v["files"] = written
            .iter()
            .map(|p| Value::String(p.display().to_string()))
            .collect();
        println!("{v}");
    } else {
        print!("{}", report.to_markdown());
        println!(
            "\nwritten: {}",
            written
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn plan(a: PlanArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    let plan = load_spec(&a.spec)?.expand()?;
    if opts.json {
        println!("{}", plan.to_json());
        return Ok(());
    }
    println!(
        "sweep {}: {} runs in {} groups (one sampled stream each)",
        plan.name,
        plan.runs.len(),
        plan.groups.len()
    );
    for (g, runs) in plan.groups.iter().enumerate() {
        let cfg = &plan.runs[runs[0]].config;
        println!(
            "group {g}: {} runs, data seed {}, batch {}, {} samples (longest)",
            runs.len(),
            cfg.get("data_seed").unwrap_or(&cfg["seed"]),
            cfg["batch_size"],
            runs.iter()
                .filter_map(|&i| plan.runs[i].config["training_samples"].as_u64())
                .max()
                .unwrap_or(0)
        );
        for &i in runs {
            println!("  {}", plan.runs[i].name);
        }
    }
    Ok(())
}

/// Progress: one bar for the sweep (runs), one per running group (steps).
struct Bars {
    multi: MultiProgress,
    sweep: ProgressBar,
    groups: Mutex<HashMap<usize, ProgressBar>>,
    quiet: bool,
}

impl Bars {
    fn new(folder: &SweepFolder, quiet: bool) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let multi = MultiProgress::with_draw_target(target);
        let plan = folder.plan();
        let sweep = multi.add(ProgressBar::new(plan.runs.len() as u64));
        sweep.set_style(
            ProgressStyle::with_template("sweep    [{bar:30}] {pos}/{len} runs done {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let done = plan.runs.iter().filter(|r| folder.is_done(&r.name)).count();
        sweep.set_position(done as u64);
        Self {
            multi,
            sweep,
            groups: Mutex::new(HashMap::new()),
            quiet,
        }
    }

    /// A line on stderr above the bars (none with `--quiet`).
    fn say(&self, line: &str) {
        if !self.quiet {
            self.multi.suspend(|| eprintln!("{line}"));
        }
    }

    fn finish(&self) {
        self.sweep.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl SweepObserver for Bars {
    fn group_started(&self, g: usize, runs: usize, steps: u64) {
        let pb = self.multi.add(ProgressBar::new(steps));
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "group {g:<3}[{{bar:30}}] {{pos}}/{{len}} steps, {runs} SAEs, eta {{eta}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        self.groups.lock().expect("not poisoned").insert(g, pb);
    }

    fn group_progress(&self, g: usize, step: u64) {
        if let Some(pb) = self.groups.lock().expect("not poisoned").get(&g) {
            if step > pb.position() {
                pb.set_position(step);
            }
        }
    }

    fn run_resumed(&self, name: &str, checkpoint: &Path) {
        self.say(&format!(
            "run {name}: resuming from {}",
            checkpoint.display()
        ));
    }

    fn run_finished(&self, name: &str, error: Option<&str>) {
        if let Some(e) = error {
            self.say(&format!("run {name} failed: {e}"));
        } else {
            self.sweep.inc(1);
        }
    }

    fn group_finished(&self, g: usize) {
        if let Some(pb) = self.groups.lock().expect("not poisoned").remove(&g) {
            pb.finish_and_clear();
        }
    }
}

struct LocalJob<'a> {
    folder: &'a SweepFolder,
    jobs: usize,
    quiet: bool,
}

impl BackendJob for LocalJob<'_> {
    type Output = Result<synthsae_sweep::SweepSummary, CliError>;

    fn run<B: Backend>(self, device: B::Device, _kind: BackendKind) -> Self::Output {
        let bars = Bars::new(self.folder, self.quiet);
        let r = run_local::<Autodiff<B>>(self.folder, self.jobs, &device, &resolve, &bars);
        bars.finish();
        Ok(r?)
    }
}

struct TaskJob<'a> {
    folder: &'a SweepFolder,
    group: usize,
    quiet: bool,
}

impl BackendJob for TaskJob<'_> {
    type Output = Result<GroupOutcome, CliError>;

    fn run<B: Backend>(self, device: B::Device, _kind: BackendKind) -> Self::Output {
        let bars = Bars::new(self.folder, self.quiet);
        let r = run_group_task::<Autodiff<B>>(self.folder, self.group, &device, &resolve, &bars);
        bars.finish();
        Ok(r?)
    }
}
