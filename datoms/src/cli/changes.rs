//! Printing what changed between two dbs (`diff`, `follow`): the retracted datoms, then
//! the added ones, as `#datom [e a v tx added]` lines (the export format, with `false`
//! for a retraction), or as JSON.

use std::fmt::Write as _;

use datoms::edn::datom_to_edn;
use datoms::Datom;
use serde::Serialize;

use super::query::{datom_json, DatomJson};
use super::CliError;

/// Added and retracted datoms as JSON.
#[derive(Serialize)]
pub struct ChangesJson {
    /// Datoms added, EAVT order.
    pub added: Vec<DatomJson>,
    /// Datoms retracted, EAVT order.
    pub retracted: Vec<DatomJson>,
}

/// The JSON of a change.
///
/// # Errors
/// A value that cannot be written as JSON.
pub fn changes_json(added: &[Datom], retracted: &[Datom]) -> Result<ChangesJson, CliError> {
    Ok(ChangesJson {
        added: added.iter().map(datom_json).collect::<Result<_, _>>()?,
        retracted: retracted.iter().map(datom_json).collect::<Result<_, _>>()?,
    })
}

/// The lines of a change: retractions first, then additions.
pub fn changes_text(added: &[Datom], retracted: &[Datom]) -> String {
    let mut out = String::new();
    for d in retracted.iter().chain(added) {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{}", datom_to_edn(d));
    }
    out
}
