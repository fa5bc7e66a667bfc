//! The fuzz targets' checks, shared with `tests/it/hostile.rs`, which replays every input a
//! fuzzer found (`tests/fixtures/fuzz/<target>/`) through exactly these functions.

use chrono::{DateTime, Utc};
use feedloom::normalize::{Rules, normalize};
use feedloom::parse::{RawFeed, RawItem};

/// Any bytes and a Content-Type chosen by the first byte: decoding and parsing must return.
pub fn decode_parse(data: &[u8]) {
    let (ct, body) = match data.split_first() {
        Some((b, rest)) if b % 4 == 0 => (Some("text/xml; charset=windows-1251"), rest),
        Some((b, rest)) if b % 4 == 1 => (Some("application/rss+xml; charset=koi8-r"), rest),
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };
    let decoded = feedloom::decode::decode(body, ct);
    let _ = feedloom::parse::parse(&decoded.text);
}

/// Text split at U+0001 into title, summary and body (HTML when the first byte is even):
/// normalising must not panic, must emit nothing runnable, and must be idempotent.
pub fn normalize_item(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).expect("a valid time");
    let mut parts = text.splitn(3, '\u{1}');
    let (title, summary, body) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let is_html = data.first().is_some_and(|b| b % 2 == 0);
    let raw = RawItem {
        title: Some(title.to_string()),
        link: Some("https://example.org/a?utm_source=x".into()),
        summary: Some(summary.to_string()).filter(|s| !s.is_empty()),
        summary_is_html: is_html,
        content: Some(body.to_string()),
        content_is_html: is_html,
        ..RawItem::default()
    };
    let rules = Rules::default();
    let feed = |items| RawFeed {
        items,
        ..RawFeed::default()
    };
    let once = normalize(feed(vec![raw]), &rules, now);
    let it = &once.items[0];
    let html = it.content_html.as_deref().unwrap_or("");
    let bad = feedloom::normalize::html::first_unsafe_markup(html);
    assert!(bad.is_none(), "unsafe output {bad:?}: {html}");
    let twice = normalize(feed(vec![RawItem::from(it)]), &rules, now);
    assert_eq!(&twice.items[0], it, "normalising is idempotent");
}
