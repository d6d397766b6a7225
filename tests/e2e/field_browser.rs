//! The field app in headless Chromium at a phone's size (390x844, touch), against real
//! `gridsync run --ui` processes, in both languages.
//!
//! A volunteer, offline, signs in with the PIN and records a visit with a special need, a
//! delivery and a sweep, and corrects a record, all by tapping; the records are listed as
//! "only on this device", stay listed after the node restarts (the page keeps its session),
//! then show "reached the captain" and "reached the office" as the real nodes meet. A captain
//! opens the review of the building, sees the conflict two volunteers made offline, and
//! settles it with one tap. Every screen is saved as a screenshot in Chinese and in English
//! under `<target dir>/field-app/` for a person to look at.

use std::time::Duration;

use crate::browser::{Browser, browser_missing, target_file};
use crate::node_support::{NodeProcess, Street, await_plan};
use crate::support::Device;

const PIN: &str = "135790";
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

fn testid(id: &str) -> String {
    format!(r#"[data-testid="{id}"]"#)
}

fn set_pin(device: &mut Device) {
    device.env.push(("GRIDSYNC_PIN".to_owned(), PIN.to_owned()));
    device.run_line("pin set").ok();
    device.env.retain(|(k, _)| k != "GRIDSYNC_PIN");
}

/// The app in a phone browser, on one node.
struct Phone {
    browser: Browser,
    base: String,
    /// Screenshot names start with this (`zh`, `en`).
    lang: &'static str,
}

impl Phone {
    fn open(node: &NodeProcess, lang: &'static str) -> Phone {
        let browser = Browser::start_phone(if lang == "zh" { "zh-CN" } else { "en-US" });
        let base = format!("http://{}", node.ui.expect("the node serves the field app"));
        Phone {
            browser,
            base,
            lang,
        }
    }

    /// Waits until the app rendered `screen` (its `data-screen` mark).
    #[track_caller]
    fn screen(&self, screen: &str) {
        self.browser
            .wait_present(&format!(r#"main[data-screen="{screen}"]"#));
    }

    #[track_caller]
    fn go(&self, hash: &str, screen: &str) {
        self.browser.navigate(&format!("{}/{hash}", self.base));
        self.screen(screen);
    }

    #[track_caller]
    fn shot(&self, name: &str) {
        let path = target_file(&format!("field-app/{}-{name}.png", self.lang));
        self.browser.save_screenshot(&path);
        println!("field app: screenshot {}", path.display());
    }

    #[track_caller]
    fn tap(&self, id: &str) {
        self.browser.tap(&testid(id));
    }

    #[track_caller]
    fn sign_in(&self) {
        self.browser.navigate(&format!("{}/", self.base));
        self.screen("pin");
        self.browser.type_into(&testid("pin-input"), PIN);
        self.tap("pin-submit");
        self.screen("assignments");
    }

    /// The sync marker of record `id` on the records screen, reloading until it reads `want`.
    #[track_caller]
    fn await_marker(&self, id: &str, want: &str) {
        let css = format!(
            r#"{} [data-testid="sync-marker"][data-sync="{want}"]"#,
            testid(&format!("record-{id}"))
        );
        let deadline = std::time::Instant::now() + SYNC_TIMEOUT;
        loop {
            self.go("#/records", "records");
            if self.browser.try_find(&css).is_ok() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "record {id} never showed as {want}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The id of the newest record on the records screen.
    fn newest_record(&self) -> String {
        self.go("#/records", "records");
        let id = self.browser.eval(
            r#"var r = document.querySelector('[data-testid^="record-"]');
               return r ? r.getAttribute('data-testid').slice(7) : null;"#,
        );
        id.as_str().expect("a record is listed").to_owned()
    }
}

#[test]
fn field_app_on_a_phone_in_both_languages() {
    if let Some(skip) = browser_missing() {
        println!("{skip}");
        return;
    }
    std::fs::create_dir_all(target_file("field-app")).expect("screenshot directory");
    let mut street =
        Street::with_plan(&[("vol-1", "panhuo/grid-001"), ("vol-2", "panhuo/grid-001")]);
    street.enroll_as("cap-1", "captain", &["panhuo/grid-001"]);
    for name in ["vol-1", "cap-1"] {
        set_pin(street.devices.get_mut(name).expect("enrolled"));
    }
    let office = NodeProcess::start(&street.office, "office", &[]);
    for name in ["vol-1", "vol-2", "cap-1"] {
        let node = NodeProcess::start(street.device(name), name, &[office.addr]);
        await_plan(&[street.device(name)], SYNC_TIMEOUT);
        drop(node);
    }

    // --- A volunteer, offline, in Chinese -------------------------------------------------
    let volunteer = street.device("vol-1");
    let node = NodeProcess::start_with_ui(volunteer, "vol-1", &[]);
    let zh = Phone::open(&node, "zh");
    zh.browser.navigate(&format!("{}/", zh.base));
    zh.screen("pin");
    assert_eq!(
        zh.browser.eval("return document.documentElement.lang"),
        "zh-CN"
    );
    zh.shot("pin");
    zh.sign_in();
    zh.shot("assignments");
    zh.tap("building-bldg-1");
    zh.tap("household-h-1");
    zh.screen("household");
    zh.tap("record-visit");
    zh.screen("visit");
    zh.tap("outcome-contacted");
    zh.tap("people-plus");
    zh.tap("flag-pregnant");
    zh.tap("need-medicine");
    zh.browser
        .type_into(&testid("need-detail-medicine"), "叶酸");
    zh.browser
        .type_into(&testid("visit-note"), "三楼，按两次门铃");
    zh.shot("visit");
    zh.tap("save");
    zh.browser.wait_present(&testid("toast"));
    zh.screen("household");
    zh.shot("household");
    let visit = zh.newest_record();
    zh.shot("records");
    // A delivery: the checklist with its merge rule.
    zh.go("#/household/h-1/deliveries", "deliveries");
    zh.browser.wait_present(&testid("delivery-rule"));
    zh.tap("deliver-medicine-delivered");
    zh.browser.wait_present(&testid("toast"));
    zh.screen("deliveries");
    zh.shot("deliveries");
    // A sweep of the building.
    zh.go("#/building/bldg-1/sweep", "sweep");
    zh.browser.type_into(&testid("sweep-round"), "1");
    zh.tap("unit-u-1");
    zh.tap("reached-plus");
    zh.tap("reached-plus");
    zh.shot("sweep");
    zh.tap("save");
    zh.browser.wait_present(&testid("toast"));
    // A correction of the sweep (wrong round): retracted, kept readable.
    let sweep = zh.newest_record();
    zh.tap(&format!("correct-{sweep}"));
    zh.screen("correct");
    zh.browser
        .type_into(&testid("correction-reason"), "轮次填错");
    zh.tap("correction-retract");
    zh.shot("correct");
    zh.tap("save");
    zh.browser.wait_present(&testid("toast"));
    // Everything is only here; the banner says how much has not reached the office.
    zh.go("#/records", "records");
    zh.browser.wait_present(&format!(
        r#"{} [data-sync="device"]"#,
        testid(&format!("record-{visit}"))
    ));
    let banner = zh.browser.wait_present(&testid("not-at-office-banner"));
    let text = zh.browser.text(&banner).expect("banner text");
    assert!(text.contains('4'), "four records not at the office: {text}");
    zh.go("#/sync", "sync");
    zh.shot("sync");

    // The node restarts (still no peer): the page keeps working, records still listed.
    drop(node);
    let node = NodeProcess::start_with_ui(volunteer, "vol-1", &[]);
    let zh = Phone {
        base: format!("http://{}", node.ui.expect("ui")),
        ..zh
    };
    zh.go("#/records", "records");
    zh.browser.wait_present(&testid(&format!("record-{visit}")));

    // On site: the captain's laptop acknowledges the records, then the office does.
    let captain = NodeProcess::start_with_ui(street.device("cap-1"), "cap-1", &[office.addr]);
    drop(node);
    let node = NodeProcess::start_with_ui(volunteer, "vol-1", &[captain.addr]);
    let zh = Phone {
        base: format!("http://{}", node.ui.expect("ui")),
        ..zh
    };
    zh.await_marker(&visit, "captain");
    zh.shot("records-captain");
    drop(node);
    let node = NodeProcess::start_with_ui(volunteer, "vol-1", &[office.addr]);
    let zh = Phone {
        base: format!("http://{}", node.ui.expect("ui")),
        ..zh
    };
    zh.await_marker(&visit, "office");
    zh.shot("records-office");
    // The switch to English sticks.
    zh.tap("lang-en");
    zh.browser.wait_for("the page in English", || {
        (zh.browser.eval("return document.documentElement.lang") == "en").then_some(())
    });
    zh.tap("lang-zh");
    drop(node);

    // --- Two volunteers disagree offline; the captain settles it, in English --------------
    let conflicting = street
        .device("vol-2")
        .run_line("visit add --household h-1 --outcome not-home --json")
        .json()["record_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let v2 = NodeProcess::start(street.device("vol-2"), "vol-2", &[captain.addr]);
    let en = Phone::open(&captain, "en");
    en.sign_in();
    en.shot("captain-assignments");
    en.go("#/review", "review");
    en.tap("review-bldg-1");
    en.screen("review-building");
    en.browser.wait_for("the conflict on h-1", || {
        en.go("#/review/bldg-1", "review-building");
        en.browser.try_find(&testid("conflict-h-1")).ok()
    });
    en.shot("review-building");
    // One tap: the report that was wrong is retracted; the conflict goes.
    en.tap(&format!("fix-{conflicting}"));
    en.browser.wait_present(&testid("toast"));
    en.browser.wait_for("the conflict to be settled", || {
        en.go("#/review/bldg-1", "review-building");
        en.browser
            .try_find(&testid("conflict-h-1"))
            .is_err()
            .then_some(())
    });
    en.go("#/review", "review");
    en.shot("review");
    drop(v2);

    // --- Every screen in the other language -----------------------------------------------
    for (hash, screen) in [
        ("#/", "assignments"),
        ("#/household/h-1", "household"),
        ("#/household/h-1/visit", "visit"),
        ("#/household/h-1/deliveries", "deliveries"),
        ("#/building/bldg-1/sweep", "sweep"),
        ("#/records", "records"),
        ("#/sync", "sync"),
    ] {
        en.go(hash, screen);
        en.shot(screen);
    }
    let zh_captain = Phone::open(&captain, "zh");
    zh_captain.sign_in();
    for (hash, screen) in [
        ("#/review", "review"),
        ("#/review/bldg-1", "review-building"),
    ] {
        zh_captain.go(hash, screen);
        zh_captain.shot(screen);
    }
}
