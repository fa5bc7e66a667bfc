//! `feedloom serve`: the real binary on 127.0.0.1 (port 0), judged over HTTP. Sources and
//! WebSub hubs are local wiremock servers.

use std::collections::HashMap;
use std::io::Read as _;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::Mac as _;
use tokio::io::AsyncBufReadExt as _;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use crate::support::{Workspace, bin};

/// A running `feedloom serve`; killed on drop if the test did not stop it.
struct Daemon {
    child: tokio::process::Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `feedloom serve` on the workspace's config and waits for its address.
    async fn start(ws: &Workspace) -> Daemon {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut child = tokio::process::Command::new(bin())
            .args(["serve", "--config"])
            .arg(ws.config())
            .env_remove("FEEDLOOM_CONFIG")
            .env_remove("FEEDLOOM_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start feedloom serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.split("on http://").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.trim_end_matches('/').to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("feedloom serve printed its address")
            .unwrap_or_else(|_| panic!("feedloom serve exited: {:?}", log.lock().unwrap()));
        Daemon {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }

    /// Waits until `GET p` answers 200 (the first publish is done).
    async fn wait_for(&self, c: &reqwest::Client, p: &str) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(r) = c.get(self.url(p)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{p} never appeared; log:\n{}", self.log());
    }
}

/// A client that shows encodings as sent (no automatic decompression).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .build()
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Rewrites the shipped config to listen on port 0 (and whatever else `extra` sets).
fn shipped(extra: &[(&str, &str)]) -> Workspace {
    let ws = Workspace::shipped();
    let mut text = ws.read("config.toml");
    text = text.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"");
    for (key, value) in extra {
        // Drop the shipped line of that key, then set it first in [settings].
        text = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{key} ")))
            .collect::<Vec<_>>()
            .join("\n");
        text = text.replace("[settings]\n", &format!("[settings]\n{key} = {value}\n"));
    }
    ws.write("config.toml", &text);
    ws
}

#[tokio::test]
async fn files_have_etags_304s_encodings_types_and_head() {
    let ws = shipped(&[]);
    let d = Daemon::start(&ws).await;
    let c = client();
    d.wait_for(&c, "/all.atom").await;
    let disk = std::fs::read(ws.path().join("public/all.atom")).unwrap();

    let r = c.get(d.url("/all.atom")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "content-type"),
        "application/atom+xml; charset=utf-8"
    );
    assert_eq!(header(&r, "vary"), "Accept-Encoding");
    assert_eq!(header(&r, "cache-control"), "public, max-age=1800");
    assert_eq!(header(&r, "content-encoding"), "");
    let etag = header(&r, "etag");
    let last_modified = header(&r, "last-modified");
    assert!(etag.starts_with('"') && etag.len() > 10, "strong: {etag}");
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");
    assert_eq!(r.bytes().await.unwrap(), disk);

    // If-None-Match: equal (strong or weak form) → 304 without a body; other → 200.
    for tag in [etag.clone(), format!("W/{etag}"), format!("\"x\", {etag}")] {
        let r = c
            .get(d.url("/all.atom"))
            .header("If-None-Match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{tag}");
        assert_eq!(header(&r, "etag"), etag);
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = c
        .get(d.url("/all.atom"))
        .header("If-None-Match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    let r = c
        .get(d.url("/all.atom"))
        .header("If-None-Match", "\"other\"")
        .header("If-Modified-Since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // If-Modified-Since.
    let r = c
        .get(d.url("/all.atom"))
        .header("If-Modified-Since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = c
        .get(d.url("/all.atom"))
        .header("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // gzip and br: decoded, the same bytes; each encoding has its own strong ETag, and a
    // client holding any of them gets a 304.
    let mut tags = vec![etag.clone()];
    for (accept, want) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("gzip, deflate, br", "br"),
        ("br;q=0, gzip", "gzip"),
        ("identity", ""),
    ] {
        let r = c
            .get(d.url("/all.atom"))
            .header("Accept-Encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-encoding"), want, "{accept}");
        let tag = header(&r, "etag");
        let body = r.bytes().await.unwrap();
        let mut plain = Vec::new();
        match want {
            "gzip" => {
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut plain)
                    .unwrap();
            }
            "br" => {
                brotli::Decompressor::new(&body[..], 4096)
                    .read_to_end(&mut plain)
                    .unwrap();
            }
            _ => plain = body.to_vec(),
        }
        assert_eq!(plain, disk, "{accept}");
        if !want.is_empty() {
            assert!(body.len() < disk.len() / 2, "{accept} compresses");
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    assert_eq!(tags.len(), 3, "identity, gzip and br ETags: {tags:?}");
    for tag in &tags {
        let r = c
            .get(d.url("/all.atom"))
            .header("Accept-Encoding", "gzip")
            .header("If-None-Match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{tag}");
    }

    // Content types (docs/contracts.md, HTTP).
    for (p, ct) in [
        ("/all.rss", "application/rss+xml; charset=utf-8"),
        ("/all.json", "application/feed+json; charset=utf-8"),
        ("/sources.opml", "text/x-opml; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/", "text/html; charset=utf-8"),
    ] {
        let r = c.get(d.url(p)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p}");
        assert_eq!(header(&r, "content-type"), ct, "{p}");
    }
    let index = c.get(d.url("/")).send().await.unwrap().bytes().await;
    assert_eq!(
        index.unwrap(),
        std::fs::read(ws.path().join("public/index.html")).unwrap()
    );

    // HEAD: the GET's headers, no body.
    let r = c.head(d.url("/all.atom")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "etag"), etag);
    assert_eq!(header(&r, "content-length"), disk.len().to_string());
    assert!(r.bytes().await.unwrap().is_empty());

    // Nothing outside the output folder, nothing unknown; only GET and HEAD.
    for p in [
        "/nope.atom",
        "/../config.toml",
        "/%2e%2e/config.toml",
        "/feedloom.db",
        "/config.toml",
        "/public/all.atom",
        "//etc/passwd",
    ] {
        let r = c.get(d.url(p)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{p}");
    }
    let r = c.post(d.url("/all.atom")).send().await.unwrap();
    assert_eq!(r.status(), 405);

    // The daemon holds the run lock: a cron `refresh` meanwhile exits 3.
    let o = ws.run(&["refresh"]).await;
    assert_eq!(o.status.code(), Some(3), "{}", crate::support::stderr(&o));

    let metrics = c
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("feedloom_"), "{line}");
    }
    assert!(metrics.contains("feedloom_fetches_total{outcome=\"fetched\",status=\"200\"} 6"));
    assert!(metrics.contains("feedloom_http_requests_total{code=\"304\"}"));
    assert!(metrics.contains("feedloom_failing_sources 0"));
    let health = c.get(d.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        health
            .text()
            .await
            .unwrap()
            .starts_with("ok: last good refresh")
    );
}

/// An Atom feed with `n` entries whose text changes with `round` (every fetch is "modified").
fn atom_feed(round: usize, n: usize, hub: Option<&str>, self_url: &str) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n",
    );
    s.push_str(&format!(
        "<title>Source</title><id>urn:test:source</id><updated>2026-11-01T00:00:00Z</updated>\n\
         <link rel=\"self\" href=\"{self_url}\"/>\n"
    ));
    if let Some(h) = hub {
        s.push_str(&format!("<link rel=\"hub\" href=\"{h}\"/>\n"));
    }
    for i in 0..n {
        let minute = i % 60;
        let hour = (i / 60) % 24;
        s.push_str(&format!(
            "<entry><id>urn:test:{round}:{i}</id><title>Round {round} story {i}</title>\
             <link href=\"https://example.org/{round}/{i}\"/>\
             <updated>2026-11-20T{hour:02}:{minute:02}:00Z</updated>\
             <content type=\"html\">&lt;p&gt;Paragraph one of story {i} in round {round}, \
             long enough to be a real lead for the summary.&lt;/p&gt;&lt;p&gt;Paragraph two \
             says more about story {i}.&lt;/p&gt;</content></entry>\n"
        ));
    }
    s.push_str("</feed>\n");
    s
}

/// Serves a new round of the feed on every request.
struct Rounds {
    n: AtomicUsize,
    items: usize,
}

impl Respond for Rounds {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let round = self.n.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/atom+xml")
            .set_body_string(atom_feed(round, self.items, None, "http://x/self"))
    }
}

fn config(source_url: &str, settings: &str) -> String {
    format!(
        "[settings]\nlisten = \"127.0.0.1:0\"\nallow_private_networks = true\n\
         default_interval = \"1s\"\n{settings}\n\
         [[source]]\nname = \"src\"\nurl = \"{source_url}\"\ninterval = \"1s\"\n\n\
         [[feed]]\nname = \"all\"\ntitle = \"All\"\n"
    )
}

#[tokio::test]
async fn no_reader_sees_a_partial_file_and_sigterm_exits_cleanly_during_publishing() {
    let source = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/feed"))
        .respond_with(Rounds {
            n: AtomicUsize::new(0),
            items: 200,
        })
        .mount(&source)
        .await;
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &config(&format!("{}/feed", source.uri()), ""),
    );
    let d = Daemon::start(&ws).await;
    let c = client();
    d.wait_for(&c, "/all.atom").await;

    // Readers hammer the feeds while the daemon republishes every second.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for n in 0..4 {
        let (c, stop) = (c.clone(), stop.clone());
        let url = d.url(if n % 2 == 0 { "/all.atom" } else { "/all.json" });
        readers.push(tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            let mut checked = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let accept = ["gzip", "br", "identity"][checked % 3];
                let Ok(r) = c.get(&url).header("Accept-Encoding", accept).send().await else {
                    break; // the daemon stopped
                };
                let encoding = header(&r, "content-encoding");
                let tag = header(&r, "etag");
                let Ok(body) = r.bytes().await else { break };
                let mut plain = Vec::new();
                match encoding.as_str() {
                    "gzip" => {
                        flate2::read::GzDecoder::new(&body[..])
                            .read_to_end(&mut plain)
                            .expect("a whole gzip stream");
                    }
                    "br" => {
                        brotli::Decompressor::new(&body[..], 4096)
                            .read_to_end(&mut plain)
                            .expect("a whole br stream");
                    }
                    _ => plain = body.to_vec(),
                }
                let text = String::from_utf8(plain).expect("UTF-8");
                if url.ends_with(".atom") {
                    assert!(text.starts_with("<?xml"), "{url}: starts whole");
                    assert!(text.trim_end().ends_with("</feed>"), "{url}: ends whole");
                    let mut reader = quick_xml::Reader::from_str(&text);
                    loop {
                        match reader.read_event() {
                            Ok(quick_xml::events::Event::Eof) => break,
                            Ok(_) => {}
                            Err(e) => panic!("{url}: not well-formed: {e}"),
                        }
                    }
                } else {
                    let v: serde_json::Value =
                        serde_json::from_str(&text).expect("a whole JSON document");
                    assert_eq!(v["items"].as_array().unwrap().len(), 100);
                }
                seen.insert(tag);
                checked += 1;
            }
            (checked, seen.len())
        }));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Stop while readers keep reading and the daemon keeps republishing.
    d.signal("TERM");
    let t = Instant::now();
    let mut child = d.child;
    // A hang guard, not a timing check: shutdown waits for the refresh in flight, which on a
    // loaded machine (a debug build normalising 200 items) can take seconds.
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits within 30 s of SIGTERM")
        .unwrap();
    let took = t.elapsed();
    stop.store(true, Ordering::SeqCst);
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        d.log.lock().unwrap().join("\n")
    );
    let mut versions = 0;
    for r in readers {
        let (checked, seen) = r.await.expect("every body was a complete document");
        assert!(checked > 10, "{checked} reads");
        versions = versions.max(seen);
    }
    assert!(
        versions >= 2,
        "the readers saw republishing ({versions} versions)"
    );
    // On disk: whole files, no temp files left.
    for (name, bytes) in ws.outputs() {
        assert!(!name.starts_with('.'), "temp file left: {name}");
        if name.ends_with(".atom") {
            assert!(
                String::from_utf8(bytes)
                    .unwrap()
                    .trim_end()
                    .ends_with("</feed>")
            );
        }
    }
    let log = d.log.lock().unwrap().join("\n");
    assert!(log.contains("SIGTERM"), "{log}");
    eprintln!("stopped {took:?} after SIGTERM");
}

#[tokio::test]
async fn healthz_goes_stale_when_refreshes_fail() {
    let source = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/feed"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/atom+xml")
                .set_body_string(atom_feed(0, 3, None, "http://x/self")),
        )
        .up_to_n_times(1)
        .mount(&source)
        .await;
    Mock::given(method("GET"))
        .and(path("/feed"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&source)
        .await;
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &config(&format!("{}/feed", source.uri()), "health_max_age = \"3s\""),
    );
    let d = Daemon::start(&ws).await;
    let c = client();
    d.wait_for(&c, "/all.atom").await;
    let r = c.get(d.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.starts_with("ok: last good refresh"), "{body}");
    assert!(body.contains("last_good_refresh_age_seconds "), "{body}");
    // Every later refresh fails (500, then backoff): after 3 s the daemon is unhealthy.
    let t = Instant::now();
    loop {
        let r = c.get(d.url("/healthz")).send().await.unwrap();
        if r.status() == 503 {
            let body = r.text().await.unwrap();
            assert!(body.starts_with("stale: last good refresh"), "{body}");
            assert!(
                t.elapsed() >= Duration::from_secs(2),
                "not before the limit"
            );
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(45), "never went stale");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = c
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("feedloom_failing_sources 1"), "{metrics}");
    assert!(
        metrics.contains("feedloom_fetches_total{outcome=\"failed\",status=\"500\"}"),
        "{metrics}"
    );
}

/// Form fields of a request body.
fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

#[tokio::test]
async fn websub_publish_pings_the_configured_hubs() {
    let hub = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hub"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&hub)
        .await;
    let ws = shipped(&[
        ("websub_hubs", &format!("[\"{}/hub\"]", hub.uri())),
        ("base_url", "\"https://feeds.example.org/\""),
    ]);
    let d = Daemon::start(&ws).await;
    let c = client();
    d.wait_for(&c, "/all.atom").await;
    // The first publish writes every output; each feed is announced (the pings go out one by
    // one, so wait for all of them).
    let wanted = ["all.atom", "all.rss", "all.json", "central-asia.atom"]
        .map(|f| format!("https://feeds.example.org/{f}"));
    let t = Instant::now();
    let pings = loop {
        let reqs = hub.received_requests().await.unwrap();
        let pings: Vec<HashMap<String, String>> = reqs.iter().map(|r| form(&r.body)).collect();
        if wanted
            .iter()
            .all(|w| pings.iter().any(|p| p.get("hub.url") == Some(w)))
        {
            break pings;
        }
        assert!(t.elapsed() < Duration::from_secs(45), "no ping: {pings:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(pings.iter().all(|p| p["hub.mode"] == "publish"));
    let urls: Vec<&str> = pings.iter().map(|p| p["hub.url"].as_str()).collect();
    for f in ["all.rss", "all.json", "central-asia.atom"] {
        assert!(
            urls.contains(&format!("https://feeds.example.org/{f}").as_str()),
            "{urls:?}"
        );
    }
    assert!(
        !urls
            .iter()
            .any(|u| u.ends_with(".html") || u.ends_with(".opml"))
    );
    // The outputs advertise the hub.
    let atom = c.get(d.url("/all.atom")).send().await.unwrap().text().await;
    assert!(
        atom.unwrap()
            .contains(&format!("rel=\"hub\" href=\"{}/hub\"", hub.uri()))
    );
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body);
    let hex: String = m
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[tokio::test]
async fn websub_subscriber_verifies_checks_signatures_refreshes_and_renews() {
    let hub = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hub"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&hub)
        .await;
    let source = MockServer::start().await;
    let topic = format!("{}/feed.atom", source.uri());
    Mock::given(method("GET"))
        .and(path("/feed.atom"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/atom+xml")
                .set_body_string(atom_feed(0, 3, Some(&format!("{}/hub", hub.uri())), &topic)),
        )
        .mount(&source)
        .await;
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &format!(
            "[settings]\nlisten = \"127.0.0.1:0\"\nallow_private_networks = true\n\
             websub_callback = \"https://me.example.org/websub/callback\"\n\
             [[source]]\nname = \"src\"\nurl = \"{topic}\"\ninterval = \"1h\"\n\
             [[feed]]\nname = \"all\"\ntitle = \"All\"\n"
        ),
    );
    let d = Daemon::start(&ws).await;
    let c = client();

    // The daemon finds the hub in the source and asks it for a subscription.
    let subscribes = || async {
        hub.received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| form(&r.body))
            .filter(|f| f.get("hub.mode").map(String::as_str) == Some("subscribe"))
            .collect::<Vec<_>>()
    };
    let t = Instant::now();
    let sub = loop {
        if let Some(s) = subscribes().await.into_iter().next() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(45),
            "no subscription request\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sub["hub.topic"], topic);
    assert_eq!(
        sub["hub.callback"],
        "https://me.example.org/websub/callback/src"
    );
    let secret = sub["hub.secret"].clone();
    assert!(secret.len() >= 32, "a real secret");

    // Verification of intent: our topic → the challenge echoed; another → 404.
    let verify = |topic: &str, lease: Option<&str>| {
        let mut u = url::Url::parse(&d.url("/websub/callback/src")).unwrap();
        u.query_pairs_mut()
            .append_pair("hub.mode", "subscribe")
            .append_pair("hub.topic", topic)
            .append_pair("hub.challenge", "ch-4711");
        if let Some(l) = lease {
            u.query_pairs_mut().append_pair("hub.lease_seconds", l);
        }
        c.get(u).send()
    };
    let r = verify("https://other.example/feed", None).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = verify(&topic, None).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ch-4711");

    let source_hits = || async { source.received_requests().await.unwrap().len() };
    // The first refresh fetches the source apart from the hub discovery: wait until it is
    // published, so its fetch is not taken for one a push caused.
    d.wait_for(&c, "/all.atom").await;
    let before = source_hits().await;
    let push = |sig: Option<String>| {
        let mut b = c
            .post(d.url("/websub/callback/src"))
            .header("content-type", "application/atom+xml")
            .body("<feed/>");
        if let Some(s) = sig {
            b = b.header("X-Hub-Signature", s);
        }
        b.send()
    };
    // A badly signed push and an unsigned one: acknowledged (WebSub §8) but ignored.
    let r = push(Some(sign("wrong-secret", b"<feed/>"))).await.unwrap();
    assert!(r.status().is_success());
    let r = push(None).await.unwrap();
    assert!(r.status().is_success());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(source_hits().await, before, "a bad push refreshes nothing");
    // A signed push: the source is refreshed at once (its interval is an hour).
    let r = push(Some(sign(&secret, b"<feed/>"))).await.unwrap();
    assert_eq!(r.status(), 202);
    let t = Instant::now();
    while source_hits().await == before {
        assert!(
            t.elapsed() < Duration::from_secs(45),
            "the push refreshed nothing\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = c
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("feedloom_websub_pushes_total{outcome=\"bad_signature\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("feedloom_websub_pushes_total{outcome=\"valid\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("feedloom_websub_subscriptions{state=\"active\"} 1"),
        "{metrics}"
    );
    // Unknown source: 404.
    let r = c
        .post(d.url("/websub/callback/nope"))
        .header("X-Hub-Signature", sign(&secret, b"x"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // A short lease is renewed before it ends, with the same secret.
    let r = verify(&topic, Some("4")).await.unwrap();
    assert_eq!(r.status(), 200);
    let t = Instant::now();
    loop {
        let subs = subscribes().await;
        if subs.len() >= 2 {
            assert_eq!(subs[1]["hub.secret"], secret);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "not renewed before the lease ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sighup_reloads_a_valid_config_and_keeps_the_old_one_otherwise() {
    let ws = shipped(&[]);
    let d = Daemon::start(&ws).await;
    let c = client();
    d.wait_for(&c, "/all.atom").await;
    let good = ws.read("config.toml");
    ws.write(
        "config.toml",
        &format!("{good}\n[[feed]]\nname = \"Bad Name\"\n"),
    );
    d.signal("HUP");
    let t = Instant::now();
    while !d.log().contains("config reload refused") {
        assert!(t.elapsed() < Duration::from_secs(45), "{}", d.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        c.get(d.url("/all.atom")).send().await.unwrap().status(),
        200
    );
    ws.write(
        "config.toml",
        &format!("{good}\n[[feed]]\nname = \"reloaded\"\ntitle = \"Reloaded\"\n"),
    );
    d.signal("HUP");
    d.wait_for(&c, "/reloaded.atom").await;
}

/// The HTML index from `feedloom serve` in headless Chromium: the latest items and the
/// subscribe links are in the rendered DOM, and a screenshot is taken. Skipped (with a
/// message) without Chromium, unless FEEDLOOM_REQUIRE_CHROMIUM=1 (CI sets it).
#[tokio::test]
async fn index_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    else {
        assert!(
            std::env::var("FEEDLOOM_REQUIRE_CHROMIUM").is_err(),
            "FEEDLOOM_REQUIRE_CHROMIUM is set but chromium is not installed"
        );
        eprintln!(
            "SKIPPED index_renders_in_headless_chromium: no chromium (apt-get install chromium)"
        );
        return;
    };
    let ws = shipped(&[]);
    let d = Daemon::start(&ws).await;
    let c = client();
    d.wait_for(&c, "/").await;
    let profile = tempfile::tempdir().unwrap();
    let shot = ws.path().join("index.png");
    let flags = |extra: &str| {
        let mut cmd = tokio::process::Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(extra)
        .arg(d.url("/"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
        cmd
    };
    let dom = tokio::time::timeout(Duration::from_secs(90), flags("--dump-dom").output())
        .await
        .expect("chromium finished")
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8(dom.stdout).unwrap();
    // What a reader looks for: the feeds, their subscribe links, the newest items.
    assert!(dom.contains("<h1>Feeds</h1>"), "{dom}");
    for f in ["all", "central-asia"] {
        for ext in ["rss", "atom", "json"] {
            assert!(
                dom.contains(&format!("/{f}.{ext}\"")),
                "subscribe link {f}.{ext}\n{dom}"
            );
        }
    }
    let atom = c
        .get(d.url("/all.atom"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let newest = atom
        .split("<entry")
        .nth(1)
        .and_then(|e| e.split("<title").nth(1))
        .and_then(|t| t.split('>').nth(1))
        .and_then(|t| t.split('<').next())
        .expect("the feed has an entry");
    assert!(
        dom.contains(newest),
        "newest item {newest:?} in the page\n{dom}"
    );
    assert!(dom.matches("class=\"item\"").count() >= 5, "items listed");
    let arg = format!("--screenshot={}", shot.display());
    let out = tokio::time::timeout(Duration::from_secs(90), flags(&arg).output())
        .await
        .expect("chromium finished")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Ok(dir) = std::env::var("FEEDLOOM_SCREENSHOT_DIR") {
        std::fs::copy(&shot, std::path::Path::new(&dir).join("index.png")).unwrap();
    }
}
