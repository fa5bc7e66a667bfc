//! Atom 1.0 (RFC 4287), written with quick-xml: `rel=self`/`rel=alternate`/`rel=hub`, a feed
//! author (so entries without one stay valid, §4.1.1), `xml:lang` per entry, `<source>` with
//! the original feed's id, title, link and updated date, and RFC 5005 archive links.

use chrono::{DateTime, SecondsFormat, Utc};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::{
    Context, feed_updated, item_content, item_date, item_link, item_title, item_updated,
    published_id, xml_safe,
};
use crate::config::{Format, OutputFeed};
use crate::store::StoredItem;

const ATOM_NS: &str = "http://www.w3.org/2005/Atom";
/// RFC 5005 §4: `<fh:archive/>` marks an archive document.
const HISTORY_NS: &str = "http://purl.org/syndication/history/1.0";

/// Which document is written: the subscription feed or one archive page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// This document's own address; the feed's file URL when `None`.
    pub self_url: Option<String>,
    /// Extra links: RFC 5005 `prev-archive`, `next-archive`, `current`.
    pub links: Vec<(&'static str, String)>,
    /// Whether this is an archive document (`<fh:archive/>`).
    pub archive: bool,
}

type W = Writer<Vec<u8>>;
type R = Result<(), std::io::Error>;

fn date(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn text_el(w: &mut W, name: &str, attrs: &[(&str, &str)], text: &str) -> R {
    let mut start = BytesStart::new(name);
    for (k, v) in attrs {
        start.push_attribute((*k, &*xml_safe(v)));
    }
    w.write_event(Event::Start(start))?;
    w.write_event(Event::Text(BytesText::new(&xml_safe(text))))?;
    w.write_event(Event::End(BytesEnd::new(name)))?;
    Ok(())
}

fn empty_el(w: &mut W, name: &str, attrs: &[(&str, &str)]) -> R {
    let mut start = BytesStart::new(name);
    for (k, v) in attrs {
        start.push_attribute((*k, &*xml_safe(v)));
    }
    w.write_event(Event::Empty(start))
}

fn link(w: &mut W, rel: &str, href: &str, mime: Option<&str>) -> R {
    match mime {
        Some(t) => empty_el(w, "link", &[("rel", rel), ("href", href), ("type", t)]),
        None => empty_el(w, "link", &[("rel", rel), ("href", href)]),
    }
}

fn start(w: &mut W, name: &str, attrs: &[(&str, &str)]) -> R {
    let mut start = BytesStart::new(name);
    for (k, v) in attrs {
        start.push_attribute((*k, &*xml_safe(v)));
    }
    w.write_event(Event::Start(start))
}

fn end(w: &mut W, name: &str) -> R {
    w.write_event(Event::End(BytesEnd::new(name)))
}

pub fn render(
    feed: &OutputFeed,
    items: &[StoredItem],
    ctx: &Context,
    page: &Page,
) -> Result<Vec<u8>, String> {
    write(feed, items, ctx, page).map_err(|e| e.to_string())
}

fn write(
    feed: &OutputFeed,
    items: &[StoredItem],
    ctx: &Context,
    page: &Page,
) -> Result<Vec<u8>, std::io::Error> {
    let feed_url = ctx.file_url(feed, Format::Atom);
    let self_url = page.self_url.clone().unwrap_or_else(|| feed_url.clone());
    let mut w = Writer::new_with_indent(Vec::with_capacity(64 * 1024), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    let mut root = vec![("xmlns", ATOM_NS)];
    if page.archive {
        root.push(("xmlns:fh", HISTORY_NS));
    }
    start(&mut w, "feed", &root)?;
    text_el(&mut w, "title", &[("type", "text")], &feed.title)?;
    text_el(&mut w, "id", &[], &self_url)?;
    text_el(&mut w, "updated", &[], &date(feed_updated(items)))?;
    start(&mut w, "author", &[])?;
    text_el(&mut w, "name", &[], &feed.title)?;
    end(&mut w, "author")?;
    text_el(
        &mut w,
        "generator",
        &[("version", env!("CARGO_PKG_VERSION"))],
        "feedloom",
    )?;
    link(&mut w, "self", &self_url, Some(Format::Atom.content_type()))?;
    link(
        &mut w,
        "alternate",
        ctx.base_url.as_str(),
        Some("text/html"),
    )?;
    for hub in &ctx.hubs {
        link(&mut w, "hub", hub.as_str(), None)?;
    }
    for (rel, href) in &page.links {
        link(&mut w, rel, href, Some(Format::Atom.content_type()))?;
    }
    if page.archive {
        empty_el(&mut w, "fh:archive", &[])?;
    }
    for it in items {
        entry(&mut w, feed, it, ctx)?;
    }
    end(&mut w, "feed")?;
    let mut out = w.into_inner();
    out.push(b'\n');
    Ok(out)
}

fn entry(w: &mut W, feed: &OutputFeed, it: &StoredItem, ctx: &Context) -> R {
    let i = &it.item;
    match &i.language {
        Some(lang) => start(w, "entry", &[("xml:lang", lang)])?,
        None => start(w, "entry", &[])?,
    }
    text_el(w, "title", &[("type", "text")], &item_title(it))?;
    text_el(w, "id", &[], &published_id(feed, it, ctx))?;
    text_el(w, "updated", &[], &date(item_updated(it)))?;
    text_el(w, "published", &[], &date(item_date(it)))?;
    for a in &i.authors {
        start(w, "author", &[])?;
        text_el(w, "name", &[], &a.name)?;
        if let Some(e) = &a.email {
            text_el(w, "email", &[], e)?;
        }
        if let Some(u) = &a.uri {
            text_el(w, "uri", &[], u)?;
        }
        end(w, "author")?;
    }
    let alternate = item_link(it, ctx);
    link(w, "alternate", &alternate, Some("text/html"))?;
    // The other outlets' versions of the story (RFC 4287 §4.2.7.2 "related").
    let mut seen = vec![alternate.as_str()];
    for r in ctx.merged(feed, it).map_or(&[][..], |m| &m.related) {
        if let Some(u) = r.url.as_deref().filter(|u| !seen.contains(u)) {
            seen.push(u);
            empty_el(
                w,
                "link",
                &[
                    ("rel", "related"),
                    ("href", u),
                    ("type", "text/html"),
                    ("title", &r.title),
                ],
            )?;
        }
    }
    for e in &i.enclosures {
        let len = e.length.map(|l| l.to_string());
        let mut attrs = vec![
            ("rel", "enclosure"),
            ("href", e.url.as_str()),
            ("type", e.mime_type.as_str()),
        ];
        if let Some(l) = &len {
            attrs.push(("length", l));
        }
        empty_el(w, "link", &attrs)?;
    }
    for c in &i.categories {
        empty_el(w, "category", &[("term", c)])?;
    }
    if let Some(s) = &i.summary {
        text_el(w, "summary", &[("type", "text")], s)?;
    }
    if let Some(h) = item_content(feed, it, ctx) {
        text_el(w, "content", &[("type", "html")], &h)?;
    }
    source(w, it, ctx)?;
    end(w, "entry")
}

/// RFC 4287 §4.2.11: where the entry came from.
fn source(w: &mut W, it: &StoredItem, ctx: &Context) -> R {
    let src = ctx.source(&it.source);
    start(w, "source", &[])?;
    let id = src
        .id
        .clone()
        .filter(|id| id.contains(':'))
        .unwrap_or_else(|| format!("urn:feedloom:source:{}", src.name));
    text_el(w, "id", &[], &id)?;
    text_el(w, "title", &[("type", "text")], &src.title)?;
    if let Some(l) = &src.link {
        link(w, "alternate", l, None)?;
    }
    if let Some(f) = &src.feed_url {
        link(w, "self", f, None)?;
    }
    text_el(
        w,
        "updated",
        &[],
        &date(src.updated.unwrap_or_else(|| item_updated(it))),
    )?;
    end(w, "source")
}
