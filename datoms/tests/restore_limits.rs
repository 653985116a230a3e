//! Resource limits under load: 1000 restores at once through one HTTP client of a real
//! `datoms serve` stay within the client's in-flight cap — the file handles (sockets
//! included) of the client process and of the server stay bounded — and every restore
//! gives the stored db.

#![allow(clippy::unwrap_used)]

mod served;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backend_http::{HttpOptions, HttpStorage};
use conformance::history::{self, Generator, Params};
use datoms::{restore_from, store, RedbStorage};

/// Restores in flight at once.
const RESTORES: usize = 1000;

/// The client's cap on requests in flight.
const MAX_IN_FLIGHT: usize = 8;

/// Open file handles of process `pid` (`self` for this one).
fn handles(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Samples the handles of `pid` every millisecond until `stop`; returns the most seen.
fn sample(pid: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut most = handles(&pid);
        while !stop.load(Ordering::SeqCst) {
            most = most.max(handles(&pid));
            std::thread::sleep(Duration::from_millis(1));
        }
        most
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_restores_keep_file_handles_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut generator = Generator::new(
        0x1000,
        Params {
            initial_people: 200,
            ..Params::default()
        },
    );
    let db = generator.initial_tx().apply(&history::empty_db()).unwrap();
    let roots = {
        let storage = RedbStorage::open(&path).unwrap();
        store(&db, &storage, "main")
            .await
            .unwrap()
            .db
            .root_addresses()
    };
    let server =
        served::Server::start(&format!("redb:{}", path.display()), dir.path(), &[]).unwrap();
    let mut options = HttpOptions::new(&server.url)
        .unwrap()
        .with_token(served::TOKEN);
    options.max_in_flight = MAX_IN_FLIGHT;
    let client = Arc::new(HttpStorage::connect(options).await.unwrap());
    // One restore first: the pool holds its connections from here on.
    restore_from(&history::empty_db(), &*client, "main")
        .await
        .unwrap();
    let (client_before, server_before) = (handles("self"), handles(&server.pid().to_string()));

    let stop = Arc::new(AtomicBool::new(false));
    let client_sampler = sample("self".into(), stop.clone());
    let server_sampler = sample(server.pid().to_string(), stop.clone());
    let tasks: Vec<_> = (0..RESTORES)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                restore_from(&history::empty_db(), &*client, "main")
                    .await
                    .map(|r| r.db.root_addresses())
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(
            t.await.unwrap().unwrap(),
            roots,
            "a restore gave another db"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let (client_most, server_most) = (
        client_sampler.join().unwrap(),
        server_sampler.join().unwrap(),
    );
    eprintln!(
        "{RESTORES} concurrent restores, {MAX_IN_FLIGHT} in flight: client handles {client_before} → at most {client_most}, server {server_before} → at most {server_most}"
    );
    // A connection per request in flight at most, and a few for the runtime's own use.
    let slack = MAX_IN_FLIGHT + 16;
    assert!(
        client_most <= client_before + slack,
        "the client opened {} handles over its {client_before} for {RESTORES} restores",
        client_most - client_before
    );
    assert!(
        server_most <= server_before + slack,
        "the server opened {} handles over its {server_before} for {RESTORES} restores",
        server_most - server_before
    );
}
