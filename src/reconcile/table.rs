//! The engine's table: one slot per instance of the manifest in force (what it should
//! show, what was decided, what this run did to it), what is found once per manifest, and
//! how many slots are in each status, kept as slots change.

use super::live::Look;
use super::target::Target;
use crate::manifest::Instance;
use crate::manifest::{IdMap, InstanceId, Manifest};
use crate::picture::Digest;
use crate::picture::pass::Uses;
use crate::plan::{Decision, Desired, Policy};
use crate::report::{self, Report, ReportKind, Row, Standing, Status, ThisRun};
use crate::state::{InstanceRecord, State};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

/// One instance of the current manifest: what it should show and what was decided.
pub(super) struct Slot {
    pub target: Target,
    pub decision: Decision,
    /// What this run did to it.
    pub this_run: ThisRun,
    /// When its live state is next read (a drift look, or a poll of a blocked instance).
    pub look_at: Option<SystemTime>,
    /// What this run's look at its live picture found (`--drift`).
    pub seen: Option<Look>,
}

impl Slot {
    /// The status a report shows for it.
    pub fn status(&self) -> report::Status {
        report::status(&self.decision, self.this_run)
    }
}

/// What is found once per manifest, and kept across the passes over it (a daemon's pass
/// after a picture's event plans the same manifest again).
pub(super) struct Index {
    /// The manifest it was found in: the one in force.
    pub manifest: Arc<Manifest>,
    /// Where each instance is in it.
    by_id: IdMap<usize>,
    /// The pictures its instances show.
    pub uses: Uses,
    /// Where in a `driftInterval` each instance's looks fall ([`spread`]), when the live
    /// pictures are looked at (empty otherwise).
    spread: Vec<f64>,
}

impl Index {
    pub fn of(manifest: &Arc<Manifest>, live_reads: bool) -> Self {
        let spreads = match live_reads {
            true => (manifest.instances.iter()).map(|i| spread(&i.id)).collect(),
            false => Vec::new(),
        };
        Self {
            manifest: Arc::clone(manifest),
            by_id: (manifest.instances.iter().enumerate())
                .map(|(index, instance)| (instance.id.clone(), index))
                .collect(),
            uses: Uses::of(manifest),
            spread: spreads,
        }
    }

    /// Where instance `index`'s looks fall in a `driftInterval`.
    pub fn spread_of(&self, index: usize) -> f64 {
        (self.spread.get(index).copied())
            .unwrap_or_else(|| spread(&self.manifest.instances[index].id))
    }
}

/// The slots of the manifest in force, with their counts.
pub(super) struct Table {
    pub index: Index,
    pub slots: Vec<Slot>,
    /// How many slots are in each status, kept as they change ([`Table::summary`]: the
    /// daemon asks after every pass, and a walk over a fleet's slots is a cache miss each).
    counts: report::Summary,
    /// The instances to upload again though their record says applied (`--replace`, the
    /// daemon's `replace` file), until an upload of each lands applied.
    replace: HashSet<InstanceId>,
}

impl Table {
    pub fn new(index: Index) -> Self {
        Self {
            index,
            slots: Vec::new(),
            counts: report::Summary::default(),
            replace: HashSet::new(),
        }
    }

    /// Whether instance `id` is to be uploaded again whatever its record says.
    pub fn replacing(&self, id: &InstanceId) -> bool {
        !self.replace.is_empty() && self.replace.contains(id)
    }

    /// Instance `id`'s `record` as the planner and its target see it: a replace's with
    /// nothing applied ([`crate::plan::as_replaced`]), any other as it is.
    pub fn as_planned<'r>(
        &self,
        id: &InstanceId,
        record: Option<&'r InstanceRecord>,
    ) -> Option<Cow<'r, InstanceRecord>> {
        record.map(|record| match self.replacing(id) {
            true => Cow::Owned(crate::plan::as_replaced(record)),
            false => Cow::Borrowed(record),
        })
    }

    /// Marks instance `id` to be uploaded again; whether it was not already.
    pub fn replace(&mut self, id: InstanceId) -> bool {
        self.replace.insert(id)
    }

    /// Instance `id` was uploaded: its replace, if any, is done; whether it had one.
    pub fn replaced(&mut self, id: &InstanceId) -> bool {
        self.replace.remove(id)
    }

    /// Forgets the replaces of instances the manifest in force no longer has.
    pub fn keep_replaces_in_manifest(&mut self) {
        let by_id = &self.index.by_id;
        self.replace.retain(|id| by_id.contains_key(id));
    }

    /// The manifest in force.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.index.manifest
    }

    /// The planner's knobs under the manifest in force.
    pub fn policy(&self) -> Policy {
        Policy {
            min_interval: self.index.manifest.min_interval,
        }
    }

    /// The id of instance `index`.
    pub fn id(&self, index: usize) -> &InstanceId {
        &self.index.manifest.instances[index].id
    }

    /// Where instance `id` is in the manifest in force, if it still is.
    pub fn index_of(&self, id: &InstanceId) -> Option<usize> {
        self.index.by_id.get(id).copied()
    }

    /// Starts again from no slot (a new pass).
    pub fn clear(&mut self, capacity: usize) {
        self.slots = Vec::with_capacity(capacity);
        self.counts = report::Summary::default();
    }

    /// Adds the next slot.
    pub fn push(&mut self, slot: Slot) {
        self.counts = self.counts.plus(slot.status());
        self.slots.push(slot);
    }

    /// Changes slot `index` by `change`, keeping the counts.
    pub fn set(&mut self, index: usize, change: impl FnOnce(&mut Slot)) {
        let slot = &mut self.slots[index];
        let before = slot.status();
        change(slot);
        self.counts.moved(before, slot.status());
    }

    /// Whether any instance's picture is still being written.
    pub fn settling(&self) -> bool {
        self.slots.iter().any(|slot| slot.target.is_settling())
    }

    /// How many instances are in each status, without building the report.
    pub fn summary(&self) -> report::Summary {
        debug_assert_eq!(
            self.counts,
            report::Summary::count(self.slots.iter().map(Slot::status)),
            "the counts kept as slots change are the slots' statuses"
        );
        self.counts
    }

    /// What this run did to each instance that it did something to, by id (kept across a
    /// second look at the same manifest).
    pub fn done(&self) -> std::collections::HashMap<InstanceId, ThisRun> {
        (self.index.manifest.instances.iter().zip(&self.slots))
            .filter(|(_, slot)| slot.this_run != ThisRun::Nothing)
            .map(|(instance, slot)| (instance.id.clone(), slot.this_run))
            .collect()
    }

    /// A report with a row for each instance (`Rows::All`) or only for those the table
    /// lists (`Rows::Listed`); the summary counts them all.
    pub fn report(&self, state: &State, rows: Rows, kind: ReportKind) -> Report {
        let instances = self.index.manifest.instances.iter().zip(&self.slots);
        let rows = instances
            .filter(|(_, slot)| rows == Rows::All || slot.status().listed())
            .map(|(instance, slot)| {
                report::row(
                    instance,
                    &slot.target.desired,
                    &slot.decision,
                    state.instances.get(&instance.id),
                    slot.this_run,
                )
            })
            .collect();
        Report::with_summary(rows, self.summary(), kind)
    }

    /// What `--drift` saw: a row for each instance.
    pub fn observed(&self, state: &State) -> Report {
        let instances = self.index.manifest.instances.iter().zip(&self.slots);
        let rows = instances
            .map(|(instance, slot)| observed_row(instance, slot, state.instances.get(&instance.id)))
            .collect();
        Report::new(rows, ReportKind::Drift)
    }

    /// What is sized by the fleet, to be freed aside.
    pub fn into_parts(self) -> (Index, Vec<Slot>) {
        (self.index, self.slots)
    }
}

/// A `--drift` row: what the look at `instance`'s live picture found.
fn observed_row(instance: &Instance, slot: &Slot, record: Option<&InstanceRecord>) -> Row {
    let mut row = Row::of(instance, Status::InSync);
    row.detail = Standing::of(&slot.target.desired, record);
    // What the daemon polled is not what `--drift` saw.
    row.detail.state_instance = None;
    match (&slot.target.desired, &slot.seen) {
        (Desired::Suspended, _) => row.status = Status::Suspended,
        (Desired::Unusable(problem), _) => {
            row.status = Status::Failed;
            row.trouble(problem.kind.label(), problem.message.clone());
        }
        (Desired::Picture { .. }, None) => {
            row.status = Status::Failed;
            row.trouble("deadline", "its live picture was not read");
        }
        (Desired::Picture { .. }, Some(Look::Unknown { kind, why })) => {
            row.status = Status::Failed;
            row.trouble(kind, why.clone());
        }
        (Desired::Picture { .. }, Some(Look::Matches(_))) => {}
        (Desired::Picture { .. }, Some(Look::Differs(why))) => {
            row.status = Status::Drifted;
            row.trouble("drifted", why.clone());
        }
    }
    row
}

/// Which instances a report has rows for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Every instance (`--json`, `--all`, the status page).
    All,
    /// Those a table lists without `--all` ([`report::Status::listed`]).
    Listed,
}

/// Where in a `driftInterval` an instance's looks fall, in `[0, 1)`: fixed by its id, so
/// a fleet's looks are spread evenly and stay so across restarts.
pub(super) fn spread(id: &InstanceId) -> f64 {
    // The first 52 bits of the id's SHA-256: as many as an f64 holds exactly.
    let mut first = [0u8; 8];
    first.copy_from_slice(&Digest::of(id.as_str().as_bytes()).bytes()[..8]);
    (u64::from_be_bytes(first) >> 12) as f64 / (1u64 << 52) as f64
}
