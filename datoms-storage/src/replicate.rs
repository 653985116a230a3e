//! `replicate`: copy a head from one storage to another (redb → S3 for a backup or for
//! serving, S3 → a local redb cache).
//!
//! What is copied is what the target lacks **relative to its own head**: the commits
//! after the target's head commit and the nodes of the source's head that the target's
//! head does not reach. A node of the new head that is not in the target's trees was new
//! in one of the commits between the two heads, so the union of those commits' delta
//! manifests names every node to copy; the copy walks the new head's trees from the
//! roots, level by level (one batched request per level), and descends only into nodes
//! that union names — every other subtree is in the target's trees already. With no
//! head in the target (or, under [`ReplicateOptions::force`], a head the source does not
//! descend from), every node is walked.
//!
//! **Verified as it copies**: every blob read, from either storage, is checked against
//! its address before it is written or decoded. **Never a head on an incomplete
//! commit**: the nodes and commits are written first, the target's head moves last, by
//! CAS from the version read at the start (a target moved meanwhile is
//! [`StorageError::HeadConflict`], nothing overwritten).
//!
//! **Interrupted, it resumes without re-copying**: writes go out level by level as the
//! walk reads, so a killed copy leaves what it wrote in the target; a target that holds
//! blobs its head does not name (or any blob, when it has no head) is read first, and a
//! blob found there is read from the target instead of copied. A fresh, empty target
//! skips those reads.

use std::collections::HashSet;

use bytes::Bytes;
use datoms_core::tree::Node;
use datoms_core::{Address, Commit, IndexKind};

use crate::batch::{get_batched, put_batched, retry};
use crate::error::StorageError;
use crate::restore::read_head;
use crate::storage::{Head, Storage};

/// The most blobs one step of the walk holds in memory (a level is cut into steps of
/// this many, so a full copy never holds more than a few MiB of nodes).
pub const STEP_BLOBS: usize = 2048;

/// How [`replicate_with`] copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicateOptions {
    /// Copy every commit between the target's head and the source's (back to the first
    /// commit for a target without the head), so `log`, `diff` of older commits and log
    /// replay work on the target as on the source. Off: only the head's commit.
    pub history: bool,
    /// Move the target's head even when the source's head does not descend from it
    /// (the target's own commits are then no longer named by the head).
    pub force: bool,
}

impl Default for ReplicateOptions {
    /// History copied, no force.
    fn default() -> ReplicateOptions {
        ReplicateOptions {
            history: true,
            force: false,
        }
    }
}

/// What a replication copied so far (also reported, as it grows, to the progress
/// callback of [`replicate_with`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicateStats {
    /// Tree nodes written to the target.
    pub nodes_copied: u64,
    /// Commits written to the target.
    pub commits_copied: u64,
    /// Large values (stored out of line) written to the target: those the copied nodes
    /// and commit logs reference that it lacked.
    pub large_values_copied: u64,
    /// Bytes written to the target: nodes, large values and commits.
    pub bytes_copied: u64,
    /// Blobs needed that the target had already (left by an interrupted copy).
    pub blobs_present: u64,
    /// Blobs read (from either storage) and checked against their addresses.
    pub blobs_verified: u64,
    /// The node count of the source head's trees: an upper bound of the nodes to copy,
    /// for progress bars.
    pub nodes_in_head: u64,
    /// Batched requests, to either storage.
    pub round_trips: u64,
}

/// The result of a replication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replicated {
    /// The commit both heads now name.
    pub commit: Address,
    /// Where the target's head was before (`None`: it did not exist).
    pub previous: Option<Address>,
    /// False when the target's head was already at `commit` (nothing was written).
    pub moved: bool,
    /// What was copied.
    pub stats: ReplicateStats,
}

/// Copies head `name` from `from` to `to` with the default options (see the module
/// docs).
///
/// # Errors
/// As [`replicate_with`].
pub async fn replicate<F, T>(from: &F, to: &T, name: &str) -> Result<Replicated, StorageError>
where
    F: Storage + ?Sized,
    T: Storage + ?Sized,
{
    replicate_with(from, to, name, ReplicateOptions::default(), &mut |_| {}).await
}

/// Copies head `name` from `from` to `to` (see the module docs), calling `progress`
/// after every batch with the counts so far. Runs in a `replicate` tracing span; an
/// info event reports what was copied.
///
/// # Errors
/// [`StorageError::NoHead`] if `from` has no such head; [`StorageError::Diverged`] if
/// the target's head is on a commit the source's head does not descend from (unless
/// [`ReplicateOptions::force`]); [`StorageError::HeadConflict`] if the target's head
/// moved during the copy; a blob that does not match its address (`Corrupt`) or is
/// missing; read and write errors. On any error the target's head is where it was
/// (unless the error came after the CAS was sent), and what was written stays for the
/// next try.
#[tracing::instrument(name = "replicate", level = "info", skip_all, fields(head = name))]
pub async fn replicate_with<F, T>(
    from: &F,
    to: &T,
    name: &str,
    options: ReplicateOptions,
    progress: &mut (dyn FnMut(&ReplicateStats) + Send),
) -> Result<Replicated, StorageError>
where
    F: Storage + ?Sized,
    T: Storage + ?Sized,
{
    let source_head = read_head(from, name).await?;
    let target_head: Option<Head> = retry(|| to.get_head(name)).await?;
    let previous = target_head.as_ref().map(|h| h.commit);
    let mut copy = Copy {
        from,
        to,
        stats: ReplicateStats::default(),
        // A target with a head, or with any blob, may hold what an interrupted copy
        // wrote: read it first. An empty one cannot.
        check_target: target_head.is_some() || !retry(|| to.list_blobs(None, 1)).await?.is_empty(),
        progress,
        large_written: HashSet::new(),
    };
    copy.stats.round_trips += 2;
    if previous == Some(source_head) {
        return Ok(Replicated {
            commit: source_head,
            previous,
            moved: false,
            stats: copy.stats,
        });
    }
    // The head's commit, then its ancestors back to the target's head commit.
    let mut commits = copy.read(&[source_head]).await?;
    let head_commit = decode_commit(source_head, &commits[0].bytes)?;
    copy.stats.nodes_in_head = head_commit.nodes;
    let mut manifests: HashSet<Address> = head_commit.manifest.iter().copied().collect();
    // The nodes the commits between the heads made, in the order their commits list
    // them (the older commits' own nodes, copied with the history).
    let mut older: Vec<Address> = Vec::new();
    let found = match previous {
        Some(target) => {
            copy.ancestors(
                &head_commit,
                source_head,
                Some(target),
                |c| {
                    manifests.extend(c.manifest.iter().copied());
                    older.extend(c.manifest.iter().copied());
                },
                &mut commits,
            )
            .await?
        }
        None if options.history => {
            copy.ancestors(
                &head_commit,
                source_head,
                None,
                |c| {
                    older.extend(c.manifest.iter().copied());
                },
                &mut commits,
            )
            .await?;
            false
        }
        None => false,
    };
    if let (Some(target), false, false) = (previous, found, options.force) {
        return Err(StorageError::Diverged {
            name: name.to_owned(),
            target,
            source_head,
        });
    }
    // The nodes: everything the target's head does not reach, when it is an ancestor.
    let only = found.then_some(&manifests);
    let mut walked = HashSet::new();
    copy.nodes(&head_commit, only, &mut walked).await?;
    if options.history {
        // Every commit copied is complete in the target too: its nodes are the target
        // head's, or ones a commit between made.
        let mut rest = HashSet::new();
        older.retain(|a| !walked.contains(a) && rest.insert(*a));
        copy.hints(&older).await?;
    }
    // The commits, the head's last (ancestors first, so a reader following parents from
    // any of them finds each one's parent).
    let written: Vec<Blob> = if options.history {
        commits.into_iter().rev().collect()
    } else {
        commits.truncate(1);
        commits
    };
    let mut large = Vec::new();
    for blob in written.iter().filter(|b| b.lacking) {
        large.extend(decode_commit(blob.address, &blob.bytes)?.log_large_references()?);
    }
    copy.large_values(&large, true).await?;
    copy.write(&written, Kind::Commit).await?;
    let expected = target_head.as_ref().map(|h| &h.version);
    // Not retried, as in `store`: a CAS whose reply was lost may have landed.
    to.cas_head(name, expected, source_head).await?;
    copy.stats.round_trips += 1;
    (copy.progress)(&copy.stats);
    tracing::info!(
        commit = %source_head,
        previous = ?previous,
        nodes = copy.stats.nodes_copied,
        commits = copy.stats.commits_copied,
        bytes = copy.stats.bytes_copied,
        present = copy.stats.blobs_present,
        "replicated"
    );
    Ok(Replicated {
        commit: source_head,
        previous,
        moved: true,
        stats: copy.stats,
    })
}

/// A blob read for the copy.
#[derive(Clone)]
struct Blob {
    address: Address,
    bytes: Bytes,
    /// The target does not have it.
    lacking: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Node,
    LargeValue,
    Commit,
}

struct Copy<'a, F: ?Sized, T: ?Sized> {
    from: &'a F,
    to: &'a T,
    stats: ReplicateStats,
    check_target: bool,
    progress: &'a mut (dyn FnMut(&ReplicateStats) + Send),
    /// Large values written (or found in the target) so far.
    large_written: HashSet<Address>,
}

impl<F: Storage + ?Sized, T: Storage + ?Sized> Copy<'_, F, T> {
    /// The blobs at `addresses`, checked, each from the target when it has it or else
    /// from the source; with each, whether the target lacks it (and so must get it).
    async fn read(&mut self, addresses: &[Address]) -> Result<Vec<Blob>, StorageError> {
        let blobs = self.read_some(addresses).await?;
        match addresses.iter().zip(&blobs).find(|(_, b)| b.is_none()) {
            Some((a, _)) => Err(StorageError::NotFound { address: *a }),
            None => Ok(blobs.into_iter().flatten().collect()),
        }
    }

    /// [`Copy::read`], with `None` for a blob neither storage has.
    async fn read_some(
        &mut self,
        addresses: &[Address],
    ) -> Result<Vec<Option<Blob>>, StorageError> {
        let mut got: Vec<Option<Bytes>> = if self.check_target {
            self.stats.round_trips += 1;
            get_batched(self.to, addresses).await?
        } else {
            vec![None; addresses.len()]
        };
        let lacking: Vec<bool> = got.iter().map(Option::is_none).collect();
        let missing: Vec<Address> = addresses
            .iter()
            .zip(&lacking)
            .filter(|(_, l)| **l)
            .map(|(a, _)| *a)
            .collect();
        self.stats.blobs_present += (addresses.len() - missing.len()) as u64;
        if !missing.is_empty() {
            self.stats.round_trips += 1;
            let mut fetched = get_batched(self.from, &missing).await?.into_iter();
            for slot in got.iter_mut().filter(|b| b.is_none()) {
                *slot = fetched.next().flatten();
            }
        }
        let mut out = Vec::with_capacity(addresses.len());
        for ((a, b), lacking) in addresses.iter().zip(got).zip(lacking) {
            let Some(bytes) = b else {
                out.push(None);
                continue;
            };
            a.verify(&bytes)?;
            self.stats.blobs_verified += 1;
            out.push(Some(Blob {
                address: *a,
                bytes,
                lacking,
            }));
        }
        Ok(out)
    }

    /// Writes the blobs the target lacks.
    async fn write(&mut self, blobs: &[Blob], kind: Kind) -> Result<(), StorageError> {
        let missing: Vec<(Address, Bytes)> = blobs
            .iter()
            .filter(|b| b.lacking)
            .map(|b| (b.address, b.bytes.clone()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        put_batched(self.to, &missing).await?;
        self.stats.round_trips += 1;
        let count = missing.len() as u64;
        match kind {
            Kind::Node => self.stats.nodes_copied += count,
            Kind::LargeValue => self.stats.large_values_copied += count,
            Kind::Commit => self.stats.commits_copied += count,
        }
        self.stats.bytes_copied += missing.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        (self.progress)(&self.stats);
        Ok(())
    }

    /// Collects the ancestors of `head` (newest first, after what `commits` holds) down
    /// to `stop` (excluded) or the first commit, calling `each` on every one. True if
    /// `stop` was reached.
    async fn ancestors(
        &mut self,
        head: &Commit,
        address: Address,
        stop: Option<Address>,
        mut each: impl FnMut(&Commit),
        commits: &mut Vec<Blob>,
    ) -> Result<bool, StorageError> {
        let mut lineage = head.lineage(address);
        lineage.remove(0);
        loop {
            if lineage.is_empty() {
                return Ok(false);
            }
            // The commits this lineage lists, up to `stop`.
            let until = stop.and_then(|s| lineage.iter().position(|a| *a == s));
            let batch = &lineage[..until.unwrap_or(lineage.len())];
            // A commit the source lacks (it is itself a copy without that history) ends
            // the history there.
            let blobs = self.read_some(batch).await?;
            let complete = blobs.iter().all(Option::is_some);
            let mut last = None;
            for blob in blobs.into_iter().map_while(|b| b) {
                let c = decode_commit(blob.address, &blob.bytes)?;
                each(&c);
                last = Some((blob.address, c));
                commits.push(blob);
            }
            if !complete {
                return Ok(false);
            }
            if until.is_some() {
                return Ok(true);
            }
            let Some((a, c)) = last else {
                return Ok(false);
            };
            lineage = c.lineage(a);
            lineage.remove(0);
        }
    }

    /// Copies the nodes of `head`'s trees the target lacks, level by level. `only`: the
    /// nodes new since the target's head (a node outside it is in the target's trees,
    /// and so is its subtree). Adds every node walked to `seen`.
    async fn nodes(
        &mut self,
        head: &Commit,
        only: Option<&HashSet<Address>>,
        seen: &mut HashSet<Address>,
    ) -> Result<(), StorageError> {
        // (address, index, level when known: roots are decoded to learn it)
        let mut level: Vec<(Address, IndexKind, Option<u8>)> = IndexKind::ALL
            .iter()
            .zip(head.roots)
            .map(|(k, a)| (a, *k, None))
            .collect();
        while !level.is_empty() {
            level.retain(|(a, _, _)| only.is_none_or(|o| o.contains(a)) && seen.insert(*a));
            let mut next = Vec::new();
            for step in level.chunks(STEP_BLOBS) {
                let addresses: Vec<Address> = step.iter().map(|(a, _, _)| *a).collect();
                let blobs = self.read(&addresses).await?;
                let mut large = Vec::new();
                for ((a, kind, at), blob) in step.iter().zip(&blobs) {
                    // The large values a node the target lacks references go with it.
                    if blob.lacking {
                        large.extend(Node::large_references(*a, &blob.bytes)?);
                    }
                    // A leaf has no children to walk; a branch (or a root, whose level is
                    // not known yet) is decoded for them. `read` checked the bytes.
                    if *at == Some(0) {
                        continue;
                    }
                    let node = match Node::decode(*a, &blob.bytes, *kind) {
                        Ok(node) => node,
                        // A branch key holding a large value nobody here holds: decoded
                        // again once the values are read.
                        Err(datoms_core::Error::LargeValuesMissing { addresses, .. }) => {
                            let held = self.large_values(&addresses, false).await?;
                            let node = Node::decode(*a, &blob.bytes, *kind)?;
                            drop(held);
                            node
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let below = node.level().checked_sub(1);
                    for child in node.children() {
                        next.push((child.address(), *kind, below));
                    }
                }
                // Values before the nodes that reference them: a node in the target
                // always finds its values there (an interrupted copy included).
                self.large_values(&large, true).await?;
                self.write(&blobs, Kind::Node).await?;
            }
            level = next;
        }
        Ok(())
    }

    /// Reads the large values at `addresses` (from the target when it has them, checked),
    /// writes those the target lacks when `write`, and returns them decoded (held while a
    /// node that references them decodes).
    async fn large_values(
        &mut self,
        addresses: &[Address],
        write: bool,
    ) -> Result<Vec<datoms_core::LargeValue>, StorageError> {
        let mut wanted = addresses.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        if write {
            // Each value once per copy, however many nodes and logs reference it.
            wanted.retain(|a| !self.large_written.contains(a));
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let blobs = self.read(&wanted).await?;
        let mut held = Vec::with_capacity(blobs.len());
        for b in &blobs {
            held.push(datoms_core::LargeValue::decode(b.address, &b.bytes)?);
        }
        if write {
            self.write(&blobs, Kind::LargeValue).await?;
            self.large_written.extend(wanted);
        }
        Ok(held)
    }

    /// Copies the blobs at `addresses` that the source has (manifest nodes of older
    /// commits: hints, which a source without that history may lack).
    async fn hints(&mut self, addresses: &[Address]) -> Result<(), StorageError> {
        for step in addresses.chunks(STEP_BLOBS) {
            let blobs: Vec<Blob> = self.read_some(step).await?.into_iter().flatten().collect();
            let mut large = Vec::new();
            for blob in blobs.iter().filter(|b| b.lacking) {
                large.extend(Node::large_references(blob.address, &blob.bytes)?);
            }
            self.large_values(&large, true).await?;
            self.write(&blobs, Kind::Node).await?;
        }
        Ok(())
    }
}

fn decode_commit(address: Address, bytes: &[u8]) -> Result<Commit, StorageError> {
    Ok(Commit::decode(address, bytes)?)
}
