//! Live queries: 1,000 live queries of mixed shapes over the bench db (per 100: 35
//! entity lookups by id, 25 by unique attribute, 10 three-pattern joins from a unique
//! name, 8 two-pattern joins from an id, 5 four-pattern joins, 8 joins with a predicate,
//! 4 joins of constant age, city and a friend's name, 4 aggregates, 1 rule), fed one-person transactions and 100-datom follow updates. Per change it
//! measures, side by side in one run: the live update ([`LiveSet::apply`]: interest
//! index, delta rules, re-evaluation of the shapes that need it), re-running all the
//! queries, and invalidation only (re-running every query whose attributes the change
//! touches). After every change each live result is checked against the fresh result
//! of the re-run-all baseline.
//!
//! A follow update is applied as [`datoms_storage::Follower`] applies it: the diff of
//! the two dbs through the same [`LiveSet::apply`].

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Instant;

use datoms_core::live::{LiveInput, LiveSet, Watch};
use datoms_core::{Db, Input, Keyword, Query, QueryResult, Value};

use crate::error::BenchError;
use crate::rng::SplitMix64;
use crate::workload::{attr, schema, Generator, CITIES};

/// What to run.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Datoms in the base db.
    pub datoms: u64,
    /// Live queries.
    pub queries: usize,
    /// One-person transactions measured.
    pub person_txs: usize,
    /// 100-datom follow updates measured.
    pub follow_updates: usize,
    /// The seed.
    pub seed: u64,
}

impl LiveConfig {
    /// The real figures: 1M datoms, 1,000 queries.
    pub fn full() -> LiveConfig {
        LiveConfig {
            datoms: 1_000_000,
            queries: 1000,
            person_txs: 300,
            follow_updates: 100,
            seed: 42,
        }
    }

    /// A quick run (CI size): 20k datoms, 1,000 queries.
    pub fn quick() -> LiveConfig {
        LiveConfig {
            datoms: 20_000,
            queries: 1000,
            person_txs: 100,
            follow_updates: 30,
            seed: 42,
        }
    }
}

/// Latencies of one way of keeping results current, per change.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    /// Microseconds per change.
    pub micros: Vec<f64>,
}

impl Timings {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.micros.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() - 1) as f64 * p).round() as usize;
        v[i]
    }

    /// The median.
    pub fn p50(&self) -> f64 {
        self.pct(0.5)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> f64 {
        self.pct(0.99)
    }

    fn mean(&self) -> f64 {
        self.micros.iter().sum::<f64>() / self.micros.len().max(1) as f64
    }
}

/// One kind of change measured.
#[derive(Clone, Debug, Default)]
pub struct ChangeRow {
    /// The kind of change.
    pub kind: String,
    /// Changes measured.
    pub changes: usize,
    /// Live update.
    pub live: Timings,
    /// Re-running all queries.
    pub rerun: Timings,
    /// Re-running the queries whose attributes the change touches.
    pub invalidate: Timings,
    /// Mean queries the interest index found touched, per change.
    pub touched: f64,
    /// Mean queries re-evaluated whole, per change.
    pub reevaluated: f64,
    /// Mean queries updated by delta rules, per change.
    pub incremental: f64,
    /// Mean queries invalidation re-runs, per change.
    pub invalidated: f64,
}

/// The live-query benchmark's report.
#[derive(Clone, Debug, Default)]
pub struct LiveReport {
    /// The command that made it.
    pub command: String,
    /// Datoms in the base db.
    pub datoms: u64,
    /// Live queries, and how many are incremental.
    pub queries: usize,
    /// Of those, kept by delta rules.
    pub incremental_queries: usize,
    /// Per kind of change.
    pub rows: Vec<ChangeRow>,
    /// Live results that differed from a fresh query (must be 0).
    pub mismatches: usize,
}

struct LiveQuery {
    text: String,
    inputs: Vec<LiveInput>,
    attrs: BTreeSet<Keyword>,
    parsed: Query,
    watch: Watch,
}

const RULES: &str = "[[(named ?e ?n) [?e :person/name ?n]]]";

fn name_of(db: &Db, e: u64) -> Result<String, BenchError> {
    let ds = db.entity_attr(e, &Keyword::new(attr::NAME))?;
    Ok(match ds.first().map(|d| &d.v) {
        Some(Value::String(s)) => s.to_string(),
        _ => String::new(),
    })
}

/// The query texts (and whether they take the rules), mixed as the module docs say.
fn query_texts(
    db: &Db,
    n: usize,
    people: u64,
    rng: &mut SplitMix64,
) -> Result<Vec<(String, bool)>, BenchError> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let e = 1 + rng.below(people);
        let name = format!("{:?}", name_of(db, e)?);
        let city = format!("{:?}", CITIES[rng.below(CITIES.len() as u64) as usize]);
        let age = 18 + rng.below(73);
        let text = match i % 100 {
            0..=34 => (format!("[:find ?a ?n ?c :where [{e} :person/age ?a] [{e} :person/name ?n] [{e} :person/city ?c]]"), false),
            35..=59 => (format!("[:find ?e ?a ?s :where [?e :person/name {name}] [?e :person/age ?a] [?e :person/score ?s]]"), false),
            60..=69 => (format!("[:find ?fn :where [?e :person/name {name}] [?e :person/friend ?f] [?f :person/name ?fn]]"), false),
            70..=77 => (format!("[:find ?f ?c :where [{e} :person/friend ?f] [?f :person/city ?c]]"), false),
            78..=82 => (format!("[:find ?n2 :where [?e :person/name {name}] [?e :person/friend ?f] [?f :person/friend ?g] [?g :person/name ?n2]]"), false),
            83..=90 => (format!("[:find ?f ?a :where [{e} :person/friend ?f] [?f :person/age ?a] [(> ?a {age})]]"), false),
            91..=94 => (format!("[:find ?e :where [?e :person/age {age}] [?e :person/city {city}] [?e :person/friend ?f] [?f :person/name {name}]]"), false),
            95..=98 => (format!("[:find ?c (count ?f) :where [{e} :person/friend ?f] [?f :person/city ?c]]"), false),
            _ => (format!("[:find ?n :in $ % :where [{e} :person/friend ?f] (named ?f ?n)]"), true),
        };
        out.push(text);
    }
    Ok(out)
}

fn keywords_of(text: &str) -> BTreeSet<Keyword> {
    text.split(|c: char| c.is_whitespace() || "[]()".contains(c))
        .filter(|t| t.starts_with(":person/"))
        .filter_map(|t| Keyword::parse(t).ok())
        .collect()
}

fn run_query(q: &LiveQuery, db: &Db) -> Result<QueryResult, BenchError> {
    let ins: Vec<Input<'_>> = q.inputs.iter().map(|i| i.as_input(db)).collect();
    Ok(q.parsed.run(&ins)?)
}

/// One transaction about one person: a new person with friends, or an existing one
/// who moves and gets a new score.
fn person_tx(rng: &mut SplitMix64, people: u64, k: u64) -> String {
    if rng.below(2) == 0 {
        let f1 = 1 + rng.below(people);
        let f2 = 1 + rng.below(people);
        format!(
            "[{{:person/name \"Live {k}\" :person/email \"live{k}@example.com\" :person/age {} :person/city {:?} :person/score {} :person/friend [{f1} {f2}]}}]",
            18 + rng.below(73),
            CITIES[rng.below(CITIES.len() as u64) as usize],
            rng.below(1_000_000)
        )
    } else {
        let e = 1 + rng.below(people);
        format!(
            "[[:db/add {e} :person/city {:?}] [:db/add {e} :person/score {}]]",
            CITIES[rng.below(CITIES.len() as u64) as usize],
            2_000_000 + k
        )
    }
}

/// Runs the benchmark.
///
/// # Errors
/// A query or transaction that fails (a bug).
pub fn run_live(config: &LiveConfig) -> Result<LiveReport, BenchError> {
    let mut gen = Generator::new(config.seed);
    let mut db = Db::new(schema()?);
    for tx in gen.base(config.datoms, 1000) {
        db = db.with(&tx.to_tx_ops())?.db_after;
    }
    // Merged trees, as a stored or followed db has them; later transactions merge at
    // once too, so every way measured reads the same trees.
    let _ = db.root_addresses();
    db = db.with_edit_buffer(0);
    let mut rng = SplitMix64::new(config.seed ^ 0x11fe);
    let set = LiveSet::new();
    let mut queries = Vec::new();
    for (text, rules) in query_texts(&db, config.queries, gen.people(), &mut rng)? {
        let mut inputs = vec![LiveInput::Db];
        if rules {
            inputs.push(LiveInput::Rules(RULES.into()));
        }
        let watch = set.watch(&db, &text, inputs.clone())?;
        let _ = watch.drain();
        queries.push(LiveQuery {
            attrs: keywords_of(&text),
            parsed: Query::parse(&text)?,
            text,
            inputs,
            watch,
        });
    }
    let mut report = LiveReport {
        datoms: db.len(),
        queries: queries.len(),
        incremental_queries: queries.iter().filter(|q| q.watch.is_incremental()).count(),
        ..LiveReport::default()
    };
    for kind in ["one-person tx", "100-datom follow update"] {
        let mut row = ChangeRow {
            kind: kind.into(),
            ..ChangeRow::default()
        };
        let n = if kind.starts_with("one") {
            config.person_txs
        } else {
            config.follow_updates
        };
        let (mut touched, mut reeval, mut inc, mut invalidated) = (0usize, 0usize, 0usize, 0usize);
        for k in 0..n {
            let (after, datoms) = if kind.starts_with("one") {
                let r = db.with_edn(&person_tx(&mut rng, gen.people(), k as u64))?;
                (r.db_after, r.tx_data)
            } else {
                let after = db.with(&gen.delta(100).to_tx_ops())?.db_after;
                let d = datoms_core::diff(&db, &after)?;
                let mut datoms = d.retracted;
                datoms.extend(d.added);
                (after, datoms)
            };
            let t = Instant::now();
            let stats = set.apply(&db, &after, &datoms);
            row.live.micros.push(t.elapsed().as_secs_f64() * 1e6);
            touched += stats.touched;
            reeval += stats.reevaluated;
            inc += stats.incremental;
            let t = Instant::now();
            let fresh: Vec<QueryResult> = queries
                .iter()
                .map(|q| run_query(q, &after))
                .collect::<Result<_, _>>()?;
            row.rerun.micros.push(t.elapsed().as_secs_f64() * 1e6);
            let changed: BTreeSet<&Keyword> = datoms.iter().map(|d| &d.a).collect();
            let t = Instant::now();
            for q in queries
                .iter()
                .filter(|q| q.attrs.iter().any(|a| changed.contains(a)))
            {
                run_query(q, &after)?;
                invalidated += 1;
            }
            row.invalidate.micros.push(t.elapsed().as_secs_f64() * 1e6);
            for (q, f) in queries.iter().zip(&fresh) {
                let _ = q.watch.drain();
                if q.watch.result().as_ref() != Some(f) {
                    report.mismatches += 1;
                    eprintln!("live result differs from a fresh query: {}", q.text);
                }
            }
            db = after;
        }
        let n = n.max(1) as f64;
        row.changes = row.live.micros.len();
        row.touched = touched as f64 / n;
        row.reevaluated = reeval as f64 / n;
        row.incremental = inc as f64 / n;
        row.invalidated = invalidated as f64 / n;
        report.rows.push(row);
    }
    Ok(report)
}

impl LiveReport {
    /// What makes the report inconsistent: live results that differed from a fresh
    /// query.
    pub fn check(&self) -> Vec<String> {
        if self.mismatches == 0 {
            Vec::new()
        } else {
            vec![format!(
                "{} live results differed from a fresh query",
                self.mismatches
            )]
        }
    }

    /// The report as markdown, targets included.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## Live queries\n\n`{}`: {} live queries ({} incremental) over {} datoms; \
             live results checked against a fresh query after every change: {} mismatches.\n",
            self.command, self.queries, self.incremental_queries, self.datoms, self.mismatches
        );
        let _ = writeln!(out, "| change | n | live p50 / p99 µs | re-run all p50 / p99 µs | invalidation p50 / p99 µs | touched | delta | re-evaluated | invalidated | vs re-run all (mean) | vs invalidation (mean) |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0}× | {:.1}× |",
                r.kind,
                r.changes,
                r.live.p50(),
                r.live.p99(),
                r.rerun.p50(),
                r.rerun.p99(),
                r.invalidate.p50(),
                r.invalidate.p99(),
                r.touched,
                r.incremental,
                r.reevaluated,
                r.invalidated,
                r.rerun.mean() / r.live.mean().max(1e-9),
                r.invalidate.mean() / r.live.mean().max(1e-9),
            );
        }
        if let Some(r) = self.rows.first() {
            let _ = writeln!(
                out,
                "\nTargets (one-person tx): p99 ≤ 1000 µs: {} ({:.0} µs); ≥ 50× re-run all: {}; ≥ 5× invalidation: {}; results equal: {}",
                if r.live.p99() <= 1000.0 { "met" } else { "MISSED" },
                r.live.p99(),
                if r.rerun.mean() / r.live.mean().max(1e-9) >= 50.0 { "met" } else { "MISSED" },
                if r.invalidate.mean() / r.live.mean().max(1e-9) >= 5.0 { "met" } else { "MISSED" },
                if self.mismatches == 0 { "met" } else { "MISSED" },
            );
        }
        out
    }
}
