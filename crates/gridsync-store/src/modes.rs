//! Keys at rest: the store holds the device's private key, and at the office also the street
//! CA key and the dashboard token, so its directory is owner-only (0700) and each of its
//! files, and every backup, is owner read-write only (0600).
//!
//! The modes are set explicitly rather than through the process umask. A umask is
//! process-wide: a running node creates stores and backups while other threads create files,
//! so setting and restoring it around each creation would race with them and with itself.
//! Explicit modes leave no window instead: the directory is made with mode 0700, and every
//! file is created by us with mode 0600 before SQLite opens it. SQLite's unix VFS gives the
//! write-ahead log (`-wal`), the rollback journal and the shared-memory index (`-shm`) it
//! creates the mode of their database file (`findCreateFileMode` and
//! `unixOpenSharedMemory` in `os_unix.c`, which `fchmod` a new file to it whatever the
//! umask), so those follow the database's 0600.
//!
//! A store made by an older version, or copied with a careless `cp`, may be wider; opening it
//! tightens the directory and every file of it, logging which, before SQLite touches them.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use tracing::warn;

/// Mode of a store directory.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of every store file and backup.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Permission bits for anyone but the owner.
const GROUP_AND_OTHER: u32 = 0o077;

/// Creates `dir` and its missing parents with mode 0700 (created parents too: they are
/// usually gridsync's own, like `~/.local/share/gridsync`), and tightens `dir` if it existed.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    tighten(dir);
    Ok(())
}

/// Creates the file `path`, which must not exist, empty and with mode 0600 from its first
/// instant (`O_CREAT|O_EXCL` with the mode, which the umask can only narrow).
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Tightens the store directory and the files of the store `db_path` that exist: the
/// database, its write-ahead log and its shared-memory index.
pub(crate) fn tighten_store(dir: &Path, db_path: &Path) {
    tighten(dir);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db_path.as_os_str().to_owned();
        name.push(suffix);
        tighten(Path::new(&name));
    }
}

/// Removes the group and other permission bits of `path` if it has any, with a warning naming
/// it. A file that does not exist is left alone; one we cannot change (not ours) only gets a
/// warning, since its owner chose its mode and the store still works.
fn tighten(path: &Path) {
    let mode = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot check the mode of a store file");
            return;
        }
    };
    if mode & GROUP_AND_OTHER == 0 {
        return;
    }
    let tightened = mode & 0o7777 & !GROUP_AND_OTHER;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(tightened)) {
        Ok(()) => warn!(
            path = %path.display(),
            "{} was open to other users (mode {:o}); tightened to {:o}, since the store holds this device's keys",
            path.display(),
            mode & 0o7777,
            tightened
        ),
        Err(e) => warn!(
            path = %path.display(),
            error = %e,
            "{} is open to other users (mode {:o}) and cannot be tightened; it holds this device's keys",
            path.display(),
            mode & 0o7777
        ),
    }
}
