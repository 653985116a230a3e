//! Measuring: wall time (median of repeats), resident memory from `/proc/self/status`,
//! and what machine the figures came from.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Runs `f` `repeats` times (at least once) and returns the last result and the median
/// wall time. Every run must do the same work (the harness only repeats pure operations,
/// such as restoring the same commit into the same replica).
pub async fn median_time<T, E, F, Fut>(repeats: usize, mut f: F) -> Result<(T, Duration), E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let mut last = f().await?;
    let mut times = vec![start.elapsed()];
    for _ in 1..repeats {
        let start = Instant::now();
        last = f().await?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok((last, times[times.len() / 2]))
}

/// Milliseconds, as reports print them.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A `VmRSS`-style line of `/proc/self/status`, in KiB (`None` where there is no procfs).
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Resident memory now, in bytes (0 where there is no procfs).
pub fn rss_bytes() -> u64 {
    proc_status_kib("VmRSS").unwrap_or(0) * 1024
}

/// Peak resident memory so far, in bytes (0 where there is no procfs).
pub fn peak_rss_bytes() -> u64 {
    proc_status_kib("VmHWM").unwrap_or(0) * 1024
}

/// The machine a report was measured on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// Total memory, GiB.
    pub mem_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average when the run started (others' work on the machine).
    pub load_start: f64,
    /// 1-minute load average when the run ended.
    pub load_end: f64,
    /// Whether this binary was built with optimizations.
    pub optimized: bool,
}

impl Machine {
    /// Reads what procfs tells (fields stay empty where it tells nothing).
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|r| r.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            mem_gib: mem_kib / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            load_start: load_average(),
            load_end: 0.0,
            optimized: !cfg!(debug_assertions),
        }
    }
}

/// The 1-minute load average (0 where there is no procfs).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn median_time_runs_as_often_as_asked() {
        let mut runs = 0;
        let (last, _) = median_time(3, || {
            runs += 1;
            let r = runs;
            async move { Ok::<_, ()>(r) }
        })
        .await
        .unwrap();
        assert_eq!((runs, last), (3, 3));
    }

    #[test]
    fn resident_memory_is_read_from_procfs() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(rss_bytes() > 0);
            assert!(peak_rss_bytes() >= rss_bytes() / 2);
        }
    }
}
