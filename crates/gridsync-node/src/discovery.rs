//! LAN discovery: advertise this node by mDNS and dial nodes of the same street found there.
//!
//! Both sides of a pair see each other; only the one with the smaller node id dials, so a
//! pair ends up with one connection rather than two.

use std::net::SocketAddr;
use std::sync::Arc;

use gridsync_net::{Discovery, NetEndpoint};
use tracing::{info, warn};

use crate::dialer::dial_loop;
use crate::peers::FoundBy;
use crate::shared::NodeShared;

pub(crate) async fn discover_and_dial(
    shared: Arc<NodeShared>,
    endpoint: Arc<NetEndpoint>,
    port: u16,
) {
    let street = shared.lock_replica().street().to_owned();
    if !gridsync_net::discovery::has_multicast_interface() {
        // Not fatal: an interface may come up later (Wi-Fi turned on), and mDNS then works.
        warn!(
            "no network interface besides loopback is up with multicast: LAN peers cannot be \
             found by mDNS until one is (configured peers are still dialed)"
        );
    }
    let mut discovery = match Discovery::start(&street, &shared.identity.node_id, port) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "mDNS unavailable; only configured peers will be dialed");
            return;
        }
    };
    let mut shutdown = shared.shutdown.clone();
    let mut dialing = std::collections::BTreeSet::new();
    // Dialers end at shutdown; keeping them here lets the node's shutdown wait for them.
    let mut dialers = tokio::task::JoinSet::new();
    loop {
        let found = tokio::select! {
            found = discovery.next() => found,
            _ = shutdown.changed() => break,
        };
        let Some(peer) = found else { break };
        if peer.node_id <= shared.identity.node_id || !dialing.insert(peer.node_id.clone()) {
            continue;
        }
        let Some(ip) = peer
            .addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(peer.addrs.first())
        else {
            continue;
        };
        let addr = SocketAddr::new(*ip, peer.port);
        info!(node = %peer.node_id, %addr, "found a peer on the LAN");
        dialers.spawn(dial_loop(
            shared.clone(),
            endpoint.clone(),
            addr,
            FoundBy::Mdns,
        ));
    }
    discovery.shutdown();
    while dialers.join_next().await.is_some() {}
}
