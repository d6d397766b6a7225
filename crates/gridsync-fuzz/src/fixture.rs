//! The fixed test street the targets use: a street CA (certificate and key, for the seed
//! generator to issue device certificates and invites) and the office's certificate, in
//! `fixtures/street.json`, written once by the seed generator
//! (`cargo test -p gridsync-fuzz -- --ignored generate_seed_corpus`).
//!
//! A fixed CA keeps saved inputs meaningful: a certificate in a saved directory change
//! verifies in every run, so the fuzzer can start from entries that pass.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The street of the fixture CA.
pub const STREET: &str = "s";

/// The fixture file's contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Street {
    /// The CA certificate, PEM.
    pub ca_cert_pem: String,
    /// The CA key, PEM (a test key: it signs nothing but fixtures and seeds).
    pub ca_key_pem: String,
    /// The CA certificate, DER in hex.
    pub ca_cert_der: String,
    /// The office's device certificate (node `office`, role office), DER in hex.
    pub office_cert_der: String,
}

const STREET_JSON: &str = include_str!("../fixtures/street.json");

/// The fixture street (panics if the fixture file is missing or broken: that is a broken
/// checkout, not a finding).
pub fn street() -> &'static Street {
    static STREET: OnceLock<Street> = OnceLock::new();
    STREET.get_or_init(|| serde_json::from_str(STREET_JSON).expect("fixtures/street.json parses"))
}

/// The CA certificate, DER.
pub fn ca_cert_der() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| hex::decode(&street().ca_cert_der).expect("fixture CA hex"))
}

/// The office's certificate, DER.
pub fn office_cert_der() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| hex::decode(&street().office_cert_der).expect("fixture office hex"))
}
