//! Where a replica's bytes come from: the [`Fetcher`] trait (a blob by address, a head by
//! name), and the head document of the HTTP API.
//!
//! The HTTP API (what `datoms serve` and any static host of an exported directory answer):
//! - `GET {base}/blobs/{address}` — the blob's bytes, 404 if absent; immutable, so any
//!   cache may keep it forever;
//! - `GET {base}/heads/{name}` — `{"commit": "<address>", "version": "<opaque>"}`, 404 if
//!   the head does not exist.

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
        encode_segment(name)
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
