//! The control socket end to end: a real node, its socket's permissions, and requests from
//! the CLI's side (kept apart from `control` so that it may start a whole node).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use gridsync_net::{DeviceIdentity, NetEndpoint, NodeCredentials, RevocationList, StreetCa};
use gridsync_proto::{Access, DocPath, NodeId, Role, ScopeGrant, Scopes};

use crate::clock::unix_ms;
use crate::config::NodeConfig;
use crate::control::*;
use crate::node::{NodeParts, RunningNode};
use crate::replica::Replica;

const STREET: &str = "panhuo";
/// `nobody`: a uid that is not the test's.
const OTHER_UID: u32 = 65_534;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// A node with its control socket in `dir`, on loopback, dialing nobody.
fn start_node(dir: &Path) -> RunningNode {
    let now = unix_ms() / 1000;
    let ca = StreetCa::generate(STREET, now).expect("street CA");
    let node_id = NodeId::parse("captain-1").expect("node id");
    let mut scopes = Scopes(vec![ScopeGrant {
        access: Access::Write,
        prefix: DocPath::parse(STREET).expect("street path"),
    }]);
    crate::credentials::add_street_wide_grants(STREET, &mut scopes).expect("grants");
    let issued = ca
        .issue(&DeviceIdentity {
            street: STREET.into(),
            node_id: node_id.clone(),
            role: Role::Captain,
            scopes,
            not_before: now.saturating_sub(600),
            not_after: now + 86_400,
        })
        .expect("issue");
    let credentials = NodeCredentials::new(ca.cert_der(), &issued);
    let replica = Replica::init(dir, &node_id, STREET).expect("replica");
    let revocations = RevocationList::new();
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let endpoint = NetEndpoint::bind(listen, &credentials, revocations.clone()).expect("endpoint");
    let config = NodeConfig {
        listen,
        mdns: false,
        ..NodeConfig::default()
    };
    let parts = NodeParts {
        replica,
        credentials,
        config,
        control_socket: true,
    };
    RunningNode::start(parts, endpoint, revocations).expect("start")
}

#[tokio::test]
async fn the_socket_is_owner_only_as_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(SOCKET_NAME);
    let _listener = bind_owner_only(&path).expect("bind");
    // Checked before any chmod: nobody else may connect in the instant after bind.
    assert_eq!(mode(&path) & 0o077, 0, "mode {:o}", mode(&path));
}

#[test]
fn only_the_node_s_own_uid_is_served() {
    assert!(uid_allowed(1000, 1000));
    assert!(!uid_allowed(0, 1000));
    assert!(!uid_allowed(OTHER_UID, 0));
}

/// Another user's process that does reach the socket (here the test opens the socket's
/// mode to everyone; in the field, root or a wrong mode) gets no answer from the node.
/// Needs root, to run the client as another uid; skipped otherwise.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_from_another_uid_is_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: switching to another uid needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(dir.path());
    let socket = socket_path(dir.path());
    assert_eq!(mode(&socket), 0o600, "mode {:o}", mode(&socket));

    // The owner is served.
    let data = dir.path().to_owned();
    let own = tokio::task::spawn_blocking(move || request(&data, &ControlRequest::Status))
        .await
        .expect("request task")
        .expect("request");
    assert!(
        matches!(own, Some(ControlResponse::Status { .. })),
        "{own:?}"
    );

    // Let the other uid reach the socket, so that only the node's own check refuses it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod dir");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    let client = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
print("connected", flush=True)
try:
    s.sendall(b'{"request":"status"}\n')
except OSError:
    pass
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode(errors="replace"))
"#;
    let socket_arg = socket.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(client)
            .arg(&socket_arg)
            .uid(OTHER_UID)
            .gid(OTHER_UID)
            .output()
    })
    .await
    .expect("client task");
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: no python3 to run the other uid's client");
            node.shutdown().await;
            return;
        }
        Err(e) => panic!("cannot run the client: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.starts_with("connected"),
        "the other uid could not even connect, so the test proves nothing: {stdout} {stderr}"
    );
    assert!(
        !stdout.contains("\"status\""),
        "another uid was served: {stdout}"
    );
    assert!(stdout.contains("refused"), "no refusal in: {stdout}");
    node.shutdown().await;
}
