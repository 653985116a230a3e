//! What is particular to S3, beyond the conformance suite: key layout, conditional
//! writes, the "known stored" set, bounded concurrency, retries and error mapping (with
//! a fault-injecting proxy in front of the real server), and the request cost of a
//! replica a few commits behind.

mod common;

use std::time::Duration;

use backend_s3::{RetryPolicy, S3Options, S3Storage};
use bytes::Bytes;
use common::proxy::{Fate, FaultProxy};
use common::{fresh_store, local, local_options};
use datoms_core::{Address, AttributeSchema, Db, Schema, TreeConfig, ValueType};
use datoms_storage::{restore_from, store, FaultyStorage, Storage, StorageError, Version};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn blob(text: impl Into<String>) -> (Address, Bytes) {
    let bytes = Bytes::from(text.into());
    (Address::of(&bytes), bytes)
}

fn blobs(tag: &str, n: usize) -> Vec<(Address, Bytes)> {
    (0..n).map(|i| blob(format!("{tag} {i}"))).collect()
}

/// A storage on the local server, through `proxy`, with a quick retry policy.
async fn through(proxy: &FaultProxy, attempts: u32) -> Result<S3Storage, StorageError> {
    let mut o = local_options(&proxy.endpoint, &common::fresh_prefix());
    o.retry = RetryPolicy {
        max_attempts: attempts,
        first_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    };
    S3Storage::connect(o).await
}

async fn proxy() -> Result<FaultProxy, Box<dyn std::error::Error>> {
    Ok(FaultProxy::start(&local()?.endpoint).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_enforces_conditional_writes() -> TestResult {
    fresh_store().await?.check_conditional_writes().await?;
    Ok(())
}

/// A one-datom db, stored to `storage` as head `main`.
async fn store_one(storage: &S3Storage) -> Result<Address, StorageError> {
    let db = Db::new(Schema::new())
        .with_edn("[[:db/add -1 :k/v 1]]")?
        .db_after;
    Ok(store(&db, storage, "main").await?.commit)
}

fn probes(proxy: &FaultProxy) -> usize {
    proxy
        .lines()
        .iter()
        .filter(|l| l.contains("/.datoms/probe/"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_do_not_move_on_a_server_that_ignores_conditions() -> TestResult {
    let proxy = proxy().await?;
    proxy.strip_conditions(true);
    let storage = through(&proxy, 2).await?;
    let refused = store_one(&storage).await;
    let Err(StorageError::Backend { reason: message }) = &refused else {
        panic!("a head moved on a server that ignores conditions: {refused:?}");
    };
    assert!(
        message.contains("does not enforce conditional writes"),
        "{message}"
    );
    assert!(message.contains("single_writer=true"), "{message}");
    assert_eq!(
        storage.get_head("main").await?,
        None,
        "the head stays unset"
    );
    // Asked again, the verdict stands, without probing the server again.
    proxy.reset();
    assert!(matches!(
        store_one(&storage).await,
        Err(StorageError::Backend { .. })
    ));
    assert_eq!(probes(&proxy), 0, "{:?}", proxy.lines());
    assert_eq!(storage.get_head("main").await?, None);

    // A user who is the one writer of the prefix says so, and writes.
    let mut options = storage.options().clone();
    options.single_writer = true;
    let single = S3Storage::connect(options).await?;
    let commit = store_one(&single).await?;
    assert_eq!(
        single.get_head("main").await?.map(|h| h.commit),
        Some(commit)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_server_is_probed_once_before_the_first_head_move() -> TestResult {
    let proxy = proxy().await?;
    let storage = through(&proxy, 2).await?;
    let first = store_one(&storage).await?;
    // Create, two refused overwrites, delete.
    assert_eq!(probes(&proxy), 4, "{:?}", proxy.lines());
    proxy.reset();
    let db = datoms_storage::restore(std::sync::Arc::new(storage.clone()), "main")
        .await?
        .db;
    let db = db.with_edn("[[:db/add -1 :k/v 2]]")?.db_after;
    let second = store(&db, &storage, "main").await?.commit;
    assert_ne!(first, second);
    assert_eq!(
        storage.get_head("main").await?.map(|h| h.commit),
        Some(second)
    );
    assert_eq!(probes(&proxy), 0, "{:?}", proxy.lines());
    // The probe leaves nothing behind.
    let listed = storage
        .client()
        .list_objects_v2()
        .bucket(&storage.options().bucket)
        .prefix(format!("{}/.datoms/probe/", storage.options().prefix))
        .send()
        .await?;
    assert_eq!(listed.key_count(), Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_parses_the_url_and_reports_the_concurrency_limit() -> TestResult {
    let s = S3Storage::open(
        "s3://some-bucket/apps/crm/?endpoint=http://127.0.0.1:9&region=eu-west-1&concurrency=7",
    )
    .await?;
    assert_eq!(s.options().location(), "s3://some-bucket/apps/crm");
    assert!(s.options().path_style);
    assert_eq!(s.capabilities().concurrency, 7);
    let a = Address::of(b"x");
    assert_eq!(
        s.node_key(&a),
        format!("apps/crm/.datoms/nodes/{}", a.to_hex())
    );
    assert_eq!(s.head_key("main"), "apps/crm/.datoms/heads/main");
    assert_eq!(
        s.head_key("team/a b"),
        "apps/crm/.datoms/heads/team%2Fa%20b"
    );
    let root = S3Storage::open("s3://some-bucket?endpoint=http://127.0.0.1:9").await?;
    assert_eq!(root.head_key("main"), ".datoms/heads/main");
    Ok(())
}

/// Requests run on the storage's own runtime: the storage works after the runtime that
/// connected it (and sent its first requests) is dropped, from no runtime at all (a
/// plain executor polls its futures), and inside a current-thread runtime whose one
/// thread then blocks on a synchronous lazy read.
#[test]
fn requests_need_no_runtime_of_the_caller() -> TestResult {
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let s = first.block_on(fresh_store())?;
    let (a, bytes) = blob("sent from the first runtime");
    first.block_on(s.put_many(&[(a, bytes.clone())]))?;
    drop(first);

    let (b, other) = blob("sent with no runtime");
    futures::executor::block_on(s.put_many(&[(b, other.clone())]))?;
    assert_eq!(
        futures::executor::block_on(s.get_many(&[a, b]))?,
        vec![Some(bytes), Some(other)]
    );

    // Small nodes, so that the trees have levels a lazy read must load.
    let people: String = (1..=200)
        .map(|i| format!("{{:db/id -{i} :person/name \"p{i}\" :person/age {i}}}"))
        .collect();
    let db = Db::with_config(
        Schema::new(),
        TreeConfig {
            leaf_target: 8,
            branch_target: 4,
        },
    )
    .with_edn(&format!("[{people}]"))?
    .db_after;
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let storage: std::sync::Arc<dyn Storage> = std::sync::Arc::new(s);
    current.block_on(async {
        store(&db, &*storage, "main").await?;
        let lazy = datoms_storage::restore(storage.clone(), "main").await?;
        // Synchronous reads on this runtime's only thread: the requests they need must
        // not wait for this runtime.
        assert_eq!(lazy.db.entity_datoms(150)?, db.entity_datoms(150)?);
        let every = |d: &Db| -> Result<Vec<_>, datoms_core::Error> {
            d.datoms(datoms_core::IndexKind::Eavt, &[])?.collect()
        };
        assert_eq!(every(&lazy.db)?, every(&db)?);
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_heads_live_under_the_prefix() -> TestResult {
    let s = fresh_store().await?;
    let (a, bytes) = blob("a node");
    s.put_many(&[(a, bytes.clone())]).await?;
    s.cas_head("main", None, a).await?;
    let prefix = format!("{}/", s.options().prefix);
    let listed = s
        .client()
        .list_objects_v2()
        .bucket(&s.options().bucket)
        .prefix(&prefix)
        .send()
        .await?;
    let mut keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            format!("{prefix}.datoms/heads/main"),
            format!("{prefix}.datoms/nodes/{}", a.to_hex())
        ]
    );
    let raw = s
        .client()
        .get_object()
        .bucket(&s.options().bucket)
        .key(s.node_key(&a))
        .send()
        .await?
        .body
        .collect()
        .await?
        .into_bytes();
    assert_eq!(raw, bytes, "nodes are stored as their bytes, unwrapped");
    Ok(())
}

/// Every blob address a storage lists.
async fn listed(s: &S3Storage) -> Result<Vec<Address>, StorageError> {
    let mut out: Vec<Address> = Vec::new();
    loop {
        let page = s.list_blobs(out.last().copied(), 1000).await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

/// Databases whose prefixes nest — one at `p`, others at `p/nodes`, `p/heads` and
/// `p/nodes/heads` (which met the old layout's `p/nodes/…` and `p/heads/…` keys) — each
/// list, store, restore and delete only their own blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_at_nested_prefixes_keep_their_keys_apart() -> TestResult {
    let outer = common::fresh_options()?;
    let mut stores = Vec::new();
    for suffix in ["", "/nodes", "/heads", "/nodes/heads"] {
        let mut o = outer.clone();
        o.prefix = format!("{}{suffix}", outer.prefix);
        stores.push(S3Storage::connect(o).await?);
    }
    let mut dbs = Vec::new();
    for (i, s) in stores.iter().enumerate() {
        let db = Db::new(Schema::new())
            .with_edn(&format!(r#"[{{:db/id -1 :db-number {i} :name "db {i}"}}]"#))?
            .db_after;
        dbs.push(store(&db, s, "main").await?.db);
    }
    for (i, (s, db)) in stores.iter().zip(&dbs).enumerate() {
        let mine = listed(s).await?;
        let restored = restore_from(&Db::new(Schema::new()), s, "main").await?.db;
        assert_eq!(restored.root_addresses(), db.root_addresses(), "db {i}");
        // Each db was new to its storage, so the store wrote every node it holds.
        let mut want: Vec<Address> = db.loaded_nodes().iter().map(|n| n.address()).collect();
        want.push(db.base_commit().ok_or("no commit")?);
        want.sort_unstable();
        want.dedup();
        assert_eq!(mine, want, "db {i} lists exactly its own blobs");
    }
    // Deleting the outer database's blobs leaves the inner ones whole, also the blobs
    // both hold (equal content, e.g. the empty AVET root): each db has its own key.
    let outer_blobs = listed(&stores[0]).await?;
    stores[0].delete_many(&outer_blobs).await?;
    assert!(listed(&stores[0]).await?.is_empty());
    for (s, db) in stores.iter().zip(&dbs).skip(1) {
        let again = S3Storage::connect(s.options().clone()).await?;
        let r = restore_from(&Db::new(Schema::new()), &again, "main").await?;
        assert_eq!(r.db.root_addresses(), db.root_addresses());
    }
    // A prefix reaching into a database's own keys is refused before any request.
    let mut inside = outer.clone();
    inside.prefix = format!("{}/.datoms/nodes", outer.prefix);
    match S3Storage::connect(inside).await {
        Err(StorageError::BadLocation { location, reason }) => {
            assert!(location.ends_with("/.datoms/nodes"), "{location}");
            assert!(reason.contains(".datoms"), "{reason}");
        }
        other => panic!("a prefix with .datoms: expected BadLocation, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_node_is_not_put_again_and_an_unknown_one_is_not_overwritten() -> TestResult {
    let s = fresh_store().await?;
    let batch = blobs("known", 20);
    s.put_many(&batch).await?;
    assert_eq!(s.request_counts().node_puts, 20);
    s.put_many(&batch).await?;
    let c = s.request_counts();
    assert_eq!((c.node_puts, c.puts_skipped), (20, 20), "{c:?}");

    // Another process does not know them: it sends conditional puts, which the server
    // refuses (412) instead of rewriting the objects; each is copied onto itself, which
    // keeps the bytes and refreshes the write time garbage collection reads.
    let other = S3Storage::connect(s.options().clone()).await?;
    let before = other
        .client()
        .head_object()
        .bucket(&s.options().bucket)
        .key(s.node_key(&batch[0].0))
        .send()
        .await?;
    other.put_many(&batch).await?;
    let after = other
        .client()
        .head_object()
        .bucket(&s.options().bucket)
        .key(s.node_key(&batch[0].0))
        .send()
        .await?;
    assert_eq!(
        other.request_counts().node_puts,
        40,
        "20 puts, 20 refreshes"
    );
    assert!(before.last_modified() <= after.last_modified());
    assert_eq!(before.e_tag(), after.e_tag());
    // …and then it knows them too, but not from reading: a blob read may be old, and a
    // put must refresh it.
    other.put_many(&batch).await?;
    assert_eq!(other.request_counts().puts_skipped, 20);
    let third = S3Storage::connect(s.options().clone()).await?;
    let addresses: Vec<Address> = batch.iter().map(|(a, _)| *a).collect();
    third.get_many(&addresses).await?;
    third.put_many(&batch).await?;
    assert_eq!(third.request_counts().node_puts, 40);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_moved_away_and_back_gets_a_new_version() -> TestResult {
    let s = fresh_store().await?;
    let (a, b) = (Address::of(b"a"), Address::of(b"b"));
    let v1 = s.cas_head("main", None, a).await?;
    let v2 = s.cas_head("main", Some(&v1), b).await?;
    let v3 = s.cas_head("main", Some(&v2), a).await?;
    assert_ne!(v1, v3, "same commit, but a new write: a new version");
    match s.cas_head("main", Some(&v1), b).await {
        Err(StorageError::HeadConflict { current, .. }) => {
            assert_eq!(current.map(|h| (h.commit, h.version)), Some((a, v3)));
        }
        other => panic!("a CAS from the first version must conflict: {other:?}"),
    }
    match s
        .cas_head("other", Some(&Version("\"nope\"".into())), a)
        .await
    {
        Err(StorageError::HeadConflict { current: None, .. }) => {}
        other => panic!("updating a head that does not exist must conflict: {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_delete_page_past_one_s3_page() -> TestResult {
    let s = fresh_store().await?;
    let batch = blobs("many", 1_050);
    s.put_many(&batch).await?;
    let mut want: Vec<Address> = batch.iter().map(|(a, _)| *a).collect();
    want.sort_unstable();
    let all = s.list_blobs(None, 5_000).await?;
    assert_eq!(all, want);
    assert_eq!(s.request_counts().lists, 2, "1,050 keys are two S3 pages");
    let tail = s.list_blobs(Some(want[999]), 100).await?;
    assert_eq!(tail, want[1000..]);
    s.delete_many(&want).await?;
    assert_eq!(
        s.request_counts().deletes,
        2,
        "1,000 keys per DeleteObjects"
    );
    assert!(s.list_blobs(None, 10).await?.is_empty());
    assert!(s.get_many(&want[..3]).await?.iter().all(Option::is_none));
    // Deleted blobs are forgotten: putting them again really writes.
    s.put_many(&batch[..5]).await?;
    assert_eq!(s.get_many(&want[..0]).await?.len(), 0);
    assert!(s.get_many(&[batch[0].0]).await?[0].is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_keeps_order_and_bounds_requests_in_flight() -> TestResult {
    let p = proxy().await?;
    let mut o = local_options(&p.endpoint, &common::fresh_prefix());
    o.concurrency = 4;
    let s = S3Storage::connect(o).await?;
    assert_eq!(s.capabilities().concurrency, 4);
    let batch = blobs("bounded", 40);
    s.put_many(&batch).await?;
    p.reset();
    let mut addresses: Vec<Address> = batch.iter().map(|(a, _)| *a).collect();
    addresses.insert(7, Address::of(b"absent"));
    let got = s.get_many(&addresses).await?;
    assert_eq!(p.requests(), 41);
    assert!(p.max_in_flight() <= 4, "{} in flight", p.max_in_flight());
    assert!(p.max_in_flight() >= 2, "requests should overlap");
    for (a, b) in addresses.iter().zip(&got) {
        match batch.iter().find(|(x, _)| x == a) {
            Some((_, bytes)) => assert_eq!(b.as_ref(), Some(bytes)),
            None => assert!(b.is_none()),
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried_then_succeed() -> TestResult {
    let p = proxy().await?;
    let s = through(&p, 5).await?;
    let (a, bytes) = blob("retried");
    p.plan(
        [
            Fate::Fail(503, "SlowDown"),
            Fate::Fail(500, "InternalError"),
        ],
        Fate::Pass,
    );
    s.put_many(&[(a, bytes.clone())]).await?;
    p.plan(
        [
            Fate::Fail(429, "TooManyRequests"),
            Fate::Fail(502, "BadGateway"),
        ],
        Fate::Pass,
    );
    let fresh = S3Storage::connect(s.options().clone()).await?;
    assert_eq!(fresh.get_many(&[a]).await?, [Some(bytes)]);
    assert_eq!(
        s.request_counts().retries + fresh.request_counts().retries,
        4
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_keeps_failing_gives_a_transient_error_after_the_retries() -> TestResult {
    let p = proxy().await?;
    let s = through(&p, 3).await?;
    p.plan([], Fate::Fail(503, "SlowDown"));
    let (a, _) = blob("never");
    match s.get_many(&[a]).await {
        Err(e @ StorageError::Transient { .. }) => {
            assert!(e.to_string().contains(&s.node_key(&a)), "{e}");
            assert!(e.to_string().contains("3 attempts"), "{e}");
        }
        other => panic!("expected a transient error: {other:?}"),
    }
    assert_eq!(p.requests(), 3);
    assert!(matches!(
        s.get_head("main").await,
        Err(StorageError::Transient { .. })
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_client_errors_are_not_retried_and_name_the_key() -> TestResult {
    let p = proxy().await?;
    let s = through(&p, 5).await?;
    let (a, bytes) = blob("denied");
    for (status, code) in [(403, "AccessDenied"), (400, "InvalidArgument")] {
        p.reset();
        p.plan([], Fate::Fail(status, code));
        match s.put_many(&[(a, bytes.clone())]).await {
            Err(StorageError::Backend { reason }) => {
                assert!(reason.contains(&s.node_key(&a)), "{reason}");
                assert!(reason.contains(&format!("{status} {code}")), "{reason}");
            }
            other => panic!("{status}: expected a backend error: {other:?}"),
        }
        assert_eq!(p.requests(), 1, "{status} must not be retried");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_a_backend_error_not_an_absent_blob() -> TestResult {
    let mut o = local_options(&local()?.endpoint, "p");
    o.bucket = "datoms-no-such-bucket".into();
    let s = S3Storage::connect(o).await?;
    match s.get_many(&[Address::of(b"x")]).await {
        Err(StorageError::Backend { reason }) => {
            assert!(reason.contains("NoSuchBucket"), "{reason}")
        }
        other => panic!("expected a backend error: {other:?}"),
    }
    assert!(matches!(
        s.get_head("main").await,
        Err(StorageError::Backend { .. })
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cas_whose_reply_was_lost_after_it_landed_succeeds_on_retry() -> TestResult {
    let p = proxy().await?;
    let s = through(&p, 5).await?;
    let (a, b) = (Address::of(b"first"), Address::of(b"second"));
    let v1 = s.cas_head("main", None, a).await?;
    // The server applies the update, the reply never arrives; the retry meets 412, and
    // the head read back is our own write.
    p.plan([Fate::LoseReply], Fate::Pass);
    let v2 = s.cas_head("main", Some(&v1), b).await?;
    let head = s.get_head("main").await?.ok_or("no head")?;
    assert_eq!((head.commit, head.version), (b, v2));
    assert!(s.request_counts().retries >= 1);
    // Without an ambiguous attempt, a 412 is a conflict even if the head is where we
    // wanted it.
    match s.cas_head("main", Some(&v1), b).await {
        Err(StorageError::HeadConflict { .. }) => {}
        other => panic!("a stale CAS must conflict: {other:?}"),
    }
    Ok(())
}

/// The schema and small nodes (8 datoms a leaf, 4 children a branch), so that a few
/// hundred datoms make trees several levels deep.
fn people_db() -> Result<Db, datoms_core::Error> {
    let schema = Schema::new()
        .with(
            ":person/name",
            AttributeSchema::default()
                .value_type(ValueType::String)
                .identity(),
        )?
        .with(
            ":person/age",
            AttributeSchema::default()
                .value_type(ValueType::Long)
                .indexed(),
        )?;
    let db = Db::with_config(
        schema,
        TreeConfig {
            leaf_target: 8,
            branch_target: 4,
        },
    );
    let people: String = (0..200)
        .map(|i| format!("{{:person/name \"p{i}\" :person/age {}}}", i % 90))
        .collect();
    Ok(db.with_edn(&format!("[{people}]"))?.db_after)
}

fn birthday(db: &Db, i: u64) -> Result<Db, datoms_core::Error> {
    let tx = format!(
        "[{{:person/name \"p{}\" :person/age {}}}]",
        (i * 37) % 200,
        100 + i
    );
    Ok(db.with_edn(&tx)?.db_after)
}

/// The request cost of `restore_from` for a replica 1…8 commits behind (within the
/// delta-manifest window), and past it. Rounds are `restore_from`'s round trips and
/// the storage calls `FaultyStorage` counts; requests are the S3 requests sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_a_few_commits_behind_costs_three_rounds() -> TestResult {
    let storage = FaultyStorage::new(fresh_store().await?);
    let mut primary = store(&people_db()?, &storage, "main").await?.db;
    let mut replica = restore_from(&Db::new(Schema::new()), &storage, "main")
        .await?
        .db;
    let mut tx = 0;
    println!("behind | rounds | storage calls (head, get) | S3 requests | nodes | commits");
    for behind in [1u64, 2, 3, 5, 8, 12] {
        for _ in 0..behind {
            tx += 1;
            primary = store(&birthday(&primary, tx)?, &storage, "main").await?.db;
        }
        storage.reset_counters();
        storage.inner().reset_request_counts();
        let r = restore_from(&replica, &storage, "main").await?;
        let calls = storage.counters();
        let http = storage.inner().request_counts();
        println!(
            "{behind:>6} | {:>6} | {:>5} ({}, {}) | {:>11} | {:>5} | {:>7}",
            r.stats.round_trips,
            calls.requests(),
            calls.head_reads,
            calls.gets,
            http.requests(),
            r.stats.nodes_fetched,
            r.stats.commits_fetched
        );
        assert_eq!(r.db.root_addresses(), primary.root_addresses());
        assert_eq!(calls.head_reads, 1);
        assert_eq!(http.head_gets, 1);
        assert_eq!(
            http.node_gets,
            r.stats.nodes_fetched + r.stats.commits_fetched,
            "one GET per blob"
        );
        assert_eq!(http.retries, 0);
        if behind <= datoms_core::commit::ANCESTORS as u64 {
            assert!(r.stats.round_trips <= 3, "{behind} behind: {:?}", r.stats);
            assert!(calls.requests() <= 3, "{behind} behind: {calls:?}");
        }
        replica = r.db;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_built_by_hand_match_the_url_form() -> TestResult {
    let by_hand = S3Options::new("b", "/x/y/").with_endpoint("http://127.0.0.1:1");
    let by_url = S3Options::from_url("s3://b/x/y?endpoint=http://127.0.0.1:1")?;
    assert_eq!(by_hand, by_url);
    Ok(())
}
