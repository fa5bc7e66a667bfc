//! `(OutputFeed, candidates, now) → decisions`: which stored items a merged feed publishes, and
//! why each other one was left out. Pure.
//!
//! Rules, in order: the item's source is selected; it is within `max_age`; it matches an
//! `include` pattern (when there are any) and no `exclude` pattern; it is not a duplicate of a
//! kept item (dedupe, by canonical link or shared guid, the earliest version kept); its source
//! has not reached `per_source_limit`; the feed has not reached `limit`.
//!
//! Patterns match case-insensitively with ё folded to е, at the start of a word, so
//! "Туркменистан" matches "Туркменистана" and "Туркменистаном" but not "...туркменистан" inside
//! another word.

use std::collections::HashMap;

use tracing::debug;

use chrono::{DateTime, Utc};

use crate::config::{Dedupe, OutputFeed};
use crate::store::StoredItem;

/// Why an item was kept or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Kept,
    SourceNotSelected,
    TooOld,
    NoInclude,
    Excluded(String),
    Duplicate { source: String, id: String },
    PerSourceLimit,
    Limit,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Kept => write!(f, "kept"),
            Decision::SourceNotSelected => write!(f, "dropped: source not selected"),
            Decision::TooOld => write!(f, "dropped: older than max_age"),
            Decision::NoInclude => write!(f, "dropped: matches no include pattern"),
            Decision::Excluded(p) => write!(f, "dropped: matches exclude {p:?}"),
            Decision::Duplicate { source, id } => write!(f, "dropped: duplicate of {source}/{id}"),
            Decision::PerSourceLimit => write!(f, "dropped: beyond per_source_limit"),
            Decision::Limit => write!(f, "dropped: beyond limit"),
        }
    }
}

/// Folds case and ё for matching.
fn fold(s: &str) -> String {
    s.to_lowercase().replace('ё', "е")
}

/// The text a pattern is matched against: title, summary, categories and the content's text.
fn haystack(it: &StoredItem) -> String {
    let i = &it.item;
    let mut s = String::new();
    s.push_str(&i.title);
    s.push('\n');
    s.push_str(i.summary.as_deref().unwrap_or(""));
    s.push('\n');
    s.push_str(&i.categories.join("\n"));
    s.push('\n');
    let mut in_tag = false;
    for c in i.content_html.as_deref().unwrap_or("").chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                s.push(' ');
            }
            _ if !in_tag => s.push(c),
            _ => {}
        }
    }
    fold(&s)
}

/// Whether the folded `pattern` occurs in the folded `text` starting at a word boundary.
fn matches_word_start(text: &str, pattern: &str) -> bool {
    let pattern = fold(pattern);
    text.match_indices(&pattern).any(|(at, _)| {
        text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric())
    })
}

/// Sources' `priority` (absent: 0): among duplicates, the highest priority's version stays.
pub type Priorities = HashMap<String, i64>;

/// Decides for every candidate (given newest first) whether `feed` publishes it.
pub fn decide(
    feed: &OutputFeed,
    candidates: Vec<StoredItem>,
    priorities: &Priorities,
    now: DateTime<Utc>,
) -> Vec<(StoredItem, Decision)> {
    let mut decided: Vec<(StoredItem, Decision)> = Vec::with_capacity(candidates.len());
    for it in candidates {
        let d = if !feed.sources.contains(&it.source) {
            Decision::SourceNotSelected
        } else if feed.max_age.is_some_and(|age| {
            chrono::Duration::from_std(age).is_ok_and(|age| it.sort_date < now - age)
        }) {
            Decision::TooOld
        } else if feed.include.is_empty() && feed.exclude.is_empty() {
            Decision::Kept
        } else {
            let text = haystack(&it);
            if !feed.include.is_empty()
                && !feed.include.iter().any(|p| matches_word_start(&text, p))
            {
                Decision::NoInclude
            } else if let Some(p) = feed.exclude.iter().find(|p| matches_word_start(&text, p)) {
                Decision::Excluded(p.clone())
            } else {
                Decision::Kept
            }
        };
        decided.push((it, d));
    }
    if feed.dedupe != Dedupe::Off {
        dedupe(&mut decided, priorities);
    }
    let mut per_source: HashMap<String, usize> = HashMap::new();
    let mut kept = 0;
    for (it, d) in decided.iter_mut() {
        if *d != Decision::Kept {
            continue;
        }
        let n = per_source.entry(it.source.clone()).or_default();
        if feed.per_source_limit > 0 && *n >= feed.per_source_limit {
            *d = Decision::PerSourceLimit;
        } else if kept >= feed.limit {
            *d = Decision::Limit;
        } else {
            *n += 1;
            kept += 1;
        }
    }
    decided
}

/// Exact duplicates across sources: the same canonical link, or the same guid when it is a
/// URL or tag URI (not a source-local counter). The version from the source with the highest
/// `priority` stays, else the earliest.
fn dedupe(decided: &mut [(StoredItem, Decision)], priorities: &Priorities) {
    let priority = |s: &str| priorities.get(s).copied().unwrap_or(0);
    let mut order: Vec<usize> = (0..decided.len())
        .filter(|i| decided[*i].1 == Decision::Kept)
        .collect();
    order.sort_by(|a, b| {
        let (x, y) = (&decided[*a].0, &decided[*b].0);
        priority(&y.source)
            .cmp(&priority(&x.source))
            .then_with(|| x.sort_date.cmp(&y.sort_date))
            .then_with(|| x.source.cmp(&y.source))
            .then_with(|| x.item.id.cmp(&y.item.id))
    });
    // key → (source, id) of the earliest item that has it
    let mut seen: HashMap<String, (String, String)> = HashMap::new();
    for i in order {
        let it = &decided[i].0;
        let mut keys = Vec::new();
        if let Some(l) = &it.item.link {
            keys.push(format!("link:{l}"));
        }
        let id = &it.item.id;
        if id.contains("://") || id.starts_with("tag:") {
            keys.push(format!("id:{id}"));
        }
        if let Some((source, id)) = keys.iter().find_map(|k| seen.get(k)).cloned() {
            debug!(source = %it.source, id = %it.item.id, first = %format!("{source}/{id}"), "duplicate");
            decided[i].1 = Decision::Duplicate { source, id };
            continue;
        }
        for k in keys {
            seen.entry(k)
                .or_insert_with(|| (it.source.clone(), it.item.id.clone()));
        }
    }
}

/// The items `feed` publishes, newest first.
pub fn select(
    feed: &OutputFeed,
    candidates: Vec<StoredItem>,
    priorities: &Priorities,
    now: DateTime<Utc>,
) -> Vec<StoredItem> {
    decide(feed, candidates, priorities, now)
        .into_iter()
        .filter(|(_, d)| *d == Decision::Kept)
        .map(|(it, _)| it)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Item;
    use std::collections::BTreeSet;

    fn item(source: &str, id: &str, title: &str, link: Option<&str>, day: u32) -> StoredItem {
        let date: DateTime<Utc> = format!("2025-05-{day:02}T00:00:00Z").parse().unwrap();
        StoredItem {
            source: source.into(),
            item: Item {
                id: id.into(),
                title: title.into(),
                link: link.map(String::from),
                published: Some(date),
                updated: None,
                authors: vec![],
                summary: None,
                content_html: None,
                categories: vec![],
                language: None,
                enclosures: vec![],
                image: None,
            },
            first_seen: date,
            sort_date: date,
        }
    }

    fn feed() -> OutputFeed {
        OutputFeed {
            name: "t".into(),
            title: "T".into(),
            sources: BTreeSet::from(["a".to_string(), "b".to_string()]),
            include: vec![],
            exclude: vec![],
            limit: 100,
            per_source_limit: 0,
            max_age: None,
            dedupe: Dedupe::Exact,
            archive_pages: 0,
            formats: vec![],
        }
    }

    fn now() -> DateTime<Utc> {
        "2025-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn include_matches_word_forms_at_word_start() {
        let mut f = feed();
        f.include = vec!["Туркменистан".into()];
        f.exclude = vec!["спорт".into()];
        let got = decide(
            &f,
            vec![
                item("a", "1", "Визит лидера Туркменистана", None, 30),
                item("a", "2", "Переговоры с Туркменистаном о спорте", None, 29),
                item("a", "3", "Погода в Астане", None, 28),
                item("a", "4", "Протуркменистанский блог", None, 27),
            ],
            &Priorities::new(),
            now(),
        );
        let ds: Vec<String> = got.iter().map(|(_, d)| d.to_string()).collect();
        assert_eq!(
            ds,
            [
                "kept",
                "dropped: matches exclude \"спорт\"",
                "dropped: matches no include pattern",
                "dropped: matches no include pattern"
            ]
        );
    }

    #[test]
    fn dedupe_keeps_earliest_and_limits_apply() {
        let mut f = feed();
        f.per_source_limit = 1;
        let got = decide(
            &f,
            vec![
                item("b", "x", "Same", Some("https://e/1"), 30),
                item("a", "y", "Same", Some("https://e/1"), 29),
                item("a", "z", "Other", Some("https://e/2"), 28),
                item("c", "w", "Elsewhere", None, 27),
            ],
            &Priorities::new(),
            now(),
        );
        let ds: Vec<String> = got.iter().map(|(_, d)| d.to_string()).collect();
        assert_eq!(
            ds,
            [
                "dropped: duplicate of a/y",
                "kept",
                "dropped: beyond per_source_limit",
                "dropped: source not selected"
            ]
        );
    }

    #[test]
    fn priority_beats_age_among_duplicates() {
        let got = decide(
            &feed(),
            vec![
                item("b", "x", "Same", Some("https://e/1"), 30),
                item("a", "y", "Same", Some("https://e/1"), 29),
            ],
            &Priorities::from([("b".to_string(), 5)]),
            now(),
        );
        assert_eq!(got[0].1, Decision::Kept);
        assert_eq!(
            got[1].1,
            Decision::Duplicate {
                source: "b".into(),
                id: "x".into()
            }
        );
    }
}
