//! The JavaScript replica against the native one, in node and in headless chromium, on a
//! static host (`datoms/tests/wasm_served.rs` runs the same scenario against a real
//! `datoms serve`).
//!
//! A db goes through three commits (a bulk load, then additions and changes, then
//! retractions; `scenario/mod.rs`) in a `MemoryStorage`, which is exported with `export_static` into a
//! directory laid out as any static host serves it (`blobs/<address>`, `heads/<name>`),
//! its head at the first commit. For each commit the native side restores it (the first
//! in full, the others incrementally from the one before) and answers a set of reads;
//! both go into `scenario.json` beside the blobs. Then `js/test/node.mjs` and
//! `js/test/browser.mjs` serve the directory on a free loopback port and run
//! `js/test/scenario.mjs`: restore the head, follow it as the server moves it through
//! the commits (by polling in node, by the server's event stream in the browser), and
//! answer the reads. Their answers, commits and nodes fetched must equal
//! the native ones, and each incremental step must fetch exactly the nodes new in its
//! commit.
//!
//! The wasm package must be built first (`scripts/wasm.sh build`; `scripts/test.sh`
//! does). Without it the JavaScript runs are skipped with a message, unless
//! `DATOMS_WASM_REQUIRED=1` (set by `scripts/test.sh`), which makes a missing package,
//! node or chromium a failure.

mod scenario;

use datoms_storage::{export_static, MemoryStorage};
use scenario::{Host, TestResult, HEAD};

#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_replica_matches_the_native_one_in_node_and_chromium() -> TestResult {
    let dir = tempfile::tempdir()?;
    let storage = MemoryStorage::new();
    let (scenario, _) = scenario::build(&storage).await?;
    export_static(&storage, &[HEAD], dir.path()).await?;
    scenario::write(dir.path(), &scenario)?;
    // The head starts at the first commit; the test server moves it on.
    let first_head = || -> TestResult {
        std::fs::write(
            dir.path().join("heads").join(HEAD),
            serde_json::to_string(&scenario["steps"][0]["headDocument"])?,
        )?;
        Ok(())
    };
    first_head()?;
    if scenario::ready("node") {
        scenario::run_script("node.mjs", dir.path(), &scenario, Host::Static)?;
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
        if scenario::ready(&chromium) {
            // The node run moved the head on: put it back for the browser.
            first_head()?;
            scenario::run_script("browser.mjs", dir.path(), &scenario, Host::Static)?;
        }
    }
    Ok(())
}
