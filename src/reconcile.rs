//! One reconcile pass, shared by every mode: desired state, plan, apply the due calls
//! concurrently, record each outcome as it lands, re-plan that instance, repeat until
//! nothing is due before the deadline.
//!
//! Instances never wait for each other: a call in flight, a throttle or a backoff of one
//! instance holds back only that instance. Waiting instances sit in a timer heap keyed by
//! the time their decision names, so a pass costs `O(n log n)` however many calls it makes.

use crate::apply::{self, Call, Landed};
use crate::clock::Clock;
use crate::desired::{self, Target};
use crate::gateway::{CallOutcome, Gateway};
use crate::manifest::Manifest;
use crate::plan::{self, Decision, Desired, Policy};
use crate::report::{self, Report, Status};
use crate::state::{Loaded, State, StateDir, StateError, StateStore};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;

/// What a pass needs besides the manifest and the state.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// At most this many calls in flight at once.
    pub concurrency: usize,
    /// After a slow-retry failure (bad token, unusable instance), give up on the instance
    /// for this pass (one-shot runs) instead of waiting for its retry (the daemon).
    pub give_up_when_blocked: bool,
}

/// A reconcile pass over one manifest.
pub struct Pass {
    manifest: Arc<Manifest>,
    policy: Policy,
    options: Options,
    gateway: Gateway,
    clock: Clock,
    store: StateStore,
    targets: Vec<Target>,
    decisions: Vec<Decision>,
    applied_now: Vec<bool>,
    busy: Vec<bool>,
    queue: VecDeque<usize>,
    timers: BinaryHeap<Reverse<(SystemTime, usize)>>,
    in_flight: JoinSet<Landed>,
    task_index: HashMap<tokio::task::Id, usize>,
}

impl Pass {
    /// Computes the desired state of every instance and plans each one.
    pub fn new(
        manifest: Arc<Manifest>,
        store: StateStore,
        gateway: Gateway,
        clock: Clock,
        options: Options,
    ) -> Self {
        let targets = desired::compute(&manifest);
        let n = targets.len();
        let mut pass = Self {
            policy: Policy {
                min_interval: manifest.min_interval,
            },
            manifest,
            options,
            gateway,
            clock,
            store,
            targets,
            decisions: vec![Decision::Suspended; n],
            applied_now: vec![false; n],
            busy: vec![false; n],
            queue: VecDeque::new(),
            timers: BinaryHeap::new(),
            in_flight: JoinSet::new(),
            task_index: HashMap::new(),
        };
        let now = pass.clock.now();
        for index in 0..n {
            pass.plan_one(index, now);
        }
        let due = pass.queue.len();
        let waiting = pass.timers.len();
        tracing::info!(
            instances = n,
            due,
            waiting,
            "planned {n} instance{}: {due} to set now, {waiting} waiting",
            if n == 1 { "" } else { "s" }
        );
        pass
    }

    fn plan_one(&mut self, index: usize, now: SystemTime) {
        let id = &self.manifest.instances[index].id;
        let decision = plan::decide(
            &self.targets[index].desired,
            self.store.state().instances.get(id),
            now,
            &self.policy,
        );
        match &decision {
            Decision::Due { .. } => self.queue.push_back(index),
            Decision::Blocked { .. } if self.options.give_up_when_blocked => {}
            other => {
                if let Some(at) = other.wake_at() {
                    self.timers.push(Reverse((at, index)));
                }
            }
        }
        self.decisions[index] = decision;
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
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let nothing_before_deadline = (self.queue.is_empty() || now >= deadline)
                && next_timer.is_none_or(|at| at > deadline);
            if self.in_flight.is_empty() && nothing_before_deadline {
                break;
            }
            // Timers beyond the deadline do not matter; landing calls wake the loop anyway.
            let wake = next_timer
                .filter(|&at| now < deadline && at <= deadline)
                .map(|at| self.clock.instant_at(at));
            let save_at = self.store.save_due_at().map(tokio::time::Instant::from_std);
            tokio::select! {
                Some(joined) = self.in_flight.join_next_with_id() => self.on_joined(joined),
                () = sleep_until_opt(wake) => {}
                () = sleep_until_opt(save_at) => {}
            }
            self.store.save_if_due()?;
        }
        self.store.save()
    }

    fn fire_timers(&mut self, now: SystemTime) {
        while let Some(Reverse((at, index))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            // Stale entries (the instance was re-planned since) are skipped.
            if !self.busy[index] && self.decisions[index].wake_at() == Some(at) {
                self.plan_one(index, now);
            }
        }
    }

    fn dispatch(&mut self) {
        while self.in_flight.len() < self.options.concurrency {
            let Some(index) = self.queue.pop_front() else {
                return;
            };
            let Decision::Due { digest } = self.decisions[index] else {
                continue;
            };
            let (Some(token), Ok(path)) = (
                self.targets[index].token.clone(),
                self.manifest.instances[index].picture.path.clone(),
            ) else {
                continue;
            };
            if self.busy[index] {
                continue;
            }
            self.busy[index] = true;
            let call = Call {
                manifest: Arc::clone(&self.manifest),
                index,
                path,
                digest,
                token,
            };
            let handle = self
                .in_flight
                .spawn(apply::run(call, self.gateway.clone(), self.clock));
            self.task_index.insert(handle.id(), index);
        }
    }

    fn on_joined(&mut self, joined: Result<(tokio::task::Id, Landed), tokio::task::JoinError>) {
        match joined {
            Ok((task, landed)) => {
                self.task_index.remove(&task);
                self.on_landed(landed);
            }
            Err(e) => {
                // A call task died (it does not panic by design); free its instance so it
                // is planned again after the throttle.
                if let Some(index) = self.task_index.remove(&e.id()) {
                    self.busy[index] = false;
                    tracing::error!(
                        instance = %self.manifest.instances[index].id,
                        "internal error during a call: {e}"
                    );
                }
            }
        }
    }

    fn on_landed(&mut self, landed: Landed) {
        let now = self.clock.now();
        match landed {
            Landed::Called {
                index,
                digest,
                outcome,
                finished_at,
            } => {
                self.busy[index] = false;
                let id = self.manifest.instances[index].id.clone();
                let Desired::Picture { credentials, .. } = &self.targets[index].desired else {
                    return;
                };
                let record = plan::record_outcome(
                    self.store.state().instances.get(&id),
                    digest,
                    credentials,
                    &outcome,
                    finished_at,
                    &self.policy,
                    fastrand::f64(),
                );
                if matches!(outcome, CallOutcome::Applied { .. }) {
                    self.applied_now[index] = true;
                }
                self.store.set(id, record);
                self.plan_one(index, now);
            }
            Landed::PictureChanged { index, now: fresh } => {
                self.busy[index] = false;
                let instance = &self.manifest.instances[index];
                tracing::info!(instance = %instance.id, "picture changed since it was planned; planning again");
                if let Ok(path) = &instance.picture.path {
                    let digests = HashMap::from([(path.clone(), fresh)]);
                    self.targets[index] = desired::target(instance, &digests);
                }
                self.plan_one(index, now);
            }
        }
    }

    /// The report of where every instance stands now.
    pub fn report(&self) -> Report {
        let rows = (0..self.targets.len())
            .map(|i| {
                let instance = &self.manifest.instances[i];
                let mut row = report::row(
                    instance,
                    &self.targets[i].desired,
                    &self.decisions[i],
                    self.store.state().instances.get(&instance.id),
                    self.applied_now[i],
                );
                if row.status == Status::Pending {
                    row.error_kind = Some("timeout".to_owned());
                    row.error = Some("not sent before --timeout ran out".to_owned());
                }
                row
            })
            .collect();
        Report::new(rows)
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `--reconcile`: converge once, waiting out throttles and retryable failures until `timeout`.
pub async fn reconcile(
    manifest: Manifest,
    dir: &StateDir,
    concurrency: usize,
    timeout: Duration,
) -> Result<Report, crate::Error> {
    let clock = Clock::start();
    let lock = dir.lock("avatar-sync --reconcile")?;
    let loaded = dir.load_for_write(&lock)?;
    let state = take_state(dir, loaded);
    let store = StateStore::new(dir.clone(), lock, state);
    let gateway = Gateway::new()?;
    let options = Options {
        concurrency,
        give_up_when_blocked: true,
    };
    let mut pass = Pass::new(Arc::new(manifest), store, gateway, clock, options);
    pass.run_until(clock.now() + timeout).await?;
    Ok(pass.report())
}

/// `--dry-run` and `--status`: plan from the recorded state, change nothing.
pub fn plan_only(manifest: &Manifest, dir: &StateDir) -> Result<Report, crate::Error> {
    let state = take_state(dir, dir.load()?);
    let targets = desired::compute(manifest);
    let now = SystemTime::now();
    let policy = Policy {
        min_interval: manifest.min_interval,
    };
    let rows = manifest
        .instances
        .iter()
        .zip(&targets)
        .map(|(instance, target)| {
            let record = state.instances.get(&instance.id);
            let decision = plan::decide(&target.desired, record, now, &policy);
            report::row(instance, &target.desired, &decision, record, false)
        })
        .collect();
    Ok(Report::new(rows))
}

/// The loaded state; an unreadable file is reported loudly and work goes on from empty.
pub fn take_state(dir: &StateDir, loaded: Loaded) -> State {
    if let Some(unreadable) = loaded.unreadable {
        match unreadable.moved_to {
            Some(aside) => tracing::error!(
                "the state file {} could not be read ({}); it was moved to {} and work goes on \
                 from empty state (pictures may be sent once more)",
                dir.state_file().display(),
                unreadable.reason,
                aside.display()
            ),
            None => tracing::error!(
                "the state file {} could not be read ({}); showing what empty state would mean",
                dir.state_file().display(),
                unreadable.reason
            ),
        }
    }
    loaded.state
}
