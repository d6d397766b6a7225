//! A node's credentials, kept in its store: the invite it joined with (certificate, key,
//! street CA, office addresses) and, on the office only, the street CA's key.

use gridsync_net::{Invite, InviteError, NodeCredentials, StreetCa, StreetCaPem};
use gridsync_proto::{Access, PathError, ScopeGrant, Scopes};
use gridsync_store::{Store, StoreError};

/// Metadata key of the installed invite (its file bytes, as `gridsync join` read them).
pub const INVITE_KEY: &str = "credentials.invite";
/// Metadata keys of the street CA (office only).
pub const CA_CERT_KEY: &str = "credentials.ca_cert_pem";
pub const CA_KEY_KEY: &str = "credentials.ca_key_pem";

/// Why credentials could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored invite is not valid: {0}")]
    Invite(#[from] InviteError),
    #[error(
        "this device has no identity yet: run `gridsync join INVITE` (or `gridsync office init` at the office)"
    )]
    NoIdentity,
    #[error("this node holds no street CA: only the office can enroll and revoke devices")]
    NotOffice,
    #[error("the stored street CA is not text")]
    BadCaText(#[source] std::string::FromUtf8Error),
    #[error("the stored street CA is not valid")]
    BadCa(#[source] gridsync_net::CaError),
}

/// Stores an invite as this device's identity.
pub fn install_invite(store: &mut Store, invite: &Invite) -> Result<(), CredentialsError> {
    store.put_meta(INVITE_KEY, &invite.to_bytes())?;
    Ok(())
}

/// The installed invite, if any.
pub fn load_invite(store: &Store) -> Result<Option<Invite>, CredentialsError> {
    match store.get_meta(INVITE_KEY)? {
        Some(bytes) => Ok(Some(Invite::parse(&bytes)?)),
        None => Ok(None),
    }
}

/// The credentials a node runs with.
pub fn load_credentials(store: &Store) -> Result<(Invite, NodeCredentials), CredentialsError> {
    let invite = load_invite(store)?.ok_or(CredentialsError::NoIdentity)?;
    let creds = invite.credentials()?;
    Ok((invite, creds))
}

pub fn save_street_ca(store: &mut Store, ca: &StreetCa) -> Result<(), CredentialsError> {
    let pem = ca.to_pem();
    store.put_meta(CA_CERT_KEY, pem.cert_pem.as_bytes())?;
    store.put_meta(CA_KEY_KEY, pem.key_pem.as_bytes())?;
    Ok(())
}

pub fn load_street_ca(store: &Store) -> Result<StreetCa, CredentialsError> {
    let cert = store
        .get_meta(CA_CERT_KEY)?
        .ok_or(CredentialsError::NotOffice)?;
    let key = store
        .get_meta(CA_KEY_KEY)?
        .ok_or(CredentialsError::NotOffice)?;
    let pem = StreetCaPem {
        cert_pem: String::from_utf8(cert).map_err(CredentialsError::BadCaText)?,
        key_pem: String::from_utf8(key).map_err(CredentialsError::BadCaText)?,
    };
    StreetCa::from_pem(&pem).map_err(CredentialsError::BadCa)
}

/// Adds the grants every device of a street needs on the street-wide documents: read the
/// plan (to validate writes) and the revocation list (to refuse revoked peers), and carry
/// both, so that they reach offline devices by relay through whichever device meets them
/// first; read and write the device directory (each device publishes its own certificate
/// there; entries verify themselves, see [`crate::directory`]). Grants already implied by a
/// wider one are not repeated.
pub fn add_street_wide_grants(street: &str, scopes: &mut Scopes) -> Result<(), PathError> {
    let docs = [
        gridsync_model::plan_path(street)?,
        crate::revocations::revocations_path(street)?,
    ];
    // Every device publishes its own certificate in the device directory.
    let directory = crate::directory::directory_path(street)?;
    for access in [Access::Read, Access::Write] {
        let granted = match access {
            Access::Read => scopes.may_read(&directory),
            _ => scopes.may_write(&directory),
        };
        if !granted {
            scopes.0.push(ScopeGrant {
                access,
                prefix: directory.clone(),
            });
        }
    }
    for doc in docs {
        if !scopes.may_read(&doc) {
            scopes.0.push(ScopeGrant {
                access: Access::Read,
                prefix: doc.clone(),
            });
        }
        if !scopes.may_write(&doc) && !scopes.may_carry(&doc) {
            scopes.0.push(ScopeGrant {
                access: Access::Carry,
                prefix: doc,
            });
        }
    }
    Ok(())
}
