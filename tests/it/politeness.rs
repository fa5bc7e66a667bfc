//! Polite fetching, against a local server on 127.0.0.1 (wiremock): what the server received,
//! and when, shows what the client did. Each test runs the real binary more than once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use feedloom::store::{SourceState, SqliteStore, Store};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::{Workspace, stderr};

fn config(server: &str, names: &[&str]) -> String {
    let mut c =
        String::from("[settings]\nallow_private_networks = true\nfetch_timeout = \"10s\"\n\n");
    for n in names {
        c.push_str(&format!(
            "[[source]]\nname = \"{n}\"\nurl = \"{server}/{n}.xml\"\ninterval = \"1m\"\n\n"
        ));
    }
    c.push_str("[[feed]]\nname = \"all\"\ntitle = \"All\"\n");
    c
}

async fn hits(server: &MockServer, name: &str) -> usize {
    let p = format!("/{name}.xml");
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == p)
        .count()
}

async fn state(ws: &Workspace, name: &str) -> SourceState {
    let store = SqliteStore::open(&ws.path().join("feedloom.db")).unwrap();
    store.source_state(name).await.unwrap().unwrap()
}

/// A small RSS 2.0 document; `extra` goes into the channel (`<ttl>`, `sy:*`).
fn rss(title: &str, extra: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <rss version=\"2.0\" xmlns:sy=\"http://purl.org/rss/1.0/modules/syndication/\">\
         <channel><title>{title}</title><link>https://example.org/</link>{extra}\
         <item><title>{title} one</title><link>https://example.org/{title}/1</link>\
         <guid>https://example.org/{title}/1</guid></item></channel></rss>\n"
    )
}

fn feed_response(title: &str, extra: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/rss+xml")
        .set_body_string(rss(title, extra))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_retry_after_and_backoff() {
    let server = MockServer::start().await;
    // An HTTP date two days ahead: more than the one-day cap.
    let in_two_days = (chrono::Utc::now() + chrono::Duration::days(2))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    Mock::given(method("GET"))
        .and(path("/gone.xml"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/busy.xml"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/later.xml"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", in_two_days.as_str()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/flaky.xml"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let ws = Workspace::new();
    let names = ["gone", "busy", "later", "flaky"];
    ws.write("config.toml", &config(&server.uri(), &names));

    let before = chrono::Utc::now();
    let first = ws.run(&["refresh", "-v"]).await;
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    let log = stderr(&first);
    assert!(
        log.contains("gone (HTTP 410): disabled"),
        "410 is logged: {log}"
    );
    assert!(log.contains("Retry-After"), "the wait is logged: {log}");
    for n in names {
        assert_eq!(hits(&server, n).await, 1, "{n}");
    }

    // 410: disabled, visible in the state.
    let gone = state(&ws, "gone").await;
    assert!(
        gone.disabled.as_deref().is_some_and(|d| d.contains("410")),
        "{gone:?}"
    );
    // Retry-After in seconds, and as an HTTP date (capped at a day).
    let busy = state(&ws, "busy").await;
    let wait = busy.retry_not_before.unwrap() - before;
    assert!((3590..=3700).contains(&wait.num_seconds()), "{wait:?}");
    let later = state(&ws, "later").await;
    let wait = later.retry_not_before.unwrap() - before;
    assert!(
        wait <= chrono::Duration::hours(24) + chrono::Duration::minutes(1),
        "{wait:?}"
    );
    assert!(wait >= chrono::Duration::hours(23), "{wait:?}");
    // A plain failure backs off: about the interval (1 min) ±10 % after the first failure.
    let flaky = state(&ws, "flaky").await;
    let wait = flaky.backoff_until.unwrap() - before;
    assert!((50..=70).contains(&wait.num_seconds()), "{wait:?}");

    // Even --force does not call a gone source or one that asked to wait; it does retry the
    // backed-off one.
    let second = ws.run(&["refresh", "--force", "-vv"]).await;
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("disabled (HTTP 410 Gone)"),
        "{}",
        stderr(&second)
    );
    assert_eq!(hits(&server, "gone").await, 1);
    assert_eq!(hits(&server, "busy").await, 1);
    assert_eq!(hits(&server, "later").await, 1);
    assert_eq!(hits(&server, "flaky").await, 2);
    // The second consecutive failure doubles the wait.
    let flaky = state(&ws, "flaky").await;
    assert_eq!(flaky.error_count, 2);
    let wait = flaky.backoff_until.unwrap() - flaky.last_fetch_at.unwrap();
    assert!((108..=132).contains(&wait.num_seconds()), "{wait:?}");

    // Without --force, the backed-off source waits too.
    let third = ws.run(&["refresh"]).await;
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert_eq!(hits(&server, "flaky").await, 2);
}

/// Answers a feed after `delay`, noting when each request arrived.
struct Slow {
    delay: Duration,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Slow {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.arrivals.lock().unwrap().push(Instant::now());
        feed_response("slow", "").set_delay(self.delay)
    }
}

/// Runs one refresh of six sources on one host answering after `delay`; returns the sorted
/// times the requests arrived.
async fn arrivals(settings: &str, delay: Duration) -> Vec<Instant> {
    let server = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .respond_with(Slow {
            delay,
            arrivals: arrivals.clone(),
        })
        .mount(&server)
        .await;
    let ws = Workspace::new();
    let names = ["s1", "s2", "s3", "s4", "s5", "s6"];
    let c =
        config(&server.uri(), &names).replace("[settings]\n", &format!("[settings]\n{settings}"));
    ws.write("config.toml", &c);
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut v = arrivals.lock().unwrap().clone();
    v.sort();
    assert_eq!(v.len(), 6);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_and_global_concurrency() {
    let delay = Duration::from_millis(400);
    // A request arrives before its answer's delay starts, and a slot is freed only after the
    // answer: so with at most k in flight, request i + k arrives at least `delay` after request i.
    let at_most = |v: &[Instant], k: usize| v.windows(k + 1).all(|w| w[k] - w[0] >= delay);

    let per_host = arrivals("per_host_concurrency = 2\n", delay).await;
    assert!(at_most(&per_host, 2), "more than 2 in flight: {per_host:?}");
    assert!(
        !at_most(&per_host, 1),
        "2 may be in flight at once: {per_host:?}"
    );

    // The global limit holds too when it is the smaller one.
    let global = arrivals("concurrency = 1\nper_host_concurrency = 4\n", delay).await;
    assert!(at_most(&global, 1), "more than 1 in flight: {global:?}");

    // Without a tighter setting, the default per-host limit is 2.
    let default = arrivals("", delay).await;
    assert!(at_most(&default, 2), "more than 2 in flight: {default:?}");
}
