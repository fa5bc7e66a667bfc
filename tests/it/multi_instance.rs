//! Several `feedloom refresh` processes on one PostgreSQL database (issue 11), against 1,000
//! tiny feeds served by a local nginx whose access log tells exactly what was fetched.
//! Needs `FEEDLOOM_TEST_POSTGRES` and nginx; skipped without them unless
//! `FEEDLOOM_REQUIRE_POSTGRES=1` (CI).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::pg::TempDb;
use crate::support::{Workspace, bin, stderr};

const SOURCES: usize = 1_000;

/// nginx in the foreground (one process), serving `<dir>/www` on a free loopback port.
struct Nginx {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl Nginx {
    fn start(dir: &Path) -> Option<Nginx> {
        let exe = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let Some(exe) = exe else {
            assert!(
                std::env::var_os("FEEDLOOM_REQUIRE_POSTGRES").is_none(),
                "nginx is not installed (apt-get install nginx)"
            );
            eprintln!("skipped: nginx is not installed");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {d}/error.log;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {d}/access.log;\n\
             client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
             fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
             scgi_temp_path {d}/tmp/scgi;\n\
             types {{ application/rss+xml xml; }}\n\
             server {{ listen 127.0.0.1:{port}; root {d}/www; }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = std::process::Command::new(exe)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nginx {
            child,
            port,
            log: dir.join("access.log"),
        })
    }

    /// Requests per path so far.
    fn hits(&self) -> BTreeMap<String, usize> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = BTreeMap::new();
        for line in text.lines() {
            if let Some(path) = line
                .split("\"GET ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
            {
                *out.entry(path.to_string()).or_default() += 1;
            }
        }
        out
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 1,000 feeds of three items each, a config per instance (`c0.toml`…), each with its own
/// output folder, all on one database.
fn setup(ws: &Workspace, db: &str, port: u16, settings: &str) {
    let www = ws.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let mut sources = String::new();
    for n in 0..SOURCES {
        let items: String = (0..3)
            .map(|i| {
                format!(
                    "<item><title>Story {i} of feed {n}</title>\
                     <link>https://example.org/{n}/{i}</link><guid>https://example.org/{n}/{i}</guid>\
                     <pubDate>Mon, 02 Nov 2026 1{i}:00:00 +0000</pubDate></item>"
                )
            })
            .collect();
        std::fs::write(
            www.join(format!("s{n}.xml")),
            format!(
                "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Feed {n}</title>\
                 <link>https://example.org/{n}/</link>{items}</channel></rss>"
            ),
        )
        .unwrap();
        sources.push_str(&format!(
            "[[source]]\nname = \"s{n}\"\nurl = \"http://127.0.0.1:{port}/s{n}.xml\"\n\n"
        ));
    }
    for i in 0..3 {
        ws.write(
            &format!("c{i}.toml"),
            &format!(
                "[settings]\ndatabase = \"{db}\"\noutput_dir = \"public{i}\"\n\
                 allow_private_networks = true\nconcurrency = 8\n{settings}\n\n{sources}\
                 [[feed]]\nname = \"all\"\ntitle = \"All\"\nlimit = 100\n"
            ),
        );
    }
}

fn refresh(ws: &Workspace, config: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(bin());
    c.args(["refresh", "--report", "json", "--config"])
        .arg(ws.path().join(config))
        .env_remove("FEEDLOOM_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Names of the sources a run's report says it fetched.
fn fetched(o: &Output) -> BTreeSet<String> {
    assert!(o.status.success(), "refresh failed: {}", stderr(o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["outcome"] != "not_due")
        .map(|s| s["source"].as_str().unwrap().to_string())
        .collect()
}

/// Three instances at once; each source's fetches so far, and who fetched what.
async fn three_at_once(ws: &Workspace) -> Vec<BTreeSet<String>> {
    let runs: Vec<_> = (0..3)
        .map(|i| refresh(ws, &format!("c{i}.toml")).spawn().unwrap())
        .collect();
    let mut out = Vec::new();
    for r in runs {
        out.push(fetched(&r.wait_with_output().await.unwrap()));
    }
    out
}

fn every_source_fetched(hits: &BTreeMap<String, usize>, times: usize) {
    assert_eq!(hits.len(), SOURCES, "paths fetched");
    let wrong: Vec<_> = hits.iter().filter(|(_, n)| **n != times).collect();
    assert!(
        wrong.is_empty(),
        "fetched other than {times}×: {:?}",
        &wrong[..wrong.len().min(10)]
    );
}

/// The outputs in `dir` (the record of the last publish differs by instance: it hashes the
/// instance's config, whose `output_dir` differs).
fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != feedloom::pipeline::PUBLISHED_MARKER)
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Must show (issue 11): three runs started together share the due sources (all exit 0, each
/// source fetched exactly once per cycle, by the access log), over two cycles; any instance
/// publishes the same bytes.
#[tokio::test(flavor = "multi_thread")]
async fn three_refresh_runs_share_the_due_sources() {
    let Some(db) = TempDb::create("three_refresh_runs_share_the_due_sources").await else {
        return;
    };
    let ws = Workspace::new();
    let Some(nginx) = Nginx::start(ws.path()) else {
        return;
    };
    let interval = Duration::from_secs(8);
    setup(
        &ws,
        &db.url,
        nginx.port,
        "per_host_concurrency = 8\ndefault_interval = \"8s\"",
    );
    for cycle in 1..=2 {
        let started = Instant::now();
        let by = three_at_once(&ws).await;
        let took = started.elapsed();
        every_source_fetched(&nginx.hits(), cycle);
        let sizes: Vec<usize> = by.iter().map(|s| s.len()).collect();
        eprintln!("cycle {cycle}: {took:?}; sources fetched per instance {sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), SOURCES);
        if cycle == 1 {
            // A source is due `interval` after the start of the run that fetched it: some time
            // into the cycle (processes start up first), at the latest at its end.
            tokio::time::sleep(interval).await;
        }
    }
    // Each instance renders the stored state into its own folder: the same bytes.
    for i in 0..3 {
        let o = tokio::process::Command::new(bin())
            .arg("publish")
            .arg("--config")
            .arg(ws.path().join(format!("c{i}.toml")))
            .output()
            .await
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let outputs: Vec<_> = (0..3)
        .map(|i| read_dir(&ws.path().join(format!("public{i}"))))
        .collect();
    assert!(outputs[0].contains_key("all.rss") && outputs[0].len() >= 5);
    assert!(outputs[0] == outputs[1] && outputs[1] == outputs[2]);
    drop(nginx);
    db.drop_db().await;
}

/// Must show (issue 11): an instance killed mid-run loses nothing: what it stored stays, the
/// sources it held are left alone by the others until its lease runs out, and the next run
/// after that fetches exactly the ones it never recorded.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_instance_loses_nothing_and_its_sources_are_fetched_after_the_lease() {
    let Some(db) = TempDb::create("killed_instance").await else {
        return;
    };
    let ws = Workspace::new();
    let Some(nginx) = Nginx::start(ws.path()) else {
        return;
    };
    setup(
        &ws,
        &db.url,
        nginx.port,
        "per_host_concurrency = 100\nlease = \"2s\"",
    );
    // Migrated before the instances start, so the lease table can be watched at once.
    feedloom::store::AnyStore::open(&db.url, 1).await.unwrap();
    let client = db.client().await;
    let mut runs: Vec<_> = (0..3)
        .map(|i| refresh(&ws, &format!("c{i}.toml")).spawn().unwrap())
        .collect();
    let victim = runs.remove(0);
    let pid = victim.id().unwrap();
    let holds = format!("{pid}-%");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no progress");
        let held: i64 = client
            .query_one(
                "SELECT count(*) FROM sources WHERE lease_owner LIKE $1",
                &[&holds],
            )
            .await
            .unwrap()
            .get(0);
        if held > 0 && nginx.hits().len() >= SOURCES / 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut victim = victim;
    victim.start_kill().unwrap();
    victim.wait().await.unwrap();
    let killed = Instant::now();
    let held: BTreeSet<String> = client
        .query(
            "SELECT name FROM sources WHERE lease_owner LIKE $1",
            &[&holds],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut by_others = BTreeSet::new();
    for r in runs {
        by_others.extend(fetched(&r.wait_with_output().await.unwrap()));
    }
    let recorded: BTreeSet<String> = client
        .query("SELECT name FROM sources WHERE state IS NOT NULL", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: BTreeSet<String> = (0..SOURCES)
        .map(|n| format!("s{n}"))
        .filter(|n| !recorded.contains(n))
        .collect();
    assert!(!held.is_empty(), "the killed instance held no lease");
    assert!(
        missing.is_subset(&held),
        "only the killed instance's sources may be missing: {missing:?} vs held {held:?}"
    );
    assert!(
        held.is_disjoint(&by_others),
        "the others took leased sources"
    );
    // After the lease: a run fetches exactly what the killed instance never recorded.
    tokio::time::sleep(Duration::from_millis(2_500).saturating_sub(killed.elapsed())).await;
    let after = fetched(&refresh(&ws, "c1.toml").output().await.unwrap());
    assert_eq!(after, missing);
    let hits = nginx.hits();
    assert_eq!(hits.len(), SOURCES, "every source fetched");
    let twice: BTreeSet<String> = hits
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(p, _)| {
            p.trim_start_matches('/')
                .trim_end_matches(".xml")
                .to_string()
        })
        .collect();
    assert!(
        twice.is_subset(&held),
        "only sources in flight at the kill may be fetched twice: {twice:?}"
    );
    let row = client
        .query_one("SELECT count(DISTINCT source), count(*) FROM items", &[])
        .await
        .unwrap();
    let (sources, items): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((sources, items), (SOURCES as i64, 3 * SOURCES as i64));
    eprintln!(
        "killed instance held {} sources ({} unrecorded, fetched after the lease); {} fetched twice",
        held.len(),
        missing.len(),
        twice.len()
    );
    drop(nginx);
    db.drop_db().await;
}
