//! Sign-in sessions that survive a restart of the server: the cookie carries its expiry and
//! a random id, authenticated with a key the caller keeps in its store (HMAC-SHA256), so no
//! session table is needed. A phone's node restarts often (the OS stops Termux, the battery
//! runs out) and an office restarts for upgrades; nobody should have to sign in again each
//! time. Logging out forgets that id for the server's lifetime (and the browser drops the
//! cookie); replacing the key ends every session.

use std::collections::HashSet;
use std::sync::{Mutex, RwLock};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Sessions authenticated by one key.
#[derive(Debug)]
pub struct SignedSessions {
    /// Replaced (every session ended) by [`SignedSessions::replace_key`].
    key: RwLock<[u8; 32]>,
    lifetime_ms: u64,
    /// Ids logged out since the server started.
    closed: Mutex<HashSet<String>>,
}

/// A fresh random session key (32 bytes), for the caller to store.
pub fn new_session_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
}

impl SignedSessions {
    /// Sessions signed with `key`, each lasting `lifetime_ms`.
    pub fn new(key: [u8; 32], lifetime_ms: u64) -> Self {
        SignedSessions {
            key: RwLock::new(key),
            lifetime_ms,
            closed: Mutex::new(HashSet::new()),
        }
    }

    fn key(&self) -> [u8; 32] {
        *self.key.read().unwrap_or_else(|p| p.into_inner())
    }

    fn hmac(&self) -> HmacSha256 {
        // A key of any length is accepted by HMAC; 32 bytes always are.
        HmacSha256::new_from_slice(&self.key()).unwrap_or_else(|_| unreachable!())
    }

    fn mac(&self, body: &str) -> String {
        let mut mac = self.hmac();
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Signs sessions with `key` from now on: every session signed with the previous key
    /// ends. Returns whether the key changed.
    pub fn replace_key(&self, key: [u8; 32]) -> bool {
        let mut current = self.key.write().unwrap_or_else(|p| p.into_inner());
        let changed = *current != key;
        *current = key;
        changed
    }

    /// A new session at `now_ms`: the cookie value.
    pub fn open(&self, now_ms: u64) -> String {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let body = format!("{}.{}", now_ms + self.lifetime_ms, hex::encode(id));
        let mac = self.mac(&body);
        format!("{body}.{mac}")
    }

    /// Whether `cookie` is a session this key issued, not expired at `now_ms` nor closed.
    pub fn is_live(&self, cookie: &str, now_ms: u64) -> bool {
        let Some((body, mac)) = cookie.rsplit_once('.') else {
            return false;
        };
        let Some((expires, id)) = body.split_once('.') else {
            return false;
        };
        let Ok(expires) = expires.parse::<u64>() else {
            return false;
        };
        let Ok(given) = hex::decode(mac) else {
            return false;
        };
        let mut check = self.hmac();
        check.update(body.as_bytes());
        // verify_slice compares in constant time.
        check.verify_slice(&given).is_ok()
            && expires > now_ms
            && !self
                .closed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(id)
    }

    /// Ends the session `cookie` names (logout).
    pub fn close(&self, cookie: &str) {
        if let Some((_, id)) = cookie
            .rsplit_once('.')
            .and_then(|(body, _)| body.split_once('.'))
        {
            self.closed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(key: [u8; 32]) -> SignedSessions {
        SignedSessions::new(key, 10_000)
    }

    #[test]
    fn a_session_outlives_a_restart_but_not_its_key_expiry_or_logout() {
        let before = sessions([7; 32]);
        let cookie = before.open(1_000);
        // The same key after a restart: still live.
        let after = sessions([7; 32]);
        assert!(after.is_live(&cookie, 2_000));
        assert!(!after.is_live(&cookie, 11_000), "expired");
        assert!(!sessions([8; 32]).is_live(&cookie, 2_000), "another key");
        // Tampering with the expiry breaks the MAC.
        let (expires, rest) = cookie.split_once('.').expect("shape");
        let longer = format!(
            "{}.{rest}",
            expires.parse::<u64>().expect("expiry") + 1_000_000
        );
        assert!(!after.is_live(&longer, 2_000));
        for junk in ["", "x", "1.2", "1.2.zz", "99999999999999.ab.cd"] {
            assert!(!after.is_live(junk, 2_000), "{junk:?}");
        }
        after.close(&cookie);
        assert!(!after.is_live(&cookie, 2_000), "logged out");
    }

    #[test]
    fn a_new_key_ends_every_session_at_once() {
        let live = sessions([7; 32]);
        let cookie = live.open(1_000);
        assert!(!live.replace_key([7; 32]), "the same key changes nothing");
        assert!(live.is_live(&cookie, 2_000));
        assert!(live.replace_key([9; 32]));
        assert!(!live.is_live(&cookie, 2_000), "signed with the old key");
        assert!(live.is_live(&live.open(2_000), 3_000), "new sign-ins work");
    }
}
