//! What the book shows of the code besides whole files: the diff from one
//! version of a file to the next. Part one grows one folder in stages
//! (`examples/first-plugin/<stage>/`, ending in `code/step-1-auth`), and
//! each chapter after the first shows what its stage changes. The diffs are
//! generated from the stages themselves, into `src/generated/` (not
//! committed), before every build of the book, so they cannot go stale;
//! the replay of part one applies them as a reader would.

use std::path::{Path, PathBuf};

/// The folders part one grows, in order: each an Envoy configuration and a
/// crate, the last one `code/step-1-auth`.
pub fn part_one_stages() -> Vec<PathBuf> {
    let root = crate::repo_root();
    let mut stages: Vec<PathBuf> = std::fs::read_dir(root.join("examples/first-plugin"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.join("Cargo.toml").is_file())
                .collect()
        })
        .unwrap_or_default();
    stages.sort();
    stages.push(root.join("code/step-1-auth"));
    stages
}

/// Where the generated listings go: `src/generated/`.
pub fn generated_dir() -> PathBuf {
    crate::repo_root().join("src/generated")
}

/// The files of a stage the reader writes: its crate and `envoy.yaml`,
/// `check.sh` (later chapters add others to `code/step-1-auth`).
pub fn reader_files(stage: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for name in ["Cargo.toml", "envoy.yaml", "check.sh"] {
        if stage.join(name).is_file() {
            files.push(name.to_owned());
        }
    }
    let mut sources: Vec<String> = std::fs::read_dir(stage.join("src"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| format!("src/{}", entry.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    sources.sort();
    files.extend(sources);
    files
}

/// A file as the book shows it: without mdBook's `ANCHOR:` lines.
pub fn as_shown(text: &str) -> String {
    text.lines()
        .filter(|line| !line.contains("ANCHOR:") && !line.contains("ANCHOR_END:"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The unified diff from `old` to `new` of the file `path`, as `diff -u`
/// writes it, with two lines of context: enough to find the place, and
/// fewer lines to read.
pub fn diff(path: &str, old: &str, new: &str) -> String {
    let patch = diffy::DiffOptions::new()
        .set_context_len(2)
        .create_patch(old, new)
        .to_string();
    // diffy names the two sides `original` and `modified`.
    let body = patch
        .split_once('\n')
        .and_then(|(_, rest)| rest.split_once('\n'))
        .map_or(patch.as_str(), |(_, rest)| rest);
    format!("--- a/{path}\n+++ b/{path}\n{body}")
}

/// `diff` applied to `old`, as the replay of part one applies what the book
/// shows; `Err` when it does not apply.
pub fn apply(old: &str, diff: &str) -> Result<String, String> {
    let patch = diffy::Patch::from_str(diff).map_err(|e| e.to_string())?;
    diffy::apply(old, &patch).map_err(|e| e.to_string())
}

/// Writes every diff between consecutive stages of part one:
/// `src/generated/first-plugin/<stage>/<file>.diff` for each file the
/// stage changes (a file it adds is shown whole, from the stage itself).
/// Returns the files written.
pub fn generate() -> Result<Vec<PathBuf>, String> {
    let out = generated_dir().join("first-plugin");
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let mut written = Vec::new();
    let stages = part_one_stages();
    for pair in stages.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let name = stage_name(after);
        for file in reader_files(after) {
            let Ok(old) = std::fs::read_to_string(before.join(&file)) else {
                continue;
            };
            let new = std::fs::read_to_string(after.join(&file))
                .map_err(|e| format!("{}: {e}", after.join(&file).display()))?;
            let (old, new) = (as_shown(&old), as_shown(&new));
            if old == new {
                continue;
            }
            let path = out.join(&name).join(format!("{file}.diff"));
            std::fs::create_dir_all(path.parent().unwrap_or(&out))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            std::fs::write(&path, diff(&file, &old, &new))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// `02-keys`, or `step-1-auth` for the last stage.
pub fn stage_name(stage: &Path) -> String {
    stage
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_applies_to_what_it_was_made_from() {
        let old = "a\nb\nc\n// ANCHOR: x\nd\n";
        let new = "a\nB\nc\nd\ne\n";
        let shown = as_shown(old);
        assert_eq!(shown, "a\nb\nc\nd\n");
        let diff = diff("src/lib.rs", &shown, new);
        assert!(diff.starts_with("--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ "), "{diff}");
        assert_eq!(apply(&shown, &diff).as_deref(), Ok(new));
        assert!(apply("x\ny\n", &diff).is_err());
    }

    #[test]
    fn part_one_ends_in_step_1() {
        let stages = part_one_stages();
        assert!(stages.len() >= 2, "{stages:?}");
        assert!(stages.last().is_some_and(|s| s.ends_with("code/step-1-auth")));
    }
}
