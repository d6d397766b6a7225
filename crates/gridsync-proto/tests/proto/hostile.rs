//! Hostile input: random bytes, oversized and truncated frames, sync messages for documents
//! outside the shared set. Always an error or a refusal, never a panic, memory bounded.

use gridsync_proto::frame::{
    FrameDecoder, Hello, MAX_FRAME_LEN, PROTOCOL_VERSION, PathRange, RangePart, RangeSummary,
    encode_frame,
};
use gridsync_proto::{Frame, FrameError, RefusalReason, Role, SessionError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use gridsync_proto::testing::{Identity, MemoryDocs, Pair, Side, node_id, path, scopes};

fn config() -> Config {
    Config {
        cases: 96,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x6772_6964),
        ..Config::default()
    }
}

/// A pair where the office has verified the captain's hello; the captain's session is then
/// ignored and the test speaks for it with raw bytes.
fn verified_office(office_holds_secret: bool) -> Pair {
    let office = Identity::new("office", Role::Office, &["write:s"]);
    let cap = Identity::new("cap-b", Role::Captain, &["write:s/g1"]);
    let mut a = MemoryDocs::new(&node_id("office"));
    a.write("s/g1/bldg-1", "k", "v");
    if office_holds_secret {
        a.write("s/g2/secret", "k", "v");
    }
    let b = MemoryDocs::new(&node_id("cap-b"));
    let mut pair = Pair::new((office, a), (cap, b));
    let hello = encode_frame(&Frame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        node_id: node_id("cap-b"),
        role: Role::Captain,
        scopes: scopes(&["write:s/g1"]),
    }))
    .expect("encodes");
    pair.inject(Side::A, &hello).expect("valid hello");
    while pair.a.session.poll_transmit().is_some() {}
    pair
}

fn drain(pair: &mut Pair) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = pair.a.session.poll_transmit() {
        out.extend(bytes);
    }
    out
}

#[test]
fn out_of_scope_sync_is_refused_identically_whether_or_not_the_document_exists() {
    let message = {
        use automerge::sync::{State, SyncDoc};
        automerge::Automerge::new()
            .generate_sync_message(&mut State::new())
            .expect("opening message")
            .encode()
    };
    let frame = encode_frame(&Frame::DocSync {
        path: path("s/g2/secret"),
        message,
        signatures: vec![],
    })
    .expect("encodes");
    let mut replies = Vec::new();
    for holds in [true, false] {
        let mut pair = verified_office(holds);
        pair.inject(Side::A, &frame).expect("refusal is not fatal");
        assert_eq!(
            pair.a.refusals(),
            vec![(path("s/g2/secret"), RefusalReason::NotShared)]
        );
        assert!(!pair.a.session.is_closed());
        replies.push(drain(&mut pair));
    }
    assert_eq!(replies[0], replies[1]);
}

#[test]
fn a_stream_ending_inside_a_frame_is_a_protocol_error() {
    let mut pair = verified_office(false);
    // A whole frame then the stream ends: orderly.
    assert!(pair.a.session.handle_stream_end().is_ok());
    // Half a frame then the stream ends: the session fails with a clear error.
    let frame = encode_frame(&Frame::Refused {
        path: path("s/g1/bldg-1"),
        reason: RefusalReason::NotShared,
    })
    .expect("encodes");
    pair.inject(Side::A, &frame[..frame.len() / 2])
        .expect("a partial frame waits for more");
    let result = pair.a.session.handle_stream_end();
    assert!(
        matches!(result, Err(SessionError::ProtocolViolation(why)) if why.contains("inside a frame")),
        "{result:?}"
    );
    assert!(pair.a.session.is_closed());
}

#[test]
fn oversized_length_is_rejected_before_buffering() {
    let mut pair = verified_office(false);
    let mut bytes = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
    bytes.push(3);
    let result = pair.inject(Side::A, &bytes);
    assert!(matches!(
        result,
        Err(SessionError::Frame(FrameError::TooLarge { .. }))
    ));
    assert!(pair.a.session.is_closed());
}

fn valid_frames() -> Vec<Vec<u8>> {
    [
        Frame::Inventory(vec![RangePart {
            range: PathRange::full(),
            summary: RangeSummary::Items(vec![(path("s/g1/bldg-1"), [3; 32])]),
        }]),
        Frame::DocSync {
            path: path("s/g1/bldg-1"),
            message: vec![0x42, 0, 0, 0, 0],
            signatures: vec![],
        },
        Frame::Refused {
            path: path("s/g1/bldg-1"),
            reason: RefusalReason::Malformed,
        },
    ]
    .iter()
    .map(|f| encode_frame(f).expect("encodes"))
    .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic_the_decoder(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let mut decoder = FrameDecoder::new(4096);
        for chunk in &chunks {
            decoder.push(chunk);
            while let Ok(Some(_)) = decoder.next_frame() {}
            // Never more buffered than was pushed and not yet framed.
            prop_assert!(decoder.buffered() <= chunks.iter().map(Vec::len).sum::<usize>());
        }
    }

    #[test]
    fn random_bytes_after_a_verified_hello_are_an_error_or_harmless(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut pair = verified_office(false);
        let _ = pair.inject(Side::A, &bytes);
        // Whatever happened, the office's documents are untouched.
        prop_assert_eq!(pair.a.docs.get("s/g1/bldg-1", "k"), Some("v".to_string()));
    }

    #[test]
    fn claimed_lengths_beyond_the_bytes_do_not_allocate(len in 5u32..u32::MAX, kind in 1u8..6, tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.push(kind);
        bytes.extend(&tail);
        decoder.push(&bytes);
        match decoder.next_frame() {
            Ok(None) => prop_assert!((len as usize) < MAX_FRAME_LEN + 1 && decoder.buffered() == bytes.len()),
            Ok(Some(_)) => prop_assert!(len as usize <= tail.len() + 1),
            Err(_) => {}
        }
    }

    #[test]
    fn truncated_frames_wait_or_fail_but_never_panic(which in 0usize..3, cut in 0usize..200, garbage in proptest::collection::vec(any::<u8>(), 0..32)) {
        let frames = valid_frames();
        let frame = &frames[which];
        let cut = cut % frame.len(); // strictly shorter than the frame
        let mut pair = verified_office(false);
        prop_assert!(pair.inject(Side::A, &frame[..cut]).is_ok());
        // Garbage completing the frame is an error or a refusal, never a panic.
        let _ = pair.inject(Side::A, &garbage);
    }

    #[test]
    fn garbage_sync_messages_are_refused(message in proptest::collection::vec(any::<u8>(), 0..256), shared in any::<bool>()) {
        let mut pair = verified_office(false);
        let target = if shared { "s/g1/bldg-1" } else { "s/g2/other" };
        let frame = encode_frame(&Frame::DocSync { path: path(target), message, signatures: vec![] }).expect("encodes");
        pair.inject(Side::A, &frame).expect("a bad sync message is refused, not fatal");
        prop_assert!(!pair.a.session.is_closed());
        if !shared {
            prop_assert_eq!(pair.a.refusals(), vec![(path(target), RefusalReason::NotShared)]);
        }
        prop_assert_eq!(pair.a.docs.get("s/g1/bldg-1", "k"), Some("v".to_string()));
        prop_assert!(!pair.a.docs.docs.contains_key(&path("s/g2/other")));
    }
}
