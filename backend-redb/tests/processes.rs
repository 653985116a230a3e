//! One db over two redb files and three processes: every head stays on a complete commit
//! (see `conformance::processes`).

use std::path::Path;
use std::sync::Arc;

use backend_redb::RedbStorage;
use datoms_storage::Storage;

fn open(dir: &Path) -> Arc<dyn Storage> {
    match RedbStorage::open(dir.join("db.redb")) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("the redb file must open: {e}"),
    }
}

conformance::processes_test!(open);
