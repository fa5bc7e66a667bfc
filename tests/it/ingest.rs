//! Reading real-world feeds: where feedloom deliberately differs from Python feedparser (the
//! reference of `../shared/conformance/`), each difference pinned by a test that says why.
//! Format, charset, recovery and date cases with full outputs are goldens under
//! `tests/fixtures/parse/formats/` (see `cli_parse`).

use chrono::{DateTime, Utc};
use feedloom::model::Parsed;
use feedloom::pipeline::parse_document;

fn now() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn parse(doc: &str) -> Parsed {
    parse_document(
        doc.as_bytes(),
        None,
        None,
        None,
        &crate::support::detector(),
        now(),
    )
    .expect("parses")
}

fn rss_item(inner: &str) -> String {
    format!("<rss version=\"2.0\"><channel><title>t</title><item>{inner}</item></channel></rss>")
}

fn date(p: &Parsed) -> String {
    p.items[0]
        .published
        .map(|d| d.to_rfc3339())
        .unwrap_or_default()
}

/// feedparser reads the zone MSK as UTC; Moscow time is UTC+3.
#[test]
fn feedparser_differs_msk_is_utc_plus_3() {
    let p = parse(&rss_item(
        "<title>a</title><pubDate>Fri, 30 May 2025 08:15:00 MSK</pubDate>",
    ));
    assert_eq!(date(&p), "2025-05-30T05:15:00+00:00");
}

/// feedparser drops the PM of "Sat, Dec 16 2023 02:02:33 PM" (conformance file
/// feed-rs/rss2/rss_2.0_nbcny.xml: it says 02:02:33).
#[test]
fn feedparser_differs_pm_is_afternoon() {
    let p = parse(&rss_item(
        "<title>a</title><pubDate>Sat, Dec 16 2023 02:02:33 PM</pubDate>",
    ));
    assert_eq!(date(&p), "2023-12-16T14:02:33+00:00");
}

/// feedparser decodes `&lang` in `?id=1&lang=ru` as the entity 〈 (STACK.md gotcha 2).
#[test]
fn feedparser_differs_bare_ampersand_in_url_stays() {
    let p = parse(&rss_item(
        "<title>a</title><link>https://ex.org/n?id=1&lang=ru</link>",
    ));
    assert_eq!(
        p.items[0].link.as_deref(),
        Some("https://ex.org/n?id=1&lang=ru")
    );
}

/// feedparser expands entities declared in the document's DTD (conformance file
/// feedparser/rss/entity_in_doctype.xml); feedloom never expands DTD entities (no "billion
/// laughs", no external entity is ever read), so the reference stays literal.
#[test]
fn feedparser_differs_dtd_entities_are_not_expanded() {
    let p = parse(
        "<!DOCTYPE rss [<!ENTITY x \"expanded\"><!ENTITY e SYSTEM \"file:///etc/passwd\">]>\
         <rss version=\"2.0\"><channel><title>t</title><item><title>&x; &e;</title></item></channel></rss>",
    );
    assert_eq!(p.items[0].title, "&x; &e;");
}

/// feedparser copies an Atom `id` or RSS `guid` into `link` whatever it is (`urn:uuid:…`,
/// `tag:…`, even "right"); feedloom uses it as the link only when it is an http(s) URL (and,
/// in RSS, not `isPermaLink="false"`).
#[test]
fn feedparser_differs_non_url_ids_are_not_links() {
    let p = parse(
        "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title>\
         <entry><id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id><title>a</title></entry>\
         <entry><id>https://ex.org/post/1</id><title>b</title></entry></feed>",
    );
    assert_eq!(p.items[0].link, None);
    assert_eq!(p.items[1].link.as_deref(), Some("https://ex.org/post/1"));
    let p = parse(&rss_item(
        "<title>a</title><guid isPermaLink=\"false\">https://ex.org/not-a-page</guid>",
    ));
    assert_eq!(p.items[0].link, None);
    let p = parse(&rss_item(
        "<title>a</title><guid>https://ex.org/page</guid>",
    ));
    assert_eq!(p.items[0].link.as_deref(), Some("https://ex.org/page"));
}

/// Titles are plain text: an escaped `&lt;blink&gt;` inside an HTML title is the text
/// "<blink>" (feedparser agrees; compare.py's tag stripping of our plain text is what differs).
#[test]
fn plain_text_title_keeps_angle_brackets() {
    let p = parse(
        "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title type=\"xhtml\"><div xmlns=\"http://www.w3.org/1999/xhtml\"><p>History of the &lt;blink&gt; tag</p></div></title></feed>",
    );
    assert_eq!(p.feed.title.as_deref(), Some("History of the <blink> tag"));
}

/// A feed cut off midway keeps its complete items; one with nothing usable is an error that
/// names the line.
#[test]
fn truncated_and_broken_documents() {
    let p = parse("<rss><channel><title>t</title><item><title>one</title></item><item><title>tw");
    assert_eq!(p.items.len(), 1);
    let err = parse_document(
        b"<rss>\n<channel>\n<<<",
        None,
        None,
        None,
        &crate::support::detector(),
        now(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("line 3"), "{err}");
}

/// An Atom 1.0 date written as RFC 822 costs only that date, not the document
/// (atom_syndication rejected the whole feed).
#[test]
fn atom_with_rfc822_date_is_read() {
    let p = parse(
        "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title><entry><title>a</title>\
         <published>Sat, 01 Jan 2010 19:48:21 GMT</published></entry></feed>",
    );
    assert_eq!(date(&p), "2010-01-01T19:48:21+00:00");
}

/// Links come out canonical (RFC 3986 §6.2.2: scheme and host in lower case, non-ASCII
/// percent-encoded), without tracking parameters, and absolute or not at all; feedparser
/// passes them through as written ("http://www.EXAMPLE.org/thing", "記事1のURL",
/// "?utm_source=…", "/blog/relative").
#[test]
fn feedparser_differs_links_are_canonical_and_absolute() {
    let p = parse(&rss_item(
        "<title>a</title><link>HTTP://www.EXAMPLE.org/thing?utm_source=rss&amp;id=3</link>",
    ));
    assert_eq!(
        p.items[0].link.as_deref(),
        Some("http://www.example.org/thing?id=3")
    );
    let p = parse(
        "<rss version=\"2.0\"><channel><title>t</title><link>http://www.example.com/</link>\
         <item><title>a</title><link>記事1のURL</link></item></channel></rss>",
    );
    assert_eq!(
        p.items[0].link.as_deref(),
        Some("http://www.example.com/%E8%A8%98%E4%BA%8B1%E3%81%AEURL")
    );
    let p = parse(
        "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title>\
         <entry><id>x</id><title>a</title><link href=\"/blog/2003/12/13/atom03\"/></entry></feed>",
    );
    assert_eq!(
        p.items[0].link, None,
        "relative with no base to resolve it: no link"
    );
}
