//! Recording what landed: each outcome becomes the instance's new record through one pure
//! transition of [`crate::plan::transition`], then the instance is planned again.

use super::Reconciler;
use super::apply::Landed;
use super::live::Look;
use crate::gateway::{Gateway, InstanceState};
use crate::manifest::{DriftMode, InstanceId};
use crate::outcome::{CallFailure, CallOutcome, FailureKind, LocalKind, LocalProblem};
use crate::picture::Digest;
use crate::plan::transition::{self, Polled, Sight};
use crate::report::ThisRun;
use std::sync::Arc;
use std::time::SystemTime;

impl<G: Gateway> Reconciler<G> {
    /// Records `landed` and plans its instance again, if it is still in the manifest.
    pub(super) fn on_landed(&mut self, landed: Landed) {
        let now = self.clock.now();
        let replan = match landed {
            Landed::Called {
                id,
                digest,
                credentials,
                outcome,
                finished_at,
                perceptual_hash,
            } => {
                let called = (digest, credentials.as_str(), &outcome, finished_at);
                self.called(&id, called, perceptual_hash)
            }
            Landed::Adopted {
                id,
                digest,
                url_avatar,
                at,
            } => {
                self.flight.over(&id);
                let previous = self.store.state().instances.get(&id);
                let record = transition::record_adopted(previous, digest, url_avatar, at);
                self.store.set(id.clone(), record);
                self.did_to(&id, Some(ThisRun::Adopted))
            }
            Landed::Polled { id, state, at } => self.polled(&id, state, at),
            Landed::Checked {
                id,
                digest,
                look,
                at,
            } => self.looked(&id, digest, look, at),
            Landed::Stale { id, digest } => self.not_sent(&id, digest),
        };
        if let Some(index) = replan {
            self.plan_one(index, now);
        }
    }

    /// An upload came back: `(digest, credentials, outcome, finished_at)`, and the upload's
    /// fingerprint when it was applied.
    fn called(
        &mut self,
        id: &InstanceId,
        (digest, credentials, outcome, finished_at): (Digest, &str, &CallOutcome, SystemTime),
        fingerprint: Option<Arc<str>>,
    ) -> Option<usize> {
        self.flight.over(id);
        self.uploads.sent(id);
        let applied = matches!(outcome, CallOutcome::Applied { .. });
        if let (Some(fingerprint), true) = (&fingerprint, applied) {
            self.uploads.remember(digest, Arc::clone(fingerprint));
        }
        // Before the record changes: a success after failures is a recovery.
        let failures_before = (self.store.state().instances.get(id))
            .and_then(|r| r.failure.as_ref())
            .map(|f| f.consecutive);
        let record = transition::record_outcome(
            self.store.state().instances.get(id),
            digest,
            credentials,
            outcome,
            finished_at,
            &self.table.policy(),
            self.jitter.draw(),
        );
        let record = match fingerprint.filter(|_| applied) {
            Some(fingerprint) => transition::record_fingerprint(record, digest, fingerprint),
            None => record,
        };
        if let CallOutcome::Failed(f) = outcome
            && f.kind == FailureKind::RefusedBytes
        {
            self.store.bytes_refused(id, digest);
        }
        let consecutive = record.failure.as_ref().map_or(0, |f| f.consecutive);
        self.store.set(id.clone(), record);
        self.tell_called(
            id,
            digest,
            outcome,
            (failures_before, consecutive),
            finished_at,
        );
        if applied && self.table.replaced(id) {
            tracing::info!(instance = %id, "replace: uploaded again");
        }
        self.did_to(id, applied.then_some(ThisRun::Applied))
    }

    /// A poll of a blocked instance's state came back.
    fn polled(
        &mut self,
        id: &InstanceId,
        state: Result<InstanceState, CallFailure>,
        at: SystemTime,
    ) -> Option<usize> {
        self.flight.over(id);
        let previous = self.store.state().instances.get(id)?;
        let record = match state {
            Ok(state) => {
                let polled = Polled {
                    state: state.label(),
                    authorized: state.is_authorized(),
                };
                if polled.authorized && previous.failure.is_some() {
                    tracing::info!(instance = %id, "the instance is authorized again: sending");
                }
                transition::record_polled(previous, polled, at)
            }
            Err(failure) => {
                tracing::debug!(instance = %id, "cannot poll its state: {}", failure.detail);
                previous.clone()
            }
        };
        self.store.set(id.clone(), record);
        self.table.index_of(id)
    }

    /// A look at the live picture came back, made while `digest` was the one to show.
    fn looked(
        &mut self,
        id: &InstanceId,
        digest: Digest,
        look: Look,
        at: SystemTime,
    ) -> Option<usize> {
        self.flight.over(id);
        if matches!(look, Look::Unknown { .. }) {
            self.read_back_unknown(id);
        }
        let drifted = self.record_look(id, digest, &look, at);
        let index = self.table.index_of(id);
        if self.options.observe_only {
            // `--drift` reports what it saw, recorded or not; it plans nothing more, but
            // a read GREEN-API asked to slow down (429) is tried again, later in the run.
            if let Some(index) = index {
                let slowed = matches!(&look, Look::Unknown { kind, .. }
                    if *kind == FailureKind::TooManyRequests.label());
                match self.schedule.retry_read(id).filter(|_| slowed) {
                    Some(wait) => {
                        tracing::debug!(instance = %id, "a read was answered 429; again in {wait:?}");
                        self.table.slots[index].look_at = Some(at + wait);
                        self.schedule.read_at(index, at + wait);
                    }
                    None => self.table.slots[index].seen = Some(look),
                }
            }
            return None;
        }
        let index = index.filter(|_| drifted.is_some())?;
        if drifted == Some(true) && self.table.manifest().instances[index].drift == DriftMode::Heal
        {
            // Sent again: the target needs the token an in-sync one did not.
            self.retarget(index);
        }
        Some(index)
    }

    /// Records what a look saw, when the record is the look's to change (the picture it
    /// compared with is the applied one); whether the instance is drifted now.
    fn record_look(
        &mut self,
        id: &InstanceId,
        digest: Digest,
        look: &Look,
        at: SystemTime,
    ) -> Option<bool> {
        let previous = self.store.state().instances.get(id)?;
        let sight = match look {
            Look::Matches(_) => Sight::Matches,
            Look::Differs(why) => Sight::Differs(why),
            Look::Unknown { .. } => Sight::Unknown,
        };
        // Something else was applied (meanwhile, or `--drift` compares with a picture
        // not applied yet): the record is not this look's to change.
        let record = transition::record_looked(previous, digest, sight, at)?;
        match (&previous.drifted, look) {
            (Some(_), Look::Matches(_)) => {
                tracing::info!(instance = %id, "the live picture is the desired one again");
            }
            (None, Look::Differs(why)) => {
                tracing::warn!(instance = %id, "the live picture drifted: {why}");
                self.tell_drifted(id, digest, why, at);
            }
            (_, Look::Unknown { why, .. }) => {
                tracing::debug!(instance = %id, "cannot look at the live picture: {why}");
            }
            _ => {}
        }
        let drifted = record.drifted.is_some();
        self.store.set(id.clone(), record);
        Some(drifted)
    }

    /// An upload found its prepared picture missing or damaged, and sent nothing.
    fn not_sent(&mut self, id: &InstanceId, digest: Digest) -> Option<usize> {
        // The start recorded for it did not happen.
        if let Some(before) = self.flight.over(id)
            && let Some(previous) = self.store.state().instances.get(id)
        {
            let record = transition::record_not_sent(previous, before);
            self.store.set(id.clone(), record);
        }
        // Prepare it again from its source, whatever the index says.
        let again = self.uploads.damaged(id, digest);
        let index = self.table.index_of(id)?;
        if again {
            // Prepared again and still not the planned bytes: something keeps damaging
            // the folder. Fail until the next pass rather than spin.
            let path = self.uploads.path(digest);
            let message = format!(
                "the prepared picture {} is damaged again after being prepared again",
                path.display()
            );
            self.fail(index, LocalProblem::new(LocalKind::StateWrite, message));
        } else {
            self.retarget(index);
        }
        Some(index)
    }

    /// Instance `id`'s place, having noted what this run did to it.
    fn did_to(&mut self, id: &InstanceId, this_run: Option<ThisRun>) -> Option<usize> {
        let index = self.table.index_of(id)?;
        if let Some(this_run) = this_run {
            self.did(index, this_run);
        }
        Some(index)
    }
}
