//! A head's history (issue #19): every assertion and retraction of every transaction,
//! however the transactions were grouped into commits, and the same whether built at
//! once or extended commit by commit from a cached history.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use datoms_core::{Datom, Db, IndexKind, Keyword, Schema};
use datoms_storage::{history, store, HeadHistory, MemoryStorage, Storage};
use proptest::prelude::*;

fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:p/name {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :p/n {:db/valueType :db.type/long :db/index true}
          :p/tag {:db/cardinality :db.cardinality/many}}",
    )
    .unwrap()
}

/// The `i`th transaction: moves :p/n of one of three people (a retraction and an
/// assertion), adds a person, and every third one retracts a tag.
fn tx(i: usize) -> String {
    let retract = if i % 3 == 2 {
        format!("[:db/retract [:p/name \"p{}\"] :p/tag :t{}]", i % 3, i - 2)
    } else {
        String::new()
    };
    format!(
        "[{{:p/name \"p{}\" :p/n {i} :p/tag :t{i}}} {{:p/name \"q{i}\" :p/n {}}} {retract}]",
        i % 3,
        i * 7
    )
}

/// Runs the transactions in `groups`, storing each group as one commit of head "main":
/// every datom the transactions produced (the reference), and the commits.
async fn run(storage: &dyn Storage, groups: &[usize]) -> (Vec<Datom>, Vec<datoms_core::Address>) {
    let mut db = Db::new(schema());
    let mut all = Vec::new();
    let mut commits = Vec::new();
    let mut i = 0;
    for group in groups {
        for _ in 0..*group {
            let report = db.with_edn(&tx(i)).unwrap();
            all.extend(report.tx_data);
            db = report.db_after;
            i += 1;
        }
        let stored = store(&db, storage, "main").await.unwrap();
        commits.push(stored.commit);
        db = stored.db;
    }
    (all, commits)
}

fn sorted(mut datoms: Vec<Datom>) -> Vec<Datom> {
    datoms.sort_by(|x, y| {
        IndexKind::Eavt
            .cmp(x, y)
            .then(x.tx.cmp(&y.tx))
            .then(x.added.cmp(&y.added))
    });
    datoms
}

fn everything(h: &HeadHistory) -> Vec<Datom> {
    sorted(
        h.history
            .matching(None, None, None, None)
            .cloned()
            .collect(),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn history_holds_every_change_and_extends_from_any_cached_commit(
        groups in prop::collection::vec(1usize..5, 1..6),
        cut in 0usize..6,
    ) {
        rt().block_on(async {
            let storage = MemoryStorage::new();
            let (all, commits) = run(&storage, &groups).await;
            let whole = history(&storage, "main", None).await.unwrap();
            assert_eq!(everything(&whole), sorted(all.clone()));
            assert_eq!(whole.commit, *commits.last().unwrap());
            assert_eq!(whole.commits_folded, commits.len());
            // From the fourth transaction on, p0's :p/n moves: the history keeps the
            // retraction the current db has forgotten.
            if groups.iter().sum::<usize>() >= 4 {
                assert!(whole.history.matching(None, None, None, None).any(|d| !d.added));
            }

            // The history of an older commit, extended to the head, equals the whole.
            let older = commits[cut.min(commits.len() - 1)];
            let cached = datoms_storage::history_of_commit(&storage, older, None).await.unwrap();
            let extended = history(&storage, "main", Some(&cached)).await.unwrap();
            assert_eq!(everything(&extended), everything(&whole));
            let after_cut = commits.iter().rev().take_while(|c| **c != older).count();
            assert_eq!(extended.commits_folded, after_cut);
            // Only the commits after the cached one are read.
            assert_eq!(extended.stats.commits_fetched, after_cut as u64);

            // Current: nothing is read past the head.
            let again = history(&storage, "main", Some(&extended)).await.unwrap();
            assert_eq!(again.commits_folded, 0);
            assert_eq!(again.stats.commits_fetched, 0);
        });
    }
}

#[test]
fn a_cached_history_of_another_lineage_is_ignored() {
    rt().block_on(async {
        let storage = MemoryStorage::new();
        let (_, commits) = run(&storage, &[2, 2]).await;
        // Another db's history, stored under another head: not an ancestor of "main".
        let other = Arc::new(MemoryStorage::new());
        let mut db = Db::new(schema());
        db = db
            .with_edn("[[:db/add -1 :p/name \"z\"]]")
            .unwrap()
            .db_after;
        store(&db, &*other, "main").await.unwrap();
        let foreign = history(&*other, "main", None).await.unwrap();

        let h = history(&storage, "main", Some(&foreign)).await.unwrap();
        assert_eq!(h.commits_folded, commits.len());
        let z = datoms_core::Value::String("z".into());
        let name = Keyword::new(":p/name");
        assert_eq!(
            h.history
                .matching(None, Some(&name), Some(&z), None)
                .count(),
            0
        );
    });
}

#[test]
fn a_merge_commit_brings_the_other_sides_changes_into_the_history() {
    rt().block_on(async {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let (mut all, commits) = run(&*storage, &[2]).await;
        // A branch at the same commit, changed on both sides.
        storage
            .cas_head("side", None, *commits.last().unwrap())
            .await
            .unwrap();
        let ours = datoms_storage::restore(storage.clone(), "main")
            .await
            .unwrap()
            .db;
        let report = ours.with_edn("[{:p/name \"ours\" :p/n 1}]").unwrap();
        all.extend(report.tx_data.clone());
        store(&report.db_after, &*storage, "main").await.unwrap();
        let theirs = datoms_storage::restore(storage.clone(), "side")
            .await
            .unwrap()
            .db;
        let report = theirs.with_edn("[{:p/name \"theirs\" :p/n 2}]").unwrap();
        let side = store(&report.db_after, &*storage, "side").await.unwrap();
        datoms_storage::merge(
            storage.clone(),
            "main",
            side.commit,
            datoms_core::merge::Strategy::Fail,
            datoms_storage::StoreOptions::default(),
        )
        .await
        .unwrap();
        let h = history(&*storage, "main", None).await.unwrap();
        let name = Keyword::new(":p/name");
        for who in ["ours", "theirs"] {
            let v = datoms_core::Value::String(who.into());
            assert_eq!(
                h.history
                    .matching(None, Some(&name), Some(&v), None)
                    .count(),
                1,
                "{who}"
            );
        }
        // Everything main's own transactions did is there too.
        let everything = everything(&h);
        assert!(sorted(all).iter().all(|d| everything.contains(d)));
    });
}
