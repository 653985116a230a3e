//! kill -9 of a peer pushing to a redb file, at random moments: after every restart
//! nothing acknowledged is lost and nothing is applied twice (see
//! `conformance::peer_crash`).

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

conformance::peer_crash_test!(open);
