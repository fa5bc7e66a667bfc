//! Planet-style publishing: the HTML index, OPML out and in, `explain`.

use crate::support::{Workspace, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_page_and_opml_are_published() {
    let ws = Workspace::shipped();
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = ws.read("public/index.html");
    for feed in ["all", "central-asia", "turkmenistan"] {
        for ext in ["rss", "atom", "json"] {
            let href = format!("href=\"http://127.0.0.1:8080/{feed}.{ext}\"");
            assert!(html.contains(&href), "subscribe link {href}");
        }
    }
    assert_eq!(
        html.matches("<link rel=\"alternate\"").count(),
        9,
        "autodiscovery"
    );
    assert!(html.contains("Визит лидера Туркменистана в Астану"));
    assert!(!html.contains("<script"), "nothing from a source runs");
    let opml = ws.read("public/sources.opml");
    assert!(opml.starts_with("<?xml") && opml.contains("<opml version=\"2.0\">"));
    assert_eq!(opml.matches("<outline ").count(), 6);
    assert!(opml.contains("xmlUrl=\"https://globaldispatch.example.com/rss/world.xml\""));
    let export = ws.run(&["sources", "export"]).await;
    assert_eq!(export.status.code(), Some(0), "{}", stderr(&export));
    assert_eq!(stdout(&export), opml, "export prints what is published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opml_import_adds_sources_and_keeps_comments() {
    let ws = Workspace::shipped();
    let opml = ws.write(
        "subs.opml",
        r#"<?xml version="1.0" encoding="utf-8"?>
<opml version="2.0"><head><title>subs</title></head><body>
  <outline text="Kazakhstan">
    <outline text="Tengri News" type="rss" xmlUrl="https://tengri.example.kz/rss" htmlUrl="https://tengri.example.kz/"/>
    <outline text="Tengri News" type="rss" xmlUrl="https://tengri.example.kz/rss/sport"/>
  </outline>
  <outline text="Global Dispatch" type="rss" xmlUrl="https://globaldispatch.example.com/rss/world.xml" category="en"/>
  <outline text="gopher" type="rss" xmlUrl="gopher://old.example/feed"/>
</body></opml>"#,
    );
    let before = ws.read("config.toml");
    let out = ws.run(&["sources", "import", opml.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("added 3 source(s) (tengri-news, tengri-news-2, global-dispatch)"),
        "{}",
        stdout(&out)
    );
    let after = ws.read("config.toml");
    assert!(
        after.starts_with(&before[..before.find("[[source]]").unwrap()]),
        "the head of the file is untouched"
    );
    assert!(
        after.contains("# every key is listed")
            || after.contains("# feedloom's shipped configuration"),
        "comments kept"
    );
    assert!(after.contains("name = \"tengri-news-2\""));
    assert!(after.contains("tags = [\"Kazakhstan\"]"));
    let check = ws.run(&["check"]).await;
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    // Importing again adds nothing.
    let again = ws.run(&["sources", "import", opml.to_str().unwrap()]).await;
    assert!(
        stdout(&again).contains("added 0 source(s)"),
        "{}",
        stdout(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_rule_for_each_item() {
    let ws = Workspace::shipped();
    assert_eq!(ws.run(&["refresh"]).await.status.code(), Some(0));
    let out = ws.run(&["explain", "--feed", "turkmenistan"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let kept = text.lines().filter(|l| l.contains("  kept  ")).count();
    let dropped = text
        .lines()
        .filter(|l| l.contains("dropped: matches no include pattern"))
        .count();
    assert!(kept >= 4 && dropped >= 4, "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("kept") && l.contains("поставки в Туркменистан")),
        "{text}"
    );
    let bad = ws.run(&["explain", "--feed", "nope"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("no [[feed]] named \"nope\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_beyond_limit_go_to_monthly_rfc5005_archives() {
    let ws = Workspace::shipped();
    let mut config = ws.read("config.toml");
    config.push_str(
        "\n[[feed]]\nname = \"small\"\ntitle = \"Small\"\nlimit = 3\narchive_pages = 2\nformats = [\"atom\", \"rss\"]\n",
    );
    ws.write("config.toml", &config);
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names: Vec<String> = ws.outputs().into_iter().map(|(n, _)| n).collect();
    // 16 items: 3 in the feed (June 2025); the rest by month, the two newest months kept.
    assert!(
        names.contains(&"small-archive-2025-06.atom".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"small-archive-2025-05.atom".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"small-archive-2025-04.atom".to_string()),
        "{names:?}"
    );
    let main = ws.read("public/small.atom");
    assert_eq!(main.matches("<entry").count(), 3);
    assert!(main.contains(
        "<link rel=\"prev-archive\" href=\"http://127.0.0.1:8080/small-archive-2025-06.atom\""
    ));
    let rss = ws.read("public/small.rss");
    assert!(rss.contains("rel=\"prev-archive\""), "{rss}");
    let june = ws.read("public/small-archive-2025-06.atom");
    assert!(june.contains("<fh:archive/>"));
    assert!(june.contains("<link rel=\"current\" href=\"http://127.0.0.1:8080/small.atom\""));
    assert!(june.contains(
        "<link rel=\"prev-archive\" href=\"http://127.0.0.1:8080/small-archive-2025-05.atom\""
    ));
    let may = ws.read("public/small-archive-2025-05.atom");
    assert!(may.contains("rel=\"next-archive\""));
    assert!(
        !may.contains("rel=\"prev-archive\""),
        "the oldest kept page links no older one"
    );
    assert!(may.contains("Визит лидера Туркменистана"));
    // Every archived item appears once, in the page of its month.
    let entries = june.matches("<entry").count() + may.matches("<entry").count();
    assert!(entries >= 10, "{entries}");
    if let Some(script) = crate::conformance::validator() {
        for page in ["small-archive-2025-06.atom", "small-archive-2025-05.atom"] {
            let res = std::process::Command::new("bash")
                .arg(&script)
                .arg("--no-newsboat")
                .arg(ws.path().join("public").join(page))
                .output()
                .unwrap();
            assert!(
                res.status.success(),
                "{}",
                String::from_utf8_lossy(&res.stdout)
            );
        }
    }
}

/// A store error while a later feed is selected (here an item stored unreadable) fails the run
/// with one clear line naming the store. The outputs of the feeds rendered before it are written
/// whole, those of the failing feed keep their last good bytes, no temporary file is left, and
/// no publish record says the outputs are complete, so the next run publishes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_in_a_later_feed_keeps_what_was_written_and_records_nothing() {
    let ws = Workspace::shipped();
    let shipped = ws.read("config.toml");
    let head = &shipped[..shipped
        .find("[[feed]]")
        .expect("the shipped config has feeds")];
    let feeds = |english: &str| {
        format!(
            "{head}[[feed]]\nname = \"english\"\ntitle = \"{english}\"\ntags = [\"en\"]\n\
             dedupe = \"exact\"\n\n[[feed]]\nname = \"asia\"\ntitle = \"Asia\"\n\
             tags = [\"central-asia\"]\ndedupe = \"exact\"\n"
        )
    };
    ws.write("config.toml", &feeds("English"));
    let first = ws.run(&["refresh"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let marker = ws
        .path()
        .join("public")
        .join(feedloom::pipeline::PUBLISHED_MARKER);
    assert!(marker.is_file());
    let asia = || -> Vec<String> {
        ["rss", "atom", "json"]
            .iter()
            .map(|ext| ws.read(&format!("public/asia.{ext}")))
            .collect()
    };
    let asia_before = asia();

    // One of the Asian feed's items can no longer be read, and the English feed's title changes
    // (so the outputs must be published again).
    let db = rusqlite::Connection::open(ws.path().join("feedloom.db")).unwrap();
    let spoiled = db
        .execute(
            "UPDATE items SET data = '{not json' WHERE rowid =
                 (SELECT rowid FROM items WHERE source = 'kz-koi8' LIMIT 1)",
            [],
        )
        .unwrap();
    assert_eq!(spoiled, 1);
    drop(db);
    ws.write("config.toml", &feeds("English, renamed"));
    let failed = ws.run(&["refresh"]).await;
    let err = stderr(&failed);
    assert_eq!(failed.status.code(), Some(2), "{err}");
    assert!(
        err.contains("feedloom.db") && err.contains("unreadable"),
        "{err}"
    );
    assert_eq!(
        err.matches("key must be a string").count(),
        1,
        "the cause is said once: {err}"
    );
    for ext in ["rss", "atom", "json"] {
        let english = ws.read(&format!("public/english.{ext}"));
        assert!(
            english.contains("English, renamed"),
            "english.{ext} written"
        );
    }
    assert_eq!(
        asia(),
        asia_before,
        "the failing feed's outputs are untouched"
    );
    assert!(!marker.exists(), "no record of a complete publish");
    let leftovers = ws.temp_files();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
