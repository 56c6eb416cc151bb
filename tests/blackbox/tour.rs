//! The README's five-minute tour, as written: the client commands are read from README.md and
//! run verbatim by `sh` (with `ferry` on the PATH, `FERRY_URL` pointing at a `ferry serve`
//! started in the same directory, and `<run id>` filled in), each checked for what a person
//! would expect to see. Then the two mistakes people make first: a wrong key, and no server.

use std::path::Path;
use std::process::Command;

use crate::support::{ferry_bin, ferry_command, run_cli, CliOutput, FerryProcess};

const README: &str = include_str!("../../README.md");

/// The `ferry ...` lines of the tour section's shell blocks, without their comments.
fn tour_commands() -> Vec<String> {
    let start = README
        .find("## Five-minute tour")
        .expect("README.md has a \"Five-minute tour\" section");
    let section = &README[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut in_block = false;
    let mut commands = Vec::new();
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block && line.starts_with("ferry ") {
            let command = line.split(" #").next().unwrap().trim();
            commands.push(command.to_owned());
        }
    }
    commands
}

/// What each tour command must print (on stdout, or on stderr for notes), by its prefix.
const EXPECTED: &[(&str, &[&str], &[&str])] = &[
    (
        "ferry admin bootstrap --workspace acme",
        &["Created workspace acme", "export FERRY_API_KEY=fry_key_"],
        &[],
    ),
    (
        "ferry pool create sbx --type managed",
        &["Created pool sbx (managed, id "],
        &[],
    ),
    ("ferry pool list", &["NAME", "TYPE", "sbx", "managed"], &[]),
    (
        "ferry artifact push sandbox/out/hello.wasm",
        &["Uploaded sandbox/out/hello.wasm (component, ", "sha256:"],
        &[],
    ),
    (
        "ferry artifact push sandbox/out/sleep-forever.wasm",
        &[
            "Uploaded sandbox/out/sleep-forever.wasm (component, ",
            "sha256:",
        ],
        &[],
    ),
    (
        "ferry run submit --pool sbx --artifact <digest> --param name=world --wait",
        &[
            "Submitted run ",
            " to pool sbx (scheduled).",
            "completed",
            "hello world",
        ],
        &[],
    ),
    (
        "ferry run submit --pool sbx --artifact <digest>",
        &["Submitted run ", " to pool sbx (scheduled)."],
        &[],
    ),
    (
        "ferry run list",
        &["ID", "STATE", "{id}", "sbx", "completed"],
        &[],
    ),
    (
        "ferry run show <run id>",
        &[
            "{id}",
            "sbx (managed)",
            "completed",
            "{digest}",
            "\"name\":\"world\"",
            "hello world",
        ],
        &[],
    ),
    (
        "ferry run events <run id>",
        &[
            "FROM",
            "TO",
            "CAUSE",
            "scheduled",
            "submitted",
            "running",
            "completed",
        ],
        &[],
    ),
    ("ferry run cancel <run id>", &["{id}", "ancel"], &[]),
    (
        "ferry run logs <run id> --follow",
        &[],
        &["(run cancelled)"],
    ),
];

/// Runs one shell line in `dir` with `ferry` on the PATH.
async fn sh(dir: &Path, line: &str, env: &[(&str, &str)]) -> CliOutput {
    let bin = dir.join("bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FERRY_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(dir)
        .env("PATH", path)
        .envs(env.iter().copied())
        .args(["-c", line]);
    run_cli(cmd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::os::unix::fs::symlink(ferry_bin(), dir.path().join("bin/ferry")).unwrap();
    // `cargo run -p ferry -- serve` in this directory (so the data is in ./ferry-data), on free
    // ports; the real executors, as a reader has them.
    let mut server = FerryProcess::serve(dir.path(), dir.path(), "tour", &[], &[]).await;
    assert!(dir.path().join("ferry-data").is_dir());

    let commands = tour_commands();
    for (prefix, _, _) in EXPECTED {
        assert!(
            commands.iter().any(|c| c.starts_with(prefix)),
            "README's tour no longer has {prefix:?}; its commands: {commands:#?}"
        );
    }
    // The tour runs at the top of the repository: its flows are in sandbox/out.
    let sandbox = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sandbox");
    crate::managed::build_flows();
    std::fs::create_dir(dir.path().join("sandbox")).unwrap();
    std::os::unix::fs::symlink(sandbox.join("out"), dir.path().join("sandbox/out")).unwrap();
    let mut key = String::new();
    let mut run_id = String::new();
    let mut digest = String::new();
    for command in &commands {
        let (_, out_parts, err_parts) = EXPECTED
            .iter()
            .find(|(prefix, _, _)| command.starts_with(prefix))
            .unwrap_or_else(|| panic!("the tour has a command this test does not know: {command}"));
        let line = command
            .replace("<run id>", &run_id)
            .replace("<digest>", &digest);
        let mut env = vec![("FERRY_URL", server.public_url.as_str())];
        if !key.is_empty() {
            env.push(("FERRY_API_KEY", key.as_str()));
        }
        let out = sh(dir.path(), &line, &env).await;
        let want: Vec<String> = out_parts
            .iter()
            .map(|p| p.replace("{id}", &run_id).replace("{digest}", &digest))
            .collect();
        out.assert_success(&want.iter().map(String::as_str).collect::<Vec<_>>());
        for part in *err_parts {
            assert!(
                out.stderr.contains(part),
                "{line}: stderr lacks {part:?}: {out:#?}"
            );
        }
        if command.starts_with("ferry admin bootstrap") {
            key = out
                .stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix("export FERRY_API_KEY="))
                .unwrap()
                .to_owned();
        }
        if command.starts_with("ferry artifact push") {
            digest = out.stdout.lines().last().unwrap().trim().to_owned();
            assert!(digest.starts_with("sha256:"), "{}", out.stdout);
        }
        if command.starts_with("ferry run submit") {
            let rest = out.stdout.split("Submitted run ").nth(1).unwrap();
            run_id = rest.split(' ').next().unwrap().to_owned();
            assert!(uuid::Uuid::parse_str(&run_id).is_ok(), "{}", out.stdout);
        }
    }
    assert!(!run_id.is_empty(), "the tour submitted no run");

    // The tour's last two lines: curl the OpenAPI document and the metrics.
    let http = reqwest::Client::new();
    let openapi = http
        .get(format!("{}/openapi.json", server.public_url))
        .send()
        .await
        .unwrap();
    assert_eq!(openapi.status(), 200);
    assert!(openapi.text().await.unwrap().starts_with('{'));
    let metrics = http
        .get(format!("{}/metrics", server.internal_url))
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("ferry_runs_finished_total{pool_type=\"managed\",state=\"cancelled\"} 1"),
        "{metrics}"
    );

    // `--output json` gives the API's object.
    let mut cmd = ferry_command();
    cmd.env("FERRY_URL", &server.public_url)
        .env("FERRY_API_KEY", &key)
        .args(["run", "show", &run_id, "--output", "json"]);
    let out = run_cli(cmd).await;
    out.assert_success(&[]);
    let run: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (run["id"].as_str(), run["state"].as_str()),
        (Some(run_id.as_str()), Some("cancelled"))
    );

    // A wrong key: exit 1, and the message says which variable to fix.
    let mut cmd = ferry_command();
    cmd.env("FERRY_URL", &server.public_url)
        .env("FERRY_API_KEY", "fry_key_wrong")
        .args(["run", "show", &run_id]);
    let out = run_cli(cmd).await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(
        out.stderr.contains("FERRY_API_KEY") && out.stderr.contains("invalid API key"),
        "{out:#?}"
    );
    assert!(out.stdout.is_empty(), "{out:#?}");

    // No key at all: the message says how to get one.
    let mut cmd = ferry_command();
    cmd.env("FERRY_URL", &server.public_url)
        .args(["run", "show", &run_id]);
    let out = run_cli(cmd).await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(
        out.stderr.contains("FERRY_API_KEY") && out.stderr.contains("ferry admin bootstrap"),
        "{out:#?}"
    );

    assert!(server.terminate().await.success());

    // Nothing listening: it says it cannot reach Ferry.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut cmd = ferry_command();
    cmd.env("FERRY_URL", format!("http://127.0.0.1:{closed}"))
        .env("FERRY_API_KEY", &key)
        .args(["run", "show", &run_id]);
    let out = run_cli(cmd).await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("cannot reach Ferry"), "{out:#?}");
}
