//! Writing a plan file: the one place besides the parser that knows its columns, for the
//! streets that tests, benchmarks, simulations and `gridsync demo` generate.

use super::csv::CSV_HEADER;

/// One household's row of a plan file, as `gridsync plan import` reads it.
#[derive(Debug, Clone, Copy)]
pub struct PlanRow<'a> {
    pub household: &'a str,
    pub community: &'a str,
    pub grid: &'a str,
    pub building: &'a str,
    pub unit: &'a str,
    pub door: &'a str,
    pub residents: u32,
    /// `lockdown`, `control` or `prevention`.
    pub zone: &'a str,
}

/// A plan file being written: the header, then one line per [`PlanRow`], each field quoted
/// where CSV needs it (a door such as "101, left").
#[derive(Debug)]
pub struct PlanCsv {
    out: String,
}

impl Default for PlanCsv {
    fn default() -> Self {
        PlanCsv::new()
    }
}

impl PlanCsv {
    /// A plan file with its header and no household yet.
    pub fn new() -> PlanCsv {
        PlanCsv {
            out: format!("{CSV_HEADER}\n"),
        }
    }

    /// Appends one household.
    pub fn row(&mut self, row: PlanRow<'_>) -> &mut PlanCsv {
        let residents = row.residents.to_string();
        let fields = [
            row.household,
            row.community,
            row.grid,
            row.building,
            row.unit,
            row.door,
            &residents,
            row.zone,
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            push_field(&mut self.out, field);
        }
        self.out.push('\n');
        self
    }

    /// The file's text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// `field` as a CSV field: as it is, or quoted (quotes doubled) when it holds a comma, a
/// quote or a line break.
fn push_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::plan::parse_csv;

    #[test]
    fn a_written_plan_parses_back_to_its_rows_quotes_included() {
        let mut csv = PlanCsv::new();
        for (household, door) in [("h-101", "101, left"), ("h-102", "the \"blue\" door")] {
            csv.row(PlanRow {
                household,
                community: "c-1",
                grid: "grid-001",
                building: "b1",
                unit: "u1",
                door,
                residents: 3,
                zone: "control",
            });
        }
        let import = parse_csv(csv.finish().as_bytes()).unwrap();
        let doors: Vec<&str> = import.households.iter().map(|h| h.door.as_str()).collect();
        assert_eq!(doors, ["101, left", "the \"blue\" door"]);
        assert_eq!(import.households[1].residents, 3);
    }
}
