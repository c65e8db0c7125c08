//! What a plugin costs before its first request: how long Envoy takes to
//! get ready with it, and how much memory each VM adds. Envoy compiles the
//! module once and gives every worker a VM cloned from it, so the module's
//! size and its `on_configure` work are paid here, not per request.
//!
//! Each configuration is started with one worker and with four. What one
//! more VM costs is the resident memory the three extra workers add, less
//! what three extra workers add without any Wasm filter, divided by the
//! VMs they add (Envoy's own count of live VMs, `wasm.envoy.wasm.runtime.v8.active`).

use crate::configs::{self, Filter};
use harness::envoy::{Envoy, EnvoyConfig};
use harness::stack::test_dir;
use serde_json::{json, Value};

const FEW_WORKERS: u32 = 1;
const MANY_WORKERS: u32 = 4;

/// One start of one configuration, read as soon as Envoy is ready.
struct Start {
    /// Envoy's own `server.initialization_time_ms`: from the start of its
    /// main() to the moment it is ready to serve.
    ready_ms: f64,
    resident_mib: f64,
    vms: f64,
}

/// A histogram's cumulative median from the admin `/stats`, once Envoy
/// has merged it (it prints `P0(interval,cumulative) ... P50(...) ...`).
fn histogram_median(envoy: &Envoy, name: &str) -> Option<f64> {
    let text = envoy.admin(&format!("/stats?filter=^{name}$&usedonly"));
    let rest = text.split("P50(").nth(1)?;
    rest.split([',', ')']).nth(1)?.trim().parse().ok()
}

fn start_once(name: &str, filter: &Filter, workers: u32, rate_limit_port: u16) -> Start {
    let dir = test_dir(&format!("bench-startup-{name}-{workers}"));
    let (config, port, admin) = configs::on_free_ports(filter, rate_limit_port);
    // Envoy shows a histogram's values only after it has merged them, at
    // its stats flush (every 5 s by default).
    let config = EnvoyConfig::from_text(format!("stats_flush_interval: 0.2s\n{}", config.text()));
    let envoy = Envoy::start_quiet(&config, port, admin, workers, &dir)
        .unwrap_or_else(|log| panic!("{name}: {log}"));
    let pid = envoy.server.pid();
    let ready_ms = project::wait::poll(std::time::Duration::from_secs(10), || {
        histogram_median(&envoy, "server.initialization_time_ms")
    })
    .unwrap_or_else(|| {
        panic!(
            "{name}: Envoy reported no server.initialization_time_ms: {}",
            envoy.admin("/stats?filter=initialization")
        )
    });
    // Live VMs. A configuration without a Wasm filter has none, and Envoy
    // then has no such statistic; one with a filter must report them.
    let vms = match (
        envoy.stat("wasm.envoy.wasm.runtime.v8.active"),
        filter.is_wasm(),
    ) {
        (Some(vms), _) => vms as f64,
        (None, false) => 0.0,
        (None, true) => panic!(
            "{name}: Envoy reports no live VMs: {}",
            envoy.admin("/stats?filter=wasm")
        ),
    };
    Start {
        ready_ms,
        resident_mib: crate::body_memory::resident_bytes(pid) as f64 / 1_048_576.0,
        vms,
    }
    // Envoy is stopped by PID here.
}

fn median(values: Vec<f64>) -> f64 {
    crate::measure::summary(&values).0
}

/// Starts every configuration `starts` times at each worker count,
/// interleaved, and reports medians. The first configuration is the
/// baseline without a Wasm filter.
pub fn measure(configurations: &[(&str, &Filter)], rate_limit_port: u16, starts: usize) -> Value {
    // [configuration][worker count] -> starts
    let mut seen: Vec<[Vec<Start>; 2]> = configurations.iter().map(|_| [vec![], vec![]]).collect();
    for _ in 0..starts {
        for ((name, filter), seen) in configurations.iter().zip(seen.iter_mut()) {
            let file_name = name.replace([' ', ',', '(', ')', '\''], "-");
            for (slot, workers) in [FEW_WORKERS, MANY_WORKERS].into_iter().enumerate() {
                seen[slot].push(start_once(&file_name, filter, workers, rate_limit_port));
            }
        }
    }
    let summaries: Vec<(f64, f64, f64, f64)> = seen
        .iter()
        .map(|[few, many]| {
            let ready = median(few.iter().map(|s| s.ready_ms).collect());
            let resident = median(few.iter().map(|s| s.resident_mib).collect());
            let grown = median(many.iter().map(|s| s.resident_mib).collect()) - resident;
            let added_vms = median(many.iter().map(|s| s.vms).collect())
                - median(few.iter().map(|s| s.vms).collect());
            (ready, resident, grown, added_vms)
        })
        .collect();
    let (base_ready, base_resident, base_grown, _) = summaries[0];
    let rows: Vec<Value> = configurations
        .iter()
        .zip(&summaries)
        .enumerate()
        .map(
            |(index, ((name, filter), &(ready, resident, grown, added_vms)))| {
                let per_vm = if index == 0 {
                    Value::Null
                } else if !filter.is_wasm() {
                    // Native code in Envoy's process (a dynamic module):
                    // there is no VM to count.
                    json!("none")
                } else {
                    assert!(
                        added_vms > 0.0,
                        "{name}: {MANY_WORKERS} workers added no VM to {FEW_WORKERS}"
                    );
                    json!((grown - base_grown) / added_vms)
                };
                json!({
                    "name": name,
                    "ready_ms": ready,
                    "ready_added_ms": ready - base_ready,
                    "resident_mib": resident,
                    "resident_added_mib": resident - base_resident,
                    "vms_added": added_vms,
                    "per_vm_mib": per_vm,
                })
            },
        )
        .collect();
    json!({ "starts": starts, "few_workers": FEW_WORKERS, "many_workers": MANY_WORKERS, "rows": rows })
}
