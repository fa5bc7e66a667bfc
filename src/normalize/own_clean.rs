//! The sanitiser's quick path: markup in the narrow shape the body rules write, cleaned in one
//! linear pass into exactly what ammonia's parse, clean and serialisation give.
//!
//! ammonia parses a fragment into a tree, unwraps or drops what its allow-list does not name,
//! filters the attributes and writes the tree out again. Where the tags nest so that an HTML
//! parser builds exactly the tree they spell (every element closed in order, and each one only
//! where the tree builder neither closes, moves nor adds an element for it), the tree is the
//! tokens, and cleaning it is a walk over them. [`clean`] is that walk; it gives `None` for
//! anything else, and the caller runs ammonia as before. What it accepts:
//!
//! - start tags `<name>`, `<name attr="value" bare>` with lower-case names of the elements in
//!   [`kind`] (all on the allow-list) and attribute names of `[a-z0-9_:.-]`, each once;
//! - end tags `</name>` closing the innermost open element;
//! - text and attribute values with no character references but `&amp;` `&lt;` `&gt;`
//!   `&quot;` `&nbsp;`, and no NUL (a parser drops or replaces it; CRs are read as LFs, as a
//!   parser reads them);
//! - elements only inside parents that a parser leaves them in ([`fits`]): phrasing inside
//!   phrasing, blocks only inside blocks that take blocks, list items in lists, table parts in
//!   their tables (no `<tbody>` left for the parser to add), no link inside a link, white space
//!   only where a parser would move other text out of a table, no newline straight after
//!   `<pre>` (a parser drops one there), iframes empty (their content is raw text);
//! - everything closed at the end.
//!
//! Since every element is closed in order, the parser's list of active formatting elements
//! (`a`, `b`, `em`…) only ever holds elements that are open: an end tag always closes the
//! current node, the adoption agency has nothing to move, nothing is reconstructed, and the
//! "Noah's Ark" limit of three equal entries only drops entries whose end tags then close the
//! current node all the same.
//!
//! The attributes then go through ammonia's steps in ammonia's order, with the same filters
//! ([`super::html`]'s): the allow-list and the scheme test of URL attributes, `rel` added to
//! links, the attribute filter (which drops with `swap_remove`, so the order it leaves is
//! ammonia's), and relative URLs resolved. The output is written as html5ever serialises a
//! tree: attribute values double-quoted with `&amp;` `&quot;` `&lt;` `&gt;` `&nbsp;`, text with
//! `&amp;` `&lt;` `&gt;` `&nbsp;`.
//!
//! Only allow-listed names reach the output, every value is escaped here and every URL passes
//! the same filters, so a misreading in this module could make the output differ from
//! ammonia's, not unsafe. Debug builds check every call against ammonia (`html::sanitize`), and
//! property tests hold both to each other over hostile markup.

use std::borrow::Cow;

use url::Url;

use super::html::{Allowed, filter_attribute};

/// How an element of the allow-list takes part in the tree: what a parser lets it hold and
/// where it lets it stand.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Phrasing elements with content: `a`, `b`, `span`, `code`…
    Inline,
    /// Void phrasing elements: `br`, `img`, `wbr`.
    VoidInline,
    /// `iframe`: its content is raw text, so only an empty one is taken.
    Iframe,
    /// `p` and `h1`-`h6`: phrasing content (a block start tag would close them).
    Para,
    /// `pre`: phrasing content; a parser drops a newline that starts it.
    Pre,
    /// Blocks that hold flow content: `div`, `blockquote`, `figure`…
    Flow,
    /// `ul`, `ol`: list items only.
    List,
    /// `li`.
    Item,
    /// `dl`: terms and descriptions only.
    Terms,
    /// `dt`, `dd`.
    Term,
    /// `hr`.
    Rule,
    Table,
    Caption,
    ColGroup,
    Col,
    /// `thead`, `tbody` (`tfoot` is not on the allow-list).
    RowGroup,
    Row,
    /// `td`, `th`.
    Cell,
}

/// The kind of an element this path takes, or `None` (not on the allow-list, or parsed in a
/// way this path does not follow: `ruby` and its parts, `map`/`area`).
fn kind(name: &str) -> Option<Kind> {
    use Kind::*;
    Some(match name {
        "a" | "abbr" | "acronym" | "b" | "bdi" | "bdo" | "cite" | "code" | "data" | "del"
        | "dfn" | "em" | "i" | "ins" | "kbd" | "mark" | "q" | "s" | "samp" | "small" | "span"
        | "strike" | "strong" | "sub" | "sup" | "time" | "tt" | "u" | "var" => Inline,
        "br" | "img" | "wbr" => VoidInline,
        "iframe" => Iframe,
        "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => Para,
        "pre" => Pre,
        "div" | "blockquote" | "article" | "aside" | "header" | "footer" | "nav" | "center"
        | "figure" | "figcaption" | "details" | "summary" | "hgroup" => Flow,
        "ul" | "ol" => List,
        "li" => Item,
        "dl" => Terms,
        "dt" | "dd" => Term,
        "hr" => Rule,
        "table" => Table,
        "caption" => Caption,
        "colgroup" => ColGroup,
        "col" => Col,
        "thead" | "tbody" => RowGroup,
        "tr" => Row,
        "td" | "th" => Cell,
        _ => return None,
    })
}

/// Whether a parser puts an element of kind `child` where it is written, inside `parent`
/// (`None`: the fragment's root, a `<div>`), building, closing and moving no other element.
///
/// Phrasing holds only phrasing, so no block ever has a `p`, a heading or a phrasing element
/// above it (their start tags would close an open `p` or heading, and a list item's would
/// close an item further up); list items, terms and table parts stand only in their own
/// parents (a `<tr>` straight in a `<table>` would get a `<tbody>` made for it).
fn fits(parent: Option<Kind>, child: Kind) -> bool {
    use Kind::*;
    let flow = matches!(
        child,
        Inline | VoidInline | Iframe | Para | Pre | Flow | List | Terms | Rule | Table
    );
    match parent {
        None | Some(Flow | Item | Term | Cell) => flow,
        Some(Caption) => flow && child != Table,
        Some(Inline | Para | Pre) => matches!(child, Inline | VoidInline | Iframe),
        Some(List) => child == Item,
        Some(Terms) => child == Term,
        Some(Table) => matches!(child, Caption | ColGroup | RowGroup),
        Some(ColGroup) => child == Col,
        Some(RowGroup) => child == Row,
        Some(Row) => child == Cell,
        Some(VoidInline | Iframe | Rule | Col) => false,
    }
}

/// Whether text stays where it is written inside `parent`: in a table outside its cells and
/// caption a parser moves everything but ASCII white space out in front of the table.
fn text_fits(parent: Option<Kind>, text: &str) -> bool {
    use Kind::*;
    match parent {
        Some(Table | RowGroup | Row | ColGroup) => text
            .bytes()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\x0c')),
        _ => true,
    }
}

/// The `rel` ammonia gives every link.
pub(super) const LINK_REL: &str = "noopener noreferrer";

/// `html` cleaned as ammonia cleans it with the allow-list `allowed`, relative URLs resolved
/// against `base` (dropped without one); `None` when the markup is not of the shape described
/// in the module's notes (the caller then runs ammonia). The result is not trimmed.
pub(super) fn clean(html: &str, base: Option<&Url>, allowed: &Allowed) -> Option<String> {
    // A parser drops a byte-order mark that starts its input and NULs in text (in values it
    // replaces them); CRs it reads as LFs, before anything else, as here.
    if html.starts_with('\u{feff}') || html.contains('\0') {
        return None;
    }
    let html = &*newlines(html);
    let b = html.as_bytes();
    let mut out = String::with_capacity(html.len() + html.len() / 4);
    let mut open: Vec<(&str, Kind)> = Vec::new();
    let mut links = 0usize;
    let mut after_pre = false;
    let mut at = 0;
    while at < b.len() {
        if b[at] != b'<' {
            let end = html[at..].find('<').map_or(html.len(), |e| at + e);
            let text = &html[at..end];
            if (after_pre && text.starts_with('\n')) || !text_fits(open.last().map(|o| o.1), text) {
                return None;
            }
            escape_text(text, &mut out)?;
            after_pre = false;
            at = end;
            continue;
        }
        after_pre = false;
        if b.get(at + 1) == Some(&b'/') {
            let end = at + html[at..].find('>')?;
            let name = &html[at + 2..end];
            let (innermost, _) = open.pop()?;
            if name != innermost {
                return None;
            }
            if name == "a" {
                links -= 1;
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
            at = end + 1;
            continue;
        }
        let name_end = at
            + 1
            + b[at + 1..]
                .iter()
                .position(|c| !c.is_ascii_lowercase() && !c.is_ascii_digit())?;
        let name = &html[at + 1..name_end];
        let k = kind(name)?;
        if !fits(open.last().map(|o| o.1), k) || (name == "a" && links > 0) {
            return None;
        }
        let (attrs, end) = attributes(html, name_end)?;
        start_tag(name, attrs, base, allowed, &mut out);
        at = end;
        match k {
            Kind::VoidInline | Kind::Rule | Kind::Col => {}
            Kind::Iframe => {
                let close = "</iframe>";
                if !html[at..].starts_with(close) {
                    return None;
                }
                out.push_str(close);
                at += close.len();
            }
            _ => {
                if name == "a" {
                    links += 1;
                }
                after_pre = k == Kind::Pre;
                open.push((name, k));
            }
        }
    }
    open.is_empty().then_some(out)
}

/// CR LF and CR as LF, as a parser's input stream reads them.
fn newlines(html: &str) -> Cow<'_, str> {
    if html.contains('\r') {
        Cow::Owned(html.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(html)
    }
}

/// An element's attributes, in order, values decoded.
type Attrs<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// The attributes of the start tag whose name ends at `at`, and where the tag ends: ` name="value"`
/// or ` name` each, then `>`. `None` for anything else (a repeated name included: a parser keeps
/// the first).
fn attributes(html: &str, mut at: usize) -> Option<(Attrs<'_>, usize)> {
    let b = html.as_bytes();
    let mut attrs: Attrs<'_> = Vec::new();
    loop {
        match b.get(at)? {
            b'>' => return Some((attrs, at + 1)),
            b' ' => at += 1,
            _ => return None,
        }
        let len = b[at..]
            .iter()
            .position(|c| !is_name_byte(*c))
            .unwrap_or(b.len() - at);
        if len == 0 {
            return None;
        }
        let name = &html[at..at + len];
        at += len;
        let value = match b.get(at)? {
            b'=' if b.get(at + 1) == Some(&b'"') => {
                let start = at + 2;
                let end = start + html[start..].find('"')?;
                at = end + 1;
                decode(&html[start..end])?
            }
            b' ' | b'>' => Cow::Borrowed(""),
            _ => return None,
        };
        if attrs.iter().any(|(n, _)| *n == name) {
            return None;
        }
        attrs.push((name, value));
    }
}

/// Whether a byte may stand in an attribute name this path reads: lower-case letters, digits
/// and `_:.-`, of which every name on the allow-list is made.
pub(super) fn is_name_byte(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b':' | b'.' | b'-')
}

/// Text or a value with its references decoded; `None` for a reference other than ours.
fn decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('&') {
        return Some(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let (c, len) = reference(&rest[at..])?;
        out.push(c);
        rest = &rest[at + len..];
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
}

/// The character the reference at the start of `s` stands for and its length.
fn reference(s: &str) -> Option<(char, usize)> {
    [
        ("&amp;", '&'),
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&quot;", '"'),
        ("&nbsp;", '\u{a0}'),
    ]
    .into_iter()
    .find(|(r, _)| s.starts_with(r))
    .map(|(r, c)| (c, r.len()))
}

/// Appends our escaped text as html5ever writes text: its references decoded (`None` for one
/// that is not ours), then `&`, `<`, `>` and U+00A0 escaped.
fn escape_text(s: &str, out: &mut String) -> Option<()> {
    let b = s.as_bytes();
    let mut copied = 0;
    let mut at = 0;
    while let Some(off) = b[at..]
        .iter()
        .position(|c| matches!(c, b'&' | b'>' | b'<' | 0xc2))
    {
        let i = at + off;
        let (c, len) = match b[i] {
            b'&' => reference(&s[i..])?,
            // Another character of U+0080..U+00BF: copied with the run.
            0xc2 if b.get(i + 1) != Some(&0xa0) => {
                at = i + 1;
                continue;
            }
            0xc2 => ('\u{a0}', 2),
            c => (char::from(c), 1),
        };
        out.push_str(&s[copied..i]);
        out.push_str(match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "\"",
            _ => "&nbsp;",
        });
        at = i + len;
        copied = at;
    }
    out.push_str(&s[copied..]);
    Some(())
}

/// Appends an attribute value (decoded) as html5ever writes one: `&`, `"`, `<`, `>` and
/// U+00A0 escaped.
fn escape_value(s: &str, out: &mut String) {
    let mut rest = s;
    while let Some(at) = rest.find(['&', '"', '<', '>', '\u{a0}']) {
        out.push_str(&rest[..at]);
        let c = rest[at..].chars().next().unwrap_or_default();
        out.push_str(match c {
            '&' => "&amp;",
            '"' => "&quot;",
            '<' => "&lt;",
            '>' => "&gt;",
            _ => "&nbsp;",
        });
        rest = &rest[at + c.len_utf8()..];
    }
    out.push_str(rest);
}

/// Whether ammonia treats `attr` of `element` as a URL (`is_url_attr`, for HTML elements).
fn is_url_attr(element: &str, attr: &str) -> bool {
    matches!(attr, "href" | "xlink:href" | "src")
        || (element == "form" && attr == "action")
        || (element == "object" && attr == "data")
        || (matches!(element, "button" | "input") && attr == "formaction")
        || (element == "a" && attr == "ping")
        || (element == "video" && attr == "poster")
}

/// Whether a URL parses as relative (no scheme): a value starting with one of the schemes the
/// filters write is not, without a parse.
fn is_relative(url: &str) -> bool {
    if ["https://", "http://", "mailto:"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        return false;
    }
    matches!(
        Url::parse(url),
        Err(url::ParseError::RelativeUrlWithoutBase)
    )
}

/// Writes a start tag with its attributes cleaned by ammonia's steps, in ammonia's order.
fn start_tag(
    name: &str,
    mut attrs: Attrs<'_>,
    base: Option<&Url>,
    allowed: &Allowed,
    out: &mut String,
) {
    // The allow-list, and the scheme of URL attributes (relative ones stay when there is a base
    // to resolve them against).
    attrs.retain(|(attr, value)| {
        allowed.attribute(name, attr)
            && (!is_url_attr(name, attr)
                || match Url::parse(value) {
                    Ok(u) => allowed.scheme(u.scheme()),
                    Err(url::ParseError::RelativeUrlWithoutBase) => base.is_some(),
                    Err(_) => false,
                })
    });
    if name == "a" {
        attrs.push(("rel", Cow::Borrowed(LINK_REL)));
    }
    // The attribute filter; ammonia drops with `swap_remove`, last first.
    let mut dropped = Vec::new();
    for (i, (attr, value)) in attrs.iter_mut().enumerate() {
        match filter_attribute(name, attr, value, base) {
            None => dropped.push(i),
            Some(Cow::Owned(new)) if new != *value => *value = Cow::Owned(new),
            Some(_) => {}
        }
    }
    for i in dropped.into_iter().rev() {
        attrs.swap_remove(i);
    }
    // Relative URLs the filter left: resolved against the base, or dropped.
    let mut dropped = Vec::new();
    for (i, (attr, value)) in attrs.iter_mut().enumerate() {
        if is_url_attr(name, attr) && is_relative(value) {
            match base.and_then(|b| b.join(value).ok()) {
                Some(u) => *value = Cow::Owned(u.to_string()),
                None => dropped.push(i),
            }
        }
    }
    for i in dropped.into_iter().rev() {
        attrs.swap_remove(i);
    }
    out.push('<');
    out.push_str(name);
    for (attr, value) in &attrs {
        out.push(' ');
        out.push_str(attr);
        out.push_str("=\"");
        escape_value(value, out);
        out.push('"');
    }
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::html::{ALLOWED, by_ammonia, first_unsafe_markup, sanitize};
    use proptest::prelude::*;

    fn base() -> Url {
        Url::parse("https://ex.kz/news/a").unwrap()
    }

    /// The quick path takes `html` and gives ammonia's result, with a base and without.
    fn same_as_ammonia(html: &str) {
        for base in [Some(base()), None] {
            let quick = clean(html, base.as_ref(), &ALLOWED);
            assert_eq!(
                quick.as_deref(),
                Some(by_ammonia(html, base.as_ref()).as_str()),
                "{html:?} with base {base:?}"
            );
        }
    }

    #[test]
    fn every_kind_is_on_the_allow_list() {
        let b = super::super::html::builder();
        let tags = b.clone_tags();
        for &n in TAKEN_NAMES {
            assert!(kind(n).is_some() && tags.contains(n), "{n}");
            // ammonia keeps it (an allowed name that is also an SVG or MathML one would go).
            let el = if kind(n) == Some(Kind::VoidInline) || n == "hr" || n == "col" {
                format!("<{n}>")
            } else {
                format!("<{n}></{n}>")
            };
            let wrapped = match kind(n).unwrap() {
                Kind::Item => format!("<ul>{el}</ul>"),
                Kind::Term => format!("<dl>{el}</dl>"),
                Kind::Caption | Kind::ColGroup | Kind::RowGroup => format!("<table>{el}</table>"),
                Kind::Col => format!("<table><colgroup>{el}</colgroup></table>"),
                Kind::Row => format!("<table><tbody>{el}</tbody></table>"),
                Kind::Cell => format!("<table><tbody><tr>{el}</tr></tbody></table>"),
                _ => el,
            };
            same_as_ammonia(&wrapped);
        }
        // ammonia's other settings are the ones the quick path assumes.
        assert!(b.clone_generic_attribute_prefixes().is_none());
        assert!(b.clone_tag_attribute_values().is_empty());
        assert!(b.clone_set_tag_attribute_values().is_empty());
        assert!(b.clone_allowed_classes().is_empty());
        assert!(b.will_strip_comments());
        assert_eq!(
            by_ammonia("<a>x</a>", None),
            format!("<a rel=\"{LINK_REL}\">x</a>")
        );
    }

    #[test]
    fn the_body_rules_shapes_are_taken() {
        same_as_ammonia(
            "<h2>T&amp;C &lt;now&gt;</h2>\n<p>One\u{a0}two &nbsp;&quot;three&quot; <a href=\"/b?utm_source=x&amp;id=2\" title=\"a &quot;b&quot;\">b</a> \
             <b>bold <i>it</i></b><br>next</p>\n<ul><li>a</li><li><code>b</code></li></ul>\n\
             <figure><img src=\"p.jpg\" srcset=\"p2.jpg 2x, javascript:x 3x\" alt=\"A\u{a0}&lt;b\" width=\"10\"><figcaption>Photo: «x» §</figcaption></figure>\n\
             <iframe src=\"https://www.youtube.com/embed/x\" allowfullscreen></iframe>\n\
             <blockquote><p>q</p><ol><li><p>x</p><ul><li>y</li></ul></li></ol></blockquote>\n\
             <table><caption>c</caption><thead><tr><th>h</th></tr></thead>\n<tbody> <tr><td><p>d</p><table><tbody><tr><td>e</td></tr></tbody></table></td></tr></tbody></table>\n\
             <dl><dt>t</dt><dd>d</dd></dl><pre>a\n b</pre><hr><details><summary>s</summary>x</details>",
        );
    }

    #[test]
    fn attributes_go_through_ammonias_steps_in_its_order() {
        for html in [
            // Dropped by the filter (swap_remove brings the last forward).
            "<a href=\"javascript:x\" title=\"t\" hreflang=\"en\">x</a>",
            "<a title=\"t\" href=\"ftp://x\">x</a>",
            "<a href=\"mailto:a@b\">m</a><a href=\" mailto:a@b\">m</a>",
            // A mailto: after a space that is not a URL parser's: relative, resolved.
            "<a href=\"\u{a0}mailto:a@b\">m</a>",
            "<a href=\"//cdn.ex/x\" class=\"c\" onclick=\"y()\" style=\"s\">x</a>",
            "<a href=\"http://[bad\">x</a><img src=\"\" alt=\"\">",
            "<img src=\"data:x\" srcset=\"a.jpg, b.jpg 2x\" loading=\"lazy\" lang=\"en\" dir=\"rtl\">",
            "<iframe src=\"https://evil.example/\" title=\"t\"></iframe>",
            "<iframe src=\"/embed/x\" allowfullscreen></iframe>",
            "<q cite=\"/c\">q</q><blockquote cite=\"javascript:x\">b</blockquote><del cite=\"x\" datetime=\"d\">d</del>",
            "<ol start=\"3\" reversed><li>x</li></ol><td>x</td>",
            "<span xml:lang=\"en\" data-x=\"1\" id=\"i\">x</span><bdo dir=\"ltr\">b</bdo>",
        ] {
            for base in [Some(base()), None] {
                if let Some(quick) = clean(html, base.as_ref(), &ALLOWED) {
                    assert_eq!(quick, by_ammonia(html, base.as_ref()), "{html:?}");
                }
            }
        }
        same_as_ammonia("<a href=\"javascript:x\" title=\"t\" hreflang=\"en\">x</a>");
        same_as_ammonia("<a href=\"\u{a0}mailto:a@b\">m</a>");
    }

    #[test]
    fn markup_a_parser_would_rebuild_is_left_to_ammonia() {
        for html in [
            "<p><div>x</div></p>",
            "<p>a<p>b</p></p>",
            "<h2><h3>x</h3></h2>",
            "<a href=\"https://x\"><a href=\"https://y\">x</a></a>",
            "<b><p>x</p></b>",
            "<li>x</li>",
            "<ul><li><div><li>x</li></div></li></ul>",
            "<dd>x</dd>",
            "<table><tr><td>x</td></tr></table>",
            "<table>x<tbody></tbody></table>",
            "<table><tbody><tr>\u{a0}</tr></tbody></table>",
            "<table><col></table>",
            "<table><caption><table></table></caption></table>",
            "<pre>\nx</pre>",
            "<iframe src=\"https://www.youtube.com/embed/x\">x</iframe>",
            "<iframe src=\"https://www.youtube.com/embed/x\">",
            "<p>x",
            "<p>x</b>",
            "</p>",
            "<section>x</section>",
            "<ruby>x<rt>y</rt></ruby>",
            "<script>x</script>",
            "<P>x</P>",
            "<p >x</p>",
            "<br/>",
            "<img src=x>",
            "<img src='x'>",
            "<img src=\"x\"src=\"y\">",
            "<img src=\"x\" src=\"y\">",
            "<img alt =\"x\">",
            "<img data-@=\"x\">",
            "<p>&copy;</p>",
            "<p>&amp</p>",
            "<img alt=\"&#39;\">",
            "<p>a\0b</p>",
            "\u{feff}<p>x</p>",
            "<!-- c --><p>x</p>",
            "a < b",
            "<p>x</p",
        ] {
            assert_eq!(clean(html, None, &ALLOWED), None, "{html:?}");
        }
        // Text straight inside a list stays where it is.
        same_as_ammonia("<ul>x<li>y</li> </ul><dl> <dt>t</dt></dl>");
        same_as_ammonia("<pre><b>\n</b>x</pre><pre>x\n</pre>");
        // CRs are read as a parser reads them, in text and in values.
        same_as_ammonia("<p>a\r\nb\rc</p><img alt=\"x\ry\r\n\">");
        assert_eq!(clean("<pre>\r\nx</pre>", None, &ALLOWED), None);
    }

    /// Every body of the sample feeds and the normalisation fixtures, as the body rules write
    /// it, is taken: the quick path is the one real feeds take.
    #[test]
    fn the_sample_feeds_bodies_are_taken() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = [
            "feeds",
            "tests/fixtures/normalize/summit",
            "tests/fixtures/parse/formats",
        ]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "xml" || e == "json" || e == "rdf")
        })
        .filter(|p| !p.to_string_lossy().ends_with(".expected.json"))
        .collect();
        files.sort();
        let rules = super::super::body::BodyRules {
            title: "",
            strip_patterns: &[],
            remove_selectors: &[],
        };
        let mut bodies = 0;
        for path in &files {
            let text = crate::decode::decode(&std::fs::read(path).unwrap(), None).text;
            let feed =
                crate::parse::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for it in &feed.items {
                for (source, is_html) in [
                    (&it.content, it.content_is_html),
                    (&it.summary, it.summary_is_html),
                ] {
                    let Some(source) = source else { continue };
                    let b = super::super::body::normalize_body(source, is_html, &rules);
                    assert!(
                        clean(&b.html, Some(&base()), &ALLOWED).is_some(),
                        "{}: {:?}",
                        path.display(),
                        b.html
                    );
                    bodies += 1;
                }
            }
        }
        assert!(bodies > 20, "{bodies} bodies in {files:?}");
    }

    /// The elements the quick path takes.
    #[rustfmt::skip]
    const TAKEN_NAMES: &[&str] = &[
        "a", "abbr", "acronym", "b", "bdi", "bdo", "cite", "code", "data", "del", "dfn", "em",
        "i", "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub",
        "sup", "time", "tt", "u", "var", "br", "img", "wbr", "iframe", "p", "h1", "h2", "h3",
        "h4", "h5", "h6", "pre", "div", "blockquote", "article", "aside", "header", "footer",
        "nav", "center", "figure", "figcaption", "details", "summary", "hgroup", "ul", "ol", "li",
        "dl", "dt", "dd", "hr", "table", "caption", "colgroup", "col", "thead", "tbody", "tr",
        "td", "th",
    ];

    /// Elements the generator nests beside those: some it leaves to ammonia.
    const OTHER_NAMES: &[&str] = &["section", "tfoot", "font", "ruby", "rt", "script", "main"];

    fn attribute() -> impl Strategy<Value = String> {
        let names = prop::sample::select(vec![
            "href",
            "src",
            "title",
            "lang",
            "dir",
            "class",
            "style",
            "onclick",
            "srcset",
            "alt",
            "width",
            "hreflang",
            "cite",
            "allowfullscreen",
            "rel",
            "id",
            "data-x",
            "xml:lang",
            "loading",
            "start",
            "datetime",
            "ping",
        ]);
        let values = prop::sample::select(vec![
            "https://ex.com/a?utm_source=x&amp;b=1",
            "/rel",
            "rel/x?y=1#z",
            "javascript:alert(1)",
            " mailto:x@y",
            "\u{a0}mailto:x",
            "mailto:x@y",
            "//cdn.ex/x.jpg",
            "x.jpg 2x, https://e.x/y.jpg 3x, javascript:z 4x",
            "https://www.youtube.com/embed/x",
            "https://player.vimeo.com/video/1",
            "&quot;q&quot; &lt;b&gt;",
            "",
            "a\u{a0}b&amp;c",
            "http://[bad",
            "data:image/png;base64,xx",
            "HTTPS://EX.COM/A",
            "ftp://ex.com/",
            "&copy;",
            "x'y>z",
        ]);
        // Anything at all, now and then: the tokenizer must turn away what it cannot read.
        let any_value = "[a-zA-Z0-9:/.?#&;=\"' <>\u{a0}%\t\n@,-]{0,24}";
        prop_oneof![
            4 => (names.clone(), values).prop_map(|(n, v)| format!(" {n}=\"{v}\"")),
            1 => (names.clone(), any_value).prop_map(|(n, v)| format!(" {n}=\"{v}\"")),
            1 => names.prop_map(|n| format!(" {n}")),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => prop::sample::select(vec![
                "a b", "&amp;", "&lt;x&gt;", "\u{a0}", "&nbsp;", "&quot;", "\n", " ", "\t",
                "x>y", "«§»", "é", "ж", "&copy;", "'", "\"", "\n x", "\u{c}",
            ])
            .prop_map(str::to_string),
            1 => "[a-z&;#<>/=\"' \u{a0}\u{1}\r\n\u{feff}\u{80}-\u{bf}]{0,12}",
        ]
    }

    /// Markup of nested elements, mostly of the quick path's shape, some not.
    fn markup() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            3 => text(),
            1 => (prop::sample::select(vec!["br", "img", "wbr", "hr", "col"]), prop::collection::vec(attribute(), 0..3))
                .prop_map(|(n, a)| format!("<{n}{}>", a.concat())),
        ];
        leaf.prop_recursive(5, 60, 5, |inner| {
            (
                prop::sample::select([TAKEN_NAMES, OTHER_NAMES].concat()),
                prop::collection::vec(attribute(), 0..4),
                prop::collection::vec(inner, 0..5),
            )
                .prop_map(|(n, a, kids)| {
                    if matches!(n, "br" | "img" | "wbr" | "hr" | "col") {
                        format!("<{n}{}>{}", a.concat(), kids.concat())
                    } else if n == "iframe" {
                        format!("<{n}{}></{n}>", a.concat())
                    } else {
                        format!("<{n}{}>{}</{n}>", a.concat(), kids.concat())
                    }
                })
        })
    }

    /// The generated markup wrapped so its parts stand where they fit (an `li` in a list, a
    /// `td` in a row…) often enough for the quick path to take it.
    fn placed() -> impl Strategy<Value = String> {
        (markup(), 0..4usize).prop_map(|(m, wrap)| match wrap {
            0 => m,
            1 => format!("<ul><li>{m}</li></ul>"),
            2 => format!("<table><tbody><tr><td>{m}</td></tr></tbody></table>"),
            _ => format!("<div>{m}</div>\n<p>x</p>"),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// What the quick path takes it cleans into ammonia's output, which is safe.
        #[test]
        fn taken_markup_is_cleaned_as_ammonia_cleans_it(html in placed(), with_base in any::<bool>()) {
            let base = with_base.then(base);
            if let Some(quick) = clean(&html, base.as_ref(), &ALLOWED) {
                prop_assert_eq!(&quick, &by_ammonia(&html, base.as_ref()));
                // (An iframe the filter left without a source goes after cleaning.)
                prop_assert_eq!(first_unsafe_markup(&sanitize(&html, base.as_ref())), None);
            }
        }
    }

    /// The generator gives the property test markup the quick path takes, often: a sample of
    /// a fixed seed is taken more than a tenth of the time (a fifth when written).
    #[test]
    fn the_property_test_exercises_the_quick_path() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        let strategy = placed();
        let n = 2000;
        let taken = (0..n)
            .filter(|_| {
                let html = strategy.new_tree(&mut runner).unwrap().current();
                clean(&html, None, &ALLOWED).is_some()
            })
            .count();
        assert!(taken * 10 > n, "{taken} of {n}");
    }
}
