//! Any text as an item's title, summary and body (HTML or plain): normalising must not panic,
//! must be idempotent, and must never emit script, event handlers or dangerous URLs.
#![no_main]

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use feedloom::normalize::{Rules, normalize};
use feedloom::parse::{RawFeed, RawItem};
use libfuzzer_sys::fuzz_target;

static NOW: LazyLock<DateTime<Utc>> =
    LazyLock::new(|| DateTime::from_timestamp(1_767_225_600, 0).expect("a valid time"));

fn raw(title: &str, summary: &str, body: &str, is_html: bool) -> RawItem {
    RawItem {
        title: Some(title.to_string()),
        link: Some("https://example.org/a?utm_source=x".into()),
        summary: Some(summary.to_string()).filter(|s| !s.is_empty()),
        summary_is_html: is_html,
        content: Some(body.to_string()),
        content_is_html: is_html,
        ..RawItem::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\u{1}');
    let title = parts.next().unwrap_or("");
    let summary = parts.next().unwrap_or("");
    let body = parts.next().unwrap_or("");
    let is_html = data.first().is_some_and(|b| b % 2 == 0);
    let rules = Rules::default();
    let feed = |items| RawFeed { items, ..RawFeed::default() };
    let once = normalize(feed(vec![raw(title, summary, body, is_html)]), &rules, *NOW);
    let it = &once.items[0];
    let html = it.content_html.as_deref().unwrap_or("");
    let bad = feedloom::normalize::html::first_unsafe_markup(html);
    assert!(bad.is_none(), "unsafe output {bad:?}: {html}");
    let twice = normalize(feed(vec![RawItem::from(it)]), &rules, *NOW);
    assert_eq!(&twice.items[0], it, "normalising is idempotent");
});
