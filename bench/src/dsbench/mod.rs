//! Datascript's own benchmark suite, run side by side: `datoms-bench dsbench`.
//!
//! The suite ([`suite`]) is Datascript's `bench/` (its data generators and every
//! benchmark but freeze/thaw, which measure Datascript's JSON serialization), Datalevin's
//! q2-switch and q5-join, and the recursive ancestry query (Q4) of Datalevin's
//! math-genealogy benchmark on a generated advisor graph. The Rust side generates every
//! db and benchmark as EDN text; the Datascript side (`bench/peer/dsbench.js` on node)
//! reads the same text, so both answer the same questions on the same data. Both time
//! with Datascript's method ([`timing`]), benchmark by benchmark (Datascript's run of a
//! row, then datoms' run of it, so a busy machine weighs on both alike), and every answer
//! is compared (canonical EDN): a row whose answers differ fails the run.

pub mod data;
pub mod peer;
pub mod report;
pub mod suite;
pub mod timing;

use std::collections::HashMap;
use std::path::PathBuf;

use datoms_core::edn::{parse, parse_schema};
use datoms_core::query::{Input, QueryValue};
use datoms_core::{
    parse_tx, Component, Datom, Db, IndexKind, Keyword, Schema, TreeConfig, TxOp, Value, TX0,
};

use crate::error::BenchError;
pub use report::{DsReport, Row};
use suite::{Bench, Kind, Sizes};
use timing::{bench, Measured, Timing};

/// What `datoms-bench dsbench` runs.
#[derive(Clone, Debug)]
pub struct DsConfig {
    /// The seed of the data.
    pub seed: u64,
    /// The sizes.
    pub sizes: Sizes,
    /// The timing parameters (both sides).
    pub timing: Timing,
    /// Only the benchmarks whose names contain one of these (all when empty).
    pub only: Vec<String>,
    /// The peer's folder; `None`: datoms alone, nothing compared.
    pub peer_dir: Option<PathBuf>,
    /// The command line, for the report.
    pub command: String,
}

impl DsConfig {
    /// Datascript's sizes and timing.
    pub fn full() -> DsConfig {
        DsConfig {
            seed: 42,
            sizes: Sizes::full(),
            timing: Timing::datascript(),
            only: Vec::new(),
            peer_dir: Some(crate::peer::default_dir()),
            command: "datoms-bench dsbench".into(),
        }
    }

    /// Small sizes and short timings (a test).
    pub fn quick() -> DsConfig {
        DsConfig {
            sizes: Sizes::quick(),
            timing: Timing::quick(),
            command: "datoms-bench dsbench --quick".into(),
            ..DsConfig::full()
        }
    }
}

/// Runs the suite on both sides, benchmark by benchmark, and compares every answer.
///
/// # Errors
/// [`BenchError::Core`] if datoms fails a benchmark, [`BenchError::Peer`] if the peer
/// does.
pub fn run(config: &DsConfig) -> Result<DsReport, BenchError> {
    let (dbs, mut benches) = suite::suite(config.seed, &config.sizes);
    if !config.only.is_empty() {
        benches.retain(|b| config.only.iter().any(|o| b.name.contains(o.as_str())));
    }
    let mut machine = crate::measure::Machine::probe();
    let mut datascript = match &config.peer_dir {
        Some(dir) => Some(peer::Peer::start(dir, &config.timing, &dbs, &benches)?),
        None => None,
    };
    let schema = parse_schema(data::SCHEMA)?;
    let mut built: HashMap<String, Db> = HashMap::new();
    for (name, tx) in &dbs {
        built.insert(name.clone(), Db::new(schema.clone()).with_edn(tx)?.db_after);
    }
    let mut rows = Vec::with_capacity(benches.len());
    for (i, b) in benches.iter().enumerate() {
        // Datascript first, datoms right after: both under the same load.
        let theirs = match datascript.as_mut() {
            Some(p) => Some(p.run(i)?),
            None => None,
        };
        let (answer, measured) = run_datoms(b, &schema, &built, &config.timing)?;
        rows.push(Row::new(b, measured, answer, theirs.as_ref()));
    }
    let hello = datascript.as_ref().map(|p| p.hello.clone());
    if let Some(p) = datascript {
        p.finish()?;
    }
    machine.load_end = crate::measure::load_average();
    Ok(DsReport {
        command: config.command.clone(),
        timing: config.timing,
        sizes: config.sizes,
        datascript: hello.as_ref().map(|h| h.datascript.clone()),
        node: hello.as_ref().map(|h| h.node.clone()),
        machine,
        rows,
    })
}

fn db_of<'a>(dbs: &'a HashMap<String, Db>, name: &str) -> Result<&'a Db, BenchError> {
    dbs.get(name)
        .ok_or_else(|| BenchError::Inconsistent(format!("the suite names no db {name}")))
}

/// The datoms of `db` as `#{[e a v] ...}` (what the peer prints for a db).
fn all_datoms(db: &Db) -> Result<String, BenchError> {
    Ok(datoms_core::q("[:find ?e ?a ?v :where [?e ?a ?v]]", &[Input::Db(db)])?.to_string())
}

fn edn_value(text: &str) -> Result<Value, BenchError> {
    let v = QueryValue::from_edn(&parse(text)?)?;
    v.to_datom_value()
        .ok_or_else(|| BenchError::Inconsistent(format!("not a datom value: {text}")))
}

/// Runs one benchmark on datoms: its answer (EDN) and timing.
fn run_datoms(
    b: &Bench,
    schema: &Schema,
    dbs: &HashMap<String, Db>,
    timing: &Timing,
) -> Result<(String, Measured), BenchError> {
    match &b.kind {
        Kind::Tx { db, txs } => {
            let base = match db {
                Some(name) => db_of(dbs, name)?.clone(),
                None => Db::new(schema.clone()),
            };
            let ops: Vec<Vec<TxOp>> = txs
                .iter()
                .map(|t| parse_tx(t, schema))
                .collect::<Result<_, _>>()?;
            let run = || -> Result<Db, BenchError> {
                let mut db = base.clone();
                for tx in &ops {
                    db = db.with(tx)?.db_after;
                }
                Ok(db)
            };
            let answer = all_datoms(&run()?)?;
            let m = bench(timing, || run().map(drop))?;
            Ok((answer, m))
        }
        Kind::Init { datoms_json } => {
            let raw: Vec<(u64, String, String)> = serde_json::from_str(datoms_json)
                .map_err(|e| BenchError::Inconsistent(format!("init datoms: {e}")))?;
            let datoms: Vec<Datom> = raw
                .iter()
                .map(|(e, a, v)| {
                    let a = a.strip_prefix(':').unwrap_or(a);
                    Ok(Datom::new(*e, Keyword::new(a), edn_value(v)?, TX0 + 1))
                })
                .collect::<Result<_, BenchError>>()?;
            let max_eid = datoms.iter().map(|d| d.e).max().unwrap_or(0);
            let run = || {
                Db::bulk_load(
                    schema.clone(),
                    TreeConfig::default(),
                    datoms.clone(),
                    max_eid,
                    TX0 + 1,
                )
            };
            let answer = all_datoms(&run()?)?;
            let m = bench(timing, || run().map(drop))?;
            Ok((answer, m))
        }
        Kind::Datoms { db, ids, attr } => {
            let db = db_of(dbs, db)?;
            let attr = Keyword::new(attr.strip_prefix(':').unwrap_or(attr));
            let run = || -> Result<Vec<Option<Value>>, BenchError> {
                let mut out = Vec::with_capacity((ids[1] - ids[0]) as usize);
                for id in ids[0]..ids[1] {
                    let comps = [Component::E(id), Component::A(attr.clone())];
                    let first = db.datoms(IndexKind::Eavt, &comps)?.next().transpose()?;
                    out.push(first.map(|d| d.v));
                }
                Ok(out)
            };
            let values: Vec<String> = run()?
                .into_iter()
                .map(|v| v.map_or("nil".into(), |v| QueryValue::from_value(v).to_string()))
                .collect();
            let m = bench(timing, || run().map(drop))?;
            Ok((format!("[{}]", values.join(" ")), m))
        }
        Kind::Q {
            db,
            query,
            inputs,
            rules,
        } => {
            let db = db_of(dbs, db)?;
            let mut args = vec![Input::Db(db)];
            for (k, text) in inputs.iter().enumerate() {
                if *rules && k + 1 == inputs.len() {
                    args.push(Input::Rules(text));
                } else {
                    args.push(Input::Scalar(QueryValue::from_edn(&parse(text)?)?));
                }
            }
            let answer = datoms_core::q(query, &args)?.to_string();
            let m = bench(timing, || datoms_core::q(query, &args).map(drop))?;
            Ok((answer, m))
        }
        Kind::Pull { db, pattern, eid } => {
            let db = db_of(dbs, db)?;
            let answer = db.pull(pattern, *eid)?.to_string();
            let m = bench(timing, || db.pull(pattern, *eid).map(drop))?;
            Ok((answer, m))
        }
    }
}
