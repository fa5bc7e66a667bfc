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
pub mod html;
pub mod language;
mod own_markup;
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
        ttl_minutes: raw.ttl_minutes.filter(|m| *m > 0),
    };
    let raw_items = newest(raw.items, rules, now);
    let mut items: Vec<Item> = Vec::with_capacity(raw_items.len());
    for it in &raw_items {
        if rules
            .deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
        {
            tracing::warn!(
                normalised = items.len(),
                left_out = raw_items.len() - items.len(),
                "parse_timeout reached while normalising: the other items are left out"
            );
            break;
        }
        items.push(item(
            it,
            item_base.as_ref(),
            feed_language.as_deref(),
            rules,
            now,
        ));
    }
    assign_ids(&raw_items[..items.len()], &mut items);
    Parsed { feed, items }
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
    let Some(body) = body else {
        return false;
    };
    let squash = |s: &str| -> String { fold(s).chars().filter(|c| c.is_alphanumeric()).collect() };
    let s = squash(summary);
    if s.is_empty() {
        return false;
    }
    // An excerpt's last word may be cut ("логистики и…"): drop it before comparing.
    let cut = summary
        .trim_end()
        .trim_end_matches(['…', '.', ']', '['])
        .rsplit_once(char::is_whitespace)
        .map_or(s.clone(), |(head, _)| squash(head));
    // Only the start of the body is compared: squash that much of it (up to white space, so
    // that case folding sees the same context as in the whole), or all of it if that is short.
    let need = s.chars().count().max(cut.chars().count());
    let head = body_head(body, need + 1);
    let mut b = squash(head);
    if head.len() < body.len() && b.chars().count() < need {
        b = squash(body);
    }
    b.starts_with(&s) || (cut.chars().count() >= 20 && b.starts_with(&cut))
}

/// The start of `body` holding at least `alnum` alphanumeric characters, cut before white
/// space; all of it when it is shorter.
fn body_head(body: &str, alnum: usize) -> &str {
    let mut seen = 0;
    for (i, c) in body.char_indices() {
        if seen >= alnum && c.is_whitespace() {
            return &body[..i];
        }
        if c.is_alphanumeric() {
            seen += 1;
        }
    }
    body
}

/// Cuts `s` to at most `max` user-perceived characters (grapheme clusters), at a word boundary
/// when there is one in the second half, adding "…" when cut. Never splits a grapheme.
pub fn truncate(s: &str, max: usize) -> String {
    use unicode_segmentation::UnicodeSegmentation;
    let Some((end, _)) = s.grapheme_indices(true).nth(max) else {
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
    let mut content_html = None;
    // The text of the sanitised body, read once for the emptiness test and the summary.
    let mut content_text = None;
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
        let h = html::sanitize(&b.html, content_base.as_ref());
        let text = html::text_of(&h);
        if has_media(&h) || !text.is_empty() {
            body = Some(b);
            content_html = Some(h);
            content_text = Some(text);
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
    let body_text = content_text.as_deref().map(html::collapse);
    let lead = body.as_ref().and_then(|b| b.lead.clone());
    // The lead is compared too: a body may open with a photo and its caption (full text
    // restores the lead photo there), and the summary is then an excerpt of the text after it.
    let summary_text = match (source_summary, lead) {
        (Some(s), Some(l))
            if body_from_content
                && !s.is_empty()
                && !is_excerpt(&s, body_text.as_deref())
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
        if !c.is_empty() && seen.insert(fold(&c)) {
            categories.push(c);
        }
    }
    // Language: the item's own, else detected from its title and lead, else the feed's. A
    // detected language that the feed's tag names more precisely (en → en-us) takes its tag.
    let language = it.language.as_deref().and_then(language_tag).or_else(|| {
        let sample = format!("{title}. {}", summary.as_deref().unwrap_or(""));
        let detected = rules.detector.and_then(|d| d.detect(&sample));
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
        content_html,
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
    let dirty = |s: &Option<String>| s.as_deref().is_some_and(|s| s.chars().any(is_control));
    let any_dirty = dirty(&it.title)
        || dirty(&it.summary)
        || dirty(&it.content)
        || it.categories.iter().any(|c| c.chars().any(is_control))
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

/// Case folding for comparisons: lowercase, ё → е.
pub fn fold(s: &str) -> String {
    s.to_lowercase().replace('ё', "е")
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
