//! `sync` by policy, through the backend: `SyncPolicy::Auto` replays the log when it can
//! and restores trees otherwise, so it brings every replica to the head that
//! `SyncPolicy::Tree` does — also replicas the log cannot serve — while
//! `SyncPolicy::Log` alone refuses those with `StorageError::LogGap`.

use datoms_core::{Db, Schema};
use datoms_storage::{restore_from, store, sync, Storage, StorageError, SyncPolicy, SyncRoute};

use crate::factory::Factory;
use crate::failure::{ensure_eq, Context, Failure};
use crate::history;
use crate::support::{ensure_same, expect_err, snapshot, Rig, HEAD};

/// `db` with one more person named `name`.
fn with_person(db: &Db, name: &str) -> Result<Db, Failure> {
    Ok(db
        .with_edn(&format!(
            r#"[{{:person/name "{name}" :person/age 30 :person/note "n"}}]"#
        ))
        .context(format_args!("adding {name}"))?
        .db_after)
}

/// Syncs `db1` by Auto and Tree (both must reach `want` by restoring trees) and by Log
/// (which must refuse with `LogGap`).
async fn auto_and_tree_reach_the_head(
    db1: &Db,
    storage: &dyn Storage,
    want: &Db,
    what: &str,
) -> Result<(), Failure> {
    let want = snapshot(want)?;
    for policy in [SyncPolicy::Auto, SyncPolicy::Tree] {
        let synced = sync(db1, storage, HEAD, policy)
            .await
            .context(format_args!("{what}: sync with {policy:?}"))?;
        ensure_eq!(
            synced.route,
            SyncRoute::Tree,
            "{what}: the route of sync with {policy:?}"
        );
        ensure_same(
            &format!("{what}: sync with {policy:?}"),
            &snapshot(&synced.db)?,
            &want,
        )?;
        ensure_eq!(
            synced.db.pending_txs(),
            0,
            "{what}: transactions left pending after sync with {policy:?}"
        );
    }
    match expect_err(
        &format!("{what}: sync with Log"),
        sync(db1, storage, HEAD, SyncPolicy::Log).await,
    )? {
        StorageError::LogGap { .. } => Ok(()),
        other => Err(Failure::new(format_args!(
            "{what}: sync with Log: expected StorageError::LogGap, got {other:?}"
        ))),
    }
}

/// A new replica made with another schema and tree configuration (an empty db with the
/// default schema, as the storage crate's docs make one) syncs to a store's first commit.
pub async fn auto_sync_brings_a_replica_with_another_schema_to_the_head<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let primary = with_person(&history::empty_db(), "p1")?;
    let stored = store(&primary, &*rig.storage, HEAD)
        .await
        .context("storing the first commit")?;
    auto_and_tree_reach_the_head(
        &Db::new(Schema::default()),
        &*rig.storage,
        &stored.db,
        "a new replica with the default schema",
    )
    .await
}

/// A replica one commit behind that holds a transaction it has not stored: the head's
/// log does not apply to it; Auto restores the head's trees (dropping the local
/// transaction, as a tree restore does).
pub async fn auto_sync_brings_a_replica_with_an_unstored_transaction_to_the_head<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let rig = Rig::new(factory).await?;
    let first = store(
        &with_person(&history::empty_db(), "p1")?,
        &*rig.storage,
        HEAD,
    )
    .await
    .context("storing the first commit")?;
    let replica = restore_from(&history::empty_db(), &*rig.storage, HEAD)
        .await
        .context("restoring the replica")?
        .db;
    let second = store(&with_person(&first.db, "p2")?, &*rig.storage, HEAD)
        .await
        .context("storing the second commit")?;
    let local = with_person(&replica, "local")?;
    auto_and_tree_reach_the_head(
        &local,
        &*rig.storage,
        &second.db,
        "a replica one commit behind with a local transaction",
    )
    .await?;
    // The same replica without its local transaction replays the head's log.
    let synced = sync(&replica, &*rig.storage, HEAD, SyncPolicy::Auto)
        .await
        .context("sync of the replica without its local transaction")?;
    ensure_eq!(
        synced.route,
        SyncRoute::Log,
        "sync of a replica one small commit behind"
    );
    ensure_same(
        "sync of a replica one small commit behind",
        &snapshot(&synced.db)?,
        &snapshot(&second.db)?,
    )
}
