//! What a new user types that datoms used to take and change, or answer arbitrarily:
//! numbers it cannot hold exactly, lookup refs on attributes that are not unique, and
//! keywords EDN cannot read back. Each is a typed error naming what is wrong, on every
//! path that reads it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use datoms_core::edn::{datom_from_edn, parse, parse_all, parse_schema, Edn};
use datoms_core::pull::pull_entity;
use datoms_core::{
    q, AttributeSchema, Db, Error, Functions, Input, Keyword, PullPattern, QueryValue, Schema,
    Value, ValueType,
};

const BIG_DECIMAL: &str = "12345678901234567890.123456789M";

/// `:person/name` unique, `:person/age` indexed (in AVET, not unique), `:person/email`
/// neither, `:person/friend` a unique ref; Ann (1) and Bob (2) are both 42.
fn people() -> Db {
    let schema = Schema::new()
        .with(
            ":person/name",
            AttributeSchema::default()
                .value_type(ValueType::String)
                .identity(),
        )
        .and_then(|s| {
            s.with(
                ":person/age",
                AttributeSchema::default()
                    .value_type(ValueType::Long)
                    .indexed(),
            )
        })
        .and_then(|s| {
            s.with(
                ":person/best-friend",
                AttributeSchema::default()
                    .value_type(ValueType::Ref)
                    .unique_value(),
            )
        })
        .unwrap();
    Db::new(schema)
        .with_edn(
            r#"[{:db/id 1 :person/name "Ann" :person/age 42 :person/email "ann@x"}
                {:db/id 2 :person/name "Bob" :person/age 42 :person/email "bob@x"
                 :person/best-friend 1}]"#,
        )
        .unwrap()
        .db_after
}

/// The error is `UnsupportedNumber` naming `literal`.
fn assert_unsupported<T: std::fmt::Debug>(what: &str, result: Result<T, Error>, literal: &str) {
    match result {
        Err(Error::UnsupportedNumber { literal: l, .. }) => assert_eq!(l, literal, "{what}"),
        other => panic!("{what}: expected UnsupportedNumber for {literal}, got {other:?}"),
    }
}

#[test]
fn a_big_decimal_is_refused_on_every_path_that_reads_edn() {
    let db = people();
    let tx = format!("[{{:db/id -1 :person/balance {BIG_DECIMAL}}}]");
    assert_unsupported("tx data", db.with_edn(&tx), BIG_DECIMAL);
    let query = format!("[:find ?e :where [?e :person/balance {BIG_DECIMAL}]]");
    assert_unsupported("a query literal", q(&query, &[Input::Db(&db)]), BIG_DECIMAL);
    assert_unsupported(
        "a query input",
        q(
            "[:find ?e :in $ ?b :where [?e :person/balance ?b]]",
            &[Input::Db(&db), Input::Edn(BIG_DECIMAL)],
        ),
        BIG_DECIMAL,
    );
    assert_unsupported(
        "a pull pattern",
        db.pull("[(:person/name :limit 1.5M)]", 1),
        "1.5M",
    );
    assert_unsupported(
        "a schema",
        parse_schema("{:person/balance {:db/doc 1M}}"),
        "1M",
    );
    let export = format!(
        "#datom [1 :person/name \"Ann\" 536870913 true]\n#datom [1 :person/balance {BIG_DECIMAL} 536870913 true]"
    );
    assert_unsupported("an import", parse_all(&export), BIG_DECIMAL);
}

#[test]
fn a_big_integer_is_refused_and_an_n_integer_that_fits_is_the_exact_long() {
    let db = people();
    let big = "12345678901234567890N";
    assert_unsupported(
        "tx data",
        db.with_edn(&format!("[[:db/add 1 :person/age {big}]]")),
        big,
    );
    assert_unsupported(
        "a query literal",
        q(
            &format!("[:find ?e :where [?e :person/age {big}]]"),
            &[Input::Db(&db)],
        ),
        big,
    );
    assert_unsupported(
        "an import",
        parse_all("#datom [1 :person/age 99999999999999999999 536870913 true]"),
        "99999999999999999999",
    );
    let after = db
        .with_edn("[[:db/add 1 :person/age 43N]]")
        .unwrap()
        .db_after;
    let ages: Vec<Value> = after
        .entity_attr(1, &":person/age".into())
        .unwrap()
        .into_iter()
        .map(|d| d.v)
        .collect();
    assert_eq!(ages, vec![Value::Long(43)]);
    let datom = datom_from_edn(
        &parse("#datom [1 :person/age 7N 536870913 true]").unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(datom.v, Value::Long(7));
}

fn assert_not_unique<T: std::fmt::Debug>(what: &str, result: Result<T, Error>, attr: &str) {
    match result {
        Err(Error::LookupRefNotUnique { attr: a }) => assert_eq!(a, Keyword::new(attr), "{what}"),
        other => panic!("{what}: expected LookupRefNotUnique for {attr}, got {other:?}"),
    }
}

#[test]
fn a_lookup_ref_on_an_attribute_that_is_not_unique_is_the_same_error_everywhere() {
    let db = people();
    let age = Keyword::new(":person/age");
    let email = Keyword::new(":person/email");
    // Index reads and the CLI's pull and datoms resolve through these.
    assert_not_unique(
        "an indexed attribute",
        db.entity_by_value(&age, &Value::Long(42)),
        ":person/age",
    );
    assert_not_unique(
        "an attribute not in AVET",
        db.entity_by_value(&email, &Value::from("ann@x")),
        ":person/email",
    );
    assert_not_unique(
        "lookup_ref",
        db.lookup_ref(&age, &Value::Long(42)),
        ":person/age",
    );
    let lookup = QueryValue::Vector(vec![
        QueryValue::Value(Value::Keyword(age.clone())),
        QueryValue::Value(Value::Long(42)),
    ]);
    let fns = Functions::new();
    let pattern = PullPattern::parse(&db, "[*]", &fns).unwrap();
    assert_not_unique(
        "pull",
        pull_entity(&db, &pattern, &lookup, &fns),
        ":person/age",
    );
    assert_not_unique(
        "a query",
        q(
            "[:find ?n :where [[:person/age 42] :person/name ?n]]",
            &[Input::Db(&db)],
        ),
        ":person/age",
    );
    assert_not_unique(
        "a query input",
        q(
            "[:find (pull ?e [*]) :in $ ?e]",
            &[Input::Db(&db), Input::Edn("[:person/email \"ann@x\"]")],
        ),
        ":person/email",
    );
    assert_not_unique(
        "a transaction's entity",
        db.with_edn("[[:db/add [:person/age 42] :person/email \"x\"]]"),
        ":person/age",
    );
    assert_not_unique(
        "a transaction's retraction",
        db.with_edn("[[:db/retractEntity [:person/email \"ann@x\"]]]"),
        ":person/email",
    );
    // Unique attributes resolve, a positive long under a ref attribute is an entity id.
    let name = Keyword::new(":person/name");
    assert_eq!(db.lookup_ref(&name, &Value::from("Bob")), Ok(Some(2)));
    assert_eq!(db.entity_by_value(&name, &Value::from("Cy")), Ok(None));
    let friend = Keyword::new(":person/best-friend");
    assert_eq!(db.lookup_ref(&friend, &Value::Long(1)), Ok(Some(2)));
    assert_eq!(db.lookup_ref(&friend, &Value::Ref(1)), Ok(Some(2)));
}

#[test]
fn a_lookup_ref_on_an_undeclared_attribute_of_a_strict_schema_names_it() {
    let db = Db::new(Schema::new().strict());
    assert_eq!(
        db.lookup_ref(&Keyword::new(":nope"), &Value::Long(1)),
        Err(Error::UnknownAttribute {
            attr: Keyword::new(":nope")
        })
    );
}

#[test]
fn keywords_from_input_that_edn_cannot_read_back_are_refused() {
    let db = people();
    assert!(matches!(
        db.entity(1).get("person name"),
        Err(Error::InvalidKeyword { ref text, .. }) if text == "person name"
    ));
    assert!(db.entity(1).get(":person/name").unwrap().is_some());
    // A pull pattern may name an attribute by a string; it must be a keyword.
    match db.pull(r#"["person name"]"#, 1) {
        Err(Error::PullPattern { reason, .. }) => assert!(reason.contains("invalid keyword")),
        other => panic!("pull of \"person name\" gave {other:?}"),
    }
    assert!(db.pull(r#"["person/name"]"#, 1).is_ok());
    // `:keys` names become keywords of the result maps.
    match q(
        r#"[:find ?n :keys "the name" :where [_ :person/name ?n]]"#,
        &[Input::Db(&db)],
    ) {
        Err(Error::QueryParse { reason, .. }) => assert!(reason.contains("invalid keyword")),
        other => panic!(":keys \"the name\" gave {other:?}"),
    }
    // The `keyword` function makes keywords from query data.
    let made = |text: &str| {
        q(
            "[:find ?k . :in ?s :where [(keyword ?s) ?k]]",
            &[Input::Edn(text)],
        )
    };
    match made(r#""a b""#) {
        Err(Error::InvalidKeyword { text, .. }) => assert_eq!(text, ":a b"),
        other => panic!("(keyword \"a b\") gave {other:?}"),
    }
    assert!(matches!(
        made(r#""a/b/c""#),
        Err(Error::InvalidKeyword { .. })
    ));
    assert_eq!(made(r#""a/b""#).unwrap().to_edn().to_string(), ":a/b");
    let maps = q(
        r#"[:find ?n :keys "name" :where [1 :person/name ?n]]"#,
        &[Input::Db(&db)],
    )
    .unwrap();
    let text = maps.to_edn().to_string();
    assert_eq!(text, r#"#{{:name "Ann"}}"#);
    assert!(matches!(parse(&text), Ok(Edn::Set(_))));
}
