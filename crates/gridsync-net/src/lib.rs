//! gridsync-net: the only crate that knows quinn and rustls. It turns a street's certificate
//! authority into verified QUIC links between nodes, and moves bytes over them; it does not
//! know the sync protocol (gridsync-proto frames the bytes, gridsync-node drives both).
//!
//! **What a device certificate carries.** The street CA ([`StreetCa`], ECDSA P-256, the
//! street's name in its subject organization) issues each device a certificate whose
//! subject common name is the node id, whose validity is the enrollment's
//! `not_before..not_after`, with extended key usages serverAuth and clientAuth (every node is
//! both), and a non-critical private extension, OID **1.3.6.1.4.1.57264.77.1**
//! ([`IDENTITY_EXTENSION_OID`]), holding a DER UTF8String with the JSON claim
//! `{"v":1,"street","node","role","scopes":["write:panhuo/grid-017",..]}`.
//! [`identity_from_cert`] reads it back into a [`DeviceIdentity`], bounded and with typed
//! errors.
//!
//! **Trust decisions.** Each side of every connection checks the other's certificate in the
//! same order (see [`tls`]): the identity extension parses; its street is ours (else
//! "wrong street"); the chain verifies to our street CA, the only trust root (else "unknown
//! CA"), at the current time (else "expired" / "not yet valid"); the node id is not in the
//! shared [`RevocationList`] (else "revoked"). Revocations are CA-signed
//! ([`SignedRevocation`]) so they can travel through the mesh as document data. Server names
//! are never checked: the client sends the fixed SNI `gridsync`. One ALPN per protocol
//! version ([`ALPN`], `gridsync/1`). TLS session resumption is off, so every connection is
//! verified anew against the current revocation list.
//!
//! **Acceptance rule.** In TLS 1.3 a client completes its handshake before the server has
//! judged the client's certificate. So [`NetEndpoint::connect`] returning a [`PeerLink`] means
//! only "the server passed our checks"; a server's refusal reaches the client as an error on
//! its first `send`/`recv`, carrying the server's reason. A node considers a link accepted
//! only after the peer's protocol hello arrived (and matched [`PeerLink::peer`]).
//!
//! Layout: `identity` (the certificate extension), `ca` (issuing), `revocation`, `tls`
//! (verifiers and rustls configs), `endpoint` (quinn endpoint, accept loop), `link` (a
//! verified connection and its stream), `invite` (enrollment file), `discovery` (mDNS),
//! `https` (the office's web server certificate, issued by the street CA, and a TLS acceptor
//! for its pages on the LAN), and
//! behind the `turmoil` feature `turmoil_socket` (quinn over turmoil's simulated UDP).

pub mod ca;
pub mod change_signing;
pub mod discovery;
pub mod endpoint;
pub mod https;
pub mod identity;
pub mod invite;
pub mod link;
pub mod revocation;
pub mod tls;
#[cfg(feature = "turmoil")]
pub mod turmoil_socket;

pub use ca::{
    CaError, DeviceCertError, IssuedIdentity, StreetCa, StreetCaPem, verify_device_certificate,
};
pub use change_signing::{
    CHANGE_SIGNATURE_LEN, ChangeSigner, SigningError, certificate_public_key,
    verify_change_signature,
};
pub use discovery::{DiscoveredPeer, Discovery, DiscoveryError};
pub use endpoint::{NetEndpoint, NetError, NodeCredentials};
pub use identity::{CertError, DeviceIdentity, IDENTITY_EXTENSION_OID, identity_from_cert};
pub use invite::{Invite, InviteError};
pub use link::{LinkReceiver, LinkSender, LinkStats, PeerLink};
pub use revocation::{RevocationError, RevocationList, SignedRevocation, verify_revocation};
pub use tls::{ALPN, TrustError};
