//! The randomized differential test against Datascript: [`generator`] makes seeded cases
//! (one schema, transactions, then queries and pulls on the final db), `bench/peer/diff.js`
//! runs them in Datascript 1.8.1 on node, [`run_datoms`] runs them through the
//! `datoms-core` API, and [`compare`] finds where the answers differ, in the
//! [`canonical`] form: entity ids exactly, sets as sets, bags as bags, errors as "both
//! fail" or "both succeed" (their messages differ by design).
//!
//! After every transaction the whole db (every datom, transaction ids included) is
//! compared, so a divergence is reported at the first transaction that causes it. Once
//! a case has diverged, its later answers differ as a consequence, so a case reports
//! its *first* divergence only; [`known`] says which known issue item it is.
//!
//! `bench/tests/datascript_diff.rs` runs a short seeded run in CI; `DATOMS_DIFF_CASES`
//! (and `DATOMS_DIFF_SEED`) make it a long one.

pub mod canonical;
pub mod generator;
pub mod known;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use datoms_core::edn::{parse, parse_schema, value_to_edn, Edn};
use datoms_core::pull::{pull_entity, PullPattern};
use datoms_core::query::QueryFn;
use datoms_core::{Db, Error, Functions, IndexKind, Input, Query, QueryValue};
use serde::Deserialize;

use crate::error::BenchError;
pub use canonical::Shape;
pub use generator::{generate, Case};

/// One answer: the EDN it printed, or the error it failed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// It succeeded with this EDN.
    Ok(String),
    /// It failed with this message.
    Err(String),
}

impl Answer {
    pub(crate) fn same_as(&self, other: &Answer, shape: Shape) -> bool {
        match (self, other) {
            (Answer::Ok(a), Answer::Ok(b)) => {
                let a = canonical::canonical(a, shape);
                a.is_some() && a == canonical::canonical(b, shape)
            }
            (Answer::Err(_), Answer::Err(_)) => true,
            _ => false,
        }
    }

    /// The EDN or the error, as text.
    pub fn text(&self) -> String {
        match self {
            Answer::Ok(v) => v.clone(),
            Answer::Err(e) => format!("error: {e}"),
        }
    }
}

/// One side's answers to a case.
#[derive(Clone, Debug)]
pub struct Answers {
    /// Per transaction: whether it succeeded, and every datom after it.
    pub txs: Vec<(Answer, String)>,
    /// Per query.
    pub queries: Vec<Answer>,
    /// Per pull.
    pub pulls: Vec<Answer>,
}

/// Which check of a case diverged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The transaction at this index: one side failed, or the dbs after it differ.
    Tx(usize),
    /// The query at this index.
    Query(usize),
    /// The pull at this index.
    Pull(usize),
}

/// The first divergence of a case.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// The case's seed.
    pub seed: u64,
    /// What diverged.
    pub check: Check,
    /// Its input: the tx data, the query (and inputs) or the pull.
    pub input: String,
    /// Datascript's answer.
    pub datascript: String,
    /// datoms' answer.
    pub datoms: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} {:?}: {}\n  datascript: {}\n  datoms:     {}",
            self.seed, self.check, self.input, self.datascript, self.datoms
        )
    }
}

/// The peer's folder (`bench/peer`), which holds `diff.js` and the installed Datascript.
pub fn peer_dir() -> std::path::PathBuf {
    crate::peer::default_dir()
}

#[derive(Deserialize)]
pub(crate) struct PeerAnswer {
    ok: bool,
    value: Option<String>,
    error: Option<String>,
}

impl From<PeerAnswer> for Answer {
    fn from(a: PeerAnswer) -> Answer {
        if a.ok {
            Answer::Ok(a.value.unwrap_or_default())
        } else {
            Answer::Err(a.error.unwrap_or_default())
        }
    }
}

#[derive(Deserialize)]
struct PeerTx {
    ok: bool,
    error: Option<String>,
    datoms: String,
}

#[derive(Deserialize)]
struct PeerCase {
    txs: Vec<PeerTx>,
    queries: Vec<PeerAnswer>,
    pulls: Vec<PeerAnswer>,
}

/// Runs `cases` in Datascript: `node diff.js` in `dir`, all cases in one process.
///
/// # Errors
/// [`BenchError::PeerNotInstalled`] when Datascript is not installed in `dir`;
/// [`BenchError::Peer`] when node fails or prints something unexpected.
pub fn run_datascript(dir: &Path, cases: &[Case]) -> Result<Vec<Answers>, BenchError> {
    let input = serde_json::to_vec(cases).map_err(|e| BenchError::Peer(e.to_string()))?;
    let stdout = run_node(dir, "diff.js", input)?;
    let peer: Vec<PeerCase> = serde_json::from_slice(&stdout)
        .map_err(|e| BenchError::Peer(format!("diff.js printed unexpected output: {e}")))?;
    Ok(peer
        .into_iter()
        .map(|c| Answers {
            txs: c
                .txs
                .into_iter()
                .map(|t| {
                    let answer = if t.ok {
                        Answer::Ok("ok".into())
                    } else {
                        Answer::Err(t.error.unwrap_or_default())
                    };
                    (answer, t.datoms)
                })
                .collect(),
            queries: c.queries.into_iter().map(Answer::from).collect(),
            pulls: c.pulls.into_iter().map(Answer::from).collect(),
        })
        .collect())
}

/// Runs `node SCRIPT` in `dir` (the peer's folder) with `input` on stdin and answers its
/// stdout: how the differential test and the ported suite ([`crate::suite`]) run
/// Datascript, all their cases in one process.
///
/// # Errors
/// [`BenchError::PeerNotInstalled`] when Datascript is not installed in `dir`;
/// [`BenchError::Peer`] when node cannot be started or the script fails.
pub fn run_node(dir: &Path, script: &str, input: Vec<u8>) -> Result<Vec<u8>, BenchError> {
    if !dir.join("node_modules/datascript/package.json").exists() {
        return Err(BenchError::PeerNotInstalled(dir.to_path_buf()));
    }
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| BenchError::Peer(format!("cannot start node: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| BenchError::Peer("node has no stdin".into()))?;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child
        .wait_with_output()
        .map_err(|e| BenchError::Peer(format!("node: {e}")))?;
    writer
        .join()
        .map_err(|_| BenchError::Peer("writing to node panicked".into()))?
        .map_err(|e| BenchError::Peer(format!("writing to node: {e}")))?;
    if !output.status.success() {
        return Err(BenchError::Peer(format!(
            "{script} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(output.stdout)
}

/// Every datom of `db` as the set of `[e a v tx]` both peers print after a transaction.
///
/// # Errors
/// A load error of a lazily restored db.
pub fn all_datoms(db: &Db) -> Result<String, datoms_core::Error> {
    let mut rows = Vec::new();
    for d in db.datoms(IndexKind::Eavt, &[])? {
        let d = d?;
        rows.push(Edn::Vector(vec![
            Edn::Int(i64::try_from(d.e).unwrap_or(i64::MAX)),
            Edn::Keyword(d.a.clone()),
            value_to_edn(&d.v),
            Edn::Int(i64::try_from(d.tx).unwrap_or(i64::MAX)),
        ]));
    }
    Ok(Edn::Set(rows).to_string())
}

fn answer(f: impl FnOnce() -> Result<Edn, datoms_core::Error>) -> Answer {
    match f() {
        Ok(v) => Answer::Ok(v.to_string()),
        Err(e) => Answer::Err(e.to_string()),
    }
}

/// The functions a case's query can take as inputs (`#fn NAME`), as `bench/peer/diff.js`
/// defines them for Datascript: `adult?` (an age of at least 21) and `total` (the sum of
/// its values, an aggregate).
///
/// # Errors
/// [`Error::QueryInput`] for another name.
pub fn input_fn(name: &str) -> Result<QueryFn, Error> {
    match name {
        "adult?" => Ok(QueryFn::predicate("adult?", |a| {
            a.first()
                .and_then(QueryValue::as_long)
                .is_some_and(|n| n >= 21)
        })),
        "total" => Ok(QueryFn::values("total", |a| {
            let items = a
                .first()
                .and_then(QueryValue::as_seq)
                .ok_or("total takes values")?;
            let mut sum = 0i64;
            for v in items {
                sum = sum
                    .checked_add(v.as_long().ok_or("total takes longs")?)
                    .ok_or("overflow")?;
            }
            Ok(QueryValue::long(sum))
        })),
        other => Err(Error::QueryInput {
            reason: format!("no input function {other}"),
        }),
    }
}

/// Runs `case` through the `datoms-core` API, as `diff.js` runs it in Datascript.
///
/// # Errors
/// [`BenchError::Core`] when the case's schema does not parse or the db cannot be read.
pub fn run_datoms(case: &Case) -> Result<Answers, BenchError> {
    let schema = parse_schema(&case.schema)?;
    let mut db = Db::new(schema);
    let mut txs = Vec::new();
    for tx in &case.txs {
        let result = match db.with_edn(tx) {
            Ok(report) => {
                db = report.db_after;
                Answer::Ok("ok".into())
            }
            Err(e) => Answer::Err(e.to_string()),
        };
        let datoms = all_datoms(&db)?;
        txs.push((result, datoms));
    }
    let fns = Functions::new();
    let queries = case
        .queries
        .iter()
        .map(|q| {
            answer(|| {
                let mut inputs = vec![Input::Db(&db)];
                for i in &q.inputs {
                    inputs.push(match i.strip_prefix("#fn ") {
                        Some(name) => Input::Fn(input_fn(name)?),
                        None => Input::Edn(i),
                    });
                }
                Ok(Query::parse(&q.query)?.run(&inputs)?.to_edn())
            })
        })
        .collect();
    let pulls = case
        .pulls
        .iter()
        .map(|p| {
            answer(|| {
                let pattern = PullPattern::parse(&db, &p.pattern, &fns)?;
                let entity = QueryValue::from_edn(&parse(&p.entity)?)?;
                Ok(pull_entity(&db, &pattern, &entity, &fns)?.to_edn())
            })
        })
        .collect();
    Ok(Answers {
        txs,
        queries,
        pulls,
    })
}

/// The first place where `datoms` answers `case` differently from `datascript`, if any.
pub fn compare(case: &Case, datascript: &Answers, datoms: &Answers) -> Option<Divergence> {
    let diverged = |check, input: String, ds: String, dm: String| Divergence {
        seed: case.seed,
        check,
        input,
        datascript: ds,
        datoms: dm,
    };
    for (i, (tx, (ds, dm))) in case
        .txs
        .iter()
        .zip(datascript.txs.iter().zip(&datoms.txs))
        .enumerate()
    {
        let succeeded = |a: &Answer| matches!(a, Answer::Ok(_));
        if succeeded(&ds.0) != succeeded(&dm.0) {
            return Some(diverged(Check::Tx(i), tx.clone(), ds.0.text(), dm.0.text()));
        }
        if !Answer::Ok(ds.1.clone()).same_as(&Answer::Ok(dm.1.clone()), Shape::Exact) {
            return Some(diverged(
                Check::Tx(i),
                tx.clone(),
                ds.1.clone(),
                dm.1.clone(),
            ));
        }
    }
    for (i, (q, (ds, dm))) in case
        .queries
        .iter()
        .zip(datascript.queries.iter().zip(&datoms.queries))
        .enumerate()
    {
        if !ds.same_as(dm, q.shape) {
            let input = format!("{} {}", q.query, q.inputs.join(" "));
            return Some(diverged(Check::Query(i), input, ds.text(), dm.text()));
        }
    }
    for (i, (p, (ds, dm))) in case
        .pulls
        .iter()
        .zip(datascript.pulls.iter().zip(&datoms.pulls))
        .enumerate()
    {
        if !ds.same_as(dm, Shape::Exact) {
            let input = format!("(pull {} {})", p.pattern, p.entity);
            return Some(diverged(Check::Pull(i), input, ds.text(), dm.text()));
        }
    }
    None
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Cases run.
    pub cases: usize,
    /// Divergences a [`known::KNOWN`] item explains, with that item's issue reference.
    pub known: Vec<(&'static str, Divergence)>,
    /// Divergences nothing explains.
    pub unexplained: Vec<Divergence>,
}

/// Generates `count` cases from seeds `first_seed..`, runs them on both sides and
/// classifies every divergence.
///
/// # Errors
/// As [`run_datascript`] and [`run_datoms`].
pub fn run(dir: &Path, first_seed: u64, count: usize) -> Result<Findings, BenchError> {
    let mut findings = Findings::default();
    let seeds: Vec<u64> = (0..count as u64).map(|i| first_seed + i).collect();
    // Batches keep one node process's input and output small.
    for chunk in seeds.chunks(500) {
        let cases: Vec<Case> = chunk.iter().map(|s| generate(*s)).collect();
        let peer = run_datascript(dir, &cases)?;
        for (case, ds) in cases.iter().zip(&peer) {
            findings.cases += 1;
            let ours = run_datoms(case)?;
            if let Some(d) = compare(case, ds, &ours) {
                match known::classify(&d) {
                    Some(item) => findings.known.push((item, d)),
                    None => findings.unexplained.push(d),
                }
            }
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_a_function_of_its_seed() {
        let (a, b) = (generate(7), generate(7));
        assert_eq!(a.txs, b.txs);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert_ne!(a.txs, generate(8).txs);
    }

    #[test]
    fn queries_with_function_inputs_are_generated_and_answer() {
        let mut seen = 0;
        for seed in 1..=60 {
            let case = generate(seed);
            let ours = run_datoms(&case).unwrap();
            for (q, a) in case.queries.iter().zip(&ours.queries) {
                if q.inputs.iter().any(|i| i.starts_with("#fn ")) {
                    seen += 1;
                    assert!(matches!(a, Answer::Ok(_)), "seed {seed}: {} {a:?}", q.query);
                }
            }
        }
        assert!(seen > 10, "only {seen} queries with function inputs");
    }

    #[test]
    fn equal_answers_agree_and_any_changed_answer_is_the_first_divergence() {
        let case = generate(3);
        let ours = run_datoms(&case).unwrap();
        assert_eq!(ours.txs.len(), case.txs.len());
        assert_eq!(ours.queries.len(), case.queries.len());
        assert_eq!(ours.pulls.len(), case.pulls.len());
        assert!(compare(&case, &ours, &ours).is_none());

        let mut pull_changed = ours.clone();
        pull_changed.pulls[1] = Answer::Ok("{:db/id 999}".into());
        assert_eq!(
            compare(&case, &pull_changed, &ours).map(|d| d.check),
            Some(Check::Pull(1))
        );

        let mut tx_failed = pull_changed.clone();
        tx_failed.txs[1].0 = Answer::Err("boom".into());
        let failed = &ours.txs[1].0;
        let expect = if matches!(failed, Answer::Ok(_)) {
            Some(Check::Tx(1))
        } else {
            Some(Check::Pull(1))
        };
        assert_eq!(compare(&case, &tx_failed, &ours).map(|d| d.check), expect);

        let mut db_changed = ours.clone();
        db_changed.txs[0].1 = "#{[1 :person/nick \"zz\" 536870913]}".into();
        assert_eq!(
            compare(&case, &db_changed, &ours).map(|d| d.check),
            Some(Check::Tx(0))
        );
    }
}
