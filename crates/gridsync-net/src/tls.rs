//! Mutual TLS: rustls configurations whose verifiers admit only certificates of this street's
//! CA that carry a valid gridsync identity of this street, are within their validity, and
//! belong to a node that is not revoked.
//!
//! Both sides run the same checks, in this order: the identity extension parses, its street
//! is ours, the chain verifies to the street CA at the current time, the node is not revoked.
//! Every refusal becomes a [`TrustError`], whose text travels to the peer in the QUIC close
//! reason, so both sides can say why.
//!
//! TLS session resumption is disabled on both sides: a resumed TLS 1.3 session skips
//! certificate verification, and with it the revocation check.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use crate::endpoint::NodeCredentials;
use crate::identity::{CertError, DeviceIdentity, identity_from_cert};
use crate::revocation::RevocationList;

/// The one ALPN of protocol version 1. A new protocol version gets a new ALPN.
pub const ALPN: &[u8] = b"gridsync/1";
/// The fixed SNI a client sends; the server's name is never checked (nodes have no DNS
/// names), its identity is.
pub const SERVER_NAME: &str = "gridsync";

/// Why a peer certificate was refused. The text is what both sides of the refused
/// connection get to read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("certificate is not issued by this street's CA (unknown CA)")]
    UnknownCa,
    #[error("certificate of node {node} expired at {not_after} (unix), now is {now}")]
    Expired {
        node: String,
        not_after: u64,
        now: u64,
    },
    #[error(
        "certificate of node {node} is not yet valid: valid from {not_before} (unix), now is {now}"
    )]
    NotYetValid {
        node: String,
        not_before: u64,
        now: u64,
    },
    #[error("certificate of node {0} is revoked")]
    Revoked(String),
    #[error("certificate is for street {found:?}, expected street {expected:?} (wrong street)")]
    WrongStreet { expected: String, found: String },
    #[error("certificate carries no valid gridsync identity: {0}")]
    BadIdentity(CertError),
    #[error("certificate refused: {0}")]
    Other(String),
}

/// Why a TLS configuration could not be built from the node's credentials.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("CA certificate cannot be used as trust root: {0}")]
    CaRoot(rustls::Error),
    #[error("client verifier cannot be built: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("node certificate or key is unusable: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("tls configuration lacks the cipher suite QUIC needs")]
    NoInitialCipherSuite,
}

/// The checks shared by both verifiers.
#[derive(Debug)]
struct TrustPolicy {
    street: String,
    roots: Arc<RootCertStore>,
    revocations: RevocationList,
    provider: Arc<CryptoProvider>,
}

impl TrustPolicy {
    /// Identity and street, before the chain: gives a precise reason for a certificate of
    /// another street (which also fails the chain). Nothing is trusted yet.
    fn identity(&self, end_entity: &CertificateDer<'_>) -> Result<DeviceIdentity, TrustError> {
        let identity = identity_from_cert(end_entity).map_err(TrustError::BadIdentity)?;
        if identity.street != self.street {
            return Err(TrustError::WrongStreet {
                expected: self.street.clone(),
                found: identity.street,
            });
        }
        Ok(identity)
    }

    /// Revocation, after the chain verified.
    fn not_revoked(&self, identity: &DeviceIdentity) -> Result<(), TrustError> {
        if self.revocations.is_revoked(&identity.node_id) {
            return Err(TrustError::Revoked(identity.node_id.to_string()));
        }
        Ok(())
    }

    /// Turns a webpki chain error into the matching [`TrustError`].
    fn chain_error(identity: &DeviceIdentity, now: UnixTime, err: rustls::Error) -> TrustError {
        let node = identity.node_id.to_string();
        let now = now.as_secs();
        match err {
            rustls::Error::InvalidCertificate(cert_err) => match cert_err {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    TrustError::UnknownCa
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    TrustError::Expired {
                        node,
                        not_after: identity.not_after,
                        now,
                    }
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TrustError::NotYetValid {
                        node,
                        not_before: identity.not_before,
                        now,
                    }
                }
                other => TrustError::Other(other.to_string()),
            },
            other => TrustError::Other(other.to_string()),
        }
    }
}

/// Wraps a refusal for rustls. `Error::Other` (rather than `InvalidCertificate(Other)`, whose
/// text is the inner error's `Debug`) keeps the reason readable in the close frame the peer
/// receives; the TLS alert is then handshake_failure.
fn refuse(err: TrustError) -> rustls::Error {
    tracing::debug!(reason = %err, "peer certificate refused");
    rustls::Error::Other(OtherError(Arc::new(err)))
}

/// Server side: verifies a client's certificate.
#[derive(Debug)]
struct StreetClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    policy: TrustPolicy,
}

impl ClientCertVerifier for StreetClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let identity = self.policy.identity(end_entity).map_err(refuse)?;
        self.webpki
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| refuse(TrustPolicy::chain_error(&identity, now, e)))?;
        self.policy.not_revoked(&identity).map_err(refuse)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Client side: verifies a server's certificate, ignoring the server name.
#[derive(Debug)]
struct StreetServerVerifier {
    policy: TrustPolicy,
}

impl ServerCertVerifier for StreetServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let identity = self.policy.identity(end_entity).map_err(refuse)?;
        let chain = ParsedCertificate::try_from(end_entity).and_then(|parsed| {
            verify_server_cert_signed_by_trust_anchor(
                &parsed,
                &self.policy.roots,
                intermediates,
                now,
                self.policy.provider.signature_verification_algorithms.all,
            )
        });
        chain.map_err(|e| refuse(TrustPolicy::chain_error(&identity, now, e)))?;
        self.policy.not_revoked(&identity).map_err(refuse)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.policy.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.policy.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.policy
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The ring provider, installed explicitly (never the process default).
fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn policy(creds: &NodeCredentials, revocations: RevocationList) -> Result<TrustPolicy, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(creds.ca_cert_der.clone()))
        .map_err(TlsError::CaRoot)?;
    Ok(TrustPolicy {
        street: creds.identity.street.clone(),
        roots: Arc::new(roots),
        revocations,
        provider: ring_provider(),
    })
}

fn own_chain(creds: &NodeCredentials) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        vec![CertificateDer::from(creds.cert_der.clone())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(creds.key_der.clone())),
    )
}

/// The server half of a node: requires a client certificate that passes the checks in the
/// module documentation.
pub fn server_config(
    creds: &NodeCredentials,
    revocations: RevocationList,
) -> Result<rustls::ServerConfig, TlsError> {
    let policy = policy(creds, revocations)?;
    let webpki =
        WebPkiClientVerifier::builder_with_provider(policy.roots.clone(), policy.provider.clone())
            .build()?;
    let provider = policy.provider.clone();
    let verifier = Arc::new(StreetClientVerifier { webpki, policy });
    let (chain, key) = own_chain(creds);
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(config)
}

/// The client half of a node: presents the node's certificate and verifies the server's.
pub fn client_config(
    creds: &NodeCredentials,
    revocations: RevocationList,
) -> Result<rustls::ClientConfig, TlsError> {
    let policy = policy(creds, revocations)?;
    let provider = policy.provider.clone();
    let (chain, key) = own_chain(creds);
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(StreetServerVerifier { policy }))
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = Resumption::disabled();
    Ok(config)
}
