//! [`HubError`]: everything the hub client can fail with, one readable line each.

use std::path::PathBuf;

/// Errors of the hub client. Each prints as one line that names the repo, the
/// file or the URL concerned.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A source string or repo id that cannot name a repository.
    #[error("invalid hub source `{source_str}`: {reason}")]
    InvalidSource {
        /// The string as given.
        source_str: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The repository does not exist, or is private/gated and the token (if
    /// any) gives no access to it: the hub answers both the same way.
    #[error(
        "repository `{repo_id}` not found on {endpoint} (if it is private or gated, set HF_TOKEN to a token with access)"
    )]
    RepoNotFound {
        /// The repository.
        repo_id: String,
        /// The hub it was looked up on.
        endpoint: String,
    },
    /// The repository exists but the branch, tag or commit does not.
    #[error("revision `{revision}` not found in repository `{repo_id}`")]
    RevisionNotFound {
        /// The repository.
        repo_id: String,
        /// The revision.
        revision: String,
    },
    /// The repository exists but has no such file at that revision.
    #[error("file `{path}` not found in repository `{repo_id}` (revision `{revision}`)")]
    FileNotFound {
        /// The repository.
        repo_id: String,
        /// The revision looked at.
        revision: String,
        /// The path in the repository.
        path: String,
    },
    /// Authentication failed or the token lacks the permission (HTTP 401/403).
    #[error("not authorised for `{repo_id}` (HTTP {status}): {message}")]
    Unauthorized {
        /// The repository.
        repo_id: String,
        /// 401 or 403 (0 when refused before any request, e.g. no token).
        status: u16,
        /// What the hub said, or what is missing.
        message: String,
    },
    /// The hub could not be reached (DNS, refused connection, timeout, reset).
    #[error("cannot reach the hub at {url}: {reason}")]
    Network {
        /// The URL requested.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A downloaded file does not match the size or etag the hub reported;
    /// nothing was stored in the cache.
    #[error("corrupt download of `{path}` from `{repo_id}`: {reason}")]
    CorruptDownload {
        /// The repository.
        repo_id: String,
        /// The path in the repository.
        path: String,
        /// Expected versus received.
        reason: String,
    },
    /// Offline mode (`HF_HUB_OFFLINE=1`) and the file is not in the cache.
    #[error(
        "offline mode: `{path}` of `{repo_id}` (revision `{revision}`) is not in the cache at {cache}; download it once with the network on"
    )]
    NotCached {
        /// The repository.
        repo_id: String,
        /// The revision asked for.
        revision: String,
        /// The path in the repository.
        path: String,
        /// The hub cache directory searched.
        cache: PathBuf,
    },
    /// Any other unsuccessful HTTP answer.
    #[error("hub request {url} failed with HTTP {status}: {message}")]
    Http {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
        /// What the hub said.
        message: String,
    },
    /// The hub answered something this client cannot use (missing header,
    /// malformed JSON).
    #[error("unexpected answer from {url}: {reason}")]
    Protocol {
        /// The URL requested.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A local file or directory could not be read or written.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The client could not be configured (e.g. no home directory for the cache).
    #[error("hub client configuration: {0}")]
    Config(String),
}

impl HubError {
    /// True for errors caused by what the user typed (exit code 2 in a CLI).
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::InvalidSource { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.into(),
            reason: e.to_string(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = HubError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_the_subject() {
        let errors = [
            HubError::RepoNotFound {
                repo_id: "org/x".into(),
                endpoint: "https://huggingface.co".into(),
            },
            HubError::FileNotFound {
                repo_id: "org/x".into(),
                revision: "main".into(),
                path: "sub/cfg.json".into(),
            },
            HubError::NotCached {
                repo_id: "org/x".into(),
                revision: "main".into(),
                path: "cfg.json".into(),
                cache: "/c".into(),
            },
            HubError::CorruptDownload {
                repo_id: "org/x".into(),
                path: "w.safetensors".into(),
                reason: "expected 10 bytes, got 5".into(),
            },
        ];
        for e in errors {
            let s = e.to_string();
            assert!(!s.contains('\n'), "{s}");
            assert!(s.contains("org/x"), "{s}");
        }
        assert!(HubError::InvalidSource {
            source_str: "a:b".into(),
            reason: "r".into()
        }
        .is_usage());
    }
}
