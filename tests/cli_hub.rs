//! End-to-end tests of `synthsae hub download|upload` and of hub sources in
//! `model info` / `sample`, against the in-process hub emulator (reached
//! through `HF_ENDPOINT`; `HF_HOME` points at a scratch folder).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use synthsae_hub::emulator::HubEmulator;

struct Env<'a> {
    hub: &'a HubEmulator,
    home: PathBuf,
    token: Option<&'a str>,
    offline: bool,
}

impl Env<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_synthsae"));
        c.args(args)
            .env("HF_ENDPOINT", self.hub.url())
            .env("HF_HOME", &self.home);
        for k in [
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "HF_HUB_OFFLINE",
            "TRANSFORMERS_OFFLINE",
        ] {
            c.env_remove(k);
        }
        if let Some(t) = self.token {
            c.env("HF_TOKEN", t);
        }
        if self.offline {
            c.env("HF_HUB_OFFLINE", "1");
        }
        c.output().expect("run synthsae")
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Exit code and the one-line error.
    fn err(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert!(!out.status.success(), "{args:?} succeeded");
        (out.status.code().unwrap_or(-1), stderr)
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synthsae-cli-hub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn upload_download_and_load_a_model_from_the_hub() {
    let hub = HubEmulator::start();
    hub.require_token("hf_test");
    let root = tmp("roundtrip");
    let env = Env {
        hub: &hub,
        home: root.join("hf"),
        token: Some("hf_test"),
        offline: false,
    };
    let model = root.join("model");
    env.ok_json(&[
        "model",
        "new",
        "--preset",
        "tutorial",
        "--out",
        s(&model),
        "--json",
        "-q",
    ]);

    // Upload into a subfolder of a new private repo; a README is added.
    let up = env.ok_json(&[
        "hub",
        "upload",
        s(&model),
        "me/synthetic",
        "--subfolder",
        "tutorial",
        "--private",
        "--json",
    ]);
    assert_eq!(up["created_repo"], true);
    assert_eq!(up["kind"], "model");
    assert_eq!(
        up["lfs_files"],
        serde_json::json!(["tutorial/synthetic_model.safetensors"])
    );
    assert_eq!(hub.is_private("me/synthetic"), Some(true));
    let files = hub.files("me/synthetic");
    let readme = String::from_utf8(files["README.md"].clone()).unwrap();
    assert!(readme.contains("library_name: saelens"), "{readme}");
    assert!(readme.contains("- **Number of features**: 16"), "{readme}");
    assert!(readme.contains("model_path=\"tutorial\""), "{readme}");
    assert_eq!(
        files["tutorial/synthetic_model.safetensors"],
        std::fs::read(model.join("synthetic_model.safetensors")).unwrap()
    );

    // Download: into the cache, and copied with --out.
    let out = root.join("copy");
    let d = env.ok_json(&[
        "hub",
        "download",
        "me/synthetic:tutorial",
        "--out",
        s(&out),
        "--json",
    ]);
    assert_eq!(d["repo_id"], "me/synthetic");
    assert_eq!(d["subfolder"], "tutorial");
    let path = PathBuf::from(d["path"].as_str().unwrap());
    assert!(path.starts_with(root.join("hf/hub/models--me--synthetic/snapshots")));
    assert_eq!(d["downloaded"].as_array().unwrap().len(), 2);
    assert_eq!(
        std::fs::read(out.join("synthetic_model_config.json")).unwrap(),
        std::fs::read(model.join("synthetic_model_config.json")).unwrap()
    );
    // Again: everything from the cache.
    let d = env.ok_json(&["hub", "download", "me/synthetic:tutorial", "--json"]);
    assert_eq!(d["downloaded"], serde_json::json!([]));

    // The model commands take the hub reference as SOURCE.
    let local = env.ok_json(&[
        "model",
        "info",
        s(&model),
        "--samples",
        "2000",
        "--json",
        "-q",
    ]);
    let remote = env.ok_json(&[
        "model",
        "info",
        "me/synthetic:tutorial",
        "--samples",
        "2000",
        "--json",
        "-q",
    ]);
    assert_eq!(local["true_l0"], remote["true_l0"]);
    let acts = root.join("acts.safetensors");
    env.ok_json(&[
        "sample",
        "me/synthetic:tutorial",
        "--samples",
        "50",
        "--out",
        s(&acts),
        "--json",
        "-q",
    ]);
    assert!(acts.is_file());

    // Offline: the cache answers; a fresh cache cannot.
    let offline = Env {
        offline: true,
        ..env
    };
    hub.clear_requests();
    offline.ok_json(&[
        "model",
        "info",
        "me/synthetic:tutorial",
        "--samples",
        "500",
        "--json",
        "-q",
    ]);
    assert!(hub.requests().is_empty());
    let fresh = Env {
        home: root.join("hf-empty"),
        ..offline
    };
    let (code, msg) = fresh.err(&["hub", "download", "me/synthetic:tutorial"]);
    assert_eq!(code, 1);
    assert!(
        msg.contains("offline") && msg.contains("me/synthetic"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1, "{msg}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn hub_errors_are_one_line_with_exit_codes() {
    let hub = HubEmulator::start();
    hub.put_file("org/models", "synthetic_model_config.json", b"{}");
    let root = tmp("errors");
    let env = Env {
        hub: &hub,
        home: root.join("hf"),
        token: None,
        offline: false,
    };
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["hub", "download", "org/missing"],
            1,
            "repository `org/missing` not found",
        ),
        (
            &["hub", "download", "org/models"],
            1,
            "file `synthetic_model.safetensors` not found in repository `org/models`",
        ),
        (&["hub", "download", "a/b/c"], 2, "invalid hub source"),
        (&["hub", "download", "./local"], 2, "local path"),
        (&["hub", "download", "org/x", "--kind", "bogus"], 2, "bogus"),
        (&["model", "info", "org/missing"], 1, "org/missing"),
        (
            &[
                "sample",
                "org/missing",
                "--samples",
                "5",
                "--out",
                "x.safetensors",
            ],
            1,
            "org/missing",
        ),
        (
            &["hub", "upload", s(&root), "me/x"],
            1,
            "neither a synthetic model",
        ),
        (
            &["hub", "upload", "/nonexistent/dir", "me/x"],
            1,
            "not a directory",
        ),
    ];
    for (args, code, needle) in cases {
        let (c, msg) = env.err(args);
        assert_eq!(c, *code, "{args:?}: {msg}");
        assert!(msg.contains(needle), "{args:?}: {msg}");
        if *code == 1 {
            assert_eq!(msg.lines().count(), 1, "{args:?}: {msg}");
        }
    }
    // Upload without a token.
    let model = root.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("cfg.json"), b"{}").unwrap();
    std::fs::write(model.join("sae_weights.safetensors"), b"xx").unwrap();
    let (c, msg) = env.err(&["hub", "upload", s(&model), "me/x"]);
    assert_eq!(c, 1);
    assert!(msg.contains("HF_TOKEN"), "{msg}");
    // Unreachable hub.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = Command::new(env!("CARGO_BIN_EXE_synthsae"))
        .args(["hub", "download", "org/models"])
        .env("HF_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("HF_HOME", root.join("hf2"))
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the hub"));
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn sae_folders_upload_and_download() {
    let hub = HubEmulator::start();
    let root = tmp("sae");
    let env = Env {
        hub: &hub,
        home: root.join("hf"),
        token: Some("any"),
        offline: false,
    };
    let sae = root.join("sae");
    std::fs::create_dir_all(&sae).unwrap();
    std::fs::write(sae.join("cfg.json"), br#"{"d_in": 8, "d_sae": 12}"#).unwrap();
    std::fs::write(sae.join("sae_weights.safetensors"), [3u8; 64]).unwrap();
    let up = env.ok_json(&[
        "hub",
        "upload",
        s(&sae),
        "me/saes",
        "--subfolder",
        "std",
        "--json",
    ]);
    assert_eq!(up["kind"], "sae");
    // No README for SAEs.
    assert!(!hub.files("me/saes").contains_key("README.md"));
    let d = env.ok_json(&["hub", "download", "me/saes:std", "--kind", "sae", "--json"]);
    assert_eq!(
        d["files"],
        serde_json::json!(["cfg.json", "sae_weights.safetensors"])
    );
    // Plain text output names the files.
    let out = env.run(&["hub", "download", "me/saes:std", "--kind", "sae"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sae_weights.safetensors") && text.contains("cached"),
        "{text}"
    );
    std::fs::remove_dir_all(root).unwrap();
}
