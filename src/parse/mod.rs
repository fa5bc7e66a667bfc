//! `&str → RawFeed`: sniff the format, read it with the crate made for it, map it into one
//! format-neutral model. Values stay as the source wrote them (dates as strings, URLs possibly
//! relative, HTML unsanitised); `normalize` makes sense of them.
//!
//! Sniffing looks at the first non-space character (`{` is JSON Feed) and, for XML, at the root
//! element *and* its namespace: `<rss>` (version attribute), `<rdf:RDF>` (RSS 0.90/1.0),
//! `<feed xmlns="http://www.w3.org/2005/Atom">` (Atom 1.0), `<feed xmlns="http://purl.org/atom/ns#">`
//! (Atom 0.3).

mod atom;
mod json_feed;
mod rss;
pub mod xml;

use std::time::{Duration, Instant};

use crate::model::SourceFormat;
use xml::Ns;

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not a feed: {0}")]
    UnknownFormat(String),
    #[error("{format} is not well-formed: line {line}: {message}")]
    Xml {
        format: &'static str,
        line: usize,
        message: String,
    },
    #[error("JSON Feed is not valid: {0}")]
    Json(#[from] serde_json::Error),
}

/// A feed as the source wrote it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawFeed {
    pub format: Option<SourceFormat>,
    pub title: Option<String>,
    /// The site's address (RSS `channel/link`, Atom `link rel=alternate`, JSON `home_page_url`).
    pub link: Option<String>,
    /// The feed's own address or id (RSS `atom:link rel=self`, Atom `id`, JSON `feed_url`).
    pub id: Option<String>,
    pub language: Option<String>,
    pub updated: Option<String>,
    /// `xml:base` of the feed element.
    pub base: Option<String>,
    /// How often the publisher asks to be polled, in minutes: RSS `<ttl>`, else
    /// `sy:updatePeriod` / `sy:updateFrequency`.
    pub ttl_minutes: Option<u64>,
    pub items: Vec<RawItem>,
}

/// An item as the source wrote it. `Hash`: an item sent again unchanged is not normalised again
/// (`normalize::normalize_reusing`).
#[derive(Debug, Clone, Default, PartialEq, Hash)]
pub struct RawItem {
    pub guid: Option<String>,
    pub title: Option<String>,
    /// Whether `title` is HTML (Atom `type="html"`/`xhtml`, inline markup); RSS titles are
    /// otherwise treated as text with entities.
    pub title_is_html: bool,
    /// Whether `title` is plain text to take as written (Atom `type="text"`, JSON Feed, an item
    /// feedloom already normalised). RSS titles, neither flag set, are sniffed for markup.
    pub title_is_text: bool,
    /// Resolved against the `xml:base` in force on the element that gave it, when absolute.
    pub link: Option<String>,
    pub published: Option<String>,
    pub updated: Option<String>,
    pub authors: Vec<RawPerson>,
    pub summary: Option<String>,
    /// Whether `summary` is HTML (RSS `description` is; Atom and JSON say).
    pub summary_is_html: bool,
    pub content: Option<String>,
    pub content_is_html: bool,
    pub categories: Vec<String>,
    pub language: Option<String>,
    pub enclosures: Vec<RawEnclosure>,
    /// `xml:base` in force for this item's content (the content element's own, else the
    /// entry's), for relative URLs inside the HTML.
    pub base: Option<String>,
    /// An image the source names for the item (JSON `image`, `media:thumbnail`).
    pub image: Option<String>,
    /// The hash of an XML item's bytes in its document ([`xml::Element::span`]): what reuse
    /// knows it by (`normalize::normalize_reusing`).
    pub span: Option<u64>,
    /// Read light ([`xml::read_skipping`]): only its guid and dates are read. An item reuse
    /// knows by its span, to be reused, never normalised.
    pub light: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RawPerson {
    pub name: Option<String>,
    pub email: Option<String>,
    pub uri: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RawEnclosure {
    pub url: String,
    pub mime_type: Option<String>,
    pub length: Option<String>,
}

/// Cuts `s` to at most `max` bytes (at a character boundary); whether it was cut.
fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    s.truncate(s.floor_char_boundary(max));
    true
}

impl RawFeed {
    /// Cuts every text field to `max` bytes; how many were cut. (The XML reader bounds text
    /// as it reads; JSON Feed strings arrive whole.)
    pub fn cut_fields(&mut self, max: usize) -> usize {
        let opt = |s: &mut Option<String>| s.as_mut().is_some_and(|s| cut(s, max));
        let mut n = 0;
        for f in [
            &mut self.title,
            &mut self.link,
            &mut self.id,
            &mut self.language,
            &mut self.updated,
            &mut self.base,
        ] {
            n += usize::from(opt(f));
        }
        for it in &mut self.items {
            for f in [
                &mut it.guid,
                &mut it.title,
                &mut it.link,
                &mut it.published,
                &mut it.updated,
                &mut it.summary,
                &mut it.content,
                &mut it.language,
                &mut it.base,
                &mut it.image,
            ] {
                n += usize::from(opt(f));
            }
            for p in &mut it.authors {
                for f in [&mut p.name, &mut p.email, &mut p.uri] {
                    n += usize::from(opt(f));
                }
            }
            for c in &mut it.categories {
                n += usize::from(cut(c, max));
            }
            for e in &mut it.enclosures {
                n += usize::from(cut(&mut e.url, max));
                n += usize::from(opt(&mut e.mime_type));
                n += usize::from(opt(&mut e.length));
            }
        }
        n
    }
}

/// An item as feedloom published it, read back as a source would give it: normalising this
/// gives the same item again (the idempotence the normalise stage promises).
impl From<&crate::model::Item> for RawItem {
    fn from(it: &crate::model::Item) -> RawItem {
        RawItem {
            guid: Some(it.id.clone()),
            title: Some(it.title.clone()),
            title_is_text: true,
            link: it.link.clone(),
            published: it.published.map(|d| d.to_rfc3339()),
            updated: it.updated.map(|d| d.to_rfc3339()),
            authors: it
                .authors
                .iter()
                .map(|a| RawPerson {
                    name: Some(a.name.clone()),
                    email: a.email.clone(),
                    uri: a.uri.clone(),
                })
                .collect(),
            summary: it.summary.clone(),
            summary_is_html: false,
            content: it.content_html.clone(),
            content_is_html: true,
            categories: it.categories.clone(),
            language: it.language.clone(),
            enclosures: it
                .enclosures
                .iter()
                .map(|e| RawEnclosure {
                    url: e.url.clone(),
                    mime_type: Some(e.mime_type.clone()),
                    length: e.length.map(|l| l.to_string()),
                })
                .collect(),
            image: it.image.clone(),
            ..RawItem::default()
        }
    }
}

/// Bounds on reading one document (`[settings]` `max_xml_depth`, `max_xml_elements`,
/// `max_field_bytes`, `parse_timeout`). A document past a bound is not an error: what was read
/// within it is kept and the hit is logged (inside the caller's span, which names the source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Elements nested deeper than this are skipped with their content: no feed needs more,
    /// and a hostile one cannot make the tree (or anything that walks it) deep.
    pub max_depth: usize,
    /// Elements read before the rest of a document is ignored (a 16 MiB body of `<a/>` would
    /// otherwise make millions of them).
    pub max_elements: usize,
    /// Bytes kept of one field (a title, a body: one run of text); the rest is cut.
    pub max_field_bytes: usize,
    /// Time reading and normalising one document may take; what is left is dropped.
    pub max_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_elements: 300_000,
            max_field_bytes: 4 << 20,
            max_time: Duration::from_secs(10),
        }
    }
}

/// Parses decoded text within the default [`Limits`].
pub fn parse(text: &str) -> Result<RawFeed, ParseError> {
    let limits = Limits::default();
    parse_within(text, &limits, Instant::now() + limits.max_time)
}

/// Parses decoded text (see `decode`: the XML declaration must already say utf-8), stopping at
/// `deadline` or at a bound of `limits`.
///
/// XML that breaks midway still gives what was read before the break (complete items only,
/// with a warning); it is an error only when nothing usable came before it.
pub fn parse_within(text: &str, limits: &Limits, deadline: Instant) -> Result<RawFeed, ParseError> {
    parse_skipping(text, limits, deadline, None)
}

/// [`parse_within`], reading light the XML items whose span hash `known` knows
/// ([`xml::read_skipping`]).
pub fn parse_skipping(
    text: &str,
    limits: &Limits,
    deadline: Instant,
    known: Option<xml::Knows<'_>>,
) -> Result<RawFeed, ParseError> {
    let trimmed = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if trimmed.starts_with('{') {
        let mut feed = json_feed::parse(trimmed)?;
        let cut = feed.cut_fields(limits.max_field_bytes);
        if cut > 0 {
            tracing::warn!(
                fields = cut,
                limit = limits.max_field_bytes,
                "fields longer than max_field_bytes were cut"
            );
        }
        return Ok(feed);
    }
    let doc = xml::read_skipping(trimmed, limits, deadline, known);
    let Some(root) = doc.root else {
        return Err(match doc.error {
            Some(e) => ParseError::Xml {
                format: "XML",
                line: e.line,
                message: e.message,
            },
            None if looks_like_text(trimmed) => ParseError::UnknownFormat(
                "text before the root element (is it HTML or plain text?)".into(),
            ),
            None => ParseError::UnknownFormat("no root element".into()),
        });
    };
    let (format, name) = sniff(&root)?;
    let feed = match format {
        SourceFormat::Atom10 | SourceFormat::Atom03 => atom::map(&root, format),
        _ => rss::map(&root, format),
    };
    if let Some(e) = doc.error {
        if feed.items.is_empty() && feed.title.is_none() {
            return Err(ParseError::Xml {
                format: name,
                line: e.line,
                message: e.message,
            });
        }
        tracing::warn!(line = e.line, error = %e.message, items = feed.items.len(),
                       "{name} is not well-formed: kept what was read before the error");
    }
    Ok(feed)
}

fn looks_like_text(s: &str) -> bool {
    !s.starts_with('<')
}

/// The format, by root element *and* namespace.
fn sniff(root: &xml::Element) -> Result<(SourceFormat, &'static str), ParseError> {
    match (root.local.as_str(), root.ns) {
        ("rss", _) => {
            let format = match root.attr("version").map(str::trim) {
                Some(v) if v.starts_with("0.9") => SourceFormat::Rss09,
                _ => SourceFormat::Rss2,
            };
            Ok((format, "RSS"))
        }
        ("RDF", _) => Ok((SourceFormat::Rss1, "RSS")),
        ("feed" | "entry", Ns::Atom03) => Ok((SourceFormat::Atom03, "Atom")),
        // Many hand-written feeds forget the namespace; read them as Atom 1.0.
        ("feed" | "entry", Ns::Atom | Ns::Rss) => Ok((SourceFormat::Atom10, "Atom")),
        ("feed", _) => Err(ParseError::UnknownFormat(
            "<feed> in a namespace that is not Atom".into(),
        )),
        (other, _) => Err(ParseError::UnknownFormat(format!(
            "root element <{other}> is not rss, rdf:RDF or feed"
        ))),
    }
}

/// Keeps a non-empty trimmed string.
pub(crate) fn non_empty(s: Option<impl AsRef<str>>) -> Option<String> {
    s.map(|s| s.as_ref().trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(s: &str) -> Result<SourceFormat, ParseError> {
        parse(s).map(|f| f.format.unwrap())
    }

    #[test]
    fn sniffs_roots() {
        assert_eq!(
            format("<?xml version='1.0'?><!-- x --><rss version=\"2.0\"/>").unwrap(),
            SourceFormat::Rss2
        );
        assert_eq!(
            format("<rss version=\"0.91\"><channel/></rss>").unwrap(),
            SourceFormat::Rss09
        );
        assert_eq!(
            format("<rdf:RDF xmlns:rdf='x'/>").unwrap(),
            SourceFormat::Rss1
        );
        assert_eq!(
            format("<feed xmlns=\"http://purl.org/atom/ns#\"/>").unwrap(),
            SourceFormat::Atom03
        );
        assert_eq!(
            format("<a:feed xmlns:a=\"http://www.w3.org/2005/Atom\"/>").unwrap(),
            SourceFormat::Atom10
        );
        assert!(matches!(
            format("<html><body/></html>"),
            Err(ParseError::UnknownFormat(_))
        ));
        assert!(matches!(format("hello"), Err(ParseError::UnknownFormat(_))));
    }

    #[test]
    fn unrecoverable_error_names_the_line() {
        let e = parse("<?xml version=\"1.0\"?>\n<rss>\n<channel>\n<item <</channel>").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("RSS is not well-formed: line 4"), "{msg}");
    }

    #[test]
    fn truncated_feed_keeps_complete_items() {
        let f = parse(
            "<rss><channel><title>T</title><item><title>one</title></item><item><title>two</title></item><item><title>thr",
        )
        .unwrap();
        let titles: Vec<_> = f.items.iter().map(|i| i.title.clone().unwrap()).collect();
        assert_eq!(titles, ["one", "two"]);
    }
}
