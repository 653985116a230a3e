//! Damaged redb files: a zeroed page, a file truncated at a page boundary, a file
//! overwritten by another program. redb trusts its pages and may panic on them; every
//! case here must give a typed error naming what is damaged, or the stored db exactly —
//! never a panic, never a hang — through a read-only open (what `datoms verify` uses)
//! and a writable one.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use backend_redb::RedbStorage;
use conformance::history::{self, Generator, Params};
use datoms_core::restore::Mode;
use datoms_core::{Address, Db};
use datoms_storage::{restore_commit, store, Storage, StorageError};
use tempfile::TempDir;

/// redb's page size.
const PAGE: u64 = 4096;

/// How long one read of a damaged file may take before it counts as a hang.
const DEADLINE: Duration = Duration::from_secs(60);

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A stored database in a redb file of its own, closed.
struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    roots: [Address; 3],
    pages: u64,
}

/// Stores a db of `people` people (about four datoms each, default node sizes, so the
/// file looks like one `datoms` writes) in a new redb file and closes it.
fn fixture(people: u32) -> Result<Fixture, Box<dyn std::error::Error>> {
    let mut generator = Generator::new(
        27,
        Params {
            initial_people: people,
            ..Params::default()
        },
    );
    let db = generator.initial_tx().apply(&Db::new(history::schema()?))?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db.redb");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stored = runtime.block_on(async {
        let storage = RedbStorage::open(&path)?;
        store(&db, &storage, "main").await
    })?;
    let pages = std::fs::metadata(&path)?.len() / PAGE;
    Ok(Fixture {
        _dir: dir,
        path,
        roots: stored.db.root_addresses(),
        pages,
    })
}

impl Fixture {
    /// A copy of the file in `dir`, damaged by `damage`.
    fn damaged_copy(
        &self,
        dir: &Path,
        name: &str,
        damage: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<PathBuf, Box<dyn std::error::Error>> {
        let copy = dir.join(name);
        std::fs::copy(&self.path, &copy)?;
        damage(&copy)?;
        Ok(copy)
    }
}

/// Writes `bytes` at `offset` of the file, in place.
fn overwrite(path: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[derive(Clone, Copy, Debug)]
enum Open {
    ReadOnly,
    Writable,
}

/// Opens the file and restores the head eagerly (every node read and checked, as
/// `datoms verify` does), on a thread and runtime of its own, within [`DEADLINE`].
/// `Ok` holds the roots read.
fn read_everything(path: &Path, open: Open) -> Result<Result<[Address; 3], StorageError>, String> {
    let path = path.to_path_buf();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(StorageError::backend)?;
            runtime.block_on(async {
                let storage = match open {
                    Open::ReadOnly => RedbStorage::open_read_only(&path)?,
                    Open::Writable => open_writable(&path).await?,
                };
                let head = storage
                    .get_head("main")
                    .await?
                    .ok_or_else(|| StorageError::NoHead {
                        name: "main".into(),
                    })?;
                let restored = restore_commit(&storage, head.commit, None, Mode::Eager).await?;
                Ok(restored.db.root_addresses())
            })
        });
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(DEADLINE) {
        Err(_) => Err(format!("no answer within {DEADLINE:?}: a hang")),
        Ok(Err(_)) => Err("the read panicked".into()),
        Ok(Ok(outcome)) => Ok(outcome),
    }
}

/// Opens the file for writing once the read-only open before it has let go: its reads
/// still in flight when its restore failed hold the file a moment after it is dropped
/// (`InUse`, which a writer gets while another handle is open). Any other error at once.
async fn open_writable(path: &Path) -> Result<RedbStorage, StorageError> {
    let mut waited = std::time::Duration::ZERO;
    loop {
        match RedbStorage::open(path) {
            Err(StorageError::InUse { .. }) if waited < DEADLINE / 2 => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                waited += std::time::Duration::from_millis(20);
            }
            other => return other,
        }
    }
}

/// Fails unless reading the damaged file gives the stored roots or a typed error that
/// names what is damaged (the file, or the node at fault).
fn check(fixture: &Fixture, path: &Path, what: &str) -> Result<u32, String> {
    let mut typed_errors = 0;
    for open in [Open::ReadOnly, Open::Writable] {
        match read_everything(path, open).map_err(|e| format!("{what}, {open:?}: {e}"))? {
            Ok(roots) if roots == fixture.roots => {}
            Ok(roots) => {
                return Err(format!(
                    "{what}, {open:?}: read roots {roots:?}, stored {:?}",
                    fixture.roots
                ))
            }
            Err(e) => {
                let names_it = match &e {
                    StorageError::Corrupt { what, .. } => what.contains(&*path.to_string_lossy()),
                    StorageError::Backend { reason } => reason.contains(&*path.to_string_lossy()),
                    StorageError::NotFound { .. }
                    | StorageError::NoHead { .. }
                    | StorageError::Core(_) => true,
                    _ => false,
                };
                if !names_it {
                    return Err(format!(
                        "{what}, {open:?}: the error does not name what is damaged: {e} ({e:?})"
                    ));
                }
                typed_errors += 1;
            }
        }
    }
    Ok(typed_errors)
}

/// The case: a 20,000-datom db with page 600 zeroed (`dd if=/dev/zero bs=4096
/// seek=600 count=1 conv=notrunc`), and zeroed pages across the whole file.
#[test]
fn zeroed_pages_give_a_typed_error_or_the_stored_db() -> TestResult {
    let fixture = fixture(5000)?;
    assert!(fixture.pages > 600, "the file has {} pages", fixture.pages);
    let dir = tempfile::tempdir()?;
    let mut pages: Vec<u64> = vec![0, 1, 2, 600, fixture.pages - 1];
    pages.extend((3..fixture.pages).step_by(usize::try_from(fixture.pages / 24)?.max(1)));
    pages.sort_unstable();
    pages.dedup();
    let mut failures = Vec::new();
    let mut typed = 0;
    for page in &pages {
        let copy = fixture.damaged_copy(dir.path(), &format!("zeroed-{page}.redb"), |p| {
            overwrite(p, page * PAGE, &[0; PAGE as usize])
        })?;
        match check(&fixture, &copy, &format!("page {page} zeroed")) {
            Ok(n) => typed += n,
            Err(e) => failures.push(e),
        }
        std::fs::remove_file(&copy)?;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(typed > 0, "no zeroed page of {pages:?} was noticed");
    Ok(())
}

/// A file cut at every page boundary (a small db, so that every boundary is tried).
#[test]
fn truncation_at_every_page_boundary_gives_a_typed_error_or_the_stored_db() -> TestResult {
    let fixture = fixture(300)?;
    assert!(
        (8..=400).contains(&fixture.pages),
        "the file has {} pages",
        fixture.pages
    );
    let dir = tempfile::tempdir()?;
    let mut failures = Vec::new();
    let mut typed = 0;
    for pages in 0..fixture.pages {
        let copy = fixture.damaged_copy(dir.path(), &format!("cut-{pages}.redb"), |p| {
            OpenOptions::new()
                .write(true)
                .open(p)?
                .set_len(pages * PAGE)
        })?;
        match check(&fixture, &copy, &format!("cut after {pages} pages")) {
            Ok(n) => typed += n,
            Err(e) => failures.push(e),
        }
        std::fs::remove_file(&copy)?;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(typed > 0, "no truncation was noticed");
    Ok(())
}

/// A file another program wrote over: replaced by text, its middle overwritten with
/// noise, and a redb file of another program (no datoms tables).
#[test]
fn a_file_overwritten_by_another_program_gives_a_typed_error() -> TestResult {
    let fixture = fixture(1000)?;
    let dir = tempfile::tempdir()?;

    let text = fixture.damaged_copy(dir.path(), "text.redb", |p| {
        std::fs::write(p, "name,age\nAnn,34\nBob,27\n")
    })?;
    for open in [Open::ReadOnly, Open::Writable] {
        match read_everything(&text, open)? {
            Err(StorageError::Corrupt { what, reason }) => {
                assert!(what.contains(&*text.to_string_lossy()), "{what}");
                assert!(!reason.is_empty());
            }
            other => panic!("{open:?}: a text file must be Corrupt, got {other:?}"),
        }
    }
    assert_eq!(
        std::fs::read_to_string(&text)?,
        "name,age\nAnn,34\nBob,27\n",
        "opening a file that is no redb file must leave it as it was"
    );

    let mut noise = vec![0u8; 16 * PAGE as usize];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for b in &mut noise {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = state.to_le_bytes()[0];
    }
    let middle = (fixture.pages / 2).saturating_sub(8) * PAGE;
    let noisy = fixture.damaged_copy(dir.path(), "noise.redb", |p| overwrite(p, middle, &noise))?;
    check(&fixture, &noisy, "16 pages of noise in the middle")?;
    let noisy_header = fixture.damaged_copy(dir.path(), "noise-header.redb", |p| {
        overwrite(p, 0, &noise[..512])
    })?;
    check(&fixture, &noisy_header, "noise over the header")?;

    let other = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&other)?;
        let txn = db.begin_write()?;
        {
            let table: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("counters");
            txn.open_table(table)?.insert(1, 2)?;
        }
        txn.commit()?;
    }
    match read_everything(&other, Open::ReadOnly)? {
        Err(StorageError::NoHead { .. }) => {}
        other => panic!("a redb file without datoms tables has no head, got {other:?}"),
    }
    Ok(())
}
