//! gridsync-net's integration tests: real QUIC endpoints on 127.0.0.1, certificates from
//! real street CAs, and (with `--features turmoil`) quinn over turmoil's simulated UDP.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gridsync_net::{
    DeviceIdentity, NetEndpoint, NodeCredentials, PeerLink, RevocationList, StreetCa,
};
use gridsync_proto::{NodeId, Role, Scopes};

const STREET: &str = "panhuo";
/// Bound on any single network wait in these tests; a refusal must never hang.
const WAIT: Duration = Duration::from_secs(10);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn node(s: &str) -> NodeId {
    NodeId::parse(s).expect("test node ids are valid")
}

fn identity(street: &str, node_id: &str, not_before: u64, not_after: u64) -> DeviceIdentity {
    DeviceIdentity {
        street: street.into(),
        node_id: node(node_id),
        role: Role::Captain,
        scopes: Scopes(vec![
            "write:panhuo/grid-017".parse().expect("grant"),
            "carry:panhuo".parse().expect("grant"),
        ]),
        not_before,
        not_after,
    }
}

/// Credentials valid from a minute ago for an hour.
fn creds(ca: &StreetCa, node_id: &str) -> NodeCredentials {
    let t = now();
    creds_valid(ca, node_id, t - 60, t + 3600)
}

fn creds_valid(ca: &StreetCa, node_id: &str, not_before: u64, not_after: u64) -> NodeCredentials {
    let issued = ca
        .issue(&identity(ca.street(), node_id, not_before, not_after))
        .expect("issue");
    NodeCredentials::new(ca.cert_der(), &issued)
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn bind(creds: &NodeCredentials, revocations: &RevocationList) -> NetEndpoint {
    NetEndpoint::bind(loopback(), creds, revocations.clone()).expect("bind on loopback")
}

/// Reads from `link` until `len` bytes arrived.
async fn recv_exact(link: &mut PeerLink, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < len {
        let chunk = tokio::time::timeout(WAIT, link.recv())
            .await
            .expect("recv timed out")
            .expect("recv failed")
            .expect("stream ended early");
        assert!(chunk.len() <= gridsync_net::link::MAX_RECV_CHUNK);
        out.extend_from_slice(&chunk);
    }
    out
}

mod links {
    use super::*;

    #[tokio::test]
    async fn two_nodes_exchange_bytes_and_see_each_other() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let revocations = RevocationList::new();
        let captain = bind(&creds(&ca, "cap-1"), &revocations);
        let volunteer = bind(&creds(&ca, "vol-1"), &revocations);
        let addr = captain.local_addr().expect("addr");

        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let big_for_client = big.clone();
        let client = tokio::spawn(async move {
            let mut link = volunteer.connect(addr).await.expect("connect");
            assert_eq!(link.peer.node_id, node("cap-1"));
            assert_eq!(link.peer.role, Role::Captain);
            assert_eq!(link.peer.street, STREET);
            link.send(b"hello from vol-1").await.expect("send hello");
            assert_eq!(recv_exact(&mut link, 17).await, b"hello from cap-1!");
            link.send(&big_for_client).await.expect("send bulk");
            link.finish().expect("finish");
            let stats = link.stats();
            assert_eq!(stats.bytes_sent, 16 + big_for_client.len() as u64);
            assert_eq!(stats.bytes_received, 17);
            assert!(stats.udp_bytes_sent > 0);
            // Keep the connection until the server has read everything.
            let rest = tokio::time::timeout(WAIT, link.recv()).await.expect("wait");
            assert!(matches!(rest, Ok(None) | Err(_)), "{rest:?}");
        });

        let mut link = tokio::time::timeout(WAIT, captain.accept())
            .await
            .expect("accept timed out")
            .expect("endpoint open")
            .expect("accepted");
        assert_eq!(link.peer.node_id, node("vol-1"));
        assert_eq!(
            link.peer,
            identity(STREET, "vol-1", link.peer.not_before, link.peer.not_after)
        );
        assert_eq!(recv_exact(&mut link, 16).await, b"hello from vol-1");
        link.send(b"hello from cap-1!").await.expect("send");
        assert_eq!(recv_exact(&mut link, big.len()).await, big);
        let end = tokio::time::timeout(WAIT, link.recv()).await.expect("wait");
        assert!(matches!(end, Ok(None)), "peer finished: {end:?}");
        link.finish().expect("finish");
        tokio::time::timeout(WAIT, client)
            .await
            .expect("client timed out")
            .expect("client task");
        captain.close();
        tokio::time::timeout(WAIT, captain.wait_idle())
            .await
            .expect("idle");
        assert!(
            captain.accept().await.is_none(),
            "closed endpoint accepts nothing"
        );
    }

    #[tokio::test]
    async fn split_halves_work_in_two_tasks() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let revocations = RevocationList::new();
        let a = bind(&creds(&ca, "cap-1"), &revocations);
        let b = bind(&creds(&ca, "vol-1"), &revocations);
        let addr = a.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let link = b.connect(addr).await.expect("connect");
            let (mut tx, mut rx) = link.split();
            let writer = tokio::spawn(async move {
                for i in 0..50u8 {
                    tx.send(&[i; 100]).await.expect("send");
                }
                tx.finish().expect("finish");
                tx
            });
            // Echoed bytes come back while we are still writing.
            let mut got = 0usize;
            while got < 5000 {
                let chunk = tokio::select! {
                    chunk = rx.recv() => chunk.expect("recv").expect("not finished"),
                    _ = tokio::time::sleep(WAIT) => panic!("echo timed out"),
                };
                got += chunk.len();
            }
            let _tx = writer.await.expect("writer");
            assert_eq!(rx.stats().bytes_received, 5000);
        });
        let mut link = a.accept().await.expect("open").expect("accepted");
        loop {
            match tokio::time::timeout(WAIT, link.recv()).await.expect("wait") {
                Ok(Some(chunk)) => link.send(&chunk).await.expect("echo"),
                Ok(None) => break,
                Err(e) => panic!("server recv: {e}"),
            }
        }
        client.await.expect("client");
    }
}

mod refusals {
    use super::*;

    /// Where the refused client saw its error.
    #[derive(Debug)]
    enum ClientSaw {
        /// `connect` itself failed (we refused the server, or the refusal raced ahead).
        ConnectError(String),
        /// `connect` succeeded, and the first use of the link failed.
        FirstUseError(String),
    }

    impl ClientSaw {
        fn text(&self) -> &str {
            match self {
                ClientSaw::ConnectError(t) | ClientSaw::FirstUseError(t) => t,
            }
        }
    }

    /// Runs one connection that must be refused; returns the server's and client's errors.
    async fn refused(
        server: &NodeCredentials,
        server_revocations: &RevocationList,
        client: &NodeCredentials,
        client_revocations: &RevocationList,
    ) -> (String, ClientSaw) {
        let server_end = bind(server, server_revocations);
        let client_end = bind(client, client_revocations);
        let addr = server_end.local_addr().expect("addr");
        let client_task = tokio::spawn(async move {
            match client_end.connect(addr).await {
                Err(e) => ClientSaw::ConnectError(e.to_string()),
                Ok(mut link) => {
                    // The send may succeed (it only buffers); the receive must fail.
                    let sent = link.send(b"hello").await;
                    let received = link.recv().await;
                    match (sent, received) {
                        (Err(e), _) | (Ok(()), Err(e)) => ClientSaw::FirstUseError(e.to_string()),
                        (Ok(()), Ok(got)) => panic!("refused client could use the link: {got:?}"),
                    }
                }
            }
        });
        let server_err = match tokio::time::timeout(WAIT, server_end.accept())
            .await
            .expect("server accept hung")
            .expect("endpoint open")
        {
            Ok(link) => panic!("server accepted {}", link.peer.node_id),
            Err(e) => e.to_string(),
        };
        let client_saw = tokio::time::timeout(WAIT, client_task)
            .await
            .expect("refused client hung instead of failing")
            .expect("client task");
        // Shown when a test fails: the exact texts each side got.
        eprintln!("server: {server_err}\nclient: {client_saw:?}");
        (server_err, client_saw)
    }

    fn assert_both_say(server: &str, client: &ClientSaw, reason: &str) {
        assert!(
            server.contains(reason),
            "server error {server:?} lacks {reason:?}"
        );
        assert!(
            client.text().contains(reason),
            "client error {client:?} lacks {reason:?}"
        );
    }

    #[tokio::test]
    async fn client_of_unknown_ca_is_refused_on_first_use() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        // A rogue CA claiming the same street.
        let rogue = StreetCa::generate(STREET, now()).expect("rogue");
        let none = RevocationList::new();
        let (server, client) = refused(
            &creds(&ca, "cap-1"),
            &none,
            &creds_valid_rogue(&rogue, &ca),
            &none,
        )
        .await;
        assert_both_say(&server, &client, "unknown CA");
        assert!(
            matches!(client, ClientSaw::FirstUseError(_)),
            "a client refused by the server finishes its handshake and fails on first use: {client:?}"
        );
    }

    /// A client certificate from `rogue` that otherwise looks right, and trusts `ca`, so
    /// only the server's check can fail.
    fn creds_valid_rogue(rogue: &StreetCa, ca: &StreetCa) -> NodeCredentials {
        let mut c = creds(rogue, "vol-9");
        c.ca_cert_der = ca.cert_der().to_vec();
        c
    }

    #[tokio::test]
    async fn server_of_unknown_ca_is_refused_by_the_client() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let rogue = StreetCa::generate(STREET, now()).expect("rogue");
        let none = RevocationList::new();
        let mut server = creds(&rogue, "cap-9");
        server.ca_cert_der = ca.cert_der().to_vec();
        let (server_err, client) = refused(&server, &none, &creds(&ca, "vol-1"), &none).await;
        assert_both_say(&server_err, &client, "unknown CA");
        assert!(matches!(client, ClientSaw::ConnectError(_)), "{client:?}");
    }

    #[tokio::test]
    async fn expired_client_is_refused() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let none = RevocationList::new();
        let t = now();
        let old = creds_valid(&ca, "vol-1", t - 7200, t - 3600);
        let (server, client) = refused(&creds(&ca, "cap-1"), &none, &old, &none).await;
        assert_both_say(&server, &client, "expired");
        assert!(server.contains("vol-1"), "{server}");
    }

    #[tokio::test]
    async fn expired_server_is_refused() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let none = RevocationList::new();
        let t = now();
        let old = creds_valid(&ca, "cap-1", t - 7200, t - 3600);
        let (server, client) = refused(&old, &none, &creds(&ca, "vol-1"), &none).await;
        assert_both_say(&server, &client, "expired");
    }

    #[tokio::test]
    async fn not_yet_valid_client_is_refused() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let none = RevocationList::new();
        let t = now();
        let early = creds_valid(&ca, "vol-1", t + 3600, t + 7200);
        let (server, client) = refused(&creds(&ca, "cap-1"), &none, &early, &none).await;
        assert_both_say(&server, &client, "not yet valid");
    }

    #[tokio::test]
    async fn revoked_client_is_refused_after_a_runtime_update() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let server_list = RevocationList::new();
        let none = RevocationList::new();
        let server = creds(&ca, "cap-1");
        let client = creds(&ca, "vol-1");

        // Accepted before the revocation arrives...
        let server_end = bind(&server, &server_list);
        let client_end = bind(&client, &none);
        let addr = server_end.local_addr().expect("addr");
        let mut link = client_end.connect(addr).await.expect("connect");
        link.send(b"hi").await.expect("send");
        let mut accepted = server_end.accept().await.expect("open").expect("accepted");
        assert_eq!(recv_exact(&mut accepted, 2).await, b"hi");

        // ...refused once the signed revocation has been applied.
        let revocation = ca.sign_revocation(&node("vol-1"), now()).expect("sign");
        assert!(
            server_list
                .apply(ca.cert_der(), &revocation)
                .expect("verifies")
        );
        let (server_err, client_saw) = refused(&server, &server_list, &client, &none).await;
        assert_both_say(&server_err, &client_saw, "revoked");
        assert!(server_err.contains("vol-1"), "{server_err}");
    }

    #[tokio::test]
    async fn revoked_server_is_refused() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let none = RevocationList::new();
        let client_list = RevocationList::new();
        client_list.revoke(node("cap-1"));
        let (server, client) = refused(
            &creds(&ca, "cap-1"),
            &none,
            &creds(&ca, "vol-1"),
            &client_list,
        )
        .await;
        assert_both_say(&server, &client, "revoked");
        assert!(matches!(client, ClientSaw::ConnectError(_)), "{client:?}");
    }

    #[tokio::test]
    async fn node_of_another_street_is_refused() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let other = StreetCa::generate("linhai", now()).expect("other street");
        let none = RevocationList::new();
        let mut stranger = creds(&other, "vol-1");
        stranger.ca_cert_der = ca.cert_der().to_vec();
        // The stranger refuses our server first (its own street differs)...
        let (server, client) = refused(&creds(&ca, "cap-1"), &none, &stranger, &none).await;
        assert_both_say(&server, &client, "wrong street");
        assert!(matches!(client, ClientSaw::ConnectError(_)), "{client:?}");

        // ...and a stranger that skips that check is refused by our server.
        stranger.identity.street = STREET.into();
        let (server, client) = refused(&creds(&ca, "cap-1"), &none, &stranger, &none).await;
        assert_both_say(&server, &client, "wrong street");
        assert!(server.contains("\"linhai\""), "{server}");
        assert!(matches!(client, ClientSaw::FirstUseError(_)), "{client:?}");
    }
}

mod certificates {
    use super::*;
    use gridsync_net::identity::IDENTITY_EXTENSION_OID;
    use gridsync_net::{CertError, identity_from_cert};
    use proptest::prelude::*;
    use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair};

    #[test]
    fn directory_certificates_verify_only_against_their_own_ca() {
        use gridsync_net::{DeviceCertError, verify_device_certificate};
        let ca = StreetCa::generate("panhuo", now()).expect("ca");
        let want = identity("panhuo", "vol-11", now() - 10, now() + 3600);
        let issued = ca.issue(&want).expect("issue");
        assert_eq!(
            verify_device_certificate(ca.cert_der(), &issued.cert_der).expect("verifies"),
            want
        );
        // Expired certificates still name their author: validity is not the question here.
        let old = identity("panhuo", "vol-12", now() - 7200, now() - 3600);
        let expired = ca.issue(&old).expect("issue");
        assert!(verify_device_certificate(ca.cert_der(), &expired.cert_der).is_ok());
        // Another CA of the same street name, and a certificate whose body was altered.
        let other = StreetCa::generate("panhuo", now()).expect("ca");
        assert!(matches!(
            verify_device_certificate(other.cert_der(), &issued.cert_der),
            Err(DeviceCertError::NotIssuedByCa)
        ));
        let forged = handmade("vol-11", None);
        assert!(verify_device_certificate(ca.cert_der(), &forged).is_err());
        let elsewhere = StreetCa::generate("xinhe", now()).expect("ca");
        let stranger = elsewhere
            .issue(&identity("xinhe", "vol-1", now() - 10, now() + 3600))
            .expect("issue");
        assert!(matches!(
            verify_device_certificate(ca.cert_der(), &stranger.cert_der),
            Err(DeviceCertError::WrongStreet { .. })
        ));
    }

    /// A self-signed certificate with CN `cn` and, if given, an identity extension holding
    /// `content` verbatim.
    fn handmade(cn: &str, content: Option<Vec<u8>>) -> Vec<u8> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name.remove(DnType::CommonName);
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(content) = content {
            params.custom_extensions = vec![CustomExtension::from_oid_content(
                IDENTITY_EXTENSION_OID,
                content,
            )];
        }
        params
            .self_signed(&key)
            .expect("self-signed")
            .der()
            .to_vec()
    }

    fn utf8_string(text: &str) -> Vec<u8> {
        assert!(text.len() < 128);
        let mut der = vec![0x0c, text.len() as u8];
        der.extend_from_slice(text.as_bytes());
        der
    }

    #[test]
    fn identity_round_trips_through_the_certificate() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let t = now();
        let want = identity(STREET, "vol-42", t - 10, t + 1000);
        let issued = ca.issue(&want).expect("issue");
        assert_eq!(identity_from_cert(&issued.cert_der), Ok(want));
    }

    #[test]
    fn ca_survives_a_pem_round_trip() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let reloaded = StreetCa::from_pem(&ca.to_pem()).expect("reload");
        assert_eq!(reloaded.street(), STREET);
        assert_eq!(reloaded.cert_der(), ca.cert_der());
        // Certificates issued by the reloaded CA chain to the original certificate.
        let t = now();
        let issued = reloaded
            .issue(&identity(STREET, "vol-1", t - 10, t + 100))
            .expect("issue");
        let invite = gridsync_net::Invite::new(&ca, &issued, vec![]);
        gridsync_net::Invite::parse(&invite.to_bytes()).expect("chains to the original CA");

        let other = StreetCa::generate(STREET, now()).expect("other");
        let mut mixed = ca.to_pem();
        mixed.key_pem = other.to_pem().key_pem;
        assert!(StreetCa::from_pem(&mixed).is_err(), "key of another CA");
    }

    #[test]
    fn ca_refuses_identities_of_another_street() {
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let t = now();
        let err = ca
            .issue(&identity("linhai", "vol-1", t, t + 10))
            .expect_err("wrong street");
        assert!(err.to_string().contains("street"), "{err}");
        assert!(
            ca.issue(&identity(STREET, "vol-1", t + 10, t)).is_err(),
            "empty validity"
        );
        assert!(StreetCa::generate("Not A Street", t).is_err());
    }

    #[test]
    fn malformed_extensions_give_typed_errors() {
        let ok_claim = r#"{"v":1,"street":"panhuo","node":"vol-1","role":"volunteer","scopes":[]}"#;
        assert!(identity_from_cert(&handmade("vol-1", Some(utf8_string(ok_claim)))).is_ok());

        assert_eq!(
            identity_from_cert(&handmade("vol-1", None)),
            Err(CertError::MissingExtension)
        );
        assert_eq!(
            identity_from_cert(&handmade("vol-1", Some(b"\x04\x02{}".to_vec()))),
            Err(CertError::ExtensionEncoding)
        );
        assert!(matches!(
            identity_from_cert(&handmade("vol-1", Some(utf8_string("{not json")))),
            Err(CertError::Claim(_))
        ));
        let v2 = ok_claim.replace("\"v\":1", "\"v\":2");
        assert_eq!(
            identity_from_cert(&handmade("vol-1", Some(utf8_string(&v2)))),
            Err(CertError::UnsupportedVersion(2))
        );
        let bad_node = ok_claim.replace("vol-1", "VOL 1");
        assert!(matches!(
            identity_from_cert(&handmade("VOL 1", Some(utf8_string(&bad_node)))),
            Err(CertError::Claim(_))
        ));
        let bad_street = ok_claim.replace("panhuo", "Pan/Huo");
        assert!(matches!(
            identity_from_cert(&handmade("vol-1", Some(utf8_string(&bad_street)))),
            Err(CertError::InvalidStreet(_))
        ));
        let extra = ok_claim.replace("\"v\":1", "\"v\":1,\"admin\":true");
        assert!(matches!(
            identity_from_cert(&handmade("vol-1", Some(utf8_string(&extra)))),
            Err(CertError::Claim(_))
        ));
        assert!(matches!(
            identity_from_cert(&handmade("vol-2", Some(utf8_string(ok_claim)))),
            Err(CertError::CommonNameMismatch { .. })
        ));
        assert!(matches!(
            identity_from_cert(b"not a certificate"),
            Err(CertError::Malformed(_))
        ));
        assert!(matches!(
            identity_from_cert(&vec![0x30; 100_000]),
            Err(CertError::TooLarge { .. })
        ));
        let mut trailing = handmade("vol-1", Some(utf8_string(ok_claim)));
        trailing.push(0);
        assert_eq!(identity_from_cert(&trailing), Err(CertError::TrailingBytes));
    }

    fn node_id() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9_-]{0,30}"
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn any_identity_round_trips(
            node in node_id(),
            role in prop::sample::select(Role::ALL.to_vec()),
            grants in prop::collection::vec(("(read|write|carry)", "[a-z]{1,8}(/[a-z0-9-]{1,8}){0,3}"), 0..6),
            not_before in 0u64..4_000_000_000,
            span in 1u64..1_000_000_000,
        ) {
            let ca = StreetCa::generate(STREET, now()).expect("ca");
            let scopes = grants
                .iter()
                .map(|(a, p)| format!("{a}:{p}").parse().expect("grant"))
                .collect();
            let want = DeviceIdentity {
                street: STREET.into(),
                node_id: NodeId::parse(&node).expect("node"),
                role,
                scopes: Scopes(scopes),
                not_before,
                not_after: not_before + span,
            };
            let issued = ca.issue(&want).expect("issue");
            prop_assert_eq!(identity_from_cert(&issued.cert_der), Ok(want));
        }

        #[test]
        fn corrupted_certificates_never_panic(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let ca = StreetCa::generate(STREET, now()).expect("ca");
            let t = now();
            let mut der = ca
                .issue(&identity(STREET, "vol-1", t, t + 100))
                .expect("issue")
                .cert_der;
            for (at, byte) in flips {
                let i = at.index(der.len());
                der[i] ^= byte;
            }
            let _ = identity_from_cert(&der);
            let len = cut.index(der.len());
            let _ = identity_from_cert(&der[..len]);
        }
    }
}

#[cfg(feature = "turmoil")]
mod simulated {
    use super::*;

    const PORT: u16 = 7420;

    async fn endpoint(
        creds: NodeCredentials,
        seed: u8,
    ) -> Result<NetEndpoint, Box<dyn std::error::Error>> {
        let addr = SocketAddr::from(([0, 0, 0, 0], PORT));
        Ok(NetEndpoint::bind_turmoil(addr, &creds, RevocationList::new(), [seed; 32]).await?)
    }

    #[test]
    fn quinn_runs_over_turmoil() {
        let seed = 7u64;
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let server_creds = creds(&ca, "cap-1");
        let client_creds = creds(&ca, "vol-1");
        let mut sim = turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(60))
            .rng_seed(seed)
            .build();
        sim.host("captain", move || {
            let creds = server_creds.clone();
            async move {
                let ep = endpoint(creds, 1).await?;
                let mut link = ep.accept().await.ok_or("endpoint closed")??;
                assert_eq!(link.peer.node_id, node("vol-1"));
                let mut got = Vec::new();
                while got.len() < 100_000 {
                    got.extend(link.recv().await?.ok_or("finished early")?);
                }
                assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 253) as u8));
                link.send(b"thanks").await?;
                link.finish()?;
                // Wait for the client to close the connection.
                let _ = link.recv().await;
                Ok(())
            }
        });
        sim.client("volunteer", async move {
            let ep = endpoint(client_creds, 2).await?;
            let addr = SocketAddr::new(turmoil::lookup("captain"), PORT);
            let mut link = ep.connect(addr).await?;
            assert_eq!(link.peer.node_id, node("cap-1"));
            let bulk: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
            link.send(&bulk).await?;
            let mut reply = Vec::new();
            while let Some(chunk) = link.recv().await? {
                reply.extend(chunk);
            }
            assert_eq!(reply, b"thanks");
            link.close("done");
            ep.wait_idle().await;
            Ok(())
        });
        if let Err(e) = sim.run() {
            panic!("simulation with seed {seed} failed: {e}");
        }
    }

    /// Reads until `len` bytes arrived (inside the simulation, where time is virtual).
    async fn read_sim(
        link: &mut PeerLink,
        len: usize,
    ) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut got = Vec::new();
        while got.len() < len {
            got.extend(link.recv().await?.ok_or("finished early")?);
        }
        Ok(got)
    }

    #[test]
    fn link_survives_a_short_partition_and_times_out_in_a_long_one() {
        let seed = 11u64;
        let ca = StreetCa::generate(STREET, now()).expect("ca");
        let server_creds = creds(&ca, "cap-1");
        let client_creds = creds(&ca, "vol-1");
        let mut sim = turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(180))
            .rng_seed(seed)
            .build();
        sim.host("captain", move || {
            let creds = server_creds.clone();
            async move {
                let ep = endpoint(creds, 3).await?;
                let mut link = ep.accept().await.ok_or("endpoint closed")??;
                assert_eq!(read_sim(&mut link, 1000).await?, vec![1u8; 1000]);
                link.send(b"ack1").await?;
                assert_eq!(read_sim(&mut link, 1000).await?, vec![2u8; 1000]);
                link.send(b"ack2").await?;
                let end = link.recv().await;
                assert!(end.is_err(), "the long partition ends the link: {end:?}");
                Ok(())
            }
        });
        sim.client("volunteer", async move {
            let ep = endpoint(client_creds, 4).await?;
            let addr = SocketAddr::new(turmoil::lookup("captain"), PORT);
            let mut link = ep.connect(addr).await?;
            link.send(&[1u8; 1000]).await?;
            assert_eq!(read_sim(&mut link, 4).await?, b"ack1");

            // 10 s without any packet: keep-alives are lost, the idle timeout (30 s) is not hit.
            turmoil::partition("volunteer", "captain");
            tokio::time::sleep(Duration::from_secs(10)).await;
            turmoil::repair("volunteer", "captain");
            link.send(&[2u8; 1000]).await?;
            assert_eq!(read_sim(&mut link, 4).await?, b"ack2");

            // 45 s: the link times out on both sides.
            turmoil::partition("volunteer", "captain");
            let started = turmoil::elapsed();
            let err = link.recv().await.expect_err("link must time out");
            let waited = turmoil::elapsed() - started;
            assert!(err.to_string().contains("timed out"), "{err}");
            assert!(
                waited >= Duration::from_secs(25),
                "timed out after {waited:?}"
            );
            Ok(())
        });
        if let Err(e) = sim.run() {
            panic!("simulation with seed {seed} failed: {e}");
        }
    }
}

mod discovery {
    use super::*;
    use gridsync_net::Discovery;
    use gridsync_net::discovery::has_multicast_interface;

    /// Real mDNS on this machine's interfaces (multicast works in the test sandbox). The
    /// street name is unique to this run, so other gridsync processes on the network do
    /// not interfere.
    #[tokio::test]
    async fn nodes_of_one_street_find_each_other_and_ignore_others() {
        if !has_multicast_interface() {
            eprintln!("skipping: no multicast-capable interface besides loopback on this machine");
            return;
        }
        let street = format!("mdns-test-{}", std::process::id());
        let mut captain = Discovery::start(&street, &node("cap-1"), 7001).expect("start");
        let volunteer = Discovery::start(&street, &node("vol-1"), 7002).expect("start");
        let stranger = Discovery::start("linhai", &node("vol-2"), 7003).expect("start");
        let found = tokio::time::timeout(WAIT, captain.next())
            .await
            .expect("no peer discovered within 10 s")
            .expect("discovery running");
        assert_eq!(found.node_id, node("vol-1"));
        assert_eq!(found.port, 7002);
        assert!(!found.addrs.is_empty());
        captain.shutdown();
        volunteer.shutdown();
        stranger.shutdown();
    }
}
