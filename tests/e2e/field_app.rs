//! The field app's JSON API against real `gridsync run --ui` processes: the PIN chosen on the
//! device, records saved with no peer reachable and kept across a restart, per-record sync
//! markers that move from "only on this device" to "reached the captain" to "reached the
//! office" as real nodes acknowledge them, and the captain's review of a conflict two
//! volunteers made offline, settled by a one-tap correction.

use std::net::SocketAddr;
use std::time::Duration;

use gridsync_testkit::http::{self, Reply};
use serde_json::{Value, json};

use crate::node_support::{NodeProcess, Street, await_plan, wait_until};
use crate::support::Device;

const PIN: &str = "246810";
/// How long records may take to travel between nodes on loopback.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Sets the device's field-app PIN the way a script would (`$GRIDSYNC_PIN`).
fn set_pin(device: &mut Device, pin: &str) -> crate::support::Run {
    device.env.push(("GRIDSYNC_PIN".to_owned(), pin.to_owned()));
    let run = device.run_line("pin set");
    device.env.retain(|(k, _)| k != "GRIDSYNC_PIN");
    run
}

/// `POST /api/v1/login` with `pin`.
fn login(addr: SocketAddr, pin: &str) -> Reply {
    let body = json!({ "pin": pin }).to_string();
    let json = [("Content-Type", "application/json")];
    http::request(addr, "POST", "/api/v1/login", &json, &body).expect("login")
}

/// A signed-in client of one node's field app.
struct App {
    addr: SocketAddr,
    cookie: String,
}

impl App {
    #[track_caller]
    fn sign_in(node: &NodeProcess, pin: &str) -> App {
        let addr = node.ui.expect("the node serves the field app");
        let reply = login(addr, pin);
        assert_eq!(reply.status, 204, "login: {}", reply.text());
        let cookie = reply
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned();
        App { addr, cookie }
    }

    #[track_caller]
    fn call(&self, method: &str, path: &str, body: &Value) -> Reply {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let mut headers = vec![("Cookie", self.cookie.as_str())];
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        http::request(self.addr, method, path, &headers, &body).expect("field app request")
    }

    #[track_caller]
    fn get(&self, path: &str) -> Value {
        let reply = self.call("GET", path, &Value::Null);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
        reply.json().expect("JSON")
    }

    /// Posts a record; returns its id.
    #[track_caller]
    fn record(&self, path: &str, body: Value) -> String {
        let reply = self.call("POST", path, &body);
        assert_eq!(reply.status, 201, "POST {path}: {}", reply.text());
        let receipt = reply.json().expect("JSON");
        assert_eq!(receipt["sync"], "device");
        receipt["record_id"].as_str().expect("record id").to_owned()
    }

    /// The sync marker of one of this device's records.
    fn marker(&self, id: &str) -> Option<String> {
        let records = self.get("/api/v1/records");
        records["records"]
            .as_array()?
            .iter()
            .find(|r| r["id"] == id)
            .and_then(|r| r["sync"].as_str().map(str::to_owned))
    }
}

fn visit(household: &str, outcome: &str) -> Value {
    json!({
        "household": household,
        "outcome": outcome,
        "people": 2,
        "flags": ["pregnant"],
        "needs": [{"need": "medicine", "detail": "folic acid"}],
        "note": "third floor, ring twice",
    })
}

#[test]
fn the_pin_guards_the_app_and_refuses_what_is_not_a_pin() {
    let mut street = Street::with_plan(&[("vol-1", "panhuo/grid-001")]);
    let device = street.devices.get_mut("vol-1").expect("enrolled");
    set_pin(device, "12a4").fails_alone_with("a PIN is 4 to 12 digits");
    set_pin(device, PIN).ok();
    let node = NodeProcess::start_with_ui(device, "vol-1", &[]);
    let addr = node.ui.expect("field app address");
    // The page itself holds no data and loads without a PIN; the API does not.
    let page = http::request(addr, "GET", "/", &[], "").expect("page");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("app.js"), "{}", page.text());
    let anonymous = http::request(addr, "GET", "/api/v1/records", &[], "").expect("records");
    assert_eq!(anonymous.status, 401);
    let forged = http::request(
        addr,
        "GET",
        "/api/v1/records",
        &[("Cookie", "gridsync_field=0123456789abcdef")],
        "",
    )
    .expect("records");
    assert_eq!(forged.status, 401);
    let wrong = |pin: &str| login(addr, pin).status;
    for _ in 0..5 {
        assert_eq!(wrong("000000"), 401);
    }
    // Five wrong guesses pause the login, even for the right PIN.
    assert_eq!(wrong(PIN), 429);
    // The session cookie is HttpOnly and SameSite=Strict (checked on a fresh node: the
    // paused one would refuse).
    drop(node);
    let node = NodeProcess::start_with_ui(street.device("vol-1"), "vol-1", &[]);
    let reply = login(node.ui.expect("ui"), PIN);
    assert_eq!(reply.status, 204);
    let cookie = reply.header("set-cookie").expect("cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

/// A web page elsewhere can make a browser on the phone send requests to a name it points at
/// 127.0.0.1 (DNS rebinding). The app answers only requests addressed to an IP address or
/// `localhost`, so such a page can neither read the API nor guess the PIN.
#[test]
fn requests_for_another_host_name_are_refused() {
    let mut street = Street::with_plan(&[("vol-1", "panhuo/grid-001")]);
    set_pin(street.devices.get_mut("vol-1").expect("enrolled"), PIN).ok();
    let node = NodeProcess::start_with_ui(street.device("vol-1"), "vol-1", &[]);
    let addr = node.ui.expect("ui");
    let port = addr.port();
    for host in [format!("evil.example:{port}"), "attacker.test".to_owned()] {
        let json = [
            ("Host", host.as_str()),
            ("Content-Type", "application/json"),
        ];
        let body = json!({ "pin": PIN }).to_string();
        let login = http::request(addr, "POST", "/api/v1/login", &json, &body).expect("login");
        assert_eq!(login.status, 421, "{host}: {}", login.text());
        assert!(login.header("set-cookie").is_none());
        let page = http::request(addr, "GET", "/", &json[..1], "").expect("page");
        assert_eq!(page.status, 421, "{host}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let page = http::request(addr, "GET", "/", &[("Host", host.as_str())], "").expect("page");
        assert_eq!(page.status, 200, "{host}");
    }
}

#[test]
fn records_saved_offline_then_reach_the_captain_then_the_office() {
    let mut street = Street::with_plan(&[("vol-1", "panhuo/grid-001")]);
    street.enroll_as("cap-1", "captain", &["panhuo/grid-001"]);
    set_pin(street.devices.get_mut("vol-1").expect("enrolled"), PIN).ok();
    let volunteer = street.device("vol-1");

    // The plan reaches the devices with their first sync; then the volunteer goes offline.
    let office = NodeProcess::start(&street.office, "office", &[]);
    let captain = NodeProcess::start(street.device("cap-1"), "cap-1", &[office.addr]);
    {
        let node = NodeProcess::start(volunteer, "vol-1", &[office.addr]);
        await_plan(&[volunteer, street.device("cap-1")], SYNC_TIMEOUT);
        drop(node);
    }

    // Offline: the visit is saved on the device, listed, marked as only here.
    let node = NodeProcess::start_with_ui(volunteer, "vol-1", &[]);
    let app = App::sign_in(&node, PIN);
    let assignments = app.get("/api/v1/assignments");
    let buildings: Vec<&str> = assignments["buildings"]
        .as_array()
        .expect("buildings")
        .iter()
        .filter_map(|b| b["building"].as_str())
        .collect();
    assert_eq!(
        buildings,
        ["bldg-1"],
        "only the buildings in the write scope"
    );
    let id = app.record("/api/v1/visits", visit("h-1", "contacted"));
    let delivery = app.record(
        "/api/v1/deliveries",
        json!({"household": "h-1", "item": "medicine", "status": "delivered"}),
    );
    let sweep = app.record(
        "/api/v1/sweeps",
        json!({"building": "bldg-1", "round": 1, "units": ["u-1"], "reached": 2, "not_home": 0, "refused": 0}),
    );
    let household = app.get("/api/v1/households/h-1");
    assert_eq!(household["visited_this_round"], true);
    assert_eq!(household["flags"], json!(["pregnant"]));
    assert_eq!(household["visits"][0]["id"], id.as_str());
    assert_eq!(household["visits"][0]["sync"], "device");
    assert_eq!(household["delivery_events"][0]["id"], delivery.as_str());
    let building = app.get("/api/v1/buildings/bldg-1");
    assert_eq!(building["sweeps"][0]["id"], sweep.as_str());
    let mine = app.get("/api/v1/records");
    assert_eq!(mine["not_at_office"], 3);
    assert_eq!(mine["only_on_device"], 3);
    // Bad input is refused and nothing is written.
    let refused = app.call("POST", "/api/v1/visits", &visit("h-1", "asleep"));
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.text().contains("asleep"), "{}", refused.text());
    let outside = app.call("POST", "/api/v1/visits", &visit("h-3", "contacted"));
    assert_eq!(outside.status, 403, "{}", outside.text());
    assert_eq!(app.get("/api/v1/records")["total"], 3);

    // After a restart, the records are still there (and still only here).
    drop(node);
    let node = NodeProcess::start_with_ui(volunteer, "vol-1", &[captain.addr]);
    let app = App::sign_in(&node, PIN);
    // Meeting the captain: the captain's acknowledgement moves the marker.
    assert!(
        wait_until(SYNC_TIMEOUT, || app.marker(&id).as_deref()
            == Some("captain")),
        "the visit never showed as reached by the captain: {:?}",
        app.get("/api/v1/records")
    );
    let sync = app.get("/api/v1/sync");
    assert_eq!(sync["only_on_device"], 0, "{sync}");
    assert!(
        sync["peers"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["node_id"] == "cap-1"))
    );
    // Meeting the office itself.
    drop(node);
    let node = NodeProcess::start_with_ui(volunteer, "vol-1", &[office.addr]);
    let app = App::sign_in(&node, PIN);
    assert!(
        wait_until(SYNC_TIMEOUT, || app.marker(&id).as_deref()
            == Some("office")),
        "the visit never showed as reached by the office: {:?}",
        app.get("/api/v1/records")
    );
    assert!(wait_until(
        SYNC_TIMEOUT,
        || app.get("/api/v1/sync")["not_at_office"] == 0
    ));
}

#[test]
fn the_captain_sees_a_conflict_made_offline_and_settles_it() {
    let mut street =
        Street::with_plan(&[("vol-1", "panhuo/grid-001"), ("vol-2", "panhuo/grid-001")]);
    street.enroll_as("cap-1", "captain", &["panhuo/grid-001"]);
    set_pin(street.devices.get_mut("cap-1").expect("enrolled"), PIN).ok();
    let office = NodeProcess::start(&street.office, "office", &[]);
    // Both volunteers get the plan, then record the same household offline.
    for name in ["vol-1", "vol-2"] {
        let node = NodeProcess::start(street.device(name), name, &[office.addr]);
        await_plan(&[street.device(name)], SYNC_TIMEOUT);
        drop(node);
    }
    drop(office);
    let run = |name: &str, outcome: &str| {
        street
            .device(name)
            .run_line(&format!(
                "visit add --household h-2 --outcome {outcome} --json"
            ))
            .json()["record_id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let first = run("vol-1", "not-home");
    let second = run("vol-2", "contacted");
    // On site, over the local Wi-Fi: both volunteers meet the captain.
    let captain = NodeProcess::start_with_ui(street.device("cap-1"), "cap-1", &[]);
    let v1 = NodeProcess::start(street.device("vol-1"), "vol-1", &[captain.addr]);
    let v2 = NodeProcess::start(street.device("vol-2"), "vol-2", &[captain.addr]);
    let app = App::sign_in(&captain, PIN);
    let conflict = || -> Option<Value> {
        app.get("/api/v1/review/bldg-1")["conflicts"]
            .as_array()?
            .iter()
            .find(|c| c["household"] == "h-2")
            .cloned()
    };
    assert!(
        wait_until(SYNC_TIMEOUT, || conflict().is_some()),
        "no conflict shown: {}",
        app.get("/api/v1/review/bldg-1")
    );
    let shown = conflict().expect("conflict");
    assert_eq!(shown["kind"], "visit-outcomes");
    assert_eq!(shown["rule_key"], "rule.latest-visit-wins");
    let ids: Vec<&str> = shown["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(
        ids.contains(&first.as_str()) && ids.contains(&second.as_str()),
        "{shown}"
    );
    let review = app.get("/api/v1/review/bldg-1");
    let volunteers: Vec<&str> = review["volunteers"]
        .as_array()
        .expect("volunteers")
        .iter()
        .filter_map(|v| v["volunteer"].as_str())
        .collect();
    assert_eq!(volunteers, ["vol-1", "vol-2"], "{review}");
    // One tap: the captain retracts the report that was wrong; the conflict is gone, and the
    // retraction travels back to the volunteer who made it.
    app.record(
        "/api/v1/corrections",
        json!({"building": "bldg-1", "record": first, "reason": "captain review: she was home"}),
    );
    assert!(conflict().is_none(), "{}", app.get("/api/v1/review/bldg-1"));
    let overview = app.get("/api/v1/review");
    assert_eq!(overview["buildings"][0]["conflicts"], 0, "{overview}");
    assert!(wait_until(SYNC_TIMEOUT, || {
        street
            .device("vol-1")
            .run_line("visit list --household h-2 --json")
            .json()
            .as_array()
            .is_some_and(|rows| rows.iter().all(|r| r["id"] != first.as_str()))
    }));
    drop((v1, v2));
}
