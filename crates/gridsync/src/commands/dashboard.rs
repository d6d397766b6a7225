//! Binding the office dashboard (`gridsync run --http`, `gridsync demo --dashboard`): plain
//! HTTP on loopback, HTTPS everywhere else, with a server certificate the street CA issues at
//! each start for the address served (the officials' browsers trust the CA once).

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use gridsync_net::StreetCa;
use gridsync_net::https::{HttpsAcceptor, WebName, web_names_for_bind};
use gridsync_web::WebListener;

/// The dashboard's listener and the address to open it at.
pub struct BoundDashboard {
    pub listener: WebListener,
    /// `http://127.0.0.1:7780/`, `https://192.168.1.10:7780/`: for a bind to every interface,
    /// the first address of this machine outside loopback.
    pub url: String,
}

/// Binds `bind` for the dashboard: HTTPS unless it is a loopback address and `https` was not
/// asked for. `ca` is the street CA, which issues the certificate.
pub async fn bind(bind: SocketAddr, https: bool, ca: &StreetCa) -> Result<BoundDashboard> {
    let tcp = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot serve the dashboard on {bind}"))?;
    let local = tcp.local_addr()?;
    if bind.ip().is_loopback() && !https {
        return Ok(BoundDashboard {
            listener: WebListener::Plain(tcp),
            url: format!("http://{local}/"),
        });
    }
    let now = gridsync_node::node::unix_ms() / 1000;
    let names = web_names_for_bind(bind.ip());
    let cert = ca
        .issue_web_server(&names, now)
        .context("cannot issue the dashboard's HTTPS certificate")?;
    tracing::info!(names = ?cert.names(), "dashboard certificate issued by the street CA");
    let shown = if local.ip().is_unspecified() {
        names
            .iter()
            .find_map(|name| match name {
                WebName::Ip(ip) if !ip.is_loopback() && ip.is_ipv4() => Some(*ip),
                _ => None,
            })
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    } else {
        local.ip()
    };
    let acceptor = HttpsAcceptor::new(&cert)?;
    Ok(BoundDashboard {
        listener: WebListener::https(tcp, acceptor)?,
        url: format!("https://{}/", SocketAddr::new(shown, local.port())),
    })
}
