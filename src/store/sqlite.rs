//! The embedded default: one SQLite file (WAL, `synchronous = NORMAL`), rusqlite with the
//! bundled SQLite. rusqlite over sqlx here: 10,000 upserts in one transaction took 19 ms with
//! rusqlite and 134 ms with sqlx on SQLite (design/STACK.md). Calls run in order on a thread
//! that owns the connection ([`Writer`]), those queued together in one transaction; one
//! source's items are written in one savepoint of it. Bulk reads can run beside it on a
//! read-only connection of their own.
//!
//! Leases ([`Store::claim_due`]) live in memory: one process uses the file at a time (the CLI
//! holds `<database>.lock`), so they only keep a run's own workers apart, with the same rules
//! as the PostgreSQL store (the conformance suite runs on both).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use xxhash_rust::xxh3::xxh3_64;

use super::{BUMP_GENERATION, PRUNED_GENERATION, PRUNED_KEEP, UNFINISHED_BATCHES, from_ts};
use super::{
    BandIndexState, BandState, BandUpdate, Claim, Claimed, ClusterBatch, ClusterKey, ClusterRow,
    ClusterUpdate, ItemHead, ItemKeys, ItemQuery, SourceFeed, SourceState, Store, StoreError,
    StoredItem, UpsertCounts,
};
use crate::model::Item;
use crate::normalize::Reuse;
use crate::select;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_init.sql"),
    include_str!("migrations/sqlite/0002_clusters.sql"),
    include_str!("migrations/sqlite/0003_generation.sql"),
    include_str!("migrations/sqlite/0004_heads.sql"),
    include_str!("migrations/sqlite/0005_cluster_keys.sql"),
    include_str!("migrations/sqlite/0006_drop_items_by_date.sql"),
    include_str!("migrations/sqlite/0007_heads_by_source.sql"),
    include_str!("migrations/sqlite/0008_source_fetches.sql"),
    include_str!("migrations/sqlite/0009_band_index.sql"),
    include_str!("migrations/sqlite/0010_source_reuse.sql"),
];

#[derive(Clone)]
pub struct SqliteStore {
    path: Arc<str>,
    /// The file itself (`path` is its name in messages).
    file: Arc<Path>,
    /// The thread that owns the connection for writes and most reads.
    conn: Arc<Writer>,
    leases: Arc<Mutex<Leases>>,
}

/// In-memory lease book of this process.
#[derive(Default)]
struct Leases {
    /// Source → (owner, until, host).
    held: HashMap<String, (String, DateTime<Utc>, Option<String>)>,
    /// Source → what a claim checks of its stored state, as this store last read or wrote it.
    /// Sources' states are written only through this process (the lock file keeps other runs
    /// out), so a claim needs no read of its own for a source the run has read or written.
    stored: HashMap<String, Stored>,
    /// `stored` holds every stored state (all were read once): a source not in it has none.
    complete: bool,
}

impl Leases {
    /// [`Store::claim_due`] once `stored` holds what is stored of each candidate (a candidate
    /// not in it has no stored state).
    fn claim(&mut self, claim: &Claim) -> Claimed {
        let now = claim.now;
        self.held.retain(|_, (_, until, _)| *until > now);
        let mut busy: HashMap<&str, usize> = HashMap::new();
        for (_, _, host) in self.held.values() {
            if let Some(h) = host {
                *busy.entry(h.as_str()).or_default() += 1;
            }
        }
        let until = now.checked_add_signed(claim.lease).unwrap_or(now);
        let mut out = Claimed::default();
        let mut taken = Vec::new();
        for cand in &claim.candidates {
            if self.held.contains_key(&cand.name) {
                continue;
            }
            let stored = self.stored.get(&cand.name);
            // Fetched since the run read its state: settled.
            if stored.and_then(|st| st.last_fetch_at) != cand.seen {
                continue;
            }
            // A `Retry-After` binds the location that sent it.
            if stored.is_some_and(|st| {
                st.url == cand.url && st.retry_not_before.is_some_and(|t| now < t)
            }) {
                continue;
            }
            let host_full = cand
                .host
                .as_deref()
                .is_some_and(|h| busy.get(h).copied().unwrap_or(0) >= claim.per_host);
            if host_full || out.claimed.len() >= claim.max {
                out.waiting.push(cand.name.clone());
                continue;
            }
            if let Some(h) = &cand.host {
                *busy.entry(h.as_str()).or_default() += 1;
            }
            out.claimed.push(cand.name.clone());
            taken.push(cand);
        }
        for cand in taken {
            self.held.insert(
                cand.name.clone(),
                (claim.owner.clone(), until, cand.host.clone()),
            );
        }
        out
    }
}

/// What [`Store::claim_due`] checks of a source's stored state.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    url: String,
    retry_not_before: Option<DateTime<Utc>>,
    last_fetch_at: Option<DateTime<Utc>>,
}

impl From<&SourceState> for Stored {
    fn from(st: &SourceState) -> Stored {
        Stored {
            url: st.url.clone(),
            retry_not_before: st.retry_not_before,
            last_fetch_at: st.last_fetch_at,
        }
    }
}

fn ts(d: DateTime<Utc>) -> i64 {
    d.timestamp()
}

/// A call on the connection: it runs, and returns what tells its caller the outcome once
/// the outcome is known (`Some(why)`: the commit of its group failed).
type Call = Box<dyn FnOnce(&mut Connection, &str) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
/// What a call does once its writes are committed: with the lease book, the call's result.
type AfterCommit<T> = Box<dyn FnOnce(&Mutex<Leases>) -> Result<T, StoreError> + Send>;

/// The thread that owns the connection and runs the calls on it in order. Calls queued
/// behind one another run in one transaction (a group commit, at most [`GROUP`] calls):
/// each call's own transaction is a savepoint within it, so a call that fails rolls back
/// only its own writes, and every call of a group hears of its outcome after the commit.
///
/// It replaced the connection behind an async mutex with each call sent to tokio's blocking
/// pool. There, in an update of 10,000 sources, the connection was held for 2.9 s of the
/// 4.4 s refresh and locked but idle (a blocking thread waking) for another 0.8 s, while
/// 1,000 upserts waited 7.3 s for it in all. A refresh of 10,000 sources all answering 304,
/// which is bound by such latency, went from 1.44 to 1.28 s (medians of 4, alternating).
struct Writer {
    calls: Option<std::sync::mpsc::Sender<Call>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The most calls one transaction takes.
const GROUP: usize = 64;

impl Writer {
    fn start(conn: Connection, path: Arc<str>) -> Result<Writer, StoreError> {
        let (calls, queue) = std::sync::mpsc::channel::<Call>();
        let thread = std::thread::Builder::new()
            .name("feedloom-sqlite".into())
            .spawn(move || run_calls(conn, &path, &queue))
            .map_err(|e| StoreError::Task(format!("cannot start the database thread: {e}")))?;
        Ok(Writer {
            calls: Some(calls),
            thread: Some(thread),
        })
    }

    fn send(&self, call: Call) -> Result<(), StoreError> {
        self.calls
            .as_ref()
            .and_then(|calls| calls.send(call).ok())
            .ok_or_else(|| StoreError::Task("the database thread has stopped".into()))
    }
}

impl Drop for Writer {
    /// Waits for the calls queued and the connection's close: the close folds the WAL back
    /// into the file and removes it, which must happen before the process exits.
    fn drop(&mut self) {
        drop(self.calls.take());
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

/// The database thread: runs the calls as they come, those queued together in one
/// transaction.
fn run_calls(mut conn: Connection, path: &str, queue: &std::sync::mpsc::Receiver<Call>) {
    while let Ok(first) = queue.recv() {
        let mut calls = vec![first];
        while calls.len() < GROUP
            && let Ok(next) = queue.try_recv()
        {
            calls.push(next);
        }
        let failure =
            |e: &str| format!("database {path}: the commit of a group of writes failed: {e}");
        let mut grouped = calls.len() > 1 && conn.execute_batch("BEGIN").is_ok();
        let mut replies: Vec<Reply> = Vec::with_capacity(calls.len());
        for call in calls {
            if grouped && conn.is_autocommit() {
                // A call's error rolled the group's transaction back (SQLite does on a full
                // disk or an I/O error): nothing of the calls so far is stored, and they hear
                // so. The rest go on in a transaction of their own (outside one, each would
                // commit alone and hear of a failure all the same).
                let why = failure("the transaction was rolled back");
                for reply in replies.drain(..) {
                    answer(reply, Some(&why));
                }
                grouped = conn.execute_batch("BEGIN").is_ok();
            }
            // A panicking call drops its reply's sender, which its caller hears of; any
            // savepoint it held rolled back as it unwound.
            if let Ok(reply) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&mut conn, path)))
            {
                replies.push(reply);
            }
        }
        let failed = if grouped {
            let done = if conn.is_autocommit() {
                Err("the transaction was rolled back".to_string())
            } else {
                conn.execute_batch("COMMIT").map_err(|e| e.to_string())
            };
            match done {
                Ok(()) => None,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Some(failure(&e))
                }
            }
        } else {
            None
        };
        for reply in replies {
            answer(reply, failed.as_deref());
        }
    }
}

/// Runs a call's reply, which does what the call does once committed (such as noting states
/// in the lease book): a panic there fails that call alone, as one in the call does.
fn answer(reply: Reply, failed: Option<&str>) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reply(failed)));
}

impl SqliteStore {
    /// Opens (creating when missing) and migrates a database file.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let name: Arc<str> = path.display().to_string().into();
        let err = |source| StoreError::Sqlite {
            path: name.to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: name.to_string(),
                found: version,
                known,
            });
        }
        for (n, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", n as i64 + 1)
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        // Each source's items are written in a savepoint, whose sub-journal (the pages it
        // changes, as they were) SQLite spills to a temporary file past 64 KiB: a fifth of the
        // writer's time in a cold run was those writes. In memory it is a few hundred KiB per
        // source; the reads that could sort much run on connections of their own. Set after
        // the migrations, whose index builds may sort a whole table.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(err)?;
        let conn = Arc::new(Writer::start(conn, name.clone())?);
        Ok(SqliteStore {
            path: name,
            file: Arc::from(path),
            conn,
            leases: Arc::default(),
        })
    }

    /// Runs `f` with the connection, on its thread, after the calls before it.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &str) -> Result<T, StoreError> + Send + 'static,
    {
        self.with_book(move |c, path| {
            let out = f(c, path)?;
            Ok(Box::new(move |_: &Mutex<Leases>| Ok(out)) as AfterCommit<T>)
        })
        .await
    }

    /// [`SqliteStore::with`] for a call that changes the lease book: `f` gives what to do to
    /// the book, which is done once the call's writes are committed (in a group, after the
    /// group's commit; never when it fails). Reads in a group see the writes of the calls
    /// before them, committed or not: the book must not learn of them before they are.
    async fn with_book<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &str) -> Result<AfterCommit<T>, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let leases = self.leases.clone();
        self.conn.send(Box::new(move |c, path| {
            let out = f(c, path);
            Box::new(move |failed: Option<&str>| {
                let out = match (out, failed) {
                    (Ok(_), Some(why)) => Err(StoreError::Task(why.to_string())),
                    (Ok(then), None) => then(&leases),
                    (Err(e), _) => Err(e),
                };
                // The caller may have gone (its future dropped): nothing to tell then.
                let _ = tx.send(out);
            })
        }))?;
        rx.await.map_err(|_| {
            StoreError::Task(format!(
                "database {}: a call on the connection panicked",
                self.path
            ))
        })?
    }

    /// [`SqliteStore::with`] on a second, read-only connection, for a bulk read to run beside
    /// one on `conn` (WAL lets readers read side by side, each from its own snapshot). Opened
    /// for the call and closed after it: the writable connection must be the last one to
    /// close, which folds the WAL back into the file and removes it (a read-only one cannot,
    /// and a cached reader outliving it left every commit of a run in the WAL alone).
    async fn with_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &str) -> Result<T, StoreError> + Send + 'static,
    {
        self.with_beside(rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY, f)
            .await
    }

    /// Runs `f` on a connection of its own opened with `access` (read-only, or read-write for a
    /// checkpoint), on the blocking pool, closed after it ([`SqliteStore::with_reader`]).
    async fn with_beside<T, F>(&self, access: rusqlite::OpenFlags, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &str) -> Result<T, StoreError> + Send + 'static,
    {
        let (path, file) = (self.path.clone(), self.file.clone());
        tokio::task::spawn_blocking(move || {
            let e = |source| sql(&path, source);
            let mut c = Connection::open_with_flags(
                &*file,
                access | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(e)?;
            c.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(e)?;
            f(&mut c, &path)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Stores sources' states (name, its row, what a claim checks of it) in one transaction.
    async fn write_states(&self, rows: Vec<(String, StateRow, Stored)>) -> Result<(), StoreError> {
        self.with_book(move |c, path| {
            let e = |source| sql(path, source);
            let tx = c.savepoint().map_err(e)?;
            {
                // The state only where it changed: a fetch answered 304 leaves it as it was.
                let mut put = tx
                    .prepare_cached(
                        "INSERT INTO sources (name, state) VALUES (?1, ?2)
                         ON CONFLICT (name) DO UPDATE SET state = excluded.state
                         WHERE state IS NOT excluded.state",
                    )
                    .map_err(e)?;
                let mut fetched = tx
                    .prepare_cached(
                        "INSERT INTO source_fetches (name, fetched_at, succeeded_at, status)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (name) DO UPDATE SET fetched_at = excluded.fetched_at,
                             succeeded_at = excluded.succeeded_at, status = excluded.status",
                    )
                    .map_err(e)?;
                for (name, row, _) in &rows {
                    put.execute(params![name, row.json]).map_err(e)?;
                    fetched
                        .execute(params![name, row.fetched_at, row.succeeded_at, row.status])
                        .map_err(e)?;
                }
            }
            tx.commit().map_err(e)?;
            // Noted on the connection's thread after the commit, so in the order of the writes
            // and reads, and only once they are stored.
            Ok(Box::new(move |leases: &Mutex<Leases>| {
                let mut book = lock_leases(leases);
                for (name, _, stored) in rows {
                    book.stored.insert(name, stored);
                }
                Ok(())
            }) as AfterCommit<()>)
        })
        .await
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        self.with(|c, path| {
            c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .map_err(|source| sql(path, source))
        })
        .await
    }
}

/// The arguments of an [`item_query`].
struct ItemArgs {
    since: i64,
    sources: String,
    limit: i64,
}

impl ItemArgs {
    fn of(query: &ItemQuery) -> ItemArgs {
        ItemArgs {
            since: query.since.map_or(i64::MIN, ts),
            // A list of strings always serialises.
            sources: serde_json::to_string(query.sources.as_deref().unwrap_or_default())
                .unwrap_or_default(),
            limit: query.limit.map_or(-1, |l| l as i64),
        }
    }

    fn params(&self) -> [&dyn rusqlite::ToSql; 3] {
        [&self.since, &self.sources, &self.limit]
    }
}

/// The statement listing `columns` of the items `query` asks for, newest first, from the
/// table `from` (with its index hint); `None` when it asks for no source at all.
fn item_query(columns: &str, from: &str, query: &ItemQuery) -> Option<(String, ItemArgs)> {
    let mut text = format!("SELECT {columns} FROM {from} WHERE sort_date >= ?1");
    if let Some(sources) = &query.sources {
        if sources.is_empty() {
            return None;
        }
        text.push_str(" AND source IN (SELECT value FROM json_each(?2))");
    }
    text.push_str(" ORDER BY sort_date DESC, source, id LIMIT ?3");
    Some((text, ItemArgs::of(query)))
}

/// A row of `source, first_seen, sort_date, data`.
fn stored_item(r: &rusqlite::Row<'_>, path: &str) -> Result<StoredItem, StoreError> {
    let e = |source| sql(path, source);
    let data: String = r.get(3).map_err(e)?;
    Ok(StoredItem {
        source: r.get(0).map_err(e)?,
        first_seen: from_ts(r.get(1).map_err(e)?),
        sort_date: from_ts(r.get(2).map_err(e)?),
        item: serde_json::from_str(&data).map_err(|er| corrupt(path, er))?,
    })
}

fn sql(path: &str, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_string(),
        source,
    }
}

fn corrupt(path: &str, source: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        path: path.to_string(),
        source,
    }
}

/// One source's cluster keys by id, as [`Store::cluster_rows`] reads them (in id order), with
/// the ids in one buffer: kept from source to source, so that reading them allocates nothing
/// but the keys of joined items.
#[derive(Default)]
struct SourceKeys {
    ids: String,
    /// Where each id ends in `ids`, and its key until taken.
    keys: Vec<(usize, Option<ClusterKey>)>,
}

impl SourceKeys {
    fn clear(&mut self) {
        self.ids.clear();
        self.keys.clear();
    }

    /// Adds the key of `id`, which sorts after every id added since [`SourceKeys::clear`].
    fn push(&mut self, id: &str, key: ClusterKey) {
        self.ids.push_str(id);
        self.keys.push((self.ids.len(), Some(key)));
    }

    /// The key of `id`, once.
    fn take(&mut self, id: &str) -> Option<ClusterKey> {
        let (mut lo, mut hi) = (0, self.keys.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let start = if mid == 0 { 0 } else { self.keys[mid - 1].0 };
            match self.ids[start..self.keys[mid].0].cmp(id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.keys[mid].1.take(),
            }
        }
        None
    }
}

/// Puts rows read from the items_heads index by source (`ORDER BY source`: byte order, as
/// SQLite orders text) in date order: oldest first, or `newest_first`; then by source and id,
/// as bytes. `key` gives a row's date, shared source name and id. A source's rank is its run's
/// place, so the sort compares numbers (ids only within a source and date), and the rows are
/// moved once, in place.
fn in_date_order<T>(
    rows: &mut [T],
    newest_first: bool,
    key: impl Fn(&T) -> (i64, &Arc<str>, &str),
) {
    const DONE: u32 = u32::MAX;
    assert!(rows.len() < DONE as usize, "fewer than 2^32 rows");
    // (date, source rank, position); `!t` (= -t - 1) orders dates newest first.
    let mut rank = 0u32;
    let mut last: Option<&Arc<str>> = None;
    let mut order: Vec<(i64, u32, u32)> = rows
        .iter()
        .enumerate()
        .map(|(n, r)| {
            let (date, source, _) = key(r);
            if let Some(l) = last
                && !Arc::ptr_eq(l, source)
                && l != source
            {
                debug_assert!(l.as_bytes() < source.as_bytes(), "rows by source");
                rank += 1;
            }
            last = Some(source);
            (if newest_first { !date } else { date }, rank, n as u32)
        })
        .collect();
    order.sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| key(&rows[a.2 as usize]).2.cmp(key(&rows[b.2 as usize]).2))
    });
    // Row `order[n].2` goes to place `n`: each cycle of the permutation is walked once.
    for start in 0..order.len() {
        let mut at = start;
        while order[at].2 != DONE {
            let from = order[at].2 as usize;
            order[at].2 = DONE;
            if from == start {
                break;
            }
            rows.swap(at, from);
            at = from;
        }
    }
}

/// A source's state as stored: the JSON of all but what every fetch changes, which is in
/// `source_fetches` (schema version 8) unless the JSON holds it.
struct StateRow {
    json: String,
    fetched_at: Option<i64>,
    succeeded_at: Option<i64>,
    status: Option<u16>,
}

/// The columns of [`StateRow`] read with a source's name (`sources` joined with its fetch row).
/// Every source's state row (a macro, so that [`STATE_ROW`] is built from it at compile time).
macro_rules! state_rows {
    () => {
        "SELECT s.name, s.state, f.fetched_at, f.succeeded_at, f.status
     FROM sources s LEFT JOIN source_fetches f ON f.name = s.name"
    };
}
const STATE_ROWS: &str = state_rows!();
/// One source's state row.
const STATE_ROW: &str = concat!(state_rows!(), " WHERE s.name = ?1");

impl StateRow {
    /// The row of a source's state, split: the fetch times that fit in nanoseconds go to
    /// `source_fetches` and out of the JSON.
    fn of(state: &SourceState) -> Result<StateRow, serde_json::Error> {
        let nanos = |t: Option<DateTime<Utc>>| t.and_then(|t| t.timestamp_nanos_opt());
        let (fetched_at, succeeded_at) = (nanos(state.last_fetch_at), nanos(state.last_success_at));
        let mut rest = state.clone();
        if fetched_at.is_some() {
            rest.last_fetch_at = None;
        }
        if succeeded_at.is_some() {
            rest.last_success_at = None;
        }
        rest.last_status = None;
        Ok(StateRow {
            json: serde_json::to_string(&rest)?,
            fetched_at,
            succeeded_at,
            status: state.last_status,
        })
    }

    /// Reads the columns after the name of a [`STATE_ROWS`] row.
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<StateRow> {
        Ok(StateRow {
            json: r.get(1)?,
            fetched_at: r.get(2)?,
            succeeded_at: r.get(3)?,
            status: r.get(4)?,
        })
    }

    /// When the source was last fetched, if the JSON does not hold it.
    fn fetched_at(&self) -> Option<DateTime<Utc>> {
        self.fetched_at.map(DateTime::from_timestamp_nanos)
    }

    /// When the source was last fetched successfully, if the JSON does not hold it.
    fn succeeded_at(&self) -> Option<DateTime<Utc>> {
        self.succeeded_at.map(DateTime::from_timestamp_nanos)
    }

    /// The state again: the JSON's, with the fetch times it does not hold.
    fn state(&self, path: &str) -> Result<SourceState, StoreError> {
        let mut st: SourceState = serde_json::from_str(&self.json).map_err(|e| corrupt(path, e))?;
        st.last_fetch_at = st.last_fetch_at.or(self.fetched_at());
        st.last_success_at = st.last_success_at.or(self.succeeded_at());
        st.last_status = st.last_status.or(self.status);
        Ok(st)
    }
}

/// Every source's [`StateRow`], read as `each` makes of it, by source name.
fn state_rows<T>(
    c: &Connection,
    path: &str,
    mut each: impl FnMut(StateRow) -> Result<T, StoreError>,
) -> Result<HashMap<String, T>, StoreError> {
    let mut stmt = c.prepare_cached(STATE_ROWS).map_err(|e| sql(path, e))?;
    let mut rows = stmt.query([]).map_err(|e| sql(path, e))?;
    let mut out = HashMap::new();
    while let Some(r) = rows.next().map_err(|e| sql(path, e))? {
        let name: String = r.get(0).map_err(|e| sql(path, e))?;
        let row = StateRow::read(r).map_err(|e| sql(path, e))?;
        out.insert(name, each(row)?);
    }
    Ok(out)
}

/// The stored state of `source`, if any.
fn read_state(c: &Connection, path: &str, source: &str) -> Result<Option<SourceState>, StoreError> {
    let row = c
        .prepare_cached(STATE_ROW)
        .and_then(|mut st| st.query_row([source], StateRow::read).optional())
        .map_err(|e| sql(path, e))?;
    row.map(|r| r.state(path)).transpose()
}

/// Stores what a source's document leaves to reuse (JSON; `None`: nothing), unless it is stored
/// already: most documents that change keep most of their items.
fn write_reuse(c: &Connection, source: &str, reuse: Option<&str>) -> rusqlite::Result<()> {
    match reuse {
        Some(json) => c
            .prepare_cached(
                "INSERT INTO source_reuse (name, reuse) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET reuse = excluded.reuse
                 WHERE reuse IS NOT excluded.reuse",
            )?
            .execute(params![source, json])?,
        None => c
            .prepare_cached("DELETE FROM source_reuse WHERE name = ?1")?
            .execute([source])?,
    };
    Ok(())
}

fn lock_leases(leases: &Mutex<Leases>) -> std::sync::MutexGuard<'_, Leases> {
    // Poisoned only by a panic between two map operations, each of which leaves it whole.
    leases.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store for SqliteStore {
    /// The run lock file already keeps other processes out.
    type PublishGuard = ();
    async fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
        let source = source.to_string();
        self.with_book(move |c, path| {
            let state = read_state(c, path, &source)?;
            Ok(Box::new(move |leases: &Mutex<Leases>| {
                if let Some(st) = &state {
                    lock_leases(leases).stored.insert(source, Stored::from(st));
                }
                Ok(state)
            }) as AfterCommit<_>)
        })
        .await
    }

    async fn source_states(&self) -> Result<HashMap<String, SourceState>, StoreError> {
        self.with_book(move |c, path| {
            let out = state_rows(c, path, |row| row.state(path))?;
            // Noted before any write after the read: the calls after it in a group note
            // theirs after it.
            Ok(Box::new(move |leases: &Mutex<Leases>| {
                let mut book = lock_leases(leases);
                book.stored = out
                    .iter()
                    .map(|(n, st)| (n.clone(), Stored::from(st)))
                    .collect();
                book.complete = true;
                Ok(out)
            }) as AfterCommit<_>)
        })
        .await
    }

    /// Not noted in the lease book, which notes whole states.
    async fn source_feeds(&self) -> Result<HashMap<String, SourceFeed>, StoreError> {
        self.with(move |c, path| {
            state_rows(c, path, |row| {
                let mut feed: SourceFeed =
                    serde_json::from_str(&row.json).map_err(|e| corrupt(path, e))?;
                feed.last_fetch_at = feed.last_fetch_at.or(row.fetched_at());
                Ok(feed)
            })
        })
        .await
    }

    async fn source_reuse(&self, source: &str) -> Result<Option<Reuse>, StoreError> {
        let source = source.to_string();
        self.with(move |c, path| {
            let json: Option<String> = c
                .prepare_cached("SELECT reuse FROM source_reuse WHERE name = ?1")
                .and_then(|mut st| st.query_row([&source], |r| r.get(0)).optional())
                .map_err(|e| sql(path, e))?;
            json.map(|j| serde_json::from_str(&j).map_err(|e| corrupt(path, e)))
                .transpose()
        })
        .await
    }

    async fn record_fetch(&self, source: &str, state: &SourceState) -> Result<(), StoreError> {
        self.record_fetches(&[(source.to_string(), state.clone())])
            .await
    }

    async fn record_fetches(&self, fetches: &[(String, SourceState)]) -> Result<(), StoreError> {
        let rows = fetches
            .iter()
            .map(|(name, state)| Ok((name.clone(), StateRow::of(state)?, Stored::from(state))))
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(|e| corrupt(&self.path, e))?;
        self.write_states(rows).await
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
        let source = source.to_string();
        let reuse = reuse
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| corrupt(&self.path, e))?;
        let written: std::collections::HashSet<&str> =
            items.iter().map(|it| it.id.as_str()).collect();
        let mut unchanged: Vec<String> = unchanged
            .iter()
            .filter(|id| !written.contains(id.as_str()))
            .cloned()
            .collect();
        unchanged.sort_unstable();
        unchanged.dedup();
        let mut rows = Vec::with_capacity(items.len());
        for it in items {
            let json = serde_json::to_string(it).map_err(|e| corrupt(&self.path, e))?;
            let hash = xxh3_64(json.as_bytes()) as i64;
            rows.push((it.id.clone(), it.date(), hash, json, it.link.clone()));
        }
        self.with(move |c, path| {
            let e = |source| sql(path, source);
            let tx = c.savepoint().map_err(e)?;
            let mut counts = UpsertCounts::default();
            {
                // What is stored of the source (columns before `data`: no overflow page is
                // read). A row is rewritten only when it changes: an unchanged listed item
                // costs nothing (SQLite rewrites a whole row, JSON and all, for any update).
                let mut stored: HashMap<String, (i64, i64, bool)> = HashMap::new();
                {
                    let mut list = tx
                        .prepare_cached(
                            "SELECT id, hash, first_seen, listed FROM items WHERE source = ?1",
                        )
                        .map_err(e)?;
                    let mut rows = list.query(params![source]).map_err(e)?;
                    while let Some(r) = rows.next().map_err(e)? {
                        stored.insert(
                            r.get(0).map_err(e)?,
                            (r.get(1).map_err(e)?, r.get(2).map_err(e)?, r.get(3).map_err(e)?),
                        );
                    }
                }
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO items (source, id, hash, first_seen, last_seen, sort_date, listed, data, link)
                         VALUES (?1, ?2, ?3, ?4, ?4, ?5, 1, ?6, ?7)",
                    )
                    .map_err(e)?;
                // Listed items are never pruned, so only a change of listing stamps last_seen:
                // retention of an item the document dropped counts from now.
                let mut listing = tx
                    .prepare_cached(
                        "UPDATE items SET listed = ?3, last_seen = ?4 WHERE source = ?1 AND id = ?2",
                    )
                    .map_err(e)?;
                let mut update = tx
                    .prepare_cached(
                        "UPDATE items SET hash = ?3, last_seen = ?4, sort_date = ?5, listed = 1, data = ?6,
                         link = ?7 WHERE source = ?1 AND id = ?2",
                    )
                    .map_err(e)?;
                let now = ts(now);
                let mut present: std::collections::HashSet<&str> =
                    std::collections::HashSet::with_capacity(rows.len() + unchanged.len());
                for (id, date, hash, json, link) in &rows {
                    present.insert(id.as_str());
                    match stored.get(id) {
                        None => {
                            let sort = date.map_or(now, ts);
                            insert
                                .execute(params![source, id, hash, now, sort, json, link])
                                .map_err(e)?;
                            counts.new += 1;
                            // A document listing an id twice: the later one updates it.
                            stored.insert(id.clone(), (*hash, now, true));
                        }
                        Some(&(h, first_seen, listed)) if h == *hash => {
                            if !listed {
                                listing.execute(params![source, id, true, now]).map_err(e)?;
                                stored.insert(id.clone(), (h, first_seen, true));
                            }
                            counts.unchanged += 1;
                        }
                        Some(&(_, first_seen, _)) => {
                            let sort = date.map_or(first_seen, ts);
                            update
                                .execute(params![source, id, hash, now, sort, json, link])
                                .map_err(e)?;
                            counts.updated += 1;
                            stored.insert(id.clone(), (*hash, first_seen, true));
                        }
                    }
                }
                let mut missing = 0;
                for id in &unchanged {
                    present.insert(id.as_str());
                    match stored.get(id) {
                        None => missing += 1,
                        Some(&(_, _, listed)) => {
                            if !listed {
                                listing.execute(params![source, id, true, now]).map_err(e)?;
                            }
                            counts.unchanged += 1;
                        }
                    }
                }
                if missing > 0 {
                    // Dropping the transaction rolls it back: nothing is written.
                    return Err(StoreError::NotStored {
                        name: source.clone(),
                        missing,
                    });
                }
                for (id, &(_, _, listed)) in &stored {
                    if listed && !present.contains(id.as_str()) {
                        listing.execute(params![source, id, false, now]).map_err(e)?;
                    }
                }
            }
            if signatures.iter().any(Option::is_some) {
                // The items are written: their signatures go in the same transaction (after the
                // trigger that drops a changed item's old one).
                let mut sign = tx
                    .prepare_cached(
                        "INSERT INTO signatures (source, id, signature) VALUES (?1, ?2, ?3)
                         ON CONFLICT (source, id) DO UPDATE SET signature = excluded.signature",
                    )
                    .map_err(e)?;
                for ((id, ..), sig) in rows.iter().zip(&signatures) {
                    if let Some(sig) = sig {
                        sign.execute(params![source, id, sig]).map_err(e)?;
                    }
                }
            }
            write_reuse(&tx, &source, reuse.as_deref()).map_err(e)?;
            if counts.new + counts.updated > 0 {
                tx.execute(BUMP_GENERATION, []).map_err(e)?;
            }
            tx.commit().map_err(e)?;
            Ok(counts)
        })
        .await
    }

    async fn items(&self, query: &ItemQuery) -> Result<Vec<StoredItem>, StoreError> {
        let query = query.clone();
        self.with(move |c, path| {
            let e = |source| sql(path, source);
            let Some((sql_text, args)) =
                item_query("source, first_seen, sort_date, data", "items", &query)
            else {
                return Ok(Vec::new());
            };
            let mut stmt = c.prepare_cached(&sql_text).map_err(e)?;
            let mut rows = stmt.query(args.params()).map_err(e)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(e)? {
                out.push(stored_item(r, path)?);
            }
            Ok(out)
        })
        .await
    }

    async fn heads(&self, query: &ItemQuery) -> Result<Vec<ItemHead>, StoreError> {
        let query = query.clone();
        self.with(move |c, path| {
            let e = |source| sql(path, source);
            // Every column is in the items_heads index: no item row is read. The index is by
            // source, so the heads are put in date order here and a limit is applied after:
            // every matching head is read (no caller limits heads; publishing wants them all).
            let mut text = String::from(
                "SELECT source, id, first_seen, sort_date, link FROM items INDEXED BY items_heads
                 WHERE sort_date >= ?1",
            );
            if let Some(sources) = &query.sources {
                if sources.is_empty() {
                    return Ok(Vec::new());
                }
                text.push_str(" AND source IN (SELECT value FROM json_each(?2))");
            }
            text.push_str(" ORDER BY source");
            let args = ItemArgs::of(&query);
            let bound = if query.sources.is_some() { 2 } else { 1 };
            let mut stmt = c.prepare_cached(&text).map_err(e)?;
            // The heads come by source: one shared name a source.
            let mut source: Option<Arc<str>> = None;
            let rows = stmt
                .query_map(&args.params()[..bound], |r| {
                    let name = r.get_ref(0)?.as_str()?;
                    let source = match &source {
                        Some(s) if &**s == name => s.clone(),
                        _ => source.insert(name.into()).clone(),
                    };
                    Ok(ItemHead {
                        source,
                        id: r.get(1)?,
                        first_seen: from_ts(r.get(2)?),
                        sort_date: from_ts(r.get(3)?),
                        link_key: r.get_ref(4)?.as_str_or_null()?.map(select::link_key),
                    })
                })
                .map_err(e)?;
            let mut heads = rows.collect::<Result<Vec<_>, _>>().map_err(e)?;
            drop(stmt);
            in_date_order(&mut heads, true, |h| {
                (h.sort_date.timestamp(), &h.source, &h.id)
            });
            if let Some(limit) = query.limit {
                heads.truncate(limit);
            }
            Ok(heads)
        })
        .await
    }

    async fn items_by_keys(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<StoredItem>, StoreError> {
        let keys = keys.to_vec();
        self.with(move |c, path| {
            let e = |source| sql(path, source);
            let mut stmt = c
                .prepare_cached(
                    "SELECT source, first_seen, sort_date, data FROM items WHERE source = ?1 AND id = ?2",
                )
                .map_err(e)?;
            let mut out = Vec::with_capacity(keys.len());
            for (source, id) in &keys {
                let mut rows = stmt.query(params![source, id]).map_err(e)?;
                if let Some(r) = rows.next().map_err(e)? {
                    out.push(stored_item(r, path)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn generation(&self) -> Result<u64, StoreError> {
        self.with(|c, path| {
            c.query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(|e| sql(path, e))
        })
        .await
    }

    async fn cluster_rows(&self) -> Result<Vec<ClusterRow>, StoreError> {
        // Two halves of the sources, read side by side on the two connections (the read is
        // most of clustering's, one core's work otherwise), each in source order: together,
        // in source order. Each half is read from its own snapshot.
        // Each half makes room for every item before its first row (the items' count, SQLite's
        // quick whole-table one, 20 ms at 600,000 items): grown by doubling, the rows' buffer
        // would be moved and copied several times, and under jemalloc each buffer left behind
        // stays resident until it decays, at the peak of a first run. Room not written to is
        // address space, not memory; the lower half's takes the upper half without a copy.
        let (middle, items): (Option<String>, i64) = self
            .with(|c, path| {
                c.query_row(
                    "SELECT (SELECT name FROM sources ORDER BY name
                             LIMIT 1 OFFSET (SELECT count(*) / 2 FROM sources)),
                            (SELECT count(*) FROM items)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(|source| sql(path, source))
            })
            .await?;
        let room = usize::try_from(items).unwrap_or_default();
        let mut out = match middle {
            None => {
                self.with(move |c, path| read_cluster_rows(c, path, Half::All, room))
                    .await?
            }
            Some(middle) => {
                let upper = middle.clone();
                let (mut lower, upper) = tokio::try_join!(
                    self.with(move |c, path| {
                        read_cluster_rows(c, path, Half::Below(middle), room)
                    }),
                    self.with_reader(move |c, path| {
                        read_cluster_rows(c, path, Half::From(upper), room)
                    }),
                )?;
                // Into the room the lower half made for both (no copy of the lower half).
                lower.extend(upper);
                lower
            }
        };
        tokio::task::spawn_blocking(move || {
            in_date_order(&mut out, false, |r| (r.date, &r.source, &r.id));
            out
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))
    }

    async fn signatures(&self, keys: ItemKeys) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.with(move |c, path| {
            let e = |source| sql(path, source);
            // Read in the signatures table's own order, so each of its pages is read once (in
            // date order, 60k lookups took 3x as long, mostly in page reads): the keys' range is
            // scanned, as one statement, while it is mostly keys asked for; once it has passed
            // three times as many others, the rest are looked up one by one (a sparse set of
            // keys in a large table).
            let mut order: Vec<usize> = (0..keys.len()).collect();
            order.sort_by(|a, b| keys.get(*a).cmp(&keys.get(*b)));
            let mut out = vec![None; keys.len()];
            let tx = c.savepoint().map_err(e)?;
            let next = scan_signatures(&tx, &keys, &order, &mut out).map_err(e)?;
            if next < order.len() {
                let mut get = tx
                    .prepare_cached(
                        "SELECT signature FROM signatures WHERE source = ?1 AND id = ?2",
                    )
                    .map_err(e)?;
                for n in &order[next..] {
                    let (source, id) = keys.get(*n);
                    out[*n] = get
                        .query_row(params![source, id], |row| row.get(0))
                        .optional()
                        .map_err(e)?;
                }
            }
            drop(tx);
            Ok(out)
        })
        .await
    }

    async fn checkpoint(&self) -> Result<(), StoreError> {
        self.with_beside(rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE, |c, path| {
            // PASSIVE: copies the frames every reader's snapshot already holds (all of them
            // when no write is under way) and waits for nobody. This connection is not the
            // last one, so its close leaves the WAL to the store's.
            let (busy, log, copied): (i64, i64, i64) = c
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(|source| sql(path, source))?;
            if busy != 0 || copied < log {
                tracing::debug!(path, busy, log, copied, "checkpoint left frames in the WAL");
            }
            Ok(())
        })
        .await
    }

    async fn save_cluster_rows(&self, mut rows: Vec<ClusterUpdate>) -> Result<(), StoreError> {
        self.with(move |c, path| {
            let tx = c.savepoint().map_err(|source| sql(path, source))?;
            if save_cluster_rows_in(&tx, path, &mut rows)? {
                save_band_update(&tx, path, None)?;
            }
            tx.commit().map_err(|source| sql(path, source))
        })
        .await
    }

    async fn band_state(&self, log_limit: usize) -> Result<Option<BandState>, StoreError> {
        let base = self.file.to_path_buf();
        if base.as_os_str().is_empty() || base.as_os_str() == ":memory:" {
            return Ok(None);
        }
        self.with(move |c, path| {
            let e = |source| sql(path, source);
            let tx = c.savepoint().map_err(e)?;
            let last_seq: i64 = tx
                .query_row(
                    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'band_log'), 0)",
                    [],
                    |r| r.get(0),
                )
                .map_err(e)?;
            let state: Option<(i64, i64, i64)> = tx
                .query_row(
                    "SELECT token, since, covered FROM band_state WHERE one = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(e)?;
            let index = match state {
                Some((token, since, covered)) => {
                    let mut read = tx
                        .prepare_cached(
                            "SELECT source, id FROM band_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                        )
                        .map_err(e)?;
                    let logged: Vec<(String, String)> = read
                        .query_map(params![covered, log_limit as i64 + 1], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                        .map_err(e)?
                        .collect::<Result<_, _>>()
                        .map_err(e)?;
                    let delta_bytes: i64 = tx
                        .query_row(
                            "SELECT COALESCE(SUM(length(entries)), 0) FROM band_delta",
                            [],
                            |r| r.get(0),
                        )
                        .map_err(e)?;
                    Some(BandIndexState {
                        token: token as u64,
                        since: DateTime::from_timestamp(since, 0).unwrap_or_default(),
                        logged: (logged.len() <= log_limit).then_some(logged),
                        delta_bytes: delta_bytes as u64,
                    })
                }
                None => None,
            };
            Ok(Some(BandState {
                base,
                last_seq,
                index,
            }))
        })
        .await
    }

    async fn band_deltas(&self, band: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.with(move |c, path| {
            let e = |source| sql(path, source);
            let mut read = c
                .prepare_cached("SELECT entries FROM band_delta WHERE band = ?1 ORDER BY seq")
                .map_err(e)?;
            read.query_map([band as i64], |r| r.get(0))
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)
        })
        .await
    }

    async fn save_cluster_batches(
        &self,
        mut batches: tokio::sync::mpsc::Receiver<ClusterBatch>,
    ) -> Result<(), StoreError> {
        self.with(move |c, path| {
            let tx = c.savepoint().map_err(|source| sql(path, source))?;
            // The sender makes each batch while the one before is written; without `Done`,
            // the savepoint rolls back as it is dropped.
            let mut keyed = false;
            loop {
                match batches.blocking_recv() {
                    Some(ClusterBatch::Rows(mut rows)) => {
                        keyed |= save_cluster_rows_in(&tx, path, &mut rows)?;
                    }
                    Some(ClusterBatch::Done(update)) => {
                        if keyed || update.is_some() {
                            save_band_update(&tx, path, update)?;
                        }
                        break;
                    }
                    None => return Err(StoreError::Task(UNFINISHED_BATCHES.into())),
                }
            }
            tx.commit().map_err(|source| sql(path, source))
        })
        .await
    }

    async fn prune(
        &self,
        unseen_since: DateTime<Utc>,
        keep_per_source: usize,
    ) -> Result<u64, StoreError> {
        self.with(move |c, path| {
            let e = |source| sql(path, source);
            let tx = c.savepoint().map_err(e)?;
            let stale = tx
                .execute(
                    "DELETE FROM items WHERE listed = 0 AND last_seen < ?1",
                    [ts(unseen_since)],
                )
                .map_err(e)?;
            let meta = |key: &str| {
                tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
            };
            let generation = meta("generation").map_err(e)?;
            let keep = keep_per_source as i64;
            let settled = generation.is_some()
                && meta(PRUNED_GENERATION).map_err(e)? == generation
                && meta(PRUNED_KEEP).map_err(e)? == Some(keep);
            // Only sources over the limit are ranked (counted from the (source, sort_date)
            // index, without reading a row), and only when items were added since the last
            // pass or the limit changed.
            let over: Vec<String> = if settled {
                Vec::new()
            } else {
                tx.prepare("SELECT source FROM items GROUP BY source HAVING count(*) > ?1")
                    .and_then(|mut s| s.query_map([keep], |r| r.get(0))?.collect::<Result<_, _>>())
                    .map_err(e)?
            };
            let mut excess = 0;
            for source in &over {
                excess += tx
                    .execute(
                        "DELETE FROM items WHERE rowid IN (
                            SELECT rowid FROM (
                                SELECT rowid, row_number() OVER (
                                    ORDER BY listed DESC, sort_date DESC, id) AS n
                                FROM items WHERE source = ?2)
                            WHERE n > ?1)",
                        params![keep_per_source as i64, source],
                    )
                    .map_err(e)?;
            }
            let bumped = stale + excess > 0;
            if bumped {
                tx.execute(BUMP_GENERATION, []).map_err(e)?;
            }
            if !settled || bumped {
                let left = generation.unwrap_or_default() + i64::from(bumped);
                let mut put = tx
                    .prepare_cached(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .map_err(e)?;
                put.execute(params![PRUNED_GENERATION, left]).map_err(e)?;
                put.execute(params![PRUNED_KEEP, keep]).map_err(e)?;
            }
            tx.commit().map_err(e)?;
            Ok((stale + excess) as u64)
        })
        .await
    }

    /// Decided on the lease book alone when it knows every candidate's stored state (always,
    /// once the run has read all states): a claim then does not queue for the connection
    /// behind the writes. Waiting there paced the refresh: in an update of 10,000 sources a
    /// claim was in flight in 84% of the refresh loop's turns and no claimed source was ever
    /// waiting for a worker.
    async fn claim_due(&self, claim: &Claim) -> Result<Claimed, StoreError> {
        {
            let mut book = lock_leases(&self.leases);
            if book.complete
                || claim
                    .candidates
                    .iter()
                    .all(|c| book.stored.contains_key(&c.name))
            {
                return Ok(book.claim(claim));
            }
        }
        let claim = claim.clone();
        let leases = self.leases.clone();
        self.with_book(move |c, path| {
            // The states the book lacks are read here and noted, and the claim decided, once
            // the group is committed: a claim in a group whose commit fails leases nothing.
            let wanted: Vec<String> = {
                let book = lock_leases(&leases);
                claim
                    .candidates
                    .iter()
                    .filter(|cand| {
                        !book.complete
                            && !book.stored.contains_key(&cand.name)
                            && !book.held.contains_key(&cand.name)
                    })
                    .map(|cand| cand.name.clone())
                    .collect()
            };
            let mut read = Vec::new();
            for name in wanted {
                if let Some(st) = read_state(c, path, &name)? {
                    read.push((name, Stored::from(&st)));
                }
            }
            Ok(Box::new(move |leases: &Mutex<Leases>| {
                let mut book = lock_leases(leases);
                for (name, stored) in read {
                    book.stored.entry(name).or_insert(stored);
                }
                Ok(book.claim(&claim))
            }) as AfterCommit<_>)
        })
        .await
    }

    async fn release(&self, sources: &[String], owner: &str) -> Result<(), StoreError> {
        let mut book = lock_leases(&self.leases);
        for source in sources {
            if book.held.get(source).is_some_and(|(o, _, _)| o == owner) {
                book.held.remove(source);
            }
        }
        Ok(())
    }

    async fn renew(&self, owner: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        for (o, t, _) in lock_leases(&self.leases).held.values_mut() {
            if o == owner {
                *t = until;
            }
        }
        Ok(())
    }

    async fn lock_publish(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Which sources' rows [`read_cluster_rows`] reads.
enum Half {
    All,
    /// Those named before this (as bytes).
    Below(String),
    /// This one and those after it.
    From(String),
}

/// The [`ClusterRow`]s of `half` of the sources, by source (see [`Store::cluster_rows`]), in a
/// buffer with room for `room` rows.
fn read_cluster_rows(
    c: &mut Connection,
    path: &str,
    half: Half,
    room: usize,
) -> Result<Vec<ClusterRow>, StoreError> {
    let e = |source| sql(path, source);
    let (filter, bound) = match half {
        Half::All => ("1", String::new()),
        Half::Below(name) => ("source < ?1", name),
        Half::From(name) => ("source >= ?1", name),
    };
    let bind = |stmt: &mut rusqlite::Statement<'_>| -> rusqlite::Result<()> {
        if stmt.parameter_count() == 1 {
            stmt.raw_bind_parameter(1, &bound)?;
        }
        Ok(())
    };
    // The rows come from the items_heads index and the narrow cluster_keys table: no item row
    // is read. Both lead with the source and are read in its order, side by side: a source's
    // keys are gathered as its rows begin and found by id (a join seeks the key table once per
    // item, and a map of every item's key was 600,000 entries at N = 10,000 sources).
    let tx = c.savepoint().map_err(e)?;
    let mut keys_stmt = tx
        .prepare_cached(&format!(
            "SELECT source, id, cluster FROM cluster_keys WHERE {filter} ORDER BY source, id"
        ))
        .map_err(e)?;
    bind(&mut keys_stmt).map_err(e)?;
    let mut keys_rows = keys_stmt.raw_query();
    let mut key_row = keys_rows.next().map_err(e)?;
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT source, id, sort_date, first_seen, link FROM items INDEXED BY items_heads
             WHERE {filter} ORDER BY source"
        ))
        .map_err(e)?;
    bind(&mut stmt).map_err(e)?;
    let mut rows = stmt.raw_query();
    fn text<'r>(r: &'r rusqlite::Row<'_>, n: usize, path: &str) -> Result<&'r str, StoreError> {
        r.get_ref(n)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(|source| sql(path, source))
    }
    let mut out = Vec::with_capacity(room);
    // The rows come by source: one shared name a source.
    let mut source: Option<Arc<str>> = None;
    let mut keys = SourceKeys::default();
    while let Some(r) = rows.next().map_err(e)? {
        let name = text(r, 0, path)?;
        let source = match &source {
            Some(s) if &**s == name => s.clone(),
            _ => {
                keys.clear();
                while let Some(k) = key_row {
                    match text(k, 0, path)?.cmp(name) {
                        std::cmp::Ordering::Less => {}
                        std::cmp::Ordering::Equal => {
                            let id = text(k, 1, path)?;
                            keys.push(id, ClusterKey::of(text(k, 2, path)?, name, id));
                        }
                        std::cmp::Ordering::Greater => break,
                    }
                    key_row = keys_rows.next().map_err(e)?;
                }
                source.insert(name.into()).clone()
            }
        };
        let id = text(r, 1, path)?;
        out.push(ClusterRow {
            source,
            cluster: keys.take(id),
            id: id.into(),
            date: r.get(2).map_err(e)?,
            first_seen: r.get(3).map_err(e)?,
            link: ClusterRow::link_of(
                r.get_ref(4)
                    .and_then(|v| Ok(v.as_str_or_null()?))
                    .map_err(e)?,
            ),
        });
    }
    drop(rows);
    drop(keys_rows);
    Ok(out)
}

/// Brings the band index's state to `update` within the caller's transaction, or, without one
/// (cluster keys were saved, and the index not brought up to date with them), stops vouching
/// for it. An update of an index other than the one stored (its token) does the same.
fn save_band_update(
    c: &Connection,
    path: &str,
    update: Option<BandUpdate>,
) -> Result<(), StoreError> {
    let e = |source| sql(path, source);
    // With no index vouched for, the log serves nothing (the next build covers every change
    // before it): it goes too, so that it does not grow while no index is kept.
    let Some(u) = update else {
        c.execute_batch("DELETE FROM band_state; DELETE FROM band_log;")
            .map_err(e)?;
        return Ok(());
    };
    let token = u.token as i64;
    // Whole seconds, rounded up: it covers every date from `u.since` on, so from these.
    let since = u.since.timestamp() + i64::from(u.since.timestamp_subsec_nanos() > 0);
    if u.built {
        c.execute("DELETE FROM band_delta", []).map_err(e)?;
        c.execute(
            "INSERT INTO band_state (one, token, since, covered) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (one) DO UPDATE SET
                 token = excluded.token, since = excluded.since, covered = excluded.covered",
            params![token, since, u.covered],
        )
        .map_err(e)?;
    } else {
        let same = c
            .execute(
                "UPDATE band_state SET covered = ?2, since = ?3 WHERE one = 1 AND token = ?1",
                params![token, u.covered, since],
            )
            .map_err(e)?;
        if same == 0 {
            return save_band_update(c, path, None);
        }
    }
    let mut add = c
        .prepare_cached("INSERT INTO band_delta (band, entries) VALUES (?1, ?2)")
        .map_err(e)?;
    for (band, entries) in &u.delta {
        if !entries.is_empty() {
            add.execute(params![*band as i64, entries]).map_err(e)?;
        }
    }
    c.execute("DELETE FROM band_log WHERE seq <= ?1", [u.covered])
        .map_err(e)?;
    Ok(())
}

/// Saves signatures and cluster keys ([`Store::save_cluster_rows`]) within the caller's
/// transaction. In key order, the tables' pages are each visited once (stable: the rows of one
/// item keep their order). Returns whether it was handed a cluster key.
fn save_cluster_rows_in(
    c: &Connection,
    path: &str,
    rows: &mut [ClusterUpdate],
) -> Result<bool, StoreError> {
    let e = |source| sql(path, source);
    rows.sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
    // Only items still stored get a signature; a key, once given, stays.
    let mut sign = c
        .prepare_cached(
            "INSERT INTO signatures (source, id, signature)
             SELECT source, id, ?3 FROM items WHERE source = ?1 AND id = ?2
             ON CONFLICT (source, id) DO UPDATE SET signature = excluded.signature",
        )
        .map_err(e)?;
    let mut key = c
        .prepare_cached(
            "INSERT INTO cluster_keys (source, id, cluster)
             SELECT source, id, ?3 FROM items WHERE source = ?1 AND id = ?2
             ON CONFLICT (source, id) DO NOTHING",
        )
        .map_err(e)?;
    for r in rows.iter() {
        if let Some(sig) = &r.signature {
            sign.execute(params![r.source, r.id, sig]).map_err(e)?;
        }
        if let Some(k) = &r.cluster {
            key.execute(params![r.source, r.id, k]).map_err(e)?;
        }
    }
    Ok(rows.iter().any(|r| r.cluster.is_some()))
}

/// Scans the signatures of `keys` (in key order: `order`) into `out` while the scan passes
/// mostly keys asked for; returns how many of `order` it settled (found, or known to have no
/// signature).
fn scan_signatures(
    c: &Connection,
    keys: &ItemKeys,
    order: &[usize],
    out: &mut [Option<Vec<u8>>],
) -> rusqlite::Result<usize> {
    let (Some(first), Some(last)) = (order.first(), order.last()) else {
        return Ok(0);
    };
    let (first, last) = (keys.get(*first), keys.get(*last));
    let mut scan = c.prepare_cached(
        "SELECT source, id, signature FROM signatures
         WHERE (source, id) >= (?1, ?2) AND (source, id) <= (?3, ?4)
         ORDER BY source, id",
    )?;
    let mut rows = scan.query(params![first.0, first.1, last.0, last.1])?;
    let (mut next, mut skipped) = (0, 0);
    while next < order.len() {
        if skipped > 3 * order.len() {
            return Ok(next);
        }
        let Some(row) = rows.next()? else {
            // Past the last signature in the range: the keys left have none.
            return Ok(order.len());
        };
        let here = (row.get_ref(0)?.as_str()?, row.get_ref(1)?.as_str()?);
        // Keys before this row have no signature.
        while next < order.len() && keys.get(order[next]) < here {
            next += 1;
        }
        let start = next;
        while next < order.len() && keys.get(order[next]) == here {
            // (A key asked for twice is answered twice.)
            out[order[next]] = Some(row.get(2)?);
            next += 1;
        }
        if next == start {
            skipped += 1;
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SourceNames;
    use std::collections::BTreeSet;

    /// Holds the connection (a call waiting on a channel) until `go` is sent, so the calls
    /// made meanwhile queue behind it and run as one group. (Waits for it on this thread: for
    /// a runtime with worker threads.)
    async fn hold(
        store: &SqliteStore,
    ) -> (tokio::task::JoinHandle<()>, std::sync::mpsc::Sender<()>) {
        let (started, wait) = std::sync::mpsc::channel();
        let (go, held) = std::sync::mpsc::channel::<()>();
        let store = store.clone();
        let slow = tokio::spawn(async move {
            store
                .with(move |_, _| {
                    started.send(()).unwrap();
                    held.recv().unwrap();
                    Ok(())
                })
                .await
                .unwrap()
        });
        wait.recv().unwrap();
        (slow, go)
    }

    /// A group whose transaction a call rolls back: the calls before it hear that nothing of
    /// theirs is stored and the lease book does not learn of their writes; the calls after
    /// it go on in a transaction of their own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_rolled_back_notes_nothing_and_the_calls_after_it_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("feedloom.db")).unwrap();
        let now = Utc::now();
        let record = |name: &str| {
            let store = store.clone();
            let state = SourceState {
                url: format!("https://h/{name}.xml"),
                last_fetch_at: Some(now),
                ..SourceState::default()
            };
            let name = name.to_string();
            tokio::spawn(async move { store.record_fetches(&[(name, state)]).await })
        };
        let rollback = || {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .with(|c, path| c.execute_batch("ROLLBACK").map_err(|e| sql(path, e)))
                    .await
            })
        };
        let pause = || tokio::time::sleep(std::time::Duration::from_millis(100));
        let (slow, go) = hold(&store).await;
        // Queued in this order: a write, the call that rolls the group back, another write.
        let before = record("a");
        pause().await;
        let rolled = rollback();
        pause().await;
        let after = record("b");
        pause().await;
        go.send(()).unwrap();
        slow.await.unwrap();
        let before = before.await.unwrap();
        assert!(
            matches!(&before, Err(StoreError::Task(m)) if m.contains("rolled back")),
            "{before:?}"
        );
        assert!(rolled.await.unwrap().is_err());
        after.await.unwrap().unwrap();
        assert_eq!(store.source_state("a").await.unwrap(), None);
        assert!(store.source_state("b").await.unwrap().is_some());
        // "a" was not noted as fetched: a claim that read no state for it takes it. ("b"
        // was fetched since: it is left.)
        let cand = |name: &str| crate::store::Candidate {
            name: name.into(),
            host: None,
            url: format!("https://h/{name}.xml"),
            seen: None,
        };
        let claim = Claim {
            owner: "o".into(),
            candidates: vec![cand("a"), cand("b")],
            now,
            lease: chrono::Duration::seconds(60),
            max: 10,
            per_host: 10,
        };
        assert_eq!(
            store.claim_due(&claim).await.unwrap().claimed,
            vec!["a".to_string()]
        );
    }

    /// An item titled "item {id}".
    fn titled(id: &str, link: Option<String>, published: Option<DateTime<Utc>>) -> Item {
        Item {
            id: id.into(),
            title: format!("item {id}"),
            link,
            published,
            updated: None,
            authors: Vec::new(),
            summary: None,
            content_html: None,
            categories: Vec::new(),
            language: None,
            enclosures: Vec::new(),
            image: None,
        }
    }

    /// Calls queued behind a slow one run as one group: a call that fails there (items said
    /// to be stored unchanged that are not) writes nothing, the others are stored and hear
    /// of it only once the group is committed, and a panicking call fails alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_queued_together_commit_together_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feedloom.db");
        let store = SqliteStore::open(&path).unwrap();
        let now = Utc::now();
        // Holds the connection until the others are queued behind it.
        let (slow, go) = hold(&store).await;
        let mut calls = Vec::new();
        for n in 0..6 {
            let store = store.clone();
            calls.push(tokio::spawn(async move {
                let source = format!("s{n}");
                let item = titled(&format!("{n}"), None, None);
                // s3 says an item is stored unchanged that is not.
                let unchanged: Vec<String> = if n == 3 {
                    vec!["gone".into()]
                } else {
                    Vec::new()
                };
                store.upsert_items(&source, &[item], &unchanged, now).await
            }));
        }
        let panics = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .with(|c, path| -> Result<(), StoreError> {
                        let sp = c.savepoint().map_err(|e| sql(path, e))?;
                        sp.execute("DELETE FROM items", [])
                            .map_err(|e| sql(path, e))?;
                        panic!("a call that panics")
                    })
                    .await
            })
        };
        // Let the calls reach the queue, then free the connection.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        go.send(()).unwrap();
        slow.await.unwrap();
        let mut outcomes = Vec::new();
        for call in calls {
            outcomes.push(call.await.unwrap().map(|c| c.new));
        }
        for (n, out) in outcomes.iter().enumerate() {
            match n {
                3 => assert!(
                    matches!(out, Err(StoreError::NotStored { missing: 1, .. })),
                    "{out:?}"
                ),
                _ => assert_eq!(out.as_ref().ok(), Some(&1), "s{n}"),
            }
        }
        let panicked = panics.await.unwrap();
        assert!(
            matches!(&panicked, Err(StoreError::Task(m)) if m.contains("panicked")),
            "{panicked:?}"
        );
        // The connection goes on after the panic, and the group was committed without the
        // failed and the panicking calls' writes.
        let stored: BTreeSet<String> = store
            .items(&ItemQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|it| it.source)
            .collect();
        assert_eq!(
            stored,
            ["s0", "s1", "s2", "s4", "s5"].map(String::from).into()
        );
        drop(store);
        // The last handle waited for the connection to close: the WAL is folded back.
        assert!(!dir.path().join("feedloom.db-wal").exists());
    }

    /// What every fetch changes is written apart from the rest of a source's state (version
    /// 8): a fetch that changes only that leaves the state's row as it was, and the state reads
    /// back whole. A state written before version 8 reads as it was; a time that does not fit
    /// in nanoseconds stays in the JSON.
    #[tokio::test]
    async fn a_fetch_changing_only_its_times_leaves_the_state_row_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feedloom.db");
        let at = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
        let old = SourceState {
            url: "https://example.org/feed".into(),
            last_fetch_at: at("2026-11-01T10:00:00.123456789Z"),
            last_success_at: at("2026-10-31T10:00:00Z"),
            last_status: Some(200),
            error_count: 1,
            feed: Some(crate::model::FeedMeta {
                title: Some("A".into()),
                link: None,
                language: Some("en".into()),
                id: None,
                format: crate::model::SourceFormat::Rss2,
                encoding: "utf-8".into(),
                encoding_from: "xml-declaration".into(),
                updated: None,
                ttl_minutes: None,
            }),
            ..SourceState::default()
        };
        {
            let c = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..7] {
                c.execute_batch(sql).unwrap();
            }
            c.pragma_update(None, "user_version", 7).unwrap();
            c.execute(
                "INSERT INTO sources (name, state) VALUES ('a', ?1)",
                [serde_json::to_string(&old).unwrap()],
            )
            .unwrap();
            // Counts the rewrites of state rows.
            c.execute_batch(
                "INSERT INTO meta (key, value) VALUES ('test_rewrites', 0);
                 CREATE TRIGGER count_rewrites AFTER UPDATE ON sources BEGIN
                     UPDATE meta SET value = value + 1 WHERE key = 'test_rewrites';
                 END;",
            )
            .unwrap();
        }
        let rewrites = || {
            Connection::open(&path)
                .unwrap()
                .query_row(
                    "SELECT value FROM meta WHERE key = 'test_rewrites'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
        };
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.source_state("a").await.unwrap(), Some(old.clone()));
        let record = |st: &SourceState| {
            let store = store.clone();
            let st = st.clone();
            async move { store.record_fetch("a", &st).await.unwrap() }
        };
        // The first write moves the times out of the JSON: a rewrite.
        let mut st = SourceState {
            last_fetch_at: at("2026-11-02T10:00:00Z"),
            last_success_at: at("2026-11-02T10:00:00Z"),
            last_status: Some(304),
            error_count: 0,
            ..old.clone()
        };
        record(&st).await;
        assert_eq!(rewrites(), 1);
        assert_eq!(store.source_state("a").await.unwrap(), Some(st.clone()));
        // Fetches changing only their times and status: no rewrite.
        for n in 3..6 {
            st.last_fetch_at = at(&format!("2026-11-0{n}T10:00:00.5Z"));
            st.last_success_at = st.last_fetch_at;
            st.last_status = Some(200 + n);
            record(&st).await;
        }
        assert_eq!(rewrites(), 1);
        assert_eq!(store.source_state("a").await.unwrap(), Some(st.clone()));
        let feeds = store.source_feeds().await.unwrap();
        assert_eq!(feeds["a"].last_fetch_at, st.last_fetch_at);
        // Anything else changing: a rewrite.
        st.error_count = 2;
        st.last_success_at = None;
        record(&st).await;
        assert_eq!(rewrites(), 2);
        // A time beyond what nanoseconds hold is kept in the JSON.
        st.last_fetch_at = at("2400-01-01T00:00:00Z");
        record(&st).await;
        assert_eq!(rewrites(), 3);
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        let all = store.source_states().await.unwrap();
        assert_eq!(all.get("a"), Some(&st));
        let feeds = store.source_feeds().await.unwrap();
        let want = SourceFeed {
            last_fetch_at: st.last_fetch_at,
            feed: st.feed.clone(),
        };
        assert_eq!(feeds.get("a"), Some(&want));
    }

    /// Version 10 moves what each source's last document left to reuse out of its state into
    /// `source_reuse`, and leaves a state that is not JSON as it was.
    #[tokio::test]
    async fn the_reuse_moves_out_of_the_states_into_a_table_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feedloom.db");
        let reuse =
            serde_json::json!({"context": 18_000_000_000_000_000_000u64, "guids": "AQIDBAUGBwg="});
        let state = |name: &str| serde_json::json!({"url": format!("https://example.org/{name}"), "error_count": 1});
        let mut with = state("a");
        with["normalized"] = reuse.clone();
        {
            let c = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..9] {
                c.execute_batch(sql).unwrap();
            }
            c.pragma_update(None, "user_version", 9).unwrap();
            let mut put = c
                .prepare("INSERT INTO sources (name, state) VALUES (?1, ?2)")
                .unwrap();
            put.execute(["a", &with.to_string()]).unwrap();
            put.execute(["b", &state("b").to_string()]).unwrap();
            put.execute(["c", "{not json"]).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let a = store.source_reuse("a").await.unwrap().unwrap();
        assert_eq!(serde_json::to_value(&a).unwrap(), reuse);
        assert_eq!(a.context, 18_000_000_000_000_000_000);
        assert_eq!(store.source_reuse("b").await.unwrap(), None);
        let json = |name: &str| -> String {
            Connection::open(&path)
                .unwrap()
                .query_row("SELECT state FROM sources WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        let read = |name: &str| serde_json::from_str::<serde_json::Value>(&json(name)).unwrap();
        assert_eq!(read("a"), state("a"));
        assert_eq!(read("b"), state("b"));
        assert_eq!(json("c"), "{not json");
        // The damaged state is still named when read.
        let err = store.source_state("c").await.unwrap_err().to_string();
        assert!(err.contains("unreadable"), "{err}");
        assert_eq!(
            store.source_state("a").await.unwrap().unwrap().error_count,
            1
        );
    }

    /// A database written by schema 3 gets its items' links on opening (version 4), and its
    /// signatures and cluster keys move to tables of their own (versions 4 and 5).
    #[tokio::test]
    async fn versions_4_and_5_migrate_stored_items() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..3] {
                c.execute_batch(sql).unwrap();
            }
            c.pragma_update(None, "user_version", 3).unwrap();
            for (id, link) in [("1", Some("https://example.org/1")), ("2", None)] {
                let item = titled(id, link.map(String::from), None);
                let data = serde_json::to_string(&item).unwrap();
                c.execute(
                    "INSERT INTO items (source, id, hash, first_seen, last_seen, sort_date, data)
                     VALUES ('a', ?1, 0, 5, 5, ?2, ?3)",
                    params![id, id.parse::<i64>().unwrap(), data],
                )
                .unwrap();
            }
        }
        {
            let c = Connection::open(&path).unwrap();
            c.execute(
                "UPDATE items SET signature = x'0102', cluster = 'k1' WHERE id = '1'",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let heads = store.heads(&ItemQuery::default()).await.unwrap();
        let links: Vec<_> = heads.iter().map(|h| (h.id.as_str(), h.link_key)).collect();
        let key = Some(select::link_key("https://example.org/1"));
        assert_eq!(links, [("2", None), ("1", key)]);
        let rows = store.cluster_rows().await.unwrap();
        assert_eq!(rows[0].link_key(), key);
        // The signature and the cluster key moved to tables of their own, and go with their
        // item.
        let sigs = store
            .signatures([("a", "1")].into_iter().collect())
            .await
            .unwrap();
        assert_eq!(sigs, [Some(vec![1u8, 2])]);
        let k1 = Some(ClusterKey::Joined("k1".into()));
        assert_eq!(rows[0].cluster, k1);
        assert_eq!(rows[1].cluster, None);
        // A key, once given, stays.
        store
            .save_cluster_rows(vec![ClusterUpdate {
                source: "a".into(),
                id: "1".into(),
                cluster: Some("k2".into()),
                ..ClusterUpdate::default()
            }])
            .await
            .unwrap();
        let rows = store.cluster_rows().await.unwrap();
        assert_eq!(rows[0].cluster, k1);
        let c = Connection::open(&path).unwrap();
        c.execute("DELETE FROM items WHERE id = '1'", []).unwrap();
        for table in ["signatures", "cluster_keys"] {
            let left: i64 = c
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(left, 0, "{table}");
        }
    }

    /// The band index's log names items with a cluster key that changed, or whose signature
    /// was replaced by other bytes or dropped, and no other; saving keys without bringing the index up to date
    /// drops the state that vouches for it, and an update of another index than the stored one
    /// does too.
    #[tokio::test]
    async fn the_band_log_names_keyed_items_that_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).unwrap();
        let now = Utc::now();
        let items = [titled("a", None, None), titled("b", None, None)];
        store.upsert_items("s", &items, &[], now).await.unwrap();
        let logged = || -> Vec<String> {
            let c = Connection::open(&path).unwrap();
            let mut q = c.prepare("SELECT id FROM band_log ORDER BY seq").unwrap();
            q.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let update = |id: &str, sig: Option<u8>, key: Option<&str>| ClusterUpdate {
            source: "s".into(),
            id: id.into(),
            signature: sig.map(|b| vec![b; 4]),
            cluster: key.map(str::to_owned),
        };
        // Signed before it has a key: nothing to log.
        store
            .save_cluster_rows(vec![update("a", Some(1), None)])
            .await
            .unwrap();
        assert!(logged().is_empty());
        let state = |token: u64| BandUpdate {
            token,
            built: true,
            since: now,
            delta: vec![(3, vec![0; 8])],
            covered: 0,
        };
        let (send, batches) = tokio::sync::mpsc::channel(2);
        send.send(ClusterBatch::Rows(vec![update("a", None, Some("k"))]))
            .await
            .unwrap();
        send.send(ClusterBatch::Done(Some(state(9)))).await.unwrap();
        store.save_cluster_batches(batches).await.unwrap();
        let read = store.band_state(10).await.unwrap().unwrap();
        let index = read.index.expect("vouched for");
        assert_eq!((index.token, index.delta_bytes), (9, 8));
        assert_eq!(store.band_deltas(3).await.unwrap(), [vec![0u8; 8]]);
        // Signed again with the same values (not logged), with others (logged), then changed
        // while keyed (logged, and its signature dropped: logged).
        for sig in [1, 2] {
            store
                .save_cluster_rows(vec![update("a", Some(sig), None)])
                .await
                .unwrap();
        }
        let mut changed = items[0].clone();
        changed.title = "changed".into();
        store.upsert_items("s", &[changed], &[], now).await.unwrap();
        assert_eq!(logged(), ["a", "a", "a"]);
        let read = store.band_state(1).await.unwrap().unwrap();
        assert_eq!(read.index.unwrap().logged, None, "more than the limit");
        // Deleted: not logged.
        Connection::open(&path)
            .unwrap()
            .execute("DELETE FROM items WHERE id = 'a'", [])
            .unwrap();
        assert_eq!(logged(), ["a", "a", "a"]);
        // An update of another index stops the store vouching for one.
        let (send, batches) = tokio::sync::mpsc::channel(2);
        let mut other = state(10);
        other.built = false;
        send.send(ClusterBatch::Done(Some(other))).await.unwrap();
        store.save_cluster_batches(batches).await.unwrap();
        assert_eq!(store.band_state(10).await.unwrap().unwrap().index, None);
        assert!(logged().is_empty(), "no log kept without an index");
        // Keys saved without an update: the same.
        let (send, batches) = tokio::sync::mpsc::channel(2);
        send.send(ClusterBatch::Done(Some(state(11))))
            .await
            .unwrap();
        store.save_cluster_batches(batches).await.unwrap();
        assert!(store.band_state(10).await.unwrap().unwrap().index.is_some());
        store
            .save_cluster_rows(vec![update("b", None, Some("k"))])
            .await
            .unwrap();
        assert_eq!(store.band_state(10).await.unwrap().unwrap().index, None);
    }

    /// A checkpoint puts what the WAL holds into the database file itself while the store
    /// stays open: a connection that reads the file alone (`immutable`, which ignores the WAL)
    /// sees the items only after it.
    #[tokio::test]
    async fn a_checkpoint_puts_the_writes_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).unwrap();
        let items = [titled("a", None, None), titled("b", None, None)];
        store
            .upsert_items("s", &items, &[], Utc::now())
            .await
            .unwrap();
        let in_file = || -> Option<i64> {
            let c = Connection::open_with_flags(
                format!("file:{}?immutable=1", path.display()),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )
            .unwrap();
            c.query_row("SELECT count(*) FROM items", [], |r| r.get(0))
                .ok()
        };
        assert_ne!(in_file(), Some(2), "the writes are still in the WAL only");
        store.checkpoint().await.unwrap();
        assert_eq!(in_file(), Some(2));
        // The store goes on as before.
        store
            .upsert_items("s", &[titled("c", None, None)], &[], Utc::now())
            .await
            .unwrap();
        store.checkpoint().await.unwrap();
        assert_eq!(in_file(), Some(3));
    }

    /// Clustering's rows, read as two halves of the sources on the two connections, are the
    /// rows read as one, in the same order: sources on both sides of the middle one, the
    /// middle one itself, sources without a recorded state (on either side), keys or none.
    #[tokio::test]
    async fn cluster_rows_in_halves_are_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let item = |id: &str, day: u32| {
            titled(
                id,
                day.is_multiple_of(2)
                    .then(|| format!("https://example.org/{id}")),
                Some(format!("2025-05-{day:02}T00:00:00Z").parse().unwrap()),
            )
        };
        let now = Utc::now();
        // "" and "z" have no state; the middle of the recorded ones is "c".
        for (n, source) in ["", "a", "b", "c", "c2", "d", "z"].iter().enumerate() {
            if !["", "z"].contains(source) {
                store
                    .record_fetch(source, &SourceState::default())
                    .await
                    .unwrap();
            }
            let items: Vec<Item> = (0..5)
                .map(|i| item(&format!("{}", (i * 7 + n) % 10), 1 + ((i + n) % 3) as u32))
                .collect();
            store.upsert_items(source, &items, &[], now).await.unwrap();
            store
                .save_cluster_rows(
                    items
                        .iter()
                        .step_by(2)
                        .map(|it| ClusterUpdate {
                            source: source.to_string(),
                            id: it.id.clone(),
                            cluster: Some(format!("k{source}{}", it.id)),
                            ..ClusterUpdate::default()
                        })
                        .collect(),
                )
                .await
                .unwrap();
        }
        let halves = store.cluster_rows().await.unwrap();
        let mut whole = store
            .with(|c, path| read_cluster_rows(c, path, Half::All, 0))
            .await
            .unwrap();
        in_date_order(&mut whole, false, |r| (r.date, &r.source, &r.id));
        assert_eq!(whole.len(), 35);
        assert_eq!(halves, whole);
        let below = store
            .with(|c, path| read_cluster_rows(c, path, Half::Below("c".into()), 0))
            .await
            .unwrap();
        let names: BTreeSet<&str> = below.iter().map(|r| &*r.source).collect();
        assert_eq!(names, BTreeSet::from(["", "a", "b"]));
        // Read in halves (the sources table is not empty), and the writable connection still
        // closes last: the file alone holds every commit once the store is gone.
        assert!(
            store
                .with(|c, p| {
                    c.query_row("SELECT count(*) FROM sources", [], |r| r.get::<_, i64>(0))
                        .map_err(|e| sql(p, e))
                })
                .await
                .unwrap()
                > 0
        );
        drop(store);
        assert!(!dir.path().join("t.db-wal").exists(), "WAL left behind");
        let alone = dir.path().join("alone.db");
        std::fs::copy(dir.path().join("t.db"), &alone).unwrap();
        let c = Connection::open(&alone).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 35);
    }

    /// A source's keys are found by id (prefixes and the empty id too), each once, and a
    /// cleared table finds none of the last source's.
    #[test]
    fn source_keys_find_each_id_once() {
        let mut keys = SourceKeys::default();
        let ids = ["", "1", "10", "2", "a b", "é"];
        for id in ids {
            keys.push(id, ClusterKey::Joined(format!("k{id}")));
        }
        assert_eq!(keys.take("3"), None);
        assert_eq!(keys.take("1 "), None);
        for id in ids.iter().rev() {
            assert_eq!(
                keys.take(id),
                Some(ClusterKey::Joined(format!("k{id}"))),
                "{id:?}"
            );
            assert_eq!(keys.take(id), None, "{id:?}");
        }
        keys.clear();
        keys.push("b", ClusterKey::Own);
        assert_eq!(keys.take("1"), None);
        assert_eq!(keys.take("b"), Some(ClusterKey::Own));
    }

    proptest::proptest! {
        /// Rows by source end up as a sort by (date, source, id) would put them, oldest or
        /// newest first, whatever order they have within a source and however they tie.
        #[test]
        fn in_date_order_sorts_by_date_then_bytes(
            keys in proptest::collection::vec(
                (
                    0i64..4,
                    proptest::sample::select(vec!["", "a", "a\0", "ab", "B", "é", "\u{10000}"]),
                    proptest::sample::select(vec!["", "1", "10", "2", "x y", "é"]),
                ),
                0..40,
            ),
            newest_first in proptest::bool::ANY,
        ) {
            // Shared names (as the store reads them) for some rows, names of their own for others:
            // a source's rank must not depend on which.
            let mut names = SourceNames::default();
            let mut rows: Vec<(DateTime<Utc>, Arc<str>, String)> = keys
                .iter()
                .enumerate()
                .map(|(n, (t, s, i))| {
                    let name = if n % 3 == 0 { Arc::from(*s) } else { names.get(s) };
                    (from_ts(*t), name, i.to_string())
                })
                .collect();
            // As the store reads them: by source.
            rows.sort_by(|a, b| a.1.as_bytes().cmp(b.1.as_bytes()));
            let mut want = rows.clone();
            want.sort_by(|a, b| {
                let date = if newest_first { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) };
                date.then_with(|| (a.1.as_bytes(), a.2.as_bytes()).cmp(&(b.1.as_bytes(), b.2.as_bytes())))
            });
            in_date_order(&mut rows, newest_first, |r| (r.0.timestamp(), &r.1, &r.2));
            proptest::prop_assert_eq!(rows, want);
        }
    }
}
