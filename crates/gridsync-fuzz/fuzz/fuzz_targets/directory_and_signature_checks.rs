//! See [`gridsync_fuzz::directory_and_signature_checks`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gridsync_fuzz::directory_and_signature_checks(data));
