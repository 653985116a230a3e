//! `merge`: a merge commit (two parents) stored through the backend restores to the
//! merged db, survives a reopen, syncs a replica from either parent (by log replay from
//! the first, by tree restore from the second) and passes `verify`.

use std::sync::Arc;

use datoms_core::merge::Strategy;
use datoms_core::restore::Mode;
use datoms_core::{Commit, Db};
use datoms_storage::{
    merge, restore, restore_commit, store, sync, verify, MergeKind, Storage, StoreOptions,
    SyncPolicy, SyncRoute,
};

use crate::factory::Factory;
use crate::failure::{ensure, ensure_eq, Context, Failure};
use crate::support::HEAD;

/// A base commit; `HEAD` and the branch `theirs` each add people and change ages of
/// their own; the merge of `theirs` into `HEAD` stores a commit whose parents are both
/// heads' commits, which restores, reopens, syncs and verifies.
pub async fn a_merge_commit_stores_restores_and_syncs<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let store_ = factory.create().await.context("creating a store")?;
    let schema = datoms_core::edn::parse_schema(
        "{:p/name {:db/valueType :db.type/string :db/unique :db.unique/identity}}",
    )
    .context("schema")?;
    let people: String = (0..200)
        .map(|i| format!("{{:p/name \"p{i}\" :p/age {i}}}"))
        .collect();
    let base = Db::new(schema)
        .with_edn(&format!("[{people}]"))
        .context("base tx")?
        .db_after;
    let s: &dyn Storage = &store_;
    let base = store(&base, s, HEAD).await.context("storing the base")?;
    s.cas_head("theirs", None, base.commit)
        .await
        .context("creating branch theirs")?;
    let ours = base
        .db
        .with_edn("[{:p/name \"ours\"} [:db/add [:p/name \"p1\"] :p/age 1000]]")
        .context("our tx")?
        .db_after;
    let ours = store(&ours, s, HEAD).await.context("storing ours")?;
    let theirs = base
        .db
        .with_edn("[{:p/name \"theirs\"} [:db/add [:p/name \"p199\"] :p/age 2000]]")
        .context("their tx")?
        .db_after;
    let theirs = store(&theirs, s, "theirs")
        .await
        .context("storing theirs")?;
    drop(base);

    let typed = Arc::new(store_);
    let storage: Arc<dyn Storage> = typed.clone();
    let out = merge(
        storage.clone(),
        HEAD,
        theirs.commit,
        Strategy::Fail,
        StoreOptions::default(),
    )
    .await
    .context("merging theirs")?;
    ensure_eq!(out.kind, MergeKind::Merged, "the merge kind");
    let bytes = storage
        .get_many(&[out.commit])
        .await
        .context("reading the merge commit")?
        .pop()
        .flatten();
    ensure!(bytes.is_some(), "the merge commit is not stored");
    let commit = Commit::decode(out.commit, &bytes.unwrap_or_default()).context("decoding it")?;
    ensure_eq!(commit.parent, Some(ours.commit), "first parent");
    ensure_eq!(commit.merged, vec![theirs.commit], "merge parents");

    let restored = restore(storage.clone(), HEAD)
        .await
        .context("restoring the merge")?;
    ensure_eq!(restored.db.root_addresses(), commit.roots, "restored roots");
    for (name, age) in [
        ("p1", 1000i64),
        ("p199", 2000),
        ("ours", -1),
        ("theirs", -1),
    ] {
        let e = restored
            .db
            .entity_by_value(&":p/name".into(), &name.into())
            .context("lookup")?;
        ensure!(e.is_some(), "{name} is missing after the merge");
        if age >= 0 {
            let ages = restored
                .db
                .entity_attr(e.unwrap_or_default(), &":p/age".into())
                .context("ages")?;
            ensure_eq!(ages.len(), 1, "{name}'s ages");
            ensure_eq!(ages[0].v, age.into(), "{name}'s age");
        }
    }
    verify(&*storage, HEAD)
        .await
        .context("verifying the merge")?;

    for (from, policy, route) in [
        (ours.commit, SyncPolicy::Log, SyncRoute::Log),
        (theirs.commit, SyncPolicy::Auto, SyncRoute::Tree),
    ] {
        let replica = restore_commit(&*storage, from, None, Mode::Eager)
            .await
            .context("a replica at a parent")?
            .db;
        let synced = sync(&replica, &*storage, HEAD, policy)
            .await
            .context("syncing to the merge")?;
        ensure_eq!(synced.route, route, "sync route from {from}");
        ensure_eq!(synced.db.root_addresses(), commit.roots, "synced roots");
    }
    // Every db that reads through the storage is gone: the suite's handle is the last.
    drop((restored, storage));
    let store_ = Arc::try_unwrap(typed).map_err(|_| Failure::new("the storage is still shared"))?;
    let reopened = factory.reopen(store_).await.context("reopen")?;
    let head = reopened.get_head(HEAD).await.context("head after reopen")?;
    ensure_eq!(
        head.map(|h| h.commit),
        Some(out.commit),
        "head after reopen"
    );
    Ok(())
}
