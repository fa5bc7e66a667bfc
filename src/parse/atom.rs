//! Atom 1.0 (RFC 4287) and Atom 0.3 via `atom_syndication`, mapped to [`RawFeed`].
//!
//! atom_syndication gives a missing or unreadable date as 1970-01-01T00:00:00Z; that default is
//! read here as "no date", never as a real one.

use atom_syndication::{Feed, FixedDateTime, Text, TextType};

use super::{ParseError, RawEnclosure, RawFeed, RawItem, RawPerson, non_empty};
use crate::model::SourceFormat;

pub fn parse(text: &str, format: SourceFormat) -> Result<RawFeed, ParseError> {
    let feed = Feed::read_from(text.as_bytes()).map_err(|e| ParseError::Xml {
        format: "Atom",
        message: e.to_string(),
    })?;
    let alternate = feed
        .links
        .iter()
        .find(|l| l.rel == "alternate" || l.rel.is_empty())
        .map(|l| l.href.clone());
    let self_link = feed
        .links
        .iter()
        .find(|l| l.rel == "self")
        .map(|l| l.href.clone());
    let items = feed.entries.iter().map(entry).collect();
    Ok(RawFeed {
        format: Some(format),
        title: non_empty(Some(text_plain(&feed.title))),
        link: non_empty(alternate),
        id: non_empty(Some(&feed.id)).or_else(|| non_empty(self_link)),
        language: non_empty(feed.lang.as_ref()),
        updated: date(&feed.updated),
        base: non_empty(feed.base.as_ref()),
        items,
    })
}

fn date(d: &FixedDateTime) -> Option<String> {
    (d.timestamp() != 0).then(|| d.to_rfc3339())
}

/// A text construct's value; HTML and XHTML are left as markup for `normalize` to read.
fn text_plain(t: &Text) -> String {
    t.value.clone()
}

fn is_html(t: &Text) -> bool {
    matches!(t.r#type, TextType::Html | TextType::Xhtml)
}

fn entry(e: &atom_syndication::Entry) -> RawItem {
    let link = e
        .links
        .iter()
        .find(|l| l.rel == "alternate" || l.rel.is_empty())
        .or_else(|| {
            e.links
                .iter()
                .find(|l| l.rel != "enclosure" && l.rel != "self")
        })
        .map(|l| l.href.clone());
    let enclosures = e
        .links
        .iter()
        .filter(|l| l.rel == "enclosure")
        .filter_map(|l| {
            Some(RawEnclosure {
                url: non_empty(Some(&l.href))?,
                mime_type: non_empty(l.mime_type.as_ref()),
                length: non_empty(l.length.as_ref()),
            })
        })
        .collect();
    let (content, content_is_html, content_lang, content_base) = match &e.content {
        Some(c) => {
            let kind = c.content_type.as_deref().unwrap_or("text");
            let html = matches!(
                kind,
                "html" | "xhtml" | "text/html" | "application/xhtml+xml"
            );
            let textual = html || kind == "text" || kind.starts_with("text/");
            (
                if textual {
                    non_empty(c.value.as_ref())
                } else {
                    None
                },
                html,
                c.lang.clone(),
                c.base.clone(),
            )
        }
        None => (None, false, None, None),
    };
    RawItem {
        guid: non_empty(Some(&e.id)),
        title: non_empty(Some(text_plain(&e.title))),
        title_is_html: is_html(&e.title),
        link: non_empty(link),
        published: e.published.as_ref().and_then(date),
        updated: date(&e.updated),
        authors: e
            .authors
            .iter()
            .map(|p| RawPerson {
                name: non_empty(Some(&p.name)),
                email: non_empty(p.email.as_ref()),
                uri: non_empty(p.uri.as_ref()),
            })
            .collect(),
        summary: e
            .summary
            .as_ref()
            .and_then(|s| non_empty(Some(text_plain(s)))),
        summary_is_html: e.summary.as_ref().is_some_and(is_html),
        content,
        content_is_html,
        categories: e
            .categories
            .iter()
            .filter_map(|c| non_empty(c.label.as_ref()).or_else(|| non_empty(Some(&c.term))))
            .collect(),
        language: non_empty(e.title.lang.as_ref()).or_else(|| non_empty(content_lang)),
        enclosures,
        base: non_empty(content_base).or_else(|| non_empty(e.title.base.as_ref())),
        image: None,
    }
}
