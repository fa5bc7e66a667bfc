//! Facts about markup that the body rules wrote themselves (`body::serialize` and the text
//! rules), read by a linear scan instead of a second HTML parse.
//!
//! Our own serialisation is regular: tags are lowercase names of elements the sanitiser keeps,
//! every non-void element is closed in tree order, text is escaped with `&amp;`, `&lt;`, `&gt;`
//! (and U+00A0 as `&nbsp;`, by the sanitiser) and attribute values are double-quoted with
//! `&quot;` too (so a `>` always ends a tag). The
//! tree an HTML parser builds from it has the elements in the same order with the same text;
//! what it may do differently (close an element early where the original had one in between
//! that is not written out, such as `<marquee>`) is left to the caller, which parses instead in
//! that case. The functions here give what the parse-based readers give: `text` as
//! `collapse(text_of(html))`, `bold_only` as unwrapping a lone `<b>`/`<strong>` of the parsed
//! fragment, `link_text` as the text inside its `<a>`s, `first_src` as the first `src`.
//! A parser turns CR and CRLF into LF; so do these. (It also drops a byte-order mark at the very
//! start of its input: a U+FEFF that starts a block is text, so the parse-based readers keep it
//! and these never drop it.)

use std::borrow::Cow;

use super::html::{is_block, is_control};

/// A token of our own markup.
enum Tok<'a> {
    Text(&'a str),
    /// A start tag: its name and the whole tag (`<a href="x">`).
    Open(&'a str, &'a str),
    /// An end tag's name.
    Close(&'a str),
}

/// Tokens with their byte ranges.
struct Toks<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Toks<'a> {
    fn new(s: &'a str) -> Self {
        Toks { s, at: 0 }
    }
}

impl<'a> Iterator for Toks<'a> {
    /// The token, where it starts and where it ends.
    type Item = (Tok<'a>, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        let start = self.at;
        if start >= s.len() {
            return None;
        }
        let rest = &s[start..];
        if !rest.starts_with('<') {
            let end = rest.find('<').map_or(s.len(), |e| start + e);
            self.at = end;
            return Some((Tok::Text(&s[start..end]), start, end));
        }
        // Our markup never has a `<` that does not open a tag, nor a tag without its `>`.
        let Some(len) = rest.find('>') else {
            self.at = s.len();
            return Some((Tok::Text(rest), start, s.len()));
        };
        let end = start + len + 1;
        self.at = end;
        let tag = &s[start..end];
        if let Some(name) = tag.strip_prefix("</") {
            return Some((Tok::Close(&name[..name.len() - 1]), start, end));
        }
        let name_end = tag[1..].find([' ', '>']).map_or(tag.len(), |e| e + 1);
        Some((Tok::Open(&tag[1..name_end], tag), start, end))
    }
}

/// The character a reference at the start of `after` (which starts with `&`) stands for, and
/// its length; a lone `&` is itself.
fn reference(after: &str) -> (char, usize) {
    if after.starts_with("&amp;") {
        ('&', 5)
    } else if after.starts_with("&lt;") {
        ('<', 4)
    } else if after.starts_with("&gt;") {
        ('>', 4)
    } else if after.starts_with("&quot;") {
        ('"', 6)
    } else if after.starts_with("&nbsp;") {
        ('\u{a0}', 6)
    } else {
        ('&', 1)
    }
}

fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut s = String::with_capacity(text.len());
    s.extend(Decoded(text));
    Cow::Owned(s)
}

/// The characters of escaped text or of an attribute value, decoded.
struct Decoded<'a>(&'a str);

impl Iterator for Decoded<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let c = self.0.chars().next()?;
        let (c, len) = if c == '&' {
            reference(self.0)
        } else {
            (c, c.len_utf8())
        };
        self.0 = &self.0[len..];
        Some(c)
    }
}

/// The characters of the text of the markup, decoded and not collapsed (controls and white
/// space included), read as far as they are asked for: the characters [`text`] is made of,
/// in order. An iframe's content is never text.
pub fn text_chars(html: &str) -> impl Iterator<Item = char> + '_ {
    let mut in_iframe = false;
    Toks::new(html)
        .filter_map(move |(tok, _, _)| match tok {
            Tok::Text(t) if !in_iframe => Some(Decoded(t)),
            Tok::Open("iframe", _) => {
                in_iframe = true;
                None
            }
            Tok::Close("iframe") => {
                in_iframe = false;
                None
            }
            _ => None,
        })
        .flatten()
}

/// Whether [`text`] of the markup is not empty: it has a character that is neither white
/// space nor a control (read only as far as the first).
pub fn has_text(html: &str) -> bool {
    text_chars(html).any(|c| !is_control(c) && !c.is_whitespace())
}

/// CR and CRLF as a parser reads them: LF.
fn newlines(s: String) -> String {
    if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        s
    }
}

/// Whether an element has no end tag in our markup.
fn is_void(name: &str) -> bool {
    matches!(
        name,
        "br" | "img" | "hr" | "wbr" | "source" | "area" | "col" | "track" | "input"
    )
}

/// The text of the markup with white space collapsed: blocks, `<br>` and cells separate words,
/// controls go, an iframe's content is never text.
pub fn text(html: &str) -> String {
    text_with(html, |out, t| {
        let mut rest = t;
        // Between references the text is copied a run of word characters at a time.
        while let Some(at) = rest.find('&') {
            out.push_str(&rest[..at]);
            let (c, len) = reference(&rest[at..]);
            out.push(c);
            rest = &rest[at + len..];
        }
        out.push_str(rest);
    })
}

/// [`text`], with `push_text` writing each piece of escaped text.
fn text_with(html: &str, push_text: impl Fn(&mut Collapsed, &str)) -> String {
    let mut out = Collapsed {
        out: String::with_capacity(html.len()),
        space: false,
    };
    let mut in_iframe = false;
    for (tok, _, _) in Toks::new(html) {
        match tok {
            Tok::Text(t) if !in_iframe => push_text(&mut out, t),
            Tok::Text(_) => {}
            Tok::Open("iframe", _) => in_iframe = true,
            Tok::Close("iframe") => in_iframe = false,
            Tok::Open(name, _) => out.space |= name == "br" || is_block(name),
            Tok::Close(name) => out.space |= is_block(name) || matches!(name, "td" | "th"),
        }
    }
    out.out
}

/// Text with white space collapsed as it is written: runs of white space become one space
/// between words (none at the start), controls are dropped.
struct Collapsed {
    out: String,
    /// A separator is due before the next character.
    space: bool,
}

impl Collapsed {
    fn push(&mut self, c: char) {
        if is_control(c) {
        } else if c.is_whitespace() {
            self.space = true;
        } else {
            if self.space && !self.out.is_empty() {
                self.out.push(' ');
            }
            self.space = false;
            self.out.push(c);
        }
    }

    /// [`Collapsed::push`] of each character of `s`, copying runs of word characters whole.
    fn push_str(&mut self, s: &str) {
        let mut run: Option<usize> = None;
        for (i, c) in s.char_indices() {
            let word = !is_control(c) && !c.is_whitespace();
            match (word, run) {
                (true, None) => {
                    if self.space && !self.out.is_empty() {
                        self.out.push(' ');
                    }
                    self.space = false;
                    run = Some(i);
                }
                (true, Some(_)) => {}
                (false, _) => {
                    if let Some(start) = run.take() {
                        self.out.push_str(&s[start..i]);
                    }
                    self.push(c);
                }
            }
        }
        if let Some(start) = run {
            self.out.push_str(&s[start..]);
        }
    }
}

/// The content of a `<b>`/`<strong>` that is all there is (but white space), unwrapped as often
/// as it is nested.
pub fn bold_only(html: &str) -> Option<String> {
    unwrap_all(html, bold_only_once)
}

/// `once` applied as long as it unwraps something; `None` when it unwraps nothing at all.
pub fn unwrap_all(html: &str, once: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut inner = once(html)?;
    while let Some(deeper) = once(&inner) {
        inner = deeper;
    }
    Some(inner)
}

fn bold_only_once(html: &str) -> Option<String> {
    if !html.contains("<b") && !html.contains("<B") && !html.contains("<strong") {
        return None;
    }
    let s = html.trim();
    let mut toks = Toks::new(s);
    let (Tok::Open("b" | "strong", _), _, content) = toks.next()? else {
        return None;
    };
    let mut depth = 1usize;
    for (tok, start, end) in toks {
        match tok {
            Tok::Open(name, _) if !is_void(name) => depth += 1,
            Tok::Close(_) => {
                depth -= 1;
                if depth == 0 {
                    return (end == s.len())
                        .then(|| newlines(s[content..start].trim().to_string()));
                }
            }
            _ => {}
        }
    }
    None
}

/// The text inside the links, a space after each piece of text, collapsed (a link inside a link
/// counts its text again, as the parse-based reading does).
pub fn link_text(html: &str) -> String {
    if !html.contains("<a") {
        return String::new();
    }
    let mut links: Vec<String> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for (tok, _, _) in Toks::new(html) {
        match tok {
            Tok::Open("a", _) => {
                open.push(links.len());
                links.push(String::new());
            }
            Tok::Close("a") => {
                open.pop();
            }
            Tok::Text(t) if !open.is_empty() => {
                let t = decode(t);
                for &i in &open {
                    links[i].push_str(&t);
                    links[i].push(' ');
                }
            }
            _ => {}
        }
    }
    super::html::collapse(&links.concat())
}

/// The `src` of the first element that has one.
pub fn first_src(html: &str) -> Option<String> {
    Toks::new(html).find_map(|(tok, _, _)| {
        let Tok::Open(_, tag) = tok else {
            return None;
        };
        // Names and values hold no space-`src="` of their own: a value has no raw `"`.
        let at = tag.find(" src=\"")? + 6;
        let len = tag[at..].find('"')?;
        Some(newlines(decode(&tag[at..at + len]).into_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    /// [`text`] a character at a time, as it was written before runs were copied whole.
    fn text_by_chars(html: &str) -> String {
        text_with(html, |out, t| Decoded(t).for_each(|c| out.push(c)))
    }

    #[test]
    fn text_collapses_and_drops_controls() {
        assert_eq!(
            text("<p> a\u{1}b  c&amp;d\u{a0}&nbsp;e\u{7f}</p><p>\u{2003}f\tg&lt;</p>"),
            "ab c&d e f g<"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Copying runs gives what pushing each character gives.
        #[test]
        fn text_by_runs_is_text_by_characters(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "<p>", "</p>", "<br>", "<b>", "</b>", "<iframe src=\"x\">", "</iframe>",
                        "&amp;", "&lt;", "&nbsp;", "&", "&quot;x", " ", "\u{a0}", "\u{1}", "\u{7f}",
                        "\u{fffe}", "\t\r\n", "\u{2003}", "\u{200b}", "ё", "Жук",
                    ]).prop_map(str::to_string),
                    "[a-zа-я .,\u{1}\u{a0}]{1,12}",
                ],
                0..30,
            )
        ) {
            let html = pieces.concat();
            proptest::prop_assert_eq!(text(&html), text_by_chars(&html));
            // The lazy reading: the same characters but for the separators and what
            // collapsing drops.
            let kept: String = text_chars(&html)
                .filter(|c| !is_control(*c) && !c.is_whitespace())
                .collect();
            proptest::prop_assert_eq!(&kept, &text(&html).replace(' ', ""));
            proptest::prop_assert_eq!(has_text(&html), !text(&html).is_empty());
        }
    }
}
