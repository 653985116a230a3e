//! Datascript's timing method (`bench/datascript/bench/bench.cljc`): run the body in
//! batches until a warm-up time has passed, then take several samples, each the mean time
//! per run over a fixed duration, and report the median sample. The JS peer
//! (`bench/peer/dsbench.js`) implements the same loop.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The timing parameters (Datascript's `*warmup-ms*`, `*bench-ms*`, `*samples*`,
/// `*batch*`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Warm-up time before sampling, ms.
    pub warmup_ms: f64,
    /// Duration of each sample, ms.
    pub bench_ms: f64,
    /// Samples taken; the median is reported.
    pub samples: usize,
    /// Runs between clock reads.
    pub batch: usize,
}

impl Timing {
    /// Datascript's defaults: 2 s warm-up, 5 samples of 1 s, batches of 10.
    pub fn datascript() -> Timing {
        Timing {
            warmup_ms: 2000.0,
            bench_ms: 1000.0,
            samples: 5,
            batch: 10,
        }
    }

    /// Short enough for a test: every body still runs several times.
    pub fn quick() -> Timing {
        Timing {
            warmup_ms: 20.0,
            bench_ms: 20.0,
            samples: 3,
            batch: 1,
        }
    }
}

/// What one benchmark measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Measured {
    /// The median sample, ms per run.
    pub ms: f64,
    /// Every sample, ms per run.
    pub samples: Vec<f64>,
}

/// Mean ms per run of `f` over at least `duration_ms` (Datascript's `dotime`).
fn dotime<E>(
    duration_ms: f64,
    batch: usize,
    f: &mut impl FnMut() -> Result<(), E>,
) -> Result<f64, E> {
    let start = Instant::now();
    let mut runs = 0usize;
    loop {
        for _ in 0..batch.max(1) {
            f()?;
        }
        runs += batch.max(1);
        let elapsed = start.elapsed().as_secs_f64() * 1e3;
        if elapsed >= duration_ms {
            return Ok(elapsed / runs as f64);
        }
    }
}

/// Warms `f` up, then samples it (Datascript's `bench`).
///
/// # Errors
/// The first error `f` returns.
pub fn bench<E>(timing: &Timing, mut f: impl FnMut() -> Result<(), E>) -> Result<Measured, E> {
    dotime(timing.warmup_ms, timing.batch, &mut f)?;
    let mut samples = Vec::with_capacity(timing.samples);
    for _ in 0..timing.samples.max(1) {
        samples.push(dotime(timing.bench_ms, timing.batch, &mut f)?);
    }
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Measured {
        ms: sorted[sorted.len() / 2],
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_the_body_in_batches_and_reports_the_median_sample() {
        let mut runs = 0;
        let t = Timing {
            warmup_ms: 0.0,
            bench_ms: 0.0,
            samples: 3,
            batch: 4,
        };
        let m = bench(&t, || {
            runs += 1;
            Ok::<(), ()>(())
        })
        .unwrap();
        // One batch for the warm-up and one per sample.
        assert_eq!(runs, 16);
        assert_eq!(m.samples.len(), 3);
        assert!(m.samples.contains(&m.ms));
    }

    #[test]
    fn an_error_stops_the_measurement() {
        let mut runs = 0;
        let r = bench(&Timing::quick(), || {
            runs += 1;
            if runs == 3 {
                Err("boom")
            } else {
                Ok(())
            }
        });
        assert_eq!(r.unwrap_err(), "boom");
        assert_eq!(runs, 3);
    }
}
