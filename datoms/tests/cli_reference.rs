//! `docs/cli.md` against the CLI itself: every command `datoms --help` lists (and every
//! subcommand, as `datoms branch create`) has a section `## \`datoms COMMAND\`` there,
//! with an example starting `datoms COMMAND` and every long option its `--help` shows;
//! and every section names a command that exists; and the README's CLI table has a row
//! per command. A command added without its lines in the reference fails here, naming it
//! and what to add. A second test runs the page's examples.

use std::collections::BTreeMap;

use assert_cmd::Command;

/// The reference, as the test reads it.
const REFERENCE: &str = include_str!("../../docs/cli.md");

/// The README, whose CLI table has a row per command.
const README: &str = include_str!("../../README.md");

/// Options every command has, documented once at the top of the reference.
const COMMON: [&str; 3] = ["--help", "--version", "--json"];

/// `datoms ARGS --help`, as text.
fn help(args: &[&str]) -> String {
    let out = Command::cargo_bin("datoms")
        .expect("the datoms binary builds")
        .args(args)
        .arg("--help")
        .output()
        .expect("datoms runs");
    assert!(
        out.status.success(),
        "datoms {} --help failed: {out:?}",
        args.join(" ")
    );
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.trim_end() == "Commands:" {
            inside = true;
            continue;
        }
        if inside {
            // The section ends at the first line that is not an indented entry.
            if !line.starts_with("  ") {
                break;
            }
            // Entries start two spaces in; wrapped descriptions further.
            if line.starts_with("   ") {
                continue;
            }
            let name = line.split_whitespace().next().unwrap_or_default();
            if !name.is_empty() && name != "help" {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// The long options a help text lists (`--db`, `--head`…), but [`COMMON`].
fn long_options(help: &str) -> Vec<String> {
    let mut options = Vec::new();
    for line in help.lines() {
        // Options start at most six spaces in; deeper lines are wrapped descriptions.
        let trimmed = line.trim_start();
        if line.len() - trimmed.len() > 6 {
            continue;
        }
        let line = match trimmed.strip_prefix('-') {
            // `-o, --out <FILE>`: the long form after the short one.
            Some(rest) if !rest.starts_with('-') => match trimmed.split_once(", ") {
                Some((_, long)) => long,
                None => continue,
            },
            Some(_) => trimmed,
            None => continue,
        };
        if let Some(name) = line.strip_prefix("--") {
            let name: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let option = format!("--{name}");
            if !COMMON.contains(&option.as_str()) && !options.contains(&option) {
                options.push(option);
            }
        }
    }
    options
}

/// Every command path (`["transact"]`, `["branch", "create"]`) with its help text.
fn commands() -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut todo: Vec<Vec<String>> = subcommands(&help(&[]))
        .into_iter()
        .map(|c| vec![c])
        .collect();
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        for sub in subcommands(&text) {
            let mut deeper = path.clone();
            deeper.push(sub);
            todo.push(deeper);
        }
        found.insert(path.join(" "), text);
    }
    found
}

/// The reference's sections: the command of each `## \`datoms …\`` heading, and the
/// text up to the next `## ` heading.
fn sections() -> BTreeMap<String, String> {
    let mut sections = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in REFERENCE.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            if let Some((name, text)) = current.take() {
                sections.insert(name, text);
            }
            if let Some(command) = heading
                .trim()
                .strip_prefix("`datoms ")
                .and_then(|h| h.strip_suffix('`'))
            {
                current = Some((command.to_owned(), String::new()));
            }
            continue;
        }
        if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    if let Some((name, text)) = current {
        sections.insert(name, text);
    }
    sections
}

#[test]
fn the_cli_reference_documents_every_command_and_option() {
    let commands = commands();
    let sections = sections();
    assert!(
        commands.contains_key("transact") && commands.contains_key("branch create"),
        "reading `datoms --help` found {:?}: has its layout changed?",
        commands.keys().collect::<Vec<_>>()
    );
    let mut problems = Vec::new();
    for (command, help) in &commands {
        let Some(section) = sections.get(command) else {
            let about = help.lines().next().unwrap_or_default();
            problems.push(format!(
                "`datoms {command}` has no section in docs/cli.md: add one headed \
                 \"## `datoms {command}`\" with its description ({about:?}), its options and an example"
            ));
            continue;
        };
        let example = format!("datoms {command}");
        if !section
            .lines()
            .any(|l| l.trim_start().starts_with(&example))
        {
            problems.push(format!(
                "the section of `datoms {command}` in docs/cli.md has no example line starting `{example}`"
            ));
        }
        for option in long_options(help) {
            let mentioned = section.match_indices(&option).any(|(i, _)| {
                // `--db` must not count as a mention of `--db-…`.
                !section[i + option.len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
            });
            if !mentioned {
                problems.push(format!(
                    "the section of `datoms {command}` in docs/cli.md does not mention its option `{option}`"
                ));
            }
        }
    }
    for command in commands.keys().filter(|c| !c.contains(' ')) {
        let row = format!("| `{command}` ");
        if !README.lines().any(|l| l.starts_with(&row)) {
            problems.push(format!(
                "`datoms {command}` has no row in the README's CLI table: add \
                 \"| `{command}` | what it does | an example |\""
            ));
        }
    }
    for command in sections.keys() {
        if !commands.contains_key(command) {
            problems.push(format!(
                "docs/cli.md has a section for `datoms {command}`, which `datoms --help` does not list"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the CLI reference is out of date:\n- {}",
        problems.join("\n- ")
    );
}

#[test]
fn help_parsing_finds_commands_and_options() {
    let help = "Usage: x\n\nCommands:\n  demo      Run it\n  query     Ask\n            wrapped\n  help      Print\n\nOptions:\n  -o, --out <FILE>  Out\n      --db <URL>  Db\n          wrapped, see --other\n      --json  J\n  -h, --help  H\n";
    assert_eq!(subcommands(help), ["demo", "query"]);
    assert_eq!(long_options(help), ["--out", "--db"]);
}

/// Example lines the session test leaves out, and why: each needs something the test
/// does not start, or runs until interrupted.
const NOT_RUN: [(&str, &str); 5] = [
    (
        "datoms demo",
        "the demo has tests of its own in tests/cli.rs",
    ),
    ("datoms serve", "a server runs until interrupted"),
    ("http://", "needs a running `datoms serve`"),
    ("s3://", "needs an S3 server"),
    ("--follow", "runs until interrupted"),
];

/// The lines of the page's `sh` blocks, in order, but comments and blank lines.
fn example_lines() -> Vec<&'static str> {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in REFERENCE.lines() {
        if line.starts_with("```") {
            inside = line == "```sh";
            continue;
        }
        if inside && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            lines.push(line);
        }
    }
    lines
}

/// The session of docs/cli.md, run line by line with `sh` in a fresh directory (the
/// `datoms` under test first on `PATH`, `COMMIT` replaced by the first commit), but the
/// lines [`NOT_RUN`] names.
#[cfg(unix)]
#[test]
fn the_examples_of_the_cli_reference_run() {
    let binary = assert_cmd::cargo::cargo_bin("datoms");
    let bin_dir = binary.parent().expect("the binary has a directory");
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH joins");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sh = |line: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("DATOMS_DB")
            .env_remove("DATOMS_TOKEN")
            .output()
            .expect("sh runs")
    };
    let mut first_commit: Option<String> = None;
    let mut ran = 0;
    for line in example_lines() {
        if NOT_RUN.iter().any(|(marker, _)| line.contains(marker)) {
            continue;
        }
        let line = if line.contains("COMMIT") {
            let commit = first_commit.get_or_insert_with(|| {
                let out = sh("datoms log --db redb:people.datoms --json");
                let log: serde_json::Value =
                    serde_json::from_slice(&out.stdout).expect("log --json prints JSON");
                let commits = log.as_array().expect("log --json prints an array");
                let first = commits.last().expect("the session made commits");
                first["commit"]
                    .as_str()
                    .expect("a commit address")
                    .to_owned()
            });
            line.replace("COMMIT", commit)
        } else {
            line.to_owned()
        };
        let out = sh(&line);
        assert!(
            out.status.success(),
            "the example `{line}` of docs/cli.md failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(
        ran >= 20,
        "only {ran} example lines ran: is the page's layout still ```sh blocks?"
    );
}
