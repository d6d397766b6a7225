//! Enrollment invites.

use gridsync_net::{ChangeSigner, Invite};

/// Parses arbitrary bytes as an invite file. Invariants for an invite that parses: it
/// yields credentials, its device key makes a change signer (a node could not sign its
/// changes otherwise), and it survives a round trip through its own bytes.
pub fn parse_invite(data: &[u8]) {
    let Ok(invite) = Invite::parse(data) else {
        return;
    };
    let credentials = invite
        .credentials()
        .expect("a validated invite yields credentials");
    assert!(
        ChangeSigner::from_pkcs8(&credentials.key_der).is_ok(),
        "a validated invite's key signs changes"
    );
    let again = Invite::parse(&invite.to_bytes()).expect("an invite's own bytes parse");
    assert_eq!(again, invite);
}
