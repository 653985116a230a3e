//! `datoms`: the command-line tool of the datoms database.
//!
//! Every command opens a storage by URL (`--db redb:PATH`), reads or moves a named head
//! (`--head`, default `main`) and prints text for people or, with `--json`, one JSON
//! document for scripts. Errors are one `error: …` line on stderr and a non-zero exit
//! status; nothing panics on bad input. The commands live in `cli/`, one module each.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
