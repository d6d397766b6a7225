//! See [`gridsync_fuzz::parse_invite`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gridsync_fuzz::parse_invite(data));
