//! quinn over turmoil's simulated UDP (feature `turmoil`): an [`AsyncUdpSocket`] for
//! `turmoil::net::UdpSocket`, so whole nodes run in a seeded network simulation with loss,
//! partitions and restarts. Use it with [`NetEndpoint::with_socket`], `quinn::TokioRuntime`
//! (turmoil's hosts run on paused tokio time, which that runtime's clock follows) and a
//! `rng_seed`, inside a turmoil host.
//!
//! Written against quinn 0.11's socket traits (0.12 changes them).
//!
//! [`NetEndpoint::with_socket`]: crate::NetEndpoint::with_socket

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

use crate::{NetEndpoint, NetError, NodeCredentials, RevocationList};

type Readable = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A turmoil UDP socket that quinn can drive.
pub struct TurmoilUdpSocket {
    socket: Arc<turmoil::net::UdpSocket>,
    /// The pending wait for the next datagram; kept across polls so its waker stays
    /// registered (turmoil only offers readiness as a future).
    readable: Mutex<Option<Readable>>,
}

impl fmt::Debug for TurmoilUdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurmoilUdpSocket")
            .field("local_addr", &self.socket.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl TurmoilUdpSocket {
    /// Wraps a socket bound inside a turmoil host.
    pub fn new(socket: turmoil::net::UdpSocket) -> TurmoilUdpSocket {
        TurmoilUdpSocket {
            socket: Arc::new(socket),
            readable: Mutex::new(None),
        }
    }
}

impl NetEndpoint {
    /// Binds a node's endpoint to turmoil's simulated UDP at `addr`; call inside a turmoil
    /// host. `rng_seed` fixes quinn's randomness so that a simulation seed reproduces a run.
    pub async fn bind_turmoil(
        addr: SocketAddr,
        creds: &NodeCredentials,
        revocations: RevocationList,
        rng_seed: [u8; 32],
    ) -> Result<NetEndpoint, NetError> {
        let socket = turmoil::net::UdpSocket::bind(addr)
            .await
            .map_err(NetError::Bind)?;
        NetEndpoint::with_socket(
            Arc::new(TurmoilUdpSocket::new(socket)),
            Arc::new(quinn::TokioRuntime),
            creds,
            revocations,
            Some(rng_seed),
        )
    }
}

/// turmoil's UDP has no send backpressure: the socket is always writable.
#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for TurmoilUdpSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // max_transmit_segments is 1, so quinn sends one datagram per transmit; split anyway
        // should a segmented transmit ever arrive.
        let size = transmit
            .segment_size
            .unwrap_or(transmit.contents.len())
            .max(1);
        for datagram in transmit.contents.chunks(size) {
            self.socket.try_send_to(datagram, transmit.destination)?;
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut readable = self.readable.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match self.socket.try_recv_from(buf) {
                Ok((len, addr)) => {
                    let received = RecvMeta {
                        addr,
                        len,
                        stride: len,
                        ..RecvMeta::default()
                    };
                    *slot = received;
                    return Poll::Ready(Ok(1));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            let wait = readable.get_or_insert_with(|| {
                let socket = self.socket.clone();
                Box::pin(async move { socket.readable().await })
            });
            match wait.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    *readable = None;
                    result?;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn may_fragment(&self) -> bool {
        false
    }
}
