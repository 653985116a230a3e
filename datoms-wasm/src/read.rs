//! Reads of a restored db, with EDN text in and EDN or JSON text out: Datalog queries,
//! pull, and index access. The same engine and printers as the `datoms` command line
//! (`datoms query --format edn`, `--json`), so the answers are the same text.

use datoms_core::edn::{datom_to_edn, index_components, parse, Edn};
use datoms_core::{Datom, Db, IndexKind, Input, Query, QueryValue};

use crate::error::ReplicaError;

/// How results are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// EDN, as Datascript prints results (keywords, sets, `#inst`, `#uuid` kept).
    Edn,
    /// JSON, in the scheme of [`QueryValue::to_json`]: ids for refs, `":ns/name"` for
    /// keywords, `{"#inst": …}`, `{"#uuid": …}` for the types JSON lacks.
    Json,
}

/// Runs a Datalog query: every source of `:in` (`$`, `$name`) is `db`; the other `:in`
/// elements take `inputs`, EDN texts, in order.
///
/// # Errors
/// A malformed query or input, the wrong number of inputs, evaluation errors.
pub fn query(
    db: &Db,
    text: &str,
    inputs: &[String],
    format: Format,
) -> Result<String, ReplicaError> {
    let query = Query::parse(text)?;
    let specs = query.inputs();
    let wanted = specs.iter().filter(|s| !s.starts_with('$')).count();
    if wanted != inputs.len() {
        return Err(ReplicaError::argument(format!(
            "the query's :in [{}] takes {wanted} value(s) besides its sources; {} given",
            specs.join(" "),
            inputs.len()
        )));
    }
    let mut values = inputs.iter();
    let inputs: Vec<Input<'_>> = specs
        .iter()
        .map(|s| match s.starts_with('$') {
            true => Input::Db(db),
            false => Input::Edn(values.next().map_or("nil", String::as_str)),
        })
        .collect();
    let result = query.run(&inputs)?;
    Ok(match format {
        Format::Edn => result.to_string(),
        Format::Json => result.to_json(),
    })
}

/// Pulls `pattern` (EDN) for `entity` (EDN: an id, a lookup ref `[:attr value]` or an
/// ident); `nil` / `null` when the entity is not found.
///
/// # Errors
/// A malformed pattern or entity.
pub fn pull(db: &Db, pattern: &str, entity: &str, format: Format) -> Result<String, ReplicaError> {
    let form = parse(entity)?;
    let value = match db.entid(&QueryValue::from_edn(&form)?)? {
        Some(e) => db.pull(pattern, e)?,
        None => QueryValue::Nil,
    };
    Ok(match format {
        Format::Edn => value.to_edn().to_string(),
        Format::Json => value.to_json(),
    })
}

/// The datoms of `index` (`"eavt"`, `"aevt"` or `"avet"`) matching leading
/// `components`, an EDN vector in index order (`[1 :person/name]`), at most `limit`.
///
/// # Errors
/// An unknown index, components that do not parse or fit the index.
pub fn datoms(
    db: &Db,
    index: &str,
    components: &str,
    limit: Option<usize>,
    format: Format,
) -> Result<String, ReplicaError> {
    let index = match index.trim_start_matches(':') {
        "eavt" => IndexKind::Eavt,
        "aevt" => IndexKind::Aevt,
        "avet" => IndexKind::Avet,
        other => {
            return Err(ReplicaError::argument(format!(
                "unknown index {other:?}: expected eavt, aevt or avet"
            )))
        }
    };
    let forms = match parse(if components.trim().is_empty() {
        "[]"
    } else {
        components
    })? {
        Edn::Vector(items) => items,
        other => {
            return Err(ReplicaError::argument(format!(
                "components {other} are not an EDN vector such as [1 :person/name]"
            )))
        }
    };
    let components = index_components(db, index, &forms)?;
    let datoms: Vec<Datom> = db
        .datoms(index, &components)?
        .take(limit.unwrap_or(usize::MAX))
        .collect::<Result<_, _>>()?;
    Ok(match format {
        Format::Edn => Edn::Vector(datoms.iter().map(datom_to_edn).collect()).to_string(),
        Format::Json => {
            let items: Vec<String> = datoms.iter().map(datom_json).collect();
            format!("[{}]", items.join(","))
        }
    })
}

/// A datom as a JSON object `{"e", "a", "v", "type", "tx"}`, as `datoms query --json`
/// prints it.
fn datom_json(d: &Datom) -> String {
    format!(
        r#"{{"e":{},"a":{},"v":{},"type":{},"tx":{}}}"#,
        d.e,
        serde_json::Value::String(d.a.to_string()),
        QueryValue::from_value(d.v.clone()).to_json(),
        serde_json::Value::String(d.v.value_type().keyword().to_owned()),
        d.tx
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datoms_core::Schema;

    fn db() -> Result<Db, datoms_core::Error> {
        let schema = datoms_core::edn::parse_schema(
            "{:person/email {:db/unique :db.unique/identity} :person/friend {:db/valueType :db.type/ref}}",
        )?;
        Ok(Db::new(schema)
            .with_edn(
                r#"[{:db/id -1 :person/email "ann@x" :person/age 31 :person/friend -2}
                    {:db/id -2 :person/email "bo@x" :person/age 25}]"#,
            )?
            .db_after)
    }

    #[test]
    fn queries_take_edn_inputs_and_print_edn_or_json() -> Result<(), ReplicaError> {
        let db = db()?;
        let q =
            "[:find ?m :in $ ?min :where [?e :person/age ?a] [(> ?a ?min)] [?e :person/email ?m]]";
        assert_eq!(
            query(&db, q, &["30".into()], Format::Edn)?,
            r#"#{["ann@x"]}"#
        );
        assert_eq!(
            query(&db, q, &["20".into()], Format::Json)?,
            r#"[["ann@x"],["bo@x"]]"#
        );
        assert!(matches!(
            query(&db, q, &[], Format::Edn),
            Err(ReplicaError::Argument { .. })
        ));
        Ok(())
    }

    #[test]
    fn pull_resolves_lookup_refs_and_misses_give_nil() -> Result<(), ReplicaError> {
        let db = db()?;
        let got = pull(
            &db,
            "[:person/age {:person/friend [:person/email]}]",
            r#"[:person/email "ann@x"]"#,
            Format::Json,
        )?;
        assert_eq!(
            got,
            r#"{":person/age":31,":person/friend":{":person/email":"bo@x"}}"#
        );
        assert_eq!(
            pull(&db, "[*]", r#"[:person/email "nobody"]"#, Format::Edn)?,
            "nil"
        );
        // An id is pulled as it is, as in Datascript: `[*]` of an unused id is its id.
        assert_eq!(
            pull(&db, "[*]", "12345", Format::Json)?,
            r#"{":db/id":12345}"#
        );
        Ok(())
    }

    #[test]
    fn datoms_read_an_index_by_leading_components() -> Result<(), ReplicaError> {
        let db = db()?;
        let got = datoms(&db, "avet", r#"[:person/email "bo@x"]"#, None, Format::Json)?;
        assert!(
            got.starts_with(r#"[{"e":"#) && got.contains(r#""a":":person/email","v":"bo@x""#),
            "{got}"
        );
        assert_eq!(
            datoms(&db, "eavt", "[]", Some(1), Format::Edn)?
                .matches("#datom")
                .count(),
            1
        );
        assert!(matches!(
            datoms(&db, "vaet", "[]", None, Format::Edn),
            Err(ReplicaError::Argument { .. })
        ));
        assert!(datoms(&Db::new(Schema::new()), "eavt", "", None, Format::Edn)? == "[]");
        Ok(())
    }
}
