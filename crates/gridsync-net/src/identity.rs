//! The device identity a certificate carries, and its encoding in a private X.509 extension.
//!
//! The extension (OID [`IDENTITY_EXTENSION_OID`], non-critical) holds a DER `UTF8String`
//! whose text is a small JSON object `{"v":1,"street":..,"node":..,"role":..,"scopes":[..]}`
//! with scopes written as `access:prefix` grants. Validity comes from the certificate's own
//! `notBefore`/`notAfter`, and the subject common name must equal the node id, so the one
//! signature of the CA binds all of it.

use gridsync_proto::path::validate_segment;
use gridsync_proto::{NodeId, Role, ScopeGrant, Scopes};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The private OID under which the identity extension lives (gridsync arc 57264.77, item 1).
pub const IDENTITY_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 77, 1];
/// The same OID in dotted form, as x509-parser prints it.
pub const IDENTITY_EXTENSION_OID_STR: &str = "1.3.6.1.4.1.57264.77.1";

/// Largest certificate we parse at all; ours are about 700 bytes.
pub const MAX_CERT_LEN: usize = 16 * 1024;
/// Largest identity extension we decode.
const MAX_EXTENSION_LEN: usize = 8 * 1024;
/// Most scope grants one identity may carry.
const MAX_GRANTS: usize = 64;
/// Version of the JSON claim inside the extension.
const CLAIM_VERSION: u8 = 1;
/// DER tag of `UTF8String`.
const UTF8_STRING_TAG: u8 = 0x0c;

/// Who a device is, as the street office enrolled it and as its certificate proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceIdentity {
    /// The street (CA) the device belongs to; peers of another street are refused.
    pub street: String,
    /// The device's stable node id; also the certificate's subject common name.
    pub node_id: NodeId,
    /// What kind of device it is.
    pub role: Role,
    /// What the device may read, write or carry.
    pub scopes: Scopes,
    /// Start of validity, unix seconds.
    pub not_before: u64,
    /// End of validity, unix seconds.
    pub not_after: u64,
}

/// Why a certificate does not carry a usable gridsync identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certificate is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("certificate is not valid DER X.509: {0}")]
    Malformed(String),
    #[error("certificate has trailing bytes after its DER encoding")]
    TrailingBytes,
    #[error("certificate has no gridsync identity extension ({IDENTITY_EXTENSION_OID_STR})")]
    MissingExtension,
    #[error("certificate has more than one gridsync identity extension")]
    DuplicateExtension,
    #[error("gridsync identity extension is not a DER UTF8String")]
    ExtensionEncoding,
    #[error("gridsync identity extension is {len} bytes, more than the {max} allowed")]
    ExtensionTooLarge { len: usize, max: usize },
    #[error("gridsync identity claim is not valid: {0}")]
    Claim(String),
    #[error("gridsync identity claim has version {0}, only version 1 is known")]
    UnsupportedVersion(u8),
    #[error("street name {0:?} is not a valid path segment")]
    InvalidStreet(String),
    #[error("identity carries {0} scope grants, more than the 64 allowed")]
    TooManyGrants(usize),
    #[error("certificate common name {common_name:?} differs from node id {node_id:?}")]
    CommonNameMismatch {
        common_name: String,
        node_id: String,
    },
    #[error("certificate validity {not_before}..{not_after} is not representable")]
    BadValidity { not_before: i64, not_after: i64 },
}

/// The JSON claim inside the extension. Scopes travel as `access:prefix` strings, which are
/// shorter than the structured form and reuse `ScopeGrant`'s parser.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityClaim {
    v: u8,
    street: String,
    node: NodeId,
    role: Role,
    scopes: Vec<String>,
}

/// Checks that a street name is usable: the same alphabet and bounds as a path segment.
pub fn validate_street(street: &str) -> Result<(), CertError> {
    validate_segment(street).map_err(|_| CertError::InvalidStreet(street.to_owned()))
}

/// Encodes the identity claim (everything but validity) as the extension's DER content.
pub(crate) fn encode_extension(identity: &DeviceIdentity) -> Result<Vec<u8>, CertError> {
    validate_street(&identity.street)?;
    if identity.scopes.0.len() > MAX_GRANTS {
        return Err(CertError::TooManyGrants(identity.scopes.0.len()));
    }
    let claim = IdentityClaim {
        v: CLAIM_VERSION,
        street: identity.street.clone(),
        node: identity.node_id.clone(),
        role: identity.role,
        scopes: identity.scopes.0.iter().map(ToString::to_string).collect(),
    };
    let json = serde_json::to_vec(&claim).map_err(|e| CertError::Claim(e.to_string()))?;
    if json.len() > MAX_EXTENSION_LEN {
        return Err(CertError::ExtensionTooLarge {
            len: json.len(),
            max: MAX_EXTENSION_LEN,
        });
    }
    let mut out = Vec::with_capacity(json.len() + 4);
    out.push(UTF8_STRING_TAG);
    // MAX_EXTENSION_LEN < 65536, so at most two length bytes are needed.
    match json.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n <= 0xff => out.extend_from_slice(&[0x81, n as u8]),
        n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(&json);
    Ok(out)
}

/// Decodes the extension's DER `UTF8String` into the claim's JSON bytes.
fn decode_utf8_string(content: &[u8]) -> Result<&[u8], CertError> {
    let (&tag, rest) = content.split_first().ok_or(CertError::ExtensionEncoding)?;
    if tag != UTF8_STRING_TAG {
        return Err(CertError::ExtensionEncoding);
    }
    let (&first, rest) = rest.split_first().ok_or(CertError::ExtensionEncoding)?;
    let (len, body) = match first {
        n if n < 0x80 => (usize::from(n), rest),
        0x81 => match rest {
            [n, body @ ..] if *n >= 0x80 => (usize::from(*n), body),
            _ => return Err(CertError::ExtensionEncoding),
        },
        0x82 => match rest {
            [hi, lo, body @ ..] if *hi != 0 => (usize::from(*hi) << 8 | usize::from(*lo), body),
            _ => return Err(CertError::ExtensionEncoding),
        },
        _ => return Err(CertError::ExtensionEncoding),
    };
    if len > MAX_EXTENSION_LEN {
        return Err(CertError::ExtensionTooLarge {
            len,
            max: MAX_EXTENSION_LEN,
        });
    }
    if body.len() != len {
        return Err(CertError::ExtensionEncoding);
    }
    Ok(body)
}

/// Parses the identity out of a DER certificate. This does not verify any signature: callers
/// decide trust (the TLS verifiers check the chain; invites check it against the CA).
pub fn identity_from_cert(der: &[u8]) -> Result<DeviceIdentity, CertError> {
    if der.len() > MAX_CERT_LEN {
        return Err(CertError::TooLarge {
            len: der.len(),
            max: MAX_CERT_LEN,
        });
    }
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::TrailingBytes);
    }
    identity_from_parsed(&cert)
}

/// The same as [`identity_from_cert`] on an already parsed certificate.
pub(crate) fn identity_from_parsed(
    cert: &X509Certificate<'_>,
) -> Result<DeviceIdentity, CertError> {
    let mut found = None;
    for ext in cert.extensions() {
        if ext.oid.to_id_string() == IDENTITY_EXTENSION_OID_STR {
            if found.is_some() {
                return Err(CertError::DuplicateExtension);
            }
            found = Some(ext.value);
        }
    }
    let content = found.ok_or(CertError::MissingExtension)?;
    let json = decode_utf8_string(content)?;
    let claim: IdentityClaim =
        serde_json::from_slice(json).map_err(|e| CertError::Claim(e.to_string()))?;
    if claim.v != CLAIM_VERSION {
        return Err(CertError::UnsupportedVersion(claim.v));
    }
    validate_street(&claim.street)?;
    if claim.scopes.len() > MAX_GRANTS {
        return Err(CertError::TooManyGrants(claim.scopes.len()));
    }
    let grants = claim
        .scopes
        .iter()
        .map(|g| g.parse::<ScopeGrant>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(CertError::Claim)?;

    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    if common_name != claim.node.as_str() {
        return Err(CertError::CommonNameMismatch {
            common_name: common_name.to_owned(),
            node_id: claim.node.to_string(),
        });
    }
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let (Ok(nb), Ok(na)) = (u64::try_from(not_before), u64::try_from(not_after)) else {
        return Err(CertError::BadValidity {
            not_before,
            not_after,
        });
    };
    Ok(DeviceIdentity {
        street: claim.street,
        node_id: claim.node,
        role: claim.role,
        scopes: Scopes(grants),
        not_before: nb,
        not_after: na,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_string_wrapper_round_trips_all_length_forms() {
        for n in [0usize, 1, 127, 128, 255, 256, 4000] {
            let body = vec![b'a'; n];
            let mut der = vec![UTF8_STRING_TAG];
            match n {
                n if n < 0x80 => der.push(n as u8),
                n if n <= 0xff => der.extend_from_slice(&[0x81, n as u8]),
                n => der.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
            }
            der.extend_from_slice(&body);
            assert_eq!(decode_utf8_string(&der), Ok(&body[..]), "length {n}");
        }
    }

    #[test]
    fn utf8_string_wrapper_rejects_bad_headers() {
        let bad: &[&[u8]] = &[
            &[],
            &[0x04, 0x00],             // OCTET STRING, not UTF8String
            &[0x0c],                   // no length
            &[0x0c, 0x05, b'a'],       // short body
            &[0x0c, 0x01, b'a', b'b'], // trailing byte
            &[0x0c, 0x81, 0x05],       // non-minimal long form
            &[0x0c, 0x82, 0x00, 0x90], // non-minimal long form
            &[0x0c, 0x83, 0, 0, 1],    // three length bytes
            &[0x0c, 0x82, 0xff, 0xff], // too large
        ];
        for der in bad {
            assert!(decode_utf8_string(der).is_err(), "{der:?} accepted");
        }
    }
}
