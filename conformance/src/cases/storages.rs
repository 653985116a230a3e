//! One db value, several storages: never a head on an incomplete commit.
//!
//! A store moves a head only to a commit whose every node is in that storage. What a
//! storage holds is derived from its own head, never from a mark on a shared node or a
//! cache, so one db value stored to two storages, a lazily restored db stored somewhere
//! else, and a store retried after failed writes all leave complete commits. After every
//! store here, a fresh full restore of that storage gives the db (same roots) and
//! [`verify()`] passes.

use std::collections::HashSet;
use std::sync::Arc;

use datoms_core::{Address, Db, Error};
use datoms_storage::{
    restore, restore_from, store, store_with, sync, verify, Confirm, FailOn, Storage, StorageError,
    StoreOptions, Stored, SyncPolicy,
};

use crate::factory::Factory;
use crate::failure::{ensure, ensure_eq, Context, Failure};
use crate::history::{self, Op, Rng, Tx};
use crate::settings;
use crate::support::{
    advance, apply, ensure_same, expect_err, node_addresses, seeded, snapshot, store_ok, Rig, HEAD,
};

/// The seed of the deterministic cases.
const SEED: u64 = 0x5707_A6E5;

async fn fresh<F: Factory>(factory: &F) -> Result<Arc<dyn Storage>, Failure> {
    Ok(Arc::new(
        factory.create().await.context("creating a store")?,
    ))
}

/// Fails unless `storage`'s head is complete and holds `db`: a fresh full restore gives
/// the same datoms, counters and roots, and [`verify`] reads every node.
async fn ensure_complete(what: &str, storage: &dyn Storage, db: &Db) -> Result<(), Failure> {
    let restored = restore_from(&history::empty_db(), storage, HEAD)
        .await
        .context(format_args!("{what}: a fresh full restore"))?
        .db;
    ensure_same(what, &snapshot(&restored)?, &snapshot(db)?)?;
    let verified = verify(storage, HEAD)
        .await
        .context(format_args!("{what}: verify"))?;
    ensure_eq!(verified.datoms, db.len(), "{what}: datoms verify read");
    Ok(())
}

/// One db value stored to two fresh storages is complete in both (the second store
/// writes every node again), and so is the next version stored to both.
pub async fn one_db_stored_to_two_storages_is_complete_in_both<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let (mut generator, db) = seeded(SEED, 50)?;
    let (a, b) = (fresh(factory).await?, fresh(factory).await?);
    let in_a = store_ok(&db, &*a, "a db to a first storage").await?;
    let in_b = store_ok(&db, &*b, "the same db to a second storage").await?;
    ensure_eq!(
        in_b.stats.nodes_written,
        in_a.stats.nodes_written,
        "the second storage holds nothing, so it must get every node"
    );
    ensure_complete("the first storage", &*a, &db).await?;
    ensure_complete("the second storage", &*b, &db).await?;

    // The next version, stored to both: each gets the new nodes, none takes the other's
    // store as its own.
    let next = advance(&mut generator, &in_a.db, 3)?;
    let next_a = store_ok(&next, &*a, "the next version to the first storage").await?;
    let next_b = store_ok(&next, &*b, "the next version to the second storage").await?;
    ensure!(
        next_b.stats.nodes_written == next_a.stats.nodes_written && next_b.stats.nodes_written > 0,
        "both storages lack the same new nodes: wrote {} and {}",
        next_a.stats.nodes_written,
        next_b.stats.nodes_written
    );
    ensure_complete("the first storage, next version", &*a, &next).await?;
    ensure_complete("the second storage, next version", &*b, &next).await?;
    Ok(())
}

/// A db lazily restored from one storage, transacted, and stored to a second storage is
/// complete there: into a storage without the head every node is written (those the db
/// has not loaded are loaded through its source); onto a storage whose head is the db's
/// base, only the new nodes.
pub async fn a_lazy_db_stored_to_another_storage_is_complete_there<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let (mut generator, db) = seeded(SEED + 1, 60)?;
    let (a, b, c) = (
        fresh(factory).await?,
        fresh(factory).await?,
        fresh(factory).await?,
    );
    store_ok(&db, &*a, "the primary").await?;
    // `c` holds the same commit as `a`.
    store_ok(&db, &*c, "a copy of the primary").await?;
    let lazy = restore(a.clone(), HEAD).await.context("lazy restore")?.db;
    let next = advance(&mut generator, &lazy, 2)?;

    let into_b = store_ok(&next, &*b, "a lazy db to an empty storage").await?;
    ensure!(
        into_b.stats.nodes_written >= node_addresses(&next).len() as u64,
        "an empty storage must get every node ({} written, {} in memory)",
        into_b.stats.nodes_written,
        node_addresses(&next).len()
    );
    ensure_complete("the empty storage", &*b, &next).await?;
    let after = advance(&mut generator, &into_b.db, 1)?;
    let again = store_ok(&after, &*b, "the next transaction there").await?;
    ensure!(
        again.stats.nodes_written < into_b.stats.nodes_written,
        "after the copy, stores are incremental ({} nodes for one transaction)",
        again.stats.nodes_written
    );
    ensure_complete("the empty storage, one transaction later", &*b, &after).await?;

    let onto_c = store_ok(&next, &*c, "a lazy db onto its base in another storage").await?;
    ensure!(
        onto_c.stats.nodes_written < into_b.stats.nodes_written,
        "onto its base commit only the new nodes are written ({} of {})",
        onto_c.stats.nodes_written,
        into_b.stats.nodes_written
    );
    ensure_complete("the storage at the same base", &*c, &next).await?;
    Ok(())
}

/// A store whose writes failed leaves the head where it was; the same store retried
/// (into a new storage, and onto a base) then lands complete.
pub async fn a_store_retried_after_failed_writes_is_complete<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let (mut generator, db) = seeded(SEED + 2, 60)?;
    let primary = fresh(factory).await?;
    store_ok(&db, &*primary, "the primary").await?;
    let rig = Rig::new(factory).await?;

    rig.faulty.faults().tear_next_put();
    let torn = expect_err(
        "a store whose put was torn",
        store(&db, &*rig.storage, HEAD).await,
    )?;
    ensure!(
        !matches!(torn, StorageError::HeadConflict { .. }),
        "a torn put is a write error, not {torn}"
    );
    ensure!(
        rig.storage
            .get_head(HEAD)
            .await
            .context("get_head")?
            .is_none(),
        "the head must not move when the writes failed"
    );
    rig.faulty.faults().heal();
    let landed = store_ok(&db, &*rig.storage, "the retried store").await?;
    ensure_complete("after a torn put", &*rig.storage, &db).await?;

    let next = advance(&mut generator, &landed.db, 2)?;
    rig.faulty.faults().fail_after(0, FailOn::Puts);
    expect_err(
        "a store whose puts fail",
        store(&next, &*rig.storage, HEAD).await,
    )?;
    ensure_eq!(
        rig.storage
            .get_head(HEAD)
            .await
            .context("get_head")?
            .map(|h| h.commit),
        Some(landed.commit),
        "the head must stay on the last complete commit"
    );
    rig.faulty.faults().heal();
    store_ok(&next, &*rig.storage, "the retried incremental store").await?;
    ensure_complete("after failed puts", &*rig.storage, &next).await?;
    Ok(())
}

/// A storage that lost blobs its head reaches (deleted by hand) is found by `verify`,
/// naming a lost node. A store that takes nothing on trust ([`Confirm::Everything`])
/// refuses with a typed error when the db cannot supply what is lost (a lazy db whose
/// own storage lost it) and leaves the head alone; from a db that holds the nodes, it
/// repairs the storage.
pub async fn a_storage_that_lost_blobs_is_found_and_repaired<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let (mut generator, db) = seeded(SEED + 3, 80)?;
    let mut rng = Rng::new(SEED + 3);
    let s = fresh(factory).await?;
    let first = store_ok(&db, &*s, "the primary").await?;
    let next = advance(&mut generator, &first.db, 3)?;
    let stored = store_ok(&next, &*s, "the next version").await?;

    // Lose every third node the head reaches, roots left alone.
    let roots: HashSet<Address> = stored.db.root_addresses().into_iter().collect();
    let mut nodes: Vec<Address> = node_addresses(&stored.db)
        .into_iter()
        .filter(|a| !roots.contains(a))
        .collect();
    nodes.sort();
    let lost: Vec<Address> = nodes.into_iter().step_by(3).collect();
    ensure!(!lost.is_empty(), "the db must have nodes below its roots");
    s.delete_many(&lost).await.context("deleting blobs")?;

    let found = expect_err(
        "verify of a storage that lost blobs",
        verify(&*s, HEAD).await,
    )?;
    match &found {
        StorageError::Core(Error::NodeUnavailable { address, .. }) if lost.contains(address) => {}
        other => {
            return Err(Failure::new(format_args!(
                "verify must name a lost node as unavailable, got: {other}"
            )))
        }
    }

    let everything = StoreOptions {
        confirm: Confirm::Everything,
        ..StoreOptions::default()
    };
    // A lazy db restored now reads from the damaged storage: its transaction may itself
    // meet a lost node (a typed error, nothing stored); if not, the store must refuse.
    let lazy = restore(s.clone(), HEAD).await.context("lazy restore")?.db;
    if let Ok(more) = apply(&random_tx(&mut rng), &lazy) {
        expect_err(
            "a store from a lazy db whose storage lost nodes",
            store_with(&more, &*s, HEAD, everything).await,
        )?;
    }
    ensure_eq!(
        s.get_head(HEAD)
            .await
            .context("get_head")?
            .map(|h| h.commit),
        Some(stored.commit),
        "a refused store leaves the head alone"
    );

    let repaired = store_with(&stored.db, &*s, HEAD, everything)
        .await
        .context("repairing from a db that holds every node")?;
    ensure_eq!(
        repaired.stats.nodes_written,
        lost.len() as u64,
        "the repair writes exactly what was lost"
    );
    ensure!(!repaired.stats.committed, "a repair does not move the head");
    ensure_complete("the repaired storage", &*s, &stored.db).await?;
    let after = apply(&random_tx(&mut rng), &stored.db)?;
    store_ok(&after, &*s, "a store after the repair").await?;
    ensure_complete("one transaction after the repair", &*s, &after).await?;
    Ok(())
}

/// Random interleavings of transact, store, lazy restore, `restore_from` and `sync`
/// over three storages and the db values they produce: after every store that lands,
/// a fresh full restore of that storage is the stored db and `verify` passes; a store
/// refused as a conflict leaves the head where it was.
///
/// Runs `DATOMS_CONFORMANCE_CASES` interleavings from seed `DATOMS_CONFORMANCE_SEED`.
pub async fn random_interleavings_over_three_storages_leave_every_head_complete<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let base = settings::seed();
    for i in 0..settings::cases() {
        let seed = base.wrapping_add(u64::from(i)) ^ SEED;
        interleave(factory, seed).await.map_err(|f| {
            f.context(format_args!(
                "interleaving {seed} (rerun with {}={} {}=1)",
                settings::SEED_VAR,
                base.wrapping_add(u64::from(i)),
                settings::CASES_VAR
            ))
        })?;
    }
    Ok(())
}

/// The steps of one interleaving.
const STEPS: usize = 30;
/// The db values kept at once.
const VALUES: usize = 5;

async fn interleave<F: Factory>(factory: &F, seed: u64) -> Result<(), Failure> {
    let storages = [
        fresh(factory).await?,
        fresh(factory).await?,
        fresh(factory).await?,
    ];
    let (_, first) = seeded(seed, 12)?;
    let mut rng = Rng::new(seed);
    let mut values: Vec<Db> = vec![first];
    for step in 0..STEPS {
        let i = rng.below(values.len() as u64) as usize;
        let k = rng.below(3) as usize;
        let storage = &storages[k];
        let has_head = storage.get_head(HEAD).await.context("get_head")?.is_some();
        let what = |op: &str| format!("step {step}: {op} (value {i}, storage {k})");
        let made = match rng.below(6) {
            0 | 1 => Some(apply(&random_tx(&mut rng), &values[i])?),
            2 => {
                let before = storage.get_head(HEAD).await.context("get_head")?;
                match store(&values[i], &**storage, HEAD).await {
                    Ok(Stored { db, .. }) => {
                        ensure_complete(&what("store"), &**storage, &db).await?;
                        Some(db)
                    }
                    Err(StorageError::HeadConflict { .. }) => {
                        let after = storage.get_head(HEAD).await.context("get_head")?;
                        ensure_eq!(
                            after,
                            before,
                            "{}: a refused store moved the head",
                            what("store")
                        );
                        None
                    }
                    Err(e) => return Err(Failure::from(e).context(what("store"))),
                }
            }
            3 if has_head => Some(
                restore(storage.clone(), HEAD)
                    .await
                    .context(what("lazy restore"))?
                    .db,
            ),
            4 if has_head => Some(
                restore_from(&values[i], &**storage, HEAD)
                    .await
                    .context(what("restore_from"))?
                    .db,
            ),
            5 if has_head => Some(
                sync(&values[i], &**storage, HEAD, SyncPolicy::Auto)
                    .await
                    .context(what("sync"))?
                    .db,
            ),
            _ => None,
        };
        if let Some(db) = made {
            if values.len() == VALUES {
                let drop = rng.below(VALUES as u64) as usize;
                values.remove(drop);
            }
            values.push(db);
        }
    }
    Ok(())
}

/// A transaction valid on any db of the schema: upserts by unique name.
fn random_tx(rng: &mut Rng) -> Tx {
    let n = rng.between(1, 4);
    let ops = (0..n)
        .map(|_| {
            let name = format!("p{}", rng.below(30));
            let age = rng.between(1, 99) as i64;
            if rng.chance(1, 3) {
                let friend = (format!("p{}", rng.below(30)), rng.between(1, 99) as i64);
                Op::UpsertWithFriends {
                    name,
                    age,
                    friends: vec![friend],
                }
            } else {
                Op::Upsert { name, age }
            }
        })
        .collect();
    Tx { ops }
}
