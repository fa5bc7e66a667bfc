//! Atom 1.0 (RFC 4287) with `rel=self`/`rel=hub`, per-entry language on title and content, and
//! `<source>` carrying the original feed's id, title, link and updated date.

use atom_syndication::{
    Category, Content, Entry, Feed, FixedDateTime, Generator, Link, Person, Source, Text,
};
use chrono::{DateTime, Utc};

use super::{
    Context, feed_updated, item_date, item_link, item_title, item_updated, output_id, xml_safe,
};
use crate::config::{Format, OutputFeed};
use crate::store::StoredItem;

fn s(v: &str) -> String {
    xml_safe(v).into_owned()
}

fn fixed(d: DateTime<Utc>) -> FixedDateTime {
    d.fixed_offset()
}

fn link(href: String, rel: &str, mime: Option<&str>) -> Link {
    Link {
        href,
        rel: rel.into(),
        mime_type: mime.map(String::from),
        ..Link::default()
    }
}

pub fn render(feed: &OutputFeed, items: &[StoredItem], ctx: &Context) -> Result<Vec<u8>, String> {
    let self_url = ctx.file_url(feed, Format::Atom);
    let mut links = vec![
        link(self_url.clone(), "self", Some(Format::Atom.content_type())),
        link(ctx.base_url.to_string(), "alternate", Some("text/html")),
    ];
    links.extend(ctx.hubs.iter().map(|h| link(h.to_string(), "hub", None)));
    let out = Feed {
        title: Text::plain(s(&feed.title)),
        id: self_url,
        updated: fixed(feed_updated(items)),
        // RFC 4287 §4.1.1: a feed whose entries may lack an author names one itself.
        authors: vec![Person {
            name: s(&feed.title),
            ..Person::default()
        }],
        generator: Some(Generator {
            value: "feedloom".into(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
        links,
        entries: items.iter().map(|it| entry(it, ctx)).collect(),
        ..Feed::default()
    };
    let mut bytes = out
        .write_with_config(
            Vec::new(),
            atom_syndication::WriteConfig {
                write_document_declaration: true,
                indent_size: Some(2),
            },
        )
        .map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn entry(it: &StoredItem, ctx: &Context) -> Entry {
    let i = &it.item;
    let src = ctx.source(&it.source);
    let mut title = Text::plain(s(&item_title(it)));
    title.lang = i.language.clone();
    let mut source_links = Vec::new();
    if let Some(l) = &src.link {
        source_links.push(link(l.clone(), "alternate", None));
    }
    if let Some(f) = &src.feed_url {
        source_links.push(link(f.clone(), "self", None));
    }
    Entry {
        title,
        id: output_id(&it.source, &i.id),
        updated: fixed(item_updated(it)),
        published: Some(fixed(item_date(it))),
        authors: i
            .authors
            .iter()
            .map(|a| Person {
                name: s(&a.name),
                email: a.email.as_deref().map(s),
                uri: a.uri.clone(),
                ..Person::default()
            })
            .collect(),
        categories: i
            .categories
            .iter()
            .map(|c| Category {
                term: s(c),
                ..Category::default()
            })
            .collect(),
        links: std::iter::once(link(item_link(it, ctx), "alternate", Some("text/html")))
            .chain(i.enclosures.iter().map(|e| Link {
                href: s(&e.url),
                rel: "enclosure".into(),
                mime_type: Some(s(&e.mime_type)),
                length: e.length.map(|l| l.to_string()),
                ..Link::default()
            }))
            .collect(),
        summary: i.summary.as_deref().map(|t| Text::plain(s(t))),
        content: i.content_html.as_deref().map(|h| Content {
            value: Some(s(h)),
            content_type: Some("html".into()),
            lang: i.language.clone(),
            ..Content::default()
        }),
        source: Some(Source {
            title: Text::plain(s(&src.title)),
            id: src
                .id
                .clone()
                .filter(|id| id.contains(':'))
                .unwrap_or_else(|| format!("urn:feedloom:source:{}", src.name)),
            updated: fixed(src.updated.unwrap_or_else(|| item_updated(it))),
            links: source_links,
            ..Source::default()
        }),
        ..Entry::default()
    }
}
