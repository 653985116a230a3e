//! Real-time collaborators editing one todo list.
//!
//! Three peers (alice, bob, carol) write the head `todos` of one storage at the same
//! time. Each transacts locally at once, pushes in the background (`spawn_push_loop`)
//! and follows the others (`spawn_follow`): when the head moves, it pulls and rebases
//! its own pending edits on what the others stored. Titles are unique identities, so
//! two peers adding the same item upsert one entity. When everyone is done, all three
//! hold the same version: the same three index roots.
//!
//! ```text
//! cargo run -p datoms --example collab
//! ```

use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datoms::{FollowOptions, Input, Outbox, Peer, PeerOptions, Storage};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The head everyone edits.
const HEAD: &str = "todos";

/// Who edits, and the items each adds (some overlap).
const PEOPLE: [(&str, &[&str]); 3] = [
    ("alice", &["buy milk", "book flights", "water the plants"]),
    ("bob", &["buy milk", "fix the bike", "call the plumber"]),
    ("carol", &["pack bags", "book flights", "renew passport"]),
];

/// What happened.
pub struct Summary {
    /// Each peer's index roots at the end, in [`PEOPLE`] order.
    pub roots: Vec<[datoms::Address; 3]>,
    /// The head's roots at the end.
    pub head: [datoms::Address; 3],
    /// Items on the list at the end.
    pub items: usize,
}

#[tokio::main]
async fn main() -> Res<()> {
    let dir = tempfile::tempdir()?;
    run(dir.path()).await?;
    Ok(())
}

/// Runs the three collaborators, their outboxes in `dir`, until they converge.
pub async fn run(dir: &Path) -> Res<Summary> {
    // One shared storage (in memory; any URL `datoms::open` takes works the same).
    let storage = datoms::open("mem:").await?;
    let options = PeerOptions {
        schema: datoms::edn::parse_schema(
            "{:todo/title {:db/unique :db.unique/identity}
              :todo/tags  {:db/cardinality :db.cardinality/many}}",
        )?,
        ..PeerOptions::default()
    };
    // Poll often: followers also wake on the storage's change signal when it has one.
    let follow = FollowOptions {
        poll: Duration::from_millis(20),
        max_poll: Duration::from_millis(100),
        ..FollowOptions::default()
    };

    let mut peers = Vec::new();
    for (name, _) in PEOPLE {
        let outbox = Outbox::open(dir.join(format!("{name}.outbox")))?;
        let peer = Arc::new(Peer::open(storage.clone(), HEAD, outbox, options.clone()).await?);
        let following = peer.spawn_follow(follow);
        let pushing = peer.spawn_push_loop();
        peers.push((name, peer, following, pushing));
    }

    // Everyone edits at once: adds their items, then ticks off and tags whatever they
    // see on the list by then (their own items and the others' that arrived).
    let mut edits = Vec::new();
    for (i, (name, peer, _, _)) in peers.iter().enumerate() {
        let (name, peer, items) = (*name, peer.clone(), PEOPLE[i].1);
        edits.push(tokio::spawn(async move {
            let mut made = 0;
            for item in items {
                peer.transact_edn(&format!(r#"[{{:todo/title "{item}" :todo/done false}}]"#))?;
                made += 1;
                tokio::time::sleep(Duration::from_millis(10 + 7 * i as u64)).await;
            }
            for (k, title) in titles(&peer.db())?.iter().enumerate() {
                if k % 3 == i {
                    peer.transact_edn(&format!(
                        r#"[{{:todo/title "{title}" :todo/done true :todo/tags "{name}"}}]"#
                    ))?;
                    made += 1;
                }
            }
            Ok::<_, Box<dyn Error + Send + Sync>>(made)
        }));
    }
    for (edit, (name, _, _, _)) in edits.into_iter().zip(&peers) {
        println!("{name}: {} edits", edit.await??);
    }

    // Wait until every edit landed and every peer pulled the last commit.
    let deadline = Instant::now() + Duration::from_secs(30);
    let head = loop {
        let head = storage.get_head(HEAD).await?.map(|h| h.commit);
        let settled = peers
            .iter()
            .all(|(_, p, _, _)| p.pending().is_empty() && p.base_db().base_commit() == head);
        if settled {
            break datoms::restore(storage.clone(), HEAD).await?.db;
        }
        if Instant::now() > deadline {
            return Err("the peers did not converge within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    for (name, peer, following, pushing) in &peers {
        println!(
            "{name}: {} commits landed by its pushes, {} pulls of the others' commits, roots {}",
            pushing.landed(),
            following.pulls(),
            short(peer.db().root_addresses())
        );
    }
    let list = datoms::q(
        "[:find ?title ?done :where [?e :todo/title ?title] [?e :todo/done ?done]]",
        &[Input::Db(&head)],
    )?;
    println!(
        "the list everyone holds ({} items):\n{}",
        list.len(),
        list.to_table(&["title".into(), "done".into()])
    );
    Ok(Summary {
        roots: peers
            .iter()
            .map(|(_, p, _, _)| p.db().root_addresses())
            .collect(),
        head: head.root_addresses(),
        items: list.len(),
    })
}

/// The titles on the list in `db`, sorted.
fn titles(db: &datoms::Db) -> Res<Vec<String>> {
    let found = datoms::q(
        "[:find [?t ...] :where [_ :todo/title ?t]]",
        &[Input::Db(db)],
    )?;
    let mut titles: Vec<String> = found
        .rows()
        .into_iter()
        .flatten()
        .map(|v| match v {
            datoms::QueryValue::Value(datoms::Value::String(s)) => s.to_string(),
            other => other.to_string(),
        })
        .collect();
    titles.sort();
    Ok(titles)
}

/// The three roots, shortened.
fn short(roots: [datoms::Address; 3]) -> String {
    roots.map(|r| r.to_hex()[..6].to_owned()).join("/")
}
