//! `conformance`: the suite every datoms storage backend runs. The contract cases check
//! the [`Storage`](datoms_storage::Storage) trait itself (blobs, listing, deletion, heads
//! moved by compare-and-swap, races, persistence); the database cases store, restore,
//! replay and sync real databases through the backend — random histories included — with
//! faults injected by [`FaultyStorage`](datoms_storage::FaultyStorage) and every request
//! recorded, and compare each result with the primary's db datom by datom.
//!
//! # Running the suite on a backend
//!
//! One line in an integration test of the backend's crate:
//!
//! ```ignore
//! conformance::suite!(|| async { datoms_storage::MemoryStorage::new() });
//! ```
//!
//! [`suite!`] expands to one `#[test]` per case, named by the behaviour it checks
//! (`cas_with_a_stale_version_fails_and_shows_the_current_head`,
//! `restore_fetches_only_nodes_new_since_db1`, …), each on its own multi-thread tokio
//! runtime with two workers. The list of cases lives in the macro, so a case added here
//! runs on every backend at the next build, and no backend can leave one out.
//!
//! The argument is a [`Factory`]: anything that makes a fresh, empty store, and reopens
//! a store it made (closing it and opening the same place again). A closure returning a
//! future of a store is a factory whose reopen hands back the same store, which suits
//! in-memory stores. A backend that persists implements [`Factory`] so that reopen is
//! real. Add the crate as a dev-dependency:
//!
//! ```toml
//! [dev-dependencies]
//! conformance = { path = "../conformance" }
//! ```
//!
//! # The cases
//!
//! [`cases::contract`] checks the trait's contract, [`cases::database`] checks databases
//! stored through the backend, [`cases::storages`] checks that one db over several
//! storages never leaves a head on an incomplete commit, [`cases::sync_policy`] checks
//! that every sync policy brings the replicas it serves to the head, [`cases::runtimes`]
//! checks that a lazily restored db reads from any runtime or none (each of those cases
//! starts and drops runtimes of its own on a thread of its own), [`cases::peers`] checks
//! that many peers writing one head through faults land every acknowledged transaction
//! exactly once, [`cases::follow`] checks
//! that a follower delivers every commit once and in order (under faults, and after a
//! restart), [`cases::replicate`] checks that a head copied to another storage restores
//! to the same roots, idempotently and resumably, [`cases::merge`] that a two-parent
//! merge commit stores, restores, syncs and survives a reopen, [`cases::large_values`]
//! that large values are stored once and fetched once, [`cases::gc`] that garbage
//! collection deletes only what no retained commit reaches, also while writers and
//! readers work, and [`cases::soak`] runs a long random history of stores, restores,
//! syncs and peer pushes under random faults; [`CASES`] lists them all. Each case is a plain
//! `pub async fn case(factory: &impl Factory) -> Result<(), Failure>`, so a backend's own
//! tests may also call one directly. A case never panics: it returns a [`Failure`] that
//! says what did not hold and where (the step, the seed).
//!
//! The kill -9 crash test for backends that keep data on disk lives in [`crash`], with
//! its own macro, [`crash_test!`]; the torn-file tests (flipped bytes, truncated files,
//! copies taken mid-write) in [`torn`], with [`torn_files_test!`].
//!
//! # Settings
//!
//! The property case runs [`settings::cases`] random histories (`DATOMS_CONFORMANCE_CASES`,
//! default [`settings::DEFAULT_CASES`]) from seed [`settings::seed`]
//! (`DATOMS_CONFORMANCE_SEED`). A failure names the seed that reproduces it alone.
//!
//! # Test data for benchmarks
//!
//! [`history`] makes the same reproducible transaction histories the property case uses.
//!
//! # Example: a backend over a directory of files
//!
//! This is `tests/custom_dir_backend.rs` of this crate, which runs the whole suite: a
//! complete `Storage` implementation, its `Factory` with a real reopen, and the one line.
//!
//! ```ignore
#![doc = include_str!("../tests/custom_dir_backend.rs")]
//! ```

pub mod cases;
pub mod child;
pub mod crash;
pub mod exactly_once;
mod factory;
mod failure;
pub mod history;
pub mod peer_crash;
pub mod peer_processes;
pub mod processes;
pub mod settings;
mod support;
pub mod torn;

pub use factory::Factory;
pub use failure::{Context, Failure};

/// A temporary directory, for [`crash_test!`]'s expansion in the backend's crate.
#[doc(hidden)]
pub use tempfile::tempdir;

/// Runs one case on a fresh multi-thread tokio runtime with two workers (so that racing
/// writers really run side by side). Used by [`suite!`].
///
/// # Errors
/// The case's [`Failure`], or a runtime that cannot start.
#[doc(hidden)]
pub fn run_case<Fut>(case: Fut) -> Result<(), Failure>
where
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format_args!("cannot start a tokio runtime: {e}")))?;
    runtime.block_on(case)
}

/// The conformance suite over a [`Factory`]: one `#[test]` per case, named by the case.
///
/// ```ignore
/// conformance::suite!(|| async { datoms_storage::MemoryStorage::new() });
/// ```
///
/// The factory expression is evaluated once per case, inside the case's runtime.
#[macro_export]
macro_rules! suite {
    ($factory:expr $(,)?) => {
        $crate::__with_cases!(__case_tests($factory));
    };
}

/// Every case, as `module::case`, handed to the macro `$callback` after `$args`. The
/// one list: [`suite!`] and [`CASES`] both come from it.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($callback:ident $args:tt) => {
        $crate::$callback! { $args
            contract::round_trip_returns_the_bytes_stored,
            contract::missing_address_reads_as_none,
            contract::put_is_idempotent,
            contract::concurrent_puts_of_one_blob_agree,
            contract::large_batches_round_trip,
            contract::list_pages_through_every_blob_and_delete_removes,
            contract::a_put_refreshes_the_stamp_and_delete_stale_spares_blobs_written_since,
            contract::cas_creates_a_head_only_if_absent,
            contract::cas_with_a_stale_version_fails_and_shows_the_current_head,
            contract::racing_cas_lets_exactly_one_writer_win,
            contract::cas_counter_reaches_n_with_n_racing_incrementers,
            contract::data_survives_reopen,
            contract::heads_are_listed_and_deleted_by_compare_and_delete,
            database::incremental_restore_equals_full_restore_and_log_replay,
            database::restore_fetches_only_nodes_new_since_db1,
            database::a_replica_a_few_commits_behind_restores_in_three_round_trips,
            database::an_incremental_restore_never_fetches_more_than_a_full_restore,
            database::restoring_the_same_commit_reads_no_node,
            database::storing_an_unchanged_db_writes_nothing,
            database::store_is_idempotent_after_a_torn_put,
            database::failure_before_head_cas_leaves_previous_db_restorable,
            database::corrupt_node_bytes_give_a_typed_error,
            database::missing_node_gives_a_typed_error_naming_it,
            database::two_writers_from_one_base_second_retries_and_both_land,
            database::racing_writers_each_land_exactly_once_after_retries,
            database::lazy_restore_loads_on_demand_and_materializes,
            database::any_stored_commit_restores_by_address,
            database::a_db_from_another_storage_stores_completely,
            database::stored_db_survives_reopen,
            database::sync_brings_any_replica_to_the_head,
            database::restore_from_a_lazy_replica_reads_only_new_nodes,
            database::restoring_a_missing_head_is_a_typed_error,
            database::a_head_on_a_missing_commit_is_a_typed_error_naming_it,
            database::a_new_db_never_overwrites_an_existing_head,
            large_values::a_large_value_is_written_once_and_not_again_for_a_neighbouring_change,
            large_values::a_restore_that_holds_nothing_fetches_each_large_value_once,
            large_values::a_lost_large_value_is_found_and_repaired,
            large_values::replicate_copies_large_values,
            storages::one_db_stored_to_two_storages_is_complete_in_both,
            storages::a_lazy_db_stored_to_another_storage_is_complete_there,
            storages::a_store_retried_after_failed_writes_is_complete,
            storages::a_storage_that_lost_blobs_is_found_and_repaired,
            storages::random_interleavings_over_three_storages_leave_every_head_complete,
            sync_policy::auto_sync_brings_a_replica_with_another_schema_to_the_head,
            sync_policy::auto_sync_brings_a_replica_with_an_unstored_transaction_to_the_head,
            runtimes::a_lazy_db_reads_after_the_runtime_that_restored_it_is_dropped,
            runtimes::a_lazy_db_reads_inside_a_current_thread_runtime,
            runtimes::a_lazy_db_reads_from_threads_without_a_runtime,
            peers::concurrent_peers_land_every_acknowledged_transaction_exactly_once,
            peers::an_offline_peer_reconnects_and_lands_everything_once,
            follow::follow_delivers_every_commit_once_in_order_under_faults,
            follow::a_restarted_follower_resumes_after_its_last_commit,
            follow::a_follower_far_behind_jumps_and_one_near_steps_through,
            replicate::replicate_makes_a_replica_that_restores_to_the_same_roots,
            replicate::an_interrupted_replicate_resumes_without_copying_again,
            replicate::replicate_refuses_corrupt_blobs_and_a_diverged_target,
            merge::a_merge_commit_stores_restores_and_syncs,
            gc::gc_keeps_retained_commits_whole_and_collects_the_rest,
            gc::gc_dry_run_deletes_nothing,
            gc::gc_keeps_unreachable_blobs_younger_than_the_grace_period,
            gc::gc_concurrent_with_stores_and_restores_never_breaks_a_retained_commit,
            soak::a_long_history_under_random_faults_gives_right_answers_or_typed_errors,
        }
    };
}

/// The tests [`suite!`] expands to.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_tests {
    (($factory:expr) $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() -> ::std::result::Result<(), $crate::Failure> {
                $crate::run_case(async {
                    let factory = $factory;
                    $crate::cases::$module::$case(&factory).await
                })
            }
        )*
    };
}

/// The names of the cases, as `module::case`.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_names {
    (() $($module:ident :: $case:ident),* $(,)?) => {
        /// Every case [`suite!`] runs, as `module::case` (e.g.
        /// `"contract::put_is_idempotent"`), in the order it runs them.
        pub const CASES: &[&str] = &[$(concat!(stringify!($module), "::", stringify!($case))),*];
    };
}

__with_cases!(__case_names());

#[cfg(test)]
mod tests {
    /// Every `pub async fn` in `cases/` is a case, and [`suite!`] runs each exactly once.
    #[test]
    fn every_case_is_in_the_suite_once() {
        let mut written = Vec::new();
        for (module, source) in [
            ("contract", include_str!("cases/contract.rs")),
            ("database", include_str!("cases/database.rs")),
            ("storages", include_str!("cases/storages.rs")),
            ("sync_policy", include_str!("cases/sync_policy.rs")),
            ("runtimes", include_str!("cases/runtimes.rs")),
            ("peers", include_str!("cases/peers.rs")),
            ("large_values", include_str!("cases/large_values.rs")),
            ("follow", include_str!("cases/follow.rs")),
            ("replicate", include_str!("cases/replicate.rs")),
            ("merge", include_str!("cases/merge.rs")),
            ("gc", include_str!("cases/gc.rs")),
            ("soak", include_str!("cases/soak.rs")),
        ] {
            for line in source.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ") {
                    let name = rest.split(['<', '(']).next().unwrap_or(rest);
                    written.push(format!("{module}::{name}"));
                }
            }
        }
        let mut listed: Vec<String> = super::CASES.iter().map(|c| c.to_string()).collect();
        written.sort();
        listed.sort();
        assert_eq!(written, listed);
    }
}
