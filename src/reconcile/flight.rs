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
use tokio::task::{Id, JoinSet};

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
}

impl Flight {
    /// How many tasks are in flight.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Whether `id` has a task in flight.
    pub fn is_busy(&self, id: &InstanceId) -> bool {
        !self.busy.is_empty() && self.busy.contains(id)
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
        self.read(id, task);
    }

    /// Starts a read of the claimed instance `id`'s live state.
    pub fn read(&mut self, id: InstanceId, task: impl Future<Output = Landed> + Send + 'static) {
        let handle = self.tasks.spawn(task);
        self.ids.insert(handle.id(), id);
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
        self.replaced.remove(id)
    }

    /// Gives up on every task in flight; how many there were.
    pub fn abandon(&mut self) -> usize {
        self.tasks.abort_all();
        self.ids.clear();
        self.sending.clear();
        self.replaced.clear();
        let abandoned = self.busy.len();
        self.busy.clear();
        abandoned
    }
}
