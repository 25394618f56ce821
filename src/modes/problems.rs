//! A manifest that cannot be used, as a one-shot mode prints it: every problem a row on
//! stdout (where, instance, kind, what), like the per-instance problems of `--check`, and
//! one `--json` document listing them as objects. The daemon logs them instead.

use crate::error::MANIFEST_INVALID;
use crate::manifest::{ManifestError, Problem};
use crate::report::{Render, Table, plural};
use serde::Serialize;
use std::time::SystemTime;

/// The `--json` document: `{"error": {"kind": "manifest-invalid", "message", "problems"}}`.
#[derive(Debug, Serialize)]
pub(crate) struct ManifestProblems<'a> {
    error: Body<'a>,
}

#[derive(Debug, Serialize)]
struct Body<'a> {
    kind: &'static str,
    /// Every problem, one a line, as the log would say them.
    message: String,
    problems: Vec<ProblemDoc<'a>>,
}

/// One problem, for scripts: its stable kind, the file, the line, the instance.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProblemDoc<'a> {
    kind: &'static str,
    file: String,
    line: Option<u64>,
    id_instance: Option<&'a str>,
    message: &'a str,
}

impl<'a> ManifestProblems<'a> {
    pub(crate) fn new(error: &'a ManifestError) -> Self {
        let problems = error.problems.iter().map(|p| ProblemDoc {
            kind: p.kind.label(),
            file: p.path.display().to_string(),
            line: p.line,
            id_instance: p.instance.as_deref(),
            message: &p.message,
        });
        Self {
            error: Body {
                kind: MANIFEST_INVALID,
                message: error.to_string(),
                problems: problems.collect(),
            },
        }
    }
}

/// `manifest.yaml:12`, or the file alone when the line is unknown.
fn place(problem: &ProblemDoc<'_>) -> String {
    match problem.line {
        Some(line) => format!("{}:{line}", problem.file),
        None => problem.file.clone(),
    }
}

impl Render for ManifestProblems<'_> {
    /// A manifest that cannot be used is an error: exit 1.
    fn exit_code(&self) -> u8 {
        1
    }

    fn table(&self, _now: SystemTime) -> Table {
        let mut table = Table::new(&["WHERE", "INSTANCE", "PROBLEM", "DETAIL"]);
        table.rows = (self.error.problems.iter())
            .map(|p| {
                vec![
                    place(p),
                    p.id_instance.unwrap_or("-").to_owned(),
                    p.kind.to_owned(),
                    p.message.to_owned(),
                ]
            })
            .collect();
        table.summary = format!(
            "manifest NOT valid: {}; no call was made",
            plural(self.error.problems.len(), "problem")
        );
        table
    }
}

/// The one line a one-shot mode logs (stderr) beside the table: where the list went.
pub(crate) fn log_line(error: &ManifestError) -> String {
    let file = error.problems.first().map(|p: &Problem| p.path.display());
    match file {
        Some(file) => format!(
            "{file}: {} (listed on stdout)",
            plural(error.problems.len(), "problem")
        ),
        None => "the manifest cannot be used".to_owned(),
    }
}
