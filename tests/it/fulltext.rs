//! Full text (issue #10): article pages in, normalised stories out.
//!
//! Fixture pages (`tests/fixtures/fulltext/*.html`) are built like real ones: navigation, share
//! blocks, related links, comments, footers, a photo with its credit. Each has a golden
//! `<page>.expected.txt` (the item after extraction and normalisation, one block per line, to
//! read by eye); `FEEDLOOM_BLESS=1` rewrites them. Besides the goldens, every page has a list
//! of passages that must survive and junk that must not.
//!
//! The refresh tests run the real binary against a local server: a teaser feed in, the full
//! story out; failing pages keep the teaser; a second run does not fetch a page again.

use std::path::Path;
use std::time::{Duration, Instant};

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use feedloom::config::{Config, Source};
use feedloom::fulltext::{ExtractRules, Extracted};
use feedloom::model::Item;
use feedloom::pipeline::pages;

use crate::support::{Workspace, detector, repo, stderr, stdout};

const SUMMIT_TITLE: &str =
    "Визит лидера Туркменистана в Астану: эксперты обсуждают перспективы сотрудничества";
const SUMMIT_URL: &str =
    "https://ca-news.example.kz/news/politics/2025/05/30/vizit-lidera-turkmenistana-v-astanu/";
const SUMMIT_TEASER: &str = "Общественность и эксперты положительно оценивают визит Сердара \
                             Бердымухамедова в Астану для участия в саммите…";

struct Case {
    name: &'static str,
    url: &'static str,
    title: &'static str,
    teaser: &'static str,
    /// Extra `[[source]]` keys.
    keys: &'static str,
    /// Passages the story must keep (plain text).
    keep: &'static [&'static str],
    /// Text of the page that is not the story.
    junk: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "summit-page",
            url: SUMMIT_URL,
            title: SUMMIT_TITLE,
            teaser: SUMMIT_TEASER,
            keys: "",
            keep: &[
                "Общественность и эксперты положительно оценивают визит",
                "Это значительный шаг к достижению товарооборота",
                "Визит Сердара Бердымухамедова в Астану: контекст и перспективы",
                "который состоится 30 мая",
                "Экономическое сотрудничество: текущее состояние и цели",
                "превысил 550 миллионов долларов",
                "Основные направления сотрудничества включают:",
                "Транспорт и логистика",
                "Нефтегазовая отрасль",
                "Саммит \"Центральная Азия – Италия\": значение и участники",
                "Формат \"ЦА плюс\" представляет собой",
                "переговоры с президентом Казахстана Касым-Жомартом Токаевым",
                "Фото: пресс-служба правительства Казахстана",
            ],
            junk: &[
                "Поделиться",
                "ВКонтакте",
                "Telegram",
                "Одноклассники",
                "Читайте также",
                "Мелони прибыла в Астану с официальным визитом",
                "Новости по теме",
                "Токаев встретился",
                "Комментарии",
                "давно пора",
                "Ваш комментарий",
                "Самое читаемое",
                "Все права защищены",
                "Реклама",
                "Подписывайтесь",
                "Просмотров",
                "USD 511",
                "Главная",
            ],
        },
        Case {
            name: "english-news",
            url: "https://steppeherald.example.com/world/2025/jun/02/caspian-ferry-link-freight",
            title: "Caspian ferry link to double freight capacity by 2027, ministers say",
            teaser: "Kazakhstan and Azerbaijan agree to build four new vessels and a second berth \
                     at Aktau",
            keys: "",
            keep: &[
                "will double the freight capacity of the ferry link",
                "lorries currently wait up to nine days to board",
                "Why the middle corridor matters",
                "route's coordinating body",
                "The bottleneck is not the railways any more",
                "cut the average wait at Aktau to two days",
                "publish a single electronic customs declaration",
                "Questions over cost",
                "which is listed as endangered",
                "Photograph: Marat Zhunusov/Reuters",
            ],
            junk: &[
                "Skip to main content",
                "Contribute from",
                "Share on Facebook",
                "Share via Email",
                "Advertisement",
                "Georgia revives plans",
                "Explore more on these topics",
                "Sign up to our Central Asia briefing",
                "More on this story",
                "Meloni courts Central Asian leaders",
                "Comments (41)",
                "Four ships is nothing",
                "Cookie policy",
                "All rights reserved",
            ],
        },
        Case {
            name: "blog-post",
            url: "https://fieldnotes.example.net/2025/05/slow-train-turkestan/",
            title: "Notes from a slow train to Turkestan",
            teaser: "The night train from Almaty to Turkestan takes nineteen hours.",
            keys: "content_selector = \".entry-content\"\n\
                   remove_selectors = [\".newsletter-cta\", \".sharedaddy\"]\n",
            keep: &[
                "takes nineteen hours and costs less than a lunch",
                "a samovar-shaped kettle",
                "women selling kurt",
                "its turquoise dome above the flat roofs",
                "Turkestan station at dawn. Photo: Hannah Lind",
            ],
            junk: &[
                "A travel blog, mostly about trains",
                "Posted on 14 May 2025",
                "Enjoying these notes?",
                "Share this:",
                "Almaty's markets",
                "12 thoughts on",
                "Which class of ticket",
                "Recent posts",
                "Proudly powered",
            ],
        },
    ]
}

/// The `[[source]]` of a case, as the config would give it.
fn source(keys: &str) -> Source {
    let text = format!(
        "[[source]]\nname = \"s\"\nurl = \"https://example.org/feed.xml\"\nfulltext = true\n{keys}\n\
         [[feed]]\nname = \"all\"\ntitle = \"All\"\n"
    );
    Config::parse(&text, Path::new("config.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .sources
        .remove(0)
}

fn now() -> chrono::DateTime<chrono::Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

/// The feed's teaser item for a case, read from a one-item RSS feed.
fn teaser(title: &str, link: &str, summary: &str) -> Item {
    let esc = |s: &str| html_escape::encode_text(s).into_owned();
    let rss = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel><title>t</title>\
         <link>https://example.org/</link><item><title>{}</title><link>{}</link><guid>g1</guid>\
         <pubDate>Fri, 30 May 2025 05:15:00 GMT</pubDate><description>{}</description></item>\
         </channel></rss>",
        esc(title),
        esc(link),
        esc(summary)
    );
    feedloom::pipeline::parse_document(rss.as_bytes(), None, None, None, &detector(), now())
        .unwrap()
        .items
        .remove(0)
}

/// The item as a golden: how it was extracted, its fields, then its body one block per line.
fn render(item: &Item, how: &Extracted) -> String {
    format!(
        "extracted by: {:?}{}\ntitle: {}\nlink: {}\nimage: {}\nsummary: {}\n\n{}\n",
        how.method,
        if how.figure_restored {
            " (lead figure restored)"
        } else {
            ""
        },
        item.title,
        item.link.as_deref().unwrap_or("-"),
        item.image.as_deref().unwrap_or("-"),
        item.summary.as_deref().unwrap_or("-"),
        item.content_html.as_deref().unwrap_or("")
    )
}

fn text_of(html: &str) -> String {
    feedloom::normalize::html::collapse(&feedloom::normalize::html::text_of(html))
}

fn story(case: &Case) -> (Item, Duration, Extracted) {
    let bytes =
        std::fs::read(repo().join(format!("tests/fixtures/fulltext/{}.html", case.name))).unwrap();
    let src = source(case.keys);
    let url = url::Url::parse(case.url).unwrap();
    let rules = ExtractRules {
        content_selector: src.content_selector.as_ref(),
        remove_selectors: &src.remove_selectors,
    };
    let started = Instant::now();
    let extracted = pages::extract_story(&bytes, Some("text/html"), &url, &rules)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let took = started.elapsed();
    let html = extracted.html.clone();
    let teaser = teaser(case.title, case.url, case.teaser);
    let item = pages::story_item(&html, &url, &teaser, &src, &detector(), now())
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    assert_eq!(item.id, teaser.id, "the teaser's id stays");
    (item, took, extracted)
}

#[test]
fn golden_pages() {
    let mut failures = Vec::new();
    for case in cases() {
        let (item, took, how) = story(&case);
        eprintln!("{}: extracted in {took:?} (debug build)", case.name);
        let got = render(&item, &how);
        let expected = repo().join(format!(
            "tests/fixtures/fulltext/{}.expected.txt",
            case.name
        ));
        if std::env::var_os("FEEDLOOM_BLESS").is_some() {
            std::fs::write(&expected, &got).unwrap();
        } else if std::fs::read_to_string(&expected).ok().as_deref() != Some(got.as_str()) {
            failures.push(format!("{}:\n{got}", expected.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "differs from the golden (FEEDLOOM_BLESS=1 to accept):\n{}",
        failures.join("\n")
    );
}

#[test]
fn pages_keep_the_story_and_drop_the_rest() {
    for case in cases() {
        let (item, _, _) = story(&case);
        let html = item.content_html.clone().unwrap_or_default();
        let text = text_of(&html);
        for k in case.keep {
            assert!(text.contains(k), "{}: lost {k:?}:\n{html}", case.name);
        }
        for j in case.junk {
            assert!(!text.contains(j), "{}: kept junk {j:?}:\n{html}", case.name);
        }
        assert!(
            !text.starts_with(case.title),
            "{}: the title is not repeated",
            case.name
        );
        assert!(
            html.contains("<figure><img") && html.contains("<figcaption>"),
            "{}: the photo with its caption:\n{html}",
            case.name
        );
        for link in ["href=\"", "src=\""] {
            for (n, _) in html.match_indices(link) {
                let rest = &html[n + link.len()..];
                assert!(
                    rest.starts_with("https://"),
                    "{}: relative URL {}",
                    case.name,
                    &rest[..rest.len().min(60)]
                );
            }
        }
    }
}

#[test]
fn summit_page_has_the_structure_of_the_story() {
    let (item, _, _) = story(&cases().remove(0));
    let html = item.content_html.unwrap();
    assert_eq!(html.matches("<h2>").count(), 3, "{html}");
    assert_eq!(html.matches("<li>").count(), 4, "{html}");
    assert!(
        html.contains(
            "<figcaption>Фото: пресс-служба правительства Казахстана</figcaption></figure>"
        ),
        "{html}"
    );
    assert!(html.contains("https://ca-news.example.kz/upload/photo.jpg"));
    assert!(
        html.contains("href=\"https://ca-news.example.kz/news/economy/2025/04/12/tovarooborot/\"")
    );
    assert_eq!(
        item.image.as_deref(),
        Some("https://ca-news.example.kz/upload/photo.jpg")
    );
}

#[test]
fn a_selector_that_matches_nothing_is_an_error() {
    let src = source("content_selector = \"#no-such-thing\"\n");
    let rules = ExtractRules {
        content_selector: src.content_selector.as_ref(),
        remove_selectors: &src.remove_selectors,
    };
    let page = std::fs::read(repo().join("tests/fixtures/fulltext/blog-post.html")).unwrap();
    let url = url::Url::parse("https://fieldnotes.example.net/x").unwrap();
    let err = pages::extract_story(&page, None, &url, &rules).unwrap_err();
    assert_eq!(
        err.to_string(),
        "content_selector matched nothing on the page"
    );
}

#[test]
fn a_page_shorter_than_the_teaser_is_refused() {
    let teaser = teaser(
        "Short",
        "https://example.org/a",
        &"A teaser that is longer than the page's whole story. ".repeat(5),
    );
    let url = url::Url::parse("https://example.org/a").unwrap();
    let err = pages::story_item(
        "<p>Only this.</p>",
        &url,
        &teaser,
        &source(""),
        &detector(),
        now(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the page's story is shorter than the feed's teaser"
    );
}

// ---------------------------------------------------------------------------------------------
// Whole refreshes against a local server.

fn teaser_feed(base: &str, items: &[(&str, &str, &str)]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel>\
         <title>CA-News</title><link>https://ca-news.example.kz/</link><description>d</description>\
         <language>ru</language>",
    );
    for (n, (guid, title, page)) in items.iter().enumerate() {
        s.push_str(&format!(
            "<item><title>{title}</title><link>{base}{page}</link><guid isPermaLink=\"false\">{guid}</guid>\
             <pubDate>Fri, 30 May 2025 0{n}:15:00 GMT</pubDate>\
             <description>{SUMMIT_TEASER}</description></item>"
        ));
    }
    s.push_str("</channel></rss>");
    s
}

fn config(feed_url: &str, settings: &str) -> String {
    format!(
        "[settings]\nallow_private_networks = true\nfetch_timeout = \"2s\"\n{settings}\n\
         [[source]]\nname = \"ca\"\nurl = \"{feed_url}\"\nfulltext = true\n\n\
         [[feed]]\nname = \"all\"\ntitle = \"All\"\nformats = [\"json\"]\n"
    )
}

fn hits(reqs: &[Request], p: &str) -> Vec<Request> {
    reqs.iter().filter(|r| r.url.path() == p).cloned().collect()
}

/// The published JSON Feed's item with this id.
fn published(ws: &Workspace, id_suffix: &str) -> serde_json::Value {
    let feed: serde_json::Value = serde_json::from_str(&ws.read("public/all.json")).unwrap();
    feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"].as_str().unwrap_or_default().ends_with(id_suffix))
        .cloned()
        .unwrap_or_else(|| panic!("no item {id_suffix} in {feed}"))
}

async fn page_server() -> MockServer {
    let server = MockServer::start().await;
    let summit = std::fs::read(repo().join("tests/fixtures/fulltext/summit-page.html")).unwrap();
    Mock::given(method("GET"))
        .and(path("/news/summit.html"))
        .and(header("if-none-match", "\"p1\""))
        .respond_with(ResponseTemplate::new(304).insert_header("etag", "\"p1\""))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/news/summit.html"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .insert_header("etag", "\"p1\"")
                .set_body_bytes(summit),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/news/missing.html"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/news/slow.html"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("<html><body><p>too late</p></body></html>")
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    server
}

async fn mount_feed(server: &MockServer, body: String) {
    Mock::given(method("GET"))
        .and(path("/feed.xml"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/rss+xml")
                .set_body_string(body),
        )
        .mount(server)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teaser_feed_in_full_story_out_and_failures_keep_the_teaser() {
    let server = page_server().await;
    let base = server.uri();
    mount_feed(
        &server,
        teaser_feed(
            &base,
            &[
                ("summit", SUMMIT_TITLE, "/news/summit.html"),
                ("missing", "Страница, которой нет", "/news/missing.html"),
                ("slow", "Страница, которая не успела", "/news/slow.html"),
            ],
        ),
    )
    .await;
    let ws = Workspace::new();
    ws.write("config.toml", &config(&format!("{base}/feed.xml"), ""));

    let first = ws.run(&["refresh", "-v"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let log = stderr(&first);
    assert!(
        log.contains(&format!("{base}/news/missing.html")) && log.contains("HTTP status 404"),
        "the failure is logged with its URL and why: {log}"
    );
    assert!(
        log.contains(&format!("{base}/news/slow.html")) && log.contains("no answer within 2 s"),
        "{log}"
    );
    assert!(log.contains("ca"), "the source is named: {log}");

    let summit = published(&ws, "summit");
    let html = summit["content_html"].as_str().unwrap();
    assert_eq!(html.matches("<h2>").count(), 3, "{html}");
    assert!(html.contains("<li>Нефтегазовая отрасль</li>"), "{html}");
    assert!(
        html.contains("<figcaption>Фото: пресс-служба правительства Казахстана</figcaption>"),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "href=\"{base}/news/economy/2025/04/12/tovarooborot/\""
        )),
        "links absolute against the page: {html}"
    );
    assert!(
        !html.contains("Поделиться") && !html.contains("Комментарии"),
        "{html}"
    );
    assert!(
        !html.contains(SUMMIT_TITLE),
        "the repeated title is gone: {html}"
    );
    for teaser in ["missing", "slow"] {
        let it = published(&ws, teaser);
        let h = it["content_html"].as_str().unwrap();
        assert!(
            h.contains("Общественность и эксперты") && !h.contains("<h2>"),
            "{teaser} keeps the teaser: {h}"
        );
    }

    // A second run: the stored story is neither fetched again nor replaced by the teaser; the
    // failed pages are tried once more.
    let second = ws
        .run(&["refresh", "-v", "--force", "--report", "json"])
        .await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let report: serde_json::Value = serde_json::from_str(&stdout(&second)).unwrap();
    assert_eq!(
        report["sources"][0]["reused"], 0,
        "full text replaces bodies after normalising: nothing is reused (issue #8): {report}"
    );
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(hits(&reqs, "/news/summit.html").len(), 1, "fetched once");
    assert_eq!(hits(&reqs, "/news/missing.html").len(), 2, "tried again");
    assert_eq!(
        published(&ws, "summit")["content_html"].as_str().unwrap(),
        html
    );
    // The third failure is the last try.
    ws.run(&["refresh", "-v", "--force"]).await;
    ws.run(&["refresh", "-v", "--force"]).await;
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        hits(&reqs, "/news/missing.html").len(),
        3,
        "at most three tries"
    );
    assert_eq!(hits(&reqs, "/news/summit.html").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_teaser_refetches_the_page_conditionally() {
    let server = page_server().await;
    let base = server.uri();
    let ws = Workspace::new();
    ws.write("config.toml", &config(&format!("{base}/feed.xml"), ""));
    mount_feed(
        &server,
        teaser_feed(&base, &[("summit", SUMMIT_TITLE, "/news/summit.html")]),
    )
    .await;
    let first = ws.run(&["refresh", "-v"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let story = published(&ws, "summit")["content_html"].clone();

    // The publisher edits the teaser; the page answers 304 to the validators of the first fetch.
    server.reset().await;
    let summit = std::fs::read(repo().join("tests/fixtures/fulltext/summit-page.html")).unwrap();
    Mock::given(method("GET"))
        .and(path("/news/summit.html"))
        .and(header("if-none-match", "\"p1\""))
        .respond_with(ResponseTemplate::new(304).insert_header("etag", "\"p1\""))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/news/summit.html"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(summit))
        .with_priority(2)
        .mount(&server)
        .await;
    let edited = format!("{SUMMIT_TITLE} (обновлено)");
    mount_feed(
        &server,
        teaser_feed(&base, &[("summit", &edited, "/news/summit.html")]),
    )
    .await;
    let second = ws.run(&["refresh", "-v", "--force"]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let reqs = hits(
        &server.received_requests().await.unwrap(),
        "/news/summit.html",
    );
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].headers.get("if-none-match").unwrap(), "\"p1\"");
    let item = published(&ws, "summit");
    assert_eq!(item["title"], edited.as_str(), "the teaser's new title");
    assert_eq!(item["content_html"], story, "the stored story (304)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_per_run_are_capped() {
    let server = page_server().await;
    let base = server.uri();
    mount_feed(
        &server,
        teaser_feed(
            &base,
            &[
                ("a", "Первая", "/news/summit.html?a"),
                ("b", "Вторая", "/news/summit.html?b"),
                ("c", "Третья", "/news/summit.html?c"),
            ],
        ),
    )
    .await;
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &config(&format!("{base}/feed.xml"), "fulltext_pages_per_run = 2\n"),
    );
    let first = ws.run(&["refresh", "-v"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        hits(&reqs, "/news/summit.html").len(),
        2,
        "two pages, not three"
    );
    let second = ws.run(&["refresh", "-v", "--force"]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        hits(&reqs, "/news/summit.html").len(),
        3,
        "the third on the next run"
    );
    for id in ["a", "b", "c"] {
        let h = published(&ws, id)["content_html"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(h.matches("<h2>").count(), 3, "{id}: {h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn article_links_to_private_addresses_are_not_fetched() {
    let ws = Workspace::new();
    ws.write(
        "feed.xml",
        &teaser_feed(
            "",
            &[
                (
                    "meta",
                    "Метаданные",
                    "http://169.254.169.254/latest/meta-data/",
                ),
                ("loop", "Петля", "http://127.0.0.1:9/admin"),
            ],
        ),
    );
    ws.write(
        "config.toml",
        "[settings]\nfetch_timeout = \"2s\"\n[[source]]\nname = \"ca\"\nurl = \"feed.xml\"\n\
         fulltext = true\n[[feed]]\nname = \"all\"\ntitle = \"All\"\nformats = [\"json\"]\n",
    );
    let out = ws.run(&["refresh", "-v"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("169.254.169.254") && log.contains("private or loopback address"),
        "{log}"
    );
    assert!(log.contains("not tried again"), "refusal is final: {log}");
    let it = published(&ws, "meta");
    assert!(
        it["content_html"]
            .as_str()
            .unwrap()
            .contains("Общественность и эксперты")
    );
}

/// Pages built to be slow: deep nesting, many paragraphs, a flood of links.
#[test]
fn hostile_pages_are_extracted_in_bounded_time() {
    let url = url::Url::parse("https://example.org/a").unwrap();
    let para = "<p>Some words of a paragraph, with commas, long enough to score a little.</p>";
    for (name, page) in [
        ("deep", "<div>".repeat(20_000) + para),
        ("wide", para.repeat(20_000)),
        ("many links", "<a href=/x>x</a>".repeat(50_000)),
        ("links under the cap", "<a href=/x>x</a>".repeat(25_000)),
    ] {
        let started = Instant::now();
        let _ = pages::extract_story(page.as_bytes(), None, &url, &ExtractRules::default());
        let took = started.elapsed();
        eprintln!("{name}: {took:?} for {} bytes (debug build)", page.len());
        // Nesting is flattened at 128 levels and pages over 30,000 elements are refused, so
        // no page costs more than a few seconds even unoptimised on a busy machine.
        assert!(took < Duration::from_secs(20), "{name}: {took:?}");
    }
}

/// Two sources on two host names, each linking to pages on the other's host, with one slot
/// per host: each refresh holds its feed's host, so neither could ever get the other's. The
/// wait for a slot is bounded, so the run ends (the pages wait for a later run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossed_hosts_with_one_slot_each_do_not_hang() {
    let server = page_server().await;
    let port = server.address().port();
    let (a, b) = (
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    );
    for (feed, links_to) in [("/a.xml", &b), ("/b.xml", &a)] {
        Mock::given(method("GET"))
            .and(path(feed))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_string(teaser_feed(
                        links_to,
                        &[(feed, SUMMIT_TITLE, "/news/summit.html")],
                    ))
                    // Both refreshes hold their feed's host at the same time.
                    .set_delay(Duration::from_millis(300)),
            )
            .mount(&server)
            .await;
    }
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &format!(
            "[settings]\nallow_private_networks = true\nfetch_timeout = \"2s\"\n\
             per_host_concurrency = 1\n\n\
             [[source]]\nname = \"a\"\nurl = \"{a}/a.xml\"\nfulltext = true\n\n\
             [[source]]\nname = \"b\"\nurl = \"{b}/b.xml\"\nfulltext = true\n\n\
             [[feed]]\nname = \"all\"\ntitle = \"All\"\nformats = [\"json\"]\n"
        ),
    );
    let out = tokio::time::timeout(Duration::from_secs(60), ws.run(&["refresh", "-v"]))
        .await
        .expect("the run ends");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A feed that changes its guids does not make its pages fetched again: stories are found by
/// their page's URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_guid_for_the_same_page_reuses_the_story() {
    let server = page_server().await;
    let base = server.uri();
    let ws = Workspace::new();
    ws.write("config.toml", &config(&format!("{base}/feed.xml"), ""));
    mount_feed(
        &server,
        teaser_feed(&base, &[("old-guid", SUMMIT_TITLE, "/news/summit.html")]),
    )
    .await;
    let first = ws.run(&["refresh", "-v"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let story = published(&ws, "old-guid")["content_html"].clone();

    // Requests are counted from here; the page answers 404 if it is asked for.
    server.reset().await;
    mount_feed(
        &server,
        teaser_feed(&base, &[("new-guid", SUMMIT_TITLE, "/news/summit.html")]),
    )
    .await;
    let second = ws.run(&["refresh", "-v", "--force"]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        hits(&reqs, "/news/summit.html").len(),
        0,
        "not fetched again"
    );
    assert_eq!(published(&ws, "new-guid")["content_html"], story);
}
