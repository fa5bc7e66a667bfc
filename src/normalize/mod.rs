//! `(RawFeed, &Rules, now) → Parsed`: pure, no I/O, `now` passed in.
//!
//! A fixed order of steps per item: base URL → title → link → dates → authors → content →
//! summary → categories → language → enclosures → id; sanitising is the last thing done to
//! content. `feedloom parse --json` prints exactly what this returns.

pub mod date;
pub mod html;
pub mod url;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use regex::Regex;
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
    /// The source's `timezone`, for dates written without an offset (UTC when `None`).
    pub timezone: Option<chrono_tz::Tz>,
}

/// Longest summary, in characters, before it is cut at a word boundary.
pub const SUMMARY_CHARS: usize = 300;
/// Longest title kept, in characters.
pub const TITLE_CHARS: usize = 1000;

/// Normalises one parsed document.
pub fn normalize(raw: RawFeed, rules: &Rules<'_>, now: DateTime<Utc>) -> Parsed {
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
    };
    let mut items: Vec<Item> = raw
        .items
        .iter()
        .map(|it| item(it, item_base.as_ref(), feed_language.as_deref(), rules, now))
        .collect();
    assign_ids(&raw.items, &mut items);
    Parsed { feed, items }
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
    let text = if is_html || html::looks_like_html(t) {
        html::collapse(&html::text_of(t))
    } else {
        html::collapse(t)
    };
    truncate(&text, TITLE_CHARS)
}

/// Cuts `s` to at most `max` characters at a word boundary, adding "…" when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    let at = cut
        .rfind(char::is_whitespace)
        .filter(|i| *i > max / 2)
        .unwrap_or(cut.len());
    let head = cut[..at].trim_end_matches(|c: char| c.is_whitespace() || ",;:-–—".contains(c));
    format!("{head}…")
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
    let base = it
        .base
        .as_deref()
        .and_then(|b| url::absolute(b, feed_base))
        .or_else(|| feed_base.cloned());
    let title = it
        .title
        .as_deref()
        .map(|t| plain_title(t, it.title_is_html))
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

    // Content: the fullest body the source gave, as HTML.
    let (body, body_is_html) = match (&it.content, &it.summary) {
        (Some(c), _) => (Some(c.as_str()), it.content_is_html),
        (None, Some(s)) => (Some(s.as_str()), it.summary_is_html),
        (None, None) => (None, false),
    };
    let body_html = body.map(|b| {
        let b = strip_lines(b, rules.strip_patterns);
        if body_is_html && html::looks_like_html(&b) {
            b.into_owned()
        } else {
            html::plain_to_html(&b)
        }
    });
    let content_html = body_html
        .as_deref()
        .map(|h| html::sanitize(h, content_base.as_ref()))
        .filter(|h| !h.is_empty());

    // Summary: plain text of the summary the source wrote, else of the content.
    let summary_text = match &it.summary {
        Some(s) if it.summary_is_html || html::looks_like_html(s) => html::text_of(s),
        Some(s) => html::tidy_text(s),
        None => content_html
            .as_deref()
            .map(html::text_of)
            .unwrap_or_default(),
    };
    let summary_text = strip_lines(&summary_text, rules.strip_patterns);
    let summary =
        Some(truncate(&html::collapse(&summary_text), SUMMARY_CHARS)).filter(|s| !s.is_empty());

    let mut categories: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for c in &it.categories {
        let c = html::collapse(c);
        if !c.is_empty() && seen.insert(fold(&c)) {
            categories.push(c);
        }
    }
    let language = it
        .language
        .as_deref()
        .and_then(language_tag)
        .or_else(|| feed_language.map(str::to_string));
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
    Item {
        id: String::new(),
        title,
        link: link.map(|u| u.to_string()),
        published,
        updated,
        authors,
        summary,
        content_html,
        categories,
        language,
        enclosures,
    }
}

/// Case folding for comparisons: lowercase, ё → е.
pub fn fold(s: &str) -> String {
    s.to_lowercase().replace('ё', "е")
}

/// Removes lines that match one of the source's `strip_patterns`.
fn strip_lines<'s>(s: &'s str, patterns: &[Regex]) -> std::borrow::Cow<'s, str> {
    if patterns.is_empty() {
        return std::borrow::Cow::Borrowed(s);
    }
    let kept: Vec<&str> = s
        .lines()
        .filter(|line| {
            let hit = patterns.iter().find(|p| p.is_match(line));
            if let Some(p) = hit {
                tracing::debug!(rule = %p, line = %line, "strip_patterns removed a line");
            }
            hit.is_none()
        })
        .collect();
    std::borrow::Cow::Owned(kept.join("\n"))
}

/// Ids: the source's guid/id when present and unique in the document, else the canonical link
/// when unique, else a hash of title and content. A repeat of an identical item is kept once
/// under a numbered id so that nothing is silently merged.
fn assign_ids(raw: &[RawItem], items: &mut [Item]) {
    let mut guid_count: HashMap<&str, usize> = HashMap::new();
    for r in raw {
        if let Some(g) = r.guid.as_deref() {
            *guid_count.entry(g).or_default() += 1;
        }
    }
    let mut link_count: HashMap<String, usize> = HashMap::new();
    for it in items.iter() {
        if let Some(l) = &it.link {
            *link_count.entry(l.clone()).or_default() += 1;
        }
    }
    let mut used: HashSet<String> = HashSet::new();
    for (r, it) in raw.iter().zip(items.iter_mut()) {
        let candidate = match (r.guid.as_deref(), &it.link) {
            (Some(g), _) if guid_count[g] == 1 => g.to_string(),
            (_, Some(l)) if link_count[l] == 1 => l.clone(),
            _ => {
                let key = format!(
                    "{}\u{0}{}\u{0}{}",
                    it.title,
                    it.content_html.as_deref().unwrap_or(""),
                    it.link.as_deref().unwrap_or("")
                );
                format!("urn:feedloom:hash:{:032x}", xxh3_128(key.as_bytes()))
            }
        };
        let mut id = candidate.clone();
        let mut n = 2;
        while !used.insert(id.clone()) {
            id = format!("{candidate}#{n}");
            n += 1;
        }
        it.id = id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::RawItem;

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

    #[test]
    fn language_tags() {
        assert_eq!(language_tag("ru-RU").as_deref(), Some("ru-ru"));
        assert_eq!(language_tag("en_US").as_deref(), Some("en-us"));
        assert_eq!(language_tag("русский"), None);
    }
}
