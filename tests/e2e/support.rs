//! Running the `gridsync` binary from tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the binary under test, built by cargo for this test run.
pub fn gridsync_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gridsync"))
}

/// One device's data directory plus a way to run commands against it.
pub struct Device {
    pub dir: tempfile::TempDir,
    /// Environment every command and node of this device runs with (a faked clock).
    pub env: Vec<(String, String)>,
}

/// libfaketime, which shifts the clock of a process it is preloaded into (Debian package
/// `libfaketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The result of one command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "command failed: stdout={} stderr={}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts failure with a one-line error containing `needle`.
    #[track_caller]
    pub fn fails_with(&self, needle: &str) {
        assert_ne!(
            self.code, 0,
            "command unexpectedly succeeded: {}",
            self.stdout
        );
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| {
                panic!("no 'error: ' line on stderr: {:?}", self.stderr);
            });
        assert!(
            line.contains(needle),
            "error line {line:?} does not contain {needle:?}"
        );
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Device {
    pub fn new() -> Device {
        Device {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
        }
    }

    /// Runs this device's commands and nodes with a wall clock `offset` off (libfaketime's
    /// syntax, such as `+6h`); monotonic time stays true. `false` when libfaketime is missing.
    pub fn set_clock_offset(&mut self, offset: &str) -> bool {
        if !Path::new(LIBFAKETIME).exists() {
            return false;
        }
        self.env.extend([
            ("LD_PRELOAD".to_owned(), LIBFAKETIME.to_owned()),
            ("FAKETIME".to_owned(), offset.to_owned()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
        ]);
        true
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `gridsync --data DIR args...`.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = Command::new(gridsync_bin())
            .arg("--data")
            .arg(self.path())
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("GRIDSYNC_DATA")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("spawn gridsync");
        Run::from_output(output)
    }

    /// Runs a command line written as one string, split at whitespace: for the many tests
    /// whose arguments hold no spaces (`"visit add --household h-101 --outcome contacted"`).
    pub fn run_line(&self, line: &str) -> Run {
        self.run(&line.split_whitespace().collect::<Vec<_>>())
    }
}

/// Runs `gridsync args...` with no data directory flag.
pub fn run_plain(args: &[&str]) -> Run {
    let output = Command::new(gridsync_bin())
        .args(args)
        .output()
        .expect("spawn gridsync");
    Run::from_output(output)
}

impl Run {
    /// Asserts a failure reported the way every gridsync error must be: a non-zero exit code,
    /// nothing on stdout, and stderr exactly one line `error: ...` containing `needle`.
    #[track_caller]
    pub fn fails_alone_with(&self, needle: &str) {
        assert_ne!(
            self.code, 0,
            "command unexpectedly succeeded: stdout={} stderr={}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stdout, "", "a failed command printed on stdout");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr is not one line: {:?}", self.stderr);
        assert!(
            lines[0].starts_with("error: "),
            "stderr line does not start with 'error: ': {:?}",
            lines[0]
        );
        assert!(
            lines[0].contains(needle),
            "error line {:?} does not contain {needle:?}",
            lines[0]
        );
    }
}

/// Runs `gridsync --data DIR args...` for any directory, including one that does not exist.
pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(gridsync_bin())
        .arg("--data")
        .arg(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("GRIDSYNC_DATA")
        .output()
        .expect("spawn gridsync");
    Run::from_output(output)
}
