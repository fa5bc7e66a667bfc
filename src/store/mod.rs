//! What feedloom remembers: per-source fetch state and every normalised item, keyed by
//! (source, id). One trait, [`Store`], with an embedded SQLite backend (the default); a
//! PostgreSQL backend for several instances goes behind the same trait.

pub mod sqlite;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fetch::Validators;
use crate::model::{FeedMeta, Item};

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
}

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

/// An item's near-duplicate state (src/cluster.rs): its MinHash signature and its cluster key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterRow {
    pub source: String,
    pub id: String,
    /// The item's sort date (read only: `save_cluster_rows` ignores it).
    pub date: DateTime<Utc>,
    /// The stored signature bytes; `None` until computed, and again after the item's content
    /// changed (an upsert that changes an item clears it).
    pub signature: Option<Vec<u8>>,
    /// The published id of the item's cluster; given once and never changed.
    pub cluster: Option<String>,
}

/// What a store does. Futures are `Send` so the daemon can run them on any worker.
pub trait Store: Send + Sync {
    fn source_state(
        &self,
        source: &str,
    ) -> impl Future<Output = Result<Option<SourceState>, StoreError>> + Send;

    fn record_fetch(
        &self,
        source: &str,
        state: &SourceState,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a source's current items: new ones inserted, changed ones replaced (first-seen time
    /// kept), all marked as listed; items of the source absent from `items` are marked unlisted.
    fn upsert_items(
        &self,
        source: &str,
        items: &[Item],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<UpsertCounts, StoreError>> + Send;

    /// Marks a source's listed items as seen now (after a "not modified" answer).
    fn touch_listed(
        &self,
        source: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn items(
        &self,
        query: &ItemQuery,
    ) -> impl Future<Output = Result<Vec<StoredItem>, StoreError>> + Send;

    /// The near-duplicate state of items dated at or after `since` (all when `None`); with
    /// `signatures` false, `ClusterRow::signature` is left `None` (cheaper when only the keys
    /// are needed). A store keeps the two values per item and clears the signature whenever
    /// `upsert_items` changes the item.
    fn cluster_rows(
        &self,
        since: Option<DateTime<Utc>>,
        signatures: bool,
    ) -> impl Future<Output = Result<Vec<ClusterRow>, StoreError>> + Send;

    /// Saves signatures and cluster keys: for each row, a `Some` signature replaces the stored
    /// one, a `Some` cluster key is stored only where the item has none yet (a key, once given,
    /// never changes, even when two runs race); items no longer stored are skipped. One
    /// transaction.
    fn save_cluster_rows(
        &self,
        rows: &[ClusterRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes items no longer listed by their source and unseen since `unseen_since`, and
    /// beyond `keep_per_source` per source (unlisted items go first, then the oldest).
    /// Returns how many went.
    fn prune(
        &self,
        unseen_since: DateTime<Utc>,
        keep_per_source: usize,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
