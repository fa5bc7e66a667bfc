//! The summit article (`../shared/fixtures/summit-article.txt`) in four shapes publishers ship
//! it in must come out as one clean, identically structured story; normal articles must come
//! out with nothing of theirs removed; normalising twice changes nothing.
//!
//! Goldens: `tests/fixtures/normalize/summit/<shape>.expected.json` (the summit item of each
//! shape, pretty JSON, sorted keys); `FEEDLOOM_BLESS=1` rewrites them.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use feedloom::model::Item;
use feedloom::parse::{RawFeed, RawItem};

use crate::support::repo;

const TITLE: &str =
    "Визит лидера Туркменистана в Астану: эксперты обсуждают перспективы сотрудничества";

fn now() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn parse_file(path: &PathBuf) -> feedloom::model::Parsed {
    let bytes = std::fs::read(path).unwrap();
    feedloom::pipeline::parse_document(&bytes, None, None, None, &crate::support::detector(), now())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The four shapes: name, file.
fn shapes() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("rss-html-windows-1251", repo().join("feeds/summit-rss.xml")),
        ("atom-xml-base", repo().join("feeds/summit-atom.xml")),
        (
            "rss091-plain-text",
            repo().join("tests/fixtures/normalize/summit/rss091-plain.xml"),
        ),
        ("json-feed-content-text", repo().join("feeds/summit.json")),
    ]
}

fn summit(path: &PathBuf) -> Item {
    parse_file(path)
        .items
        .into_iter()
        .find(|i| i.title == TITLE)
        .unwrap_or_else(|| panic!("{}: no summit item", path.display()))
}

/// The tag skeleton of a body: block elements in order, without text, attributes or images.
fn skeleton(html: &str) -> Vec<String> {
    let doc = scraper::Html::parse_fragment(html);
    doc.tree
        .root()
        .descendants()
        .filter_map(|n| n.value().as_element().map(|e| e.name().to_string()))
        .filter(|n| {
            ["p", "h2", "h3", "ul", "ol", "li", "figure", "figcaption"].contains(&n.as_str())
        })
        .collect()
}

fn text_of(html: &str) -> String {
    feedloom::normalize::html::collapse(&feedloom::normalize::html::text_of(html))
}

#[test]
fn golden_summit_shapes() {
    let mut failures = Vec::new();
    for (name, path) in shapes() {
        let item = summit(&path);
        let got = format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::to_value(&item).unwrap()).unwrap()
        );
        let expected = repo().join(format!(
            "tests/fixtures/normalize/summit/{name}.expected.json"
        ));
        if std::env::var_os("FEEDLOOM_BLESS").is_some() {
            std::fs::write(&expected, &got).unwrap();
            continue;
        }
        if std::fs::read_to_string(&expected).ok().as_deref() != Some(got.as_str()) {
            failures.push(format!("{name}: differs from {}", expected.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_shape_gives_the_same_clean_structure() {
    let lead = std::fs::read_to_string(repo().join("../shared/fixtures/summit-article.txt"))
        .ok()
        .and_then(|t| {
            t.split("\n\n")
                .nth(1)
                .map(|p| p.lines().next().unwrap().to_string())
        });
    let mut skeletons = Vec::new();
    for (name, path) in shapes() {
        let it = summit(&path);
        let html = it.content_html.as_deref().unwrap();
        let text = text_of(html);
        assert_eq!(it.language.as_deref(), Some("ru"), "{name}");
        assert!(!text.contains(TITLE), "{name}: the repeated title is gone");
        assert!(!text.contains("Поделиться"), "{name}: no share widget");
        assert!(
            !html.contains("counter.example.com"),
            "{name}: no tracking pixel"
        );
        assert!(
            !html.contains("utm_") && !html.contains("<script"),
            "{name}"
        );
        assert!(
            !html.contains("href=\"/") && !html.contains("src=\"/"),
            "{name}: absolute URLs"
        );
        assert_eq!(
            html.matches("<h2>").count(),
            3,
            "{name}: three section headings"
        );
        assert_eq!(html.matches("<li>").count(), 4, "{name}: four bullets");
        assert!(html.contains("<li>Транспорт и логистика</li>"), "{name}");
        assert!(
            html.contains("<figcaption>Фото пресс-службы правительства Казахстана</figcaption>"),
            "{name}: the credit is a caption"
        );
        let summary = it.summary.as_deref().unwrap();
        assert!(
            summary.starts_with("Общественность и эксперты"),
            "{name}: {summary}"
        );
        assert!(
            summary.ends_with('…') && summary.chars().count() <= 301,
            "{name}"
        );
        assert!(
            !summary.contains("Фото"),
            "{name}: the credit is never in the summary"
        );
        if let Some(lead) = &lead {
            let cut = summary.trim_end_matches('…');
            assert!(lead.starts_with(cut), "{name}: the summary is the lead");
        }
        let link = it.link.as_deref().unwrap();
        assert!(
            !link.contains("utm_") && !link.contains("yclid"),
            "{name}: {link}"
        );
        skeletons.push((name, skeleton(html)));
    }
    for (name, sk) in &skeletons[1..] {
        assert_eq!(sk, &skeletons[0].1, "{name} vs {}", skeletons[0].0);
    }
}

/// Every normal article keeps all of its text: the rules removed nothing from it.
#[test]
fn normal_articles_lose_nothing() {
    for file in [
        "world-news.xml",
        "tech-atom.xml",
        "kz-koi8.xml",
        "summit-rss.xml",
        "summit.json",
    ] {
        let path = repo().join("feeds").join(file);
        let bytes = std::fs::read(&path).unwrap();
        let decoded = feedloom::decode::decode(&bytes, None);
        let raw = feedloom::parse::parse(&decoded.text).unwrap();
        let parsed = parse_file(&path);
        for (r, it) in raw.items.iter().zip(&parsed.items) {
            if it.title == TITLE {
                continue;
            }
            let source = r.content.as_deref().or(r.summary.as_deref()).unwrap_or("");
            let want = text_of(&feedloom::normalize::html::sanitize(source, None));
            let got = text_of(it.content_html.as_deref().unwrap_or(""));
            let squash = |s: &str| s.split_whitespace().collect::<String>();
            assert_eq!(squash(&got), squash(&want), "{file}: {}", it.title);
        }
    }
}

#[test]
fn normalising_a_normalised_item_changes_nothing() {
    let d = crate::support::detector();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("feeds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(repo().join("tests/fixtures/normalize/summit/rss091-plain.xml"));
    for path in files {
        let once = parse_file(&path);
        let raw = RawFeed {
            items: once.items.iter().map(RawItem::from).collect(),
            ..RawFeed::default()
        };
        let rules = feedloom::normalize::Rules {
            detector: Some(&d),
            ..Default::default()
        };
        let twice = feedloom::normalize::normalize(raw, &rules, now());
        for (a, b) in once.items.iter().zip(&twice.items) {
            assert_eq!(a, b, "{}", path.display());
        }
    }
}
