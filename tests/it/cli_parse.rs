//! Golden tests of the `parse --json` contract. Each input under `tests/fixtures/parse/` (and
//! each sample feed in `feeds/`, whose goldens live in `tests/fixtures/parse/samples/`) has a
//! pretty-printed `.expected.json` with sorted keys. `FEEDLOOM_BLESS=1` rewrites them.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::support::{Workspace, bin, repo, stderr, stdout};

/// A fixed "now" so clamped future dates are stable.
fn now() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn render(input: &Path) -> String {
    let bytes = std::fs::read(input).unwrap();
    let parsed = feedloom::pipeline::parse_document(
        &bytes,
        None,
        None,
        None,
        &crate::support::detector(),
        now(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let value = serde_json::to_value(&parsed).unwrap();
    format!("{}\n", serde_json::to_string_pretty(&value).unwrap())
}

fn check(input: &Path, expected: &Path, failures: &mut Vec<String>) {
    let got = render(input);
    if std::env::var_os("FEEDLOOM_BLESS").is_some() {
        std::fs::write(expected, &got).unwrap();
        return;
    }
    match std::fs::read_to_string(expected) {
        Ok(want) if want == got => {}
        Ok(_) => failures.push(format!(
            "{} differs from {} (FEEDLOOM_BLESS=1 to update, then review the diff)",
            input.display(),
            expected.display()
        )),
        Err(_) => failures.push(format!("{} has no golden file", input.display())),
    }
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.ends_with(".expected.json")
                && (name.ends_with(".xml") || name.ends_with(".json") || name.ends_with(".rdf"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn golden_sample_feeds() {
    let mut failures = Vec::new();
    let samples = inputs(&repo().join("feeds"));
    assert!(samples.len() >= 5, "the sample feeds are missing");
    for input in samples {
        let stem = input.file_name().unwrap().to_string_lossy().into_owned();
        let expected = repo()
            .join("tests/fixtures/parse/samples")
            .join(format!("{stem}.expected.json"));
        check(&input, &expected, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn golden_format_cases() {
    let mut failures = Vec::new();
    let dir = repo().join("tests/fixtures/parse/formats");
    let cases = inputs(&dir);
    assert!(!cases.is_empty());
    for input in cases {
        let expected = input.with_extension("expected.json");
        check(&input, &expected, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn summit_is_the_same_story_in_every_sample_shape() {
    let title =
        "Визит лидера Туркменистана в Астану: эксперты обсуждают перспективы сотрудничества";
    for name in ["summit-rss.xml", "summit-atom.xml", "summit.json"] {
        let bytes = std::fs::read(repo().join("feeds").join(name)).unwrap();
        let p = feedloom::pipeline::parse_document(
            &bytes,
            None,
            None,
            None,
            &crate::support::detector(),
            now(),
        )
        .unwrap();
        let it = &p.items[0];
        assert_eq!(it.title, title, "{name}");
        assert_eq!(
            it.published.unwrap().to_rfc3339(),
            "2025-05-30T05:15:00+00:00",
            "{name}"
        );
        assert_eq!(it.language.as_deref(), Some("ru"), "{name}");
        let link = it.link.as_deref().unwrap();
        assert!(
            link.starts_with("https://") && !link.contains("utm_"),
            "{name}: {link}"
        );
        let html = it.content_html.as_deref().unwrap();
        assert!(html.contains("Нефтегазовая отрасль"), "{name}");
        assert!(!html.contains("<script"), "{name}");
    }
}

#[tokio::test]
async fn cli_parse_prints_the_contract_and_fails_clearly() {
    let ws = Workspace::new();
    let out = tokio::process::Command::new(bin())
        .args(["parse", "--json"])
        .arg(repo().join("feeds/summit-rss.xml"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["feed"]["encoding"], "windows-1251");
    assert_eq!(v["feed"]["format"], "rss2");
    assert_eq!(v["items"][0]["published"], "2025-05-30T05:15:00Z");

    let not_feed = ws.write("page.html", "<html><body>hello</body></html>");
    let out = tokio::process::Command::new(bin())
        .args(["parse", "--json"])
        .arg(&not_feed)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("page.html") && err.contains("not a feed"),
        "{err}"
    );

    let out = tokio::process::Command::new(bin())
        .args(["parse", "/no/such/feed.xml"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/no/such/feed.xml"),
        "{}",
        stderr(&out)
    );
}
