//! Checkpoint files: the complete trainer state next to the SAE's training
//! files, written into a temporary directory and renamed into place so a
//! checkpoint is either complete or absent.
//!
//! Layout of `<checkpoint_path>/<n_training_samples>/` (sae-lens §7.5, with
//! synthsae's own trainer-state files instead of the torch pickle):
//!
//! ```text
//! cfg.json, sae_weights.safetensors   the SAE's training form (its crate writes them)
//! sparsity.safetensors                {"sparsity": [S]} log10 firing rate of the current window
//! activation_scaler.json              {"scaling_factor": f|null, "has_whitening": false}
//! trainer_state.json                  counters, schedule positions, tuner, data position
//! trainer_state.safetensors           act_freq_scores, n_forward_passes_since_fired, Adam moments
//! runner_config.json                  added by the runner
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};
use synthsae_sae::io::{write_tensors, HostData, HostTensor};

use crate::error::{Result, TrainError};
use crate::optim::AdamState;
use crate::tuner::L0Tuner;

/// Version tag of `trainer_state.json`.
pub const STATE_FORMAT: &str = "synthsae-trainer-state/2";

/// Name of the JSON part of the trainer state.
pub const STATE_JSON: &str = "trainer_state.json";
/// Name of the tensor part of the trainer state.
pub const STATE_TENSORS: &str = "trainer_state.safetensors";

/// Scalar trainer state (`trainer_state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateJson {
    /// [`STATE_FORMAT`].
    pub format: String,
    /// Samples trained on so far.
    pub n_training_samples: u64,
    /// Steps taken so far (also the index of the next training batch).
    pub n_training_steps: u64,
    /// Rows counted in the current firing-rate window.
    pub n_frac_active_samples: u64,
    /// Adam steps taken.
    pub adam_step: u64,
    /// Input scaling factor, if estimated and not yet folded.
    pub scaling_factor: Option<f64>,
    /// L0 tuner state.
    pub tuner: Option<L0Tuner>,
    /// Coefficient warm-up positions, sae-lens style (`{name: {"current_step": k}}`).
    pub coefficient_schedulers: BTreeMap<String, BTreeMap<String, u64>>,
    /// Checkpoint thresholds not yet reached.
    pub remaining_checkpoints: Vec<u64>,
    /// Data seed, total samples and batch size of the run (checked on resume).
    pub seed: u64,
    /// Total training samples of the run.
    pub total_training_samples: u64,
    /// Batch size of the run.
    pub batch_size: usize,
}

/// Everything in a checkpoint besides the SAE.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerSnapshot {
    /// Scalar state.
    pub json: StateJson,
    /// `[S]` firing counts of the current window.
    pub act_freq_scores: Vec<f32>,
    /// `[S]` steps since each latent last fired.
    pub n_forward_passes_since_fired: Vec<f32>,
    /// Adam moments.
    pub adam: AdamState,
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(synthsae_sae::io::write_atomic(path, bytes)?)
}

fn host(v: &[f32]) -> HostTensor {
    HostTensor {
        shape: vec![v.len()],
        data: HostData::F32(v.to_vec()),
    }
}

/// Writes `log10(rate + 1e-10)` as `{"sparsity": [S]}` (sae-lens layout).
pub fn write_sparsity(path: &Path, log_sparsity: &[f32]) -> Result<()> {
    Ok(write_tensors(
        path,
        &[("sparsity".into(), host(log_sparsity))],
    )?)
}

impl TrainerSnapshot {
    /// Writes the trainer-state files and the scaler/sparsity files into `dir`.
    pub fn write(&self, dir: &Path, log_sparsity: &[f32]) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.json).expect("state serialises");
        write_file(&dir.join(STATE_JSON), json.as_bytes())?;
        let mut tensors = vec![
            ("act_freq_scores".to_string(), host(&self.act_freq_scores)),
            (
                "n_forward_passes_since_fired".to_string(),
                host(&self.n_forward_passes_since_fired),
            ),
        ];
        for (name, m, v) in &self.adam.moments {
            tensors.push((format!("adam.m.{name}"), host(m)));
            tensors.push((format!("adam.v.{name}"), host(v)));
        }
        write_tensors(&dir.join(STATE_TENSORS), &tensors)?;
        write_sparsity(&dir.join("sparsity.safetensors"), log_sparsity)?;
        let scaler = serde_json::json!({
            "scaling_factor": self.json.scaling_factor,
            "has_whitening": false,
        });
        write_file(
            &dir.join("activation_scaler.json"),
            scaler.to_string().as_bytes(),
        )
    }

    /// Reads the trainer-state files of checkpoint `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let json_path = dir.join(STATE_JSON);
        let text =
            std::fs::read_to_string(&json_path).map_err(|e| TrainError::io(&json_path, e))?;
        let json: StateJson = serde_json::from_str(&text)
            .map_err(|e| TrainError::checkpoint(&json_path, e.to_string()))?;
        if json.format != STATE_FORMAT {
            return Err(TrainError::checkpoint(
                &json_path,
                format!("format `{}`, expected `{STATE_FORMAT}`", json.format),
            ));
        }
        let path = dir.join(STATE_TENSORS);
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| TrainError::checkpoint(&path, e.to_string()))?;
        let get = |name: &str| -> Result<Vec<f32>> {
            let t = st
                .tensor(name)
                .map_err(|_| TrainError::checkpoint(&path, format!("missing tensor `{name}`")))?;
            if t.dtype() != Dtype::F32 {
                return Err(TrainError::checkpoint(
                    &path,
                    format!("tensor `{name}` is {:?}, expected F32", t.dtype()),
                ));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let act_freq_scores = get("act_freq_scores")?;
        let n_forward_passes_since_fired = get("n_forward_passes_since_fired")?;
        let mut names: Vec<String> = st
            .names()
            .into_iter()
            .filter_map(|n| n.strip_prefix("adam.m.").map(str::to_string))
            .collect();
        names.sort();
        let moments = names
            .into_iter()
            .map(|n| {
                let m = get(&format!("adam.m.{n}"))?;
                let v = get(&format!("adam.v.{n}"))?;
                Ok((n, m, v))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            adam: AdamState {
                step: json.adam_step,
                moments,
            },
            json,
            act_freq_scores,
            n_forward_passes_since_fired,
        })
    }
}

/// Writes a checkpoint atomically: `fill` writes into a fresh temporary
/// sibling directory, which is then renamed to `dir` (replacing an older
/// checkpoint of the same name). A crash leaves at most a `.partial-*`
/// directory, which resuming ignores.
pub fn write_atomically(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    let tmp = parent.join(format!(".partial-{name}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| TrainError::io(dir, e))?;
    Ok(dir.to_path_buf())
}

/// Finds the checkpoint to resume from: `path` itself if it holds a trainer
/// state, else its complete sub-checkpoint with the most training samples.
pub fn find_resumable(path: &Path) -> Result<PathBuf> {
    if path.join(STATE_JSON).is_file() {
        return Ok(path.to_path_buf());
    }
    let entries = std::fs::read_dir(path).map_err(|e| TrainError::io(path, e))?;
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in entries.flatten() {
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !p.join(STATE_JSON).is_file() {
            continue;
        }
        let n = name.trim_start_matches("final_").parse::<u64>().ok();
        if let Some(n) = n {
            if best.as_ref().is_none_or(|(b, _)| n > *b) {
                best = Some((n, p));
            }
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| {
        TrainError::checkpoint(
            path,
            "no complete checkpoint here (a directory with trainer_state.json, or one such \
             subdirectory named by its sample count)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> TrainerSnapshot {
        TrainerSnapshot {
            json: StateJson {
                format: STATE_FORMAT.into(),
                n_training_samples: 300,
                n_training_steps: 3,
                n_frac_active_samples: 300,
                adam_step: 3,
                scaling_factor: Some(1.25),
                tuner: None,
                coefficient_schedulers: BTreeMap::new(),
                remaining_checkpoints: vec![600],
                seed: 4,
                total_training_samples: 1000,
                batch_size: 100,
            },
            act_freq_scores: vec![1.0, 0.0, 3.0],
            n_forward_passes_since_fired: vec![0.0, 3.0, 0.0],
            adam: AdamState {
                step: 3,
                moments: vec![("W".into(), vec![0.1, -0.2], vec![1e-3, 2e-3])],
            },
        }
    }

    #[test]
    fn snapshot_round_trips_exactly_and_partial_dirs_are_ignored() {
        let root = std::env::temp_dir().join(format!("synthsae-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let s = snapshot();
        write_atomically(&root.join("300"), |d| s.write(d, &[-1.0, -10.0, -0.5])).unwrap();
        // A crashed later checkpoint: files present but under a partial name.
        std::fs::create_dir_all(root.join(".partial-600-1")).unwrap();
        std::fs::write(root.join(".partial-600-1").join(STATE_JSON), "{").unwrap();
        let found = find_resumable(&root).unwrap();
        assert_eq!(found, root.join("300"));
        assert_eq!(TrainerSnapshot::read(&found).unwrap(), s);
        // A failing fill leaves nothing behind.
        let err = write_atomically(&root.join("900"), |_| {
            Err(TrainError::checkpoint("x", "simulated failure"))
        });
        assert!(err.is_err());
        assert!(!root.join("900").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_checkpoint_is_a_clear_error() {
        let err = find_resumable(Path::new("/nonexistent/ckpt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ckpt"), "{err}");
    }
}
