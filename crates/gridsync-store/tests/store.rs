//! Integration tests of gridsync-store: round trips, compaction, refusal of bad files,
//! a full disk, file modes (keys at rest), SIGKILL crashes of a writing process, and migration
//! from older formats.

#[path = "store/backup.rs"]
mod backup;
#[path = "store/corrupt.rs"]
mod corrupt;
#[path = "store/crash.rs"]
mod crash;
#[path = "store/full_disk.rs"]
mod full_disk;
#[path = "store/migration.rs"]
mod migration;
#[path = "store/modes.rs"]
mod modes;
#[path = "store/round_trip.rs"]
mod round_trip;
#[path = "store/support.rs"]
mod support;
