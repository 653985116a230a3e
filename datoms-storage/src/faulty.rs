//! `FaultyStorage`: wraps any storage to inject faults and count I/O. Used by the
//! conformance suite, the backends' crash tests and the benchmarks.
//!
//! Faults: per-request latency (to act like S3), a countdown after which requests fail,
//! a put that writes half its blobs and then fails (a torn batch), a CAS that fails
//! before it reaches the backend (a crash between node writes and the head move), a CAS
//! whose reply is lost after the head moved, random transient failures, random latency
//! spikes, and corrupted or truncated bytes on read (of chosen addresses, of every read,
//! or of random reads). Counters: requests by kind, blobs and bytes moved, and faults
//! injected by kind ([`FaultyStorage::injected`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use datoms_core::Address;

use crate::error::StorageError;
use crate::storage::{BlobStamp, Capabilities, Head, Storage, Version};

/// Which requests an armed countdown ([`Faults::fail_after`]) makes fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailOn {
    /// Every kind of request.
    #[default]
    Any,
    /// Only blob reads.
    Gets,
    /// Only blob writes.
    Puts,
    /// Only head CAS.
    Cas,
}

/// The fault controls of a [`FaultyStorage`]; change them at any time.
#[derive(Debug, Default)]
pub struct Faults {
    latency_micros: AtomicU64,
    /// Requests (of the `fail_on` kind) left before failures start; negative = disarmed.
    countdown: AtomicI64,
    fail_on: Mutex<FailOn>,
    torn_put: AtomicBool,
    fail_next_cas: AtomicBool,
    lose_next_cas_reply: AtomicBool,
    /// Per million requests that fail with a transient error.
    transient_per_million: AtomicU64,
    corrupt: Mutex<HashSet<Address>>,
    corrupt_all: AtomicBool,
    /// Per million blob reads that come back with one bit flipped.
    corrupt_per_million: AtomicU64,
    /// Per million blob reads that come back cut short.
    truncate_per_million: AtomicU64,
    /// Per million requests that sleep `spike_micros` first.
    spike_per_million: AtomicU64,
    spike_micros: AtomicU64,
    injected: Injected,
}

/// How many faults of each kind a [`FaultyStorage`] has injected since its creation:
/// what a soak run survived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectedFaults {
    /// Requests failed with [`StorageError::Transient`] before reaching the backend.
    pub transient: u64,
    /// CAS replies lost after the head moved (armed or random).
    pub lost_cas_replies: u64,
    /// CAS requests failed before reaching the backend ([`Faults::fail_next_cas`]).
    pub failed_cas: u64,
    /// Requests failed by an armed countdown ([`Faults::fail_after`]).
    pub failed_requests: u64,
    /// Puts that wrote part of their blobs and failed ([`Faults::tear_next_put`]).
    pub torn_puts: u64,
    /// Blob reads returned with a bit flipped.
    pub corrupt_reads: u64,
    /// Blob reads returned cut short.
    pub truncated_reads: u64,
    /// Requests delayed by a latency spike ([`Faults::set_latency_spikes`]).
    pub latency_spikes: u64,
}

impl InjectedFaults {
    /// Every fault of every kind.
    pub fn total(&self) -> u64 {
        self.transient
            + self.lost_cas_replies
            + self.failed_cas
            + self.failed_requests
            + self.torn_puts
            + self.corrupt_reads
            + self.truncated_reads
            + self.latency_spikes
    }
}

#[derive(Debug, Default)]
struct Injected {
    transient: AtomicU64,
    lost_cas_replies: AtomicU64,
    failed_cas: AtomicU64,
    failed_requests: AtomicU64,
    torn_puts: AtomicU64,
    corrupt_reads: AtomicU64,
    truncated_reads: AtomicU64,
    latency_spikes: AtomicU64,
}

/// What a read fault does to a blob's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    /// One bit flipped in the middle.
    Flip,
    /// Cut to its first half.
    Truncate,
}

impl Faults {
    /// Every request sleeps this long first.
    pub fn set_latency(&self, latency: Duration) {
        self.latency_micros
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// After `n` more requests of kind `on` succeed, every later one fails with
    /// [`StorageError::Backend`] until [`Faults::heal`].
    pub fn fail_after(&self, n: u64, on: FailOn) {
        if let Ok(mut f) = self.fail_on.lock() {
            *f = on;
        }
        self.countdown.store(n as i64, Ordering::SeqCst);
    }

    /// The next `put_many` writes the first half of its blobs, then fails.
    pub fn tear_next_put(&self) {
        self.torn_put.store(true, Ordering::SeqCst);
    }

    /// The next `cas_head` fails before it reaches the backend (as if the writer died
    /// after writing nodes and commit).
    pub fn fail_next_cas(&self) {
        self.fail_next_cas.store(true, Ordering::SeqCst);
    }

    /// The next `cas_head` reaches the backend (the head moves) but its reply is lost:
    /// the caller gets a transient error and cannot tell whether it landed.
    pub fn lose_next_cas_reply(&self) {
        self.lose_next_cas_reply.store(true, Ordering::SeqCst);
    }

    /// Each request fails with [`StorageError::Transient`] with this probability (per
    /// million), before it reaches the backend; a CAS that got through fails as often
    /// after the head moved (a lost reply). `0` turns it off.
    pub fn set_transient_failures(&self, per_million: u64) {
        self.transient_per_million
            .store(per_million.min(1_000_000), Ordering::SeqCst);
    }

    /// Reads of `address` return bytes with one bit flipped.
    pub fn corrupt_reads_of(&self, address: Address) {
        if let Ok(mut c) = self.corrupt.lock() {
            c.insert(address);
        }
    }

    /// Every read returns bytes with one bit flipped.
    pub fn corrupt_all_reads(&self, on: bool) {
        self.corrupt_all.store(on, Ordering::SeqCst);
    }

    /// Each blob read comes back with one bit flipped with this probability (per
    /// million); `0` turns it off.
    pub fn set_corrupt_reads(&self, per_million: u64) {
        self.corrupt_per_million
            .store(per_million.min(1_000_000), Ordering::SeqCst);
    }

    /// Each blob read comes back cut to its first half with this probability (per
    /// million), as a read of a partly written file or an interrupted transfer would;
    /// `0` turns it off.
    pub fn set_truncated_reads(&self, per_million: u64) {
        self.truncate_per_million
            .store(per_million.min(1_000_000), Ordering::SeqCst);
    }

    /// Each request first sleeps `spike` (on top of [`Faults::set_latency`]) with this
    /// probability (per million): the tail latency of a remote store. `0` turns it off.
    pub fn set_latency_spikes(&self, per_million: u64, spike: Duration) {
        self.spike_micros
            .store(spike.as_micros() as u64, Ordering::SeqCst);
        self.spike_per_million
            .store(per_million.min(1_000_000), Ordering::SeqCst);
    }

    /// Clears every fault but the latency (spikes included).
    pub fn heal(&self) {
        self.countdown.store(-1, Ordering::SeqCst);
        self.torn_put.store(false, Ordering::SeqCst);
        self.fail_next_cas.store(false, Ordering::SeqCst);
        self.lose_next_cas_reply.store(false, Ordering::SeqCst);
        self.transient_per_million.store(0, Ordering::SeqCst);
        self.corrupt_all.store(false, Ordering::SeqCst);
        self.corrupt_per_million.store(0, Ordering::SeqCst);
        self.truncate_per_million.store(0, Ordering::SeqCst);
        self.spike_per_million.store(0, Ordering::SeqCst);
        if let Ok(mut c) = self.corrupt.lock() {
            c.clear();
        }
    }

    /// Whether a random transient failure strikes now, as
    /// [`Faults::set_transient_failures`] asks.
    fn transient_strikes(&self) -> bool {
        let p = self.transient_per_million.load(Ordering::Relaxed);
        p > 0 && fastrand::u64(0..1_000_000) < p
    }

    /// A random transient failure before a request reaches the backend.
    fn transient(&self) -> Result<(), StorageError> {
        if self.transient_strikes() {
            add(&self.injected.transient, 1);
            return Err(StorageError::Transient {
                reason: "injected transient failure".into(),
            });
        }
        Ok(())
    }

    fn tick(&self, kind: FailOn) -> Result<(), StorageError> {
        self.transient()?;
        let on = self.fail_on.lock().map(|f| *f).unwrap_or_default();
        if on != FailOn::Any && on != kind {
            return Ok(());
        }
        let left = self.countdown.load(Ordering::SeqCst);
        if left < 0 {
            return Ok(());
        }
        if left == 0 {
            add(&self.injected.failed_requests, 1);
            return Err(StorageError::backend(format!(
                "injected failure on {kind:?}"
            )));
        }
        self.countdown.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    /// The damage a read of `a` gets, if any: a flip for the addresses and modes that ask
    /// for one, else a random flip or cut at their rates.
    fn damage(&self, a: &Address) -> Option<Damage> {
        let chance = |x: &AtomicU64| {
            let p = x.load(Ordering::Relaxed);
            p > 0 && fastrand::u64(0..1_000_000) < p
        };
        if self.corrupt_all.load(Ordering::SeqCst)
            || self.corrupt.lock().map(|c| c.contains(a)).unwrap_or(false)
            || chance(&self.corrupt_per_million)
        {
            add(&self.injected.corrupt_reads, 1);
            Some(Damage::Flip)
        } else if chance(&self.truncate_per_million) {
            add(&self.injected.truncated_reads, 1);
            Some(Damage::Truncate)
        } else {
            None
        }
    }
}

impl Damage {
    fn apply(self, bytes: &Bytes) -> Bytes {
        match self {
            Damage::Flip => {
                let mut v = bytes.to_vec();
                let mid = v.len() / 2;
                v[mid] ^= 0x01;
                Bytes::from(v)
            }
            Damage::Truncate => bytes.slice(..bytes.len() / 2),
        }
    }
}

/// A snapshot of the I/O a [`FaultyStorage`] has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// `get_many` calls.
    pub gets: u64,
    /// `put_many` calls.
    pub puts: u64,
    /// `get_head` calls.
    pub head_reads: u64,
    /// `cas_head` calls.
    pub cas: u64,
    /// `list_blobs`, `list_blob_stamps`, `delete_many` and `delete_stale` calls.
    pub other: u64,
    /// Blobs returned by reads.
    pub blobs_read: u64,
    /// Bytes returned by reads.
    pub bytes_read: u64,
    /// Blobs written.
    pub blobs_written: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

impl IoCounters {
    /// All requests of every kind.
    pub fn requests(&self) -> u64 {
        self.gets + self.puts + self.head_reads + self.cas + self.other
    }
}

#[derive(Debug, Default)]
struct Counters {
    gets: AtomicU64,
    puts: AtomicU64,
    head_reads: AtomicU64,
    cas: AtomicU64,
    other: AtomicU64,
    blobs_read: AtomicU64,
    bytes_read: AtomicU64,
    blobs_written: AtomicU64,
    bytes_written: AtomicU64,
}

/// A storage wrapper that injects [`Faults`] and counts I/O.
#[derive(Debug)]
pub struct FaultyStorage<S> {
    inner: S,
    faults: Faults,
    counters: Counters,
}

impl<S: Storage> FaultyStorage<S> {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: S) -> FaultyStorage<S> {
        let faults = Faults::default();
        faults.heal();
        FaultyStorage {
            inner,
            faults,
            counters: Counters::default(),
        }
    }

    /// The fault controls.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The I/O counted since creation or the last reset.
    pub fn counters(&self) -> IoCounters {
        let c = &self.counters;
        let l = |x: &AtomicU64| x.load(Ordering::Relaxed);
        IoCounters {
            gets: l(&c.gets),
            puts: l(&c.puts),
            head_reads: l(&c.head_reads),
            cas: l(&c.cas),
            other: l(&c.other),
            blobs_read: l(&c.blobs_read),
            bytes_read: l(&c.bytes_read),
            blobs_written: l(&c.blobs_written),
            bytes_written: l(&c.bytes_written),
        }
    }

    /// The faults injected since creation, by kind (not zeroed by
    /// [`FaultyStorage::reset_counters`]).
    pub fn injected(&self) -> InjectedFaults {
        let i = &self.faults.injected;
        let l = |x: &AtomicU64| x.load(Ordering::Relaxed);
        InjectedFaults {
            transient: l(&i.transient),
            lost_cas_replies: l(&i.lost_cas_replies),
            failed_cas: l(&i.failed_cas),
            failed_requests: l(&i.failed_requests),
            torn_puts: l(&i.torn_puts),
            corrupt_reads: l(&i.corrupt_reads),
            truncated_reads: l(&i.truncated_reads),
            latency_spikes: l(&i.latency_spikes),
        }
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        let c = &self.counters;
        for x in [
            &c.gets,
            &c.puts,
            &c.head_reads,
            &c.cas,
            &c.other,
            &c.blobs_read,
            &c.bytes_read,
            &c.blobs_written,
            &c.bytes_written,
        ] {
            x.store(0, Ordering::Relaxed);
        }
    }

    async fn delay(&self) {
        let micros = self.faults.latency_micros.load(Ordering::Relaxed);
        if micros > 0 {
            tokio::time::sleep(Duration::from_micros(micros)).await;
        }
        let p = self.faults.spike_per_million.load(Ordering::Relaxed);
        if p > 0 && fastrand::u64(0..1_000_000) < p {
            add(&self.faults.injected.latency_spikes, 1);
            let spike = self.faults.spike_micros.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_micros(spike)).await;
        }
    }
}

fn add(x: &AtomicU64, n: u64) {
    x.fetch_add(n, Ordering::Relaxed);
}

#[async_trait]
impl<S: Storage> Storage for FaultyStorage<S> {
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Bytes>>, StorageError> {
        add(&self.counters.gets, 1);
        self.delay().await;
        self.faults.tick(FailOn::Gets)?;
        let mut got = self.inner.get_many(addresses).await?;
        for (a, b) in addresses.iter().zip(got.iter_mut()) {
            if let Some(bytes) = b {
                add(&self.counters.blobs_read, 1);
                add(&self.counters.bytes_read, bytes.len() as u64);
                if bytes.is_empty() {
                    continue;
                }
                if let Some(damage) = self.faults.damage(a) {
                    *bytes = damage.apply(bytes);
                }
            }
        }
        Ok(got)
    }

    async fn put_many(&self, blobs: &[(Address, Bytes)]) -> Result<(), StorageError> {
        add(&self.counters.puts, 1);
        self.delay().await;
        self.faults.tick(FailOn::Puts)?;
        let torn = self.faults.torn_put.swap(false, Ordering::SeqCst);
        let part = if torn {
            &blobs[..blobs.len() / 2]
        } else {
            blobs
        };
        self.inner.put_many(part).await?;
        add(&self.counters.blobs_written, part.len() as u64);
        add(
            &self.counters.bytes_written,
            part.iter().map(|(_, b)| b.len() as u64).sum(),
        );
        if torn {
            add(&self.faults.injected.torn_puts, 1);
            return Err(StorageError::backend("injected torn put"));
        }
        Ok(())
    }

    async fn get_head(&self, name: &str) -> Result<Option<Head>, StorageError> {
        add(&self.counters.head_reads, 1);
        self.delay().await;
        self.faults.tick(FailOn::Any)?;
        self.inner.get_head(name).await
    }

    async fn list_heads(&self) -> Result<Vec<(String, Head)>, StorageError> {
        add(&self.counters.head_reads, 1);
        self.delay().await;
        self.faults.tick(FailOn::Any)?;
        self.inner.list_heads().await
    }

    async fn delete_head(&self, name: &str, expected: &Version) -> Result<(), StorageError> {
        add(&self.counters.cas, 1);
        self.delay().await;
        self.faults.tick(FailOn::Cas)?;
        self.inner.delete_head(name, expected).await
    }

    async fn cas_head(
        &self,
        name: &str,
        expected: Option<&Version>,
        new: Address,
    ) -> Result<Version, StorageError> {
        add(&self.counters.cas, 1);
        self.delay().await;
        self.faults.tick(FailOn::Cas)?;
        if self.faults.fail_next_cas.swap(false, Ordering::SeqCst) {
            add(&self.faults.injected.failed_cas, 1);
            return Err(StorageError::backend("injected failure before head CAS"));
        }
        let version = self.inner.cas_head(name, expected, new).await?;
        if self
            .faults
            .lose_next_cas_reply
            .swap(false, Ordering::SeqCst)
            || self.faults.transient_strikes()
        {
            add(&self.faults.injected.lost_cas_replies, 1);
            return Err(StorageError::Transient {
                reason: "injected loss of the CAS reply (the head moved)".into(),
            });
        }
        Ok(version)
    }

    async fn list_blobs(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<Address>, StorageError> {
        add(&self.counters.other, 1);
        self.delay().await;
        self.faults.tick(FailOn::Any)?;
        self.inner.list_blobs(after, limit).await
    }

    async fn delete_many(&self, addresses: &[Address]) -> Result<(), StorageError> {
        add(&self.counters.other, 1);
        self.delay().await;
        self.faults.tick(FailOn::Any)?;
        self.inner.delete_many(addresses).await
    }

    async fn list_blob_stamps(
        &self,
        after: Option<Address>,
        limit: usize,
    ) -> Result<Vec<BlobStamp>, StorageError> {
        add(&self.counters.other, 1);
        self.delay().await;
        self.faults.tick(FailOn::Any)?;
        self.inner.list_blob_stamps(after, limit).await
    }

    async fn delete_stale(
        &self,
        addresses: &[Address],
        written_before: std::time::SystemTime,
    ) -> Result<Vec<Address>, StorageError> {
        add(&self.counters.other, 1);
        self.delay().await;
        self.faults.tick(FailOn::Any)?;
        self.inner.delete_stale(addresses, written_before).await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn head_changes(&self) -> Option<crate::signal::HeadChanges> {
        self.inner.head_changes()
    }
}
