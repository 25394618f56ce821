//! `--plan BASE..HEAD`: which instances' uploads a range of commits changes, and why, as
//! Markdown for a pull-request comment (`--json` for machines). Both revisions are read
//! from git, never from the disk, and both sides' pictures are prepared exactly as they
//! would be uploaded. With `--preview DIR`, each changed instance's before and after
//! pictures and an `index.html` to look at them. No network, no state.

use crate::Error;
use crate::manifest::{Instance, Snapshot, SnapshotError, snapshot};
use crate::picture::Digest;
use crate::picture::pass::{Pictures, prepare_in_memory};
use crate::picture::prepared::Prepared;
use crate::report::html::escape;
use crate::report::short_sha;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Why an instance's upload changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Change {
    /// In HEAD only.
    New,
    /// In BASE only (its picture stays on WhatsApp; avatar-sync no longer manages it).
    Removed,
    /// Another source picture.
    Picture,
    /// The same source picture, processed otherwise (`fit`, `size`, `background`, `quality`).
    Processing,
    /// `suspend: true` in HEAD.
    Suspended,
    /// `suspend: true` in BASE only.
    Resumed,
    /// A side's picture cannot be prepared.
    Error,
}

impl Change {
    fn label(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Removed => "removed",
            Self::Picture => "picture",
            Self::Processing => "processing",
            Self::Suspended => "suspended",
            Self::Resumed => "resumed",
            Self::Error => "error",
        }
    }
}

/// One side of a changed instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Side {
    /// The picture as the manifest writes it.
    pub picture: String,
    /// SHA-256 of the JPEG that would be uploaded; `None` when suspended or in error.
    pub upload_sha256: Option<String>,
}

/// An instance whose upload the range changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Changed {
    pub id_instance: String,
    pub change: Change,
    pub before: Option<Side>,
    pub after: Option<Side>,
    /// Why a side cannot be prepared (`change: error`).
    pub error: Option<String>,
}

/// A revision as asked and the commit it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Revision {
    pub revision: String,
    pub commit: String,
}

/// What `--plan` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlanReport {
    pub base: Revision,
    pub head: Revision,
    /// The changed instances: HEAD's order, then those removed in BASE's order.
    pub changes: Vec<Changed>,
    /// Instances in HEAD.
    pub instances: usize,
    /// Counts per change.
    pub summary: BTreeMap<&'static str, usize>,
}

impl PlanReport {
    /// 0 when nothing changes, 2 when something does, 1 when a side has an error.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.changes.iter().any(|c| c.change == Change::Error) {
            1
        } else {
            u8::from(!self.changes.is_empty()) * 2
        }
    }

    pub(crate) fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// `BASE..HEAD`, or `BASE` alone for `BASE..HEAD`.
fn split(range: &str) -> Result<(&str, &str), Error> {
    let (base, head) = range.split_once("..").unwrap_or((range, "HEAD"));
    let head = if head.is_empty() { "HEAD" } else { head };
    if base.is_empty() || head.starts_with('.') {
        return Err(Error::Usage(format!(
            "--plan {range}: write it BASE..HEAD (or BASE, for BASE..HEAD), like main..HEAD"
        )));
    }
    Ok((base, head))
}

/// Plans `range` for the manifest at `path`; with `preview`, writes the pictures there.
pub(crate) fn plan(
    path: &Path,
    range: &str,
    env: &dyn Fn(&str) -> Option<String>,
    preview: Option<&Path>,
) -> Result<PlanReport, Error> {
    let (base, head) = split(range)?;
    let side = |spec: &str| {
        snapshot(path, spec, None, env, None).map_err(|e| match e {
            SnapshotError::Git(why) | SnapshotError::Unverified(why) => Error::Revision(why),
            SnapshotError::Manifest(problems) => Error::Manifest(problems),
        })
    };
    let (before, after) = (side(base)?, side(head)?);
    let keep = preview.is_some();
    let (before_sources, mut before_prepared) = prepare_in_memory(&before.manifest, keep);
    let (after_sources, mut after_prepared) = prepare_in_memory(&after.manifest, keep);
    let mut before_pictures = Pictures::new(&before_sources, &mut before_prepared);
    let mut after_pictures = Pictures::new(&after_sources, &mut after_prepared);
    let by_id: BTreeMap<&str, &Instance> = (before.manifest.instances.iter())
        .map(|i| (i.id.as_str(), i))
        .collect();
    let mut changes = Vec::new();
    let mut digests: Vec<(Option<Digest>, Option<Digest>)> = Vec::new();
    for instance in &after.manifest.instances {
        let earlier = by_id.get(instance.id.as_str()).copied();
        let old = earlier.map(|i| upload(i, &mut before_pictures));
        let new = upload(instance, &mut after_pictures);
        let change = match (earlier, &old) {
            _ if new.error.is_some() || old.as_ref().is_some_and(|o| o.error.is_some()) => {
                Some(Change::Error)
            }
            (None, _) => (!instance.suspend).then_some(Change::New),
            (Some(was), Some(old)) => match (was.suspend, instance.suspend) {
                (true, true) => None,
                (false, true) => Some(Change::Suspended),
                (true, false) => Some(Change::Resumed),
                (false, false) if old.digest == new.digest => None,
                (false, false) => Some(if source(&before, was) == source(&after, instance) {
                    Change::Processing
                } else {
                    Change::Picture
                }),
            },
            (Some(_), None) => None,
        };
        if let Some(change) = change {
            let error = (old.as_ref().and_then(|o| o.error.clone())).or(new.error.clone());
            digests.push((old.as_ref().and_then(|o| o.digest), new.digest));
            changes.push(Changed {
                id_instance: instance.id.to_string(),
                change,
                before: earlier.zip(old.as_ref()).map(|(i, o)| o.side(i)),
                after: Some(new.side(instance)),
                error,
            });
        }
    }
    let in_head: std::collections::HashSet<&str> = (after.manifest.instances.iter())
        .map(|i| i.id.as_str())
        .collect();
    for instance in &before.manifest.instances {
        if !in_head.contains(instance.id.as_str()) {
            let old = upload(instance, &mut before_pictures);
            digests.push((old.digest, None));
            changes.push(Changed {
                id_instance: instance.id.to_string(),
                change: Change::Removed,
                before: Some(old.side(instance)),
                after: None,
                error: None,
            });
        }
    }
    let mut summary = BTreeMap::new();
    for change in &changes {
        *summary.entry(change.change.label()).or_insert(0) += 1;
    }
    let report = PlanReport {
        base: Revision {
            revision: base.to_owned(),
            commit: before.commit.clone(),
        },
        head: Revision {
            revision: head.to_owned(),
            commit: after.commit.clone(),
        },
        changes,
        instances: after.manifest.instances.len(),
        summary,
    };
    if let Some(out) = preview {
        write_preview(out, &report, &digests, [&before_prepared, &after_prepared])?;
    }
    Ok(report)
}

/// An instance's upload on one side: its digest, or why it cannot be had.
struct Upload {
    digest: Option<Digest>,
    error: Option<String>,
}

impl Upload {
    fn side(&self, instance: &Instance) -> Side {
        Side {
            picture: instance.picture.written.clone(),
            upload_sha256: self.digest.map(|d| d.to_string()),
        }
    }
}

fn upload(instance: &Instance, pictures: &mut Pictures<'_>) -> Upload {
    if instance.suspend {
        return Upload {
            digest: None,
            error: None,
        };
    }
    let result = match &instance.picture.path {
        Ok(path) => pictures.upload_digest(path, &instance.processing),
        Err(why) => {
            return Upload {
                digest: None,
                error: Some(format!("picture: {why}")),
            };
        }
    };
    match result {
        Ok(digest) => Upload {
            digest: Some(digest),
            error: None,
        },
        Err(problem) => Upload {
            digest: None,
            error: Some(format!("{}: {}", problem.kind.label(), problem.message)),
        },
    }
}

/// What names an instance's source picture across revisions: its blob when the revision
/// holds it (a renamed file is the same picture), else its path.
fn source(snapshot: &Snapshot, instance: &Instance) -> Option<String> {
    let path = instance.picture.path.as_ref().ok()?;
    let relative = snapshot.relative(path);
    Some((snapshot.blobs.get(&relative).cloned()).unwrap_or_else(|| relative.display().to_string()))
}

/// `text` safe inside a Markdown table cell and code span.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('`', "'")
}

impl PlanReport {
    /// The Markdown comment: a heading naming both revisions, a table of the changed
    /// instances, then the counts.
    pub(crate) fn markdown(&self) -> String {
        let mut out = format!(
            "### avatar-sync plan: `{}` ({}) → `{}` ({})\n\n",
            cell(&self.base.revision),
            short_sha(&self.base.commit),
            cell(&self.head.revision),
            short_sha(&self.head.commit)
        );
        if self.changes.is_empty() {
            let _ = writeln!(
                out,
                "No upload changes: the {} instances show the same pictures.",
                self.instances
            );
            return out;
        }
        out.push_str("| instance | change | before | after |\n|---|---|---|---|\n");
        let shown = |side: &Option<Side>| match side {
            None => "".to_owned(),
            Some(side) => match &side.upload_sha256 {
                Some(sha) => format!("`{}` · {}", cell(&side.picture), short_sha(sha)),
                None => format!("`{}`", cell(&side.picture)),
            },
        };
        for change in &self.changes {
            let mut label = change.change.label().to_owned();
            if let Some(error) = &change.error {
                let _ = write!(label, ": {}", cell(error));
            }
            let _ = writeln!(
                out,
                "| {} | {label} | {} | {} |",
                change.id_instance,
                shown(&change.before),
                shown(&change.after)
            );
        }
        let counts: Vec<String> = (self.summary.iter())
            .map(|(label, n)| format!("{n} {label}"))
            .collect();
        let _ = writeln!(
            out,
            "\n**{} of {} instances change**: {}.",
            self.changes.len(),
            self.instances,
            counts.join(", ")
        );
        out
    }
}

/// Writes each changed instance's `<id>.before.jpg` and `<id>.after.jpg` into `out`, and an
/// `index.html` that shows them side by side, cut to the circle WhatsApp shows.
fn write_preview(
    out: &Path,
    report: &PlanReport,
    digests: &[(Option<Digest>, Option<Digest>)],
    prepared: [&Prepared; 2],
) -> Result<(), Error> {
    let host = |what: String| move |source| Error::Host { what, source };
    std::fs::create_dir_all(out).map_err(host(format!("cannot create {}", out.display())))?;
    let mut html = String::from(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>avatar-sync plan</title>\
         <style>body{font:15px/1.4 system-ui,sans-serif;margin:1rem}td,th{padding:.4rem .8rem;\
         text-align:left}img{width:128px;height:128px;border-radius:50%;object-fit:cover;\
         background:#ddd}</style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>avatar-sync plan: <code>{}</code> → <code>{}</code></h1><table><tr><th>instance\
         </th><th>change</th><th>before</th><th>after</th></tr>",
        escape(&report.base.revision),
        escape(&report.head.revision)
    );
    for (change, (before, after)) in report.changes.iter().zip(digests) {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td>",
            escape(&change.id_instance),
            change.change.label()
        );
        for (side, digest, prepared) in [
            ("before", before, prepared[0]),
            ("after", after, prepared[1]),
        ] {
            let bytes = digest.and_then(|d| prepared.bytes(d));
            match bytes {
                Some(bytes) => {
                    let name = format!("{}.{side}.jpg", change.id_instance);
                    let file = out.join(&name);
                    std::fs::write(&file, bytes)
                        .map_err(host(format!("cannot write {}", file.display())))?;
                    let _ = write!(html, "<td><img src=\"{name}\" alt=\"{side}\"></td>");
                }
                None => html.push_str("<td>—</td>"),
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></body></html>\n");
    let index = out.join("index.html");
    std::fs::write(&index, html).map_err(host(format!("cannot write {}", index.display())))
}
