//! Tuning of the RocksDB instance behind [`RocksStorage`](crate::RocksStorage), and why.
//!
//! The workload: immutable, content-addressed blobs of about 4–64 KiB (index nodes) plus
//! small commit records, keyed by 32-byte BLAKE3 hashes (uniformly random: no locality,
//! no useful prefix), read by batched point lookups, written once, deleted only by GC; and
//! a handful of tiny head records moved by compare-and-swap.

use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options};

/// Default shared cache for SST blocks and blob values: 256 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// Default threshold for key-value separation: values of at least 4 KiB (index nodes) go
/// to blob files, smaller ones (commit records) stay inline in the SST files.
pub const DEFAULT_MIN_BLOB_SIZE: u64 = 4 << 10;

/// Bloom filter bits per key: about a 1% false-positive rate.
const BLOOM_BITS_PER_KEY: f64 = 10.0;

/// Upper bound of the write-ahead log across column families. With two column families a
/// WAL file can only be deleted once both have flushed what it holds; the heads family
/// fills its memtable very slowly, so without a cap it would pin old WAL files (default
/// cap: 4 × all write buffers). Reaching the cap flushes the stale family.
const MAX_TOTAL_WAL_BYTES: u64 = 128 << 20;

/// How a [`RocksStorage`](crate::RocksStorage) configures RocksDB. The defaults are tuned
/// for datoms' workload (see the crate docs); the few knobs here are the ones that depend
/// on the machine or the data, not on correctness — there is deliberately no way to turn
/// off the write-ahead log or synchronous commits.
///
/// ```
/// let config = backend_rocks::RocksConfig::default()
///     .with_cache_bytes(64 << 20)
///     .with_min_blob_size(None);
/// assert_eq!(config.cache_bytes(), 64 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RocksConfig {
    cache_bytes: usize,
    min_blob_size: Option<u64>,
}

impl Default for RocksConfig {
    fn default() -> RocksConfig {
        RocksConfig {
            cache_bytes: DEFAULT_CACHE_BYTES,
            min_blob_size: Some(DEFAULT_MIN_BLOB_SIZE),
        }
    }
}

impl RocksConfig {
    /// The size of the LRU cache shared by SST blocks (data, index, filter) and blob
    /// values of both column families. Default [`DEFAULT_CACHE_BYTES`].
    #[must_use]
    pub fn with_cache_bytes(mut self, bytes: usize) -> RocksConfig {
        self.cache_bytes = bytes;
        self
    }

    /// Values at least this large are stored in blob files (RocksDB's integrated BlobDB)
    /// instead of inline in SST files; `None` keeps every value inline. Default
    /// [`DEFAULT_MIN_BLOB_SIZE`].
    #[must_use]
    pub fn with_min_blob_size(mut self, bytes: Option<u64>) -> RocksConfig {
        self.min_blob_size = bytes;
        self
    }

    /// The shared cache size in bytes.
    pub fn cache_bytes(&self) -> usize {
        self.cache_bytes
    }

    /// The key-value separation threshold (`None`: off).
    pub fn min_blob_size(&self) -> Option<u64> {
        self.min_blob_size
    }

    /// Database-wide options and the options of the nodes, heads and write-stamp column
    /// families, all sharing `cache`.
    pub(crate) fn options(&self, cache: &Cache) -> (Options, Options, Options, Options) {
        let mut db = Options::default();
        db.create_if_missing(true);
        db.create_missing_column_families(true);
        // Compaction and flush threads: at least 2 so a flush never waits behind a long
        // compaction, at most 8.
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        db.set_max_background_jobs(i32::try_from(cores.clamp(2, 8)).unwrap_or(2));
        // Write SST and blob files back to disk steadily instead of in one burst at close.
        db.set_bytes_per_sync(1 << 20);
        db.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
        // RocksDB's info LOG files: keep a few, small.
        db.set_keep_log_file_num(4);
        db.set_max_log_file_size(8 << 20);
        // Left at RocksDB's defaults on purpose: the WAL is on, paranoid checks are on, and
        // WAL recovery is point-in-time (a torn tail after a crash is dropped, everything
        // acknowledged before it is kept).

        (
            db,
            self.nodes_options(cache),
            heads_options(cache),
            // Write stamps are small fixed records probed by address, as heads are.
            heads_options(cache),
        )
    }

    fn nodes_options(&self, cache: &Cache) -> Options {
        let mut cf = Options::default();
        cf.set_block_based_table_factory(&table_options(cache));
        // LZ4: cheap to decompress on the restore path, the only codec the build includes.
        cf.set_compression_type(DBCompressionType::Lz4);
        if let Some(min) = self.min_blob_size {
            // Values are written once and never updated: in the LSM they would be rewritten
            // by every compaction (write amplification ~10–30×); in blob files they are
            // written once and compactions move only keys and small blob references.
            cf.set_enable_blob_files(true);
            cf.set_min_blob_size(min);
            cf.set_blob_compression_type(DBCompressionType::Lz4);
            // GC deletes blobs: compactions relocate the live values of the oldest blob
            // files so that files holding deleted values are reclaimed.
            cf.set_enable_blob_gc(true);
            cf.set_blob_cache(cache);
        }
        cf
    }
}

/// Heads are a few tiny records: defaults, plus the shared cache and bloom filters.
fn heads_options(cache: &Cache) -> Options {
    let mut cf = Options::default();
    cf.set_block_based_table_factory(&table_options(cache));
    cf.set_compression_type(DBCompressionType::None);
    cf
}

fn table_options(cache: &Cache) -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    // Full (not block-based) bloom filters on whole keys: `store` asks for addresses the
    // storage mostly lacks, and a filter answers those misses without reading a block.
    // Kept on the last level too (no optimize_filters_for_hits), because those misses
    // reach every level.
    table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
    table.set_whole_key_filtering(true);
    // Index and filter blocks live in the cache, so its size bounds memory; the L0 ones
    // (the hottest, consulted on every lookup) are pinned there.
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    // Block size stays at RocksDB's 4 KiB default: with blob separation a data block holds
    // keys and blob references (or small commit records), and a point lookup reads one.
    table
}
