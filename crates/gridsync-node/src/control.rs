//! The local control channel: a unix socket in the data directory, readable and writable by
//! the owner only, through which CLI commands reach a running node.
//!
//! Writes (`visit add`, `deliver`, ...) must go through the node while it runs, so that the
//! node's in-memory documents stay current and the change reaches connected peers at once.
//! One request per connection: a JSON line in, a JSON line out. Requests are bounded in size.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};

use crate::node::NodeShared;
use crate::ops::{FieldWrite, WriteReceipt};
use crate::status::NodeStatus;

/// File name of the control socket inside the data directory.
pub const SOCKET_NAME: &str = "control.sock";
/// Largest accepted request line.
const MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024;

/// A request from the CLI to the running node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum ControlRequest {
    Status,
    Write { write: FieldWrite },
}

/// The node's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum ControlResponse {
    Status { status: NodeStatus },
    Written { receipt: WriteReceipt },
    Error { message: String },
}

/// Why talking to a running node failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the running node at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control channel i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("node sent an answer that is not valid: {0}")]
    BadResponse(String),
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// The listening side, owned by a running node.
pub struct ControlServer {
    shared: Arc<NodeShared>,
    listener: UnixListener,
}

impl ControlServer {
    /// Binds the socket with owner-only permissions. A stale socket file from a node that
    /// died is replaced; a live one (another node running on the same data) is an error.
    pub fn bind(shared: Arc<NodeShared>) -> Result<Self, crate::NodeError> {
        let path = socket_path(shared.lock_replica().dir());
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(crate::NodeError::AlreadyRunning(path));
            }
            std::fs::remove_file(&path).map_err(|e| crate::NodeError::Control(e.to_string()))?;
        }
        let listener = UnixListener::bind(&path)
            .map_err(|e| crate::NodeError::Control(format!("{}: {e}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| crate::NodeError::Control(e.to_string()))?;
        Ok(ControlServer { shared, listener })
    }

    pub async fn serve(self) {
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = shutdown.changed() => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let shared = self.shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_one(shared, stream).await {
                            debug!(error = %e, "control request failed");
                        }
                    });
                }
                Err(e) => warn!(error = %e, "control socket accept failed"),
            }
        }
    }
}

async fn serve_one(shared: Arc<NodeShared>, stream: UnixStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST_BYTES))
        .read_line(&mut line)
        .await?;
    let response = match serde_json::from_str::<ControlRequest>(&line) {
        Err(e) => ControlResponse::Error {
            message: format!("request is not valid: {e}"),
        },
        Ok(ControlRequest::Status) => ControlResponse::Status {
            status: NodeStatus::collect(&shared),
        },
        Ok(ControlRequest::Write { write }) => {
            // Acknowledged once durable: wait for the store writer off the async workers.
            let writer = shared.clone();
            match tokio::task::spawn_blocking(move || writer.write(write)).await {
                Ok(Ok(receipt)) => ControlResponse::Written { receipt },
                Ok(Err(e)) => ControlResponse::Error {
                    message: e.to_string(),
                },
                Err(e) => ControlResponse::Error {
                    message: format!("write task failed: {e}"),
                },
            }
        }
    };
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Removes the socket file on shutdown.
pub fn remove_socket(shared: &NodeShared) {
    let path = socket_path(shared.lock_replica().dir());
    let _ = std::fs::remove_file(path);
}

/// Client side, used by the CLI: `Ok(None)` when no node is running on this data directory.
pub fn request(
    data_dir: &Path,
    request: &ControlRequest,
) -> Result<Option<ControlResponse>, ControlError> {
    use std::io::{BufRead, Write};
    let path = socket_path(data_dir);
    if !path.exists() {
        return Ok(None);
    }
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        // The file is left over from a node that is gone: act as if no node runs.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
        Err(source) => return Err(ControlError::Connect { path, source }),
    };
    let mut line =
        serde_json::to_vec(request).map_err(|e| ControlError::BadResponse(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reader = std::io::BufReader::new(std::io::Read::take(stream, MAX_REQUEST_BYTES));
    let mut answer = String::new();
    reader.read_line(&mut answer)?;
    serde_json::from_str(&answer)
        .map(Some)
        .map_err(|e| ControlError::BadResponse(e.to_string()))
}
