//! Near-duplicate stories across sources: `Item → Signature` (MinHash) and
//! `members → cluster keys` (LSH banding). Pure; the pipeline persists what comes out.
//!
//! Text: title, lead and body (tags stripped, entities decoded), Unicode words, lower-cased with
//! ё folded to е, each word reduced to its Snowball stem in the item's language (a language
//! without a stemmer: its first six letters). Word 3-shingles of at most [`MAX_WORDS`] words are
//! hashed; the signature is the minimum of [`HASHES`] multiply-shift hashes over them, so the
//! share of equal positions of two signatures estimates the Jaccard similarity of their shingle
//! sets.
//!
//! Clustering: signatures are cut into bands of [`ROWS`] values; items sharing a band, or the
//! same canonical link or URL/tag guid, are candidates; a candidate within the time window whose
//! estimated similarity reaches the threshold is a match; items of one source never match each
//! other (the issue is the same story across outlets). Items keep the cluster key they were
//! given once; a new item takes the key of its best match, else its own, so a cluster's key is
//! its first member's id and never changes as members join.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, Duration, Utc};
use unicode_segmentation::UnicodeSegmentation;
use xxhash_rust::xxh3::xxh3_64;

use crate::model::Item;

/// Estimated Jaccard similarity of word 3-shingles from which two items are one story
/// (`similar_threshold`): the labelled pairs (tests/fixtures/dedupe/pairs.json) put same stories at
/// 0.24 and above and different stories on one topic at 0.12 and below.
pub const DEFAULT_THRESHOLD: f64 = 0.2;

/// Values in a signature.
pub const HASHES: usize = 128;
/// Values per LSH band: with 64 bands of 2, a pair at similarity 0.25 is a candidate with
/// probability 0.98, at 0.3 with 0.998.
pub const ROWS: usize = 2;
const BANDS: usize = HASHES / ROWS;
/// Words per shingle.
const SHINGLE: usize = 3;
/// Words of an item read (a hostile item cannot make signing or storing it expensive).
pub const MAX_WORDS: usize = 2000;
/// Bytes of an item's text read before words are split.
const MAX_TEXT: usize = 64 * 1024;
/// Distinct clusters remembered per band value: a band value hundreds of unrelated items share
/// (boilerplate) stops adding candidates, so the cost stays linear.
const BUCKET_CAP: u32 = 32;

/// Values in the signature of an item's head (title and lead).
pub const HEAD_HASHES: usize = 32;
/// Words of the head: the title and the start of the lead.
const HEAD_WORDS: usize = 40;
/// Two items whose whole texts are alike by less than this many times the threshold must
/// also start alike (head similarity at least [`HEAD_THRESHOLD`]): a moderate overlap is as
/// often a shared background paragraph under two different stories as one story retold.
const SURE_FACTOR: f64 = 1.5;
const HEAD_THRESHOLD: f64 = 0.15;

/// An item's MinHash signatures: of its whole text, and of its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub full: [u32; HASHES],
    pub head: [u32; HEAD_HASHES],
}

fn agreement(a: &[u32], b: &[u32]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

impl Signature {
    /// The stored form: the values (whole text, then head) as little-endian bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.full
            .iter()
            .chain(self.head.iter())
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    /// The stored form read back; `None` when it is not one (then it is computed again).
    pub fn from_bytes(b: &[u8]) -> Option<Signature> {
        if b.len() != (HASHES + HEAD_HASHES) * 4 {
            return None;
        }
        let mut v = b
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let mut full = [0u32; HASHES];
        let mut head = [0u32; HEAD_HASHES];
        for x in full.iter_mut().chain(head.iter_mut()) {
            *x = v.next()?;
        }
        Some(Signature { full, head })
    }

    /// Estimated Jaccard similarity of the two items' shingle sets, 0 to 1.
    pub fn similarity(&self, other: &Signature) -> f64 {
        agreement(&self.full, &other.full)
    }

    /// Estimated Jaccard similarity of the shingles of the two items' heads.
    pub fn head_similarity(&self, other: &Signature) -> f64 {
        agreement(&self.head, &other.head)
    }

    /// Whether the two items are one story at `threshold`: their texts are alike by at least
    /// `threshold`, and, unless by far more, they start alike too. Returns the similarity.
    pub fn matches(&self, other: &Signature, threshold: f64) -> Option<f64> {
        let s = self.similarity(other);
        (s >= threshold
            && (s >= threshold * SURE_FACTOR || self.head_similarity(other) >= HEAD_THRESHOLD))
            .then_some(s)
    }
}

const fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Multipliers (odd) and offsets of the signature's hash functions; fixed, since signatures
/// are stored.
const PARAMS: [(u64, u64); HASHES] = {
    let mut p = [(0u64, 0u64); HASHES];
    let mut i = 0;
    while i < HASHES {
        p[i] = (
            splitmix(0x6665_6564_6c6f_6f6d ^ (2 * i as u64)) | 1,
            splitmix(0x6c6f_6f6d_6665_6564 ^ (2 * i as u64 + 1)),
        );
        i += 1;
    }
    p
};

/// The text an item is compared by: title, lead and body as plain text, at most `MAX_TEXT`
/// bytes.
fn text_of(item: &Item) -> String {
    let mut s = String::with_capacity(1024);
    s.push_str(&item.title);
    s.push('\n');
    s.push_str(item.summary.as_deref().unwrap_or(""));
    s.push('\n');
    let mut in_tag = false;
    let mut body = String::new();
    for c in item.content_html.as_deref().unwrap_or("").chars() {
        if s.len() + body.len() >= MAX_TEXT {
            break;
        }
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                body.push(' ');
            }
            _ if !in_tag => body.push(c),
            _ => {}
        }
    }
    s.push_str(&html_escape::decode_html_entities(&body));
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Hashes of the item's words in their folded, stemmed form, at most [`MAX_WORDS`].
fn word_hashes(item: &Item) -> Vec<u64> {
    let text = text_of(item);
    let stemmer = crate::select::stemmer_for(item.language.as_deref());
    let mut out = Vec::new();
    let mut folded = String::new();
    for w in text.unicode_words().take(MAX_WORDS) {
        folded.clear();
        for c in w.chars().flat_map(char::to_lowercase) {
            folded.push(if c == 'ё' { 'е' } else { c });
        }
        let h = match &stemmer {
            Some(st) => xxh3_64(st.stem(&folded).as_bytes()),
            None => {
                let end = folded
                    .char_indices()
                    .nth(6)
                    .map_or(folded.len(), |(i, _)| i);
                xxh3_64(&folded.as_bytes()[..end])
            }
        };
        out.push(h);
    }
    out
}

/// MinHash of the word 3-shingles of `words` with the first `sig.len()` hash functions.
fn minhash(words: &[u64], sig: &mut [u32]) {
    sig.fill(u32::MAX);
    let mut add = |shingle: u64| {
        let x = splitmix(shingle);
        for (v, (a, b)) in sig.iter_mut().zip(PARAMS.iter()) {
            let h = (a.wrapping_mul(x).wrapping_add(*b) >> 32) as u32;
            *v = (*v).min(h);
        }
    };
    if words.len() < SHINGLE {
        add(words.iter().fold(0, |acc, w| acc.rotate_left(21) ^ w));
    } else {
        for w in words.windows(SHINGLE) {
            add(w[0] ^ w[1].rotate_left(21) ^ w[2].rotate_left(42));
        }
    }
}

/// The item's signature; `None` when it has no words.
pub fn signature(item: &Item) -> Option<Signature> {
    let words = word_hashes(item);
    if words.is_empty() {
        return None;
    }
    let mut sig = Signature {
        full: [0; HASHES],
        head: [0; HEAD_HASHES],
    };
    minhash(&words, &mut sig.full);
    minhash(&words[..words.len().min(HEAD_WORDS)], &mut sig.head);
    Some(sig)
}

/// Whether two items are the same story at `threshold` (what [`assign`] decides for a pair
/// within the window, by text alone).
pub fn same_story(a: &Item, b: &Item, threshold: f64) -> bool {
    match (signature(a), signature(b)) {
        (Some(x), Some(y)) => x.matches(&y, threshold).is_some(),
        _ => false,
    }
}

/// Keys that make two items of different sources the same story whatever their text: the
/// canonical link, and the guid when it is a URL or tag URI (not a source-local counter).
pub fn exact_keys(item: &Item) -> [Option<u64>; 2] {
    let link = item
        .link
        .as_deref()
        .map(|l| xxh3_64(format!("link:{l}").as_bytes()));
    let id = &item.id;
    let guid = (id.contains("://") || id.starts_with("tag:"))
        .then(|| xxh3_64(format!("id:{id}").as_bytes()));
    [link, guid]
}

/// One item to cluster.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    /// The item's own published id; the key of the cluster it starts, if it starts one.
    pub key: &'a str,
    /// Its source: items of one source are never matched with each other (a source's
    /// templated items, such as daily reports, are not one story).
    pub source: &'a str,
    /// When it was dated (sort date).
    pub date: DateTime<Utc>,
    /// When it was first seen: new items join clusters in this order.
    pub arrival: DateTime<Utc>,
    pub signature: Option<&'a Signature>,
    pub exact: [Option<u64>; 2],
    /// The cluster key it was given before; kept.
    pub cluster: Option<&'a str>,
}

/// A band value or exact key is already a hash: hash it no further.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

const NONE: u32 = u32::MAX;

/// Band values and exact keys → the members filed under them (a linked list in an arena).
struct Index {
    /// value → (first entry, entries)
    heads: HashMap<u64, (u32, u32), BuildHasherDefault<Identity>>,
    /// (member, next entry)
    arena: Vec<(u32, u32)>,
}

impl Index {
    fn with_capacity(n: usize) -> Index {
        Index {
            heads: HashMap::with_capacity_and_hasher(n * (BANDS + 2), Default::default()),
            arena: Vec::with_capacity(n * (BANDS + 2)),
        }
    }

    fn entries(&self, key: u64) -> impl Iterator<Item = u32> + '_ {
        let mut at = self.heads.get(&key).map_or(NONE, |h| h.0);
        std::iter::from_fn(move || {
            if at == NONE {
                return None;
            }
            let (m, next) = self.arena[at as usize];
            at = next;
            Some(m)
        })
    }

    /// Files `member` (of cluster `cluster`) under `key`, unless that cluster is there already
    /// or the list is full.
    fn file(&mut self, key: u64, member: u32, cluster: u32, cluster_of: &[u32]) {
        let at = self.arena.len() as u32;
        match self.heads.get_mut(&key) {
            None => {
                self.arena.push((member, NONE));
                self.heads.insert(key, (at, 1));
            }
            Some(head) => {
                if head.1 >= BUCKET_CAP {
                    return;
                }
                let mut e = head.0;
                while e != NONE {
                    let (m, next) = self.arena[e as usize];
                    if cluster_of[m as usize] == cluster {
                        return;
                    }
                    e = next;
                }
                self.arena.push((member, head.0));
                *head = (at, head.1 + 1);
            }
        }
    }
}

fn band_keys(sig: Option<&Signature>) -> impl Iterator<Item = u64> + '_ {
    sig.into_iter().flat_map(|s| {
        s.full.chunks_exact(ROWS).enumerate().map(|(b, vals)| {
            let mut h = b as u64;
            for v in vals {
                h = h.rotate_left(32) ^ u64::from(*v);
            }
            splitmix(h)
        })
    })
}

fn exact_index_keys(exact: &[Option<u64>; 2]) -> impl Iterator<Item = u64> + '_ {
    exact
        .iter()
        .flatten()
        .map(|k| splitmix(k ^ 0x6578_6163_745f_6b65))
}

/// Gives every member its cluster key: its old one when it has one, else the key of the most
/// similar earlier member of another source (at least `threshold`, dated within `window` of
/// it, or sharing an exact key), else its own. Linear in the members (bounded candidate lists).
pub fn assign<'a>(members: &[Member<'a>], threshold: f64, window: Duration) -> Vec<&'a str> {
    let n = members.len();
    let mut keys: Vec<&'a str> = Vec::new();
    let mut by_key: HashMap<&'a str, u32> = HashMap::new();
    let mut cluster_of = vec![NONE; n];
    let mut index = Index::with_capacity(n);
    let mut intern = |k: &'a str, keys: &mut Vec<&'a str>| -> u32 {
        *by_key.entry(k).or_insert_with(|| {
            keys.push(k);
            keys.len() as u32 - 1
        })
    };
    let file = |index: &mut Index, m: usize, cluster_of: &[u32]| {
        let c = cluster_of[m];
        for k in band_keys(members[m].signature).chain(exact_index_keys(&members[m].exact)) {
            index.file(k, m as u32, c, cluster_of);
        }
    };
    // Members with a cluster first: new ones may join them.
    for (m, member) in members.iter().enumerate() {
        if let Some(k) = member.cluster {
            cluster_of[m] = intern(k, &mut keys);
            file(&mut index, m, &cluster_of);
        }
    }
    let mut fresh: Vec<usize> = (0..n).filter(|m| members[*m].cluster.is_none()).collect();
    fresh.sort_by(|a, b| {
        let (x, y) = (&members[*a], &members[*b]);
        x.arrival
            .cmp(&y.arrival)
            .then(x.date.cmp(&y.date))
            .then(x.key.cmp(y.key))
    });
    // Which member a candidate was last checked for, so each pair is checked once.
    let mut checked = vec![NONE; n];
    for m in fresh {
        let me = &members[m];
        // (similarity, candidate); an exact key counts as more than any similarity.
        let mut best: Option<(f64, u32)> = None;
        let consider = |c: u32, score: f64, best: &mut Option<(f64, u32)>| {
            if best.is_none_or(|(s, b)| score > s || (score == s && c < b)) {
                *best = Some((score, c));
            }
        };
        for k in exact_index_keys(&me.exact) {
            for c in index.entries(k) {
                checked[c as usize] = m as u32;
                if members[c as usize].source != me.source {
                    consider(c, 2.0, &mut best);
                }
            }
        }
        if let Some(sig) = me.signature {
            for k in band_keys(Some(sig)) {
                for c in index.entries(k) {
                    if checked[c as usize] == m as u32 {
                        continue;
                    }
                    checked[c as usize] = m as u32;
                    let other = &members[c as usize];
                    if other.source == me.source || (other.date - me.date).abs() > window {
                        continue;
                    }
                    let Some(theirs) = other.signature else {
                        continue;
                    };
                    if let Some(s) = sig.matches(theirs, threshold) {
                        consider(c, s, &mut best);
                    }
                }
            }
        }
        cluster_of[m] = match best {
            Some((_, c)) => cluster_of[c as usize],
            None => intern(me.key, &mut keys),
        };
        file(&mut index, m, &cluster_of);
    }
    cluster_of.iter().map(|c| keys[*c as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, title: &str, body: &str) -> Item {
        Item {
            id: id.into(),
            title: title.into(),
            link: None,
            published: None,
            updated: None,
            authors: vec![],
            summary: None,
            content_html: Some(format!("<p>{body}</p>")),
            categories: vec![],
            language: Some("ru".into()),
            enclosures: vec![],
            image: None,
        }
    }

    const BODY: &str = "Президент Туркменистана Сердар Бердымухамедов прибыл в Астану для участия в \
        саммите «Центральная Азия – Италия». В аэропорту его встретили премьер-министр Казахстана \
        и министр иностранных дел. Саммит пройдёт в пятницу во Дворце независимости.";

    #[test]
    fn signatures_round_trip_and_fold() {
        let a = signature(&item("1", "Визит", BODY)).unwrap();
        assert_eq!(Signature::from_bytes(&a.to_bytes()), Some(a.clone()));
        assert_eq!(Signature::from_bytes(&[1, 2, 3]), None);
        let b = signature(&item("2", "ВИЗИТ", &BODY.replace('ё', "е"))).unwrap();
        assert_eq!(a.similarity(&b), 1.0, "case and ё do not matter");
        assert!(signature(&item("3", "", "")).is_none());
    }

    #[test]
    fn assign_keeps_keys_and_joins_the_earliest() {
        let s1 = signature(&item("1", "Визит", BODY)).unwrap();
        let s2 = signature(&item("2", "Визит в Астану", &format!("АСТАНА. {BODY}"))).unwrap();
        let s3 = signature(&item(
            "3",
            "Погода",
            "Завтра в Астане снег и ветер до 20 м/с",
        ))
        .unwrap();
        let t = |h: i64| DateTime::from_timestamp(1_750_000_000 + h * 3600, 0).unwrap();
        let m = |key, sig, h, cluster| Member {
            key,
            source: key,
            date: t(h),
            arrival: t(h),
            signature: Some(sig),
            exact: [None, None],
            cluster,
        };
        let w = Duration::hours(72);
        let got = assign(
            &[
                m("b", &s2, 1, None),
                m("a", &s1, 0, None),
                m("c", &s3, 2, None),
            ],
            0.3,
            w,
        );
        assert_eq!(got, ["a", "a", "c"]);
        // An old key stays even when a newer member would sort first.
        let got = assign(&[m("b", &s2, 1, Some("b")), m("a", &s1, 0, None)], 0.3, w);
        assert_eq!(got, ["b", "b"]);
        // Outside the window: no match.
        let got = assign(&[m("a", &s1, 0, None), m("b", &s2, 100, None)], 0.3, w);
        assert_eq!(got, ["a", "b"]);
        // An exact key matches whatever the text.
        let mut x = m("x", &s3, 0, None);
        let mut y = m("y", &s1, 500, None);
        x.exact = [Some(7), None];
        y.exact = [Some(7), None];
        assert_eq!(assign(&[x.clone(), y.clone()], 0.3, w), ["x", "x"]);
        // Never within one source.
        y.source = "x";
        assert_eq!(assign(&[x, y], 0.3, w), ["x", "y"]);
        let (mut a, b) = (m("a", &s1, 0, None), m("b", &s2, 1, None));
        a.source = "b";
        assert_eq!(assign(&[a, b], 0.3, w), ["a", "b"]);
    }
}
