//! Filtered dbs, Datascript's `filter`: a read-only view of a db that holds only the
//! datoms a predicate accepts.
//!
//! As Datascript's `FilteredDB`: every read of the view (the index reads
//! [`Db::datoms`], [`Db::seek_datoms`], [`Db::rseek_datoms`], [`Db::index_range`], and
//! through them queries, pulls, entities and lookup refs) reads the unfiltered db, then
//! keeps the datoms the predicate accepts. The predicate is called with the
//! **unfiltered** db and the datom (`(pred db datom)`), so it can look at what the
//! filter hides. Filtering a filtered db composes: both predicates must accept, the
//! earlier one asked first, and each gets the same unfiltered db. Nothing is cached: each
//! read pays for the predicate again. A filtered db cannot be transacted or stored
//! ([`crate::Error::FilteredDb`]).
//!
//! ```
//! use datoms_core::{Db, Schema};
//! let db = Db::new(Schema::new())
//!     .with_edn(r#"[{:db/id 1 :name "Petr" :password "<SECRET>"} {:db/id 2 :name "Ivan"}]"#)?
//!     .db_after;
//! let public = db.filter(|_, d| d.a.as_str() != "password");
//! let q = "[:find ?v :where [_ :password ?v]]";
//! assert_eq!(datoms_core::q(q, &[datoms_core::Input::Db(&db)])?.len(), 1);
//! assert!(datoms_core::q(q, &[datoms_core::Input::Db(&public)])?.is_empty());
//! # Ok::<(), datoms_core::Error>(())
//! ```

use std::sync::Arc;

use crate::datom::Datom;
use crate::db::Db;

/// A predicate of a filtered db: the unfiltered db and a datom in, whether the view
/// holds the datom out.
pub type DatomPredicate = Arc<dyn Fn(&Db, &Datom) -> bool + Send + Sync>;

/// The filter of a filtered db: the db it views and the predicates it applies.
pub(crate) struct Filter {
    /// The db without any filter.
    pub(crate) unfiltered: Db,
    /// Every predicate, in the order the filters were applied.
    pub(crate) preds: Vec<DatomPredicate>,
}

impl Filter {
    /// True when every predicate accepts `d`.
    pub(crate) fn accepts(&self, d: &Datom) -> bool {
        self.preds.iter().all(|p| p(&self.unfiltered, d))
    }
}

impl Db {
    /// Datascript's `filter`: a view of this db holding only the datoms `pred` accepts
    /// (see the [module docs](crate::filter)). `pred` gets the unfiltered db and the
    /// datom; on a filtered db, the view applies both filters.
    pub fn filter(&self, pred: impl Fn(&Db, &Datom) -> bool + Send + Sync + 'static) -> Db {
        let pred: DatomPredicate = Arc::new(pred);
        let filter = match &self.filter {
            Some(f) => Filter {
                unfiltered: f.unfiltered.clone(),
                preds: f.preds.iter().cloned().chain([pred]).collect(),
            },
            None => Filter {
                unfiltered: self.clone(),
                preds: vec![pred],
            },
        };
        Db {
            filter: Some(Arc::new(filter)),
            ..self.clone()
        }
    }

    /// True for a filtered db ([`Db::filter`]).
    pub fn is_filtered(&self) -> bool {
        self.filter.is_some()
    }

    /// The db without its filters (this db itself when it has none), Datascript's
    /// `unfiltered-db`.
    pub fn unfiltered(&self) -> Db {
        match &self.filter {
            Some(f) => f.unfiltered.clone(),
            None => self.clone(),
        }
    }

    /// `Err(FilteredDb)` for a filtered db: the check of every write.
    pub(crate) fn check_writable(&self, operation: &'static str) -> Result<(), crate::Error> {
        if self.is_filtered() {
            return Err(crate::Error::FilteredDb { operation });
        }
        Ok(())
    }
}
