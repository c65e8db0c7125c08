//! `cargo xtask capture`: re-run the harness with `UPDATE_CAPTURES=1`, the
//! one way captured outputs are rewritten, then rebuild the book with them.

use crate::run::Result;
use crate::{book, test};

pub fn run() -> Result {
    let (passed, failed) = test::harness(&[("UPDATE_CAPTURES", "1")])?;
    println!("harness: {passed} passed, {failed} failed");
    // The captured files changed: the book must still build with them.
    book::check_sources()?;
    book::build_and_check()
}
