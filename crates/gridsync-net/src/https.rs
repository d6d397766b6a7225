//! HTTPS for the office's web pages on the street office's LAN.
//!
//! The office holds the street CA, so it issues its web server a certificate itself, for the
//! addresses it serves on ([`WebName`]), at every start: the officials' PCs and phones trust
//! the street CA once (deploy/RUNBOOK.md says how) and every later certificate with it. The
//! certificate is an ordinary TLS server certificate (serverAuth only, no gridsync identity
//! extension), so it can never pass for a device's: the QUIC verifiers refuse a certificate
//! without the identity extension before anything else.
//!
//! [`HttpsAcceptor`] wraps a TCP stream into TLS (1.3 and 1.2, for older office browsers;
//! HTTP/1.1 by ALPN) and hands back an [`HttpsStream`], so that no crate besides this one
//! names rustls.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::ca::{CaError, StreetCa, random_serial, set_validity};

/// How long an issued web server certificate is valid: under the 398 days browsers accept.
const WEB_CERT_LIFETIME_SECS: u64 = 397 * 24 * 3600;

/// How far back a web server certificate's validity starts, for clocks a little behind.
const WEB_CERT_BACKDATE_SECS: u64 = 24 * 3600;

/// A TLS handshake that takes longer is abandoned (a client that connects and says nothing).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A name the office's web server answers to: an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WebName {
    Ip(IpAddr),
    Dns(String),
}

impl std::fmt::Display for WebName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebName::Ip(ip) => write!(f, "{ip}"),
            WebName::Dns(name) => f.write_str(name),
        }
    }
}

/// The names a web server bound to `ip` answers to: that address, or every address of this
/// machine's interfaces when it binds all of them, and `localhost`.
pub fn web_names_for_bind(ip: IpAddr) -> Vec<WebName> {
    let mut names: Vec<WebName> = if ip.is_unspecified() {
        if_addrs::get_if_addrs()
            .map(|interfaces| interfaces.into_iter().map(|i| i.ip()).collect())
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot list this machine's addresses; the HTTPS certificate names loopback only");
                Vec::new()
            })
            .into_iter()
            .chain([IpAddr::from([127, 0, 0, 1])])
            .map(WebName::Ip)
            .collect()
    } else {
        vec![WebName::Ip(ip)]
    };
    names.push(WebName::Dns("localhost".to_owned()));
    names.sort();
    names.dedup();
    names
}

/// A web server's certificate (chained to the street CA) and private key.
#[derive(Clone)]
pub struct WebServerCert {
    chain: Vec<Vec<u8>>,
    key_der: Vec<u8>,
    names: Vec<WebName>,
}

impl std::fmt::Debug for WebServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebServerCert")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl WebServerCert {
    /// The names the certificate holds.
    pub fn names(&self) -> &[WebName] {
        &self.names
    }

    /// The server certificate itself (DER), without the CA's.
    pub fn cert_der(&self) -> &[u8] {
        &self.chain[0]
    }
}

impl StreetCa {
    /// Issues a TLS server certificate for the office's web pages, valid from a day before
    /// `now` (unix seconds) for 397 days, for `names` (at least one).
    pub fn issue_web_server(&self, names: &[WebName], now: u64) -> Result<WebServerCert, CaError> {
        if names.is_empty() {
            return Err(CaError::BadValidity {
                not_before: now,
                not_after: now,
            });
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, format!("gridsync office {}", names[0]));
        subject.push(DnType::OrganizationName, self.street());
        params.distinguished_name = subject;
        params.subject_alt_names = names
            .iter()
            .map(|name| {
                Ok(match name {
                    WebName::Ip(ip) => SanType::IpAddress(*ip),
                    WebName::Dns(dns) => SanType::DnsName(dns.as_str().try_into()?),
                })
            })
            .collect::<Result<_, rcgen::Error>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(
            &mut params,
            now.saturating_sub(WEB_CERT_BACKDATE_SECS),
            now.saturating_add(WEB_CERT_LIFETIME_SECS),
        )?;
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(&key, self.issuer())?;
        Ok(WebServerCert {
            chain: vec![cert.der().to_vec(), self.cert_der().to_vec()],
            key_der: key.serialize_der(),
            names: names.to_vec(),
        })
    }
}

/// Why HTTPS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up HTTPS: {0}")]
pub struct HttpsError(#[from] rustls::Error);

/// Accepts TLS connections for the office's web pages.
#[derive(Clone)]
pub struct HttpsAcceptor {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for HttpsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsAcceptor").finish_non_exhaustive()
    }
}

impl HttpsAcceptor {
    /// An acceptor presenting `cert` (no client certificates asked for: officials sign in
    /// with the office token).
    pub fn new(cert: &WebServerCert) -> Result<HttpsAcceptor, HttpsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = cert
            .chain
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpsAcceptor {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Runs the TLS handshake on `tcp`, within [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<HttpsStream> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await {
            Ok(stream) => Ok(HttpsStream(Box::new(stream?))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

/// One HTTPS connection, read and written as plain bytes.
pub struct HttpsStream(Box<tokio_rustls::server::TlsStream<TcpStream>>);

impl std::fmt::Debug for HttpsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsStream").finish_non_exhaustive()
    }
}

impl AsyncRead for HttpsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for HttpsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn ca() -> StreetCa {
        StreetCa::generate("panhuo", 1_764_800_000).expect("CA")
    }

    /// A client that trusts only `ca`, as an official's browser would after the runbook.
    fn client(ca: &StreetCa) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.cert_der().to_vec()))
            .expect("CA certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    async fn exchange(ca: &StreetCa, server_ca: &StreetCa, ip: IpAddr) -> io::Result<Vec<u8>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let cert = server_ca
            .issue_web_server(&web_names_for_bind(ip), now)
            .expect("issued");
        let acceptor = HttpsAcceptor::new(&cert).expect("acceptor");
        let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp).await?;
            tls.write_all(b"hello office").await?;
            tls.shutdown().await
        });
        let tcp = TcpStream::connect(addr).await?;
        let name = rustls_pki_types::ServerName::IpAddress(ip.into());
        let mut tls = client(ca).connect(name, tcp).await?;
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await?;
        server.await.expect("server task")?;
        Ok(got)
    }

    #[tokio::test]
    async fn a_client_trusting_the_street_ca_reaches_the_office_by_address() {
        let ca = ca();
        let got = exchange(&ca, &ca, IpAddr::from([127, 0, 0, 1]))
            .await
            .expect("TLS with the street CA trusted");
        assert_eq!(got, b"hello office");
    }

    #[tokio::test]
    async fn a_client_trusting_another_street_refuses_the_certificate() {
        let other = StreetCa::generate("elsewhere", 1_764_800_000).expect("CA");
        let refused = exchange(&other, &ca(), IpAddr::from([127, 0, 0, 1])).await;
        assert!(refused.is_err(), "a certificate of another CA is refused");
    }

    #[test]
    fn the_certificate_names_the_bound_address_and_localhost() {
        let ip = IpAddr::from([192, 168, 1, 20]);
        let names = web_names_for_bind(ip);
        assert!(names.contains(&WebName::Ip(ip)));
        assert!(names.contains(&WebName::Dns("localhost".into())));
        let all = web_names_for_bind(IpAddr::from([0, 0, 0, 0]));
        assert!(all.contains(&WebName::Ip(IpAddr::from([127, 0, 0, 1]))));
        assert!(!all.contains(&WebName::Ip(IpAddr::from([0, 0, 0, 0]))));
    }

    #[test]
    fn a_web_certificate_is_no_device_certificate() {
        let cert = ca()
            .issue_web_server(&[WebName::Ip(IpAddr::from([10, 0, 0, 1]))], 1_764_800_000)
            .expect("issued");
        let der = CertificateDer::from(cert.cert_der().to_vec());
        assert!(crate::identity::identity_from_cert(&der).is_err());
    }
}
