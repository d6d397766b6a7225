//! See [`gridsync_fuzz::decode_frames`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gridsync_fuzz::decode_frames(data));
