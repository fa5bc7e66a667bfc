//! Full text for `fulltext = true` sources (issue #10): after a source's document is normalised
//! and before it is stored, each item whose article page is due gets the page fetched, the story
//! extracted ([`crate::fulltext`]) and normalised like any other body, in place of the teaser.
//!
//! Which pages are due, per item (state in [`SourceState::pages`], by item id):
//! - a stored story whose teaser is unchanged is reused: never fetched again, and never
//!   overwritten by the teaser on the next refresh;
//! - a new item, or one whose page failed fewer than [`MAX_FAILURES`] times, is fetched;
//! - a changed teaser (the publisher edited the story) fetches the page once more, conditionally
//!   (`If-None-Match`/`If-Modified-Since` from the first fetch); if that fails the old story stays.
//!
//! Bounds: at most `settings.fulltext_pages_per_run` pages per source per run (the rest keep
//! the teaser until a later run; meanwhile the feed is fetched unconditionally so their items
//! come round again); pages one at a time within a source; the fetcher's size cap, timeout,
//! redirect rules and private-address guard; the per-host slots (a page on the feed's own host
//! uses the slot the refresh already holds; another host's slot is waited for at most
//! `fetch_timeout`, so two sources cannot hold each other's hosts forever). Each URL is fetched
//! once per run, and a page whose story is stored is not fetched again for an item that comes
//! back under a new id. Any failure keeps the teaser and is logged with the source, the URL and why.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};
use url::Url;
use xxhash_rust::xxh3::xxh3_64;

use super::Ctx;
use crate::config::{Location, Source};
use crate::decode;
use crate::fetch::{FetchError, FetchOutcome, Validators};
use crate::fulltext::{self, ExtractError, ExtractRules, Extracted};
use crate::model::Item;
use crate::normalize::language::Detector;
use crate::normalize::{self, Rules};
use crate::parse::{RawFeed, RawItem};
use crate::store::{ItemQuery, PageState, SourceState, Store, StoreError};

/// Failed attempts at one page (for one version of its teaser) before it is left alone.
pub const MAX_FAILURES: u32 = 3;

/// Why an item kept its teaser.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("fetch {0}")]
    Fetch(#[from] FetchError),
    #[error("{0}")]
    Extract(#[from] ExtractError),
    #[error("the page's story is shorter than the feed's teaser")]
    Shorter,
    #[error("the page did not change (304) but no story of it is stored")]
    NotModifiedWithoutCopy,
    #[error("waited {seconds} s for a free slot on the page's host")]
    HostBusy { seconds: u64 },
    #[error("extraction task failed: {0}")]
    Task(String),
}

impl PageError {
    /// Failures that another try cannot mend (for this version of the teaser).
    fn is_permanent(&self) -> bool {
        matches!(
            self,
            PageError::Fetch(FetchError::Refused { .. } | FetchError::TooLarge { .. })
                | PageError::Shorter
        )
    }
}

/// What a page pass did, for the source's log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct PagesDone {
    /// Stories taken from pages fetched in this run.
    pub extracted: usize,
    /// Pages that failed in this run (their items keep the teaser).
    pub failed: usize,
    /// Items whose page is still due (over the per-run cap, or waiting for another try).
    pub pending: usize,
}

/// An item whose page is to be fetched in this run.
struct Due {
    index: usize,
    url: Url,
    teaser: u64,
    prev: Option<PageState>,
}

/// What fetching and extracting one URL gave (cached by URL for the run).
#[derive(Clone)]
enum Page {
    Story {
        html: String,
        base: Url,
        validators: Validators,
    },
    NotModified(Validators),
}

/// Replaces teasers with stories in `items` (the source's normalised document) and records
/// what became of each page in `state.pages`.
pub async fn full_text<S: Store>(
    ctx: &Ctx<S>,
    source: &Source,
    feed_location: &Location,
    state: &mut SourceState,
    items: &mut [Item],
    now: DateTime<Utc>,
) -> Result<PagesDone, StoreError> {
    let stored: HashMap<String, Item> = ctx
        .store
        .items(&ItemQuery {
            sources: Some(vec![source.name.clone()]),
            since: None,
            limit: None,
        })
        .await?
        .into_iter()
        .map(|s| (s.item.id.clone(), s.item))
        .collect();
    let mut old = std::mem::take(&mut state.pages);
    // Stories by page URL: an item that comes back under a new id (the feed changed its guids)
    // reuses its page's story rather than fetching it again.
    let by_url: HashMap<String, (PageState, Item)> = old
        .iter()
        .filter(|(_, p)| p.extracted)
        .filter_map(|(id, p)| Some((p.url.clone(), (p.clone(), stored.get(id)?.clone()))))
        .collect();
    let mut pages = BTreeMap::new();
    let mut due = Vec::new();
    for (index, item) in items.iter_mut().enumerate() {
        let Some(url) = item
            .link
            .as_deref()
            .and_then(|l| Url::parse(l).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
        else {
            continue;
        };
        let teaser = teaser_hash(item);
        let prev = old.remove(&item.id).filter(|p| p.url == url.as_str());
        if let Some(p) = prev.as_ref().filter(|p| p.teaser == teaser) {
            if p.extracted
                && let Some(story) = stored.get(&item.id)
            {
                *item = story.clone();
                pages.insert(item.id.clone(), p.clone());
                continue;
            }
            if !p.extracted && p.failures >= MAX_FAILURES {
                pages.insert(item.id.clone(), p.clone());
                continue;
            }
        }
        if prev.is_none()
            && !stored.contains_key(&item.id)
            && let Some((p, story)) = by_url.get(url.as_str())
        {
            *item = merge_story(item, story);
            let page = PageState {
                teaser,
                ..p.clone()
            };
            pages.insert(item.id.clone(), page);
            continue;
        }
        due.push(Due {
            index,
            url,
            teaser,
            prev,
        });
    }

    let mut done = PagesDone::default();
    let mut cache: HashMap<String, Result<Page, Failure>> = HashMap::new();
    let cap = ctx.config.settings.fulltext_pages_per_run;
    let mut fetched = 0;
    for d in due {
        let teaser_item = items[d.index].clone();
        let id = teaser_item.id.clone();
        let story = stored
            .get(&id)
            .filter(|_| d.prev.as_ref().is_some_and(|p| p.extracted));
        if !cache.contains_key(d.url.as_str()) && fetched >= cap {
            // Over the cap: the teaser (or the story stored before the teaser changed) stays,
            // and the page stays due.
            if let Some(story) = story {
                items[d.index] = story.clone();
            }
            if let Some(p) = d.prev {
                pages.insert(id, p);
            }
            done.pending += 1;
            continue;
        }
        let page = match cache.get(d.url.as_str()) {
            Some(p) => p.clone(),
            None => {
                fetched += 1;
                // A conditional request only when a story of this page is stored to fall back on.
                let validators = d
                    .prev
                    .as_ref()
                    .filter(|_| story.is_some())
                    .map(|p| p.validators.clone())
                    .unwrap_or_default();
                let got = fetch_page(ctx, source, feed_location, &d.url, &validators)
                    .await
                    .map_err(|e| Failure::from(&e));
                cache.insert(d.url.to_string(), got.clone());
                got
            }
        };
        let result = match page {
            Ok(Page::NotModified(validators)) => match story {
                Some(story) => Ok((merge_story(&teaser_item, story), validators)),
                None => Err(Failure::from(&PageError::NotModifiedWithoutCopy)),
            },
            Ok(Page::Story {
                html,
                base,
                validators,
            }) => {
                let src = source.clone();
                let detector = ctx.detector.clone();
                let teaser = teaser_item.clone();
                tokio::task::spawn_blocking(move || {
                    story_item(&html, &base, &teaser, &src, &detector, now)
                })
                .await
                .unwrap_or_else(|e| Err(PageError::Task(e.to_string())))
                .map(|it| (it, validators))
                .map_err(|e| Failure::from(&e))
            }
            Err(f) => Err(f),
        };
        match result {
            Ok((story_item, validators)) => {
                debug!(source = %source.name, url = %d.url, "article page extracted");
                items[d.index] = story_item;
                done.extracted += 1;
                pages.insert(
                    id,
                    PageState {
                        url: d.url.to_string(),
                        extracted: true,
                        failures: 0,
                        last_error: None,
                        fetched_at: Some(now),
                        validators,
                        teaser: d.teaser,
                    },
                );
            }
            Err(Failure { why, permanent }) => {
                done.failed += 1;
                let same_teaser = d.prev.as_ref().is_some_and(|p| p.teaser == d.teaser);
                let failures = if permanent {
                    MAX_FAILURES
                } else {
                    d.prev
                        .as_ref()
                        .filter(|_| same_teaser)
                        .map_or(0, |p| p.failures)
                        .saturating_add(1)
                };
                let mut page = PageState {
                    url: d.url.to_string(),
                    extracted: false,
                    failures,
                    last_error: Some(why.clone()),
                    fetched_at: Some(now),
                    validators: Validators::default(),
                    teaser: d.teaser,
                };
                if let (Some(story), Some(p)) = (story, d.prev.as_ref()) {
                    // An edited story whose page failed: the story stored before stays.
                    warn!(source = %source.name, url = %d.url, error = %why,
                          "article page failed; keeping the story stored before");
                    items[d.index] = merge_story(&teaser_item, story);
                    page.extracted = true;
                    page.validators = p.validators.clone();
                } else if failures < MAX_FAILURES {
                    warn!(source = %source.name, url = %d.url, error = %why, attempt = failures,
                          "article page failed; keeping the teaser (tried again next run)");
                    done.pending += 1;
                } else {
                    warn!(source = %source.name, url = %d.url, error = %why, attempt = failures,
                          "article page failed; keeping the teaser (not tried again)");
                }
                pages.insert(id, page);
            }
        }
    }
    state.pages = pages;
    if done.extracted + done.failed + done.pending > 0 {
        info!(source = %source.name, extracted = done.extracted, failed = done.failed,
              pending = done.pending, "article pages");
    }
    Ok(done)
}

/// A page's failure as remembered for the run (the same URL fails alike for every item).
#[derive(Debug, Clone)]
struct Failure {
    why: String,
    permanent: bool,
}

impl From<&PageError> for Failure {
    fn from(e: &PageError) -> Failure {
        Failure {
            why: e.to_string(),
            permanent: e.is_permanent(),
        }
    }
}

/// The item as the feed gave it, hashed (the store compares items by their JSON too).
fn teaser_hash(item: &Item) -> u64 {
    xxh3_64(serde_json::to_string(item).unwrap_or_default().as_bytes())
}

/// The teaser's metadata (title, dates, authors, ...) with a stored story's body.
fn merge_story(teaser: &Item, story: &Item) -> Item {
    Item {
        content_html: story.content_html.clone(),
        summary: story.summary.clone(),
        image: teaser.image.clone().or_else(|| story.image.clone()),
        ..teaser.clone()
    }
}

/// Fetches one article page within the politeness rules: it comes back decoded with its story
/// extracted, or as "not modified".
async fn fetch_page<S: Store>(
    ctx: &Ctx<S>,
    source: &Source,
    feed_location: &Location,
    url: &Url,
    validators: &Validators,
) -> Result<Page, PageError> {
    let page = Location::Http(url.clone());
    let host = |u: &Url| u.host_str().map(str::to_ascii_lowercase);
    // The refresh holds a slot of the feed's host for the whole source: a page there uses it.
    let same_host = matches!(feed_location, Location::Http(f) if host(f) == host(url));
    let _slot = if same_host {
        None
    } else {
        let wait = ctx.config.settings.fetch_timeout;
        match tokio::time::timeout(wait, ctx.fetcher.host_slot(&page)).await {
            Ok(slot) => slot,
            Err(_) => {
                return Err(PageError::HostBusy {
                    seconds: wait.as_secs(),
                });
            }
        }
    };
    match ctx.fetcher.fetch(&page, validators).await? {
        FetchOutcome::NotModified { validators, .. } => Ok(Page::NotModified(validators)),
        FetchOutcome::Modified(f) => {
            let base = Url::parse(&f.final_location).unwrap_or_else(|_| url.clone());
            let remove = source.remove_selectors.clone();
            let selector = source.content_selector.clone();
            let body = f.body;
            let content_type = f.content_type;
            let extract_base = base.clone();
            let html = tokio::task::spawn_blocking(move || {
                extract_story(
                    &body,
                    content_type.as_deref(),
                    &extract_base,
                    &ExtractRules {
                        content_selector: selector.as_ref(),
                        remove_selectors: &remove,
                    },
                )
            })
            .await
            .map_err(|e| PageError::Task(e.to_string()))??;
            if html.figure_restored {
                debug!(source = %source.name, url = %url, "lead figure restored after extraction");
            }
            Ok(Page::Story {
                html: html.html,
                base,
                validators: f.validators,
            })
        }
    }
}

/// Decodes an article page (BOM, HTTP charset, `<meta charset>`, UTF-8, detection) and takes
/// the story out of it.
pub fn extract_story(
    body: &[u8],
    content_type: Option<&str>,
    base: &Url,
    rules: &ExtractRules<'_>,
) -> Result<Extracted, ExtractError> {
    let decoded = decode::decode(body, content_type);
    let page = normalize::html::limit_nesting(&decoded.text, normalize::html::MAX_NESTING);
    fulltext::extract(&page, base, rules)
}

/// The teaser item with the page's story as its body, normalised the way every body is (title
/// repeat, boilerplate, credits, headings, sanitising with absolute links). Keeps the teaser's
/// id. A story with less text than the teaser is refused.
pub fn story_item(
    story: &str,
    base: &Url,
    teaser: &Item,
    source: &Source,
    detector: &Detector,
    now: DateTime<Utc>,
) -> Result<Item, PageError> {
    let mut raw = RawItem::from(teaser);
    raw.content = Some(story.to_string());
    raw.content_is_html = true;
    raw.base = Some(base.to_string());
    let rules = Rules {
        location: Some(base.clone()),
        strip_patterns: &source.strip_patterns,
        remove_selectors: &source.remove_selectors,
        detector: Some(detector),
        ..Rules::default()
    };
    let feed = RawFeed {
        items: vec![raw],
        ..RawFeed::default()
    };
    let mut item = normalize::normalize(feed, &rules, now)
        .items
        .pop()
        .ok_or(PageError::Shorter)?;
    let text_len = |it: &Item| {
        it.content_html
            .as_deref()
            .map_or(0, |h| normalize::html::text_of(h).chars().count())
    };
    if text_len(&item) <= text_len(teaser) {
        return Err(PageError::Shorter);
    }
    item.id = teaser.id.clone();
    Ok(item)
}
