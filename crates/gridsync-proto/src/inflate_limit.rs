//! Bounded inflation of automerge storage chunks, checked before automerge parses them.
//!
//! automerge inflates compressed data with no limit: a compressed change chunk (type 2) is
//! read to its end into one buffer, and so is every DEFLATE-compressed column of a document
//! chunk (type 0). DEFLATE compresses a run of zeros about a thousand to one, so a sync message
//! of a few megabytes could make the node allocate gigabytes. This module streams every
//! compressed part of a chunk through an inflater with a fixed output buffer, counting the
//! bytes it produces and stopping as soon as they pass the cap, and never keeps them. A chunk
//! that passes can then be handed to automerge, which will allocate no more than the cap for
//! the inflated data.
//!
//! Layouts (automerge 0.12, `storage/chunk.rs`, `storage/document.rs`,
//! `storage/columns/raw_column.rs`): every chunk is `magic (4) | checksum (4) | type (1) |
//! uleb128 length | body`. A compressed change's body is a raw DEFLATE stream (no zlib
//! header) of an ordinary change chunk's body. A document's body is: actors (uleb128 count,
//! then each a uleb128 length and bytes), heads (uleb128 count, then 32 bytes each), change
//! column metadata and op column metadata (each a uleb128 count, then per column a uleb128
//! `u32` spec and a uleb128 length), the change columns' data, the op columns' data, then head
//! indices. A column spec with bit 3 set is DEFLATE-compressed.

use flate2::{Decompress, FlushDecompress, Status};

/// Most bytes the compressed parts of one sync message may inflate to, over all its chunks.
///
/// A sync message arrives in one frame of at most 32 MiB ([`crate::frame::MAX_FRAME_LEN`]), and
/// automerge compresses only documents and large columns, so an honest message never needs
/// more than a small multiple of its frame. The largest document gridsync syncs is the street
/// plan; for a plan of 18,563 households, at a few hundred bytes of strings and ids per
/// household (an estimate, not yet measured with gridsync-model's plan), the columns inflate
/// to roughly 5 MiB, while a building document is kilobytes. 64 MiB leaves room for streets
/// several times that size and bounds what one hostile frame can make the node allocate to
/// twice the frame limit.
pub const MAX_INFLATED_BYTES: u64 = 64 * 1024 * 1024;

/// Why a chunk was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InflateError {
    /// The chunk does not parse as a storage chunk, or its compressed data is not DEFLATE.
    #[error("malformed storage chunk")]
    Malformed,
    /// Its compressed parts inflate to more than the cap.
    #[error("compressed data inflates past the limit")]
    TooLarge,
}

/// Magic bytes opening every automerge storage chunk.
pub const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT_CHUNK: u8 = 0;
pub const CHANGE_CHUNK: u8 = 1;
pub const COMPRESSED_CHANGE_CHUNK: u8 = 2;
/// The bit of a column spec that marks its data as DEFLATE-compressed.
const DEFLATE_BIT: u32 = 0b1000;
/// Size of a change hash in a document's heads.
const HASH_LEN: usize = 32;
/// Output buffer of the inflater: the only memory inflation uses besides the inflater's own
/// fixed state (a 32 KiB window).
const OUT_BUF_LEN: usize = 32 * 1024;

/// Bytes the compressed parts of `chunk` (one storage chunk, header included) inflate to, if
/// that is at most `cap`. Uncompressed change chunks inflate to nothing. Anything other than a
/// change, compressed change or document chunk, and any chunk whose layout does not parse, is
/// [`InflateError::Malformed`].
pub(crate) fn inflated_len(chunk: &[u8], cap: u64) -> Result<u64, InflateError> {
    let (kind, body) = split_header(chunk)?;
    match kind {
        CHANGE_CHUNK => Ok(0),
        COMPRESSED_CHANGE_CHUNK => inflate_counting(body, cap),
        DOCUMENT_CHUNK => document_inflated_len(body, cap),
        _ => Err(InflateError::Malformed),
    }
}

/// The chunk's type and body, checking the magic bytes and that the length covers exactly
/// the rest of `chunk`.
fn split_header(chunk: &[u8]) -> Result<(u8, &[u8]), InflateError> {
    let mut reader = Reader(chunk);
    if reader.take(4)? != CHUNK_MAGIC {
        return Err(InflateError::Malformed);
    }
    reader.take(4)?; // The checksum, which automerge verifies.
    let kind = reader.take(1)?[0];
    let len = reader.len()?;
    let body = reader.take(len)?;
    if !reader.0.is_empty() {
        return Err(InflateError::Malformed);
    }
    Ok((kind, body))
}

/// Sum of what the deflated columns of a document chunk's body inflate to.
fn document_inflated_len(body: &[u8], cap: u64) -> Result<u64, InflateError> {
    let mut reader = Reader(body);
    let actors = reader.uleb()?;
    for _ in 0..actors {
        // Each actor takes at least one byte, so a false count ends at the end of the body.
        let len = reader.len()?;
        reader.take(len)?;
    }
    let heads = usize::try_from(reader.uleb()?).map_err(|_| InflateError::Malformed)?;
    reader.take(heads.checked_mul(HASH_LEN).ok_or(InflateError::Malformed)?)?;
    let change_meta = reader.column_metadata()?;
    let op_meta = reader.column_metadata()?;
    let mut total = 0u64;
    for meta in [change_meta, op_meta] {
        for column in Columns(Reader(meta.specs)) {
            let (spec, len) = column?;
            let data = reader.take(len)?;
            if spec & DEFLATE_BIT != 0 {
                let left = cap.checked_sub(total).ok_or(InflateError::TooLarge)?;
                total += inflate_counting(data, left)?;
            }
        }
    }
    // What follows (head indices) is not compressed; automerge parses it.
    Ok(total)
}

/// Inflates the raw DEFLATE stream `data`, keeping nothing, and returns how many bytes it
/// produced if that is at most `cap`.
fn inflate_counting(data: &[u8], cap: u64) -> Result<u64, InflateError> {
    if data.is_empty() {
        // Nothing to inflate; automerge decides whether an empty compressed part is valid.
        return Ok(0);
    }
    let mut inflater = Decompress::new(false);
    let mut out = vec![0u8; OUT_BUF_LEN];
    loop {
        // `total_in` never exceeds `data.len()`, a usize.
        let consumed = usize::try_from(inflater.total_in()).map_err(|_| InflateError::Malformed)?;
        let input = data.get(consumed..).ok_or(InflateError::Malformed)?;
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress(input, &mut out, FlushDecompress::None)
            .map_err(|_| InflateError::Malformed)?;
        if inflater.total_out() > cap {
            return Err(InflateError::TooLarge);
        }
        match status {
            Status::StreamEnd => return Ok(inflater.total_out()),
            Status::Ok | Status::BufError => {
                if inflater.total_in() == in_before && inflater.total_out() == out_before {
                    // No progress with input left and room to write: the stream is truncated.
                    return Err(InflateError::Malformed);
                }
            }
        }
    }
}

/// A cursor over bytes that fails with [`InflateError::Malformed`] past their end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], InflateError> {
        let (taken, rest) = self.0.split_at_checked(n).ok_or(InflateError::Malformed)?;
        self.0 = rest;
        Ok(taken)
    }

    /// An unsigned LEB128 value of at most 64 bits. Overlong encodings are accepted here:
    /// automerge rejects them when it parses the chunk, and for every encoding it accepts this
    /// reads the same value.
    fn uleb(&mut self) -> Result<u64, InflateError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = self.take(1)?[0];
            let low = u64::from(byte & 0x7f);
            let shifted = low.checked_shl(7 * i).ok_or(InflateError::Malformed)?;
            if shifted >> (7 * i) != low {
                return Err(InflateError::Malformed);
            }
            value |= shifted;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(InflateError::Malformed)
    }

    /// A LEB128 length that must fit in memory.
    fn len(&mut self) -> Result<usize, InflateError> {
        usize::try_from(self.uleb()?).map_err(|_| InflateError::Malformed)
    }

    /// One block of column metadata (count, then spec and length per column), checked to
    /// parse; its columns are read again with [`Columns`] while walking the data.
    fn column_metadata(&mut self) -> Result<ColumnMetadata<'a>, InflateError> {
        let count = self.uleb()?;
        let start = self.0;
        for _ in 0..count {
            // Each column takes at least two bytes, so a false count ends at the end.
            let spec = self.uleb()?;
            u32::try_from(spec).map_err(|_| InflateError::Malformed)?;
            self.len()?;
        }
        let used = start.len() - self.0.len();
        Ok(ColumnMetadata {
            specs: start.get(..used).ok_or(InflateError::Malformed)?,
        })
    }
}

/// The column entries of one metadata block, without its count.
struct ColumnMetadata<'a> {
    specs: &'a [u8],
}

/// Iterates (spec, data length) over metadata already checked by
/// [`Reader::column_metadata`].
struct Columns<'a>(Reader<'a>);

impl Iterator for Columns<'_> {
    type Item = Result<(u32, usize), InflateError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.0.is_empty() {
            return None;
        }
        let column = (|| {
            let spec = u32::try_from(self.0.uleb()?).map_err(|_| InflateError::Malformed)?;
            Ok((spec, self.0.len()?))
        })();
        Some(column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::chunks::{checksum, chunk, deflate, uleb, zeros_deflated};
    use automerge::transaction::Transactable;
    use automerge::{ActorId, Automerge, ROOT};

    fn one_change() -> automerge::Change {
        let mut doc = Automerge::new().with_actor(ActorId::from(b"vol-7".as_slice()));
        let mut tx = doc.transaction();
        tx.put(ROOT, "k", "v").expect("put on root");
        tx.commit();
        doc.get_last_local_change().expect("one change")
    }

    #[test]
    fn uncompressed_and_honest_compressed_changes_pass() {
        let change = one_change();
        let raw = change.raw_bytes().to_vec();
        assert_eq!(inflated_len(&raw, 0), Ok(0));
        let (_, body) = split_header(&raw).expect("a chunk");
        let compressed = chunk(
            COMPRESSED_CHANGE_CHUNK,
            &deflate(body),
            checksum(CHANGE_CHUNK, body),
        );
        let parsed =
            automerge::Change::try_from(compressed.as_slice()).expect("automerge reads it");
        assert_eq!(parsed.hash(), change.hash());
        assert_eq!(inflated_len(&compressed, 1 << 20), Ok(body.len() as u64));
        assert_eq!(
            inflated_len(&compressed, body.len() as u64 - 1),
            Err(InflateError::TooLarge)
        );
    }

    #[test]
    fn honest_documents_pass_with_their_columns_counted() {
        let mut doc = Automerge::new().with_actor(ActorId::from(b"vol-7".as_slice()));
        for i in 0..400 {
            let mut tx = doc.transaction();
            tx.put(ROOT, format!("household-{i}"), "visited, nobody home")
                .expect("put on root");
            tx.commit();
        }
        let compressed = doc.save();
        let plain = doc.save_nocompress();
        assert!(compressed.len() < plain.len(), "some columns are deflated");
        let inflated = inflated_len(&compressed, MAX_INFLATED_BYTES).expect("within the cap");
        assert!(inflated > 0);
        assert_eq!(inflated_len(&plain, 0), Ok(0));
        assert_eq!(
            inflated_len(&compressed, inflated - 1),
            Err(InflateError::TooLarge)
        );
    }

    #[test]
    fn anything_that_does_not_parse_is_malformed() {
        let doc = Automerge::new().save();
        for cut in 0..doc.len() {
            assert!(
                inflated_len(&doc[..cut], MAX_INFLATED_BYTES).is_err(),
                "cut at {cut}"
            );
        }
        let mut bundle = one_change().raw_bytes().to_vec();
        bundle[8] = 3;
        assert_eq!(inflated_len(&bundle, 0), Err(InflateError::Malformed));
        let garbage = chunk(COMPRESSED_CHANGE_CHUNK, &[0xff; 64], [0; 4]);
        assert_eq!(
            inflated_len(&garbage, 1 << 20),
            Err(InflateError::Malformed)
        );
        let truncated = deflate(&[7u8; 10_000]);
        let truncated = chunk(
            COMPRESSED_CHANGE_CHUNK,
            &truncated[..truncated.len() / 2],
            [0; 4],
        );
        assert_eq!(
            inflated_len(&truncated, 1 << 20),
            Err(InflateError::Malformed)
        );
    }

    /// A compressed change whose body inflates to 1 GiB of zeros (about 1 MiB on the wire),
    /// its checksum that of the inflated change, so that only its size is wrong for the
    /// checks that come first (zeros are no valid change, which automerge finds out only once
    /// it has inflated them).
    fn change_bomb() -> Vec<u8> {
        let (deflated, checksum) = zeros_deflated(1 << 30);
        chunk(COMPRESSED_CHANGE_CHUNK, &deflated, checksum)
    }

    #[test]
    fn a_compressed_change_bomb_is_refused() {
        let bomb = change_bomb();
        assert!(bomb.len() < 2 * 1024 * 1024, "{} bytes", bomb.len());
        assert_eq!(
            inflated_len(&bomb, MAX_INFLATED_BYTES),
            Err(InflateError::TooLarge)
        );
    }

    #[test]
    fn a_document_with_a_deflated_column_bomb_is_refused() {
        let doc = document_bomb();
        assert_eq!(
            inflated_len(&doc, MAX_INFLATED_BYTES),
            Err(InflateError::TooLarge)
        );
    }

    /// A document chunk, checksum correct, whose one op column is 1 GiB of zeros deflated.
    fn document_bomb() -> Vec<u8> {
        let (column, _) = zeros_deflated(1 << 30);
        let mut body = Vec::new();
        uleb(1, &mut body); // One actor...
        uleb(2, &mut body);
        body.extend_from_slice(b"v7");
        uleb(0, &mut body); // ...no heads...
        uleb(0, &mut body); // ...no change columns...
        uleb(1, &mut body); // ...and one op column: the object id's actor, deflated.
        uleb(u64::from((1 << 4) | DEFLATE_BIT), &mut body);
        uleb(column.len() as u64, &mut body);
        body.extend_from_slice(&column);
        chunk(DOCUMENT_CHUNK, &body, checksum(DOCUMENT_CHUNK, &body))
    }
}
