//! Every CLI command through the real binary, including its error cases.

use crate::support::{Device, run_plain};

#[test]
fn help_teaches_with_examples() {
    let run = run_plain(&["--help"]);
    assert!(run.ok().contains("Examples:"), "{}", run.stdout);
    assert!(run.stdout.contains("visit add"));
}
