//! Helpers shared by the test modules.

use automerge::{Automerge, ROOT, ReadDoc, transaction::Transactable};
use gridsync_proto::DocPath;

/// Parses a path known to be valid.
pub fn path(s: &str) -> DocPath {
    DocPath::parse(s).expect("test paths are valid")
}

/// Puts `key` = `value` into `doc` and returns the change's bytes, as the node would append.
pub fn put(doc: &mut Automerge, key: &str, value: &str) -> Vec<u8> {
    let before = doc.get_heads();
    let mut tx = doc.transaction();
    tx.put(ROOT, key, value).expect("put on the root map");
    tx.commit();
    doc.save_after(&before)
}

/// The string stored under `key` in the root map, if any.
pub fn get(doc: &Automerge, key: &str) -> Option<String> {
    let (value, _) = doc.get(ROOT, key).expect("read of the root map")?;
    value.into_string().ok()
}

/// A small pseudo-random generator (splitmix64), seeded by the caller so runs can be replayed.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// A seed from the clock, printed so a failing run can be repeated with GRIDSYNC_TEST_SEED.
pub fn seed() -> u64 {
    let seed = std::env::var("GRIDSYNC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("seed {seed} (set GRIDSYNC_TEST_SEED to repeat)");
    seed
}
