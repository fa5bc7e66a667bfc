//! RSS 0.9x, 1.0 (RDF) and 2.0, read from the forgiving tree of [`super::xml`] and mapped to
//! [`RawFeed`]. Modules: `dc:*`, `dcterms:*`, `content:encoded`, `xhtml:body`, `media:*`,
//! `atom:link`, `sy:*`, `<ttl>`.
//!
//! Which element fills which field (first present wins):
//! * item link: `link`, `atom:link[rel=alternate]`, a `guid` that is a permalink (RSS 2.0:
//!   `isPermaLink` defaults to true) and an http(s) URL;
//! * item id: `guid`, RSS 1.0 `rdf:about`;
//! * published: `pubDate`, `dcterms:issued`, `dcterms:created`;
//! * updated: `dc:date`, `dcterms:modified`, `atom:updated` (feedparser also files `dc:date` as
//!   the modification date);
//! * summary: `description`, `dc:description`; content: `content:encoded`, `xhtml:body`,
//!   `fullitem`.

use super::xml::{Element, Ns};
use super::{RawEnclosure, RawFeed, RawItem, RawPerson, non_empty};
use crate::model::SourceFormat;

/// Maps an `<rss>` or `<rdf:RDF>` root.
pub fn map(root: &Element, format: SourceFormat) -> RawFeed {
    // RSS 2.0 nests items in <channel>; RSS 1.0 and 0.90 put them beside it; broken feeds have
    // no channel at all.
    let channel = root.first(Ns::Rss, "channel");
    let meta = channel.unwrap_or(root);
    let mut items: Vec<&Element> = Vec::new();
    for parent in [Some(root), channel].into_iter().flatten() {
        items.extend(parent.all(Ns::Rss, "item").filter(|i| i.complete));
    }
    let self_link = atom_link(meta, "self");
    RawFeed {
        format: Some(format),
        title: text(meta.first(Ns::Rss, "title")).or_else(|| text(meta.first(Ns::Dc, "title"))),
        link: text(meta.first(Ns::Rss, "link"))
            .map(|l| meta.resolve(&l))
            .or_else(|| atom_link(meta, "alternate")),
        id: self_link,
        language: text(meta.first(Ns::Rss, "language"))
            .or_else(|| text(meta.first(Ns::Dc, "language")))
            .or_else(|| non_empty(meta.lang.as_ref()))
            .or_else(|| non_empty(root.lang.as_ref())),
        updated: first_text(
            meta,
            &[
                (Ns::Rss, "lastBuildDate"),
                (Ns::Rss, "pubDate"),
                (Ns::Dc, "date"),
                (Ns::DcTerms, "modified"),
            ],
        ),
        base: non_empty(meta.base.as_ref()),
        ttl_minutes: ttl_minutes(meta).or_else(|| ttl_minutes(root)),
        items: items.into_iter().map(item).collect(),
    }
}

/// `<ttl>` (minutes) or `sy:updatePeriod` / `sy:updateFrequency` as a refresh interval.
fn ttl_minutes(meta: &Element) -> Option<u64> {
    if let Some(ttl) = text(meta.first(Ns::Rss, "ttl")).and_then(|t| t.parse::<u64>().ok()) {
        return Some(ttl);
    }
    let period = text(meta.first(Ns::Sy, "updatePeriod"))?;
    let minutes: u64 = match period.to_ascii_lowercase().as_str() {
        "hourly" => 60,
        "daily" => 60 * 24,
        "weekly" => 60 * 24 * 7,
        "monthly" => 60 * 24 * 30,
        "yearly" => 60 * 24 * 365,
        _ => return None,
    };
    let frequency = text(meta.first(Ns::Sy, "updateFrequency"))
        .and_then(|f| f.parse::<u64>().ok())
        .filter(|f| *f > 0)
        .unwrap_or(1);
    Some((minutes / frequency).max(1))
}

fn text(el: Option<&Element>) -> Option<String> {
    non_empty(el.map(Element::text))
}

fn first_text(el: &Element, names: &[(Ns, &str)]) -> Option<String> {
    names.iter().find_map(|(ns, n)| text(el.first(*ns, n)))
}

/// An element's value as markup when it holds elements (inline XHTML), else as text.
fn body(el: Option<&Element>) -> Option<String> {
    let el = el?;
    if el.has_element_children() {
        non_empty(Some(el.inner_xml()))
    } else {
        text(Some(el))
    }
}

fn atom_link(el: &Element, rel: &str) -> Option<String> {
    el.all(Ns::Atom, "link")
        .find(|l| l.attr("rel").unwrap_or("alternate") == rel)
        .and_then(|l| non_empty(l.attr("href")).map(|h| l.resolve(&h)))
}

fn is_web_url(s: &str) -> bool {
    let lower = s.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn item(it: &Element) -> RawItem {
    let guid_el = it.first(Ns::Rss, "guid");
    let guid = text(guid_el).or_else(|| non_empty(it.attr_ns(Ns::Rdf, "about")));
    let permalink = guid_el
        .filter(|g| {
            !g.attr("isPermaLink")
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("false"))
        })
        .and_then(|g| text(Some(g)))
        .filter(|g| is_web_url(g));
    let link = text(it.first(Ns::Rss, "link"))
        .map(|l| it.resolve(&l))
        .or_else(|| atom_link(it, "alternate"))
        .or(permalink);

    let mut authors: Vec<RawPerson> = Vec::new();
    for a in it
        .all(Ns::Rss, "author")
        .chain(it.all(Ns::Dc, "creator"))
        .chain(it.all(Ns::Itunes, "author"))
    {
        let Some(s) = text(Some(a)) else { continue };
        let p = rss_author(&s);
        if !authors
            .iter()
            .any(|x| x.name == p.name && x.email == p.email)
        {
            authors.push(p);
        }
    }

    let mut enclosures = Vec::new();
    for e in it.all(Ns::Rss, "enclosure") {
        if let Some(url) = non_empty(e.attr("url")) {
            enclosures.push(RawEnclosure {
                url: e.resolve(&url),
                mime_type: non_empty(e.attr("type")),
                length: non_empty(e.attr("length")),
            });
        }
    }
    // media:content, directly or inside media:group.
    let groups: Vec<&Element> = std::iter::once(it)
        .chain(it.all(Ns::Media, "group"))
        .collect();
    for g in &groups {
        for m in g.all(Ns::Media, "content") {
            if let Some(url) = non_empty(m.attr("url")) {
                enclosures.push(RawEnclosure {
                    url: m.resolve(&url),
                    mime_type: non_empty(m.attr("type")),
                    length: non_empty(m.attr("fileSize")),
                });
            }
        }
    }

    let mut categories: Vec<String> = it
        .all(Ns::Rss, "category")
        .chain(it.all(Ns::Dc, "subject"))
        .filter_map(|c| text(Some(c)))
        .collect();
    categories.dedup();

    let summary_el = it
        .first(Ns::Rss, "description")
        .or_else(|| it.first(Ns::Dc, "description"))
        .filter(|e| !e.text().trim().is_empty() || e.has_element_children());
    let content_el = it
        .first(Ns::Content, "encoded")
        .or_else(|| it.first(Ns::Xhtml, "body"))
        .or_else(|| it.first(Ns::Rss, "fullitem"))
        .filter(|e| !e.text().trim().is_empty() || e.has_element_children());
    let title_el = it
        .first(Ns::Rss, "title")
        .or_else(|| it.first(Ns::Dc, "title"));
    RawItem {
        guid,
        title: body(title_el),
        title_is_html: title_el.is_some_and(Element::has_element_children),
        title_is_text: false,
        link,
        published: first_text(
            it,
            &[
                (Ns::Rss, "pubDate"),
                (Ns::DcTerms, "issued"),
                (Ns::DcTerms, "created"),
                (Ns::Atom, "published"),
            ],
        ),
        updated: first_text(
            it,
            &[
                (Ns::Dc, "date"),
                (Ns::DcTerms, "modified"),
                (Ns::Atom, "updated"),
            ],
        ),
        authors,
        summary: body(summary_el),
        summary_is_html: true,
        content: body(content_el),
        content_is_html: true,
        categories,
        language: text(it.first(Ns::Dc, "language")).or_else(|| non_empty(it.lang.as_ref())),
        enclosures,
        base: non_empty(content_el.or(summary_el).and_then(|e| e.base.clone()))
            .or_else(|| non_empty(it.base.as_ref())),
        image: media_image(&groups),
        span: it.span,
        light: it.light,
    }
}

/// RSS `author` is "email (Name)" by the spec and often just a name in practice.
fn rss_author(s: &str) -> RawPerson {
    if let Some((email, rest)) = s.split_once('(')
        && email.contains('@')
    {
        return RawPerson {
            name: non_empty(Some(rest.trim_end_matches(')'))),
            email: non_empty(Some(email)),
            uri: None,
        };
    }
    if s.contains('@') && !s.contains(' ') {
        return RawPerson {
            name: None,
            email: Some(s.to_string()),
            uri: None,
        };
    }
    RawPerson {
        name: Some(s.to_string()),
        ..RawPerson::default()
    }
}

/// `media:thumbnail url` or an image `media:content url`.
fn media_image(groups: &[&Element]) -> Option<String> {
    let thumb = groups
        .iter()
        .flat_map(|g| g.all(Ns::Media, "thumbnail"))
        .find_map(|t| non_empty(t.attr("url")).map(|u| t.resolve(&u)));
    thumb.or_else(|| {
        groups
            .iter()
            .flat_map(|g| g.all(Ns::Media, "content"))
            .find(|m| {
                m.attr("medium") == Some("image")
                    || m.attr("type").is_some_and(|t| t.starts_with("image/"))
            })
            .and_then(|m| non_empty(m.attr("url")).map(|u| m.resolve(&u)))
    })
}
