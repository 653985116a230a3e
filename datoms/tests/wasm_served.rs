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

/// Seeds a redb file through a server (then stopped) and runs `js/test/peer.mjs` in
/// `mode` on it; returns the script's result.
fn run_peer(
    dir: &std::path::Path,
    mode: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let file = dir.join("db.redb");
    let db = format!("redb:{}", file.display());
    let rt = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        rt.block_on(async {
            let server = Server::start(&db, dir, &["--public-reads"])?;
            let client = server.client().await?;
            let seed = datoms_core::Db::new(datoms_core::Schema::new())
                .with_edn(r#"[{:item/label "seed"}]"#)?
                .db_after;
            datoms_storage::store(&seed, &client, HEAD).await?;
            Ok::<_, Box<dyn std::error::Error>>(())
        })
    })?;
    let run = format!("{}-{mode}", std::process::id());
    std::fs::write(
        dir.join("peer.json"),
        serde_json::to_string(&json!({
            "bin": env!("CARGO_BIN_EXE_datoms"),
            "db": db,
            "tokenFile": dir.join("token"),
            "token": TOKEN,
            "head": HEAD,
            "run": run,
        }))?,
    )?;
    let mut command = std::process::Command::new("node");
    command
        .arg(scenario::package_dir().join("test").join("peer.mjs"))
        .arg(dir)
        .arg(mode);
    if let Ok(chromium) = std::env::var("CHROMIUM") {
        command.arg(chromium);
    }
    let output = command.output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .map_err(|e| {
            format!(
                "peer.mjs {mode}: no JSON result ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    assert!(
        result.get("error").is_none(),
        "peer.mjs {mode}: {}",
        result["error"]
    );
    assert!(
        output.status.success(),
        "peer.mjs {mode} exited with {}: {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(result)
}

/// Each label's number of entities in the db at the head, read natively from the file.
async fn label_counts(
    dir: &std::path::Path,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let db = format!("redb:{}", dir.join("db.redb").display());
    let server = Server::start(&db, dir, &["--public-reads"])?;
    let client = server.client().await?;
    let restored = datoms_storage::restore(std::sync::Arc::new(client), HEAD).await?;
    let text = datoms_wasm::read::query(
        &restored.db,
        "[:find ?l (count ?e) :where [?e :item/label ?l]]",
        &[],
        datoms_wasm::read::Format::Json,
    )?;
    Ok(serde_json::from_str(&text)?)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wasm_peer_lands_offline_writes_exactly_once_after_a_reload() -> TestResult {
    if !scenario::ready("node") {
        return Ok(());
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let mut modes = vec!["node"];
    if scenario::ready(&chromium) {
        modes.push("browser");
    }
    for mode in modes {
        let dir = tempfile::tempdir()?;
        let result = run_peer(dir.path(), mode)?;
        assert_eq!(
            result["landed"], result["phaseA"]["pending"],
            "{mode}: {result}"
        );
        // Every write is in the served db once: the online one, the two made while the
        // server was stopped, and the seed — none twice, although a peer with the outbox
        // from before the push (a crash after the compare-and-swap) was opened and pushed.
        let mut counts: Vec<(String, u64)> =
            serde_json::from_value(label_counts(dir.path()).await?)?;
        counts.sort();
        assert_eq!(
            counts,
            [
                ("offline-1", 1),
                ("offline-2", 1),
                ("online-1", 1),
                ("seed", 1)
            ]
            .map(|(l, n)| (l.to_owned(), n))
            .to_vec(),
            "{mode}: {result}"
        );
        eprintln!("peer.mjs {mode}: {result}");
    }
    Ok(())
}
