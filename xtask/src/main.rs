//! Developer tasks: `cargo xtask <task>`.
//!
//! * `bench [FILTER]`: runs the criterion benchmarks (`benches/`) in release
//!   mode and prints their figures (samples/s for sampling, seconds per
//!   orthogonalisation step).
//! * `test`: the README's test command (`cargo test --workspace`).
//! * `ci`: runs `.ci/run`.
//! * `interop`: checks that models move between synthsae and sae-lens both
//!   ways (every `xtask/interop/check*.py`). Needs a Python with sae-lens 6.54.12:
//!   `SYNTHSAE_PYTHON=/path/to/python` or `python3`; skipped (exit 0) when
//!   none is found.

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

fn interop() -> Result<()> {
    let python = std::env::var("SYNTHSAE_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args([
            "-c",
            "import sae_lens, sys; sys.exit(0 if sae_lens.__version__ == '6.54.12' else 3)",
        ])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        _ => {
            println!(
                "interop skipped: `{python}` cannot import sae-lens 6.54.12 (set SYNTHSAE_PYTHON)"
            );
            return Ok(());
        }
    }
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--package",
        "synthsae",
        "--bin",
        "synthsae",
    ]);
    run(build)?;
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let binary = std::fs::canonicalize(format!("{target}/release/synthsae"))
        .context("locating the synthsae binary")?;
    let work = std::env::temp_dir().join(format!("synthsae-interop-{}", std::process::id()));
    // Every `xtask/interop/check*.py` script (models, SAEs, evals), in name
    // order; each gets its own scratch directory and the binary's path.
    let mut scripts: Vec<_> = std::fs::read_dir("xtask/interop")
        .context("listing xtask/interop")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("check") && n.ends_with(".py"))
        })
        .collect();
    scripts.sort();
    let mut result = Ok(());
    for script in scripts {
        println!("interop: {}", script.display());
        let scratch = work.join(script.file_stem().unwrap_or_default());
        let mut check = Command::new(&python);
        check.arg(&script).arg(&scratch).arg(&binary);
        result = run(check);
        if result.is_err() {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    result
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
        Some("interop") => interop(),
        Some("ci") => {
            let mut cmd = Command::new("bash");
            cmd.arg(".ci/run");
            run(cmd)
        }
        _ => {
            eprintln!("usage: cargo xtask <bench [FILTER] | test | ci | interop>");
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
