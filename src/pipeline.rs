//! The only place the stages meet: `refresh_source` (fetch → decode → parse → normalize →
//! [full text](pages) → store), `refresh` (the due sources, concurrently), `publish_all` (select → render → write).
//! `feedloom refresh` and the daemon both call these.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{debug, info, warn};
use url::Url;

use crate::cluster;
use crate::config::{Config, Dedupe, Location, OutputFeed, Source};
use crate::decode;
use crate::fetch::{FetchOutcome, Fetcher};
use crate::model::Parsed;
use crate::normalize::language::Detector;
use crate::normalize::{self, Rules};
use crate::parse::{self, ParseError};
use crate::publish::{self, Context, PublishError, SourceInfo};
use crate::select;
use crate::store::{
    Candidate, Claim, ClusterBatch, ClusterKey, ClusterRow, ClusterUpdate, ItemHead, ItemKeys,
    ItemQuery, SourceState, Store, StoreError, StoredItem, UpsertCounts,
};

mod bands;
pub mod pages;

/// What `refresh_source` and friends need.
pub struct Ctx<S> {
    pub config: Arc<Config>,
    pub store: S,
    pub fetcher: Fetcher,
    /// Language detection among `settings.languages`.
    pub detector: Arc<Detector>,
}

/// How one source's refresh went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    NotDue,
    NotModified,
    Fetched,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    pub source: String,
    pub outcome: Outcome,
    #[serde(flatten)]
    pub counts: UpsertCounts,
    /// Items read from the source's document (at most `max_items_per_source`, the newest).
    pub items: usize,
    /// Of those, the items sent again as they were last time: not normalised again.
    pub reused: usize,
    pub millis: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PublishReport {
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub started: DateTime<Utc>,
    pub millis: u64,
    pub sources: Vec<SourceReport>,
    pub pruned: u64,
    pub publish: PublishReport,
}

impl RunReport {
    pub fn failed_sources(&self) -> impl Iterator<Item = &SourceReport> {
        self.sources.iter().filter(|s| s.outcome == Outcome::Failed)
    }
}

/// Decodes, parses and normalises one document: the library path of `feedloom parse --json`.
pub fn parse_document(
    body: &[u8],
    content_type: Option<&str>,
    location: Option<Url>,
    source: Option<&Source>,
    detector: &Detector,
    now: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    let limits = parse::Limits::default();
    parse_source(
        body,
        content_type,
        location,
        source,
        detector,
        None,
        &limits,
        now,
    )
}

/// [`parse_document`] keeping at most `max_items` items (the newest) and within `limits`, as
/// refreshing does.
#[allow(clippy::too_many_arguments)]
pub fn parse_source(
    body: &[u8],
    content_type: Option<&str>,
    location: Option<Url>,
    source: Option<&Source>,
    detector: &Detector,
    max_items: Option<usize>,
    limits: &parse::Limits,
    now: DateTime<Utc>,
) -> Result<Parsed, ParseError> {
    let out = parse_source_reusing(
        body,
        content_type,
        location,
        source,
        detector,
        max_items,
        limits,
        now,
        None,
    )?;
    Ok(Parsed {
        feed: out.feed,
        items: out.items,
    })
}

/// [`parse_source`] reusing what the source's last document gave (see
/// [`normalize::normalize_reusing`]): items sent again unchanged are not normalised again.
#[allow(clippy::too_many_arguments)]
pub fn parse_source_reusing(
    body: &[u8],
    content_type: Option<&str>,
    location: Option<Url>,
    source: Option<&Source>,
    detector: &Detector,
    max_items: Option<usize>,
    limits: &parse::Limits,
    now: DateTime<Utc>,
    prev: Option<&normalize::Reuse>,
) -> Result<normalize::Normalized, ParseError> {
    let deadline = std::time::Instant::now() + limits.max_time;
    let decoded = decode::decode(body, content_type);
    let rules = Rules {
        location,
        encoding: decoded.encoding,
        encoding_from: decoded.from.as_str().to_string(),
        strip_patterns: source
            .map(|s| s.strip_patterns.as_slice())
            .unwrap_or_default(),
        remove_selectors: source
            .map(|s| s.remove_selectors.as_slice())
            .unwrap_or_default(),
        detector: Some(detector),
        timezone: source.and_then(|s| s.timezone),
        max_items,
        deadline: Some(deadline),
    };
    read_reusing(&decoded.text, &rules, limits, now, prev, true)
}

/// Reads and normalises decoded text, reusing `prev`. With `light`, the items the last
/// document had are read light (only their guid and dates), and should one of them have to be
/// normalised after all, the document is read again in full.
fn read_reusing(
    text: &str,
    rules: &Rules<'_>,
    limits: &parse::Limits,
    now: DateTime<Utc>,
    prev: Option<&normalize::Reuse>,
    light: bool,
) -> Result<normalize::Normalized, ParseError> {
    let deadline = rules
        .deadline
        .unwrap_or_else(|| std::time::Instant::now() + limits.max_time);
    let known = prev
        .filter(|_| light)
        .map(normalize::Reuse::hashes)
        .unwrap_or_default();
    let knows = |hash: u64| known.contains(&hash);
    let skip = (!known.is_empty()).then_some(&knows as parse::xml::Knows<'_>);
    let raw = parse::parse_skipping(text, limits, deadline, skip)?;
    if let Ok(out) = normalize::normalize_reusing(raw, rules, now, prev) {
        return Ok(out);
    }
    tracing::debug!("an item read light is to be normalised: reading the document in full");
    let raw = parse::parse_within(text, limits, deadline)?;
    Ok(normalize::normalize_reusing(raw, rules, now, prev)
        .expect("a document read in full has no item read light"))
}

/// Permits for parsing and normalising documents: one per core.
static CORES: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
});

/// Longest wait a server's `Retry-After` or our backoff can impose.
const MAX_WAIT: chrono::Duration = chrono::Duration::hours(24);

/// Why a source is not fetched now, or `None` when it is due.
fn not_due(
    source: &Source,
    state: Option<&SourceState>,
    force: bool,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    let state = state?;
    // A changed url is a new source: 410 and waits of the old one do not apply.
    if state.url != source.location.to_string() {
        return None;
    }
    if state.disabled.is_some() {
        return Some("disabled (HTTP 410 Gone); change its url to enable it again");
    }
    if state.retry_not_before.is_some_and(|t| now < t) {
        return Some("the server asked to wait (Retry-After)");
    }
    if force {
        return None;
    }
    if state.backoff_until.is_some_and(|t| now < t) {
        return Some("backing off after failures");
    }
    let last = state.last_fetch_at?;
    last.checked_add_signed(interval(source, state))
        .is_some_and(|due| due > now)
        .then_some("not due")
}

/// How long after a fetch the source is due again: its configured interval, lengthened (never
/// shortened) to what an HTTP source asked for, at most `MAX_WAIT`: RSS `<ttl>` or
/// `sy:updatePeriod`/`sy:updateFrequency` of the last document, `Cache-Control: max-age` or
/// `Expires` of the last answer. A local file asks nothing of anyone, so its hints are ignored.
fn interval(source: &Source, state: &SourceState) -> chrono::Duration {
    let configured = chrono::Duration::from_std(source.interval).unwrap_or(chrono::Duration::MAX);
    if !matches!(source.location, Location::Http(_)) {
        return configured;
    }
    let ttl = state
        .feed
        .as_ref()
        .and_then(|f| f.ttl_minutes)
        .map(|m| m.saturating_mul(60));
    let hint = ttl.max(state.fresh_for).unwrap_or(0);
    let hint = chrono::Duration::seconds(hint.min(MAX_WAIT.num_seconds() as u64) as i64);
    configured.max(hint)
}

/// Where a source is fetched from: where the server moved it for good, as long as the
/// configured url is the one that moved.
fn fetch_location(source: &Source, state: Option<&SourceState>) -> Location {
    let moved = state
        .filter(|st| st.url == source.location.to_string())
        .and_then(|st| st.effective_url.as_deref())
        .and_then(|u| Url::parse(u).ok());
    match (&source.location, moved) {
        (Location::Http(_), Some(url)) => Location::Http(url),
        (location, _) => location.clone(),
    }
}

/// Wait after the `failures`-th consecutive failure: the interval doubled per failure, capped
/// at a day, with ±10 % jitter derived from the source's name (pure, so tests are exact, and
/// sources failing together spread out).
fn backoff(source: &Source, failures: u32) -> chrono::Duration {
    let base = chrono::Duration::from_std(source.interval).unwrap_or(MAX_WAIT);
    let factor = 1i32 << failures.saturating_sub(1).min(16);
    let wait = base.checked_mul(factor).unwrap_or(MAX_WAIT).min(MAX_WAIT);
    let seed = xxhash_rust::xxh3::xxh3_64(format!("{}#{failures}", source.name).as_bytes());
    let permille = (seed % 201) as i32 - 100; // -100..=100 → ±10 %
    wait + wait / 1000 * permille
}

/// Refreshes one source. Never fails as a whole: a failure is recorded in the source's state
/// and reported; nothing stored is lost.
pub async fn refresh_source<S: Store>(
    ctx: &Ctx<S>,
    source: &Source,
    force: bool,
    now: DateTime<Utc>,
) -> Result<SourceReport, StoreError> {
    let old = ctx.store.source_state(&source.name).await?;
    let (report, state) = refresh_from(ctx, source, old, force, now).await;
    if let Some(state) = state {
        ctx.store.record_fetch(&source.name, &state).await?;
    }
    Ok(report)
}

/// [`refresh_source`] from the source's stored state `old`, leaving the recording to the
/// caller: the report, and the state to record (`None` when the source was not due).
async fn refresh_from<S: Store>(
    ctx: &Ctx<S>,
    source: &Source,
    old: Option<SourceState>,
    force: bool,
    now: DateTime<Utc>,
) -> (SourceReport, Option<SourceState>) {
    let started = Instant::now();
    let mut report = SourceReport {
        source: source.name.clone(),
        outcome: Outcome::NotDue,
        counts: UpsertCounts::default(),
        items: 0,
        reused: 0,
        millis: 0,
        error: None,
    };
    if let Some(why) = not_due(source, old.as_ref(), force, now) {
        debug!(source = %source.name, why, "not due");
        return (report, None);
    }
    let mut state = old.unwrap_or_default();
    let location = source.location.to_string();
    // Validators, 410 and waits belong to a location: a changed URL starts afresh.
    if state.url != location {
        state.validators = Default::default();
        state.disabled = None;
        state.retry_not_before = None;
        state.backoff_until = None;
        state.effective_url = None;
        state.moved_to = None;
        state.fresh_for = None;
        state.url = location;
    }
    state.last_fetch_at = Some(now);
    let result = fetch_and_store(ctx, source, &mut state, now, &mut report).await;
    report.millis = started.elapsed().as_millis() as u64;
    match result {
        Ok(()) => {
            state.last_success_at = Some(now);
            state.error_count = 0;
            state.last_error = None;
            state.backoff_until = None;
            state.retry_not_before = None;
            info!(source = %source.name, outcome = ?report.outcome, new = report.counts.new,
                  updated = report.counts.updated, ms = report.millis, "refreshed");
        }
        Err(e) => {
            let msg = e.to_string();
            warn!(source = %source.name, error = %msg, "refresh failed");
            state.error_count = state.error_count.saturating_add(1);
            state.last_error = Some(msg.clone());
            state.backoff_until = now.checked_add_signed(backoff(source, state.error_count));
            if let SourceError::Fetch(crate::fetch::FetchError::Status {
                code, retry_after, ..
            }) = &e
            {
                match (*code, retry_after) {
                    (410, _) => {
                        warn!(source = %source.name, url = %state.url,
                              "the source is gone (HTTP 410): disabled; change its url to enable it again");
                        state.disabled = Some(format!("HTTP 410 Gone at {}", now.to_rfc3339()));
                    }
                    (429 | 503, Some(secs)) => {
                        let wait = chrono::Duration::seconds((*secs).min(86_400) as i64);
                        state.retry_not_before = now.checked_add_signed(wait.min(MAX_WAIT));
                        warn!(source = %source.name, status = code, wait_s = wait.num_seconds(),
                              "the server asked to wait (Retry-After)");
                    }
                    _ => {}
                }
            }
            report.outcome = Outcome::Failed;
            report.error = Some(msg);
        }
    }
    (report, Some(state))
}

/// Why a source's refresh failed.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("fetch {0}")]
    Fetch(#[from] crate::fetch::FetchError),
    #[error("parse {location}: {source}")]
    Parse {
        location: String,
        #[source]
        source: ParseError,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
}

async fn fetch_and_store<S: Store>(
    ctx: &Ctx<S>,
    source: &Source,
    state: &mut SourceState,
    now: DateTime<Utc>,
    report: &mut SourceReport,
) -> Result<(), SourceError> {
    let location = fetch_location(source, Some(state));
    let outcome = ctx.fetcher.fetch(&location, &state.validators).await;
    if let Err(crate::fetch::FetchError::Status { code, .. }) = &outcome {
        state.last_status = Some(*code);
    }
    match outcome? {
        FetchOutcome::NotModified { validators, hints } => {
            note_moved(source, state, &location, hints.permanent_redirect);
            // RFC 9111 §4.3.4: a 304 updates the stored headers it repeats, keeps the others.
            state.fresh_for = hints.fresh_for.or(state.fresh_for);
            state.validators = validators;
            state.last_status = Some(304);
            report.outcome = Outcome::NotModified;
        }
        FetchOutcome::Modified(fetched) => {
            state.last_status = Some(fetched.status);
            note_moved(
                source,
                state,
                &location,
                fetched.hints.permanent_redirect.clone(),
            );
            state.fresh_for = fetched.hints.fresh_for;
            let fetched_from = location;
            let location = match &source.location {
                Location::Http(_) => Url::parse(&fetched.final_location).ok(),
                Location::File(_) => None,
            };
            // `fulltext` sources replace bodies with pages after normalising (and keep their own
            // per-item state): nothing is reused there, every item is normalised. Nor for a
            // source with no good document yet.
            let prev = if source.fulltext || state.feed.is_none() {
                None
            } else {
                // Only saves work: when it cannot be read, every item is normalised.
                ctx.store
                    .source_reuse(&source.name)
                    .await
                    .inspect_err(|e| {
                        warn!(source = %source.name, error = %e,
                              "what the last document left to reuse could not be read: normalising every item");
                    })
                    .ok()
                    .flatten()
            };
            // Items are signed for clustering (when an output clusters) as they are parsed, on
            // the same core, and their signatures stored with them in one transaction; those of
            // `fulltext` sources once their pages are in.
            let clustering = ctx.config.feeds.iter().any(|f| f.dedupe == Dedupe::Similar);
            let sign_here = clustering && !source.fulltext;
            let parse = |prev: Option<normalize::Reuse>| {
                let body = fetched.body.clone();
                let content_type = fetched.content_type.clone();
                let location = location.clone();
                let src = source.clone();
                let detector = ctx.detector.clone();
                let max_items = Some(ctx.config.settings.max_items_per_source);
                let limits = ctx.config.settings.parse_limits;
                let span = tracing::info_span!("parse", source = %source.name);
                let final_location = fetched.final_location.clone();
                // Parsing and normalising are CPU work: keep them off the async workers, one
                // document per core at a time (more in flight only hold more memory: their
                // bodies, trees and items, without finishing sooner).
                async move {
                    let _core = CORES.acquire().await.expect("never closed");
                    tokio::task::spawn_blocking(move || {
                        span.in_scope(|| {
                            parse_source_reusing(
                                &body,
                                content_type.as_deref(),
                                location,
                                Some(&src),
                                &detector,
                                max_items,
                                &limits,
                                now,
                                prev.as_ref(),
                            )
                            .map(|parsed| {
                                let signatures = if sign_here {
                                    signature_bytes(&parsed.items)
                                } else {
                                    Vec::new()
                                };
                                (parsed, signatures)
                            })
                        })
                    })
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))?
                    .map_err(|e| SourceError::Parse {
                        location: final_location,
                        source: e,
                    })
                }
            };
            let (mut parsed, mut signatures) = parse(prev).await?;
            report.items = parsed.items.len() + parsed.unchanged.len();
            report.reused = parsed.unchanged.len();
            let pending = if source.fulltext {
                let pending =
                    pages::full_text(ctx, source, &fetched_from, state, &mut parsed.items, now)
                        .await?
                        .pending;
                if clustering {
                    let items = std::mem::take(&mut parsed.items);
                    let _core = CORES.acquire().await.expect("never closed");
                    (parsed.items, signatures) = tokio::task::spawn_blocking(move || {
                        let signatures = signature_bytes(&items);
                        (items, signatures)
                    })
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))?;
                }
                pending
            } else {
                state.pages.clear();
                0
            };
            report.counts = match ctx
                .store
                .upsert_signed_items(
                    &source.name,
                    &parsed.items,
                    signatures,
                    &parsed.unchanged,
                    (!source.fulltext).then_some(&parsed.reuse),
                    now,
                )
                .await
            {
                Err(StoreError::NotStored { missing, .. }) => {
                    // Pruned since they were stored: normalise the whole document again.
                    info!(source = %source.name, missing,
                          "items to reuse are no longer stored: normalising every item");
                    (parsed, signatures) = parse(None).await?;
                    report.reused = 0;
                    let reuse = (!source.fulltext).then_some(&parsed.reuse);
                    ctx.store
                        .upsert_signed_items(
                            &source.name,
                            &parsed.items,
                            signatures,
                            &[],
                            reuse,
                            now,
                        )
                        .await?
                }
                counts => counts?,
            };
            // Items whose page is still due must come round again: no "not modified" until then.
            state.validators = if pending > 0 {
                Default::default()
            } else {
                fetched.validators
            };
            state.feed = Some(parsed.feed);
            report.outcome = Outcome::Fetched;
        }
    }
    Ok(())
}

/// The stored form of each item's signature for clustering (`None`: no words to sign). Made
/// as items are parsed, so that clustering after the refresh has only signatures to read;
/// anything missed (a failed save) is signed there.
fn signature_bytes(items: &[crate::model::Item]) -> Vec<Option<Vec<u8>>> {
    cluster::sign_all(items)
        .into_iter()
        .map(|sig| sig.map(|sig| sig.to_bytes()))
        .collect()
}

/// Keeps track of permanent redirects after a good fetch from `fetched_from`: the first one to
/// a place is noted, the same one on the next fetch moves the source there; a fetch without one
/// forgets it.
fn note_moved(
    source: &Source,
    state: &mut SourceState,
    fetched_from: &Location,
    target: Option<String>,
) {
    let Some(target) = target else {
        state.moved_to = None;
        return;
    };
    if state.moved_to.as_deref() != Some(target.as_str()) {
        info!(source = %source.name, from = %fetched_from, to = %target,
              "permanent redirect; the source moves if the next fetch is redirected there too");
        state.moved_to = Some(target);
        return;
    }
    warn!(source = %source.name, from = %fetched_from, to = %target,
          "moved permanently: fetched from the new URL from now on (update its url in the config)");
    state.moved_to = None;
    // Moved back to where the config points: no detour needed.
    state.effective_url = (target != source.location.to_string()).then_some(target);
}

/// Refreshes the chosen sources (all when `only` is empty) that are due, or all of them with
/// `force`, `settings.concurrency` at a time and `settings.per_host_concurrency` per host.
/// `progress` hears of each source as it finishes.
///
/// Each source is refreshed under a lease from [`Store::claim_due`], so several instances on
/// one PostgreSQL database share the due sources: a source another instance holds, or fetched
/// since this run read its state, is left to it (reported as not due); one whose host is at
/// its limit is asked for again shortly. A lease is given back once the fetch is recorded.
pub async fn refresh<S: Store + Clone + 'static>(
    ctx: Arc<Ctx<S>>,
    only: &[String],
    force: bool,
    now: DateTime<Utc>,
    progress: &(dyn Fn(&SourceReport) + Sync),
) -> Result<Vec<SourceReport>, StoreError> {
    let settings = &ctx.config.settings;
    let chosen: Vec<usize> = (0..ctx.config.sources.len())
        .filter(|&n| only.is_empty() || only.contains(&ctx.config.sources[n].name))
        .collect();
    let mut states = ctx.store.source_states().await?;
    // The state each claimed source starts from: a claim leaves alone a source whose recorded
    // fetch is no longer the one read here (`Candidate::seen`), so this is still its state.
    let mut olds: Vec<Option<SourceState>> = std::iter::repeat_with(|| None)
        .take(ctx.config.sources.len())
        .collect();
    let mut reports = Vec::new();
    let mut candidates = Vec::new();
    let mut index = HashMap::new();
    for n in chosen {
        let source = &ctx.config.sources[n];
        let state = states.remove(&source.name);
        if let Some(why) = not_due(source, state.as_ref(), force, now) {
            debug!(source = %source.name, why, "not due");
            let report = SourceReport::not_due(&source.name);
            progress(&report);
            reports.push((n, report));
            continue;
        }
        let host = match fetch_location(source, state.as_ref()) {
            Location::Http(u) => Some(u.host_str().unwrap_or_default().to_ascii_lowercase()),
            Location::File(_) => None,
        };
        index.insert(source.name.clone(), n);
        candidates.push(Candidate {
            name: source.name.clone(),
            host,
            url: source.location.to_string(),
            seen: state.as_ref().and_then(|st| st.last_fetch_at),
        });
        olds[n] = state;
    }
    let owner = run_owner();
    let lease = chrono::Duration::from_std(settings.lease).unwrap_or(chrono::Duration::MAX);
    let concurrency = settings.concurrency.max(1);
    let per_host = settings.per_host_concurrency.max(1);
    // Leased sources waiting for a worker, up to as many again as there are workers: the
    // next claim is under way while the workers are busy, so claims (which all instances
    // take in turn) do not pace the fetching.
    let target = 2 * concurrency;
    let batch = (concurrency / 2).max(1);
    let mut queue: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    // Each candidate's host as a number, for the claim windows.
    let mut host_ids: HashMap<String, u32> = HashMap::new();
    let mut remaining: Vec<(Candidate, Option<u32>)> = Vec::with_capacity(candidates.len());
    for c in candidates {
        let host = c.host.as_ref().map(|h| {
            let next = host_ids.len() as u32;
            *host_ids.entry(h.clone()).or_insert(next)
        });
        remaining.push((c, host));
    }
    // Candidates claimed or settled are marked gone here rather than taken out at once: each
    // claim would shift the whole list (10,000 candidates at N = 10,000, hundreds of claims).
    // `first` is the first not gone, `left` how many are not; the list is compacted when most
    // of it is gone.
    let mut gone = vec![false; remaining.len()];
    let mut first = 0;
    let mut left = remaining.len();
    let hosts = host_ids.len();
    drop(host_ids);
    let mut tasks = tokio::task::JoinSet::new();
    let mut claiming: Option<tokio::task::JoinHandle<_>> = None;
    // Sources refreshed but not yet recorded, and the recording under way: everything that
    // finished meanwhile is recorded at once when the last recording is done (one transaction
    // for many sources rather than one store call each), then their leases are given back.
    let mut done: Vec<(usize, SourceReport, Option<SourceState>)> = Vec::new();
    let mut recording: Option<tokio::task::JoinHandle<_>> = None;
    let mut pause = CLAIM_PAUSE_MIN;
    let mut next_claim = tokio::time::Instant::now();
    // Leases are renewed while the run works, so only a dead instance's run out.
    let every = (settings.lease / 3).max(std::time::Duration::from_millis(100));
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while tasks.len() < concurrency
            && let Some(n) = queue.pop_front()
        {
            let source = ctx.config.sources[n].clone();
            let ctx = ctx.clone();
            let old = olds[n].take();
            tasks.spawn(async move {
                let (report, state) = refresh_from(&ctx, &source, old, force, now).await;
                (n, report, state)
            });
        }
        if recording.is_none() && !done.is_empty() {
            let batch = std::mem::take(&mut done);
            let ctx = ctx.clone();
            let owner = owner.clone();
            recording = Some(tokio::spawn(async move {
                let mut names = Vec::with_capacity(batch.len());
                let mut fetches = Vec::with_capacity(batch.len());
                let mut reports = Vec::with_capacity(batch.len());
                for (n, report, state) in batch {
                    let name = ctx.config.sources[n].name.clone();
                    if let Some(state) = state {
                        fetches.push((name.clone(), state));
                    }
                    names.push(name);
                    reports.push((n, report));
                }
                if !fetches.is_empty() {
                    ctx.store.record_fetches(&fetches).await?;
                }
                ctx.store.release(&names, &owner).await?;
                Ok::<_, StoreError>(reports)
            }));
        }
        let held = tasks.len() + queue.len();
        let want = claiming.is_none() && left > 0 && held + batch <= target;
        if want && tokio::time::Instant::now() >= next_claim {
            let window = claim_window(&remaining, &gone, first, hosts, per_host);
            let claim = Claim {
                owner: owner.clone(),
                candidates: window.iter().map(|n| remaining[*n].0.clone()).collect(),
                now: Utc::now(),
                lease,
                max: target - held,
                per_host,
            };
            let ctx = ctx.clone();
            claiming = Some(tokio::spawn(async move {
                let got = ctx.store.claim_due(&claim).await;
                (window, claim.candidates, got)
            }));
            continue;
        }
        if tasks.is_empty()
            && queue.is_empty()
            && left == 0
            && claiming.is_none()
            && done.is_empty()
            && recording.is_none()
        {
            break;
        }
        tokio::select! {
            Some(joined) = tasks.join_next() => {
                done.push(joined.map_err(|e| StoreError::Task(e.to_string()))?);
            }
            joined = async { recording.as_mut().expect("polled only while recording").await },
                if recording.is_some() =>
            {
                recording = None;
                let recorded = joined.map_err(|e| StoreError::Task(e.to_string()))??;
                for (n, report) in recorded {
                    progress(&report);
                    reports.push((n, report));
                }
                // Our releases freed slots on their hosts: sources waiting can go now.
                next_claim = tokio::time::Instant::now();
                pause = CLAIM_PAUSE_MIN;
            }
            joined = async { claiming.as_mut().expect("polled only while claiming").await },
                if claiming.is_some() =>
            {
                claiming = None;
                let (window, asked, got) = joined.map_err(|e| StoreError::Task(e.to_string()))?;
                let got = got?;
                let claimed: HashSet<&String> = got.claimed.iter().collect();
                let waiting: HashSet<&String> = got.waiting.iter().collect();
                // The window's places in `remaining` (unchanged since: one claim at a time)
                // that leave it: claimed, or settled by another instance.
                for (n, c) in window.iter().zip(&asked) {
                    if claimed.contains(&c.name) {
                        gone[*n] = true;
                    } else if !waiting.contains(&c.name) {
                        debug!(source = %c.name, "another instance has it or fetched it; skipped");
                        let report = SourceReport::not_due(&c.name);
                        progress(&report);
                        reports.push((index[&c.name], report));
                        gone[*n] = true;
                    } else {
                        continue;
                    }
                    left -= 1;
                }
                while first < gone.len() && gone[first] {
                    first += 1;
                }
                if remaining.len() - left > 2 * left.max(CLAIM_WINDOW) {
                    let mut at = 0;
                    remaining.retain(|_| {
                        at += 1;
                        !gone[at - 1]
                    });
                    gone = vec![false; remaining.len()];
                    first = 0;
                }
                queue.extend(got.claimed.iter().map(|name| index[name]));
                if got.claimed.is_empty() && !got.waiting.is_empty() {
                    // Only busy hosts left: ask again shortly, less often while it lasts.
                    next_claim = tokio::time::Instant::now() + pause;
                    pause = (pause * 2).min(CLAIM_PAUSE_MAX);
                } else {
                    pause = CLAIM_PAUSE_MIN;
                }
            }
            () = tokio::time::sleep_until(next_claim), if want => {}
            _ = renew.tick() => {
                let until = Utc::now().checked_add_signed(lease).unwrap_or(DateTime::<Utc>::MAX_UTC);
                if let Err(e) = ctx.store.renew(&owner, until).await {
                    warn!(error = %e, "could not renew the leases; another instance may take over");
                }
            }
        }
    }
    reports.sort_by_key(|(n, _)| *n);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

/// The candidates one claim looks at, as places in `remaining` (candidates and their hosts,
/// numbered below `hosts`, from `first` on, those marked `gone` left out): the first few of
/// each host, at most `CLAIM_WINDOW`, so a claim stays cheap with thousands of sources and one
/// busy host does not hide the others. Hosts are counted in an array: with every source on one
/// host, each claim passes over all the others (10,000 at N = 10,000), and with host names
/// hashed into a map that (and a retain by name after each claim) was about 0.3 s of CPU on
/// the loop that hands out the sources.
fn claim_window(
    remaining: &[(Candidate, Option<u32>)],
    gone: &[bool],
    first: usize,
    hosts: usize,
    per_host: usize,
) -> Vec<usize> {
    let mut per = vec![0usize; hosts];
    let mut out = Vec::new();
    for (n, (_, host)) in remaining.iter().enumerate().skip(first) {
        if out.len() >= CLAIM_WINDOW {
            break;
        }
        if gone[n] {
            continue;
        }
        if let Some(h) = host {
            let count = &mut per[*h as usize];
            if *count >= per_host.saturating_mul(2) {
                continue;
            }
            *count += 1;
        }
        out.push(n);
    }
    out
}

const CLAIM_WINDOW: usize = 128;

/// How long a run waits before asking again for sources whose host is at its limit (doubling
/// up to the max while nothing comes free).
const CLAIM_PAUSE_MIN: std::time::Duration = std::time::Duration::from_millis(20);
const CLAIM_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(500);

/// Who holds a run's leases: the process id and random bits, unique across instances.
fn run_owner() -> String {
    let mut b = [0u8; 8];
    // Without OS randomness the clock still tells runs apart.
    if getrandom::fill(&mut b).is_err() {
        b = Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_le_bytes();
    }
    format!("{}-{:016x}", std::process::id(), u64::from_le_bytes(b))
}

impl SourceReport {
    fn not_due(source: &str) -> SourceReport {
        SourceReport {
            source: source.to_string(),
            outcome: Outcome::NotDue,
            counts: UpsertCounts::default(),
            items: 0,
            reused: 0,
            millis: 0,
            error: None,
        }
    }
}

/// Deletes items past retention (never while their source lists them) and beyond
/// `max_items_per_source`.
pub async fn prune<S: Store>(ctx: &Ctx<S>, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let retention =
        chrono::Duration::from_std(ctx.config.settings.retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = now.checked_sub_signed(retention).unwrap_or_default();
    ctx.store
        .prune(cutoff, ctx.config.settings.max_items_per_source)
        .await
}

/// What outputs need to know about every configured source, and the newest recorded fetch.
async fn source_infos<S: Store>(
    ctx: &Ctx<S>,
) -> Result<(HashMap<String, SourceInfo>, Option<DateTime<Utc>>), StoreError> {
    let mut out = HashMap::new();
    let mut newest = None;
    let mut states = ctx.store.source_feeds().await?;
    for s in &ctx.config.sources {
        let state = states.remove(&s.name);
        newest = newest.max(state.as_ref().and_then(|st| st.last_fetch_at));
        let feed = state.and_then(|st| st.feed);
        let feed_url = match &s.location {
            Location::Http(u) => Some(u.to_string()),
            Location::File(_) => feed
                .as_ref()
                .and_then(|f| f.id.clone())
                .filter(|id| id.starts_with("http://") || id.starts_with("https://")),
        };
        out.insert(
            s.name.clone(),
            SourceInfo {
                name: s.name.clone(),
                title: feed
                    .as_ref()
                    .and_then(|f| f.title.clone())
                    .unwrap_or_else(|| s.name.clone()),
                link: feed.as_ref().and_then(|f| f.link.clone()),
                feed_url,
                id: feed.as_ref().and_then(|f| f.id.clone()),
                updated: feed.as_ref().and_then(|f| f.updated),
            },
        );
    }
    Ok((out, newest))
}

/// The sources' priorities, where not 0 (absent means 0: with no priority set anywhere, selection
/// looks none up).
fn priorities(config: &Config) -> select::Priorities {
    config
        .sources
        .iter()
        .filter(|s| s.priority != 0)
        .map(|s| (s.name.clone(), s.priority))
        .collect()
}

/// Gives every stored item that has no cluster key yet one (signing the items it is compared
/// with when they have no stored signature) and stores what changed; returns the cluster key
/// of every stored item. A new item is compared with the items dated within `similar_window`
/// of it, so only those are read. Nothing is done, and nothing returned, when no `[[feed]]`
/// uses `dedupe = "similar"`.
pub async fn cluster_items<S: Store>(ctx: &Ctx<S>) -> Result<select::Clusters, StoreError> {
    Ok(cluster_all(ctx)
        .await?
        .map_or_else(select::Clusters::default, |(clusters, _)| clusters))
}

/// [`cluster_items`], also giving back what it read: every stored item's row, newest first,
/// then by key (the order of [`Store::heads`]), with its link and without its cluster key.
/// `None` when no `[[feed]]` uses `dedupe = "similar"`.
async fn cluster_all<S: Store>(
    ctx: &Ctx<S>,
) -> Result<Option<(select::Clusters, Vec<ClusterRow>)>, StoreError> {
    if !ctx.config.feeds.iter().any(|f| f.dedupe == Dedupe::Similar) {
        return Ok(None);
    }
    let settings = &ctx.config.settings;
    let window = chrono::Duration::from_std(settings.similar_window)
        .unwrap_or(chrono::Duration::MAX)
        .min(chrono::Duration::days(3650));
    let began = Instant::now();
    // The band index's state, read before the rows: what changes after it is in the log the
    // next run reads.
    let band = ctx.store.band_state(bands::LOG_LIMIT).await?;
    // Every item's key, read once; the signatures only of the items in the window.
    let mut rows = ctx.store.cluster_rows().await?;
    let rows_ms = began.elapsed().as_millis() as u64;
    // Newest first, as items are listed: where several clustered items match, the order
    // decides which one a new item meets first. A member's place in this order is its position.
    // The store gives them oldest first, then by key: reversed, with each date's run put back
    // in key order (no sort of 600,000 rows by strings).
    rows.reverse();
    let mut start = 0;
    while start < rows.len() {
        let end = start + rows[start..].partition_point(|r| r.date == rows[start].date);
        rows[start..end].reverse();
        start = end;
    }
    debug_assert!(
        rows.is_sorted_by(|a, b| (b.date, &a.source, &a.id) <= (a.date, &b.source, &b.id))
    );
    let oldest_new = rows
        .iter()
        .filter(|r| r.cluster.is_none())
        .map(|r| r.date)
        .min();
    let mut clusters = ClusterMap::default();
    let Some(oldest_new) = oldest_new else {
        clusters.take_keys(&mut rows);
        return Ok(Some((clusters.finish(), rows)));
    };
    // The window: the rows dated from `window` before the oldest new one on, a prefix. The
    // others' keys go into `clusters` now, the window's once it has been compared with.
    let since = DateTime::from_timestamp(oldest_new, 0)
        .and_then(|t| t.checked_sub_signed(window))
        .unwrap_or_default();
    let from = crate::store::seconds_from(since);
    let in_window = rows.partition_point(|r| r.date >= from);
    clusters.take_keys(&mut rows[in_window..]);
    let (old, new): (Vec<usize>, Vec<usize>) =
        (0..in_window).partition(|n| rows[*n].cluster.is_some());
    let threshold = settings.similar_threshold;
    let window_items = in_window;
    // Where new members are many against the old ones (a first run), every member in the
    // window is compared (`Candidates`' table of the new members would outweigh the old
    // signatures), without holding all their signatures.
    let c = if new.len() * CANDIDATES_RATIO > old.len() {
        drop((old, new));
        let keep = bands::Keep::build(band.as_ref(), in_window, since);
        let mut c =
            assign_streamed(ctx, rows, in_window, threshold, window, HELD_AT_ONCE, keep).await?;
        c.read_ms += rows_ms;
        c
    } else {
        // Each member's exact keys, made when asked for: held for the window they were 32
        // bytes a row (19 MB at N = 10,000, where the window is every row), and made again
        // cost 20 ms.
        let exact = |n: usize| cluster::exact_keys_of(rows[n].link_key(), &rows[n].id);
        // The new members' signatures (signed at ingest; whatever is missing is signed
        // now). By place in `new` (ascending positions).
        let mut new_sigs: Vec<Option<cluster::Signature>> = vec![None; new.len()];
        let at = |n: usize| new.binary_search(&n).expect("a new member");
        let mut signed =
            signatures_of(ctx, &rows, &new, true, |n, sig| new_sigs[at(n)] = sig).await?;
        // The old members are only candidates for the new ones: each is read, probed
        // against the new members' band values and let go, so a run never holds the
        // window's signatures (at N = 10,000 sources 600,000 of them, 400 MB), only those
        // of the old members `assign` could compare a new one with (read again, then).
        let new_ms = began.elapsed().as_millis() as u64 - rows_ms;
        let mut candidates = cluster::Candidates::new(
            new.iter()
                .zip(&new_sigs)
                .map(|(n, s)| (s.as_ref(), exact(*n))),
        );
        // The band index names the old members that can share a band value with a new one;
        // without it, every one is read and probed.
        let mut plan =
            bands::plan(ctx, band.as_ref(), &rows, in_window, since, &old, &new_sigs).await?;
        // Every old member's exact keys (from its row), once; its signature when it is read.
        for n in &old {
            candidates.offer(*n as u32, None, exact(*n));
        }
        let mut delta = bands::Delta::default();
        // Signatures are offered a batch at a time ([`cluster::Candidates::offer_batch`]).
        let mut batch: Vec<(u32, cluster::Signature)> = Vec::with_capacity(OFFER_BATCH);
        signed += signatures_of(
            ctx,
            &rows,
            plan.probe.as_ref().unwrap_or(&old),
            true,
            |n, sig| {
                let Some(sig) = sig else {
                    return;
                };
                if plan.logged.binary_search(&n).is_ok() {
                    delta.add(&rows[n], &sig);
                }
                plan.keep.add(&rows[n], &sig);
                if n < in_window && rows[n].cluster.is_some() {
                    offer_batched(&mut candidates, &mut batch, n, sig);
                }
            },
        )
        .await?;
        candidates.offer_batch(&batch);
        batch.clear();
        // Values of which only the latest holders were probed, and whose latest true holders
        // were not all among them: the rest of their holders too.
        let more = plan.unsettled(&candidates);
        if !more.is_empty() {
            debug!(more = more.len(), "band index: unsettled values");
            signed += signatures_of(ctx, &rows, &more, true, |n, sig| {
                if let Some(sig) = sig {
                    offer_batched(&mut candidates, &mut batch, n, sig);
                }
            })
            .await?;
            candidates.offer_batch(&batch);
        }
        drop(batch);
        for (n, sig) in new.iter().zip(&new_sigs) {
            if let Some(sig) = sig {
                plan.keep.add_new(&mut delta, &rows[*n], sig);
            }
        }
        let update = plan.keep.update(delta).await;
        let kept: Vec<usize> = candidates.kept().into_iter().map(|n| n as usize).collect();
        let probe_ms = began.elapsed().as_millis() as u64 - rows_ms - new_ms;
        let read_ms = began.elapsed().as_millis() as u64;
        let started = Instant::now();
        let compared = kept.len() + new.len();
        let (assigned, rows) = compare_update(
            ctx,
            Update {
                rows,
                kept,
                new,
                new_sigs,
            },
            candidates,
            threshold,
            window,
        )
        .await?;
        Compared {
            assigned,
            rows,
            signed,
            compared,
            new_ms,
            probe_ms,
            read_ms,
            started,
            band: update,
        }
    };
    debug!(
        items = window_items,
        compared = c.compared,
        signed = c.signed,
        keyed = c.assigned.len(),
        read_ms = c.read_ms,
        rows_ms,
        new_ms = c.new_ms,
        probe_ms = c.probe_ms,
        assign_ms = c.started.elapsed().as_millis() as u64,
        "clustered"
    );
    let mut rows = c.rows;
    let saving = Instant::now();
    let token = c.band.as_ref().map(|u| u.token);
    save_keys(ctx, &rows, c.assigned, &mut clusters, KEYS_AT_ONCE, c.band).await?;
    // The store names the file now: any other (replaced, or left by a run that stopped) goes.
    if let (Some(state), Some(token)) = (&band, token) {
        bands::sweep(state, token).await;
    }
    let save_ms = saving.elapsed().as_millis() as u64;
    clusters.take_keys(&mut rows[..in_window]);
    let clusters = clusters.finish();
    debug!(
        save_ms,
        map_ms = saving.elapsed().as_millis() as u64 - save_ms,
        "cluster keys saved and mapped"
    );
    Ok(Some((clusters, rows)))
}

/// Saves the cluster keys `assigned` gives (row, the row whose key names its cluster), and adds
/// them to `clusters`. They are made `at_once` at a time and handed to the store while it
/// writes the batch before ([`Store::save_cluster_batches`]), all in one transaction: held all
/// at once, at a first run, they were the run's peak (60,000 at N = 1,000 sources, 12 MB). In
/// key order, so that each batch writes its own run of the tables' pages. A run stopped halfway
/// saves none of them, and the next clusters every one again (keys saved for some would make
/// the others new members against them, which can cluster differently).
async fn save_keys<S: Store>(
    ctx: &Ctx<S>,
    rows: &[ClusterRow],
    mut assigned: Vec<(usize, usize)>,
    clusters: &mut ClusterMap,
    at_once: usize,
    band: Option<crate::store::BandUpdate>,
) -> Result<(), StoreError> {
    if assigned.is_empty() && band.is_none() {
        return Ok(());
    }
    assigned.sort_unstable_by(|(a, _), (b, _)| {
        (&*rows[*a].source, &rows[*a].id).cmp(&(&*rows[*b].source, &rows[*b].id))
    });
    let (send, batches) = tokio::sync::mpsc::channel(1);
    // Makes the batches without waiting on the store (it may hold its connection until `Done`).
    let make = async {
        for batch in assigned.chunks(at_once) {
            let keys: Vec<ClusterUpdate> = batch
                .iter()
                .map(|&(n, root)| {
                    let (source, id) = (&rows[n].source, &rows[n].id);
                    let key = root_key(&rows[root]);
                    clusters.add(source, id, ClusterKey::of(&key, source, id));
                    ClusterUpdate {
                        source: source.to_string(),
                        id: id.to_string(),
                        signature: None,
                        cluster: Some(key),
                    }
                })
                .collect();
            if send.send(ClusterBatch::Rows(keys)).await.is_err() {
                // The store gave up (its error is the one returned).
                return;
            }
        }
        let _ = send.send(ClusterBatch::Done(band)).await;
    };
    let ((), saved) = tokio::join!(make, ctx.store.save_cluster_batches(batches));
    saved
}

/// Builds the [`select::Clusters`] selection needs: the items of clusters of more than one. An
/// item alone in its cluster is under its own id, which is what having no entry means (at
/// N = 10,000 sources, 600,000 entries were most of a publish's memory).
#[derive(Default)]
struct ClusterMap {
    joined: select::Clusters,
    /// Items under their own id, and the hash of that id: an entry if another item joined them.
    own: Vec<(select::ItemKey, u128)>,
    /// Where an own id is written to be hashed.
    scratch: String,
}

impl ClusterMap {
    fn add(&mut self, source: &str, id: &str, key: ClusterKey) {
        let item = select::item_key(source, id);
        match key {
            ClusterKey::Own => {
                self.scratch.clear();
                publish::push_output_id(&mut self.scratch, source, id);
                let hash = xxhash_rust::xxh3::xxh3_128(self.scratch.as_bytes());
                self.own.push((item, hash));
            }
            ClusterKey::Joined(key) => {
                self.joined.insert(item, key);
            }
        }
    }

    /// Adds the rows' cluster keys, taking them out of the rows.
    fn take_keys(&mut self, rows: &mut [ClusterRow]) {
        for r in rows {
            if let Some(k) = r.cluster.take() {
                self.add(&r.source, &r.id, k);
            }
        }
    }

    fn finish(self) -> select::Clusters {
        let ClusterMap {
            mut joined, own, ..
        } = self;
        // Each cluster's key once (its members hold copies of it).
        let mut heads: select::KeyMap<String> = select::KeyMap::default();
        for k in joined.keys() {
            heads
                .entry(xxhash_rust::xxh3::xxh3_128(k.as_bytes()))
                .or_insert_with(|| k.clone());
        }
        for (item, hash) in own {
            if let Some(k) = heads.get(&hash) {
                joined.insert(item, k.clone());
            }
        }
        joined
    }
}

/// Hands `each` the signature of every item at `positions` of `rows`: the stored ones as they
/// are read ([`each_signature`]), then, when `sign`, those of the items without one, signed
/// now ([`sign_missing`]; `None` for an item that has no words). Returns how many were signed.
async fn signatures_of<S: Store>(
    ctx: &Ctx<S>,
    rows: &[ClusterRow],
    positions: &[usize],
    sign: bool,
    mut each: impl FnMut(usize, Option<cluster::Signature>),
) -> Result<usize, StoreError> {
    let mut unsigned = Vec::new();
    each_signature(ctx, rows, positions, |n, sig| match sig {
        Some(sig) => each(n, Some(sig)),
        None if sign => unsigned.push(n),
        None => each(n, None),
    })
    .await?;
    for (n, sig) in unsigned
        .iter()
        .zip(sign_missing(ctx, rows, &unsigned).await?)
    {
        each(*n, sig);
    }
    Ok(unsigned.len())
}

/// Reads the stored signatures of the items at `positions` of `rows`, a key range at a time in
/// the signatures table's order (so each of its pages is read once), and hands each to `each`
/// as it is parsed (`None`: none stored, or not one).
async fn each_signature<S: Store>(
    ctx: &Ctx<S>,
    rows: &[ClusterRow],
    positions: &[usize],
    mut each: impl FnMut(usize, Option<cluster::Signature>),
) -> Result<(), StoreError> {
    let by_key = in_key_order(rows, positions);
    let keys_of = |chunk: &[usize]| -> ItemKeys {
        chunk
            .iter()
            .map(|n| (&*rows[*n].source, &*rows[*n].id))
            .collect()
    };
    let mut hand = |chunk: &[usize], read: Vec<Option<Vec<u8>>>| {
        for (n, bytes) in chunk.iter().zip(read) {
            each(
                *n,
                bytes.as_deref().and_then(cluster::Signature::from_bytes),
            );
        }
    };
    // The store reads a chunk (on its blocking pool) while the one before is handed over.
    let mut chunks = by_key.chunks(SIGNATURE_CHUNK);
    let Some(first) = chunks.next() else {
        return Ok(());
    };
    let mut current = (first, ctx.store.signatures(keys_of(first)).await?);
    for chunk in chunks {
        let keys = keys_of(chunk);
        let (done, read) = current;
        let (next, ()) = tokio::join!(ctx.store.signatures(keys), async { hand(done, read) });
        current = (chunk, next?);
    }
    hand(current.0, current.1);
    Ok(())
}

/// `positions` of `rows` in (source, id) order, as bytes (the signatures table's order). The
/// sources are ranked first (thousands, against hundreds of thousands of items) and the
/// positions put in their source's bucket, so only the ids of one source are sorted as
/// strings: one sort of all (ranks, then ids) was a fifth of reading 600,000 signatures.
fn in_key_order(rows: &[ClusterRow], positions: &[usize]) -> Vec<usize> {
    let mut seen: HashMap<&str, u32, foldhash::fast::RandomState> = HashMap::default();
    let source_of: Vec<u32> = positions
        .iter()
        .map(|n| {
            let next = seen.len() as u32;
            *seen.entry(&*rows[*n].source).or_insert(next)
        })
        .collect();
    let mut sources: Vec<(&str, u32)> = seen.into_iter().collect();
    sources.sort_unstable();
    let mut rank = vec![0u32; sources.len()];
    for (r, (_, s)) in sources.iter().enumerate() {
        rank[*s as usize] = r as u32;
    }
    // Where each source's bucket starts, by rank; then each position into its bucket.
    let mut start = vec![0usize; sources.len() + 1];
    for s in &source_of {
        start[rank[*s as usize] as usize + 1] += 1;
    }
    for r in 1..start.len() {
        start[r] += start[r - 1];
    }
    let mut next = start.clone();
    let mut by_key = vec![0usize; positions.len()];
    for (n, s) in positions.iter().zip(&source_of) {
        let r = rank[*s as usize] as usize;
        by_key[next[r]] = *n;
        next[r] += 1;
    }
    for w in start.windows(2) {
        by_key[w[0]..w[1]].sort_unstable_by(|a, b| rows[*a].id.cmp(&rows[*b].id));
    }
    debug_assert!(by_key.is_sorted_by_key(|n| (&rows[*n].source, &rows[*n].id)));
    by_key
}

/// Signs the items at `positions` of `rows` (items stored without a signature: signing at
/// ingest failed to save, or they were stored before it), reading them a batch at a time so a
/// run does not hold them all, and saves the signatures. Returns them in `positions`' order.
async fn sign_missing<S: Store>(
    ctx: &Ctx<S>,
    rows: &[ClusterRow],
    positions: &[usize],
) -> Result<Vec<Option<cluster::Signature>>, StoreError> {
    let mut out = Vec::with_capacity(positions.len());
    for batch in positions.chunks(SIGN_BATCH) {
        let keys: Vec<(String, String)> = batch
            .iter()
            .map(|n| (rows[*n].source.to_string(), rows[*n].id.to_string()))
            .collect();
        let items = ctx.store.items_by_keys(&keys).await?;
        let mut fresh = tokio::task::spawn_blocking(move || {
            items
                .iter()
                .zip(cluster::sign_all(items.iter().map(|it| &it.item)))
                .filter_map(|(it, sig)| Some((select::item_key(&it.source, &it.item.id), sig?)))
                .collect::<select::KeyMap<cluster::Signature>>()
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?;
        let mut save = Vec::with_capacity(fresh.len());
        for (source, id) in keys {
            let sig = fresh.remove(&select::item_key(&source, &id));
            if let Some(sig) = &sig {
                save.push(ClusterUpdate {
                    source,
                    id,
                    signature: Some(sig.to_bytes()),
                    cluster: None,
                });
            }
            out.push(sig);
        }
        if !save.is_empty() {
            ctx.store.save_cluster_rows(save).await?;
        }
    }
    Ok(out)
}

/// New members are compared through [`cluster::Candidates`] unless they are more than one in
/// this many members with a key (its table holds 64 values a new member, some 3.5 KB).
const CANDIDATES_RATIO: usize = 4;

/// How many cluster keys [`save_keys`] hands the store at once (some 200 bytes each while they
/// wait).
const KEYS_AT_ONCE: usize = 8192;

/// How many items are read at once to be signed for clustering.
const SIGN_BATCH: usize = 1024;

/// How many old members' signatures an update offers to its candidates' table at once
/// (320 bytes each).
const OFFER_BATCH: usize = 4096;

/// Adds the signature of the old member of row `n` to `batch`, offering the batch when full.
fn offer_batched(
    candidates: &mut cluster::Candidates,
    batch: &mut Vec<(u32, cluster::Signature)>,
    n: usize,
    sig: cluster::Signature,
) {
    batch.push((n as u32, sig));
    if batch.len() == OFFER_BATCH {
        candidates.offer_batch(batch);
        batch.clear();
    }
}

/// How many signatures are read at once for clustering. Two chunks are in memory at a time
/// (one read while the one before is handed over), each signature as a 320-byte blob and then
/// parsed: at the peak of a first run, which is in clustering, 8,192 held about 3 MB more than
/// 2,048 (cold N = 1,000: 100-103 MB against 97-99 MB) and were no faster (N = 10,000: 5.7 s
/// of reading either way).
const SIGNATURE_CHUNK: usize = 2048;

/// What an update clusters: the items (`rows`, newest first, those in the window first), the
/// positions of the new ones (no cluster key) and of the old ones they could be compared with
/// (`kept`), ascending, and the new ones' signatures (by place in `new`).
struct Update {
    rows: Vec<ClusterRow>,
    kept: Vec<usize>,
    new: Vec<usize>,
    new_sigs: Vec<Option<cluster::Signature>>,
}

/// An update's members paired ([`cluster::Candidates::each_pair`]) and compared as far as the new
/// members' signatures go: what is left waits for the old members' signatures.
struct Paired {
    update: Update,
    /// The members' rows, ascending (the kept old members and the new ones).
    place: Vec<usize>,
    of: Vec<cluster::Member<'static>>,
    order: Vec<usize>,
    matches: cluster::Matches,
    /// Pairs whose earlier member is old and that its signature decides, as
    /// (earlier << 32 | later), sorted.
    across: Vec<u64>,
}

impl Update {
    /// The new members' signature, by row.
    fn signature(&self, n: usize) -> Option<&cluster::Signature> {
        let at = self.new.binary_search(&n).ok()?;
        self.new_sigs[at].as_ref()
    }

    /// Pairs the members by `candidates` (the table of the new members' values, every old
    /// member that could be kept offered by row) and compares each pair of two new members.
    fn pair(
        self,
        candidates: &cluster::Candidates,
        threshold: f64,
        window: chrono::Duration,
    ) -> Paired {
        let mut place: Vec<usize> = self.kept.iter().chain(&self.new).copied().collect();
        place.sort_unstable();
        let of = members_of(&self.rows, place.iter().map(|n| (*n, None)));
        let order = cluster::order(&of, |a, b| {
            cmp_rows(&self.rows[place[a]], &self.rows[place[b]])
        });
        // The old members come first in `order`, in the order of their rows.
        let old = self.kept.len();
        let mut matches = cluster::Matches::new(&of, &order, threshold, window);
        let mut across = Vec::new();
        // Pairs come as they are made, some more than once: comparing a pair again changes
        // nothing, and they are never all held.
        candidates.each_pair(
            &of,
            &order,
            |m| self.signature(place[m]),
            |n| {
                self.kept
                    .binary_search(&(n as usize))
                    .expect("a kept member") as u32
            },
            |later, earlier| {
                let sigs = || {
                    (
                        self.signature(place[order[later]]),
                        self.signature(place[order[earlier]]),
                    )
                };
                matches.compare_or_wait(&of, &order, later, earlier, old, sigs, &mut across);
            },
        );
        across.sort_unstable();
        across.dedup();
        Paired {
            update: self,
            place,
            of,
            order,
            matches,
            across,
        }
    }
}

impl Paired {
    /// The rows of the old members whose signatures are asked for, ascending.
    fn passing(&self) -> Vec<usize> {
        let mut rows: Vec<usize> = self
            .across
            .iter()
            .map(|p| self.update.kept[(p >> 32) as usize])
            .collect();
        rows.dedup();
        rows
    }

    /// Compares the old member of row `n`, with signature `sig`, with the new members it is
    /// paired with.
    fn pass(&mut self, n: usize, sig: Option<&cluster::Signature>) {
        let Ok(earlier) = self.update.kept.binary_search(&n) else {
            return;
        };
        let later_sig = |later: usize| self.update.signature(self.place[self.order[later]]);
        self.matches
            .compare_waiting(&self.of, &self.order, &self.across, earlier, sig, later_sig);
    }

    /// Each new member's row and the row of the member whose key names its cluster (itself
    /// when it starts one), and the rows back.
    fn assigned(self) -> (Vec<(usize, usize)>, Vec<ClusterRow>) {
        let roots = self.matches.clusters(&self.order);
        let rows = self.update.rows;
        let assigned = self
            .place
            .iter()
            .zip(roots)
            .filter(|(n, _)| rows[**n].cluster.is_none())
            .map(|(n, root)| (*n, self.place[root as usize]))
            .collect();
        (assigned, rows)
    }
}

/// An update's comparing: the new members with each other and with the kept old members, by
/// the pairs `candidates` makes, the old members' signatures read and compared as they pass.
/// Neither the old members' signatures nor their band values are held: where templated text
/// makes band values popular, the kept old members were most of the members (243,000 against
/// 8,000 new ones on ../shared/bench's corpus at N = 10,000) and their signatures, held by
/// row, most of the run's peak.
async fn compare_update<S: Store>(
    ctx: &Ctx<S>,
    update: Update,
    candidates: cluster::Candidates,
    threshold: f64,
    window: chrono::Duration,
) -> Result<(Vec<(usize, usize)>, Vec<ClusterRow>), StoreError> {
    let task = |e: tokio::task::JoinError| StoreError::Task(e.to_string());
    let mut paired =
        tokio::task::spawn_blocking(move || update.pair(&candidates, threshold, window))
            .await
            .map_err(task)?;
    let passing = paired.passing();
    // (`pass` does not read the rows.)
    let rows = std::mem::take(&mut paired.update.rows);
    signatures_of(ctx, &rows, &passing, false, |n, sig| {
        paired.pass(n, sig.as_ref())
    })
    .await?;
    paired.update.rows = rows;
    tokio::task::spawn_blocking(move || paired.assigned())
        .await
        .map_err(task)
}

/// The [`cluster::Member`]s of the rows at `members` (positions, with their signatures).
fn members_of<'s>(
    rows: &[ClusterRow],
    members: impl ExactSizeIterator<Item = (usize, Option<&'s cluster::Signature>)>,
) -> Vec<cluster::Member<'s>> {
    let mut sources: HashMap<&str, u32, foldhash::fast::RandomState> = HashMap::default();
    members
        .map(|(n, sig)| {
            let r = &rows[n];
            let next = sources.len() as u32;
            cluster::Member {
                source: *sources.entry(&*r.source).or_insert(next),
                date: r.sort_date(),
                arrival: r.first_seen_at(),
                signature: sig,
                exact: cluster::exact_keys_of(r.link_key(), &r.id),
                keyed: r.cluster.is_some(),
            }
        })
        .collect()
}

/// The order of two rows' keys, as clustering breaks ties between new members.
fn cmp_rows(a: &ClusterRow, b: &ClusterRow) -> std::cmp::Ordering {
    publish::cmp_output_ids((&a.source, &a.id), (&b.source, &b.id))
}

/// What comparing a window gave: each new member's row with the row whose key names its cluster,
/// the rows handed back, and what the `clustered` debug line reports.
struct Compared {
    assigned: Vec<(usize, usize)>,
    rows: Vec<ClusterRow>,
    /// Items signed on the way (stored without a signature).
    signed: usize,
    /// Members compared.
    compared: usize,
    /// Reading the new members' signatures, probing the old ones' and reading all they need.
    new_ms: u64,
    probe_ms: u64,
    read_ms: u64,
    /// When assigning began.
    started: Instant,
    /// What the band index is brought to, saved with the keys.
    band: Option<crate::store::BandUpdate>,
}

/// Clustering of the first `n` rows (the window), every one compared, without
/// holding all their signatures: at a first run every member is new, and their signatures
/// were the largest part of the run's peak memory (320 bytes a member, 19 MB at N = 1,000
/// sources). The band values are made in two passes over the stored signatures, half of the
/// bands each; then only the members that banding paired with another (of another source,
/// within the window, sharing no exact key) are read again, to be compared (about half of them
/// at a first run). The first pass signs the items stored without
/// a signature and saves what it signs, so the later passes read those too. Returns the new
/// members' rows and their roots' (as [`Paired::assigned`]), the rows, how many items were
/// signed, the milliseconds from its start to its last read, and when that was.
async fn assign_streamed<S: Store>(
    ctx: &Ctx<S>,
    rows: Vec<ClusterRow>,
    n: usize,
    threshold: f64,
    window: chrono::Duration,
    held_at_once: usize,
    mut keep: bands::Keep,
) -> Result<Compared, StoreError> {
    let began = Instant::now();
    let task = |e: tokio::task::JoinError| StoreError::Task(e.to_string());
    // The members (without signatures) and their order; a member's place is its row.
    let (rows, of, order) = tokio::task::spawn_blocking(move || {
        let of = members_of(&rows, (0..n).map(|r| (r, None)));
        let order = cluster::order(&of, |a, b| cmp_rows(&rows[a], &rows[b]));
        (rows, of, order)
    })
    .await
    .map_err(task)?;
    let mut pos_of = vec![0u32; n];
    for (pos, m) in order.iter().enumerate() {
        pos_of[*m] = pos as u32;
    }
    let members: Vec<usize> = (0..n).collect();
    let mut banding = cluster::Banding::new(n, cluster::keyed(&of, &order));
    let mut signed = 0;
    for (pass, bands) in cluster::BandValues::parts(2).enumerate() {
        let mut values = cluster::BandValues::new(bands, n);
        signed += signatures_of(ctx, &rows, &members, pass == 0, |r, sig| {
            if let Some(sig) = sig {
                values.add(pos_of[r] as usize, &sig);
                if pass == 0 {
                    keep.add(&rows[r], &sig);
                }
            }
        })
        .await?;
        banding = tokio::task::spawn_blocking(move || {
            banding.add(&values);
            banding
        })
        .await
        .map_err(task)?;
    }
    drop(members);
    // Every member in the window is in the file, which is finished while banding finishes.
    let finish = tokio::task::spawn_blocking(move || {
        let pairs = banding.finish(&of, &order);
        let compared = pairs.compared(&of, &order, window);
        (pairs, compared, of, order)
    });
    let (band, finished) = tokio::join!(keep.update(bands::Delta::default()), finish);
    let (pairs, compared, of, order) = finished.map_err(task)?;
    // The members compared by their signatures are compared in one block of positions, or,
    // when they are more than `held_at_once` ([`HELD_AT_ONCE`]), in two, each holding the
    // signatures of half of them: first the pairs whose later member is in the first block
    // (so is the earlier one), then those whose later member is in the second, the earlier
    // members from the first block read again and compared as they pass.
    let total = compared.iter().filter(|c| **c).count();
    let mut seen = 0;
    let mid = if total <= held_at_once {
        n
    } else {
        compared
            .iter()
            .position(|c| {
                seen += usize::from(*c);
                seen > total / 2
            })
            .unwrap_or(n)
    };
    let rows_in = |block: std::ops::Range<usize>| -> Vec<usize> {
        let mut wanted = Vec::with_capacity(n);
        wanted.extend((0..n).filter(|r| {
            let pos = pos_of[*r] as usize;
            compared[pos] && block.contains(&pos)
        }));
        wanted
    };
    let mut matches = cluster::Matches::new(&of, &order, threshold, window);
    let held = hold_signatures(ctx, &rows, &rows_in(0..mid)).await?;
    let (mut matches, of, order, pairs) = tokio::task::spawn_blocking(move || {
        for (later, earlier) in pairs.later_in(0..mid) {
            matches.compare(&of, &order, later, earlier, || {
                (held.get(order[later]), held.get(order[earlier]))
            });
        }
        (matches, of, order, pairs)
    })
    .await
    .map_err(task)?;
    let held = hold_signatures(ctx, &rows, &rows_in(mid..n)).await?;
    drop(compared);
    // Pairs across the blocks that their signatures decide, as (earlier << 32 | later): they
    // wait for the earlier member to pass.
    let (mut matches, of, order, pairs, held, across) = tokio::task::spawn_blocking(move || {
        let mut across: Vec<u64> = Vec::new();
        for (later, earlier) in pairs.later_in(mid..n) {
            let sigs = || (held.get(order[later]), held.get(order[earlier]));
            matches.compare_or_wait(&of, &order, later, earlier, mid, sigs, &mut across);
        }
        across.sort_unstable();
        (matches, of, order, pairs, held, across)
    })
    .await
    .map_err(task)?;
    debug!(
        pairs = pairs.len(),
        across = across.len(),
        members = total,
        first_block = mid,
        "first run: candidate pairs compared"
    );
    drop(pairs);
    let mut passing: Vec<usize> = across.iter().map(|p| order[(p >> 32) as usize]).collect();
    passing.dedup();
    passing.sort_unstable();
    signatures_of(ctx, &rows, &passing, false, |r, sig| {
        let earlier = pos_of[r] as usize;
        let later_sig = |later: usize| held.get(order[later]);
        matches.compare_waiting(&of, &order, &across, earlier, sig.as_ref(), later_sig);
    })
    .await?;
    drop((passing, across, held, pos_of));
    let read_ms = began.elapsed().as_millis() as u64;
    let started = Instant::now();
    let (assigned, rows) = tokio::task::spawn_blocking(move || {
        let roots = matches.clusters(&order);
        drop(of);
        let mut assigned: Vec<(usize, usize)> = Vec::with_capacity(n);
        assigned.extend(
            roots
                .into_iter()
                .enumerate()
                .filter(|(r, _)| rows[*r].cluster.is_none())
                .map(|(r, root)| (r, root as usize)),
        );
        (assigned, rows)
    })
    .await
    .map_err(task)?;
    Ok(Compared {
        assigned,
        rows,
        signed,
        compared: n,
        new_ms: 0,
        probe_ms: 0,
        read_ms,
        started,
        band,
    })
}

/// Signatures a first run's clustering holds at once before it compares in two blocks (20 MB).
/// At N = 10,000 sources two blocks took a cold run's peak from 494 to 420 MB in the same
/// time; at N = 1,000 (31,000 members compared) a second block took 0.3 s more reading and
/// nothing off the peak, which is then in publishing.
const HELD_AT_ONCE: usize = 65_536;

/// Signatures read and held for clustering, by row.
struct Held {
    /// By row: the place of its signature in `sigs` (`u32::MAX`: none held).
    slot: Vec<u32>,
    sigs: Vec<cluster::Signature>,
}

impl Held {
    fn get(&self, row: usize) -> Option<&cluster::Signature> {
        self.sigs.get(*self.slot.get(row)? as usize)
    }
}

/// Reads and holds the stored signatures of the rows `wanted` (ascending).
async fn hold_signatures<S: Store>(
    ctx: &Ctx<S>,
    rows: &[ClusterRow],
    wanted: &[usize],
) -> Result<Held, StoreError> {
    let mut held = Held {
        slot: vec![u32::MAX; wanted.last().map_or(0, |r| r + 1)],
        sigs: Vec::with_capacity(wanted.len()),
    };
    signatures_of(ctx, rows, wanted, false, |r, sig| {
        if let Some(sig) = sig {
            held.slot[r] = held.sigs.len() as u32;
            held.sigs.push(sig);
        }
    })
    .await?;
    Ok(held)
}

/// The cluster key that the member at row `root` gives its cluster: the key it was given, or,
/// when that is its own id or it has none yet (it starts the cluster now), its own id.
fn root_key(root: &ClusterRow) -> String {
    match &root.cluster {
        Some(ClusterKey::Joined(k)) => k.clone(),
        Some(ClusterKey::Own) | None => publish::output_id(&root.source, &root.id),
    }
}

/// For every kept item of a `dedupe = "similar"` feed that stands for other versions of its
/// story: its cluster's id and the other versions. Heads hold their links' keys only: the
/// links of the versions merged into a kept one are read, a batch at a time (a version pruned
/// since the heads were read is listed without a link).
async fn merged_items<S: Store>(
    ctx: &Ctx<S>,
    decided: &[(&ItemHead, select::Decision)],
    clusters: &select::Clusters,
    sources: &HashMap<String, SourceInfo>,
) -> Result<HashMap<(String, String), publish::Merged>, StoreError> {
    let mut out: HashMap<(String, String), publish::Merged> = HashMap::new();
    let kept: HashMap<(&str, &str), &ItemHead> = decided
        .iter()
        .filter(|(_, d)| *d == select::Decision::Kept)
        .map(|(it, _)| ((&*it.source, it.id.as_str()), *it))
        .collect();
    let mut members: Vec<(&ItemHead, &ItemHead)> = decided
        .iter()
        .filter_map(|(it, d)| match d {
            select::Decision::Merged(to) => Some((*it, *kept.get(&(&*to.source, &*to.id))?)),
            _ => None,
        })
        .collect();
    members.sort_by(|(a, _), (b, _)| {
        (a.sort_date, &a.source, &a.id).cmp(&(b.sort_date, &b.source, &b.id))
    });
    let mut links: select::KeyMap<String> = select::KeyMap::default();
    for batch in members.chunks(TEXT_BATCH) {
        let keys: Vec<(String, String)> = batch
            .iter()
            .map(|(it, _)| (it.source.to_string(), it.id.clone()))
            .collect();
        links.extend(
            ctx.store
                .items_by_keys(&keys)
                .await?
                .into_iter()
                .filter_map(|it| Some((select::item_key(&it.source, &it.item.id), it.item.link?))),
        );
    }
    // A version kept alone still goes by its cluster's id, so that id holds when others join.
    for it in kept.values() {
        let id = select::cluster_key(clusters, *it);
        if id != publish::output_id(&it.source, &it.id) {
            out.insert(
                (it.source.to_string(), it.id.clone()),
                publish::Merged {
                    id,
                    related: Vec::new(),
                },
            );
        }
    }
    for (it, rep) in members {
        let entry = out
            .entry((rep.source.to_string(), rep.id.clone()))
            .or_insert_with(|| publish::Merged {
                id: select::cluster_key(clusters, rep),
                related: Vec::new(),
            });
        let url = links
            .get(&select::item_key(&it.source, &it.id))
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .cloned();
        if entry
            .related
            .iter()
            .any(|r| *r.source == *it.source && r.url == url)
        {
            continue;
        }
        entry.related.push(publish::Related {
            source: it.source.to_string(),
            title: sources
                .get(&*it.source)
                .map_or_else(|| it.source.to_string(), |s| s.title.clone()),
            url,
        });
    }
    Ok(out)
}

/// How many items are read at once to decide include/exclude patterns.
const TEXT_BATCH: usize = 512;

/// The text-rule decisions ([`select::text_decision`]) of the candidates of a feed with
/// include/exclude patterns, by (source, id); empty for a feed without. Items are read a batch
/// at a time, so a filtered feed never holds all its candidates.
async fn text_decisions<S: Store>(
    ctx: &Ctx<S>,
    feed: &OutputFeed,
    heads: &[&ItemHead],
) -> Result<HashMap<select::ItemKey, select::Decision>, StoreError> {
    let mut out = HashMap::new();
    if feed.include.is_empty() && feed.exclude.is_empty() {
        return Ok(out);
    }
    for batch in heads.chunks(TEXT_BATCH) {
        let keys: Vec<(String, String)> = batch
            .iter()
            .map(|h| (h.source.to_string(), h.id.clone()))
            .collect();
        for it in ctx.store.items_by_keys(&keys).await? {
            let d = select::text_decision(feed, &it);
            out.insert(select::item_key(&it.source, &it.item.id), d);
        }
    }
    Ok(out)
}

/// What `feed` makes of its candidates `heads` (newest first), as [`select::decide_by`] over
/// all of them would decide, for the candidates publishing reads: the kept ones, the ones
/// merged into them, and, when the feed has archive pages, those past the limit. Decided over
/// the newest few times `limit` and whatever is within their reach
/// ([`select::within_reach`]), that window growing until it settles the selection, so text
/// rules read and dedupe compares a few hundred items, not every stored one (600,000 at
/// N = 10,000 sources). The window holds at least the first `at_least` candidates, whose
/// decisions come first (`explain` shows them).
async fn decide_feed<'h, S: Store>(
    ctx: &Ctx<S>,
    feed: &OutputFeed,
    heads: &[&'h ItemHead],
    priorities: &select::Priorities,
    clusters: &select::Clusters,
    now: DateTime<Utc>,
    at_least: usize,
) -> Result<Vec<(&'h ItemHead, select::Decision)>, StoreError> {
    // Archive pages show what is past the limit: every candidate is decided on.
    let archived = feed.archive_pages > 0 && feed.formats.contains(&crate::config::Format::Atom);
    let mut k = if archived {
        heads.len()
    } else {
        feed.limit.saturating_mul(2).max(64).max(at_least)
    };
    // Text decisions read so far: a wider window reads only the candidates it adds.
    let mut texts: HashMap<select::ItemKey, select::Decision> = HashMap::new();
    let filtered = !(feed.include.is_empty() && feed.exclude.is_empty());
    loop {
        let part = select::within_reach(feed, heads, k, clusters);
        let part: Vec<&ItemHead> = part.into_iter().map(|n| heads[n]).collect();
        if filtered {
            let unread: Vec<&ItemHead> = part
                .iter()
                .copied()
                .filter(|h| !texts.contains_key(&select::item_key(&h.source, &h.id)))
                .collect();
            texts.extend(text_decisions(ctx, feed, &unread).await?);
        }
        let decided = select::decide_by(
            feed,
            part,
            |h| {
                texts
                    .get(&select::item_key(&h.source, &h.id))
                    .cloned()
                    .unwrap_or(select::Decision::Kept)
            },
            priorities,
            clusters,
            now,
        );
        let first = k.min(heads.len());
        if select::settled(feed, &decided[..first], first == heads.len()) {
            return Ok(decided);
        }
        k = k.saturating_mul(4);
    }
}

/// The `recent` newest candidates of one output feed, each with the rule that kept or dropped
/// it (`feedloom explain`): the decisions a decision over every stored candidate gives them,
/// made as publishing makes them.
pub async fn explain<S: Store>(
    ctx: &Ctx<S>,
    feed: &OutputFeed,
    recent: usize,
    now: DateTime<Utc>,
) -> Result<Vec<(StoredItem, select::Decision)>, StoreError> {
    let heads = ctx
        .store
        .heads(&ItemQuery {
            sources: Some(feed.sources.iter().cloned().collect()),
            since: None,
            limit: None,
        })
        .await?;
    let clusters = cluster_items(ctx).await?;
    let heads: Vec<&ItemHead> = heads.iter().collect();
    // Decided as publishing decides, on the candidates the first `recent` reach: they get the
    // decisions a decision over every candidate gives them, and only their items are read.
    let decided = decide_feed(
        ctx,
        feed,
        &heads,
        &priorities(&ctx.config),
        &clusters,
        now,
        recent,
    )
    .await?;
    let shown: Vec<(&ItemHead, select::Decision)> = decided.into_iter().take(recent).collect();
    let keys: Vec<(String, String)> = shown
        .iter()
        .map(|(h, _)| (h.source.to_string(), h.id.clone()))
        .collect();
    let mut items: HashMap<(String, String), StoredItem> = ctx
        .store
        .items_by_keys(&keys)
        .await?
        .into_iter()
        .map(|it| ((it.source.clone(), it.item.id.clone()), it))
        .collect();
    Ok(keys
        .into_iter()
        .zip(shown)
        .filter_map(|(key, (_, decision))| Some((items.remove(&key)?, decision)))
        .collect())
}

/// Renders every output of every `[[feed]]` from the store and writes the ones whose bytes
/// changed, under the store's publish lock (so instances sharing a database and an output
/// folder take turns; temp files of killed runs are swept here).
///
/// Outputs depend only on the stored state and the config, so every instance renders the
/// same bytes: `max_age` counts back from the newest recorded fetch, not from this instance's
/// clock (`now` only when nothing was fetched yet).
///
/// Unless `always`, nothing is read or rendered when the last complete publish into the output
/// folder was made from the same items, sources, config and build ([`PUBLISHED_MARKER`]).
pub async fn publish_all<S: Store>(
    ctx: &Ctx<S>,
    now: DateTime<Utc>,
    always: bool,
) -> Result<PublishReport, StoreError> {
    let _publishing = ctx.store.lock_publish().await?;
    let settings = &ctx.config.settings;
    let swept = publish::sweep_temp_files(&settings.output_dir);
    if swept > 0 {
        info!(
            files = swept,
            "removed temp files left by an interrupted run"
        );
    }
    let (sources, newest_fetch) = source_infos(ctx).await?;
    let now = newest_fetch.unwrap_or(now);
    // Nothing to do when the last complete publish into this folder rendered from the same
    // items, sources and config (and every output is still there): a run where every source
    // answered 304 reads no items at all.
    let generation = ctx.store.generation().await?;
    let fingerprint = publish_fingerprint(&ctx.config, generation, &sources, now);
    let marker = settings.output_dir.join(PUBLISHED_MARKER);
    let outputs = expected_outputs(&ctx.config);
    if !always
        && std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == fingerprint)
        && outputs.iter().all(|p| p.is_file())
    {
        debug!("nothing changed since the last publish: outputs left as they are");
        return Ok(PublishReport {
            unchanged: outputs.iter().map(|p| p.display().to_string()).collect(),
            ..PublishReport::default()
        });
    }
    // Outputs are about to change: until this publish is complete, no marker may say they
    // match what they were rendered from (a run that fails or dies halfway would otherwise
    // leave a mix that a later run, back at the old inputs, takes for complete).
    if let Err(e) = std::fs::remove_file(&marker)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(output = %marker.display(), error = %e, "could not clear the publish record");
    }
    // Clustering reads every item's row, which is all a feed selects by: then that read gives
    // the feeds their heads too.
    let (clusters, rows) = cluster_all(ctx).await?.unzip();
    // The run's writes are done: the store folds its log of them back into its file
    // ([`Store::checkpoint`]) while the outputs are made, which closing the store did after
    // them (two fsyncs, about 35 ms of an update at N = 1,000).
    let outputs = async {
        let clusters = clusters.unwrap_or_default();
        let mut pctx = Context {
            base_url: settings.base_url.clone(),
            sources: Arc::new(sources),
            ttl_minutes: (settings.default_interval.as_secs() / 60).max(1),
            hubs: settings.websub_hubs.clone(),
            merged: Default::default(),
        };
        let priorities = priorities(&ctx.config);
        let mut report = PublishReport::default();
        let mut writes = Writes::default();
        let mut index = Vec::with_capacity(ctx.config.feeds.len());
        let since_of = |feed: &OutputFeed| {
            feed.max_age
                .and_then(|a| chrono::Duration::from_std(a).ok())
                .and_then(|a| now.checked_sub_signed(a))
        };
        // Selection reads item heads (an index), and items only where it must: the text of
        // candidates when the feed has include/exclude patterns, then the items it publishes. The
        // heads of every feed come from one read (the union of their sources, back to the oldest
        // date any of them needs), each feed taking its own from it.
        let union: BTreeSet<&String> = ctx.config.feeds.iter().flat_map(|f| &f.sources).collect();
        // Each head's source is looked up in a hashed set.
        let in_union: select::SourceSet<'_> = union.iter().map(|s| s.as_str()).collect();
        let oldest = ctx
            .config
            .feeds
            .iter()
            .map(since_of)
            .reduce(|a, b| a.zip(b).map(|(a, b)| a.min(b)))
            .flatten();
        let began = Instant::now();
        let all_heads = match rows {
            Some(rows) => {
                let mut heads: Vec<ItemHead> = rows
                    .into_iter()
                    .filter(|r| {
                        in_union.contains(&*r.source)
                            && oldest.is_none_or(|s| r.date >= crate::store::seconds_from(s))
                    })
                    .map(|r| ItemHead {
                        first_seen: r.first_seen_at(),
                        sort_date: r.sort_date(),
                        link_key: r.link_key(),
                        source: r.source,
                        id: r.id.into_string(),
                    })
                    .collect();
                // Collected in the rows' own buffer, larger than the heads need: the rest goes
                // before the feeds are rendered.
                heads.shrink_to_fit();
                heads
            }
            None => {
                ctx.store
                    .heads(&ItemQuery {
                        sources: Some(union.into_iter().cloned().collect()),
                        since: oldest,
                        limit: None,
                    })
                    .await?
            }
        };
        let heads_ms = began.elapsed().as_millis() as u64;
        let mut select_ms = 0;
        // Whatever happens to the selection, the writes already started are waited for before
        // this returns: none may go on after the publish lock is let go.
        let selected = async {
            for (at, feed) in ctx.config.feeds.iter().enumerate() {
                let selecting = Instant::now();
                let in_feed: select::SourceSet<'_> =
                    feed.sources.iter().map(String::as_str).collect();
                let since = since_of(feed);
                let heads: Vec<&ItemHead> = all_heads
                    .iter()
                    .filter(|h| {
                        in_feed.contains(&*h.source) && since.is_none_or(|s| h.sort_date >= s)
                    })
                    .collect();
                let decided =
                    decide_feed(ctx, feed, &heads, &priorities, &clusters, now, 0).await?;
                if feed.dedupe == Dedupe::Similar {
                    let merged = merged_items(ctx, &decided, &clusters, &pctx.sources).await?;
                    pctx.merged.insert(feed.name.clone(), Arc::new(merged));
                }
                let fctx = Arc::new(pctx.for_feed(&feed.name));
                let mut kept = Vec::new();
                let mut beyond = Vec::new();
                for (h, decision) in decided {
                    match decision {
                        select::Decision::Kept => kept.push((h.source.to_string(), h.id.clone())),
                        select::Decision::Limit => beyond.push(h),
                        _ => {}
                    }
                }
                let items = Arc::new(ctx.store.items_by_keys(&kept).await?);
                select_ms += selecting.elapsed().as_millis() as u64;
                let mut prev_archive = None;
                if feed.archive_pages > 0 && feed.formats.contains(&crate::config::Format::Atom) {
                    // Archive pages hold the newest `archive_pages` months of what is beyond the limit.
                    let mut months: Vec<String> = Vec::new();
                    let beyond: Vec<(String, String)> = beyond
                        .into_iter()
                        .filter(|h| {
                            let month = h.sort_date.format("%Y-%m").to_string();
                            if !months.contains(&month) {
                                months.push(month.clone());
                            }
                            months.iter().position(|m| *m == month) < Some(feed.archive_pages)
                        })
                        .map(|h| (h.source.to_string(), h.id.clone()))
                        .collect();
                    let beyond = ctx.store.items_by_keys(&beyond).await?;
                    match publish::archive_pages(feed, &beyond, &pctx) {
                        Ok((pages, newest)) => {
                            for (file, bytes) in pages {
                                writes.add(&settings.output_dir, &file, Ok(bytes)).await;
                            }
                            prev_archive = newest;
                        }
                        Err(e) => writes.add(&settings.output_dir, &feed.name, Err(e)).await,
                    }
                }
                // Each format is rendered and written on the blocking pool while the next
                // feed is selected, side by side with the others.
                for format in feed.formats.clone() {
                    let file = format!("{}.{}", feed.name, format.extension());
                    let (config, items, fctx) = (ctx.config.clone(), items.clone(), fctx.clone());
                    let prev = prev_archive.clone();
                    writes
                        .render(&settings.output_dir, &file, move || {
                            let feed = &config.feeds[at];
                            publish::render(feed, &items, &fctx, format, prev.as_deref())
                        })
                        .await;
                }
                index.push((
                    at,
                    items.iter().take(publish::html::LATEST).cloned().collect(),
                ));
            }
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = selected {
            writes.finish(&mut report).await;
            return Err(e);
        }
        debug!(heads_ms, select_ms, "feeds selected");
        let pctx = Arc::new(pctx);
        let (config, html_ctx) = (ctx.config.clone(), pctx.clone());
        writes
            .render(&settings.output_dir, "index.html", move || {
                let index: Vec<(&OutputFeed, Vec<StoredItem>)> = index
                    .into_iter()
                    .map(|(at, items)| (&config.feeds[at], items))
                    .collect();
                Ok(publish::html::render(&index, &html_ctx))
            })
            .await;
        let config = ctx.config.clone();
        writes
            .render(&settings.output_dir, "sources.opml", move || {
                Ok(render_opml(&config, &pctx.sources))
            })
            .await;
        let writing = Instant::now();
        writes.finish(&mut report).await;
        debug!(
            waited_ms = writing.elapsed().as_millis() as u64,
            "outputs rendered and written"
        );
        if report.failed.is_empty() {
            // Only a complete publish is remembered; a failed one is tried again next time.
            if let Err(e) = publish::write_atomic(&marker, format!("{fingerprint}\n").as_bytes()) {
                warn!(output = %marker.display(), error = %e, "could not record the publish");
            }
        }
        Ok::<_, StoreError>(report)
    };
    // The checkpoint first: its blocking task starts before the outputs' first long stretch.
    let (folded, report) = tokio::join!(ctx.store.checkpoint(), outputs);
    if let Err(e) = folded {
        warn!(error = %e, "could not fold the database's log back into its file; closing it will");
    }
    report
}

/// The file a complete publish leaves in the output folder: the fingerprint of what it was
/// rendered from ([`publish_fingerprint`]).
pub const PUBLISHED_MARKER: &str = ".feedloom.published";

/// What the outputs depend on, hashed: the store's item generation, the sources' attribution,
/// the config (every setting, source and feed), the time `max_age` counts back from (only when
/// a feed has one), and this build of feedloom (another build may render differently).
fn publish_fingerprint(
    config: &Config,
    generation: u64,
    sources: &HashMap<String, SourceInfo>,
    now: DateTime<Utc>,
) -> String {
    let mut infos: Vec<_> = sources.iter().collect();
    infos.sort_by(|a, b| a.0.cmp(b.0));
    let clock = config
        .feeds
        .iter()
        .any(|f| f.max_age.is_some())
        .then_some(now);
    let build = std::env::current_exe()
        .and_then(std::fs::metadata)
        .and_then(|m| m.modified())
        .ok();
    let text = format!(
        "{}|{build:?}|{generation}|{clock:?}|{infos:?}|{:?}|{:?}|{:?}",
        env!("CARGO_PKG_VERSION"),
        config.settings,
        config.sources,
        config.feeds
    );
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

/// Every file a publish writes for sure (archive pages aside).
fn expected_outputs(config: &Config) -> Vec<std::path::PathBuf> {
    let dir = &config.settings.output_dir;
    let mut out: Vec<_> = config
        .feeds
        .iter()
        .flat_map(|f| {
            f.formats
                .iter()
                .map(move |fmt| dir.join(format!("{}.{}", f.name, fmt.extension())))
        })
        .collect();
    out.push(dir.join("index.html"));
    out.push(dir.join("sources.opml"));
    out
}

/// Writes one rendered output (when its bytes changed) and notes the outcome.
/// A publish's outputs, each written (with its fsync) on the blocking pool while the next one is
/// rendered: written one after another, their fsyncs were a third of rendering and writing an
/// update's outputs. At most [`WRITES_AT_ONCE`] are under way. The report takes them in the
/// order they were made, and a file made twice (a feed named like another's archive page, or
/// like another feed but for case, which some file systems ignore) is written in that order too.
/// [`Writes::finish`] must be awaited before the publish lock goes, also when publishing fails.
#[derive(Default)]
struct Writes(Vec<(std::path::PathBuf, Write)>);

/// Outputs written at once: enough for the fsyncs to overlap, few enough to leave the blocking
/// pool to the store.
const WRITES_AT_ONCE: usize = 8;

enum Write {
    Started(tokio::task::JoinHandle<Result<bool, PublishError>>),
    Done(Result<bool, PublishError>),
    /// Waits for the write of the same file started before it.
    After(Vec<u8>),
    NotRendered(PublishError),
}

impl Writes {
    /// Starts writing `file` in `dir` (or records why it was not rendered), once fewer than
    /// [`WRITES_AT_ONCE`] writes are under way.
    async fn add(
        &mut self,
        dir: &std::path::Path,
        file: &str,
        rendered: Result<Vec<u8>, PublishError>,
    ) {
        let path = dir.join(file);
        let write = match rendered {
            Err(e) => Write::NotRendered(e),
            Ok(bytes) if self.writing(&path) => Write::After(bytes),
            Ok(bytes) => {
                self.make_room().await;
                let at = path.clone();
                Write::Started(tokio::task::spawn_blocking(move || {
                    publish::write_atomic(&at, &bytes)
                }))
            }
        };
        self.0.push((path, write));
    }

    /// Renders `file` with `render` and writes it in `dir`, both on the blocking pool, once
    /// fewer than [`WRITES_AT_ONCE`] writes are under way. A file already being written (two
    /// names alike but for case) is rendered here and waits for that write.
    async fn render<F>(&mut self, dir: &std::path::Path, file: &str, render: F)
    where
        F: FnOnce() -> Result<Vec<u8>, PublishError> + Send + 'static,
    {
        let path = dir.join(file);
        if self.writing(&path) {
            return self.add(dir, file, render()).await;
        }
        self.make_room().await;
        let at = path.clone();
        let task = tokio::task::spawn_blocking(move || publish::write_atomic(&at, &render()?));
        self.0.push((path, Write::Started(task)));
    }

    /// Whether `path` (or a name alike but for case) is already among the writes.
    fn writing(&self, path: &std::path::Path) -> bool {
        self.0
            .iter()
            .any(|(p, _)| p.as_os_str().eq_ignore_ascii_case(path.as_os_str()))
    }

    /// Waits for the earliest write under way when [`WRITES_AT_ONCE`] are.
    async fn make_room(&mut self) {
        let under_way = self
            .0
            .iter()
            .filter(|(_, w)| matches!(w, Write::Started(_)))
            .count();
        if under_way >= WRITES_AT_ONCE
            && let Some((at, w)) = self
                .0
                .iter_mut()
                .find(|(_, w)| matches!(w, Write::Started(_)))
            && let Write::Started(task) = std::mem::replace(w, Write::Done(Ok(false)))
        {
            *w = Write::Done(joined(task.await, at));
        }
    }

    /// Waits for every write and reports each.
    async fn finish(self, report: &mut PublishReport) {
        for (path, write) in self.0 {
            let done = match write {
                Write::Started(task) => joined(task.await, &path),
                Write::Done(done) => done,
                Write::After(bytes) => {
                    let at = path.clone();
                    let task =
                        tokio::task::spawn_blocking(move || publish::write_atomic(&at, &bytes));
                    joined(task.await, &path)
                }
                Write::NotRendered(e) => Err(e),
            };
            Self::report(report, &path, done);
        }
    }

    fn report(
        report: &mut PublishReport,
        path: &std::path::Path,
        done: Result<bool, PublishError>,
    ) {
        let name = path.display().to_string();
        match done {
            Ok(true) => report.written.push(name),
            Ok(false) => report.unchanged.push(name),
            Err(e) => {
                warn!(output = %name, error = %e, "publish failed");
                report.failed.push(e.to_string());
            }
        }
    }
}

/// A write's outcome, a panic in it counted as a failure to write `path`.
fn joined(
    done: Result<Result<bool, PublishError>, tokio::task::JoinError>,
    path: &std::path::Path,
) -> Result<bool, PublishError> {
    done.unwrap_or_else(|e| {
        Err(PublishError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

fn render_opml(config: &Config, infos: &HashMap<String, SourceInfo>) -> Vec<u8> {
    let outlines: Vec<publish::opml::Outline<'_>> = config
        .sources
        .iter()
        .filter_map(|s| {
            Some(publish::opml::Outline {
                info: infos.get(&s.name)?,
                tags: &s.tags,
            })
        })
        .collect();
    publish::opml::render("feedloom sources", &outlines)
}

/// The configured sources as OPML 2.0 (`feedloom sources export`).
pub async fn export_opml<S: Store>(ctx: &Ctx<S>) -> Result<Vec<u8>, StoreError> {
    Ok(render_opml(&ctx.config, &source_infos(ctx).await?.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading light the items a document had before changes nothing: the items, the ids
    /// reused and what is remembered are what reading the document whole gives, whatever
    /// changed in between: items changed, added, dropped or sent twice, ids that shift, items
    /// without a guid (links count), another address (another context).
    #[test]
    fn reading_known_items_light_gives_what_reading_them_whole_gives() {
        let item = |guid: &str, text: &str| {
            let guid = if guid.is_empty() {
                String::new()
            } else {
                format!("<guid isPermaLink=\"false\">{guid}</guid>")
            };
            format!(
                "<item><title>Story {text}</title>{guid}<link>/s/{text}</link>\
                 <pubDate>Mon, 30 Nov 2026 0{}:00:00 +0000</pubDate>\
                 <description>&lt;p&gt;The story of {text}, told at length.&lt;/p&gt;</description>\
                 <content:encoded><![CDATA[<p>The story of {text}, told at length.</p><p>More about {text}.</p>]]></content:encoded></item>",
                text.len() % 10
            )
        };
        let doc = |items: &[String]| {
            format!(
                "<?xml version=\"1.0\"?><rss version=\"2.0\" \
                 xmlns:content=\"http://purl.org/rss/1.0/modules/content/\"><channel>\
                 <title>T</title><link>http://ex.org/</link>{}</channel></rss>",
                items.concat()
            )
        };
        let (a, b, c, d) = (
            item("a", "alpha"),
            item("b", "beta"),
            item("c", "gamma"),
            item("d", "delta"),
        );
        let first = doc(&[a.clone(), b.clone(), c.clone(), d.clone()]);
        let nexts = [
            // The same again.
            first.clone(),
            // One new, one changed, one dropped.
            doc(&[
                item("e", "epsilon"),
                a.clone(),
                b.clone(),
                item("c", "gamma2"),
            ]),
            // One sent twice (its copies get numbered ids).
            doc(&[a.clone(), a.clone(), b.clone()]),
            // A new item with the guid of an old one: ids shift.
            doc(&[item("a", "other"), a.clone(), c.clone()]),
            // An item without a guid: links count.
            doc(&[item("", "nameless"), a.clone(), b.clone()]),
        ];
        let detector = Detector::new(&[]);
        let now = Utc::now();
        let limits = parse::Limits::default();
        let rules_at = |at: &str| Rules {
            location: Some(Url::parse(at).unwrap()),
            detector: Some(&detector),
            ..Rules::default()
        };
        let rules = rules_at("http://ex.org/feed.xml");
        let prev = read_reusing(&first, &rules, &limits, now, None, true).unwrap();
        assert_eq!(prev.items.len(), 4);
        for (n, next) in nexts.iter().enumerate() {
            for rules in [&rules, &rules_at("http://ex.org/moved.xml")] {
                let whole = read_reusing(next, rules, &limits, now, Some(&prev.reuse), false);
                let light = read_reusing(next, rules, &limits, now, Some(&prev.reuse), true);
                assert_eq!(light.unwrap(), whole.unwrap(), "document {n}");
            }
        }
        // The same document again: every item is read light and reused.
        let known = prev.reuse.hashes();
        let knows = |h: u64| known.contains(&h);
        let deadline = std::time::Instant::now() + limits.max_time;
        let raw = parse::parse_skipping(&first, &limits, deadline, Some(&knows)).unwrap();
        assert!(raw.items.iter().all(|i| i.light && i.content.is_none()));
        let again = read_reusing(&first, &rules, &limits, now, Some(&prev.reuse), true).unwrap();
        assert!(again.items.is_empty());
        assert_eq!(again.unchanged.len(), 4);
        // A changed item is normalised again.
        let changed =
            read_reusing(&nexts[1], &rules, &limits, now, Some(&prev.reuse), true).unwrap();
        let fresh: Vec<&str> = changed.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(fresh, ["e", "c"]);
        assert_eq!(changed.unchanged, ["a", "b"]);
    }

    /// New items tied on arrival and date are taken in the order of their published ids, as
    /// strings: of "a"/"z" and "a-b"/"a", "urn:feedloom:a-b:a" comes first ('-' sorts before
    /// ':'), though ("a", "z") is before ("a-b", "a") as a pair. The first starts the cluster.
    #[test]
    fn an_update_breaks_ties_by_published_id() {
        let t = 1_750_000_000;
        let row = |source: &str, id: &str| ClusterRow {
            source: source.into(),
            id: id.into(),
            date: t,
            first_seen: t,
            link: ClusterRow::NO_LINK,
            cluster: None,
        };
        let sig = cluster::Signature {
            full: [7; cluster::HASHES],
            head: [7; cluster::HEAD_HASHES],
        };
        for rows in [
            vec![row("a", "z"), row("a-b", "a")],
            vec![row("a-b", "a"), row("a", "z")],
        ] {
            let b = rows.iter().position(|r| &*r.source == "a-b").unwrap();
            let update = Update {
                rows,
                kept: Vec::new(),
                new: vec![0, 1],
                new_sigs: vec![Some(sig.clone()), Some(sig.clone())],
            };
            let candidates = cluster::Candidates::new(update.new.iter().map(|n| {
                let r = &update.rows[*n];
                (Some(&sig), cluster::exact_keys_of(r.link_key(), &r.id))
            }));
            let paired = update.pair(&candidates, 0.2, chrono::Duration::hours(72));
            assert!(paired.across.is_empty());
            let (mut got, rows) = paired.assigned();
            got.sort();
            assert_eq!(got, [(0, b), (1, b)]);
            assert_eq!(root_key(&rows[b]), "urn:feedloom:a-b:a");
        }
    }

    /// A claim window takes candidates in order, at most twice `per_host` of a host and
    /// `CLAIM_WINDOW` in all; sources without a host are not counted against any.
    #[test]
    fn claim_windows_take_a_few_of_each_host_in_order() {
        let at = |name: String, host: Option<u32>| {
            let c = Candidate {
                name,
                host: host.map(|h| format!("h{h}")),
                url: String::new(),
                seen: None,
            };
            (c, host)
        };
        // Host 0 first and most, then host 1 and files, interleaved.
        let mut remaining: Vec<_> = (0..10).map(|n| at(format!("a{n}"), Some(0))).collect();
        for n in 0..6 {
            remaining.push(at(format!("b{n}"), Some(1)));
            remaining.push(at(format!("f{n}"), None));
        }
        let names = |w: Vec<usize>| -> Vec<String> {
            w.iter().map(|n| remaining[*n].0.name.clone()).collect()
        };
        assert_eq!(
            names(claim_window(
                &remaining,
                &vec![false; remaining.len()],
                0,
                2,
                2
            )),
            [
                "a0", "a1", "a2", "a3", "b0", "f0", "b1", "f1", "b2", "f2", "b3", "f3", "f4", "f5"
            ]
        );
        // Those gone, and those before `first`, are passed over.
        let mut gone = vec![false; remaining.len()];
        for n in [1, 2, 11, 12] {
            gone[n] = true;
        }
        assert_eq!(
            names(claim_window(&remaining, &gone, 1, 2, 2)),
            [
                "a3", "a4", "a5", "a6", "b0", "f1", "b2", "f2", "b3", "f3", "b4", "f4", "f5"
            ]
        );
        let many: Vec<_> = (0..300).map(|n| at(format!("x{n}"), Some(n % 7))).collect();
        let window = claim_window(&many, &[false; 300], 0, 7, 100);
        assert_eq!(window, (0..CLAIM_WINDOW).collect::<Vec<_>>());
    }

    /// An item under its own id joins the map only when another item joined its cluster; own
    /// ids are rebuilt (escapes included) to be compared with the joined keys.
    #[test]
    fn cluster_map_gives_a_cluster_head_its_own_id() {
        let (head, other, alone) = (("a", "x y/é%1"), ("b", "2"), ("c", "3"));
        let key = publish::output_id(head.0, head.1);
        let mut map = ClusterMap::default();
        map.add(head.0, head.1, ClusterKey::Own);
        map.add(other.0, other.1, ClusterKey::Joined(key.clone()));
        map.add(alone.0, alone.1, ClusterKey::Own);
        let clusters = map.finish();
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters.get(&select::item_key(head.0, head.1)), Some(&key));
        assert_eq!(
            clusters.get(&select::item_key(other.0, other.1)),
            Some(&key)
        );
        assert_eq!(clusters.get(&select::item_key(alone.0, alone.1)), None);
    }

    /// Every stored item's (source, id, cluster key), sorted; an item under its own id has that.
    pub(super) async fn stored_keys(store: &impl Store) -> Vec<(String, String, String)> {
        let mut keys: Vec<(String, String, String)> = store
            .cluster_rows()
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let key = match r.cluster.expect("every item has a key") {
                    ClusterKey::Own => publish::output_id(&r.source, &r.id),
                    ClusterKey::Joined(k) => k,
                };
                (r.source.to_string(), r.id.into_string(), key)
            })
            .collect();
        keys.sort();
        keys
    }

    /// An item that retells a story in English: titled by the core's first three words, its
    /// body the core and then words of its own.
    pub(super) fn story_item(
        id: String,
        core: &[String],
        own: &[String],
        published: DateTime<Utc>,
    ) -> crate::model::Item {
        crate::model::Item {
            id,
            title: format!("{} {} {}", core[0], core[1], core[2]),
            link: None,
            published: Some(published),
            updated: None,
            authors: vec![],
            summary: None,
            content_html: Some(format!("<p>{} {}</p>", core.join(" "), own.join(" "))),
            categories: vec![],
            language: Some("en".into()),
            enclosures: vec![],
            image: None,
        }
    }

    /// A store holding three sources that retell the same twenty stories (60 items each), each
    /// in its own words around a shared core: each story is one cluster of nine items.
    async fn twenty_stories(dir: &std::path::Path) -> Ctx<crate::store::AnyStore> {
        let ctx = similar_ctx(dir).await;
        let now = Utc::now();
        for (s, source) in ["a", "b", "c"].into_iter().enumerate() {
            let items: Vec<crate::model::Item> = (0..60)
                .map(|i| {
                    let story = i % 20;
                    let core: Vec<String> = (0..40).map(|w| format!("s{story}w{w}")).collect();
                    let own: Vec<String> = (0..12).map(|w| format!("o{s}i{i}w{w}")).collect();
                    story_item(
                        format!("https://{source}.example/{i}"),
                        &core,
                        &own,
                        now - chrono::Duration::minutes((i * 7 + s) as i64),
                    )
                })
                .collect();
            let sigs = signature_bytes(&items);
            ctx.store
                .upsert_signed_items(source, &items, sigs, &[], None, now)
                .await
                .unwrap();
        }
        ctx
    }

    /// A store in `dir` for sources a, b and c, with one feed that dedupes similar items.
    pub(super) async fn similar_ctx(dir: &std::path::Path) -> Ctx<crate::store::AnyStore> {
        let text = format!(
            "[settings]\ndatabase = {:?}\noutput_dir = {:?}\n\
             [[source]]\nname = \"a\"\nurl = \"https://a.example/feed\"\n\
             [[source]]\nname = \"b\"\nurl = \"https://b.example/feed\"\n\
             [[source]]\nname = \"c\"\nurl = \"https://c.example/feed\"\n\
             [[feed]]\nname = \"all\"\ntitle = \"All\"\ndedupe = \"similar\"\n",
            dir.join("feedloom.db"),
            dir.join("public"),
        );
        let config = Config::parse(&text, &dir.join("config.toml")).unwrap();
        Ctx {
            store: crate::store::AnyStore::open(&config.settings.database, 2)
                .await
                .unwrap(),
            fetcher: Fetcher::new(&config.settings).unwrap(),
            detector: Arc::new(Detector::new(&[])),
            config: Arc::new(config),
        }
    }

    /// An update's clustering gives each new item the key `cluster::assign` gives it over every
    /// item in the window (old ones keeping theirs), also where a shared template paragraph
    /// makes band values held by more items than `BUCKET_CAP` and many old items are kept: five
    /// sources retelling stories old and new, in rounds.
    #[tokio::test]
    async fn an_update_gives_new_items_the_keys_assign_gives_over_all() {
        update_against_assign(false).await;
    }

    /// The same where the first round's signatures were stored by the earlier formula (no
    /// format byte): they are not read as this one's but made again from the items, so new
    /// items still join the old stories, and every stored signature ends in this form.
    #[tokio::test]
    async fn signatures_of_the_earlier_formula_are_made_again() {
        update_against_assign(true).await;
    }

    async fn update_against_assign(earlier_formula: bool) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = similar_ctx(dir.path()).await;
        let settings = &ctx.config.settings;
        let window = chrono::Duration::from_std(settings.similar_window).unwrap();
        let template: Vec<String> = (0..20).map(|w| format!("template{w}")).collect();
        let mut next = crate::cluster::tests::seeded(5);
        let mut items: HashMap<(String, String), crate::model::Item> = HashMap::new();
        let t0 = Utc::now() - chrono::Duration::hours(10);
        let mut joined_old = 0;
        for round in 0..5 {
            let now = t0 + chrono::Duration::minutes(30 * round);
            for s in 0..5 {
                let source = format!("t{s}");
                let fresh: Vec<crate::model::Item> = (0..if round == 0 { 30 } else { 8 })
                    .map(|i| {
                        let story = next(40);
                        let core: Vec<String> = (0..40).map(|w| format!("s{story}w{w}")).collect();
                        let mut own: Vec<String> =
                            (0..20).map(|w| format!("r{round}t{s}i{i}w{w}")).collect();
                        own.extend(template.iter().cloned());
                        story_item(
                            format!("https://{source}.example/{round}/{i}"),
                            &core,
                            &own,
                            now - chrono::Duration::minutes(next(300) as i64),
                        )
                    })
                    .collect();
                for it in &fresh {
                    items.insert((source.clone(), it.id.clone()), it.clone());
                }
                let sigs = signature_bytes(&fresh);
                ctx.store
                    .upsert_signed_items(&source, &fresh, sigs, &[], None, now)
                    .await
                    .unwrap();
            }
            // The model: `assign` over every item, in the order clustering takes them.
            let mut rows = ctx.store.cluster_rows().await.unwrap();
            rows.sort_by(|a, b| {
                b.date
                    .cmp(&a.date)
                    .then_with(|| (&a.source, &a.id).cmp(&(&b.source, &b.id)))
            });
            let sigs: Vec<Option<cluster::Signature>> = rows
                .iter()
                .map(|r| {
                    let key = (r.source.to_string(), r.id.to_string());
                    items.get(&key).and_then(cluster::signature)
                })
                .collect();
            let of = members_of(&rows, sigs.iter().enumerate().map(|(n, s)| (n, s.as_ref())));
            let roots = cluster::assign(&of, settings.similar_threshold, window, |a, b| {
                cmp_rows(&rows[a], &rows[b])
            });
            let key_of = |n: usize| match &rows[n].cluster {
                Some(ClusterKey::Joined(k)) => k.clone(),
                _ => publish::output_id(&rows[n].source, &rows[n].id),
            };
            let mut want: Vec<(String, String, String)> = (0..rows.len())
                .map(|n| {
                    let key = key_of(if rows[n].cluster.is_some() {
                        n
                    } else {
                        roots[n] as usize
                    });
                    (rows[n].source.to_string(), rows[n].id.to_string(), key)
                })
                .collect();
            want.sort();
            joined_old += (0..rows.len())
                .filter(|n| {
                    rows[*n].cluster.is_none() && rows[roots[*n] as usize].cluster.is_some()
                })
                .count();
            cluster_items(&ctx).await.unwrap();
            let got = stored_keys(&ctx.store).await;
            assert_eq!(got.len(), want.len());
            let differ: Vec<_> = got.iter().zip(&want).filter(|(g, w)| g != w).collect();
            assert!(
                differ.is_empty(),
                "round {round}: {} keys differ, first {:?}",
                differ.len(),
                differ.first()
            );
            if earlier_formula && round == 0 {
                // As a database of the earlier build holds them: 320 bytes of other values,
                // without the format byte (and no log of items signed again).
                let c = rusqlite::Connection::open(dir.path().join("feedloom.db")).unwrap();
                let n = c
                    .execute("UPDATE signatures SET signature = randomblob(320)", [])
                    .unwrap();
                assert!(n > 100, "{n} signatures rewritten");
                c.execute("DELETE FROM band_log", []).unwrap();
            }
        }
        assert!(
            joined_old > 20,
            "new items joined old clusters: {joined_old}"
        );
        let rows = ctx.store.cluster_rows().await.unwrap();
        let keys: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r.source.to_string(), r.id.to_string()))
            .collect();
        let stored = ctx
            .store
            .signatures(keys.iter().map(|(s, i)| (s.as_str(), i.as_str())).collect())
            .await
            .unwrap();
        for ((source, id), bytes) in keys.iter().zip(&stored) {
            let want = cluster::signature(&items[&(source.clone(), id.clone())]);
            let got = bytes.as_deref().and_then(cluster::Signature::from_bytes);
            assert_eq!(got, want, "{source} {id}");
        }
    }

    /// `explain` shows the `recent` newest candidates with the decisions a decision over every
    /// stored candidate gives them, though it decides, as publishing does, only on those the
    /// first `recent` reach: on twenty stories told by three sources, for several limits,
    /// per-source limits and dedupe modes.
    #[tokio::test]
    async fn explain_gives_the_decisions_of_a_decision_over_every_candidate() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = twenty_stories(dir.path()).await;
        let clusters = cluster_items(&ctx).await.unwrap();
        let now = Utc::now();
        let all = ctx
            .store
            .items(&ItemQuery {
                sources: Some(vec!["a".into(), "b".into(), "c".into()]),
                since: None,
                limit: None,
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 180);
        let shown = |v: &[(StoredItem, select::Decision)]| -> Vec<(String, String, String)> {
            v.iter()
                .map(|(it, d)| (it.source.clone(), it.item.id.clone(), d.to_string()))
                .collect()
        };
        for (limit, per_source, dedupe) in [
            (3, 0, Dedupe::Similar),
            (10, 0, Dedupe::Similar),
            (10, 2, Dedupe::Similar),
            (25, 0, Dedupe::Exact),
            (100, 0, Dedupe::Off),
        ] {
            let mut feed = ctx.config.feeds[0].clone();
            feed.limit = limit;
            feed.per_source_limit = per_source;
            feed.dedupe = dedupe;
            let want = select::decide(&feed, all.clone(), &priorities(&ctx.config), &clusters, now);
            for recent in [1, 5, 64, 180] {
                let got = explain(&ctx, &feed, recent, now).await.unwrap();
                assert_eq!(
                    shown(&got),
                    shown(&want[..recent]),
                    "limit {limit}, per source {per_source}, {dedupe:?}, recent {recent}"
                );
            }
        }
    }

    /// Outputs written beside each other, rendered before or on the blocking pool, are reported
    /// in the order they were made; a file made twice keeps the second bytes; one not rendered
    /// (an error, or a render that panics) is a failure and writes nothing.
    #[tokio::test]
    async fn outputs_are_written_and_reported_in_the_order_made() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("same.txt"), b"unchanged").unwrap();
        let mut writes = Writes::default();
        for n in 0..20 {
            let name = format!("f{n}.txt");
            if n % 2 == 0 {
                writes
                    .add(dir.path(), &name, Ok(vec![b'a' + n; 100_000]))
                    .await;
            } else {
                writes
                    .render(dir.path(), &name, move || Ok(vec![b'a' + n; 100_000]))
                    .await;
            }
        }
        writes
            .render(dir.path(), "twice.txt", || Ok(b"first".to_vec()))
            .await;
        writes
            .render(dir.path(), "broken.txt", || {
                Err(PublishError::Render {
                    feed: "broken".into(),
                    format: "txt",
                    message: "no".into(),
                })
            })
            .await;
        writes
            .render(dir.path(), "panics.txt", || panic!("a render that fails"))
            .await;
        writes
            .render(dir.path(), "twice.txt", || Ok(b"second".to_vec()))
            .await;
        writes
            .add(dir.path(), "same.txt", Ok(b"unchanged".to_vec()))
            .await;
        // Another case of a name made before: written after it (here, another file).
        writes
            .add(dir.path(), "TWICE.txt", Ok(b"third".to_vec()))
            .await;
        let mut report = PublishReport::default();
        writes.finish(&mut report).await;
        let names = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|p| p.rsplit('/').next().unwrap().to_string())
                .collect()
        };
        let mut want: Vec<String> = (0..20).map(|n| format!("f{n}.txt")).collect();
        want.extend(["twice.txt".into(), "twice.txt".into(), "TWICE.txt".into()]);
        assert_eq!(names(&report.written), want);
        assert_eq!(names(&report.unchanged), ["same.txt"]);
        assert_eq!(report.failed.len(), 2);
        for n in 0..20u8 {
            let got = std::fs::read(dir.path().join(format!("f{n}.txt"))).unwrap();
            assert_eq!(got, vec![b'a' + n; 100_000]);
        }
        assert_eq!(
            std::fs::read(dir.path().join("twice.txt")).unwrap(),
            b"second"
        );
        assert!(!dir.path().join("broken.txt").exists());
        assert!(!dir.path().join("panics.txt").exists());
        assert_eq!(
            std::fs::read(dir.path().join("TWICE.txt")).unwrap(),
            b"third"
        );
    }

    /// A first run's clustering in two blocks of signatures gives what it gives in one: on three
    /// sources retelling the same stories, with pairs within each block and across them.
    #[tokio::test]
    async fn two_blocks_of_signatures_give_what_one_gives() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = twenty_stories(dir.path()).await;
        let rows = ctx.store.cluster_rows().await.unwrap();
        let n = rows.len();
        assert_eq!(n, 180);
        let window = chrono::Duration::days(3);
        let one = assign_streamed(&ctx, rows, n, 0.2, window, usize::MAX, bands::Keep::None)
            .await
            .unwrap();
        let two = assign_streamed(&ctx, one.rows, n, 0.2, window, 1, bands::Keep::None)
            .await
            .unwrap();
        let one = one.assigned;
        assert_eq!(one, two.assigned);
        // Each story is one cluster of its nine items, across sources and blocks.
        let roots: HashSet<usize> = one.iter().map(|(_, root)| *root).collect();
        assert_eq!(roots.len(), 20);
    }

    /// Cluster keys saved a few at a time are the keys saved all at once: every item gets one,
    /// each story's nine items share theirs, and the map selection reads says the same.
    #[tokio::test]
    async fn keys_saved_in_batches_are_the_keys_saved_at_once() {
        let mut stored = Vec::new();
        for at_once in [7, usize::MAX] {
            let dir = tempfile::tempdir().unwrap();
            let ctx = twenty_stories(dir.path()).await;
            let rows = ctx.store.cluster_rows().await.unwrap();
            let n = rows.len();
            let window = chrono::Duration::days(3);
            let Compared { assigned, rows, .. } =
                assign_streamed(&ctx, rows, n, 0.2, window, usize::MAX, bands::Keep::None)
                    .await
                    .unwrap();
            assert_eq!(assigned.len(), 180);
            let mut map = ClusterMap::default();
            save_keys(&ctx, &rows, assigned, &mut map, at_once, None)
                .await
                .unwrap();
            let clusters = map.finish();
            let keys = stored_keys(&ctx.store).await;
            for (source, id, key) in &keys {
                // Every item in a cluster of nine is in the map, under its cluster's key.
                let item = select::item_key(source, id);
                assert_eq!(clusters.get(&item), Some(key), "{source} {id}");
            }
            let distinct: HashSet<&String> = keys.iter().map(|(.., k)| k).collect();
            assert_eq!(distinct.len(), 20);
            stored.push(keys);
        }
        assert_eq!(stored[0], stored[1]);
    }

    fn row(source: &str, id: &str) -> ClusterRow {
        ClusterRow {
            source: source.into(),
            id: id.into(),
            ..ClusterRow::default()
        }
    }

    proptest::proptest! {
        /// The ranked sort gives the byte order of (source, id) (the signatures table's),
        /// whatever the positions asked for and their order.
        #[test]
        fn in_key_order_is_the_byte_order_of_source_and_id(
            keys in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["", "a", "a\0", "ab", "B", "é", "\u{10000}", "a:b"]),
                    proptest::sample::select(vec!["", "1", "10", "2", "%", "x y", "é"]),
                ),
                0..40,
            ),
            picks in proptest::collection::vec(0usize..40, 0..60),
        ) {
            let rows: Vec<ClusterRow> = keys.iter().map(|(s, i)| row(s, i)).collect();
            let positions: Vec<usize> = picks.into_iter().filter(|n| *n < rows.len()).collect();
            let got = in_key_order(&rows, &positions);
            let mut want = positions.clone();
            want.sort_by_key(|n| (rows[*n].source.as_bytes(), rows[*n].id.as_bytes()));
            let key = |n: &usize| (rows[*n].source.clone(), rows[*n].id.clone());
            proptest::prop_assert_eq!(
                got.iter().map(key).collect::<Vec<_>>(),
                want.iter().map(key).collect::<Vec<_>>()
            );
            let (mut got, mut want) = (got, want);
            got.sort_unstable();
            want.sort_unstable();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
