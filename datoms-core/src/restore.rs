//! Restore as a sans-IO state machine: it says which addresses it needs, the caller
//! fetches them (in one batched request per step) and hands the bytes back.
//!
//! # What it fetches
//! 1. The target commit (nothing at all if `db1` already is that commit).
//! 2. If `db1`'s commit is a recent ancestor of the target (listed in its lineage), the
//!    delta manifests of the commits in between name every node that is new since `db1`.
//!    The target commit repeats them (within [`crate::commit::MANIFEST_BUDGET`]); those it
//!    leaves out come from the commits themselves, fetched in one batch.
//! 3. The roots, plus every node those manifests and the target's own name, in one
//!    batch. With a complete manifest that is the last request. (The target's own
//!    manifest is fetched this way whenever its nodes are new to `db1`: `db1` holds
//!    nothing, or its commit is an ancestor of the target.)
//! 4. Otherwise (a `db1` too far behind or on another branch — lineage is checked, never
//!    assumed), the trees are walked level by level: one batch per level with every
//!    child `db1` does not hold. Held subtrees are shared with `db1` in memory, never
//!    fetched.
//!
//! Every fetched node is verified against its address and its parent's entry.
//!
//! # Finding what `db1` holds: by position, not by a map
//! Trees are history-independent, so a node of the new version that `db1` also holds
//! sits in `db1`'s tree of the same index at the same level, where its first datom (the
//! key in its parent's entry) leads. So a child is looked up by descending `db1`'s tree
//! from the root to that level by that key (the last child whose first datom is not
//! after it, as a cursor seeks) and comparing the one candidate there: count and first
//! datom, then address (known, or computed for this one node if it has none yet). The
//! children of one parent are looked up together: one descent finds `db1`'s node at the
//! parent's level and position, and the children are matched against its children in
//! one forward pass, as a merge; a child past that node's range descends on its own.
//! The work of an incremental restore thus follows the delta (the nodes fetched, their
//! children) and the tree height, never `db1`'s size; [`RestoreStats::db1_nodes_examined`]
//! counts it. A descent that reaches a child `db1` has not loaded stops there: `db1`
//! holds that region only in storage.
//!
//! Manifest addresses carry no key, so a manifest node cannot be looked up before it is
//! fetched: it is fetched even in the rare case that `db1` already holds it (a node that
//! left the trees and came back), and a root is compared with `db1`'s root only. Such
//! nodes are fetched but not used, and counted ([`RestoreStats::nodes_unused`]); a
//! fetched root that `db1` holds below its own root is replaced by `db1`'s copy.
//!
//! A lazily restored `db1` gives a lazily restored result: the new roots and the nodes
//! the manifests name are fetched, unchanged subtrees are shared unloaded, and nothing
//! old is read.
//!
//! ```
//! use std::collections::HashMap;
//! use datoms_core::addressing::commit_for;
//! use datoms_core::restore::{Restore, Step};
//! use datoms_core::{Address, Db, Schema};
//!
//! # fn main() -> Result<(), datoms_core::Error> {
//! // A "storage": every node and the commit of a db, by address.
//! let db = Db::new(Schema::new()).with_edn(r#"[{:db/id -1 :person/name "Ann"}]"#)?.db_after;
//! let (commit, nodes) = commit_for(&db)?;
//! let mut storage: HashMap<Address, Vec<u8>> =
//!     nodes.nodes.iter().map(|n| (n.address, n.bytes.clone())).collect();
//! let commit = commit.encode();
//! let commit_address = Address::of(&commit);
//! storage.insert(commit_address, commit);
//!
//! // The driver: fetch what the machine asks for, one batch per step.
//! let mut restore = Restore::new(commit_address, None);
//! let restored = loop {
//!     match restore.poll()? {
//!         Step::Need(addresses) => {
//!             for address in addresses {
//!                 restore.accept(address, storage.get(&address).map(Vec::as_slice))?;
//!             }
//!         }
//!         Step::Done(db) => break db,
//!     }
//! };
//! assert_eq!(restored.root_addresses(), db.root_addresses());
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::address::Address;
use crate::commit::Commit;
use crate::datom::IndexKind;
use crate::db::Db;
use crate::error::Error;
use crate::held::{Entry, EntryAddress, Found, Held};
use crate::large::LargeValue;
use crate::tree::node::Child;
use crate::tree::{Node, Tree};

/// What a restore (or materialize) needs next.
#[derive(Debug)]
pub enum Step {
    /// Fetch these addresses (one batched request) and [`Restore::accept`] each.
    Need(Vec<Address>),
    /// Finished.
    Done(Db),
}

/// I/O done by a restore, as counted by the state machine, and the work it took to find
/// what `db1` holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Batched requests issued (each [`Step::Need`]).
    pub round_trips: u64,
    /// Tree nodes fetched.
    pub nodes_fetched: u64,
    /// Large values fetched (stored out of line, see [`crate::large`]): those the
    /// fetched nodes reference that nothing in this process holds.
    pub large_values_fetched: u64,
    /// Commit records fetched.
    pub commits_fetched: u64,
    /// Bytes fetched: nodes, large values and commits.
    pub bytes_fetched: u64,
    /// Subtrees taken from `db1` instead of fetched (each counted once, at its root).
    pub nodes_reused: u64,
    /// Nodes fetched that the result does not use: manifest nodes a later commit
    /// replaced or `db1` already held, and roots `db1` held below its own root (neither
    /// has a key to look it up in `db1` before it is fetched).
    pub nodes_unused: u64,
    /// Nodes of `db1` examined to find what it holds: about one per tree level for each
    /// node of the new version looked up, so it follows the delta, not `db1`'s size.
    pub db1_nodes_examined: u64,
    /// True if the manifests of the commits since `db1` named more nodes than the
    /// target's trees have (superseded commits), so the restore walked the trees level
    /// by level instead of prefetching them: it never fetches more than a full restore.
    pub prefetch_skipped: bool,
}

/// How much of the trees to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Load every node (a fully materialized db).
    Eager,
    /// Load the commit and the three roots; other nodes load on demand through the db's
    /// [`crate::tree::NodeSource`].
    Lazy,
}

enum Phase {
    Commit,
    Ancestors {
        commit: Box<Commit>,
        waiting: Vec<Address>,
        prefetch: Vec<Address>,
    },
    Walk,
}

/// A sans-IO loading machine: [`Restore`] and [`Materialize`]. A driver calls `poll`,
/// fetches what it asks for in one batched request, hands each blob to `accept`, and
/// repeats until `poll` returns [`Step::Done`].
pub trait Machine {
    /// Advances the machine.
    ///
    /// # Errors
    /// Bad or mismatching nodes and commits.
    fn poll(&mut self) -> Result<Step, Error>;

    /// Hands over the bytes fetched for `address` (`None`: storage does not have it).
    ///
    /// # Errors
    /// Unrequested, missing or corrupt blobs.
    fn accept(&mut self, address: Address, bytes: Option<&[u8]>) -> Result<(), Error>;

    /// The I/O counted so far.
    fn stats(&self) -> RestoreStats;
}

impl Machine for Restore {
    fn poll(&mut self) -> Result<Step, Error> {
        Restore::poll(self)
    }
    fn accept(&mut self, address: Address, bytes: Option<&[u8]>) -> Result<(), Error> {
        Restore::accept(self, address, bytes)
    }
    fn stats(&self) -> RestoreStats {
        Restore::stats(self)
    }
}

impl Machine for Materialize {
    fn poll(&mut self) -> Result<Step, Error> {
        Materialize::poll(self)
    }
    fn accept(&mut self, address: Address, bytes: Option<&[u8]>) -> Result<(), Error> {
        Materialize::accept(self, address, bytes)
    }
    fn stats(&self) -> RestoreStats {
        Materialize::stats(self)
    }
}

/// The restore state machine. See the module docs.
pub struct Restore {
    target: Address,
    mode: Mode,
    db1: Option<Db>,
    phase: Phase,
    commit: Option<Commit>,
    requested: HashSet<Address>,
    fetched_commits: HashMap<Address, Commit>,
    walk: Walk,
    stats: RestoreStats,
    /// `db1` reads another storage (see [`Restore::db1_reads_another_storage`]).
    foreign_db1: bool,
}

impl Restore {
    /// A full (eager) restore of `commit`, reusing what `db1` holds if given.
    pub fn new(commit: Address, db1: Option<&Db>) -> Restore {
        Restore::with_mode(commit, db1, Mode::Eager)
    }

    /// A restore of `commit` in the given mode.
    pub fn with_mode(commit: Address, db1: Option<&Db>, mode: Mode) -> Restore {
        let held = db1.map(Held::of).unwrap_or_default();
        Restore {
            target: commit,
            mode,
            db1: db1.cloned(),
            phase: Phase::Commit,
            commit: None,
            requested: HashSet::new(),
            fetched_commits: HashMap::new(),
            walk: Walk::new(held, mode),
            stats: RestoreStats::default(),
            foreign_db1: false,
        }
    }

    /// Declares that `db1` loads what it has not loaded from a storage other than the one
    /// this restore reads. Then nothing `db1` knows only by address is shared (it would
    /// load from the wrong storage): such nodes are fetched like new ones, and the result
    /// does not keep `db1`'s source. Held nodes `db1` has in memory are still shared;
    /// the driver materializes whatever they leave unloaded (see
    /// [`Db::has_unloaded_nodes`]).
    pub fn db1_reads_another_storage(mut self) -> Restore {
        self.walk.held.share_unloaded = false;
        self.foreign_db1 = true;
        self
    }

    /// Hands over the target commit, already fetched and decoded by the caller (e.g. to
    /// choose between log replay and restore), saving its request.
    pub fn provide_commit(&mut self, commit: Commit) {
        self.fetched_commits.insert(self.target, commit);
    }

    /// The I/O counted so far.
    pub fn stats(&self) -> RestoreStats {
        self.walk.add_counts(self.stats)
    }

    /// The decoded target commit, once fetched.
    pub fn commit(&self) -> Option<&Commit> {
        self.commit.as_ref()
    }

    /// Advances the machine.
    ///
    /// # Errors
    /// A malformed commit or node (already reported by [`Restore::accept`]), or a node
    /// that does not match its parent's entry.
    pub fn poll(&mut self) -> Result<Step, Error> {
        if let Some(db1) = &self.db1 {
            if self.commit.is_none()
                && db1.base_commit() == Some(self.target)
                && db1.pending_txs() == 0
            {
                return Ok(Step::Done(db1.clone()));
            }
        }
        loop {
            match &mut self.phase {
                Phase::Commit => {
                    let Some(commit) = self.fetched_commits.remove(&self.target) else {
                        return Ok(self.request(vec![self.target]));
                    };
                    self.phase = self.after_commit(commit);
                }
                Phase::Ancestors { waiting, .. } => {
                    let missing: Vec<Address> = waiting
                        .iter()
                        .filter(|a| !self.fetched_commits.contains_key(a))
                        .copied()
                        .collect();
                    if !missing.is_empty() {
                        return Ok(self.request(missing));
                    }
                    let Phase::Ancestors {
                        commit,
                        waiting,
                        mut prefetch,
                    } = std::mem::replace(&mut self.phase, Phase::Walk)
                    else {
                        continue;
                    };
                    prefetch.extend(
                        waiting
                            .iter()
                            .filter_map(|a| self.fetched_commits.get(a))
                            .flat_map(|c| c.manifest.iter().copied()),
                    );
                    self.start_walk(*commit, Some(prefetch));
                }
                Phase::Walk => {
                    let need = self.walk.advance()?;
                    if need.is_empty() {
                        return self.finish().map(Step::Done);
                    }
                    return Ok(self.request(need));
                }
            }
        }
    }

    /// Hands over the bytes fetched for `address` (`None`: storage does not have it).
    ///
    /// # Errors
    /// [`Error::Unrequested`], [`Error::NodeUnavailable`] for missing bytes,
    /// [`Error::Corrupt`] for bytes that do not hash to `address`, or a malformed commit.
    pub fn accept(&mut self, address: Address, bytes: Option<&[u8]>) -> Result<(), Error> {
        if !self.requested.remove(&address) {
            return Err(Error::Unrequested { address });
        }
        let Some(bytes) = bytes else {
            if matches!(self.phase, Phase::Walk) && self.walk.is_unasked_hint(&address) {
                return Ok(());
            }
            return Err(Error::NodeUnavailable {
                address,
                reason: "storage does not have it".into(),
            });
        };
        address.verify(bytes)?;
        self.stats.bytes_fetched += bytes.len() as u64;
        match self.phase {
            Phase::Walk => match self.walk.receive(address, bytes)? {
                Received::Node => self.stats.nodes_fetched += 1,
                Received::LargeValue => self.stats.large_values_fetched += 1,
            },
            Phase::Commit | Phase::Ancestors { .. } => {
                self.stats.commits_fetched += 1;
                let commit = Commit::decode(address, bytes)?;
                self.fetched_commits.insert(address, commit);
            }
        }
        Ok(())
    }

    fn request(&mut self, addresses: Vec<Address>) -> Step {
        self.stats.round_trips += 1;
        self.requested.extend(addresses.iter().copied());
        Step::Need(addresses)
    }

    /// After the target commit: fetch the commits between db1 and it if db1's commit is
    /// a recent ancestor, else walk.
    fn after_commit(&mut self, commit: Commit) -> Phase {
        let lineage = commit.lineage(self.target);
        let base = self.db1.as_ref().and_then(Db::base_commit);
        let position = base.and_then(|b| lineage.iter().position(|a| *a == b));
        match position {
            Some(k) if k >= 2 && self.mode == Mode::Eager => {
                // The commits newer than db1's base, other than the target itself: their
                // manifests come from the target when it repeats them, else from them.
                let manifests = commit.lineage_manifests();
                let mut prefetch = Vec::new();
                let mut waiting = Vec::new();
                for (i, address) in lineage.iter().enumerate().take(k).skip(1) {
                    match manifests.get(i) {
                        Some(Some(m)) => prefetch.extend(m.iter().copied()),
                        _ => waiting.push(*address),
                    }
                }
                if waiting.is_empty() {
                    self.start_walk(commit, Some(prefetch));
                    return Phase::Walk;
                }
                Phase::Ancestors {
                    commit: Box::new(commit),
                    waiting,
                    prefetch,
                }
            }
            _ => {
                let hints = self.manifest_is_new_to_db1(position).then(Vec::new);
                self.start_walk(commit, hints);
                Phase::Walk
            }
        }
    }

    /// True if every node the target's manifest names is new to `db1` (save a rare node
    /// recreated since): `db1` holds nothing, or its commit is an ancestor of the target.
    /// Otherwise (another branch, too far behind to tell, or the target itself with
    /// unstored transactions) the manifest may name nodes `db1` holds, and as it carries
    /// no keys to look them up, the walk finds what is missing instead.
    fn manifest_is_new_to_db1(&self, position_in_lineage: Option<usize>) -> bool {
        match (&self.db1, position_in_lineage) {
            (None, _) => true,
            (Some(_), Some(k)) => k >= 1,
            (Some(db1), None) => db1.is_empty(),
        }
    }

    /// Starts walking the target's trees. In eager mode, given `prefetch` (the manifests
    /// of the commits since db1, empty if none), the target's manifest and `prefetch` are
    /// fetched with the roots: every node they name is new since db1. A node new in an
    /// intermediate commit may have been replaced since; fetching it anyway is the price
    /// of saving one round trip per tree level.
    fn start_walk(&mut self, commit: Commit, prefetch: Option<Vec<Address>>) {
        if let (Mode::Eager, Some(mut prefetch)) = (self.mode, prefetch) {
            prefetch.extend(commit.manifest.iter().copied());
            // Never fetch more than a full restore: manifests of superseded commits name
            // nodes the target no longer has, and past the target's own node count the
            // level walk (which fetches only what the target has and db1 lacks) is
            // cheaper in nodes, whatever it costs in round trips.
            prefetch.sort_unstable();
            prefetch.dedup();
            let roots_unlisted = commit
                .roots
                .iter()
                .filter(|r| prefetch.binary_search(r).is_err())
                .count();
            if (prefetch.len() + roots_unlisted) as u64 <= commit.nodes {
                self.walk.prefetch = prefetch;
            } else {
                self.stats.prefetch_skipped = true;
            }
        }
        for (slot, kind) in IndexKind::ALL.iter().enumerate() {
            self.walk.pending.push(Want {
                address: commit.roots[slot],
                kind: *kind,
                parent: Parent::Root(slot),
            });
        }
        self.commit = Some(commit);
    }

    fn finish(&mut self) -> Result<Db, Error> {
        self.walk.discard_unused();
        let commit = self.commit.take().ok_or_else(|| Error::Malformed {
            address: self.target,
            reason: "restore finished without its commit".into(),
        })?;
        let mut trees = Vec::with_capacity(3);
        for (slot, kind) in IndexKind::ALL.iter().enumerate() {
            let root = self.walk.roots[slot]
                .clone()
                .ok_or_else(|| Error::Malformed {
                    address: commit.roots[slot],
                    reason: "root was not restored".into(),
                })?;
            trees.push(Tree::from_root(*kind, commit.config, root));
        }
        let [eavt, aevt, avet]: [Tree; 3] = trees.try_into().map_err(|_| Error::Malformed {
            address: self.target,
            reason: "three roots expected".into(),
        })?;
        let mut db = Db::with_config(commit.schema.clone(), commit.config);
        db.max_eid = commit.max_eid;
        db.max_tx = commit.max_tx;
        db.eavt = eavt.into();
        db.aevt = aevt.into();
        db.avet = avet.into();
        db.lineage = Arc::new(commit.lineage(self.target));
        db.manifests = Arc::new(commit.lineage_manifests());
        db.parents_time = commit.time;
        db.base = Some(Arc::new(crate::db::Base::new(db.trees(), commit.nodes)));
        if !self.foreign_db1 {
            db.source = self.db1.as_ref().and_then(|d| d.source.clone());
        }
        Ok(db)
    }
}

/// Loads every node of a lazily restored db, one batched request per tree level.
pub struct Materialize {
    db: Db,
    walk: Walk,
    requested: HashSet<Address>,
    stats: RestoreStats,
}

impl Materialize {
    /// Starts loading what `db` has not loaded yet.
    pub fn new(db: &Db) -> Materialize {
        let mut walk = Walk::new(Held::default(), Mode::Eager);
        for kind in IndexKind::ALL {
            walk.seed_unloaded(db.tree(kind).root());
        }
        Materialize {
            db: db.clone(),
            walk,
            requested: HashSet::new(),
            stats: RestoreStats::default(),
        }
    }

    /// Advances the machine; `Done` returns the same db, now fully in memory.
    ///
    /// # Errors
    /// A node that does not match its parent's entry.
    pub fn poll(&mut self) -> Result<Step, Error> {
        let need = self.walk.advance()?;
        if need.is_empty() {
            return Ok(Step::Done(self.db.clone()));
        }
        self.stats.round_trips += 1;
        self.requested.extend(need.iter().copied());
        Ok(Step::Need(need))
    }

    /// Hands over fetched bytes, as [`Restore::accept`].
    ///
    /// # Errors
    /// As [`Restore::accept`].
    pub fn accept(&mut self, address: Address, bytes: Option<&[u8]>) -> Result<(), Error> {
        if !self.requested.remove(&address) {
            return Err(Error::Unrequested { address });
        }
        let bytes = bytes.ok_or_else(|| Error::NodeUnavailable {
            address,
            reason: "storage does not have it".into(),
        })?;
        address.verify(bytes)?;
        self.stats.bytes_fetched += bytes.len() as u64;
        match self.walk.receive(address, bytes)? {
            Received::Node => self.stats.nodes_fetched += 1,
            Received::LargeValue => self.stats.large_values_fetched += 1,
        }
        Ok(())
    }

    /// The I/O counted so far.
    pub fn stats(&self) -> RestoreStats {
        self.stats
    }
}

/// Where a wanted node goes once it is resolved.
enum Parent {
    Root(usize),
    Child(Arc<Node>, usize),
}

struct Want {
    address: Address,
    kind: IndexKind,
    parent: Parent,
}

/// The level-by-level walk shared by restore and materialize.
struct Walk {
    mode: Mode,
    /// What `db1` holds, looked up by position.
    held: Held,
    /// Nodes fetched and not placed yet, decoded as they arrive: a level of a million
    /// datoms is tens of MB of fetched bytes, which are dropped blob by blob instead of
    /// all at once after the level (that would leave the heap full of holes).
    pool: HashMap<Address, Arc<Node>>,
    /// Addresses to fetch along with the first batch (delta manifests).
    prefetch: Vec<Address>,
    /// Prefetched addresses no walk has asked for yet: hints, so storage may lack them
    /// (a manifest can name nodes no longer reachable, e.g. from another storage).
    hints: HashSet<Address>,
    pending: Vec<Want>,
    roots: [Option<Arc<Node>>; 3],
    reused: u64,
    /// Fetched nodes the result does not use.
    unused: u64,
    /// Fetched nodes that reference large values nobody holds, waiting for them.
    awaiting: HashMap<Address, Vec<u8>>,
    /// Large values to request with the next batch.
    large_wanted: Vec<Address>,
    /// Large values requested and not received yet.
    large_requested: HashSet<Address>,
    /// Large values fetched, held until the nodes that reference them are decoded (the
    /// nodes then hold them).
    large_held: Vec<LargeValue>,
}

/// What [`Walk::receive`] took in.
enum Received {
    Node,
    LargeValue,
}

impl Walk {
    fn new(held: Held, mode: Mode) -> Walk {
        Walk {
            mode,
            held,
            pool: HashMap::new(),
            prefetch: Vec::new(),
            hints: HashSet::new(),
            pending: Vec::new(),
            roots: [None, None, None],
            reused: 0,
            unused: 0,
            awaiting: HashMap::new(),
            large_wanted: Vec::new(),
            large_requested: HashSet::new(),
            large_held: Vec::new(),
        }
    }

    /// `stats` with the walk's own counts.
    fn add_counts(&self, stats: RestoreStats) -> RestoreStats {
        RestoreStats {
            nodes_reused: self.reused,
            nodes_unused: self.unused,
            db1_nodes_examined: self.held.examined,
            ..stats
        }
    }

    /// Decodes fetched (and verified) bytes into the pool. A manifest hint's index is not
    /// known before a walk asks for it, so the node's own index tag is read here and
    /// checked against the wanted index in [`Walk::resolve`].
    ///
    /// A node that references large values nobody holds waits for them (they are
    /// requested with the next batch); a large value is held until then.
    fn receive(&mut self, address: Address, bytes: &[u8]) -> Result<Received, Error> {
        if self.large_requested.remove(&address) {
            self.large_held.push(LargeValue::decode(address, bytes)?);
            return Ok(Received::LargeValue);
        }
        self.decode_node(address, bytes)?;
        Ok(Received::Node)
    }

    /// Decodes a fetched node into the pool, or sets it aside to wait for the large
    /// values it references.
    fn decode_node(&mut self, address: Address, bytes: &[u8]) -> Result<(), Error> {
        match Node::decode_verified_any(address, bytes) {
            Ok(node) => {
                self.pool.insert(address, Arc::new(node));
                Ok(())
            }
            Err(Error::LargeValuesMissing { addresses, .. }) => {
                for a in addresses {
                    if !self.large_requested.contains(&a) && !self.large_wanted.contains(&a) {
                        self.large_wanted.push(a);
                    }
                }
                self.awaiting.insert(address, bytes.to_vec());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Decodes the nodes that waited for large values, once every one requested has
    /// arrived. A node still missing one (a blob that is not the value its reference
    /// names) is an error, not another request.
    fn decode_awaiting(&mut self) -> Result<(), Error> {
        if self.awaiting.is_empty()
            || !self.large_requested.is_empty()
            || !self.large_wanted.is_empty()
        {
            return Ok(());
        }
        for (address, bytes) in std::mem::take(&mut self.awaiting) {
            match Node::decode_verified_any(address, &bytes) {
                Ok(node) => {
                    self.pool.insert(address, Arc::new(node));
                }
                Err(Error::LargeValuesMissing { addresses, .. }) => {
                    // Held values were dropped in between: only possible if a value's
                    // bytes decode to another address, so the references are wrong.
                    return Err(Error::Malformed {
                        address,
                        reason: format!(
                            "references large value {} that its blob does not provide",
                            addresses[0]
                        ),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Drops the fetched nodes no walk needed (hints), counting them as unused.
    fn discard_unused(&mut self) {
        self.unused += (self.pool.len() + self.awaiting.len()) as u64;
        self.pool.clear();
        self.awaiting.clear();
        self.large_held.clear();
    }

    fn seed_unloaded(&mut self, node: &Arc<Node>) {
        for (i, child) in node.children().iter().enumerate() {
            match child.link.get() {
                Some(c) => self.seed_unloaded(c),
                None => self.pending.push(Want {
                    address: child.link.address(),
                    kind: node.kind(),
                    parent: Parent::Child(node.clone(), i),
                }),
            }
        }
    }

    /// Resolves every pending node available locally (held or fetched), descending as
    /// far as it can; returns the addresses still needed (empty when finished).
    fn advance(&mut self) -> Result<Vec<Address>, Error> {
        self.decode_awaiting()?;
        loop {
            let mut progressed = false;
            let mut waiting = Vec::new();
            for want in std::mem::take(&mut self.pending) {
                if self.resolve(&want)? {
                    progressed = true;
                } else {
                    waiting.push(want);
                }
            }
            self.pending.extend(waiting);
            if !progressed {
                break;
            }
        }
        Ok(self.needed())
    }

    /// Resolves `want` if it can without fetching: from `db1`, from the fetched nodes, or
    /// by leaving it unloaded. False if it must be fetched.
    fn resolve(&mut self, want: &Want) -> Result<bool, Error> {
        let is_child = matches!(want.parent, Parent::Child(..));
        match self.find_held(want) {
            Found::Loaded(node) => {
                self.reused += 1;
                self.attach_held(want, node);
                return Ok(true);
            }
            Found::Unloaded if is_child && self.held.share_unloaded => {
                // Shared with db1 as db1 has it: unloaded, loading through the same
                // source when first needed.
                self.reused += 1;
                return Ok(true);
            }
            Found::Unloaded | Found::No => {}
        }
        if let Some(node) = self.pool.remove(&want.address) {
            // Verified against its address and decoded when it arrived (`accept`).
            node.check_kind(want.kind)?;
            let node = self.prefer_held_root(want, node);
            self.attach(want, node.clone())?;
            self.after_fetched(want.kind, &node);
            return Ok(true);
        }
        // db1 is lazily restored, so the new db is too: a child that is not new (not in
        // the manifests fetched with the roots) is in storage and loads on demand through
        // the same source; reading it now would read an old node.
        Ok(is_child && self.held.is_lazy())
    }

    /// A fetched root that `db1` holds below its own root (the tree shrank) is replaced
    /// by `db1`'s copy, which keeps `db1`'s loaded subtree; the fetched one is unused.
    fn prefer_held_root(&mut self, want: &Want, node: Arc<Node>) -> Arc<Node> {
        if !matches!(want.parent, Parent::Root(_)) {
            return node;
        }
        let Some(first) = node.first() else {
            return node;
        };
        let entry = Entry {
            kind: want.kind,
            level: node.level(),
            first,
            count: node.count(),
            address: EntryAddress::Known(want.address),
        };
        match self.held.find_entry(&entry) {
            Found::Loaded(held) => {
                self.reused += 1;
                self.unused += 1;
                held
            }
            Found::Unloaded | Found::No => node,
        }
    }

    /// Looks up a wanted node in what `db1` holds: a root against `db1`'s root, a child
    /// by its parent's entry.
    fn find_held(&mut self, want: &Want) -> Found {
        match &want.parent {
            Parent::Root(_) => self.held.find_root(want.kind, want.address),
            Parent::Child(parent, i) => self.held.find_child(parent, *i),
        }
    }

    /// Eager: queue the children of a fetched node. Lazy: share the children `db1`
    /// holds in memory, leave the rest to load on demand.
    fn after_fetched(&mut self, kind: IndexKind, node: &Arc<Node>) {
        for (i, c) in node.children().iter().enumerate() {
            let want = Want {
                address: c.link.address(),
                kind,
                parent: Parent::Child(node.clone(), i),
            };
            if self.mode == Mode::Eager {
                self.pending.push(want);
            } else if let Found::Loaded(h) = self.find_held(&want) {
                c.link.fill(h);
            }
        }
    }

    /// The pending addresses, each once, then the prefetch hints (first batch only).
    fn needed(&mut self) -> Vec<Address> {
        let mut need: Vec<Address> = Vec::new();
        let mut seen = HashSet::new();
        for w in &self.pending {
            // A node waiting for its large values is fetched already.
            if !self.awaiting.contains_key(&w.address) && seen.insert(w.address) {
                need.push(w.address);
            }
        }
        for a in std::mem::take(&mut self.large_wanted) {
            if seen.insert(a) {
                self.large_requested.insert(a);
                need.push(a);
            }
        }
        for a in std::mem::take(&mut self.prefetch) {
            if seen.insert(a) {
                self.hints.insert(a);
                need.push(a);
            }
        }
        need
    }

    /// True if `address` was fetched only as a manifest hint and no walk needs it.
    fn is_unasked_hint(&self, address: &Address) -> bool {
        self.hints.contains(address) && !self.pending.iter().any(|w| w.address == *address)
    }

    /// Installs a node `db1` holds where `want` goes. Nothing to check: it was found at
    /// the entry's position with the entry's first datom, count and address.
    fn attach_held(&mut self, want: &Want, node: Arc<Node>) {
        match &want.parent {
            Parent::Root(slot) => self.roots[*slot] = Some(node),
            Parent::Child(parent, i) => parent.children()[*i].link.fill(node),
        }
    }

    /// Installs a fetched node where `want` goes, checked against its parent's entry.
    fn attach(&mut self, want: &Want, node: Arc<Node>) -> Result<(), Error> {
        match &want.parent {
            Parent::Root(slot) => self.roots[*slot] = Some(node),
            Parent::Child(parent, i) => {
                let child: &Child = &parent.children()[*i];
                node.check_matches(child, parent.level())?;
                child.link.fill(node);
            }
        }
        Ok(())
    }
}
