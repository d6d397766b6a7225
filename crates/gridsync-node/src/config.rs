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
    /// Most documents this device stores; past it, new documents are refused (from peers
    /// and local writes) while everything already stored keeps syncing. `None`: no cap.
    pub max_documents: Option<usize>,
    /// Most bytes the store may take on disk; past it, changes are refused. `None`: no cap.
    pub max_store_bytes: Option<u64>,
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
            max_documents: None,
            max_store_bytes: None,
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
        Ok(())
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
}
