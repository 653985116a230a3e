//! The kill -9 crash test on a real redb file: a child stores in a loop and is killed
//! with SIGKILL at random moments; after each kill the file opens, the head names a
//! complete commit, and restore gives a db the child stored (see `conformance::crash`).

use std::path::Path;
use std::sync::Arc;

use backend_redb::RedbStorage;
use datoms_storage::Storage;

fn open(dir: &Path) -> Arc<dyn Storage> {
    match RedbStorage::open(dir.join("db.redb")) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("the redb file must open after a kill: {e}"),
    }
}

conformance::crash_test!(open);
