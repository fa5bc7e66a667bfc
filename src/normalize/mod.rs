//! `(RawFeed, &Rules, now) → Parsed`: pure, no I/O, `now` passed in.
//!
//! A fixed order of steps per item: base URL → title → link → dates → authors → body
//! (structure, repeated title, boilerplate, credits: [`body`]) → summary (the lead) →
//! categories → language → enclosures → image → id; sanitising is the last thing done to
//! content. `feedloom parse --json` prints exactly what this returns.
//!
//! Normalising is idempotent: an item that went through it comes out of it unchanged.

pub mod body;
pub mod boilerplate;
pub mod date;
pub mod fold;
pub mod html;
pub mod language;
mod own_clean;
mod own_markup;
pub mod url;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::model::{Enclosure, FeedMeta, Item, Parsed, Person, SourceFormat};
use crate::parse::{RawFeed, RawItem};
use ::url::Url;

/// What normalising needs to know besides the document.
#[derive(Debug, Clone, Default)]
pub struct Rules<'a> {
    /// Where the document was fetched from (http(s) only): the last resort for relative URLs.
    pub location: Option<Url>,
    /// The encoding the document was decoded from, and why (reported in `FeedMeta`).
    pub encoding: String,
    pub encoding_from: String,
    /// Per-source regexes of boilerplate lines (`strip_patterns`).
    pub strip_patterns: &'a [Regex],
    /// Per-source CSS selectors of elements to remove from bodies (`remove_selectors`).
    pub remove_selectors: &'a [scraper::Selector],
    /// Detects an item's language when it does not say it.
    pub detector: Option<&'a language::Detector>,
    /// The source's `timezone`, for dates written without an offset (UTC when `None`).
    pub timezone: Option<chrono_tz::Tz>,
    /// At most this many items are normalised: the newest (undated ones count as newest, in
    /// document order). A 50,000-item feed costs no more than the items that are kept.
    pub max_items: Option<usize>,
    /// Items not yet normalised when this time comes are left out (logged): `parse_timeout`
    /// bounds a document's reading and normalising together.
    pub deadline: Option<std::time::Instant>,
}

/// Longest summary, in characters, before it is cut at a word boundary.
pub const SUMMARY_CHARS: usize = 300;
/// Longest title kept, in characters.
pub const TITLE_CHARS: usize = 1000;

/// Normalises one parsed document (read whole: by [`crate::parse::parse`] or
/// [`crate::parse::parse_within`], or built by hand).
pub fn normalize(raw: RawFeed, rules: &Rules<'_>, now: DateTime<Utc>) -> Parsed {
    let out = normalize_reusing(raw, rules, now, None)
        .expect("only a document read light has items to read again");
    debug_assert!(out.unchanged.is_empty());
    Parsed {
        feed: out.feed,
        items: out.items,
    }
}

/// Bumped whenever normalising gives different items for the same input in a way the crate
/// version and the build would not show (they are part of [`Reuse::context`] too), or
/// [`Reuse`] knows items by other hashes (2: XML items by their bytes).
pub const NORMALIZE_VERSION: u32 = 2;

/// What normalising a source's last document left for the next one: the items it normalised,
/// by a hash of the raw item (`reuse_hash`: of an XML item, its bytes), so that an item sent again unchanged is not normalised again
/// ([`normalize_reusing`]). Kept per source in the store, written with the items it names
/// ([`crate::store::Store::source_reuse`]).
///
/// Compact, as it is read and written for every new document: an item whose id is its guid
/// (the common case) takes 8 bytes, its hash; only the others keep their id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reuse {
    /// A hash of everything besides the raw item that normalising an item depends on: the
    /// source's rules, the document's address, encoding and feed-level facts, the detection
    /// languages, this build ([`context_hash`]). Another context reuses nothing.
    pub context: u64,
    /// The hashes ([`reuse_hash`]) of the items whose id is their guid, 8 bytes each
    /// (little-endian), in base64. Their links are not kept: a document where some item has
    /// no guid of its own (its id may come from its link) normalises them again.
    #[serde(skip_serializing_if = "String::is_empty")]
    guids: String,
    /// The other items: hash → (id, link), the link being 0 when there is none, 1 when it
    /// is the id, else its hash ([`link_hash`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    other: BTreeMap<u64, (String, u64)>,
}

impl Reuse {
    /// The hashes of the items it holds, to read those items light
    /// ([`crate::parse::parse_skipping`]).
    pub fn hashes(&self) -> HashSet<u64> {
        self.known().into_keys().collect()
    }

    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.guids.len() * 3 / 4 / 8 + self.other.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items, by raw hash (nothing when `guids` does not decode).
    fn known(&self) -> HashMap<u64, Known> {
        use base64::Engine;
        let guids = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(&self.guids)
            .unwrap_or_default();
        let mut out = HashMap::with_capacity(guids.len() / 8 + self.other.len());
        for raw in guids.chunks_exact(8) {
            let raw = u64::from_le_bytes(raw.try_into().expect("8 bytes"));
            out.insert(
                raw,
                Known {
                    id: None,
                    link: Link::Unknown,
                },
            );
        }
        for (raw, (id, link)) in &self.other {
            let link = match link {
                0 => Link::None,
                1 => Link::Id,
                h => Link::Hash(*h),
            };
            out.insert(
                *raw,
                Known {
                    id: Some(id.clone()),
                    link,
                },
            );
        }
        out
    }

    fn new(context: u64, known: Vec<(u64, Known)>) -> Reuse {
        use base64::Engine;
        let mut guids = Vec::new();
        let mut other = BTreeMap::new();
        for (raw, k) in known {
            match (k.id, k.link) {
                (None, _) => guids.extend_from_slice(&raw.to_le_bytes()),
                (Some(id), link) => {
                    let link = match link {
                        Link::None => 0,
                        Link::Id => 1,
                        Link::Hash(h) => h,
                        // Not made: an item with its own id has its link kept.
                        Link::Unknown => continue,
                    };
                    other.insert(raw, (id, link));
                }
            }
        }
        Reuse {
            context,
            guids: base64::engine::general_purpose::STANDARD_NO_PAD.encode(guids),
            other,
        }
    }
}

/// An item normalised from a raw item of the last document, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    /// Its id; `None`: the raw item's guid.
    id: Option<String>,
    link: Link,
}

/// What is known of a reused item's normalised link (ids depend on the links of the whole
/// document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Not kept (the item's id is its guid).
    Unknown,
    None,
    /// The link is the item's id.
    Id,
    /// The link's [`link_hash`].
    Hash(u64),
}

/// The hash links are counted by when ids are assigned (2 and up: 0 and 1 mean something else
/// in [`Reuse`]).
fn link_hash(link: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(link.as_bytes()).max(2)
}

impl Known {
    /// What to remember of a normalised item (of raw item `raw`).
    fn new(raw: &RawItem, item: &Item) -> Known {
        if raw.guid.as_deref() == Some(item.id.as_str()) {
            return Known {
                id: None,
                link: Link::Unknown,
            };
        }
        Known {
            id: Some(item.id.clone()),
            link: match &item.link {
                None => Link::None,
                Some(l) if *l == item.id => Link::Id,
                Some(l) => Link::Hash(link_hash(l)),
            },
        }
    }

    /// Its id, for the raw item `raw` it was found by.
    fn id<'a>(&'a self, raw: &'a RawItem) -> Option<&'a str> {
        self.id.as_deref().or(raw.guid.as_deref())
    }
}

/// What [`normalize_reusing`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub feed: FeedMeta,
    /// The items normalised now (new, changed, or nothing to reuse), in document order.
    pub items: Vec<Item>,
    /// The ids of the items the document sends again as they were, in the same context: stored
    /// as they are, not normalised again.
    pub unchanged: Vec<String>,
    /// What to remember for the next document, once `items` are stored.
    pub reuse: Reuse,
}

/// This build, for [`context_hash`]: the crate version, [`NORMALIZE_VERSION`], and the
/// executable's modification time (any rebuild, a dependency's update included, normalises
/// everything once more).
fn build_id() -> &'static str {
    static BUILD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILD.get_or_init(|| {
        let modified = std::env::current_exe()
            .and_then(std::fs::metadata)
            .and_then(|m| m.modified())
            .ok();
        format!(
            "{}|{NORMALIZE_VERSION}|{modified:?}",
            env!("CARGO_PKG_VERSION")
        )
    })
}

/// What knows an item normalised before when a document has it again unchanged (the raw half
/// of what decides reuse): the hash of an XML item's bytes ([`RawItem::span`]), else
/// [`raw_hash`].
fn reuse_hash(it: &RawItem) -> u64 {
    it.span.unwrap_or_else(|| raw_hash(it))
}

/// An item read light ([`RawItem::light`]) is to be normalised: the document is to be read
/// again in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAgain;

/// The hash of an item as the source wrote it (what knows a JSON Feed item again).
pub fn raw_hash(it: &RawItem) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    it.hash(&mut h);
    h.finish()
}

/// The hash of what normalising an item of `raw` depends on besides the item (the second
/// half): the rules (but `max_items` and `deadline`, which choose items and do not change
/// them), the document's feed-level facts, the detection languages and the build. Errs on the
/// side of more: the feed's title and format are in though items do not use them.
pub fn context_hash(raw: &RawFeed, rules: &Rules<'_>) -> u64 {
    let patterns: Vec<&str> = rules.strip_patterns.iter().map(Regex::as_str).collect();
    let text = format!(
        "{}\u{0}{:?}\u{0}{}\u{0}{}\u{0}{patterns:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
        build_id(),
        rules.location.as_ref().map(Url::as_str),
        rules.encoding,
        rules.encoding_from,
        rules.remove_selectors,
        rules.detector.map(|d| d.languages()),
        rules.timezone,
        raw.format,
        raw.title,
        raw.link,
        raw.base,
        raw.language,
    );
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// One item of the document being normalised (a document's worth of them at a time: the size
/// of `Item` does not matter).
#[allow(clippy::large_enum_variant)]
enum Slot<'a> {
    /// Normalised now.
    Fresh(Item),
    /// As last time: not normalised again (unless its id turns out to differ).
    Known(&'a Known),
}

impl Slot<'_> {
    /// Its link's hash: `None` when it has none, `Some(None)` when it is not known.
    fn link_hash(&self, raw: &RawItem) -> Option<Option<u64>> {
        match self {
            Slot::Fresh(it) => it.link.as_deref().map(|l| Some(link_hash(l))),
            Slot::Known(k) => match k.link {
                Link::Unknown => Some(None),
                Link::None => None,
                Link::Id => Some(k.id(raw).map(link_hash)),
                Link::Hash(h) => Some(Some(h)),
            },
        }
    }
}

/// [`normalize`], reusing what normalising the source's last document gave (`prev`): a raw
/// item whose hash is in `prev`, in the same context, is not normalised again, its stored item
/// stands (its id in `unchanged`). Which items are kept (`max_items`, the newest) is decided as
/// without `prev`; `deadline` only stops the items still to be normalised, and what it leaves
/// out is not remembered. Not reused, nor remembered: a raw item the document has twice (its
/// copies get numbered ids), and one whose date was in the future (clamped to `now`, it would
/// come out differently later).
///
/// An item read light is never normalised: when one has to be (it is not reused after all),
/// the answer is [`ReadAgain`], and the caller reads the document in full and asks again.
pub fn normalize_reusing(
    raw: RawFeed,
    rules: &Rules<'_>,
    now: DateTime<Utc>,
    prev: Option<&Reuse>,
) -> Result<Normalized, ReadAgain> {
    let context = context_hash(&raw, rules);
    let known = prev
        .filter(|p| p.context == context)
        .map(Reuse::known)
        .unwrap_or_default();
    let doc_base = rules.location.clone();
    let feed_base = raw
        .base
        .as_deref()
        .and_then(|b| url::absolute(b, doc_base.as_ref()))
        .or_else(|| doc_base.clone());
    let feed_link = raw
        .link
        .as_deref()
        .and_then(|l| url::absolute(l, feed_base.as_ref()));
    // Relative links in items resolve against xml:base, else the document's address, else the
    // site's address (a file:// mirror of a feed still has its site's links right).
    let item_base = feed_base.clone().or_else(|| feed_link.clone());
    let feed_language = raw.language.as_deref().and_then(language_tag);
    let feed = FeedMeta {
        title: raw
            .title
            .as_deref()
            .map(|t| plain_title(t, false))
            .filter(|t| !t.is_empty()),
        link: feed_link.as_ref().map(|u| u.to_string()),
        language: feed_language.clone(),
        id: raw.id.clone(),
        format: raw.format.unwrap_or(SourceFormat::Rss2),
        encoding: rules.encoding.clone(),
        encoding_from: rules.encoding_from.clone(),
        updated: raw
            .updated
            .as_deref()
            .and_then(|d| sane_date(d, rules.timezone, now)),
        ttl_minutes: raw.ttl_minutes.filter(|m| *m > 0),
    };
    let raw_items = newest(raw.items, rules, now);
    let hashes: Vec<u64> = raw_items.iter().map(reuse_hash).collect();
    let mut copies: HashMap<u64, usize> = HashMap::with_capacity(hashes.len());
    for h in &hashes {
        *copies.entry(*h).or_default() += 1;
    }
    let single = |n: usize| copies[&hashes[n]] == 1;
    let normalise = |it: &RawItem| {
        if it.light {
            return Err(ReadAgain);
        }
        Ok(item(
            it,
            item_base.as_ref(),
            feed_language.as_deref(),
            rules,
            now,
        ))
    };
    // A light item that has to be normalised is found before anything is normalised, where
    // it can be: a copy, another context, links that count (only ids that shift are found
    // later), so that the new items are not normalised twice.
    if raw_items.iter().any(|it| it.light) {
        let links = links_count(&raw_items);
        for (n, _) in raw_items.iter().enumerate().filter(|(_, it)| it.light) {
            let reused = known
                .get(&hashes[n])
                .is_some_and(|k| single(n) && !(links && k.link == Link::Unknown));
            if !reused {
                return Err(ReadAgain);
            }
        }
    }
    let mut slots: Vec<Slot<'_>> = Vec::with_capacity(raw_items.len());
    let mut fresh = 0;
    for (n, it) in raw_items.iter().enumerate() {
        if let Some(known) = known.get(&hashes[n])
            && single(n)
        {
            slots.push(Slot::Known(known));
            continue;
        }
        if rules
            .deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
        {
            tracing::warn!(
                normalised = fresh,
                left_out = raw_items.len() - slots.len(),
                "parse_timeout reached while normalising: the other items are left out"
            );
            break;
        }
        slots.push(Slot::Fresh(normalise(it)?));
        fresh += 1;
    }
    let raw_items = &raw_items[..slots.len()];
    // Ids depend on the whole document (a guid or link that another item repeats is not used):
    // a reused item whose id comes out other than last time is normalised after all, and ids
    // are assigned again (each round normalises at least one more item). When some item has
    // no guid of its own, links count, and reused items whose link was not kept are
    // normalised again first.
    if links_count(raw_items) {
        for (n, slot) in slots.iter_mut().enumerate() {
            if let Slot::Known(k) = slot
                && k.link == Link::Unknown
            {
                *slot = Slot::Fresh(normalise(&raw_items[n])?);
            }
        }
    }
    let ids = loop {
        let ids = assign_ids(raw_items, &slots);
        let mut again = false;
        for (n, slot) in slots.iter_mut().enumerate() {
            if let Slot::Known(k) = slot
                && ids[n].as_deref() != k.id(&raw_items[n])
            {
                *slot = Slot::Fresh(normalise(&raw_items[n])?);
                again = true;
            }
        }
        if !again {
            break ids;
        }
    };
    let mut items = Vec::with_capacity(fresh);
    let mut unchanged = Vec::new();
    let mut remember = Vec::with_capacity(slots.len());
    for (n, (slot, id)) in slots.into_iter().zip(ids).enumerate() {
        let id = id.expect("every fresh item has an id, every known one kept its own");
        match slot {
            Slot::Known(k) => {
                remember.push((hashes[n], k.clone()));
                unchanged.push(id);
            }
            Slot::Fresh(mut it) => {
                it.id = id;
                let clamped = it.published == Some(now) || it.updated == Some(now);
                if single(n) && !clamped {
                    remember.push((hashes[n], Known::new(&raw_items[n], &it)));
                }
                items.push(it);
            }
        }
    }
    Ok(Normalized {
        feed,
        items,
        unchanged,
        reuse: Reuse::new(context, remember),
    })
}

/// Whether links count in giving ids: some item has no guid of its own (none, or one another
/// item has too).
fn links_count(raw: &[RawItem]) -> bool {
    let mut guid_count: HashMap<&str, usize> = HashMap::new();
    for r in raw {
        if let Some(g) = r.guid.as_deref() {
            *guid_count.entry(g).or_default() += 1;
        }
    }
    raw.iter()
        .any(|r| r.guid.as_deref().is_none_or(|g| guid_count[g] > 1))
}

/// The raw items to normalise: all of them, or the newest `rules.max_items`, in document order.
fn newest(mut items: Vec<RawItem>, rules: &Rules<'_>, now: DateTime<Utc>) -> Vec<RawItem> {
    let Some(max) = rules.max_items.filter(|m| items.len() > *m) else {
        return items;
    };
    let date = |it: &RawItem| {
        it.published
            .as_deref()
            .or(it.updated.as_deref())
            .and_then(|d| sane_date(d, rules.timezone, now))
            .unwrap_or(now)
    };
    let mut order: Vec<(usize, DateTime<Utc>)> = items
        .iter()
        .enumerate()
        .map(|(n, it)| (n, date(it)))
        .collect();
    // Newest first; among equals, the earlier in the document.
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut keep: Vec<usize> = order.into_iter().take(max).map(|(n, _)| n).collect();
    keep.sort_unstable();
    tracing::warn!(
        listed = items.len(),
        kept = max,
        "more items than max_items_per_source: kept the newest"
    );
    let mut n = 0;
    items.retain(|_| {
        let k = keep.binary_search(&n).is_ok();
        n += 1;
        k
    });
    items
}

/// A date, with the epoch default (1970-01-01, give or take a zone) treated as missing and a future
/// date clamped to `now` (the fetch time).
fn sane_date(s: &str, tz: Option<chrono_tz::Tz>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let d = date::parse_in(s, tz)?;
    if d.timestamp() <= 86_400 {
        return None;
    }
    Some(d.min(now))
}

/// Plain-text title: entities decoded, markup dropped, whitespace collapsed, length bounded.
fn plain_title(t: &str, is_html: bool) -> String {
    plain_title_as(t, is_html, false)
}

/// Plain-text title from markup (`is_html`), from text to take as written (`is_text`), or from
/// text that may hold markup (RSS: sniffed).
fn plain_title_as(t: &str, is_html: bool, is_text: bool) -> String {
    let text = if is_text {
        html::collapse(t)
    } else if is_html || html::looks_like_html(t) {
        html::collapse(&html::text_of(t))
    } else {
        html::collapse(t)
    };
    truncate(&text, TITLE_CHARS)
}

/// Whether a summary is only the start of the body (or the body itself): compared without
/// case, punctuation or a trailing "…"/"[...]"/"Read more".
fn is_excerpt(summary: &str, body: Option<&str>) -> bool {
    body.is_some_and(|b| is_excerpt_of(summary, fold::folded_words(b)))
}

/// [`is_excerpt`] of a body given as its word characters, folded ([`fold::folded_words`]).
fn is_excerpt_of(summary: &str, mut b: impl Iterator<Item = char>) -> bool {
    // Both texts' word characters, folded, read side by side as far as they agree: most
    // summaries that are not excerpts part from the body within a few words.
    let mut s = fold::folded_words(summary).peekable();
    if s.peek().is_none() {
        return false;
    }
    let mut common = 0;
    loop {
        match (s.next(), b.next()) {
            (None, _) => return true,
            (Some(x), Some(y)) if x == y => common += 1,
            _ => break,
        }
    }
    // An excerpt's last word may be cut ("логистики и…"): without it, at least 20 characters
    // that start the body make an excerpt too.
    summary
        .trim_end()
        .trim_end_matches(['…', '.', ']', '['])
        .rsplit_once(char::is_whitespace)
        .is_some_and(|(head, _)| {
            // Counted only as far as the texts agree: a longer cut is no excerpt.
            common >= 20 && {
                let cut = fold::folded_words(head).take(common + 1).count();
                (20..=common).contains(&cut)
            }
        })
}

/// Cuts `s` to at most `max` user-perceived characters (grapheme clusters), at a word boundary
/// when there is one in the second half, adding "…" when cut. Never splits a grapheme.
pub fn truncate(s: &str, max: usize) -> String {
    let Some(end) = grapheme_start(s, max) else {
        return s.to_string();
    };
    let cut = &s[..end];
    let at = cut
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map(|(i, _)| i)
        .filter(|i| cut[..*i].chars().count() > max / 2)
        .unwrap_or(end);
    let head = cut[..at].trim_end_matches(|c: char| c.is_whitespace() || ",;:-–—".contains(c));
    format!("{head}…")
}

/// Where grapheme cluster `n` (from 0) of `s` starts; `None` when `s` has no more than `n`.
/// Text made only of characters that are clusters of their own (most of what feeds carry) is
/// counted by characters; any other is segmented.
fn grapheme_start(s: &str, n: usize) -> Option<usize> {
    for (k, (i, c)) in s.char_indices().enumerate() {
        if !stands_alone(c) {
            use unicode_segmentation::UnicodeSegmentation;
            return s.grapheme_indices(true).nth(n).map(|(i, _)| i);
        }
        if k == n {
            return Some(i);
        }
    }
    None
}

/// Whether `c` is a grapheme cluster of its own whatever stands next to it, when its
/// neighbours are such characters too (UAX #29: no rule but the last applies between two of
/// them). ASCII but CR, Latin-1 and the Latin extensions to the spacing modifiers, Cyrillic
/// but its combining marks, and the dashes, quotes and marks of general punctuation.
fn stands_alone(c: char) -> bool {
    matches!(c,
        '\0'..='\x0c' | '\x0e'..='\x7f'
        | '\u{a0}'..='\u{2ff}'
        | '\u{400}'..='\u{482}' | '\u{48a}'..='\u{52f}'
        | '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205e}')
}

/// `ru`, `en-us`, `pt-br`: lowercase BCP 47 from what sources write (`ru-RU`, `en_US`, `RU`).
fn language_tag(s: &str) -> Option<String> {
    let s = s.trim().replace('_', "-").to_ascii_lowercase();
    let valid = !s.is_empty()
        && s.len() <= 35
        && s.split('-')
            .all(|p| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        && s.split('-').next().is_some_and(|p| {
            (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic())
        });
    valid.then_some(s)
}

fn item(
    it: &RawItem,
    feed_base: Option<&Url>,
    feed_language: Option<&str>,
    rules: &Rules<'_>,
    now: DateTime<Utc>,
) -> Item {
    let cleaned = without_controls(it);
    let it = cleaned.as_ref();
    let base = it
        .base
        .as_deref()
        .and_then(|b| url::absolute(b, feed_base))
        .or_else(|| feed_base.cloned());
    let title = it
        .title
        .as_deref()
        .map(|t| plain_title_as(t, it.title_is_html, it.title_is_text))
        .unwrap_or_default();
    let link = it
        .link
        .as_deref()
        .and_then(|l| url::absolute(l, base.as_ref()));
    // Resolve content against the item's own page when it has one: that is what its author saw.
    let content_base = base.clone().or_else(|| link.clone());
    let published = it
        .published
        .as_deref()
        .and_then(|d| sane_date(d, rules.timezone, now));
    let updated = it
        .updated
        .as_deref()
        .and_then(|d| sane_date(d, rules.timezone, now));
    let authors = it
        .authors
        .iter()
        .filter_map(|a| {
            let name = a
                .name
                .as_deref()
                .map(|n| plain_title(n, false))
                .filter(|n| !n.is_empty())
                .or_else(|| a.email.clone())?;
            Some(Person {
                name,
                email: a.email.clone(),
                uri: a
                    .uri
                    .as_deref()
                    .and_then(|u| url::absolute(u, base.as_ref()))
                    .map(|u| u.to_string()),
            })
        })
        .collect();

    // Body: the fullest one the source gave (its content, else its summary) that still says
    // something once it is in one clean structure and sanitised.
    let body_rules = body::BodyRules {
        title: &title,
        strip_patterns: rules.strip_patterns,
        remove_selectors: rules.remove_selectors,
    };
    let has_media = |h: &str| {
        ["<img", "<iframe", "<video", "<audio"]
            .iter()
            .any(|t| h.contains(t))
    };
    let mut body = None;
    // The sanitised body, whose text is read only as far as the emptiness test and the
    // summary's comparison need (debug builds compare their answers with the whole text).
    let mut content: Option<html::SanitizedBody> = None;
    let mut body_from_content = false;
    for (n, (source, is_html)) in [
        (&it.content, it.content_is_html),
        (&it.summary, it.summary_is_html),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(text) = source.as_deref().filter(|s| !s.trim().is_empty()) else {
            continue;
        };
        let b = body::normalize_body(text, is_html && html::looks_like_html(text), &body_rules);
        let h = html::SanitizedBody::new(html::sanitize(&b.html, content_base.as_ref()));
        debug_assert_eq!(h.has_text(), !html::sanitized_text(h.html()).is_empty());
        if has_media(h.html()) || h.has_text() {
            debug_assert!(
                h.folded_words()
                    .eq(fold::folded_words(&html::sanitized_text(h.html())))
            );
            body = Some(b);
            content = Some(h);
            body_from_content = n == 0;
            break;
        }
    }

    // Summary: the summary the source wrote when it is its own text (an editor's abstract),
    // else the lead paragraph: a summary that is only the start of the story (an excerpt, or
    // the body itself) gives way to the lead, so every shape of a story gets the same summary.
    let source_summary = it.summary.as_deref().map(|s| {
        // Plain-text summaries (JSON Feed, Atom type="text") are taken at their word.
        if it.summary_is_html {
            html::collapse(&html::text_of(s))
        } else {
            html::collapse(s)
        }
    });
    let lead = body.as_ref().and_then(|b| b.lead.clone());
    // The lead is compared too: a body may open with a photo and its caption (full text
    // restores the lead photo there), and the summary is then an excerpt of the text after it.
    let summary_text = match (source_summary, lead) {
        (Some(s), Some(l))
            if body_from_content
                && !s.is_empty()
                && !content
                    .as_ref()
                    .is_some_and(|c| is_excerpt_of(&s, c.folded_words()))
                && !is_excerpt(&s, Some(l.as_str())) =>
        {
            s
        }
        (_, Some(lead)) => lead,
        (Some(s), None) => s,
        (None, None) => String::new(),
    };
    let summary =
        Some(truncate(&html::collapse(&summary_text), SUMMARY_CHARS)).filter(|s| !s.is_empty());

    let mut categories: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for c in &it.categories {
        let c = html::collapse(c);
        if !c.is_empty() && seen.insert(fold::fold(&c)) {
            categories.push(c);
        }
    }
    // Language: the item's own, else detected from its title and lead, else the feed's. A
    // detected language that the feed's tag names more precisely (en → en-us) takes its tag.
    let language = it.language.as_deref().and_then(language_tag).or_else(|| {
        let sample = format!("{title}. {}", summary.as_deref().unwrap_or(""));
        let detected = rules
            .detector
            .and_then(|d| d.detect(&sample, feed_language));
        match (detected, feed_language) {
            (Some(d), Some(f)) if f.split('-').next() == Some(d.as_str()) => Some(f.to_string()),
            (Some(d), _) => Some(d),
            (None, f) => f.map(str::to_string),
        }
    });
    let mut enclosures: Vec<Enclosure> = Vec::new();
    for e in &it.enclosures {
        if let Some(u) = url::absolute(&e.url, base.as_ref())
            && !enclosures.iter().any(|x| x.url == u.as_str())
        {
            enclosures.push(Enclosure {
                url: u.to_string(),
                mime_type: e
                    .mime_type
                    .clone()
                    .filter(|m| m.contains('/') && !m.contains(char::is_whitespace))
                    .unwrap_or_else(|| "application/octet-stream".into()),
                length: e.length.as_deref().and_then(|l| l.trim().parse().ok()),
            });
        }
    }
    let image = it
        .image
        .as_deref()
        .or(body.as_ref().and_then(|b| b.first_image.as_deref()))
        .and_then(|src| url::absolute(src, content_base.as_ref()))
        .map(|u| u.to_string());
    Item {
        id: String::new(),
        title,
        link: link.map(|u| u.to_string()),
        published,
        updated,
        authors,
        summary,
        content_html: content.map(html::SanitizedBody::into_html),
        categories,
        language,
        enclosures,
        image,
    }
}

/// Characters no reader can show and XML forbids: C0 controls but tab, LF and CR, DEL, and the
/// non-characters U+FFFE/U+FFFF. JSON Feed and HTML bodies can carry them past the XML reader.
fn is_control(c: char) -> bool {
    html::is_control(c)
}

/// The item with control characters removed from its text fields (borrowed when it has none).
fn without_controls(it: &RawItem) -> std::borrow::Cow<'_, RawItem> {
    let dirty = |s: &Option<String>| s.as_deref().is_some_and(html::has_control);
    let any_dirty = dirty(&it.title)
        || dirty(&it.summary)
        || dirty(&it.content)
        || it.categories.iter().any(|c| html::has_control(c))
        || it.authors.iter().any(|a| dirty(&a.name));
    if !any_dirty {
        return std::borrow::Cow::Borrowed(it);
    }
    let clean = |s: &Option<String>| {
        s.as_ref()
            .map(|s| s.chars().filter(|c| !is_control(*c)).collect())
    };
    let mut out = it.clone();
    out.title = clean(&it.title);
    out.summary = clean(&it.summary);
    out.content = clean(&it.content);
    out.categories = it
        .categories
        .iter()
        .map(|c| c.chars().filter(|c| !is_control(*c)).collect())
        .collect();
    for a in &mut out.authors {
        a.name = clean(&a.name);
    }
    std::borrow::Cow::Owned(out)
}

/// How the ids made from an item's title and content begin.
const HASH_ID: &str = "urn:feedloom:hash:";

/// Ids: the source's guid/id when present and unique in the document, else the canonical link
/// when unique, else a hash of title and content. A repeat of an identical item is kept once
/// under a numbered id so that nothing is silently merged. `None` for a reused item whose
/// candidate is not at hand (a link only known by its hash): it is normalised after all.
fn assign_ids(raw: &[RawItem], slots: &[Slot<'_>]) -> Vec<Option<String>> {
    let mut guid_count: HashMap<&str, usize> = HashMap::new();
    for r in raw {
        if let Some(g) = r.guid.as_deref() {
            *guid_count.entry(g).or_default() += 1;
        }
    }
    // Links are counted by hash: a reused item may have only its link's hash at hand.
    let links: Vec<Option<Option<u64>>> =
        raw.iter().zip(slots).map(|(r, s)| s.link_hash(r)).collect();
    let mut link_count: HashMap<u64, usize> = HashMap::new();
    for h in links.iter().flatten().flatten() {
        *link_count.entry(*h).or_default() += 1;
    }
    let mut used: HashSet<String> = HashSet::new();
    let mut ids = Vec::with_capacity(slots.len());
    for ((r, slot), link) in raw.iter().zip(slots).zip(&links) {
        let unique_link = link.is_some_and(|h| h.is_some_and(|h| link_count[&h] == 1));
        let candidate = match (r.guid.as_deref(), slot) {
            (Some(g), _) if guid_count[g] == 1 => Some(g.to_string()),
            (_, Slot::Fresh(it)) if unique_link => it.link.clone(),
            (_, Slot::Known(k)) if unique_link => (k.link == Link::Id)
                .then(|| k.id(r).map(str::to_string))
                .flatten(),
            (_, Slot::Fresh(it)) => {
                let key = format!(
                    "{}\u{0}{}\u{0}{}",
                    it.title,
                    it.content_html.as_deref().unwrap_or(""),
                    it.link.as_deref().unwrap_or("")
                );
                Some(format!("{HASH_ID}{:032x}", xxh3_128(key.as_bytes())))
            }
            // The hash of a reused item is in its id (which may have a `#n` after it).
            (_, Slot::Known(k)) => {
                k.id.as_deref()
                    .filter(|id| id.starts_with(HASH_ID) && id.is_char_boundary(HASH_ID.len() + 32))
                    .map(|id| id[..HASH_ID.len() + 32].to_string())
            }
        };
        let Some(candidate) = candidate else {
            ids.push(None);
            continue;
        };
        let mut id = candidate.clone();
        let mut n = 2;
        while !used.insert(id.clone()) {
            id = format!("{candidate}#{n}");
            n += 1;
        }
        ids.push(Some(id));
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::RawItem;

    /// [`normalize_reusing`] of a document read whole (no item light).
    fn reusing(
        raw: RawFeed,
        rules: &Rules<'_>,
        now: DateTime<Utc>,
        prev: Option<&Reuse>,
    ) -> Normalized {
        normalize_reusing(raw, rules, now, prev).unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2025-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn ids_prefer_unique_guid_then_link_then_hash() {
        let raw = RawFeed {
            link: Some("https://ex.org/".into()),
            items: vec![
                RawItem {
                    guid: Some("g1".into()),
                    title: Some("a".into()),
                    ..Default::default()
                },
                RawItem {
                    guid: Some("dup".into()),
                    link: Some("/b".into()),
                    title: Some("b".into()),
                    ..Default::default()
                },
                RawItem {
                    guid: Some("dup".into()),
                    link: Some("/c".into()),
                    title: Some("c".into()),
                    ..Default::default()
                },
                RawItem {
                    title: Some("d".into()),
                    ..Default::default()
                },
                RawItem {
                    title: Some("d".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let p = normalize(raw, &Rules::default(), now());
        let ids: Vec<&str> = p.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids[0], "g1");
        assert_eq!(ids[1], "https://ex.org/b");
        assert_eq!(ids[2], "https://ex.org/c");
        assert!(ids[3].starts_with("urn:feedloom:hash:"));
        assert_eq!(ids[4], format!("{}#2", ids[3]));
        // Stable across runs.
        let again = normalize(
            RawFeed {
                items: vec![RawItem {
                    title: Some("d".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            &Rules::default(),
            now(),
        );
        assert_eq!(again.items[0].id, ids[3]);
    }

    #[test]
    fn dates_clamped_and_epoch_dropped() {
        let raw = RawFeed {
            items: vec![RawItem {
                published: Some("2030-01-01T00:00:00Z".into()),
                updated: Some("1970-01-01T00:00:00Z".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let p = normalize(raw, &Rules::default(), now());
        assert_eq!(p.items[0].published, Some(now()));
        assert_eq!(p.items[0].updated, None);
    }

    #[test]
    fn summary_cut_at_word_boundary() {
        let long = "слово ".repeat(100);
        let s = truncate(long.trim(), 300);
        assert!(s.ends_with("слово…"), "{s}");
        assert!(s.chars().count() <= 301);
    }

    #[test]
    fn truncation_never_splits_a_grapheme() {
        // A family emoji is one grapheme of five code points; "é" here is e + a combining mark.
        let s = format!("{}{}", "👨‍👩‍👧".repeat(5), "e\u{301}".repeat(5));
        let t = truncate(&s, 7);
        assert_eq!(t, format!("{}{}…", "👨‍👩‍👧".repeat(5), "e\u{301}".repeat(2)));
        assert_eq!(truncate("short", 300), "short");
    }

    #[test]
    fn title_entities_and_categories() {
        let raw = RawFeed {
            items: vec![RawItem {
                title: Some("Tom &amp; Jerry&nbsp;&mdash;  <b>live</b>".into()),
                categories: vec![" Ёлки ".into(), "елки".into(), "News".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let p = normalize(raw, &Rules::default(), now());
        assert_eq!(p.items[0].title, "Tom & Jerry — live");
        assert_eq!(p.items[0].categories, vec!["Ёлки", "News"]);
    }

    fn story(guid: &str, title: &str, date: &str) -> RawItem {
        RawItem {
            guid: Some(guid.into()),
            title: Some(title.into()),
            link: Some(format!("https://ex.org/{guid}")),
            published: Some(date.into()),
            content: Some(format!("<p>{title}: the story.</p><p>Share this</p>")),
            content_is_html: true,
            ..Default::default()
        }
    }

    fn doc(items: Vec<RawItem>) -> RawFeed {
        RawFeed {
            link: Some("https://ex.org/".into()),
            language: Some("en".into()),
            items,
            ..Default::default()
        }
    }

    /// What a reusing run stands for: its fresh items, and the items of `before` it reused.
    fn as_stored(out: &Normalized, before: &[Item]) -> Vec<Item> {
        let mut all = out.items.clone();
        for id in &out.unchanged {
            all.push(before.iter().find(|i| i.id == *id).unwrap().clone());
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    fn sorted(mut items: Vec<Item>) -> Vec<Item> {
        items.sort_by(|a, b| a.id.cmp(&b.id));
        items
    }

    #[test]
    fn unchanged_items_are_reused_and_changed_ones_normalised() {
        let rules = Rules::default();
        let a = story("a", "Alpha", "2025-05-01T00:00:00Z");
        let b = story("b", "Beta", "2025-05-02T00:00:00Z");
        let c = story("c", "Gamma", "2025-05-03T00:00:00Z");
        let first = reusing(doc(vec![a.clone(), b.clone()]), &rules, now(), None);
        assert_eq!(first.items.len(), 2);
        assert!(first.unchanged.is_empty());
        assert_eq!(first.reuse.len(), 2);

        let mut b2 = b.clone();
        b2.content = Some("<p>Beta, edited.</p>".into());
        let next = doc(vec![c.clone(), b2.clone(), a.clone()]);
        let second = reusing(next.clone(), &rules, now(), Some(&first.reuse));
        assert_eq!(second.unchanged, ["a"]);
        let fresh: Vec<&str> = second.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(fresh, ["c", "b"]);
        assert_eq!(
            as_stored(&second, &first.items),
            sorted(normalize(next, &rules, now()).items),
            "reusing stands for normalising everything"
        );
        assert_eq!(second.reuse.len(), 3);
        assert_eq!(second.reuse.context, first.reuse.context);

        // The same document again: nothing to normalise.
        let third = reusing(doc(vec![c, b2, a]), &rules, now(), Some(&second.reuse));
        assert!(third.items.is_empty());
        assert_eq!(third.unchanged, ["c", "b", "a"]);
        assert_eq!(third.reuse, second.reuse);
    }

    #[test]
    fn another_context_reuses_nothing() {
        let items = vec![story("a", "Alpha", "2025-05-01T00:00:00Z")];
        let first = reusing(doc(items.clone()), &Rules::default(), now(), None);
        let patterns = [Regex::new("^Share this$").unwrap()];
        let stripping = Rules {
            strip_patterns: &patterns,
            ..Rules::default()
        };
        let other = reusing(doc(items.clone()), &stripping, now(), Some(&first.reuse));
        assert!(other.unchanged.is_empty());
        assert!(
            !other.items[0]
                .content_html
                .as_deref()
                .unwrap()
                .contains("Share")
        );
        // Feed-level facts the items depend on: the feed's language, its address.
        let mut english = doc(items.clone());
        english.language = Some("de".into());
        let other = reusing(english, &Rules::default(), now(), Some(&first.reuse));
        assert!(other.unchanged.is_empty());
        let moved = Rules {
            location: Url::parse("https://elsewhere.example/feed").ok(),
            ..Rules::default()
        };
        let other = reusing(doc(items.clone()), &moved, now(), Some(&first.reuse));
        assert!(other.unchanged.is_empty());
        let detector = language::Detector::new(&["en".into(), "de".into()]);
        let detecting = Rules {
            detector: Some(&detector),
            ..Rules::default()
        };
        let other = reusing(doc(items.clone()), &detecting, now(), Some(&first.reuse));
        assert!(other.unchanged.is_empty());
        // The feed's lastBuildDate is not something items depend on.
        let mut rebuilt = doc(items);
        rebuilt.updated = Some("2025-05-09T00:00:00Z".into());
        let same = reusing(rebuilt, &Rules::default(), now(), Some(&first.reuse));
        assert_eq!(same.unchanged, ["a"]);
    }

    #[test]
    fn a_reused_item_whose_id_changes_is_normalised_again() {
        let rules = Rules::default();
        let a = story("g", "Alpha", "2025-05-01T00:00:00Z");
        let first = reusing(doc(vec![a.clone()]), &rules, now(), None);
        assert_eq!(first.items[0].id, "g");
        // Another item with the same guid: neither guid is unique, ids come from links.
        let mut b = story("g", "Beta", "2025-05-02T00:00:00Z");
        b.link = Some("https://ex.org/beta".into());
        let next = doc(vec![a, b]);
        let second = reusing(next.clone(), &rules, now(), Some(&first.reuse));
        assert!(second.unchanged.is_empty());
        let ids: Vec<&str> = second.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["https://ex.org/g", "https://ex.org/beta"]);
        assert_eq!(second.items, normalize(next, &rules, now()).items);
    }

    #[test]
    fn repeated_and_future_items_are_not_remembered() {
        let rules = Rules::default();
        let a = story("a", "Alpha", "2025-05-01T00:00:00Z");
        let mut twice = a.clone();
        twice.guid = None;
        let future = story("f", "Later", "2031-01-01T00:00:00Z");
        let first = reusing(
            doc(vec![
                twice.clone(),
                twice.clone(),
                future.clone(),
                a.clone(),
            ]),
            &rules,
            now(),
            None,
        );
        assert_eq!(first.items.len(), 4);
        assert_eq!(first.reuse.len(), 1, "only the one plain item");
        // Items without a guid of their own make links count, and the reused item's link was
        // not kept (its id is its guid): it is normalised again, as are the others.
        let second = reusing(
            doc(vec![twice.clone(), twice, future.clone(), a.clone()]),
            &rules,
            now(),
            Some(&first.reuse),
        );
        assert!(second.unchanged.is_empty());
        assert_eq!(second.items.len(), 4);
        let third = reusing(doc(vec![future, a]), &rules, now(), Some(&first.reuse));
        assert_eq!(third.unchanged, ["a"]);
        assert_eq!(third.items.len(), 1, "the future item is normalised again");
    }

    #[test]
    fn items_without_guids_are_reused_by_their_links() {
        let rules = Rules::default();
        let plain = |n: u32| RawItem {
            guid: None,
            ..story(
                &format!("p{n}"),
                &format!("Plain {n}"),
                "2025-05-01T00:00:00Z",
            )
        };
        let mut no_link = plain(3);
        no_link.link = None;
        let first = reusing(
            doc(vec![plain(1), plain(2), no_link.clone()]),
            &rules,
            now(),
            None,
        );
        assert_eq!(first.reuse.len(), 3);
        let next = doc(vec![plain(4), plain(1), plain(2), no_link]);
        let second = reusing(next.clone(), &rules, now(), Some(&first.reuse));
        assert_eq!(second.unchanged.len(), 3);
        assert_eq!(second.unchanged[0], "https://ex.org/p1");
        assert!(second.unchanged[2].starts_with("urn:feedloom:hash:"));
        assert_eq!(
            as_stored(&second, &first.items),
            sorted(normalize(next, &rules, now()).items)
        );
        // A new item with the same link as a reused one: both ids change, both are normalised.
        let mut twin = plain(9);
        twin.link = Some("https://ex.org/p1".into());
        let third = reusing(
            doc(vec![twin.clone(), plain(1)]),
            &rules,
            now(),
            Some(&second.reuse),
        );
        assert!(third.unchanged.is_empty());
        assert_eq!(
            third.items,
            normalize(doc(vec![twin, plain(1)]), &rules, now()).items
        );
    }

    #[test]
    fn reuse_keeps_the_same_newest_items_and_the_deadline_cuts_only_what_is_normalised() {
        let items: Vec<RawItem> = (1..=9)
            .map(|n| {
                story(
                    &format!("s{n}"),
                    &format!("Story {n}"),
                    &format!("2025-05-0{n}T00:00:00Z"),
                )
            })
            .collect();
        let three = Rules {
            max_items: Some(3),
            ..Rules::default()
        };
        let first = reusing(doc(items[..5].to_vec()), &three, now(), None);
        let ids = |o: &Normalized| {
            let mut v: Vec<String> = o
                .items
                .iter()
                .map(|i| i.id.clone())
                .chain(o.unchanged.clone())
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids(&first), ["s3", "s4", "s5"]);
        let second = reusing(doc(items.clone()), &three, now(), Some(&first.reuse));
        assert_eq!(
            ids(&second),
            ["s7", "s8", "s9"],
            "the newest, reused or not"
        );
        assert!(second.unchanged.is_empty());
        assert_eq!(second.reuse.len(), 3);
        // A deadline already passed: the known items still come out, nothing is normalised,
        // and what was left out is not remembered.
        let late = Rules {
            deadline: Some(std::time::Instant::now()),
            ..Rules::default()
        };
        let third = reusing(doc(items[6..].to_vec()), &late, now(), Some(&second.reuse));
        assert_eq!(third.unchanged, ["s7", "s8", "s9"]);
        let fourth = reusing(doc(items[..2].to_vec()), &late, now(), Some(&third.reuse));
        assert!(fourth.items.is_empty() && fourth.unchanged.is_empty());
        assert!(fourth.reuse.is_empty());
    }

    #[test]
    fn language_tags() {
        assert_eq!(language_tag("ru-RU").as_deref(), Some("ru-ru"));
        assert_eq!(language_tag("en_US").as_deref(), Some("en-us"));
        assert_eq!(language_tag("русский"), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Lines of the kinds real bodies are made of, hostile ones included.
    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("Визит лидера в Астану".to_string()),
            Just("Эксперты обсуждают перспективы сотрудничества двух стран.".to_string()),
            Just("A short heading line".to_string()),
            Just("  • Транспорт и логистика".to_string()),
            Just("- first point".to_string()),
            Just("— Мы довольны, — сказал он.".to_string()),
            Just("1. one".to_string()),
            Just("2. two".to_string()),
            Just("Фото: ТАСС".to_string()),
            Just("Поделиться:".to_string()),
            Just("Read more about it in our explainer.".to_string()),
            Just("<p>Para with <a href=\"/rel?utm_source=x\">link</a>.</p>".to_string()),
            Just("<p><strong>Bold heading</strong></p>".to_string()),
            Just("<p><b>Bold line<br>Фото: ТАСС<br></b></p>".to_string()),
            Just("<h1>Title here</h1>".to_string()),
            Just("<ul><li>a</li><li>b</li></ul>".to_string()),
            Just("<img src=\"/a.jpg\"><br>".to_string()),
            Just("<img src=x onerror=alert(1)>".to_string()),
            Just("<script>alert(1)</script>".to_string()),
            Just("<a href=\"javascript:alert(1)\">x</a>".to_string()),
            Just("<svg><script>alert(1)</script></svg>".to_string()),
            Just("<iframe src=\"https://evil.example/\"></iframe>".to_string()),
            Just("<table><tr><td>1</td></tr></table>".to_string()),
            Just("<blockquote>Quote &amp; more</blockquote>".to_string()),
            "[\\PC&<>\"' ]{0,40}",
        ]
    }

    fn raw_item(title: String, body: String, is_html: bool) -> RawItem {
        RawItem {
            title: Some(title),
            link: Some("https://example.org/news/1?utm_medium=x".into()),
            content: Some(body),
            content_is_html: is_html,
            ..RawItem::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Counting characters that stand alone finds the clusters segmenting finds.
        #[test]
        fn grapheme_starts_are_the_segmenters(
            parts in proptest::collection::vec(prop_oneof![
                Just("a"), Just("Я"), Just("é"), Just("e\u{301}"), Just("\r\n"), Just("\r"),
                Just("\n"), Just("—"), Just("…"), Just("\u{483}"), Just("\u{200d}"),
                Just("\u{1f469}\u{200d}\u{1f4bb}"), Just("\u{1f1f7}\u{1f1fa}"), Just("한"),
                Just("\u{1100}\u{1161}"), Just("\u{94d}"), Just("क"), Just("\u{ad}"), Just(" "),
                Just("\u{2ff}"), Just("\u{300}"), Just("\u{52f}"), Just("\u{2027}"),
                Just("\u{2028}"), Just("\u{205e}"), Just("\u{205f}"), Just("\u{200b}"),
            ], 0..40),
            n in 0usize..45,
        ) {
            use unicode_segmentation::UnicodeSegmentation;
            let s = parts.concat();
            let by_segmenter = s.grapheme_indices(true).nth(n).map(|(i, _)| i);
            prop_assert_eq!(grapheme_start(&s, n), by_segmenter, "{:?} at {}", s, n);
        }
    }

    /// `is_excerpt` as it was written first: both texts squashed whole, then compared.
    fn is_excerpt_by_squashing(summary: &str, body: Option<&str>) -> bool {
        let Some(body) = body else {
            return false;
        };
        let squash = |s: &str| -> String {
            let mut out = String::new();
            for c in fold::fold(s).chars() {
                if fold::is_word_char(c) {
                    out.push(c);
                }
            }
            out
        };
        let s = squash(summary);
        if s.is_empty() {
            return false;
        }
        let cut = summary
            .trim_end()
            .trim_end_matches(['…', '.', ']', '['])
            .rsplit_once(char::is_whitespace)
            .map_or(s.clone(), |(head, _)| squash(head));
        let b = squash(body);
        b.starts_with(&s) || (cut.chars().count() >= 20 && b.starts_with(&cut))
    }

    /// Words texts are made of: the same word in other cases, a cut word, punctuation, a
    /// letter that folds to two, Greek sigmas.
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("Визит"),
                Just("визит"),
                Just("ВИЗИТ"),
                Just("лидера"),
                Just("Лидер"),
                Just("Ёлка"),
                Just("елка"),
                Just("İstanbul"),
                Just("i̇stanbul"),
                Just("ΟΔΟΣ"),
                Just("οδος"),
                Just("Straße"),
                Just("—"),
                Just("…"),
                Just("[...]"),
                Just("."),
                Just(" "),
                Just("\n"),
                Just("long-enough-words-here"),
                Just("a"),
                Just("Ab"),
                Just("abc"),
                Just("Я"),
            ],
            0..24,
        )
        .prop_map(|w| w.join(" "))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// Read side by side, a summary is an excerpt of a body exactly when it was one with
        /// both squashed whole.
        #[test]
        fn excerpts_read_side_by_side_as_squashed_whole(
            body in text(),
            cut in 0usize..200,
            tail in text(),
            other in prop_oneof![Just(None), text().prop_map(Some)],
        ) {
            // A summary that starts the body (cut anywhere, even inside a word) and goes on
            // with other words, or another text.
            let start: String = body.chars().take(cut).collect();
            let summary = other.unwrap_or_else(|| format!("{start}{tail}"));
            for summary in [summary.as_str(), start.as_str()] {
                prop_assert_eq!(
                    is_excerpt(summary, Some(&body)),
                    is_excerpt_by_squashing(summary, Some(&body)),
                    "summary {:?}, body {:?}", summary, body
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn normalising_is_idempotent_and_safe(
            title in prop_oneof![Just("Визит лидера в Астану".to_string()), "[\\PC]{0,30}"],
            lines in proptest::collection::vec(line(), 0..14),
            is_html in any::<bool>(),
        ) {
            let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
            let rules = Rules::default();
            let feed = |items| RawFeed { items, ..RawFeed::default() };
            let once = normalize(feed(vec![raw_item(title, lines.join("\n"), is_html)]), &rules, now);
            let it = &once.items[0];
            let html = it.content_html.clone().unwrap_or_default();
            prop_assert!(html::first_unsafe_markup(&html).is_none(), "{:?} in {}", html::first_unsafe_markup(&html), html);
            let twice = normalize(feed(vec![RawItem::from(it)]), &rules, now);
            prop_assert_eq!(&twice.items[0], it);
        }
    }
}
