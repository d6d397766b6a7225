//! The smoke run CI performs: every scenario at `--scale smoke`, through the real binary, and
//! its JSON report parsed back. Timings are not asserted (a debug build on a shared machine
//! says nothing about them); what is checked is that every scenario ran and reported figures.

use std::process::Command;

use gridsync_bench::report::BenchReport;

#[test]
fn smoke_run_reports_every_scenario_with_figures() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("smoke.json");
    let output = Command::new(env!("CARGO_BIN_EXE_gridsync-bench"))
        .args(["--scale", "smoke", "--quiet", "--json"])
        .arg(&json)
        .output()
        .expect("the benchmark binary starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "smoke run failed:\n{stderr}");

    let text = std::fs::read_to_string(&json).expect("the JSON report was written");
    let report: BenchReport = serde_json::from_str(&text).expect("the JSON report parses");
    assert_eq!(report.scale, "smoke");
    let numbers: Vec<u32> = report.scenarios.iter().map(|s| s.number).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6, 7, 8], "{stderr}");
    for scenario in &report.scenarios {
        assert!(
            !scenario.figures.is_empty(),
            "scenario {} reported no figure",
            scenario.number
        );
        for figure in &scenario.figures {
            assert!(
                figure.value.is_finite(),
                "scenario {}: {} is {}",
                scenario.number,
                figure.name,
                figure.value
            );
        }
    }
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("1. Street initial sync"), "{table}");
}
