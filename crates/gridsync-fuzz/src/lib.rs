//! gridsync-fuzz: every fuzz target as a plain function over arbitrary bytes, so that the
//! cargo-fuzz project in `fuzz/` (nightly, libFuzzer) and the stable test suite (which
//! replays every saved input in `corpus/<target>/`) run exactly the same code.
//!
//! A target function must never panic: a panic is either a bug in the code under test or a
//! broken invariant that the target asserts (they are documented on each function).
//!
//! Inputs are read with [`input::Input`] (bytes, and slices with a 16-bit length prefix),
//! and automerge storage chunks can have their checksums repaired
//! ([`input::fix_checksums`]) so that mutated changes still parse and the fuzzer reaches the
//! checks behind parsing. The street CA the targets verify certificates against is a fixed
//! test CA ([`fixture`]), so saved inputs stay meaningful from run to run.

pub mod fixture;
pub mod input;

mod directory;
mod frames;
mod inspect;
mod invite;

pub use directory::directory_and_signature_checks;
pub use frames::decode_frames;
pub use inspect::inspect_and_apply;
pub use invite::parse_invite;

/// The targets by name (the names of the fuzz targets and of their corpus directories).
/// A fuzz target: a function over arbitrary bytes that must never panic.
pub type Target = fn(&[u8]);

pub const TARGETS: &[(&str, Target)] = &[
    ("decode_frames", decode_frames),
    ("inspect_and_apply", inspect_and_apply),
    (
        "directory_and_signature_checks",
        directory_and_signature_checks,
    ),
    ("parse_invite", parse_invite),
];
