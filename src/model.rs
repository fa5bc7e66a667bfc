//! Plain data shared by several stages: what `normalize` produces, what the store keeps and what
//! `publish` renders. No I/O here. The serde form of [`Parsed`] is the `feedloom parse --json`
//! contract (docs/contracts.md): dates are RFC 3339 in UTC, absent strings are `null`, absent
//! lists are `[]`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The wire format a source document was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceFormat {
    /// RSS 2.0 (`<rss version="2.0">`, also 2.01 and a missing version).
    #[serde(rename = "rss2")]
    Rss2,
    /// RSS 1.0 (`<rdf:RDF>` with the RSS 1.0 namespace).
    #[serde(rename = "rss1")]
    Rss1,
    /// RSS 0.90, 0.91, 0.92, 0.93, 0.94.
    #[serde(rename = "rss09")]
    Rss09,
    /// Atom 1.0 (RFC 4287).
    #[serde(rename = "atom10")]
    Atom10,
    /// Atom 0.3 (`http://purl.org/atom/ns#`).
    #[serde(rename = "atom03")]
    Atom03,
    /// JSON Feed 1.0 or 1.1.
    #[serde(rename = "json")]
    Json,
}

impl SourceFormat {
    /// The contract's name of the format (`rss2`, `atom10`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Rss2 => "rss2",
            SourceFormat::Rss1 => "rss1",
            SourceFormat::Rss09 => "rss09",
            SourceFormat::Atom10 => "atom10",
            SourceFormat::Atom03 => "atom03",
            SourceFormat::Json => "json",
        }
    }
}

/// One parsed and normalised source document: what `feedloom parse --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parsed {
    pub feed: FeedMeta,
    pub items: Vec<Item>,
}

/// Feed-level facts of one source document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedMeta {
    /// RSS `channel/title`, Atom `feed/title`, JSON Feed `title`; plain text.
    pub title: Option<String>,
    /// RSS `channel/link`, Atom `link[rel=alternate]`, JSON Feed `home_page_url`; absolute.
    pub link: Option<String>,
    /// RSS `channel/language` or `dc:language`, Atom `feed/@xml:lang`, JSON Feed `language`.
    pub language: Option<String>,
    /// RSS 2.0 `atom:link rel=self`, Atom `id` or `link[rel=self]`, JSON Feed `feed_url`.
    pub id: Option<String>,
    pub format: SourceFormat,
    /// The character encoding the document was decoded from (WHATWG name, lowercase).
    pub encoding: String,
    /// Why that encoding was chosen: `bom`, `http`, `xml-declaration`, `utf-8`, `detected`.
    pub encoding_from: String,
    /// RSS `lastBuildDate`/`pubDate`, Atom `feed/updated`; UTC.
    pub updated: Option<DateTime<Utc>>,
    /// How often the publisher asks to be polled, in minutes: RSS 2.0/0.9x `channel/ttl`, else
    /// RSS 1.0/2.0 `sy:updatePeriod` divided by `sy:updateFrequency`; Atom and JSON Feed have none.
    /// Absent from `parse --json` when the feed gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<u64>,
}

/// One normalised item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Stable within its source: the source's guid/id when present and unique, else derived
    /// from the canonical link, else from title + content. Namespaced by source on output.
    pub id: String,
    /// Plain text, entities decoded, whitespace collapsed.
    pub title: String,
    /// Absolute, tracking parameters stripped.
    pub link: Option<String>,
    /// RSS `pubDate`/`dc:date`, Atom `published` (0.3: `issued`), JSON `date_published`.
    pub published: Option<DateTime<Utc>>,
    /// Atom `updated` (0.3: `modified`), JSON `date_modified`.
    pub updated: Option<DateTime<Utc>>,
    /// RSS `author`/`dc:creator`, Atom `author`, JSON `authors`.
    pub authors: Vec<Person>,
    /// Plain-text lead, at most ~300 characters, cut at a word boundary.
    pub summary: Option<String>,
    /// Sanitised HTML with absolute URLs.
    pub content_html: Option<String>,
    /// Trimmed, deduplicated case-insensitively.
    pub categories: Vec<String>,
    /// BCP 47 tag, lowercase primary subtag.
    pub language: Option<String>,
    pub enclosures: Vec<Enclosure>,
    /// The item's image: JSON Feed `image`, `media:thumbnail`, else the body's first image.
    #[serde(default)]
    pub image: Option<String>,
}

impl Item {
    /// The date an item is sorted and filtered by: published, else updated.
    pub fn date(&self) -> Option<DateTime<Utc>> {
        self.published.or(self.updated)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub email: Option<String>,
    pub uri: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enclosure {
    /// Absolute http(s) URL.
    pub url: String,
    /// MIME type as the source gave it (`application/octet-stream` when it gave none).
    #[serde(rename = "type")]
    pub mime_type: String,
    /// Size in bytes when the source gave it.
    pub length: Option<u64>,
}
