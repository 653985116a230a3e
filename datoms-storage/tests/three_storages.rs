//! Never a head on an incomplete commit, as a property: random interleavings of transact,
//! store (trusting the head, or confirming everything), lazy restore, `restore_from` and
//! `sync` (every policy) over three storages and the db values they produce. After every
//! store that lands, a fresh full restore of that storage is the stored db (same roots,
//! datoms and counters) and `verify` reads every node; a store refused as a conflict
//! leaves the head where it was. Shrinks to the shortest failing interleaving.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use datoms_core::{Datom, Db, IndexKind, Schema};
use datoms_storage::{
    restore, restore_from, store_with, sync, verify, Confirm, MemoryStorage, Storage, StorageError,
    StoreOptions, SyncPolicy,
};
use proptest::prelude::*;

const HEAD: &str = "main";
/// The db values kept at once.
const VALUES: usize = 5;

#[derive(Clone, Debug)]
enum Action {
    Transact {
        value: usize,
        person: u8,
        age: u8,
    },
    Store {
        value: usize,
        storage: usize,
        confirm_all: bool,
    },
    LazyRestore {
        storage: usize,
    },
    RestoreFrom {
        value: usize,
        storage: usize,
    },
    Sync {
        value: usize,
        storage: usize,
        policy: u8,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let value = 0..VALUES;
    let storage = 0..3usize;
    prop_oneof![
        3 => (value.clone(), 0..40u8, 1..99u8)
            .prop_map(|(value, person, age)| Action::Transact { value, person, age }),
        3 => (value.clone(), storage.clone(), prop::bool::weighted(0.2))
            .prop_map(|(value, storage, confirm_all)| Action::Store { value, storage, confirm_all }),
        1 => storage.clone().prop_map(|storage| Action::LazyRestore { storage }),
        1 => (value.clone(), storage.clone())
            .prop_map(|(value, storage)| Action::RestoreFrom { value, storage }),
        1 => (value, storage, 0..3u8)
            .prop_map(|(value, storage, policy)| Action::Sync { value, storage, policy }),
    ]
}

fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:person/name {:db/unique :db.unique/identity} \
          :person/friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}",
    )
    .unwrap()
}

fn datoms(db: &Db) -> Vec<Datom> {
    db.datoms(IndexKind::Eavt, &[])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A fresh full restore of `storage` is `db`, and verify reads every node.
async fn check_complete(storage: &dyn Storage, db: &Db) -> Result<(), TestCaseError> {
    let restored = restore_from(&Db::new(schema()), storage, HEAD)
        .await
        .map_err(|e| TestCaseError::fail(format!("full restore after a store: {e}")))?
        .db;
    prop_assert_eq!(restored.root_addresses(), db.root_addresses());
    prop_assert_eq!(
        (restored.max_eid(), restored.max_tx()),
        (db.max_eid(), db.max_tx())
    );
    prop_assert_eq!(datoms(&restored), datoms(db));
    let verified = verify(storage, HEAD)
        .await
        .map_err(|e| TestCaseError::fail(format!("verify after a store: {e}")))?;
    prop_assert_eq!(verified.datoms, db.len());
    Ok(())
}

async fn run(actions: Vec<Action>) -> Result<(), TestCaseError> {
    let storages: Vec<Arc<dyn Storage>> = (0..3)
        .map(|_| Arc::new(MemoryStorage::new()) as Arc<dyn Storage>)
        .collect();
    let first = Db::new(schema())
        .with_edn(r#"[{:person/name "p0" :person/age 1} {:person/name "p1" :person/age 2}]"#)
        .unwrap()
        .db_after;
    let mut values = vec![first];
    for action in actions {
        let pick = |i: usize| i % values.len();
        let made = match action {
            Action::Transact { value, person, age } => {
                let db = &values[pick(value)];
                let tx = format!(
                    r#"[{{:person/name "p{person}" :person/age {age} :person/friend [{{:person/name "p{}"}}]}}]"#,
                    (u32::from(person) * 7) % 40
                );
                Some(db.with_edn(&tx).unwrap().db_after)
            }
            Action::Store {
                value,
                storage,
                confirm_all,
            } => {
                let s = &*storages[storage];
                let before = s.get_head(HEAD).await.unwrap();
                let confirm = if confirm_all {
                    Confirm::Everything
                } else {
                    Confirm::Head
                };
                match store_with(
                    &values[pick(value)],
                    s,
                    HEAD,
                    StoreOptions {
                        confirm,
                        ..StoreOptions::default()
                    },
                )
                .await
                {
                    Ok(stored) => {
                        check_complete(s, &stored.db).await?;
                        Some(stored.db)
                    }
                    Err(StorageError::HeadConflict { .. }) => {
                        prop_assert_eq!(s.get_head(HEAD).await.unwrap(), before);
                        None
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("store: {e}"))),
                }
            }
            Action::LazyRestore { storage } => match restore(storages[storage].clone(), HEAD).await
            {
                Ok(r) => Some(r.db),
                Err(StorageError::NoHead { .. }) => None,
                Err(e) => return Err(TestCaseError::fail(format!("lazy restore: {e}"))),
            },
            Action::RestoreFrom { value, storage } => {
                match restore_from(&values[pick(value)], &*storages[storage], HEAD).await {
                    Ok(r) => Some(r.db),
                    Err(StorageError::NoHead { .. }) => None,
                    Err(e) => return Err(TestCaseError::fail(format!("restore_from: {e}"))),
                }
            }
            Action::Sync {
                value,
                storage,
                policy,
            } => {
                let policy =
                    [SyncPolicy::Auto, SyncPolicy::Tree, SyncPolicy::Log][usize::from(policy)];
                match sync(&values[pick(value)], &*storages[storage], HEAD, policy).await {
                    Ok(r) => Some(r.db),
                    Err(StorageError::NoHead { .. }) => None,
                    // Log replay alone cannot bridge every gap; it says so.
                    Err(StorageError::LogGap { .. }) if policy == SyncPolicy::Log => None,
                    Err(e) => return Err(TestCaseError::fail(format!("sync {policy:?}: {e}"))),
                }
            }
        };
        if let Some(db) = made {
            if values.len() == VALUES {
                values.remove(0);
            }
            values.push(db);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_store_over_three_storages_leaves_a_complete_head(
        actions in prop::collection::vec(action(), 1..40)
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(actions))?;
    }
}
