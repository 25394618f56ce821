//! The engine, shared by every mode: desired state, plan, start the due calls and reads
//! concurrently, record each as it lands, re-plan that instance, repeat.
//!
//! Instances never wait for each other: a call in flight, a throttle or a backoff of one
//! instance holds back only that instance. The rooms, each with one job:
//!
//! - [`table`]: one slot per instance of the manifest in force, and their counts;
//! - [`schedule`]: who is due now, and a timer heap of who waits (so a pass costs
//!   `O(n log n)` however many calls it makes);
//! - [`flight`]: the calls and reads in flight;
//! - `passes`, `dispatch`, `landing`: planning, starting and recording, each record change
//!   through [`crate::plan::transition`].
//!
//! Every mode drives it through a small surface: [`Reconciler::step`] does what is due,
//! [`Reconciler::wake_at`] says when that is next, [`Reconciler::wait`] sleeps until then
//! or until a call lands. `--reconcile` and `--drift` add a deadline ([`Reconciler::run_until`]);
//! the daemon adds its event sources and hands it new manifests as they come.

pub(crate) mod apply;
mod dispatch;
pub(crate) mod flight;
mod gates;
mod landing;
pub(crate) mod live;
mod passes;
pub(crate) mod schedule;
mod table;
pub(crate) mod target;
mod tell;
mod uploads;

pub use table::Rows;

use crate::clock::{Clock, Jitter};
use crate::gateway::Gateway;
use crate::manifest::Manifest;
use crate::metrics::Metrics;
use crate::picture::caches::Caches;
use crate::report::{self, Report, ReportKind};
use crate::state::{StateError, StateStore};
use flight::{Flight, Joined};
use schedule::Schedule;
use std::sync::Arc;
use std::time::SystemTime;
use table::{Index, Table};
use uploads::Uploads;

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
    /// `--drift`: read every instance's live picture once, compare it with the desired
    /// one, record what was seen, and send nothing.
    pub observe_only: bool,
    /// Wait for a change window to open (the daemon); one-shot runs end instead, saying
    /// when it opens.
    pub wait_for_windows: bool,
}

#[cfg(test)]
impl Options {
    /// A one-shot run's options (`--reconcile`) with `concurrency`, pictures taken at
    /// once: what the engine's tests start from.
    pub(crate) fn one_shot(concurrency: usize) -> Self {
        Self {
            concurrency,
            give_up_when_blocked: true,
            settle: std::time::Duration::ZERO,
            live_reads: false,
            observe_only: false,
            wait_for_windows: false,
        }
    }
}

/// What ended a [`Reconciler::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// A call or read landed and was recorded.
    Landed,
    /// A wait ended, a read came due or a save is due: time for a [`Reconciler::step`].
    Due,
    /// Pictures that were still being written are to be looked at again.
    Recheck,
}

/// Drives instances towards their desired pictures, calling GREEN-API through `G`.
pub(crate) struct Reconciler<G> {
    options: Options,
    gateway: G,
    clock: Clock,
    jitter: Jitter,
    metrics: Arc<Metrics>,
    store: StateStore,
    uploads: Uploads,
    table: Table,
    schedule: Schedule,
    flight: Flight,
    /// When to look again at pictures that were still being written.
    recheck_at: Option<SystemTime>,
    /// The rollout in force and the change windows.
    gates: gates::Gates,
    /// Where events go to be told to the receivers of `notify:`, when anyone listens.
    notices: Option<crate::notify::Notices>,
}

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
        // Observing prepares pictures in memory, as `--check` does: it may run beside the
        // state directory's writer.
        let mut caches = match options.observe_only {
            true => Caches::in_memory(store.dir().path()),
            false => Caches::writer(store.dir().path()),
        };
        caches.hashes.require_settled(options.settle);
        let store_dir = store.dir().path().to_owned();
        let mut reconciler = Self {
            options,
            gateway,
            clock,
            jitter,
            metrics: Arc::default(),
            store,
            uploads: Uploads::new(caches),
            table: Table::new(Index::of(&manifest, options.live_reads)),
            schedule: Schedule::default(),
            flight: Flight::default(),
            recheck_at: None,
            gates: gates::Gates::new(store_dir, options.wait_for_windows),
            notices: None,
        };
        reconciler.set_manifest(manifest);
        reconciler
    }

    /// What the reconciler counts (requests, passes), for `/metrics`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The clock the reconciler reads.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The manifest in force.
    pub fn manifest(&self) -> &Arc<Manifest> {
        self.table.manifest()
    }

    /// Whether the manifest in force has instance `id`.
    pub fn has_instance(&self, id: &crate::manifest::InstanceId) -> bool {
        self.table.index_of(id).is_some()
    }

    /// The state directory it writes.
    pub fn state_dir(&self) -> &crate::state::StateDir {
        self.store.dir()
    }

    /// Does what is due now: instances whose wait is over are planned again, reads whose
    /// time has come are queued, and, when `start`, due calls (then reads) start while
    /// fewer than `concurrency` are in flight.
    pub fn step(&mut self, start: bool) {
        self.open_gates(self.clock.now());
        self.fire_timers(self.clock.now());
        if start {
            self.dispatch();
        }
    }

    /// When the next [`Self::step`] is needed (on tokio's clock), if anything waits: a wait
    /// that ends or a read that comes, a recheck of pictures being written, a batched
    /// save. With `until` (a one-shot run's deadline), waits and reads after it, or any
    /// once it has passed, do not count.
    pub fn wake_at(&self, until: Option<SystemTime>) -> Option<tokio::time::Instant> {
        let now = self.clock.now();
        let timer = (self.schedule.next_at())
            .filter(|&at| until.is_none_or(|until| now < until && at <= until));
        // Work queued that cannot start before the deadline (calls held back) ends the
        // run at the deadline.
        let deadline = until.filter(|&until| now < until && self.schedule.queued());
        let gates = self.gates.wake_at(until.filter(|&until| now < until));
        [timer, self.recheck_before(until), deadline, gates]
            .into_iter()
            .flatten()
            .map(|at| self.clock.instant_at(at))
            .chain(self.store.save_due_at())
            .min()
    }

    /// Waits until a call or read lands (and records it) or [`Self::wake_at`] comes.
    pub async fn wait(&mut self, until: Option<SystemTime>) -> Woke {
        let wake = self.wake_at(until);
        tokio::select! {
            () = self.land_next() => Woke::Landed,
            () = sleep_until_opt(wake) => {
                match self.recheck_before(until) {
                    Some(at) if at <= self.clock.now() => Woke::Recheck,
                    _ => Woke::Due,
                }
            }
        }
    }

    /// Waits for the next call or read to land and records it. Pending forever when none
    /// is in flight, so it can sit in a `select!`.
    pub async fn land_next(&mut self) {
        match self.flight.join_next().await {
            Joined::Landed(landed) => self.on_landed(landed),
            Joined::Died(id, why) => {
                // Free to be planned again at the next pass.
                tracing::error!(instance = %id, "internal error during a call: {why}");
            }
        }
    }

    /// Runs until every instance is settled or only waits beyond `deadline` remain.
    /// No call starts after the deadline; calls in flight then are let finish.
    pub async fn run_until(&mut self, deadline: SystemTime) -> Result<(), StateError> {
        let mut told = false;
        loop {
            self.step(self.clock.now() < deadline);
            if self.settled_by(deadline) {
                break;
            }
            if !told && self.flight.is_empty() {
                told = self.tell_waiting(deadline);
            }
            if self.wait(Some(deadline)).await == Woke::Recheck {
                self.recheck();
            }
            self.store.save_if_due()?;
        }
        self.store.save()
    }

    /// Says once, on stderr, what a run sits waiting for and until when (as Terraform says
    /// "Still creating..."), when nothing is in flight and the wait is a second or more;
    /// whether it said so.
    fn tell_waiting(&self, deadline: SystemTime) -> bool {
        let now = self.clock.now();
        let Some(until) = self.schedule.next_at().filter(|&at| at <= deadline) else {
            return false;
        };
        let Ok(wait) = until.duration_since(now) else {
            return false;
        };
        if wait < std::time::Duration::from_secs(1) {
            return false;
        }
        let s = self.table.summary();
        let waiting = s.throttled + s.unreachable + s.pending;
        let message = format!(
            "waiting until {} ({} from now) to try {waiting} instance(s) again ({} unreachable, \
             {} throttled); --timeout ends the run at {}",
            crate::clock::rfc3339(until),
            crate::clock::human_duration(std::time::Duration::from_secs(wait.as_secs())),
            s.unreachable,
            s.throttled,
            crate::clock::rfc3339(deadline),
        );
        // A warning when instances wait: one-shot modes log from warn, and a run that sits
        // silent for minutes looks hung. A read's one-second spacing is routine (info).
        if waiting > 0 {
            tracing::warn!(
                throttled = s.throttled,
                unreachable = s.unreachable,
                "{message}"
            );
        } else {
            tracing::info!(
                throttled = s.throttled,
                unreachable = s.unreachable,
                "{message}"
            );
        }
        true
    }

    /// Whether nothing is left to do before `deadline`: nothing in flight, nothing due (or
    /// the deadline passed), no wait or recheck that ends by then.
    fn settled_by(&self, deadline: SystemTime) -> bool {
        let now = self.clock.now();
        self.flight.is_empty()
            && (!self.schedule.queued() || now >= deadline)
            && self.schedule.next_at().is_none_or(|at| at > deadline)
            && self.recheck_before(Some(deadline)).is_none()
            && (now >= deadline || self.gates.wake_at(Some(deadline)).is_none())
    }

    fn recheck_before(&self, until: Option<SystemTime>) -> Option<SystemTime> {
        self.recheck_at
            .filter(|&at| until.is_none_or(|until| at <= until))
    }

    /// Whether a call or read is in flight.
    pub fn has_in_flight(&self) -> bool {
        !self.flight.is_empty()
    }

    /// Whether calls are due now but wait for a free slot.
    pub fn has_queued(&self) -> bool {
        self.schedule.calls_queued()
    }

    /// Whether an upload is in flight (a stop waits for those, not for reads).
    pub fn has_uploads_in_flight(&self) -> bool {
        self.flight.uploads() > 0
    }

    /// Gives up on the calls and reads still in flight (a stop that cannot wait longer).
    /// Each upload may still reach GREEN-API: its record keeps the call's start
    /// (`callStartedAt`), so the throttle holds across the restart; the picture is sent
    /// again later. A read given up loses nothing. Returns how many of each were given up.
    pub fn abandon_in_flight(&mut self) -> flight::Abandoned {
        self.flight.abandon()
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

    /// The rollout in progress, for `/metrics`: its wave (from 1) and whether it halted.
    pub fn rollout_metrics(&self) -> Option<(usize, bool)> {
        self.gates.metrics()
    }

    /// How many instances are in each status, without building the report.
    pub fn summary(&self) -> report::Summary {
        self.table.summary()
    }

    /// What `--drift` saw of each instance.
    pub fn observed(&self) -> Report {
        self.table.observed(self.store.state())
    }

    /// Where every instance stands now. `Due` instances are reported `pending`.
    pub fn report(&self) -> Report {
        self.report_rows(Rows::All)
    }

    /// [`Self::report`], with a row for each instance (`Rows::All`) or only for those the
    /// table lists (`Rows::Listed`); the summary counts them all.
    pub fn report_rows(&self, rows: Rows) -> Report {
        let mut report = (self.table).report(self.store.state(), rows, ReportKind::Reconcile);
        report.rollout = self.gates.view();
        report.window = self.gates.window_view();
        report
    }

    /// Ends the run: the state directory is released, and what is sized by the fleet (the
    /// records, the manifest, the plan) is handed back to be freed aside
    /// ([`crate::usage::free_aside`]).
    pub fn close(self) -> impl Send + 'static {
        (self.store.close(), self.table.into_parts())
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
pub(crate) async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod gates_tests;
#[cfg(test)]
mod notify_tests;
#[cfg(test)]
mod tests;
