//! The reconcile loop, shared by every mode: desired state, plan, apply the due calls
//! concurrently, record each outcome as it lands, re-plan that instance, repeat.
//!
//! Instances never wait for each other: a call in flight, a throttle or a backoff of one
//! instance holds back only that instance. Waiting instances sit in a timer heap keyed by
//! the time their decision names, so a pass costs `O(n log n)` however many calls it
//! makes. `--reconcile` drives a [`Reconciler`] until nothing is due before its deadline;
//! the daemon drives the same one forever, handing it new manifests as they come.
//!
//! The reconciler owns the picture caches of its state directory; the [`StateStore`] owns
//! only the records and their saves.

pub(crate) mod apply;
pub(crate) mod desired;
pub(crate) mod live;

use crate::clock::{Clock, Jitter};
use crate::gateway::Gateway;
use crate::manifest::{ApiToken, DriftMode, IdMap, InstanceId, Manifest};
use crate::metrics::Metrics;
use crate::outcome::{CallOutcome, FailureKind, LocalProblem};
use crate::picture::caches::Caches;
use crate::picture::prepared::Checked;
use crate::picture::{self, Digest};
use crate::plan::{self, Decision, Desired, Policy};
use crate::report::{self, Report, ReportKind, ThisRun};
use crate::state::{StateError, StateStore};
use apply::{Call, Landed};
use desired::{Pictures, Target, Tokens};
use live::Look;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::task::JoinSet;

/// How a [`Reconciler`] behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// At most this many calls in flight at once.
    pub concurrency: usize,
    /// After a slow-retry failure (bad token, unusable instance), give up on the instance
    /// (one-shot runs) instead of waiting for its retry (the daemon).
    pub give_up_when_blocked: bool,
    /// Pictures are taken only once their file has been still this long
    /// ([`crate::picture::SETTLE`]); until then they are looked at again.
    pub settle: std::time::Duration,
    /// Read live state (the daemon; one-shot runs do not stay long enough): look at each
    /// in-sync instance's live picture about once per `driftInterval`, and poll an
    /// unusable instance's `getStateInstance` instead of retrying it on a blind timer.
    pub live_reads: bool,
}

/// One instance of the current manifest: what it should show and what was decided.
struct Slot {
    target: Target,
    decision: Decision,
    /// What this run did to it.
    this_run: ThisRun,
    /// When its live picture is next looked at (drift).
    check_at: Option<SystemTime>,
}

impl Slot {
    /// The status a report shows for it.
    fn status(&self) -> report::Status {
        report::status(&self.decision, self.this_run)
    }
}

/// Drives instances towards their desired pictures, calling GREEN-API through `G`.
pub(crate) struct Reconciler<G> {
    options: Options,
    gateway: G,
    clock: Clock,
    jitter: Jitter,
    metrics: Arc<Metrics>,
    store: StateStore,
    caches: Caches,
    manifest: Arc<Manifest>,
    policy: Policy,
    slots: Vec<Slot>,
    /// What is found once per manifest.
    index: Index,
    /// How many slots are in each status, kept as they change ([`Self::summary`]: the
    /// daemon asks after every pass, and a walk over a fleet's slots is a cache miss each).
    counts: report::Summary,
    /// Instances with a call in flight (they may have left the manifest meanwhile).
    busy: HashSet<InstanceId>,
    queue: VecDeque<usize>,
    timers: BinaryHeap<Reverse<(SystemTime, usize)>>,
    /// When to look at live pictures (drift), per instance in sync.
    checks: BinaryHeap<Reverse<(SystemTime, usize)>>,
    /// Looks whose time has come, waiting for a free slot.
    checks_due: VecDeque<usize>,
    in_flight: JoinSet<Landed>,
    task_ids: HashMap<tokio::task::Id, InstanceId>,
    /// The prepared picture each call in flight is sending (kept through a manifest change).
    in_flight_digests: HashMap<InstanceId, Digest>,
    /// Prepared pictures found damaged once and prepared again: found damaged a second
    /// time, the instance fails instead of being re-planned at once (no spinning).
    damaged: HashSet<(InstanceId, Digest)>,
    /// When each instance's live state was last read (adoption, drift): GREEN-API allows one
    /// read a second per instance.
    last_read: HashMap<InstanceId, SystemTime>,
    /// When to look again at pictures that were still being written.
    recheck_at: Option<SystemTime>,
    /// The `callStartedAt` each call in flight replaced: put back if it sends nothing.
    started_over: HashMap<InstanceId, Option<SystemTime>>,
    /// Perceptual fingerprints of prepared pictures already uploaded (drift): a fleet
    /// showing one picture on many instances decodes it once.
    fingerprints: HashMap<Digest, Arc<str>>,
    /// Prepared files already checked against their digest (one SHA-256 per file, not per
    /// call).
    checked: Arc<Checked>,
}

/// What is found once per manifest, and kept across the passes over it (a daemon's pass
/// after a picture's event plans the same manifest again).
struct Index {
    /// The manifest it was found in.
    manifest: Arc<Manifest>,
    /// Where each instance is in it.
    by_id: IdMap<usize>,
    /// The pictures its instances show.
    uses: desired::Uses,
    /// Where in a `driftInterval` each instance's looks fall ([`spread`]), when the live
    /// pictures are looked at (empty otherwise).
    spread: Vec<f64>,
}

impl Index {
    fn of(manifest: &Arc<Manifest>, live_reads: bool) -> Self {
        let spreads = match live_reads {
            true => (manifest.instances.iter()).map(|i| spread(&i.id)).collect(),
            false => Vec::new(),
        };
        Self {
            manifest: Arc::clone(manifest),
            by_id: (manifest.instances.iter().enumerate())
                .map(|(index, instance)| (instance.id.clone(), index))
                .collect(),
            uses: desired::Uses::of(manifest),
            spread: spreads,
        }
    }
}

/// The most fingerprints remembered (a few hundred bytes each); forgotten all at once when
/// full, since they are only a saving.
const MAX_FINGERPRINTS: usize = 10_000;

impl<G: Gateway> Reconciler<G> {
    /// A reconciler over `manifest`, with every instance planned. Its picture caches are
    /// those of the store's state directory.
    pub fn new(
        manifest: Arc<Manifest>,
        store: StateStore,
        gateway: G,
        clock: Clock,
        jitter: Jitter,
        options: Options,
    ) -> Self {
        let mut caches = Caches::writer(store.dir().path());
        caches.hashes.require_settled(options.settle);
        let mut reconciler = Self {
            options,
            gateway,
            clock,
            jitter,
            metrics: Arc::default(),
            store,
            caches,
            policy: Policy {
                min_interval: manifest.min_interval,
            },
            manifest: Arc::clone(&manifest),
            slots: Vec::new(),
            index: Index::of(&manifest, options.live_reads),
            counts: report::Summary::default(),
            busy: HashSet::new(),
            queue: VecDeque::new(),
            timers: BinaryHeap::new(),
            checks: BinaryHeap::new(),
            checks_due: VecDeque::new(),
            in_flight: JoinSet::new(),
            task_ids: HashMap::new(),
            in_flight_digests: HashMap::new(),
            damaged: HashSet::new(),
            recheck_at: None,
            last_read: HashMap::new(),
            started_over: HashMap::new(),
            fingerprints: HashMap::new(),
            checked: Arc::default(),
        };
        reconciler.set_manifest(manifest);
        reconciler
    }

    /// Takes `manifest` as the one in force: re-reads every picture and token and plans
    /// every instance again. Calls in flight finish and are recorded; instances that left
    /// the manifest are not touched again.
    pub fn set_manifest(&mut self, manifest: Arc<Manifest>) {
        self.plan_all(manifest, false);
    }

    /// Looks again at pictures that were still being written, as part of the same run:
    /// what the run already did to each instance (applied, adopted) is kept.
    fn recheck(&mut self) {
        self.plan_all(Arc::clone(&self.manifest), true);
    }

    fn plan_all(&mut self, manifest: Arc<Manifest>, same_run: bool) {
        let started = std::time::Instant::now();
        let done: HashMap<InstanceId, ThisRun> = if same_run {
            (self.manifest.instances.iter().zip(&self.slots))
                .filter(|(_, slot)| slot.this_run != ThisRun::Nothing)
                .map(|(instance, slot)| (instance.id.clone(), slot.this_run))
                .collect()
        } else {
            HashMap::new()
        };
        if !Arc::ptr_eq(&self.index.manifest, &manifest) {
            self.index = Index::of(&manifest, self.options.live_reads);
        }
        let (digests, read, made) = self.pictures(&manifest);
        self.policy = Policy {
            min_interval: manifest.min_interval,
        };
        self.manifest = Arc::clone(&manifest);
        self.queue.clear();
        self.timers.clear();
        self.checks.clear();
        self.checks_due.clear();
        let now = self.clock.now();
        // Each instance's desired state and plan in one step: its record is looked at
        // (at fleet size, a cache miss or two) while it is at hand.
        self.slots = Vec::with_capacity(manifest.instances.len());
        self.counts = report::Summary::default();
        for (index, instance) in manifest.instances.iter().enumerate() {
            let picture = (self.index.uses.picture_of(index)).and_then(|p| digests.get(p));
            let record = self.store.state().instances.get(&instance.id);
            let slot = Slot {
                target: desired::target_for(instance, picture, Tokens::Required, record),
                decision: Decision::Suspended,
                this_run: done.get(&instance.id).copied().unwrap_or_default(),
                check_at: None,
            };
            self.counts = self.counts.plus(slot.status());
            self.slots.push(slot);
            if self.busy.is_empty() || !self.busy.contains(&instance.id) {
                self.plan_one(index, now);
            }
        }
        let settling = self.slots.iter().any(|slot| {
            matches!(&slot.target.desired, Desired::Unusable(p) if p.label == picture::CHANGING)
        });
        self.recheck_at =
            (settling && !self.options.settle.is_zero()).then(|| now + self.options.settle);
        self.metrics.pass(now, started.elapsed());
        let (n, due, waiting) = (self.slots.len(), self.queue.len(), self.timers.len());
        tracing::info!(
            instances = n,
            due,
            waiting,
            pictures_read = read,
            pictures_prepared = made,
            took_ms = started.elapsed().as_secs_f64() * 1000.0,
            "planned {n} instance{}: {due} to set now, {waiting} waiting",
            if n == 1 { "" } else { "s" }
        );
    }

    /// The digest of each distinct picture of `manifest` (as its [`desired::Uses`] number
    /// them), with how many pictures were read and prepared to know them. The caches keep
    /// what this manifest and the calls in flight use, and are saved.
    fn pictures(
        &mut self,
        manifest: &Manifest,
    ) -> (Vec<Result<Digest, LocalProblem>>, usize, usize) {
        let uses = &self.index.uses;
        let digests = desired::digests(manifest, uses, &mut self.caches);
        let Caches {
            hashes, prepared, ..
        } = &mut self.caches;
        hashes.retain(&uses.files(manifest).collect());
        let live: HashSet<Digest> = (digests.iter().filter_map(|d| d.as_ref().ok().copied()))
            .chain(self.in_flight_digests.values().copied())
            .collect();
        prepared.retain(&live);
        let (read, made) = (hashes.take_stats().misses, prepared.take_made());
        // Uploads of what was just prepared need not hash it again.
        self.checked.trust(prepared.take_written());
        if let Err(e) = self.caches.save() {
            tracing::warn!(
                kind = e.label(),
                "cannot save the picture caches (costs time, not correctness): {e}"
            );
        }
        (digests, read, made)
    }

    /// What the reconciler counts (requests, passes), for `/metrics`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Gives up on the calls still in flight (a stop that cannot wait longer). Each may
    /// still reach GREEN-API: its record keeps the call's start (`callStartedAt`), so the
    /// throttle holds across the restart; the picture is sent again later. Returns how many
    /// were given up.
    pub fn abandon_in_flight(&mut self) -> usize {
        self.in_flight.abort_all();
        self.task_ids.clear();
        self.in_flight_digests.clear();
        self.started_over.clear();
        let abandoned = self.busy.len();
        self.busy.clear();
        abandoned
    }

    /// When pictures that were still being written are to be looked at again (a new pass
    /// over the same manifest), if any were.
    pub fn recheck_at(&self) -> Option<SystemTime> {
        self.recheck_at
    }

    /// The clock the reconciler reads.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The manifest in force.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// Makes instances in a slow backoff (bad token, unusable instance) due at once, as
    /// an operator's reload asks; the throttle still holds.
    pub fn retry_blocked_now(&mut self) {
        let now = self.clock.now();
        for index in 0..self.slots.len() {
            if let Decision::Blocked { .. } = self.slots[index].decision {
                let id = self.manifest.instances[index].id.clone();
                if let Some(mut record) = self.store.state().instances.get(&id).cloned() {
                    if let Some(failure) = record.failure.as_mut() {
                        failure.next_attempt_at = now;
                    }
                    self.store.set(id, record);
                }
                self.plan_one(index, now);
            }
        }
    }

    fn plan_one(&mut self, index: usize, now: SystemTime) {
        let id = &self.manifest.instances[index].id;
        // One look at the record (at fleet size, each look is a cache miss or two).
        let record = self.store.state().instances.get(id);
        let clamped = record.and_then(|r| match plan::within_policy(r, now, &self.policy) {
            Cow::Owned(clamped) => Some(clamped),
            Cow::Borrowed(_) => None,
        });
        let record = clamped.as_ref().or(record);
        let decision = plan::decide(&self.slots[index].target.desired, record, now, &self.policy);
        let live_checked_at = record.and_then(|r| r.live_checked_at);
        if let Some(clamped) = clamped {
            tracing::warn!(
                instance = %id,
                "the recorded call or retry time is later than the policy allows from now \
                 (the clock ran ahead, or the state was edited); it is brought back"
            );
            self.store.set(id.clone(), clamped);
        }
        match &decision {
            Decision::Due { .. } => self.queue.push_back(index),
            Decision::Blocked { .. } if self.options.give_up_when_blocked => {}
            // Polled instead (schedule_check): uploaded to once it is authorised again. One
            // released already (SIGHUP, a poll) waits only for the throttle.
            Decision::Blocked { failure, .. }
                if self.options.live_reads && failure.next_attempt_at > now => {}
            other => {
                if let Some(at) = other.wake_at() {
                    self.timers.push(Reverse((at, index)));
                }
            }
        }
        self.set_slot(index, |slot| slot.decision = decision);
        self.schedule_check(index, now, live_checked_at);
    }

    /// Plans the next look at an in-sync instance's live picture: `driftInterval` after
    /// the last one, or, when there was none (or it is long past), at a point of the
    /// interval fixed by the instance's id, so a fleet's looks are spread evenly.
    /// `last` is the record's `liveCheckedAt`.
    fn schedule_check(&mut self, index: usize, now: SystemTime, last: Option<SystemTime>) {
        let instance = &self.manifest.instances[index];
        let slot = &mut self.slots[index];
        slot.check_at = None;
        if !self.options.live_reads {
            return;
        }
        let in_sync = matches!(slot.decision, Decision::InSync | Decision::Drifted { .. });
        let blocked = matches!(slot.decision, Decision::Blocked { .. });
        let every = self.manifest.drift_interval.max(READ_SPACING);
        let at = if blocked {
            now + every.min(HEALTH_POLL)
        } else if in_sync && instance.drift != DriftMode::Off {
            match last {
                Some(last) if last + every > now => last + every,
                _ => {
                    let fixed = self.index.spread.get(index).copied();
                    now + every.mul_f64(fixed.unwrap_or_else(|| spread(&instance.id)))
                }
            }
        } else {
            return;
        };
        // Never more than one read a second of one instance.
        let at = match self.last_read.get(&instance.id) {
            Some(read) => at.max(*read + READ_SPACING),
            None => at,
        };
        slot.check_at = Some(at);
        self.checks.push(Reverse((at, index)));
    }

    /// Re-plans instances whose wait is over, and queues the looks that are due.
    pub fn fire_timers(&mut self, now: SystemTime) {
        while let Some(Reverse((at, index))) = self.checks.peek().copied() {
            if at > now {
                break;
            }
            self.checks.pop();
            let id = &self.manifest.instances[index].id;
            if !self.busy.contains(id) && self.slots[index].check_at == Some(at) {
                self.slots[index].check_at = None;
                self.checks_due.push_back(index);
            }
        }
        while let Some(Reverse((at, index))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            // Stale entries (the instance was re-planned since) are skipped.
            let id = &self.manifest.instances[index].id;
            if !self.busy.contains(id) && self.slots[index].decision.wake_at() == Some(at) {
                self.plan_one(index, now);
            }
        }
    }

    /// Starts due calls while fewer than `concurrency` are in flight. Their start is
    /// recorded (and journaled) before any of them is sent.
    pub fn dispatch(&mut self) {
        let mut starting: Vec<Call> = Vec::new();
        while self.in_flight.len() + starting.len() < self.options.concurrency {
            let Some(index) = self.queue.pop_front() else {
                break;
            };
            let Decision::Due { digest } = self.slots[index].decision else {
                continue;
            };
            let instance = &self.manifest.instances[index];
            let target = &self.slots[index].target;
            let (
                Some(token),
                Ok(path),
                Desired::Picture {
                    credentials: Some(credentials),
                    ..
                },
            ) = (&target.token, &instance.picture.path, &target.desired)
            else {
                continue;
            };
            if !self.busy.insert(instance.id.clone()) {
                continue;
            }
            let unknown = !self.store.state().instances.contains_key(&instance.id);
            starting.push(Call {
                manifest: Arc::clone(&self.manifest),
                index,
                path: self.caches.prepared_path(digest),
                filename: apply::upload_filename(path),
                digest,
                credentials: credentials.clone(),
                token: token.clone(),
                adopt: self.manifest.adopt && unknown,
                checked: Arc::clone(&self.checked),
                fingerprint: self.fingerprints.get(&digest).cloned(),
            });
        }
        self.dispatch_checks();
        if starting.is_empty() {
            return;
        }
        let ids: Vec<InstanceId> = (starting.iter())
            .map(|call| self.manifest.instances[call.index].id.clone())
            .collect();
        for id in &ids {
            let before = self.store.state().instances.get(id);
            (self.started_over).insert(id.clone(), before.and_then(|r| r.call_started_at));
        }
        let now = self.clock.now();
        for (call, id) in starting.iter().zip(&ids) {
            if call.adopt {
                self.last_read.insert(id.clone(), now);
            }
        }
        self.store.calls_started(&ids, now);
        for (call, id) in starting.into_iter().zip(ids) {
            let digest = call.digest;
            let handle = self.in_flight.spawn(apply::send(
                call,
                self.gateway.clone(),
                self.clock,
                Arc::clone(&self.metrics),
            ));
            self.task_ids.insert(handle.id(), id.clone());
            self.in_flight_digests.insert(id, digest);
        }
    }

    /// Starts due looks at live pictures while slots are free (calls come first).
    fn dispatch_checks(&mut self) {
        while self.in_flight.len() < self.options.concurrency {
            let Some(index) = self.checks_due.pop_front() else {
                return;
            };
            let Some(token) = self.read_token(index) else {
                continue;
            };
            let manifest = Arc::clone(&self.manifest);
            // A blocked instance's state is polled; an instance in sync is looked at.
            let read: Pin<Box<dyn Future<Output = Landed> + Send>> =
                if matches!(self.slots[index].decision, Decision::Blocked { .. }) {
                    let poll = apply::Poll {
                        manifest,
                        index,
                        token,
                    };
                    let metrics = Arc::clone(&self.metrics);
                    Box::pin(apply::poll(poll, self.gateway.clone(), self.clock, metrics))
                } else {
                    let id = &self.manifest.instances[index].id;
                    let (Desired::Picture { digest, .. }, Some(record)) = (
                        &self.slots[index].target.desired,
                        self.store.state().instances.get(id),
                    ) else {
                        continue;
                    };
                    let applied = record.applied.as_ref();
                    let check = apply::Check {
                        manifest,
                        index,
                        path: self.caches.prepared_path(*digest),
                        digest: *digest,
                        token,
                        recorded: applied.and_then(|a| a.url_avatar.clone()),
                        wanted_hash: applied.and_then(|a| a.perceptual_hash.clone()),
                        checked: Arc::clone(&self.checked),
                    };
                    let metrics = Arc::clone(&self.metrics);
                    Box::pin(apply::check(
                        check,
                        self.gateway.clone(),
                        self.clock,
                        metrics,
                    ))
                };
            let id = self.manifest.instances[index].id.clone();
            if !self.busy.insert(id.clone()) {
                continue;
            }
            self.last_read.insert(id.clone(), self.clock.now());
            let handle = self.in_flight.spawn(read);
            self.task_ids.insert(handle.id(), id);
        }
    }

    /// The token for a read of instance `index`: the one its target holds, else read now
    /// (an instance in sync needs none to be planned).
    fn read_token(&self, index: usize) -> Option<ApiToken> {
        let instance = &self.manifest.instances[index];
        match &self.slots[index].target.token {
            Some(token) => Some(token.clone()),
            None => instance
                .token
                .resolve()
                .inspect_err(|e| {
                    tracing::debug!(instance = %instance.id, "no read of its live state: {e}");
                })
                .ok(),
        }
    }

    /// Whether a call is in flight.
    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Whether calls are due now but wait for a free slot.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The earliest time an instance's wait ends, if any waits.
    pub fn next_timer(&self) -> Option<SystemTime> {
        let first = |heap: &BinaryHeap<Reverse<(SystemTime, usize)>>| {
            heap.peek().map(|Reverse((at, _))| *at)
        };
        match (first(&self.timers), first(&self.checks)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Waits for the next call to land and records it. Pending forever when none is in
    /// flight, so it can sit in a `select!`.
    pub async fn land_next(&mut self) {
        match self.in_flight.join_next_with_id().await {
            Some(joined) => self.on_joined(joined),
            None => std::future::pending().await,
        }
    }

    fn on_joined(&mut self, joined: Result<(tokio::task::Id, Landed), tokio::task::JoinError>) {
        match joined {
            Ok((task, landed)) => {
                self.task_ids.remove(&task);
                self.on_landed(landed);
            }
            Err(e) => {
                // A call task died (it does not panic by design): free its instance so it
                // is planned again at the next pass.
                if let Some(id) = self.task_ids.remove(&e.id()) {
                    self.call_over(&id);
                    tracing::error!(instance = %id, "internal error during a call: {e}");
                }
            }
        }
    }

    /// Frees the instance a call was for (it may be planned again); returns the
    /// `callStartedAt` that the call's start replaced.
    fn call_over(&mut self, id: &InstanceId) -> Option<Option<SystemTime>> {
        self.busy.remove(id);
        self.in_flight_digests.remove(id);
        self.started_over.remove(id)
    }

    fn on_landed(&mut self, landed: Landed) {
        let now = self.clock.now();
        match landed {
            Landed::Called {
                id,
                digest,
                credentials,
                outcome,
                finished_at,
                perceptual_hash,
            } => {
                self.call_over(&id);
                self.damaged.retain(|(damaged, _)| *damaged != id);
                let mut record = plan::record_outcome(
                    self.store.state().instances.get(&id),
                    digest,
                    &credentials,
                    &outcome,
                    finished_at,
                    &self.policy,
                    self.jitter.draw(),
                );
                if let (Some(hash), Some(applied)) = (perceptual_hash, record.applied.as_mut()) {
                    if self.fingerprints.len() >= MAX_FINGERPRINTS {
                        self.fingerprints.clear();
                    }
                    self.fingerprints.insert(digest, hash.clone());
                    applied.perceptual_hash = Some(hash);
                }
                if let CallOutcome::Failed(f) = &outcome
                    && f.kind == FailureKind::RefusedBytes
                {
                    self.store.bytes_refused(&id, digest);
                }
                self.store.set(id.clone(), record);
                if let Some(index) = self.index_of(&id) {
                    if matches!(outcome, CallOutcome::Applied { .. }) {
                        self.set_slot(index, |slot| slot.this_run = ThisRun::Applied);
                    }
                    self.plan_one(index, now);
                }
            }
            Landed::Adopted {
                id,
                digest,
                url_avatar,
                at,
            } => {
                self.call_over(&id);
                let record = plan::record_adopted(
                    self.store.state().instances.get(&id),
                    digest,
                    url_avatar,
                    at,
                );
                self.store.set(id.clone(), record);
                if let Some(index) = self.index_of(&id) {
                    self.set_slot(index, |slot| slot.this_run = ThisRun::Adopted);
                    self.plan_one(index, now);
                }
            }
            Landed::Polled { id, state, at } => {
                self.busy.remove(&id);
                let Some(mut record) = self.store.state().instances.get(&id).cloned() else {
                    return;
                };
                match state {
                    Ok(state) => {
                        if state.is_authorized()
                            && let Some(failure) = record.failure.as_mut()
                        {
                            tracing::info!(instance = %id, "the instance is authorized again: sending");
                            failure.next_attempt_at = at;
                        }
                        record.state_instance = Some(state.label().to_owned());
                    }
                    Err(failure) => {
                        tracing::debug!(instance = %id, "cannot poll its state: {}", failure.detail);
                    }
                }
                self.store.set(id.clone(), record);
                if let Some(index) = self.index_of(&id) {
                    self.plan_one(index, now);
                }
            }
            Landed::Checked {
                id,
                digest,
                look,
                at,
            } => {
                self.busy.remove(&id);
                let Some(mut record) = self.store.state().instances.get(&id).cloned() else {
                    return;
                };
                if record.applied.as_ref().map(|a| a.sha256) != Some(digest) {
                    // Something was applied meanwhile: this look is stale.
                    return;
                }
                record.live_checked_at = Some(at);
                match look {
                    Look::Matches(_) => {
                        if record.drifted.take().is_some() {
                            tracing::info!(instance = %id, "the live picture is the desired one again");
                        }
                    }
                    Look::Differs(why) => {
                        if record.drifted.is_none() {
                            tracing::warn!(instance = %id, "the live picture drifted: {why}");
                        }
                        record.drifted = Some(why);
                    }
                    Look::Unknown { why, .. } => {
                        tracing::debug!(instance = %id, "cannot look at the live picture: {why}");
                    }
                }
                let healing = record.drifted.is_some();
                self.store.set(id.clone(), record);
                if let Some(index) = self.index_of(&id) {
                    if healing && self.manifest.instances[index].drift == DriftMode::Heal {
                        // Sent again: the target needs the token an in-sync one did not.
                        self.retarget(index);
                    }
                    self.plan_one(index, now);
                }
            }
            Landed::Stale { id, digest } => {
                // Nothing was sent: the start recorded for it did not happen.
                if let Some(before) = self.call_over(&id)
                    && let Some(mut record) = self.store.state().instances.get(&id).cloned()
                {
                    record.call_started_at = before;
                    self.store.set(id.clone(), record);
                }
                // Prepare it again from its source, whatever the index says.
                self.caches.prepared.forget(digest);
                let Some(index) = self.index_of(&id) else {
                    return;
                };
                if !self.damaged.insert((id.clone(), digest)) {
                    // Prepared again and still not the planned bytes: something keeps
                    // damaging the folder. Fail until the next pass rather than spin.
                    self.slots[index].target = Target {
                        desired: Desired::Unusable(LocalProblem {
                            label: "state-write",
                            message: format!(
                                "the prepared picture {} is damaged again after being prepared again",
                                self.caches.prepared_path(digest).display()
                            ),
                        }),
                        token: None,
                    };
                } else {
                    self.retarget(index);
                }
                self.plan_one(index, now);
            }
        }
    }

    /// Looks again at one instance's picture and token, as a pass would.
    fn retarget(&mut self, index: usize) {
        let instance = &self.manifest.instances[index];
        let Ok(path) = &instance.picture.path else {
            return;
        };
        let Caches {
            hashes, prepared, ..
        } = &mut self.caches;
        let sources = hashes.digest_all([path.as_path()]);
        let mut pictures = Pictures::new(&sources, prepared);
        let state = self.store.state();
        self.slots[index].target =
            desired::target(instance, &mut pictures, Tokens::Required, state);
    }

    fn index_of(&self, id: &InstanceId) -> Option<usize> {
        self.index.by_id.get(id).copied()
    }

    /// When the next batched save is due.
    pub fn save_due_at(&self) -> Option<tokio::time::Instant> {
        self.store.save_due_at()
    }

    /// Ends the run: the state directory is released, and what is sized by the fleet (the
    /// records, the manifest, the plan) is handed back to be freed aside
    /// ([`crate::usage::free_aside`]).
    pub fn close(self) -> impl Send + 'static {
        (self.store.close(), self.manifest, self.index, self.slots)
    }

    /// What the state saves so far cost.
    pub fn save_cost(&self) -> crate::state::SaveCost {
        self.store.save_cost()
    }

    /// Whether the last save of the state failed (and none succeeded since).
    pub fn save_failing(&self) -> bool {
        self.store.save_failing()
    }

    /// Saves if a batch is due.
    pub fn save_if_due(&mut self) -> Result<(), StateError> {
        self.store.save_if_due()
    }

    /// Saves now if anything changed.
    pub fn save(&mut self) -> Result<(), StateError> {
        self.store.save()
    }

    /// Runs until every instance is settled or only waits beyond `deadline` remain.
    /// No call starts after the deadline; calls in flight then are let finish.
    pub async fn run_until(&mut self, deadline: SystemTime) -> Result<(), StateError> {
        loop {
            let now = self.clock.now();
            self.fire_timers(now);
            if now < deadline {
                self.dispatch();
            }
            let next_timer = self.next_timer();
            let recheck = self.recheck_at.filter(|&at| at <= deadline);
            let nothing_before_deadline = (self.queue.is_empty() || now >= deadline)
                && next_timer.is_none_or(|at| at > deadline)
                && recheck.is_none();
            if self.in_flight.is_empty() && nothing_before_deadline {
                break;
            }
            // Timers beyond the deadline do not matter; landing calls wake the loop anyway.
            let wake = next_timer
                .filter(|&at| now < deadline && at <= deadline)
                .map(|at| self.clock.instant_at(at));
            let save_at = self.save_due_at();
            let recheck_at = recheck.map(|at| self.clock.instant_at(at));
            tokio::select! {
                () = self.land_next() => {}
                () = sleep_until_opt(wake) => {}
                () = sleep_until_opt(save_at) => {}
                () = sleep_until_opt(recheck_at) => {
                    self.recheck();
                }
            }
            self.save_if_due()?;
        }
        self.save()
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

    /// Changes slot `index` by `change`, keeping [`Self::counts`].
    fn set_slot(&mut self, index: usize, change: impl FnOnce(&mut Slot)) {
        let slot = &mut self.slots[index];
        let before = slot.status();
        change(slot);
        self.counts.moved(before, slot.status());
    }

    /// Where every instance stands now. `Due` instances are reported `pending`.
    pub fn report(&self) -> Report {
        self.report_rows(Rows::All)
    }

    /// [`Self::report`], with a row for each instance (`Rows::All`) or only for those the
    /// table lists (`Rows::Listed`); the summary counts them all.
    pub fn report_rows(&self, rows: Rows) -> Report {
        let instances = self.manifest.instances.iter().zip(&self.slots);
        let rows = instances
            .filter(|(_, slot)| rows == Rows::All || slot.status().listed())
            .map(|(instance, slot)| {
                report::row(
                    instance,
                    &slot.target.desired,
                    &slot.decision,
                    self.store.state().instances.get(&instance.id),
                    slot.this_run,
                )
            })
            .collect();
        Report::with_summary(rows, self.summary(), ReportKind::Reconcile)
    }
}

/// Which instances a report has rows for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Every instance (`--json`, `--all`, the status page).
    All,
    /// Those a table lists without `--all` ([`report::Status::listed`]).
    Listed,
}

/// How often an unusable instance's state is polled, at most (`driftInterval` if shorter).
const HEALTH_POLL: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The least time between two reads of one instance's live state: GREEN-API's one a
/// second, with room for the network's jitter.
const READ_SPACING: std::time::Duration = std::time::Duration::from_millis(1100);

/// Where in a `driftInterval` an instance's looks fall, in `[0, 1)`: fixed by its id, so
/// a fleet's looks are spread evenly and stay so across restarts.
fn spread(id: &InstanceId) -> f64 {
    // The first 52 bits of the id's SHA-256: as many as an f64 holds exactly.
    let mut first = [0u8; 8];
    first.copy_from_slice(&Digest::of(id.as_str().as_bytes()).bytes()[..8]);
    (u64::from_be_bytes(first) >> 12) as f64 / (1u64 << 52) as f64
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
pub(crate) async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
