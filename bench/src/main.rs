//! `datoms-bench`: runs the benchmark harness and prints a markdown report.
//!
//! ```text
//! datoms-bench --quick                 # small sizes, a few seconds (what CI runs)
//! datoms-bench --full                  # 1M datoms, medians of 5 runs: the real figures
//! datoms-bench --full --datoms 100000 --backends mem --no-peer
//! datoms-bench writers [--quick]       # many writers: rebase cost, open, throughput
//! datoms-bench live [--quick] [--datoms N]  # 1,000 live queries vs re-run all / invalidation
//! datoms-bench large-values [--quick] [--backends mem,redb]  # values stored out of line
//! datoms-bench http [--quick] [--latency-ms 20]  # restores over datoms serve, GET throughput
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
    if args.first().map(String::as_str) == Some("http") {
        return http(&args[1..]).await;
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
