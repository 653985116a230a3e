//! `backend-s3`: datoms in S3 or any S3-compatible object store (MinIO, Ceph RGW, R2,
//! Garage…), shared by any number of replicas.
//!
//! Layout under the database's key prefix: blobs (tree nodes and commits) at
//! `prefix/.datoms/nodes/<address hex>`, heads at `prefix/.datoms/heads/<name>`. A prefix
//! may not have `.datoms` ([`DATA_SEGMENT`]) as a segment, so the keys of one database
//! never fall under another's, however their prefixes nest (`s3://b/x` and
//! `s3://b/x/nodes`, or the bucket root and any prefix): listing, GC and an operator's
//! `aws s3 rm --recursive s3://b/x/.datoms/` touch one database only. Blobs are
//! content-addressed, so their puts are idempotent: a put is skipped when this process
//! wrote the blob lately, and otherwise sent with `If-None-Match: *`, so the server
//! answers "already there" (412) instead of rewriting it (and the blob's write time is
//! refreshed, see below). A head moves only by a
//! conditional write — created with `If-None-Match: *`, replaced with
//! `If-Match: <etag>` — so two writers can never both win; the loser gets
//! [`StorageError::HeadConflict`](datoms_storage::StorageError::HeadConflict) with the
//! head read back. Head versions are ETags, and every head write carries a nonce, so a
//! head moved away and back gets a new version.
//!
//! Some S3-compatible servers accept `If-None-Match` / `If-Match` and ignore them. So
//! before its first head move a storage probes, on a scratch key under the prefix,
//! that both conditions are enforced (a refused overwrite each), once per storage; on
//! a server that ignores them it refuses to move heads, with an error naming the
//! condition. [`S3Options::single_writer`] (`single_writer=true`) skips the probe, for
//! a prefix that one process alone writes.
//!
//! S3 has no batch get: `get_many` and `put_many` send one request per blob, at most
//! [`S3Options::concurrency`] in flight across all calls of one storage, retrying
//! throttling, 5xx, timeouts and dropped connections with jittered exponential backoff
//! ([`RetryPolicy`]); other 4xx are never retried. A missing key reads as `None`; after
//! the retries a transient failure is `StorageError::Transient`; anything else is
//! `StorageError::Backend` naming the `s3://bucket/key` at fault.
//!
//! ```no_run
//! # async fn demo() -> Result<(), datoms_storage::StorageError> {
//! use datoms_storage::Storage;
//!
//! // AWS S3, with the standard credential chain and region resolution:
//! let storage = backend_s3::S3Storage::open("s3://my-bucket/crm").await?;
//! // An S3-compatible server (the endpoint implies path-style addressing):
//! let local = backend_s3::S3Storage::open(
//!     "s3://datoms/crm?endpoint=http://127.0.0.1:9000&region=us-east-1",
//! )
//! .await?;
//! local.check_conditional_writes().await?; // early; the first head move checks too
//! assert_eq!(local.capabilities().concurrency, 32);
//! # Ok(()) }
//! ```
//!
//! # Checking a provider
//!
//! The crate's tests run the whole `conformance` suite, plus the S3-specific cases, against
//! moto's S3 server, which the harness starts on a free port of 127.0.0.1 (installed by
//! `scripts/setup/s3.sh`). To run the same suite against your own bucket, with the
//! standard credential chain, each store under `prefix/datoms-test-<run>/<n>` (objects
//! are left there):
//!
//! ```text
//! DATOMS_S3_URL='s3://my-bucket/scratch?region=eu-west-1' cargo test -p backend-s3
//! ```
//!
//! The fault-injection cases (throttling, 5xx, lost replies) still run on the local server,
//! behind a proxy. [`S3Storage::check_conditional_writes`] is the quick check alone.
//!
//! # Known limits
//!
//! - The "known stored" set is per process, and holds only blobs this process wrote (or
//!   refreshed) in the last [`storage::KNOWN_FOR`]; garbage collection's grace period
//!   must exceed that, so a blob a put skips is never collected meanwhile.
//!   [`S3Storage::forget_known`] empties it at once.
//! - Blob age, for garbage collection, is the object's `LastModified`, rounded up to the
//!   end of its second. A put of a blob already stored copies it onto itself, which
//!   refreshes `LastModified` (one `CopyObject`). `delete_stale` checks each object's
//!   `LastModified` (`HeadObject`) before deleting it: S3 has no delete conditional on a
//!   time, so a put landing between the two is undone; the grace period, longer than
//!   any store, covers every store that started before the check.
//! - Versions are ETags: a provider whose ETags do not change with the content would
//!   break CAS. The conditional-write probe catches providers that ignore the
//!   conditional headers altogether.

mod failure;
pub mod options;
pub mod storage;

pub use options::{RetryPolicy, S3Options, StaticCredentials, Timeouts, DATA_SEGMENT};
pub use storage::{RequestCounts, S3Storage, IO_THREAD_NAME};
