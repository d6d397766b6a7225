//! `gridsync run` (a sync node until SIGINT/SIGTERM) and `gridsync status`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use gridsync_net::{NetEndpoint, RevocationList};
use gridsync_node::control::{self, ControlRequest, ControlResponse};
use gridsync_node::credentials;
use gridsync_node::node::{NodeParts, RunningNode, unix_ms};
use gridsync_node::status::NodeStatus;
use gridsync_node::{NodeConfig, Replica};
use serde_json::json;

use crate::cli::RunArgs;
use crate::output::Output;

pub fn run(data: &Path, args: RunArgs, out: Output) -> Result<()> {
    let mut config = match &args.config {
        Some(file) => NodeConfig::load(file)?,
        None => NodeConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.peers.extend(args.peers.iter().copied());
    if args.no_mdns {
        config.mdns = false;
    }
    if args.http.is_some() {
        config.http = args.http;
    }
    if args.ui.is_some() {
        config.ui = args.ui;
    }
    if args.no_ui {
        config.ui = None;
    }
    config.validate()?;
    if let Some(addr) = config.ui {
        gridsync_web::check_bind_address(addr, args.ui_public).context("the field app (--ui)")?;
    }

    let mut replica = Replica::open(data)
        .with_context(|| format!("cannot open the store in {}", data.display()))?;
    let (invite, creds) = credentials::load_credentials(replica.store())?;
    // The office dashboard: checked and its token prepared before anything starts, so a
    // refused address fails fast.
    let http = match config.http {
        Some(addr) => {
            if creds.identity.role != gridsync_proto::Role::Office {
                anyhow::bail!(
                    "--http serves the office dashboard: this node is a {}",
                    creds.identity.role
                );
            }
            gridsync_office::check_bind_address(addr, args.http_public)?;
            let (token, created) = gridsync_office::load_or_create_token(&mut replica)?;
            if created {
                eprintln!(
                    "office dashboard token (shown once; stored in the node's store): {}",
                    token.reveal()
                );
            }
            // The street CA issues the dashboard's HTTPS certificate.
            let ca = credentials::load_street_ca(replica.store())
                .context("the office's street CA, for the dashboard's HTTPS certificate")?;
            Some((addr, token, ca))
        }
        None => None,
    };
    // The invite's office addresses are dialed like configured peers, except by the office
    // itself.
    for addr in &invite.office_addrs {
        match addr.parse::<SocketAddr>() {
            Ok(addr) if addr != config.listen && !config.peers.contains(&addr) => {
                if creds.identity.role != gridsync_proto::Role::Office {
                    config.peers.push(addr);
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%addr, error = %e, "ignoring an office address that is not host:port")
            }
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let revocations = RevocationList::new();
        let endpoint = NetEndpoint::bind(config.listen, &creds, revocations.clone())
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let node_id = creds.identity.node_id.clone();
        let parts = NodeParts {
            replica,
            credentials: creds,
            config: config.clone(),
            control_socket: true,
        };
        let node = RunningNode::start(parts, endpoint, revocations)?;
        let addr = node.local_addr;
        let mut servers = WebServers::default();
        let mut http_addr = None;
        if let Some((bind, token, ca)) = http {
            let state = gridsync_office::OfficeState::start(
                node.handle().clone(),
                gridsync_office::OfficeOptions::daily(
                    token,
                    gridsync_model::DEFAULT_UTC_OFFSET_MINUTES,
                ),
            )
            .await?;
            let bound = crate::commands::dashboard::bind(bind, args.https, &ca).await?;
            let listener = bound.listener;
            http_addr = Some((listener.local_addr()?, bound.url));
            servers.spawn("dashboard", |stop| {
                gridsync_office::serve(listener, state, stop)
            });
        }
        let mut ui_addr = None;
        if let Some(bind) = config.ui {
            let app = gridsync_field::FieldApp::new(
                node.handle().clone(),
                gridsync_field::FieldOptions {
                    utc_offset_minutes: gridsync_model::DEFAULT_UTC_OFFSET_MINUTES,
                    ..Default::default()
                },
            )?;
            if !app.has_pin() {
                tracing::warn!(
                    "no PIN is set: nobody can sign in to the field app until `gridsync pin set`"
                );
            }
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot serve the field app on {bind}"))?;
            ui_addr = Some(listener.local_addr()?);
            servers.spawn("field app", |stop| {
                gridsync_field::serve(listener, app, stop)
            });
        }
        out.emit(
            &json!({
                "node_id": node_id,
                "listening": addr.to_string(),
                "peers": config.peers,
                "http": http_addr.as_ref().map(|(addr, _)| addr.to_string()),
                "dashboard": http_addr.as_ref().map(|(_, url)| url),
                "ui": ui_addr.map(|a| a.to_string()),
            }),
            || {
                let mut text =
                    format!("gridsync node {node_id} listening on {addr} (ctrl-c to stop)");
                if let Some((_, url)) = &http_addr {
                    text.push_str(&format!("\noffice dashboard on {url}"));
                }
                if let Some(ui) = ui_addr {
                    text.push_str(&format!("\nfield app on http://{ui}/"));
                }
                text
            },
        )?;
        wait_for_shutdown_signal().await?;
        servers.stop().await;
        node.shutdown().await;
        if !out.json {
            println!("gridsync node {node_id} stopped");
        }
        Ok(())
    })
}

/// The web servers a node runs beside sync (the office dashboard, the field app), each with
/// its stop signal, so that shutdown stops and waits for every one.
#[derive(Default)]
struct WebServers {
    running: Vec<RunningServer>,
}

/// One server: its name (for logs), its stop signal and its task.
type RunningServer = (
    &'static str,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
);

impl WebServers {
    /// Starts `serve(stop)` on its own task; `stop` completes when [`WebServers::stop`] runs.
    fn spawn<F, S>(&mut self, name: &'static str, serve: S)
    where
        S: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> F,
        F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(Box::pin(async move {
            stopped.await.ok();
        })));
        self.running.push((name, stop, task));
    }

    async fn stop(self) {
        for (name, stop, task) in self.running {
            let _ = stop.send(());
            match task.await {
                Ok(Err(e)) => {
                    tracing::warn!(server = name, error = %e, "server ended with an error")
                }
                Err(e) => tracing::warn!(server = name, error = %e, "server task failed"),
                Ok(Ok(())) => {}
            }
        }
    }
}

/// SIGINT (ctrl-c) or SIGTERM (systemd, kill).
pub(crate) async fn wait_for_shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

pub fn status(data: &Path, out: Output) -> Result<()> {
    match control::request(data, &ControlRequest::Status)? {
        Some(ControlResponse::Status { status }) => print_status(&status, true, out),
        Some(ControlResponse::Error { message }) => anyhow::bail!("{message}"),
        Some(other) => anyhow::bail!("the running node answered unexpectedly: {other:?}"),
        None => {
            // No node running: report what the store holds.
            let mut replica = Replica::open(data)
                .with_context(|| format!("cannot open the store in {}", data.display()))?;
            replica.load_all()?;
            let invite = credentials::load_invite(replica.store())?;
            let status = NodeStatus {
                node_id: replica.node_id().to_string(),
                role: invite
                    .map(|i| i.identity.role.to_string())
                    .unwrap_or_else(|| "(no identity)".into()),
                street: replica.street().to_owned(),
                started_ms: 0,
                peers: Vec::new(),
                documents: replica
                    .loaded_docs()
                    .iter()
                    .map(|(path, doc)| gridsync_node::status::DocumentStatus {
                        path: path.to_string(),
                        changes: Some(doc.get_changes_meta(&[]).len()),
                        heads_digest: gridsync_node::status::heads_digest(&doc.get_heads()),
                    })
                    .collect(),
                equivocating_devices: gridsync_node::status::equivocating_devices(&replica),
                limits: None,
            };
            print_status(&status, false, out)
        }
    }
}

fn print_status(status: &NodeStatus, running: bool, out: Output) -> Result<()> {
    let value = json!({ "running": running, "status": status });
    out.emit(&value, || {
        let mut text = format!(
            "node {} ({}) of street {}: {}\n",
            status.node_id,
            status.role,
            status.street,
            if running { "running" } else { "not running" }
        );
        if let Some(limits) = &status.limits {
            let or_none = |v: Option<String>| v.unwrap_or_else(|| "no cap".into());
            text.push_str(&format!(
                "caps: {} documents, {} store bytes{}; {} links per peer, {} in total ({} open)\n",
                or_none(limits.max_documents.map(|n| n.to_string())),
                or_none(limits.max_store_bytes.map(|n| n.to_string())),
                if limits.storage_caps_defaulted { " (volunteer defaults)" } else { "" },
                limits.max_connections_per_peer,
                limits.max_connections,
                limits.open_connections,
            ));
        }
        if running {
            text.push_str(&format!("peers ({}):\n", status.peers.len()));
            let now = unix_ms();
            for p in &status.peers {
                let ago = |ms: Option<u64>| {
                    ms.map(|t| format!("{}s ago", now.saturating_sub(t) / 1000)).unwrap_or_else(|| "never".into())
                };
                text.push_str(&format!(
                    "  {:<12} {:<9} {:<21} found by {:<7} {} since {}, sent {} B, received {} B, last sync {}, {}, changes received: {} direct, {} relayed\n",
                    p.node_id.as_str(),
                    p.role.as_str(),
                    p.address,
                    format!("{:?}", p.found_by).to_lowercase(),
                    if p.connected { "connected" } else { "disconnected" },
                    ago(p.connected_since_ms),
                    p.bytes_sent,
                    p.bytes_received,
                    ago(p.last_sync_ms),
                    if p.up_to_date { "up to date" } else { "syncing" },
                    p.changes_direct,
                    p.changes_relayed,
                ));
            }
        }
        if !status.equivocating_devices.is_empty() {
            text.push_str(&format!(
                "WARNING: {} device(s) signed two different changes with one sequence number; their changes are refused:\n",
                status.equivocating_devices.len()
            ));
            for e in &status.equivocating_devices {
                text.push_str(&format!("  {} (in {}, seq {}): {}\n", e.node_id, e.path, e.seq, e.advice));
            }
        }
        text.push_str(&format!("documents ({}):\n", status.documents.len()));
        for d in &status.documents {
            let changes = d.changes.map_or_else(|| "-".to_owned(), |n| n.to_string());
            text.push_str(&format!("  {:<40} {:>6} changes  heads {}\n", d.path, changes, d.heads_digest));
        }
        text
    })
}
