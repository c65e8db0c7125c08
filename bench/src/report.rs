//! Writing the results: JSON for machines, markdown tables and an SVG chart
//! for the book.

use serde_json::{json, Value};
use std::fmt::Write;
use std::path::Path;
use std::process::Command;

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let envoy = harness::paths::envoy_binary();
    let envoy_version = command_output(&envoy.to_string_lossy(), &["--version"]);
    json!({
        "date": command_output("date", &["-u", "+%Y-%m-%d"]),
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": command_output("uname", &["-r"]),
        "envoy": envoy_version.split_whitespace().last().unwrap_or(""),
        "rustc": command_output("rustc", &["--version"]),
    })
}

fn kib(bytes: &Value) -> String {
    format!("{:.1} KiB", bytes.as_f64().unwrap_or(0.0) / 1024.0)
}

/// A count rounded to a whole number, with thousands separated: 128,650.
fn thousands(value: &Value) -> String {
    let digits = format!("{:.0}", value.as_f64().unwrap_or(0.0).abs());
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value.as_f64().unwrap_or(0.0) < -0.5 {
        grouped.insert(0, '-');
    }
    grouped
}

fn us(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

pub fn write(out: &Path, results: &Value) {
    let write_file = |name: &str, text: String| {
        std::fs::write(out.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"))
    };
    write_file(
        "results.json",
        serde_json::to_string_pretty(results).unwrap_or_default() + "\n",
    );

    let m = &results["machine"];
    write_file(
        "machine.md",
        format!(
            "Measured on {}: {} ({} cores), Linux {}, Envoy {}, {}; {} rounds.\n",
            m["date"].as_str().unwrap_or(""),
            m["cpu"].as_str().unwrap_or(""),
            m["cores"],
            m["kernel"].as_str().unwrap_or(""),
            m["envoy"].as_str().unwrap_or(""),
            m["rustc"].as_str().unwrap_or(""),
            results["rounds"]
        ),
    );

    let mut sizes = String::from("| step | `.wasm` | gzip -9 |\n|---|---|---|\n");
    for row in results["sizes"].as_array().into_iter().flatten() {
        let _ = writeln!(
            sizes,
            "| {} | {} | {} |",
            row["step"].as_str().unwrap_or(""),
            kib(&row["bytes"]),
            kib(&row["gzip_bytes"])
        );
    }
    write_file("sizes.md", sizes);

    let mut profile = String::from("| step 1 built with | `.wasm` | gzip -9 |\n|---|---|---|\n");
    for row in results["profile_variants"].as_array().into_iter().flatten() {
        let variant = row["variant"].as_str().unwrap_or("");
        match row["error"].as_str() {
            Some(error) => {
                let _ = writeln!(
                    profile,
                    "| {variant} | does not build: `{}` | |",
                    error.replace('|', "\\|")
                );
            }
            None => {
                let _ = writeln!(
                    profile,
                    "| {variant} | {} | {} |",
                    kib(&row["bytes"]),
                    kib(&row["gzip_bytes"])
                );
            }
        }
    }
    write_file("profile.md", profile);

    let cpu = results["cpu"].as_array().cloned().unwrap_or_default();
    let mut table = String::from(
        "| configuration | workers | Envoy CPU per request, filter on | filter off | added by the filter (median) | spread over rounds |\n|---|---|---|---|---|---|\n",
    );
    for row in &cpu {
        let _ = writeln!(
            table,
            "| {} | {} | {:.1} µs | {:.1} µs | **{:.1} µs** | {:.1} to {:.1} µs |",
            row["name"].as_str().unwrap_or(""),
            row["concurrency"],
            us(&row["checked_us"]),
            us(&row["unchecked_us"]),
            us(&row["added_us"]),
            us(&row["added_min_us"]),
            us(&row["added_max_us"])
        );
    }
    write_file("cpu.md", table);

    write_file("keys.svg", keys_chart(&cpu));

    let mut counted = String::from(
        "| configuration (one worker) | instructions per request, filter on | filter off | added by the filter (median) | spread over rounds |\n|---|---|---|---|---|\n",
    );
    for row in results["instructions"].as_array().into_iter().flatten() {
        // Step 1's candidates have their own table (the appendix's), as
        // have the floor's parts.
        let elsewhere = (in_table(row, "Candidate") && !in_table(row, "Reference"))
            || in_table(row, "FloorParts");
        if !in_table(row, "Instructions") || elsewhere {
            continue;
        }
        if row["counted"] == false {
            // Quick mode runs it without valgrind: no figure to show.
            let _ = writeln!(
                counted,
                "| {} | not counted (quick mode) | | | |",
                row["name"].as_str().unwrap_or("")
            );
            continue;
        }
        let _ = writeln!(
            counted,
            "| {} | {} | {} | **{}** | {} to {} |",
            row["name"].as_str().unwrap_or(""),
            thousands(&row["checked"]),
            thousands(&row["unchecked"]),
            thousands(&row["added"]),
            thousands(&row["added_min"]),
            thousands(&row["added_max"])
        );
    }
    write_file("instructions.md", counted);
    let key_inputs: Vec<&str> = crate::proof::KEY_INPUTS.iter().map(|(h, _)| *h).collect();
    write_file(
        "refusals.md",
        refusal_table(&results["instructions"], "keys", &key_inputs, "key"),
    );
    write_file(
        "token-refusals.md",
        refusal_table(
            &results["instructions"],
            "tokens",
            &harness::tokens::HEADINGS,
            "token",
        ),
    );
    write_file(
        "step-1-candidates.md",
        candidate_table(&results["instructions"]),
    );

    write_file(
        "body-memory.md",
        memory_table(
            "1 MB bodies held at once",
            &results["body_memory"],
            "bodies",
        ),
    );
    write_file(
        "response-memory.md",
        memory_table(
            "500 KB JSON responses held at once",
            &results["response_memory"],
            "responses",
        ),
    );

    write_file("per-kib.md", per_kib_table(results));
    write_file("floor.md", floor_table(&results["instructions"]));
    let mut releases = String::from(
        "| Envoy release | step 1 as a dynamic module, built with the Go SDK of 2026-04-23 |\n|---|---|\n",
    );
    for pair in results["dynamic_module_releases"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            releases,
            "| {} | {} |",
            pair[0].as_str().unwrap_or(""),
            release_outcome(pair[1].as_str().unwrap_or(""))
        );
    }
    write_file("dynamic-module-releases.md", releases);

    let startup = &results["startup"];
    let mut table = format!(
        "| configuration | Envoy ready after (1 worker) | added | resident memory (1 worker) | added | each further VM (from {} to {} workers) |\n|---|---|---|---|---|---|\n",
        startup["few_workers"], startup["many_workers"]
    );
    for row in startup["rows"].as_array().into_iter().flatten() {
        let per_vm = match (row["per_vm_mib"].as_f64(), row["per_vm_mib"].as_str()) {
            (Some(mib), _) => format!("{mib:.1} MiB"),
            (None, Some(_)) => "(no VM: native code in Envoy's process)".into(),
            (None, None) => "(the baseline: no Wasm filter)".into(),
        };
        let _ = writeln!(
            table,
            "| {} | {:.0} ms | {:+.0} ms | {:.1} MiB | {:+.1} MiB | {per_vm} |",
            row["name"].as_str().unwrap_or(""),
            us(&row["ready_ms"]),
            us(&row["ready_added_ms"]),
            us(&row["resident_mib"]),
            us(&row["resident_added_mib"]),
        );
    }
    write_file("startup.md", table);
}

/// Added CPU per request against the number of keys, both axes logarithmic:
/// the naive variant's cost grows with the key set, step 1's does not.
fn keys_chart(cpu: &[Value]) -> String {
    use plotters::prelude::*;
    // One line per `chart` label, in the order the rows come.
    type Line = (String, RGBColor, Vec<(f64, f64)>);
    let mut lines: Vec<Line> = Vec::new();
    let colours = [RGBColor(0x2b, 0x6c, 0xb0), RGBColor(0xc5, 0x30, 0x30)];
    for row in cpu {
        let Some(label) = row["chart"].as_str() else {
            continue;
        };
        let point = (us(&row["keys"]), us(&row["added_us"]).max(0.1));
        match lines.iter_mut().find(|(l, _, _)| l == label) {
            Some((_, _, points)) => points.push(point),
            None => {
                let colour = colours[lines.len() % colours.len()];
                lines.push((label.to_owned(), colour, vec![point]));
            }
        }
    }
    let y_max = lines
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
        .fold(10.0_f64, f64::max)
        * 2.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 360)).into_drawing_area();
        let drawn: Result<(), Box<dyn std::error::Error>> = (|| {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .margin(16)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    (1.0_f64..300_000.0).log_scale(),
                    (0.1_f64..y_max).log_scale(),
                )?;
            chart
                .configure_mesh()
                .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
                .x_desc("valid keys in the configuration")
                .y_desc("CPU added per request (µs)")
                .x_label_formatter(&|keys| format!("{keys:.0}"))
                .y_label_formatter(&|us| format!("{us}"))
                .draw()?;
            for (label, colour, points) in &lines {
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        colour.stroke_width(2),
                    ))?
                    .label(label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                    });
                chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, colour.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .draw()?;
            root.present()?;
            Ok(())
        })();
        drawn.expect("draw the chart");
    }
    svg
}

/// A table of Envoy's memory as held bodies pile up (body_memory.rs): one
/// row per count, read from the field `count` of each of `rows`.
fn memory_table(first_column: &str, rows: &Value, count: &str) -> String {
    let mut table = format!(
        "| {first_column} | Envoy resident memory | added | Envoy heap (allocated) | added |\n|---|---|---|---|---|\n"
    );
    for row in rows.as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            table,
            "| {} | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB |",
            row[count],
            us(&row["resident_mib"]),
            us(&row["resident_added_mib"]),
            us(&row["heap_mib"]),
            us(&row["heap_added_mib"])
        );
    }
    table
}

/// Whether a row's instruction results put it in `table` (its
/// configuration's tables, by their names in rows.rs).
fn in_table(row: &Value, table: &str) -> bool {
    row["tables"]
        .as_array()
        .is_some_and(|tables| tables.iter().any(|t| t == table))
}

/// How a key check answered the bad requests (all but the first, the
/// plain valid key): each refused with one of the statuses its refusals
/// use, or not.
#[derive(PartialEq)]
enum Refusals {
    Every,
    /// These inputs got a 200 or another status that is not a refusal.
    NotEvery(Vec<u64>),
    /// A 5xx, or no answer: an error, not a refusal.
    Error(u64),
    /// The valid key was not let through.
    ValidNotLetThrough(u64),
    /// The row has no refusal statuses (it is not a key check).
    NotMeasured,
}

fn refused(row: &Value) -> (Refusals, Vec<bool>) {
    let (Some(statuses), Some(refusing)) =
        (row["refusals"].as_array(), row["refuses_with"].as_array())
    else {
        return (Refusals::NotMeasured, Vec::new());
    };
    let statuses: Vec<u64> = statuses.iter().map(|s| s.as_u64().unwrap_or(0)).collect();
    let is_refusal = |status: &u64| refusing.iter().any(|r| r.as_u64() == Some(*status));
    let each: Vec<bool> = statuses.iter().skip(1).map(is_refusal).collect();
    let verdict = if statuses.first() != Some(&200) {
        Refusals::ValidNotLetThrough(statuses.first().copied().unwrap_or(0))
    } else if let Some(error) = statuses.iter().find(|s| **s >= 500 || **s == 0) {
        Refusals::Error(*error)
    } else if each.iter().all(|r| *r) {
        Refusals::Every
    } else {
        let let_through = statuses
            .iter()
            .skip(1)
            .filter(|s| !is_refusal(s))
            .copied()
            .collect();
        Refusals::NotEvery(let_through)
    };
    (verdict, each)
}

/// What each check of `kind` (`keys` or `tokens`) answered for each of
/// its inputs (`headings`, the valid credential first): a 200 for anything
/// but the valid one is in bold, since that request got past the check;
/// the last column says whether every bad request got one of the statuses
/// the row's refusals use (a 5xx is an error, never a refusal).
fn refusal_table(rows: &Value, kind: &str, headings: &[&str], credential: &str) -> String {
    let mut table = String::from("| configuration |");
    for heading in headings {
        let _ = write!(table, " {heading} |");
    }
    let _ = write!(table, " refuses every bad {credential} |\n|---|");
    table.push_str(&"---|".repeat(headings.len() + 1));
    table.push('\n');
    for row in rows.as_array().into_iter().flatten() {
        let Some(statuses) = row["refusals"].as_array() else {
            continue;
        };
        if !in_table(row, "Refusals") || row["refusal_inputs"] != kind {
            continue;
        }
        let _ = write!(table, "| {} |", row["name"].as_str().unwrap_or(""));
        for (i, status) in statuses.iter().enumerate() {
            let status = status.as_u64().unwrap_or(0);
            if status == 200 && i > 0 {
                let _ = write!(table, " **{status}** |");
            } else {
                let _ = write!(table, " {status} |");
            }
        }
        let verdict = match refused(row).0 {
            Refusals::Every => "yes".to_owned(),
            Refusals::NotEvery(statuses) => format!(
                "**no** ({})",
                statuses
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Refusals::Error(status) => format!("**error** ({status})"),
            Refusals::ValidNotLetThrough(status) => {
                format!("**no**: the valid {credential} got {status}")
            }
            Refusals::NotMeasured => "not measured".to_owned(),
        };
        let _ = writeln!(table, " {verdict} |");
    }
    table
}

/// Part one's step and its candidate builds: what each adds over the
/// floor, against the step's own work, and whether it still refuses every
/// input the step refuses (with a status its refusals use).
fn candidate_table(rows: &Value) -> String {
    let rows: Vec<&Value> = rows.as_array().into_iter().flatten().collect();
    let find = |table: &str| rows.iter().find(|row| in_table(row, table));
    let added = |row: &Value| row["added"].as_f64().unwrap_or(f64::NAN);
    let (Some(floor), Some(reference)) = (find("Floor"), find("Reference")) else {
        return String::new();
    };
    if floor["counted"] == false {
        return String::from("Quick mode: the floor was not counted.\n");
    }
    let floor = added(floor);
    let own = added(reference) - floor;
    let (_, must_refuse) = refused(reference);
    let mut table = String::from(
        "| candidate | added over the floor | of step 1's own work | refuses all step 1 refuses |\n|---|---|---|---|\n",
    );
    for row in rows.iter().filter(|row| in_table(row, "Candidate")) {
        if row["counted"] == false {
            continue;
        }
        let over = added(row) - floor;
        let (verdict, refuses) = refused(row);
        let keeps = match verdict {
            Refusals::Error(status) => format!("**error** ({status})"),
            Refusals::ValidNotLetThrough(status) => {
                format!("**no**: the valid key got {status}")
            }
            Refusals::NotMeasured => "not measured".to_owned(),
            Refusals::Every | Refusals::NotEvery(_) => {
                let all = refuses.len() == must_refuse.len()
                    && refuses
                        .iter()
                        .zip(&must_refuse)
                        .all(|(r, must)| *r || !*must);
                if all { "yes" } else { "**no**" }.to_owned()
            }
        };
        let _ = writeln!(
            table,
            "| {} | {} | {:.0} % | {keeps} |",
            row["name"].as_str().unwrap_or(""),
            thousands(&json!(over)),
            100.0 * over / own,
        );
    }
    table
}

/// Instructions added per request at each body size for the body-reading
/// steps, where they ran, and the same work natively; then each step's
/// cost per added KiB, from its smallest to its largest body.
fn per_kib_table(results: &Value) -> String {
    let rows: Vec<&Value> = results["instructions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| in_table(row, "PerKib"))
        .collect();
    // The same work natively, built at `opt` ("z", the steps' level, or 3).
    let native = |work: &Value, bytes: &Value, opt: &str| {
        results["body_cost_native"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["work"] == *work && n["body_bytes"] == *bytes && n["opt_level"] == opt)
            .and_then(|n| n["instructions"].as_f64())
    };
    let object = |row: &Value, name: &str| row["added_by_object"][name].as_f64().unwrap_or(0.0);
    let count = |value: f64| thousands(&json!(value));
    let optional = |value: Option<f64>| value.map(count).unwrap_or_default();
    let mut table = String::from(
        "| step, body | added per request, in Wasm | in the module's compiled code | in Envoy and V8 | in libc (copies) | the same functions natively, the steps' opt-level (`z`) | Wasm ÷ native | natively at opt-level 3 |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut slopes = String::new();
    let mut steps: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["name"].as_str()?.split(',').next())
        .collect();
    steps.dedup();
    for step in steps {
        let of_step: Vec<&Value> = rows
            .iter()
            .copied()
            .filter(|r| {
                r["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&format!("{step},")))
            })
            .collect();
        for row in &of_step {
            if row["counted"] == false {
                let _ = writeln!(
                    table,
                    "| {} | not counted (quick mode) | | | | | | |",
                    row["name"].as_str().unwrap_or("")
                );
                continue;
            }
            let (work, bytes) = (&row["native_work"], &row["body_bytes"]);
            let same = native(work, bytes, "z");
            let _ = writeln!(
                table,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                row["name"].as_str().unwrap_or(""),
                thousands(&row["added"]),
                count(object(row, "JIT code")),
                count(object(row, "Envoy")),
                count(object(row, "libc")),
                optional(same),
                same.map(|n| format!("{:.1}", us(&row["added"]) / n))
                    .unwrap_or_default(),
                optional(native(work, bytes, "3")),
            );
        }
        // Per KiB: from the smallest body to the largest.
        let (Some(first), Some(last)) = (of_step.first(), of_step.last()) else {
            continue;
        };
        if first["counted"] == false || first["name"] == last["name"] {
            continue;
        }
        let kib = (us(&last["body_bytes"]) - us(&first["body_bytes"])) / 1024.0;
        let per_kib = |a: f64, b: f64| (b - a) / kib;
        let work = &first["native_work"];
        let native_slope = |opt: &str| match (
            native(work, &first["body_bytes"], opt),
            native(work, &last["body_bytes"], opt),
        ) {
            (Some(a), Some(b)) => Some(per_kib(a, b)),
            _ => None,
        };
        let wasm_slope = per_kib(us(&first["added"]), us(&last["added"]));
        let _ = writeln!(
            slopes,
            "| **{step}, per added KiB** | **{}** | {} | {} | {} | {} | **{}** | {} |",
            count(wasm_slope),
            count(per_kib(object(first, "JIT code"), object(last, "JIT code"))),
            count(per_kib(object(first, "Envoy"), object(last, "Envoy"))),
            count(per_kib(object(first, "libc"), object(last, "libc"))),
            optional(native_slope("z")),
            native_slope("z")
                .map(|n| format!("{:.1}", wasm_slope / n))
                .unwrap_or_default(),
            optional(native_slope("3")),
        );
    }
    table + &slopes
}

/// The floor taken apart: the do-nothing plugin with the SDK, without it,
/// and without any HTTP callback, with where the instructions ran.
fn floor_table(rows: &Value) -> String {
    let mut table = String::from(
        "| module (doing nothing) | instructions added per request | in the module's compiled code | in Envoy and V8 | in libc |\n|---|---|---|---|---|\n",
    );
    for row in rows.as_array().into_iter().flatten() {
        if !(in_table(row, "Floor") || in_table(row, "FloorParts")) {
            continue;
        }
        if row["counted"] == false {
            let _ = writeln!(
                table,
                "| {} | not counted (quick mode) | | | |",
                row["name"].as_str().unwrap_or("")
            );
            continue;
        }
        let object = |name: &str| json!(row["added_by_object"][name].as_f64().unwrap_or(0.0));
        let _ = writeln!(
            table,
            "| {} | **{}** | {} | {} | {} |",
            row["name"].as_str().unwrap_or(""),
            thousands(&row["added"]),
            thousands(&object("JIT code")),
            thousands(&object("Envoy")),
            thousands(&object("libc")),
        );
    }
    table
}

/// What a release did with the dynamic module, for the table: Envoy's
/// reason up to its details (the expected ABI hash, the paths searched,
/// the Go panic's full text, all in results.json).
fn release_outcome(outcome: &str) -> String {
    let short = outcome
        .split(": got ")
        .next()
        .and_then(|s| s.split(": /").next())
        .and_then(|s| s.split(": the Go SDK panics").next())
        .unwrap_or(outcome);
    let panicked = if outcome.contains("the Go SDK panics") {
        ": the Go SDK panics (an unpinned Go pointer given to Envoy)"
    } else {
        ""
    };
    format!("{short}{panicked}").replace('|', "\\|")
}
