#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Transaction functions (`:db.fn/call`, issue #16): Datascript's
//! `test/datascript/test/transact.cljc` `test-db-fn` and issue 474 ported, with their
//! expected answers, plus what only datoms has (named functions, storing, the db a
//! function sees within its transaction).

use datoms_core::edn::parse_schema;
use datoms_core::tx::{Conn, TxFn, TxFunctions, TxOp, TxValue};
use datoms_core::{parse_tx, q, Db, Error, Input, Value};

/// Datascript's `inc-age`: finds the entity named `name` and increments its age.
fn inc_age(db: &Db, args: &[TxValue]) -> Result<Vec<TxOp>, String> {
    let Some(TxValue::Value(Value::String(name))) = args.first() else {
        return Err("inc-age takes a name".into());
    };
    let found = q(
        "[:find ?e ?age :in $ ?name :where [?e :name ?name] [?e :age ?age]]",
        &[Input::Db(db), Input::Scalar(name.as_ref().into())],
    )
    .map_err(|e| e.to_string())?;
    let Some(row) = found.rows().into_iter().next() else {
        return Err(format!("No entity with name: {name}"));
    };
    let (e, age) = (row[0].as_long().unwrap(), row[1].as_long().unwrap());
    parse_tx(
        &format!(
            "[{{:db/id {e} :age {}}} [:db/add {e} :had-birthday true]]",
            age + 1
        ),
        db.schema(),
    )
    .map_err(|e| e.to_string())
}

fn conn() -> Conn {
    let conn = Conn::new(Db::new(
        parse_schema("{:aka {:db/cardinality :db.cardinality/many}}").unwrap(),
    ));
    conn.register_tx_fn("inc-age", inc_age);
    conn.transact_edn(r#"[{:db/id 1 :name "Ivan" :age 31}]"#)
        .unwrap();
    conn.transact_edn(r#"[[:db/add 1 :name "Petr"]]"#).unwrap();
    conn
}

#[test]
fn a_named_function_runs_on_the_connection_as_datascripts_test_db_fn() {
    let conn = conn();
    // (d/transact! conn [[:db.fn/call inc-age "Bob"]]) throws "No entity with name: Bob"
    let e = conn
        .transact_edn(r#"[[:db.fn/call inc-age "Bob"]]"#)
        .unwrap_err();
    assert_eq!(
        e,
        Error::TxFunction {
            name: "inc-age".into(),
            reason: "No entity with name: Bob".into()
        }
    );
    // ... and then Petr's age is 32 and he had a birthday.
    let r = conn
        .transact_edn(r#"[[:db.fn/call inc-age "Petr"]]"#)
        .unwrap();
    assert_eq!(
        r.db_after
            .pull("[:age :had-birthday]", 1)
            .unwrap()
            .to_string(),
        "{:age 32, :had-birthday true}"
    );
}

#[test]
fn a_function_is_called_by_its_keyword_as_datascripts_test_db_ident_fn() {
    let conn = Conn::new(Db::new(
        parse_schema("{:name {:db/unique :db.unique/identity}}").unwrap(),
    ));
    conn.register_tx_fn("inc-age", |db, args| {
        let Some(TxValue::Value(Value::String(name))) = args.first() else {
            return Err("inc-age takes a name".into());
        };
        let Some(e) = db
            .lookup_ref(&":name".into(), &Value::from(name.as_ref()))
            .map_err(|e| e.to_string())?
        else {
            return Err(format!("No entity with name: {name}"));
        };
        let age = match db
            .entity_attr(e, &":age".into())
            .map_err(|e| e.to_string())?
            .first()
        {
            Some(d) => match d.v {
                Value::Long(n) => n,
                _ => return Err("age is not a long".into()),
            },
            None => return Err("no age".into()),
        };
        parse_tx(
            &format!(
                "[{{:db/id {e} :age {}}} [:db/add {e} :had-birthday true]]",
                age + 1
            ),
            db.schema(),
        )
        .map_err(|e| e.to_string())
    });
    conn.transact_edn(r#"[{:db/id 1 :name "Petr" :age 31 :db/ident :Petr}]"#)
        .unwrap();
    // [[:unknown-fn]] => "Can’t find entity for transaction fn :unknown-fn"
    assert_eq!(
        conn.transact_edn("[[:unknown-fn]]").unwrap_err(),
        Error::UnknownTxFunction {
            name: "unknown-fn".into()
        }
    );
    // [[:inc-age "Bob"]] => "No entity with name: Bob"
    assert!(conn
        .transact_edn(r#"[[:inc-age "Bob"]]"#)
        .unwrap_err()
        .to_string()
        .contains("No entity with name: Bob"));
    // [[:inc-age "Petr"]] => age 32, had-birthday
    let r = conn.transact_edn(r#"[[:inc-age "Petr"]]"#).unwrap();
    assert_eq!(
        r.db_after
            .pull("[:age :had-birthday]", 1)
            .unwrap()
            .to_string(),
        "{:age 32, :had-birthday true}"
    );
}

#[test]
fn a_closure_returning_new_entities_shares_the_transactions_tempids() {
    let conn = conn();
    // [[:db.fn/call (fn [db] [{:name "Oleg"}])]] => entity 2 is Oleg
    let oleg = TxOp::Fn(
        TxFn::new("oleg", |db, _| {
            parse_tx(r#"[{:name "Oleg"}]"#, db.schema()).map_err(|e| e.to_string())
        }),
        Vec::new(),
    );
    let r = conn.transact(&[oleg]).unwrap();
    assert_eq!(
        r.db_after.pull("[:name]", 2).unwrap().to_string(),
        r#"{:name "Oleg"}"#
    );
    // [[:db.fn/call (fn [db] [{:db/id -1 :name "Vera"}])]] => (tempids -1) is Vera
    let vera = TxOp::Fn(
        TxFn::new("vera", |db, _| {
            parse_tx(r#"[{:db/id -1 :name "Vera"}]"#, db.schema()).map_err(|e| e.to_string())
        }),
        Vec::new(),
    );
    let r = conn.transact(&[vera]).unwrap();
    let vera = r.tempids["-1"];
    assert_eq!(
        r.db_after.pull("[:name]", vera).unwrap().to_string(),
        r#"{:name "Vera"}"#
    );
    // A tempid the function returns is the tempid the rest of the transaction uses.
    let link = TxOp::Fn(
        TxFn::new("link", |db, _| {
            parse_tx(r#"[[:db/add "t" :name "Tim"]]"#, db.schema()).map_err(|e| e.to_string())
        }),
        Vec::new(),
    );
    let mut ops = vec![link];
    ops.extend(parse_tx(r#"[[:db/add "t" :age 7]]"#, conn.db().schema()).unwrap());
    let r = conn.transact(&ops).unwrap();
    let t = r.tempids["t"];
    assert_eq!(
        r.db_after.pull("[:name :age]", t).unwrap().to_string(),
        r#"{:age 7, :name "Tim"}"#
    );
}

#[test]
fn a_function_returning_an_entity_without_id_issue_474() {
    // [[:db.fn/call (fn [db] [{:foo "bar"}])]] on an empty db => #{[1 :foo "bar"]}
    let db = Db::new(parse_schema("{}").unwrap());
    let f = TxOp::Fn(
        TxFn::new("foo", |db, _| {
            parse_tx(r#"[{:foo "bar"}]"#, db.schema()).map_err(|e| e.to_string())
        }),
        Vec::new(),
    );
    let r = db.with(&[f]).unwrap();
    let facts: Vec<(u64, String, Value)> = r
        .tx_data
        .iter()
        .map(|d| (d.e, d.a.to_string(), d.v.clone()))
        .collect();
    assert_eq!(facts, vec![(1, ":foo".into(), Value::from("bar"))]);
}

#[test]
fn a_function_sees_the_db_as_the_transaction_made_it_so_far() {
    let fns = TxFunctions::new().with("copy-name", |db, args| {
        let Some(TxValue::Value(Value::Long(from))) = args.first() else {
            return Err("copy-name takes an entity id".into());
        };
        let name = db
            .entity_attr(from.unsigned_abs(), &":name".into())
            .map_err(|e| e.to_string())?
            .first()
            .map(|d| d.v.clone())
            .ok_or("no name")?;
        Ok(vec![TxOp::Add(
            "copy".into(),
            ":name".into(),
            TxValue::Value(name),
        )])
    });
    let db = Db::new(parse_schema("{}").unwrap());
    let ops = parse_tx(
        r#"[[:db/add 5 :name "Early"] [:db.fn/call copy-name 5]]"#,
        db.schema(),
    )
    .unwrap();
    let r = db.with_fns(&ops, &fns).unwrap();
    let copy = r.tempids["copy"];
    assert_eq!(
        r.db_after.pull("[:name]", copy).unwrap().to_string(),
        r#"{:name "Early"}"#
    );
    // Without the registry: a typed error naming the function; nothing changed.
    assert_eq!(
        db.with(&ops).unwrap_err(),
        Error::UnknownTxFunction {
            name: "copy-name".into()
        }
    );
}

#[test]
fn calls_parse_from_edn_and_a_named_call_is_stored_as_written() {
    let db = Db::new(parse_schema("{}").unwrap());
    let ops = parse_tx(
        r#"[[:db.fn/call my.ns/f "x" 2 [:a [1]] {:name "n"}] [:db.fn/call :kw/g]]"#,
        db.schema(),
    )
    .unwrap();
    let TxOp::Call { name, args } = &ops[0] else {
        panic!("{ops:?}")
    };
    assert_eq!(name, "my.ns/f");
    assert_eq!(args.len(), 4);
    assert!(matches!(&args[2], TxValue::Many(items) if items.len() == 2));
    assert!(matches!(&args[3], TxValue::Nested(_)));
    assert!(matches!(&ops[1], TxOp::Call { name, args } if name == "kw/g" && args.is_empty()));
    // Any keyword outside the db namespaces names a function, as in Datascript.
    let by_keyword = parse_tx(r#"[[:inc-age "Petr"] [:my/f]]"#, db.schema()).unwrap();
    assert!(
        matches!(&by_keyword[0], TxOp::Call { name, args } if name == "inc-age" && args.len() == 1)
    );
    assert!(matches!(&by_keyword[1], TxOp::Call { name, .. } if name == "my/f"));
    assert!(parse_tx("[[:db/nope 1]]", db.schema()).is_err());
    assert_eq!(
        ops[0].to_string(),
        r#"[:db.fn/call my.ns/f "x" 2 [:a [1]] {:name "n"}]"#
    );
    assert!(parse_tx("[[:db.fn/call]]", db.schema()).is_err());
    assert!(parse_tx("[[:db.fn/call 5]]", db.schema()).is_err());
}

#[test]
fn runaway_recursion_is_an_error_not_a_stack_overflow() {
    let fns = TxFunctions::new().with("again", |_, _| {
        Ok(vec![TxOp::Call {
            name: "again".into(),
            args: Vec::new(),
        }])
    });
    let db = Db::new(parse_schema("{}").unwrap());
    let e = db
        .with_fns(
            &[TxOp::Call {
                name: "again".into(),
                args: Vec::new(),
            }],
            &fns,
        )
        .unwrap_err();
    assert!(matches!(e, Error::MalformedTx { .. }), "{e:?}");
    assert!(e.to_string().contains("nest deeper"), "{e}");
}

mod property {
    use super::*;
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = String> {
        prop_oneof![
            (1u8..6, 0i64..5).prop_map(|(e, v)| format!("[:db/add {e} :n {v}]")),
            (0u8..4, 0i64..5).prop_map(|(t, v)| format!("{{:db/id \"t{t}\" :n {v} :id \"k{v}\"}}")),
            (1u8..6).prop_map(|e| format!("[:db/retractEntity {e}]")),
            (0i64..5).prop_map(|v| format!("{{:id \"k{v}\" :n {v}}}")),
            (0i64..5, 0u8..4).prop_map(|(v, t)| format!("[:db/add \"t{t}\" :r {}]", v + 1)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// `[:db.fn/call tx "…"]` whose function returns the tx data it is given does
        /// exactly what that tx data does (ids, tempids, datoms, trees).
        #[test]
        fn a_call_returning_tx_data_is_that_tx_data(
            before in prop::collection::vec(op(), 0..4),
            inner in prop::collection::vec(op(), 1..5),
        ) {
            let db = Db::new(parse_schema("{:id {:db/unique :db.unique/identity}}").unwrap())
                .with_edn(r#"[{:db/id 1 :n 0 :id "k0"} {:db/id 2 :n 1}]"#)
                .unwrap()
                .db_after;
            let fns = TxFunctions::new().with("tx", |db, args| match args {
                [TxValue::Value(Value::String(text))] => parse_tx(text, db.schema()).map_err(|e| e.to_string()),
                _ => Err("tx takes tx data as a string".into()),
            });
            let inner_text = format!("[{}]", inner.join(" "));
            let direct = format!("[{} {}]", before.join(" "), inner.join(" "));
            let via_call = format!("[{} [:db.fn/call tx {:?}]]", before.join(" "), inner_text);
            let a = db.with_edn(&direct);
            let b = parse_tx(&via_call, db.schema()).and_then(|ops| db.with_fns(&ops, &fns));
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a.tx_data, b.tx_data);
                    prop_assert_eq!(a.tempids, b.tempids);
                    prop_assert_eq!(a.db_after.root_addresses(), b.db_after.root_addresses());
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "{direct}: {a:?} but through a call {b:?}"),
            }
        }
    }
}
