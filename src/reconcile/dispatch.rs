//! Starting what is due: uploads, while fewer than `concurrency` are in flight; then
//! reads of live state, within their own [`READ_BUDGET`], so a read endpoint that hangs
//! never holds back an upload. Each upload's start is recorded (and journaled) before any
//! of them is sent.

use super::Reconciler;
use super::apply::{self, Call, Landed};
use super::live::Look;
use crate::gateway::Gateway;
use crate::manifest::{ApiToken, Gate, InstanceId, TokenError};
use crate::outcome::LocalKind;
use crate::picture::process;
use crate::plan::{Decision, Desired};
use crate::state::SAVE_RETRY;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

/// The most reads of live state in flight at once beside the uploads (drift looks and
/// polls are spread over hours; two keep up with a fleet of 100,000 at one a second each).
/// `--drift`, whose job is reading, reads up to `--concurrency` at once instead.
pub(crate) const READ_BUDGET: usize = 2;

impl<G: Gateway> Reconciler<G> {
    /// Starts due calls while fewer than `concurrency` uploads are in flight, then due
    /// reads within theirs.
    pub(super) fn dispatch(&mut self) {
        let now = self.clock.now();
        let mut starting: Vec<(InstanceId, Call)> = Vec::new();
        while self.flight.uploads() + starting.len() < self.options.concurrency {
            let Some(index) = self.schedule.next_call(now) else {
                break;
            };
            if let Some(call) = self.call_for(index, now) {
                starting.push(call);
            }
        }
        self.dispatch_reads();
        if starting.is_empty() {
            return;
        }
        let replaced: Vec<_> = (starting.iter())
            .map(|(id, _)| self.store.state().instances.get(id))
            .map(|record| record.and_then(|r| r.call_started_at))
            .collect();
        let ids: Vec<InstanceId> = starting.iter().map(|(id, _)| id.clone()).collect();
        if let Err(e) = self.store.calls_started(&ids, now) {
            // Sent without its journal line, a call a crash interrupts would be sent again
            // at the next start, inside the throttle: none starts until the line is written.
            tracing::error!(
                kind = e.label(),
                "{e}; no call starts until the calls journal can be written (trying again in {})",
                crate::clock::human_duration(SAVE_RETRY)
            );
            for (id, call) in starting.iter().rev() {
                self.flight.over(id);
                self.schedule.hold_calls(call.index, now + SAVE_RETRY);
            }
            return;
        }
        for (id, call) in &starting {
            if call.adopt {
                self.read_starts(id, now);
            }
        }
        for ((id, call), replaced) in starting.into_iter().zip(replaced) {
            let digest = call.digest;
            let send = apply::send(call, self.gateway.clone(), self.clock, self.metrics.clone());
            self.flight.upload(id, digest, replaced, send);
        }
    }

    /// The upload instance `index` is due for at `now`, its instance claimed; `None` when it
    /// can no longer be made (re-planned meanwhile, held by a window, or already in flight).
    fn call_for(&mut self, index: usize, now: SystemTime) -> Option<(InstanceId, Call)> {
        let Decision::Due { digest } = self.table.slots[index].decision else {
            return None;
        };
        // A change window that closed since it was planned holds it (worked out once for
        // all the calls a dispatch starts: they share `now`).
        let manifest = Arc::clone(self.table.manifest());
        if let Gate::Closed { .. } = self.gates.window_gate(&manifest.windows, now) {
            self.plan_one(index, now);
            return None;
        }
        let instance = &manifest.instances[index];
        let target = &self.table.slots[index].target;
        let (
            Some(token),
            Ok(path),
            Desired::Picture {
                credentials: Some(credentials),
                ..
            },
        ) = (&target.token, &instance.picture.path, &target.desired)
        else {
            return None;
        };
        // A look in flight at this instance is moot now: the upload goes first.
        if self.flight.stop_read(&instance.id) {
            tracing::debug!(instance = %instance.id, "a read in flight was stopped for an upload");
        }
        if !self.flight.claim(&instance.id) {
            return None;
        }
        // A replace is an upload, never an adoption. A call whose answer was never
        // recorded (the process was killed while it was in flight) may have landed: the
        // live picture is looked at first, so it is not uploaded twice.
        let record = self.store.state().instances.get(&instance.id);
        let unknown = record.is_none_or(|r| r.call_started_at.is_some())
            && !self.table.replacing(&instance.id);
        let call = Call {
            manifest: Arc::clone(&manifest),
            index,
            path: self.uploads.path(digest),
            filename: apply::upload_filename(path),
            digest,
            credentials: credentials.clone(),
            token: token.clone(),
            adopt: manifest.adopt && unknown,
            checked: Arc::clone(&self.uploads.checked),
            fingerprint: self.uploads.fingerprint(digest),
        };
        Some((instance.id.clone(), call))
    }

    /// Starts due reads of live state while fewer than their budget are in flight.
    fn dispatch_reads(&mut self) {
        let budget = if self.options.observe_only {
            self.options.concurrency
        } else {
            READ_BUDGET.min(self.options.concurrency)
        };
        while self.flight.reads() < budget {
            let Some(index) = self.schedule.next_read() else {
                return;
            };
            let read = match self.read_for(index) {
                Ok(read) => read,
                // `--drift` reports why it could not look.
                Err(Some(unknown)) => {
                    self.table.slots[index].seen = Some(unknown);
                    continue;
                }
                Err(None) => continue,
            };
            let id = self.table.id(index).clone();
            if !self.flight.claim(&id) {
                continue;
            }
            self.read_starts(&id, self.clock.now());
            self.flight.read(id, read);
        }
    }

    /// The read instance `index` is due for: a poll of a blocked instance's state, or a
    /// look at an in-sync one's live picture. `Err` when it cannot be read, with why when
    /// only observing (`--drift` reports it).
    fn read_for(&mut self, index: usize) -> Result<Read, Option<Look>> {
        let token = match self.read_token(index) {
            Ok(token) => token,
            Err(e) if self.options.observe_only => return Err(Some(unknown(e.label(), e))),
            Err(_) => return Err(None),
        };
        if self.options.observe_only {
            return self.observe(index, token).map_err(Some);
        }
        let manifest = Arc::clone(self.table.manifest());
        let (gateway, clock, metrics) = (self.gateway.clone(), self.clock, self.metrics.clone());
        let slot = &self.table.slots[index];
        if matches!(slot.decision, Decision::Blocked { .. }) {
            let poll = apply::Poll {
                manifest,
                index,
                token,
            };
            return Ok(Box::pin(apply::poll(poll, gateway, clock, metrics)));
        }
        let Desired::Picture { digest, .. } = &slot.target.desired else {
            return Err(None);
        };
        let record = self.store.state().instances.get(self.table.id(index));
        let record = record.ok_or(None)?;
        let applied = record.applied.as_ref();
        let check = apply::Check {
            manifest,
            index,
            path: self.uploads.path(*digest),
            digest: *digest,
            token,
            recorded: applied.and_then(|a| a.url_avatar.clone()),
            wanted_hash: applied.and_then(|a| a.perceptual_hash.clone()),
            checked: Arc::clone(&self.uploads.checked),
        };
        Ok(Box::pin(apply::check(check, gateway, clock, metrics)))
    }

    /// `--drift`'s look at instance `index`: its live picture compared with the desired
    /// one (not only with the one applied, as the daemon's looks are).
    fn observe(&mut self, index: usize, token: ApiToken) -> Result<Read, Look> {
        let Desired::Picture { digest, .. } = self.table.slots[index].target.desired else {
            return Err(unknown(
                LocalKind::PictureUnreadable.label(),
                "the desired picture was not read",
            ));
        };
        let id = self.table.id(index);
        let applied = (self.store.state().instances.get(id))
            .and_then(|r| r.applied.as_ref())
            .filter(|a| a.sha256 == digest);
        // The URL GREEN-API answered when this very picture was applied.
        let recorded = applied.and_then(|a| a.url_avatar.clone());
        let known = (applied.and_then(|a| a.perceptual_hash.clone()))
            .or_else(|| self.uploads.fingerprint(digest));
        let wanted = match known {
            Some(hash) => hash,
            None => {
                let Some(bytes) = self.uploads.caches.prepared.bytes(digest) else {
                    return Err(unknown(
                        LocalKind::PictureUnreadable.label(),
                        "the desired picture could not be prepared",
                    ));
                };
                let hash: Arc<str> = match process::perceptual_hash(bytes) {
                    Ok(hash) => hash.to_string().into(),
                    Err(e) => return Err(unknown(e.label(), format!("the desired picture: {e}"))),
                };
                self.uploads.remember(digest, Arc::clone(&hash));
                hash
            }
        };
        let check = apply::Check {
            manifest: Arc::clone(self.table.manifest()),
            index,
            path: self.uploads.path(digest),
            digest,
            token,
            recorded,
            wanted_hash: Some(wanted),
            checked: Arc::clone(&self.uploads.checked),
        };
        let (gateway, clock, metrics) = (self.gateway.clone(), self.clock, self.metrics.clone());
        Ok(Box::pin(apply::check(check, gateway, clock, metrics)))
    }

    /// Notes that a read of `id`'s live state starts at `at`: in the schedule, and in its
    /// record when it has one, so the next read waits a second after it even in another run.
    /// (No record is made for it: an instance with none is one to adopt.)
    fn read_starts(&mut self, id: &InstanceId, at: std::time::SystemTime) {
        self.schedule.read_started(id, at);
        if let Some(previous) = self.store.state().instances.get(id) {
            let record = crate::plan::transition::record_read_started(previous, at);
            self.store.set(id.clone(), record);
        }
    }

    /// When a read of `id`'s live state last started, in this run or, as its record says,
    /// in another.
    pub(super) fn last_read(&self, id: &InstanceId) -> Option<std::time::SystemTime> {
        let recorded = (self.store.state().instances.get(id)).and_then(|r| r.read_started_at);
        self.schedule.last_read(id).max(recorded)
    }

    /// The token for a read of instance `index`: the one its target holds, else read now
    /// (an instance in sync needs none to be planned).
    fn read_token(&self, index: usize) -> Result<ApiToken, TokenError> {
        let instance = &self.table.manifest().instances[index];
        match &self.table.slots[index].target.token {
            Some(token) => Ok(token.clone()),
            None => instance.token.resolve().inspect_err(|e| {
                tracing::debug!(instance = %instance.id, "no read of its live state: {e}");
            }),
        }
    }
}

/// A read of live state, ready to start.
type Read = Pin<Box<dyn Future<Output = Landed> + Send>>;

/// A look that found nothing, with a stable `kind` and why.
fn unknown(kind: &'static str, why: impl ToString) -> Look {
    Look::Unknown {
        kind,
        why: why.to_string(),
    }
}
