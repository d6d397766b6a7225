//! Requests to an office's HTTP API on loopback, through ureq.
//!
//! Blocking calls: from async code run them on a blocking thread (`spawn_blocking`), so the
//! server under test keeps its workers. Every status comes back as a [`Reply`] (4xx and 5xx
//! are answers a test checks, not errors); only transport failures are errors.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Bound on one exchange, so a hung server fails a test instead of blocking it.
const TIMEOUT: Duration = Duration::from_secs(60);

/// An answer: status, headers and the whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).context("the body is not JSON")
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        // The office answers a missing login with a redirect a test looks at.
        .max_redirects(0)
        .build()
        .into()
}

/// `method path` on `addr` with `headers` and `body` (empty: none).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply> {
    let uri = format!("http://{addr}{path}");
    let request = headers.iter().fold(
        ureq::http::Request::builder().method(method).uri(&uri),
        |request, (name, value)| request.header(*name, *value),
    );
    let agent = agent();
    let sent = if body.is_empty() {
        agent.run(request.body(())?)
    } else {
        agent.run(request.body(body.to_owned())?)
    };
    let mut response = sent.with_context(|| format!("{method} {uri}"))?;
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .with_context(|| format!("{method} {uri}: reading the body"))?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// `GET path` with the office token, its body handed to `each` piece by piece as it
/// arrives (chunked framing removed) rather than kept: for downloads too large to hold, or
/// whose memory is being measured. Returns the status and the body's length.
pub fn stream_authed(
    addr: SocketAddr,
    path: &str,
    token: &str,
    mut each: impl FnMut(&[u8]),
) -> Result<(u16, u64)> {
    use std::io::Read as _;

    let uri = format!("http://{addr}{path}");
    let request = ureq::http::Request::builder()
        .method("GET")
        .uri(&uri)
        .header("Authorization", format!("Bearer {token}"))
        .body(())?;
    let response = agent().run(request).with_context(|| format!("GET {uri}"))?;
    let status = response.status().as_u16();
    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut length = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("GET {uri}: reading the body"))?;
        if n == 0 {
            return Ok((status, length));
        }
        length += n as u64;
        each(&buf[..n]);
    }
}

/// `GET path` with the office token.
pub fn get_authed(addr: SocketAddr, path: &str, token: &str) -> Result<Reply> {
    let auth = format!("Bearer {token}");
    request(addr, "GET", path, &[("Authorization", &auth)], "")
}

/// `GET path` with the office token; the JSON body of a 200 answer.
pub fn get_json(addr: SocketAddr, path: &str, token: &str) -> Result<Value> {
    let reply = get_authed(addr, path, token)?;
    if reply.status != 200 {
        bail!("GET {path}: status {}: {}", reply.status, reply.text());
    }
    reply.json()
}

/// The entry of `value`'s array `list` whose `key` equals `wanted`: a household in a
/// building's JSON, an item in a household's deliveries.
pub fn entry<'a>(value: &'a Value, list: &str, key: &str, wanted: &str) -> Result<&'a Value> {
    value[list]
        .as_array()
        .with_context(|| format!("no {list} array in {value}"))?
        .iter()
        .find(|e| e[key] == wanted)
        .with_context(|| format!("no {list} entry with {key} {wanted:?}"))
}
