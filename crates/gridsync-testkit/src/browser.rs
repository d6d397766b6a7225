//! Headless Chromium driven through chromedriver's WebDriver API (spoken with [`crate::http`]):
//! the dashboard's and the field app's browser tests and the field app's benchmark share it.
//! Without `/usr/bin/chromium` or `/usr/bin/chromedriver`, [`browser_missing`] says why, and
//! the tests say they skip.
//!
//! Chromedriver runs in its own process group, which Chromium joins; dropping [`Browser`]
//! ends the session and kills that group, so nothing outlives a failed test.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::http;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// NSS's tool, which adds a CA to the browser user's trust store (Debian: libnss3-tools).
pub const CERTUTIL: &str = "/usr/bin/certutil";
/// How long chromedriver may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the page may take to show what the test waits for.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(15);
/// Interval between two looks at the page.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The key under which WebDriver returns an element reference.
pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Why a browser test cannot run here (printed as a skip), if it cannot.
pub fn browser_missing() -> Option<String> {
    [CHROMIUM, CHROMEDRIVER]
        .iter()
        .find(|tool| !Path::new(tool).exists())
        .map(|tool| {
            format!("skipping: {tool} is missing (apt-get install chromium chromium-driver)")
        })
}

/// A chromedriver process and one headless Chromium session. On drop the session is ended
/// and chromedriver's process group (Chromium included) is killed.
pub struct Browser {
    /// Where chromedriver listens.
    driver: SocketAddr,
    /// The WebDriver session id.
    session: String,
    /// Chromedriver, leader of its own process group.
    child: Child,
    /// Chromium's fresh profile directory.
    profile: tempfile::TempDir,
    /// Chromium's home directory when it has one of its own (a CA trusted in it).
    _home: Option<tempfile::TempDir>,
}

/// Why an HTTPS browser test cannot run here, if it cannot: it needs the browser and
/// [`CERTUTIL`].
pub fn https_browser_missing() -> Option<String> {
    browser_missing().or_else(|| {
        (!Path::new(CERTUTIL).exists())
            .then(|| format!("skipping: {CERTUTIL} is missing (apt-get install libnss3-tools)"))
    })
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session with headless Chromium.
    pub fn start() -> Browser {
        Browser::start_with(
            &["--window-size=1280,1000", "--lang=en-US"],
            json!({}),
            None,
        )
    }

    /// A desktop browser (a 1280x800 window, language `lang`) whose user trusts the CA
    /// certificate in `ca_pem`, as an official's PC does once the runbook's step is done:
    /// the CA goes into the NSS database under a fresh home directory, which Chromium reads.
    pub fn start_trusting(ca_pem: &Path, lang: &str) -> Browser {
        let home = tempfile::tempdir().expect("temp home for the browser");
        let nssdb = home.path().join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb).expect("create the NSS database directory");
        let db = format!("sql:{}", nssdb.display());
        let certutil = |args: &[&str]| {
            let status = Command::new(CERTUTIL)
                .args(args)
                .stdout(Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("run {CERTUTIL}: {e}"));
            assert!(status.success(), "certutil {args:?} failed: {status}");
        };
        certutil(&["-d", &db, "-N", "--empty-password"]);
        let ca = ca_pem.to_str().expect("UTF-8 path");
        certutil(&[
            "-d",
            &db,
            "-A",
            "-t",
            "C,,",
            "-n",
            "gridsync street CA",
            "-i",
            ca,
        ]);
        let accept = format!("--lang={lang}");
        Browser::start_with(
            &["--window-size=1280,800", accept.as_str()],
            json!({ "prefs": { "intl.accept_languages": lang } }),
            Some(home),
        )
    }

    /// A browser the size of a phone (390x844 CSS pixels, 3x, touch), its language `lang`
    /// (`zh-CN`, `en-US`): what volunteers hold.
    pub fn start_phone(lang: &str) -> Browser {
        let accept = format!("--lang={lang}");
        Browser::start_with(
            &[accept.as_str()],
            json!({
                "mobileEmulation": {
                    "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 3.0, "touch": true },
                },
                "prefs": { "intl.accept_languages": lang },
            }),
            None,
        )
    }

    /// Starts chromedriver and a session with `args` added to Chromium's and `options`
    /// merged into `goog:chromeOptions`; with `home`, Chromium runs with that `$HOME` (its
    /// certificate trust store).
    fn start_with(args: &[&str], options: Value, home: Option<tempfile::TempDir>) -> Browser {
        let profile = tempfile::tempdir().expect("temp dir for the browser profile");
        let mut driver = Command::new(CHROMEDRIVER);
        if let Some(home) = &home {
            driver.env("HOME", home.path());
        }
        let mut child = driver
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Reads on to the end so that chromedriver never writes to a closed pipe.
            let mut port_sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !port_sent && let Some(port) = line.split("started successfully on port ").nth(1)
                {
                    let _ = tx.send(port.trim_end_matches('.').parse::<u16>().ok());
                    port_sent = true;
                }
            }
        });
        let mut browser = Browser {
            driver: SocketAddr::from(([127, 0, 0, 1], 0)),
            session: String::new(),
            child,
            profile,
            _home: home,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(port)) => browser.driver.set_port(port),
            other => panic!("chromedriver did not say its port: {other:?}"),
        }
        let profile_arg = format!("--user-data-dir={}", browser.profile.path().display());
        let mut chrome_args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        .iter()
        .chain(args)
        .map(|a| (*a).to_owned())
        .collect();
        chrome_args.push(profile_arg);
        let mut chrome_options = json!({ "binary": CHROMIUM, "args": chrome_args });
        if let (Some(target), Value::Object(extra)) = (chrome_options.as_object_mut(), options) {
            target.extend(extra);
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "timeouts": { "pageLoad": 15000, "script": 15000 },
            "goog:chromeOptions": chrome_options,
        } } });
        let reply = browser
            .raw_command("POST", "/session", capabilities)
            .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}"));
        browser.session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {reply}"))
            .to_owned();
        browser
    }

    /// Sends a command to chromedriver; returns the reply's `value`, or the WebDriver error.
    pub fn raw_command(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let body = if method == "POST" {
            body.to_string()
        } else {
            String::new()
        };
        let json = [("Content-Type", "application/json; charset=utf-8")];
        let reply = http::request(self.driver, method, path, &json, &body)
            .map_err(|e| format!("{method} {path}: {e:#}"))?;
        let value: Value = reply
            .json()
            .map_err(|e| format!("{method} {path}: reply is not JSON ({e}): {}", reply.text()))?;
        if reply.status != 200 {
            return Err(format!(
                "{method} {path}: {} {}: {}",
                reply.status, value["value"]["error"], value["value"]["message"]
            ));
        }
        Ok(value["value"].clone())
    }

    /// A command within the session (`path` relative to `/session/ID/`).
    pub fn try_command(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        self.raw_command(method, &format!("/session/{}/{path}", self.session), body)
    }

    #[track_caller]
    pub fn command(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|e| panic!("webdriver: {e}"))
    }

    /// Sets the window to `width` x `height` CSS pixels (a desktop, or a phone's width).
    pub fn resize(&self, width: u32, height: u32) {
        self.command(
            "POST",
            "window/rect",
            json!({ "width": width, "height": height }),
        );
    }

    pub fn navigate(&self, url: &str) {
        self.command("POST", "url", json!({ "url": url }));
    }

    /// The reference of the first element matching a CSS selector.
    pub fn try_find(&self, css: &str) -> Result<String, String> {
        let found = self.try_command(
            "POST",
            "element",
            json!({ "using": "css selector", "value": css }),
        )?;
        found[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .ok_or(format!("no element reference in {found}"))
    }

    #[track_caller]
    pub fn find(&self, css: &str) -> String {
        self.try_find(css)
            .unwrap_or_else(|e| panic!("webdriver: {e}"))
    }

    /// The element's rendered text.
    pub fn text(&self, element: &str) -> Result<String, String> {
        let text = self.try_command("GET", &format!("element/{element}/text"), Value::Null)?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    /// Polls `look` until it returns a value; fails the test after [`PAGE_TIMEOUT`].
    #[track_caller]
    pub fn wait_for<T>(&self, what: &str, mut look: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            if let Some(value) = look() {
                return value;
            }
            if Instant::now() >= deadline {
                let page = self
                    .try_find("body")
                    .and_then(|body| self.text(&body))
                    .unwrap_or_else(|e| format!("(cannot read the page: {e})"));
                panic!("waited {PAGE_TIMEOUT:?} for {what}; the page shows:\n{page}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Clicks (taps) the first element matching `css`, waiting for it to appear.
    #[track_caller]
    pub fn tap(&self, css: &str) {
        let element = self.wait_for(&format!("{css} to tap"), || self.try_find(css).ok());
        self.command("POST", &format!("element/{element}/click"), json!({}));
    }

    /// Types `text` into the first element matching `css`, waiting for it to appear.
    #[track_caller]
    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_for(&format!("{css} to type into"), || self.try_find(css).ok());
        self.command("POST", &format!("element/{element}/clear"), json!({}));
        self.command(
            "POST",
            &format!("element/{element}/value"),
            json!({ "text": text }),
        );
    }

    /// Waits for an element matching `css`; returns its reference.
    #[track_caller]
    pub fn wait_present(&self, css: &str) -> String {
        self.wait_for(css, || self.try_find(css).ok())
    }

    /// Runs `script` in the page (WebDriver's synchronous execute) and returns its value.
    #[track_caller]
    pub fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Sends a DevTools protocol command through chromedriver (`Emulation.*`, `Network.*`).
    #[track_caller]
    pub fn devtools(&self, cmd: &str, params: Value) -> Value {
        self.command(
            "POST",
            "goog/cdp/execute",
            json!({ "cmd": cmd, "params": params }),
        )
    }

    /// A PNG of the viewport, written to `path`.
    #[track_caller]
    pub fn save_screenshot(&self, path: &Path) {
        let png = self.screenshot();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "the screenshot is not a PNG"
        );
        std::fs::write(path, &png).expect("write the screenshot");
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.command("GET", "screenshot", Value::Null);
        decode_base64(encoded.as_str().unwrap_or_default())
            .unwrap_or_else(|| panic!("the screenshot is not base64"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw_command("DELETE", &format!("/session/{}", self.session), Value::Null);
        }
        // Chromium and its helpers are in chromedriver's process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decodes standard base64 (padding and whitespace ignored); `None` on any other byte.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut bits = 0u32;
    let mut bit_count = 0;
    for byte in text.bytes() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' | b' ' => continue,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(sextet);
        bit_count += 6;
        if bit_count >= 8 {
            bit_count -= 8;
            out.push((bits >> bit_count) as u8);
            bits &= (1 << bit_count) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_what_webdriver_sends() {
        assert_eq!(decode_base64("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(
            decode_base64("iVBORw0KGgo=").as_deref(),
            Some(&b"\x89PNG\r\n\x1a\n"[..])
        );
        assert_eq!(decode_base64("a$b"), None);
    }
}
