//! [`IoRuntime`]: a small tokio runtime owned by whoever must do I/O independently of
//! its caller's runtime — the [`StorageSource`](crate::StorageSource) of a lazily
//! restored db, and backends whose I/O needs a runtime (blocking file work, an HTTP
//! connection pool). And [`catch_panics`], which turns a panic of a library a backend
//! calls into a value the backend can report as a typed error.
//!
//! Why: a db value lives longer than any one runtime. A backend that ran its blocking
//! work on the caller's runtime fails once that runtime is dropped ("task was
//! cancelled"), or panics when called with no runtime at all; an HTTP client whose
//! connections are driven by tasks of the caller's runtime hangs when that runtime is a
//! current-thread one blocked on a synchronous node load. Work spawned on an
//! [`IoRuntime`] is driven by its own threads, and its result is awaited through a
//! [`JoinHandle`](tokio::task::JoinHandle), which any executor can poll — or waited for
//! on a channel by [`IoRuntime::block_on`], from any thread.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::{Arc, Once};

use futures::FutureExt;
use tokio::runtime::{Handle, Runtime};

use crate::error::StorageError;

/// A tokio runtime owned by a storage or a node source (cheap to clone: clones share
/// it). It stops when the last clone is dropped, without waiting for work in flight, so
/// dropping it is allowed anywhere, inside an async context included.
///
/// Work spawned on it must not hold a clone of it (hold the data the work needs
/// instead), so that the last clone is never dropped on one of its own threads.
#[derive(Clone)]
pub struct IoRuntime {
    owner: Arc<Owner>,
}

struct Owner {
    /// `Some` until dropped.
    runtime: Option<Runtime>,
    handle: Handle,
    name: String,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime waits for its blocking threads, which is not allowed
            // in an async context; this signals them and returns.
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for IoRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoRuntime")
            .field("name", &self.owner.name)
            .finish()
    }
}

impl IoRuntime {
    /// A multi-thread runtime with `workers` worker threads (at least one) and every
    /// driver (I/O, time) on; its threads are named `name`. Blocking work runs on its
    /// blocking pool, whose threads start on demand and end after 10 s idle.
    ///
    /// # Errors
    /// [`StorageError::Backend`] if the threads cannot be started.
    pub fn new(name: &str, workers: usize) -> Result<IoRuntime, StorageError> {
        #[cfg(not(target_family = "wasm"))]
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name(name)
            .enable_all()
            .build();
        // WebAssembly has no threads: a current-thread runtime, which the browser's
        // event loop never drives, so nothing there may block on it (the wasm peer
        // restores eagerly and awaits its storage directly).
        #[cfg(target_family = "wasm")]
        let runtime = {
            let _ = workers;
            tokio::runtime::Builder::new_current_thread().build()
        };
        let runtime = runtime
            .map_err(|e| StorageError::backend(format!("cannot start the {name} runtime: {e}")))?;
        Ok(IoRuntime {
            owner: Arc::new(Owner {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
                name: name.to_owned(),
            }),
        })
    }

    /// The runtime's handle.
    pub fn handle(&self) -> &Handle {
        &self.owner.handle
    }

    /// The name its threads carry.
    pub fn name(&self) -> &str {
        &self.owner.name
    }

    /// Runs `future` on this runtime. The returned future (which needs no runtime to be
    /// polled) gives its output; a panic of `future` becomes [`StorageError::Backend`]
    /// with the panic's message.
    pub fn spawn<T, Fut>(
        &self,
        future: Fut,
    ) -> impl Future<Output = Result<T, StorageError>> + Send + 'static
    where
        T: Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let task = self.handle().spawn(future);
        let name = self.owner.name.clone();
        async move { task.await.map_err(|e| join_error(&name, e)) }
    }

    /// Runs blocking `work` on this runtime's blocking pool; as [`IoRuntime::spawn`].
    pub fn spawn_blocking<T, F>(
        &self,
        work: F,
    ) -> impl Future<Output = Result<T, StorageError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let task = self.handle().spawn_blocking(work);
        let name = self.owner.name.clone();
        async move { task.await.map_err(|e| join_error(&name, e)) }
    }

    /// Runs `future` with this runtime's drivers and blocks the calling thread until it
    /// is done. Callable from any thread:
    /// - in no runtime, it polls `future` on the calling thread (this runtime's workers
    ///   drive its I/O and timers, its blocking pool runs its blocking work);
    /// - on a multi-thread runtime's thread, the same inside `block_in_place`, so that
    ///   the worker's other tasks move to another thread meanwhile;
    /// - inside a current-thread runtime, whose one thread cannot leave it, `future` runs
    ///   as a task of this runtime and the calling thread waits on a channel (its own
    ///   runtime stalls meanwhile, but `future` does not need it).
    ///
    /// It must not be called from one of this runtime's own threads.
    ///
    /// # Errors
    /// [`StorageError::Backend`] if `future` panicked (with its message) or the runtime
    /// stopped before it finished.
    pub fn block_on<T, Fut>(&self, future: Fut) -> Result<T, StorageError>
    where
        T: Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let future = AssertUnwindSafe(future).catch_unwind();
        let outcome = match Handle::try_current().map(|h| h.runtime_flavor()) {
            Err(_) => Some(self.handle().block_on(future)),
            #[cfg(not(target_family = "wasm"))]
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                Some(tokio::task::block_in_place(|| {
                    self.handle().block_on(future)
                }))
            }
            Ok(_) => {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                self.handle().spawn(async move {
                    let _ = tx.send(future.await);
                });
                rx.recv().ok()
            }
        };
        match outcome {
            Some(Ok(value)) => Ok(value),
            Some(Err(panic)) => Err(StorageError::backend(format!(
                "a task of the {} runtime panicked: {}",
                self.owner.name,
                panic_message(&*panic)
            ))),
            None => Err(StorageError::backend(format!(
                "the {} runtime stopped before the task finished",
                self.owner.name
            ))),
        }
    }
}

fn join_error(name: &str, e: tokio::task::JoinError) -> StorageError {
    if e.is_panic() {
        let panic = e.into_panic();
        StorageError::backend(format!(
            "a task of the {name} runtime panicked: {}",
            panic_message(&*panic)
        ))
    } else {
        StorageError::backend(format!(
            "the {name} runtime stopped before the task finished"
        ))
    }
}

/// The message of a panic payload (`panic!` with a literal or a format string).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// A panic caught by [`catch_panics`]: its message and where it was raised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panic {
    /// The panic's message.
    pub message: String,
    /// `file:line:column` of the `panic!` (or the failed `unwrap`, the unreachable
    /// code…), when known.
    pub location: Option<String>,
}

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(at) => write!(f, "{} (at {at})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

thread_local! {
    /// How many `catch_panics` calls are running on this thread.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
    /// The location of the last panic caught on this thread.
    static LAST_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Runs `work`, turning a panic inside it into an `Err` with the panic's message and
/// location, for a backend to report as a typed error (a library that panics on a
/// damaged file, say) instead of unwinding into its caller.
///
/// The first call installs a panic hook that stays silent for panics raised inside
/// `catch_panics` (they are reported as errors instead of printed) and hands every
/// other panic to the hook that was installed before it.
///
/// # Errors
/// The panic, if `work` panicked.
pub fn catch_panics<T>(work: impl FnOnce() -> T) -> Result<T, Panic> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if CATCHING.with(Cell::get) > 0 {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                LAST_LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
    CATCHING.with(|c| c.set(c.get() + 1));
    LAST_LOCATION.with(|l| l.borrow_mut().take());
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(work));
    CATCHING.with(|c| c.set(c.get().saturating_sub(1)));
    outcome.map_err(|payload| Panic {
        message: panic_message(&*payload),
        location: LAST_LOCATION.with(|l| l.borrow_mut().take()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_from_a_plain_thread_and_after_the_callers_runtime_is_gone() {
        let io = IoRuntime::new("datoms-test-io", 1).unwrap();
        assert_eq!(io.block_on(async { 1 + 1 }).unwrap(), 2);
        let caller = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sleep = caller.block_on(async {
            io.block_on(async {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                "slept"
            })
        });
        assert_eq!(sleep.unwrap(), "slept");
        drop(caller);
        let blocking = futures::executor::block_on(io.spawn_blocking(|| 7));
        assert_eq!(blocking.unwrap(), 7);
        let spawned = futures::executor::block_on(io.spawn(async { 8 }));
        assert_eq!(spawned.unwrap(), 8);
    }

    #[test]
    fn block_on_inside_a_multi_thread_runtime_task_does_not_stall_it() {
        let io = IoRuntime::new("datoms-test-io", 1).unwrap();
        let caller = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let got = caller.block_on(async move {
            tokio::spawn(async move { io.block_on(async { 5 }) })
                .await
                .unwrap()
        });
        assert_eq!(got.unwrap(), 5);
    }

    #[test]
    fn panics_of_spawned_work_are_errors_with_their_message() {
        let io = IoRuntime::new("datoms-test-io", 1).unwrap();
        let e = io
            .block_on::<(), _>(async { panic!("boom in a task") })
            .unwrap_err();
        assert!(e.to_string().contains("boom in a task"), "{e}");
        let e = futures::executor::block_on(io.spawn_blocking::<(), _>(|| panic!("boom blocking")))
            .unwrap_err();
        assert!(e.to_string().contains("boom blocking"), "{e}");
    }

    #[test]
    fn dropping_the_runtime_inside_an_async_context_is_allowed() {
        let caller = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        caller.block_on(async {
            let io = IoRuntime::new("datoms-test-io", 1).unwrap();
            drop(io);
        });
    }

    #[test]
    fn catch_panics_reports_message_and_location() {
        let p = catch_panics(|| -> u32 { panic!("caught {}", 42) }).unwrap_err();
        assert_eq!(p.message, "caught 42");
        assert!(
            p.location
                .as_deref()
                .is_some_and(|l| l.contains("runtime.rs")),
            "{p:?}"
        );
        assert_eq!(catch_panics(|| 3), Ok(3));
    }
}
