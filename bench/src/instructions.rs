//! Instructions per request, counted by valgrind's callgrind: Envoy runs
//! under `valgrind --tool=callgrind`, the counters are zeroed before a
//! batch of requests and dumped after it. Unlike CPU time, the count does
//! not depend on what else the machine is doing, so differences of a few
//! hundred instructions (a fraction of a microsecond) are readable. It
//! counts every thread of Envoy, so one worker: the same requests on two
//! workers would count the same work.
//!
//! Envoy takes about 50 s to start under valgrind here, and one Envoy cannot
//! hold many Wasm configurations under valgrind (V8 runs out of address
//! space: "Failed to create new Wasm instance"), so a full run starts one
//! per configuration. Quick mode, which only shows that nothing rotted,
//! counts one configuration under valgrind and sends the same requests to
//! every other in one plain Envoy, each on a listener of its own.

use crate::configs::{self, Filter};
use harness::process::Server;
use harness::stack::test_dir;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub struct Counted {
    server: Server,
    dir: PathBuf,
    /// Whether Envoy runs under callgrind (and `per_request` counts).
    counting: bool,
    /// Each configuration's listener, in the order given.
    pub ports: Vec<u16>,
    pub admin_port: u16,
    dumps: usize,
}

impl Counted {
    /// Starts Envoy with every one of `filters` (each on its own listener),
    /// one worker, warnings only, under callgrind when `counting`;
    /// `wait_until_ready` before sending it anything.
    pub fn launch(
        name: &str,
        filters: &[&Filter],
        rate_limit_port: u16,
        counting: bool,
    ) -> Counted {
        let dir = test_dir(&format!("bench-instructions-{name}"));
        let (config, ports, admin) = configs::several_on_free_ports(filters, rate_limit_port);
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config.text()).expect("write Envoy config");
        let envoy = project::envoy::executable(&harness::paths::envoy_binary());
        let mut command = if counting {
            let mut command = Command::new("valgrind");
            command
                .args(["--tool=callgrind", "--smc-check=all-non-file"])
                // V8 writes machine code at run time: --smc-check sees it.
                .arg(format!(
                    "--callgrind-out-file={}",
                    dir.join("cg.out").display()
                ))
                .arg(envoy);
            command
        } else {
            Command::new(envoy)
        };
        project::envoy::with_step_environment(&mut command);
        command
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", "1", "--disable-hot-restart"])
            .args(["--log-level", "warn"]);
        let server = Server::start(
            "envoy (instruction counts)",
            command,
            &dir.join("envoy.log"),
        );
        Counted {
            server,
            dir,
            counting,
            ports,
            admin_port: admin,
            dumps: 0,
        }
    }

    pub fn wait_until_ready(&mut self) {
        let admin = self.admin_port;
        // Everything runs about fifty times slower under valgrind, and each
        // module is compiled at start-up.
        self.server
            .wait_until_ready(Duration::from_secs(600), || project::envoy::is_ready(admin));
    }

    /// Instructions Envoy executed per request for `requests` requests to
    /// `path` on the listener `port` (h2load over HTTP/1.1, one
    /// connection), in all and by where they ran (`by_object`); `None`
    /// without callgrind, once the requests got 2xx.
    pub fn per_request(
        &mut self,
        port: u16,
        path: &str,
        requests: u64,
        extra: &[String],
    ) -> Option<(f64, BTreeMap<&'static str, f64>)> {
        if self.counting {
            self.control("-z");
        }
        let url = format!("http://127.0.0.1:{port}{path}");
        let output = Command::new("h2load")
            .args(["--h1", "-c", "1", "-n", &requests.to_string()])
            .args(["-H", &format!("x-api-key: {}", configs::REQUEST_KEY)])
            .args(extra)
            .arg(&url)
            .output()
            .expect("run h2load (apt-get install nghttp2-client)");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains(&format!("status codes: {requests} 2xx")),
            "h2load against {url}: not every request got 2xx:\n{text}"
        );
        if !self.counting {
            return None;
        }
        self.control("-d");
        self.dumps += 1;
        let dump = self.dir.join(format!("cg.out.{}", self.dumps));
        let profile = std::fs::read_to_string(&dump)
            .unwrap_or_else(|e| panic!("read {}: {e}", dump.display()));
        let total = header(&profile, "summary")
            .unwrap_or_else(|| panic!("no `summary:` line in {}", dump.display()));
        let by_object = by_object(&profile);
        // The parts must add up to the file's `totals:` (its cost lines'
        // sum): a parser that dropped or double-counted lines would
        // misplace instructions silently.
        let parts: u64 = by_object.values().sum();
        assert_eq!(
            Some(parts),
            header(&profile, "totals"),
            "{}: the functions' own costs do not add up to `totals:`",
            dump.display()
        );
        let by_object = by_object
            .into_iter()
            .map(|(object, count)| (object, count as f64 / requests as f64))
            .collect();
        Some((total as f64 / requests as f64, by_object))
    }

    /// `callgrind_control <option> <pid>`: `-z` zeroes the counters, `-d`
    /// writes them to the next `cg.out.<n>` (and returns once it is written).
    fn control(&self, option: &str) {
        let status = Command::new("callgrind_control")
            .arg(option)
            .arg(self.server.pid().to_string())
            .output()
            .expect("run callgrind_control (apt-get install valgrind)");
        assert!(
            status.status.success(),
            "callgrind_control {option} failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
}

/// A count a callgrind profile states on a line of its own: `summary`
/// (what was collected) or `totals` (the sum of its cost lines).
pub fn header(profile: &str, name: &str) -> Option<u64> {
    profile
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
        .and_then(|count| count.trim().parse().ok())
}

/// Where a profile's instructions ran, by the function that executed them
/// (its self cost): `"JIT code"` (memory with no file, mapped high: the
/// Wasm module as V8 compiled it, and V8's generated wrappers; or a
/// dynamic module's library, Go runtime included), `"Envoy"`
/// (its binary, V8's runtime and built-ins included; it is stripped, so
/// no function names, and part of its code shows as a fileless low
/// address), `"libc"` (memcpy and friends: copies) and `"other"` (the
/// dynamic loader, libm).
pub fn by_object(profile: &str) -> BTreeMap<&'static str, u64> {
    let (mut objects, mut functions) = (BTreeMap::new(), BTreeMap::new());
    let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
    // The object of the lines that follow, the group of the function whose
    // costs follow, and whether the next cost line is a call's (inclusive,
    // so not the function's own).
    let (mut object, mut current, mut call_cost) = (String::new(), "other", false);
    for line in profile.lines() {
        if let Some(spec) = line.strip_prefix("ob=") {
            object = resolve(&mut objects, spec);
        } else if let Some(spec) = line.strip_prefix("cob=") {
            resolve(&mut objects, spec);
        } else if let Some(spec) = line.strip_prefix("cfn=") {
            resolve(&mut functions, spec);
        } else if let Some(spec) = line.strip_prefix("fn=") {
            current = group(&object, &resolve(&mut functions, spec));
        } else if line.starts_with("calls=") {
            call_cost = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || "+-*".contains(c)) {
            if std::mem::take(&mut call_cost) {
                continue;
            }
            let cost: u64 = line
                .split_whitespace()
                .last()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            *totals.entry(current).or_default() += cost;
        }
    }
    totals
}

/// `(3) name` defines name 3, `(3)` refers to it (callgrind's compressed
/// names).
fn resolve(names: &mut BTreeMap<String, String>, spec: &str) -> String {
    match spec.strip_prefix('(').and_then(|rest| rest.split_once(')')) {
        Some((id, name)) if !name.trim().is_empty() => {
            names.insert(id.to_owned(), name.trim().to_owned());
            name.trim().to_owned()
        }
        Some((id, _)) => names.get(id).cloned().unwrap_or_default(),
        None => spec.trim().to_owned(),
    }
}

fn group(object: &str, function: &str) -> &'static str {
    let file = object.rsplit('/').next().unwrap_or(object);
    if object.is_empty() || object == "???" {
        let address = function
            .strip_prefix("0x")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok());
        match address {
            Some(address) if address > u64::from(u32::MAX) => "JIT code",
            _ => "Envoy",
        }
    } else if file == crate::dynamic_module::LIBRARY {
        // A dynamic module's code: its own, and its Go runtime's.
        "JIT code"
    } else if file == "envoy" {
        "Envoy"
    } else if file.starts_with("libc.so") || file.starts_with("libc-") {
        "libc"
    } else {
        "other"
    }
}
