//! Views by wall-clock instant and three-way merge of heads (issue #19): a clock that
//! steps backwards never breaks a lookup by instant; a merge finds the common ancestor
//! at any distance, stores a two-parent commit that restores and syncs, fast-forwards
//! onto a descendant, and leaves the head alone on conflicts.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use datoms_core::merge::{Conflict, Strategy};
use datoms_core::{Address, Commit, Datom, Db, IndexKind, Schema};
use datoms_storage::{
    as_of, merge, restore, store_with, sync, At, MemoryStorage, MergeKind, Storage, StorageError,
    StoreOptions, SyncPolicy, SyncRoute,
};

fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:p/name {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :p/n {:db/valueType :db.type/long}
          :p/tag {:db/valueType :db.type/keyword :db/cardinality :db.cardinality/many}}",
    )
    .unwrap()
}

fn datoms(db: &Db) -> Vec<Datom> {
    db.datoms(IndexKind::Eavt, &[])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn at(time: u64) -> StoreOptions {
    StoreOptions {
        time: Some(time),
        ..StoreOptions::default()
    }
}

async fn commit_of(storage: &dyn Storage, a: Address) -> Commit {
    let bytes = storage
        .get_many(&[a])
        .await
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
    Commit::decode(a, &bytes).unwrap()
}

/// Transacts `edn` on `db` and stores it on `head` at `time`.
async fn put(storage: &dyn Storage, db: &Db, head: &str, edn: &str, time: u64) -> (Db, Address) {
    let next = db.with_edn(edn).unwrap().db_after;
    let stored = store_with(&next, storage, head, at(time)).await.unwrap();
    (stored.db, stored.commit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_by_instant_survives_a_clock_stepping_backwards() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let mut db = Db::new(schema());
    let mut commits = Vec::new();
    // The clock reads 1000, 3000, then steps back to 2000, then 5000.
    for (i, clock) in [1000u64, 3000, 2000, 5000].into_iter().enumerate() {
        let (next, c) = put(
            &*storage,
            &db,
            "main",
            &format!("[{{:p/name \"p{i}\"}}]"),
            clock,
        )
        .await;
        db = next;
        commits.push(c);
    }
    let mut times = Vec::new();
    for c in &commits {
        times.push(commit_of(&*storage, *c).await.time);
    }
    assert_eq!(
        times,
        [1000, 3000, 3000, 5000],
        "never earlier than the parent"
    );
    for (instant, expected) in [
        (1000, Some(0)),
        (2500, Some(0)),
        // The clock read 2000 for the third commit, recorded as 3000: the newest commit
        // at or before 3000 is the third.
        (2000, Some(0)),
        (3000, Some(2)),
        (4999, Some(2)),
        (5000, Some(3)),
        (u64::MAX, Some(3)),
        (999, None),
    ] {
        match as_of(storage.clone(), "main", At::Instant(instant), None).await {
            Ok(view) => {
                let i = expected.unwrap_or_else(|| panic!("{instant}: found {:?}", view.commit));
                assert_eq!(view.commit, Some(commits[i]), "instant {instant}");
                assert_eq!(datoms(&view.db).len(), i + 1);
            }
            Err(StorageError::NothingAt { name, .. }) => {
                assert_eq!(
                    (expected, name.as_str()),
                    (None, "main"),
                    "instant {instant}"
                )
            }
            Err(e) => panic!("{instant}: {e}"),
        }
    }
}

/// A base, then `ours` and `theirs` heads each with commits of their own.
async fn diverged(storage: &dyn Storage, ours_edn: &[&str], theirs_edn: &[&str]) -> (Db, Address) {
    let (base, base_commit) = put(
        storage,
        &Db::new(schema()),
        "main",
        "[{:p/name \"ann\" :p/n 1} {:p/name \"bob\" :p/n 2}]",
        10,
    )
    .await;
    storage.cas_head("theirs", None, base_commit).await.unwrap();
    let mut db = base.clone();
    for (i, edn) in ours_edn.iter().enumerate() {
        db = put(storage, &db, "main", edn, 20 + i as u64).await.0;
    }
    let mut db = base.clone();
    for (i, edn) in theirs_edn.iter().enumerate() {
        db = put(storage, &db, "theirs", edn, 100 + i as u64).await.0;
    }
    (base, base_commit)
}

async fn head(storage: &dyn Storage, name: &str) -> Address {
    storage.get_head(name).await.unwrap().unwrap().commit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_commit_has_two_parents_and_restores_and_syncs() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    // More commits on each side than a commit lists ancestors: the common ancestor is
    // found by walking, not from the listed lineage.
    let ours: Vec<String> = (0..12)
        .map(|i| format!("[{{:p/name \"o{i}\" :p/n {i}}}]"))
        .collect();
    let theirs: Vec<String> = (0..12)
        .map(|i| {
            format!("[{{:p/name \"t{i}\" :p/n {i}}} [:db/add [:p/name \"ann\"] :p/tag :t{i}]]")
        })
        .collect();
    let o: Vec<&str> = ours.iter().map(String::as_str).collect();
    let t: Vec<&str> = theirs.iter().map(String::as_str).collect();
    let (_, base) = diverged(&*storage, &o, &t).await;
    let (ours_head, theirs_head) = (
        head(&*storage, "main").await,
        head(&*storage, "theirs").await,
    );
    let out = merge(
        storage.clone(),
        "main",
        theirs_head,
        Strategy::Fail,
        StoreOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((out.kind, out.base), (MergeKind::Merged, base));
    assert_eq!(head(&*storage, "main").await, out.commit);
    let commit = commit_of(&*storage, out.commit).await;
    assert_eq!(commit.parent, Some(ours_head));
    assert_eq!(commit.merged, [theirs_head]);
    assert!(
        commit.time >= 111,
        "not earlier than theirs ({})",
        commit.time
    );
    // It restores, with both sides' people and tags.
    let restored = restore(storage.clone(), "main").await.unwrap();
    let names = restored
        .db
        .datoms(
            IndexKind::Aevt,
            &[datoms_core::Component::A(":p/name".into())],
        )
        .unwrap()
        .count();
    assert_eq!(names, 2 + 12 + 12);
    assert_eq!(
        restored.db.entity_attr(1, &":p/tag".into()).unwrap().len(),
        12
    );
    // A replica at our previous head syncs by replaying the merge commit's log; one at
    // theirs by restoring trees. Both reach the stored roots.
    let at_ours = datoms_storage::restore_commit(
        &*storage,
        ours_head,
        None,
        datoms_core::restore::Mode::Eager,
    )
    .await
    .unwrap()
    .db;
    let synced = sync(&at_ours, &*storage, "main", SyncPolicy::Log)
        .await
        .unwrap();
    assert_eq!(synced.route, SyncRoute::Log);
    assert_eq!(synced.db.root_addresses(), commit.roots);
    let at_theirs = datoms_storage::restore_commit(
        &*storage,
        theirs_head,
        None,
        datoms_core::restore::Mode::Eager,
    )
    .await
    .unwrap()
    .db;
    let synced = sync(&at_theirs, &*storage, "main", SyncPolicy::Auto)
        .await
        .unwrap();
    assert_eq!(synced.route, SyncRoute::Tree);
    assert_eq!(synced.db.root_addresses(), commit.roots);
    // Merging it again is a no-op; merging main into theirs is a fast-forward.
    let again = merge(
        storage.clone(),
        "main",
        theirs_head,
        Strategy::Fail,
        StoreOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        (again.kind, again.commit),
        (MergeKind::UpToDate, out.commit)
    );
    let ff = merge(
        storage.clone(),
        "theirs",
        out.commit,
        Strategy::Fail,
        StoreOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(ff.kind, MergeKind::FastForward);
    assert_eq!(head(&*storage, "theirs").await, out.commit);
    // A later merge through the merge commit finds the merge commit as the ancestor
    // (through its second parent too).
    let (db, _) = put(
        &*storage,
        &restored.db,
        "theirs",
        "[{:p/name \"late\"}]",
        500,
    )
    .await;
    drop(db);
    let late = merge(
        storage.clone(),
        "main",
        head(&*storage, "theirs").await,
        Strategy::Fail,
        StoreOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(late.kind, MergeKind::FastForward);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_merge_leaves_the_head_or_resolves_by_strategy() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    diverged(
        &*storage,
        &["[[:db/add [:p/name \"ann\"] :p/n 10]]"],
        &["[[:db/add [:p/name \"ann\"] :p/n 20]]"],
    )
    .await;
    let (before, theirs) = (
        head(&*storage, "main").await,
        head(&*storage, "theirs").await,
    );
    let err = merge(
        storage.clone(),
        "main",
        theirs,
        Strategy::Fail,
        StoreOptions::default(),
    )
    .await
    .unwrap_err();
    match err {
        StorageError::Core(datoms_core::Error::MergeConflicts { conflicts }) => {
            assert!(matches!(
                &conflicts[..],
                [Conflict::CardinalityOne { ours, theirs, .. }]
                    if *ours == 10i64.into() && *theirs == 20i64.into()
            ));
        }
        other => panic!("{other}"),
    }
    assert_eq!(head(&*storage, "main").await, before, "nothing written");
    let out = merge(
        storage.clone(),
        "main",
        theirs,
        Strategy::Theirs,
        StoreOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(out.resolved.len(), 1);
    let db = restore(storage.clone(), "main").await.unwrap().db;
    let n: Vec<_> = db.entity_attr(1, &":p/n".into()).unwrap();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].v, 20i64.into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrelated_histories_are_refused() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    put(
        &*storage,
        &Db::new(schema()),
        "main",
        "[{:p/name \"a\"}]",
        1,
    )
    .await;
    let (_, other) = put(
        &*storage,
        &Db::new(schema()),
        "other",
        "[{:p/name \"b\"}]",
        1,
    )
    .await;
    assert!(matches!(
        merge(
            storage.clone(),
            "main",
            other,
            Strategy::Fail,
            StoreOptions::default()
        )
        .await,
        Err(StorageError::Unrelated { .. })
    ));
}

mod ancestors {
    use proptest::prelude::*;

    use super::*;
    use datoms_core::merge::Strategy as Merge;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Merging an ancestor into a head does nothing; merging a head into a branch at
        /// one of its ancestors (at any distance, past the listed ancestors too) is a
        /// fast-forward, and neither writes a commit.
        #[test]
        fn merging_with_an_ancestor_is_a_fast_forward(n in 1usize..24, pick in any::<prop::sample::Index>()) {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
                let mut db = Db::new(schema());
                let mut commits = Vec::new();
                for i in 0..n {
                    let (next, c) =
                        put(&*storage, &db, "main", &format!("[{{:p/name \"p{i}\"}}]"), i as u64).await;
                    db = next;
                    commits.push(c);
                }
                let head = *commits.last().unwrap();
                let old = commits[pick.index(n)];
                let up = merge(storage.clone(), "main", old, Merge::Fail, StoreOptions::default())
                    .await
                    .unwrap();
                assert_eq!((up.kind, up.commit), (MergeKind::UpToDate, head));
                storage.cas_head("old", None, old).await.unwrap();
                let ff = merge(storage.clone(), "old", head, Merge::Fail, StoreOptions::default())
                    .await
                    .unwrap();
                let expected = if old == head { MergeKind::UpToDate } else { MergeKind::FastForward };
                assert_eq!((ff.kind, ff.commit, ff.written.bytes_written), (expected, head, 0));
                assert_eq!(storage.get_head("old").await.unwrap().unwrap().commit, head);
            });
        }
    }
}
