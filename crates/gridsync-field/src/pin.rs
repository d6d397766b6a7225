//! The device user's PIN: chosen at `gridsync join` (or `gridsync pin set`), kept in the
//! store's metadata as an Argon2id hash (a slow hash: a stolen store does not give the PIN
//! away cheaply), checked at the app's login (wrong guesses throttled by
//! `gridsync_web::LoginThrottle`).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use gridsync_node::Replica;
use rand::RngCore;

/// Store metadata key of the PIN's hash (a PHC string).
pub const PIN_META_KEY: &str = "field_pin_argon2";
/// Store metadata key of the key that signs the app's session cookies.
pub const SESSION_KEY_META: &str = "field_session_key";

/// The key that signs the app's session cookies, made on first use (a new PIN replaces it).
pub fn session_key(replica: &mut Replica) -> Result<[u8; 32], gridsync_store::StoreError> {
    let stored = replica.store().get_meta(SESSION_KEY_META)?;
    if let Some(key) = stored.as_deref().and_then(|k| <[u8; 32]>::try_from(k).ok()) {
        return Ok(key);
    }
    let key = gridsync_web::new_session_key();
    replica.put_meta(SESSION_KEY_META, &key)?;
    Ok(key)
}

/// Fewest and most digits of a PIN.
pub const MIN_PIN_DIGITS: usize = 4;
pub const MAX_PIN_DIGITS: usize = 12;

/// Why a PIN could not be set or read.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("a PIN is {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits (0-9), nothing else")]
    BadPin,
    #[error("the stored PIN hash is damaged: set the PIN again with `gridsync pin set`")]
    Corrupt,
    #[error("cannot hash the PIN: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] gridsync_store::StoreError),
}

/// A PIN's Argon2id hash, as stored.
#[derive(Debug, Clone)]
pub struct PinHash(String);

impl PinHash {
    /// Hashes `pin` (checked first: digits only, 4 to 12 of them) with a fresh salt.
    pub fn new(pin: &str) -> Result<Self, PinError> {
        if !(MIN_PIN_DIGITS..=MAX_PIN_DIGITS).contains(&pin.len())
            || !pin.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(PinError::BadPin);
        }
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| PinError::Hash(e.to_string()))?;
        let hash = Argon2::default()
            .hash_password(pin.as_bytes(), &salt)
            .map_err(|e| PinError::Hash(e.to_string()))?;
        Ok(PinHash(hash.to_string()))
    }

    /// Whether `candidate` is the PIN. Slow on purpose (tens of milliseconds): call it off the
    /// async workers.
    pub fn verify(&self, candidate: &str) -> bool {
        PasswordHash::new(&self.0).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(candidate.as_bytes(), &hash)
                .is_ok()
        })
    }

    /// The hash stored in `replica`, if a PIN was set.
    pub fn load(replica: &Replica) -> Result<Option<Self>, PinError> {
        let Some(bytes) = replica.store().get_meta(PIN_META_KEY)? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| PinError::Corrupt)?;
        PasswordHash::new(&text).map_err(|_| PinError::Corrupt)?;
        Ok(Some(PinHash(text)))
    }

    /// Stores this hash as the device's PIN (replacing an earlier one). Every session signed
    /// in with the old PIN ends (a new session key).
    pub fn save(&self, replica: &mut Replica) -> Result<(), PinError> {
        replica.put_meta(PIN_META_KEY, self.0.as_bytes())?;
        replica.put_meta(SESSION_KEY_META, &gridsync_web::new_session_key())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_digits_and_verify_only_themselves() {
        for bad in ["123", "1234567890123", "12a4", "12 34", ""] {
            assert!(
                matches!(PinHash::new(bad), Err(PinError::BadPin)),
                "{bad:?}"
            );
        }
        let hash = PinHash::new("2468").expect("hash");
        assert!(hash.0.starts_with("$argon2id$"), "{}", hash.0);
        assert!(!hash.0.contains("2468"));
        assert!(hash.verify("2468"));
        assert!(!hash.verify("2469"));
        assert!(!hash.verify(""));
        // A fresh salt each time: one PIN never hashes the same twice.
        assert_ne!(hash.0, PinHash::new("2468").expect("hash").0);
    }
}
