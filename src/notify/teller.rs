//! Who is told what: pure decisions over the receivers, an event, and the record of what
//! each receiver was already told. No I/O, no clock: an event in, the messages to queue out.
//!
//! A message is keyed by (receiver, instance, desired picture, event), never by its text,
//! and each key is told at most once. A failure is told once it has happened `after` times
//! in a row; its recovery is told once, and only to a receiver that was told the failure.
//! The record ([`Told`]) is saved in the state directory with the outbox, so a restart does
//! not tell again what was told.

use super::event::{Event, EventKind};
use crate::manifest::Receiver;
use crate::picture::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many (event, picture) pairs are remembered per receiver and instance: the recent
/// ones are all a key can repeat, and the record stays bounded by the fleet.
const REMEMBERED: usize = 8;
/// The record's format version.
const TOLD_VERSION: u32 = 1;

/// What each receiver was told, by receiver key and instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Told {
    version: u32,
    receivers: BTreeMap<String, BTreeMap<String, Ledger>>,
}

/// What one receiver was told of one instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Ledger {
    /// The picture whose failure was told and whose recovery was not yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failing: Option<Digest>,
    /// The (event, desired picture) keys told, oldest first.
    #[serde(default)]
    told: Vec<(String, Digest)>,
}

/// A message to queue: for which receiver (its index in the manifest's list), and the key
/// it was told under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tell {
    /// The receiver's index in `notify:`.
    pub receiver: usize,
    /// The receiver's key ([`Receiver::key`]).
    pub receiver_key: String,
    /// The instance.
    pub instance: String,
    /// The body's `event` label.
    pub event: &'static str,
    /// The desired picture.
    pub desired: Digest,
}

impl Tell {
    /// The message's id: a hash of its key, stable across restarts, so a receiver can
    /// drop a duplicate (delivery is at least once: a crash after a receiver's 2xx and
    /// before the outbox forgets the message sends it again).
    pub(crate) fn id(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let key = format!(
            "{} {} {} {}",
            self.receiver_key, self.instance, self.desired, self.event
        );
        let digest = Sha256::digest(key.as_bytes());
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Told {
    /// An empty record.
    pub(crate) fn new() -> Self {
        Self {
            version: TOLD_VERSION,
            receivers: BTreeMap::new(),
        }
    }

    /// Reads a saved record; a damaged or newer one is `None` (and everything may be told
    /// once more, which is better than never again).
    pub(crate) fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|t| t.version == TOLD_VERSION)
    }

    /// The record as saved.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The messages `event` makes, each recorded as told.
    pub(crate) fn tell(&mut self, receivers: &[Receiver], event: &Event) -> Vec<Tell> {
        let Some((instance, desired)) = event.kind.key() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (index, receiver) in receivers.iter().enumerate() {
            if !receiver.tells(event.kind.name()) {
                continue;
            }
            let key = receiver.key();
            let ledger = (self.receivers.entry(key.clone()).or_default())
                .entry(instance.clone())
                .or_default();
            let due = match &event.kind {
                EventKind::Failed { consecutive, .. } => {
                    *consecutive >= receiver.after && ledger.failing != Some(desired)
                }
                // Only a failure that was told is told to have ended.
                EventKind::Recovered { .. } => ledger.failing.is_some(),
                EventKind::Applied(_)
                | EventKind::Drifted { .. }
                | EventKind::Halted(_)
                | EventKind::Wave(_) => true,
            };
            let label = event.kind.label();
            if !due || ledger.has(label, desired) {
                continue;
            }
            let tell = Tell {
                receiver: index,
                receiver_key: key,
                instance: instance.clone(),
                event: label,
                desired,
            };
            self.record(&tell);
            out.push(tell);
        }
        out
    }

    /// Records `tell` as told (also what a message found in the outbox at start says).
    pub(crate) fn record(&mut self, tell: &Tell) {
        let ledger = (self.receivers.entry(tell.receiver_key.clone()).or_default())
            .entry(tell.instance.clone())
            .or_default();
        ledger.remember(tell.event, tell.desired);
        match tell.event {
            "failed" => ledger.failing = Some(tell.desired),
            "recovered" => ledger.failing = None,
            _ => {}
        }
    }

    /// Forgets the receivers not in `receivers` (removed from the manifest).
    pub(crate) fn keep_only(&mut self, receivers: &[Receiver]) {
        let keys: Vec<String> = receivers.iter().map(Receiver::key).collect();
        self.receivers.retain(|key, _| keys.contains(key));
    }
}

impl Ledger {
    fn has(&self, event: &str, desired: Digest) -> bool {
        (self.told.iter()).any(|(e, d)| e == event && *d == desired)
    }

    fn remember(&mut self, event: &str, desired: Digest) {
        if !self.has(event, desired) {
            self.told.push((event.to_owned(), desired));
        }
        if self.told.len() > REMEMBERED {
            self.told.remove(0);
        }
    }
}
