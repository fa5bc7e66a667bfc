//! The daemon loop of `feedloom serve`: on every tick it runs the same pipeline functions as
//! `feedloom refresh` (`pipeline::refresh` without force fetches only the due sources; the due
//! logic, backoff and Retry-After live there), republishes when something was fetched, swaps
//! the in-memory site when outputs changed, pings WebSub hubs for changed feeds and keeps the
//! subscriptions to sources' hubs alive.
//!
//! Shutdown: the loop stops scheduling at once; a refresh in flight gets [`SHUTDOWN_GRACE`] to
//! finish (cut after that: each source's store write is one transaction, so nothing is half
//! stored), a publish in flight always finishes (files are replaced by rename, never written in
//! place). Reload: a new config replaces the old one only when it validates.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use url::Url;

use crate::config::{Config, Location, Settings};
use crate::fetch::{FetchOutcome, Fetcher, Validators};
use crate::normalize::language::Detector;
use crate::pipeline::{self, Ctx, Outcome, SourceReport};
use crate::serve::metrics::FetchSample;
use crate::serve::websub::{self, State as SubState};
use crate::serve::{Live, Shared, Site};
use crate::store::Store;

/// How long a refresh in flight may go on after SIGTERM before it is cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The longest pause between two ticks.
const MAX_TICK: Duration = Duration::from_secs(30);

/// `/healthz` turns 503 when the last good refresh is older than this.
pub fn health_max_age(s: &Settings) -> Duration {
    s.health_max_age
        .unwrap_or_else(|| s.default_interval.saturating_mul(3))
}

/// The HTTP side's per-request settings for a config.
pub fn live(s: &Settings) -> Live {
    Live::new(s.default_interval, health_max_age(s))
}

pub struct Daemon<S> {
    ctx: Arc<Ctx<S>>,
    shared: Arc<Shared>,
    config_path: PathBuf,
    /// For WebSub: pings and subscription requests.
    client: reqwest::Client,
    /// The current config's context, for the WebSub subscription task.
    current: watch::Sender<Arc<Ctx<S>>>,
    last_publish: Option<Instant>,
}

impl<S: Store + Clone + 'static> Daemon<S> {
    pub fn new(
        ctx: Arc<Ctx<S>>,
        shared: Arc<Shared>,
        config_path: PathBuf,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(ctx.config.settings.user_agent.clone())
            .timeout(Duration::from_secs(10))
            .build()?;
        let (current, _) = watch::channel(ctx.clone());
        Ok(Daemon {
            ctx,
            shared,
            config_path,
            client,
            current,
            last_publish: None,
        })
    }

    /// Pause between ticks: the shortest source interval, at most 30 s, at least 1 s, with
    /// ±10 % jitter so several daemons (or restarts) do not fall into step.
    fn tick_len(&self) -> Duration {
        let c = &self.ctx.config;
        let shortest = c
            .sources
            .iter()
            .map(|s| s.interval)
            .chain([c.settings.default_interval, MAX_TICK])
            .min()
            .unwrap_or(MAX_TICK)
            .max(Duration::from_secs(1));
        let seed = xxhash_rust::xxh3::xxh3_64(
            &Utc::now().timestamp_nanos_opt().unwrap_or(0).to_le_bytes(),
        );
        let permille = (seed % 201) as f64 - 100.0;
        shortest.mul_f64(1.0 + permille / 1000.0)
    }

    /// Runs until `shutdown` turns true. SIGHUP arrives as `reload`, valid pushes as `pushes`.
    pub async fn run(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        mut reload: mpsc::UnboundedReceiver<()>,
        mut pushes: mpsc::UnboundedReceiver<String>,
    ) {
        let mut publish_needed = true;
        let mut next = tokio::time::Instant::now();
        let subscriptions = tokio::spawn(subscriptions(
            self.current.subscribe(),
            self.shared.clone(),
            self.client.clone(),
            shutdown.clone(),
        ));
        loop {
            if *shutdown.borrow() {
                break;
            }
            let mut only: Vec<String> = Vec::new();
            tokio::select! {
                biased;
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() { break; }
                    continue;
                }
                Some(()) = reload.recv() => {
                    if self.reload() {
                        publish_needed = true;
                        next = tokio::time::Instant::now();
                    }
                    continue;
                }
                Some(name) = pushes.recv() => {
                    only.push(name);
                    while let Ok(n) = pushes.try_recv() {
                        if !only.contains(&n) { only.push(n); }
                    }
                    // A source removed by a reload meanwhile is not refreshed.
                    only.retain(|n| self.ctx.config.source(n).is_some());
                    if only.is_empty() { continue; }
                }
                _ = tokio::time::sleep_until(next) => {}
            }
            let forced = !only.is_empty();
            let stopped = self
                .tick(&only, forced, &mut publish_needed, shutdown.clone())
                .await;
            if stopped {
                break;
            }
            if !forced {
                next = tokio::time::Instant::now() + self.tick_len();
            }
        }
        // Subscription requests are not writes: stop them now.
        subscriptions.abort();
        info!("scheduler stopped");
    }

    /// One run: refresh (the due sources, or `only` forced), publish when needed, swap the
    /// site, ping hubs. Returns true when a shutdown cut the refresh short.
    async fn tick(
        &mut self,
        only: &[String],
        force: bool,
        publish_needed: &mut bool,
        mut shutdown: watch::Receiver<bool>,
    ) -> bool {
        let clock = Instant::now();
        let now = Utc::now();
        let ctx = self.ctx.clone();
        let quiet = |_: &SourceReport| {};
        let refresh = pipeline::refresh(ctx.clone(), only, force, now, &quiet);
        let grace = async {
            let _ = shutdown.wait_for(|stop| *stop).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let reports = tokio::select! {
            r = refresh => r,
            () = grace => {
                warn!(grace_s = SHUTDOWN_GRACE.as_secs(),
                      "shutdown: the refresh in flight was cut short; stored state is consistent");
                return true;
            }
        };
        let reports = match reports {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "refresh failed: the store is unusable");
                self.shared
                    .metrics
                    .refresh_run(clock.elapsed().as_secs_f64());
                return false;
            }
        };
        self.record(&reports).await;
        let fetched = reports.iter().any(|r| r.outcome == Outcome::Fetched);
        let interval = ctx.config.settings.default_interval;
        let stale = self.last_publish.is_none_or(|t| t.elapsed() >= interval);
        let mut publish_ok = true;
        if fetched || *publish_needed || stale {
            // Never cut: the files are replaced by rename, and a publish takes moments.
            if let Err(e) = pipeline::prune(&ctx, now).await {
                warn!(error = %e, "prune failed");
            }
            match pipeline::publish_all(&ctx, now, false).await {
                Ok(report) => {
                    *publish_needed = false;
                    self.last_publish = Some(Instant::now());
                    publish_ok = report.failed.is_empty();
                    self.shared
                        .metrics
                        .published(report.written.len(), report.failed.len());
                    if !report.written.is_empty() {
                        self.swap_site().await;
                        self.ping(&report.written).await;
                    }
                }
                Err(e) => {
                    error!(error = %e, "publish failed: the store is unusable");
                    publish_ok = false;
                }
            }
        }
        // Good: some source answered (new items or "not modified") and the outputs are
        // written. A tick where nothing was due is not a refresh: a source stuck in backoff
        // must not keep the daemon "healthy". One failing source among working ones does not
        // make it unhealthy either (`feedloom_failing_sources` shows it).
        let any_ok = reports
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Fetched | Outcome::NotModified));
        if publish_ok && (any_ok || ctx.config.sources.is_empty()) {
            self.shared.good_refresh();
        }
        self.shared
            .metrics
            .refresh_run(clock.elapsed().as_secs_f64());
        false
    }

    /// Metrics from a run's reports (the HTTP status comes from the stored source state).
    async fn record(&self, reports: &[SourceReport]) {
        let mut failing = 0;
        let mut states = self.ctx.store.source_states().await.unwrap_or_default();
        for s in &self.ctx.config.sources {
            let state = states.remove(&s.name);
            if state.as_ref().is_some_and(|st| st.error_count > 0) {
                failing += 1;
            }
            let Some(r) = reports.iter().find(|r| r.source == s.name) else {
                continue;
            };
            if r.outcome == Outcome::NotDue {
                continue;
            }
            let outcome = match r.outcome {
                Outcome::Fetched => "fetched",
                Outcome::NotModified => "not_modified",
                _ => "failed",
            };
            self.shared.metrics.fetch(&FetchSample {
                outcome,
                status: state.and_then(|st| st.last_status),
                new: r.counts.new,
                updated: r.counts.updated,
                // pipeline's SourceError::Parse is displayed as "parse <location>: ...".
                parse_error: r.error.as_deref().is_some_and(|e| e.starts_with("parse ")),
            });
        }
        self.shared
            .metrics
            .sources(self.ctx.config.sources.len(), failing);
    }

    /// Reads the output folder again and swaps it in (unchanged files keep their entries).
    async fn swap_site(&self) {
        let dir = self.ctx.config.settings.output_dir.clone();
        let old = self.shared.site.load_full();
        match tokio::task::spawn_blocking(move || Site::load(&dir, &old)).await {
            Ok(Ok(site)) => self.shared.site.store(Arc::new(site)),
            Ok(Err(e)) => {
                error!(error = %e, "cannot read the output folder; still serving the old files")
            }
            Err(e) => error!(error = %e, "loading the output folder failed"),
        }
    }

    /// WebSub: tells the configured hubs which feeds changed (archive pages are not topics).
    async fn ping(&self, written: &[String]) {
        let settings = &self.ctx.config.settings;
        if settings.websub_hubs.is_empty() {
            return;
        }
        let feeds: Vec<String> = written
            .iter()
            .filter_map(|p| std::path::Path::new(p).file_name()?.to_str())
            .filter(|n| {
                !n.contains("-archive-")
                    && [".rss", ".atom", ".json"].iter().any(|e| n.ends_with(e))
            })
            .filter_map(|n| settings.base_url.join(n).ok().map(|u| u.to_string()))
            .collect();
        if !feeds.is_empty() {
            websub::ping(
                &self.client,
                &settings.websub_hubs,
                &feeds,
                &self.shared.metrics,
            )
            .await;
        }
    }

    /// SIGHUP: loads the config again. A bad config is logged and the old one kept. Returns
    /// true when the new config took effect.
    fn reload(&mut self) -> bool {
        let mut config = match Config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                error!("config reload refused; keeping the running config:\n{e}");
                return false;
            }
        };
        let old = &self.ctx.config.settings;
        let new = &mut config.settings;
        if new.database != old.database {
            warn!("config reload: `database` changes need a restart; kept the old one");
            new.database = old.database.clone();
        }
        if new.output_dir != old.output_dir {
            warn!("config reload: `output_dir` changes need a restart; kept the old one");
            new.output_dir = old.output_dir.clone();
        }
        if new.listen != old.listen {
            warn!("config reload: `listen` changes need a restart; kept the old one");
            new.listen = old.listen;
        }
        let fetcher = match Fetcher::new(new) {
            Ok(f) => f,
            Err(e) => {
                error!(error = %e, "config reload refused: cannot build the HTTP client");
                return false;
            }
        };
        self.shared.live.store(Arc::new(live(new)));
        let detector = Arc::new(Detector::new(&new.languages));
        self.ctx = Arc::new(Ctx {
            config: Arc::new(config),
            store: self.ctx.store.clone(),
            fetcher,
            detector,
        });
        self.current.send_replace(self.ctx.clone());
        info!(
            sources = self.ctx.config.sources.len(),
            feeds = self.ctx.config.feeds.len(),
            "config reloaded"
        );
        true
    }
}

/// The WebSub subscription task: twice a second, a pass over the subscriptions that need work
/// (nothing to do is an in-memory check), with the config current at the time.
async fn subscriptions<S: Store>(
    current: watch::Receiver<Arc<Ctx<S>>>,
    shared: Arc<Shared>,
    client: reqwest::Client,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let ctx = current.borrow().clone();
        maintain(&ctx, &shared, &client).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One pass over the http(s) sources' subscriptions: discover the hub of sources not looked at
/// yet, subscribe, renew leases before they end, retry failures later.
async fn maintain<S: Store>(ctx: &Ctx<S>, shared: &Shared, client: &reqwest::Client) {
    let settings = &ctx.config.settings;
    let Some(callback) = settings.websub_callback.clone() else {
        return;
    };
    let http: Vec<(String, Url)> = ctx
        .config
        .sources
        .iter()
        .filter_map(|s| match &s.location {
            Location::Http(u) => Some((s.name.clone(), u.clone())),
            Location::File(_) => None,
        })
        .collect();
    let names: Vec<String> = http.iter().map(|(n, _)| n.clone()).collect();
    let subs = &shared.subscriber;
    for name in subs.due(&names, Instant::now()) {
        let Some((_, url)) = http.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        // The hub is advertised in the document; fetched unconditionally (once per lease).
        let body = match ctx
            .fetcher
            .fetch(&Location::Http(url.clone()), &Validators::default())
            .await
        {
            Ok(FetchOutcome::Modified(f)) => f.body,
            Ok(FetchOutcome::NotModified { .. }) => {
                subs.set_state(&name, SubState::Failed, Instant::now());
                continue;
            }
            Err(e) => {
                warn!(source = %name, error = %e, "websub: cannot read the source to find its hub");
                subs.set_state(&name, SubState::Failed, Instant::now());
                continue;
            }
        };
        let found = websub::discover(&body);
        let Some(hub) = found.hub else {
            subs.set_state(&name, SubState::NoHub, Instant::now());
            continue;
        };
        if !hub_allowed(&hub, settings.allow_private_networks).await {
            warn!(source = %name, hub = %hub,
                  "websub: the hub is on a private or loopback address; not subscribing \
                   (set settings.allow_private_networks = true to allow it)");
            subs.set_state(&name, SubState::Failed, Instant::now());
            continue;
        }
        let topic = found.topic.unwrap_or_else(|| url.clone()).to_string();
        let callback_url = format!("{}/{name}", callback.as_str().trim_end_matches('/'));
        // Recorded before the request: the hub may verify before its answer reaches us.
        let Some(secret) = subs.request(&name, hub.clone(), topic.clone(), Instant::now()) else {
            error!("websub: the OS gave no random bytes for a secret");
            return;
        };
        match websub::subscribe(client, &hub, &topic, &callback_url, &secret).await {
            Ok(()) => {
                info!(source = %name, hub = %hub, topic = %topic, "websub: subscription requested")
            }
            Err(e) => {
                warn!(source = %name, error = %e, "websub: subscription request failed");
                subs.set_state(&name, SubState::Failed, Instant::now());
            }
        }
    }
}

/// A hub named by a source document may not point us at private addresses unless allowed
/// (the same rule as for sources).
async fn hub_allowed(hub: &Url, allow_private: bool) -> bool {
    use crate::fetch::http::is_private;
    if allow_private {
        return true;
    }
    match hub.host() {
        Some(url::Host::Ipv4(ip)) => !is_private(ip.into()),
        Some(url::Host::Ipv6(ip)) => !is_private(ip.into()),
        Some(url::Host::Domain(d)) => {
            let port = hub.port_or_known_default().unwrap_or(443);
            match crate::fetch::http::lookup(d, port).await {
                Ok(addrs) => !addrs.is_empty() && addrs.iter().all(|a| !is_private(a.ip())),
                Err(_) => false,
            }
        }
        None => false,
    }
}
