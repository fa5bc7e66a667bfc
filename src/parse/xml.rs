//! A forgiving XML reader: `&str → Document`, a small element tree that the RSS and Atom mappers
//! walk. It is built on quick-xml's event loop (the fastest XML path measured) and repairs what
//! real feeds break, instead of failing the whole document:
//!
//! * a bare `&` (`?id=1&lang=ru`) is kept as text, never read as an entity (`&lang` is not `〈`);
//! * HTML named entities XML does not define (`&nbsp;`, `&mdash;`, ...) are decoded; names nobody
//!   defines stay literal (`&foo;`);
//! * entities declared in a DTD are never expanded and nothing external is ever fetched (no
//!   "billion laughs", no XXE): such a reference stays literal text;
//! * characters XML forbids (C0 controls, U+FFFE, U+FFFF) are dropped;
//! * mismatched end tags close the nearest open element of that name (or are ignored);
//! * a document cut off or broken midway keeps everything read before the break: elements that
//!   were never closed are marked incomplete (the mappers drop incomplete items), and
//!   [`Document::error`] says where it broke.
//!
//! Namespaces are resolved to short keys ([`Ns`]); well-known prefixes used without a declaration
//! (`<media:content>` with no `xmlns:media`) are bound to their usual namespace. `xml:base` and
//! `xml:lang` are inherited and resolved per element, so an entry's own `xml:base` is honoured.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use url::Url;

use super::Limits;

/// The namespaces feed mappers care about, by role rather than by URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// No namespace, or one of the RSS namespaces (0.90, 1.0, the Userland 2.0 one).
    Rss,
    /// Atom 1.0.
    Atom,
    /// Atom 0.3 and its pre-release names (`purl.org/echo`, `purl.org/pie`, ...).
    Atom03,
    Rdf,
    Dc,
    DcTerms,
    Content,
    Media,
    Xhtml,
    Sy,
    Itunes,
    Xml,
    Other,
}

fn ns_of_uri(uri: &str) -> Ns {
    let u = uri.trim();
    match u {
        "" => Ns::Rss,
        "http://www.w3.org/2005/Atom" => Ns::Atom,
        "http://purl.org/atom/ns#"
        | "http://example.com/newformat#"
        | "http://example.com/necho"
        | "http://purl.org/echo/"
        | "uri/of/echo/namespace#"
        | "http://purl.org/pie/" => Ns::Atom03,
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#" => Ns::Rdf,
        "http://purl.org/dc/elements/1.1/" | "http://purl.org/dc/elements/1.0/" => Ns::Dc,
        "http://purl.org/dc/terms/" => Ns::DcTerms,
        "http://purl.org/rss/1.0/modules/content/" => Ns::Content,
        "http://www.w3.org/1999/xhtml" => Ns::Xhtml,
        "http://purl.org/rss/1.0/modules/syndication/" => Ns::Sy,
        "http://www.itunes.com/dtds/podcast-1.0.dtd" => Ns::Itunes,
        "http://www.w3.org/XML/1998/namespace" => Ns::Xml,
        "http://purl.org/rss/1.0/"
        | "http://my.netscape.com/rdf/simple/0.9/"
        | "http://backend.userland.com/rss2"
        | "http://backend.userland.com/rss" => Ns::Rss,
        _ if u.starts_with("http://search.yahoo.com/mrss")
            || u.starts_with("https://search.yahoo.com/mrss") =>
        {
            Ns::Media
        }
        _ => Ns::Other,
    }
}

/// Prefixes feeds use without declaring them, bound to what they always mean.
fn ns_of_prefix(prefix: &str) -> Ns {
    match prefix {
        "dc" => Ns::Dc,
        "dcterms" => Ns::DcTerms,
        "content" => Ns::Content,
        "media" => Ns::Media,
        "atom" | "atom10" => Ns::Atom,
        "rdf" => Ns::Rdf,
        "sy" => Ns::Sy,
        "itunes" => Ns::Itunes,
        "xhtml" => Ns::Xhtml,
        "xml" => Ns::Xml,
        _ => Ns::Other,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub ns: Ns,
    pub local: String,
    /// The name as written (`xml:lang`, `rdf:about`), for re-serialising markup.
    pub qname: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Element(Element),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub ns: Ns,
    pub local: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
    /// `xml:base` in force here, resolved against the enclosing ones when they are absolute.
    /// (Shared: every element inherits its parent's, and a string each was an allocation per
    /// element of a feed with `xml:lang` on its root.)
    pub base: Option<Arc<str>>,
    /// `xml:lang` in force here.
    pub lang: Option<Arc<str>>,
    /// False when the document ended or broke before this element's end tag.
    pub complete: bool,
}

/// Where and why reading stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug)]
pub struct Document {
    pub root: Option<Element>,
    pub error: Option<XmlError>,
}

impl Element {
    pub fn is(&self, ns: Ns, local: &str) -> bool {
        self.ns == ns && self.local == local
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Child elements with this namespace role and local name.
    pub fn all<'a>(&'a self, ns: Ns, local: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.is(ns, local))
    }

    pub fn first(&self, ns: Ns, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, local))
    }

    /// An attribute without a namespace (`href`, `rel`), or with one when `ns` says so.
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.local.eq_ignore_ascii_case(local) && matches!(a.ns, Ns::Rss | Ns::Other))
            .map(|a| a.value.as_str())
    }

    pub fn attr_ns(&self, ns: Ns, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns == ns && a.local == local)
            .map(|a| a.value.as_str())
    }

    pub fn has_element_children(&self) -> bool {
        self.elements().next().is_some()
    }

    /// All text inside, markup dropped.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.collect_text(&mut out);
        out
    }

    fn collect_text(&self, out: &mut String) {
        for n in &self.children {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => e.collect_text(out),
            }
        }
    }

    /// The content re-serialised as markup (for inline XHTML), with element names unprefixed.
    pub fn inner_xml(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            write_node(n, &mut out);
        }
        out
    }

    /// A URL attribute or text resolved against this element's `xml:base` when that is absolute.
    pub fn resolve(&self, value: &str) -> String {
        resolve(self.base.as_deref(), value)
    }
}

/// `value` resolved against `base` when `base` is an absolute URL; `value` unchanged otherwise.
pub fn resolve(base: Option<&str>, value: &str) -> String {
    let value = value.trim();
    match base.and_then(|b| Url::parse(b).ok()) {
        Some(b) => b
            .join(value)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| value.to_string()),
        None => value.to_string(),
    }
}

fn write_node(n: &Node, out: &mut String) {
    match n {
        Node::Text(t) => escape_into(t, out, false),
        Node::Element(e) => {
            out.push('<');
            out.push_str(&e.local);
            for a in &e.attrs {
                if a.qname == "xmlns" || a.qname.starts_with("xmlns:") || a.ns == Ns::Xml {
                    continue;
                }
                out.push(' ');
                out.push_str(&a.local);
                out.push_str("=\"");
                escape_into(&a.value, out, true);
                out.push('"');
            }
            if e.children.is_empty() {
                out.push_str("/>");
                return;
            }
            out.push('>');
            for c in &e.children {
                write_node(c, out);
            }
            out.push_str("</");
            out.push_str(&e.local);
            out.push('>');
        }
    }
}

fn escape_into(s: &str, out: &mut String, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Characters XML 1.0 §2.2 allows; the rest are dropped from text and attributes.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Whether every char of `s` is an [`xml_char`], by bytes: a `str` holds no surrogates, so
/// only C0 controls and U+FFFE/U+FFFF are not (found with byte searches, not char by char:
/// this sees every text byte of every document).
fn all_xml_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'))
        && !s.contains("\u{FFFE}")
        && !s.contains("\u{FFFF}")
}

fn push_clean(out: &mut String, s: &str) {
    if all_xml_chars(s) {
        out.push_str(s);
    } else {
        out.extend(s.chars().filter(|c| xml_char(*c)));
    }
}

/// The text an entity reference `&name;` stands for: XML's five, character references, and
/// HTML5's named entities. `None` for anything else (including DTD-declared entities).
fn entity(name: &str) -> Option<Cow<'static, str>> {
    let predefined = match name {
        "amp" => Some("&"),
        "lt" => Some("<"),
        "gt" => Some(">"),
        "quot" => Some("\""),
        "apos" => Some("'"),
        _ => None,
    };
    if let Some(p) = predefined {
        return Some(Cow::Borrowed(p));
    }
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        // Windows-1252 code points written as references (&#151;) mean what 1252 says.
        let c = match code {
            0x80..=0x9f => {
                let byte = [code as u8];
                encoding_rs::WINDOWS_1252
                    .decode_without_bom_handling(&byte)
                    .0
                    .chars()
                    .next()?
            }
            _ => char::from_u32(code)?,
        };
        return xml_char(c).then(|| Cow::Owned(c.to_string()));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let written = format!("&{name};");
    let decoded = html_escape::decode_html_entities(&written);
    (decoded != written).then(|| Cow::Owned(decoded.into_owned()))
}

/// Decodes the references in raw text leniently (attribute values): a bare `&` stays.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('&') {
        push_clean(&mut out, &rest[..pos]);
        let tail = &rest[pos + 1..];
        let end = tail
            .find(|c: char| c == ';' || c == '&' || c == '<' || c.is_whitespace())
            .filter(|i| tail.as_bytes()[*i] == b';');
        match end.and_then(|e| entity(&tail[..e]).map(|t| (e, t))) {
            Some((e, text)) => {
                out.push_str(&text);
                rest = &tail[e + 1..];
            }
            None => {
                out.push('&');
                rest = tail;
            }
        }
    }
    push_clean(&mut out, rest);
    out
}

fn line_of(text: &str, byte: u64) -> usize {
    let end = (byte as usize).min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Reads a document into a tree, stopping (not failing) at the first unrecoverable error, at
/// `deadline` or at `limits.max_elements`; deeper elements than `limits.max_depth` are skipped
/// and text runs cut at `limits.max_field_bytes` (both logged).
pub fn read_within(text: &str, limits: &Limits, deadline: Instant) -> Document {
    let mut reader = NsReader::from_str(text);
    {
        let cfg = reader.config_mut();
        cfg.allow_dangling_amp = true;
        cfg.check_end_names = false;
        cfg.allow_unmatched_ends = true;
        cfg.check_comments = false;
    }
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut error = None;
    let mut elements = 0usize;
    let mut events = 0usize;
    let mut too_deep = 0usize;
    let mut text_cut = false;
    loop {
        let event = reader.read_event();
        events += 1;
        if events.is_multiple_of(1024) && Instant::now() >= deadline {
            error = Some(XmlError {
                line: line_of(text, reader.buffer_position()),
                message: format!(
                    "parse_timeout ({:?}) reached: the rest is ignored",
                    limits.max_time
                ),
            });
            break;
        }
        if let Ok(Event::Start(_) | Event::Empty(_)) = &event {
            elements += 1;
            if elements > limits.max_elements {
                error = Some(XmlError {
                    line: line_of(text, reader.buffer_position()),
                    message: format!(
                        "more than {} elements (max_xml_elements): the rest is ignored",
                        limits.max_elements
                    ),
                });
                break;
            }
        }
        match event {
            Ok(Event::Start(e)) if stack.len() >= limits.max_depth => {
                // Too deep: skip this element and everything in it.
                too_deep += 1;
                let _ = reader.read_to_end(e.name());
            }
            Ok(Event::Start(e)) => {
                let el = open(&reader, &e, stack.last());
                if root.is_some() && stack.is_empty() {
                    // A second root element: ignore it and everything in it.
                    let _ = reader.read_to_end(e.name());
                    continue;
                }
                stack.push(el);
            }
            Ok(Event::Empty(e)) => {
                let el = open(&reader, &e, stack.last());
                close(&mut stack, &mut root, el);
            }
            Ok(Event::End(e)) => {
                let name = e.local_name();
                let local = String::from_utf8_lossy(name.as_ref());
                if let Some(pos) = stack.iter().rposition(|el| el.local == local) {
                    while stack.len() > pos {
                        let el = stack.pop().expect("stack holds more than pos elements");
                        close(&mut stack, &mut root, el);
                    }
                }
            }
            Ok(Event::Text(t)) => {
                if let Some(top) = stack.last_mut() {
                    text_cut |= push_text(top, &as_text(text, &t), limits.max_field_bytes);
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    text_cut |= push_text(top, &as_text(text, &t), limits.max_field_bytes);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(top) = stack.last_mut() {
                    let name = String::from_utf8_lossy(&r);
                    match entity(&name) {
                        Some(t) => text_cut |= push_text(top, &t, limits.max_field_bytes),
                        // A reference to a character XML forbids (&#0;) is dropped.
                        None if name.starts_with('#') => {}
                        None => {
                            text_cut |= push_text(top, &format!("&{name};"), limits.max_field_bytes)
                        }
                    }
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                error = Some(XmlError {
                    line: line_of(text, reader.error_position()),
                    message: e.to_string(),
                });
                break;
            }
        }
    }
    if too_deep > 0 {
        tracing::warn!(
            elements = too_deep,
            limit = limits.max_depth,
            "elements nested deeper than max_xml_depth were skipped"
        );
    }
    if text_cut {
        tracing::warn!(
            limit = limits.max_field_bytes,
            "text longer than max_field_bytes was cut"
        );
    }
    if error.is_none() && !stack.is_empty() {
        error = Some(XmlError {
            line: line_of(text, text.len() as u64),
            message: format!(
                "the document ends inside <{}> (truncated?)",
                stack.last().map(|e| e.local.as_str()).unwrap_or_default()
            ),
        });
    }
    // Whatever is still open was cut off: attach it, marked incomplete.
    while let Some(mut el) = stack.pop() {
        el.complete = false;
        match stack.last_mut() {
            Some(parent) => parent.children.push(Node::Element(el)),
            None => root = Some(el),
        }
    }
    Document { root, error }
}

/// `bytes` as text: the part of `text` it is (a reader over `text` lends its events' bytes
/// from it), found by its address, so it is not checked as UTF-8 a second time; anything else
/// is decoded lossily. Checking every text run again was a seventh of building a document's
/// tree.
fn as_text<'t>(text: &'t str, bytes: &[u8]) -> Cow<'t, str> {
    let start = (bytes.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    start
        .checked_add(bytes.len())
        .and_then(|end| text.get(start..end))
        .map_or_else(
            || String::from_utf8_lossy(bytes).into_owned().into(),
            Cow::Borrowed,
        )
}

/// Appends text to `el`, keeping at most `max` bytes in one run; whether any was cut.
fn push_text(el: &mut Element, s: &str, max: usize) -> bool {
    if let Some(Node::Text(last)) = el.children.last_mut() {
        if last.len() >= max {
            return !s.is_empty();
        }
        let keep = s.floor_char_boundary((max - last.len()).min(s.len()));
        push_clean(last, &s[..keep]);
        keep < s.len()
    } else {
        let mut t = String::new();
        let keep = s.floor_char_boundary(max.min(s.len()));
        push_clean(&mut t, &s[..keep]);
        if el.children.is_empty() && !t.trim_ascii().is_empty() {
            // Most elements hold one text and nothing else: room for one node, not the four
            // (512 bytes) a first push takes. (Whitespace first is an element with children.)
            el.children.reserve_exact(1);
        }
        el.children.push(Node::Text(t));
        keep < s.len()
    }
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        None => {
            if root.is_none() {
                *root = Some(el);
            }
        }
    }
}

fn ns_key(ns: &ResolveResult<'_>, qname: &[u8]) -> Ns {
    match ns {
        ResolveResult::Bound(uri) => ns_of_uri(&String::from_utf8_lossy(uri.as_ref())),
        ResolveResult::Unbound => Ns::Rss,
        ResolveResult::Unknown(prefix) => {
            let p = String::from_utf8_lossy(prefix);
            let key = ns_of_prefix(&p);
            if key == Ns::Other && qname.is_empty() {
                Ns::Rss
            } else {
                key
            }
        }
    }
}

fn open(reader: &NsReader<&[u8]>, e: &BytesStart<'_>, parent: Option<&Element>) -> Element {
    let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let (ns, _) = reader.resolver().resolve_element(e.name());
    let ns = ns_key(&ns, e.name().as_ref());
    let mut attrs = Vec::new();
    for a in e.attributes().with_checks(false).flatten() {
        let qname = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let (res, alocal) = reader.resolver().resolve_attribute(a.key);
        let alocal = String::from_utf8_lossy(alocal.as_ref()).into_owned();
        let ans = match res {
            ResolveResult::Unbound => Ns::Rss,
            ResolveResult::Bound(uri) => ns_of_uri(&String::from_utf8_lossy(uri.as_ref())),
            ResolveResult::Unknown(p) => ns_of_prefix(&String::from_utf8_lossy(&p)),
        };
        let ans = if qname.starts_with("xml:") {
            Ns::Xml
        } else {
            ans
        };
        attrs.push(Attr {
            ns: ans,
            local: alocal,
            qname,
            value: unescape(&String::from_utf8_lossy(&a.value)),
        });
    }
    let parent_base = parent.and_then(|p| p.base.clone());
    let base = match attrs.iter().find(|a| a.ns == Ns::Xml && a.local == "base") {
        Some(a) => Some(resolve(parent_base.as_deref(), &a.value).into()),
        None => parent_base,
    };
    let lang = match attrs.iter().find(|a| a.ns == Ns::Xml && a.local == "lang") {
        Some(a) => Some(a.value.trim().into()),
        None => parent.and_then(|p| p.lang.clone()),
    };
    Element {
        ns,
        local,
        attrs,
        children: Vec::new(),
        base,
        lang,
        complete: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn all_xml_chars_is_every_char_an_xml_char(
            s in "(\\PC|[\u{0}-\u{1f}]|\u{fffe}|\u{ffff}|\u{fffd}|\u{d7ff}|\u{e000}|\u{10000}|[\u{7f}-\u{9f}]){0,12}"
        ) {
            proptest::prop_assert_eq!(all_xml_chars(&s), s.chars().all(xml_char));
        }
    }

    /// Reads a document within the default [`Limits`].
    fn read(text: &str) -> Document {
        let limits = Limits::default();
        read_within(text, &limits, Instant::now() + limits.max_time)
    }

    fn root(s: &str) -> Element {
        read(s).root.unwrap()
    }

    /// Text lent from the document is taken as it is; bytes from elsewhere, or cut inside a
    /// character, are decoded lossily as before.
    #[test]
    fn text_is_taken_from_the_document_by_address() {
        let text = "<a>é x</a>";
        let inner = &text.as_bytes()[3..7];
        assert!(matches!(as_text(text, inner), Cow::Borrowed("é x")));
        let owned = inner.to_vec();
        assert!(matches!(as_text(text, &owned), Cow::Owned(t) if t == "é x"));
        assert_eq!(as_text(text, &text.as_bytes()[4..6]), "\u{FFFD} ");
        assert_eq!(as_text(text, b""), "");
    }

    #[test]
    fn bare_ampersand_and_html_entities() {
        let r = root("<a>Tom & Jerry&nbsp;&mdash; ?id=1&lang=ru &amp; &#x41;&#151;&foo;</a>");
        assert_eq!(r.text(), "Tom & Jerry\u{a0}— ?id=1&lang=ru & A—&foo;");
        let r = root("<a href=\"/x?a=1&b=2&amp;c=&lt;\"/>");
        assert_eq!(r.attr("href"), Some("/x?a=1&b=2&c=<"));
    }

    #[test]
    fn control_characters_dropped() {
        let r = root("<a>x\u{1}y\u{b}z&#0;</a>");
        assert_eq!(r.text(), "xyz");
    }

    #[test]
    fn dtd_entities_are_not_expanded() {
        let doc = "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">\
                   <!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&b;&x;</r>";
        assert_eq!(root(doc).text(), "&b;&x;");
    }

    #[test]
    fn truncated_document_keeps_what_was_closed() {
        let doc = read("<rss>\n<channel><item><title>one</title></item>\n<item><title>tw");
        let r = doc.root.unwrap();
        assert!(!r.complete);
        let ch = r.first(Ns::Rss, "channel").unwrap();
        let items: Vec<_> = ch.all(Ns::Rss, "item").collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].complete && !items[1].complete);
        assert_eq!(doc.error.unwrap().line, 3);
    }

    #[test]
    fn xml_base_is_inherited_and_resolved() {
        let r = root(
            "<feed xml:base=\"http://ex.org/a/\"><entry xml:base=\"b/\"><link href=\"c\"/></entry></feed>",
        );
        let entry = r.elements().next().unwrap();
        assert_eq!(entry.base.as_deref(), Some("http://ex.org/a/b/"));
        let link = entry.elements().next().unwrap();
        assert_eq!(
            link.resolve(link.attr("href").unwrap()),
            "http://ex.org/a/b/c"
        );
    }

    #[test]
    fn undeclared_prefixes_and_inner_xml() {
        let r =
            root("<item><media:content url=\"u\"/><d><p class=\"x\">a &lt;b&gt;</p></d></item>");
        assert_eq!(
            r.first(Ns::Media, "content").unwrap().attr("url"),
            Some("u")
        );
        assert_eq!(
            r.first(Ns::Rss, "d").unwrap().inner_xml(),
            "<p class=\"x\">a &lt;b&gt;</p>"
        );
    }

    #[test]
    fn mismatched_end_tags_are_tolerated() {
        let r = root("<rss><channel><title>t</b></title><item><br></item></channel></rss>");
        assert!(r.complete);
        let ch = r.first(Ns::Rss, "channel").unwrap();
        assert_eq!(ch.first(Ns::Rss, "title").unwrap().text(), "t");
        assert!(ch.first(Ns::Rss, "item").is_some());
    }
}
