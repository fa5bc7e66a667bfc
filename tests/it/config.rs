//! `feedloom check`: the shipped config is valid; every `invalid-*.toml` fails with exit 2 and
//! exactly the text in its `.expected.txt` (paths shown relative to the fixture folder).

use crate::support::{bin, repo, stderr, stdout};

#[tokio::test]
async fn shipped_config_is_valid() {
    let out = tokio::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(repo().join("config.toml"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ok (6 sources, 3 feeds)"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn invalid_configs_name_file_line_column_and_fix() {
    let dir = repo().join("tests/fixtures/config");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("invalid-") && n.ends_with(".toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 4);
    let mut failures = Vec::new();
    for name in cases {
        let out = tokio::process::Command::new(bin())
            .args(["check", "--config", &name])
            .current_dir(&dir)
            .env_remove("FEEDLOOM_CONFIG")
            .output()
            .await
            .unwrap();
        let expected_path = dir.join(name.replace(".toml", ".expected.txt"));
        let got = stderr(&out);
        if std::env::var_os("FEEDLOOM_BLESS").is_some() {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        if out.status.code() != Some(2) {
            failures.push(format!("{name}: exit {:?}, want 2", out.status.code()));
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != want {
            failures.push(format!("{name}:\n--- want\n{want}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn feedloom_config_variable_is_honoured() {
    let out = tokio::process::Command::new(bin())
        .arg("check")
        .env("FEEDLOOM_CONFIG", repo().join("config.toml"))
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
