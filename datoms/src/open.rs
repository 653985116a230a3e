//! `open(url)`: a storage picked by URL scheme.

use std::sync::Arc;

use datoms_storage::Storage;

/// Why a storage URL could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL's scheme names no known backend.
    #[error(
        "unknown storage URL {url:?}: expected redb:PATH, rocksdb:PATH, s3://BUCKET/PREFIX, http(s)://HOST[:PORT] or mem:"
    )]
    UnknownScheme {
        /// The URL given.
        url: String,
    },
    /// The backend exists but this build of `datoms` leaves it out.
    #[error("storage URL {url:?} needs the `{feature}` feature of the datoms crate, which this build does not enable")]
    FeatureDisabled {
        /// The URL given.
        url: String,
        /// The cargo feature to enable.
        feature: &'static str,
    },
    /// The URL is for a known backend but malformed (e.g. an empty path).
    #[error("bad storage URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The backend failed to open.
    #[error(transparent)]
    Storage(#[from] datoms_storage::StorageError),
}

impl OpenError {
    /// The error for a URL whose backend this build leaves out.
    #[cfg_attr(
        all(
            feature = "redb",
            feature = "mem",
            feature = "rocks",
            feature = "s3",
            feature = "http"
        ),
        allow(dead_code)
    )]
    fn disabled(url: &str, feature: &'static str) -> OpenError {
        OpenError::FeatureDisabled {
            url: url.to_owned(),
            feature,
        }
    }
}

/// Whether a storage is opened for writing or for reading only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

/// Opens the storage a URL names:
/// - `redb:PATH` — one redb file (feature `redb`, default), created if missing;
/// - `rocksdb:PATH` — a RocksDB directory (feature `rocks`);
/// - `s3://BUCKET/PREFIX?endpoint=…&region=…` — S3-compatible object storage (feature `s3`);
/// - `http://HOST:PORT[/PREFIX]`, `https://…` — a storage served by `datoms serve`
///   (feature `http`, default), with the bearer token of `DATOMS_TOKEN` if set; it reads
///   the server's capabilities, so the server must be up;
/// - `mem:` — a new, empty in-memory storage (feature `mem`, default).
///
/// It is async because opening object storage resolves credentials and the region.
///
/// # Errors
/// [`OpenError::FeatureDisabled`] naming the feature to enable when the scheme's backend
/// is not built in; [`OpenError::UnknownScheme`], [`OpenError::BadUrl`], or the backend's
/// own error.
pub async fn open(url: &str) -> Result<Arc<dyn Storage>, OpenError> {
    open_as(url, Access::ReadWrite).await
}

/// Opens the storage a URL names for reading only, as processes and commands that never
/// write do, so that they do not exclude each other:
/// - `redb:PATH` — the existing file, opened read-only (`RedbStorage::open_read_only`):
///   any number of read-only opens share the file, in this process and others, and a
///   file or mount without write permission can be read; writes through it fail with
///   `StorageError::ReadOnly`. A writer still needs the file alone: a read-only open
///   while one has it (or a writer's open while readers have it) fails with
///   `StorageError::InUse` naming the file. A missing file is an error, not created.
/// - `rocksdb:PATH` — the existing database, opened in RocksDB's read-only mode
///   (`RocksStorage::open_read_only`): it takes no lock, so readers open it beside each
///   other and beside a writer, each seeing it as of its open; writes through it fail
///   with `StorageError::ReadOnly`. A missing database is an error, not created.
/// - `s3://…`, `http(s)://…`, `mem:` — as [`open`]: object storage, a server and
///   memory have no lock to share.
///
/// # Errors
/// As [`open`].
pub async fn open_read_only(url: &str) -> Result<Arc<dyn Storage>, OpenError> {
    open_as(url, Access::ReadOnly).await
}

async fn open_as(url: &str, access: Access) -> Result<Arc<dyn Storage>, OpenError> {
    if let Some(path) = url.strip_prefix("redb:") {
        if path.is_empty() {
            return Err(OpenError::BadUrl {
                url: url.to_owned(),
                reason: "the path is empty".into(),
            });
        }
        #[cfg(feature = "redb")]
        return Ok(Arc::new(match access {
            Access::ReadWrite => backend_redb::RedbStorage::open(path)?,
            Access::ReadOnly => backend_redb::RedbStorage::open_read_only(path)?,
        }));
        #[cfg(not(feature = "redb"))]
        return Err(OpenError::disabled(url, "redb"));
    }
    if let Some(path) = url.strip_prefix("rocksdb:") {
        if path.is_empty() {
            return Err(OpenError::BadUrl {
                url: url.to_owned(),
                reason: "the path is empty".into(),
            });
        }
        #[cfg(feature = "rocks")]
        return Ok(Arc::new(match access {
            Access::ReadWrite => backend_rocks::RocksStorage::open(path)?,
            Access::ReadOnly => backend_rocks::RocksStorage::open_read_only(path)?,
        }));
        #[cfg(not(feature = "rocks"))]
        return Err(OpenError::disabled(url, "rocks"));
    }
    // Only redb and RocksDB tell reading from writing; the other backends open one way.
    let _ = access;
    if url.starts_with("s3://") {
        #[cfg(feature = "s3")]
        return Ok(Arc::new(backend_s3::S3Storage::open(url).await?));
        #[cfg(not(feature = "s3"))]
        return Err(OpenError::disabled(url, "s3"));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        #[cfg(feature = "http")]
        return Ok(Arc::new(backend_http::HttpStorage::open(url).await?));
        #[cfg(not(feature = "http"))]
        return Err(OpenError::disabled(url, "http"));
    }
    if url == "mem:" {
        #[cfg(feature = "mem")]
        return Ok(Arc::new(datoms_storage::MemoryStorage::new()));
        #[cfg(not(feature = "mem"))]
        return Err(OpenError::disabled(url, "mem"));
    }
    Err(OpenError::UnknownScheme {
        url: url.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn schemes_pick_backends_and_say_which_feature_is_missing() {
        assert!(open("mem:").await.is_ok());
        assert!(open_read_only("mem:").await.is_ok());
        assert!(matches!(
            open_read_only("ftp://x").await,
            Err(OpenError::UnknownScheme { .. })
        ));
        assert!(matches!(
            open_read_only("redb:").await,
            Err(OpenError::BadUrl { .. })
        ));
        #[cfg(not(feature = "rocks"))]
        assert!(matches!(
            open("rocksdb:/tmp/x").await,
            Err(OpenError::FeatureDisabled {
                feature: "rocks",
                ..
            })
        ));
        #[cfg(not(feature = "s3"))]
        assert!(matches!(
            open("s3://bucket/prefix").await,
            Err(OpenError::FeatureDisabled { feature: "s3", .. })
        ));
        assert!(matches!(
            open("ftp://x").await,
            Err(OpenError::UnknownScheme { .. })
        ));
        #[cfg(not(feature = "http"))]
        assert!(matches!(
            open("http://127.0.0.1:1").await,
            Err(OpenError::FeatureDisabled {
                feature: "http",
                ..
            })
        ));
        #[cfg(feature = "http")]
        assert!(matches!(
            open("http://").await,
            Err(OpenError::Storage(
                datoms_storage::StorageError::BadLocation { .. }
            ))
        ));
        assert!(matches!(open("redb:").await, Err(OpenError::BadUrl { .. })));
        assert!(matches!(
            open("rocksdb:").await,
            Err(OpenError::BadUrl { .. })
        ));
    }

    #[tokio::test]
    async fn redb_urls_open_a_file() {
        let dir = std::env::temp_dir().join(format!("datoms-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.redb");
        let url = format!("redb:{}", path.display());
        assert!(open(&url).await.is_ok());
        assert!(path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn read_only_redb_urls_share_an_existing_file_and_create_none() {
        let dir = std::env::temp_dir().join(format!("datoms-open-ro-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.redb");
        let url = format!("redb:{}", path.display());
        assert!(matches!(
            open_read_only(&url).await,
            Err(OpenError::Storage(
                datoms_storage::StorageError::Backend { .. }
            ))
        ));
        assert!(!path.exists(), "a read-only open must not create the file");
        drop(open(&url).await.unwrap());
        let first = open_read_only(&url).await.unwrap();
        let second = open_read_only(&url).await.unwrap();
        assert!(matches!(
            open(&url).await,
            Err(OpenError::Storage(
                datoms_storage::StorageError::InUse { .. }
            ))
        ));
        assert!(second.get_head("main").await.unwrap().is_none());
        assert!(matches!(
            first
                .cas_head("main", None, datoms_core::Address::of(b"x"))
                .await,
            Err(datoms_storage::StorageError::ReadOnly { .. })
        ));
        drop((first, second));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(feature = "rocks")]
    #[tokio::test]
    async fn rocksdb_urls_open_a_directory() {
        let dir = std::env::temp_dir().join(format!("datoms-open-rocks-{}", std::process::id()));
        let url = format!("rocksdb:{}", dir.display());
        assert!(open(&url).await.is_ok());
        assert!(dir.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(feature = "rocks")]
    #[tokio::test]
    async fn read_only_rocksdb_urls_open_beside_a_writer_and_create_nothing() {
        let dir = std::env::temp_dir().join(format!("datoms-open-rocks-ro-{}", std::process::id()));
        let url = format!("rocksdb:{}", dir.display());
        assert!(matches!(
            open_read_only(&url).await,
            Err(OpenError::Storage(
                datoms_storage::StorageError::Backend { .. }
            ))
        ));
        assert!(!dir.exists(), "a read-only open must create nothing");
        let writer = open(&url).await.unwrap();
        let readers = [
            open_read_only(&url).await.unwrap(),
            open_read_only(&url).await.unwrap(),
        ];
        for reader in &readers {
            assert!(reader.get_head("main").await.unwrap().is_none());
            assert!(matches!(
                reader
                    .cas_head("main", None, datoms_core::Address::of(b"x"))
                    .await,
                Err(datoms_storage::StorageError::ReadOnly { .. })
            ));
        }
        drop((writer, readers));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
