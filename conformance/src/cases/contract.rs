//! The storage contract, case by case: what the drivers rely on from every backend.
//! Blobs are immutable and content-addressed, so puts are idempotent and may race; reads
//! never see half a blob; listing pages through everything in address order; heads move
//! only by compare-and-swap, which never overwrites silently and reports where the head
//! is when it refuses.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use datoms_core::Address;
use datoms_storage::batch::{get_batched, put_batched};
use datoms_storage::{Head, Storage, StorageError, Version};
use tokio::sync::Barrier;

use crate::factory::Factory;
use crate::failure::{ensure, ensure_eq, Context, Failure};
use crate::support::{expect_err, list_everything, until_every_stamp_is_past};

/// A blob and its address.
fn blob(bytes: impl Into<Bytes>) -> (Address, Bytes) {
    let bytes = bytes.into();
    (Address::of(&bytes), bytes)
}

/// Blob number `i` of a family `tag`: distinct content of a few hundred bytes.
fn numbered(tag: &str, i: usize) -> (Address, Bytes) {
    let mut text = format!("conformance {tag} blob {i} ");
    let filler = text.clone();
    for _ in 0..(i % 7) {
        text.push_str(&filler);
    }
    blob(text.into_bytes())
}

/// Stores `blobs` in calls of at most the backend's `max_batch`.
async fn put_all<S: Storage + ?Sized>(s: &S, blobs: &[(Address, Bytes)]) -> Result<(), Failure> {
    for chunk in blobs.chunks(s.capabilities().max_batch.max(1)) {
        s.put_many(chunk).await.context("put_many")?;
    }
    Ok(())
}

/// Reads `addresses` in calls of at most the backend's `max_batch`.
async fn get_all<S: Storage + ?Sized>(
    s: &S,
    addresses: &[Address],
) -> Result<Vec<Option<Bytes>>, Failure> {
    let mut out = Vec::with_capacity(addresses.len());
    for chunk in addresses.chunks(s.capabilities().max_batch.max(1)) {
        let got = s.get_many(chunk).await.context("get_many")?;
        ensure_eq!(
            got.len(),
            chunk.len(),
            "get_many must answer one entry per address asked"
        );
        out.extend(got);
    }
    Ok(out)
}

fn expect_conflict(
    what: &str,
    result: Result<Version, StorageError>,
) -> Result<Option<Head>, Failure> {
    match expect_err(what, result)? {
        StorageError::HeadConflict { current, .. } => Ok(current),
        other => Err(Failure::new(format_args!(
            "{what}: expected StorageError::HeadConflict, got {other:?}"
        ))),
    }
}

/// Bytes read back are exactly the bytes stored — empty, binary and large blobs alike —
/// in the order the addresses were asked for, repeats included.
pub async fn round_trip_returns_the_bytes_stored<F: Factory>(factory: &F) -> Result<(), Failure> {
    let s = factory.create().await.context("create")?;
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..(1usize << 20))
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect();
    let blobs = vec![
        blob(Bytes::new()),
        blob(all_bytes),
        blob(large),
        blob(&b"{:person/name \"Ann\"}"[..]),
    ];
    put_all(&s, &blobs).await?;
    let order = [2usize, 0, 3, 1, 2, 3];
    let addresses: Vec<Address> = order.iter().map(|i| blobs[*i].0).collect();
    let got = get_all(&s, &addresses).await?;
    for (i, g) in order.iter().zip(&got) {
        ensure!(
            g.as_ref() == Some(&blobs[*i].1),
            "blob {i} ({} bytes) read back as {:?}",
            blobs[*i].1.len(),
            g.as_ref().map(Bytes::len)
        );
    }
    for (a, b) in &blobs {
        let one = s.get_many(&[*a]).await.context("get_many of one")?;
        ensure!(
            one.len() == 1 && one[0].as_ref() == Some(b),
            "a single read of {a:?} did not return its bytes"
        );
    }
    Ok(())
}

/// An address never stored reads as `None` (not an error, not empty bytes), in its place
/// among present ones; an empty request reads nothing; a head never created is `None`.
pub async fn missing_address_reads_as_none<F: Factory>(factory: &F) -> Result<(), Failure> {
    let s = factory.create().await.context("create")?;
    let (a, a_bytes) = numbered("present", 1);
    let (b, b_bytes) = numbered("present", 2);
    let (x, _) = numbered("absent", 1);
    let (y, _) = numbered("absent", 2);
    s.put_many(&[(a, a_bytes.clone()), (b, b_bytes.clone())])
        .await
        .context("put_many")?;
    let got = s.get_many(&[x, a, y, b, x]).await.context("get_many")?;
    ensure_eq!(
        got,
        vec![None, Some(a_bytes), None, Some(b_bytes), None],
        "absent addresses must read as None in their place"
    );
    let none = s.get_many(&[]).await.context("get_many of nothing")?;
    ensure!(none.is_empty(), "an empty get_many returned {none:?}");
    let head = s.get_head("never-created").await.context("get_head")?;
    ensure_eq!(
        head,
        None,
        "a head that was never created must read as None"
    );
    Ok(())
}

/// Storing a blob that is already there — in the same batch, in a later batch, next to
/// new blobs — succeeds, changes nothing and lists it once.
pub async fn put_is_idempotent<F: Factory>(factory: &F) -> Result<(), Failure> {
    let s = factory.create().await.context("create")?;
    let a = numbered("idempotent", 1);
    let b = numbered("idempotent", 2);
    s.put_many(&[a.clone(), a.clone()])
        .await
        .context("a batch holding one blob twice")?;
    s.put_many(std::slice::from_ref(&a))
        .await
        .context("storing a blob again")?;
    s.put_many(&[b.clone(), a.clone()])
        .await
        .context("storing a known blob with a new one")?;
    let got = s.get_many(&[a.0, b.0]).await.context("get_many")?;
    ensure_eq!(
        got,
        vec![Some(a.1), Some(b.1)],
        "blobs stored several times must read back unchanged"
    );
    let listed = list_everything(&s, 100).await?;
    let mut want = vec![a.0, b.0];
    want.sort();
    ensure_eq!(listed, want, "each blob must be listed exactly once");
    Ok(())
}

/// Many writers storing the same blob at once all succeed, and a reader racing them sees
/// either nothing or the whole blob, never part of it.
pub async fn concurrent_puts_of_one_blob_agree<F: Factory>(factory: &F) -> Result<(), Failure> {
    const WRITERS: usize = 12;
    const READERS: usize = 3;
    let s = Arc::new(factory.create().await.context("create")?);
    // Large enough that a backend writing in place would expose a partial blob.
    let shared = blob(
        (0..(256usize << 10))
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let barrier = Arc::new(Barrier::new(WRITERS + READERS));
    let mut writers = Vec::new();
    for i in 0..WRITERS {
        let (s, shared, barrier) = (s.clone(), shared.clone(), barrier.clone());
        writers.push(tokio::spawn(async move {
            let own = numbered("writer", i);
            barrier.wait().await;
            s.put_many(&[shared, own]).await
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let (s, shared, barrier) = (s.clone(), shared.clone(), barrier.clone());
        readers.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut seen = Vec::new();
            for _ in 0..20 {
                let got = s.get_many(&[shared.0]).await?;
                seen.push(got.into_iter().next().flatten());
                tokio::task::yield_now().await;
            }
            Ok::<_, StorageError>(seen)
        }));
    }
    for (i, w) in writers.into_iter().enumerate() {
        w.await?.context(format_args!("concurrent writer {i}"))?;
    }
    for r in readers {
        for bytes in r.await?.context("concurrent reader")?.into_iter().flatten() {
            ensure!(
                bytes == shared.1,
                "a reader racing the writers saw {} bytes that are not the blob \
                 ({} bytes): a partial or mixed write",
                bytes.len(),
                shared.1.len()
            );
        }
    }
    let got = s.get_many(&[shared.0]).await.context("get_many")?;
    ensure!(
        got.first().and_then(Option::as_ref) == Some(&shared.1),
        "after the race the blob must read back whole"
    );
    let listed = list_everything(&*s, 1000).await?;
    let mut want: BTreeSet<Address> = (0..WRITERS).map(|i| numbered("writer", i).0).collect();
    want.insert(shared.0);
    ensure_eq!(
        listed,
        want.into_iter().collect::<Vec<_>>(),
        "every blob once in the listing"
    );
    Ok(())
}

/// Hundreds of blobs round-trip through batches of the backend's `max_batch`, through
/// the drivers' batching, and through one full-size request mixing present and absent
/// addresses.
pub async fn large_batches_round_trip<F: Factory>(factory: &F) -> Result<(), Failure> {
    const N: usize = 800;
    let s = factory.create().await.context("create")?;
    let max = s.capabilities().max_batch.max(1);
    let blobs: Vec<(Address, Bytes)> = (0..N).map(|i| numbered("large", i)).collect();
    let (first, second) = blobs.split_at(N / 2);
    put_all(&s, first).await?;
    put_batched(&s, second)
        .await
        .context("put_batched (the drivers' batching)")?;
    let addresses: Vec<Address> = blobs.iter().map(|(a, _)| *a).collect();
    let got = get_all(&s, &addresses).await?;
    for (i, ((_, want), got)) in blobs.iter().zip(&got).enumerate() {
        ensure!(
            got.as_ref() == Some(want),
            "blob {i} of {N} did not round-trip"
        );
    }
    let got = get_batched(&s, &addresses)
        .await
        .context("get_batched (the drivers' batching)")?;
    ensure!(
        got.iter()
            .zip(&blobs)
            .all(|(g, (_, b))| g.as_ref() == Some(b)),
        "get_batched did not return every blob in order"
    );
    // One request as large as the backend accepts, every other address absent.
    let mut mixed = Vec::new();
    for i in 0..max.min(2 * N) {
        if i % 2 == 0 {
            mixed.push(blobs[(i / 2) % N].0);
        } else {
            mixed.push(numbered("never stored", i).0);
        }
    }
    let got = s
        .get_many(&mixed)
        .await
        .context("one get_many of max_batch addresses")?;
    ensure_eq!(got.len(), mixed.len(), "one entry per address");
    for (i, g) in got.iter().enumerate() {
        let want = (i % 2 == 0).then(|| blobs[(i / 2) % N].1.clone());
        ensure!(
            *g == want,
            "entry {i} of a full-size mixed request is wrong"
        );
    }
    Ok(())
}

/// Listing pages through every blob exactly once in address order, whatever the page
/// size and wherever it starts; deleting removes blobs (absent ones are ignored) and a
/// deleted blob can be stored again.
pub async fn list_pages_through_every_blob_and_delete_removes<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    const N: usize = 300;
    let s = factory.create().await.context("create")?;
    ensure!(
        list_everything(&s, 10).await?.is_empty(),
        "a fresh store must list no blob"
    );
    let blobs: Vec<(Address, Bytes)> = (0..N).map(|i| numbered("listed", i)).collect();
    put_all(&s, &blobs).await?;
    let want: Vec<Address> = blobs
        .iter()
        .map(|(a, _)| *a)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for limit in [1usize, 7, 100, 1000] {
        let listed = list_everything(&s, limit).await?;
        ensure!(
            listed == want,
            "paging with limit {limit} listed {} addresses, expected the {} stored, in order",
            listed.len(),
            want.len()
        );
    }
    // `after` need not be a stored address.
    let middle = Address([0x80; 32]);
    let page = s.list_blobs(Some(middle), N).await.context("list_blobs")?;
    let want_after: Vec<Address> = want.iter().filter(|a| **a > middle).copied().collect();
    ensure_eq!(
        page,
        want_after,
        "listing after an address that is not stored"
    );
    let page = s
        .list_blobs(want.last().copied(), 10)
        .await
        .context("list_blobs")?;
    ensure!(page.is_empty(), "nothing is listed after the last address");

    let (gone, kept) = want.split_at(N / 2);
    let mut delete: Vec<Address> = gone.to_vec();
    delete.push(numbered("never stored", 1).0);
    for chunk in delete.chunks(s.capabilities().max_batch.max(1)) {
        s.delete_many(chunk).await.context("delete_many")?;
    }
    s.delete_many(&gone[..3])
        .await
        .context("deleting blobs already deleted")?;
    s.delete_many(&[]).await.context("deleting nothing")?;
    let got = get_all(&s, &want).await?;
    for (a, g) in want.iter().zip(&got) {
        let deleted = gone.contains(a);
        ensure!(
            g.is_some() != deleted,
            "{a:?}: deleted = {deleted}, but it reads as {:?}",
            g.as_ref().map(Bytes::len)
        );
    }
    let listed = list_everything(&s, 64).await?;
    ensure_eq!(listed, kept.to_vec(), "only the blobs kept are listed");
    let again = blobs
        .iter()
        .find(|(a, _)| *a == gone[0])
        .cloned()
        .ok_or_else(|| Failure::new("a deleted blob is not among those stored"))?;
    s.put_many(std::slice::from_ref(&again))
        .await
        .context("storing a deleted blob again")?;
    let got = s.get_many(&[again.0]).await.context("get_many")?;
    ensure!(
        got.first().and_then(Option::as_ref) == Some(&again.1),
        "a blob stored again after its deletion must read back"
    );
    Ok(())
}

/// `cas_head(name, None, c)` creates a head only if it does not exist; the version it
/// returns is the head's; a second create fails with the current head; heads of other
/// names, whatever characters they use, are independent.
pub async fn cas_creates_a_head_only_if_absent<F: Factory>(factory: &F) -> Result<(), Failure> {
    let s = factory.create().await.context("create")?;
    let c1 = numbered("commit", 1);
    let c2 = numbered("commit", 2);
    s.put_many(&[c1.clone(), c2.clone()]).await.context("put")?;
    ensure_eq!(
        s.get_head("main").await.context("get_head")?,
        None,
        "a fresh store has no head"
    );
    let v1 = s
        .cas_head("main", None, c1.0)
        .await
        .context("creating a head")?;
    let head = Head {
        commit: c1.0,
        version: v1.clone(),
    };
    ensure_eq!(
        s.get_head("main").await.context("get_head")?,
        Some(head.clone()),
        "the head must point where it was created, with the version the CAS returned"
    );
    let current = expect_conflict(
        "creating a head that exists",
        s.cas_head("main", None, c2.0).await,
    )?;
    ensure_eq!(
        current,
        Some(head.clone()),
        "the conflict must show the current head"
    );
    ensure_eq!(
        s.get_head("main").await.context("get_head")?,
        Some(head.clone()),
        "a refused create must leave the head alone"
    );
    let current = expect_conflict(
        "moving a head that does not exist",
        s.cas_head("absent", Some(&v1), c2.0).await,
    )?;
    ensure_eq!(
        current,
        None,
        "the conflict of a head that does not exist shows None"
    );
    ensure_eq!(
        s.get_head("absent").await.context("get_head")?,
        None,
        "a refused move must not create the head"
    );
    for name in ["replica-2", "tenants/acme", "ünïcode head"] {
        ensure_eq!(
            s.get_head(name).await.context("get_head")?,
            None,
            "head {name:?} is independent of \"main\""
        );
        let v = s
            .cas_head(name, None, c2.0)
            .await
            .context(format_args!("creating head {name:?}"))?;
        ensure_eq!(
            s.get_head(name).await.context("get_head")?,
            Some(Head {
                commit: c2.0,
                version: v
            }),
            "head {name:?}"
        );
    }
    ensure_eq!(
        s.get_head("main").await.context("get_head")?,
        Some(head),
        "other heads must not move \"main\""
    );
    Ok(())
}

/// A CAS that names a version other than the current one — an older one, or one the
/// backend never issued — fails with the current head and moves nothing; each successful
/// CAS returns a new version.
pub async fn cas_with_a_stale_version_fails_and_shows_the_current_head<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let s = factory.create().await.context("create")?;
    let c: Vec<(Address, Bytes)> = (0..4).map(|i| numbered("commit", i)).collect();
    s.put_many(&c).await.context("put")?;
    let v1 = s.cas_head("main", None, c[1].0).await.context("create")?;
    let v2 = s
        .cas_head("main", Some(&v1), c[2].0)
        .await
        .context("moving the head with its current version")?;
    ensure!(v2 != v1, "a successful CAS must return a new version");
    let at2 = Head {
        commit: c[2].0,
        version: v2.clone(),
    };
    ensure_eq!(
        s.get_head("main").await.context("get_head")?,
        Some(at2.clone()),
        "after a CAS"
    );
    let current = expect_conflict(
        "a CAS with the previous version",
        s.cas_head("main", Some(&v1), c[3].0).await,
    )?;
    ensure_eq!(
        current,
        Some(at2.clone()),
        "the conflict shows the current head"
    );
    let current = expect_conflict(
        "a CAS with a version the backend never issued",
        s.cas_head("main", Some(&Version("not-a-version".into())), c[3].0)
            .await,
    )?;
    ensure_eq!(
        current,
        Some(at2.clone()),
        "the conflict shows the current head"
    );
    ensure_eq!(
        s.get_head("main").await.context("get_head")?,
        Some(at2),
        "refused CASes leave the head where it was"
    );
    let v3 = s
        .cas_head("main", Some(&v2), c[3].0)
        .await
        .context("moving the head on")?;
    ensure!(
        v3 != v2 && v3 != v1,
        "versions must not repeat: {v1:?}, {v2:?}, {v3:?}"
    );
    ensure_eq!(
        s.get_head("main").await.context("get_head")?,
        Some(Head {
            commit: c[3].0,
            version: v3
        }),
        "after the last CAS"
    );
    Ok(())
}

/// Writers racing to create a head, then to move it from one version, each get exactly
/// one winner; every loser is told the winner's head.
pub async fn racing_cas_lets_exactly_one_writer_win<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    const WRITERS: usize = 8;
    let s = Arc::new(factory.create().await.context("create")?);
    let commits: Vec<(Address, Bytes)> = (0..2 * WRITERS).map(|i| numbered("racer", i)).collect();
    s.put_many(&commits).await.context("put")?;
    let mut expected: Option<Version> = None;
    for round in 0..2 {
        let barrier = Arc::new(Barrier::new(WRITERS));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (s, barrier, expected) = (s.clone(), barrier.clone(), expected.clone());
            let commit = commits[round * WRITERS + w].0;
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                (commit, s.cas_head("main", expected.as_ref(), commit).await)
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for t in tasks {
            match t.await? {
                (commit, Ok(v)) => winners.push(Head { commit, version: v }),
                (_, Err(StorageError::HeadConflict { current, .. })) => losers.push(current),
                (_, Err(e)) => {
                    return Err(Failure::from(e).context(format_args!(
                        "round {round}: a racing CAS failed other than by conflict"
                    )))
                }
            }
        }
        let what = if round == 0 { "create" } else { "move" };
        ensure_eq!(
            winners.len(),
            1,
            "racing to {what} the head, exactly one writer must win"
        );
        let winner = winners.remove(0);
        for current in losers {
            ensure_eq!(
                current,
                Some(winner.clone()),
                "racing to {what}: a loser must be shown the winner's head"
            );
        }
        ensure_eq!(
            s.get_head("main").await.context("get_head")?,
            Some(winner.clone()),
            "racing to {what}: the head is the winner's"
        );
        expected = Some(winner.version);
    }
    Ok(())
}

/// `WORKERS` tasks each increment a counter kept behind a head `ROUNDS` times, by
/// read-head, write-blob, CAS, retrying on conflict: the counter ends at exactly
/// `WORKERS × ROUNDS` (no lost update, no double count).
pub async fn cas_counter_reaches_n_with_n_racing_incrementers<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    const WORKERS: u64 = 8;
    const ROUNDS: u64 = 5;
    let s = Arc::new(factory.create().await.context("create")?);
    let counter = |n: u64| blob(format!("counter {n}").into_bytes());
    let zero = counter(0);
    s.put_many(std::slice::from_ref(&zero))
        .await
        .context("put")?;
    s.cas_head("counter", None, zero.0)
        .await
        .context("create the counter head")?;
    let barrier = Arc::new(Barrier::new(WORKERS as usize));
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (s, barrier) = (s.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut done = 0;
            let mut attempts = 0;
            while done < ROUNDS {
                attempts += 1;
                if attempts > 10_000 {
                    return Err(Failure::new(
                        "an incrementer made no progress in 10,000 tries",
                    ));
                }
                let head = s
                    .get_head("counter")
                    .await?
                    .ok_or_else(|| Failure::new("the counter head vanished"))?;
                let bytes = s
                    .get_many(&[head.commit])
                    .await?
                    .into_iter()
                    .next()
                    .flatten()
                    .ok_or_else(|| Failure::new("the head's blob is missing"))?;
                let n: u64 = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|t| t.strip_prefix("counter "))
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| Failure::new("the head's blob is not a counter"))?;
                let next = counter(n + 1);
                s.put_many(std::slice::from_ref(&next)).await?;
                // Let the others run between the read and the CAS, so that the races
                // happen even on a store whose calls never wait.
                tokio::task::yield_now().await;
                match s.cas_head("counter", Some(&head.version), next.0).await {
                    Ok(_) => done += 1,
                    Err(StorageError::HeadConflict { .. }) => tokio::task::yield_now().await,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let head = s
        .get_head("counter")
        .await
        .context("get_head")?
        .ok_or_else(|| Failure::new("the counter head vanished"))?;
    ensure_eq!(
        head.commit,
        counter(WORKERS * ROUNDS).0,
        "the counter must end at {} (the head points at another value)",
        WORKERS * ROUNDS
    );
    Ok(())
}

/// Blobs, deletions and heads (with their versions) are still there after the store is
/// closed and opened again, and the head moves on from the version it had.
pub async fn data_survives_reopen<F: Factory>(factory: &F) -> Result<(), Failure> {
    let s = factory.create().await.context("create")?;
    let blobs: Vec<(Address, Bytes)> = (0..20).map(|i| numbered("durable", i)).collect();
    put_all(&s, &blobs).await?;
    s.delete_many(&[blobs[0].0]).await.context("delete")?;
    let v1 = s
        .cas_head("main", None, blobs[1].0)
        .await
        .context("create head")?;
    let v2 = s
        .cas_head("main", Some(&v1), blobs[2].0)
        .await
        .context("move head")?;
    let other = s
        .cas_head("tenants/acme", None, blobs[3].0)
        .await
        .context("create a second head")?;

    let s = factory.reopen(s).await.context("reopen")?;
    let addresses: Vec<Address> = blobs.iter().map(|(a, _)| *a).collect();
    let got = get_all(&s, &addresses).await?;
    ensure!(got[0].is_none(), "a deleted blob came back after reopening");
    for (i, ((_, want), got)) in blobs.iter().zip(&got).enumerate().skip(1) {
        ensure!(
            got.as_ref() == Some(want),
            "blob {i} did not survive reopening"
        );
    }
    let mut listed = list_everything(&s, 7).await?;
    listed.sort();
    let mut want: Vec<Address> = addresses[1..].to_vec();
    want.sort();
    ensure_eq!(listed, want, "the listing after reopening");
    ensure_eq!(
        s.get_head("main").await.context("get_head")?,
        Some(Head {
            commit: blobs[2].0,
            version: v2.clone()
        }),
        "the head and its version after reopening"
    );
    ensure_eq!(
        s.get_head("tenants/acme").await.context("get_head")?,
        Some(Head {
            commit: blobs[3].0,
            version: other
        }),
        "the second head after reopening"
    );
    let current = expect_conflict(
        "a CAS with a version from before the last move, after reopening",
        s.cas_head("main", Some(&v1), blobs[4].0).await,
    )?;
    ensure_eq!(
        current.map(|h| h.commit),
        Some(blobs[2].0),
        "the conflict after reopening shows the current head"
    );
    let v3 = s
        .cas_head("main", Some(&v2), blobs[4].0)
        .await
        .context("moving the head after reopening")?;
    ensure!(
        v3 != v2 && v3 != v1,
        "a version issued after reopening repeats an earlier one: {v1:?}, {v2:?}, {v3:?}"
    );
    let s = factory.reopen(s).await.context("second reopen")?;
    ensure_eq!(
        s.get_head("main").await.context("get_head")?,
        Some(Head {
            commit: blobs[4].0,
            version: v3
        }),
        "the head after a second reopen"
    );
    Ok(())
}

/// Heads are listed by name, each with its commit and version; a head is deleted only
/// with its current version (a compare-and-delete: a stale or unknown version fails
/// with the current head and deletes nothing); a deleted head reads as none, is listed
/// no more, and is made again by a create — whose version is new, so a writer still
/// holding a version from before the delete can neither move nor delete it. Reopening
/// keeps the listing.
pub async fn heads_are_listed_and_deleted_by_compare_and_delete<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let s = factory.create().await.context("create")?;
    ensure_eq!(
        s.list_heads().await.context("list_heads")?,
        Vec::<(String, Head)>::new(),
        "a new store has no heads"
    );
    let c: Vec<(Address, Bytes)> = (0..4).map(|i| numbered("branch", i)).collect();
    s.put_many(&c).await.context("put")?;
    let names = ["main", "feature/x", "ünï code", "a"];
    let mut versions = Vec::new();
    for (i, name) in names.iter().enumerate() {
        versions.push(s.cas_head(name, None, c[i].0).await.context("create")?);
    }
    let mut expected: Vec<(String, Head)> = names
        .iter()
        .zip(&versions)
        .enumerate()
        .map(|(i, (n, v))| {
            let head = Head {
                commit: c[i].0,
                version: v.clone(),
            };
            ((*n).to_owned(), head)
        })
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    ensure_eq!(
        s.list_heads().await.context("list_heads")?,
        expected.clone(),
        "every head, in name order"
    );
    // Moved since: the old version deletes nothing.
    let moved = s
        .cas_head("main", Some(&versions[0]), c[3].0)
        .await
        .context("move main")?;
    let current = expect_conflict(
        "a delete with a stale version",
        s.delete_head("main", &versions[0])
            .await
            .map(|()| Version(String::new())),
    )?;
    let at3 = Head {
        commit: c[3].0,
        version: moved.clone(),
    };
    ensure_eq!(
        current,
        Some(at3.clone()),
        "the conflict shows the current head"
    );
    let current = expect_conflict(
        "a delete with a version never issued",
        s.delete_head("main", &Version("not-a-version".into()))
            .await
            .map(|()| Version(String::new())),
    )?;
    ensure_eq!(
        current,
        Some(at3.clone()),
        "the conflict shows the current head"
    );
    ensure_eq!(
        s.get_head("main").await.context("get_head")?,
        Some(at3),
        "refused deletes leave the head"
    );
    s.delete_head("main", &moved).await.context("delete main")?;
    ensure_eq!(
        s.get_head("main").await.context("get_head")?,
        None,
        "a deleted head reads as none"
    );
    let listed = s.list_heads().await.context("list_heads")?;
    ensure!(
        listed.iter().all(|(n, _)| n != "main") && listed.len() == names.len() - 1,
        "a deleted head is not listed: {listed:?}"
    );
    let current = expect_conflict(
        "deleting a deleted head",
        s.delete_head("main", &moved)
            .await
            .map(|()| Version(String::new())),
    )?;
    ensure_eq!(current, None, "the conflict shows no head");
    let e = expect_conflict(
        "moving a deleted head with its last version",
        s.cas_head("main", Some(&moved), c[1].0).await,
    )?;
    ensure_eq!(e, None, "the conflict shows no head");
    // Made again: a new version, which the stale ones do not match.
    let again = s
        .cas_head("main", None, c[2].0)
        .await
        .context("create main again")?;
    ensure!(
        again != moved && again != versions[0],
        "a head made again has a new version, got {again:?} again"
    );
    expect_conflict(
        "moving the new head with a version from before the delete",
        s.cas_head("main", Some(&moved), c[1].0).await,
    )?;
    // Blobs stay.
    let got = s.get_many(&[c[0].0]).await.context("get")?;
    ensure!(got[0].is_some(), "deleting a head deletes no blob");
    let s = factory.reopen(s).await.context("reopen")?;
    let listed = s.list_heads().await.context("list_heads after reopen")?;
    ensure_eq!(
        listed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        vec!["a", "feature/x", "main", "ünï code"],
        "the listing after a reopen"
    );
    Ok(())
}

/// Listing with stamps lists what `list_blobs` lists, with each blob's size; a put of a
/// stored blob (through another handle) refreshes its stamp, and `delete_stale` deletes
/// only blobs still written before the cutoff (never one put since, nor an absent one),
/// returning those it deleted.
pub async fn a_put_refreshes_the_stamp_and_delete_stale_spares_blobs_written_since<F: Factory>(
    factory: &F,
) -> Result<(), Failure> {
    let s = factory.create().await.context("create")?;
    let blobs: Vec<(Address, Bytes)> = (0..20).map(|i| numbered("stamped", i)).collect();
    put_all(&s, &blobs).await?;
    let mut stamps = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_blob_stamps(after, 7)
            .await
            .context("list_blob_stamps")?;
        ensure!(page.len() <= 7, "a page of {} for a limit of 7", page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.address);
        stamps.extend(page);
    }
    let listed: Vec<Address> = stamps.iter().map(|b| b.address).collect();
    ensure_eq!(
        listed,
        list_everything(&s, 1000).await?,
        "list_blob_stamps and list_blobs list the same addresses in the same order"
    );
    for (address, bytes) in &blobs {
        let stamp = stamps.iter().find(|b| b.address == *address);
        ensure_eq!(
            stamp.map(|b| b.len),
            Some(bytes.len() as u64),
            "the listed size of {address:?}"
        );
    }

    until_every_stamp_is_past(&s).await?;
    let cutoff = std::time::SystemTime::now();
    // Another handle re-puts: a backend may skip re-putting a blob the same handle wrote
    // lately (S3's "known stored" set), which the grace period covers.
    let s = factory.reopen(s).await.context("reopen")?;
    let (refreshed, stale) = blobs.split_at(5);
    put_all(&s, refreshed).await?;
    let absent = numbered("never stored", 0).0;
    let mut asked: Vec<Address> = blobs.iter().map(|(a, _)| *a).collect();
    asked.push(absent);
    let mut deleted = s
        .delete_stale(&asked, cutoff)
        .await
        .context("delete_stale")?;
    deleted.sort_unstable();
    let mut want: Vec<Address> = stale.iter().map(|(a, _)| *a).collect();
    want.sort_unstable();
    want.dedup();
    ensure_eq!(
        deleted,
        want,
        "delete_stale deletes exactly the blobs not written since the cutoff"
    );
    let got = get_all(&s, &asked).await?;
    for (a, g) in asked.iter().zip(&got) {
        let kept = refreshed.iter().any(|(r, _)| r == a);
        ensure!(
            g.is_some() == kept,
            "{a:?}: refreshed = {kept}, but after delete_stale it reads as {:?}",
            g.as_ref().map(Bytes::len)
        );
    }
    ensure!(
        s.delete_stale(&asked, cutoff)
            .await
            .context("delete_stale again")?
            .is_empty(),
        "a second delete_stale deletes nothing"
    );
    Ok(())
}
