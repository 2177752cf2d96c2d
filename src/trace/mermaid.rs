//! The mermaid rendering of a trace (being written).

use super::Report;

pub fn render(report: &Report) -> String {
    let _ = report;
    String::new()
}
