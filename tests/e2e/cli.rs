//! Every CLI command through the real binary, including its error cases.
//!
//! Each test owns a fresh [`Device`] (a temporary data directory). Most start from
//! [`planned_device`]: a store initialized as `vol-0042` of street `panhuo` holding the small
//! plan in [`PLAN_ROWS`]; writes are made with `--json` so the tests know the saved ids.
//! Errors are held to the house rule: non-zero exit, nothing on stdout, one `error: ` line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Device, Run, run_in, run_plain};

/// The node id every planned device is initialized with.
const NODE: &str = "vol-0042";

/// The test street: building b1 (grid g1) has units u1 and u2 with three households, building
/// b2 (grid g2) one unit with one household. The first door needs CSV quoting.
const PLAN_ROWS: [&str; 4] = [
    "h-101,c1,g1,b1,u1,\"101, left\",2,lockdown",
    "h-102,c1,g1,b1,u1,102,1,lockdown",
    "h-201,c1,g1,b1,u2,201,3,lockdown",
    "h-301,c1,g2,b2,u1,301,1,control",
];

/// Visit times well in the past, in increasing order, so list order is known.
const T1: &str = "2025-03-01T09:30:00+08:00";
const T2: &str = "2025-03-01T10:00:00+08:00";
const T3: &str = "2025-03-01T10:30:00+08:00";

/// A record id that is a well-formed ULID but names nothing.
const ABSENT_ID: &str = "01JNFZ3ZQ5X0M8Y9V2K7D4C6AB";

/// The plan CSV header, as `gridsync plan columns --json` states it.
fn plan_header(device: &Device) -> String {
    let columns = device.run_line("plan columns --json").json();
    columns["header"]
        .as_str()
        .expect("plan columns --json has a header string")
        .to_owned()
}

/// Writes a plan file (header from `plan columns`, then `rows`) into the device's directory.
fn write_plan(device: &Device, name: &str, rows: &[&str]) -> PathBuf {
    let mut text = plan_header(device);
    for row in rows {
        text.push('\n');
        text.push_str(row);
    }
    text.push('\n');
    let file = device.path().join(name);
    std::fs::write(&file, text).expect("write plan file");
    file
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// A device with a store but no plan.
fn initialized_device() -> Device {
    let device = Device::new();
    device.run(&["init", "--node-id", NODE]).ok();
    device
}

/// A device with a store and the [`PLAN_ROWS`] plan imported.
fn planned_device() -> Device {
    let device = initialized_device();
    let file = write_plan(&device, "plan.csv", &PLAN_ROWS);
    let out = device.run(&["plan", "import", path_arg(&file)]);
    assert_eq!(out.ok(), "imported 4 households into panhuo/plan\n");
    device
}

/// The record id of a write's `--json` receipt, checked to be a ULID.
#[track_caller]
fn saved_id(run: &Run) -> String {
    let receipt = run.json();
    let id = receipt["record_id"]
        .as_str()
        .unwrap_or_else(|| panic!("receipt without record_id: {receipt}"))
        .to_owned();
    assert_eq!(id.len(), 26, "not a ULID: {id}");
    assert!(
        receipt["message"].as_str().is_some_and(|m| m.contains(&id)),
        "receipt message does not name the id: {receipt}"
    );
    id
}

/// Logs a visit at `at` with extra flags and returns its id.
#[track_caller]
fn add_visit(device: &Device, household: &str, outcome: &str, at: &str, extra: &[&str]) -> String {
    let mut args = vec!["visit", "add", "--json"];
    args.extend(["--household", household, "--outcome", outcome, "--at", at]);
    args.extend_from_slice(extra);
    saved_id(&device.run(&args))
}

/// Sets a delivery status and returns the receipt's message with the new id shown as `ID`.
#[track_caller]
fn deliver(device: &Device, household: &str, item: &str, status: &str) -> String {
    let run = device.run(&delivery_args(household, item, status, &["--json"]));
    let id = saved_id(&run);
    let message = run.json()["message"].as_str().expect("message").to_owned();
    message.replacen(&id, "ID", 1)
}

/// A command line written as one string (split at whitespace), then arguments that may hold
/// spaces, such as paths.
fn words<'a>(line: &'a str, tail: &[&'a str]) -> Vec<&'a str> {
    line.split_whitespace()
        .chain(tail.iter().copied())
        .collect()
}

/// `deliver --household H --item I --status S` followed by `extra`.
fn delivery_args<'a>(
    household: &'a str,
    item: &'a str,
    status: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["deliver", "--household", household, "--item", item];
    args.extend(["--status", status]);
    args.extend_from_slice(extra);
    args
}

/// `visit list --json` with optional filter flags.
#[track_caller]
fn list_visits(device: &Device, filter: &[&str]) -> Vec<Value> {
    let mut args = vec!["visit", "list", "--json"];
    args.extend_from_slice(filter);
    match device.run(&args).json() {
        Value::Array(rows) => rows,
        other => panic!("visit list --json is not an array: {other}"),
    }
}

fn ids_of(rows: &[Value]) -> Vec<&str> {
    rows.iter()
        .map(|r| r["id"].as_str().expect("row id"))
        .collect()
}

/// `show building ID --json`.
#[track_caller]
fn show_building(device: &Device, building: &str) -> Value {
    device.run(&["show", "building", building, "--json"]).json()
}

/// The entry of `value`'s array `list` whose `key` is `wanted`.
#[track_caller]
fn entry<'a>(value: &'a Value, list: &str, key: &str, wanted: &str) -> &'a Value {
    gridsync_testkit::http::entry(value, list, key, wanted).unwrap_or_else(|e| panic!("{e:#}"))
}

/// One household's entry in a `show building --json` view.
#[track_caller]
fn household_view<'a>(view: &'a Value, household: &str) -> &'a Value {
    entry(view, "households", "household", household)
}

/// One item's entry in a household view's deliveries.
#[track_caller]
fn delivery_of<'a>(household: &'a Value, item: &str) -> &'a Value {
    entry(household, "deliveries", "item", item)
}

#[test]
fn help_teaches_with_examples() {
    let run = run_plain(&["--help"]);
    assert!(run.ok().contains("Examples:"), "{}", run.stdout);
    assert!(run.stdout.contains("visit add"));
}

#[test]
fn every_subcommand_has_help() {
    let commands: [&[&str]; 16] = [
        &["init"],
        &["plan"],
        &["plan", "import"],
        &["plan", "columns"],
        &["plan", "show"],
        &["visit"],
        &["visit", "add"],
        &["visit", "list"],
        &["deliver"],
        &["sweep"],
        &["sweep", "record"],
        &["show"],
        &["show", "building"],
        &["export"],
        &["correct"],
        &["demo"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let run = run_plain(&args);
        let usage = format!("Usage: gridsync {}", command.join(" "));
        assert!(
            run.ok().contains(&usage),
            "{args:?}: no {usage:?} in {}",
            run.stdout
        );
    }
    // Flags are documented where they are used.
    let add = run_plain(&["visit", "add", "--help"]);
    for flag in [
        "--household",
        "--outcome",
        "--people",
        "--flag",
        "--need",
        "--note",
        "--at",
    ] {
        assert!(add.ok().contains(flag), "visit add --help lacks {flag}");
    }
}

#[test]
fn usage_errors_exit_non_zero_with_an_error_line() {
    let device = planned_device();
    let cases = [
        ("export --format xml", "invalid value 'xml' for '--format"),
        (
            "visit add --household h-101",
            "the following required arguments were not provided",
        ),
        (
            "visit add --household h-101 --outcome contacted --people many",
            "invalid value 'many' for '--people",
        ),
        ("teleport", "unrecognized subcommand 'teleport'"),
    ];
    for (args, needle) in cases {
        let run = device.run_line(args);
        // clap's usage errors: exit code 2, an `error: ` line, then usage hints.
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
        run.fails_with(needle);
    }
    assert_eq!(list_visits(&device, &[]), Vec::<Value>::new());
}

#[test]
fn init_creates_a_store_once() {
    let device = Device::new();
    let data = device.path().display().to_string();
    let out = device.run(&["init", "--node-id", NODE]);
    assert_eq!(
        out.ok(),
        format!("initialized {data} as node {NODE} of street panhuo\n")
    );
    assert!(device.path().join("gridsync.db").is_file());

    // A second init must not start over: a clear error, and the first identity stays.
    let before = std::fs::read(device.path().join("gridsync.db")).expect("read store");
    device
        .run_line("init --node-id vol-9999")
        .fails_alone_with("a gridsync store already exists at");
    let after = std::fs::read(device.path().join("gridsync.db")).expect("read store");
    assert!(before == after, "a refused init changed the store file");
    let file = write_plan(&device, "plan.csv", &PLAN_ROWS);
    device.run(&["plan", "import", path_arg(&file)]).ok();
    add_visit(&device, "h-101", "contacted", T1, &[]);
    assert_eq!(list_visits(&device, &[])[0]["volunteer"], NODE);

    // A bad node id is refused before anything is created.
    let other = Device::new();
    other
        .run(&["init", "--node-id", "Vol 42!"])
        .fails_alone_with("node id \"Vol 42!\"");
    assert!(!other.path().join("gridsync.db").exists());
}

#[test]
fn init_with_a_street_names_its_documents() {
    let device = Device::new();
    let init = device
        .run_line("init --node-id vol-7 --street lanzhou --json")
        .json();
    assert_eq!(init["node_id"], "vol-7");
    assert_eq!(init["street"], "lanzhou");
    assert_eq!(init["data"], device.path().display().to_string());
    let file = write_plan(&device, "plan.csv", &PLAN_ROWS);
    let receipt = device
        .run(&["plan", "import", path_arg(&file), "--json"])
        .json();
    assert_eq!(receipt["document"], "lanzhou/plan");
    assert_eq!(receipt["record_id"], Value::Null);
    let visit = device
        .run_line("visit add --household h-301 --outcome vacant --json")
        .json();
    assert_eq!(visit["document"], "lanzhou/g2/b2");
    assert_eq!(
        device.run_line("plan show --json").json()["street"],
        "lanzhou"
    );
}

#[test]
fn plan_columns_states_the_header_and_rules() {
    let device = Device::new();
    let header = "household_id,community,grid,building,unit,door,residents,zone";
    assert_eq!(plan_header(&device), header);
    let run = device.run_line("plan columns");
    let text = run.ok();
    assert_eq!(text.lines().next(), Some(header));
    assert!(
        text.contains("zone: lockdown, control or prevention"),
        "{text}"
    );
    assert!(text.contains("residents: 0 to 100"), "{text}");
    // Columns need no store: it is what one reads before writing the first plan.
    assert!(!device.path().join("gridsync.db").exists());
}

#[test]
fn plan_import_then_show() {
    let device = planned_device();
    let text = device.run_line("plan show");
    let lines: Vec<&str> = text.ok().lines().collect();
    assert_eq!(lines[0], "street panhuo: 2 buildings, 4 households");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].trim_start().starts_with("b1"), "{lines:?}");
    assert!(lines[1].contains("3 households, 2 units"), "{lines:?}");
    assert!(lines[2].trim_start().starts_with("b2"), "{lines:?}");
    assert!(lines[2].contains("1 households, 1 units"), "{lines:?}");

    let shown = device.run_line("plan show --json").json();
    assert_eq!(shown["street"], "panhuo");
    assert_eq!(shown["households"], 4);
    let buildings = shown["buildings"].as_array().expect("buildings");
    assert_eq!(buildings.len(), 2);
    assert_eq!(
        buildings[0],
        serde_json::json!({"building": "b1", "grid": "g1", "community": "c1", "households": 3, "units": 2})
    );
    assert_eq!(
        buildings[1],
        serde_json::json!({"building": "b2", "grid": "g2", "community": "c1", "households": 1, "units": 1})
    );

    // The quoted door survived the CSV round trip.
    let view = show_building(&device, "b1");
    assert_eq!(household_view(&view, "h-101")["door"], "101, left");

    // Re-importing the same file changes nothing; adding a row adds one household.
    let same = write_plan(&device, "same.csv", &PLAN_ROWS);
    assert_eq!(
        device.run(&["plan", "import", path_arg(&same)]).ok(),
        "plan unchanged: all 4 households already present\n"
    );
    let mut grown = PLAN_ROWS.to_vec();
    grown.push("h-302,c1,g2,b2,u1,302,4,control");
    let grown = write_plan(&device, "grown.csv", &grown);
    assert_eq!(
        device.run(&["plan", "import", path_arg(&grown)]).ok(),
        "imported 5 households into panhuo/plan\n"
    );
    assert_eq!(device.run_line("plan show --json").json()["households"], 5);
}

/// The street's time zone: the default until the office sets one, any offset people write,
/// a clear refusal for one no time zone has (nothing changed), and it survives a re-import.
#[test]
fn plan_time_zone_is_set_shown_and_checked() {
    let d = planned_device();
    let shown = d.run(&["--json", "plan", "time-zone"]).json();
    assert_eq!(shown["utc_offset_minutes"], 480);
    assert_eq!(shown["set"], false);
    d.run(&["plan", "time-zone", "-05:30"]).ok();
    let shown = d.run(&["--json", "plan", "time-zone"]).json();
    assert_eq!(shown["utc_offset"], "-05:30");
    assert_eq!(shown["set"], true);
    d.run(&["plan", "time-zone", "+25:00"])
        .fails_alone_with("is not a time zone");
    d.run(&["plan", "time-zone", "Asia/Shanghai"])
        .fails_alone_with("is not an offset from UTC");
    let text = d.run(&["plan", "time-zone"]);
    assert_eq!(
        text.ok().trim(),
        "UTC-05:30",
        "the refused ones changed nothing"
    );
    let file = write_plan(&d, "again.csv", &PLAN_ROWS);
    d.run(&["plan", "import", path_arg(&file)]).ok();
    let text = d.run(&["plan", "time-zone"]);
    assert_eq!(
        text.ok().trim(),
        "UTC-05:30",
        "a re-import keeps the time zone"
    );
}

#[test]
fn plan_import_with_one_bad_row_imports_nothing() {
    let device = planned_device();
    let before = device.run_line("plan show --json").ok().to_owned();

    // Line 1 is the header, so the bad third row is line 4. The good rows around it must not
    // be imported either.
    let bad = write_plan(
        &device,
        "bad.csv",
        &[
            "h-401,c1,g1,b4,u1,401,2,lockdown",
            "h-402,c1,g1,b4,u1,402,2,lockdown",
            "h-403,c1,g1,b4,u1,403,200,lockdown",
            "h-404,c1,g1,b4,u1,404,2,lockdown",
        ],
    );
    device
        .run(&["plan", "import", path_arg(&bad)])
        .fails_alone_with("line 4: column residents: \"200\"");
    assert_eq!(device.run_line("plan show --json").ok(), before);
    device
        .run_line("visit add --household h-401 --outcome contacted")
        .fails_alone_with("household \"h-401\" is not in the street plan");

    // Other kinds of bad rows, each named by line.
    let cases: [(&[&str], &str); 4] = [
        (&["h-501,c1,g1,b5,u1,1,2,quarantine"], "line 2: column zone"),
        (
            &["h-501,c1,g1,b5,u1,1,2"],
            "line 2: expected 8 fields, found 7",
        ),
        (
            &[
                "h-501,c1,g1,b5,u1,1,2,lockdown",
                "h-501,c1,g1,b5,u1,2,2,lockdown",
            ],
            "line 3: household \"h-501\" already appears on line 2",
        ),
        (
            &["h-501,c1,g1,B5,u1,1,2,lockdown"],
            "line 2: column building",
        ),
    ];
    for (rows, needle) in cases {
        let file = write_plan(&device, "case.csv", rows);
        device
            .run(&["plan", "import", path_arg(&file)])
            .fails_alone_with(needle);
    }
    let wrong_header = device.path().join("header.csv");
    std::fs::write(&wrong_header, "id,building\nh-1,b1\n").expect("write");
    device
        .run(&["plan", "import", path_arg(&wrong_header)])
        .fails_alone_with("line 1: header must be exactly");
    device
        .run(&[
            "plan",
            "import",
            path_arg(&device.path().join("missing.csv")),
        ])
        .fails_alone_with("cannot read");
    assert_eq!(device.run_line("plan show --json").ok(), before);

    // On a device with no plan yet, a bad file leaves it with no plan.
    let fresh = initialized_device();
    let bad = write_plan(&fresh, "bad.csv", &["h-1,c1,g1,b1,u1,1,-1,lockdown"]);
    fresh
        .run(&["plan", "import", path_arg(&bad)])
        .fails_alone_with("line 2: column residents");
    fresh
        .run_line("plan show")
        .fails_alone_with("no street plan on this device yet");
}

#[test]
fn visit_add_saves_every_field() {
    let device = planned_device();
    let id = add_visit(
        &device,
        "h-101",
        "contacted",
        T1,
        &words(
            "--people 2 --flag elderly-living-alone --flag chronic-illness \
             --need medicine:insulin --need food --note",
            &["lives alone, daughter calls daily"],
        ),
    );
    let rows = list_visits(&device, &[]);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["building"], "b1");
    assert_eq!(row["household"], "h-101");
    assert_eq!(row["at"], "2025-03-01T01:30:00Z");
    assert_eq!(row["volunteer"], NODE);
    assert_eq!(row["outcome"], "contacted");
    assert_eq!(row["people_seen"], 2);
    let flags: BTreeSet<&str> = row["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        flags,
        BTreeSet::from(["chronic-illness", "elderly-living-alone"])
    );
    let needs: BTreeSet<&str> = row["needs"]
        .as_array()
        .expect("needs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(needs, BTreeSet::from(["food", "medicine:insulin"]));
    assert_eq!(row["note"], "lives alone, daughter calls daily");
    assert_eq!(row["corrected"], false);

    // Text receipt, default time (now), --volunteer, and a note of exactly the maximum length.
    let note = "n".repeat(500);
    let out = device.run(&[
        "visit",
        "add",
        "--household",
        "h-301",
        "--outcome",
        "not-home",
        "--volunteer",
        "Li Wei",
        "--note",
        &note,
    ]);
    let text = out.ok();
    assert!(
        text.starts_with("saved visit ") && text.ends_with(" to household h-301 (panhuo/g2/b2)\n"),
        "{text}"
    );
    let rows = list_visits(&device, &["--household", "h-301"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["volunteer"], "Li Wei");
    assert_eq!(rows[0]["outcome"], "not-home");
    assert_eq!(rows[0]["people_seen"], 0);
    assert_eq!(rows[0]["note"].as_str().map(str::len), Some(500));
    assert!(
        rows[0]["at"].as_str().is_some_and(|at| at > "2026"),
        "{}",
        rows[0]
    );
}

#[test]
fn visit_add_refuses_bad_input_and_saves_nothing() {
    let device = planned_device();
    let with = |extra: &[&str]| {
        let mut args: Vec<&str> = "visit add --household h-101 --outcome contacted"
            .split_whitespace()
            .collect();
        args.extend_from_slice(extra);
        device.run(&args)
    };
    device
        .run_line("visit add --household h-999 --outcome contacted")
        .fails_alone_with("household \"h-999\" is not in the street plan");
    device
        .run_line("visit add --household h-101 --outcome chatted")
        .fails_alone_with("outcome \"chatted\": unknown visit outcome value \"chatted\"");
    with(&["--flag", "grumpy"])
        .fails_alone_with("flag \"grumpy\": unknown special-needs flag value \"grumpy\"");
    with(&["--need", "pizza:large"]).fails_alone_with("need \"pizza\": unknown need value");
    with(&["--note", &"x".repeat(501)])
        .fails_alone_with("field note has 501 characters, more than 500");
    with(&["--note", "bell\u{7}"]).fails_alone_with("field note contains a control character");
    with(&["--at", "2999-01-01T00:00:00Z"]).fails_alone_with("is more than ten minutes after now");
    with(&["--at", "1999-12-31T23:59:59Z"]).fails_alone_with("is before 2000-01-01");
    let bad_time = with(&["--at", "yesterday"]);
    bad_time.fails_alone_with(
        "--at \"yesterday\" is not an RFC 3339 time such as 2026-11-29T09:30:00+08:00",
    );
    // The parser's reason appears once, not once per error in the chain.
    assert_eq!(
        bad_time.stderr.matches("could not be parsed").count(),
        1,
        "{}",
        bad_time.stderr
    );
    with(&["--at", "2025-03-01 09:30"]).fails_alone_with("is not an RFC 3339 time");
    assert_eq!(list_visits(&device, &[]), Vec::<Value>::new());
    assert_eq!(device.run_line("visit list").ok(), "no visits\n");
}

#[test]
fn writes_need_a_plan_and_a_store() {
    let device = initialized_device();
    let no_plan = "no street plan on this device yet: import one with `gridsync plan import";
    device
        .run_line("visit add --household h-101 --outcome contacted")
        .fails_alone_with(no_plan);
    device.run_line("visit list").fails_alone_with(no_plan);
    device
        .run_line("deliver --household h-101 --item water --status requested")
        .fails_alone_with(no_plan);
    device
        .run_line("show building b1")
        .fails_alone_with(no_plan);
    device.run_line("plan show").fails_alone_with(no_plan);

    // No store at all: every command says how to make one, and creates nothing.
    let nowhere = device.path().join("nowhere");
    let plan = write_plan(&device, "plan.csv", &PLAN_ROWS);
    let out = device.path().join("export.csv");
    let commands = [
        words("visit add --household h-101 --outcome contacted", &[]),
        words("visit list", &[]),
        words("plan import", &[path_arg(&plan)]),
        words("plan show", &[]),
        words(
            "deliver --household h-101 --item water --status requested",
            &[],
        ),
        words(
            "sweep record --building b1 --round 1 --reached 1 --not-home 0 --refused 0",
            &[],
        ),
        words("correct --building b1 --reason typo --record", &[ABSENT_ID]),
        words("show building b1", &[]),
        words("export --out", &[path_arg(&out)]),
    ];
    for args in commands {
        run_in(&nowhere, &args).fails_alone_with(&format!(
            "no gridsync store in {}: run `gridsync init",
            nowhere.display()
        ));
    }
    assert!(
        !nowhere.exists(),
        "a failed command created the data directory"
    );
    assert!(!out.exists(), "a failed export created its output file");
    // An existing but empty directory is no store either.
    let empty = Device::new();
    empty
        .run_line("visit list")
        .fails_alone_with("run `gridsync init");
}

#[test]
fn visit_list_filters_by_building_and_household() {
    let device = planned_device();
    // Saved out of time order: the list is ordered by visit time.
    let c = add_visit(&device, "h-301", "refused", T3, &[]);
    let a = add_visit(&device, "h-101", "contacted", T1, &["--people", "3"]);
    let b = add_visit(&device, "h-201", "moved-out", T2, &[]);
    let a2 = add_visit(&device, "h-101", "not-home", T3, &[]);

    assert_eq!(ids_of(&list_visits(&device, &[])), [&a, &b, &c, &a2]);
    let b1 = list_visits(&device, &["--building", "b1"]);
    assert_eq!(ids_of(&b1), [&a, &b, &a2]);
    assert!(b1.iter().all(|r| r["building"] == "b1"));
    assert_eq!(ids_of(&list_visits(&device, &["--building", "b2"])), [&c]);
    assert_eq!(
        ids_of(&list_visits(&device, &["--household", "h-101"])),
        [&a, &a2]
    );
    assert_eq!(
        ids_of(&list_visits(
            &device,
            &["--building", "b1", "--household", "h-201"]
        )),
        [&b]
    );
    assert_eq!(
        list_visits(&device, &["--household", "h-102"]),
        Vec::<Value>::new()
    );

    let text = device.run_line("visit list --building b1");
    let lines: Vec<&str> = text.ok().lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("2025-03-01T01:30:00Z  h-101"),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("contacted") && lines[0].contains("people=3"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("h-201") && lines[1].contains("moved-out"),
        "{lines:?}"
    );
    assert_eq!(
        device.run_line("visit list --household h-102").ok(),
        "no visits\n"
    );

    device
        .run_line("visit list --building b9")
        .fails_alone_with("building \"b9\" is not in the street plan");
    device
        .run_line("visit list --household h-999")
        .fails_alone_with("household \"h-999\" is not in the street plan");
    device
        .run_line("visit list --building b1 --household h-999")
        .fails_alone_with("household \"h-999\" is not in the street plan");
    device
        .run_line("visit list --building b2 --household h-101")
        .fails_alone_with("household \"h-101\" is in building \"b1\", not in \"b2\"");
}

#[test]
fn corrections_replace_or_retract_and_keep_the_original() {
    let device = planned_device();
    let replaced = add_visit(&device, "h-101", "contacted", T1, &["--people", "2"]);
    let retracted = add_visit(&device, "h-102", "contacted", T2, &[]);
    let kept = add_visit(&device, "h-201", "not-home", T3, &[]);

    let out = device.run(&[
        "correct",
        "--building",
        "b1",
        "--record",
        &replaced,
        "--reason",
        "household refused at the door",
        "--outcome",
        "refused",
        "--json",
    ]);
    let fix = saved_id(&out);
    assert_eq!(
        out.json()["message"],
        format!("saved correction {fix} of {replaced}")
    );
    let retraction = saved_id(&device.run(&[
        "correct",
        "--building",
        "b1",
        "--record",
        &retracted,
        "--reason",
        "logged the wrong door",
        "--json",
    ]));

    // The corrected view: the replacement shows under the original id, the retraction hides.
    let rows = list_visits(&device, &[]);
    assert_eq!(ids_of(&rows), [&replaced, &kept]);
    assert_eq!(rows[0]["outcome"], "refused");
    assert_eq!(rows[0]["people_seen"], 2);
    assert_eq!(rows[0]["corrected"], true);
    assert_eq!(rows[1]["corrected"], false);
    let text = device.run_line("visit list --household h-101");
    assert!(
        text.ok().contains("refused") && text.stdout.trim_end().ends_with("(corrected)"),
        "{}",
        text.stdout
    );
    let view = show_building(&device, "b1");
    assert_eq!(household_view(&view, "h-101")["latest_outcome"], "refused");
    assert_eq!(
        household_view(&view, "h-102")["latest_outcome"],
        Value::Null
    );

    // The audit trail keeps every original and both corrections.
    let export = device.run_line("export --format json");
    let rows: Vec<Value> = export
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let ids: BTreeSet<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    let expected: BTreeSet<&str> = [&replaced, &retracted, &kept, &fix, &retraction]
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(ids, expected);
    let original = rows
        .iter()
        .find(|r| r["id"] == replaced.as_str())
        .expect("original");
    assert_eq!(original["status"], "contacted");
    let replace = rows
        .iter()
        .find(|r| r["id"] == fix.as_str())
        .expect("replacement");
    assert_eq!(replace["kind"], "correction");
    assert_eq!(replace["action"], "replace");
    assert_eq!(replace["target"], replaced.as_str());
    assert_eq!(replace["status"], "refused");
    assert_eq!(replace["text"], "household refused at the door");
    let retract = rows
        .iter()
        .find(|r| r["id"] == retraction.as_str())
        .expect("retraction");
    assert_eq!(retract["action"], "retract");
    assert_eq!(retract["target"], retracted.as_str());
}

#[test]
fn correct_refuses_what_it_cannot_find() {
    let device = planned_device();
    let visit = add_visit(&device, "h-101", "contacted", T1, &[]);
    let delivery = saved_id(
        &device.run_line("deliver --household h-101 --item water --status requested --json"),
    );
    let correct = |building: &str, record: &str, extra: &[&str]| {
        let mut args = vec![
            "correct",
            "--building",
            building,
            "--record",
            record,
            "--reason",
            "typo",
        ];
        args.extend_from_slice(extra);
        device.run(&args)
    };
    correct("b1", ABSENT_ID, &[])
        .fails_alone_with(&format!("no record {ABSENT_ID} in building b1"));
    correct("b1", "not-a-ulid", &[]).fails_alone_with("record \"not-a-ulid\"");
    correct("b2", &visit, &[]).fails_alone_with(&format!("no record {visit} in building b2"));
    correct("b9", &visit, &[]).fails_alone_with("building \"b9\" is not in the street plan");
    correct("b1", &delivery, &["--outcome", "refused"])
        .fails_alone_with("only visits can be given a replacement outcome");
    correct("b1", &visit, &["--outcome", "asleep"])
        .fails_alone_with("outcome \"asleep\": unknown visit outcome value");
    let rows = list_visits(&device, &[]);
    assert_eq!(ids_of(&rows), [&visit]);
    assert_eq!(rows[0]["corrected"], false);
    let exported = device.run_line("export --format json");
    assert_eq!(exported.ok().lines().count(), 2, "{}", exported.stdout);

    // A delivery can be retracted: the item's state then has no events left.
    correct("b1", &delivery, &[]).ok();
    let view = show_building(&device, "b1");
    assert_eq!(
        household_view(&view, "h-101")["deliveries"],
        serde_json::json!([])
    );
}

#[test]
fn delivery_statuses_follow_the_merge_rules() {
    let device = planned_device();
    // Delivered, then a late "out for delivery": delivered stays.
    assert_eq!(
        deliver(&device, "h-101", "medicine", "delivered"),
        "saved delivery ID: medicine for household h-101 is delivered (attempt 1)"
    );
    assert_eq!(
        deliver(&device, "h-101", "medicine", "out-for-delivery"),
        "saved delivery ID: medicine for household h-101 is out-for-delivery (attempt 1)"
    );
    // Failed, then a retry: attempt 2, and the failure is counted.
    assert_eq!(
        deliver(&device, "h-102", "food-pack", "failed"),
        "saved delivery ID: food-pack for household h-102 is failed (attempt 1)"
    );
    assert_eq!(
        deliver(&device, "h-102", "food-pack", "out-for-delivery"),
        "saved delivery ID: food-pack for household h-102 is out-for-delivery (attempt 2)"
    );
    // The other statuses and items.
    deliver(&device, "h-201", "water", "requested");
    deliver(&device, "h-201", "hygiene-kit", "cancelled");
    for item in ["baby-supplies", "test-kit", "other"] {
        deliver(&device, "h-201", item, "requested");
    }

    let view = show_building(&device, "b1");
    let h101 = household_view(&view, "h-101");
    assert_eq!(
        h101["deliveries"],
        serde_json::json!([{"item": "medicine", "status": "delivered", "failed_attempts": 0}])
    );
    let h102 = household_view(&view, "h-102");
    assert_eq!(delivery_of(h102, "food-pack")["status"], "out-for-delivery");
    assert_eq!(delivery_of(h102, "food-pack")["failed_attempts"], 1);
    let h201 = household_view(&view, "h-201");
    assert_eq!(h201["deliveries"].as_array().map(Vec::len), Some(5));
    assert_eq!(delivery_of(h201, "water")["status"], "requested");
    assert_eq!(delivery_of(h201, "hygiene-kit")["status"], "cancelled");
    assert_eq!(delivery_of(h201, "test-kit")["status"], "requested");
    let text = device.run_line("show building b1");
    let h101_line = text
        .ok()
        .lines()
        .find(|l| l.contains("h-101"))
        .expect("h-101 line");
    assert!(h101_line.contains("medicine: delivered"), "{h101_line}");

    // The retry's delivery seals it; a third event after success is still attempt 2.
    assert_eq!(
        deliver(&device, "h-102", "food-pack", "delivered"),
        "saved delivery ID: food-pack for household h-102 is delivered (attempt 2)"
    );
    let view = show_building(&device, "b1");
    assert_eq!(
        delivery_of(household_view(&view, "h-102"), "food-pack")["status"],
        "delivered"
    );

    let base = |item: &str, status: &str, household: &str| {
        device.run(&delivery_args(household, item, status, &[]))
    };
    base("pizza", "requested", "h-101")
        .fails_alone_with("item \"pizza\": unknown delivery item value \"pizza\"");
    base("water", "lost", "h-101")
        .fails_alone_with("status \"lost\": unknown delivery status value \"lost\"");
    base("water", "requested", "h-999")
        .fails_alone_with("household \"h-999\" is not in the street plan");
    // Nothing more was saved by the refusals: 10 events in all.
    let export = device.run_line("export --format json");
    assert_eq!(export.ok().lines().count(), 10, "{}", export.stdout);
}

#[test]
fn sweep_record_checks_units() {
    let device = planned_device();
    let out = device.run(&[
        "sweep",
        "record",
        "--building",
        "b1",
        "--round",
        "3",
        "--unit",
        "u1",
        "--unit",
        "u2",
        "--reached",
        "15",
        "--not-home",
        "2",
        "--refused",
        "1",
        "--issue",
        "stairwell light out",
    ]);
    // The text receipt names the new id, which is what `correct` needs.
    let text = out.ok();
    let id = text
        .strip_prefix("saved sweep ")
        .and_then(|rest| rest.strip_suffix(": round 3 of building b1\n"))
        .unwrap_or_else(|| panic!("unexpected receipt {text:?}"))
        .to_owned();
    assert_eq!(id.len(), 26, "{text}");

    let sweep_args = |building: &str, unit: &str| {
        device.run(&[
            "sweep",
            "record",
            "--building",
            building,
            "--round",
            "4",
            "--unit",
            unit,
            "--reached",
            "1",
            "--not-home",
            "0",
            "--refused",
            "0",
        ])
    };
    sweep_args("b1", "u9").fails_alone_with("unit \"u9\" is not a unit of building \"b1\"");
    // u2 exists, but in b1 only.
    sweep_args("b2", "u2").fails_alone_with("unit \"u2\" is not a unit of building \"b2\"");
    sweep_args("b9", "u1").fails_alone_with("building \"b9\" is not in the street plan");

    let view = show_building(&device, "b1");
    let sweeps = view["sweeps"].as_array().expect("sweeps");
    assert_eq!(sweeps.len(), 1, "{view}");
    let s = &sweeps[0];
    assert_eq!(s["round"], 3);
    assert_eq!(s["units"], serde_json::json!(["u1", "u2"]));
    assert_eq!(
        (
            s["reached"].clone(),
            s["not_home"].clone(),
            s["refused"].clone()
        ),
        (15.into(), 2.into(), 1.into())
    );
    assert_eq!(s["issues"], serde_json::json!(["stairwell light out"]));
    assert_eq!(s["by"], NODE);
    assert_eq!(
        show_building(&device, "b2")["sweeps"],
        serde_json::json!([])
    );
    let text = device.run_line("show building b1");
    assert!(
        text.ok()
            .contains("sweep round 3 by vol-0042: reached 15, not home 2, refused 1"),
        "{}",
        text.stdout
    );
    assert_eq!(
        show_building(&device, "b1")["sweeps"][0]["round"],
        3,
        "sweep id {id}"
    );

    // Retracting the sweep by the id from the receipt hides it from the building view.
    device
        .run(&[
            "correct",
            "--building",
            "b1",
            "--record",
            &id,
            "--reason",
            "wrong building",
        ])
        .ok();
    assert_eq!(
        show_building(&device, "b1")["sweeps"],
        serde_json::json!([])
    );
}

#[test]
fn show_building_summarizes_households() {
    let device = planned_device();
    // Before any record the building shows its planned households, never visited.
    let empty = show_building(&device, "b2");
    assert_eq!(empty["building"], "b2");
    assert_eq!(empty["document"], "panhuo/g2/b2");
    let h301 = household_view(&empty, "h-301");
    assert_eq!(h301["visits"], 0);
    assert_eq!(h301["latest_outcome"], Value::Null);
    assert_eq!(h301["zone"], "control");
    assert_eq!(h301["unit"], "u1");
    assert!(
        device
            .run_line("show building b2")
            .ok()
            .contains("never visited"),
        "no 'never visited'"
    );

    add_visit(
        &device,
        "h-101",
        "contacted",
        T1,
        &[
            "--flag",
            "elderly-living-alone",
            "--need",
            "medicine:insulin",
            "--need",
            "food",
        ],
    );
    add_visit(&device, "h-101", "not-home", T2, &[]);
    add_visit(&device, "h-201", "contacted", T1, &["--need", "water"]);
    // Medicine delivered after the contacted visit closes that need; food stays open.
    deliver(&device, "h-101", "medicine", "delivered");

    let view = show_building(&device, "b1");
    assert_eq!(view["malformed_records"], 0);
    assert_eq!(view["unplanned_households"], serde_json::json!([]));
    let households: Vec<&str> = view["households"]
        .as_array()
        .expect("households")
        .iter()
        .filter_map(|h| h["household"].as_str())
        .collect();
    assert_eq!(households, ["h-101", "h-102", "h-201"]);
    let h101 = household_view(&view, "h-101");
    assert_eq!(h101["visits"], 2);
    assert_eq!(h101["latest_outcome"], "not-home");
    assert_eq!(h101["latest_visit_at"], "2025-03-01T02:00:00Z");
    assert_eq!(h101["flags"], serde_json::json!(["elderly-living-alone"]));
    assert_eq!(
        h101["open_needs"],
        serde_json::json!([{"need": "food", "detail": ""}])
    );
    assert_eq!(delivery_of(h101, "medicine")["status"], "delivered");
    let h201 = household_view(&view, "h-201");
    assert_eq!(h201["latest_outcome"], "contacted");
    assert_eq!(
        h201["open_needs"],
        serde_json::json!([{"need": "water", "detail": ""}])
    );
    assert_eq!(household_view(&view, "h-102")["visits"], 0);

    let text = device.run_line("show building b1");
    let lines: Vec<&str> = text.ok().lines().collect();
    assert_eq!(
        lines[0],
        "building b1 (panhuo/g1/b1): 3 households, 2 visited"
    );
    let h101_line = lines.iter().find(|l| l.contains("h-101")).expect("h-101");
    assert!(
        h101_line.contains("not-home at 2025-03-01T02:00:00Z"),
        "{h101_line}"
    );
    assert!(
        h101_line.contains("flags: elderly-living-alone"),
        "{h101_line}"
    );
    assert!(h101_line.contains("OPEN NEEDS: food"), "{h101_line}");
    assert!(h101_line.contains("medicine: delivered"), "{h101_line}");
    let h102_line = lines.iter().find(|l| l.contains("h-102")).expect("h-102");
    assert!(h102_line.contains("never visited"), "{h102_line}");

    device
        .run_line("show building b9")
        .fails_alone_with("building \"b9\" is not in the street plan");
}

/// The export columns, in order: the model's, which its own test keeps equal to the
/// serialized fields.
const EXPORT_COLUMNS: [&str; 23] = gridsync_model::export::ExportRow::COLUMNS;

#[test]
fn export_writes_every_record_as_csv_or_json_lines() {
    let device = planned_device();
    // An empty export is still a CSV file with its header.
    let empty = device.run_line("export");
    assert_eq!(empty.ok(), format!("{}\n", EXPORT_COLUMNS.join(",")));
    assert_eq!(device.run_line("export --format json").ok(), "");

    let v1 = add_visit(
        &device,
        "h-101",
        "contacted",
        T1,
        &words(
            "--people 2 --need food --note",
            &["door code 12, ring twice"],
        ),
    );
    let v2 = add_visit(&device, "h-301", "not-home", T2, &[]);
    let d1 = saved_id(
        &device.run_line("deliver --household h-101 --item food-pack --status failed --json"),
    );
    let d2 = saved_id(
        &device.run_line("deliver --household h-101 --item food-pack --status delivered --json"),
    );
    let s1 = saved_id(&device.run_line("sweep record --building b2 --round 1 --unit u1 --reached 1 --not-home 1 --refused 0 --json"));
    let c1 = saved_id(&device.run(&[
        "correct",
        "--building",
        "b2",
        "--record",
        &v2,
        "--reason",
        "was vacant",
        "--outcome",
        "vacant",
        "--json",
    ]));
    let saved: BTreeSet<String> = [&v1, &v2, &d1, &d2, &s1, &c1]
        .into_iter()
        .cloned()
        .collect();

    // CSV to stdout: a header and one row per record.
    let csv_out = device.run_line("export --format csv");
    let mut reader = csv::Reader::from_reader(csv_out.ok().as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("csv header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, EXPORT_COLUMNS);
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("csv rows parse");
    assert_eq!(records.len(), 6);
    let column = |name: &str| {
        EXPORT_COLUMNS
            .iter()
            .position(|c| *c == name)
            .expect("known column")
    };
    let ids: BTreeSet<String> = records.iter().map(|r| r[column("id")].to_owned()).collect();
    assert_eq!(ids, saved);
    let row = |id: &str| {
        records
            .iter()
            .find(|r| &r[column("id")] == id)
            .expect("row by id")
    };
    let visit = row(&v1);
    assert_eq!(&visit[column("kind")], "visit");
    assert_eq!(&visit[column("document")], "panhuo/g1/b1");
    assert_eq!(&visit[column("household")], "h-101");
    assert_eq!(&visit[column("status")], "contacted");
    assert_eq!(&visit[column("people_seen")], "2");
    assert_eq!(&visit[column("at_ms")], "1740792600000");
    assert_eq!(&visit[column("text")], "door code 12, ring twice");
    assert_eq!(&visit[column("by")], NODE);
    assert_eq!(&row(&d2)[column("attempt")], "2");
    assert_eq!(&row(&d2)[column("status")], "delivered");
    assert_eq!(&row(&d1)[column("status")], "failed");
    assert_eq!(&row(&s1)[column("kind")], "sweep");
    assert_eq!(&row(&s1)[column("document")], "panhuo/g2/b2");
    assert_eq!(&row(&s1)[column("not_home")], "1");
    assert_eq!(&row(&c1)[column("target")], v2.as_str());
    assert_eq!(&row(&c1)[column("action")], "replace");
    assert_eq!(&row(&v2)[column("status")], "not-home");

    // JSON lines to stdout: every line an object, the same records.
    let json_out = device.run_line("export --format json");
    let lines: Vec<Value> = json_out
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 6);
    let ids: BTreeSet<String> = lines
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids, saved);
    assert!(
        lines
            .iter()
            .all(|r| r.as_object().map(|o| o.len()) == Some(EXPORT_COLUMNS.len()))
    );

    // --out FILE: nothing on stdout, a count on stderr, the same bytes as stdout gave.
    for (format, stdout) in [("csv", &csv_out.stdout), ("json", &json_out.stdout)] {
        let file = device.path().join(format!("export.{format}"));
        let run = device.run(&["export", "--format", format, "--out", path_arg(&file)]);
        assert_eq!(run.ok(), "");
        assert_eq!(
            run.stderr,
            format!("exported 6 records to {}\n", file.display())
        );
        assert_eq!(
            &std::fs::read_to_string(&file).expect("read export"),
            stdout
        );
    }
    let unwritable = device.path().join("no-such-dir").join("out.csv");
    device
        .run(&["export", "--out", path_arg(&unwritable)])
        .fails_alone_with("cannot create");
}

#[test]
fn corrupt_store_is_reported_and_left_alone() {
    let device = planned_device();
    let db = device.path().join("gridsync.db");
    let listing = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list data dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    };
    let plan = device.path().join("plan.csv");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    // SQLite's magic followed by noise: looks like a database until it is read.
    let mut fake_sqlite = b"SQLite format 3\0".to_vec();
    fake_sqlite.extend_from_slice(&garbage);
    for (bytes, needle) in [
        (&garbage, "is not a SQLite database"),
        (&fake_sqlite, "gridsync.db"),
    ] {
        std::fs::write(&db, bytes).expect("overwrite the store");
        let files = listing(device.path());
        let commands = [
            words("visit list", &[]),
            words("visit add --household h-101 --outcome contacted", &[]),
            words("plan show", &[]),
            words("plan import", &[path_arg(&plan)]),
            words(
                "deliver --household h-101 --item water --status requested",
                &[],
            ),
            words("show building b1", &[]),
            words("export", &[]),
        ];
        for args in commands {
            let run = device.run(&args);
            run.fails_alone_with(needle);
            assert!(
                run.stderr.contains(&db.display().to_string()),
                "{args:?}: {}",
                run.stderr
            );
        }
        device
            .run_line("init --node-id vol-0043")
            .fails_alone_with("a gridsync store already exists at");
        assert!(
            std::fs::read(&db).expect("read store") == *bytes,
            "a command changed the corrupt store's bytes"
        );
        assert_eq!(listing(device.path()), files, "a command added files");
    }
}

#[test]
fn demo_says_replicas_are_identical() {
    let run = run_plain(&["demo"]);
    let text = run.ok();
    assert!(text.contains("identical"), "{text}");
}

#[test]
fn demo_json_reports_convergence() {
    let run = run_plain(&["demo", "--json"]);
    let report = run.json();
    assert_eq!(report["converged"], true, "{report}");
    assert_eq!(report["kept"], Value::Null, "{report}");
}

/// `demo --dashboard` keeps the street running at the end and serves the office dashboard,
/// with the token to sign in, until it is told to stop; then it stops cleanly.
#[test]
fn demo_can_keep_the_office_dashboard_open() {
    use std::io::BufReader;
    use std::process::{Command, Stdio};

    let mut child = Command::new(crate::support::gridsync_bin())
        .args(["demo", "--json", "--dashboard", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the demo");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(stdout);
        for value in serde_json::Deserializer::from_reader(reader).into_iter::<Value>() {
            if tx.send(value.ok()).is_err() {
                return;
            }
        }
    });
    let announced = rx
        .recv_timeout(std::time::Duration::from_secs(180))
        .ok()
        .flatten()
        .expect("the demo announces its dashboard");
    let url = announced["dashboard"].as_str().expect("dashboard address");
    let token = announced["token"].as_str().expect("token");
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("an address");
    let summary = gridsync_testkit::http::get_json(addr, "/api/v1/summary", token)
        .expect("the dashboard's API answers");
    assert!(
        summary["totals"]["visited"].as_u64().is_some_and(|n| n > 0),
        "the street the demo made: {summary}"
    );
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = child.wait().expect("the demo ends");
    assert!(status.success(), "{status:?}");
    let last = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .ok()
        .flatten()
        .expect("the final report");
    assert_eq!(last["converged"], true, "{last}");
}
