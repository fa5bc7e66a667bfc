//! The store conformance suite: every behaviour the pipeline relies on, written once and run
//! on each backend (`sqlite::*` always, `postgres::*` on `FEEDLOOM_TEST_POSTGRES`, each test on
//! a database of its own). A new `Store` method gets its test here, in the `conformance!` list.

use chrono::{DateTime, Duration, TimeZone, Utc};
use feedloom::model::Item;
use feedloom::normalize::Reuse;
use feedloom::store::{
    AnyStore, Candidate, Claim, Claimed, ClusterBatch, ClusterKey, ClusterUpdate, ItemHead,
    ItemKeys, ItemQuery, SourceState, Store, UpsertCounts,
};

/// Where a test's stores live.
enum Backend {
    /// One store: a process has one handle (its leases are in memory), shared by clones.
    /// The folder is held so the file outlives the test.
    Sqlite(#[allow(dead_code)] tempfile::TempDir, AnyStore),
    Postgres(crate::pg::TempDb),
}

impl Backend {
    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Sqlite(
            feedloom::store::SqliteStore::open(&dir.path().join("feedloom.db")).unwrap(),
        );
        Backend::Sqlite(dir, store)
    }

    async fn postgres(test: &str) -> Option<Backend> {
        Some(Backend::Postgres(crate::pg::TempDb::create(test).await?))
    }

    /// A handle on the store; on PostgreSQL every call is another instance.
    async fn open(&self) -> AnyStore {
        match self {
            Backend::Sqlite(_, s) => s.clone(),
            Backend::Postgres(db) => AnyStore::open(&db.url, 4).await.unwrap(),
        }
    }

    async fn finish(self) {
        if let Backend::Postgres(db) = self {
            db.drop_db().await;
        }
    }
}

/// Runs each listed test on both backends.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let b = super::Backend::sqlite();
                    super::$name(&b).await;
                    b.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(b) = super::Backend::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&b).await;
                    b.finish().await;
                }
            )*
        }
    };
}

conformance!(
    source_state_round_trips,
    source_states_read_every_recorded_state_at_once,
    recorded_fetches_settle_their_sources_and_release_gives_back_several,
    upsert_counts_new_updated_unchanged,
    upsert_keeps_first_seen_and_dates_undated_items_once,
    upsert_unlists_what_the_source_dropped,
    items_newest_first_filtered_and_limited,
    heads_list_what_items_lists_and_items_by_keys_reads_them,
    ties_sort_by_bytes,
    prune_drops_stale_unlisted_and_excess,
    prune_looks_again_after_items_are_added_or_the_limit_changes,
    claim_leases_each_source_to_one_owner,
    claim_lease_runs_out,
    claim_lease_renewed_by_its_owner,
    claim_respects_per_host_limit,
    claim_respects_retry_after_of_the_same_url,
    claim_leaves_sources_fetched_since_their_state_was_read,
    publish_lock_is_exclusive,
    cluster_keys_are_given_once_and_signatures_follow_content,
    cluster_batches_are_saved_whole_or_not_at_all,
    signed_upserts_store_signatures_with_their_items,
    generation_counts_changes_to_items_only,
    upsert_keeps_items_said_unchanged_listed_unread_and_unwritten,
    upsert_with_unchanged_items_not_stored_writes_nothing,
    an_owners_renewals_records_and_releases_at_once_never_deadlock,
    what_a_document_leaves_to_reuse_is_written_with_its_items,
);

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
}

fn item(id: &str, title: &str, published: Option<DateTime<Utc>>) -> Item {
    Item {
        id: id.into(),
        title: title.into(),
        link: Some(format!("https://example.org/{id}")),
        published,
        updated: None,
        authors: Vec::new(),
        summary: Some(format!("about {title} — ёлки")),
        content_html: None,
        categories: vec!["news".into()],
        language: Some("ru".into()),
        enclosures: Vec::new(),
        image: None,
    }
}

fn counts(new: usize, updated: usize, unchanged: usize) -> UpsertCounts {
    UpsertCounts {
        new,
        updated,
        unchanged,
    }
}

async fn all(s: &AnyStore) -> Vec<(String, String)> {
    s.items(&ItemQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|it| (it.source, it.item.id))
        .collect()
}

async fn source_state_round_trips(b: &Backend) {
    let s = b.open().await;
    assert_eq!(s.source_state("a").await.unwrap(), None);
    let mut st = SourceState {
        url: "https://example.org/a.xml".into(),
        last_fetch_at: Some(t(5)),
        error_count: 2,
        last_error: Some("fetch: 503".into()),
        last_status: Some(503),
        retry_not_before: Some(t(60)),
        ..SourceState::default()
    };
    st.validators.etag = Some("\"x\"".into());
    s.record_fetch("a", &st).await.unwrap();
    assert_eq!(s.source_state("a").await.unwrap(), Some(st.clone()));
    st.error_count = 0;
    s.record_fetch("a", &st).await.unwrap();
    assert_eq!(b.open().await.source_state("a").await.unwrap(), Some(st));
    assert_eq!(s.source_state("b").await.unwrap(), None);
}

async fn source_states_read_every_recorded_state_at_once(b: &Backend) {
    let s = b.open().await;
    assert!(s.source_states().await.unwrap().is_empty());
    let state = |url: &str, errors: u32| SourceState {
        url: url.into(),
        last_fetch_at: Some(t(5)),
        error_count: errors,
        retry_not_before: Some(t(60)),
        ..SourceState::default()
    };
    let (a1, a2, b1) = (
        state("https://a/1", 1),
        state("https://a/2", 2),
        state("https://b", 0),
    );
    // One batch, "a" named twice: its last state is the one kept.
    s.record_fetches(&[
        ("a".into(), a1),
        ("b".into(), b1.clone()),
        ("a".into(), a2.clone()),
    ])
    .await
    .unwrap();
    s.record_fetches(&[]).await.unwrap();
    // A source only claimed so far has no state to read.
    let c = cand("c", Some("h1"));
    let now = Utc::now();
    s.claim_due(&claim("one", &[c], now, 10)).await.unwrap();
    let expected: std::collections::HashMap<String, SourceState> =
        [("a".to_string(), a2.clone()), ("b".to_string(), b1.clone())].into();
    assert_eq!(s.source_states().await.unwrap(), expected);
    let other = b.open().await;
    assert_eq!(other.source_states().await.unwrap(), expected);
    assert_eq!(other.source_state("a").await.unwrap(), Some(a2));
    assert_eq!(other.source_state("c").await.unwrap(), None);
}

async fn recorded_fetches_settle_their_sources_and_release_gives_back_several(b: &Backend) {
    let (one, two) = (b.open().await, b.open().await);
    let cands: Vec<Candidate> = ["a", "b", "c"]
        .iter()
        .map(|n| cand(n, Some("h1")))
        .collect();
    let req = claim("one", &cands, Utc::now(), 10);
    assert_eq!(
        one.claim_due(&req).await.unwrap(),
        claimed(&["a", "b", "c"], &[])
    );
    let fetches: Vec<(String, SourceState)> = cands[..2]
        .iter()
        .map(|c| {
            let st = SourceState {
                url: c.url.clone(),
                last_fetch_at: Some(Utc::now()),
                ..SourceState::default()
            };
            (c.name.clone(), st)
        })
        .collect();
    one.record_fetches(&fetches).await.unwrap();
    // Only the holder gives leases back; its release frees them all.
    let names: Vec<String> = cands.iter().map(|c| c.name.clone()).collect();
    two.release(&names, "two").await.unwrap();
    let req = claim("two", &cands, Utc::now(), 10);
    assert_eq!(two.claim_due(&req).await.unwrap(), claimed(&[], &[]));
    one.release(&names, "one").await.unwrap();
    // "a" and "b" were fetched since the run read their (absent) states: settled; "c" is
    // free again.
    assert_eq!(two.claim_due(&req).await.unwrap(), claimed(&["c"], &[]));
}

/// A run renews its leases on a timer while a task records finished fetches and releases
/// them: the three write the same source rows at once, so each must lock them in one order.
/// (Before it did, PostgreSQL found a deadlock here within a few rounds.)
async fn an_owners_renewals_records_and_releases_at_once_never_deadlock(b: &Backend) {
    let store = b.open().await;
    // Names whose text order differs from the order they are written in.
    let cands: Vec<Candidate> = (0..1_500)
        .map(|n| cand(&format!("s{}", (n * 7_919) % 1_500), Some("h1")))
        .collect();
    let mut names: Vec<String> = cands.iter().map(|c| c.name.clone()).collect();
    let mut req = claim("one", &cands, Utc::now(), cands.len());
    req.per_host = cands.len();
    for round in 0..8 {
        let got = store.claim_due(&req).await.unwrap();
        assert_eq!(got.claimed.len(), cands.len(), "round {round}");
        let fetches: Vec<(String, SourceState)> = cands
            .iter()
            .rev()
            .map(|c| {
                let st = SourceState {
                    url: c.url.clone(),
                    ..SourceState::default()
                };
                (c.name.clone(), st)
            })
            .collect();
        let until = Utc::now() + Duration::seconds(60);
        let (recorded, renewed, released) = tokio::join!(
            store.record_fetches(&fetches),
            store.renew("one", until),
            store.release(&names, "one"),
        );
        recorded.unwrap();
        renewed.unwrap();
        released.unwrap();
        // Whatever the order they ran in, the leases end released.
        store.release(&names, "one").await.unwrap();
        names.reverse();
        req.now = Utc::now();
    }
}

async fn upsert_counts_new_updated_unchanged(b: &Backend) {
    let s = b.open().await;
    let one = item("1", "one", Some(t(10)));
    let two = item("2", "two", Some(t(20)));
    assert_eq!(
        s.upsert_items("a", &[one.clone(), two.clone()], &[], t(100))
            .await
            .unwrap(),
        counts(2, 0, 0)
    );
    let two_changed = item("2", "two, corrected", Some(t(20)));
    let three = item("3", "three", Some(t(30)));
    assert_eq!(
        s.upsert_items("a", &[one.clone(), two_changed.clone(), three], &[], t(200))
            .await
            .unwrap(),
        counts(1, 1, 1)
    );
    // The same ids in another source are other items.
    assert_eq!(
        s.upsert_items("b", &[one], &[], t(200)).await.unwrap(),
        counts(1, 0, 0)
    );
    let stored = s.items(&ItemQuery::default()).await.unwrap();
    let got = stored
        .iter()
        .find(|it| it.source == "a" && it.item.id == "2")
        .unwrap();
    assert_eq!(got.item, two_changed);
    assert_eq!(
        s.upsert_items("a", &[], &[], t(300)).await.unwrap(),
        counts(0, 0, 0)
    );
}

async fn upsert_keeps_first_seen_and_dates_undated_items_once(b: &Backend) {
    let s = b.open().await;
    s.upsert_items("a", &[item("u", "undated", None)], &[], t(100))
        .await
        .unwrap();
    s.upsert_items("a", &[item("u", "undated, edited", None)], &[], t(500))
        .await
        .unwrap();
    let got = s.items(&ItemQuery::default()).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].first_seen, t(100));
    assert_eq!(
        got[0].sort_date,
        t(100),
        "an undated item keeps its first-seen date"
    );
    assert_eq!(got[0].item.title, "undated, edited");
    // A date given later wins over the first-seen one.
    s.upsert_items("a", &[item("u", "dated now", Some(t(50)))], &[], t(600))
        .await
        .unwrap();
    let got = s.items(&ItemQuery::default()).await.unwrap();
    assert_eq!((got[0].first_seen, got[0].sort_date), (t(100), t(50)));
}

async fn upsert_unlists_what_the_source_dropped(b: &Backend) {
    let s = b.open().await;
    let (one, two) = (item("1", "one", Some(t(1))), item("2", "two", Some(t(2))));
    s.upsert_items("a", &[one.clone(), two.clone()], &[], t(100))
        .await
        .unwrap();
    s.upsert_items("b", std::slice::from_ref(&one), &[], t(100))
        .await
        .unwrap();
    // "2" leaves the document: kept, but unlisted, so retention can take it.
    s.upsert_items("a", std::slice::from_ref(&one), &[], t(200))
        .await
        .unwrap();
    // Retention counts from the fetch that found it gone, and listed items are never stale.
    assert_eq!(s.prune(t(150), 100).await.unwrap(), 0);
    assert_eq!(s.prune(t(5_000), 100).await.unwrap(), 1);
    assert_eq!(
        all(&s).await,
        vec![("a".into(), "1".into()), ("b".into(), "1".into())]
    );
    // Listed items are never stale, however old, and coming back lists an item again.
    s.upsert_items("a", &[one, two], &[], t(20_000))
        .await
        .unwrap();
    assert_eq!(s.prune(t(30_000), 100).await.unwrap(), 0);
    assert_eq!(all(&s).await.len(), 3);
}

async fn items_newest_first_filtered_and_limited(b: &Backend) {
    let s = b.open().await;
    let a: Vec<Item> = (0..5)
        .map(|n| item(&format!("a{n}"), "x", Some(t(n * 10))))
        .collect();
    let c: Vec<Item> = (0..5)
        .map(|n| item(&format!("c{n}"), "y", Some(t(n * 10 + 5))))
        .collect();
    s.upsert_items("a", &a, &[], t(1000)).await.unwrap();
    s.upsert_items("c", &c, &[], t(1000)).await.unwrap();
    let ids = |v: Vec<feedloom::store::StoredItem>| -> Vec<String> {
        v.into_iter().map(|it| it.item.id).collect()
    };
    let newest = s
        .items(&ItemQuery {
            limit: Some(3),
            ..ItemQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(newest), ["c4", "a4", "c3"]);
    let only_a_since = s
        .items(&ItemQuery {
            sources: Some(vec!["a".into()]),
            since: Some(t(20)),
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(ids(only_a_since), ["a4", "a3", "a2"]);
    let none = s
        .items(&ItemQuery {
            sources: Some(Vec::new()),
            ..ItemQuery::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn heads_list_what_items_lists_and_items_by_keys_reads_them(b: &Backend) {
    let s = b.open().await;
    let mut a: Vec<Item> = (0..4)
        .map(|n| item(&format!("a{n}"), "x", Some(t(n * 10))))
        .collect();
    a[1].link = None;
    let c: Vec<Item> = (0..3)
        .map(|n| item(&format!("c{n}"), "y", Some(t(n * 10 + 5))))
        .collect();
    s.upsert_items("a", &a, &[], t(1000)).await.unwrap();
    s.upsert_items("c", &c, &[], t(2000)).await.unwrap();
    for query in [
        ItemQuery::default(),
        ItemQuery {
            limit: Some(3),
            ..ItemQuery::default()
        },
        ItemQuery {
            sources: Some(vec!["c".into()]),
            since: Some(t(10)),
            limit: None,
        },
        ItemQuery {
            sources: Some(Vec::new()),
            ..ItemQuery::default()
        },
    ] {
        let items = s.items(&query).await.unwrap();
        let heads = s.heads(&query).await.unwrap();
        let expected: Vec<ItemHead> = items
            .iter()
            .map(|it| ItemHead {
                source: it.source.as_str().into(),
                id: it.item.id.clone(),
                first_seen: it.first_seen,
                sort_date: it.sort_date,
                link_key: it.item.link.as_deref().map(feedloom::select::link_key),
            })
            .collect();
        assert_eq!(heads, expected, "{query:?}");
    }
    // A changed link is the head's link too.
    a[1].link = Some("https://example.org/moved".into());
    s.upsert_items("a", &a, &[], t(3000)).await.unwrap();
    let heads = s.heads(&ItemQuery::default()).await.unwrap();
    let a1 = heads.iter().find(|h| h.id == "a1").unwrap();
    assert_eq!(
        a1.link_key,
        Some(feedloom::select::link_key("https://example.org/moved"))
    );
    assert_eq!(a1.first_seen, t(1000));
    // Items by key come in the order asked for; unknown keys are skipped.
    let key = |s: &str, i: &str| (s.to_string(), i.to_string());
    let got = s
        .items_by_keys(&[
            key("c", "c2"),
            key("a", "gone"),
            key("a", "a0"),
            key("x", "a1"),
        ])
        .await
        .unwrap();
    let got: Vec<(String, String, DateTime<Utc>)> = got
        .into_iter()
        .map(|it| (it.source, it.item.id, it.first_seen))
        .collect();
    assert_eq!(
        got,
        [
            ("c".to_string(), "c2".to_string(), t(2000)),
            ("a".to_string(), "a0".to_string(), t(1000))
        ]
    );
    assert!(s.items_by_keys(&[]).await.unwrap().is_empty());
}

async fn ties_sort_by_bytes(b: &Backend) {
    let s = b.open().await;
    let same = Some(t(7));
    s.upsert_items(
        "a",
        &[
            item("b", "", same),
            item("B", "", same),
            item("é", "", same),
            item("a", "", same),
        ],
        &[],
        t(100),
    )
    .await
    .unwrap();
    s.upsert_items("Z", &[item("a", "", same)], &[], t(100))
        .await
        .unwrap();
    let got: Vec<String> = all(&s)
        .await
        .into_iter()
        .map(|(s, i)| format!("{s}/{i}"))
        .collect();
    assert_eq!(got, ["Z/a", "a/B", "a/a", "a/b", "a/é"]);
    // Heads and cluster rows put sources' items in one order of dates, ties by bytes, with
    // or without a list of sources or a limit (SQLite reads them by source).
    s.upsert_items(
        "m",
        &[item("y", "", Some(t(9))), item("x", "", Some(t(3)))],
        &[],
        t(100),
    )
    .await
    .unwrap();
    s.upsert_items("Z", &[item("c", "", Some(t(8)))], &[], t(100))
        .await
        .unwrap();
    let key = |source: &str, id: &str| format!("{source}/{id}");
    let newest_first = ["m/y", "Z/c", "Z/a", "a/B", "a/a", "a/b", "a/é", "m/x"];
    let some = ItemQuery {
        sources: Some(vec!["m".into(), "a".into()]),
        since: Some(t(5)),
        limit: Some(3),
    };
    let recent = ItemQuery {
        since: Some(t(8)),
        ..ItemQuery::default()
    };
    for (query, want) in [
        (ItemQuery::default(), &newest_first[..]),
        (some, &["m/y", "a/B", "a/a"][..]),
        (recent, &["m/y", "Z/c"][..]),
    ] {
        let heads: Vec<String> = s
            .heads(&query)
            .await
            .unwrap()
            .iter()
            .map(|h| key(&h.source, &h.id))
            .collect();
        assert_eq!(heads, want, "{query:?}");
    }
    let rows: Vec<String> = s
        .cluster_rows()
        .await
        .unwrap()
        .iter()
        .map(|r| key(&r.source, &r.id))
        .collect();
    assert_eq!(
        rows,
        ["m/x", "Z/a", "a/B", "a/a", "a/b", "a/é", "Z/c", "m/y"]
    );
    // Keys of some items of some sources (and of an item not stored) go to their rows only.
    let given = |source: &str, id: &str| ClusterUpdate {
        source: source.into(),
        id: id.into(),
        signature: None,
        cluster: Some(format!("key of {source}/{id}")),
    };
    s.save_cluster_rows(vec![
        given("m", "x"),
        given("Z", "c"),
        given("a", "é"),
        given("a", "gone"),
    ])
    .await
    .unwrap();
    let keyed: Vec<(String, Option<ClusterKey>)> = s
        .cluster_rows()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (key(&r.source, &r.id), r.cluster))
        .collect();
    let joined = |k: &str| Some(ClusterKey::Joined(format!("key of {k}")));
    assert_eq!(
        keyed,
        [
            ("m/x".to_string(), joined("m/x")),
            ("Z/a".into(), None),
            ("a/B".into(), None),
            ("a/a".into(), None),
            ("a/b".into(), None),
            ("a/é".into(), joined("a/é")),
            ("Z/c".into(), joined("Z/c")),
            ("m/y".into(), None),
        ]
    );
}

async fn prune_drops_stale_unlisted_and_excess(b: &Backend) {
    let s = b.open().await;
    let many: Vec<Item> = (0..6)
        .map(|n| item(&format!("{n}"), "x", Some(t(n))))
        .collect();
    s.upsert_items("a", &many, &[], t(100)).await.unwrap();
    s.upsert_items("a", &many[3..], &[], t(200)).await.unwrap();
    // Keep 4: the 3 listed ones, then the newest unlisted one.
    assert_eq!(s.prune(t(0), 4).await.unwrap(), 2);
    let left: Vec<String> = all(&s).await.into_iter().map(|(_, i)| i).collect();
    assert_eq!(left, ["5", "4", "3", "2"]);
}

/// A prune skips counting items per source while nothing was added since the last one with
/// the same limit: what it deletes must be what a full pass would.
async fn prune_looks_again_after_items_are_added_or_the_limit_changes(b: &Backend) {
    let s = b.open().await;
    let items: Vec<Item> = (0..6)
        .map(|n| item(&format!("{n}"), "x", Some(t(n))))
        .collect();
    let ids = |s: &AnyStore| {
        let s = s.clone();
        async move {
            all(&s)
                .await
                .into_iter()
                .map(|(src, i)| format!("{src}{i}"))
                .collect::<Vec<_>>()
        }
    };
    s.upsert_items("a", &items[..4], &[], t(100)).await.unwrap();
    assert_eq!(s.prune(t(0), 4).await.unwrap(), 0);
    assert_eq!(s.prune(t(0), 4).await.unwrap(), 0);
    // Nothing added, a lower limit: the oldest goes.
    assert_eq!(s.prune(t(0), 3).await.unwrap(), 1);
    assert_eq!(ids(&s).await, ["a3", "a2", "a1"]);
    assert_eq!(s.prune(t(0), 3).await.unwrap(), 0);
    // Items added (by another instance, on PostgreSQL): counted again.
    b.open()
        .await
        .upsert_items("a", &items[1..], &[], t(200))
        .await
        .unwrap();
    assert_eq!(s.prune(t(0), 3).await.unwrap(), 2);
    assert_eq!(ids(&s).await, ["a5", "a4", "a3"]);
    // Unlisted items past retention still go while nothing was added.
    assert_eq!(s.prune(t(0), 3).await.unwrap(), 0);
    s.upsert_items("a", &items[4..], &[], t(300)).await.unwrap();
    assert_eq!(s.prune(t(250), 3).await.unwrap(), 0);
    assert_eq!(s.prune(t(301), 3).await.unwrap(), 1);
    assert_eq!(ids(&s).await, ["a5", "a4"]);
}

fn cand(name: &str, host: Option<&str>) -> Candidate {
    Candidate {
        name: name.into(),
        host: host.map(String::from),
        url: format!("https://{}/{name}.xml", host.unwrap_or("local")),
        seen: None,
    }
}

fn claim(owner: &str, cands: &[Candidate], now: DateTime<Utc>, max: usize) -> Claim {
    Claim {
        owner: owner.into(),
        candidates: cands.to_vec(),
        now,
        lease: Duration::seconds(60),
        max,
        per_host: 100,
    }
}

fn claimed(claimed: &[&str], waiting: &[&str]) -> Claimed {
    Claimed {
        claimed: claimed.iter().map(|s| s.to_string()).collect(),
        waiting: waiting.iter().map(|s| s.to_string()).collect(),
    }
}

async fn claim_leases_each_source_to_one_owner(b: &Backend) {
    let (one, two) = (b.open().await, b.open().await);
    let cands: Vec<Candidate> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| cand(n, Some("h1")))
        .collect();
    let now = Utc::now();
    assert_eq!(
        one.claim_due(&claim("one", &cands, now, 2)).await.unwrap(),
        claimed(&["a", "b"], &["c", "d"])
    );
    // Held sources are someone else's: neither claimed nor waiting.
    assert_eq!(
        two.claim_due(&claim("two", &cands, now, 10)).await.unwrap(),
        claimed(&["c", "d"], &[])
    );
    assert_eq!(
        one.claim_due(&claim("one", &cands, now, 10)).await.unwrap(),
        claimed(&[], &[])
    );
    // Only the holder gives a lease back.
    two.release(&["a".into()], "two").await.unwrap();
    assert_eq!(
        two.claim_due(&claim("two", &cands, now, 10)).await.unwrap(),
        claimed(&[], &[])
    );
    one.release(&["a".into()], "one").await.unwrap();
    assert_eq!(
        two.claim_due(&claim("two", &cands, now, 10)).await.unwrap(),
        claimed(&["a"], &[])
    );
    assert!(
        one.claim_due(&claim("one", &[], now, 10))
            .await
            .unwrap()
            .claimed
            .is_empty()
    );
}

async fn claim_lease_runs_out(b: &Backend) {
    let (one, two) = (b.open().await, b.open().await);
    let cands = [cand("a", Some("h1")), cand("f", None)];
    let now = Utc::now();
    let mut c = claim("crashed", &cands, now, 10);
    c.lease = Duration::seconds(2);
    assert_eq!(one.claim_due(&c).await.unwrap(), claimed(&["a", "f"], &[]));
    let later = now + Duration::milliseconds(1_999);
    assert_eq!(
        two.claim_due(&claim("two", &cands, later, 10))
            .await
            .unwrap(),
        claimed(&[], &[])
    );
    let after = now + Duration::seconds(2);
    assert_eq!(
        two.claim_due(&claim("two", &cands, after, 10))
            .await
            .unwrap(),
        claimed(&["a", "f"], &[])
    );
}

async fn claim_lease_renewed_by_its_owner(b: &Backend) {
    let (one, two) = (b.open().await, b.open().await);
    let cands = [cand("a", Some("h1"))];
    let now = Utc::now();
    let mut c = claim("slow", &cands, now, 10);
    c.lease = Duration::seconds(2);
    assert_eq!(one.claim_due(&c).await.unwrap(), claimed(&["a"], &[]));
    one.renew("slow", now + Duration::seconds(10))
        .await
        .unwrap();
    two.renew("other", now + Duration::seconds(100))
        .await
        .unwrap();
    let at = |s| claim("two", &cands, now + Duration::seconds(s), 10);
    assert_eq!(two.claim_due(&at(5)).await.unwrap(), claimed(&[], &[]));
    assert_eq!(two.claim_due(&at(10)).await.unwrap(), claimed(&["a"], &[]));
}

async fn claim_respects_per_host_limit(b: &Backend) {
    let (one, two) = (b.open().await, b.open().await);
    let cands = [
        cand("a1", Some("a.example")),
        cand("a2", Some("a.example")),
        cand("a3", Some("a.example")),
        cand("b1", Some("b.example")),
        cand("f1", None),
        cand("f2", None),
    ];
    let now = Utc::now();
    let mut c = claim("one", &cands[..2], now, 10);
    c.per_host = 2;
    assert_eq!(
        one.claim_due(&c).await.unwrap(),
        claimed(&["a1", "a2"], &[])
    );
    // The other instance counts those two against a.example; files have no host limit.
    let mut c = claim("two", &cands, now, 10);
    c.per_host = 2;
    assert_eq!(
        two.claim_due(&c).await.unwrap(),
        claimed(&["b1", "f1", "f2"], &["a3"])
    );
    one.release(&["a1".into()], "one").await.unwrap();
    let mut c = claim("two", &cands[2..3], now, 10);
    c.per_host = 2;
    assert_eq!(two.claim_due(&c).await.unwrap(), claimed(&["a3"], &[]));
}

async fn claim_respects_retry_after_of_the_same_url(b: &Backend) {
    let s = b.open().await;
    let now = Utc::now();
    let c = cand("a", Some("h1"));
    let st = SourceState {
        url: c.url.clone(),
        last_fetch_at: Some(now - Duration::hours(1)),
        retry_not_before: Some(now + Duration::seconds(30)),
        ..SourceState::default()
    };
    s.record_fetch("a", &st).await.unwrap();
    let c = Candidate {
        seen: st.last_fetch_at,
        ..c
    };
    let req = claim("one", std::slice::from_ref(&c), now, 10);
    assert_eq!(s.claim_due(&req).await.unwrap(), claimed(&[], &[]));
    // The wait binds the location that asked for it: a new url is a new source.
    let mut moved = c.clone();
    moved.url = "https://elsewhere.example/a.xml".into();
    let req2 = claim("one", &[moved], now, 10);
    assert_eq!(s.claim_due(&req2).await.unwrap(), claimed(&["a"], &[]));
    s.release(&["a".into()], "one").await.unwrap();
    // And once the time has come, the same url is claimable again.
    let req3 = claim("one", &[c], now + Duration::seconds(31), 10);
    assert_eq!(s.claim_due(&req3).await.unwrap(), claimed(&["a"], &[]));
}

async fn claim_leaves_sources_fetched_since_their_state_was_read(b: &Backend) {
    let (one, two) = (b.open().await, b.open().await);
    // Nanoseconds, which PostgreSQL reads to the microsecond: instants are compared, on both
    // sides read the same way.
    let earlier = "2026-11-02T10:00:00.123456789Z"
        .parse::<DateTime<Utc>>()
        .unwrap();
    let st = |url: &str, at: DateTime<Utc>| SourceState {
        url: url.into(),
        last_fetch_at: Some(at),
        ..SourceState::default()
    };
    let mut cands = vec![
        cand("a", Some("h1")),
        cand("b", Some("h1")),
        cand("c", Some("h1")),
        cand("d", Some("h1")),
    ];
    // What this run read: "a" and "b" fetched at `earlier`, "c" and "d" never.
    two.record_fetches(&[
        ("a".into(), st(&cands[0].url, earlier)),
        ("b".into(), st(&cands[1].url, earlier)),
    ])
    .await
    .unwrap();
    let read = one.source_states().await.unwrap();
    for c in &mut cands {
        c.seen = read.get(&c.name).and_then(|st| st.last_fetch_at);
    }
    assert_eq!(cands[0].seen, Some(earlier));
    // Meanwhile another instance fetched "a" and "c" (a moment later, or a moment earlier by
    // a skewed clock elsewhere: no clock is compared).
    let later = earlier + Duration::milliseconds(1);
    let skewed = earlier - Duration::seconds(5);
    two.record_fetches(&[
        ("a".into(), st(&cands[0].url, later)),
        ("c".into(), st(&cands[2].url, skewed)),
    ])
    .await
    .unwrap();
    let c = claim("one", &cands, Utc::now(), 10);
    assert_eq!(one.claim_due(&c).await.unwrap(), claimed(&["b", "d"], &[]));
    // A run that read the new states may have them.
    cands[0].seen = Some(later);
    cands[2].seen = Some(skewed);
    let c = claim("two", &cands, Utc::now(), 10);
    assert_eq!(two.claim_due(&c).await.unwrap(), claimed(&["a", "c"], &[]));
}

async fn publish_lock_is_exclusive(b: &Backend) {
    let (one, two) = (b.open().await, b.open().await);
    let held = one.lock_publish().await.unwrap();
    let wait = tokio::time::timeout(std::time::Duration::from_millis(300), two.lock_publish());
    match b {
        // One process per file (the run lock): nothing to wait for.
        Backend::Sqlite(..) => assert!(wait.await.is_ok()),
        Backend::Postgres(_) => {
            assert!(wait.await.is_err(), "a second publisher got in");
            drop(held);
            tokio::time::timeout(std::time::Duration::from_secs(10), two.lock_publish())
                .await
                .expect("the lock is free once its holder lets go")
                .unwrap();
        }
    }
}

/// Timing, not behaviour: 10,000 items upserted into one source, on each backend
/// (`cargo test --release --test it upsert_timing -- --ignored --nocapture`).
#[tokio::test]
#[ignore = "a measurement"]
async fn upsert_timing() {
    let items: Vec<Item> = (0..10_000)
        .map(|n| {
            item(
                &format!("https://example.org/{n}"),
                &format!("story {n}"),
                Some(t(n)),
            )
        })
        .collect();
    let mut backends = vec![("sqlite", Backend::sqlite())];
    if let Some(b) = Backend::postgres("upsert_timing").await {
        backends.push(("postgres", b));
    }
    for (name, b) in backends {
        let s = b.open().await;
        for (round, what) in ["new", "unchanged"].iter().enumerate() {
            let started = std::time::Instant::now();
            s.upsert_items("a", &items, &[], t(100_000 + round as i64))
                .await
                .unwrap();
            eprintln!("{name}: 10,000 {what} items in {:?}", started.elapsed());
        }
        b.finish().await;
    }
}

/// Cluster keys handed over in batches are saved in one transaction: all of them once `Done`
/// comes, none when the batches stop before it (a run stopped halfway).
async fn cluster_batches_are_saved_whole_or_not_at_all(b: &Backend) {
    async fn keyed(s: &AnyStore) -> usize {
        let rows = s.cluster_rows().await.unwrap();
        rows.iter().filter(|r| r.cluster.is_some()).count()
    }
    let s = b.open().await;
    let items: Vec<Item> = ["1", "2", "3"]
        .iter()
        .map(|id| item(id, id, Some(t(10))))
        .collect();
    s.upsert_items("a", &items, &[], t(100)).await.unwrap();
    let key = |id: &str| {
        ClusterBatch::Rows(vec![ClusterUpdate {
            source: "a".into(),
            id: id.into(),
            signature: Some(vec![1, 2]),
            cluster: Some(format!("k{id}")),
        }])
    };
    let (send, batches) = tokio::sync::mpsc::channel(4);
    send.send(key("1")).await.unwrap();
    send.send(key("2")).await.unwrap();
    drop(send);
    let err = s.save_cluster_batches(batches).await.unwrap_err();
    assert!(err.to_string().contains("none of them was saved"), "{err}");
    assert_eq!(keyed(&s).await, 0);
    assert_eq!(
        s.signatures(vec![("a".to_string(), "1".to_string())].into())
            .await
            .unwrap(),
        [None]
    );
    let (send, batches) = tokio::sync::mpsc::channel(4);
    for id in ["1", "2", "3"] {
        send.send(key(id)).await.unwrap();
    }
    send.send(ClusterBatch::Done(None)).await.unwrap();
    s.save_cluster_batches(batches).await.unwrap();
    assert_eq!(keyed(&s).await, 3);
}

async fn cluster_keys_are_given_once_and_signatures_follow_content(b: &Backend) {
    let s = b.open().await;
    let (one, two) = (item("1", "one", Some(t(10))), item("2", "two", Some(t(20))));
    s.upsert_items("a", &[one.clone(), two.clone()], &[], t(100))
        .await
        .unwrap();
    let row = |id: &str, sig: Option<&[u8]>, key: Option<&str>| ClusterUpdate {
        source: "a".into(),
        id: id.into(),
        signature: sig.map(<[u8]>::to_vec),
        cluster: key.map(String::from),
    };
    let joined = |k: &str| Some(ClusterKey::Joined(k.into()));
    let key = |s: &str, i: &str| (s.to_string(), i.to_string());
    let rows = s.cluster_rows().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.cluster.is_none()));
    assert_eq!(
        s.signatures(vec![key("a", "1"), key("a", "2")].into())
            .await
            .unwrap(),
        [None, None]
    );
    // Oldest first, with the sort date, first-seen time and link key.
    assert_eq!((&*rows[0].id, rows[0].sort_date()), ("1", t(10)));
    assert_eq!(rows[0].first_seen_at(), t(100));
    assert_eq!(
        rows[0].link_key(),
        Some(feedloom::select::link_key("https://example.org/1"))
    );
    s.save_cluster_rows(vec![
        row("1", Some(&[1, 2, 3]), Some("k1")),
        row("2", None, Some("k2")),
    ])
    .await
    .unwrap();
    // A second key never replaces the first; a missing signature keeps the stored one.
    s.save_cluster_rows(vec![
        row("1", None, Some("other")),
        row("gone", Some(&[9]), Some("x")),
    ])
    .await
    .unwrap();
    // Several rows for one item all apply, in order (a signature, a key, a newer signature).
    s.upsert_items("b", &[item("3", "three", Some(t(5)))], &[], t(100))
        .await
        .unwrap();
    let b3 = |sig: Option<&[u8]>, key: Option<&str>| ClusterUpdate {
        source: "b".into(),
        ..row("3", sig, key)
    };
    s.save_cluster_rows(vec![
        b3(Some(&[7]), None),
        b3(None, Some("k3")),
        b3(Some(&[8]), None),
    ])
    .await
    .unwrap();
    // Oldest first.
    let mut rows = s.cluster_rows().await.unwrap();
    let third = rows.remove(0);
    assert_eq!((&*third.source, &*third.id), ("b", "3"));
    assert_eq!(third.cluster, joined("k3"));
    assert_eq!(rows[0].cluster, joined("k1"));
    assert_eq!(rows[1].cluster, joined("k2"));
    // Signatures by key, in the order asked: none for an item without one or not stored.
    let sigs = s
        .signatures(
            vec![
                key("b", "3"),
                key("a", "2"),
                key("a", "gone"),
                key("a", "1"),
            ]
            .into(),
        )
        .await
        .unwrap();
    assert_eq!(sigs, [Some(vec![8]), None, None, Some(vec![1, 2, 3])]);
    assert!(s.signatures(ItemKeys::default()).await.unwrap().is_empty());
    // A few keys far apart among many signatures, a key asked for twice, and one past the last.
    let many: Vec<_> = (0..40)
        .map(|n| item(&format!("{n:02}"), "many", Some(t(n))))
        .collect();
    s.upsert_items("c", &many, &[], t(100)).await.unwrap();
    let c_rows: Vec<ClusterUpdate> = (0..40)
        .map(|n| ClusterUpdate {
            source: "c".into(),
            ..row(&format!("{n:02}"), Some(&[n as u8]), None)
        })
        .collect();
    s.save_cluster_rows(c_rows).await.unwrap();
    let sigs = s
        .signatures(
            vec![
                key("c", "39"),
                key("c", "00"),
                key("c", "02"),
                key("c", "39"),
                key("c", "40"),
                key("a", "1"),
            ]
            .into(),
        )
        .await
        .unwrap();
    assert_eq!(
        sigs,
        [
            Some(vec![39]),
            Some(vec![0]),
            Some(vec![2]),
            Some(vec![39]),
            None,
            Some(vec![1, 2, 3])
        ]
    );
    let all: Vec<_> = (0..40).map(|n| key("c", &format!("{n:02}"))).collect();
    let sigs = s.signatures(all.into()).await.unwrap();
    assert!((0..40).all(|n| sigs[n] == Some(vec![n as u8])));
    // Changed content clears the signature and keeps the key; unchanged content keeps both.
    let mut edited = one.clone();
    edited.title = "one, edited".into();
    s.upsert_items("a", &[edited, two], &[], t(200))
        .await
        .unwrap();
    let rows = s.cluster_rows().await.unwrap();
    let one = rows
        .iter()
        .find(|r| &*r.source == "a" && &*r.id == "1")
        .unwrap();
    assert_eq!(one.cluster, joined("k1"));
    assert_eq!(
        s.signatures(vec![key("a", "1"), key("b", "3")].into())
            .await
            .unwrap(),
        [None, Some(vec![8])]
    );
    // An item's own published id reads as its own key; any other id as joined.
    s.save_cluster_rows(vec![
        ClusterUpdate {
            source: "c".into(),
            ..row("00", None, Some(&feedloom::publish::output_id("c", "00")))
        },
        ClusterUpdate {
            source: "c".into(),
            ..row("01", None, Some(&feedloom::publish::output_id("c", "00")))
        },
    ])
    .await
    .unwrap();
    let rows = s.cluster_rows().await.unwrap();
    let key_of = |id: &str| {
        rows.iter()
            .find(|r| &*r.source == "c" && &*r.id == id)
            .and_then(|r| r.cluster.clone())
    };
    assert_eq!(key_of("00"), Some(ClusterKey::Own));
    // An id that the published id escapes.
    let odd = "x y/é%1";
    s.upsert_items("c", &[item(odd, "odd", Some(t(1)))], &[], t(100))
        .await
        .unwrap();
    let own = feedloom::publish::output_id("c", odd);
    s.save_cluster_rows(vec![ClusterUpdate {
        source: "c".into(),
        ..row(odd, None, Some(&own))
    }])
    .await
    .unwrap();
    let rows = s.cluster_rows().await.unwrap();
    let odd_row = rows
        .iter()
        .find(|r| &*r.source == "c" && &*r.id == odd)
        .unwrap();
    assert_eq!(odd_row.cluster, Some(ClusterKey::Own));
    assert_eq!(
        key_of("01"),
        Some(ClusterKey::Joined("urn:feedloom:c:00".into()))
    );
}

async fn signed_upserts_store_signatures_with_their_items(b: &Backend) {
    let s = b.open().await;
    let key = |i: &str| ("a".to_string(), i.to_string());
    let sigs = |s: &AnyStore| {
        let s = s.clone();
        async move {
            s.signatures(vec![key("1"), key("2"), key("3")].into())
                .await
                .unwrap()
        }
    };
    let (one, two, three) = (
        item("1", "one", Some(t(10))),
        item("2", "two", Some(t(20))),
        item("3", "three", Some(t(30))),
    );
    // By position; an item given `None` gets none.
    let counts = s
        .upsert_signed_items(
            "a",
            &[one.clone(), two.clone(), three.clone()],
            vec![Some(vec![1]), None, Some(vec![3])],
            &[],
            None,
            t(100),
        )
        .await
        .unwrap();
    assert_eq!(counts.new, 3);
    assert_eq!(sigs(&s).await, [Some(vec![1]), None, Some(vec![3])]);
    assert_eq!(s.cluster_rows().await.unwrap().len(), 3);
    // A changed item takes its new signature; an unchanged one sent again, its new one too;
    // one left unchanged (by id) keeps its own; no signatures at all leaves them as they are.
    let mut edited = one.clone();
    edited.title = "one, edited".into();
    s.upsert_signed_items(
        "a",
        &[edited, two.clone()],
        vec![Some(vec![11]), Some(vec![2])],
        &["3".to_string()],
        None,
        t(200),
    )
    .await
    .unwrap();
    assert_eq!(
        sigs(&s).await,
        [Some(vec![11]), Some(vec![2]), Some(vec![3])]
    );
    s.upsert_signed_items(
        "a",
        &[two],
        Vec::new(),
        &["1".into(), "3".into()],
        None,
        t(300),
    )
    .await
    .unwrap();
    assert_eq!(
        sigs(&s).await,
        [Some(vec![11]), Some(vec![2]), Some(vec![3])]
    );
    // Items to reuse that are not stored: nothing is written, signatures neither.
    let err = s
        .upsert_signed_items(
            "a",
            &[item("4", "four", Some(t(40)))],
            vec![Some(vec![4])],
            &["gone".into()],
            None,
            t(400),
        )
        .await;
    assert!(
        matches!(err, Err(feedloom::store::StoreError::NotStored { .. })),
        "{err:?}"
    );
    let four = s.signatures(vec![key("4")].into()).await.unwrap();
    assert_eq!(four, [None]);
}

async fn generation_counts_changes_to_items_only(b: &Backend) {
    let s = b.open().await;
    let g0 = s.generation().await.unwrap();
    let (one, two) = (item("1", "one", Some(t(10))), item("2", "two", Some(t(20))));
    s.upsert_items("a", &[one.clone(), two.clone()], &[], t(100))
        .await
        .unwrap();
    let g1 = s.generation().await.unwrap();
    assert_ne!(g1, g0, "new items");
    // The same items again, a fetch recorded, an item unlisted: nothing to publish anew.
    s.upsert_items("a", &[one.clone(), two.clone()], &[], t(200))
        .await
        .unwrap();
    s.record_fetch("a", &SourceState::default()).await.unwrap();
    s.upsert_items("a", std::slice::from_ref(&one), &[], t(300))
        .await
        .unwrap();
    assert_eq!(s.generation().await.unwrap(), g1);
    let mut edited = one.clone();
    edited.title = "one, edited".into();
    s.upsert_items("a", &[edited], &[], t(400)).await.unwrap();
    let g2 = s.generation().await.unwrap();
    assert_ne!(g2, g1, "a changed item");
    assert_eq!(s.prune(t(0), 100).await.unwrap(), 0);
    assert_eq!(s.generation().await.unwrap(), g2, "nothing pruned");
    assert_eq!(s.prune(t(10_000), 100).await.unwrap(), 1);
    assert_ne!(s.generation().await.unwrap(), g2, "an item deleted");
}

async fn upsert_keeps_items_said_unchanged_listed_unread_and_unwritten(b: &Backend) {
    let s = b.open().await;
    let (one, two, three) = (
        item("1", "one", Some(t(10))),
        item("2", "two", Some(t(20))),
        item("3", "three", Some(t(30))),
    );
    s.upsert_items("a", &[one.clone(), two.clone(), three.clone()], &[], t(100))
        .await
        .unwrap();
    let g0 = s.generation().await.unwrap();
    // Only unchanged items: they count as unchanged and nothing is there to publish anew.
    assert_eq!(
        s.upsert_items("a", &[], &["1".into(), "2".into(), "3".into()], t(200))
            .await
            .unwrap(),
        counts(0, 0, 3)
    );
    assert_eq!(s.generation().await.unwrap(), g0, "nothing changed");
    // One written (changed), one said unchanged, one left out of the document.
    let mut edited = one.clone();
    edited.title = "one, edited".into();
    let four = item("4", "four", Some(t(40)));
    assert_eq!(
        s.upsert_items("a", &[edited, four], &["2".into()], t(300))
            .await
            .unwrap(),
        counts(1, 1, 1)
    );
    assert_ne!(s.generation().await.unwrap(), g0);
    let got = s.items(&ItemQuery::default()).await.unwrap();
    let two_stored = got.iter().find(|i| i.item.id == "2").unwrap();
    assert_eq!(two_stored.item, two, "an unchanged item is left as it was");
    assert_eq!(two_stored.first_seen, t(100));
    // "2" is listed (never stale), "3" was unlisted at t(300): only it goes.
    assert_eq!(s.prune(t(50_000), 100).await.unwrap(), 1);
    let left: Vec<String> = all(&s).await.into_iter().map(|(_, i)| i).collect();
    assert_eq!(left, ["4", "2", "1"]);
    // An id both written and said unchanged is written, and counted once.
    assert_eq!(
        s.upsert_items(
            "a",
            std::slice::from_ref(&two),
            &["2".into(), "4".into()],
            t(400)
        )
        .await
        .unwrap(),
        counts(0, 0, 2)
    );
}

async fn upsert_with_unchanged_items_not_stored_writes_nothing(b: &Backend) {
    let s = b.open().await;
    let (one, two) = (item("1", "one", Some(t(10))), item("2", "two", Some(t(20))));
    s.upsert_items("a", &[one.clone(), two.clone()], &[], t(100))
        .await
        .unwrap();
    s.upsert_items("b", &[item("9", "nine", None)], &[], t(100))
        .await
        .unwrap();
    let g0 = s.generation().await.unwrap();
    let before = s.items(&ItemQuery::default()).await.unwrap();
    // "9" is stored, but for another source; "gone" is not stored at all.
    let three = item("3", "three", Some(t(30)));
    let err = s
        .upsert_items(
            "a",
            &[three],
            &["2".into(), "9".into(), "gone".into()],
            t(200),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            feedloom::store::StoreError::NotStored { missing: 2, .. }
        ),
        "{err}"
    );
    assert_eq!(s.items(&ItemQuery::default()).await.unwrap(), before);
    assert_eq!(s.generation().await.unwrap(), g0);
    // Nothing was unlisted either: "1" is still listed, so never stale.
    assert_eq!(s.prune(t(50_000), 100).await.unwrap(), 0);
}

/// A `Reuse` as stored (its fields are the normaliser's own): `context` tells them apart.
fn reuse(context: u64) -> Reuse {
    serde_json::from_value(serde_json::json!({
        "context": context,
        "guids": "AQIDBAUGBwg=",
        "other": {"9": ["urn:x:9", 1]},
    }))
    .unwrap()
}

async fn what_a_document_leaves_to_reuse_is_written_with_its_items(b: &Backend) {
    let s = b.open().await;
    assert_eq!(s.source_reuse("a").await.unwrap(), None);
    let (one, two) = (item("1", "one", Some(t(10))), item("2", "two", Some(t(20))));
    let upsert = |items: Vec<Item>, unchanged: Vec<String>, with: Option<Reuse>| {
        let s = s.clone();
        async move {
            s.upsert_signed_items("a", &items, Vec::new(), &unchanged, with.as_ref(), t(100))
                .await
        }
    };
    upsert(vec![one.clone(), two.clone()], vec![], Some(reuse(1)))
        .await
        .unwrap();
    assert!(!reuse(1).is_empty());
    assert_eq!(s.source_reuse("a").await.unwrap(), Some(reuse(1)));
    assert_eq!(s.source_reuse("b").await.unwrap(), None);
    // Another document's replaces it, also with nothing new to write; it outlives the store.
    upsert(vec![], vec!["1".into(), "2".into()], Some(reuse(2)))
        .await
        .unwrap();
    assert_eq!(
        b.open().await.source_reuse("a").await.unwrap(),
        Some(reuse(2))
    );
    // An upsert that writes nothing (items said unchanged are not stored) leaves it.
    let err = upsert(vec![], vec!["gone".into()], Some(reuse(3))).await;
    assert!(
        matches!(err, Err(feedloom::store::StoreError::NotStored { .. })),
        "{err:?}"
    );
    assert_eq!(s.source_reuse("a").await.unwrap(), Some(reuse(2)));
    // Recording a fetch does not touch it, nor does the state carry it.
    let st = SourceState {
        url: "https://example.org/a.xml".into(),
        last_fetch_at: Some(t(5)),
        ..SourceState::default()
    };
    s.record_fetch("a", &st).await.unwrap();
    assert_eq!(s.source_reuse("a").await.unwrap(), Some(reuse(2)));
    // A document that leaves nothing to reuse, or a plain upsert, forgets it.
    upsert(vec![one.clone()], vec![], None).await.unwrap();
    assert_eq!(s.source_reuse("a").await.unwrap(), None);
    upsert(vec![one.clone()], vec![], Some(reuse(4)))
        .await
        .unwrap();
    s.upsert_items("a", &[one], &[], t(200)).await.unwrap();
    assert_eq!(s.source_reuse("a").await.unwrap(), None);
}
