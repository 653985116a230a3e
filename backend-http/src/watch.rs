//! The listener of the server's `GET /watch` stream, which wakes the storage's
//! [`HeadSignal`] on each move.

use std::sync::Arc;
use std::time::Duration;

use datoms_storage::HeadSignal;
use futures::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION};

use crate::client::Core;

/// The wait before connecting again after the stream dropped.
const RECONNECT: Duration = Duration::from_secs(1);

/// A stream is open for this long at most, then opened again (the request timeout of
/// the client would cut it sooner).
const STREAM_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Listens until the storage's runtime stops. Each event, and each reconnection (moves
/// may have been missed meanwhile), wakes the signal.
pub(crate) async fn listen(core: Arc<Core>, signal: HeadSignal) {
    loop {
        let mut request = core
            .http
            .get(core.url(http_wire::WATCH))
            .header(ACCEPT, "text/event-stream")
            .timeout(STREAM_LIFETIME);
        if let Some(token) = &core.options.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                signal.moved();
                let mut stream = response.bytes_stream();
                let mut line = Vec::new();
                while let Some(Ok(chunk)) = stream.next().await {
                    for b in chunk {
                        if b == b'\n' {
                            if line.starts_with(b"data:") {
                                signal.moved();
                            }
                            line.clear();
                        } else {
                            line.push(b);
                        }
                    }
                }
                tracing::debug!(base = %core.options.base, "watch stream ended; connecting again");
            }
            Ok(response) => {
                tracing::warn!(status = %response.status(), "the server refused the watch stream");
            }
            Err(e) => tracing::debug!(error = %e, "cannot open the watch stream"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
