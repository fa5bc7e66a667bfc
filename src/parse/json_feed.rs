//! JSON Feed 1.0 and 1.1 (serde), mapped to [`RawFeed`]. Unknown members (`_extensions`) are
//! ignored; members of the wrong type make the document invalid rather than being guessed at.

use serde::Deserialize;

use super::{ParseError, RawEnclosure, RawFeed, RawItem, RawPerson, non_empty};
use crate::model::SourceFormat;

#[derive(Deserialize)]
struct JsonFeed {
    version: Option<String>,
    title: Option<String>,
    home_page_url: Option<String>,
    feed_url: Option<String>,
    language: Option<String>,
    author: Option<JsonAuthor>,
    #[serde(default)]
    authors: Vec<JsonAuthor>,
    #[serde(default)]
    items: Vec<JsonItem>,
}

#[derive(Deserialize)]
struct JsonAuthor {
    name: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct JsonItem {
    id: Option<serde_json::Value>,
    url: Option<String>,
    external_url: Option<String>,
    title: Option<String>,
    content_html: Option<String>,
    content_text: Option<String>,
    summary: Option<String>,
    image: Option<String>,
    banner_image: Option<String>,
    date_published: Option<String>,
    date_modified: Option<String>,
    author: Option<JsonAuthor>,
    #[serde(default)]
    authors: Vec<JsonAuthor>,
    #[serde(default)]
    tags: Vec<String>,
    language: Option<String>,
    #[serde(default)]
    attachments: Vec<JsonAttachment>,
}

#[derive(Deserialize)]
struct JsonAttachment {
    url: String,
    mime_type: Option<String>,
    size_in_bytes: Option<serde_json::Value>,
}

fn person(a: &JsonAuthor) -> RawPerson {
    RawPerson {
        name: non_empty(a.name.as_ref()),
        email: None,
        uri: non_empty(a.url.as_ref()),
    }
}

/// JSON Feed 1.1 `authors`, falling back to 1.0's `author`.
fn people(authors: &[JsonAuthor], author: Option<&JsonAuthor>) -> Vec<RawPerson> {
    let list: Vec<RawPerson> = authors.iter().map(person).collect();
    if list.is_empty() {
        author.map(person).into_iter().collect()
    } else {
        list
    }
}

pub fn parse(text: &str) -> Result<RawFeed, ParseError> {
    let feed: JsonFeed = serde_json::from_str(text)?;
    if !feed
        .version
        .as_deref()
        .is_some_and(|v| v.starts_with("https://jsonfeed.org/version/"))
    {
        return Err(ParseError::UnknownFormat(
            "JSON without a JSON Feed version (https://jsonfeed.org/version/1.1)".into(),
        ));
    }
    let feed_authors = people(&feed.authors, feed.author.as_ref());
    let items = feed
        .items
        .iter()
        .map(|it| {
            let guid = match &it.id {
                Some(serde_json::Value::String(s)) => non_empty(Some(s)),
                // 1.0 feeds in the wild use numbers; 1.1 says string.
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            let (content, content_is_html) = match (&it.content_html, &it.content_text) {
                (Some(h), _) if !h.trim().is_empty() => (Some(h.clone()), true),
                (_, Some(t)) if !t.trim().is_empty() => (Some(t.clone()), false),
                _ => (None, false),
            };
            let authors = people(&it.authors, it.author.as_ref());
            RawItem {
                guid,
                title: non_empty(it.title.as_ref()),
                title_is_html: false,
                title_is_text: true,
                link: non_empty(it.url.as_ref()).or_else(|| non_empty(it.external_url.as_ref())),
                published: non_empty(it.date_published.as_ref()),
                updated: non_empty(it.date_modified.as_ref()),
                authors: if authors.is_empty() {
                    feed_authors.clone()
                } else {
                    authors
                },
                summary: non_empty(it.summary.as_ref()),
                summary_is_html: false,
                content,
                content_is_html,
                categories: it.tags.iter().filter_map(|t| non_empty(Some(t))).collect(),
                language: non_empty(it.language.as_ref()),
                enclosures: it
                    .attachments
                    .iter()
                    .filter_map(|a| {
                        Some(RawEnclosure {
                            url: non_empty(Some(&a.url))?,
                            mime_type: non_empty(a.mime_type.as_ref()),
                            length: a.size_in_bytes.as_ref().map(|v| v.to_string()),
                        })
                    })
                    .collect(),
                base: None,
                image: non_empty(it.image.as_ref()).or_else(|| non_empty(it.banner_image.as_ref())),
                ..RawItem::default()
            }
        })
        .collect();
    Ok(RawFeed {
        format: Some(SourceFormat::Json),
        title: non_empty(feed.title.as_ref()),
        link: non_empty(feed.home_page_url.as_ref()),
        id: non_empty(feed.feed_url.as_ref()),
        language: non_empty(feed.language.as_ref()),
        updated: None,
        base: None,
        ttl_minutes: None,
        items,
    })
}
