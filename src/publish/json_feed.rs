//! JSON Feed 1.1: authors, language, attachments, and the item's source in a `_feedloom`
//! extension object (the spec's way to extend: a key starting with an underscore).

use serde::Serialize;

use super::{Context, item_content, item_date, item_link, item_title, item_updated, published_id};
use crate::config::{Format, OutputFeed};
use crate::store::StoredItem;

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: String,
    feed_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<Hub>,
    items: Vec<JsonItem<'a>>,
}

#[derive(Serialize)]
struct Hub {
    #[serde(rename = "type")]
    kind: &'static str,
    url: String,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    id: String,
    url: String,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_html: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment<'a>>,
    _feedloom: Extension<'a>,
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
}

#[derive(Serialize)]
struct Attachment<'a> {
    url: &'a str,
    mime_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_in_bytes: Option<u64>,
}

#[derive(Serialize)]
struct Extension<'a> {
    source: SourceRef,
    original_id: &'a str,
    /// Other outlets' versions of the story this item stands for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related: Vec<RelatedRef>,
}

#[derive(Serialize)]
struct RelatedRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    source: String,
    title: String,
}

#[derive(Serialize)]
struct SourceRef {
    name: String,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    home_page_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    feed_url: Option<String>,
}

fn rfc3339(d: chrono::DateTime<chrono::Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn render(feed: &OutputFeed, items: &[StoredItem], ctx: &Context) -> Result<Vec<u8>, String> {
    let first_lang = items.first().and_then(|i| i.item.language.clone());
    let language =
        first_lang.filter(|l| items.iter().all(|i| i.item.language.as_deref() == Some(l)));
    let doc = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &feed.title,
        home_page_url: ctx.base_url.to_string(),
        feed_url: ctx.file_url(feed, Format::Json),
        language,
        hubs: ctx
            .hubs
            .iter()
            .map(|h| Hub {
                kind: "WebSub",
                url: h.to_string(),
            })
            .collect(),
        items: items
            .iter()
            .map(|it| {
                let i = &it.item;
                let src = ctx.source(&it.source);
                let related: Vec<RelatedRef> = ctx
                    .merged(feed, it)
                    .map(|m| {
                        m.related
                            .iter()
                            .map(|r| RelatedRef {
                                url: r.url.clone(),
                                source: r.source.clone(),
                                title: r.title.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                JsonItem {
                    id: published_id(feed, it, ctx),
                    url: item_link(it, ctx),
                    title: item_title(it),
                    content_html: item_content(feed, it, ctx),
                    summary: i.summary.as_deref(),
                    image: i.image.as_deref(),
                    date_published: rfc3339(item_date(it)),
                    date_modified: rfc3339(item_updated(it)),
                    authors: i
                        .authors
                        .iter()
                        .map(|a| Author {
                            name: &a.name,
                            url: a.uri.as_deref(),
                        })
                        .collect(),
                    tags: &i.categories,
                    language: i.language.as_deref(),
                    attachments: i
                        .enclosures
                        .iter()
                        .map(|e| Attachment {
                            url: &e.url,
                            mime_type: &e.mime_type,
                            size_in_bytes: e.length,
                        })
                        .collect(),
                    _feedloom: Extension {
                        source: SourceRef {
                            name: src.name.clone(),
                            title: src.title.clone(),
                            home_page_url: src.link.clone(),
                            feed_url: src.feed_url.clone(),
                        },
                        original_id: &i.id,
                        related,
                    },
                }
            })
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}
