//! The report: the contract every other tool reads (CLI output, the web page, exports).

use serde::{Deserialize, Serialize};

use super::rule::Rule;
use crate::decode::ReadError;
use crate::message::Message;

/// How bad a finding is. Ordered: a report's verdict is its worst finding.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Pass,
    /// Normalisation repairs it without touching the portrait (size, density, quality, crop, seal).
    Fixable,
    /// A person must look: the measure is a heuristic or the clause needs judgement.
    Review,
    /// The photo cannot be registered as it is.
    Reject,
}

impl Severity {
    pub fn label(self) -> (&'static str, &'static str) {
        match self {
            Severity::Pass => ("通过", "pass"),
            Severity::Fixable => ("可自动修正", "fixable"),
            Severity::Review => ("需人工复核", "review"),
            Severity::Reject => ("不合格", "reject"),
        }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fixable,
    Review,
    Reject,
    /// The file could not be read; `error` says why.
    Error,
}

impl From<Severity> for Verdict {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Pass => Verdict::Pass,
            Severity::Fixable => Verdict::Fixable,
            Severity::Review => Verdict::Review,
            Severity::Reject => Verdict::Reject,
        }
    }
}

impl Verdict {
    pub fn label(self) -> (&'static str, &'static str) {
        match self {
            Verdict::Error => ("无法读取", "error"),
            Verdict::Pass => Severity::Pass.label(),
            Verdict::Fixable => Severity::Fixable.label(),
            Verdict::Review => Severity::Review.label(),
            Verdict::Reject => Severity::Reject.label(),
        }
    }
}

/// One rule's outcome: what was measured, against what, and what it means for the person.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub measured: serde_json::Value,
    pub limit: serde_json::Value,
    pub message: Message,
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct ReportError {
    pub code: String,
    pub message: Message,
}

impl From<&ReadError> for ReportError {
    fn from(e: &ReadError) -> Self {
        ReportError { code: e.code().to_string(), message: e.message() }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct Report {
    pub file: String,
    pub profile: String,
    pub verdict: Verdict,
    pub error: Option<ReportError>,
    pub findings: Vec<Finding>,
    pub measurements: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// Builds a report whose verdict follows from its findings and error.
    pub fn new(
        file: String,
        profile: String,
        error: Option<ReportError>,
        findings: Vec<Finding>,
        measurements: serde_json::Map<String, serde_json::Value>,
    ) -> Report {
        let mut r = Report { file, profile, verdict: Verdict::Pass, error, findings, measurements };
        r.settle();
        r
    }

    /// Sets the verdict from the error and the findings, after either changed.
    pub fn settle(&mut self) {
        self.verdict = if self.error.is_some() {
            Verdict::Error
        } else {
            self.findings.iter().map(|f| f.severity).max().unwrap_or(Severity::Pass).into()
        };
    }

    pub fn finding(&self, rule: Rule) -> Option<&Finding> {
        self.findings.iter().find(|f| f.rule == rule)
    }
}
