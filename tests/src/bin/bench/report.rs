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

fn find<'a>(cpu: &'a [Value], name: &str) -> Option<&'a Value> {
    cpu.iter().find(|row| row["name"] == name)
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

    write_file("goals.md", goals(results, &cpu));
    write_file("keys.svg", keys_chart(&cpu));
}

fn goals(results: &Value, cpu: &[Value]) -> String {
    let added = |name: &str| find(cpu, name).map_or(f64::NAN, |row| us(&row["added_us"]));
    let step_1 = added("step 1, 3 keys");
    let step_1_100k = added("step 1, 100000 keys");
    let lua = added("Lua filter, 3 keys");
    let size = results["sizes"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["step"] == "step-1-auth"))
        .map_or(f64::NAN, |r| us(&r["bytes"]));
    let growth = (step_1_100k - step_1) / step_1 * 100.0;
    let verdict = |met: bool| if met { "met" } else { "**missed**" };
    let mut text = String::from("| goal | measured | |\n|---|---|---|\n");
    let _ = writeln!(
        text,
        "| step 1 adds ≤ 5 µs CPU per request | {step_1:.1} µs | {} |",
        verdict(step_1 <= 5.0)
    );
    let _ = writeln!(
        text,
        "| flat within 10 % from 3 to 100,000 keys | {step_1:.1} → {step_1_100k:.1} µs ({growth:+.0} %) | {} |",
        verdict(growth.abs() <= 10.0)
    );
    let _ = writeln!(
        text,
        "| not slower than the Lua filter | {step_1:.1} µs vs {lua:.1} µs | {} |",
        verdict(step_1 <= lua)
    );
    let _ = writeln!(
        text,
        "| step-1 `.wasm` ≤ 100 KB | {:.1} KB ({:.0} bytes) | {} |",
        size / 1000.0,
        size,
        verdict(size <= 100_000.0)
    );
    text
}

/// Added CPU per request against the number of keys, both axes logarithmic:
/// the naive variant's cost grows with the key set, step 1's does not.
fn keys_chart(cpu: &[Value]) -> String {
    let series = |prefix: &str| -> Vec<(f64, f64)> {
        cpu.iter()
            .filter(|row| {
                row["group"] == "keys"
                    && row["name"].as_str().is_some_and(|n| n.starts_with(prefix))
            })
            .map(|row| (us(&row["keys"]), us(&row["added_us"]).max(0.1)))
            .collect()
    };
    let lines = [
        ("step 1 (shared key set)", "#2b6cb0", series("step 1,")),
        ("naive copy per request", "#c53030", series("naive copy,")),
    ];
    let (width, height, left, right, top, bottom) = (640.0, 360.0, 70.0, 20.0, 20.0, 50.0);
    let x_of = |keys: f64| left + (keys.log10() - 0.0) / 5.5 * (width - left - right);
    let y_max = lines
        .iter()
        .flat_map(|(_, _, s)| s.iter().map(|p| p.1))
        .fold(1.0_f64, f64::max)
        .log10()
        .ceil()
        .max(1.0);
    let y_min = -1.0_f64;
    let y_of = |v: f64| top + (y_max - v.log10()) / (y_max - y_min) * (height - top - bottom);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">
<title>CPU added per request against the number of valid keys</title>
<rect width="{width}" height="{height}" fill="white"/>
"#
    );
    for exp in (y_min as i32)..=(y_max as i32) {
        let y = y_of(10f64.powi(exp));
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{} µs</text>"##,
            width - right,
            left - 6.0,
            y + 4.0,
            10f64.powi(exp)
        );
    }
    for keys in [3.0, 1_000.0, 100_000.0] {
        let x = x_of(keys);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{keys} keys</text>"##,
            height - bottom,
            height - bottom + 18.0
        );
    }
    for (index, (label, colour, points)) in lines.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|(k, v)| format!("{:.1},{:.1}", x_of(*k), y_of(*v)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (k, v) in points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{colour}"/>"#,
                x_of(*k),
                y_of(*v)
            );
        }
        let y = top + 16.0 * index as f64 + 10.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="3" fill="{colour}"/><text x="{}" y="{}">{label}</text>"#,
            left + 20.0,
            y - 4.0,
            left + 38.0,
            y
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">valid keys in the configuration (log scale); CPU added per request (log scale)</text>"#,
        width / 2.0,
        height - 12.0
    );
    svg.push_str("</svg>\n");
    svg
}
