//! The human-readable table of a [`BenchReport`].

use std::fmt::Write as _;

use crate::report::{BenchReport, Figure, TargetKind};

/// Renders the report as a plain-text table, one block per scenario.
pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored below for that reason.
    let _ = writeln!(
        out,
        "gridsync benchmarks ({} scale), {}\nmachine: {}\n",
        report.scale, report.started_at, report.machine
    );
    for scenario in &report.scenarios {
        let _ = writeln!(
            out,
            "{}. {}: {}",
            scenario.number, scenario.title, scenario.setup
        );
        for figure in &scenario.figures {
            let _ = writeln!(out, "   {}", figure_line(figure));
        }
        for note in &scenario.notes {
            let _ = writeln!(out, "   note: {note}");
        }
        out.push('\n');
    }
    out
}

fn figure_line(figure: &Figure) -> String {
    let mut line = format!(
        "{:<52} {:>14} {}",
        figure.name,
        format_value(figure.value),
        figure.unit
    );
    if let Some(reference) = &figure.reference {
        let _ = write!(
            line,
            " | {}: {} {}",
            reference.name,
            format_value(reference.value),
            figure.unit
        );
        if let Some(ratio) = figure.ratio() {
            let _ = write!(line, " | ratio {ratio:.2}");
        }
    }
    if let Some(target) = &figure.target {
        let bound = match target.kind {
            TargetKind::AtMost => format!("<= {}", format_value(target.bound)),
            TargetKind::AtLeast => format!(">= {}", format_value(target.bound)),
            TargetKind::RatioAtMost => format!("ratio <= {}", target.bound),
            TargetKind::RatioAtLeast => format!("ratio >= {}", target.bound),
        };
        let verdict = match figure.meets_target() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a",
        };
        let _ = write!(line, " | target {bound}: {verdict}");
    }
    line
}

/// Thousands separators for large values, three significant decimals for small ones.
fn format_value(value: f64) -> String {
    if value.abs() >= 1000.0 {
        let rounded = value.round() as i64;
        let digits = rounded.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if rounded < 0 {
            grouped.insert(0, '-');
        }
        grouped
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_grouped_and_rounded() {
        assert_eq!(format_value(108_000.4), "108,000");
        assert_eq!(format_value(-1_234_567.0), "-1,234,567");
        assert_eq!(format_value(42.25), "42.2");
        assert_eq!(format_value(0.5), "0.500");
    }

    #[test]
    fn missed_targets_are_called_out() {
        let figure =
            Figure::new("per-document time ratio", 2.0, "x").with_target(TargetKind::AtMost, 1.5);
        assert!(figure_line(&figure).contains("MISSED"));
        let figure = Figure::new("visits/s", 50.0, "visits/s")
            .with_reference("in memory", 80.0)
            .with_target(TargetKind::RatioAtLeast, 0.5);
        let line = figure_line(&figure);
        assert!(line.contains("ratio 0.62"), "{line}");
        assert!(line.contains("met"), "{line}");
    }
}
