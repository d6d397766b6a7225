//! [`WebListener`]: where a web server accepts its connections, plain HTTP on loopback or
//! HTTPS (the street CA's certificate, `gridsync_net::https`) elsewhere.
//!
//! On an HTTPS listener, a client that speaks plain HTTP to the port (an official typing the
//! address without `https://`) gets a redirect to the same address over HTTPS and nothing
//! else: no page, no cookie, no token ever travels in clear. TLS handshakes run on their own
//! tasks (at most [`MAX_PENDING_HANDSHAKES`] at once, each within
//! `gridsync_net::https::HANDSHAKE_TIMEOUT`), so a client that connects and stalls holds up
//! nobody else.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use gridsync_net::https::{HttpsAcceptor, HttpsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::debug;

/// TLS handshakes (and plain-HTTP redirects) in progress at once on one listener.
pub const MAX_PENDING_HANDSHAKES: usize = 64;

/// How long a plain-HTTP client has to send its request head before the redirect is skipped.
const PLAIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest plain-HTTP request head read for the redirect.
const MAX_PLAIN_HEAD: usize = 8 * 1024;

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A listener for axum: plain TCP, or TLS with plain HTTP redirected.
pub enum WebListener {
    Plain(TcpListener),
    Https(HttpsListener),
}

impl std::fmt::Debug for WebListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebListener::Plain(_) => f.write_str("WebListener::Plain"),
            WebListener::Https(_) => f.write_str("WebListener::Https"),
        }
    }
}

impl From<TcpListener> for WebListener {
    fn from(tcp: TcpListener) -> WebListener {
        WebListener::Plain(tcp)
    }
}

impl WebListener {
    /// Serves HTTPS on `tcp` with `acceptor`.
    pub fn https(tcp: TcpListener, acceptor: HttpsAcceptor) -> io::Result<WebListener> {
        Ok(WebListener::Https(HttpsListener::start(tcp, acceptor)?))
    }

    /// Whether connections are encrypted (session cookies are then marked `Secure`).
    pub fn is_https(&self) -> bool {
        matches!(self, WebListener::Https(_))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            WebListener::Plain(tcp) => tcp.local_addr(),
            WebListener::Https(https) => Ok(https.local),
        }
    }
}

/// A TLS listener: an accept task hands over connections whose handshake completed.
pub struct HttpsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(HttpsStream, SocketAddr)>,
    /// The accept task; dropping the listener aborts it and every handshake in progress.
    _accepting: JoinSet<()>,
}

impl HttpsListener {
    fn start(tcp: TcpListener, acceptor: HttpsAcceptor) -> io::Result<HttpsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(MAX_PENDING_HANDSHAKES);
        let mut accepting = JoinSet::new();
        accepting.spawn(accept_loop(tcp, acceptor, tx));
        Ok(HttpsListener {
            local,
            ready,
            _accepting: accepting,
        })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: HttpsAcceptor,
    ready: mpsc::Sender<(HttpsStream, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    // Dropped with this task: aborts the handshakes in progress.
    let mut handshakes = JoinSet::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    debug!(error = %e, "accepting a web connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => continue,
        };
        let (acceptor, ready, local) = (acceptor.clone(), ready.clone(), tcp.local_addr().ok());
        handshakes.spawn(async move {
            let _slot = slot;
            if let Some(tls) = tls_or_redirect(stream, &acceptor, local).await {
                let _ = ready.send((tls, peer)).await;
            }
        });
        // Reap finished handshakes so the set does not grow.
        while handshakes.try_join_next().is_some() {}
    }
}

/// The TLS connection on `stream`, or `None` after answering a plain-HTTP client with a
/// redirect (or dropping a client that sent nothing or failed its handshake).
async fn tls_or_redirect(
    stream: TcpStream,
    acceptor: &HttpsAcceptor,
    local: Option<SocketAddr>,
) -> Option<HttpsStream> {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(PLAIN_REQUEST_TIMEOUT, stream.peek(&mut first)).await;
    match peeked {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => match acceptor.accept(stream).await {
            Ok(tls) => Some(tls),
            Err(e) => {
                debug!(error = %e, "TLS handshake with a web client failed");
                None
            }
        },
        Ok(Ok(1)) => {
            redirect_plain_http(stream, local).await;
            None
        }
        _ => None,
    }
}

/// Answers a plain-HTTP request with a permanent redirect to the same path over HTTPS, at
/// the host the client asked for (or this listener's address).
async fn redirect_plain_http(mut stream: TcpStream, local: Option<SocketAddr>) {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(PLAIN_REQUEST_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_PLAIN_HEAD {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return;
    }
    let response = redirect_response(&head, local);
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The redirect for a plain-HTTP request head.
pub(crate) fn redirect_response(head: &[u8], local: Option<SocketAddr>) -> String {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let path = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .filter(|p| p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("/");
    let host = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.trim().to_owned())
        .filter(|h| !h.is_empty() && h.bytes().all(is_host_byte))
        .or_else(|| local.map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_owned());
    let location = format!("https://{host}{path}");
    let body = format!(
        "This office serves its pages over HTTPS only: {location}\n本办公室仅通过 HTTPS 提供页面：{location}\n"
    );
    format!(
        "HTTP/1.1 308 Permanent Redirect\r\nLocation: {location}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A byte a `Host` header may hold in the redirect: names, IPv4 and bracketed IPv6, a port.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
}

/// One connection of a [`WebListener`].
pub enum WebStream {
    Plain(TcpStream),
    Https(HttpsStream),
}

impl axum::serve::Listener for WebListener {
    type Io = WebStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (WebStream, SocketAddr) {
        match self {
            WebListener::Plain(tcp) => {
                let (stream, addr) = axum::serve::Listener::accept(tcp).await;
                (WebStream::Plain(stream), addr)
            }
            WebListener::Https(https) => match https.ready.recv().await {
                Some((stream, addr)) => (WebStream::Https(stream), addr),
                // The accept task ended (it does not, short of a panic): serve nothing more.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        WebListener::local_addr(self)
    }
}

impl AsyncRead for WebStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WebStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            WebStream::Https(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WebStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WebStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            WebStream::Https(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WebStream::Plain(s) => Pin::new(s).poll_flush(cx),
            WebStream::Https(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WebStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            WebStream::Https(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_request_is_sent_to_the_same_place_over_https() {
        let head =
            b"GET /api/v1/summary?x=1 HTTP/1.1\r\nHost: 192.168.1.20:7780\r\nAccept: */*\r\n\r\n";
        let reply = redirect_response(head, None);
        assert!(reply.starts_with("HTTP/1.1 308 "), "{reply}");
        assert!(reply.contains("\r\nLocation: https://192.168.1.20:7780/api/v1/summary?x=1\r\n"));
    }

    #[test]
    fn a_hostile_host_or_path_cannot_inject_headers() {
        let head = b"GET /\x01evil HTTP/1.1\r\nHost: evil\"<script>\r\n\r\n";
        let local: SocketAddr = "10.0.0.5:7780".parse().expect("addr");
        let reply = redirect_response(head, Some(local));
        assert!(
            reply.contains("\r\nLocation: https://10.0.0.5:7780/\r\n"),
            "{reply}"
        );
        assert!(!reply.contains("script"));
    }
}
