//! `datoms-bench`: runs the benchmark harness and prints a markdown report.
//!
//! ```text
//! datoms-bench --quick                 # small sizes, a few seconds (what CI runs)
//! datoms-bench --full                  # 1M datoms, medians of 5 runs: the real figures
//! datoms-bench --full --datoms 100000 --backends mem --no-peer
//! datoms-bench writers [--quick]       # many writers: rebase cost, open, throughput
//! datoms-bench live [--quick] [--datoms N]  # 1,000 live queries vs re-run all / invalidation
//! datoms-bench large-values [--quick] [--backends mem,redb]  # values stored out of line
//! datoms-bench gc [--quick] [--backends mem,redb]  # GC time and bytes reclaimed
//! datoms-bench http [--quick] [--latency-ms 20]  # restores over datoms serve, GET throughput
//! datoms-bench time-travel [--quick]   # merge time against diff size, as-of k commits back
//! datoms-bench history [--quick]       # history build, extend and queries against length
//! datoms-bench concurrency [--quick]   # readers beside a writer
//! datoms-bench dsbench [--quick] [--only q1,q2] [--warmup-ms MS] [--bench-ms MS]
//!     [--samples N] [--batch N] [--no-peer] [--json FILE]  # Datascript's own suite
//! ```
//! Options (after the mode; each overrides the mode's value):
//! `--datoms N`, `--seed S`, `--batch B` (people per tx), `--small-datoms N`,
//! `--backends mem,redb` (or `all`), `--repeats R`, `--transact-repeats R`,
//! `--deltas 1,10,100`, `--behind 1,2,8`, `--growth 10000,100000`, `--latency-ms MS`,
//! `--no-peer`, `--no-rss`, `--peer-dir DIR`, `--scratch DIR`, `--keep-dump FILE` (keep
//! the db dump the memory child restores, to profile it: `valgrind --tool=massif
//! datoms-bench rss-child FILE`), `--json FILE` (also save
//! the report as JSON), `--markdown FILE` (write the report there instead of stdout),
//! `--quiet`.
//!
//! The exit status is 0 when the report is internally consistent (whatever the targets
//! say), 2 when it is not, 1 on errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use datoms_bench::{backends, run, BenchError, Config};

fn list<T: std::str::FromStr>(flag: &str, v: &str) -> Result<Vec<T>, BenchError> {
    v.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| {
            x.trim()
                .replace('_', "")
                .parse()
                .map_err(|_| BenchError::Usage(format!("{flag}: not a number list: {v}")))
        })
        .collect()
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, BenchError> {
    v.replace('_', "")
        .parse()
        .map_err(|_| BenchError::Usage(format!("{flag}: not a number: {v}")))
}

struct Cli {
    config: Config,
    json: Option<PathBuf>,
    markdown: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Cli, BenchError> {
    let mut config = match args.first().map(String::as_str) {
        Some("--full") => Config::full(),
        Some("--quick") => Config::quick(),
        _ => {
            return Err(BenchError::Usage(
                "datoms-bench --quick|--full [options] (see the crate docs)".into(),
            ))
        }
    };
    config.command = format!("datoms-bench {}", args.join(" "));
    let mut cli = Cli {
        config,
        json: None,
        markdown: None,
    };
    let c = &mut cli.config;
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--datoms" => c.datoms = number(flag, &value()?)?,
            "--seed" => c.seed = number(flag, &value()?)?,
            "--batch" => c.batch = number(flag, &value()?)?,
            "--small-datoms" => c.small_datoms = number(flag, &value()?)?,
            "--backends" => c.backends = backends::select(&value()?)?,
            "--repeats" => c.repeats = number(flag, &value()?)?,
            "--transact-repeats" => c.transact_repeats = number(flag, &value()?)?,
            "--deltas" => c.deltas = list(flag, &value()?)?,
            "--behind" => c.behind = list(flag, &value()?)?,
            "--growth" => c.growth = list(flag, &value()?)?,
            "--latency-ms" => c.latency = Duration::from_millis(number(flag, &value()?)?),
            "--no-peer" => c.peer = None,
            "--no-rss" => c.rss_exe = None,
            "--peer-dir" => c.peer = Some(PathBuf::from(value()?)),
            "--scratch" => c.scratch = Some(PathBuf::from(value()?)),
            "--keep-dump" => c.keep_dump = Some(PathBuf::from(value()?)),
            "--quiet" => c.verbose = false,
            "--verbose" => c.verbose = true,
            "--json" => cli.json = Some(PathBuf::from(value()?)),
            "--markdown" => cli.markdown = Some(PathBuf::from(value()?)),
            other => return Err(BenchError::Usage(format!("unknown option {other}"))),
        }
    }
    if cli.config.backends.is_empty() {
        return Err(BenchError::Usage("--backends: name at least one".into()));
    }
    Ok(cli)
}

/// `datoms-bench follow [--backends …] [--updates N] [--poll-ms P]`: follow latency.
async fn follow(args: &[String]) -> Result<ExitCode, BenchError> {
    let mut backends = backends::select("mem,redb")?;
    let (mut updates, mut poll_ms) = (200usize, 20u64);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))?;
        match flag.as_str() {
            "--backends" => backends = backends::select(value)?,
            "--updates" => updates = number(flag, value)?,
            "--poll-ms" => poll_ms = number(flag, value)?,
            other => return Err(BenchError::Usage(format!("unknown option {other}"))),
        }
    }
    let mut rows = Vec::new();
    for b in backends {
        rows.extend(
            datoms_bench::follow::measure(b, updates, Duration::from_millis(poll_ms)).await?,
        );
    }
    let command = format!("datoms-bench follow {}", args.join(" "));
    print!(
        "{}",
        datoms_bench::follow::markdown(&rows, command.trim_end())
    );
    Ok(ExitCode::SUCCESS)
}

/// `datoms-bench http [--quick] [--latency-ms MS] [--datoms N]`: restores over HTTP
/// with and without one-round-trip sync, and blob GET throughput.
async fn http(args: &[String]) -> Result<ExitCode, BenchError> {
    let mut config = datoms_bench::http::HttpConfig::full();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--quick" {
            config = datoms_bench::http::HttpConfig::quick();
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))?;
        match flag.as_str() {
            "--latency-ms" => config.latency = Duration::from_millis(number(flag, value)?),
            "--datoms" => config.datoms = number(flag, value)?,
            "--behind" => config.behind = list(flag, value)?,
            "--clients" => config.clients = list(flag, value)?,
            other => return Err(BenchError::Usage(format!("unknown option {other}"))),
        }
    }
    let report = datoms_bench::http::run_http(&config).await?;
    let command = format!("datoms-bench http {}", args.join(" "));
    Ok(finish(
        &report.to_markdown(&config, command.trim_end()),
        &report.problems,
    ))
}

/// `datoms-bench concurrency [--quick] [--datoms N] [--seconds S]`: readers beside a
/// writer.
fn concurrency(args: &[String]) -> Result<ExitCode, BenchError> {
    use datoms_bench::concurrency::{run_concurrency, ConcurrencyConfig};
    let mut config = ConcurrencyConfig::full();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--quick" {
            config = ConcurrencyConfig::quick();
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))?;
        match flag.as_str() {
            "--datoms" => config.datoms = number(flag, value)?,
            "--seconds" => config.duration = Duration::from_secs(number(flag, value)?),
            other => return Err(BenchError::Usage(format!("unknown option {other}"))),
        }
    }
    let report = run_concurrency(&config)?;
    let command = format!("datoms-bench concurrency {}", args.join(" "));
    Ok(finish(
        &report.to_markdown(command.trim_end()),
        &report.problems,
    ))
}

/// Prints a subcommand's report and the problems its checks found; exit status 2 when
/// there are any.
fn finish(markdown: &str, problems: &[String]) -> ExitCode {
    print!("{markdown}");
    for p in problems {
        eprintln!("  - {p}");
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

async fn main_inner(args: Vec<String>) -> Result<ExitCode, BenchError> {
    if args.first().map(String::as_str) == Some("follow") {
        return follow(&args[1..]).await;
    }
    if args.first().map(String::as_str) == Some("rss-child") {
        let dump = args
            .get(1)
            .ok_or_else(|| BenchError::Usage("rss-child DUMP".into()))?;
        let figures = datoms_bench::rss_child(std::path::Path::new(dump)).await?;
        let json = serde_json::to_string(&figures)
            .map_err(|e| BenchError::Inconsistent(format!("serializing: {e}")))?;
        println!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    if args.first().map(String::as_str) == Some("large-values") {
        let config = if args.iter().any(|a| a == "--quick") {
            datoms_bench::large_values::LargeValuesConfig::quick()
        } else {
            datoms_bench::large_values::LargeValuesConfig::full()
        };
        let backends = match args.iter().position(|a| a == "--backends") {
            Some(i) => backends::select(args.get(i + 1).map_or("", String::as_str))?,
            None => backends::all(),
        };
        let rows = datoms_bench::large_values::run_large_values(&config, &backends).await?;
        return Ok(finish(
            &datoms_bench::large_values::to_markdown(&rows),
            &datoms_bench::large_values::check(&rows),
        ));
    }
    if args.first().map(String::as_str) == Some("dsbench") {
        return dsbench(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("history") {
        use datoms_bench::history::{check, run_history, to_markdown, HistoryConfig};
        let quick = args.iter().any(|a| a == "--quick");
        let config = if quick {
            HistoryConfig::quick()
        } else {
            HistoryConfig::full()
        };
        let rows = run_history(&config).await?;
        let command = format!("datoms-bench {}", args.join(" "));
        return Ok(finish(&to_markdown(&rows, &command), &check(&rows)));
    }
    if args.first().map(String::as_str) == Some("concurrency") {
        return concurrency(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("gc") {
        let config = if args.iter().any(|a| a == "--quick") {
            datoms_bench::gc::GcConfig::quick()
        } else {
            datoms_bench::gc::GcConfig::full()
        };
        let backends = match args.iter().position(|a| a == "--backends") {
            Some(i) => backends::select(args.get(i + 1).map_or("", String::as_str))?,
            None => backends::all(),
        };
        let rows = datoms_bench::gc::run_gc(&config, &backends).await?;
        return Ok(finish(
            &datoms_bench::gc::to_markdown(&config, &rows),
            &datoms_bench::gc::check(&rows),
        ));
    }
    if args.first().map(String::as_str) == Some("http") {
        return http(&args[1..]).await;
    }
    if args.first().map(String::as_str) == Some("time-travel") {
        use datoms_bench::time_travel as tt;
        let config = if args.iter().any(|a| a == "--quick") {
            tt::TimeTravelConfig::quick()
        } else {
            tt::TimeTravelConfig::full()
        };
        let merges = tt::merges(&config).await?;
        let views = tt::as_of_back(&config).await?;
        let command = format!("datoms-bench {}", args.join(" "));
        return Ok(finish(
            &tt::markdown(&config, &merges, &views, &command),
            &tt::check(&merges, &views),
        ));
    }
    if args.first().map(String::as_str) == Some("live") {
        let mut config = if args.iter().any(|a| a == "--quick") {
            datoms_bench::live::LiveConfig::quick()
        } else {
            datoms_bench::live::LiveConfig::full()
        };
        if let Some(i) = args.iter().position(|a| a == "--datoms") {
            config.datoms = number("--datoms", args.get(i + 1).map_or("", String::as_str))?;
        }
        let mut report = datoms_bench::live::run_live(&config)?;
        report.command = format!("datoms-bench {}", args.join(" "));
        return Ok(finish(&report.to_markdown(), &report.check()));
    }
    if args.first().map(String::as_str) == Some("writers") {
        let config = if args.iter().any(|a| a == "--quick") {
            datoms_bench::writers::WritersConfig::quick()
        } else {
            datoms_bench::writers::WritersConfig::full()
        };
        let report = datoms_bench::writers::run_writers(&config).await?;
        return Ok(finish(&report.to_markdown(&config), &report.check()));
    }
    let mut cli = parse(&args)?;
    if !args.iter().any(|a| a == "--no-rss") {
        cli.config.rss_exe = std::env::current_exe().ok();
    }
    let report = run(&cli.config).await?;
    let markdown = report.to_markdown();
    match &cli.markdown {
        Some(path) => std::fs::write(path, &markdown)
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?,
        None => print!("{markdown}"),
    }
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| BenchError::Inconsistent(format!("serializing: {e}")))?;
        std::fs::write(path, json)
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
    }
    let problems = report.check();
    if problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("datoms-bench: the report is inconsistent:");
    for p in problems {
        eprintln!("  - {p}");
    }
    Ok(ExitCode::from(2))
}

/// `datoms-bench dsbench`: Datascript's benchmark suite, both sides, one table.
fn dsbench(args: &[String]) -> Result<ExitCode, BenchError> {
    use datoms_bench::dsbench::{self, DsConfig};
    let mut config = if args.iter().any(|a| a == "--quick") {
        DsConfig::quick()
    } else {
        DsConfig::full()
    };
    config.command = format!("datoms-bench dsbench {}", args.join(" "));
    let mut json = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--quick" => {}
            "--no-peer" => config.peer_dir = None,
            "--peer-dir" => config.peer_dir = Some(PathBuf::from(value()?)),
            "--seed" => config.seed = number(flag, &value()?)?,
            "--only" => {
                config.only = value()?.split(',').map(str::to_string).collect();
            }
            "--warmup-ms" => config.timing.warmup_ms = number(flag, &value()?)?,
            "--bench-ms" => config.timing.bench_ms = number(flag, &value()?)?,
            "--samples" => config.timing.samples = number(flag, &value()?)?,
            "--batch" => config.timing.batch = number(flag, &value()?)?,
            "--json" => json = Some(PathBuf::from(value()?)),
            other => {
                return Err(BenchError::Usage(format!(
                    "dsbench: unknown option {other}"
                )))
            }
        }
    }
    let report = dsbench::run(&config)?;
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| BenchError::Inconsistent(format!("serializing: {e}")))?;
        std::fs::write(&path, text)
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
    }
    Ok(finish(&report.to_markdown(), &report.problems()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("datoms-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_inner(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("datoms-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
