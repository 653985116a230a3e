//! Datalog for `datoms query '[:find …]'` and `datoms pull`: the query engine of
//! datoms-core over a lazily restored db, so a query loads only the nodes it touches.

use datoms::edn::{parse, Edn};
use datoms::{Db, Input, Query, QueryValue};

use super::access::{Create, Opened, ViewArgs};
use super::output::{edn_fault, quote, quoted_whole};
use super::{CliError, Ctx, DbArgs};

/// True if `text` is a Datalog query (`[:find …]` or `{:find …}`) rather than index
/// components.
pub fn is_datalog(text: &str) -> bool {
    let find = |e: &Edn| matches!(e, Edn::Keyword(k) if k.as_str() == "find");
    match parse(text) {
        Ok(Edn::Vector(items)) => items.first().is_some_and(find),
        Ok(Edn::Map(pairs)) => pairs.iter().any(|(k, _)| find(k)),
        // Text that does not parse but starts as a query is a broken query: its error
        // should be the query parser's, not the index reader's.
        Ok(_) => false,
        Err(_) => {
            let t = text.trim_start();
            ["[:find", "{:find"].iter().any(|p| t.starts_with(p))
        }
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

/// A further source of a query, `--source '$name=URL'` or `'$name=URL#HEAD'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The source's name in `:in`, with its `$`.
    pub name: String,
    /// Where its db lives.
    pub url: String,
    /// Its head (default `main`).
    pub head: String,
}

/// Parses `--source '$name=URL[#HEAD]'`.
///
/// # Errors
/// A message naming what is wrong, for clap.
pub fn source(text: &str) -> Result<Source, String> {
    let (name, rest) = text.split_once('=').ok_or_else(|| {
        format!("{text:?}: a source is $name=URL (or $name=URL#HEAD), e.g. '$2=redb:other.datoms'")
    })?;
    if !name.starts_with('$') || name.len() < 2 || name.contains(char::is_whitespace) {
        return Err(format!(
            "{name:?}: a source's name is $ and a word, as in the query's :in ($2, $old)"
        ));
    }
    let (url, head) = rest.rsplit_once('#').unwrap_or((rest, "main"));
    if url.is_empty() || head.is_empty() {
        return Err(format!("{text:?}: the URL and the head cannot be empty"));
    }
    Ok(Source {
        name: name.to_owned(),
        url: url.to_owned(),
        head: head.to_owned(),
    })
}

/// What a Datalog query's sources read besides the head's db.
#[derive(Clone, Copy, Debug)]
pub struct SourceArgs<'a> {
    /// `--source` dbs, by the name the query's `:in` gives them.
    pub named: &'a [Source],
    /// `--history`: every other source is the head's history, not its db.
    pub history: bool,
}

/// Runs a Datalog query: a source of `:in` named by a `--source` is that db; every
/// other source (`$`, `$name`) is the db at the head, or its history with `--history`.
/// The other `:in` elements take the `--in` EDN values in order.
///
/// # Errors
/// A malformed query (naming the clause), too few or too many `--in` values, a
/// `--source` the query does not name, storage or load errors.
pub async fn run_query(
    db_args: &DbArgs,
    view: &ViewArgs,
    text: &str,
    extra: &[String],
    sources: SourceArgs<'_>,
    output: Output,
    ctx: &Ctx,
) -> Result<(), CliError> {
    let SourceArgs {
        named: sources,
        history,
    } = sources;
    let format = output.format;
    let query = Query::parse(text)?;
    let specs = query.inputs();
    for s in sources {
        if !specs.contains(&s.name) {
            return Err(CliError::Usage(format!(
                "--source {}: the query's :in [{}] has no source {}",
                s.name,
                specs.join(" "),
                s.name
            )));
        }
    }
    let opened = Opened::open(db_args, Create::No, ctx).await?;
    let db = opened.view_db(view).await?;
    let history = match history {
        true => Some(opened.view_history(view).await?),
        false => None,
    };
    let mut others = Vec::with_capacity(sources.len());
    for s in sources {
        let args = DbArgs {
            db: s.url.clone(),
            head: s.head.clone(),
            lock_wait: db_args.lock_wait,
        };
        let other = Opened::open(&args, Create::No, ctx).await?;
        others.push((s.name.as_str(), other.lazy_db().await?));
    }
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
            true => match (others.iter().find(|(name, _)| name == s), &history) {
                (Some((_, other)), _) => Input::Db(other),
                (None, Some(history)) => Input::History(history),
                (None, None) => Input::Db(&db),
            },
            false => Input::Edn(values.next().map_or("nil", String::as_str)),
        })
        .collect();
    let (result, plan) = if output.explain {
        let explained = query.explain(&inputs)?;
        let plan = explained.to_string();
        (explained.result, Some(plan))
    } else {
        (query.run(&inputs)?, None)
    };
    let text = match (ctx.json, format) {
        (true, _) => result.to_json(),
        (false, Format::Table) => result.to_table(&query.columns()),
        (false, Format::Edn) => result.to_string(),
    };
    match plan {
        Some(plan) if ctx.json => {
            let result: serde_json::Value = serde_json::from_str(&text)?;
            let lines: Vec<&str> = plan.lines().collect();
            let out = serde_json::json!({ "plan": lines, "result": result });
            ctx.print(&format!("{out}\n"))
        }
        Some(plan) => ctx.print(&format!("{plan}\n{}\n", text.trim_end())),
        None => ctx.print(&format!("{}\n", text.trim_end())),
    }
}

/// How `run_query` prints.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// The result's format.
    pub format: Format,
    /// Print the plan first ([`Query::explain`]).
    pub explain: bool,
}

/// Checks that a command-line value is one EDN value and not a bare word: the shell
/// strips quotes, so `--in "Ann"` arrives as `Ann`, an EDN symbol. Says how to quote.
///
/// # Errors
/// [`CliError::Usage`] naming the flag and the text.
pub fn check_edn_value(flag: &str, text: &str) -> Result<Edn, CliError> {
    let hint = |what: &str, at: Option<(usize, usize)>| {
        let quoted = quote(text, at);
        let example = if quoted_whole(text) {
            format!("'\"{}\"'", text.trim().trim_matches('"'))
        } else {
            "'\"…\"'".to_owned()
        };
        CliError::Usage(format!(
            "{flag} {quoted}: {what}; a string needs its double quotes inside shell quotes: {flag} {example}"
        ))
    };
    match parse(text) {
        Ok(Edn::Symbol(_)) => Err(hint(
            "a bare word is an EDN symbol, not a string (the shell removed the quotes?)",
            None,
        )),
        Ok(form) => Ok(form),
        Err(e) => Err(hint(&format!("not one EDN value ({e})"), edn_fault(&e))),
    }
}

/// Arguments of `datoms pull`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
datoms pull --db redb:people.datoms '[*]' 1\n  \
datoms pull --db redb:people.datoms '[:person/name {:person/friend [:person/name]}]' '[:person/email \"ann@example.com\"]'\n  \
datoms pull --db redb:people.datoms '[:person/name]' 1 2 3\n\
With several entities the answer is a vector of their pulls, in order (Datascript's pull-many); \
an entity that is not there pulls as nil.")]
pub struct PullArgs {
    #[command(flatten)]
    db: DbArgs,

    #[command(flatten)]
    view: ViewArgs,

    /// The pull pattern, in EDN, as Datascript writes it.
    #[arg(value_name = "PATTERN")]
    pattern: String,

    /// The entity: an id, a lookup ref `[:unique-attr value]` or an ident `:color/red`.
    /// Several entities pull as a vector, in order.
    #[arg(value_name = "ENTITY", allow_negative_numbers = true, required = true, num_args = 1..)]
    entities: Vec<String>,
}

/// Runs `datoms pull`.
///
/// # Errors
/// A bad pattern or entity, storage or load errors.
pub async fn run_pull(args: PullArgs, ctx: &Ctx) -> Result<(), CliError> {
    let entities = args
        .entities
        .iter()
        .map(|text| check_edn_value("the entity", text))
        .collect::<Result<Vec<_>, _>>()?;
    let opened = Opened::open(&args.db, Create::No, ctx).await?;
    let db = opened.view_db(&args.view).await?;
    let mut pulled = Vec::with_capacity(entities.len());
    for entity in &entities {
        pulled.push(match resolve(&db, entity)? {
            Some(e) => db.pull(&args.pattern, e)?,
            None => QueryValue::Nil,
        });
    }
    let value = match <[QueryValue; 1]>::try_from(pulled) {
        Ok([one]) => one,
        Err(many) => QueryValue::Vector(many),
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
