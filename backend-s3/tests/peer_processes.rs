//! Four writer processes on one head of the S3 test server, each through a peer with a
//! file outbox, random delays and injected faults: every acknowledged transaction lands
//! exactly once or was reported rejected, and the head equals a serial replay of the
//! landed ones in commit order (see `conformance::peer_processes`).

mod common;

use std::sync::Arc;

use backend_s3::S3Storage;
use datoms_storage::Storage;

/// A fresh prefix of the local server, as `endpoint prefix` (the writers connect to the
/// parent's server).
fn location() -> String {
    let server = common::local().unwrap_or_else(|e| panic!("the S3 test server: {e}"));
    format!("{} {}", server.endpoint, common::fresh_prefix())
}

async fn open(location: String) -> Arc<dyn Storage> {
    let (endpoint, prefix) = location
        .split_once(' ')
        .unwrap_or_else(|| panic!("a location is `endpoint prefix`: {location:?}"));
    match S3Storage::connect(common::local_options(endpoint, prefix)).await {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("connecting to {location}: {e}"),
    }
}

conformance::peer_processes_test!(location, open);
