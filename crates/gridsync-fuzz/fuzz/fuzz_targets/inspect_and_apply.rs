//! See [`gridsync_fuzz::inspect_and_apply`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gridsync_fuzz::inspect_and_apply(data));
