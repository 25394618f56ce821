//! Planning: a pass over the whole manifest (its pictures looked at once, every instance
//! planned), and the plan of one instance (its decision, its place in the schedule, its
//! next read of live state).

use super::Reconciler;
use super::schedule::{READ_SPACING, Read, read_time};
use super::table::{Index, Slot};
use super::target::{self, Target, Tokens};
use crate::gateway::Gateway;
use crate::manifest::{DriftMode, InstanceId, Manifest};
use crate::outcome::LocalProblem;
use crate::picture::Digest;
use crate::picture::caches::Caches;
use crate::picture::pass::{self, Pictures};
use crate::plan::{self, Decision, Desired, transition};
use crate::report::ThisRun;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

impl<G: Gateway> Reconciler<G> {
    /// Takes `manifest` as the one in force: re-reads every picture and token and plans
    /// every instance again. Calls in flight finish and are recorded; instances that left
    /// the manifest are not touched again.
    pub fn set_manifest(&mut self, manifest: Arc<Manifest>) {
        if let Some(notices) = &self.notices {
            notices.set_receivers(&manifest.notify);
        }
        self.plan_all(manifest, false);
    }

    /// Looks again at pictures that were still being written, as part of the same run:
    /// what the run already did to each instance (applied, adopted) is kept.
    pub(super) fn recheck(&mut self) {
        self.plan_all(Arc::clone(self.table.manifest()), true);
    }

    fn plan_all(&mut self, manifest: Arc<Manifest>, same_run: bool) {
        let started = std::time::Instant::now();
        let done = if same_run {
            self.table.done()
        } else {
            Default::default()
        };
        // An instance with an upload in flight is not planned until it lands; it stands as
        // it stood. One being read is planned: an upload now due stops the read.
        let standing: HashMap<InstanceId, Decision> = (self.flight.uploading())
            .filter_map(|id| {
                let index = self.table.index_of(id)?;
                Some((id.clone(), self.table.slots.get(index)?.decision.clone()))
            })
            .collect();
        if !Arc::ptr_eq(&self.table.index.manifest, &manifest) {
            self.table.index = Index::of(&manifest, self.options.live_reads);
            self.table.keep_replaces_in_manifest();
        }
        let (digests, read, made) = self.pictures();
        self.schedule.clear();
        let now = self.clock.now();
        // Each instance's desired state and plan in one step: its record is looked at
        // (at fleet size, a cache miss or two) while it is at hand.
        self.table.clear(manifest.instances.len());
        // With a rollout, every target is known before any instance is planned: the
        // revision and its waves are made from them all.
        let rollout = manifest.rollout.is_some();
        for (index, instance) in manifest.instances.iter().enumerate() {
            let uses = &self.table.index.uses;
            let picture = uses.picture_of(index).and_then(|p| digests.get(p));
            let record = self.store.state().instances.get(&instance.id);
            // A replace sends what is in sync: its token is read.
            let record = self.table.as_planned(&instance.id, record);
            self.table.push(Slot {
                target: target::target_for(instance, picture, Tokens::Required, record.as_deref()),
                decision: (standing.get(&instance.id).cloned()).unwrap_or(Decision::Suspended),
                this_run: done.get(&instance.id).copied().unwrap_or_default(),
                look_at: None,
                seen: None,
            });
            if !rollout && !self.flight.is_uploading(&instance.id) {
                self.plan_one(index, now);
            }
        }
        self.begin_rollout(&manifest, now);
        if rollout {
            for (index, instance) in manifest.instances.iter().enumerate() {
                if !self.flight.is_uploading(&instance.id) {
                    self.plan_one(index, now);
                }
            }
        }
        let settling = self.table.settling() && !self.options.settle.is_zero();
        self.recheck_at = settling.then(|| now + self.options.settle);
        self.metrics.pass(now, started.elapsed());
        let n = manifest.instances.len();
        let (due, waiting) = self.schedule.counts();
        tracing::info!(
            instances = n,
            due,
            waiting,
            pictures_read = read,
            pictures_prepared = made,
            took_ms = crate::clock::millis(started.elapsed()),
            "planned {n} instance{}: {due} to set now, {waiting} waiting",
            if n == 1 { "" } else { "s" }
        );
    }

    /// The digest of each distinct picture of the manifest in force (as its
    /// [`pass::Uses`] number them), with how many pictures were read and prepared to
    /// know them. The caches keep what this manifest and the calls in flight use, and are
    /// saved.
    fn pictures(&mut self) -> (Vec<Result<Digest, LocalProblem>>, usize, usize) {
        let index = &self.table.index;
        let (manifest, uses) = (&index.manifest, &index.uses);
        let caches = &mut self.uploads.caches;
        let digests = pass::digests(manifest, uses, caches);
        let Caches {
            hashes, prepared, ..
        } = caches;
        hashes.retain(&uses.files(manifest).collect());
        let live: HashSet<Digest> = (digests.iter().filter_map(|d| d.as_ref().ok().copied()))
            .chain(self.flight.sending())
            .collect();
        prepared.retain(&live);
        let (read, made) = (hashes.take_stats().misses, prepared.take_made());
        // Uploads of what was just prepared need not hash it again.
        self.uploads.checked.trust(prepared.take_written());
        if let Err(e) = caches.save() {
            tracing::warn!(
                kind = e.label(),
                "cannot save the picture caches (costs time, not correctness): {e}"
            );
        }
        (digests, read, made)
    }

    /// Makes instances in a slow backoff (bad token, unusable instance) due at once, as
    /// an operator's reload asks; the throttle still holds.
    pub fn retry_blocked_now(&mut self) {
        let now = self.clock.now();
        for index in 0..self.table.slots.len() {
            if let Decision::Blocked { .. } = self.table.slots[index].decision {
                let id = self.table.id(index);
                if let Some(record) = self.store.state().instances.get(id) {
                    let released = transition::record_released(record, now);
                    self.store.set(id.clone(), released);
                }
                self.plan_one(index, now);
            }
        }
    }

    /// Uploads the instances `ids` again, though their records say their pictures are
    /// applied (`--replace`, the daemon's `replace` file): each once, as soon as its
    /// throttle and backoff allow. An instance the manifest in force does not have, or a
    /// suspended one, is left alone (with a warning).
    pub fn replace(&mut self, ids: impl IntoIterator<Item = InstanceId>) {
        let now = self.clock.now();
        for id in ids {
            let Some(index) = self.table.index_of(&id) else {
                tracing::warn!(instance = %id, "replace: no such instance in the manifest; ignored");
                continue;
            };
            if self.table.slots[index].target.desired == Desired::Suspended {
                tracing::warn!(
                    instance = %id,
                    "replace: the instance is suspended (suspend: true), so nothing is sent"
                );
                continue;
            }
            if !self.table.replace(id.clone()) {
                continue;
            }
            tracing::info!(
                instance = %id,
                "replace: its picture is uploaded again once minInterval and any backoff allow"
            );
            // One with an upload in flight is planned as that upload lands.
            if !self.flight.is_uploading(&id) {
                self.target_replaced(index);
                self.plan_one(index, now);
            }
        }
    }

    /// Instance `index`'s target as its replace needs it: with its token (one in sync was
    /// planned without reading it, as nothing was to be sent).
    fn target_replaced(&mut self, index: usize) {
        let Desired::Picture { digest, .. } = self.table.slots[index].target.desired else {
            return;
        };
        let instance = &self.table.manifest().instances[index];
        let record = self.store.state().instances.get(&instance.id);
        let record = self.table.as_planned(&instance.id, record);
        let picture = Ok(digest);
        self.table.slots[index].target = target::target_for(
            instance,
            Some(&picture),
            Tokens::Required,
            record.as_deref(),
        );
    }

    /// Decides what to do with instance `index` now, and schedules it.
    pub(super) fn plan_one(&mut self, index: usize, now: SystemTime) {
        let id = self.table.id(index);
        let policy = self.table.policy();
        // One look at the record (at fleet size, each look is a cache miss or two).
        let record = self.store.state().instances.get(id);
        let clamped = record.and_then(|r| match plan::within_policy(r, now, &policy) {
            Cow::Owned(clamped) => Some(clamped),
            Cow::Borrowed(_) => None,
        });
        let record = clamped.as_ref().or(record);
        // A replace: planned as if nothing were applied, under the same throttle and backoff.
        let record = self.table.as_planned(id, record);
        let record = record.as_deref();
        let desired = &self.table.slots[index].target.desired;
        let decision = plan::decide(desired, record, now, &policy);
        let live_checked_at = record.and_then(|r| r.live_checked_at);
        if let Some(clamped) = clamped {
            tracing::warn!(
                instance = %id,
                "the recorded call or retry time is later than the policy allows from now \
                 (the clock ran ahead, or the state was edited); it is brought back"
            );
            self.store.set(id.clone(), clamped);
        }
        let decision = self.gated(index, decision, now);
        if self.options.observe_only {
            // One look, as soon as the one-read-a-second rule allows (another run may have
            // read a moment ago), at every instance with a desired picture; nothing is sent.
            let slot = &self.table.slots[index];
            if slot.seen.is_none() && matches!(slot.target.desired, Desired::Picture { .. }) {
                self.observe_at(index, now);
            }
            self.table.set(index, |slot| slot.decision = decision);
            return;
        }
        match &decision {
            Decision::Due { .. } => self.schedule.call_now(index),
            Decision::Blocked { .. } if self.options.give_up_when_blocked => {}
            // Polled instead (plan_read): uploaded to once it is authorised again. One
            // released already (SIGHUP, a poll) waits only for the throttle.
            Decision::Blocked { failure, .. }
                if self.options.live_reads && failure.next_attempt_at > now => {}
            other => {
                if let Some(at) = other.wake_at() {
                    self.schedule.wait_until(index, at);
                }
            }
        }
        self.table.set(index, |slot| slot.decision = decision);
        self.plan_read(index, now, live_checked_at);
    }

    /// Plans the next read of instance `index`'s live state, if it is read: a look at an
    /// in-sync instance's picture (drift), or a poll of a blocked one. `last` is the
    /// record's `liveCheckedAt`.
    fn plan_read(&mut self, index: usize, now: SystemTime, last: Option<SystemTime>) {
        // A rollout's upload that landed is read back first, whatever else is read.
        if let Some(at) = self.read_back_at(index, now) {
            self.table.slots[index].look_at = Some(at);
            self.schedule.read_at(index, at);
            return;
        }
        let instance = &self.table.manifest().instances[index];
        let slot = &self.table.slots[index];
        let read = match &slot.decision {
            _ if !self.options.live_reads => None,
            Decision::Blocked { .. } => Some(Read::Poll),
            Decision::InSync | Decision::Drifted { .. } if instance.drift != DriftMode::Off => {
                let spread = self.table.index.spread_of(index);
                Some(Read::Look { last, spread })
            }
            _ => None,
        };
        let every = self.table.manifest().drift_interval;
        let last_read = self.last_read(&instance.id);
        let at = read.map(|read| read_time(read, now, every, last_read));
        self.table.slots[index].look_at = at;
        if let Some(at) = at {
            self.schedule.read_at(index, at);
        }
    }

    /// Plans `--drift`'s look at instance `index`: now, or a second after its last read.
    pub(super) fn observe_at(&mut self, index: usize, now: SystemTime) {
        let last_read = self.last_read(self.table.id(index));
        match last_read
            .map(|last| last + READ_SPACING)
            .filter(|at| *at > now)
        {
            Some(at) => {
                self.table.slots[index].look_at = Some(at);
                self.schedule.read_at(index, at);
            }
            None => self.schedule.read_now(index),
        }
    }

    /// Re-plans instances whose wait is over, and queues the reads whose time has come.
    pub(super) fn fire_timers(&mut self, now: SystemTime) {
        while let Some((at, index)) = self.schedule.read_come(now) {
            // Stale entries (the instance was re-planned since) are skipped.
            let current = self.table.slots[index].look_at == Some(at);
            if current && !self.flight.is_busy(self.table.id(index)) {
                self.table.slots[index].look_at = None;
                self.schedule.read_now(index);
            }
        }
        while let Some((at, index)) = self.schedule.wait_over(now) {
            let id = self.table.id(index);
            if !self.flight.is_busy(id) && self.table.slots[index].decision.wake_at() == Some(at) {
                self.plan_one(index, now);
            }
        }
    }

    /// Looks again at one instance's picture and token, as a pass would.
    pub(super) fn retarget(&mut self, index: usize) {
        let instance = &self.table.index.manifest.instances[index];
        let Ok(path) = &instance.picture.path else {
            return;
        };
        let Caches {
            hashes, prepared, ..
        } = &mut self.uploads.caches;
        let sources = hashes.digest_all([path.as_path()]);
        let mut pictures = Pictures::new(&sources, prepared);
        let state = self.store.state();
        self.table.slots[index].target =
            target::target(instance, &mut pictures, Tokens::Required, state);
    }

    /// Marks instance `index` failed until the next pass, with `problem`.
    pub(super) fn fail(&mut self, index: usize, problem: LocalProblem) {
        self.table.slots[index].target = Target {
            desired: Desired::Unusable(problem),
            token: None,
        };
    }

    /// Notes what this run did to instance `index`.
    pub(super) fn did(&mut self, index: usize, this_run: ThisRun) {
        self.table.set(index, |slot| slot.this_run = this_run);
    }
}
