//! A db is a value: a lazily restored db reads its nodes from any thread and any tokio
//! runtime, or from none, for as long as it lives — whichever runtime restored it, and
//! whether that runtime still exists. These cases restore a db in one runtime and read
//! it (every datom of every index, which loads every node through the db's source) from
//! another one, from a current-thread runtime, and from plain threads.
//!
//! A runtime cannot be started or dropped inside another one, so each case does its
//! work on a thread of its own, with the factory's store (made in the case's runtime)
//! handed over. The case waits for that thread at most [`DEADLINE`]: a read that hangs
//! fails the case with a message instead of hanging the test run, and a panic on that
//! thread fails it too.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use datoms_core::{Db, Eid, Value};
use datoms_storage::{restore, store, Storage};
use tokio::runtime::{Builder, Runtime};

use crate::factory::Factory;
use crate::failure::{ensure, ensure_eq, Context, Failure};
use crate::history::{self, Generator, Params, NAME};
use crate::support::{ensure_same, snapshot, Snapshot, HEAD};

/// How long a case waits for its thread: far more than the reads take on any backend,
/// so running out of it means a read hangs.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The seed of the db these cases store.
const SEED: u64 = 0x0052_554E;

/// What a case reads and what it must find: the primary's db, its snapshot, and one
/// entity to look up.
struct Fixture {
    storage: Arc<dyn Storage>,
    primary: Db,
    want: Snapshot,
    entity: Eid,
}

/// A fresh store of `factory` and a db of a few hundred datoms (trees several levels
/// deep, so that reading it lazily loads many nodes), not stored yet.
async fn fixture<F: Factory>(factory: &F) -> Result<Fixture, Failure> {
    let storage: Arc<dyn Storage> = Arc::new(
        factory
            .create()
            .await
            .map_err(|e| Failure::from(e).context("creating a store"))?,
    );
    let mut generator = Generator::new(
        SEED,
        Params {
            initial_people: 60,
            ..Params::default()
        },
    );
    let mut primary = generator
        .initial_tx()
        .apply(&history::empty_db())
        .context("the initial transaction")?;
    for _ in 0..5 {
        primary = generator
            .next_tx()
            .apply(&primary)
            .context("a transaction")?;
    }
    let entity = primary
        .entity_by_value(&NAME.into(), &Value::from("p7"))?
        .ok_or_else(|| Failure::new("p7 is missing from the primary's db"))?;
    Ok(Fixture {
        want: snapshot(&primary)?,
        storage,
        primary,
        entity,
    })
}

impl Fixture {
    /// Stores the primary's db, then restores it lazily `n` times (each restore has a
    /// node cache of its own, so each db loads its nodes from the storage again).
    async fn store_and_restore(&self, n: usize) -> Result<Vec<Db>, Failure> {
        store(&self.primary, &*self.storage, HEAD)
            .await
            .context("storing the db")?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let lazy = restore(self.storage.clone(), HEAD)
                .await
                .context("restore (lazy)")?;
            ensure!(
                lazy.stats.nodes_fetched <= 3,
                "a lazy restore reads the roots and nothing more, so the reads below load \
                 nodes through its source: {:?}",
                lazy.stats
            );
            out.push(lazy.db);
        }
        Ok(out)
    }

    /// Reads `db` whole and one entity of it, comparing with the primary's db.
    fn check(&self, db: &Db, where_: &str) -> Result<(), Failure> {
        ensure_eq!(
            db.entity_datoms(self.entity)
                .context(format_args!("entity_datoms {where_}"))?,
            self.primary.entity_datoms(self.entity)?,
            "an entity's datoms read {where_}"
        );
        let got = snapshot(db).map_err(|f| f.context(format_args!("reading {where_}")))?;
        ensure_same(&format!("the lazy db read {where_}"), &got, &self.want)
    }
}

/// A runtime like `#[tokio::main]`'s (multi-thread) or `#[tokio::test]`'s (current
/// thread), with every driver on.
fn runtime(multi_thread: bool) -> Result<Runtime, Failure> {
    let mut builder = if multi_thread {
        let mut b = Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format_args!("cannot start a tokio runtime: {e}")))
}

/// Runs `work` on a new thread, outside any runtime, and waits for it (without blocking
/// the case's runtime) at most [`DEADLINE`].
async fn on_own_thread<W>(what: &str, work: W) -> Result<(), Failure>
where
    W: FnOnce() -> Result<(), Failure> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("conformance-runtimes".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = tx.send(outcome);
        })
        .map_err(|e| Failure::new(format_args!("{what}: cannot start a thread: {e}")))?;
    match tokio::time::timeout(DEADLINE, rx).await {
        Err(_) => Err(Failure::new(format_args!(
            "{what}: did not finish within {DEADLINE:?}: a read of the lazy db hangs \
             (a deadlock on a runtime?)"
        ))),
        Ok(Err(_)) => Err(Failure::new(format_args!(
            "{what}: the thread ended without an outcome"
        ))),
        Ok(Ok(Err(panic))) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            Err(Failure::new(format_args!("{what}: panicked: {message}")))
        }
        Ok(Ok(Ok(outcome))) => outcome,
    }
}

/// Runs `future` to completion on `runtime`, in a task of its own (on a worker thread
/// of a multi-thread runtime: where application code runs).
fn in_task<T, Fut>(runtime: &Runtime, future: Fut) -> Result<T, Failure>
where
    T: Send + 'static,
    Fut: Future<Output = Result<T, Failure>> + Send + 'static,
{
    runtime.block_on(async { runtime.spawn(future).await })?
}

/// A db restored lazily in a multi-thread runtime (as under `#[tokio::main]`) reads
/// after that runtime is dropped: in a task of a new multi-thread runtime, and inside a
/// new current-thread runtime. Its source must not hold on to the runtime that made it,
/// nor the backend to the runtime its requests first ran on.
pub async fn a_lazy_db_reads_after_the_runtime_that_restored_it_is_dropped<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let fixture = Arc::new(fixture(factory).await?);
    on_own_thread("restore, drop the runtime, read", move || {
        let first = runtime(true)?;
        let mut dbs = first.block_on(fixture.store_and_restore(2))?;
        drop(first);
        let (Some(in_current), Some(in_task_db)) = (dbs.pop(), dbs.pop()) else {
            return Err(Failure::new("two lazy restores gave fewer dbs"));
        };

        let second = runtime(true)?;
        let f = fixture.clone();
        in_task(&second, async move {
            f.check(
                &in_task_db,
                "in a task of a new multi-thread runtime, the restoring one dropped",
            )
        })?;
        drop(second);

        let third = runtime(false)?;
        third.block_on(async {
            fixture.check(
                &in_current,
                "inside a new current-thread runtime, the restoring one dropped",
            )
        })
    })
    .await
}

/// A db restored lazily inside a current-thread runtime (as under `#[tokio::test]`)
/// reads inside that runtime, from its `block_on` and from a task it runs, without
/// deadlocking on the one thread that drives that runtime's I/O.
pub async fn a_lazy_db_reads_inside_a_current_thread_runtime<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let fixture = Arc::new(fixture(factory).await?);
    on_own_thread(
        "restore and read in one current-thread runtime",
        move || {
            let current = runtime(false)?;
            let f = fixture.clone();
            current.block_on(async move {
                let mut dbs = f.store_and_restore(2).await?;
                let (Some(in_spawned), Some(in_block_on)) = (dbs.pop(), dbs.pop()) else {
                    return Err(Failure::new("two lazy restores gave fewer dbs"));
                };
                f.check(&in_block_on, "inside the current-thread runtime's block_on")?;
                let g = f.clone();
                tokio::spawn(async move {
                    g.check(&in_spawned, "in a task of the current-thread runtime")
                })
                .await?
            })
        },
    )
    .await
}

/// A db restored lazily reads from threads that are in no runtime: while the runtime
/// that restored it exists but is not running, after it is dropped, and from a thread
/// started after that.
pub async fn a_lazy_db_reads_from_threads_without_a_runtime<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let fixture = Arc::new(fixture(factory).await?);
    on_own_thread("restore, then read from plain threads", move || {
        let idle = runtime(false)?;
        let mut dbs = idle.block_on(fixture.store_and_restore(3))?;
        let (Some(on_new_thread), Some(after_drop), Some(while_idle)) =
            (dbs.pop(), dbs.pop(), dbs.pop())
        else {
            return Err(Failure::new("three lazy restores gave fewer dbs"));
        };
        fixture.check(
            &while_idle,
            "from a plain thread, the restoring runtime alive but idle",
        )?;
        drop(idle);
        fixture.check(
            &after_drop,
            "from a plain thread, the restoring runtime dropped",
        )?;
        let f = fixture.clone();
        std::thread::spawn(move || f.check(&on_new_thread, "from a new plain thread"))
            .join()
            .map_err(|_| Failure::new("the reading thread panicked"))?
    })
    .await
}
