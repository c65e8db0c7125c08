//! Building, checking and serving the book.

use crate::run::Result;
use crate::run::{self, root};
use crate::tools;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Not 3000, 8080 or 9091: those are the tutorial's own ports.
const SERVE_ADDRESS: (&str, &str) = ("127.0.0.1", "4000");

pub fn serve() -> Result {
    tools::ensure_mdbook()?;
    generate_listings()?;
    let (host, port) = SERVE_ADDRESS;
    run::step(&format!(
        "serving the book on http://{host}:{port} (Ctrl-C stops it)"
    ));
    let mut command = mdbook();
    command.args(["serve", "--hostname", host, "--port", port]);
    run::status(command)
}

fn mdbook() -> Command {
    let mut command = Command::new(tools::cargo_bin_dir().join("mdbook"));
    command
        .env("PATH", tools::path_with_tools())
        .current_dir(root());
    command
}

/// mdbook-admonish 1.20.0 was compiled against the mdbook 0.4.51 library and
/// says so when run by mdBook 0.4.52. The preprocessor protocol did not change
/// between the two, and 1.20.0 is the newest admonish release; this one line
/// is therefore expected, and every other warning fails the build.
const KNOWN_VERSION_NOTE: &str =
    "The mdbook-admonish preprocessor was built against version 0.4.51 of mdbook, but we're being called from version 0.4.52";

/// Writes what the book shows that is made from the code rather than
/// committed: the diffs between part one's stages (`src/generated/`).
pub fn generate_listings() -> Result {
    run::step("writing the diffs the book shows (src/generated/)");
    project::listings::generate().map(|_| ())
}

/// The checks on the book's sources alone: fast, so they run first.
pub fn check_sources() -> Result {
    generate_listings()?;
    run::step("checking the book's code includes");
    let chapters = markdown_files(&root().join("src"));
    let mut problems = Vec::new();
    for chapter in &chapters {
        let text = std::fs::read_to_string(chapter).map_err(|e| e.to_string())?;
        problems.extend(check_includes(chapter, &text));
        problems.extend(check_no_pasted_rust(chapter, &text));
    }
    if !problems.is_empty() {
        return Err(format!(
            "the book's sources have problems:\n  {}",
            problems.join("\n  ")
        ));
    }
    Ok(())
}

/// Builds the book; `check_sources` is expected to have run first.
pub fn build_and_check() -> Result {
    tools::ensure_mdbook_and_linkcheck()?;
    generate_listings()?;
    run::step("building the book (mdbook build)");
    let mut command = mdbook();
    command.arg("build");
    let output = command
        .output()
        .map_err(|e| format!("cannot run mdbook: {e}"))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| {
            let lower = line.to_ascii_lowercase();
            (lower.contains("warn") || lower.contains("error"))
                && !line.contains(KNOWN_VERSION_NOTE)
        })
        .collect();
    if !output.status.success() || !warnings.is_empty() {
        return Err(format!("mdbook build failed or warned:\n{log}"));
    }

    let unexpanded: Vec<String> = html_files(&html_dir())
        .into_iter()
        .filter(|page| std::fs::read_to_string(page).is_ok_and(|html| html.contains("{{#")))
        .map(|page| page.display().to_string())
        .collect();
    if !unexpanded.is_empty() {
        return Err(format!(
            "unexpanded {{{{#...}}}} in:\n  {}",
            unexpanded.join("\n  ")
        ));
    }
    Ok(())
}

/// Where the HTML lands: `book/html` when several renderers run (the HTML
/// one and linkcheck), as in this book's configuration.
pub fn html_dir() -> std::path::PathBuf {
    root().join("book/html")
}

/// Opens every chapter in headless Chromium (tests/browser/check-book.mjs).
pub fn browser_check() -> Result {
    tools::ensure_browser()?;
    run::step("checking the built book in headless Chromium");
    let artifacts = root().join("target/browser");
    std::fs::create_dir_all(&artifacts).map_err(|e| e.to_string())?;
    let mut command = Command::new("node");
    command
        .arg(root().join("tests/browser/check-book.mjs"))
        .arg(html_dir())
        .arg(&artifacts);
    run::status(command)
}

/// Every `{{#include path:anchor}}` must name an existing file and an
/// `ANCHOR:` in it. Line-number ranges are refused: they drift silently.
fn check_includes(chapter: &Path, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(start) = rest
            .find("{{#include ")
            .or_else(|| rest.find("{{#rustdoc_include "))
        {
            let after = &rest[start..];
            let Some(end) = after.find("}}") else { break };
            let spec = after[..end]
                .split_once(' ')
                .map_or("", |(_, spec)| spec.trim());
            rest = &after[end + 2..];
            let here = format!("{}:{}", chapter.display(), index + 1);
            let (file, anchor) = match spec.split_once(':') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (spec, None),
            };
            let path = chapter.parent().unwrap_or(Path::new(".")).join(file);
            let Ok(source) = std::fs::read_to_string(&path) else {
                problems.push(format!("{here}: included file {file} does not exist"));
                continue;
            };
            match anchor {
                Some(anchor) if anchor.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
                    problems.push(format!(
                        "{here}: line-range include `{spec}`; use a named ANCHOR"
                    ))
                }
                Some(anchor) if !source.contains(&format!("ANCHOR: {anchor}\n")) => {
                    problems.push(format!("{here}: {file} has no `ANCHOR: {anchor}`"))
                }
                _ => {}
            }
        }
    }
    problems
}

/// A ```rust block must only hold includes: Rust in the book comes from a
/// crate that is built and tested.
fn check_no_pasted_rust(chapter: &Path, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    // The open fence's line and whether it is Rust (`rust`, `rust,ignore`).
    let mut open: Option<(usize, bool)> = None;
    let mut reported = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            open = match open {
                None => Some((index + 1, info.split(',').next() == Some("rust"))),
                Some(_) => None,
            };
            reported = false;
            continue;
        }
        let Some((start, true)) = open else {
            continue;
        };
        let included =
            trimmed.starts_with("{{#include") || trimmed.starts_with("{{#rustdoc_include");
        if !trimmed.is_empty() && !included && !reported {
            problems.push(format!(
                "{}:{start}: Rust pasted into the book; include it by anchor",
                chapter.display()
            ));
            reported = true;
        }
    }
    problems
}

fn files_with_extension(dir: &Path, extension: &str, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|entry| entry.ok()) {
        let path = entry.path();
        if path.is_dir() {
            files_with_extension(&path, extension, found);
        } else if path.extension().is_some_and(|ext| ext == extension) {
            found.push(path);
        }
    }
}

fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    files_with_extension(dir, "md", &mut found);
    found
}

fn html_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    files_with_extension(dir, "html", &mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chapter_with(file: &str, source: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("xtask-book-{}-{file}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(file), source).unwrap_or_else(|e| panic!("{e}"));
        (dir.join("chapter.md"), dir)
    }

    #[test]
    fn includes_must_name_a_file_and_an_anchor_it_has() {
        let (chapter, dir) = chapter_with(
            "lib.rs",
            "// ANCHOR: main\nfn main() {}\n// ANCHOR_END: main\n",
        );
        let problems = |text: &str| check_includes(&chapter, text);
        assert!(problems("{{#include lib.rs:main}}").is_empty());
        assert!(problems("{{#include lib.rs}}").is_empty(), "a whole file");
        assert_eq!(problems("{{#include lib.rs:other}}").len(), 1);
        assert_eq!(problems("{{#include lib.rs:2:3}}").len(), 1, "a line range");
        assert_eq!(problems("{{#include missing.rs:main}}").len(), 1);
        assert_eq!(
            problems("a {{#include lib.rs:main}} and {{#include lib.rs:x}}").len(),
            1
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rust_blocks_may_only_include() {
        let chapter = Path::new("chapter.md");
        let found = |text: &str| check_no_pasted_rust(chapter, text).len();
        assert_eq!(found("```rust\n{{#include a.rs:x}}\n```\n"), 0);
        assert_eq!(
            found("```rust\nfn main() {}\nlet x = 1;\n```\n"),
            1,
            "one per block"
        );
        assert_eq!(found("```rust,ignore\nfn main() {}\n```\n"), 1);
        assert_eq!(
            found("```toml\n[package]\n```\n```rust\n{{#include a.rs:x}}\n```\n"),
            0
        );
        assert_eq!(
            found("```text\nfn main() {}\n```\n```rust\nfn x() {}\n```\n"),
            1
        );
        assert_eq!(found("```rusty\nnot rust\n```\n"), 0);
    }
}
