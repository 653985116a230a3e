//! `datoms verify`: fetch every node reachable from the head commit (or from every commit
//! of its history) and check it, and decode the commits' tx logs, so corruption is found
//! before a replica needs the node or replays the log. Then check the head's datoms
//! against its schema and id counters ([`datoms::check`]: value types, cardinality one,
//! uniqueness, ids within the counters, refs that lead nowhere) and report every
//! violation.

use std::time::Instant;

use datoms::storage::large::decode_fetching;
use datoms::{IndexKind, Violation};
use serde::Serialize;

use super::access::{CommitWalk, Create, Opened};
use super::output::{bytes, short, thousands, Ctx, RootsJson};
use super::walk::{slot, walk};
use super::{CliError, DbArgs};

/// Arguments of `datoms verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exits with status 1 when the check fails, naming every corrupt, missing \
or misplaced node (its full address, index, level and parent; the nodes below a damaged \
one cannot be reached, so they are not named) and ending with the first. Then checks the \
head's datoms against its schema and id counters and lists every violation (status 1). \
A ref to an entity that holds no datom is a warning (a transaction can leave one \
behind); --strict makes it a violation too."
)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// Also check every older commit of the head's history and the trees they name
    /// (nodes shared between commits are checked once).
    #[arg(long)]
    history: bool,

    /// Count refs to entities that hold no datom as violations, not warnings.
    #[arg(long)]
    strict: bool,
}

/// A violation or warning as JSON.
#[derive(Serialize)]
struct Finding {
    kind: &'static str,
    message: String,
}

impl From<&Violation> for Finding {
    fn from(v: &Violation) -> Finding {
        Finding {
            kind: v.kind(),
            message: v.to_string(),
        }
    }
}

#[derive(Serialize)]
struct Report {
    ok: bool,
    head: String,
    commit: String,
    /// The head's index roots: equal roots, equal db.
    roots: Option<RootsJson>,
    commits_checked: u64,
    nodes: u64,
    bytes: u64,
    round_trips: u64,
    datoms: [u64; 3],
    /// Datoms checked against the schema and the id counters.
    datoms_checked: u64,
    warnings: Vec<Finding>,
    seconds: f64,
}

/// Lists every damaged node the walk found (text output; JSON carries the error alone)
/// and gives the first as the command's error, with the count.
///
/// # Errors
/// Writing the list.
fn damaged(
    name: &str,
    head: &datoms::Address,
    mut faults: Vec<CliError>,
    ctx: &Ctx,
) -> Result<CliError, CliError> {
    let n = faults.len();
    if !ctx.json {
        let mut text = format!(
            "FAILED: head {name} at commit {}: {} damaged node{}\n",
            short(head),
            thousands(n as u64),
            if n == 1 { "" } else { "s" }
        );
        for f in &faults {
            text.push_str(&format!("  damaged: {f}\n"));
        }
        ctx.print(&text)?;
    }
    let first = faults.swap_remove(0);
    Ok(if n == 1 {
        first
    } else {
        first.at(format!("the first of {n} damaged nodes"))
    })
}

/// Runs `datoms verify`.
///
/// # Errors
/// The first corrupt, missing or misplaced node or commit, named by address (after every
/// damaged node is listed).
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let started = Instant::now();
    let opened = Opened::open(&args.db, Create::No, ctx).await?;
    let head = opened.head_commit().await?;
    let mut roots = Vec::new();
    let mut head_roots = None;
    let mut datoms = [0u64; 3];
    let mut commits_checked = 0u64;
    let mut walk_commits = CommitWalk::new(head);
    while let Some((address, commit, _)) = walk_commits
        .next(&opened)
        .await
        .map_err(|e| e.at(format!("commit chain of head {:?}", opened.head)))?
    {
        commits_checked += 1;
        // Decoding a commit leaves its tx log encoded: decode it here to check it too.
        decode_fetching(&**opened.storage(), || commit.log_entries())
            .await
            .map_err(|e| CliError::from(e).at(format!("commit chain of head {:?}", opened.head)))?;
        head_roots.get_or_insert(commit.roots);
        for (slot, index) in IndexKind::ALL.iter().enumerate() {
            roots.push((*index, commit.roots[slot], address));
        }
        if !args.history {
            break;
        }
    }
    let bar = ctx.bar(0, "nodes");
    bar.set_message("verifying");
    let totals = walk(&**opened.storage(), &roots, &bar, |v| {
        if v.root_of == Some(head) {
            datoms[slot(v.index)] = v.node.count();
        }
    })
    .await;
    bar.finish_and_clear();
    let totals = totals?;
    if !totals.faults.is_empty() {
        return Err(damaged(&opened.head, &head, totals.faults, ctx)?);
    }

    // The head's datoms against its schema and counters.
    let spinner = ctx.spinner("checking the schema");
    let lazy = opened.lazy_db().await?;
    let db = datoms::materialize(&lazy, &**opened.storage()).await?.db;
    let found = datoms::check::check(
        db.schema(),
        db.datoms(IndexKind::Eavt, &[])?,
        db.max_eid(),
        db.max_tx(),
    )?;
    spinner.finish_and_clear();
    let (warnings, violations): (Vec<Violation>, Vec<Violation>) = found
        .into_iter()
        .partition(|v| v.is_warning() && !args.strict);
    if !violations.is_empty() {
        if !ctx.json {
            let mut text = format!(
                "FAILED: head {} at commit {}: {} violation{} of the schema or the id invariants\n",
                opened.head,
                short(&head),
                thousands(violations.len() as u64),
                if violations.len() == 1 { "" } else { "s" }
            );
            for v in violations.iter().chain(&warnings) {
                let what = if v.is_warning() && !args.strict {
                    "warning"
                } else {
                    "violation"
                };
                text.push_str(&format!("  {what}: {v}\n"));
            }
            ctx.print(&text)?;
        }
        return Err(CliError::Violations {
            head: opened.head.clone(),
            commit: head,
            violations,
        });
    }
    let report = Report {
        ok: true,
        head: opened.head.clone(),
        commit: head.to_hex(),
        roots: head_roots.as_ref().map(RootsJson::of),
        commits_checked,
        nodes: totals.nodes,
        bytes: totals.bytes,
        round_trips: totals.round_trips,
        datoms,
        datoms_checked: db.len(),
        warnings: warnings.iter().map(Finding::from).collect(),
        seconds: started.elapsed().as_secs_f64(),
    };
    if ctx.json {
        return ctx.print_json(&report);
    }
    let mut text = format!(
        "ok: {} commit{} from {} ({}), {} nodes, {} checked in {} round trip{}, {:.2} s\n    \
         EAVT {} datoms, AEVT {}, AVET {}; schema and id counters hold\n",
        commits_checked,
        if commits_checked == 1 { "" } else { "s" },
        short(&head),
        opened.head,
        thousands(totals.nodes),
        bytes(totals.bytes),
        totals.round_trips,
        if totals.round_trips == 1 { "" } else { "s" },
        report.seconds,
        thousands(datoms[0]),
        thousands(datoms[1]),
        thousands(datoms[2]),
    );
    if let Some(roots) = &report.roots {
        text.push_str(&roots.line());
    }
    for w in &warnings {
        text.push_str(&format!("  warning: {w}\n"));
    }
    ctx.print(&text)
}
