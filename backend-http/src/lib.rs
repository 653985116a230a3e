//! `backend-http`: a datoms [`Storage`] over the HTTP API of `datoms serve`
//! (`http://HOST:PORT/PREFIX` or `https://…`).
//!
//! - Blobs go in batches (`POST /blobs:get`, `POST /blobs`), sized by the server's
//!   advertised batch and body limits; heads are read with their `ETag` and moved by a
//!   conditional `PUT` (`If-Match` / `If-None-Match: *`), a `412` becoming
//!   [`StorageError::HeadConflict`] with the head the server reports.
//! - [`Storage::sync_bundle`] uses `GET /sync/{name}?have=` when the server advertises
//!   it (`GET /capabilities`), so `restore_from` and `sync` take one request.
//! - [`Storage::head_changes`] listens to the server's `GET /watch` event stream, so a
//!   follower learns of a new commit without waiting for its poll.
//! - One pooled `reqwest` client (rustls, ring) on a runtime the storage owns
//!   ([`IoRuntime`]), at most [`HttpOptions::max_in_flight`] requests at once. Requests
//!   that can be repeated are retried on 5xx answers, timeouts and failed connections
//!   ([`HttpOptions::retries`]), never on other errors; a head `PUT` is not repeated (it
//!   may have landed): a failure there is [`StorageError::Transient`], after which the
//!   head is moved or not, as the trait says.

mod client;
mod errors;
mod options;
mod watch;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use datoms_core::Address;
use datoms_storage::{
    BlobStamp, Capabilities, Head, HeadChanges, HeadSignal, IoRuntime, Storage, StorageError,
    SyncBundle, Version,
};

use client::Core;
pub use options::HttpOptions;

/// The name of the storage's runtime threads.
pub const IO_THREAD_NAME: &str = "datoms-http-io";

/// A storage served by `datoms serve`.
pub struct HttpStorage {
    io: IoRuntime,
    core: Arc<Core>,
    /// The `/watch` listener's signal, started by the first `head_changes` call.
    signal: OnceLock<HeadSignal>,
}

impl std::fmt::Debug for HttpStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStorage")
            .field("base", &self.core.options.base)
            .finish_non_exhaustive()
    }
}

impl HttpStorage {
    /// Opens `http://HOST:PORT[/PREFIX]` or `https://…`, with the bearer token of
    /// `DATOMS_TOKEN` if set, reading the server's capabilities.
    ///
    /// # Errors
    /// As [`HttpStorage::connect`].
    pub async fn open(url: &str) -> Result<HttpStorage, StorageError> {
        HttpStorage::connect(HttpOptions::from_url(url)?).await
    }

    /// Connects with explicit options: one request, `GET /capabilities`.
    ///
    /// # Errors
    /// [`StorageError::BadLocation`] for a URL that is not http(s);
    /// [`StorageError::Transient`] if the server cannot be reached; [`StorageError::Backend`]
    /// if it refuses the token.
    pub async fn connect(options: HttpOptions) -> Result<HttpStorage, StorageError> {
        let io = IoRuntime::new(IO_THREAD_NAME, 2)?;
        let core = io.spawn(Core::connect(options)).await??;
        Ok(HttpStorage {
            io,
            core: Arc::new(core),
            signal: OnceLock::new(),
        })
    }

    /// The options it was opened with.
    pub fn options(&self) -> &HttpOptions {
        &self.core.options
    }

    /// HTTP requests this storage has sent (repeats included, the watch stream not):
    /// what a restore really cost in round trips.
    pub fn requests_sent(&self) -> u64 {
        self.core.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The server's capabilities, as read at connect.
    pub fn server_capabilities(&self) -> &http_wire::CapabilitiesJson {
        &self.core.server
    }
}

#[async_trait]
impl Storage for HttpStorage {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        let (core, addresses) = (self.core.clone(), addresses.to_vec());
        self.io
            .spawn(async move { core.get_many(&addresses).await })
            .await?
    }

    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        let (core, blobs) = (self.core.clone(), blobs.to_vec());
        self.io
            .spawn(async move { core.put_many(&blobs).await })
            .await?
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        let (core, name) = (self.core.clone(), name.to_owned());
        self.io
            .spawn(async move { core.get_head(&name).await })
            .await?
    }

    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        let (core, name, expected) = (self.core.clone(), name.to_owned(), expected.cloned());
        self.io
            .spawn(async move { core.cas_head(&name, expected.as_ref(), new).await })
            .await?
    }

    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        let core = self.core.clone();
        self.io
            .spawn(async move { core.list_heads().await })
            .await?
    }

    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        let (core, name, expected) = (self.core.clone(), name.to_owned(), expected.clone());
        self.io
            .spawn(async move { core.delete_head(&name, &expected).await })
            .await?
    }

    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        let core = self.core.clone();
        self.io
            .spawn(async move { core.list_blobs(after, limit).await })
            .await?
    }

    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        let (core, addresses) = (self.core.clone(), addresses.to_vec());
        self.io
            .spawn(async move { core.delete_many(&addresses).await })
            .await?
    }

    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError> {
        let core = self.core.clone();
        self.io
            .spawn(async move { core.list_blob_stamps(after, limit).await })
            .await?
    }

    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: std::time::SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        let (core, addresses) = (self.core.clone(), addresses.to_vec());
        self.io
            .spawn(async move { core.delete_stale(&addresses, written_before).await })
            .await?
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_batch: self.core.max_batch(),
            concurrency: self.core.options.concurrency.max(1),
        }
    }

    /// Fed by the server's `GET /watch` stream (when it offers one), listened to on the
    /// storage's runtime from the first call on, reconnecting when it drops.
    fn head_changes(&self) -> Option<HeadChanges> {
        if !self.core.server.watch {
            return None;
        }
        let signal = self.signal.get_or_init(|| {
            let signal = HeadSignal::new();
            // The listener holds the core and the signal, not the runtime: it ends when
            // the storage (and with it the runtime) is dropped.
            let (core, s) = (self.core.clone(), signal.clone());
            drop(self.io.spawn(watch::listen(core, s)));
            signal
        });
        Some(signal.subscribe())
    }

    async fn sync_bundle(
        &self,
        name: &str,
        have: Option<Address>,
    ) -> Result<Option<SyncBundle>, StorageError> {
        if !self.core.server.sync || !self.core.options.smart_sync {
            return Ok(None);
        }
        let (core, name) = (self.core.clone(), name.to_owned());
        self.io
            .spawn(async move { core.sync_bundle(&name, have).await })
            .await?
            .map(Some)
    }
}
