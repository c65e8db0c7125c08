//! `cargo xtask capture`: re-run the harness with `UPDATE_CAPTURES=1`, the
//! one way captured outputs are rewritten, then run it again comparing, as
//! `cargo xtask test` will (a capture that one test writes and another
//! compares is only checked by a run after both are written), and rebuild
//! the book with them.

use crate::run::{self, Result};
use crate::{book, test};

pub fn run() -> Result {
    let (passed, failed) = test::harness(&[("UPDATE_CAPTURES", "1")])?;
    println!("harness (rewriting captures): {passed} passed, {failed} failed");
    run::step("comparing with the captures just written");
    let (passed, failed) = test::harness(&[])?;
    println!("harness (comparing): {passed} passed, {failed} failed");
    // The captured files changed: the book must still build with them.
    book::check_sources()?;
    book::build_and_check()
}
