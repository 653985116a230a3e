//! The conformance suite over HTTP: every case against a real `datoms serve` process
//! over `mem:`, one server per store, through the `http://` backend.

mod served;

conformance::suite!(served::ServedFactory::new(served::Backing::Memory));
