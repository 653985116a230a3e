//! Writing files safely, for every command that writes one: never onto the file of an
//! open database, and atomically — the bytes go to a temporary file in the target's
//! directory, which is flushed, fsynced and renamed over the target, so an interrupted
//! or failed write (Ctrl-C, a full disk) never leaves a partial file under the target's
//! name: the target is either untouched or complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::CliError;

/// The local path a storage URL keeps its data in, and whether it is a directory:
/// `redb:PATH` is one file, `rocksdb:PATH` a directory; other storages have none.
fn local_path(url: &str) -> Option<(&Path, bool)> {
    if let Some(p) = url.strip_prefix("redb:") {
        return Some((Path::new(p), false));
    }
    url.strip_prefix("rocksdb:").map(|p| (Path::new(p), true))
}

/// The path with symlinks resolved: the file itself when it exists, else its
/// directory resolved and the name appended. `None` if not even the directory exists.
fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(dir.canonicalize().ok()?.join(name))
}

/// True if `a` and `b` are the same file: the same canonical path (symlinks resolved)
/// or, on Unix, the same inode (a hard link).
fn same_file(a: &Path, b: &Path) -> bool {
    if let (Some(x), Some(y)) = (resolved(a), resolved(b)) {
        if x == y {
            return true;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    false
}

/// Refuses a write to `target` when it is the file of one of the open databases
/// `urls` (or, for a RocksDB directory, a file inside it), also through a symlink or a
/// hard link.
///
/// # Errors
/// [`CliError::TargetIsDatabase`] naming the file and the database.
pub fn refuse_database_target(target: &Path, urls: &[&str]) -> Result<(), CliError> {
    for url in urls {
        let Some((db, is_dir)) = local_path(url) else {
            continue;
        };
        let clash = if is_dir {
            match (resolved(target), resolved(db)) {
                (Some(t), Some(d)) => t.starts_with(&d),
                _ => false,
            }
        } else {
            same_file(target, db)
        };
        if clash {
            return Err(CliError::TargetIsDatabase {
                path: target.display().to_string(),
                url: (*url).to_owned(),
            });
        }
    }
    Ok(())
}

/// A file being written atomically: [`AtomicFile::commit`] puts it in place; dropping
/// it uncommitted removes the temporary file and leaves the target as it was.
pub struct AtomicFile {
    out: BufWriter<NamedTempFile>,
    /// Where it goes: the target with symlinks resolved, so a symlink keeps pointing
    /// at the (new) file instead of being replaced by it.
    target: PathBuf,
    /// The path as the user gave it, for messages.
    shown: String,
}

impl AtomicFile {
    /// Starts writing `path`: a temporary file in the same directory, with the target's
    /// permissions when it exists (else the usual ones for a new file).
    ///
    /// # Errors
    /// [`CliError::File`] if the directory does not exist or is not writable.
    pub fn create(path: &str) -> Result<AtomicFile, CliError> {
        let error = |source| CliError::File {
            path: path.to_owned(),
            source,
        };
        let target = resolved(Path::new(path)).ok_or_else(|| {
            error(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "its directory does not exist",
            ))
        })?;
        let dir = target.parent().unwrap_or(Path::new("."));
        let mut builder = tempfile::Builder::new();
        builder.prefix(".datoms-").suffix(".tmp");
        #[cfg(unix)]
        let new_file_mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::Permissions::from_mode(0o666)
        };
        #[cfg(unix)]
        builder.permissions(new_file_mode);
        let temp = builder.tempfile_in(dir).map_err(error)?;
        if let Ok(meta) = std::fs::metadata(&target) {
            if meta.is_dir() {
                return Err(error(std::io::Error::new(
                    std::io::ErrorKind::IsADirectory,
                    "is a directory",
                )));
            }
            temp.as_file()
                .set_permissions(meta.permissions())
                .map_err(error)?;
        }
        Ok(AtomicFile {
            out: BufWriter::with_capacity(1 << 16, temp),
            target,
            shown: path.to_owned(),
        })
    }

    /// The writer of the temporary file.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.out
    }

    /// Flushes and fsyncs the temporary file, renames it over the target and fsyncs
    /// the directory, so the complete file is durable under the target's name.
    ///
    /// # Errors
    /// [`CliError::File`] naming the target; the temporary file is removed then.
    pub fn commit(self) -> Result<(), CliError> {
        let shown = self.shown;
        let error = |source| CliError::File {
            path: shown.clone(),
            source,
        };
        let temp = self.out.into_inner().map_err(|e| error(e.into_error()))?;
        temp.as_file().sync_all().map_err(error)?;
        temp.persist(&self.target).map_err(|e| error(e.error))?;
        if let Some(dir) = self.target.parent() {
            // Makes the rename itself durable. Some filesystems cannot open a
            // directory for this; the file is in place either way.
            if let Ok(d) = File::open(dir) {
                d.sync_all().map_err(error)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_file_is_refused_by_path_symlink_and_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.redb");
        std::fs::write(&db, b"db").unwrap();
        let url = format!("redb:{}", db.display());
        let refused = |p: &Path| {
            matches!(
                refuse_database_target(p, &[&url]),
                Err(CliError::TargetIsDatabase { .. })
            )
        };
        assert!(refused(&db));
        assert!(refused(&dir.path().join(".").join("app.redb")));
        #[cfg(unix)]
        {
            let link = dir.path().join("link.datoms");
            std::os::unix::fs::symlink(&db, &link).unwrap();
            assert!(refused(&link));
            let hard = dir.path().join("hard.datoms");
            std::fs::hard_link(&db, &hard).unwrap();
            assert!(refused(&hard));
        }
        assert!(!refused(&dir.path().join("other.datoms")));
        let rocks = format!("rocksdb:{}", dir.path().display());
        assert!(refuse_database_target(&dir.path().join("x"), &[&rocks]).is_err());
        assert!(refuse_database_target(&db, &["mem:"]).is_ok());
    }

    #[test]
    fn an_uncommitted_file_leaves_the_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.datoms");
        std::fs::write(&target, b"old").unwrap();
        let path = target.display().to_string();
        let mut file = AtomicFile::create(&path).unwrap();
        file.writer().write_all(b"half of the new").unwrap();
        drop(file);
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "the temporary file is gone");

        let mut file = AtomicFile::create(&path).unwrap();
        file.writer().write_all(b"new").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
    }

    #[cfg(unix)]
    #[test]
    fn writing_through_a_symlink_replaces_the_file_it_points_to() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.datoms");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.datoms");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut file = AtomicFile::create(&link.display().to_string()).unwrap();
        file.writer().write_all(b"new").unwrap();
        file.commit().unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
    }
}
