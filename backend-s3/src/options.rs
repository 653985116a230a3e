//! Where the database lives and how to talk to it: [`S3Options`], parsed from an
//! `s3://bucket/prefix?…` URL or built by hand.

use std::fmt;
use std::time::Duration;

use datoms_storage::StorageError;

/// Requests in flight at once per [`crate::S3Storage`], when not configured.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// Entries of the "known stored" set, when not configured: at 32 bytes an address, a few
/// MiB of memory.
pub const DEFAULT_KNOWN_CAPACITY: usize = 1 << 17;

/// The region used with an endpoint override when none is configured: S3-compatible
/// servers (MinIO, Garage, moto…) accept it, and SigV4 needs one.
pub const DEFAULT_COMPATIBLE_REGION: &str = "us-east-1";

/// The key segment under which a database's objects live: `prefix/.datoms/nodes/…`,
/// `prefix/.datoms/heads/…`. A prefix may not contain it as a segment, so the keys of
/// one database never fall under another's, however their prefixes nest (`x` and
/// `x/nodes`, or the bucket root and anything).
pub const DATA_SEGMENT: &str = ".datoms";

/// How a failed request is retried: throttling, 5xx, timeouts and dropped connections
/// are; other 4xx never are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request, the first included (at least 1).
    pub max_attempts: u32,
    /// The longest wait before the first retry; each later retry may wait twice as long.
    /// The actual wait is drawn at random below it ("full jitter"), so that throttled
    /// clients do not retry in step.
    pub first_backoff: Duration,
    /// The cap on any single wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the wait after failed attempt number `attempt` (1-based).
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Time limits of one request attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (TCP and TLS).
    pub connect: Duration,
    /// One attempt, from sending the request to the end of the response body.
    pub attempt: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            attempt: Duration::from_secs(30),
        }
    }
}

/// Credentials given explicitly, instead of the standard AWS chain (environment,
/// profile files, SSO, web identity, ECS, EC2 instance metadata).
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Everything [`crate::S3Storage::connect`] needs. Only the bucket is required.
///
/// ```
/// use backend_s3::S3Options;
///
/// let o = S3Options::from_url("s3://my-bucket/apps/crm?region=eu-west-1")?;
/// assert_eq!((o.bucket.as_str(), o.prefix.as_str()), ("my-bucket", "apps/crm"));
/// assert_eq!(o.region.as_deref(), Some("eu-west-1"));
/// assert!(!o.path_style);
/// # Ok::<(), datoms_storage::StorageError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Options {
    /// The bucket.
    pub bucket: String,
    /// The key prefix of this database, without leading or trailing `/` (empty: the
    /// bucket's root). Nodes go under `prefix/.datoms/nodes/`, heads under
    /// `prefix/.datoms/heads/`; a prefix may not have [`DATA_SEGMENT`] as a segment
    /// (checked by [`S3Options::validate`]).
    pub prefix: String,
    /// An endpoint URL for S3-compatible servers (`http://127.0.0.1:9000`); `None` for
    /// AWS S3, whose endpoint follows from the region.
    pub endpoint: Option<String>,
    /// The region; `None` resolves it by the standard chain (`AWS_REGION`, profile…), and
    /// with an endpoint override falls back to [`DEFAULT_COMPATIBLE_REGION`].
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual hosts
    /// (`bucket.endpoint/key`). Most S3-compatible servers need it.
    pub path_style: bool,
    /// Requests in flight at once, across all calls on one storage (at least 1).
    pub concurrency: usize,
    /// Retries of failed requests.
    pub retry: RetryPolicy,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Explicit credentials; `None` uses the standard chain.
    pub credentials: Option<StaticCredentials>,
    /// How many addresses the "known stored" set remembers (0 disables it).
    pub known_capacity: usize,
    /// Skip the check that the server enforces conditional writes before the first
    /// head move (URL `single_writer=true`). Only for a server known to ignore
    /// `If-Match` / `If-None-Match` **and** a prefix that one process alone ever writes:
    /// on such a server two writers would overwrite each other's heads unseen.
    pub single_writer: bool,
}

impl S3Options {
    /// Options for `bucket` and `prefix` with every default: AWS S3, the standard
    /// credential and region chains. The prefix is checked when a storage is made from
    /// the options ([`S3Options::validate`]).
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> S3Options {
        S3Options {
            bucket: bucket.into(),
            prefix: normalize_prefix(&prefix.into()),
            endpoint: None,
            region: None,
            path_style: false,
            concurrency: DEFAULT_CONCURRENCY,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            credentials: None,
            known_capacity: DEFAULT_KNOWN_CAPACITY,
            single_writer: false,
        }
    }

    /// Parses `s3://BUCKET[/PREFIX][?key=value&…]`. Query keys: `endpoint` (an
    /// `http(s)://` URL; implies path-style), `region`, `path_style` (`true`/`false`,
    /// overrides the implied value), `concurrency`, `max_attempts`, `single_writer`
    /// (see [`S3Options::single_writer`]). Values may be percent-encoded.
    ///
    /// # Errors
    /// [`StorageError::Backend`] naming the URL and what is wrong with it: another scheme,
    /// no bucket, an unknown query key or a bad value; [`StorageError::BadLocation`] for a
    /// prefix [`S3Options::validate`] refuses.
    pub fn from_url(url: &str) -> Result<S3Options, StorageError> {
        let bad = |why: &str| StorageError::backend(format!("bad S3 URL {url:?}: {why}"));
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it must start with s3://"))?;
        let (location, query) = match rest.split_once('?') {
            Some((l, q)) => (l, Some(q)),
            None => (rest, None),
        };
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        let mut options = S3Options::new(percent_decode(bucket).map_err(|e| bad(&e))?, "");
        options.prefix = normalize_prefix(&percent_decode(prefix).map_err(|e| bad(&e))?);
        let mut path_style = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).map_err(|e| bad(&e))?;
            match key {
                "endpoint" => {
                    if !(value.starts_with("http://") || value.starts_with("https://")) {
                        return Err(bad("endpoint must be an http:// or https:// URL"));
                    }
                    options.endpoint = Some(value.trim_end_matches('/').to_owned());
                }
                "region" if !value.is_empty() => options.region = Some(value),
                "path_style" => {
                    path_style = Some(match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(bad("path_style must be true or false")),
                    });
                }
                "concurrency" => {
                    options.concurrency = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("concurrency must be a positive integer"))?;
                }
                "single_writer" => {
                    options.single_writer = match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(bad("single_writer must be true or false")),
                    };
                }
                "max_attempts" => {
                    options.retry.max_attempts = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("max_attempts must be a positive integer"))?;
                }
                other => return Err(bad(&format!("unknown query key {other:?}"))),
            }
        }
        options.path_style = path_style.unwrap_or(options.endpoint.is_some());
        options.validate()?;
        Ok(options)
    }

    /// Checks that the bucket is named and that the prefix has no [`DATA_SEGMENT`]
    /// segment: such a prefix would put this database's keys among another's (the
    /// database at `x` keeps its keys under `x/.datoms/`, so no other prefix may reach
    /// there).
    ///
    /// ```
    /// use backend_s3::S3Options;
    /// use datoms_storage::StorageError;
    ///
    /// assert!(S3Options::new("b", "apps/crm/nodes").validate().is_ok());
    /// assert!(matches!(
    ///     S3Options::new("b", "apps/.datoms/crm").validate(),
    ///     Err(StorageError::BadLocation { .. })
    /// ));
    /// ```
    ///
    /// # Errors
    /// [`StorageError::BadLocation`] naming the location and what is wrong.
    pub fn validate(&self) -> Result<(), StorageError> {
        let bad = |reason: String| StorageError::BadLocation {
            location: self.location(),
            reason,
        };
        if self.bucket.is_empty() {
            return Err(bad("no bucket".to_owned()));
        }
        if self
            .prefix
            .split('/')
            .any(|segment| segment == DATA_SEGMENT)
        {
            return Err(bad(format!(
                "a prefix may not have `{DATA_SEGMENT}` as a segment: each database keeps its \
                 objects under `prefix/{DATA_SEGMENT}/`, and this prefix would reach into \
                 another database's"
            )));
        }
        Ok(())
    }

    /// The same options with an endpoint override, and path-style addressing.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> S3Options {
        self.endpoint = Some(endpoint.into());
        self.path_style = true;
        self
    }

    /// The same options with explicit credentials.
    pub fn with_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> S3Options {
        self.credentials = Some(StaticCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        });
        self
    }

    /// The `s3://bucket/prefix` form of the location (without the query).
    pub fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Trims slashes at both ends, so that `a/b/`, `/a/b` and `a/b` name one prefix.
fn normalize_prefix(prefix: &str) -> String {
    prefix.trim_matches('/').to_owned()
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_alone_means_the_bucket_root() {
        let o = S3Options::from_url("s3://b1").unwrap();
        assert_eq!(o.bucket, "b1");
        assert_eq!(o.prefix, "");
        assert_eq!(o.location(), "s3://b1");
        assert_eq!(o.endpoint, None);
        assert!(!o.path_style);
    }

    #[test]
    fn prefix_slashes_are_trimmed() {
        let o = S3Options::from_url("s3://b1/a/b/").unwrap();
        assert_eq!(o.prefix, "a/b");
        assert_eq!(o.location(), "s3://b1/a/b");
    }

    #[test]
    fn endpoint_implies_path_style_and_keeps_its_port() {
        let o =
            S3Options::from_url("s3://bucket/db1?endpoint=http://127.0.0.1:9000&region=us-east-1")
                .unwrap();
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(o.region.as_deref(), Some("us-east-1"));
        assert!(o.path_style);
    }

    #[test]
    fn percent_encoded_values_are_decoded() {
        let o = S3Options::from_url("s3://bucket/p%20q?endpoint=http%3A%2F%2Flocalhost%3A9000%2F")
            .unwrap();
        assert_eq!(o.prefix, "p q");
        assert_eq!(o.endpoint.as_deref(), Some("http://localhost:9000"));
    }

    #[test]
    fn explicit_path_style_wins_over_the_implied_one() {
        let o =
            S3Options::from_url("s3://b/p?endpoint=https://s3.example&path_style=false").unwrap();
        assert!(!o.path_style);
        let o = S3Options::from_url("s3://b/p?path_style=true").unwrap();
        assert!(o.path_style);
    }

    #[test]
    fn tuning_keys_are_parsed() {
        let o = S3Options::from_url("s3://b?concurrency=7&max_attempts=2").unwrap();
        assert_eq!(o.concurrency, 7);
        assert_eq!(o.retry.max_attempts, 2);
        assert!(
            !o.single_writer,
            "heads are checked unless the user says otherwise"
        );
        assert!(
            S3Options::from_url("s3://b?single_writer=true")
                .unwrap()
                .single_writer
        );
    }

    #[test]
    fn malformed_urls_are_backend_errors_naming_the_url() {
        for url in [
            "http://b/p",
            "s3://",
            "s3:///prefix",
            "s3://b?colour=blue",
            "s3://b?concurrency=0",
            "s3://b?max_attempts=x",
            "s3://b?endpoint=127.0.0.1:9000",
            "s3://b?path_style=maybe",
            "s3://b?single_writer=yes",
            "s3://b/%zz",
        ] {
            match S3Options::from_url(url) {
                Err(StorageError::Backend { reason }) => {
                    assert!(reason.contains(url), "{reason} should name {url}")
                }
                other => panic!("{url}: expected a backend error, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_prefix_with_the_data_segment_is_a_bad_location() {
        for (url, at) in [
            ("s3://b/.datoms", "s3://b/.datoms"),
            ("s3://b/x/.datoms", "s3://b/x/.datoms"),
            ("s3://b/x/.datoms/nodes", "s3://b/x/.datoms/nodes"),
            ("s3://b/.datoms/y?region=eu-west-1", "s3://b/.datoms/y"),
            ("s3://b/x/%2Edatoms", "s3://b/x/.datoms"),
        ] {
            match S3Options::from_url(url) {
                Err(StorageError::BadLocation { location, reason }) => {
                    assert_eq!(location, at, "{url}");
                    assert!(reason.contains(DATA_SEGMENT), "{reason}");
                }
                other => panic!("{url}: expected BadLocation, got {other:?}"),
            }
        }
        for url in [
            "s3://b",
            "s3://b/x",
            "s3://b/x/nodes",
            "s3://b/x.datoms/.datomsy",
        ] {
            assert!(S3Options::from_url(url).is_ok(), "{url}");
        }
        assert!(matches!(
            S3Options::new("", "x").validate(),
            Err(StorageError::BadLocation { .. })
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
        let waits: Vec<u128> = (1..=5).map(|a| p.backoff_ceiling(a).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 50, 50]);
        assert_eq!(p.backoff_ceiling(1000), Duration::from_millis(50));
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let o = S3Options::new("b", "").with_credentials("AKID", "SECRET");
        let shown = format!("{o:?}");
        assert!(shown.contains("AKID"));
        assert!(!shown.contains("SECRET"));
    }
}
