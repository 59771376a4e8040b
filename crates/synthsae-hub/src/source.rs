//! Source strings as sae-lens's `load_from_source` reads them, and the file
//! lists callers ask for.

use std::path::{Path, PathBuf};

use crate::error::{HubError, Result};

/// Where a model or SAE comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory on this machine.
    Local(PathBuf),
    /// A repository on the hub, optionally a folder inside it.
    Hub {
        /// `name` or `namespace/name`.
        repo_id: String,
        /// Folder inside the repository (`None`: the root).
        subfolder: Option<String>,
    },
}

/// The files a caller wants from a repository folder. The hub crate knows no
/// model types: the caller names the files (e.g. a synthetic model needs its
/// config and weights and may have a hierarchy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSet<'a> {
    /// Files that must exist; a missing one is an error.
    pub required: &'a [&'a str],
    /// Files fetched when they exist and skipped when the hub says they do not.
    pub optional: &'a [&'a str],
}

impl<'a> FileSet<'a> {
    /// A file set.
    pub const fn new(required: &'a [&'a str], optional: &'a [&'a str]) -> Self {
        Self { required, optional }
    }

    /// Required then optional names, each with whether it is required.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, bool)> + '_ {
        self.required
            .iter()
            .map(|f| (*f, true))
            .chain(self.optional.iter().map(|f| (*f, false)))
    }
}

/// Parses a source string with sae-lens's rules (`load_from_source`):
///
/// * a string that starts with `/`, `./`, `../` or `~`, contains a backslash,
///   or names an existing path is a local path;
/// * anything else is a hub reference `repo_id` or `repo_id:subfolder`, split
///   at the first colon.
///
/// One deliberate difference: a leading `~/` is expanded to the home
/// directory (sae-lens passes it through literally, which never loads).
/// The repo id is validated with the hub's rules and the subfolder is
/// normalised (no leading/trailing `/`, no `.` or `..` components; empty
/// means the root).
pub fn parse_source(source: &str) -> Result<Source> {
    if source.is_empty() {
        return Err(HubError::InvalidSource {
            source_str: source.into(),
            reason: "empty".into(),
        });
    }
    if is_local_path(source) {
        return Ok(Source::Local(expand_home(source)));
    }
    let (repo_id, subfolder) = match source.split_once(':') {
        Some((r, s)) => (r, Some(s)),
        None => (source, None),
    };
    validate_repo_id(repo_id).map_err(|reason| HubError::InvalidSource {
        source_str: source.into(),
        reason,
    })?;
    let subfolder = match subfolder {
        Some(s) => normalize_subfolder(s).map_err(|reason| HubError::InvalidSource {
            source_str: source.into(),
            reason,
        })?,
        None => None,
    };
    Ok(Source::Hub {
        repo_id: repo_id.into(),
        subfolder,
    })
}

/// sae-lens's `_is_local_path`.
fn is_local_path(s: &str) -> bool {
    s.starts_with('/')
        || s.starts_with("./")
        || s.starts_with("../")
        || s.starts_with('~')
        || s.contains('\\')
        || Path::new(s).exists()
}

fn expand_home(s: &str) -> PathBuf {
    if let Some(rest) = s.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(home).join(rest);
        }
    }
    PathBuf::from(s)
}

/// Checks a repo id against the hub's rules (as huggingface_hub's
/// `validate_repo_id`): `name` or `namespace/name`, each part 1 to 96 of
/// `[A-Za-z0-9_.-]`, starting and ending with a letter, digit or `_`, without
/// `--` or `..`, not ending in `.git`.
pub fn validate_repo_id(repo_id: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = repo_id.split('/').collect();
    if parts.len() > 2 {
        return Err(format!(
            "repo id `{repo_id}` has more than one `/` (expected `name` or `namespace/name`; a folder inside the repo goes after a colon: `namespace/name:folder`)"
        ));
    }
    for part in &parts {
        if part.is_empty() || part.len() > 96 {
            return Err(format!(
                "repo id `{repo_id}`: each part must have 1 to 96 characters"
            ));
        }
        if !part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(format!(
                "repo id `{repo_id}` may only contain letters, digits, `_`, `-` and `.`"
            ));
        }
        let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !edge(part.chars().next()) || !edge(part.chars().last()) {
            return Err(format!(
                "repo id `{repo_id}`: parts cannot start or end with `-` or `.`"
            ));
        }
    }
    if repo_id.contains("--") || repo_id.contains("..") {
        return Err(format!("repo id `{repo_id}` cannot contain `--` or `..`"));
    }
    if repo_id.ends_with(".git") {
        return Err(format!("repo id `{repo_id}` cannot end with `.git`"));
    }
    Ok(())
}

/// Normalises a folder inside a repository: `None` for the root.
pub fn normalize_subfolder(s: &str) -> std::result::Result<Option<String>, String> {
    let parts: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(bad) = parts.iter().find(|p| **p == "." || **p == "..") {
        return Err(format!("folder `{s}` cannot contain `{bad}`"));
    }
    if s.contains('\\') {
        return Err(format!("folder `{s}` cannot contain a backslash"));
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// `subfolder/file`, or `file` at the root.
pub(crate) fn path_in_repo(subfolder: Option<&str>, file: &str) -> String {
    match subfolder {
        Some(s) => format!("{s}/{file}"),
        None => file.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(repo: &str, sub: Option<&str>) -> Source {
        Source::Hub {
            repo_id: repo.into(),
            subfolder: sub.map(Into::into),
        }
    }

    #[test]
    fn local_path_rules() {
        assert_eq!(
            parse_source("/abs/dir").unwrap(),
            Source::Local("/abs/dir".into())
        );
        assert_eq!(parse_source("./d").unwrap(), Source::Local("./d".into()));
        assert_eq!(parse_source("../d").unwrap(), Source::Local("../d".into()));
        assert_eq!(parse_source("a\\b").unwrap(), Source::Local("a\\b".into()));
        assert!(matches!(parse_source("~/m").unwrap(), Source::Local(_)));
        // An existing relative path is local even without `./`.
        assert!(matches!(parse_source("src").unwrap(), Source::Local(_)));
    }

    #[test]
    fn hub_references() {
        assert_eq!(parse_source("org/name").unwrap(), hub("org/name", None));
        assert_eq!(parse_source("gpt2").unwrap(), hub("gpt2", None));
        assert_eq!(
            parse_source("org/name:models/m1").unwrap(),
            hub("org/name", Some("models/m1"))
        );
        // Split at the first colon; the folder is normalised.
        assert_eq!(
            parse_source("org/name:/a//b/").unwrap(),
            hub("org/name", Some("a/b"))
        );
        assert_eq!(parse_source("org/name:").unwrap(), hub("org/name", None));
    }

    #[test]
    fn bad_references_are_usage_errors() {
        for s in [
            "",
            "a/b/c",
            "org/-x",
            "org/x.",
            "org/a--b",
            "org/a..b",
            "org/x.git",
            "org/x y",
            "org/x:../up",
            "org/x:a/./b",
            ":folder",
        ] {
            let e = parse_source(s).unwrap_err();
            assert!(e.is_usage(), "{s}: {e}");
        }
    }

    #[test]
    fn file_set_order() {
        let f = FileSet::new(&["a", "b"], &["c"]);
        let v: Vec<_> = f.iter().collect();
        assert_eq!(v, vec![("a", true), ("b", true), ("c", false)]);
        assert_eq!(path_in_repo(Some("x/y"), "a"), "x/y/a");
        assert_eq!(path_in_repo(None, "a"), "a");
    }
}
