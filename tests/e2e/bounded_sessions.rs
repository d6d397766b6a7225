//! Bounded sessions: one enrolled certificate opening 200 connections that each begin a
//! frame and trickle it, against a real office process. Its memory stays bounded, links
//! past the per-peer cap are refused, the trickling ones are closed by the partial-frame
//! timeout, and an honest volunteer's record keeps syncing meanwhile.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gridsync_net::{Invite, NetEndpoint, RevocationList};
use gridsync_proto::frame::{Frame, Hello, PROTOCOL_VERSION, encode_frame};
use gridsync_proto::{NodeId, Role};

use crate::node_support::{
    NodeProcess, Street, add_visit, await_plan, count_lines, ids, status, visit_ids, wait_until,
};

const CONNECTIONS: usize = 200;
const PER_PEER_CAP: usize = 4;
/// The office's partial-frame timeout for this test (the default is 30 s).
const FRAME_TIMEOUT: Duration = Duration::from_secs(3);
/// Slack on top of the timeout for a close to reach a client: 200 handshakes and 25 MB of
/// bursts on a shared 2-core machine delay the office's timers and its packets.
const CLOSE_SLACK: Duration = Duration::from_secs(10);
/// Bytes of the begun frame sent at once on each connection: without a per-peer cap, 200
/// connections would hold 200 of these (25 MB) in the office's decoders. Kept this small so
/// that the flood does not starve the other end-to-end tests running beside it on loopback.
const PREFIX: usize = 128 * 1024;
/// The frame each connection announces (never completed).
const ANNOUNCED: u32 = 30 * 1024 * 1024;
/// How much the office's resident memory may grow during the attack: well under what 200
/// held prefixes would take.
const RSS_GROWTH_LIMIT_KIB: u64 = 16 * 1024;

/// How one trickling connection ended, as its client saw it.
#[derive(Debug)]
enum Ended {
    /// The office closed it; the close reason (as the client's error text) and when,
    /// counted from the first bytes sent.
    Closed { reason: String, after: Duration },
    /// Still open when the client gave up.
    StillOpen,
}

/// The office's resident set size, in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Connects, sends `hello` and the first [`PREFIX`] bytes of a frame announcing
/// [`ANNOUNCED`] bytes, then one more byte every 500 ms until the office closes the link.
async fn trickle(endpoint: Arc<NetEndpoint>, office: SocketAddr, hello: Vec<u8>) -> Ended {
    let Ok(mut link) = endpoint.connect(office).await else {
        return Ended::Closed {
            reason: "connect failed".into(),
            after: Duration::ZERO,
        };
    };
    let started = Instant::now();
    let mut begun = hello;
    begun.extend_from_slice(&ANNOUNCED.to_be_bytes());
    begun.push(3); // a doc-sync frame
    begun.resize(begun.len() + PREFIX, 0);
    // A send error means the office closed first; its reason follows on recv.
    let _ = link.send(&begun).await;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    // Past the client's own QUIC idle timeout (30 s after the last packet it received): a
    // client that missed the office's close, and every packet after it, ends on that timeout
    // (counted below) rather than racing this deadline.
    let give_up = tokio::time::sleep(Duration::from_secs(45));
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            received = link.recv() => match received {
                // The office's hello and inventory: read past them.
                Ok(Some(_)) => {}
                Ok(None) => return Ended::Closed { reason: "finished".into(), after: started.elapsed() },
                Err(e) => return Ended::Closed { reason: e.to_string(), after: started.elapsed() },
            },
            _ = tick.tick() => { let _ = link.send(&[0]).await; }
            _ = &mut give_up => return Ended::StillOpen,
        }
    }
}

#[test]
fn two_hundred_trickling_connections_from_one_certificate_are_bounded() {
    let street = Street::with_plan(&[
        ("vol-1", "panhuo/grid-001"),
        ("vol-2", "panhuo/grid-001"),
        ("vol-h", "panhuo/grid-001"),
    ]);
    let (v1, v2) = (street.device("vol-1"), street.device("vol-2"));
    let config = format!(
        "frame_timeout_ms = {}\nmax_connections_per_peer = {PER_PEER_CAP}\n",
        FRAME_TIMEOUT.as_millis()
    );
    let mut office_node = NodeProcess::start_with_config(&street.office, "office", &[], &config);
    let _n1 = NodeProcess::start(v1, "vol-1", &[office_node.addr]);
    let _n2 = NodeProcess::start(v2, "vol-2", &[office_node.addr]);
    await_plan(&[v1, v2], Duration::from_secs(10));
    let pid = office_node.pid().expect("the office runs");
    let rss_before = rss_kib(pid).expect("the office's VmRSS");

    // The hostile side holds a legitimately enrolled identity: it passes TLS.
    let invite = Invite::parse(&std::fs::read(street.invite_path("vol-h")).expect("invite"))
        .expect("valid invite");
    let creds = invite.credentials().expect("credentials");
    let hello = encode_frame(&Frame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        node_id: NodeId::parse("vol-h").expect("valid node id"),
        role: Role::Volunteer,
        scopes: creds.identity.scopes.clone(),
    }))
    .expect("a hello encodes");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let endpoint = Arc::new(
        runtime
            .block_on(async {
                NetEndpoint::bind(
                    SocketAddr::from(([127, 0, 0, 1], 0)),
                    &creds,
                    RevocationList::new(),
                )
            })
            .expect("bind the hostile endpoint"),
    );

    // Sample the office's memory all through the attack.
    let peak_rss = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak_rss.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some(rss) = rss_kib(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let attack = runtime.spawn({
        let endpoint = endpoint.clone();
        let office = office_node.addr;
        async move {
            let tasks: Vec<_> = (0..CONNECTIONS)
                .map(|_| tokio::spawn(trickle(endpoint.clone(), office, hello.clone())))
                .collect();
            let mut ended = Vec::new();
            for task in tasks {
                ended.push(task.await.unwrap_or(Ended::StillOpen));
            }
            ended
        }
    });

    // An honest volunteer keeps syncing while it lasts.
    std::thread::sleep(Duration::from_millis(300));
    let visit = add_visit(v1, "h-1");
    let synced_at = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || visit_ids(v2) == ids([&visit])
            && visit_ids(&street.office) == ids([&visit])),
        "an honest visit did not propagate during the attack"
    );
    let sync_took = synced_at.elapsed();
    let attack_still_on = !attack.is_finished();

    let ended = runtime.block_on(attack).expect("the attack task");
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("the sampler");
    let peak_growth = peak_rss.load(Ordering::Relaxed).saturating_sub(rss_before);

    let refused = |reason: &str| reason.contains("too many connections from this device");
    let timed_out = |reason: &str| reason.contains("left a frame incomplete");
    // Under this load loopback drops packets: a client can miss the office's close and
    // then get a stateless reset, which carries no reason. The office's log says why.
    let reset = |reason: &str| reason.contains("reset by peer");
    // Or miss the close and every packet after it, and give up on its own idle timeout.
    let gave_up = |reason: &str| reason.contains("timed out");
    let mut refused_count = 0;
    let mut timed_out_count = 0;
    let mut reset_count = 0;
    let mut gave_up_count = 0;
    for (i, end) in ended.iter().enumerate() {
        match end {
            Ended::Closed { reason, .. } if refused(reason) => refused_count += 1,
            Ended::Closed { reason, after } if reset(reason) => {
                reset_count += 1;
                assert!(
                    *after <= FRAME_TIMEOUT + CLOSE_SLACK,
                    "connection {i} reset only after {after:?}"
                );
            }
            Ended::Closed { reason, after } if timed_out(reason) => {
                timed_out_count += 1;
                // The burst opens one window; the trickle never fills it. Plus slack for
                // 200 handshakes on a shared machine.
                assert!(
                    *after <= FRAME_TIMEOUT + CLOSE_SLACK,
                    "connection {i} closed only after {after:?}"
                );
            }
            Ended::Closed { reason, .. } if gave_up(reason) => gave_up_count += 1,
            other => panic!("connection {i} ended neither refused nor timed out: {other:?}"),
        }
    }
    eprintln!(
        "{refused_count} refused, {timed_out_count} timed out, {reset_count} reset, \
         {gave_up_count} gave up; office RSS {rss_before} KiB, \
         peak growth {peak_growth} KiB; honest sync took {sync_took:?} (attack still on: \
         {attack_still_on})"
    );
    assert!(
        refused_count >= CONNECTIONS / 2,
        "only {refused_count} of {CONNECTIONS} refused by the per-peer cap"
    );
    assert!(
        timed_out_count >= 1,
        "no connection was closed by the partial-frame timeout"
    );
    assert!(
        peak_growth <= RSS_GROWTH_LIMIT_KIB,
        "the office grew by {peak_growth} KiB (limit {RSS_GROWTH_LIMIT_KIB} KiB)"
    );
    // Both sides logged why: the office per refused link.
    let log = office_node.log();
    assert!(
        count_lines(
            &log,
            &["vol-h", "refusing connection", "too many connections"]
        ) >= refused_count,
        "the office did not log every refusal"
    );
    assert!(
        count_lines(&log, &["vol-h", "left a frame incomplete"]) >= timed_out_count,
        "the office did not log the partial-frame timeouts"
    );
    // The office closed every hostile link itself, for one reason or the other, whatever
    // the client saw of it (reset, or nothing before its own idle timeout).
    let office_closed = count_lines(
        &log,
        &["vol-h", "refusing connection", "too many connections"],
    ) + count_lines(&log, &["vol-h", "left a frame incomplete"]);
    assert!(
        office_closed >= refused_count + timed_out_count + reset_count + gave_up_count,
        "the office logged {office_closed} closes for {} hostile links ({gave_up_count} clients \
         only gave up on their own)",
        refused_count + timed_out_count + reset_count + gave_up_count
    );
    assert!(office_node.is_running(), "the office died");
    runtime.block_on(async {
        endpoint.close();
        endpoint.wait_idle().await;
    });
    // Every hostile link is gone; only the two honest ones remain.
    assert!(
        wait_until(Duration::from_secs(10), || status(&street.office)["status"]
            ["limits"]["open_connections"]
            == 2),
        "open connections did not come back to the honest two: {}",
        status(&street.office)["status"]["limits"]
    );
}
