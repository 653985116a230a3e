//! The JavaScript replica (datoms-wasm) against a real `datoms serve`, in node and in
//! headless chromium: the scenario of `datoms-wasm/tests/scenario/mod.rs` (a db through
//! three commits and eight reads) stored through the server into a redb file, the head
//! put back at the first commit; the package's test scripts then restore it, follow the
//! two next commits as the test's server moves the head with the head CAS over HTTP, and
//! answer the reads. Their answers must equal the native ones, each follow step must be
//! one request (one-round-trip sync, `GET /sync/{head}?have=`), and the replica's count of
//! requests must equal the requests its `fetch` saw.
//!
//! It lives here, not in datoms-wasm, because this crate's tests can start the `datoms`
//! binary (`CARGO_BIN_EXE_datoms`). The wasm package must be built first
//! (`scripts/wasm.sh build`; `scripts/test.sh` does); without it the runs are skipped,
//! unless `DATOMS_WASM_REQUIRED=1`.

mod served;

#[path = "../../datoms-wasm/tests/scenario/mod.rs"]
mod scenario;

use datoms_storage::Storage as _;
use scenario::{Host, TestResult, HEAD};
use serde_json::json;
use served::{Server, TOKEN};

/// Puts the served head back at the scenario's first commit.
async fn rewind(client: &backend_http::HttpStorage, first: datoms_core::Address) -> TestResult {
    let current = client.get_head(HEAD).await?.ok_or("no head")?;
    client.cas_head(HEAD, Some(&current.version), first).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_replica_follows_datoms_serve_in_one_request_per_commit() -> TestResult {
    if !scenario::ready("node") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let db = format!("redb:{}", dir.path().join("db.redb").display());
    let server = Server::start(&db, dir.path(), &["--public-reads"])?;
    let client = server.client().await?;
    let (mut scenario, heads) = scenario::build(&client).await?;
    scenario["base"] = json!(server.url);
    scenario["upstream"] = json!({"url": server.url, "token": TOKEN});
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site)?;
    scenario::write(&site, &scenario)?;

    rewind(&client, heads[0].commit).await?;
    scenario::run_script("node.mjs", &site, &scenario, Host::Served)?;
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    if scenario::ready(&chromium) {
        rewind(&client, heads[0].commit).await?;
        scenario::run_script("browser.mjs", &site, &scenario, Host::Served)?;
    }
    Ok(())
}
