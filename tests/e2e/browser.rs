//! Where the browser tests save what a person should look at.

use std::path::{Path, PathBuf};

pub use gridsync_testkit::browser::{Browser, PAGE_TIMEOUT, browser_missing};

/// `<target dir>/NAME`: beside cargo's temporary directory for integration tests, so
/// `CARGO_TARGET_DIR` is respected. Screenshots go there.
pub fn target_file(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join(name)
}
