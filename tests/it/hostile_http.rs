//! Hostile servers: decompression bombs, drip-fed bodies, redirect loops and tricks, odd
//! statuses and replies that are not HTTP. Whole runs of the binary against local servers;
//! none may crash, hang, or lose what is stored.

use std::io::Write;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Workspace, stderr};

const RSS: &str = "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>T</title>\
    <link>https://h.example/</link><description>d</description>\
    <item><guid>keep-me</guid><title>Stored story</title><link>https://h.example/1</link></item>\
    </channel></rss>";

fn config(url: &str, extra: &str) -> String {
    format!(
        "[settings]\nallow_private_networks = true\nfetch_timeout = \"2s\"\n{extra}\n\
         [[source]]\nname = \"h\"\nurl = \"{url}\"\n[[feed]]\nname = \"all\"\ntitle = \"All\"\n"
    )
}

/// A raw TCP server on 127.0.0.1 that answers every connection with `reply`, `step` at a time.
async fn raw_server(reply: &'static [u8], step: usize, pause: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                for chunk in reply.chunks(step.max(1)) {
                    if sock.write_all(chunk).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_stops_at_the_cap() {
    let server = MockServer::start().await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "64 MiB in {} bytes", bomb.len());
    Mock::given(path("/bomb.xml"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_bytes(bomb),
        )
        .mount(&server)
        .await;
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &config(
            &format!("{}/bomb.xml", server.uri()),
            "max_body_bytes = 1048576",
        ),
    );
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("exceeds 1048576 bytes"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drip_fed_body_times_out() {
    static DRIP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000\r\n\r\n<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>slow</title>";
    let url = raw_server(DRIP, 1, Duration::from_millis(100)).await;
    let ws = Workspace::new();
    ws.write("config.toml", &config(&format!("{url}/drip.xml"), ""));
    let started = Instant::now();
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no answer within 2 s"),
        "{}",
        stderr(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_that_are_not_http_fail_cleanly() {
    let url = raw_server(
        b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02garbage",
        64,
        Duration::ZERO,
    )
    .await;
    let ws = Workspace::new();
    ws.write("config.toml", &config(&format!("{url}/x.xml"), ""));
    let out = ws.run(&["refresh"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("source h:"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_loops_and_file_urls_are_refused() {
    let server = MockServer::start().await;
    Mock::given(path("/a"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/b"))
        .mount(&server)
        .await;
    Mock::given(path("/b"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/a"))
        .mount(&server)
        .await;
    Mock::given(path("/file"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", "file:///etc/passwd"))
        .mount(&server)
        .await;
    for (p, want) in [("/a", "redirect"), ("/file", "file")] {
        let ws = Workspace::new();
        ws.write("config.toml", &config(&format!("{}{p}", server.uri()), ""));
        let out = ws.run(&["refresh"]).await;
        assert_eq!(out.status.code(), Some(1), "{p}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{p}: {}", stderr(&out));
        assert!(
            !std::fs::read_to_string(ws.path().join("public/all.json"))
                .unwrap_or_default()
                .contains("root:")
        );
    }
    let hops = server.received_requests().await.unwrap().len();
    assert!(hops < 20, "the loop was cut short: {hops} requests");
}

/// Odd statuses after a good fetch: stored items stay published through all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_statuses_never_lose_stored_items() {
    let server = MockServer::start().await;
    Mock::given(path("/f.xml"))
        .respond_with(ResponseTemplate::new(200).set_body_string(RSS))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let ws = Workspace::new();
    ws.write(
        "config.toml",
        &config(&format!("{}/f.xml", server.uri()), ""),
    );
    assert_eq!(ws.run(&["refresh"]).await.status.code(), Some(0));
    let replies = [
        ResponseTemplate::new(204),
        ResponseTemplate::new(304),
        ResponseTemplate::new(429).insert_header("retry-after", "soon, maybe"),
        ResponseTemplate::new(503).insert_header("retry-after", "-5"),
        ResponseTemplate::new(500).set_body_string("<html>oops</html>"),
        ResponseTemplate::new(200).set_body_string(""),
        ResponseTemplate::new(200).set_body_string("<rss version=\"2.0\"><channel><title>half"),
    ];
    for reply in replies {
        server.reset().await;
        Mock::given(path("/f.xml"))
            .respond_with(reply)
            .mount(&server)
            .await;
        let out = ws.run(&["refresh", "--force"]).await;
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
        let json = ws.read("public/all.json");
        assert!(
            json.contains("Stored story"),
            "still published after {}",
            stderr(&out)
        );
    }
}
