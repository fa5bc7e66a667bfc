//! Polite fetching, against a local server on 127.0.0.1 (wiremock): what the server received,
//! and when, shows what the client did. Each test runs the real binary more than once; where a
//! test needs time to pass, it moves the stored `last_fetch_at` back instead of waiting.

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

/// Pretends every source was last fetched `ago` before now.
async fn backdate(ws: &Workspace, names: &[&str], ago: chrono::Duration) {
    let store = SqliteStore::open(&ws.path().join("feedloom.db")).unwrap();
    for n in names {
        let mut st = store.source_state(n).await.unwrap().unwrap();
        st.last_fetch_at = Some(chrono::Utc::now() - ago);
        store.record_fetch(n, &st).await.unwrap();
    }
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

async fn serve(server: &MockServer, at: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(response)
        .mount(server)
        .await;
}

fn redirect(code: u16, to: &str) -> ResponseTemplate {
    ResponseTemplate::new(code).insert_header("location", to)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_redirect_twice_moves_the_source_temporary_never() {
    let server = MockServer::start().await;
    let uri = server.uri();
    // 301 to an absolute URL, 302 and 308 to relative ones.
    serve(
        &server,
        "/moved.xml",
        redirect(301, &format!("{uri}/moved-new.xml")),
    )
    .await;
    serve(&server, "/moved-new.xml", feed_response("moved", "")).await;
    serve(&server, "/temp.xml", redirect(302, "/temp-dest.xml")).await;
    serve(&server, "/temp-dest.xml", feed_response("temp", "")).await;
    // A permanent redirect seen once only.
    Mock::given(method("GET"))
        .and(path("/once.xml"))
        .respond_with(redirect(308, "/once-new.xml"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    serve(&server, "/once.xml", feed_response("once", "")).await;
    serve(&server, "/once-new.xml", feed_response("once", "")).await;
    // 301 then 302: the source moves as far as the permanent part goes.
    serve(&server, "/chain.xml", redirect(301, "/chain-mid.xml")).await;
    serve(&server, "/chain-mid.xml", redirect(302, "/chain-end.xml")).await;
    serve(&server, "/chain-end.xml", feed_response("chain", "")).await;
    serve(&server, "/edited.xml", feed_response("edited", "")).await;
    let ws = Workspace::new();
    let names = ["moved", "temp", "once", "chain"];
    ws.write("config.toml", &config(&uri, &names));

    let first = ws.run(&["refresh", "-v"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    for n in [
        "moved",
        "moved-new",
        "temp",
        "temp-dest",
        "once",
        "once-new",
        "chain",
        "chain-mid",
        "chain-end",
    ] {
        assert_eq!(hits(&server, n).await, 1, "{n}");
    }
    // Seen once: noted, not acted on.
    let moved = state(&ws, "moved").await;
    assert_eq!(
        moved.moved_to.as_deref(),
        Some(format!("{uri}/moved-new.xml").as_str())
    );
    assert_eq!(moved.effective_url, None);
    assert_eq!(state(&ws, "temp").await.moved_to, None);

    let second = ws.run(&["refresh", "--force", "-v"]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let log = stderr(&second);
    // Sources run concurrently: pick this source's line, whatever the order.
    let logged = log
        .lines()
        .find(|l| l.contains("moved permanently") && l.contains("source=moved "));
    assert!(
        logged.is_some_and(|l| l.contains(&format!("{uri}/moved.xml"))
            && l.contains(&format!("{uri}/moved-new.xml"))),
        "the move is logged with old and new URL: {log}"
    );
    assert_eq!(hits(&server, "moved").await, 2);
    assert_eq!(hits(&server, "once").await, 2);
    assert_eq!(
        hits(&server, "once-new").await,
        1,
        "the second fetch was not redirected"
    );
    assert_eq!(
        state(&ws, "moved").await.effective_url.as_deref(),
        Some(format!("{uri}/moved-new.xml").as_str())
    );
    assert_eq!(
        state(&ws, "chain").await.effective_url.as_deref(),
        Some(format!("{uri}/chain-mid.xml").as_str())
    );
    let once = state(&ws, "once").await;
    assert_eq!((once.effective_url, once.moved_to), (None, None));

    // Later fetches go to the new URL; temporary redirects are followed every time.
    let third = ws.run(&["refresh", "--force"]).await;
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert_eq!(hits(&server, "moved").await, 2);
    assert_eq!(hits(&server, "moved-new").await, 3);
    assert_eq!(hits(&server, "temp").await, 3);
    assert_eq!(hits(&server, "temp-dest").await, 3);
    assert_eq!(hits(&server, "once").await, 3);
    assert_eq!(hits(&server, "chain").await, 2);
    assert_eq!(hits(&server, "chain-mid").await, 3);
    assert_eq!(hits(&server, "chain-end").await, 3);
    assert_eq!(state(&ws, "temp").await.effective_url, None);
    // The moved source's state still names the configured url.
    assert_eq!(state(&ws, "moved").await.url, format!("{uri}/moved.xml"));

    // The config stays the source of truth: a url edited by the user wins over the move.
    let edited =
        config(&uri, &names).replace(&format!("{uri}/moved.xml"), &format!("{uri}/edited.xml"));
    ws.write("config.toml", &edited);
    let fourth = ws.run(&["refresh", "--force"]).await;
    assert_eq!(fourth.status.code(), Some(0), "{}", stderr(&fourth));
    assert_eq!(hits(&server, "edited").await, 1);
    assert_eq!(hits(&server, "moved-new").await, 3);
    let moved = state(&ws, "moved").await;
    assert_eq!((moved.effective_url, moved.moved_to), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_guards_cap_and_scheme() {
    let server = MockServer::start().await;
    for n in 0..3 {
        serve(
            &server,
            &format!("/hop{n}.xml"),
            redirect(307, &format!("/hop{}.xml", n + 1)),
        )
        .await;
    }
    serve(&server, "/hop3.xml", feed_response("hop", "")).await;
    serve(&server, "/scheme.xml", redirect(301, "file:///etc/passwd")).await;
    serve(&server, "/two.xml", redirect(308, "/hop2.xml")).await;
    let ws = Workspace::new();
    let c = config(&server.uri(), &["hop0", "scheme", "two"])
        .replace("[settings]\n", "[settings]\nmax_redirects = 2\n");
    ws.write("config.toml", &c);
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("source hop0:") && log.contains("more than 2 redirects"),
        "{log}"
    );
    assert!(
        log.contains("source scheme:") && log.contains("redirect to a file URL"),
        "{log}"
    );
    assert!(
        !log.contains("source two:"),
        "two redirects are allowed: {log}"
    );
    assert_eq!(hits(&server, "hop0").await, 1);
    assert_eq!(hits(&server, "hop1").await, 1);
    // hop2 once from hop0's chain (its redirect is the third: refused), once from two's.
    assert_eq!(hits(&server, "hop2").await, 2);
    assert_eq!(hits(&server, "hop3").await, 1, "only two's chain got there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_sy_max_age_and_expires_are_minimum_intervals() {
    let server = MockServer::start().await;
    let in_two_hours = (chrono::Utc::now() + chrono::Duration::hours(2))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    serve(&server, "/ttl.xml", feed_response("ttl", "<ttl>120</ttl>")).await;
    let sy = "<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>";
    serve(&server, "/sy.xml", feed_response("sy", sy)).await;
    serve(
        &server,
        "/maxage.xml",
        feed_response("maxage", "")
            .insert_header("cache-control", "public, max-age=7200")
            .insert_header("etag", "\"v1\""),
    )
    .await;
    serve(
        &server,
        "/expires.xml",
        feed_response("expires", "").insert_header("expires", in_two_hours.as_str()),
    )
    .await;
    serve(
        &server,
        "/huge.xml",
        feed_response("huge", "<ttl>100000</ttl>"),
    )
    .await;
    serve(&server, "/plain.xml", feed_response("plain", "")).await;
    serve(
        &server,
        "/slow.xml",
        feed_response("slow", "").insert_header("cache-control", "max-age=60"),
    )
    .await;
    let ws = Workspace::new();
    let names = ["ttl", "sy", "maxage", "expires", "huge", "plain", "slow"];
    let uri = server.uri();
    // `slow` is configured at 3 h: a shorter hint never shortens it.
    let c = config(&uri, &names).replace(
        &format!("{uri}/slow.xml\"\ninterval = \"1m\""),
        &format!("{uri}/slow.xml\"\ninterval = \"3h\""),
    );
    ws.write("config.toml", &c);
    let count = async |names: &[&str]| {
        let mut v = Vec::new();
        for n in names {
            v.push(hits(&server, n).await);
        }
        v
    };

    let first = ws.run(&["refresh"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(count(&names).await, [1; 7]);
    assert_eq!(state(&ws, "ttl").await.feed.unwrap().ttl_minutes, Some(120));
    assert_eq!(state(&ws, "sy").await.feed.unwrap().ttl_minutes, Some(720));
    assert_eq!(state(&ws, "maxage").await.fresh_for, Some(7200));
    let expires = state(&ws, "expires").await.fresh_for.unwrap();
    assert!((7100..=7200).contains(&expires), "{expires}");

    // 10 minutes later: only the sources without a longer hint are due.
    backdate(&ws, &names, chrono::Duration::minutes(10)).await;
    let second = ws.run(&["refresh"]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(count(&names).await, [1, 1, 1, 1, 1, 2, 1]);

    // 3 hours later: the 2-hour hints have passed; 12 h (sy) and the capped one have not.
    backdate(&ws, &names, chrono::Duration::hours(3)).await;
    let third = ws.run(&["refresh"]).await;
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert_eq!(count(&names).await, [2, 1, 2, 2, 1, 3, 2]);

    // 25 hours later: every hint is capped at 24 h.
    backdate(&ws, &names, chrono::Duration::hours(25)).await;
    let fourth = ws.run(&["refresh"]).await;
    assert_eq!(fourth.status.code(), Some(0), "{}", stderr(&fourth));
    assert_eq!(count(&names).await, [3, 2, 3, 3, 2, 4, 3]);

    // --force ignores the hints, and still asks conditionally.
    let forced = ws.run(&["refresh", "--force"]).await;
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    assert_eq!(count(&names).await, [4, 3, 4, 4, 3, 5, 4]);
    let requests = server.received_requests().await.unwrap();
    let last = requests
        .iter()
        .rev()
        .find(|r| r.url.path() == "/maxage.xml")
        .unwrap();
    assert_eq!(last.headers.get("if-none-match").unwrap(), "\"v1\"");
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
