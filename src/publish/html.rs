//! The HTML index page (`index.html`): every output feed with its latest items and subscribe
//! links, and `<link rel="alternate">` autodiscovery for each feed file. Everything from a
//! source is escaped; only http(s) links are linked. Deterministic like the feeds.

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use super::{Context, item_date, item_link, item_title};
use crate::config::{Format, OutputFeed};
use crate::store::StoredItem;

/// Items shown per feed on the index.
pub const LATEST: usize = 10;

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Rss => "RSS",
        Format::Atom => "Atom",
        Format::Json => "JSON Feed",
    }
}

fn is_http(u: &str) -> bool {
    u.starts_with("https://") || u.starts_with("http://")
}

pub fn render(feeds: &[(&OutputFeed, Vec<StoredItem>)], ctx: &Context) -> Vec<u8> {
    let mut h = String::with_capacity(16 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<meta name=\"generator\" content=\"feedloom\">\n<title>Feeds</title>\n");
    for (feed, _) in feeds {
        for f in &feed.formats {
            h.push_str(&format!(
                "<link rel=\"alternate\" type=\"{}\" title=\"{} ({})\" href=\"{}\">\n",
                f.content_type(),
                attr(&feed.title),
                format_name(*f),
                attr(&ctx.file_url(feed, *f))
            ));
        }
    }
    h.push_str(concat!(
        "<style>\n",
        "body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}\n",
        "h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.5rem;border-bottom:1px solid #ddd}\n",
        ".subscribe a{margin-right:.75rem}.meta{color:#666;font-size:.85rem}\n",
        "ol{padding-left:1.2rem}li{margin:.9rem 0}li p{margin:.2rem 0}\n",
        "</style>\n</head>\n<body>\n<h1>Feeds</h1>\n",
    ));
    h.push_str("<nav><ul>\n");
    for (feed, _) in feeds {
        h.push_str(&format!(
            "<li><a href=\"#{}\">{}</a></li>\n",
            attr(&feed.name),
            text(&feed.title)
        ));
    }
    h.push_str("</ul></nav>\n");
    for (feed, items) in feeds {
        h.push_str(&format!(
            "<section id=\"{}\">\n<h2>{}</h2>\n<p class=\"subscribe\">Subscribe:",
            attr(&feed.name),
            text(&feed.title)
        ));
        for f in &feed.formats {
            h.push_str(&format!(
                " <a href=\"{}\" type=\"{}\">{}</a>",
                attr(&ctx.file_url(feed, *f)),
                f.content_type(),
                format_name(*f)
            ));
        }
        h.push_str("</p>\n");
        if items.is_empty() {
            h.push_str("<p>No items yet.</p>\n");
        } else {
            h.push_str("<ol class=\"items\">\n");
        }
        for it in items.iter().take(LATEST) {
            let link = item_link(it, ctx);
            let title = text(&item_title(it)).into_owned();
            let src = ctx.source(&it.source);
            h.push_str("<li class=\"item\">");
            if is_http(&link) {
                h.push_str(&format!("<a href=\"{}\">{title}</a>", attr(&link)));
            } else {
                h.push_str(&title);
            }
            let date = item_date(it);
            h.push_str(&format!(
                "<br><span class=\"meta\">{} · <time datetime=\"{}\">{}</time></span>",
                text(&src.title),
                date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                date.format("%Y-%m-%d %H:%M UTC")
            ));
            if let Some(s) = &it.item.summary {
                let lang = it
                    .item
                    .language
                    .as_deref()
                    .map(|l| format!(" lang=\"{}\"", attr(l)))
                    .unwrap_or_default();
                h.push_str(&format!("<p{lang}>{}</p>", text(s)));
            }
            if let Some(also) = ctx
                .merged(feed, it)
                .and_then(|m| super::also_reported_by(&m.related))
            {
                h.push_str(&also);
            }
            h.push_str("</li>\n");
        }
        if !items.is_empty() {
            h.push_str("</ol>\n");
        }
        h.push_str("</section>\n");
    }
    let opml = ctx
        .base_url
        .join("sources.opml")
        .map(|u| u.to_string())
        .unwrap_or_default();
    h.push_str(&format!(
        "<footer><p class=\"meta\">Sources: <a href=\"{}\" type=\"text/x-opml\">OPML</a> · made by feedloom</p></footer>\n</body>\n</html>\n",
        attr(&opml)
    ));
    h.into_bytes()
}
