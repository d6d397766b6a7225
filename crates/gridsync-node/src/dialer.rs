//! A dialer: keeps a connection to one address up, with capped, jittered exponential
//! backoff between attempts. The node runs one per configured peer, discovery one per peer
//! found on the LAN.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gridsync_net::NetEndpoint;
use rand::Rng;
use tracing::warn;

use crate::connection;
use crate::peers::FoundBy;
use crate::shared::NodeShared;

/// Keeps a connection to `addr` up: dial, run the session, and on any end wait a capped,
/// jittered, exponentially growing delay before dialing again.
pub(crate) async fn dial_loop(
    shared: Arc<NodeShared>,
    endpoint: Arc<NetEndpoint>,
    addr: SocketAddr,
    found_by: FoundBy,
) {
    let mut shutdown = shared.shutdown.clone();
    let initial = shared.config.backoff_initial();
    let max = shared.config.backoff_max();
    let mut delay = initial;
    // Failures in a row; the first of a streak is a warning (a refused certificate must be
    // visible to the operator), repeats are debug so an absent peer does not flood the log.
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = tokio::time::Instant::now();
        // Biased (shutdown first) so that a simulated run is reproducible.
        let end = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            link = endpoint.connect(addr) => match link {
                Ok(link) => {
                    failures = 0;
                    Some(connection::drive(shared.clone(), link, found_by).await)
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        warn!(%addr, error = %e, "dial failed; retrying with backoff");
                    } else {
                        tracing::debug!(%addr, error = %e, failures, "dial failed again");
                    }
                    None
                }
            },
        };
        if matches!(end, Some(connection::ConnectionEnd::Shutdown)) {
            return;
        }
        // A connection that lasted a while was healthy: start over from the short delay.
        if started.elapsed() > Duration::from_secs(10) {
            delay = initial;
        }
        let jitter = shared
            .jitter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random_range(0.8..1.2);
        let wait = delay.mul_f64(jitter);
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        delay = (delay * 2).min(max);
    }
}
