//! Head moves pushed as server-sent events.
//!
//! `GET /heads/{name}/watch` sends the head at once (event `head`, data
//! `{"commit", "version"}`, or event `none` with data `null` while it does not exist),
//! then again each time it moves. A move through this server is pushed at once; so is
//! one the storage signals ([`Storage::head_changes`](datoms_storage::Storage::head_changes));
//! any other (another process writing the same storage) is found by reading the head
//! every [`Config::watch_poll`](crate::Config::watch_poll). Consecutive moves may be
//! seen as one: a watcher learns where the head is, not every step (a follower reads
//! the commits in between itself).
//!
//! `GET /watch` sends event `moved` with data `{"name": "<head>"}` for each move
//! through this server, and `{"name": null}` when the storage signals a move of some
//! head. It does not poll.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use datoms_storage::{Head, HeadChanges};
use futures::Stream;
use http_wire::MovedJson;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use crate::auth::{check, Access};
use crate::error::{head_json, ApiError};
use crate::AppState;

/// Comment lines keep idle connections (and proxies) from timing out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What woke a watch.
enum Wake {
    /// A move of this head (or of some head) through this server or the storage.
    Moved(Option<String>),
    /// The poll timer.
    Timer,
    /// The server is going away.
    Closed,
}

/// Waits for a move or, with `poll`, the timer. A storage signal that ends is dropped
/// (the watch polls on).
async fn wake(
    moves: &mut Receiver<String>,
    signal: &mut Option<HeadChanges>,
    poll: Option<Duration>,
) -> Wake {
    let signalled = async {
        match signal {
            Some(s) => s.changed().await,
            None => futures::future::pending().await,
        }
    };
    let timer = async {
        match poll {
            Some(p) => tokio::time::sleep(p).await,
            None => futures::future::pending().await,
        }
    };
    tokio::select! {
        moved = moves.recv() => match moved {
            Ok(name) => Wake::Moved(Some(name)),
            Err(RecvError::Lagged(_)) => Wake::Moved(None),
            Err(RecvError::Closed) => Wake::Closed,
        },
        alive = signalled => {
            if alive { Wake::Moved(None) } else { *signal = None; Wake::Timer }
        }
        () = timer => Wake::Timer,
    }
}

/// The event for a head.
fn head_event(head: Option<&Head>) -> Event {
    match head {
        Some(h) => Event::default()
            .event("head")
            .json_data(head_json(h))
            .unwrap_or_else(|_| Event::default().event("head")),
        None => Event::default().event("none").data("null"),
    }
}

/// `GET /heads/{name}/watch`.
pub(crate) async fn head(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    check(&state.config, &headers, Access::Read)?;
    // Subscribed before the first read, so no move between them is lost.
    let moves = state.moves.subscribe();
    let signal = state.storage.head_changes();
    tracing::debug!(head = %name, signalled = signal.is_some(), "watch opened");
    let init = (state, name, moves, signal, None::<Option<Head>>, true);
    let stream = futures::stream::unfold(
        init,
        |(state, name, mut moves, mut signal, mut last, mut first)| async move {
            loop {
                if !first {
                    match wake(&mut moves, &mut signal, Some(state.config.watch_poll)).await {
                        Wake::Moved(Some(n)) if n != name => continue,
                        Wake::Closed => return None,
                        _ => {}
                    }
                }
                first = false;
                let current = match state.storage.get_head(&name).await {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!(head = %name, error = %e, "watch cannot read the head; trying again");
                        continue;
                    }
                };
                if last.as_ref() != Some(&current) {
                    let event = head_event(current.as_ref());
                    last = Some(current);
                    return Some((Ok(event), (state, name, moves, signal, last, first)));
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// `GET /watch`.
pub(crate) async fn all(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    check(&state.config, &headers, Access::Read)?;
    let moves = state.moves.subscribe();
    let signal = state.storage.head_changes();
    let stream = futures::stream::unfold((moves, signal), |(mut moves, mut signal)| async move {
        loop {
            let name = match wake(&mut moves, &mut signal, None).await {
                Wake::Moved(name) => name,
                Wake::Closed => return None,
                Wake::Timer => continue,
            };
            let event = Event::default()
                .event("moved")
                .json_data(MovedJson { name })
                .unwrap_or_else(|_| Event::default().event("moved"));
            return Some((Ok(event), (moves, signal)));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
