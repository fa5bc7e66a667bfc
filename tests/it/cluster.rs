//! Near-duplicate clustering: the labelled pairs judged by the real similarity function, and
//! whole `feedloom refresh` runs that merge one wire story from several outlets.

use feedloom::cluster;
use feedloom::model::Item;
use serde::Deserialize;

use crate::support::repo;

#[derive(Deserialize)]
struct Pair {
    id: String,
    same_story: bool,
    lang: String,
    a: Side,
    b: Side,
    note: String,
}

#[derive(Deserialize)]
struct Side {
    title: String,
    body: String,
}

fn item(side: &Side, lang: &str) -> Item {
    let paragraphs: String = side
        .body
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", html_escape::encode_text(p)))
        .collect();
    Item {
        id: "x".into(),
        title: side.title.clone(),
        link: None,
        published: None,
        updated: None,
        authors: vec![],
        summary: None,
        content_html: Some(paragraphs),
        categories: vec![],
        language: Some(lang.into()),
        enclosures: vec![],
        image: None,
    }
}

/// Every labelled pair judged at the default threshold, pair by pair; precision and recall
/// printed (`cargo test --test it cluster -- --nocapture`).
#[test]
fn labelled_pairs_precision_and_recall() {
    let pairs: Vec<Pair> = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/dedupe/pairs.json")).unwrap(),
    )
    .unwrap();
    let threshold = cluster::DEFAULT_THRESHOLD;
    let (mut tp, mut fp, mut fneg, mut tn) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    for p in &pairs {
        let (a, b) = (item(&p.a, &p.lang), item(&p.b, &p.lang));
        let (sa, sb) = (
            cluster::signature(&a).unwrap(),
            cluster::signature(&b).unwrap(),
        );
        let (sim, head) = (sa.similarity(&sb), sa.head_similarity(&sb));
        let said = cluster::same_story(&a, &b, threshold);
        println!(
            "{} {} {:<5} sim={sim:.3} head={head:.3} {}",
            p.id,
            p.lang,
            p.same_story,
            if said == p.same_story { "ok" } else { "WRONG" }
        );
        match (p.same_story, said) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fneg += 1,
            (false, false) => tn += 1,
        }
        if said != p.same_story {
            wrong.push(format!("{} ({}): {}", p.id, p.lang, p.note));
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fneg).max(1) as f64;
    println!(
        "{} pairs at threshold {threshold}: tp={tp} fp={fp} fn={fneg} tn={tn} precision={precision:.3} recall={recall:.3}",
        pairs.len()
    );
    assert!(
        precision >= 0.98 && recall >= 0.90,
        "precision {precision:.3}, recall {recall:.3}; wrong: {wrong:#?}"
    );
}

fn pair(id: &str) -> Pair {
    let pairs: Vec<Pair> = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/dedupe/pairs.json")).unwrap(),
    )
    .unwrap();
    pairs.into_iter().find(|p| p.id == id).unwrap()
}

/// One RSS document: (guid, title, link, body) items dated `minutes_ago`.
fn rss(title: &str, minutes_ago: i64, items: &[(&str, &str, &str, &str)]) -> String {
    let date = (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago)).to_rfc2822();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel><title>{title}</title>\
         <link>https://{}.example/</link><description>d</description><language>en</language>\n",
        title.to_lowercase().replace(' ', "-")
    );
    for (guid, t, link, body) in items {
        let html: String = body
            .split("\n\n")
            .map(|p| format!("<p>{}</p>", html_escape::encode_text(p)))
            .collect();
        s.push_str(&format!(
            "<item><title>{}</title><link>{link}</link><guid isPermaLink=\"false\">{guid}</guid>\
             <pubDate>{date}</pubDate><description>{}</description></item>\n",
            html_escape::encode_text(t),
            html_escape::encode_text(&html)
        ));
    }
    s.push_str("</channel></rss>\n");
    s
}

fn config(sources: &[(&str, i64)]) -> String {
    let mut c = String::from("[settings]\n\n");
    for (name, priority) in sources {
        c.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{name}.xml\"\npriority = {priority}\n\n"
        ));
    }
    c.push_str("[[feed]]\nname = \"all\"\ntitle = \"All\"\n\n");
    c.push_str("[[feed]]\nname = \"raw\"\ntitle = \"Raw\"\ndedupe = \"off\"\n");
    c
}

fn json_items(ws: &crate::support::Workspace, feed: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&ws.read(&format!("public/{feed}.json"))).unwrap();
    v["items"].as_array().unwrap().clone()
}

/// Three outlets carry one wire story with edits, one of them also a different story on the same
/// visit: the merged feed publishes the story once with "Also reported by" and related links,
/// keeps its id when a preferred outlet joins on a later run, never merges the other story, and
/// `dedupe = "off"` keeps every version. Cluster keys are in the store after both runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_story_from_several_outlets_is_one_item_with_a_stable_id() {
    use crate::support::{Workspace, stderr, stdout};
    let wire = pair("p65");
    let other = pair("p05");
    let ws = Workspace::new();
    ws.write(
        "wire.xml",
        &rss(
            "Wire",
            120,
            &[(
                "w-1",
                &wire.a.title,
                "https://wire.example/meloni-astana",
                &wire.a.body,
            )],
        ),
    );
    ws.write(
        "daily.xml",
        &rss(
            "Daily",
            90,
            &[
                (
                    "d-7",
                    &wire.b.title,
                    "https://daily.example/2025/meloni",
                    &wire.b.body,
                ),
                (
                    "d-8",
                    &other.b.title,
                    "https://daily.example/2025/deals",
                    &other.b.body,
                ),
            ],
        ),
    );
    ws.write("config.toml", &config(&[("wire", 0), ("daily", 0)]));
    let first = ws.run(&["refresh"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));

    let items = json_items(&ws, "all");
    assert_eq!(
        items.len(),
        2,
        "the story once, the deals story apart: {items:#?}"
    );
    let story = items
        .iter()
        .find(|i| i["title"] == wire.a.title.as_str())
        .expect("the earliest version is published");
    let id = story["id"].as_str().unwrap().to_string();
    assert_eq!(id, "urn:feedloom:wire:w-1");
    let content = story["content_html"].as_str().unwrap();
    assert!(
        content
            .contains("Also reported by: <a href=\"https://daily.example/2025/meloni\">Daily</a>"),
        "{content}"
    );
    assert_eq!(
        story["_feedloom"]["related"],
        serde_json::json!([{"url": "https://daily.example/2025/meloni", "source": "daily", "title": "Daily"}])
    );
    assert!(
        items.iter().any(|i| i["title"] == other.b.title.as_str()),
        "a different story on the same visit is not merged"
    );
    let atom = ws.read("public/all.atom");
    assert!(
        atom.contains(
            "<link rel=\"related\" href=\"https://daily.example/2025/meloni\" type=\"text/html\" title=\"Daily\"/>"
        ),
        "{atom}"
    );
    let rss_out = ws.read("public/all.rss");
    assert_eq!(rss_out.matches("<item>").count(), 2);
    assert!(rss_out.contains("Also reported by"));
    assert!(ws.read("public/index.html").contains("Also reported by"));
    assert_eq!(
        json_items(&ws, "raw").len(),
        3,
        "dedupe = \"off\" keeps all"
    );

    let explain = ws.run(&["explain", "--feed", "all"]).await;
    assert!(
        stdout(&explain).contains("merged: same story as wire/w-1"),
        "{}",
        stdout(&explain)
    );

    // A preferred outlet joins on the next run: its version is published, under the same id.
    let mut joined = wire.a.body.clone();
    joined.truncate(joined.rfind("\n\n").unwrap());
    ws.write(
        "agency.xml",
        &rss(
            "Agency",
            60,
            &[(
                "https://agency.example/a/1",
                "Meloni in Astana for the summit",
                "https://agency.example/a/1",
                &format!("ASTANA (Agency) — {joined}"),
            )],
        ),
    );
    ws.write(
        "config.toml",
        &config(&[("wire", 0), ("daily", 0), ("agency", 5)]),
    );
    let second = ws.run(&["refresh", "--force"]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let items = json_items(&ws, "all");
    assert_eq!(items.len(), 2, "{items:#?}");
    let story = items
        .iter()
        .find(|i| i["id"] == id.as_str())
        .expect("same id");
    assert_eq!(story["title"], "Meloni in Astana for the summit");
    let related: Vec<&str> = story["_feedloom"]["related"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert_eq!(related.len(), 2);
    assert!(related.contains(&"wire") && related.contains(&"daily"));
    assert_eq!(json_items(&ws, "raw").len(), 4);

    // The clusters are in the store: every version of the story under the wire's key.
    let db = rusqlite::Connection::open(ws.path().join("feedloom.db")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT i.source, i.id, k.cluster FROM items AS i
             LEFT JOIN cluster_keys AS k USING (source, id) ORDER BY i.source, i.id",
        )
        .unwrap();
    let rows: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = |s: &str, i: &str| {
        rows.iter()
            .find(|r| r.0 == s && r.1 == i)
            .and_then(|r| r.2.clone())
    };
    assert_eq!(key("wire", "w-1").as_deref(), Some(id.as_str()));
    assert_eq!(key("daily", "d-7").as_deref(), Some(id.as_str()));
    assert_eq!(
        key("agency", "https://agency.example/a/1").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        key("daily", "d-8").as_deref(),
        Some("urn:feedloom:daily:d-8")
    );

    if let Some(script) = crate::conformance::validator() {
        for name in ["all.atom", "all.rss", "all.json"] {
            let res = tokio::process::Command::new("bash")
                .arg(&script)
                .arg(ws.path().join("public").join(name))
                .output()
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&res.stdout).into_owned();
            assert!(
                res.status.success() && !text.lines().any(|l| l.starts_with("FAIL")),
                "{name}: {text}"
            );
        }
    }
}

/// Feeds with different `max_age` and tags over overlapping sources each publish exactly their
/// own candidates (publishing reads every feed's heads in one read and filters them per feed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_take_their_own_sources_and_ages_from_one_read() {
    use crate::support::{Workspace, stderr};
    let ws = Workspace::new();
    let story = |n: &str| {
        (
            format!("{n}-1"),
            format!("Story {n}"),
            format!("https://{n}.example/1"),
            format!("Body of story {n}, about nothing else than {n} itself."),
        )
    };
    for (name, minutes_ago) in [("a", 3 * 24 * 60), ("b", 10), ("c", 10)] {
        let (g, t, l, b) = story(name);
        ws.write(
            &format!("{name}.xml"),
            &rss(name, minutes_ago, &[(&g, &t, &l, &b)]),
        );
    }
    ws.write(
        "config.toml",
        "[settings]\n\n\
         [[source]]\nname = \"a\"\nurl = \"a.xml\"\ntags = [\"x\"]\n\n\
         [[source]]\nname = \"b\"\nurl = \"b.xml\"\ntags = [\"x\"]\n\n\
         [[source]]\nname = \"c\"\nurl = \"c.xml\"\n\n\
         [[feed]]\nname = \"recent\"\ntitle = \"Recent\"\nmax_age = \"1d\"\n\n\
         [[feed]]\nname = \"tagged\"\ntitle = \"Tagged\"\ntags = [\"x\"]\n\n\
         [[feed]]\nname = \"tagged-recent\"\ntitle = \"Tagged, recent\"\ntags = [\"x\"]\nmax_age = \"2h\"\n",
    );
    let run = ws.run(&["refresh"]).await;
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let titles = |feed: &str| {
        let mut t: Vec<String> = json_items(&ws, feed)
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    assert_eq!(titles("recent"), ["Story b", "Story c"]);
    assert_eq!(titles("tagged"), ["Story a", "Story b"]);
    assert_eq!(titles("tagged-recent"), ["Story b"]);
}

/// A feed of a few items over many candidates whose newest ones are all duplicates of older
/// items: publishing decides on a window of the newest candidates and what shares a key with
/// them, and must widen it (the first window keeps nothing) and find each duplicate's older
/// version however far back, as deciding on every candidate does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_feed_over_many_duplicates_is_decided_as_over_all() {
    use crate::support::{Workspace, stderr};
    let ws = Workspace::new();
    let now = chrono::Utc::now();
    // A story's own words (of its link): stories share no shingle, versions all of them.
    let words = |link: &str| -> String {
        let n: u32 = link.rsplit('/').next().unwrap().parse().unwrap();
        let letters = |mut k: u32| {
            let mut w = String::new();
            for _ in 0..3 {
                w.push(char::from(b'a' + (k % 26) as u8));
                k /= 26;
            }
            w
        };
        (0..12)
            .map(|j| format!("{}{}", letters(n), letters(j * 7 + 1)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // (guid, title, link, minutes ago)
    let doc = |name: &str, items: &[(String, String, String, i64)]| {
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel>\
             <title>{name}</title><link>https://{name}.example/</link><description>d</description>\n"
        );
        for (guid, title, link, ago) in items {
            s.push_str(&format!(
                "<item><title>{title}</title><link>{link}</link>\
                 <guid isPermaLink=\"false\">{guid}</guid><pubDate>{}</pubDate>\
                 <description>{}</description></item>\n",
                (now - chrono::Duration::minutes(*ago)).to_rfc2822(),
                words(link)
            ));
        }
        s.push_str("</channel></rss>\n");
        s
    };
    // Source a: 100 stories, the newest 90 of them told earlier by b (and so kept from b).
    let a: Vec<_> = (1..=100)
        .map(|i| {
            (
                format!("a-{i}"),
                format!("Story {i}"),
                format!("https://x.example/{i}"),
                i,
            )
        })
        .collect();
    let b: Vec<_> = (1..=90)
        .map(|i| {
            (
                format!("b-{i}"),
                format!("Story {i}"),
                format!("https://x.example/{i}"),
                1000 + i,
            )
        })
        .collect();
    ws.write("a.xml", &doc("a", &a));
    ws.write("b.xml", &doc("b", &b));
    ws.write(
        "config.toml",
        "[settings]\n\n\
         [[source]]\nname = \"a\"\nurl = \"a.xml\"\n\n\
         [[source]]\nname = \"b\"\nurl = \"b.xml\"\n\n\
         [[feed]]\nname = \"exact\"\ntitle = \"Exact\"\nlimit = 3\ndedupe = \"exact\"\ninclude = [\"story\"]\nexclude = [\"92\"]\n\n\
         [[feed]]\nname = \"similar\"\ntitle = \"Similar\"\nlimit = 3\n\n\
         [[feed]]\nname = \"b-first\"\ntitle = \"B first\"\nlimit = 3\nper_source_limit = 1\n",
    );
    let run = ws.run(&["refresh"]).await;
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let ids = |feed: &str| -> Vec<String> {
        json_items(&ws, feed)
            .iter()
            .map(|i| i["url"].as_str().unwrap().to_string())
            .collect()
    };
    let links =
        |n: &[u32]| -> Vec<String> { n.iter().map(|i| format!("https://x.example/{i}")).collect() };
    assert_eq!(ids("exact"), links(&[91, 93, 94]));
    assert_eq!(ids("similar"), links(&[91, 92, 93]));
    // One a story (the newest not told by b), then b's newest: b's versions of 1..90 stay.
    assert_eq!(ids("b-first"), links(&[91, 1]));
}
