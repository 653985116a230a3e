//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/seed-*` from
//! real encodings: the nodes, commits and tx logs of a few databases (small nodes, so
//! branches several levels deep; a large value stored out of line; a commit with a
//! parent), the EDN, tx data, queries and pull patterns of the crate's own tests, and
//! byte programs for the tree target. Deterministic: running it again rewrites the same
//! files. `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.

use std::fs;
use std::path::{Path, PathBuf};

use datoms_core::addressing::commit_for;
use datoms_core::{Db, Error};
use datoms_fuzz::{sample_db, DATA, SCHEMA};

const QUERY_TESTS: &str = include_str!("../../datoms-core/tests/query_corpus.rs");

const EDN: &[&str] = &[
    r#"{:a [1 -2 +3 4.5 -0.0 1e10 6M 7N 0x1F \c \newline "s\t\"q\"\u00e9" nil true false]
        :b #{:x :y/z sym ns/sym} :c (1 (2 (3))) #_ :skipped ; comment
        :d #inst "2020-01-01T00:00:00.000Z" :e #uuid "5b2a6bb5-5d63-4d57-a3b6-3b7d0f6d5d6a"
        :f #my/tag [##Inf ##-Inf ##NaN] :g {} :h [] :i "" :j 9223372036854775807}"#,
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "(defn f [x] (+ x 1))",
    r#"\u0041 \space \tab "multi
line" -9223372036854775808 1.5e-300"#,
];

const TX: &[&str] = &[
    r#"[{:db/id "new" :name "Anna" :age 22 :friend [1 2] :aka ["a" "b"]}]"#,
    r#"[[:db/add 1 :age 16] [:db/retract 2 :age 37] [:db/add -1 :name "T"] [:db/add -1 :parent 1]]"#,
    r#"[[:db/retractEntity 3] [:db.fn/retractEntity [:name "Ivan"]]]"#,
    r#"[[:db/cas 1 :age 15 16] [:db/cas [:name "Petr"] :email nil "p@x"]]"#,
    r#"[{:name "Ivan" :age 99} {:db/id [:name "Oleg"] :_friend [4]}]"#,
    r#"[[:db/retract 1 :aka] [:db.fn/retractAttribute 1 :friend] {:db/id :db/current-tx :kind :batch}]"#,
    r#"[{:db/id 3 :part [{:name "C1" :part [{:name "C2"}]}]} [:db/add "x" :blob #bytes "AQID"]]"#,
    r#"[{:db/id 1 :score 2.25 :ok false :id #uuid "00000000-0000-0000-0000-000000000001" :at #inst "1970-01-01T00:00:00Z"}]"#,
];

const PULL: &[&str] = &[
    "[*]",
    "[:name {:friend [:name]} :_friend]",
    "[:name (:_friend :as :liked-by)]",
    "[:db/id :name {:friend ...}]",
    "[:name {:friend 2} {:part [*]}]",
    "[(:aka :limit 1) (:age :default 0) [:email :as \"mail\"] :_parent {:_part [:name]}]",
    "[(limit :aka 1) (default :score 0.0) {(:friend :limit 1) [:db/id]}]",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let dbs = databases()?;

    let mut nodes = Vec::new();
    let mut commits = Vec::new();
    let mut logs = Vec::new();
    for db in &dbs {
        let (commit, new) = commit_for(db)?;
        nodes.extend(new.nodes.into_iter().map(|n| n.bytes));
        commits.push(commit.encode());
        logs.push(commit.log.encoded().to_vec());
    }
    // Keep a spread of nodes, not every one: each kind, level and size appears.
    nodes.sort_by_key(Vec::len);
    let step = (nodes.len() / 48).max(1);
    let nodes: Vec<_> = nodes.into_iter().step_by(step).collect();
    write(&root, "node_decode", &nodes)?;
    write(&root, "commit_decode", &commits)?;
    write(&root, "tx_log_decode", &logs)?;

    let queries = raw_strings(QUERY_TESTS, ":find");
    let mut edn: Vec<Vec<u8>> = EDN.iter().map(|s| s.as_bytes().to_vec()).collect();
    edn.push(SCHEMA.into());
    edn.push(DATA.into());
    edn.extend(queries.iter().take(8).cloned());
    write(&root, "edn_parse", &edn)?;
    let mut tx: Vec<Vec<u8>> = TX.iter().map(|s| s.as_bytes().to_vec()).collect();
    tx.push(DATA.into());
    write(&root, "tx_data", &tx)?;
    write(&root, "query", &queries)?;
    write(
        &root,
        "pull_pattern",
        &PULL
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )?;
    write(&root, "tree_ops", &programs())?;
    Ok(())
}

/// The sample db of the text targets; the same after more transactions on top of a
/// commit (a commit with a parent and a log of several entries); and one with a large
/// value stored out of line and a hundred entities (several tree levels).
fn databases() -> Result<Vec<Db>, Error> {
    let first = sample_db();
    let (commit, _) = commit_for(&first)?;
    let stored = first.committed(commit.address(), &commit);
    let second = stored
        .with_edn(r#"[[:db/add 1 :age 16] [:db/retractEntity 5]]"#)?
        .db_after
        .with_edn(r#"[{:db/id "n" :name "New" :friend [1]}]"#)?
        .db_after;
    let mut tx = String::from("[");
    for i in 1..=100 {
        tx.push_str(&format!(
            "{{:db/id {i} :name \"e{i}\" :age {} :friend [{}]}}",
            i % 17,
            i % 100 + 1
        ));
    }
    tx.push_str(&format!("{{:db/id 101 :aka \"{}\"}}]", "y".repeat(1500)));
    let big = first.with_edn(&tx)?.db_after;
    Ok(vec![first, second, big])
}

/// Every string literal in `source` (plain or raw) that contains `marker`.
fn raw_strings(source: &str, marker: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find('"') {
        let raw = rest[..start].ends_with("r#");
        let body = &rest[start + 1..];
        let end = if raw {
            body.find("\"#")
        } else {
            body.char_indices()
                .scan(false, |escaped, (i, c)| {
                    let hit = c == '"' && !*escaped;
                    *escaped = c == '\\' && !*escaped;
                    Some((i, hit))
                })
                .find(|(_, hit)| *hit)
                .map(|(i, _)| i)
        };
        let Some(end) = end else { break };
        let text = &body[..end];
        if text.contains(marker) {
            let text = if raw {
                text.to_owned()
            } else {
                text.replace("\\\"", "\"").replace("\\\\", "\\")
            };
            out.push(text.into_bytes());
        }
        rest = &body[end + 1..];
    }
    out.dedup();
    out
}

/// Byte programs for `tree_ops`: a small xorshift stream, so transactions of every size
/// and the edits of each kind appear, for each index.
fn programs() -> Vec<Vec<u8>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    };
    [64usize, 256, 1024, 4096]
        .iter()
        .enumerate()
        .map(|(i, len)| {
            let mut p = vec![i as u8 % 3, i as u8, i as u8];
            p.extend((0..*len).map(|_| next()));
            p
        })
        .collect()
}

fn write(root: &Path, target: &str, inputs: &[Vec<u8>]) -> std::io::Result<()> {
    let dir: PathBuf = root.join(target);
    fs::create_dir_all(&dir)?;
    for (i, bytes) in inputs.iter().enumerate() {
        fs::write(dir.join(format!("seed-{i:03}")), bytes)?;
    }
    println!("{target}: {} seeds", inputs.len());
    Ok(())
}
