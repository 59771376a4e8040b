//! Downloads into the cache layout Python's huggingface_hub uses, so both
//! share files:
//!
//! ```text
//! $HF_HUB_CACHE/models--{namespace}--{name}/
//!   blobs/{etag}                         file contents, named by etag
//!   snapshots/{commit}/{path in repo}    relative symlinks to ../../blobs/{etag}
//!   refs/{revision}                      the commit a branch or tag pointed to
//!   .no_exist/{commit}/{path}            markers for files known to be absent
//! ```
//!
//! Per file, as `hf_hub_download`: a `HEAD` on `/{repo}/resolve/{revision}/{path}`
//! (relative redirects followed, absolute ones not) gives the commit
//! (`x-repo-commit`), the etag (`x-linked-etag`, else `etag`) and the size
//! (`x-linked-size`, else `content-length`); the blob is downloaded only if
//! the cache lacks it. All files of one call are pinned to the commit the
//! first answer named, so they come from the same revision even if the branch
//! moves meanwhile.
//!
//! Differences from hf-hub's sync API (why transfers are done here with
//! `ureq` and only the layout helpers come from `hf-hub`): hf-hub's errors
//! drop the response headers, so "repository not found" and "file not found"
//! (`X-Error-Code`) cannot be told apart; it has no offline mode; it does not
//! check the received size or hash against the etag; it leaves `.part` files
//! in `blobs/` after a failed transfer; and it panics on some malformed
//! answers. Here a blob is written to `blobs/{etag}.{unique}.incomplete`,
//! checked (size; sha256 for LFS etags, git-sha1 for regular-file etags) and
//! only then renamed into place, so the cache never holds a partial or
//! corrupt blob and concurrent downloaders (Rust or Python) cannot collide.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hf_hub::{Cache, Repo, RepoType};
use sha1::Digest as _;

use crate::client::{encode_path, HubClient};
use crate::error::{HubError, Result};
use crate::source::{
    normalize_subfolder, parse_source, path_in_repo, validate_repo_id, FileSet, Source,
};

/// What a download produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The folder to load from: `snapshots/{commit}/{subfolder}` in the cache.
    pub dir: PathBuf,
    /// The commit the files come from.
    pub commit: String,
    /// The requested files that exist (required ones and present optional ones).
    pub files: Vec<String>,
    /// Those that were fetched over the network by this call (the others
    /// were already in the cache).
    pub downloaded: Vec<String>,
}

/// Metadata of one file, as the hub reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMetadata {
    /// The commit the revision resolves to.
    pub commit: String,
    /// Normalised etag (sha256 for LFS files, git-sha1 for others).
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `W/"abc"` or `"abc"` → `abc`, as huggingface_hub's `_normalize_etag`.
fn normalize_etag(e: &str) -> String {
    e.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

fn valid_etag(e: &str) -> bool {
    !e.is_empty()
        && e.len() <= 255
        && e.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The cache folder of one repository.
pub(crate) struct RepoCache {
    root: PathBuf,
    cache: Cache,
    repo_id: String,
}

impl RepoCache {
    pub(crate) fn new(cache_dir: &Path, repo_id: &str) -> Self {
        let repo = Repo::new(repo_id.to_string(), RepoType::Model);
        Self {
            root: cache_dir.join(repo.folder_name()),
            cache: Cache::new(cache_dir.to_path_buf()),
            repo_id: repo_id.to_string(),
        }
    }

    fn layout(&self, revision: &str) -> hf_hub::CacheRepo {
        self.cache.repo(Repo::with_revision(
            self.repo_id.clone(),
            RepoType::Model,
            revision.to_string(),
        ))
    }

    fn blob(&self, etag: &str) -> PathBuf {
        self.layout("main").blob_path(etag)
    }

    fn snapshot(&self, commit: &str) -> PathBuf {
        self.layout("main").pointer_path(commit)
    }

    /// The commit a revision points to in the cache.
    pub(crate) fn resolve_ref(&self, revision: &str) -> Option<String> {
        if is_commit_hash(revision) {
            return Some(revision.to_string());
        }
        let p = self.root.join("refs").join(revision);
        let c = std::fs::read_to_string(p).ok()?;
        let c = c.trim();
        (!c.is_empty()).then(|| c.to_string())
    }

    fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if revision == commit || self.resolve_ref(revision).as_deref() == Some(commit) {
            return Ok(());
        }
        self.layout(revision)
            .create_ref(commit)
            .map_err(|e| HubError::io(self.root.join("refs").join(revision), e))
    }

    fn mark_absent(&self, commit: &str, path: &str) {
        let p = self.root.join(".no_exist").join(commit).join(path);
        if let Some(parent) = p.parent() {
            if std::fs::create_dir_all(parent).is_ok() {
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p);
            }
        }
    }

    /// Links `snapshots/{commit}/{path}` to the blob (relative symlink, as
    /// huggingface_hub; a copy where symlinks are unavailable).
    fn link(&self, commit: &str, path: &str, blob: &Path) -> Result<PathBuf> {
        let pointer = self.snapshot(commit).join(path);
        let parent = pointer
            .parent()
            .ok_or_else(|| HubError::io(&pointer, "no parent directory"))?;
        std::fs::create_dir_all(parent).map_err(|e| HubError::io(parent, e))?;
        if let (Ok(a), Ok(b)) = (std::fs::canonicalize(&pointer), std::fs::canonicalize(blob)) {
            if a == b {
                return Ok(pointer);
            }
        }
        // `snapshots/{commit}/a/b` → `../../../blobs/{etag}`.
        let depth = parent
            .strip_prefix(&self.root)
            .map(|r| r.components().count())
            .unwrap_or(2);
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(blob.file_name().unwrap_or_default());
        let tmp = temp_name(&pointer, "link");
        let made = make_link(&target, blob, &tmp);
        made.and_then(|()| std::fs::rename(&tmp, &pointer))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                HubError::io(&pointer, e)
            })?;
        Ok(pointer)
    }
}

#[cfg(unix)]
fn make_link(target: &Path, _blob: &Path, at: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, at)
}

#[cfg(windows)]
fn make_link(target: &Path, blob: &Path, at: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, at).or_else(|_| std::fs::copy(blob, at).map(|_| ()))
}

#[cfg(not(any(unix, windows)))]
fn make_link(_target: &Path, blob: &Path, at: &Path) -> std::io::Result<()> {
    std::fs::copy(blob, at).map(|_| ())
}

fn temp_name(p: &Path, what: &str) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut s = p.as_os_str().to_owned();
    s.push(format!(".{}-{n}.{what}", std::process::id()));
    PathBuf::from(s)
}

/// Removes a temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Hashes what is written, for the etag check.
enum EtagHasher {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1),
    None,
}

impl EtagHasher {
    fn for_etag(etag: &str, size: u64) -> Self {
        let hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
        match etag.len() {
            64 if hex => Self::Sha256(sha2::Sha256::new()),
            40 if hex => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                Self::GitSha1(h)
            }
            _ => Self::None,
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(b),
            Self::GitSha1(h) => h.update(b),
            Self::None => {}
        }
    }

    /// `Some((kind, hex))` when the etag is a hash we know.
    fn finish(self) -> Option<(&'static str, String)> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        match self {
            Self::Sha256(h) => Some(("sha256", hex(&h.finalize()))),
            Self::GitSha1(h) => Some(("git-sha1", hex(&h.finalize()))),
            Self::None => None,
        }
    }
}

impl HubClient {
    /// Resolves a source string (see [`parse_source`]): a local path is
    /// returned as it is; a hub reference is downloaded (only `files`) and
    /// the cache folder holding them is returned.
    pub fn resolve_source(&self, source: &str, files: &FileSet) -> Result<PathBuf> {
        match parse_source(source)? {
            Source::Local(p) => Ok(p),
            Source::Hub { repo_id, subfolder } => {
                self.download(&repo_id, subfolder.as_deref(), files)
            }
        }
    }

    /// Downloads `files` from `subfolder` of `repo_id` at `main` and returns
    /// the local folder (`snapshots/{commit}/{subfolder}` in the cache).
    pub fn download(
        &self,
        repo_id: &str,
        subfolder: Option<&str>,
        files: &FileSet,
    ) -> Result<PathBuf> {
        Ok(self.download_files(repo_id, "main", subfolder, files)?.dir)
    }

    /// Downloads `files` from `subfolder` of `repo_id` at `revision` (branch,
    /// tag or commit), reusing what the cache holds. Offline, answers from the
    /// cache only.
    pub fn download_files(
        &self,
        repo_id: &str,
        revision: &str,
        subfolder: Option<&str>,
        files: &FileSet,
    ) -> Result<Snapshot> {
        validate_repo_id(repo_id).map_err(|reason| HubError::InvalidSource {
            source_str: repo_id.into(),
            reason,
        })?;
        if revision.is_empty() {
            return Err(HubError::InvalidSource {
                source_str: repo_id.into(),
                reason: "empty revision".into(),
            });
        }
        let subfolder = match subfolder {
            Some(s) => normalize_subfolder(s).map_err(|reason| HubError::InvalidSource {
                source_str: format!("{repo_id}:{s}"),
                reason,
            })?,
            None => None,
        };
        for (f, _) in files.iter() {
            if normalize_subfolder(f).ok().flatten().as_deref() != Some(f) {
                return Err(HubError::InvalidSource {
                    source_str: f.into(),
                    reason: "file names must be plain relative paths".into(),
                });
            }
        }
        let sub = subfolder.as_deref();
        let cache = RepoCache::new(&self.cache_dir, repo_id);
        if self.offline {
            return self.cached_snapshot(&cache, repo_id, revision, sub, files);
        }
        // A commit already complete in the cache needs no request (as
        // huggingface_hub, which trusts snapshots of immutable commits).
        if is_commit_hash(revision) {
            if let Ok(s) = self.cached_snapshot(&cache, repo_id, revision, sub, files) {
                return Ok(s);
            }
        }
        let mut commit: Option<String> = is_commit_hash(revision).then(|| revision.to_string());
        let mut present = Vec::new();
        let mut downloaded = Vec::new();
        for (file, required) in files.iter() {
            let path = path_in_repo(sub, file);
            let at = commit.clone().unwrap_or_else(|| revision.to_string());
            let meta = match self.file_metadata(repo_id, &at, &path) {
                Ok(m) => m,
                Err(HubError::FileNotFound { .. }) if !required => {
                    if let Some(c) = &commit {
                        cache.mark_absent(c, &path);
                    }
                    continue;
                }
                Err(e @ HubError::Network { .. }) => {
                    // As huggingface_hub: no connection but the files are
                    // cached → use the cache.
                    return match self.cached_snapshot(&cache, repo_id, revision, sub, files) {
                        Ok(s) => {
                            log::warn!("{e}; using the cached copy of `{repo_id}`");
                            Ok(s)
                        }
                        Err(_) => Err(e),
                    };
                }
                Err(e) => return Err(e),
            };
            let c = commit.get_or_insert_with(|| meta.commit.clone()).clone();
            let blob = cache.blob(&meta.etag);
            let cached =
                std::fs::metadata(&blob).is_ok_and(|m| m.is_file() && m.len() == meta.size);
            if !cached {
                let url = self.resolve_url(repo_id, &c, &path);
                self.fetch_blob(&url, repo_id, &path, &meta, &blob)?;
                downloaded.push(file.to_string());
            }
            cache.link(&c, &path, &blob)?;
            present.push(file.to_string());
        }
        let commit = match commit {
            Some(c) => c,
            // Nothing required and nothing optional found: the revision
            // itself must still exist; ask the API.
            None => self.revision_commit(repo_id, revision)?,
        };
        cache.write_ref(revision, &commit)?;
        let snap = cache.snapshot(&commit);
        let dir = sub.map_or(snap.clone(), |s| snap.join(s));
        std::fs::create_dir_all(&dir).map_err(|e| HubError::io(&dir, e))?;
        Ok(Snapshot {
            dir,
            commit,
            files: present,
            downloaded,
        })
    }

    /// The cache-only answer (offline mode, or no connection).
    fn cached_snapshot(
        &self,
        cache: &RepoCache,
        repo_id: &str,
        revision: &str,
        sub: Option<&str>,
        files: &FileSet,
    ) -> Result<Snapshot> {
        let not_cached = |path: String| HubError::NotCached {
            repo_id: repo_id.into(),
            revision: revision.into(),
            path,
            cache: self.cache_dir.clone(),
        };
        let first = files
            .required
            .first()
            .map_or_else(|| sub.unwrap_or(".").to_string(), |f| path_in_repo(sub, f));
        let commit = cache
            .resolve_ref(revision)
            .ok_or_else(|| not_cached(first))?;
        let snap = cache.snapshot(&commit);
        let mut present = Vec::new();
        for (file, required) in files.iter() {
            let path = path_in_repo(sub, file);
            if snap.join(&path).is_file() {
                present.push(file.to_string());
            } else if required {
                return Err(not_cached(path));
            }
        }
        let dir = sub.map_or(snap.clone(), |s| snap.join(s));
        if !dir.is_dir() {
            return Err(not_cached(sub.unwrap_or(".").to_string()));
        }
        Ok(Snapshot {
            dir,
            commit,
            files: present,
            downloaded: Vec::new(),
        })
    }

    /// `{endpoint}/{repo}/resolve/{revision}/{path}`.
    pub fn resolve_url(&self, repo_id: &str, revision: &str, path: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint,
            repo_id,
            encode_path(revision, false),
            encode_path(path, true)
        )
    }

    /// The hub's metadata of one file (huggingface_hub's
    /// `get_hf_file_metadata`): commit, etag and size, from a `HEAD` request.
    pub fn file_metadata(&self, repo_id: &str, revision: &str, path: &str) -> Result<FileMetadata> {
        if self.offline {
            return Err(HubError::NotCached {
                repo_id: repo_id.into(),
                revision: revision.into(),
                path: path.into(),
                cache: self.cache_dir.clone(),
            });
        }
        let mut url = self.resolve_url(repo_id, revision, path);
        let mut hops = 0;
        let a = loop {
            let a = self.request("HEAD", &url, false)?;
            // Follow relative redirects only (renamed repos); an absolute one
            // points at the file store and its headers are what we need.
            if (300..400).contains(&a.status) && hops < 5 {
                if let Some(loc) = a.header("location").filter(|l| l.starts_with('/')) {
                    url = format!("{}{}", origin(&self.endpoint), loc);
                    hops += 1;
                    continue;
                }
            }
            break a;
        };
        if !(200..400).contains(&a.status) {
            return Err(self.classify(a, &url, repo_id, revision, Some(path)));
        }
        let missing = |h: &str| HubError::Protocol {
            url: url.clone(),
            reason: format!("no `{h}` header (is HF_ENDPOINT a Hugging Face hub?)"),
        };
        let commit = a
            .header("x-repo-commit")
            .ok_or_else(|| missing("x-repo-commit"))?
            .trim()
            .to_string();
        let etag = normalize_etag(
            a.header("x-linked-etag")
                .or_else(|| a.header("etag"))
                .ok_or_else(|| missing("etag"))?,
        );
        if !valid_etag(&etag) || commit.is_empty() || commit.contains(['/', '\\', '.']) {
            return Err(HubError::Protocol {
                url,
                reason: format!("unusable etag `{etag}` or commit `{commit}`"),
            });
        }
        let size = a
            .header("x-linked-size")
            .or_else(|| a.header("content-length"))
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| missing("content-length"))?;
        Ok(FileMetadata { commit, etag, size })
    }

    /// The commit a revision points to, from `/api/models/{repo}/revision/{rev}`.
    pub(crate) fn revision_commit(&self, repo_id: &str, revision: &str) -> Result<String> {
        let url = format!(
            "{}/api/models/{}/revision/{}",
            self.endpoint,
            repo_id,
            encode_path(revision, false)
        );
        let mut a = self.request("GET", &url, false)?;
        if a.status != 200 {
            return Err(self.classify(a, &url, repo_id, revision, None));
        }
        let v: serde_json::Value =
            a.response
                .body_mut()
                .read_json()
                .map_err(|e| HubError::Protocol {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        v.get("sha")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty() && !s.contains(['/', '\\', '.']))
            .map(str::to_string)
            .ok_or(HubError::Protocol {
                url,
                reason: "no `sha` in the repository info".into(),
            })
    }

    /// Streams `url` into a temporary file next to `blob`, checks size and
    /// etag, then renames it into place. On any failure nothing is left.
    fn fetch_blob(
        &self,
        url: &str,
        repo_id: &str,
        path: &str,
        meta: &FileMetadata,
        blob: &Path,
    ) -> Result<()> {
        let dir = blob
            .parent()
            .ok_or_else(|| HubError::io(blob, "no parent directory"))?;
        std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, e))?;
        let a = self.request("GET", url, true)?;
        if !(200..300).contains(&a.status) {
            return Err(self.classify(a, url, repo_id, &meta.commit, Some(path)));
        }
        let corrupt = |reason: String| HubError::CorruptDownload {
            repo_id: repo_id.into(),
            path: path.into(),
            reason,
        };
        let tmp = temp_name(blob, "incomplete");
        let mut guard = TempGuard(Some(tmp.clone()));
        let mut file = std::fs::File::create(&tmp).map_err(|e| HubError::io(&tmp, e))?;
        let mut hasher = EtagHasher::for_etag(&meta.etag, meta.size);
        let mut reader = a.response.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut received: u64 = 0;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(corrupt(format!(
                        "transfer ended after {received} of {} bytes ({e})",
                        meta.size
                    )))
                }
            };
            received += n as u64;
            if received > meta.size {
                return Err(corrupt(format!(
                    "received more than the {} bytes the hub reported",
                    meta.size
                )));
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(|e| HubError::io(&tmp, e))?;
        }
        if received != meta.size {
            return Err(corrupt(format!(
                "received {received} bytes, the hub reported {}",
                meta.size
            )));
        }
        if let Some((kind, got)) = hasher.finish() {
            if got != meta.etag {
                return Err(corrupt(format!(
                    "{kind} {got} does not match the etag {}",
                    meta.etag
                )));
            }
        }
        file.sync_all().map_err(|e| HubError::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, blob).map_err(|e| HubError::io(blob, e))?;
        guard.0 = None;
        Ok(())
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(endpoint: &str) -> &str {
    let start = endpoint.find("://").map_or(0, |i| i + 3);
    match endpoint[start..].find('/') {
        Some(i) => &endpoint[..start + i],
        None => endpoint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_and_commits() {
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert!(valid_etag("abc-1_2"));
        assert!(!valid_etag("../x"));
        assert!(is_commit_hash(&"a".repeat(40)));
        assert!(!is_commit_hash("main"));
        assert_eq!(origin("http://127.0.0.1:5/x"), "http://127.0.0.1:5");
        assert_eq!(origin("https://huggingface.co"), "https://huggingface.co");
    }

    #[test]
    fn git_sha1_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let mut h = EtagHasher::for_etag("ce013625030ba8dba906f756967f9e9ca394464a", 6);
        h.update(b"hello\n");
        assert_eq!(
            h.finish().unwrap().1,
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn cache_layout_matches_huggingface_hub() {
        let c = RepoCache::new(Path::new("/c"), "org/name");
        assert_eq!(c.blob("e"), PathBuf::from("/c/models--org--name/blobs/e"));
        assert_eq!(
            c.snapshot("abc"),
            PathBuf::from("/c/models--org--name/snapshots/abc")
        );
    }
}
