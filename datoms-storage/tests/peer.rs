//! The peer: durable outbox, rebase, exactly-once, on the in-memory backend with faults.
//! Every backend runs the multi-writer cases of the conformance suite; these are the
//! ones that need to look inside (outbox bytes, injected lost replies).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use datoms_core::tx::TxOp;
use datoms_core::{parse_tx, Db, IndexKind, Schema, Value};
use datoms_storage::peer::PeerError;
use datoms_storage::{
    restore_from, store, FaultyStorage, MemoryOutbox, MemoryStorage, Outbox, OutboxError, Peer,
    PeerOptions, Storage,
};

fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:person/email {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :person/name {:db/valueType :db.type/string}
          :person/age {:db/valueType :db.type/long}
          :person/tags {:db/valueType :db.type/string :db/cardinality :db.cardinality/many}
          :counter/value {:db/valueType :db.type/long}}",
    )
    .unwrap()
}

fn options() -> PeerOptions {
    PeerOptions {
        schema: schema(),
        max_attempts: 6,
        first_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(10),
        ..PeerOptions::default()
    }
}

fn ops(text: &str) -> Vec<TxOp> {
    parse_tx(text, &schema()).unwrap()
}

type Faulty = Arc<FaultyStorage<MemoryStorage>>;

fn storage() -> Faulty {
    Arc::new(FaultyStorage::new(MemoryStorage::new()))
}

async fn peer(storage: &Faulty, outbox: &MemoryOutbox) -> Peer {
    let s: Arc<dyn Storage> = storage.clone();
    Peer::open(s, "main", Outbox::memory(outbox).unwrap(), options())
        .await
        .unwrap()
}

/// The head's db, restored fresh.
async fn head_db(storage: &Faulty) -> Db {
    restore_from(&Db::new(schema()), &**storage, "main")
        .await
        .unwrap()
        .db
}

fn names(db: &Db) -> BTreeSet<String> {
    db.datoms(
        IndexKind::Aevt,
        &[datoms_core::Component::A(":person/name".into())],
    )
    .unwrap()
    .map(|d| match d.unwrap().v {
        Value::String(s) => s.to_string(),
        other => panic!("{other}"),
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_is_seen_at_once_and_lands_on_push() {
    let s = storage();
    let out = MemoryOutbox::new();
    let p = peer(&s, &out).await;
    let seen = Arc::new(std::sync::Mutex::new(0usize));
    let seen2 = seen.clone();
    p.listen("count", move |r| *seen2.lock().unwrap() += r.tx_data.len());
    let r = p
        .transact(&ops(r#"[{:db/id "a" :person/name "Ann"}]"#))
        .unwrap();
    assert_eq!(r.tempid("a"), Some(1));
    assert_eq!(names(&p.db()), BTreeSet::from(["Ann".to_owned()]));
    assert_eq!(*seen.lock().unwrap(), 1);
    assert_eq!(p.pending().len(), 1);
    let report = p.push().await.unwrap();
    assert_eq!(report.landed, p_ids(&report));
    assert_eq!(report.commits.len(), 1);
    assert!(p.pending().is_empty());
    assert_eq!(names(&head_db(&s).await), names(&p.db()));
    // Landing changes no datom: the listener is not called again.
    assert_eq!(*seen.lock().unwrap(), 1);
}

fn p_ids(r: &datoms_storage::PushReport) -> Vec<datoms_core::TxId> {
    r.landed.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn group_commit_puts_every_pending_transaction_in_one_commit() {
    let s = storage();
    let p = peer(&s, &MemoryOutbox::new()).await;
    for i in 0..10 {
        p.transact(&ops(&format!(r#"[{{:person/name "p{i}"}}]"#)))
            .unwrap();
    }
    s.reset_counters();
    let report = p.push().await.unwrap();
    assert_eq!((report.commits.len(), report.landed.len()), (1, 10));
    assert_eq!(s.counters().cas, 1);
    let head = s.get_head("main").await.unwrap().unwrap();
    let commit = read_commit(&s, head.commit).await;
    let entries = commit.log_entries().unwrap();
    assert_eq!(entries.len(), 10);
    assert_eq!(
        entries.iter().map(|e| e.id.unwrap()).collect::<Vec<_>>(),
        report.landed,
        "every landed transaction's id is in the commit's log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_group_commit_each_transaction_is_its_own_commit() {
    let s = storage();
    let sd: Arc<dyn Storage> = s.clone();
    let p = Peer::open(
        sd,
        "main",
        Outbox::memory(&MemoryOutbox::new()).unwrap(),
        PeerOptions {
            max_batch: 1,
            ..options()
        },
    )
    .await
    .unwrap();
    for i in 0..4 {
        p.transact(&ops(&format!(r#"[{{:person/name "p{i}"}}]"#)))
            .unwrap();
    }
    let report = p.push().await.unwrap();
    assert_eq!((report.commits.len(), report.landed.len()), (4, 4));
    assert_eq!(names(&head_db(&s).await).len(), 4);
}

async fn read_commit(s: &Faulty, a: datoms_core::Address) -> datoms_core::Commit {
    let b = s.get_many(&[a]).await.unwrap().pop().unwrap().unwrap();
    datoms_core::Commit::decode(a, &b).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_cas_reply_lands_the_transaction_exactly_once() {
    let s = storage();
    let p = peer(&s, &MemoryOutbox::new()).await;
    // No unique attribute: applied twice, it would make two entities.
    p.transact(&ops(r#"[{:person/name "Once"}]"#)).unwrap();
    s.faults().lose_next_cas_reply();
    let report = p.push().await.unwrap();
    assert!(report.attempts >= 2, "{report:?}");
    assert_eq!(report.landed.len(), 1, "{report:?}");
    assert!(
        report.commits.is_empty(),
        "the landing commit's reply was lost"
    );
    let db = head_db(&s).await;
    assert_eq!(db.len(), 1, "applied once");
    assert_eq!(p.db().root_addresses(), db.root_addresses());
    assert!(p.pending().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_after_a_lost_reply_applies_nothing_twice() {
    let s = storage();
    let out = MemoryOutbox::new();
    {
        let p = peer(&s, &out).await;
        p.transact(&ops(r#"[{:person/name "Once"}]"#)).unwrap();
        s.faults().lose_next_cas_reply();
        // The process "dies" after the CAS, before the outbox learns it landed.
        s.faults().fail_after(0, datoms_storage::FailOn::Any);
        s.faults().lose_next_cas_reply();
        assert!(p.push().await.is_err());
        s.faults().heal();
        // The CAS that lost its reply did move the head (the first try), or not; either
        // way the outbox still holds the transaction.
        assert_eq!(p.pending().len(), 1);
    }
    let s2 = s.clone();
    s2.faults().lose_next_cas_reply();
    let p = peer(&s, &out).await;
    p.push().await.unwrap();
    let db = head_db(&s).await;
    assert_eq!(db.len(), 1, "applied once");
    // And once more after the lost reply of the first push landed it.
    let p2 = peer(&s, &out).await;
    assert!(p2.pending().is_empty());
    assert_eq!(head_db(&s).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebase_reapplies_intents_keeps_retractions_merges_upserts_and_reports_a_failed_cas() {
    let s = storage();
    let a = peer(&s, &MemoryOutbox::new()).await;
    a.transact(&ops(
        r#"[{:person/email "ann@x" :person/name "Ann" :person/age 30 :person/tags ["x" "y"]}
            {:db/id "c" :counter/value 1}]"#,
    ))
    .unwrap();
    a.push().await.unwrap();
    let b = peer(&s, &MemoryOutbox::new()).await;
    // A, offline: a retraction, an upsert by identity of a new entity B will also
    // create, a cas that B's write makes fail, an entity without unique attribute.
    a.transact(&ops(
        r#"[[:db/retract [:person/email "ann@x"] :person/tags "x"]]"#,
    ))
    .unwrap();
    a.transact(&ops(r#"[{:person/email "bob@x" :person/age 41}]"#))
        .unwrap();
    a.transact(&ops(r#"[[:db/cas 2 :counter/value 1 2]]"#))
        .unwrap();
    a.transact(&ops(r#"[{:person/name "Nameless"}]"#)).unwrap();
    // B lands first.
    b.transact(&ops(r#"[{:person/email "bob@x" :person/name "Bob"}]"#))
        .unwrap();
    b.transact(&ops(r#"[[:db/cas 2 :counter/value 1 5]]"#))
        .unwrap();
    b.push().await.unwrap();
    let report = a.push().await.unwrap();
    assert_eq!(report.rebases, 1);
    assert_eq!(report.landed.len(), 3, "{report:?}");
    assert_eq!(report.rejected.len(), 1);
    let rejected = &report.rejected[0];
    assert_eq!(rejected.position, 2);
    assert!(
        matches!(rejected.error, Some(datoms_core::Error::CasMismatch { .. })),
        "{rejected:?}"
    );
    assert_eq!(a.rejected().len(), 1, "recorded until taken");
    assert_eq!(a.take_rejected().unwrap().len(), 1);
    assert!(a.rejected().is_empty());
    let db = head_db(&s).await;
    let bob = db
        .lookup_ref(&":person/email".into(), &Value::from("bob@x"))
        .unwrap()
        .unwrap();
    let bob_datoms = db.entity_datoms(bob).unwrap();
    assert!(bob_datoms.iter().any(|d| d.v == Value::Long(41)), "merged");
    assert!(bob_datoms.iter().any(|d| d.v == Value::from("Bob")));
    let ann = db
        .lookup_ref(&":person/email".into(), &Value::from("ann@x"))
        .unwrap()
        .unwrap();
    let tags: Vec<Value> = db
        .entity_attr(ann, &":person/tags".into())
        .unwrap()
        .into_iter()
        .map(|d| d.v)
        .collect();
    assert_eq!(
        tags,
        [Value::from("y")],
        "the retraction survived the rebase"
    );
    assert_eq!(
        db.entity_attr(2, &":counter/value".into()).unwrap()[0].v,
        Value::Long(5)
    );
    assert_eq!(
        names(&db),
        BTreeSet::from(["Ann".into(), "Bob".into(), "Nameless".into()]),
        "one Nameless, not two"
    );
    assert_eq!(a.db().root_addresses(), db.root_addresses());
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_brings_remote_commits_under_pending_work() {
    let s = storage();
    let a = peer(&s, &MemoryOutbox::new()).await;
    let b = peer(&s, &MemoryOutbox::new()).await;
    b.transact(&ops(r#"[{:person/name "Bob"}]"#)).unwrap();
    b.push().await.unwrap();
    a.transact(&ops(r#"[{:person/name "Ann"}]"#)).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    a.listen("l", move |r| {
        seen2.lock().unwrap().extend(r.tx_data.clone())
    });
    let report = a.pull().await.unwrap();
    assert!(report.rejected.is_empty());
    assert_eq!(
        names(&a.db()),
        BTreeSet::from(["Ann".to_owned(), "Bob".to_owned()])
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|d| d.v == Value::from("Bob") && d.added),
        "listeners see the rebased db"
    );
    assert_eq!(a.pending().len(), 1);
    a.push().await.unwrap();
    assert_eq!(names(&head_db(&s).await).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_reopened_on_its_outbox_keeps_every_acknowledged_transaction() {
    let s = storage();
    let out = MemoryOutbox::new();
    {
        let p = peer(&s, &out).await;
        for i in 0..5 {
            p.transact(&ops(&format!(r#"[{{:person/name "p{i}"}}]"#)))
                .unwrap();
        }
    }
    let p = peer(&s, &out).await;
    assert_eq!(p.pending().len(), 5);
    assert_eq!(names(&p.db()).len(), 5);
    p.push().await.unwrap();
    assert_eq!(names(&head_db(&s).await).len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_last_record_is_dropped_and_never_blocks_sync() {
    let s = storage();
    let out = MemoryOutbox::new();
    let last_start = {
        let p = peer(&s, &out).await;
        p.transact(&ops(r#"[{:person/name "kept"}]"#)).unwrap();
        let len = out.bytes().len();
        p.transact(&ops(r#"[{:person/name "torn"}]"#)).unwrap();
        len
    };
    let whole = out.bytes();
    for cut in last_start..whole.len() {
        // Cut short, and cut short then zero-filled past the record's end.
        let mut zeroed = whole[..cut].to_vec();
        zeroed.resize(whole.len() + 16, 0);
        for torn in [whole[..cut].to_vec(), zeroed] {
            let m = MemoryOutbox::new();
            m.set_bytes(torn);
            let p = peer(&s, &m).await;
            assert_eq!(p.pending().len(), 1, "cut at {cut}");
            assert_eq!(m.bytes().len(), last_start, "the torn tail is truncated");
        }
    }
    let m = MemoryOutbox::new();
    m.set_bytes(whole[..whole.len() - 1].to_vec());
    let p = peer(&s, &m).await;
    p.push().await.unwrap();
    assert!(p.pending().is_empty());
    assert_eq!(
        names(&head_db(&s).await),
        BTreeSet::from(["kept".to_owned()])
    );
    // A damaged record with a whole one after it is damage, not a torn append.
    let mut bad = whole.clone();
    bad[last_start - 3] ^= 0x55;
    let m = MemoryOutbox::new();
    m.set_bytes(bad);
    assert!(matches!(
        Outbox::memory(&m),
        Err(OutboxError::Corrupt { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_file_survives_reopening_is_locked_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.outbox");
    let s = storage();
    {
        let sd: Arc<dyn Storage> = s.clone();
        let p = Peer::open(sd, "main", Outbox::open(&path).unwrap(), options())
            .await
            .unwrap();
        for i in 0..20 {
            p.transact(&ops(&format!(r#"[{{:person/name "p{i}"}}]"#)))
                .unwrap();
        }
        assert!(matches!(
            Outbox::open(&path),
            Err(OutboxError::Locked { .. })
        ));
        p.push().await.unwrap();
        p.transact(&ops(r#"[{:person/name "later"}]"#)).unwrap();
    }
    let before = std::fs::metadata(&path).unwrap().len();
    let outbox = Outbox::open(&path).unwrap();
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(
        after < before,
        "opening drops the landed records: {before} → {after}"
    );
    let sd: Arc<dyn Storage> = s.clone();
    let p = Peer::open(sd, "main", outbox, options()).await.unwrap();
    assert_eq!(p.pending().len(), 1);
    p.push().await.unwrap();
    assert_eq!(names(&head_db(&s).await).len(), 21);
    // Not an outbox.
    let other = dir.path().join("other");
    std::fs::write(&other, b"hello").unwrap();
    assert!(matches!(
        Outbox::open(&other),
        Err(OutboxError::NotAnOutbox { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn push_gives_up_after_its_attempts_and_the_loop_retries_on_its_own() {
    let s = storage();
    let sd: Arc<dyn Storage> = s.clone();
    let p = Arc::new(
        Peer::open(
            sd,
            "main",
            Outbox::memory(&MemoryOutbox::new()).unwrap(),
            PeerOptions {
                max_attempts: 3,
                first_backoff: std::time::Duration::from_millis(1),
                max_backoff: std::time::Duration::from_millis(5),
                ..options()
            },
        )
        .await
        .unwrap(),
    );
    s.faults().fail_after(0, datoms_storage::FailOn::Any);
    p.transact(&ops(r#"[{:person/name "Ann"}]"#)).unwrap();
    assert!(matches!(
        p.push().await,
        Err(PeerError::NotLanded {
            attempts: 3,
            pending: 1,
            ..
        })
    ));
    // The loop keeps trying while the storage is down, with no new local write.
    let push_loop = p.spawn_push_loop();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    assert_eq!(push_loop.landed(), 0);
    s.faults().heal();
    for _ in 0..2000 {
        if push_loop.landed() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(push_loop.landed(), 1);
    assert_eq!(names(&head_db(&s).await).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base_newer_than_the_outbox_checked_is_walked_before_storing() {
    let s = storage();
    let out = MemoryOutbox::new();
    {
        let sd: Arc<dyn Storage> = s.clone();
        let once = PeerOptions {
            max_attempts: 1,
            ..options()
        };
        let a = Peer::open(sd, "main", Outbox::memory(&out).unwrap(), once)
            .await
            .unwrap();
        a.transact(&ops(r#"[{:person/name "Once"}]"#)).unwrap();
        s.faults().lose_next_cas_reply();
        assert!(matches!(a.push().await, Err(PeerError::NotLanded { .. })));
    }
    // Reopened offline on the head db, which holds the transaction already.
    let head = head_db(&s).await;
    assert_eq!(head.len(), 1);
    let sd: Arc<dyn Storage> = s.clone();
    let a = Peer::open_at(sd, "main", Outbox::memory(&out).unwrap(), head, options()).unwrap();
    assert_eq!(a.pending().len(), 1);
    let report = a.push().await.unwrap();
    assert_eq!(report.landed.len(), 1);
    assert!(report.commits.is_empty());
    let db = head_db(&s).await;
    assert_eq!(db.len(), 1, "applied once");
    assert_eq!(a.db().root_addresses(), db.root_addresses());
}

#[tokio::test(flavor = "multi_thread")]
async fn rebase_onto_a_followed_db_is_one_call() {
    let s = storage();
    let a = peer(&s, &MemoryOutbox::new()).await;
    a.transact(&ops(r#"[{:person/name "Ann"}]"#)).unwrap();
    let other = Db::new(schema())
        .with(&ops(r#"[{:person/name "Bob"}]"#))
        .unwrap()
        .db_after;
    let stored = store(&other, &*s, "main").await.unwrap();
    let r = a.rebase_onto(stored.db).await.unwrap();
    assert_eq!(r.onto, Some(stored.commit));
    assert_eq!(names(&a.db()).len(), 2);
    a.push().await.unwrap();
    assert_eq!(names(&head_db(&s).await).len(), 2);
}

/// A crash after the CAS and before the outbox recorded the landing: the restarted peer
/// finds its transactions in the head and drops them, reporting none rejected (applied
/// again on the head, the cas would fail).
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_after_an_unrecorded_landing_rejects_nothing() {
    let s = storage();
    let out = MemoryOutbox::new();
    {
        let p = peer(&s, &out).await;
        p.transact(&ops(r#"[{:db/id "c" :counter/value 1}]"#))
            .unwrap();
        p.push().await.unwrap();
    }
    let p = peer(&s, &out).await;
    p.transact(&ops(r#"[[:db/cas 1 :counter/value 1 2]]"#))
        .unwrap();
    p.transact(&ops(r#"[{:person/name "Once"}]"#)).unwrap();
    let before_push = out.bytes();
    p.push().await.unwrap();
    drop(p);
    // The outbox as the crash left it: the landing never recorded.
    out.set_bytes(before_push);
    let p = peer(&s, &out).await;
    assert!(p.pending().is_empty(), "found landed");
    assert!(p.rejected().is_empty(), "{:?}", p.rejected());
    let db = head_db(&s).await;
    assert_eq!(names(&db).len(), 1, "applied once");
    assert_eq!(
        db.entity_attr(1, &":counter/value".into()).unwrap()[0].v,
        Value::Long(2)
    );
}

/// Compaction drops the records of landed transactions, but the next id is past them.
#[tokio::test(flavor = "multi_thread")]
async fn ids_are_never_given_out_twice_across_compactions() {
    let s = storage();
    let out = MemoryOutbox::new();
    let mut ids = BTreeSet::new();
    for round in 0..3 {
        let p = peer(&s, &out).await;
        for i in 0..3 {
            let id = p.next_id();
            p.transact(&ops(&format!(r#"[{{:person/name "r{round}-{i}"}}]"#)))
                .unwrap();
            assert!(ids.insert(id), "id {id} given out twice");
        }
        p.push().await.unwrap();
    }
    assert_eq!(names(&head_db(&s).await).len(), 9);
}

/// The outbox keeps values inline whatever their size (large values go out of line
/// only in stored nodes and logs): a pending transaction with a 5 KiB string survives a
/// reopen of the file, is replayed on the unchanged head, and lands whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_5_kib_string_survives_an_outbox_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.outbox");
    let s = storage();
    let big: String = (0..5 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let text = format!(r#"[{{:person/email "big@x" :person/name "{big}"}}]"#);
    {
        let sd: Arc<dyn Storage> = s.clone();
        let p = Peer::open(sd, "main", Outbox::open(&path).unwrap(), options())
            .await
            .unwrap();
        p.transact(&ops(r#"[{:person/name "stored first"}]"#))
            .unwrap();
        p.push().await.unwrap();
        p.transact(&ops(&text)).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let inline = bytes
        .windows(big.len())
        .filter(|w| *w == big.as_bytes())
        .count();
    assert!(inline >= 1, "the string is in the outbox, inline");
    let sd: Arc<dyn Storage> = s.clone();
    let p = Peer::open(sd, "main", Outbox::open(&path).unwrap(), options())
        .await
        .unwrap();
    assert_eq!(p.pending().len(), 1);
    assert!(names(&p.db()).contains(&big), "replayed locally");
    p.push().await.unwrap();
    let head = head_db(&s).await;
    assert!(names(&head).contains(&big), "landed whole");
    assert_eq!(p.db().root_addresses(), head.root_addresses());
}

/// An open onto the commit the pending transactions were resolved on replays their
/// recorded datoms, an open onto a moved head resolves them again; both give the db a
/// fresh resolution gives.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_replays_recorded_datoms_or_resolves_again_to_the_same_db() {
    let s = storage();
    let out = MemoryOutbox::new();
    let writes = [
        r#"[{:db/id "a" :person/name "Ann" :person/email "ann@x"}]"#,
        r#"[{:person/email "ann@x" :person/age 3} {:db/id "t" :person/name "Tmp"}]"#,
        r#"[[:db/retract [:person/email "ann@x"] :person/age 3]]"#,
    ];
    let local = {
        let p = peer(&s, &out).await;
        p.transact(&ops(r#"[{:person/name "base"}]"#)).unwrap();
        p.push().await.unwrap();
        for w in writes {
            p.transact(&ops(w)).unwrap();
        }
        p.db()
    };
    // Same head: replayed.
    let p = peer(&s, &out).await;
    assert_eq!(p.db().root_addresses(), local.root_addresses());
    assert_eq!(p.pending().len(), 3);
    drop(p);
    // The head moves: resolved again on it.
    let other = peer(&s, &MemoryOutbox::new()).await;
    other
        .transact(&ops(r#"[{:person/email "ann@x" :person/name "Ann B"}]"#))
        .unwrap();
    other.push().await.unwrap();
    let p = peer(&s, &out).await;
    let mut expected = head_db(&s).await;
    for w in writes {
        expected = expected.with(&ops(w)).unwrap().db_after;
    }
    assert_eq!(p.db().len(), expected.len());
    assert_eq!(names(&p.db()), names(&expected));
    p.push().await.unwrap();
    // Reopened on its own landing: nothing pending, the head's db.
    drop(p);
    let p = peer(&s, &out).await;
    assert!(p.pending().is_empty());
    assert_eq!(p.db().root_addresses(), head_db(&s).await.root_addresses());
}
