//! OPML 2.0 of the configured sources (`sources.opml`, `feedloom sources export`): one outline
//! per source with its title, feed address, site and tags. A file source's feed address is the
//! feed's own public self link when it has one.

use html_escape::encode_double_quoted_attribute as attr;

use super::{SourceInfo, xml_safe};

/// One source as listed in OPML.
pub struct Outline<'a> {
    pub info: &'a SourceInfo,
    pub tags: &'a [String],
}

pub fn render(title: &str, outlines: &[Outline<'_>]) -> Vec<u8> {
    let a = |s: &str| attr(&xml_safe(s)).into_owned();
    let mut x =
        String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<opml version=\"2.0\">\n");
    x.push_str(&format!(
        "  <head>\n    <title>{}</title>\n    <docs>http://opml.org/spec2.opml</docs>\n  </head>\n  <body>\n",
        html_escape::encode_text(&xml_safe(title))
    ));
    for o in outlines {
        let i = o.info;
        x.push_str(&format!(
            "    <outline text=\"{}\" title=\"{}\"",
            a(&i.title),
            a(&i.title)
        ));
        if let Some(feed) = &i.feed_url {
            x.push_str(&format!(" type=\"rss\" xmlUrl=\"{}\"", a(feed)));
        }
        if let Some(site) = &i.link {
            x.push_str(&format!(" htmlUrl=\"{}\"", a(site)));
        }
        if !o.tags.is_empty() {
            x.push_str(&format!(" category=\"{}\"", a(&o.tags.join(","))));
        }
        x.push_str(&format!(" feedloomName=\"{}\"/>\n", a(&i.name)));
    }
    x.push_str("  </body>\n</opml>\n");
    x.into_bytes()
}
