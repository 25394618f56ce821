//! The calls in flight: each a task of its own, at most one per instance, joined as they
//! land and abandoned at a stop that cannot wait. It keeps what a landing needs that the
//! task does not carry back: which instance a task that died was for, the prepared picture
//! each upload is sending (kept through a manifest change), and the `callStartedAt` each
//! upload replaced (put back when it turns out to send nothing).

use super::apply::Landed;
use crate::manifest::InstanceId;
use crate::picture::Digest;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::SystemTime;
use tokio::task::{AbortHandle, Id, JoinSet};

/// What came back from a task.
pub(crate) enum Joined {
    /// It finished.
    Landed(Landed),
    /// It died (it does not panic by design); its instance is free again.
    Died(InstanceId, String),
}

/// The calls and reads in flight.
#[derive(Default)]
pub(crate) struct Flight {
    tasks: JoinSet<Landed>,
    /// The instance of each task.
    ids: HashMap<Id, InstanceId>,
    /// Instances with a task in flight (they may have left the manifest meanwhile).
    busy: HashSet<InstanceId>,
    /// The prepared picture each upload in flight is sending.
    sending: HashMap<InstanceId, Digest>,
    /// The `callStartedAt` each upload in flight replaced.
    replaced: HashMap<InstanceId, Option<SystemTime>>,
    /// Instances with a read of live state in flight (not an upload), and how to stop it.
    reading: HashMap<InstanceId, AbortHandle>,
}

/// What a stop gave up in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Abandoned {
    /// Uploads: each may still reach GREEN-API.
    pub uploads: usize,
    /// Reads of live state: nothing is lost.
    pub reads: usize,
}

impl Flight {
    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// How many uploads are in flight.
    pub fn uploads(&self) -> usize {
        self.sending.len()
    }

    /// How many reads of live state are in flight.
    pub fn reads(&self) -> usize {
        self.reading.len()
    }

    /// Whether `id` has a task in flight.
    pub fn is_busy(&self, id: &InstanceId) -> bool {
        !self.busy.is_empty() && self.busy.contains(id)
    }

    /// The instances with an upload in flight.
    pub fn uploading(&self) -> impl Iterator<Item = &InstanceId> {
        self.sending.keys()
    }

    /// Whether `id` has an upload in flight.
    pub fn is_uploading(&self, id: &InstanceId) -> bool {
        self.sending.contains_key(id)
    }

    /// Claims `id` for a task about to start; `false` when it has one already.
    pub fn claim(&mut self, id: &InstanceId) -> bool {
        self.busy.insert(id.clone())
    }

    /// Starts the upload of `digest` to the claimed instance `id`, whose start replaced
    /// `replaced` as its `callStartedAt`.
    pub fn upload(
        &mut self,
        id: InstanceId,
        digest: Digest,
        replaced: Option<SystemTime>,
        task: impl Future<Output = Landed> + Send + 'static,
    ) {
        self.sending.insert(id.clone(), digest);
        self.replaced.insert(id.clone(), replaced);
        self.spawn(id, task);
    }

    /// Starts a read of the claimed instance `id`'s live state.
    pub fn read(&mut self, id: InstanceId, task: impl Future<Output = Landed> + Send + 'static) {
        let handle = self.spawn(id.clone(), task);
        self.reading.insert(id, handle);
    }

    fn spawn(
        &mut self,
        id: InstanceId,
        task: impl Future<Output = Landed> + Send + 'static,
    ) -> AbortHandle {
        let handle = self.tasks.spawn(task);
        self.ids.insert(handle.id(), id);
        handle
    }

    /// Stops the read of `id`'s live state in flight, if one is: an upload is due, and what
    /// the read would find no longer matters. `id` is free at once; the read never lands.
    pub fn stop_read(&mut self, id: &InstanceId) -> bool {
        let Some(handle) = self.reading.remove(id) else {
            return false;
        };
        handle.abort();
        self.ids.remove(&handle.id());
        self.busy.remove(id);
        true
    }

    /// The prepared pictures uploads in flight are sending.
    pub fn sending(&self) -> impl Iterator<Item = Digest> + '_ {
        self.sending.values().copied()
    }

    /// Waits for the next task to come back. Pending forever when none is in flight, so it
    /// can sit in a `select!`.
    pub async fn join_next(&mut self) -> Joined {
        loop {
            match self.tasks.join_next_with_id().await {
                Some(Ok((task, landed))) => {
                    self.ids.remove(&task);
                    return Joined::Landed(landed);
                }
                // A stopped read is not waited for.
                Some(Err(e)) => {
                    if let Some(id) = self.ids.remove(&e.id()) {
                        self.over(&id);
                        return Joined::Died(id, e.to_string());
                    }
                }
                None => return std::future::pending().await,
            }
        }
    }

    /// Frees `id` once its task came back; the `callStartedAt` its upload replaced, if it
    /// was an upload.
    pub fn over(&mut self, id: &InstanceId) -> Option<Option<SystemTime>> {
        self.busy.remove(id);
        self.sending.remove(id);
        self.reading.remove(id);
        self.replaced.remove(id)
    }

    /// Gives up on every task in flight; how many of each there were.
    pub fn abandon(&mut self) -> Abandoned {
        self.tasks.abort_all();
        let abandoned = Abandoned {
            uploads: self.sending.len(),
            reads: self.reading.len(),
        };
        self.ids.clear();
        self.sending.clear();
        self.reading.clear();
        self.replaced.clear();
        self.busy.clear();
        abandoned
    }
}
