//! The replica scenario shared by the JavaScript replica's tests: a db through three
//! commits (a bulk load, then additions and changes, then retractions), the reads
//! answered at each commit, their native answers, and the runs of the package's test
//! scripts (`js/test/node.mjs`, `js/test/browser.mjs`) whose results must equal them.
//!
//! Included by `datoms-wasm/tests/js_replica.rs` (a static host of an exported
//! directory) and by `datoms/tests/wasm_served.rs` (a real `datoms serve`, which that
//! crate's tests can start), so both check the very same scenario.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use datoms_core::restore::Mode;
use datoms_core::{Address, Db, Query};
use datoms_storage::{restore_commit, store, Head, Storage};
use datoms_wasm::read::{self, Format};
use serde_json::{json, Value};

/// A test's result.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The head the scenario writes.
pub const HEAD: &str = "main";
const PEOPLE: u64 = 4000;

const SCHEMA: &str = r#"{:person/email {:db/unique :db.unique/identity}
                         :person/friend {:db/valueType :db.type/ref}
                         :person/age {:db/index true}}"#;

/// The three transactions of the scenario.
fn transactions() -> Vec<String> {
    let person = |i: u64| {
        format!(
            r#"{{:person/email "p{i}@example.com" :person/name "Person {i}" :person/age {} :person/friend [:person/email "p{}@example.com"]}}"#,
            18 + (i * 37) % 60,
            (i * 7) % i.max(1)
        )
    };
    let mut load = String::from("[");
    for i in 0..PEOPLE {
        // Friends point backwards, to people of the same transaction asserted earlier
        // in the vector: an ordinary lookup ref needs them to exist, so the first
        // person has none.
        if i == 0 {
            load.push_str(
                r#"{:person/email "p0@example.com" :person/name "Person 0" :person/age 18}"#,
            );
        } else {
            load.push_str(&person(i));
        }
    }
    load.push(']');
    let mut grow = String::from("[");
    for i in PEOPLE..PEOPLE + 40 {
        grow.push_str(&format!(
            r#"{{:person/email "p{i}@example.com" :person/name "Person {i}" :person/age {}}}"#,
            20 + i % 5
        ));
    }
    for i in (0..PEOPLE).step_by(400) {
        grow.push_str(&format!(
            r#"{{:person/email "p{i}@example.com" :person/age 99}}"#
        ));
    }
    grow.push(']');
    let mut shrink = String::from("[");
    for i in (5..PEOPLE).step_by(500) {
        shrink.push_str(&format!(
            r#"[:db/retractEntity [:person/email "p{i}@example.com"]]"#
        ));
    }
    shrink.push_str(r#"{:person/email "p1@example.com" :person/name "Renamed"}]"#);
    vec![load, grow, shrink]
}

/// The reads answered at every commit, in both runtimes.
fn reads() -> Value {
    json!([
        {"kind": "q", "name": "young",
         "query": "[:find ?name ?age :where [?e :person/age ?age] [(< ?age 21)] [?e :person/name ?name]]",
         "inputs": []},
        {"kind": "q", "name": "count-at-least",
         "query": "[:find (count ?e) . :in $ ?min :where [?e :person/age ?a] [(>= ?a ?min)]]",
         "inputs": ["60"]},
        {"kind": "q", "name": "names-of",
         "query": "[:find [?n ...] :in $ [?m ...] :where [?e :person/email ?m] [?e :person/name ?n]]",
         "inputs": ["[\"p1@example.com\" \"p400@example.com\" \"p4001@example.com\"]"]},
        {"kind": "q", "name": "friends-of-friends",
         "query": "[:find ?n2 :in $ ?m :where [?e :person/email ?m] [?e :person/friend ?f] [?f :person/friend ?f2] [?f2 :person/name ?n2]]",
         "inputs": ["\"p999@example.com\""]},
        {"kind": "pull", "name": "pull-friend",
         "pattern": "[:person/name :person/age {:person/friend [:person/name :person/email]}]",
         "entity": "[:person/email \"p400@example.com\"]"},
        {"kind": "pull", "name": "pull-missing", "pattern": "[*]",
         "entity": "[:person/email \"p5@example.com\"]"},
        {"kind": "datoms", "name": "avet-age-99", "index": "avet",
         "components": "[:person/age 99]", "limit": 100},
        {"kind": "datoms", "name": "eavt-entity", "index": "eavt", "components": "[2]"},
    ])
}

/// The native answers of `reads` on `db`: EDN text, and JSON text (compared as values).
fn answers(db: &Db, reads: &Value) -> Result<Value, Box<dyn std::error::Error>> {
    let mut out = serde_json::Map::new();
    for r in reads.as_array().ok_or("reads")? {
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        let (edn, json) = match r["kind"].as_str() {
            Some("q") => {
                let inputs: Vec<String> = serde_json::from_value(r["inputs"].clone())?;
                let edn = read::query(db, &s("query"), &inputs, Format::Edn)?;
                // The replica's printing is datoms-core's: the same text as running the
                // query directly (what `datoms query --format edn` prints).
                let direct = Query::parse(&s("query"))?;
                let mut values = inputs.iter();
                let ins: Vec<datoms_core::Input<'_>> = direct
                    .inputs()
                    .iter()
                    .map(|spec| match spec.starts_with('$') {
                        true => datoms_core::Input::Db(db),
                        false => {
                            datoms_core::Input::Edn(values.next().map_or("nil", String::as_str))
                        }
                    })
                    .collect();
                assert_eq!(edn, direct.run(&ins)?.to_string());
                (edn, read::query(db, &s("query"), &inputs, Format::Json)?)
            }
            Some("pull") => (
                read::pull(db, &s("pattern"), &s("entity"), Format::Edn)?,
                read::pull(db, &s("pattern"), &s("entity"), Format::Json)?,
            ),
            Some("datoms") => {
                let limit = r["limit"].as_u64().map(|l| l as usize);
                (
                    read::datoms(db, &s("index"), &s("components"), limit, Format::Edn)?,
                    read::datoms(db, &s("index"), &s("components"), limit, Format::Json)?,
                )
            }
            other => return Err(format!("unknown read kind {other:?}").into()),
        };
        out.insert(s("name"), json!({"edn": edn, "json": json}));
    }
    Ok(Value::Object(out))
}

fn node_addresses(db: &Db) -> HashSet<Address> {
    db.loaded_nodes().iter().map(|n| n.address()).collect()
}

/// Stores the scenario's three commits in `storage` (head [`HEAD`] at the last one),
/// restores each natively (the first in full, the others incrementally from the one
/// before) and answers the reads on it. Returns the scenario (`{"head", "reads",
/// "steps"}`, a step per commit) and each commit's head.
///
/// # Errors
/// Storage, transaction and query errors.
pub async fn build<S: Storage + ?Sized>(
    storage: &S,
) -> Result<(Value, Vec<Head>), Box<dyn std::error::Error>> {
    let schema = datoms_core::edn::parse_schema(SCHEMA)?;
    let mut db = Db::new(schema);
    let mut heads = Vec::new();
    for tx in transactions() {
        db = db.with_edn(&tx)?.db_after;
        let stored = store(&db, storage, HEAD).await?;
        heads.push(storage.get_head(HEAD).await?.ok_or("no head")?);
        assert_eq!(heads.last().map(|h| h.commit), Some(stored.commit));
        db = stored.db;
    }
    let reads = reads();
    let mut steps = Vec::new();
    let mut previous: Option<Db> = None;
    for head in &heads {
        let restored = restore_commit(storage, head.commit, previous.as_ref(), Mode::Eager).await?;
        let nodes = node_addresses(&restored.db);
        let new_nodes = match &previous {
            Some(p) => nodes.difference(&node_addresses(p)).count(),
            None => nodes.len(),
        } as u64;
        // The native incremental restore fetches exactly the nodes new in this commit.
        assert_eq!(
            restored.stats.nodes_fetched - restored.stats.nodes_unused,
            new_nodes,
            "{:?}",
            restored.stats
        );
        steps.push(json!({
            "commit": head.commit.to_string(),
            "headDocument": {"commit": head.commit.to_string(), "version": head.version.0},
            "nodesFetched": restored.stats.nodes_fetched,
            "nodesUnused": restored.stats.nodes_unused,
            "newNodes": new_nodes,
            "totalNodes": nodes.len(),
            "datoms": restored.db.len(),
            "answers": answers(&restored.db, &reads)?,
        }));
        previous = Some(restored.db);
    }
    // Every incremental step is a small part of a full restore.
    for step in &steps[1..] {
        assert!(
            step["nodesFetched"].as_u64() < Some(step["totalNodes"].as_u64().unwrap_or(0) / 4),
            "{step}"
        );
    }
    Ok((json!({"head": HEAD, "reads": reads, "steps": steps}), heads))
}

/// Writes `scenario` as `dir/scenario.json`, where the test scripts' server serves it.
///
/// # Errors
/// I/O errors.
pub fn write(dir: &Path, scenario: &Value) -> TestResult {
    std::fs::write(
        dir.join("scenario.json"),
        serde_json::to_string_pretty(scenario)?,
    )?;
    Ok(())
}

/// The JavaScript package's directory (both including crates sit at the workspace's
/// root).
pub fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("datoms-wasm")
        .join("js")
}

fn required() -> bool {
    std::env::var("DATOMS_WASM_REQUIRED").is_ok_and(|v| v == "1")
}

/// True if the JavaScript runs can go ahead; else says why not (and fails when required).
pub fn ready(tool: &str) -> bool {
    let pkg = package_dir().join("pkg").join("datoms_wasm_bg.wasm");
    let missing = if !pkg.exists() {
        Some(format!(
            "{} is not built (run scripts/wasm.sh build)",
            pkg.display()
        ))
    } else if Command::new(tool).arg("--version").output().is_err() {
        Some(format!(
            "{tool} is not installed (run scripts/setup/wasm.sh)"
        ))
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if required() => panic!("DATOMS_WASM_REQUIRED=1 but {why}"),
        Some(why) => {
            eprintln!("skipping the JavaScript replica run: {why}");
            false
        }
    }
}

/// Where the scenario's database is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// A static host of an exported directory (the test scripts' own server).
    Static,
    /// A real `datoms serve`, offering one-round-trip sync.
    Served,
}

/// Runs a test script of the package (`node.mjs`, `browser.mjs`) with `dir/scenario.json`
/// and compares what it saw with the scenario's native answers.
///
/// # Errors
/// A script that could not run or printed no result.
///
/// # Panics
/// On every difference (a test).
pub fn run_script(script: &str, dir: &Path, scenario: &Value, host: Host) -> TestResult {
    let mut command = Command::new("node");
    command
        .arg(package_dir().join("test").join(script))
        .arg(dir);
    if let Ok(chromium) = std::env::var("CHROMIUM") {
        command.arg(chromium);
    }
    let output = command.output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let result: Value = serde_json::from_str(line).map_err(|e| {
        format!(
            "{script}: no JSON result ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    assert!(
        result.get("error").is_none(),
        "{script}: {}",
        result["error"]
    );
    assert!(
        output.status.success(),
        "{script} exited with {}",
        output.status
    );
    let expected = scenario["steps"].as_array().ok_or("steps")?;
    let seen = result["steps"].as_array().ok_or("result steps")?;
    assert_eq!(seen.len(), expected.len());
    for (i, (got, want)) in seen.iter().zip(expected).enumerate() {
        assert_eq!(got["commit"], want["commit"], "{script} step {i}");
        assert_eq!(got["datoms"], want["datoms"], "{script} step {i}");
        assert_eq!(
            got["stats"]["nodesFetched"], want["nodesFetched"],
            "{script} step {i}"
        );
        assert_eq!(
            got["stats"]["nodesFetched"].as_u64().unwrap_or(0)
                - got["stats"]["nodesUnused"].as_u64().unwrap_or(0),
            want["newNodes"].as_u64().unwrap_or(u64::MAX),
            "{script} step {i}: fetched other nodes than the new ones"
        );
        for (name, answer) in want["answers"].as_object().ok_or("answers")? {
            let got = &got["answers"][name];
            assert_eq!(got["edn"], answer["edn"], "{script} step {i} {name} (EDN)");
            let json: Value = serde_json::from_str(answer["json"].as_str().unwrap_or("?"))?;
            assert_eq!(got["json"], json, "{script} step {i} {name} (JSON)");
        }
    }
    let fetched: Vec<&Value> = seen.iter().map(|s| &s["stats"]["nodesFetched"]).collect();
    eprintln!(
        "{script}: {} commits followed, nodes fetched per step {fetched:?}, {}",
        seen.len(),
        result["userAgent"].as_str().unwrap_or("node")
    );
    // Every request the replica made went through the fetch the page gave it, and the
    // replica's stats count each one.
    assert_eq!(
        result["fetches"], result["totals"]["requests"],
        "{script}: requests made and requests counted"
    );
    if host == Host::Served {
        // With one-round-trip sync each follow step is one request, of one round trip.
        for (i, step) in seen.iter().enumerate().skip(1) {
            assert_eq!(step["stats"]["requests"], 1, "{script} step {i}: {step}");
            assert_eq!(step["stats"]["roundTrips"], 1, "{script} step {i}");
        }
        if script == "browser.mjs" {
            assert_eq!(result["watched"], true, "{script}");
        }
        return Ok(());
    }
    // In the browser the commits arrive by the event stream (one stream per follow).
    if script == "browser.mjs" {
        assert_eq!(result["watched"], true, "{script}");
        assert_eq!(
            result["watchStreams"].as_u64(),
            Some(seen.len() as u64 - 1),
            "{script}"
        );
    }
    // The blobs requested are the blobs counted: nothing fetched twice, no stray request.
    assert_eq!(
        result["blobRequests"], result["totals"]["blobsFetched"],
        "{script}"
    );
    Ok(())
}
