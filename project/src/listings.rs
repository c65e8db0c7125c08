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
    stages.push(crate::step::Step::part_one().dir);
    stages
}

/// Where the generated listings go: `src/generated/`.
pub fn generated_dir() -> PathBuf {
    crate::repo_root().join("src/generated")
}

/// The files of a stage the reader writes: its crate and `envoy.yaml`,
/// `check.sh`, and in step 1 what "Testing your plugin" adds (its
/// toolchain file and in-process tests; other chapters add further files
/// to `code/step-1-auth` that the reader does not write).
pub fn reader_files(stage: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for name in [
        "Cargo.toml",
        "rust-toolchain.toml",
        "envoy.yaml",
        "check.sh",
    ] {
        if stage.join(name).is_file() {
            files.push(name.to_owned());
        }
    }
    let mut tests: Vec<String> = std::fs::read_dir(stage.join(IN_PROCESS_TESTS))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| format!("{IN_PROCESS_TESTS}/{}", entry.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    tests.sort();
    files.extend(tests);
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

/// Where a step keeps its in-process tests.
pub const IN_PROCESS_TESTS: &str = "tests/in_process";

/// The comment that opens the section "Testing your plugin" adds to step
/// 1's Cargo.toml (the dev-dependency on the host library).
const TESTING_SECTION: &str = "# The tests in tests/in_process/";

/// A step 1 file as part one leaves it: before "Testing your plugin" adds
/// its section to Cargo.toml (from its comment to the blank line after).
pub fn before_testing_chapter(file: &str, text: &str) -> String {
    if file != "Cargo.toml" {
        return text.to_owned();
    }
    let Some(start) = text.find(TESTING_SECTION) else {
        return text.to_owned();
    };
    let end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |at| start + at + 2);
    format!("{}{}", &text[..start], &text[end..])
}

/// The anchor that marks, in step 1's `tests/in_process/main.rs`, the
/// first test "Testing your plugin" has the reader write: the whole file,
/// as it is before the chapter grows it.
pub const FIRST_TEST_ANCHOR: &str = "first_test";

/// The region of `text` between `ANCHOR: name` and `ANCHOR_END: name`, as
/// mdBook includes it.
pub fn anchored(text: &str, name: &str) -> Option<String> {
    let mut kept = String::new();
    let mut inside = false;
    for line in text.lines() {
        let (start, end) = (
            anchor_name(line, "ANCHOR:"),
            anchor_name(line, "ANCHOR_END:"),
        );
        if !inside {
            inside = start == Some(name);
        } else if end == Some(name) {
            break;
        } else if start.is_none() && end.is_none() {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    inside.then_some(kept)
}

/// The anchor named after `marker` on `line`, as mdBook reads it.
fn anchor_name<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let after = line.split(marker).nth(1)?.trim_start();
    let end = after
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(after.len());
    (end > 0).then(|| &after[..end])
}

/// A file as the book shows it: without mdBook's `ANCHOR:` lines.
pub fn as_shown(text: &str) -> String {
    text.lines()
        .filter(|line| !line.contains("ANCHOR:") && !line.contains("ANCHOR_END:"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// A Rust file without the unit tests at its end (`#[cfg(test)] mod
/// tests`): the step diffs leave them out, the archives have them.
pub fn without_tests(text: &str) -> String {
    match text.find("\n#[cfg(test)]\nmod tests {") {
        Some(at) => text[..=at].to_owned(),
        None => text.to_owned(),
    }
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

/// Every file of a step folder a reader gets, relative to it and sorted:
/// all but build output (`target/`, a built `.wasm`), which git ignores.
pub fn folder_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" {
                    walk(root, &path, found);
                }
            } else if path.extension().is_none_or(|ext| ext != "wasm") {
                if let Ok(relative) = path.strip_prefix(root) {
                    found.push(relative.to_path_buf());
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

/// Where the archive of a step folder goes: the book's site serves
/// `downloads/<step>.tar.gz`.
pub fn archive_path(step: &str) -> PathBuf {
    generated_dir()
        .join("downloads")
        .join(format!("{step}.tar.gz"))
}

/// `dir` as a gzipped tar of `<name>/...`, the same bytes for the same
/// files: sorted, no owner, no time.
pub fn write_archive(dir: &Path, name: &str, to: &Path) -> Result<(), String> {
    let file = std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let gzip = flate2::GzBuilder::new()
        .mtime(0)
        .write(file, flate2::Compression::best());
    let mut archive = tar::Builder::new(gzip);
    archive.mode(tar::HeaderMode::Deterministic);
    for relative in folder_files(dir) {
        let path = dir.join(&relative);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let executable = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_cksum();
        archive
            .append_data(
                &mut header,
                Path::new(name).join(&relative),
                bytes.as_slice(),
            )
            .map_err(|e| e.to_string())?;
    }
    let gzip = archive.into_inner().map_err(|e| e.to_string())?;
    gzip.finish().map_err(|e| e.to_string())?;
    Ok(())
}

/// Unpacks an archive `write_archive` made into `into` (its `<name>/`
/// folder lands there).
pub fn unpack_archive(archive: &Path, into: &Path) -> Result<(), String> {
    let file = std::fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    // The files get the time of unpacking, not the archive's fixed one:
    // Cargo would otherwise take sources older than an earlier build in
    // the same folder for unchanged, and not rebuild.
    let mut archive_reader = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive_reader.set_preserve_mtime(false);
    archive_reader
        .unpack(into)
        .map_err(|e| format!("{}: {e}", archive.display()))
}

/// Writes every diff between consecutive stages of part one:
/// `src/generated/first-plugin/<stage>/<file>.diff` for each file the
/// stage changes (a file it adds is shown whole, from the stage itself).
/// Returns the files written.
pub fn generate() -> Result<Vec<PathBuf>, String> {
    let out = generated_dir().join("first-plugin");
    remove_generated(&out)?;
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
            let (old, mut new) = (as_shown(&old), as_shown(&new));
            if *after == crate::step::Step::part_one().dir {
                new = before_testing_chapter(&file, &new);
            }
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
    written.extend(testing_diffs()?);
    written.extend(step_diffs()?);
    written.extend(pitfall_diffs()?);
    written.extend(step_archives()?);
    Ok(written)
}

/// Removes what an earlier run generated in `out`, so a file the book no
/// longer shows is not left behind.
fn remove_generated(out: &Path) -> Result<(), String> {
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

/// `src/generated/testing/<file>.diff`: what "Testing your plugin" changes
/// in step 1's files as part one leaves them.
fn testing_diffs() -> Result<Vec<PathBuf>, String> {
    let step_1 = crate::step::Step::part_one().dir;
    let out = generated_dir().join("testing");
    remove_generated(&out)?;
    let mut written = Vec::new();
    for file in reader_files(&step_1) {
        let text =
            std::fs::read_to_string(step_1.join(&file)).map_err(|e| format!("{file}: {e}"))?;
        let after = as_shown(&text);
        // The first test is the whole of main.rs until the chapter grows it.
        let before = match anchored(&text, FIRST_TEST_ANCHOR) {
            Some(first) if file == format!("{IN_PROCESS_TESTS}/main.rs") => first,
            _ => before_testing_chapter(&file, &after),
        };
        if before == after {
            continue;
        }
        let path = out.join(format!("{file}.diff"));
        let folder = path.parent().unwrap_or(&out);
        std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        std::fs::write(&path, diff(&file, &before, &after))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    if written.is_empty() {
        return Err("step 1's Cargo.toml has no section for its in-process tests".into());
    }
    Ok(written)
}

/// `src/generated/steps/<step>/<file>.diff` for each file a step of part
/// two changes from the step it grows from (its description's `grows_from`).
fn step_diffs() -> Result<Vec<PathBuf>, String> {
    let code = crate::repo_root().join("code");
    let out = generated_dir().join("steps");
    remove_generated(&out)?;
    let mut written = Vec::new();
    let grown = crate::step::DESCRIPTIONS
        .iter()
        .filter_map(|d| Some((d.folder, d.grows_from?)));
    for (step, base) in grown {
        for relative in folder_files(&code.join(step)) {
            let Ok(old) = std::fs::read_to_string(code.join(base).join(&relative)) else {
                continue;
            };
            let new = std::fs::read_to_string(code.join(step).join(&relative))
                .map_err(|e| format!("{}: {e}", relative.display()))?;
            let (old, new) = (
                without_tests(&as_shown(&old)),
                without_tests(&as_shown(&new)),
            );
            if old == new {
                continue;
            }
            let file = relative.to_string_lossy();
            let path = out.join(step).join(format!("{file}.diff"));
            std::fs::create_dir_all(path.parent().unwrap_or(&out))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            std::fs::write(&path, diff(&file, &old, &new))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// `src/generated/pitfalls/<name>.diff` for each naive variant the book
/// shows: the change from the variant to the step, which is the fix.
fn pitfall_diffs() -> Result<Vec<PathBuf>, String> {
    let out = generated_dir().join("pitfalls");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut written = Vec::new();
    for (name, step, patches) in crate::naive::PITFALLS {
        let dir = crate::repo_root().join("code").join(step);
        let mut files: Vec<&str> = patches.iter().map(|p| p.file).collect();
        files.dedup();
        let mut text = String::new();
        for file in files {
            let fixed = as_shown(
                &std::fs::read_to_string(dir.join(file))
                    .map_err(|e| format!("{step}/{file}: {e}"))?,
            );
            let mut naive = fixed.clone();
            for patch in patches.iter().filter(|p| p.file == file) {
                if naive.matches(patch.from).count() != 1 {
                    return Err(format!(
                        "{name}: `{}` is not once in {step}/{file}",
                        patch.from
                    ));
                }
                naive = naive.replacen(patch.from, patch.to, 1);
            }
            text.push_str(&diff(file, &naive, &fixed));
        }
        let path = out.join(format!("{name}.diff"));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `src/generated/downloads/<step>.tar.gz` for every step folder; for
/// each stage of part one before the last, `first-plugin-<stage>.tar.gz`,
/// the reader's `step-1-auth` folder as that stage leaves it; and the
/// files part one and "Testing your plugin" have the reader download:
/// step 1's `check.sh` and in-process host.
fn step_archives() -> Result<Vec<PathBuf>, String> {
    let dir = generated_dir().join("downloads");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for step in crate::step::Step::all() {
        let path = archive_path(&step.name);
        write_archive(&step.dir, &step.name, &path)?;
        written.push(path);
    }
    let part_one = crate::step::Step::part_one();
    let stages = part_one_stages();
    for stage in stages.iter().take(stages.len().saturating_sub(1)) {
        let path = dir.join(format!("first-plugin-{}.tar.gz", stage_name(stage)));
        write_archive(stage, &part_one.name, &path)?;
        written.push(path);
    }
    let check = part_one.check_script();
    let text = std::fs::read_to_string(&check).map_err(|e| format!("{}: {e}", check.display()))?;
    let path = dir.join(STEP_1_CHECK_DOWNLOAD);
    std::fs::write(&path, as_shown(&text)).map_err(|e| format!("{}: {e}", path.display()))?;
    written.push(path);
    let host = part_one.dir.join(IN_PROCESS_TESTS).join("host.rs");
    let text = std::fs::read_to_string(&host).map_err(|e| format!("{}: {e}", host.display()))?;
    let path = dir.join(IN_PROCESS_HOST_DOWNLOAD);
    std::fs::write(&path, as_shown(&text)).map_err(|e| format!("{}: {e}", path.display()))?;
    written.push(path);
    Ok(written)
}

/// The download of step 1's check script, which part one has the reader
/// save as `check.sh`, in `downloads/`.
pub const STEP_1_CHECK_DOWNLOAD: &str = "step-1-check.sh";

/// The download of step 1's in-process host, in `downloads/`.
pub const IN_PROCESS_HOST_DOWNLOAD: &str = "in-process-host.rs";

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
        assert!(
            diff.starts_with("--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ "),
            "{diff}"
        );
        assert_eq!(apply(&shown, &diff).as_deref(), Ok(new));
        assert!(apply("x\ny\n", &diff).is_err());
    }

    #[test]
    fn an_archive_holds_the_folder_and_nothing_built() {
        let step = crate::repo_root().join("code/step-1-auth");
        let dir = std::env::temp_dir().join(format!("listings-archive-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let (first, second) = (dir.join("a.tar.gz"), dir.join("b.tar.gz"));
        for archive in [&first, &second] {
            write_archive(&step, "step-1-auth", archive).unwrap_or_else(|e| panic!("{e}"));
        }
        let read = |p: &Path| std::fs::read(p).unwrap_or_default();
        assert_eq!(read(&first), read(&second), "the same bytes twice");
        unpack_archive(&first, &dir).unwrap_or_else(|e| panic!("{e}"));
        let unpacked = folder_files(&dir.join("step-1-auth"));
        assert_eq!(unpacked, folder_files(&step));
        assert!(unpacked.iter().all(|p| !p.starts_with("target")));
        assert!(unpacked.iter().any(|p| p == Path::new("src/lib.rs")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn part_one_ends_in_step_1() {
        let stages = part_one_stages();
        assert!(stages.len() >= 2, "{stages:?}");
        assert!(stages
            .last()
            .is_some_and(|s| s.ends_with("code/step-1-auth")));
    }
}
