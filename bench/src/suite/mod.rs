//! Datascript's own test suite, ported as data: each file of `bench/ds-suite/` is one
//! file of Datascript's `test/datascript/test/`, each of its tests one `deftest` (under
//! the same name), each test a list of steps (build a db, transact, q, pull, pull-many,
//! entity, datoms, seek-datoms, index-range). The expected answers are not written down:
//! every step runs in Datascript 1.8.1 on node (`bench/peer/suite.js`, through
//! [`crate::diff::run_node`]) and through the `datoms-core` API ([`datoms_side`]), and the
//! two answers are compared as Datascript's tests compare them, in the
//! [`crate::diff::canonical`] form: sets as sets, bags (`:q/bag`) as bags, vectors in
//! order, errors by kind (both fail).
//!
//! A step that answers differently is a failure unless `bench/ds-suite/known.edn` lists
//! it (by `file / test #step`, or `file / test` for every step of a test) with the
//! reason, which `docs/datascript-differences.md` explains; a listed step that no longer
//! differs is a failure too, so the list stays true. See `bench/ds-suite/README.md` for
//! the case format and `bench/tests/datascript_suite.rs` for the test CI runs.

pub mod datoms_side;
pub mod fns;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use datoms_core::edn::{parse, Edn};
use serde::Serialize;

use crate::diff::{run_node, Answer, PeerAnswer, Shape};
use crate::error::BenchError;

/// The folder of the case files in this source tree.
pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ds-suite")
}

/// One argument of a step, as both sides read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arg {
    /// The db of this test named so (written `$`, `$2`, `$db1`… in the case file).
    Db(String),
    /// EDN text, read by each side's own reader.
    Edn(String),
    /// A function of [`fns`] (written `(fn NAME)`), passed as a query input.
    Fn(String),
    /// A plain name: the db a `:db` or `:with` step makes.
    Name(String),
}

/// What a step does (see the module docs of `bench/peer/suite.js` for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `[:db NAME SCHEMA?]`: an empty db.
    Db,
    /// `[:tx DB TX]`: transacts on DB.
    Tx,
    /// `[:with NEW FROM TX]`: transacts on FROM into a new db.
    With,
    /// `[:filter NEW FROM (fn PRED)]`: `d/filter` of FROM by a predicate of
    /// [`fns::filter_pred`], as a new db.
    Filter,
    /// `[:q QUERY INPUT…]`, compared exactly (a set as a set).
    Q,
    /// `[:q/bag QUERY INPUT…]`, compared as a bag (the test compares `(set …)`, `sort`s
    /// or counts).
    QBag,
    /// `[:pull DB PATTERN EID]`.
    Pull,
    /// `[:pull-many DB PATTERN EIDS]`.
    PullMany,
    /// `[:entity DB EID ATTR…]`.
    Entity,
    /// `[:datoms DB INDEX COMPONENT…]`.
    Datoms,
    /// `[:seek-datoms DB INDEX COMPONENT…]`.
    SeekDatoms,
    /// `[:index-range DB ATTR START END]`.
    IndexRange,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "db" => Op::Db,
            "tx" => Op::Tx,
            "with" => Op::With,
            "filter" => Op::Filter,
            "q" => Op::Q,
            "q/bag" => Op::QBag,
            "pull" => Op::Pull,
            "pull-many" => Op::PullMany,
            "entity" => Op::Entity,
            "datoms" => Op::Datoms,
            "seek-datoms" => Op::SeekDatoms,
            "index-range" => Op::IndexRange,
            _ => return None,
        })
    }

    /// The name `suite.js` knows the step by.
    pub fn name(self) -> &'static str {
        match self {
            Op::Db => "db",
            Op::Tx => "tx",
            Op::With => "with",
            Op::Filter => "filter",
            Op::Q | Op::QBag => "q",
            Op::Pull => "pull",
            Op::PullMany => "pull-many",
            Op::Entity => "entity",
            Op::Datoms => "datoms",
            Op::SeekDatoms => "seek-datoms",
            Op::IndexRange => "index-range",
        }
    }

    /// True for a step that checks an answer; `:db` only sets a test up (but see
    /// [`run`]: a schema Datascript refuses is a check).
    pub fn is_check(self) -> bool {
        !matches!(self, Op::Db | Op::Filter)
    }

    fn shape(self) -> Shape {
        match self {
            Op::QBag => Shape::Bag,
            _ => Shape::Exact,
        }
    }
}

/// One step of a test.
#[derive(Clone, Debug)]
pub struct Step {
    /// What it does.
    pub op: Op,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// The step as written, for messages.
    pub text: String,
}

#[derive(Serialize)]
struct PeerStep<'a> {
    op: &'static str,
    args: &'a [Arg],
}

/// One `deftest` of a Datascript test file.
#[derive(Clone, Debug)]
pub struct SuiteTest {
    /// Datascript's name for it (`test-joins`), with a `testing` label where one test is
    /// split.
    pub name: String,
    /// Its steps, fixtures expanded.
    pub steps: Vec<Step>,
}

/// One ported Datascript test file.
#[derive(Clone, Debug)]
pub struct SuiteFile {
    /// Datascript's file name (`query.cljc`).
    pub file: String,
    /// Its tests.
    pub tests: Vec<SuiteTest>,
}

fn bad(path: &Path, what: impl fmt::Display) -> BenchError {
    BenchError::Peer(format!("{}: {what}", path.display()))
}

fn key_str<'a>(entries: &'a [(Edn, Edn)], key: &str) -> Option<&'a Edn> {
    entries
        .iter()
        .find(|(k, _)| matches!(k, Edn::Keyword(k) if k.as_str() == key))
        .map(|(_, v)| v)
}

fn parse_arg(form: &Edn) -> Arg {
    match form {
        Edn::Symbol(s) if s.starts_with('$') => Arg::Db(s.clone()),
        Edn::List(items) => match items.as_slice() {
            [Edn::Symbol(f), Edn::Symbol(name)] if f == "fn" => Arg::Fn(name.clone()),
            _ => Arg::Edn(form.to_string()),
        },
        other => Arg::Edn(other.to_string()),
    }
}

fn parse_step(
    path: &Path,
    form: &Edn,
    fixtures: &HashMap<String, Vec<Step>>,
    out: &mut Vec<Step>,
) -> Result<(), BenchError> {
    let Edn::Vector(items) = form else {
        return Err(bad(path, format!("a step is a vector, got {form}")));
    };
    let Some(Edn::Keyword(op)) = items.first() else {
        return Err(bad(path, format!("a step starts with its op, got {form}")));
    };
    if op.as_str() == "fixture" {
        let name = items.get(1).map(ToString::to_string).unwrap_or_default();
        let steps = fixtures
            .get(&name)
            .ok_or_else(|| bad(path, format!("no fixture {name}")))?;
        out.extend(steps.iter().cloned());
        return Ok(());
    }
    let op = Op::parse(op.as_str()).ok_or_else(|| bad(path, format!("unknown op in {form}")))?;
    let mut args: Vec<Arg> = items[1..].iter().map(parse_arg).collect();
    match (op, args.first()) {
        (Op::Db | Op::With | Op::Filter, Some(Arg::Db(name))) => {
            args[0] = Arg::Name(name.clone());
        }
        (Op::Db | Op::With | Op::Filter, _) => {
            return Err(bad(path, format!("{form} names no db")))
        }
        (Op::Q | Op::QBag, _) => {}
        (_, Some(Arg::Db(_))) => {}
        _ => return Err(bad(path, format!("{form} takes a db first"))),
    }
    if op == Op::Db && args.len() == 1 {
        args.push(Arg::Edn("{}".into()));
    }
    out.push(Step {
        op,
        args,
        text: form.to_string(),
    });
    Ok(())
}

fn parse_steps(
    path: &Path,
    form: Option<&Edn>,
    fixtures: &HashMap<String, Vec<Step>>,
) -> Result<Vec<Step>, BenchError> {
    let Some(Edn::Vector(forms)) = form else {
        return Err(bad(path, "expected a vector of steps"));
    };
    let mut steps = Vec::new();
    for f in forms {
        parse_step(path, f, fixtures, &mut steps)?;
    }
    Ok(steps)
}

/// Reads one case file: `{:file NAME :fixtures {NAME [STEP…]} :tests [{:test NAME
/// :steps [STEP…]}…]}`.
///
/// # Errors
/// [`BenchError::Peer`] naming the file for a file that cannot be read or is not a
/// case file.
pub fn load(path: &Path) -> Result<SuiteFile, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, e))?;
    let form = parse(&text).map_err(|e| bad(path, e))?;
    let Edn::Map(entries) = form else {
        return Err(bad(path, "a case file is a map"));
    };
    let Some(Edn::String(file)) = key_str(&entries, "file") else {
        return Err(bad(path, ":file is missing"));
    };
    let mut fixtures = HashMap::new();
    if let Some(Edn::Map(fs)) = key_str(&entries, "fixtures") {
        for (name, steps) in fs {
            let steps = parse_steps(path, Some(steps), &fixtures)?;
            fixtures.insert(name.to_string(), steps);
        }
    }
    let Some(Edn::Vector(tests)) = key_str(&entries, "tests") else {
        return Err(bad(path, ":tests is missing"));
    };
    let mut out = Vec::new();
    for t in tests {
        let Edn::Map(t) = t else {
            return Err(bad(path, format!("a test is a map, got {t}")));
        };
        let Some(Edn::String(name)) = key_str(t, "test") else {
            return Err(bad(path, "a test has no :test name"));
        };
        out.push(SuiteTest {
            name: name.clone(),
            steps: parse_steps(path, key_str(t, "steps"), &fixtures)?,
        });
    }
    Ok(SuiteFile {
        file: file.clone(),
        tests: out,
    })
}

/// Every case file of `dir` (`*.edn` but `known.edn`), by name.
///
/// # Errors
/// As [`load`].
pub fn load_all(dir: &Path) -> Result<Vec<SuiteFile>, BenchError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "edn")
                && p.file_name().is_some_and(|n| n != "known.edn")
        })
        .collect();
    paths.sort();
    paths.iter().map(|p| load(p)).collect()
}

/// The known divergences: `bench/ds-suite/known.edn`, a map from `"file / test #step"`
/// (one step) or `"file / test"` (every step of the test) to the reason.
///
/// # Errors
/// [`BenchError::Peer`] for a file that is not such a map.
pub fn load_known(path: &Path) -> Result<BTreeMap<String, String>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, e))?;
    let Edn::Map(entries) = parse(&text).map_err(|e| bad(path, e))? else {
        return Err(bad(path, "known.edn is a map"));
    };
    entries
        .into_iter()
        .map(|(k, v)| match (k, v) {
            (Edn::String(k), Edn::String(v)) => Ok((k, v)),
            (k, _) => Err(bad(path, format!("{k}: expected a string key and reason"))),
        })
        .collect()
}

/// Runs every test of `files` in Datascript, in one node process: per test, per step.
///
/// # Errors
/// As [`run_node`]; [`BenchError::Peer`] when `suite.js` prints something unexpected.
pub fn run_datascript(dir: &Path, files: &[SuiteFile]) -> Result<Vec<Vec<Answer>>, BenchError> {
    #[derive(Serialize)]
    struct PeerTest<'a> {
        steps: Vec<PeerStep<'a>>,
    }
    let tests: Vec<PeerTest<'_>> = files
        .iter()
        .flat_map(|f| &f.tests)
        .map(|t| PeerTest {
            steps: t
                .steps
                .iter()
                .map(|s| PeerStep {
                    op: s.op.name(),
                    args: &s.args,
                })
                .collect(),
        })
        .collect();
    let input = serde_json::to_vec(&tests).map_err(|e| BenchError::Peer(e.to_string()))?;
    let stdout = run_node(dir, "suite.js", input)?;
    let answers: Vec<Vec<PeerAnswer>> = serde_json::from_slice(&stdout)
        .map_err(|e| BenchError::Peer(format!("suite.js printed unexpected output: {e}")))?;
    Ok(answers
        .into_iter()
        .map(|t| t.into_iter().map(Answer::from).collect())
        .collect())
}

/// A step whose answers differ.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// `file / test #step` (steps count from 1).
    pub key: String,
    /// The step as written.
    pub step: String,
    /// Datascript's answer.
    pub datascript: String,
    /// datoms' answer.
    pub datoms: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}\n  datascript: {}\n  datoms:     {}",
            self.key, self.step, self.datascript, self.datoms
        )
    }
}

/// What one file's tests found.
#[derive(Clone, Debug, Default)]
pub struct FileFindings {
    /// Datascript's file name.
    pub file: String,
    /// Tests run.
    pub tests: usize,
    /// Checks (steps but `:db`).
    pub checks: usize,
    /// Checks that answered as Datascript.
    pub passed: usize,
    /// Divergences `known.edn` lists.
    pub known: Vec<Divergence>,
    /// Divergences it does not, and steps the harness could not run on either side (a
    /// mistake of the case file).
    pub unexplained: Vec<Divergence>,
    /// Checks both sides failed (an error test of Datascript's, passed when both
    /// fail), with both messages.
    pub both_failed: Vec<Divergence>,
}

/// What a run found: per file, and the `known.edn` entries that matched no divergence.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// Per file, in file order.
    pub files: Vec<FileFindings>,
    /// Known entries no step diverged for (stale: the divergence is gone).
    pub stale: Vec<String>,
}

/// True for an error of the harness itself (`suite.js` or [`datoms_side`] could not
/// read the step), which says nothing about either database.
fn is_harness_error(a: &Answer) -> bool {
    matches!(a, Answer::Err(e) if e.contains("suite.js:") || e.contains("malformed suite step") || e.contains("in this test"))
}

/// Runs `files` on both sides and compares every step.
///
/// # Errors
/// As [`run_datascript`].
pub fn run(
    dir: &Path,
    files: &[SuiteFile],
    known: &BTreeMap<String, String>,
) -> Result<Findings, BenchError> {
    let peer = run_datascript(dir, files)?;
    compare(files, peer, known)
}

/// Runs `files` in datoms and compares every step with `peer`, Datascript's answers
/// (per test, per step, in file order).
///
/// # Errors
/// [`BenchError::Peer`] when `peer` holds fewer tests than `files`.
pub fn compare(
    files: &[SuiteFile],
    peer: Vec<Vec<Answer>>,
    known: &BTreeMap<String, String>,
) -> Result<Findings, BenchError> {
    let mut peer = peer.into_iter();
    let mut findings = Findings::default();
    let mut used = std::collections::BTreeSet::new();
    for file in files {
        let mut ff = FileFindings {
            file: file.file.clone(),
            ..FileFindings::default()
        };
        for test in &file.tests {
            ff.tests += 1;
            let ds = peer
                .next()
                .ok_or_else(|| BenchError::Peer("suite.js answered fewer tests".into()))?;
            let ours = datoms_side::run_test(test);
            let test_key = format!("{} / {}", file.file, test.name);
            for (i, (step, (ds, ours))) in test.steps.iter().zip(ds.iter().zip(&ours)).enumerate() {
                let key = format!("{test_key} #{}", i + 1);
                let d = Divergence {
                    key: key.clone(),
                    step: step.text.clone(),
                    datascript: ds.text(),
                    datoms: ours.text(),
                };
                if is_harness_error(ds) || is_harness_error(ours) {
                    ff.unexplained.push(d);
                    continue;
                }
                if matches!((ds, ours), (Answer::Err(_), Answer::Err(_))) {
                    ff.both_failed.push(d.clone());
                }
                let same = match step.op {
                    Op::Db | Op::Filter => {
                        matches!(ds, Answer::Ok(_)) == matches!(ours, Answer::Ok(_))
                    }
                    op => ds.same_as(ours, op.shape()),
                };
                // A `:db` step sets a test up, unless Datascript refuses its schema:
                // then it is one of the test's error checks.
                let check = step.op.is_check() || matches!(ds, Answer::Err(_));
                if check {
                    ff.checks += 1;
                }
                if same {
                    if check {
                        ff.passed += 1;
                    }
                    continue;
                }
                if known.contains_key(&key) {
                    used.insert(key);
                    ff.known.push(d);
                } else if known.contains_key(&test_key) {
                    used.insert(test_key.clone());
                    ff.known.push(d);
                } else {
                    ff.unexplained.push(d);
                }
            }
        }
        findings.files.push(ff);
    }
    findings.stale = known
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(text: &str) -> Step {
        let mut out = Vec::new();
        parse_step(
            Path::new("t.edn"),
            &parse(text).unwrap(),
            &HashMap::new(),
            &mut out,
        )
        .unwrap();
        out.remove(0)
    }

    #[test]
    fn steps_read_dbs_functions_and_edn_arguments() {
        let s = step("[:q [:find ?e :in $ $2 ?f] $ $2 (fn even?) [1 2]]");
        assert_eq!(s.op, Op::Q);
        assert_eq!(
            s.args,
            vec![
                Arg::Edn("[:find ?e :in $ $2 ?f]".into()),
                Arg::Db("$".into()),
                Arg::Db("$2".into()),
                Arg::Fn("even?".into()),
                Arg::Edn("[1 2]".into()),
            ]
        );
        let s = step("[:db $]");
        assert_eq!(s.args, vec![Arg::Name("$".into()), Arg::Edn("{}".into())]);
        assert_eq!(step("[:with $2 $ []]").args[0], Arg::Name("$2".into()));
    }

    #[test]
    fn a_step_without_its_db_or_with_an_unknown_op_is_refused() {
        let f = |text: &str| {
            parse_step(
                Path::new("t.edn"),
                &parse(text).unwrap(),
                &HashMap::new(),
                &mut Vec::new(),
            )
        };
        assert!(f("[:pull [*] 1]").is_err());
        assert!(f("[:frobnicate $]").is_err());
        assert!(f("[:fixture nope]").is_err());
    }

    fn one_test(steps: &[&str]) -> Vec<SuiteFile> {
        let mut out = Vec::new();
        for text in steps {
            parse_step(
                Path::new("t.edn"),
                &parse(text).unwrap(),
                &HashMap::new(),
                &mut out,
            )
            .unwrap();
        }
        vec![SuiteFile {
            file: "t.cljc".into(),
            tests: vec![SuiteTest {
                name: "test-t".into(),
                steps: out,
            }],
        }]
    }

    #[test]
    fn a_different_answer_is_a_divergence_unless_known_and_a_stale_entry_is_reported() {
        let files = one_test(&[
            "[:db $]",
            "[:tx $ [[:db/add 1 :name \"Ivan\"]]]",
            "[:q [:find ?e :where [?e :name]] $]",
            "[:q/bag [:find [?e ...] :where [?e :name]] $]",
        ]);
        let ours = datoms_side::run_test(&files[0].tests[0]);
        let ok = |t: &str| Answer::Ok(t.into());
        // Datascript agreeing (a set in another order, a bag as a list) passes.
        let same = vec![ours[0].clone(), ours[1].clone(), ok("#{[1]}"), ok("(1)")];
        let f = compare(&files, vec![same.clone()], &BTreeMap::new()).unwrap();
        assert_eq!((f.files[0].checks, f.files[0].passed), (3, 3));
        assert!(f.files[0].unexplained.is_empty() && f.stale.is_empty());

        // Another answer, or an error where datoms answers, diverges.
        let mut other = same.clone();
        other[2] = ok("#{[2]}");
        other[3] = Answer::Err("boom".into());
        let f = compare(&files, vec![other.clone()], &BTreeMap::new()).unwrap();
        let keys: Vec<&str> = f.files[0]
            .unexplained
            .iter()
            .map(|d| d.key.as_str())
            .collect();
        assert_eq!(keys, ["t.cljc / test-t #3", "t.cljc / test-t #4"]);

        // Listed steps are known; a listed step that agrees is stale.
        let known: BTreeMap<String, String> = [
            ("t.cljc / test-t #3".to_string(), "r".to_string()),
            ("t.cljc / test-t #4".to_string(), "r".to_string()),
        ]
        .into();
        let f = compare(&files, vec![other], &known).unwrap();
        assert_eq!(f.files[0].known.len(), 2);
        assert!(f.files[0].unexplained.is_empty() && f.stale.is_empty());
        let f = compare(&files, vec![same], &known).unwrap();
        assert_eq!(f.stale.len(), 2);
    }

    #[test]
    fn a_step_the_harness_cannot_run_never_passes() {
        let files = one_test(&["[:q [:find ?e :where [?e :name]] $nope]"]);
        let peer = vec![vec![Answer::Err("suite.js: no db $nope".into())]];
        let f = compare(&files, peer, &BTreeMap::new()).unwrap();
        assert_eq!(f.files[0].unexplained.len(), 1);
        assert_eq!(f.files[0].passed, 0);
    }

    #[test]
    fn every_case_file_loads() {
        let files = load_all(&cases_dir()).unwrap();
        assert!(!files.is_empty());
        for f in &files {
            assert!(f.file.ends_with(".cljc"), "{}", f.file);
            assert!(!f.tests.is_empty(), "{} has no tests", f.file);
        }
        load_known(&cases_dir().join("known.edn")).unwrap();
    }
}
