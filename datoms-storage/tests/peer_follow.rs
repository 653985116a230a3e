//! A peer that follows its head: other writers' commits show up in its db, with its own
//! pending work rebased on them, without a local write or push — through the backend's
//! change signal, and by polling where there is none.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datoms_core::{parse_tx, Address, Db, IndexKind, Schema, Value};
use datoms_storage::{
    Capabilities, FaultyStorage, FollowOptions, Head, MemoryOutbox, MemoryStorage, Outbox, Peer,
    PeerOptions, Storage, StorageError, Version,
};

fn schema() -> Schema {
    datoms_core::edn::parse_schema(
        "{:person/email {:db/valueType :db.type/string :db/unique :db.unique/identity}
          :person/name {:db/valueType :db.type/string}}",
    )
    .unwrap()
}

async fn peer(storage: Arc<dyn Storage>) -> Arc<Peer> {
    let options = PeerOptions {
        schema: schema(),
        ..PeerOptions::default()
    };
    let outbox = Outbox::memory(&MemoryOutbox::new()).unwrap();
    Arc::new(Peer::open(storage, "main", outbox, options).await.unwrap())
}

fn names(db: &Db) -> BTreeSet<String> {
    let a = datoms_core::Component::A(":person/name".into());
    db.datoms(IndexKind::Aevt, &[a])
        .unwrap()
        .map(|d| match d.unwrap().v {
            Value::String(s) => s.to_string(),
            other => panic!("{other}"),
        })
        .collect()
}

/// Waits (bounded: a condition, not a timing) until `peer`'s db has `want`.
async fn until_names(peer: &Peer, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    for _ in 0..2000 {
        if names(&peer.db()) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "the follower never showed {want:?}: {:?}",
        names(&peer.db())
    );
}

async fn follows(storage: Arc<dyn Storage>) {
    let (a, b) = (peer(storage.clone()).await, peer(storage.clone()).await);
    let following = a.spawn_follow(FollowOptions {
        poll: Duration::from_millis(10),
        ..FollowOptions::default()
    });
    // A has local work it has not pushed; B stores two commits.
    a.transact(&parse_tx(r#"[{:person/email "a@x" :person/name "Ann"}]"#, &schema()).unwrap())
        .unwrap();
    for (email, name) in [("b@x", "Bo"), ("c@x", "Cy")] {
        let tx = format!(r#"[{{:person/email "{email}" :person/name "{name}"}}]"#);
        b.transact(&parse_tx(&tx, &schema()).unwrap()).unwrap();
        b.push().await.unwrap();
    }
    // A shows B's commits with its own pending transaction on top, still pending.
    until_names(&a, &["Ann", "Bo", "Cy"]).await;
    assert_eq!(a.pending().len(), 1);
    assert!(following.pulls() >= 1);
    assert!(following.last_error().is_none());
    // Its push lands on B's head; B follows too and sees it.
    let b_following = b.spawn_follow(FollowOptions {
        poll: Duration::from_millis(10),
        ..FollowOptions::default()
    });
    a.push().await.unwrap();
    until_names(&b, &["Ann", "Bo", "Cy"]).await;
    assert!(a.pending().is_empty());
    drop((following, b_following));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_follows_through_the_change_signal() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    assert!(storage.head_changes().is_some());
    follows(storage).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_follows_by_polling_without_a_signal_and_through_faults() {
    let inner = FaultyStorage::new(MemoryStorage::new());
    inner.faults().set_transient_failures(50_000);
    let storage: Arc<dyn Storage> = Arc::new(NoSignal(inner));
    assert!(storage.head_changes().is_none());
    follows(storage).await;
}

/// A storage without a change signal (as S3 is): every call but `head_changes` goes to
/// the inner one.
#[derive(Debug)]
struct NoSignal<S>(S);

#[async_trait::async_trait]
impl<S: Storage> Storage for NoSignal<S> {
    async fn get_many(&self, a: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        self.0.get_many(a).await
    }
    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        self.0.put_many(blobs).await
    }
    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        self.0.get_head(name).await
    }
    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        self.0.cas_head(name, expected, new).await
    }
    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        self.0.list_heads().await
    }
    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        self.0.delete_head(name, expected).await
    }
    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        self.0.list_blobs(after, limit).await
    }
    async fn delete_many(&self, a: &[Address]) -> Result<(), StorageError> {
        self.0.delete_many(a).await
    }
    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<datoms_storage::BlobStamp>, StorageError> {
        self.0.list_blob_stamps(after, limit).await
    }
    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: std::time::SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        self.0.delete_stale(addresses, written_before).await
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}
