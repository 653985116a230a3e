//! Transaction functions on a peer (issue #16): the outbox stores `[:db.fn/call name …]`
//! as written, so a rebase runs the function again against the newer db and lands the
//! result computed there; an unregistered name stops the rebase with a typed error and
//! keeps the transaction; a closure is refused before anything is written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use datoms_core::tx::{TxFn, TxFunctions, TxOp, TxValue};
use datoms_core::{parse_tx, Db, Schema, Value};
use datoms_storage::peer::PeerError;
use datoms_storage::{
    restore_from, MemoryOutbox, MemoryStorage, Outbox, Peer, PeerOptions, Storage,
};

fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:counter/name {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :counter/value {:db/valueType :db.type/long}}",
    )
    .unwrap()
}

/// `[:db.fn/call inc name]`: the counter's value on the db it runs on, plus one.
fn functions() -> TxFunctions {
    TxFunctions::new().with("inc", |db: &Db, args: &[TxValue]| {
        let Some(TxValue::Value(Value::String(name))) = args.first() else {
            return Err("inc takes a counter name".into());
        };
        let now = match db
            .lookup_ref(&":counter/name".into(), &Value::from(name.as_ref()))
            .map_err(|e| e.to_string())?
        {
            Some(e) => match db
                .entity_attr(e, &":counter/value".into())
                .map_err(|e| e.to_string())?
                .first()
            {
                Some(d) => match d.v {
                    Value::Long(n) => n,
                    _ => return Err("not a long".into()),
                },
                None => 0,
            },
            None => 0,
        };
        parse_tx(
            &format!("[{{:counter/name {name:?} :counter/value {}}}]", now + 1),
            db.schema(),
        )
        .map_err(|e| e.to_string())
    })
}

fn options(fns: TxFunctions) -> PeerOptions {
    PeerOptions {
        schema: schema(),
        max_attempts: 6,
        first_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(10),
        tx_functions: fns,
        ..PeerOptions::default()
    }
}

fn ops(text: &str) -> Vec<TxOp> {
    parse_tx(text, &schema()).unwrap()
}

async fn open(
    s: &Arc<MemoryStorage>,
    out: &MemoryOutbox,
    fns: TxFunctions,
) -> Result<Peer, PeerError> {
    let s: Arc<dyn Storage> = s.clone();
    Peer::open(s, "main", Outbox::memory(out).unwrap(), options(fns)).await
}

fn value(db: &Db) -> Value {
    let e = db
        .lookup_ref(&":counter/name".into(), &Value::from("hits"))
        .unwrap()
        .unwrap();
    db.entity_attr(e, &":counter/value".into()).unwrap()[0]
        .v
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_rerun_on_rebase_computes_on_the_newer_db() {
    let s = Arc::new(MemoryStorage::new());
    let a = open(&s, &MemoryOutbox::new(), functions()).await.unwrap();
    a.transact(&ops(r#"[{:counter/name "hits" :counter/value 10}]"#))
        .unwrap();
    a.push().await.unwrap();
    let b = open(&s, &MemoryOutbox::new(), functions()).await.unwrap();
    // Both increment offline from 10: each sees 11 locally.
    a.transact(&ops(r#"[[:db.fn/call inc "hits"]]"#)).unwrap();
    b.transact(&ops(r#"[[:db.fn/call inc "hits"]]"#)).unwrap();
    assert_eq!(value(&a.db()), Value::Long(11));
    assert_eq!(value(&b.db()), Value::Long(11));
    b.push().await.unwrap();
    // A rebases onto B's commit: its increment runs again there, on 11.
    let report = a.push().await.unwrap();
    assert_eq!(report.rebases, 1, "{report:?}");
    assert!(report.rejected.is_empty(), "{report:?}");
    let head = restore_from(&Db::new(schema()), &*s, "main")
        .await
        .unwrap()
        .db;
    assert_eq!(value(&head), Value::Long(12));
    assert_eq!(value(&a.db()), Value::Long(12));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unregistered_function_at_replay_is_a_typed_error_and_stays_pending() {
    let s = Arc::new(MemoryStorage::new());
    let a = open(&s, &MemoryOutbox::new(), functions()).await.unwrap();
    a.transact(&ops(r#"[{:counter/name "hits" :counter/value 1}]"#))
        .unwrap();
    a.push().await.unwrap();
    let out = MemoryOutbox::new();
    let b = open(&s, &out, functions()).await.unwrap();
    b.transact(&ops(r#"[[:db.fn/call inc "hits"]]"#)).unwrap();
    let pending = b.pending();
    drop(b);
    // Someone else moves the head, so reopening must run B's transaction again...
    a.transact(&ops(r#"[{:counter/name "other" :counter/value 1}]"#))
        .unwrap();
    a.push().await.unwrap();
    // ...on a peer that has not registered `inc`: a typed error naming it.
    let err = open(&s, &out, TxFunctions::new()).await.unwrap_err();
    assert!(
        matches!(&err, PeerError::Tx(datoms_core::Error::UnknownTxFunction { name }) if name == "inc"),
        "{err:?}"
    );
    // So does an offline open on the newer head.
    let head = restore_from(&Db::new(schema()), &*s, "main")
        .await
        .unwrap()
        .db;
    let storage: Arc<dyn Storage> = s.clone();
    let err = Peer::open_at(
        storage,
        "main",
        Outbox::memory(&out).unwrap(),
        head,
        options(TxFunctions::new()),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PeerError::Tx(datoms_core::Error::UnknownTxFunction { name }) if name == "inc"),
        "{err:?}"
    );
    // Nothing was dropped: with the function registered, it lands.
    let b = open(&s, &out, functions()).await.unwrap();
    assert_eq!(b.pending(), pending);
    b.push().await.unwrap();
    let head = restore_from(&Db::new(schema()), &*s, "main")
        .await
        .unwrap()
        .db;
    assert_eq!(value(&head), Value::Long(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closure_is_refused_before_anything_is_written() {
    let s = Arc::new(MemoryStorage::new());
    let out = MemoryOutbox::new();
    let a = open(&s, &out, functions()).await.unwrap();
    let closure = TxOp::Fn(TxFn::new("now", |_, _| Ok(Vec::new())), Vec::new());
    let err = a.transact(&[closure]).unwrap_err();
    assert!(matches!(err, PeerError::Unstorable { .. }), "{err:?}");
    assert!(a.pending().is_empty());
    assert_eq!(a.db().max_tx(), Db::new(schema()).max_tx());
}
