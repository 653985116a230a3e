//! An offline-first client that reconnects.
//!
//! Two peers write one head, `shop`: a shop counter (A) and a back office (B). A's link
//! to the shared storage goes down; A keeps working — a note and a sale, the sale a
//! `:db/cas` of the stock from 10 to 9 — while B, online, sells two (10 to 8). A's
//! process then restarts, still offline: it reopens its outbox file and its local copy
//! of the db, and shows its pending writes at once. When the link is back (its first
//! reply lost on the way), A's writes land exactly once and its stale `:db/cas` is
//! reported instead of overwriting B's sale.
//!
//! ```text
//! cargo run -p datoms --example offline
//! ```

use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datoms::storage::FailOn;
use datoms::{Db, FaultyStorage, Input, Outbox, Peer, PeerOptions, QueryResult, QueryValue, Value};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The head both peers write.
const HEAD: &str = "shop";

/// What happened.
pub struct Summary {
    /// Notes in the head at the end (A wrote one, offline).
    pub notes: i64,
    /// The widget's stock in the head at the end.
    pub stock: i64,
    /// A's transactions rejected on reconnecting, with why.
    pub rejected: Vec<String>,
    /// Whether A and B hold the same version at the end.
    pub same_roots: bool,
}

#[tokio::main]
async fn main() -> Res<()> {
    let dir = tempfile::tempdir()?;
    run(dir.path()).await?;
    Ok(())
}

/// Runs the scenario with A's files (outbox, local copy) and B's outbox in `dir`.
pub async fn run(dir: &Path) -> Res<Summary> {
    // The shared storage: in memory here; an `s3://` bucket or a `datoms serve` in life.
    let shared = datoms::open("mem:").await?;
    // A reaches it over a link the example can cut (FaultyStorage injects failures).
    let link = Arc::new(FaultyStorage::new(shared.clone()));
    let options = PeerOptions {
        schema: datoms::edn::parse_schema("{:item/name {:db/unique :db.unique/identity}}")?,
        // Give up on a push quickly while offline: the outbox keeps everything anyway.
        max_attempts: 3,
        first_backoff: Duration::from_millis(5),
        ..PeerOptions::default()
    };
    let a_outbox = dir.join("a.outbox");
    let a_local = format!("redb:{}", dir.join("a-local.datoms").display());

    // A stocks the shop and keeps a local copy of the head (a redb file).
    let a = Peer::open(
        link.clone(),
        HEAD,
        Outbox::open(&a_outbox)?,
        options.clone(),
    )
    .await?;
    a.transact_edn(r#"[{:item/name "widget" :item/stock 10}]"#)?;
    a.push().await?;
    let local = datoms::open(&a_local).await?;
    datoms::replicate(&*link, &*local, HEAD).await?;
    let b = Peer::open(
        shared.clone(),
        HEAD,
        Outbox::open(dir.join("b.outbox"))?,
        options.clone(),
    )
    .await?;
    println!("A and B see {} widgets", stock(&b.db())?);

    // The link goes down. A's transactions are acknowledged (fsynced to the outbox) and
    // visible locally; the push fails and keeps them pending.
    link.faults().fail_after(0, FailOn::Any);
    a.transact_edn(r#"[{:note/text "restock widgets on Monday"}]"#)?;
    a.transact_edn(r#"[[:db/cas [:item/name "widget"] :item/stock 10 9]]"#)?;
    let push = a.push().await;
    println!(
        "A offline: sold 1 (stock {} locally), {} transactions pending; push: {}",
        stock(&a.db())?,
        a.pending().len(),
        push.err().map_or("landed?!".into(), |e| e.to_string())
    );

    // Meanwhile B sells two.
    b.transact_edn(r#"[[:db/cas [:item/name "widget"] :item/stock 10 8]]"#)?;
    b.push().await?;
    println!("B online: sold 2, stock {} in the head", stock(&b.db())?);

    // A's process restarts, still offline: a new peer on the same outbox file, on the
    // local copy of the head. Nothing acknowledged was lost.
    drop((a, local));
    let local = datoms::open(&a_local).await?;
    let base = datoms::restore(local.clone(), HEAD).await?.db;
    let a = Peer::open_at(
        link.clone(),
        HEAD,
        Outbox::open(&a_outbox)?,
        base,
        options.clone(),
    )?;
    println!(
        "A restarted offline: stock {} locally, {} transactions pending",
        stock(&a.db())?,
        a.pending().len()
    );

    // The link comes back, and the reply to A's first head move is lost on the way: A
    // cannot tell whether it landed, tries again, and finds its own commit there.
    link.faults().heal();
    link.faults().lose_next_cas_reply();
    let report = a.push_until_landed().await?;
    println!(
        "A reconnected: {} landed, {} rejected, after {} attempts and {} rebase(s)",
        report.landed.len(),
        report.rejected.len(),
        report.attempts,
        report.rebases
    );
    // The rejection is kept in the outbox until the application takes it.
    let rejected: Vec<String> = a.take_rejected()?.into_iter().map(|r| r.message).collect();
    for why in &rejected {
        println!("A's sale was rejected, the stock is B's: {why}");
    }

    b.pull().await?;
    let head = datoms::restore(shared.clone(), HEAD).await?.db;
    let summary = Summary {
        notes: count_notes(&head)?,
        stock: stock(&head)?,
        rejected,
        same_roots: a.db().root_addresses() == b.db().root_addresses(),
    };
    println!(
        "head: {} note (written once), stock {}; A and B hold the same version: {}",
        summary.notes, summary.stock, summary.same_roots
    );
    Ok(summary)
}

/// The widget's stock in `db`.
fn stock(db: &Db) -> Res<i64> {
    let q = r#"[:find ?s . :where [?e :item/name "widget"] [?e :item/stock ?s]]"#;
    scalar(datoms::q(q, &[Input::Db(db)])?)
}

/// The number of notes in `db`.
fn count_notes(db: &Db) -> Res<i64> {
    let q = "[:find (count ?e) . :where [?e :note/text]]";
    match datoms::q(q, &[Input::Db(db)])? {
        QueryResult::Scalar(None) => Ok(0),
        result => scalar(result),
    }
}

/// A query's one long.
fn scalar(result: QueryResult) -> Res<i64> {
    match result {
        QueryResult::Scalar(Some(QueryValue::Value(Value::Long(n)))) => Ok(n),
        other => Err(format!("expected one number, got {other}").into()),
    }
}
