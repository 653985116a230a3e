//! Output: text or JSON on stdout, progress bars on stderr, number formatting.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use datoms::{Address, IoCounters, RestoreStats};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::CliError;

/// What every command needs to know about how to print.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// Print JSON documents instead of text.
    pub json: bool,
    /// Draw progress bars: only for a person watching, never under `--json` or when
    /// stdout is redirected (the output is then for a program or a file).
    progress: bool,
    /// Say nothing while waiting for a file another process holds (requests made in the
    /// background of a long-running command).
    pub quiet_waits: bool,
}

impl Ctx {
    /// The context for these flags and this terminal.
    pub fn new(json: bool) -> Ctx {
        Ctx {
            json,
            progress: !json && std::io::stdout().is_terminal(),
            quiet_waits: false,
        }
    }

    /// A context that prints nothing of its own: no bars, no waiting messages.
    pub fn quiet() -> Ctx {
        Ctx {
            json: false,
            progress: false,
            quiet_waits: true,
        }
    }

    /// A progress bar counting `unit`s up to `len` (0: the length grows as work is found).
    pub fn bar(&self, len: u64, unit: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        let template = format!(
            "{{spinner}} {{msg:>10}} [{{bar:32}}] {{human_pos}}/{{human_len}} {unit} ({{elapsed}})"
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A spinner for work of unknown size.
    pub fn spinner(&self, msg: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_message(msg.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// Prints `value` as one pretty JSON document on stdout.
    pub fn print_json<T: Serialize>(&self, value: &T) -> Result<(), CliError> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out).map_err(CliError::Output)
    }

    /// Prints text on stdout.
    pub fn print(&self, text: &str) -> Result<(), CliError> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).map_err(CliError::Output)?;
        out.flush().map_err(CliError::Output)
    }
}

/// The first 12 hex digits of an address: enough to tell commits apart in a table.
pub fn short(a: &Address) -> String {
    let mut hex = a.to_hex();
    hex.truncate(12);
    hex
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count for people: `812 B`, `4.2 KiB`, `11.9 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// [`RestoreStats`] as JSON.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StatsJson {
    /// Batched requests, the head read included.
    pub round_trips: u64,
    /// Tree nodes fetched.
    pub nodes_fetched: u64,
    /// Commit records fetched.
    pub commits_fetched: u64,
    /// Bytes fetched.
    pub bytes_fetched: u64,
    /// Subtrees taken from the db already held.
    pub nodes_reused: u64,
}

impl From<RestoreStats> for StatsJson {
    fn from(s: RestoreStats) -> StatsJson {
        StatsJson {
            round_trips: s.round_trips,
            nodes_fetched: s.nodes_fetched,
            commits_fetched: s.commits_fetched,
            bytes_fetched: s.bytes_fetched,
            nodes_reused: s.nodes_reused,
        }
    }
}

/// [`IoCounters`] as JSON: what the storage really served, counted by `FaultyStorage`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IoJson {
    /// Every request (blob reads and writes, head reads, CAS, listings).
    pub requests: u64,
    /// `get_many` calls.
    pub gets: u64,
    /// `put_many` calls.
    pub puts: u64,
    /// Head reads.
    pub head_reads: u64,
    /// Head CAS calls.
    pub cas: u64,
    /// Blobs read.
    pub blobs_read: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Blobs written.
    pub blobs_written: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

impl From<IoCounters> for IoJson {
    fn from(c: IoCounters) -> IoJson {
        IoJson {
            requests: c.requests(),
            gets: c.gets,
            puts: c.puts,
            head_reads: c.head_reads,
            cas: c.cas,
            blobs_read: c.blobs_read,
            bytes_read: c.bytes_read,
            blobs_written: c.blobs_written,
            bytes_written: c.bytes_written,
        }
    }
}

/// The I/O between two snapshots of the counters.
pub fn io_since(before: IoCounters, after: IoCounters) -> IoCounters {
    IoCounters {
        gets: after.gets.saturating_sub(before.gets),
        puts: after.puts.saturating_sub(before.puts),
        head_reads: after.head_reads.saturating_sub(before.head_reads),
        cas: after.cas.saturating_sub(before.cas),
        other: after.other.saturating_sub(before.other),
        blobs_read: after.blobs_read.saturating_sub(before.blobs_read),
        bytes_read: after.bytes_read.saturating_sub(before.bytes_read),
        blobs_written: after.blobs_written.saturating_sub(before.blobs_written),
        bytes_written: after.bytes_written.saturating_sub(before.bytes_written),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(4300), "4.2 KiB");
        assert_eq!(bytes(12_500_000), "11.9 MiB");
    }
}

/// The root addresses of a commit's three index trees: two replicas hold the same
/// version exactly when these are equal.
#[derive(Debug, Serialize)]
pub struct RootsJson {
    /// EAVT's root.
    pub eavt: String,
    /// AEVT's root.
    pub aevt: String,
    /// AVET's root.
    pub avet: String,
}

impl RootsJson {
    /// The roots of `roots`, in `IndexKind::ALL` order (EAVT, AEVT, AVET).
    pub fn of(roots: &[Address; 3]) -> RootsJson {
        let [eavt, aevt, avet] = roots.map(|r| r.to_hex());
        RootsJson { eavt, aevt, avet }
    }

    /// One line of text: `roots: eavt … aevt … avet …` (full addresses).
    pub fn line(&self) -> String {
        format!(
            "    roots: eavt {} aevt {} avet {}\n",
            self.eavt, self.aevt, self.avet
        )
    }
}

/// The most characters of a user's input an error message quotes whole.
const QUOTE_WHOLE: usize = 160;

/// Characters quoted on each side of the fault when the input is longer.
const QUOTE_AROUND: usize = 50;

/// `text` quoted for an error message: whole (as `{text:?}`) when short, else an
/// excerpt of the characters around `at` (a 1-based line and column, as EDN syntax
/// errors name them; the start when `None`) with the input's size, so a 10 KB query
/// comes back as one readable line.
pub fn quote(text: &str, at: Option<(usize, usize)>) -> String {
    let chars = text.chars().count();
    if chars <= QUOTE_WHOLE {
        return format!("{text:?}");
    }
    // The fault as a character offset.
    let offset = at.map_or(0, |(line, column)| {
        let before: usize = text
            .split('\n')
            .take(line.saturating_sub(1))
            .map(|l| l.chars().count() + 1)
            .sum();
        (before + column.saturating_sub(1)).min(chars)
    });
    let from = offset.saturating_sub(QUOTE_AROUND);
    let to = (offset + QUOTE_AROUND).min(chars);
    let excerpt: String = text.chars().skip(from).take(to - from).collect();
    format!(
        "{}{:?}{} ({} characters; excerpt{})",
        if from > 0 { "…" } else { "" },
        excerpt,
        if to < chars { "…" } else { "" },
        thousands(chars as u64),
        match at {
            Some((line, column)) => format!(" around line {line}, column {column}"),
            None => " from the start".to_owned(),
        }
    )
}

/// True if [`quote`] quotes `text` whole.
pub fn quoted_whole(text: &str) -> bool {
    text.chars().count() <= QUOTE_WHOLE
}

/// Where an EDN error points in its text, if it names a place.
pub fn edn_fault(e: &datoms::Error) -> Option<(usize, usize)> {
    match e {
        datoms::Error::EdnSyntax { line, column, .. }
        | datoms::Error::UnsupportedNumber { line, column, .. } => Some((*line, *column)),
        _ => None,
    }
}
