//! `datoms stats`: the size and shape of the three index trees of the head — datoms,
//! nodes, depth, bytes, and the distribution of node sizes per level, in bytes and in
//! items (the chunker's target is a mean; this shows the spread around it).

use std::collections::BTreeMap;

use datoms::IndexKind;
use serde::Serialize;

use super::access::{Create, Opened};
use super::output::{bytes, short, thousands, Ctx, RootsJson};
use super::walk::{index_name, slot, walk};
use super::{CliError, DbArgs};

/// Arguments of `datoms stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
}

/// The spread of one quantity over a set of nodes.
#[derive(Debug, Clone, Copy, Serialize)]
struct Spread {
    min: u64,
    p10: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
    mean: f64,
}

impl Spread {
    fn of(mut values: Vec<u64>) -> Spread {
        values.sort_unstable();
        let at = |q: f64| {
            let i = ((values.len() as f64 - 1.0) * q).round() as usize;
            values.get(i).copied().unwrap_or(0)
        };
        let sum: u64 = values.iter().sum();
        Spread {
            min: values.first().copied().unwrap_or(0),
            p10: at(0.10),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: values.last().copied().unwrap_or(0),
            mean: if values.is_empty() {
                0.0
            } else {
                sum as f64 / values.len() as f64
            },
        }
    }
}

#[derive(Debug, Serialize)]
struct Level {
    level: u8,
    nodes: u64,
    bytes: u64,
    node_bytes: Spread,
    node_items: Spread,
}

#[derive(Debug, Serialize)]
struct Index {
    index: &'static str,
    datoms: u64,
    nodes: u64,
    depth: u8,
    bytes: u64,
    node_bytes: Spread,
    node_items: Spread,
    /// Leaves first.
    levels: Vec<Level>,
}

#[derive(Debug, Serialize)]
struct Report {
    head: String,
    commit: String,
    /// The index roots: equal roots, equal db.
    roots: RootsJson,
    leaf_target: u32,
    branch_target: u32,
    indexes: Vec<Index>,
    round_trips: u64,
}

/// Per index, per level: (bytes, items) of every node.
type Sizes = [BTreeMap<u8, Vec<(u64, u64)>>; 3];

/// Runs `datoms stats`.
///
/// # Errors
/// [`CliError::NoDatabase`]; missing or corrupt nodes.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let opened = Opened::open(&args.db, Create::No, ctx).await?;
    let head = opened.head_commit().await?;
    let (commit, _) = opened.commit(head).await?;
    let roots: Vec<_> = IndexKind::ALL
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, commit.roots[i], head))
        .collect();
    let mut sizes: Sizes = Default::default();
    let mut datoms = [0u64; 3];
    let bar = ctx.bar(0, "nodes");
    bar.set_message("reading");
    let totals = walk(&**opened.storage(), &roots, &bar, |v| {
        let s = slot(v.index);
        if v.root_of.is_some() {
            datoms[s] = v.node.count();
        }
        sizes[s]
            .entry(v.node.level())
            .or_default()
            .push((v.bytes as u64, v.node.len() as u64));
    })
    .await;
    bar.finish_and_clear();
    let totals = totals?.sound()?;
    let indexes: Vec<Index> = IndexKind::ALL
        .iter()
        .map(|k| summarize(*k, datoms[slot(*k)], &sizes[slot(*k)]))
        .collect();
    let report = Report {
        head: opened.head.clone(),
        commit: head.to_hex(),
        roots: RootsJson::of(&commit.roots),
        leaf_target: commit.config.leaf_target,
        branch_target: commit.config.branch_target,
        indexes,
        round_trips: totals.round_trips,
    };
    if ctx.json {
        return ctx.print_json(&report);
    }
    ctx.print(&render(&report, &short(&head)))
}

fn summarize(index: IndexKind, datoms: u64, levels: &BTreeMap<u8, Vec<(u64, u64)>>) -> Index {
    let all: Vec<(u64, u64)> = levels.values().flatten().copied().collect();
    Index {
        index: index_name(index),
        datoms,
        nodes: all.len() as u64,
        depth: levels.keys().next_back().map_or(0, |l| l + 1),
        bytes: all.iter().map(|(b, _)| b).sum(),
        node_bytes: Spread::of(all.iter().map(|(b, _)| *b).collect()),
        node_items: Spread::of(all.iter().map(|(_, i)| *i).collect()),
        levels: levels
            .iter()
            .map(|(level, nodes)| Level {
                level: *level,
                nodes: nodes.len() as u64,
                bytes: nodes.iter().map(|(b, _)| b).sum(),
                node_bytes: Spread::of(nodes.iter().map(|(b, _)| *b).collect()),
                node_items: Spread::of(nodes.iter().map(|(_, i)| *i).collect()),
            })
            .collect(),
    }
}

fn render(r: &Report, commit: &str) -> String {
    let mut out = format!(
        "head {} at commit {commit}; chunker targets: {} datoms per leaf, {} children per branch\n\n",
        r.head, r.leaf_target, r.branch_target
    );
    out.push_str(&r.roots.line());
    out.push('\n');
    out.push_str(&format!(
        "{:<6} {:>11} {:>8} {:>6} {:>11}   {:<40}   {}\n",
        "index",
        "datoms",
        "nodes",
        "depth",
        "bytes",
        "node bytes: min p10 p50 mean p90 p99 max",
        "items: min p50 mean max"
    ));
    for ix in &r.indexes {
        out.push_str(&format!(
            "{:<6} {:>11} {:>8} {:>6} {:>11}   {:<40}   {}\n",
            ix.index,
            thousands(ix.datoms),
            thousands(ix.nodes),
            ix.depth,
            bytes(ix.bytes),
            spread_bytes(&ix.node_bytes),
            spread_items(&ix.node_items),
        ));
        for l in &ix.levels {
            let what = if l.level == 0 {
                "leaves".to_owned()
            } else {
                format!("level {}", l.level)
            };
            out.push_str(&format!(
                "  {:<10} {:>14} {:>6} {:>11}   {:<40}   {}\n",
                what,
                thousands(l.nodes),
                "",
                bytes(l.bytes),
                spread_bytes(&l.node_bytes),
                spread_items(&l.node_items),
            ));
        }
    }
    out
}

fn spread_bytes(s: &Spread) -> String {
    format!(
        "{} {} {} {:.0} {} {} {}",
        s.min, s.p10, s.p50, s.mean, s.p90, s.p99, s.max
    )
}

fn spread_items(s: &Spread) -> String {
    format!("{} {} {:.1} {}", s.min, s.p50, s.mean, s.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_picks_percentiles() {
        let s = Spread::of((1..=100).collect());
        assert_eq!((s.min, s.p50, s.p90, s.max), (1, 51, 90, 100));
        assert!((s.mean - 50.5).abs() < 1e-9);
        let empty = Spread::of(Vec::new());
        assert_eq!(empty.max, 0);
    }
}
