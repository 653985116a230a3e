//! Pull: a tree of an entity's attributes, as Datascript's `pull` and `pull-many`.
//!
//! ```
//! use datoms_core::{AttributeSchema, Db, Schema, ValueType};
//!
//! let schema = Schema::new()
//!     .with(":friend", AttributeSchema::default().value_type(ValueType::Ref).many())?;
//! let db = Db::new(schema)
//!     .with_edn(r#"[{:db/id 1 :name "Ann" :friend [2]} {:db/id 2 :name "Bob"}]"#)?
//!     .db_after;
//! let ann = db.pull("[:name {:friend [:name]} :_friend]", 1)?;
//! assert_eq!(ann.to_string(), r#"{:friend [{:name "Bob"}], :name "Ann"}"#);
//! let bob = db.pull("[:name (:_friend :as :liked-by)]", 2)?;
//! assert_eq!(bob.to_string(), r#"{:liked-by [{:db/id 1}], :name "Bob"}"#);
//! # Ok::<(), datoms_core::Error>(())
//! ```
//!
//! # Pattern language
//! As Datascript's:
//! * `:attr` — the value; a vector of values for cardinality many (at most 1000 unless
//!   `:limit` says otherwise); `{:db/id e}` for a ref; the whole entity (as `[*]`,
//!   recursively) for a `:db/isComponent` ref;
//! * `:ns/_attr` — reverse reference: a vector of the entities that refer to this one
//!   through `:ns/attr` (a single one for a component attribute);
//! * `*` — every attribute of the entity, plus `:db/id`;
//! * `:db/id` — the entity id;
//! * `{:attr pattern}` — follow a ref (or reverse ref) with a nested pattern;
//!   `{:attr ...}` follows it recursively with the enclosing pattern, `{:attr 3}` at most
//!   3 levels deep; an entity already on the recursion path comes back as `{:db/id e}`;
//! * options `[:attr :as key :limit n :default v :xform f]` (also as a list
//!   `(:attr :as key)`), `:limit nil` for no limit, and the legacy forms
//!   `(limit :attr n)` and `(default :attr v)`. `:xform` names a built-in query function
//!   or one registered in [`Functions`].
//!
//! Datascript's `:visitor` option is [`pull_entity_visiting`]: a callback told of each
//! attribute read ([`PullVisit`]), in Datascript's order (an entity's attributes by
//! name, then its reverse attributes, depth first).
//!
//! Keys in the result are the attributes as written (or their `:as`); maps print their
//! keys in order (keywords alphabetically). A map with no key
//! at all is `nil`: pulling an entity that does not exist gives `nil` (unless the pattern
//! asks for `:db/id`). Evaluation keeps its own stack of entities being pulled, not the
//! native one: a recursive pull nests as deep as the data does (Datascript answers a
//! chain of thousands of entities, and so does this).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::datom::{Component, Datom, IndexKind};
use crate::db::Db;
use crate::edn::{self, Edn};
use crate::error::Error;
use crate::query::builtins::{builtin_arity, call_builtin, CallArg, CallError, Functions};
use crate::query::eval::resolve_entity;
use crate::query::QueryValue;
use crate::value::{Eid, Keyword, Value};

/// A pull result: a map ([`QueryValue::Map`]) keyed by attribute (or `:as`), or `nil`.
pub type PullValue = QueryValue;

const DEFAULT_LIMIT: usize = 1000;

/// At most this many entities are pulled in one pull (the root, and each entity a ref
/// leads to, counted each time it is reached): nested patterns over refs that form a
/// cycle (`{:friend [{:friend [...]}]}` 250 deep) or a recursive pattern over many
/// paths otherwise pull exponentially many, and a few KB of pattern would exhaust
/// memory. Past it the pull fails with [`Error::QueryEval`] naming the bound. A pull
/// that big is a result of tens of MB; an export reads the indexes instead
/// ([`Db::datoms`]).
pub const MAX_PULLED_ENTITIES: usize = 100_000;

#[derive(Clone, Debug)]
enum Sub {
    /// Not a ref: the value itself.
    Value,
    /// Follow the ref with this pattern.
    Pattern(Arc<PullPattern>),
    /// Follow the ref with the enclosing pattern, at most this many levels.
    Recursive(Option<u32>),
}

#[derive(Clone, Debug)]
struct PullAttr {
    /// An id for recursion limits (0 for attributes a wildcard added).
    id: usize,
    /// The forward attribute (`:db/id` for the id).
    name: Keyword,
    /// The key in the result.
    key: QueryValue,
    reverse: bool,
    multival: bool,
    /// The forward attribute is cardinality many (what Datascript's `:limit` asks).
    forward_many: bool,
    component: bool,
    limit: Option<usize>,
    default: Option<QueryValue>,
    xform: Option<Arc<str>>,
    sub: Sub,
}

impl PullAttr {
    fn is_db_id(&self) -> bool {
        !self.reverse && self.name.as_str() == "db/id"
    }

    fn auto_expanding(&self) -> bool {
        match &self.sub {
            Sub::Recursive(_) => true,
            Sub::Pattern(p) => self.component && p.wildcard,
            Sub::Value => false,
        }
    }
}

/// A parsed pull pattern, checked against a db's schema.
#[derive(Clone, Debug, Default)]
pub struct PullPattern {
    wildcard: bool,
    attrs: Vec<PullAttr>,
    reverse: Vec<PullAttr>,
}

fn fragment_err(form: &Edn, reason: impl Into<String>) -> Error {
    let mut text = form.to_string();
    if let Some((cut, _)) = text.char_indices().nth(200) {
        text.truncate(cut);
        text.push('…');
    }
    Error::PullPattern {
        fragment: text,
        reason: reason.into(),
    }
}

struct Parser<'a> {
    db: &'a Db,
    fns: &'a Functions,
    next_id: usize,
}

impl Parser<'_> {
    fn id(&mut self) -> usize {
        self.next_id += 1;
        self.next_id
    }

    /// The attribute as written, with the defaults the schema implies.
    fn attr_name(&mut self, form: &Edn) -> Result<PullAttr, Error> {
        let written = match form {
            Edn::Keyword(k) => k.clone(),
            Edn::String(s) if s != "default" && s != "limit" => Keyword::parse(s)
                .map_err(|e| fragment_err(form, format!("not an attribute: {e}")))?,
            _ => return Err(fragment_err(form, "expected an attribute keyword")),
        };
        let id = self.id();
        Ok(default_attr(self.db, &written, id))
    }

    fn attr_spec(&mut self, form: &Edn) -> Result<PullAttr, Error> {
        match form {
            Edn::Keyword(_) | Edn::String(_) => self.attr_name(form),
            Edn::Vector(items) | Edn::List(items) => {
                let Some(head) = items.first() else {
                    return Err(fragment_err(form, "empty attribute expression"));
                };
                let legacy = match head {
                    Edn::Symbol(s) | Edn::String(s) if s == "limit" || s == "default" => {
                        Some(s.as_str())
                    }
                    _ => None,
                };
                if let Some(kind) = legacy {
                    let [_, attr, value] = items.as_slice() else {
                        return Err(fragment_err(
                            form,
                            format!("expected ({kind} attr-name value)"),
                        ));
                    };
                    let mut a = self.attr_spec(attr)?;
                    if kind == "limit" {
                        a.limit = limit_value(value, form)?;
                        check_limit(&a, form)?;
                    } else {
                        a.default = Some(QueryValue::from_edn(value)?);
                    }
                    return Ok(a);
                }
                let mut a = self.attr_spec(head)?;
                let opts = &items[1..];
                if opts.len() % 2 != 0 {
                    return Err(fragment_err(form, "expected an even number of options"));
                }
                for pair in opts.chunks(2) {
                    let (k, v) = (&pair[0], &pair[1]);
                    let Edn::Keyword(k) = k else {
                        return Err(fragment_err(
                            form,
                            "expected one of :as, :limit, :default, :xform",
                        ));
                    };
                    match k.as_str() {
                        "as" => a.key = QueryValue::from_edn(v)?,
                        "limit" => {
                            a.limit = limit_value(v, form)?;
                            check_limit(&a, form)?;
                        }
                        "default" => a.default = Some(QueryValue::from_edn(v)?),
                        "xform" => {
                            let Edn::Symbol(f) = v else {
                                return Err(fragment_err(form, ":xform takes a function name"));
                            };
                            if self.fns.function_impl(f).is_none()
                                && !builtin_arity(f).is_some_and(|(min, max)| {
                                    min <= 1 && max.is_none_or(|m| m >= 1)
                                })
                            {
                                return Err(fragment_err(
                                    form,
                                    format!("can't resolve :xform function {f}"),
                                ));
                            }
                            a.xform = Some(Arc::from(f.as_str()));
                        }
                        _ => {
                            return Err(fragment_err(
                                form,
                                "expected one of :as, :limit, :default, :xform",
                            ))
                        }
                    }
                }
                Ok(a)
            }
            other => Err(fragment_err(
                other,
                "expected attr-name | attr-expr | map-spec | *",
            )),
        }
    }

    fn map_spec(&mut self, spec: &Edn, sub: &Edn) -> Result<PullAttr, Error> {
        let mut a = self.attr_spec(spec)?;
        if a.is_db_id() || matches!(a.sub, Sub::Value) {
            return Err(fragment_err(
                spec,
                "expected an attribute having :db.type/ref",
            ));
        }
        a.sub = match sub {
            Edn::Symbol(s) | Edn::String(s) if s == "..." => Sub::Recursive(None),
            Edn::Int(n) => {
                let n = u32::try_from(*n).ok().filter(|n| *n > 0).ok_or_else(|| {
                    fragment_err(sub, "expected a positive recursion limit or ...")
                })?;
                Sub::Recursive(Some(n))
            }
            pattern => Sub::Pattern(Arc::new(self.pattern(pattern)?)),
        };
        Ok(a)
    }

    fn pattern(&mut self, form: &Edn) -> Result<PullPattern, Error> {
        let (Edn::Vector(items) | Edn::List(items)) = form else {
            return Err(fragment_err(form, "expected a pattern vector"));
        };
        let mut out = PullPattern::default();
        let add = |out: &mut PullPattern, a: PullAttr| {
            let list = if a.reverse {
                &mut out.reverse
            } else {
                &mut out.attrs
            };
            match list.iter().position(|x| x.key == a.key) {
                Some(i) => list[i] = a,
                None => list.push(a),
            }
        };
        for item in items {
            match item {
                Edn::Symbol(s) | Edn::String(s) if s == "*" => out.wildcard = true,
                Edn::Keyword(k) if k.as_str() == "*" => out.wildcard = true,
                Edn::Map(pairs) => {
                    for (spec, sub) in pairs {
                        let a = self.map_spec(spec, sub)?;
                        add(&mut out, a);
                    }
                }
                other => {
                    let a = self.attr_spec(other)?;
                    add(&mut out, a);
                }
            }
        }
        if out.wildcard && !out.attrs.iter().any(PullAttr::is_db_id) {
            out.attrs.push(db_id_attr());
        }
        out.attrs.sort_by(|a, b| a.name.cmp(&b.name));
        out.reverse.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

fn limit_value(v: &Edn, form: &Edn) -> Result<Option<usize>, Error> {
    match v {
        Edn::Nil => Ok(None),
        Edn::Int(n) if *n > 0 => Ok(Some(usize::try_from(*n).unwrap_or(usize::MAX))),
        _ => Err(fragment_err(
            form,
            "expected a positive number or nil as :limit",
        )),
    }
}

/// `:limit` needs an attribute that answers several values. Datascript asks that the
/// forward attribute be cardinality many (so a reverse of a cardinality-many attribute
/// takes a limit, even a component one); a reverse of a cardinality-one ref answers several
/// entities too, and takes one here.
fn check_limit(a: &PullAttr, form: &Edn) -> Result<(), Error> {
    if !a.multival && !a.forward_many {
        return Err(fragment_err(
            form,
            "expected a :limit attribute having :db.cardinality/many",
        ));
    }
    Ok(())
}

fn db_id_attr() -> PullAttr {
    PullAttr {
        id: 0,
        name: Keyword::new("db/id"),
        key: QueryValue::keyword("db/id"),
        reverse: false,
        multival: false,
        forward_many: false,
        component: false,
        limit: None,
        default: None,
        xform: None,
        sub: Sub::Value,
    }
}

fn ref_pattern() -> Arc<PullPattern> {
    Arc::new(PullPattern {
        wildcard: false,
        attrs: vec![db_id_attr()],
        reverse: Vec::new(),
    })
}

fn component_pattern() -> Arc<PullPattern> {
    Arc::new(PullPattern {
        wildcard: true,
        attrs: vec![db_id_attr()],
        reverse: Vec::new(),
    })
}

/// The attribute `written` (forward or reverse) with the schema's defaults.
fn default_attr(db: &Db, written: &Keyword, id: usize) -> PullAttr {
    let reverse = written.is_reverse();
    let name = written.reverse_of().unwrap_or_else(|| written.clone());
    let schema = db.schema().get(&name);
    let is_ref = schema.is_some_and(|s| s.is_ref());
    let component = schema.is_some_and(|s| s.is_component);
    let many = schema.is_some_and(|s| s.is_many());
    let sub = if !is_ref {
        Sub::Value
    } else if component && !reverse {
        Sub::Pattern(component_pattern())
    } else {
        Sub::Pattern(ref_pattern())
    };
    PullAttr {
        id,
        key: QueryValue::Value(Value::Keyword(written.clone())),
        reverse,
        // Reverse refs are many, except that a component has one owner.
        multival: if reverse { !component } else { many },
        forward_many: many,
        component,
        limit: if many { Some(DEFAULT_LIMIT) } else { None },
        default: None,
        xform: None,
        sub,
        name,
    }
}

impl PullPattern {
    /// Parses a pull pattern from EDN text against `db`'s schema.
    ///
    /// # Errors
    /// [`Error::EdnSyntax`], or [`Error::PullPattern`] naming the fragment at fault (a
    /// map spec or reverse attribute on a non-ref attribute, a `:limit` on a
    /// cardinality-one attribute, an unknown option or `:xform` function).
    pub fn parse(db: &Db, text: &str, fns: &Functions) -> Result<PullPattern, Error> {
        PullPattern::from_edn(db, &edn::parse(text)?, fns)
    }

    /// Parses a pull pattern from an EDN form (see [`PullPattern::parse`]).
    ///
    /// # Errors
    /// As [`PullPattern::parse`].
    pub fn from_edn(db: &Db, form: &Edn, fns: &Functions) -> Result<PullPattern, Error> {
        let mut p = Parser {
            db,
            fns,
            next_id: 0,
        };
        let pattern = p.pattern(form)?;
        for a in pattern.reverse.iter() {
            if matches!(a.sub, Sub::Value) {
                return Err(fragment_err(
                    &Edn::Keyword(match &a.key {
                        QueryValue::Value(Value::Keyword(k)) => k.clone(),
                        _ => a.name.clone(),
                    }),
                    "expected a reverse attribute having :db.type/ref",
                ));
            }
        }
        check_reverse_refs(&pattern)?;
        Ok(pattern)
    }
}

fn check_reverse_refs(p: &PullPattern) -> Result<(), Error> {
    for a in p.attrs.iter().chain(p.reverse.iter()) {
        if let Sub::Pattern(sub) = &a.sub {
            for r in &sub.reverse {
                if matches!(r.sub, Sub::Value) {
                    return Err(fragment_err(
                        &Edn::Keyword(r.name.clone()),
                        "expected a reverse attribute having :db.type/ref",
                    ));
                }
            }
            check_reverse_refs(sub)?;
        }
    }
    Ok(())
}

// ---- evaluation -------------------------------------------------------------------------

/// What an attribute still has to pull: its ref targets, one at a time.
struct Pending {
    item: usize,
    ids: Vec<Eid>,
    /// At most this many non-empty results: as Datascript, an entity whose sub-pull is
    /// empty does not count against the limit.
    limit: Option<usize>,
    pos: usize,
    acc: Vec<QueryValue>,
    many: bool,
}

struct Frame {
    eid: Eid,
    pattern: Arc<PullPattern>,
    /// Entered through a recursive or component attribute (it counts as seen).
    auto: bool,
    limits: HashMap<usize, u32>,
    items: Vec<PullAttr>,
    datoms: Vec<Datom>,
    next: usize,
    acc: BTreeMap<QueryValue, QueryValue>,
    pending: Option<Pending>,
}

enum Child {
    Value(QueryValue),
    Frame(Box<Frame>),
}

struct Puller<'a> {
    db: &'a Db,
    fns: &'a Functions,
    /// Entities pulled so far (frames opened), bounded by [`MAX_PULLED_ENTITIES`].
    pulled: std::cell::Cell<usize>,
    /// Told of every attribute read, as Datascript's `:visitor` option.
    visitor: Option<std::cell::RefCell<Visitor<'a>>>,
}

/// The callback [`pull_entity_visiting`] takes.
type Visitor<'a> = &'a mut (dyn FnMut(PullVisit<'_>) + 'a);

/// What a pull reads, as Datascript's `:visitor` option reports it
/// (`(fn [k e a v])`), in the order it reads them: an entity's attributes by name, then
/// its reverse attributes, each ref's entities as they are reached. `:db/id` is not
/// reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullVisit<'a> {
    /// `[:db.pull/attr e a nil]`: attribute `attr` of entity `e` (also when the entity
    /// has no value for it).
    Attr {
        /// The entity.
        e: Eid,
        /// The attribute.
        attr: &'a Keyword,
    },
    /// `[:db.pull/wildcard e nil nil]`: `*` over entity `e`, before its attributes.
    Wildcard {
        /// The entity.
        e: Eid,
    },
    /// `[:db.pull/reverse nil a v]`: the entities referring to `v` through `attr` (the
    /// forward attribute: `:child` for `:_child`).
    Reverse {
        /// The forward attribute.
        attr: &'a Keyword,
        /// The entity referred to.
        v: Eid,
    },
}

fn pull_err(reason: impl Into<String>) -> Error {
    Error::QueryEval {
        function: "pull".into(),
        reason: reason.into(),
        clause: String::new(),
    }
}

impl Puller<'_> {
    fn visit(&self, visit: PullVisit<'_>) {
        if let Some(v) = &self.visitor {
            (v.borrow_mut())(visit);
        }
    }

    fn xform(&self, a: &PullAttr, v: QueryValue) -> Result<QueryValue, Error> {
        let Some(f) = &a.xform else { return Ok(v) };
        if let Some(custom) = self.fns.function_impl(f) {
            return custom(&[v]).map_err(|r| pull_err(format!(":xform {f}: {r}")));
        }
        call_builtin(f, &[CallArg::Val(&v)]).map_err(|e| match e {
            CallError::Reason(r) => pull_err(format!(":xform {f}: {r}")),
            CallError::Db(e) => e,
        })
    }

    fn frame(
        &self,
        eid: Eid,
        pattern: Arc<PullPattern>,
        auto: bool,
        limits: HashMap<usize, u32>,
    ) -> Result<Frame, Error> {
        let pulled = self.pulled.get() + 1;
        if pulled > MAX_PULLED_ENTITIES {
            return Err(pull_err(format!(
                "the pattern pulls more than {MAX_PULLED_ENTITIES} entities (nested or \
                 recursive patterns over refs that fan out or form a cycle)"
            )));
        }
        self.pulled.set(pulled);
        let forward: Vec<&PullAttr> = pattern.attrs.iter().filter(|a| !a.is_db_id()).collect();
        let datoms = if pattern.wildcard || forward.len() > 1 {
            self.db.entity_datoms(eid)?
        } else if let Some(a) = forward.first() {
            self.db.entity_attr(eid, &a.name)?
        } else {
            Vec::new()
        };
        let mut items: Vec<PullAttr> = pattern.attrs.clone();
        if pattern.wildcard {
            self.visit(PullVisit::Wildcard { e: eid });
            let mut last: Option<&Keyword> = None;
            for d in &datoms {
                if last == Some(&d.a) {
                    continue;
                }
                last = Some(&d.a);
                if !pattern.attrs.iter().any(|a| a.name == d.a) {
                    items.push(default_attr(self.db, &d.a, 0));
                }
            }
        }
        // As Datascript, attributes are read in name order (what a visitor sees; the
        // result is a map either way), then the reverse ones.
        items.sort_by(|a, b| a.name.cmp(&b.name));
        items.extend(pattern.reverse.iter().cloned());
        Ok(Frame {
            eid,
            pattern,
            auto,
            limits,
            items,
            datoms,
            next: 0,
            acc: BTreeMap::new(),
            pending: None,
        })
    }

    /// What pulling `child` through item `item` of the top frame gives.
    fn child(&self, stack: &[Frame], item: usize, child: Eid) -> Result<Child, Error> {
        let Some(top) = stack.last() else {
            return Ok(Child::Value(QueryValue::Nil));
        };
        let a = &top.items[item];
        if !a.auto_expanding() {
            let pattern = match &a.sub {
                Sub::Pattern(p) => p.clone(),
                _ => ref_pattern(),
            };
            let f = self.frame(child, pattern, false, top.limits.clone())?;
            return Ok(Child::Frame(Box::new(f)));
        }
        if stack.iter().any(|f| f.auto && f.eid == child) {
            let mut m = BTreeMap::new();
            m.insert(QueryValue::keyword("db/id"), QueryValue::entity(child));
            return Ok(Child::Value(QueryValue::Map(m)));
        }
        let lim = top.limits.get(&a.id).copied();
        if lim == Some(0) {
            return Ok(Child::Value(QueryValue::Nil));
        }
        let mut limits = top.limits.clone();
        match (lim, &a.sub) {
            (Some(l), _) => {
                limits.insert(a.id, l - 1);
            }
            (None, Sub::Recursive(Some(n))) => {
                limits.insert(a.id, n - 1);
            }
            _ => {}
        }
        let pattern = match &a.sub {
            Sub::Recursive(_) => top.pattern.clone(),
            Sub::Pattern(p) => p.clone(),
            Sub::Value => ref_pattern(),
        };
        let f = self.frame(child, pattern, true, limits)?;
        Ok(Child::Frame(Box::new(f)))
    }

    /// Starts item `i` of the top frame: sets its value, or a pending ref walk.
    fn start_item(&self, top: &mut Frame, i: usize) -> Result<(), Error> {
        let a = top.items[i].clone();
        if a.is_db_id() {
            let v = self.xform(&a, QueryValue::entity(top.eid))?;
            if !v.is_nil() {
                top.acc.insert(a.key.clone(), v);
            }
            return Ok(());
        }
        self.visit(if a.reverse {
            PullVisit::Reverse {
                attr: &a.name,
                v: top.eid,
            }
        } else {
            PullVisit::Attr {
                e: top.eid,
                attr: &a.name,
            }
        });
        let values: Vec<Value> = if a.reverse {
            let p = [
                Component::A(a.name.clone()),
                Component::V(Value::Ref(top.eid)),
            ];
            let mut out = Vec::new();
            for d in self.db.datoms(IndexKind::Avet, &p)? {
                out.push(Value::Ref(d?.e));
            }
            out
        } else {
            top.datoms
                .iter()
                .filter(|d| d.a == a.name)
                .map(|d| d.v.clone())
                .collect()
        };
        if values.is_empty() {
            // As Datascript: a non-nil default stands as it is; otherwise (no default,
            // or `:default nil`) `:xform` sees nil, and a nil leaves the key out.
            if let Some(d) = a.default.as_ref().filter(|d| !d.is_nil()) {
                top.acc.insert(a.key.clone(), d.clone());
            } else if a.xform.is_some() {
                let v = self.xform(&a, QueryValue::Nil)?;
                if !v.is_nil() {
                    top.acc.insert(a.key.clone(), v);
                }
            }
            return Ok(());
        }
        let limit = if a.multival { a.limit } else { Some(1) };
        if matches!(a.sub, Sub::Value) {
            let values: Vec<Value> = match limit {
                Some(n) => values.into_iter().take(n).collect(),
                None => values,
            };
            let v = if a.multival {
                QueryValue::Vector(values.into_iter().map(QueryValue::from_value).collect())
            } else {
                values
                    .into_iter()
                    .next()
                    .map_or(QueryValue::Nil, QueryValue::from_value)
            };
            let v = self.xform(&a, v)?;
            if !v.is_nil() {
                top.acc.insert(a.key.clone(), v);
            }
            return Ok(());
        }
        let ids: Vec<Eid> = values.iter().filter_map(Value::as_ref).collect();
        top.pending = Some(Pending {
            item: i,
            ids,
            limit,
            pos: 0,
            acc: Vec::new(),
            many: a.multival,
        });
        Ok(())
    }

    fn run(&self, root: Frame) -> Result<QueryValue, Error> {
        let mut stack = vec![root];
        let mut delivered: Option<QueryValue> = None;
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(QueryValue::Nil);
            };
            if let Some(v) = delivered.take() {
                if let Some(p) = top.pending.as_mut() {
                    if !v.is_nil() {
                        p.acc.push(v);
                    }
                    p.pos += 1;
                }
            }
            if let Some(p) = top.pending.as_ref() {
                let full = p.limit.is_some_and(|n| p.acc.len() >= n);
                if !full && p.pos < p.ids.len() {
                    let (item, child) = (p.item, p.ids[p.pos]);
                    match self.child(&stack, item, child)? {
                        Child::Value(v) => delivered = Some(v),
                        Child::Frame(f) => stack.push(*f),
                    }
                    continue;
                }
                let Some(p) = top.pending.take() else {
                    continue;
                };
                let a = top.items[p.item].clone();
                let value = if p.many {
                    if p.acc.is_empty() {
                        QueryValue::Nil
                    } else {
                        QueryValue::Vector(p.acc)
                    }
                } else {
                    p.acc.into_iter().next().unwrap_or(QueryValue::Nil)
                };
                let value = if value.is_nil() {
                    value
                } else {
                    self.xform(&a, value)?
                };
                if !value.is_nil() {
                    top.acc.insert(a.key.clone(), value);
                }
                continue;
            }
            if top.next < top.items.len() {
                let i = top.next;
                top.next += 1;
                self.start_item(top, i)?;
                continue;
            }
            let Some(done) = stack.pop() else {
                return Ok(QueryValue::Nil);
            };
            let value = if done.acc.is_empty() {
                QueryValue::Nil
            } else {
                QueryValue::Map(done.acc)
            };
            if stack.is_empty() {
                return Ok(value);
            }
            delivered = Some(value);
        }
    }
}

/// Pulls `pattern` for the entity `entity` names (an entity id, a lookup ref
/// `[attr value]` or an ident); `nil` when it names no entity or the entity has none of
/// the pattern's attributes.
///
/// # Errors
/// [`Error::LookupRefNotUnique`], a failing `:xform`, or a load error of a lazily
/// restored db.
pub fn pull_entity(
    db: &Db,
    pattern: &PullPattern,
    entity: &QueryValue,
    fns: &Functions,
) -> Result<PullValue, Error> {
    pull_with(db, pattern, entity, fns, None)
}

/// [`pull_entity`] with Datascript's `:visitor` option: `visitor` is told of every
/// attribute the pull reads ([`PullVisit`]), in order.
///
/// ```
/// use datoms_core::pull::{pull_entity_visiting, PullPattern, PullVisit};
/// use datoms_core::{Db, Functions, QueryValue, Schema};
/// let db = Db::new(Schema::new()).with_edn(r#"[[:db/add 1 :name "Ann"]]"#)?.db_after;
/// let fns = Functions::new();
/// let pattern = PullPattern::parse(&db, "[:name :age]", &fns)?;
/// let mut seen = Vec::new();
/// pull_entity_visiting(&db, &pattern, &QueryValue::entity(1), &fns, &mut |v| {
///     if let PullVisit::Attr { e, attr } = v {
///         seen.push(format!("{e} {attr}"));
///     }
/// })?;
/// assert_eq!(seen, [":age", ":name"].map(|a| format!("1 {a}")));
/// # Ok::<(), datoms_core::Error>(())
/// ```
///
/// # Errors
/// As [`pull_entity`].
pub fn pull_entity_visiting(
    db: &Db,
    pattern: &PullPattern,
    entity: &QueryValue,
    fns: &Functions,
    visitor: &mut dyn FnMut(PullVisit<'_>),
) -> Result<PullValue, Error> {
    pull_with(db, pattern, entity, fns, Some(visitor))
}

fn pull_with<'a>(
    db: &'a Db,
    pattern: &PullPattern,
    entity: &QueryValue,
    fns: &'a Functions,
    visitor: Option<Visitor<'a>>,
) -> Result<PullValue, Error> {
    let Some(eid) = resolve_entity(db, entity)? else {
        return Ok(QueryValue::Nil);
    };
    let puller = Puller {
        db,
        fns,
        pulled: std::cell::Cell::new(0),
        visitor: visitor.map(std::cell::RefCell::new),
    };
    let root = puller.frame(eid, Arc::new(pattern.clone()), false, HashMap::new())?;
    puller.run(root)
}

impl Db {
    /// Datascript's `pull`: the attributes `pattern` (EDN text) asks for of entity `eid`.
    /// See the [module docs](crate::pull) for the pattern language.
    ///
    /// # Errors
    /// [`Error::EdnSyntax`] or [`Error::PullPattern`] for a bad pattern; as
    /// [`pull_entity`].
    pub fn pull(&self, pattern: &str, eid: Eid) -> Result<PullValue, Error> {
        let fns = Functions::new();
        let p = PullPattern::parse(self, pattern, &fns)?;
        pull_entity(self, &p, &QueryValue::entity(eid), &fns)
    }

    /// Datascript's `pull-many`: [`Db::pull`] for each entity, in order.
    ///
    /// # Errors
    /// As [`Db::pull`].
    pub fn pull_many(&self, pattern: &str, eids: &[Eid]) -> Result<Vec<PullValue>, Error> {
        let fns = Functions::new();
        let p = PullPattern::parse(self, pattern, &fns)?;
        eids.iter()
            .map(|e| pull_entity(self, &p, &QueryValue::entity(*e), &fns))
            .collect()
    }
}
