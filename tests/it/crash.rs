//! Crash safety: `kill -9` at random moments of a refresh, twenty times. After each: the
//! database passes SQLite's integrity check, every output file is a complete document, no stored
//! item is lost, and the next run completes.

use std::time::Duration;

use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{Workspace, bin, stderr};

const SOURCES: usize = 30;

fn feed(n: usize) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Source {n}</title>\
         <link>https://s{n}.example/</link><description>d</description>"
    );
    for i in 0..80 {
        s.push_str(&format!(
            "<item><guid>s{n}-{i}</guid><title>Story {i} of source {n}</title>\
             <link>https://s{n}.example/{i}</link><pubDate>Mon, 02 Jun 2025 {:02}:{:02}:00 GMT</pubDate>\
             <description>&lt;p&gt;Paragraph one of story {i}, long enough to look like news.&lt;/p&gt;\
             &lt;p&gt;Paragraph two, with a &lt;a href=\"/x?utm_source=rss\"&gt;link&lt;/a&gt;.&lt;/p&gt;</description></item>",
            i % 24,
            i % 60
        ));
    }
    s.push_str("</channel></rss>");
    s
}

fn whole_document(name: &str, bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    if name.ends_with(".json") {
        return serde_json::from_str::<serde_json::Value>(text)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    if name.ends_with(".html") {
        return text
            .trim_end()
            .ends_with("</html>")
            .then_some(())
            .ok_or_else(|| "index.html is cut".into());
    }
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0i64;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(_)) => depth += 1,
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    (depth == 0)
        .then_some(())
        .ok_or_else(|| format!("{name}: unclosed elements"))
}

fn stored_items(ws: &Workspace) -> i64 {
    let conn = rusqlite::Connection::open(ws.path().join("feedloom.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    conn.query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing() {
    let server = MockServer::start().await;
    Mock::given(path_regex(r"^/s\d+\.xml$"))
        .respond_with(|req: &Request| {
            let n: usize = req.url.path()[2..]
                .trim_end_matches(".xml")
                .parse()
                .unwrap();
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/rss+xml")
                .set_body_string(feed(n))
                .set_delay(Duration::from_millis(5 * (n as u64 % 7)))
        })
        .mount(&server)
        .await;
    let ws = Workspace::new();
    let mut config = String::from("[settings]\nallow_private_networks = true\nconcurrency = 4\n");
    for n in 0..SOURCES {
        config.push_str(&format!(
            "[[source]]\nname = \"s{n}\"\nurl = \"{}/s{n}.xml\"\n",
            server.uri()
        ));
    }
    config.push_str("[[feed]]\nname = \"all\"\ntitle = \"All\"\nlimit = 500\n");
    ws.write("config.toml", &config);

    // A fixed-seed generator: the same kill moments on every run of the test.
    let mut seed: u64 = 0x5eed_f00d;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut before = 0;
    for round in 0..20 {
        let mut child = tokio::process::Command::new(bin())
            .args(["refresh", "--force", "--config"])
            .arg(ws.config())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(next() % 900)).await;
        let _ = child.start_kill(); // SIGKILL
        let _ = child.wait().await;
        if ws.path().join("feedloom.db").exists() {
            let now = stored_items(&ws);
            assert!(
                now >= before,
                "round {round}: {before} items before, {now} after a kill"
            );
            before = now;
        }
        if ws.path().join("public").exists() {
            for (name, bytes) in ws.outputs() {
                assert!(
                    !name.starts_with(".feedloom-") || round < 20,
                    "temp files are swept"
                );
                if name.starts_with('.') {
                    continue;
                }
                whole_document(&name, &bytes)
                    .unwrap_or_else(|e| panic!("round {round}: {name}: {e}"));
            }
        }
    }
    let out = ws.run(&["refresh", "--force"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stored_items(&ws), (SOURCES * 80) as i64);
    let leftovers = ws.temp_files();
    assert!(
        leftovers.is_empty(),
        "temp files of killed runs are swept: {leftovers:?}"
    );
}

/// A full disk under the output folder: a clear error naming the file, the previous outputs
/// intact, and the next run completes once there is room. Needs a small tmpfs (root); skipped
/// with a message where mounting is not allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_previous_outputs() {
    let ws = Workspace::shipped();
    let mnt = ws.path().join("public");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let first = ws.run(&["refresh"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let before = ws.outputs();
    // Fill the disk.
    let filler = mnt.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).unwrap();
        // Big blocks, then pages: no page is left for a new file.
        for size in [64 * 1024, 4096, 1] {
            let block = vec![0u8; size];
            while f.write_all(&block).is_ok() {}
        }
        let _ = f.sync_all();
    }
    // A source changes, so outputs must be rewritten.
    let world = ws.path().join("feeds/world-news.xml");
    let text = std::fs::read_to_string(&world).unwrap();
    std::fs::write(
        &world,
        text.replace("Lawmakers approve", "Parliament approves"),
    )
    .unwrap();
    let full = ws.run(&["refresh", "--force"]).await;
    assert_eq!(full.status.code(), Some(1), "{}", stderr(&full));
    let err = stderr(&full);
    assert!(
        err.contains("No space left on device") && err.contains("all."),
        "{err}"
    );
    let after: Vec<_> = ws
        .outputs()
        .into_iter()
        .filter(|(n, _)| n != "filler")
        .collect();
    assert_eq!(after, before, "previous outputs intact, no temp files left");
    std::fs::remove_file(&filler).unwrap();
    let again = ws.run(&["refresh", "--force"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(ws.read("public/all.rss").contains("Parliament approves"));
}
