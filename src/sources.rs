//! `feedloom sources import FILE.opml`: adds a `[[source]]` to the config for every feed in an
//! OPML file that is not configured yet, editing `config.toml` in place with toml_edit so its
//! comments and layout stay. The edited text is validated before it replaces the file
//! (atomically); nothing is written when it would not load.

use std::collections::HashSet;
use std::path::Path;

use quick_xml::events::Event;

use crate::config::{Config, ConfigError, Location};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not OPML: {message}")]
    Opml { path: String, message: String },
    #[error("{path}: cannot edit it as TOML: {source}")]
    Toml {
        path: String,
        #[source]
        source: toml_edit::TomlError,
    },
    #[error("the config would not load after the import:\n{0}")]
    Invalid(#[from] ConfigError),
}

/// A feed found in an OPML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpmlFeed {
    pub title: String,
    pub url: String,
    /// `category` values and the titles of the folders it sits in.
    pub tags: Vec<String>,
}

/// Reads the feeds (outlines with an `xmlUrl`) of an OPML document.
pub fn read_opml(text: &str) -> Result<Vec<OpmlFeed>, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut folders: Vec<Option<String>> = Vec::new();
    let mut feeds = Vec::new();
    let mut saw_opml = false;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.error_position()))?;
        let (e, empty) = match ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) => {
                if e.name().as_ref() == b"outline" {
                    folders.pop();
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match e.name().as_ref() {
            b"opml" => saw_opml = true,
            b"outline" => {
                let mut attrs = std::collections::HashMap::new();
                for a in e.attributes().flatten() {
                    let key = String::from_utf8_lossy(a.key.as_ref()).to_ascii_lowercase();
                    let value = a
                        .decoded_and_normalized_value(
                            quick_xml::XmlVersion::Implicit1_0,
                            reader.decoder(),
                        )
                        .map(|v| v.trim().to_string())
                        .unwrap_or_default();
                    attrs.insert(key, value);
                }
                let title = attrs
                    .get("title")
                    .or_else(|| attrs.get("text"))
                    .cloned()
                    .unwrap_or_default();
                match attrs.get("xmlurl").filter(|u| !u.is_empty()) {
                    Some(url) => {
                        let mut tags: Vec<String> = folders.iter().flatten().cloned().collect();
                        if let Some(cats) = attrs.get("category") {
                            tags.extend(
                                cats.split(',')
                                    .map(|c| c.trim().trim_start_matches('/').to_string())
                                    .filter(|c| !c.is_empty()),
                            );
                        }
                        tags.dedup();
                        feeds.push(OpmlFeed {
                            title,
                            url: url.clone(),
                            tags,
                        });
                        if !empty {
                            folders.push(None);
                        }
                    }
                    None if !empty => folders.push(Some(title).filter(|t| !t.is_empty())),
                    None => {}
                }
            }
            _ => {}
        }
    }
    if !saw_opml {
        return Err("no <opml> element".into());
    }
    Ok(feeds)
}

/// A config name from a feed's title or address: lowercase ASCII letters, digits and dashes.
fn slug(feed: &OpmlFeed) -> String {
    let from = |s: &str| -> String {
        let mut out = String::new();
        for c in s.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        out.trim_matches('-').chars().take(48).collect::<String>()
    };
    let t = from(&feed.title);
    if t.len() >= 3 {
        return t.trim_end_matches('-').to_string();
    }
    let u = url::Url::parse(&feed.url)
        .map(|u| format!("{}{}", u.host_str().unwrap_or(""), u.path()))
        .unwrap_or_else(|_| feed.url.clone());
    let s = from(u.trim_start_matches("www."));
    if s.is_empty() {
        "feed".into()
    } else {
        s.trim_end_matches('-').to_string()
    }
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub added: Vec<String>,
    /// Feeds whose address is configured already.
    pub skipped: usize,
}

/// Adds the OPML file's new feeds to the config file.
pub fn import(config_path: &Path, opml_path: &Path) -> Result<Imported, ImportError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| ImportError::Io { path, source }
    };
    let opml = std::fs::read_to_string(opml_path).map_err(io(opml_path))?;
    let feeds = read_opml(&opml).map_err(|message| ImportError::Opml {
        path: opml_path.display().to_string(),
        message,
    })?;
    let text = std::fs::read_to_string(config_path).map_err(io(config_path))?;
    let current = Config::parse(&text, config_path)?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|source| ImportError::Toml {
        path: config_path.display().to_string(),
        source,
    })?;
    let mut names: HashSet<String> = current.sources.iter().map(|s| s.name.clone()).collect();
    let mut urls: HashSet<String> = current
        .sources
        .iter()
        .filter_map(|s| match &s.location {
            Location::Http(u) => Some(u.to_string()),
            Location::File(_) => None,
        })
        .collect();
    let mut result = Imported::default();
    for f in feeds {
        let Ok(url) = url::Url::parse(&f.url) else {
            result.skipped += 1;
            continue;
        };
        if !matches!(url.scheme(), "http" | "https") || !urls.insert(url.to_string()) {
            result.skipped += 1;
            continue;
        }
        let base = slug(&f);
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        names.insert(name.clone());
        let mut table = toml_edit::Table::new();
        table.insert("name", toml_edit::value(name.clone()));
        table.insert("url", toml_edit::value(url.to_string()));
        if !f.tags.is_empty() {
            let mut tags = toml_edit::Array::new();
            for t in &f.tags {
                tags.push(t.as_str());
            }
            table.insert("tags", toml_edit::value(tags));
        }
        if !f.title.is_empty() {
            table.decor_mut().set_prefix(format!(
                "\n# {} (imported from OPML)\n",
                f.title.replace('\n', " ")
            ));
        }
        let sources = doc
            .entry("source")
            .or_insert(toml_edit::Item::ArrayOfTables(Default::default()));
        if let Some(arr) = sources.as_array_of_tables_mut() {
            arr.push(table);
        }
        result.added.push(name);
    }
    if result.added.is_empty() {
        return Ok(result);
    }
    let new_text = doc.to_string();
    Config::parse(&new_text, config_path)?;
    let dir = config_path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(config_path))?;
    std::io::Write::write_all(&mut tmp, new_text.as_bytes()).map_err(io(config_path))?;
    tmp.persist(config_path)
        .map_err(|e| e.error)
        .map_err(io(config_path))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_outlines_with_folders_and_categories() {
        let feeds = read_opml(
            r#"<?xml version="1.0"?><opml version="2.0"><head/><body>
            <outline text="News"><outline text="Tengri" type="rss" xmlUrl="https://tengri.example/rss" category="/kz,ru"/></outline>
            <outline title="Blog &amp; more" xmlUrl="https://blog.example/feed"/>
            <outline text="empty folder"></outline></body></opml>"#,
        )
        .unwrap();
        assert_eq!(feeds.len(), 2);
        assert_eq!(feeds[0].tags, ["News", "kz", "ru"]);
        assert_eq!(feeds[1].title, "Blog & more");
        assert_eq!(slug(&feeds[1]), "blog-more");
        assert!(read_opml("<rss/>").is_err());
    }
}
