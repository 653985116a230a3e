//! `datoms merge THEIRS [--into OURS] [--strategy ours|theirs|fail]`: a three-way merge
//! of a branch (or commit) into a head (see [`datoms::storage::merge`]). Conflicts are
//! listed, never resolved silently: under the default strategy the merge fails with
//! every conflict and nothing is written.

use datoms::merge::{Conflict, Side, Strategy};
use datoms::storage::{MergeKind, MergeOutcome};
use datoms::{Address, QueryValue, StoreOptions, Value};
use serde::Serialize;

use super::access::{Create, Opened};
use super::output::{short, Ctx};
use super::{CliError, DbArgs};

/// Arguments of `datoms merge`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
datoms merge --db redb:people.datoms draft                    # draft into main\n  \
datoms merge --db redb:people.datoms main --into draft        # main into draft\n  \
datoms merge --db redb:people.datoms draft --strategy theirs  # draft wins conflicts\n\
THEIRS is a branch name, or a commit (its address, or a prefix of a commit of any branch's \
history as `datoms log` prints it). A merge of a commit already in the head's history does \
nothing; onto a head in THEIRS' history it is a fast-forward; otherwise a merge commit with two \
parents is stored and the head moves to it by compare-and-swap.")]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// The branch or commit to merge.
    #[arg(value_name = "THEIRS")]
    theirs: String,

    /// The branch to merge into (default: --head, which defaults to main).
    #[arg(long, value_name = "OURS", value_parser = super::head_name)]
    into: Option<String>,

    /// What to do with conflicts: fail listing them (nothing is written), or take our
    /// or their state of every datom a conflict involves.
    #[arg(long, value_enum, default_value_t = StrategyArg::Fail)]
    strategy: StrategyArg,
}

/// `--strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StrategyArg {
    /// Fail with the list of conflicts.
    Fail,
    /// Our side wins every conflict.
    Ours,
    /// Their side wins every conflict.
    Theirs,
}

#[derive(Serialize)]
struct Report {
    /// `up_to_date`, `fast_forward` or `merged`.
    outcome: &'static str,
    into: String,
    theirs: String,
    commit: String,
    base: String,
    added: usize,
    retracted: usize,
    renumbered: u64,
    resolved: Vec<ConflictJson>,
}

/// A conflict as JSON: its kind, entity, attribute and both sides' values.
#[derive(Serialize)]
pub(super) struct ConflictJson {
    kind: &'static str,
    entity: u64,
    attribute: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ours: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    theirs: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retracted_by: Option<String>,
    /// The side taken (for a resolved conflict).
    #[serde(skip_serializing_if = "Option::is_none")]
    taken: Option<String>,
    message: String,
}

fn json_value(v: &Value) -> serde_json::Value {
    serde_json::from_str(&QueryValue::from_value(v.clone()).to_json())
        .unwrap_or_else(|_| serde_json::Value::String(format!("{v:?}")))
}

/// A conflict as JSON, with the side taken if it was resolved.
pub(super) fn conflict_json(c: &Conflict, taken: Option<Side>) -> ConflictJson {
    let (ours, theirs, retracted_by) = match c {
        Conflict::CardinalityOne { ours, theirs, .. } => {
            (Some(json_value(ours)), Some(json_value(theirs)), None)
        }
        Conflict::Unique { ours, theirs, .. } => {
            (Some((*ours).into()), Some((*theirs).into()), None)
        }
        Conflict::RetractedEntity { retracted_by, .. } => {
            (None, None, Some(retracted_by.to_string()))
        }
    };
    ConflictJson {
        kind: c.kind(),
        entity: c.entity(),
        attribute: c.attribute().map(ToString::to_string),
        ours,
        theirs,
        retracted_by,
        taken: taken.map(|s| s.to_string()),
        message: c.to_string(),
    }
}

/// Runs `datoms merge`.
///
/// # Errors
/// [`CliError::Usage`] for a THEIRS that names no branch or commit; the merge's
/// conflicts under `--strategy fail` (as a database error of kind `merge_conflicts`,
/// nothing written); [`datoms::StorageError::Unrelated`]; a head another writer moved.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let mut db = args.db.clone();
    if let Some(into) = &args.into {
        db.head.clone_from(into);
    }
    let opened = Opened::open(&db, Create::Existing, ctx).await?;
    opened.head_commit().await?;
    let theirs = resolve_theirs(&opened, &args.theirs).await?;
    let strategy = match args.strategy {
        StrategyArg::Fail => Strategy::Fail,
        StrategyArg::Ours => Strategy::Ours,
        StrategyArg::Theirs => Strategy::Theirs,
    };
    let out = datoms::storage::merge(
        opened.storage().clone(),
        &opened.head,
        theirs,
        strategy,
        StoreOptions::default(),
    )
    .await?;
    print(&opened, &args.theirs, &out, ctx)
}

fn print(opened: &Opened, theirs: &str, out: &MergeOutcome, ctx: &Ctx) -> Result<(), CliError> {
    let outcome = match out.kind {
        MergeKind::UpToDate => "up_to_date",
        MergeKind::FastForward => "fast_forward",
        MergeKind::Merged => "merged",
    };
    if ctx.json {
        return ctx.print_json(&Report {
            outcome,
            into: opened.head.clone(),
            theirs: theirs.to_owned(),
            commit: out.commit.to_hex(),
            base: out.base.to_hex(),
            added: out.applied.added.len(),
            retracted: out.applied.retracted.len(),
            renumbered: out.renumbered,
            resolved: out
                .resolved
                .iter()
                .map(|(c, side)| conflict_json(c, Some(*side)))
                .collect(),
        });
    }
    let into = &opened.head;
    let mut text = match out.kind {
        MergeKind::UpToDate => format!("{into} is up to date with {theirs}\n"),
        MergeKind::FastForward => format!(
            "fast-forwarded {into} to {theirs}'s commit {}\n",
            short(&out.commit)
        ),
        MergeKind::Merged => format!(
            "merged {theirs} into {into}: commit {} (common ancestor {}), {} datom(s) added, {} retracted\n",
            short(&out.commit),
            short(&out.base),
            out.applied.added.len(),
            out.applied.retracted.len()
        ),
    };
    if out.renumbered > 0 {
        text.push_str(&format!(
            "entities {theirs} made were renumbered by +{} (both sides made entities)\n",
            out.renumbered
        ));
    }
    for (c, side) in &out.resolved {
        text.push_str(&format!("  conflict resolved ({side}): {c}\n"));
    }
    ctx.print(&text)
}

/// THEIRS: a branch, a full commit address, or a prefix of a commit of some branch's
/// history.
async fn resolve_theirs(opened: &Opened, text: &str) -> Result<Address, CliError> {
    if let Some(head) = opened.storage().get_head(text).await? {
        return Ok(head.commit);
    }
    if text.len() == 64 {
        if let Ok(address) = text.parse::<Address>() {
            return Ok(address);
        }
    }
    let mut found = Vec::new();
    for (name, _) in opened.storage().list_heads().await? {
        let on = Opened::wrap(opened.url.clone(), name, opened.storage().clone());
        if let Ok(address) = on.resolve_commit(text).await {
            if !found.contains(&address) {
                found.push(address);
            }
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(CliError::Usage(format!(
            "{text:?} is neither a branch nor a commit of any branch in {}",
            opened.url
        ))),
        _ => Err(CliError::Usage(format!(
            "{} commits start with {text}: give more digits",
            found.len()
        ))),
    }
}
