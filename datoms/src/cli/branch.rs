//! `datoms branch`: heads as branches — list them, create one at any commit (no node is
//! copied: a branch is a name for a commit), delete one, fast-forward one to another.
//! Every write is a compare-and-swap on the head, so a branch another writer moved is
//! never overwritten or deleted unseen.

use clap::Subcommand;
use datoms::{Address, Head};
use serde::Serialize;

use super::access::{Create, Opened};
use super::output::{short, Ctx};
use super::{CliError, DbArgs};

/// Arguments of `datoms branch`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
datoms branch list --db redb:people.datoms\n  \
datoms branch create draft --db redb:people.datoms            # at main's commit\n  \
datoms branch create old --at 3f2a9c --db redb:people.datoms  # at a commit of main's history\n  \
datoms transact --db redb:people.datoms --head draft tx.edn\n  \
datoms branch fast-forward main --to draft --db redb:people.datoms\n  \
datoms branch delete draft --db redb:people.datoms")]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List every branch (head) with its commit.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Create a branch at the commit of --head (or --at a commit of its history).
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// The new branch's name.
        #[arg(value_name = "NAME", value_parser = super::head_name)]
        name: String,
        /// A commit: its address or a prefix of it in --head's history (as `datoms log`
        /// prints it), instead of --head's current commit.
        #[arg(long, value_name = "COMMIT")]
        at: Option<String>,
    },
    /// Delete a branch (its commits and nodes stay; other branches may share them).
    Delete {
        #[command(flatten)]
        db: DbArgs,
        /// The branch to delete.
        #[arg(value_name = "NAME", value_parser = super::head_name)]
        name: String,
    },
    /// Move a branch to another branch's commit, if that commit descends from the
    /// branch's own (a fast-forward: no history is lost).
    FastForward {
        #[command(flatten)]
        db: DbArgs,
        /// The branch to move.
        #[arg(value_name = "NAME", value_parser = super::head_name)]
        name: String,
        /// The branch whose commit it moves to.
        #[arg(long, value_name = "BRANCH", value_parser = super::head_name)]
        to: String,
    },
}

#[derive(Serialize)]
struct Listed {
    name: String,
    commit: String,
    version: String,
    max_tx: u64,
}

#[derive(Serialize)]
struct Moved<'a> {
    branch: &'a str,
    /// Where it pointed before (`None`: it did not exist).
    from: Option<String>,
    /// Where it points now (`None`: deleted).
    to: Option<String>,
}

/// Runs `datoms branch`.
///
/// # Errors
/// A branch that does not exist, one that exists already (create), a fast-forward onto
/// a commit that does not descend from the branch's, a branch another writer moved
/// meanwhile ([`datoms::StorageError::HeadConflict`]), storage errors.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    match args.action {
        Action::List { db } => list(&db, ctx).await,
        Action::Create { db, name, at } => create(&db, &name, at.as_deref(), ctx).await,
        Action::Delete { db, name } => delete(&db, &name, ctx).await,
        Action::FastForward { db, name, to } => fast_forward(&db, &name, &to, ctx).await,
    }
}

async fn list(db: &DbArgs, ctx: &Ctx) -> Result<(), CliError> {
    let opened = Opened::open(db, Create::No, ctx).await?;
    let heads = opened.storage().list_heads().await?;
    let commits: Vec<Address> = heads.iter().map(|(_, h)| h.commit).collect();
    let fetched = opened.commits(&commits).await?;
    let listed: Vec<Listed> = heads
        .iter()
        .zip(&fetched)
        .map(|((name, head), (commit, _))| Listed {
            name: name.clone(),
            commit: head.commit.to_hex(),
            version: head.version.0.clone(),
            max_tx: commit.max_tx,
        })
        .collect();
    if ctx.json {
        return ctx.print_json(&listed);
    }
    let mut out = format!("{:<12}  {:>10}  branch\n", "commit", "max-tx");
    for l in &listed {
        out.push_str(&format!(
            "{:<12}  {:>10}  {}{}\n",
            &l.commit[..12],
            l.max_tx,
            l.name,
            if l.name == db.head { "  (--head)" } else { "" }
        ));
    }
    out.push_str(&format!(
        "{} branch{} in {}\n",
        listed.len(),
        if listed.len() == 1 { "" } else { "es" },
        db.db
    ));
    ctx.print(&out)
}

/// The head `name` of `opened`'s storage.
async fn head_of(opened: &Opened, name: &str) -> Result<Head, CliError> {
    opened
        .storage()
        .get_head(name)
        .await?
        .ok_or_else(|| CliError::NoDatabase {
            url: opened.url.clone(),
            head: name.to_owned(),
        })
}

async fn create(db: &DbArgs, name: &str, at: Option<&str>, ctx: &Ctx) -> Result<(), CliError> {
    let opened = Opened::open(db, Create::Existing, ctx).await?;
    let commit = match at {
        Some(text) => opened.resolve_commit(text).await?,
        None => opened.head_commit().await?,
    };
    // The commit must be there whole enough to read: a branch on a missing commit
    // would be a head on an incomplete commit.
    opened.commit(commit).await?;
    // Created only where no head is: the CAS itself refuses an existing name.
    match opened.storage().cas_head(name, None, commit).await {
        Ok(_) => {}
        Err(datoms::StorageError::HeadConflict {
            current: Some(existing),
            ..
        }) => {
            return Err(CliError::BranchExists {
                url: opened.url.clone(),
                name: name.to_owned(),
                commit: existing.commit,
            })
        }
        Err(e) => return Err(e.into()),
    }
    report(
        ctx,
        &Moved {
            branch: name,
            from: None,
            to: Some(commit.to_hex()),
        },
        &format!("created branch {name} at commit {}\n", short(&commit)),
    )
}

async fn delete(db: &DbArgs, name: &str, ctx: &Ctx) -> Result<(), CliError> {
    let opened = Opened::open(db, Create::Existing, ctx).await?;
    let head = head_of(&opened, name).await?;
    opened.storage().delete_head(name, &head.version).await?;
    report(
        ctx,
        &Moved {
            branch: name,
            from: Some(head.commit.to_hex()),
            to: None,
        },
        &format!(
            "deleted branch {name} (was at commit {}; its commits stay until garbage-collected)\n",
            short(&head.commit)
        ),
    )
}

async fn fast_forward(db: &DbArgs, name: &str, to: &str, ctx: &Ctx) -> Result<(), CliError> {
    let opened = Opened::open(db, Create::Existing, ctx).await?;
    let from = head_of(&opened, name).await?;
    let target = head_of(&opened, to).await?;
    let moved = Moved {
        branch: name,
        from: Some(from.commit.to_hex()),
        to: Some(target.commit.to_hex()),
    };
    if from.commit == target.commit {
        return report(
            ctx,
            &moved,
            &format!(
                "branch {name} is at {to}'s commit {} already\n",
                short(&from.commit)
            ),
        );
    }
    // Through every parent: a branch merged into `to` is in its history too.
    let mut stats = datoms::RestoreStats::default();
    let base = datoms::storage::common_ancestor(
        &**opened.storage(),
        from.commit,
        target.commit,
        &mut stats,
    )
    .await?;
    if base != Some(from.commit) {
        return Err(CliError::NotFastForward {
            name: name.to_owned(),
            from: from.commit,
            to_name: to.to_owned(),
            to: target.commit,
        });
    }
    opened
        .storage()
        .cas_head(name, Some(&from.version), target.commit)
        .await?;
    report(
        ctx,
        &moved,
        &format!(
            "fast-forwarded branch {name} from commit {} to {} ({to}'s)\n",
            short(&from.commit),
            short(&target.commit)
        ),
    )
}

fn report(ctx: &Ctx, moved: &Moved<'_>, text: &str) -> Result<(), CliError> {
    if ctx.json {
        ctx.print_json(moved)
    } else {
        ctx.print(text)
    }
}
