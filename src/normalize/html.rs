//! HTML in items: the allow-list sanitiser (always the last step), plain text out of HTML, and
//! HTML out of plain text.
//!
//! Sanitising keeps a conservative set of structural tags (ammonia's defaults plus `srcset`),
//! drops `script`/`style` with their content, event handlers and every URL that is not
//! http(s) or mailto, resolves relative `href`/`src`/`srcset` against the item's base, strips
//! tracking parameters from them and adds `rel="noopener noreferrer"` to links.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use ego_tree::NodeRef;
use ego_tree::iter::Edge;
use scraper::{Html, Node};
use url::Url;

use super::url::absolute;

/// Video hosts whose embeds are kept (`<iframe src>` starting with one of these).
const VIDEO_EMBEDS: &[&str] = &[
    "https://www.youtube.com/embed/",
    "https://www.youtube-nocookie.com/embed/",
    "https://player.vimeo.com/video/",
    "https://rutube.ru/play/embed/",
    "https://vk.com/video_ext.php",
    "https://vkvideo.ru/video_ext.php",
];

/// Whether an iframe points at an allowed video host.
pub fn allowed_embed(src: &str) -> bool {
    VIDEO_EMBEDS.iter().any(|p| src.starts_with(p))
}

/// The tags the sanitiser keeps: ammonia's default allow-list.
static ALLOWED_TAGS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| ammonia::Builder::default().clone_tags());

/// Whether the sanitiser keeps elements of this name.
pub fn allowed_tag(name: &str) -> bool {
    ALLOWED_TAGS.contains(name)
}

/// Markup nested deeper than this is flattened before it is parsed: no story needs it, and the
/// HTML tree builder's cost grows with depth × elements (a browser stops at about 512).
pub const MAX_NESTING: usize = 128;

/// Tags that have no end tag.
fn is_void_tag(name: &str) -> bool {
    matches!(
        name,
        "area"
            | "base"
            | "br"
            | "col"
            | "embed"
            | "hr"
            | "img"
            | "input"
            | "link"
            | "meta"
            | "param"
            | "source"
            | "track"
            | "wbr"
    )
}

/// Drops the tags (not the text) of elements nested deeper than `max`. A linear scan that only
/// allocates when the limit is passed; it need not tokenise perfectly, since everything it lets
/// through is parsed and sanitised after it.
pub fn limit_nesting(html: &str, max: usize) -> Cow<'_, str> {
    if html.bytes().filter(|b| *b == b'<').count() <= max {
        return Cow::Borrowed(html);
    }
    let b = html.as_bytes();
    let mut out: Option<String> = None;
    let mut depth = 0usize;
    let mut copied = 0; // bytes of `html` already accounted for in `out`
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        let start = i + off;
        let rest = &html[start..];
        let end = if rest.starts_with("<!--") {
            rest.find("-->").map_or(html.len(), |e| start + e + 3)
        } else {
            rest.find('>').map_or(html.len(), |e| start + e + 1)
        };
        let tag = &html[start..end];
        let closing = tag.starts_with("</");
        let bare = tag.trim_start_matches(['<', '/']);
        let name = &bare[..bare
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(bare.len())];
        // Lower-cased only when it is not already (names are ASCII here).
        let name: Cow<'_, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        let opens = !closing && !name.is_empty() && !tag.ends_with("/>") && !is_void_tag(&name);
        let drop = if opens {
            depth += 1;
            depth > max
        } else if closing && !name.is_empty() {
            let deep = depth > max;
            depth = depth.saturating_sub(1);
            deep
        } else {
            false
        };
        if drop {
            let o = out.get_or_insert_with(|| String::with_capacity(html.len()));
            o.push_str(&html[copied..start]);
            copied = end;
        }
        i = end.max(start + 1);
        if i >= b.len() {
            break;
        }
    }
    match out {
        Some(mut o) => {
            o.push_str(&html[copied..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(html),
    }
}

thread_local! {
    /// The base URL of the [`sanitize`] call running on this thread, for the shared builders'
    /// filters (ammonia's filters see only the attribute).
    static BASE: RefCell<Option<Url>> = const { RefCell::new(None) };
}

/// The sanitiser for a call with a base URL: relative URLs reach the attribute filter, which
/// resolves them against [`BASE`] (as `UrlRelative::RewriteWithBase` would for any it left).
static WITH_BASE: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = builder();
    b.url_relative(ammonia::UrlRelative::Custom(Box::new(rewrite_with_base)));
    b
});

/// What `UrlRelative::RewriteWithBase` does, with the base of the running call.
fn rewrite_with_base(url: &str) -> Option<Cow<'_, str>> {
    BASE.with_borrow(|base| base.as_ref()?.join(url).ok())
        .map(|u| Cow::Owned(u.to_string()))
}

/// The sanitiser for a call without a base URL: relative URLs are dropped before the filter.
static WITHOUT_BASE: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = builder();
    b.url_relative(ammonia::UrlRelative::Deny);
    b
});

/// The allow-list and the URL filter, built once per process (building one costs more than
/// sanitising a short body).
pub(super) fn builder() -> ammonia::Builder<'static> {
    let mut b = ammonia::Builder::default();
    b.add_tags(["iframe"])
        .add_tag_attributes(
            "iframe",
            &["src", "allowfullscreen", "width", "height", "title"],
        )
        .add_tag_attributes("img", &["srcset", "loading"])
        .add_tag_attributes("a", &["hreflang"])
        .add_generic_attributes(&["lang", "dir"])
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .attribute_filter(|element, attribute, value| {
            BASE.with_borrow(|base| filter_attribute(element, attribute, value, base.as_ref()))
        });
    b
}

/// Iframes only from the video hosts; `href`/`src`/`cite` resolved, cleaned, http(s) or
/// mailto; every candidate of a `srcset` likewise.
pub(super) fn filter_attribute<'a>(
    element: &str,
    attribute: &str,
    value: &'a str,
    base: Option<&Url>,
) -> Option<Cow<'a, str>> {
    match attribute {
        "src" if element == "iframe" => allowed_embed(value).then_some(Cow::Borrowed(value)),
        "href" | "src" | "cite" => {
            if value.trim_start().starts_with("mailto:") {
                return Some(Cow::Borrowed(value));
            }
            absolute(value, base).map(|u| Cow::Owned(u.to_string()))
        }
        "srcset" => {
            let parts: Vec<String> = value
                .split(',')
                .filter_map(|cand| {
                    let mut it = cand.split_whitespace();
                    let url = absolute(it.next()?, base)?;
                    let rest: Vec<&str> = it.collect();
                    Some(if rest.is_empty() {
                        url.to_string()
                    } else {
                        format!("{url} {}", rest.join(" "))
                    })
                })
                .collect();
            (!parts.is_empty()).then(|| Cow::Owned(parts.join(", ")))
        }
        _ => Some(Cow::Borrowed(value)),
    }
}

/// The allow-list as the sanitiser's builder holds it, for the quick path
/// ([`super::own_clean`]) to ask the same sets.
pub(super) struct Allowed {
    generic: HashSet<&'static str>,
    tags: HashMap<&'static str, HashSet<&'static str>>,
    schemes: HashSet<&'static str>,
}

impl Allowed {
    /// Whether ammonia keeps `attr` on `tag` (before its URL test and the attribute filter).
    pub(super) fn attribute(&self, tag: &str, attr: &str) -> bool {
        self.generic.contains(attr) || self.tags.get(tag).is_some_and(|a| a.contains(attr))
    }

    pub(super) fn scheme(&self, scheme: &str) -> bool {
        self.schemes.contains(scheme)
    }
}

pub(super) static ALLOWED: LazyLock<Allowed> = LazyLock::new(|| {
    let b = builder();
    Allowed {
        generic: b.clone_generic_attributes(),
        tags: b.clone_tag_attributes(),
        schemes: b.clone_url_schemes(),
    }
});

/// Sanitises `html`; relative URLs are resolved against `base` or dropped when there is none.
///
/// Markup of the shape the body rules write is cleaned by one linear pass
/// ([`super::own_clean`]) into what ammonia gives; anything else is parsed and cleaned by
/// ammonia. Debug builds run both on every call and require the same result.
pub fn sanitize(html: &str, base: Option<&Url>) -> String {
    let html = &*limit_nesting(html, MAX_NESTING);
    let clean = match super::own_clean::clean(html, base, &ALLOWED) {
        Some(quick) => {
            debug_assert_eq!(quick, by_ammonia(html, base), "quick path of {html:?}");
            quick
        }
        None => by_ammonia(html, base),
    };
    drop_empty_iframes(clean.trim())
}

/// `html` as ammonia cleans it with the sanitiser's allow-list and filters.
pub(super) fn by_ammonia(html: &str, base: Option<&Url>) -> String {
    let builder = if base.is_some() {
        &*WITH_BASE
    } else {
        &*WITHOUT_BASE
    };
    let previous = BASE.replace(base.cloned());
    let clean = builder.clean(html).to_string();
    BASE.set(previous);
    clean
}

/// Whether a serialised start tag has a `src` attribute. Values are double-quoted with no raw
/// `"` in them, so the pieces between quotes alternate: names outside, values inside (a value
/// may itself read ` src=`).
fn has_src(open: &str) -> bool {
    open.split('"')
        .step_by(2)
        .any(|outside| outside.ends_with(" src="))
}

/// Removes iframes whose `src` the sanitiser refused: an empty frame is nothing to show.
fn drop_empty_iframes(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<iframe") {
        let Some(open_end) = rest[start..].find('>') else {
            break;
        };
        let open = &rest[start..start + open_end];
        let close = "</iframe>";
        let Some(end) = rest[start..].find(close) else {
            break;
        };
        out.push_str(&rest[..start]);
        if has_src(open) {
            out.push_str(&rest[start..start + end + close.len()]);
        }
        rest = &rest[start + end + close.len()..];
    }
    out.push_str(rest);
    out
}

pub fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "aside"
            | "nav"
            | "blockquote"
            | "pre"
            | "ul"
            | "ol"
            | "li"
            | "dl"
            | "dt"
            | "dd"
            | "table"
            | "tr"
            | "figure"
            | "figcaption"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "hr"
            | "main"
            | "address"
            | "details"
            | "summary"
    )
}

/// The first thing in `html` that could run in a reader, if any: a script-capable element (or
/// an iframe off the video allow-list), an event handler or `style` attribute, or a URL whose
/// scheme is not http(s), mailto or a fragment. The check the tests and fuzzers hold every
/// output to.
pub fn first_unsafe_markup(html: &str) -> Option<String> {
    let doc = Html::parse_fragment(html);
    for node in doc.tree.root().descendants() {
        let Some(e) = node.value().as_element() else {
            continue;
        };
        if matches!(
            e.name(),
            "script"
                | "style"
                | "svg"
                | "math"
                | "object"
                | "embed"
                | "base"
                | "form"
                | "meta"
                | "link"
                | "input"
                | "frame"
                | "frameset"
                | "applet"
                | "bgsound"
        ) || (e.name() == "iframe" && !e.attr("src").is_some_and(allowed_embed))
        {
            return Some(format!("<{}>", e.name()));
        }
        for (k, v) in e.attrs() {
            let v = v
                .trim()
                .to_ascii_lowercase()
                .replace(['\t', '\n', '\r'], "");
            let url_ok = |u: &str| {
                u.is_empty()
                    || u.starts_with('#')
                    || u.starts_with("https://")
                    || u.starts_with("http://")
                    || u.starts_with("mailto:")
            };
            // A `srcset` is a list of candidates; other URLs may hold commas of their own.
            let bad_url = match k {
                "srcset" => !v.split(',').all(|part| url_ok(part.trim())),
                "href" | "src" | "cite" | "action" | "data" | "poster" => !url_ok(&v),
                _ => false,
            };
            if bad_url
                || k.starts_with("on")
                || matches!(k, "style" | "background" | "dynsrc" | "lowsrc")
            {
                return Some(format!("{k}={v}"));
            }
        }
    }
    None
}

/// Elements dropped with everything inside them, by the body rules and by text extraction.
pub fn is_dropped(name: &str) -> bool {
    matches!(
        name,
        "script"
            | "style"
            | "noscript"
            | "template"
            | "object"
            | "embed"
            | "applet"
            | "form"
            | "input"
            | "button"
            | "select"
            | "textarea"
            | "link"
            | "meta"
            | "base"
            | "head"
            | "title"
            | "frame"
            | "frameset"
            | "svg"
            | "math"
            // The sanitiser allows no <video>/<audio>: their fallback text ("your browser
            // does not support…") would be left loose. Media reach readers as enclosures.
            | "video"
            | "audio"
    )
}

/// Collects the text under `node` (iteratively: a hostile document may nest deeply).
fn walk(node: NodeRef<'_, Node>, out: &mut String) {
    let mut skipping: Option<ego_tree::NodeId> = None;
    for edge in node.traverse() {
        match edge {
            Edge::Open(n) => {
                if skipping.is_some() {
                    continue;
                }
                match n.value() {
                    Node::Text(t) => out.push_str(&without_controls(t)),
                    Node::Element(e) => match e.name() {
                        // An iframe's content is fallback markup, never shown.
                        name if is_dropped(name) || name == "iframe" => {
                            skipping = Some(n.id());
                        }
                        "br" => out.push('\n'),
                        name if is_block(name) => out.push_str("\n\n"),
                        _ => {}
                    },
                    _ => {}
                }
            }
            Edge::Close(n) => {
                if skipping == Some(n.id()) {
                    skipping = None;
                    continue;
                }
                if skipping.is_some() {
                    continue;
                }
                if let Node::Element(e) = n.value() {
                    if is_block(e.name()) {
                        out.push_str("\n\n");
                    } else if matches!(e.name(), "td" | "th") {
                        out.push(' ');
                    }
                }
            }
        }
    }
}

/// The text of an HTML fragment: entities decoded, tags dropped, blocks separated by a blank
/// line, runs of spaces collapsed.
pub fn text_of(html: &str) -> String {
    // Without markup, references, CRs (the parser turns them into line feeds), NULs or a BOM
    // (it drops them), the parse would give the text as it is: many summaries are plain.
    if !html.contains(['<', '&', '\r', '\0', '\u{feff}']) {
        return tidy_text(&without_controls(html));
    }
    parsed_text_of(html)
}

/// The text of a body the body rules wrote ([`super::body::normalize_body`]) once [`sanitize`]
/// cleaned it, white space collapsed: what `collapse(&text_of(html))` gives, read by a scan of
/// the serialised markup instead of a parse (a property test over hostile markup checks the two
/// agree; on markup from elsewhere they need not: a parser may close a `<p>` the markup
/// leaves open). Markup nested deeper than a parse keeps is parsed.
pub fn sanitized_text(html: &str) -> String {
    read_by_parse(html).unwrap_or_else(|| super::own_markup::text(to_scan(html)))
}

/// The text of sanitised markup nested deeper than a parse keeps, read by a parse; `None`
/// for markup that is scanned ([`to_scan`]).
fn read_by_parse(html: &str) -> Option<String> {
    matches!(limit_nesting(html, MAX_NESTING), Cow::Owned(_)).then(|| collapse(&text_of(html)))
}

/// The sanitised markup a scan reads: a parser drops a byte-order mark that starts its input.
fn to_scan(html: &str) -> &str {
    html.strip_prefix('\u{feff}').unwrap_or(html)
}

/// A sanitised body with its text as [`sanitized_text`] reads it, for the two questions an
/// item asks of that text (is there any, and does the summary start it), read only as far as
/// they need: most of a body's text is never read.
pub struct SanitizedBody {
    html: String,
    /// The text read whole by a parse, for markup nested deeper than the scan keeps; `None`:
    /// the markup is scanned.
    parsed: Option<String>,
}

impl SanitizedBody {
    pub fn new(html: String) -> SanitizedBody {
        let parsed = read_by_parse(&html);
        SanitizedBody { html, parsed }
    }

    pub fn html(&self) -> &str {
        &self.html
    }

    pub fn into_html(self) -> String {
        self.html
    }

    /// Whether [`sanitized_text`] is not empty.
    pub fn has_text(&self) -> bool {
        match &self.parsed {
            None => super::own_markup::has_text(to_scan(&self.html)),
            Some(s) => !s.is_empty(),
        }
    }

    /// The word characters of [`sanitized_text`], folded ([`super::fold::folded_words`]),
    /// made as they are read. (White space and controls are no word characters, so the
    /// uncollapsed characters give the same.)
    pub fn folded_words(&self) -> Box<dyn Iterator<Item = char> + '_> {
        match &self.parsed {
            None => Box::new(
                super::own_markup::text_chars(to_scan(&self.html))
                    .flat_map(super::fold::folded)
                    .filter(|c| super::fold::is_word_char(*c)),
            ),
            Some(s) => Box::new(super::fold::folded_words(s)),
        }
    }
}

/// [`text_of`] by a parse, whatever `html` holds.
fn parsed_text_of(html: &str) -> String {
    let html = limit_nesting(html, MAX_NESTING);
    let doc = Html::parse_fragment(&html);
    let mut raw = String::with_capacity(html.len());
    walk(doc.tree.root(), &mut raw);
    tidy_text(&raw)
}

/// Collapses white space inside lines and runs of blank lines, trims the whole.
pub fn tidy_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blank_run = 0;
    for line in raw.lines() {
        let at = out.len();
        if at > 0 {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        let words = out.len();
        collapse_into(line, &mut out);
        if out.len() == words {
            // A blank line: take back the separator.
            out.truncate(at);
            blank_run += 1;
            continue;
        }
        blank_run = 0;
    }
    out
}

/// Characters no reader can show and XML forbids: C0 controls but tab, LF and CR, DEL, and the
/// non-characters U+FFFE/U+FFFF. They also arrive decoded from references such as `&#4;`.
pub fn is_control(c: char) -> bool {
    crate::parse::xml::forbidden_char::<true>(c)
}

/// Whether `s` has an [`is_control`] character (by bytes: asked of every text field of every
/// item).
pub fn has_control(s: &str) -> bool {
    crate::parse::xml::has_forbidden_char::<true>(s)
}

/// `s` without [`is_control`] characters (borrowed when it has none).
pub fn without_controls(s: &str) -> Cow<'_, str> {
    crate::parse::xml::without_forbidden::<true>(s)
}

/// Collapses every run of white space (NBSP included) to one space and trims; control
/// characters go.
pub fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    collapse_into(s, &mut out);
    out
}

/// [`collapse`], appended to `out` (which it treats as empty: no space before the first word).
fn collapse_into(s: &str, out: &mut String) {
    let start = out.len();
    let mut space = false;
    for c in s.chars() {
        if is_control(c) {
        } else if c.is_whitespace() {
            space = true;
        } else {
            if space && out.len() > start {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
}

/// HTML from plain text: a paragraph per blank-line block, `<br>` between its lines.
pub fn plain_to_html(text: &str) -> String {
    tidy_text(text)
        .split("\n\n")
        .map(|para| {
            let lines: Vec<String> = para
                .lines()
                .map(|l| html_escape::encode_text(l).into_owned())
                .collect();
            format!("<p>{}</p>", lines.join("<br>"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a string looks like HTML markup rather than plain text: a tag (`<p`, `</`, `<!`)
/// or a character reference (`&amp;`, `&#8212;`, `&#x2014;`).
pub fn looks_like_html(s: &str) -> bool {
    let b = s.as_bytes();
    let tag = b
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'/' || w[1] == b'!'));
    tag || b
        .iter()
        .enumerate()
        .any(|(i, c)| *c == b'&' && is_reference(&b[i + 1..]))
}

fn is_reference(rest: &[u8]) -> bool {
    let (digit, body): (fn(&u8) -> bool, &[u8]) = match rest {
        [b'#', b'x' | b'X', tail @ ..] => (u8::is_ascii_hexdigit, tail),
        [b'#', tail @ ..] => (u8::is_ascii_digit, tail),
        _ => (u8::is_ascii_alphanumeric, rest),
    };
    let n = body.iter().take(32).take_while(|c| digit(c)).count();
    n > 0 && body.get(n) == Some(&b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lazy reading answers as the whole text would: emptiness and the folded words, for
    /// a scanned body (a byte-order mark, an iframe, references, controls) and one nested too
    /// deep to scan.
    #[test]
    fn sanitized_text_read_lazily_answers_as_read_whole() {
        let deep = format!(
            "{}Ёлка и&nbsp;ЁЖ{}",
            "<div>".repeat(MAX_NESTING + 5),
            "</div>".repeat(MAX_NESTING + 5)
        );
        for html in [
            "",
            "\u{feff}",
            "\u{feff}<p>\u{feff}</p>",
            "<p> \u{1}\u{a0}&nbsp;</p>",
            "<iframe src=\"https://v.example/\">Текст</iframe>",
            "<p>Ёлка&amp;ЁЖ<br>Straße</p><ul><li>ΟΔΟΣ, 12</li></ul><figure><img src=\"x\"></figure>",
            "<table><tr><td>a</td><td>b</td></tr></table>",
            &deep,
        ] {
            let whole = sanitized_text(html);
            let lazy = SanitizedBody::new(html.to_string());
            assert_eq!(lazy.has_text(), !whole.is_empty(), "{html:?}");
            assert!(
                lazy.folded_words()
                    .eq(super::super::fold::folded_words(&whole)),
                "{html:?}"
            );
        }
        assert!(SanitizedBody::new(deep).parsed.is_some());
    }

    #[test]
    fn sanitize_drops_script_handlers_and_bad_urls() {
        let base = Url::parse("https://ex.kz/news/a").unwrap();
        let out = sanitize(
            "<p onclick=\"x()\">Hi <a href=\"/b?utm_source=x&amp;id=2\">b</a>\
             <a href=\"javascript:alert(1)\">j</a><img src=\"p.jpg\" srcset=\"p2.jpg 2x, javascript:x 3x\">\
             <script>alert(1)</script><iframe src=\"https://evil\"></iframe></p>",
            Some(&base),
        );
        assert!(
            !out.contains("onclick") && !out.contains("script") && !out.contains("iframe"),
            "{out}"
        );
        assert!(!out.contains("javascript"), "{out}");
        assert!(out.contains("href=\"https://ex.kz/b?id=2\""), "{out}");
        assert!(out.contains("rel=\"noopener noreferrer\""), "{out}");
        assert!(out.contains("src=\"https://ex.kz/news/p.jpg\""), "{out}");
        assert!(
            out.contains("srcset=\"https://ex.kz/news/p2.jpg 2x\""),
            "{out}"
        );
    }

    #[test]
    fn only_video_embeds_survive() {
        let out = sanitize(
            "<iframe src=\"https://www.youtube.com/embed/x\" onload=\"y()\"></iframe>\
             <iframe src=\"https://evil.example/\"></iframe><iframe src=\"javascript:x\"></iframe>",
            None,
        );
        assert!(
            out.contains("<iframe src=\"https://www.youtube.com/embed/x\"></iframe>"),
            "{out}"
        );
        assert!(
            !out.contains("evil") && !out.contains("javascript") && !out.contains("onload"),
            "{out}"
        );
    }

    /// The controls are XML's forbidden characters and DEL: every char, against the set
    /// written out.
    #[test]
    fn controls_are_the_c0_but_white_space_del_and_two_non_characters() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let written = (c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
                || matches!(c, '\u{7f}' | '\u{fffe}' | '\u{ffff}');
            assert_eq!(is_control(c), written, "{:?}", c);
        }
    }

    #[test]
    fn an_iframe_is_kept_only_with_its_own_src() {
        for html in [
            "<iframe width=\" src=\"></iframe>",
            "<iframe src=\"https://evil.example/\" title=\" src=\"></iframe>",
            "<p><iframe title=\"x src=y\"></iframe></p>",
        ] {
            for base in [None, Some(Url::parse("https://ex.kz/news/a").unwrap())] {
                let out = sanitize(html, base.as_ref());
                assert_eq!(first_unsafe_markup(&out), None, "{html:?}: {out:?}");
                assert!(!out.contains("iframe"), "{html:?}: {out:?}");
            }
        }
        assert!(has_src(
            "<iframe src=\"https://www.youtube.com/embed/x\" title=\"t\""
        ));
        assert!(!has_src("<iframe title=\" src=\" width=\"1\""));
    }

    #[test]
    fn relative_urls_without_base_are_dropped() {
        let out = sanitize("<a href=\"/x\">x</a>", None);
        assert!(!out.contains("href"), "{out}");
    }

    #[test]
    fn text_keeps_block_boundaries() {
        assert_eq!(
            text_of(
                "<h1>T&amp;C</h1><p>One  <b>two</b></p><ul><li>a</li><li>b</li></ul><script>x</script>"
            ),
            "T&C\n\nOne two\n\na\n\nb"
        );
        assert_eq!(text_of("a<br>b&nbsp;c"), "a\nb c");
    }

    #[test]
    fn deep_nesting_is_flattened() {
        let deep = format!("{}x{}", "<div>".repeat(1000), "</div>".repeat(1000));
        let flat = limit_nesting(&deep, 3);
        assert_eq!(flat, "<div><div><div>x</div></div></div>");
        assert!(matches!(
            limit_nesting("<p>a<br>b</p>", 3),
            Cow::Borrowed(_)
        ));
        assert_eq!(text_of(&deep), "x");
    }

    #[test]
    fn html_or_text() {
        assert!(looks_like_html("<p>x</p>"));
        assert!(looks_like_html("Tom &amp; Jerry"));
        assert!(looks_like_html("&#8212; and &#x2014;"));
        assert!(!looks_like_html("AT&T profits & losses; 3 < 4"));
    }

    #[test]
    fn plain_text_becomes_paragraphs() {
        assert_eq!(
            plain_to_html("A <b>\nB\n\n\nC"),
            "<p>A &lt;b&gt;<br>B</p>\n<p>C</p>"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The byte scan finds what a scan of the characters finds, wherever in a long text
        /// the control is.
        #[test]
        fn has_control_is_any_control_char(
            s in "([a-zа-я \u{feff}\u{ff01}\u{fffd}]{0,90}[\x01-\x1f\x7f\u{fffe}\u{ffff}\t\n\r]?){0,3}"
        ) {
            proptest::prop_assert_eq!(has_control(&s), s.chars().any(is_control));
        }

        /// Plain text takes the quick path; it must read as the parse reads it (any char,
        /// controls, line breaks and spaces of every kind included).
        #[test]
        fn plain_text_reads_as_the_parse_reads_it(
            s in proptest::prop_oneof![
                "([\\PC\\s\\x01-\\x1f\\x7f-\\u{9f}\\u{fffe}\\u{2028}\\u{a0}]|\n){0,40}",
                "([\\PC\\s]|\n|\r|\\x00|\u{feff}|&amp;|<b>){0,20}",
            ]
        ) {
            proptest::prop_assert_eq!(text_of(&s), parsed_text_of(&s));
        }
    }
}
