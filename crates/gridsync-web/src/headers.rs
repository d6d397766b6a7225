//! Credentials read from request headers, and the response headers both servers set.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The token of an `Authorization: Bearer TOKEN` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// The value of the cookie `name`, from any `Cookie` header.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// Pages showing personal data are never kept in a browser's or proxy's cache.
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A JSON error body `{"error": message}` with a status.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Whether a `Host` header names an IP address or `localhost` (with or without a port): a
/// page elsewhere on the web can point a name of its own at a server on loopback or the LAN
/// (DNS rebinding) and have a browser send it requests the server must not answer.
pub fn is_address_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => v6,
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_from_their_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc "),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; sid=xyz"));
        assert_eq!(bearer(&headers), Some("abc"));
        assert_eq!(cookie(&headers, "sid"), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), None);
    }

    #[test]
    fn only_addresses_and_localhost_are_hosts_the_app_answers() {
        for ok in [
            "127.0.0.1:7878",
            "127.0.0.1",
            "localhost:7878",
            "LOCALHOST",
            "[::1]:7878",
            "[::1]",
            "192.168.1.10:7878",
        ] {
            assert!(is_address_host(ok), "{ok}");
        }
        for refused in [
            "",
            "evil.example:7878",
            "localhost.evil.example",
            "127.0.0.1.nip.io:7878",
            "[::1",
            "[::1]x",
            "1.2.3.4.example",
        ] {
            assert!(!is_address_host(refused), "{refused:?}");
        }
    }
}
