//! What feedloom remembers: per-source fetch state and every normalised item, keyed by
//! (source, id). One trait, [`Store`], with an embedded SQLite backend (the default) and a
//! PostgreSQL backend for several instances sharing one database (`postgres` feature).
//! [`AnyStore`] picks one at startup from the `database` setting.
//!
//! Several instances: a source is refreshed only under a lease taken with [`Store::claim_due`]
//! and given back with [`Store::release`]; publishing happens under [`Store::lock_publish`].
//! SQLite serves one process (the CLI holds a file lock), so its leases live in memory.

#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fetch::Validators;
use crate::model::{FeedMeta, Item};
use crate::normalize::Reuse;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path}: stored data is unreadable: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("database {path}: schema version {found} is newer than this feedloom knows ({known})")]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("database task failed: {0}")]
    Task(String),
    #[cfg(feature = "postgres")]
    #[error("database {url}: {source}")]
    Postgres {
        /// The database URL without its password.
        url: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("database {url}: {reason}")]
    Unsupported { url: String, reason: &'static str },
    /// [`Store::upsert_items`] was told items are stored unchanged that are not (pruned since):
    /// nothing was written; send them in full.
    #[error("source {name}: {missing} items said to be stored unchanged are not stored")]
    NotStored { name: String, missing: usize },
}

/// Bumps the count of changes to what could be published ([`Store::generation`]); both
/// stores run it in the transaction that makes the change (schema 3's `meta` table).
const BUMP_GENERATION: &str = "UPDATE meta SET value = value + 1 WHERE key = 'generation'";

/// `meta` keys of the last complete excess pass of [`Store::prune`]: the generation it left
/// and the `keep_per_source` it kept. Only added items make a source exceed its limit, and
/// they bump the generation: while both are the same, the pass would delete nothing.
const PRUNED_GENERATION: &str = "pruned_generation";
const PRUNED_KEEP: &str = "pruned_keep";

/// What is known of a source between runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceState {
    /// The location last fetched.
    pub url: String,
    pub validators: Validators,
    pub last_fetch_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Consecutive failed fetches.
    pub error_count: u32,
    pub last_error: Option<String>,
    pub last_status: Option<u16>,
    /// The feed-level facts of the last good document (for attribution in outputs).
    pub feed: Option<FeedMeta>,
    /// Why the source is no longer fetched (HTTP 410 Gone). Cleared when its url changes.
    pub disabled: Option<String>,
    /// Not fetched before this time, even with `--force`: the server's `Retry-After`.
    pub retry_not_before: Option<DateTime<Utc>>,
    /// Not fetched before this time unless forced: exponential backoff after failures.
    pub backoff_until: Option<DateTime<Utc>>,
    /// Where the source is fetched from since the server moved it permanently (301/308 on two
    /// consecutive fetches); `None`: from `url`. Cleared when `url` changes, so the config
    /// stays the source of truth.
    pub effective_url: Option<String>,
    /// Where a permanent redirect led on the last good fetch, waiting for the next fetch to
    /// confirm it.
    pub moved_to: Option<String>,
    /// Seconds the last HTTP answer said it stays fresh (`Cache-Control: max-age`, `Expires`).
    pub fresh_for: Option<u64>,
    /// `fulltext` sources: what became of the article page of each item in the last document,
    /// by item id (items that left the document are forgotten, so this stays as small as the
    /// document).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pages: BTreeMap<String, PageState>,
}

/// What publishing reads of a source's stored state: its feed's facts and when it was last
/// fetched ([`Store::source_feeds`]), read without the rest (validators, pages).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SourceFeed {
    pub last_fetch_at: Option<DateTime<Utc>>,
    pub feed: Option<FeedMeta>,
}

/// The article page of one item of a `fulltext` source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PageState {
    /// The page's address (the item's link).
    pub url: String,
    /// True when the stored item's body is the story taken from the page; false while it is
    /// the feed's teaser.
    pub extracted: bool,
    /// Failed attempts since the last success or teaser change; tries stop at a small cap.
    pub failures: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub fetched_at: Option<DateTime<Utc>>,
    /// The page's validators, for a conditional request when the story is fetched again.
    pub validators: Validators,
    /// A hash of the item as the feed gave it: a change (the publisher edited the story) makes
    /// the page due again.
    pub teaser: u64,
}

/// How an upsert changed the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpsertCounts {
    pub new: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// An item as stored, with its source and bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    pub source: String,
    pub item: Item,
    pub first_seen: DateTime<Utc>,
    /// published, else updated, else first seen.
    pub sort_date: DateTime<Utc>,
}

/// Which items to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct ItemQuery {
    /// Only these sources (all when `None`).
    pub sources: Option<Vec<String>>,
    /// Only items dated at or after this.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (all when `None`).
    pub limit: Option<usize>,
}

/// A source a run would like to refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    /// The host it is fetched from, for the per-host limit (`None`: a local file, no limit).
    pub host: Option<String>,
    /// Its configured location: a server's `Retry-After` binds only the location that sent it.
    pub url: String,
    /// When the fetch recorded in the state the run read was made (`SourceState::last_fetch_at`;
    /// `None`: none was). A source whose recorded fetch is another by the time of the claim was
    /// fetched since by another instance, and is settled. (An exact check, not a clock
    /// comparison: instances on other machines, or a recording that commits late, cannot fool it.)
    /// So every recorded state carries the `last_fetch_at` of its own fetch: a write that kept
    /// the old one would go unnoticed by the claims of runs that read the state before it.
    pub seen: Option<DateTime<Utc>>,
}

/// A request for leases on due sources ([`Store::claim_due`]).
#[derive(Debug, Clone)]
pub struct Claim {
    /// Who holds the leases: one id per run of one instance.
    pub owner: String,
    /// The sources the run still wants, in the order it prefers.
    pub candidates: Vec<Candidate>,
    pub now: DateTime<Utc>,
    /// How long a lease lasts; a crashed holder's sources are free again after it.
    pub lease: chrono::Duration,
    /// At most this many leases are handed out.
    pub max: usize,
    /// At most this many live leases per host, all instances together.
    pub per_host: usize,
}

/// What [`Store::claim_due`] decided. A candidate in neither list is settled for this run:
/// another instance holds it or fetched it since the run read its state (`Candidate::seen`),
/// or its server's `Retry-After` has not passed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    /// Leased to the owner now, in candidate order.
    pub claimed: Vec<String>,
    /// Free but not handed out: their host is at its limit or `max` was reached. Ask again.
    pub waiting: Vec<String>,
}

/// What selecting an item for an output needs to know of it, read without the item itself
/// (from an index: publishing a feed does not read every stored item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemHead {
    /// Shared by the source's heads (see [`SourceNames`]).
    pub source: Arc<str>,
    pub id: String,
    pub first_seen: DateTime<Utc>,
    /// published, else updated, else first seen.
    pub sort_date: DateTime<Utc>,
    /// The key of the item's link (`Item::link`; [`crate::select::link_key`]): what selection
    /// compares links by. Not the link itself: at N = 10,000 sources, 600,000 heads' links
    /// were 600,000 strings to make and free at every publish.
    pub link_key: Option<crate::select::LinkKey>,
}

/// An item as clustering reads it (src/cluster.rs): its key, dates, link key and cluster key.
///
/// Compact: an update at N = 10,000 sources holds 600,000 of them, and its peak is where they
/// are read. The id is a boxed `str`, the dates Unix seconds (as stored), and a missing link
/// a key no link has: 88 bytes a row rather than 112 (-14 MB there).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterRow {
    /// Shared by the source's rows (see [`SourceNames`]).
    pub source: Arc<str>,
    pub id: Box<str>,
    /// The item's sort date, Unix seconds.
    pub date: i64,
    /// Unix seconds.
    pub first_seen: i64,
    /// The key of the item's link ([`ItemHead::link_key`]), for the exact-duplicate keys;
    /// [`ClusterRow::NO_LINK`] when it has none.
    pub link: crate::select::LinkKey,
    /// The item's cluster key; `None` until given (once, and never changed).
    pub cluster: Option<ClusterKey>,
}

impl ClusterRow {
    /// The `link` of a row whose item has no link.
    pub const NO_LINK: crate::select::LinkKey = [0; 2];

    /// The `link` of an item with `link`.
    pub fn link_of(link: Option<&str>) -> crate::select::LinkKey {
        match link.map(crate::select::link_key) {
            None => Self::NO_LINK,
            // A link whose key is the one that means none (one in 2^128) is told apart.
            Some(Self::NO_LINK) => [0, 1],
            Some(key) => key,
        }
    }

    /// The key of the item's link, if it has one.
    pub fn link_key(&self) -> Option<crate::select::LinkKey> {
        (self.link != Self::NO_LINK).then_some(self.link)
    }

    /// The item's sort date.
    pub fn sort_date(&self) -> DateTime<Utc> {
        from_ts(self.date)
    }

    /// When the item was first seen.
    pub fn first_seen_at(&self) -> DateTime<Utc> {
        from_ts(self.first_seen)
    }
}

/// A time stored as Unix seconds (both stores keep item times so).
pub(crate) fn from_ts(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// The first whole second at or after `t`, in Unix seconds: a row's `date` (whole seconds) is
/// at or after `t` exactly when it is at or after this.
pub fn seconds_from(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

// Hundreds of thousands of each are held at once (600,000 at N = 10,000 sources): keep them
// from growing unnoticed.
const _: () = assert!(std::mem::size_of::<ClusterRow>() <= 88);
const _: () = assert!(std::mem::size_of::<ItemHead>() <= 88);

/// Source names as rows read them: one shared string a source rather than one an item (at
/// N = 10,000 sources, 600,000 rows and heads of 60 items a source).
#[derive(Debug, Default)]
pub struct SourceNames(std::collections::HashSet<Arc<str>>);

impl SourceNames {
    /// The shared `name`.
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = name.into();
        self.0.insert(shared.clone());
        shared
    }
}

/// Item keys (source, id) packed in one buffer: a batch of lookups ([`Store::signatures`]) is
/// two allocations rather than two strings a key (at N = 10,000 sources, 1.2 million strings
/// made here and freed on the store's thread were a quarter of reading a window's signatures).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemKeys {
    text: String,
    /// Where each key's source and id end in `text`.
    ends: Vec<(usize, usize)>,
}

impl ItemKeys {
    /// Room for `keys` keys of about 32 bytes (a source name and an id, typically a URL).
    pub fn with_capacity(keys: usize) -> ItemKeys {
        ItemKeys {
            text: String::with_capacity(keys * 32),
            ends: Vec::with_capacity(keys),
        }
    }

    pub fn push(&mut self, source: &str, id: &str) {
        self.text.push_str(source);
        let source_end = self.text.len();
        self.text.push_str(id);
        self.ends.push((source_end, self.text.len()));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Key `n`: (source, id). Panics when `n >= len()`.
    pub fn get(&self, n: usize) -> (&str, &str) {
        let start = n.checked_sub(1).map_or(0, |p| self.ends[p].1);
        let (source_end, end) = self.ends[n];
        (&self.text[start..source_end], &self.text[source_end..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        (0..self.len()).map(|n| self.get(n))
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for ItemKeys {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(keys: I) -> ItemKeys {
        let keys = keys.into_iter();
        let mut out = ItemKeys::with_capacity(keys.size_hint().0);
        for (source, id) in keys {
            out.push(source, id);
        }
        out
    }
}

/// (For callers, such as tests, that have the keys as strings.)
impl From<Vec<(String, String)>> for ItemKeys {
    fn from(keys: Vec<(String, String)>) -> ItemKeys {
        keys.iter().map(|(s, i)| (s.as_str(), i.as_str())).collect()
    }
}

/// A stored cluster key, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterKey {
    /// The item's own published id ([`crate::publish::output_id`]): it is its cluster's first
    /// member, as most items are. Not held as a string: at N = 10,000 sources, 600,000 of them
    /// were a sixth of an update's memory.
    Own,
    /// Another item's published id: the item joined that item's cluster.
    Joined(String),
}

impl ClusterKey {
    /// The stored `key` of item (`source`, `id`).
    pub fn of(key: &str, source: &str, id: &str) -> ClusterKey {
        if crate::publish::is_output_id(key, source, id) {
            ClusterKey::Own
        } else {
            ClusterKey::Joined(key.to_owned())
        }
    }
}

/// What clustering saves of an item ([`Store::save_cluster_rows`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterUpdate {
    pub source: String,
    pub id: String,
    /// Its MinHash signature's bytes: stored until the item's content changes (an upsert that
    /// changes an item drops it).
    pub signature: Option<Vec<u8>>,
    /// Its cluster key (a published id).
    pub cluster: Option<String>,
}

/// The error of a [`Store::save_cluster_batches`] whose batches stopped before `Done`.
pub const UNFINISHED_BATCHES: &str =
    "the cluster keys stopped coming before the last batch: none of them was saved";

/// What [`Store::save_cluster_batches`] is handed: rows to save, then `Done` once all are sent,
/// with what the run brought the band index to (`None`: saving keys without it makes the store
/// stop vouching for its index).
#[derive(Debug)]
pub enum ClusterBatch {
    Rows(Vec<ClusterUpdate>),
    Done(Option<BandUpdate>),
}

/// What a store keeps of the band index (src/cluster/bands.rs: a file beside an SQLite
/// database), read before the rows a clustering run reads, so that whatever changes after it is
/// in the log the next run reads.
#[derive(Debug, Clone, PartialEq)]
pub struct BandState {
    /// The database file the index's files are named beside.
    pub base: std::path::PathBuf,
    /// The last sequence number the log has given (0: none).
    pub last_seq: i64,
    /// The index the store vouches for; `None` when there is none (never built, or keys were
    /// saved without bringing it up to date).
    pub index: Option<BandIndexState>,
}

/// The index a store vouches for ([`BandState`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BandIndexState {
    /// Names its file ([`crate::cluster::bands::path_of`]).
    pub token: u64,
    /// Items dated before this are not in it.
    pub since: DateTime<Utc>,
    /// The items with a cluster key whose signature or date changed since it was brought up to
    /// date (in the log past what it covers), as (source, id); `None` when more than the limit
    /// asked for.
    pub logged: Option<Vec<(String, String)>>,
    /// Bytes of its delta entries ([`Store::band_deltas`]).
    pub delta_bytes: u64,
}

/// What a clustering run brought the band index to, saved with its cluster keys.
#[derive(Debug, Clone, PartialEq)]
pub struct BandUpdate {
    /// The index file: the one the run found, or the one it built.
    pub token: u64,
    /// Whether the run built the file: the delta entries stored go. Otherwise the index must
    /// still be the one the run read, or the store stops vouching for it.
    pub built: bool,
    /// The oldest date it covers now.
    pub since: DateTime<Utc>,
    /// Entries to add, as (band, sorted entries as bytes).
    pub delta: Vec<(usize, Vec<u8>)>,
    /// The last log entry the index now accounts for.
    pub covered: i64,
}

/// What a store does. Futures are `Send` so the daemon can run them on any worker.
pub trait Store: Send + Sync {
    /// Held while outputs are written; dropping it lets the next publisher in.
    type PublishGuard: Send;

    fn source_state(
        &self,
        source: &str,
    ) -> impl Future<Output = Result<Option<SourceState>, StoreError>> + Send;

    /// Every stored source state by source name, in one read: a run looks at all its sources
    /// at once rather than one store call each.
    fn source_states(
        &self,
    ) -> impl Future<Output = Result<HashMap<String, SourceState>, StoreError>> + Send;

    /// [`Store::source_states`], only what publishing reads of each (a run that changed nothing
    /// reads them to learn that it has nothing to publish).
    fn source_feeds(
        &self,
    ) -> impl Future<Output = Result<HashMap<String, SourceFeed>, StoreError>> + Send;

    /// What the last document stored for `source` left to reuse: its items by the hash of
    /// their raw form, so that the next document's unchanged items are not normalised again
    /// (written with the items, [`Store::upsert_signed_items`]). Kept apart from the state,
    /// which every run reads whole: only a source that answers with a new document needs it.
    fn source_reuse(
        &self,
        source: &str,
    ) -> impl Future<Output = Result<Option<Reuse>, StoreError>> + Send;

    fn record_fetch(
        &self,
        source: &str,
        state: &SourceState,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`Store::record_fetch`] for several sources, in one transaction: all are recorded or
    /// none. A source named twice ends with its last state.
    fn record_fetches(
        &self,
        fetches: &[(String, SourceState)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a source's current items: new ones inserted, changed ones replaced (first-seen time
    /// kept), all marked as listed; items of the source absent from `items` and `unchanged` are
    /// marked unlisted and last seen `now` (retention counts from then). A "not modified" answer
    /// needs no call: listed items are never pruned.
    ///
    /// `unchanged`: ids of items the caller knows are stored as they are (the document sent
    /// them again unchanged, so they were not normalised again; none of them in `items`): they
    /// stay listed, are last seen `now` and count as unchanged, without being read or written.
    /// When one of them is not stored (pruned since), nothing at all is written and the answer
    /// is [`StoreError::NotStored`]: the caller sends them in full.
    ///
    /// What the source's previous document left to reuse ([`Store::source_reuse`]) is forgotten:
    /// it described items this call may have replaced.
    fn upsert_items(
        &self,
        source: &str,
        items: &[Item],
        unchanged: &[String],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<UpsertCounts, StoreError>> + Send {
        self.upsert_signed_items(source, items, Vec::new(), unchanged, None, now)
    }

    /// [`Store::upsert_items`], with the items' signatures (`signatures[n]` of `items[n]`;
    /// `None`: it has none), saved as [`Store::save_cluster_rows`] saves them, and what the
    /// document leaves to reuse (`None`: nothing; [`Store::source_reuse`]), all in the items'
    /// transaction: a refresh commits once a source, and what is left to reuse never describes
    /// other items than those stored.
    fn upsert_signed_items(
        &self,
        source: &str,
        items: &[Item],
        signatures: Vec<Option<Vec<u8>>>,
        unchanged: &[String],
        reuse: Option<&Reuse>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<UpsertCounts, StoreError>> + Send;

    fn items(
        &self,
        query: &ItemQuery,
    ) -> impl Future<Output = Result<Vec<StoredItem>, StoreError>> + Send;

    /// What [`Store::items`] would list, as [`ItemHead`]s: the same items in the same order,
    /// without reading the items themselves.
    fn heads(
        &self,
        query: &ItemQuery,
    ) -> impl Future<Output = Result<Vec<ItemHead>, StoreError>> + Send;

    /// The stored items of these (source, id) keys, in the order given; keys of items no
    /// longer stored are skipped.
    fn items_by_keys(
        &self,
        keys: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<StoredItem>, StoreError>> + Send;

    /// A count that changes whenever what could be published changes: items added, changed
    /// or deleted (not fetch bookkeeping, not listing). Equal counts mean the same items.
    fn generation(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every stored item's near-duplicate state, oldest first, then by key (source, id; as
    /// bytes): its key, dates, link and cluster key, without its signature
    /// ([`Store::signatures`] reads those, for the items that need them). A store keeps a
    /// signature and a cluster key per item and clears the signature whenever `upsert_items`
    /// changes the item.
    fn cluster_rows(&self) -> impl Future<Output = Result<Vec<ClusterRow>, StoreError>> + Send;

    /// The stored signatures of the items `keys` names (source, id), in that order: `None`
    /// for an item without one or no longer stored.
    fn signatures(
        &self,
        keys: ItemKeys,
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, StoreError>> + Send;

    /// [`Store::save_cluster_rows`] for rows handed over a batch at a time (so that they need
    /// not be held all at once): all of them saved in one transaction, and none unless `Done`
    /// came (the sender gone without it means the run stopped; the error says so). Whoever
    /// sends must not wait on the store meanwhile: a store may hold its connection for the
    /// whole transaction. By default the batches are gathered and saved at once.
    fn save_cluster_batches(
        &self,
        mut batches: tokio::sync::mpsc::Receiver<ClusterBatch>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            let mut rows = Vec::new();
            while let Some(batch) = batches.recv().await {
                match batch {
                    ClusterBatch::Rows(more) => rows.extend(more),
                    ClusterBatch::Done(_) if rows.is_empty() => return Ok(()),
                    ClusterBatch::Done(_) => return self.save_cluster_rows(rows).await,
                }
            }
            Err(StoreError::Task(UNFINISHED_BATCHES.into()))
        }
    }

    /// The band index's state ([`BandState`]), with at most `log_limit` logged items; `None` for
    /// a store that keeps no band index (then clustering reads every old signature).
    fn band_state(
        &self,
        log_limit: usize,
    ) -> impl Future<Output = Result<Option<BandState>, StoreError>> + Send {
        let _ = log_limit;
        async { Ok(None) }
    }

    /// The band index's delta entries of band `band`: runs of sorted entries, as bytes (read a
    /// band at a time: all of them can be tens of megabytes).
    fn band_deltas(
        &self,
        band: usize,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, StoreError>> + Send {
        let _ = band;
        async { Ok(Vec::new()) }
    }

    /// Folds the store's log of recent writes back into its file, beside its other calls (SQLite:
    /// its WAL, on a connection of its own, without waiting for readers): what closing the store
    /// does, done while the caller works on, so that the close finds little or nothing to copy.
    /// A store without such a log does nothing.
    fn checkpoint(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Saves signatures and cluster keys: for each row, a `Some` signature replaces the stored
    /// one, a `Some` cluster key is stored only where the item has none yet (a key, once given,
    /// never changes, even when two runs race); items no longer stored are skipped. One
    /// transaction. Takes the rows: a first run saves a key for every item, and a copy of them
    /// all was a sixth of its peak memory.
    fn save_cluster_rows(
        &self,
        rows: Vec<ClusterUpdate>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes items no longer listed by their source and unseen since `unseen_since`, and
    /// beyond `keep_per_source` per source (unlisted items go first, then the oldest).
    /// Returns how many went.
    fn prune(
        &self,
        unseen_since: DateTime<Utc>,
        keep_per_source: usize,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Leases candidates that are free: not leased by anyone (or the lease ran out), not
    /// fetched since the claimer read their state (`Candidate::seen`), past their
    /// `Retry-After`, their host under `per_host` live leases. Atomic across instances: no two
    /// owners hold one source at a time.
    fn claim_due(&self, claim: &Claim) -> impl Future<Output = Result<Claimed, StoreError>> + Send;

    /// Gives leases back (after their fetches were recorded). A lease taken over meanwhile by
    /// another owner is left alone.
    fn release(
        &self,
        sources: &[String],
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Extends every lease `owner` still holds to `until`: a run that is still working keeps
    /// its sources however long a fetch takes, and a dead one's run out.
    fn renew(
        &self,
        owner: &str,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Waits until no other instance is publishing, then holds that right until the guard
    /// is dropped.
    fn lock_publish(&self) -> impl Future<Output = Result<Self::PublishGuard, StoreError>> + Send;
}

/// The backend named by the `database` setting: a SQLite file path, or a `postgres://` URL.
#[derive(Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

/// Guard of [`AnyStore::lock_publish`].
pub enum AnyPublishGuard {
    Sqlite(<SqliteStore as Store>::PublishGuard),
    #[cfg(feature = "postgres")]
    Postgres(<PostgresStore as Store>::PublishGuard),
}

/// True when `database` names a server rather than a file.
pub fn is_url(database: &str) -> bool {
    database.contains("://")
}

impl AnyStore {
    /// Opens and migrates the database `database` names. `connections`: the most a
    /// PostgreSQL store opens at once.
    pub async fn open(database: &str, connections: usize) -> Result<AnyStore, StoreError> {
        if !is_url(database) {
            return Ok(AnyStore::Sqlite(SqliteStore::open(std::path::Path::new(
                database,
            ))?));
        }
        let scheme = database.split("://").next().unwrap_or_default();
        if scheme != "postgres" && scheme != "postgresql" {
            return Err(StoreError::Unsupported {
                url: database.to_string(),
                reason: "only postgres:// URLs (or a SQLite file path) are supported",
            });
        }
        #[cfg(feature = "postgres")]
        {
            Ok(AnyStore::Postgres(
                PostgresStore::open(database, connections).await?,
            ))
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = connections;
            Err(StoreError::Unsupported {
                url: database.to_string(),
                reason: "this build has no PostgreSQL support (cargo feature `postgres`)",
            })
        }
    }

    /// True when several instances may share the database (no run lock file is needed).
    pub fn is_shared(&self) -> bool {
        !matches!(self, AnyStore::Sqlite(_))
    }
}

/// Calls the same method on whichever backend this is.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($s) => $call,
        }
    };
}

impl Store for AnyStore {
    type PublishGuard = AnyPublishGuard;

    async fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
        dispatch!(self, s => s.source_state(source).await)
    }

    async fn source_states(&self) -> Result<HashMap<String, SourceState>, StoreError> {
        dispatch!(self, s => s.source_states().await)
    }

    async fn source_feeds(&self) -> Result<HashMap<String, SourceFeed>, StoreError> {
        dispatch!(self, s => s.source_feeds().await)
    }

    async fn source_reuse(&self, source: &str) -> Result<Option<Reuse>, StoreError> {
        dispatch!(self, s => s.source_reuse(source).await)
    }

    async fn record_fetch(&self, source: &str, state: &SourceState) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_fetch(source, state).await)
    }

    async fn record_fetches(&self, fetches: &[(String, SourceState)]) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_fetches(fetches).await)
    }

    async fn upsert_signed_items(
        &self,
        source: &str,
        items: &[Item],
        signatures: Vec<Option<Vec<u8>>>,
        unchanged: &[String],
        reuse: Option<&Reuse>,
        now: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        dispatch!(self, s => s.upsert_signed_items(source, items, signatures, unchanged, reuse, now).await)
    }

    async fn items(&self, query: &ItemQuery) -> Result<Vec<StoredItem>, StoreError> {
        dispatch!(self, s => s.items(query).await)
    }

    async fn heads(&self, query: &ItemQuery) -> Result<Vec<ItemHead>, StoreError> {
        dispatch!(self, s => s.heads(query).await)
    }

    async fn items_by_keys(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredItem>, StoreError> {
        dispatch!(self, s => s.items_by_keys(keys).await)
    }

    async fn generation(&self) -> Result<u64, StoreError> {
        dispatch!(self, s => s.generation().await)
    }

    async fn cluster_rows(&self) -> Result<Vec<ClusterRow>, StoreError> {
        dispatch!(self, s => s.cluster_rows().await)
    }

    async fn signatures(&self, keys: ItemKeys) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        dispatch!(self, s => s.signatures(keys).await)
    }

    async fn save_cluster_rows(&self, rows: Vec<ClusterUpdate>) -> Result<(), StoreError> {
        dispatch!(self, s => s.save_cluster_rows(rows).await)
    }

    async fn save_cluster_batches(
        &self,
        batches: tokio::sync::mpsc::Receiver<ClusterBatch>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.save_cluster_batches(batches).await)
    }

    async fn checkpoint(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.checkpoint().await)
    }

    async fn band_state(&self, log_limit: usize) -> Result<Option<BandState>, StoreError> {
        dispatch!(self, s => s.band_state(log_limit).await)
    }

    async fn band_deltas(&self, band: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        dispatch!(self, s => s.band_deltas(band).await)
    }

    async fn prune(
        &self,
        unseen_since: DateTime<Utc>,
        keep_per_source: usize,
    ) -> Result<u64, StoreError> {
        dispatch!(self, s => s.prune(unseen_since, keep_per_source).await)
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Claimed, StoreError> {
        dispatch!(self, s => s.claim_due(claim).await)
    }

    async fn release(&self, sources: &[String], owner: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.release(sources, owner).await)
    }

    async fn renew(&self, owner: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self, s => s.renew(owner, until).await)
    }

    async fn lock_publish(&self) -> Result<AnyPublishGuard, StoreError> {
        match self {
            AnyStore::Sqlite(s) => Ok(AnyPublishGuard::Sqlite(s.lock_publish().await?)),
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(s) => Ok(AnyPublishGuard::Postgres(s.lock_publish().await?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ItemKeys;

    #[test]
    fn item_keys_give_back_what_was_pushed() {
        let pairs = [("", ""), ("", "a"), ("b", ""), ("a", "1"), ("ист", "ид/1")];
        let keys: ItemKeys = pairs.into_iter().collect();
        assert_eq!(keys.len(), pairs.len());
        assert!(keys.iter().eq(pairs));
        for (n, pair) in pairs.iter().enumerate() {
            assert_eq!(keys.get(n), *pair);
        }
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(s, i)| (s.to_string(), i.to_string()))
            .collect();
        assert_eq!(ItemKeys::from(owned), keys);
        assert!(ItemKeys::default().is_empty());
    }

    /// A row's link key and dates read back as they were given: no link is none, a link is its
    /// key; a date compared with a bound of its own (whole seconds, or not) is at or after it
    /// exactly when its `DateTime` is.
    #[test]
    fn compact_rows_read_back_their_links_and_dates() {
        use super::{ClusterRow, seconds_from};
        use chrono::{DateTime, Duration};
        let row = |link: Option<&str>, date: i64| ClusterRow {
            link: ClusterRow::link_of(link),
            date,
            first_seen: date - 5,
            ..ClusterRow::default()
        };
        assert_eq!(row(None, 0).link_key(), None);
        let link = "https://example.org/a";
        assert_eq!(
            row(Some(link), 0).link_key(),
            Some(crate::select::link_key(link))
        );
        assert_eq!(
            row(Some(""), 0).link_key(),
            Some(crate::select::link_key(""))
        );
        let t = DateTime::from_timestamp(1_750_000_000, 0).unwrap();
        let r = row(None, t.timestamp());
        assert_eq!(
            (r.sort_date(), r.first_seen_at()),
            (t, t - Duration::seconds(5))
        );
        for bound in [
            t,
            t - Duration::milliseconds(1),
            t + Duration::milliseconds(1),
            t - Duration::seconds(1),
            t + Duration::seconds(1),
        ] {
            assert_eq!(r.date >= seconds_from(bound), t >= bound, "{bound}");
        }
    }
}
