//! The README and `docs/*.md` link only to files that exist: a renamed example, test or
//! page fails here, naming the page and the link.

use std::path::{Path, PathBuf};

/// The repository root (this crate's parent directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the datoms crate lives in the repository")
        .to_path_buf()
}

/// The targets of the inline links `[text](target)` in markdown `text`.
fn links(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(end) => {
                out.push(&after[..end]);
                rest = &after[end..];
            }
            None => break,
        }
    }
    out
}

#[test]
fn relative_links_of_the_readme_and_docs_name_existing_files() {
    let root = root();
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/ is readable") {
        let path = entry.expect("docs/ lists").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("a page reads");
        for link in links(&text) {
            let file = link.split('#').next().unwrap_or_default();
            if file.is_empty() || file.contains("://") || file.starts_with("mailto:") {
                continue;
            }
            let dir = page.parent().expect("a page has a directory");
            if !dir.join(file).exists() {
                broken.push(format!("{}: ({link})", page.display()));
            }
        }
    }
    assert!(pages.len() > 3, "found only {pages:?}");
    assert!(
        broken.is_empty(),
        "links to files that do not exist:\n{}",
        broken.join("\n")
    );
}

#[test]
fn links_are_read_from_markdown() {
    assert_eq!(
        links("see [a](x.md) and [b](../y.rs#top), not (z)"),
        ["x.md", "../y.rs#top"]
    );
}
