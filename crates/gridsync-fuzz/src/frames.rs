//! The streaming frame decoder.

use gridsync_proto::frame::{FrameDecoder, MAX_FRAME_LEN, encode_frame};

/// Arbitrary bytes, pushed into a [`FrameDecoder`] in chunks of a size the first byte
/// picks (so splits across frame boundaries get exercised), must yield frames or a typed
/// error. Invariants: every frame decoded re-encodes to bytes that decode to the same frame,
/// and the decoder never buffers more than was pushed.
pub fn decode_frames(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split).max(1);
    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    let mut pushed = 0usize;
    for piece in rest.chunks(chunk) {
        decoder.push(piece);
        pushed += piece.len();
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let bytes = encode_frame(&frame).expect("a decoded frame re-encodes");
                    let mut again = FrameDecoder::new(MAX_FRAME_LEN);
                    again.push(&bytes);
                    let round_trip = again.next_frame().expect("re-encoded frame decodes");
                    assert_eq!(round_trip, Some(frame));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(decoder.buffered() <= pushed);
    }
}
