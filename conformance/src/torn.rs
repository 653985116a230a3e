//! Torn files, shared by the backends that keep their data in files (redb, RocksDB): a
//! copy of the storage's files damaged the ways disks, crashes and careless backups
//! damage them, opened and read in full. Each damaged copy must open and read as a db
//! that was stored (the head's db, or an older one: a consistent older state) or fail
//! with a typed [`StorageError`] — never a wrong answer, never a panic, never a hang.
//!
//! The damage:
//! - **flipped bytes**: one byte of one file XOR-ed, at a random offset of a file chosen
//!   in proportion to its size (so the bulk of the data is hit most);
//! - **truncated files**: one file cut to a random length (zero and all-but-one byte
//!   included);
//! - **copies taken mid-write**: the files copied one after the other while a writer in
//!   this process stores transaction after transaction (a backup that does not stop
//!   the writer); the copy may hold any mix of the files' states.
//!
//! "Read in full" is what `datoms verify` does: read the head and restore it eagerly,
//! every node fetched and checked against its address. A damaged copy's answer is
//! compared with the roots of every db the writer stored.
//!
//! Use it with [`crate::torn_files_test!`]. Copies per kind: [`COPIES_VAR`] (default
//! [`DEFAULT_COPIES`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use datoms_core::restore::Mode;
use datoms_core::{Address, Db};
use datoms_storage::{restore_commit, store, Storage, StorageError};

use crate::failure::{ensure, Context, Failure};
use crate::history::{self, Generator, Params};

/// The environment variable giving the damaged copies per kind of damage.
pub const COPIES_VAR: &str = "DATOMS_TORN_COPIES";

/// Damaged copies per kind at CI size.
pub const DEFAULT_COPIES: usize = 24;

/// The head the test stores under.
pub const HEAD: &str = "torn";

/// How long reading one damaged copy may take before it counts as a hang.
const DEADLINE: Duration = Duration::from_secs(60);

/// Opens the storage kept in a directory.
pub type Open = Arc<dyn Fn(&Path) -> Result<Arc<dyn Storage>, StorageError> + Send + Sync>;

/// What one run found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TornReport {
    /// Damaged copies read.
    pub copies: usize,
    /// Copies that read as the newest db stored.
    pub newest: usize,
    /// Copies that read as an older db stored (a consistent older state).
    pub older: usize,
    /// Copies that failed with a typed error.
    pub typed_errors: usize,
    /// Copies with no head at all (an empty storage: a state before the first store).
    pub no_head: usize,
    /// The typed errors by variant (`Corrupt`, `Core`, `Backend`, …).
    pub errors: std::collections::BTreeMap<String, usize>,
}

/// How reading a copy ended.
enum Outcome {
    Roots([Address; 3]),
    NoHead,
    Error(StorageError),
}

/// Copies per kind: [`COPIES_VAR`], or [`DEFAULT_COPIES`].
pub fn copies() -> usize {
    std::env::var(COPIES_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_COPIES)
}

/// Opens the copy in `dir` and reads its head in full, on a thread and runtime of its
/// own, within [`DEADLINE`]: `Err` for a panic or a hang.
fn read_in_full(open: &Open, dir: &Path) -> Result<Outcome, String> {
    let (tx, rx) = mpsc::channel();
    let open = open.clone();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(StorageError::backend)?;
            runtime.block_on(async {
                let storage = open(&dir)?;
                let Some(head) = storage.get_head(HEAD).await? else {
                    return Ok(Outcome::NoHead);
                };
                let restored = restore_commit(&*storage, head.commit, None, Mode::Eager).await?;
                Ok::<_, StorageError>(Outcome::Roots(restored.db.root_addresses()))
            })
        }));
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(DEADLINE) {
        Err(_) => Err(format!("no answer within {DEADLINE:?}: a hang")),
        Ok(Err(_)) => Err("the read panicked".into()),
        Ok(Ok(Err(e))) => Ok(Outcome::Error(e)),
        Ok(Ok(Ok(outcome))) => Ok(outcome),
    }
}

/// Every file under `dir`, with its length.
fn files(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), meta.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Copies every file under `from` to the same place under `to` (a file that vanishes
/// while it is copied — RocksDB deletes obsolete files — is left out, as a backup
/// would).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for (file, _) in files(from)? {
        let rel = file.strip_prefix(from).map_err(std::io::Error::other)?;
        let target = to.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match std::fs::copy(&file, &target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// A file under `dir` picked in proportion to its length (an empty file never), and a
/// random offset in it.
fn pick(dir: &Path, rng: &mut fastrand::Rng) -> std::io::Result<Option<(PathBuf, u64, u64)>> {
    let all = files(dir)?;
    let total: u64 = all.iter().map(|(_, l)| l).sum();
    if total == 0 {
        return Ok(None);
    }
    let mut at = rng.u64(0..total);
    for (file, len) in all {
        if at < len {
            return Ok(Some((file, len, at)));
        }
        at -= len;
    }
    Ok(None)
}

/// The stored roots, shared with the writer that adds to them.
type Stored = Arc<Mutex<Vec<[Address; 3]>>>;

/// Checks one damaged copy against the stored roots, adding to `report`.
fn check(
    open: &Open,
    dir: &Path,
    stored: &Stored,
    what: &str,
    report: &mut TornReport,
) -> Result<(), Failure> {
    let outcome = read_in_full(open, dir).map_err(|e| Failure::new(format_args!("{what}: {e}")))?;
    report.copies += 1;
    let stored = stored
        .lock()
        .map_err(|_| Failure::new("the stored roots"))?
        .clone();
    match outcome {
        Outcome::Roots(roots) => {
            let at = stored.iter().position(|r| *r == roots);
            match at {
                Some(i) if i + 1 == stored.len() => report.newest += 1,
                Some(_) => report.older += 1,
                None => {
                    return Err(Failure::new(format_args!(
                        "{what}: read roots {roots:?}, which no store wrote: a wrong answer"
                    )))
                }
            }
        }
        Outcome::NoHead => report.no_head += 1,
        Outcome::Error(e) => {
            report.typed_errors += 1;
            let debug = format!("{e:?}");
            let variant = debug
                .split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap_or("?")
                .to_owned();
            *report.errors.entry(variant).or_default() += 1;
        }
    }
    Ok(())
}

/// Stores a first db and then `versions` more into a fresh storage in `dir`, closing it
/// after; returns the roots stored, oldest first.
fn fixture(open: &Open, dir: &Path, versions: usize) -> Result<Vec<[Address; 3]>, Failure> {
    let runtime = crate::child::runtime();
    runtime.block_on(async {
        let storage = open(dir).context("creating the storage")?;
        let mut generator = Generator::new(
            0x7042,
            Params {
                initial_people: 600,
                ..Params::default()
            },
        );
        let mut db: Db = generator.initial_tx().apply(&history::empty_db())?;
        let mut roots = Vec::new();
        for v in 0..=versions {
            if v > 0 {
                for _ in 0..5 {
                    db = generator.next_tx().apply(&db)?;
                }
            }
            db = store(&db, &*storage, HEAD).await.context("a store")?.db;
            roots.push(db.root_addresses());
        }
        Ok(roots)
    })
}

/// Flipped bytes and truncated files: `copies` damaged copies of each kind of the
/// storage `open` keeps in a directory (see the module docs).
///
/// # Errors
/// A copy that read as a db no store wrote, that panicked or hung; or no damage noticed
/// at all.
pub fn flipped_and_truncated(open: Open, copies: usize, seed: u64) -> Result<TornReport, Failure> {
    let scratch = tempfile::tempdir().context("a temp dir")?;
    let original = scratch.path().join("original");
    std::fs::create_dir_all(&original).context("a directory")?;
    let stored: Stored = Arc::new(Mutex::new(fixture(&open, &original, 2)?));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut report = TornReport::default();
    for n in 0..copies * 2 {
        let copy = scratch.path().join(format!("copy-{n}"));
        copy_tree(&original, &copy).context("copying the files")?;
        let Some((file, len, at)) = pick(&copy, &mut rng).context("listing the files")? else {
            continue;
        };
        let name = file
            .strip_prefix(&copy)
            .unwrap_or(&file)
            .display()
            .to_string();
        let what = if n % 2 == 0 {
            let mut bytes = std::fs::read(&file).context("reading a file")?;
            let mask = rng.u8(1..=255);
            bytes[at as usize] ^= mask;
            std::fs::write(&file, bytes).context("writing a file")?;
            format!("{name} with byte {at} of {len} XOR {mask:#04x}")
        } else {
            let cut = match rng.u8(0..4) {
                0 => 0,
                1 => len - 1,
                _ => at,
            };
            std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .and_then(|f| f.set_len(cut))
                .context("truncating a file")?;
            format!("{name} cut to {cut} of {len} bytes")
        };
        check(&open, &copy, &stored, &what, &mut report)?;
        std::fs::remove_dir_all(&copy).context("removing a copy")?;
    }
    ensure!(
        report.typed_errors + report.older + report.no_head > 0,
        "no damage of {} copies was noticed: {report:?}",
        report.copies
    );
    Ok(report)
}

/// Copies taken mid-write: `copies` times, the files copied one after the other while a
/// writer in this process stores transaction after transaction (see the module docs).
///
/// # Errors
/// A copy that read as a db no store wrote, that panicked or hung.
pub fn copied_mid_write(open: Open, copies: usize) -> Result<TornReport, Failure> {
    let scratch = tempfile::tempdir().context("a temp dir")?;
    let original = scratch.path().join("original");
    std::fs::create_dir_all(&original).context("a directory")?;
    let stored: Stored = Arc::new(Mutex::new(fixture(&open, &original, 0)?));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (open, dir, stored, stop) =
            (open.clone(), original.clone(), stored.clone(), stop.clone());
        std::thread::spawn(move || -> Result<u64, Failure> {
            let runtime = crate::child::runtime();
            runtime.block_on(async {
                let storage = open(&dir).context("opening the writer")?;
                let mut db = datoms_storage::restore_from(&history::empty_db(), &*storage, HEAD)
                    .await
                    .context("restoring the writer's db")?
                    .db;
                let mut generator = Generator::new(0x7043, Params::default());
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    for _ in 0..3 {
                        let tx = generator.next_tx();
                        if let Ok(next) = tx.apply(&db) {
                            db = next;
                        }
                    }
                    // Known before it lands: a copy may catch the head moved.
                    stored
                        .lock()
                        .map_err(|_| Failure::new("the stored roots"))?
                        .push(db.root_addresses());
                    db = store(&db, &*storage, HEAD).await.context("a store")?.db;
                    n += 1;
                }
                Ok(n)
            })
        })
    };
    let mut report = TornReport::default();
    let mut result = Ok(());
    for n in 0..copies {
        let copy = scratch.path().join(format!("copy-{n}"));
        if let Err(e) = copy_tree(&original, &copy).context("copying the files") {
            result = Err(e);
            break;
        }
        // The newest entry may be a store still in flight: the copy may hold it or not,
        // so both count as stored.
        if let Err(e) = check(
            &open,
            &copy,
            &stored,
            &format!("copy {n} taken mid-write"),
            &mut report,
        ) {
            result = Err(e);
            break;
        }
        let _ = std::fs::remove_dir_all(&copy);
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer
        .join()
        .map_err(|_| Failure::new("the writer panicked"))??;
    result?;
    ensure!(
        written > 0,
        "the writer stored nothing while the copies were taken"
    );
    Ok(report)
}

/// Generates the torn-file tests for a backend that keeps its data in files: flipped
/// bytes and truncated files, and copies taken mid-write (see [`crate::torn`]). `$open`
/// is an expression of type `Fn(&Path) -> Result<S, StorageError>` (`S: Storage`) that
/// opens (creating if needed) the storage kept in a directory.
#[macro_export]
macro_rules! torn_files_test {
    ($open:expr) => {
        fn torn_open() -> $crate::torn::Open {
            ::std::sync::Arc::new(|dir: &::std::path::Path| {
                let open = $open;
                open(dir).map(|s| {
                    ::std::sync::Arc::new(s) as ::std::sync::Arc<dyn ::datoms_storage::Storage>
                })
            })
        }

        #[test]
        fn flipped_bytes_and_truncated_files_read_as_a_stored_db_or_a_typed_error(
        ) -> ::std::result::Result<(), $crate::Failure> {
            let report = $crate::torn::flipped_and_truncated(
                torn_open(),
                $crate::torn::copies(),
                0x7042_f11b,
            )?;
            eprintln!("{report:?}");
            Ok(())
        }

        #[test]
        fn a_copy_taken_mid_write_reads_as_a_stored_db_or_a_typed_error(
        ) -> ::std::result::Result<(), $crate::Failure> {
            // A third as many: each copy is of a file that keeps growing.
            let report =
                $crate::torn::copied_mid_write(torn_open(), $crate::torn::copies() / 3 + 1)?;
            eprintln!("{report:?}");
            Ok(())
        }
    };
}
