//! Finding nodes on the local network by mDNS (DNS-SD), so that a volunteer's device finds
//! its building captain without anyone typing an address.
//!
//! Each node advertises `_gridsync._udp.local.` under its node id, with TXT records
//! `v=1`, `street=<street>`, `node=<node id>` and `port=<udp port>`, and browses for the same
//! type. Announcements of other streets, of itself, or with missing or malformed records are
//! ignored. Discovery is only a hint: whatever it finds still has to pass mutual TLS.

use std::collections::HashMap;
use std::net::IpAddr;

use gridsync_proto::NodeId;
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};

/// The DNS-SD service type of gridsync nodes.
pub const SERVICE_TYPE: &str = "_gridsync._udp.local.";
/// TXT format version.
const TXT_VERSION: &str = "1";
/// Most addresses kept per discovered peer.
const MAX_ADDRS: usize = 8;

/// A node found on the local network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredPeer {
    /// The node id it announces (to be confirmed by its certificate).
    pub node_id: NodeId,
    /// Its addresses, sorted.
    pub addrs: Vec<IpAddr>,
    /// Its QUIC (UDP) port.
    pub port: u16,
}

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("mdns failed: {0}")]
    Mdns(#[from] mdns_sd::Error),
}

/// A running advertisement and browse.
pub struct Discovery {
    daemon: ServiceDaemon,
    events: mdns_sd::Receiver<ServiceEvent>,
    street: String,
    own_node: NodeId,
}

/// Whether some network interface other than loopback is up and multicast-capable (from
/// `/sys/class/net`): mDNS cannot find anyone without one, as in a bare network namespace or
/// on a phone with Wi-Fi off. `false` where `/sys` cannot be read.
pub fn has_multicast_interface() -> bool {
    const IFF_UP: u32 = 0x1;
    const IFF_LOOPBACK: u32 = 0x8;
    const IFF_MULTICAST: u32 = 0x1000;
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let flags = std::fs::read_to_string(entry.path().join("flags")).unwrap_or_default();
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        flags & IFF_UP != 0 && flags & IFF_LOOPBACK == 0 && flags & IFF_MULTICAST != 0
    })
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("street", &self.street)
            .field("own_node", &self.own_node)
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Starts advertising this node (`node_id` of `street`, QUIC on `port`) on every
    /// interface, and browsing for others.
    pub fn start(street: &str, node_id: &NodeId, port: u16) -> Result<Discovery, DiscoveryError> {
        let daemon = ServiceDaemon::new()?;
        let properties: HashMap<String, String> = [
            ("v", TXT_VERSION.to_owned()),
            ("street", street.to_owned()),
            ("node", node_id.to_string()),
            ("port", port.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let host = format!("{node_id}.local.");
        let info = ServiceInfo::new(SERVICE_TYPE, node_id.as_str(), &host, "", port, properties)?
            .enable_addr_auto();
        daemon.register(info)?;
        let events = daemon.browse(SERVICE_TYPE)?;
        Ok(Discovery {
            daemon,
            events,
            street: street.to_owned(),
            own_node: node_id.clone(),
        })
    }

    /// The next peer of our street announced on the network (the same peer may come again
    /// when it re-announces or its addresses change). `None` once discovery stopped.
    /// Cancel-safe.
    pub async fn next(&mut self) -> Option<DiscoveredPeer> {
        loop {
            let event = self.events.recv_async().await.ok()?;
            let ServiceEvent::ServiceResolved(service) = event else {
                continue;
            };
            let txt = &service.txt_properties;
            let announcement = Announcement {
                version: txt.get_property_val_str("v"),
                street: txt.get_property_val_str("street"),
                node: txt.get_property_val_str("node"),
                addrs: service.addresses.iter().map(|a| a.to_ip_addr()).collect(),
                port: service.port,
            };
            if let Some(peer) = announcement.peer_for(&self.street, &self.own_node) {
                return Some(peer);
            }
        }
    }

    /// Withdraws the advertisement and stops the mDNS daemon.
    pub fn shutdown(self) {
        // A failed shutdown means the daemon thread is already gone: nothing left to stop.
        let _ = self.daemon.shutdown();
    }
}

/// What one resolved mDNS service says, before we decide whether it is a peer of ours.
#[derive(Debug, Clone)]
struct Announcement<'a> {
    version: Option<&'a str>,
    street: Option<&'a str>,
    node: Option<&'a str>,
    addrs: Vec<IpAddr>,
    port: u16,
}

impl Announcement<'_> {
    /// The peer, if this is a well-formed announcement of another node of `street`.
    fn peer_for(&self, street: &str, own_node: &NodeId) -> Option<DiscoveredPeer> {
        if self.version != Some(TXT_VERSION) || self.street != Some(street) || self.port == 0 {
            return None;
        }
        let node_id = NodeId::parse(self.node?).ok()?;
        if &node_id == own_node {
            return None;
        }
        let mut addrs: Vec<IpAddr> = self
            .addrs
            .iter()
            .copied()
            .filter(|a| !a.is_unspecified() && !a.is_multicast())
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs.truncate(MAX_ADDRS);
        if addrs.is_empty() {
            return None;
        }
        Some(DiscoveredPeer {
            node_id,
            addrs,
            port: self.port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(s: &str) -> NodeId {
        NodeId::parse(s).expect("valid node id")
    }

    fn announcement<'a>(street: &'a str, node: &'a str) -> Announcement<'a> {
        Announcement {
            version: Some("1"),
            street: Some(street),
            node: Some(node),
            addrs: vec![
                "192.168.1.20".parse().expect("ip"),
                "::1".parse().expect("ip"),
            ],
            port: 7420,
        }
    }

    #[test]
    fn a_peer_of_our_street_is_reported() {
        let peer = announcement("panhuo", "cap-3")
            .peer_for("panhuo", &node("vol-1"))
            .expect("peer");
        assert_eq!(peer.node_id, node("cap-3"));
        assert_eq!(peer.port, 7420);
        assert_eq!(peer.addrs.len(), 2);
    }

    #[test]
    fn others_self_and_malformed_announcements_are_ignored() {
        let own = node("vol-1");
        assert!(
            announcement("linhai", "cap-3")
                .peer_for("panhuo", &own)
                .is_none()
        );
        assert!(
            announcement("panhuo", "vol-1")
                .peer_for("panhuo", &own)
                .is_none()
        );
        assert!(
            announcement("panhuo", "Not A Node")
                .peer_for("panhuo", &own)
                .is_none()
        );
        let mut a = announcement("panhuo", "cap-3");
        a.version = Some("2");
        assert!(a.peer_for("panhuo", &own).is_none());
        let mut a = announcement("panhuo", "cap-3");
        a.node = None;
        assert!(a.peer_for("panhuo", &own).is_none());
        let mut a = announcement("panhuo", "cap-3");
        a.port = 0;
        assert!(a.peer_for("panhuo", &own).is_none());
        let mut a = announcement("panhuo", "cap-3");
        a.addrs = vec!["0.0.0.0".parse().expect("ip")];
        assert!(a.peer_for("panhuo", &own).is_none());
    }

    #[test]
    fn addresses_are_bounded_sorted_and_deduplicated() {
        let mut a = announcement("panhuo", "cap-3");
        a.addrs = (0..20u8)
            .rev()
            .map(|i| IpAddr::from([10, 0, 0, i]))
            .chain([IpAddr::from([10, 0, 0, 1])])
            .collect();
        let peer = a.peer_for("panhuo", &node("vol-1")).expect("peer");
        assert_eq!(peer.addrs.len(), MAX_ADDRS);
        assert!(peer.addrs.windows(2).all(|w| w[0] < w[1]));
    }
}
