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

/// What happened. New kinds (a rollout's `Halted { failures }` and `Wave { n, instances }`)
/// are added here with their [`EventKind::name`], [`EventKind::label`] and a line in the
/// teller; a kind with no [`Subject`] is keyed by its label and the revision.
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
}

impl EventKind {
    /// The `events:` name that makes a receiver hear of it (a recovery goes with `failed`).
    pub(crate) fn name(&self) -> EventName {
        match self {
            Self::Applied(_) => EventName::Applied,
            Self::Failed { .. } | Self::Recovered { .. } => EventName::Failed,
            Self::Drifted { .. } => EventName::Drifted,
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
        }
    }
}
