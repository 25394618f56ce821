//! A manifest that cannot be used, as a one-shot mode prints it: every problem a row on
//! stdout (where, instance, kind, what), like the per-instance problems of `--check`, and
//! one `--json` document listing them as objects. `--check` adds the picture files that
//! cannot be read, so one pass lists them all. The daemon logs them instead.

use crate::error::MANIFEST_INVALID;
use crate::manifest::{ManifestError, PictureRef};
use crate::report::{Render, Table, plural};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
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
    message: Cow<'a, str>,
}

impl<'a> ManifestProblems<'a> {
    /// The problems of `error`; with `files` (`--check`), also each picture file the
    /// valid instances name that cannot be read, once a file, at the first line naming it.
    pub(crate) fn new(error: &'a ManifestError, files: bool) -> Self {
        let file = error.problems.first().map(|p| p.path.display().to_string());
        let file = file.unwrap_or_default();
        let mut problems: Vec<ProblemDoc<'a>> = (error.problems.iter())
            .map(|p| ProblemDoc {
                kind: p.kind.label(),
                file: p.path.display().to_string(),
                line: p.line,
                id_instance: p.instance.as_deref(),
                message: Cow::Borrowed(&p.message),
            })
            .collect();
        if files {
            problems.extend(unreadable_pictures(&error.pictures, &file));
            problems.sort_by_key(|p| p.line.unwrap_or(0));
        }
        // One a line, as the log says them: `manifest.yaml:7: instance 1101000001: …`.
        let message = (problems.iter())
            .map(|p| match p.id_instance {
                Some(id) => format!("{}: instance {id}: {}", place(p), p.message),
                None => format!("{}: {}", place(p), p.message),
            })
            .collect::<Vec<_>>()
            .join("\n");
        Self {
            error: Body {
                kind: MANIFEST_INVALID,
                message,
                problems,
            },
        }
    }
}

/// Each distinct picture of `pictures` that cannot be read, as a problem at the line of
/// the first instance naming it.
fn unreadable_pictures<'a>(pictures: &'a [PictureRef], file: &str) -> Vec<ProblemDoc<'a>> {
    let mut named: BTreeMap<&Path, (&PictureRef, usize)> = BTreeMap::new();
    for picture in pictures {
        named.entry(&picture.path).or_insert((picture, 0)).1 += 1;
    }
    (named.into_values())
        .filter_map(|(first, count)| {
            let error = crate::picture::read(&first.path).err()?;
            let others = match count - 1 {
                0 => String::new(),
                1 => " (1 other instance names it)".to_owned(),
                n => format!(" ({n} other instances name it)"),
            };
            Some(ProblemDoc {
                kind: error.label(),
                file: file.to_owned(),
                line: Some(first.line),
                id_instance: Some(&first.instance),
                message: Cow::Owned(format!("{error}{others}")),
            })
        })
        .collect()
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
                    p.message.to_string(),
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

impl ManifestProblems<'_> {
    /// The one line a one-shot mode logs (stderr) beside the table: where the list went.
    pub(crate) fn log_line(&self) -> String {
        let problems = &self.error.problems;
        match problems.first() {
            Some(first) => format!(
                "{}: {} (listed on stdout)",
                first.file,
                plural(problems.len(), "problem")
            ),
            None => "the manifest cannot be used".to_owned(),
        }
    }
}
