//! The output folder held in memory: each file's bytes, its gzip and br variants (compressed
//! once, when the file changes), strong ETags and Last-Modified. A [`Site`] is immutable; the
//! daemon builds a new one after a publish and swaps it in atomically, so a reader always gets
//! one whole version of a file, never a mix or a half-written one.
//!
//! Only regular files directly in the folder with a known extension are loaded; names are never
//! joined to a path at request time, so nothing outside the folder can be served.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;
use bytes::Bytes;

/// One servable file.
#[derive(Debug)]
pub struct Entry {
    pub content_type: HeaderValue,
    /// The content hash (xxh3-128) the ETags are made of.
    pub hash: u128,
    pub identity: Variant,
    /// gzip and br encodings, kept only when smaller than the original.
    pub gzip: Option<Variant>,
    pub br: Option<Variant>,
    /// The file's modification time, whole seconds (HTTP dates have no fractions).
    pub modified: SystemTime,
    pub last_modified: HeaderValue,
}

/// One encoding of a file with its own strong ETag (RFC 9110 §8.8.3: a strong validator
/// names one representation, and a gzip body is another representation than the plain one).
#[derive(Debug)]
pub struct Variant {
    pub body: Bytes,
    pub etag: HeaderValue,
}

/// Every servable file of the output folder, by name (`all.atom`, `index.html`).
#[derive(Debug, Default)]
pub struct Site {
    pub files: HashMap<String, Arc<Entry>>,
}

/// The Content-Type of an output file (docs/contracts.md, HTTP), or `None` for names that are
/// not served.
pub fn content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1;
    Some(match ext {
        "rss" => "application/rss+xml; charset=utf-8",
        "atom" => "application/atom+xml; charset=utf-8",
        "json" => "application/feed+json; charset=utf-8",
        "opml" => "text/x-opml; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        _ => return None,
    })
}

impl Site {
    /// Reads the output folder. A file whose bytes equal those in `previous` keeps its entry
    /// (no recompression). A missing folder is an empty site.
    pub fn load(dir: &Path, previous: &Site) -> std::io::Result<Site> {
        let mut files = HashMap::new();
        let read = match std::fs::read_dir(dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Site::default()),
            Err(e) => return Err(e),
        };
        for entry in read {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Temp files of a publish in progress start with a dot; never serve them.
            if name.starts_with('.') || !entry.file_type()?.is_file() {
                continue;
            }
            let Some(ct) = content_type(&name) else {
                continue;
            };
            let bytes = match std::fs::read(entry.path()) {
                Ok(b) => b,
                // Replaced between listing and reading: the next load sees it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let hash = xxhash_rust::xxh3::xxh3_128(&bytes);
            if let Some(old) = previous.files.get(&name)
                && old.hash == hash
            {
                files.insert(name, old.clone());
                continue;
            }
            let modified = entry.metadata()?.modified().unwrap_or(UNIX_EPOCH);
            files.insert(name, Arc::new(Entry::new(ct, bytes, modified)));
        }
        Ok(Site { files })
    }
}

impl Entry {
    /// Builds an entry: hashes and compresses the bytes (the costly part, once per change).
    pub fn new(content_type: &'static str, bytes: Vec<u8>, modified: SystemTime) -> Entry {
        let hash = xxhash_rust::xxh3::xxh3_128(&bytes);
        let secs = modified
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let modified = UNIX_EPOCH + Duration::from_secs(secs);
        let etag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"{hash:032x}{suffix}\""))
                .expect("hex digits are a valid header value")
        };
        let gzip = gzip(&bytes).filter(|g| g.len() < bytes.len());
        let br = brotli(&bytes).filter(|b| b.len() < bytes.len());
        Entry {
            content_type: HeaderValue::from_static(content_type),
            hash,
            gzip: gzip.map(|b| Variant {
                body: Bytes::from(b),
                etag: etag("-gz"),
            }),
            br: br.map(|b| Variant {
                body: Bytes::from(b),
                etag: etag("-br"),
            }),
            identity: Variant {
                body: Bytes::from(bytes),
                etag: etag(""),
            },
            modified,
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(modified))
                .expect("an HTTP date is a valid header value"),
        }
    }

    /// True when `tag` (an entity-tag as a client sent it, weak or strong) names any encoding
    /// of this content. RFC 9110 §13.1.2: If-None-Match uses the weak comparison.
    pub fn matches(&self, tag: &str) -> bool {
        let tag = tag.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        [Some(&self.identity), self.gzip.as_ref(), self.br.as_ref()]
            .into_iter()
            .flatten()
            .any(|v| v.etag.as_bytes() == tag.as_bytes())
    }
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::best(),
    );
    enc.write_all(bytes).ok()?;
    enc.finish().ok()
}

fn brotli(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() / 4);
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_known_files_only_and_reuses_unchanged_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("all.atom"), "<feed/>".repeat(100)).unwrap();
        std::fs::write(dir.path().join(".feedloom-tmp"), "half").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "no").unwrap();
        std::fs::create_dir(dir.path().join("sub.html")).unwrap();
        let one = Site::load(dir.path(), &Site::default()).unwrap();
        assert_eq!(one.files.len(), 1);
        let e = &one.files["all.atom"];
        assert!(e.gzip.is_some() && e.br.is_some());
        assert!(e.matches(&format!("W/\"{:032x}-gz\"", e.hash)));
        assert!(!e.matches("\"other\""));
        let two = Site::load(dir.path(), &one).unwrap();
        assert!(Arc::ptr_eq(&one.files["all.atom"], &two.files["all.atom"]));
    }

    #[test]
    fn tiny_files_are_not_compressed() {
        let e = Entry::new("text/html; charset=utf-8", b"x".to_vec(), UNIX_EPOCH);
        assert!(e.gzip.is_none() && e.br.is_none());
    }
}
