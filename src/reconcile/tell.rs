//! The engine's events for the notifier: made from what landing records, handed to
//! [`crate::notify::Notices`] (which never waits), and nothing more. Whether anyone is told
//! is the notifier's to decide.

use super::Reconciler;
use crate::gateway::Gateway;
use crate::manifest::InstanceId;
use crate::notify::{Event, EventKind, Notices, Subject};
use crate::outcome::CallOutcome;
use crate::picture::Digest;
use std::path::{Component, Path};
use std::time::SystemTime;

impl<G: Gateway> Reconciler<G> {
    /// Sends events to `notices` from now on (and the manifest's receivers to it).
    pub(crate) fn notify_to(&mut self, notices: Notices) {
        notices.set_receivers(&self.manifest().notify);
        self.notices = Some(notices);
    }

    /// Stops sending events (a one-shot run's end); the handle it held, if any.
    pub(crate) fn stop_notifying(&mut self) -> Option<Notices> {
        self.notices.take()
    }

    /// Whether events are told to anyone (the manifest has receivers).
    pub(crate) fn notifies(&self) -> bool {
        self.notices.is_some() && !self.manifest().notify.is_empty()
    }

    /// The revision (commit id) messages name from now on.
    pub(crate) fn set_revision(&self, commit: Option<String>) {
        if let Some(notices) = &self.notices {
            notices.set_revision(commit);
        }
    }

    /// An upload of `desired` landed with `outcome`; `(before, now)` are the failures in
    /// a row before it and with it.
    pub(super) fn tell_called(
        &self,
        id: &InstanceId,
        desired: Digest,
        outcome: &CallOutcome,
        (before, now): (Option<u32>, u32),
        at: SystemTime,
    ) {
        let Some(notices) = &self.notices else { return };
        let subject = self.subject(id, desired);
        match outcome {
            CallOutcome::Applied { .. } => {
                if let Some(failures) = before {
                    let kind = EventKind::Recovered {
                        subject: subject.clone(),
                        failures,
                    };
                    notices.tell(Event { at, kind });
                }
                let kind = EventKind::Applied(subject);
                notices.tell(Event { at, kind });
            }
            CallOutcome::Failed(failure) => {
                let kind = EventKind::Failed {
                    subject,
                    outcome: failure.kind.label(),
                    detail: failure.detail.clone(),
                    consecutive: now,
                };
                notices.tell(Event { at, kind });
            }
        }
    }

    /// A look found the live picture of `id` is not `desired`'s.
    pub(super) fn tell_drifted(&self, id: &InstanceId, desired: Digest, why: &str, at: SystemTime) {
        let Some(notices) = &self.notices else { return };
        let kind = EventKind::Drifted {
            subject: self.subject(id, desired),
            why: why.to_owned(),
        };
        notices.tell(Event { at, kind });
    }

    /// A rollout halted, or one of its waves landed.
    pub(super) fn tell_rollout(&self, kind: EventKind, at: SystemTime) {
        if let Some(notices) = &self.notices {
            notices.tell(Event { at, kind });
        }
    }

    /// Instance `id` and its pictures, as a message may name them.
    fn subject(&self, id: &InstanceId, desired: Digest) -> Subject {
        let applied = (self.store.state().instances.get(id))
            .and_then(|r| r.applied.as_ref())
            .map(|a| a.sha256);
        let picture = (self.table.index_of(id))
            .map(|index| {
                self.table.manifest().instances[index]
                    .picture
                    .written
                    .as_str()
            })
            .filter(|written| inside_the_manifest_folder(written))
            .map(str::to_owned);
        Subject {
            id: id.clone(),
            desired,
            applied,
            picture,
        }
    }
}

/// Whether `written` (a picture as the manifest writes it) names a file inside the
/// manifest's folder: relative, no `..`, no `${NAME}` (which could expand to anything).
fn inside_the_manifest_folder(written: &str) -> bool {
    !written.contains("${")
        && Path::new(written)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}
