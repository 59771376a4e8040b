//! The sweep folder: the expanded spec, one sae-lens output folder per run,
//! checkpoints, a status file per run and a lock per group.
//!
//! ```text
//! sweep.json                the expanded spec (runs, configs, groups)
//! runs/<name>/              the run's sae-lens output folder
//! checkpoints/<name>/       its checkpoints (the latest only; removed when done)
//! status/<name>.json        {"state": "done" | "failed", ...}; absent: not done
//! locks/group-<g>.lock      held (flock) while a process trains group g
//! slurm/                    the sbatch script and task logs
//! report/                   `sweep report`'s default output
//! ```
//!
//! A run is done exactly when its status says so; the status is written
//! (atomically) after its outputs, so a process killed at any moment leaves
//! each run either done, or resumable from its latest checkpoint.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, SweepError};
use crate::spec::Plan;

/// A run's recorded end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunStatus {
    /// Trained, evaluated and saved.
    Done {
        /// Samples trained on.
        n_training_samples: u64,
        /// Seconds in the training loop (of the group, for grouped runs).
        train_seconds: f64,
    },
    /// Stopped with an error (retried by the next `sweep run`).
    Failed {
        /// The error.
        error: String,
    },
}

/// An open sweep folder.
#[derive(Debug, Clone)]
pub struct SweepFolder {
    root: PathBuf,
    plan: Plan,
}

impl SweepFolder {
    /// Opens `root` for `plan`: creates it (writing `sweep.json`) if it does
    /// not exist or is empty; reopens it if it was made from the same plan;
    /// refuses a folder made from another spec, or a non-empty folder that
    /// is not a sweep folder. Nothing is written when it refuses.
    pub fn create_or_open(root: &Path, plan: Plan) -> Result<Self> {
        let plan_path = root.join("sweep.json");
        if plan_path.is_file() {
            let existing = Self::open(root)?;
            if let Some(why) = differs(&existing.plan, &plan) {
                return Err(SweepError::folder(
                    root,
                    format!(
                        "was made from another spec ({why}); refusing to reuse it: pick another \
                         --out, or delete it"
                    ),
                ));
            }
            return Ok(existing);
        }
        if root.exists() {
            let non_empty = std::fs::read_dir(root)
                .map_err(|e| SweepError::io(root, e))?
                .next()
                .is_some();
            if non_empty {
                return Err(SweepError::folder(
                    root,
                    "exists and is not a sweep folder (no sweep.json); refusing to write into it",
                ));
            }
        }
        for sub in ["runs", "checkpoints", "status", "locks"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| SweepError::io(&d, e))?;
        }
        let text = serde_json::to_string_pretty(&plan.to_json()).expect("plan serialises");
        write_atomic(&plan_path, text.as_bytes())?;
        Ok(Self {
            root: root.to_path_buf(),
            plan,
        })
    }

    /// Opens an existing sweep folder.
    pub fn open(root: &Path) -> Result<Self> {
        let plan_path = root.join("sweep.json");
        let text = std::fs::read_to_string(&plan_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SweepError::folder(root, "has no sweep.json: not a sweep folder")
            } else {
                SweepError::io(&plan_path, e)
            }
        })?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| SweepError::folder(root, format!("sweep.json: {e}")))?;
        let plan = Plan::from_json(&v)
            .map_err(|e| SweepError::folder(root, format!("sweep.json: {e}")))?;
        Ok(Self {
            root: root.to_path_buf(),
            plan,
        })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The expanded spec.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Run `name`'s sae-lens output folder.
    pub fn run_dir(&self, name: &str) -> PathBuf {
        self.root.join("runs").join(name)
    }

    /// Run `name`'s checkpoint folder.
    pub fn checkpoint_dir(&self, name: &str) -> PathBuf {
        self.root.join("checkpoints").join(name)
    }

    fn status_path(&self, name: &str) -> PathBuf {
        self.root.join("status").join(format!("{name}.json"))
    }

    /// Run `name`'s status (`None`: not done and not failed).
    pub fn status(&self, name: &str) -> Option<RunStatus> {
        let text = std::fs::read_to_string(self.status_path(name)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Whether run `name` is done.
    pub fn is_done(&self, name: &str) -> bool {
        matches!(self.status(name), Some(RunStatus::Done { .. }))
    }

    /// Records run `name`'s status.
    pub fn write_status(&self, name: &str, status: &RunStatus) -> Result<()> {
        let text = serde_json::to_string_pretty(status).expect("status serialises");
        write_atomic(&self.status_path(name), text.as_bytes())
    }

    /// The runs of group `g` that are not done.
    pub fn pending(&self, g: usize) -> Vec<usize> {
        self.plan.groups[g]
            .iter()
            .copied()
            .filter(|&i| !self.is_done(&self.plan.runs[i].name))
            .collect()
    }

    /// Group `g`'s lock, if no other process holds it. Released when the
    /// returned file is dropped, or when the process dies.
    pub fn try_lock_group(&self, g: usize) -> Result<Option<File>> {
        if g >= self.plan.groups.len() {
            return Err(SweepError::folder(
                &self.root,
                format!(
                    "has groups 0..{}, not group {g}",
                    self.plan.groups.len().saturating_sub(1)
                ),
            ));
        }
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| SweepError::io(&dir, e))?;
        let path = dir.join(format!("group-{g}.lock"));
        let f = File::create(&path).map_err(|e| SweepError::io(&path, e))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(SweepError::io(&path, e)),
        }
    }

    /// Removes the checkpoints under run `name`'s folder other than `keep`.
    pub fn prune_checkpoints(&self, name: &str, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(self.checkpoint_dir(name)) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p != keep && p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
    }

    /// Removes run `name`'s checkpoints.
    pub fn remove_checkpoints(&self, name: &str) {
        let _ = std::fs::remove_dir_all(self.checkpoint_dir(name));
    }
}

/// Why two plans differ, if they do.
fn differs(a: &Plan, b: &Plan) -> Option<String> {
    if a.runs.len() != b.runs.len() {
        return Some(format!(
            "{} runs, the spec gives {}",
            a.runs.len(),
            b.runs.len()
        ));
    }
    for (x, y) in a.runs.iter().zip(&b.runs) {
        if x.name != y.name {
            return Some(format!("run `{}` where the spec has `{}`", x.name, y.name));
        }
        if x.config != y.config {
            return Some(format!("run `{}` has another config", x.name));
        }
    }
    if a.keep_checkpoints != b.keep_checkpoints {
        return Some("another keep_checkpoints".into());
    }
    None
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| SweepError::io(parent, e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| SweepError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        SweepError::io(path, e)
    })
}
