//! Downloads against the in-process hub emulator: subfolders, cache layout and
//! reuse, offline mode, not-found and authorisation errors, network failure,
//! truncated and corrupted transfers.

#[allow(dead_code)] // each test file uses part of it
#[path = "../src/emulator.rs"]
mod emulator;

use std::path::{Path, PathBuf};

use emulator::{sha256, HubEmulator};
use synthsae_hub::{FileSet, HubClient, HubError};

const CONFIG: &str = "synthetic_model_config.json";
const WEIGHTS: &str = "synthetic_model.safetensors";
const HIERARCHY: &str = "hierarchy.json";
const MODEL: FileSet = FileSet::new(&[CONFIG, WEIGHTS], &[HIERARCHY]);

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synthsae-hub-dl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn client(hub: &HubEmulator, cache: &Path) -> HubClient {
    HubClient::builder()
        .endpoint(hub.url())
        .cache_dir(cache)
        .build()
        .unwrap()
}

/// A repo with a model at the root (no hierarchy) and one in `models/m1`.
fn seeded() -> HubEmulator {
    let hub = HubEmulator::start();
    hub.put_file("org/models", CONFIG, br#"{"num_features": 4}"#);
    hub.put_file("org/models", WEIGHTS, &[7u8; 300]);
    hub.put_file(
        "org/models",
        "models/m1/synthetic_model_config.json",
        b"{\"m\": 1}",
    );
    hub.put_file(
        "org/models",
        "models/m1/synthetic_model.safetensors",
        &[9u8; 100],
    );
    hub.put_file("org/models", "models/m1/hierarchy.json", b"{\"roots\": []}");
    hub.put_file("org/models", "unrelated.bin", &[1u8; 5000]);
    hub
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn root_and_subfolder_into_the_python_cache_layout() {
    let hub = seeded();
    let cache = tmp("layout");
    let c = client(&hub, &cache);
    let commit = hub.head_commit("org/models").unwrap();

    let dir = c.resolve_source("org/models", &MODEL).unwrap();
    let repo = cache.join("models--org--models");
    assert_eq!(dir, repo.join("snapshots").join(&commit));
    assert_eq!(
        std::fs::read(dir.join(CONFIG)).unwrap(),
        br#"{"num_features": 4}"#
    );
    assert_eq!(std::fs::read(dir.join(WEIGHTS)).unwrap(), vec![7u8; 300]);
    assert!(!dir.join(HIERARCHY).exists());
    // Only the requested files, nothing else of the repo.
    assert!(!dir.join("unrelated.bin").exists());
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        commit
    );
    // LFS blob named by sha256, snapshot entries are relative symlinks.
    let oid = sha256(&[7u8; 300]);
    assert!(repo.join("blobs").join(&oid).is_file());
    #[cfg(unix)]
    assert_eq!(
        std::fs::read_link(dir.join(WEIGHTS)).unwrap(),
        PathBuf::from(format!("../../blobs/{oid}"))
    );
    // The optional file's absence is recorded as huggingface_hub does.
    assert!(repo
        .join(".no_exist")
        .join(&commit)
        .join(HIERARCHY)
        .exists());

    let sub = c.resolve_source("org/models:models/m1", &MODEL).unwrap();
    assert_eq!(sub, repo.join("snapshots").join(&commit).join("models/m1"));
    assert_eq!(files_in(&sub), vec![HIERARCHY, WEIGHTS, CONFIG]);
    assert_eq!(
        std::fs::read(sub.join(HIERARCHY)).unwrap(),
        b"{\"roots\": []}"
    );
    #[cfg(unix)]
    assert!(std::fs::read_link(sub.join(WEIGHTS))
        .unwrap()
        .starts_with("../../../../blobs"));

    let snap = c
        .download_files("org/models", "main", Some("models/m1"), &MODEL)
        .unwrap();
    assert_eq!(snap.commit, commit);
    assert_eq!(snap.files, vec![CONFIG, WEIGHTS, HIERARCHY]);
    assert!(snap.downloaded.is_empty());
    std::fs::remove_dir_all(cache).unwrap();
}

#[test]
fn second_resolve_downloads_nothing_and_a_new_commit_only_what_changed() {
    let hub = seeded();
    let cache = tmp("reuse");
    let c = client(&hub, &cache);
    let first = c
        .download_files("org/models", "main", None, &MODEL)
        .unwrap();
    assert_eq!(first.downloaded, vec![CONFIG, WEIGHTS]);
    assert_eq!(hub.file_downloads(), 2);

    hub.clear_requests();
    let again = c
        .download_files("org/models", "main", None, &MODEL)
        .unwrap();
    assert_eq!(again.dir, first.dir);
    assert!(again.downloaded.is_empty());
    assert_eq!(hub.file_downloads(), 0, "{:?}", hub.requests());
    assert!(hub.requests().iter().all(|(m, _)| m == "HEAD"));

    // A pinned commit that is complete in the cache needs no request at all.
    hub.clear_requests();
    let pinned = c
        .download_files("org/models", &first.commit, None, &MODEL)
        .unwrap();
    assert_eq!(pinned.dir, first.dir);
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());

    // New commit changing only the config: the weights blob is reused.
    hub.put_file("org/models", CONFIG, br#"{"num_features": 5}"#);
    hub.clear_requests();
    let next = c
        .download_files("org/models", "main", None, &MODEL)
        .unwrap();
    assert_ne!(next.commit, first.commit);
    assert_eq!(next.downloaded, vec![CONFIG]);
    assert_eq!(hub.file_downloads(), 1);
    assert_eq!(
        std::fs::read(next.dir.join(CONFIG)).unwrap(),
        br#"{"num_features": 5}"#
    );
    assert_eq!(
        std::fs::read(next.dir.join(WEIGHTS)).unwrap(),
        vec![7u8; 300]
    );
    // The old snapshot is still intact.
    assert_eq!(
        std::fs::read(first.dir.join(CONFIG)).unwrap(),
        br#"{"num_features": 4}"#
    );
    std::fs::remove_dir_all(cache).unwrap();
}

#[test]
fn offline_mode_uses_the_cache_only() {
    let hub = seeded();
    let cache = tmp("offline");
    let offline = HubClient::builder()
        .endpoint(hub.url())
        .cache_dir(&cache)
        .offline(true)
        .build()
        .unwrap();
    let e = offline
        .resolve_source("org/models:models/m1", &MODEL)
        .unwrap_err();
    assert!(matches!(e, HubError::NotCached { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("org/models") && msg.contains("models/m1/synthetic_model_config.json"),
        "{msg}"
    );
    assert!(hub.requests().is_empty());

    let online = client(&hub, &cache)
        .resolve_source("org/models:models/m1", &MODEL)
        .unwrap();
    hub.clear_requests();
    let dir = offline
        .resolve_source("org/models:models/m1", &MODEL)
        .unwrap();
    assert_eq!(dir, online);
    assert_eq!(files_in(&dir), vec![HIERARCHY, WEIGHTS, CONFIG]);
    assert!(hub.requests().is_empty());

    // Root model: present required files, optional hierarchy absent → fine.
    client(&hub, &cache)
        .resolve_source("org/models", &MODEL)
        .unwrap();
    offline.resolve_source("org/models", &MODEL).unwrap();
    // A required file never downloaded → not cached.
    let e = offline
        .resolve_source("org/models", &FileSet::new(&["unrelated.bin"], &[]))
        .unwrap_err();
    assert!(e.to_string().contains("unrelated.bin"), "{e}");
    std::fs::remove_dir_all(cache).unwrap();
}

#[test]
fn repo_file_and_revision_not_found_are_distinct() {
    let hub = seeded();
    let cache = tmp("notfound");
    let c = client(&hub, &cache);
    // Anonymous: the hub answers 401 + RepoNotFound.
    let e = c.resolve_source("org/missing", &MODEL).unwrap_err();
    assert!(
        matches!(e, HubError::RepoNotFound { ref repo_id, .. } if repo_id == "org/missing"),
        "{e}"
    );
    // With a token: 404 + RepoNotFound.
    let authed = HubClient::builder()
        .endpoint(hub.url())
        .cache_dir(&cache)
        .token(Some("hf_x".into()))
        .build()
        .unwrap();
    let e = authed.resolve_source("org/missing", &MODEL).unwrap_err();
    assert!(matches!(e, HubError::RepoNotFound { .. }), "{e}");
    // Repo exists, file does not.
    let e = c.resolve_source("org/models:nowhere", &MODEL).unwrap_err();
    match &e {
        HubError::FileNotFound { repo_id, path, .. } => {
            assert_eq!(repo_id, "org/models");
            assert_eq!(path, "nowhere/synthetic_model_config.json");
        }
        other => panic!("{other}"),
    }
    assert!(!e.to_string().contains('\n'));
    let e = c
        .download_files("org/models", "v9", None, &MODEL)
        .unwrap_err();
    assert!(matches!(e, HubError::RevisionNotFound { .. }), "{e}");
    // Nothing half-made for the failures.
    assert!(!cache
        .join("models--org--missing")
        .join("snapshots")
        .exists());
    std::fs::remove_dir_all(cache).unwrap();
}

#[test]
fn private_repos_need_the_token() {
    let hub = seeded();
    hub.require_token("hf_good");
    hub.add_repo("org/private", true);
    hub.put_file("org/private", CONFIG, b"{}");
    hub.put_file("org/private", WEIGHTS, &[1, 2, 3]);
    let cache = tmp("private");
    let anon = client(&hub, &cache);
    let e = anon.resolve_source("org/private", &MODEL).unwrap_err();
    assert!(matches!(e, HubError::RepoNotFound { .. }), "{e}");
    assert!(e.to_string().contains("HF_TOKEN"));
    let with = |t: &str| {
        HubClient::builder()
            .endpoint(hub.url())
            .cache_dir(&cache)
            .token(Some(t.into()))
            .build()
            .unwrap()
    };
    let e = with("hf_bad")
        .resolve_source("org/private", &MODEL)
        .unwrap_err();
    assert!(
        matches!(e, HubError::Unauthorized { status: 401, .. }),
        "{e}"
    );
    let dir = with("hf_good")
        .resolve_source("org/private", &MODEL)
        .unwrap();
    assert_eq!(std::fs::read(dir.join(WEIGHTS)).unwrap(), vec![1, 2, 3]);
    // The token is sent, public repos still work with it.
    with("hf_good")
        .resolve_source("org/models", &MODEL)
        .unwrap();
    std::fs::remove_dir_all(cache).unwrap();
}

#[test]
fn unreachable_hub_is_a_network_error_unless_cached() {
    let hub = seeded();
    let cache = tmp("network");
    client(&hub, &cache)
        .resolve_source("org/models", &MODEL)
        .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = HubClient::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .cache_dir(&cache)
        .build()
        .unwrap();
    // Not cached → network error naming the URL.
    let e = dead.resolve_source("org/other", &MODEL).unwrap_err();
    assert!(matches!(e, HubError::Network { .. }), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    // Cached → falls back to the cache, as huggingface_hub does.
    let dir = dead.resolve_source("org/models", &MODEL).unwrap();
    assert!(dir.join(WEIGHTS).is_file());
    std::fs::remove_dir_all(cache).unwrap();
}

fn blobs_are_clean(repo: &Path) {
    let names = files_in(&repo.join("blobs"));
    assert!(
        names.iter().all(|n| !n.contains("incomplete")),
        "left over: {names:?}"
    );
}

#[test]
fn truncated_and_corrupted_transfers_leave_nothing_in_the_cache() {
    let hub = seeded();
    let cache = tmp("truncated");
    let c = client(&hub, &cache);
    let repo = cache.join("models--org--models");
    let oid = sha256(&[7u8; 300]);

    // LFS file through the CDN redirect, cut in half.
    hub.truncate(WEIGHTS);
    let e = c.resolve_source("org/models", &MODEL).unwrap_err();
    assert!(
        matches!(e, HubError::CorruptDownload { ref path, .. } if path == WEIGHTS),
        "{e}"
    );
    assert!(e.to_string().contains("org/models"), "{e}");
    blobs_are_clean(&repo);
    assert!(!repo.join("blobs").join(&oid).exists());
    let commit = hub.head_commit("org/models").unwrap();
    assert!(!repo.join("snapshots").join(&commit).join(WEIGHTS).exists());
    hub.heal();

    // Regular file served directly, cut in half (fresh cache: the config
    // was cached by the attempt above).
    let cache2 = tmp("truncated-2");
    let c2 = client(&hub, &cache2);
    hub.truncate(CONFIG);
    let e = c2.resolve_source("org/models", &MODEL).unwrap_err();
    assert!(
        matches!(e, HubError::CorruptDownload { ref path, .. } if path == CONFIG),
        "{e}"
    );
    blobs_are_clean(&cache2.join("models--org--models"));
    assert!(files_in(&cache2.join("models--org--models/blobs")).is_empty());
    hub.heal();

    // Right length, wrong bytes: caught by the etag (sha256 for LFS).
    hub.corrupt(WEIGHTS);
    let e = c.resolve_source("org/models", &MODEL).unwrap_err();
    assert!(e.to_string().contains("sha256"), "{e}");
    blobs_are_clean(&repo);
    assert!(!repo.join("blobs").join(&oid).exists());
    hub.heal();
    // And by the git-sha1 etag for regular files.
    std::fs::remove_dir_all(&cache2).unwrap();
    hub.corrupt(CONFIG);
    let e = c2.resolve_source("org/models", &MODEL).unwrap_err();
    assert!(e.to_string().contains("git-sha1"), "{e}");
    hub.heal();

    // Healed: a clean download.
    let dir = c.resolve_source("org/models", &MODEL).unwrap();
    assert_eq!(std::fs::read(dir.join(WEIGHTS)).unwrap(), vec![7u8; 300]);
    blobs_are_clean(&repo);
    std::fs::remove_dir_all(cache).unwrap();
    let _ = std::fs::remove_dir_all(cache2);
}

#[test]
fn local_sources_are_returned_untouched() {
    let hub = seeded();
    let cache = tmp("local");
    let c = client(&hub, &cache);
    let local = cache.join("some/model");
    let s = local.to_str().unwrap();
    assert_eq!(c.resolve_source(s, &MODEL).unwrap(), local);
    assert!(hub.requests().is_empty());
    let e = c.resolve_source("a/b/c", &MODEL).unwrap_err();
    assert!(e.is_usage(), "{e}");
    std::fs::remove_dir_all(cache).unwrap();
}
