//! What the engine tells the notifier: typed events, made where outcomes are recorded
//! (`reconcile/landing.rs`), as data. Whether and how anyone hears of one is decided
//! elsewhere ([`super::teller`]), off the upload path.

use crate::manifest::{EventName, InstanceId};
use crate::picture::Digest;
use std::time::SystemTime;

/// One thing that happened, and when.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Event {
    /// When it happened (the engine's clock).
    pub at: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

/// The instance an event is about, and its pictures.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Subject {
    /// The instance.
    pub id: InstanceId,
    /// The SHA-256 of the upload the manifest asks for.
    pub desired: Digest,
    /// The SHA-256 of the picture GREEN-API last confirmed, if any (on a drift: the one
    /// that was live before it changed).
    pub applied: Option<Digest>,
    /// The picture's path as the manifest writes it, when it is inside the manifest's
    /// folder (relative, no `..`, no `${NAME}`); otherwise not told.
    pub picture: Option<String>,
}

#[cfg(test)]
impl Subject {
    /// Instance `id` whose desired picture is `picture`'s bytes, shown as `a.jpg`: the
    /// subject the notifier's and the engine's tests tell about.
    pub(crate) fn in_test(id: &str, picture: &[u8]) -> Self {
        Self {
            id: InstanceId::parse(id).unwrap(),
            desired: Digest::of(picture),
            applied: None,
            picture: Some("a.jpg".to_owned()),
        }
    }
}

/// A rollout's news: which revision and wave, how it went (CONTRACT section 12).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RolloutNews {
    /// The rollout's revision (SHA-256 of its desired pictures, hex).
    pub revision: String,
    /// The wave, from 1.
    pub wave: usize,
    /// How many waves the rollout has.
    pub waves: usize,
    /// How many instances the wave has.
    pub instances: usize,
    /// How many of them failed.
    pub failed: usize,
    /// The first few failures, with why.
    pub failures: Vec<(InstanceId, String)>,
    /// When the next wave starts (a wave that landed, not the last).
    pub next_wave_at: Option<SystemTime>,
}

impl RolloutNews {
    /// What a message about it is keyed by, in place of an instance and its picture: the
    /// rollout and the wave (one message per wave, however often it is told).
    pub(crate) fn key(&self) -> (String, Digest) {
        let short: String = self.revision.chars().take(12).collect();
        let wave = Digest::of(format!("{} {}", self.revision, self.wave).as_bytes());
        (format!("rollout {short}"), wave)
    }
}

/// What happened. A kind with no [`Subject`] (a rollout's) is keyed by its rollout and wave
/// ([`RolloutNews::key`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum EventKind {
    /// A picture was set.
    Applied(Subject),
    /// An upload failed; `consecutive` in a row so far for this instance.
    Failed {
        /// The instance and its pictures.
        subject: Subject,
        /// The failure's stable label (`server-error`, `unauthorized`, ...).
        outcome: &'static str,
        /// One line for people (the gateway's, tokens already scrubbed).
        detail: String,
        /// Failures in a row, this one included.
        consecutive: u32,
    },
    /// A picture was set after `failures` failed uploads in a row.
    Recovered {
        /// The instance and its pictures.
        subject: Subject,
        /// How many failed before.
        failures: u32,
    },
    /// A look found the live picture is not the one applied.
    Drifted {
        /// The instance and its pictures.
        subject: Subject,
        /// Why, for people.
        why: String,
    },
    /// A rollout halted: more failures in a wave than `maxFailures`.
    Halted(RolloutNews),
    /// A rollout's wave landed: one digest message per wave.
    Wave(RolloutNews),
}

impl EventKind {
    /// The `events:` name that makes a receiver hear of it (a recovery goes with `failed`).
    pub(crate) fn name(&self) -> EventName {
        match self {
            Self::Applied(_) => EventName::Applied,
            Self::Failed { .. } | Self::Recovered { .. } => EventName::Failed,
            Self::Drifted { .. } => EventName::Drifted,
            Self::Halted(_) => EventName::Halted,
            Self::Wave(_) => EventName::Rollout,
        }
    }

    /// The body's `event`: the name, or `recovered`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Recovered { .. } => "recovered",
            other => other.name().as_str(),
        }
    }

    /// The instance it is about, if any.
    pub(crate) fn subject(&self) -> Option<&Subject> {
        match self {
            Self::Applied(subject)
            | Self::Failed { subject, .. }
            | Self::Recovered { subject, .. }
            | Self::Drifted { subject, .. } => Some(subject),
            Self::Halted(_) | Self::Wave(_) => None,
        }
    }

    /// The rollout it is about, if any.
    pub(crate) fn rollout(&self) -> Option<&RolloutNews> {
        match self {
            Self::Halted(news) | Self::Wave(news) => Some(news),
            _ => None,
        }
    }

    /// What its message is keyed by besides the receiver and the event: the instance and
    /// its desired picture, or the rollout and the wave.
    pub(crate) fn key(&self) -> Option<(String, Digest)> {
        match (self.subject(), self.rollout()) {
            (Some(subject), _) => Some((subject.id.to_string(), subject.desired)),
            (None, Some(news)) => Some(news.key()),
            (None, None) => None,
        }
    }
}
