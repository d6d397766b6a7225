//! A counting UDP relay on loopback: a node dials the relay instead of its peer, and the relay
//! forwards every datagram both ways and counts the bytes. That is the wire as the network
//! sees it (QUIC headers, TLS handshake, acknowledgements and retransmissions included),
//! which neither node can report from inside its own protocol.
//!
//! One client at a time: datagrams from the upstream peer go to the address that last sent
//! through the relay (a restarted client on a new port simply takes over).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Largest datagram forwarded (QUIC datagrams are far smaller).
const MAX_DATAGRAM: usize = 65_536;

/// Bytes and datagrams the relay forwarded in each direction.
#[derive(Debug, Default)]
struct Counters {
    to_upstream_bytes: AtomicU64,
    from_upstream_bytes: AtomicU64,
    datagrams: AtomicU64,
}

/// A running relay; dropping it stops forwarding.
pub struct CountingRelay {
    /// Where clients send to reach the upstream peer.
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

/// What crossed the relay so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayTotals {
    /// UDP payload bytes from the client to the upstream peer.
    pub to_upstream: u64,
    /// UDP payload bytes from the upstream peer to the client.
    pub from_upstream: u64,
    /// Datagrams forwarded either way.
    pub datagrams: u64,
}

impl RelayTotals {
    /// Bytes both ways.
    pub fn total(&self) -> u64 {
        self.to_upstream + self.from_upstream
    }
}

impl CountingRelay {
    /// Starts relaying to `upstream` from a fresh loopback port. Must run inside a tokio
    /// runtime.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<CountingRelay> {
        let front = UdpSocket::bind("127.0.0.1:0")
            .await
            .context("cannot bind the relay's client side")?;
        let back = UdpSocket::bind("127.0.0.1:0")
            .await
            .context("cannot bind the relay's upstream side")?;
        back.connect(upstream)
            .await
            .context("cannot aim the relay at its upstream")?;
        let addr = front.local_addr().context("relay address")?;
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(forward(front, back, counters.clone()));
        Ok(CountingRelay {
            addr,
            counters,
            task,
        })
    }

    /// Totals so far.
    pub fn totals(&self) -> RelayTotals {
        RelayTotals {
            to_upstream: self.counters.to_upstream_bytes.load(Ordering::Relaxed),
            from_upstream: self.counters.from_upstream_bytes.load(Ordering::Relaxed),
            datagrams: self.counters.datagrams.load(Ordering::Relaxed),
        }
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards datagrams until a socket fails. A failed send is a lost datagram, which QUIC
/// recovers from, so it does not stop the relay.
async fn forward(front: UdpSocket, back: UdpSocket, counters: Arc<Counters>) {
    let mut client: Option<SocketAddr> = None;
    let mut from_client = vec![0u8; MAX_DATAGRAM];
    let mut from_upstream = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            received = front.recv_from(&mut from_client) => {
                let Ok((len, sender)) = received else { return };
                client = Some(sender);
                counters.to_upstream_bytes.fetch_add(len as u64, Ordering::Relaxed);
                counters.datagrams.fetch_add(1, Ordering::Relaxed);
                let _ = back.send(&from_client[..len]).await;
            }
            received = back.recv(&mut from_upstream) => {
                let Ok(len) = received else { return };
                let Some(client) = client else { continue };
                counters.from_upstream_bytes.fetch_add(len as u64, Ordering::Relaxed);
                counters.datagrams.fetch_add(1, Ordering::Relaxed);
                let _ = front.send_to(&from_upstream[..len], client).await;
            }
        }
    }
}
