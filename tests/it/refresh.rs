//! Whole `feedloom refresh` runs of the real binary against a real HTTP server on 127.0.0.1
//! (wiremock), with real SQLite files in a temp folder.

use std::io::Write;

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{Workspace, repo, stderr, stdout};

const RSS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Loopback News</title><link>https://loopback.example/</link>
<description>d</description><language>en</language>
<item><title>First story</title><link>https://loopback.example/1?utm_source=rss</link>
<guid isPermaLink="false">lb-1</guid><pubDate>Mon, 02 Jun 2025 10:00:00 GMT</pubDate>
<description>&lt;p&gt;One &lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;</description></item>
<item><title>Second story</title><link>https://loopback.example/2</link>
<guid isPermaLink="false">lb-2</guid><pubDate>Mon, 02 Jun 2025 11:00:00 GMT</pubDate>
<description>Two</description></item>
</channel></rss>"#;

fn config(sources: &[(&str, String)]) -> String {
    let mut c =
        String::from("[settings]\nallow_private_networks = true\nfetch_timeout = \"10s\"\n\n");
    for (name, url) in sources {
        c.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{url}\"\n\n"
        ));
    }
    c.push_str("[[feed]]\nname = \"all\"\ntitle = \"All\"\n");
    c
}

fn requests_to(reqs: &[Request], p: &str) -> Vec<Request> {
    reqs.iter().filter(|r| r.url.path() == p).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_get_200_then_304_and_outputs_unchanged() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/feed.xml"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304).insert_header("etag", "\"v1\""))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/feed.xml"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/rss+xml")
                .insert_header("etag", "\"v1\"")
                .insert_header("last-modified", "Mon, 02 Jun 2025 11:00:00 GMT")
                .set_body_string(RSS),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &config(&[("lb", format!("{}/feed.xml", server.uri()))]),
    );

    let first = ws.run(&["refresh"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        stderr(&first).is_empty(),
        "a good run is silent: {}",
        stderr(&first)
    );
    let outputs = ws.outputs();
    assert_eq!(outputs.len(), 5, "three feeds, index.html, sources.opml");
    let rss = ws.read("public/all.rss");
    assert!(rss.contains("First story") && rss.contains("Second story"));
    assert!(
        rss.contains("https://loopback.example/1</link>"),
        "utm_ stripped: {rss}"
    );
    assert!(!rss.contains("alert(1)"), "script sanitised away");
    let mtimes = ws.output_mtimes();

    let second = ws.run(&["refresh", "--force", "--report", "json"]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let report: serde_json::Value = serde_json::from_str(&stdout(&second)).unwrap();
    assert_eq!(report["sources"][0]["outcome"], "not_modified", "{report}");
    assert_eq!(
        report["publish"]["written"].as_array().unwrap().len(),
        0,
        "{report}"
    );

    let reqs = requests_to(&server.received_requests().await.unwrap(), "/feed.xml");
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].headers.get("if-none-match").is_none());
    assert_eq!(reqs[1].headers.get("if-none-match").unwrap(), "\"v1\"");
    assert_eq!(
        reqs[1].headers.get("if-modified-since").unwrap(),
        "Mon, 02 Jun 2025 11:00:00 GMT"
    );
    assert!(
        reqs[0]
            .headers
            .get("user-agent")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("feedloom/"),
        "a real User-Agent"
    );
    assert_eq!(ws.outputs(), outputs, "second run changes no output");
    let mtimes2 = ws.output_mtimes();
    assert_eq!(mtimes, mtimes2, "unchanged files are not rewritten");

    // Not due yet (default interval 30m): a plain refresh sends nothing.
    let third = ws.run(&["refresh"]).await;
    assert_eq!(third.status.code(), Some(0));
    assert_eq!(
        requests_to(&server.received_requests().await.unwrap(), "/feed.xml").len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_windows_1251_and_a_failing_source() {
    let server = MockServer::start().await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(RSS.as_bytes()).unwrap();
    Mock::given(path("/gzip.xml"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/rss+xml")
                .insert_header("content-encoding", "gzip")
                .set_body_bytes(gz.finish().unwrap()),
        )
        .mount(&server)
        .await;
    // The summit feed as publishers ship it: windows-1251 bytes, declared in the prolog and in
    // the HTTP header.
    let cp1251 = std::fs::read(repo().join("feeds/summit-rss.xml")).unwrap();
    Mock::given(path("/cp1251.xml"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/xml; charset=windows-1251")
                .set_body_bytes(cp1251),
        )
        .mount(&server)
        .await;
    Mock::given(path("/gone.xml"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &config(&[
            ("gz", format!("{}/gzip.xml", server.uri())),
            ("cyr", format!("{}/cp1251.xml", server.uri())),
            ("gone", format!("{}/gone.xml", server.uri())),
        ]),
    );
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(1), "a failed source makes exit 1");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line per failed source: {err}");
    assert!(err.contains("gone") && err.contains("404"), "{err}");

    let gz_req = requests_to(&server.received_requests().await.unwrap(), "/gzip.xml");
    let accept = gz_req[0]
        .headers
        .get("accept-encoding")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(accept.contains("gzip") && accept.contains("br"), "{accept}");

    for file in ["all.rss", "all.atom", "all.json"] {
        let text = ws.read(&format!("public/{file}"));
        assert!(
            text.contains("First story"),
            "{file}: gzip source published"
        );
        assert!(
            text.contains("Визит лидера Туркменистана в Астану"),
            "{file}: windows-1251 source published with its Cyrillic intact"
        );
        assert!(!text.contains("Р’РёР·РёС‚"), "{file}: no double decoding");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_starts_failing_keeps_its_stored_items() {
    let server = MockServer::start().await;
    Mock::given(path("/feed.xml"))
        .respond_with(ResponseTemplate::new(200).set_body_string(RSS))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/feed.xml"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .with_priority(2)
        .mount(&server)
        .await;
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &config(&[("lb", format!("{}/feed.xml", server.uri()))]),
    );
    assert_eq!(ws.run(&["refresh"]).await.status.code(), Some(0));
    let before = ws.read("public/all.atom");
    let out = ws.run(&["refresh", "--force"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("source lb") && err.contains("not a feed"),
        "{err}"
    );
    assert_eq!(ws.read("public/all.atom"), before, "nothing stored is lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_sources_are_refused_unless_allowed() {
    let server = MockServer::start().await;
    Mock::given(path("/feed.xml"))
        .respond_with(ResponseTemplate::new(200).set_body_string(RSS))
        .mount(&server)
        .await;
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &format!(
            "[[source]]\nname = \"lb\"\nurl = \"{}/feed.xml\"\n[[feed]]\nname = \"all\"\ntitle = \"All\"\n",
            server.uri()
        ),
    );
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("private or loopback"),
        "{}",
        stderr(&out)
    );
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "nothing was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_while_one_holds_the_lock_exits_3() {
    let ws = Workspace::shipped();
    // Hold the run lock as a running refresh would.
    let lock = std::fs::File::create(ws.path().join("feedloom.db.lock")).unwrap();
    lock.try_lock().unwrap();
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("another run holds the lock"));
    drop(lock);
    // A lock left by a dead process is released by the OS: the next run goes ahead.
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_config_second_run_is_byte_identical() {
    let ws = Workspace::shipped();
    let first = ws.run(&["refresh"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let names: Vec<String> = ws.outputs().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "all.atom",
            "all.json",
            "all.rss",
            "central-asia.atom",
            "central-asia.json",
            "central-asia.rss",
            "index.html",
            "sources.opml",
            "turkmenistan.atom",
            "turkmenistan.json",
            "turkmenistan.rss"
        ]
    );
    let before = ws.outputs();
    let again = ws.run(&["refresh", "--force"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(ws.outputs(), before);
    // `publish` from the store alone renders the same bytes.
    std::fs::remove_dir_all(ws.path().join("public")).unwrap();
    let publish = ws.run(&["publish"]).await;
    assert_eq!(publish.status.code(), Some(0), "{}", stderr(&publish));
    assert_eq!(ws.outputs(), before);
}

fn rss_with(items: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>R</title>\
         <link>https://r.example/</link><description>d</description>",
    );
    for (guid, title) in items {
        s.push_str(&format!(
            "<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title>\
             <link>https://r.example/{guid}</link><description>{title} text.</description></item>"
        ));
    }
    s.push_str("</channel></rss>");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_one_exits_3_nothing_corrupted() {
    let server = MockServer::start().await;
    Mock::given(path("/slow.xml"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(RSS)
                .set_delay(std::time::Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &config(&[("slow", format!("{}/slow.xml", server.uri()))]),
    );
    let first = tokio::process::Command::new(crate::support::bin())
        .args(["refresh", "--config"])
        .arg(ws.config())
        .output();
    let first = tokio::spawn(first);
    // Wait until the first run is inside its fetch, holding the lock.
    for _ in 0..100 {
        if !server.received_requests().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let started = std::time::Instant::now();
    let second = ws.run(&["refresh"]).await;
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "exits at once"
    );
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let json: serde_json::Value = serde_json::from_str(&ws.read("public/all.json")).unwrap();
    assert_eq!(
        json["items"].as_array().unwrap().len(),
        2,
        "a complete document"
    );
    let third = ws.run(&["refresh", "--force"]).await;
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_only_items_the_source_stopped_listing() {
    let server = MockServer::start().await;
    Mock::given(path("/r.xml"))
        .respond_with(ResponseTemplate::new(200).set_body_string(rss_with(&[
            ("one", "First"),
            ("two", "Second"),
            ("three", "Third"),
        ])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/r.xml"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(rss_with(&[("two", "Second"), ("three", "Third")])),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let ws = Workspace::new();
    let mut c = config(&[("r", format!("{}/r.xml", server.uri()))]);
    c = c.replace(
        "[settings]\n",
        "[settings]\nretention = \"2s\"\nmax_items_per_source = 2\n",
    );
    ws.write("config.toml", &c);
    // Three items listed, two kept (max_items_per_source: the newest by first sight order).
    assert_eq!(ws.run(&["refresh"]).await.status.code(), Some(0));
    let db = ws.path().join("feedloom.db");
    let count = || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("SELECT count(*) FROM items", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    assert_eq!(count(), 2, "bounded by max_items_per_source");
    // "one" is no longer listed; retention has not passed: nothing is pruned yet.
    assert_eq!(ws.run(&["refresh", "--force"]).await.status.code(), Some(0));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // The source still lists "two" and "three": they stay however old their last sight.
    assert_eq!(ws.run(&["refresh", "--force"]).await.status.code(), Some(0));
    let rss = ws.read("public/all.rss");
    assert!(rss.contains("Second") && rss.contains("Third"), "{rss}");
    assert!(!rss.contains("First"));
    assert_eq!(count(), 2);
    for _ in 0..5 {
        assert_eq!(ws.run(&["refresh", "--force"]).await.status.code(), Some(0));
    }
    assert_eq!(count(), 2, "the database stays bounded over many runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_source_limit_lets_no_source_crowd_out_the_others() {
    let ws = Workspace::shipped();
    let mut c = ws.read("config.toml");
    c.push_str("\n[[feed]]\nname = \"fair\"\ntitle = \"Fair\"\nper_source_limit = 1\nformats = [\"json\"]\n");
    ws.write("config.toml", &c);
    assert_eq!(ws.run(&["refresh"]).await.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_str(&ws.read("public/fair.json")).unwrap();
    let sources: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["_feedloom"]["source"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(sources.len(), 6, "{sources:?}");
    let unique: std::collections::HashSet<_> = sources.iter().collect();
    assert_eq!(unique.len(), 6, "one item per source: {sources:?}");
}

/// The shipped workspace after one refresh, and where its publish record is.
async fn published_shipped() -> (Workspace, std::path::PathBuf) {
    let ws = Workspace::shipped();
    assert_eq!(ws.run(&["refresh"]).await.status.code(), Some(0));
    let marker = ws
        .path()
        .join("public")
        .join(feedloom::pipeline::PUBLISHED_MARKER);
    (ws, marker)
}

/// A run that changes nothing reads no items and rewrites nothing; whatever the outputs depend
/// on (the config, a missing output, the items) makes the next run publish again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_is_skipped_only_when_nothing_it_depends_on_changed() {
    let (ws, marker) = published_shipped().await;
    let recorded = std::fs::read_to_string(&marker).expect("a complete publish is recorded");
    let verbose = ws.run(&["-vv", "refresh", "--force"]).await;
    assert!(
        stderr(&verbose).contains("nothing changed since the last publish"),
        "{}",
        stderr(&verbose)
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), recorded);

    // A config change: the feed's new title is published.
    let config = ws.read("config.toml").replace(
        "title = \"Central Asia\"",
        "title = \"Central Asia, renamed\"",
    );
    ws.write("config.toml", &config);
    assert_eq!(ws.run(&["refresh"]).await.status.code(), Some(0));
    assert!(
        ws.read("public/central-asia.atom")
            .contains("Central Asia, renamed")
    );
    assert_ne!(std::fs::read_to_string(&marker).unwrap(), recorded);

    // A missing output is written again.
    std::fs::remove_file(ws.path().join("public/index.html")).unwrap();
    assert_eq!(ws.run(&["refresh"]).await.status.code(), Some(0));
    assert!(ws.path().join("public/index.html").is_file());

    // A changed item is published.
    let feed = ws.read("feeds/tech-atom.xml").replace(
        "<title type=\"text\">Parsing RFC 822",
        "<title type=\"text\">Edited: Parsing RFC 822",
    );
    ws.write("feeds/tech-atom.xml", &feed);
    assert_eq!(ws.run(&["refresh", "--force"]).await.status.code(), Some(0));
    assert!(ws.read("public/all.atom").contains("Edited: "));
}

/// A publish that fails halfway leaves no record of a complete one: going back to the inputs
/// of the last complete publish still publishes (the outputs that were written meanwhile came
/// from other inputs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_is_not_taken_for_the_last_complete_one() {
    let (ws, marker) = published_shipped().await;
    assert!(marker.is_file());
    let original = ws.read("config.toml");
    let renamed = original.replace(
        "title = \"Central Asia\"",
        "title = \"Central Asia, renamed\"",
    );
    assert_ne!(renamed, original);
    ws.write("config.toml", &renamed);
    // sources.opml cannot be written (a folder stands in its way): the publish fails after
    // the feeds were written with the new title.
    let opml = ws.path().join("public/sources.opml");
    let opml_bytes = std::fs::read(&opml).unwrap();
    std::fs::remove_file(&opml).unwrap();
    std::fs::create_dir(&opml).unwrap();
    assert_eq!(ws.run(&["refresh"]).await.status.code(), Some(1));
    assert!(
        ws.read("public/central-asia.atom")
            .contains("Central Asia, renamed")
    );
    assert!(!marker.exists(), "a failed publish is not recorded");
    // Back to the old config, the obstacle gone and every output there: published again,
    // not skipped.
    std::fs::remove_dir(&opml).unwrap();
    std::fs::write(&opml, opml_bytes).unwrap();
    ws.write("config.toml", &original);
    assert_eq!(ws.run(&["refresh"]).await.status.code(), Some(0));
    assert!(!ws.read("public/central-asia.atom").contains("renamed"));
    assert!(marker.is_file());
}

/// An RSS document of stories `(guid, title, body)`, each with a boilerplate line.
fn rss_stories(stories: &[(&str, &str, &str)]) -> String {
    let mut doc = String::from(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Same</title>\
         <link>https://same.example/</link><language>en</language>",
    );
    for (n, (guid, title, body)) in stories.iter().enumerate() {
        doc.push_str(&format!(
            "<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title>\
             <link>https://same.example/{guid}</link>\
             <pubDate>Mon, 02 Jun 2025 1{n}:00:00 GMT</pubDate>\
             <description>&lt;p&gt;{body}&lt;/p&gt;&lt;p&gt;Seven kettles hum in the garden&lt;/p&gt;</description></item>"
        ));
    }
    doc.push_str("</channel></rss>");
    doc
}

/// Serves `body` at /s.xml from now on, always 200 without validators.
async fn serve_doc(server: &MockServer, body: String) {
    server.reset().await;
    Mock::given(path("/s.xml"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(server)
        .await;
}

/// One `refresh --force --report json`: (items, reused, new, updated, unchanged) of its one source.
async fn refresh_counts(ws: &Workspace) -> [u64; 5] {
    let out = ws.run(&["refresh", "--force", "--report", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let s = &report["sources"][0];
    assert_eq!(s["outcome"], "fetched", "{report}");
    ["items", "reused", "new", "updated", "unchanged"].map(|k| s[k].as_u64().unwrap())
}

/// (id, first seen, listed, body) of every stored item, by id.
fn stored(ws: &Workspace) -> Vec<(String, i64, bool, String)> {
    let conn = rusqlite::Connection::open(ws.path().join("feedloom.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, first_seen, listed, data FROM items ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        let data: String = r.get(3)?;
        let item: serde_json::Value = serde_json::from_str(&data).unwrap();
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            item["content_html"].as_str().unwrap_or("").to_string(),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Issue #8: a document sent again with most items as they were normalises only what changed;
/// the others stay stored (listed, first seen when first seen) as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_items_are_not_normalised_again() {
    let server = MockServer::start().await;
    let ws = Workspace::new();
    let c = config(&[("s", format!("{}/s.xml", server.uri()))]);
    ws.write("config.toml", &c);
    let (a, b, c3) = (
        ("a", "Alpha", "Alpha body."),
        ("b", "Beta", "Beta body."),
        ("c", "Gamma", "Gamma body."),
    );
    serve_doc(&server, rss_stories(&[a, b, c3])).await;
    assert_eq!(refresh_counts(&ws).await, [3, 0, 3, 0, 0]);
    let first = stored(&ws);
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|r| r.3.contains("kettles")), "{first:?}");

    // The same document: nothing normalised, nothing changed (outputs left alone).
    let mtimes = ws.output_mtimes();
    assert_eq!(refresh_counts(&ws).await, [3, 3, 0, 0, 3]);
    assert_eq!(stored(&ws), first);
    assert_eq!(ws.output_mtimes(), mtimes, "nothing to publish anew");

    // One story edited, one new, one gone: only the edited and the new one are normalised.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b2 = ("b", "Beta", "Beta body, corrected.");
    let d = ("d", "Delta", "Delta body.");
    serve_doc(&server, rss_stories(&[a, b2, d])).await;
    assert_eq!(refresh_counts(&ws).await, [3, 1, 1, 1, 1]);
    let now = stored(&ws);
    let by_id = |id: &str| now.iter().find(|r| r.0 == id).unwrap().clone();
    assert_eq!(
        by_id("a"),
        first[0],
        "reused: as stored, listed, same first sight"
    );
    assert!(by_id("a").2);
    assert!(by_id("b").3.contains("corrected") && by_id("b").1 == first[1].1);
    assert!(!by_id("c").2, "gone from the document: unlisted");
    assert!(by_id("d").2 && by_id("d").1 > first[0].1);
    let rss = ws.read("public/all.rss");
    assert!(rss.contains("Alpha") && rss.contains("corrected") && rss.contains("Delta"));

    // A new rule for the source: everything is normalised again, under the new rule.
    ws.write(
        "config.toml",
        &config(&[("s", format!("{}/s.xml", server.uri()))]).replace(
            "\n\n[[feed]]",
            "\nstrip_patterns = [\"^Seven kettles hum in the garden$\"]\n\n[[feed]]",
        ),
    );
    assert!(ws.read("config.toml").contains("strip_patterns"));
    assert_eq!(refresh_counts(&ws).await, [3, 0, 0, 3, 0]);
    assert!(
        stored(&ws)
            .iter()
            .filter(|r| r.2)
            .all(|r| !r.3.contains("kettles")),
        "{:?}",
        stored(&ws)
    );
    assert_eq!(refresh_counts(&ws).await, [3, 3, 0, 0, 3]);

    // A reused item deleted from the store behind feedloom's back (as a prune could): the
    // document is normalised in full again and the item comes back.
    let conn = rusqlite::Connection::open(ws.path().join("feedloom.db")).unwrap();
    conn.execute("DELETE FROM items WHERE id = 'a'", [])
        .unwrap();
    drop(conn);
    assert_eq!(refresh_counts(&ws).await, [3, 0, 1, 0, 2]);
    assert!(stored(&ws).iter().any(|r| r.0 == "a" && r.2));
    assert_eq!(refresh_counts(&ws).await, [3, 3, 0, 0, 3]);

    // What the last document left to reuse damaged: every item is normalised again (the
    // same items: nothing changes), and what is left to reuse is whole again after it.
    let conn = rusqlite::Connection::open(ws.path().join("feedloom.db")).unwrap();
    let damaged = conn
        .execute(
            "UPDATE source_reuse SET reuse = '{oops' WHERE name = 's'",
            [],
        )
        .unwrap();
    assert_eq!(damaged, 1);
    drop(conn);
    assert_eq!(refresh_counts(&ws).await, [3, 0, 0, 0, 3]);
    assert_eq!(refresh_counts(&ws).await, [3, 3, 0, 0, 3]);
}
