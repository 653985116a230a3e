//! [`RemoteStorage`]: datoms-storage's [`Storage`] over `datoms serve`'s HTTP API with
//! the JavaScript runtime's `fetch` — what the peer in WebAssembly writes through
//! (`backend-http` is its native twin, on reqwest).
//!
//! - blobs: `POST /blobs:get` (a batch, framed answer), `POST /blobs` (framed, the
//!   token), `GET /blobs?after=&limit=`, `POST /blobs:delete`;
//! - heads: `GET /heads/{name}`, `GET /heads`, and the compare-and-swap
//!   `PUT /heads/{name}` with `If-Match: "<version>"` (or `If-None-Match: *` to create),
//!   whose `412` carries the current head ([`StorageError::HeadConflict`]);
//!   `DELETE /heads/{name}` with `If-Match`.
//!
//! Failed requests (network down, a stopped server) and `5xx`/`429` answers are
//! [`StorageError::Transient`], so the drivers retry them and a peer's push keeps its
//! outbox for later. A head `PUT` whose answer is lost is "moved or not", as the trait
//! allows: the peer's exactly-once check reads the commits in between before it pushes
//! again.
//!
//! In WebAssembly there is one thread; `fetch`'s futures are not `Send`, and the trait
//! asks for `Send` futures (natively, drivers spawn them), so each request runs inside a
//! [`SendWrapper`], which would panic if ever polled from another thread — there is none.

use std::cell::Cell;
use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use datoms_core::Address;
use datoms_storage::{BlobStamp, Capabilities, Head, Storage, StorageError, Version};
use http_wire::{
    AddressList, BlobStampList, DeleteStaleJson, ErrorBody, HeadJson, HeadListJson, PutHeadJson,
};
use js_sys::{Function, Object, Reflect, Uint8Array};
use send_wrapper::SendWrapper;
use wasm_bindgen::JsValue;

use crate::js::{bytes_of, send, Response};

/// The most addresses or blobs per batched request (`datoms serve` takes 4096 by
/// default).
const MAX_BATCH: usize = 1024;

/// [`Storage`] over `datoms serve` at a base URL, with `fetch` (see the module docs).
pub struct RemoteStorage {
    inner: SendWrapper<Remote>,
}

struct Remote {
    base: String,
    fetch: Option<Function>,
    token: Option<String>,
    requests: Cell<u64>,
}

impl fmt::Debug for RemoteStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteStorage")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl RemoteStorage {
    /// The storage served at `base` (`http://host:port`, or with a path prefix), read and
    /// written with `fetch` (the global one if `None`), with the bearer `token` when
    /// given (writes need it; reads too unless the server has `--public-reads`).
    pub fn new(base: &str, fetch: Option<Function>, token: Option<String>) -> RemoteStorage {
        RemoteStorage {
            inner: SendWrapper::new(Remote {
                base: base.trim_end_matches('/').to_owned(),
                fetch,
                token,
                requests: Cell::new(0),
            }),
        }
    }

    /// Requests made so far.
    pub fn requests(&self) -> u64 {
        self.inner.requests.get()
    }
}

/// A request body.
enum Body {
    Json(String),
    Bytes(Bytes),
}

impl Remote {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; a failure to get any answer is transient.
    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Body>,
    ) -> Result<Response, StorageError> {
        self.requests.set(self.requests.get() + 1);
        let url = self.url(path);
        let init = Object::new();
        let set = |o: &Object, k: &str, v: &JsValue| {
            Reflect::set(o, &JsValue::from_str(k), v)
                .map(|_| ())
                .map_err(|_| {
                    StorageError::backend(format!("{method} {url}: cannot build the request"))
                })
        };
        set(&init, "method", &JsValue::from_str(method))?;
        let head = Object::new();
        for (k, v) in headers {
            set(&head, k, &JsValue::from_str(v))?;
        }
        if let Some(token) = &self.token {
            set(
                &head,
                "authorization",
                &JsValue::from_str(&format!("Bearer {token}")),
            )?;
        }
        match body {
            Some(Body::Json(text)) => {
                set(
                    &head,
                    "content-type",
                    &JsValue::from_str("application/json"),
                )?;
                set(&init, "body", &JsValue::from_str(&text))?;
            }
            Some(Body::Bytes(bytes)) => {
                set(
                    &head,
                    "content-type",
                    &JsValue::from_str(http_wire::FRAMED_CONTENT_TYPE),
                )?;
                set(&init, "body", &Uint8Array::from(&bytes[..]))?;
            }
            None => {}
        }
        set(&init, "headers", &head)?;
        send(self.fetch.as_ref(), &url, Some(&init))
            .await
            .map_err(|reason| StorageError::Transient {
                reason: format!("{method} {url}: {reason}"),
            })
    }

    /// The body of a response, or the typed error of a failed one (`what` names the
    /// operation). `name` is the head for head operations (a `412` is a conflict on it).
    async fn body(
        &self,
        what: &str,
        name: Option<&str>,
        response: Response,
    ) -> Result<Vec<u8>, StorageError> {
        let status = response.status();
        let url = &self.base;
        let body = bytes_of(url, &response)
            .await
            .map_err(|e| StorageError::Transient {
                reason: format!("{what}: {e}"),
            })?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(error_of(what, url, name, status, &body)?)
    }

    async fn get_many(&self, addresses: Vec<Address>) -> Result<Vec<Option<Bytes>>, StorageError> {
        let body =
            serde_json::to_string(&AddressList::of(&addresses)).map_err(StorageError::backend)?;
        let response = self
            .request("POST", http_wire::BLOBS_GET, &[], Some(Body::Json(body)))
            .await?;
        let framed = self.body("get_many", None, response).await?;
        let frames =
            http_wire::decode_frames(framed.into()).map_err(|e| StorageError::Transient {
                reason: format!("get_many: {e}"),
            })?;
        if frames.len() != addresses.len()
            || frames.iter().zip(&addresses).any(|((a, _), b)| a != b)
        {
            return Err(StorageError::backend(
                "get_many: the answer's frames do not match the addresses asked for",
            ));
        }
        Ok(frames.into_iter().map(|(_, b)| b).collect())
    }

    async fn put_many(&self, blobs: Vec<(Address, Bytes)>) -> Result<(), StorageError> {
        let framed = http_wire::encode_frames(blobs.iter().map(|(a, b)| (*a, Some(&b[..]))))
            .map_err(StorageError::backend)?;
        let response = self
            .request("POST", http_wire::BLOBS, &[], Some(Body::Bytes(framed)))
            .await?;
        self.body("put_many", None, response).await.map(|_| ())
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        let path = format!("/heads/{}", http_wire::encode_segment(name));
        let response = self.request("GET", &path, &[], None).await?;
        if response.status() == 404 {
            return Ok(None);
        }
        let body = self.body("get_head", Some(name), response).await?;
        let head: HeadJson = serde_json::from_slice(&body).map_err(StorageError::backend)?;
        head_of(&head).map(Some)
    }

    async fn cas_head(
        &self,
        name: &str,
        expected: Option<Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        let path = format!("/heads/{}", http_wire::encode_segment(name));
        let condition = match &expected {
            Some(v) => ("if-match", http_wire::etag(&v.0)),
            None => ("if-none-match", "*".to_owned()),
        };
        let body = serde_json::to_string(&PutHeadJson {
            commit: new.to_string(),
        })
        .map_err(StorageError::backend)?;
        let response = self
            .request("PUT", &path, &[condition], Some(Body::Json(body)))
            .await?;
        let body = self.body("cas_head", Some(name), response).await?;
        let head: HeadJson = serde_json::from_slice(&body).map_err(StorageError::backend)?;
        Ok(Version(head.version))
    }

    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        let response = self.request("GET", http_wire::HEADS, &[], None).await?;
        let body = self.body("list_heads", None, response).await?;
        let list: HeadListJson = serde_json::from_slice(&body).map_err(StorageError::backend)?;
        list.heads
            .into_iter()
            .map(|h| {
                let head = head_of(&HeadJson {
                    commit: h.commit,
                    version: h.version,
                })?;
                Ok((h.name, head))
            })
            .collect()
    }

    async fn delete_head(&self, name: &str, expected: Version) -> Result<(), StorageError> {
        let path = format!("/heads/{}", http_wire::encode_segment(name));
        let response = self
            .request(
                "DELETE",
                &path,
                &[("if-match", http_wire::etag(&expected.0))],
                None,
            )
            .await?;
        self.body("delete_head", Some(name), response)
            .await
            .map(|_| ())
    }

    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        let mut path = format!("{}?limit={limit}", http_wire::BLOBS);
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let response = self.request("GET", &path, &[], None).await?;
        let body = self.body("list_blobs", None, response).await?;
        let list: AddressList = serde_json::from_slice(&body).map_err(StorageError::backend)?;
        list.parse()
            .map_err(|a| StorageError::backend(format!("list_blobs: {a:?} is not an address")))
    }

    async fn delete_many(&self, addresses: Vec<Address>) -> Result<(), StorageError> {
        let body =
            serde_json::to_string(&AddressList::of(&addresses)).map_err(StorageError::backend)?;
        let response = self
            .request("POST", http_wire::BLOBS_DELETE, &[], Some(Body::Json(body)))
            .await?;
        self.body("delete_many", None, response).await.map(|_| ())
    }

    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError> {
        let mut path = format!("{}?limit={limit}", http_wire::BLOB_STAMPS);
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let response = self.request("GET", &path, &[], None).await?;
        let body = self.body("list_blob_stamps", None, response).await?;
        let list: BlobStampList = serde_json::from_slice(&body).map_err(StorageError::backend)?;
        list.blobs
            .iter()
            .map(|b| {
                let address = b.address.parse().map_err(|_| {
                    StorageError::backend(format!(
                        "list_blob_stamps: {:?} is not an address",
                        b.address
                    ))
                })?;
                Ok(BlobStamp {
                    address,
                    written: BlobStamp::from_millis(b.written_ms),
                    len: b.len,
                })
            })
            .collect()
    }

    async fn delete_stale(
        &self,
        addresses: Vec<Address>,
        written_before: std::time::SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        let request = DeleteStaleJson {
            addresses: addresses.iter().map(Address::to_hex).collect(),
            written_before_ms: BlobStamp::millis(written_before),
        };
        let body = serde_json::to_string(&request).map_err(StorageError::backend)?;
        let response = self
            .request(
                "POST",
                http_wire::BLOBS_DELETE_STALE,
                &[],
                Some(Body::Json(body)),
            )
            .await?;
        let body = self.body("delete_stale", None, response).await?;
        let list: AddressList = serde_json::from_slice(&body).map_err(StorageError::backend)?;
        list.parse()
            .map_err(|a| StorageError::backend(format!("delete_stale: {a:?} is not an address")))
    }
}

/// The typed error of a failed answer (`status`, its `body`) to operation `what` on the
/// server at `url`; `name` is the head of a head operation (a `412` is a conflict on it).
/// `Err` only when a conflict's current head is malformed.
fn error_of(
    what: &str,
    url: &str,
    name: Option<&str>,
    status: u16,
    body: &[u8],
) -> Result<StorageError, StorageError> {
    let error: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let message = error.as_ref().map_or_else(
        || String::from_utf8_lossy(body).into_owned(),
        |e| e.message.clone(),
    );
    let transient = || StorageError::Transient {
        reason: format!("{what} at {url}: HTTP {status}: {message}"),
    };
    Ok(match (status, name, &error) {
        (412, Some(name), Some(e)) => StorageError::HeadConflict {
            name: name.to_owned(),
            current: e
                .current
                .clone()
                .flatten()
                .map(|h| head_of(&h))
                .transpose()?,
        },
        (_, _, Some(e)) if e.error == "corrupt_storage" => StorageError::Corrupt {
            what: format!("datoms serve at {url}"),
            reason: message,
        },
        (403, _, Some(e)) if e.error == "read_only" => StorageError::ReadOnly {
            what: format!("datoms serve at {url}"),
            operation: what.to_owned(),
        },
        (_, _, Some(e)) if e.error == "storage" => {
            StorageError::backend(format!("{what} at {url}: HTTP {status}: {message}"))
        }
        // A proxy's answer (no typed body) or the server's: busy, or failing for now.
        (429 | 500..=599, _, _) => transient(),
        _ => StorageError::backend(format!("{what} at {url}: HTTP {status}: {message}")),
    })
}

/// A head of the wire as a storage head.
fn head_of(h: &HeadJson) -> Result<Head, StorageError> {
    Ok(Head {
        commit: h.commit.parse().map_err(|_| {
            StorageError::backend(format!("head commit {:?} is not an address", h.commit))
        })?,
        version: Version(h.version.clone()),
    })
}

#[async_trait]
impl Storage for RemoteStorage {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        SendWrapper::new(self.inner.get_many(addresses.to_vec())).await
    }

    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        SendWrapper::new(self.inner.put_many(blobs.to_vec())).await
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        SendWrapper::new(self.inner.get_head(name)).await
    }

    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        SendWrapper::new(self.inner.cas_head(name, expected.cloned(), new)).await
    }

    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        SendWrapper::new(self.inner.list_heads()).await
    }

    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        SendWrapper::new(self.inner.delete_head(name, expected.clone())).await
    }

    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        SendWrapper::new(self.inner.list_blobs(after, limit)).await
    }

    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        SendWrapper::new(self.inner.delete_many(addresses.to_vec())).await
    }

    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError> {
        SendWrapper::new(self.inner.list_blob_stamps(after, limit)).await
    }

    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: std::time::SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        SendWrapper::new(self.inner.delete_stale(addresses.to_vec(), written_before)).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_batch: MAX_BATCH,
            concurrency: 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: &str, current: Option<&str>) -> Vec<u8> {
        let mut v = serde_json::json!({"error": kind, "message": "said the server"});
        if let Some(c) = current {
            v["current"] = serde_json::from_str(c).unwrap_or_default();
        }
        v.to_string().into_bytes()
    }

    #[test]
    fn answers_map_to_the_storage_errors_the_drivers_expect() -> Result<(), StorageError> {
        let a = Address::of(b"x");
        let current = format!(r#"{{"commit":"{a}","version":"7"}}"#);
        let conflict = error_of(
            "cas_head",
            "u",
            Some("main"),
            412,
            &body("head_conflict", Some(&current)),
        )?;
        assert!(
            matches!(&conflict, StorageError::HeadConflict { name, current: Some(h) }
                if name == "main" && h.commit == a && h.version.0 == "7"),
            "{conflict:?}"
        );
        let absent = error_of(
            "cas_head",
            "u",
            Some("main"),
            412,
            &body("head_conflict", Some("null")),
        )?;
        assert!(
            matches!(absent, StorageError::HeadConflict { current: None, .. }),
            "{absent:?}"
        );
        assert!(error_of(
            "cas_head",
            "u",
            Some("main"),
            412,
            &body("head_conflict", Some(r#"{"commit":"zz","version":"1"}"#))
        )
        .is_err());
        for (status, kind) in [(503, "unavailable"), (500, "internal"), (429, "busy")] {
            assert!(
                error_of("get_many", "u", None, status, &body(kind, None))?.is_transient(),
                "{status}"
            );
        }
        assert!(error_of("get_many", "u", None, 502, b"<html>bad gateway</html>")?.is_transient());
        assert!(!error_of("get_many", "u", None, 500, &body("storage", None))?.is_transient());
        assert!(matches!(
            error_of("get_many", "u", None, 500, &body("corrupt_storage", None))?,
            StorageError::Corrupt { .. }
        ));
        assert!(matches!(
            error_of("put_many", "u", None, 403, &body("read_only", None))?,
            StorageError::ReadOnly { operation, .. } if operation == "put_many"
        ));
        let unauthorized = error_of("put_many", "u", None, 401, &body("unauthorized", None))?;
        assert!(!unauthorized.is_transient());
        assert!(
            unauthorized.to_string().contains("said the server"),
            "{unauthorized}"
        );
        Ok(())
    }
}
