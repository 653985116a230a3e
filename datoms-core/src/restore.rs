//! Restore as a sans-IO state machine: it says which addresses it needs, the caller
//! fetches them (in one batched request per step) and hands the bytes back.
//!
//! # What it fetches
//! 1. The target commit (nothing at all if `db1` already is that commit).
//! 2. If `db1`'s commit is a recent ancestor of the target (listed in its lineage), the
//!    delta manifests of the commits in between name every node that is new since `db1`.
//!    The target commit repeats them (within [`crate::commit::MANIFEST_BUDGET`]); those it
//!    leaves out come from the commits themselves, fetched in one batch.
//! 3. The roots, plus every manifest node `db1` does not hold, in one batch. With a
//!    complete manifest that is the last request.
//! 4. Otherwise (no `db1`, a `db1` too far behind or on another branch — lineage is
//!    checked, never assumed), the trees are walked level by level: one batch per level
//!    with every child whose address `db1` does not hold. Held subtrees are shared with
//!    `db1` in memory, never fetched.
//!
//! Every fetched node is verified against its address and its parent's entry.
//!
//! A lazily restored `db1` gives a lazily restored result: the new roots and the nodes
//! the manifests name are fetched, unchanged subtrees are shared unloaded, and nothing
//! old is read.
//!
//! ```
//! use std::collections::HashMap;
//! use datoms_core::addressing::unpersisted_nodes;
//! use datoms_core::restore::{Restore, Step};
//! use datoms_core::{Address, Commit, Db, Schema};
//!
//! # fn main() -> Result<(), datoms_core::Error> {
//! // A "storage": every node and the commit of a db, by address.
//! let db = Db::new(Schema::new()).with_edn(r#"[{:db/id -1 :person/name "Ann"}]"#)?.db_after;
//! let nodes = unpersisted_nodes(&db);
//! let mut storage: HashMap<Address, Vec<u8>> =
//!     nodes.nodes.iter().map(|n| (n.address, n.bytes.clone())).collect();
//! let commit = Commit::for_db(&db, nodes.addresses()).encode();
//! let commit_address = Address::of(&commit);
//! storage.insert(commit_address, commit);
//!
//! // The driver: fetch what the machine asks for, one batch per step.
//! let mut restore = Restore::new(commit_address, None);
//! let restored = loop {
//!     match restore.poll()? {
//!         Step::Need(addresses) => {
//!             for address in addresses {
//!                 restore.accept(address, storage.get(&address).cloned())?;
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

/// I/O done by a restore, as counted by the state machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Batched requests issued (each [`Step::Need`]).
    pub round_trips: u64,
    /// Tree nodes fetched.
    pub nodes_fetched: u64,
    /// Commit records fetched.
    pub commits_fetched: u64,
    /// Bytes fetched, nodes and commits.
    pub bytes_fetched: u64,
    /// Subtrees taken from `db1` instead of fetched (each counted once, at its root).
    pub nodes_reused: u64,
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
    fn accept(&mut self, address: Address, bytes: Option<Vec<u8>>) -> Result<(), Error>;

    /// The I/O counted so far.
    fn stats(&self) -> RestoreStats;
}

impl Machine for Restore {
    fn poll(&mut self) -> Result<Step, Error> {
        Restore::poll(self)
    }
    fn accept(&mut self, address: Address, bytes: Option<Vec<u8>>) -> Result<(), Error> {
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
    fn accept(&mut self, address: Address, bytes: Option<Vec<u8>>) -> Result<(), Error> {
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
}

impl Restore {
    /// A full (eager) restore of `commit`, reusing what `db1` holds if given.
    pub fn new(commit: Address, db1: Option<&Db>) -> Restore {
        Restore::with_mode(commit, db1, Mode::Eager)
    }

    /// A restore of `commit` in the given mode.
    pub fn with_mode(commit: Address, db1: Option<&Db>, mode: Mode) -> Restore {
        let held = db1.map(held_nodes).unwrap_or_default();
        // Subtrees db1 knows only by address can be shared only if the new db can load
        // them the way db1 does: through db1's source.
        let lazy_held = match db1 {
            Some(d) if d.source().is_some() => lazily_held(d),
            _ => HashSet::new(),
        };
        Restore {
            target: commit,
            mode,
            db1: db1.cloned(),
            phase: Phase::Commit,
            commit: None,
            requested: HashSet::new(),
            fetched_commits: HashMap::new(),
            walk: Walk::new(held, lazy_held, mode),
            stats: RestoreStats::default(),
        }
    }

    /// Hands over the target commit, already fetched and decoded by the caller (e.g. to
    /// choose between log replay and restore), saving its request.
    pub fn provide_commit(&mut self, commit: Commit) {
        self.fetched_commits.insert(self.target, commit);
    }

    /// The I/O counted so far.
    pub fn stats(&self) -> RestoreStats {
        RestoreStats {
            nodes_reused: self.walk.reused,
            ..self.stats
        }
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
                    self.start_walk(*commit, prefetch);
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
    pub fn accept(&mut self, address: Address, bytes: Option<Vec<u8>>) -> Result<(), Error> {
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
        address.verify(&bytes)?;
        self.stats.bytes_fetched += bytes.len() as u64;
        match self.phase {
            Phase::Walk => {
                self.stats.nodes_fetched += 1;
                self.walk.pool.insert(address, bytes);
            }
            Phase::Commit | Phase::Ancestors { .. } => {
                self.stats.commits_fetched += 1;
                let commit = Commit::decode(address, &bytes)?;
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
                    self.start_walk(commit, prefetch);
                    return Phase::Walk;
                }
                Phase::Ancestors {
                    commit: Box::new(commit),
                    waiting,
                    prefetch,
                }
            }
            _ => {
                self.start_walk(commit, Vec::new());
                Phase::Walk
            }
        }
    }

    /// Starts walking the target's trees. In eager mode the target's manifest (and
    /// `prefetch`, the manifests of the commits since db1) are fetched with the roots:
    /// every node they name is new since db1. A node new in an intermediate commit may
    /// have been replaced since; fetching it anyway is the price of saving one round trip
    /// per tree level.
    fn start_walk(&mut self, commit: Commit, mut prefetch: Vec<Address>) {
        if self.mode == Mode::Eager {
            prefetch.extend(commit.manifest.iter().copied());
            self.walk.prefetch = prefetch;
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
        db.eavt = eavt;
        db.aevt = aevt;
        db.avet = avet;
        db.lineage = Arc::new(commit.lineage(self.target));
        db.manifests = Arc::new(commit.lineage_manifests());
        db.source = self.db1.as_ref().and_then(|d| d.source.clone());
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
        let mut walk = Walk::new(HashMap::new(), HashSet::new(), Mode::Eager);
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
    pub fn accept(&mut self, address: Address, bytes: Option<Vec<u8>>) -> Result<(), Error> {
        if !self.requested.remove(&address) {
            return Err(Error::Unrequested { address });
        }
        let bytes = bytes.ok_or_else(|| Error::NodeUnavailable {
            address,
            reason: "storage does not have it".into(),
        })?;
        address.verify(&bytes)?;
        self.stats.nodes_fetched += 1;
        self.stats.bytes_fetched += bytes.len() as u64;
        self.walk.pool.insert(address, bytes);
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
    held: HashMap<Address, Arc<Node>>,
    /// Addresses db1 knows without having loaded them (a lazily restored db1).
    lazy_held: HashSet<Address>,
    pool: HashMap<Address, Vec<u8>>,
    /// Addresses to fetch along with the first batch (delta manifests).
    prefetch: Vec<Address>,
    /// Prefetched addresses no walk has asked for yet: hints, so storage may lack them
    /// (a manifest can name nodes no longer reachable, e.g. from another storage).
    hints: HashSet<Address>,
    pending: Vec<Want>,
    roots: [Option<Arc<Node>>; 3],
    reused: u64,
}

impl Walk {
    fn new(held: HashMap<Address, Arc<Node>>, lazy_held: HashSet<Address>, mode: Mode) -> Walk {
        Walk {
            mode,
            held,
            lazy_held,
            pool: HashMap::new(),
            prefetch: Vec::new(),
            hints: HashSet::new(),
            pending: Vec::new(),
            roots: [None, None, None],
            reused: 0,
        }
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
        loop {
            let mut progressed = false;
            let mut waiting = Vec::new();
            for want in std::mem::take(&mut self.pending) {
                if let Some(node) = self.held.get(&want.address).cloned() {
                    self.reused += 1;
                    // It is part of a stored commit now, so it is in storage.
                    node.mark_persisted();
                    self.attach(&want, node)?;
                    progressed = true;
                } else if matches!(want.parent, Parent::Child(..))
                    && self.lazy_held.contains(&want.address)
                {
                    // Shared with db1 as db1 has it: unloaded, loading through the same
                    // source when first needed.
                    self.reused += 1;
                    progressed = true;
                } else if let Some(bytes) = self.pool.remove(&want.address) {
                    let node = Arc::new(Node::decode(want.address, &bytes, want.kind)?);
                    self.attach(&want, node.clone())?;
                    let descend = self.mode == Mode::Eager;
                    if descend {
                        for (i, c) in node.children().iter().enumerate() {
                            self.pending.push(Want {
                                address: c.link.address(),
                                kind: want.kind,
                                parent: Parent::Child(node.clone(), i),
                            });
                        }
                    } else {
                        // Lazy: share what db1 holds, leave the rest to load on demand.
                        for c in node.children() {
                            if let Some(h) = self.held.get(&c.link.address()) {
                                c.link.fill(h.clone());
                            }
                        }
                    }
                    progressed = true;
                } else if matches!(want.parent, Parent::Child(..)) && !self.lazy_held.is_empty() {
                    // db1 is lazily restored, so the new db is too: a child that is not
                    // new (not in the manifests fetched with the roots) is in storage and
                    // loads on demand through the same source; reading it now would read
                    // an old node.
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
        let mut need: Vec<Address> = Vec::new();
        let mut seen = HashSet::new();
        for w in &self.pending {
            if seen.insert(w.address) {
                need.push(w.address);
            }
        }
        for a in std::mem::take(&mut self.prefetch) {
            if !self.held.contains_key(&a) && !self.lazy_held.contains(&a) && seen.insert(a) {
                self.hints.insert(a);
                need.push(a);
            }
        }
        Ok(need)
    }

    /// True if `address` was fetched only as a manifest hint and no walk needs it.
    fn is_unasked_hint(&self, address: &Address) -> bool {
        self.hints.contains(address) && !self.pending.iter().any(|w| w.address == *address)
    }

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

/// The addresses of the children `db` has not loaded.
fn lazily_held(db: &Db) -> HashSet<Address> {
    db.loaded_nodes()
        .iter()
        .flat_map(|n| n.children())
        .filter(|c| c.loaded().is_none())
        .map(Child::address)
        .collect()
}

/// Every loaded node of `db`, by address (addresses of new nodes are computed).
fn held_nodes(db: &Db) -> HashMap<Address, Arc<Node>> {
    db.loaded_nodes()
        .into_iter()
        .map(|n| (n.address(), n))
        .collect()
}
