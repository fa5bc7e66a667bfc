//! The floor of a refresh, for `bench/run.sh`: what fetching every source and reading every byte
//! of XML costs on this machine with the crates feedloom itself uses (reqwest, tokio, quick-xml,
//! encoding_rs), with none of feedloom's work (no normalising, no store, no publish).
//!
//! ```text
//! cargo run --release --example floor -- URLS_FILE [ETAGS_FILE] [CONCURRENCY]
//! ```
//!
//! GETs every URL in URLS_FILE (one a line) over a keep-alive pool, CONCURRENCY (default 32) at
//! once. With ETAGS_FILE, sends the `If-None-Match` stored there for each URL (when the file
//! exists) and writes the ETags of this run back, so a second run gets 304s. Every 200 body is
//! decoded to UTF-8 (the encoding in its XML declaration) and scanned with quick-xml's event
//! reader (text unescaped, elements counted) on the blocking pool while other fetches go on.
//! Prints one line: requests, 200s, 304s, bytes, elements, and the wall time.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use quick_xml::Reader;
use quick_xml::events::Event;
use tokio::sync::Semaphore;

/// Counts elements and text bytes of one document.
fn scan(body: &[u8]) -> (u64, u64) {
    let head = &body[..body.len().min(200)];
    let label = std::str::from_utf8(head)
        .ok()
        .and_then(|h| h.split("encoding=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("utf-8");
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap_or(encoding_rs::UTF_8);
    let (text, _, _) = encoding.decode(body);
    let mut reader = Reader::from_str(&text);
    let (mut elements, mut text_bytes) = (0u64, 0u64);
    loop {
        match reader.read_event() {
            Ok(Event::Start(_) | Event::Empty(_)) => elements += 1,
            Ok(Event::Text(t)) => {
                text_bytes += t.decode().map(|s| s.len() as u64).unwrap_or(0);
            }
            Ok(Event::CData(c)) => text_bytes += c.len() as u64,
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    (elements, text_bytes)
}

#[derive(Default)]
struct Totals {
    requests: u64,
    ok: u64,
    not_modified: u64,
    failed: u64,
    bytes: u64,
    elements: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(urls_file) = args.first() else {
        anyhow::bail!("usage: floor URLS_FILE [ETAGS_FILE] [CONCURRENCY]");
    };
    let etags_file = args.get(1).filter(|s| !s.is_empty());
    let concurrency: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let urls: Vec<String> = std::fs::read_to_string(urls_file)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let stored: HashMap<String, String> = etags_file
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|s| {
            s.lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(u, e)| (u.to_string(), e.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let stored = Arc::new(stored);
    // reqwest is built with rustls and no default provider (as in src/fetch/http.rs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(urls.len());
    for url in urls {
        let (client, gate, stored) = (client.clone(), gate.clone(), stored.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            let mut req = client.get(&url);
            if let Some(etag) = stored.get(&url) {
                req = req.header("If-None-Match", etag);
            }
            let resp = req.send().await.ok()?;
            let status = resp.status().as_u16();
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp.bytes().await.ok()?;
            let len = body.len() as u64;
            let elements = if status == 200 {
                tokio::task::spawn_blocking(move || scan(&body).0)
                    .await
                    .ok()?
            } else {
                0
            };
            Some((url, status, etag, len, elements))
        }));
    }
    let mut totals = Totals::default();
    let mut etags = Vec::new();
    for task in tasks {
        totals.requests += 1;
        match task.await? {
            Some((url, status, etag, len, elements)) => {
                match status {
                    200 => totals.ok += 1,
                    304 => totals.not_modified += 1,
                    _ => totals.failed += 1,
                }
                totals.bytes += len;
                totals.elements += elements;
                let etag = etag.or_else(|| stored.get(&url).cloned());
                if let Some(e) = etag {
                    etags.push(format!("{url}\t{e}\n"));
                }
            }
            None => totals.failed += 1,
        }
    }
    let wall = started.elapsed();
    if let Some(f) = etags_file {
        std::fs::write(f, etags.concat())?;
    }
    println!(
        "floor: {} requests, {} x 200, {} x 304, {} failed, {} bytes, {} elements, {:.3} s",
        totals.requests,
        totals.ok,
        totals.not_modified,
        totals.failed,
        totals.bytes,
        totals.elements,
        wall.as_secs_f64()
    );
    if totals.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
