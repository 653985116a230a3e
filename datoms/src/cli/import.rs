//! `datoms import`: build a new database from `#datom [e a v tx added]` lines (what
//! `datoms export` writes) and store it as the first commit of a head.
//!
//! An export is checked whole before anything is stored: its closing BLAKE3 line must
//! match the content (an altered file is refused), must be there (a file cut short is
//! refused) and the header's datom count must match. The header's id counters and tree
//! configuration are restored, so the imported db behaves exactly like the exported one
//! for every later transaction. The datoms are loaded with [`Db::bulk_load`]: sorted
//! once, checked against the schema as a transaction would check them (types,
//! cardinality one, uniqueness; every violation is reported, nothing is stored), and
//! each index built bottom-up — the same trees any other way of building the same datom
//! set gives. A file without the `#datoms/export` header (hand-written datoms) is
//! accepted without count and checksum, its counters taken from its datoms.

use datoms::edn::{datom_from_edn, parse, schema_from_edn_with_warnings, Edn};
use datoms::{Datom, Db, Schema, TreeConfig, TX0};
use serde::Serialize;

use super::access::{Create, Opened};
use super::error::ExportProblem;
use super::export::{CHECKSUM_TAG, FORMAT, HEADER_TAG, SCHEMA_TAG};
use super::output::{bytes, short, thousands, Ctx};
use super::transact::{read_schema, read_text};
use super::{CliError, DbArgs};

/// Arguments of `datoms import`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The file holds one form per line, as `datoms export` writes it: \
a `#datoms/export {…}` header (datom count, id counters, tree configuration), a \
`#datoms/schema {…}` line, `#datom [e a v tx added]` lines (added must be true: an \
import holds current datoms) and a closing `#datoms/blake3 \"…\"` checksum. An export \
that is cut short, altered, or whose datoms break its schema is refused and nothing is \
stored. Hand-written files may leave out the header and the checksum. Blank lines and \
;-comments are skipped."
)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    /// The datoms file (`-` reads stdin).
    #[arg(value_name = "FILE|-")]
    file: String,

    /// Schema as EDN, for files without a `#datoms/schema` line (the file's line wins).
    #[arg(long, value_name = "FILE.edn")]
    schema: Option<String>,
}

#[derive(Serialize)]
struct Report {
    datoms: u64,
    txs: usize,
    max_eid: u64,
    max_tx: u64,
    commit: String,
    head: String,
    nodes_written: u64,
    bytes_written: u64,
}

/// Runs `datoms import`.
///
/// # Errors
/// A bad line (named with its number and column), [`CliError::BadExport`] for an export
/// cut short or altered, [`datoms::Error::Invariants`] (as [`CliError::Input`]) listing
/// every datom that breaks the schema, an existing head, storage errors. Nothing is
/// stored, and no database file is created, unless the whole file reads and checks.
pub async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let text = read_text(&args.file)?;
    let flag_schema = args.schema.as_deref().map(read_schema).transpose()?;
    let file = read_datoms(&args.file, &text, flag_schema.clone(), ctx)?;
    if let (Some(flag), true) = (&flag_schema, file.own_schema) {
        if *flag != file.schema {
            eprintln!(
                "warning: --schema ignored: {} carries its own schema (its #{SCHEMA_TAG} line)",
                args.file
            );
        }
    }
    let (max_eid, max_tx, config) = match &file.header {
        Some(h) => (h.max_eid, h.max_tx, h.config),
        None => (file.seen_max_eid, file.seen_max_tx, TreeConfig::default()),
    };
    let count = file.datoms.len() as u64;
    let spinner = ctx.spinner("checking and indexing");
    let db =
        Db::bulk_load(file.schema, config, file.datoms, max_eid, max_tx).map_err(|source| {
            CliError::Input {
                path: args.file.clone(),
                source,
            }
        })?;
    spinner.finish_and_clear();

    let opened = Opened::open(&args.db, Create::Yes, ctx).await?;
    if let Some(head) = opened.get_head().await? {
        return Err(CliError::AlreadyExists {
            url: opened.url.clone(),
            head: opened.head.clone(),
            commit: head.commit,
        });
    }
    let tx_count = db.pending_txs();
    let spinner = ctx.spinner("storing");
    let stored = datoms::store(&db, &**opened.storage(), &opened.head).await?;
    spinner.finish_and_clear();
    let report = Report {
        datoms: count,
        txs: tx_count,
        max_eid: db.max_eid(),
        max_tx: db.max_tx(),
        commit: stored.commit.to_hex(),
        head: opened.head.clone(),
        nodes_written: stored.stats.nodes_written,
        bytes_written: stored.stats.bytes_written,
    };
    if ctx.json {
        return ctx.print_json(&report);
    }
    ctx.print(&format!(
        "imported {} datoms in {} transactions; commit {} on head {} ({} nodes, {} written)\n",
        thousands(report.datoms),
        thousands(tx_count as u64),
        short(&stored.commit),
        opened.head,
        thousands(report.nodes_written),
        bytes(report.bytes_written)
    ))
}

/// What an export's `#datoms/export` header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    datoms: u64,
    max_eid: u64,
    max_tx: u64,
    config: TreeConfig,
}

/// A file read and checked line by line (its datoms not yet against the schema).
struct ImportFile {
    header: Option<Header>,
    schema: Schema,
    /// True if the schema came from the file's own `#datoms/schema` line.
    own_schema: bool,
    datoms: Vec<Datom>,
    /// The largest entity id below TX0, and the largest tx (as a tx or an entity).
    seen_max_eid: u64,
    seen_max_tx: u64,
}

/// Reads the header map `{:format 1 :datoms N :max-eid E :max-tx T …}`.
fn read_header(body: &Edn) -> Result<Header, String> {
    let Edn::Map(pairs) = body else {
        return Err(format!("the #{HEADER_TAG} header is not a map"));
    };
    let get = |key: &str| {
        pairs.iter().find_map(|(k, v)| match (k, v) {
            (Edn::Keyword(k), Edn::Int(n)) if k.as_str() == key => Some(*n),
            _ => None,
        })
    };
    let need = |key: &str| {
        get(key).and_then(|n| u64::try_from(n).ok()).ok_or_else(|| {
            format!("the #{HEADER_TAG} header lacks :{key} (a non-negative integer)")
        })
    };
    let format = need("format")?;
    if format != FORMAT.unsigned_abs() {
        return Err(format!(
            "export format {format}: this build reads format {FORMAT} (a newer datoms wrote it?)"
        ));
    }
    let default = TreeConfig::default();
    let target = |key: &str, default: u32| -> Result<u32, String> {
        match get(key) {
            None => Ok(default),
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n >= 4)
                .ok_or_else(|| format!(":{key} {n} is not a tree target (at least 4)")),
        }
    };
    let header = Header {
        datoms: need("datoms")?,
        max_eid: need("max-eid")?,
        max_tx: need("max-tx")?,
        config: TreeConfig {
            leaf_target: target("leaf-target", default.leaf_target)?,
            branch_target: target("branch-target", default.branch_target)?,
        },
    };
    if header.max_tx < TX0 || header.max_eid >= TX0 {
        return Err(format!(
            "counters :max-eid {} :max-tx {} are out of range (max-eid below {TX0}, max-tx at least {TX0})",
            header.max_eid, header.max_tx
        ));
    }
    Ok(header)
}

/// The checksum line's BLAKE3 hex, if `line` is one.
fn checksum_of(line: &str) -> Option<Result<String, String>> {
    let rest = line.trim().strip_prefix('#')?.strip_prefix(CHECKSUM_TAG)?;
    Some(match parse(rest) {
        Ok(Edn::String(hex)) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok(hex.to_ascii_lowercase())
        }
        _ => Err(format!("#{CHECKSUM_TAG} needs a string of 64 hex digits")),
    })
}

/// Reads the file line by line, so an error names its line. For an export, checks the
/// checksum first: an altered file is refused whatever its lines say.
fn read_datoms(
    path: &str,
    text: &str,
    schema: Option<Schema>,
    ctx: &Ctx,
) -> Result<ImportFile, CliError> {
    let bad = |line: usize, reason: String| CliError::Line {
        path: path.to_owned(),
        line,
        reason,
    };
    let bad_export = |problem| CliError::BadExport {
        path: path.to_owned(),
        problem,
    };
    // The lines with their 1-based numbers and byte offsets.
    let mut lines = Vec::new();
    let mut offset = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        lines.push((i + 1, offset, raw.trim_end_matches(['\n', '\r'])));
        offset += raw.len();
    }
    let is_form = |l: &&(usize, usize, &str)| {
        let t = l.2.trim();
        !t.is_empty() && !t.starts_with(';')
    };
    let Some(first) = lines.iter().find(is_form) else {
        return Err(bad_export(ExportProblem::Empty));
    };
    // An export starts with its header; whatever happens to the rest of the file, that
    // line says the file must end with its checksum.
    let is_export = first.2.trim().starts_with(&format!("#{HEADER_TAG}"));
    // The checksum closes the file: the last line that is not blank.
    let last = lines.iter().rev().find(|(_, _, l)| !l.trim().is_empty());
    let mut checksum_at = None;
    if let Some(&(number, start, line)) = last {
        // A broken checksum line at the end of an export was cut in the middle.
        let whole = checksum_of(line).filter(|c| c.is_ok() || !is_export);
        if let Some(expected) = whole {
            let expected = expected.map_err(|reason| bad(number, reason))?;
            let actual = blake3::hash(&text.as_bytes()[..start]).to_hex().to_string();
            if actual != expected {
                return Err(bad_export(ExportProblem::Altered { expected, actual }));
            }
            checksum_at = Some(number);
        }
    }
    if is_export && checksum_at.is_none() {
        // A checksum line that is not the last: something was appended after it.
        let whole_checksum = |l: &&(usize, usize, &str)| matches!(checksum_of(l.2), Some(Ok(_)));
        let end = last.map_or(0, |l| l.0);
        if let Some(&(number, _, _)) = lines.iter().filter(|l| l.0 != end).find(whole_checksum) {
            return Err(bad_export(ExportProblem::AfterChecksum {
                line: number + 1,
            }));
        }
        let declared = parse(first.2)
            .ok()
            .and_then(|form| match form {
                Edn::Tagged(_, body) => read_header(&body).ok(),
                _ => None,
            })
            .map_or(0, |h| h.datoms);
        let read = lines
            .iter()
            .filter(|l| l.2.starts_with("#datom [") && parse(l.2).is_ok())
            .count() as u64;
        return Err(bad_export(ExportProblem::Truncated { declared, read }));
    }

    let bar = ctx.bar(text.len() as u64, "bytes");
    bar.set_message("reading");
    let mut file = ImportFile {
        header: None,
        own_schema: false,
        schema: Schema::default(),
        datoms: Vec::new(),
        seen_max_eid: 0,
        seen_max_tx: TX0,
    };
    let mut schema = schema;
    let mut seen_form = false;
    let mut seen_datom = false;
    for &(number, start, line) in &lines {
        if number % 4096 == 0 {
            bar.set_position(start as u64);
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') {
            continue;
        }
        if Some(number) == checksum_at {
            break;
        }
        if checksum_of(line).is_some() {
            return Err(bad_export(ExportProblem::AfterChecksum {
                line: number + 1,
            }));
        }
        let form = match parse(line) {
            Ok(form) => form,
            Err(datoms::Error::EdnSyntax {
                column, message, ..
            }) => {
                // The reader saw one line: its line 1 is this line.
                return Err(bad(
                    number,
                    format!("EDN syntax error at column {column}: {message}"),
                ));
            }
            Err(other) => return Err(bad(number, other.to_string())),
        };
        if let Edn::Tagged(tag, body) = &form {
            if tag == HEADER_TAG {
                if seen_form {
                    return Err(bad(
                        number,
                        format!("the #{HEADER_TAG} header must be the first form of the file"),
                    ));
                }
                seen_form = true;
                file.header = Some(read_header(body).map_err(|r| bad(number, r))?);
                continue;
            }
            if tag == SCHEMA_TAG {
                if seen_datom {
                    return Err(bad(
                        number,
                        "the schema line must come before the datoms".into(),
                    ));
                }
                seen_form = true;
                let (read, warnings) =
                    schema_from_edn_with_warnings(body).map_err(|e| bad(number, e.to_string()))?;
                for w in &warnings {
                    eprintln!("warning: line {number}: {w}");
                }
                schema = Some(read);
                file.own_schema = true;
                continue;
            }
        }
        seen_form = true;
        seen_datom = true;
        let datom =
            datom_from_edn(&form, schema.as_ref()).map_err(|e| bad(number, e.to_string()))?;
        if !datom.added {
            return Err(bad(
                number,
                "a retraction (added false): an import holds only current datoms".into(),
            ));
        }
        if datom.tx <= TX0 {
            return Err(bad(
                number,
                format!(
                    "tx {} is not a transaction id (they start at {})",
                    datom.tx,
                    TX0 + 1
                ),
            ));
        }
        if datom.e < TX0 {
            file.seen_max_eid = file.seen_max_eid.max(datom.e);
        } else {
            file.seen_max_tx = file.seen_max_tx.max(datom.e);
        }
        file.seen_max_tx = file.seen_max_tx.max(datom.tx);
        file.datoms.push(datom);
    }
    bar.finish_and_clear();
    let read = file.datoms.len() as u64;
    match (file.header, checksum_at) {
        (Some(h), _) if h.datoms != read => {
            return Err(bad_export(ExportProblem::Count {
                declared: h.datoms,
                found: read,
            }))
        }
        (None, Some(_)) => return Err(bad_export(ExportProblem::NoHeader)),
        _ => {}
    }
    file.schema = schema.unwrap_or_default();
    Ok(file)
}
