//! `datoms-server`: a datoms [`Storage`] served over HTTP, as `datoms serve` runs it.
//!
//! - blobs: `GET /blobs/{address}` (immutable, cached forever, `ETag` = the address,
//!   `304` on `If-None-Match`), `POST /blobs:get` (many in one request, framed),
//!   `POST /blobs` (write many, framed, each checked against its address),
//!   `PUT /blobs/{address}`, `GET /blobs?after=&limit=` (listing), `POST /blobs:delete`;
//! - heads: `GET /heads/{name}` (`ETag` = version), `PUT /heads/{name}` with `If-Match`
//!   or `If-None-Match: *` (the compare-and-swap; `412` with the current head);
//! - `GET /sync/{name}?have=COMMIT`: one-round-trip sync ([`datoms_storage::bundle`]);
//! - `GET /heads/{name}/watch` and `GET /watch`: server-sent events on head moves;
//! - `GET /capabilities`.
//!
//! Writes need the bearer token of [`Config::token`]; reads too unless
//! [`Config::public_reads`]. Every error is a typed JSON body ([`ApiError`]); every
//! request runs in a `tracing` span (`http` target `datoms_server`) that records its
//! status, latency, and the addresses and bytes it moved. The wire details are in
//! `http-wire` and the design record ("Serving over HTTP").

mod auth;
mod blobs;
mod error;
mod heads;
mod serve;
mod sync;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, Method};
use axum::routing::{get, post};
use axum::Router;
use datoms_storage::{BundleLimits, BundleMaker, Storage, StorageError};
use tokio::sync::broadcast;
use tower_http::cors::{Any, CorsLayer};

pub use error::ApiError;
pub use serve::{serve, Tls};

/// How a server behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The bearer token writes need (and reads, unless `public_reads`). `None`: the
    /// server takes no writes and every read is public.
    pub token: Option<String>,
    /// Reads need no token.
    pub public_reads: bool,
    /// The largest request body, in bytes (`body_too_large` past it).
    pub max_body_bytes: usize,
    /// The most addresses or blobs in one batched request (`batch_too_large`).
    pub max_batch: usize,
    /// How large a sync bundle grows before it is cut (the client fetches the rest).
    pub bundle: BundleLimits,
    /// How often a head watch reads the head when the storage has no change signal
    /// (moves through this server are pushed at once regardless).
    pub watch_poll: Duration,
    /// How many fully loaded replicas the server keeps to compute sync bundles against
    /// (see [`BundleMaker`]): the commits clients are most often at.
    pub sync_replicas: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            token: None,
            public_reads: false,
            max_body_bytes: 64 << 20,
            max_batch: 4096,
            bundle: BundleLimits::default(),
            watch_poll: Duration::from_secs(1),
            sync_replicas: 4,
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) bundles: Arc<BundleMaker>,
    pub(crate) config: Arc<Config>,
    /// Moves made through this server, by head name.
    pub(crate) moves: broadcast::Sender<String>,
}

/// The server's routes over `storage`, ready for [`serve`] (or any axum host).
///
/// # Errors
/// None today; kept fallible for servers that must prepare their storage.
pub fn router(storage: Arc<dyn Storage>, config: Config) -> Result<Router, StorageError> {
    let state = AppState {
        bundles: Arc::new(BundleMaker::new(
            storage.clone(),
            config.bundle,
            config.sync_replicas,
        )),
        storage,
        moves: broadcast::channel(1024).0,
        config: Arc::new(config.clone()),
    };
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
        ])
        .expose_headers([
            header::ETAG,
            HeaderName::from_static(http_wire::HEAD_COMMIT_HEADER),
            HeaderName::from_static(http_wire::HEAD_VERSION_HEADER),
            HeaderName::from_static(http_wire::SYNC_COMPLETE_HEADER),
        ]);
    Ok(Router::new()
        .route(http_wire::CAPABILITIES, get(capabilities))
        .route(http_wire::BLOB, get(blobs::get_one).put(blobs::put_one))
        .route(http_wire::BLOBS, get(blobs::list).post(blobs::put_many))
        .route(http_wire::BLOBS_GET, post(blobs::get_many))
        .route(http_wire::BLOBS_DELETE, post(blobs::delete_many))
        .route(http_wire::BLOB_STAMPS, get(blobs::list_stamps))
        .route(http_wire::BLOBS_DELETE_STALE, post(blobs::delete_stale))
        .route(http_wire::HEADS, get(heads::list))
        .route(
            http_wire::HEAD,
            get(heads::get).put(heads::put).delete(heads::delete),
        )
        .route(http_wire::HEAD_WATCH, get(watch::head))
        .route(http_wire::WATCH, get(watch::all))
        .route(http_wire::SYNC, get(sync::bundle))
        .fallback(no_route)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        // The handlers read bodies through `body::limited`, which answers a typed error;
        // axum's own default limit is replaced by that one.
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(cors)
        .layer(serve::trace_layer()))
}

async fn capabilities(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<axum::Json<http_wire::CapabilitiesJson>, ApiError> {
    auth::check(&state.config, &headers, auth::Access::Read)?;
    Ok(axum::Json(http_wire::CapabilitiesJson {
        sync: true,
        watch: true,
        writes: state.config.token.is_some(),
        public_reads: state.config.token.is_none() || state.config.public_reads,
        max_batch: state.config.max_batch,
        max_body_bytes: state.config.max_body_bytes,
    }))
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route {}", uri.path()))
}
