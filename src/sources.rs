//! `SOURCE` strings (sae-lens's `load_from_source` convention) resolved to
//! local folders: a local path as it is, a hub reference `repo_id[:subfolder]`
//! downloaded into the cache Python's huggingface_hub uses (the `HF_*`
//! variables are honoured). The CLI and the Python package both use it.

use std::path::PathBuf;

use synthsae_hub::{parse_source, FileSet, HubClient, HubError, Source};

/// The files of a saved synthetic model (`hierarchy.json` when present).
pub const MODEL_FILES: FileSet<'static> = FileSet::new(
    &["synthetic_model_config.json", "synthetic_model.safetensors"],
    &["hierarchy.json"],
);

/// The files of a saved SAE (sae-lens layout).
pub const SAE_FILES: FileSet<'static> = FileSet::new(&["cfg.json", "sae_weights.safetensors"], &[]);

/// The local folder of `source`: the path itself, or the hub snapshot of
/// `files` downloaded (or found in the cache).
pub fn resolve(source: &str, files: FileSet<'_>) -> Result<PathBuf, HubError> {
    match parse_source(source)? {
        Source::Local(p) => Ok(p),
        Source::Hub { repo_id, subfolder } => {
            HubClient::from_env()?.download(&repo_id, subfolder.as_deref(), &files)
        }
    }
}
