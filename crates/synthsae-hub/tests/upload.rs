//! Uploads against the in-process hub emulator: repo creation, regular and
//! LFS (basic and multipart) files, subfolders, README, authorisation, and a
//! round trip through the download path.

#[allow(dead_code)] // each test file uses part of it
#[path = "../src/emulator.rs"]
mod emulator;

use std::path::{Path, PathBuf};

use emulator::HubEmulator;
use synthsae_hub::{FileSet, HubClient, HubError, UploadOptions};

const CONFIG: &str = "synthetic_model_config.json";
const WEIGHTS: &str = "synthetic_model.safetensors";
const HIERARCHY: &str = "hierarchy.json";
const MODEL: FileSet = FileSet::new(&[CONFIG, WEIGHTS], &[HIERARCHY]);

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synthsae-hub-up-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn model_dir(root: &Path, weights: usize) -> PathBuf {
    let d = root.join("model");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(CONFIG), br#"{"num_features": 8}"#).unwrap();
    let w: Vec<u8> = (0..weights).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.join(WEIGHTS), w).unwrap();
    std::fs::write(d.join("notes.txt"), b"not uploaded").unwrap();
    d
}

fn client(hub: &HubEmulator, cache: &Path, token: Option<&str>) -> HubClient {
    HubClient::builder()
        .endpoint(hub.url())
        .cache_dir(cache.join("cache"))
        .token(token.map(Into::into))
        .build()
        .unwrap()
}

#[test]
fn creates_the_repo_commits_files_and_round_trips() {
    let hub = HubEmulator::start();
    hub.require_token("hf_w");
    let root = tmp("create");
    let dir = model_dir(&root, 2000);
    let c = client(&hub, &root, Some("hf_w"));
    let info = c
        .upload_folder(
            &dir,
            "me/synth",
            &UploadOptions {
                private: true,
                files: MODEL,
                commit_message: Some("Upload SyntheticModel"),
                readme_if_missing: Some("# hello\n".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(info.created_repo);
    assert_eq!(hub.is_private("me/synth"), Some(true));
    assert_eq!(info.files, vec![CONFIG, WEIGHTS, "README.md"]);
    assert_eq!(info.lfs_files, vec![WEIGHTS]);
    assert_eq!(Some(info.commit.clone()), hub.head_commit("me/synth"));
    let files = hub.files("me/synth");
    assert_eq!(files[CONFIG], br#"{"num_features": 8}"#);
    assert_eq!(files[WEIGHTS], std::fs::read(dir.join(WEIGHTS)).unwrap());
    assert_eq!(files["README.md"], b"# hello\n");
    assert!(!files.contains_key("notes.txt"));
    assert!(!files.contains_key(HIERARCHY));

    // Round trip through the download path (private: needs the token).
    let back = c.resolve_source("me/synth", &MODEL).unwrap();
    assert_eq!(
        std::fs::read(back.join(WEIGHTS)).unwrap(),
        std::fs::read(dir.join(WEIGHTS)).unwrap()
    );

    // Second upload into a subfolder: no creation, README kept, the LFS
    // object the hub already has is not sent again.
    std::fs::write(dir.join(HIERARCHY), b"{\"roots\": []}").unwrap();
    hub.clear_requests();
    let info = c
        .upload_folder(
            &dir,
            "me/synth",
            &UploadOptions {
                subfolder: Some("v2/"),
                files: MODEL,
                readme_if_missing: Some("# other\n".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!info.created_repo);
    assert_eq!(
        info.files,
        vec![
            "v2/synthetic_model_config.json",
            "v2/synthetic_model.safetensors",
            "v2/hierarchy.json"
        ]
    );
    assert!(!hub.requests().iter().any(|(m, _)| m == "PUT"));
    assert!(!hub.requests().iter().any(|(_, p)| p == "/api/repos/create"));
    let files = hub.files("me/synth");
    assert_eq!(files["README.md"], b"# hello\n");
    assert_eq!(files["v2/hierarchy.json"], b"{\"roots\": []}");
    let sub = c.resolve_source("me/synth:v2", &MODEL).unwrap();
    assert!(sub.join(HIERARCHY).is_file());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn multipart_lfs_and_whole_folders() {
    let hub = HubEmulator::start();
    hub.multipart_chunk(700);
    let root = tmp("multipart");
    let dir = model_dir(&root, 2000); // 3 parts of 700
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    std::fs::write(dir.join("nested/a.json"), b"[]").unwrap();
    std::fs::write(dir.join(".hidden"), b"x").unwrap();
    let c = client(&hub, &root, Some("any"));
    let info = c
        .upload_folder(&dir, "solo", &UploadOptions::default())
        .unwrap();
    assert_eq!(
        info.files,
        vec!["nested/a.json", "notes.txt", WEIGHTS, CONFIG]
    );
    let parts = hub
        .requests()
        .iter()
        .filter(|(m, p)| m == "PUT" && p.contains("/part/"))
        .count();
    assert_eq!(parts, 3);
    assert_eq!(
        hub.files("solo")[WEIGHTS],
        std::fs::read(dir.join(WEIGHTS)).unwrap()
    );
    assert_eq!(hub.is_private("solo"), Some(false));
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn upload_errors() {
    let hub = HubEmulator::start();
    hub.require_token("hf_w");
    let root = tmp("errors");
    let dir = model_dir(&root, 10);
    let opts = UploadOptions {
        files: MODEL,
        ..Default::default()
    };
    // No token at all: refused before any request.
    let e = client(&hub, &root, None)
        .upload_folder(&dir, "me/x", &opts)
        .unwrap_err();
    assert!(matches!(e, HubError::Unauthorized { status: 0, .. }), "{e}");
    assert!(hub.requests().is_empty());
    // Wrong token.
    let e = client(&hub, &root, Some("hf_bad"))
        .upload_folder(&dir, "me/x", &opts)
        .unwrap_err();
    assert!(
        matches!(e, HubError::Unauthorized { status: 401, .. }),
        "{e}"
    );
    // Read-only token.
    hub.forbid_writes();
    let e = client(&hub, &root, Some("hf_w"))
        .upload_folder(&dir, "me/x", &opts)
        .unwrap_err();
    assert!(
        matches!(e, HubError::Unauthorized { status: 403, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("me/x"));
    // Missing required file.
    std::fs::remove_file(dir.join(WEIGHTS)).unwrap();
    let e = client(&hub, &root, Some("hf_w"))
        .upload_folder(&dir, "me/x", &opts)
        .unwrap_err();
    assert!(e.to_string().contains(WEIGHTS), "{e}");
    // Bad repo id and bad folder are usage errors.
    let c = client(&hub, &root, Some("hf_w"));
    assert!(c
        .upload_folder(&dir, "a/b/c", &opts)
        .unwrap_err()
        .is_usage());
    let bad = UploadOptions {
        subfolder: Some("../up"),
        ..opts.clone()
    };
    assert!(c.upload_folder(&dir, "me/x", &bad).unwrap_err().is_usage());
    std::fs::remove_dir_all(root).unwrap();
}
