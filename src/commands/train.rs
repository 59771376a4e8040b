//! `synthsae train`: runs a sae-lens runner config (build or load the model,
//! train, evaluate, write sae-lens's output folder).

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use synthsae::data::{HiddenPath, SyntheticModel};
use synthsae::eval::{HierarchyMetrics, SimilarityMatrix, SyntheticDataEvalResult};
use synthsae::host::profile::{self, Phase, PhaseTotal};
use synthsae::train::{ModelSpec, Progress, RunObserver, RunSummary, RunnerConfig};
use synthsae::{BackendJob, BackendKind};

use super::{CliError, GlobalOpts};

/// Arguments of `synthsae train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A sae-lens `runner_config.json` (`SyntheticSAERunnerConfig`), with
    /// optional synthsae keys `seed`, `backend`, `l0_tuner`, `max_grad_norm`.
    #[arg(long)]
    pub config: PathBuf,
    /// Overrides the config's seed (SAE initialisation and data streams).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continues the run from a checkpoint directory (or a directory of
    /// checkpoints: the latest complete one is used).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Overrides the config's `output_path`.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Overrides the config's `training_samples`.
    #[arg(long)]
    pub training_samples: Option<u64>,
    #[command(flatten)]
    pub run: RunFlags,
}

/// Flags that change how a run computes, not what it trains (shared by
/// `train` and `synthsaebench`).
#[derive(Debug, Clone, Default, Args)]
pub struct RunFlags {
    /// Where hidden activations of sampled batches are computed: `auto`
    /// (host on CPU backends, device on GPU backends), `host` (gather-sum on
    /// the host, `[B, D]` uploaded) or `device` (the sparse batch uploaded,
    /// gather-sum on the device). Overrides the config's `hidden_path`.
    #[arg(long, value_name = "PATH")]
    pub hidden_path: Option<HiddenPath>,
    /// Measures where the run's time goes (sampling, waiting for data,
    /// upload, step, top-k, read-backs, evaluations) and prints the
    /// breakdown (`timings` in the JSON). Waits for the device at the end of
    /// each phase, so a GPU run is slightly slower with it.
    #[arg(long)]
    pub timings: bool,
}

impl RunFlags {
    /// Applies the flags to `cfg` and, with `--timings`, starts profiling.
    pub fn apply(&self, cfg: &mut RunnerConfig) {
        if let Some(p) = self.hidden_path {
            cfg.hidden_path = p;
        }
        if self.timings {
            profile::reset();
            profile::enable();
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The runner's report: output folder, samples, time, L0, dead
    /// latents, final evaluation.
    pub run: RunSummary,
    /// Signed cosine similarity `[S, N]` of decoder rows and true features,
    /// when asked for (plots).
    pub similarity: Option<SimilarityMatrix>,
    /// Where hidden activations were computed (`host` or `device`).
    pub hidden_path: HiddenPath,
    /// Where the time went, with `--timings`.
    pub timings: Option<Vec<PhaseTotal>>,
}

impl TrainReport {
    /// The JSON printed with `--json`: the runner's keys
    /// ([`RunSummary::to_json`]), then `hidden_path` and `timings`.
    pub fn to_json(&self) -> Value {
        let mut v = self.run.to_json();
        v["hidden_path"] = self.hidden_path.name().into();
        v["timings"] = match &self.timings {
            Some(t) => Value::Object(
                t.iter()
                    .map(|p| {
                        (
                            p.phase.key().to_string(),
                            json!({"seconds": p.seconds, "count": p.count}),
                        )
                    })
                    .collect(),
            ),
            None => Value::Null,
        };
        v
    }
}

/// The `--timings` breakdown: each phase's seconds, share of the training
/// time and milliseconds per step (steps taken in this process: the step
/// phase's count).
pub fn timings_table(totals: &[PhaseTotal], train_seconds: f64) -> String {
    let get = |p: Phase| totals.iter().find(|t| t.phase == p).copied();
    let steps = get(Phase::Step).map_or(0, |t| t.count).max(1) as f64;
    let mut s = format!(
        "time breakdown ({train_seconds:.2} s of training, {steps} steps; phases waited for on \
         the device)\n"
    );
    let rows = [
        (Phase::WaitData, "waiting for data"),
        (Phase::Upload, "upload / device gather"),
        (Phase::Step, "step (with top-k)"),
        (Phase::TopK, "top-k on the host"),
        (Phase::ReadBack, "step read-back"),
        (Phase::Eval, "periodic evaluation"),
    ];
    let mut accounted = 0.0;
    for (phase, label) in rows {
        let Some(t) = get(phase) else { continue };
        if phase != Phase::TopK {
            accounted += t.seconds;
        }
        s.push_str(&format!(
            "  {label:<24} {:>9.2} s {:>6.1} % {:>9.3} ms/step ({} spans)\n",
            t.seconds,
            100.0 * t.seconds / train_seconds.max(1e-9),
            1e3 * t.seconds / steps,
            t.count
        ));
    }
    let other = (train_seconds - accounted).max(0.0);
    s.push_str(&format!(
        "  {:<24} {other:>9.2} s {:>6.1} %\n",
        "other",
        100.0 * other / train_seconds.max(1e-9)
    ));
    if let Some(t) = get(Phase::Sampling) {
        s.push_str(&format!(
            "  {:<24} {:>9.2} s on the sampling thread, {} batches ({:.0} batches/s while busy)\n",
            "host sampling",
            t.seconds,
            t.count,
            t.count as f64 / t.seconds.max(1e-9)
        ));
    }
    if let Some(t) = get(Phase::FinalEval) {
        s.push_str(&format!(
            "  {:<24} {:>9.2} s after training\n",
            "final evaluation", t.seconds
        ));
    }
    s
}

/// Reads a runner config and applies the command-line overrides.
pub fn load_config(args: &TrainArgs) -> Result<RunnerConfig, CliError> {
    let text = std::fs::read_to_string(&args.config).map_err(|e| CliError::Input {
        path: args.config.clone(),
        reason: e.to_string(),
    })?;
    let mut cfg = RunnerConfig::from_json(&text).map_err(|e| CliError::Input {
        path: args.config.clone(),
        reason: e.to_string(),
    })?;
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    if let Some(o) = &args.output {
        cfg.output_path = Some(o.clone());
    }
    if let Some(n) = args.training_samples {
        cfg.training_samples = n;
        cfg.validate()?;
    }
    Ok(cfg)
}

/// The backend a run uses: `--backend` if given, else the config's
/// `backend`, else its sae-lens `device` (`cuda…` → cuda), else the default.
pub fn pick_backend(cfg: &RunnerConfig, opts: &GlobalOpts) -> Result<BackendKind, CliError> {
    if opts.backend_explicit {
        return Ok(opts.backend);
    }
    if let Some(name) = &cfg.backend {
        return name.parse().map_err(|reason| CliError::Usage {
            flag: "backend",
            reason,
        });
    }
    if cfg.device.starts_with("cuda") && BackendKind::Cuda.is_compiled() {
        return Ok(BackendKind::Cuda);
    }
    Ok(opts.backend)
}

/// `synthsae train`.
pub fn run(args: TrainArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    let mut cfg = load_config(&args)?;
    args.run.apply(&mut cfg);
    let report = train(cfg, args.resume.as_deref(), false, opts)?;
    print_report(&report, opts);
    Ok(())
}

/// Prints a report as a table, or as JSON with `--json`.
pub fn print_report(report: &TrainReport, opts: &GlobalOpts) {
    if opts.json {
        println!("{}", report.to_json());
        return;
    }
    let run = &report.run;
    println!(
        "trained on {} samples in {:.1} s ({:.0} samples/s); final L0 {}; dead latents {}",
        run.n_training_samples,
        run.train_seconds,
        run.samples_per_second(),
        run.l0
            .map(|l| format!("{l:.2}"))
            .unwrap_or_else(|| "-".into()),
        run.num_dead_features,
    );
    if let Some(e) = &run.final_eval {
        print!("{}", eval_table(e));
    }
    if let Some(h) = &run.final_hierarchy {
        print!("{}", hierarchy_table(h));
    }
    if let Some(t) = &report.timings {
        print!("{}", timings_table(t, run.train_seconds));
    }
    if let Some(p) = &run.output_path {
        println!("outputs written to {}", p.display());
    }
}

/// The final-evaluation table.
pub fn eval_table(e: &SyntheticDataEvalResult) -> String {
    let c = &e.classification;
    let rows = [
        ("MCC", format!("{:.4}", e.mcc)),
        ("uniqueness", format!("{:.4}", e.uniqueness)),
        ("F1", format!("{:.4}", c.f1_score)),
        ("precision", format!("{:.4}", c.precision)),
        ("recall", format!("{:.4}", c.recall)),
        ("accuracy", format!("{:.4}", c.accuracy)),
        ("explained variance", format!("{:.4}", e.explained_variance)),
        ("SAE L0", format!("{:.2}", e.sae_l0)),
        ("true L0", format!("{:.2}", e.true_l0)),
        ("dead latents", e.dead_latents.to_string()),
        ("shrinkage", format!("{:.4}", e.shrinkage)),
    ];
    let mut s = String::from("final evaluation\n");
    for (k, v) in rows {
        s.push_str(&format!("  {k:<20} {v:>10}\n"));
    }
    s
}

/// The hierarchy section of an evaluation: absorption (or why there is
/// none), the parent latents' recall, splitting.
pub fn hierarchy_table(h: &HierarchyMetrics) -> String {
    let mut s = String::from("hierarchy\n");
    let mut row = |k: &str, v: String| s.push_str(&format!("  {k:<20} {v:>10}\n"));
    match &h.absorption {
        None => row("absorption", "none: the model has no hierarchy".into()),
        Some(a) => {
            row(
                "parents",
                format!(
                    "{} ({} measured, {} without a latent)",
                    a.parents, a.parents_measured, a.parents_without_latent
                ),
            );
            for (k, v, w) in [
                ("absorption", a.absorption, a.absorption_weighted),
                (
                    "full absorption",
                    a.full_absorption,
                    a.full_absorption_weighted,
                ),
                (
                    "partial absorption",
                    a.partial_absorption,
                    a.partial_absorption_weighted,
                ),
            ] {
                row(k, format!("{v:.4} (weighted by firing rate {w:.4})"));
            }
            row(
                "parent recall",
                format!(
                    "{:.4} with a child, {:.4} without",
                    a.recall_with_children, a.recall_without_children
                ),
            );
        }
    }
    row(
        "split features",
        format!(
            "{} ({:.2} latents each)",
            h.splitting.split_features, h.splitting.mean_latents_per_split_feature
        ),
    );
    s
}

/// Builds or loads the model, trains, evaluates and writes the outputs.
///
/// With `similarity`, the report carries the decoder/feature cosine matrix.
pub fn train(
    cfg: RunnerConfig,
    resume: Option<&Path>,
    similarity: bool,
    opts: &GlobalOpts,
) -> Result<TrainReport, CliError> {
    let backend = pick_backend(&cfg, opts)?;
    let spec = match &cfg.synthetic_model {
        ModelSpec::Source(s) => ModelSpec::Source(
            super::hub::resolve_model_source(Path::new(s))?
                .display()
                .to_string(),
        ),
        other => other.clone(),
    };
    backend.run(TrainJob {
        cfg,
        spec,
        resume: resume.map(Path::to_path_buf),
        similarity,
        quiet: opts.quiet,
    })?
}

struct TrainJob {
    cfg: RunnerConfig,
    spec: ModelSpec,
    resume: Option<PathBuf>,
    similarity: bool,
    quiet: bool,
}

impl BackendJob for TrainJob {
    type Output = Result<TrainReport, CliError>;

    fn run<B: Backend>(self, device: B::Device, _kind: BackendKind) -> Self::Output {
        let model: SyntheticModel<B> = match &self.spec {
            ModelSpec::Config(c) => {
                let pb = spinner("building model", self.quiet);
                let m = SyntheticModel::new((**c).clone(), &device)?;
                pb.finish_and_clear();
                m
            }
            ModelSpec::Source(path) => SyntheticModel::load(path, &device)?,
        };
        let hidden_path = self.cfg.hidden_path.resolve::<B>();
        let mut observer = Bar::new(
            self.cfg
                .training_samples
                .div_ceil(self.cfg.batch_size as u64),
            self.quiet,
        );
        let result = synthsae::train::run::<Autodiff<B>>(
            self.cfg,
            &model,
            &device,
            self.resume.as_deref(),
            &mut observer,
        )?;
        observer.finish();
        let similarity = if self.similarity {
            use synthsae::sae::{Sae, TrainingSae};
            let decoder = result.sae.to_inference().decoder_weights();
            let features = model.feature_dictionary().feature_vectors.val();
            Some(SimilarityMatrix::compute(decoder, features).map_err(CliError::from)?)
        } else {
            None
        };
        Ok(TrainReport {
            run: result.summary(),
            similarity,
            hidden_path,
            timings: profile::is_enabled().then(profile::totals),
        })
    }
}

fn spinner(msg: &str, quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let pb = ProgressBar::with_draw_target(None, target);
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// Progress bar over training steps, with samples/s, loss and L0.
struct Bar {
    pb: ProgressBar,
    quiet: bool,
    phase: Option<ProgressBar>,
}

impl Bar {
    fn new(total_steps: u64, quiet: bool) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let pb = ProgressBar::with_draw_target(Some(total_steps), target);
        pb.set_style(
            ProgressStyle::with_template(
                "training [{bar:30}] {human_pos}/{human_len} steps, eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Self {
            pb,
            quiet,
            phase: None,
        }
    }

    fn finish(&mut self) {
        self.pb.finish_and_clear();
        if let Some(p) = self.phase.take() {
            p.finish_and_clear();
        }
    }
}

impl RunObserver for Bar {
    fn on_progress(&mut self, p: &Progress) {
        self.pb.set_position(p.step);
        if p.step.is_multiple_of(25) || p.step == p.total_steps {
            self.pb.set_message(format!(
                "{:.0} samples/s, loss {:.4}, L0 {:.1}",
                p.samples_per_second, p.loss, p.l0
            ));
        }
    }

    fn on_phase(&mut self, phase: &str) {
        if phase != "training" {
            self.pb.finish_and_clear();
            if let Some(p) = self.phase.take() {
                p.finish_and_clear();
            }
            self.phase = Some(spinner(phase, self.quiet));
        }
    }
}
