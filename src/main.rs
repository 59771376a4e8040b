//! The `synthsae` command-line tool.
//!
//! With no arguments it runs the quickstart on an embedded default; every
//! command takes `--backend`, `--seed` where it draws, `--json` and `--quiet`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Runs the main job on the embedded default (what `synthsae` alone does).
    Quickstart,
    /// Builds a synthetic feature model, samples from it and reports statistics.
    Sample(commands::sample::SampleArgs),
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let backend = match cli.backend.or_else(BackendKind::default_compiled) {
        Some(b) => b,
        None => {
            eprintln!("error: no backend is compiled into this binary");
            return ExitCode::from(2);
        }
    };
    let opts = commands::GlobalOpts {
        backend,
        json: cli.json,
        quiet: cli.quiet,
    };
    let result = match cli.command.unwrap_or(Command::Quickstart) {
        Command::Quickstart => {
            commands::sample::run(commands::sample::SampleArgs::quickstart(), &opts)
        }
        Command::Sample(args) => commands::sample::run(args, &opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
