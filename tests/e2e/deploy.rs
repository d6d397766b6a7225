//! What can be checked of deploy/ here: the example configs load, the systemd units pass
//! `systemd-analyze verify`, and a backup of a running office restores into a working node.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::node_support::{NodeProcess, Street, add_visit, await_plan, visit_ids, wait_until};
use crate::support::{Device, gridsync_bin};

const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn files_in(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_loads() {
    let configs = files_in(&deploy_dir().join("config"), "toml");
    assert_eq!(
        configs.len(),
        4,
        "office, captain, relay and volunteer configs: {configs:?}"
    );
    for file in configs {
        let config = gridsync_node::NodeConfig::load(&file)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", file.display()));
        assert_eq!(
            config.listen.port(),
            gridsync_node::config::DEFAULT_PORT,
            "{}",
            file.display()
        );
        // The people who carry volunteers' phones and captains' laptops get the field app,
        // for that device only.
        let role = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let field_app = matches!(role, "volunteer" | "captain");
        assert_eq!(config.ui.is_some(), field_app, "{}", file.display());
        assert!(
            config.ui.is_none_or(|addr| addr.ip().is_loopback()),
            "{}: the field app on loopback",
            file.display()
        );
    }
}

#[test]
fn systemd_units_pass_verification() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipping: systemd-analyze is not installed on this machine");
        return;
    };
    assert!(version.status.success());
    let units = files_in(&deploy_dir().join("systemd"), "service");
    assert_eq!(units.len(), 3, "office, captain and relay units: {units:?}");
    let scratch = tempfile::tempdir().expect("temp dir");
    for unit in units {
        // verify checks that ExecStart's program exists: point it at the binary under test.
        let text = std::fs::read_to_string(&unit).expect("read unit");
        assert!(
            text.contains("ExecStart=/usr/local/bin/gridsync "),
            "{}",
            unit.display()
        );
        let text = text.replace(
            "/usr/local/bin/gridsync",
            gridsync_bin().to_str().expect("UTF-8 path"),
        );
        let copy = scratch.path().join(unit.file_name().expect("file name"));
        std::fs::write(&copy, text).expect("write unit copy");
        let output = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .expect("run systemd-analyze");
        assert!(
            output.status.success(),
            "{} fails verification: {}",
            unit.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn a_backup_of_a_running_office_restores_into_a_working_node() {
    let street = Street::with_plan(&[("vol-1", "panhuo/grid-001")]);
    let v1 = street.device("vol-1");
    let office = NodeProcess::start(&street.office, "office", &[]);
    let vol = NodeProcess::start(v1, "vol-1", &[office.addr]);
    await_plan(&[v1], SYNC_TIMEOUT);
    let before = add_visit(v1, "h-1");
    assert!(wait_until(SYNC_TIMEOUT, || visit_ids(&street.office).contains(&before)));

    // Back up while the office runs, then lose the office.
    let backup = street.invites.path().join("office.backup");
    street
        .office
        .run(&["backup", "--out", backup.to_str().expect("UTF-8 path")])
        .ok();
    office.stop();
    drop(vol);

    let restored = Device::new();
    let run = restored.run(&["restore", backup.to_str().expect("UTF-8 path")]);
    assert!(run.ok().contains("restored node office"), "{}", run.stdout);
    assert!(
        visit_ids(&restored).contains(&before),
        "the restored office lacks the backed-up visit"
    );

    // The restored office runs with its identity and keeps syncing with the volunteer.
    let office = NodeProcess::start(&restored, "office (restored)", &[]);
    let _vol = NodeProcess::start(v1, "vol-1", &[office.addr]);
    let after = add_visit(v1, "h-2");
    assert!(
        wait_until(SYNC_TIMEOUT, || visit_ids(&restored).contains(&after)),
        "a visit written after the restore did not reach the restored office"
    );
    // Restoring over an existing store is refused.
    restored
        .run(&["restore", backup.to_str().expect("UTF-8 path")])
        .fails_with("already exists");
}
