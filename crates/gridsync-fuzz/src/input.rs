//! Reading structured values out of fuzz input.

use sha2::{Digest as _, Sha256};

/// A cursor over fuzz input: single bytes, and slices with a big-endian 16-bit length
/// prefix (cut short where the input ends). Reading past the end yields zeros and empty
/// slices, so every input means something.
#[derive(Debug)]
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }

    pub fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    pub fn slice(&mut self) -> &'a [u8] {
        let len = usize::from(u16::from_be_bytes([self.byte(), self.byte()]));
        let (taken, rest) = self.bytes.split_at(len.min(self.bytes.len()));
        self.bytes = rest;
        taken
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Appends a slice with the 16-bit length prefix [`Input::slice`] reads (for seed inputs).
pub fn push_slice(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("seed slices are under 64 KiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Magic bytes opening every automerge storage chunk.
const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Concatenated automerge storage chunks with every checksum recomputed (automerge checks
/// it against SHA-256 of type, minimal LEB128 length and data). Bytes that are not a whole
/// number of chunk frames are returned unchanged.
pub fn fix_checksums(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some(header) = rest.get(..9) else {
            return bytes.to_vec();
        };
        if header[..4] != CHUNK_MAGIC {
            return bytes.to_vec();
        }
        let Some((len, len_bytes)) = read_uleb128(&rest[9..]) else {
            return bytes.to_vec();
        };
        let Some(data) = usize::try_from(len)
            .ok()
            .and_then(|len| rest.get(9 + len_bytes..)?.get(..len))
        else {
            return bytes.to_vec();
        };
        let mut hasher = Sha256::new();
        hasher.update([header[8]]);
        hasher.update(uleb128(data.len() as u64));
        hasher.update(data);
        let digest = hasher.finalize();
        out.extend_from_slice(&CHUNK_MAGIC);
        out.extend_from_slice(&digest[..4]);
        out.push(header[8]);
        out.extend_from_slice(&rest[9..9 + len_bytes]);
        out.extend_from_slice(data);
        rest = &rest[9 + len_bytes + data.len()..];
    }
    out
}

fn read_uleb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn uleb128(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_cut_short_at_the_end() {
        let mut input = Input::new(&[0, 3, 1, 2, 3, 0, 9, 4]);
        assert_eq!(input.slice(), &[1, 2, 3]);
        assert_eq!(input.slice(), &[4]);
        assert!(input.is_empty());
        assert_eq!(input.byte(), 0);
    }

    #[test]
    fn a_repaired_checksum_parses_again() {
        let mut doc = automerge::AutoCommit::new();
        automerge::transaction::Transactable::put(&mut doc, automerge::ROOT, "k", 1).expect("put");
        let mut bytes = doc.save();
        assert_eq!(fix_checksums(&bytes), bytes);
        bytes[4] ^= 0xff;
        assert!(automerge::Automerge::load(&bytes).is_err());
        assert!(automerge::Automerge::load(&fix_checksums(&bytes)).is_ok());
    }
}
