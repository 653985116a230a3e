//! The exactly-once check of many writers on one head, shared by the peer cases, the
//! multi-process test, the kill -9 test of a pushing process and the rebase property
//! test: what the writers acknowledged and what they were told was rejected, against the
//! commits of the head.
//!
//! Invariants [`check`] verifies:
//! - every transaction id is in at most one commit's log (nothing applied twice);
//! - every acknowledged transaction (its [`Peer::transact`](datoms_storage::Peer::transact)
//!   returned) landed or was reported rejected, never both, and every landed one was
//!   acknowledged (nothing lost, nothing invented);
//! - the head equals a serial replay, from an empty db, of the landed transactions' ops in
//!   commit order (same roots).

use std::collections::{HashMap, HashSet};

use datoms_core::tx::TxOp;
use datoms_core::{Address, Commit, Db, Schema, TxId};
use datoms_storage::{restore_from, Rejection, Storage};

use crate::failure::{ensure, ensure_eq, Context, Failure};

/// What the writers did: every acknowledged transaction's ops, and the ids of those
/// reported rejected.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Each acknowledged transaction's ops, as written.
    pub acknowledged: HashMap<TxId, Vec<TxOp>>,
    /// The ids of the rejections reported (an id twice is itself a failure).
    pub rejected: Vec<TxId>,
}

impl Ledger {
    /// Records an acknowledged transaction.
    pub fn acknowledge(&mut self, id: TxId, ops: Vec<TxOp>) {
        self.acknowledged.insert(id, ops);
    }

    /// Records reported rejections.
    pub fn reject<'a>(&mut self, rejections: impl IntoIterator<Item = &'a Rejection>) {
        self.rejected.extend(rejections.into_iter().map(|r| r.id));
    }
}

/// The id [`Peer::transact`](datoms_storage::Peer::transact) gave the transaction
/// `report` is of.
///
/// # Errors
/// The report's db has no id on its last pending transaction (not a peer's report).
pub fn id_of(report: &datoms_core::TxReport) -> Result<TxId, Failure> {
    report
        .db_after
        .pending_log()
        .last()
        .and_then(|e| e.id)
        .ok_or_else(|| Failure::new("a peer transaction has no id in the pending log"))
}

/// Every commit of head `head`, oldest first.
///
/// # Errors
/// A storage error, a missing or undecodable commit.
pub async fn commits(storage: &dyn Storage, head: &str) -> Result<Vec<(Address, Commit)>, Failure> {
    let mut out = Vec::new();
    let mut next = storage.get_head(head).await?.map(|h| h.commit);
    while let Some(a) = next {
        let bytes = storage
            .get_many(&[a])
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| Failure::new(format_args!("commit {a} is missing")))?;
        let c = Commit::decode(a, &bytes)?;
        next = c.parent;
        out.push((a, c));
    }
    out.reverse();
    Ok(out)
}

/// The ids in the logs of head `head`'s commits, in commit order (repeats kept).
///
/// # Errors
/// As [`commits`].
pub async fn landed_ids(storage: &dyn Storage, head: &str) -> Result<Vec<TxId>, Failure> {
    let mut landed = Vec::new();
    for (_, c) in commits(storage, head).await? {
        landed.extend(c.log_entries()?.into_iter().filter_map(|e| e.id));
    }
    Ok(landed)
}

/// Checks the invariants of the module docs for head `head` of `storage`, whose
/// transactions were all made on a db with `schema`. Returns the landed ids in commit
/// order.
///
/// # Errors
/// The first invariant that does not hold.
pub async fn check(
    storage: &dyn Storage,
    head: &str,
    schema: &Schema,
    ledger: &Ledger,
) -> Result<Vec<TxId>, Failure> {
    let landed = landed_ids(storage, head).await?;
    let unique: HashSet<TxId> = landed.iter().copied().collect();
    ensure_eq!(unique.len(), landed.len(), "a transaction landed twice");
    let rejected: HashSet<TxId> = ledger.rejected.iter().copied().collect();
    ensure_eq!(
        rejected.len(),
        ledger.rejected.len(),
        "a rejection reported twice"
    );
    for id in &rejected {
        ensure!(
            !unique.contains(id),
            "transaction {id} was rejected and landed"
        );
    }
    for id in ledger.acknowledged.keys() {
        ensure!(
            unique.contains(id) || rejected.contains(id),
            "acknowledged transaction {id} neither landed nor was reported rejected"
        );
    }
    let mut replay = Db::new(schema.clone());
    for id in &landed {
        let ops = ledger.acknowledged.get(id).ok_or_else(|| {
            Failure::new(format_args!(
                "transaction {id} landed but was never acknowledged"
            ))
        })?;
        replay = replay
            .with(ops)
            .context(format_args!("replaying transaction {id}"))?
            .db_after;
    }
    if landed.is_empty() {
        return Ok(landed);
    }
    let head_db = restore_from(&Db::new(schema.clone()), storage, head)
        .await
        .context("restoring the head")?
        .db;
    ensure_eq!(
        head_db.root_addresses(),
        replay.root_addresses(),
        "the head against a serial replay of the landed transactions"
    );
    Ok(landed)
}
