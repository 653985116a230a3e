//! The peer in JavaScript (wasm-bindgen): datoms-storage's [`Peer`] itself, compiled to
//! WebAssembly, writing to `datoms serve` through [`RemoteStorage`] (`fetch`).
//!
//! - `transact` runs the transaction on the local db at once and appends it, as written,
//!   to the peer's outbox; the returned Promise resolves once the caller's `save`
//!   callback has stored the outbox's bytes durably (IndexedDB in a browser, a file in
//!   node: the package's `index.js` provides both) — that is the acknowledgement, as the
//!   native peer's fsync is.
//! - `push` lands the pending transactions through the head compare-and-swap, rebasing
//!   on what other writers stored, each exactly once (the outbox's transaction ids are
//!   recorded in the commits; a reopened peer drops those already landed).
//! - The outbox's bytes are the native file format (`Outbox::memory`): a reloaded page
//!   hands them back to `Peer.open`, and nothing acknowledged is lost.
//!
//! The peer restores eagerly (a query cannot wait for a fetch), and its pushes are driven
//! by JavaScript (`push()`, or the package's `keepPushing`), not by a tokio task.

use std::rc::Rc;
use std::sync::Arc;

use datoms_core::restore::Mode;
use datoms_core::{Db, Schema};
use datoms_storage::peer::{MemoryOutbox, Outbox, Peer, PeerError, PeerOptions, PushReport};
use datoms_storage::{restore_commit, Storage, StorageError};
use js_sys::{Function, Promise, Uint8Array};
use serde_json::json;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::read::{self, Format};
use crate::remote::RemoteStorage;

/// A peer error as a thrown JavaScript `Error`.
fn thrown(e: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

/// JSON as a JavaScript value.
fn value(v: &serde_json::Value) -> Result<JsValue, JsValue> {
    js_sys::JSON::parse(&v.to_string())
}

/// A local-first writer of one head of a database served by `datoms serve` (see the
/// module docs): transactions apply locally at once, wait in a durable outbox, and land
/// exactly once through the head's compare-and-swap.
#[wasm_bindgen(js_name = Peer)]
pub struct JsPeer {
    peer: Rc<Peer>,
    outbox: MemoryOutbox,
    save: Option<Function>,
}

/// Calls `save(bytes)` with the outbox's bytes and waits for it.
async fn persist(outbox: &MemoryOutbox, save: Option<&Function>) -> Result<(), JsValue> {
    let Some(save) = save else {
        return Ok(());
    };
    let bytes = Uint8Array::from(&outbox.bytes()[..]);
    let answer = save.call1(&JsValue::NULL, &bytes)?;
    if let Ok(promise) = answer.dyn_into::<Promise>() {
        JsFuture::from(promise).await?;
    }
    Ok(())
}

fn push_json(r: &PushReport) -> serde_json::Value {
    json!({
        "landed": r.landed.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "rejected": r.rejected.iter().map(|x| json!({"id": x.id.to_string(), "message": x.message})).collect::<Vec<_>>(),
        "commits": r.commits.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "attempts": r.attempts,
        "rebases": r.rebases,
    })
}

#[wasm_bindgen(js_class = Peer)]
impl JsPeer {
    /// Opens a peer on head `head` of the `datoms serve` at `baseUrl`: restores the head
    /// (an empty db with `schema`, EDN, if it does not exist), takes the pending
    /// transactions of `outbox` (the bytes a previous peer's `save` stored; none: a new
    /// outbox), drops those that already landed and rebases the others on the head.
    /// `save(bytes)` (may return a Promise) is called with the outbox's bytes whenever
    /// they change, before `transact` and `push` resolve. `token` is the server's bearer
    /// token (writes need it); `fetch` replaces the global one.
    ///
    /// Resolves to the peer; rejects if the server cannot be reached (nothing is lost:
    /// open again later with the same bytes).
    pub fn open(
        base_url: String,
        head: String,
        token: Option<String>,
        outbox: Option<Uint8Array>,
        save: Option<Function>,
        fetch: Option<Function>,
        schema: Option<String>,
    ) -> Promise {
        future_to_promise(async move {
            let schema = match schema {
                Some(text) => datoms_core::edn::parse_schema(&text).map_err(thrown)?,
                None => Schema::new(),
            };
            let storage: Arc<dyn Storage> = Arc::new(RemoteStorage::new(&base_url, fetch, token));
            let shared = MemoryOutbox::new();
            if let Some(bytes) = outbox {
                shared.set_bytes(bytes.to_vec());
            }
            let opened = Outbox::memory(&shared).map_err(thrown)?;
            let base = match storage.get_head(&head).await.map_err(thrown)? {
                Some(h) => {
                    restore_commit(&*storage, h.commit, None, Mode::Eager)
                        .await
                        .map_err(thrown)?
                        .db
                }
                None => Db::new(schema.clone()),
            };
            let options = PeerOptions {
                schema,
                // A failed push comes back to JavaScript soon, which tries again later
                // (`keepPushing`); the outbox keeps everything meanwhile.
                max_attempts: 3,
                ..PeerOptions::default()
            };
            let peer = Peer::open_at(storage, &head, opened, base, options).map_err(thrown)?;
            // What landed since the outbox last looked is dropped, the rest rebased.
            peer.pull().await.map_err(thrown)?;
            persist(&shared, save.as_ref()).await?;
            Ok(JsPeer {
                peer: Rc::new(peer),
                outbox: shared,
                save,
            }
            .into())
        })
    }

    /// The head written.
    #[wasm_bindgen(getter)]
    pub fn head(&self) -> String {
        self.peer.head().to_owned()
    }

    /// The commit the local db stands on (hex), `undefined` for a head not created yet.
    #[wasm_bindgen(getter)]
    pub fn commit(&self) -> Option<String> {
        self.peer.base_db().base_commit().map(|a| a.to_string())
    }

    /// The ids of the pending transactions, oldest first.
    pub fn pending(&self) -> Vec<String> {
        self.peer
            .pending()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The outbox's bytes (what `save` receives).
    #[wasm_bindgen(js_name = outboxBytes)]
    pub fn outbox_bytes(&self) -> Uint8Array {
        Uint8Array::from(&self.outbox.bytes()[..])
    }

    /// Runs a transaction (EDN, as Datascript writes it) on the local db — visible to
    /// queries at once — and appends it to the outbox. Resolves to `{id, tempids,
    /// datoms}` once `save` has stored the outbox; rejects (nothing applied, nothing
    /// stored) if the transaction is invalid. If `save` fails the Promise rejects with
    /// its error, and the transaction stays applied and pending in memory: the next
    /// successful save (any later `transact`, `push` or `pull`) stores it.
    pub fn transact(&self, tx: String) -> Promise {
        let peer = self.peer.clone();
        let outbox = self.outbox.clone();
        let save = self.save.clone();
        future_to_promise(async move {
            let id = peer.next_id();
            let report = peer.transact_edn(&tx).map_err(thrown)?;
            persist(&outbox, save.as_ref()).await?;
            value(&json!({
                "id": id.to_string(),
                "tempids": report.tempids.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "datoms": report.tx_data.len(),
            }))
        })
    }

    /// Stores the pending transactions (several per commit), rebasing on the head when
    /// another writer moved it, and lands each exactly once. Resolves to `{landed,
    /// rejected, commits, attempts, rebases}`; rejects when the server cannot be reached
    /// (the transactions stay pending, and a later push lands them).
    pub fn push(&self) -> Promise {
        let peer = self.peer.clone();
        let outbox = self.outbox.clone();
        let save = self.save.clone();
        future_to_promise(async move {
            let pushed = peer.push().await;
            persist(&outbox, save.as_ref()).await?;
            match pushed {
                Ok(report) => value(&push_json(&report)),
                Err(e) => Err(thrown(unreachable_or(e))),
            }
        })
    }

    /// Brings in the head's new commits and rebases the pending transactions on them.
    /// Resolves to `{landed, rejected}` (pending transactions found already landed, and
    /// those that failed on the new db).
    pub fn pull(&self) -> Promise {
        let peer = self.peer.clone();
        let outbox = self.outbox.clone();
        let save = self.save.clone();
        future_to_promise(async move {
            let pulled = peer.pull().await;
            persist(&outbox, save.as_ref()).await?;
            let r = pulled.map_err(thrown)?;
            value(&json!({
                "landed": r.landed.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "rejected": r.rejected.iter().map(|x| json!({"id": x.id.to_string(), "message": x.message})).collect::<Vec<_>>(),
            }))
        })
    }

    /// A Datalog query over the local db (the head plus the pending transactions); as the
    /// replica's `q`.
    pub fn q(&self, query: &str, inputs: Option<Vec<String>>) -> Result<JsValue, JsValue> {
        let text = read::query(
            &self.peer.db(),
            query,
            &inputs.unwrap_or_default(),
            Format::Json,
        )
        .map_err(thrown)?;
        js_sys::JSON::parse(&text)
    }

    /// As `q`, returning EDN text.
    #[wasm_bindgen(js_name = qEdn)]
    pub fn q_edn(&self, query: &str, inputs: Option<Vec<String>>) -> Result<String, JsValue> {
        read::query(
            &self.peer.db(),
            query,
            &inputs.unwrap_or_default(),
            Format::Edn,
        )
        .map_err(thrown)
    }

    /// A pull over the local db; as the replica's `pull` (named apart from `pull`, the
    /// rebase on the head's new commits).
    #[wasm_bindgen(js_name = pullEntity)]
    pub fn pull_entity(&self, pattern: &str, entity: &str) -> Result<JsValue, JsValue> {
        let text = read::pull(&self.peer.db(), pattern, entity, Format::Json).map_err(thrown)?;
        js_sys::JSON::parse(&text)
    }
}

/// A push that failed because the server could not be reached says so plainly.
fn unreachable_or(e: PeerError) -> String {
    match &e {
        PeerError::NotLanded { last, .. } if matches!(**last, StorageError::Transient { .. }) => {
            format!("server unreachable, transactions kept in the outbox: {e}")
        }
        _ => e.to_string(),
    }
}
