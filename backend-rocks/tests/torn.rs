//! Torn RocksDB directories: flipped bytes, truncated files and copies taken while a
//! writer stores read as a stored db or fail with a typed error (see
//! `conformance::torn`).

use backend_rocks::RocksStorage;

conformance::torn_files_test!(|dir: &std::path::Path| RocksStorage::open(dir.join("db")));
