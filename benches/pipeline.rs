//! Criterion benches of the CPU stages of a refresh, through the library's public API only:
//! decode + parse (bytes → RawFeed), normalise (RawFeed → items), the two together (what a
//! fetched 200 costs before the store), the same document parsed again with its items known
//! (what an unchanged item costs in an update), sanitise (HTML → safe HTML), language detection, and
//! rendering a 500-item merged feed in every format.
//!
//! ```text
//! cargo bench --bench pipeline                 # all
//! cargo bench --bench pipeline -- normalise    # a group
//! ```
//!
//! Inputs: four feeds made by `bench/gen_sources.py` (seed 8; kept in `bench/fixtures/`: RSS 2.0
//! in English, RSS 2.0 in Russian in windows-1251, Atom in German, RDF in French, each ~100 KB
//! with the HTML bodies of the refresh benchmark) and `feeds/summit-rss.xml`. Throughput is
//! reported per byte of the source document (sanitise: per byte of HTML), on one core.
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use feedloom::config::{Config, Format};
use feedloom::normalize::language::Detector;
use feedloom::normalize::{self, Rules};
use feedloom::publish::{self, Context, SourceInfo};
use feedloom::store::StoredItem;
use feedloom::{decode, parse, pipeline};
use url::Url;

const FIXTURES: [&str; 5] = [
    "bench/fixtures/rss-en.xml",
    "bench/fixtures/rss-ru-cp1251.xml",
    "bench/fixtures/atom-de.atom",
    "bench/fixtures/rdf-fr.rdf",
    "feeds/summit-rss.xml",
];

fn read(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn name(path: &str) -> &str {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
}

fn detector() -> Detector {
    let codes: Vec<String> = ["en", "ru", "uk", "de", "fr", "es"]
        .map(String::from)
        .to_vec();
    Detector::new(&codes)
}

fn location() -> Url {
    Url::parse("https://example.org/feed.xml").unwrap()
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for path in FIXTURES {
        let bytes = read(path);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name(path), |b| {
            b.iter(|| {
                let decoded = decode::decode(black_box(&bytes), None);
                parse::parse(&decoded.text).unwrap()
            })
        });
    }
    g.finish();
}

fn bench_normalise(c: &mut Criterion) {
    let detector = detector();
    let mut g = c.benchmark_group("normalise");
    for path in FIXTURES {
        let bytes = read(path);
        let decoded = decode::decode(&bytes, None);
        let raw = parse::parse(&decoded.text).unwrap();
        let rules = Rules {
            location: Some(location()),
            encoding: decoded.encoding.clone(),
            detector: Some(&detector),
            ..Rules::default()
        };
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name(path), |b| {
            b.iter_batched(
                || raw.clone(),
                |raw| normalize::normalize(raw, &rules, now()),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// decode + parse + normalise: `pipeline::parse_document`, the CPU cost of one fetched 200.
fn bench_parse_normalise(c: &mut Criterion) {
    let detector = detector();
    let mut g = c.benchmark_group("parse_normalise");
    for path in FIXTURES {
        let bytes = read(path);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name(path), |b| {
            b.iter(|| {
                pipeline::parse_document(
                    black_box(&bytes),
                    None,
                    Some(location()),
                    None,
                    &detector,
                    now(),
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

/// A document sent again, every item as before (`pipeline::parse_source_reusing` with what
/// the first reading left): what each unchanged document of an update costs. Its items are
/// read light and reused, not normalised again.
fn bench_parse_again(c: &mut Criterion) {
    let detector = detector();
    let limits = parse::Limits::default();
    let mut g = c.benchmark_group("parse_again");
    for path in FIXTURES {
        let bytes = read(path);
        let again = |prev| {
            pipeline::parse_source_reusing(
                black_box(&bytes),
                None,
                Some(location()),
                None,
                &detector,
                None,
                &limits,
                now(),
                prev,
            )
            .unwrap()
        };
        let first = again(None);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name(path), |b| b.iter(|| again(Some(&first.reuse))));
    }
    g.finish();
}

/// The raw HTML bodies of a fixture, as the parser hands them to the normaliser.
fn bodies(path: &str) -> Vec<String> {
    let bytes = read(path);
    let raw = parse::parse(&decode::decode(&bytes, None).text).unwrap();
    raw.items
        .into_iter()
        .filter_map(|it| it.content.or(it.summary))
        .collect()
}

fn bench_sanitise(c: &mut Criterion) {
    let base = location();
    let mut g = c.benchmark_group("sanitise");
    for path in [
        "bench/fixtures/rss-en.xml",
        "bench/fixtures/rss-ru-cp1251.xml",
    ] {
        let html = bodies(path);
        g.throughput(Throughput::Bytes(html.iter().map(|h| h.len() as u64).sum()));
        g.bench_function(name(path), |b| {
            b.iter(|| {
                for h in &html {
                    black_box(normalize::html::sanitize(black_box(h), Some(&base)));
                }
            })
        });
        // What a refresh sanitises: the markup the body rules wrote.
        let rules = normalize::body::BodyRules {
            title: "",
            strip_patterns: &[],
            remove_selectors: &[],
        };
        let written: Vec<String> = html
            .iter()
            .map(|h| normalize::body::normalize_body(h, true, &rules).html)
            .collect();
        g.throughput(Throughput::Bytes(
            written.iter().map(|h| h.len() as u64).sum(),
        ));
        g.bench_function(format!("{}/body-rules", name(path)), |b| {
            b.iter(|| {
                for h in &written {
                    black_box(normalize::html::sanitize(black_box(h), Some(&base)));
                }
            })
        });
    }
    g.finish();
}

fn bench_language(c: &mut Criterion) {
    let detector = detector();
    let mut g = c.benchmark_group("language");
    // Without a declared language lingua decides; with the feed's, whatlang may confirm it
    // first (not for Russian while Kazakh is a candidate).
    for (path, declared) in [
        ("bench/fixtures/rss-en.xml", "en"),
        ("bench/fixtures/rss-ru-cp1251.xml", "ru"),
    ] {
        let texts: Vec<String> = bodies(path)
            .iter()
            .map(|h| normalize::html::text_of(h))
            .collect();
        g.throughput(Throughput::Elements(texts.len() as u64));
        for hint in [None, Some(declared)] {
            let label = format!("{}/{}", name(path), hint.unwrap_or("undeclared"));
            g.bench_function(label, |b| {
                b.iter(|| {
                    for t in &texts {
                        black_box(detector.detect(black_box(t), hint));
                    }
                })
            });
        }
    }
    // With Kazakh a candidate (the shipped config), whatlang cannot confirm Cyrillic text.
    let with_kazakh = Detector::new(&["en", "ru", "uk", "kk", "de", "fr", "es"].map(String::from));
    let texts: Vec<String> = bodies("bench/fixtures/rss-ru-cp1251.xml")
        .iter()
        .map(|h| normalize::html::text_of(h))
        .collect();
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function("rss-ru-cp1251.xml/ru-with-kk", |b| {
        b.iter(|| {
            for t in &texts {
                black_box(with_kazakh.detect(black_box(t), Some("ru")));
            }
        })
    });
    g.finish();
}

/// 500 stored items from the fixtures (repeated under new ids), newest first, 25 sources.
fn stored_items() -> Vec<StoredItem> {
    let detector = detector();
    let mut items = Vec::new();
    for path in &FIXTURES[..4] {
        let parsed =
            pipeline::parse_document(&read(path), None, Some(location()), None, &detector, now())
                .unwrap();
        items.extend(parsed.items);
    }
    let mut out = Vec::with_capacity(500);
    for i in 0..500 {
        let mut item = items[i % items.len()].clone();
        item.id = format!("{}-{i}", item.id);
        let date = now() - chrono::Duration::minutes(7 * i as i64);
        item.published = Some(date);
        out.push(StoredItem {
            source: format!("s{:02}", i % 25),
            item,
            first_seen: date,
            sort_date: date,
        });
    }
    out
}

fn bench_render(c: &mut Criterion) {
    let config = Config::parse(
        "[[feed]]\nname = \"all\"\ntitle = \"All sources\"\nlimit = 500\n",
        Path::new("bench.toml"),
    )
    .expect("config");
    let feed = &config.feeds[0];
    let items = stored_items();
    let sources: HashMap<String, SourceInfo> = (0..25)
        .map(|i| {
            let name = format!("s{i:02}");
            let info = SourceInfo {
                name: name.clone(),
                title: format!("Source {i}"),
                link: Some(format!("https://s{i}.example.org/")),
                feed_url: Some(format!("https://s{i}.example.org/feed.xml")),
                ..SourceInfo::default()
            };
            (name, info)
        })
        .collect();
    let ctx = Context {
        base_url: Url::parse("https://feeds.example.org/").unwrap(),
        sources: std::sync::Arc::new(sources),
        ttl_minutes: 30,
        hubs: Vec::new(),
        merged: Default::default(),
    };
    let mut g = c.benchmark_group("render_500");
    for format in Format::ALL {
        g.bench_function(format.extension(), |b| {
            b.iter(|| publish::render(feed, black_box(&items), &ctx, format, None).unwrap())
        });
    }
    g.bench_function("all_formats", |b| {
        b.iter(|| {
            for format in Format::ALL {
                black_box(publish::render(feed, black_box(&items), &ctx, format, None).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_parse,
    bench_normalise,
    bench_parse_normalise,
    bench_parse_again,
    bench_sanitise,
    bench_language,
    bench_render
);
criterion_main!(benches);
