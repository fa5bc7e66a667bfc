//! An item's body, whatever shape the source gave it (HTML with ads and share blocks, plain
//! text, HTML carrying text in `<br>` blobs), → one clean structure: paragraphs, `<h2>`/`<h3>`
//! section headings, lists, figures with captions, and what cannot be restructured safely
//! (tables, quotes, code) kept as it was.
//!
//! The body is read into [`Block`]s, the rules run on blocks (never inside a sentence), and the
//! blocks are written back as HTML for the sanitiser, which always runs after this.
//!
//! Rules, in order: junk elements and tracking pixels dropped, lazy images promoted; text lines
//! read as paragraphs, bullets, numbered items; boilerplate blocks (share widgets, calls to
//! action: [`super::boilerplate`]) and the source's `strip_patterns` removed; photo credits
//! made captions; the title repeated at the start removed; short unpunctuated lines that
//! introduce paragraphs made headings; empty blocks dropped. The order makes the whole
//! idempotent: no later rule changes what an earlier one looked at.

use std::collections::HashSet;

use ego_tree::{NodeId, NodeRef};
use regex::Regex;
use scraper::{Html, Node, Selector};

use super::boilerplate;

/// What the body rules need besides the body.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules<'a> {
    /// The item's title (plain text), to find it repeated at the top.
    pub title: &'a str,
    /// Per-source regexes; a block whose text matches one is removed.
    pub strip_patterns: &'a [Regex],
    /// Per-source CSS selectors of elements to remove.
    pub remove_selectors: &'a [Selector],
}

/// The normalised body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Body {
    /// Structured HTML, not yet sanitised (relative URLs still relative).
    pub html: String,
    /// The lead as plain text: the first paragraph, with the blocks after it when it is too
    /// short to say anything alone ("What's up?", "Updates include:"). Never a caption.
    pub lead: Option<String>,
    /// The first image's `src` as written (maybe relative).
    pub first_image: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A heading at the source's `level` (1-6; 0: a line found to be a heading, a section
    /// heading). Rendered by rank, not by level: the shallowest level in the body is `<h2>`,
    /// deeper ones `<h3>`, so a body of `<h4>`s and one of `<h2>`s come out alike, and our own
    /// output reads back the same.
    Heading(u8),
    Para,
    List {
        ordered: bool,
        items: Vec<String>,
    },
    Figure {
        img: Option<String>,
        caption: Option<String>,
    },
    /// Kept as it came: tables, quotes, code, nested lists, allowed embeds.
    Raw,
}

#[derive(Debug, Clone, PartialEq)]
struct Block {
    kind: Kind,
    /// Inline HTML of a heading or paragraph; the whole element for `Raw`.
    html: String,
    /// Plain text, white space collapsed.
    text: String,
    /// A paragraph from a text line or a bold-only paragraph: may become a heading.
    heading_candidate: bool,
    /// Marked as a credit by the source (`class="photo-credit"`).
    credit_hint: bool,
}

impl Block {
    fn new(kind: Kind, html: String, text: String) -> Block {
        Block {
            kind,
            html,
            text,
            heading_candidate: false,
            credit_hint: false,
        }
    }

    fn para(html: String, text: String) -> Block {
        Block::new(Kind::Para, html, text)
    }

    /// A block kept as it came; its text is read from its markup.
    fn raw(html: String, r: Reader) -> Block {
        let text = r.plain(&html);
        Block::new(Kind::Raw, html, text)
    }
}

/// Normalises a body given as HTML (`is_html`) or as plain text.
pub fn normalize_body(input: &str, is_html: bool, rules: &BodyRules<'_>) -> Body {
    normalize_body_reading(input, is_html, rules, false)
}

/// [`normalize_body`], parsing every fragment again when `reparse` (the tests compare both).
fn normalize_body_reading(
    input: &str,
    is_html: bool,
    rules: &BodyRules<'_>,
    reparse: bool,
) -> Body {
    let (mut blocks, r) = if is_html {
        html_blocks(input, rules.remove_selectors, reparse)
    } else {
        let r = Reader { reparse };
        (text_blocks(input, r), r)
    };
    blocks.retain(|b| keep(b, rules.strip_patterns, r));
    make_captions(&mut blocks);
    remove_repeated_title(&mut blocks, rules.title);
    make_headings(&mut blocks);
    blocks.retain(|b| !is_empty(b));
    let lead = lead_text(&blocks);
    let first_image = blocks.iter().find_map(|b| match &b.kind {
        Kind::Figure { img: Some(img), .. } => r.first_src(img),
        _ => None,
    });
    Body {
        html: render(&blocks),
        lead,
        first_image,
    }
}

/// A lead shorter than this takes the next blocks of text with it.
const LEAD_MIN_CHARS: usize = 120;

fn lead_text(blocks: &[Block]) -> Option<String> {
    let mut lead = String::new();
    for b in blocks {
        if matches!(b.kind, Kind::Figure { .. }) || b.text.is_empty() {
            continue;
        }
        if !lead.is_empty() {
            lead.push(' ');
        }
        lead.push_str(&b.text);
        if lead.chars().count() >= LEAD_MIN_CHARS {
            break;
        }
    }
    (!lead.is_empty()).then_some(lead)
}

// ---------------------------------------------------------------------------------------------
// Plain text → blocks

/// A line of text: inline HTML and its plain text.
#[derive(Debug, Clone)]
struct Line {
    html: String,
    text: String,
}

fn text_blocks(text: &str, r: Reader) -> Vec<Block> {
    let mut groups: Vec<Vec<Line>> = vec![Vec::new()];
    for raw in text.lines() {
        let t = super::html::collapse(raw);
        if t.is_empty() {
            if !groups.last().is_some_and(Vec::is_empty) {
                groups.push(Vec::new());
            }
            continue;
        }
        let html = html_escape::encode_text(&t).into_owned();
        groups
            .last_mut()
            .expect("groups starts non-empty")
            .push(Line { html, text: t });
    }
    let mut blocks = Vec::new();
    for g in groups {
        lines_to_blocks(g, &mut blocks, r);
    }
    blocks
}

/// A bullet at the start of a line: strong ones (•, ·, ▪, ●, *) make a list item on their own;
/// dashes (-, –, —) also open direct speech in Russian, so they need company (see
/// [`lines_to_blocks`]).
fn bullet(text: &str) -> Option<(bool, &str)> {
    let mut chars = text.char_indices();
    let (_, c) = chars.next()?;
    let strong = matches!(c, '•' | '·' | '▪' | '●' | '◦' | '*');
    let weak = matches!(c, '-' | '–' | '—');
    if !strong && !weak {
        return None;
    }
    let rest = &text[c.len_utf8()..];
    // "-5 degrees", "*emphasis*": a bullet is followed by a space.
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim_start();
    (!rest.is_empty()).then_some((strong, rest))
}

/// "1. text", "2) text": the number and the rest.
fn numbered(text: &str) -> Option<(u32, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 3 {
        return None;
    }
    let n: u32 = text[..digits].parse().ok()?;
    let rest = text[digits..].strip_prefix(['.', ')'])?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim_start();
    (!rest.is_empty()).then_some((n, rest))
}

fn ends_sentence(text: &str) -> bool {
    let t = text.trim_end_matches(['"', '»', '”', '\'', ')', '’']);
    t.ends_with(['.', '!', '?', '…', ':', ';', ','])
}

/// Drops the bullet or number from a line's inline HTML, keeping its markup.
fn strip_marker(line: &Line, rest: &str) -> String {
    let skip = line.text.len() - rest.len();
    let marker = &line.text[..skip];
    let mut html = line.html.as_str();
    // The marker is plain text at the start of the line (maybe after opening tags).
    let lead = html.len() - html.trim_start().len();
    html = &html[lead..];
    let escaped = html_escape::encode_text(marker.trim_end()).into_owned();
    if let Some(after) = html.strip_prefix(escaped.as_str()) {
        after.trim_start().to_string()
    } else {
        html_escape::encode_text(rest).into_owned()
    }
}

/// One group of consecutive lines (no blank line between) → blocks.
fn lines_to_blocks(lines: Vec<Line>, out: &mut Vec<Block>, r: Reader) {
    // A hard-wrapped sentence continues on a line that starts in lower case.
    let mut units: Vec<Line> = Vec::new();
    for line in lines {
        if let Some(prev) = units.last_mut()
            && bullet(&prev.text).is_none()
            && !ends_sentence(&prev.text)
            && line.text.chars().next().is_some_and(char::is_lowercase)
        {
            prev.html.push(' ');
            prev.html.push_str(&line.html);
            prev.text.push(' ');
            prev.text.push_str(&line.text);
            continue;
        }
        units.push(line);
    }
    let mut i = 0;
    while i < units.len() {
        // Bullets: strong ones always; dashes when two or more follow each other and they read
        // as a list (introduced by a colon, or none of them ends a sentence).
        let run: Vec<(bool, &str)> = units[i..].iter().map_while(|u| bullet(&u.text)).collect();
        let intro_colon = out
            .last()
            .is_some_and(|b: &Block| b.text.trim_end().ends_with(':'));
        let is_list = !run.is_empty()
            && (run.iter().all(|(strong, _)| *strong)
                || (run.len() >= 2 && (intro_colon || run.iter().all(|(_, r)| !ends_sentence(r)))));
        if is_list {
            let items = units[i..i + run.len()]
                .iter()
                .zip(&run)
                .map(|(u, (_, rest))| strip_marker(u, rest))
                .collect();
            push_list(out, false, items, r);
            i += run.len();
            continue;
        }
        // Numbered items: two or more, counting up by one.
        let nums: Vec<(u32, &str)> = units[i..].iter().map_while(|u| numbered(&u.text)).collect();
        let counting = nums.windows(2).all(|w| w[1].0 == w[0].0 + 1);
        if nums.len() >= 2 && counting {
            let items = units[i..i + nums.len()]
                .iter()
                .zip(&nums)
                .map(|(u, (_, rest))| strip_marker(u, rest))
                .collect();
            push_list(out, true, items, r);
            i += nums.len();
            continue;
        }
        let u = &units[i];
        // A line that is bold from end to end is styled, not emphasised: unwrap it.
        if let Some(inner) = r.bold_only(&u.html) {
            unwrapped_bold(inner, u.text.clone(), out, r);
        } else {
            let mut b = Block::para(u.html.clone(), u.text.clone());
            b.heading_candidate = true;
            out.push(b);
        }
        i += 1;
    }
}

fn push_list(out: &mut Vec<Block>, ordered: bool, items: Vec<String>, r: Reader) {
    let text = items
        .iter()
        .map(|i| r.plain(i))
        .collect::<Vec<_>>()
        .join(" ");
    out.push(Block::new(
        Kind::List { ordered, items },
        String::new(),
        text,
    ));
}

// ---------------------------------------------------------------------------------------------
// HTML → blocks

/// Elements dropped with everything inside them (shared with text extraction, so a summary
/// never holds text the body dropped).
fn is_junk(name: &str) -> bool {
    super::html::is_dropped(name)
}

/// Elements kept whole (after sanitising): their structure is not ours to redo.
fn is_raw(name: &str) -> bool {
    matches!(
        name,
        "table" | "blockquote" | "pre" | "dl" | "iframe" | "details" | "hr"
    )
}

fn is_container(name: &str) -> bool {
    matches!(
        name,
        "div"
            | "section"
            | "article"
            | "main"
            | "header"
            | "footer"
            | "aside"
            | "nav"
            | "center"
            | "body"
            | "html"
            | "address"
            | "fieldset"
            | "picture"
    )
}

fn dimension(v: Option<&str>) -> Option<u32> {
    v?.trim().trim_end_matches("px").parse().ok()
}

/// Known counters and beacons; also anything sized 1×1 (or 0).
const PIXEL_HINTS: &[&str] = &[
    "pixel",
    "counter",
    "beacon",
    "/track",
    "tracker",
    "1x1",
    "spacer.gif",
    "feedburner.com/~r",
    "feeds.feedburner.com/~ff",
    "stats.wordpress.com",
    "pixel.wp.com",
    "mc.yandex.ru",
    "google-analytics.com",
    "doubleclick.net",
];

/// The attributes of an `<img>` that the body rules read, found in one pass over them (each
/// `Element::attr` is a scan that interns the name first: some twenty per image were a tenth of
/// the body rules).
#[derive(Default)]
struct ImgAttrs<'a> {
    src: Option<&'a str>,
    /// The lazy-loading attributes, in the order they are preferred.
    lazy: [Option<&'a str>; 5],
    srcset: Option<&'a str>,
    data_srcset: Option<&'a str>,
    alt: Option<&'a str>,
    title: Option<&'a str>,
    width: Option<&'a str>,
    height: Option<&'a str>,
    style: Option<&'a str>,
}

impl<'a> ImgAttrs<'a> {
    fn of(e: &'a scraper::node::Element) -> ImgAttrs<'a> {
        let mut a = ImgAttrs::default();
        for (k, v) in e.attrs() {
            let slot = match k {
                "src" => &mut a.src,
                "data-src" => &mut a.lazy[0],
                "data-lazy-src" => &mut a.lazy[1],
                "data-original" => &mut a.lazy[2],
                "data-lazy" => &mut a.lazy[3],
                "data-url" => &mut a.lazy[4],
                "srcset" => &mut a.srcset,
                "data-srcset" => &mut a.data_srcset,
                "alt" => &mut a.alt,
                "title" => &mut a.title,
                "width" => &mut a.width,
                "height" => &mut a.height,
                "style" => &mut a.style,
                _ => continue,
            };
            // The first of a repeated name counts, as `Element::attr` finds it.
            slot.get_or_insert(v);
        }
        a
    }

    /// The real source of the image: lazy-loading attributes win over a placeholder `src`.
    fn source(&self) -> Option<&'a str> {
        let src = self.src.map(str::trim).filter(|s| !s.is_empty());
        let lazy = self
            .lazy
            .iter()
            .flatten()
            .next()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty());
        let placeholder = src.is_none_or(|s| {
            let l = s.to_ascii_lowercase();
            l.starts_with("data:")
                || l.contains("placeholder")
                || l.contains("blank.")
                || l.contains("lazy")
        });
        if placeholder { lazy.or(src) } else { src }
    }

    fn is_tracking_pixel(&self) -> bool {
        let (w, h) = (dimension(self.width), dimension(self.height));
        if w.is_some_and(|w| w <= 1) || h.is_some_and(|h| h <= 1) {
            return true;
        }
        if let Some(style) = self.style {
            let style = style.to_ascii_lowercase().replace(' ', "");
            if style.contains("display:none")
                || style.contains("width:1px")
                || style.contains("height:1px")
            {
                return true;
            }
        }
        let src = self.source().unwrap_or_default().to_ascii_lowercase();
        src.is_empty() || PIXEL_HINTS.iter().any(|p| src.contains(p))
    }

    /// The image as the body writes it: its real source and the attributes kept.
    fn html(&self) -> String {
        let mut s = String::from("<img");
        let srcset = self.data_srcset.or(self.srcset);
        for (k, v) in [
            ("src", self.source()),
            ("srcset", srcset),
            ("alt", self.alt),
            ("title", self.title),
            ("width", self.width),
            ("height", self.height),
        ] {
            if let Some(v) = v {
                s.push(' ');
                s.push_str(k);
                s.push_str("=\"");
                s.push_str(&html_escape::encode_double_quoted_attribute(v));
                s.push('"');
            }
        }
        s.push('>');
        s
    }
}

/// The image as the body writes it, unless it is a tracking pixel.
fn kept_image(e: &scraper::node::Element) -> Option<String> {
    let img = ImgAttrs::of(e);
    (!img.is_tracking_pixel()).then(|| img.html())
}

/// Serialises an inline subtree, dropping junk and pixels and promoting lazy images.
fn serialize(node: NodeRef<'_, Node>, drop: &HashSet<NodeId>, out: &mut String) {
    if drop.contains(&node.id()) {
        return;
    }
    match node.value() {
        Node::Text(t) => out.push_str(&html_escape::encode_text(&super::html::without_controls(t))),
        Node::Element(e) => {
            let name = e.name();
            if is_junk(name) {
                return;
            }
            if name == "img" {
                if let Some(img) = kept_image(e) {
                    out.push_str(&img);
                }
                return;
            }
            if name == "iframe" {
                if let Some(src) = e.attr("src").filter(|s| super::html::allowed_embed(s)) {
                    out.push_str(&format!(
                        "<iframe src=\"{}\" allowfullscreen></iframe>",
                        html_escape::encode_double_quoted_attribute(src)
                    ));
                }
                return;
            }
            if !is_inline_kept(name) {
                for c in node.children() {
                    serialize(c, drop, out);
                }
                return;
            }
            out.push('<');
            out.push_str(name);
            // Names no allow-list holds (`x"y`, `=z`, `@click`) are left out: the sanitiser
            // would drop them, and written out they would read back as other attributes.
            for (k, v) in e.attrs().filter(|(k, _)| is_plain_name(k)) {
                out.push(' ');
                out.push_str(k);
                out.push_str("=\"");
                out.push_str(&html_escape::encode_double_quoted_attribute(v));
                out.push('"');
            }
            out.push('>');
            if is_void(name) {
                return;
            }
            for c in node.children() {
                serialize(c, drop, out);
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        _ => {}
    }
}

/// Whether an attribute name is made of the bytes every name on the sanitiser's allow-list is
/// made of (those its quick path reads).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(super::own_clean::is_name_byte)
}

/// A paragraph's content as lines: a `<br>` ends a line, also inside an element that is
/// unwrapped on output (an unknown one), where the next pass will see it as the paragraph's own.
fn paragraph_lines(node: NodeRef<'_, Node>, drop: &HashSet<NodeId>, inner: &mut Inline) {
    for c in node.children() {
        if drop.contains(&c.id()) {
            continue;
        }
        match c.value() {
            Node::Element(el) if el.name() == "br" => inner.line_break(),
            Node::Element(el)
                if !is_inline_kept(el.name())
                    && !is_junk(el.name())
                    && !matches!(el.name(), "img" | "iframe") =>
            {
                paragraph_lines(c, drop, inner)
            }
            _ => {
                let mut s = String::new();
                serialize(c, drop, &mut s);
                inner.push_html(&s);
            }
        }
    }
}

/// Elements kept as elements when serialising: those the sanitiser allows. Others are unwrapped
/// here (their content kept), so that what this stage sees is what readers get.
fn is_inline_kept(name: &str) -> bool {
    super::html::allowed_tag(name)
}

fn is_void(name: &str) -> bool {
    matches!(
        name,
        "br" | "img" | "hr" | "wbr" | "source" | "area" | "col" | "track" | "input"
    )
}

/// A block's markup parsed. A parser drops a U+FEFF at the very start of its input as a
/// byte-order mark; in a block it is text (`<p>\u{feff}</p>` must read back as it was written),
/// so a second one is put in front for the parser to drop.
fn parse_block(html: &str) -> Html {
    if html.starts_with('\u{feff}') {
        Html::parse_fragment(&format!("\u{feff}{html}"))
    } else {
        Html::parse_fragment(html)
    }
}

fn attr_of_parsed(tag_html: &str, attr: &str) -> Option<String> {
    let frag = parse_block(tag_html);
    frag.tree.root().descendants().find_map(|n| {
        n.value()
            .as_element()
            .and_then(|e| e.attr(attr))
            .map(String::from)
    })
}

fn inner_html(node: NodeRef<'_, Node>, drop: &HashSet<NodeId>) -> String {
    let mut s = String::new();
    for c in node.children() {
        serialize(c, drop, &mut s);
    }
    s.trim().to_string()
}

fn outer_html(node: NodeRef<'_, Node>, drop: &HashSet<NodeId>) -> String {
    let mut s = String::new();
    serialize(node, drop, &mut s);
    s
}

fn plain_parsed(html: &str) -> String {
    // As in `parse_block`: the U+FEFF that starts a block is its text.
    if html.starts_with('\u{feff}') {
        return super::html::collapse(&super::html::text_of(&format!("\u{feff}{html}")));
    }
    super::html::collapse(&super::html::text_of(html))
}

/// How the facts the rules need about a block's markup (its text, whether it is bold from end
/// to end, the text of its links, its first `src`) are read. The markup is our own
/// serialisation, so a linear scan ([`super::own_markup`]) reads them as a parse of it would,
/// unless the body holds an element after which a parser would not rebuild our tree from our
/// markup: then each fragment is parsed again, as it always used to be.
#[derive(Debug, Clone, Copy)]
struct Reader {
    reparse: bool,
}

impl Reader {
    /// The plain text, white space collapsed.
    fn plain(self, html: &str) -> String {
        // The parse-based reading flattens markup nested too deep; ours rarely is.
        if self.reparse
            || matches!(
                super::html::limit_nesting(html, super::html::MAX_NESTING),
                std::borrow::Cow::Owned(_)
            )
        {
            plain_parsed(html)
        } else {
            super::own_markup::text(html)
        }
    }

    fn bold_only(self, html: &str) -> Option<String> {
        if self.reparse {
            bold_only_parsed(html)
        } else {
            super::own_markup::bold_only(html)
        }
    }

    fn link_text(self, html: &str) -> String {
        if self.reparse {
            link_text_parsed(html)
        } else {
            super::own_markup::link_text(html)
        }
    }

    fn first_src(self, html: &str) -> Option<String> {
        if self.reparse {
            attr_of_parsed(html, "src")
        } else {
            super::own_markup::first_src(html)
        }
    }
}

/// Elements whose start and end tags are not written out but whose presence made the parser
/// build a tree that our markup, read again, would not give: a `<marquee>` is a scope boundary,
/// so it can hold a `<p>` inside a `<p>` or an `<a>` inside an `<a>`.
fn needs_reparse(name: &str) -> bool {
    name == "marquee"
}

/// Collects inline content (text, links, emphasis) between blocks; `<br>` splits it in lines,
/// two `<br>` in a row in groups.
#[derive(Default)]
struct Inline {
    groups: Vec<Vec<String>>,
    current: String,
}

impl Inline {
    fn push_html(&mut self, html: &str) {
        self.current.push_str(html);
    }

    fn line_break(&mut self) {
        let line = std::mem::take(&mut self.current);
        let group = match self.groups.last_mut() {
            Some(g) => g,
            None => {
                self.groups.push(Vec::new());
                self.groups.last_mut().expect("just pushed")
            }
        };
        if line.trim().is_empty() {
            // A blank line (`<br><br>`): a new group.
            if !group.is_empty() {
                self.groups.push(Vec::new());
            }
        } else {
            group.push(line);
        }
    }

    fn flush(&mut self, out: &mut Vec<Block>, paragraph: bool, r: Reader) {
        self.line_break();
        let groups = std::mem::take(&mut self.groups);
        let lines: usize = groups.iter().map(Vec::len).sum();
        if lines == 0 {
            return;
        }
        if lines == 1 && paragraph {
            // A plain paragraph: no text rules but the bold-heading one.
            let html = groups.concat().concat().trim().to_string();
            html_paragraph(html, out, r);
            return;
        }
        for g in groups {
            let lines = g
                .into_iter()
                .map(|h| {
                    let html = h.trim().to_string();
                    Line {
                        text: r.plain(&html),
                        html,
                    }
                })
                .filter(|l| !l.text.is_empty() || l.html.contains("<img"))
                .collect();
            lines_to_blocks(lines, out, r);
        }
    }
}

/// A figure of an image alone (its markup).
fn image_figure(img: String) -> Block {
    Block::new(
        Kind::Figure {
            img: Some(img),
            caption: None,
        },
        String::new(),
        String::new(),
    )
}

/// A `<p>`'s content as a block: an image alone is a figure; a paragraph that is bold from
/// end to end may be a heading (decided later) and is unwrapped otherwise.
fn html_paragraph(html: String, out: &mut Vec<Block>, r: Reader) {
    let text = r.plain(&html);
    let embeds = ["<iframe", "<video", "<audio", "<table", "<object", "<embed"];
    if text.is_empty() && html.contains("<img") && !embeds.iter().any(|t| html.contains(t)) {
        // Images and nothing else: a figure each, without the inline markup around them. A
        // figure is read back as its first image alone, so one holding `<em><img></em>` or
        // two images would not come out of the next pass as it went in.
        let frag = parse_block(&html);
        for d in frag.root_element().descendants() {
            if let Some(el) = d.value().as_element()
                && el.name() == "img"
                && let Some(img) = kept_image(el)
            {
                out.push(image_figure(img));
            }
        }
        return;
    }
    if text.is_empty() && html.contains("<img") {
        out.push(Block::new(
            Kind::Figure {
                img: Some(html),
                caption: None,
            },
            String::new(),
            text,
        ));
        return;
    }
    match r.bold_only(&html) {
        Some(inner) => unwrapped_bold(inner, text, out, r),
        None => out.push(Block::para(html, text)),
    }
}

/// A paragraph or line that was bold from end to end, unwrapped (`inner`, its plain `text`):
/// paragraphs that may become headings. Once unwrapped, a `<br>` that was inside the bold is
/// the paragraph's own, and the next pass ends a line there (`<p><b>a<br>b</b></p>` gives
/// `<p>a<br>b</p>`, read again as two lines); so the content is read as a paragraph's lines
/// now, as the next pass will read it.
fn unwrapped_bold(inner: String, text: String, out: &mut Vec<Block>, r: Reader) {
    if !inner.contains("<br") {
        let mut b = Block::para(inner, text);
        b.heading_candidate = true;
        out.push(b);
        return;
    }
    let frag = parse_block(&inner);
    let mut lines = Inline::default();
    paragraph_lines(*frag.root_element(), &HashSet::new(), &mut lines);
    let start = out.len();
    lines.flush(out, true, r);
    for b in &mut out[start..] {
        if b.kind == Kind::Para {
            b.heading_candidate = true;
        }
    }
}

/// The content of `<strong>…</strong>` / `<b>…</b>` (with any attributes) when that element is
/// all there is; nested ones (`<b><strong>…</strong></b>`, as an unclosed tag repeated in the
/// source leaves) are all unwrapped, so a second pass finds nothing more to unwrap.
fn bold_only_parsed(html: &str) -> Option<String> {
    super::own_markup::unwrap_all(html, bold_only_once)
}

fn bold_only_once(html: &str) -> Option<String> {
    if !html.contains("<b") && !html.contains("<B") && !html.contains("<strong") {
        return None;
    }
    let frag = parse_block(html);
    let root = frag.root_element();
    let mut only = None;
    for c in root.children() {
        match c.value() {
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Element(e) if matches!(e.name(), "b" | "strong") && only.is_none() => {
                only = Some(c);
            }
            _ => return None,
        }
    }
    let inner = inner_html(only?, &HashSet::new());
    Some(inner.trim().to_string())
}

fn html_blocks(html: &str, remove: &[Selector], mut reparse: bool) -> (Vec<Block>, Reader) {
    let html = super::html::limit_nesting(html, super::html::MAX_NESTING);
    let doc = Html::parse_fragment(&html);
    let mut drop = HashSet::new();
    for sel in remove {
        for el in doc.select(sel) {
            tracing::debug!(selector = ?sel, "remove_selectors removed an element");
            drop.insert(el.id());
        }
    }
    // Markup with no block element at all is text with a few tags: its newlines are breaks.
    let mut newline_breaks = true;
    for e in doc
        .tree
        .root()
        .descendants()
        .filter_map(|n| n.value().as_element())
    {
        newline_breaks &= !is_block_name(e.name());
        reparse |= needs_reparse(e.name());
    }
    let mut blocks = Vec::new();
    let mut inline = Inline::default();
    let ctx = Walk {
        drop: &drop,
        newline_breaks,
        r: Reader { reparse },
    };
    walk(doc.tree.root(), &ctx, &mut blocks, &mut inline);
    inline.flush(&mut blocks, false, ctx.r);
    (blocks, ctx.r)
}

fn has_class(e: &scraper::node::Element, words: &[&str]) -> bool {
    e.attr("class")
        .is_some_and(|c| words.iter().any(|w| c.to_ascii_lowercase().contains(w)))
}

fn is_block_name(name: &str) -> bool {
    matches!(
        name,
        "p" | "br" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "ul" | "ol" | "li" | "figure"
    ) || is_raw(name)
        || is_container(name)
}

/// Parts of lists, tables and figures, which the sanitiser and the next parse would move out of
/// a paragraph.
fn is_part(name: &str) -> bool {
    matches!(
        name,
        "li" | "figcaption"
            | "dd"
            | "dt"
            | "tr"
            | "td"
            | "th"
            | "tbody"
            | "thead"
            | "tfoot"
            | "caption"
            | "colgroup"
            | "summary"
            | "legend"
    )
}

/// An inline element wrapped around blocks (`<a><div>…</div></a>`) or stray parts of them
/// (`<span><dt>…</dt></span>`) is walked like a container: a paragraph cannot hold blocks.
fn has_block_inside(node: NodeRef<'_, Node>) -> bool {
    node.descendants().skip(1).any(|d| {
        d.value()
            .as_element()
            .is_some_and(|e| is_block_name(e.name()) || is_part(e.name()))
    })
}

/// Whether `node` (a heading, whose content is inline) has blocks inside (a `<br>` is inline
/// there).
fn holds_blocks(node: NodeRef<'_, Node>) -> bool {
    node.descendants().skip(1).any(|d| {
        d.value()
            .as_element()
            .is_some_and(|e| e.name() != "br" && is_block_name(e.name()))
    })
}

/// Whether an element inside `node` that is written out (not dropped, not inside a dropped
/// one) is named as `f` wants: what the next pass reads of `node` is what it holds.
fn writes_element(
    node: NodeRef<'_, Node>,
    drop: &HashSet<NodeId>,
    f: &impl Fn(&str) -> bool,
) -> bool {
    node.children().any(|c| {
        if drop.contains(&c.id()) {
            return false;
        }
        match c.value().as_element() {
            Some(e) if is_junk(e.name()) => false,
            Some(e) => f(e.name()) || writes_element(c, drop, f),
            None => false,
        }
    })
}

struct Walk<'a> {
    drop: &'a HashSet<NodeId>,
    /// Text newlines are line breaks (the body has no block markup).
    newline_breaks: bool,
    r: Reader,
}

fn walk(node: NodeRef<'_, Node>, ctx: &Walk<'_>, out: &mut Vec<Block>, inline: &mut Inline) {
    for child in node.children() {
        visit(child, ctx, out, inline);
    }
}

/// Reads one node of a body (a child [`walk`] is at) into blocks and inline content.
fn visit(child: NodeRef<'_, Node>, ctx: &Walk<'_>, out: &mut Vec<Block>, inline: &mut Inline) {
    let drop = ctx.drop;
    let r = ctx.r;
    if drop.contains(&child.id()) {
        return;
    }
    let e = match child.value() {
        Node::Text(t) if ctx.newline_breaks && t.contains('\n') => {
            for (n, piece) in t.split('\n').enumerate() {
                if n > 0 {
                    inline.line_break();
                }
                inline.push_html(&html_escape::encode_text(&super::html::without_controls(
                    piece,
                )));
            }
            return;
        }
        Node::Text(_) => {
            let mut s = String::new();
            serialize(child, drop, &mut s);
            inline.push_html(&s);
            return;
        }
        Node::Element(e) => e,
        _ => return,
    };
    let name = e.name();
    match name {
        _ if is_junk(name) => {}
        "br" => inline.line_break(),
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" if holds_blocks(child) => {
            // A heading holding paragraphs or lists (as `<h6><p>` parses) is a container:
            // a heading's content is inline, so its blocks are read as blocks.
            inline.flush(out, false, r);
            walk(child, ctx, out, inline);
            inline.flush(out, false, r);
        }
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
            inline.flush(out, false, r);
            let html = inner_html(child, drop);
            let text = r.plain(&html);
            let level = name[1..].parse().unwrap_or(2);
            let kind = Kind::Heading(level);
            out.push(Block::new(kind, html, text));
        }
        "p" => {
            inline.flush(out, false, r);
            let credit = has_class(e, &["credit", "caption", "copyright"]);
            let start = out.len();
            let mut inner = Inline::default();
            paragraph_lines(child, drop, &mut inner);
            inner.flush(out, true, r);
            if credit {
                for b in &mut out[start..] {
                    b.credit_hint = true;
                }
            }
        }
        "ul" | "ol" => {
            inline.flush(out, false, r);
            let nested = writes_element(child, drop, &|n| {
                matches!(n, "ul" | "ol" | "table" | "p" | "div")
            });
            if nested {
                let html = outer_html(child, drop);
                out.push(Block::raw(html, r));
            } else {
                // Text straight inside the list (outside any <li>) is shown by browsers and
                // read by the summary: it stays, as a paragraph between the list's parts.
                let mut items: Vec<String> = Vec::new();
                let mut stray = Inline::default();
                for c in child.children() {
                    // Junk goes with everything inside it, here as anywhere else.
                    if drop.contains(&c.id())
                        || c.value().as_element().is_some_and(|x| is_junk(x.name()))
                    {
                        continue;
                    }
                    if c.value().as_element().is_some_and(|x| x.name() == "li") {
                        stray.flush(out, true, r);
                        let h = inner_html(c, drop);
                        if !r.plain(&h).is_empty() || h.contains("<img") {
                            items.push(h);
                        }
                        continue;
                    }
                    // Blocks straight inside the list (`<ol><h4>`, `<ol><p>`) are read as
                    // they are anywhere else: written into a line, the sanitiser's parse
                    // would move them out of its paragraph and the next pass would read them
                    // as blocks. Containers and parts of blocks (an <li> inside an unknown
                    // element) are walked; inline content is a line. Only what comes out of
                    // them ends the list (an empty heading between two items does not).
                    if let Some(el) = c.value().as_element()
                        && (is_block_name(el.name())
                            || is_part(el.name())
                            || (!is_void(el.name()) && has_block_inside(c)))
                        && el.name() != "br"
                    {
                        let mut blocks = Vec::new();
                        let mut inner = Inline::default();
                        if is_block_name(el.name()) && !is_container(el.name()) {
                            visit(c, ctx, &mut blocks, &mut inner);
                        } else {
                            walk(c, ctx, &mut blocks, &mut inner);
                        }
                        inner.flush(&mut blocks, false, r);
                        // (Empty blocks would be dropped at the end anyway.)
                        blocks.retain(|b| !is_empty(b));
                        if !blocks.is_empty() && !items.is_empty() {
                            push_list(out, name == "ol", std::mem::take(&mut items), r);
                        }
                        // Stray text on either side stays apart (it is already after the
                        // items before it).
                        stray.flush(out, true, r);
                        out.append(&mut blocks);
                        continue;
                    }
                    let mut s = String::new();
                    serialize(c, drop, &mut s);
                    if r.plain(&s).is_empty() && !s.contains("<img") {
                        continue;
                    }
                    if !items.is_empty() {
                        push_list(out, name == "ol", std::mem::take(&mut items), r);
                    }
                    stray.push_html(&s);
                }
                if !items.is_empty() {
                    push_list(out, name == "ol", items, r);
                }
                stray.flush(out, true, r);
            }
        }
        "figure" => {
            inline.flush(out, false, r);
            let img = child
                .descendants()
                .find(|d| d.value().as_element().is_some_and(|x| x.name() == "img"))
                .and_then(|d| {
                    let el = d.value().as_element()?;
                    if drop.contains(&d.id()) {
                        return None;
                    }
                    kept_image(el)
                });
            let caption = child
                .descendants()
                .find(|d| {
                    d.value()
                        .as_element()
                        .is_some_and(|x| x.name() == "figcaption")
                })
                .map(|d| inner_html(d, drop))
                .filter(|c| !r.plain(c).is_empty());
            // An embed or a table makes the figure one to keep as it is, when it is written
            // out: media and iframes that are dropped (`<audio>`, an embed from elsewhere)
            // leave a figure the next pass reads as one without them.
            let html = outer_html(child, drop);
            let other = ["<iframe", "<table"].iter().any(|t| html.contains(t));
            if other {
                out.push(Block::raw(html, r));
            } else if img.is_some() || caption.is_some() {
                let text = caption.as_deref().map(|c| r.plain(c)).unwrap_or_default();
                out.push(Block::new(
                    Kind::Figure { img, caption },
                    String::new(),
                    text,
                ));
            } else {
                // Neither an image nor a caption: what it holds is read like a container's
                // content, not lost (the summary, read as text, would keep it).
                walk(child, ctx, out, inline);
                inline.flush(out, false, r);
            }
        }
        "img" => {
            let Some(img) = kept_image(e) else {
                tracing::debug!(src = ?e.attr("src"), "dropped a tracking pixel");
                return;
            };
            inline.flush(out, false, r);
            out.push(image_figure(img));
        }
        _ if is_raw(name) => {
            inline.flush(out, false, r);
            let html = outer_html(child, drop);
            if !html.is_empty() {
                out.push(Block::raw(html, r));
            }
        }
        // Parts of lists, tables and figures found outside their parent (`<dd>` without
        // `<dl>`) are walked like containers: kept inline, the sanitiser and the next
        // parse would move them out of the paragraph.
        _ if is_container(name) || is_part(name) || (!is_void(name) && has_block_inside(child)) => {
            inline.flush(out, false, r);
            let start = out.len();
            walk(child, ctx, out, inline);
            inline.flush(out, false, r);
            if has_class(e, &["credit", "caption", "copyright"]) {
                for b in &mut out[start..] {
                    b.credit_hint = true;
                }
            }
        }
        _ => {
            // Inline: links, emphasis, spans, code...
            let mut s = String::new();
            serialize(child, drop, &mut s);
            inline.push_html(&s);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rules on blocks

/// Text compared for sameness: case and ё folded, punctuation and quotes ignored.
fn comparable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    comparable_each(s, |c| {
        out.push(c);
        true
    });
    out
}

/// Whether `s` is `target` (a [`comparable`] text) once comparable: stops at the first
/// difference, where a paragraph that is not the title differs within a few characters.
fn reads_as(s: &str, target: &str) -> bool {
    let mut want = target.chars();
    comparable_each(s, |c| want.next() == Some(c)) && want.next().is_none()
}

/// Gives the characters of `comparable(s)` to `emit` in order while it returns true; false when
/// it stopped.
fn comparable_each(s: &str, mut emit: impl FnMut(char) -> bool) -> bool {
    let (mut space, mut started) = (false, false);
    super::fold::each_folded(s, |c| {
        if c.is_whitespace() {
            space = true;
        } else if super::fold::is_word_char(c) {
            if space && started && !emit(' ') {
                return false;
            }
            (space, started) = (false, true);
            return emit(c);
        }
        true
    })
}

/// Removes the title wherever it is repeated among the first blocks of text (once or twice, as
/// text or as a heading): before the fourth block that is not the title.
fn remove_repeated_title(blocks: &mut Vec<Block>, title: &str) {
    let title = comparable(title);
    if title.split_whitespace().count() < 2 {
        return;
    }
    let mut others = 0;
    let mut i = 0;
    while i < blocks.len() && others < 4 {
        let b = &blocks[i];
        if matches!(b.kind, Kind::Para | Kind::Heading(_)) && !b.text.is_empty() {
            if reads_as(&b.text, &title) {
                tracing::debug!(rule = "repeated-title", text = %b.text, "removed");
                blocks.remove(i);
                continue;
            }
            others += 1;
        }
        i += 1;
    }
}

/// Whether a block stays: boilerplate and the source's patterns go.
fn keep(b: &Block, strip: &[Regex], r: Reader) -> bool {
    if !matches!(b.kind, Kind::Para | Kind::Heading(_)) {
        return true;
    }
    if let Some(p) = strip.iter().find(|p| p.is_match(&b.text)) {
        tracing::debug!(rule = %format!("strip_patterns: {p}"), text = %b.text, "removed");
        return false;
    }
    if let Some(rule) = boilerplate::matches(&b.text, || r.link_text(&b.html)) {
        tracing::debug!(rule, text = %b.text, "removed boilerplate");
        return false;
    }
    true
}

/// The text inside links of an inline fragment.
fn link_text_parsed(html: &str) -> String {
    if !html.contains("<a") {
        return String::new();
    }
    let frag = parse_block(html);
    let mut s = String::new();
    for n in frag.tree.root().descendants() {
        if n.value().as_element().is_some_and(|e| e.name() == "a") {
            for t in n.descendants() {
                if let Node::Text(t) = t.value() {
                    s.push_str(t);
                    s.push(' ');
                }
            }
        }
    }
    super::html::collapse(&s)
}

/// Photo credits become the caption of the image before them (or a caption of their own).
fn make_captions(blocks: &mut Vec<Block>) {
    let mut i = 0;
    while i < blocks.len() {
        let b = &blocks[i];
        let is_credit = b.kind == Kind::Para
            && (boilerplate::is_credit(&b.text)
                || (b.credit_hint && b.text.chars().count() <= 200));
        if !is_credit {
            i += 1;
            continue;
        }
        let caption = b.html.clone();
        let text = b.text.clone();
        if i > 0
            && let Kind::Figure {
                caption: cap @ None,
                ..
            } = &mut blocks[i - 1].kind
        {
            *cap = Some(caption);
            blocks[i - 1].text = text;
            blocks.remove(i);
            continue;
        }
        blocks[i] = Block::new(
            Kind::Figure {
                img: None,
                caption: Some(caption),
            },
            String::new(),
            text,
        );
        i += 1;
    }
}

/// A heading candidate becomes `<h2>` when it is short, has no sentence punctuation at its end,
/// starts like a heading and introduces a paragraph or a list.
fn make_headings(blocks: &mut [Block]) {
    for i in 0..blocks.len() {
        let b = &blocks[i];
        if !(b.kind == Kind::Para && b.heading_candidate) {
            continue;
        }
        let words = b.text.split_whitespace().count();
        let first = b.text.chars().next();
        let heading_like = (2..=20).contains(&words)
            && b.text.chars().count() <= 150
            && !ends_sentence(&b.text)
            && first.is_some_and(|c| c.is_uppercase() || c.is_ascii_digit() || "\"«“".contains(c))
            && !b.html.contains("<img");
        let introduces = blocks.get(i + 1).is_some_and(|n| {
            matches!(n.kind, Kind::Para | Kind::List { .. }) && !is_short_candidate(n)
        });
        if heading_like && introduces {
            blocks[i].kind = Kind::Heading(0);
        }
    }
}

/// Another short heading-like line: two in a row are a list of lines, not a heading.
fn is_short_candidate(b: &Block) -> bool {
    b.heading_candidate
        && b.kind == Kind::Para
        && !ends_sentence(&b.text)
        && b.text.chars().count() <= 150
}

fn is_empty(b: &Block) -> bool {
    match &b.kind {
        Kind::Para | Kind::Heading(_) => {
            b.text.is_empty() && !b.html.contains("<img") && !b.html.contains("<iframe")
        }
        Kind::List { items, .. } => items.is_empty(),
        Kind::Figure { img, caption } => img.is_none() && caption.is_none(),
        Kind::Raw => b.html.trim().is_empty() || (b.text.is_empty() && !has_media(&b.html)),
    }
}

fn has_media(html: &str) -> bool {
    ["<img", "<iframe", "<video", "<audio", "<hr"]
        .iter()
        .any(|t| html.contains(t))
}

fn render(blocks: &[Block]) -> String {
    let top = blocks
        .iter()
        .filter_map(|b| match b.kind {
            Kind::Heading(level) if level > 0 => Some(level),
            _ => None,
        })
        .min()
        .unwrap_or(0);
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        out.push(match &b.kind {
            Kind::Heading(level) if *level <= top => format!("<h2>{}</h2>", b.html),
            Kind::Heading(_) => format!("<h3>{}</h3>", b.html),
            Kind::Para => format!("<p>{}</p>", b.html),
            Kind::List { ordered, items } => {
                let tag = if *ordered { "ol" } else { "ul" };
                let lis: String = items.iter().map(|i| format!("<li>{i}</li>")).collect();
                format!("<{tag}>{lis}</{tag}>")
            }
            Kind::Figure { img, caption } => {
                let mut s = String::from("<figure>");
                if let Some(img) = img {
                    s.push_str(img);
                }
                if let Some(c) = caption {
                    s.push_str(&format!("<figcaption>{c}</figcaption>"));
                }
                s.push_str("</figure>");
                s
            }
            Kind::Raw => b.html.clone(),
        });
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(input: &str, is_html: bool, title: &str) -> Body {
        normalize_body(
            input,
            is_html,
            &BodyRules {
                title,
                strip_patterns: &[],
                remove_selectors: &[],
            },
        )
    }

    /// Blocks where a parse leaves them among inline content (straight inside a list) are
    /// read as blocks: written into a paragraph, the sanitiser's parse would split it and a
    /// second pass would read it differently (the fuzz finding `h4-after-link-paragraph`).
    #[test]
    fn blocks_inside_lists_stay_blocks() {
        for (input, want) in [
            (
                "<ol><li>One</li><a href=\"/x\">loose</a><h4>Section</h4><li>Two</li></ol>",
                "<ol><li>One</li></ol>\n<p><a href=\"/x\">loose</a></p>\n<h2>Section</h2>\n<ol><li>Two</li></ol>",
            ),
            (
                "<ul><li>One</li>Loose <b>text</b><h3>Part</h3>More</ul>",
                "<ul><li>One</li></ul>\n<p>Loose <b>text</b></p>\n<h2>Part</h2>\n<p>More</p>",
            ),
            // A block with nothing in it does not end the list.
            (
                "<ol><li>a</li><h3>&nbsp;</h3><li>b</li><h4><br></h4><li>c</li></ol>",
                "<ol><li>a</li><li>b</li><li>c</li></ol>",
            ),
            // Parts of a list inside a heading outside lists leave the heading as it was.
            (
                "<h2>Title <dd>x</dd></h2><p>Text.</p>",
                "<h2>Title <dd>x</dd></h2>\n<p>Text.</p>",
            ),
        ] {
            let once = body(input, true, "T");
            assert_eq!(once.html, want, "{input}");
            assert!(
                !once.html.contains("<p><h") && !once.html.contains("</h4><p>"),
                "{}",
                once.html
            );
            let twice = body(&once.html, true, "T");
            assert_eq!(twice.html, once.html, "{input}");
        }
    }

    #[test]
    fn headings_are_ranked_not_copied() {
        let deep = body(
            "<p>Lead.</p><h4>Section</h4><p>Text.</p><h5>Part</h5><p>More.</p><h4>Next</h4><p>End.</p>",
            true,
            "T",
        );
        assert_eq!(
            deep.html,
            "<p>Lead.</p>\n<h2>Section</h2>\n<p>Text.</p>\n<h3>Part</h3>\n<p>More.</p>\n<h2>Next</h2>\n<p>End.</p>"
        );
        // Our own output reads back as it is.
        assert_eq!(body(&deep.html, true, "T").html, deep.html);
        let only_deep = body("<p>Lead.</p><h3>Section</h3><p>Text.</p>", true, "T");
        assert_eq!(
            only_deep.html,
            "<p>Lead.</p>\n<h2>Section</h2>\n<p>Text.</p>"
        );
    }

    #[test]
    fn plain_text_structure() {
        let b = body(
            "Big news today\n\nThe lead paragraph says what happened.\nBig news today\n\nWhat comes next\n\nA paragraph about it.\n\nThe plan includes:\n\n  • one\n  • two\n\n1. first\n2. second\n\nФото: ТАСС\n\nПоделиться:",
            false,
            "Big news today",
        );
        assert_eq!(
            b.html,
            "<p>The lead paragraph says what happened.</p>\n<h2>What comes next</h2>\n<p>A paragraph about it.</p>\n<p>The plan includes:</p>\n<ul><li>one</li><li>two</li></ul>\n<ol><li>first</li><li>second</li></ol>\n<figure><figcaption>Фото: ТАСС</figcaption></figure>"
        );
        assert_eq!(
            b.lead.as_deref(),
            Some(
                "The lead paragraph says what happened. What comes next A paragraph about it. The plan includes: one two first second"
            ),
            "a lead this short takes the following text with it"
        );
    }

    #[test]
    fn dialogue_dashes_stay_paragraphs() {
        let b = body(
            "— Мы довольны итогами, — сказал министр.\n— Что дальше? — спросили его.",
            false,
            "x y",
        );
        assert!(!b.html.contains("<li>"), "{}", b.html);
    }

    #[test]
    fn hard_wrapped_text_is_joined() {
        let b = body(
            "This sentence was wrapped at\nseventy-two columns by a mailer.",
            false,
            "x y",
        );
        assert_eq!(
            b.html,
            "<p>This sentence was wrapped at seventy-two columns by a mailer.</p>"
        );
    }

    #[test]
    fn html_with_junk() {
        let b = body(
            "<p><strong>Lead paragraph of the story, long enough to be the lead.</strong></p>\
             <h1>Title Here Now</h1><p><strong>A section heading</strong></p><p>Text of the section.</p>\
             <p>  • a<br>  • b</p><div class=\"ad\" id=\"adfox\"></div><script>x()</script>\
             <p><img src=\"/p.jpg\"></p><p class=\"photo-credit\">Photo by Jane Doe</p>\
             <img width=\"1\" height=\"1\" src=\"https://counter.example.com/p.gif\">\
             <div class=\"share\">Share: <a href=\"https://x\">X</a> <a href=\"https://fb\">Facebook</a></div>",
            true,
            "Title Here Now",
        );
        assert_eq!(
            b.html,
            "<p>Lead paragraph of the story, long enough to be the lead.</p>\n<h2>A section heading</h2>\n<p>Text of the section.</p>\n<ul><li>a</li><li>b</li></ul>\n<figure><img src=\"/p.jpg\"><figcaption>Photo by Jane Doe</figcaption></figure>"
        );
        assert_eq!(b.first_image.as_deref(), Some("/p.jpg"));
    }

    #[test]
    fn lazy_images_and_embeds() {
        let b = body(
            "<p>Text here.</p><img src=\"data:image/gif;base64,R0l\" data-src=\"/real.jpg\" width=\"600\">\
             <iframe src=\"https://www.youtube.com/embed/abc\"></iframe><iframe src=\"https://evil.example/x\"></iframe>",
            true,
            "x y",
        );
        assert!(
            b.html.contains("<img src=\"/real.jpg\" width=\"600\">"),
            "{}",
            b.html
        );
        assert!(b.html.contains("youtube.com/embed/abc"), "{}", b.html);
        assert!(!b.html.contains("evil"), "{}", b.html);
    }

    #[test]
    fn read_more_inside_a_sentence_stays() {
        let html = "<p>The vote followed weeks of talks. Read more about the budget in our <a href=\"/e\">explainer</a>.</p>\
                    <p>Read more about the budget in our <a href=\"/e\">explainer</a>.</p>";
        let b = body(html, true, "x y");
        assert_eq!(b.html.matches("<p>").count(), 2, "{}", b.html);
    }

    #[test]
    fn per_source_selectors_and_patterns() {
        let sel = [Selector::parse("div.related, #comments").unwrap()];
        let pat = [Regex::new(r"^Источник: ").unwrap()];
        let b = normalize_body(
            "<p>Story text here.</p><div class=\"related\"><p>Другие новости</p></div>\
             <p>Источник: агентство</p><div id=\"comments\">3 комментария</div>",
            true,
            &BodyRules {
                title: "x y",
                strip_patterns: &pat,
                remove_selectors: &sel,
            },
        );
        assert_eq!(b.html, "<p>Story text here.</p>");
    }

    #[test]
    fn normal_html_is_untouched() {
        let html = "<p>First paragraph with <a href=\"https://e/x\">a link</a>.</p>\n<h2>Heading</h2>\n<ul><li>one</li><li>two</li></ul>\n<pre><code>let x = 1;</code></pre>\n<table><tbody><tr><td>1</td></tr></tbody></table>";
        let b = body(html, true, "x y");
        assert_eq!(b.html, html);
    }

    /// The HTML body `input` comes out as `want`, and `want` as itself.
    fn settles(input: &str, want: &str) -> String {
        let once = body(input, true, "x y").html;
        assert_eq!(once, want, "{input:?}");
        assert_eq!(body(&once, true, "x y").html, once, "{input:?} again");
        once
    }

    #[test]
    fn figures_are_judged_by_what_is_written_out() {
        // Dropped media and embeds from elsewhere do not make a figure one to keep as it is:
        // written out without them, it would read back as a figure without them.
        for (input, want) in [
            (
                "<p>Lead.</p><figure><audio src=\"/a.mp3\">No audio</audio>Some text</figure>",
                "<p>Lead.</p>\n<p>Some text</p>",
            ),
            (
                "<p>Lead.</p><figure><iframe src=\"https://evil.example/x\"></iframe>Some text</figure>",
                "<p>Lead.</p>\n<p>Some text</p>",
            ),
            (
                "<figure><img src=\"/a.jpg\"><video src=\"/v.mp4\"></video><figcaption>Photo: AP</figcaption></figure>",
                "<figure><img src=\"/a.jpg\"><figcaption>Photo: AP</figcaption></figure>",
            ),
            (
                "<figure><iframe src=\"https://www.youtube.com/embed/x\"></iframe><figcaption>Video: AP</figcaption></figure>",
                "<figure><iframe src=\"https://www.youtube.com/embed/x\" allowfullscreen></iframe><figcaption>Video: AP</figcaption></figure>",
            ),
        ] {
            settles(input, want);
        }
    }

    #[test]
    fn images_alone_in_a_paragraph_are_a_figure_each() {
        // Inline markup around them goes, and two images are two figures (a figure is read
        // back as its first image).
        for (input, want) in [
            (
                "<p><em><img src=\"/a.jpg\"></em></p>",
                "<figure><img src=\"/a.jpg\"></figure>",
            ),
            (
                "<ol><img src=\"/a.jpg\"><img src=\"/b.jpg\"></ol>",
                "<figure><img src=\"/a.jpg\"></figure>\n<figure><img src=\"/b.jpg\"></figure>",
            ),
            (
                "<p><a href=\"/x\"><img src=\"/a.jpg\"></a> <b><img src=\"/b.jpg\"></b></p><p>Фото: ТАСС</p>",
                "<figure><img src=\"/a.jpg\"></figure>\n<figure><img src=\"/b.jpg\"><figcaption>Фото: ТАСС</figcaption></figure>",
            ),
        ] {
            settles(input, want);
        }
    }

    #[test]
    fn lists_are_judged_by_what_is_written_out() {
        // A list inside a dropped element does not make the list around it a nested one, kept
        // as it came: written out without it, it would read back as a flat list.
        settles(
            "<ol>Stray text<applet><ol><li>x</li></ol></applet></ol>",
            "<p>Stray text</p>",
        );
        settles(
            "<ul><li>one</li><applet><ul><li>x</li></ul></applet><li>two</li></ul>",
            "<ul><li>one</li><li>two</li></ul>",
        );
        settles(
            "<ul><li>one<ul><li>x</li></ul></li></ul>",
            "<ul><li>one<ul><li>x</li></ul></li></ul>",
        );
    }

    #[test]
    fn line_breaks_inside_a_bold_paragraph_are_its_own() {
        // Unwrapped, a bold paragraph's `<br>`s are the paragraph's own: it reads as the same
        // paragraph without the bold, at once (not only when its output is read again).
        for (input, want) in [
            (
                "<p><strong>====<br>/=\u{113}\npr=</strong></p>",
                "<p>====</p>\n<p>/=\u{113}\npr=</p>",
            ),
            (
                "<p>Lead.</p><p><b>Ends here.<br></b></p>",
                "<p>Lead.</p>\n<p>Ends here.</p>",
            ),
            (
                "<p>Lead.</p><p>Xx<br><strong>Aaa<br>Bbb</strong></p>",
                "<p>Lead.</p>\n<p>Xx</p>\n<p>Aaa</p>\n<p>Bbb</p>",
            ),
            (
                "<p>Lead.</p><p><b>Section title<br></b></p><p>Text of the section.</p>",
                "<p>Lead.</p>\n<h2>Section title</h2>\n<p>Text of the section.</p>",
            ),
            (
                "<p><img src=\"/p.jpg\"></p><p><strong>Photo: AP<br></strong></p><p>Text.</p>",
                "<figure><img src=\"/p.jpg\"><figcaption>Photo: AP</figcaption></figure>\n<p>Text.</p>",
            ),
            (
                "<p>Lead.</p><p><b><strong>One<br>two<br><br>Three</strong></b></p>",
                "<p>Lead.</p>\n<p>One two</p>\n<p>Three</p>",
            ),
        ] {
            let once = settles(input, want);
            // The bold only makes a lone line a heading candidate.
            if !want.contains("<h2>") {
                let unbold = ["<b>", "</b>", "<strong>", "</strong>"]
                    .iter()
                    .fold(input.to_string(), |s, t| s.replace(t, ""));
                assert_eq!(body(&unbold, true, "x y").html, once, "{unbold:?}");
            }
        }
    }
}

/// The scan of our own markup reads what a parse of it reads: tag soup, hostile and odd
/// markup included, normalises the same both ways.
#[cfg(test)]
mod scan_equals_parse {
    use super::*;
    use proptest::prelude::*;

    fn piece() -> impl Strategy<Value = String> {
        let tags = [
            "p",
            "div",
            "b",
            "strong",
            "a",
            "i",
            "span",
            "font",
            "marquee",
            "section",
            "li",
            "ul",
            "ol",
            "dd",
            "dt",
            "dl",
            "h2",
            "h3",
            "h6",
            "table",
            "tr",
            "td",
            "th",
            "tfoot",
            "caption",
            "nobr",
            "ruby",
            "rt",
            "rb",
            "pre",
            "blockquote",
            "figure",
            "figcaption",
            "button",
            "object",
            "center",
            "address",
            "listing",
            "xmp",
            "plaintext",
            "select",
            "option",
            "template",
            "svg",
            "iframe",
            "br",
            "hr",
            "wbr",
            "q",
            "sub",
            "picture",
        ];
        prop_oneof![
            4 => proptest::sample::select(tags.to_vec()).prop_map(|t| format!("<{t}>")),
            3 => proptest::sample::select(tags.to_vec()).prop_map(|t| format!("</{t}>")),
            1 => Just("<a href=\"/x?a=1&amp;b=&quot;2\r\n\" title='a>b'>".to_string()),
            1 => Just("<img src=\"/i.jpg\" data-src=\"/l&amp;.jpg\" alt=\"x\">".to_string()),
            1 => Just("<img src=\"data:,x\" width=\"1\">".to_string()),
            1 => Just("<b class=\"x\">".to_string()),
            1 => Just("<iframe src=\"https://www.youtube.com/embed/x\">fallback</iframe>".to_string()),
            1 => Just("<span x\"src=\"1\" =y=\"2\">".to_string()),
            1 => Just("<p class=\"photo-credit\">".to_string()),
            6 => "[a-zA-Z .,:\n]{1,24}",
            1 => Just("\u{feff}".to_string()),
            1 => Just("&amp;&lt;&gt;&nbsp;&#13;&#xfeff;\r\n\u{1}".to_string()),
            1 => Just("  • ".to_string()),
            1 => Just("1. ".to_string()),
            1 => Just("— ".to_string()),
            1 => Just("Photo: AP".to_string()),
            1 => Just("Share this".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn scan_reads_as_parse(pieces in proptest::collection::vec(piece(), 0..40), is_html in any::<bool>()) {
            let input = pieces.concat();
            let rules = BodyRules { title: "Photo AP", strip_patterns: &[], remove_selectors: &[] };
            let scanned = normalize_body_reading(&input, is_html, &rules, false);
            let parsed = normalize_body_reading(&input, is_html, &rules, true);
            prop_assert_eq!(scanned, parsed, "{:?}", input);
        }

        /// The text of a sanitised body, read by a scan, is what a parse of it reads.
        #[test]
        fn sanitized_text_reads_as_parse(pieces in proptest::collection::vec(piece(), 0..40)) {
            let input = pieces.concat();
            let rules = BodyRules { title: "Photo AP", strip_patterns: &[], remove_selectors: &[] };
            let base = url::Url::parse("https://ex.kz/news/a").unwrap();
            let b = normalize_body(&input, true, &rules);
            for base in [Some(&base), None] {
                let quick = super::super::own_clean::clean(&b.html, base, &super::super::html::ALLOWED);
                // (Hostile nesting may give markup the quick path leaves to ammonia.)
                if let Some(quick) = quick {
                    prop_assert_eq!(quick, super::super::html::by_ammonia(&b.html, base));
                }
            }
            for h in [super::super::html::sanitize(&b.html, Some(&base)), super::super::html::sanitize(&b.html, None)] {
                prop_assert_eq!(
                    super::super::html::sanitized_text(&h),
                    super::super::html::collapse(&super::super::html::text_of(&h)),
                    "{:?}", h
                );
            }
        }

        /// The early-exit test answers as comparing the whole comparable texts does.
        #[test]
        fn reads_as_is_comparable_equality(
            a in "[ \t\nA-Za-zЁёА-я0-9.,:«»—-]{0,24}",
            edit in "[ \t.,!ЁёEe]{0,3}",
            at in 0usize..24,
        ) {
            // b: a with a few spaces, punctuation or case-folded letters inserted.
            let at = a.char_indices().nth(at).map_or(a.len(), |(i, _)| i);
            let b = format!("{}{edit}{}", &a[..at], &a[at..]);
            for (x, y) in [(&a, &b), (&b, &a)] {
                prop_assert_eq!(reads_as(x, &comparable(y)), comparable(x) == comparable(y));
            }
        }
    }

    #[test]
    fn readers_agree_on_our_markup() {
        for html in [
            "",
            " <b>Bold</b> ",
            "\u{feff}<strong class=\"x\"><b>Two</b></strong>",
            "<b>a</b><b>b</b>",
            "<b>a</b>c",
            "<b>a<br>b<img src=\"x\"></b>",
            "<b>a\r\nb</b>",
            "x <a href=\"/a\">one <i>two</i></a> and <a href=\"/b\">three</a>",
            "<table><tbody><tr><td><a href=\"x\">out<table><tbody><tr><td><a>in</a></td></tr></tbody></table></a></td></tr></tbody></table>",
            "<p>a</p>b<br>c<ul><li>d</li></ul><table><tbody><tr><td>e</td><td>f</td></tr></tbody></table>",
            "a&amp;b &lt;c&gt; \u{a0} <iframe src=\"https://www.youtube.com/embed/x\" allowfullscreen></iframe>",
            "<span x\"src=\"1\"><img src=\"/a&amp;b.jpg\r\" alt=\"src=&quot;x\"></span>",
        ] {
            assert_eq!(
                super::super::own_markup::text(html),
                plain_parsed(html),
                "text of {html:?}"
            );
            assert_eq!(
                super::super::own_markup::bold_only(html),
                bold_only_parsed(html),
                "bold of {html:?}"
            );
            assert_eq!(
                super::super::own_markup::link_text(html),
                link_text_parsed(html),
                "links of {html:?}"
            );
            assert_eq!(
                super::super::own_markup::first_src(html),
                attr_of_parsed(html, "src"),
                "src of {html:?}"
            );
        }
    }
}
