//! Recording what landed: each outcome becomes the instance's new record through one pure
//! transition of [`crate::plan::transition`], then the instance is planned again.

use super::Reconciler;
use super::apply::Landed;
use super::live::Look;
use crate::gateway::Gateway;
use crate::manifest::{DriftMode, InstanceId};
use crate::outcome::{CallOutcome, FailureKind, LocalKind, LocalProblem};
use crate::plan::transition::{self, Polled, Sight};
use crate::report::ThisRun;

impl<G: Gateway> Reconciler<G> {
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
                self.flight.over(&id);
                self.uploads.sent(&id);
                if let (Some(hash), CallOutcome::Applied { .. }) = (&perceptual_hash, &outcome) {
                    self.uploads.remember(digest, hash.clone());
                }
                let record = transition::record_call(
                    self.store.state().instances.get(&id),
                    digest,
                    &credentials,
                    &outcome,
                    finished_at,
                    &self.table.policy(),
                    self.jitter.draw(),
                    perceptual_hash,
                );
                if let CallOutcome::Failed(f) = &outcome
                    && f.kind == FailureKind::RefusedBytes
                {
                    self.store.bytes_refused(&id, digest);
                }
                self.store.set(id.clone(), record);
                let applied = matches!(outcome, CallOutcome::Applied { .. });
                self.did_to(&id, applied.then_some(ThisRun::Applied))
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
            Landed::Polled { id, state, at } => {
                self.flight.over(&id);
                let Some(previous) = self.store.state().instances.get(&id) else {
                    return;
                };
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
                self.table.index_of(&id)
            }
            Landed::Checked {
                id,
                digest,
                look,
                at,
            } => {
                self.flight.over(&id);
                let Some(previous) = self.store.state().instances.get(&id) else {
                    if let Some(index) = self.table.index_of(&id) {
                        self.table.slots[index].seen = Some(look);
                    }
                    return;
                };
                let sight = match &look {
                    Look::Matches(_) => Sight::Matches,
                    Look::Differs(why) => Sight::Differs(why),
                    Look::Unknown { .. } => Sight::Unknown,
                };
                // Something else was applied (meanwhile, or `--drift` compares with a
                // picture not applied yet): the record is not this look's to change.
                let Some(record) = transition::record_looked(previous, digest, sight, at) else {
                    if self.options.observe_only
                        && let Some(index) = self.table.index_of(&id)
                    {
                        self.table.slots[index].seen = Some(look);
                    }
                    return;
                };
                match (&previous.drifted, &look) {
                    (Some(_), Look::Matches(_)) => {
                        tracing::info!(instance = %id, "the live picture is the desired one again");
                    }
                    (None, Look::Differs(why)) => {
                        tracing::warn!(instance = %id, "the live picture drifted: {why}");
                    }
                    (_, Look::Unknown { why, .. }) => {
                        tracing::debug!(instance = %id, "cannot look at the live picture: {why}");
                    }
                    _ => {}
                }
                let healing = record.drifted.is_some();
                self.store.set(id.clone(), record);
                let index = self.table.index_of(&id);
                if self.options.observe_only {
                    if let Some(index) = index {
                        self.table.slots[index].seen = Some(look);
                    }
                    return;
                }
                if let Some(index) = index
                    && healing
                    && self.table.manifest().instances[index].drift == DriftMode::Heal
                {
                    // Sent again: the target needs the token an in-sync one did not.
                    self.retarget(index);
                }
                index
            }
            Landed::Stale { id, digest } => {
                // Nothing was sent: the start recorded for it did not happen.
                if let Some(before) = self.flight.over(&id)
                    && let Some(previous) = self.store.state().instances.get(&id)
                {
                    let record = transition::record_not_sent(previous, before);
                    self.store.set(id.clone(), record);
                }
                // Prepare it again from its source, whatever the index says.
                let again = self.uploads.damaged(&id, digest);
                let index = self.table.index_of(&id);
                match index {
                    // Prepared again and still not the planned bytes: something keeps
                    // damaging the folder. Fail until the next pass rather than spin.
                    Some(index) if again => self.fail(
                        index,
                        LocalProblem::new(
                            LocalKind::StateWrite,
                            format!(
                                "the prepared picture {} is damaged again after being prepared again",
                                self.uploads.path(digest).display()
                            ),
                        ),
                    ),
                    Some(index) => self.retarget(index),
                    None => {}
                }
                index
            }
        };
        if let Some(index) = replan {
            self.plan_one(index, now);
        }
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
