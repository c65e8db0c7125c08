//! Running commands and saying what is happening: a first run installs tools
//! for minutes, and that must never look like a hang.

pub use project::repo_root as root;
use std::path::Path;
use std::process::Command;

/// Every command's result: the error is what to tell the user.
pub type Result<T = ()> = std::result::Result<T, String>;

/// One line per step, with the minutes and seconds since this command
/// started, so a CI log shows where its time goes.
pub fn step(what: &str) {
    let elapsed = started().elapsed().as_secs();
    eprintln!("==> [{}:{:02}] {what}", elapsed / 60, elapsed % 60);
}

/// When this command started: the first call's time (main calls it first).
pub fn started() -> std::time::Instant {
    static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(std::time::Instant::now)
}

pub fn status(mut command: Command) -> Result {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}

pub fn output(mut command: Command) -> Result<String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `cargo <args>` in `dir` (default: the repository root).
pub fn cargo_command(args: &[&str], dir: Option<&Path>) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args(args)
        .current_dir(dir.map_or_else(root, Path::to_path_buf));
    command
}

/// `cargo run` of one of the workspace's programs (`bench`, `compat`); its
/// own arguments follow.
pub fn workspace_program(package: &str) -> Command {
    cargo_command(
        &["run", "--quiet", "--locked", "--package", package, "--"],
        None,
    )
}

pub fn cargo(args: &[&str], dir: Option<&Path>) -> Result {
    status(cargo_command(args, dir))
}

/// Runs a `cargo test` command, passing its output through (each line
/// after `prefix`), and adds up the `test result: ... N passed; M failed`
/// lines of all its test binaries.
pub fn cargo_test_totals(mut command: Command, prefix: &str) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let (mut passed, mut failed) = (0, 0);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout)
            .lines()
            .map_while(std::io::Result::ok)
        {
            match test_result(&line) {
                // When each test binary ends, for where a run's time goes.
                Some((p, f)) => {
                    let elapsed = started().elapsed().as_secs();
                    println!("{prefix}[{}:{:02}] {line}", elapsed / 60, elapsed % 60);
                    passed += p;
                    failed += f;
                }
                None => println!("{prefix}{line}"),
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() && failed == 0 {
        return Err(format!("{command:?} failed ({status})"));
    }
    Ok((passed, failed))
}

/// Runs lanes of `cargo test` commands side by side, the commands of one
/// lane one after another, and adds up their totals. A lane is its name
/// (the prefix of its output lines) and its commands.
pub fn cargo_test_lanes(lanes: Vec<(String, Vec<Command>)>) -> Result<(u64, u64)> {
    std::thread::scope(|scope| {
        let running: Vec<_> = lanes
            .into_iter()
            .map(|(name, commands)| {
                scope.spawn(move || {
                    let prefix = format!("[{name}] ");
                    let (mut passed, mut failed) = (0, 0);
                    for command in commands {
                        let (p, f) = cargo_test_totals(command, &prefix)?;
                        passed += p;
                        failed += f;
                    }
                    Ok::<_, String>((passed, failed))
                })
            })
            .collect();
        let (mut passed, mut failed, mut errors) = (0, 0, Vec::new());
        for lane in running {
            match lane.join() {
                Ok(Ok((p, f))) => {
                    passed += p;
                    failed += f;
                }
                Ok(Err(why)) => errors.push(why),
                Err(_) => errors.push("a test lane's thread panicked".to_owned()),
            }
        }
        if errors.is_empty() {
            Ok((passed, failed))
        } else {
            Err(errors.join("\n"))
        }
    })
}

/// (passed, failed) from a `test result: ok. 4 passed; 0 failed; ...` line.
fn test_result(line: &str) -> Option<(u64, u64)> {
    let result = line.strip_prefix("test result: ")?;
    Some((
        count_before(result, " passed"),
        count_before(result, " failed"),
    ))
}

/// In `ok. 4 passed; 0 failed; ...`, the number before `label`.
fn count_before(text: &str, label: &str) -> u64 {
    text.split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(label)
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The working tree's state as `git status --porcelain
/// --untracked-files=all` prints it: every changed, added, deleted or new
/// file that is not ignored. `None` outside a git checkout, where no such
/// check can be made.
pub fn tree_state() -> Result<Option<String>> {
    if !root().join(".git").exists() {
        return Ok(None);
    }
    let mut command = Command::new("git");
    command
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(root());
    output(command).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_result_lines_are_added_up() {
        assert_eq!(
            test_result("test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s"),
            Some((4, 0))
        );
        assert_eq!(
            test_result(
                "test result: FAILED. 6 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"
            ),
            Some((6, 1))
        );
        assert_eq!(test_result("running 7 tests"), None);
        assert_eq!(test_result("test something ... ok"), None);
    }
}
