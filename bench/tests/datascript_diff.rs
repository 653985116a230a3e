//! The randomized differential test against Datascript 1.8.1 (`datoms_bench::diff`): seeded
//! cases run in Datascript on node (`bench/peer/diff.js`) and through `datoms-core`, every
//! answer compared. CI runs a short run; `DATOMS_DIFF_CASES=10000` (and optionally
//! `DATOMS_DIFF_SEED`, the first seed) makes it a long one. Every divergence must be one
//! of `datoms_bench::diff::known::KNOWN` (an open issue item); any other fails the test
//! with the case that shows it. Needs `scripts/setup/bench-peer.sh` to have run.

use datoms_bench::diff;

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        Err(_) => default,
    }
}

#[test]
fn datoms_answers_as_datascript_does_outside_the_known_divergences() {
    let cases = env_or("DATOMS_DIFF_CASES", 300);
    let seed = env_or("DATOMS_DIFF_SEED", 1);
    let findings = diff::run(&diff::peer_dir(), seed, usize::try_from(cases).unwrap()).unwrap();
    assert_eq!(findings.cases, usize::try_from(cases).unwrap());
    let mut counts = std::collections::BTreeMap::new();
    for (item, _) in &findings.known {
        *counts.entry(*item).or_insert(0usize) += 1;
    }
    eprintln!(
        "{} cases from seed {seed}: {} known divergences {counts:?}, {} unexplained",
        findings.cases,
        findings.known.len(),
        findings.unexplained.len()
    );
    // One example of each known item (the first case that showed it), for the docs.
    let mut seen = std::collections::BTreeSet::new();
    for (item, d) in &findings.known {
        if seen.insert(*item) {
            eprintln!("{item}:\n{d}");
        }
    }
    let shown: Vec<String> = findings
        .unexplained
        .iter()
        .take(10)
        .map(ToString::to_string)
        .collect();
    assert!(
        findings.unexplained.is_empty(),
        "{} divergences from Datascript outside the known list; the first ones:\n{}",
        findings.unexplained.len(),
        shown.join("\n")
    );
}
