//! The result of a run, per instance, as a table for people or the `--json` document of
//! the contract (section 6), and the exit code it implies.
//!
//! Every mode's result implements [`Render`]: one [`Table`] writer and one JSON writer
//! print them all. This file holds the reconcile family's model (`--reconcile`,
//! `--dry-run`, `--status`, a daemon pass); `--check` and `--preview` have their own rows.

pub(crate) mod html;
mod rollout;
mod table;

pub(crate) use rollout::{RolloutView, WindowView};

pub(crate) use table::{Table, plural, short_sha, thousands};

use crate::clock::{rfc3339, serde_rfc3339_opt};
use crate::manifest::{Instance, Revision};
use crate::outcome::FailureKind;
use crate::plan::{Decision, Desired, WaitCause};
use crate::state::InstanceRecord;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::SystemTime;

/// A mode's result: printed as a table or as JSON, and mapped to an exit code.
pub(crate) trait Render: Serialize {
    /// The table for people; `now` turns times into "in 19s".
    fn table(&self, now: SystemTime) -> Table;
    /// The contract's exit code for this result.
    fn exit_code(&self) -> u8;
    /// The `--json` document.
    fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// An instance's status, as `--json` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    /// Already showed the desired picture.
    InSync,
    /// Set during this run.
    Applied,
    /// The live picture already matched: recorded during this run without a call.
    Adopted,
    /// The live picture differs from the desired one (`--drift`; section 8).
    Drifted,
    /// Would be set now (`--dry-run`, `--status`), or was not reached before `--timeout`.
    Pending,
    /// Would be set, not before `nextAttemptAt`.
    Throttled,
    /// Would be set, but GREEN-API's host could not be reached (connection refused, reset,
    /// DNS or TLS); tried again at `nextAttemptAt`.
    Unreachable,
    /// Did not converge; `error` says why.
    Failed,
    /// `suspend: true`.
    Suspended,
    /// Would be set, but a rollout's wave or a change window holds it back (section 12).
    Held,
}

impl Status {
    /// Every status, in the order reports list them.
    pub const ALL: [Self; 10] = [
        Self::InSync,
        Self::Applied,
        Self::Adopted,
        Self::Drifted,
        Self::Pending,
        Self::Throttled,
        Self::Unreachable,
        Self::Failed,
        Self::Suspended,
        Self::Held,
    ];

    /// Where an instance in this status stands once the run is over, as the status page
    /// and `/metrics` count it: `applied` and `adopted` are `in-sync` from then on.
    pub fn standing(self) -> Self {
        match self {
            Self::Applied | Self::Adopted => Self::InSync,
            other => other,
        }
    }

    /// Whether the table lists an instance in this status without `--all`: the ones that
    /// changed, wait, failed or drifted (at fleet size, a few among thousands in sync).
    pub fn listed(self) -> bool {
        !matches!(self, Self::InSync | Self::Suspended)
    }

    /// The label, as in `--json`.
    pub fn label(self) -> &'static str {
        match self {
            Self::InSync => "in-sync",
            Self::Applied => "applied",
            Self::Adopted => "adopted",
            Self::Drifted => "drifted",
            Self::Pending => "pending",
            Self::Throttled => "throttled",
            Self::Unreachable => "unreachable",
            Self::Failed => "failed",
            Self::Suspended => "suspended",
            Self::Held => "held",
        }
    }
}

/// One instance's line of a report, in every mode: which instance, its picture, where it
/// stands, why not; and what the mode adds (`D`), flattened into the same JSON object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Row<S = Status, D = Standing> {
    /// The `idInstance`.
    pub id_instance: String,
    /// The picture as written in the manifest.
    pub picture: String,
    /// Where it stands.
    pub status: S,
    /// What the mode says of it besides.
    #[serde(flatten)]
    pub detail: D,
    /// Why it failed or waits, in one line.
    pub error: Option<String>,
    /// The stable label of `error`, like `unauthorized` or `picture-not-jpeg`.
    pub error_kind: Option<String>,
}

impl<S, D: Default> Row<S, D> {
    /// The row of `instance`, standing at `status`, with nothing else said yet.
    pub fn of(instance: &Instance, status: S) -> Self {
        Self {
            id_instance: instance.id.to_string(),
            picture: instance.picture.written.clone(),
            status,
            detail: D::default(),
            error: None,
            error_kind: None,
        }
    }
}

impl<S, D> Row<S, D> {
    /// Says why it did not get where it should: `kind` (a stable label) and `error`.
    pub fn trouble(&mut self, kind: &str, error: impl Into<String>) {
        self.error_kind = Some(kind.to_owned());
        self.error = Some(error.into());
    }
}

/// What the engine's reports (`--reconcile`, `--dry-run`, `--status`, `--drift`, the
/// status page) say of an instance beside its status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Standing {
    /// SHA-256 of the desired picture; `null` when it could not be read.
    pub desired_sha256: Option<String>,
    /// SHA-256 of the last picture GREEN-API confirmed.
    pub applied_sha256: Option<String>,
    /// Not before this time (throttle or backoff).
    #[serde(with = "serde_rfc3339_opt")]
    pub next_attempt_at: Option<SystemTime>,
    /// The instance's `stateInstance` as last read, when the daemon polled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_instance: Option<String>,
    /// When the applied picture was confirmed (not in `--json`'s contract; shown by `--status`).
    #[serde(skip)]
    pub applied_at: Option<SystemTime>,
}

/// How many instances are in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Summary {
    /// `in-sync`.
    pub in_sync: usize,
    /// `applied`.
    pub applied: usize,
    /// `adopted`.
    pub adopted: usize,
    /// `drifted`.
    pub drifted: usize,
    /// `pending`.
    pub pending: usize,
    /// `throttled`.
    pub throttled: usize,
    /// `unreachable`.
    pub unreachable: usize,
    /// `failed`.
    pub failed: usize,
    /// `suspended`.
    pub suspended: usize,
    /// `held` (only with a rollout or change windows: without them, `--json` is as before).
    #[serde(skip_serializing_if = "is_zero")]
    pub held: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    /// How many instances it counts.
    pub fn total(&self) -> usize {
        let Self {
            in_sync,
            applied,
            adopted,
            drifted,
            pending,
            throttled,
            unreachable,
            failed,
            suspended,
            held,
        } = *self;
        held + in_sync
            + applied
            + adopted
            + drifted
            + pending
            + throttled
            + unreachable
            + failed
            + suspended
    }

    /// Counts statuses.
    pub fn count(statuses: impl IntoIterator<Item = Status>) -> Self {
        let mut summary = Self::default();
        for status in statuses {
            *summary.of(status) += 1;
        }
        summary
    }

    /// The same counts with one more instance in `status`.
    #[must_use]
    pub fn plus(mut self, status: Status) -> Self {
        *self.of(status) += 1;
        self
    }

    /// One instance went from status `from` to `to`.
    pub fn moved(&mut self, from: Status, to: Status) {
        *self.of(from) -= 1;
        *self.of(to) += 1;
    }

    /// How many instances stand in each status a daemon shows ([`Status::standing`]), in
    /// report order: what the status page and `/metrics` count.
    pub fn standings(&self) -> Vec<(Status, usize)> {
        let mut copy = *self;
        let mut out: Vec<(Status, usize)> = Vec::new();
        for status in Status::ALL {
            let n = *copy.of(status);
            match out.iter_mut().find(|(s, _)| *s == status.standing()) {
                Some((_, count)) => *count += n,
                None => out.push((status.standing(), n)),
            }
        }
        out
    }

    /// The count of `status`.
    fn of(&mut self, status: Status) -> &mut usize {
        match status {
            Status::InSync => &mut self.in_sync,
            Status::Applied => &mut self.applied,
            Status::Adopted => &mut self.adopted,
            Status::Drifted => &mut self.drifted,
            Status::Pending => &mut self.pending,
            Status::Throttled => &mut self.throttled,
            Status::Unreachable => &mut self.unreachable,
            Status::Failed => &mut self.failed,
            Status::Suspended => &mut self.suspended,
            Status::Held => &mut self.held,
        }
    }
}

/// GREEN-API requests a run made, per method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Calls {
    /// `setProfilePicture` calls.
    #[serde(rename = "setProfilePicture")]
    pub set_profile_picture: u64,
    /// `getWaSettings` reads.
    #[serde(rename = "getWaSettings")]
    pub get_wa_settings: u64,
    /// `getStateInstance` reads.
    #[serde(rename = "getStateInstance")]
    pub get_state_instance: u64,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Report {
    /// One row per instance, in manifest order.
    pub instances: Vec<Row>,
    /// Counts per status.
    pub summary: Summary,
    /// The GREEN-API requests this run made, per method (runs that call or read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<Calls>,
    /// The shard this run is, and how many instances the whole manifest has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardLine>,
    /// The git revision the manifest and pictures were read from, and the files not as
    /// it has them (`--status` and the status page, when in a checkout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    /// The rollout of the revision in force, when `rollout:` is written (section 12).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutView>,
    /// The change window holding uploads, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowView>,
    /// Which mode made it (decides the exit code).
    #[serde(skip)]
    pub kind: ReportKind,
    /// The table lists every instance; otherwise only those that are not in sync or
    /// suspended (`--json` always lists every instance: it is for machines).
    #[serde(skip)]
    pub list_all: bool,
}

/// The shard a run is (`--shard K/N`), for the summary: `shard 1/3: 3,341 of 10,000 instances`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShardLine {
    /// The shard.
    pub shard: crate::manifest::Shard,
    /// How many instances the whole manifest has.
    pub of: usize,
}

impl Serialize for ShardLine {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut shard = s.serialize_struct("ShardLine", 3)?;
        shard.serialize_field("index", &self.shard.index())?;
        shard.serialize_field("count", &self.shard.count())?;
        shard.serialize_field("manifestInstances", &self.of)?;
        shard.end()
    }
}

/// Which mode made the report: decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReportKind {
    /// `--reconcile` (and a daemon pass).
    Reconcile,
    /// `--dry-run`.
    DryRun,
    /// `--status`.
    Status,
    /// `--drift`.
    Drift,
}

impl Report {
    /// Builds the report and its summary from rows.
    pub(crate) fn new(instances: Vec<Row>, kind: ReportKind) -> Self {
        let summary = Summary::count(instances.iter().map(|row| row.status));
        Self::with_summary(instances, summary, kind)
    }

    /// A report whose `instances` are only some of those `summary` counts (the ones its
    /// table lists): what a fleet-sized run builds when it prints no JSON and no `--all`.
    pub(crate) fn with_summary(instances: Vec<Row>, summary: Summary, kind: ReportKind) -> Self {
        Self {
            instances,
            summary,
            calls: None,
            shard: None,
            revision: None,
            rollout: None,
            window: None,
            kind,
            list_all: kind == ReportKind::Status,
        }
    }

    /// The same report, its table listing every instance when `all` (`--all`).
    pub(crate) fn listing(mut self, all: bool) -> Self {
        self.list_all |= all;
        self
    }
}

impl Render for Report {
    /// 0 in sync; 1 something did not converge (or could not be read); 2 (`--dry-run`)
    /// changes are waiting, (`--drift`) a live picture drifted.
    fn exit_code(&self) -> u8 {
        let s = &self.summary;
        let waiting = s.pending + s.throttled + s.unreachable;
        // Held by a wave or a window is the rollout working as asked; a halt needs someone.
        let halted = self.rollout.as_ref().is_some_and(|r| r.halted.is_some());
        match self.kind {
            ReportKind::Reconcile | ReportKind::Status if halted => 1,
            ReportKind::Drift if s.failed > 0 => 1,
            ReportKind::Drift if s.drifted > 0 => 2,
            ReportKind::Reconcile if s.failed + waiting > 0 => 1,
            ReportKind::DryRun | ReportKind::Status if s.failed > 0 => 1,
            ReportKind::DryRun if waiting > 0 => 2,
            _ => 0,
        }
    }

    fn table(&self, now: SystemTime) -> Table {
        let mut table = Table::new(&["INSTANCE", "STATUS", "PICTURE", "DETAIL"]);
        let listed = |r: &&Row| self.list_all || r.status.listed();
        table.rows = (self.instances.iter().filter(listed))
            .map(|r| {
                vec![
                    r.id_instance.clone(),
                    r.status.label().to_owned(),
                    r.picture.clone(),
                    detail(r, now),
                ]
            })
            .collect();
        if let Some(revision) = &self.revision {
            table
                .notes
                .push(format!("\nmanifest at git revision {revision}"));
        }
        if let Some(rollout) = &self.rollout {
            table.notes.extend(rollout.lines());
        }
        if let Some(window) = &self.window {
            table.notes.push(window.line());
        }
        let s = &self.summary;
        let counted = match &self.shard {
            Some(line) => format!(
                "shard {}: {} of {}",
                line.shard,
                thousands(self.summary.total()),
                plural(line.of, "instance")
            ),
            None => plural(self.summary.total(), "instance"),
        };
        table.summary = format!(
            "{counted}: {} in sync, {} applied, {} pending, {} throttled, {} failed, {} suspended",
            thousands(s.in_sync),
            thousands(s.applied),
            thousands(s.pending),
            thousands(s.throttled),
            thousands(s.failed),
            thousands(s.suspended)
        );
        // Only where they occur: a run without live reads has neither.
        for (count, what) in [
            (s.held, "held"),
            (s.unreachable, "unreachable"),
            (s.adopted, "adopted"),
            (s.drifted, "drifted"),
        ] {
            if count > 0 {
                let _ = write!(table.summary, ", {} {what}", thousands(count));
            }
        }
        table
    }
}

fn detail(row: &Row, now: SystemTime) -> String {
    let sha = |s: &Option<String>| s.as_deref().map(|s| short_sha(s).to_owned());
    let when = |at: SystemTime| match at.duration_since(now) {
        Ok(left) => format!(
            "{} (in {})",
            rfc3339(at),
            crate::clock::human_duration(std::time::Duration::from_secs(left.as_secs().max(1)))
        ),
        Err(_) => rfc3339(at),
    };
    match row.status {
        Status::InSync | Status::Applied => {
            let mut text = format!(
                "sha256 {}",
                sha(&row.detail.applied_sha256).unwrap_or_default()
            );
            if let Some(at) = row.detail.applied_at {
                let _ = write!(text, ", applied {}", rfc3339(at));
            }
            text
        }
        Status::Adopted => format!(
            "sha256 {}: already live, recorded without a call",
            sha(&row.detail.applied_sha256).unwrap_or_default()
        ),
        Status::Pending => match sha(&row.detail.desired_sha256) {
            Some(desired) => format!(
                "would set sha256 {desired} (now {})",
                sha(&row.detail.applied_sha256).unwrap_or_else(|| "unknown".to_owned())
            ),
            None => String::new(),
        },
        Status::Throttled | Status::Unreachable => {
            let mut text = match row.detail.next_attempt_at {
                Some(at) => format!("not before {}", when(at)),
                None => String::new(),
            };
            if let (Some(kind), Some(error)) = (&row.error_kind, &row.error) {
                let _ = write!(text, "; after {kind}: {error}");
            }
            text
        }
        Status::Failed => {
            let mut text = match (&row.error_kind, &row.error) {
                (Some(kind), Some(error)) => format!("{kind}: {error}"),
                (None, Some(error)) => error.clone(),
                _ => String::new(),
            };
            if let Some(at) = row.detail.next_attempt_at {
                let _ = write!(text, " (retry not before {})", rfc3339(at));
            }
            if let Some(state) = &row.detail.state_instance {
                let _ = write!(text, " [stateInstance {state}]");
            }
            text
        }
        Status::Suspended => "suspend: true".to_owned(),
        Status::Drifted | Status::Held => row.error.clone().unwrap_or_default(),
    }
}

/// What this run did to an instance, for its status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ThisRun {
    /// Nothing yet.
    #[default]
    Nothing,
    /// Its picture was set.
    Applied,
    /// Its live picture was found to match, and recorded without a call.
    Adopted,
}

/// The row for an instance from its decision and what this run did to it.
pub(crate) fn row(
    instance: &Instance,
    desired: &Desired,
    decision: &Decision,
    record: Option<&InstanceRecord>,
    this_run: ThisRun,
) -> Row {
    let mut row = Row::of(instance, status(decision, this_run));
    row.detail = Standing::of(desired, record);
    row.detail.next_attempt_at = decision.wake_at();
    let (kind, error) = match decision {
        Decision::Suspended | Decision::InSync | Decision::Due { .. } => return row,
        Decision::Drifted { reason, .. } => ("drifted", reason.clone()),
        Decision::Unusable(problem) => (problem.kind.label(), problem.message.clone()),
        Decision::Refused { reason, .. } => (
            "refused-bytes",
            format!(
                "GREEN-API refused this picture{}; it is not sent again until the picture changes",
                reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        ),
        Decision::Wait {
            cause: WaitCause::Throttle,
            ..
        } => return row,
        Decision::Wait {
            cause: WaitCause::Backoff(failure),
            ..
        }
        | Decision::Blocked { failure, .. } => (failure.kind.label(), failure.reason.clone()),
        Decision::Held { hold, .. } => (hold.label(), hold.describe()),
    };
    row.trouble(kind, error);
    row
}

impl Standing {
    /// What is known of an instance that should show `desired` and whose record is
    /// `record`.
    pub fn of(desired: &Desired, record: Option<&InstanceRecord>) -> Self {
        let applied = record.and_then(|r| r.applied.as_ref());
        Self {
            desired_sha256: match desired {
                Desired::Picture { digest, .. } => Some(digest.to_string()),
                _ => None,
            },
            applied_sha256: applied.map(|a| a.sha256.to_string()),
            next_attempt_at: None,
            state_instance: record.and_then(|r| r.state_instance.clone()),
            applied_at: applied.map(|a| a.at),
        }
    }
}

/// The status a decision reports, given what this run did.
pub(crate) fn status(decision: &Decision, this_run: ThisRun) -> Status {
    match decision {
        Decision::Suspended => Status::Suspended,
        Decision::InSync if this_run == ThisRun::Applied => Status::Applied,
        Decision::InSync if this_run == ThisRun::Adopted => Status::Adopted,
        Decision::InSync => Status::InSync,
        Decision::Drifted { .. } => Status::Drifted,
        Decision::Due { .. } => Status::Pending,
        // A refused or unreachable connection is named, never a throttle.
        Decision::Wait {
            cause: WaitCause::Backoff(failure),
            ..
        } if failure.kind == FailureKind::Connection => Status::Unreachable,
        Decision::Wait { .. } => Status::Throttled,
        Decision::Held { .. } => Status::Held,
        Decision::Unusable(_) | Decision::Refused { .. } | Decision::Blocked { .. } => {
            Status::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of `row`'s JSON object, in order.
    fn keys(row: &impl Serialize) -> Vec<String> {
        let text = serde_json::to_string(row).unwrap();
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        map.keys().cloned().collect()
    }

    #[test]
    fn a_row_is_one_json_object_with_the_modes_detail_in_it() {
        let mut row: Row = Row {
            id_instance: "1101000001".to_owned(),
            picture: "a.jpg".to_owned(),
            status: Status::Failed,
            detail: Standing::default(),
            error: None,
            error_kind: None,
        };
        row.trouble("unauthorized", "401");
        let mut expected = [
            "appliedSha256",
            "desiredSha256",
            "error",
            "errorKind",
            "idInstance",
            "nextAttemptAt",
            "picture",
            "status",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(keys(&row), expected);
        // The polled state only when there is one; when the picture was applied, never.
        row.detail.state_instance = Some("notAuthorized".to_owned());
        row.detail.applied_at = Some(SystemTime::UNIX_EPOCH);
        expected.push("stateInstance".to_owned());
        expected.sort();
        assert_eq!(keys(&row), expected);
        let json: serde_json::Value = serde_json::to_value(&row).unwrap();
        assert_eq!(json["errorKind"], "unauthorized");
        assert_eq!(json["status"], "failed");
    }
}
