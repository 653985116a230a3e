//! A db is a value: a lazily restored db reads its nodes from any thread and any tokio
//! runtime, or from none, for as long as it lives — whichever runtime restored it, and
//! whether that runtime still exists. These cases restore a db in one runtime and read
//! it (every datom of every index, which loads every node through the db's source) from
//! another one, from a current-thread runtime, and from plain threads.
//!
//! The store is opened inside the runtime that restores the db (the factory's `create`
//! runs there), as a program opens its storage in its main runtime: a backend whose
//! requests stay tied to the runtime that opened it fails here too. A runtime cannot be
//! started or dropped inside another one, so each case does this on threads of its own
//! (the factory must work from any thread). The case waits for its reading thread at
//! most [`DEADLINE`]: a read that hangs fails the case with a message instead of hanging
//! the test run, and a panic on that thread fails it too.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use datoms_core::{Db, Eid, Value};
use datoms_storage::{restore, store, Storage};
use tokio::runtime::{Builder, Handle, Runtime, RuntimeFlavor};

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
/// entity to look up, with the store it goes into.
struct Fixture {
    storage: Arc<dyn Storage>,
    primary: Db,
    want: Snapshot,
    entity: Eid,
}

/// A db of a few hundred datoms (trees several levels deep, so that reading it lazily
/// loads many nodes), not stored yet, and a fresh store of `factory` opened inside a new
/// runtime (multi-thread or current-thread), which is handed back unused since.
async fn fixture<F: Factory>(
    factory: &F,
    multi_thread: bool,
) -> Result<(Fixture, OwnedRuntime), Failure> {
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
    let (runtime, storage) = open_in_new_runtime(factory, multi_thread)?;
    Ok((
        Fixture {
            want: snapshot(&primary)?,
            storage,
            primary,
            entity,
        },
        runtime,
    ))
}

/// A runtime a case moves to its own thread; dropped anywhere else (a case that fails
/// early, inside its async runtime), it shuts down in the background instead of
/// panicking.
struct OwnedRuntime(Option<Runtime>);

impl OwnedRuntime {
    /// The runtime, to use and drop on a thread outside any runtime.
    fn take(mut self) -> Result<Runtime, Failure> {
        self.0
            .take()
            .ok_or_else(|| Failure::new("the runtime was taken already"))
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Starts a runtime and makes a store of `factory` inside it, on a thread of its own
/// (the case's runtime waits, through `block_in_place` on a multi-thread one).
fn open_in_new_runtime<F: Factory>(
    factory: &F,
    multi_thread: bool,
) -> Result<(OwnedRuntime, Arc<dyn Storage>), Failure> {
    let open = || {
        let runtime = runtime(multi_thread)?;
        let store = runtime
            .block_on(factory.create())
            .map_err(|e| Failure::from(e).context("creating a store in a new runtime"))?;
        let store: Arc<dyn Storage> = Arc::new(store);
        Ok((OwnedRuntime(Some(runtime)), store))
    };
    let on_a_thread = || {
        std::thread::scope(|s| {
            s.spawn(open)
                .join()
                .unwrap_or_else(|_| Err(Failure::new("creating a store panicked")))
        })
    };
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(on_a_thread),
        _ => on_a_thread(),
    }
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

/// A db restored lazily in a multi-thread runtime (as under `#[tokio::main]`), from a
/// store opened there, reads after that runtime is dropped: in a task of a new
/// multi-thread runtime, and inside a new current-thread runtime. Its source must not
/// hold on to the runtime that made it, nor the backend to the runtime that opened it
/// or ran its first requests.
pub async fn a_lazy_db_reads_after_the_runtime_that_restored_it_is_dropped<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let (fixture, first) = fixture(factory, true).await?;
    let fixture = Arc::new(fixture);
    on_own_thread("open, restore, drop the runtime, read", move || {
        let first = first.take()?;
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

/// A db restored lazily inside a current-thread runtime (as under `#[tokio::test]`), from
/// a store opened there, reads inside that runtime, from its `block_on` and from a task
/// it runs, without deadlocking on the one thread that drives that runtime's I/O.
pub async fn a_lazy_db_reads_inside_a_current_thread_runtime<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let (fixture, current) = fixture(factory, false).await?;
    let fixture = Arc::new(fixture);
    on_own_thread(
        "open, restore and read in one current-thread runtime",
        move || {
            let current = current.take()?;
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

/// A db restored lazily (from a store opened in the same current-thread runtime) reads
/// from threads that are in no runtime: while the runtime that restored it exists but
/// is not running, after it is dropped, and from a thread started after that.
pub async fn a_lazy_db_reads_from_threads_without_a_runtime<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let (fixture, idle) = fixture(factory, false).await?;
    let fixture = Arc::new(fixture);
    on_own_thread("open, restore, then read from plain threads", move || {
        let idle = idle.take()?;
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
