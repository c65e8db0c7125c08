//! The do-nothing module without an SDK (support/raw-abi-nothing), built
//! with and without its HTTP callbacks, each copy kept under its own name
//! in target/bench-modules/.

use std::path::PathBuf;
use std::process::Command;

pub fn build(http_callbacks: bool) -> PathBuf {
    let root = project::repo_root();
    let mut command = Command::new(env!("CARGO"));
    command
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "raw-abi-nothing",
        ])
        .args(["--target", project::step::WASM_TARGET])
        .current_dir(&root);
    if http_callbacks {
        command.args(["--features", "http-callbacks"]);
    }
    let status = command.status().expect("run cargo");
    assert!(status.success(), "building support/raw-abi-nothing failed");
    let built = root
        .join("target")
        .join(project::step::WASM_TARGET)
        .join("release/raw_abi_nothing.wasm");
    let dir = root.join("target/bench-modules");
    std::fs::create_dir_all(&dir).expect("create target/bench-modules");
    let name = if http_callbacks {
        "raw-abi-nothing.wasm"
    } else {
        "raw-abi-no-http-callbacks.wasm"
    };
    std::fs::copy(&built, dir.join(name)).expect("copy the raw module");
    dir.join(name)
}
