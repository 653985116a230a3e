//! `datoms query`: a Datalog query (`[:find …]`, see [`super::datalog`]), or index access
//! as Datascript's `(d/datoms db :eavt e a)` — the datoms of one index matching leading
//! components, in index order.

use std::io::Write;

use datoms::edn::{datom_to_edn, index_components, parse, Edn};
use datoms::{Component, Datom, Db, IndexKind, QueryValue, Value};
use serde::Serialize;

use super::access::{Create, Opened};
use super::output::{edn_fault, quote};
use super::{CliError, Ctx, DbArgs};

/// Arguments of `datoms query`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
datoms query --db redb:people.datoms '[:find ?n :where [?e :person/age ?a] [(> ?a 30)] [?e :person/name ?n]]'\n  \
datoms query --db redb:people.datoms '[:find ?e . :in $ ?n :where [?e :person/name ?n]]' --in '\"Ann\"'\n  \
datoms query --db redb:people.datoms --explain '[:find ?e ?a :where [?e :person/name \"Ann\"] [?e :person/age ?a]]'\n  \
datoms query --db redb:people.datoms '[:eavt 1 :person/name]'\n  \
datoms query --db redb:people.datoms --index avet :person/age 42\n  \
datoms query --db redb:people.datoms --index eavt '[:person/email \"ann@example.com\"]'\n  \
datoms query --db redb:people.datoms --index avet --seek :person/age 40\n  \
datoms datoms --db redb:people.datoms --index avet --start 30 --end 40 :person/age\n\
--seek reads from the components to the end of the index (seek-datoms), --rseek from them back to \
its start (rseek-datoms); --start/--end read one attribute's AVET datoms with start <= v <= end \
(index-range; either end may be left open). \
Components are EDN values in index order: eavt = e a v tx, aevt = a e v tx, avet = a v e tx. \
An entity may be a lookup ref [:unique-attr value]. Values of ref attributes are entity ids.")]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    #[command(flatten)]
    view: super::access::ViewArgs,

    /// The index to read. Without it, the components are one EDN vector that starts with
    /// the index: '[:eavt 1 :person/name]'.
    #[arg(long, value_enum, value_name = "INDEX")]
    index: Option<IndexArg>,

    /// Read from the components to the end of the index, as Datascript's `seek-datoms`.
    #[arg(long, conflicts_with_all = ["rseek", "start", "end"])]
    seek: bool,

    /// Read from the components back to the start of the index, as Datascript's
    /// `rseek-datoms`.
    #[arg(long, conflicts_with_all = ["start", "end"])]
    rseek: bool,

    /// With --index avet and one attribute: its datoms with value ≥ this EDN value
    /// (Datascript's `index-range`).
    #[arg(long, value_name = "EDN", allow_hyphen_values = true)]
    start: Option<String>,

    /// With --index avet and one attribute: its datoms with value ≤ this EDN value.
    #[arg(long, value_name = "EDN", allow_hyphen_values = true)]
    end: Option<String>,

    /// Print at most this many datoms.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,

    /// A Datalog query's `:in` values besides its sources, in order, each an EDN value
    /// (repeat the flag).
    #[arg(long = "in", value_name = "EDN", allow_hyphen_values = true)]
    inputs: Vec<String>,

    /// A Datalog query's source besides the head's db: `'$name=URL'` or
    /// `'$name=URL#HEAD'` (repeat the flag). Sources no flag names are the db at the head.
    #[arg(long = "source", value_name = "$NAME=URL", value_parser = super::datalog::source)]
    sources: Vec<super::datalog::Source>,

    /// A Datalog query reads the head's history (every assertion and retraction, as
    /// Datomic's history db) instead of its db: patterns may bind a fifth position,
    /// `added` (`[?e ?a ?v ?tx ?added]`). With --as-of, the history up to that commit.
    /// Sources named by --source stay dbs.
    #[arg(long)]
    history: bool,

    /// How to print Datalog results (`--json` prints JSON).
    #[arg(long, value_enum, default_value_t)]
    format: super::datalog::Format,

    /// Print the plan a Datalog query ran with (clause order, index reads chosen,
    /// estimated and actual sizes) before its result.
    #[arg(long)]
    explain: bool,

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
            if args.seek || args.rseek || args.start.is_some() || args.end.is_some() {
                return Err(CliError::Usage(
                    "--seek, --rseek, --start and --end read an index ('--index avet :attr'); a Datalog query takes none of them"
                        .into(),
                ));
            }
            if args.limit.is_some() {
                return Err(CliError::Usage(
                    "--limit is for index queries ('[:eavt …]'); a Datalog query limits its results itself"
                        .into(),
                ));
            }
            return super::datalog::run_query(
                &args.db,
                &args.view,
                text,
                &args.inputs,
                super::datalog::SourceArgs {
                    named: &args.sources,
                    history: args.history,
                },
                super::datalog::Output {
                    format: args.format,
                    explain: args.explain,
                },
                ctx,
            )
            .await;
        }
    }
    if args.history {
        return Err(CliError::Usage(
            "--history is for Datalog queries ('[:find ?v ?added :where [?e :attr ?v _ ?added]]')"
                .into(),
        ));
    }
    if args.explain {
        return Err(CliError::Usage(
            "--explain is for Datalog queries ('[:find …]'); an index query reads one index".into(),
        ));
    }
    if !args.sources.is_empty() {
        return Err(CliError::Usage(
            "--source is for Datalog queries ('[:find … :in $ $2 …]')".into(),
        ));
    }
    if !args.inputs.is_empty() {
        return Err(CliError::Usage(
            "--in is for Datalog queries ('[:find … :in $ ?x …]'); an index query takes its components as arguments: '[:avet :person/name \"Ann\"]'"
                .into(),
        ));
    }
    let (index, forms) = read_components(&args)?;
    let opened = Opened::open(&args.db, Create::No, ctx).await?;
    if args.view.since.is_some() {
        // What changed since: assertions and retractions, not just what the filtered
        // db of a Datalog query shows.
        let db = opened.as_of_db(&args.view).await?;
        let components = to_components(&db, index, &forms)?;
        let changed = opened.since(&args.view, &db).await?.unwrap_or_default();
        return print_changes(index, &components, changed, args.limit, ctx);
    }
    let db = opened.view_db(&args.view).await?;
    let components = to_components(&db, index, &forms)?;
    if let (IndexKind::Avet, Some(Component::A(attr))) = (index, components.first()) {
        if !db.schema().in_avet(attr) {
            return Err(CliError::NotInAvet { attr: attr.clone() });
        }
    }
    let limit = args.limit.unwrap_or(usize::MAX);
    let read: Box<dyn Iterator<Item = Result<Datom, datoms::Error>>> =
        if args.start.is_some() || args.end.is_some() {
            let (IndexKind::Avet, [Component::A(attr)]) = (index, components.as_slice()) else {
                return Err(CliError::Usage(
                "--start/--end read one attribute's values: --index avet --start V --end V :attr"
                    .into(),
            ));
            };
            let bound = |text: &Option<String>| {
                text.as_deref()
                    .map(|t| range_value(&db, attr, t))
                    .transpose()
            };
            let (start, end) = (bound(&args.start)?, bound(&args.end)?);
            Box::new(db.index_range(attr, start.as_ref(), end.as_ref())?)
        } else if args.seek {
            Box::new(db.seek_datoms(index, &components)?)
        } else if args.rseek {
            Box::new(db.rseek_datoms(index, &components)?)
        } else {
            Box::new(db.datoms(index, &components)?)
        };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if ctx.json {
        out.write_all(b"[").map_err(CliError::Output)?;
    }
    for (i, datom) in read.take(limit).enumerate() {
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

/// With `--since`: the datoms asserted and retracted since, that match the leading
/// components, in index order (a retraction before an assertion of the same datom).
fn print_changes(
    index: IndexKind,
    components: &[Component],
    changed: datoms::Diff,
    limit: Option<usize>,
    ctx: &Ctx,
) -> Result<(), CliError> {
    let mut all: Vec<Datom> = changed
        .retracted
        .into_iter()
        .chain(changed.added)
        .filter(|d| index.cmp_prefix(d, components) == std::cmp::Ordering::Equal)
        .collect();
    all.sort_by(|x, y| index.cmp(x, y).then(x.added.cmp(&y.added)));
    all.truncate(limit.unwrap_or(usize::MAX));
    if ctx.json {
        #[derive(Serialize)]
        struct Change {
            #[serde(flatten)]
            datom: DatomJson,
            added: bool,
        }
        let docs = all
            .iter()
            .map(|d| {
                Ok(Change {
                    datom: datom_json(d)?,
                    added: d.added,
                })
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        return ctx.print_json(&docs);
    }
    let mut out = String::new();
    for d in &all {
        out.push_str(&datom_to_edn(d).to_string());
        out.push('\n');
    }
    ctx.print(&out)
}

/// The index and the component forms, from `--index` and the arguments, or from one
/// `[:eavt …]` vector.
fn read_components(args: &Args) -> Result<(IndexKind, Vec<Edn>), CliError> {
    let parse_arg = |text: &str| {
        parse(text)
            .map_err(|e| CliError::Usage(format!("component {}: {e}", quote(text, edn_fault(&e)))))
    };
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

/// A bound of `--start`/`--end`: an EDN value, read as `to_components` reads a value
/// (under a ref attribute an entity).
fn range_value(db: &Db, attr: &datoms::Keyword, text: &str) -> Result<Value, CliError> {
    let form = parse(text).map_err(|e| {
        CliError::Usage(format!("--start/--end {}: {e}", quote(text, edn_fault(&e))))
    })?;
    let forms = [Edn::Keyword(attr.clone()), form];
    match to_components(db, IndexKind::Avet, &forms)?.pop() {
        Some(Component::V(v)) => Ok(v),
        _ => Err(CliError::Usage(format!(
            "--start/--end {} is not a value",
            quote(text, None)
        ))),
    }
}
