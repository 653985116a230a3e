//! The database value: schema, id counters and the three index trees, plus where it
//! came from (its base commit and the tx log since).
//!
//! A [`Db`] is immutable; transacting returns a new one that shares every untouched node
//! with the old one. Cloning is cheap.

use std::sync::Arc;

use crate::address::Address;
use crate::buffer::BufferedIndex;
use crate::commit::{Commit, TxLogEntry};
use crate::datom::{Component, Datom, IndexKind, Tx, TX0};
use crate::error::Error;
use crate::schema::{AttributeSchema, Schema};
use crate::tree::{Edit, Node, NodeSource, Tree, TreeConfig};
use crate::value::{Eid, Keyword, Value};

/// An immutable database value.
#[derive(Clone)]
pub struct Db {
    pub(crate) schema: Arc<Schema>,
    pub(crate) config: TreeConfig,
    pub(crate) max_eid: Eid,
    pub(crate) max_tx: Tx,
    pub(crate) eavt: BufferedIndex,
    pub(crate) aevt: BufferedIndex,
    pub(crate) avet: BufferedIndex,
    /// How many edits per index may wait unmerged (see [`Db::with_edit_buffer`]).
    pub(crate) edit_buffer: usize,
    pub(crate) source: Option<Arc<dyn NodeSource>>,
    /// The commit this db was restored from or last stored as, then its ancestors, most
    /// recent first (at most [`crate::commit::ANCESTORS`] + 2 entries).
    pub(crate) lineage: Arc<Vec<Address>>,
    /// The delta manifests of the commits in `lineage`, where known.
    pub(crate) manifests: Arc<Vec<Option<Vec<Address>>>>,
    /// Transactions applied since the base commit, oldest first.
    pub(crate) log: PendingLog,
    /// The base commit's trees and their node count, kept so a store onto that commit
    /// knows exactly which nodes are new: every node the base's trees hold is in each
    /// storage whose head is the base commit. `None` when there is no base commit.
    pub(crate) base: Option<Arc<Base>>,
    /// The filter of a filtered db ([`Db::filter`]); `None` for a plain db.
    pub(crate) filter: Option<Arc<crate::filter::Filter>>,
    /// The latest time (ms since the Unix epoch) of the base commit and the pending merge
    /// parents: the next commit's time is never earlier ([`Commit::for_db_at`]).
    pub(crate) parents_time: u64,
    /// The heads merged into this db since its base commit ([`Db::merging`]): the next
    /// commit's merge parents.
    pub(crate) merge_parents: Arc<Vec<Address>>,
    /// The clock reading a commit of this db value records ([`Db::commit_clock`]):
    /// taken once, shared by its clones, new for every changed db.
    pub(crate) stamp: Arc<std::sync::OnceLock<u64>>,
}

/// The trees of a db's base commit (EAVT, AEVT, AVET), how many nodes they have, and
/// when they were established.
#[derive(Clone)]
pub(crate) struct Base {
    pub(crate) trees: [Tree; 3],
    pub(crate) nodes: u64,
    /// [`crate::tree::node::nodes_made`] when the base was established (restored or
    /// stored): a node of a db's trees made before it belongs to the base's trees, since
    /// the edits made since the base make only nodes after it.
    pub(crate) made_before: u64,
}

impl Base {
    /// The base of a db whose trees are `trees`, just established as a commit of `nodes`
    /// nodes.
    pub(crate) fn new(trees: [Tree; 3], nodes: u64) -> Base {
        Base {
            trees,
            nodes,
            made_before: crate::tree::node::nodes_made(),
        }
    }
}

pub use crate::buffer::DEFAULT_EDIT_BUFFER;

/// An iterator of datoms from an index; `Err` only when a lazily restored db cannot load
/// a node. On a filtered db ([`Db::filter`]) it yields only the datoms the filter accepts.
pub struct Datoms {
    cursor: crate::buffer::Datoms,
    filter: Option<Arc<crate::filter::Filter>>,
}

impl Datoms {
    fn new(cursor: crate::buffer::Datoms, db: &Db) -> Datoms {
        Datoms {
            cursor,
            filter: db.filter.clone(),
        }
    }
}

impl Iterator for Datoms {
    type Item = Result<Datom, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let next = self.cursor.next()?;
            match (&next, &self.filter) {
                (Ok(d), Some(f)) if !f.accepts(d) => continue,
                _ => return Some(next),
            }
        }
    }
}

impl std::fmt::Debug for Datoms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datoms")
            .field("filtered", &self.filter.is_some())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// An empty database with this schema and the default tree configuration.
    pub fn new(schema: Schema) -> Db {
        Db::with_config(schema, TreeConfig::default())
    }

    /// An empty database with this schema and tree configuration (call
    /// [`TreeConfig::validate`] first for user-supplied values; targets below 4 are raised
    /// to 4).
    pub fn with_config(schema: Schema, config: TreeConfig) -> Db {
        Db {
            schema: Arc::new(schema),
            config,
            max_eid: 0,
            max_tx: TX0,
            eavt: Tree::empty(IndexKind::Eavt, config).into(),
            aevt: Tree::empty(IndexKind::Aevt, config).into(),
            avet: Tree::empty(IndexKind::Avet, config).into(),
            edit_buffer: DEFAULT_EDIT_BUFFER,
            source: None,
            lineage: Arc::new(Vec::new()),
            manifests: Arc::new(Vec::new()),
            log: PendingLog::default(),
            base: None,
            filter: None,
            parents_time: 0,
            merge_parents: Arc::new(Vec::new()),
            stamp: Arc::default(),
        }
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The tree configuration shared by the three indexes.
    pub fn config(&self) -> TreeConfig {
        self.config
    }

    /// The largest entity id allocated so far (0 when none).
    pub fn max_eid(&self) -> Eid {
        self.max_eid
    }

    /// The id of the last transaction (`TX0` when none).
    pub fn max_tx(&self) -> Tx {
        self.max_tx
    }

    /// One index tree: the one a bulk build of the index's datoms gives. Edits that
    /// transactions buffered are merged into it on the first call (see
    /// [`Db::with_edit_buffer`]); the db caches the result.
    pub fn tree(&self, kind: IndexKind) -> &Tree {
        self.index(kind).tree()
    }

    fn index(&self, kind: IndexKind) -> &BufferedIndex {
        match kind {
            IndexKind::Eavt => &self.eavt,
            IndexKind::Aevt => &self.aevt,
            IndexKind::Avet => &self.avet,
        }
    }

    /// The same db, letting each index hold up to `limit` edits unmerged (and more, up
    /// to half its datoms, as it grows) before merging them into its tree. Transactions
    /// then record their datoms in a persistent ordered set per index and reads merge it
    /// in; the trees (root addresses, store, diff) are computed when first observed and
    /// are byte-identical to those merging every transaction at once gives. `0` merges
    /// every transaction at once. The default is [`DEFAULT_EDIT_BUFFER`]. A lazily
    /// restored db (one with a [`Db::source`]) always merges at once, since merging may
    /// need to load nodes.
    pub fn with_edit_buffer(&self, limit: usize) -> Db {
        Db {
            edit_buffer: limit,
            ..self.clone()
        }
    }

    /// How many edits per index may wait unmerged (see [`Db::with_edit_buffer`]).
    pub fn edit_buffer(&self) -> usize {
        self.edit_buffer
    }

    /// Edits waiting unmerged in the three indexes together (0 once the trees have been
    /// observed, or when buffering is off).
    pub fn pending_edits(&self) -> usize {
        IndexKind::ALL
            .iter()
            .map(|k| self.index(*k).pending())
            .sum()
    }

    /// The root addresses of EAVT, AEVT and AVET (encoding nodes that have none yet).
    pub fn root_addresses(&self) -> [Address; 3] {
        IndexKind::ALL.map(|k| self.tree(k).root_address())
    }

    /// The number of current datoms (of the unfiltered db, on a filtered db: count
    /// `datoms(IndexKind::Eavt, &[])` for what the filter accepts).
    pub fn len(&self) -> u64 {
        self.eavt.len()
    }

    /// True if the db holds no datom.
    pub fn is_empty(&self) -> bool {
        self.eavt.len() == 0
    }

    /// The commit this db was restored from or last stored as, if any.
    pub fn base_commit(&self) -> Option<Address> {
        self.lineage.first().copied()
    }

    /// The base commit followed by its known ancestors, most recent first.
    pub fn lineage(&self) -> &[Address] {
        &self.lineage
    }

    /// The delta manifests of the commits in [`Db::lineage`], where known.
    pub fn lineage_manifests(&self) -> &[Option<Vec<Address>>] {
        &self.manifests
    }

    /// The transactions applied since the base commit, oldest first.
    pub fn pending_log(&self) -> Vec<Arc<TxLogEntry>> {
        self.log.entries()
    }

    /// The number of transactions applied since the base commit.
    pub fn pending_txs(&self) -> usize {
        self.log.len
    }

    /// Every node of the three trees that is in memory, parents before children, each
    /// once. Unloaded subtrees of a lazily restored db are not visited (nothing loads).
    pub fn loaded_nodes(&self) -> Vec<Arc<Node>> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut stack: Vec<Arc<Node>> = IndexKind::ALL
            .iter()
            .map(|k| self.tree(*k).root().clone())
            .collect();
        while let Some(node) = stack.pop() {
            if seen.insert(Arc::as_ptr(&node)) {
                stack.extend(node.children().iter().filter_map(|c| c.loaded().cloned()));
                out.push(node);
            }
        }
        out
    }

    /// True if some node of the three trees is known only by address (a lazily restored
    /// db that has not loaded everything). Stops at the first such node.
    pub fn has_unloaded_nodes(&self) -> bool {
        let roots = IndexKind::ALL.map(|k| self.tree(k).root().clone());
        crate::held::has_unloaded_child(roots.to_vec(), &mut 0)
    }

    /// Where this db loads nodes it has not loaded yet (lazily restored dbs only).
    pub fn source(&self) -> Option<&Arc<dyn NodeSource>> {
        self.source.as_ref()
    }

    /// The same db, loading nodes it has not loaded from `source` (what a storage driver
    /// attaches to a lazily restored db).
    pub fn with_source(&self, source: Arc<dyn NodeSource>) -> Db {
        Db {
            source: Some(source),
            ..self.clone()
        }
    }

    /// The db after `commit` (stored at `address`) recorded it: its base commit becomes
    /// `address`, its trees become the base's trees, its id counters the commit's, and
    /// its pending log is empty. The caller vouches that `commit` holds exactly this
    /// db's trees.
    pub fn committed(&self, address: Address, commit: &Commit) -> Db {
        let [eavt, aevt, avet] = self.trees();
        Db {
            eavt: eavt.into(),
            aevt: aevt.into(),
            avet: avet.into(),
            // The commit's counters: the same as this db's after a store; after log
            // replay they may be ahead of what the log's datoms show (a bulk-loaded
            // db's counters come from its source, not from datoms).
            max_eid: commit.max_eid,
            max_tx: commit.max_tx,
            lineage: Arc::new(commit.lineage(address)),
            manifests: Arc::new(commit.lineage_manifests()),
            log: PendingLog::default(),
            base: Some(Arc::new(Base::new(self.trees(), commit.nodes))),
            parents_time: commit.time,
            merge_parents: Arc::new(Vec::new()),
            stamp: Arc::default(),
            ..self.clone()
        }
    }

    /// This db with `commit` (made at `time`, ms since the Unix epoch) recorded as merged
    /// into it: the next commit stored from it lists `commit` as a merge parent, and its
    /// time is not earlier than `time`. The caller ([`crate::merge`] and the storage
    /// driver's `merge`) has applied what the merge brings.
    pub fn merging(&self, commit: Address, time: u64) -> Db {
        let mut parents = (*self.merge_parents).clone();
        if !parents.contains(&commit) && self.base_commit() != Some(commit) {
            parents.push(commit);
        }
        Db {
            merge_parents: Arc::new(parents),
            parents_time: self.parents_time.max(time),
            stamp: Arc::default(),
            ..self.clone()
        }
    }

    /// The wall-clock time (ms since the Unix epoch) a commit of this db value records,
    /// before [`Commit::for_db_at`] takes the later of it and the parents' times: the
    /// clock as first asked for this value, the same for all its clones. So one db value
    /// stored to two storages makes one commit (same bytes, same address) in both, while
    /// every transaction makes a db value that reads the clock afresh.
    pub fn commit_clock(&self) -> u64 {
        *self.stamp.get_or_init(crate::commit::now_ms)
    }

    /// The heads merged into this db since its base commit ([`Db::merging`]).
    pub fn merge_parents(&self) -> &[Address] {
        &self.merge_parents
    }

    /// The latest time of the base commit and the merge parents (ms since the Unix
    /// epoch; 0 without a base commit): the next commit's time is never earlier.
    pub fn parents_time(&self) -> u64 {
        self.parents_time
    }

    /// The three index trees (EAVT, AEVT, AVET).
    pub(crate) fn trees(&self) -> [Tree; 3] {
        IndexKind::ALL.map(|k| self.tree(k).clone())
    }

    /// The base commit's trees and node count, if this db has a base commit.
    pub(crate) fn base(&self) -> Option<&Base> {
        self.base.as_deref()
    }

    /// Datoms of `index` matching the leading `components`, as Datascript's `datoms`:
    /// `db.datoms(IndexKind::Eavt, &[Component::E(1)])` is every datom of entity 1.
    ///
    /// # Errors
    /// [`Error::InvalidIndexComponents`] if the components are not in index order,
    /// [`Error::BadSchema`] for an AVET read of an attribute that is neither indexed,
    /// unique nor a ref (as Datascript), or a load error of a lazily restored db.
    pub fn datoms(&self, index: IndexKind, components: &[Component]) -> Result<Datoms, Error> {
        index.check_prefix(components)?;
        self.check_avet_read(index, components)?;
        let cursor =
            self.index(index)
                .seek(self.source.clone(), components, Some(components.to_vec()))?;
        Ok(Datoms::new(cursor, self))
    }

    /// Datoms of `index` from the first one at or after `components` to the end of the
    /// index, as Datascript's `seek-datoms`.
    ///
    /// # Errors
    /// As [`Db::datoms`].
    pub fn seek_datoms(&self, index: IndexKind, components: &[Component]) -> Result<Datoms, Error> {
        index.check_prefix(components)?;
        self.check_avet_read(index, components)?;
        let cursor = self
            .index(index)
            .seek(self.source.clone(), components, None)?;
        Ok(Datoms::new(cursor, self))
    }

    /// Datoms of `index` from the last one at or before `components` back to the start
    /// of the index, as Datascript's `rseek-datoms`.
    ///
    /// # Errors
    /// As [`Db::datoms`].
    pub fn rseek_datoms(
        &self,
        index: IndexKind,
        components: &[Component],
    ) -> Result<Datoms, Error> {
        index.check_prefix(components)?;
        self.check_avet_read(index, components)?;
        let cursor = self
            .index(index)
            .seek_back(self.source.clone(), components)?;
        Ok(Datoms::new(cursor, self))
    }

    /// As Datascript: an AVET read naming an attribute must name one kept in AVET
    /// (indexed, unique or ref); any other holds no AVET datoms, and reading it is a
    /// mistake worth naming.
    fn check_avet_read(&self, index: IndexKind, components: &[Component]) -> Result<(), Error> {
        match (index, components.first()) {
            (IndexKind::Avet, Some(Component::A(attr))) if !self.schema.in_avet(attr) => {
                Err(avet_error(attr))
            }
            _ => Ok(()),
        }
    }

    /// AVET datoms of `attr` with `start <= v <= end` (an open end when `None`), as
    /// Datascript's `index-range`. The attribute must be in AVET (indexed, unique or ref).
    ///
    /// # Errors
    /// [`Error::BadSchema`] if `attr` is not kept in AVET, or a load error.
    pub fn index_range(
        &self,
        attr: &Keyword,
        start: Option<&Value>,
        end: Option<&Value>,
    ) -> Result<impl Iterator<Item = Result<Datom, Error>>, Error> {
        if !self.schema.in_avet(attr) {
            return Err(avet_error(attr));
        }
        let mut from = vec![Component::A(attr.clone())];
        if let Some(s) = start {
            from.push(Component::V(s.clone()));
        }
        let cursor = Datoms::new(
            self.avet.seek(
                self.source.clone(),
                &from,
                Some(vec![Component::A(attr.clone())]),
            )?,
            self,
        );
        let end = end.cloned();
        Ok(cursor.take_while(move |d| match (d, &end) {
            (Ok(d), Some(end)) => d.v <= *end,
            _ => true,
        }))
    }

    /// The current values of `attr` on entity `e`, as datoms (EAVT order).
    ///
    /// # Errors
    /// A load error of a lazily restored db.
    pub fn entity_attr(&self, e: Eid, attr: &Keyword) -> Result<Vec<Datom>, Error> {
        let p = [Component::E(e), Component::A(attr.clone())];
        Datoms::new(
            self.eavt.seek(self.source.clone(), &p, Some(p.to_vec()))?,
            self,
        )
        .collect()
    }

    /// Every current datom of entity `e` (EAVT order).
    ///
    /// # Errors
    /// A load error of a lazily restored db.
    pub fn entity_datoms(&self, e: Eid) -> Result<Vec<Datom>, Error> {
        let p = [Component::E(e)];
        Datoms::new(
            self.eavt.seek(self.source.clone(), &p, Some(p.to_vec()))?,
            self,
        )
        .collect()
    }

    /// The entity the lookup ref `[attr value]` names, `None` when no entity holds
    /// `value`. The one home of lookup-ref resolution: pull, entity ids in queries and
    /// their inputs, index access and transactions all resolve lookup refs by the rules
    /// here. `attr` must be `:db/unique` (identity or value; `:db/ident` is implicitly),
    /// so that at most one entity can match; a positive long for a ref attribute is the
    /// entity id it names.
    ///
    /// ```
    /// use datoms_core::{AttributeSchema, Db, Error, Schema, Value, ValueType};
    /// let schema = Schema::new()
    ///     .with(":person/name", AttributeSchema::default().value_type(ValueType::String).identity())?
    ///     .with(":person/age", AttributeSchema::default().value_type(ValueType::Long).indexed())?;
    /// let db = Db::new(schema)
    ///     .with_edn(r#"[{:person/name "Ann" :person/age 42} {:person/name "Bob" :person/age 42}]"#)?
    ///     .db_after;
    /// assert_eq!(db.lookup_ref(&":person/name".into(), &Value::from("Bob"))?, Some(2));
    /// assert_eq!(db.lookup_ref(&":person/name".into(), &Value::from("Cy"))?, None);
    /// assert!(matches!(
    ///     db.lookup_ref(&":person/age".into(), &Value::Long(42)),
    ///     Err(Error::LookupRefNotUnique { .. })
    /// ));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LookupRefNotUnique`] naming `attr` when it is not unique (two entities
    /// could hold the value: picking one would be arbitrary); [`Error::UnknownAttribute`]
    /// for an undeclared attribute under a strict schema; a load error of a lazily
    /// restored db.
    pub fn lookup_ref(&self, attr: &Keyword, value: &Value) -> Result<Option<Eid>, Error> {
        let spec = lookup_ref_attr(&self.schema, attr)?;
        let value = lookup_ref_value(&spec, value);
        // A composite tuple's ref elements may be lookup refs themselves.
        let value =
            crate::tuples::resolve_refs(&self.schema, &spec, &value, |a, v| self.lookup_ref(a, v))?;
        let p = [Component::A(attr.clone()), Component::V(value)];
        let mut c = Datoms::new(
            self.avet.seek(self.source.clone(), &p, Some(p.to_vec()))?,
            self,
        );
        c.next().transpose().map(|d| d.map(|d| d.e))
    }

    /// Datascript's `entid`: the entity `form` names — an entity id, a lookup ref
    /// `[attr value]` or an ident keyword (the entity whose `:db/ident` it is). `None`
    /// when it names no entity (an unknown ident, a lookup ref that finds nothing, a
    /// `[attr nil]` lookup ref, a value of another kind).
    ///
    /// ```
    /// use datoms_core::{Db, QueryValue, Schema};
    /// let db = Db::new(Schema::new())
    ///     .with_edn("[{:db/id 7 :db/ident :color/red}]")?
    ///     .db_after;
    /// assert_eq!(db.entid(&QueryValue::keyword("color/red"))?, Some(7));
    /// assert_eq!(db.entid(&QueryValue::keyword("color/blue"))?, None);
    /// assert_eq!(db.entid(&QueryValue::entity(7))?, Some(7));
    /// // Datascript: "Lookup ref should contain 2 elements: [:db/ident]".
    /// let short = QueryValue::Vector(vec![QueryValue::keyword("db/ident")]);
    /// assert!(db.entid(&short).is_err());
    /// # Ok::<(), datoms_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a vector that is not two elements long;
    /// [`Error::LookupRefNotUnique`] for a lookup ref on a non-unique attribute, or a
    /// load error of a lazily restored db.
    pub fn entid(&self, form: &crate::query::QueryValue) -> Result<Option<Eid>, Error> {
        // As Datascript's `entid`: a vector is a lookup ref, which has two elements.
        if let crate::query::QueryValue::Vector(items) = form {
            if items.len() != 2 {
                return Err(Error::InvalidValue {
                    reason: format!("lookup ref should contain 2 elements: {form}"),
                });
            }
        }
        crate::query::eval::resolve_entity(self, form)
    }

    /// The entity holding `value` for the unique attribute `attr`: the lookup ref
    /// `[attr value]`, resolved by [`Db::lookup_ref`] (this is the same call, under the
    /// name earlier code knows).
    ///
    /// # Errors
    /// As [`Db::lookup_ref`]: a non-unique `attr` is [`Error::LookupRefNotUnique`].
    pub fn entity_by_value(&self, attr: &Keyword, value: &Value) -> Result<Option<Eid>, Error> {
        self.lookup_ref(attr, value)
    }

    /// Datoms whose value references entity `e` through a ref attribute (AVET lookup per
    /// declared ref attribute).
    ///
    /// # Errors
    /// A load error of a lazily restored db.
    pub fn references_to(&self, e: Eid) -> Result<Vec<Datom>, Error> {
        let mut out = Vec::new();
        for (attr, _) in self.schema.ref_attrs() {
            let p = [Component::A(attr.clone()), Component::V(Value::Ref(e))];
            let found = self.avet.seek(self.source.clone(), &p, Some(p.to_vec()))?;
            for d in Datoms::new(found, self) {
                out.push(d?);
            }
        }
        Ok(out)
    }

    /// Builds a db from a whole set of current datoms and its id counters at bulk speed:
    /// the datoms are sorted once, checked against `schema` and the counters in one pass
    /// ([`crate::check`]), and each index is built bottom-up ([`Tree::build`]) — no
    /// transaction per datom. The trees are those any other way of building the same
    /// datoms gives. What `datoms import` uses, so that an imported db behaves exactly like
    /// the one exported: its next entity is `max_eid + 1` and its next transaction
    /// `max_tx + 1`, even where the highest ids no longer hold a datom.
    ///
    /// The pending log holds the datoms grouped by tx, ascending (plus an empty entry
    /// at `max_tx` when no datom has that tx), so the commit that stores this db replays
    /// to the same trees and `max_tx`. Replay derives `max_eid` from the entities it
    /// asserts, so it reaches `max_eid` only when that entity holds a datom.
    ///
    /// # Errors
    /// [`Error::Invariants`] listing every violation found (refs to entities that hold
    /// no datom are accepted, as a transaction accepts them: see
    /// [`crate::check::Violation::is_warning`]); [`Error::InvalidValue`] for a retraction.
    /// Nothing is built then.
    pub fn bulk_load(
        schema: Schema,
        config: TreeConfig,
        mut datoms: Vec<Datom>,
        max_eid: Eid,
        max_tx: Tx,
    ) -> Result<Db, Error> {
        share_large_values(&mut datoms);
        datoms.sort_by(|a, b| IndexKind::Eavt.cmp(a, b));
        let violations: Vec<_> =
            crate::check::check(&schema, datoms.iter().cloned().map(Ok), max_eid, max_tx)?
                .into_iter()
                .filter(|v| !v.is_warning())
                .collect();
        if !violations.is_empty() {
            return Err(Error::Invariants { violations });
        }
        let mut by_tx: std::collections::BTreeMap<Tx, Vec<Datom>> = Default::default();
        for d in &datoms {
            by_tx.entry(d.tx).or_default().push(d.clone());
        }
        if max_tx > TX0 && !by_tx.contains_key(&max_tx) {
            by_tx.insert(max_tx, Vec::new());
        }
        let mut log = PendingLog::default();
        for (tx, datoms) in by_tx {
            log = log.push(Arc::new(TxLogEntry {
                tx,
                datoms,
                id: None,
            }));
        }
        let avet: Vec<Datom> = datoms
            .iter()
            .filter(|d| schema.in_avet(&d.a))
            .cloned()
            .collect();
        let mut db = Db::with_config(schema, config);
        db.aevt = Tree::build(IndexKind::Aevt, config, datoms.clone()).into();
        db.avet = Tree::build(IndexKind::Avet, config, avet).into();
        db.eavt = Tree::build(IndexKind::Eavt, config, datoms).into();
        db.max_eid = max_eid;
        db.max_tx = max_tx;
        db.log = log;
        Ok(db)
    }

    /// Applies one transaction's datoms (assertions and retractions) to the indexes and
    /// appends it to the pending log. This is the only write path: transacting and log
    /// replay both end here, which is why replay reproduces transact exactly.
    ///
    /// The caller (the transaction layer, or log replay) guarantees the datoms are
    /// consistent with the db: no redundant assertions, retractions of present datoms.
    /// `max_eid` becomes the largest entity id asserted; `max_tx` becomes `entry.tx`.
    ///
    /// # Errors
    /// A load error of a lazily restored db; the db is unchanged.
    pub fn apply_log_entry(&self, entry: TxLogEntry) -> Result<Db, Error> {
        self.apply_log_entries(std::iter::once(entry))
    }

    /// [`Db::apply_log_entry`] of each entry in order, with one update of each index for
    /// them all (an index applies the edits of one key in order, the last one winning),
    /// so replaying many transactions copies each changed path once, not once per
    /// transaction. The result is the db the entries applied one by one give.
    ///
    /// # Errors
    /// A load error of a lazily restored db; the db is unchanged.
    pub fn apply_log_entries(
        &self,
        entries: impl IntoIterator<Item = TxLogEntry>,
    ) -> Result<Db, Error> {
        self.check_writable("transacted")?;
        let mut edits: [Vec<Edit>; 3] = Default::default();
        let mut max_eid = self.max_eid;
        let mut max_tx = self.max_tx;
        let mut log = self.log.clone();
        for mut entry in entries {
            share_large_values(&mut entry.datoms);
            for d in &entry.datoms {
                let stored = Datom {
                    added: true,
                    ..d.clone()
                };
                let in_avet = self.schema.in_avet(&d.a);
                let make = |x: &Datom| {
                    if d.added {
                        Edit::Put(x.clone())
                    } else {
                        Edit::Delete(x.clone())
                    }
                };
                edits[0].push(make(&stored));
                edits[1].push(make(&stored));
                if in_avet {
                    edits[2].push(make(&stored));
                }
                if d.added && d.e < TX0 {
                    max_eid = max_eid.max(d.e);
                }
            }
            max_tx = max_tx.max(entry.tx);
            log = log.push(Arc::new(entry));
        }
        let [e, a, v] = edits;
        let source = self.source.as_ref();
        Ok(Db {
            eavt: self.eavt.with_edits(e, self.edit_buffer, source)?,
            aevt: self.aevt.with_edits(a, self.edit_buffer, source)?,
            avet: self.avet.with_edits(v, self.edit_buffer, source)?,
            max_eid,
            max_tx,
            log,
            stamp: Arc::default(),
            ..self.clone()
        })
    }
}

/// Replaces each large value (see [`crate::large`]) with the one allocation of it held in
/// this process, so the indexes, the log and every later version share it, and encoding
/// it never hashes it again.
/// Datascript's "Attribute :a should be marked as :db/index true", for an AVET read of
/// an attribute AVET does not keep.
fn avet_error(attr: &Keyword) -> Error {
    Error::BadSchema {
        attr: attr.clone(),
        reason: "an AVET read (datoms, seek-datoms, index-range) needs :db/index true, \
                 :db/unique or a ref attribute"
            .into(),
    }
}

fn share_large_values(datoms: &mut [Datom]) {
    for d in datoms {
        if let Some(large) = crate::large::LargeValue::adopt(&d.v) {
            d.v = large.to_value();
        }
    }
}

/// The declaration of `attr` as the attribute of a lookup ref: it must be unique.
///
/// # Errors
/// [`Error::LookupRefNotUnique`], or [`Error::UnknownAttribute`] under a strict schema.
pub(crate) fn lookup_ref_attr(schema: &Schema, attr: &Keyword) -> Result<AttributeSchema, Error> {
    let spec = schema.resolve(attr)?;
    if spec.unique.is_none() {
        return Err(Error::LookupRefNotUnique { attr: attr.clone() });
    }
    Ok(spec)
}

/// The datom value a lookup ref's value stands for: a positive long names an entity
/// under a ref attribute.
pub(crate) fn lookup_ref_value(spec: &AttributeSchema, value: &Value) -> Value {
    match value {
        Value::Long(n) if spec.is_ref() && *n > 0 => Value::Ref(n.unsigned_abs()),
        other => other.clone(),
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("datoms", &self.len())
            .field("max_eid", &self.max_eid)
            .field("max_tx", &self.max_tx)
            .field("base_commit", &self.base_commit())
            .field("pending_txs", &self.log.len)
            .field("filtered", &self.is_filtered())
            .finish()
    }
}

/// The transactions since the base commit: a persistent list, newest first, so that
/// transacting appends in O(1) and every db version shares its predecessors' entries.
#[derive(Clone, Default)]
pub(crate) struct PendingLog {
    last: Option<Arc<LogLink>>,
    len: usize,
}

struct LogLink {
    entry: Arc<TxLogEntry>,
    prev: Option<Arc<LogLink>>,
}

impl PendingLog {
    fn push(&self, entry: Arc<TxLogEntry>) -> PendingLog {
        PendingLog {
            last: Some(Arc::new(LogLink {
                entry,
                prev: self.last.clone(),
            })),
            len: self.len + 1,
        }
    }

    /// The entries, oldest first.
    fn entries(&self) -> Vec<Arc<TxLogEntry>> {
        let mut out = Vec::with_capacity(self.len);
        let mut link = self.last.as_ref();
        while let Some(l) = link {
            out.push(l.entry.clone());
            link = l.prev.as_ref();
        }
        out.reverse();
        out
    }
}

impl Drop for LogLink {
    /// Unlinks iteratively: dropping a long list recursively would overflow the stack.
    fn drop(&mut self) {
        let mut prev = self.prev.take();
        while let Some(p) = prev {
            match Arc::try_unwrap(p) {
                Ok(mut link) => prev = link.prev.take(),
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datom::TX0;

    fn bulk_schema() -> Schema {
        crate::edn::parse_schema(
            "{:person/name {:db/valueType :db.type/string :db/unique :db.unique/identity}
              :person/friend {:db/valueType :db.type/ref :db/cardinality :db.cardinality/many}}",
        )
        .unwrap()
    }

    #[test]
    fn a_bulk_load_equals_the_transacted_db_counters_included() {
        let original = Db::new(bulk_schema())
            .with_edn(r#"[{:db/id -1 :person/name "Ann" :person/friend -2} {:db/id -2 :person/name "Bob"}]"#)
            .unwrap()
            .db_after
            .with_edn("[[:db/retractEntity 2]]")
            .unwrap()
            .db_after;
        let datoms: Vec<Datom> = original
            .datoms(IndexKind::Eavt, &[])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let loaded = Db::bulk_load(
            bulk_schema(),
            original.config(),
            datoms,
            original.max_eid(),
            original.max_tx(),
        )
        .unwrap();
        assert_eq!(loaded.root_addresses(), original.root_addresses());
        assert_eq!((loaded.max_eid(), loaded.max_tx()), (2, TX0 + 2));
        // Replaying the pending log gives the same trees and max-tx.
        let mut replayed = Db::new(bulk_schema());
        for entry in loaded.pending_log() {
            replayed = replayed.apply_log_entry((*entry).clone()).unwrap();
        }
        assert_eq!(replayed.root_addresses(), original.root_addresses());
        assert_eq!(replayed.max_tx(), original.max_tx());
        // Replay derives max-eid from the entities it asserts: entity 2 holds no datom,
        // so only the bulk load's own counter says 2; `sync` takes it from the commit
        // (see docs/design.md).
        assert_eq!(replayed.max_eid(), 1);
        // The next transaction does the same on both.
        let next = r#"[{:db/id -1 :person/name "Cy"}]"#;
        let a = original.with_edn(next).unwrap();
        let b = loaded.with_edn(next).unwrap();
        assert_eq!(a.tx_data, b.tx_data);
        assert_eq!(a.tempids, b.tempids);
        assert_eq!(a.db_after.root_addresses(), b.db_after.root_addresses());
    }

    #[test]
    fn a_bulk_load_refuses_broken_invariants_and_counters_below_the_data() {
        let t = TX0 + 1;
        let err = Db::bulk_load(
            bulk_schema(),
            TreeConfig::default(),
            vec![
                Datom::new(1, ":person/name", "Ann", t),
                Datom::new(2, ":person/name", "Ann", t),
            ],
            2,
            t,
        )
        .unwrap_err();
        let Error::Invariants { violations } = &err else {
            panic!("{err}")
        };
        assert_eq!(violations.len(), 1, "{err}");
        assert!(
            err.to_string()
                .contains(":person/name \"Ann\" is unique but held by entities 1, 2"),
            "{err}"
        );
        let err = Db::bulk_load(
            bulk_schema(),
            TreeConfig::default(),
            vec![Datom::new(3, ":person/name", "Ann", t)],
            2,
            t,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("entity 3 is above max-eid 2"),
            "{err}"
        );
        // A ref to an entity without datoms is accepted, as a transaction accepts it.
        let ok = Db::bulk_load(
            bulk_schema(),
            TreeConfig::default(),
            vec![Datom::new(1, ":person/friend", Value::Ref(7), t)],
            7,
            t,
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
    }

    #[test]
    fn a_long_pending_log_appends_shares_and_drops_without_recursion() {
        let mut db = Db::new(Schema::new());
        let first = db.clone();
        for i in 1..=200_000u64 {
            db.log = db.log.push(Arc::new(TxLogEntry {
                tx: TX0 + i,
                datoms: Vec::new(),
                id: None,
            }));
        }
        let mid = db.clone();
        assert_eq!(db.pending_txs(), 200_000);
        let entries = db.pending_log();
        assert_eq!(entries.first().map(|e| e.tx), Some(TX0 + 1));
        assert_eq!(entries.last().map(|e| e.tx), Some(TX0 + 200_000));
        drop(entries);
        drop(db);
        assert_eq!(mid.pending_txs(), 200_000);
        drop(mid);
        assert_eq!(first.pending_txs(), 0);
    }
}
