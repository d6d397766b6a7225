//! The QUIC endpoint of a node: one UDP socket that both accepts and initiates connections,
//! with mutual TLS from [`crate::tls`].
//!
//! Accepting runs in a background task (one small task per incoming handshake, at most
//! [`MAX_PENDING_HANDSHAKES`] at a time), so a slow or silent peer never holds up others;
//! [`NetEndpoint::accept`] hands out the results in arrival order.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, EndpointConfig, IdleTimeout, TransportConfig, VarInt};
use rustls_pki_types::CertificateDer;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::identity::{CertError, DeviceIdentity, identity_from_cert};
use crate::link::PeerLink;
use crate::revocation::RevocationList;
use crate::tls::{SERVER_NAME, TlsError, client_config, server_config};

/// Keep-alive interval: keeps NAT bindings and Wi-Fi power saving from dropping a quiet link.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A link with no packets for this long is dead (patchy links recover within it).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an accepted connection may take to open its stream (send its first bytes).
pub const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Most incoming handshakes in progress at once; more wait in quinn's queue.
pub const MAX_PENDING_HANDSHAKES: usize = 32;
/// Accepted links waiting for [`NetEndpoint::accept`].
const ACCEPT_QUEUE: usize = 16;
/// Application close code when the endpoint shuts down.
const CLOSE_SHUTDOWN: u32 = 0;

/// Everything a node needs to take part: the street's trust root, its own certificate and
/// key, and the identity the certificate carries.
#[derive(Clone)]
pub struct NodeCredentials {
    /// The street CA certificate (DER): the only trust root.
    pub ca_cert_der: Vec<u8>,
    /// This node's certificate (DER).
    pub cert_der: Vec<u8>,
    /// This node's private key (PKCS#8 DER).
    pub key_der: Vec<u8>,
    /// The identity in `cert_der`.
    pub identity: DeviceIdentity,
}

impl fmt::Debug for NodeCredentials {
    // The key never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCredentials")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl NodeCredentials {
    /// Credentials from a CA certificate and an issued identity.
    pub fn new(ca_cert_der: &[u8], issued: &crate::ca::IssuedIdentity) -> NodeCredentials {
        NodeCredentials {
            ca_cert_der: ca_cert_der.to_vec(),
            cert_der: issued.cert_der.clone(),
            key_der: issued.key_der.clone(),
            identity: issued.identity.clone(),
        }
    }
}

/// Why a network operation failed. Refusals by certificate carry the verifier's reason
/// (see [`crate::tls::TrustError`]) in their text, on the refusing and the refused side.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot bind udp socket: {0}")]
    Bind(std::io::Error),
    #[error("cannot read local address: {0}")]
    LocalAddr(std::io::Error),
    #[error("tls setup failed: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot start connection: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("handshake failed: {0}")]
    Handshake(quinn::ConnectionError),
    #[error("connection lost: {0}")]
    Connection(quinn::ConnectionError),
    #[error("send failed: {0}")]
    Write(quinn::WriteError),
    #[error("receive failed: {0}")]
    Read(quinn::ReadError),
    #[error("stream already finished")]
    StreamClosed,
    #[error("peer presented no certificate")]
    NoPeerCertificate,
    #[error("peer certificate carries no valid identity: {0}")]
    PeerIdentity(CertError),
    #[error("peer opened no stream within {0:?}")]
    StreamTimeout(Duration),
}

/// A node's QUIC endpoint (server and client on one socket).
pub struct NetEndpoint {
    endpoint: quinn::Endpoint,
    accepted: Mutex<mpsc::Receiver<Result<PeerLink, NetError>>>,
    accept_task: JoinHandle<()>,
    identity: DeviceIdentity,
}

impl fmt::Debug for NetEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetEndpoint")
            .field("node", &self.identity.node_id)
            .field("local_addr", &self.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Drop for NetEndpoint {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// The key behind QUIC stateless resets, derived from the node's private key so that it
/// survives a restart. A peer still holding a connection to this node's previous run then
/// gets a stateless reset on its next packet and reconnects at once, instead of waiting for
/// the idle timeout.
fn stateless_reset_key(node_key_der: &[u8]) -> Arc<ring::hmac::Key> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"gridsync quic stateless reset key v1");
    context.update(node_key_der);
    let secret = context.finish();
    Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        secret.as_ref(),
    ))
}

fn transport_config() -> TransportConfig {
    let mut transport = TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    // IDLE_TIMEOUT is 30 s, far below the VarInt millisecond bound.
    transport.max_idle_timeout(IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    // One bidirectional stream per connection, opened by the client.
    transport.max_concurrent_bidi_streams(VarInt::from_u32(1));
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    transport.datagram_receive_buffer_size(None);
    transport
}

impl NetEndpoint {
    /// Binds a UDP socket at `addr` (port 0 picks one) on the current tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        creds: &NodeCredentials,
        revocations: RevocationList,
    ) -> Result<NetEndpoint, NetError> {
        let socket = std::net::UdpSocket::bind(addr).map_err(NetError::Bind)?;
        let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
        let socket = runtime.wrap_udp_socket(socket).map_err(NetError::Bind)?;
        NetEndpoint::with_socket(socket, runtime, creds, revocations, None)
    }

    /// Builds the endpoint on any socket and runtime (the turmoil adapter uses this).
    /// A `rng_seed` makes quinn's randomness (connection ids, tokens) reproducible.
    pub fn with_socket(
        socket: Arc<dyn quinn::AsyncUdpSocket>,
        runtime: Arc<dyn quinn::Runtime>,
        creds: &NodeCredentials,
        revocations: RevocationList,
        rng_seed: Option<[u8; 32]>,
    ) -> Result<NetEndpoint, NetError> {
        let transport = Arc::new(transport_config());
        let server_tls = server_config(creds, revocations.clone())?;
        let server_quic =
            QuicServerConfig::try_from(server_tls).map_err(|_| TlsError::NoInitialCipherSuite)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_quic));
        server.transport_config(transport.clone());

        let client_tls = client_config(creds, revocations)?;
        let client_quic =
            QuicClientConfig::try_from(client_tls).map_err(|_| TlsError::NoInitialCipherSuite)?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_quic));
        client.transport_config(transport);

        let mut endpoint_config = EndpointConfig::new(stateless_reset_key(&creds.key_der));
        endpoint_config.rng_seed(rng_seed);
        let mut endpoint = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config,
            Some(server),
            socket,
            runtime,
        )
        .map_err(NetError::Bind)?;
        endpoint.set_default_client_config(client);

        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let accept_task = tokio::spawn(accept_loop(endpoint.clone(), tx));
        Ok(NetEndpoint {
            endpoint,
            accepted: Mutex::new(rx),
            accept_task,
            identity: creds.identity.clone(),
        })
    }

    /// The bound address (with the real port if bound to port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.endpoint.local_addr().map_err(NetError::LocalAddr)
    }

    /// This node's own identity.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// Connects to the node at `addr` and opens the link's stream. Success means the server's
    /// certificate passed our checks, not that the server accepted ours: see [`PeerLink`]
    /// for the acceptance rule. The stream becomes visible to the server with the first
    /// bytes we send (our hello).
    pub async fn connect(&self, addr: SocketAddr) -> Result<PeerLink, NetError> {
        let conn = self
            .endpoint
            .connect(addr, SERVER_NAME)?
            .await
            .map_err(NetError::Handshake)?;
        let peer = peer_identity(&conn)?;
        let (send, recv) = conn.open_bi().await.map_err(NetError::Connection)?;
        tracing::debug!(peer = %peer.node_id, %addr, "connected");
        Ok(PeerLink::new(conn, send, recv, peer))
    }

    /// The next incoming link, or a refused handshake with its reason; `None` once the
    /// endpoint is closed. Cancel-safe.
    pub async fn accept(&self) -> Option<Result<PeerLink, NetError>> {
        self.accepted.lock().await.recv().await
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"node shutting down");
    }

    /// Waits until every connection is closed and its close was sent.
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

/// The peer's identity from its verified certificate.
fn peer_identity(conn: &Connection) -> Result<DeviceIdentity, NetError> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(NetError::NoPeerCertificate)?;
    let leaf = certs.first().ok_or(NetError::NoPeerCertificate)?;
    identity_from_cert(leaf).map_err(NetError::PeerIdentity)
}

async fn accept_loop(endpoint: quinn::Endpoint, tx: mpsc::Sender<Result<PeerLink, NetError>>) {
    let handshakes = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            break; // The semaphore is never closed; this only guards the type.
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = accept_one(incoming).await;
            if let Err(e) = &result {
                tracing::info!(error = %e, "incoming connection refused or failed");
            }
            drop(permit);
            // The receiver is gone only when the endpoint was dropped: drop the link then.
            let _ = tx.send(result).await;
        });
    }
}

async fn accept_one(incoming: quinn::Incoming) -> Result<PeerLink, NetError> {
    let remote = incoming.remote_address();
    let conn = incoming.await.map_err(NetError::Handshake)?;
    let peer = peer_identity(&conn)?;
    let (send, recv) = match tokio::time::timeout(STREAM_OPEN_TIMEOUT, conn.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => return Err(NetError::Connection(e)),
        Err(_) => {
            conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"no stream opened");
            return Err(NetError::StreamTimeout(STREAM_OPEN_TIMEOUT));
        }
    };
    tracing::debug!(peer = %peer.node_id, %remote, "accepted");
    Ok(PeerLink::new(conn, send, recv, peer))
}
