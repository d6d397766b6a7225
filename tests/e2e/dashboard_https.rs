//! The office dashboard on the office LAN: HTTPS with a certificate the street CA issues,
//! plain HTTP answered only with a redirect, `Secure` session cookies, and every session ended
//! from the command line while the office runs. The HTTPS client is curl, trusting the CA
//! `gridsync office ca-cert` wrote, as an official's PC would after the runbook's step.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::dashboard::DashboardNode;
use crate::node_support::Street;
use gridsync_testkit::http;

/// `curl -s ARGS...`: its exit code, and stdout with the response headers first (`-D -`).
fn curl(args: &[&str]) -> (i32, String) {
    let output = Command::new("curl")
        .args(["-s", "-D", "-", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl (apt-get install curl)");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The status code of a curl answer (its first line).
fn status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

/// The `Set-Cookie` header of a curl answer.
fn set_cookie(answer: &str) -> Option<String> {
    answer
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .map(|value| value.trim().to_owned())
}

/// Signs in with `token` over HTTPS trusting `ca`: the session cookie header.
fn login(base: &str, ca: &Path, token: &str) -> String {
    let (code, answer) = curl(&[
        "--cacert",
        ca.to_str().expect("UTF-8 path"),
        "-o",
        "/dev/null",
        "-d",
        &format!("token={token}"),
        &format!("{base}login"),
    ]);
    assert_eq!(code, 0, "curl failed: {answer}");
    assert_eq!(status(&answer), 303, "{answer}");
    set_cookie(&answer).unwrap_or_else(|| panic!("no session cookie in {answer}"))
}

/// `GET /api/v1/summary` with `cookie` over HTTPS: the status.
fn summary_status(base: &str, ca: &Path, cookie: &str) -> u16 {
    let name_value = cookie.split(';').next().expect("cookie");
    let (code, answer) = curl(&[
        "--cacert",
        ca.to_str().expect("UTF-8 path"),
        "-o",
        "/dev/null",
        "-H",
        &format!("Cookie: {name_value}"),
        &format!("{base}api/v1/summary"),
    ]);
    assert_eq!(code, 0, "curl failed: {answer}");
    status(&answer)
}

#[test]
fn a_lan_dashboard_is_https_only_and_its_sessions_end_from_the_command_line() {
    let street = Street::with_plan(&[]);
    let ca = street.office.path().join("street-ca.pem");
    street
        .office
        .run(&["office", "ca-cert", "--out", ca.to_str().expect("UTF-8")])
        .ok();
    // Every interface: a LAN bind, served over HTTPS whatever the address.
    let office =
        DashboardNode::start_with(&street.office, &["--http", "0.0.0.0:0", "--http-public"]);
    assert!(office.url.starts_with("https://"), "{}", office.url);
    let port = office.http.port();
    let base = format!("https://127.0.0.1:{port}/");

    // Plain HTTP to the port: a redirect to the same place over HTTPS, nothing else.
    let lan_host = format!("192.168.50.2:{port}");
    let plain = http::request(office.http, "GET", "/login", &[("Host", &lan_host)], "")
        .expect("plain HTTP request");
    assert_eq!(plain.status, 308, "{}", plain.text());
    assert_eq!(
        plain.header("location"),
        Some(format!("https://{lan_host}/login").as_str())
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let plain_login = http::request(
        office.http,
        "POST",
        "/login",
        &form,
        &format!("token={}", office.token),
    )
    .expect("plain HTTP login");
    assert_eq!(plain_login.status, 308);
    assert!(
        plain_login.header("set-cookie").is_none(),
        "no session over plain HTTP"
    );

    // A client that does not trust the street CA refuses the certificate.
    let (untrusted, _) = curl(&[&format!("{base}healthz")]);
    assert_eq!(untrusted, 60, "curl accepted a certificate it cannot verify");

    // Trusting it: sign in; the cookie is Secure.
    let cookie = login(&base, &ca, &office.token);
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert_eq!(summary_status(&base, &ca, &cookie), 200);

    // `gridsync office end-sessions` while the office runs: the session ends within seconds.
    let ended = street.office.run(&["--json", "office", "end-sessions"]).json();
    assert_eq!(ended["sessions_ended"], true);
    let deadline = Instant::now() + Duration::from_secs(15);
    while summary_status(&base, &ca, &cookie) != 401 {
        assert!(
            Instant::now() < deadline,
            "the session still works after end-sessions"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let again = login(&base, &ca, &office.token);
    assert_eq!(summary_status(&base, &ca, &again), 200, "a new sign-in works");
}

#[test]
fn ca_cert_and_end_sessions_refuse_a_device_without_the_street_ca() {
    let street = Street::with_plan(&[("vol-1", "panhuo/grid-001")]);
    let volunteer = street.device("vol-1");
    volunteer
        .run(&["office", "ca-cert"])
        .fails_alone_with("holds no street CA");
    volunteer
        .run(&["office", "end-sessions"])
        .fails_alone_with("holds no street CA");
}
