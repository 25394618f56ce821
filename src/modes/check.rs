//! `--check`: validate the manifest, every picture and every token source, offline.
//!
//! It runs where secrets are absent (CI, a laptop), so a token whose source is missing
//! here is a warning, not an error; a token that is present but malformed is an error.
//! No network, no state.

use crate::manifest::{Manifest, Problem, ProblemKind, TokenError};
use crate::picture::pass::{Pictures, prepare_in_memory};
use crate::report::{Render, Row, Table, plural, short_sha, thousands};
use serde::Serialize;
use std::time::SystemTime;

/// One instance's verdict: `valid`, `failed` or `suspended`.
pub(crate) type CheckRow = Row<&'static str, Checked>;

/// What `--check` says of an instance beside its verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Checked {
    /// SHA-256 of the picture, when it could be read.
    pub desired_sha256: Option<String>,
    /// Things worth knowing that do not make it invalid.
    pub warnings: Vec<String>,
}

/// Counts per verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct CheckSummary {
    /// Instances that would be sendable.
    pub valid: usize,
    /// Instances with an error.
    pub failed: usize,
    /// `suspend: true` (not checked).
    pub suspended: usize,
    /// Warnings, manifest-wide and per instance.
    pub warnings: usize,
}

/// The result of `--check`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct CheckReport {
    /// Manifest-wide warnings (each naming file and line).
    pub warnings: Vec<String>,
    /// One row per instance, in manifest order.
    pub instances: Vec<CheckRow>,
    /// Counts.
    pub summary: CheckSummary,
    /// `--strict`: a warning fails the check (exit 1).
    #[serde(skip)]
    pub strict: bool,
    /// With `--verify-signers`: the verified commit the manifest was read from, and its
    /// signer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<crate::manifest::Revision>,
    /// `rollout:`, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<super::policy::RolloutCheck>,
    /// `windows:`: open now or not, and when next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<super::policy::WindowsCheck>,
}

/// Checks every instance of a parsed manifest; `strict` (`--strict`) makes every warning
/// an error for the exit code.
pub(crate) fn check(manifest: &Manifest, strict: bool) -> CheckReport {
    // Every picture is prepared, as a run would, to find what cannot be sent; nothing is kept.
    let (sources, mut prepared) = prepare_in_memory(manifest, false);
    let mut pictures = Pictures::new(&sources, &mut prepared);
    let mut summary = CheckSummary::default();
    let instances: Vec<CheckRow> = manifest
        .instances
        .iter()
        .map(|instance| {
            let mut row = CheckRow::of(instance, "valid");
            if instance.suspend {
                row.status = "suspended";
                summary.suspended += 1;
                return row;
            }
            let fail = |row: &mut CheckRow, kind: &str, error: String| {
                if row.error.is_none() {
                    row.status = "failed";
                    row.trouble(kind, error);
                }
            };
            match &instance.picture.path {
                Ok(path) => match pictures.upload_digest(path, &instance.processing) {
                    Ok(digest) => row.detail.desired_sha256 = Some(digest.to_string()),
                    Err(problem) => fail(&mut row, problem.kind.label(), problem.message),
                },
                Err(why) => fail(&mut row, "picture-path", format!("picture: {why}")),
            }
            let warn = |row: &mut CheckRow, kind: ProblemKind, message: String| {
                let warning = Problem {
                    kind,
                    path: manifest.path.clone(),
                    line: Some(instance.line),
                    instance: Some(instance.id.to_string()),
                    message,
                };
                row.detail.warnings.push(labelled(&warning));
            };
            match instance.token.resolve() {
                Ok(_) => {
                    if let Some((path, mode)) = instance.token.open_file() {
                        let message = format!(
                            "apiTokenFile {} is readable by its group or others (mode {mode:04o}); \
                             chmod 600 it",
                            path.display()
                        );
                        warn(&mut row, ProblemKind::TokenFileOpen, message);
                    }
                }
                Err(e @ TokenError::Unavailable(_)) => {
                    let message = format!("{e} (fine where secrets are absent, like CI)");
                    warn(&mut row, ProblemKind::TokenUnavailable, message);
                }
                Err(e @ TokenError::Invalid(_)) => fail(&mut row, e.label(), e.to_string()),
            }
            if row.status == "failed" {
                summary.failed += 1;
            } else {
                summary.valid += 1;
            }
            summary.warnings += row.detail.warnings.len();
            row
        })
        .collect();
    let warnings: Vec<String> = manifest.warnings.iter().map(labelled).collect();
    summary.warnings += warnings.len();
    CheckReport {
        warnings,
        instances,
        summary,
        strict,
        revision: None,
        rollout: super::policy::rollout(manifest),
        windows: super::policy::windows(manifest, SystemTime::now()),
    }
}

/// A warning as the table and `--json` show it: where, what, then its stable label.
fn labelled(warning: &Problem) -> String {
    format!("{warning} [{}]", warning.kind.label())
}

impl Render for CheckReport {
    /// 0 when valid, 1 when any instance has an error (under `--strict`, or a warning).
    fn exit_code(&self) -> u8 {
        u8::from(self.summary.failed > 0 || (self.strict && self.summary.warnings > 0))
    }

    /// A table for people, then warnings, then a verdict line.
    fn table(&self, _now: SystemTime) -> Table {
        let mut table = Table::new(&["INSTANCE", "STATUS", "PICTURE", "DETAIL"]).min_width(1, 9);
        table.rows = (self.instances.iter())
            .map(|row| {
                let detail = match (&row.error_kind, &row.error, &row.detail.desired_sha256) {
                    (Some(kind), Some(error), _) => format!("{kind}: {error}"),
                    (_, _, Some(sha)) => format!("sha256 {}", short_sha(sha)),
                    _ => String::new(),
                };
                vec![
                    row.id_instance.clone(),
                    row.status.to_owned(),
                    row.picture.clone(),
                    detail,
                ]
            })
            .collect();
        let instance_warnings = self.instances.iter().flat_map(|r| &r.detail.warnings);
        table.notes = (self.warnings.iter().chain(instance_warnings))
            .map(|warning| format!("warning: {warning}"))
            .collect();
        if let Some(revision) = &self.revision {
            table
                .notes
                .push(format!("\nmanifest at git revision {revision}"));
        }
        if let Some(rollout) = &self.rollout {
            table.notes.push(rollout.line());
        }
        if let Some(windows) = &self.windows {
            table.notes.extend(windows.lines());
        }
        let s = &self.summary;
        let verdict = match (s.failed, self.strict && s.warnings > 0) {
            (0, false) => "valid",
            (0, true) => "NOT valid (--strict: warnings are errors)",
            _ => "NOT valid",
        };
        table.summary = format!(
            "manifest {verdict}: {} valid, {} failed, {} suspended, {}",
            thousands(s.valid),
            thousands(s.failed),
            thousands(s.suspended),
            plural(s.warnings, "warning")
        );
        table
    }
}
