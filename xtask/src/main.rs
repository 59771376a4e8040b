//! Developer tasks: `cargo xtask <task>`.
//!
//! * `bench [FILTER]`: runs the criterion benchmarks (`benches/`) in release
//!   mode and prints their figures (samples/s for sampling, seconds per
//!   orthogonalisation step).
//! * `test`: the README's test command (`cargo test --workspace`).
//! * `ci`: runs `.ci/run`.

use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => {
            let mut cmd = cargo();
            cmd.args([
                "bench",
                "--package",
                "synthsae",
                "--bench",
                "sampling",
                "--bench",
                "orthogonalize",
            ]);
            if let Some(filter) = args.get(1) {
                cmd.args(["--", filter]);
            }
            run(cmd)
        }
        Some("test") => {
            let mut cmd = cargo();
            cmd.args(["test", "--workspace"]);
            run(cmd)
        }
        Some("ci") => {
            let mut cmd = Command::new("bash");
            cmd.arg(".ci/run");
            run(cmd)
        }
        _ => {
            eprintln!("usage: cargo xtask <bench [FILTER] | test | ci>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
