//! Datalog for `datoms query '[:find …]'` and `datoms pull`: the query engine of
//! datoms-core over a lazily restored db, so a query loads only the nodes it touches.

use datoms::edn::{parse, Edn};
use datoms::{Db, Input, Query, QueryValue};

use super::access::{Create, Opened};
use super::{CliError, Ctx, DbArgs};

/// True if `text` is a Datalog query (`[:find …]` or `{:find …}`) rather than index
/// components.
pub fn is_datalog(text: &str) -> bool {
    let find = |e: &Edn| matches!(e, Edn::Keyword(k) if k.as_str() == "find");
    match parse(text) {
        Ok(Edn::Vector(items)) => items.first().is_some_and(find),
        Ok(Edn::Map(pairs)) => pairs.iter().any(|(k, _)| find(k)),
        _ => false,
    }
}

/// How query results are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table with a header row of the `:find` elements.
    #[default]
    Table,
    /// EDN, as Datascript prints results.
    Edn,
}

/// Runs a Datalog query: every source of `:in` (`$`, `$name`) is the db at the head;
/// the other `:in` elements take the `--in` EDN values in order.
///
/// # Errors
/// A malformed query (naming the clause), too few or too many `--in` values, storage or
/// load errors.
pub async fn run_query(
    db_args: &DbArgs,
    text: &str,
    extra: &[String],
    format: Format,
    ctx: &Ctx,
) -> Result<(), CliError> {
    let query = Query::parse(text)?;
    let opened = Opened::open(db_args, Create::No, ctx).await?;
    let db = opened.lazy_db().await?;
    let specs = query.inputs();
    let wanted = specs.iter().filter(|s| !s.starts_with('$')).count();
    if wanted != extra.len() {
        return Err(CliError::Usage(format!(
            "the query's :in [{}] takes {wanted} value(s) besides its sources; {} given with --in",
            specs.join(" "),
            extra.len()
        )));
    }
    for value in extra {
        check_edn_value("--in", value)?;
    }
    let mut values = extra.iter();
    let inputs: Vec<Input<'_>> = specs
        .iter()
        .map(|s| match s.starts_with('$') {
            true => Input::Db(&db),
            false => Input::Edn(values.next().map_or("nil", String::as_str)),
        })
        .collect();
    let result = query.run(&inputs)?;
    let text = match (ctx.json, format) {
        (true, _) => result.to_json(),
        (false, Format::Table) => result.to_table(&query.columns()),
        (false, Format::Edn) => result.to_string(),
    };
    ctx.print(&format!("{}\n", text.trim_end()))
}

/// Checks that a command-line value is one EDN value and not a bare word: the shell
/// strips quotes, so `--in "Ann"` arrives as `Ann`, an EDN symbol. Says how to quote.
///
/// # Errors
/// [`CliError::Usage`] naming the flag and the text.
pub fn check_edn_value(flag: &str, text: &str) -> Result<Edn, CliError> {
    let hint = |what: &str| {
        CliError::Usage(format!(
            "{flag} {text}: {what}; a string needs its double quotes inside shell quotes: {flag} '\"{}\"'",
            text.trim().trim_matches('"')
        ))
    };
    match parse(text) {
        Ok(Edn::Symbol(_)) => Err(hint(
            "a bare word is an EDN symbol, not a string (the shell removed the quotes?)",
        )),
        Ok(form) => Ok(form),
        Err(e) => Err(hint(&format!("not one EDN value ({e})"))),
    }
}

/// Arguments of `datoms pull`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
datoms pull --db redb:people.datoms '[*]' 1\n  \
datoms pull --db redb:people.datoms '[:person/name {:person/friend [:person/name]}]' '[:person/email \"ann@example.com\"]'")]
pub struct PullArgs {
    #[command(flatten)]
    db: DbArgs,

    /// The pull pattern, in EDN, as Datascript writes it.
    #[arg(value_name = "PATTERN")]
    pattern: String,

    /// The entity: an id, a lookup ref `[:unique-attr value]` or an ident `:color/red`.
    #[arg(value_name = "ENTITY", allow_negative_numbers = true)]
    entity: String,
}

/// Runs `datoms pull`.
///
/// # Errors
/// A bad pattern or entity, storage or load errors.
pub async fn run_pull(args: PullArgs, ctx: &Ctx) -> Result<(), CliError> {
    let entity = check_edn_value("the entity", &args.entity)?;
    let opened = Opened::open(&args.db, Create::No, ctx).await?;
    let db = opened.lazy_db().await?;
    let eid = resolve(&db, &entity)?;
    let value = match eid {
        Some(e) => db.pull(&args.pattern, e)?,
        None => QueryValue::Nil,
    };
    let text = if ctx.json {
        value.to_json()
    } else {
        value.to_edn().to_string()
    };
    ctx.print(&format!("{text}\n"))
}

/// An entity id from an EDN id, lookup ref or ident (`None` when it finds nothing).
fn resolve(db: &Db, form: &Edn) -> Result<Option<u64>, CliError> {
    match form {
        Edn::Int(i) if *i > 0 => Ok(Some(*i as u64)),
        Edn::Vector(items) => match items.as_slice() {
            [Edn::Keyword(_), Edn::Symbol(word)] => Err(CliError::Usage(format!(
                "lookup ref `{form}`: {word} is an EDN symbol, not a string; quote it inside shell quotes: '[{} \"{word}\"]'",
                items[0]
            ))),
            // Through entid, so that `[:attr nil]` finds nothing, as in Datascript.
            [Edn::Keyword(_), _] => Ok(db.entid(&QueryValue::from_edn(form)?)?),
            _ => Err(CliError::Usage(format!(
                "`{form}` is not a lookup ref [:attr value]"
            ))),
        },
        // An ident names the entity whose :db/ident it is, as Datascript's pull.
        Edn::Keyword(_) => Ok(db.entid(&QueryValue::from_edn(form)?)?),
        _ => Err(CliError::Usage(format!(
            "`{form}` is not an entity id, a lookup ref or an ident"
        ))),
    }
}
