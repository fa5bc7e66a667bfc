//! Atom 1.0 (RFC 4287) and Atom 0.3, read from the forgiving tree of [`super::xml`] and mapped to
//! [`RawFeed`].
//!
//! Why not `atom_syndication` (measured, see STACK.md): it fails the whole document on one
//! non-RFC 3339 date or an Atom 0.3 `type="text/html"`, gives a missing date as 1970, ignores
//! 0.3's `issued`/`modified`/`created` and drops an entry's own `xml:base`. Here:
//! * dates stay strings (normalize reads them leniently); published = `published`, 0.3
//!   `issued`, then `created`; updated = `updated`, 0.3 `modified`;
//! * text constructs honour `type` (`text`, `html`, `xhtml`, and 0.3's MIME types) and 0.3's
//!   `mode` (`xml`, `escaped`, `base64`); RFC 4287 §4.1.3.3 base64 for other media types;
//! * links and content resolve against the `xml:base` in force on their own element.

use base64::Engine;

use super::xml::{Element, Ns};
use super::{RawEnclosure, RawFeed, RawItem, RawPerson, non_empty};
use crate::model::SourceFormat;

/// Maps a `<feed>` (or a lone `<entry>`) root.
pub fn map(root: &Element, format: SourceFormat) -> RawFeed {
    let ns = root.ns;
    let a = Atom { ns };
    if root.local == "entry" {
        return RawFeed {
            format: Some(format),
            items: vec![a.entry(root)],
            ..RawFeed::default()
        };
    }
    let alternate = a.link(root, "alternate");
    let id = a.text(root, "id");
    RawFeed {
        format: Some(format),
        title: a.construct(root, "title").map(|(t, _)| t),
        // feedparser falls back to the feed's id; we do so only when the id is a web URL.
        link: alternate.or_else(|| id.clone().filter(|i| is_web_url(i))),
        id: id.or_else(|| a.link(root, "self")),
        language: non_empty(root.lang.as_ref()),
        updated: a.text(root, "updated").or_else(|| a.text(root, "modified")),
        base: non_empty(root.base.as_ref()),
        ttl_minutes: None,
        items: root
            .elements()
            .filter(|e| e.local == "entry" && e.ns == ns && e.complete)
            .map(|e| a.entry(e))
            .collect(),
    }
}

fn is_web_url(s: &str) -> bool {
    let lower = s.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

struct Atom {
    ns: Ns,
}

impl Atom {
    /// An element of this document's Atom namespace (or of no namespace in a feed that forgot
    /// to declare it).
    fn is_atom(&self, el: &Element) -> bool {
        el.ns == self.ns || matches!(el.ns, Ns::Atom | Ns::Atom03)
    }

    fn first<'e>(&self, el: &'e Element, name: &str) -> Option<&'e Element> {
        el.first(self.ns, name)
            .or_else(|| el.first(Ns::Atom, name))
            .or_else(|| el.first(Ns::Atom03, name))
    }

    fn text(&self, el: &Element, name: &str) -> Option<String> {
        non_empty(self.first(el, name).map(Element::text))
    }

    /// `href` of the first link with this relation (a missing `rel` is "alternate"), resolved
    /// against the link's own `xml:base`. Prefers an HTML alternate when several are given.
    fn link(&self, el: &Element, rel: &str) -> Option<String> {
        let links: Vec<&Element> = el
            .elements()
            .filter(|l| l.local == "link" && self.is_atom(l))
            .filter(|l| l.attr("rel").map(str::trim).unwrap_or("alternate") == rel)
            .filter(|l| l.attr("href").is_some_and(|h| !h.trim().is_empty()))
            .collect();
        let pick = links
            .iter()
            .find(|l| {
                l.attr("type")
                    .is_none_or(|t| t.contains("html") || t.trim().is_empty())
            })
            .or(links.first())?;
        pick.attr("href").map(|h| pick.resolve(h))
    }

    /// A text construct: (value, is_html).
    fn construct(&self, el: &Element, name: &str) -> Option<(String, bool)> {
        text_construct(self.first(el, name)?)
    }

    fn entry(&self, e: &Element) -> RawItem {
        let id = self.text(e, "id");
        let link = self
            .link(e, "alternate")
            .or_else(|| id.clone().filter(|i| is_web_url(i)));
        let enclosures = e
            .elements()
            .filter(|l| l.local == "link" && self.is_atom(l) && l.attr("rel") == Some("enclosure"))
            .filter_map(|l| {
                Some(RawEnclosure {
                    url: l.resolve(&non_empty(l.attr("href"))?),
                    mime_type: non_empty(l.attr("type")),
                    length: non_empty(l.attr("length")),
                })
            })
            .collect();
        let authors = e
            .elements()
            .filter(|p| p.local == "author" && self.is_atom(p))
            .map(|p| RawPerson {
                name: self.text(p, "name"),
                email: self.text(p, "email"),
                uri: self
                    .first(p, "uri")
                    .or_else(|| self.first(p, "url"))
                    .and_then(|u| non_empty(Some(u.text())).map(|t| u.resolve(&t))),
            })
            .collect();
        let content_el = self.first(e, "content");
        let (content, content_is_html) = match content_el.and_then(text_construct) {
            Some((c, html)) => (Some(c), html),
            None => (None, false),
        };
        let summary = self.construct(e, "summary");
        let title = self.construct(e, "title");
        let mut categories: Vec<String> = e
            .elements()
            .filter(|c| c.local == "category" && self.is_atom(c))
            .filter_map(|c| non_empty(c.attr("label")).or_else(|| non_empty(c.attr("term"))))
            .collect();
        categories.extend(
            e.all(Ns::Dc, "subject")
                .filter_map(|s| non_empty(Some(s.text()))),
        );
        RawItem {
            guid: id,
            title: title.as_ref().map(|(t, _)| t.clone()),
            title_is_html: title.as_ref().is_some_and(|(_, h)| *h),
            title_is_text: title.as_ref().is_some_and(|(_, h)| !*h),
            link,
            published: self
                .text(e, "published")
                .or_else(|| self.text(e, "issued"))
                .or_else(|| self.text(e, "created")),
            updated: self.text(e, "updated").or_else(|| self.text(e, "modified")),
            authors,
            summary: summary.as_ref().map(|(s, _)| s.clone()),
            summary_is_html: summary.is_some_and(|(_, h)| h),
            content,
            content_is_html,
            categories,
            language: non_empty(e.lang.as_ref()),
            enclosures,
            base: content_el
                .and_then(|c| c.base.as_deref())
                .or(e.base.as_deref())
                .map(str::to_string),
            image: e
                .all(Ns::Media, "thumbnail")
                .chain(
                    e.all(Ns::Media, "group")
                        .flat_map(|g| g.all(Ns::Media, "thumbnail")),
                )
                .find_map(|t| non_empty(t.attr("url")).map(|u| t.resolve(&u))),
            span: e.span,
            light: e.light,
        }
    }
}

/// Reads an Atom text construct or content element: (value, is_html). `None` when empty or
/// when it is out-of-line (`src`) or binary content that is not text.
fn text_construct(el: &Element) -> Option<(String, bool)> {
    let kind = el
        .attr("type")
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mode = el
        .attr("mode")
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let xhtml = matches!(kind.as_str(), "xhtml" | "application/xhtml+xml");
    let html = matches!(kind.as_str(), "html" | "text/html");
    let plain = matches!(kind.as_str(), "" | "text" | "text/plain");
    let xml_media = kind.ends_with("+xml") || kind.ends_with("/xml");
    let (value, is_html) = if mode == "base64" || !(xhtml || html || plain || xml_media) {
        // RFC 4287 §4.1.3.3: other media types are base64; 0.3 says so with mode="base64".
        let raw: String = el.text().split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.as_bytes())
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        if !(kind.starts_with("text/") || kind.is_empty() || kind == "application/octet-stream") {
            return None;
        }
        (text, !kind.starts_with("text/plain"))
    } else if xhtml || xml_media || el.has_element_children() {
        // The value is the content of the wrapping <div> (RFC 4287 §3.1.1.3), or all of it
        // (0.3's mode="xml", and markup left unescaped in type="html" or "text").
        let mut children = el.elements();
        let inner = match (children.next(), children.next()) {
            (Some(div), None)
                if xhtml && div.local == "div" && el.text().trim() == div.text().trim() =>
            {
                div.inner_xml()
            }
            _ => el.inner_xml(),
        };
        (inner, true)
    } else if html || mode == "escaped" {
        (el.text(), true)
    } else {
        (el.text(), false)
    };
    let value = non_empty(Some(value))?;
    Some((value, is_html))
}
