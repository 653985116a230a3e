//! The JavaScript API (wasm-bindgen): `Replica`, fetching with the runtime's `fetch`
//! (browsers, node 18+, deno, workers).
//!
//! Results are JavaScript values decoded from the JSON scheme of
//! [`datoms_core::QueryValue::to_json`] (`q`, `pull`, `datoms`), or EDN text exactly as
//! the `datoms` command line and Datascript print it (`qEdn`, `pullEdn`, `datomsEdn`):
//! JSON for applications, EDN where keywords, sets and tagged values must survive.
//! Errors are thrown as `Error`s whose message names the cause.

use std::cell::Cell;
use std::rc::Rc;

use datoms_core::Address;
use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::error::ReplicaError;
use crate::fetcher::{
    blob_url, capabilities_url, head_url, offers_sync, parse_bundle, parse_head, sync_url, Fetcher,
    RemoteHead, Synced,
};
use crate::read::Format;
use crate::replica::{self, Moved};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (window, worker or node).
    #[wasm_bindgen(js_name = fetch, catch)]
    fn global_fetch(url: &str) -> Result<Promise, JsValue>;

    /// The global `fetch` with a `RequestInit` (method, headers, body).
    #[wasm_bindgen(js_name = fetch, catch)]
    fn global_fetch_with(url: &str, init: &JsValue) -> Result<Promise, JsValue>;

    /// A `fetch` response: the little of it used here.
    pub(crate) type Response;

    #[wasm_bindgen(method, getter)]
    pub(crate) fn status(this: &Response) -> u16;

    #[wasm_bindgen(method, js_name = arrayBuffer, catch)]
    fn array_buffer(this: &Response) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn text(this: &Response) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, getter)]
    pub(crate) fn headers(this: &Response) -> Headers;

    /// A response's headers.
    pub(crate) type Headers;

    #[wasm_bindgen(method)]
    pub(crate) fn get(this: &Headers, name: &str) -> Option<String>;
}

/// Calls `fetch` (the one given, else the global one) as `fetch(url)`, or
/// `fetch(url, init)` when there is an `init`, and awaits the response (any status).
///
/// # Errors
/// The runtime's error (network down, CORS, a `fetch` that returns no Promise), as
/// text.
pub(crate) async fn send(
    fetch: Option<&Function>,
    url: &str,
    init: Option<&JsValue>,
) -> Result<Response, String> {
    let promise = match (fetch, init) {
        (Some(f), None) => f.call1(&JsValue::NULL, &JsValue::from_str(url)),
        (Some(f), Some(init)) => f.call2(&JsValue::NULL, &JsValue::from_str(url), init),
        (None, None) => global_fetch(url).map(JsValue::from),
        (None, Some(init)) => global_fetch_with(url, init).map(JsValue::from),
    }
    .map_err(|e| describe(&e))?
    .dyn_into::<Promise>()
    .map_err(|_| "the fetch function given did not return a Promise".to_owned())?;
    Ok(JsFuture::from(promise)
        .await
        .map_err(|e| describe(&e))?
        .unchecked_into())
}

/// Fetches blobs and heads over HTTP under a base URL, with the global `fetch` or one
/// given by the caller (for headers, credentials, a custom cache). It asks the server's
/// capabilities once, before the first sync, and uses `GET /sync/…` when offered.
pub struct HttpFetcher {
    base: String,
    fetch: Option<Function>,
    /// Whether the server offers one-round-trip sync; `None` until asked.
    sync_offered: Cell<Option<bool>>,
    /// Requests made.
    requests: Cell<u64>,
}

impl HttpFetcher {
    /// A fetcher under `base`, with `fetch` or the global one.
    fn new(base: &str, fetch: Option<Function>) -> HttpFetcher {
        HttpFetcher {
            base: base.trim_end_matches('/').to_owned(),
            fetch,
            sync_offered: Cell::new(None),
            requests: Cell::new(0),
        }
    }

    /// `GET url`: the response if 200, `None` if 404.
    async fn get(&self, url: &str) -> Result<Option<Response>, ReplicaError> {
        self.requests.set(self.requests.get() + 1);
        let response = send(self.fetch.as_ref(), url, None)
            .await
            .map_err(|reason| ReplicaError::Fetch {
                url: url.to_owned(),
                reason,
            })?;
        match response.status() {
            200 => Ok(Some(response)),
            // A static host's missing file, or the sync of an absent head.
            404 => Ok(None),
            status => Err(ReplicaError::Status {
                url: url.to_owned(),
                status,
            }),
        }
    }
}

/// A response's body as bytes.
pub(crate) async fn bytes_of(url: &str, response: &Response) -> Result<Vec<u8>, ReplicaError> {
    let failed = |e: JsValue| ReplicaError::Fetch {
        url: url.to_owned(),
        reason: describe(&e),
    };
    let buffer = JsFuture::from(response.array_buffer().map_err(failed)?)
        .await
        .map_err(failed)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// A response's body as text.
pub(crate) async fn text_of(url: &str, response: &Response) -> Result<String, ReplicaError> {
    let failed = |e: JsValue| ReplicaError::Fetch {
        url: url.to_owned(),
        reason: describe(&e),
    };
    Ok(JsFuture::from(response.text().map_err(failed)?)
        .await
        .map_err(failed)?
        .as_string()
        .unwrap_or_default())
}

impl HttpFetcher {
    /// Whether the server offers one-round-trip sync: asked once (`GET /capabilities`).
    /// A failed probe, a 404 or an answer that is not the capabilities document means
    /// no (a static host), and the replica reads blobs.
    async fn offers_sync(&self) -> bool {
        if let Some(offered) = self.sync_offered.get() {
            return offered;
        }
        let url = capabilities_url(&self.base);
        let offered = match self.get(&url).await {
            Ok(Some(response)) => text_of(&url, &response)
                .await
                .is_ok_and(|text| offers_sync(&text)),
            _ => false,
        };
        self.sync_offered.set(Some(offered));
        offered
    }
}

impl Fetcher for HttpFetcher {
    fn location(&self) -> String {
        self.base.clone()
    }

    fn requests(&self) -> u64 {
        self.requests.get()
    }

    async fn sync(&self, name: &str, have: Option<Address>) -> Result<Synced, ReplicaError> {
        if !self.offers_sync().await {
            return Ok(Synced::NotOffered);
        }
        let url = sync_url(&self.base, name, have);
        let Some(response) = self.get(&url).await? else {
            return Ok(Synced::NoHead);
        };
        let headers = response.headers();
        let head_commit = headers.get(http_wire::HEAD_COMMIT_HEADER);
        let head_version = headers.get(http_wire::HEAD_VERSION_HEADER);
        let complete = headers.get(http_wire::SYNC_COMPLETE_HEADER);
        let body = bytes_of(&url, &response).await?;
        parse_bundle(&url, head_commit, head_version, complete, body).map(Synced::Bundle)
    }

    async fn blob(&self, address: Address) -> Result<Option<Vec<u8>>, ReplicaError> {
        let url = blob_url(&self.base, &address);
        let Some(response) = self.get(&url).await? else {
            return Ok(None);
        };
        bytes_of(&url, &response).await.map(Some)
    }

    async fn head(&self, name: &str) -> Result<Option<RemoteHead>, ReplicaError> {
        let url = head_url(&self.base, name);
        let Some(response) = self.get(&url).await? else {
            return Ok(None);
        };
        parse_head(&url, &text_of(&url, &response).await?).map(Some)
    }
}

/// A JavaScript exception's message.
pub(crate) fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// A Rust error as a thrown JavaScript `Error`.
fn thrown(e: ReplicaError) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

/// JSON text as a JavaScript value.
fn from_json(text: &str) -> Result<JsValue, JsValue> {
    js_sys::JSON::parse(text)
}

/// A read-only replica of one head of a datoms database served over HTTP (by
/// `datoms serve`, or any static host of an exported directory). It restores the head's
/// commit in wasm, verifying every blob against its address, and follows the head
/// incrementally: a new commit costs only the nodes that changed.
#[wasm_bindgen(js_name = Replica)]
pub struct JsReplica {
    inner: Rc<replica::Replica<HttpFetcher>>,
    listeners: Rc<std::cell::RefCell<Vec<(u32, Function)>>>,
    next_listener: u32,
}

#[wasm_bindgen(js_class = Replica)]
impl JsReplica {
    /// A replica of head `head` under `baseUrl` (`https://host/db`: blobs are
    /// `{baseUrl}/blobs/{address}`, heads `{baseUrl}/heads/{name}`). `fetch`, if given, is
    /// called as `fetch(url)` instead of the global one. Nothing is fetched yet.
    #[wasm_bindgen(constructor)]
    pub fn new(base_url: &str, head: &str, fetch: Option<Function>) -> JsReplica {
        let fetcher = HttpFetcher::new(base_url, fetch);
        JsReplica {
            inner: Rc::new(replica::Replica::new(fetcher, head)),
            listeners: Rc::default(),
            next_listener: 0,
        }
    }

    /// The base URL.
    #[wasm_bindgen(getter, js_name = baseUrl)]
    pub fn base_url(&self) -> String {
        self.inner.fetcher().base.clone()
    }

    /// The head followed.
    #[wasm_bindgen(getter)]
    pub fn head(&self) -> String {
        self.inner.head().to_owned()
    }

    /// The commit held (hex address), `undefined` before the first restore.
    #[wasm_bindgen(getter)]
    pub fn commit(&self) -> Option<String> {
        self.inner.commit().map(|a| a.to_string())
    }

    /// Restores the head's commit (a full restore the first time, incremental after).
    /// Resolves to the restore's stats (see `lastStats`), or `null` if the head had not
    /// moved.
    pub fn restore(&self) -> Promise {
        self.refresh()
    }

    /// Reads the head and, if it moved, restores its commit from the db held, fetching
    /// only the nodes that changed, then calls every `onCommit` listener. Against
    /// `datoms serve` (its capabilities offer `sync`) the head and the changed nodes come
    /// in one request, `GET /sync/{head}?have={commit}`; from a static host the head is
    /// read and the nodes fetched. Resolves to the
    /// restore's stats, or `null` if the head had not moved. Rejects while another
    /// restore of this replica runs.
    pub fn refresh(&self) -> Promise {
        let inner = self.inner.clone();
        let listeners = self.listeners.clone();
        future_to_promise(async move {
            match inner.refresh().await.map_err(thrown)? {
                Moved::Unchanged => Ok(JsValue::NULL),
                Moved::To(commit, stats) => {
                    let stats = from_json(&stats.to_json())?;
                    notify(&listeners, &commit, &stats);
                    Ok(stats)
                }
            }
        })
    }

    /// Restores commit `address` (hex), not necessarily the head's, from the db held:
    /// Datascript's `restore(db1, storage)` at a given commit. Calls the `onCommit`
    /// listeners. Resolves to the restore's stats.
    #[wasm_bindgen(js_name = restoreCommit)]
    pub fn restore_commit(&self, address: &str) -> Promise {
        let inner = self.inner.clone();
        let listeners = self.listeners.clone();
        let address = address.parse::<Address>();
        future_to_promise(async move {
            let address = address.map_err(|e| thrown(e.into()))?;
            let stats = inner.restore_commit(address).await.map_err(thrown)?;
            let stats = from_json(&stats.to_json())?;
            notify(&listeners, &address, &stats);
            Ok(stats)
        })
    }

    /// Calls `listener(commit, stats)` after every restore that changes the commit held.
    /// Returns an id for `offCommit`.
    #[wasm_bindgen(js_name = onCommit)]
    pub fn on_commit(&mut self, listener: Function) -> u32 {
        self.next_listener += 1;
        self.listeners
            .borrow_mut()
            .push((self.next_listener, listener));
        self.next_listener
    }

    /// Removes a listener; true if it was registered.
    #[wasm_bindgen(js_name = offCommit)]
    pub fn off_commit(&self, id: u32) -> bool {
        let mut listeners = self.listeners.borrow_mut();
        let before = listeners.len();
        listeners.retain(|(i, _)| *i != id);
        listeners.len() != before
    }

    /// The I/O of the last restore: `{restores, headReads, requests, roundTrips, blobsFetched,
    /// nodesFetched, commitsFetched, largeValuesFetched, bytesFetched, nodesReused,
    /// nodesUnused}`.
    #[wasm_bindgen(js_name = lastStats)]
    pub fn last_stats(&self) -> Result<JsValue, JsValue> {
        from_json(&self.inner.last_stats().to_json())
    }

    /// The I/O of every restore and head read of this replica, summed.
    #[wasm_bindgen(js_name = totalStats)]
    pub fn total_stats(&self) -> Result<JsValue, JsValue> {
        from_json(&self.inner.total_stats().to_json())
    }

    /// Number of datoms in the db held.
    #[wasm_bindgen(js_name = datomCount)]
    pub fn datom_count(&self) -> Result<f64, JsValue> {
        Ok(self.inner.db().map_err(thrown)?.len() as f64)
    }

    /// A Datalog query (EDN text) over the db held; `inputs` are EDN texts for the
    /// `:in` elements other than sources, in order. Returns JavaScript values.
    pub fn q(&self, query: &str, inputs: Option<Vec<String>>) -> Result<JsValue, JsValue> {
        let text = self
            .inner
            .query(query, &inputs.unwrap_or_default(), Format::Json)
            .map_err(thrown)?;
        from_json(&text)
    }

    /// As `q`, returning EDN text (as Datascript prints it).
    #[wasm_bindgen(js_name = qEdn)]
    pub fn q_edn(&self, query: &str, inputs: Option<Vec<String>>) -> Result<String, JsValue> {
        self.inner
            .query(query, &inputs.unwrap_or_default(), Format::Edn)
            .map_err(thrown)
    }

    /// Pulls `pattern` (EDN) for `entity` (EDN: an id, a lookup ref `[:attr value]` or
    /// an ident). Returns JavaScript values; `null` if the entity is not found.
    pub fn pull(&self, pattern: &str, entity: &str) -> Result<JsValue, JsValue> {
        from_json(
            &self
                .inner
                .pull(pattern, entity, Format::Json)
                .map_err(thrown)?,
        )
    }

    /// As `pull`, returning EDN text.
    #[wasm_bindgen(js_name = pullEdn)]
    pub fn pull_edn(&self, pattern: &str, entity: &str) -> Result<String, JsValue> {
        self.inner
            .pull(pattern, entity, Format::Edn)
            .map_err(thrown)
    }

    /// The datoms of `index` (`"eavt"`, `"aevt"`, `"avet"`) matching leading
    /// `components` (an EDN vector in index order, e.g. `[1 :person/name]`), at most
    /// `limit`: objects `{e, a, v, type, tx}`.
    pub fn datoms(
        &self,
        index: &str,
        components: Option<String>,
        limit: Option<u32>,
    ) -> Result<JsValue, JsValue> {
        let text = self
            .inner
            .datoms(
                index,
                components.as_deref().unwrap_or("[]"),
                limit.map(|l| l as usize),
                Format::Json,
            )
            .map_err(thrown)?;
        from_json(&text)
    }

    /// As `datoms`, returning EDN text (`[#datom [e a v tx true] …]`).
    #[wasm_bindgen(js_name = datomsEdn)]
    pub fn datoms_edn(
        &self,
        index: &str,
        components: Option<String>,
        limit: Option<u32>,
    ) -> Result<String, JsValue> {
        self.inner
            .datoms(
                index,
                components.as_deref().unwrap_or("[]"),
                limit.map(|l| l as usize),
                Format::Edn,
            )
            .map_err(thrown)
    }
}

/// Calls every listener with `(commit, stats)`; a listener that throws does not stop
/// the others (its exception is reported on the console by the runtime's
/// `reportError` where there is one, and otherwise dropped).
fn notify(listeners: &std::cell::RefCell<Vec<(u32, Function)>>, commit: &Address, stats: &JsValue) {
    let listeners: Vec<Function> = listeners.borrow().iter().map(|(_, f)| f.clone()).collect();
    let commit = JsValue::from_str(&commit.to_string());
    for f in listeners {
        if let Err(e) = f.call2(&JsValue::NULL, &commit, stats) {
            report_error(&e);
        }
    }
}

#[wasm_bindgen]
extern "C" {
    /// The global `reportError` (browsers, node 18+... where absent, `catch` swallows).
    #[wasm_bindgen(js_name = reportError, catch)]
    fn global_report_error(e: &JsValue) -> Result<(), JsValue>;
}

fn report_error(e: &JsValue) {
    let _ = global_report_error(e);
}
