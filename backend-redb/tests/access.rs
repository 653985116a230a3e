//! Who may open a redb file, and from where: read-only handles share the file with each
//! other and read a file they may not write; a writer has it alone; and a storage works
//! from any runtime, after the one that opened it is gone, and from none.

use std::path::{Path, PathBuf};

use backend_redb::RedbStorage;
use bytes::Bytes;
use conformance::history::{self, Generator, Params};
use datoms_core::restore::Mode;
use datoms_core::{Address, Db};
use datoms_storage::{restore, restore_commit, store, Storage, StorageError};
use tempfile::TempDir;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A redb file holding a stored db of 200 people under head `main`, closed. Returns the
/// directory (kept while the test runs), the file and the db's roots.
fn stored_file() -> Result<(TempDir, PathBuf, [Address; 3]), Box<dyn std::error::Error>> {
    let db = Generator::new(
        3,
        Params {
            initial_people: 200,
            ..Params::default()
        },
    )
    .initial_tx()
    .apply(&Db::new(history::schema()?))?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db.redb");
    // No runtime needed (see the last test), so this also runs inside the tests' own.
    let stored = futures::executor::block_on(async {
        let storage = RedbStorage::open(&path)?;
        store(&db, &storage, "main").await
    })?;
    Ok((dir, path, stored.db.root_addresses()))
}

/// The roots of head `main` of `storage`, every node read.
async fn read_roots(storage: &dyn Storage) -> Result<[Address; 3], StorageError> {
    let head = storage
        .get_head("main")
        .await?
        .ok_or_else(|| StorageError::NoHead {
            name: "main".into(),
        })?;
    Ok(restore_commit(storage, head.commit, None, Mode::Eager)
        .await?
        .db
        .root_addresses())
}

#[tokio::test]
async fn read_only_handles_share_the_file() -> TestResult {
    let (_dir, path, roots) = stored_file()?;
    let first = RedbStorage::open_read_only(&path)?;
    let second = RedbStorage::open_read_only(&path)?;
    assert!(first.is_read_only() && second.is_read_only());
    assert_eq!(read_roots(&first).await?, roots);
    assert_eq!(read_roots(&second).await?, roots);
    // A writer needs the file alone, and says so naming it.
    match RedbStorage::open(&path) {
        Err(StorageError::InUse { what, reason }) => {
            assert!(what.contains(&*path.to_string_lossy()), "{what}");
            assert!(reason.contains("read-only"), "{reason}");
        }
        other => panic!("a writer beside readers must get InUse, got {other:?}"),
    }
    drop((first, second));
    let writer = RedbStorage::open(&path)?;
    match RedbStorage::open_read_only(&path) {
        Err(StorageError::InUse { what, .. }) => {
            assert!(what.contains(&*path.to_string_lossy()), "{what}");
        }
        other => panic!("a reader beside a writer must get InUse, got {other:?}"),
    }
    drop(writer);
    assert_eq!(
        read_roots(&RedbStorage::open_read_only(&path)?).await?,
        roots
    );
    Ok(())
}

/// The modes of the descriptors this process holds on `path` (Linux: from
/// `/proc/self/fdinfo`), as `O_ACCMODE` bits: 0 read-only, 1 write-only, 2 read-write.
#[cfg(target_os = "linux")]
fn access_modes(path: &Path) -> Result<Vec<u32>, Box<dyn std::error::Error>> {
    let target = std::fs::canonicalize(path)?;
    let mut modes = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        if std::fs::read_link(entry.path()).ok().as_deref() != Some(target.as_path()) {
            continue;
        }
        let info = std::fs::read_to_string(Path::new("/proc/self/fdinfo").join(entry.file_name()))?;
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .ok_or("fdinfo without flags")?;
        modes.push(u32::from_str_radix(flags.trim(), 8)? & 0o3);
    }
    Ok(modes)
}

/// A file the process may not write (mode 0444 in a 0555 directory, as on a read-only
/// mount) is read through a read-only handle, which holds the file open for reading
/// only: what a read-only file system allows, whoever the process runs as.
#[cfg(unix)]
#[tokio::test]
async fn a_file_without_write_permission_is_read() -> TestResult {
    use std::os::unix::fs::PermissionsExt;

    let (dir, path, roots) = stored_file()?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555))?;
    let outcome = async {
        let storage = RedbStorage::open_read_only(&path)?;
        #[cfg(target_os = "linux")]
        {
            let modes = access_modes(&path)?;
            assert!(!modes.is_empty(), "no descriptor on {}", path.display());
            assert!(
                modes.iter().all(|m| *m == 0),
                "a read-only handle must open the file for reading only: modes {modes:?}"
            );
        }
        assert_eq!(read_roots(&storage).await?, roots);
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    outcome
}

#[tokio::test]
async fn a_read_only_handle_refuses_writes_and_leaves_the_file_as_it_was() -> TestResult {
    let (_dir, path, _) = stored_file()?;
    let before = std::fs::read(&path)?;
    let storage = RedbStorage::open_read_only(&path)?;
    let blob = Bytes::from_static(b"a blob");
    let address = Address::of(&blob);
    let head = storage.get_head("main").await?.ok_or("no head")?;
    for (operation, outcome) in [
        (
            "put_many",
            storage.put_many(&[(address, blob.clone())]).await,
        ),
        (
            "cas_head",
            storage
                .cas_head("main", Some(&head.version), address)
                .await
                .map(|_| ()),
        ),
        ("delete_many", storage.delete_many(&[head.commit]).await),
        (
            "delete_stale",
            storage
                .delete_stale(&[head.commit], std::time::SystemTime::now())
                .await
                .map(|_| ()),
        ),
    ] {
        match outcome {
            Err(StorageError::ReadOnly {
                what,
                operation: op,
            }) => {
                assert_eq!(op, operation);
                assert!(what.contains(&*path.to_string_lossy()), "{what}");
            }
            other => panic!("{operation} on a read-only handle: {other:?}"),
        }
    }
    drop(storage);
    assert!(std::fs::read(&path)? == before, "the file changed");
    Ok(())
}

/// The storage's calls run on threads it owns: they work after the runtime that opened
/// it (and ran its first requests) is dropped, and from no runtime at all.
#[test]
fn a_storage_works_after_its_runtime_is_dropped_and_from_no_runtime() -> TestResult {
    let (_dir, path, roots) = stored_file()?;
    let storage = RedbStorage::open(&path)?;
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let lazy = first.block_on(async {
        assert_eq!(read_roots(&storage).await?, roots);
        restore(std::sync::Arc::new(storage.clone()), "main").await
    })?;
    drop(first);
    // No runtime: a plain executor polls the storage's futures.
    assert_eq!(futures::executor::block_on(read_roots(&storage))?, roots);
    let blob = Bytes::from_static(b"written with no runtime");
    futures::executor::block_on(storage.put_many(&[(Address::of(&blob), blob.clone())]))?;
    assert_eq!(
        futures::executor::block_on(storage.get_many(&[Address::of(&blob)]))?,
        vec![Some(blob)]
    );
    // The lazy db reads through the same storage.
    assert!(lazy.db.datoms(datoms_core::IndexKind::Eavt, &[])?.count() > 0);
    Ok(())
}

/// Set in the child process of the test below: the file it opens, writes and dies on.
const KILLED_WRITER: &str = "DATOMS_REDB_TEST_KILLED_WRITER";

/// A writer that dies without closing the file (here: `exit` right after a durable
/// write, which runs no destructor) leaves it needing redb's repair, which only a writable open does. A read-only
/// open repairs it once (the file is writable) and then reads it; the stored db is whole.
#[test]
fn a_file_whose_writer_died_is_repaired_then_read() -> TestResult {
    if let Some(path) = std::env::var_os(KILLED_WRITER) {
        let storage = RedbStorage::open(&path)?;
        let blob = Bytes::from_static(b"written by a writer about to die");
        futures::executor::block_on(storage.put_many(&[(Address::of(&blob), blob)]))?;
        // Status 3, so that the parent tells a death from a test that ran through.
        std::process::exit(3);
    }
    let (_dir, path, roots) = stored_file()?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "a_file_whose_writer_died_is_repaired_then_read",
            "--test-threads=1",
        ])
        .env(KILLED_WRITER, &path)
        .output()?;
    assert_eq!(
        child.status.code(),
        Some(3),
        "the child must die after writing"
    );
    assert!(
        matches!(
            redb::ReadOnlyDatabase::open(&path),
            Err(redb::DatabaseError::RepairAborted)
        ),
        "the dead writer must leave the file needing a repair"
    );
    let storage = RedbStorage::open_read_only(&path)?;
    assert!(storage.is_read_only());
    assert_eq!(futures::executor::block_on(read_roots(&storage))?, roots);
    Ok(())
}
