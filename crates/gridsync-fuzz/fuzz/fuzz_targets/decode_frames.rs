//! See [`gridsync_fuzz::decode_frames`].

#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        // libFuzzer's hook aborts on every panic, also one gridsync catches on purpose (a
        // panic inside automerge becomes a refusal, see gridsync_proto::apply). With a
        // silent hook, a caught panic stays caught, and one that escapes the target still
        // counts as a crash (libfuzzer-sys aborts when the target unwinds).
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| gridsync_fuzz::decode_frames(data)
);
