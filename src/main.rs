//! The `synthsae` command-line tool.
//!
//! With no arguments it runs the quickstart on an embedded default; every
//! command takes `--backend`, `--json` and `--quiet`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::model::{ModelCommand, ModelSource, SamplingArgs};
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
    /// The main job on the embedded `quickstart` preset (what `synthsae` alone
    /// does): build the model, sample 100 000 activations, report.
    Quickstart,
    /// Build, save and describe synthetic models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Draw samples from a saved model into a safetensors file.
    Sample(commands::sample::SampleArgs),
    /// Download from and upload to the Hugging Face hub.
    #[command(subcommand)]
    Hub(commands::hub::HubCommand),
    /// List the presets.
    Presets,
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(backend) = cli.backend.or_else(BackendKind::default_compiled) else {
        eprintln!("error: no backend is compiled into this binary");
        return ExitCode::from(2);
    };
    let opts = commands::GlobalOpts {
        backend,
        json: cli.json,
        quiet: cli.quiet,
    };
    let result = match cli.command.unwrap_or(Command::Quickstart) {
        Command::Quickstart => synthsae::data::preset("quickstart")
            .map_err(Into::into)
            .and_then(|config| {
                commands::model::run_report(
                    ModelSource::Build {
                        label: "preset:quickstart".into(),
                        config: Box::new(config),
                        save_to: None,
                    },
                    SamplingArgs {
                        samples: 100_000,
                        batch_size: 1024,
                        seed: 0,
                    },
                    &opts,
                )
            }),
        Command::Model(cmd) => commands::model::run(cmd, &opts),
        Command::Sample(args) => commands::sample::run(args, &opts),
        Command::Hub(cmd) => commands::hub::run(cmd, &opts),
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
