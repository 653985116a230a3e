//! The conformance suite over HTTP: every case against a real `datoms serve` process
//! over a redb file, one server per store, through the `http://` backend. A reopen
//! kills the server (SIGKILL) and serves the same file again.

mod served;

conformance::suite!(served::ServedFactory::new(served::Backing::Redb));
