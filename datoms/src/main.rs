//! `datoms`: the command-line tool of the datoms database.
//!
//! Every command opens a storage by URL (`--db redb:PATH`), reads or moves a named head
//! (`--head`, default `main`) and prints text for people or, with `--json`, one JSON
//! document for scripts. Errors are one `error: …` line on stderr and a non-zero exit
//! status; nothing panics on bad input. The commands live in `cli/`, one module each.
//!
//! `DATOMS_LOG` (a `tracing` filter such as `info` or `datoms_storage=debug`) turns on
//! operator logs on stderr: each store, restore, sync and verify as a span with what it
//! wrote or fetched. Unset, nothing is logged.

mod cli;

fn main() -> std::process::ExitCode {
    if let Ok(filter) = std::env::var("DATOMS_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    cli::main()
}
