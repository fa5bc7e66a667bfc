//! Counters for `/metrics`, rendered in the Prometheus text format (0.0.4). Every name starts
//! with `feedloom_`. Request counters are atomics (they are bumped on every request); the rest
//! change once per refresh and sit behind a mutex.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Status codes counted separately for `feedloom_http_requests_total`; anything else is "other".
const CODES: [u16; 6] = [200, 304, 404, 405, 503, 202];

/// Upper bounds (seconds) of the refresh duration histogram.
const BUCKETS: [f64; 9] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; CODES.len() + 1],
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (outcome, status) → fetches.
    fetches: BTreeMap<(String, String), u64>,
    new_items: u64,
    updated_items: u64,
    parse_errors: u64,
    refresh_buckets: [u64; BUCKETS.len()],
    refresh_sum: f64,
    refresh_count: u64,
    failing_sources: u64,
    sources: u64,
    files_written: u64,
    publish_failures: u64,
    last_good_refresh: Option<i64>,
    websub_pings: BTreeMap<String, u64>,
    websub_pushes: BTreeMap<String, u64>,
    websub_subscriptions: BTreeMap<String, u64>,
}

/// What one source's refresh adds to the metrics.
pub struct FetchSample<'a> {
    pub outcome: &'a str,
    /// The HTTP status, when one came.
    pub status: Option<u16>,
    pub new: usize,
    pub updated: usize,
    pub parse_error: bool,
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, code: u16) {
        let i = CODES.iter().position(|c| *c == code).unwrap_or(CODES.len());
        self.requests[i].fetch_add(1, Ordering::Relaxed);
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic while holding the lock leaves counters, never broken invariants: go on.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub fn fetch(&self, s: &FetchSample<'_>) {
        self.with(|m| {
            let status = s
                .status
                .map_or_else(|| "none".to_string(), |c| c.to_string());
            *m.fetches
                .entry((s.outcome.to_string(), status))
                .or_default() += 1;
            m.new_items += s.new as u64;
            m.updated_items += s.updated as u64;
            m.parse_errors += u64::from(s.parse_error);
        });
    }

    pub fn refresh_run(&self, seconds: f64) {
        self.with(|m| {
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    m.refresh_buckets[i] += 1;
                }
            }
            m.refresh_sum += seconds;
            m.refresh_count += 1;
        });
    }

    pub fn sources(&self, total: usize, failing: usize) {
        self.with(|m| {
            m.sources = total as u64;
            m.failing_sources = failing as u64;
        });
    }

    pub fn published(&self, written: usize, failed: usize) {
        self.with(|m| {
            m.files_written += written as u64;
            m.publish_failures += failed as u64;
        });
    }

    pub fn good_refresh(&self, unix: i64) {
        self.with(|m| m.last_good_refresh = Some(unix));
    }

    pub fn websub_ping(&self, outcome: &str) {
        self.with(|m| *m.websub_pings.entry(outcome.into()).or_default() += 1);
    }

    pub fn websub_push(&self, outcome: &str) {
        self.with(|m| *m.websub_pushes.entry(outcome.into()).or_default() += 1);
    }

    pub fn websub_subscriptions(&self, by_state: BTreeMap<String, u64>) {
        self.with(|m| m.websub_subscriptions = by_state);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(4096);
        let head = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut o,
            "feedloom_http_requests_total",
            "counter",
            "HTTP requests answered, by status code.",
        );
        for (i, n) in self.requests.iter().enumerate() {
            let code = CODES
                .get(i)
                .map_or_else(|| "other".into(), |c| c.to_string());
            let _ = writeln!(
                o,
                "feedloom_http_requests_total{{code=\"{code}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        self.with(|m| {
            head(
                &mut o,
                "feedloom_fetches_total",
                "counter",
                "Source refreshes, by outcome and HTTP status.",
            );
            for ((outcome, status), n) in &m.fetches {
                let _ = writeln!(
                    o,
                    "feedloom_fetches_total{{outcome=\"{outcome}\",status=\"{status}\"}} {n}"
                );
            }
            let single = |o: &mut String, name: &str, kind: &str, help: &str, v: String| {
                head(o, name, kind, help);
                let _ = writeln!(o, "{name} {v}");
            };
            single(
                &mut o,
                "feedloom_new_items_total",
                "counter",
                "Items stored for the first time.",
                m.new_items.to_string(),
            );
            single(
                &mut o,
                "feedloom_updated_items_total",
                "counter",
                "Stored items that changed.",
                m.updated_items.to_string(),
            );
            single(
                &mut o,
                "feedloom_parse_errors_total",
                "counter",
                "Fetched documents that could not be parsed.",
                m.parse_errors.to_string(),
            );
            single(
                &mut o,
                "feedloom_sources",
                "gauge",
                "Configured sources.",
                m.sources.to_string(),
            );
            single(
                &mut o,
                "feedloom_failing_sources",
                "gauge",
                "Sources whose last refresh failed.",
                m.failing_sources.to_string(),
            );
            single(
                &mut o,
                "feedloom_files_written_total",
                "counter",
                "Output files rewritten because their bytes changed.",
                m.files_written.to_string(),
            );
            single(
                &mut o,
                "feedloom_publish_failures_total",
                "counter",
                "Output files that could not be rendered or written.",
                m.publish_failures.to_string(),
            );
            single(
                &mut o,
                "feedloom_last_good_refresh_timestamp_seconds",
                "gauge",
                "Unix time of the last good refresh (0: none yet).",
                m.last_good_refresh.unwrap_or(0).to_string(),
            );
            head(
                &mut o,
                "feedloom_refresh_duration_seconds",
                "histogram",
                "Duration of one scheduler run (refresh and publish).",
            );
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "feedloom_refresh_duration_seconds_bucket{{le=\"{b}\"}} {}",
                    m.refresh_buckets[i]
                );
            }
            let _ = writeln!(
                o,
                "feedloom_refresh_duration_seconds_bucket{{le=\"+Inf\"}} {c}\n\
                 feedloom_refresh_duration_seconds_sum {s}\n\
                 feedloom_refresh_duration_seconds_count {c}",
                c = m.refresh_count,
                s = m.refresh_sum
            );
            for (name, help, map) in [
                (
                    "feedloom_websub_pings_total",
                    "Publish notifications sent to hubs, by outcome.",
                    &m.websub_pings,
                ),
                (
                    "feedloom_websub_pushes_total",
                    "Content distribution requests received, by outcome.",
                    &m.websub_pushes,
                ),
            ] {
                head(&mut o, name, "counter", help);
                for (outcome, n) in map {
                    let _ = writeln!(o, "{name}{{outcome=\"{outcome}\"}} {n}");
                }
            }
            head(
                &mut o,
                "feedloom_websub_subscriptions",
                "gauge",
                "Subscriptions to sources' hubs, by state.",
            );
            for (state, n) in &m.websub_subscriptions {
                let _ = writeln!(o, "feedloom_websub_subscriptions{{state=\"{state}\"}} {n}");
            }
        });
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_prefixed() {
        let m = Metrics::default();
        m.request(200);
        m.request(418);
        m.fetch(&FetchSample {
            outcome: "fetched",
            status: Some(200),
            new: 3,
            updated: 0,
            parse_error: false,
        });
        m.refresh_run(0.3);
        m.websub_ping("ok");
        let text = m.render();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("feedloom_"), "{line}");
        }
        assert!(text.contains("feedloom_http_requests_total{code=\"other\"} 1"));
        assert!(text.contains("feedloom_fetches_total{outcome=\"fetched\",status=\"200\"} 1"));
        assert!(text.contains("feedloom_new_items_total 3"));
        assert!(text.contains("feedloom_refresh_duration_seconds_bucket{le=\"0.5\"} 1"));
    }
}
