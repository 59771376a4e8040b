//! A small Hugging Face Hub emulator for tests: an HTTP/1.1 server on
//! `127.0.0.1` (a thread per connection, one request per connection) that
//! serves the endpoints this crate uses, with the hub's headers and error
//! codes, and can inject faults (truncated or corrupted transfers).
//!
//! Long (about 800 lines) because it is one self-contained server: routing,
//! the download, upload, LFS and commit endpoints and fault injection share
//! its in-memory repository state.
//!
//! Enabled by the `emulator` feature; self-contained (it uses nothing else
//! from this crate) so the crate's own integration tests include it by path.
//!
//! Endpoints: `HEAD|GET /{repo}/resolve/{rev}/{path}` (regular files answered
//! directly with a git-sha1 `etag`; `.safetensors` and files over 1 MiB
//! answered with a `302` to `/cdn/{sha256}` carrying `x-linked-etag` and
//! `x-linked-size`, as the hub does for LFS files), `GET /api/models/{repo}`
//! (`/revision/{rev}`), `POST /api/repos/create`, `POST
//! /api/models/{repo}/preupload/{rev}`, `POST /{repo}.git/info/lfs/objects/batch`,
//! the LFS basic and multipart transfers, and `POST /api/models/{repo}/commit/{rev}`.
//!
//! Authorisation: with [`HubEmulator::require_token`], a wrong bearer token
//! gets `401` "Invalid credentials in Authorization header", private repos are
//! invisible without the token (`401` + `X-Error-Code: RepoNotFound`, as the
//! hub answers anonymous requests for missing repos), and writes need it.

#![allow(missing_docs)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use base64::Engine as _;
use sha1::Digest as _;

/// A file in a commit.
#[derive(Debug, Clone)]
struct FileEntry {
    data: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Commit {
    sha: String,
    files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, Default)]
struct RepoState {
    private: bool,
    /// History of `main`, oldest first.
    commits: Vec<Commit>,
}

#[derive(Debug, Default)]
struct State {
    repos: BTreeMap<String, RepoState>,
    token: Option<String>,
    write_forbidden: bool,
    log: Vec<(String, String, u16)>,
    truncate: BTreeSet<String>,
    corrupt: BTreeSet<String>,
    lfs: HashMap<String, Vec<u8>>,
    parts: HashMap<(String, u32), Vec<u8>>,
    multipart_chunk: Option<usize>,
    counter: u64,
}

/// The emulator; stops when dropped.
pub struct HubEmulator {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The hub's etag of a regular file: git's blob sha1.
pub fn git_sha1(data: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", data.len()).as_bytes());
    h.update(data);
    hex(&h.finalize())
}

/// sha256, the etag of an LFS file.
pub fn sha256(data: &[u8]) -> String {
    hex(&sha2::Sha256::digest(data))
}

fn is_lfs(path: &str, data: &[u8]) -> bool {
    path.ends_with(".safetensors") || data.len() > (1 << 20)
}

impl HubEmulator {
    /// Starts the emulator on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let st = st.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, &st, addr);
                    });
                }
            }
        });
        Self {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:{port}`: the `HF_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates a repository with an initial commit (`.gitattributes`).
    pub fn add_repo(&self, repo_id: &str, private: bool) {
        let mut s = lock(&self.state);
        create(&mut s, repo_id, private);
    }

    /// Commits `data` at `path` on `main` (creating the repo, public, if needed);
    /// returns the new commit.
    pub fn put_file(&self, repo_id: &str, path: &str, data: &[u8]) -> String {
        let mut s = lock(&self.state);
        if !s.repos.contains_key(repo_id) {
            create(&mut s, repo_id, false);
        }
        let mut files = head(&s, repo_id)
            .map(|c| c.files.clone())
            .unwrap_or_default();
        files.insert(
            path.into(),
            FileEntry {
                data: data.to_vec(),
            },
        );
        push_commit(&mut s, repo_id, files)
    }

    /// The commit `main` points to.
    pub fn head_commit(&self, repo_id: &str) -> Option<String> {
        head(&lock(&self.state), repo_id).map(|c| c.sha.clone())
    }

    /// The files at `main`.
    pub fn files(&self, repo_id: &str) -> BTreeMap<String, Vec<u8>> {
        head(&lock(&self.state), repo_id)
            .map(|c| {
                c.files
                    .iter()
                    .map(|(k, v)| (k.clone(), v.data.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the repository exists and is private.
    pub fn is_private(&self, repo_id: &str) -> Option<bool> {
        lock(&self.state).repos.get(repo_id).map(|r| r.private)
    }

    /// Number of commits on `main`.
    pub fn commit_count(&self, repo_id: &str) -> usize {
        lock(&self.state)
            .repos
            .get(repo_id)
            .map_or(0, |r| r.commits.len())
    }

    /// Requires this bearer token for private repos and writes.
    pub fn require_token(&self, token: &str) {
        lock(&self.state).token = Some(token.into());
    }

    /// Answers writes with 403 (a read-only token).
    pub fn forbid_writes(&self) {
        lock(&self.state).write_forbidden = true;
    }

    /// Serves `path` (any repo) with its full `content-length` but half the body.
    pub fn truncate(&self, path: &str) {
        lock(&self.state).truncate.insert(path.into());
    }

    /// Serves `path` with its bytes altered (same length).
    pub fn corrupt(&self, path: &str) {
        lock(&self.state).corrupt.insert(path.into());
    }

    /// Stops injecting faults.
    pub fn heal(&self) {
        let mut s = lock(&self.state);
        s.truncate.clear();
        s.corrupt.clear();
    }

    /// LFS uploads use the multipart transfer with this part size.
    pub fn multipart_chunk(&self, bytes: usize) {
        lock(&self.state).multipart_chunk = Some(bytes);
    }

    /// Requests so far: `(method, path and query)`.
    pub fn requests(&self) -> Vec<(String, String)> {
        lock(&self.state)
            .log
            .iter()
            .map(|(m, p, _)| (m.clone(), p.clone()))
            .collect()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.state).log.clear();
    }

    /// `GET` requests that transferred file contents (a `200` from
    /// `resolve` or from the CDN; LFS redirects do not count).
    pub fn file_downloads(&self) -> usize {
        lock(&self.state)
            .log
            .iter()
            .filter(|(m, p, st)| {
                m == "GET" && *st == 200 && (p.contains("/resolve/") || p.starts_with("/cdn/"))
            })
            .count()
    }
}

impl Drop for HubEmulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn create(s: &mut State, repo_id: &str, private: bool) {
    s.repos.insert(
        repo_id.into(),
        RepoState {
            private,
            commits: Vec::new(),
        },
    );
    let mut files = BTreeMap::new();
    files.insert(
        ".gitattributes".to_string(),
        FileEntry {
            data: b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n".to_vec(),
        },
    );
    push_commit(s, repo_id, files);
}

fn push_commit(s: &mut State, repo_id: &str, files: BTreeMap<String, FileEntry>) -> String {
    s.counter += 1;
    let sha = hex(&sha1::Sha1::digest(
        format!("commit {} {repo_id}", s.counter).as_bytes(),
    ));
    if let Some(r) = s.repos.get_mut(repo_id) {
        r.commits.push(Commit {
            sha: sha.clone(),
            files,
        });
    }
    sha
}

fn head<'a>(s: &'a State, repo_id: &str) -> Option<&'a Commit> {
    s.repos.get(repo_id).and_then(|r| r.commits.last())
}

struct Request {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Bytes of `body` actually sent (truncation).
    send: Option<usize>,
}

impl Reply {
    fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            send: None,
        }
    }
    fn json(status: u16, v: serde_json::Value) -> Self {
        let mut r = Self::new(status);
        r.headers
            .push(("Content-Type".into(), "application/json".into()));
        r.body = v.to_string().into_bytes();
        r
    }
    fn error(status: u16, code: Option<&str>, message: &str) -> Self {
        let mut r = Self::json(status, serde_json::json!({ "error": message }));
        if let Some(c) = code {
            r.headers.push(("X-Error-Code".into(), c.into()));
        }
        r.headers.push(("X-Error-Message".into(), message.into()));
        r
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

fn read_request(stream: &mut TcpStream) -> std::io::Result<Request> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Request {
        method,
        target,
        headers,
        body,
    })
}

fn serve(mut stream: TcpStream, state: &Mutex<State>, addr: SocketAddr) -> std::io::Result<()> {
    let req = read_request(&mut stream)?;
    let reply = {
        let mut s = lock(state);
        let reply = route(&mut s, &req, addr);
        s.log
            .push((req.method.clone(), req.target.clone(), reply.status));
        reply
    };
    let reason = match reply.status {
        200 => "OK",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !reply
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    if req.method != "HEAD" {
        let n = reply.send.unwrap_or(reply.body.len()).min(reply.body.len());
        stream.write_all(&reply.body[..n])?;
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

enum Auth {
    /// No Authorization header.
    Anonymous,
    /// The right token (or any token when none is required).
    Valid,
    /// A token that is not the required one.
    Invalid,
}

fn auth(s: &State, req: &Request) -> Auth {
    match (req.headers.get("authorization"), &s.token) {
        (None, _) => Auth::Anonymous,
        (Some(_), None) => Auth::Valid,
        (Some(h), Some(t)) if *h == format!("Bearer {t}") => Auth::Valid,
        _ => Auth::Invalid,
    }
}

fn route(s: &mut State, req: &Request, addr: SocketAddr) -> Reply {
    let a = auth(s, req);
    if matches!(a, Auth::Invalid) {
        return Reply::error(401, None, "Invalid credentials in Authorization header");
    }
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let m = req.method.as_str();
    let base = format!("http://{addr}");
    if let Some(rest) = path.strip_prefix("/cdn/") {
        return cdn(s, rest, query);
    }
    if let Some(rest) = path.strip_prefix("/lfs/") {
        return lfs_transfer(s, m, rest, &req.body);
    }
    let write = m == "POST";
    if write {
        if matches!(a, Auth::Anonymous) {
            return Reply::error(401, None, "Invalid username or password.");
        }
        if s.write_forbidden {
            return Reply::error(
                403,
                None,
                "You don't have the rights to write to this repository",
            );
        }
    }
    if path == "/api/repos/create" && m == "POST" {
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let name = v["name"].as_str().unwrap_or_default();
        let id = match v["organization"].as_str() {
            Some(o) => format!("{o}/{name}"),
            None => name.to_string(),
        };
        if name.is_empty() {
            return Reply::error(400, None, "no name");
        }
        if s.repos.contains_key(&id) {
            return Reply::error(409, None, "You already created this model repo");
        }
        create(s, &id, v["visibility"].as_str() == Some("private"));
        return Reply::json(200, serde_json::json!({ "url": format!("{base}/{id}") }));
    }
    if let Some(rest) = path.strip_prefix("/api/models/") {
        return api_models(s, m, rest, req, &a, &base);
    }
    if let Some(i) = path.find(".git/info/lfs/objects/batch") {
        let repo = &path[1..i];
        if let Some(r) = repo_gate(s, repo, &a) {
            return r;
        }
        return lfs_batch(s, &req.body, &base);
    }
    if let Some(i) = path.find("/resolve/") {
        let repo = &path[1..i];
        if let Some(r) = repo_gate(s, repo, &a) {
            return r;
        }
        let rest = &path[i + "/resolve/".len()..];
        let (rev, file) = rest.split_once('/').unwrap_or((rest, ""));
        return resolve(s, repo, &decode(rev), &decode(file), &base);
    }
    Reply::error(404, None, "no such endpoint")
}

/// RepoNotFound for missing repos and for private ones without the token.
fn repo_gate(s: &State, repo: &str, a: &Auth) -> Option<Reply> {
    let visible = match s.repos.get(repo) {
        None => false,
        Some(r) => !r.private || matches!(a, Auth::Valid),
    };
    if visible {
        return None;
    }
    Some(match a {
        Auth::Anonymous => Reply::error(401, Some("RepoNotFound"), "Repository not found"),
        _ => Reply::error(404, Some("RepoNotFound"), "Repository not found"),
    })
}

fn commit_at<'a>(s: &'a State, repo: &str, rev: &str) -> Option<&'a Commit> {
    let r = s.repos.get(repo)?;
    if rev == "main" {
        return r.commits.last();
    }
    r.commits.iter().find(|c| c.sha == rev)
}

fn resolve(s: &State, repo: &str, rev: &str, file: &str, base: &str) -> Reply {
    let Some(c) = commit_at(s, repo, rev) else {
        return Reply::error(404, Some("RevisionNotFound"), "Invalid rev id");
    };
    let Some(f) = c.files.get(file) else {
        return Reply::error(404, Some("EntryNotFound"), "Entry not found")
            .header("x-repo-commit", c.sha.clone());
    };
    if is_lfs(file, &f.data) {
        let oid = sha256(&f.data);
        let mut r = Reply::new(302)
            .header("x-repo-commit", c.sha.clone())
            .header("x-linked-etag", format!("\"{oid}\""))
            .header("x-linked-size", f.data.len().to_string())
            .header("etag", format!("\"{}\"", git_sha1(oid.as_bytes())))
            .header(
                "Location",
                format!("{base}/cdn/{oid}?path={}", file.replace(' ', "%20")),
            );
        r.body = Vec::new();
        return r;
    }
    let mut r = Reply::new(200)
        .header("x-repo-commit", c.sha.clone())
        .header("etag", format!("\"{}\"", git_sha1(&f.data)));
    r.body = f.data.clone();
    fault(s, file, &mut r);
    r
}

fn fault(s: &State, file: &str, r: &mut Reply) {
    if s.truncate.contains(file) {
        r.headers
            .push(("Content-Length".into(), r.body.len().to_string()));
        r.send = Some(r.body.len() / 2);
    }
    if s.corrupt.contains(file) {
        if let Some(b) = r.body.first_mut() {
            *b ^= 0xff;
        }
    }
}

fn cdn(s: &State, oid: &str, query: &str) -> Reply {
    let Some(data) = s.lfs.get(oid).cloned().or_else(|| {
        s.repos
            .values()
            .flat_map(|r| r.commits.iter())
            .flat_map(|c| c.files.values())
            .find(|f| sha256(&f.data) == oid)
            .map(|f| f.data.clone())
    }) else {
        return Reply::error(404, None, "no such object");
    };
    let file = decode(query.strip_prefix("path=").unwrap_or_default());
    let mut r = Reply::new(200);
    r.body = data;
    fault(s, &file, &mut r);
    r
}

fn api_models(s: &mut State, m: &str, rest: &str, req: &Request, a: &Auth, base: &str) -> Reply {
    // {repo}[/revision/{rev}] | {repo}/preupload/{rev} | {repo}/commit/{rev}
    let (repo, tail) = ["/revision/", "/preupload/", "/commit/"]
        .iter()
        .find_map(|k| rest.find(k).map(|i| (&rest[..i], &rest[i..])))
        .unwrap_or((rest, ""));
    if let Some(r) = repo_gate(s, repo, a) {
        return r;
    }
    if m == "GET" {
        let rev = decode(tail.strip_prefix("/revision/").unwrap_or("main"));
        let Some(c) = commit_at(s, repo, &rev) else {
            return Reply::error(404, Some("RevisionNotFound"), "Invalid rev id");
        };
        let siblings: Vec<_> = c
            .files
            .keys()
            .map(|k| serde_json::json!({ "rfilename": k }))
            .collect();
        return Reply::json(
            200,
            serde_json::json!({
                "id": repo, "sha": c.sha, "private": s.repos[repo].private, "siblings": siblings
            }),
        );
    }
    let v = || serde_json::from_slice::<serde_json::Value>(&req.body).unwrap_or_default();
    if tail.starts_with("/preupload/") {
        let files: Vec<_> = v()["files"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|f| {
                let path = f["path"].as_str().unwrap_or_default();
                let size = f["size"].as_u64().unwrap_or(0) as usize;
                let lfs = path.ends_with(".safetensors") || size > (1 << 20);
                serde_json::json!({
                    "path": path,
                    "uploadMode": if lfs { "lfs" } else { "regular" },
                    "shouldIgnore": false
                })
            })
            .collect();
        return Reply::json(200, serde_json::json!({ "files": files }));
    }
    if tail.starts_with("/commit/") {
        return commit(s, repo, &req.body, base);
    }
    Reply::error(404, None, "no such endpoint")
}

fn commit(s: &mut State, repo: &str, body: &[u8], base: &str) -> Reply {
    let text = String::from_utf8_lossy(body);
    let mut files = head(s, repo).map(|c| c.files.clone()).unwrap_or_default();
    let mut saw_header = false;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return Reply::error(400, None, "invalid NDJSON line");
        };
        let val = &v["value"];
        match v["key"].as_str() {
            Some("header") => saw_header = val["summary"].is_string(),
            Some("file") => {
                let Ok(data) = base64::engine::general_purpose::STANDARD
                    .decode(val["content"].as_str().unwrap_or_default())
                else {
                    return Reply::error(400, None, "invalid base64");
                };
                let path = val["path"].as_str().unwrap_or_default().to_string();
                if is_lfs(&path, &data) {
                    return Reply::error(400, None, &format!("{path} should be uploaded with LFS"));
                }
                files.insert(path, FileEntry { data });
            }
            Some("lfsFile") => {
                let oid = val["oid"].as_str().unwrap_or_default();
                let Some(data) = s.lfs.get(oid) else {
                    return Reply::error(422, None, &format!("LFS object {oid} was not uploaded"));
                };
                if val["size"].as_u64() != Some(data.len() as u64) {
                    return Reply::error(422, None, "LFS size mismatch");
                }
                let path = val["path"].as_str().unwrap_or_default().to_string();
                files.insert(path, FileEntry { data: data.clone() });
            }
            _ => return Reply::error(400, None, "unknown key"),
        }
    }
    if !saw_header {
        return Reply::error(400, None, "no header line");
    }
    let sha = push_commit(s, repo, files);
    Reply::json(
        200,
        serde_json::json!({
            "success": true, "commitOid": sha, "commitUrl": format!("{base}/{repo}/commit/{sha}")
        }),
    )
}

fn lfs_batch(s: &State, body: &[u8], base: &str) -> Reply {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let objects: Vec<_> = v["objects"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|o| {
            let oid = o["oid"].as_str().unwrap_or_default().to_string();
            let size = o["size"].as_u64().unwrap_or(0) as usize;
            if s.lfs.contains_key(&oid) {
                return serde_json::json!({ "oid": oid, "size": size });
            }
            let verify = serde_json::json!({ "href": format!("{base}/lfs/{oid}/verify") });
            let upload = match s.multipart_chunk {
                Some(chunk) if size > chunk => {
                    let mut h = serde_json::Map::new();
                    h.insert("chunk_size".into(), chunk.to_string().into());
                    for p in 1..=size.div_ceil(chunk) {
                        h.insert(
                            format!("{p:05}"),
                            format!("{base}/lfs/{oid}/part/{p}").into(),
                        );
                    }
                    serde_json::json!({ "href": format!("{base}/lfs/{oid}/complete"), "header": h })
                }
                _ => serde_json::json!({ "href": format!("{base}/lfs/{oid}") }),
            };
            serde_json::json!({
                "oid": oid, "size": size, "actions": { "upload": upload, "verify": verify }
            })
        })
        .collect();
    Reply::json(
        200,
        serde_json::json!({ "transfer": "basic", "objects": objects }),
    )
}

fn lfs_transfer(s: &mut State, m: &str, rest: &str, body: &[u8]) -> Reply {
    let seg: Vec<&str> = rest.split('/').collect();
    match (m, seg.as_slice()) {
        ("PUT", [oid]) => {
            if sha256(body) != *oid {
                return Reply::error(400, None, "sha256 mismatch");
            }
            s.lfs.insert(oid.to_string(), body.to_vec());
            Reply::new(200)
        }
        ("PUT", [oid, "part", n]) => {
            let n: u32 = n.parse().unwrap_or(0);
            s.parts.insert((oid.to_string(), n), body.to_vec());
            Reply::new(200).header("ETag", format!("\"part{n}-{}\"", body.len()))
        }
        ("POST", [oid, "complete"]) => {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let mut data = Vec::new();
            for p in v["parts"].as_array().cloned().unwrap_or_default() {
                let n = p["partNumber"].as_u64().unwrap_or(0) as u32;
                let Some(b) = s.parts.get(&(oid.to_string(), n)) else {
                    return Reply::error(400, None, "missing part");
                };
                if p["etag"].as_str() != Some(&format!("\"part{n}-{}\"", b.len())) {
                    return Reply::error(400, None, "bad part etag");
                }
                data.extend_from_slice(b);
            }
            if sha256(&data) != *oid {
                return Reply::error(400, None, "sha256 mismatch");
            }
            s.lfs.insert(oid.to_string(), data);
            Reply::json(200, serde_json::json!({}))
        }
        ("POST", [oid, "verify"]) => {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            match s.lfs.get(*oid) {
                Some(d) if v["size"].as_u64() == Some(d.len() as u64) => {
                    Reply::json(200, serde_json::json!({}))
                }
                _ => Reply::error(404, None, "object not found"),
            }
        }
        _ => Reply::error(404, None, "no such LFS endpoint"),
    }
}
