//! Node configuration: what `gridsync run` turns its TOML file and flags into.
//!
//! The clap structures stay in the binary; this is the validated, serde-loadable form the
//! library takes, with defaults a newcomer can run with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default UDP port a node listens on.
pub const DEFAULT_PORT: u16 = 7700;

/// Default cap on links open at once to one peer (one certificate). Two links to a peer
/// coexist normally for a while (both sides dialed at once, or a restarted peer's old link
/// not yet timed out); four leaves room for that and for a flapping network.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 4;
/// Default cap on links open at once in total. An office meets a few dozen devices at a
/// time (60 captains, volunteers passing by); each link holds at most a few MiB of session
/// buffers, so 256 bounds the office's connection memory well inside a small server.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default time a peer's frame may take to arrive once begun (see
/// `gridsync_proto::Limits::frame_timeout_ms`).
pub const DEFAULT_FRAME_TIMEOUT_MS: u64 = 30_000;

/// A volunteer's device holds its grid's buildings and the street-wide documents: the
/// reference street (../shared/scenario.md) has about 1,000 buildings in 638 micro-grids,
/// so even a volunteer scoped to the whole street, carrying every building, holds about
/// 1,000 documents. 5,000 never bites an honest phone, and stops a peer from filling it
/// with documents named inside its scopes.
pub const VOLUNTEER_DEFAULT_MAX_DOCUMENTS: usize = 5_000;
/// A volunteer's default store cap: a week of daily sweeps of the whole street is about
/// 100,000 visit records, roughly 100 MiB of automerge history plus the plan; 512 MiB is
/// several times that, and a small share of a phone's storage.
pub const VOLUNTEER_DEFAULT_MAX_STORE_BYTES: u64 = 512 * 1024 * 1024;

/// The storage caps a node runs with, and whether they are a role's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageCaps {
    pub max_documents: Option<usize>,
    pub max_store_bytes: Option<u64>,
    /// True when at least one cap is a role default rather than the configuration's.
    pub defaulted: bool,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config value {field} is not valid: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// Everything a running node needs besides its data directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// UDP address the QUIC endpoint listens on.
    pub listen: SocketAddr,
    /// Peers to dial and keep dialing (in addition to the office addresses of the invite).
    pub peers: Vec<SocketAddr>,
    /// Advertise this node and connect to nodes of the same street found on the LAN.
    pub mdns: bool,
    /// Reconnect backoff: first delay, in milliseconds.
    pub backoff_initial_ms: u64,
    /// Reconnect backoff: largest delay, in milliseconds.
    pub backoff_max_ms: u64,
    /// Serve the office dashboard and API on this address (office nodes only).
    pub http: Option<SocketAddr>,
    /// Serve the field app (the device user's phone pages and local API) on this address,
    /// normally loopback (`127.0.0.1:7878`). `None`: not served.
    pub ui: Option<SocketAddr>,
    /// Most documents this device stores; past it, new documents are refused (from peers
    /// and local writes) while everything already stored keeps syncing. `None`: no cap.
    pub max_documents: Option<usize>,
    /// Most bytes the store may take on disk; past it, changes are refused. `None`: no cap.
    pub max_store_bytes: Option<u64>,
    /// Most links open at once to one peer (certificate); more are refused at once.
    pub max_connections_per_peer: usize,
    /// Most links open at once in total; more are refused at once.
    pub max_connections: usize,
    /// Milliseconds a peer's frame may take to arrive once its first byte has (longer while
    /// bytes keep coming at a minimum rate); then the connection is closed.
    pub frame_timeout_ms: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            peers: Vec::new(),
            mdns: true,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            http: None,
            ui: None,
            max_documents: None,
            max_store_bytes: None,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            frame_timeout_ms: DEFAULT_FRAME_TIMEOUT_MS,
        }
    }
}

impl NodeConfig {
    /// Loads a TOML file; missing fields take their defaults, unknown fields are an error
    /// (a typo must not silently do nothing).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backoff_initial_ms == 0 {
            return Err(ConfigError::Invalid {
                field: "backoff_initial_ms",
                message: "must be at least 1".into(),
            });
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(ConfigError::Invalid {
                field: "backoff_max_ms",
                message: "must be at least backoff_initial_ms".into(),
            });
        }
        for (field, value) in [
            (
                "max_connections_per_peer",
                self.max_connections_per_peer as u64,
            ),
            ("max_connections", self.max_connections as u64),
            ("frame_timeout_ms", self.frame_timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    message: "must be at least 1".into(),
                });
            }
        }
        Ok(())
    }

    /// The storage caps for a node of `role`: the configured ones, and for a volunteer's
    /// device (a phone) [`VOLUNTEER_DEFAULT_MAX_DOCUMENTS`] and
    /// [`VOLUNTEER_DEFAULT_MAX_STORE_BYTES`] where the configuration sets none. Other roles
    /// run on laptops and servers whose operator sizes them, so they get no default cap.
    pub fn storage_caps(&self, role: gridsync_proto::Role) -> StorageCaps {
        let volunteer = role == gridsync_proto::Role::Volunteer;
        let max_documents = self
            .max_documents
            .or(volunteer.then_some(VOLUNTEER_DEFAULT_MAX_DOCUMENTS));
        let max_store_bytes = self
            .max_store_bytes
            .or(volunteer.then_some(VOLUNTEER_DEFAULT_MAX_STORE_BYTES));
        StorageCaps {
            max_documents,
            max_store_bytes,
            defaulted: max_documents != self.max_documents
                || max_store_bytes != self.max_store_bytes,
        }
    }

    pub fn backoff_initial(&self) -> Duration {
        Duration::from_millis(self.backoff_initial_ms)
    }
    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loads_partial_toml_with_defaults_and_rejects_unknown_fields() {
        let dir = std::env::temp_dir().join(format!("gs-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("node.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7801\"\npeers = [\"127.0.0.1:7802\"]\n",
        )
        .unwrap();
        let config = NodeConfig::load(&file).unwrap();
        assert_eq!(config.listen.port(), 7801);
        assert_eq!(config.peers.len(), 1);
        assert!(config.mdns);
        std::fs::write(&file, "listn = \"127.0.0.1:7801\"\n").unwrap();
        assert!(matches!(
            NodeConfig::load(&file),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_volunteer_gets_phone_sized_caps_unless_configured() {
        use gridsync_proto::Role;
        let config = NodeConfig::default();
        let caps = config.storage_caps(Role::Volunteer);
        assert_eq!(caps.max_documents, Some(VOLUNTEER_DEFAULT_MAX_DOCUMENTS));
        assert_eq!(
            caps.max_store_bytes,
            Some(VOLUNTEER_DEFAULT_MAX_STORE_BYTES)
        );
        assert!(caps.defaulted);
        // Other roles are sized by their operator: no default cap.
        for role in [Role::Captain, Role::Relay, Role::Office] {
            let caps = config.storage_caps(role);
            assert_eq!((caps.max_documents, caps.max_store_bytes), (None, None));
            assert!(!caps.defaulted);
        }
        // An explicit value wins, each cap on its own.
        let config = NodeConfig {
            max_documents: Some(20_000),
            ..NodeConfig::default()
        };
        let caps = config.storage_caps(Role::Volunteer);
        assert_eq!(caps.max_documents, Some(20_000));
        assert_eq!(
            caps.max_store_bytes,
            Some(VOLUNTEER_DEFAULT_MAX_STORE_BYTES)
        );
        let config = NodeConfig {
            max_documents: Some(10),
            max_store_bytes: Some(1 << 20),
            ..NodeConfig::default()
        };
        let caps = config.storage_caps(Role::Volunteer);
        assert_eq!(
            (caps.max_documents, caps.max_store_bytes),
            (Some(10), Some(1 << 20))
        );
        assert!(!caps.defaulted);
    }

    #[test]
    fn connection_caps_default_sanely_and_zero_is_refused() {
        let config = NodeConfig::default();
        assert_eq!(
            config.max_connections_per_peer,
            DEFAULT_MAX_CONNECTIONS_PER_PEER
        );
        assert_eq!(config.max_connections, DEFAULT_MAX_CONNECTIONS);
        let zero = NodeConfig {
            max_connections_per_peer: 0,
            ..NodeConfig::default()
        };
        assert!(matches!(
            zero.validate(),
            Err(ConfigError::Invalid {
                field: "max_connections_per_peer",
                ..
            })
        ));
    }
}
