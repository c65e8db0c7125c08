//! Instructions per request, counted by valgrind's callgrind: Envoy runs
//! under `valgrind --tool=callgrind`, the counters are zeroed before a
//! batch of requests and dumped after it. Unlike CPU time, the count does
//! not depend on what else the machine is doing, so differences of a few
//! hundred instructions (a fraction of a microsecond) are readable. It
//! counts every thread of Envoy, so one worker: the same requests on two
//! workers would count the same work.

use crate::configs::{self, Filter};
use harness::process::Server;
use harness::stack::test_dir;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub struct Counted {
    server: Server,
    dir: PathBuf,
    pub port: u16,
    pub admin_port: u16,
    dumps: usize,
}

impl Counted {
    /// Envoy with `filter`, one worker, warnings only, under callgrind.
    pub fn start(name: &str, filter: &Filter, rate_limit_port: u16) -> Counted {
        let dir = test_dir(&format!("bench-instructions-{name}"));
        let (config, port, admin) = configs::on_free_ports(filter, rate_limit_port);
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config.text()).expect("write Envoy config");
        let mut command = Command::new("valgrind");
        command
            .args(["--tool=callgrind", "--smc-check=all-non-file"])
            // V8 writes machine code at run time: --smc-check sees it.
            .arg(format!(
                "--callgrind-out-file={}",
                dir.join("cg.out").display()
            ))
            .arg(project::envoy::executable(&harness::paths::envoy_binary()))
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", "1", "--disable-hot-restart"])
            .args(["--log-level", "warn"]);
        let mut server = Server::start("envoy under callgrind", command, &dir.join("envoy.log"));
        // Everything runs about fifty times slower under valgrind.
        server.wait_until_ready(Duration::from_secs(300), || project::envoy::is_ready(admin));
        Counted {
            server,
            dir,
            port,
            admin_port: admin,
            dumps: 0,
        }
    }

    /// Instructions Envoy executed per request for `requests` requests to
    /// `path` (h2load over HTTP/1.1, one connection).
    pub fn per_request(&mut self, path: &str, requests: u64, extra: &[String]) -> f64 {
        self.control("-z");
        let url = format!("http://127.0.0.1:{}{path}", self.port);
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
            "h2load against {url} under callgrind: not every request got 2xx:\n{text}"
        );
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
        total as f64 / requests as f64
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
