//! The JSON bodies of the API.

use datoms_core::Address;
use serde::{Deserialize, Serialize};

/// A head: `{"commit": "<address>", "version": "<opaque>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadJson {
    /// The commit, lowercase hex.
    pub commit: String,
    /// The head's version, opaque (compare for equality only).
    pub version: String,
}

/// One head of a listing: `{"name": …, "commit": …, "version": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedHeadJson {
    /// The head's name.
    pub name: String,
    /// The commit, lowercase hex.
    pub commit: String,
    /// The head's version, opaque.
    pub version: String,
}

/// `GET /heads`: `{"heads": [{"name": …, "commit": …, "version": …}, …]}`, in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadListJson {
    /// The heads.
    pub heads: Vec<NamedHeadJson>,
}

/// The body of `PUT /heads/{name}`: `{"commit": "<address>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutHeadJson {
    /// The commit to move the head to.
    pub commit: String,
}

/// A list of addresses: `{"addresses": ["<address>", …]}` (`POST /blobs:get`,
/// `POST /blobs:delete`, and the page of `GET /blobs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressList {
    /// Lowercase hex addresses.
    pub addresses: Vec<String>,
}

impl AddressList {
    /// The list of `addresses`.
    pub fn of(addresses: &[Address]) -> AddressList {
        AddressList {
            addresses: addresses.iter().map(Address::to_hex).collect(),
        }
    }

    /// The addresses, parsed.
    ///
    /// # Errors
    /// The first entry that is not a 64-digit hex address.
    pub fn parse(&self) -> Result<Vec<Address>, String> {
        self.addresses
            .iter()
            .map(|a| a.parse().map_err(|_| a.clone()))
            .collect()
    }
}

/// One blob of a [`BlobStampList`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobStampJson {
    /// Lowercase hex address.
    pub address: String,
    /// When it was last written, milliseconds since the Unix epoch.
    pub written_ms: u64,
    /// Its size in bytes.
    pub len: u64,
}

/// A page of `GET /blobs:stamps`: `{"blobs": [{"address", "written_ms", "len"}, …]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobStampList {
    /// The blobs, in address order.
    pub blobs: Vec<BlobStampJson>,
}

/// The body of `POST /blobs:delete-stale`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteStaleJson {
    /// Lowercase hex addresses.
    pub addresses: Vec<String>,
    /// Only blobs last written before this (milliseconds since the Unix epoch) go.
    pub written_before_ms: u64,
}

/// `GET /capabilities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitiesJson {
    /// `GET /sync/{name}?have=` is served.
    pub sync: bool,
    /// `GET /watch` and `GET /heads/{name}/watch` are served.
    pub watch: bool,
    /// Writes are accepted (with the token).
    pub writes: bool,
    /// Reads need no token.
    pub public_reads: bool,
    /// The most addresses or blobs per batched request.
    pub max_batch: usize,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
}

/// Every error: `{"error": "<kind>", "message": "…"}`, with the current head for a
/// failed compare-and-swap (`head_conflict`, `null` when the head does not exist).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The kind, a stable snake_case word (`not_found`, `head_conflict`, `bad_address`,
    /// `unauthorized`, `body_too_large`, …; listed in the design record).
    pub error: String,
    /// For people.
    pub message: String,
    /// `head_conflict` only: where the head is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Option<HeadJson>>,
}

/// An event of `GET /watch`: the head that moved (`null` when the server only knows
/// that some head moved).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedJson {
    /// The head's name.
    pub name: Option<String>,
}
