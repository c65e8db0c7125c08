//! The project's commands: `cargo xtask <command>` (`cargo xtask --help`).
//! This file only routes; each command lives in its own module.

mod bench;
mod book;
mod capture;
mod compat;
mod loom;
mod preprocess;
mod run;
mod steps;
mod test;
mod tools;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, test and serve the book. Each command installs what it needs into .tools/ first."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the book on http://127.0.0.1:4000 (installs mdBook and mdbook-admonish)
    Serve,
    /// Build a step and run it in Envoy on the book's ports, in the foreground
    Up {
        /// A folder under code/: step-1-auth, step-2-rate-limit, step-3-http-call, go-auth, ...
        step: String,
    },
    /// One step as the CI checks it: built, linted, unit-tested, its
    /// benchmark row in quick mode, and its rows of the compatibility page
    /// (rewritten): what a new step needs (README, "Adding a step")
    Step {
        /// A folder under code/ with a description in project/src/step.rs
        step: String,
    },
    /// The whole doc CI (what .ci/run runs), or one stage of it
    Test {
        /// Run only this stage (each installs only what it needs)
        #[arg(long, value_enum)]
        only: Option<test::Stage>,
    },
    /// Re-run the harness and rewrite the captured outputs in src/captured/
    Capture,
    /// Measure module sizes, Envoy's CPU and instructions per request, start-up time and
    /// memory per VM; rewrites src/captured/bench/
    Bench {
        /// Only count the instructions of the configurations whose name
        /// contains this text, print them and write nothing (minutes, not
        /// an hour: for trying a change before a full run)
        #[arg(long)]
        probe: Option<String>,
        /// Write the tables again from the last run's results.json,
        /// measuring nothing (after a change to how they are laid out)
        #[arg(long)]
        report_only: bool,
    },
    /// Measure host compatibility (Envoy releases, the ABI, Loom, two host
    /// libraries); rewrites src/captured/host-compatibility.{json,md}
    Compat {
        /// Only this step, on the pinned release, Loom and the libraries,
        /// into the last measurements (a new step, or one that changed)
        #[arg(long)]
        step: Option<String>,
    },
    /// mdBook's preprocessor for this book (book.toml runs it)
    #[command(hide = true)]
    Preprocess {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() {
    run::started();
    let result = match Cli::parse().command {
        Command::Serve => book::serve(),
        Command::Up { step } => up::run(&step),
        Command::Step { step } => steps::one(&step),
        Command::Test { only } => test::run(only),
        Command::Capture => capture::run(),
        Command::Bench { probe, report_only } => {
            bench::run(false, probe.as_deref(), report_only, None)
        }
        Command::Compat { step } => compat::run(step.as_deref()),
        Command::Preprocess { args } => preprocess::run(&args),
    };
    if let Err(error) = result {
        eprintln!("\nxtask: {error}");
        std::process::exit(1);
    }
}
