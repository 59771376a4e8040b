//! Developer tasks: `cargo xtask <task>`.
//!
//! * `bench [FILTER]`: runs the criterion benchmarks `benches/sampling.rs`
//!   and `benches/orthogonalize.rs` in release mode and prints their figures
//!   (samples/s for sampling, seconds per orthogonalisation step), then the
//!   sampling table of
//!   `benches/sampling_scale.rs` (samples/s per configuration and per N) with
//!   sae-lens's figures and the ratio when a Python with sae-lens is found.
//!   Then `benches/sweep_group.rs`: a group of 5 SAEs on one sampled stream
//!   against 5 solo runs, at the quickstart shape and the 16k model with a
//!   width-4096 BatchTopK (`s`, the bound, the gains), and
//!   `benches/group_gemm.rs`: the group's 5 encoder products against one over
//!   the concatenated encoders, and what that could add to the group. Last
//!   `benches/bf16_autocast.rs`: float32 against bf16 products and training
//!   steps on the CPU (the measurement behind the runner's float32 warning).
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

/// `RESULT` lines (`case`, `N`, samples/s) printed by a sampling benchmark.
fn parse_results(stdout: &str) -> Vec<(String, usize, f64)> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("RESULT\t")?.split('\t');
            Some((
                f.next()?.to_string(),
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// The sampling table (`benches/sampling_scale.rs`: samples/s per
/// configuration and per N, batch 1024, hidden activations included) and,
/// when a Python with sae-lens 6.54.12 is available (`SYNTHSAE_PYTHON` or
/// `python3`), the same configurations in sae-lens (`benches/saelens_sampling.py`)
/// with the ratio. `SYNTHSAE_BENCH_MAX_N` caps the sweep (default 2^20;
/// sae-lens runs up to min(that, 65536): its batches are dense `[1024, N]`).
fn sampling_table(filter: Option<&str>) -> Result<()> {
    let max_n: usize = std::env::var("SYNTHSAE_BENCH_MAX_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20);
    let max_n_arg = max_n.to_string();
    let mut cmd = cargo();
    cmd.args([
        "bench",
        "--package",
        "synthsae",
        "--bench",
        "sampling_scale",
        "--",
        "--max-n",
        &max_n_arg,
    ]);
    if let Some(f) = filter {
        cmd.args(["--only", f]);
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed with {}", out.status);
    }
    let ours = parse_results(&String::from_utf8_lossy(&out.stdout));
    let python = std::env::var("SYNTHSAE_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_saelens = Command::new(&python)
        .args([
            "-c",
            "import sae_lens, sys; sys.exit(0 if sae_lens.__version__ == '6.54.12' else 3)",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    let theirs = if has_saelens {
        let py_max = max_n.min(65_536).to_string();
        let mut py = Command::new(&python);
        py.args(["benches/saelens_sampling.py", "--max-n", &py_max]);
        if let Some(f) = filter {
            py.args(["--only", f]);
        }
        let o = py
            .stderr(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot start {py:?}"))?;
        parse_results(&String::from_utf8_lossy(&o.stdout))
    } else {
        println!("sae-lens column skipped: `{python}` cannot import sae-lens 6.54.12 (set SYNTHSAE_PYTHON)");
        Vec::new()
    };
    println!();
    println!("| case | N | synthsae samples/s | sae-lens samples/s | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for (case, n, rate) in &ours {
        let other = theirs
            .iter()
            .find(|(c, m, _)| c == case && m == n)
            .map(|t| t.2);
        let (col, ratio) = match other {
            Some(o) if o > 0.0 => (format!("{o:.0}"), format!("{:.1}×", rate / o)),
            _ => ("—".to_string(), "—".to_string()),
        };
        println!("| {case} | {n} | {rate:.0} | {col} | {ratio} |");
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
                .and_then(|()| sampling_table(args.get(1).map(String::as_str)))
                .and_then(|()| {
                    let mut cmd = cargo();
                    cmd.args(["bench", "--package", "synthsae", "--bench", "sweep_group"]);
                    run(cmd)
                })
                .and_then(|()| {
                    let mut cmd = cargo();
                    cmd.args(["bench", "--package", "synthsae", "--bench", "group_gemm"]);
                    run(cmd)
                })
                .and_then(|()| {
                    let mut cmd = cargo();
                    cmd.args(["bench", "--package", "synthsae", "--bench", "bf16_autocast"]);
                    run(cmd)
                })
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
