//! RSS 2.0 with `atom:link rel=self` (and `rel=hub`), `<source url>`, `dc:creator`,
//! `content:encoded`, `<enclosure>` and `<ttl>`, written by the `rss` crate.

use std::collections::BTreeMap;

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::{Category, Channel, Enclosure, Guid, Item, Source};

use super::{
    Context, feed_updated, item_content, item_date, item_link, item_title, published_id, xml_safe,
};
use crate::config::{Format, OutputFeed};
use crate::store::StoredItem;

fn s(v: &str) -> String {
    xml_safe(v).into_owned()
}

pub fn render(
    feed: &OutputFeed,
    items: &[StoredItem],
    ctx: &Context,
    extra_links: &[(&'static str, String)],
) -> Result<Vec<u8>, String> {
    let self_url = ctx.file_url(feed, Format::Rss);
    let mut links = vec![Link {
        href: self_url,
        rel: "self".into(),
        mime_type: Some(Format::Rss.content_type().into()),
        ..Link::default()
    }];
    links.extend(extra_links.iter().map(|(rel, href)| Link {
        href: href.clone(),
        rel: (*rel).into(),
        ..Link::default()
    }));
    links.extend(ctx.hubs.iter().map(|h| Link {
        href: h.to_string(),
        rel: "hub".into(),
        ..Link::default()
    }));
    let rss_items = items.iter().map(|it| item(feed, it, ctx)).collect();
    let mut namespaces = BTreeMap::new();
    namespaces.insert(
        "atom".to_string(),
        rss::extension::atom::NAMESPACE.to_string(),
    );
    namespaces.insert(
        "dc".to_string(),
        rss::extension::dublincore::NAMESPACE.to_string(),
    );
    namespaces.insert(
        "content".to_string(),
        "http://purl.org/rss/1.0/modules/content/".to_string(),
    );
    let channel = Channel {
        title: s(&feed.title),
        link: ctx.base_url.to_string(),
        description: s(&format!("{} (merged by feedloom)", feed.title)),
        language: common_language(items),
        generator: Some("feedloom".into()),
        ttl: Some(ctx.ttl_minutes.to_string()),
        last_build_date: (!items.is_empty()).then(|| feed_updated(items).to_rfc2822()),
        items: rss_items,
        atom_ext: Some(AtomExtension { links }),
        namespaces,
        ..Channel::default()
    };
    let mut out = channel
        .pretty_write_to(Vec::new(), b' ', 2)
        .map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// The language all items share, if they do.
fn common_language(items: &[StoredItem]) -> Option<String> {
    let first = items.first()?.item.language.clone()?;
    items
        .iter()
        .all(|i| i.item.language.as_deref() == Some(first.as_str()))
        .then_some(first)
}

fn item(feed: &OutputFeed, it: &StoredItem, ctx: &Context) -> Item {
    let i = &it.item;
    let src = ctx.source(&it.source);
    let dc = (!i.authors.is_empty()).then(|| DublinCoreExtension {
        creators: i.authors.iter().map(|a| s(&a.name)).collect(),
        ..DublinCoreExtension::default()
    });
    let source_url = src.feed_url.clone().or_else(|| src.link.clone());
    Item {
        title: Some(s(&item_title(it))),
        link: Some(item_link(it, ctx)),
        description: i.summary.as_deref().map(s),
        content: item_content(feed, it, ctx).as_deref().map(s),
        guid: Some(Guid {
            value: published_id(feed, it, ctx),
            permalink: false,
        }),
        pub_date: Some(item_date(it).to_rfc2822()),
        categories: i
            .categories
            .iter()
            .map(|c| Category {
                name: s(c),
                domain: None,
            })
            .collect(),
        enclosure: i.enclosures.first().map(|e| Enclosure {
            url: s(&e.url),
            length: e.length.unwrap_or(0).to_string(),
            mime_type: s(&e.mime_type),
        }),
        source: source_url.map(|url| Source {
            url,
            title: Some(s(&src.title)),
        }),
        dublin_core_ext: dc,
        ..Item::default()
    }
}
