//! `(OutputFeed, candidates, now) → decisions`: which stored items a merged feed publishes, and
//! why each other one was left out. Pure.
//!
//! Rules, in order: the item's source is selected; it is within `max_age`; it matches an
//! `include` pattern (when there are any) and no `exclude` pattern; it is not a duplicate of a
//! kept item (dedupe, by canonical link or shared guid, the earliest version kept); its source
//! has not reached `per_source_limit`; the feed has not reached `limit`.
//!
//! Patterns ([`Pattern`]) match words in any form: case and ё folded, Unicode word boundaries,
//! Snowball stems in the item's language compared by prefix, so "Туркменистан" matches
//! "Туркменистана" and "Туркменистаном", "Анталья" matches "в Анталье", and "кот" does not
//! match "котлета"; "quoted phrases" match words in order; `/regex/` is a regex.

use std::collections::HashMap;

use tracing::debug;

use chrono::{DateTime, Utc};

use rust_stemmers::{Algorithm, Stemmer};

use crate::config::{Dedupe, OutputFeed, Pattern, PatternKind, pattern_words};
use crate::store::{ItemHead, StoredItem};

/// What the rules read of a candidate besides its text: a stored item, or its [`ItemHead`]
/// when the text rules were decided apart ([`decide_by`]).
pub trait Selectable {
    fn source(&self) -> &str;
    fn id(&self) -> &str;
    fn sort_date(&self) -> DateTime<Utc>;
    /// The key of its link ([`link_key`]).
    fn link_key(&self) -> Option<LinkKey>;
}

impl Selectable for StoredItem {
    fn source(&self) -> &str {
        &self.source
    }
    fn id(&self) -> &str {
        &self.item.id
    }
    fn sort_date(&self) -> DateTime<Utc> {
        self.sort_date
    }
    fn link_key(&self) -> Option<LinkKey> {
        self.item.link.as_deref().map(link_key)
    }
}

impl Selectable for ItemHead {
    fn source(&self) -> &str {
        &self.source
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn sort_date(&self) -> DateTime<Utc> {
        self.sort_date
    }
    fn link_key(&self) -> Option<LinkKey> {
        self.link_key
    }
}

impl<T: Selectable> Selectable for &T {
    fn source(&self) -> &str {
        (*self).source()
    }
    fn id(&self) -> &str {
        (*self).id()
    }
    fn sort_date(&self) -> DateTime<Utc> {
        (*self).sort_date()
    }
    fn link_key(&self) -> Option<LinkKey> {
        (*self).link_key()
    }
}

/// Why an item was kept or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Kept,
    SourceNotSelected,
    TooOld,
    NoInclude,
    Excluded(String),
    /// The same item as the one kept.
    Duplicate(Box<ItemRef>),
    /// `dedupe = "similar"`: the same story as the kept item of its cluster (which lists this
    /// one as "also reported by").
    Merged(Box<ItemRef>),
    PerSourceLimit,
    Limit,
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Decision>() == 24);

/// The item a [`Decision`] refers to. Boxed there: a feed decides on every stored item of its
/// sources, and two strings inline made each decision 56 bytes instead of 24.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRef {
    pub source: String,
    pub id: String,
}

impl ItemRef {
    fn of(it: &impl Selectable) -> Box<ItemRef> {
        Box::new(ItemRef {
            source: it.source().to_string(),
            id: it.id().to_string(),
        })
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Kept => write!(f, "kept"),
            Decision::SourceNotSelected => write!(f, "dropped: source not selected"),
            Decision::TooOld => write!(f, "dropped: older than max_age"),
            Decision::NoInclude => write!(f, "dropped: matches no include pattern"),
            Decision::Excluded(p) => write!(f, "dropped: matches exclude {p:?}"),
            Decision::Duplicate(it) => write!(f, "dropped: duplicate of {}/{}", it.source, it.id),
            Decision::Merged(it) => write!(f, "merged: same story as {}/{}", it.source, it.id),
            Decision::PerSourceLimit => write!(f, "dropped: beyond per_source_limit"),
            Decision::Limit => write!(f, "dropped: beyond limit"),
        }
    }
}

/// The text a pattern is matched against: title, summary, categories and the content's text,
/// as words with their stems (Snowball, in the item's language).
struct Haystack {
    /// The whole text, lower-cased, ё folded to е (for regex patterns).
    folded: String,
    words: Vec<String>,
    stems: Vec<String>,
    /// Whether `stems` came from a stemmer (else they are the words themselves).
    stemmed: bool,
    stemmer: Option<Stemmer>,
}

pub(crate) fn stemmer_for(language: Option<&str>) -> Option<Stemmer> {
    let algorithm = match language?.split('-').next()? {
        "ru" => Algorithm::Russian,
        "en" => Algorithm::English,
        "de" => Algorithm::German,
        "fr" => Algorithm::French,
        "es" => Algorithm::Spanish,
        "it" => Algorithm::Italian,
        "pt" => Algorithm::Portuguese,
        "nl" => Algorithm::Dutch,
        "sv" => Algorithm::Swedish,
        "no" | "nb" | "nn" => Algorithm::Norwegian,
        "da" => Algorithm::Danish,
        "fi" => Algorithm::Finnish,
        "hu" => Algorithm::Hungarian,
        "ro" => Algorithm::Romanian,
        "tr" => Algorithm::Turkish,
        "el" => Algorithm::Greek,
        "ar" => Algorithm::Arabic,
        _ => return None,
    };
    Some(Stemmer::create(algorithm))
}

impl Haystack {
    fn of(it: &StoredItem) -> Haystack {
        let i = &it.item;
        let mut s = String::new();
        s.push_str(&i.title);
        s.push('\n');
        s.push_str(i.summary.as_deref().unwrap_or(""));
        s.push('\n');
        s.push_str(&i.categories.join("\n"));
        s.push('\n');
        s.push_str(&crate::cluster::body_text(
            i.content_html.as_deref().unwrap_or(""),
            usize::MAX,
        ));
        let folded = s.to_lowercase().replace('ё', "е");
        let words = pattern_words(&folded);
        let stemmer = stemmer_for(i.language.as_deref());
        let stems = match &stemmer {
            Some(st) => words.iter().map(|w| st.stem(w).into_owned()).collect(),
            None => words.clone(),
        };
        Haystack {
            folded,
            words,
            stemmed: stemmer.is_some(),
            stems,
            stemmer,
        }
    }

    fn stem(&self, word: &str) -> String {
        match &self.stemmer {
            Some(st) => st.stem(word).into_owned(),
            None => word.to_string(),
        }
    }

    /// Whether a pattern word matches the text's word at `at`, in any word form: one stem is a
    /// prefix of the other, the longer ending at most a couple of letters later (Snowball gives
    /// "Туркменистан" the stem "туркмениста" and "Туркменистаном" "туркменистан", so equal
    /// stems alone miss forms; "кот" must not match "котлета").
    fn word_matches(&self, stem: &str, word: &str, at: usize) -> bool {
        if self.words[at] == word {
            return true;
        }
        let (a, b) = (stem, self.stems[at].as_str());
        let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
        let slack = if self.stemmed { 2 } else { 3 };
        short.chars().count() >= 3
            && long.starts_with(short)
            && long.chars().count() - short.chars().count() <= slack
    }

    fn term_matches(&self, term: &[String]) -> bool {
        let stems: Vec<String> = term.iter().map(|w| self.stem(w)).collect();
        if term.is_empty() || self.words.len() < term.len() {
            return false;
        }
        (0..=self.words.len() - term.len()).any(|start| {
            term.iter()
                .zip(&stems)
                .enumerate()
                .all(|(j, (w, s))| self.word_matches(s, w, start + j))
        })
    }

    fn matches(&self, p: &Pattern) -> bool {
        match &p.kind {
            PatternKind::Regex(re) => re.is_match(&self.folded),
            PatternKind::Terms(terms) => terms.iter().all(|t| self.term_matches(t)),
        }
    }
}

/// Sources' `priority` (absent: 0): among duplicates, the highest priority's version stays.
pub type Priorities = HashMap<String, i64>;

/// Items' cluster keys, by [`item_key`] (from the store; see `crate::cluster`). An item
/// without one is a cluster of its own.
///
/// Each key is held with its hash: [`within_reach`] compares the clusters of every candidate of
/// a feed by it, and hashing the key strings there (scattered on the heap) was a quarter of a
/// selection over 571,000 candidates.
#[derive(Debug, Clone, Default)]
pub struct Clusters(KeyMap<(String, u64)>);

impl Clusters {
    /// Puts `item` in the cluster `key`.
    pub fn insert(&mut self, item: ItemKey, key: String) {
        let hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes()).max(1);
        self.0.insert(item, (key, hash));
    }

    /// The key of `item`'s cluster, if it has one.
    pub fn get(&self, item: &ItemKey) -> Option<&String> {
        self.0.get(item).map(|(key, _)| key)
    }

    /// The hash of `item`'s cluster key (never 0), if it has one.
    fn hash_of(&self, item: &ItemKey) -> Option<u64> {
        self.0.get(item).map(|(_, hash)| *hash)
    }

    /// How many items have a cluster key.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The cluster keys, one per item.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.values().map(|(key, _)| key)
    }
}

impl FromIterator<(ItemKey, String)> for Clusters {
    fn from_iter<I: IntoIterator<Item = (ItemKey, String)>>(items: I) -> Clusters {
        let mut c = Clusters::default();
        for (item, key) in items {
            c.insert(item, key);
        }
        c
    }
}

/// A map keyed by [`ItemKey`]s or other 128-bit hashes of text: hashed with foldhash rather
/// than SipHash (several times faster on such keys), seeded per map, so sources still cannot
/// aim their items at one bucket.
pub type KeyMap<V> = HashMap<u128, V, foldhash::fast::RandomState>;

/// An item's (source, id), hashed: a map key looked up without building strings.
pub type ItemKey = u128;

/// The [`ItemKey`] of an item.
///
/// The id is hashed with the source's hash as the seed: two one-shot hashes, several times
/// cheaper than streaming both into one (this runs for every candidate of every feed). Keys
/// live only in memory, never in the store.
pub fn item_key(source: &str, id: &str) -> ItemKey {
    use xxhash_rust::xxh3::{xxh3_64, xxh3_128_with_seed};
    xxh3_128_with_seed(id.as_bytes(), xxh3_64(source.as_bytes()))
}

/// A dedupe key: `value` hashed with `tag`'s seed (keys of different tags differ).
fn tagged(tag: u64, value: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128_with_seed(value.as_bytes(), tag)
}

/// Seeds of duplicate keys (here, in [`link_key`], and in `cluster::exact_keys_of` for ids): a
/// link and an id of the same text are different keys.
pub const LINK_KEY: u64 = 0x6c69_6e6b; // "link"
pub const ID_KEY: u64 = 0x6964; // "id"

/// What links are compared by: a 128-bit hash of the link, as its low and high halves. Not a
/// `u128`, which is 16-aligned: an `Option` of it took 32 bytes, and made every head and
/// cluster row 16 bytes larger (9.6 MB at 600,000 rows).
pub type LinkKey = [u64; 2];

/// The key of `link`.
pub fn link_key(link: &str) -> LinkKey {
    halves(tagged(LINK_KEY, link))
}

/// A 128-bit key as its low and high halves.
fn halves(k: u128) -> [u64; 2] {
    [k as u64, (k >> 64) as u64]
}

/// Whether an item id names the story beyond its source (a URL or tag URI, not a source-local
/// counter): then two items with it are one story.
pub fn is_global_id(id: &str) -> bool {
    id.contains("://") || id.starts_with("tag:")
}

/// Decides for every candidate (given newest first) whether `feed` publishes it.
pub fn decide(
    feed: &OutputFeed,
    candidates: Vec<StoredItem>,
    priorities: &Priorities,
    clusters: &Clusters,
    now: DateTime<Utc>,
) -> Vec<(StoredItem, Decision)> {
    decide_by(
        feed,
        candidates,
        |it| text_decision(feed, it),
        priorities,
        clusters,
        now,
    )
}

/// What `feed`'s `include` and `exclude` patterns make of an item: `Kept`, `NoInclude` or
/// `Excluded`.
pub fn text_decision(feed: &OutputFeed, it: &StoredItem) -> Decision {
    if feed.include.is_empty() && feed.exclude.is_empty() {
        return Decision::Kept;
    }
    let text = Haystack::of(it);
    if !feed.include.is_empty() && !feed.include.iter().any(|p| text.matches(p)) {
        Decision::NoInclude
    } else if let Some(p) = feed.exclude.iter().find(|p| text.matches(p)) {
        Decision::Excluded(p.source.clone())
    } else {
        Decision::Kept
    }
}

/// A set of source names, for lookups once per candidate: hashed, as a tree of 10,000 names
/// took 14 string comparisons each (at N = 10,000, a quarter of a second a publish).
pub type SourceSet<'a> = std::collections::HashSet<&'a str, foldhash::fast::RandomState>;

/// [`decide`] with the text rules given by `text` (called, when `feed` has patterns, for the
/// candidates of selected sources within `max_age`, as [`text_decision`] would answer).
pub fn decide_by<T: Selectable>(
    feed: &OutputFeed,
    candidates: Vec<T>,
    mut text: impl FnMut(&T) -> Decision,
    priorities: &Priorities,
    clusters: &Clusters,
    now: DateTime<Utc>,
) -> Vec<(T, Decision)> {
    let mut decided: Vec<(T, Decision)> = Vec::with_capacity(candidates.len());
    let selected: SourceSet<'_> = feed.sources.iter().map(String::as_str).collect();
    for it in candidates {
        let d = if !selected.contains(it.source()) {
            Decision::SourceNotSelected
        } else if feed.max_age.is_some_and(|age| {
            chrono::Duration::from_std(age).is_ok_and(|age| it.sort_date() < now - age)
        }) {
            Decision::TooOld
        } else if feed.include.is_empty() && feed.exclude.is_empty() {
            Decision::Kept
        } else {
            text(&it)
        };
        decided.push((it, d));
    }
    if feed.dedupe == Dedupe::Similar {
        merge_clusters(&mut decided, priorities, clusters);
    }
    if feed.dedupe != Dedupe::Off {
        dedupe(&mut decided, priorities);
    }
    let mut per_source: HashMap<&str, usize> = HashMap::new();
    let mut kept = 0;
    for (it, d) in decided.iter_mut() {
        if *d != Decision::Kept {
            continue;
        }
        if feed.per_source_limit == 0 {
            // No per-source count to keep (and no source to hash for each candidate).
            if kept >= feed.limit {
                *d = Decision::Limit;
            } else {
                kept += 1;
            }
            continue;
        }
        let n = per_source.entry(it.source()).or_default();
        if *n >= feed.per_source_limit {
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

/// The positions of `candidates` (newest first, as [`decide_by`] takes them) that deciding on
/// the first `k` needs, ascending: those `k`, and every candidate joined to one of them,
/// directly or through others, by a duplicate key (a link, a global id) or, with
/// `dedupe = "similar"`, a cluster. [`decide_by`] over these alone, in their order, gives the
/// first `k` the very decisions it gives them over all: the others share no key with them, so
/// neither merging nor dedupe relates them, and the limits count in order.
///
/// So a feed that shows `limit` items decides on a few times that many, not on every stored
/// item of its sources ([`settled`] says when `k` was enough). Keys are compared as 64-bit
/// hashes here: a collision only brings in a candidate that did not need to be.
pub fn within_reach<T: Selectable>(
    feed: &OutputFeed,
    candidates: &[T],
    k: usize,
    clusters: &Clusters,
) -> Vec<usize> {
    let k = k.min(candidates.len());
    if feed.dedupe == Dedupe::Off || k == candidates.len() {
        return (0..k).collect();
    }
    let similar = feed.dedupe == Dedupe::Similar;
    // 0 stands for no key (a real key of 0 is read as 1).
    let keys_of = |it: &T| -> [u64; 3] {
        let id = it.id();
        let link = it.link_key().map_or(0, |k| k[0].max(1));
        let global = if is_global_id(id) {
            (tagged(ID_KEY, id) as u64).max(1)
        } else {
            0
        };
        let cluster = match similar.then(|| clusters.hash_of(&item_key(it.source(), id))) {
            Some(Some(hash)) => hash,
            _ => 0,
        };
        [link, global, cluster]
    };
    let mut reached: std::collections::HashSet<u64, foldhash::fast::RandomState> =
        Default::default();
    for it in &candidates[..k] {
        reached.extend(keys_of(it).into_iter().filter(|h| *h != 0));
    }
    // The others' keys, computed once: a candidate found late in a pass may join one passed
    // over earlier, so passes repeat until one adds no key.
    let rest: Vec<[u64; 3]> = candidates[k..].iter().map(keys_of).collect();
    let mut taken = vec![false; rest.len()];
    let mut grew = true;
    while grew {
        grew = false;
        for (n, keys) in rest.iter().enumerate() {
            if taken[n] || !keys.iter().any(|h| *h != 0 && reached.contains(h)) {
                continue;
            }
            taken[n] = true;
            for h in keys.iter().filter(|h| **h != 0) {
                grew |= reached.insert(*h);
            }
        }
    }
    (0..k)
        .chain(
            taken
                .iter()
                .enumerate()
                .filter(|(_, t)| **t)
                .map(|(n, _)| k + n),
        )
        .collect()
}

/// Whether decisions on the candidates of [`within_reach`] settle `feed`'s whole selection:
/// `first` (the decisions of the first `k`, all candidates but those past `k`) keep `limit`
/// items, so every later candidate is past the limit; or there is no later candidate (`all`).
pub fn settled<T>(feed: &OutputFeed, first: &[(T, Decision)], all: bool) -> bool {
    all || first.iter().filter(|(_, d)| *d == Decision::Kept).count() >= feed.limit
}

/// Sorts positions of `decided` by which version of a story stays: the highest `priority`,
/// else the earliest (then by source and id, so the order is total).
fn sort_by_preference<T: Selectable>(
    idx: &mut [usize],
    decided: &[(T, Decision)],
    priority: &[i64],
) {
    // Candidates come newest first, each date's run by source and id (the store's order): then
    // ascending positions already break ties of a date, and a stable sort on the numbers alone
    // gives the same order without comparing strings (600,000 heads at N = 10,000).
    let in_store_order = idx.is_sorted()
        && idx.windows(2).all(|w| {
            let (a, b) = (&decided[w[0]].0, &decided[w[1]].0);
            a.sort_date() > b.sort_date()
                || (a.sort_date() == b.sort_date() && (a.source(), a.id()) < (b.source(), b.id()))
        });
    if in_store_order {
        idx.sort_by_key(|i| (std::cmp::Reverse(priority[*i]), decided[*i].0.sort_date()));
        return;
    }
    idx.sort_by(|a, b| preference(decided, priority, *a, *b));
}

/// Which of the candidates at positions `a` and `b` stays (`Less`: `a`); see
/// [`sort_by_preference`].
fn preference<T: Selectable>(
    decided: &[(T, Decision)],
    priority: &[i64],
    a: usize,
    b: usize,
) -> std::cmp::Ordering {
    let (x, y) = (&decided[a].0, &decided[b].0);
    priority[b]
        .cmp(&priority[a])
        .then_with(|| x.sort_date().cmp(&y.sort_date()))
        .then_with(|| x.source().cmp(y.source()))
        .then_with(|| x.id().cmp(y.id()))
}

/// Each candidate's source `priority` (absent: 0).
fn priorities_of<T: Selectable>(decided: &[(T, Decision)], priorities: &Priorities) -> Vec<i64> {
    if priorities.is_empty() {
        return vec![0; decided.len()];
    }
    decided
        .iter()
        .map(|(it, _)| priorities.get(it.source()).copied().unwrap_or(0))
        .collect()
}

/// The cluster key an item is published under: its cluster's, else its own id.
pub fn cluster_key<T: Selectable + ?Sized>(clusters: &Clusters, it: &T) -> String {
    clusters
        .get(&item_key(it.source(), it.id()))
        .cloned()
        .unwrap_or_else(|| crate::publish::output_id(it.source(), it.id()))
}

/// Near duplicates: of the kept items of one cluster, the preferred version stays and the
/// others are `Merged` into it.
fn merge_clusters<T: Selectable>(
    decided: &mut [(T, Decision)],
    priorities: &Priorities,
    clusters: &Clusters,
) {
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (it, d)) in decided.iter().enumerate() {
        if *d == Decision::Kept
            && let Some(key) = clusters.get(&item_key(it.source(), it.id()))
        {
            groups.entry(key.as_str()).or_default().push(i);
        }
    }
    let groups: Vec<Vec<usize>> = groups.into_values().filter(|m| m.len() > 1).collect();
    if groups.is_empty() {
        return;
    }
    let priority = priorities_of(decided, priorities);
    for mut members in groups {
        sort_by_preference(&mut members, decided, &priority);
        let kept = ItemRef::of(&decided[members[0]].0);
        for i in &members[1..] {
            decided[*i].1 = Decision::Merged(kept.clone());
        }
    }
}

/// Exact duplicates across sources: the same canonical link, or the same guid when it is a
/// URL or tag URI (not a source-local counter). The version from the source with the highest
/// `priority` stays, else the earliest.
fn dedupe<T: Selectable>(decided: &mut [(T, Decision)], priorities: &Priorities) {
    let mut order: Vec<usize> = (0..decided.len())
        .filter(|i| decided[*i].1 == Decision::Kept)
        .collect();
    let priority = priorities_of(decided, priorities);
    sort_by_preference(&mut order, decided, &priority);
    // key → position of the earliest item that has it. The key's halves and a u32: an entry
    // of 24 bytes rather than 32 (a u128 is 16-aligned), in a map of two keys an item.
    let mut seen: HashMap<[u64; 2], u32, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(order.len() * 2, Default::default());
    assert!(
        decided.len() <= u32::MAX as usize,
        "fewer than 2^32 candidates"
    );
    for i in order {
        let it = &decided[i].0;
        let id = it.id();
        let keys = [
            it.link_key(),
            is_global_id(id).then(|| halves(tagged(ID_KEY, id))),
        ];
        if let Some(first) = keys.iter().flatten().find_map(|k| seen.get(k)).copied() {
            let kept = ItemRef::of(&decided[first as usize].0);
            debug!(source = %it.source(), id = %it.id(), first = %format!("{}/{}", kept.source, kept.id), "duplicate");
            decided[i].1 = Decision::Duplicate(kept);
            continue;
        }
        for k in keys.into_iter().flatten() {
            seen.entry(k).or_insert(i as u32);
        }
    }
}

/// The items `feed` publishes, newest first.
pub fn select(
    feed: &OutputFeed,
    candidates: Vec<StoredItem>,
    priorities: &Priorities,
    clusters: &Clusters,
    now: DateTime<Utc>,
) -> Vec<StoredItem> {
    decide(feed, candidates, priorities, clusters, now)
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
        /// Deciding on the candidates within reach of the first `k` gives those `k` the
        /// decisions deciding on all gives them, whatever `k`; once that is settled, the
        /// kept items and what merged into them are all there is.
        #[test]
        fn deciding_within_reach_is_deciding_on_all(
            heads in proptest::collection::vec(
                (0u8..4, 0u8..10, 1u32..6, proptest::option::of(0u8..5), proptest::option::of(0u8..4), 0u8..4),
                0..40,
            ),
            mode in 0u8..3,
            limit in 0usize..12,
            per_source_limit in 0usize..4,
            prioritised in proptest::collection::vec(0u8..4, 0..3),
            patterns in proptest::prelude::any::<bool>(),
        ) {
            let mut f = feed();
            f.sources = (0..4).map(|s| format!("s{s}")).collect();
            f.dedupe = [Dedupe::Off, Dedupe::Exact, Dedupe::Similar][mode as usize];
            f.limit = limit;
            f.per_source_limit = per_source_limit;
            if patterns {
                f.include = vec![Pattern::parse("x").unwrap()];
            }
            let mut cands: Vec<ItemHead> = Vec::new();
            let mut clusters = Clusters::default();
            let mut dropped = std::collections::HashSet::new();
            for (src, id, day, link, cluster, text) in &heads {
                // Every third id names the story beyond its source.
                let id = if id % 3 == 0 { format!("tag:x,{id}") } else { format!("i{id}") };
                let source = format!("s{src}");
                if cands.iter().any(|h| *h.source == *source && h.id == id) {
                    continue;
                }
                let date: DateTime<Utc> = format!("2025-05-{day:02}T00:00:00Z").parse().unwrap();
                if let Some(c) = cluster {
                    clusters.insert(item_key(&source, &id), format!("c{c}"));
                }
                if *text == 0 {
                    dropped.insert(item_key(&source, &id));
                }
                cands.push(ItemHead {
                    source: source.as_str().into(),
                    id,
                    first_seen: date,
                    sort_date: date,
                    link_key: link.map(|l| link_key(&format!("https://x/{l}"))),
                });
            }
            cands.sort_by(|a, b| {
                (std::cmp::Reverse(a.sort_date), &a.source, &a.id)
                    .cmp(&(std::cmp::Reverse(b.sort_date), &b.source, &b.id))
            });
            let priorities: Priorities =
                prioritised.iter().map(|s| (format!("s{s}"), i64::from(*s) + 1)).collect();
            let text = |h: &&ItemHead| {
                if dropped.contains(&item_key(&h.source, &h.id)) {
                    Decision::NoInclude
                } else {
                    Decision::Kept
                }
            };
            let all = decide_by(&f, cands.iter().collect(), text, &priorities, &clusters, now());
            for k in 0..=cands.len() + 1 {
                let part = within_reach(&f, &cands, k, &clusters);
                proptest::prop_assert!(part.is_sorted());
                let first = k.min(cands.len());
                proptest::prop_assert_eq!(&part[..first], &(0..first).collect::<Vec<_>>()[..]);
                let sub = decide_by(
                    &f,
                    part.iter().map(|n| &cands[*n]).collect(),
                    text,
                    &priorities,
                    &clusters,
                    now(),
                );
                proptest::prop_assert_eq!(&sub[..first], &all[..first]);
                if settled(&f, &sub[..first], first == cands.len()) {
                    let kept_or_merged = |d: &[(&ItemHead, Decision)]| -> Vec<(usize, Decision)> {
                        let kept: Vec<&ItemHead> = d
                            .iter()
                            .filter(|(_, d)| *d == Decision::Kept)
                            .map(|(h, _)| *h)
                            .collect();
                        d.iter()
                            .filter(|(_, d)| match d {
                                Decision::Kept => true,
                                Decision::Merged(to) => kept
                                    .iter()
                                    .any(|h| *h.source == *to.source && h.id == to.id),
                                _ => false,
                            })
                            .map(|(h, d)| {
                                (cands.iter().position(|c| std::ptr::eq(c, *h)).unwrap(), d.clone())
                            })
                            .collect()
                    };
                    proptest::prop_assert_eq!(kept_or_merged(&sub), kept_or_merged(&all));
                }
            }
        }

        /// The quick preference sort (candidates in the store's order) orders as the full
        /// comparison does, and any other order takes the full comparison.
        #[test]
        fn preference_sort_is_the_full_comparison(
            heads in proptest::collection::vec((0u8..4, 0u8..6, 0u32..4), 0..40),
            prioritised in proptest::collection::vec(0u8..4, 0..3),
            shuffle in proptest::prelude::any::<bool>(),
        ) {
            let mut decided: Vec<(StoredItem, Decision)> = heads
                .iter()
                .map(|(src, id, day)| {
                    (item(&format!("s{src}"), &format!("i{id}"), "t", None, day + 1), Decision::Kept)
                })
                .collect();
            // The store's order: newest first, then by source and id.
            decided.sort_by(|(a, _), (b, _)| {
                (std::cmp::Reverse(a.sort_date), &a.source, &a.item.id)
                    .cmp(&(std::cmp::Reverse(b.sort_date), &b.source, &b.item.id))
            });
            if shuffle {
                decided.reverse();
            }
            let priorities: Priorities =
                prioritised.iter().map(|s| (format!("s{s}"), i64::from(*s) + 1)).collect();
            let priority = priorities_of(&decided, &priorities);
            let mut quick: Vec<usize> = (0..decided.len()).collect();
            sort_by_preference(&mut quick, &decided, &priority);
            let mut full: Vec<usize> = (0..decided.len()).collect();
            full.sort_by(|a, b| preference(&decided, &priority, *a, *b));
            // Equal candidates may take either order: compare what is at each place.
            let at = |v: &[usize]| -> Vec<(String, String, DateTime<Utc>)> {
                v.iter()
                    .map(|i| {
                        let it = &decided[*i].0;
                        (it.source.clone(), it.item.id.clone(), it.sort_date)
                    })
                    .collect()
            };
            proptest::prop_assert_eq!(at(&quick), at(&full));
        }
    }

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
                language: Some("ru".into()),
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

    fn kept(f: &OutputFeed, titles: &[&str]) -> Vec<bool> {
        let items = titles
            .iter()
            .enumerate()
            .map(|(n, t)| item("a", &n.to_string(), t, None, 30))
            .collect();
        decide(f, items, &Priorities::new(), &Clusters::default(), now())
            .iter()
            .map(|(_, d)| *d == Decision::Kept)
            .collect()
    }

    fn with(include: &[&str], exclude: &[&str]) -> OutputFeed {
        let mut f = feed();
        f.include = include.iter().map(|p| Pattern::parse(p).unwrap()).collect();
        f.exclude = exclude.iter().map(|p| Pattern::parse(p).unwrap()).collect();
        f
    }

    #[test]
    fn russian_word_forms_on_real_sentences() {
        let f = with(&["Туркменистан"], &[]);
        assert_eq!(
            kept(
                &f,
                &[
                    "Визит лидера Туркменистана в Астану",
                    "Казахстан и Туркменистан подписали соглашение",
                    "Переговоры с Туркменистаном прошли в Ашхабаде",
                    "В Туркменистане открыли новый вокзал",
                    "Погода в Астане",
                ]
            ),
            [true, true, true, true, false]
        );
        // A substring test misses "в Анталье"; stems do not.
        let f = with(&["Анталья"], &[]);
        assert_eq!(
            kept(
                &f,
                &[
                    "Форум прошёл в Анталье",
                    "Отдых в Анталью подорожал",
                    "Алматы"
                ]
            ),
            [true, true, false]
        );
        // Stems must not run into other words.
        let f = with(&["кот"], &[]);
        assert_eq!(
            kept(&f, &["Котлета по-киевски", "Кот учёного"]),
            [false, true]
        );
        // ё and е are one letter for matching.
        let f = with(&["елки"], &[]);
        assert_eq!(kept(&f, &["Новогодние ёлки на площади"]), [true]);
    }

    #[test]
    fn exclude_phrases_and_regex() {
        let f = with(&["саммит"], &["\"Центральная Азия\" спорт"]);
        assert_eq!(
            kept(
                &f,
                &[
                    "Саммит «Центральная Азия – Италия» открылся в Астане",
                    "Саммит о спорте: Центральная Азия принимает игры",
                    "Азия центральная: саммит о спорте",
                ]
            ),
            [true, false, true]
        );
        let f = with(&["/туркмен(истан|ский)/"], &[]);
        assert_eq!(kept(&f, &["Туркменский газ", "Турция"]), [true, false]);
        let got = decide(
            &with(&["Туркменистан"], &["спорт"]),
            vec![item("a", "1", "Туркменистан: новости спорта", None, 30)],
            &Priorities::new(),
            &Clusters::default(),
            now(),
        );
        assert_eq!(got[0].1.to_string(), "dropped: matches exclude \"спорт\"");
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(Pattern::parse("  ").is_err());
        assert!(Pattern::parse("\"unclosed").is_err());
        assert!(Pattern::parse("/(/").is_err());
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
            &Clusters::default(),
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
            &Clusters::default(),
            now(),
        );
        assert_eq!(got[0].1, Decision::Kept);
        assert_eq!(
            got[1].1,
            Decision::Duplicate(Box::new(ItemRef {
                source: "b".into(),
                id: "x".into()
            }))
        );
    }

    #[test]
    fn similar_merges_a_cluster_into_its_preferred_version() {
        let mut f = feed();
        f.dedupe = Dedupe::Similar;
        let clusters = Clusters::from_iter([
            (item_key("a", "y"), "k".to_string()),
            (item_key("b", "x"), "k".to_string()),
        ]);
        let items = || {
            vec![
                item("b", "x", "Same, edited", None, 30),
                item("a", "y", "Same", None, 29),
                item("a", "z", "Other", None, 28),
            ]
        };
        let got = decide(&f, items(), &Priorities::new(), &clusters, now());
        let ds: Vec<String> = got.iter().map(|(_, d)| d.to_string()).collect();
        assert_eq!(ds, ["merged: same story as a/y", "kept", "kept"]);
        let got = decide(
            &f,
            items(),
            &Priorities::from([("b".to_string(), 1)]),
            &clusters,
            now(),
        );
        assert_eq!(got[0].1, Decision::Kept);
        assert_eq!(got[1].1.to_string(), "merged: same story as b/x");
        // "exact" ignores clusters.
        f.dedupe = Dedupe::Exact;
        let got = decide(&f, items(), &Priorities::new(), &clusters, now());
        assert!(got.iter().all(|(_, d)| *d == Decision::Kept));
    }
}
