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
    /// For an item (`<item>`, `<entry>` under the root or `<channel>`): the hash of its bytes
    /// in the document, seeded with the start tags around it (`Spans`). The same hash is
    /// the same item read the same way.
    pub span: Option<u64>,
    /// An item read light: only the children its id and dates come from (see
    /// [`read_skipping`]).
    pub light: bool,
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

/// Whether `s` holds a character XML forbids: a C0 control but tab, LF and CR, or U+FFFE or
/// U+FFFF; with `DEL`, U+007F too. By bytes (U+FFFE/U+FFFF are EF BF BE/BF): a first pass over
/// 64-byte chunks, without early exit so that it is vectorised, looks for any byte that could
/// start one, as most text has none. It sees every text byte of every document parsed, every
/// field of every item normalised and every string of every feed rendered.
pub fn has_forbidden_char<const DEL: bool>(s: &str) -> bool {
    let b = s.as_bytes();
    let maybe = |c: u8| {
        (c < b' ' && !matches!(c, b'\t' | b'\n' | b'\r')) || (DEL && c == 0x7f) || c == 0xef
    };
    if !b
        .chunks(64)
        .any(|chunk| chunk.iter().fold(false, |seen, c| seen | maybe(*c)))
    {
        return false;
    }
    b.iter().enumerate().any(|(i, &c)| {
        maybe(c)
            && (c != 0xef
                || (b.get(i + 1) == Some(&0xbf) && matches!(b.get(i + 2), Some(0xbe | 0xbf))))
    })
}

/// Whether XML forbids `c` (not an [`xml_char`]); with `DEL`, U+007F too: the characters
/// [`has_forbidden_char`] finds.
pub fn forbidden_char<const DEL: bool>(c: char) -> bool {
    !xml_char(c) || (DEL && c == '\u{7f}')
}

/// `s` without the characters XML forbids (with `DEL`, U+007F too); borrowed when it has none,
/// which the byte scan tells.
pub fn without_forbidden<const DEL: bool>(s: &str) -> Cow<'_, str> {
    if has_forbidden_char::<DEL>(s) {
        Cow::Owned(s.chars().filter(|c| !forbidden_char::<DEL>(*c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

fn push_clean(out: &mut String, s: &str) {
    out.push_str(&without_forbidden::<false>(s));
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

/// Which item span hashes are known ([`read_skipping`]).
pub type Knows<'a> = &'a dyn Fn(u64) -> bool;

/// Reads a document into a tree, stopping (not failing) at the first unrecoverable error, at
/// `deadline` or at `limits.max_elements`; deeper elements than `limits.max_depth` are skipped
/// and text runs cut at `limits.max_field_bytes` (both logged).
pub fn read_within(text: &str, limits: &Limits, deadline: Instant) -> Document {
    read_skipping(text, limits, deadline, None)
}

/// [`read_within`], reading light the items whose span hash `known` knows: of such an item
/// only the children its id and dates come from are built (`is_identity`), and it is marked
/// [`Element::light`]. Most of a changed document's bytes are items it sent before, which
/// reuse does not normalise again; an update built their whole trees (half of parsing its
/// changed documents) only to find them unchanged.
///
/// An item is first read light from a copy of the reader; when its hash is not known, or
/// anything is out of the ordinary (an error, the end of the document, a limit, an end tag
/// that closes an element around it), it is read again in full from where it starts.
pub fn read_skipping(
    text: &str,
    limits: &Limits,
    deadline: Instant,
    known: Option<Knows<'_>>,
) -> Document {
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
    let mut spans = Spans::new(limits);
    loop {
        let before = reader.buffer_position() as usize;
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
                let after = reader.buffer_position() as usize;
                if let Some(seed) = spans.opened(&el, &stack, bytes_at(text, before, after)) {
                    let trying = known.is_some() && spans.worth_trying();
                    let light = known.filter(|_| trying).and_then(|known| {
                        let counts = (elements, events);
                        let mut light =
                            read_light(&reader, text, &el, &stack, limits, deadline, counts)?;
                        let hash = span_hash(text, before, light.end, seed);
                        known(hash).then(|| {
                            light.el.span = Some(hash);
                            light.el.light = true;
                            light
                        })
                    });
                    spans.tried(trying, light.is_some());
                    if let Some(light) = light {
                        reader = light.reader;
                        elements += light.elements;
                        events += light.events;
                        text_cut |= light.text_cut;
                        close(&mut stack, &mut root, light.el);
                        continue;
                    }
                    spans.item = Some((stack.len(), before, seed));
                }
                stack.push(el);
            }
            Ok(Event::Empty(e)) => {
                let mut el = open(&reader, &e, stack.last());
                let after = reader.buffer_position() as usize;
                if let Some(seed) = spans.opened(&el, &stack, bytes_at(text, before, after)) {
                    let hash = span_hash(text, before, after, seed);
                    el.span = Some(hash);
                    // (Nothing to skip, but known all the same.)
                    el.light = known.is_some_and(|known| known(hash));
                }
                close(&mut stack, &mut root, el);
            }
            Ok(Event::End(e)) => {
                let name = e.local_name();
                let local = String::from_utf8_lossy(name.as_ref());
                if let Some(pos) = stack.iter().rposition(|el| el.local == local) {
                    while stack.len() > pos {
                        let mut el = stack.pop().expect("stack holds more than pos elements");
                        if let Some((at, start, seed)) = spans.item
                            && at == stack.len()
                        {
                            let end = reader.buffer_position() as usize;
                            el.span = Some(span_hash(text, start, end, seed));
                            spans.item = None;
                        }
                        close(&mut stack, &mut root, el);
                    }
                }
                in_step(&mut reader, stack.len());
            }
            Ok(ref event @ (Event::Text(_) | Event::CData(_) | Event::GeneralRef(_))) => {
                if let Some(top) = stack.last_mut() {
                    text_cut |= push_event(top, event, text, limits.max_field_bytes);
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

/// Puts quick-xml's namespace scopes in step with the elements open (`depth` of them) after an
/// end tag: it closes one scope per end tag, where a mismatched one closes several elements or
/// none. Out of step, the prefixes an element reads would depend on stray end tags anywhere
/// before it (and an item's span would not say how it reads), and unclosed elements would
/// pile up scopes past quick-xml's count of them.
fn in_step(reader: &mut NsReader<&[u8]>, depth: usize) {
    // The end tag's own scope is closed at the next read: one more than is left open.
    let level = u16::try_from(depth + 1).unwrap_or(u16::MAX);
    reader.resolver_mut().set_level(level);
}

/// What an item's span hash is seeded with: the limits the document is read within, and the
/// start tags of the elements around the item (the root and, in RSS 2.0, `<channel>`), whose
/// namespace declarations, `xml:base` and `xml:lang` change how the item reads.
struct Spans {
    /// The seed from the limits.
    limits: u64,
    /// The seed under the element open at each of the first two depths.
    seeds: [u64; 2],
    /// The item being read in full, whose span is taken when it closes: its place in the
    /// stack, where it starts, its seed.
    item: Option<(usize, usize, u64)>,
    /// Items tried light, and found known.
    tried: usize,
    found: usize,
    /// Bytes of the start tag open at each of the first two depths, and of those around the
    /// last item opened (where the namespaces in force are declared: a light read copies them
    /// with the reader).
    tags: [usize; 2],
    around: usize,
}

/// Bytes of start tags around the items past which items are not read light: a light read
/// copies the reader, with every namespace declaration in force (a hostile root could declare
/// megabytes, copied once per item).
const LIGHT_TAGS: usize = 4096;

/// Items a document's light reads may miss before one is found known: past that, its items
/// are all read in full at once (a feed that changes every item on every fetch, a date in
/// each, would otherwise be read twice).
const LIGHT_MISSES: usize = 16;

impl Spans {
    fn new(limits: &Limits) -> Spans {
        let seed = xxhash_rust::xxh3::xxh3_64(
            format!("{}|{}", limits.max_depth, limits.max_field_bytes).as_bytes(),
        );
        Spans {
            limits: seed,
            seeds: [seed; 2],
            item: None,
            tried: 0,
            found: 0,
            tags: [0; 2],
            around: 0,
        }
    }

    /// Whether an item is still worth reading light first: not past [`LIGHT_MISSES`], and the
    /// namespaces in force (declared on the tags around it) small enough to copy with the
    /// reader ([`LIGHT_TAGS`]).
    fn worth_trying(&self) -> bool {
        (self.found > 0 || self.tried < LIGHT_MISSES) && self.around <= LIGHT_TAGS
    }

    fn tried(&mut self, tried: bool, found: bool) {
        self.tried += usize::from(tried);
        self.found += usize::from(found);
    }

    /// Notes an element opened under `stack` with start tag `tag`; when it is an item (and no
    /// item is being read), the seed of its span. The seeds are those of the elements around
    /// items; an item's own tag is in its span.
    fn opened(&mut self, el: &Element, stack: &[Element], tag: &[u8]) -> Option<u64> {
        let depth = stack.len();
        let item = matches!(el.local.as_str(), "item" | "entry")
            && match depth {
                1 => true,
                2 => stack[1].local == "channel",
                _ => false,
            };
        if item {
            self.around = self.tags[0] + if depth == 2 { self.tags[1] } else { 0 };
            return self.item.is_none().then(|| self.seeds[depth - 1]);
        }
        if depth < 2 {
            let under = if depth == 0 {
                self.limits
            } else {
                self.seeds[0]
            };
            self.seeds[depth] = xxhash_rust::xxh3::xxh3_64_with_seed(tag, under);
            self.tags[depth] = tag.len();
        }
        None
    }
}

/// The bytes of the document from `start` to `end` (a start tag, an item).
fn bytes_at(text: &str, start: usize, end: usize) -> &[u8] {
    text.as_bytes().get(start..end).unwrap_or_default()
}

fn span_hash(text: &str, start: usize, end: usize, seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(bytes_at(text, start, end), seed)
}

/// Children of an item that a light read builds: those its id and dates come from (RSS
/// `guid`, `pubDate`, `dc:date`, `dcterms:issued`/`created`/`modified`; Atom `id`,
/// `published`, `updated`, `issued`, `created`, `modified`). Reuse needs no more of an item it
/// knows.
fn is_identity(local: &str) -> bool {
    matches!(
        local,
        "guid"
            | "id"
            | "pubDate"
            | "date"
            | "issued"
            | "created"
            | "published"
            | "modified"
            | "updated"
    )
}

/// An item read light: its element, the reader past it, where it ends, and what reading it
/// counted.
struct Light<'t> {
    el: Element,
    reader: NsReader<&'t [u8]>,
    end: usize,
    elements: usize,
    events: usize,
    text_cut: bool,
}

/// Reads the item `item` just opened (under `around`) light, from a copy of `reader`: its
/// structure as [`read_skipping`] reads it (mismatched end tags included), but building only
/// its [`is_identity`] children. `None` when the full read is to read it: at an error, the end
/// of the document, a limit, or an end tag that closes an element around the item.
///
/// Where the item ends is only a candidate until its hash is found known: the same bytes
/// (with the same tags around them) were read in full before and ended there.
fn read_light<'t>(
    reader: &NsReader<&'t [u8]>,
    text: &'t str,
    item: &Element,
    around: &[Element],
    limits: &Limits,
    deadline: Instant,
    (elements_before, events_before): (usize, usize),
) -> Option<Light<'t>> {
    let mut reader = reader.clone();
    // The elements open in the item (the item first): their names, and whether each is built
    // (the item, an identity child and everything in it); the built ones.
    let mut inside: Vec<(Cow<'t, str>, bool)> = vec![(Cow::Owned(item.local.clone()), true)];
    let mut built: Vec<Element> = vec![item.clone()];
    let (mut elements, mut events, mut text_cut) = (0usize, 0usize, false);
    loop {
        let event = reader.read_event();
        events += 1;
        // Counted with the document's events, so the deadline is looked at as often as in a
        // full read (given up at it, the full read reports it).
        if (events_before + events).is_multiple_of(1024) && Instant::now() >= deadline {
            return None;
        }
        if let Ok(Event::Start(_) | Event::Empty(_)) = &event {
            elements += 1;
            if elements_before + elements > limits.max_elements {
                return None;
            }
        }
        match event {
            Ok(Event::Start(ref e) | Event::Empty(ref e)) => {
                let empty = matches!(event, Ok(Event::Empty(_)));
                if !empty && around.len() + inside.len() >= limits.max_depth {
                    return None;
                }
                let local = as_text(text, e.local_name().into_inner());
                let build = match inside.len() {
                    1 => is_identity(&local),
                    _ => inside.last().is_some_and(|(_, b)| *b),
                };
                let el = build.then(|| open(&reader, e, built.last()));
                match (el, empty) {
                    (Some(el), true) => close(&mut built, &mut None, el),
                    (Some(el), false) => built.push(el),
                    (None, _) => {}
                }
                if !empty {
                    inside.push((local, build));
                }
            }
            Ok(Event::End(e)) => {
                let local = as_text(text, e.local_name().into_inner());
                match inside.iter().rposition(|(name, _)| *name == local) {
                    Some(pos) => {
                        while inside.len() > pos {
                            let (_, was_built) = inside.pop().expect("more than pos are open");
                            if !was_built {
                                continue;
                            }
                            let el = built.pop().expect("a built element is on the stack");
                            if built.is_empty() {
                                in_step(&mut reader, around.len());
                                let end = reader.buffer_position() as usize;
                                return Some(Light {
                                    el,
                                    reader,
                                    end,
                                    elements,
                                    events,
                                    text_cut,
                                });
                            }
                            close(&mut built, &mut None, el);
                        }
                    }
                    None if around.iter().any(|a| *a.local == *local) => return None,
                    None => {}
                }
                in_step(&mut reader, around.len() + inside.len());
            }
            Ok(ref event @ (Event::Text(_) | Event::CData(_) | Event::GeneralRef(_))) => {
                if inside.len() > 1
                    && inside.last().is_some_and(|(_, b)| *b)
                    && let Some(top) = built.last_mut()
                {
                    text_cut |= push_event(top, event, text, limits.max_field_bytes);
                }
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Appends what a text event gives (text, CDATA, a reference) to `el`; whether any was cut.
fn push_event(el: &mut Element, event: &Event<'_>, text: &str, max: usize) -> bool {
    match event {
        Event::Text(t) => push_text(el, &as_text(text, t), max),
        Event::CData(t) => push_text(el, &as_text(text, t), max),
        Event::GeneralRef(r) => {
            let name = String::from_utf8_lossy(r);
            match entity(&name) {
                Some(t) => push_text(el, &t, max),
                // A reference to a character XML forbids (&#0;) is dropped.
                None if name.starts_with('#') => false,
                None => push_text(el, &format!("&{name};"), max),
            }
        }
        _ => false,
    }
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
        span: None,
        light: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn the_byte_scan_finds_what_xml_char_refuses(
            s in "(\\PC|[\u{0}-\u{1f}]|\u{fffe}|\u{ffff}|\u{fffd}|\u{d7ff}|\u{e000}|\u{10000}|[\u{7f}-\u{9f}]){0,12}"
        ) {
            proptest::prop_assert_eq!(!has_forbidden_char::<false>(&s), s.chars().all(xml_char));
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

    /// The items of a tree: `<item>`/`<entry>` children of the root or of `<channel>`.
    fn items_of(root: &Element) -> Vec<&Element> {
        let mut out: Vec<&Element> = root
            .elements()
            .filter(|e| matches!(e.local.as_str(), "item" | "entry"))
            .collect();
        if let Some(ch) = root.first(Ns::Rss, "channel") {
            out.extend(ch.elements().filter(|e| e.local == "item"));
        }
        out
    }

    fn spans(text: &str) -> Vec<Option<u64>> {
        items_of(&root(text)).iter().map(|i| i.span).collect()
    }

    /// Reads `text` with the items whose span is in `known` read light.
    fn read_knowing(text: &str, known: &std::collections::HashSet<u64>) -> Document {
        let limits = Limits::default();
        let knows = |h: u64| known.contains(&h);
        read_skipping(
            text,
            &limits,
            Instant::now() + limits.max_time,
            Some(&knows),
        )
    }

    /// `el` with the items whose span is in `known` as a light read gives them: only their
    /// identity children.
    fn stripped(mut el: Element, known: &std::collections::HashSet<u64>, depth: usize) -> Element {
        if el.span.is_some_and(|s| known.contains(&s)) {
            el.light = true;
            el.children
                .retain(|n| matches!(n, Node::Element(e) if is_identity(&e.local)));
        } else if depth < 2 {
            for n in &mut el.children {
                if let Node::Element(e) = n {
                    *e = stripped(e.clone(), known, depth + 1);
                }
            }
        }
        el
    }

    const RSS: &str = r#"<?xml version="1.0"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">
<channel xml:base="http://ex.org/news/" xml:lang="ru">
  <title>Новости</title><link>/</link>
  <item><title>One &amp; two</title><link>a/1</link><guid isPermaLink="false">g1</guid>
    <pubDate>Mon, 30 Nov 2026 09:00:00 +0000</pubDate><dc:creator>Анна</dc:creator>
    <description>&lt;p&gt;Lead &amp;nbsp;text&lt;/p&gt; &mdash; more</description>
    <content:encoded><![CDATA[<p>Body <b>bold</b></p>]]></content:encoded>
    <media:content url="i/1.jpg" medium="image"/><category>World</category></item>
  <item><title>Two</title><guid>http://ex.org/news/2</guid><dc:date>2026-11-29T10:00:00Z</dc:date>
    <description xml:base="http://other.org/">Plain text&#x41;</description></item>
  <item><title>Three</title><link>a/3</link><xhtml:body xmlns:xhtml="http://www.w3.org/1999/xhtml"><xhtml:p>Text <xhtml:a href="x">link</xhtml:a></xhtml:p></xhtml:body></item>
  <item/>
</channel>
</rss>"#;

    const ATOM: &str = r#"<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://ex.org/">
<title>T</title>
<entry><id>urn:1</id><title type="html">&lt;b&gt;A&lt;/b&gt;</title><updated>2026-11-30T00:00:00Z</updated>
  <summary>Short</summary><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Long <em>body</em></p></div></content></entry>
<entry><id>urn:2</id><link href="b"/><content type="html">&lt;p&gt;x&lt;/p&gt;</content></entry>
</feed>"#;

    const RDF: &str = r#"<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
<channel rdf:about="http://ex.org/"><title>R</title></channel>
<item rdf:about="http://ex.org/1"><title>One</title><link>http://ex.org/1</link><description>D1</description></item>
<item rdf:about="http://ex.org/2"><title>Two</title><description>D2</description></item>
</rdf:RDF>"#;

    /// Read light, an item is what the full read gives without the text of its summary and
    /// content; everything else in the document is as the full read gives it, whichever items
    /// are known.
    #[test]
    fn an_item_read_light_is_the_full_item_without_its_body_text() {
        for doc in [RSS, ATOM, RDF] {
            let full = read(doc);
            let all: Vec<u64> = items_of(full.root.as_ref().unwrap())
                .iter()
                .map(|i| i.span.expect("every item has a span"))
                .collect();
            assert!(all.len() >= 2, "{doc}");
            let subsets: Vec<std::collections::HashSet<u64>> = vec![
                all.iter().copied().collect(),
                all.iter().copied().step_by(2).collect(),
                all.iter().copied().skip(1).collect(),
                [1, 2, 3].into_iter().collect(),
            ];
            for known in subsets {
                let light = read_knowing(doc, &known);
                assert_eq!(light.error, full.error);
                let want = stripped(full.root.clone().unwrap(), &known, 0);
                assert_eq!(light.root.as_ref(), Some(&want), "{doc}\n{known:?}");
                let lights = items_of(light.root.as_ref().unwrap())
                    .iter()
                    .filter(|i| i.light)
                    .count();
                assert_eq!(lights, known.iter().filter(|k| all.contains(k)).count());
            }
        }
        // The id and the dates are what is kept.
        let known = spans(RSS).into_iter().flatten().collect();
        let light = read_knowing(RSS, &known).root.unwrap();
        let items = items_of(&light);
        let names =
            |i: &Element| -> Vec<String> { i.elements().map(|e| e.local.clone()).collect() };
        assert_eq!(names(items[0]), ["guid", "pubDate"]);
        assert_eq!(items[0].first(Ns::Rss, "guid").unwrap().text(), "g1");
        assert_eq!(names(items[1]), ["guid", "date"]);
    }

    /// An item's span is its bytes with the start tags around it: the same in another
    /// document of other items, another when a byte of it changes or when a declaration
    /// around it does.
    #[test]
    fn an_items_span_is_its_bytes_and_the_tags_around_it() {
        let doc = |items: &str, root: &str| {
            format!("<rss{root}><channel><title>x</title>{items}</channel></rss>")
        };
        let a = "<item><guid>a</guid><description>one</description></item>";
        let b = "<item><guid>b</guid></item>";
        let c = "<item><guid>c</guid></item>";
        let first = spans(&doc(&format!("{a}{b}"), ""));
        let second = spans(&doc(&format!("{c}\n{a}"), ""));
        assert!(first.iter().all(Option::is_some));
        assert_eq!(first[0], second[1]);
        assert_ne!(first[0], first[1]);
        let changed = spans(&doc(&format!("{}{b}", a.replace("one", "onE")), ""));
        assert_ne!(changed[0], first[0]);
        assert_eq!(changed[1], first[1]);
        let declared = spans(&doc(&format!("{a}{b}"), " xmlns:dc=\"x\""));
        assert_ne!(declared[0], first[0]);
        // The channel's title is not around the items: a changed one keeps their spans.
        let retitled = doc(&format!("{a}{b}"), "").replace("<title>x</title>", "<title>y</title>");
        assert_eq!(spans(&retitled), first);
    }

    /// An item that an end tag of an element around it closes, or that the document ends
    /// in, is read in full even when its span is known.
    #[test]
    fn an_item_cut_short_is_read_in_full() {
        let broken = "<rss><channel><item><guid>a</guid><description>d</description></channel><item><guid>b</guid></item></rss>";
        let full = read(broken);
        let known = items_of(full.root.as_ref().unwrap())
            .iter()
            .filter_map(|i| i.span)
            .collect();
        let light = read_knowing(broken, &known).root.unwrap();
        let items = items_of(&light);
        assert!(items[0].light && !items[1].light);
        let lit = [items[0].span.unwrap()].into_iter().collect();
        assert_eq!(light, stripped(full.root.unwrap(), &lit, 0));
        let cut = "<rss><channel><item><guid>a</guid></item><item><guid>b</guid><description>d";
        let full = read(cut);
        let known = items_of(full.root.as_ref().unwrap())
            .iter()
            .filter_map(|i| i.span)
            .collect::<std::collections::HashSet<u64>>();
        let light = read_knowing(cut, &known);
        assert_eq!(light.root, Some(stripped(full.root.unwrap(), &known, 0)));
        assert_eq!(light.error, full.error);
    }

    /// A document whose items a light read keeps missing is read in full after
    /// [`LIGHT_MISSES`] of them; one where it finds an item known goes on trying.
    #[test]
    fn light_reads_stop_after_many_misses() {
        let doc = |new: usize| {
            let items: String = (0..new)
                .map(|n| format!("<item><guid>n{n}</guid></item>"))
                .chain(std::iter::once("<item><guid>old</guid></item>".to_string()))
                .collect();
            format!("<rss><channel>{items}</channel></rss>")
        };
        for (new, light) in [(3, true), (LIGHT_MISSES - 1, true), (LIGHT_MISSES, false)] {
            let text = doc(new);
            let old = *spans(&text).last().unwrap();
            let known = old.into_iter().collect();
            let read = read_knowing(&text, &known).root.unwrap();
            let items = items_of(&read);
            assert_eq!(items.len(), new + 1);
            assert_eq!(items[new].light, light, "{new} new items");
            assert!(items[..new].iter().all(|i| !i.light));
        }
    }

    /// End tags that close no element, or several, leave quick-xml's namespace scopes as the
    /// elements open say: an item reads the same after a stray end tag as without it (its span
    /// is the same), and a binding declared in an item ends with it.
    #[test]
    fn namespaces_follow_the_elements_open() {
        let root = r#"<rss version="2.0" xmlns:c="http://purl.org/rss/1.0/modules/content/">"#;
        let item = "<item><guid>g</guid><c:encoded>Body</c:encoded></item>";
        let stray = format!("{root}<channel><title>T</x></y></title>{item}</channel></rss>");
        let clean = format!("{root}<channel><title>T</title>{item}</channel></rss>");
        let content = |doc: &str| {
            let r = root_of(doc);
            let it = items_of(&r)[0].clone();
            (it.span, it.first(Ns::Content, "encoded").map(Element::text))
        };
        assert_eq!(content(&stray), content(&clean));
        assert_eq!(content(&clean).1.as_deref(), Some("Body"));
        // An element left open in an item closes with it, and so do the item's bindings.
        let binding = r#"<item xmlns:c="http://purl.org/rss/1.0/modules/content/"><guid>z</guid>"#;
        let open = format!("<rss><channel>{binding}<br></item>{item}</channel></rss>");
        let closed = format!("<rss><channel>{binding}<br/></item>{item}</channel></rss>");
        let second = |doc: &str| {
            let r = root_of(doc);
            let it = items_of(&r)[1].clone();
            (it.span, it.first(Ns::Content, "encoded").is_some())
        };
        assert_eq!(second(&open), second(&closed));
        assert!(!second(&open).1);
        // Unclosed elements do not pile up scopes (quick-xml counts them in 16 bits).
        let many = format!(
            "<rss><channel>{}<item><guid>x</guid></item></channel></rss>",
            "<a><b></a>".repeat(70_000)
        );
        let limits = Limits {
            max_elements: 1_000_000,
            ..Limits::default()
        };
        let doc = read_within(&many, &limits, Instant::now() + limits.max_time);
        assert_eq!(doc.error, None);
        assert_eq!(items_of(doc.root.as_ref().unwrap()).len(), 1);
    }

    fn root_of(doc: &str) -> Element {
        read(doc).root.unwrap()
    }

    /// A light read looks at the deadline as often as a full read: a document read light past
    /// its deadline stops as it does read in full.
    #[test]
    fn light_reads_keep_the_deadline() {
        for lead in ["", "<!--c-->"] {
            let text = format!("<rss>{lead}{}</rss>", "<item></item>".repeat(3000));
            let known: std::collections::HashSet<u64> =
                spans(&text).into_iter().flatten().collect();
            let knows = |h: u64| known.contains(&h);
            let limits = Limits::default();
            let whole = read_within(&text, &limits, Instant::now());
            let light = read_skipping(&text, &limits, Instant::now(), Some(&knows));
            let timed_out = |d: &Document| {
                d.error
                    .as_ref()
                    .is_some_and(|e| e.message.contains("parse_timeout"))
            };
            assert!(timed_out(&whole) && timed_out(&light), "{lead}");
            assert!(items_of(light.root.as_ref().unwrap()).len() < 3000);
        }
    }

    /// Items under tags declaring more than [`LIGHT_TAGS`] bytes of namespaces are read in
    /// full: a light read copies the declarations in force with the reader.
    #[test]
    fn items_under_large_declarations_are_read_in_full() {
        for (size, light) in [(100, true), (LIGHT_TAGS, false)] {
            let ns = "x".repeat(size);
            let text = format!(
                "<rss xmlns:a=\"{ns}\"><channel><item><guid>g</guid></item></channel></rss>"
            );
            let known = spans(&text).into_iter().flatten().collect();
            let read = read_knowing(&text, &known).root.unwrap();
            assert_eq!(items_of(&read)[0].light, light, "{size}");
        }
    }

    /// Pieces of hostile feeds, for documents made at random.
    const PIECES: &[&str] = &[
        "<rss>",
        "<channel>",
        "</channel>",
        "<item>",
        "</item>",
        "<item/>",
        "<entry>",
        "</entry>",
        "<guid>",
        "</guid>",
        "<pubDate>",
        "</pubDate>",
        "<a>",
        "</a>",
        "<a/>",
        "x",
        "yy",
        "&amp;",
        "&nbsp;",
        "&#0;",
        "&zz;",
        "<![CDATA[</item>]]>",
        "<!--</item>-->",
        "<?pi </item>?>",
        "</rss>",
        "<b xmlns:c='http://purl.org/rss/1.0/modules/content/'>",
        "</b>",
        "<c:encoded>",
        "</c:encoded>",
        "<dc:date>",
        "</dc:date>",
        "<id>",
        "</id>",
        "</x>",
        "<item xml:base='http://a/'>",
        "<channel xml:lang='en'>",
        "<",
        "&",
        "<!DOCTYPE x>",
        "\n",
        "<guid>abcdefgh</guid>",
        "<feed>",
        "</feed>",
        "<guid/>",
        "<item a='1'>",
        "</guid >",
        "<entry xmlns='http://www.w3.org/2005/Atom'>",
        "</item\n>",
        "<date>",
        "</date>",
        "<guid>g</guid>",
    ];

    const ROOTS: &[&str] = &[
        "",
        "<rss>",
        "<rss version='2.0' xmlns:c='http://purl.org/rss/1.0/modules/content/'>",
        "<feed xmlns='http://www.w3.org/2005/Atom'>",
        "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' xmlns='http://purl.org/rss/1.0/'>",
        "<rss><channel>",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Whatever the document and whichever of its items are known, reading light gives the
        /// full read's tree with the light items cut to their identity children, and the same
        /// error.
        #[test]
        fn any_document_reads_light_as_in_full(
            root in 0..ROOTS.len(),
            pieces in proptest::collection::vec(0..PIECES.len(), 0..40),
            pick in proptest::collection::vec(proptest::bool::ANY, 0..12),
            bounds in 0..4usize,
        ) {
            let mut text = ROOTS[root].to_string();
            for p in pieces {
                text.push_str(PIECES[p]);
            }
            let limits = match bounds {
                0 => Limits::default(),
                1 => Limits { max_depth: 4, ..Limits::default() },
                2 => Limits { max_elements: 12, ..Limits::default() },
                _ => Limits { max_field_bytes: 3, max_depth: 3, max_elements: 20, ..Limits::default() },
            };
            let far = Instant::now() + std::time::Duration::from_secs(60);
            let full = read_within(&text, &limits, far);
            let Some(full_root) = full.root.clone() else {
                return Ok(());
            };
            fn spans_in(el: &Element, out: &mut Vec<u64>) {
                out.extend(el.span);
                el.elements().for_each(|e| spans_in(e, out));
            }
            let mut all = Vec::new();
            spans_in(&full_root, &mut all);
            let known: std::collections::HashSet<u64> = all
                .iter()
                .enumerate()
                .filter(|(n, _)| pick.get(*n).copied().unwrap_or(true))
                .map(|(_, s)| *s)
                .collect();
            let knows = |h: u64| known.contains(&h);
            let light = read_skipping(&text, &limits, far, Some(&knows));
            proptest::prop_assert_eq!(&light.error, &full.error);
            let light_root = light.root.unwrap();
            fn lit_in(el: &Element, out: &mut std::collections::HashSet<u64>) {
                if el.light {
                    out.extend(el.span);
                }
                el.elements().for_each(|e| lit_in(e, out));
            }
            let mut lit = std::collections::HashSet::new();
            lit_in(&light_root, &mut lit);
            proptest::prop_assert!(lit.is_subset(&known));
            proptest::prop_assert_eq!(light_root, stripped(full_root, &lit, 0));
        }
    }
}
