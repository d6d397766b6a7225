//! A partial frame must complete in bounded time: a peer that sends a frame's first bytes
//! and then trickles the rest holds the receiver's buffer and connection for as long as it
//! likes otherwise. Driven with the pair's virtual clock.

use gridsync_proto::frame::encode_frame;
use gridsync_proto::{CloseReason, Frame, Limits, Role, SessionError, SessionEvent};

use gridsync_proto::testing::{Identity, MemoryDocs, Pair, Side, node_id, path};

/// Two synced sessions: the inventory is done, so the idle timeout no longer applies.
fn synced_pair(limits: Limits) -> Pair {
    let a_id = Identity::new("office", Role::Office, &["write:s"]);
    let b_id = Identity::new("cap-b", Role::Captain, &["write:s/g1"]);
    let mut a = MemoryDocs::new(&node_id("office"));
    a.write("s/g1/bldg-1", "k", "v");
    let b = MemoryDocs::new(&node_id("cap-b"));
    let mut pair = Pair::with_limits((a_id, a), (b_id, b), limits);
    pair.drive();
    assert!(!pair.a.session.is_closed() && !pair.b.session.is_closed());
    pair
}

/// A frame of exactly `len` bytes on the wire.
fn frame_of_len(len: usize) -> Vec<u8> {
    // A doc-sync frame's message is an opaque byte string: pad it to the wanted size. Its
    // content is garbage, which the session refuses per document without closing.
    let overhead = encode_frame(&Frame::DocSync {
        path: path("s/g1/bldg-1"),
        message: Vec::new(),
        signatures: Vec::new(),
    })
    .expect("encodes")
    .len();
    encode_frame(&Frame::DocSync {
        path: path("s/g1/bldg-1"),
        message: vec![0u8; len - overhead],
        signatures: Vec::new(),
    })
    .expect("encodes")
}

/// Runs the session's timer at `now` if it is due, as a driver would.
fn tick(pair: &mut Pair, now: u64) {
    pair.now = now;
    let due = pair.a.session.poll_timeout().is_some_and(|at| at <= now);
    if due {
        let mut docs = pair.a.docs.clone();
        pair.a.session.handle_timeout(now, &mut docs);
    }
}

/// Whether side A's session reported closing over a partial frame (events drained by the
/// harness or still in the session).
fn closed_by_frame_timeout(pair: &mut Pair) -> bool {
    let is_frame_timeout = |event: &SessionEvent| {
        matches!(
            event,
            SessionEvent::Closed {
                reason: CloseReason::Error(SessionError::FrameTimeout { .. })
            }
        )
    };
    let mut found = pair.a.events.iter().any(is_frame_timeout);
    while let Some(event) = pair.a.session.poll_event() {
        found |= is_frame_timeout(&event);
    }
    found
}

#[test]
fn a_partial_frame_trickled_a_byte_every_few_seconds_is_closed_in_bounded_time() {
    let limits = Limits::default();
    let timeout = limits.frame_timeout_ms;
    let mut pair = synced_pair(limits);
    let frame = frame_of_len(10_000);
    let start = pair.now;
    // The header and a few bytes, then one byte every 3 s.
    pair.inject(Side::A, &frame[..8])
        .expect("a partial frame is no error yet");
    // The deadline is armed as soon as a frame is incomplete.
    let deadline = pair
        .a
        .session
        .poll_timeout()
        .expect("a partial frame arms a timer");
    assert!(
        deadline <= start + timeout + 10,
        "deadline {deadline} too late"
    );
    trickle_until_closed(&mut pair, &frame, 8, 3_000, timeout);
}

/// Sends `frame` from byte `sent` on, one byte every `every_ms`, until side A closes the
/// session; checks that it closed for the frame timeout, within `timeout` and one step of
/// the trickle's start.
#[track_caller]
fn trickle_until_closed(
    pair: &mut Pair,
    frame: &[u8],
    mut sent: usize,
    every_ms: u64,
    timeout: u64,
) {
    let start = pair.now;
    let mut now = start;
    while !pair.a.session.is_closed() && now < start + 10 * timeout {
        now += every_ms;
        pair.now = now;
        if pair.inject(Side::A, &frame[sent..sent + 1]).is_err() {
            break;
        }
        sent += 1;
        tick(pair, now);
    }
    assert!(
        pair.a.session.is_closed(),
        "the trickling peer was never closed"
    );
    assert!(
        now <= start + timeout + every_ms,
        "closed only after {} ms (frame timeout {timeout} ms)",
        now - start
    );
    assert!(closed_by_frame_timeout(pair));
}

#[test]
fn a_large_frame_arriving_just_above_the_minimum_rate_is_not_cut_off() {
    let limits = Limits::default();
    // A tenth above the minimum: arrivals come in whole seconds here, so exactly the
    // minimum fills each window only at the instant it closes.
    let rate = limits.min_frame_bytes_per_sec as usize * 11 / 10;
    let mut pair = synced_pair(limits.clone());
    // Five times the frame timeout's worth.
    let frame = frame_of_len(rate * 5 * (limits.frame_timeout_ms as usize / 1000));
    let mut now = pair.now;
    for second in frame.chunks(rate) {
        pair.inject(Side::A, second)
            .expect("bytes at the minimum rate are accepted");
        now += 1_000;
        tick(&mut pair, now);
        assert!(
            !pair.a.session.is_closed(),
            "closed a frame arriving at the minimum rate"
        );
    }
    // The frame completed (a garbage sync message is refused per document, not fatal) and
    // the session is still open, with no frame deadline pending.
    assert!(!pair.a.session.is_closed());
    tick(&mut pair, now + 10 * limits.frame_timeout_ms);
    assert!(!pair.a.session.is_closed());
}

#[test]
fn a_stalled_partial_frame_times_out_even_with_no_more_bytes() {
    let limits = Limits {
        frame_timeout_ms: 2_000,
        ..Limits::default()
    };
    let mut pair = synced_pair(limits);
    let start = pair.now;
    let frame = frame_of_len(200);
    pair.inject(Side::A, &frame[..3])
        .expect("a partial frame is no error yet");
    assert_eq!(pair.a.session.poll_timeout(), Some(start + 2_000));
    tick(&mut pair, start + 1_999);
    assert!(!pair.a.session.is_closed());
    tick(&mut pair, start + 2_000);
    assert!(pair.a.session.is_closed());
    assert!(closed_by_frame_timeout(&mut pair));
}

#[test]
fn a_burst_does_not_buy_time_for_trickling_afterwards() {
    let limits = Limits::default();
    let timeout = limits.frame_timeout_ms;
    let mut pair = synced_pair(limits);
    let frame = frame_of_len(2 * 1024 * 1024);
    // 1 MiB at once: at 1 KiB/s that is a thousand seconds' worth, but it only opens a new
    // window; the trickle after it must keep up in that window.
    pair.inject(Side::A, &frame[..1024 * 1024])
        .expect("a partial frame is no error yet");
    trickle_until_closed(&mut pair, &frame, 1024 * 1024, 2_000, timeout);
}
