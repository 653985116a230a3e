//! [`S3Storage`]: the [`Storage`] trait over S3 objects.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, MetadataDirective, ObjectIdentifier};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use bytes::Bytes;
use datoms_core::Address;
use datoms_storage::{BlobStamp, Capabilities, Head, IoRuntime, Storage, StorageError, Version};
use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::sync::Semaphore;

use crate::failure::{classify_status, Failure, Kind};
use crate::options::{RetryPolicy, S3Options, DATA_SEGMENT, DEFAULT_COMPATIBLE_REGION};

/// The most keys one `DeleteObjects` or `ListObjectsV2` request takes or returns.
pub const S3_PAGE: usize = 1000;

/// The first line of a head object.
const HEAD_MAGIC: &str = "datoms-head 1";

/// A [`Storage`] in an S3 bucket (AWS S3 or any S3-compatible server), under one key
/// prefix. Cloning is cheap; clones share the connection pool, the request limit, the
/// "known stored" set, the counters and the runtime that sends the requests.
///
/// Every request runs on a small runtime the storage owns ([`IoRuntime`], threads named
/// [`IO_THREAD_NAME`]), so the HTTP connections and their driver tasks live there, not
/// on the caller's runtime: the storage (and a db lazily restored from it) works from
/// any runtime, a current-thread one blocked on a synchronous node load included, after
/// the runtime that opened it is dropped, and from none.
#[derive(Clone)]
pub struct S3Storage {
    core: Arc<Core>,
    io: IoRuntime,
}

/// The name of the threads of the runtime that sends an [`S3Storage`]'s requests.
pub const IO_THREAD_NAME: &str = "datoms-s3";

/// Everything a request needs; what the tasks on the storage's runtime hold (never the
/// runtime itself, so that it is never dropped on one of its own threads).
struct Core {
    client: Client,
    bucket: String,
    /// `prefix/.datoms/` (`.datoms/` at the bucket root): what every key of this
    /// database starts with, and no other database's.
    base: String,
    options: S3Options,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    permits: Semaphore,
    /// Addresses this process wrote (or refreshed), and when.
    known: Mutex<HashMap<Address, Instant>>,
    counters: Counters,
    /// The verdict of the conditional-write probe, once one was reached: `Err` names
    /// what the server failed to enforce. A probe that failed for another reason (a
    /// timeout) leaves it unset, to be tried again at the next head move.
    conditional: tokio::sync::OnceCell<Result<(), String>>,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options = &self.core.options;
        f.debug_struct("S3Storage")
            .field("location", &options.location())
            .field("endpoint", &options.endpoint)
            .field("concurrency", &options.concurrency)
            .finish()
    }
}

/// The S3 requests an [`S3Storage`] has sent, by kind. Every attempt counts, retries
/// included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// `GetObject` of nodes and commits, and `HeadObject` of the blobs
    /// [`Storage::delete_stale`] checks.
    pub node_gets: u64,
    /// `PutObject` of nodes and commits, and `CopyObject` refreshing the write time of a
    /// blob a put found already stored.
    pub node_puts: u64,
    /// Node puts skipped because the "known stored" set had the address (not requests).
    pub puts_skipped: u64,
    /// `GetObject` of heads.
    pub head_gets: u64,
    /// Conditional `PutObject` of heads.
    pub head_puts: u64,
    /// `ListObjectsV2` pages.
    pub lists: u64,
    /// `DeleteObjects` requests.
    pub deletes: u64,
    /// Attempts that failed transiently and were tried again (counted in their kind too).
    pub retries: u64,
}

impl RequestCounts {
    /// Every request sent, of every kind.
    pub fn requests(&self) -> u64 {
        self.node_gets
            + self.node_puts
            + self.head_gets
            + self.head_puts
            + self.lists
            + self.deletes
    }
}

#[derive(Debug, Default)]
struct Counters {
    node_gets: AtomicU64,
    node_puts: AtomicU64,
    puts_skipped: AtomicU64,
    head_gets: AtomicU64,
    head_puts: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    retries: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    NodeGet,
    NodePut,
    HeadGet,
    HeadPut,
    List,
    Delete,
}

/// A request that failed for good: why, after how many attempts, and whether an earlier
/// attempt failed in a way that may have taken effect on the server.
struct Attempted {
    failure: Failure,
    attempts: u32,
    ambiguous: bool,
}

impl S3Storage {
    /// Connects to the database at `url`: `s3://BUCKET[/PREFIX][?endpoint=…&region=…]`
    /// (see [`S3Options::from_url`]), with the standard AWS credential chain.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), datoms_storage::StorageError> {
    /// let aws = backend_s3::S3Storage::open("s3://my-bucket/crm").await?;
    /// let minio = backend_s3::S3Storage::open(
    ///     "s3://datoms/crm?endpoint=http://127.0.0.1:9000&region=us-east-1",
    /// )
    /// .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StorageError::Backend`] for a malformed URL or when no region can be found;
    /// [`StorageError::BadLocation`] for a prefix [`S3Options::validate`] refuses.
    /// Nothing is sent to the server yet: credentials and permissions are checked by the
    /// first request.
    pub async fn open(url: &str) -> Result<S3Storage, StorageError> {
        S3Storage::connect(S3Options::from_url(url)?).await
    }

    /// Connects with explicit options.
    ///
    /// # Errors
    /// [`StorageError::BadLocation`] for options [`S3Options::validate`] refuses;
    /// [`StorageError::Backend`] when no region can be resolved for AWS S3 (no endpoint
    /// override, nothing in `AWS_REGION` or the profile).
    pub async fn connect(options: S3Options) -> Result<S3Storage, StorageError> {
        options.validate()?;
        let io = IoRuntime::new(IO_THREAD_NAME, 2)?;
        // Built on the storage's runtime, like everything the client does later.
        let client = io.spawn(S3Storage::client_for(options.clone())).await??;
        Ok(S3Storage::on_runtime(io, client, options))
    }

    /// The SDK client `connect` makes for `options`.
    async fn client_for(options: S3Options) -> Result<Client, StorageError> {
        // rustls with ring and the platform's roots: HTTPS to real S3 without building
        // aws-lc; plain http for loopback servers.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
        if let Some(region) = &options.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(c) = &options.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                c.session_token.clone(),
                None,
                "datoms-static",
            ));
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            if options.endpoint.is_none() {
                return Err(StorageError::backend(format!(
                    "S3 {}: no region (set AWS_REGION, a profile region, or ?region= in the URL)",
                    options.location()
                )));
            }
            config = config.region(Region::new(DEFAULT_COMPATIBLE_REGION));
        }
        if let Some(endpoint) = &options.endpoint {
            config = config.endpoint_url(endpoint.clone());
        }
        let config = config
            .force_path_style(options.path_style)
            // Only when an operation requires a checksum: S3-compatible servers differ
            // in their support of the newer flexible checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(options.timeouts.connect)
                    .operation_attempt_timeout(options.timeouts.attempt)
                    .build(),
            )
            .build();
        Ok(Client::from_conf(config))
    }

    /// A storage over a client configured by the caller (custom HTTP client, proxy,
    /// credentials…). The client's own retries are turned off: the storage retries by
    /// [`S3Options::retry`], and both together would multiply attempts. From `options`
    /// only the bucket, prefix, concurrency, retry policy and known-set size apply; the
    /// endpoint, region, credentials and timeouts are the client's.
    ///
    /// # Errors
    /// [`StorageError::BadLocation`] for options [`S3Options::validate`] refuses;
    /// [`StorageError::Backend`] if the storage's runtime cannot be started.
    pub fn with_client(client: Client, options: S3Options) -> Result<S3Storage, StorageError> {
        options.validate()?;
        Ok(S3Storage::on_runtime(
            IoRuntime::new(IO_THREAD_NAME, 2)?,
            client,
            options,
        ))
    }

    fn on_runtime(io: IoRuntime, client: Client, mut options: S3Options) -> S3Storage {
        options.concurrency = options.concurrency.max(1);
        options.retry.max_attempts = options.retry.max_attempts.max(1);
        let client = Client::from_conf(
            client
                .config()
                .to_builder()
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        let base = if options.prefix.is_empty() {
            format!("{DATA_SEGMENT}/")
        } else {
            format!("{}/{DATA_SEGMENT}/", options.prefix)
        };
        S3Storage {
            core: Arc::new(Core {
                client,
                bucket: options.bucket.clone(),
                base,
                shared: Arc::new(Shared {
                    permits: Semaphore::new(options.concurrency),
                    known: Mutex::new(HashMap::new()),
                    counters: Counters::default(),
                    conditional: tokio::sync::OnceCell::new(),
                }),
                options,
            }),
            io,
        }
    }

    /// The options this storage runs with.
    pub fn options(&self) -> &S3Options {
        &self.core.options
    }

    /// The SDK client (to create a bucket, say). Requests sent through it directly run
    /// on the caller's runtime, not on the storage's, and may leave pooled connections
    /// driven by that runtime; the storage's own requests go through [`Storage`].
    pub fn client(&self) -> &Client {
        &self.core.client
    }

    /// The object key of blob `address`: `prefix/.datoms/nodes/<64 hex digits>`.
    pub fn node_key(&self, address: &Address) -> String {
        self.core.node_key(address)
    }

    /// The object key of head `name`: `prefix/.datoms/heads/<name>`, the name percent-encoded
    /// outside `[A-Za-z0-9._-]` so that any name is one safe key segment.
    pub fn head_key(&self, name: &str) -> String {
        self.core.head_key(name)
    }

    /// The requests sent since creation or the last reset (shared by clones).
    pub fn request_counts(&self) -> RequestCounts {
        let c = &self.core.shared.counters;
        let l = |x: &AtomicU64| x.load(Ordering::Relaxed);
        RequestCounts {
            node_gets: l(&c.node_gets),
            node_puts: l(&c.node_puts),
            puts_skipped: l(&c.puts_skipped),
            head_gets: l(&c.head_gets),
            head_puts: l(&c.head_puts),
            lists: l(&c.lists),
            deletes: l(&c.deletes),
            retries: l(&c.retries),
        }
    }

    /// Zeroes the request counters.
    pub fn reset_request_counts(&self) {
        let c = &self.core.shared.counters;
        for x in [
            &c.node_gets,
            &c.node_puts,
            &c.puts_skipped,
            &c.head_gets,
            &c.head_puts,
            &c.lists,
            &c.deletes,
            &c.retries,
        ] {
            x.store(0, Ordering::Relaxed);
        }
    }

    /// Forgets every address of the "known stored" set, so that the next puts ask the
    /// server. For a process that learns that another one garbage-collected blobs.
    pub fn forget_known(&self) {
        if let Ok(mut known) = self.core.shared.known.lock() {
            known.clear();
        }
    }

    /// Checks that the server enforces conditional writes, which heads rely on: a create
    /// with `If-None-Match: *` over an existing object and an update with a stale
    /// `If-Match` must both be refused with 412. Writes and deletes one probe object
    /// under `prefix/.datoms/probe/`. The storage runs this itself before its first head
    /// move (and refuses to move heads if it fails); call it to check a provider early.
    ///
    /// # Errors
    /// [`StorageError::Backend`] naming the probe key if the server overwrote instead of
    /// refusing; request errors.
    pub async fn check_conditional_writes(&self) -> Result<(), StorageError> {
        let core = self.core.clone();
        self.io
            .spawn(async move { core.check_conditional_writes().await })
            .await?
    }
}

impl Core {
    /// Checks that the server enforces conditional writes, which heads rely on: a create
    /// with `If-None-Match: *` over an existing object and an update with a stale
    /// `If-Match` must both be refused with 412. Writes and deletes one probe object
    /// under `prefix/.datoms/probe/`.
    ///
    /// # Errors
    /// [`StorageError::Backend`] naming the probe key if the server overwrote instead of
    /// refusing; request errors.
    async fn check_conditional_writes(&self) -> Result<(), StorageError> {
        self.probe_conditional_writes()
            .await?
            .map_err(StorageError::backend)
    }

    /// Before the first head move of this storage: the probe's verdict, reached once
    /// and kept (see [`S3Options::single_writer`] to skip it).
    ///
    /// # Errors
    /// [`StorageError::Backend`] naming what the server does not enforce and how to
    /// override; request errors of the probe.
    async fn ensure_conditional_writes(&self) -> Result<(), StorageError> {
        if self.options.single_writer {
            return Ok(());
        }
        let verdict = self
            .shared
            .conditional
            .get_or_try_init(|| self.probe_conditional_writes())
            .await?;
        verdict.clone().map_err(|why| {
            StorageError::backend(format!(
                "{why}; refusing to move heads on {} (add single_writer=true to the URL only \
                 if this process is the one writer of this prefix)",
                self.options.location()
            ))
        })
    }

    /// Writes a probe object and tries to overwrite it with `If-None-Match: *` and with
    /// a stale `If-Match`; deletes it. `Ok(Err(why))` is the verdict that the server
    /// does not enforce a condition; `Err` a request that failed.
    async fn probe_conditional_writes(&self) -> Result<Result<(), String>, StorageError> {
        let key = format!("{}probe/{}", self.base, nonce());
        let location = self.location(&key);
        let put = |body: &'static str, if_none: bool, if_match: Option<&'static str>| {
            let key = key.clone();
            async move {
                let mut req = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .body(ByteStream::from_static(body.as_bytes()));
                if if_none {
                    req = req.if_none_match("*");
                }
                if let Some(etag) = if_match {
                    req = req.if_match(etag);
                }
                req.send().await.map_err(|e| Failure::from_sdk(&e))
            }
        };
        let result = async {
            self.request(Op::HeadPut, || put("first", true, None))
                .await
                .map_err(|a| a.into_error("PUT", &location))?;
            for (what, if_none, if_match) in [
                ("If-None-Match: * over an existing object", true, None),
                ("a stale If-Match", false, Some("\"0123456789abcdef\"")),
            ] {
                match self
                    .request(Op::HeadPut, || put("second", if_none, if_match))
                    .await
                {
                    Err(a) if a.failure.kind == Kind::Precondition => {}
                    Err(a) => return Err(a.into_error("PUT", &location)),
                    Ok(_) => {
                        return Ok(Err(format!(
                            "S3 PUT {location}: the server accepted a write with {what}; it \
                             does not enforce conditional writes, so heads would not be safe"
                        )))
                    }
                }
            }
            Ok(Ok(()))
        }
        .await;
        let cleanup = self
            .request(Op::Delete, || async {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| Failure::from_sdk(&e))
            })
            .await
            .map_err(|a| a.into_error("DELETE", &location));
        let verdict = result?;
        cleanup?;
        tracing::info!(location = %self.options.location(), enforced = verdict.is_ok(), "probed conditional writes");
        Ok(verdict)
    }

    fn node_key(&self, address: &Address) -> String {
        format!("{}nodes/{}", self.base, address.to_hex())
    }

    fn head_key(&self, name: &str) -> String {
        format!("{}heads/{}", self.base, encode_head_name(name))
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn count(&self, op: Op) {
        let c = &self.shared.counters;
        let x = match op {
            Op::NodeGet => &c.node_gets,
            Op::NodePut => &c.node_puts,
            Op::HeadGet => &c.head_gets,
            Op::HeadPut => &c.head_puts,
            Op::List => &c.lists,
            Op::Delete => &c.deletes,
        };
        x.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this process wrote (or refreshed) the blob at `address` less than
    /// [`KNOWN_FOR`] ago.
    fn knows(&self, address: &Address) -> bool {
        self.shared
            .known
            .lock()
            .map(|k| k.get(address).is_some_and(|at| at.elapsed() < KNOWN_FOR))
            .unwrap_or(false)
    }

    fn remember(&self, address: Address) {
        let cap = self.options.known_capacity;
        if cap == 0 {
            return;
        }
        if let Ok(mut known) = self.shared.known.lock() {
            // A bounded memory, not an LRU: when full, start over. Forgetting only costs
            // a conditional put that the server answers "already there".
            if known.len() >= cap {
                known.clear();
            }
            known.insert(address, Instant::now());
        }
    }

    /// Sends one request by `send`, holding a permit of the concurrency limit during
    /// each attempt (not during backoff), retrying transient failures per the policy.
    async fn request<T, F, Fut>(&self, op: Op, mut send: F) -> Result<T, Attempted>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let policy: RetryPolicy = self.options.retry;
        let mut attempts = 0;
        let mut ambiguous = false;
        loop {
            attempts += 1;
            let result = match self.shared.permits.acquire().await {
                Ok(_permit) => {
                    self.count(op);
                    send().await
                }
                Err(_) => Err(Failure::permanent("the request limiter was closed")),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(failure)
                    if failure.kind == Kind::Transient && attempts < policy.max_attempts =>
                {
                    ambiguous = true;
                    self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(jitter(policy.backoff_ceiling(attempts))).await;
                }
                Err(failure) => {
                    return Err(Attempted {
                        failure,
                        attempts,
                        ambiguous,
                    })
                }
            }
        }
    }

    async fn get_blob(&self, address: Address) -> Result<Option<Bytes>, StorageError> {
        let key = self.node_key(&address);
        let got = self
            .request(Op::NodeGet, || async {
                let out = self
                    .client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| Failure::from_sdk(&e))?;
                read_body(out.body).await
            })
            .await;
        match got {
            // Not remembered: a blob read may be old and about to be collected, and
            // only a put refreshes its write time (see `KNOWN_FOR`).
            Ok(bytes) => Ok(Some(bytes)),
            Err(a) if a.failure.kind == Kind::NotFound => Ok(None),
            Err(a) => Err(a.into_error("GET", &self.location(&key))),
        }
    }

    async fn put_blob(&self, address: Address, bytes: Bytes) -> Result<(), StorageError> {
        let key = self.node_key(&address);
        let put = self
            .request(Op::NodePut, || async {
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    // Content-addressed: an existing object already has these bytes, so
                    // the server refuses (412) instead of rewriting it.
                    .if_none_match("*")
                    .body(ByteStream::from(bytes.clone()))
                    .send()
                    .await
                    .map_err(|e| Failure::from_sdk(&e))
            })
            .await;
        match put {
            Ok(_) => {}
            // Already stored: refresh its write time (see `refresh`).
            Err(a) if a.failure.kind == Kind::Precondition => self.refresh(&key).await?,
            Err(a) => return Err(a.into_error("PUT", &self.location(&key))),
        }
        self.remember(address);
        Ok(())
    }

    /// Refreshes the `LastModified` of the stored blob at `key` by copying it onto
    /// itself (the bytes stay; S3 allows a copy in place when it replaces the metadata),
    /// so that garbage collection sees it as just written: a store reusing a blob GC was
    /// about to delete keeps it. Gone meanwhile (collected): written again by the caller's
    /// retry, as the error is transient.
    async fn refresh(&self, key: &str) -> Result<(), StorageError> {
        let source = format!("{}/{key}", self.bucket);
        let copied = self
            .request(Op::NodePut, || async {
                self.client
                    .copy_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .copy_source(&source)
                    .metadata_directive(MetadataDirective::Replace)
                    .send()
                    .await
                    .map_err(|e| Failure::from_sdk(&e))
            })
            .await;
        match copied {
            Ok(_) => Ok(()),
            Err(a) if a.failure.kind == Kind::NotFound => Err(StorageError::Transient {
                reason: format!(
                    "S3 COPY {}: deleted between the put and its refresh",
                    self.location(key)
                ),
            }),
            Err(a) => Err(a.into_error("COPY", &self.location(key))),
        }
    }

    /// When the blob at `address` was last written (see [`last_written`]), `None` if it
    /// is not stored.
    async fn written(&self, address: Address) -> Result<Option<SystemTime>, StorageError> {
        let key = self.node_key(&address);
        let head = self
            .request(Op::NodeGet, || async {
                self.client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| Failure::from_sdk(&e))
            })
            .await;
        match head {
            Ok(out) => Ok(Some(last_written(out.last_modified()))),
            Err(a) if a.failure.kind == Kind::NotFound => Ok(None),
            Err(a) => Err(a.into_error("HEAD", &self.location(&key))),
        }
    }

    async fn delete_page(&self, addresses: &[Address]) -> Result<(), StorageError> {
        let keys: Vec<String> = addresses.iter().map(|a| self.node_key(a)).collect();
        let first = keys.first().cloned().unwrap_or_default();
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StorageError::backend(format!("S3 DELETE {first}: {e}")))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| StorageError::backend(format!("S3 DELETE {first}: {e}")))?;
        self.request(Op::Delete, || async {
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete.clone())
                .send()
                .await
                .map_err(|e| Failure::from_sdk(&e))?;
            // Quiet mode lists only the keys that failed. Deleting is idempotent, so a
            // transient per-key failure retries the whole page.
            match out.errors().first() {
                None => Ok(()),
                Some(e) => {
                    let code = e.code().map(str::to_owned);
                    let key = e.key().unwrap_or("?");
                    let detail = format!("{}: {}", self.location(key), e.message().unwrap_or(""));
                    let kind = match classify_status(500, code.as_deref()) {
                        Kind::Transient if code.is_some() => Kind::Transient,
                        _ => Kind::Permanent,
                    };
                    Err(Failure {
                        kind,
                        status: None,
                        code,
                        detail,
                    })
                }
            }
        })
        .await
        .map_err(|a| a.into_error("DELETE", &self.location(&first)))
    }
}

impl Attempted {
    fn into_error(self, verb: &str, location: &str) -> StorageError {
        self.failure
            .into_storage_error(verb, location, self.attempts)
    }
}

async fn read_body(body: ByteStream) -> Result<Bytes, Failure> {
    body.collect()
        .await
        .map(|b| b.into_bytes())
        .map_err(|e| Failure::transient(format!("reading the response body: {e}")))
}

/// A wait drawn uniformly from `[0, ceiling]`.
fn jitter(ceiling: Duration) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return ceiling;
    }
    Duration::from_nanos(random_u64() % (nanos + 1))
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // `RandomState` is seeded from the OS once per thread and stepped per instance;
    // mixing in a counter and the clock makes every call distinct.
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// 128 random bits in hex: makes every head write's bytes (and so its ETag) unique.
fn nonce() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

/// The bytes of a head object. The nonce makes each write distinct, so that a head moved
/// away and back again has a new ETag, and a writer holding the old one fails its CAS
/// (no ABA).
fn head_body(commit: Address) -> Bytes {
    Bytes::from(format!(
        "{HEAD_MAGIC}\ncommit {}\nwrite {}\n",
        commit.to_hex(),
        nonce()
    ))
}

/// A head name as a key segment: ASCII letters, digits, `.`, `_` and `-` as they are,
/// every other byte as `%XX`.
fn encode_head_name(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            key.push(char::from(b));
        } else {
            key.push_str(&format!("%{b:02X}"));
        }
    }
    key
}

/// A head name from its key segment (the inverse of [`encode_head_name`]).
fn decode_head_name(encoded: &str) -> Result<String, String> {
    crate::options::percent_decode(encoded).map_err(|why| format!("head key: {why}"))
}

/// The body of a deleted head: a tombstone that keeps the key, so that creating the
/// head again is a conditional write on it (its nonce gives it a new ETag).
fn tombstone_body() -> Bytes {
    Bytes::from(format!("{HEAD_MAGIC}\n{DELETED_LINE}\nwrite {}\n", nonce()))
}

/// The line of a tombstone.
const DELETED_LINE: &str = "deleted";

/// The commit a head object names; `None` for a tombstone.
fn parse_head(bytes: &[u8]) -> Result<Option<Address>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let mut lines = text.lines();
    if lines.next() != Some(HEAD_MAGIC) {
        return Err(format!("does not start with {HEAD_MAGIC:?}"));
    }
    if text.lines().any(|l| l == DELETED_LINE) {
        return Ok(None);
    }
    let hex = lines
        .find_map(|l| l.strip_prefix("commit "))
        .ok_or_else(|| "no commit line".to_owned())?;
    hex.trim()
        .parse()
        .map(Some)
        .map_err(|e: datoms_core::Error| e.to_string())
}

/// A put skips a blob this process wrote (or refreshed) less than this long ago. Only
/// puts count, never reads: a blob read may be old and unreachable, and a store that
/// reuses it must refresh its write time or GC may delete it. Garbage collection's grace
/// period must exceed this plus the longest store (see `docs/design.md`).
pub const KNOWN_FOR: Duration = Duration::from_secs(300);

/// The write time GC sees for an object last modified at `modified`: S3 keeps
/// `LastModified` to the second, so the end of that second (never earlier than the
/// write); the Unix epoch when the server gave none.
fn last_written(modified: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    modified.map_or(UNIX_EPOCH, |t| {
        let secs = u64::try_from(t.secs()).unwrap_or(0);
        UNIX_EPOCH + Duration::from_secs(secs + 1)
    })
}

/// The requests themselves, run on the storage's runtime.
impl Core {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        // Collected first: a lazy `map` over borrowed items trips the compiler's
        // higher-ranked lifetime check inside `async_trait`.
        let gets: Vec<_> = addresses.iter().map(|a| self.get_blob(*a)).collect();
        stream::iter(gets)
            .buffered(self.options.concurrency)
            .try_collect()
            .await
    }

    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        let mut seen = HashSet::with_capacity(blobs.len());
        let mut todo = Vec::with_capacity(blobs.len());
        for (a, b) in blobs {
            if !seen.insert(*a) {
                continue;
            }
            if self.knows(a) {
                self.shared
                    .counters
                    .puts_skipped
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            todo.push((*a, b.clone()));
        }
        stream::iter(todo.into_iter().map(|(a, b)| self.put_blob(a, b)))
            .buffer_unordered(self.options.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        Ok(match self.read_head_object(name).await? {
            Some((Some(commit), version)) => Some(Head { commit, version }),
            _ => None,
        })
    }

    /// The head object of `name`: `None` if absent; the commit it names (`None` for a
    /// tombstone) and its ETag.
    async fn read_head_object(
        &self,
        name: &str,
    ) -> Result<Option<(Option<Address>, Version)>, StorageError> {
        let key = self.head_key(name);
        let location = self.location(&key);
        let got = self
            .request(Op::HeadGet, || async {
                let out = self
                    .client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| Failure::from_sdk(&e))?;
                let etag = out.e_tag().map(str::to_owned);
                Ok((etag, read_body(out.body).await?))
            })
            .await;
        let (etag, bytes) = match got {
            Ok(got) => got,
            Err(a) if a.failure.kind == Kind::NotFound => return Ok(None),
            Err(a) => return Err(a.into_error("GET", &location)),
        };
        let commit = parse_head(&bytes).map_err(|why| {
            StorageError::backend(format!("S3 GET {location}: not a datoms head: {why}"))
        })?;
        let etag = etag.ok_or_else(|| {
            StorageError::backend(format!("S3 GET {location}: the server sent no ETag"))
        })?;
        Ok(Some((commit, Version(etag))))
    }

    /// One page of the keys under `prefix` (after `start_after`, at most `max_keys`,
    /// continuing from `token`).
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<String>,
        max_keys: i32,
        token: Option<String>,
    ) -> Result<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output, StorageError> {
        self.request(Op::List, || async {
            self.client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(max_keys)
                .set_start_after(start_after.clone())
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| Failure::from_sdk(&e))
        })
        .await
        .map_err(|a| a.into_error("LIST", &self.location(prefix)))
    }

    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        let prefix = format!("{}heads/", self.base);
        let location = self.location(&prefix);
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(&prefix, None, 1000, token.clone()).await?;
            for object in page.contents() {
                if let Some(encoded) = object.key().and_then(|k| k.strip_prefix(&prefix)) {
                    names.push(decode_head_name(encoded).map_err(|why| {
                        StorageError::backend(format!("S3 LIST {location}: {why}"))
                    })?);
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        names.sort();
        let mut heads = Vec::with_capacity(names.len());
        for name in names {
            if let Some(head) = self.get_head(&name).await? {
                heads.push((name, head));
            }
        }
        Ok(heads)
    }

    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        self.ensure_conditional_writes().await?;
        match self
            .put_head_object(name, tombstone_body(), Some(expected))
            .await?
        {
            Ok(_) => Ok(()),
            Err(ambiguous) => {
                let current = self.get_head(name).await?;
                match current {
                    // An earlier attempt applied it: the head is gone.
                    None if ambiguous => Ok(()),
                    current => Err(StorageError::HeadConflict {
                        name: name.to_owned(),
                        current,
                    }),
                }
            }
        }
    }

    /// A conditional write of head object `name`: `If-Match: expected`, or
    /// `If-None-Match: *` when `None`. `Ok(Err(ambiguous))` when the condition failed
    /// (412, or 404 for `If-Match` on no object); `ambiguous` if an earlier attempt may
    /// have been applied.
    async fn put_head_object(
        &self,
        name: &str,
        body: Bytes,
        expected: Option<&Version>,
    ) -> Result<Result<Version, bool>, StorageError> {
        let key = self.head_key(name);
        let location = self.location(&key);
        let put = self
            .request(Op::HeadPut, || async {
                let req = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .body(ByteStream::from(body.clone()));
                let req = match expected {
                    None => req.if_none_match("*"),
                    Some(v) => req.if_match(v.0.clone()),
                };
                req.send().await.map_err(|e| Failure::from_sdk(&e))
            })
            .await;
        match put {
            Ok(out) => out
                .e_tag()
                .map(|e| Ok(Version(e.to_owned())))
                .ok_or_else(|| {
                    StorageError::backend(format!(
                        "S3 PUT {location}: the server sent no ETag; the head may have moved"
                    ))
                }),
            Err(a) if matches!(a.failure.kind, Kind::Precondition | Kind::NotFound) => {
                Ok(Err(a.ambiguous))
            }
            Err(a) => Err(a.into_error("PUT", &location)),
        }
    }

    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        self.ensure_conditional_writes().await?;
        let body = head_body(new);
        let mut condition = expected.cloned();
        // At most twice: a create that finds a tombstone goes again on the tombstone.
        for _ in 0..2 {
            let ambiguous = match self
                .put_head_object(name, body.clone(), condition.as_ref())
                .await?
            {
                Ok(version) => return Ok(version),
                Err(ambiguous) => ambiguous,
            };
            match self.read_head_object(name).await? {
                // An earlier attempt timed out or failed with a 5xx after the server
                // applied it, and this retry then found our own write.
                Some((Some(commit), version)) if ambiguous && commit == new => return Ok(version),
                // No head, but the tombstone of a deleted one: a create is a write on it.
                Some((None, tombstone)) if expected.is_none() && condition.is_none() => {
                    condition = Some(tombstone);
                }
                Some((Some(commit), version)) => {
                    return Err(StorageError::HeadConflict {
                        name: name.to_owned(),
                        current: Some(Head { commit, version }),
                    })
                }
                _ => {
                    return Err(StorageError::HeadConflict {
                        name: name.to_owned(),
                        current: None,
                    })
                }
            }
        }
        Err(StorageError::HeadConflict {
            name: name.to_owned(),
            current: self.get_head(name).await?,
        })
    }

    /// A page of blob addresses: the stamp listing (the same LIST requests) without the
    /// stamps.
    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        Ok(self
            .list_blob_stamps(after, limit)
            .await?
            .into_iter()
            .map(|s| s.address)
            .collect())
    }

    /// Drops `addresses` from the "known stored" set.
    fn forget(&self, addresses: &[Address]) {
        if let Ok(mut known) = self.shared.known.lock() {
            for a in addresses {
                known.remove(a);
            }
        }
    }

    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError> {
        let prefix = format!("{}nodes/", self.base);
        let location = self.location(&prefix);
        let start_after = after.map(|a| self.node_key(&a));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        while out.len() < limit {
            let want = i32::try_from((limit - out.len()).min(S3_PAGE)).unwrap_or(1000);
            let page = self
                .list_page(&prefix, start_after.clone(), want, token.clone())
                .await?;
            for object in page.contents() {
                let key = object.key().unwrap_or_default();
                let address = key
                    .strip_prefix(&prefix)
                    .and_then(|hex| hex.parse::<Address>().ok())
                    .ok_or_else(|| {
                        StorageError::backend(format!(
                            "S3 LIST {location}: {} is not a blob key",
                            self.location(key)
                        ))
                    })?;
                if out.len() < limit {
                    out.push(BlobStamp {
                        address,
                        written: last_written(object.last_modified()),
                        len: object
                            .size()
                            .and_then(|n| u64::try_from(n).ok())
                            .unwrap_or(0),
                    });
                }
            }
            match (page.is_truncated(), page.next_continuation_token()) {
                (Some(true), Some(next)) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Checks each blob's `LastModified` (a `HeadObject`), then deletes the stale ones in
    /// pages. Not atomic: a put landing between the check and the delete of its blob is
    /// undone (S3 has no delete conditional on a time). The window is one request long;
    /// the grace period covers it for any store that started before the check.
    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        let mut unique: Vec<Address> = addresses.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let checks: Vec<_> = unique.iter().map(|a| self.written(*a)).collect();
        let written: Vec<Option<SystemTime>> = stream::iter(checks)
            .buffered(self.options.concurrency)
            .try_collect()
            .await?;
        let stale: Vec<Address> = unique
            .iter()
            .zip(written)
            .filter(|(_, w)| w.is_some_and(|w| w < written_before))
            .map(|(a, _)| *a)
            .collect();
        self.delete_many(&stale).await?;
        Ok(stale)
    }

    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        let mut unique: Vec<Address> = addresses.to_vec();
        unique.sort_unstable();
        unique.dedup();
        // Forget first: a put racing this delete must not be skipped on stale knowledge.
        self.forget(&unique);
        let pages: Vec<_> = unique
            .chunks(S3_PAGE)
            .map(|page| self.delete_page(page))
            .collect();
        stream::iter(pages)
            .buffer_unordered(self.options.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Storage for S3Storage {
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
        written_before: SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        let (core, addresses) = (self.core.clone(), addresses.to_vec());
        self.io
            .spawn(async move { core.delete_stale(&addresses, written_before).await })
            .await?
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_batch: S3_PAGE,
            concurrency: self.core.options.concurrency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_bodies_round_trip_and_differ_per_write() {
        let a = Address::of(b"commit");
        let (x, y) = (head_body(a), head_body(a));
        assert_ne!(x, y);
        assert_eq!(parse_head(&x).unwrap(), Some(a));
        assert_eq!(parse_head(&y).unwrap(), Some(a));
        // A tombstone names no commit, and each has its own bytes (its own ETag).
        let (t, u) = (tombstone_body(), tombstone_body());
        assert_ne!(t, u);
        assert_eq!(parse_head(&t).unwrap(), None);
    }

    #[test]
    fn head_names_decode_from_their_keys() {
        for name in ["main", "feature/x y", "ünï", "a%b"] {
            assert_eq!(decode_head_name(&encode_head_name(name)).unwrap(), name);
        }
        assert!(decode_head_name("bad%2").is_err());
        assert!(decode_head_name("bad%zz").is_err());
    }

    #[test]
    fn malformed_heads_are_refused() {
        assert!(parse_head(b"\xff\xfe").is_err());
        assert!(parse_head(b"hello\ncommit 00\n").is_err());
        assert!(parse_head(format!("{HEAD_MAGIC}\n").as_bytes()).is_err());
        assert!(parse_head(format!("{HEAD_MAGIC}\ncommit xyz\n").as_bytes()).is_err());
    }

    #[test]
    fn jitter_stays_under_its_ceiling() {
        let ceiling = Duration::from_millis(7);
        for _ in 0..1000 {
            assert!(jitter(ceiling) <= ceiling);
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
