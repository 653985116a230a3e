//! `http-wire`: the HTTP API of `datoms serve`, in one place for the server
//! (`datoms-server`) and the client (`backend-http`): route paths, header names, the
//! JSON bodies, and the binary framing of many blobs in one body ([`frame`]).
//!
//! The API itself is documented in `docs/design.md` ("Serving over HTTP").

pub mod frame;
pub mod json;

pub use frame::{decode_frames, encode_frames, FrameError, MISSING};
pub use json::{
    AddressList, BlobStampJson, BlobStampList, CapabilitiesJson, DeleteStaleJson, ErrorBody,
    HeadJson, HeadListJson, MovedJson, NamedHeadJson, PutHeadJson,
};

/// `GET /capabilities`: what the server offers ([`CapabilitiesJson`]).
pub const CAPABILITIES: &str = "/capabilities";
/// `GET /blobs/{address}` (one blob), `PUT /blobs/{address}` (one blob).
pub const BLOB: &str = "/blobs/{address}";
/// `GET /blobs?after=ADDRESS&limit=N` (a page of the listing), `POST /blobs` (many
/// blobs, framed).
pub const BLOBS: &str = "/blobs";
/// `POST /blobs:get`: many blobs by address in one request (framed response).
pub const BLOBS_GET: &str = "/blobs:get";
/// `POST /blobs:delete`: deletes blobs by address.
pub const BLOBS_DELETE: &str = "/blobs:delete";
/// `GET /blobs:stamps?after=ADDRESS&limit=N`: a page of the listing with each blob's
/// write stamp and size ([`BlobStampList`]), for garbage collection. Needs the write
/// token.
pub const BLOB_STAMPS: &str = "/blobs:stamps";
/// `POST /blobs:delete-stale`: deletes the listed blobs still written before a time
/// ([`DeleteStaleJson`]), answering the addresses deleted ([`AddressList`]). Needs the
/// write token.
pub const BLOBS_DELETE_STALE: &str = "/blobs:delete-stale";
/// `GET /heads`: every head, in name order ([`HeadListJson`]).
pub const HEADS: &str = "/heads";
/// `GET /heads/{name}`, `PUT /heads/{name}` (the compare-and-swap), `DELETE
/// /heads/{name}` with `If-Match` (the compare-and-delete).
pub const HEAD: &str = "/heads/{name}";
/// `GET /heads/{name}/watch`: server-sent events, one per move of the head.
pub const HEAD_WATCH: &str = "/heads/{name}/watch";
/// `GET /watch`: server-sent events, one per move of any head.
pub const WATCH: &str = "/watch";
/// `GET /sync/{name}?have=COMMIT`: one-round-trip sync (framed response).
pub const SYNC: &str = "/sync/{name}";

/// Response header of `GET /sync/…`: the head's commit (lowercase hex).
pub const HEAD_COMMIT_HEADER: &str = "datoms-head-commit";
/// Response header of `GET /sync/…`: the head's version.
pub const HEAD_VERSION_HEADER: &str = "datoms-head-version";
/// Response header of `GET /sync/…`: `true`, or `false` when the server cut the bundle
/// at its size limit (the client fetches the rest through the blob API).
pub const SYNC_COMPLETE_HEADER: &str = "datoms-sync-complete";

/// The content type of framed bodies.
pub const FRAMED_CONTENT_TYPE: &str = "application/x-datoms-blobs";

/// The `ETag` of a head version or a blob address: the text in double quotes.
pub fn etag(text: &str) -> String {
    format!("\"{text}\"")
}

/// The text of an `ETag`, `If-Match` or `If-None-Match` value: its double quotes (and
/// a weak `W/` prefix) taken off; a bare value is taken as it is.
pub fn unquote(value: &str) -> &str {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// A head name as one path segment: every byte but unreserved ASCII percent-encoded.
pub fn encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_round_trip() {
        assert_eq!(unquote(&etag("17")), "17");
        assert_eq!(unquote("W/\"17\""), "17");
        assert_eq!(unquote("17"), "17");
    }

    #[test]
    fn segments_escape_everything_but_unreserved() {
        assert_eq!(encode_segment("main"), "main");
        assert_eq!(encode_segment("a/b c%"), "a%2Fb%20c%25");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }
}
