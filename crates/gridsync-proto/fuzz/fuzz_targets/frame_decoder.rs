//! Fuzzes the streaming frame decoder: arbitrary bytes, pushed in arbitrary chunks, must
//! yield frames or a typed error, never a panic, and must never buffer more than was pushed.
//! Every frame decoded must re-encode to bytes that decode to the same frame.

#![no_main]

use gridsync_proto::frame::{FrameDecoder, MAX_FRAME_LEN, encode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size, so splits across frame boundaries get exercised.
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
});
