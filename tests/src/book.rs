//! The book as a reader follows it: the chapters of a part, in order, read
//! into the actions they ask for (create this file, run this command, in
//! this terminal, and expect this output). The replay test performs them.
//!
//! What a chapter marks, and how a reader sees it:
//! - `<span class="filename">Filename: PATH</span>` before a code block: the
//!   block is the whole file PATH (relative to the current folder), or, for
//!   a ```` ```diff ```` block, the change to make to it; before a download
//!   link (`<a class="download" href="FILE" ...>`) instead: the reader saves
//!   FILE (a file of the book, relative to the chapter) as PATH;
//! - a ```` ```bash ```` block: commands to type in the first terminal;
//! - ```` ```bash,second-terminal ````: a command that keeps running (Envoy),
//!   in the second terminal, after stopping what ran there (Ctrl-C); the
//!   prose says so;
//! - ```` ```bash,tool-install ````: installing a tool the replay provides
//!   itself (the same Envoy the project installs), so it is not run;
//! - a ```` ```text ```` block that only includes a file of `captured/`:
//!   right after a first-terminal command, that command's output; right
//!   after a second-terminal one, lines of the log it prints;
//! - ```` ```text,example ````: output shown as an example, of nothing the
//!   reader was asked to run; ```` ```bash,example ````: lines of a script
//!   shown, not run.

use crate::paths;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq)]
pub enum Action {
    /// Create the file at this path (relative to the current folder).
    WriteFile { path: String, content: String },
    /// Change the file at this path as the unified diff says.
    ApplyDiff { path: String, diff: String },
    /// Run in the first terminal; it must succeed.
    Run { commands: String, chapter: String },
    /// Install a tool (`bash,tool-install`): the replay provides it itself.
    InstallTool { commands: String },
    /// Start in a second terminal and leave running.
    RunInSecondTerminal { commands: String, chapter: String },
    /// The output the book shows for the previous `Run`: a file of
    /// `src/captured/`.
    ExpectOutput { captured: String },
    /// Lines the book shows of the log of the previous
    /// `RunInSecondTerminal`: a file of `src/captured/`.
    ExpectLogLines { captured: String },
}

/// The chapters listed under `# {part}` in SUMMARY.md, in order.
pub fn chapters_of_part(part: &str) -> Vec<PathBuf> {
    let src = paths::repo_root().join("src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).expect("read SUMMARY.md");
    let heading = format!("# {part}");
    summary
        .lines()
        .skip_while(|line| line.trim() != heading)
        .skip(1)
        .take_while(|line| !line.starts_with("# "))
        .filter_map(|line| {
            let start = line.find("](")? + 2;
            let end = start + line[start..].find(')')?;
            Some(src.join(&line[start..end]))
        })
        .collect()
}

/// The actions of these chapters, in reading order.
pub fn actions(chapters: &[PathBuf]) -> Vec<Action> {
    let mut actions = Vec::new();
    for chapter in chapters {
        let text = std::fs::read_to_string(chapter)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", chapter.display()));
        let name = chapter
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        actions.extend(chapter_actions(
            &text,
            chapter.parent().unwrap_or(Path::new(".")),
            &name,
        ));
    }
    actions
}

const FILENAME_OPEN: &str = "<span class=\"filename\">Filename: ";

/// The file a download link offers: `<a class="download" href="FILE" ...>`.
fn download_link(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("<a class=\"download\" href=\"")?;
    rest.split('"').next()
}

fn chapter_actions(text: &str, dir: &Path, chapter: &str) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut next_file: Option<String> = None;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.trim().strip_prefix(FILENAME_OPEN) {
            let path = rest.trim_end_matches("</span>").trim();
            next_file = Some(path.to_owned());
            continue;
        }
        if let Some(href) = download_link(line) {
            if let Some(path) = next_file.take() {
                let file = dir.join(href);
                let content = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("the download {}: {e}", file.display()));
                let content = content.strip_suffix('\n').unwrap_or(&content).to_owned();
                actions.push(Action::WriteFile { path, content });
            }
            continue;
        }
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        if info.is_empty() || info.starts_with("admonish") {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.trim_start().starts_with("```"))
            .collect();
        let raw = body.join("\n");
        let mut attributes = info.split(',').map(str::trim);
        let language = attributes.next().unwrap_or_default();
        let attributes: Vec<&str> = attributes.collect();
        if let Some(path) = next_file.take() {
            let content = expand_includes(&raw, dir);
            if language == "diff" {
                actions.push(Action::ApplyDiff {
                    path,
                    diff: content,
                });
            } else {
                actions.push(Action::WriteFile { path, content });
            }
        } else if language == "bash" && attributes.contains(&"example") {
            // Shown, not run: lines of a file the reader already has.
        } else if language == "bash" && attributes.contains(&"second-terminal") {
            actions.push(Action::RunInSecondTerminal {
                commands: expand_includes(&raw, dir),
                chapter: chapter.to_owned(),
            });
        } else if language == "bash" && attributes.contains(&"tool-install") {
            actions.push(Action::InstallTool {
                commands: expand_includes(&raw, dir),
            });
        } else if language == "bash" {
            actions.push(Action::Run {
                commands: expand_includes(&raw, dir),
                chapter: chapter.to_owned(),
            });
        } else if language == "text" && !attributes.contains(&"example") {
            if let Some(captured) = captured_include(&raw) {
                match actions.last() {
                    Some(Action::Run { .. }) => actions.push(Action::ExpectOutput { captured }),
                    Some(Action::RunInSecondTerminal { .. }) => {
                        actions.push(Action::ExpectLogLines { captured })
                    }
                    _ => {}
                }
            }
        }
    }
    actions
}

/// `captured/x/y.txt` when the block is exactly `{{#include captured/x/y.txt}}`.
fn captured_include(raw: &str) -> Option<String> {
    let spec = raw.trim().strip_prefix("{{#include ")?.strip_suffix("}}")?;
    spec.trim().strip_prefix("captured/").map(str::to_owned)
}

/// Expands `{{#include path}}` and `{{#include path:anchor}}` the way mdBook
/// 0.4 does: a whole file as it is (without its last newline); an anchor's
/// lines without any `ANCHOR:`/`ANCHOR_END:` line inside it.
pub fn expand_includes(text: &str, dir: &Path) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{#include ") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "{{#include ".len()..];
        let end = after.find("}}").expect("an {{#include}} closes with }}");
        let spec = after[..end].trim();
        let (file, anchor) = match spec.split_once(':') {
            Some((file, anchor)) => (file, Some(anchor)),
            None => (spec, None),
        };
        let path = dir.join(file);
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("included file {} cannot be read: {e}", path.display()));
        match anchor {
            None => out.push_str(&source.lines().collect::<Vec<_>>().join("\n")),
            Some(anchor) => out.push_str(&anchored_lines(&source, anchor)),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The lines of `source` inside `anchor`, as mdBook includes them.
fn anchored_lines(source: &str, anchor: &str) -> String {
    project::listings::anchored(source, anchor)
        .unwrap_or_else(|| panic!("no `ANCHOR: {anchor}`"))
        .trim_end_matches('\n')
        .to_owned()
}

/// An Envoy log line without what changes from run to run: the time and
/// the thread at its start, and the source line it names.
pub fn normalise_log_line(line: &str) -> String {
    // [2026-12-01 21:30:30.824][21087][info][wasm] [source/...cc:1151] ...
    let rest = line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("]["))
        .and_then(|(_, rest)| rest.split_once("]["))
        .map_or(line, |(_, rest)| rest);
    crate::capture::without_source_lines(rest)
}

/// Output that changes from run to run (dates, request ids) or from machine
/// to machine (curl's version), replaced by placeholders, so a command's
/// output can be compared with what the book shows.
pub fn normalise_output(text: &str) -> String {
    sort_test_lines(text)
        .iter()
        .map(|line| {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("date: ") {
                return "date: <date>".to_owned();
            }
            if lower.starts_with("x-request-id: ") {
                return "x-request-id: <id>".to_owned();
            }
            // `cargo test`'s summary ends with its time.
            if let Some((summary, _)) = line.split_once("; finished in ") {
                return format!("{summary}; finished in <time>");
            }
            let line = replace_json_value(line, "\"x-request-id\":[\"", "<id>");
            replace_json_value(&line, "\"user-agent\":[\"curl/", "<version>")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines of `text`, with each run of `test NAME ... ok` lines sorted:
/// `cargo test` runs tests in parallel and prints them as they finish.
fn sort_test_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with("test ") && line.contains(" ... ") {
            run.push(line);
            continue;
        }
        run.sort_unstable();
        lines.append(&mut run);
        lines.push(line);
    }
    run.sort_unstable();
    lines.append(&mut run);
    lines
}

/// In `...<key>VALUE"...`, VALUE replaced by `placeholder`.
fn replace_json_value(line: &str, key: &str, placeholder: &str) -> String {
    match line.find(key) {
        Some(start) => {
            let value_start = start + key.len();
            match line[value_start..].find('"') {
                Some(len) => format!(
                    "{}{placeholder}{}",
                    &line[..value_start],
                    &line[value_start + len..]
                ),
                None => line.to_owned(),
            }
        }
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_inside_an_anchor_are_dropped() {
        let source = "a\n// ANCHOR: whole\nb\n// ANCHOR: part\nc\n// ANCHOR_END: part\nd\n// ANCHOR_END: whole\ne\n";
        assert_eq!(anchored_lines(source, "whole"), "b\nc\nd");
        assert_eq!(anchored_lines(source, "part"), "c");
    }

    #[test]
    fn log_lines_lose_their_time_thread_and_source_line() {
        let a = "[2026-12-01 21:30:30.824][21087][info][wasm] [source/extensions/common/wasm/context.cc:1151] wasm log auth: x";
        let b = "[2026-12-02 01:00:00.000][9][info][wasm] [source/extensions/common/wasm/context.cc:1160] wasm log auth: x";
        assert_eq!(normalise_log_line(a), normalise_log_line(b));
        assert!(normalise_log_line(a).starts_with("info][wasm] "));
    }

    #[test]
    fn diffs_and_examples_are_read_as_the_reader_reads_them() {
        let text = "<span class=\"filename\">Filename: src/lib.rs</span>\n\n```diff\n--- a/src/lib.rs\n```\n\n```bash,second-terminal\nenvoy -c envoy.yaml\n```\n\n```text\n{{#include captured/x/log.txt}}\n```\n\n```text,example\n{{#include captured/x/y.txt}}\n```\n";
        let actions = chapter_actions(text, Path::new("."), "c.md");
        assert_eq!(
            actions,
            [
                Action::ApplyDiff {
                    path: "src/lib.rs".into(),
                    diff: "--- a/src/lib.rs".into()
                },
                Action::RunInSecondTerminal {
                    commands: "envoy -c envoy.yaml".into(),
                    chapter: "c.md".into()
                },
                Action::ExpectLogLines {
                    captured: "x/log.txt".into()
                },
            ]
        );
    }

    #[test]
    fn volatile_values_are_replaced() {
        let line = r#"{"user-agent":["curl/7.88.1"],"x-request-id":["1f-2e"]}"#;
        assert_eq!(
            normalise_output(&format!("date: Fri, 27 Nov 2026 GMT\n{line}")),
            "date: <date>\n{\"user-agent\":[\"curl/<version>\"],\"x-request-id\":[\"<id>\"]}"
        );
    }
}
