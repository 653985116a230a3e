//! `datoms transact`: run Datascript tx data against the head and store the result as a
//! new commit, moving the head by compare-and-swap. When another writer moved the head
//! meanwhile, the transaction (as written) runs again on the new head and the store is
//! retried, with a line on stderr each time (`--no-rebase` fails instead).

use std::collections::BTreeMap;
use std::io::Read;

use datoms::edn::parse_schema_with_warnings;
use datoms::{Db, Schema};
use serde::Serialize;

use super::access::{Create, Opened};
use super::output::{bytes, short, thousands, Ctx};
use super::{CliError, DbArgs};

/// Arguments of `datoms transact`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: datoms transact --db redb:people.datoms --schema schema.edn tx.edn\n\
tx.edn: [{:db/id -1 :person/name \"Ann\" :person/age 31} [:db/add -1 :person/friend 7]]"
)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// Tx data as EDN: a vector of entity maps and [:db/add …] forms; `-` reads stdin.
    #[arg(value_name = "FILE.edn|-")]
    file: String,

    /// Schema as EDN ({:attr {:db/valueType … :db/unique …}}), used when this transact
    /// creates the database; an existing database keeps its stored schema.
    #[arg(long, value_name = "FILE.edn")]
    schema: Option<String>,

    /// Fail when another writer moved the head meanwhile, instead of running the
    /// transaction again on the new head (tempids, lookup refs, upserts and :db/cas
    /// resolved against it) and retrying.
    #[arg(long)]
    no_rebase: bool,
}

/// Attempts of a transaction whose head keeps moving before it gives up.
const MAX_ATTEMPTS: u32 = 16;

#[derive(Serialize)]
struct Report {
    created: bool,
    tx: u64,
    datoms: usize,
    asserted: usize,
    retracted: usize,
    tempids: BTreeMap<String, u64>,
    commit: String,
    parent: Option<String>,
    head: String,
    nodes_written: u64,
    bytes_written: u64,
    rebased: u32,
}

/// Reads a text file, or stdin for `-`.
///
/// # Errors
/// [`CliError::File`] naming the path.
pub fn read_text(path: &str) -> Result<String, CliError> {
    let file_error = |source| CliError::File {
        path: path.to_owned(),
        source,
    };
    if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(file_error)?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(file_error)
}

/// Reads a schema file. A property Datascript ignores (`:db/type`, an unknown key) is
/// ignored, with a warning on stderr naming the file, the attribute and the key.
///
/// # Errors
/// [`CliError::File`] or [`CliError::Input`] naming the path.
pub fn read_schema(path: &str) -> Result<Schema, CliError> {
    let (schema, warnings) =
        parse_schema_with_warnings(&read_text(path)?).map_err(|source| CliError::Input {
            path: path.to_owned(),
            source,
        })?;
    for w in &warnings {
        eprintln!("warning: {path}: {w}");
    }
    Ok(schema)
}

/// A transaction that landed.
struct Landed {
    /// The head it was stored onto (`None`: it created the database).
    head: Option<datoms::Head>,
    report: datoms::TxReport,
    stored: datoms::Stored,
    /// How many times it ran again on a moved head.
    rebased: u32,
}

/// Why a transaction did not land.
#[derive(Debug)]
enum Failed {
    /// Invalid on the head (also after a rebase: a stale `:db/cas`).
    Tx(datoms::Error),
    Storage(datoms::StorageError),
}

/// Runs `text` on the db at `head` (a new one with `schema` if there is none) and
/// stores it; when another writer moved the head meanwhile and `rebase` is on, runs it
/// again on the new head and retries (with backoff and jitter, at most
/// [`MAX_ATTEMPTS`] tries), calling `notice` with the rebase number and the new head.
async fn transact_rebasing(
    storage: &std::sync::Arc<dyn datoms::Storage>,
    head: &str,
    text: &str,
    schema: Schema,
    rebase: bool,
    mut notice: impl FnMut(u32, Option<datoms::Address>),
) -> Result<Landed, Failed> {
    let mut rebased = 0;
    let mut wait = std::time::Duration::from_millis(5);
    loop {
        let current = storage.get_head(head).await.map_err(Failed::Storage)?;
        let db = match &current {
            None => Db::new(schema.clone()),
            Some(_) => {
                datoms::restore(storage.clone(), head)
                    .await
                    .map_err(Failed::Storage)?
                    .db
            }
        };
        let report = db.with_edn(text).map_err(Failed::Tx)?;
        match datoms::store(&report.db_after, &**storage, head).await {
            Ok(stored) => {
                return Ok(Landed {
                    head: current,
                    report,
                    stored,
                    rebased,
                })
            }
            Err(datoms::StorageError::HeadConflict { current, .. })
                if rebase && rebased + 1 < MAX_ATTEMPTS =>
            {
                rebased += 1;
                notice(rebased, current.map(|h| h.commit));
                // Writers that collided wait apart before the next try.
                let half = wait / 2;
                tokio::time::sleep(half + half.mul_f64(fastrand::f64())).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(1));
            }
            Err(e) => return Err(Failed::Storage(e)),
        }
    }
}

/// The most tempids the text report lists; `--json` carries them all.
const TEMPIDS_SHOWN: usize = 10;

/// Runs `datoms transact`.
///
/// # Errors
/// Bad EDN (with line and column) or a rejected transaction, naming the file (also when
/// it no longer applies on a moved head: a `:db/cas` another writer made stale); a head
/// that moved meanwhile under `--no-rebase`, or more than 16 times; storage errors.
/// Nothing is stored on error.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    // Read and check every input before touching storage: a bad file changes nothing.
    let text = read_text(&args.file)?;
    let schema = args.schema.as_deref().map(read_schema).transpose()?;
    let opened = Opened::open(&args.db, Create::Yes, ctx).await?;
    if let (Some(schema), Some(_)) = (&schema, opened.get_head().await?) {
        if opened.lazy_db().await?.schema() != schema {
            eprintln!(
                "warning: --schema ignored: head {:?} exists and keeps its stored schema",
                opened.head
            );
        }
    }
    let landed = transact_rebasing(
        opened.storage(),
        &opened.head,
        &text,
        schema.unwrap_or_default(),
        !args.no_rebase,
        |n, current| {
            eprintln!(
                "head {:?} moved to {}: running the transaction again on it (rebase {n})",
                opened.head,
                current.map_or_else(|| "nothing".to_owned(), |c| short(&c))
            );
        },
    )
    .await
    .map_err(|e| match e {
        Failed::Tx(source) => CliError::Input {
            path: args.file.clone(),
            source,
        },
        Failed::Storage(e) => e.into(),
    })?;
    let Landed {
        head,
        report,
        stored,
        rebased,
    } = landed;
    let asserted = report.tx_data.iter().filter(|d| d.added).count();
    let out = Report {
        created: head.is_none(),
        tx: report.tx,
        datoms: report.tx_data.len(),
        asserted,
        retracted: report.tx_data.len() - asserted,
        tempids: report.tempids.clone(),
        commit: stored.commit.to_hex(),
        parent: head.as_ref().map(|h| h.commit.to_hex()),
        head: opened.head.clone(),
        nodes_written: stored.stats.nodes_written,
        bytes_written: stored.stats.bytes_written,
        rebased,
    };
    if ctx.json {
        return ctx.print_json(&out);
    }
    let mut text = format!(
        "tx {}: {} datom{} ({} asserted, {} retracted)\n",
        out.tx,
        thousands(out.datoms as u64),
        if out.datoms == 1 { "" } else { "s" },
        out.asserted,
        out.retracted
    );
    let tempids: Vec<String> = out
        .tempids
        .iter()
        .filter(|(k, _)| k.as_str() != datoms::tx::CURRENT_TX)
        .map(|(k, v)| format!("{k} → {v}"))
        .collect();
    match tempids.len() {
        0 => {}
        n if n <= TEMPIDS_SHOWN => text.push_str(&format!("tempids: {}\n", tempids.join(", "))),
        n => text.push_str(&format!(
            "tempids: {}, … and {} more (--json lists them all)\n",
            tempids[..TEMPIDS_SHOWN].join(", "),
            thousands((n - TEMPIDS_SHOWN) as u64)
        )),
    }
    text.push_str(&format!(
        "{} commit {} on head {} ({} nodes, {} written){}\n",
        if out.created {
            "created database with"
        } else {
            "stored"
        },
        short(&stored.commit),
        opened.head,
        thousands(out.nodes_written),
        bytes(out.bytes_written),
        head.map(|h| format!(", parent {}", short(&h.commit)))
            .unwrap_or_default()
    ));
    if out.rebased > 0 {
        text.push_str(&format!(
            "rebased {} time{} on a moved head\n",
            out.rebased,
            if out.rebased == 1 { "" } else { "s" }
        ));
    }
    ctx.print(&text)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use async_trait::async_trait;
    use datoms::{Address, Head, MemoryStorage, Storage, StorageError, Version};

    use super::*;

    /// A storage where another writer stores a transaction just before each of the
    /// first `moves` head CAS.
    #[derive(Debug)]
    struct Racing {
        inner: Arc<MemoryStorage>,
        moves: AtomicU32,
    }

    #[async_trait]
    impl Storage for Racing {
        async fn get_many(&self, a: &[Address]) -> Result<Vec<Option<bytes::Bytes>>, StorageError> {
            self.inner.get_many(a).await
        }
        async fn put_many(&self, b: &[(Address, bytes::Bytes)]) -> Result<(), StorageError> {
            self.inner.put_many(b).await
        }
        async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
            self.inner.get_head(name).await
        }
        async fn cas_head(
            &self,
            name: &str,
            expected: Option<&Version>,
            new: Address,
        ) -> Result<Version, StorageError> {
            if self.moves.load(Ordering::SeqCst) > 0 {
                self.moves.fetch_sub(1, Ordering::SeqCst);
                let other: Arc<dyn Storage> = self.inner.clone();
                let db = datoms::restore(other, name).await?.db;
                let db = db.with_edn(r#"[[:db/add 1 :n/other 1]]"#)?.db_after;
                datoms::store(&db, &*self.inner, name).await?;
            }
            self.inner.cas_head(name, expected, new).await
        }
        async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
            self.inner.list_heads().await
        }
        async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
            self.inner.delete_head(name, expected).await
        }
        async fn list_blobs(
            &self,
            after: Option<Address>,
            limit: usize,
        ) -> Result<Vec<Address>, StorageError> {
            self.inner.list_blobs(after, limit).await
        }
        async fn delete_many(&self, a: &[Address]) -> Result<(), StorageError> {
            self.inner.delete_many(a).await
        }
        async fn list_blob_stamps(
            &self,
            after: Option<Address>,
            limit: usize,
        ) -> Result<Vec<datoms_storage::BlobStamp>, StorageError> {
            self.inner.list_blob_stamps(after, limit).await
        }
        async fn delete_stale(
            &self,
            addresses: &[Address],
            written_before: std::time::SystemTime,
        ) -> Result<Vec<Address>, StorageError> {
            self.inner.delete_stale(addresses, written_before).await
        }
    }

    async fn racing(moves: u32) -> Arc<dyn Storage> {
        let inner = Arc::new(MemoryStorage::new());
        let db = Db::new(Schema::new())
            .with_edn(r#"[[:db/add 1 :n/v 0]]"#)
            .unwrap()
            .db_after;
        datoms::store(&db, &*inner, "main").await.unwrap();
        Arc::new(Racing {
            inner,
            moves: AtomicU32::new(moves),
        })
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_moved_head_reruns_the_transaction_on_it_unless_told_not_to() {
        let storage = racing(2).await;
        let mut notices = Vec::new();
        let landed = transact_rebasing(
            &storage,
            "main",
            "[[:db/add 1 :n/mine 1]]",
            Schema::new(),
            true,
            |n, _| notices.push(n),
        )
        .await
        .unwrap();
        assert_eq!(landed.rebased, 2);
        assert_eq!(notices, [1, 2]);
        let head = datoms::restore(storage.clone(), "main").await.unwrap().db;
        assert_eq!(
            head.entity_datoms(1).unwrap().len(),
            3,
            "v, other (twice the same), mine"
        );

        let storage = racing(1).await;
        let err = transact_rebasing(
            &storage,
            "main",
            "[[:db/add 1 :n/mine 1]]",
            Schema::new(),
            false,
            |_, _| {},
        )
        .await
        .err();
        assert!(
            matches!(
                err,
                Some(Failed::Storage(StorageError::HeadConflict { .. }))
            ),
            "{err:?}"
        );

        // A :db/cas that the other writer made stale is the transaction's error.
        let storage = racing(1).await;
        let err = transact_rebasing(
            &storage,
            "main",
            "[[:db/cas 1 :n/other nil 5]]",
            Schema::new(),
            true,
            |_, _| {},
        )
        .await
        .err();
        assert!(
            matches!(err, Some(Failed::Tx(datoms::Error::CasMismatch { .. }))),
            "{err:?}"
        );
    }
}
