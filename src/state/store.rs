//! The writer's view of the state: the lock, the records in memory, and batched saves.

use super::dir::{StateDir, StateError, StateLock};
use super::journal::Journal;
use super::schema::{InstanceRecord, State};
use crate::manifest::InstanceId;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Least time between two saves while outcomes keep landing.
pub(crate) const SAVE_INTERVAL: Duration = Duration::from_millis(250);
/// Least time between two attempts while saves fail (a full disk, a read-only folder):
/// retried, not spun on.
pub(crate) const SAVE_RETRY: Duration = Duration::from_secs(5);

/// The writer's view of the state: holds the lock and the state, and saves changes in
/// batches (at most one save per [`SAVE_INTERVAL`] while outcomes keep landing).
#[derive(Debug)]
pub(crate) struct StateStore {
    dir: StateDir,
    lock: StateLock,
    state: State,
    dirty: bool,
    /// When the last save was attempted.
    last_save: Option<Instant>,
    /// Whether that attempt failed.
    failing: bool,
    /// Calls started since the last save.
    journal: Journal,
}

impl StateStore {
    /// Wraps a locked directory and its loaded state.
    pub fn new(dir: StateDir, lock: StateLock, state: State) -> Self {
        Self {
            journal: Journal::new(dir.path()),
            dir,
            lock,
            state,
            dirty: false,
            last_save: None,
            failing: false,
        }
    }

    /// The state as it stands in memory.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state directory this store writes.
    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    /// Replaces an instance's record; it reaches disk with the next save.
    pub fn set(&mut self, id: InstanceId, record: InstanceRecord) {
        self.state.instances.insert(id, record);
        self.dirty = true;
    }

    /// Records that calls of `ids` start at `at`, before they start: in the records
    /// (`callStartedAt`) and, at once, in the calls journal, so the throttle holds even if
    /// the process is killed before the next save.
    pub fn calls_started(&mut self, ids: &[InstanceId], at: SystemTime) {
        for id in ids {
            let record = self.state.instances.entry(id.clone()).or_default();
            record.call_started_at = Some(at);
        }
        self.dirty = true;
        if let Err(e) = self.journal.started(ids, at) {
            tracing::error!(
                "cannot append to the calls journal in {}: {e} (a crash before the next \
                 save could forget these calls' times)",
                self.dir.path().display()
            );
        }
    }

    /// Records at once (in the calls journal) that the gateway refused `digest` for `id`,
    /// so that it is never sent again, even if the process is killed before the next save.
    /// The record itself comes with [`Self::set`].
    pub fn bytes_refused(&mut self, id: &InstanceId, digest: crate::picture::Digest) {
        if let Err(e) = self.journal.refused(id, digest) {
            tracing::error!("cannot append to the calls journal: {e}");
        }
    }

    /// When the next batched save is due, if anything is waiting to be saved.
    pub fn save_due_at(&self) -> Option<Instant> {
        let wait = if self.failing {
            SAVE_RETRY
        } else {
            SAVE_INTERVAL
        };
        self.dirty
            .then(|| self.last_save.map_or_else(Instant::now, |at| at + wait))
    }

    /// Whether the last save failed (and nothing has been saved since).
    pub fn save_failing(&self) -> bool {
        self.failing
    }

    /// Saves if something changed and the last save is at least [`SAVE_INTERVAL`] old
    /// ([`SAVE_RETRY`] after a failed one).
    pub fn save_if_due(&mut self) -> Result<(), StateError> {
        match self.save_due_at() {
            Some(at) if at <= Instant::now() => self.save(),
            _ => Ok(()),
        }
    }

    /// Saves now if anything changed.
    pub fn save(&mut self) -> Result<(), StateError> {
        if self.dirty {
            self.last_save = Some(Instant::now());
            let saved = self.dir.save(&self.lock, &self.state);
            self.failing = saved.is_err();
            saved?;
            self.dirty = false;
            if let Err(e) = self.journal.clear() {
                tracing::warn!("cannot empty the calls journal: {e}");
            }
        }
        Ok(())
    }
}
