//! Datascript's own test suite, ported as data (`bench/ds-suite/*.edn`, see
//! `datoms_bench::suite`): every step runs in Datascript 1.8.1 on node
//! (`bench/peer/suite.js`) and in datoms, and the answers must agree, but for the steps
//! `bench/ds-suite/known.edn` lists (explained in `docs/datascript-differences.md`). A
//! listed step that agrees now fails too: take it off the list. Needs
//! `scripts/setup/bench-peer.sh` to have run.

use datoms_bench::suite;

#[test]
fn datoms_passes_datascripts_own_tests_outside_the_known_divergences() {
    let dir = suite::cases_dir();
    let files = suite::load_all(&dir).unwrap();
    let known = suite::load_known(&dir.join("known.edn")).unwrap();
    let findings = suite::run(&datoms_bench::diff::peer_dir(), &files, &known).unwrap();
    let (mut checks, mut passed, mut known_n) = (0, 0, 0);
    for f in &findings.files {
        eprintln!(
            "{:24} {:3} tests {:4} checks {:4} pass ({:3} both fail) {:3} known {:3} unexplained",
            f.file,
            f.tests,
            f.checks,
            f.passed,
            f.both_failed.len(),
            f.known.len(),
            f.unexplained.len()
        );
        checks += f.checks;
        passed += f.passed;
        known_n += f.known.len();
    }
    eprintln!("all: {checks} checks, {passed} pass, {known_n} known divergences");
    // DATOMS_SUITE_SHOW=1 prints the known divergences and the checks both sides
    // failed, with both answers.
    if std::env::var_os("DATOMS_SUITE_SHOW").is_some() {
        for d in findings.files.iter().flat_map(|f| &f.known) {
            eprintln!("known {d}");
        }
        for d in findings.files.iter().flat_map(|f| &f.both_failed) {
            eprintln!("both failed {d}");
        }
    }
    let unexplained: Vec<String> = findings
        .files
        .iter()
        .flat_map(|f| &f.unexplained)
        .map(ToString::to_string)
        .collect();
    assert!(
        unexplained.is_empty() && findings.stale.is_empty(),
        "{} steps answer differently from Datascript and known.edn does not list them:\n{}\n\
         known.edn entries that no longer differ (take them off): {:?}",
        unexplained.len(),
        unexplained.join("\n"),
        findings.stale
    );
}
