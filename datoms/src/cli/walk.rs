//! A level-by-level walk over every node of one or more index trees: one batched request
//! per level (of all trees at once), each node decoded — which checks its hash — and
//! checked against its parent's entry. `verify` and `stats` are both this walk. A node
//! that is missing, corrupt or misplaced does not stop it: it is recorded (with how it
//! was reached) and the walk goes on with every other node, so one pass finds every
//! damaged node whose parent is sound.

use std::collections::HashSet;

use datoms::storage::batch::get_batched;
use datoms::storage::large::decode_fetching;
use datoms::tree::Node;
use datoms::{Address, Datom, IndexKind, LargeValue, Storage, StorageError};
use indicatif::ProgressBar;

use super::CliError;

/// A node the walk reached, with what the caller may want to count.
pub struct Visit<'a> {
    /// Its index.
    pub index: IndexKind,
    /// Its size in bytes as stored.
    pub bytes: usize,
    /// The decoded node.
    pub node: &'a Node,
    /// The commit this node is a root of, if it is one.
    pub root_of: Option<Address>,
}

/// What the walk did.
#[derive(Debug, Default)]
pub struct WalkTotals {
    /// Nodes fetched and checked.
    pub nodes: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Batched requests issued (one per level).
    pub round_trips: u64,
    /// Every node found missing, corrupt or misplaced, as [`CliError::Verify`] naming its
    /// address and how it was reached, in walk order. Below such a node nothing can be
    /// reached, so its subtree is not walked.
    pub faults: Vec<CliError>,
}

impl WalkTotals {
    /// `Ok` if the walk found no damaged node, else the first one found.
    ///
    /// # Errors
    /// The first fault.
    pub fn sound(mut self) -> Result<WalkTotals, CliError> {
        if self.faults.is_empty() {
            Ok(self)
        } else {
            Err(self.faults.swap_remove(0))
        }
    }
}

/// What a parent says about a child: the walk checks the child agrees.
struct Expect {
    parent: Address,
    position: usize,
    level: u8,
    count: u64,
    first: Datom,
}

struct Want {
    address: Address,
    index: IndexKind,
    expect: Option<Expect>,
    /// The commit whose root this is (for messages about roots).
    root_of: Option<Address>,
}

/// Walks the trees rooted at `roots` (`(index, root address, commit)`), calling `visit`
/// on each distinct sound node once. The bar's length grows as each level is discovered.
/// Damaged nodes are collected in [`WalkTotals::faults`].
///
/// # Errors
/// A request to the storage that fails (after retries).
pub async fn walk(
    storage: &dyn Storage,
    roots: &[(IndexKind, Address, Address)],
    bar: &ProgressBar,
    mut visit: impl FnMut(Visit<'_>),
) -> Result<WalkTotals, CliError> {
    let mut totals = WalkTotals::default();
    let mut seen: HashSet<Address> = HashSet::new();
    let mut recent = RecentValues::default();
    let mut level: Vec<Want> = roots
        .iter()
        .map(|(index, address, commit)| Want {
            address: *address,
            index: *index,
            expect: None,
            root_of: Some(*commit),
        })
        .collect();
    while !level.is_empty() {
        // A subtree shared by several commits (history walks) is checked once.
        level.retain(|w| seen.insert(w.address));
        if level.is_empty() {
            break;
        }
        let addresses: Vec<Address> = level.iter().map(|w| w.address).collect();
        bar.inc_length(addresses.len() as u64);
        let blobs = get_batched(storage, &addresses).await?;
        totals.round_trips += 1;
        let mut next = Vec::new();
        for (want, blob) in level.iter().zip(blobs) {
            let context = || describe(want);
            let Some(bytes) = blob else {
                let missing = StorageError::NotFound {
                    address: want.address,
                };
                totals.faults.push(CliError::from(missing).at(context()));
                continue;
            };
            // Large values the node references are read and checked with it, and kept
            // a while so the other indexes' nodes that reference them do not read them
            // again.
            let decoded =
                decode_fetching(storage, || Node::decode(want.address, &bytes, want.index)).await;
            let (node, large) = match decoded {
                Ok(decoded) => decoded,
                // A storage that fails (not a node that is bad) ends the walk.
                Err(e @ (StorageError::Transient { .. } | StorageError::Backend { .. })) => {
                    return Err(CliError::from(e).at(context()))
                }
                Err(e) => {
                    totals.faults.push(CliError::from(e).at(context()));
                    continue;
                }
            };
            totals.bytes += large.bytes;
            recent.keep(large.values);
            if let Some(expect) = &want.expect {
                if let Err(e) = check_child(want.address, &node, expect) {
                    totals.faults.push(e.at(context()));
                    continue;
                }
            }
            totals.nodes += 1;
            totals.bytes += bytes.len() as u64;
            for (position, child) in node.children().iter().enumerate() {
                next.push(Want {
                    address: child.address(),
                    index: want.index,
                    expect: Some(Expect {
                        parent: want.address,
                        position,
                        level: node.level(),
                        count: child.count(),
                        first: child.first().clone(),
                    }),
                    root_of: None,
                });
            }
            visit(Visit {
                index: want.index,
                bytes: bytes.len(),
                node: &node,
                root_of: want.root_of,
            });
            bar.inc(1);
        }
        level = next;
    }
    Ok(totals)
}

/// The child must sit one level below its parent and hold what the parent's entry says:
/// a node that hashes right but sits in the wrong place is as broken as a corrupt one.
fn check_child(address: Address, node: &Node, expect: &Expect) -> Result<(), CliError> {
    let wrong = |reason: &str| {
        CliError::Core(datoms::Error::Malformed {
            address,
            reason: reason.to_owned(),
        })
    };
    if u16::from(node.level()) + 1 != u16::from(expect.level) {
        return Err(wrong("its level is not one below its parent's"));
    }
    if node.count() != expect.count {
        return Err(wrong("its datom count differs from its parent's entry"));
    }
    if node.first() != Some(&expect.first) {
        return Err(wrong("its first datom differs from its parent's entry"));
    }
    Ok(())
}

fn describe(want: &Want) -> String {
    let index = index_name(want.index);
    match (&want.expect, want.root_of) {
        (Some(e), _) => format!(
            "{index} level {} node, child {} of {}",
            e.level.saturating_sub(1),
            e.position,
            e.parent
        ),
        (None, Some(commit)) => format!("{index} root of commit {commit}"),
        (None, None) => format!("{index} node"),
    }
}

/// The position of an index in a commit's roots (EAVT, AEVT, AVET).
pub fn slot(index: IndexKind) -> usize {
    match index {
        IndexKind::Eavt => 0,
        IndexKind::Aevt => 1,
        IndexKind::Avet => 2,
    }
}

/// `EAVT`, `AEVT` or `AVET`.
pub fn index_name(index: IndexKind) -> &'static str {
    match index {
        IndexKind::Eavt => "EAVT",
        IndexKind::Aevt => "AEVT",
        IndexKind::Avet => "AVET",
    }
}

/// Large values read lately, held (up to [`RecentValues::BUDGET`] bytes, oldest dropped
/// first) so that decoding another node that references one does not read it again.
#[derive(Default)]
struct RecentValues {
    values: std::collections::VecDeque<LargeValue>,
    bytes: usize,
}

impl RecentValues {
    const BUDGET: usize = 256 << 20;

    fn keep(&mut self, values: Vec<LargeValue>) {
        for v in values {
            self.bytes += v.len();
            self.values.push_back(v);
        }
        while self.bytes > Self::BUDGET {
            match self.values.pop_front() {
                Some(v) => self.bytes -= v.len(),
                None => break,
            }
        }
    }
}
