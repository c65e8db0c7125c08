//! Child processes that are always stopped: `Server` kills its own PID when
//! dropped, so a failing assertion cannot leave a server running.

use project::wait::Ready;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `command` with stdout and stderr sent to `log`.
    pub fn start(name: &str, mut command: Command, log: &Path) -> Server {
        let out = File::create(log).expect("create log file");
        let err = out.try_clone().expect("clone log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Server {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(exit status)` once the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until `ready` holds (`project::wait`); `Err` with what happened
    /// and the server's log when it exits first or `timeout` passes.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        match project::wait::for_process(
            timeout,
            || {
                self.child
                    .try_wait()
                    .ok()
                    .flatten()
                    .map(|status| status.to_string())
            },
            ready,
        ) {
            Ready::Yes => Ok(()),
            Ready::Exited(status) => Err(format!(
                "{} exited ({status}) before it was ready:\n{}",
                self.name,
                self.log()
            )),
            Ready::TimedOut => Err(format!(
                "{} was not ready within {timeout:?}:\n{}",
                self.name,
                self.log()
            )),
        }
    }

    /// `wait_for`, panicking with the log when the server does not get ready.
    pub fn wait_until_ready(&mut self, timeout: Duration, ready: impl FnMut() -> bool) {
        if let Err(why) = self.wait_for(timeout, ready) {
            panic!("{why}");
        }
    }

    /// Kills this process (by its PID) and waits for it to be gone.
    pub fn stop(&mut self) {
        if self.exited().is_none() {
            if let Err(error) = self.child.kill() {
                eprintln!("could not stop {} (pid {}): {error}", self.name, self.pid());
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
