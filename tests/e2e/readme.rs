//! The README's walkthrough, run as written: its first `sh` block after "A walkthrough on one
//! device" goes to bash with `gridsync` standing for the binary under test, in a scratch
//! directory holding the repository's `examples/street-plan.csv`, so that a command the
//! README shows and the binary no longer accepts fails the suite.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::gridsync_bin;

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The first ```sh block after the heading `heading` in `markdown`.
fn sh_block_after<'a>(markdown: &'a str, heading: &str) -> Option<&'a str> {
    let after = &markdown[markdown.find(heading)?..];
    let start = after.find("```sh\n")? + "```sh\n".len();
    let block = &after[start..];
    Some(&block[..block.find("```")?])
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let root = repository_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let block = sh_block_after(&readme, "## A walkthrough on one device")
        .expect("the README has a walkthrough block");
    let scratch = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(scratch.path().join("examples")).expect("mkdir examples");
    std::fs::copy(
        root.join("examples/street-plan.csv"),
        scratch.path().join("examples/street-plan.csv"),
    )
    .expect("the README's sample plan exists");
    let script = format!(
        "set -euo pipefail\ngridsync() {{ \"$GRIDSYNC_BIN\" \"$@\"; }}\nexport TMPDIR={tmp:?}\n{block}",
        tmp = scratch.path().display().to_string(),
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(scratch.path())
        .env("GRIDSYNC_BIN", gridsync_bin())
        .env_remove("GRIDSYNC_DATA")
        .env_remove("RUST_LOG")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the walkthrough failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    // It ends with an export of what it recorded: the visit, the delivery and the sweep.
    let export = std::fs::read_to_string(scratch.path().join("visits.csv"))
        .expect("the walkthrough's export was written");
    let kinds: Vec<&str> = export
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').nth(1))
        .collect();
    for kind in ["visit", "delivery", "sweep"] {
        assert!(kinds.contains(&kind), "no {kind} in the export:\n{export}");
    }
    assert!(
        stdout.contains("h-0001"),
        "the building view names the household:\n{stdout}"
    );
}
