//! [`HubClient`]: configuration (endpoint, cache, token, offline), built
//! explicitly or from the environment variables Python's huggingface_hub
//! reads, and the HTTP plumbing shared by downloads and uploads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ureq::http::Response;
use ureq::Body;

use crate::error::{HubError, Result};

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A hub client: where the hub is, where the cache is, who we are.
///
/// Cheap to clone. Build one with [`HubClient::from_env`] (what the CLI does)
/// or [`HubClient::builder`] (explicit, for tests and libraries).
#[derive(Debug, Clone)]
pub struct HubClient {
    pub(crate) endpoint: String,
    pub(crate) cache_dir: PathBuf,
    pub(crate) token: Option<String>,
    pub(crate) offline: bool,
    /// Never follows redirects: metadata requests read the headers of the
    /// first answer, as huggingface_hub does.
    pub(crate) agent: ureq::Agent,
    /// Follows redirects (file contents may live on a CDN); authorisation
    /// headers are dropped on redirect.
    pub(crate) follow_agent: ureq::Agent,
}

/// Builder of [`HubClient`].
#[derive(Debug, Clone)]
pub struct HubClientBuilder {
    endpoint: String,
    cache_dir: Option<PathBuf>,
    token: Option<String>,
    offline: bool,
    timeout: Duration,
}

impl Default for HubClientBuilder {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.into(),
            cache_dir: None,
            token: None,
            offline: false,
            timeout: Duration::from_secs(30),
        }
    }
}

impl HubClientBuilder {
    /// The hub's base URL (default `https://huggingface.co`); a trailing `/`
    /// is ignored.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into().trim_end_matches('/').to_string();
        self
    }

    /// The hub cache directory, i.e. what Python calls `HF_HUB_CACHE`
    /// (`$HF_HOME/hub` by default). Repositories live in
    /// `models--{namespace}--{name}` below it.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The access token sent as `Authorization: Bearer …` (`None`: anonymous).
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        self
    }

    /// Offline: answer from the cache only, never touch the network.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Connect and read timeout of each request (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the client. Without an explicit cache directory the default
    /// `~/.cache/huggingface/hub` (or `$XDG_CACHE_HOME/huggingface/hub`) is used.
    pub fn build(self) -> Result<HubClient> {
        let cache_dir = match self.cache_dir {
            Some(d) => d,
            None => default_hf_home(&|k| std::env::var(k).ok())?.join("hub"),
        };
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(HubError::Config(format!(
                "endpoint `{}` must start with http:// or https://",
                self.endpoint
            )));
        }
        // A hub emulator on the loopback interface must not go through a proxy
        // configured for the outside world.
        let loopback = ["127.0.0.1", "localhost", "[::1]"].iter().any(|h| {
            self.endpoint
                .split("://")
                .nth(1)
                .is_some_and(|r| r.starts_with(h))
        });
        let config = |follow: bool| {
            let mut b = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(self.timeout))
                .timeout_recv_response(Some(self.timeout))
                .timeout_recv_body(None)
                .user_agent(concat!("synthsae-hub/", env!("CARGO_PKG_VERSION")))
                .max_redirects(if follow { 10 } else { 0 })
                .max_redirects_will_error(true);
            if loopback {
                b = b.proxy(None);
            }
            b.build()
        };
        Ok(HubClient {
            endpoint: self.endpoint,
            cache_dir,
            token: self.token,
            offline: self.offline,
            agent: config(false).into(),
            follow_agent: config(true).into(),
        })
    }
}

/// The settings [`HubClient::from_env`] reads, resolved from a variable
/// lookup (so they can be tested without touching the process environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSettings {
    /// `HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: String,
    /// `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`.
    pub cache_dir: PathBuf,
    /// `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else the token file
    /// (`HF_TOKEN_PATH`, default `$HF_HOME/token`, as `hf auth login` writes it).
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is 1/ON/YES/TRUE.
    pub offline: bool,
}

impl EnvSettings {
    /// Resolves the settings with `var` as the environment.
    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let nonempty = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let hf_home = match nonempty("HF_HOME") {
            Some(h) => expand_user(&h, var),
            None => default_hf_home(var)?,
        };
        let cache_dir = nonempty("HF_HUB_CACHE")
            .or_else(|| nonempty("HUGGINGFACE_HUB_CACHE"))
            .map(|c| expand_user(&c, var))
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = nonempty("HF_TOKEN")
            .or_else(|| nonempty("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let path = nonempty("HF_TOKEN_PATH")
                    .map(|p| expand_user(&p, var))
                    .unwrap_or_else(|| hf_home.join("token"));
                std::fs::read_to_string(path).ok()
            })
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let truthy = |k: &str| {
            var(k).is_some_and(|v| {
                matches!(
                    v.trim().to_ascii_uppercase().as_str(),
                    "1" | "ON" | "YES" | "TRUE"
                )
            })
        };
        let endpoint = nonempty("HF_ENDPOINT")
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        Ok(Self {
            endpoint,
            cache_dir,
            token,
            offline: truthy("HF_HUB_OFFLINE") || truthy("TRANSFORMERS_OFFLINE"),
        })
    }

    /// A builder preset with these settings.
    pub fn builder(self) -> HubClientBuilder {
        HubClient::builder()
            .endpoint(self.endpoint)
            .cache_dir(self.cache_dir)
            .token(self.token)
            .offline(self.offline)
    }
}

fn home(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    var("HOME")
        .or_else(|| var("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn expand_user(p: &str, var: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match (p.strip_prefix("~/"), home(var)) {
        (Some(rest), Some(h)) => h.join(rest),
        _ if p == "~" => home(var).unwrap_or_else(|| PathBuf::from(p)),
        _ => PathBuf::from(p),
    }
}

/// `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
fn default_hf_home(var: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    if let Some(x) = var("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Ok(expand_user(&x, var).join("huggingface"));
    }
    home(var)
        .map(|h| h.join(".cache").join("huggingface"))
        .ok_or_else(|| {
            HubError::Config("no home directory for the cache: set HF_HOME or HF_HUB_CACHE".into())
        })
}

/// An HTTP answer reduced to what error classification needs.
pub(crate) struct Answer {
    pub status: u16,
    pub response: Response<Body>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
    }
}

impl HubClient {
    /// A builder with the defaults (public hub, `~/.cache/huggingface/hub`,
    /// anonymous, online); nothing is read from the environment.
    pub fn builder() -> HubClientBuilder {
        HubClientBuilder::default()
    }

    /// A client configured like Python's huggingface_hub: `HF_ENDPOINT`,
    /// `HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN` (or the token file),
    /// `HF_HUB_OFFLINE`. See [`EnvSettings`].
    pub fn from_env() -> Result<Self> {
        EnvSettings::from_vars(&|k| std::env::var(k).ok())?
            .builder()
            .build()
    }

    /// The hub's base URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The hub cache directory (`HF_HUB_CACHE`).
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the client is offline.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    pub(crate) fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// Sends a request; network-level failures become [`HubError::Network`].
    pub(crate) fn send(
        &self,
        req: std::result::Result<Response<Body>, ureq::Error>,
        url: &str,
    ) -> Result<Answer> {
        match req {
            Ok(response) => Ok(Answer {
                status: response.status().as_u16(),
                response,
            }),
            Err(e) => Err(network_error(url, e)),
        }
    }

    /// `GET`/`HEAD`-style request without a body on the non-following agent.
    pub(crate) fn request(&self, method: &str, url: &str, follow: bool) -> Result<Answer> {
        let agent = if follow {
            &self.follow_agent
        } else {
            &self.agent
        };
        let mut b = match method {
            "HEAD" => agent.head(url),
            "DELETE" => agent.delete(url),
            _ => agent.get(url),
        };
        if let Some(a) = self.auth() {
            b = b.header("Authorization", a);
        }
        b = b.header("Accept-Encoding", "identity");
        self.send(b.call(), url)
    }

    /// `POST`/`PUT` with a body.
    pub(crate) fn send_body(
        &self,
        method: &str,
        url: &str,
        content_type: &str,
        body: &[u8],
        with_auth: bool,
    ) -> Result<Answer> {
        let mut b = if method == "PUT" {
            self.follow_agent.put(url)
        } else {
            self.follow_agent.post(url)
        };
        if with_auth {
            if let Some(a) = self.auth() {
                b = b.header("Authorization", a);
            }
        }
        b = b.header("Content-Type", content_type);
        if content_type.contains("git-lfs") {
            b = b.header("Accept", content_type);
        }
        self.send(b.send(body), url)
    }

    /// Classifies an unsuccessful answer the way huggingface_hub's
    /// `hf_raise_for_status` does (`X-Error-Code`, then the status).
    pub(crate) fn classify(
        &self,
        mut a: Answer,
        url: &str,
        repo_id: &str,
        revision: &str,
        path: Option<&str>,
    ) -> HubError {
        let code = a.header("x-error-code").map(str::to_string);
        let header_msg = a.header("x-error-message").map(str::to_string);
        let body = a
            .response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let message = header_msg
            .clone()
            .or_else(|| {
                serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str().map(str::to_string)))
            })
            .unwrap_or_else(|| one_line(&body));
        match (code.as_deref(), a.status) {
            (Some("RevisionNotFound"), _) => HubError::RevisionNotFound {
                repo_id: repo_id.into(),
                revision: revision.into(),
            },
            (Some("EntryNotFound"), _) => HubError::FileNotFound {
                repo_id: repo_id.into(),
                revision: revision.into(),
                path: path.unwrap_or_default().into(),
            },
            (Some("GatedRepo"), s) => HubError::Unauthorized {
                repo_id: repo_id.into(),
                status: s,
                message: format!(
                    "gated repository, accept its conditions on the hub first ({message})"
                ),
            },
            (_, 401)
                if header_msg.as_deref() == Some("Invalid credentials in Authorization header") =>
            {
                HubError::Unauthorized {
                    repo_id: repo_id.into(),
                    status: 401,
                    message: "invalid token (check HF_TOKEN)".into(),
                }
            }
            (Some("RepoNotFound"), _) => HubError::RepoNotFound {
                repo_id: repo_id.into(),
                endpoint: self.endpoint.clone(),
            },
            (None, 404) if path.is_some() => HubError::FileNotFound {
                repo_id: repo_id.into(),
                revision: revision.into(),
                path: path.unwrap_or_default().into(),
            },
            (_, s @ (401 | 403)) => HubError::Unauthorized {
                repo_id: repo_id.into(),
                status: s,
                message: if message.is_empty() {
                    if self.token.is_some() {
                        "the token has no access".into()
                    } else {
                        "no token (set HF_TOKEN)".into()
                    }
                } else {
                    message
                },
            },
            (_, s) => HubError::Http {
                url: url.into(),
                status: s,
                message,
            },
        }
    }
}

fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

/// A transport error as [`HubError::Network`] (or [`HubError::Protocol`] for
/// answers that are not HTTP).
pub(crate) fn network_error(url: &str, e: ureq::Error) -> HubError {
    use ureq::Error as E;
    let reason = match &e {
        E::HostNotFound => "host not found".to_string(),
        E::ConnectionFailed => "connection failed".to_string(),
        E::Timeout(t) => format!("timed out ({t})"),
        E::Io(io) => io.to_string(),
        E::Protocol(_) | E::BadUri(_) | E::Http(_) | E::TooManyRedirects | E::RedirectFailed => {
            return HubError::Protocol {
                url: url.into(),
                reason: e.to_string(),
            }
        }
        other => other.to_string(),
    };
    HubError::Network {
        url: url.into(),
        reason,
    }
}

/// Percent-encodes `s` for a URL path; `/` is kept when `keep_slash`.
pub(crate) fn encode_path(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> EnvSettings {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvSettings::from_vars(&|k| m.get(k).cloned()).unwrap()
    }

    #[test]
    fn env_defaults_follow_huggingface_hub() {
        let s = settings(&[("HOME", "/home/u")]);
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(s.token, None);
        assert!(!s.offline);
        let s = settings(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(s.cache_dir, PathBuf::from("/x/huggingface/hub"));
    }

    #[test]
    fn env_overrides() {
        let s = settings(&[
            ("HOME", "/home/u"),
            ("HF_HOME", "~/hf"),
            ("HF_ENDPOINT", "http://127.0.0.1:9/"),
            ("HF_TOKEN", " hf_abc \n"),
            ("HF_HUB_OFFLINE", "yes"),
        ]);
        assert_eq!(s.endpoint, "http://127.0.0.1:9");
        assert_eq!(s.cache_dir, PathBuf::from("/home/u/hf/hub"));
        assert_eq!(s.token.as_deref(), Some("hf_abc"));
        assert!(s.offline);
        let s = settings(&[("HF_HOME", "/h"), ("HF_HUB_CACHE", "/c")]);
        assert_eq!(s.cache_dir, PathBuf::from("/c"));
        let s = settings(&[("HF_HOME", "/h"), ("HF_HUB_OFFLINE", "0")]);
        assert!(!s.offline);
    }

    #[test]
    fn token_file_is_read_when_no_variable() {
        let dir = std::env::temp_dir().join(format!("synthsae-hub-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "hf_file\n").unwrap();
        let home = dir.to_str().unwrap();
        let s = settings(&[("HF_HOME", home)]);
        assert_eq!(s.token.as_deref(), Some("hf_file"));
        let s = settings(&[("HF_HOME", home), ("HF_TOKEN", "hf_env")]);
        assert_eq!(s.token.as_deref(), Some("hf_env"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn url_encoding() {
        assert_eq!(encode_path("a b/c.json", true), "a%20b/c.json");
        assert_eq!(encode_path("refs/pr/1", false), "refs%2Fpr%2F1");
    }

    #[test]
    fn builder_rejects_bad_endpoint() {
        let e = HubClient::builder()
            .endpoint("ftp://x")
            .cache_dir("/tmp/x")
            .build()
            .unwrap_err();
        assert!(matches!(e, HubError::Config(_)));
    }
}
