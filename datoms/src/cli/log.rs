//! `datoms log`: the commits of a head, newest first, each with what it recorded. It
//! follows first parents (the head's own line) and names the other parents of merge
//! commits; `--graph` walks every parent and draws the lineage, merges included.

use std::collections::{HashMap, HashSet};

use datoms::storage::large::decode_fetching;
use datoms::{Address, Commit};
use serde::Serialize;

use super::access::{format_instant, CommitWalk, Create, Opened};
use super::output::{bytes, short, thousands, Ctx, RootsJson};
use super::{CliError, DbArgs};

/// Arguments of `datoms log`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// Show at most this many commits.
    #[arg(long, short = 'n', value_name = "N")]
    limit: Option<usize>,

    /// Walk every parent (merged branches too) and draw the lineage as an ASCII graph,
    /// newest first.
    #[arg(long)]
    graph: bool,
}

#[derive(Serialize)]
struct Entry {
    commit: String,
    max_tx: u64,
    max_eid: u64,
    txs: usize,
    datoms: usize,
    manifest_nodes: usize,
    commit_bytes: u64,
    parent: Option<String>,
    /// The other parents of a merge commit.
    merged: Vec<String>,
    /// When the commit was made (RFC 3339, UTC).
    time: String,
    /// The index roots: equal roots, equal db.
    roots: RootsJson,
}

/// Runs `datoms log`.
///
/// # Errors
/// [`CliError::NoDatabase`]; a missing or corrupt commit, or one whose tx log cannot be
/// decoded, named by address.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let opened = Opened::open(&args.db, Create::No, ctx).await?;
    let head = opened.head_commit().await?;
    if args.graph {
        return graph(&opened, head, args.limit.unwrap_or(usize::MAX), ctx).await;
    }
    let mut walk = CommitWalk::new(head);
    let mut entries = Vec::new();
    while entries.len() < args.limit.unwrap_or(usize::MAX) {
        let Some((address, commit, size)) = walk.next(&opened).await? else {
            break;
        };
        // Decoded (not just counted) so a commit whose log is damaged is reported here.
        let (log, _) = decode_fetching(&**opened.storage(), || commit.log_entries()).await?;
        entries.push(Entry {
            commit: address.to_hex(),
            max_tx: commit.max_tx,
            max_eid: commit.max_eid,
            txs: log.len(),
            datoms: log.iter().map(|e| e.datoms.len()).sum(),
            manifest_nodes: commit.manifest.len(),
            commit_bytes: size,
            parent: commit.parent.map(|p| p.to_hex()),
            merged: commit.merged.iter().map(|p| p.to_hex()).collect(),
            time: format_instant(commit.time),
            roots: RootsJson::of(&commit.roots),
        });
    }
    if ctx.json {
        return ctx.print_json(&entries);
    }
    let mut out = format!(
        "{:<12}  {:>10}  {:>4}  {:>8}  {:>14}  {:>10}  {}\n",
        "commit", "max-tx", "txs", "datoms", "manifest nodes", "size", "parent"
    );
    for e in &entries {
        let mut parent = e.parent.as_deref().map_or("-", |p| &p[..12]).to_owned();
        for m in &e.merged {
            parent.push_str(&format!(" + {}", &m[..12]));
        }
        out.push_str(&format!(
            "{:<12}  {:>10}  {:>4}  {:>8}  {:>14}  {:>10}  {}\n",
            &e.commit[..12],
            e.max_tx,
            e.txs,
            thousands(e.datoms as u64),
            thousands(e.manifest_nodes as u64),
            bytes(e.commit_bytes),
            parent
        ));
    }
    out.push_str(&format!(
        "{} commit{} from head {} ({})\n",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        opened.head,
        short(&head)
    ));
    ctx.print(&out)
}

/// One row of `log --graph --json`.
#[derive(Serialize)]
struct GraphEntry {
    commit: String,
    parents: Vec<String>,
    time: String,
    max_tx: u64,
    txs: usize,
    datoms: usize,
    /// The row as drawn.
    line: String,
}

impl GraphEntry {
    /// A row with no commit: lines opening or joining.
    fn connector(line: Vec<char>) -> GraphEntry {
        let text: String = line.into_iter().collect();
        GraphEntry {
            commit: String::new(),
            parents: Vec::new(),
            time: String::new(),
            max_tx: 0,
            txs: 0,
            datoms: 0,
            line: text.trim_end().to_owned(),
        }
    }
}

/// `datoms log --graph`: every commit reachable from the head through any parent (up to
/// `limit`), children before parents (newest first among those ready), drawn in lanes
/// as `git log --graph` does: `*` a commit, `|` a line of descent, `\` a merged parent's
/// line opening, `/` two lines joining.
async fn graph(opened: &Opened, head: Address, limit: usize, ctx: &Ctx) -> Result<(), CliError> {
    // Read the history a generation at a time, one batched request each.
    let mut commits: HashMap<Address, Commit> = HashMap::new();
    let mut frontier = vec![head];
    let mut seen: HashSet<Address> = HashSet::from([head]);
    while !frontier.is_empty() && commits.len() < limit {
        let fetched = opened.commits(&frontier).await?;
        let mut next = Vec::new();
        for (address, (commit, _)) in frontier.iter().zip(fetched) {
            next.extend(commit.parents().filter(|p| seen.insert(*p)));
            commits.insert(*address, commit);
        }
        frontier = next;
    }
    let order = topological(head, &commits, limit);
    let mut lanes: Vec<Option<Address>> = vec![Some(head)];
    let mut lines: Vec<GraphEntry> = Vec::new();
    for address in order {
        let commit = &commits[&address];
        let col = lanes
            .iter()
            .position(|l| *l == Some(address))
            .unwrap_or_else(|| {
                lanes.push(Some(address));
                lanes.len() - 1
            });
        // Other lanes waiting for it join its lane first.
        let joined: Vec<usize> = (0..lanes.len())
            .filter(|i| *i != col && lanes[*i] == Some(address))
            .collect();
        if !joined.is_empty() {
            let mut line = vec![' '; 2 * lanes.len()];
            for (i, l) in lanes.iter().enumerate() {
                if l.is_some() && !joined.contains(&i) {
                    line[2 * i] = '|';
                }
            }
            for i in &joined {
                line[2 * i - 1] = '/';
                lanes[*i] = None;
            }
            lines.push(GraphEntry::connector(line));
            while lanes.last() == Some(&None) {
                lanes.pop();
            }
        }
        let row: Vec<&str> = lanes
            .iter()
            .enumerate()
            .map(|(i, l)| match (i == col, l) {
                (true, _) => "*",
                (false, Some(_)) => "|",
                (false, None) => " ",
            })
            .collect();
        let mut label = format!(
            "{} {}",
            &address.to_hex()[..12],
            format_instant(commit.time)
        );
        if !commit.merged.is_empty() {
            let merged: Vec<String> = commit
                .merged
                .iter()
                .map(|m| m.to_hex()[..12].to_owned())
                .collect();
            label.push_str(&format!(" merge of {}", merged.join(", ")));
        }
        let log = commit.log.clone();
        lines.push(GraphEntry {
            commit: address.to_hex(),
            parents: commit.parents().map(|p| p.to_hex()).collect(),
            time: format_instant(commit.time),
            max_tx: commit.max_tx,
            txs: log.txs(),
            datoms: log.datoms(),
            line: format!("{} {label}", row.join(" ").trim_end()),
        });
        // Its own lane continues to its first parent (or ends); merged parents open
        // lanes of their own.
        lanes[col] = commit.parent.filter(|p| commits.contains_key(p));
        let mut opened_lanes = Vec::new();
        for m in &commit.merged {
            if !commits.contains_key(m) || lanes.contains(&Some(*m)) {
                continue;
            }
            let at = lanes
                .iter()
                .position(Option::is_none)
                .filter(|i| *i > col)
                .unwrap_or_else(|| {
                    lanes.push(None);
                    lanes.len() - 1
                });
            lanes[at] = Some(*m);
            opened_lanes.push(at);
        }
        while lanes.last() == Some(&None) {
            lanes.pop();
        }
        if !opened_lanes.is_empty() {
            let mut line = vec![' '; 2 * lanes.len()];
            for (i, l) in lanes.iter().enumerate() {
                if l.is_some() && !opened_lanes.contains(&i) {
                    line[2 * i] = '|';
                }
            }
            for i in &opened_lanes {
                line[2 * i - 1] = '\\';
            }
            lines.push(GraphEntry::connector(line));
        }
    }
    if ctx.json {
        let commits: Vec<&GraphEntry> = lines.iter().filter(|l| !l.commit.is_empty()).collect();
        return ctx.print_json(&commits);
    }
    let mut out = String::new();
    for l in &lines {
        out.push_str(&l.line);
        out.push('\n');
    }
    ctx.print(&out)
}

/// The commits in an order that puts every commit before its parents, the newest ready
/// one first (ties by address, so the order is stable), at most `limit` of them.
fn topological(head: Address, commits: &HashMap<Address, Commit>, limit: usize) -> Vec<Address> {
    let mut children: HashMap<Address, usize> = HashMap::new();
    for c in commits.values() {
        for p in c.parents().filter(|p| commits.contains_key(p)) {
            *children.entry(p).or_default() += 1;
        }
    }
    let mut ready: Vec<Address> = vec![head];
    let mut out = Vec::new();
    while let Some(i) = (0..ready.len()).max_by_key(|i| (commits[&ready[*i]].time, ready[*i])) {
        let address = ready.swap_remove(i);
        out.push(address);
        if out.len() >= limit {
            break;
        }
        for p in commits[&address]
            .parents()
            .filter(|p| commits.contains_key(p))
        {
            let n = children.entry(p).or_default();
            *n -= 1;
            if *n == 0 {
                ready.push(p);
            }
        }
    }
    out
}
