//! Slurm job arrays: one array task per group with pending runs, each
//! running `synthsae sweep run-task DIR --task $SLURM_ARRAY_TASK_ID`.
//!
//! The script asks for `--requeue` (a preempted task is put back in the
//! queue and, started again, resumes its runs from their checkpoints) and
//! appends to its log (`--open-mode=append`), one log per task in
//! `slurm/`. The array lists the pending groups' indices, so a resubmitted
//! sweep schedules only what is left; `%K` caps how many run at once.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Result, SweepError};
use crate::folder::{write_atomic, SweepFolder};

/// What `sweep submit --slurm` asks of the scheduler.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` (Slurm's formats, e.g. `2:00:00`).
    pub time: Option<String>,
    /// `--gres` (e.g. `gpu:1`).
    pub gres: Option<String>,
    /// At most this many array tasks at once (`%K`).
    pub max_parallel: Option<usize>,
    /// CPUs per task (`--cpus-per-task`).
    pub cpus_per_task: Option<usize>,
}

/// The sbatch script and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmScript {
    /// `slurm/sweep.sbatch` in the sweep folder.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// The groups it runs (array indices).
    pub groups: Vec<usize>,
}

/// Writes the sbatch script for `folder`'s pending groups; `command` is the
/// synthsae invocation each task runs (binary and global flags, e.g.
/// `/opt/synthsae --backend cuda`). `None` when every run is done.
pub fn write_script(
    folder: &SweepFolder,
    command: &[String],
    opts: &SlurmOptions,
) -> Result<Option<SlurmScript>> {
    for (flag, v) in [
        ("partition", &opts.partition),
        ("time", &opts.time),
        ("gres", &opts.gres),
    ] {
        if let Some(v) = v {
            if v.is_empty()
                || v.chars()
                    .any(|c| c.is_whitespace() || c == '\'' || c == '"')
            {
                return Err(SweepError::spec(
                    flag,
                    format!("`{v}`: must be one word without quotes"),
                ));
            }
        }
    }
    if opts.max_parallel == Some(0) {
        return Err(SweepError::spec("max-parallel", "must be at least 1"));
    }
    let groups: Vec<usize> = (0..folder.plan().groups.len())
        .filter(|&g| !folder.pending(g).is_empty())
        .collect();
    if groups.is_empty() {
        return Ok(None);
    }
    let root = std::path::absolute(folder.root()).map_err(|e| SweepError::io(folder.root(), e))?;
    let logs = root.join("slurm");
    let mut array = compress(&groups);
    if let Some(k) = opts.max_parallel {
        array.push_str(&format!("%{k}"));
    }
    let mut text = String::from("#!/bin/bash\n");
    let mut directive = |s: String| text.push_str(&format!("#SBATCH {s}\n"));
    directive(format!("--job-name=synthsae-{}", folder.plan().name));
    directive(format!("--array={array}"));
    directive(format!("--output={}", logs.join("task-%a.out").display()));
    directive("--open-mode=append".into());
    directive("--requeue".into());
    directive("--ntasks=1".into());
    if let Some(c) = opts.cpus_per_task {
        directive(format!("--cpus-per-task={c}"));
    }
    if let Some(p) = &opts.partition {
        directive(format!("--partition={p}"));
    }
    if let Some(t) = &opts.time {
        directive(format!("--time={t}"));
    }
    if let Some(g) = &opts.gres {
        directive(format!("--gres={g}"));
    }
    text.push_str("set -euo pipefail\n");
    let mut words: Vec<String> = command.iter().map(|w| shell_quote(w)).collect();
    words.extend([
        "sweep".into(),
        "run-task".into(),
        shell_quote(&root.display().to_string()),
        "--task".into(),
        "\"$SLURM_ARRAY_TASK_ID\"".into(),
    ]);
    text.push_str(&format!("exec {}\n", words.join(" ")));
    let path = logs.join("sweep.sbatch");
    write_atomic(&path, text.as_bytes())?;
    Ok(Some(SlurmScript { path, text, groups }))
}

/// Submits `script` with `sbatch --parsable`; returns the job id.
pub fn submit(script: &Path) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|e| SweepError::Slurm(format!("cannot run sbatch: {e}")))?;
    if !out.status.success() {
        return Err(SweepError::Slurm(format!(
            "sbatch failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let id = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() {
        return Err(SweepError::Slurm("sbatch printed no job id".into()));
    }
    Ok(id)
}

/// `0,1,2,5,7,8` → `0-2,5,7-8`.
fn compress(ids: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            ids[i].to_string()
        } else {
            format!("{}-{}", ids[i], ids[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// `word` quoted for bash when it needs it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_and_quotes() {
        assert_eq!(compress(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(compress(&[3]), "3");
        assert_eq!(shell_quote("/opt/synthsae"), "/opt/synthsae");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
