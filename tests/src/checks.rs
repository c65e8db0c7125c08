//! A check script's output, read line by line.

/// One line of a check script's output.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// For a failure: what it expected and what it got.
    pub detail: String,
}

/// `PASS  name  expected ...` / `FAIL  name  expected X, got Y` lines.
pub fn parse_checks(output: &str) -> Vec<Check> {
    output
        .lines()
        .filter_map(|line| {
            let (verdict, rest) = line.split_once("  ")?;
            let passed = match verdict {
                "PASS" => true,
                "FAIL" => false,
                _ => return None,
            };
            let rest = rest.trim_start();
            let (name, detail) = rest.split_once("  ").unwrap_or((rest, ""));
            Some(Check {
                name: name.trim().to_owned(),
                passed,
                detail: detail.trim().to_owned(),
            })
        })
        .collect()
}
