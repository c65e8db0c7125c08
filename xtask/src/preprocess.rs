//! The book's one mdBook preprocessor (book.toml, `[preprocessor.dedent]`):
//! after mdBook's `links` preprocessor has expanded the `{{#include}}`s,
//! every code block loses the indentation its lines share, so a listing
//! included from the middle of a YAML file or an `impl` reads as a file
//! would, from column 0.
//!
//! mdBook runs it as `... supports <renderer>` (it supports all), then with
//! `[context, book]` as JSON on standard input, and reads the book back on
//! standard output.

use crate::run::Result;
use serde_json::Value;

pub fn run(args: &[String]) -> Result {
    if args.first().map(String::as_str) == Some("supports") {
        return Ok(());
    }
    let input: Value =
        serde_json::from_reader(std::io::stdin()).map_err(|e| format!("mdBook's input: {e}"))?;
    let Value::Array(mut parts) = input else {
        return Err("mdBook's input is not [context, book]".into());
    };
    let mut book = parts.pop().ok_or("no book in mdBook's input")?;
    dedent_chapters(&mut book);
    serde_json::to_writer(std::io::stdout(), &book).map_err(|e| e.to_string())
}

/// Every chapter's `content`, wherever it sits in the book's sections.
fn dedent_chapters(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(content)) = map.get_mut("content") {
                *content = dedent_code_blocks(content);
            }
            map.values_mut().for_each(dedent_chapters);
        }
        Value::Array(items) => items.iter_mut().for_each(dedent_chapters),
        _ => {}
    }
}

/// The chapter with each fenced code block's common indentation removed.
/// Only three-backtick fences open code blocks: a four-backtick fence
/// (````` ````admonish `````) wraps markdown, whose own blocks are dedented.
pub fn dedent_code_blocks(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut block: Option<Vec<&str>> = None;
    for line in markdown.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let fence = trimmed.starts_with("```") && !trimmed.starts_with("````");
        match (&mut block, fence) {
            (None, true) => {
                out.push_str(line);
                block = Some(Vec::new());
            }
            (None, false) => out.push_str(line),
            (Some(lines), false) => lines.push(line),
            (Some(lines), true) => {
                let indent = lines
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.len() - l.trim_start_matches(' ').len())
                    .min()
                    .unwrap_or(0);
                for l in lines.iter() {
                    out.push_str(
                        l.get(indent..)
                            .filter(|_| !l.trim().is_empty())
                            .unwrap_or(l.trim_start_matches(' ')),
                    );
                }
                out.push_str(line);
                block = None;
            }
        }
    }
    if let Some(lines) = block {
        lines.iter().for_each(|l| out.push_str(l));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_blocks_start_at_column_0_and_keep_their_shape() {
        let text = "Text\n    indented text\n```yaml\n      a:\n        b: 1\n\n      c: 2\n```\n";
        assert_eq!(
            dedent_code_blocks(text),
            "Text\n    indented text\n```yaml\na:\n  b: 1\n\nc: 2\n```\n"
        );
        assert_eq!(dedent_code_blocks("```\nx\n```\n"), "```\nx\n```\n");
        let wrapped = "````admonish\n```rust\n    fn x() {}\n```\n````\n";
        assert_eq!(
            dedent_code_blocks(wrapped),
            "````admonish\n```rust\nfn x() {}\n```\n````\n"
        );
    }
}
