//! What a benchmark run produces: one [`ScenarioReport`] per scenario, each a list of
//! [`Figure`]s, printed as a table and written as JSON.

use serde::{Deserialize, Serialize};

/// One measured figure, with the reference it is compared against (measured in the same run)
/// and the target it must meet, if the issue sets one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figure {
    /// What was measured, e.g. "visits/s over QUIC, durable".
    pub name: String,
    /// The measured value (a median where the scenario repeats).
    pub value: f64,
    /// Unit of `value`, e.g. "visits/s", "ms", "bytes", "MiB".
    pub unit: String,
    /// The reference measured in the same run, if any.
    pub reference: Option<Reference>,
    /// The target, if any.
    pub target: Option<Target>,
}

/// A reference figure measured in the same run, so a ratio survives a noisy machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reference {
    /// What the reference is, e.g. "automerge::sync in memory".
    pub name: String,
    /// Its value, in the figure's unit.
    pub value: f64,
}

/// A bound the figure must stay within.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Target {
    /// How the bound applies.
    pub kind: TargetKind,
    /// The bound.
    pub bound: f64,
}

/// Which quantity a [`Target`] bounds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// `value <= bound`.
    AtMost,
    /// `value >= bound`.
    AtLeast,
    /// `value / reference <= bound`.
    RatioAtMost,
    /// `value / reference >= bound`.
    RatioAtLeast,
}

impl Figure {
    /// A figure without reference or target.
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            reference: None,
            target: None,
        }
    }

    /// Adds the reference measured in the same run.
    pub fn with_reference(mut self, name: impl Into<String>, value: f64) -> Figure {
        self.reference = Some(Reference {
            name: name.into(),
            value,
        });
        self
    }

    /// Adds a target.
    pub fn with_target(mut self, kind: TargetKind, bound: f64) -> Figure {
        self.target = Some(Target { kind, bound });
        self
    }

    /// `value / reference`, when there is a non-zero reference.
    pub fn ratio(&self) -> Option<f64> {
        let reference = self.reference.as_ref()?;
        (reference.value != 0.0).then(|| self.value / reference.value)
    }

    /// Whether the target is met; `None` without a target (or a ratio target without a
    /// reference).
    pub fn meets_target(&self) -> Option<bool> {
        let target = self.target.as_ref()?;
        Some(match target.kind {
            TargetKind::AtMost => self.value <= target.bound,
            TargetKind::AtLeast => self.value >= target.bound,
            TargetKind::RatioAtMost => self.ratio()? <= target.bound,
            TargetKind::RatioAtLeast => self.ratio()? >= target.bound,
        })
    }
}

/// Everything one scenario measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioReport {
    /// The scenario number (1-7).
    pub number: u32,
    /// Short title, e.g. "Street initial sync".
    pub title: String,
    /// What was set up, e.g. "1,000 documents, 108,000 visits, QUIC on loopback".
    pub setup: String,
    pub figures: Vec<Figure>,
    /// Anything a reader needs to interpret the figures (what limits them, caveats).
    pub notes: Vec<String>,
}

/// A whole run: the machine, the scale and every scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchReport {
    /// `smoke` or `full`.
    pub scale: String,
    /// Logical CPUs, kernel and load average at the start, so figures can be read in context.
    pub machine: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    pub scenarios: Vec<ScenarioReport>,
}
