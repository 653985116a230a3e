//! Small-transaction workloads that follow the one-person-per-transaction one, on its db:
//! what an application's UI does between stores. The JS peer (`bench/peer/peer.js`,
//! `addsWorkload` and `mixWorkload`) builds the same transactions from the same people,
//! and both sides print the resulting db's checksum.
//!
//! Entity `e(i) = 1 + (i * 7919) mod P` (P people, entity ids `1..=P`) is the one the
//! `i`-th transaction touches.
//! - adds: `[:db/add e(i) :person/tag "tag-{i}"]`, one datom per transaction.
//! - mix, by `i mod 4`: an upsert by name moving `e(i)` to city `CITIES[(i / 4) mod 24]`
//!   (a retraction and an assertion, or nothing when it is already there); a
//!   `[:db/cas e(i) :person/score old 2000000+i]` with the current score; a tag
//!   `"mix-{i}"` added to `e(i)`; the previous transaction's tag retracted.

use datoms_core::tx::{EntityMap, EntityRef, TxOp, TxValue};
use datoms_core::{Eid, Keyword};

use crate::workload::{attr, Person, CITIES};

/// The entity the `i`-th transaction touches among `people` people.
fn entity(i: usize, people: usize) -> Eid {
    1 + ((i as u64 * 7919) % people.max(1) as u64)
}

/// `n` transactions of one `:db/add` each.
pub fn adds(people: &[Person], n: usize) -> Vec<Vec<TxOp>> {
    (0..n)
        .map(|i| {
            vec![TxOp::Add(
                EntityRef::Id(entity(i, people.len())),
                Keyword::new(attr::TAG),
                TxValue::from(format!("tag-{i}").as_str()),
            )]
        })
        .collect()
}

/// `n` transactions of the UI-like mix: upserts, compare-and-swaps, additions and
/// retractions.
pub fn mix(people: &[Person], n: usize) -> Vec<Vec<TxOp>> {
    let mut scores: Vec<i64> = people.iter().map(|p| p.score).collect();
    let kw = Keyword::new;
    (0..n)
        .map(|i| {
            let e = entity(i, people.len());
            let slot = (e - 1) as usize;
            let op = match i % 4 {
                0 => TxOp::Map(
                    EntityMap::new()
                        .set(kw(attr::NAME), TxValue::from(people[slot].name.as_str()))
                        .set(
                            kw(attr::CITY),
                            TxValue::from(CITIES[(i / 4) % CITIES.len()]),
                        ),
                ),
                1 => {
                    let new = 2_000_000 + i as i64;
                    let old = std::mem::replace(&mut scores[slot], new);
                    TxOp::Cas(
                        EntityRef::Id(e),
                        kw(attr::SCORE),
                        Some(TxValue::from(old)),
                        TxValue::from(new),
                    )
                }
                2 => TxOp::Add(
                    EntityRef::Id(e),
                    kw(attr::TAG),
                    TxValue::from(format!("mix-{i}").as_str()),
                ),
                _ => TxOp::Retract(
                    EntityRef::Id(entity(i - 1, people.len())),
                    kw(attr::TAG),
                    TxValue::from(format!("mix-{}", i - 1).as_str()),
                ),
            };
            vec![op]
        })
        .collect()
}
