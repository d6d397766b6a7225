//! The session's clock. A node times its sessions by a monotonic clock counted from process
//! start, so its first session starts at `now = 0`; the engine must behave exactly as it
//! does on any other origin (a wall-clock-like one included): no time is a sentinel, and
//! every timer is relative to the inputs' own `now`.

use gridsync_proto::{CloseReason, Limits, Role, SessionError, SessionEvent};

use gridsync_proto::testing::{Identity, MemoryDocs, Pair, Side, node_id};

/// A clock origin like unix milliseconds, for comparison with one starting at 0.
const WALL_CLOCK_LIKE: u64 = 1_764_000_000_000;

/// Two captains with overlapping documents, each side holding changes the other lacks, a
/// small in-flight cap (so documents wait, and deferred work is resumed through
/// `poll_timeout`), synced, then a live change pushed after the inventory.
fn synced_with_a_live_change(start: u64) -> Pair {
    let a_id = Identity::new("cap-a", Role::Captain, &["write:s/g1"]);
    let b_id = Identity::new("cap-b", Role::Captain, &["write:s/g1"]);
    let mut a = MemoryDocs::new(&node_id("cap-a"));
    let mut b = MemoryDocs::new(&node_id("cap-b"));
    // Fixed change times, so both runs exchange identical bytes.
    for i in 0..12 {
        a.write_at(&format!("s/g1/bldg-{i:02}"), "from-a", "1", 1_000 + i);
    }
    for i in 6..18 {
        b.write_at(&format!("s/g1/bldg-{i:02}"), "from-b", "2", 2_000 + i);
    }
    let limits = Limits {
        max_docs_in_flight: 2,
        ..Limits::default()
    };
    let mut pair = Pair::with_limits_at((a_id, a), (b_id, b), limits, start);
    pair.drive();
    pair.a.docs.write_at("s/g1/bldg-03", "late", "news", 3_000);
    pair.local_change(Side::A, "s/g1/bldg-03");
    pair.drive();
    pair
}

#[test]
fn sessions_whose_clock_starts_at_zero_converge_and_report_up_to_date() {
    let pair = synced_with_a_live_change(0);
    assert!(pair.a.error.is_none() && pair.b.error.is_none());
    for i in 0..18 {
        let p = format!("s/g1/bldg-{i:02}");
        assert_eq!(pair.a.docs.heads_of(&p), pair.b.docs.heads_of(&p), "{p}");
    }
    assert_eq!(
        pair.b.docs.get("s/g1/bldg-03", "late").as_deref(),
        Some("news")
    );
    for node in [&pair.a, &pair.b] {
        assert_eq!(node.session.docs_in_flight(), 0);
        // The live change re-opened the session's work; it settled again after it.
        assert_eq!(node.events.last(), Some(&SessionEvent::UpToDate));
    }
}

#[test]
fn the_clock_origin_changes_nothing_the_sessions_do() {
    let at_zero = synced_with_a_live_change(0);
    let at_wall = synced_with_a_live_change(WALL_CLOCK_LIKE);
    // Same bytes each way, same events, and the same virtual time taken.
    assert_eq!(at_zero.a.sent, at_wall.a.sent);
    assert_eq!(at_zero.b.sent, at_wall.b.sent);
    assert_eq!(at_zero.a.events, at_wall.a.events);
    assert_eq!(at_zero.b.events, at_wall.b.events);
    assert_eq!(at_zero.now, at_wall.now - WALL_CLOCK_LIKE);
    // Timers left armed (if any) are at the same offset from the origin.
    for (zero, wall) in [
        (&at_zero.a.session, &at_wall.a.session),
        (&at_zero.b.session, &at_wall.b.session),
    ] {
        assert_eq!(
            zero.poll_timeout(),
            wall.poll_timeout().map(|t| t - WALL_CLOCK_LIKE)
        );
    }
}

#[test]
fn a_silent_peer_times_out_idle_timeout_after_a_start_at_zero() {
    let a_id = Identity::new("cap-a", Role::Captain, &["write:s/g1"]);
    let b_id = Identity::new("cap-b", Role::Captain, &["write:s/g1"]);
    let limits = Limits::default();
    let idle = limits.idle_timeout_ms;
    let mut pair = Pair::with_limits_at(
        (a_id, MemoryDocs::new(&node_id("cap-a"))),
        (b_id, MemoryDocs::new(&node_id("cap-b"))),
        limits,
        0,
    );
    // No hello ever arrives: the deadline is the idle timeout counted from 0, not 0 itself
    // (which a driver would take as "due now").
    assert_eq!(pair.a.session.poll_timeout(), Some(idle));
    let mut docs = pair.a.docs.clone();
    pair.a.session.handle_timeout(0, &mut docs);
    pair.a.session.handle_timeout(idle - 1, &mut docs);
    assert!(!pair.a.session.is_closed());
    pair.a.session.handle_timeout(idle, &mut docs);
    assert!(pair.a.session.is_closed());
    assert_eq!(
        pair.a.session.close_error(),
        Some(SessionError::Timeout(idle))
    );
    let mut closed = false;
    while let Some(event) = pair.a.session.poll_event() {
        closed |= matches!(
            event,
            SessionEvent::Closed {
                reason: CloseReason::Error(SessionError::Timeout(_))
            }
        );
    }
    assert!(closed);
}
