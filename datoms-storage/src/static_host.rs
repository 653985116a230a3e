//! Export to a static host: a directory that any web server, CDN or object store serving
//! files can publish as a read-only datoms database for HTTP replicas (the browser
//! replica of `datoms-wasm`, or anything speaking the read half of `datoms serve`'s API):
//!
//! - `blobs/<address>` — each blob's bytes, under its lowercase hex address; immutable,
//!   so a host may cache them forever;
//! - `heads/<name>` — `{"commit": "<address>", "version": "<version>"}`; a name with `/`
//!   is a subdirectory, as a host maps `heads/a%2Fb` or `heads/a/b` to it.
//!
//! An export is incremental: blobs already in the directory are not written again, so
//! re-exporting after new commits writes only the new blobs, then the heads. Blobs come
//! first and every file is written to a temporary name and renamed into place, so a host
//! serving the directory during an export never shows a head whose blobs are missing.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use datoms_core::Address;

use crate::batch::get_batched;
use crate::error::StorageError;
use crate::storage::{Head, Storage};

/// Blob addresses listed per page while exporting.
const PAGE: usize = 4096;

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exported {
    /// Blobs written (new to the directory).
    pub blobs_written: u64,
    /// Blobs already there.
    pub blobs_present: u64,
    /// Bytes of the blobs written.
    pub bytes_written: u64,
    /// Head files written.
    pub heads: u64,
}

/// Exports every blob of `storage` and the heads `heads` into `dir` (created if needed),
/// in the layout of the module docs.
///
/// # Errors
/// [`StorageError::NoHead`] for a head that does not exist, a head name that cannot be
/// a path (empty segments, `.` or `..`), a blob listed but gone, storage or file errors.
#[tracing::instrument(level = "info", skip(storage), fields(dir = %dir.display()))]
pub async fn export_static<S: Storage + ?Sized>(
    storage: &S,
    heads: &[&str],
    dir: &Path,
) -> Result<Exported, StorageError> {
    let mut stats = Exported::default();
    let mut found = Vec::with_capacity(heads.len());
    for name in heads {
        let path = head_path(dir, name)?;
        let head = storage
            .get_head(name)
            .await?
            .ok_or_else(|| StorageError::NoHead {
                name: (*name).to_owned(),
            })?;
        found.push((path, head));
    }
    let blobs = dir.join("blobs");
    fs::create_dir_all(&blobs).map_err(|e| file_error(&blobs, e))?;
    let mut after = None;
    loop {
        let page = storage.list_blobs(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(*last);
        let listed = page.len();
        let missing: Vec<Address> = page
            .into_iter()
            .filter(|a| !blobs.join(a.to_hex()).exists())
            .collect();
        stats.blobs_present += (listed - missing.len()) as u64;
        let bytes = get_batched(storage, &missing).await?;
        for (address, bytes) in missing.iter().zip(bytes) {
            let bytes: Bytes = bytes.ok_or(StorageError::NotFound { address: *address })?;
            write_atomically(&blobs.join(address.to_hex()), &bytes)?;
            stats.blobs_written += 1;
            stats.bytes_written += bytes.len() as u64;
        }
    }
    for (path, head) in found {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| file_error(parent, e))?;
        }
        write_atomically(&path, head_document(&head).as_bytes())?;
        stats.heads += 1;
    }
    tracing::info!(?stats, "exported");
    Ok(stats)
}

/// The JSON document of a head: `{"commit": "<address>", "version": "<version>"}`.
pub fn head_document(head: &Head) -> String {
    format!(
        r#"{{"commit":"{}","version":{}}}"#,
        head.commit,
        json_string(&head.version.0)
    )
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The file of head `name` under `dir`.
fn head_path(dir: &Path, name: &str) -> Result<PathBuf, StorageError> {
    let mut path = dir.join("heads");
    for segment in name.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." || segment.contains('\\') {
            return Err(StorageError::backend(format!(
                "head name {name:?} cannot be a file path of a static host (empty, `.` or `..` segments, or a backslash)"
            )));
        }
        path.push(segment);
    }
    Ok(path)
}

fn file_error(path: &Path, e: io::Error) -> StorageError {
    StorageError::backend(format!("{}: {e}", path.display()))
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    fs::write(&temp, bytes).map_err(|e| file_error(&temp, e))?;
    fs::rename(&temp, path).map_err(|e| {
        let _ = fs::remove_file(&temp);
        file_error(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStorage;
    use crate::store::store;
    use datoms_core::{Db, Schema};

    #[tokio::test]
    async fn exports_blobs_and_heads_incrementally() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let storage = MemoryStorage::new();
        let db = Db::new(Schema::new())
            .with_edn(r#"[{:db/id -1 :person/name "Ann"}]"#)?
            .db_after;
        let first = store(&db, &storage, "team/main").await?;
        let done = export_static(&storage, &["team/main"], dir.path()).await?;
        assert!(done.blobs_written > 0);
        assert_eq!(done.heads, 1);
        let head = storage.get_head("team/main").await?.ok_or("no head")?;
        assert_eq!(
            fs::read_to_string(dir.path().join("heads/team/main"))?,
            format!(
                r#"{{"commit":"{}","version":"{}"}}"#,
                head.commit, head.version
            )
        );
        assert_eq!(head.commit, first.commit);
        for address in storage.list_blobs(None, usize::MAX).await? {
            let bytes = fs::read(dir.path().join("blobs").join(address.to_hex()))?;
            address.verify(&bytes)?;
        }
        let db = first
            .db
            .with_edn(r#"[{:db/id -1 :person/name "Bo"}]"#)?
            .db_after;
        store(&db, &storage, "team/main").await?;
        let again = export_static(&storage, &["team/main"], dir.path()).await?;
        assert!(again.blobs_written > 0 && again.blobs_written < done.blobs_written + 8);
        assert_eq!(again.blobs_present, done.blobs_written);
        assert!(matches!(
            export_static(&storage, &["nope"], dir.path()).await,
            Err(StorageError::NoHead { .. })
        ));
        assert!(export_static(&storage, &["../x"], dir.path())
            .await
            .is_err());
        assert_eq!(json_string("a\"b\\\n"), r#""a\"b\\\u000a""#);
        Ok(())
    }
}
