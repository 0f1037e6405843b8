//! The JSON report: one document on stdout, shape documented in docs/report.md.

use super::RunReport;

pub fn render(report: &RunReport) -> String {
    serde_json::to_string_pretty(report).expect("a report always serializes")
}
