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
    /// connection); `None` without callgrind, once the requests got 2xx.
    pub fn per_request(
        &mut self,
        port: u16,
        path: &str,
        requests: u64,
        extra: &[String],
    ) -> Option<f64> {
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
        let total: u64 = profile
            .lines()
            .find_map(|line| line.strip_prefix("summary: "))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `summary:` line in {}", dump.display()));
        Some(total as f64 / requests as f64)
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
