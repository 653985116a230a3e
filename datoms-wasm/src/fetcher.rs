//! Where a replica's bytes come from: the [`Fetcher`] trait (a blob by address, a head by
//! name), and the head document of the HTTP API.
//!
//! The HTTP API (what `datoms serve` and any static host of an exported directory answer):
//! - `GET {base}/blobs/{address}` — the blob's bytes, 404 if absent; immutable, so any
//!   cache may keep it forever;
//! - `GET {base}/heads/{name}` — `{"commit": "<address>", "version": "<opaque>"}`, 404 if
//!   the head does not exist.
//!
//! and, where the server offers it (`datoms serve`: `GET {base}/capabilities` says
//! `"sync": true`), the one-round-trip sync: `GET {base}/sync/{name}?have={commit}` — the
//! head and every blob a replica at `have` lacks, in one framed body ([`Bundle`]).

use std::future::Future;

use datoms_core::Address;
use serde::Deserialize;

use crate::error::ReplicaError;

/// Where head `name` points on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteHead {
    /// The commit.
    pub commit: Address,
    /// The head's version, as the server defines it (opaque; `None` if it gave none).
    pub version: Option<String>,
}

/// A one-round-trip sync answer: where the head is, and the blobs a replica at the
/// commit it named lacks (the head's commit first). The blobs are verified by the restore
/// machine as any others; a blob the bundle lacks is fetched as usual.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// Where the head points.
    pub head: RemoteHead,
    /// The blobs, by address.
    pub blobs: Vec<(Address, Vec<u8>)>,
    /// False when the server cut the bundle short (its size limit): the restore fetches
    /// the rest blob by blob.
    pub complete: bool,
}

/// What asking for a sync bundle gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Synced {
    /// The server does not offer one-round-trip sync (a static host): read the head and
    /// fetch blobs.
    NotOffered,
    /// The head does not exist.
    NoHead,
    /// The bundle.
    Bundle(Bundle),
}

/// The requests a replica makes. Futures need not be `Send`: in a browser everything
/// runs on one thread.
pub trait Fetcher {
    /// Where the fetcher reads, for messages (a base URL).
    fn location(&self) -> String;

    /// The blob at `address`, `None` if the server does not have it. The bytes are
    /// verified against the address by the restore machine, not here.
    fn blob(&self, address: Address)
        -> impl Future<Output = Result<Option<Vec<u8>>, ReplicaError>>;

    /// Where head `name` points, `None` if it does not exist.
    fn head(&self, name: &str) -> impl Future<Output = Result<Option<RemoteHead>, ReplicaError>>;

    /// The one-round-trip sync of head `name` for a replica at `have`
    /// ([`Synced::NotOffered`] where the server has none; the fetcher learns that once).
    fn sync(
        &self,
        name: &str,
        have: Option<Address>,
    ) -> impl Future<Output = Result<Synced, ReplicaError>>;

    /// Requests made so far, of every kind (the replica's stats count a restore's from
    /// the difference).
    fn requests(&self) -> u64;
}

/// The URL of a blob under `base`.
pub fn blob_url(base: &str, address: &Address) -> String {
    format!("{}/blobs/{address}", base.trim_end_matches('/'))
}

/// The URL of a head under `base`; the name is percent-encoded as one path segment
/// (a name may contain `/`).
pub fn head_url(base: &str, name: &str) -> String {
    format!(
        "{}/heads/{}",
        base.trim_end_matches('/'),
        http_wire::encode_segment(name)
    )
}

/// The URL of a sync of head `name` under `base` for a replica at `have`.
pub fn sync_url(base: &str, name: &str, have: Option<Address>) -> String {
    let mut url = format!(
        "{}/sync/{}",
        base.trim_end_matches('/'),
        http_wire::encode_segment(name)
    );
    if let Some(have) = have {
        url.push_str(&format!("?have={have}"));
    }
    url
}

/// The URL of the server's capabilities under `base`.
pub fn capabilities_url(base: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), http_wire::CAPABILITIES)
}

/// Whether a `GET /capabilities` answer offers one-round-trip sync. Anything that is not
/// the capabilities document (a static host's page, another service) offers nothing.
pub fn offers_sync(text: &str) -> bool {
    serde_json::from_str::<http_wire::CapabilitiesJson>(text).is_ok_and(|c| c.sync)
}

/// Reads a sync answer: the head from its headers (`head_commit`, `head_version`,
/// `complete`, as `datoms serve` sends them) and the framed body.
///
/// # Errors
/// [`ReplicaError::BadSync`] naming `url` and what is wrong: a missing header, a head that
/// is not an address, a cut or malformed frame, a blob marked absent.
pub fn parse_bundle(
    url: &str,
    head_commit: Option<String>,
    head_version: Option<String>,
    complete: Option<String>,
    body: Vec<u8>,
) -> Result<Bundle, ReplicaError> {
    let bad = |reason: String| ReplicaError::BadSync {
        url: url.to_owned(),
        reason,
    };
    let commit =
        head_commit.ok_or_else(|| bad(format!("no {} header", http_wire::HEAD_COMMIT_HEADER)))?;
    let commit = commit
        .parse()
        .map_err(|_| bad(format!("head commit {commit:?} is not an address")))?;
    let blobs = http_wire::decode_frames(body.into())
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .map(|(a, b)| {
            b.map(|b| (a, b.to_vec()))
                .ok_or_else(|| bad(format!("blob {a} marked absent")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Bundle {
        head: RemoteHead {
            commit,
            version: head_version.map(|v| http_wire::unquote(&v).to_owned()),
        },
        blobs,
        complete: complete.is_some_and(|c| c == "true"),
    })
}

#[derive(Deserialize)]
struct HeadDocument {
    commit: String,
    #[serde(default)]
    version: Option<serde_json::Value>,
}

/// Reads a head document, `{"commit": "<address>", "version": "<opaque>"}` (the version
/// may be a string or a number; it is kept as text).
///
/// # Errors
/// [`ReplicaError::BadHead`] naming `url` and what is wrong.
pub fn parse_head(url: &str, text: &str) -> Result<RemoteHead, ReplicaError> {
    let bad = |reason: String| ReplicaError::BadHead {
        url: url.to_owned(),
        reason,
    };
    let doc: HeadDocument = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let commit = doc
        .commit
        .parse()
        .map_err(|_| bad(format!("commit {:?} is not an address", doc.commit)))?;
    let version = match doc.version {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    Ok(RemoteHead { commit, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_documents_parse_and_bad_ones_say_why() {
        let a = Address::of(b"x");
        let head = parse_head("u", &format!(r#"{{"commit":"{a}","version":"7"}}"#));
        assert_eq!(
            head.ok(),
            Some(RemoteHead {
                commit: a,
                version: Some("7".into())
            })
        );
        let head = parse_head("u", &format!(r#"{{"commit":"{a}","version":7}}"#));
        assert_eq!(head.ok().and_then(|h| h.version), Some("7".into()));
        for bad in ["", "{}", r#"{"commit":"zz"}"#, "[1]"] {
            assert!(
                matches!(parse_head("u", bad), Err(ReplicaError::BadHead { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn urls_join_the_base_and_encode_head_names() {
        let a = Address::of(b"x");
        assert_eq!(
            blob_url("http://h/db/", &a),
            format!("http://h/db/blobs/{a}")
        );
        assert_eq!(
            head_url("http://h/db", "tenants/ä b"),
            "http://h/db/heads/tenants%2F%C3%A4%20b"
        );
    }
}
