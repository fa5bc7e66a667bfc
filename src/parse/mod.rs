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

use quick_xml::events::Event;

use crate::model::SourceFormat;

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not a feed: {0}")]
    UnknownFormat(String),
    #[error("{format} is not well-formed: {message}")]
    Xml {
        format: &'static str,
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
    pub items: Vec<RawItem>,
}

/// An item as the source wrote it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawItem {
    pub guid: Option<String>,
    pub title: Option<String>,
    /// Whether `title` is HTML (Atom `type="html"`/`xhtml`); RSS titles are treated as text
    /// with entities.
    pub title_is_html: bool,
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
    /// `xml:base` in force for this item, when it differs from the feed's.
    pub base: Option<String>,
    /// An image the source names for the item (JSON `image`, `media:thumbnail`).
    pub image: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawPerson {
    pub name: Option<String>,
    pub email: Option<String>,
    pub uri: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEnclosure {
    pub url: String,
    pub mime_type: Option<String>,
    pub length: Option<String>,
}

/// Parses decoded text (see `decode`: the XML declaration must already say utf-8).
pub fn parse(text: &str) -> Result<RawFeed, ParseError> {
    let trimmed = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if trimmed.starts_with('{') {
        return json_feed::parse(trimmed);
    }
    match sniff_xml(trimmed)? {
        Root::Rss(version) => {
            let format = match version.as_deref() {
                Some(v) if v.starts_with("0.9") => SourceFormat::Rss09,
                _ => SourceFormat::Rss2,
            };
            rss::parse(trimmed, format)
        }
        Root::Rdf => rss::parse(trimmed, SourceFormat::Rss1),
        Root::Atom10 => atom::parse(trimmed, SourceFormat::Atom10),
        Root::Atom03 => atom::parse(trimmed, SourceFormat::Atom03),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Root {
    Rss(Option<String>),
    Rdf,
    Atom10,
    Atom03,
}

const ATOM10_NS: &str = "http://www.w3.org/2005/Atom";
const ATOM03_NS: &str = "http://purl.org/atom/ns#";

fn sniff_xml(text: &str) -> Result<Root, ParseError> {
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let attr = |key: &[u8]| {
                    e.attributes().flatten().find_map(|a| {
                        (a.key.as_ref() == key)
                            .then(|| String::from_utf8_lossy(&a.value).trim().to_string())
                    })
                };
                let local = name.rsplit(':').next().unwrap_or(&name);
                return match local {
                    "rss" => Ok(Root::Rss(attr(b"version"))),
                    "RDF" => Ok(Root::Rdf),
                    "feed" => {
                        let ns = match name.split_once(':') {
                            Some((prefix, _)) => attr(format!("xmlns:{prefix}").as_bytes()),
                            None => attr(b"xmlns"),
                        };
                        match ns.as_deref() {
                            Some(ATOM03_NS) => Ok(Root::Atom03),
                            Some(ATOM10_NS) => Ok(Root::Atom10),
                            Some(other) => Err(ParseError::UnknownFormat(format!(
                                "<feed> in namespace {other:?}, not Atom"
                            ))),
                            // Many hand-written feeds forget the namespace; read them as Atom 1.0.
                            None => Ok(Root::Atom10),
                        }
                    }
                    other => Err(ParseError::UnknownFormat(format!(
                        "root element <{other}> is not rss, rdf:RDF or feed"
                    ))),
                };
            }
            Ok(Event::Eof) => {
                return Err(ParseError::UnknownFormat("no root element".into()));
            }
            Ok(Event::Text(t)) if !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(ParseError::UnknownFormat(
                    "text before the root element (is it HTML or plain text?)".into(),
                ));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(ParseError::Xml {
                    format: "XML",
                    message: format!("at byte {}: {e}", reader.error_position()),
                });
            }
        }
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

    #[test]
    fn sniffs_roots() {
        assert_eq!(
            sniff_xml("<?xml version='1.0'?><!-- x --><rss version=\"2.0\"/>").unwrap(),
            Root::Rss(Some("2.0".into()))
        );
        assert_eq!(sniff_xml("<rdf:RDF xmlns:rdf='x'/>").unwrap(), Root::Rdf);
        assert_eq!(
            sniff_xml("<feed xmlns=\"http://purl.org/atom/ns#\"/>").unwrap(),
            Root::Atom03
        );
        assert_eq!(
            sniff_xml("<a:feed xmlns:a=\"http://www.w3.org/2005/Atom\"/>").unwrap(),
            Root::Atom10
        );
        assert!(matches!(
            sniff_xml("<html><body/></html>"),
            Err(ParseError::UnknownFormat(_))
        ));
    }
}
