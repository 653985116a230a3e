//! What a replica fetched: per restore and in total, in the names JavaScript sees.

use datoms_core::RestoreStats;
use serde::Serialize;

/// The I/O of one restore, or the sum of a replica's restores. Serialized with camelCase
/// names (`nodesFetched`, `bytesFetched`…) for JavaScript.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Restores run (1 for one restore).
    pub restores: u64,
    /// Heads read (a head document, or the head a sync answer names).
    pub head_reads: u64,
    /// HTTP requests made, of every kind: head reads, blobs, sync bundles, the one
    /// capabilities probe. With one-round-trip sync a follow step is 1.
    pub requests: u64,
    /// Batches of blob requests (one per step of the restore machine; the requests of a
    /// batch run concurrently). A sync bundle is one, and each batch of blobs it lacked
    /// one more.
    pub round_trips: u64,
    /// Blob requests made: nodes, commits and large values.
    pub blobs_fetched: u64,
    /// Tree nodes fetched.
    pub nodes_fetched: u64,
    /// Commit records fetched.
    pub commits_fetched: u64,
    /// Large values fetched.
    pub large_values_fetched: u64,
    /// Bytes of the blobs fetched.
    pub bytes_fetched: u64,
    /// Subtrees taken from the previous db instead of fetched.
    pub nodes_reused: u64,
    /// Nodes fetched that the result does not use.
    pub nodes_unused: u64,
}

impl Stats {
    /// The stats of one restore: the machine's counts, the head reads besides and the
    /// requests made (counted by the fetcher).
    pub fn of_restore(r: &RestoreStats, head_reads: u64, requests: u64) -> Stats {
        Stats {
            restores: 1,
            head_reads,
            requests,
            round_trips: r.round_trips,
            blobs_fetched: r.nodes_fetched + r.commits_fetched + r.large_values_fetched,
            nodes_fetched: r.nodes_fetched,
            commits_fetched: r.commits_fetched,
            large_values_fetched: r.large_values_fetched,
            bytes_fetched: r.bytes_fetched,
            nodes_reused: r.nodes_reused,
            nodes_unused: r.nodes_unused,
        }
    }

    /// Adds `other` to these totals.
    pub fn add(&mut self, other: &Stats) {
        self.restores += other.restores;
        self.head_reads += other.head_reads;
        self.requests += other.requests;
        self.round_trips += other.round_trips;
        self.blobs_fetched += other.blobs_fetched;
        self.nodes_fetched += other.nodes_fetched;
        self.commits_fetched += other.commits_fetched;
        self.large_values_fetched += other.large_values_fetched;
        self.bytes_fetched += other.bytes_fetched;
        self.nodes_reused += other.nodes_reused;
        self.nodes_unused += other.nodes_unused;
    }

    /// As JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}
