//! The command line: argument definitions (clap derive), the runtime, and dispatch to one
//! module per command.

mod access;
mod datalog;
mod demo;
mod error;
mod export;
mod import;
mod log;
mod output;
mod query;
mod restore;
mod stats;
mod transact;
mod verify;
mod walk;

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
(in-memory, empty, gone when the command ends); rocksdb:PATH and s3://BUCKET/PREFIX need \
the `rocks` and `s3` features."
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
    #[arg(long, value_name = "NAME", default_value = "main")]
    pub head: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a primary and a replica on one redb file and show what incremental restore saves.
    Demo(demo::Args),
    /// Run a transaction (Datascript EDN tx data) and store the result as a new commit.
    Transact(transact::Args),
    /// Run a Datalog query ('[:find …]'), or print the datoms of an index that match
    /// leading components ('[:eavt …]').
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
}

/// Parses the arguments, runs the command and turns its outcome into an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(&CliError::Runtime(e)),
    };
    match runtime.block_on(run(cli.command, &ctx)) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`datoms export | head`) is not an error of ours.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn report(e: &CliError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
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
    }
}
