//! [`HttpOptions`]: where the server is and how to talk to it.

use std::time::Duration;

use datoms_storage::StorageError;

/// How an [`HttpStorage`](crate::HttpStorage) reaches its server.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// `http://HOST:PORT[/PREFIX]` or `https://…`, without a trailing slash.
    pub base: String,
    /// The bearer token sent with every request (writes need it; reads too unless the
    /// server has public reads).
    pub token: Option<String>,
    /// The limit of one request, connection included.
    pub timeout: Duration,
    /// The limit of making a connection.
    pub connect_timeout: Duration,
    /// How many batch requests drivers keep in flight (the storage's
    /// [`Capabilities::concurrency`](datoms_storage::Capabilities::concurrency)).
    pub concurrency: usize,
    /// The most requests of this storage in flight at once, whoever makes them.
    pub max_in_flight: usize,
    /// How many times a request that can be repeated is repeated after a 5xx, a timeout
    /// or a failed connection.
    pub retries: u32,
    /// The first wait before a repeat; each later one twice as long.
    pub backoff: Duration,
    /// Extra trusted root certificates (PEM), for a server whose certificate no public
    /// root signs (a self-signed one). The public roots stay trusted.
    pub root_certificates: Vec<Vec<u8>>,
    /// Use the server's one-round-trip sync when it offers it (`true` by default;
    /// `false` restores through the plain blob API, level by level, as a comparison).
    pub smart_sync: bool,
}

impl HttpOptions {
    /// Options for `base` with the defaults: no token, 30 s per request, 5 s to connect,
    /// 8 batches in flight, at most 32 requests in flight, 2 repeats from 50 ms, smart sync
    /// on.
    ///
    /// # Errors
    /// [`StorageError::BadLocation`] if `base` is not an `http://` or `https://` URL with
    /// a host, or carries a query or fragment.
    pub fn new(base: &str) -> Result<HttpOptions, StorageError> {
        let bad = |reason: &str| StorageError::BadLocation {
            location: base.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| bad("expected http://HOST[:PORT][/PREFIX] or https://…"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad("the host is empty"));
        }
        if rest.contains(['?', '#']) {
            return Err(bad("a server URL takes no query or fragment"));
        }
        reqwest::Url::parse(base).map_err(|e| bad(&e.to_string()))?;
        Ok(HttpOptions {
            base: base.trim_end_matches('/').to_owned(),
            token: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            concurrency: 8,
            max_in_flight: 32,
            retries: 2,
            backoff: Duration::from_millis(50),
            root_certificates: Vec::new(),
            smart_sync: true,
        })
    }

    /// [`HttpOptions::new`] with the token of the `DATOMS_TOKEN` environment variable,
    /// if set and not empty.
    ///
    /// # Errors
    /// As [`HttpOptions::new`].
    pub fn from_url(url: &str) -> Result<HttpOptions, StorageError> {
        let mut o = HttpOptions::new(url)?;
        o.token = std::env::var("DATOMS_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Ok(o)
    }

    /// These options trusting one more root certificate (PEM).
    #[must_use]
    pub fn with_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> HttpOptions {
        self.root_certificates.push(pem.into());
        self
    }

    /// These options with a bearer token.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> HttpOptions {
        self.token = Some(token.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_are_taken() {
        assert_eq!(
            HttpOptions::new("http://127.0.0.1:80/")
                .map(|o| o.base)
                .ok(),
            Some("http://127.0.0.1:80".into())
        );
        assert_eq!(
            HttpOptions::new("https://h/db").map(|o| o.base).ok(),
            Some("https://h/db".into())
        );
        for bad in ["ftp://h", "http://", "http:///x", "http://h/?x=1", "h:80"] {
            assert!(
                matches!(HttpOptions::new(bad), Err(StorageError::BadLocation { .. })),
                "{bad}"
            );
        }
    }
}
