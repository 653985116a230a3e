//! The command line: argument definitions (clap derive), the runtime, and dispatch to one
//! module per command.

mod access;
mod branch;
mod changes;
mod datalog;
mod demo;
mod diff;
mod error;
mod export;
mod files;
mod follow;
mod gc;
mod import;
mod lock;
mod log;
mod merge;
mod output;
mod query;
mod restore;
#[cfg(feature = "serve")]
mod serve;
mod stats;
mod sync;
mod transact;
mod verify;
mod walk;
mod watch;

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use error::CliError;
use output::Ctx;

/// An immutable datom database (Datascript semantics) whose index trees persist to
/// pluggable storage and restore incrementally.
#[derive(Debug, Parser)]
#[command(name = "datoms", version, propagate_version = true)]
#[command(
    after_help = "Storage URLs: redb:PATH (one file, created on first write), mem: \
(in-memory, empty, gone when the command ends), http://HOST:PORT and https://… (a \
`datoms serve`; DATOMS_TOKEN holds the token for writes); rocksdb:PATH and \
s3://BUCKET/PREFIX need the `rocks` and `s3` features."
)]
pub struct Cli {
    /// Print one JSON document on stdout for scripts instead of text (hides progress bars).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

/// Where the database lives: shared by every command that opens one.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Storage URL, e.g. redb:./people.datoms.
    #[arg(long, value_name = "URL", env = "DATOMS_DB")]
    pub db: String,

    /// The named head to read (and, for writes, to move by compare-and-swap).
    #[arg(long, value_name = "NAME", default_value = "main", value_parser = head_name)]
    pub head: String,

    /// How long to wait for a file another process holds (redb and RocksDB lock their
    /// files to one process) before giving up; concurrent commands on one file then
    /// run one after another.
    #[arg(long, value_name = "SECONDS", env = "DATOMS_LOCK_WAIT", default_value_t = lock::DEFAULT_LOCK_WAIT_SECONDS)]
    pub lock_wait: u64,
}

/// A head name: not empty, no surrounding whitespace, no control characters.
fn head_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("a head name cannot be empty (the default head is main)".into());
    }
    if text.trim() != text || text.chars().any(char::is_control) {
        return Err(format!(
            "{text:?} has surrounding whitespace or control characters; a head name is a plain word such as main"
        ));
    }
    Ok(text.to_owned())
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a primary and a replica on one redb file and show what incremental restore saves.
    Demo(demo::Args),
    /// Run a transaction (Datascript EDN tx data) and store the result as a new commit.
    Transact(transact::Args),
    /// Run a Datalog query ('[:find …]'), or print the datoms of an index that match
    /// leading components ('[:eavt …]'); `datoms datoms` is the same command.
    #[command(visible_alias = "datoms")]
    Query(query::Args),
    /// Pull an entity with a Datascript pull pattern.
    Pull(datalog::PullArgs),
    /// Build a new database from `#datom [e a v tx added]` lines and store it.
    Import(import::Args),
    /// Write every datom of the head as `#datom [e a v tx added]` lines.
    Export(export::Args),
    /// List the commits from the head back through their parents.
    Log(log::Args),
    /// Report size and shape of the three index trees (node size distribution).
    Stats(stats::Args),
    /// Fetch every node reachable from the head and check its hash and its place in the tree.
    Verify(verify::Args),
    /// Restore the head fully, or incrementally from an older commit, and report the I/O.
    Restore(restore::Args),
    /// Copy a head from one storage to another, writing only what the target lacks
    /// (with --follow, again each time the head moves).
    Sync(sync::Args),
    /// Print the datoms of each change as the head moves, one commit at a time.
    Follow(follow::Args),
    /// A live query: print its result, then its diff each time the head moves and it changes.
    Watch(watch::Args),
    /// Print the datoms added and retracted between two commits.
    Diff(diff::Args),
    /// List, create, delete or fast-forward branches (named heads).
    Branch(branch::Args),
    /// Merge a branch (or commit) into a head: a three-way merge against their common
    /// ancestor, conflicts listed (or resolved by --strategy), a two-parent commit.
    Merge(merge::Args),
    /// Delete the blobs no retained commit reaches (older than a grace period).
    Gc(gc::Args),
    /// Serve the storage over HTTP: immutable blobs, heads moved by compare-and-swap,
    /// one-round-trip sync and pushed head moves, for `http://` clients and browsers.
    #[cfg(feature = "serve")]
    Serve(serve::Args),
}

/// Parses the arguments, runs the command and turns its outcome into an exit status:
/// 0 on success, 1 on an error, 2 on bad arguments, 130 when interrupted. Under
/// `--json` an error is one JSON document on stdout,
/// `{"error": {"kind": …, "message": …}}`, instead of the `error: …` line on stderr.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return bad_arguments(&e),
    };
    let ctx = Ctx::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(&CliError::Runtime(e), &ctx),
    };
    match runtime.block_on(run(cli.command, &ctx)) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`datoms export | head`) is not an error of ours.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => report(&e, &ctx),
    }
}

/// Help and version go to stdout with status 0; bad arguments are clap's message, or
/// under `--json` (seen in the raw arguments, as they did not parse) the JSON error.
fn bad_arguments(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || !std::env::args_os().any(|a| a == "--json")
    {
        // Printing can only fail on a closed stream, which leaves nothing to tell.
        let _ = e.print();
        return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
    }
    let rendered = e.render().to_string();
    let message = rendered
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned();
    print_json_error("usage", &message, None, None);
    ExitCode::from(2)
}

fn report(e: &CliError, ctx: &Ctx) -> ExitCode {
    if ctx.json {
        print_json_error(e.kind(), &e.to_string(), e.violations(), e.conflicts());
    } else {
        eprintln!("error: {e}");
    }
    match e {
        CliError::Interrupted => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    }
}

/// `{"error": {"kind": …, "message": …, "violations": [{"kind": …, "message": …}]}}`
/// on stdout (the violations only where the error lists some; a merge's conflicts as
/// `"conflicts"`).
fn print_json_error(
    kind: &str,
    message: &str,
    violations: Option<&[datoms::Violation]>,
    conflicts: Option<&[datoms::merge::Conflict]>,
) {
    let mut error = serde_json::json!({ "kind": kind, "message": message });
    if let Some(cs) = conflicts {
        error["conflicts"] = serde_json::to_value(
            cs.iter()
                .map(|c| merge::conflict_json(c, None))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
    }
    if let Some(vs) = violations {
        error["violations"] = vs
            .iter()
            .map(|v| serde_json::json!({ "kind": v.kind(), "message": v.to_string() }))
            .collect();
    }
    let doc = serde_json::json!({ "error": error });
    // As for help above: a closed stdout leaves no one to tell.
    let _ = writeln!(std::io::stdout().lock(), "{doc:#}");
}

async fn run(command: Command, ctx: &Ctx) -> Result<(), CliError> {
    match command {
        Command::Demo(a) => demo::run(a, ctx).await,
        Command::Transact(a) => transact::run(a, ctx).await,
        Command::Query(a) => query::run(a, ctx).await,
        Command::Pull(a) => datalog::run_pull(a, ctx).await,
        Command::Import(a) => import::run(a, ctx).await,
        Command::Export(a) => export::run(a, ctx).await,
        Command::Log(a) => log::run(a, ctx).await,
        Command::Stats(a) => stats::run(a, ctx).await,
        Command::Verify(a) => verify::run(a, ctx).await,
        Command::Restore(a) => restore::run(a, ctx).await,
        Command::Sync(a) => sync::run(a, ctx).await,
        Command::Follow(a) => follow::run(a, ctx).await,
        Command::Watch(a) => watch::run(a, ctx).await,
        Command::Diff(a) => diff::run(a, ctx).await,
        Command::Branch(a) => branch::run(a, ctx).await,
        Command::Merge(a) => merge::run(a, ctx).await,
        Command::Gc(a) => gc::run(a, ctx).await,
        #[cfg(feature = "serve")]
        Command::Serve(a) => serve::run(a, ctx).await,
    }
}
