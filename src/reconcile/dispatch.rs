//! Starting what is due: uploads first, then reads of live state, while fewer than
//! `concurrency` are in flight. Each upload's start is recorded (and journaled) before any
//! of them is sent.

use super::Reconciler;
use super::apply::{self, Call, Landed};
use crate::gateway::Gateway;
use crate::manifest::{ApiToken, InstanceId};
use crate::plan::{Decision, Desired};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

impl<G: Gateway> Reconciler<G> {
    /// Starts due calls, then due reads, while fewer than `concurrency` are in flight.
    pub(super) fn dispatch(&mut self) {
        let mut starting: Vec<(InstanceId, Call)> = Vec::new();
        while self.flight.len() + starting.len() < self.options.concurrency {
            let Some(index) = self.schedule.next_call() else {
                break;
            };
            if let Some(call) = self.call_for(index) {
                starting.push(call);
            }
        }
        self.dispatch_reads();
        if starting.is_empty() {
            return;
        }
        let now = self.clock.now();
        let replaced: Vec<_> = (starting.iter())
            .map(|(id, _)| self.store.state().instances.get(id))
            .map(|record| record.and_then(|r| r.call_started_at))
            .collect();
        let ids: Vec<InstanceId> = starting.iter().map(|(id, _)| id.clone()).collect();
        for (id, call) in &starting {
            if call.adopt {
                self.schedule.read_started(id, now);
            }
        }
        self.store.calls_started(&ids, now);
        for ((id, call), replaced) in starting.into_iter().zip(replaced) {
            let digest = call.digest;
            let send = apply::send(call, self.gateway.clone(), self.clock, self.metrics.clone());
            self.flight.upload(id, digest, replaced, send);
        }
    }

    /// The upload instance `index` is due for, its instance claimed; `None` when it can
    /// no longer be made (re-planned meanwhile, or already in flight).
    fn call_for(&mut self, index: usize) -> Option<(InstanceId, Call)> {
        let Decision::Due { digest } = self.table.slots[index].decision else {
            return None;
        };
        let manifest = self.table.manifest();
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
        if !self.flight.claim(&instance.id) {
            return None;
        }
        let unknown = !self.store.state().instances.contains_key(&instance.id);
        let call = Call {
            manifest: Arc::clone(manifest),
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

    /// Starts due reads of live state while permits are free (calls come first).
    fn dispatch_reads(&mut self) {
        while self.flight.len() < self.options.concurrency {
            let Some(index) = self.schedule.next_read() else {
                return;
            };
            let Some(read) = self.read_for(index) else {
                continue;
            };
            let id = self.table.id(index).clone();
            if !self.flight.claim(&id) {
                continue;
            }
            self.schedule.read_started(&id, self.clock.now());
            self.flight.read(id, read);
        }
    }

    /// The read instance `index` is due for: a poll of a blocked instance's state, or a
    /// look at an in-sync one's live picture.
    fn read_for(&self, index: usize) -> Option<Pin<Box<dyn Future<Output = Landed> + Send>>> {
        let token = self.read_token(index)?;
        let manifest = Arc::clone(self.table.manifest());
        let (gateway, clock, metrics) = (self.gateway.clone(), self.clock, self.metrics.clone());
        let slot = &self.table.slots[index];
        if matches!(slot.decision, Decision::Blocked { .. }) {
            let poll = apply::Poll {
                manifest,
                index,
                token,
            };
            return Some(Box::pin(apply::poll(poll, gateway, clock, metrics)));
        }
        let Desired::Picture { digest, .. } = &slot.target.desired else {
            return None;
        };
        let record = self.store.state().instances.get(self.table.id(index))?;
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
        Some(Box::pin(apply::check(check, gateway, clock, metrics)))
    }

    /// The token for a read of instance `index`: the one its target holds, else read now
    /// (an instance in sync needs none to be planned).
    fn read_token(&self, index: usize) -> Option<ApiToken> {
        let instance = &self.table.manifest().instances[index];
        match &self.table.slots[index].target.token {
            Some(token) => Some(token.clone()),
            None => instance
                .token
                .resolve()
                .inspect_err(|e| {
                    tracing::debug!(instance = %instance.id, "no read of its live state: {e}");
                })
                .ok(),
        }
    }
}
