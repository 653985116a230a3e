//! The outbox: a peer's durable queue of pending transactions, as written.
//!
//! # Format (outbox format version [`OUTBOX_FORMAT_VERSION`])
//! An append-only log. The header is 23 bytes: the magic `datoms-outbox\n` (14 bytes),
//! the format version (1 byte) and the outbox's **origin** (8 random bytes, chosen when
//! the outbox is created; the first half of every [`TxId`] it gives out). The header is
//! written whole before the file gets its name (temporary file, fsync, rename), so it is
//! never torn.
//!
//! Then records, each `[payload length: u32 LE][xxh3-64 of the payload: u64 LE][payload]`,
//! the payload a msgpack record (serde's encoding of the enum `Record`):
//! - `Tx { seq, ops, on, datoms }`: a pending transaction, its ops exactly as written
//!   (tempids, lookup refs, upserts, `:db/cas`, as serde encodes [`TxOp`]); its id is
//!   `origin ‖ seq` (big-endian), and `seq` grows by one per transaction. `datoms` is what
//!   the ops resolved to on the local db when they were acknowledged: the transaction
//!   number and each datom as `[e, a, v, added]`, values inline whatever their size (the
//!   out-of-line encoding of large values is for stored nodes and logs, never the
//!   outbox). `on` is the commit the local db stood on (absent: a db never stored).
//! - `Resolved { landed, rejected, base, chain }`: what one push or rebase decided — the
//!   sequence numbers that landed, those rejected (with the position and message of the
//!   error), the commit up to which every pending transaction is known not to have landed
//!   (the peer's new base), and what became of the recorded datoms of the transactions
//!   left pending: `Kept` (a push landed the first ones; the commit it made is the old
//!   base plus exactly their datoms, so the others' datoms hold on it), `Rerun { on,
//!   datoms }` (a rebase ran them again on commit `on`; their new datoms, in order) or
//!   `Stale` (they no longer describe the local db);
//! - `Taken { through }`: the application took the rejections up to `through`;
//! - `Next { seq }`: the next sequence number is at least `seq` (compaction writes it
//!   first, so that dropping the records of landed transactions never gives an id out
//!   twice).
//!
//! **The recorded chain.** While every pending transaction has datoms recorded on one
//! commit in order (the first `Tx` after an empty outbox names it, `Kept` and `Rerun`
//! move it), opening a peer onto that commit replays the datoms (as a log replay does)
//! instead of resolving every transaction again; any other open, and every rebase,
//! resolves the ops as written.
//!
//! A record is durable (`fsync`) before the call that wrote it returns: a transaction is
//! acknowledged only once its `Tx` record is.
//!
//! **A torn tail is dropped, never an obstacle.** A crash in the middle of an append
//! leaves a last record that is cut short or fails its checksum, possibly followed by
//! zeros (a file extended before its data was written): a record after which nothing
//! but zeros follows its declared end. It was never acknowledged, so opening the outbox
//! drops it (and truncates the file there). A damaged record with anything else after
//! it is not a torn append: that is [`OutboxError::Corrupt`], naming the offset.
//!
//! The file is locked (`flock`, exclusive, on Unix) while open: two peers on one outbox
//! would give out the same ids. Opening compacts the file (temporary file, fsync,
//! rename) when it holds records of resolved transactions, so the work of an open follows
//! what is pending, not the outbox's history.
//!
//! ## Versions
//! - 2: the format above.
//! - 1: `Tx { seq, ops }` and `Resolved { landed, rejected, base }`, no recorded datoms
//!   and no `Next` (a compaction of an outbox with nothing pending gave ids out again).
//!   Still read (its pending transactions are resolved again at open); the first
//!   compaction rewrites the file as version 2.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datoms_core::tx::TxOp;
use datoms_core::value::{Keyword, Value};
use datoms_core::{Address, Datom, TxId, TxLogEntry};
use serde::{Deserialize, Serialize};

/// The version of the outbox file format, written in its header.
pub const OUTBOX_FORMAT_VERSION: u8 = 2;

const MAGIC: &[u8; 14] = b"datoms-outbox\n";
const HEADER_LEN: usize = MAGIC.len() + 1 + 8;
const RECORD_HEAD: usize = 12;
/// A record longer than this is not one we wrote: the length field is damaged.
const MAX_RECORD: usize = 1 << 30;

/// An error of the outbox. Each names the outbox and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// Reading, writing or syncing the file failed.
    #[error("outbox {path}: {operation} failed: {source}")]
    Io {
        /// The outbox file.
        path: PathBuf,
        /// What was being done (`append`, `open`, `compact`…).
        operation: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an outbox, or one of another format version.
    #[error("outbox {path} is not readable: {reason}")]
    NotAnOutbox {
        /// The outbox file.
        path: PathBuf,
        /// What the header holds.
        reason: String,
    },
    /// A record that is damaged and is not the torn tail of a crashed append.
    #[error("outbox {path} is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The outbox file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Another peer (in this process or another) has the outbox open.
    #[error("outbox {path} is in use by another peer")]
    Locked {
        /// The outbox file.
        path: PathBuf,
    },
}

/// One record of the outbox log (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Record {
    /// A pending transaction.
    Tx {
        /// Its sequence number.
        seq: u64,
        /// Its ops as written.
        ops: Vec<TxOp>,
        /// The commit the local db stood on when it was acknowledged.
        on: Option<Address>,
        /// What the ops resolved to on the local db then (`None`: not recorded).
        datoms: Option<Logged>,
    },
    /// What a push or rebase decided.
    Resolved {
        /// Sequence numbers that landed.
        landed: Vec<u64>,
        /// Sequence numbers rejected: (seq, position, error message).
        rejected: Vec<(u64, u64, String)>,
        /// The peer's new base commit.
        base: Option<Address>,
        /// What became of the recorded datoms of the transactions left.
        chain: Chain,
    },
    /// The application took the rejections up to this sequence number.
    Taken {
        /// The last sequence number taken.
        through: u64,
    },
    /// The next transaction's sequence number is at least this (written by compaction,
    /// which drops the records of landed transactions: ids are never given out twice).
    Next {
        /// The next sequence number.
        seq: u64,
    },
}

/// What became of the recorded datoms of the pending transactions a push or rebase left.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Chain {
    /// They still hold: on `base`, when the record names one (a landing), else where
    /// they were.
    Kept,
    /// The transactions were run again on commit `on`: their datoms, in order.
    Rerun {
        /// The commit they were run on.
        on: Option<Address>,
        /// Each one's datoms, in pending order.
        datoms: Vec<Logged>,
    },
    /// They no longer describe the local db.
    Stale,
}

/// A transaction's resolved datoms, as the outbox keeps them: its transaction number and
/// each datom as `(e, a, v, added)` (values inline).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Logged {
    tx: u64,
    datoms: Vec<(u64, Keyword, Value, bool)>,
}

impl Logged {
    /// The datoms of a tx log entry.
    pub(crate) fn of(entry: &TxLogEntry) -> Logged {
        Logged {
            tx: entry.tx,
            datoms: entry
                .datoms
                .iter()
                .map(|d| (d.e, d.a.clone(), d.v.clone(), d.added))
                .collect(),
        }
    }

    /// The tx log entry, with id `id`.
    pub(crate) fn entry(&self, id: TxId) -> TxLogEntry {
        TxLogEntry {
            tx: self.tx,
            datoms: self
                .datoms
                .iter()
                .map(|(e, a, v, added)| Datom {
                    e: *e,
                    a: a.clone(),
                    v: v.clone(),
                    tx: self.tx,
                    added: *added,
                })
                .collect(),
            id: Some(id),
        }
    }
}

/// The records of format version 1, read and converted to version 2's.
#[derive(Deserialize)]
enum RecordV1 {
    Tx {
        seq: u64,
        ops: Vec<TxOp>,
    },
    Resolved {
        landed: Vec<u64>,
        rejected: Vec<(u64, u64, String)>,
        base: Option<Address>,
    },
    Taken {
        through: u64,
    },
}

impl From<RecordV1> for Record {
    fn from(r: RecordV1) -> Record {
        match r {
            RecordV1::Tx { seq, ops } => Record::Tx {
                seq,
                ops,
                on: None,
                datoms: None,
            },
            RecordV1::Resolved {
                landed,
                rejected,
                base,
            } => Record::Resolved {
                landed,
                rejected,
                base,
                chain: Chain::Stale,
            },
            RecordV1::Taken { through } => Record::Taken { through },
        }
    }
}

/// A pending transaction as the outbox holds it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pending {
    pub(crate) seq: u64,
    pub(crate) ops: Vec<TxOp>,
    pub(crate) datoms: Option<Logged>,
}

/// A rejection as recorded: the transaction, its position and the error's message.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RecordedRejection {
    pub(crate) seq: u64,
    pub(crate) position: u64,
    pub(crate) ops: Vec<TxOp>,
    pub(crate) message: String,
}

/// What an outbox holds: its origin, the pending transactions in order, the base commit
/// last recorded, the rejections the application has not taken, and where the recorded
/// datoms of the pending transactions stand.
#[derive(Clone, Debug, Default)]
pub(crate) struct Contents {
    pub(crate) origin: [u8; 8],
    pub(crate) pending: Vec<Pending>,
    pub(crate) next_seq: u64,
    pub(crate) base: Option<Address>,
    pub(crate) rejected: Vec<RecordedRejection>,
    /// The commit the recorded datoms of the pending transactions were resolved on, one
    /// after the other; `None` when they do not form such a chain.
    chain_on: Option<Option<Address>>,
    /// A `Next` record was read (compaction keeps one).
    next_recorded: bool,
    /// The number of records the outbox holds.
    records: usize,
}

impl Contents {
    fn apply(&mut self, record: Record) {
        self.records += 1;
        match record {
            Record::Tx {
                seq,
                ops,
                on,
                datoms,
            } => {
                self.next_seq = self.next_seq.max(seq + 1);
                if self.pending.is_empty() {
                    self.chain_on = Some(on);
                } else if self.chain_on != Some(on) {
                    self.chain_on = None;
                }
                if datoms.is_none() {
                    self.chain_on = None;
                }
                self.pending.push(Pending { seq, ops, datoms });
            }
            Record::Resolved {
                landed,
                rejected,
                base,
                chain,
            } => {
                let mut ops: BTreeMap<u64, Vec<TxOp>> = BTreeMap::new();
                let gone: std::collections::HashSet<u64> = landed
                    .iter()
                    .copied()
                    .chain(rejected.iter().map(|r| r.0))
                    .collect();
                self.pending.retain(|p| {
                    if gone.contains(&p.seq) {
                        ops.insert(p.seq, p.ops.clone());
                        false
                    } else {
                        true
                    }
                });
                for (seq, position, message) in rejected {
                    self.rejected.push(RecordedRejection {
                        seq,
                        position,
                        ops: ops.remove(&seq).unwrap_or_default(),
                        message,
                    });
                }
                if base.is_some() {
                    self.base = base;
                }
                match chain {
                    Chain::Kept => {
                        if base.is_some() && self.chain_on.is_some() {
                            self.chain_on = Some(base);
                        }
                    }
                    Chain::Rerun { on, datoms } => {
                        if datoms.len() == self.pending.len() {
                            for (p, d) in self.pending.iter_mut().zip(datoms) {
                                p.datoms = Some(d);
                            }
                            self.chain_on = Some(on);
                        } else {
                            self.chain_on = None;
                        }
                    }
                    Chain::Stale => self.chain_on = None,
                }
                if self.pending.is_empty() {
                    self.chain_on = None;
                }
            }
            Record::Taken { through } => self.rejected.retain(|r| r.seq > through),
            Record::Next { seq } => {
                self.next_seq = self.next_seq.max(seq);
                self.next_recorded = true;
            }
        }
    }

    /// The commit the pending transactions' recorded datoms were resolved on, one after
    /// the other, if they were (`Some(None)`: on a db never stored). `None` when some
    /// were not recorded or were recorded on different dbs.
    pub(crate) fn chain_on(&self) -> Option<Option<Address>> {
        if self.pending.iter().all(|p| p.datoms.is_some()) {
            self.chain_on
        } else {
            None
        }
    }

    /// The number of records compaction would drop.
    pub(crate) fn dead(&self) -> usize {
        let live = usize::from(self.next_recorded)
            + usize::from(self.base.is_some() || !self.rejected.is_empty())
            + 2 * self.rejected.len()
            + self.pending.len();
        self.records.saturating_sub(live)
    }

    /// The records that say what these contents say, fewest first.
    fn live_records(&self) -> Vec<Record> {
        let mut out = vec![Record::Next { seq: self.next_seq }];
        if self.base.is_some() || !self.rejected.is_empty() {
            out.push(Record::Resolved {
                landed: Vec::new(),
                rejected: Vec::new(),
                base: self.base,
                chain: Chain::Stale,
            });
        }
        // A rejection is kept with its ops, as a Tx record resolved right after.
        for r in &self.rejected {
            out.push(Record::Tx {
                seq: r.seq,
                ops: r.ops.clone(),
                on: None,
                datoms: None,
            });
            out.push(Record::Resolved {
                landed: Vec::new(),
                rejected: vec![(r.seq, r.position, r.message.clone())],
                base: None,
                chain: Chain::Stale,
            });
        }
        let chain_on = self.chain_on();
        for p in &self.pending {
            out.push(Record::Tx {
                seq: p.seq,
                ops: p.ops.clone(),
                on: chain_on.flatten(),
                datoms: chain_on.and(p.datoms.clone()),
            });
        }
        out
    }
}

/// The id of transaction `seq` of an outbox with this origin.
pub(crate) fn tx_id(origin: [u8; 8], seq: u64) -> TxId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&origin);
    id[8..].copy_from_slice(&seq.to_be_bytes());
    TxId(id)
}

/// The sequence number of `id` if an outbox with this origin gave it out.
pub(crate) fn seq_of(origin: [u8; 8], id: TxId) -> Option<u64> {
    let (o, s) = id.0.split_at(8);
    (o == origin).then(|| u64::from_be_bytes(s.try_into().unwrap_or([0; 8])))
}

/// Where a peer keeps its pending transactions: a local file (durable: each append is
/// fsynced before it returns) or memory (for tests; "durable" for as long as the
/// [`MemoryOutbox`] lives, so a test can drop a peer and open another on it).
#[derive(Debug)]
pub struct Outbox {
    backing: Backing,
    contents: Contents,
}

/// The bytes of an in-memory outbox, shared by the peers opened on it one after the
/// other (a test's stand-in for the file that survives a killed process).
#[derive(Clone, Debug, Default)]
pub struct MemoryOutbox(Arc<Mutex<Vec<u8>>>);

impl MemoryOutbox {
    /// A new, empty in-memory outbox.
    pub fn new() -> MemoryOutbox {
        MemoryOutbox::default()
    }

    /// The bytes, in the file format (for tests that damage them as a crash would).
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Replaces the bytes.
    pub fn set_bytes(&self, bytes: Vec<u8>) {
        if let Ok(mut b) = self.0.lock() {
            *b = bytes;
        }
    }
}

#[derive(Debug)]
enum Backing {
    File { path: PathBuf, file: File },
    Memory { shared: MemoryOutbox },
}

fn io(path: &Path, operation: &'static str) -> impl FnOnce(std::io::Error) -> OutboxError {
    let path = path.to_owned();
    move |source| OutboxError::Io {
        path,
        operation,
        source,
    }
}

impl Outbox {
    /// Opens the outbox file at `path`, creating it (with a new origin) if it does not
    /// exist, dropping a torn last record and compacting resolved ones.
    ///
    /// # Errors
    /// [`OutboxError::Locked`] if another peer has it open, [`OutboxError::NotAnOutbox`],
    /// [`OutboxError::Corrupt`] for damage other than a torn tail, [`OutboxError::Io`].
    #[tracing::instrument(level = "info", skip_all, fields(path = %path.as_ref().display()))]
    pub fn open(path: impl AsRef<Path>) -> Result<Outbox, OutboxError> {
        let path = path.as_ref().to_owned();
        if !path.exists() {
            write_atomically(&path, &header(new_origin(&path)?))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io(&path, "open"))?;
        lock(&file, &path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path, "read"))?;
        let (contents, good_len, version) = parse(&path, &bytes)?;
        if good_len < bytes.len() {
            tracing::warn!(
                dropped = bytes.len() - good_len,
                "dropped the torn tail of a crashed append"
            );
            file.set_len(good_len as u64)
                .map_err(io(&path, "truncate"))?;
            file.sync_all().map_err(io(&path, "sync"))?;
        }
        let mut outbox = Outbox {
            backing: Backing::File { path, file },
            contents,
        };
        // An older version is rewritten in this one before anything is appended.
        if outbox.contents.dead() > 0 || version != OUTBOX_FORMAT_VERSION {
            outbox.compact()?;
        }
        Ok(outbox)
    }

    /// An outbox in memory, on `shared`'s bytes (empty: a new outbox).
    ///
    /// # Errors
    /// As [`Outbox::open`], for bytes a previous outbox on `shared` left.
    pub fn memory(shared: &MemoryOutbox) -> Result<Outbox, OutboxError> {
        let path = PathBuf::from("(memory)");
        let mut bytes = shared.bytes();
        if bytes.is_empty() {
            bytes = header(new_origin(&path)?);
        }
        let (contents, good_len, version) = parse(&path, &bytes)?;
        bytes.truncate(good_len);
        shared.set_bytes(bytes);
        let mut outbox = Outbox {
            backing: Backing::Memory {
                shared: shared.clone(),
            },
            contents,
        };
        // An older version is rewritten in this one before anything is appended.
        if outbox.contents.dead() > 0 || version != OUTBOX_FORMAT_VERSION {
            outbox.compact()?;
        }
        Ok(outbox)
    }

    /// The file, or `(memory)`.
    pub fn path(&self) -> &Path {
        match &self.backing {
            Backing::File { path, .. } => path,
            Backing::Memory { .. } => Path::new("(memory)"),
        }
    }

    pub(crate) fn contents(&self) -> &Contents {
        &self.contents
    }

    /// Appends `records` durably (one write, one fsync).
    pub(crate) fn append(&mut self, records: &[Record]) -> Result<(), OutboxError> {
        let mut bytes = Vec::new();
        for r in records {
            encode_record(r, &mut bytes);
        }
        match &mut self.backing {
            Backing::File { path, file } => {
                file.write_all(&bytes).map_err(io(path, "append"))?;
                file.sync_data().map_err(io(path, "sync"))?;
            }
            Backing::Memory { shared } => {
                if let Ok(mut b) = shared.0.lock() {
                    b.extend_from_slice(&bytes);
                }
            }
        }
        for r in records {
            self.contents.apply(r.clone());
        }
        Ok(())
    }

    /// Rewrites the outbox with only its live records, atomically.
    pub(crate) fn compact(&mut self) -> Result<(), OutboxError> {
        let mut bytes = header(self.contents.origin);
        let live = self.contents.live_records();
        for r in &live {
            encode_record(r, &mut bytes);
        }
        match &mut self.backing {
            Backing::File { path, file } => {
                write_atomically(path, &bytes)?;
                let new = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&*path)
                    .map_err(io(path, "open"))?;
                lock(&new, path)?;
                *file = new;
            }
            Backing::Memory { shared } => shared.set_bytes(bytes),
        }
        self.contents.records = live.len();
        self.contents.next_recorded = true;
        Ok(())
    }
}

fn header(origin: [u8; 8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.push(OUTBOX_FORMAT_VERSION);
    h.extend_from_slice(&origin);
    h
}

fn new_origin(path: &Path) -> Result<[u8; 8], OutboxError> {
    let mut origin = [0u8; 8];
    getrandom::getrandom(&mut origin).map_err(|e| OutboxError::Io {
        path: path.to_owned(),
        operation: "choose an origin",
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(origin)
}

pub(crate) fn encode_record(record: &Record, out: &mut Vec<u8>) {
    // Encoding plain data into a Vec cannot fail.
    let payload = rmp_serde::to_vec(record).unwrap_or_default();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// Reads an outbox's bytes: its contents and the length of the part that is whole (a
/// torn tail after it is to be dropped).
fn parse(path: &Path, bytes: &[u8]) -> Result<(Contents, usize, u8), OutboxError> {
    let not_outbox = |reason: String| OutboxError::NotAnOutbox {
        path: path.to_owned(),
        reason,
    };
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err(not_outbox("no outbox header".into()));
    }
    let version = bytes[MAGIC.len()];
    if version != OUTBOX_FORMAT_VERSION && version != 1 {
        return Err(not_outbox(format!(
            "format version {version}, this build reads 1 and {OUTBOX_FORMAT_VERSION}"
        )));
    }
    let mut contents = Contents::default();
    contents
        .origin
        .copy_from_slice(&bytes[MAGIC.len() + 1..HEADER_LEN]);
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        match read_record(&bytes[at..], version) {
            Ok((record, len)) => {
                contents.apply(record);
                at += len;
            }
            Err(reason) => {
                // Torn: nothing but zeros follows the record's declared end (an append
                // cut short, or a file extended before its data was written).
                let rest = &bytes[at..];
                let end = if rest.len() < RECORD_HEAD {
                    rest.len()
                } else {
                    (RECORD_HEAD + declared_len(rest)).min(rest.len())
                };
                let torn = rest[end..].iter().all(|b| *b == 0);
                if torn {
                    return Ok((contents, at, version));
                }
                return Err(OutboxError::Corrupt {
                    path: path.to_owned(),
                    offset: at as u64,
                    reason,
                });
            }
        }
    }
    Ok((contents, at, version))
}

fn declared_len(rest: &[u8]) -> usize {
    let mut len = [0u8; 4];
    len.copy_from_slice(&rest[..4]);
    u32::from_le_bytes(len) as usize
}

/// One record of format `version` at the start of `rest` and its length with its head.
fn read_record(rest: &[u8], version: u8) -> Result<(Record, usize), String> {
    if rest.len() < RECORD_HEAD {
        return Err(format!("{} bytes, shorter than a record head", rest.len()));
    }
    let len = declared_len(rest);
    if len == 0 || len > MAX_RECORD || rest.len() - RECORD_HEAD < len {
        return Err(format!("a record of {len} bytes does not fit"));
    }
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&rest[4..RECORD_HEAD]);
    let payload = &rest[RECORD_HEAD..RECORD_HEAD + len];
    if xxhash_rust::xxh3::xxh3_64(payload) != u64::from_le_bytes(sum) {
        return Err("checksum mismatch".into());
    }
    let record = if version == 1 {
        rmp_serde::from_slice::<RecordV1>(payload).map(Record::from)
    } else {
        rmp_serde::from_slice(payload)
    }
    .map_err(|e| e.to_string())?;
    Ok((record, RECORD_HEAD + len))
}

/// Writes `bytes` to `path` through a temporary file beside it: write, fsync, rename,
/// fsync the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutboxError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        File::open(dir)?.sync_all()?;
        Ok(())
    };
    write().map_err(io(path, "write"))
}

#[cfg(unix)]
fn lock(file: &File, path: &Path) -> Result<(), OutboxError> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(OutboxError::Locked {
            path: path.to_owned(),
        }),
        Err(e) => Err(io(path, "lock")(e.into())),
    }
}

#[cfg(not(unix))]
fn lock(_file: &File, _path: &Path) -> Result<(), OutboxError> {
    Ok(())
}
