//! feedloom's one integration-test binary (`cargo test --test it`).
//!
//! Where new tests go:
//! - `cli_parse`: golden `parse --json` outputs; add `<case>.xml` (or `.json`) under
//!   `tests/fixtures/parse/formats/`, run `FEEDLOOM_BLESS=1 cargo test --test it cli_parse`,
//!   read the new `.expected.json` and commit both.
//! - `config`: `tests/fixtures/config/invalid-*.toml` with the exact `feedloom check` text in
//!   `invalid-*.expected.txt` (error messages are part of the interface).
//! - `normalize`: the summit article in every shape, no false removals, idempotence.
//! - `publish`: the HTML index, OPML export and import, `explain`.
//! - `crash`: kill -9 at random moments of a refresh; integrity, whole outputs, nothing lost.
//! - `hostile`: bombs, XXE, deep nesting, floods, OWASP XSS vectors in every output, extreme
//!   dates, GUID collisions.
//! - `hostile_http`: servers that bomb, drip, loop, lie about statuses or do not speak HTTP.
//! - `fulltext`: article pages (`tests/fixtures/fulltext/*.html`) → stories, with goldens
//!   (`*.expected.txt`, `FEEDLOOM_BLESS=1`); refreshes of `fulltext = true` sources against a
//!   local server (teaser in, story out, failures, refetching, caps).
//! - `ingest`: reading real-world feeds; each deliberate difference from feedparser is a test
//!   named `feedparser_differs_*` that says why.
//! - `politeness`: 410, Retry-After, backoff, redirects (permanent moves), interval hints (ttl,
//!   sy:*, max-age, Expires), per-host concurrency: several runs of the binary against a local server,
//!   judged by the requests the server received.
//! - `refresh`: whole runs of the real binary against a local HTTP server on 127.0.0.1.
//! - `serve`: `feedloom serve` over real HTTP: ETag/304, encodings, WebSub both ways,
//!   shutdown while republishing, healthz, SIGHUP, the index in headless Chromium.
//! - `cluster`: near-duplicate stories: the labelled pairs (precision/recall), whole runs that
//!   merge one story from several outlets (the 100,000-item timing is `cargo bench --bench cluster`).
//! - `conformance`: the shipped config's outputs judged by `../shared/conformance/`.
//! - `store_conformance`: the `Store` contract, one test written once and run on SQLite and on
//!   PostgreSQL (`FEEDLOOM_TEST_POSTGRES`); a new store method gets its test there.
//! - `multi_instance`: several `feedloom refresh` processes on one PostgreSQL database against a
//!   local nginx, judged by nginx's access log (leases, crash takeover, identical outputs).
//!
//! No test touches the internet.

mod cli_parse;
mod cluster;
mod config;
mod conformance;
mod crash;
mod fulltext;
#[path = "../../fuzz/harness.rs"]
mod fuzz_harness;
mod hostile;
mod hostile_http;
mod ingest;
#[cfg(feature = "postgres")]
mod multi_instance;
mod normalize;
#[cfg(feature = "postgres")]
mod pg;
mod politeness;
mod publish;
mod refresh;
mod serve;
#[cfg(feature = "postgres")]
mod store_conformance;
mod support;
