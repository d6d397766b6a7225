//! The office dashboard on the office LAN: HTTPS with a certificate the street CA issues,
//! plain HTTP answered only with a redirect, `Secure` session cookies, and every session ended
//! from the command line while the office runs. The HTTPS clients are curl and headless
//! Chromium, each trusting the CA `gridsync office ca-cert` wrote (Chromium through an NSS
//! database under its own home directory), as an official's PC would after the runbook's step.
//! The browser test checks the charts draw what the API says about real records, in both
//! languages at 1280x800 and 390x844, and that the sign-in survives a restart of the office;
//! its screenshots are `<target dir>/dashboard-https-*.png`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::browser::target_file;
use crate::dashboard::DashboardNode;
use crate::node_support::Street;
use gridsync_testkit::browser::{Browser, https_browser_missing};
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
    assert_eq!(
        untrusted, 60,
        "curl accepted a certificate it cannot verify"
    );

    // Trusting it: sign in; the cookie is Secure.
    let cookie = login(&base, &ca, &office.token);
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert_eq!(summary_status(&base, &ca, &cookie), 200);

    // `gridsync office end-sessions` while the office runs: the session ends within seconds.
    let ended = street
        .office
        .run(&["--json", "office", "end-sessions"])
        .json();
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
    assert_eq!(
        summary_status(&base, &ca, &again),
        200,
        "a new sign-in works"
    );
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

/// `GET path` on the office's API over HTTPS with the token, trusting `ca`: the JSON.
fn api(base: &str, ca: &Path, token: &str, path: &str) -> serde_json::Value {
    let output = Command::new("curl")
        .args(["-s", "--fail", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{base}{}", path.trim_start_matches('/')))
        .output()
        .expect("run curl");
    assert!(output.status.success(), "GET {path}: {output:?}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// What each chart should report as drawn, from the API: (coverage, needs, freshness).
fn expected_chart_sums(base: &str, ca: &Path, token: &str) -> (u64, u64, u64) {
    let timeline = api(base, ca, token, "/api/v1/timeline");
    let hours = timeline["hours"].as_array().expect("hours").clone();
    let sum = |key: &str| {
        hours
            .iter()
            .map(|h| h[key].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let devices = api(base, ca, token, "/api/v1/devices");
    let devices = devices["devices"].as_array().map_or(0, Vec::len) as u64;
    (
        sum("visited"),
        sum("needs_reported") + sum("delivered"),
        devices,
    )
}

/// What the page says it drew in each chart.
fn drawn(browser: &Browser) -> Option<(u64, u64, u64)> {
    let of = |chart: &str| {
        browser
            .eval(&format!(
                "const e = document.querySelector('[data-chart=\"{chart}\"]'); return e ? e.dataset.drawn || null : null"
            ))
            .as_str()
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some((of("coverage")?, of("needs")?, of("freshness")?))
}

/// An official's PC that trusts the street CA: signs in over HTTPS, sees the charts draw
/// what the API says about real records, in English and in Chinese, at desktop and phone
/// width, then stays signed in across a restart of the office.
#[test]
fn the_dashboard_over_https_draws_its_charts_and_survives_a_restart() {
    if let Some(skip) = https_browser_missing() {
        println!("{skip}");
        return;
    }
    let street = Street::with_plan(&[]);
    // Records in this round: two households visited, needs reported, one item delivered.
    for line in [
        "visit add --household h-1 --outcome contacted --need medicine:insulin --need food",
        "visit add --household h-3 --outcome not-home",
        "deliver --household h-1 --item medicine --status delivered",
    ] {
        street.office.run_line(line).ok();
    }
    let ca = street.office.path().join("street-ca.pem");
    street
        .office
        .run(&["office", "ca-cert", "--out", ca.to_str().expect("UTF-8")])
        .ok();
    let https_args = ["--http", "127.0.0.1:0", "--https"];
    let office = DashboardNode::start_with(&street.office, &https_args);
    assert!(
        office.url.starts_with("https://127.0.0.1:"),
        "{}",
        office.url
    );
    let expected = expected_chart_sums(&office.url, &ca, &office.token);
    assert_eq!(expected.0, 2, "two households visited this round");
    assert_eq!(expected.1, 3, "two needs reported, one item delivered");

    let browser = Browser::start_trusting(&ca, "en-US");
    browser.navigate(&office.url);
    browser.type_into("#login-token", &office.token);
    browser.tap("#login-submit");
    browser.wait_for("the charts to draw what the API says", || {
        drawn(&browser).filter(|d| *d == expected)
    });
    let protocol = browser.eval("return location.protocol");
    assert_eq!(protocol, "https:", "signed in over HTTPS");
    let mut shots = Vec::new();
    let mut shoot = |browser: &Browser, name: &str| {
        let path = target_file(&format!("dashboard-https-{name}.png"));
        browser.save_screenshot(&path);
        shots.push(path);
    };
    shoot(&browser, "en-desktop");
    browser.resize(390, 844);
    browser.wait_for("the charts at phone width", || {
        let width = browser.eval(
            "const e = document.querySelector('[data-chart=\"coverage\"] canvas'); return e ? e.getBoundingClientRect().width : 0",
        );
        width.as_f64().filter(|w| *w > 100.0 && *w <= 390.0)
    });
    // At phone width the charts are below the figures: show them.
    let charts_in_view = "document.getElementById('chart-coverage').scrollIntoView(); return true";
    browser.eval(charts_in_view);
    shoot(&browser, "en-phone");
    browser.tap(r#".langs [data-lang="zh"]"#);
    browser.wait_for("the charts in Chinese", || {
        let title = browser
            .text(&browser.try_find("#chart-coverage h3").ok()?)
            .ok()?;
        let legend = browser
            .text(&browser.try_find("[data-chart=\"coverage\"]").ok()?)
            .ok()?;
        // The heading and the chart's own legend, both redrawn in Chinese.
        (title.contains("覆盖") && legend.contains("全街道") && drawn(&browser) == Some(expected))
            .then_some(())
    });
    browser.eval(charts_in_view);
    shoot(&browser, "zh-phone");
    browser.resize(1280, 800);
    shoot(&browser, "zh-desktop");

    // The office restarts (a new port: the cookie is the host's, not the port's).
    drop(office);
    let office = DashboardNode::start_with(&street.office, &https_args);
    browser.navigate(&office.url);
    browser.wait_for("the dashboard again, without signing in", || {
        let count = browser
            .text(&browser.try_find("#visited-count").ok()?)
            .ok()?;
        (count == "2").then_some(())
    });
    assert!(
        browser.try_find("#login-token").is_err(),
        "the restart asked for the token again"
    );
    browser.wait_for("the charts after the restart", || {
        drawn(&browser).filter(|d| *d == expected)
    });
    shoot(&browser, "zh-desktop-after-restart");
    for path in &shots {
        println!("dashboard over HTTPS: screenshot at {}", path.display());
    }
}
