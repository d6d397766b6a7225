//! The local control channel: a unix socket in the data directory, readable and writable by
//! the owner only, through which CLI commands reach a running node.
//!
//! Whoever talks to it writes with this device's identity, so it is guarded twice: the
//! socket is owner-only from the instant it exists (bound under umask 077), and the node
//! serves only processes of its own user (their uid from `SO_PEERCRED`), which also refuses
//! root or any process that reaches a socket whose mode was widened.
//!
//! Writes (`visit add`, `deliver`, ...) must go through the node while it runs, so that the
//! node's in-memory documents stay current and the change reaches connected peers at once.
//! One request per connection: a JSON line in, a JSON line out. Requests are bounded in size.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};

use crate::ops::{FieldWrite, WriteReceipt};
use crate::shared::NodeShared;
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
    /// The node's effective uid: the only one served.
    own_uid: u32,
}

impl ControlServer {
    /// Binds the socket, owner-only from its first instant. A stale socket file from a node
    /// that died is replaced; a live one (another node running on the same data) is an error.
    pub(crate) fn bind(shared: Arc<NodeShared>) -> Result<Self, crate::NodeError> {
        let path = socket_path(shared.lock_replica().dir());
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(crate::NodeError::AlreadyRunning(path));
            }
            std::fs::remove_file(&path).map_err(|source| control_error(&path, source))?;
        }
        let listener = bind_owner_only(&path).map_err(|source| control_error(&path, source))?;
        // Already owner-only; this only drops the execute bit, which means nothing on a socket.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|source| control_error(&path, source))?;
        Ok(ControlServer {
            shared,
            listener,
            own_uid: rustix::process::geteuid().as_raw(),
        })
    }

    /// Serves requests until shutdown, then waits for the request tasks, which end at
    /// shutdown too (a client still connected is dropped; a write already handed to the
    /// replica completes on its blocking thread whatever happens to its answer).
    pub async fn serve(self) {
        let mut shutdown = self.shared.shutdown.clone();
        let mut requests = tokio::task::JoinSet::new();
        loop {
            // Reap finished requests without racing the accept below against them.
            while requests.try_join_next().is_some() {}
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = shutdown.changed() => break,
            };
            match accepted {
                Ok((stream, _)) => {
                    let shared = self.shared.clone();
                    let own_uid = self.own_uid;
                    requests.spawn(async move {
                        if let Some(refusal) = peer_refusal(&stream, own_uid) {
                            warn!(reason = %refusal, "control connection refused");
                            // The request is not even read: only the refusal goes back.
                            let (_, write) = stream.into_split();
                            let refused = ControlResponse::Error { message: refusal };
                            if let Err(e) = answer(write, refused).await {
                                debug!(error = %e, "control refusal not delivered");
                            }
                            return;
                        }
                        let mut shutdown = shared.shutdown.clone();
                        tokio::select! {
                            served = serve_one(shared, stream) => {
                                if let Err(e) = served {
                                    debug!(error = %e, "control request failed");
                                }
                            }
                            _ = shutdown.changed() => {}
                        }
                    });
                }
                Err(e) => warn!(error = %e, "control socket accept failed"),
            }
        }
        while requests.join_next().await.is_some() {}
    }
}

/// Why the process at the other end of `stream` is not served, if it is not: another uid
/// than the node's, or one the kernel cannot tell.
fn peer_refusal(stream: &UnixStream, own_uid: u32) -> Option<String> {
    match stream.peer_cred() {
        Ok(cred) if uid_allowed(cred.uid(), own_uid) => None,
        Ok(cred) => Some(format!(
            "refused: this node serves only its own user (uid {own_uid}), not uid {}{}; \
             run the command as the node's user",
            cred.uid(),
            cred.pid()
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default()
        )),
        Err(e) => Some(format!(
            "refused: cannot tell which user is connecting ({e})"
        )),
    }
}

/// Whether a connecting process of `peer_uid` is served: only the node's own user's. Root
/// is not an exception: it can act as the node's user (`sudo -u`) when it must.
pub(crate) fn uid_allowed(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == own_uid
}

/// Writes `response` as one JSON line and closes the connection.
async fn answer(mut write: OwnedWriteHalf, response: ControlResponse) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

async fn serve_one(shared: Arc<NodeShared>, stream: UnixStream) -> std::io::Result<()> {
    let (read, write) = stream.into_split();
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
    answer(write, response).await
}

/// Serializes this process's changes of its umask, so that two binds at once cannot leave
/// the other's mask behind.
static UMASK: Mutex<()> = Mutex::new(());

/// Binds the listening socket at `path`, owner-only from its first instant.
///
/// `bind` creates the socket file with mode 0777 less the umask, and a chmod after it would
/// leave an instant in which another user could connect; so the umask is 077 for the bind
/// itself. The umask is process-wide: files other threads create in that instant are
/// owner-only too, which is only ever stricter, and it is restored at once. (The store does
/// not rely on the umask; it sets its files' modes itself.)
fn control_error(path: &Path, source: std::io::Error) -> crate::NodeError {
    crate::NodeError::Control {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn bind_owner_only(path: &Path) -> std::io::Result<UnixListener> {
    use rustix::fs::Mode;
    let _one_at_a_time = UMASK.lock().unwrap_or_else(PoisonError::into_inner);
    let previous = rustix::process::umask(Mode::from_raw_mode(0o077));
    let bound = UnixListener::bind(path);
    rustix::process::umask(previous);
    bound
}

/// Removes the socket file on shutdown.
pub(crate) fn remove_socket(shared: &NodeShared) {
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
