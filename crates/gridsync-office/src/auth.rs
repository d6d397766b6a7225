//! Office credentials: the dashboard and API show personal data, so every route but
//! `/healthz` and the login page needs either the office token (`Authorization: Bearer T`, for
//! scripts) or a session cookie that the login form sets (HttpOnly, SameSite=Strict, for
//! browsers: an `EventSource` cannot send headers).
//!
//! The token is 32 random bytes in hex, created once per office data directory and kept in the
//! store's metadata ([`load_or_create_token`]); session cookies are signed with a key kept
//! there too ([`session_key`], `gridsync_web::SignedSessions`), so a login survives the
//! office's restarts and ends after [`SESSION_LIFETIME_MS`] or at logout.
//! [`check_bind_address`] keeps the server off public addresses unless the operator says
//! otherwise.

use gridsync_node::Replica;
use gridsync_web::Secret;

pub use gridsync_web::check_bind_address;

/// Store metadata key under which the office token is kept.
pub const TOKEN_META_KEY: &str = "office_http_token";
/// Store metadata key of the key that signs the dashboard's session cookies.
pub const SESSION_KEY_META: &str = "office_session_key";

/// The key that signs the dashboard's session cookies, so a login survives the office's
/// restarts; made and stored on first use. If the store cannot be read or written the office
/// still serves, with a key for this run only (logins then end at the next restart).
pub fn session_key(replica: &mut Replica) -> [u8; 32] {
    if let Some(key) = stored_session_key(replica) {
        return key;
    }
    let key = gridsync_web::new_session_key();
    if let Err(error) = replica.put_meta(SESSION_KEY_META, &key) {
        tracing::warn!(%error, "cannot store the session key: logins will end when the office restarts");
    }
    key
}

/// Replaces the stored session key, ending every dashboard session: at once for an office
/// started afterwards, within [`SESSION_KEY_CHECK`] for a running one.
pub fn end_sessions(replica: &mut Replica) -> Result<(), gridsync_store::StoreError> {
    replica.put_meta(SESSION_KEY_META, &gridsync_web::new_session_key())
}

/// How often a running office looks for a session key replaced by [`end_sessions`] (from the
/// command line, while it runs).
pub const SESSION_KEY_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The stored session key, if there is a well-formed one.
pub(crate) fn stored_session_key(replica: &Replica) -> Option<[u8; 32]> {
    let stored = replica.store().get_meta(SESSION_KEY_META).ok()??;
    <[u8; 32]>::try_from(stored.as_slice()).ok()
}

/// Shortest token accepted when configured by hand.
pub const MIN_TOKEN_CHARS: usize = 16;
/// How long a login lasts: 12 hours, one shift.
pub const SESSION_LIFETIME_MS: u64 = 12 * 3_600_000;

/// Why a token or address was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("office token must be at least {MIN_TOKEN_CHARS} printable ASCII characters")]
    TooWeak,
    #[error("stored office token is not valid text")]
    Corrupt,
    #[error(transparent)]
    Store(#[from] gridsync_store::StoreError),
    #[error(transparent)]
    PublicAddress(#[from] gridsync_web::PublicAddress),
}

/// The office's secret. Compared by digest so the comparison time says nothing about it.
#[derive(Clone, Debug)]
pub struct OfficeToken(Secret);

impl OfficeToken {
    /// A fresh random token (64 hex digits).
    pub fn generate() -> Self {
        OfficeToken(Secret::generate())
    }

    /// A token configured by hand: at least [`MIN_TOKEN_CHARS`] printable ASCII characters.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        if text.len() < MIN_TOKEN_CHARS || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::TooWeak);
        }
        Ok(OfficeToken(Secret::new(text.to_owned())))
    }

    /// The token's text, to print once for the operator.
    pub fn reveal(&self) -> &str {
        self.0.reveal()
    }

    /// Whether `candidate` is this token.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.matches(candidate)
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
}
