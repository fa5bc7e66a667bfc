//! `(&OutputFeed, &[StoredItem], &Context, Format) → bytes`, pure; then [`write_atomic`], which
//! writes a temp file in the output folder, fsyncs it and renames it over the old one, and
//! does nothing when the bytes would not change.
//!
//! Deterministic: the same stored items always render the same bytes. Feed-level dates are
//! the newest item's, never the run's time, so an unchanged feed keeps its ETag.

mod atom;
pub mod html;
mod json_feed;
pub mod opml;
mod rss;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use url::Url;

use crate::config::{Format, OutputFeed};
use crate::store::StoredItem;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("render {feed}.{format}: {message}")]
    Render {
        feed: String,
        format: &'static str,
        message: String,
    },
    #[error("write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a source is, for attribution in merged outputs.
#[derive(Debug, Clone, Default)]
pub struct SourceInfo {
    pub name: String,
    /// The source feed's own title, else its configured name.
    pub title: String,
    /// The site's address.
    pub link: Option<String>,
    /// The source feed's public address (http(s) only; file sources have none).
    pub feed_url: Option<String>,
    /// The source feed's own id (Atom `id`), when it has one.
    pub id: Option<String>,
    /// The source feed's own updated date.
    pub updated: Option<DateTime<Utc>>,
}

/// A published item that stands for several versions of one story (`dedupe = "similar"`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    /// The id it is published under: its cluster's key, which stays as versions join.
    pub id: String,
    /// The other versions, earliest first.
    pub related: Vec<Related>,
}

/// Another outlet's version of a published story.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Related {
    /// The source's name.
    pub source: String,
    /// The source's title (its feed's own title, else its name).
    pub title: String,
    /// That version's link (http(s) only).
    pub url: Option<String>,
}

/// One output feed's merged items: (source, id) of the published version → merge.
pub type FeedMerged = HashMap<(String, String), Merged>;

/// Merged items per output feed, by feed name. Each feed's are shared: the feed's renders run
/// side by side, each with a [`Context`] of its own.
pub type MergedItems = HashMap<String, Arc<FeedMerged>>;

/// Everything rendering needs besides the feed and its items.
#[derive(Debug, Clone)]
pub struct Context {
    /// The public address of the output folder, ending in `/`.
    pub base_url: Url,
    /// Shared by the contexts of one publish's renders.
    pub sources: Arc<HashMap<String, SourceInfo>>,
    /// Minutes a reader may cache the feed (RSS `<ttl>`).
    pub ttl_minutes: u64,
    pub hubs: Vec<Url>,
    /// Items that stand for several versions of a story, per feed.
    pub merged: MergedItems,
}

impl Context {
    /// A context for rendering `feed` alone: the same settings and sources, and only that
    /// feed's merged items (a feed's renders run beside the next feed's selection).
    pub fn for_feed(&self, feed: &str) -> Context {
        Context {
            base_url: self.base_url.clone(),
            sources: self.sources.clone(),
            ttl_minutes: self.ttl_minutes,
            hubs: self.hubs.clone(),
            merged: self
                .merged
                .get(feed)
                .map(|m| (feed.to_string(), m.clone()))
                .into_iter()
                .collect(),
        }
    }

    /// The public address of one output file.
    pub fn file_url(&self, feed: &OutputFeed, format: Format) -> String {
        self.base_url
            .join(&format!("{}.{}", feed.name, format.extension()))
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// How `it` stands for other versions of its story in `feed`, if it does.
    pub fn merged(&self, feed: &OutputFeed, it: &StoredItem) -> Option<&Merged> {
        self.merged
            .get(&feed.name)?
            .get(&(it.source.clone(), it.item.id.clone()))
    }

    fn source(&self, name: &str) -> Cow<'_, SourceInfo> {
        match self.sources.get(name) {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(SourceInfo {
                name: name.to_string(),
                title: name.to_string(),
                ..SourceInfo::default()
            }),
        }
    }
}

/// The id an item has in merged outputs: namespaced by source, so two sources can never
/// collide. An absolute IRI (`urn:feedloom:<source>:<id>`), percent-encoded where needed.
pub fn output_id(source: &str, id: &str) -> String {
    let mut out = String::with_capacity(id.len() + source.len() + 14);
    push_output_id(&mut out, source, id);
    out
}

/// Appends [`output_id`]`(source, id)` to `out`.
pub fn push_output_id(out: &mut String, source: &str, id: &str) {
    out.push_str("urn:feedloom:");
    out.push_str(source);
    out.push(':');
    // Most ids need no escape: taken whole up to the first byte that does (an ASCII prefix,
    // so a character boundary). Clustering writes the id of every item in the window.
    let kept = id
        .bytes()
        .position(|b| !KEPT[usize::from(b)])
        .unwrap_or(id.len());
    out.push_str(&id[..kept]);
    for b in id[kept..].bytes() {
        match id_escape(b) {
            None => out.push(b as char),
            Some(e) => out.extend(e.iter().map(|c| *c as char)),
        }
    }
}

/// The bytes [`output_id`] keeps as they are in an id: ASCII letters and digits and
/// `-._~:/@!$&'()*+,;=`; the others are percent-encoded. (A table: the bytes of every id in
/// clustering's window pass through it.)
const KEPT: [bool; 256] = {
    let mut kept = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        kept[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'/'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    kept
};

/// How [`output_id`] writes a byte of an id: as it is (`None`), or percent-encoded.
fn id_escape(b: u8) -> Option<[u8; 3]> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if KEPT[usize::from(b)] {
        None
    } else {
        Some([b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
    }
}

/// The order of [`output_id`]`(a.0, a.1)` and [`output_id`]`(b.0, b.1)`, without building
/// them (clustering breaks ties between hundreds of thousands of items by it).
pub fn cmp_output_ids(a: (&str, &str), b: (&str, &str)) -> std::cmp::Ordering {
    fn tail<'a>(source: &'a str, id: &'a str) -> impl Iterator<Item = u8> + 'a {
        source
            .bytes()
            .chain(std::iter::once(b':'))
            .chain(id.bytes().flat_map(|b| match id_escape(b) {
                None => [b, 0, 0].into_iter().take(1),
                Some(e) => e.into_iter().take(3),
            }))
    }
    tail(a.0, a.1).cmp(tail(b.0, b.1))
}

/// Whether `key` is [`output_id`]`(source, id)`, without building it.
pub fn is_output_id(key: &str, source: &str, id: &str) -> bool {
    let Some(mut rest) = key
        .strip_prefix("urn:feedloom:")
        .and_then(|r| r.strip_prefix(source))
        .and_then(|r| r.strip_prefix(':'))
        .map(str::as_bytes)
    else {
        return false;
    };
    for b in id.bytes() {
        let next = match id_escape(b) {
            None => rest.strip_prefix(&[b]),
            Some(e) => rest.strip_prefix(&e),
        };
        match next {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// The id an item is published under in `feed`: its cluster's when it stands for several
/// versions of a story, else [`output_id`].
fn published_id(feed: &OutputFeed, it: &StoredItem, ctx: &Context) -> String {
    match ctx.merged(feed, it) {
        Some(m) => m.id.clone(),
        None => output_id(&it.source, &it.item.id),
    }
}

/// "Also reported by: <a>Outlet A</a>, Outlet B" as an HTML paragraph; `None` without related
/// versions.
pub fn also_reported_by(related: &[Related]) -> Option<String> {
    if related.is_empty() {
        return None;
    }
    let mut p = String::from("<p class=\"feedloom-related\">Also reported by: ");
    for (n, r) in related.iter().enumerate() {
        if n > 0 {
            p.push_str(", ");
        }
        let title = html_escape::encode_text(&r.title);
        match &r.url {
            Some(u) => p.push_str(&format!(
                "<a href=\"{}\">{title}</a>",
                html_escape::encode_double_quoted_attribute(u)
            )),
            None => p.push_str(&title),
        }
    }
    p.push_str("</p>");
    Some(p)
}

/// The item's content in `feed`: its HTML (else its lead as a paragraph) followed by "Also
/// reported by" when it stands for several versions of a story.
fn item_content<'a>(feed: &OutputFeed, it: &'a StoredItem, ctx: &Context) -> Option<Cow<'a, str>> {
    let content = it.item.content_html.as_deref();
    let Some(also) = ctx
        .merged(feed, it)
        .and_then(|m| also_reported_by(&m.related))
    else {
        return content.map(Cow::Borrowed);
    };
    let base = match (content, &it.item.summary) {
        (Some(c), _) => c.to_string(),
        (None, Some(s)) => format!("<p>{}</p>", html_escape::encode_text(s)),
        (None, None) => String::new(),
    };
    Some(Cow::Owned(format!("{base}\n{also}")))
}

/// The date an item is published under: published, else updated, else first seen.
fn item_date(it: &StoredItem) -> DateTime<Utc> {
    it.item
        .published
        .or(it.item.updated)
        .unwrap_or(it.sort_date)
}

/// The date an item last changed: updated, else its published date.
fn item_updated(it: &StoredItem) -> DateTime<Utc> {
    it.item
        .updated
        .unwrap_or_else(|| item_date(it))
        .max(item_date(it))
}

/// The newest item's change date; the epoch for an empty feed (never the run's time).
fn feed_updated(items: &[StoredItem]) -> DateTime<Utc> {
    items.iter().map(item_updated).max().unwrap_or_default()
}

/// The item's link, else its source's site, else the feed's own address.
fn item_link(it: &StoredItem, ctx: &Context) -> String {
    it.item
        .link
        .clone()
        .or_else(|| ctx.sources.get(&it.source).and_then(|s| s.link.clone()))
        .unwrap_or_else(|| ctx.base_url.to_string())
}

/// Removes characters XML 1.0 forbids (C0 controls but tab/CR/LF, U+FFFE, U+FFFF).
fn xml_safe(s: &str) -> Cow<'_, str> {
    // Every string of every feed rendered: looked for by bytes first.
    crate::parse::xml::without_forbidden::<false>(s)
}

/// A plain title for an item that has none: the start of its summary.
fn item_title(it: &StoredItem) -> String {
    if !it.item.title.is_empty() {
        return it.item.title.clone();
    }
    let s = it.item.summary.as_deref().unwrap_or("");
    let t: String = s.chars().take(80).collect();
    if t.is_empty() {
        "(untitled)".into()
    } else if t.len() < s.len() {
        format!("{}…", t.trim_end())
    } else {
        t
    }
}

/// Renders one output file.
/// Renders one output file. `prev_archive` is the address of the newest RFC 5005 archive
/// page, linked from the Atom and RSS feeds as `rel="prev-archive"`.
pub fn render(
    feed: &OutputFeed,
    items: &[StoredItem],
    ctx: &Context,
    format: Format,
    prev_archive: Option<&str>,
) -> Result<Vec<u8>, PublishError> {
    let fail = |message: String| PublishError::Render {
        feed: feed.name.clone(),
        format: format.extension(),
        message,
    };
    let archive_links: Vec<(&'static str, String)> = prev_archive
        .map(|u| ("prev-archive", u.to_string()))
        .into_iter()
        .collect();
    match format {
        Format::Rss => rss::render(feed, items, ctx, &archive_links).map_err(fail),
        Format::Atom => {
            let page = atom::Page {
                links: archive_links,
                ..atom::Page::default()
            };
            atom::render(feed, items, ctx, &page).map_err(fail)
        }
        Format::Json => json_feed::render(feed, items, ctx).map_err(fail),
    }
}

/// Rendered archive pages: (file name, bytes) each, and the newest page's address.
pub type Archives = (Vec<(String, Vec<u8>)>, Option<String>);

/// RFC 5005 archive pages (Atom) for the items beyond a feed's `limit`: one page per calendar
/// month of the items' dates, newest first, at most `feed.archive_pages` of them. A month's page
/// keeps its address and content as newer items arrive. Returns the pages as (file name,
/// bytes) and the address of the newest page (for the feed's `prev-archive` link).
pub fn archive_pages(
    feed: &OutputFeed,
    beyond: &[StoredItem],
    ctx: &Context,
) -> Result<Archives, PublishError> {
    let mut months: Vec<(String, Vec<StoredItem>)> = Vec::new();
    for it in beyond {
        let month = it.sort_date.format("%Y-%m").to_string();
        match months.iter_mut().find(|(m, _)| *m == month) {
            Some((_, v)) => v.push(it.clone()),
            None => months.push((month, vec![it.clone()])),
        }
    }
    months.sort_by(|a, b| b.0.cmp(&a.0));
    months.truncate(feed.archive_pages);
    let file = |m: &str| format!("{}-archive-{m}.atom", feed.name);
    let url = |m: &str| {
        ctx.base_url
            .join(&file(m))
            .map(|u| u.to_string())
            .unwrap_or_default()
    };
    let mut pages = Vec::new();
    for (n, (month, items)) in months.iter().enumerate() {
        let mut links = vec![("current", ctx.file_url(feed, Format::Atom))];
        if let Some((older, _)) = months.get(n + 1) {
            links.push(("prev-archive", url(older)));
        }
        if n > 0 {
            links.push(("next-archive", url(&months[n - 1].0)));
        }
        let page = atom::Page {
            self_url: Some(url(month)),
            links,
            archive: true,
        };
        let bytes =
            atom::render(feed, items, ctx, &page).map_err(|message| PublishError::Render {
                feed: feed.name.clone(),
                format: "atom",
                message,
            })?;
        pages.push((file(month), bytes));
    }
    let newest = months.first().map(|(m, _)| url(m));
    Ok((pages, newest))
}

/// Prefix of the temp files [`write_atomic`] writes before renaming them into place.
const TEMP_PREFIX: &str = ".feedloom-";

/// Deletes temp files a killed run left in `dir`. Only call it while holding the run lock: a
/// live run's temp file must not go. Returns how many went.
pub fn sweep_temp_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Writes `bytes` to `path` atomically; returns false (and writes nothing) when the file
/// already holds exactly these bytes.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<bool, PublishError> {
    let io = |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(old) = std::fs::read(path)
        && old == bytes
    {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    // Readers of a served folder need read access; tempfile creates 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_ids_keep_the_unreserved_and_sub_delims() {
        for b in 0..=255u8 {
            let kept = b.is_ascii_alphanumeric() || b"-._~:/@!$&'()*+,;=".contains(&b);
            assert_eq!(KEPT[usize::from(b)], kept, "byte {b}");
        }
        assert_eq!(output_id("s", "a b/é"), "urn:feedloom:s:a%20b/%C3%A9");
    }

    #[test]
    fn output_ids_are_absolute_and_escaped() {
        assert_eq!(output_id("a", "ca-news-1"), "urn:feedloom:a:ca-news-1");
        assert_eq!(
            output_id("b", "https://x.kz/?p=1#c d"),
            "urn:feedloom:b:https://x.kz/%3Fp=1%23c%20d"
        );
        assert_eq!(output_id("b", "Ж"), "urn:feedloom:b:%D0%96");
        for (source, id) in [
            ("a", "ca-news-1"),
            ("b", "https://x.kz/?p=1#c d"),
            ("b", "Ж"),
            ("s", ""),
        ] {
            let key = output_id(source, id);
            assert!(is_output_id(&key, source, id), "{key}");
            assert!(!is_output_id(&format!("{key}x"), source, id));
            assert!(!is_output_id(&key[..key.len() - 1], source, id));
            assert!(!is_output_id(&key, "other", id));
        }
        assert!(!is_output_id("urn:feedloom:b:%D0%97", "b", "Ж"));
        assert!(!is_output_id("urn:feedloom:b:Ж", "b", "Ж"));
    }

    #[test]
    fn output_ids_compare_as_built_at_random() {
        // Source names as the config allows them; ids of escaped and unescaped bytes alike.
        let mut seed = 11u64;
        let mut next = |m: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % m
        };
        let source_chars: Vec<char> = "ab0-".chars().collect();
        let id_chars: Vec<char> = "aA0%:/-~ \u{7f}é€".chars().collect();
        let mut keys: Vec<(String, String)> = Vec::new();
        for _ in 0..300 {
            let source: String = (0..1 + next(3))
                .map(|_| source_chars[next(source_chars.len())])
                .collect();
            let id: String = (0..next(5))
                .map(|_| id_chars[next(id_chars.len())])
                .collect();
            keys.push((source, id));
        }
        for a in &keys {
            for b in keys.iter().take(60) {
                assert_eq!(
                    cmp_output_ids((&a.0, &a.1), (&b.0, &b.1)),
                    output_id(&a.0, &a.1).cmp(&output_id(&b.0, &b.1)),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn output_ids_compare_as_built() {
        // Escapes sort by their bytes ('%' below letters and digits), a source that is a
        // prefix of another meets the ':' after it, and an empty id ends first.
        let keys = [
            ("a", ""),
            ("a", "b"),
            ("a", "a b"),
            ("a", "a%"),
            ("a", "Ж"),
            ("a", "a"),
            ("a", "a:1"),
            ("ab", "a"),
            ("a-b", ""),
            ("a", "https://x.kz/?p=1#c d"),
            ("a", "https://x.kz/p=1"),
            ("b", "~"),
            ("b", "\u{7f}"),
        ];
        for a in keys {
            for b in keys {
                assert_eq!(
                    cmp_output_ids(a, b),
                    output_id(a.0, a.1).cmp(&output_id(b.0, b.1)),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn xml_safe_drops_controls() {
        assert_eq!(xml_safe("a\u{1}b\tc\u{ffff}"), "ab\tc");
    }

    #[test]
    fn write_atomic_skips_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.rss");
        assert!(write_atomic(&p, b"one").unwrap());
        assert!(!write_atomic(&p, b"one").unwrap());
        assert!(write_atomic(&p, b"two").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp files left"
        );
    }
}
