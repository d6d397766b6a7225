//! Office credentials: the dashboard and API show personal data, so every route but
//! `/healthz` and the login page needs either the office token (`Authorization: Bearer T`, for
//! scripts) or a session cookie that the login form sets (HttpOnly, SameSite=Strict, for
//! browsers: an `EventSource` cannot send headers).
//!
//! The token is 32 random bytes in hex, created once per office data directory and kept in the
//! store's metadata ([`load_or_create_token`]); sessions live in memory and end after
//! [`SESSION_LIFETIME_MS`] or when the node stops. [`check_bind_address`] keeps the server off
//! public addresses unless the operator says otherwise.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use gridsync_node::Replica;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Store metadata key under which the office token is kept.
pub const TOKEN_META_KEY: &str = "office_http_token";
/// Shortest token accepted when configured by hand.
pub const MIN_TOKEN_CHARS: usize = 16;
/// How long a login lasts: 12 hours, one shift.
pub const SESSION_LIFETIME_MS: u64 = 12 * 3_600_000;
/// Most sessions kept at once; the oldest go first.
const MAX_SESSIONS: usize = 1_024;

/// Why a token or address was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("office token must be at least {MIN_TOKEN_CHARS} printable ASCII characters")]
    TooWeak,
    #[error("stored office token is not valid text")]
    Corrupt,
    #[error(transparent)]
    Store(#[from] gridsync_store::StoreError),
    #[error(
        "{0} is not a loopback or private address; the dashboard shows personal data, so serve it on a public address only when explicitly allowed"
    )]
    PublicAddress(SocketAddr),
}

/// The office's secret. Compared by digest so the comparison time says nothing about it.
#[derive(Clone)]
pub struct OfficeToken {
    text: String,
    digest: [u8; 32],
}

impl std::fmt::Debug for OfficeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OfficeToken(..)")
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl OfficeToken {
    /// A fresh random token (64 hex digits).
    pub fn generate() -> Self {
        Self::from_trusted(random_hex())
    }

    /// A token configured by hand: at least [`MIN_TOKEN_CHARS`] printable ASCII characters.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        if text.len() < MIN_TOKEN_CHARS || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::TooWeak);
        }
        Ok(Self::from_trusted(text.to_owned()))
    }

    fn from_trusted(text: String) -> Self {
        let digest = digest(&text);
        OfficeToken { text, digest }
    }

    /// The token's text, to print once for the operator.
    pub fn reveal(&self) -> &str {
        &self.text
    }

    /// Whether `candidate` is this token.
    pub fn matches(&self, candidate: &str) -> bool {
        let other = digest(candidate);
        self.digest
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The office token of this data directory, created and stored on first use. Returns the
/// token and whether it was just created (print it then: it is the officials' password).
pub fn load_or_create_token(replica: &mut Replica) -> Result<(OfficeToken, bool), TokenError> {
    if let Some(bytes) = replica.store().get_meta(TOKEN_META_KEY)? {
        let text = String::from_utf8(bytes).map_err(|_| TokenError::Corrupt)?;
        return Ok((OfficeToken::parse(&text)?, false));
    }
    let token = OfficeToken::generate();
    replica.put_meta(TOKEN_META_KEY, token.reveal().as_bytes())?;
    Ok((token, true))
}

/// Refuses to serve on an address outside loopback and private networks unless
/// `allow_public`. The unspecified address (all interfaces) counts as public.
pub fn check_bind_address(addr: SocketAddr, allow_public: bool) -> Result<(), TokenError> {
    let private = match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        IpAddr::V6(ip) => {
            ip.is_loopback()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    if private || allow_public {
        Ok(())
    } else {
        Err(TokenError::PublicAddress(addr))
    }
}

/// Browser sessions opened by the login form: random ids with an expiry.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, u64>>,
}

impl Sessions {
    /// Opens a session at `now_ms`; returns its id (the cookie value).
    pub fn open(&self, now_ms: u64) -> String {
        let id = random_hex();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, expires| *expires > now_ms);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(id.clone(), now_ms + SESSION_LIFETIME_MS);
        id
    }

    /// Whether `id` is a live session at `now_ms`.
    pub fn is_live(&self, id: &str, now_ms: u64) -> bool {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id).is_some_and(|expires| *expires > now_ms)
    }

    /// Ends a session (logout).
    pub fn close(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves_and_weak_ones_are_refused() {
        let t = OfficeToken::generate();
        assert_eq!(t.reveal().len(), 64);
        assert!(t.matches(t.reveal()));
        assert!(!t.matches("nope"));
        assert!(!t.matches(&t.reveal()[1..]));
        assert!(OfficeToken::parse("short").is_err());
        assert!(OfficeToken::parse("sixteen chars ok").is_err(), "space");
        assert!(OfficeToken::parse("sixteen-chars-ok").is_ok());
        assert!(!format!("{t:?}").contains(t.reveal()));
    }

    #[test]
    fn public_addresses_need_explicit_permission() {
        let ok = [
            "127.0.0.1:80",
            "10.1.2.3:80",
            "192.168.1.5:80",
            "[::1]:80",
            "[fd00::1]:80",
        ];
        for a in ok {
            assert!(
                check_bind_address(a.parse().expect("addr"), false).is_ok(),
                "{a}"
            );
        }
        for a in ["0.0.0.0:80", "8.8.8.8:80", "[::]:80", "[2001:db8::1]:80"] {
            let addr = a.parse().expect("addr");
            assert!(check_bind_address(addr, false).is_err(), "{a}");
            assert!(check_bind_address(addr, true).is_ok(), "{a}");
        }
    }

    #[test]
    fn sessions_expire() {
        let s = Sessions::default();
        let id = s.open(1_000);
        assert!(s.is_live(&id, 2_000));
        assert!(!s.is_live(&id, 1_000 + SESSION_LIFETIME_MS));
        assert!(!s.is_live("forged", 2_000));
        s.close(&id);
        assert!(!s.is_live(&id, 2_000));
    }
}
