//! Command output the book shows is captured from real runs into
//! `src/captured/`. Tests compare what they see with the committed capture;
//! `UPDATE_CAPTURES=1` (what `cargo xtask capture` sets, and nothing else)
//! rewrites it instead.

use crate::paths;
use std::path::Path;

/// True only under `cargo xtask capture` (`UPDATE_CAPTURES=1`): any other
/// value, or none, compares.
pub fn updating() -> bool {
    std::env::var("UPDATE_CAPTURES").is_ok_and(|value| value == "1")
}

/// The committed capture; a missing one fails the test (an empty output
/// must not pass as "matching" a capture that was never written).
fn committed(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{} cannot be read ({e}); run `cargo xtask capture` to write it",
            path.display()
        )
    })
}

/// Envoy's log lines name the source line that wrote them
/// (`[source/.../context.cc:1154]`), which moves from release to release:
/// comparisons ignore the number, so the tests pass on any release while
/// the book shows what Envoy 1.40.0 printed.
pub fn without_source_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(".cc:").or_else(|| rest.find(".h:")) {
        let colon = at + rest[at..].find(':').unwrap_or(0) + 1;
        let digits = rest[colon..].bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&rest[..colon]);
        if digits > 0 && rest[colon + digits..].starts_with(']') {
            out.push_str("<line>");
        } else {
            out.push_str(&rest[colon..colon + digits]);
        }
        rest = &rest[colon + digits..];
    }
    out.push_str(rest);
    out
}

/// Statistics that not every release of the compatibility matrix has, with
/// the first release that has each (measured: 1.36.4, 1.37.0 and 1.38.2 have
/// no `wasm.wasm_vm_count`, 1.39.0 has it).
const NOT_IN_EVERY_RELEASE: [(&str, &str); 1] = [("wasm.wasm_vm_count", "1.39.0")];

/// `1.36.4` as numbers, for comparing releases.
fn release_numbers(release: &str) -> Vec<u32> {
    release
        .split('.')
        .map_while(|part| part.parse().ok())
        .collect()
}

/// Whether `release` has the statistic `name`.
fn release_has(release: &str, name: &str) -> bool {
    NOT_IN_EVERY_RELEASE
        .iter()
        .find(|(stat, _)| *stat == name)
        .is_none_or(|(_, since)| release_numbers(release) >= release_numbers(since))
}

/// Whether `name` is the name of an Envoy statistic: dotted words of
/// letters, digits, `_` and `-` (`wasm.auth.vm_reload`), never a bare word
/// such as `key-new456` in a line of prose.
fn is_stat_name(name: &str) -> bool {
    name.contains('.')
        && name.split('.').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        })
}

/// The statistic lines of a text (Envoy's `/stats` format, `name: value`),
/// by name; and the text's other lines, in order.
fn split_stats(text: &str) -> (std::collections::BTreeMap<&str, &str>, Vec<&str>) {
    let mut stats = std::collections::BTreeMap::new();
    let mut other = Vec::new();
    for line in text.lines() {
        match line.split_once(": ") {
            Some((name, value)) if is_stat_name(name) => {
                let repeated = stats.insert(name, value);
                assert!(repeated.is_none(), "the statistic {name} appears twice");
            }
            _ => other.push(line),
        }
    }
    (stats, other)
}

/// For a capture with Envoy statistics in it (`name: value` lines), whose
/// set changes between releases. With the pinned release, compared whole
/// (or rewritten). With another, as a map from name to value: every
/// statistic of the capture that the release has must be there with the
/// same value, no other statistic may appear, and the other lines must be
/// the same.
pub fn check_or_update_stats(relative: &str, actual: &str) {
    let envoy = crate::paths::envoy_binary();
    let release = project::envoy::release_of(&envoy).unwrap_or_default();
    if release == project::envoy::VERSION {
        return check_or_update(relative, actual);
    }
    assert!(
        !updating(),
        "captures are written with Envoy {}, not {release}",
        project::envoy::VERSION
    );
    let path = paths::repo_root().join("src/captured").join(relative);
    let committed = committed(&path);
    let (expected, expected_lines) = split_stats(&committed);
    let (seen, seen_lines) = split_stats(actual);
    let expected: std::collections::BTreeMap<&str, &str> = expected
        .into_iter()
        .filter(|(name, _)| release_has(&release, name))
        .collect();
    assert_eq!(
        seen,
        expected,
        "the statistics of {} on Envoy {release}",
        path.display()
    );
    assert_eq!(
        seen_lines
            .iter()
            .map(|l| without_source_lines(l))
            .collect::<Vec<_>>(),
        expected_lines
            .iter()
            .map(|l| without_source_lines(l))
            .collect::<Vec<_>>(),
        "the lines around the statistics of {} on Envoy {release}",
        path.display()
    );
}

/// A command's output as a reader's terminal shows it (dates, request ids
/// and curl's version vary: they are compared as placeholders).
pub fn check_or_update_output(relative: &str, actual: &str) {
    let path = paths::repo_root().join("src/captured").join(relative);
    if updating() {
        std::fs::create_dir_all(path.parent().expect("capture has a parent"))
            .expect("create capture directory");
        std::fs::write(&path, actual).expect("write capture");
        return;
    }
    let committed = committed(&path);
    assert!(
        crate::book::normalise_output(&committed) == crate::book::normalise_output(actual),
        "{} is out of date; run `cargo xtask capture` to refresh it.\n--- committed\n{committed}\n--- now\n{actual}",
        path.display()
    );
}

/// Envoy log lines as a reader's terminal shows them, compared without
/// what changes from run to run (the time, the thread, the source line).
pub fn check_or_update_log(relative: &str, lines: &[&str]) {
    let path = paths::repo_root().join("src/captured").join(relative);
    let actual: String = lines.iter().map(|line| format!("{line}\n")).collect();
    if updating() {
        std::fs::create_dir_all(path.parent().expect("capture has a parent"))
            .expect("create capture directory");
        std::fs::write(&path, actual).expect("write capture");
        return;
    }
    let committed = committed(&path);
    let normalised =
        |text: &str| -> Vec<String> { text.lines().map(crate::book::normalise_log_line).collect() };
    assert!(
        normalised(&committed) == normalised(&actual),
        "{} is out of date; run `cargo xtask capture` to refresh it.\n--- committed\n{committed}\n--- now\n{actual}",
        path.display()
    );
}

/// The last `count` lines of `output`, as `tail -n COUNT` prints them.
pub fn last_lines(output: &str, count: usize) -> String {
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(count)..]
        .iter()
        .map(|line| format!("{line}\n"))
        .collect()
}

pub fn check_or_update(relative: &str, actual: &str) {
    let path = paths::repo_root().join("src/captured").join(relative);
    if updating() {
        std::fs::create_dir_all(path.parent().expect("capture has a parent"))
            .expect("create capture directory");
        std::fs::write(&path, actual).expect("write capture");
        return;
    }
    let committed = committed(&path);
    assert!(
        without_source_lines(&committed) == without_source_lines(actual),
        "{} is out of date; run `cargo xtask capture` to refresh it.\n--- committed\n{committed}\n--- now\n{actual}",
        path.display()
    );
}

/// Compares with a committed capture without ever rewriting it: for a test
/// whose output must equal what another test captured.
pub fn assert_matches(relative: &str, actual: &str) {
    // While captures are being rewritten, the one to compare with may not
    // be written yet; the next `cargo xtask test` compares for real.
    if updating() {
        return;
    }
    let path = paths::repo_root().join("src/captured").join(relative);
    let committed = committed(&path);
    assert!(
        without_source_lines(&committed) == without_source_lines(actual),
        "output differs from {}:\n--- committed\n{committed}\n--- now\n{actual}",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_line_numbers_are_ignored() {
        let a =
            "[error][wasm] [source/extensions/common/wasm/context.cc:1151] wasm log: x.h:3 a.cc:b";
        let b =
            "[error][wasm] [source/extensions/common/wasm/context.cc:1160] wasm log: x.h:3 a.cc:b";
        assert_eq!(without_source_lines(a), without_source_lines(b));
        assert!(without_source_lines(a).contains("context.cc:<line>]"));
        assert!(without_source_lines(a).ends_with("x.h:3 a.cc:b"));
    }

    #[test]
    fn statistics_are_read_by_name_and_a_repeated_one_is_refused() {
        let (stats, other) =
            split_stats("$ curl ...\nwasm.a: 1\nwasm.b: 2\nkey-new456: 200, key-def456: 403\n");
        assert_eq!(stats.get("wasm.a"), Some(&"1"));
        assert_eq!(stats.get("wasm.b"), Some(&"2"));
        assert_eq!(other, ["$ curl ...", "key-new456: 200, key-def456: 403"]);
        let twice = std::panic::catch_unwind(|| split_stats("wasm.a: 1\nwasm.a: 2\n"));
        assert!(twice.is_err(), "a statistic twice must fail");
    }

    #[test]
    fn releases_are_compared_as_numbers() {
        assert!(release_has("1.40.0", "wasm.wasm_vm_count"));
        assert!(release_has("1.39.0", "wasm.wasm_vm_count"));
        assert!(!release_has("1.38.2", "wasm.wasm_vm_count"));
        assert!(!release_has("1.36.4", "wasm.wasm_vm_count"));
        assert!(!release_has("1.36.2.post1", "wasm.wasm_vm_count"));
        assert!(release_has("1.36.4", "wasm.auth.vm_reload"));
    }
}
