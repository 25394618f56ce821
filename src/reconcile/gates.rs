//! What may hold back an upload that is due: the rollout of the revision in force (its
//! waves, their read-back, a halt) and the change windows (CONTRACT section 12).
//!
//! The rollout's record lives in the state directory (`rollout.json`, written whenever it
//! changes); what became of each of its instances is derived from their records as they
//! are planned ([`rollout::member`]), and counted for the released wave only, so a landing
//! costs O(1) however large the fleet. Two timers stand for every held instance: the next
//! wave's start and the window's opening; at each, the instances they hold are planned again.

use super::Reconciler;
use super::schedule::READ_SPACING;
use crate::gateway::Gateway;
use crate::manifest::{Gate, IdMap, InstanceId, Manifest, RolloutPolicy};
use crate::notify::{EventKind, RolloutNews};
use crate::plan::rollout::{self, Current, Member, Wanted};
use crate::plan::{Decision, Desired, Hold};
use crate::report::{RolloutView, WindowView};
use crate::state::rollout::RolloutRecord;
use std::path::PathBuf;
use std::time::SystemTime;

/// A rollout's news for the notifier: its wave `record.wave` of `size` instances and the
/// wave's `failures`.
fn news(
    record: &RolloutRecord,
    size: usize,
    failures: &[(InstanceId, String)],
    next_wave_at: Option<SystemTime>,
) -> RolloutNews {
    RolloutNews {
        revision: record.revision.clone(),
        wave: record.wave + 1,
        waves: record.waves.len(),
        instances: size,
        failed: failures.len(),
        failures: failures.iter().take(20).cloned().collect(),
        next_wave_at,
    }
}

/// How many reads that could not tell (a failed `getWaSettings`) a read-back tries before
/// the upload counts as a failure of its wave.
pub(super) const VERIFY_TRIES: u8 = 5;

/// The rollout in force and the windows' state.
pub(super) struct Gates {
    /// The state directory, where `rollout.json` is written.
    dir: PathBuf,
    /// The rollout of the revision in force, if `rollout:` is written and it changed any.
    rollout: Option<Live>,
    /// While a change window holds uploads: when it opens (`None`: not within a year).
    window: Option<Option<SystemTime>>,
    /// Whether the run waits for a window to open (the daemon) or ends (one-shot runs).
    pub wait_for_windows: bool,
    /// The windows' gate at one time (a pass plans every instance at the same `now`).
    last_gate: Option<(SystemTime, Gate)>,
}

/// A rollout being carried out.
struct Live {
    record: RolloutRecord,
    policy: RolloutPolicy,
    /// Each instance's place in wave order.
    position: IdMap<usize>,
    /// What became of each, by place, as last planned.
    members: Vec<Member>,
    /// Of the released wave: how many are settled, and how many failed.
    settled: usize,
    failed: usize,
    /// Read-backs that could not tell, per instance.
    tries: IdMap<u8>,
    /// The halt was told (once every upload of the halted wave already sent was read
    /// back, so the message names every failure; the notifier keeps it to one message).
    halt_told: bool,
    /// The record changed since it was written.
    dirty: bool,
}

impl Live {
    fn new(record: RolloutRecord, policy: RolloutPolicy) -> Self {
        let position = (record.instances.iter().enumerate())
            .map(|(place, id)| (id.clone(), place))
            .collect();
        let members = vec![Member::Waiting; record.instances.len()];
        Self {
            record,
            policy,
            position,
            members,
            settled: 0,
            failed: 0,
            tries: IdMap::default(),
            halt_told: false,
            dirty: false,
        }
    }

    /// Recounts the released wave's settled and failed instances.
    fn recount(&mut self) {
        let wave = rollout::wave_positions(&self.record, self.record.wave);
        let members = &self.members[wave];
        self.settled = (members.iter())
            .filter(|m| m.settled(self.policy.verify))
            .count();
        self.failed = (members.iter())
            .filter(|m| matches!(m, Member::Failed(_)))
            .count();
    }

    /// Notes what became of the instance at `place`.
    fn observe(&mut self, place: usize, member: Member) {
        let verify = self.policy.verify;
        let old = std::mem::replace(&mut self.members[place], member);
        let new = &self.members[place];
        if !rollout::wave_positions(&self.record, self.record.wave).contains(&place) {
            return;
        }
        let failed = |m: &Member| usize::from(matches!(m, Member::Failed(_)));
        self.settled =
            self.settled + usize::from(new.settled(verify)) - usize::from(old.settled(verify));
        self.failed = self.failed + failed(new) - failed(&old);
    }

    /// The released wave's failures, with why.
    fn failures(&self) -> Vec<(InstanceId, String)> {
        let wave = rollout::wave_positions(&self.record, self.record.wave);
        (wave.clone().zip(&self.members[wave]))
            .filter_map(|(place, member)| match member {
                Member::Failed(why) => Some((self.record.instances[place].clone(), why.clone())),
                _ => None,
            })
            .collect()
    }

    /// How many of all its instances landed, and how many failed.
    fn tally(&self) -> (usize, usize) {
        let mut tally = (0, 0);
        for member in &self.members {
            match member {
                Member::Landed | Member::Verified => tally.0 += 1,
                Member::Failed(_) => tally.1 += 1,
                Member::Waiting => {}
            }
        }
        tally
    }
}

impl Gates {
    /// The gates of state directory `dir`; the rollout it records is read when a pass
    /// finds `rollout:` in the manifest.
    pub fn new(dir: PathBuf, wait_for_windows: bool) -> Self {
        Self {
            dir,
            rollout: None,
            window: None,
            wait_for_windows,
            last_gate: None,
        }
    }

    /// Whether `windows` let uploads happen at `now` (worked out once per `now`).
    pub fn window_gate(&mut self, windows: &crate::manifest::Windows, now: SystemTime) -> Gate {
        if windows.is_empty() {
            return Gate::Open;
        }
        match self.last_gate {
            Some((at, gate)) if at == now => gate,
            _ => {
                let gate = windows.gate(now);
                self.last_gate = Some((now, gate));
                gate
            }
        }
    }

    /// The rollout recorded in the state directory, read when a pass finds a rollout is
    /// wanted.
    fn recorded(&self) -> Option<RolloutRecord> {
        match crate::state::rollout::load(&self.dir) {
            Ok(record) => record,
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        }
    }

    /// Writes the rollout's record if it changed.
    fn save(&mut self) {
        let Some(live) = self.rollout.as_mut().filter(|l| l.dirty) else {
            return;
        };
        match crate::state::rollout::save(&self.dir, Some(&live.record)) {
            Ok(()) => live.dirty = false,
            Err(e) => tracing::error!(
                "cannot write the rollout to {}: {e}; it is kept in memory and written again \
                 at its next change",
                self.dir.display()
            ),
        }
    }

    /// Ends any rollout (no `rollout:` any more): its record is removed.
    fn clear(&mut self) {
        let had = self.rollout.take().is_some();
        if (had || self.dir.join(crate::layout::ROLLOUT_FILE).exists())
            && let Err(e) = crate::state::rollout::save(&self.dir, None)
        {
            tracing::warn!("cannot remove the rollout's record: {e}");
        }
    }

    /// When a step is next needed for them: the next wave's start, the window's opening.
    pub fn wake_at(&self, until: Option<SystemTime>) -> Option<SystemTime> {
        let wave = (self.rollout.as_ref())
            .filter(|l| l.record.halted.is_none())
            .and_then(|l| l.record.next_wave_at);
        let window = self.window.flatten().filter(|_| self.wait_for_windows);
        [wave, window]
            .into_iter()
            .flatten()
            .filter(|&at| until.is_none_or(|until| at <= until))
            .min()
    }

    /// The rollout for reports.
    pub fn view(&self) -> Option<RolloutView> {
        let live = self.rollout.as_ref()?;
        let (landed, failed) = live.tally();
        Some(RolloutView::of(&live.record, landed, failed))
    }

    /// The window for reports, while one holds uploads.
    pub fn window_view(&self) -> Option<WindowView> {
        self.window.map(|opens_at| WindowView { opens_at })
    }

    /// The wave released (from 1) and whether the rollout halted, for `/metrics`; `None`
    /// when no rollout is in progress.
    pub fn metrics(&self) -> Option<(usize, bool)> {
        let live = self
            .rollout
            .as_ref()
            .filter(|l| l.record.done_at.is_none())?;
        Some((live.record.wave + 1, live.record.halted.is_some()))
    }
}

impl<G: Gateway> Reconciler<G> {
    /// At the start of a pass over `manifest` (every slot's target known): the rollout of
    /// its revision, carried on if it is the one recorded, else started over the instances
    /// whose upload it changes.
    pub(super) fn begin_rollout(&mut self, manifest: &Manifest, now: SystemTime) {
        let Some(policy) = manifest
            .rollout
            .clone()
            .filter(|_| !self.options.observe_only)
        else {
            if !self.options.observe_only {
                self.gates.clear();
            }
            return;
        };
        let wanted: Vec<Wanted<'_>> = (self.table.slots.iter().zip(&manifest.instances))
            .filter_map(|(slot, instance)| match &slot.target.desired {
                Desired::Picture { digest, .. } => Some(Wanted {
                    id: &instance.id,
                    digest: *digest,
                    canary: instance.canary,
                }),
                _ => None,
            })
            .collect();
        let revision = rollout::revision_of(&wanted);
        if let Some(live) = self.gates.rollout.as_mut()
            && live.record.revision == revision
        {
            // The same revision planned again: what was learnt of it stands.
            live.policy = policy;
            return;
        }
        let recorded = match self.gates.rollout.take() {
            Some(live) => Some(live.record),
            None => self.gates.recorded(),
        };
        let state = self.store.state();
        let applied = |id: &InstanceId| {
            let record = state.instances.get(id)?;
            record.applied.as_ref().map(|a| a.sha256)
        };
        let record = match rollout::current(revision, &wanted, applied, recorded, &policy, now) {
            Current::Recorded(record) => record,
            Current::Nothing => {
                self.gates.clear();
                return;
            }
            Current::Started(record) => {
                tracing::info!(
                    revision = &record.revision[..12],
                    instances = record.instances.len(),
                    waves = record.waves.len(),
                    "rollout of revision {} starts: {} instance{} in {} wave{} ({})",
                    &record.revision[..12],
                    record.instances.len(),
                    if record.instances.len() == 1 { "" } else { "s" },
                    record.waves.len(),
                    if record.waves.len() == 1 { "" } else { "s" },
                    (record.waves.iter().map(ToString::to_string))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let mut live = Live::new(record, policy);
                live.dirty = true;
                self.gates.rollout = Some(live);
                self.gates.save();
                return;
            }
        };
        // Recorded by the run before: carried on where it was.
        tracing::info!(
            revision = &record.revision[..12],
            wave = record.wave + 1,
            "rollout of revision {} goes on at wave {} of {}{}",
            &record.revision[..12],
            record.wave + 1,
            record.waves.len(),
            if record.halted.is_some() {
                " (halted)"
            } else {
                ""
            }
        );
        self.gates.rollout = Some(Live::new(record, policy));
    }

    /// Instance `index`'s `decision` with the gates applied: a due upload that a wave, a
    /// halt or a window holds back is [`Decision::Held`]. Notes what became of a rollout's
    /// instance on the way.
    pub(super) fn gated(&mut self, index: usize, decision: Decision, now: SystemTime) -> Decision {
        if self.options.observe_only {
            return decision;
        }
        let hold = self.observe_member(index, &decision);
        let Decision::Due { digest } = decision else {
            return decision;
        };
        if let Some(hold) = hold {
            return Decision::Held { digest, hold };
        }
        match self.gates.window_gate(&self.table.manifest().windows, now) {
            Gate::Open => Decision::Due { digest },
            Gate::Closed { opens } => {
                if self.gates.window.is_none() {
                    tracing::info!(
                        "a change window holds uploads until {}",
                        opens.map_or("no opening within a year".to_owned(), crate::clock::rfc3339)
                    );
                }
                self.gates.window = Some(opens);
                Decision::Held {
                    digest,
                    hold: Hold::Window { opens },
                }
            }
        }
    }

    /// Notes what became of instance `index`, if its rollout has it; what holds it back.
    fn observe_member(&mut self, index: usize, decision: &Decision) -> Option<Hold> {
        let live = self.gates.rollout.as_mut()?;
        let id = self.table.id(index);
        let &place = live.position.get(id)?;
        let Desired::Picture { digest, .. } = self.table.slots[index].target.desired else {
            return rollout::hold(&live.record, place);
        };
        let record = self.store.state().instances.get(id);
        let mut member = rollout::member(record, decision, digest);
        if member == Member::Landed && live.tries.get(id).is_some_and(|&t| t >= VERIFY_TRIES) {
            member = Member::Failed(format!(
                "read back: the live picture could not be read {VERIFY_TRIES} times"
            ));
        }
        live.observe(place, member);
        let hold = rollout::hold(&live.record, place);
        self.wave_check();
        hold
    }

    /// After an instance of the released wave changed: halts the rollout when the wave has
    /// more failures than `maxFailures`, or notes that it landed.
    fn wave_check(&mut self) {
        let Some(live) = self.gates.rollout.as_mut() else {
            return;
        };
        let record = &live.record;
        if let Some(halt) = &record.halted {
            // Uploads of the halted wave already sent are still read back: the halt names
            // every failure found.
            if halt.wave == record.wave && live.failed > halt.failed {
                live.record = rollout::halted(record, halt.at, live.failures());
                live.dirty = true;
                self.gates.save();
            }
            self.tell_halt();
            return;
        }
        if record.done_at.is_some() || record.next_wave_at.is_some() {
            return;
        }
        let size = rollout::wave_positions(record, record.wave).len();
        let budget = rollout::failure_budget(record, record.wave, live.policy.max_failures);
        let now = self.clock.now();
        if live.failed > budget {
            self.halt(now, size, budget);
        } else if live.settled == size {
            self.land(now, size);
        }
    }

    /// Halts the rollout at `now`: its released wave (of `size`) has more failures than
    /// `budget`. Logged with the failures, told, and every instance it holds planned again
    /// (to say why).
    fn halt(&mut self, now: SystemTime, size: usize, budget: usize) {
        let Some(live) = self.gates.rollout.as_mut() else {
            return;
        };
        let record = &live.record;
        let failures = live.failures();
        let names: Vec<String> = (failures.iter().take(5))
            .map(|(id, why)| format!("{id} ({why})"))
            .collect();
        let more = if failures.len() > names.len() {
            ", …"
        } else {
            ""
        };
        tracing::error!(
            revision = &record.revision[..12],
            wave = record.wave + 1,
            failed = failures.len(),
            "rollout of revision {} HALTED at wave {} of {}: {} of its {size} instances failed \
             (maxFailures allows {budget}): {}{more}; nothing more is uploaded for this \
             revision until `avatar-sync --reconcile --resume` (or SIGUSR1 to the daemon)",
            &record.revision[..12],
            record.wave + 1,
            record.waves.len(),
            failures.len(),
            names.join(", "),
        );
        live.record = rollout::halted(record, now, failures);
        live.dirty = true;
        let held = live.record.instances.clone();
        self.gates.save();
        self.tell_halt();
        for id in held {
            if let Some(index) = self.table.index_of(&id)
                && !self.flight.is_busy(&id)
            {
                self.plan_one(index, now);
            }
        }
    }

    /// Tells the halt, once: when no upload of the halted wave is in flight or waits to be
    /// read back, so its message names every failure.
    fn tell_halt(&mut self) {
        let Some(live) = self.gates.rollout.as_mut().filter(|l| !l.halt_told) else {
            return;
        };
        let Some(halt) = &live.record.halted else {
            return;
        };
        let places = rollout::wave_positions(&live.record, halt.wave);
        let unsettled = places.clone().any(|place| {
            live.members[place] == Member::Landed && live.policy.verify
                || self.flight.is_busy(&live.record.instances[place])
        });
        if unsettled {
            return;
        }
        live.halt_told = true;
        let at = halt.at;
        let news = news(&live.record, places.len(), &live.failures(), None);
        self.tell_rollout(EventKind::Halted(news), at);
    }

    /// Notes at `now` that the released wave (of `size`) landed: the rollout is done, or
    /// the next wave starts after the pause. Logged and told.
    fn land(&mut self, now: SystemTime, size: usize) {
        let Some(live) = self.gates.rollout.as_mut() else {
            return;
        };
        let wave = live.record.wave;
        live.record = rollout::wave_landed(&live.record, now, live.policy.pause);
        live.dirty = true;
        let record = &live.record;
        let short = &record.revision[..12];
        match record.next_wave_at {
            None => tracing::info!(
                revision = short,
                "rollout of revision {short}: wave {n} of {n} landed; done ({} instances, {} \
                 failed)",
                record.instances.len(),
                live.tally().1,
                n = wave + 1,
            ),
            Some(at) => tracing::info!(
                revision = short,
                wave = wave + 1,
                "rollout of revision {short}: wave {} of {} landed ({} failed); wave {} starts \
                 at {}",
                wave + 1,
                record.waves.len(),
                live.failed,
                wave + 2,
                crate::clock::rfc3339(at)
            ),
        }
        let news = news(record, size, &live.failures(), record.next_wave_at);
        self.gates.save();
        self.tell_rollout(EventKind::Wave(news), now);
    }

    /// Releases the next wave when its pause is over, and plans again what a window held
    /// once it opened.
    pub(super) fn open_gates(&mut self, now: SystemTime) {
        if let Some(opens) = self.gates.window
            && opens.is_some_and(|at| at <= now)
        {
            self.gates.window = None;
            tracing::info!("the change window opened: uploads go on");
            let held: Vec<usize> = (self.table.slots.iter().enumerate())
                .filter(|(_, s)| {
                    matches!(
                        s.decision,
                        Decision::Held {
                            hold: Hold::Window { .. },
                            ..
                        }
                    )
                })
                .map(|(index, _)| index)
                .collect();
            for index in held {
                self.plan_one(index, now);
            }
        }
        let Some(live) = self.gates.rollout.as_mut() else {
            return;
        };
        let Some(next) = rollout::advance(&live.record, now) else {
            return;
        };
        live.record = next;
        live.dirty = true;
        live.recount();
        let wave = live.record.wave;
        let places = rollout::wave_positions(&live.record, wave);
        let ids: Vec<InstanceId> = live.record.instances[places.clone()].to_vec();
        tracing::info!(
            revision = &live.record.revision[..12],
            wave = wave + 1,
            "rollout of revision {}: wave {} of {} starts: {} more instance{}",
            &live.record.revision[..12],
            wave + 1,
            live.record.waves.len(),
            places.len(),
            if places.len() == 1 { "" } else { "s" },
        );
        self.gates.save();
        for id in ids {
            if let Some(index) = self.table.index_of(&id)
                && !self.flight.is_busy(&id)
            {
                self.plan_one(index, now);
            }
        }
        self.wave_check();
    }

    /// Resumes a halted rollout (`--resume`, SIGUSR1): its wave counts as landed and the
    /// next starts now. Whether there was one to resume.
    pub fn resume(&mut self) -> bool {
        let now = self.clock.now();
        let Some(live) = self.gates.rollout.as_mut() else {
            tracing::warn!("resume: no rollout is halted (there is no rollout in progress)");
            return false;
        };
        let Some(next) = rollout::resumed(&live.record, now) else {
            tracing::warn!(
                "resume: the rollout of revision {} is not halted",
                &live.record.revision[..12]
            );
            return false;
        };
        tracing::warn!(
            revision = &next.revision[..12],
            "resume: the rollout of revision {} goes on after wave {}",
            &next.revision[..12],
            next.wave + 1
        );
        live.record = next;
        live.dirty = true;
        self.gates.save();
        self.open_gates(now);
        true
    }

    /// When instance `index` (planned, in sync) is to be read back for its rollout: its
    /// upload landed and `verify` is on. `None` otherwise.
    pub(super) fn read_back_at(&self, index: usize, now: SystemTime) -> Option<SystemTime> {
        let live = self.gates.rollout.as_ref().filter(|l| l.policy.verify)?;
        let id = self.table.id(index);
        let &place = live.position.get(id)?;
        if live.members[place] != Member::Landed {
            return None;
        }
        let after_last = self.last_read(id).map(|last| last + READ_SPACING);
        Some(after_last.map_or(now, |at| at.max(now)))
    }

    /// A read-back of `id` could not tell: counted towards [`VERIFY_TRIES`].
    pub(super) fn read_back_unknown(&mut self, id: &InstanceId) {
        if let Some(live) = self.gates.rollout.as_mut()
            && live.position.contains_key(id)
        {
            *live.tries.entry(id.clone()).or_default() += 1;
        }
    }
}
