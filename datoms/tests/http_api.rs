//! The HTTP surface of `datoms serve`, against a real server process: cache headers and
//! `304`s, the head CAS and its `412` body, tokens, body and batch limits, hostile
//! requests (each a typed JSON error that leaves the state as it was), one-round-trip
//! sync fetching exactly what changed, and pushed head moves.

mod served;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use conformance::history::{self, Generator, Params};
use datoms::{
    restore_from, store, sync, Address, Db, Head, HttpStorage, Storage, StorageError, SyncPolicy,
    SyncRoute, Version,
};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use served::{Server, TOKEN};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A server over `mem:` with `extra` arguments, its directory, and a client with the token.
async fn start(
    extra: &[&str],
) -> Result<(Server, tempfile::TempDir, HttpStorage), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let server = Server::start("mem:", dir.path(), extra)?;
    let client = server.client().await?;
    Ok((server, dir, client))
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// The typed error of an answer: its status and `error` kind.
async fn error_of(
    response: reqwest::Response,
) -> Result<(StatusCode, String, Value), Box<dyn std::error::Error>> {
    let status = response.status();
    let body: Value = response.json().await?;
    let kind = body["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        body["message"].is_string(),
        "every error has a message: {body}"
    );
    Ok((status, kind, body))
}

/// Every blob address the storage lists.
async fn listing(storage: &HttpStorage) -> Result<BTreeSet<Address>, StorageError> {
    let mut all = BTreeSet::new();
    let mut after = None;
    loop {
        let page = storage.list_blobs(after, 1000).await?;
        let Some(last) = page.last() else {
            return Ok(all);
        };
        after = Some(*last);
        all.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_immutable_cached_and_answer_304() -> TestResult {
    let (server, _dir, client) = start(&[]).await?;
    let bytes = Bytes::from_static(b"a node's bytes");
    let a = Address::of(&bytes);
    client.put_many(&[(a, bytes.clone())]).await?;
    let url = format!("{}/blobs/{a}", server.url);
    let response = http()
        .get(&url)
        .header("authorization", bearer())
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = response.headers()["etag"].to_str()?.to_owned();
    assert_eq!(etag, format!("\"{a}\""));
    assert_eq!(response.bytes().await?, bytes);
    let cached = http()
        .get(&url)
        .header("authorization", bearer())
        .header("if-none-match", &etag)
        .send()
        .await?;
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(cached.headers()["etag"].to_str()?, etag);
    assert!(cached.bytes().await?.is_empty());

    let absent = Address::of(b"never stored");
    let r = http()
        .get(format!("{}/blobs/{absent}", server.url))
        .header("authorization", bearer())
        .send()
        .await?;
    let (status, kind, _) = error_of(r).await?;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    for bad in ["xyz", &a.to_hex().to_uppercase(), &format!("{a}00")] {
        let r = http()
            .get(format!("{}/blobs/{bad}", server.url))
            .header("authorization", bearer())
            .send()
            .await?;
        let (status, kind, _) = error_of(r).await?;
        assert_eq!(
            (status, kind.as_str()),
            (StatusCode::BAD_REQUEST, "bad_address"),
            "{bad}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_cas_answers_412_with_the_current_head_and_changes_nothing() -> TestResult {
    let (server, _dir, client) = start(&[]).await?;
    let (c1, c2) = (Address::of(b"c1"), Address::of(b"c2"));
    let url = format!("{}/heads/main", server.url);
    let put = |commit: Address| {
        http()
            .put(&url)
            .header("authorization", bearer())
            .json(&serde_json::json!({ "commit": commit.to_hex() }))
    };
    let created = put(c1).header("if-none-match", "*").send().await?;
    assert_eq!(created.status(), StatusCode::OK);
    let etag = created.headers()["etag"].to_str()?.to_owned();
    let head: Value = created.json().await?;
    assert_eq!(head["commit"], c1.to_hex());
    assert_eq!(
        etag,
        format!("\"{}\"", head["version"].as_str().unwrap_or_default())
    );

    // Creating again, a stale version, no precondition: refused, the head stays.
    let again = put(c2).header("if-none-match", "*").send().await?;
    let (status, kind, body) = error_of(again).await?;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::PRECONDITION_FAILED, "head_conflict")
    );
    assert_eq!(body["current"]["commit"], c1.to_hex());
    assert_eq!(body["current"]["version"], head["version"]);
    let stale = put(c2)
        .header("if-match", "\"no-such-version\"")
        .send()
        .await?;
    let (status, kind, body) = error_of(stale).await?;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::PRECONDITION_FAILED, "head_conflict")
    );
    assert_eq!(body["current"]["commit"], c1.to_hex());
    let bare = put(c2).send().await?;
    let (status, kind, _) = error_of(bare).await?;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::PRECONDITION_REQUIRED, "precondition_required")
    );
    // A CAS on a head that does not exist shows `current: null`.
    let missing = http()
        .put(format!("{}/heads/other", server.url))
        .header("authorization", bearer())
        .header("if-match", &etag)
        .json(&serde_json::json!({ "commit": c2.to_hex() }))
        .send()
        .await?;
    let (status, _, body) = error_of(missing).await?;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert!(
        body["current"].is_null() && body.get("current").is_some(),
        "{body}"
    );
    assert_eq!(client.get_head("main").await?.map(|h| h.commit), Some(c1));
    assert_eq!(client.get_head("other").await?, None);

    // The right version moves it; GET shows it with its version as ETag.
    let moved = put(c2).header("if-match", &etag).send().await?;
    assert_eq!(moved.status(), StatusCode::OK);
    let read = http()
        .get(&url)
        .header("authorization", bearer())
        .send()
        .await?;
    let new_etag = read.headers()["etag"].to_str()?.to_owned();
    let now: Value = read.json().await?;
    assert_eq!(now["commit"], c2.to_hex());
    assert_eq!(
        new_etag,
        format!("\"{}\"", now["version"].as_str().unwrap_or_default())
    );

    // Through the backend the conflict is the typed storage error.
    match client
        .cas_head("main", Some(&Version("stale".into())), c1)
        .await
    {
        Err(StorageError::HeadConflict {
            name,
            current: Some(Head { commit, .. }),
        }) => {
            assert_eq!((name.as_str(), commit), ("main", c2));
        }
        other => panic!("expected a HeadConflict, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_writes_and_reads() -> TestResult {
    let (server, _dir, client) = start(&[]).await?;
    let bytes = b"guarded".to_vec();
    let a = Address::of(&bytes);
    let body = http_wire::encode_frames([(a, Some(&bytes[..]))])?;
    for auth in [None, Some("Bearer wrong"), Some("Basic abc")] {
        let mut request = http()
            .post(format!("{}/blobs", server.url))
            .body(body.clone());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let (status, kind, _) = error_of(request.send().await?).await?;
        assert_eq!(
            (status, kind.as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{auth:?}"
        );
        let read = http().get(format!("{}/heads/main", server.url));
        let read = match auth {
            Some(auth) => read.header("authorization", auth),
            None => read,
        };
        let (status, _, _) = error_of(read.send().await?).await?;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "reads are not public here"
        );
    }
    assert!(
        listing(&client).await?.is_empty(),
        "a refused write stored something"
    );
    let accepted = http()
        .post(format!("{}/blobs", server.url))
        .header("authorization", bearer())
        .body(body)
        .send()
        .await?;
    assert_eq!(accepted.status(), StatusCode::NO_CONTENT);
    assert_eq!(listing(&client).await?, BTreeSet::from([a]));

    // With --public-reads, reads need no token and writes still do.
    let (public, _dir2, _) = start(&["--public-reads"]).await?;
    let read = http()
        .get(format!("{}/capabilities", public.url))
        .send()
        .await?;
    assert_eq!(read.status(), StatusCode::OK);
    let caps: Value = read.json().await?;
    assert_eq!(
        (caps["public_reads"].as_bool(), caps["writes"].as_bool()),
        (Some(true), Some(true))
    );
    let write = http()
        .put(format!("{}/heads/main", public.url))
        .header("if-none-match", "*")
        .json(&serde_json::json!({ "commit": a.to_hex() }))
        .send()
        .await?;
    assert_eq!(error_of(write).await?.1, "unauthorized");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_typed_errors_and_change_nothing() -> TestResult {
    let (server, _dir, client) = start(&["--max-body-bytes", "4096", "--max-batch", "8"]).await?;
    let kept = Bytes::from_static(b"kept");
    let k = Address::of(&kept);
    client.put_many(&[(k, kept.clone())]).await?;
    let before = listing(&client).await?;
    let post = |path: &str, body: Vec<u8>| {
        http()
            .post(format!("{}{path}", server.url))
            .header("authorization", bearer())
            .body(body)
    };
    let big = vec![7u8; 8192];
    let big_frame = http_wire::encode_frames([(Address::of(&big), Some(&big[..]))])?.to_vec();
    let wrong = b"not the bytes of this address".to_vec();
    let corrupt = http_wire::encode_frames([(k, Some(&wrong[..]))])?.to_vec();
    let mut truncated =
        http_wire::encode_frames([(Address::of(b"x"), Some(&b"xyz"[..]))])?.to_vec();
    truncated.pop();
    let nine: Vec<String> = (0..9u8).map(|i| Address::of(&[i]).to_hex()).collect();
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "body over the limit",
            "/blobs",
            big_frame,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "bytes that do not hash to their address",
            "/blobs",
            corrupt,
            StatusCode::BAD_REQUEST,
            "corrupt_blob",
        ),
        (
            "a frame cut short",
            "/blobs",
            truncated,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "malformed JSON",
            "/blobs:get",
            b"{\"addresses\": [".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "unknown JSON fields",
            "/blobs:get",
            br#"{"addresses": [], "x": 1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "a bad address in a batch",
            "/blobs:get",
            br#"{"addresses": ["zz"]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_address",
        ),
        (
            "a batch over the limit",
            "/blobs:get",
            serde_json::to_vec(&serde_json::json!({ "addresses": nine }))?,
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
        ),
        (
            "a delete batch over the limit",
            "/blobs:delete",
            serde_json::to_vec(&serde_json::json!({ "addresses": nine }))?,
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
        ),
        (
            "a delete of a bad address",
            "/blobs:delete",
            br#"{"addresses": ["zz", "#.to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (what, path, body, status, kind) in cases {
        let got = error_of(post(path, body).send().await?).await?;
        assert_eq!((got.0, got.1.as_str()), (status, kind), "{what}");
        assert_eq!(
            listing(&client).await?,
            before,
            "{what} changed the stored blobs"
        );
    }
    // A head PUT with a malformed body or commit leaves the head absent.
    for body in [
        &b"not json"[..],
        br#"{"commit": "abc"}"#,
        br#"{"commit": 1}"#,
    ] {
        let r = http()
            .put(format!("{}/heads/main", server.url))
            .header("authorization", bearer())
            .header("if-none-match", "*")
            .body(body.to_vec())
            .send()
            .await?;
        let (status, _, _) = error_of(r).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(client.get_head("main").await?, None);
    let r = http()
        .get(format!("{}/sync/main?have=nothex", server.url))
        .header("authorization", bearer())
        .send()
        .await?;
    assert_eq!(error_of(r).await?.1, "bad_address");
    let r = http()
        .get(format!("{}/no/such/route", server.url))
        .send()
        .await?;
    assert_eq!(error_of(r).await?.1, "no_route");
    // The backend cuts its writes to the advertised limits: many blobs still land.
    let blobs: Vec<(Address, Bytes)> = (0..50u32)
        .map(|i| {
            let b = Bytes::from(vec![i as u8; 500]);
            (Address::of(&b), b)
        })
        .collect();
    client.put_many(&blobs).await?;
    let got = client
        .get_many(&blobs.iter().map(|(a, _)| *a).collect::<Vec<_>>())
        .await?;
    assert!(got
        .iter()
        .zip(&blobs)
        .all(|(g, (_, b))| g.as_ref() == Some(b)));
    Ok(())
}

/// The backend with the one-round-trip capability hidden: the plain blob API, every
/// blob address it fetches recorded.
#[derive(Debug)]
struct Plain {
    inner: Arc<HttpStorage>,
    fetched: Mutex<Vec<Address>>,
}

#[async_trait]
impl Storage for Plain {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        self.fetched
            .lock()
            .map_err(|_| StorageError::backend("poisoned"))?
            .extend_from_slice(addresses);
        self.inner.get_many(addresses).await
    }
    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        self.inner.put_many(blobs).await
    }
    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        self.inner.get_head(name).await
    }
    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        self.inner.cas_head(name, expected, new).await
    }
    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        self.inner.list_heads().await
    }
    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        self.inner.delete_head(name, expected).await
    }
    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        self.inner.list_blobs(after, limit).await
    }
    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        self.inner.delete_many(addresses).await
    }
    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<datoms::storage::BlobStamp>, StorageError> {
        self.inner.list_blob_stamps(after, limit).await
    }
    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: std::time::SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        self.inner.delete_stale(addresses, written_before).await
    }
    fn capabilities(&self) -> datoms::Capabilities {
        self.inner.capabilities()
    }
}

impl Plain {
    fn take(&self) -> BTreeSet<Address> {
        self.fetched
            .lock()
            .map(|mut f| f.drain(..).collect())
            .unwrap_or_default()
    }
}

/// The addresses of a `GET /sync/main?have=` answer.
async fn bundle_addresses(
    server: &Server,
    have: Option<Address>,
) -> Result<BTreeSet<Address>, Box<dyn std::error::Error>> {
    let query = have.map_or(String::new(), |h| format!("?have={h}"));
    let r = http()
        .get(format!("{}/sync/main{query}", server.url))
        .header("authorization", bearer())
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[http_wire::SYNC_COMPLETE_HEADER], "true");
    let frames = http_wire::decode_frames(r.bytes().await?)?;
    Ok(frames.into_iter().map(|(a, _)| a).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_sync_fetches_exactly_what_changed_in_one_request() -> TestResult {
    let (server, _dir, client) = start(&[]).await?;
    let client = Arc::new(client);
    let plain = Plain {
        inner: client.clone(),
        fetched: Mutex::new(Vec::new()),
    };
    let mut generator = Generator::new(
        17,
        Params {
            initial_people: 300,
            ..Params::default()
        },
    );
    let mut primary = generator.initial_tx().apply(&history::empty_db())?;
    primary = store(&primary, &*client, "main").await?.db;
    let base_commit = primary.base_commit();

    // A new replica: one request, the whole head, as the plain walk fetches it.
    let before = client.requests_sent();
    let full = restore_from(&history::empty_db(), &*client, "main").await?;
    assert_eq!(
        client.requests_sent() - before,
        1,
        "a full restore over sync"
    );
    assert_eq!(full.stats.round_trips, 1);
    assert_eq!(full.db.root_addresses(), primary.root_addresses());
    let plain_full = restore_from(&history::empty_db(), &plain, "main").await?;
    assert!(
        plain_full.stats.round_trips > 2,
        "the plain walk takes a request per level"
    );
    assert_eq!(bundle_addresses(&server, None).await?, plain.take());

    // A few commits later, the replica gets exactly the nodes the plain restore
    // fetches (the commits and changed nodes), in one request.
    for _ in 0..3 {
        primary = generator.next_tx().apply(&primary)?;
        primary = store(&primary, &*client, "main").await?.db;
    }
    let replica = full.db;
    let before = client.requests_sent();
    let inc = restore_from(&replica, &*client, "main").await?;
    assert_eq!(
        client.requests_sent() - before,
        1,
        "an incremental restore over sync"
    );
    assert_eq!(inc.db.root_addresses(), primary.root_addresses());
    assert_eq!(inc.db.base_commit(), primary.base_commit());
    let plain_inc = restore_from(&replica, &plain, "main").await?;
    let plain_set = plain.take();
    assert_eq!(plain_inc.db.root_addresses(), primary.root_addresses());
    let bundle = bundle_addresses(&server, base_commit).await?;
    assert_eq!(
        bundle, plain_set,
        "the bundle holds what the plain restore fetched, no more"
    );
    assert!(bundle.len() < bundle_addresses(&server, None).await?.len());
    assert_eq!(inc.stats.nodes_fetched, plain_inc.stats.nodes_fetched);

    // sync: one request too, and none needed at the head.
    let before = client.requests_sent();
    let synced = sync(&replica, &*client, "main", SyncPolicy::Auto).await?;
    assert_eq!(
        (client.requests_sent() - before, synced.route),
        (1, SyncRoute::Tree)
    );
    assert_eq!(synced.db.root_addresses(), primary.root_addresses());
    let before = client.requests_sent();
    let same = sync(&synced.db, &*client, "main", SyncPolicy::Auto).await?;
    assert_eq!(
        (client.requests_sent() - before, same.route),
        (1, SyncRoute::Unchanged)
    );

    // A commit the server does not know: the full set, and the replica still lands.
    let stranger: Db = history::empty_db()
        .with_edn(r#"[{:person/name "someone else"}]"#)?
        .db_after;
    let elsewhere = store(&stranger, &datoms::MemoryStorage::new(), "main")
        .await?
        .db;
    let r = restore_from(&elsewhere, &*client, "main").await?;
    assert_eq!(r.db.root_addresses(), primary.root_addresses());
    assert_eq!(
        bundle_addresses(&server, elsewhere.base_commit()).await?,
        bundle_addresses(&server, None).await?
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_bundle_cut_at_its_limit_still_restores() -> TestResult {
    let (server, _dir, client) = start(&["--max-sync-bytes", "1"]).await?;
    let mut generator = Generator::new(
        5,
        Params {
            initial_people: 200,
            ..Params::default()
        },
    );
    let db = generator.initial_tx().apply(&history::empty_db())?;
    let stored = store(&db, &client, "main").await?;
    let r = http()
        .get(format!("{}/sync/main", server.url))
        .header("authorization", bearer())
        .send()
        .await?;
    assert_eq!(r.headers()[http_wire::SYNC_COMPLETE_HEADER], "false");
    let before = client.requests_sent();
    let restored = restore_from(&history::empty_db(), &client, "main").await?;
    assert_eq!(restored.db.root_addresses(), stored.db.root_addresses());
    assert!(
        client.requests_sent() - before > 1,
        "the rest came through the blob API"
    );
    Ok(())
}

/// The next server-sent event of `stream`: its name and data.
async fn next_event(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<Bytes>> + Unpin),
    buffer: &mut String,
) -> Result<(String, String), Box<dyn std::error::Error>> {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                event
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
            };
            if let (Some(name), Some(data)) = (field("event:"), field("data:")) {
                return Ok((name, data));
            }
            continue; // a keep-alive comment
        }
        let chunk = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await?
            .ok_or("the event stream ended")??;
        buffer.push_str(std::str::from_utf8(&chunk)?);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_push_head_moves() -> TestResult {
    let (server, _dir, client) = start(&[]).await?;
    let response = http()
        .get(format!("{}/heads/main/watch", server.url))
        .header("authorization", bearer())
        .send()
        .await?;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    assert_eq!(
        next_event(&mut stream, &mut buffer).await?,
        ("none".into(), "null".into())
    );
    let mut changes = client
        .head_changes()
        .ok_or("the backend offers head changes")?;
    let c1 = Address::of(b"c1");
    let v1 = client.cas_head("main", None, c1).await?;
    let (name, data) = next_event(&mut stream, &mut buffer).await?;
    let head: Value = serde_json::from_str(&data)?;
    assert_eq!(
        (
            name.as_str(),
            head["commit"].as_str(),
            head["version"].as_str()
        ),
        ("head", Some(&*c1.to_hex()), Some(&*v1.0))
    );
    // Another client's move wakes this client's signal.
    let other = server.client().await?;
    let c2 = Address::of(b"c2");
    other.cas_head("main", Some(&v1), c2).await?;
    let (_, data) = next_event(&mut stream, &mut buffer).await?;
    assert_eq!(serde_json::from_str::<Value>(&data)?["commit"], c2.to_hex());
    tokio::time::timeout(Duration::from_secs(20), async {
        // The first wake may be the one the connection itself gives.
        while changes.changed().await {
            if client
                .get_head("main")
                .await
                .ok()
                .flatten()
                .map(|h| h.commit)
                == Some(c2)
            {
                return;
            }
        }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_to_a_client_that_trusts_the_certificate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])?;
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem())?;
    std::fs::write(&key_file, cert.key_pair.serialize_pem())?;
    let args = [
        "--tls-cert",
        cert_file.to_str().ok_or("path")?,
        "--tls-key",
        key_file.to_str().ok_or("path")?,
    ];
    let server = Server::start("mem:", dir.path(), &args)?;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    // A client that does not trust the certificate cannot connect.
    let untrusted =
        HttpStorage::connect(datoms::HttpOptions::new(&server.url)?.with_token(TOKEN)).await;
    assert!(
        untrusted.is_err(),
        "a self-signed certificate must not be trusted by default"
    );
    let options = datoms::HttpOptions::new(&server.url)?
        .with_token(TOKEN)
        .with_root_certificate(cert.cert.pem());
    let client = HttpStorage::connect(options).await?;
    let db = history::empty_db()
        .with_edn(r#"[{:person/name "Ann"}]"#)?
        .db_after;
    let stored = store(&db, &client, "main").await?;
    let restored = restore_from(&history::empty_db(), &client, "main").await?;
    assert_eq!(restored.db.root_addresses(), stored.db.root_addresses());
    // Plain HTTP to the TLS port gets no answer.
    let plain = server.url.replace("https://", "http://");
    assert!(http()
        .get(format!("{plain}/capabilities"))
        .send()
        .await
        .is_err());
    Ok(())
}
