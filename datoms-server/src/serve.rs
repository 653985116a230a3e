//! Running the router on a listener, over plain HTTP or TLS (rustls), with a span per
//! request and a graceful stop.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use axum::Router;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::field::Empty;
use tracing::Span;

/// How long requests in flight (watches included) may run on after the stop signal.
const GRACE: Duration = Duration::from_secs(3);

/// A certificate chain and its private key, PEM files.
#[derive(Clone, Debug)]
pub struct Tls {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// The span of each request: method, path, then status, latency, and what the handler
/// recorded (addresses, bytes).
#[allow(clippy::type_complexity)]
pub(crate) fn trace_layer() -> TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    impl Fn(&Request<axum::body::Body>) -> Span + Clone,
    tower_http::trace::DefaultOnRequest,
    impl Fn(&axum::http::Response<axum::body::Body>, Duration, &Span) + Clone,
> {
    TraceLayer::new_for_http()
        .make_span_with(|request: &Request<axum::body::Body>| {
            tracing::info_span!(
                "http",
                method = %request.method(),
                path = %request.uri().path(),
                status = Empty,
                latency_ms = Empty,
                addresses = Empty,
                bytes = Empty,
            )
        })
        .on_response(
            |response: &axum::http::Response<axum::body::Body>, latency: Duration, span: &Span| {
                span.record("status", response.status().as_u16());
                span.record("latency_ms", latency.as_secs_f64() * 1000.0);
                tracing::info!(parent: span, "served");
            },
        )
}

/// Serves `app` on `listener` until `stop` completes, then lets requests in flight end
/// for a moment (a watch never ends by itself, so the wait is bounded).
///
/// # Errors
/// The listener's or the TLS files' I/O errors.
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<Tls>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let stopped = Arc::new(tokio::sync::Notify::new());
    let notify = stopped.clone();
    tokio::spawn(async move {
        stop.await;
        notify.notify_waiters();
        notify.notify_one();
    });
    let deadline = {
        let stopped = stopped.clone();
        async move {
            stopped.notified().await;
            tokio::time::sleep(GRACE).await;
        }
    };
    match tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let signal = stopped.clone();
            let server = axum::serve(listener, app)
                .with_graceful_shutdown(async move { signal.notified().await });
            tokio::select! {
                r = server => r,
                () = deadline => Ok(()),
            }
        }
        Some(tls) => {
            // ring, the provider the rest of the workspace's rustls uses; installing it
            // twice (a second server in one process) is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config =
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key).await?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            let signal = stopped.clone();
            tokio::spawn(async move {
                signal.notified().await;
                stopper.graceful_shutdown(Some(GRACE));
            });
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
    }
}
