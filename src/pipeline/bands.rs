//! Keeping the band index (src/cluster/bands.rs) and using it to find the old members a
//! clustering run must compare new ones with (docs/band-index.md).
//!
//! What a run must find is every member with a cluster key, in the window, that holds a band
//! value some new member holds (its latest holders are what `assign` pairs with). The index
//! names a superset of them, if it is complete for the window: every keyed member dated from its
//! `since` on has its entries in the file or the store's delta entries, or is named in the
//! store's log (its signature or date changed after the index was last brought up to date).
//! The run keeps it so: it adds the entries of the members it keys and of the logged ones, and
//! saves them, and the log covered, in the transaction that saves the keys. Whatever it cannot
//! vouch for makes it read every old signature instead, as it does without an index, and build
//! a new file from them.

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use crate::cluster::{self, Signature, bands};
use crate::store::{BandState, BandUpdate, ClusterRow, Store, StoreError};

use super::Ctx;

/// Bytes of delta entries a file is kept with, however small (8,192 members' entries): past
/// that and an eighth of the file, a new file is built.
const DELTA_FLOOR: u64 = 4 << 20;

/// Entries a lookup may find, at least (also at most two for each old member), before the run
/// reads every old signature instead.
fn min_budget() -> usize {
    #[cfg(test)]
    return tests::MIN_BUDGET.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(test))]
    4096
}

/// Logged items read at most; more, and the run reads every old signature.
pub const LOG_LIMIT: usize = 65_536;

/// What a run probes, and what becomes of the index.
pub struct Plan {
    /// The old members to read the signatures of and probe (ascending); `None`: every one.
    /// Their exact keys are probed apart from it (made from the rows).
    pub probe: Option<Vec<usize>>,
    /// The logged members the index covers (ascending): their entries are added to it.
    pub logged: Vec<usize>,
    /// Values held by more members than `probe` holds of them ([`Plan::unsettled`]).
    pub trimmed: Vec<Trimmed>,
    pub keep: Keep,
}

/// A value many old members hold, of which only the latest [`TOP`] are probed at first.
pub struct Trimmed {
    band: usize,
    value: u32,
    /// The earliest position probed.
    least: u32,
    /// The others, earlier.
    rest: Vec<usize>,
}

/// The latest members holding a value that are probed at first: `assign` keeps the latest
/// [`cluster::BUCKET_CAP`] true holders, and an entry may be stale, so a few more (none in
/// tests, where a stale entry among them then always makes the rest be probed).
const TOP: usize = if cfg!(test) {
    cluster::BUCKET_CAP
} else {
    cluster::BUCKET_CAP + 4
};

impl Plan {
    /// The members to probe as well, once `probe` has been offered to `candidates`: the rest of
    /// the holders of each trimmed value whose latest true holders were not all found among
    /// those probed (entries stale, or hash collisions, among them). Ascending.
    pub fn unsettled(&self, candidates: &cluster::Candidates) -> Vec<usize> {
        let mut more: Vec<usize> = self
            .trimmed
            .iter()
            .filter(|t| !candidates.settles(t.band, t.value, t.least))
            .flat_map(|t| t.rest.iter().copied())
            .collect();
        more.sort_unstable();
        more.dedup();
        more
    }
}

/// What becomes of the index.
pub enum Keep {
    /// It stays: the entries of the logged and the new members are added to it, and it covers
    /// the window from `since` (the members of the window it did not cover are among the
    /// logged ones).
    Index {
        token: u64,
        since: DateTime<Utc>,
        covered: i64,
    },
    /// A new file is built, of every member probed and the new ones, covering the window from
    /// `since` (there was none to vouch for: none built, a file missing or not matching, a
    /// window older than it, too long a log or too many delta entries).
    Build {
        builder: Building,
        since: DateTime<Utc>,
        covered: i64,
    },
    /// The store keeps no index.
    None,
}

impl Keep {
    /// A new file for up to `room` members beside `state`'s database, covering from `since`;
    /// nothing when the store keeps no index.
    pub fn build(state: Option<&BandState>, room: usize, since: DateTime<Utc>) -> Keep {
        match state {
            Some(state) => Keep::Build {
                builder: Building::new(state, room),
                since,
                covered: state.last_seq,
            },
            None => Keep::None,
        }
    }

    /// Adds an old member probed (and signed) to the file being built, if one is.
    pub fn add(&mut self, row: &ClusterRow, sig: &Signature) {
        if let Keep::Build { builder, .. } = self {
            builder.add(row, sig);
        }
    }

    /// Adds a new member: to the file being built, or to `delta`.
    pub fn add_new(&mut self, delta: &mut Delta, row: &ClusterRow, sig: &Signature) {
        match self {
            Keep::Build { builder, .. } => builder.add(row, sig),
            Keep::Index { .. } => delta.add(row, sig),
            Keep::None => {}
        }
    }

    /// What the run saves of the index with its keys.
    pub async fn update(self, delta: Delta) -> Option<BandUpdate> {
        match self {
            Keep::Index {
                token,
                since,
                covered,
            } => Some(BandUpdate {
                token,
                built: false,
                since,
                delta: delta.encode(),
                covered,
            }),
            Keep::Build {
                builder,
                since,
                covered,
            } => Some(BandUpdate {
                token: builder.finish().await?,
                built: true,
                since,
                delta: Vec::new(),
                covered,
            }),
            Keep::None => None,
        }
    }
}

/// A file being built; an error writing it gives up the file, not the run.
pub struct Building(Option<Box<bands::Builder>>);

impl Building {
    /// A file beside `state`'s database for up to `room` members.
    fn new(state: &BandState, room: usize) -> Building {
        Building(
            bands::Builder::create(&state.base, room)
                .inspect_err(|e| warn!(error = %e, "band index: cannot build a file"))
                .ok()
                .map(Box::new),
        )
    }

    pub fn add(&mut self, row: &ClusterRow, sig: &Signature) {
        if let Some(b) = &mut self.0
            && let Err(e) = b.add(bands::item_hash(&row.source, &row.id), sig)
        {
            warn!(error = %e, "band index: cannot build a file");
            self.0 = None;
        }
    }

    /// Finishes the file: its token, `None` when it could not be written.
    pub async fn finish(self) -> Option<u64> {
        let b = self.0?;
        let began = std::time::Instant::now();
        match tokio::task::spawn_blocking(move || b.finish()).await {
            Ok(Ok(token)) => {
                let ms = began.elapsed().as_millis() as u64;
                debug!(ms, "band index: file written");
                Some(token)
            }
            Ok(Err(e)) => {
                warn!(error = %e, "band index: cannot build a file");
                None
            }
            Err(e) => {
                warn!(error = %e, "band index: cannot build a file");
                None
            }
        }
    }
}

/// Entries to add to the index's deltas, by band.
#[derive(Default)]
pub struct Delta(Vec<Vec<u64>>);

impl Delta {
    pub fn add(&mut self, row: &ClusterRow, sig: &Signature) {
        if self.0.is_empty() {
            self.0 = vec![Vec::new(); cluster::BANDS];
        }
        let item = bands::item_hash(&row.source, &row.id);
        for (entries, e) in self.0.iter_mut().zip(bands::entries(item, sig)) {
            entries.push(e);
        }
    }

    fn encode(self) -> Vec<(usize, Vec<u8>)> {
        self.0
            .into_iter()
            .enumerate()
            .map(|(b, mut entries)| (b, bands::encode(&mut entries)))
            .filter(|(_, e)| !e.is_empty())
            .collect()
    }
}

/// Decides how a run finds the old members to probe. `rows` newest first, the window their
/// first `in_window`, from `since`; `old` the keyed members in it and `new_sigs` the new
/// members' signatures.
#[allow(clippy::too_many_arguments)]
pub async fn plan<S: Store>(
    ctx: &Ctx<S>,
    state: Option<&BandState>,
    rows: &[ClusterRow],
    in_window: usize,
    since: DateTime<Utc>,
    old: &[usize],
    new_sigs: &[Option<Signature>],
) -> Result<Plan, StoreError> {
    // Every old member probed.
    let full = |keep| Plan {
        probe: None,
        logged: Vec::new(),
        trimmed: Vec::new(),
        keep,
    };
    let Some(state) = state else {
        return Ok(full(Keep::None));
    };
    let build = |why: &str| {
        debug!(why, "band index: building a new file");
        full(Keep::build(Some(state), in_window, since))
    };
    let Some(index) = &state.index else {
        return Ok(build("none is vouched for"));
    };
    let Some(logged) = &index.logged else {
        return Ok(build("the log is long"));
    };
    let (base, token) = (state.base.clone(), index.token);
    let opened = tokio::task::spawn_blocking(move || bands::Index::open(&base, token))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?;
    let file = match opened {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(build("its file is missing or not its own")),
        Err(e) => {
            warn!(error = %e, "band index: cannot read its file");
            return Ok(build("its file cannot be read"));
        }
    };
    // Delta entries are kept up to an eighth of the file (read whole by every lookup, and
    // made in memory by the run that adds them).
    let delta_limit = (file.bytes() / 8).max(DELTA_FLOOR);
    if index.delta_bytes > delta_limit {
        return Ok(build("the delta entries outgrew an eighth of the file"));
    }
    // The rows the index covers (dated from its `since` on, a prefix), and those of the window
    // before them (a window reaching back past it: an item dated long ago): those are probed
    // in full, and added, unless they are too many for the deltas.
    let index_from = crate::store::seconds_from(index.since);
    let covered = rows.partition_point(|r| r.date >= index_from);
    let keyed = |n: &usize| rows[*n].cluster.is_some();
    let gap: Vec<usize> = (covered..in_window).filter(keyed).collect();
    let item_bytes = (cluster::BANDS * 8) as u64;
    if index.delta_bytes + (gap.len() + logged.len()) as u64 * item_bytes > delta_limit {
        return Ok(build("the window reaches far before the index"));
    }
    let began = std::time::Instant::now();
    // The rows by their items' hashes, as (hash << 32 | position).
    let cover = covered.max(in_window);
    let mut table: Vec<u64> = (0..cover)
        .map(|n| u64::from(bands::item_hash(&rows[n].source, &rows[n].id)) << 32 | n as u64)
        .collect();
    table.sort_unstable();
    let table_ms = began.elapsed().as_millis() as u64;
    // The new members' values, by band, sorted.
    let mut queries: Vec<Vec<u32>> = vec![Vec::new(); cluster::BANDS];
    for sig in new_sigs.iter().flatten() {
        for (b, q) in queries.iter_mut().enumerate() {
            q.push(bands::band_value(sig, b));
        }
    }
    for q in &mut queries {
        q.sort_unstable();
        q.dedup();
    }
    // Each band's entries found, a band at a time: the holders' positions (in the window, with
    // a key) by value, latest first; the latest `TOP` of each value are probed, the others kept
    // for later.
    let budget = (old.len() * 2).max(min_budget());
    let mut probe: Vec<usize> = Vec::new();
    let mut trimmed = Vec::new();
    let mut found = 0;
    let mut held: Vec<(u32, u32)> = Vec::new();
    // Where the bands looked at so far found so many entries that all of them would find over
    // four times the budget, the lookup ends there: the bands are alike (each two hash
    // functions of the same signatures), and each costs a sort and a pass over the rows (on
    // ../shared/bench's templated text at N = 10,000, about 60 ms a band, and every lookup
    // ended over the budget after four).
    let asked = queries.iter().filter(|q| !q.is_empty()).count();
    let mut looked_at = 0;
    let each_band = |b: usize, entries: &mut Vec<u64>| {
        found += entries.len();
        looked_at += 1;
        if found > budget || found.saturating_mul(asked) > budget.saturating_mul(4 * looked_at) {
            return false;
        }
        // By item, to meet the table in its order.
        entries.sort_unstable_by_key(|e| *e as u32);
        held.clear();
        let mut from = 0;
        for e in entries.iter() {
            let item = u64::from(*e as u32);
            from = bands::gallop(from, table.len(), |i| (table[i] >> 32) < item);
            for t in table[from..].iter().take_while(|t| (*t >> 32) == item) {
                let n = (t & 0xFFFF_FFFF) as usize;
                if n < in_window && keyed(&n) {
                    held.push(((e >> 32) as u32, n as u32));
                }
            }
        }
        held.sort_unstable_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)));
        // (An entry in the file and a delta both.)
        held.dedup();
        for run in held.chunk_by(|x, y| x.0 == y.0) {
            probe.extend(run.iter().take(TOP).map(|(_, n)| *n as usize));
            if run.len() > TOP {
                trimmed.push(Trimmed {
                    band: b,
                    value: run[0].0,
                    least: run[TOP - 1].1,
                    rest: run[TOP..].iter().map(|(_, n)| *n as usize).collect(),
                });
            }
        }
        true
    };
    let looked = match lookup(ctx, file, index.delta_bytes, &queries, each_band).await? {
        Ok(looked) => looked,
        Err(e) => {
            warn!(error = %e, "band index: cannot read its file");
            return Ok(build("its file cannot be read"));
        }
    };
    let rows_of = |item: u32| {
        let from = table.partition_point(|e| (e >> 32) < u64::from(item));
        table[from..]
            .iter()
            .take_while(move |e| (*e >> 32) == u64::from(item))
            .map(|e| (e & 0xFFFF_FFFF) as usize)
    };
    let mut logged_rows: Vec<usize> = logged
        .iter()
        .flat_map(|(source, id)| {
            rows_of(bands::item_hash(source, id))
                .filter(move |n| &*rows[*n].source == source && *rows[*n].id == **id)
        })
        .filter(keyed)
        .chain(gap)
        .collect();
    logged_rows.sort_unstable();
    logged_rows.dedup();
    let keep = Keep::Index {
        token: index.token,
        since: since.min(index.since),
        covered: state.last_seq,
    };
    match looked {
        Looked::Over => {
            // Every old member, and the logged ones outside the window (after them).
            let mut probe = old.to_vec();
            probe.extend(logged_rows.iter().filter(|n| **n >= in_window));
            debug!(budget, "band index: more entries than the budget");
            return Ok(Plan {
                probe: Some(probe),
                logged: logged_rows,
                trimmed: Vec::new(),
                keep,
            });
        }
        Looked::Done => {}
    }
    probe.extend(&logged_rows);
    probe.sort_unstable();
    probe.dedup();
    debug!(
        table_ms,
        lookup_ms = began.elapsed().as_millis() as u64 - table_ms,
        found,
        probed = probe.len(),
        trimmed = trimmed.len(),
        logged = logged_rows.len(),
        "band index: looked up"
    );
    Ok(Plan {
        probe: Some(probe),
        logged: logged_rows,
        trimmed,
        keep,
    })
}

/// How a lookup ended.
enum Looked {
    /// Every band's entries were handed over.
    Done,
    /// The caller stopped it (too many entries).
    Over,
}

/// Looks the values `queries` (by band, sorted) up in the index's file and its delta entries, a
/// band at a time (the file's section read on the blocking pool while the store reads the
/// band's deltas), and hands each band's entries found to `each_band`, which says whether to go
/// on. Fails with the store's errors; the file's are inside.
async fn lookup<S: Store>(
    ctx: &Ctx<S>,
    mut index: bands::Index,
    delta_bytes: u64,
    queries: &[Vec<u32>],
    mut each_band: impl FnMut(usize, &mut Vec<u64>) -> bool,
) -> Result<std::io::Result<Looked>, StoreError> {
    let task = |e: tokio::task::JoinError| StoreError::Task(e.to_string());
    let mut entries: Vec<u64> = Vec::new();
    let mut section = Vec::new();
    for (b, values) in queries.iter().enumerate() {
        if values.is_empty() {
            continue;
        }
        let read = tokio::task::spawn_blocking(move || {
            let read = index.section(b, &mut section);
            (index, section, read)
        });
        let deltas = async {
            if delta_bytes == 0 {
                Ok(Vec::new())
            } else {
                ctx.store.band_deltas(b).await
            }
        };
        let (read, deltas) = tokio::join!(read, deltas);
        let done: std::io::Result<()>;
        (index, section, done) = read.map_err(task)?;
        if let Err(e) = done {
            return Ok(Err(e));
        }
        entries.clear();
        bands::find(&section, values, |e| entries.push(e));
        for d in &deltas? {
            bands::find(d, values, |e| entries.push(e));
        }
        if !each_band(b, &mut entries) {
            return Ok(Ok(Looked::Over));
        }
    }
    Ok(Ok(Looked::Done))
}

/// Removes the files of indexes other than `token`'s (and a file left half built), once the
/// store names its file.
pub async fn sweep(state: &BandState, token: u64) {
    let base = state.base.clone();
    let swept = tokio::task::spawn_blocking(move || bands::sweep(&base, token))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    if let Err(e) = swept {
        warn!(error = %e, "band index: cannot remove old files");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use chrono::Duration;
    use rusqlite::Connection;

    use super::*;
    use crate::model::Item;
    use crate::pipeline::tests::{similar_ctx as store_in, stored_keys};

    /// [`min_budget`] in tests (every path gives the same keys: another test running beside
    /// the one that lowers it only takes another path).
    pub static MIN_BUDGET: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(4096);

    /// An item of the model: which story it retells, in which words, dated how long ago.
    #[derive(Clone, Copy)]
    struct Spec {
        story: u64,
        words: u64,
        age_minutes: i64,
    }

    fn item(id: &str, spec: Spec, now: DateTime<Utc>) -> Item {
        let core: Vec<String> = (0..30).map(|w| format!("s{}w{w}", spec.story)).collect();
        let own: Vec<String> = (0..10).map(|w| format!("v{}x{w}", spec.words)).collect();
        let published = now - Duration::minutes(spec.age_minutes);
        let item = super::super::tests::story_item(id.to_string(), &core, &own, published);
        if spec.story == WORDLESS {
            // No words to sign: no signature, until it is retold.
            Item {
                title: String::new(),
                content_html: None,
                ..item
            }
        } else {
            item
        }
    }

    /// The story of an item without words.
    const WORDLESS: u64 = 1000;

    fn count(db: &Path, sql: &str) -> i64 {
        Connection::open(db)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    fn execute(db: &Path, sql: &str, params: impl rusqlite::Params) {
        Connection::open(db).unwrap().execute(sql, params).unwrap();
    }

    /// The key test: over random runs of items added, retold as other stories (signed at
    /// ingest or left for clustering to sign), dated again, deleted and backdated, and with the
    /// index's file taken away, damaged or disowned now and then, clustering that looks new
    /// members up in the band index gives every item the key that clustering reading every old
    /// signature gives.
    #[tokio::test]
    async fn clustering_through_the_index_gives_the_keys_of_a_full_read() {
        for seed in [7u64, 1234] {
            let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let (a, b) = (store_in(dir_a.path()).await, store_in(dir_b.path()).await);
            let (db_a, db_b) = (
                dir_a.path().join("feedloom.db"),
                dir_b.path().join("feedloom.db"),
            );
            let mut next = crate::cluster::tests::seeded(seed);
            let sources = ["a", "b", "c", "d"];
            let mut model: BTreeMap<(usize, u64), Spec> = BTreeMap::new();
            let mut next_id = 0u64;
            let t0 = Utc::now() - Duration::hours(2);
            let mut looked_up = 0;
            for round in 0..14 {
                let now = t0 + Duration::minutes(5 * round);
                let fresh = if round == 0 { 40 } else { 4 };
                for s in 0..sources.len() {
                    for _ in 0..fresh {
                        // Now and then one dated days ago, of stories of its own (so that
                        // it meets others like it): the window reaches back past the index.
                        let spec = if next(25) == 0 {
                            Spec {
                                story: 100 + next(2),
                                words: next(1 << 30),
                                age_minutes: 60 * 24 * (4 + next(5) as i64),
                            }
                        } else {
                            Spec {
                                // Now and then one without words.
                                story: if next(20) == 0 { WORDLESS } else { next(25) },
                                words: next(1 << 30),
                                age_minutes: next(60 * 30) as i64,
                            }
                        };
                        model.insert((s, next_id), spec);
                        next_id += 1;
                    }
                }
                if round > 0 {
                    let ids: Vec<(usize, u64)> = model.keys().copied().collect();
                    for k in &ids {
                        match next(30) {
                            // Retold as another story.
                            0 => model.get_mut(k).unwrap().story = next(25),
                            // Dated again.
                            1 => model.get_mut(k).unwrap().age_minutes = next(60 * 40) as i64,
                            // Deleted.
                            2 => {
                                model.remove(k);
                                for db in [&db_a, &db_b] {
                                    execute(
                                        db,
                                        "DELETE FROM items WHERE source = ?1 AND id = ?2",
                                        [sources[k.0], &k.1.to_string()],
                                    );
                                }
                            }
                            _ => {}
                        }
                    }
                }
                let unsigned = next(3) == 0;
                for (s, source) in sources.iter().enumerate() {
                    let items: Vec<Item> = model
                        .range((s, 0)..(s + 1, 0))
                        .map(|((_, id), spec)| item(&id.to_string(), *spec, t0))
                        .collect();
                    for ctx in [&a, &b] {
                        if unsigned {
                            ctx.store
                                .upsert_items(source, &items, &[], now)
                                .await
                                .unwrap();
                        } else {
                            let sigs = crate::pipeline::signature_bytes(&items);
                            ctx.store
                                .upsert_signed_items(source, &items, sigs, &[], None, now)
                                .await
                                .unwrap();
                        }
                    }
                }
                // The index taken away, damaged, or not the one the database names.
                let file = |db: &Path| {
                    let token: i64 = count(db, "SELECT token FROM band_state");
                    bands::path_of(db, token as u64)
                };
                match round {
                    5 => std::fs::remove_file(file(&db_a)).unwrap(),
                    8 => {
                        let path = file(&db_a);
                        let mut bytes = std::fs::read(&path).unwrap();
                        bytes[40] ^= 0x10;
                        std::fs::write(&path, bytes).unwrap();
                    }
                    11 => execute(&db_a, "UPDATE band_state SET token = token + 1", []),
                    _ => {}
                }
                // Every third run, the lookup names more than it may: every old signature is
                // read, and the index kept.
                let budget = if round % 3 == 2 { 1 } else { 4096 };
                MIN_BUDGET.store(budget, std::sync::atomic::Ordering::Relaxed);
                let deltas = |db: &Path| count(db, "SELECT count(*) FROM band_delta");
                let before = deltas(&db_a);
                super::super::cluster_items(&a).await.unwrap();
                if deltas(&db_a) > before {
                    looked_up += 1;
                }
                // The other store reads every old signature, every time.
                execute(&db_b, "DELETE FROM band_state", []);
                super::super::cluster_items(&b).await.unwrap();
                let (got, want) = (stored_keys(&a.store).await, stored_keys(&b.store).await);
                let differ: Vec<_> = got.iter().zip(&want).filter(|(g, w)| g != w).collect();
                assert!(
                    got.len() == want.len() && differ.is_empty(),
                    "seed {seed}, round {round}: {} keys differ, first {:?}",
                    differ.len(),
                    differ.first()
                );
                // What the log held is accounted for.
                assert_eq!(
                    count(
                        &db_a,
                        "SELECT count(*) FROM band_log WHERE seq <= (SELECT covered FROM band_state)"
                    ),
                    0
                );
            }
            // The index answered most runs; only the current file is left.
            assert!(looked_up >= 7, "seed {seed}: looked up {looked_up} times");
            let files = std::fs::read_dir(dir_a.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .contains("-bands-")
                })
                .count();
            assert_eq!(files, 1);
        }
    }
}
