//! `config.toml` in, a validated [`Config`] out.
//!
//! Two phases: serde reads [`RawConfig`] (unknown keys are errors, every value keeps its span),
//! then [`Config::from_raw`] checks what serde cannot (names, URLs, durations, regexes, references
//! between `[[feed]]` and `[[source]]`) and collects *every* problem, each with its file, line,
//! column and a one-line fix. Relative paths are resolved against the config file's folder, so a
//! cron job may run from anywhere.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

/// Every problem found in a config file. Its `Display` is the text `feedloom check` prints.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, p) in self.problems.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// One problem: where it is, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no place (the file cannot be read).
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        } else {
            write!(f, "{}: ", self.file.display())?;
        }
        write!(f, "{}\n  fix: {}", self.message, self.fix)
    }
}

/// Where a source is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Http(Url),
    File(PathBuf),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Http(u) => write!(f, "{u}"),
            Location::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// An output format of a `[[feed]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    Rss,
    Atom,
    Json,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Rss, Format::Atom, Format::Json];

    /// The file extension, which is also the name used in `formats = [...]`.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Rss => "rss",
            Format::Atom => "atom",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml",
            Format::Atom => "application/atom+xml",
            Format::Json => "application/feed+json",
        }
    }
}

/// An `include`/`exclude` pattern of a `[[feed]]`.
///
/// Written as words (every one must occur, in any word form: "Туркменистан" matches
/// "Туркменистаном"), "quoted phrases" (the words in this order), or `/a regex/` (matched,
/// case-insensitively, against the text with ё folded to е).
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written in the config.
    pub source: String,
    pub kind: PatternKind,
}

#[derive(Debug, Clone)]
pub enum PatternKind {
    /// Terms that must all occur; each term is a phrase of one or more folded words.
    Terms(Vec<Vec<String>>),
    Regex(Regex),
}

impl Pattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("the pattern is empty".into());
        }
        if t.len() >= 2 && t.starts_with('/') && t.ends_with('/') {
            let re = regex::RegexBuilder::new(&t[1..t.len() - 1])
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    let msg = e.to_string();
                    let last = msg.lines().last().unwrap_or("invalid").trim();
                    format!("bad regex: {}", last.trim_start_matches("error: "))
                })?;
            return Ok(Pattern {
                source: s.to_string(),
                kind: PatternKind::Regex(re),
            });
        }
        if t.matches('"').count() % 2 == 1 {
            return Err("a quote is not closed".into());
        }
        let mut terms = Vec::new();
        for (n, part) in t.split('"').enumerate() {
            let words = pattern_words(part);
            if n % 2 == 1 {
                if !words.is_empty() {
                    terms.push(words);
                }
            } else {
                terms.extend(words.into_iter().map(|w| vec![w]));
            }
        }
        if terms.is_empty() {
            return Err("the pattern has no words".into());
        }
        Ok(Pattern {
            source: s.to_string(),
            kind: PatternKind::Terms(terms),
        })
    }
}

/// Words of a pattern or a text, lower-cased with ё folded to е (Unicode word boundaries).
pub fn pattern_words(s: &str) -> Vec<String> {
    use unicode_segmentation::UnicodeSegmentation;
    s.unicode_words()
        .map(|w| w.to_lowercase().replace('ё', "е"))
        .collect()
}

/// How a `[[feed]]` treats the same story from several sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedupe {
    Off,
    Exact,
    Similar,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub output_dir: PathBuf,
    pub database: String,
    pub base_url: Url,
    pub listen: SocketAddr,
    pub user_agent: String,
    pub default_interval: Duration,
    pub max_items_per_source: usize,
    pub retention: Duration,
    pub allow_private_networks: bool,
    pub languages: Vec<String>,
    pub websub_hubs: Vec<Url>,
    pub websub_callback: Option<Url>,
    /// Total time one fetch may take, connect to last byte.
    pub fetch_timeout: Duration,
    /// Largest body accepted, after content decoding.
    pub max_body_bytes: u64,
    /// Redirects followed before a fetch fails.
    pub max_redirects: usize,
    /// Sources fetched at once.
    pub concurrency: usize,
    /// Sources fetched at once from one host (within `concurrency`). Article pages of
    /// `fulltext` sources take the same slots.
    pub per_host_concurrency: usize,
    /// Article pages fetched for one `fulltext` source in one run, at most; the rest wait for
    /// the next run (their items keep the teaser until then).
    pub fulltext_pages_per_run: usize,
    /// `feedloom serve`: `/healthz` answers 503 when the last good refresh is older than this
    /// (`None`: three times `default_interval`).
    pub health_max_age: Option<Duration>,
    /// Bounds on reading and normalising one document (`max_xml_depth`, `max_xml_elements`,
    /// `max_field_bytes`, `parse_timeout`).
    pub parse_limits: crate::parse::Limits,
    /// How long an instance holds a source it is refreshing (PostgreSQL); a crashed
    /// instance's sources are fetched by others after it. Longer than `fetch_timeout`.
    pub lease: Duration,
    /// `dedupe = "similar"`: estimated Jaccard similarity (0 to 1) of word 3-shingles from which
    /// two items are one story.
    pub similar_threshold: f64,
    /// `dedupe = "similar"`: items further apart in date than this are never one story.
    pub similar_window: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            output_dir: PathBuf::from("public"),
            database: "feedloom.db".into(),
            base_url: Url::parse("http://127.0.0.1:8080/").expect("constant URL is valid"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            user_agent: concat!("feedloom/", env!("CARGO_PKG_VERSION")).into(),
            default_interval: Duration::from_secs(30 * 60),
            max_items_per_source: 200,
            retention: Duration::from_secs(90 * 86_400),
            allow_private_networks: false,
            languages: ["ru", "uk", "kk", "be", "en", "de", "fr", "es"]
                .map(String::from)
                .to_vec(),
            websub_hubs: Vec::new(),
            websub_callback: None,
            fetch_timeout: Duration::from_secs(30),
            max_body_bytes: 16 * 1024 * 1024,
            max_redirects: 5,
            concurrency: 16,
            per_host_concurrency: 2,
            fulltext_pages_per_run: 10,
            health_max_age: None,
            parse_limits: crate::parse::Limits::default(),
            lease: Duration::from_secs(5 * 60),
            similar_threshold: crate::cluster::DEFAULT_THRESHOLD,
            similar_window: Duration::from_secs(72 * 3600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub location: Location,
    pub tags: Vec<String>,
    pub interval: Duration,
    /// IANA zone for dates the source writes without an offset (`Asia/Almaty`).
    pub timezone: Option<chrono_tz::Tz>,
    pub priority: i64,
    /// Fetch each new item's linked page and take the story from it (`crate::fulltext`).
    pub fulltext: bool,
    /// With `fulltext`: the story is what this selector matches on the page, rather than what
    /// the readability extractor finds.
    pub content_selector: Option<scraper::Selector>,
    /// Removed from item bodies, and from article pages before extraction.
    pub remove_selectors: Vec<scraper::Selector>,
    pub strip_patterns: Vec<Regex>,
}

#[derive(Debug, Clone)]
pub struct OutputFeed {
    pub name: String,
    pub title: String,
    /// Source names this feed takes items from, resolved from `sources` and `tags`.
    pub sources: BTreeSet<String>,
    pub include: Vec<Pattern>,
    pub exclude: Vec<Pattern>,
    pub limit: usize,
    pub per_source_limit: usize,
    pub max_age: Option<Duration>,
    pub dedupe: Dedupe,
    pub archive_pages: usize,
    pub formats: Vec<Format>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub settings: Settings,
    pub sources: Vec<Source>,
    pub feeds: Vec<OutputFeed>,
}

// ---------------------------------------------------------------------------------------------
// Raw form: what serde reads. Every value is `Spanned` so validation can name its place.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    settings: RawSettings,
    #[serde(default, rename = "source")]
    sources: Vec<RawSource>,
    #[serde(default, rename = "feed")]
    feeds: Vec<RawFeed>,
}

type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    output_dir: Option<S<String>>,
    database: Option<S<String>>,
    base_url: Option<S<String>>,
    listen: Option<S<String>>,
    user_agent: Option<S<String>>,
    default_interval: Option<S<String>>,
    max_items_per_source: Option<S<i64>>,
    retention: Option<S<String>>,
    allow_private_networks: Option<bool>,
    languages: Option<Vec<S<String>>>,
    websub_hubs: Option<Vec<S<String>>>,
    websub_callback: Option<S<String>>,
    fetch_timeout: Option<S<String>>,
    max_body_bytes: Option<S<i64>>,
    max_redirects: Option<S<i64>>,
    concurrency: Option<S<i64>>,
    per_host_concurrency: Option<S<i64>>,
    fulltext_pages_per_run: Option<S<i64>>,
    health_max_age: Option<S<String>>,
    max_xml_depth: Option<S<i64>>,
    max_xml_elements: Option<S<i64>>,
    max_field_bytes: Option<S<i64>>,
    parse_timeout: Option<S<String>>,
    lease: Option<S<String>>,
    similar_threshold: Option<S<f64>>,
    similar_window: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: S<String>,
    url: S<String>,
    #[serde(default)]
    tags: Vec<S<String>>,
    interval: Option<S<String>>,
    timezone: Option<S<String>>,
    #[serde(default)]
    priority: i64,
    fulltext: Option<S<bool>>,
    content_selector: Option<S<String>>,
    #[serde(default)]
    remove_selectors: Vec<S<String>>,
    #[serde(default)]
    strip_patterns: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: S<String>,
    title: S<String>,
    sources: Option<Vec<S<String>>>,
    tags: Option<Vec<S<String>>>,
    #[serde(default)]
    include: Vec<S<String>>,
    #[serde(default)]
    exclude: Vec<S<String>>,
    limit: Option<S<i64>>,
    per_source_limit: Option<S<i64>>,
    max_age: Option<S<String>>,
    dedupe: Option<S<String>>,
    archive_pages: Option<S<i64>>,
    formats: Option<Vec<S<String>>>,
}

/// Collects problems with their places while validating.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>, fix: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
            fix: fix.into(),
        });
    }

    fn duration(&mut self, v: &S<String>, key: &str) -> Option<Duration> {
        match humantime::parse_duration(v.get_ref().trim()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.at(
                    v.span(),
                    format!("`{key}` must be longer than zero"),
                    format!("write a duration such as `{key} = \"30m\"`"),
                );
                None
            }
            Err(e) => {
                self.at(
                    v.span(),
                    format!("`{key}` = {:?} is not a duration: {e}", v.get_ref()),
                    format!("write a duration such as `{key} = \"30m\"` (units: s, m, h, d, w)"),
                );
                None
            }
        }
    }

    fn count(&mut self, v: &S<i64>, key: &str, min: i64) -> Option<usize> {
        let n = *v.get_ref();
        if n < min {
            self.at(
                v.span(),
                format!("`{key}` = {n} is below {min}"),
                format!("set `{key}` to {min} or more"),
            );
            return None;
        }
        usize::try_from(n).ok()
    }

    fn url(&mut self, v: &S<String>, key: &str) -> Option<Url> {
        match Url::parse(v.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            Ok(u) => {
                self.at(
                    v.span(),
                    format!(
                        "`{key}` has scheme `{}`, expected http or https",
                        u.scheme()
                    ),
                    format!("write an absolute http(s) URL in `{key}`"),
                );
                None
            }
            Err(e) => {
                self.at(
                    v.span(),
                    format!("`{key}` = {:?} is not a URL: {e}", v.get_ref()),
                    format!("write an absolute http(s) URL in `{key}`"),
                );
                None
            }
        }
    }
}

/// A selector parse error in one line: scraper prints some as "Unexpected error occurred.
/// Please report this to the developer" and the error's name on a second line
/// (`DanglingCombinator`), which is made words ("dangling combinator").
fn selector_error(e: &impl fmt::Display) -> String {
    let msg = e.to_string();
    if !msg.contains('\n') {
        return msg;
    }
    let last = msg.lines().last().unwrap_or_default().trim();
    let mut words = String::new();
    for c in last.chars() {
        if c.is_uppercase() && !words.is_empty() {
            words.push(' ');
        }
        words.extend(c.to_lowercase());
    }
    words
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The ISO 639-1 codes of the languages compiled into the detector.
fn detectable_codes() -> Vec<String> {
    let mut v: Vec<String> = lingua::Language::all()
        .iter()
        .map(|l| l.iso_code_639_1().to_string())
        .collect();
    v.sort();
    v
}

fn detectable(code: &str) -> bool {
    detectable_codes().iter().any(|c| c == code)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![Problem {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                message: format!("cannot read config: {e}"),
                fix: "pass an existing file with --config or FEEDLOOM_CONFIG".into(),
            }],
        })?;
        Config::parse(&text, path)
    }

    /// Validates config text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            let message = e.message().trim().replace('\n', " ");
            let fix = if message.starts_with("unknown field") {
                "remove the key or correct its spelling (docs/contracts.md lists every key)"
            } else if message.starts_with("missing field") {
                "add the key; every [[source]] needs name and url, every [[feed]] name and title"
            } else {
                "correct the TOML syntax or the value's type (see docs/contracts.md)"
            };
            ConfigError {
                problems: vec![Problem {
                    file: path.to_path_buf(),
                    line,
                    column,
                    message,
                    fix: fix.into(),
                }],
            }
        })?;
        Config::from_raw(raw, text, path)
    }

    fn from_raw(raw: RawConfig, text: &str, path: &Path) -> Result<Config, ConfigError> {
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base_dir.join(p)
            }
        };
        let mut c = Checker {
            file: path,
            text,
            problems: Vec::new(),
        };
        let mut settings = Settings::default();
        let rs = raw.settings;
        if let Some(v) = &rs.output_dir {
            settings.output_dir = resolve(v.get_ref());
        } else {
            settings.output_dir = resolve("public");
        }
        let database = rs
            .database
            .as_ref()
            .map_or("feedloom.db".to_string(), |v| v.get_ref().clone());
        settings.database = if database.contains("://") {
            database
        } else {
            resolve(&database).to_string_lossy().into_owned()
        };
        if let Some(v) = &rs.base_url
            && let Some(mut u) = c.url(v, "base_url")
        {
            if !u.path().ends_with('/') {
                u.set_path(&format!("{}/", u.path()));
            }
            settings.base_url = u;
        }
        if let Some(v) = &rs.listen {
            match v.get_ref().parse::<SocketAddr>() {
                Ok(a) => settings.listen = a,
                Err(_) => c.at(
                    v.span(),
                    format!("`listen` = {:?} is not an address", v.get_ref()),
                    "write an IP address and port such as `listen = \"127.0.0.1:8080\"`",
                ),
            }
        }
        if let Some(v) = &rs.user_agent {
            if v.get_ref().trim().is_empty() || v.get_ref().contains(['\r', '\n']) {
                c.at(
                    v.span(),
                    "`user_agent` must be one non-empty line",
                    "write a User-Agent such as \"feedloom/0.1 (+https://example.org/bot)\"",
                );
            } else {
                settings.user_agent = v.get_ref().trim().to_string();
            }
        }
        if let Some(v) = &rs.default_interval
            && let Some(d) = c.duration(v, "default_interval")
        {
            settings.default_interval = d;
        }
        if let Some(v) = &rs.max_items_per_source
            && let Some(n) = c.count(v, "max_items_per_source", 1)
        {
            settings.max_items_per_source = n;
        }
        if let Some(v) = &rs.retention
            && let Some(d) = c.duration(v, "retention")
        {
            settings.retention = d;
        }
        if let Some(b) = rs.allow_private_networks {
            settings.allow_private_networks = b;
        }
        if let Some(langs) = &rs.languages {
            settings.languages = Vec::new();
            for l in langs {
                let s = l.get_ref().trim().to_ascii_lowercase();
                if !detectable(&s) {
                    c.at(
                        l.span(),
                        format!("{:?} is not a language this build can detect", l.get_ref()),
                        format!(
                            "use ISO 639-1 codes from: {}",
                            detectable_codes().join(", ")
                        ),
                    );
                } else {
                    settings.languages.push(s);
                }
            }
        }
        if let Some(hubs) = &rs.websub_hubs {
            settings.websub_hubs = hubs
                .iter()
                .filter_map(|h| c.url(h, "websub_hubs"))
                .collect();
        }
        if let Some(v) = &rs.websub_callback
            && !v.get_ref().is_empty()
        {
            settings.websub_callback = c.url(v, "websub_callback");
        }
        if let Some(v) = &rs.fetch_timeout
            && let Some(d) = c.duration(v, "fetch_timeout")
        {
            settings.fetch_timeout = d;
        }
        if let Some(v) = &rs.max_body_bytes
            && let Some(n) = c.count(v, "max_body_bytes", 1024)
        {
            settings.max_body_bytes = n as u64;
        }
        if let Some(v) = &rs.max_redirects
            && let Some(n) = c.count(v, "max_redirects", 0)
        {
            settings.max_redirects = n;
        }
        if let Some(v) = &rs.max_xml_depth
            && let Some(n) = c.count(v, "max_xml_depth", 8)
        {
            settings.parse_limits.max_depth = n;
        }
        if let Some(v) = &rs.max_xml_elements
            && let Some(n) = c.count(v, "max_xml_elements", 100)
        {
            settings.parse_limits.max_elements = n;
        }
        if let Some(v) = &rs.max_field_bytes
            && let Some(n) = c.count(v, "max_field_bytes", 1024)
        {
            settings.parse_limits.max_field_bytes = n;
        }
        if let Some(v) = &rs.parse_timeout
            && let Some(d) = c.duration(v, "parse_timeout")
        {
            settings.parse_limits.max_time = d;
        }
        if let Some(v) = &rs.lease
            && let Some(d) = c.duration(v, "lease")
        {
            settings.lease = d;
        }
        if let Some(v) = &rs.concurrency
            && let Some(n) = c.count(v, "concurrency", 1)
        {
            settings.concurrency = n;
        }
        if let Some(v) = &rs.per_host_concurrency
            && let Some(n) = c.count(v, "per_host_concurrency", 1)
        {
            settings.per_host_concurrency = n;
        }
        if let Some(v) = &rs.fulltext_pages_per_run
            && let Some(n) = c.count(v, "fulltext_pages_per_run", 1)
        {
            settings.fulltext_pages_per_run = n;
        }
        if let Some(v) = &rs.similar_threshold {
            let t = *v.get_ref();
            if (0.05..=1.0).contains(&t) {
                settings.similar_threshold = t;
            } else {
                c.at(
                    v.span(),
                    format!("`similar_threshold` = {t} is not between 0.05 and 1"),
                    format!(
                        "write a similarity such as `similar_threshold = {}` (higher merges fewer items)",
                        crate::cluster::DEFAULT_THRESHOLD
                    ),
                );
            }
        }
        if let Some(v) = &rs.similar_window
            && let Some(d) = c.duration(v, "similar_window")
        {
            settings.similar_window = d;
        }
        if let Some(v) = &rs.health_max_age {
            settings.health_max_age = c.duration(v, "health_max_age");
        }

        let mut sources = Vec::new();
        let mut seen = HashSet::new();
        for s in &raw.sources {
            let name = s.name.get_ref().clone();
            if !valid_name(&name) {
                c.at(
                    s.name.span(),
                    format!("[[source]] name {name:?} is not allowed"),
                    "use 1-64 characters from a-z, 0-9 and -",
                );
            } else if !seen.insert(name.clone()) {
                c.at(
                    s.name.span(),
                    format!("[[source]] name {name:?} is used twice"),
                    "give every source its own name",
                );
            }
            let raw_url = s.url.get_ref().trim();
            let location = if raw_url.starts_with("http://") || raw_url.starts_with("https://") {
                match Url::parse(raw_url) {
                    Ok(u) => Some(Location::Http(u)),
                    Err(e) => {
                        c.at(
                            s.url.span(),
                            format!("[[source]] {name:?}: url {raw_url:?} is not a URL: {e}"),
                            "write an http(s):// URL, a file:// URL or a path",
                        );
                        None
                    }
                }
            } else if raw_url.starts_with("file:") {
                match Url::parse(raw_url).ok().and_then(|u| u.to_file_path().ok()) {
                    Some(p) => Some(Location::File(p)),
                    None => {
                        c.at(
                            s.url.span(),
                            format!("[[source]] {name:?}: {raw_url:?} is not a file URL"),
                            "write file:///absolute/path or a plain path",
                        );
                        None
                    }
                }
            } else if raw_url.is_empty() || raw_url.contains("://") {
                c.at(
                    s.url.span(),
                    format!("[[source]] {name:?}: url {raw_url:?} is not supported"),
                    "write an http(s):// URL, a file:// URL or a path relative to the config",
                );
                None
            } else {
                Some(Location::File(resolve(raw_url)))
            };
            let interval = s
                .interval
                .as_ref()
                .and_then(|v| c.duration(v, "interval"))
                .unwrap_or(settings.default_interval);
            let mut strip_patterns = Vec::new();
            for p in &s.strip_patterns {
                match Regex::new(p.get_ref()) {
                    Ok(r) => strip_patterns.push(r),
                    Err(e) => c.at(
                        p.span(),
                        format!(
                            "[[source]] {name:?}: strip_patterns: bad regex {:?}: {}",
                            p.get_ref(),
                            e.to_string()
                                .lines()
                                .last()
                                .unwrap_or("invalid")
                                .trim_start_matches("error: ")
                        ),
                        "write a valid regular expression (Rust regex syntax)",
                    ),
                }
            }
            let mut remove_selectors = Vec::new();
            for v in &s.remove_selectors {
                match scraper::Selector::parse(v.get_ref()) {
                    Ok(sel) => remove_selectors.push(sel),
                    Err(e) => c.at(
                        v.span(),
                        format!(
                            "[[source]] {name:?}: remove_selectors: {:?} is not a CSS selector: {}",
                            v.get_ref(),
                            selector_error(&e)
                        ),
                        "write a CSS selector such as \"div.share\" or \"#comments\"",
                    ),
                }
            }
            let fulltext = s.fulltext.as_ref().is_some_and(|f| *f.get_ref());
            let mut content_selector = None;
            if let Some(v) = s
                .content_selector
                .as_ref()
                .filter(|v| !v.get_ref().trim().is_empty())
            {
                match scraper::Selector::parse(v.get_ref()) {
                    Ok(sel) if fulltext => content_selector = Some(sel),
                    Ok(_) => c.at(
                        v.span(),
                        format!("[[source]] {name:?}: `content_selector` needs `fulltext = true`"),
                        "add `fulltext = true` to this source, or remove `content_selector`",
                    ),
                    Err(e) => c.at(
                        v.span(),
                        format!(
                            "[[source]] {name:?}: content_selector: {:?} is not a CSS selector: {}",
                            v.get_ref(),
                            selector_error(&e)
                        ),
                        "write a CSS selector of the story, such as \"article .story-body\"",
                    ),
                }
            }
            let mut timezone = None;
            if let Some(tz) = &s.timezone {
                match tz.get_ref().trim().parse::<chrono_tz::Tz>() {
                    Ok(t) => timezone = Some(t),
                    Err(_) => c.at(
                        tz.span(),
                        format!("[[source]] {name:?}: unknown timezone {:?}", tz.get_ref()),
                        "use an IANA zone name such as \"Europe/Moscow\" or \"Asia/Almaty\"",
                    ),
                }
            }
            let tags: Vec<String> = s
                .tags
                .iter()
                .map(|t| t.get_ref().trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            if let Some(location) = location {
                sources.push(Source {
                    name,
                    location,
                    tags,
                    interval,
                    timezone,
                    priority: s.priority,
                    fulltext,
                    content_selector,
                    remove_selectors,
                    strip_patterns,
                });
            }
        }
        let mut feeds = Vec::new();
        let mut feed_names = HashSet::new();
        for f in &raw.feeds {
            let name = f.name.get_ref().clone();
            if !valid_name(&name) {
                c.at(
                    f.name.span(),
                    format!("[[feed]] name {name:?} is not allowed"),
                    "use 1-64 characters from a-z, 0-9 and - (it names the output files)",
                );
            } else if !feed_names.insert(name.clone()) {
                c.at(
                    f.name.span(),
                    format!("[[feed]] name {name:?} is used twice"),
                    "give every feed its own name",
                );
            }
            let mut selected = BTreeSet::new();
            if let Some(list) = &f.sources {
                for s in list {
                    if raw.sources.iter().any(|r| r.name.get_ref() == s.get_ref()) {
                        selected.insert(s.get_ref().clone());
                    } else {
                        c.at(
                            s.span(),
                            format!("[[feed]] {name:?}: unknown source {:?}", s.get_ref()),
                            "name a [[source]] defined in this file",
                        );
                    }
                }
            }
            if let Some(list) = &f.tags {
                for t in list {
                    let with_tag: Vec<_> = sources
                        .iter()
                        .filter(|s| s.tags.iter().any(|x| x == t.get_ref().trim()))
                        .map(|s| s.name.clone())
                        .collect();
                    if with_tag.is_empty() {
                        c.at(
                            t.span(),
                            format!("[[feed]] {name:?}: no source has tag {:?}", t.get_ref()),
                            "add the tag to a [[source]] or remove it here",
                        );
                    }
                    selected.extend(with_tag);
                }
            }
            if f.sources.is_none() && f.tags.is_none() {
                selected.extend(sources.iter().map(|s| s.name.clone()));
            }
            let mut formats = Vec::new();
            if let Some(list) = &f.formats {
                for v in list {
                    match Format::ALL
                        .iter()
                        .find(|x| x.extension() == v.get_ref().as_str())
                    {
                        Some(x) if !formats.contains(x) => formats.push(*x),
                        Some(_) => {}
                        None => c.at(
                            v.span(),
                            format!("[[feed]] {name:?}: unknown format {:?}", v.get_ref()),
                            "use \"rss\", \"atom\" or \"json\"",
                        ),
                    }
                }
            } else {
                formats = Format::ALL.to_vec();
            }
            formats.sort();
            let dedupe = match f.dedupe.as_ref().map(|d| d.get_ref().as_str()) {
                None | Some("similar") => Dedupe::Similar,
                Some("exact") => Dedupe::Exact,
                Some("off") => Dedupe::Off,
                Some(other) => {
                    let span = f.dedupe.as_ref().map(|d| d.span()).unwrap_or_default();
                    c.at(
                        span,
                        format!("[[feed]] {name:?}: dedupe = {other:?} is not a mode"),
                        "use \"off\", \"exact\" or \"similar\"",
                    );
                    Dedupe::Similar
                }
            };
            let words = |list: &[S<String>], c: &mut Checker<'_>, key: &str| -> Vec<Pattern> {
                let mut out = Vec::new();
                for w in list {
                    match Pattern::parse(w.get_ref()) {
                        Ok(p) => out.push(p),
                        Err(why) => c.at(
                            w.span(),
                            format!(
                                "[[feed]] {name:?}: `{key}` pattern {:?}: {why}",
                                w.get_ref()
                            ),
                            "write words (all must occur), \"quoted phrases\" or /a regex/",
                        ),
                    }
                }
                out
            };
            let include = words(&f.include, &mut c, "include");
            let exclude = words(&f.exclude, &mut c, "exclude");
            let limit = f
                .limit
                .as_ref()
                .and_then(|v| c.count(v, "limit", 1))
                .unwrap_or(100);
            let per_source_limit = f
                .per_source_limit
                .as_ref()
                .and_then(|v| c.count(v, "per_source_limit", 0))
                .unwrap_or(0);
            let archive_pages = f
                .archive_pages
                .as_ref()
                .and_then(|v| c.count(v, "archive_pages", 0))
                .unwrap_or(0);
            feeds.push(OutputFeed {
                name,
                title: f.title.get_ref().trim().to_string(),
                sources: selected,
                include,
                exclude,
                limit,
                per_source_limit,
                max_age: f.max_age.as_ref().and_then(|v| c.duration(v, "max_age")),
                dedupe,
                archive_pages,
                formats,
            });
        }

        c.problems.sort_by_key(|p| (p.line, p.column));
        if c.problems.is_empty() {
            Ok(Config {
                path: path.to_path_buf(),
                settings,
                sources,
                feeds,
            })
        } else {
            Err(ConfigError {
                problems: c.problems,
            })
        }
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/feedloom/config.toml"))
    }

    #[test]
    fn minimal_config_gets_defaults_and_resolves_paths() {
        let c = parse(
            "[[source]]\nname = \"a\"\nurl = \"feeds/a.xml\"\n[[feed]]\nname = \"all\"\ntitle = \"All\"\n",
        )
        .unwrap();
        assert_eq!(c.settings.output_dir, Path::new("/etc/feedloom/public"));
        assert_eq!(c.settings.database, "/etc/feedloom/feedloom.db");
        assert_eq!(
            c.sources[0].location,
            Location::File(PathBuf::from("/etc/feedloom/feeds/a.xml"))
        );
        assert_eq!(c.feeds[0].formats, Format::ALL.to_vec());
        assert!(c.feeds[0].sources.contains("a"));
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let e = parse("[settings]\noutput_dir = \"x\"\nouptut = 1\n").unwrap_err();
        let p = &e.problems[0];
        assert_eq!((p.line, p.column), (3, 1), "{e}");
        assert!(p.message.contains("unknown field `ouptut`"), "{e}");
        assert!(e.to_string().starts_with("/etc/feedloom/config.toml:3:1: "));
    }

    #[test]
    fn every_validation_problem_is_reported() {
        let e = parse(concat!(
            "[settings]\ndefault_interval = \"soon\"\n",
            "[[source]]\nname = \"Bad Name\"\nurl = \"ftp://x/y\"\n",
            "[[feed]]\nname = \"all\"\ntitle = \"All\"\nsources = [\"nope\"]\nformats = [\"rdf\"]\n",
        ))
        .unwrap_err();
        let text = e.to_string();
        assert_eq!(e.problems.len(), 5, "{text}");
        assert!(
            text.contains("config.toml:2:20: `default_interval`"),
            "{text}"
        );
        assert!(text.contains("unknown source \"nope\""), "{text}");
        assert!(text.contains("unknown format \"rdf\""), "{text}");
    }

    #[test]
    fn per_host_concurrency_defaults_to_two_and_must_be_positive() {
        let minimal = "[[source]]\nname = \"a\"\nurl = \"a.xml\"\n";
        assert_eq!(parse(minimal).unwrap().settings.per_host_concurrency, 2);
        let c = parse(&format!("[settings]\nper_host_concurrency = 4\n{minimal}")).unwrap();
        assert_eq!(c.settings.per_host_concurrency, 4);
        let e = parse(&format!("[settings]\nper_host_concurrency = 0\n{minimal}")).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "/etc/feedloom/config.toml:2:24: `per_host_concurrency` = 0 is below 1"
            ),
            "{e}"
        );
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        assert_eq!(line_col("ab\nЖЖx", 7), (2, 3));
    }
}
