//! The shared backend: PostgreSQL (`database = "postgres://user@host/db"`), for several
//! feedloom instances on one database. Same data as the SQLite store (items as JSON plus a
//! content hash), plus leases so each due source is fetched by one instance:
//!
//! - [`Store::claim_due`] runs in one transaction under a transaction-level advisory lock (so
//!   per-host counts are exact across instances) and takes the rows it leases with
//!   `FOR UPDATE SKIP LOCKED` (a row another instance is writing is skipped, never waited on).
//!   A lease ends by [`Store::release`] or by running out; a crashed instance's sources are
//!   free again after the lease.
//! - [`Store::lock_publish`] takes a session advisory lock on a connection of its own; dropping
//!   the guard closes that connection, which frees the lock (also when the process dies).
//!
//! Client: tokio-postgres over sqlx. Measured here (10,000 upserts in one transaction,
//! PostgreSQL 15, release builds): one array (`UNNEST`) statement took 95-110 ms with
//! tokio-postgres and 91-97 ms with sqlx, row by row 315-415 ms and 250-265 ms; a fresh build of
//! the client alone took 35 s (85 crates) against 148 s (133 crates) for sqlx with only its
//! `postgres` feature. This store writes a source's items with array statements, where the two
//! are equal, so the lighter build wins. No TLS in this build: reach the server over a private
//! network or a Unix socket.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Config, NoTls};
use xxhash_rust::xxh3::xxh3_64;

use super::{BUMP_GENERATION, PRUNED_GENERATION, PRUNED_KEEP, from_ts};
use super::{
    Candidate, Claim, Claimed, ClusterKey, ClusterRow, ClusterUpdate, ItemHead, ItemKeys,
    ItemQuery, SourceFeed, SourceNames, SourceState, Store, StoreError, StoredItem, UpsertCounts,
};
use crate::model::Item;
use crate::normalize::Reuse;
use crate::select;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_init.sql"),
    include_str!("migrations/postgres/0002_clusters.sql"),
    include_str!("migrations/postgres/0003_generation.sql"),
    include_str!("migrations/postgres/0004_heads.sql"),
    include_str!("migrations/postgres/0005_source_reuse.sql"),
];

/// Advisory lock keys ("feedlo" + a number): schema migrations, claims, publishing.
const MIGRATE_KEY: i64 = 0x6665_6564_6c6f_0001;
const CLAIM_KEY: i64 = 0x6665_6564_6c6f_0002;
const PUBLISH_KEY: i64 = 0x6665_6564_6c6f_0003;

#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL without its password, for messages.
    url: String,
    config: Config,
    idle: Mutex<Vec<Client>>,
    /// One permit per connection that may be open at once.
    slots: Arc<Semaphore>,
}

/// A pooled connection; back to the pool on drop unless it broke.
struct Conn {
    client: Option<Client>,
    inner: Arc<Inner>,
    _slot: OwnedSemaphorePermit,
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("taken only in drop")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("taken only in drop")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(c) = self.client.take()
            && !c.is_closed()
        {
            self.inner
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(c);
        }
    }
}

/// Holds the publish lock; dropping it closes its connection, which frees the lock.
pub struct PublishLock {
    _client: Client,
}

fn ms(d: DateTime<Utc>) -> i64 {
    d.timestamp_millis()
}

/// A database URL fit for messages: its password removed.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "postgres://(unparsable URL)".into(),
    }
}

impl Inner {
    fn err(&self, source: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres {
            url: self.url.clone(),
            source,
        }
    }

    fn corrupt(&self, source: serde_json::Error) -> StoreError {
        StoreError::Corrupt {
            path: self.url.clone(),
            source,
        }
    }

    async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(|e| self.err(e))?;
        let url = self.url.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(database = %url, error = %e, "database connection closed");
            }
        });
        Ok(client)
    }
}

impl PostgresStore {
    /// The JSON that `query` reads (one column) for the source `name`, as `T`; `None` when it
    /// finds no row, or a NULL.
    async fn json_of<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(query, &[&name])
            .await
            .map_err(|e| self.inner.err(e))?;
        let json: Option<String> = row.and_then(|r| r.get(0));
        json.map(|j| serde_json::from_str(&j).map_err(|e| self.inner.corrupt(e)))
            .transpose()
    }

    /// Every stored source state by source name, read as `T` (the whole state, or a part).
    async fn states_as<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<HashMap<String, T>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT name, state FROM sources WHERE state IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| self.inner.err(e))?;
        rows.iter()
            .map(|r| {
                let json: &str = r.get(1);
                let state = serde_json::from_str(json).map_err(|e| self.inner.corrupt(e))?;
                Ok((r.get(0), state))
            })
            .collect()
    }

    /// A row of `source, first_seen, sort_date, data`.
    fn stored_item(&self, r: &tokio_postgres::Row) -> Result<StoredItem, StoreError> {
        let data: &str = r.get(3);
        Ok(StoredItem {
            source: r.get(0),
            first_seen: from_ts(r.get(1)),
            sort_date: from_ts(r.get(2)),
            item: serde_json::from_str(data).map_err(|e| self.inner.corrupt(e))?,
        })
    }

    /// Connects, and migrates the schema (one instance at a time, under an advisory lock).
    /// At most `connections` connections are open at once (plus one while publishing).
    pub async fn open(url: &str, connections: usize) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore::unmigrated(url, connections)?;
        store.migrate().await?;
        Ok(store)
    }

    /// The store, its connections made when first asked for, its schema not looked at.
    fn unmigrated(url: &str, connections: usize) -> Result<PostgresStore, StoreError> {
        let shown = redact(url);
        let config = Config::from_str(url).map_err(|source| StoreError::Postgres {
            url: shown.clone(),
            source,
        })?;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                url: shown,
                config,
                idle: Mutex::new(Vec::new()),
                slots: Arc::new(Semaphore::new(connections.max(1))),
            }),
        })
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        let slot = self
            .inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let client = match idle {
            Some(c) if !c.is_closed() => c,
            _ => self.inner.connect().await?,
        };
        Ok(Conn {
            client: Some(client),
            inner: self.inner.clone(),
            _slot: slot,
        })
    }

    /// Runs `attempt` (one transaction, from its start) again when PostgreSQL aborted it to
    /// break a deadlock or a serialization conflict: waits between item rows written by one
    /// instance's upsert and another's publish or prune can form a cycle, and the server then
    /// aborts one of the two. At most [`RETRIES`] times, after a short random pause.
    async fn retrying<T, F>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Err(e) if tries < RETRIES && aborted(&e) => {
                    tries += 1;
                    let pause = 10u64 << tries;
                    let jitter = getrandom::u64().unwrap_or_default() % pause;
                    tracing::warn!(
                        what,
                        attempt = tries,
                        error = %e,
                        "the database aborted a transaction; running it again"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(pause + jitter)).await;
                }
                result => return result,
            }
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let e = |source| inner.err(source);
        let mut c = self.conn().await?;
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_KEY])
            .await
            .map_err(e)?;
        let result = async {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS feedloom_schema (version INTEGER NOT NULL)",
            )
            .await
            .map_err(e)?;
            let version: i32 = c
                .query_one("SELECT COALESCE(max(version), 0) FROM feedloom_schema", &[])
                .await
                .map_err(e)?
                .get(0);
            let known = MIGRATIONS.len() as i32;
            if version > known {
                return Err(StoreError::TooNew {
                    path: inner.url.clone(),
                    found: version.into(),
                    known: known.into(),
                });
            }
            for (n, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                let tx = c.transaction().await.map_err(e)?;
                tx.batch_execute(sql).await.map_err(e)?;
                tx.execute(
                    "INSERT INTO feedloom_schema (version) VALUES ($1)",
                    &[&(n as i32 + 1)],
                )
                .await
                .map_err(e)?;
                tx.commit().await.map_err(e)?;
            }
            Ok(())
        }
        .await;
        c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_KEY])
            .await
            .map_err(e)?;
        result
    }
}

/// How many times [`PostgresStore::retrying`] runs an aborted transaction again.
const RETRIES: u32 = 4;

/// Whether the server aborted a transaction that may succeed when run again.
fn aborted(e: &StoreError) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(e, StoreError::Postgres { source, .. }
    if source.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    }))
}

/// `Candidate::seen` as text for [`FREE`].
fn seen_text(c: &Candidate) -> Option<String> {
    c.seen
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
}

/// A row of `sources s` joined with a candidate `c` is free to claim at `$3` (now, ms): not
/// leased, its recorded fetch still the one the claimer read (`c.seen`, `$4`: instants as
/// PostgreSQL reads them, whatever the text's form), past its `Retry-After`.
const FREE: &str = "(s.lease_until IS NULL OR s.lease_until <= $3)
    AND (s.state::json ->> 'last_fetch_at')::timestamptz IS NOT DISTINCT FROM c.seen::timestamptz
    AND (s.retry_not_before IS NULL OR s.retry_not_before <= $3 OR s.url IS DISTINCT FROM c.url)";

impl Store for PostgresStore {
    type PublishGuard = PublishLock;

    async fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
        self.json_of("SELECT state FROM sources WHERE name = $1", source)
            .await
    }

    async fn source_states(&self) -> Result<HashMap<String, SourceState>, StoreError> {
        self.states_as().await
    }

    async fn source_feeds(&self) -> Result<HashMap<String, SourceFeed>, StoreError> {
        self.states_as().await
    }

    async fn source_reuse(&self, source: &str) -> Result<Option<Reuse>, StoreError> {
        self.json_of("SELECT reuse FROM source_reuse WHERE name = $1", source)
            .await
    }

    async fn record_fetch(&self, source: &str, state: &SourceState) -> Result<(), StoreError> {
        self.record_fetches(&[(source.to_string(), state.clone())])
            .await
    }

    async fn record_fetches(&self, fetches: &[(String, SourceState)]) -> Result<(), StoreError> {
        // One row per source, the last state winning (one statement may not touch a row
        // twice), locked in name order (byte order, as `release` and `renew` lock theirs):
        // rows locked in one order by everyone cannot deadlock.
        let mut last: std::collections::BTreeMap<&str, &SourceState> = Default::default();
        for (name, state) in fetches {
            last.insert(name, state);
        }
        let mut names = Vec::with_capacity(last.len());
        let mut jsons = Vec::with_capacity(last.len());
        let mut urls = Vec::with_capacity(last.len());
        let mut retries = Vec::with_capacity(last.len());
        for (name, state) in last {
            names.push(name);
            jsons.push(serde_json::to_string(state).map_err(|e| self.inner.corrupt(e))?);
            urls.push(state.url.as_str());
            retries.push(state.retry_not_before.map(ms));
        }
        // `fetched_at` tells whoever reads the table when the fetch was recorded; claims go by
        // the state's own `last_fetch_at`, not by clocks.
        let fetched_at = ms(Utc::now());
        let (names, jsons, urls, retries) = (&names, &jsons, &urls, &retries);
        self.retrying("record fetches", move || async move {
            let c = self.conn().await?;
            c.execute(
                "INSERT INTO sources (name, state, url, retry_not_before, fetched_at)
                 SELECT name, state, url, retry, $5
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS f(name, state, url, retry)
                 ORDER BY name COLLATE \"C\"
                 ON CONFLICT (name) DO UPDATE SET state = excluded.state, url = excluded.url,
                     retry_not_before = excluded.retry_not_before, fetched_at = excluded.fetched_at",
                &[&names, &jsons, &urls, &retries, &fetched_at],
            )
            .await
            .map_err(|e| self.inner.err(e))
        })
        .await?;
        Ok(())
    }

    /// The items, their signatures and what the document leaves to reuse in one transaction.
    async fn upsert_signed_items(
        &self,
        source: &str,
        items: &[Item],
        signatures: Vec<Option<Vec<u8>>>,
        unchanged: &[String],
        reuse: Option<&Reuse>,
        now: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        let mut signatures = signatures.into_iter();
        let reuse = reuse
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| self.inner.corrupt(e))?;
        // One row per id, the last one winning (as when written one by one).
        let mut ids: Vec<String> = Vec::with_capacity(items.len());
        let mut hashes: Vec<i64> = Vec::with_capacity(items.len());
        let mut dates: Vec<Option<i64>> = Vec::with_capacity(items.len());
        let mut data: Vec<String> = Vec::with_capacity(items.len());
        let mut links: Vec<Option<String>> = Vec::with_capacity(items.len());
        // An id's signature is its last item's, or an earlier one's when that has none.
        let mut sigs: Vec<Option<Vec<u8>>> = Vec::with_capacity(items.len());
        let mut at: HashMap<String, usize> = HashMap::new();
        for it in items {
            let json = serde_json::to_string(it).map_err(|e| self.inner.corrupt(e))?;
            let hash = xxh3_64(json.as_bytes()) as i64;
            let date = it.date().map(|d| d.timestamp());
            let sig: Option<Vec<u8>> = signatures.next().flatten();
            if let Some(&n) = at.get(&it.id) {
                hashes[n] = hash;
                dates[n] = date;
                data[n] = json;
                links[n] = it.link.clone();
                sigs[n] = sig.or(sigs[n].take());
            } else {
                at.insert(it.id.clone(), ids.len());
                ids.push(it.id.clone());
                hashes.push(hash);
                dates.push(date);
                data.push(json);
                links.push(it.link.clone());
                sigs.push(sig);
            }
        }
        let signed = sigs.iter().any(Option::is_some);
        let mut kept: Vec<&str> = unchanged
            .iter()
            .map(String::as_str)
            .filter(|id| !at.contains_key(*id))
            .collect();
        kept.sort_unstable();
        kept.dedup();
        let listed: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .chain(kept.iter().copied())
            .collect();
        let now = now.timestamp();
        let e = |source| self.inner.err(source);
        let (listed, kept) = (&listed, &kept);
        let (ids, hashes, dates, data, links) = (&ids, &hashes, &dates, &data, &links);
        let (reuse, sigs) = (&reuse, &sigs);
        let (new, updated, touched) = self
            .retrying("upsert", move || async move {
                let mut c = self.conn().await?;
                let tx = c.transaction().await.map_err(e)?;
                tx.execute(
                    "UPDATE items SET listed = FALSE, last_seen = $3
                     WHERE source = $1 AND listed AND NOT (id = ANY($2))",
                    &[&source, &listed, &now],
                )
                .await
                .map_err(e)?;
                // The rows are locked from here to the commit: a prune cannot take them meanwhile.
                let touched = if kept.is_empty() {
                    0
                } else {
                    // Locked, not rewritten: an update writes a new version of the whole row.
                    let found = tx
                        .query(
                            "SELECT listed FROM items WHERE source = $1 AND id = ANY($2) FOR UPDATE",
                            &[&source, &kept],
                        )
                        .await
                        .map_err(e)?;
                    found.len()
                };
                if touched < kept.len() {
                    // Dropping the transaction rolls it back: nothing is written.
                    return Err(StoreError::NotStored {
                        name: source.to_string(),
                        missing: kept.len() - touched,
                    });
                }
                let updated = tx
                    .execute(
                        "UPDATE items i SET hash = t.hash, data = t.data, last_seen = $2, listed = TRUE,
                             sort_date = COALESCE(t.date, i.first_seen), signature = NULL, link = t.link
                         FROM unnest($3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[])
                             AS t(id, hash, date, data, link)
                         WHERE i.source = $1 AND i.id = t.id AND i.hash <> t.hash",
                        &[&source, &now, &ids, &hashes, &dates, &data, &links],
                    )
                    .await
                    .map_err(e)?;
                let new = tx
                    .execute(
                        "INSERT INTO items (source, id, hash, first_seen, last_seen, sort_date, listed, data, link)
                         SELECT $1, t.id, t.hash, $2, $2, COALESCE(t.date, $2), TRUE, t.data, t.link
                         FROM unnest($3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[])
                             AS t(id, hash, date, data, link)
                         WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.source = $1 AND i.id = t.id)
                         ON CONFLICT (source, id) DO NOTHING",
                        &[&source, &now, &ids, &hashes, &dates, &data, &links],
                    )
                    .await
                    .map_err(e)?;
                // Items the document lists again (written or said unchanged) that were unlisted.
                tx.execute(
                    "UPDATE items SET last_seen = $2, listed = TRUE
                     WHERE source = $1 AND id = ANY($3) AND NOT listed",
                    &[&source, &now, &listed],
                )
                .await
                .map_err(e)?;
                if signed {
                    // After the update above, which drops a changed item's old signature.
                    tx.execute(
                        "UPDATE items i SET signature = t.signature
                         FROM unnest($2::text[], $3::bytea[]) AS t(id, signature)
                         WHERE i.source = $1 AND i.id = t.id AND t.signature IS NOT NULL",
                        &[&source, &ids, &sigs],
                    )
                    .await
                    .map_err(e)?;
                }
                match reuse {
                    Some(json) => tx.execute(
                        "INSERT INTO source_reuse (name, reuse) VALUES ($1, $2)
                         ON CONFLICT (name) DO UPDATE SET reuse = excluded.reuse
                         WHERE source_reuse.reuse IS DISTINCT FROM excluded.reuse",
                        &[&source, json],
                    )
                    .await,
                    None => {
                        tx.execute("DELETE FROM source_reuse WHERE name = $1", &[&source])
                            .await
                    }
                }
                .map_err(e)?;
                if new + updated > 0 {
                    tx.execute(BUMP_GENERATION, &[]).await.map_err(e)?;
                }
                tx.commit().await.map_err(e)?;
                Ok((new, updated, touched))
            })
            .await?;
        let (new, updated) = (new as usize, updated as usize);
        Ok(UpsertCounts {
            new,
            updated,
            unchanged: ids.len().saturating_sub(new + updated) + touched,
        })
    }

    async fn items(&self, query: &ItemQuery) -> Result<Vec<StoredItem>, StoreError> {
        if query.sources.as_ref().is_some_and(|s| s.is_empty()) {
            return Ok(Vec::new());
        }
        let since = query.since.map_or(i64::MIN, |d| d.timestamp());
        let limit = query.limit.map(|l| l as i64);
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT source, first_seen, sort_date, data FROM items
                 WHERE sort_date >= $1 AND ($2::text[] IS NULL OR source = ANY($2))
                 ORDER BY sort_date DESC, source, id LIMIT $3",
                &[&since, &query.sources, &limit],
            )
            .await
            .map_err(|e| self.inner.err(e))?;
        rows.iter().map(|r| self.stored_item(r)).collect()
    }

    async fn heads(&self, query: &ItemQuery) -> Result<Vec<ItemHead>, StoreError> {
        if query.sources.as_ref().is_some_and(|s| s.is_empty()) {
            return Ok(Vec::new());
        }
        let since = query.since.map_or(i64::MIN, |d| d.timestamp());
        let limit = query.limit.map(|l| l as i64);
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT source, id, first_seen, sort_date, link FROM items
                 WHERE sort_date >= $1 AND ($2::text[] IS NULL OR source = ANY($2))
                 ORDER BY sort_date DESC, source, id LIMIT $3",
                &[&since, &query.sources, &limit],
            )
            .await
            .map_err(|e| self.inner.err(e))?;
        let mut names = SourceNames::default();
        Ok(rows
            .iter()
            .map(|r| ItemHead {
                source: names.get(r.get(0)),
                id: r.get(1),
                first_seen: from_ts(r.get(2)),
                sort_date: from_ts(r.get(3)),
                link_key: r.get::<_, Option<&str>>(4).map(select::link_key),
            })
            .collect())
    }

    async fn items_by_keys(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredItem>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sources: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT i.source, i.first_seen, i.sort_date, i.data
                 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(source, id, n)
                 JOIN items i ON i.source = k.source AND i.id = k.id
                 ORDER BY k.n",
                &[&sources, &ids],
            )
            .await
            .map_err(|e| self.inner.err(e))?;
        rows.iter().map(|r| self.stored_item(r)).collect()
    }

    async fn generation(&self) -> Result<u64, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_one("SELECT value FROM meta WHERE key = 'generation'", &[])
            .await
            .map_err(|e| self.inner.err(e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn cluster_rows(&self) -> Result<Vec<ClusterRow>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT source, id, sort_date, cluster, first_seen, link
                 FROM items ORDER BY sort_date, source, id",
                &[],
            )
            .await
            .map_err(|e| self.inner.err(e))?;
        let mut names = SourceNames::default();
        Ok(rows
            .iter()
            .map(|r| {
                let (source, id): (Arc<str>, &str) = (names.get(r.get(0)), r.get(1));
                let cluster = r
                    .get::<_, Option<&str>>(3)
                    .map(|k| ClusterKey::of(k, &source, id));
                ClusterRow {
                    source,
                    id: id.into(),
                    date: r.get(2),
                    cluster,
                    first_seen: r.get(4),
                    link: ClusterRow::link_of(r.get(5)),
                }
            })
            .collect())
    }

    async fn signatures(&self, keys: ItemKeys) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let (sources, ids): (Vec<&str>, Vec<&str>) = keys.iter().unzip();
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT k.n, i.signature
                 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(source, id, n)
                 JOIN items AS i ON i.source = k.source AND i.id = k.id
                 WHERE i.signature IS NOT NULL",
                &[&sources, &ids],
            )
            .await
            .map_err(|e| self.inner.err(e))?;
        let mut out = vec![None; keys.len()];
        for r in &rows {
            let n: i64 = r.get(0);
            out[n as usize - 1] = r.get(1);
        }
        Ok(out)
    }

    async fn save_cluster_rows(&self, rows: Vec<ClusterUpdate>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // One row per item, as if applied in order: an UPDATE … FROM applies only one of
        // several rows that match the same item.
        type Update<'a> = (&'a str, &'a str, Option<&'a [u8]>, Option<&'a str>);
        let mut merged: Vec<Update<'_>> = Vec::new();
        let mut at = std::collections::HashMap::new();
        for r in &rows {
            let key = (r.source.as_str(), r.id.as_str());
            match at.get(&key) {
                Some(&n) => {
                    let m: &mut Update<'_> = &mut merged[n];
                    m.2 = r.signature.as_deref().or(m.2);
                    m.3 = m.3.or(r.cluster.as_deref());
                }
                None => {
                    at.insert(key, merged.len());
                    merged.push((key.0, key.1, r.signature.as_deref(), r.cluster.as_deref()));
                }
            }
        }
        let sources: Vec<&str> = merged.iter().map(|r| r.0).collect();
        let ids: Vec<&str> = merged.iter().map(|r| r.1).collect();
        let signatures: Vec<Option<&[u8]>> = merged.iter().map(|r| r.2).collect();
        let clusters: Vec<Option<&str>> = merged.iter().map(|r| r.3).collect();
        let (sources, ids) = (&sources, &ids);
        let (signatures, clusters) = (&signatures, &clusters);
        self.retrying("save cluster rows", move || async move {
            let c = self.conn().await?;
            // One statement is one transaction; a key already given is never replaced.
            c.execute(
                "UPDATE items i SET signature = COALESCE(t.signature, i.signature),
                 cluster = COALESCE(i.cluster, t.cluster)
             FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[])
                 AS t(source, id, signature, cluster)
             WHERE i.source = t.source AND i.id = t.id",
                &[&sources, &ids, &signatures, &clusters],
            )
            .await
            .map_err(|e| self.inner.err(e))
        })
        .await?;
        Ok(())
    }

    async fn prune(
        &self,
        unseen_since: DateTime<Utc>,
        keep_per_source: usize,
    ) -> Result<u64, StoreError> {
        let e = |source| self.inner.err(source);
        self.retrying("prune", move || async move {
            let mut c = self.conn().await?;
            let tx = c.transaction().await.map_err(e)?;
            let stale = tx
                .execute(
                    "DELETE FROM items WHERE NOT listed AND last_seen < $1",
                    &[&unseen_since.timestamp()],
                )
                .await
                .map_err(e)?;
            // The generation before this prune's own change: items another instance adds while
            // this runs make it differ from the marker left below, so the next prune looks again.
            let keep = keep_per_source as i64;
            let meta: std::collections::HashMap<String, i64> = tx
                .query(
                    "SELECT key, value FROM meta WHERE key = ANY($1)",
                    &[&["generation", PRUNED_GENERATION, PRUNED_KEEP].as_slice()],
                )
                .await
                .map_err(e)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let generation = meta.get("generation").copied();
            let settled = generation.is_some()
                && meta.get(PRUNED_GENERATION).copied() == generation
                && meta.get(PRUNED_KEEP) == Some(&keep);
            let excess = if settled {
                0
            } else {
                tx.execute(
                    // Only sources over the limit are ranked, and only when items were added
                    // since the last pass or the limit changed.
                    "DELETE FROM items i USING (
                     SELECT source, id FROM (
                         SELECT source, id, row_number() OVER (
                             PARTITION BY source ORDER BY listed DESC, sort_date DESC, id) AS n
                         FROM items
                         WHERE source IN (
                             SELECT source FROM items GROUP BY source HAVING count(*) > $1)
                     ) ranked
                     WHERE n > $1) x
                 WHERE i.source = x.source AND i.id = x.id",
                    &[&keep],
                )
                .await
                .map_err(e)?
            };
            let bumped = stale + excess > 0;
            if bumped {
                tx.execute(BUMP_GENERATION, &[]).await.map_err(e)?;
            }
            if !settled || bumped {
                let left = generation.unwrap_or_default() + i64::from(bumped);
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, $2), ($3, $4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&PRUNED_GENERATION, &left, &PRUNED_KEEP, &keep],
                )
                .await
                .map_err(e)?;
            }
            tx.commit().await.map_err(e)?;
            Ok(stale + excess)
        })
        .await
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Claimed, StoreError> {
        if claim.candidates.is_empty() {
            return Ok(Claimed::default());
        }
        let names: Vec<&str> = claim.candidates.iter().map(|c| c.name.as_str()).collect();
        let urls: Vec<&str> = claim.candidates.iter().map(|c| c.url.as_str()).collect();
        let now = ms(claim.now);
        let until = now.saturating_add(claim.lease.num_milliseconds());
        let e = |source| self.inner.err(source);
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(e)?;
        // Claims one at a time (they take milliseconds): the per-host counts below stay true
        // until this transaction commits its leases.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_KEY])
            .await
            .map_err(e)?;
        // Rows for sources never seen are made here (probing first: a conflicting insert
        // costs far more), and are free; of the others, which are free is read without locks
        // (only the chosen rows get locked below). The busy hosts are asked for meanwhile.
        let free_sql = format!(
            "WITH new AS (
                 INSERT INTO sources (name)
                 SELECT n FROM unnest($1::text[]) AS n
                 WHERE NOT EXISTS (SELECT 1 FROM sources WHERE name = n)
                 ON CONFLICT DO NOTHING
                 RETURNING name)
             SELECT name FROM new
             UNION ALL
             SELECT s.name FROM sources s
             JOIN unnest($1::text[], $2::text[], $4::text[]) AS c(name, url, seen)
               ON s.name = c.name
             WHERE {FREE}"
        );
        let seen: Vec<Option<String>> = claim.candidates.iter().map(seen_text).collect();
        let free_params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&names, &urls, &now, &seen];
        let busy_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&now];
        let (free, busy) = tokio::try_join!(
            tx.query(&free_sql, &free_params),
            tx.query(
                "SELECT host, count(*) FROM sources
                 WHERE lease_until > $1 AND host IS NOT NULL GROUP BY host",
                &busy_params,
            )
        )
        .map_err(e)?;
        let free: std::collections::HashSet<String> = free.iter().map(|r| r.get(0)).collect();
        let mut busy: std::collections::HashMap<String, i64> =
            busy.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut out = Claimed::default();
        let mut hosts: Vec<Option<&str>> = Vec::new();
        for cand in claim.candidates.iter().filter(|c| free.contains(&c.name)) {
            let host_full = cand
                .host
                .as_ref()
                .is_some_and(|h| busy.get(h).copied().unwrap_or(0) >= claim.per_host as i64);
            if host_full || out.claimed.len() >= claim.max {
                out.waiting.push(cand.name.clone());
                continue;
            }
            if let Some(h) = &cand.host {
                *busy.entry(h.clone()).or_default() += 1;
            }
            out.claimed.push(cand.name.clone());
            hosts.push(cand.host.as_deref());
        }
        if !out.claimed.is_empty() {
            // A row another transaction is writing right now (its fetch being recorded) is
            // skipped, not waited for; one that stopped being free is left too.
            let chosen: Vec<&Candidate> = out
                .claimed
                .iter()
                .filter_map(|n| claim.candidates.iter().find(|c| &c.name == n))
                .collect();
            let chosen_urls: Vec<&str> = chosen.iter().map(|c| c.url.as_str()).collect();
            let seen: Vec<Option<String>> = chosen.iter().map(|c| seen_text(c)).collect();
            let leased: std::collections::HashSet<String> = tx
                .query(
                    &format!(
                        "UPDATE sources t SET lease_owner = $5, lease_until = $6, host = l.host
                         FROM (SELECT s.name, c.host FROM sources s
                               JOIN unnest($1::text[], $2::text[], $7::text[], $4::text[])
                                 AS c(name, url, host, seen)
                                 ON s.name = c.name
                               WHERE {FREE}
                               FOR UPDATE OF s SKIP LOCKED) l
                         WHERE t.name = l.name
                         RETURNING t.name"
                    ),
                    &[
                        &out.claimed,
                        &chosen_urls,
                        &now,
                        &seen,
                        &claim.owner,
                        &until,
                        &hosts,
                    ],
                )
                .await
                .map_err(e)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            out.claimed.retain(|name| leased.contains(name));
        }
        tx.commit().await.map_err(e)?;
        Ok(out)
    }

    async fn release(&self, sources: &[String], owner: &str) -> Result<(), StoreError> {
        self.retrying("release leases", move || async move {
            let c = self.conn().await?;
            // In name order, as everywhere source rows are written (see `record_fetches`).
            c.execute(
                "UPDATE sources t SET lease_owner = NULL, lease_until = NULL
             FROM (SELECT name FROM sources WHERE name = ANY($1) AND lease_owner = $2
                   ORDER BY name COLLATE \"C\" FOR UPDATE) l
             WHERE t.name = l.name",
                &[&sources, &owner],
            )
            .await
            .map_err(|e| self.inner.err(e))
        })
        .await?;
        Ok(())
    }

    async fn renew(&self, owner: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.retrying("renew leases", move || async move {
            let c = self.conn().await?;
            // Renewals run on a timer while the same run records and releases sources, so they
            // lock rows in name order too. A row whose lease ended meanwhile is left alone.
            c.execute(
                "UPDATE sources t SET lease_until = $2
             FROM (SELECT name FROM sources WHERE lease_owner = $1
                   ORDER BY name COLLATE \"C\" FOR UPDATE) l
             WHERE t.name = l.name",
                &[&owner, &ms(until)],
            )
            .await
            .map_err(|e| self.inner.err(e))
        })
        .await?;
        Ok(())
    }

    async fn lock_publish(&self) -> Result<PublishLock, StoreError> {
        let client = self.inner.connect().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&PUBLISH_KEY])
            .await
            .map_err(|e| self.inner.err(e))?;
        Ok(PublishLock { _client: client })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A store on the test server (`FEEDLOOM_TEST_POSTGRES`) that is never migrated: the
    /// tests here only run statements that write nothing.
    fn on_test_server() -> Option<PostgresStore> {
        let Ok(url) = std::env::var("FEEDLOOM_TEST_POSTGRES") else {
            assert!(
                std::env::var_os("FEEDLOOM_REQUIRE_POSTGRES").is_none(),
                "FEEDLOOM_REQUIRE_POSTGRES is set but FEEDLOOM_TEST_POSTGRES is not"
            );
            eprintln!("skipped (set FEEDLOOM_TEST_POSTGRES to a server URL)");
            return None;
        };
        Some(PostgresStore::unmigrated(&url, 1).unwrap())
    }

    /// Fails with the server's own error of this SQLSTATE the first `fails` calls.
    async fn attempt(
        store: &PostgresStore,
        calls: &AtomicU32,
        fails: u32,
        code: &str,
    ) -> Result<u32, StoreError> {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= fails {
            let c = store.conn().await?;
            c.batch_execute(&format!(
                "DO $$ BEGIN RAISE EXCEPTION 'attempt {n}' USING ERRCODE = '{code}'; END $$"
            ))
            .await
            .map_err(|e| store.inner.err(e))?;
        }
        Ok(n)
    }

    #[tokio::test]
    async fn transactions_the_server_aborted_run_again_and_others_do_not() {
        let Some(store) = on_test_server() else {
            return;
        };
        let store = &store;
        // deadlock_detected, then serialization_failure: run again until it succeeds.
        for code in ["40P01", "40001"] {
            let calls = &AtomicU32::new(0);
            let got = store
                .retrying("test", move || attempt(store, calls, 2, code))
                .await;
            assert_eq!(got.unwrap(), 3, "{code}");
        }
        // Any other error (unique_violation here) is the caller's at once.
        let calls = &AtomicU32::new(0);
        let got = store
            .retrying("test", move || attempt(store, calls, 1, "23505"))
            .await;
        assert!(matches!(got, Err(StoreError::Postgres { .. })), "{got:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A deadlock every time: given up after RETRIES more tries, with the server's error.
        let calls = &AtomicU32::new(0);
        let got = store
            .retrying("test", move || attempt(store, calls, u32::MAX, "40P01"))
            .await;
        let err = got.unwrap_err();
        assert!(aborted(&err), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), RETRIES + 1);
    }
}
