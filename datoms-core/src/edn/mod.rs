//! EDN, as Datascript and Clojure users write it: a reader ([`parse`], [`parse_all`]), a
//! printer (`Display` for [`Edn`]) and conversions between EDN forms and datoms values,
//! datoms and schemas.
//!
//! ```
//! use datoms_core::edn::{parse, Edn};
//! use datoms_core::Keyword;
//!
//! let form = parse("[:find ?e :where [?e :person/name \"Ann\"]]").unwrap();
//! let Edn::Vector(items) = &form else { panic!() };
//! assert_eq!(items[0], Edn::Keyword(Keyword::new(":find")));
//! assert_eq!(parse(&form.to_string()).unwrap(), form);
//! ```
//!
//! # What the reader accepts
//! Everything in the EDN spec: `nil`, booleans, strings, characters, integers, floats,
//! symbols, keywords, lists, vectors, maps, sets, tagged literals (`#inst "…"`, any
//! `#tag form`), `#_` discard, `;` comments and commas as whitespace. It also reads
//! Clojure's `##Inf`, `##-Inf` and `##NaN`, the character names `\return`,
//! `\backspace`, `\formfeed` and octal `\oNNN`, and `#!` line comments. Clojure-only
//! syntax (`'x`, `` `x ``, `@x`, `^meta`, `#"regex"`, `#(…)`, `::auto`, `#:ns{…}`,
//! ratios, radix and octal integers) is rejected. Maps and sets with duplicate entries
//! are rejected, as in Clojure.
//!
//! # Numbers
//! datoms holds 64-bit longs and doubles only, and never changes a number silently:
//! * an integer that does not fit in 64 bits (`12345678901234567890`, with or without
//!   `N`) and every big decimal (`1.5M`, `1M`) is [`Error::UnsupportedNumber`], naming the
//!   literal and where it is — wherever EDN is read: tx data, queries and their inputs,
//!   pull patterns, schemas, imports;
//! * an `N` integer that fits in 64 bits is that long (`1N` is `1`: exact, and equal in
//!   Clojure too);
//! * a float without `M` is the nearest `f64`, as Clojure reads it (`1e999` is `##Inf`).
//!
//! # Error positions
//! Every syntax error is [`Error::EdnSyntax`] with a 1-based
//! line and column, counted in characters (Unicode scalar values). The position is that
//! of the offending character, with these conventions:
//! * an unterminated string, list, vector, map or set reports where it *starts* (its
//!   opening `"`, `(`, `[`, `{` or `#`), which is where the reader of the message should
//!   look; a `#_` or `#tag` with no form after it reports its `#`;
//! * an escape error in a string reports the backslash that starts the escape;
//! * a bad character literal reports its backslash; a bad keyword or symbol reports the
//!   offending character inside it (or the `:` of an empty keyword);
//! * a bad number reports the first character that cannot continue it (`1.2.3` → the
//!   second `.`), or its first character when it is out of range;
//! * a map with an odd number of forms reports the key that has no value; a duplicate
//!   map key or set element reports the duplicate;
//! * an unexpected end of input reports the position just past the last character.
//!
//! Nesting deeper than [`MAX_DEPTH`] is an error, not a stack overflow.

mod components;
mod convert;
mod parse;
mod print;

use std::str::FromStr;

use crate::error::Error;
use crate::value::Keyword;

pub use components::index_components;
pub use convert::{
    datom_from_edn, datom_to_edn, parse_schema, parse_schema_with_warnings, schema_from_edn,
    schema_from_edn_with_warnings, schema_to_edn, value_to_edn, SchemaWarning,
};
pub(crate) use parse::keyword_problem;
pub use parse::{parse, parse_all, MAX_DEPTH};

/// One EDN form.
///
/// Equality is structural: maps and sets compare their entries in order, and floats
/// compare as `f64` (so `##NaN` is not equal to itself).
///
/// Printing (`Display`) gives EDN text that [`parse`] reads back to an equal form, as
/// long as every symbol, keyword and tag holds valid EDN symbol text (the printer writes
/// them as they are: `Symbol("nil")` prints `nil`, which reads back as [`Edn::Nil`]) and
/// maps and sets hold no duplicates.
#[derive(Clone, Debug, PartialEq)]
pub enum Edn {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// A 64-bit integer such as `42`, `-7` or `42N` (an `N` integer is read only when it
    /// fits in 64 bits, so it is exact).
    Int(i64),
    /// A float such as `1.5`, `1e10` or `##Inf` (`2.5M` big decimals are not read: see
    /// the module docs).
    Float(f64),
    /// A string, with its escapes resolved.
    String(String),
    /// A character such as `\a`, `\newline` or `\u00e9`.
    Char(char),
    /// A symbol such as `?e`, `_`, `...`, `<=` or `clojure.string/blank?`.
    Symbol(String),
    /// A keyword such as `:person/name` (the [`Keyword`] holds it without the colon).
    Keyword(Keyword),
    /// `( … )`.
    List(Vec<Edn>),
    /// `[ … ]`.
    Vector(Vec<Edn>),
    /// `{ … }`, its entries in the order they were written.
    Map(Vec<(Edn, Edn)>),
    /// `#{ … }`, its elements in the order they were written.
    Set(Vec<Edn>),
    /// A tagged literal `#tag form`; the tag is held without its `#` (e.g. `inst`).
    Tagged(String, Box<Edn>),
}

impl FromStr for Edn {
    type Err = Error;

    /// Same as [`parse`]: exactly one form.
    fn from_str(text: &str) -> Result<Edn, Error> {
        parse(text)
    }
}
