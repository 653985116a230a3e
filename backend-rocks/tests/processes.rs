//! One db over two RocksDB directories and three processes: every head stays on a
//! complete commit (see `conformance::processes`).

use std::path::Path;
use std::sync::Arc;

use backend_rocks::RocksStorage;
use datoms_storage::Storage;

fn open(dir: &Path) -> Arc<dyn Storage> {
    match RocksStorage::open(dir) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("the RocksDB database must open: {e}"),
    }
}

conformance::processes_test!(open);
