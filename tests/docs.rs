//! The command lines of the user documentation, run.
//!
//! Convention in `docs/getting-started.md`, `docs/cli.md` and `docs/sweeps.md`:
//!
//! * in a ```` ```console ```` block, every line starting with `$ ` is a
//!   command, and must start with `$ synthsae `; other lines are example
//!   output and are not checked. A trailing shell comment `# exit N` names
//!   the expected exit status (default 0).
//! * a block whose info string has `file=NAME` (e.g. ```` ```json file=model.json ````)
//!   is written to `NAME` before the commands after it run.
//! * ```` ```sh ```` blocks (and every other kind) are not run.
//!
//! Each document runs in its own scratch folder, commands in order (later
//! ones use what earlier ones wrote), with the Hugging Face variables pointed
//! at an in-process hub emulator so hub commands never touch the network or
//! the user's cache.
//!
//! A second test checks that `docs/cli.md` documents every command and every
//! flag that `synthsae <command> --help` lists.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use synthsae_hub::emulator::HubEmulator;

const TOKEN: &str = "hf_docs_token";

/// One thing a document asks for, with its 1-based line number.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    File {
        line: usize,
        name: String,
        contents: String,
    },
    Command {
        line: usize,
        text: String,
        args: Vec<String>,
        exit: i32,
    },
}

/// Splits a command line into words: whitespace separates, single and
/// double quotes group, a backslash escapes the next character outside
/// single quotes, and an unquoted `#` at the start of a word starts a
/// comment. Returns the words and the comment (without `#`).
fn split_words(line: &str) -> Result<(Vec<String>, Option<String>), String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => {
                let comment: String = chars.collect();
                return Ok((words, Some(comment.trim().to_string())));
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => word.push(c),
                            None => return Err("trailing backslash".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("line continuations are not supported".into()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok((words, None))
}

/// The steps of a markdown document (see the module docs).
fn parse(doc: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut lines = doc.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut tokens = info.split_whitespace();
        let lang = tokens.next().unwrap_or("");
        let file = tokens.find_map(|t| t.strip_prefix("file="));
        let mut body = Vec::new();
        let mut closed = false;
        for (m, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                closed = true;
                break;
            }
            body.push((m, l));
        }
        if !closed {
            return Err(format!("line {n}: code block is never closed"));
        }
        if let Some(name) = file {
            let contents: String = body.iter().map(|(_, l)| format!("{l}\n")).collect();
            steps.push(Step::File {
                line: n,
                name: name.to_string(),
                contents,
            });
        }
        if lang != "console" {
            continue;
        }
        for (m, l) in body {
            let Some(cmd) = l.strip_prefix("$ ") else {
                continue;
            };
            let (args, comment) = split_words(cmd).map_err(|e| format!("line {m}: {e}"))?;
            if args.first().map(String::as_str) != Some("synthsae") {
                return Err(format!(
                    "line {m}: `{cmd}`: tested console blocks may only run synthsae \
                     (show other commands in a ```sh block)"
                ));
            }
            let exit = match comment.as_deref().and_then(|c| c.strip_prefix("exit ")) {
                Some(code) => code
                    .trim()
                    .parse()
                    .map_err(|_| format!("line {m}: bad exit status in `# exit {code}`"))?,
                None => 0,
            };
            steps.push(Step::Command {
                line: m,
                text: cmd.to_string(),
                args: args[1..].to_vec(),
                exit,
            });
        }
    }
    Ok(steps)
}

fn repo_file(rel: &str) -> String {
    let path = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synthsae-docs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `synthsae` process in `dir`, with the hub variables pointing at `hub`.
fn synthsae(dir: &Path, hub: &HubEmulator, args: &[String]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_synthsae"));
    c.args(args)
        .current_dir(dir)
        .env("HF_ENDPOINT", hub.url())
        .env("HF_HOME", dir.join(".hf-home"))
        .env("HF_TOKEN", TOKEN);
    for k in [
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
    ] {
        c.env_remove(k);
    }
    c.output().expect("run synthsae")
}

/// Runs every step of `doc` in a fresh scratch folder; returns the number
/// of commands run.
fn run_document(rel: &str) -> usize {
    let name = Path::new(rel).file_stem().unwrap().to_string_lossy();
    let steps = parse(&repo_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let dir = scratch(&name);
    let hub = HubEmulator::start();
    hub.require_token(TOKEN);
    let mut commands = 0;
    for step in steps {
        match step {
            Step::File {
                line,
                name,
                contents,
            } => {
                let path = dir.join(&name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).unwrap();
                }
                std::fs::write(&path, contents)
                    .unwrap_or_else(|e| panic!("{rel}:{line}: writing {name}: {e}"));
            }
            Step::Command {
                line,
                text,
                args,
                exit,
            } => {
                let started = std::time::Instant::now();
                let out = synthsae(&dir, &hub, &args);
                let code = out.status.code().unwrap_or(-1);
                assert_eq!(
                    code,
                    exit,
                    "{rel}:{line}: `{text}` exited with {code}, the document expects {exit}\n\
                     --- stdout\n{}\n--- stderr\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                if exit != 0 {
                    // Errors are one readable line (clap's usage errors add
                    // a usage line and a hint).
                    let err = String::from_utf8_lossy(&out.stderr);
                    let err = err.trim();
                    let one_line = err.lines().count() == 1;
                    let clap = err.contains("Usage:") || err.contains("For more information");
                    assert!(
                        err.starts_with("error: ") && (one_line || clap),
                        "{rel}:{line}: `{text}`: {err}"
                    );
                }
                eprintln!(
                    "{rel}:{line}: {text} ({:.2} s)",
                    started.elapsed().as_secs_f64()
                );
                commands += 1;
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    commands
}

#[test]
fn getting_started_commands_run() {
    let n = run_document("docs/getting-started.md");
    assert!(n >= 20, "only {n} commands found");
}

#[test]
fn cli_reference_commands_run() {
    let n = run_document("docs/cli.md");
    assert!(n >= 20, "only {n} commands found");
}

#[test]
fn sweep_spec_page_runs_its_example() {
    let n = run_document("docs/sweeps.md");
    assert!(n >= 4, "only {n} commands found");
    // The example file is the spec the page shows.
    let page = repo_file("docs/sweeps.md");
    let block = page
        .split("```json file=sweep-tutorial.json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the page shows sweep-tutorial.json");
    let file = repo_file("docs/examples/sweep-tutorial.json");
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    assert_eq!(
        parse(block),
        parse(&file),
        "docs/examples/sweep-tutorial.json differs from the page"
    );
}

/// The help text of `synthsae <path> --help`.
fn help(path: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_synthsae"))
        .args(path)
        .arg("--help")
        .output()
        .expect("run synthsae");
    assert!(out.status.success(), "{path:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// Names under `Commands:` in a help text (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Long flags under `Options:` in a help text (without `--help`, `--version`).
fn long_flags(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Options:"))
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| {
            l.split(|c: char| c.is_whitespace() || c == ',')
                .filter(|w| w.starts_with("--"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|f| f != "--help" && f != "--version")
        .collect()
}

/// The section of `doc` under the heading that is `title` or names
/// `` `title` ``, up to the next heading of the same or a higher level.
fn section<'a>(doc: &'a str, title: &str) -> Option<&'a str> {
    let mut start = None;
    let mut level = 0;
    let mut offset = 0;
    for line in doc.split_inclusive('\n') {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if hashes > 0 && line[hashes..].starts_with(' ') {
            match start {
                None if line[hashes..].trim() == title || line.contains(&format!("`{title}`")) => {
                    start = Some(offset);
                    level = hashes;
                }
                Some(s) if hashes <= level => return Some(&doc[s..offset]),
                _ => {}
            }
        }
        offset += line.len();
    }
    start.map(|s| &doc[s..])
}

#[test]
fn cli_reference_covers_every_command_and_flag() {
    let doc = repo_file("docs/cli.md");
    let global = long_flags(&help(&[]));
    assert!(global.contains(&"--backend".to_string()), "{global:?}");
    let globals = section(&doc, "Global options").expect("a \"Global options\" section");
    for flag in &global {
        assert!(
            globals.contains(flag.as_str()),
            "global {flag} is not documented"
        );
    }
    let mut missing = Vec::new();
    let mut queue: Vec<Vec<String>> = subcommands(&help(&[]))
        .into_iter()
        .map(|c| vec![c])
        .collect();
    let mut seen = 0;
    while let Some(path) = queue.pop() {
        seen += 1;
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        let title = format!("synthsae {}", path.join(" "));
        let Some(body) = section(&doc, &title) else {
            missing.push(format!("no section for `{title}`"));
            continue;
        };
        for flag in long_flags(&text) {
            if !global.contains(&flag) && !body.contains(flag.as_str()) {
                missing.push(format!("`{title}`: {flag}"));
            }
        }
        for sub in subcommands(&text) {
            let mut p = path.clone();
            p.push(sub);
            queue.push(p);
        }
    }
    assert!(seen >= 15, "only {seen} commands found in --help");
    assert!(
        missing.is_empty(),
        "docs/cli.md is missing:\n{}",
        missing.join("\n")
    );
}

#[test]
fn command_lines_are_split_like_a_shell() {
    let (w, c) = split_words(r#"synthsae a 'b c' "d \"e\"" f\ g # exit 2"#).unwrap();
    assert_eq!(w, ["synthsae", "a", "b c", "d \"e\"", "f g"]);
    assert_eq!(c.as_deref(), Some("exit 2"));
    let (w, c) = split_words("synthsae --keys a#b").unwrap();
    assert_eq!(w, ["synthsae", "--keys", "a#b"]);
    assert_eq!(c, None);
    assert!(split_words("synthsae 'open").is_err());

    let doc = "text\n```json file=m.json\n{}\n```\n```console\n$ synthsae presets\noutput\n\
               $ synthsae eval --sae x # exit 1\n```\n```sh\nsynthsae quickstart\n```\n";
    let steps = parse(doc).unwrap();
    assert_eq!(steps.len(), 3);
    assert!(
        matches!(&steps[0], Step::File { name, contents, .. } if name == "m.json" && contents == "{}\n")
    );
    assert!(
        matches!(&steps[1], Step::Command { args, exit: 0, line: 6, .. } if args == &["presets"])
    );
    assert!(matches!(&steps[2], Step::Command { exit: 1, .. }));
    assert!(parse("```console\n$ ls\n```\n").is_err());
    assert!(parse("```console\n$ synthsae presets\n").is_err());
}
