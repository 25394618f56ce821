//! The writer's view of the state: the lock, the records in memory, and batched saves.

use super::changes::{Changes, FOLD_AT_LEAST};
use super::dir::{Loaded, StateDir, StateError, StateLock};
use super::journal::Journal;
use super::schema::{InstanceRecord, State};
use crate::manifest::InstanceId;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Least time between two saves while outcomes keep landing.
pub(crate) const SAVE_INTERVAL: Duration = Duration::from_millis(250);
/// Least time between two attempts while saves fail (a full disk, a read-only folder):
/// retried, not spun on.
pub(crate) const SAVE_RETRY: Duration = Duration::from_secs(5);

/// The writer's view of the state: holds the lock and the state, and saves changes in
/// batches (at most one save per [`SAVE_INTERVAL`] while outcomes keep landing). A save
/// appends the changed records to the changes file; once that outgrows the state file, the
/// save writes the whole state instead (a "fold").
#[derive(Debug)]
pub(crate) struct StateStore {
    dir: StateDir,
    /// The writer's lock; `None` for a store that records nothing (another process holds
    /// the lock): its saves write nothing.
    lock: Option<StateLock>,
    state: State,
    /// Instances whose records changed since the last save.
    dirty: HashSet<InstanceId>,
    /// The next save writes the whole state (changes were loaded, or an older format).
    fold_next: bool,
    /// The state file's size as last read or written.
    state_len: u64,
    /// Records changed since the state file was written.
    changes: Changes,
    /// When the last save was attempted.
    last_save: Option<Instant>,
    /// Whether that attempt failed.
    failing: bool,
    /// Calls started since the last save.
    journal: Journal,
    /// Saves written so far, and the CPU time they took.
    saves: SaveCost,
}

/// What the saves of a run cost: their number and CPU time (wall time where the kernel does
/// not tell a thread's CPU time; a save is synchronous, so that is an upper bound).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SaveCost {
    /// Saves attempted.
    pub count: u32,
    /// Their CPU time.
    pub cpu: Duration,
}

impl StateStore {
    /// Wraps a locked directory and its loaded state. Changes found on disk (perhaps with a
    /// torn last line) and a state file of an older format are folded into a new state
    /// file at once, before anything else happens.
    pub fn new(dir: StateDir, lock: StateLock, loaded: Loaded) -> Result<Self, StateError> {
        let mut store = Self::over(dir, Some(lock), loaded);
        if store.fold_next && store.dir.state_file().exists() {
            store.fold()?;
        }
        Ok(store)
    }

    /// A store over `loaded` that records nothing: changes are kept in memory for this run
    /// and never written (`--drift` beside a daemon that holds the lock).
    pub fn unlocked(dir: StateDir, loaded: Loaded) -> Self {
        Self::over(dir, None, loaded)
    }

    /// The store of `dir` over `loaded`; a writer (`lock`) folds what `loaded` needs folded.
    fn over(dir: StateDir, lock: Option<StateLock>, loaded: Loaded) -> Self {
        let fold_next = lock.is_some() && loaded.needs_fold;
        let state_len = loaded.state_len;
        let state = loaded.take(&dir);
        Self {
            journal: Journal::new(dir.path()),
            changes: Changes::new(dir.path()),
            dir,
            lock,
            state,
            dirty: HashSet::new(),
            fold_next,
            state_len,
            last_save: None,
            failing: false,
            saves: SaveCost::default(),
        }
    }

    /// Releases the lock and hands back the records (for [`crate::usage::free_aside`]: at
    /// fleet size, freeing them takes longer than a no-op run's planning).
    pub fn close(self) -> State {
        drop(self.lock);
        self.state
    }

    /// What the saves so far cost.
    pub fn save_cost(&self) -> SaveCost {
        self.saves
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
        self.dirty.insert(id.clone());
        self.state.instances.insert(id, record);
    }

    /// Records that calls of `ids` start at `at`, before they start: first, at once, in the
    /// calls journal, so the throttle holds even if the process is killed before the next
    /// save; then in the records (`callStartedAt`). When the journal cannot be written,
    /// nothing is recorded and the calls must not start (a restart would send them again).
    pub fn calls_started(&mut self, ids: &[InstanceId], at: SystemTime) -> Result<(), StateError> {
        if self.lock.is_some() {
            self.journal
                .started(ids, at)
                .map_err(|source| StateError::Write {
                    path: self.dir.path().join(super::journal::JOURNAL_FILE),
                    source,
                })?;
        }
        for id in ids {
            let record = self.state.instances.entry(id.clone()).or_default();
            record.call_started_at = Some(at);
            self.dirty.insert(id.clone());
        }
        Ok(())
    }

    /// Records at once (in the calls journal) that the gateway refused `digest` for `id`,
    /// so that it is never sent again, even if the process is killed before the next save.
    /// The record itself comes with [`Self::set`].
    pub fn bytes_refused(&mut self, id: &InstanceId, digest: crate::picture::Digest) {
        if self.lock.is_some()
            && let Err(e) = self.journal.refused(id, digest)
        {
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
        (!self.dirty.is_empty()).then(|| self.last_save.map_or_else(Instant::now, |at| at + wait))
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

    /// Saves now if anything changed: appends the changed records, or writes the whole
    /// state once the changes have outgrown the state file.
    pub fn save(&mut self) -> Result<(), StateError> {
        if self.lock.is_none() {
            self.dirty.clear();
        }
        if self.dirty.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let cpu_before = crate::usage::thread_cpu();
        self.last_save = Some(started);
        let saved = if self.fold_next || self.changes.len() > self.state_len.max(FOLD_AT_LEAST) {
            self.fold()
        } else {
            (self.changes.append(&self.state, &self.dirty)).map_err(|source| StateError::Write {
                path: self.changes.path().to_owned(),
                source,
            })
        };
        let cpu = match (cpu_before, crate::usage::thread_cpu()) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => started.elapsed(),
        };
        self.saves.count += 1;
        self.saves.cpu += cpu;
        self.failing = saved.is_err();
        saved?;
        self.dirty.clear();
        if let Err(e) = self.journal.clear() {
            tracing::warn!("cannot empty the calls journal: {e}");
        }
        Ok(())
    }

    /// Writes the whole state to the state file, then empties the changes file.
    fn fold(&mut self) -> Result<(), StateError> {
        let Some(lock) = &self.lock else {
            return Ok(());
        };
        self.state_len = self.dir.save(lock, &self.state)?;
        self.fold_next = false;
        if let Err(e) = self.changes.clear() {
            // Left behind, the changes replay records the state file already holds.
            tracing::warn!("cannot remove the folded changes file: {e}");
        }
        Ok(())
    }
}
