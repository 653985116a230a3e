//! The kill -9 crash test on a real RocksDB directory: a child stores in a loop and is
//! killed with SIGKILL at random moments; after each kill the database opens (RocksDB
//! replays its WAL; the kernel has released the dead child's `LOCK`), the head names a
//! complete commit, and restore gives a db the child stored (see `conformance::crash`).

use std::path::Path;
use std::sync::Arc;

use backend_rocks::RocksStorage;
use datoms_storage::Storage;

fn open(dir: &Path) -> Arc<dyn Storage> {
    match RocksStorage::open(dir) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("the RocksDB database must open after a kill: {e}"),
    }
}

conformance::crash_test!(open);
