//! A secret compared by digest, so the comparison time says nothing about it.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// 32 random bytes in hex (64 characters): session ids and generated tokens.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A token kept as text (to show once) and compared through its SHA-256 digest.
#[derive(Clone)]
pub struct Secret {
    text: String,
    digest: [u8; 32],
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn new(text: String) -> Self {
        let digest = digest(&text);
        Secret { text, digest }
    }

    /// A fresh random secret ([`random_hex`]).
    pub fn generate() -> Self {
        Secret::new(random_hex())
    }

    /// The secret's text, to print once for its owner.
    pub fn reveal(&self) -> &str {
        &self.text
    }

    /// Whether `candidate` is this secret.
    pub fn matches(&self, candidate: &str) -> bool {
        let other = digest(candidate);
        self.digest
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_themselves_and_never_print() {
        let s = Secret::generate();
        assert_eq!(s.reveal().len(), 64);
        assert!(s.matches(s.reveal()));
        assert!(!s.matches(&s.reveal()[1..]));
        assert!(!format!("{s:?}").contains(s.reveal()));
    }
}
