//! A read replica that syncs periodically.
//!
//! A primary transacts a small product catalogue and stores each version under the head
//! `main`. A replica holds the catalogue in memory and, once per interval, catches up
//! with `restore_from`: it fetches only the index nodes that are new since the version
//! it holds. Each round prints what that fetched next to what a full restore of the same
//! commit fetches.
//!
//! ```text
//! cargo run -p datoms --example replica                    # a redb file in a temp dir, every second
//! cargo run -p datoms --example replica -- mem: 200 8      # URL, interval in ms, rounds
//! ```
//!
//! Primary and replica share one process here, so they share the storage handle. In
//! two processes the replica opens the same URL: an `s3://` bucket, a `datoms serve`
//! (`http://…`), or a RocksDB directory read-only (`datoms::open_read_only`); a redb
//! file belongs to one process at a time.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use datoms::{Db, Mode, RestoreStats, Storage};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The head both sides use.
const HEAD: &str = "main";

/// Products in the catalogue the primary starts with.
const PRODUCTS: u32 = 2_000;

/// What to run.
pub struct Options {
    /// Where the primary stores the catalogue.
    pub url: String,
    /// How often the primary transacts and the replica catches up.
    pub interval: Duration,
    /// How many rounds of changes the primary makes.
    pub rounds: u32,
}

/// One catch-up of the replica.
pub struct Round {
    /// Its incremental restore (`restore_from` the version it held).
    pub incremental: RestoreStats,
    /// A full restore of the same commit, for comparison.
    pub full: RestoreStats,
}

/// What happened.
pub struct Summary {
    /// The catch-ups that found a new version.
    pub rounds: Vec<Round>,
    /// The primary's last version (its three index roots).
    pub primary: [datoms::Address; 3],
    /// The replica's version at the end.
    pub replica: [datoms::Address; 3],
}

#[tokio::main]
async fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let dir = tempfile::tempdir()?;
    let url = args
        .next()
        .unwrap_or_else(|| format!("redb:{}", dir.path().join("catalog.datoms").display()));
    let interval = Duration::from_millis(args.next().map_or(Ok(1000), |a| a.parse())?);
    let rounds = args.next().map_or(Ok(5), |a| a.parse())?;
    run(Options {
        url,
        interval,
        rounds,
    })
    .await?;
    Ok(())
}

/// Runs the primary and the replica side by side until the replica holds the primary's
/// last version.
pub async fn run(options: Options) -> Res<Summary> {
    let storage = datoms::open(&options.url).await?;
    let schema = datoms::edn::parse_schema("{:product/sku {:db/unique :db.unique/identity}}")?;

    // The primary's first version: the whole catalogue in one transaction.
    let catalogue: String = (0..PRODUCTS)
        .map(|i| {
            format!(
                r#"{{:product/sku "SKU-{i:05}" :product/name "Product {i}" :product/price {} :product/stock {}}}"#,
                100 + i % 900,
                i % 50
            )
        })
        .collect();
    let db = Db::new(schema.clone())
        .with_edn(&format!("[{catalogue}]"))?
        .db_after;
    let first = datoms::store(&db, &*storage, HEAD).await?;
    println!(
        "primary: stored {} products ({} datoms) at {}, {} nodes, {} KiB",
        PRODUCTS,
        first.db.len(),
        short(first.commit),
        first.stats.nodes_written,
        first.stats.bytes_written / 1024
    );

    // The replica starts with a full restore of the head.
    let head = head_commit(&*storage).await?;
    let start = datoms::restore_commit(&*storage, head, None, Mode::Eager).await?;
    println!(
        "replica: full restore, {} nodes, {} KiB",
        start.stats.nodes_fetched,
        start.stats.bytes_fetched / 1024
    );

    // The primary: every interval, a few price changes and one new product.
    let mut primary = Some(tokio::spawn(primary_loop(
        storage.clone(),
        first.db,
        options.interval,
        options.rounds,
    )));

    // The replica: every interval, catch up with whatever the head is now.
    let mut replica = start.db;
    let mut rounds = Vec::new();
    let mut ticks = tokio::time::interval(options.interval);
    let mut last = None;
    loop {
        ticks.tick().await;
        if let Some(done) = primary.take_if(|p| p.is_finished()) {
            last = Some(done.await??);
        }
        let head = head_commit(&*storage).await?;
        if replica.base_commit() == Some(head) {
            if let Some(last) = last {
                // Caught up with the primary's last version.
                return Ok(Summary {
                    rounds,
                    primary: last,
                    replica: replica.root_addresses(),
                });
            }
            continue;
        }
        let caught_up = datoms::restore_from(&replica, &*storage, HEAD).await?;
        // Only to show the difference: what a replica holding nothing would fetch.
        let full = datoms::restore_commit(&*storage, head, None, Mode::Eager).await?;
        let (inc, all) = (caught_up.stats, full.stats);
        println!(
            "replica: caught up to {}: fetched {} nodes, {:.1} KiB in {} round trips; a full restore fetches {} nodes, {} KiB",
            short(head),
            inc.nodes_fetched,
            inc.bytes_fetched as f64 / 1024.0,
            inc.round_trips,
            all.nodes_fetched,
            all.bytes_fetched / 1024,
        );
        replica = caught_up.db;
        rounds.push(Round {
            incremental: inc,
            full: all,
        });
    }
}

/// The primary's loop: `rounds` small transactions, one per interval, each stored as a
/// new commit. Returns the last version's roots.
async fn primary_loop(
    storage: Arc<dyn Storage>,
    mut db: Db,
    interval: Duration,
    rounds: u32,
) -> Res<[datoms::Address; 3]> {
    for round in 1..=rounds {
        tokio::time::sleep(interval).await;
        // Upserts by the unique SKU: new prices for five products, and a new product.
        let changes: String = (0..5)
            .map(|k| {
                let sku = (round * 397 + k * 131) % PRODUCTS;
                format!(
                    r#"{{:product/sku "SKU-{sku:05}" :product/price {}}}"#,
                    50 + round + k
                )
            })
            .collect();
        let new = PRODUCTS + round;
        let tx = format!(
            r#"[{changes} {{:product/sku "SKU-{new:05}" :product/name "Product {new}" :product/price 999 :product/stock 1}}]"#
        );
        let report = db.with_edn(&tx)?;
        let stored = datoms::store(&report.db_after, &*storage, HEAD).await?;
        println!(
            "primary: round {round}: {} datoms changed, stored {} with {} new nodes",
            report.tx_data.len(),
            short(stored.commit),
            stored.stats.nodes_written
        );
        db = stored.db;
    }
    Ok(db.root_addresses())
}

/// The commit the head names now.
async fn head_commit(storage: &dyn Storage) -> Res<datoms::Address> {
    let head = storage.get_head(HEAD).await?;
    Ok(head
        .ok_or("the primary has not stored anything yet")?
        .commit)
}

/// The first hex digits of an address, as `git` shortens commits.
fn short(address: datoms::Address) -> String {
    address.to_hex()[..10].to_owned()
}
