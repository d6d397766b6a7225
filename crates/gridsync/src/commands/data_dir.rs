//! Where a device's store lives when `--data` is not given.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// `--data DIR` (or `$GRIDSYNC_DATA`, handled by clap), else the per-user data directory
/// (`~/.local/share/gridsync` on Linux).
pub fn resolve_data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    let dirs = directories::ProjectDirs::from("org", "gridsync", "gridsync")
        .context("cannot find a per-user data directory; pass --data DIR")?;
    Ok(dirs.data_dir().to_owned())
}
