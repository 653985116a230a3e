//! `datoms query`: a Datalog query (`[:find …]`, see [`super::datalog`]), or index access
//! as Datascript's `(d/datoms db :eavt e a)` — the datoms of one index matching leading
//! components, in index order.

use std::io::Write;

use datoms::edn::{datom_to_edn, index_components, parse, Edn};
use datoms::{Component, Datom, Db, IndexKind, QueryValue};
use serde::Serialize;

use super::access::{Create, Opened};
use super::{CliError, Ctx, DbArgs};

/// Arguments of `datoms query`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
datoms query --db redb:people.datoms '[:find ?n :where [?e :person/age ?a] [(> ?a 30)] [?e :person/name ?n]]'\n  \
datoms query --db redb:people.datoms '[:find ?e . :in $ ?n :where [?e :person/name ?n]]' --in '\"Ann\"'\n  \
datoms query --db redb:people.datoms '[:eavt 1 :person/name]'\n  \
datoms query --db redb:people.datoms --index avet :person/age 42\n  \
datoms query --db redb:people.datoms --index eavt '[:person/email \"ann@example.com\"]'\n\
Components are EDN values in index order: eavt = e a v tx, aevt = a e v tx, avet = a v e tx. \
An entity may be a lookup ref [:unique-attr value]. Values of ref attributes are entity ids.")]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// The index to read. Without it, the components are one EDN vector that starts with
    /// the index: '[:eavt 1 :person/name]'.
    #[arg(long, value_enum, value_name = "INDEX")]
    index: Option<IndexArg>,

    /// Print at most this many datoms.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,

    /// A Datalog query's `:in` values besides its sources, in order, each an EDN value
    /// (repeat the flag).
    #[arg(long = "in", value_name = "EDN", allow_hyphen_values = true)]
    inputs: Vec<String>,

    /// How to print Datalog results (`--json` prints JSON).
    #[arg(long, value_enum, default_value_t)]
    format: super::datalog::Format,

    /// Leading components, each an EDN value (or, without --index, one EDN vector).
    #[arg(value_name = "COMPONENTS", allow_negative_numbers = true)]
    components: Vec<String>,
}

/// The index names accepted by `--index`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum IndexArg {
    Eavt,
    Aevt,
    Avet,
}

impl From<IndexArg> for IndexKind {
    fn from(i: IndexArg) -> IndexKind {
        match i {
            IndexArg::Eavt => IndexKind::Eavt,
            IndexArg::Aevt => IndexKind::Aevt,
            IndexArg::Avet => IndexKind::Avet,
        }
    }
}

/// One datom as JSON. `v` follows the scheme of query results
/// ([`datoms::QueryValue::to_json`]): ids for refs, `":ns/name"` for keywords,
/// `{"#inst": …}`, `{"#uuid": …}`, `{"#bytes": …}` for the types JSON lacks; `type`
/// names the value type besides.
#[derive(Serialize)]
pub(super) struct DatomJson {
    e: u64,
    a: String,
    v: serde_json::Value,
    #[serde(rename = "type")]
    value_type: &'static str,
    tx: u64,
}

/// A datom as JSON.
pub(super) fn datom_json(d: &Datom) -> Result<DatomJson, CliError> {
    let v = serde_json::from_str(&QueryValue::from_value(d.v.clone()).to_json())?;
    Ok(DatomJson {
        e: d.e,
        a: d.a.to_string(),
        v,
        value_type: d.v.value_type().keyword(),
        tx: d.tx,
    })
}

/// Runs `datoms query`.
///
/// # Errors
/// Components that do not parse or are not in index order; storage errors.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    if let (None, [text]) = (args.index, args.components.as_slice()) {
        if super::datalog::is_datalog(text) {
            if args.limit.is_some() {
                return Err(CliError::Usage(
                    "--limit is for index queries ('[:eavt …]'); a Datalog query limits its results itself"
                        .into(),
                ));
            }
            return super::datalog::run_query(&args.db, text, &args.inputs, args.format, ctx).await;
        }
    }
    if !args.inputs.is_empty() {
        return Err(CliError::Usage(
            "--in is for Datalog queries ('[:find … :in $ ?x …]'); an index query takes its components as arguments: '[:avet :person/name \"Ann\"]'"
                .into(),
        ));
    }
    let (index, forms) = read_components(&args)?;
    let opened = Opened::open(&args.db, Create::No, ctx).await?;
    let db = opened.lazy_db().await?;
    let components = to_components(&db, index, &forms)?;
    if let (IndexKind::Avet, Some(Component::A(attr))) = (index, components.first()) {
        if !db.schema().in_avet(attr) {
            return Err(CliError::NotInAvet { attr: attr.clone() });
        }
    }
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if ctx.json {
        out.write_all(b"[").map_err(CliError::Output)?;
    }
    for (i, datom) in db.datoms(index, &components)?.take(limit).enumerate() {
        let datom = datom?;
        if ctx.json {
            let sep = if i == 0 { "\n  " } else { ",\n  " };
            out.write_all(sep.as_bytes()).map_err(CliError::Output)?;
            serde_json::to_writer(&mut out, &datom_json(&datom)?)?;
        } else {
            writeln!(out, "{}", datom_to_edn(&datom)).map_err(CliError::Output)?;
        }
    }
    if ctx.json {
        out.write_all(b"\n]\n").map_err(CliError::Output)?;
    }
    out.flush().map_err(CliError::Output)
}

/// The index and the component forms, from `--index` and the arguments, or from one
/// `[:eavt …]` vector.
fn read_components(args: &Args) -> Result<(IndexKind, Vec<Edn>), CliError> {
    let parse_arg =
        |text: &str| parse(text).map_err(|e| CliError::Usage(format!("component {text:?}: {e}")));
    if let Some(index) = args.index {
        let forms = args
            .components
            .iter()
            .map(|c| parse_arg(c))
            .collect::<Result<_, _>>()?;
        return Ok((index.into(), forms));
    }
    let usage = || {
        CliError::Usage(
            "name the index: --index eavt|aevt|avet COMPONENTS…, or one vector '[:eavt COMPONENTS…]'"
                .into(),
        )
    };
    let [text] = args.components.as_slice() else {
        return Err(usage());
    };
    let Edn::Vector(mut items) = parse_arg(text)? else {
        return Err(usage());
    };
    if items.is_empty() {
        return Err(usage());
    }
    let index = match items.remove(0) {
        Edn::Keyword(k) if k.as_str() == "eavt" => IndexKind::Eavt,
        Edn::Keyword(k) if k.as_str() == "aevt" => IndexKind::Aevt,
        Edn::Keyword(k) if k.as_str() == "avet" => IndexKind::Avet,
        _ => return Err(usage()),
    };
    Ok((index, items))
}

/// Turns EDN forms into index components, in the order `index` takes them (see
/// [`datoms::edn::index_components`]).
fn to_components(db: &Db, index: IndexKind, forms: &[Edn]) -> Result<Vec<Component>, CliError> {
    Ok(index_components(db, index, forms)?)
}
