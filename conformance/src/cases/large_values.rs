//! Large values, stored out of line: written once, never rewritten for a neighbouring
//! change, fetched once, verified like nodes, and found missing by `verify`.
//!
//! Strings and byte strings of [`OUT_OF_LINE_BYTES`] or more are content-addressed blobs
//! that nodes and tx logs reference (see `datoms_core::large`). Every backend must hold
//! them like nodes: a head only on a commit whose large values are all there.

use std::sync::Arc;

use datoms_core::{Db, OUT_OF_LINE_BYTES};
use datoms_storage::{
    restore, restore_from, store_with, verify, Confirm, Storage, StorageError, StoreOptions,
};

use crate::factory::Factory;
use crate::failure::{ensure, ensure_eq, Context, Failure};
use crate::history::{self, Rng, NOTE};
use crate::support::{expect_err, store_ok, HEAD};

/// Text no other run makes: the registry of large values held in memory is process-wide,
/// and these cases must see what a process that holds nothing sees.
fn text(len: usize, rng: &mut Rng) -> String {
    (0..len)
        .map(|_| char::from(b'a' + rng.below(26) as u8))
        .collect()
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// A db of ten people, one of whom has a note of `note`.
fn with_note(note: &str) -> Result<Db, Failure> {
    let mut tx = String::from("[");
    for i in 0..10 {
        tx.push_str(&format!(
            r#"{{:db/id -{} :person/name "p{i}" :person/age {i}}}"#,
            i + 1
        ));
    }
    tx.push_str(&format!(r#"[:db/add -5 {NOTE} "{note}"]]"#));
    Ok(history::empty_db()
        .with_edn(&tx)
        .context("transacting a large note")?
        .db_after)
}

/// A 256 KiB note is written once (not once per index, branch key and log), and a change
/// to a datom next to it writes, and makes a replica holding the previous version fetch,
/// kilobytes: no large value.
pub async fn a_large_value_is_written_once_and_not_again_for_a_neighbouring_change<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let storage = factory.create().await.context("creating a store")?;
    let note = text(256 * 1024, &mut Rng::new(seed()));
    let db = with_note(&note)?;
    let first = store_ok(&db, &storage, "a db with a large note").await?;
    ensure_eq!(first.stats.large_values_written, 1, "large values written");
    ensure!(
        first.stats.bytes_written < note.len() as u64 + 32 * 1024,
        "a {} byte note wrote {} bytes",
        note.len(),
        first.stats.bytes_written
    );

    // The note's neighbours: the same entity's age and a new attribute.
    let next = first
        .db
        .with_edn("[[:db/add 5 :person/age 99] [:db/add 5 :person/nick \"e\"]]")
        .context("changing the note's neighbours")?
        .db_after;
    let second = store_ok(&next, &storage, "a change next to the note").await?;
    ensure_eq!(
        second.stats.large_values_written,
        0,
        "large values written for a neighbouring change"
    );
    ensure!(
        second.stats.bytes_written < 32 * 1024,
        "a neighbouring change wrote {} bytes",
        second.stats.bytes_written
    );

    // A replica holding the first version fetches the changed nodes only.
    let replica = restore_from(&first.db, &storage, HEAD)
        .await
        .context("restoring the change onto the first version")?;
    ensure_eq!(
        replica.stats.large_values_fetched,
        0,
        "large values fetched"
    );
    ensure!(
        replica.stats.bytes_fetched < 32 * 1024,
        "the replica fetched {} bytes",
        replica.stats.bytes_fetched
    );
    ensure_eq!(
        replica.db.root_addresses(),
        second.db.root_addresses(),
        "the replica's roots"
    );
    let verified = verify(&storage, HEAD).await.context("verify")?;
    ensure_eq!(verified.large_values, 1, "large values verify read");
    Ok(())
}

/// A process that holds none of the values restores them (lazily too: a lazy db loads
/// each node's large values with it), each distinct value fetched once however many
/// datoms and indexes hold it.
pub async fn a_restore_that_holds_nothing_fetches_each_large_value_once<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let storage: Arc<dyn Storage> = Arc::new(factory.create().await.context("creating a store")?);
    let mut rng = Rng::new(seed());
    let (shared, own) = (text(4 * 1024, &mut rng), text(OUT_OF_LINE_BYTES, &mut rng));
    let roots = {
        // Stored, then dropped with every db value that holds them.
        let tx = format!(
            r#"[[:db/add -1 {NOTE} "{shared}"] [:db/add -2 {NOTE} "{shared}"]
                [:db/add -3 {NOTE} "{own}"] [:db/add -3 :person/name "x"]]"#
        );
        let db = history::empty_db()
            .with_edn(&tx)
            .context("transacting notes")?
            .db_after;
        store_ok(&db, &*storage, "notes").await?.db.root_addresses()
    };
    let full = restore_from(&history::empty_db(), &*storage, HEAD)
        .await
        .context("a full restore")?;
    ensure_eq!(full.db.root_addresses(), roots, "restored roots");
    ensure_eq!(full.stats.large_values_fetched, 2, "large values fetched");
    let note = |db: &Db, e| -> Result<String, Failure> {
        let datoms = db
            .entity_attr(e, &NOTE.into())
            .context(format_args!("reading entity {e}'s note"))?;
        match datoms.first().map(|d| &d.v) {
            Some(datoms_core::Value::String(s)) => Ok(s.to_string()),
            other => Err(Failure::new(format_args!("entity {e}'s note is {other:?}"))),
        }
    };
    ensure!(
        note(&full.db, 1)? == shared && note(&full.db, 3)? == own,
        "notes read back"
    );
    drop(full);

    let lazy = restore(storage.clone(), HEAD)
        .await
        .context("a lazy restore")?;
    ensure!(note(&lazy.db, 2)? == shared, "a lazily loaded note");
    Ok(())
}

/// A large value lost from storage is a typed error naming it (for `verify` and for a
/// restore that needs it), and a store that confirms everything writes it again.
pub async fn a_lost_large_value_is_found_and_repaired<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let storage = factory.create().await.context("creating a store")?;
    let note = text(2 * OUT_OF_LINE_BYTES, &mut Rng::new(seed()));
    let db = with_note(&note)?;
    let stored = store_ok(&db, &storage, "a db with a large note").await?;
    let address = datoms_core::LargeValue::adopt(&datoms_core::Value::from(note.as_str()))
        .map(|v| v.address())
        .ok_or_else(|| Failure::new("the note is not large"))?;
    storage
        .delete_many(&[address])
        .await
        .context("deleting the note's blob")?;
    let err = expect_err("verify after the loss", verify(&storage, HEAD).await)?;
    ensure!(
        matches!(&err, StorageError::NotFound { address: a } if *a == address),
        "verify must name the lost value, got {err}"
    );
    let repaired = store_with(
        &stored.db,
        &storage,
        HEAD,
        StoreOptions {
            confirm: Confirm::Everything,
            ..StoreOptions::default()
        },
    )
    .await
    .context("a repairing store")?;
    ensure_eq!(
        repaired.stats.large_values_written,
        1,
        "large values rewritten"
    );
    verify(&storage, HEAD)
        .await
        .context("verify after the repair")?;
    Ok(())
}

/// `replicate` copies the large values the copied nodes and logs reference (before the
/// nodes, so an interrupted copy never leaves a node without its values), both ways
/// between this backend and memory; the copy verifies, and a second copy writes nothing.
pub async fn replicate_copies_large_values<F: Factory>(factory: &F) -> Result<(), Failure> {
    let note = text(8 * OUT_OF_LINE_BYTES, &mut Rng::new(seed()));
    let db = with_note(&note)?;
    for into_backend in [false, true] {
        let backend: Arc<dyn Storage> =
            Arc::new(factory.create().await.context("creating a store")?);
        let memory: Arc<dyn Storage> = Arc::new(datoms_storage::MemoryStorage::new());
        let (from, to) = if into_backend {
            (memory, backend)
        } else {
            (backend, memory)
        };
        store_ok(&db, &*from, "a db with a large note").await?;
        let copied = datoms_storage::replicate(&*from, &*to, HEAD)
            .await
            .context("replicating")?;
        ensure_eq!(copied.stats.large_values_copied, 1, "large values copied");
        let verified = verify(&*to, HEAD).await.context("verifying the copy")?;
        ensure_eq!(verified.large_values, 1, "large values in the copy");
        let again = datoms_storage::replicate(&*from, &*to, HEAD)
            .await
            .context("replicating again")?;
        ensure!(!again.moved, "a second copy with nothing new moves nothing");
    }
    Ok(())
}
