//! The office dashboard in a real browser: headless Chromium driven through chromedriver.
//!
//! The test starts an office node with `--http`, logs in through the dashboard's form with
//! the token the node printed, and checks that a visit added through the CLI reaches the
//! page's figures over server-sent events, without a reload, and that a volunteer whose clock
//! runs 6 hours ahead (libfaketime preloaded into its processes) is marked in the device list
//! while its visit counts at the office's first sight of it. It saves a screenshot to
//! `<target dir>/dashboard-screenshot.png` for a person to look at. The WebDriver protocol is
//! spoken with the test kit's HTTP client (ureq), which also checks
//! that the API refuses a request without credentials. Chromedriver runs in its own process
//! group, which Chromium joins; dropping [`Browser`] ends the session and kills that group,
//! and dropping [`DashboardNode`] kills the node, so nothing outlives a failed test. Without
//! `/usr/bin/chromium` or `/usr/bin/chromedriver` the test says it skips.

use std::fs::File;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

use crate::browser::{Browser, PAGE_TIMEOUT, browser_missing, target_file};
use crate::node_support::{
    LOG_FILE, NodeProcess, Street, add_visit, await_plan, first_json_value, read_log, tail,
};
use crate::support::{Device, LIBFAKETIME, gridsync_bin};
use gridsync_testkit::http;

/// The prefix of the stderr line that shows the dashboard token on the node's first run.
const TOKEN_LINE: &str = "office dashboard token (shown once; stored in the node's store): ";

#[test]
fn dashboard_login_and_live_visit_count_in_a_browser() {
    if let Some(skip) = browser_missing() {
        println!("{skip}");
        return;
    }
    let started = Instant::now();
    let mut street = Street::with_plan(&[("vol-fast", "panhuo/grid-001")]);
    // A volunteer whose phone's clock runs 6 hours ahead.
    let fast_clock = street
        .devices
        .get_mut("vol-fast")
        .expect("enrolled")
        .set_clock_offset("+6h");
    let office = DashboardNode::start(&street.office);

    // A plain request, without token or session, is refused.
    let refused = http::request(office.http, "GET", "/api/v1/summary", &[], "")
        .expect("request the summary without credentials");
    assert_eq!(
        refused.status,
        401,
        "the API answered a request without credentials: {}",
        refused.text()
    );

    let browser = Browser::start();
    browser.navigate(&format!("http://{}/", office.http));
    let token_field = browser.find("#login-token");
    browser.command(
        "POST",
        &format!("element/{token_field}/value"),
        json!({ "text": office.token }),
    );
    let submit = browser.find("#login-submit");
    browser.command("POST", &format!("element/{submit}/click"), json!({}));

    // The dashboard replaces the login page; its figures come from the API.
    let logged_in = Instant::now();
    let visited = browser.wait_for("the visited count after logging in", || {
        let element = browser.try_find("#visited-count").ok()?;
        let count = browser.text(&element).ok()?.parse::<u64>().ok()?;
        Some((element, count))
    });
    let (visited_element, visited_before) = visited;
    assert_eq!(visited_before, 0, "no visit was logged yet");
    let households = browser.wait_for("the household count", || {
        let text = browser
            .text(&browser.try_find("#households-count").ok()?)
            .ok()?;
        text.parse::<u64>().ok()
    });
    assert_eq!(households, 4, "the plan has four households");
    browser.wait_for("the event stream to connect", || {
        let state = browser
            .text(&browser.try_find("#connection-state").ok()?)
            .ok()?;
        (state == "live").then_some(())
    });
    println!(
        "dashboard: logged in and live after {:?}",
        logged_in.elapsed()
    );

    // A visit through the CLI (the running node's control socket) reaches the open page.
    let adding = Instant::now();
    add_visit(&street.office, "h-1");
    let cli_took = adding.elapsed();
    let visited_after = browser.wait_for("the visited count to grow without a reload", || {
        // The element found before the visit: a reloaded page would make it stale.
        let text = browser
            .text(&visited_element)
            .unwrap_or_else(|e| panic!("cannot read #visited-count (page reloaded?): {e}"));
        text.parse::<u64>().ok().filter(|n| *n > visited_before)
    });
    assert_eq!(visited_after, 1, "one visit was added");
    println!(
        "dashboard: visit added through the CLI in {cli_took:?}, shown on the page {:?} after \
         the command started",
        adding.elapsed()
    );

    if fast_clock {
        clock_ahead_is_flagged_not_trusted(&street, &office, &browser);
    } else {
        println!("skipping the fast clock: {LIBFAKETIME} is missing (apt-get install libfaketime)");
    }

    // The tables refresh after the summary event; wait for them so the screenshot shows them.
    browser.wait_for("the grid table and the event log", || {
        let grids = browser.text(&browser.try_find("#grid-table").ok()?).ok()?;
        let log = browser.text(&browser.try_find("#event-log").ok()?).ok()?;
        let visited = if fast_clock {
            "2/4 visited"
        } else {
            "1/4 visited"
        };
        (grids.contains("grid-001") && log.contains(visited)).then_some(())
    });
    let screenshot = browser.screenshot();
    assert!(
        screenshot.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    let path = screenshot_path();
    std::fs::write(&path, &screenshot).expect("write the screenshot");
    println!(
        "dashboard: screenshot ({} bytes) at {}",
        screenshot.len(),
        path.display()
    );
    // The same page at a phone's width (390 CSS pixels), as officials on the LAN see it.
    browser.resize(390, 844);
    let phone = browser.screenshot();
    assert!(
        phone.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the phone-width screenshot is not a PNG"
    );
    let phone_path = path.with_file_name("dashboard-screenshot-phone.png");
    std::fs::write(&phone_path, &phone).expect("write the phone-width screenshot");
    println!(
        "dashboard: phone-width screenshot ({} bytes) at {}",
        phone.len(),
        phone_path.display()
    );
    // The same page in Chinese, switched from the header (the choice sticks in the browser).
    browser.tap(r#".langs [data-lang="zh"]"#);
    browser.wait_for("the dashboard in Chinese", || {
        let lang = browser.eval("return document.documentElement.lang");
        let title = browser.text(&browser.try_find("#overview h2").ok()?).ok()?;
        (lang == "zh-CN" && title == "街道总览").then_some(())
    });
    let connection = browser
        .text(&browser.find("#connection-state"))
        .expect("text");
    assert_ne!(connection, "live", "the connection state is translated too");
    for (width, height, name) in [(390, 844, "phone"), (1280, 1000, "desktop")] {
        browser.resize(width, height);
        let path = target_file(&format!("dashboard-screenshot-zh-{name}.png"));
        browser.save_screenshot(&path);
        println!("dashboard: Chinese screenshot at {}", path.display());
    }
    println!("dashboard: whole test took {:?}", started.elapsed());
}

/// An official logged in on the dashboard stays logged in when the office restarts (an
/// upgrade, a power cut): the session cookie is signed with a key kept in the office's store.
/// A forged or tampered cookie is still refused.
#[test]
fn a_dashboard_login_survives_an_office_restart() {
    let street = Street::with_plan(&[]);
    let office = DashboardNode::start(&street.office);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let login = http::request(
        office.http,
        "POST",
        "/login",
        &form,
        &format!("token={}", office.token),
    )
    .expect("log in");
    assert_eq!(login.status, 303, "{}", login.text());
    let cookie = login
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let summary = |http: SocketAddr, cookie: &str| {
        http::request(http, "GET", "/api/v1/summary", &[("Cookie", cookie)], "")
            .expect("summary")
            .status
    };
    assert_eq!(summary(office.http, &cookie), 200);
    drop(office);
    let office = DashboardNode::start(&street.office);
    assert_eq!(
        summary(office.http, &cookie),
        200,
        "the login did not survive the restart"
    );
    let tampered = format!("{}0", cookie);
    assert_eq!(summary(office.http, &tampered), 401);
}

/// Guessing the office token through the login form pauses after five wrong tries, for the
/// right token too, and the page says so.
#[test]
fn wrong_office_tokens_pause_the_login() {
    let street = Street::with_plan(&[]);
    let office = DashboardNode::start(&street.office);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let login = |token: &str| {
        http::request(
            office.http,
            "POST",
            "/login",
            &form,
            &format!("token={token}"),
        )
        .expect("log in")
    };
    for _ in 0..5 {
        let wrong = login("0123456789abcdef-not-the-token");
        assert_eq!(wrong.status, 401);
        assert!(
            wrong.text().contains("<body data-login-error"),
            "the page marks a wrong token"
        );
    }
    let paused = login(&office.token);
    assert_eq!(paused.status, 429, "the login was not paused");
    assert!(paused.header("set-cookie").is_none());
    assert!(paused.text().contains("data-login-throttled"));
}

/// A visit logged by a device whose clock runs 6 hours ahead reaches the office: the device
/// list marks it, and the visit counts at the office's first sight of it, not at the time the
/// device claims (issue #11, clocks that lie).
fn clock_ahead_is_flagged_not_trusted(street: &Street, office: &DashboardNode, browser: &Browser) {
    let fast = street.device("vol-fast");
    let _node = NodeProcess::start(fast, "vol-fast", &[office.quic]);
    await_plan(&[fast], PAGE_TIMEOUT);
    let before_sync = unix_ms();
    let claimed = add_visit(fast, "h-2");
    let tag = browser.wait_for("the fast device's clock flag in the device list", || {
        let cell = browser
            .try_find(r#"tr[data-device="vol-fast"] [data-trust="clock-ahead"]"#)
            .ok()?;
        browser.text(&cell).ok()
    });
    assert_eq!(tag, "clock ahead: 1 records");
    let building = office.api("/api/v1/buildings/bldg-1");
    let h2 = building["households"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["id"] == "h-2"))
        .unwrap_or_else(|| panic!("h-2 in {building}"));
    let latest = &h2["latest_visit"];
    assert_eq!(latest["id"], claimed.as_str(), "{h2}");
    assert_eq!(latest["clock_ahead"], true, "{h2}");
    let at = latest["at_ms"].as_i64().expect("at_ms");
    let claimed_at = latest["claimed_at_ms"].as_i64().expect("claimed_at_ms");
    assert!(
        at >= before_sync - 1_000 && at <= unix_ms() + 1_000,
        "counted at the office's first sight, not at {claimed_at}: {h2}"
    );
    assert!(claimed_at > before_sync + 5 * 3_600_000, "{h2}");
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `<target dir>/dashboard-screenshot.png` (and `-phone.png` beside it).
fn screenshot_path() -> PathBuf {
    target_file("dashboard-screenshot.png")
}

/// An office node running `gridsync run --http 127.0.0.1:0`. Killed when dropped.
pub(crate) struct DashboardNode {
    /// Where the dashboard listens (on loopback when it listens on every interface).
    pub http: SocketAddr,
    /// The address the node says to open the dashboard at (`http://…/` or `https://…/`).
    pub url: String,
    /// Where the node's QUIC endpoint listens.
    quic: SocketAddr,
    /// The dashboard token the node printed on its first run.
    pub token: String,
    /// Where the node's stderr goes.
    log_path: PathBuf,
    child: Child,
    /// Kept open so that the node never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl DashboardNode {
    /// Starts the node on `office`'s data directory and waits for its dashboard address.
    fn start(office: &Device) -> DashboardNode {
        DashboardNode::start_with(office, &["--http", "127.0.0.1:0"])
    }

    /// Starts the node with `http_args` (`--http ADDR` and its options).
    pub(crate) fn start_with(office: &Device, http_args: &[&str]) -> DashboardNode {
        let log_path = office.path().join(LOG_FILE);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open node log");
        let mut child = Command::new(gridsync_bin())
            .arg("--data")
            .arg(office.path())
            .args(["run", "--listen", "127.0.0.1:0", "--no-mdns", "--json"])
            .args(http_args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("GRIDSYNC_DATA")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn gridsync run --http");
        let started = first_json_value(&mut child).and_then(|(value, reader)| {
            let address = |key: &str| {
                value[key]
                    .as_str()
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                    .map(|mut a| {
                        if a.ip().is_unspecified() {
                            a.set_ip([127, 0, 0, 1].into());
                        }
                        a
                    })
            };
            let url = value["dashboard"].as_str().map(str::to_owned);
            match (address("http"), address("listening"), url) {
                (Some(http), Some(quic), Some(url)) => Ok((http, quic, url, reader)),
                _ => Err(format!("no http, dashboard or QUIC address in {value}")),
            }
        });
        // The token is printed on stderr before the addresses on stdout.
        let token = read_log(&log_path)
            .lines()
            .find_map(|line| line.strip_prefix(TOKEN_LINE).map(|t| t.trim().to_owned()));
        match (started, token) {
            (Ok((http, quic, url, reader)), Some(token)) => DashboardNode {
                http,
                url,
                quic,
                token,
                log_path,
                child,
                _stdout: reader,
            },
            (started, _) => {
                let _ = child.kill();
                let _ = child.wait();
                let why = started
                    .err()
                    .unwrap_or("no dashboard token on stderr".to_owned());
                panic!("office node did not start: {why}\n{}", read_log(&log_path));
            }
        }
    }
}

impl DashboardNode {
    /// `GET path` with the office token; the JSON answer.
    #[track_caller]
    fn api(&self, path: &str) -> Value {
        http::get_json(self.http, path, &self.token).unwrap_or_else(|e| panic!("GET {path}: {e:#}"))
    }
}

impl Drop for DashboardNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- log of the office node ({}) ----\n{}",
                self.log_path.display(),
                tail(&read_log(&self.log_path), 60)
            );
        }
    }
}
