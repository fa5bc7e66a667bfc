//! `(bytes, Content-Type) → Decoded`: the document as UTF-8 text, with the encoding it was read
//! in and why.
//!
//! Precedence (RFC 7303 §3 for XML over HTTP): a byte-order mark, then the `charset` of the HTTP
//! `Content-Type`, then the XML declaration, then "the bytes are valid UTF-8", then detection
//! (chardetng). A declared charset the bytes contradict is passed over for the next rule: UTF-8
//! declared over invalid UTF-8, or a legacy charset declared over bytes that are valid UTF-8
//! with non-ASCII sequences (a CMS that re-encoded its output but kept the old label). The XML declaration of the result is rewritten to
//! `encoding="utf-8"`: the XML parsers re-decode by the declaration otherwise (measured: double
//! decoding, "Р’РёР·РёС‚" for "Визит").

use std::borrow::Cow;
use std::ops::Range;

use encoding_rs::{Encoding, UTF_8};

/// Decoded text and how its encoding was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    /// WHATWG encoding name, lowercase (`utf-8`, `windows-1251`, `koi8-r`, ...).
    pub encoding: String,
    pub from: EncodingSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingSource {
    Bom,
    Http,
    XmlDeclaration,
    Utf8,
    Detected,
}

impl EncodingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EncodingSource::Bom => "bom",
            EncodingSource::Http => "http",
            EncodingSource::XmlDeclaration => "xml-declaration",
            EncodingSource::Utf8 => "utf-8",
            EncodingSource::Detected => "detected",
        }
    }
}

/// Decodes a source document. Never fails: undecodable bytes become U+FFFD.
pub fn decode(bytes: &[u8], content_type: Option<&str>) -> Decoded {
    let (encoding, from, body) = choose(bytes, content_type);
    let (text, _) = encoding.decode_without_bom_handling(body);
    let text = rewrite_declaration(text);
    Decoded {
        text,
        encoding: encoding.name().to_ascii_lowercase(),
        from,
    }
}

fn choose<'a>(
    bytes: &'a [u8],
    content_type: Option<&str>,
) -> (&'static Encoding, EncodingSource, &'a [u8]) {
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        return (enc, EncodingSource::Bom, &bytes[bom_len..]);
    }
    // encoding_rs's validator, the one its UTF-8 decoder runs (std's was the larger part of
    // decoding in perf).
    let utf8_ok = Encoding::utf8_valid_up_to(bytes) == bytes.len();
    // Valid UTF-8 with multi-byte sequences is, in practice, never legacy-encoded text by
    // chance (Cyrillic in windows-1251 or KOI8 is not valid UTF-8).
    let surely_utf8 = utf8_ok && !bytes.is_ascii();
    // A declared charset the bytes contradict is a mislabel: try the next rule. That is UTF-8
    // declared over invalid UTF-8, and a legacy charset declared over text that is UTF-8.
    let usable = |enc: &'static Encoding| {
        if enc == UTF_8 { utf8_ok } else { !surely_utf8 }
    };
    if let Some(enc) = content_type.and_then(http_charset)
        && usable(enc)
    {
        return (enc, EncodingSource::Http, bytes);
    }
    if let Some(enc) = xml_declared(bytes).or_else(|| html_meta_charset(bytes))
        && usable(enc)
    {
        return (enc, EncodingSource::XmlDeclaration, bytes);
    }
    if utf8_ok {
        return (UTF_8, EncodingSource::Utf8, bytes);
    }
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(bytes, true);
    (
        det.guess(None, chardetng::Utf8Detection::Allow),
        EncodingSource::Detected,
        bytes,
    )
}

/// Finds a label by name, mapping the UTF-16 labels of an ASCII-compatible document (no BOM)
/// to nothing: such a declaration cannot be true of bytes we could read it from.
fn label(name: &str) -> Option<&'static Encoding> {
    let enc = Encoding::for_label(name.trim().trim_matches(['"', '\'']).as_bytes())?;
    if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
        return None;
    }
    Some(enc)
}

fn http_charset(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| label(v))?
    })
}

/// The byte range of the `encoding` pseudo-attribute's value inside an XML declaration.
fn encoding_value(decl: &[u8]) -> Option<Range<usize>> {
    let pos = decl.windows(8).position(|w| w == b"encoding")?;
    let mut i = pos + 8;
    let skip_ws = |mut i: usize| {
        while decl.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    i = skip_ws(i);
    if decl.get(i) != Some(&b'=') {
        return None;
    }
    i = skip_ws(i + 1);
    let quote = *decl.get(i).filter(|q| **q == b'"' || **q == b'\'')?;
    let start = i + 1;
    let len = decl[start..].iter().position(|b| *b == quote)?;
    Some(start..start + len)
}

/// The XML declaration at the start of the document: its offset and length.
fn declaration(bytes: &[u8]) -> Option<Range<usize>> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = &bytes[start..bytes.len().min(start + 1024)];
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    Some(start..start + end)
}

/// The encoding named by the XML declaration.
fn xml_declared(bytes: &[u8]) -> Option<&'static Encoding> {
    let decl = &bytes[declaration(bytes)?];
    let value = std::str::from_utf8(&decl[encoding_value(decl)?]).ok()?;
    label(value)
}

/// `<meta charset>` in an XHTML-ish document without an XML declaration (rare in feeds, common
/// in the pages full-text extraction reads).
fn html_meta_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(2048)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let pos = text.find("<meta")?;
    let rest = &text[pos..];
    let pos = rest.find("charset=")?;
    let value: String = rest[pos + 8..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    label(&value)
}

/// Drops leading white space and rewrites the XML declaration's encoding to utf-8.
fn rewrite_declaration(text: Cow<'_, str>) -> String {
    let trimmed = text.trim_start();
    let bytes = trimmed.as_bytes();
    if let Some(decl) = declaration(bytes)
        && let Some(value) = encoding_value(&bytes[decl.clone()])
    {
        let (start, end) = (decl.start + value.start, decl.start + value.end);
        let mut out = String::with_capacity(trimmed.len());
        out.push_str(&trimmed[..start]);
        out.push_str("utf-8");
        out.push_str(&trimmed[end..]);
        return out;
    }
    if trimmed.len() == text.len() {
        text.into_owned()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TITLE: &str = "Визит лидера Туркменистана";

    fn xml(enc: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"{enc}\"?><rss><channel><title>{TITLE}</title></channel></rss>"
        )
    }

    fn encode(text: &str, enc: &'static Encoding) -> Vec<u8> {
        enc.encode(text).0.into_owned()
    }

    #[test]
    fn declaration_picks_windows_1251_and_is_rewritten() {
        let bytes = encode(&xml("windows-1251"), encoding_rs::WINDOWS_1251);
        let d = decode(&bytes, Some("application/rss+xml"));
        assert_eq!(d.encoding, "windows-1251");
        assert_eq!(d.from, EncodingSource::XmlDeclaration);
        assert!(d.text.contains(TITLE));
        assert!(
            d.text
                .starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
            "{}",
            d.text
        );
    }

    #[test]
    fn http_charset_wins_over_declaration() {
        let bytes = encode(&xml("windows-1251"), encoding_rs::KOI8_R);
        let d = decode(&bytes, Some("text/xml; charset=KOI8-R"));
        assert_eq!(
            (d.encoding.as_str(), d.from),
            ("koi8-r", EncodingSource::Http)
        );
        assert!(d.text.contains(TITLE));
    }

    #[test]
    fn utf8_label_contradicted_by_bytes_falls_through() {
        let bytes = encode(&xml("utf-8"), encoding_rs::WINDOWS_1251);
        let d = decode(&bytes, Some("text/xml; charset=utf-8"));
        assert_eq!(d.from, EncodingSource::Detected);
        assert_eq!(d.encoding, "windows-1251");
        assert!(d.text.contains(TITLE));
    }

    #[test]
    fn bom_wins_and_is_removed() {
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend_from_slice(xml("windows-1251").as_bytes());
        let d = decode(&bytes, Some("text/xml; charset=koi8-r"));
        assert_eq!(
            (d.encoding.as_str(), d.from),
            ("utf-8", EncodingSource::Bom)
        );
        assert!(d.text.starts_with("<?xml"));
        assert!(d.text.contains(TITLE));
    }

    #[test]
    fn utf16_with_bom() {
        let text = xml("utf-16");
        let mut bytes = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let d = decode(&bytes, None);
        assert_eq!(d.encoding, "utf-16le");
        assert!(d.text.contains("encoding=\"utf-8\""));
        assert!(d.text.contains(TITLE));
    }

    #[test]
    fn undeclared_cyrillic_is_detected() {
        let body = format!(
            "<rss><channel><title>{TITLE}: эксперты обсуждают перспективы сотрудничества</title></channel></rss>"
        );
        let d = decode(&encode(&body, encoding_rs::WINDOWS_1251), None);
        assert_eq!(
            (d.encoding.as_str(), d.from),
            ("windows-1251", EncodingSource::Detected)
        );
        assert!(d.text.contains(TITLE));
    }

    #[test]
    fn legacy_cyrillic_declared() {
        const UK: &str = "Візит лідера Туркменістану ґ";
        for (label, enc, title) in [
            ("koi8-r", encoding_rs::KOI8_R, TITLE),
            ("koi8-u", encoding_rs::KOI8_U, UK),
            ("cp866", encoding_rs::IBM866, TITLE),
            ("iso-8859-5", encoding_rs::ISO_8859_5, TITLE),
            ("windows-1251", encoding_rs::WINDOWS_1251, UK),
        ] {
            let text = xml(label).replace(TITLE, title);
            let d = decode(&encode(&text, enc), None);
            assert_eq!(d.encoding, enc.name().to_ascii_lowercase(), "{label}");
            assert_eq!(d.from, EncodingSource::XmlDeclaration, "{label}");
            assert!(d.text.contains(title), "{label}: {}", d.text);
        }
    }

    #[test]
    fn latin1_declared_and_only_in_http() {
        let body = "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?><rss><channel><title>Ça coûte</title></channel></rss>";
        let d = decode(&encode(body, encoding_rs::WINDOWS_1252), None);
        assert_eq!(d.encoding, "windows-1252"); // WHATWG: iso-8859-1 is windows-1252
        assert!(d.text.contains("Ça coûte"));
        let body = "<rss><channel><title>Ça coûte</title></channel></rss>";
        let d = decode(
            &encode(body, encoding_rs::WINDOWS_1252),
            Some("application/rss+xml; charset=ISO-8859-1"),
        );
        assert_eq!(
            (d.encoding.as_str(), d.from),
            ("windows-1252", EncodingSource::Http)
        );
        assert!(d.text.contains("Ça coûte"));
    }

    #[test]
    fn legacy_declared_but_bytes_are_utf8() {
        let bytes = xml("windows-1251").into_bytes();
        let d = decode(&bytes, Some("text/xml; charset=windows-1251"));
        assert_eq!(
            (d.encoding.as_str(), d.from),
            ("utf-8", EncodingSource::Utf8)
        );
        assert!(d.text.contains(TITLE));
        // Pure ASCII is consistent with any declaration: the declaration stands.
        let d = decode(&xml("koi8-r").replace(TITLE, "plain").into_bytes(), None);
        assert_eq!(d.encoding, "koi8-r");
    }

    #[test]
    fn plain_utf8_without_declaration() {
        let d = decode(format!("<feed>{TITLE}</feed>").as_bytes(), None);
        assert_eq!(
            (d.encoding.as_str(), d.from),
            ("utf-8", EncodingSource::Utf8)
        );
    }
}
