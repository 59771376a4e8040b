//! `synthsae hub download|upload`, and the resolution of a `SOURCE` argument
//! (local path or hub reference) for the other commands.
//!
//! Sources follow sae-lens's `load_from_source`: `/…`, `./…`, `../…`, `~…`,
//! anything with a backslash or an existing path is local; anything else is
//! `repo_id` or `repo_id:subfolder` on the Hugging Face hub, downloaded into
//! the cache Python's huggingface_hub uses (`HF_HOME`, `HF_HUB_CACHE`,
//! `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE` are honoured).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::Value;
use synthsae::data::SyntheticModelConfig;
use synthsae::sources::{MODEL_FILES, SAE_FILES};
use synthsae_hub::{parse_source, FileSet, HubClient, Source, UploadOptions};

use super::{write_atomic, CliError, GlobalOpts};

/// What a source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A synthetic model (`synthetic_model_config.json`, `synthetic_model.safetensors`, `hierarchy.json`).
    Model,
    /// A sparse autoencoder (`cfg.json`, `sae_weights.safetensors`).
    Sae,
}

impl Kind {
    /// The files of this kind.
    pub fn files(self) -> FileSet<'static> {
        match self {
            Self::Model => MODEL_FILES,
            Self::Sae => SAE_FILES,
        }
    }
}

/// `synthsae hub ...`.
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Downloads a model or SAE from the hub into the shared Hugging Face cache.
    ///
    /// Examples:
    ///   synthsae hub download org/synthetic-models:bench16k
    ///   synthsae hub download org/my-saes:standard --kind sae --out saes/standard
    #[command(verbatim_doc_comment)]
    Download(DownloadArgs),
    /// Uploads a model or SAE folder to a hub repository (created if needed).
    ///
    /// Needs a token (HF_TOKEN or `hf auth login`).
    ///
    /// Example: synthsae hub upload models/bench16k me/synthetic-models --subfolder bench16k
    Upload(UploadArgs),
}

/// Arguments of `hub download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// `repo_id` or `repo_id:subfolder`.
    pub source: String,
    /// What to download.
    #[arg(long, value_enum, default_value = "model")]
    pub kind: Kind,
    /// Also copy the files into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    pub revision: String,
}

/// Arguments of `hub upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The folder to upload (a saved model or SAE).
    pub dir: PathBuf,
    /// Target repository, `namespace/name`.
    pub repo_id: String,
    /// Folder inside the repository (default: the root).
    #[arg(long)]
    pub subfolder: Option<String>,
    /// Create the repository private (if it does not exist yet).
    #[arg(long)]
    pub private: bool,
    /// What the folder holds (default: detected from its files).
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// Commit title.
    #[arg(long)]
    pub message: Option<String>,
    /// Do not add a README.md when the repository has none (models only).
    #[arg(long)]
    pub no_readme: bool,
}

/// The `--json` report of `hub download`.
#[derive(Debug, Serialize)]
pub struct DownloadReport {
    /// The source as given.
    pub source: String,
    /// Repository.
    pub repo_id: String,
    /// Folder inside it.
    pub subfolder: Option<String>,
    /// What was downloaded.
    pub kind: Kind,
    /// Commit the files come from.
    pub commit: String,
    /// Cache folder holding the files.
    pub path: PathBuf,
    /// Files present.
    pub files: Vec<String>,
    /// Files fetched by this run (the others came from the cache).
    pub downloaded: Vec<String>,
    /// Copy made with `--out`.
    pub out: Option<PathBuf>,
}

/// The `--json` report of `hub upload`.
#[derive(Debug, Serialize)]
pub struct UploadReport {
    /// Repository.
    pub repo_id: String,
    /// Whether it was created.
    pub created_repo: bool,
    /// What was uploaded.
    pub kind: Kind,
    /// The commit.
    pub commit: String,
    /// Its URL.
    pub url: String,
    /// Paths committed.
    pub files: Vec<String>,
    /// Of those, sent through LFS.
    pub lfs_files: Vec<String>,
}

fn client() -> Result<HubClient, CliError> {
    Ok(HubClient::from_env()?)
}

/// Resolves a `SOURCE` argument of kind `kind` to a local folder: a local
/// path is returned as is, a hub reference is downloaded (only the files
/// `kind` needs) and its cache folder returned.
pub fn resolve_source(source: &Path, kind: Kind) -> Result<PathBuf, CliError> {
    let Some(s) = source.to_str() else {
        return Ok(source.to_path_buf());
    };
    Ok(synthsae::sources::resolve(s, kind.files())?)
}

/// [`resolve_source`] for a synthetic model.
pub fn resolve_model_source(source: &Path) -> Result<PathBuf, CliError> {
    resolve_source(source, Kind::Model)
}

/// `hub download` / `hub upload`.
pub fn run(cmd: HubCommand, opts: &GlobalOpts) -> Result<(), CliError> {
    match cmd {
        HubCommand::Download(a) => download(a, opts),
        HubCommand::Upload(a) => upload(a, opts),
    }
}

fn download(a: DownloadArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    let (repo_id, subfolder) = match parse_source(&a.source)? {
        Source::Hub { repo_id, subfolder } => (repo_id, subfolder),
        Source::Local(p) => {
            return Err(CliError::Usage {
                flag: "source",
                reason: format!(
                    "`{}` is a local path; give a hub reference `namespace/name[:folder]`",
                    p.display()
                ),
            })
        }
    };
    let snap =
        client()?.download_files(&repo_id, &a.revision, subfolder.as_deref(), &a.kind.files())?;
    if let Some(out) = &a.out {
        for f in &snap.files {
            let from = snap.dir.join(f);
            let bytes = std::fs::read(&from).map_err(|e| CliError::Input {
                path: from.clone(),
                reason: e.to_string(),
            })?;
            write_atomic(&out.join(f), &bytes)?;
        }
    }
    let r = DownloadReport {
        source: a.source,
        repo_id,
        subfolder,
        kind: a.kind,
        commit: snap.commit,
        path: snap.dir,
        files: snap.files,
        downloaded: snap.downloaded,
        out: a.out,
    };
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{} `{}` (commit {}) in {}",
            match r.kind {
                Kind::Model => "model",
                Kind::Sae => "SAE",
            },
            r.source,
            r.commit.get(..12).unwrap_or(&r.commit),
            r.path.display()
        );
        for f in &r.files {
            let how = if r.downloaded.contains(f) {
                "downloaded"
            } else {
                "cached"
            };
            println!("  {f:<32} {how}");
        }
        if let Some(out) = &r.out {
            println!("  copied to    {}", out.display());
        }
    }
    Ok(())
}

fn detect_kind(dir: &Path) -> Result<Kind, CliError> {
    if dir.join(MODEL_FILES.required[0]).is_file() {
        Ok(Kind::Model)
    } else if dir.join(SAE_FILES.required[0]).is_file() {
        Ok(Kind::Sae)
    } else {
        Err(CliError::Input {
            path: dir.to_path_buf(),
            reason: "neither a synthetic model (synthetic_model_config.json) nor an SAE (cfg.json)"
                .into(),
        })
    }
}

fn upload(a: UploadArgs, opts: &GlobalOpts) -> Result<(), CliError> {
    if !a.dir.is_dir() {
        return Err(CliError::Input {
            path: a.dir.clone(),
            reason: "not a directory".into(),
        });
    }
    let kind = match a.kind {
        Some(k) => k,
        None => detect_kind(&a.dir)?,
    };
    for f in kind.files().required {
        if !a.dir.join(f).is_file() {
            return Err(CliError::Input {
                path: a.dir.join(f),
                reason: "required file is missing".into(),
            });
        }
    }
    let sub = a
        .subfolder
        .as_deref()
        .filter(|s| !s.trim_matches('/').is_empty());
    let readme = match (kind, a.no_readme) {
        (Kind::Model, false) => Some(model_readme(&a.dir, &a.repo_id, sub)?),
        _ => None,
    };
    let what = match kind {
        Kind::Model => "SyntheticModel",
        Kind::Sae => "SAE",
    };
    let message = a.message.clone().unwrap_or_else(|| match sub {
        Some(s) => format!("Upload {what} {s}"),
        None => format!("Upload {what}"),
    });
    let info = client()?.upload_folder(
        &a.dir,
        &a.repo_id,
        &UploadOptions {
            subfolder: sub,
            private: a.private,
            commit_message: Some(&message),
            files: kind.files(),
            readme_if_missing: readme,
            ..Default::default()
        },
    )?;
    let r = UploadReport {
        repo_id: info.repo_id,
        created_repo: info.created_repo,
        kind,
        commit: info.commit,
        url: info.url,
        files: info.files,
        lfs_files: info.lfs_files,
    };
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "uploaded {} files to `{}`{} (commit {})",
            r.files.len(),
            r.repo_id,
            if r.created_repo { ", created" } else { "" },
            r.commit.get(..12).unwrap_or(&r.commit)
        );
        for f in &r.files {
            let lfs = if r.lfs_files.contains(f) {
                " (LFS)"
            } else {
                ""
            };
            println!("  {f}{lfs}");
        }
        if !r.url.is_empty() {
            println!("  {}", r.url);
        }
    }
    Ok(())
}

/// `4096` → `4,096` (Python's `{:,}`).
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The README sae-lens's upload helper writes for a model (same sections).
fn model_readme(dir: &Path, repo_id: &str, sub: Option<&str>) -> Result<String, CliError> {
    let cfg_path = dir.join(MODEL_FILES.required[0]);
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| CliError::Input {
            path: p.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let cfg = SyntheticModelConfig::from_json(&read(&cfg_path)?).map_err(|e| CliError::Input {
        path: cfg_path.clone(),
        reason: e.to_string(),
    })?;
    let mut info = vec![
        format!("- **Number of features**: {}", thousands(cfg.num_features)),
        format!("- **Hidden dimension**: {}", cfg.hidden_dim),
    ];
    let h_path = dir.join("hierarchy.json");
    if h_path.is_file() {
        let v: Value = serde_json::from_str(&read(&h_path)?).map_err(|e| CliError::Input {
            path: h_path.clone(),
            reason: e.to_string(),
        })?;
        let roots = v["roots"].as_array().cloned().unwrap_or_default();
        fn depth(n: &Value) -> usize {
            1 + n["children"]
                .as_array()
                .map_or(0, |c| c.iter().map(depth).max().unwrap_or(0))
        }
        fn features(n: &Value, out: &mut std::collections::HashSet<u64>) {
            if let Some(i) = n["feature_index"].as_u64() {
                out.insert(i);
            }
            for c in n["children"].as_array().into_iter().flatten() {
                features(c, out);
            }
        }
        let mut used = std::collections::HashSet::new();
        roots.iter().for_each(|r| features(r, &mut used));
        info.push("- **Hierarchy**: Yes".into());
        info.push(format!("  - Root nodes: {}", roots.len()));
        info.push(format!("  - Total nodes: {}", used.len()));
        info.push(format!(
            "  - Max depth: {}",
            roots.iter().map(depth).max().unwrap_or(0)
        ));
    } else {
        info.push("- **Hierarchy**: No".into());
    }
    match &cfg.correlation {
        Some(c) => info.push(format!(
            "- **Feature correlation**: Yes (scale {})",
            c.correlation_scale
        )),
        None => info.push("- **Feature correlation**: No".into()),
    }
    let load = match sub {
        Some(s) => {
            format!("model = SyntheticModel.from_pretrained(\"{repo_id}\", model_path=\"{s}\")")
        }
        None => format!("model = SyntheticModel.from_pretrained(\"{repo_id}\")"),
    };
    Ok(format!(
        "---\nlibrary_name: saelens\n---\n\n# Synthetic Model for SAE Training\n\n\
         This repository contains a SyntheticModel for use with SAELens.\n\n\
         ## Model Info\n\n{}\n\n## Usage\n\n```python\nfrom sae_lens.synthetic import SyntheticModel\n\n{load}\n```",
        info.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(4096), "4,096");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
