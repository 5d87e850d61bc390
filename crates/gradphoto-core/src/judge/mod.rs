//! Judge: measurements against a profile's thresholds, giving findings. A failed rule is a finding, not an error.

pub mod devices;
pub mod file_rules;
pub mod person_rules;
pub mod profile;
pub mod report;
pub mod rule;

pub use file_rules::JudgeContext;
pub use profile::Profile;
pub use report::{Finding, Report, ReportError, Severity, Verdict};
pub use rule::Rule;
