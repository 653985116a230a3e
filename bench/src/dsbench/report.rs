//! The suite's report: one row per benchmark with both timings, the ratio, whether the
//! answers are equal, and the targets evaluated.

use std::fmt::Write;

use serde::Serialize;

use super::peer::PeerResult;
use super::suite::{Bench, Group, Sizes};
use super::timing::{Measured, Timing};
use crate::diff::canonical::{canonical, Shape};
use crate::measure::Machine;

/// Rows whose target is 5× (the others' is 2×).
const FIVE_TIMES: &[&str] = &[
    "q1",
    "q2",
    "q2-switch",
    "q3",
    "q4",
    "q5-shortcircuit",
    "q5-join",
];
/// Rows of the small-transaction issue, whose target is 3×.
const THREE_TIMES: &[&str] = &["add-1", "retract-5"];
/// The target of the geometric mean over the query rows.
pub const QUERY_GEOMEAN_TARGET: f64 = 5.0;

/// One benchmark, both sides.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The benchmark.
    pub name: String,
    /// How it counts towards the targets.
    pub group: Group,
    /// datoms: the median ms per run.
    pub datoms_ms: f64,
    /// datoms: every sample.
    pub datoms_samples: Vec<f64>,
    /// Datascript: the median ms per run (`None` without the peer).
    pub datascript_ms: Option<f64>,
    /// Whether both sides answered the same (`None` without the peer).
    pub equal: Option<bool>,
    /// datoms' answer, canonical EDN, abbreviated.
    pub answer: String,
    /// Datascript's answer where it differs, abbreviated.
    pub datascript_answer: Option<String>,
}

fn abbreviate(s: &str) -> String {
    if s.len() <= 300 {
        return s.to_string();
    }
    let mut end = 300;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

impl Row {
    /// The row of `bench`, datoms' `measured` timing and `answer`, and the peer's result.
    pub fn new(
        bench: &Bench,
        measured: Measured,
        answer: String,
        peer: Option<&PeerResult>,
    ) -> Row {
        let ours = canonical(&answer, Shape::Exact);
        let (equal, datascript_answer) = match peer {
            Some(p) => {
                let theirs = canonical(&p.answer, Shape::Exact);
                let equal = ours.is_some() && ours == theirs;
                (Some(equal), (!equal).then(|| abbreviate(&p.answer)))
            }
            None => (None, None),
        };
        Row {
            name: bench.name.clone(),
            group: bench.group,
            datoms_ms: measured.ms,
            datoms_samples: measured.samples,
            datascript_ms: peer.map(|p| p.ms),
            equal,
            answer: abbreviate(ours.as_deref().unwrap_or(&answer)),
            datascript_answer,
        }
    }

    /// Datascript's time over datoms' (> 1: datoms is faster).
    pub fn ratio(&self) -> Option<f64> {
        self.datascript_ms
            .filter(|_| self.datoms_ms > 0.0)
            .map(|ds| ds / self.datoms_ms)
    }

    /// The ratio this row's target asks for.
    pub fn target(&self) -> f64 {
        if FIVE_TIMES.contains(&self.name.as_str()) {
            5.0
        } else if THREE_TIMES.contains(&self.name.as_str()) {
            3.0
        } else {
            2.0
        }
    }
}

/// The suite's report.
#[derive(Clone, Debug, Serialize)]
pub struct DsReport {
    /// The command that measured it.
    pub command: String,
    /// The timing both sides used.
    pub timing: Timing,
    /// The sizes.
    pub sizes: Sizes,
    /// Datascript's version (`None` without the peer).
    pub datascript: Option<String>,
    /// Node's version.
    pub node: Option<String>,
    /// The machine.
    pub machine: Machine,
    /// One row per benchmark.
    pub rows: Vec<Row>,
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.4}")
    }
}

impl DsReport {
    /// The geometric mean of the ratios of the query rows (`None` without the peer).
    pub fn query_geomean(&self) -> Option<f64> {
        let ratios: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| r.group == Group::Query)
            .filter_map(Row::ratio)
            .collect();
        if ratios.is_empty() {
            return None;
        }
        let log_sum: f64 = ratios.iter().map(|r| r.ln()).sum();
        Some((log_sum / ratios.len() as f64).exp())
    }

    /// Rows whose answers differ: the run's failures.
    pub fn problems(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| r.equal == Some(false))
            .map(|r| {
                format!(
                    "{}: datoms answered {} but Datascript {}",
                    r.name,
                    r.answer,
                    r.datascript_answer.as_deref().unwrap_or("?")
                )
            })
            .collect()
    }

    /// The report as markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## Datascript's benchmark suite, side by side\n");
        let _ = writeln!(s, "`{}`\n", self.command);
        let m = &self.machine;
        let _ = writeln!(
            s,
            "Machine: {} ({} CPUs, {:.0} GiB), load {:.1} at the start and {:.1} at the end; {} build. Datascript {} on node {}. \
             Timing: {} ms warm-up, {} samples of {} ms, batches of {}; the median sample, ms \
             per run. {} people, pull graph {}x{}, advisor graph {} people.\n",
            m.cpu,
            m.cpus,
            m.mem_gib,
            m.load_start,
            m.load_end,
            if m.optimized { "release" } else { "debug" },
            self.datascript.as_deref().unwrap_or("-"),
            self.node.as_deref().unwrap_or("-"),
            self.timing.warmup_ms,
            self.timing.samples,
            self.timing.bench_ms,
            self.timing.batch,
            self.sizes.people,
            self.sizes.pull.0,
            self.sizes.pull.1,
            self.sizes.genealogy,
        );
        let _ = writeln!(
            s,
            "| row | Datascript ms | datoms ms | ratio (>1: datoms faster) | target | met | equal answers |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let ratio = r.ratio();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.0}× | {} | {} |",
                r.name,
                r.datascript_ms.map_or("-".into(), fmt_ms),
                fmt_ms(r.datoms_ms),
                ratio.map_or("-".into(), |x| format!("{x:.2}×")),
                r.target(),
                ratio.map_or("-", |x| if x >= r.target() { "yes" } else { "no" }),
                match r.equal {
                    Some(true) => "yes",
                    Some(false) => "**NO**",
                    None => "-",
                },
            );
        }
        if let Some(g) = self.query_geomean() {
            let _ = writeln!(
                s,
                "\nGeometric mean of the query rows' ratios: {g:.2}× (target {QUERY_GEOMEAN_TARGET:.0}×: {}).",
                if g >= QUERY_GEOMEAN_TARGET { "met" } else { "not met" }
            );
        }
        for p in self.problems() {
            let _ = writeln!(s, "\n- answers differ: {p}");
        }
        s
    }
}
