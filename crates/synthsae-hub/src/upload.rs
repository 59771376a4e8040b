//! Uploading a folder to a repository, as huggingface_hub's `create_repo` +
//! `upload_folder` (what sae-lens's `upload_synthetic_model_to_huggingface`
//! calls):
//!
//! 1. `GET /api/models/{repo}`; when the hub answers "repository not found",
//!    `POST /api/repos/create` (`{"name", "organization", "visibility", "type"}`).
//! 2. `POST /api/models/{repo}/preupload/{revision}`: the hub says which files
//!    are regular git blobs and which go to LFS (`.safetensors`, big files).
//! 3. LFS files: `POST /{repo}.git/info/lfs/objects/batch`, then a single `PUT`
//!    ("basic" transfer) or the parts of a "multipart" transfer plus its
//!    completion call, then the optional verify call. Objects the hub already
//!    has are skipped.
//! 4. `POST /api/models/{repo}/commit/{revision}` with NDJSON: a header line,
//!    regular files inline (base64), LFS files as `lfsFile` pointers.
//!
//! hf-hub 0.5 has no upload API (1.0 has one, but on tokio/reqwest with the
//! xet stack), so this is done with `ureq` directly. Files are read into
//! memory one commit at a time: fine for synthetic models and SAEs (tens to
//! hundreds of MB); the xet transfer protocol is not used (the hub accepts
//! LFS uploads from clients that do not announce it).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::Digest as _;

use crate::client::{encode_path, HubClient, DEFAULT_ENDPOINT};
use crate::error::{HubError, Result};
use crate::source::{normalize_subfolder, path_in_repo, validate_repo_id, FileSet};

const LFS_CONTENT_TYPE: &str = "application/vnd.git-lfs+json";

/// What to upload and how.
#[derive(Debug, Clone)]
pub struct UploadOptions<'a> {
    /// Folder inside the repository (`None`: the root).
    pub subfolder: Option<&'a str>,
    /// Branch to commit to (default `main`).
    pub revision: &'a str,
    /// Create the repository private if it does not exist (ignored otherwise).
    pub private: bool,
    /// Commit title (default `Upload {n} files`).
    pub commit_message: Option<&'a str>,
    /// Which files of the folder: required ones must exist, optional ones are
    /// uploaded when present. Both empty: every file below the folder
    /// (hidden files and folders skipped).
    pub files: FileSet<'a>,
    /// Content of a root `README.md`, committed only when the repository has none.
    pub readme_if_missing: Option<String>,
}

impl Default for UploadOptions<'_> {
    fn default() -> Self {
        Self {
            subfolder: None,
            revision: "main",
            private: false,
            commit_message: None,
            files: FileSet::new(&[], &[]),
            readme_if_missing: None,
        }
    }
}

/// The outcome of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The repository.
    pub repo_id: String,
    /// Whether this call created it.
    pub created_repo: bool,
    /// The new commit (as the hub reports it; empty if it did not say).
    pub commit: String,
    /// Its URL on the hub (empty if the hub did not say).
    pub url: String,
    /// Paths in the repository committed, in order.
    pub files: Vec<String>,
    /// Of those, the ones sent through LFS.
    pub lfs_files: Vec<String>,
}

struct Item {
    path: String,
    data: Vec<u8>,
    sha256: String,
    lfs: bool,
}

impl HubClient {
    /// Uploads files of `local_dir` to `repo_id` (creating the repository if
    /// needed) in one commit. Needs a token.
    pub fn upload_folder(
        &self,
        local_dir: &Path,
        repo_id: &str,
        opts: &UploadOptions,
    ) -> Result<CommitInfo> {
        validate_repo_id(repo_id).map_err(|reason| HubError::InvalidSource {
            source_str: repo_id.into(),
            reason,
        })?;
        let sub = match opts.subfolder {
            Some(s) => normalize_subfolder(s).map_err(|reason| HubError::InvalidSource {
                source_str: format!("{repo_id}:{s}"),
                reason,
            })?,
            None => None,
        };
        if self.offline {
            return Err(HubError::Config(
                "offline mode (HF_HUB_OFFLINE) is on: uploads need the network".into(),
            ));
        }
        if self.token.is_none() {
            return Err(HubError::Unauthorized {
                repo_id: repo_id.into(),
                status: 0,
                message: "uploading needs a token: set HF_TOKEN (or log in with `hf auth login`)"
                    .into(),
            });
        }
        let mut items = collect_files(local_dir, &opts.files)?
            .into_iter()
            .map(|(rel, full)| {
                let data = std::fs::read(&full).map_err(|e| HubError::io(&full, e))?;
                Ok(item(path_in_repo(sub.as_deref(), &rel), data))
            })
            .collect::<Result<Vec<_>>>()?;
        if items.is_empty() {
            return Err(HubError::io(local_dir, "no files to upload"));
        }
        let created_repo = self.ensure_repo(repo_id, opts.private)?;
        if let Some(readme) = &opts.readme_if_missing {
            if !items.iter().any(|i| i.path == "README.md") {
                match self.file_metadata(repo_id, opts.revision, "README.md") {
                    Err(HubError::FileNotFound { .. }) => {
                        items.push(item("README.md".into(), readme.as_bytes().to_vec()))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.preupload(repo_id, opts.revision, &mut items)?;
        self.upload_lfs(repo_id, opts.revision, &items)?;
        let message = opts
            .commit_message
            .map(str::to_string)
            .unwrap_or_else(|| format!("Upload {} files", items.len()));
        let (commit, url) = self.commit(repo_id, opts.revision, &message, &items)?;
        Ok(CommitInfo {
            repo_id: repo_id.into(),
            created_repo,
            commit,
            url,
            files: items.iter().map(|i| i.path.clone()).collect(),
            lfs_files: items
                .iter()
                .filter(|i| i.lfs)
                .map(|i| i.path.clone())
                .collect(),
        })
    }

    /// Whether the repository exists (`GET /api/models/{repo}`).
    pub fn repo_exists(&self, repo_id: &str) -> Result<bool> {
        let url = format!("{}/api/models/{}", self.endpoint, repo_id);
        let a = self.request("GET", &url, false)?;
        if a.status == 200 {
            return Ok(true);
        }
        match self.classify(a, &url, repo_id, "main", None) {
            HubError::RepoNotFound { .. } => Ok(false),
            HubError::Http { status: 404, .. } => Ok(false),
            e => Err(e),
        }
    }

    /// Creates the repository unless it exists; true when it was created.
    fn ensure_repo(&self, repo_id: &str, private: bool) -> Result<bool> {
        if self.repo_exists(repo_id)? {
            return Ok(false);
        }
        let (organization, name) = match repo_id.split_once('/') {
            Some((o, n)) => (Some(o), n),
            None => (None, repo_id),
        };
        let body = serde_json::json!({
            "name": name,
            "organization": organization,
            "visibility": if private { "private" } else { "public" },
            "type": "model",
        });
        let url = format!("{}/api/repos/create", self.endpoint);
        let a = self.send_body(
            "POST",
            &url,
            "application/json",
            body.to_string().as_bytes(),
            true,
        )?;
        match a.status {
            200..=299 => Ok(true),
            409 => Ok(false), // created meanwhile
            _ => Err(self.classify(a, &url, repo_id, "main", None)),
        }
    }

    fn post_json(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
        with_auth: bool,
        repo_id: &str,
        revision: &str,
    ) -> Result<serde_json::Value> {
        let mut a = self.send_body("POST", url, content_type, body, with_auth)?;
        if !(200..300).contains(&a.status) {
            return Err(self.classify(a, url, repo_id, revision, None));
        }
        let text = a
            .response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|e| HubError::Protocol {
                url: url.into(),
                reason: e.to_string(),
            })?;
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| HubError::Protocol {
            url: url.into(),
            reason: format!("invalid JSON: {e}"),
        })
    }

    fn preupload(&self, repo_id: &str, revision: &str, items: &mut [Item]) -> Result<()> {
        let url = format!(
            "{}/api/models/{}/preupload/{}",
            self.endpoint,
            repo_id,
            encode_path(revision, false)
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let files: Vec<_> = items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "path": i.path,
                    "sample": b64.encode(&i.data[..i.data.len().min(512)]),
                    "size": i.data.len(),
                })
            })
            .collect();
        let body = serde_json::json!({ "files": files }).to_string();
        let v = self.post_json(
            &url,
            "application/json",
            body.as_bytes(),
            true,
            repo_id,
            revision,
        )?;
        let bad = |reason: &str| HubError::Protocol {
            url: url.clone(),
            reason: reason.into(),
        };
        let list = v
            .get("files")
            .and_then(|f| f.as_array())
            .ok_or_else(|| bad("no `files` list in the preupload answer"))?;
        for i in items.iter_mut() {
            let mode = list
                .iter()
                .find(|f| f.get("path").and_then(|p| p.as_str()) == Some(i.path.as_str()))
                .and_then(|f| f.get("uploadMode"))
                .and_then(|m| m.as_str())
                .ok_or_else(|| bad(&format!("no upload mode for `{}`", i.path)))?;
            // Empty files cannot go to LFS.
            i.lfs = mode == "lfs" && !i.data.is_empty();
        }
        Ok(())
    }

    fn fix_href(&self, href: &str) -> String {
        match href.strip_prefix(DEFAULT_ENDPOINT) {
            Some(rest) if self.endpoint != DEFAULT_ENDPOINT => format!("{}{rest}", self.endpoint),
            _ => href.to_string(),
        }
    }

    fn upload_lfs(&self, repo_id: &str, revision: &str, items: &[Item]) -> Result<()> {
        let lfs: Vec<&Item> = items.iter().filter(|i| i.lfs).collect();
        if lfs.is_empty() {
            return Ok(());
        }
        let url = format!("{}/{}.git/info/lfs/objects/batch", self.endpoint, repo_id);
        let body = serde_json::json!({
            "operation": "upload",
            "transfers": ["basic", "multipart"],
            "objects": lfs.iter().map(|i| serde_json::json!({"oid": i.sha256, "size": i.data.len()})).collect::<Vec<_>>(),
            "hash_algo": "sha256",
            "ref": {"name": revision},
        })
        .to_string();
        let v = self.post_json(
            &url,
            LFS_CONTENT_TYPE,
            body.as_bytes(),
            true,
            repo_id,
            revision,
        )?;
        let bad = |reason: String| HubError::Protocol {
            url: url.clone(),
            reason,
        };
        let objects = v
            .get("objects")
            .and_then(|o| o.as_array())
            .ok_or_else(|| bad("no `objects` in the LFS batch answer".into()))?;
        for it in lfs {
            let obj = objects
                .iter()
                .find(|o| o.get("oid").and_then(|x| x.as_str()) == Some(it.sha256.as_str()))
                .ok_or_else(|| bad(format!("no LFS instructions for `{}`", it.path)))?;
            if let Some(err) = obj.get("error") {
                return Err(HubError::Http {
                    url: url.clone(),
                    status: err.get("code").and_then(|c| c.as_u64()).unwrap_or(0) as u16,
                    message: format!(
                        "LFS refused `{}`: {}",
                        it.path,
                        err.get("message").and_then(|m| m.as_str()).unwrap_or("")
                    ),
                });
            }
            let Some(actions) = obj.get("actions") else {
                continue; // the hub already has this object
            };
            let upload = actions.get("upload");
            if let Some(up) = upload {
                let href = up
                    .get("href")
                    .and_then(|h| h.as_str())
                    .ok_or_else(|| bad(format!("no upload URL for `{}`", it.path)))?;
                let href = self.fix_href(href);
                let header = up.get("header").and_then(|h| h.as_object());
                let chunk = header.and_then(|h| h.get("chunk_size")).map(|c| {
                    c.as_u64()
                        .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
                        .filter(|&c| c > 0)
                });
                match (chunk, header) {
                    (Some(Some(chunk)), Some(h)) => {
                        self.upload_multipart(repo_id, it, &href, h, chunk as usize)?
                    }
                    (Some(None), _) => return Err(bad("invalid `chunk_size`".into())),
                    _ => {
                        let a = self.send_body(
                            "PUT",
                            &href,
                            "application/octet-stream",
                            &it.data,
                            false,
                        )?;
                        if !(200..300).contains(&a.status) {
                            return Err(self.classify(a, &href, repo_id, revision, Some(&it.path)));
                        }
                    }
                }
            }
            if let Some(href) = actions
                .get("verify")
                .and_then(|v| v.get("href"))
                .and_then(|h| h.as_str())
            {
                let href = self.fix_href(href);
                let body = serde_json::json!({"oid": it.sha256, "size": it.data.len()}).to_string();
                self.post_json(
                    &href,
                    LFS_CONTENT_TYPE,
                    body.as_bytes(),
                    true,
                    repo_id,
                    revision,
                )?;
            }
        }
        Ok(())
    }

    fn upload_multipart(
        &self,
        repo_id: &str,
        it: &Item,
        completion: &str,
        header: &serde_json::Map<String, serde_json::Value>,
        chunk: usize,
    ) -> Result<()> {
        let mut parts: Vec<(u64, String)> = header
            .iter()
            .filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|(k, v)| Some((k.parse().ok()?, self.fix_href(v.as_str()?))))
            .collect();
        parts.sort();
        if parts.len() != it.data.len().div_ceil(chunk) {
            return Err(HubError::Protocol {
                url: completion.into(),
                reason: format!(
                    "{} part URLs for {} bytes in chunks of {chunk}",
                    parts.len(),
                    it.data.len()
                ),
            });
        }
        let mut done = Vec::new();
        for (i, ((_, url), data)) in parts.iter().zip(it.data.chunks(chunk)).enumerate() {
            let a = self.send_body("PUT", url, "application/octet-stream", data, false)?;
            if !(200..300).contains(&a.status) {
                return Err(self.classify(a, url, repo_id, "main", Some(&it.path)));
            }
            let etag = a.header("etag").unwrap_or_default().to_string();
            if etag.is_empty() {
                return Err(HubError::Protocol {
                    url: url.clone(),
                    reason: format!("no etag for part {} of `{}`", i + 1, it.path),
                });
            }
            done.push(serde_json::json!({"partNumber": i + 1, "etag": etag}));
        }
        let body = serde_json::json!({"oid": it.sha256, "parts": done}).to_string();
        self.post_json(
            completion,
            LFS_CONTENT_TYPE,
            body.as_bytes(),
            false,
            repo_id,
            "main",
        )?;
        Ok(())
    }

    fn commit(
        &self,
        repo_id: &str,
        revision: &str,
        message: &str,
        items: &[Item],
    ) -> Result<(String, String)> {
        let url = format!(
            "{}/api/models/{}/commit/{}",
            self.endpoint,
            repo_id,
            encode_path(revision, false)
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut lines = vec![serde_json::json!({
            "key": "header",
            "value": {"summary": message, "description": ""},
        })];
        for i in items {
            lines.push(if i.lfs {
                serde_json::json!({"key": "lfsFile", "value": {
                    "path": i.path, "algo": "sha256", "oid": i.sha256, "size": i.data.len()}})
            } else {
                serde_json::json!({"key": "file", "value": {
                    "content": b64.encode(&i.data), "path": i.path, "encoding": "base64"}})
            });
        }
        let mut body = String::new();
        for l in lines {
            body.push_str(&l.to_string());
            body.push('\n');
        }
        let v = self.post_json(
            &url,
            "application/x-ndjson",
            body.as_bytes(),
            true,
            repo_id,
            revision,
        )?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        Ok((s("commitOid"), s("commitUrl")))
    }
}

fn item(path: String, data: Vec<u8>) -> Item {
    let sha256 = sha2::Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Item {
        path,
        data,
        sha256,
        lfs: false,
    }
}

/// `(relative path with '/', full path)` of the files to upload.
fn collect_files(dir: &Path, files: &FileSet) -> Result<Vec<(String, PathBuf)>> {
    if !dir.is_dir() {
        return Err(HubError::io(dir, "not a directory"));
    }
    if files.required.is_empty() && files.optional.is_empty() {
        let mut out = Vec::new();
        walk(dir, "", &mut out)?;
        out.sort();
        return Ok(out);
    }
    let mut out = Vec::new();
    for (f, required) in files.iter() {
        let full = dir.join(f);
        if full.is_file() {
            out.push((f.to_string(), full));
        } else if required {
            return Err(HubError::io(full, "required file is missing"));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| HubError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| HubError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let p = entry.path();
        if p.is_dir() {
            walk(&p, &rel, out)?;
        } else if p.is_file() {
            out.push((rel, p));
        }
    }
    Ok(())
}
