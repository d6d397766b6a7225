//! A link to one verified peer: one QUIC connection carrying one bidirectional stream of
//! bytes. Framing is the protocol engine's business; a link only moves bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quinn::{Connection, RecvStream, SendStream, VarInt};

use crate::endpoint::NetError;
use crate::identity::DeviceIdentity;

/// Largest chunk [`LinkReceiver::recv`] returns, so one read never allocates more.
pub const MAX_RECV_CHUNK: usize = 64 * 1024;

/// Application close code for an orderly close (the reason text says why).
const CLOSE_NORMAL: u32 = 0;

/// Byte and round-trip counters of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Stream payload bytes handed to [`LinkSender::send`].
    pub bytes_sent: u64,
    /// Stream payload bytes returned by [`LinkReceiver::recv`].
    pub bytes_received: u64,
    /// UDP payload bytes sent on the connection, QUIC and TLS overhead included.
    pub udp_bytes_sent: u64,
    /// UDP payload bytes received on the connection, overhead included.
    pub udp_bytes_received: u64,
    /// Current smoothed round-trip time estimate.
    pub rtt: Duration,
}

#[derive(Debug, Default)]
struct PayloadCounters {
    sent: AtomicU64,
    received: AtomicU64,
}

fn stats_of(conn: &Connection, counters: &PayloadCounters) -> LinkStats {
    let quic = conn.stats();
    LinkStats {
        bytes_sent: counters.sent.load(Ordering::Relaxed),
        bytes_received: counters.received.load(Ordering::Relaxed),
        udp_bytes_sent: quic.udp_tx.bytes,
        udp_bytes_received: quic.udp_rx.bytes,
        rtt: conn.rtt(),
    }
}

/// A connection to a peer whose certificate passed verification.
///
/// Acceptance rule: a verified certificate is not yet an accepted link. With TLS 1.3 the
/// client finishes its handshake before the server has judged the client's certificate, so
/// a server's refusal shows up on the client only as an error on the first `send`/`recv`
/// (carrying the server's reason). The node treats a link as accepted only once the peer's
/// protocol hello has arrived and been checked against [`PeerLink::peer`].
#[derive(Debug)]
pub struct PeerLink {
    /// The peer's identity, parsed from its verified certificate.
    pub peer: DeviceIdentity,
    /// The peer's UDP address.
    pub remote: SocketAddr,
    sender: LinkSender,
    receiver: LinkReceiver,
}

impl PeerLink {
    pub(crate) fn new(
        conn: Connection,
        send: SendStream,
        recv: RecvStream,
        peer: DeviceIdentity,
    ) -> PeerLink {
        let counters = Arc::new(PayloadCounters::default());
        PeerLink {
            peer,
            remote: conn.remote_address(),
            sender: LinkSender {
                conn: conn.clone(),
                stream: send,
                counters: counters.clone(),
            },
            receiver: LinkReceiver {
                conn,
                stream: recv,
                counters,
            },
        }
    }

    /// Sends bytes on the link's stream. See [`LinkSender::send`].
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        self.sender.send(bytes).await
    }

    /// Receives the next chunk. See [`LinkReceiver::recv`].
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        self.receiver.recv().await
    }

    /// Ends our direction of the stream. See [`LinkSender::finish`].
    pub fn finish(&mut self) -> Result<(), NetError> {
        self.sender.finish()
    }

    /// Closes the connection at once, telling the peer `reason`.
    pub fn close(&self, reason: &str) {
        self.sender.close(reason);
    }

    /// Counters of the link.
    pub fn stats(&self) -> LinkStats {
        self.sender.stats()
    }

    /// Splits the link into halves that two tasks can own (one sending, one receiving).
    pub fn split(self) -> (LinkSender, LinkReceiver) {
        (self.sender, self.receiver)
    }
}

/// The sending half of a [`PeerLink`].
#[derive(Debug)]
pub struct LinkSender {
    conn: Connection,
    stream: SendStream,
    counters: Arc<PayloadCounters>,
}

impl LinkSender {
    /// Writes all of `bytes` to the stream. It returns once QUIC buffered them, not once the
    /// peer received them. Not cancel-safe: if dropped midway, part of `bytes` may have been
    /// sent, so the session must then be torn down.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        self.stream.write_all(bytes).await.map_err(|e| match e {
            // Surface the connection's close reason (a refusal's text lives there).
            quinn::WriteError::ConnectionLost(lost) => NetError::Connection(lost),
            other => NetError::Write(other),
        })?;
        self.counters
            .sent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Ends our direction of the stream; the peer's `recv` then returns `None` after the
    /// data sent so far.
    pub fn finish(&mut self) -> Result<(), NetError> {
        self.stream.finish().map_err(|_| NetError::StreamClosed)
    }

    /// Closes the whole connection at once, telling the peer `reason`.
    pub fn close(&self, reason: &str) {
        self.conn
            .close(VarInt::from_u32(CLOSE_NORMAL), reason.as_bytes());
    }

    /// Counters of the link (shared with the receiving half).
    pub fn stats(&self) -> LinkStats {
        stats_of(&self.conn, &self.counters)
    }
}

/// The receiving half of a [`PeerLink`].
#[derive(Debug)]
pub struct LinkReceiver {
    conn: Connection,
    stream: RecvStream,
    counters: Arc<PayloadCounters>,
}

impl LinkReceiver {
    /// Returns the next chunk of at most [`MAX_RECV_CHUNK`] bytes, or `None` once the peer
    /// finished its direction of the stream. Chunk boundaries are not message boundaries.
    /// Cancel-safe: it can sit in a `tokio::select!` branch without losing data.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        match self.stream.read_chunk(MAX_RECV_CHUNK, true).await {
            Ok(Some(chunk)) => {
                self.counters
                    .received
                    .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
                Ok(Some(chunk.bytes.to_vec()))
            }
            Ok(None) => Ok(None),
            // Surface the connection's close reason (a refusal's text lives there).
            Err(quinn::ReadError::ConnectionLost(lost)) => Err(NetError::Connection(lost)),
            Err(e) => Err(NetError::Read(e)),
        }
    }

    /// Waits until the connection is closed, and says why.
    pub async fn closed(&self) -> NetError {
        NetError::Connection(self.conn.closed().await)
    }

    /// Counters of the link (shared with the sending half).
    pub fn stats(&self) -> LinkStats {
        stats_of(&self.conn, &self.counters)
    }
}
