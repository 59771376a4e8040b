//! The `synthsae` command-line tool.
//!
//! With no arguments it runs the quickstart on an embedded default; every
//! command takes `--backend`, `--json` and `--quiet`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::model::ModelCommand;
use synthsae::BackendKind;

/// Synthetic data with known ground-truth features, for sparse autoencoders.
#[derive(Debug, Parser)]
#[command(name = "synthsae", version, about)]
struct Cli {
    /// Burn backend: flex, ndarray (CPU), wgpu, cuda (when compiled in).
    #[arg(long, global = true, value_parser = parse_backend)]
    backend: Option<BackendKind>,
    /// Print the result as one JSON object on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job (what `synthsae` alone does): the tutorial end to end —
    /// build the tutorial model, train a standard SAE, evaluate it against
    /// the ground truth, write `similarity.png`.
    Quickstart(commands::quickstart::QuickstartArgs),
    /// Build, save and describe synthetic models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Draw samples from a saved model into a safetensors file.
    Sample(commands::sample::SampleArgs),
    /// Train an SAE from a sae-lens runner config (model, SAE, training,
    /// evaluation, sae-lens output folder).
    ///
    /// Example: synthsae train --config runner_config.json --seed 1 --output runs/a
    Train(commands::train::TrainArgs),
    /// The published SynthSAEBench-16k recipe in one command: train, evaluate,
    /// print a row comparable with the paper's table, append it to a JSONL.
    ///
    /// Example: synthsae synthsaebench --architecture batchtopk --l0 25
    #[command(name = "synthsaebench")]
    SynthSaeBench(commands::synthsaebench::SynthSaeBenchArgs),
    /// Sweeps: many SAEs from one spec (axes over config keys, or the
    /// published SynthSAEBench grids), runs sharing a sampled stream trained
    /// together, resumable after a kill, locally or as a Slurm job array;
    /// reports with mean ± std over seeds and figures.
    ///
    /// Example: synthsae sweep run docs/examples/sweep-tutorial.json --out sweeps/tutorial
    #[command(subcommand)]
    Sweep(commands::sweep::SweepCommand),
    /// Download from and upload to the Hugging Face hub.
    #[command(subcommand)]
    Hub(commands::hub::HubCommand),
    /// Evaluate a saved SAE against a synthetic model's ground truth.
    ///
    /// Example: synthsae eval --sae runs/a --model models/bench16k --samples 100000 --json
    Eval(commands::eval::EvalArgs),
    /// Plots: similarity heatmap, training curves, firing-rate histogram.
    #[command(subcommand)]
    Plot(commands::plot::PlotCommand),
    /// List the presets.
    Presets,
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse()
}

/// Sends the library's `log` records to stderr: warnings by default,
/// `RUST_LOG` (e.g. `RUST_LOG=debug`, `RUST_LOG=synthsae_train=info`) to
/// choose. Warnings and errors print as `warning: ...` / `error: ...` like
/// the CLI's own errors; other levels name their module.
fn init_logging() {
    use std::io::Write;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(|buf, record| match record.level() {
            log::Level::Error => writeln!(buf, "error: {}", record.args()),
            log::Level::Warn => writeln!(buf, "warning: {}", record.args()),
            level => writeln!(
                buf,
                "{}: [{}] {}",
                level.as_str().to_lowercase(),
                record.target(),
                record.args()
            ),
        })
        .init();
}

fn main() -> ExitCode {
    synthsae::alloc_tuning::keep_large_buffers();
    init_logging();
    let cli = Cli::parse();
    // `--backend` is global: a backend this binary lacks is a usage error on
    // every command, including those that never touch a backend.
    if let Some(kind) = cli.backend.filter(|k| !k.is_compiled()) {
        eprintln!("error: {}", synthsae::backend::BackendUnavailable(kind));
        return ExitCode::from(2);
    }
    let Some(backend) = cli.backend.or_else(BackendKind::default_compiled) else {
        eprintln!("error: no backend is compiled into this binary");
        return ExitCode::from(2);
    };
    let opts = commands::GlobalOpts {
        backend,
        backend_explicit: cli.backend.is_some(),
        json: cli.json,
        quiet: cli.quiet,
    };
    let result = match cli
        .command
        .unwrap_or(Command::Quickstart(Default::default()))
    {
        Command::Quickstart(args) => commands::quickstart::run(args, &opts),
        Command::Model(cmd) => commands::model::run(cmd, &opts),
        Command::Sample(args) => commands::sample::run(args, &opts),
        Command::Train(args) => commands::train::run(args, &opts),
        Command::SynthSaeBench(args) => commands::synthsaebench::run(args, &opts),
        Command::Sweep(cmd) => commands::sweep::run(cmd, &opts),
        Command::Hub(cmd) => commands::hub::run(cmd, &opts),
        Command::Eval(args) => commands::eval::run(args, &opts),
        Command::Plot(cmd) => commands::plot::run(cmd, &opts),
        Command::Presets => {
            if opts.json {
                let list: Vec<_> = synthsae::data::PRESETS
                    .iter()
                    .map(|(n, d, _)| serde_json::json!({"name": n, "description": d}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for (n, d, _) in synthsae::data::PRESETS {
                    println!("{n:<20} {d}");
                }
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
