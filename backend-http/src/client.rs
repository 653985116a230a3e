//! [`Core`]: the requests, on the storage's runtime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use datoms_core::Address;
use datoms_storage::{BlobStamp, Head, StorageError, SyncBundle, Version};
use http_wire::{
    AddressList, BlobStampList, CapabilitiesJson, DeleteStaleJson, HeadJson, PutHeadJson,
};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, IF_MATCH, IF_NONE_MATCH};
use reqwest::{RequestBuilder, StatusCode};
use tokio::sync::Semaphore;

use crate::errors::{answer_error, head_of, map_error, read_error, transport, worth_repeating};
use crate::options::HttpOptions;

/// The bytes of a frame besides its blob (address and length).
const FRAME_OVERHEAD: usize = 36;

/// The client and what it knows of its server.
pub(crate) struct Core {
    pub(crate) options: HttpOptions,
    pub(crate) server: CapabilitiesJson,
    pub(crate) http: reqwest::Client,
    permits: Semaphore,
    /// Requests sent, repeats included (the watch stream not).
    pub(crate) sent: AtomicU64,
}

/// Whether a request may be sent again after a failure that leaves its effect unknown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Yes,
    No,
}

impl Core {
    /// A client for `options` and the server's capabilities.
    pub(crate) async fn connect(options: HttpOptions) -> Result<Core, StorageError> {
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60));
        for pem in &options.root_certificates {
            let certificate = reqwest::Certificate::from_pem(pem).map_err(|e| {
                StorageError::backend(format!("a root certificate that is not PEM: {e}"))
            })?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|e| StorageError::backend(format!("cannot build an HTTP client: {e}")))?;
        let mut core = Core {
            permits: Semaphore::new(options.max_in_flight.max(1)),
            options,
            server: CapabilitiesJson {
                sync: false,
                watch: false,
                writes: false,
                public_reads: false,
                max_batch: 1,
                max_body_bytes: 1,
            },
            http,
            sent: AtomicU64::new(0),
        };
        let response = core
            .send("capabilities", Repeat::Yes, |c, url| {
                c.get(url(http_wire::CAPABILITIES))
            })
            .await?;
        core.server = core.json("capabilities", response).await?;
        tracing::debug!(base = %core.options.base, server = ?core.server, "connected");
        Ok(core)
    }

    /// The most blobs or addresses per request.
    pub(crate) fn max_batch(&self) -> usize {
        self.server.max_batch.max(1)
    }

    /// The URL of `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.options.base)
    }

    /// Sends the request `build` makes (with the token), repeating it after a 5xx, a
    /// timeout or a failed connection when `repeat` allows. Returns any answer; the
    /// caller reads its status.
    async fn send(
        &self,
        what: &str,
        repeat: Repeat,
        build: impl Fn(&reqwest::Client, &dyn Fn(&str) -> String) -> RequestBuilder,
    ) -> Result<reqwest::Response, StorageError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StorageError::backend("the HTTP storage is closed"))?;
        let url = |path: &str| self.url(path);
        let mut wait = self.options.backoff;
        let mut tries = 0;
        loop {
            let mut request = build(&self.http, &url);
            if let Some(token) = &self.options.token {
                request = request.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            self.sent.fetch_add(1, Ordering::Relaxed);
            let result = request.send().await;
            if repeat == Repeat::Yes && tries < self.options.retries && worth_repeating(&result) {
                tries += 1;
                tracing::debug!(what, tries, "repeating a request after a 5xx or a timeout");
                tokio::time::sleep(wait).await;
                wait *= 2;
                continue;
            }
            return result.map_err(|e| transport(what, &e));
        }
    }

    /// The JSON of a successful answer, or its error.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        response: reqwest::Response,
    ) -> Result<T, StorageError> {
        if !response.status().is_success() {
            return Err(answer_error(what, &self.options.base, response).await);
        }
        let bytes = self.body(what, response).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            StorageError::backend(format!("{what}: the server's JSON is malformed: {e}"))
        })
    }

    /// The body of a successful answer, or its error.
    async fn body(&self, what: &str, response: reqwest::Response) -> Result<Bytes, StorageError> {
        if !response.status().is_success() {
            return Err(answer_error(what, &self.options.base, response).await);
        }
        response.bytes().await.map_err(|e| transport(what, &e))
    }

    pub(crate) async fn get_many(
        &self,
        addresses: &[Address],
    ) -> Result<Vec<Option<Bytes>>, StorageError> {
        let mut out = Vec::with_capacity(addresses.len());
        for chunk in addresses.chunks(self.max_batch()) {
            let body = serde_json::to_vec(&AddressList::of(chunk))
                .map_err(|e| StorageError::backend(e.to_string()))?;
            let response = self
                .send("get_many", Repeat::Yes, |c, url| {
                    c.post(url(http_wire::BLOBS_GET))
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.clone())
                })
                .await?;
            let framed = self.body("get_many", response).await?;
            let frames = http_wire::decode_frames(framed).map_err(|e| StorageError::Transient {
                reason: format!("get_many: {e}"),
            })?;
            if frames.len() != chunk.len() || frames.iter().zip(chunk).any(|((a, _), b)| a != b) {
                return Err(StorageError::backend(
                    "get_many: the server answered other addresses than those asked for",
                ));
            }
            out.extend(frames.into_iter().map(|(_, b)| b));
        }
        Ok(out)
    }

    pub(crate) async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        let limit = self.server.max_body_bytes;
        let mut start = 0;
        while start < blobs.len() {
            // As many blobs as the batch and body limits let into one request.
            let (mut end, mut size) = (start, 0usize);
            while end < blobs.len() && end - start < self.max_batch() {
                let next = FRAME_OVERHEAD + blobs[end].1.len();
                if end > start && size + next > limit {
                    break;
                }
                size += next;
                end += 1;
            }
            if size > limit {
                return Err(StorageError::backend(format!(
                    "put_many: blob {} is {} bytes, more than the server's body limit of {limit}",
                    blobs[start].0,
                    blobs[start].1.len()
                )));
            }
            let body =
                http_wire::encode_frames(blobs[start..end].iter().map(|(a, b)| (*a, Some(&b[..]))))
                    .map_err(|e| StorageError::backend(format!("put_many: {e}")))?;
            let response = self
                .send("put_many", Repeat::Yes, |c, url| {
                    c.post(url(http_wire::BLOBS))
                        .header(CONTENT_TYPE, http_wire::FRAMED_CONTENT_TYPE)
                        .body(body.clone())
                })
                .await?;
            self.body("put_many", response).await?;
            start = end;
        }
        Ok(())
    }

    fn head_path(name: &str) -> String {
        format!("/heads/{}", http_wire::encode_segment(name))
    }

    pub(crate) async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        let path = Core::head_path(name);
        let response = self
            .send("get_head", Repeat::Yes, |c, url| c.get(url(&path)))
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            // A missing head is an answer; a missing route (a wrong URL) is not.
            return match read_error(response).await {
                (_, Some(body)) if body.error == "no_head" => Ok(None),
                (status, body) => Err(map_error("get_head", &self.options.base, status, body)),
            };
        }
        let json: HeadJson = self.json("get_head", response).await?;
        head_of(&json).map(Some)
    }

    pub(crate) async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        let path = Core::head_path(name);
        let body = serde_json::to_vec(&PutHeadJson {
            commit: new.to_hex(),
        })
        .map_err(|e| StorageError::backend(e.to_string()))?;
        // Never repeated: a CAS whose answer was lost may have landed.
        let response = self
            .send("cas_head", Repeat::No, |c, url| {
                let request = c
                    .put(url(&path))
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
                match expected {
                    Some(v) => request.header(IF_MATCH, http_wire::etag(&v.0)),
                    None => request.header(IF_NONE_MATCH, "*"),
                }
            })
            .await?;
        if response.status() == StatusCode::PRECONDITION_FAILED {
            return Err(
                match answer_error(name, &self.options.base, response).await {
                    StorageError::HeadConflict { current, .. } => StorageError::HeadConflict {
                        name: name.to_owned(),
                        current,
                    },
                    other => other,
                },
            );
        }
        let json: HeadJson = self.json("cas_head", response).await?;
        Ok(head_of(&json)?.version)
    }

    pub(crate) async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        let response = self
            .send("list_heads", Repeat::Yes, |c, url| {
                c.get(url(http_wire::HEADS))
            })
            .await?;
        let list: http_wire::HeadListJson = self.json("list_heads", response).await?;
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

    pub(crate) async fn delete_head(
        &self,
        name: &str,
        expected: &Version,
    ) -> Result<(), StorageError> {
        let path = Core::head_path(name);
        // Never repeated, as a CAS: a delete whose answer was lost may have landed.
        let response = self
            .send("delete_head", Repeat::No, |c, url| {
                c.delete(url(&path))
                    .header(IF_MATCH, http_wire::etag(&expected.0))
            })
            .await?;
        if response.status() == StatusCode::PRECONDITION_FAILED {
            return Err(
                match answer_error(name, &self.options.base, response).await {
                    StorageError::HeadConflict { current, .. } => StorageError::HeadConflict {
                        name: name.to_owned(),
                        current,
                    },
                    other => other,
                },
            );
        }
        self.body("delete_head", response).await?;
        Ok(())
    }

    pub(crate) async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        let mut query = vec![("limit", limit.min(self.max_batch()).to_string())];
        if let Some(a) = after {
            query.push(("after", a.to_hex()));
        }
        let response = self
            .send("list_blobs", Repeat::Yes, |c, url| {
                c.get(url(http_wire::BLOBS)).query(&query)
            })
            .await?;
        let list: AddressList = self.json("list_blobs", response).await?;
        list.parse().map_err(|a| {
            StorageError::backend(format!(
                "list_blobs: the server listed {a:?}, not an address"
            ))
        })
    }

    pub(crate) async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        for chunk in addresses.chunks(self.max_batch()) {
            let body = serde_json::to_vec(&AddressList::of(chunk))
                .map_err(|e| StorageError::backend(e.to_string()))?;
            let response = self
                .send("delete_many", Repeat::Yes, |c, url| {
                    c.post(url(http_wire::BLOBS_DELETE))
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.clone())
                })
                .await?;
            self.body("delete_many", response).await?;
        }
        Ok(())
    }

    pub(crate) async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError> {
        let mut query = vec![("limit", limit.min(self.max_batch()).to_string())];
        if let Some(a) = after {
            query.push(("after", a.to_hex()));
        }
        let response = self
            .send("list_blob_stamps", Repeat::Yes, |c, url| {
                c.get(url(http_wire::BLOB_STAMPS)).query(&query)
            })
            .await?;
        let list: BlobStampList = self.json("list_blob_stamps", response).await?;
        list.blobs
            .iter()
            .map(|b| {
                let address = b.address.parse().map_err(|_| {
                    StorageError::backend(format!(
                        "list_blob_stamps: the server listed {:?}, not an address",
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

    pub(crate) async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        let mut deleted = Vec::new();
        for chunk in addresses.chunks(self.max_batch()) {
            let request = DeleteStaleJson {
                addresses: chunk.iter().map(Address::to_hex).collect(),
                written_before_ms: BlobStamp::millis(written_before),
            };
            let body =
                serde_json::to_vec(&request).map_err(|e| StorageError::backend(e.to_string()))?;
            let response = self
                .send("delete_stale", Repeat::Yes, |c, url| {
                    c.post(url(http_wire::BLOBS_DELETE_STALE))
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.clone())
                })
                .await?;
            let list: AddressList = self.json("delete_stale", response).await?;
            deleted.extend(list.parse().map_err(|a| {
                StorageError::backend(format!(
                    "delete_stale: the server answered {a:?}, not an address"
                ))
            })?);
        }
        Ok(deleted)
    }

    pub(crate) async fn sync_bundle(
        &self,
        name: &str,
        have: Option<Address>,
    ) -> Result<SyncBundle, StorageError> {
        let path = format!("/sync/{}", http_wire::encode_segment(name));
        let query: Vec<(&str, String)> = have.map(|a| ("have", a.to_hex())).into_iter().collect();
        let response = self
            .send("sync", Repeat::Yes, |c, url| {
                c.get(url(&path)).query(&query)
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(match read_error(response).await {
                (_, Some(body)) if body.error == "no_head" => StorageError::NoHead {
                    name: name.to_owned(),
                },
                (status, body) => map_error("sync", &self.options.base, status, body),
            });
        }
        let header = |h: &str| -> Result<String, StorageError> {
            response
                .headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| StorageError::backend(format!("sync: the answer has no {h} header")))
        };
        let head = if response.status().is_success() {
            Some(head_of(&HeadJson {
                commit: header(http_wire::HEAD_COMMIT_HEADER)?,
                version: header(http_wire::HEAD_VERSION_HEADER)?,
            })?)
        } else {
            None
        };
        let complete = header(http_wire::SYNC_COMPLETE_HEADER).is_ok_and(|v| v == "true");
        let framed = self.body("sync", response).await?;
        let head = head.ok_or_else(|| StorageError::backend("sync: no head in the answer"))?;
        let blobs = http_wire::decode_frames(framed)
            .map_err(|e| StorageError::Transient {
                reason: format!("sync: {e}"),
            })?
            .into_iter()
            .map(|(a, b)| {
                b.map(|b| (a, b))
                    .ok_or_else(|| StorageError::backend(format!("sync: blob {a} marked missing")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        tracing::debug!(head = %head.commit, blobs = blobs.len(), complete, "sync bundle received");
        Ok(SyncBundle {
            head,
            blobs,
            complete,
        })
    }
}
