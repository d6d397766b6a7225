//! Parsing the office's household CSV into a [`PlanImport`], all or nothing.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::rc::Rc;

use crate::check::{self, FieldProblem};
use crate::plan::{Household, MAX_DOOR_CHARS, MAX_RESIDENTS, PlanImport};
use crate::vocab::{UnknownValue, Zone};

/// The exact header line a plan CSV must start with.
pub const CSV_HEADER: &str = "household_id,community,grid,building,unit,door,residents,zone";
/// Most data rows in one plan file.
pub const MAX_ROWS: usize = 200_000;
/// Largest plan file, in bytes.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

const COLUMNS: [&str; 8] = [
    "household_id",
    "community",
    "grid",
    "building",
    "unit",
    "door",
    "residents",
    "zone",
];

/// Why a plan file was refused; nothing of it was imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanImportError {
    #[error("plan file is empty (expected the header {CSV_HEADER:?})")]
    Empty,
    #[error("line 1: header must be exactly {CSV_HEADER:?}, found {found:?}")]
    BadHeader { found: String },
    #[error("plan file has more than {MAX_ROWS} rows")]
    TooManyRows,
    #[error("plan file is larger than {MAX_INPUT_BYTES} bytes")]
    TooLarge,
    #[error("line {line}: {problem}")]
    BadRow { line: u64, problem: Box<RowProblem> },
    #[error("line {line}: unreadable csv: {message}")]
    Unreadable { line: u64, message: String },
}

/// What is wrong with one row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowProblem {
    #[error("expected 8 fields, found {0}")]
    FieldCount(usize),
    #[error("column {column}: {problem}")]
    Field {
        column: &'static str,
        problem: FieldProblem,
    },
    #[error("column residents: {0:?} is not a whole number from 0 to {MAX_RESIDENTS}")]
    Residents(String),
    #[error("column zone: {0}")]
    Zone(UnknownValue),
    #[error("household {household:?} already appears on line {first_line}")]
    DuplicateHousehold { household: String, first_line: u64 },
    #[error(
        "building {building:?} is in grid {grid:?} / community {community:?} here but in grid {first_grid:?} / community {first_community:?} on line {first_line}"
    )]
    BuildingMoved {
        building: String,
        grid: String,
        community: String,
        first_grid: String,
        first_community: String,
        first_line: u64,
    },
    #[error(
        "grid {grid:?} is in community {community:?} here but in {first_community:?} on line {first_line}"
    )]
    GridMoved {
        grid: String,
        community: String,
        first_community: String,
        first_line: u64,
    },
}

/// Where the line breaks are, so a record's byte offset maps to its 1-based line. (The csv
/// crate's own line count skips blank lines.) Only breaks not yet passed are kept, which is at
/// most one read-ahead buffer's worth.
#[derive(Default)]
struct LineBreaks {
    pending: VecDeque<u64>,
    passed: u64,
    offset: u64,
    exceeded: bool,
}

impl LineBreaks {
    fn line_of(&mut self, byte: u64) -> u64 {
        while self.pending.front().is_some_and(|b| *b < byte) {
            self.pending.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

/// A reader that notes line breaks and stops with an error after `left` bytes.
struct Bounded<R> {
    inner: R,
    left: u64,
    breaks: Rc<RefCell<LineBreaks>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.breaks.borrow_mut().exceeded = true;
            return Err(io::Error::other("plan file too large"));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        let mut breaks = self.breaks.borrow_mut();
        let start = breaks.offset;
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, b)| **b == b'\n') {
            breaks.pending.push_back(start + i as u64);
        }
        breaks.offset += n as u64;
        Ok(n)
    }
}

fn field(record: &csv::StringRecord, index: usize) -> &str {
    // The caller checked that the record has exactly COLUMNS.len() fields.
    record.get(index).unwrap_or_default()
}

fn parse_row(record: &csv::StringRecord) -> Result<Household, Box<RowProblem>> {
    if record.len() != COLUMNS.len() {
        return Err(Box::new(RowProblem::FieldCount(record.len())));
    }
    for (index, column) in COLUMNS.iter().enumerate().take(5) {
        check::segment_id(column, field(record, index))
            .map_err(|problem| Box::new(RowProblem::Field { column, problem }))?;
    }
    let door = field(record, 5);
    check::short_text("door", door, MAX_DOOR_CHARS, true).map_err(|problem| {
        Box::new(RowProblem::Field {
            column: "door",
            problem,
        })
    })?;
    let residents_text = field(record, 6);
    let residents = residents_text
        .parse::<u32>()
        .ok()
        .filter(|n| *n <= MAX_RESIDENTS)
        .ok_or_else(|| {
            Box::new(RowProblem::Residents(
                residents_text.chars().take(20).collect(),
            ))
        })?;
    let zone = field(record, 7)
        .parse::<Zone>()
        .map_err(|e| Box::new(RowProblem::Zone(e)))?;
    Ok(Household {
        id: field(record, 0).to_owned(),
        community: field(record, 1).to_owned(),
        grid: field(record, 2).to_owned(),
        building: field(record, 3).to_owned(),
        unit: field(record, 4).to_owned(),
        door: door.to_owned(),
        residents,
        zone,
    })
}

/// Parses a whole plan CSV (header [`CSV_HEADER`], then one household per line).
///
/// Every row is checked before anything is returned, so a bad row means nothing is imported;
/// the error names the row's 1-based line number and what is wrong with it.
pub fn parse_csv<R: Read>(reader: R) -> Result<PlanImport, PlanImportError> {
    let breaks = Rc::new(RefCell::new(LineBreaks::default()));
    let bounded = Bounded {
        inner: reader,
        left: MAX_INPUT_BYTES,
        breaks: breaks.clone(),
    };
    let mut csv_reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bounded);
    let mut record = csv::StringRecord::new();
    let unreadable = |e: csv::Error, line: u64| {
        let mut breaks = breaks.borrow_mut();
        if breaks.exceeded {
            PlanImportError::TooLarge
        } else {
            let line = e.position().map_or(line, |p| breaks.line_of(p.byte()));
            PlanImportError::Unreadable {
                line,
                message: e.to_string(),
            }
        }
    };

    match csv_reader.read_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Err(PlanImportError::Empty),
        Err(e) => return Err(unreadable(e, 1)),
    }
    let header: Vec<&str> = record.iter().collect();
    let header = header.join(",");
    if header.trim_start_matches('\u{feff}') != CSV_HEADER {
        return Err(PlanImportError::BadHeader {
            found: header.chars().take(200).collect(),
        });
    }

    let mut households = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut buildings: HashMap<String, (String, String, u64)> = HashMap::new();
    let mut grids: HashMap<String, (String, u64)> = HashMap::new();
    let mut last_line = 1;
    loop {
        match csv_reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(unreadable(e, last_line + 1)),
        }
        // A record's own start position would count blank lines before it as part of it, so
        // find the line of its last byte and step back over line breaks inside its fields.
        let end = csv_reader.position().byte();
        let embedded: usize = record.iter().map(|f| f.matches('\n').count()).sum();
        let line = breaks
            .borrow_mut()
            .line_of(end.saturating_sub(1))
            .saturating_sub(embedded as u64)
            .max(last_line + 1);
        last_line = line;
        if households.len() == MAX_ROWS {
            return Err(PlanImportError::TooManyRows);
        }
        let bad = |problem| PlanImportError::BadRow {
            line,
            problem: Box::new(problem),
        };
        let h = parse_row(&record).map_err(|problem| PlanImportError::BadRow { line, problem })?;
        if let Some(first_line) = seen.insert(h.id.clone(), line) {
            return Err(bad(RowProblem::DuplicateHousehold {
                household: h.id,
                first_line,
            }));
        }
        let (first_grid, first_community, first_line) = buildings
            .entry(h.building.clone())
            .or_insert_with(|| (h.grid.clone(), h.community.clone(), line));
        if *first_grid != h.grid || *first_community != h.community {
            return Err(bad(RowProblem::BuildingMoved {
                building: h.building,
                grid: h.grid,
                community: h.community,
                first_grid: first_grid.clone(),
                first_community: first_community.clone(),
                first_line: *first_line,
            }));
        }
        let (first_community, first_line) = grids
            .entry(h.grid.clone())
            .or_insert_with(|| (h.community.clone(), line));
        if *first_community != h.community {
            return Err(bad(RowProblem::GridMoved {
                grid: h.grid,
                community: h.community,
                first_community: first_community.clone(),
                first_line: *first_line,
            }));
        }
        households.push(h);
    }
    Ok(PlanImport { households })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PlanImport, PlanImportError> {
        parse_csv(text.as_bytes())
    }

    #[test]
    fn good_file_parses() {
        let text = format!(
            "{CSV_HEADER}\nh-1,c-1,grid-017,bldg-12,u1,101,3,lockdown\nh-2,c-1,grid-017,bldg-12,u2,\"2-201, rear\",1,control\r\n"
        );
        let plan = parse(&text).expect("valid plan");
        assert_eq!(plan.households.len(), 2);
        assert_eq!(plan.households[1].door, "2-201, rear");
        assert_eq!(plan.households[1].zone, Zone::Control);
    }

    #[test]
    fn errors_name_their_line() {
        let ok = "h-1,c-1,g-1,b-1,u1,101,3,lockdown\n";
        let cases: Vec<(String, u64, &str)> = vec![
            (
                format!("{CSV_HEADER}\n{ok}h-2,c-1,g-1,b-1,u1,102,3,quarantine\n"),
                3,
                "zone",
            ),
            (
                format!("{CSV_HEADER}\n{ok}h-2,c-1,g-1,b-1,u1,102,-1,control\n"),
                3,
                "residents",
            ),
            (
                format!("{CSV_HEADER}\n{ok}{ok}"),
                3,
                "already appears on line 2",
            ),
            (
                format!("{CSV_HEADER}\n{ok}h-2,c-1,g-2,b-1,u1,102,1,control\n"),
                3,
                "building",
            ),
            (
                format!("{CSV_HEADER}\n{ok}h-2,c-2,g-1,b-2,u1,102,1,control\n"),
                3,
                "grid",
            ),
            (
                format!("{CSV_HEADER}\n{ok}\nh-2,c-1,g-1,b-1,u1\n"),
                4,
                "expected 8 fields",
            ),
            (
                format!("{CSV_HEADER}\nH 1,c-1,g-1,b-1,u1,101,3,lockdown\n"),
                2,
                "household_id",
            ),
            (
                format!("{CSV_HEADER}\n{ok}\n\nh-2,c-1,g-1,b-1,u1,\"a\nb\",3,lockdown\n"),
                5,
                "door",
            ),
            (
                format!("{CSV_HEADER}\n{ok}\"x\ny\",c,g-1,b-1,u1,1,1,control"),
                3,
                "household_id",
            ),
            (
                format!("{CSV_HEADER}\nh-1,c-1,g-1,,u1,101,3,lockdown\n"),
                2,
                "building",
            ),
        ];
        for (text, line, needle) in cases {
            match parse(&text) {
                Err(err @ PlanImportError::BadRow { line: got, .. }) => {
                    assert_eq!(got, line, "{err}");
                    assert!(err.to_string().contains(needle), "{err} lacks {needle}");
                }
                other => panic!("expected a bad row at line {line}, got {other:?}"),
            }
        }
    }

    #[test]
    fn header_and_size_are_checked() {
        assert_eq!(parse(""), Err(PlanImportError::Empty));
        assert!(matches!(
            parse("household,community\n"),
            Err(PlanImportError::BadHeader { .. })
        ));
        let with_bom = format!("\u{feff}{CSV_HEADER}\n");
        assert_eq!(parse(&with_bom).map(|p| p.households.len()), Ok(0));
        let huge = std::io::repeat(b'a').take(MAX_INPUT_BYTES + 10);
        let text = format!("{CSV_HEADER}\nh-1,");
        let err = parse_csv(text.as_bytes().chain(huge)).expect_err("too large");
        assert_eq!(err, PlanImportError::TooLarge);
    }
}
