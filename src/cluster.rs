//! Near-duplicate stories across sources: `Item → Signature` (MinHash) and
//! `members → cluster keys` (LSH banding). Pure; the pipeline persists what comes out.
//!
//! Text: title, lead and body (tags stripped, entities decoded), Unicode words, lower-cased with
//! ё folded to е, each word reduced to its Snowball stem in the item's language (a language
//! without a stemmer: its first six letters). Word 3-shingles of at most [`MAX_WORDS`] words are
//! hashed once each; the signature is a one-permutation MinHash of them into [`HASHES`] bins
//! (each bin the least hash among those its top bits send there, its low 16 bits kept; an empty
//! bin densified from a filled one), so the share of equal positions of two signatures estimates
//! the Jaccard similarity of their shingle sets; [`HEAD_HASHES`] more bins do the same for the
//! head (title and start of the lead). Two items match when their texts are alike by the
//! threshold and, unless by far more, their heads are alike too ([`Signature::matches`]).
//!
//! Clustering: signatures are cut into bands of [`ROWS`] values; items sharing a band, or the
//! same canonical link or URL/tag guid, are candidates; a candidate within the time window whose
//! estimated similarity reaches the threshold is a match; items of one source never match each
//! other (the issue is the same story across outlets). Items keep the cluster key they were
//! given once; a new item takes the key of its best match, else its own, so a cluster's key is
//! its first member's id and never changes as members join. [`Candidates`] finds, without holding
//! their signatures, the members with a key that a new member can be compared with.

pub mod bands;
mod words;

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::model::Item;

/// Estimated Jaccard similarity of word 3-shingles from which two items are one story
/// (`similar_threshold`): the labelled pairs (tests/fixtures/dedupe/pairs.json) put same stories at
/// 0.24 and above and different stories on one topic at 0.12 and below.
pub const DEFAULT_THRESHOLD: f64 = 0.2;

/// Values (bins) in a signature; a power of two.
pub const HASHES: usize = 128;
/// Values per LSH band: with 64 bands of 2, a pair at similarity 0.25 is a candidate with
/// probability 0.98, at 0.3 with 0.998.
pub const ROWS: usize = 2;
pub const BANDS: usize = HASHES / ROWS;
/// Bands [`assign`] holds the values of at once.
const BAND_GROUP: usize = 8;
const _: () = assert!(BANDS.is_multiple_of(BAND_GROUP));
/// Words per shingle.
const SHINGLE: usize = 3;
/// Words of an item read: a hostile item cannot make signing it expensive, and a long story
/// is known by its first 600 words (signing is a large part of a cold refresh: stemming and
/// word segmentation cost about as much per word as everything else).
pub const MAX_WORDS: usize = 600;
/// Bytes of an item's text read before words are split (600 words of Cyrillic fit).
const MAX_TEXT: usize = 16 * 1024;
/// Earlier members a member is compared with per band value it shares with them: a value
/// hundreds of unrelated items share (boilerplate) adds no more, so the cost stays linear.
pub const BUCKET_CAP: usize = 8;

/// Values (bins) in the signature of an item's head (title and lead); a power of two.
pub const HEAD_HASHES: usize = 32;
/// Words of the head: the title and the start of the lead.
const HEAD_WORDS: usize = 40;
/// Two items whose whole texts are alike by less than this many times the threshold must
/// also start alike (head similarity at least [`HEAD_THRESHOLD`]): a moderate overlap is as
/// often a shared background paragraph under two different stories as one story retold.
const SURE_FACTOR: f64 = 1.5;
const HEAD_THRESHOLD: f64 = 0.15;

/// An item's MinHash signatures: of its whole text, and of its head. Each value is the low 16
/// bits of a minimum (b-bit MinHash): two different minima agree by chance once in 65,536, which
/// adds 0.00002 to an estimated similarity, and a signature is half the size (it is read for
/// every item in the window, and stored for every item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub full: [u16; HASHES],
    pub head: [u16; HEAD_HASHES],
}

fn agreement(a: &[u16], b: &[u16]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// The stored form's first byte: the formula that made the values. 2: one-permutation MinHash
/// ([`one_permutation`]). The forms before it had no such byte (320 or 640 bytes: the values of
/// 160 multiply-shift hashes), and values of two formulas cannot be compared.
const FORMAT: u8 = 2;
/// Bytes of a stored signature: the format byte, then the 16-bit values.
const STORED: usize = 1 + (HASHES + HEAD_HASHES) * 2;

impl Signature {
    /// The stored form: [`FORMAT`], then the values (whole text, then head) as little-endian
    /// bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        std::iter::once(FORMAT)
            .chain(
                self.full
                    .iter()
                    .chain(self.head.iter())
                    .flat_map(|v| v.to_le_bytes()),
            )
            .collect()
    }

    /// The stored form read back; `None` when it is not this formula's (a signature of an
    /// earlier one, which is then made again from the item).
    pub fn from_bytes(b: &[u8]) -> Option<Signature> {
        if b.len() != STORED || b[0] != FORMAT {
            return None;
        }
        // Indexing with a constant width, so reading it is a copy (an update reads every old
        // member's signature: 578,000 at N = 10,000).
        let value = |n: usize| u16::from_le_bytes([b[1 + n * 2], b[2 + n * 2]]);
        Some(Signature {
            full: std::array::from_fn(value),
            head: std::array::from_fn(|n| value(HASHES + n)),
        })
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

/// The text an item is compared by: title, lead and body as plain text, at most `MAX_TEXT`
/// bytes.
fn text_of(item: &Item) -> String {
    let mut s = String::with_capacity(1024);
    s.push_str(&item.title);
    s.push('\n');
    s.push_str(item.summary.as_deref().unwrap_or(""));
    s.push('\n');
    let body = body_text(
        item.content_html.as_deref().unwrap_or(""),
        MAX_TEXT - s.len().min(MAX_TEXT),
    );
    s.push_str(&html_escape::decode_html_entities(&body));
    if s.len() > MAX_TEXT {
        s.truncate(s.floor_char_boundary(MAX_TEXT));
    }
    s
}

/// The text of `html` with each tag read as a space (entities left as they are), cut after
/// the first character that reaches `budget` bytes (`usize::MAX`: never). Runs between tags are
/// copied whole.
pub(crate) fn body_text(html: &str, budget: usize) -> String {
    let mut body = String::new();
    let mut rest = html;
    while body.len() < budget && !rest.is_empty() {
        let (run, tag) = match rest.find('<') {
            Some(at) => (&rest[..at], Some(at)),
            None => (rest, None),
        };
        let room = budget - body.len();
        if run.len() >= room {
            body.push_str(&run[..run.ceil_char_boundary(room)]);
            break;
        }
        body.push_str(run);
        let Some(at) = tag else {
            break;
        };
        // A tag ends at its `>`; one never closed runs to the end.
        match rest[at..].find('>') {
            Some(end) => {
                body.push(' ');
                rest = &rest[at + end + 1..];
            }
            None => break,
        }
    }
    body
}

/// Stems already computed while signing a batch of items: Snowball stemming is the largest
/// cost of signing, and news repeats its words. Keyed by the hash of language and folded word
/// (already a hash, so the map's own hashing is foldhash's quick one); emptied when it reaches
/// a million entries.
#[derive(Default)]
struct StemCache(HashMap<u64, u64, foldhash::fast::RandomState>);

/// Hashes of the item's words in their folded, stemmed form, at most [`MAX_WORDS`].
fn word_hashes(item: &Item, cache: &mut StemCache) -> Vec<u64> {
    let text = text_of(item);
    let stemmer = crate::select::stemmer_for(item.language.as_deref());
    let seed = xxh3_64(item.language.as_deref().unwrap_or("").as_bytes());
    if cache.0.len() > 1_000_000 {
        cache.0.clear();
    }
    let mut out = Vec::new();
    let mut folded = String::new();
    for w in words::words(&text).take(MAX_WORDS) {
        folded.clear();
        for c in w.chars() {
            crate::normalize::fold::push_lowered(&mut folded, c);
        }
        let key = xxhash_rust::xxh3::xxh3_64_with_seed(folded.as_bytes(), seed);
        if let Some(h) = cache.0.get(&key) {
            out.push(*h);
            continue;
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
        cache.0.insert(key, h);
        out.push(h);
    }
    out
}

/// The hashes of the word 3-shingles of `words` (of all of them as one when they are fewer).
fn shingle_hashes(words: &[u64]) -> Vec<u64> {
    if words.len() < SHINGLE {
        vec![splitmix(
            words.iter().fold(0, |acc, w| acc.rotate_left(21) ^ w),
        )]
    } else {
        words
            .windows(SHINGLE)
            .map(|w| splitmix(w[0] ^ w[1].rotate_left(21) ^ w[2].rotate_left(42)))
            .collect()
    }
}

/// One-permutation MinHash of the hashed shingles `xs` (at least one) into `K` bins: a
/// shingle's hash picks its bin by its top bits, and each bin keeps the least of the rest of the
/// hashes that fall in it. A bin no shingle fell in takes the value of the first filled bin
/// along a probe sequence fixed by the bin alone (optimal densification), so two sets agree at
/// a position with probability their Jaccard similarity, as with `K` independent hashes.
fn one_permutation<const K: usize>(xs: &[u64], sig: &mut [u16; K]) {
    const { assert!(K.is_power_of_two() && K > 1) };
    let shift = 64 - K.trailing_zeros();
    let mut min = [u64::MAX; K];
    for x in xs {
        let bin = (x >> shift) as usize;
        let rest = x & (u64::MAX >> (64 - shift));
        min[bin] = min[bin].min(rest);
    }
    for (i, out) in sig.iter_mut().enumerate() {
        let mut v = min[i];
        if v == u64::MAX {
            v = densified(&min, i);
        }
        *out = v as u16;
    }
}

/// The value an empty bin `i` of `min` takes: that of the first filled bin along `i`'s probe
/// sequence (at most 64 draws, then the next filled bin after `i`, so it ends however few are
/// filled).
fn densified<const K: usize>(min: &[u64; K], i: usize) -> u64 {
    let mut state = splitmix(0x6f70_685f_6465_6e73 ^ i as u64);
    for _ in 0..64 {
        let j = (state >> (64 - K.trailing_zeros())) as usize;
        if min[j] != u64::MAX {
            return min[j];
        }
        state = splitmix(state);
    }
    (1..K)
        .map(|d| min[(i + d) % K])
        .find(|v| *v != u64::MAX)
        .unwrap_or(u64::MAX)
}

/// The item's signature; `None` when it has no words.
pub fn signature(item: &Item) -> Option<Signature> {
    signature_with(item, &mut StemCache::default())
}

/// Stem caches lent to [`sign_all`]: one per batch being signed, given back afterwards, so
/// there are never more than batches signed at once (one per core).
static STEM_CACHES: std::sync::Mutex<Vec<StemCache>> = std::sync::Mutex::new(Vec::new());

/// Each item's signature, as [`signature`] gives it, reusing the stems of items signed before
/// (a cache is borrowed for the call; CPU work, for the blocking pool).
pub fn sign_all<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<Option<Signature>> {
    let taken = STEM_CACHES.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut cache = taken.unwrap_or_default();
    let out = items
        .into_iter()
        .map(|it| signature_with(it, &mut cache))
        .collect();
    STEM_CACHES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(cache);
    out
}

/// [`signature`], reusing the stems of earlier items.
fn signature_with(item: &Item, cache: &mut StemCache) -> Option<Signature> {
    let words = word_hashes(item, cache);
    if words.is_empty() {
        return None;
    }
    Some(sign_words(&words))
}

/// The signature of an item whose words hash to `words` (at least one).
fn sign_words(words: &[u64]) -> Signature {
    let mut sig = Signature {
        full: [0; HASHES],
        head: [0; HEAD_HASHES],
    };
    let xs = shingle_hashes(words);
    one_permutation::<HASHES>(&xs, &mut sig.full);
    // The head's shingles are the first of the whole text's: those of its first
    // `HEAD_WORDS` words (or, under three words, the one they all make).
    one_permutation::<HEAD_HASHES>(
        &xs[..xs.len().min(HEAD_WORDS - (SHINGLE - 1))],
        &mut sig.head,
    );
    sig
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
    exact_keys_of(item.link.as_deref().map(crate::select::link_key), &item.id)
}

/// [`exact_keys`] of an item's link key ([`crate::select::link_key`]) and id.
pub fn exact_keys_of(link: Option<crate::select::LinkKey>, id: &str) -> [Option<u64>; 2] {
    use crate::select::{ID_KEY, is_global_id};
    let link = link.map(|k| k[0]);
    let guid = is_global_id(id).then(|| xxh3_64_with_seed(id.as_bytes(), ID_KEY));
    [link, guid]
}

/// One item to cluster. It holds no strings: at a first run at N = 10,000 sources there are
/// 600,000 members, and their keys as strings (with the tables naming clusters by them) were
/// a sixth of the run's peak memory.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    /// Its source, as a number: items of one source are never matched with each other (a
    /// source's templated items, such as daily reports, are not one story).
    pub source: u32,
    /// When it was dated (sort date).
    pub date: DateTime<Utc>,
    /// When it was first seen: new items join clusters in this order.
    pub arrival: DateTime<Utc>,
    pub signature: Option<&'a Signature>,
    pub exact: [Option<u64>; 2],
    /// Whether it has a cluster key already (given before; kept).
    pub keyed: bool,
}

const NONE: u32 = u32::MAX;
/// The high half of a band key holds the band value's hash, the low half a position.
const HIGH: u64 = 0xFFFF_FFFF_0000_0000;

/// The hash of band `b` of a signature.
fn band_key(sig: &Signature, b: usize) -> u64 {
    let mut h = b as u64;
    for v in &sig.full[b * ROWS..(b + 1) * ROWS] {
        h = h.rotate_left(32) ^ u64::from(*v);
    }
    splitmix(h)
}

fn exact_key(k: u64) -> u64 {
    splitmix(k ^ 0x6578_6163_745f_6b65)
}

/// Groups band keys by value: a counting sort on the top 16 bits (cache-friendly, linear),
/// then a sort of each small bucket.
struct Grouper {
    counts: Vec<u32>,
    sorted: Vec<u64>,
}

impl Grouper {
    /// A grouper of up to `keys` keys at once (more make it grow).
    fn new(keys: usize) -> Grouper {
        Grouper {
            counts: vec![0; (1 << 16) + 1],
            sorted: Vec::with_capacity(keys),
        }
    }

    /// `keys` are (value hash in the high half, position in the low half). Members with one
    /// value form a run in position order; each is paired with the `BUCKET_CAP` positions
    /// before it in its run, as (later position << 32 | earlier position).
    /// Pairs whose later position is below `old` are left out.
    fn pair_runs(&mut self, keys: &[u64], pairs: &mut Vec<u64>, old: u64) {
        let top = |k: u64| (k >> 48) as usize;
        self.counts.fill(0);
        for k in keys {
            self.counts[top(*k) + 1] += 1;
        }
        for i in 1..self.counts.len() {
            self.counts[i] += self.counts[i - 1];
        }
        self.sorted.clear();
        self.sorted.resize(keys.len(), 0);
        for k in keys {
            let at = &mut self.counts[top(*k)];
            self.sorted[*at as usize] = *k;
            *at += 1;
        }
        // counts[b] is now the end of bucket b.
        let mut start = 0;
        for b in 0..1 << 16 {
            let end = self.counts[b] as usize;
            if end - start > 1 {
                let bucket = &mut self.sorted[start..end];
                bucket.sort_unstable();
                pair_sorted(bucket, pairs, old);
            }
            start = end;
        }
    }
}

/// [`Grouper::pair_runs`] on sorted keys.
fn pair_sorted(keys: &[u64], pairs: &mut Vec<u64>, old: u64) {
    let mut start = 0;
    while start < keys.len() {
        let value = keys[start] & HIGH;
        let mut end = start + 1;
        while end < keys.len() && keys[end] & HIGH == value {
            end += 1;
        }
        for j in start + 1..end {
            if keys[j] & !HIGH < old {
                continue;
            }
            let later = keys[j] << 32;
            for k in &keys[j.saturating_sub(BUCKET_CAP).max(start)..j] {
                pairs.push(later | (k & !HIGH));
            }
        }
        start = end;
    }
}

/// Gives every member its cluster, as the member whose key names it: itself when it has a key
/// (it keeps it), else the cluster of the most similar earlier member of another source (at
/// least `threshold`, dated within `window` of it, or sharing an exact key), else itself (its
/// own key). Members with a key come first, then new ones by arrival, date and key, the order
/// of keys being `cmp_keys` (of two members' places in `members`).
///
/// Banding is done by sorting, band by band (a counting sort), so memory is touched in order:
/// the members sharing a band value (or an exact key) form a run, and each is paired with the
/// [`BUCKET_CAP`] members before it in its run; a value hundreds of unrelated members share
/// (boilerplate, a flood) adds no more than that per member, so cost stays linear.
///
/// The same in steps, for members whose signatures are not all held at once: [`order`],
/// [`Banding`] fed [`BandValues`], then [`assign_pairs`].
pub fn assign(
    members: &[Member<'_>],
    threshold: f64,
    window: Duration,
    cmp_keys: impl Fn(usize, usize) -> std::cmp::Ordering,
) -> Vec<u32> {
    let order = order(members, cmp_keys);
    let mut banding = Banding::new(members.len(), keyed(members, &order));
    // [`BAND_GROUP`] bands at a time: one pass over the signatures per group (they are large
    // and in no useful order), then each band read in order. All 64 bands at once were a
    // quarter of a first run's peak memory.
    for group in (0..BANDS).step_by(BAND_GROUP) {
        let mut values = BandValues::new(group..group + BAND_GROUP, members.len());
        for (pos, m) in order.iter().enumerate() {
            if let Some(sig) = members[*m].signature {
                values.add(pos, sig);
            }
        }
        banding.add(&values);
    }
    let pairs = banding.finish(members, &order);
    assign_pairs(
        members,
        &order,
        &pairs,
        |m| members[m].signature,
        threshold,
        window,
    )
}

/// How many of `members` in `order` ([`order`]) have a key: they come first.
pub fn keyed(members: &[Member<'_>], order: &[usize]) -> usize {
    order.iter().take_while(|m| members[**m].keyed).count()
}

/// The order [`assign`] takes `members` in, as their places: those with a key first, in their
/// order, then new ones by arrival, date and key (`cmp_keys`, of two places). A member's
/// position is its place in this order.
pub fn order(
    members: &[Member<'_>],
    cmp_keys: impl Fn(usize, usize) -> std::cmp::Ordering,
) -> Vec<usize> {
    let n = members.len();
    assert!(n < NONE as usize, "fewer than 2^32 members");
    let mut order: Vec<usize> = Vec::with_capacity(n);
    order.extend((0..n).filter(|m| members[*m].keyed));
    let old = order.len();
    order.extend((0..n).filter(|m| !members[*m].keyed));
    order[old..].sort_by(|a, b| {
        let (x, y) = (&members[*a], &members[*b]);
        x.arrival
            .cmp(&y.arrival)
            .then(x.date.cmp(&y.date))
            .then_with(|| cmp_keys(*a, *b))
    });
    order
}

/// The values of some of the bands of the members' signatures, by band, then position.
pub struct BandValues {
    bands: std::ops::Range<usize>,
    n: usize,
    values: Vec<u32>,
    /// Whether the member at a position has a signature (the others are in no band).
    signed: Vec<bool>,
}

impl BandValues {
    /// Room for bands `bands` of `n` members' signatures (4 bytes a band and member).
    pub fn new(bands: std::ops::Range<usize>, n: usize) -> BandValues {
        assert!(bands.end <= BANDS, "a signature has {BANDS} bands");
        BandValues {
            values: vec![0; bands.len() * n],
            bands,
            n,
            signed: vec![false; n],
        }
    }

    /// The bands of a signature cut in `parts` equal ranges (`parts` divides their count).
    pub fn parts(parts: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
        assert!(
            parts > 0 && BANDS.is_multiple_of(parts),
            "parts divide {BANDS}"
        );
        (0..BANDS)
            .step_by(BANDS / parts)
            .map(move |b| b..b + BANDS / parts)
    }

    /// Adds the signature of the member at `pos`.
    pub fn add(&mut self, pos: usize, sig: &Signature) {
        self.signed[pos] = true;
        for (g, b) in self.bands.clone().enumerate() {
            self.values[g * self.n + pos] = bands::band_value(sig, b);
        }
    }
}

/// Candidate pairs of positions (later first, each once), found band by band
/// ([`Banding::add`]) and then by exact keys ([`Banding::finish`]).
pub struct Banding {
    n: usize,
    /// Members with a key, the first positions: pairs of two of them are not made, as they
    /// keep their keys ([`Matches::compare`] passes them by). An update compares the old
    /// members that share a band value with a new one, often most of the window: their pairs
    /// among themselves were most of its pairs.
    old: u64,
    pairs: Vec<u64>,
    keys: Vec<u64>,
    grouper: Grouper,
    compact_at: usize,
}

/// What [`Banding`] found: candidate pairs of positions, (later << 32 | earlier), sorted.
pub struct Pairs(Vec<u64>);

impl Pairs {
    /// How many pairs there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs as (later, earlier) positions, by later position.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.later_in(0..usize::MAX)
    }

    /// The pairs whose later position is in `later`, as [`Pairs::iter`] gives them.
    pub fn later_in(
        &self,
        later: std::ops::Range<usize>,
    ) -> impl Iterator<Item = (usize, usize)> + '_ {
        let at = |pos: usize| {
            let pos = pos.min(NONE as usize) as u64;
            self.0.partition_point(|p| (p >> 32) < pos)
        };
        self.0[at(later.start)..at(later.end)]
            .iter()
            .map(|p| ((p >> 32) as usize, (p & !HIGH) as usize))
    }

    /// Whether [`assign_pairs`] asks for the signature of the member at each position: it is
    /// in a pair that only the signatures decide (a new member and an earlier one of another
    /// source, within `window` of each other, sharing no exact key). `members` in `order`, as
    /// given to [`order`].
    pub fn compared(&self, members: &[Member<'_>], order: &[usize], window: Duration) -> Vec<bool> {
        let old = order.iter().take_while(|m| members[**m].keyed).count();
        let mut compared = vec![false; members.len()];
        for p in &self.0[self.0.partition_point(|p| (p >> 32) < old as u64)..] {
            let (later, earlier) = ((p >> 32) as usize, (p & !HIGH) as usize);
            let (me, other) = (&members[order[later]], &members[order[earlier]]);
            if verdict(me, other, window) == Verdict::Signatures {
                compared[later] = true;
                compared[earlier] = true;
            }
        }
        compared
    }
}

/// What comparing a new member with an earlier one takes.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing: they never match (one source, or dated too far apart).
    Never,
    /// Nothing: they share an exact key, which scores above any similarity.
    Exact,
    /// Their signatures.
    Signatures,
}

fn verdict(me: &Member<'_>, other: &Member<'_>, window: Duration) -> Verdict {
    if other.source == me.source {
        Verdict::Never
    } else if me
        .exact
        .iter()
        .flatten()
        .any(|k| other.exact.iter().flatten().any(|o| o == k))
    {
        Verdict::Exact
    } else if (other.date - me.date).abs() > window {
        Verdict::Never
    } else {
        Verdict::Signatures
    }
}

impl Banding {
    /// Banding of `n` members, of which the first `old` positions have a key ([`keyed`]).
    pub fn new(n: usize, old: usize) -> Banding {
        // Members sharing many bands give the same pairs in each: the pairs are compacted
        // whenever a band leaves more than `compact_at`, twice what the last compaction left
        // (at least 2n), so sorting stays linear overall and what is written stays near the
        // distinct pairs (which are about n at a first run). A band, or the exact keys (two a
        // member at most), add at most `BUCKET_CAP` pairs per value: room for that is reserved
        // before each, which at first is never outgrown (a buffer grown by doubling leaves its
        // earlier ones resident under jemalloc until they decay, at the peak of a first run).
        // Room not written to is address space, not memory.
        let compact_at = 2 * n + 1024;
        Banding {
            n,
            old: old as u64,
            pairs: Vec::with_capacity(compact_at + BUCKET_CAP * 2 * n),
            keys: Vec::with_capacity(2 * n),
            grouper: Grouper::new(2 * n),
            compact_at,
        }
    }

    /// Pairs the members by the bands `values` holds.
    pub fn add(&mut self, values: &BandValues) {
        assert_eq!(values.n, self.n, "values of as many members");
        if self.n == 0 {
            return;
        }
        for band in values.values.chunks_exact(self.n) {
            self.keys.clear();
            self.keys.extend(
                band.iter()
                    .zip(&values.signed)
                    .enumerate()
                    .filter(|(_, (_, signed))| **signed)
                    .map(|(pos, (v, _))| u64::from(*v) << 32 | pos as u64),
            );
            self.pairs.reserve(BUCKET_CAP * self.keys.len());
            self.grouper
                .pair_runs(&self.keys, &mut self.pairs, self.old);
            if self.pairs.len() > self.compact_at {
                compact(&mut self.pairs);
                self.compact_at = self.compact_at.max(2 * self.pairs.len());
            }
        }
    }

    /// Pairs the members by their exact keys, and gives back every pair found. `members` in
    /// `order`, as given to [`order`].
    pub fn finish(mut self, members: &[Member<'_>], order: &[usize]) -> Pairs {
        self.keys.clear();
        for (pos, m) in order.iter().enumerate() {
            for k in members[*m].exact.iter().flatten() {
                self.keys.push((exact_key(*k) & HIGH) | pos as u64);
            }
        }
        self.pairs.reserve(BUCKET_CAP * self.keys.len());
        self.grouper
            .pair_runs(&self.keys, &mut self.pairs, self.old);
        compact(&mut self.pairs);
        Pairs(self.pairs)
    }
}

fn compact(pairs: &mut Vec<u64>) {
    pairs.sort_unstable();
    pairs.dedup();
}

/// [`assign`]'s last step: compares each new member with the members it is paired with
/// (`pairs`, by position in `order`) and gives it its cluster. `signature` gives the signature
/// of a member (by place in `members`); it is asked only of members [`Pairs::compared`] names.
pub fn assign_pairs<'s>(
    members: &[Member<'_>],
    order: &[usize],
    pairs: &Pairs,
    signature: impl Fn(usize) -> Option<&'s Signature>,
    threshold: f64,
    window: Duration,
) -> Vec<u32> {
    let mut matches = Matches::new(members, order, threshold, window);
    for (later, earlier) in pairs.iter() {
        matches.compare(members, order, later, earlier, || {
            (signature(order[later]), signature(order[earlier]))
        });
    }
    matches.clusters(order)
}

/// The best earlier match of each new member, found pair by pair in any order (the best is the
/// highest score, then the earliest member: an exact key scores above any similarity), and the
/// clusters handed down from them ([`Matches::clusters`]). A member's best match depends only
/// on its pairs, not on the clusters given before it, so the pairs can be compared a block of
/// signatures at a time.
pub struct Matches {
    /// Members with a key (the first positions): they keep it.
    old: usize,
    /// By position: the best match's score and position (`NONE`: none yet).
    best: Vec<(f64, u32)>,
    threshold: f64,
    window: Duration,
}

impl Matches {
    /// No match yet for `members` in `order` (as given to [`order`]).
    pub fn new(
        members: &[Member<'_>],
        order: &[usize],
        threshold: f64,
        window: Duration,
    ) -> Matches {
        Matches {
            old: keyed(members, order),
            best: vec![(0.0, NONE); order.len()],
            threshold,
            window,
        }
    }

    /// Compares the members at positions `later` and `earlier` (a pair from [`Pairs::iter`]).
    /// `signatures` gives theirs (later's, earlier's), asked only when they decide.
    pub fn compare<'s>(
        &mut self,
        members: &[Member<'_>],
        order: &[usize],
        later: usize,
        earlier: usize,
        signatures: impl FnOnce() -> (Option<&'s Signature>, Option<&'s Signature>),
    ) {
        if later < self.old {
            return;
        }
        let score = match verdict(
            &members[order[later]],
            &members[order[earlier]],
            self.window,
        ) {
            Verdict::Never => None,
            Verdict::Exact => Some(2.0),
            Verdict::Signatures => match signatures() {
                (Some(a), Some(b)) => a.matches(b, self.threshold),
                _ => None,
            },
        };
        let (bs, bc) = &mut self.best[later];
        if let Some(s) = score
            && (*bc == NONE || s > *bs || (s == *bs && (earlier as u32) < *bc))
        {
            (*bs, *bc) = (s, earlier as u32);
        }
    }

    /// [`Matches::compare`] where only the signatures of members from position `held` on are
    /// at hand: a pair whose earlier member is before `held` and that its signatures decide is
    /// put in `waiting`, as (earlier << 32 | later), to be compared when that member's
    /// signature passes ([`Matches::compare_waiting`]). `signatures` is asked only of pairs of
    /// held members.
    #[allow(clippy::too_many_arguments)]
    pub fn compare_or_wait<'s>(
        &mut self,
        members: &[Member<'_>],
        order: &[usize],
        later: usize,
        earlier: usize,
        held: usize,
        signatures: impl FnOnce() -> (Option<&'s Signature>, Option<&'s Signature>),
        waiting: &mut Vec<u64>,
    ) {
        let mut asked = false;
        self.compare(members, order, later, earlier, || {
            if earlier < held {
                asked = true;
                (None, None)
            } else {
                signatures()
            }
        });
        if asked {
            waiting.push((earlier as u64) << 32 | later as u64);
        }
    }

    /// Compares the member at position `earlier`, of signature `sig`, with the later members of
    /// its pairs in `waiting` (sorted), `later_sig` giving theirs.
    pub fn compare_waiting<'s>(
        &mut self,
        members: &[Member<'_>],
        order: &[usize],
        waiting: &[u64],
        earlier: usize,
        sig: Option<&'s Signature>,
        later_sig: impl Fn(usize) -> Option<&'s Signature>,
    ) {
        let from = waiting.partition_point(|p| (p >> 32) < earlier as u64);
        for p in waiting[from..]
            .iter()
            .take_while(|p| (*p >> 32) == earlier as u64)
        {
            let later = (p & 0xFFFF_FFFF) as usize;
            self.compare(members, order, later, earlier, || (later_sig(later), sig));
        }
    }

    /// Each member's cluster, by place in `members`: the member whose key names it (see
    /// [`assign`]).
    pub fn clusters(self, order: &[usize]) -> Vec<u32> {
        let n = order.len();
        // By position: the member (its place in `members`) whose key names the cluster.
        let mut cluster_of = vec![NONE; n];
        for (pos, m) in order.iter().enumerate() {
            cluster_of[pos] = match self.best[pos] {
                (_, c) if pos >= self.old && c != NONE => cluster_of[c as usize],
                _ => *m as u32,
            };
        }
        let mut out = vec![NONE; n];
        for (pos, m) in order.iter().enumerate() {
            out[*m] = cluster_of[pos];
        }
        out
    }
}

/// The old members (those that have a cluster key) that [`assign`] could compare new members
/// with, found without holding the old members' signatures: the new members' band values and
/// exact keys are put in a table, each old member is offered once (its signature read, probed
/// and let go), and for every value a new member has, the [`BUCKET_CAP`] old members `assign`
/// would pair with it are kept: those latest in `assign`'s order.
///
/// `assign` over the kept old members (in their order) and the new ones gives every new member
/// the key it gives it over all members: a new member is paired only with members before it in
/// a run of one value, at most `BUCKET_CAP` of them, and the old members among those are the
/// latest old members of the run, which are kept.
pub struct Candidates {
    /// By band, and last the exact keys: that band's values of the new members (an exact key's
    /// value is its hash's high half, as `assign` groups it). A table per band keeps what one
    /// band's probes touch small (for 8,000 new members some 200 KB), and lets the bands be
    /// shared out among the cores: old members are offered a batch at a time, band by band
    /// ([`Candidates::offer_batch`]). (The tables alone did not make probing faster: of the
    /// 38 million values an update offered on templated text, 9 million reached a table.)
    tables: Vec<Table>,
}

/// One band's values of the new members.
struct Table {
    /// Two bits of one word per value (a blocked Bloom filter): most old members' values miss
    /// here, at the cost of one cached read, and with two bits four times fewer pass to the map
    /// than with one.
    bits: Vec<u64>,
    shift: u32,
    /// Value → where its latest holders are, and the least position that can still join them.
    /// (foldhash: the values are hashes already, and SipHash was a third of probing.)
    slots: HashMap<u32, Slot, foldhash::fast::RandomState>,
    /// The latest old positions holding each value, by [`Slot::at`].
    latest: Vec<Latest>,
}

/// A value's entry in its table: 8 bytes, so that one band's entries stay in the cache (for
/// 8,000 new members some 200 KB with the map's own bytes). A value many old members hold
/// (templated text) is offered most of them after it has its latest: they are turned away here
/// without reading its holders.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Positions below this are not among the latest (0 until `BUCKET_CAP` are held).
    floor: u32,
    at: u32,
}

impl Table {
    fn new(mut values: Vec<u32>) -> Table {
        // New members share values: sized for the distinct ones, the table is smaller and
        // more of it stays in the cache.
        values.sort_unstable();
        values.dedup();
        // About 16 bits per value: one old value in 70 or fewer reaches the map.
        let bits = (values.len() * 16)
            .next_power_of_two()
            .clamp(1 << 9, 1 << 28);
        let words = bits / 64;
        let mut t = Table {
            bits: vec![0; words],
            shift: 64 - words.trailing_zeros(),
            slots: HashMap::with_capacity_and_hasher(values.len(), Default::default()),
            latest: vec![Latest::default(); values.len()],
        };
        for (at, v) in values.into_iter().enumerate() {
            let (word, bits) = t.slot(v);
            t.bits[word] |= bits;
            t.slots.insert(
                v,
                Slot {
                    floor: 0,
                    at: at as u32,
                },
            );
        }
        t
    }

    /// The word of `value` and its two bits in it: its own bits (a value is a hash's high
    /// half already; mixing it again was a sixth of an update's probing).
    fn slot(&self, value: u32) -> (usize, u64) {
        let h = u64::from(value) << 32 | u64::from(value);
        (
            (h >> self.shift) as usize,
            1 << (h & 63) | 1 << ((h >> 6) & 63),
        )
    }

    fn probe(&mut self, value: u32, pos: u32) {
        if self.may_hold(value) {
            self.offer(value, pos);
        }
    }

    /// Whether a new member may hold `value` (the filter: false means none does).
    fn may_hold(&self, value: u32) -> bool {
        let (word, bits) = self.slot(value);
        self.bits[word] & bits == bits
    }

    /// Offers `pos` as a holder of `value`, if a new member holds it.
    fn offer(&mut self, value: u32, pos: u32) {
        if let Some(slot) = self.slots.get_mut(&value)
            && pos >= slot.floor
        {
            slot.floor = self.latest[slot.at as usize].offer(pos);
        }
    }

    /// The latest holders of `value`, if a new member has it.
    fn holders(&self, value: u32) -> Option<&Latest> {
        self.slots
            .get(&value)
            .map(|slot| &self.latest[slot.at as usize])
    }
}

/// The (up to) [`BUCKET_CAP`] greatest positions offered.
#[derive(Debug, Clone, Copy, Default)]
struct Latest {
    pos: [u32; BUCKET_CAP],
    len: u8,
}

impl Latest {
    /// Offers `pos`; gives the least position that can still join (0 while there is room).
    fn offer(&mut self, pos: u32) -> u32 {
        let have = &mut self.pos[..self.len as usize];
        if !have.contains(&pos) {
            if (self.len as usize) < BUCKET_CAP {
                self.pos[self.len as usize] = pos;
                self.len += 1;
            } else if let Some(min) = have.iter_mut().min()
                && *min < pos
            {
                *min = pos;
            }
        }
        if (self.len as usize) < BUCKET_CAP {
            0
        } else {
            self.pos.iter().min().copied().unwrap_or(0)
        }
    }
}

/// Offers a batch's values of the bands from `first` on to their `tables`: the values made
/// first, a member's at a time, then looked up a band at a time.
fn offer_bands(tables: &mut [Table], first: usize, batch: &[(u32, Signature)]) {
    let n = batch.len();
    let mut values = vec![0u32; tables.len() * n];
    for (i, (_, sig)) in batch.iter().enumerate() {
        for g in 0..tables.len() {
            values[g * n + i] = bands::band_value(sig, first + g);
        }
    }
    // Which values pass a band's filter is found first, without branches (about a quarter
    // pass where values are popular, so a branch on each was mispredicted often), then those
    // are looked up.
    let mut passed = vec![0u32; n];
    for (t, values) in tables.iter_mut().zip(values.chunks_exact(n.max(1))) {
        let mut k = 0;
        for (i, v) in values.iter().enumerate() {
            passed[k] = i as u32;
            k += usize::from(t.may_hold(*v));
        }
        for i in &passed[..k] {
            t.offer(values[*i as usize], batch[*i as usize].0);
        }
    }
}

/// A table key of band `b`'s value (`BANDS` for an exact key): the value's hash as `assign`
/// groups it (its high half).
fn table_key(b: usize, hash: u64) -> u64 {
    (b as u64) << 32 | hash >> 32
}

impl Candidates {
    /// The table of the new members' band values and exact keys.
    pub fn new<'a>(
        new: impl IntoIterator<Item = (Option<&'a Signature>, [Option<u64>; 2])>,
    ) -> Candidates {
        let mut values: Vec<Vec<u32>> = vec![Vec::new(); BANDS + 1];
        for (sig, exact) in new {
            if let Some(sig) = sig {
                for (b, v) in values.iter_mut().take(BANDS).enumerate() {
                    v.push(bands::band_value(sig, b));
                }
            }
            values[BANDS].extend(exact.iter().flatten().map(|k| (exact_key(*k) >> 32) as u32));
        }
        Candidates {
            tables: values.into_iter().map(Table::new).collect(),
        }
    }

    /// Offers the old member at `pos` (its place in `assign`'s order of old members: the
    /// members given to `assign` with a key, in their order; any increasing numbering works).
    pub fn offer(&mut self, pos: u32, signature: Option<&Signature>, exact: [Option<u64>; 2]) {
        if let Some(sig) = signature {
            for (b, t) in self.tables.iter_mut().take(BANDS).enumerate() {
                t.probe(bands::band_value(sig, b), pos);
            }
        }
        for k in exact.iter().flatten() {
            self.tables[BANDS].probe((exact_key(*k) >> 32) as u32, pos);
        }
    }

    /// [`Candidates::offer`] of the signatures of a batch of old members (by position), band
    /// by band, the bands shared out among the cores: each band's table is read for the whole
    /// batch while it is in the cache. (An update where templated text makes values popular
    /// offers every old member of the window: 38 million values at N = 10,000 sources.)
    pub fn offer_batch(&mut self, batch: &[(u32, Signature)]) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = BANDS.div_ceil(cores.clamp(1, BANDS));
        std::thread::scope(|s| {
            let mut groups = self.tables[..BANDS].chunks_mut(per).enumerate();
            let here = groups.next();
            for (g, tables) in groups {
                s.spawn(move || offer_bands(tables, g * per, batch));
            }
            if let Some((g, tables)) = here {
                offer_bands(tables, g * per, batch);
            }
        });
    }

    /// Whether the latest old members offered with band `b`'s value `value` are as many as
    /// `assign` pairs a member with, all at `least` or later: then no member not offered yet
    /// that is earlier than `least` would be kept for it.
    pub fn settles(&self, b: usize, value: u32, least: u32) -> bool {
        self.tables[b]
            .holders(value)
            .is_some_and(|l| l.len as usize == BUCKET_CAP && l.pos.iter().all(|p| *p >= least))
    }

    /// The positions of the old members to give `assign`, ascending.
    pub fn kept(&self) -> Vec<u32> {
        let mut kept: Vec<u32> = self
            .tables
            .iter()
            .flat_map(|t| &t.latest)
            .flat_map(|l| l.pos.into_iter().take(l.len as usize))
            .collect();
        kept.sort_unstable();
        kept.dedup();
        kept
    }

    /// Hands `each` the pairs (later, earlier position) [`Banding`] makes over the kept old
    /// members and the new ones whose later member is new (the only pairs [`Matches::compare`]
    /// weighs), in no order and some more than once, made from this table without the old
    /// members' signatures: in `assign`'s run of a value, a new member is paired with the
    /// members just before it, the new ones before it and then the latest old holders, which
    /// are the value's latest offered ones. `members` in `order` ([`order`]) are the kept old
    /// members and the new ones; `signature` gives a new member's signature (by place in
    /// `members`) and `old_pos` the position in `order` of an old member by the position it
    /// was offered at.
    ///
    /// An update thereby never bands the old members again: where many share values with the
    /// new ones (templated text), they were most of its members, and their signatures most of
    /// its memory.
    pub fn each_pair<'s>(
        &self,
        members: &[Member<'_>],
        order: &[usize],
        signature: impl Fn(usize) -> Option<&'s Signature>,
        old_pos: impl Fn(u32) -> u32,
        mut each: impl FnMut(usize, usize),
    ) {
        let old = keyed(members, order);
        // (table key, position) of every value and exact key of every new member.
        let mut held: Vec<(u64, u32)> = Vec::new();
        for (pos, place) in order.iter().enumerate().skip(old) {
            if let Some(sig) = signature(*place) {
                held.extend((0..BANDS).map(|b| (table_key(b, band_key(sig, b)), pos as u32)));
            }
            held.extend(
                members[*place]
                    .exact
                    .iter()
                    .flatten()
                    .map(|k| (table_key(BANDS, exact_key(*k)), pos as u32)),
            );
        }
        held.sort_unstable();
        let mut run: Vec<u32> = Vec::new();
        for news in held.chunk_by(|a, b| a.0 == b.0) {
            run.clear();
            let (band, value) = ((news[0].0 >> 32) as usize, news[0].0 as u32);
            if let Some(l) = self.tables[band].holders(value) {
                run.extend(l.pos[..l.len as usize].iter().map(|p| old_pos(*p)));
                run.sort_unstable();
            }
            let olds = run.len();
            run.extend(news.iter().map(|(_, pos)| *pos));
            for j in olds..run.len() {
                for k in &run[j.saturating_sub(BUCKET_CAP)..j] {
                    each(run[j] as usize, *k as usize);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A signature's values are what the formula gives, worked out one bin at a time: a
    /// shingle's hash (`splitmix` of the mixed word hashes) falls in the bin its top bits name,
    /// a bin's value is the low 16 bits of the least of the other bits of the hashes in it, and
    /// an empty bin takes the value of the first filled one along its probe sequence. Stored
    /// signatures are compared with new ones, so a faster build of it must give the same.
    #[test]
    fn signatures_give_the_formulas_values() {
        let reference = |words: &[u64], bins: usize| -> Vec<u16> {
            let shingles: Vec<u64> = if words.len() < SHINGLE {
                vec![words.iter().fold(0, |acc, w| acc.rotate_left(21) ^ w)]
            } else {
                words
                    .windows(SHINGLE)
                    .map(|w| w[0] ^ w[1].rotate_left(21) ^ w[2].rotate_left(42))
                    .collect()
            };
            let bits = bins.trailing_zeros();
            let filled = |bin: usize| {
                shingles
                    .iter()
                    .map(|s| splitmix(*s))
                    .filter(|h| (h >> (64 - bits)) as usize == bin)
                    .map(|h| h % (1 << (64 - bits)))
                    .min()
            };
            (0..bins)
                .map(|bin| {
                    let value = filled(bin).or_else(|| {
                        let mut state = splitmix(0x6f70_685f_6465_6e73 ^ bin as u64);
                        let mut probes = Vec::new();
                        for _ in 0..64 {
                            probes.push((state >> (64 - bits)) as usize);
                            state = splitmix(state);
                        }
                        probes.extend((1..bins).map(|d| (bin + d) % bins));
                        probes.into_iter().find_map(filled)
                    });
                    value.unwrap() as u16
                })
                .collect()
        };
        let mut z = 7u64;
        for len in [1, 2, 3, 4, 17, 39, 40, 41, 42, 600] {
            let words: Vec<u64> = (0..len)
                .map(|_| {
                    z = splitmix(z);
                    z
                })
                .collect();
            let sig = sign_words(&words);
            assert_eq!(sig.full.to_vec(), reference(&words, HASHES), "{len} words");
            let first = &words[..len.min(HEAD_WORDS)];
            assert_eq!(
                sig.head.to_vec(),
                reference(first, HEAD_HASHES),
                "{len} words"
            );
        }
    }

    /// The body's text, read a character at a time as it was before runs were copied whole.
    fn body_text_by_chars(html: &str, budget: usize) -> String {
        let mut in_tag = false;
        let mut body = String::new();
        for c in html.chars() {
            if body.len() >= budget {
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
        body
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Copying runs between tags gives what reading each character gives, cut included.
        #[test]
        fn body_text_by_runs_is_body_text_by_characters(
            html in "([a-zё> ]{0,6}|<p>|</p>|<a href=\"x\">|<b|&amp;|é){0,30}",
            budget in 0usize..60,
        ) {
            proptest::prop_assert_eq!(body_text(&html, budget), body_text_by_chars(&html, budget));
        }
    }

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
        assert_eq!(a.to_bytes().len(), 321);
        // The earlier formula's stored forms (16-bit and 32-bit values, no format byte) are
        // not read: its values cannot be compared with these.
        let values = || a.full.iter().chain(a.head.iter());
        let narrow: Vec<u8> = values().flat_map(|v| v.to_le_bytes()).collect();
        let wide: Vec<u8> = values().flat_map(|v| u32::from(*v).to_le_bytes()).collect();
        assert_eq!(Signature::from_bytes(&narrow), None);
        assert_eq!(Signature::from_bytes(&wide), None);
        let mut other = a.to_bytes();
        other[0] = 3;
        assert_eq!(Signature::from_bytes(&other), None);
        let b = signature(&item("2", "ВИЗИТ", &BODY.replace('ё', "е"))).unwrap();
        assert_eq!(a.similarity(&b), 1.0, "case and ё do not matter");
        assert!(signature(&item("3", "", "")).is_none());
    }

    /// Members for tests: (key, source, member, old key); `assign`'s answers as keys.
    fn assign_keys<'a>(
        m: &[(&'a str, &'a str, Member<'a>, Option<&'a str>)],
        threshold: f64,
        w: Duration,
    ) -> Vec<&'a str> {
        let members: Vec<Member<'a>> = m
            .iter()
            .map(|(_, source, x, old)| {
                let mut x = x.clone();
                // Sources numbered by name; the test's own numbers are ignored.
                x.source = m.iter().position(|(_, s, ..)| s == source).unwrap() as u32;
                x.keyed = old.is_some();
                x
            })
            .collect();
        assign(&members, threshold, w, |a, b| m[a].0.cmp(m[b].0))
            .into_iter()
            .map(|r| {
                let (key, _, _, old) = &m[r as usize];
                old.unwrap_or(key)
            })
            .collect()
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
        let m = |key, sig, h, cluster| {
            let member = Member {
                source: 0,
                date: t(h),
                arrival: t(h),
                signature: Some(sig),
                exact: [None, None],
                keyed: false,
            };
            (key, key, member, cluster)
        };
        let w = Duration::hours(72);
        let got = assign_keys(
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
        let got = assign_keys(&[m("b", &s2, 1, Some("b")), m("a", &s1, 0, None)], 0.3, w);
        assert_eq!(got, ["b", "b"]);
        // An old key names the cluster its joiners take, whatever the member's own key.
        let got = assign_keys(&[m("b", &s2, 1, Some("z")), m("a", &s1, 0, None)], 0.3, w);
        assert_eq!(got, ["z", "z"]);
        // Outside the window: no match.
        let got = assign_keys(&[m("a", &s1, 0, None), m("b", &s2, 100, None)], 0.3, w);
        assert_eq!(got, ["a", "b"]);
        // Arrival and date tied: the key decides which one the other joins.
        let got = assign_keys(&[m("b", &s2, 0, None), m("a", &s1, 0, None)], 0.3, w);
        assert_eq!(got, ["a", "a"]);
        // An exact key matches whatever the text.
        let mut x = m("x", &s3, 0, None);
        let mut y = m("y", &s1, 500, None);
        x.2.exact = [Some(7), None];
        y.2.exact = [Some(7), None];
        assert_eq!(assign_keys(&[x.clone(), y.clone()], 0.3, w), ["x", "x"]);
        // Never within one source.
        y.1 = "x";
        assert_eq!(assign_keys(&[x, y], 0.3, w), ["x", "y"]);
        let (mut a, b) = (m("a", &s1, 0, None), m("b", &s2, 1, None));
        a.1 = "b";
        assert_eq!(assign_keys(&[a, b], 0.3, w), ["a", "b"]);
        // A member joining one that joined another takes the first one's key: "c" is like
        // "b" (0.75) and not like "a" (0.25), "b" like "a" (0.5).
        let sig = |ones: usize| Signature {
            full: std::array::from_fn(|i| if i < ones { 1 } else { 2 }),
            head: [0; HEAD_HASHES],
        };
        let (sa, sb, sc) = (sig(HASHES), sig(HASHES / 2), sig(HASHES / 4));
        assert_eq!(sc.similarity(&sb), 0.75);
        assert_eq!(sc.similarity(&sa), 0.25);
        let got = assign_keys(
            &[
                m("c", &sc, 2, None),
                m("a", &sa, 0, None),
                m("b", &sb, 1, None),
            ],
            0.3,
            w,
        );
        assert_eq!(got, ["a", "a", "a"]);
    }

    /// Members drawn at random for a round: their keys (`k0`, `k1`, ...), signatures, the key
    /// each old one was given (a new one has none), and the members without their signatures.
    /// A tiny alphabet makes every band value common (floods) and random pairs alike.
    #[allow(clippy::type_complexity)]
    fn random_members(
        next: &mut impl FnMut(u64) -> u64,
        round: usize,
    ) -> (
        Vec<String>,
        Vec<Option<Signature>>,
        Vec<Option<usize>>,
        Vec<Member<'static>>,
    ) {
        let t = |h: u64| DateTime::from_timestamp(1_750_000_000 + h as i64 * 3600, 0).unwrap();
        let n = 20 + next(300) as usize;
        let alphabet = [2, 3, 5, 40][round % 4];
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        let sigs: Vec<Option<Signature>> = (0..n)
            .map(|_| {
                (next(12) != 0).then(|| {
                    let mut s = Signature {
                        full: [0; HASHES],
                        head: [0; HEAD_HASHES],
                    };
                    for v in s.full.iter_mut().chain(s.head.iter_mut()) {
                        *v = next(alphabet) as u16;
                    }
                    s
                })
            })
            .collect();
        let olds: Vec<Option<usize>> = (0..n)
            .map(|_| (next(2) == 0).then(|| next(n as u64) as usize))
            .collect();
        let bare: Vec<Member<'static>> = (0..n)
            .map(|i| Member {
                source: next(6) as u32,
                date: t(next(200)),
                arrival: t(next(50)),
                signature: None,
                exact: [
                    (next(4) == 0).then(|| next(30)),
                    (next(8) == 0).then(|| next(30)),
                ],
                keyed: olds[i].is_some(),
            })
            .collect();
        (keys, sigs, olds, bare)
    }

    /// `bare` with the signatures `sigs` (by place).
    fn with_signatures<'s>(bare: &[Member<'_>], sigs: &'s [Option<Signature>]) -> Vec<Member<'s>> {
        bare.iter()
            .zip(sigs)
            .map(|(m, s)| Member {
                signature: s.as_ref(),
                ..m.clone()
            })
            .collect()
    }

    pub(crate) fn seeded(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |m: u64| {
            seed = splitmix(seed);
            seed % m
        }
    }

    /// `settles` holds once the latest `BUCKET_CAP` members offered with a value all hold it at
    /// `least` or later; not while fewer hold it (one offered member's signature no longer has
    /// it, as a stale index entry names) or while one kept is earlier than `least`.
    #[test]
    fn settling_needs_the_latest_holders_from_the_least_on() {
        let new = Signature {
            full: std::array::from_fn(|i| i as u16),
            head: [0; HEAD_HASHES],
        };
        // Holds band 0's values of `new` and nothing else of it.
        let holder = |seed: u16| {
            let mut s = Signature {
                full: std::array::from_fn(|i| 1000 + seed * 200 + i as u16),
                head: [0; HEAD_HASHES],
            };
            s.full[..ROWS].copy_from_slice(&new.full[..ROWS]);
            s
        };
        let other = holder(99);
        let mut stale = holder(98);
        stale.full[0] = 7777;
        let value = (band_key(&new, 0) >> 32) as u32;
        let mut c = Candidates::new([(Some(&new), [None, None])]);
        for pos in 101..=107 {
            c.offer(pos, Some(&holder(pos as u16)), [None, None]);
        }
        c.offer(100, Some(&stale), [None, None]);
        assert!(!c.settles(0, value, 100), "seven holders");
        c.offer(50, Some(&other), [None, None]);
        assert!(!c.settles(0, value, 100), "one kept before the least");
        assert!(c.settles(0, value, 50));
        c.offer(108, Some(&other), [None, None]);
        assert!(c.settles(0, value, 100), "the latest eight from 100 on");
        assert!(!c.settles(1, value, 0), "no member holds band 1's value");
    }

    /// `assign` over the old members `Candidates` keeps and the new ones gives the new members
    /// the keys it gives them over all members, also where values are shared by far more than
    /// `BUCKET_CAP` members and many matches tie.
    #[test]
    fn candidates_give_assign_what_all_members_give() {
        let mut next = seeded(7);
        let w = Duration::hours(72);
        for round in 0..20 {
            let (keys, sigs, olds, bare) = random_members(&mut next, round);
            let n = keys.len();
            let members = with_signatures(&bare, &sigs);
            let key = |i: usize| olds[i].map_or(&keys[i], |k| &keys[k]).as_str();
            let all: Vec<&str> = assign(&members, 0.2, w, |a, b| keys[a].cmp(&keys[b]))
                .into_iter()
                .map(|r| key(r as usize))
                .collect();
            let (old, new): (Vec<usize>, Vec<usize>) = (0..n).partition(|i| members[*i].keyed);
            let mut c = Candidates::new(
                new.iter()
                    .map(|i| (members[*i].signature, members[*i].exact)),
            );
            for i in &old {
                c.offer(*i as u32, members[*i].signature, members[*i].exact);
            }
            let kept = c.kept();
            assert!(kept.iter().all(|i| members[*i as usize].keyed));
            // Offered in batches, band by band, in another order: the same members kept.
            let mut batched = Candidates::new(
                new.iter()
                    .map(|i| (members[*i].signature, members[*i].exact)),
            );
            let signed: Vec<(u32, Signature)> = old
                .iter()
                .rev()
                .filter_map(|i| Some((*i as u32, members[*i].signature?.clone())))
                .collect();
            for batch in signed.chunks(3) {
                batched.offer_batch(batch);
            }
            for i in &old {
                batched.offer(*i as u32, None, members[*i].exact);
            }
            assert_eq!(batched.kept(), kept, "round {round}");
            // Each of `some` as its place in `members`.
            let place: Vec<usize> = kept
                .iter()
                .map(|i| *i as usize)
                .chain(new.iter().copied())
                .collect();
            let some: Vec<Member<'_>> = place.iter().map(|i| members[*i].clone()).collect();
            let cmp = |a: usize, b: usize| keys[place[a]].cmp(&keys[place[b]]);
            let got = assign(&some, 0.2, w, cmp);
            for (j, i) in new.iter().enumerate() {
                let r = place[got[kept.len() + j] as usize];
                assert_eq!(key(r), all[*i], "round {round}, member {i}");
            }
            // The pairs the table makes are those banding makes over the same members whose
            // later member is new, and give the same keys.
            let order = order(&some, cmp);
            let mut banding = Banding::new(some.len(), keyed(&some, &order));
            for bands in BandValues::parts(BANDS / BAND_GROUP) {
                let mut values = BandValues::new(bands, some.len());
                for (pos, m) in order.iter().enumerate() {
                    if let Some(sig) = some[*m].signature {
                        values.add(pos, sig);
                    }
                }
                banding.add(&values);
            }
            let banded: Vec<(usize, usize)> = banding.finish(&some, &order).iter().collect();
            let rank = |p: u32| kept.binary_search(&p).expect("kept") as u32;
            let mut made = Vec::new();
            c.each_pair(
                &some,
                &order,
                |m| some[m].signature,
                rank,
                |later, earlier| made.push((later as u64) << 32 | earlier as u64),
            );
            compact(&mut made);
            let pairs = Pairs(made);
            assert_eq!(pairs.iter().collect::<Vec<_>>(), banded, "round {round}");
            let paired = assign_pairs(&some, &order, &pairs, |m| some[m].signature, 0.2, w);
            assert_eq!(paired, got, "round {round}");
        }
    }

    /// `assign` in its steps, as a first run takes them: members without signatures ordered,
    /// band values made in two parts from signatures handed over in another order, and only
    /// the paired members' signatures there to compare. It gives what `assign` gives.
    #[test]
    fn assign_in_steps_gives_what_assign_gives() {
        let mut next = seeded(11);
        let w = Duration::hours(72);
        for round in 0..20 {
            let (keys, sigs, _, bare) = random_members(&mut next, round);
            let n = keys.len();
            let members = with_signatures(&bare, &sigs);
            let cmp = |a: usize, b: usize| keys[a].cmp(&keys[b]);
            let want = assign(&members, 0.2, w, cmp);
            let order = order(&bare, cmp);
            let mut pos_of = vec![0; n];
            for (pos, m) in order.iter().enumerate() {
                pos_of[*m] = pos;
            }
            let mut banding = Banding::new(n, keyed(&bare, &order));
            for bands in BandValues::parts(2) {
                let mut values = BandValues::new(bands, n);
                for m in (0..n).rev() {
                    if let Some(sig) = &sigs[m] {
                        values.add(pos_of[m], sig);
                    }
                }
                banding.add(&values);
            }
            let pairs = banding.finish(&bare, &order);
            let compared = pairs.compared(&bare, &order, w);
            let signature = |m: usize| {
                assert!(
                    compared[pos_of[m]],
                    "round {round}: member {m} is not compared"
                );
                sigs[m].as_ref()
            };
            let got = assign_pairs(&bare, &order, &pairs, signature, 0.2, w);
            assert_eq!(got, want, "round {round}");
            // The best matches do not depend on the order the pairs are compared in (a first
            // run compares them a block of signatures at a time).
            let mut matches = Matches::new(&bare, &order, 0.2, w);
            let mut shuffled: Vec<(usize, usize)> = pairs.iter().collect();
            shuffled.sort_by_key(|(later, earlier)| (*earlier, std::cmp::Reverse(*later)));
            for (later, earlier) in shuffled {
                matches.compare(&bare, &order, later, earlier, || {
                    (signature(order[later]), signature(order[earlier]))
                });
            }
            assert_eq!(matches.clusters(&order), want, "round {round}, shuffled");
            let split = pairs.later_in(0..n / 2).count() + pairs.later_in(n / 2..n).count();
            assert_eq!(split, pairs.iter().count(), "round {round}");
        }
    }
}
